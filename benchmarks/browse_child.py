"""One measurement of ``bench_browse.py``: a fresh napari process browsing one store.

Started by ``bench_browse.py`` (not meant to be run alone) with one JSON argument;
prints one JSON line of results on stdout.  Times are ``time.perf_counter()``, which
on Linux is CLOCK_MONOTONIC and so comparable with the parent's clock: "first open"
runs from the moment the parent started this process (before the interpreter and
every import) to the first slice drawn.

When is a slice "drawn"?  napari (synchronous slicing, the default) slices a layer on
the calling thread: in ``dims.set_current_step`` for a z-step, and inside the canvas
draw for a camera change (its ``on_draw`` picks the level and tile, reslices and asks
for a second draw).  A new slice reaches the screen through the layer's
``events.set_data`` -> vispy node -> canvas update -> draw.  So: a step is drawn
when a canvas draw *began* after the last ``set_data`` of any layer (and after the
step started) and no ``set_data`` happened during that draw, every layer reports
``loaded`` (False while an asynchronous slice is pending, with ``NAPARI_ASYNC=1``),
and the GL commands of that draw have finished (``glFinish``).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import urllib.request
from typing import Any

ARGS: dict[str, Any] = json.loads(sys.argv[1])

import napari  # noqa: E402
import numpy as np  # noqa: E402
from qtpy.QtCore import QEventLoop, QTimer  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402
from vispy.gloo import gl  # noqa: E402

WAKE_MS = 5  # wake the event loop this often while waiting (no busy spin)
# After reslicing inside a draw (camera change) napari asks for another draw, which
# comes 40-100 ms after the first one has finished (its GL flush included).  Should it
# not come this long after the last draw or change, ask for it, and count that per
# phase: a user would have seen the new data only at the next event.
NUDGE_S = 0.25
TIMEOUT_S = float(ARGS.get("step_timeout", 300))


class DrawWatch:
    """Follows set_data and canvas draws to tell when the current view is on screen."""

    def __init__(self, viewer: napari.Viewer) -> None:
        self.viewer = viewer
        self.app = QApplication.instance()
        self.scene_canvas = viewer.window._qt_viewer.canvas._scene_canvas
        self.dirty = True
        self.done = False
        self.draws = 0
        self.nudges = 0
        self.last_change = time.perf_counter()
        self.scene_canvas.events.draw.connect(self._draw_begins, position="first")
        self.scene_canvas.events.draw.connect(self._draw_ends, position="last")
        viewer.layers.events.inserted.connect(self._layer_inserted)
        for layer in viewer.layers:
            layer.events.set_data.connect(self.changed)
        self.timer = QTimer()
        self.timer.setInterval(WAKE_MS)
        self.timer.timeout.connect(lambda: None)

    def _layer_inserted(self, event: Any) -> None:
        event.value.events.set_data.connect(self.changed)
        self.changed()

    def changed(self, event: Any = None) -> None:
        self.dirty = True
        self.done = False
        self.last_change = time.perf_counter()

    def _draw_begins(self, event: Any) -> None:
        self.dirty = False

    def _draw_ends(self, event: Any) -> None:
        self.draws += 1
        if not self.dirty:
            self.done = True

    def wait(self) -> None:
        """Process Qt events until the current view is drawn with its final data."""
        t0 = time.perf_counter()
        self.timer.start()
        flag = QEventLoop.ProcessEventsFlag
        flags = flag.AllEvents | flag.WaitForMoreEvents
        try:
            quiet_since = t0  # the last change or the return from the last draw
            while not (self.done and all(layer.loaded for layer in self.viewer.layers)):
                draws = self.draws
                self.app.processEvents(flags)
                now = time.perf_counter()
                if self.draws != draws:
                    quiet_since = now
                quiet_since = max(quiet_since, self.last_change)
                if not self.done and now - quiet_since > NUDGE_S:
                    self.nudges += 1
                    quiet_since = now
                    self.scene_canvas.update()
                if now - t0 > TIMEOUT_S:
                    raise TimeoutError(f"view not drawn after {TIMEOUT_S} s")
        finally:
            self.timer.stop()
        self.scene_canvas.set_current()
        gl.glFinish()


def camera(viewer: napari.Viewer) -> Any:
    scene = getattr(viewer, "scene", None)  # napari >= 0.9; viewer.camera before
    return scene.camera if scene is not None else viewer.camera


def requests_served() -> int | None:
    url = ARGS.get("counter_url")
    if not url:
        return None
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(json.loads(response.read())["requests"])


def view_state(viewer: napari.Viewer) -> dict[str, Any]:
    """Levels shown and the share of displayed voxels that are 0 (missing chunks)."""
    zero = 0.0
    levels = []
    for layer in viewer.layers:
        raw = np.asarray(layer._slice.image.raw)
        zero = max(zero, float((raw == 0).mean()) if raw.size else 1.0)
        levels.append(int(layer.data_level))
    return {"levels": levels, "zero_fraction": zero}


def main() -> None:
    t_launch = float(ARGS["t_launch"])
    viewer = napari.Viewer(show=True)
    window = viewer.window._qt_window
    window.resize(*ARGS["window"])
    app = QApplication.instance()
    for _ in range(3):
        app.processEvents()
    watch = DrawWatch(viewer)
    out: dict[str, Any] = {"pid": os.getpid()}
    phases: dict[str, Any] = {}
    out["phases"] = phases

    def phase(name: str, steps: list, act) -> None:
        """Time each step (act(step) then wait for the draw); one record per phase."""
        before = requests_served()
        nudges = watch.nudges
        times = []
        zero = 0.0
        levels: set[int] = set()
        for step in steps:
            t0 = time.perf_counter()
            watch.changed()
            act(step)
            watch.wait()
            times.append(time.perf_counter() - t0)
            state = view_state(viewer)
            zero = max(zero, state["zero_fraction"])
            levels.update(state["levels"])
        after = requests_served()
        phases[name] = {
            "seconds": sum(times),
            "steps": times,
            "levels": sorted(levels),
            "zero_fraction": zero,
            "requests": None if before is None else after - before,
            "nudges": watch.nudges - nudges,
        }

    t_viewer = time.perf_counter()
    out["startup"] = t_viewer - t_launch  # interpreter, imports, viewer window
    watch.draws = 0

    if ARGS["mode"] == "floor":
        levels = [np.full((64 >> i,) * 3, 1000, "uint16") for i in range(3)]

        def add(_: Any) -> None:
            for color in ("green", "magenta"):
                viewer.add_image(
                    levels,
                    multiscale=True,
                    contrast_limits=(0, 4000),
                    colormap=color,
                    blending="additive",
                )

        phase("open", [None], add)
        out["first_open"] = time.perf_counter() - t_launch
    else:
        phase("open", [None], lambda _: viewer.open(ARGS["path"], plugin=ARGS["plugin"]))
        out["first_open"] = time.perf_counter() - t_launch
        out["layers"] = [
            {
                "name": layer.name,
                "shape": list(layer.data[0].shape),
                "levels": len(layer.data),
                "type": type(layer.data[0]).__module__ + "." + type(layer.data[0]).__name__,
            }
            for layer in viewer.layers
        ]
        browse(viewer, phase, out)
    out["canvas_size"] = list(viewer.window._qt_viewer.canvas.size)
    out["draws"] = watch.draws
    out["nudges"] = watch.nudges
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out), flush=True)
    sys.stdout.flush()
    os._exit(0)  # napari's teardown is not part of the benchmark


def browse(viewer: napari.Viewer, phase, out: dict[str, Any]) -> None:
    """z-steps out-zoomed, zoom in to level 0, z-steps there, pan across the plane."""
    dims = viewer.dims
    nz = int(ARGS["zsteps"])
    has_z = dims.ndim >= 3 and dims.nsteps[-3] > 2 * nz
    if has_z:
        z_axis = dims.ndim - 3
        z0 = int(dims.current_step[z_axis])
        out["z0"] = z0
        phase(
            "zsteps_out",
            list(range(z0 + 1, z0 + nz + 1)),
            lambda z: dims.set_current_step(z_axis, z),
        )
    # zoomed in: 2 screen pixels per level-0 voxel at the centre of the plane
    extent = viewer.layers.extent.world
    y_range, x_range = extent[:, -2], extent[:, -1]
    step_x = float(dims.range[-1].step)
    zoom = float(ARGS["zoom_in"]) / step_x
    yc, xc = float(y_range.mean()), float(x_range.mean())

    def zoom_in(_: Any) -> None:
        camera(viewer).center = (yc, xc)
        camera(viewer).zoom = zoom

    phase("zoom_in", [None], zoom_in)
    if has_z:
        phase(
            "zsteps_in",
            list(range(z0 + nz + 1, z0 + 2 * nz + 1)),
            lambda z: dims.set_current_step(z_axis, z),
        )
    # pan: the view (canvas width / zoom wide) from the left edge to the right edge
    width = viewer.window._qt_viewer.canvas.size[1] / zoom
    left, right = x_range[0] + width / 2, x_range[1] - width / 2
    n = int(ARGS["pan_steps"])
    xs = [float(left + (right - left) * k / (n - 1)) for k in range(n)] if right > left else []

    def pan(x: float) -> None:
        camera(viewer).center = (yc, x)

    phase("pan", xs, pan)


if __name__ == "__main__":
    main()
