"""Out-of-core pyramids: plan, downsample block by block, write OME-Zarr.

Plan, preview and write are kept apart:

* :func:`plan_pyramid` describes the levels to write (shape, factors, scale,
  translation, chunks, shards, size) without touching any data; the preview table of
  a widget is :meth:`PyramidPlan.table`.
* :func:`downsample_block` reduces one numpy block (``local_mean``, ``mode``,
  ``nearest``, ``max``, ``min``).
* :func:`write_pyramid` streams level 0 from the source in chunk-aligned blocks, then
  builds every next level from the previous level *as written on disk*, block by block,
  in a thread pool with a bounded number of blocks in flight: peak memory is about
  ``block size x workers``, whatever the image size.  A block of level k+1 starts as
  soon as the blocks of level k it reads are written, so levels overlap.
  :func:`write_levels` writes the levels of an existing multiscale image as they are.

A block is one output chunk (one shard when sharding), grouped up to ~1 MiB of input
when chunks are small; with a chunked source (dask, zarr) whose chunks are multiples of
the output chunks, level-0 blocks grow to whole source chunks so that none is computed
twice.  Source chunks that do not line up with the output chunks are read once per
output block that overlaps them: rechunk such a dask source to the output chunks.
Blocks that are entirely 0 (the fill value) are not written.

Conventions (documented once, here):

Factors
    ``downsample_factors`` and ``chunks`` follow the array's own axis order.  Factors
    apply to spatial axes only (time and channel axes are never downsampled).  Automatic
    factors first make anisotropic voxels near-isotropic (only axes finer than the
    coarsest by more than :math:`\\sqrt 2` shrink by 2), then shrink every spatial axis
    by 2.  An axis of one voxel is never shrunk and a factor larger than the axis is
    clipped to the axis size.  Planning stops early (fewer levels than asked) when no
    axis can shrink any more; the reason is logged.
Partial blocks
    An output axis has ``ceil(n / f)`` voxels; the last block along an axis uses the
    voxels present (its mean is the mean of those voxels).
Scale and translation
    ``scale_new = scale * f``.  Block reductions (``local_mean``, ``mode``, ``max``,
    ``min``) place the new voxel at the centre of its block:
    ``translation_new = translation + (f - 1) / 2 * scale``.  ``nearest`` keeps element 0
    of each block, so the translation does not change.
Rounding
    ``local_mean`` of integer data sums exactly in a wide integer type and rounds half to
    even (as :func:`numpy.rint`, unbiased over many levels): never truncated, never
    overflowing.  Float data is averaged in float64 and stored in its own dtype.
Labels
    Label images use a label-safe method: ``mode`` (default; most frequent value of a
    block, ties to the smallest, never a value absent from the block) or ``nearest``.
    Any other method asked for a label image falls back to ``mode`` with a logged
    warning (the facade passes one ``scaling_method`` for an image and its labels).
    A label image given as the image itself (``image.is_label``) is written as a
    multiscale image with ``image-label`` metadata at the root and no ``omero``: it
    validates against both the NGFF ``image`` and ``label`` schemas of 0.4 and 0.5.
    Its ``image-label.source`` is left out (there is no parent image to point at).
Compression
    The default codec is Blosc zstd, clevel 3, bit-shuffle, chosen by measuring speed and
    size together on smooth + noisy uint16 volumes (see :data:`DEFAULT_COMPRESSOR`).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import zarr
import zarr.codecs

from .._errors import CancelledError
from .model import Axis, ChannelInfo, Level, MultiscaleImage, Window
from .ngff import (
    emit_image_attrs,
    emit_labels_group_attrs,
    ngff_attrs,
    parse_omero,
    spec_for,
)
from .store import atomic_destination, local_path

__all__ = [
    "DEFAULT_COMPRESSOR",
    "LABEL_METHODS",
    "SCALING_METHODS",
    "LevelPlan",
    "PyramidPlan",
    "describe_compressor",
    "downsample_block",
    "plan_levels",
    "plan_pyramid",
    "resolve_compressor",
    "resolve_storage_options",
    "write_levels",
    "write_pyramid",
]

log = logging.getLogger(__name__)

SCALING_METHODS = ("local_mean", "nearest", "mode", "max", "min")
#: Methods that never create a label value absent from the source.
LABEL_METHODS = ("mode", "nearest")
#: The plan method of :func:`write_levels`: levels copied as they are.
AS_IS = "as-is"

#: Default codec: Blosc zstd clevel 3 with bit-shuffle.  Measured on 2 cores with 2 MiB
#: chunks of a smooth + Gaussian-noise uint16 volume: encode ~290-480 MiB/s, decode
#: ~1.8 GiB/s, ratio 1.58 (zstd clevel 3 + byte shuffle: ~245 MiB/s, 1.66; clevel 5 +
#: shuffle, ome-zarr-py's default: ~55-95 MiB/s, 1.70; clevel 1 + bit-shuffle:
#: ~420-700 MiB/s, 1.56, but slower to decode; lz4 + bit-shuffle: ~0.9-2 GiB/s, 1.51).
#: On data with a noisy-but-dim background bit-shuffle also compresses best (3.19 vs 3.06).
DEFAULT_COMPRESSOR = "default"
_DEFAULT_CNAME, _DEFAULT_CLEVEL = "zstd", 3

#: Aim for about this many input bytes per task when chunks are small: fewer, larger
#: zarr calls, memory still bounded by ``workers x task``.
_TASK_INPUT_BYTES = 2**20
#: Never group chunks into a task larger than this (input bytes).
_TASK_MAX_BYTES = 64 * 2**20
#: Kernels work on slabs of about this many input bytes: temporaries stay small and
#: in cache whatever the block size.
_KERNEL_SLAB_BYTES = 4 * 2**20

_SQRT2 = math.sqrt(2.0)


# ----------------------------------------------------------------------------------------
# plans
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LevelPlan:
    """One level to write.

    Attributes
    ----------
    index
        Level number (0 is full resolution); also the dataset path.
    shape
        Array shape.
    factors
        Per-axis factor relative to the previous level (all 1 for level 0; 1 for t, c).
    scale, translation
        Physical voxel size and the position of voxel 0's centre, per axis.
    chunks
        Chunk shape (the plan's chunks clipped to this level's shape).
    shards
        Shard shape (zarr v3 only) or None.
    n_chunks
        Number of chunks of the level.
    nbytes
        Uncompressed size in bytes.
    """

    index: int
    shape: tuple[int, ...]
    factors: tuple[int, ...]
    scale: tuple[float, ...]
    translation: tuple[float, ...]
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None
    n_chunks: int
    nbytes: int

    @property
    def path(self) -> str:
        """Dataset path of the level in the store."""
        return str(self.index)


@dataclass(frozen=True)
class PyramidPlan:
    """Everything :func:`write_pyramid` will write, before any data is read.

    Attributes
    ----------
    levels
        The levels, finest first.
    method
        Downsampling method (one of :data:`SCALING_METHODS`, or ``'as-is'`` for
        :func:`write_levels`).
    ngff_version
        ``'0.4'`` (zarr v2) or ``'0.5'`` (zarr v3).
    dtype
        Data type of every level.
    axes
        The image axes.
    compressor
        Codec to use: ``'default'``, None (no compression) or a codec (see
        :func:`resolve_compressor`).
    """

    levels: list[LevelPlan]
    method: str
    ngff_version: str
    dtype: np.dtype
    axes: tuple[Axis, ...]
    compressor: Any = field(default=DEFAULT_COMPRESSOR, compare=False)

    @property
    def zarr_format(self) -> int:
        """Zarr format the plan writes (2 for NGFF 0.4, 3 for 0.5)."""
        return spec_for(self.ngff_version, writing=True).zarr_format

    @property
    def num_levels(self) -> int:
        """Number of levels planned."""
        return len(self.levels)

    @property
    def total_bytes(self) -> int:
        """Uncompressed size of all levels."""
        return sum(lp.nbytes for lp in self.levels)

    @property
    def total_chunks(self) -> int:
        """Number of chunks over all levels."""
        return sum(lp.n_chunks for lp in self.levels)

    @property
    def compressor_description(self) -> str:
        """The compressor, in words."""
        return describe_compressor(self.compressor, self.zarr_format)

    def table(self) -> list[dict[str, Any]]:
        """One row per level for a preview: shape, voxel size, chunks, estimated bytes.

        ``voxel_size`` holds the spatial axes only, in array order; ``bytes`` is the
        uncompressed size (the compressed size depends on the data).
        """
        spatial = [i for i, a in enumerate(self.axes) if a.type == "space"]
        return [
            {
                "level": lp.index,
                "shape": lp.shape,
                "voxel_size": tuple(lp.scale[i] for i in spatial),
                "factors": tuple(lp.factors[i] for i in spatial),
                "chunks": lp.chunks,
                "shards": lp.shards,
                "n_chunks": lp.n_chunks,
                "bytes": lp.nbytes,
            }
            for lp in self.levels
        ]

    def summary(self) -> str:
        """The preview table as text, one line per level."""
        names = "".join(a.name for a in self.axes)
        lines = [
            f"{self.num_levels} levels, method {self.method}, OME-NGFF {self.ngff_version} "
            f"(zarr v{self.zarr_format}), {self.dtype}, {self.compressor_description}",
            f"{'level':>5}  {'shape (' + names + ')':<28} {'voxel size':<28} {'n chunks':>8}"
            f"  {'size':>10}",
        ]
        for row in self.table():
            size = " x ".join(f"{v:.4g}" for v in row["voxel_size"])
            lines.append(
                f"{row['level']:>5}  {'x'.join(map(str, row['shape'])):<28} {size:<28} "
                f"{row['n_chunks']:>8}  {_human_bytes(row['bytes']):>10}"
            )
        lines.append(f"total {_human_bytes(self.total_bytes)} uncompressed")
        return "\n".join(lines)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _spatial_axes(axes: Sequence[Axis]) -> list[int]:
    return [i for i, a in enumerate(axes) if a.type == "space"]


def _default_chunks(axes: Sequence[Axis]) -> tuple[int, ...]:
    spatial = _spatial_axes(axes)
    size = {1: 4096, 2: 512, 3: 128}.get(len(spatial), 64)
    return tuple(size if i in spatial else 1 for i in range(len(axes)))


def _per_axis(
    value: Any, axes: Sequence[Axis], what: str, default: tuple[int, ...]
) -> tuple[int, ...]:
    """Expand an int, a full per-axis tuple or a per-spatial-axis tuple to all axes."""
    ndim = len(axes)
    spatial = _spatial_axes(axes)
    if value is None:
        return default
    if isinstance(value, (int, np.integer)):
        out = list(default)
        for i in spatial:
            out[i] = int(value)
        return tuple(out)
    try:
        values = [int(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: expected an int or a tuple of ints, got {value!r}") from exc
    if len(values) == ndim:
        out = values
    elif len(values) == len(spatial):
        out = list(default)
        for i, v in zip(spatial, values):
            out[i] = v
    else:
        names = "".join(a.name for a in axes)
        raise ValueError(
            f"{what}: {value!r} has {len(values)} values; give one per axis ({names}) or one "
            f"per spatial axis ({''.join(axes[i].name for i in spatial)})"
        )
    if any(v < 1 for v in out):
        raise ValueError(f"{what}: values must be >= 1, got {value!r}")
    return tuple(out)


def _clip_chunks(chunks: Sequence[int], shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(max(1, min(int(c), int(n))) for c, n in zip(chunks, shape))


def _clip_shards(
    shards: Sequence[int] | None, chunks: Sequence[int], shape: Sequence[int]
) -> tuple[int, ...] | None:
    """Shards clipped to the level, kept a multiple of the (clipped) chunks."""
    if shards is None:
        return None
    out = []
    for s, c, n in zip(shards, chunks, shape):
        n_up = -(-int(n) // int(c)) * int(c)  # the shape rounded up to whole chunks
        out.append(min(int(s) // int(c) * int(c), n_up))
    return tuple(out)


def _n_blocks(shape: Sequence[int], block: Sequence[int]) -> int:
    return math.prod(-(-int(n) // int(b)) for n, b in zip(shape, block))


def _auto_factors(
    shape: Sequence[int], scale: Sequence[float], spatial: Sequence[int]
) -> tuple[int, ...]:
    """Factors of the next level: isotropic first, then 2 along every spatial axis."""
    factors = [1] * len(shape)
    movable = [i for i in spatial if shape[i] > 1]
    if not movable:
        return tuple(factors)
    coarsest = max(abs(scale[i]) for i in spatial)
    fine = [i for i in movable if abs(scale[i]) * _SQRT2 < coarsest]
    for i in fine or movable:
        factors[i] = 2
    return tuple(factors)


def _factor_schedule(
    downsample_factors: Any, axes: Sequence[Axis], max_layer: int
) -> list[tuple[int, ...]] | None:
    """Explicit factors as one full per-axis tuple per level transition, or None for auto."""
    if downsample_factors is None:
        return None
    spatial = _spatial_axes(axes)
    ones = (1,) * len(axes)
    items = (
        list(downsample_factors) if not isinstance(downsample_factors, (int, np.integer)) else []
    )
    per_level = bool(items) and all(not isinstance(v, (int, np.integer)) for v in items)
    if per_level:  # one entry per level transition (used for label images)
        schedule = [_per_axis(v, axes, "downsample_factors", ones) for v in items]
    else:
        schedule = [_per_axis(downsample_factors, axes, "downsample_factors", ones)] * max_layer
    for f in schedule:
        if any(f[i] != 1 for i in range(len(axes)) if i not in spatial):
            names = "".join(a.name for a in axes)
            raise ValueError(
                f"downsample_factors {downsample_factors!r}: only spatial axes downsample "
                f"(axes {names}); use 1 for time and channel axes"
            )
    return schedule


def _check_method(method: str, is_label: bool, what: str = "image") -> str:
    if method not in SCALING_METHODS:
        raise ValueError(f"scaling_method {method!r}: use one of {', '.join(SCALING_METHODS)}")
    if is_label and method not in LABEL_METHODS:
        log.warning(
            "%s is a label image: scaling_method %r would create labels that do not exist; "
            "using 'mode'",
            what,
            method,
        )
        return "mode"
    return method


def plan_pyramid(
    image: MultiscaleImage,
    max_layer: int = 4,
    *,
    downsample_factors: Any = None,
    chunks: Any = None,
    shards: Any = None,
    scaling_method: str = "local_mean",
    ngff_version: str = "0.5",
    compressor: Any = DEFAULT_COMPRESSOR,
) -> PyramidPlan:
    """Plan the levels of a pyramid built from ``image.levels[0]`` (no data is read).

    Parameters
    ----------
    image
        The image; only its level 0 (shape, scale, translation), axes and dtype are used.
    max_layer
        Index of the coarsest level: ``max_layer=4`` plans levels 0 to 4.  Fewer levels
        are planned when no axis can shrink any more.
    downsample_factors
        None for automatic factors (see the module docstring); an int for every spatial
        axis; a tuple per spatial axis or per axis, in array order (e.g. ``(2, 2, 1)``
        for z, y, x), applied at every level; or a sequence of such tuples, one per
        level transition.
    chunks
        Chunk shape: an int for every spatial axis, or a tuple per axis or per spatial
        axis.  Default: 1 for time and channel, 128 (3-D) or 512 (2-D) spatially.  Every
        level uses the same chunks clipped to its shape.
    shards
        Shard shape (NGFF 0.5 / zarr v3 only), same forms as ``chunks``; must be a
        multiple of the chunks.  Writes work shard by shard, so memory is about
        ``shard size x workers``.
    scaling_method
        One of :data:`SCALING_METHODS`.  For a label image a method other than
        ``'mode'``/``'nearest'`` falls back to ``'mode'`` with a warning.
    ngff_version
        ``'0.4'`` (zarr v2) or ``'0.5'`` (zarr v3).
    compressor
        Codec recorded in the plan (see :func:`resolve_compressor`).

    Returns
    -------
    PyramidPlan
    """
    spec = spec_for(ngff_version, writing=True)
    method = _check_method(scaling_method, image.is_label, image.name or "image")
    if int(max_layer) < 0:
        raise ValueError(f"max_layer must be >= 0, got {max_layer}")
    max_layer = int(max_layer)
    axes = image.axes
    spatial = _spatial_axes(axes)
    if not spatial:
        raise ValueError(f"image axes {image.axis_names} have no spatial axis to downsample")
    schedule = _factor_schedule(downsample_factors, axes, max_layer)
    base_chunks = _per_axis(chunks, axes, "chunks", _default_chunks(axes))
    base_shards = _resolve_shards(shards, axes, base_chunks, spec.zarr_format)
    dtype = np.dtype(image.dtype)
    base = image.levels[0]
    shape = tuple(base.shape)
    scale = tuple(float(s) for s in base.scale)
    translation = tuple(float(t) for t in base.translation)
    factors: tuple[int, ...] = (1,) * len(axes)
    levels: list[LevelPlan] = []
    for index in range(max_layer + 1):
        if index > 0:
            wanted = (
                _auto_factors(shape, scale, spatial)
                if schedule is None
                else (schedule[index - 1] if index - 1 < len(schedule) else None)
            )
            if wanted is None:
                log.info("plan: %d levels (factor schedule ends)", index)
                break
            factors = tuple(max(1, min(f, n)) for f, n in zip(wanted, shape))
            if all(f == 1 for f in factors):
                log.info("plan: stopping at %d levels, no axis can shrink further", index)
                break
            shift = [0.0 if method == "nearest" else (f - 1) / 2 for f in factors]
            translation = tuple(t + d * s for t, d, s in zip(translation, shift, scale))
            scale = tuple(s * f for s, f in zip(scale, factors))
            shape = tuple(-(-n // f) for n, f in zip(shape, factors))
        level_chunks = _clip_chunks(base_chunks, shape)
        levels.append(
            LevelPlan(
                index=index,
                shape=shape,
                factors=factors,
                scale=scale,
                translation=translation,
                chunks=level_chunks,
                shards=_clip_shards(base_shards, level_chunks, shape),
                n_chunks=_n_blocks(shape, level_chunks),
                nbytes=math.prod(shape) * dtype.itemsize,
            )
        )
    return PyramidPlan(levels, method, spec.version, dtype, tuple(axes), compressor)


def _resolve_shards(
    shards: Any, axes: Sequence[Axis], chunks: tuple[int, ...], zarr_format: int
) -> tuple[int, ...] | None:
    if shards is None:
        return None
    if zarr_format < 3:
        raise ValueError("shards need OME-NGFF 0.5 (zarr v3); NGFF 0.4 stores cannot shard")
    out = _per_axis(shards, axes, "shards", chunks)
    bad = [(s, c) for s, c in zip(out, chunks) if s % c]
    if bad:
        raise ValueError(f"shards {out} must be a multiple of the chunks {chunks} on every axis")
    return out


def plan_levels(
    image: MultiscaleImage,
    *,
    chunks: Any = None,
    shards: Any = None,
    ngff_version: str = "0.5",
    compressor: Any = DEFAULT_COMPRESSOR,
) -> PyramidPlan:
    """Plan writing every level of ``image`` as it is (no downsampling).

    ``factors`` of each level are the rounded shape ratios to the previous level, for
    information only; scale and translation are the levels' own.
    """
    spec = spec_for(ngff_version, writing=True)
    axes = image.axes
    base_chunks = _per_axis(chunks, axes, "chunks", _default_chunks(axes))
    base_shards = _resolve_shards(shards, axes, base_chunks, spec.zarr_format)
    dtype = np.dtype(image.dtype)
    levels = []
    prev: tuple[int, ...] | None = None
    for index, level in enumerate(image.levels):
        shape = tuple(level.shape)
        factors = (
            (1,) * len(shape)
            if prev is None
            else tuple(max(1, round(p / max(n, 1))) for p, n in zip(prev, shape))
        )
        level_chunks = _clip_chunks(base_chunks, shape)
        levels.append(
            LevelPlan(
                index=index,
                shape=shape,
                factors=factors,
                scale=tuple(float(s) for s in level.scale),
                translation=tuple(float(t) for t in level.translation),
                chunks=level_chunks,
                shards=_clip_shards(base_shards, level_chunks, shape),
                n_chunks=_n_blocks(shape, level_chunks),
                nbytes=math.prod(shape) * dtype.itemsize,
            )
        )
        prev = shape
    return PyramidPlan(levels, AS_IS, spec.version, dtype, tuple(axes), compressor)


# ----------------------------------------------------------------------------------------
# kernels
# ----------------------------------------------------------------------------------------


def _take(a: np.ndarray, axis: int, start: int, step: int) -> np.ndarray:
    index = [slice(None)] * a.ndim
    index[axis] = slice(start, None, step)
    return a[tuple(index)]


def _mean_accumulator(dtype: np.dtype, count: int) -> np.dtype:
    """A signed/unsigned integer type holding the sum of ``count`` values of ``dtype``."""
    info = np.iinfo(dtype) if dtype.kind in "iu" else np.iinfo(np.uint8)
    wide = np.int64 if info.min < 0 else np.uint64
    narrow = np.int32 if info.min < 0 else np.uint32
    bound = max(abs(int(info.min)), int(info.max)) * count
    return np.dtype(narrow if bound < 2**31 else wide)


def _sum_blocks(a: np.ndarray, factors: Sequence[int], acc: np.dtype) -> np.ndarray:
    """Exact block sums, one axis at a time (strided slices: no transposed copies)."""
    out: np.ndarray = a
    first = True
    for axis in np.argsort([-f for f in factors], kind="stable"):
        f = int(factors[axis])
        if f == 1:
            continue
        total = (
            _take(out, int(axis), 0, f).astype(acc)
            if first
            else _take(out, int(axis), 0, f).copy()
        )
        for j in range(1, f):
            total += _take(out, int(axis), j, f)
        out, first = total, False
    return out if not first else a.astype(acc)


def _round_half_even(total: np.ndarray, count: int) -> np.ndarray:
    """``rint(total / count)`` exactly, in integers."""
    q = total // count
    r = total - q * count
    up = (2 * r > count) | ((2 * r == count) & (q % 2 == 1))
    return q + up.astype(q.dtype)


def _mean_exact(a: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    count = math.prod(factors)
    dtype = a.dtype
    if dtype.kind == "f" or dtype.kind == "c":
        work = np.float64 if dtype.kind == "f" else np.complex128
        return (_sum_blocks(a, factors, np.dtype(work)) / count).astype(dtype)
    if dtype.kind == "b":
        return _round_half_even(_sum_blocks(a, factors, np.dtype(np.uint32)), count) > 0
    if dtype.itemsize < 8:
        acc = _mean_accumulator(dtype, count)
        return _round_half_even(_sum_blocks(a, factors, acc), count).astype(dtype)
    # 64-bit integers have no wider type: write x = n*q + r with q truncated towards
    # zero (|sum q| <= max |x|) and |r| < n (|sum r| < n*n), sum both, then round.
    quot = a // count
    rem = a % count
    if dtype.kind == "i":
        negative = (rem != 0) & (a < 0)
        quot[negative] += 1
        rem[negative] -= count
    total_q = _sum_blocks(quot, factors, dtype)
    total_r = _sum_blocks(rem, factors, dtype)
    q2 = total_r // count  # floor: 0 <= r2 < n
    base = total_q + q2
    r2 = total_r - q2 * count
    up = (2 * r2 > count) | ((2 * r2 == count) & (base % 2 != 0))
    return (base + up.astype(dtype)).astype(dtype)


def _extreme_exact(a: np.ndarray, factors: Sequence[int], ufunc: np.ufunc) -> np.ndarray:
    out = a
    for axis, f in enumerate(factors):
        if f == 1:
            continue
        total = _take(out, axis, 0, f).copy()
        for j in range(1, f):
            ufunc(total, _take(out, axis, j, f), out=total)
        out = total
    return out if out is not a else a.copy()


def _batcher_network(n: int) -> list[tuple[int, int]]:
    """Compare-exchange pairs of Batcher's odd-even merge sort, restricted to ``n`` items."""
    size = 1
    while size < n:
        size *= 2
    pairs: list[tuple[int, int]] = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    # Missing items act as +inf at the end: comparisons with them never swap.
    return [(i, j) for i, j in pairs if j < n]


