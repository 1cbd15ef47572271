"""Pyramid plans: the levels to write, described before any data is read.

:func:`plan_pyramid` plans a pyramid built from level 0 (shape, factors, scale,
translation, chunks, shards and size of every level); :func:`plan_levels` plans writing
the levels of a multiscale image as they are.  A widget previews
:meth:`PyramidPlan.table` and hands the same plan to the writer.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast

import numpy as np

from ..model import Axis, MultiscaleImage
from ..ngff import DEFAULT_NGFF_VERSION, spec_for
from ..storage import format_bytes
from .codecs import DEFAULT_COMPRESSOR, Compressor, describe_compressor
from .kernels import LABEL_METHODS, SCALING_METHODS

__all__ = ["AS_IS", "LevelPlan", "PyramidPlan", "default_shards", "plan_levels", "plan_pyramid"]

log = logging.getLogger(__name__)

#: The plan method of :func:`~.write.write_levels`: levels copied as they are.
AS_IS = "as-is"

#: Chunks or shards: an int for every spatial axis, or one int per axis or per spatial
#: axis, in array order.
AxisSizes: TypeAlias = int | Sequence[int]
#: Downsample factors: :data:`AxisSizes` applied at every level, or one such tuple per
#: level transition.
Factors: TypeAlias = int | Sequence[int] | Sequence[Sequence[int]]

_SQRT2 = math.sqrt(2.0)


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
        ``'0.4'`` (zarr v2), ``'0.5'`` or ``'0.6'`` (zarr v3).
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
    dtype: np.dtype[Any]
    axes: tuple[Axis, ...]
    compressor: Compressor = field(default=DEFAULT_COMPRESSOR, compare=False)

    @property
    def zarr_format(self) -> int:
        """Zarr format the plan writes (2 for NGFF 0.4, 3 for 0.5 and 0.6)."""
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
                f"{row['n_chunks']:>8}  {format_bytes(row['bytes']):>10}"
            )
        lines.append(f"total {format_bytes(self.total_bytes)} uncompressed")
        return "\n".join(lines)


def _spatial_axes(axes: Sequence[Axis]) -> list[int]:
    return [i for i, a in enumerate(axes) if a.type == "space"]


def _default_chunks(axes: Sequence[Axis]) -> tuple[int, ...]:
    spatial = _spatial_axes(axes)
    size = {1: 4096, 2: 512, 3: 128}.get(len(spatial), 64)
    return tuple(size if i in spatial else 1 for i in range(len(axes)))


def _per_axis(
    value: AxisSizes | None, axes: Sequence[Axis], what: str, default: tuple[int, ...]
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


def default_shards(
    axes: Sequence[Axis], chunks: AxisSizes | None = None, chunks_per_shard: int = 2
) -> tuple[int, ...]:
    """Shards of ``chunks_per_shard`` chunks along every spatial axis (one elsewhere).

    ``chunks`` as :func:`plan_pyramid` takes them (default: its default chunks); the
    result is a valid ``shards=`` for the same chunks.
    """
    base = _per_axis(chunks, axes, "chunks", _default_chunks(axes))
    n = max(1, int(chunks_per_shard))
    return tuple(c * n if a.type == "space" else c for a, c in zip(axes, base))


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
    downsample_factors: Factors | None, axes: Sequence[Axis], max_layer: int
) -> list[tuple[int, ...]] | None:
    """Explicit factors as one full per-axis tuple per level transition, or None for auto."""
    if downsample_factors is None:
        return None
    spatial = _spatial_axes(axes)
    ones = (1,) * len(axes)
    items: list[object] = (
        list(downsample_factors) if not isinstance(downsample_factors, (int, np.integer)) else []
    )
    per_level = bool(items) and all(not isinstance(v, (int, np.integer)) for v in items)
    if per_level:  # one entry per level transition (used for label images)
        schedule = [_per_axis(cast(AxisSizes, v), axes, "downsample_factors", ones) for v in items]
    else:
        every = cast(AxisSizes, downsample_factors)
        schedule = [_per_axis(every, axes, "downsample_factors", ones)] * max_layer
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
    downsample_factors: Factors | None = None,
    chunks: AxisSizes | None = None,
    shards: AxisSizes | None = None,
    scaling_method: str = "local_mean",
    ngff_version: str = DEFAULT_NGFF_VERSION,
    compressor: Compressor = DEFAULT_COMPRESSOR,
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
        Shard shape (zarr v3: NGFF 0.5 and 0.6 only), same forms as ``chunks``; must
        be a multiple of the chunks.  Writes work shard by shard, so memory is about
        ``shard size x workers``.
    scaling_method
        One of :data:`SCALING_METHODS`.  For a label image a method other than
        ``'mode'``/``'nearest'`` falls back to ``'mode'`` with a warning.
    ngff_version
        ``'0.4'`` (zarr v2), ``'0.5'`` or ``'0.6'`` (zarr v3); see
        :data:`~napari_zarrnii.core.ngff.WRITABLE_VERSIONS`.
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
    shards: AxisSizes | None, axes: Sequence[Axis], chunks: tuple[int, ...], zarr_format: int
) -> tuple[int, ...] | None:
    if shards is None:
        return None
    if zarr_format < 3:
        raise ValueError("shards need zarr v3 (OME-NGFF 0.5 or 0.6); NGFF 0.4 stores cannot shard")
    out = _per_axis(shards, axes, "shards", chunks)
    bad = [(s, c) for s, c in zip(out, chunks) if s % c]
    if bad:
        raise ValueError(f"shards {out} must be a multiple of the chunks {chunks} on every axis")
    return out


def plan_levels(
    image: MultiscaleImage,
    *,
    chunks: AxisSizes | None = None,
    shards: AxisSizes | None = None,
    ngff_version: str = DEFAULT_NGFF_VERSION,
    compressor: Compressor = DEFAULT_COMPRESSOR,
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
