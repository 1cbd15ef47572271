"""One description of a multiscale image, shared by the reader, the API and the writer.

The model knows nothing of files, napari or Qt.  A :class:`MultiscaleImage` holds the
axes (name, type, unit), one array per pyramid level (a zarr array, a dask array or
any lazy array-like: nothing is read by building a model), the physical scale and
translation of every level, the channels (label, colour, window, visibility), its
label images and the metadata it was read from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .._errors import InvalidMetadataError

__all__ = [
    "AXIS_TYPES",
    "AXIS_TYPE_BY_NAME",
    "DEFAULT_CHANNEL_COLORS",
    "Axis",
    "ChannelInfo",
    "Level",
    "MultiscaleImage",
    "Window",
    "axis_type_of",
    "default_axes",
    "default_channel_color",
    "integer_factor",
    "normalize_color",
    "window_problem",
]

AXIS_TYPES = ("time", "channel", "space")

#: The NGFF type of the conventional axis names (``t``, ``c``, ``z``, ``y``, ``x``).
AXIS_TYPE_BY_NAME = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}

#: Colours cycled through for channels that have none, as in most viewers.
DEFAULT_CHANNEL_COLORS = ("00FF00", "FF00FF", "00FFFF", "FF0000", "0000FF", "FFFF00", "FFFFFF")


def axis_type_of(name: str, default: str | None = "space") -> str | None:
    """The NGFF axis type a conventional name implies (``'t'`` is time), else ``default``."""
    return AXIS_TYPE_BY_NAME.get(name, default)


def default_channel_color(index: int, n_channels: int) -> str:
    """The colour of channel ``index`` of ``n_channels`` that has none: white when alone."""
    if n_channels == 1:
        return "FFFFFF"
    return DEFAULT_CHANNEL_COLORS[index % len(DEFAULT_CHANNEL_COLORS)]


_NAMED_COLORS = {
    "red": "FF0000",
    "green": "00FF00",
    "blue": "0000FF",
    "cyan": "00FFFF",
    "magenta": "FF00FF",
    "yellow": "FFFF00",
    "white": "FFFFFF",
    "gray": "FFFFFF",
    "grey": "FFFFFF",
    "black": "000000",
    "orange": "FF8000",
}


def normalize_color(color: Any) -> str | None:
    """Return a colour as the six upper-case hex digits OME ``omero`` uses, or None.

    Accepts ``'00FF00'``, ``'#00ff00'``, ``'#00FF00FF'`` (alpha dropped), colour names
    (``'blue'``), an RGB(A) sequence of floats in 0-1 or ints in 0-255, and the
    OME-XML signed 32-bit RGBA integer.  Anything else gives None, never an error.
    """
    if color is None:
        return None
    if isinstance(color, str):
        text = color.strip().lower()
        if text in _NAMED_COLORS:
            return _NAMED_COLORS[text]
        text = text.removeprefix("#").removeprefix("0x")
        if len(text) in (6, 8) and all(c in "0123456789abcdef" for c in text):
            return text[:6].upper()
        if len(text) == 3 and all(c in "0123456789abcdef" for c in text):
            return "".join(c * 2 for c in text).upper()
        return None
    if isinstance(color, (int, np.integer)) and not isinstance(color, bool):
        rgba = int(color) & 0xFFFFFFFF
        return f"{rgba >> 8:06X}"
    try:
        values = [float(v) for v in color]
    except (TypeError, ValueError):
        return None
    if len(values) not in (3, 4):
        return None
    if all(0.0 <= v <= 1.0 for v in values):
        values = [v * 255.0 for v in values]
    if not all(0.0 <= v <= 255.0 for v in values):
        return None
    return "".join(f"{round(v):02X}" for v in values[:3])


@dataclass(frozen=True)
class Axis:
    """One array axis: name, NGFF type (``space``, ``time``, ``channel`` or None), unit.

    ``orientation`` is the RFC-4 anatomical orientation of a spatial axis, the
    direction in which its coordinates grow (``'left-to-right'``,
    ``'anterior-to-posterior'``, ...), or None where the metadata gives none.
    """

    name: str
    type: str | None = None
    unit: str | None = None
    orientation: str | None = None


def default_axes(ndim: int) -> tuple[Axis, ...]:
    """The NGFF default axes for ``ndim`` dimensions: the last of ``t, c, z, y, x``."""
    if not 1 <= ndim <= 5:
        raise ValueError(f"OME-NGFF images have 2 to 5 dimensions, not {ndim}")
    names = ("t", "c", "z", "y", "x")[-ndim:]
    return tuple(Axis(n, axis_type_of(n)) for n in names)


def integer_factor(n0: int, n: int) -> float:
    """The integer factor that shrinks ``n0`` voxels to ``n``, else the ratio ``n0 / n``.

    Pyramids of odd sizes have ``ceil(n0 / f)`` (or ``floor``) voxels per level: 37
    voxels shrink to 19 by a factor of 2, not of 37/19.
    """
    if n <= 0 or n0 <= 0:
        return 1.0
    ratio = n0 / n
    candidates = sorted({max(1, math.floor(ratio)), max(1, math.ceil(ratio))})
    for f in sorted(candidates, key=lambda f: abs(f - ratio)):
        if -(-n0 // f) == n or n0 // f == n:
            return float(f)
    return ratio


@dataclass(frozen=True)
class Window:
    """Display window of a channel: ``start``-``end`` shown, ``min``-``max`` the data range."""

    start: float
    end: float
    min: float
    max: float


def window_problem(
    start: float | None,
    end: float | None,
    low: float | None = None,
    high: float | None = None,
) -> str | None:
    """Why a display window is unusable, or None: the one rule of the reader and writers.

    The values given (``start``, ``end``, ``min``, ``max``; None is "not given") must be
    finite, and ``start`` below ``end``.  ``min`` and ``max`` need no order: saving widens
    them to include the window.  An ``omero`` window that breaks the rule is ignored
    when read (:func:`~.ngff.parse_omero`) and refused when written.
    """
    named = {"start": start, "end": end, "min": low, "max": high}
    bad = [k for k, v in named.items() if v is not None and not math.isfinite(float(v))]
    if bad:
        return f"{', '.join(bad)} must be finite, not {', '.join(str(named[k]) for k in bad)}"
    if start is not None and end is not None and not start < end:
        return f"start ({start:g}) must be below end ({end:g})"
    return None


@dataclass(frozen=True)
class ChannelInfo:
    """Display information of one channel, as OME ``omero`` channels hold it."""

    label: str
    color: str = "FFFFFF"
    window: Window | None = None
    active: bool = True
    inverted: bool = False


@dataclass(frozen=True)
class Level:
    """One pyramid level: a lazy array and its placement in physical space.

    ``scale`` and ``translation`` have one entry per axis (1 and 0 for non-spatial
    axes).  The physical coordinate of voxel index ``i`` along an axis is
    ``translation + i * scale``: the centre of the voxel, as in NGFF and napari.
    """

    path: str
    data: Any
    scale: tuple[float, ...]
    translation: tuple[float, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the level's array."""
        return tuple(int(s) for s in self.data.shape)

    @property
    def chunks(self) -> tuple[int, ...] | None:
        """Chunk shape of the level's array (first chunk for dask), or None."""
        chunks = getattr(self.data, "chunks", None)
        if chunks is None:
            return None
        if chunks and isinstance(chunks[0], tuple):  # dask: tuple of tuples
            return tuple(int(c[0]) for c in chunks)
        return tuple(int(c) for c in chunks)


