"""Regions of interest across pyramid levels: boxes in voxels and in physical space.

Conventions
-----------
- A *box* is a pair ``(box_min, box_max)`` of voxel indices, ``box_max`` exclusive,
  in the order of the array axes it covers.  By default a box of length ``k`` covers
  the **last** ``k`` axes of the array (``z, y, x`` of a ``(t, c, z, y, x)`` image);
  pass ``axes=`` to name other ones.  Axes the box does not cover are kept whole.
- Voxel ``i`` of a level is centred at ``translation + i * scale`` (NGFF and napari)
  and covers the physical interval ``[c - scale/2, c + scale/2)``.  A box therefore
  covers ``[translation + (min - 1/2) scale, translation + (max - 1/2) scale)``.
- Mapping a box to another level keeps that physical extent and rounds **outward** to
  whole voxels of the other level (then clips to its shape), so the mapped box always
  covers the original region and exceeds it by less than one voxel of the target
  level on each side.  :func:`scale_box_power_of_two` is the naive ``2**level`` rule
  of the zarrnii documentation, exact only for pyramids whose levels are 2x
  downsamplings on every spatial axis with aligned voxel edges.

- A label image goes with an image level when one of its levels lies on that level's
  grid (:func:`level_on_grid`): same number of voxels and voxel size on every spatial
  axis (matched by name), voxel 0 less than a voxel away.  Cropping the image crops
  that label level with the same box; label images on no grid of it are left out of
  what is written.

Nothing here reads voxels: crops are dask slices that read only the chunks they
overlap when computed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from .._errors import BoxError
from .lazy import as_dask
from .model import Axis, Level, MultiscaleImage

__all__ = [
    "BoxError",
    "box_axes",
    "clip_box",
    "crop_labels",
    "crop_level",
    "index_box",
    "level_on_grid",
    "map_box_between_levels",
    "physical_box",
    "scale_box_power_of_two",
]

log = logging.getLogger(__name__)

#: Differences below this fraction of a voxel are float noise, not a voxel boundary.
_SNAP = 1e-6


# ---------------------------------------------------------------------------------
# boxes
# ---------------------------------------------------------------------------------
def box_axes(ndim: int, box_len: int, axes: Sequence[int] | None = None) -> tuple[int, ...]:
    """The array axes a box of ``box_len`` entries covers: ``axes``, else the last ones.

    Raises
    ------
    BoxError
        The box has more entries than the array has axes, or ``axes`` does not match.
    """
    if axes is None:
        if box_len > ndim:
            raise BoxError(f"a box of {box_len} values does not fit an array of {ndim} axes")
        return tuple(range(ndim - box_len, ndim))
    axes = tuple(int(a) % ndim for a in axes)
    if len(axes) != box_len:
        raise BoxError(f"box has {box_len} values but axes={axes} names {len(axes)} axes")
    return axes


def _pair(box_min: Sequence[float], box_max: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    lo = np.asarray(box_min, dtype=float).ravel()
    hi = np.asarray(box_max, dtype=float).ravel()
    if lo.shape != hi.shape:
        raise BoxError(f"box_min has {lo.size} values, box_max {hi.size}: they must match")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise BoxError("box values must be finite numbers")
    return lo, hi


def _snap(values: np.ndarray) -> np.ndarray:
    rounded = np.round(values)
    return np.where(np.abs(values - rounded) < _SNAP, rounded, values)


def physical_box(
    level: Level,
    box_min: Sequence[float],
    box_max: Sequence[float],
    axes: Sequence[int] | None = None,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Physical extent (voxel edges) of a voxel box of one level.

    Parameters
    ----------
    level
        The level the box indexes.
    box_min, box_max
        Voxel indices, ``box_max`` exclusive, for the axes ``axes`` (default: the
        last ``len(box_min)`` axes).
    axes
        Array axes the box covers.

    Returns
    -------
    (phys_min, phys_max)
        ``translation + (index - 1/2) * scale`` at both corners: the outer edges of
        the first and last voxels of the box, in the level's physical units.
    """
    lo, hi = _pair(box_min, box_max)
    ax = box_axes(len(level.shape), lo.size, axes)
    scale = np.array([level.scale[a] for a in ax])
    trans = np.array([level.translation[a] for a in ax])
    return (
        tuple(float(v) for v in trans + (lo - 0.5) * scale),
        tuple(float(v) for v in trans + (hi - 0.5) * scale),
    )


