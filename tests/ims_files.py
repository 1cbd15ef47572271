"""Small Imaris (.ims) files written with h5py in Imaris' own layout, for the tests.

Attributes are arrays of single characters, ``Data`` datasets are padded up to whole
chunks with a fill value that must never be shown, and the real size of each level is
in the ``ImageSizeX/Y/Z`` attributes of its channel groups, as Imaris writes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: Value of the padding voxels: a reader that shows it is wrong.
PAD = 9999


def chars(value: Any) -> np.ndarray:
    """An attribute value the way Imaris stores it: one byte string per character."""
    return np.frombuffer(str(value).encode("utf-8") or b"\0", dtype="S1")


def voxels(t: int, c: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Level-0 voxels of one time point and channel: every voxel distinct."""
    z, y, x = np.indices(shape)
    return (1000 * t + 100 * c + (z * shape[1] + y) * shape[2] + x) % 9000


def write_ims(
    path: Path,
    *,
    shape: tuple[int, int, int] = (6, 20, 30),
    n_levels: int = 3,
    n_channels: int = 2,
    n_times: int = 2,
    voxel_size: tuple[float, float, float] = (2.0, 0.5, 0.25),
    ext_min: tuple[float, float, float] = (-10.0, 5.0, 100.0),
    chunks: tuple[int, int, int] = (4, 8, 16),
    dtype: Any = np.uint16,
    names: tuple[str, ...] = ("DAPI", "GFP"),
    colors: tuple[str, ...] = ("0.000 0.000 1.000", "0.000 1.000 0.000"),
    color_ranges: tuple[str | None, ...] = ("10.000 900.000", None),
    unit: str = "um",
    time_stamps: tuple[str, ...] = ("2024-01-01 10:00:00.000", "2024-01-01 10:00:30.000"),
    image_size_attrs: bool = True,
) -> list[np.ndarray]:
    """Write an Imaris file; returns every level as ``(t, c, z, y, x)`` (real size).

    ``ext_min`` and ``voxel_size`` are in (z, y, x) order; the file stores them as
    ``ExtMin0..2`` in (x, y, z).  Level ``r`` takes every ``2**r``-th voxel in y and x
    (and in z while planes are left), cut to ``n // 2**r`` voxels as Imaris does.
    """
    import h5py

    levels = []
    base = np.stack(
        [np.stack([voxels(t, c, shape) for c in range(n_channels)]) for t in range(n_times)]
    ).astype(dtype)
    sizes = []
    for r in range(n_levels):
        f = 2**r
        zf = f if shape[0] // f >= 1 else 2 ** int(np.log2(shape[0]))
        # Imaris halves sizes rounding down: n // 2 per level
        level = base[:, :, ::zf, ::f, ::f][
            :, :, : max(shape[0] // zf, 1), : shape[1] // f, : shape[2] // f
        ]
        levels.append(level)
        sizes.append(level.shape[2:])
    with h5py.File(path, "w") as h5:
        h5.attrs["ImarisDataSet"] = chars("ImarisDataSet")
        h5.attrs["ImarisVersion"] = chars("5.5.0")
        h5.attrs["DataSetDirectoryName"] = chars("DataSet")
        h5.attrs["DataSetInfoDirectoryName"] = chars("DataSetInfo")
        h5.attrs["NumberOfDataSets"] = np.array([1], dtype=np.uint32)
        for r, level in enumerate(levels):
            size = sizes[r]
            # whole chunks, even when a chunk is larger than the level
            padded = tuple(-(-n // k) * k for n, k in zip(size, chunks))
            for t in range(n_times):
                for c in range(n_channels):
                    group = h5.create_group(
                        f"DataSet/ResolutionLevel {r}/TimePoint {t}/Channel {c}"
                    )
                    stored = np.full(padded, PAD, dtype=dtype)
                    stored[: size[0], : size[1], : size[2]] = level[t, c]
                    group.create_dataset("Data", data=stored, chunks=chunks)
                    if image_size_attrs:
                        group.attrs["ImageSizeZ"] = chars(size[0])
                        group.attrs["ImageSizeY"] = chars(size[1])
                        group.attrs["ImageSizeX"] = chars(size[2])
                    group.attrs["HistogramMin"] = chars("0.000")
                    group.attrs["HistogramMax"] = chars("9000.000")
                    group.create_dataset("Histogram", data=np.zeros(256, np.uint64))
        image = h5.create_group("DataSetInfo/Image")
        for axis, index in (("X", 0), ("Y", 1), ("Z", 2)):
            zyx = 2 - index
            image.attrs[axis] = chars(shape[zyx])
            low = ext_min[zyx]
            image.attrs[f"ExtMin{index}"] = chars(f"{low:.6f}")
            image.attrs[f"ExtMax{index}"] = chars(f"{low + shape[zyx] * voxel_size[zyx]:.6f}")
        image.attrs["Unit"] = chars(unit)
        image.attrs["Name"] = chars("(name not specified)")
        for c in range(n_channels):
            group = h5.create_group(f"DataSetInfo/Channel {c}")
            group.attrs["Name"] = chars(names[c] if c < len(names) else "(name not specified)")
            if c < len(colors):
                group.attrs["Color"] = chars(colors[c])
            if c < len(color_ranges) and color_ranges[c] is not None:
                group.attrs["ColorRange"] = chars(color_ranges[c])
            group.attrs["ColorMode"] = chars("BaseColor")
        info = h5.create_group("DataSetInfo/TimeInfo")
        info.attrs["DatasetTimePoints"] = chars(n_times)
        info.attrs["FileTimePoints"] = chars(n_times)
        for t, stamp in enumerate(time_stamps[:n_times]):
            info.attrs[f"TimePoint{t + 1}"] = chars(stamp)
    return levels
