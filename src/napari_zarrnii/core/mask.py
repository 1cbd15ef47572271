"""Tissue masks and bounds: Otsu thresholds, masks, nearest-neighbour resampling.

Everything is lazy (dask) except what must be computed to answer: a threshold (one
or two passes over the data) and a bounding box (one pass).  Run those on a coarse
level and carry the result to finer ones with :func:`resample_nearest`, which maps
voxels through physical space (scale and translation of both grids), so a mask lands
on the same tissue at every level.

Threshold convention (:func:`resolve_threshold`): ``None`` is Otsu's threshold of the
data; a float strictly between 0 and 1 on **integer** data is a fraction of the
data's range (``min + t * (max - min)``), so ``threshold=0.1`` means the same thing on
uint8 and uint16 images; any other value is an absolute intensity.  Voxels strictly
above the threshold are tissue.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from itertools import product
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from .._errors import NoTissueError
from .lazy import as_dask

__all__ = [
    "NoTissueError",
    "apply_mask",
    "find_tissue_bounds",
    "nearest_index_map",
    "resample_nearest",
    "resolve_threshold",
    "threshold_otsu",
    "tissue_bounds_and_threshold",
    "tissue_mask",
]

log = logging.getLogger(__name__)

#: Integer images whose value range is wider than this use a 256-bin histogram
#: (a bin per value would need too much memory).
_MAX_INTEGER_BINS = 2**20

#: Arrays up to this size are read once and kept in memory while bounds are found.
_PERSIST_BYTES = 256 * 2**20


# ---------------------------------------------------------------------------------
# thresholds
# ---------------------------------------------------------------------------------
def _histogram(data: Any, nbins: int, lo: Any, hi: Any) -> tuple[np.ndarray, np.ndarray]:
    """Counts and bin centres as ``skimage.exposure.histogram(source_range='image')``."""
    dtype = np.dtype(data.dtype)
    lazy = isinstance(data, da.Array)
    if dtype.kind in "iu" and int(hi) - int(lo) < _MAX_INTEGER_BINS:
        # one bin per integer value, like skimage's bincount histogram
        centers = np.arange(int(lo), int(hi) + 1)
        if lazy:
            edges = np.arange(int(lo), int(hi) + 2, dtype=np.float64) - 0.5
            counts, _ = da.histogram(data, bins=edges)
            return np.asarray(counts.compute()), centers
        flat = np.asarray(data).ravel().astype(np.int64) - int(lo)
        return np.bincount(flat, minlength=centers.size), centers
    if dtype.kind in "iu":
        log.info(
            "integer range %s-%s too wide for one bin per value; using %d bins", lo, hi, nbins
        )
    if lazy:
        # the same edges np.histogram computes for the whole array (dtype included)
        edges = np.histogram_bin_edges(np.asarray([lo, hi], dtype=dtype), bins=nbins)
        counts, _ = da.histogram(data, bins=nbins, range=(lo.item(), hi.item()))
        counts = np.asarray(counts.compute())
    else:
        counts, edges = np.histogram(np.asarray(data).ravel(), bins=nbins)
    return counts, (edges[:-1] + edges[1:]) / 2.0


def threshold_otsu(array: Any, nbins: int = 256) -> float:
    """Otsu's threshold of an array (numpy, dask or any array-like).

    Same histogram and arithmetic as :func:`skimage.filters.threshold_otsu`: one bin
    per integer value for integer data (256 bins when the range exceeds 2**20
    values), ``nbins`` equal bins between the minimum and the maximum for float data.
    Dask arrays are reduced chunk by chunk (two passes: range, then histogram), never
    loaded whole.

    Parameters
    ----------
    array
        Intensities; NaNs are not supported.
    nbins
        Number of bins for float data.

    Returns
    -------
    float
        The threshold; voxels strictly above it are foreground.  For a constant array
        the constant.
    """
    data = array if isinstance(array, da.Array) else np.asarray(array)
    if data.size == 0:
        raise ValueError("threshold_otsu needs a non-empty array")
    if isinstance(data, da.Array):
        if data.nbytes <= _PERSIST_BYTES:  # read a small (coarse) array once, not twice
            data = data.persist()
        lo, hi = (np.asarray(v) for v in da.compute(data.min(), data.max()))
    else:
        lo, hi = np.asarray(data.min()), np.asarray(data.max())
    if lo == hi:
        return float(lo)
    counts, centers = _histogram(data, nbins, lo, hi)
    if counts[0] == 0 or counts[-1] == 0:  # skimage trims empty ends of its histogram
        nz = np.flatnonzero(counts)
        counts, centers = counts[nz[0] : nz[-1] + 1], centers[nz[0] : nz[-1] + 1]
    counts = counts.astype(np.float32, copy=False)
    weight1 = np.cumsum(counts)
    weight2 = np.cumsum(counts[::-1])[::-1]
    mean1 = np.cumsum(counts * centers) / weight1
    mean2 = (np.cumsum((counts * centers)[::-1]) / weight2[::-1])[::-1]
    variance12 = weight1[:-1] * weight2[1:] * (mean1[:-1] - mean2[1:]) ** 2
    return float(centers[int(np.argmax(variance12))])


def resolve_threshold(data: Any, threshold: float | None) -> float:
    """The absolute intensity a ``threshold`` argument stands for (module docstring).

    Parameters
    ----------
    data
        The intensities the threshold applies to.
    threshold
        None for Otsu; a float in (0, 1) on integer data for a fraction of the data
        range; anything else as an absolute value.

    Returns
    -------
    float
    """
    if threshold is None:
        value = threshold_otsu(data)
        log.info("Otsu threshold: %g", value)
        return value
    t = float(threshold)
    if not math.isfinite(t):
        raise ValueError(f"threshold must be a finite number, not {threshold!r}")
    is_fraction = isinstance(threshold, (float, np.floating)) and 0.0 < t < 1.0
    if is_fraction and np.dtype(data.dtype).kind in "iu":
        x = as_dask(data)
        lo, hi = (float(v) for v in da.compute(x.min(), x.max()))
        value = lo + t * (hi - lo)
        log.info("threshold %g of the data range %g-%g: %g", t, lo, hi, value)
        return value
    return t


# ---------------------------------------------------------------------------------
# masks
# ---------------------------------------------------------------------------------
def tissue_mask(
    data: Any, threshold: float | None = None, channel_axis: int | None = None
) -> tuple[da.Array, float]:
    """A lazy uint8 mask (1 = tissue) and the absolute threshold used.

    Parameters
    ----------
    data
        Intensities.
    threshold
        See :func:`resolve_threshold`.
    channel_axis
        If given, the channels are reduced by their maximum first (a voxel is tissue
        when any channel is above the threshold) and the axis is dropped.

    Returns
    -------
    (mask, threshold)
    """
    x = as_dask(data)
    if channel_axis is not None:
        x = x.max(axis=channel_axis)
    value = resolve_threshold(x, threshold)
    return (x > value).astype(np.uint8), value


def find_tissue_bounds(
    data: Any,
    threshold: float | None = None,
    spatial_axes: Sequence[int] | None = None,
) -> list[tuple[int, int]]:
    """Bounding box of the voxels above a threshold, one ``(min, max)`` per spatial axis.

    :func:`tissue_bounds_and_threshold` gives the absolute threshold used too.

    Parameters
    ----------
    data
        Intensities (all non-spatial axes are reduced: tissue in any channel or time
        point counts).
    threshold
        See :func:`resolve_threshold`.
    spatial_axes
        Axes to bound (default: all).

    Returns
    -------
    list of (int, int)
        Voxel indices of ``data``, ``max`` exclusive, in array order.

    Raises
    ------
    NoTissueError
        No voxel is above the threshold.
    """
    return tissue_bounds_and_threshold(data, threshold, spatial_axes)[0]


def tissue_bounds_and_threshold(
    data: Any,
    threshold: float | None = None,
    spatial_axes: Sequence[int] | None = None,
) -> tuple[list[tuple[int, int]], float]:
    """:func:`find_tissue_bounds`, and the absolute threshold it used (Otsu's, say)."""
    x = as_dask(data)
    axes = tuple(range(x.ndim)) if spatial_axes is None else tuple(spatial_axes)
    if x.nbytes <= _PERSIST_BYTES:
        # a coarse level: read it once, not once per pass (range, histogram, bounds)
        x = x.persist()
    value = resolve_threshold(x, threshold)
    fg = x > value
    other = tuple(i for i in range(x.ndim) if i not in axes)
    if other:
        fg = fg.any(axis=other)
    projections = [fg.any(axis=tuple(j for j in range(fg.ndim) if j != i)) for i in range(fg.ndim)]
    bounds = []
    for i, proj in enumerate(da.compute(*projections)):
        hits = np.flatnonzero(np.asarray(proj))
        if hits.size == 0:
            raise NoTissueError(
                f"no voxel above the threshold {value:g} (axis {axes[i]}); "
                "lower the threshold or check the level"
            )
        bounds.append((int(hits[0]), int(hits[-1]) + 1))
    return bounds, value


def nearest_index_map(
    src_size: int,
    src_scale: float,
    src_translation: float,
    dst_size: int,
    dst_scale: float,
    dst_translation: float,
) -> np.ndarray:
    """For every voxel of a target grid, the nearest source voxel index, or -1 outside.

    Target voxel ``j`` is centred at ``dst_translation + j * dst_scale``; the source
    voxel containing that point is ``floor((p - src_translation) / src_scale + 1/2)``.
    Points outside the source's voxel edges get -1 (background), not the edge voxel.

    Returns
    -------
    numpy.ndarray of int64, length ``dst_size``, non-decreasing where not -1.
    """
    centres = dst_translation + np.arange(dst_size, dtype=np.float64) * dst_scale
    pos = (centres - src_translation) / src_scale + 0.5
    rounded = np.round(pos)
    pos = np.where(np.abs(pos - rounded) < 1e-9, rounded, pos)
    idx = np.floor(pos).astype(np.int64)
    idx[(idx < 0) | (idx >= src_size)] = -1
    return idx


def _resample_block(blocks: Any, local: list[np.ndarray], dtype: Any) -> np.ndarray:
    region = np.block(blocks) if isinstance(blocks, list) else blocks
    valid = [ix >= 0 for ix in local]
    safe = [np.where(v, ix, 0) for v, ix in zip(valid, local)]
    out = np.asarray(region)[np.ix_(*safe)].astype(dtype, copy=False)
    if not all(v.all() for v in valid):
        keep = np.ones(out.shape, dtype=bool)
        for axis, v in enumerate(valid):
            shape = [1] * out.ndim
            shape[axis] = v.size
            keep &= v.reshape(shape)
        out = np.where(keep, out, np.zeros((), dtype))
    return out


def _nested_keys(name: str, ranges: Sequence[range], prefix: tuple[int, ...]) -> Any:
    """Keys of the blocks in ``ranges`` as nested lists (the layout np.block takes)."""
    if len(prefix) == len(ranges):
        return (name, *prefix)
    return [_nested_keys(name, ranges, (*prefix, i)) for i in ranges[len(prefix)]]


def resample_nearest(
    src: Any,
    index_maps: Sequence[np.ndarray | None],
    out_chunks: Sequence[int] | None = None,
) -> da.Array:
    """Lazily resample an array with per-axis nearest-neighbour index maps.

    Parameters
    ----------
    src
        Source array (made a dask array with :func:`~.lazy.as_dask`).
    index_maps
        Per axis, the source index of every output voxel (-1 for background, see
        :func:`nearest_index_map`), or None to keep the axis as it is.
    out_chunks
        Output chunk shape (default: the source's chunk shape).

    Returns
    -------
    dask.array.Array
        One task per output chunk, each reading only the source chunks it needs; the
        graph has as many tasks as output chunks, independent of the source size.
    """
    x = as_dask(src)
    maps = [
        np.arange(n, dtype=np.int64) if m is None else np.asarray(m, dtype=np.int64)
        for n, m in zip(x.shape, index_maps)
    ]
    if len(maps) != x.ndim:
        raise ValueError(f"need {x.ndim} index maps, got {len(maps)}")
    default = tuple(max(c[0] if c else 1, 1) for c in x.chunks)
    size = tuple(max(int(c), 1) for c in (out_chunks or default))
    chunks = tuple(
        tuple(min(c, len(m) - s) for s in range(0, len(m), c)) or (0,) for m, c in zip(maps, size)
    )
    bounds = [np.concatenate([[0], np.cumsum(c)]) for c in x.chunks]
    name = "zarrnii-resample-" + tokenize(x.name, [m.tobytes() for m in maps], chunks)
    # the output grid is a product of per-axis chunks: plan each axis once
    plans: list[list[tuple[range, np.ndarray] | None]] = []
    for axis, m in enumerate(maps):
        edges = bounds[axis]
        axis_plan: list[tuple[range, np.ndarray] | None] = []
        start = 0
        for size_b in chunks[axis]:
            part = m[start : start + size_b]
            start += size_b
            good = part[part >= 0]
            if good.size == 0:
                axis_plan.append(None)  # all background along this axis
                continue
            first = int(np.searchsorted(edges, good.min(), side="right")) - 1
            last = int(np.searchsorted(edges, good.max(), side="right")) - 1
            local = np.where(part >= 0, part - edges[first], -1)
            axis_plan.append((range(first, last + 1), local))
        plans.append(axis_plan)
    dsk: dict[Any, Any] = {}
    for block in product(*(range(len(c)) for c in chunks)):
        parts = [plans[a][b] for a, b in enumerate(block)]
        if any(p is None for p in parts):
            shape = tuple(chunks[a][b] for a, b in enumerate(block))
            dsk[(name,) + block] = (np.zeros, shape, x.dtype)  # noqa: RUF005 (3.10 syntax)
            continue
        ranges = [p[0] for p in parts]  # type: ignore[index]
        locals_ = [p[1] for p in parts]  # type: ignore[index]
        dsk[(name,) + block] = (  # noqa: RUF005 (3.10 syntax)
            _resample_block,
            _nested_keys(x.name, ranges, ()),
            locals_,
            x.dtype,
        )
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[x])  # type: ignore[list-item]
    return da.Array(
        graph, name, chunks=chunks, dtype=x.dtype, meta=np.empty((0,) * x.ndim, x.dtype)
    )


def apply_mask(data: Any, mask: Any, mask_axes_in_data: Sequence[int]) -> da.Array:
    """``data`` where ``mask`` is non-zero, 0 elsewhere (lazy, dtype kept).

    Parameters
    ----------
    data
        The image.
    mask
        The mask, on the same grid for the axes it has.
    mask_axes_in_data
        For each mask axis, the data axis it corresponds to (in increasing order);
        the mask is broadcast over the other data axes (e.g. channels).
    """
    x = as_dask(data)
    m = as_dask(mask)
    positions = list(mask_axes_in_data)
    if sorted(positions) != positions:
        raise ValueError("mask axes must be in the same order as the data axes")
    if len(positions) != m.ndim:
        raise ValueError(f"mask has {m.ndim} axes, {len(positions)} positions given")
    for mask_axis, data_axis in enumerate(positions):
        if m.shape[mask_axis] not in (1, x.shape[data_axis]):
            raise ValueError(
                f"mask axis {mask_axis} has {m.shape[mask_axis]} voxels, data axis "
                f"{data_axis} has {x.shape[data_axis]}"
            )
    key = tuple(slice(None) if a in positions else None for a in range(x.ndim))
    m = m[key]
    return da.where(m.astype(bool), x, np.zeros((), x.dtype))
