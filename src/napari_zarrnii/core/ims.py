"""Imaris ``.ims`` files (HDF5 pyramids) -> :class:`~.model.MultiscaleImage`, lazily.

``h5py`` is optional: it is imported only when a file is read, and its absence raises
:class:`~napari_zarrnii.MissingDependencyError` naming the ``ims`` extra.

Layout read (Imaris 5.5 file format)::

    /                                       ImarisDataSet, ImarisVersion, DataSetDirectoryName, ...
    /DataSetInfo/Image                      X, Y, Z (voxels), ExtMin0..2, ExtMax0..2, Unit
    /DataSetInfo/Channel C                  Name, Color ("r g b", 0-1), ColorRange ("min max")
    /DataSetInfo/TimeInfo                   TimePoint1..N ("YYYY-MM-DD HH:MM:SS.mmm")
    /DataSet/ResolutionLevel R/TimePoint T/Channel C/Data      (z, y, x), chunked
                           .../Channel C    ImageSizeX, ImageSizeY, ImageSizeZ

Every attribute value is stored as an array of single characters (``|S1``); they
are decoded here.  Imaris pads each ``Data`` dataset up to whole chunks: the real size
of a level is in the ``ImageSize*`` attributes of its channel groups, and only that
part is ever shown or read.

Axes
    ``([t,] [c,] [z,] y, x)``: ``t`` when the file has more than one time point, ``c``
    with more than one channel, ``z`` when level 0 has more than one plane.
Geometry
    ``ExtMin``/``ExtMax`` (index 0 is x, 1 is y, 2 is z) are the outer edges of the
    voxel grid in ``Unit``.  Every level covers the same extent, so the voxel size of
    a level is ``(ExtMax - ExtMin) / size`` and the centre of its first voxel
    ``ExtMin + voxel_size / 2``.  A missing or empty extent gives 1 per voxel (noted).
Time
    Evenly spaced ``TimeInfo`` time stamps give the time step in seconds; otherwise
    the time axis counts time points (noted).
Channels
    ``Name`` (default ``channel N``), ``Color`` as the channel colour and
    ``ColorRange`` as the display window.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import threading
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import MissingDependencyError, NotAnImageError
from .lazy import LazyArray
from .model import Axis, ChannelInfo, Level, MultiscaleImage, Window, default_channel_color
from .model import normalize_color as _normalize_color
from .store import is_url, normalize_source

__all__ = ["IMS_SUFFIXES", "ImsLevelArray", "read_ims"]

log = logging.getLogger(__name__)

#: File name endings read as Imaris (compared in lower case).
IMS_SUFFIXES = (".ims",)

_LENGTH_UNITS = {
    "pm": "picometer",
    "nm": "nanometer",
    "um": "micrometer",
    "µm": "micrometer",
    "μm": "micrometer",  # greek mu
    "micron": "micrometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
}
_UNNAMED = ("", "(name not specified)")
_LEVEL = re.compile(r"^ResolutionLevel (\d+)$")
_TIME = re.compile(r"^TimePoint (\d+)$")
_CHANNEL = re.compile(r"^Channel (\d+)$")
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:
        raise MissingDependencyError(
            "reading Imaris (.ims) files needs the optional package 'h5py' "
            "(pip install 'napari-zarrnii[ims]')"
        ) from exc
    return h5py


def _text(value: Any) -> str:
    """An Imaris attribute value (an array of single characters, usually) as text."""
    if value is None:
        return ""
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "S":
            raw = b"".join(bytes(v) for v in value.reshape(-1))
        elif value.size == 1:
            return str(value.reshape(-1)[0])
        else:
            return " ".join(str(v) for v in value.reshape(-1))
    elif isinstance(value, (bytes, np.bytes_)):
        raw = bytes(value)
    else:
        return str(value).strip("\x00 ")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.strip("\x00 ")


def _float(value: Any) -> float | None:
    try:
        number = float(_text(value))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _floats(value: Any) -> list[float] | None:
    parts = _text(value).replace(",", " ").split()
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        return None
    return numbers if numbers and all(math.isfinite(n) for n in numbers) else None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number is not None and number == int(number) else None


def _numbered(group: Any, pattern: re.Pattern[str]) -> list[tuple[int, str]]:
    """``(number, name)`` of the members whose name matches ``pattern``, by number."""
    found = [(int(m.group(1)), name) for name in group if (m := pattern.match(name))]
    return sorted(found)


# ---------------------------------------------------------------------------------
# lazy access to the pixels
# ---------------------------------------------------------------------------------
class _ImsSource:
    """The file behind the levels: opened read-only on first read, shared by all levels.

    The HDF5 file stays open while any level array exists and is closed when the last
    one goes (or by :meth:`close`).  Pickling keeps the path only: the copy opens the
    file again, and refuses a file that changed since it was described.
    """

    def __init__(self, path: str, dataset: str, stamp: tuple[int, int]) -> None:
        self.path = path
        self.dataset = dataset
        self.stamp = stamp
        self._lock = threading.Lock()
        self._file: Any = None
        self._closer: weakref.finalize | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "dataset": self.dataset, "stamp": self.stamp}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["dataset"], state["stamp"])  # type: ignore[misc]

    def _open(self) -> Any:
        with self._lock:
            if self._file is not None:
                return self._file
            h5py = _h5py()
            try:
                stat = os.stat(self.path)
            except OSError as exc:
                raise NotAnImageError(f"{self.path}: cannot open the Imaris file ({exc})") from exc
            if (stat.st_size, stat.st_mtime_ns) != self.stamp:
                raise NotAnImageError(f"{self.path}: the Imaris file changed since it was opened")
            try:
                handle = h5py.File(self.path, "r")
            except OSError as exc:
                raise NotAnImageError(f"{self.path}: cannot open the Imaris file ({exc})") from exc
            self._file = handle
            self._closer = weakref.finalize(self, handle.close)
            return handle

    @property
    def is_open(self) -> bool:
        """True while the HDF5 file is open."""
        return self._file is not None

    def close(self) -> None:
        """Close the file (the next read opens it again)."""
        with self._lock:
            if self._closer is not None:
                self._closer()
            self._file = self._closer = None

    def read(self, level: int, t: int, c: int, box: tuple[slice, ...]) -> np.ndarray:
        """Voxels ``box`` (z, y, x) of one channel at one time point and level."""
        where = f"{self.dataset}/ResolutionLevel {level}/TimePoint {t}/Channel {c}/Data"
        handle = self._open()
        try:
            return np.asarray(handle[where][box])
        except KeyError as exc:
            raise NotAnImageError(f"{self.path}: the Imaris file has no '{where}'") from exc
        except (OSError, ValueError, TypeError) as exc:
            raise NotAnImageError(f"{self.path}: cannot read '{where}' ({exc})") from exc


class ImsLevelArray(LazyArray):
    """One resolution level of an Imaris file as a lazy, read-only array.

    Axes ``([t,] [c,] [z,] y, x)`` (see :func:`read_ims`); the shape is the real image
    size of the level, not the padded size of its HDF5 datasets.  A read visits one
    dataset per time point and channel in the box and reads only the voxels asked
    for; ``chunks`` is the HDF5 chunk shape (one time point, one channel).
    Picklable: a copy opens the file again by its path.
    """

    def __init__(
        self,
        source: _ImsSource,
        level: int,
        counts: tuple[int, int],
        size_zyx: tuple[int, int, int],
        keep: tuple[bool, bool, bool],
        dtype: Any,
        chunks_zyx: tuple[int, int, int] | None,
    ) -> None:
        self._source = source
        self._level = level
        self._full = (*counts, *size_zyx)  # t, c, z, y, x
        self._keep = (*keep, True, True)  # t, c, z kept or not; y, x always
        self.shape = tuple(n for n, k in zip(self._full, self._keep) if k)
        self.dtype = np.dtype(dtype)
        self._chunks: tuple[int, ...] | None = None
        if chunks_zyx is not None:
            full = (1, 1, *(max(1, min(c, n)) for c, n in zip(chunks_zyx, size_zyx)))
            self._chunks = tuple(c for c, k in zip(full, self._keep) if k)

    @property
    def chunks(self) -> tuple[int, ...] | None:
        """HDF5 chunk shape on the kept axes (1 for time points and channels)."""
        return self._chunks

    @property
    def level(self) -> int:
        """The Imaris resolution level this array reads."""
        return self._level

    def __repr__(self) -> str:
        return f"ImsLevelArray({self._source.path!r}, level={self._level}, shape={self.shape})"

    def _read(self, box: tuple[slice, ...]) -> np.ndarray:
        given = iter(box)
        full = [next(given) if k else slice(0, 1, 1) for k in self._keep]
        times = range(full[0].start, full[0].stop, full[0].step)
        channels = range(full[1].start, full[1].stop, full[1].step)
        zyx = tuple(full[2:])
        out_shape = (
            len(times),
            len(channels),
            *(len(range(s.start, s.stop, s.step)) for s in zyx),
        )
        out = np.empty(out_shape, dtype=self.dtype)
        if out.size:
            for i, t in enumerate(times):
                for j, c in enumerate(channels):
                    out[i, j] = self._source.read(self._level, t, c, zyx)
        return out.reshape(tuple(n for n, k in zip(out_shape, self._keep) if k))


# ---------------------------------------------------------------------------------
# metadata
# ---------------------------------------------------------------------------------
def _level_size(
    channel_group: Any, data_shape: tuple[int, ...], fallback: Sequence[int] | None
) -> tuple[tuple[int, int, int], bool]:
    """Real (z, y, x) size of a level, and whether it came from ``ImageSize*``."""
    attrs = channel_group.attrs
    sizes = [_int(attrs.get(f"ImageSize{a}")) for a in "ZYX"]
    if all(s is not None and s > 0 for s in sizes):
        return (int(sizes[0]), int(sizes[1]), int(sizes[2])), True  # type: ignore[arg-type]
    if fallback is not None:
        return (int(fallback[0]), int(fallback[1]), int(fallback[2])), False
    return (int(data_shape[0]), int(data_shape[1]), int(data_shape[2])), False


def _geometry(
    info: Any, size0: tuple[int, int, int], src: str, notes: list[str]
) -> tuple[list[float], list[float], str | None]:
    """Extent (z, y, x), its lower edge (z, y, x) and the unit from ``DataSetInfo/Image``."""
    attrs = info.attrs if info is not None else {}
    lows, spans = [], []
    missing = []
    for axis, index in (("z", 2), ("y", 1), ("x", 0)):
        low = _float(attrs.get(f"ExtMin{index}"))
        high = _float(attrs.get(f"ExtMax{index}"))
        n = size0["zyx".index(axis)]
        if low is None or high is None or high <= low:
            missing.append(axis)
            lows.append(0.0 if low is None else low)
            spans.append(float(n))
        else:
            lows.append(low)
            spans.append(high - low)
    if missing:
        notes.append(f"no usable ExtMin/ExtMax for axes {', '.join(missing)}; 1 per voxel there")
        log.warning("%s: %s", src, notes[-1])
    symbol = _text(attrs.get("Unit"))
    unit = _LENGTH_UNITS.get(symbol) or _LENGTH_UNITS.get(symbol.lower())
    if unit is None:
        if symbol:
            notes.append(f"length unit '{symbol}' is not known; left unset")
        else:
            unit = "micrometer"  # Imaris' own default
            notes.append("no length unit in DataSetInfo/Image; micrometres assumed")
    return spans, lows, unit


def _time_step(time_info: Any, n_t: int, notes: list[str]) -> tuple[float, str | None]:
    """Seconds between evenly spaced time points, else (1, None)."""
    if n_t < 2:
        return 1.0, None
    attrs = time_info.attrs if time_info is not None else {}
    stamps: list[datetime] = []
    for t in range(1, n_t + 1):
        text = _text(attrs.get(f"TimePoint{t}"))
        for fmt in _TIME_FORMATS:
            try:
                stamps.append(datetime.strptime(text, fmt))
                break
            except ValueError:
                continue
        else:
            notes.append("time points without readable time stamps; the time axis counts them")
            return 1.0, None
    steps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
    first = steps[0]
    if first > 0 and all(math.isclose(s, first, rel_tol=1e-2) for s in steps):
        return first, "second"
    notes.append("time points are not evenly spaced; the time axis counts them")
    return 1.0, None


def _channel(attrs: Mapping[str, Any], index: int, n_c: int, dtype: np.dtype) -> ChannelInfo:
    name = _text(attrs.get("Name"))
    if name in _UNNAMED:
        name = f"channel {index}" if n_c > 1 else ""
    default = default_channel_color(index, n_c)
    rgb = _floats(attrs.get("Color"))
    color = _normalize_color(rgb) if rgb is not None else None
    window = None
    limits = _floats(attrs.get("ColorRange"))
    if limits is not None and len(limits) == 2 and limits[1] > limits[0]:
        low, high = limits
        lo, hi = low, high
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            lo, hi = min(low, float(info.min)), max(high, float(info.max))
        window = Window(start=low, end=high, min=lo, max=hi)
    return ChannelInfo(label=name, color=color or default, window=window)


def read_ims(path: str | os.PathLike[str]) -> MultiscaleImage:
    """Read an Imaris ``.ims`` file, lazily (the file's metadata only).

    Parameters
    ----------
    path
        Local path of the file.

    Returns
    -------
    MultiscaleImage
        One level per Imaris resolution level (finest first, paths ``"0"``, ``"1"``,
        ...), each an :class:`ImsLevelArray` with axes ``([t,] [c,] [z,] y, x)`` cut
        to the real image size of the level.  Voxel sizes and the origin come from
        ``ExtMin``/``ExtMax`` (see the module docstring), channel names, colours and
        display windows from ``DataSetInfo/Channel N``.  ``attrs["imaris"]`` keeps the
        file's version, unit, extents, level sizes and time stamps.

    Raises
    ------
    MissingDependencyError
        ``h5py`` is not installed (``pip install 'napari-zarrnii[ims]'``).
    NotAnImageError
        The path does not exist, is remote, is not an HDF5 file, or holds no Imaris
        image.  Damage found only while reading voxels raises it too.
    """
    if is_url(path):
        raise NotAnImageError(f"{path}: remote Imaris files are not supported; download it first")
    h5py = _h5py()
    src = normalize_source(path)
    try:
        stat = os.stat(src)
    except OSError as exc:
        raise NotAnImageError(f"{src}: cannot open the Imaris file ({exc})") from exc
    if not Path(src).is_file():
        raise NotAnImageError(f"{src}: is not a file; an Imaris image is a single file")
    notes: list[str] = []
    try:
        with h5py.File(src, "r") as handle:
            described = _describe(handle, src, notes)
    except OSError as exc:
        raise NotAnImageError(f"{src}: not a readable Imaris (HDF5) file ({exc})") from exc
    source = _ImsSource(src, described.pop("dataset"), (stat.st_size, stat.st_mtime_ns))
    counts, keep, dtype = described.pop("counts"), described.pop("keep"), described.pop("dtype")
    levels = [
        Level(
            path=str(r),
            data=ImsLevelArray(source, r, counts, info["size"], keep, dtype, info["chunks"]),
            scale=info["scale"],
            translation=info["translation"],
        )
        for r, info in enumerate(described.pop("levels"))
    ]
    image = MultiscaleImage(levels=levels, source=src, notes=notes, **described)
    log.debug(
        "%s: Imaris, axes %s, %d levels, shape %s", src, image.axis_names, len(levels), image.shape
    )
    return image


def _describe(handle: Any, src: str, notes: list[str]) -> dict[str, Any]:
    """Everything :func:`read_ims` needs from the open file, without reading voxels."""
    root = handle.attrs
    dataset_name = _text(root.get("DataSetDirectoryName")) or "DataSet"
    info_name = _text(root.get("DataSetInfoDirectoryName")) or "DataSetInfo"
    dataset = handle.get(dataset_name)
    if dataset is None or not hasattr(dataset, "keys"):
        raise NotAnImageError(f"{src}: not an Imaris file (no '{dataset_name}' group)")
    level_names = _numbered(dataset, _LEVEL)
    if not level_names or [n for n, _ in level_names] != list(range(len(level_names))):
        raise NotAnImageError(
            f"{src}: '{dataset_name}' must hold 'ResolutionLevel 0', 'ResolutionLevel 1', ... "
            f"(found {[name for _, name in level_names]})"
        )
    first_level = dataset[level_names[0][1]]
    times = _numbered(first_level, _TIME)
    if not times or [n for n, _ in times] != list(range(len(times))):
        raise NotAnImageError(f"{src}: 'ResolutionLevel 0' must hold 'TimePoint 0', ...")
    channels = _numbered(first_level[times[0][1]], _CHANNEL)
    if not channels or [n for n, _ in channels] != list(range(len(channels))):
        raise NotAnImageError(f"{src}: 'TimePoint 0' must hold 'Channel 0', ...")
    n_t, n_c = len(times), len(channels)
    info = handle.get(info_name)
    image_info = info.get("Image") if info is not None else None
    declared0: list[int] | None = None
    if image_info is not None:
        sizes = [_int(image_info.attrs.get(a)) for a in "ZYX"]
        if all(s is not None and s > 0 for s in sizes):
            declared0 = [int(s) for s in sizes if s is not None]

    dtype: np.dtype | None = None
    levels: list[dict[str, Any]] = []
    for r, _ in level_names:
        size: tuple[int, int, int] | None = None
        chunks = None
        for c in range(n_c):
            where = f"{dataset_name}/ResolutionLevel {r}/TimePoint 0/Channel {c}"
            group = handle.get(where)
            data = group.get("Data") if group is not None else None
            if data is None or not hasattr(data, "shape") or len(data.shape) != 3:
                raise NotAnImageError(f"{src}: '{where}/Data' is missing or not a 3-D dataset")
            if dtype is None:
                dtype = np.dtype(data.dtype)
            elif np.dtype(data.dtype) != dtype:
                raise NotAnImageError(
                    f"{src}: '{where}/Data' is {data.dtype}, other channels are {dtype}"
                )
            found, from_attrs = _level_size(group, data.shape, declared0 if r == 0 else None)
            if not from_attrs and r > 0 and c == 0:
                notes.append(
                    f"resolution level {r} has no ImageSizeX/Y/Z; its dataset shape is used"
                )
            clipped = tuple(min(n, int(m)) for n, m in zip(found, data.shape))
            if clipped != found:
                notes.append(
                    f"{where}: ImageSize {found} exceeds the stored {tuple(data.shape)}; cut"
                )
                log.warning("%s: %s", src, notes[-1])
            if size is None:
                size = clipped  # type: ignore[assignment]
                chunks = tuple(int(k) for k in data.chunks) if data.chunks else None
            elif clipped != size:
                raise NotAnImageError(
                    f"{src}: channels of resolution level {r} differ in size ({size} and "
                    f"{clipped} at '{where}')"
                )
        assert size is not None
        levels.append({"size": size, "chunks": chunks})
    assert dtype is not None

    size0 = levels[0]["size"]
    spans, lows, unit = _geometry(image_info, size0, src, notes)
    time_step, time_unit = _time_step(
        info.get("TimeInfo") if info is not None else None, n_t, notes
    )
    keep = (n_t > 1, n_c > 1, size0[0] > 1)
    axes: list[Axis] = []
    if keep[0]:
        axes.append(Axis("t", "time", time_unit))
    if keep[1]:
        axes.append(Axis("c", "channel", None))
    if keep[2]:
        axes.append(Axis("z", "space", unit))
    axes.extend([Axis("y", "space", unit), Axis("x", "space", unit)])
    for level in levels:
        spatial_scale = [span / n for span, n in zip(spans, level["size"])]
        spatial_trans = [low + s / 2 for low, s in zip(lows, spatial_scale)]
        lead_scale = [time_step] * keep[0] + [1.0] * keep[1]
        lead_trans = [0.0] * (keep[0] + keep[1])
        start = 0 if keep[2] else 1
        level["scale"] = tuple(lead_scale + spatial_scale[start:])
        level["translation"] = tuple(lead_trans + spatial_trans[start:])

    channel_infos = []
    for c in range(n_c):
        group = info.get(f"Channel {c}") if info is not None else None
        channel_infos.append(_channel(group.attrs if group is not None else {}, c, n_c, dtype))
    time_info = info.get("TimeInfo") if info is not None else None
    stamps = [
        _text(time_info.attrs.get(f"TimePoint{t + 1}")) if time_info is not None else ""
        for t in range(n_t)
    ]
    attrs = {
        "imaris": {
            "version": _text(root.get("ImarisVersion")),
            "unit": _text(image_info.attrs.get("Unit")) if image_info is not None else "",
            "ext_min_xyz": [lows[2], lows[1], lows[0]],
            "ext_max_xyz": [lows[2] + spans[2], lows[1] + spans[1], lows[0] + spans[0]],
            "level_sizes_zyx": [list(level["size"]) for level in levels],
            "time_points": stamps,
        }
    }
    return {
        "axes": tuple(axes),
        "levels": levels,
        "name": Path(src).name[: -len(".ims")] if src.lower().endswith(".ims") else Path(src).name,
        "channels": channel_infos,
        "attrs": attrs,
        "dataset": dataset_name,
        "counts": (n_t, n_c),
        "keep": keep,
        "dtype": dtype,
    }
