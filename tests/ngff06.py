"""Hand-written OME-NGFF 0.6 stores (RFC-5 coordinate systems), for the reader tests.

Written with zarr directly and JSON spelled out here, so the tests do not depend on
the package's own emitter.  :func:`world_point` maps a voxel with numpy straight
from that JSON, independently of ``core/transforms.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

__all__ = ["dataset_transform", "io", "world_point", "write_ngff06_store", "write_parameters"]

AXES = {
    "t": {"name": "t", "type": "time", "unit": "second"},
    "c": {"name": "c", "type": "channel"},
    "z": {"name": "z", "type": "space", "unit": "micrometer"},
    "y": {"name": "y", "type": "space", "unit": "micrometer"},
    "x": {"name": "x", "type": "space", "unit": "micrometer"},
}


def io(src: str, dst: str, *, src_path: str | None = None, dst_path: str | None = None) -> dict:
    """``input``/``output`` naming systems (``path`` for another group's)."""
    out: dict[str, Any] = {"input": {"name": src}, "output": {"name": dst}}
    if src_path:
        out["input"]["path"] = src_path
    if dst_path:
        out["output"]["path"] = dst_path
    return out


def dataset_transform(
    path: str, scale: Sequence[float], translation: Sequence[float] | None, system: str
) -> dict[str, Any]:
    """A dataset's transformation as 0.6 spells it: scale, or sequence[scale, translation]."""
    ends = {"input": {"path": path}, "output": {"name": system}}
    if translation is None or not any(translation):
        return {"type": "scale", "scale": list(scale), **ends}
    return {
        "type": "sequence",
        **ends,
        "transformations": [
            {"type": "scale", "scale": list(scale)},
            {"type": "translation", "translation": list(translation)},
        ],
    }


def write_ngff06_store(
    path: Path,
    *,
    data: np.ndarray,
    axes: str = "zyx",
    n_levels: int = 2,
    scale: Sequence[float] | None = None,
    translation: Sequence[float] | None = None,
    intrinsic: str = "intrinsic",
    axis_extra: dict[str, dict[str, Any]] | None = None,
    systems: Sequence[dict[str, Any]] = (),
    transforms: Sequence[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    version: str = "0.6",
    name: str | None = "image06",
) -> tuple[Path, list[np.ndarray], dict[str, Any]]:
    """Write a 0.6 image: a 2x striding pyramid on spatial axes, zarr v3.

    Level ``k`` has scale ``scale * 2**k`` on spatial axes and translation
    ``translation + (2**k - 1) / 2 * scale`` there (voxel centres of a block),
    as the 0.6 text recommends.  ``systems`` are added after the intrinsic one,
    ``transforms`` become the multiscale's ``coordinateTransformations``.

    Returns the path, the level arrays and the multiscales entry as written.
    """
    ndim = data.ndim
    names = list(axes)
    assert len(names) == ndim
    scale = list(scale or [1.0] * ndim)
    translation = list(translation or [0.0] * ndim)
    spatial = [AXES[n]["type"] == "space" for n in names]
    axes_json = [dict(AXES[n], **(axis_extra or {}).get(n, {})) for n in names]
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    levels, datasets = [], []
    for k in range(n_levels):
        f = 2**k
        key = tuple(slice(None, None, f) if s else slice(None) for s in spatial)
        level = np.ascontiguousarray(data[key])
        levels.append(level)
        chunks = tuple(min(16, n) if s else 1 for n, s in zip(level.shape, spatial))
        arr = root.create_array(
            f"s{k}", shape=level.shape, dtype=level.dtype, chunks=chunks, dimension_names=names
        )
        arr[...] = level
        lvl_scale = [v * f if s else v for v, s in zip(scale, spatial)]
        lvl_shift = [
            t + (f - 1) / 2 * v if s else t for v, t, s in zip(scale, translation, spatial)
        ]
        datasets.append(
            {
                "path": f"s{k}",
                "coordinateTransformations": [
                    dataset_transform(
                        f"s{k}", lvl_scale, lvl_shift if k or any(translation) else None, intrinsic
                    )
                ],
            }
        )
    ms: dict[str, Any] = {
        "coordinateSystems": [{"name": intrinsic, "axes": axes_json}, *systems],
        "datasets": datasets,
    }
    if transforms:
        ms["coordinateTransformations"] = list(transforms)
    if name:
        ms["name"] = name
    content: dict[str, Any] = {"version": version, "multiscales": [ms]}
    content.update(extra or {})
    root.attrs["ome"] = content
    return path, levels, ms


def write_parameters(root: Path, path: str, values: np.ndarray) -> None:
    """Store a transformation's parameters (a matrix) as a zarr array under ``root``."""
    group = zarr.open_group(str(root), mode="a", zarr_format=3)
    arr = group.create_array(path, shape=values.shape, dtype="float64", chunks=values.shape)
    arr[...] = values


# -- the same maths, straight from the JSON -----------------------------------------------------


def _apply(t: dict[str, Any], p: np.ndarray) -> np.ndarray:
    kind = t["type"]
    if kind == "identity":
        return p
    if kind == "scale":
        return p * np.asarray(t["scale"], float)
    if kind == "translation":
        return p + np.asarray(t["translation"], float)
    if kind == "affine":
        a = np.asarray(t["affine"], float)
        return a[:, :-1] @ p + a[:, -1]
    if kind == "rotation":
        return np.asarray(t["rotation"], float) @ p
    if kind == "mapAxis":
        return np.array([p[i] for i in t["mapAxis"]])
    if kind == "sequence":
        for member in t["transformations"]:
            p = _apply(member, p)
        return p
    if kind == "byDimension":
        out = np.zeros(len(p))
        for item in t["transformations"]:
            sub = _apply(item["transformation"], p[item["inputAxes"]])
            out[item["outputAxes"]] = sub
        return out
    raise NotImplementedError(kind)


def world_point(
    ms: dict[str, Any], level: int, index: Sequence[float], chain: Sequence[dict] = ()
) -> np.ndarray:
    """Where voxel ``index`` of ``level`` lands: its dataset transform, then ``chain``."""
    p = np.asarray(index, dtype=float)
    for t in ms["datasets"][level]["coordinateTransformations"]:
        p = _apply(t, p)
    for t in chain:
        p = _apply(t, p)
    return p
