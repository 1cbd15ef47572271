"""Test data for ``bench_browse.py``: OME-Zarr volumes and a 96-well plate.

Written with the tools the peers use (``zarr`` directly for the volumes, ome-zarr-py
for the plate), never with napari-zarrnii, into a cache directory that later runs
reuse (a ``bench-data.json`` marker next to each store records what was written).

Volumes: 2 channels, uint16, 64^3 chunks, a full 2x pyramid down to 256^3, with
NGFF 0.4 (zarr v2) or NGFF 0.5 (zarr v3) metadata and an ``omero`` window.  Voxel
values are a smooth pattern (products of cosines, a few hundred voxels per period)
plus uniform noise, never 0: every written chunk costs a real decode, and a 0 in a
displayed slice means a missing chunk was read.

A 1024^3 volume is written completely.  A 4096^3 volume (256 GiB raw) is written
only where the browse benchmark looks; everything else is missing (fill value 0):

* z: level-0 planes ``[n/2 - 64, n/2 + 128)`` (napari opens at ``z = n/2``; the
  benchmark steps 20 planes up from there; one chunk of margin on each side);
* y, x: the whole plane at every level whose plane is at most 1024 wide (the
  out-zoomed view and napari's thumbnail use these), otherwise a band of level-0
  rows ``[n/2 - 512, n/2 + 512)`` across the whole width (the zoomed-in view
  at the centre and the pan across the plane).

Each box is widened to whole chunks at every level.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import zarr

CHUNK = 64
CHANNELS = 2
MIN_LEVEL_SIZE = 256
FULL_PLANE_MAX = 1024  # levels with a plane at most this wide are written whole (sparse)
DATA_VERSION = 1  # bump when the generated data change, to regenerate caches
WINDOW = {"start": 100, "end": 3500, "min": 0, "max": 65535}
COLORS = ("00FF00", "FF00FF")
# per channel: (amplitude, wave numbers for z, y, x, phases) of two plaid terms
PATTERNS = (
    (
        (350.0, (0.011, 0.019, 0.015), (1.0, 0.5, 2.0)),
        (120.0, (0.047, 0.041, 0.057), (0.0, 1.0, 0.3)),
    ),
    (
        (300.0, (0.017, 0.013, 0.023), (0.2, 2.1, 1.1)),
        (150.0, (0.035, 0.061, 0.029), (1.7, 0.4, 2.6)),
    ),
)


def volume_levels(size: int) -> int:
    """Levels of a 2x pyramid from ``size`` down to at most MIN_LEVEL_SIZE."""
    return 1 + max(0, math.ceil(math.log2(size / MIN_LEVEL_SIZE)))


def _codec(zarr_format: int) -> dict[str, Any]:
    # Blosc zstd with byte shuffle, as ome-zarr-py writes; level 3 writes ~3x faster
    # than its level 5 and decodes at the same speed (zstd decoding does not depend
    # on the level), so reading costs what it costs in the wild.
    if zarr_format == 2:
        from numcodecs import Blosc

        return {"compressors": Blosc(cname="zstd", clevel=3, shuffle=Blosc.SHUFFLE)}
    from zarr.codecs import BloscCodec

    return {"compressors": BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")}


def pattern(channel: int, level: int, box: tuple[slice, slice, slice], seed: int) -> np.ndarray:
    """uint16 voxels of ``box`` (level coordinates) of one channel at ``level``.

    The smooth part is evaluated at the level-0 position of each voxel centre, so
    every level shows the same structures; noise shrinks with the level (averaging)."""
    f = 2**level
    z, y, x = ((np.arange(s.start, s.stop, dtype=np.float32) + 0.5) * f - 0.5 for s in box)
    (a1, k1, p1), (a2, k2, p2) = PATTERNS[channel]
    zy1 = (1 + np.cos(z * k1[0] + p1[0]))[:, None] * (1 + np.cos(y * k1[1] + p1[1]))[None, :]
    zy2 = (1 + np.cos(z * k2[0] + p2[0]))[:, None] * (1 + np.cos(y * k2[1] + p2[1]))[None, :]
    smooth = (zy1 * a1)[:, :, None] * (1 + np.cos(x * k1[2] + p1[2]))
    smooth += (zy2 * a2)[:, :, None] * (1 + np.cos(x * k2[2] + p2[2]))
    out = smooth.astype(np.uint16)
    del smooth
    rng = np.random.default_rng([seed, channel, level, box[0].start, box[1].start, box[2].start])
    out += rng.integers(0, max(16, 128 >> level), size=out.shape, dtype=np.uint16)
    out += 100
    return out


def written_box(size: int, level: int, *, sparse: bool) -> tuple[slice, slice, slice]:
    """Box of ``level`` (level coordinates, whole chunks) that holds data."""
    n = max(1, size >> level)
    if not sparse:
        return (slice(0, n),) * 3
    f = 2**level

    def span(lo0: int, hi0: int) -> slice:
        lo = (lo0 // f) // CHUNK * CHUNK
        hi = -(-math.ceil(hi0 / f) // CHUNK) * CHUNK
        return slice(max(0, lo), min(n, hi))

    c = size // 2
    z = span(c - CHUNK, c + 2 * CHUNK)
    yx = slice(0, n)
    y = yx if n <= FULL_PLANE_MAX else span(c - 512, c + 512)
    return (z, y, yx)


def _blocks(box: tuple[slice, ...], block: tuple[int, int, int]) -> Iterator[tuple[slice, ...]]:
    for z in range(box[0].start, box[0].stop, block[0]):
        for y in range(box[1].start, box[1].stop, block[1]):
            for x in range(box[2].start, box[2].stop, block[2]):
                yield (
                    slice(z, min(z + block[0], box[0].stop)),
                    slice(y, min(y + block[1], box[1].stop)),
                    slice(x, min(x + block[2], box[2].stop)),
                )


def _multiscales(levels: int, name: str) -> tuple[list[dict], list[dict]]:
    axes: list[dict[str, str]] = [{"name": "c", "type": "channel"}]
    axes += [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    datasets = []
    for i in range(levels):
        f = float(2**i)
        datasets.append(
            {
                "path": str(i),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [1.0, f, f, f]},
                    {"type": "translation", "translation": [0.0] + [(f - 1) / 2] * 3},
                ],
            }
        )
    return axes, datasets


def _omero(name: str, default_z: int) -> dict[str, Any]:
    return {
        "name": name,
        "channels": [
            {
                "label": f"ch{i}",
                "color": COLORS[i],
                "active": True,
                "coefficient": 1.0,
                "family": "linear",
                "inverted": False,
                "window": dict(WINDOW),
            }
            for i in range(CHANNELS)
        ],
        "rdefs": {"defaultZ": default_z, "model": "color"},
    }


def count_chunks(path: Path, level: int | str, zarr_format: int) -> int:
    """Chunk files of one level (array path) on disk."""
    root = path / str(level)
    if zarr_format == 3:
        root = root / "c"
        return sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0
    return sum(1 for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def _marker(path: Path) -> Path:
    return path.parent / (path.name + ".bench-data.json")


def load_marker(path: Path, spec: dict[str, Any]) -> dict[str, Any] | None:
    """The marker of a store written for ``spec``, else None (missing or stale)."""
    marker = _marker(path)
    if not (marker.exists() and path.exists()):
        return None
    info = json.loads(marker.read_text())
    return info if info.get("spec") == spec else None


def write_volume(
    path: Path, size: int, zarr_format: int, *, sparse: bool, log=print
) -> dict[str, Any]:
    """Write (or reuse) a 2-channel uint16 pyramid; return what was written."""
    spec = {
        "kind": "volume",
        "size": size,
        "zarr_format": zarr_format,
        "sparse": sparse,
        "chunk": CHUNK,
        "version": DATA_VERSION,
    }
    if (info := load_marker(path, spec)) is not None:
        return info
    t0 = time.perf_counter()
    levels = volume_levels(size)
    log(
        f"writing {path} ({size}^3, zarr v{zarr_format}, {levels} levels, "
        f"{'sparse' if sparse else 'complete'}) ..."
    )
    root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    extra: dict[str, Any] = _codec(zarr_format)
    if zarr_format == 2:
        extra["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    else:
        extra["dimension_names"] = ["c", "z", "y", "x"]
    arrays = []
    for i in range(levels):
        n = size >> i
        arrays.append(
            root.create_array(
                str(i),
                shape=(CHANNELS, n, n, n),
                chunks=(1, CHUNK, CHUNK, CHUNK),
                dtype="uint16",
                fill_value=0,
                **extra,
            )
        )
    axes, datasets = _multiscales(levels, path.name)
    name = path.name.removesuffix(".ome.zarr")
    if zarr_format == 2:
        root.attrs["multiscales"] = [
            {"version": "0.4", "name": name, "axes": axes, "datasets": datasets}
        ]
        root.attrs["omero"] = {"version": "0.4", **_omero(name, size // 2)}
    else:
        root.attrs["ome"] = {
            "version": "0.5",
            "multiscales": [{"name": name, "axes": axes, "datasets": datasets}],
            "omero": _omero(name, size // 2),
        }

    def write_block(job: tuple[int, int, tuple[slice, ...]]) -> None:
        level, channel, box = job
        arrays[level][(channel, *box)] = pattern(channel, level, box, seed=size)

    jobs = [
        (lvl, ch, box)
        for lvl in range(levels)
        for ch in range(CHANNELS)
        for box in _blocks(written_box(size, lvl, sparse=sparse), (CHUNK, 1024, 1024))
    ]
    done = 0
    with ThreadPoolExecutor(2) as pool:
        for _ in pool.map(write_block, jobs):
            done += 1
            if done % 16 == 0 or done == len(jobs):
                log(f"  {done}/{len(jobs)} blocks, {time.perf_counter() - t0:.0f} s")
    per_level = []
    for i in range(levels):
        box = written_box(size, i, sparse=sparse)
        expected = CHANNELS * math.prod(-(-(s.stop - s.start) // CHUNK) for s in box)
        on_disk = count_chunks(path, i, zarr_format)
        total = CHANNELS * (-(-(size >> i) // CHUNK)) ** 3
        if on_disk != expected:
            raise RuntimeError(f"{path}/{i}: {on_disk} chunks on disk, expected {expected}")
        per_level.append(
            {
                "level": i,
                "shape": [CHANNELS] + [size >> i] * 3,
                "chunks_written": on_disk,
                "chunks_total": total,
                "box": [[s.start, s.stop] for s in box],
            }
        )
    info = {
        "spec": spec,
        "levels": per_level,
        "seconds": round(time.perf_counter() - t0, 1),
        "bytes_on_disk": sum(p.stat().st_size for p in path.rglob("*") if p.is_file()),
    }
    _marker(path).write_text(json.dumps(info, indent=1))
    return info


PLATE_ROWS = "ABCDEFGH"
PLATE_COLS = 12
PLATE_SIZE = 512
PLATE_LEVELS = 4


def write_plate(path: Path, *, log=print) -> dict[str, Any]:
    """Write (or reuse) a 96-well plate with ome-zarr-py: one field per well,
    2 channels, 512x512 uint16, 4 levels (ome-zarr-py's current format, NGFF 0.5)."""
    spec = {
        "kind": "plate",
        "wells": 96,
        "size": PLATE_SIZE,
        "levels": PLATE_LEVELS,
        "version": DATA_VERSION,
    }
    if (info := load_marker(path, spec)) is not None:
        return info
    import dask.array as da
    from ome_zarr.scale import Methods
    from ome_zarr.writer import write_image, write_plate_metadata, write_well_metadata

    t0 = time.perf_counter()
    log(f"writing {path} (96-well plate with ome-zarr-py) ...")
    root = zarr.open_group(str(path), mode="w")
    cols = [str(c) for c in range(1, PLATE_COLS + 1)]
    wells = [f"{r}/{c}" for r in PLATE_ROWS for c in cols]
    write_plate_metadata(root, list(PLATE_ROWS), cols, wells, field_count=1, name="plate96")
    omero = _omero("plate96", 0)
    for k, well_path in enumerate(wells):
        r, c = well_path.split("/")
        well = root.require_group(r).require_group(c)
        write_well_metadata(well, [{"path": "0"}])
        box = (slice(0, 1), slice(0, PLATE_SIZE), slice(0, PLATE_SIZE))
        planes = [pattern(ch, 0, box, seed=1000 + k)[0] for ch in range(CHANNELS)]
        image = da.from_array(np.stack(planes), chunks=(1, PLATE_SIZE, PLATE_SIZE))
        write_image(
            image,
            well.require_group("0"),
            scale_factors=(2, 4, 8),
            axes="cyx",
            method=Methods.LOCAL_MEAN,
            omero=omero,
        )
    chunks = [
        sum(count_chunks(path / w / "0", f"s{i}", root.metadata.zarr_format) for w in wells)
        for i in range(PLATE_LEVELS)
    ]
    if not all(chunks):
        raise RuntimeError(f"{path}: a level has no chunks on disk ({chunks})")
    levels = [{"level": i, "chunks_written": n} for i, n in enumerate(chunks)]
    info = {
        "spec": spec,
        "levels": levels,
        "seconds": round(time.perf_counter() - t0, 1),
        "bytes_on_disk": sum(p.stat().st_size for p in path.rglob("*") if p.is_file()),
    }
    _marker(path).write_text(json.dumps(info, indent=1))
    return info
