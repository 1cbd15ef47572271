"""ROI benchmark: tissue bounds on the coarsest level of a 4096^3 pyramid, then a crop.

The store is virtual: a 6-level NGFF 0.5 pyramid (4096^3 ... 128^3, uint16, 128^3
chunks) whose metadata is complete but whose chunks are missing (read as fill value),
except the coarsest level (a blob of "tissue") and the level-0 chunks overlapping the
256^3 crop box.  Every step reads through a store wrapper that counts chunk reads, and
a sampler thread records the peak resident memory (psutil) above the step's start.

Run: ``python benchmarks/bench_roi.py [--keep PATH]``; prints a markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask
import numpy as np
import psutil
import zarr

from napari_zarrnii import ZarrNii
from napari_zarrnii.core.model import Level
from napari_zarrnii.core.omezarr import read_ome_zarr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' helpers
from _results import save_results
from tests.helpers import CountingStore

SIZE = 4096
LEVELS = 6
CHUNK = 128
CROP = 256


def make_store(path: Path) -> tuple[int, ...]:
    """Write the virtual pyramid; return the level-0 box the crop will use (min corner)."""
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    datasets = []
    for i in range(LEVELS):
        n = SIZE >> i
        root.create_array(
            str(i),
            shape=(n, n, n),
            chunks=(CHUNK,) * 3,
            dtype="uint16",
            fill_value=0,
            dimension_names=["z", "y", "x"],
        )
        f = float(2**i)
        datasets.append(
            {
                "path": str(i),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [f, f, f]},
                    {"type": "translation", "translation": [(f - 1) / 2] * 3},
                ],
            }
        )
    axes = [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    root.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [{"axes": axes, "datasets": datasets, "name": "virtual 4096^3"}],
    }
    # coarsest level: an off-centre ellipsoid of tissue on a dim background
    n = SIZE >> (LEVELS - 1)
    g = np.indices((n, n, n), dtype=np.float32)
    centre = np.array([0.5, 0.45, 0.55])[:, None, None, None] * n
    radii = np.array([0.3, 0.35, 0.25])[:, None, None, None] * n
    inside = (((g - centre) / radii) ** 2).sum(axis=0) <= 1
    rng = np.random.default_rng(0)
    coarse = rng.normal(100, 10, (n, n, n))
    coarse[inside] += 1500
    root[str(LEVELS - 1)][...] = np.clip(coarse, 0, None).astype(np.uint16)
    # level 0: only the chunks a 256^3 box inside the tissue overlaps (box not chunk
    # aligned, so it overlaps 3 x 3 x 3 chunks)
    box_min = tuple(int(c * SIZE) // CHUNK * CHUNK + CHUNK // 2 for c in (0.5, 0.45, 0.55))
    lo = [b // CHUNK * CHUNK for b in box_min]
    hi = [-(-(b + CROP) // CHUNK) * CHUNK for b in box_min]
    region = tuple(slice(a, b) for a, b in zip(lo, hi))
    shape = tuple(b - a for a, b in zip(lo, hi))
    smooth = (np.indices(shape).sum(axis=0) % 512).astype(np.uint16) + 1000
    root["0"][region] = smooth + rng.integers(0, 64, shape, dtype=np.uint16)
    return box_min


class PeakRSS:
    """Samples this process's RSS every 2 ms in a thread; ``peak`` is above the start."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self.start = self.peak = 0

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def open_counted(path: Path) -> tuple[ZarrNii, CountingStore]:
    image = read_ome_zarr(path)
    store = CountingStore(zarr.storage.LocalStore(str(path), read_only=True))
    levels = [
        Level(
            lvl.path, zarr.open_array(store, path=lvl.path, mode="r"), lvl.scale, lvl.translation
        )
        for lvl in image.levels
    ]
    return ZarrNii(image.replace(levels=levels)), store


def measure(
    rows: list[dict[str, Any]], name: str, store: CountingStore, fn: Callable[[], Any]
) -> Any:
    store.reset()
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        result = fn()
        wall = time.perf_counter() - t0
    rows.append(
        {
            "step": name,
            "wall_s": wall,
            "peak_mib": (rss.peak - rss.start) / 2**20,
            "chunks": store.reads,
        }
    )
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="write the store here and keep it")
    parser.add_argument("--json", type=Path, default=None, help="results file (default: dated)")
    parser.add_argument(
        "--provisional", action="store_true", help="mark the results file as a small run"
    )
    args = parser.parse_args(argv)
    tmp = None
    if args.keep:
        path = args.keep
    else:
        tmp = Path(tempfile.mkdtemp(prefix="bench_roi_"))
        path = tmp / "virtual.ome.zarr"
    try:
        t0 = time.perf_counter()
        box_min = make_store(path)
        setup = time.perf_counter() - t0
        rows: list[dict[str, Any]] = []
        img, store = measure_open(rows, path)
        coarse = img.get_level(-1)
        bounds = measure(
            rows,
            f"find_tissue_bounds, level {LEVELS - 1} ({SIZE >> 5}^3)",
            store,
            coarse.find_tissue_bounds,
        )
        full_bounds = measure(
            rows, "map bounds to level 0", store, lambda: coarse.map_bounds_to_level(bounds, 0)
        )
        box_max = tuple(b + CROP for b in box_min)
        crop = measure(
            rows,
            f"crop level 0, {CROP}^3 (lazy)",
            store,
            lambda: img.get_level(0).crop(box_min, box_max),
        )
        data = measure(rows, f"compute crop {CROP}^3", store, crop.darr.compute)
        mask = measure(
            rows,
            f"tissue mask level {LEVELS - 1} -> upsample to 0 (lazy)",
            store,
            lambda: coarse.create_tissue_mask().upsample_to_level(0),
        )
        masked = measure(
            rows,
            f"compute upsampled mask, same {CROP}^3 box",
            store,
            lambda: mask.crop(box_min, box_max).darr.compute(),
        )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    assert data.shape == (CROP,) * 3 and masked.shape == (CROP,) * 3
    print(
        f"virtual {SIZE}^3 uint16 pyramid, {LEVELS} levels, {CHUNK}^3 chunks "
        f"(store written in {setup:.1f} s); tissue bounds at level {LEVELS - 1}: {bounds} "
        f"-> level 0: {full_bounds}; crop box {box_min}+{CROP}; "
        f"upsampled mask graph: {len(mask.darr.dask)} tasks; "
        f"scheduler: {dask.config.get('scheduler', 'threads')}\n"
    )
    print("| step | wall time (s) | peak RSS above start (MiB) | chunks read |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['step']} | {r['wall_s']:.3f} | {r['peak_mib']:.1f} | {r['chunks']} |")
    results = [
        {
            "case": r["step"],
            "tool": "napari-zarrnii",
            "metrics": {
                "wall_s": r["wall_s"],
                "peak_rss_mib": r["peak_mib"],
                "chunks": r["chunks"],
            },
        }
        for r in rows
    ]
    settings = {"size": SIZE, "levels": LEVELS, "chunk": CHUNK, "crop": CROP}
    saved = save_results("roi", results, settings, out=args.json, provisional=args.provisional)
    print(f"\nresults: {saved}")


def measure_open(rows: list[dict[str, Any]], path: Path) -> tuple[ZarrNii, CountingStore]:
    t0 = time.perf_counter()
    with PeakRSS() as rss:
        img, store = open_counted(path)
    rows.append(
        {
            "step": "open (metadata only)",
            "wall_s": time.perf_counter() - t0,
            "peak_mib": (rss.peak - rss.start) / 2**20,
            "chunks": store.reads,
        }
    )
    return img, store


if __name__ == "__main__":
    main()
