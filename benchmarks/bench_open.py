"""Open-time benchmark: napari-zarrnii vs napari-ome-zarr on metadata-only pyramids.

Each case is a store whose arrays exist (metadata) but whose chunks are empty, so the
time measured is what a reader does before a user sees the first slice, not disk
speed.  Every measurement runs in a fresh subprocess on a virtual screen:
``xvfb-run -a python benchmarks/bench_open.py [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zarr
from _results import save_results

CASES = {
    # tiny: what viewer.open itself costs (its "Opening Files" progress bar, two layers)
    "2ch 64^3": dict(shape=(2, 64, 64, 64), chunks=(1, 64, 64, 64), levels=1),
    "2ch 1024^3": dict(shape=(2, 1024, 1024, 1024), chunks=(1, 64, 64, 64), levels=5),
    "2ch 4096^3": dict(shape=(2, 4096, 4096, 4096), chunks=(1, 64, 64, 64), levels=7),
    "2-D 100000^2": dict(shape=(100000, 100000), chunks=(512, 512), levels=9),
}


def make_store(path: Path, shape, chunks, levels) -> None:
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    ndim = len(shape)
    names = ["c", "z", "y", "x"][-ndim:] if ndim <= 4 else list("tczyx")
    spatial = [n in "zyx" for n in names]
    datasets = []
    for i in range(levels):
        f = 2**i
        lvl_shape = tuple(max(1, -(-n // f)) if s else n for n, s in zip(shape, spatial))
        root.create_array(
            str(i),
            shape=lvl_shape,
            dtype="uint16",
            chunks=tuple(min(c, n) for c, n in zip(chunks, lvl_shape)),
            chunk_key_encoding={"name": "v2", "separator": "/"},
            fill_value=0,
        )
        scale = [float(f) if s else 1.0 for s in spatial]
        datasets.append(
            {"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": scale}]}
        )
    axes = [{"name": n, "type": "channel" if n == "c" else "space"} for n in names]
    for a in axes:
        if a["type"] == "space":
            a["unit"] = "micrometer"
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": datasets}]
    if "c" in names:
        root.attrs["omero"] = {
            "channels": [
                {
                    "label": f"ch{i}",
                    "color": c,
                    "active": True,
                    "window": {"start": 0, "end": 1000, "min": 0, "max": 65535},
                }
                for i, c in enumerate(["00FF00", "FF00FF"][: shape[0]])
            ]
        }


CHILD = r"""
import json, shutil, sys, time
path, plugin = sys.argv[1], sys.argv[2]
import napari
import numpy as np
from qtpy.QtWidgets import QApplication
viewer = napari.Viewer(show=True)
app = QApplication.instance()
# napari builds its unit registry on the first layer that has units: warm it for all
viewer.add_image(np.zeros((4, 4), "uint8"), units=("micrometer", "micrometer"))
viewer.layers.clear()
for _ in range(5):
    app.processEvents()

def open_and_show(p):
    t0 = time.perf_counter()
    layers = viewer.open(p, plugin=plugin)
    app.processEvents()
    return time.perf_counter() - t0, len(layers)

cold, n = open_and_show(path)          # includes importing the plugin's modules
viewer.layers.clear(); app.processEvents()
warm, n = open_and_show(path + "/")    # a second open in the same session
print(json.dumps({"cold": cold, "shown": warm, "layers": n}))
viewer.close()
"""


FLOOR = r"""
import json, time, numpy as np, napari
from qtpy.QtWidgets import QApplication
viewer = napari.Viewer(show=True); app = QApplication.instance(); app.processEvents()
viewer.add_image(np.zeros((4, 4), "uint8"), units=("micrometer", "micrometer"))
viewer.layers.clear(); app.processEvents()
data = [np.zeros((64 >> i,) * 3, "uint16") for i in range(3)]
best = 1e9
for _ in range(3):
    t0 = time.perf_counter()
    for c in range(2):
        viewer.add_image(data, multiscale=True, contrast_limits=(0, 1000),
                         units=["micrometer"] * 3, axis_labels=list("zyx"),
                         blending="additive", colormap="green")
    app.processEvents()
    best = min(best, time.perf_counter() - t0)
    viewer.layers.clear(); app.processEvents()
print(json.dumps({"shown": best}))
"""


def measure(path: Path, plugin: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), plugin],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--peer", default="napari-ome-zarr")
    parser.add_argument("--cases", nargs="*", default=list(CASES), help="names of CASES to run")
    parser.add_argument("--json", type=Path, default=None, help="results file (default: dated)")
    parser.add_argument(
        "--provisional", action="store_true", help="mark the results file as a small run"
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in ((n, CASES[n]) for n in args.cases):
            path = Path(tmp) / f"{name.replace(' ', '_').replace('^', '')}.ome.zarr"
            make_store(path, **spec)
            result = {}
            for plugin in ("napari-zarrnii", args.peer):
                times = [measure(path, plugin) for _ in range(args.repeat)]
                ok = [t["shown"] for t in times if "shown" in t]
                result[plugin] = min(ok) if ok else times[0].get("error")
                cold = [t["cold"] for t in times if "cold" in t]
                result[plugin + " cold"] = min(cold) if cold else None
            rows.append((name, result))
    floor = subprocess.run([sys.executable, "-c", FLOOR], capture_output=True, text=True)
    floor_s = (
        json.loads(floor.stdout.strip().splitlines()[-1])["shown"]
        if floor.returncode == 0
        else None
    )
    print(f"napari's own cost of adding two tiny in-memory multiscale layers: {floor_s:.3f} s\n")
    print(
        f"| case | napari-zarrnii (s) | {args.peer} (s) | ratio "
        f"| first open, zarrnii (s) | first open, {args.peer} (s) |"
    )
    print("|---|---|---|---|---|---|")

    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    for name, result in rows:
        ours, peer = result["napari-zarrnii"], result[args.peer]
        ratio = (
            f"{peer / ours:.1f}x" if isinstance(ours, float) and isinstance(peer, float) else "-"
        )
        print(
            f"| {name} | {fmt(ours)} | {fmt(peer)} | {ratio} "
            f"| {fmt(result['napari-zarrnii cold'])} | {fmt(result[args.peer + ' cold'])} |"
        )
    results = [
        {
            "case": name,
            "tool": tool,
            "metrics": {
                "open_s": _number(result[tool]),
                "first_open_s": _number(result[tool + " cold"]),
            },
        }
        for name, result in rows
        for tool in ("napari-zarrnii", args.peer)
    ]
    settings = {"repeat": args.repeat, "floor_s": floor_s, "cases": args.cases}
    saved = save_results("open", results, settings, out=args.json, provisional=args.provisional)
    print(f"\nresults: {saved}")


def _number(value: object) -> float | None:
    return value if isinstance(value, float) else None


if __name__ == "__main__":
    time.sleep(0)
    main()
