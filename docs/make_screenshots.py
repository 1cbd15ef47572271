"""Regenerate the screenshots in docs/images/ from the generated sample.

Run under a virtual X screen large enough for the window (xvfb-run's default screen
is 640x480)::

    xvfb-run -a -s "-screen 0 1920x1200x24" python docs/make_screenshots.py

Writes ``viewer-sample.png``, ``widget-create-pyramid.png``,
``widget-channel-metadata.png``, ``widget-crop-roi.png`` and
``widget-storage-report.png``: the whole napari window, each widget docked in a state
a user would see while using it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_zarrnii.core.pyramid import write_pyramid
from napari_zarrnii.core.sample import make_sample_image

PLUGIN = "napari-zarrnii"
HERE = Path(__file__).resolve().parent


def settle(seconds: float = 0.3) -> None:
    """Let Qt draw (and workers report) for a moment."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def wait_for(widget, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while widget.runner.busy:
        if time.monotonic() > end:
            raise TimeoutError(f"{type(widget).__name__}: task still running after {timeout} s")
        settle(0.05)
    if widget.runner.last_outcome not in (None, "done"):
        raise RuntimeError(f"{type(widget).__name__}: {widget.runner.last_error}")


def shoot(viewer: napari.Viewer, path: Path) -> None:
    settle()
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="zarrnii-shots-"))

    store = write_pyramid(make_sample_image(), tmp / "sample.ome.zarr", max_layer=2, chunks=64)
    viewer = napari.Viewer(title="napari-zarrnii", show=True)
    viewer.window._qt_window.resize(1500, 940)
    viewer.open(str(store), plugin=PLUGIN)
    viewer.dims.set_point(0, 30.0)  # a z plane through the middle of the cells
    viewer.reset_view()
    shoot(viewer, args.out / "viewer-sample.png")

    # Create pyramid: the three layers as source, a plan for a new store
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Create pyramid")
    widget.output.value = tmp / "sample-rechunked.ome.zarr"
    widget.n_levels.value = 4
    widget.chunks.value = "16,64,64"
    widget.compressor.value = "blosc-lz4"
    shoot(viewer, args.out / "widget-create-pyramid.png")
    viewer.window.remove_dock_widget(dock)

    # Channel metadata: a channel renamed and recoloured, a window narrowed
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Channel metadata")
    widget.table.item(1, 0).setText("cytoplasm (GFP)")
    widget.set_channel(1, color="FFA500")
    widget.spin(0, "end").setValue(2500)
    shoot(viewer, args.out / "widget-channel-metadata.png")
    viewer.window.remove_dock_widget(dock)

    # Crop ROI: find the tissue, shrink the rectangle to a few cells, crop
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Crop ROI to full resolution")
    widget.image.value = viewer.layers["DAPI"]
    widget.run_find_tissue()
    wait_for(widget)
    roi = viewer.layers["ROI"]
    roi.data = [np.array([[20.0, 22.0], [60.0, 70.0]])]  # micrometres (y, x)
    widget.z_start.value, widget.z_stop.value = 8, 24
    widget.box_from_shapes()
    sources = widget._targets()
    widget.crop()
    for layer in sources:
        layer.opacity = 0.3
    viewer.layers["cells"].visible = False
    viewer.layers.selection.active = roi
    shoot(viewer, args.out / "widget-crop-roi.png")
    viewer.window.remove_dock_widget(dock)

    # Storage report of the sample store
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Storage report")
    widget.layer.value = viewer.layers["DAPI"]
    wait_for(widget)
    shoot(viewer, args.out / "widget-storage-report.png")
    viewer.close()


if __name__ == "__main__":
    main()