_NETWORKS: dict[int, list[tuple[int, int]]] = {}


def _mode_exact(a: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    count = math.prod(factors)
    offsets = itertools.product(*(range(f) for f in factors))
    cols = [a[tuple(slice(o, None, f) for o, f in zip(off, factors))] for off in offsets]
    if count <= 64:
        # A sorting network over the k views: vectorised min/max, no transposed copy.
        cols = [np.array(c) for c in cols]
        network = _NETWORKS.get(count)
        if network is None:
            network = _NETWORKS.setdefault(count, _batcher_network(count))
        for i, j in network:
            lo = np.minimum(cols[i], cols[j])
            np.maximum(cols[i], cols[j], out=cols[j])
            cols[i] = lo
        sorted_cols = cols
    else:
        stacked = np.sort(np.stack(cols, axis=-1), axis=-1)
        sorted_cols = [stacked[..., j] for j in range(count)]
    # Longest run in each sorted block; strict '>' keeps the first (smallest) on ties.
    best = sorted_cols[0].copy()
    best_n = np.ones(best.shape, np.int32)
    run = np.ones(best.shape, np.int32)
    for j in range(1, count):
        same = sorted_cols[j] == sorted_cols[j - 1]
        run = np.where(same, run + 1, 1).astype(np.int32)
        better = run > best_n
        np.copyto(best_n, run, where=better)
        np.copyto(best, sorted_cols[j], where=better)
    return best


def _reduce_exact(a: np.ndarray, factors: Sequence[int], method: str) -> np.ndarray:
    """Reduce an array whose shape is divisible by ``factors``."""
    if method == "local_mean":
        return _mean_exact(a, factors)
    if method == "max":
        return _extreme_exact(a, factors, np.maximum)
    if method == "min":
        return _extreme_exact(a, factors, np.minimum)
    if method == "mode":
        return _mode_exact(a, factors)
    raise ValueError(f"unknown method {method!r}")  # pragma: no cover


def downsample_block(arr: np.ndarray, factors: int | Sequence[int], method: str) -> np.ndarray:
    """Downsample a numpy block by integer factors.

    Parameters
    ----------
    arr
        The block.
    factors
        One factor for every axis, or a tuple with one factor per axis of ``arr``.
    method
        ``'local_mean'``: block mean (integers rounded half to even, exactly; floats in
        float64, stored as the input dtype).  ``'mode'``: most frequent value of the
        block, ties to the smallest.  ``'nearest'``: element 0 of each block.
        ``'max'``/``'min'``: block maximum/minimum.

    Returns
    -------
    numpy.ndarray
        Shape ``ceil(n / f)`` per axis, same dtype.  The last, partial block along an
        axis is reduced over the voxels present.
    """
    a = np.asarray(arr)
    if isinstance(factors, (int, np.integer)):
        fs = (int(factors),) * a.ndim
    else:
        fs = tuple(int(f) for f in factors)
    if len(fs) != a.ndim:
        raise ValueError(f"factors {factors!r}: need {a.ndim} values, one per axis")
    if any(f < 1 for f in fs):
        raise ValueError(f"factors {factors!r}: must be >= 1")
    if method not in SCALING_METHODS:
        raise ValueError(f"method {method!r}: use one of {', '.join(SCALING_METHODS)}")
    if all(f == 1 for f in fs):
        return a.copy()
    if method == "nearest":
        return np.ascontiguousarray(a[tuple(slice(None, None, f) for f in fs)])
    out_shape = tuple(-(-n // f) for n, f in zip(a.shape, fs))
    axis = next((i for i, n in enumerate(out_shape) if n > 1), None)
    if a.nbytes > 2 * _KERNEL_SLAB_BYTES and axis is not None:
        # Slabs of whole blocks along the first axis that has several.
        per_out = a.nbytes / out_shape[axis]
        step = max(1, int(_KERNEL_SLAB_BYTES // per_out))
        out = np.empty(out_shape, a.dtype)
        f = fs[axis]
        for o in range(0, out_shape[axis], step):
            src = [slice(None)] * a.ndim
            dst = [slice(None)] * a.ndim
            src[axis] = slice(o * f, min((o + step) * f, a.shape[axis]))
            dst[axis] = slice(o, min(o + step, out_shape[axis]))
            out[tuple(dst)] = _downsample_unsliced(a[tuple(src)], fs, method)
        return out
    return _downsample_unsliced(a, fs, method)


def _downsample_unsliced(a: np.ndarray, fs: tuple[int, ...], method: str) -> np.ndarray:
    out_shape = tuple(-(-n // f) for n, f in zip(a.shape, fs))
    if all(n % f == 0 for n, f in zip(a.shape, fs)):
        return _reduce_exact(a, fs, method)
    # Split each axis into its whole blocks and its remainder: every piece is divisible
    # by its own factors (the remainder is one block of the voxels present).
    pieces_per_axis = []
    for n, f in zip(a.shape, fs):
        full = n // f * f
        pieces = []
        if full:
            pieces.append((slice(0, full), f, slice(0, full // f)))
        if n > full:
            pieces.append((slice(full, n), n - full, slice(full // f, full // f + 1)))
        pieces_per_axis.append(pieces)
    out = np.empty(out_shape, a.dtype)
    for combo in itertools.product(*pieces_per_axis):
        src = tuple(p[0] for p in combo)
        dst = tuple(p[2] for p in combo)
        out[dst] = _reduce_exact(np.ascontiguousarray(a[src]), [p[1] for p in combo], method)
    return out


# ----------------------------------------------------------------------------------------
# codecs and storage options
# ----------------------------------------------------------------------------------------

_SHUFFLE_NAMES = {
    numcodecs.Blosc.NOSHUFFLE: "noshuffle",
    numcodecs.Blosc.SHUFFLE: "shuffle",
    numcodecs.Blosc.BITSHUFFLE: "bitshuffle",
}
_SHUFFLE_IDS = {v: k for k, v in _SHUFFLE_NAMES.items()}


def _shuffle_name(shuffle: Any, itemsize: int) -> str:
    value = getattr(shuffle, "value", shuffle)  # zarr's BloscShuffle enum
    if isinstance(value, str):
        return value
    if value == numcodecs.Blosc.AUTOSHUFFLE:
        return "bitshuffle" if itemsize == 1 else "shuffle"
    return _SHUFFLE_NAMES.get(int(value), "shuffle")


def _codec_from_name(name: str) -> Any:
    text, _, level = name.strip().lower().partition(":")
    lvl = int(level) if level else None
    if text in ("none", "raw", ""):
        return None
    if text in ("default", "blosc", "blosc-zstd"):
        return numcodecs.Blosc(
            "zstd", _DEFAULT_CLEVEL if lvl is None else lvl, numcodecs.Blosc.BITSHUFFLE
        )
    if text == "blosc-lz4":
        return numcodecs.Blosc("lz4", 5 if lvl is None else lvl, numcodecs.Blosc.BITSHUFFLE)
    if text == "zstd":
        return numcodecs.Zstd(3 if lvl is None else lvl)
    if text in ("gzip", "zlib"):
        return numcodecs.GZip(5 if lvl is None else lvl)
    raise ValueError(
        f"compressor {name!r}: use 'default', 'none', 'blosc-zstd[:level]', "
        "'blosc-lz4[:level]', 'zstd[:level]', 'gzip[:level]' or a codec object"
    )


def resolve_compressor(compressor: Any, zarr_format: int, itemsize: int = 2) -> Any:
    """The ``compressors=`` value for :func:`zarr.create_array` of a zarr format.

    Parameters
    ----------
    compressor
        ``'default'`` (Blosc zstd clevel 3 bit-shuffle), None or ``'none'`` (no
        compression), a name such as ``'blosc-zstd:5'``, ``'blosc-lz4'``, ``'zstd:3'``,
        ``'gzip'``, a numcodecs codec (``numcodecs.Blosc``, ``numcodecs.Zstd``, ...), a
        zarr v3 codec (``zarr.codecs.BloscCodec``, ...) or a sequence of those.
        numcodecs codecs map to their zarr v3 equivalent for zarr v3 and back.
    zarr_format
        2 or 3.
    itemsize
        Bytes per item (resolves Blosc's auto-shuffle for v3).
    """
    if isinstance(compressor, (list, tuple)):
        resolved = [resolve_compressor(c, zarr_format, itemsize) for c in compressor]
        resolved = [r for r in resolved if r is not None]
        if not resolved:
            return None
        if zarr_format == 2 and len(resolved) > 1:
            raise ValueError("zarr v2 arrays take a single compressor")
        return resolved[0] if zarr_format == 2 else resolved
    if compressor is None:
        return None
    if isinstance(compressor, str):
        if compressor == DEFAULT_COMPRESSOR:
            compressor = numcodecs.Blosc(
                _DEFAULT_CNAME, _DEFAULT_CLEVEL, numcodecs.Blosc.BITSHUFFLE
            )
        else:
            compressor = _codec_from_name(compressor)
            if compressor is None:
                return None
    if zarr_format == 2:
        return _to_v2_codec(compressor)
    return _to_v3_codec(compressor, itemsize)


def _to_v2_codec(codec: Any) -> Any:
    if isinstance(codec, numcodecs.abc.Codec):
        return codec
    if isinstance(codec, zarr.codecs.BloscCodec):
        shuffle = _SHUFFLE_IDS.get(_shuffle_name(codec.shuffle, 2), numcodecs.Blosc.SHUFFLE)
        return numcodecs.Blosc(
            getattr(codec.cname, "value", codec.cname), codec.clevel, shuffle, codec.blocksize
        )
    if isinstance(codec, zarr.codecs.ZstdCodec):
        return numcodecs.Zstd(level=codec.level, checksum=codec.checksum)
    if isinstance(codec, zarr.codecs.GzipCodec):
        return numcodecs.GZip(codec.level)
    raise ValueError(f"compressor {codec!r}: not usable for zarr v2 (NGFF 0.4)")


def _to_v3_codec(codec: Any, itemsize: int) -> Any:
    if isinstance(codec, numcodecs.Blosc):
        return zarr.codecs.BloscCodec(
            cname=codec.cname if isinstance(codec.cname, str) else codec.cname.decode(),
            clevel=codec.clevel,
            shuffle=_shuffle_name(codec.shuffle, itemsize),
            blocksize=codec.blocksize,
        )
    if isinstance(codec, numcodecs.Zstd):
        return zarr.codecs.ZstdCodec(level=codec.level, checksum=bool(codec.checksum))
    if isinstance(codec, (numcodecs.GZip, numcodecs.Zlib)):
        return zarr.codecs.GzipCodec(level=codec.level)
    if isinstance(codec, numcodecs.abc.Codec):
        import numcodecs.zarr3 as nz3

        wrapper = getattr(nz3, type(codec).__name__, None)
        if wrapper is None:
            raise ValueError(f"compressor {codec!r}: no zarr v3 equivalent")
        config = {k: v for k, v in codec.get_config().items() if k != "id"}
        return wrapper(**config)
    return codec  # a zarr v3 codec already


def describe_compressor(compressor: Any, zarr_format: int = 3) -> str:
    """A short human description of a compressor setting."""
    codec = resolve_compressor(compressor, zarr_format)
    if codec is None:
        return "uncompressed"
    codecs = codec if isinstance(codec, list) else [codec]
    parts = []
    for c in codecs:
        if isinstance(c, zarr.codecs.BloscCodec):
            cname = getattr(c.cname, "value", c.cname)
            parts.append(f"blosc {cname} clevel {c.clevel} {_shuffle_name(c.shuffle, 2)}")
        elif isinstance(c, numcodecs.Blosc):
            parts.append(f"blosc {c.cname} clevel {c.clevel} {_shuffle_name(c.shuffle, 2)}")
        elif isinstance(c, (zarr.codecs.ZstdCodec, numcodecs.Zstd)):
            parts.append(f"zstd level {c.level}")
        else:
            parts.append(type(c).__name__)
    return " + ".join(parts)


def resolve_storage_options(
    storage_options: Mapping[str, Any] | None, chunks: Any = None
) -> dict[str, Any]:
    """Split ``storage_options`` into ``compressor``, ``chunks`` and ``shards``.

    An explicit ``chunks`` argument wins over ``storage_options['chunks']``.  A missing
    compressor means the default one; ``{'compressor': None}`` means none.  Other keys
    are ignored with a logged warning.
    """
    options = dict(storage_options or {})
    out: dict[str, Any] = {
        "compressor": options.pop("compressor", DEFAULT_COMPRESSOR),
        "chunks": options.pop("chunks", None),
        "shards": options.pop("shards", None),
    }
    if "compressors" in options:
        out["compressor"] = options.pop("compressors")
    if chunks is not None:
        out["chunks"] = chunks
    if options:
        log.warning(
            "storage_options %s not used (known: compressor, chunks, shards)", sorted(options)
        )
    return out


# ----------------------------------------------------------------------------------------
# the block engine
# ----------------------------------------------------------------------------------------


def _is_dask(array: Any) -> bool:
    return type(array).__module__.startswith("dask") and hasattr(array, "dask")


def _source_chunks(array: Any) -> tuple[int, ...] | None:
    chunks = getattr(array, "chunks", None)
    if not chunks:
        return None
    if isinstance(chunks[0], tuple):
        return tuple(int(c[0]) if c else 1 for c in chunks)
    try:
        return tuple(int(c) for c in chunks)
    except (TypeError, ValueError):
        return None


def _read_region(array: Any, region: tuple[slice, ...], dtype: np.dtype) -> np.ndarray:
    if _is_dask(array):
        # One small graph per block, computed in this worker thread: never the whole.
        block = array[region].compute(scheduler="synchronous")
    else:
        block = array[region]
    return np.asarray(block, dtype=dtype)


def _task_unit(
    base: tuple[int, ...],
    shape: tuple[int, ...],
    in_itemsize: int,
    factors: tuple[int, ...],
    prefer: tuple[int, ...] | None,
) -> tuple[int, ...]:
    """Output block per task: whole chunks (or shards), grouped up to the byte target.

    With a chunked source (level 0), blocks grow to whole source chunks when those are
    multiples of ours, so no source chunk is computed or decoded twice.
    """
    scale = math.prod(factors) * in_itemsize
    unit = list(base)
    if prefer is not None and len(prefer) == len(unit):
        grown = [p if p % u == 0 and p > u else u for u, p in zip(unit, prefer)]
        if math.prod(min(g, n) for g, n in zip(grown, shape)) * scale <= _TASK_MAX_BYTES:
            unit = grown
    # Grow small blocks along the outer axes first (contiguous slabs in C order).
    for axis in range(len(unit)):
        while (
            math.prod(min(u, n) for u, n in zip(unit, shape)) * scale * 2 <= _TASK_INPUT_BYTES
            and unit[axis] < shape[axis]
        ):
            unit[axis] *= 2
    return tuple(min(u, -(-n // b) * b) for u, n, b in zip(unit, shape, base))


def _region(index: Sequence[int], unit: Sequence[int], shape: Sequence[int]) -> tuple[slice, ...]:
    return tuple(slice(i * u, min((i + 1) * u, n)) for i, u, n in zip(index, unit, shape))


def _regions(shape: tuple[int, ...], unit: tuple[int, ...]) -> Iterator[tuple[slice, ...]]:
    grid = [range(-(-n // u)) for n, u in zip(shape, unit)]
    for index in itertools.product(*grid):
        yield _region(index, unit, shape)


@dataclass(eq=False)
class _LevelJob:
    """How to fill one output array: from which source, by which factors and method."""

    name: str
    path: str
    plan: LevelPlan
    dtype: np.dtype
    #: the source array, or None to read the previous job's (already written) array
    source: Any
    previous: _LevelJob | None
    factors: tuple[int, ...]
    method: str
    #: depth in its pyramid (0 for level 0): deeper ready blocks are scheduled first
    depth: int = 0
    target: Any = None  # the zarr array, once created
    unit: tuple[int, ...] = ()
    done: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    _cursor: Iterator[tuple[int, ...]] | None = None
    _head: tuple[int, ...] | None = None

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(-(-n // u) for n, u in zip(self.plan.shape, self.unit))

    def n_tasks(self) -> int:
        return math.prod(self.grid)

    def start(self) -> None:
        self.done = np.zeros(self.grid, bool)
        self._cursor = itertools.product(*(range(g) for g in self.grid))
        self._head = next(self._cursor, None)

    @property
    def exhausted(self) -> bool:
        return self._head is None

    def in_region(self, out_region: tuple[slice, ...]) -> tuple[slice, ...]:
        shape = self.source_shape
        return tuple(
            slice(r.start * f, min(r.stop * f, n))
            for r, f, n in zip(out_region, self.factors, shape)
        )

    @property
    def source_shape(self) -> tuple[int, ...]:
        src = self.source if self.previous is None else self.previous.plan
        return tuple(int(n) for n in src.shape)

    def head_ready(self) -> bool:
        """True when the next block's input is completely written (or comes from the source)."""
        if self._head is None:
            return False
        prev = self.previous
        if prev is None:
            return True
        needed = self.in_region(_region(self._head, self.unit, self.plan.shape))
        cover = tuple(
            slice(r.start // u, (r.stop - 1) // u + 1) for r, u in zip(needed, prev.unit)
        )
        return bool(prev.done[cover].all())

    def pop(self) -> tuple[int, ...]:
        assert self._cursor is not None and self._head is not None
        index, self._head = self._head, next(self._cursor, None)
        return index


class _Runner:
    """Runs the blocks of all levels in a thread pool, a bounded number in flight.

    A block of level k+1 starts as soon as the blocks of level k it reads are written,
    so levels overlap instead of waiting for each other; ready blocks of deeper levels
    go first.  Memory is bounded by the blocks running, not by the image.
    """

    def __init__(
        self,
        workers: int,
        total: int,
        progress: Callable[[int, int, str], Any] | None,
        cancel: Any,
    ) -> None:
        self.workers = max(1, int(workers))
        self.max_in_flight = 2 * self.workers
        self.total = total
        self.done = 0
        self.progress = progress
        if cancel is None:
            self._cancelled: Callable[[], bool] = lambda: False
        elif hasattr(cancel, "is_set"):
            self._cancelled = cancel.is_set
        elif callable(cancel):
            self._cancelled = cancel
        else:
            raise TypeError(f"cancel must be a threading.Event or a callable, not {cancel!r}")
        self.peak_in_flight = 0

    def cancelled(self) -> bool:
        return bool(self._cancelled())

    def check_cancel(self) -> None:
        if self.cancelled():
            raise CancelledError("write cancelled; nothing was written")

    def run(self, pool: ThreadPoolExecutor, jobs: Sequence[_LevelJob]) -> None:
        for job in jobs:
            job.start()
        order = sorted(jobs, key=lambda j: -j.depth)  # deeper levels first when ready
        pending: dict[Future[None], tuple[_LevelJob, tuple[int, ...]]] = {}
        try:
            while True:
                while len(pending) < self.max_in_flight:
                    job = next((j for j in order if j.head_ready()), None)
                    if job is None:
                        break
                    self.check_cancel()
                    index = job.pop()
                    pending[pool.submit(self._block, job, index)] = (job, index)
                self.peak_in_flight = max(self.peak_in_flight, len(pending))
                if not pending:
                    if any(not j.exhausted for j in jobs):  # pragma: no cover - a bug
                        raise RuntimeError("pyramid scheduler stalled")
                    return
                finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in finished:
                    job, index = pending.pop(future)
                    future.result()
                    job.done[index] = True
                    self.done += 1
                    if self.progress is not None:
                        self.progress(self.done, self.total, job.name)
                self.check_cancel()
        finally:
            # Never leave a worker writing into a folder that is about to be removed.
            for future in pending:
                future.cancel()
            wait(list(pending))

    def _block(self, job: _LevelJob, index: tuple[int, ...]) -> None:
        if self.cancelled():
            return
        out_region = _region(index, job.unit, job.plan.shape)
        in_region = job.in_region(out_region)
        source = job.source if job.previous is None else job.previous.target
        if all(f == 1 for f in job.factors):
            out = _read_region(source, in_region, job.dtype)
        else:
            src_chunks = (
                job.previous.plan.chunks
                if job.previous is not None
                else (_source_chunks(source) or job.source_shape)
            )
            pieces = _input_pieces(in_region, out_region, src_chunks, job.factors)
            if len(pieces) == 1:
                block = _read_region(source, in_region, job.dtype)
                out = downsample_block(block, job.factors, job.method)
            else:
                out = np.empty(tuple(r.stop - r.start for r in out_region), job.dtype)
                for src_piece, dst_piece in pieces:
                    block = _read_region(source, src_piece, job.dtype)
                    out[dst_piece] = downsample_block(block, job.factors, job.method)
                    del block
        # Whole-chunk writes of all-fill blocks are skipped, as zarr itself would (we
        # create arrays with write_empty_chunks=True to spare zarr that check per chunk).
        if out.any():
            job.target[out_region] = out


def _input_pieces(
    in_region: tuple[slice, ...],
    out_region: tuple[slice, ...],
    src_chunks: Sequence[int],
    factors: Sequence[int],
) -> list[tuple[tuple[slice, ...], tuple[slice, ...]]]:
    """Split a task's input along one axis into whole source chunks (whole blocks too).

    Every source chunk is still read once, but only a slab of the input is in memory
    at a time: the task holds its output plus one slab.
    """
    for axis, (r, c, f) in enumerate(zip(in_region, src_chunks, factors)):
        if r.stop - r.start <= c:
            continue
        step = math.lcm(int(c), int(f))
        if r.stop - r.start <= step:
            continue
        pieces = []
        for start in range(r.start, r.stop, step):
            stop = min(start + step, r.stop)
            src = list(in_region)
            dst = [slice(0, o.stop - o.start) for o in out_region]
            src[axis] = slice(start, stop)
            o0 = (start - r.start) // f
            dst[axis] = slice(o0, o0 + -(-(stop - start) // f))
            pieces.append((tuple(src), tuple(dst)))
        return pieces
    return [(in_region, tuple(slice(0, o.stop - o.start) for o in out_region))]


# ----------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------


def _create_array(
    group: zarr.Group, path: str, lp: LevelPlan, plan: PyramidPlan, compressors: Any
) -> Any:
    kwargs: dict[str, Any] = {}
    if plan.zarr_format == 2:
        kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    else:
        kwargs["dimension_names"] = [a.name for a in plan.axes]
        if lp.shards is not None:
            kwargs["shards"] = lp.shards
    return group.create_array(
        name=path,
        shape=lp.shape,
        dtype=plan.dtype,
        chunks=lp.chunks,
        compressors=compressors,
        fill_value=0,
        config={"write_empty_chunks": True},
        **kwargs,
    )


def _jobs_for(
    image: MultiscaleImage, plan: PyramidPlan, prefix: str, label: str
) -> list[_LevelJob]:
    """One job per level: level 0 (or every level for 'as-is') from the source."""
    jobs: list[_LevelJob] = []
    ones = (1,) * len(plan.axes)
    for i, lp in enumerate(plan.levels):
        from_source = plan.method == AS_IS or i == 0
        source = image.levels[i if plan.method == AS_IS else 0].data if from_source else None
        factors = ones if from_source else lp.factors
        job = _LevelJob(
            name=f"{label}level {i}/{plan.num_levels - 1}",
            path=f"{prefix}{lp.path}",
            plan=lp,
            dtype=plan.dtype,
            source=source,
            previous=None if from_source else jobs[i - 1],
            factors=factors,
            method=plan.method,
            depth=i,
        )
        # Our own previous level has our chunks: no need to prefer its chunking.
        prefer = _source_chunks(source) if from_source else None
        job.unit = _task_unit(
            lp.shards or lp.chunks, lp.shape, plan.dtype.itemsize, factors, prefer
        )
        jobs.append(job)
    return jobs


def _compute_windows(
    data: np.ndarray, channel_axis: int | None, n_channels: int
) -> list[Window | None]:
    """Display windows per channel from (coarse) data: 0.1-99.9 percentiles, min/max."""
    out: list[Window | None] = []
    for c in range(n_channels):
        values = data if channel_axis is None else np.take(data, c, axis=channel_axis)
        values = np.asarray(values, dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
        if values.size == 0:
            out.append(None)
            continue
        lo, hi = float(values.min()), float(values.max())
        start, end = (float(v) for v in np.percentile(values, [0.1, 99.9]))
        if end <= start:
            start, end = lo, hi if hi > lo else lo + 1.0
        out.append(Window(start=start, end=end, min=lo, max=max(hi, end)))
    return out


def _output_channels(
    image: MultiscaleImage, omero: Mapping[str, Any] | None, coarsest: Any, path: str
) -> list[ChannelInfo]:
    n = image.num_channels
    if omero is not None:
        channels = parse_omero(omero, n, path)
    else:
        channels = image.channel_infos()
    if any(ch.window is None for ch in channels):
        windows = _compute_windows(_sample(coarsest, image), image.channel_axis, n)
        channels = [
            ch if ch.window is not None or w is None else _with_window(ch, w)
            for ch, w in zip(channels, windows)
        ]
    return channels


def _sample(array: Any, image: MultiscaleImage, max_voxels: int = 2**24) -> np.ndarray:
    """The coarsest level, strided along spatial axes when it is large (one level only)."""
    spatial = image.spatial_axes
    size = math.prod(int(n) for n in array.shape)
    step = max(1, math.ceil((size / max_voxels) ** (1 / max(len(spatial), 1))))
    index = tuple(
        slice(None, None, step) if i in spatial else slice(None) for i in range(array.ndim)
    )
    return np.asarray(array[index])


def _with_window(ch: ChannelInfo, window: Window) -> ChannelInfo:
    return replace(ch, window=window)


def _label_plan(label: MultiscaleImage, parent: PyramidPlan, name: str) -> PyramidPlan:
    """A label's pyramid: the parent's spatial factors per level (by axis name), mode."""
    label = label if label.is_label else label.replace(is_label=True)
    method = parent.method if parent.method in LABEL_METHODS else "mode"
    parent_names = [a.name for a in parent.axes]
    schedule = []
    for lp in parent.levels[1:]:
        schedule.append(
            tuple(
                lp.factors[parent_names.index(a.name)]
                if a.type == "space" and a.name in parent_names
                else 1
                for a in label.axes
            )
        )
    spatial_chunks = {
        a.name: parent.levels[0].chunks[i] for i, a in enumerate(parent.axes) if a.type == "space"
    }
    defaults = _default_chunks(label.axes)
    chunks = tuple(
        spatial_chunks.get(a.name, d) if a.type == "space" else d
        for a, d in zip(label.axes, defaults)
    )
    spatial_shards = None
    if parent.levels[0].shards is not None:
        spatial_shards = {
            a.name: parent.levels[0].shards[i]
            for i, a in enumerate(parent.axes)
            if a.type == "space"
        }
    shards = (
        tuple(max(spatial_shards.get(a.name, c) // c, 1) * c for a, c in zip(label.axes, chunks))
        if spatial_shards is not None
        else None
    )
    return plan_pyramid(
        label,
        max_layer=len(schedule),
        downsample_factors=schedule if schedule else None,
        chunks=chunks,
        shards=shards,
        scaling_method=method,
        ngff_version=parent.ngff_version,
        compressor=parent.compressor,
    )


def _check_label_name(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"label name {name!r}: must be a non-empty name without '/'")
    return name


def _check_ngff_axes(axes: Sequence[Axis], what: str) -> None:
    """Refuse axes OME-NGFF 0.4/0.5 forbid, before anything is written.

    NGFF images have 2 to 5 axes: 2 or 3 of type ``space``, at most one ``time`` and
    at most one ``channel`` (or custom) axis, ordered time, channel/custom, space.
    """
    names = "".join(a.name for a in axes)
    kinds = [a.type if a.type in ("time", "space") else "channel" for a in axes]
    problems = []
    if not 2 <= len(axes) <= 5:
        problems.append(f"has {len(axes)} axes, OME-NGFF images have 2 to 5")
    if not 2 <= kinds.count("space") <= 3:
        problems.append(f"has {kinds.count('space')} spatial axes, OME-NGFF needs 2 or 3")
    if kinds.count("time") > 1 or kinds.count("channel") > 1:
        problems.append("OME-NGFF allows at most one time and one channel (or custom) axis")
    rank = {"time": 0, "channel": 1, "space": 2}
    if any(rank[a] > rank[b] for a, b in itertools.pairwise(kinds)):
        problems.append("OME-NGFF requires the axis order time, channel (or custom), space")
    if problems:
        raise ValueError(
            f"{what}: axes {names} ({', '.join(map(str, kinds))}) cannot be stored as "
            f"OME-NGFF: {'; '.join(problems)}"
        )


def _write_store(
    image: MultiscaleImage,
    path: Any,
    plan: PyramidPlan,
    label_plans: dict[str, PyramidPlan],
    *,
    overwrite: bool,
    omero: Mapping[str, Any] | None,
    progress: Callable[[int, int, str], Any] | None,
    cancel: Any,
    workers: int | None,
) -> Path:
    spec = spec_for(plan.ngff_version, writing=True)
    _check_ngff_axes(plan.axes, image.name or "image")
    for name, lplan in label_plans.items():
        _check_ngff_axes(lplan.axes, f"label '{name}'")
    compressor = plan.compressor
    jobs = _jobs_for(image, plan, "", "")
    label_jobs = {
        name: _jobs_for(image.labels[name], lplan, f"labels/{name}/", f"labels/{name} ")
        for name, lplan in label_plans.items()
    }
    all_jobs = jobs + [j for js in label_jobs.values() for j in js]
    runner = _Runner(
        workers or os.cpu_count() or 1, sum(j.n_tasks() for j in all_jobs), progress, cancel
    )
    runner.check_cancel()
    log.info(
        "writing %s: %d levels%s, %s, %d blocks, %d workers",
        path,
        plan.num_levels,
        f" + {len(label_plans)} label images" if label_plans else "",
        describe_compressor(compressor, spec.zarr_format),
        runner.total,
        runner.workers,
    )
    with atomic_destination(path, overwrite=overwrite) as tmp:
        root = zarr.create_group(store=str(tmp), zarr_format=spec.zarr_format)
        for name, lplan in [("", plan), *label_plans.items()]:
            if name:
                root.require_group("labels").require_group(name)
            codecs = resolve_compressor(compressor, spec.zarr_format, lplan.dtype.itemsize)
            for job in label_jobs[name] if name else jobs:
                job.target = _create_array(root, job.path, job.plan, lplan, codecs)
        with ThreadPoolExecutor(runner.workers, thread_name_prefix="zarrnii-pyramid") as pool:
            runner.run(pool, all_jobs)
        # metadata last: the windows come from the coarsest level as written
        out_name = omero.get("name") if isinstance(omero, Mapping) else None
        out_image = _output_image(image, plan, jobs, name=out_name or image.name or _stem(path))
        if not image.is_label:
            out_image.channels = _output_channels(image, omero, jobs[-1].target, str(path))
        attrs = emit_image_attrs(
            out_image,
            spec.version,
            [lp.path for lp in plan.levels],
            method=_method_for_metadata(plan.method),
        )
        if image.is_label:
            _drop_label_source(attrs)
        if plan.method == AS_IS:
            _keep_source_method(attrs, image)
        root.attrs.update(attrs)
        if label_plans:
            labels_group = root["labels"]
            labels_group.attrs.update(emit_labels_group_attrs(list(label_plans), spec.version))
            for name, lplan in label_plans.items():
                src = image.labels[name]
                lab = _output_image(
                    src.replace(is_label=True), lplan, label_jobs[name], name=src.name or name
                )
                label_attrs = emit_image_attrs(
                    lab,
                    spec.version,
                    [lp.path for lp in lplan.levels],
                    method=_method_for_metadata(lplan.method),
                )
                if lplan.method == AS_IS:
                    _keep_source_method(label_attrs, src)
                labels_group[name].attrs.update(label_attrs)
        runner.check_cancel()
    log.info("wrote %s (%d blocks, peak %d in flight)", path, runner.done, runner.peak_in_flight)
    return local_path(path)


def _stem(path: Any) -> str:
    """The store's name without ``.ome.zarr``/``.zarr``: the default multiscale name."""
    name = local_path(path).name
    for suffix in (".ome.zarr", ".zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name


def _method_for_metadata(method: str) -> str | None:
    return method if method in SCALING_METHODS else None


def _keep_source_method(attrs: dict[str, Any], image: MultiscaleImage) -> None:
    """Levels copied as they are keep the ``type``/``metadata`` of the multiscale they
    were read from (the one whose dataset paths are the image's level paths)."""
    source, _ = ngff_attrs(image.attrs or {})
    entries = source.get("multiscales")
    paths = [lvl.path for lvl in image.levels]
    for ms in entries if isinstance(entries, list) else []:
        datasets = ms.get("datasets") if isinstance(ms, Mapping) else None
        if (
            not isinstance(datasets, list)
            or [d.get("path") if isinstance(d, Mapping) else None for d in datasets] != paths
        ):
            continue
        out = attrs.get("ome", attrs)["multiscales"][0]
        if isinstance(ms.get("type"), str):
            out["type"] = ms["type"]
        if isinstance(ms.get("metadata"), Mapping):
            out["metadata"] = dict(ms["metadata"])
        return


def _drop_label_source(attrs: dict[str, Any]) -> None:
    block = attrs.get("ome", attrs).get("image-label")
    if isinstance(block, dict):
        block.pop("source", None)


def _output_image(
    image: MultiscaleImage, plan: PyramidPlan, jobs: list[_LevelJob], name: str | None
) -> MultiscaleImage:
    levels = [
        Level(lp.path, job.target, lp.scale, lp.translation) for lp, job in zip(plan.levels, jobs)
    ]
    return image.replace(levels=levels, name=name, labels={})


def _label_plans_for(
    image: MultiscaleImage, parent: PyramidPlan, *, as_is: bool
) -> dict[str, PyramidPlan]:
    plans: dict[str, PyramidPlan] = {}
    if image.is_label:
        return plans
    for name, label in image.labels.items():
        _check_label_name(name)
        if as_is:
            plans[name] = plan_levels(
                label,
                chunks=_chunks_by_name(label, parent),
                ngff_version=parent.ngff_version,
                compressor=parent.compressor,
            )
        else:
            plans[name] = _label_plan(label, parent, name)
    return plans


def _chunks_by_name(label: MultiscaleImage, parent: PyramidPlan) -> tuple[int, ...]:
    spatial = {
        a.name: parent.levels[0].chunks[i] for i, a in enumerate(parent.axes) if a.type == "space"
    }
    return tuple(
        spatial.get(a.name, d) if a.type == "space" else d
        for a, d in zip(label.axes, _default_chunks(label.axes))
    )


def write_pyramid(
    image: MultiscaleImage,
    path: Any,
    plan: PyramidPlan | None = None,
    *,
    overwrite: bool = False,
    compressor: Any = DEFAULT_COMPRESSOR,
    omero: Mapping[str, Any] | None = None,
    progress: Callable[[int, int, str], Any] | None = None,
    cancel: Any = None,
    workers: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
    **plan_kwargs: Any,
) -> Path:
    """Build and write a multiscale OME-Zarr from ``image.levels[0]``, out of core.

    Level 0 is copied from the source in chunk-aligned blocks (a dask source is computed
    block by block); every next level is computed from the previous level as written on
    disk, block by block, in ``workers`` threads with at most ``2 x workers`` blocks in
    flight.  Label images in ``image.labels`` are written under ``labels/<name>`` with
    the same factors and a label-safe method.

    Parameters
    ----------
    image
        The image (its level 0 is the source; other levels are ignored).
    path
        Destination folder (``.ome.zarr``).  Written aside and renamed into place.
    plan
        A plan from :func:`plan_pyramid`; when None one is made from ``plan_kwargs``
        (``max_layer``, ``downsample_factors``, ``chunks``, ``shards``,
        ``scaling_method``, ``ngff_version``).
    overwrite
        Replace an existing destination (else :class:`DestinationExistsError`).
    compressor
        ``'default'`` (Blosc zstd clevel 3 bit-shuffle), None for no compression, or a
        codec (see :func:`resolve_compressor`).  Overrides the plan's.
    omero
        Channel metadata, e.g. ``{'name': 'Brain', 'channels': [{'label': 'DAPI',
        'color': 'blue', 'window': {...}}]}``; default ``image.channels``.  Missing
        windows are computed from the coarsest written level.
    progress
        ``progress(done_blocks, total_blocks, message)``, called in the calling thread
        after every block.  An exception raised by it aborts the write.
    cancel
        A :class:`threading.Event` or a callable returning True to stop: raises
        :class:`~napari_zarrnii.CancelledError` and leaves nothing behind.
    workers
        Threads (default ``os.cpu_count()``).
    storage_options
        ``{'compressor': ..., 'chunks': ..., 'shards': ...}`` (see
        :func:`resolve_storage_options`).

    Returns
    -------
    pathlib.Path
        The written store.
    """
    if plan is not None and plan_kwargs:
        raise ValueError(f"give either a plan or plan arguments, not both ({sorted(plan_kwargs)})")
    if storage_options:
        options = resolve_storage_options(storage_options, plan_kwargs.get("chunks"))
        if compressor is DEFAULT_COMPRESSOR:
            compressor = options["compressor"]
        if plan is None:
            plan_kwargs["chunks"] = options["chunks"]
            plan_kwargs.setdefault("shards", options["shards"])
        elif options["chunks"] is not None or options["shards"] is not None:
            log.warning("storage_options chunks/shards ignored: the plan given sets them")
    if plan is None:
        plan = plan_pyramid(image, **plan_kwargs)
    if plan.levels[0].shape != image.shape:
        raise ValueError(f"plan level 0 shape {plan.levels[0].shape} != image shape {image.shape}")
    if compressor is not DEFAULT_COMPRESSOR:
        plan = PyramidPlan(
            plan.levels, plan.method, plan.ngff_version, plan.dtype, plan.axes, compressor
        )
    label_plans = _label_plans_for(image, plan, as_is=False)
    return _write_store(
        image,
        path,
        plan,
        label_plans,
        overwrite=overwrite,
        omero=omero,
        progress=progress,
        cancel=cancel,
        workers=workers,
    )


def write_levels(
    image: MultiscaleImage,
    path: Any,
    *,
    ngff_version: str = "0.5",
    chunks: Any = None,
    shards: Any = None,
    overwrite: bool = False,
    compressor: Any = DEFAULT_COMPRESSOR,
    omero: Mapping[str, Any] | None = None,
    progress: Callable[[int, int, str], Any] | None = None,
    cancel: Any = None,
    workers: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Path:
    """Write every level of ``image`` as it is (no downsampling), e.g. a napari multiscale.

    Each level keeps its own scale and translation; labels in ``image.labels`` are
    written as they are under ``labels/<name>``.  Levels read from an OME-Zarr keep the
    multiscale ``type`` and ``metadata`` (the downsampling method) stored there.  Same
    safety, atomicity, progress and cancellation as :func:`write_pyramid`, whose
    parameters these are.
    """
    if storage_options:
        options = resolve_storage_options(storage_options, chunks)
        if compressor is DEFAULT_COMPRESSOR:
            compressor = options["compressor"]
        chunks = options["chunks"]
        shards = shards if shards is not None else options["shards"]
    plan = plan_levels(
        image, chunks=chunks, shards=shards, ngff_version=ngff_version, compressor=compressor
    )
    label_plans = _label_plans_for(image, plan, as_is=True)
    return _write_store(
        image,
        path,
        plan,
        label_plans,
        overwrite=overwrite,
        omero=omero,
        progress=progress,
        cancel=cancel,
        workers=workers,
    )
