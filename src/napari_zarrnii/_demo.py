"""Demo: write the generated sample as an OME-Zarr pyramid and open it in napari.

``python -m napari_zarrnii._demo [--screenshot PNG] [--out DIR]``
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo-output", help="folder for the sample store")
    parser.add_argument("--screenshot", help="save a screenshot here and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log = logging.getLogger("napari_zarrnii.demo")

    from napari_zarrnii.core.pyramid import write_pyramid
    from napari_zarrnii.core.sample import make_sample_image

    out = Path(args.out)
    store = out / "sample.ome.zarr"
    t0 = time.perf_counter()
    image = make_sample_image(shape=(48, 384, 384), n_levels=1)
    write_pyramid(image, store, max_layer=3, overwrite=True)
    log.info("wrote %s in %.2f s", store, time.perf_counter() - t0)

    import napari

    viewer = napari.Viewer(title="napari-zarrnii demo", show=True)
    viewer.window.resize(1500, 950)
    t0 = time.perf_counter()
    layers = viewer.open(str(store), plugin="napari-zarrnii")
    log.info(
        "opened %d layers in %.3f s: %s",
        len(layers),
        time.perf_counter() - t0,
        ", ".join(layer.name for layer in layers),
    )
    viewer.window.add_plugin_dock_widget("napari-zarrnii", "Crop ROI to full resolution")
    # The dock narrows the canvas only once Qt has laid the window out again: fit the
    # view after that, or the image is fitted to the wider canvas and cut at the right.
    _settle()
    viewer.reset_view()
    _settle()
    if args.screenshot:
        shot = Path(args.screenshot)
        shot.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(shot), canvas_only=False)
        log.info("screenshot saved to %s", shot.resolve())
        viewer.close()
        return 0
    napari.run()
    return 0


def _settle(rounds: int = 20) -> None:
    """Let Qt process pending layout and paint events."""
    from qtpy.QtWidgets import QApplication

    for _ in range(rounds):
        QApplication.processEvents()
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
