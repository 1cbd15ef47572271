"""Shared fixtures: small synthetic OME-Zarr stores written by hand (not by our writer).

Writing the metadata by hand, version by version, keeps the reader tests
independent of the package's own emitter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

AXES_5D = (
    ("t", "time", "second"),
    ("c", "channel", None),
    ("z", "space", "micrometer"),
    ("y", "space", "micrometer"),
    ("x", "space", "micrometer"),
)


def ramp(shape: tuple[int, ...], dtype: Any = "uint16") -> np.ndarray:
    """Data whose every voxel is distinct enough to catch axis or offset mistakes."""
    grids = np.indices(shape)
    weights = np.cumprod((1, *reversed(shape[1:])))[::-1]
    out = sum(g * w for g, w in zip(grids, weights))
    return (
        out % (np.iinfo(dtype).max if np.issubdtype(np.dtype(dtype), np.integer) else 1e6)
    ).astype(dtype)


def write_ngff_store(
    path: Path,
    *,
    version: str = "0.4",
    data: np.ndarray | None = None,
    axes: tuple[tuple[str, str | None, str | None], ...] | None = None,
    n_levels: int = 3,
    scale: tuple[float, ...] | None = None,
    translation: tuple[float, ...] | None = None,
    omero: dict | None = None,
    extra: dict | None = None,
    name: str | None = "test image",
) -> tuple[Path, list[np.ndarray]]:
    """Write an NGFF image by hand: 2x pyramid on spatial axes by striding."""
    data = ramp((2, 16, 32, 32)) if data is None else data
    ndim = data.ndim
    axes = axes or AXES_5D[-ndim:]
    scale = scale or tuple(1.0 for _ in range(ndim))
    translation = translation or tuple(0.0 for _ in range(ndim))
    zarr_format = 3 if version == "0.5" else 2
    kwargs: dict[str, Any] = {"zarr_format": zarr_format}
    root = zarr.open_group(str(path), mode="w", **kwargs)
    levels = []
    datasets = []
    spatial = [a[1] == "space" for a in axes]
    for i in range(n_levels):
        f = 2**i
        key = tuple(slice(None, None, f) if s else slice(None) for s in spatial)
        level = data[key]
        levels.append(level)
        arr_kwargs: dict[str, Any] = {}
        if zarr_format == 2:
            arr_kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        else:
            arr_kwargs["dimension_names"] = [a[0] for a in axes]
        chunks = tuple(min(16, n) if s else 1 for n, s in zip(level.shape, spatial))
        arr = root.create_array(
            str(i), shape=level.shape, dtype=level.dtype, chunks=chunks, **arr_kwargs
        )
        arr[...] = level
        lvl_scale = [s * f if sp else s for s, sp in zip(scale, spatial)]
        # striding keeps voxel 0: same translation at every level
        ds: dict[str, Any] = {"path": str(i)}
        if version >= "0.4":
            ds["coordinateTransformations"] = [{"type": "scale", "scale": lvl_scale}]
            if any(translation):
                ds["coordinateTransformations"].append(
                    {"type": "translation", "translation": list(translation)}
                )
        datasets.append(ds)
    ms: dict[str, Any] = {"datasets": datasets}
    if version >= "0.4":
        ms["axes"] = [
            {k: v for k, v in (("name", n), ("type", t), ("unit", u)) if v is not None}
            for n, t, u in axes
        ]
    elif version == "0.3":
        ms["axes"] = [a[0] for a in axes]
    if name:
        ms["name"] = name
    content: dict[str, Any] = {"multiscales": [ms]}
    if omero is not None:
        content["omero"] = omero
    if extra:
        content.update(extra)
    if version == "0.5":
        root.attrs["ome"] = {"version": "0.5", **content}
    else:
        ms["version"] = version
        root.attrs.update(content)
    return path, levels


@pytest.fixture
def ngff_store(tmp_path: Path):
    """Factory fixture: ``ngff_store(version=..., data=..., ...)`` -> (path, levels)."""
    counter = iter(range(1000))

    def make(**kwargs: Any) -> tuple[Path, list[np.ndarray]]:
        return write_ngff_store(tmp_path / f"img{next(counter)}.ome.zarr", **kwargs)

    return make
