"""Regenerate the screenshots in docs/images/ from the generated sample.

Run under a virtual X screen (xvfb-run's default screen is 640x480)::

    xvfb-run -a -s "-screen 0 1280x800x24" python docs/make_screenshots.py

The window is 1280x800, the smallest screen the widgets are laid out for.  For each
theme (``--themes dark light`` by default) it writes ``widget-create-pyramid-THEME.png``,
``widget-channel-metadata-THEME.png``, ``widget-crop-roi-THEME.png``,
``widget-storage-report-THEME.png`` (each widget docked alone, in a state a user would
see while using it) and ``widgets-all-docks-THEME.png`` (the four docks open at once).
``viewer-sample.png`` is the sample in the first theme, without a dock.
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
WINDOW = (1280, 800)
WIDGETS = ("Create pyramid", "Channel metadata", "Crop ROI to full resolution", "Storage report")


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


def open_viewer(store: Path, theme: str) -> napari.Viewer:
    viewer = napari.Viewer(title="napari-zarrnii", show=True)
    viewer.theme = theme
    viewer.window._qt_window.resize(*WINDOW)
    viewer.open(str(store), plugin=PLUGIN)
    viewer.dims.set_point(0, 30.0)  # a z plane through the middle of the cells
    viewer.reset_view()
    settle()
    return viewer


def widget_shots(store: Path, tmp: Path, out: Path, theme: str, *, sample: bool) -> None:
    viewer = open_viewer(store, theme)
    if sample:
        shoot(viewer, out / "viewer-sample.png")

    # Create pyramid: the three layers as source, a plan for a new store
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Create pyramid")
    widget.output.value = tmp / "sample-rechunked.ome.zarr"
    widget.n_levels.value = 4
    widget.chunks.value = "16,64,64"
    widget.compressor.value = "blosc-lz4"
    shoot(viewer, out / f"widget-create-pyramid-{theme}.png")
    viewer.window.remove_dock_widget(dock)

    # Channel metadata: a channel renamed and recoloured, a window narrowed
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Channel metadata")
    widget.table.item(1, 0).setText("cytoplasm (GFP)")
    widget.set_channel(1, color="FFA500")
    widget.spin(0, "end").setValue(2500)
    shoot(viewer, out / f"widget-channel-metadata-{theme}.png")
    # a window typed wrong is refused next to the table; a channel hidden
    widget.spin(1, "start").setValue(60000)
    widget.table.cellWidget(0, 6).setChecked(False)
    shoot(viewer, out / f"widget-channel-metadata-problem-{theme}.png")
    widget.revert()
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
    shoot(viewer, out / f"widget-crop-roi-{theme}.png")
    viewer.window.remove_dock_widget(dock)
    viewer.close()

    # Storage report of the sample store (a fresh viewer: no crop layers)
    viewer = open_viewer(store, theme)
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Storage report")
    widget.layer.value = viewer.layers["DAPI"]
    wait_for(widget)
    shoot(viewer, out / f"widget-storage-report-{theme}.png")
    viewer.window.remove_dock_widget(dock)

    # all four at once: every dock scrolls, none pushes the window past 1280x800
    for name in WIDGETS:
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
        if hasattr(widget, "runner"):
            wait_for(widget)
    shoot(viewer, out / f"widgets-all-docks-{theme}.png")
    size = viewer.window._qt_window.size()
    if (size.width(), size.height()) != WINDOW:
        raise RuntimeError(f"the docks pushed the window to {size.width()}x{size.height()}")
    viewer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "images")
    parser.add_argument("--themes", nargs="+", default=["dark", "light"])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="zarrnii-shots-"))
    store = write_pyramid(make_sample_image(), tmp / "sample.ome.zarr", max_layer=2, chunks=64)
    for i, theme in enumerate(args.themes):
        widget_shots(store, tmp, args.out, theme, sample=i == 0)


if __name__ == "__main__":
    main()