@dataclass
class MultiscaleImage:
    """A multiscale image: axes, levels (finest first), channels, labels and metadata.

    Attributes
    ----------
    axes
        One :class:`Axis` per array dimension, in storage order.
    levels
        Pyramid levels, finest (level 0) first.
    name
        The multiscale's name, if any.
    channels
        One :class:`ChannelInfo` per index of the channel axis (empty without one).
    labels
        Label images stored with this image (NGFF ``labels/``), by name.
    is_label
        True for a label (segmentation) image.
    label_colors
        For a label image: label value to RGBA (0-1 floats), from ``image-label``.
    label_properties
        For a label image: the ``image-label`` ``properties`` list as stored.
    source
        Path or URL the image was read from (None when built in memory).
    ngff_version
        The NGFF version it was read as, or None.
    attrs
        The raw attributes it was read from (the whole ``ome``/root dict).
    world_affine
        Optional homogeneous affine, (n+1, n+1) over the array axes, applied after
        scale and translation: set for oblique NIfTI images and for NGFF 0.6 images
        shown in a coordinate system reached by rotation, shear or axis mapping.
    notes
        Human-readable notes about what the reader ignored or guessed.
    """

    axes: tuple[Axis, ...]
    levels: list[Level]
    name: str | None = None
    channels: list[ChannelInfo] = field(default_factory=list)
    labels: dict[str, MultiscaleImage] = field(default_factory=dict)
    is_label: bool = False
    label_colors: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)
    label_properties: list[dict[str, Any]] = field(default_factory=list)
    source: str | None = None
    ngff_version: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    world_affine: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError("a multiscale image needs at least one level")
        ndim = len(self.axes)
        for level in self.levels:
            if len(level.shape) != ndim:
                raise ValueError(
                    f"level '{level.path}' has {len(level.shape)} dimensions, "
                    f"the axes {self.axis_names} have {ndim}"
                )
            if len(level.scale) != ndim or len(level.translation) != ndim:
                raise ValueError(f"level '{level.path}': scale/translation need {ndim} values")
            self._check_placement(level)

    def _check_placement(self, level: Level) -> None:
        """Refuse a scale of 0 or a non-finite scale or translation (napari refuses them)."""
        where = self.source or self.name or "image"
        for what, values in (("scale", level.scale), ("translation", level.translation)):
            bad = [
                self.axes[i].name
                for i, v in enumerate(values)
                if not math.isfinite(v) or (what == "scale" and v == 0)
            ]
            if bad:
                shown = ", ".join(f"{v:g}" for v in values)
                need = "non-zero finite numbers" if what == "scale" else "finite numbers"
                raise InvalidMetadataError(
                    where,
                    f"level '{level.path}' {what}",
                    f"({shown}) on axes {', '.join(bad)}: must be {need}",
                    kind="image",
                )

    # -- axes -----------------------------------------------------------------
    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.axes)

    @property
    def axis_names(self) -> tuple[str, ...]:
        """Axis names in array order."""
        return tuple(a.name for a in self.axes)

    @property
    def units(self) -> tuple[str | None, ...]:
        """Axis units in array order (None where unset)."""
        return tuple(a.unit for a in self.axes)

    def axis_index(self, kind: str) -> int | None:
        """Index of the first axis of NGFF type ``kind`` (``'channel'``, ``'time'``), or None."""
        for i, axis in enumerate(self.axes):
            if axis.type == kind:
                return i
        return None

    @property
    def channel_axis(self) -> int | None:
        """Index of the channel axis, or None."""
        return self.axis_index("channel")

    @property
    def time_axis(self) -> int | None:
        """Index of the time axis, or None."""
        return self.axis_index("time")

    @property
    def spatial_axes(self) -> tuple[int, ...]:
        """Indices of the spatial axes, in array order."""
        return tuple(i for i, a in enumerate(self.axes) if a.type == "space")

    # -- levels ---------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of level 0."""
        return self.levels[0].shape

    @property
    def dtype(self) -> np.dtype:
        """Data type of level 0."""
        return np.dtype(self.levels[0].data.dtype)

    @property
    def num_levels(self) -> int:
        """Number of pyramid levels."""
        return len(self.levels)

    @property
    def num_channels(self) -> int:
        """Size of the channel axis (1 without one)."""
        axis = self.channel_axis
        return 1 if axis is None else self.shape[axis]

    def channel_infos(self) -> list[ChannelInfo]:
        """Channel information for every channel, filling gaps with defaults."""
        infos = list(self.channels[: self.num_channels])
        for i in range(len(infos), self.num_channels):
            color = default_channel_color(i, self.num_channels)
            infos.append(
                ChannelInfo(label=f"channel {i}" if self.num_channels > 1 else "", color=color)
            )
        return infos

    def replace(self, **changes: Any) -> MultiscaleImage:
        """A copy with some fields changed (levels, channels, ...)."""
        return replace(self, **changes)

    def select_levels(self, indices: Sequence[int]) -> MultiscaleImage:
        """A copy keeping only the given levels (in the order given)."""
        return self.replace(levels=[self.levels[i] for i in indices])

    def physical_extent(self, level: int = 0) -> tuple[tuple[float, float], ...]:
        """Per axis, the physical (min edge, max edge) covered by a level's voxels."""
        lvl = self.levels[level]
        return tuple(
            (t - 0.5 * s, t + (n - 0.5) * s)
            for n, s, t in zip(lvl.shape, lvl.scale, lvl.translation)
        )