def index_box(
    level: Level,
    phys_min: Sequence[float],
    phys_max: Sequence[float],
    axes: Sequence[int] | None = None,
    *,
    clip: bool = True,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The smallest voxel box of ``level`` whose voxels cover a physical box.

    Inverse of :func:`physical_box`: rounds outward (``floor`` at the low corner,
    ``ceil`` at the high one, ignoring float noise below 1e-6 voxel).

    Parameters
    ----------
    level
        Target level.
    phys_min, phys_max
        Physical corners, in the level's units, for the axes ``axes``.
    axes
        Array axes the box covers (default: the last ``len(phys_min)``).
    clip
        Clip the result to the level's shape.

    Returns
    -------
    (box_min, box_max)
        Voxel indices, ``box_max`` exclusive.
    """
    lo, hi = _pair(phys_min, phys_max)
    ax = box_axes(len(level.shape), lo.size, axes)
    scale = np.array([level.scale[a] for a in ax])
    trans = np.array([level.translation[a] for a in ax])
    if np.any(scale <= 0):
        raise BoxError(f"level '{level.path}': scale {tuple(scale)} must be positive")
    first = np.floor(_snap((lo - trans) / scale + 0.5)).astype(np.int64)
    stop = np.ceil(_snap((hi - trans) / scale + 0.5)).astype(np.int64)
    if clip:
        shape = np.array([level.shape[a] for a in ax])
        first = np.clip(first, 0, shape)
        stop = np.clip(stop, 0, shape)
    return tuple(int(v) for v in first), tuple(int(v) for v in stop)


def map_box_between_levels(
    box_min: Sequence[float],
    box_max: Sequence[float],
    from_level: Level,
    to_level: Level,
    axes: Sequence[int] | None = None,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Map a voxel box from one level to another through physical space.

    Uses each level's real ``scale`` and ``translation``, so it is right for any
    downsampling factors (2x, 3x, anisotropic, z kept) and for pyramids whose
    levels are shifted by half voxels (mean downsampling).  The physical extent of
    the box's voxel edges is kept; the result is rounded outward to whole voxels and
    clipped to the target shape.

    Parameters
    ----------
    box_min, box_max
        Voxel box of ``from_level`` (``box_max`` exclusive).
    from_level, to_level
        Levels of the same image (same axes).
    axes
        Array axes the box covers (default: the last ``len(box_min)``).

    Returns
    -------
    (box_min, box_max)
        Voxel box of ``to_level``.
    """
    pmin, pmax = physical_box(from_level, box_min, box_max, axes)
    return index_box(to_level, pmin, pmax, axes)


def scale_box_power_of_two(
    box_min: Sequence[float],
    box_max: Sequence[float],
    from_level: int,
    to_level: int,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The zarrnii documentation's rule: multiply a box by ``2 ** (from_level - to_level)``.

    Only right for isotropic pyramids downsampled 2x on every box axis at every level
    with aligned voxel edges; use :func:`map_box_between_levels` for anything else
    (anisotropic factors, z kept, other translations).  Going to a coarser level the
    box is rounded outward.

    Parameters
    ----------
    box_min, box_max
        Voxel box at pyramid level ``from_level`` (``box_max`` exclusive).
    from_level, to_level
        Pyramid level numbers.

    Returns
    -------
    (box_min, box_max)
    """
    lo, hi = _pair(box_min, box_max)
    factor = 2.0 ** (from_level - to_level)
    return (
        tuple(int(v) for v in np.floor(_snap(lo * factor))),
        tuple(int(v) for v in np.ceil(_snap(hi * factor))),
    )


def clip_box(
    shape: Sequence[int],
    box_min: Sequence[float],
    box_max: Sequence[float],
    axes: Sequence[int],
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Whole-voxel box (floor/ceil) clipped to ``shape``; BoxError if empty or inverted."""
    lo, hi = _pair(box_min, box_max)
    if np.any(hi < lo):
        raise BoxError(f"box_max ({_fmt(hi)}) is below box_min ({_fmt(lo)})")
    lo_i = np.floor(_snap(lo)).astype(np.int64)
    hi_i = np.ceil(_snap(hi)).astype(np.int64)
    sizes = np.array([shape[a] for a in axes])
    c_lo, c_hi = np.clip(lo_i, 0, sizes), np.clip(hi_i, 0, sizes)
    if np.any(c_hi <= c_lo):
        raise BoxError(
            f"box ({_fmt(lo_i)})-({_fmt(hi_i)}) does not overlap the image "
            f"(shape {_fmt(sizes)} on these axes)"
        )
    if np.any(c_lo != lo_i) or np.any(c_hi != hi_i):
        log.warning(
            "box (%s)-(%s) reaches beyond the image (shape %s on these axes); clipped to "
            "(%s)-(%s)",
            _fmt(lo_i),
            _fmt(hi_i),
            _fmt(sizes),
            _fmt(c_lo),
            _fmt(c_hi),
        )
    return tuple(int(v) for v in c_lo), tuple(int(v) for v in c_hi)


def _fmt(values: Sequence[float] | np.ndarray) -> str:
    """Numbers as ``'10, 5.5, 3'`` for messages (no numpy reprs)."""
    return ", ".join(f"{float(v):g}" for v in np.ravel(values))


def crop_level(
    level: Level,
    box_min: Sequence[float],
    box_max: Sequence[float],
    axes: Sequence[int] | None = None,
) -> Level:
    """A new level holding the voxels of a box, placed exactly over the source.

    Parameters
    ----------
    level
        The level to crop.
    box_min, box_max
        Voxel box (``box_max`` exclusive) for ``axes`` (default: the last
        ``len(box_min)`` axes); other axes are kept whole.  Float values are rounded
        outward; the box is clipped to the level's shape.
    axes
        Array axes the box covers.

    Returns
    -------
    Level
        Same path and scale; ``data`` is a dask slice of the level (computing it reads
        only the stored chunks the box overlaps); ``translation`` is the source's plus
        ``box_min * scale``, so crop voxel 0 has the world position of source voxel
        ``box_min``.

    Raises
    ------
    BoxError
        The box is inverted or does not overlap the level.
    """
    n = len(level.shape)
    ax = box_axes(n, len(np.ravel(box_min)), axes)
    lo, hi = clip_box(level.shape, box_min, box_max, ax)
    key: list[slice] = [slice(None)] * n
    translation = list(level.translation)
    for a, start, stop in zip(ax, lo, hi):
        key[a] = slice(start, stop)
        translation[a] = level.translation[a] + start * level.scale[a]
    data = as_dask(level.data)[tuple(key)]
    return Level(path=level.path, data=data, scale=level.scale, translation=tuple(translation))


def level_on_grid(image: MultiscaleImage, grid: Level, grid_axes: Sequence[Axis]) -> int | None:
    """The level of ``image`` whose voxels coincide with those of ``grid``, or None.

    Parameters
    ----------
    image
        A label image (or any image) of the same scene.
    grid
        A level of the image it belongs to, with axes ``grid_axes``.
    grid_axes
        The axes of ``grid``.

    Returns
    -------
    int or None
        The first level of ``image`` with the same number of voxels and voxel size as
        ``grid`` on every spatial axis of ``grid`` (axes matched by name), its voxel 0
        less than one voxel away (strided and block-mean pyramids put a level's voxel 0
        half a voxel apart).  None when ``image`` lacks one of those axes or no level
        matches.
    """
    names = [a.name for a in image.axes]
    spatial = [i for i, a in enumerate(grid_axes) if a.type == "space"]
    if any(names.count(grid_axes[i].name) != 1 for i in spatial):
        return None
    where = [(i, names.index(grid_axes[i].name)) for i in spatial]
    for k, level in enumerate(image.levels):
        same = all(
            level.shape[j] == grid.shape[i]
            and math.isclose(level.scale[j], grid.scale[i], rel_tol=1e-6)
            and abs(level.translation[j] - grid.translation[i]) < abs(grid.scale[i])
            for i, j in where
        )
        if same:
            return k
    return None


def crop_labels(
    labels: dict[str, MultiscaleImage],
    grid: Level,
    grid_axes: Sequence[Axis],
    box_min: Sequence[float],
    box_max: Sequence[float],
) -> dict[str, MultiscaleImage]:
    """Crop the label images lying on ``grid`` with the box that crops ``grid``.

    Parameters
    ----------
    labels
        Label images by name.
    grid, grid_axes
        The image level being cropped and its axes.
    box_min, box_max
        The box, one value per spatial axis of ``grid`` in array order.

    Returns
    -------
    dict
        Every label image by name: those with a level on ``grid`` (see
        :func:`level_on_grid`) reduced to that level cropped with the box, so they lie
        on the grid of the crop; the others unchanged (they are on no grid of the crop
        and are not written with it).
    """
    out: dict[str, MultiscaleImage] = {}
    spatial = [a.name for a in grid_axes if a.type == "space"]
    for name, label in labels.items():
        k = level_on_grid(label, grid, grid_axes)
        if k is None:
            log.info("label image %r is not on the grid of the cropped level: left out", name)
            out[name] = label
            continue
        axes = [label.axis_names.index(n) for n in spatial]
        cropped = crop_level(label.levels[k], box_min, box_max, axes=axes)
        out[name] = label.replace(levels=[cropped])
    return out
