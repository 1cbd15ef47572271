"""TIFF, OME-TIFF and ImageJ TIFF -> :class:`~.model.MultiscaleImage`, lazily.

``tifffile`` is optional: it is imported only when a TIFF is read, and its absence
raises :class:`~napari_zarrnii.MissingDependencyError`.

Only the first series of a file is read (``TiffFile.series[0]``).  Its levels
(pyramidal OME-TIFF with SubIFDs, SVS, ...) become the levels of the model; every
level is read through tifffile's zarr store (:class:`tifffile.ZarrTiffStore`), tile
by tile or strip by strip, so opening reads the file's tags and nothing else.

Axes
    tifffile's axis letters map to NGFF names: ``T`` -> ``t`` (time), ``C`` and
    ``S`` (samples, e.g. RGB) -> ``c`` (channel), ``Z``/``Y``/``X`` -> ``z``/``y``/``x``.
    One other letter (``Q``, ``I``, ...: an unnamed stack of pages) becomes ``z``
    when there is no ``Z``; any other layout is refused.  The axes are reordered
    (lazily) to the NGFF order ``(t, c, z, y, x)``.
Voxel size
    From OME-XML (``PhysicalSizeX/Y/Z`` with their units, ``TimeIncrement``) for
    OME-TIFF; else from ImageJ metadata (``spacing``, ``unit``, ``finterval``) and the
    ``XResolution``/``YResolution`` tags (pixels per unit: per ImageJ ``unit``, or per
    inch/centimetre from ``ResolutionUnit``, converted to micrometres).  Missing sizes
    are 1 (and noted in :attr:`MultiscaleImage.notes`).  Coarser levels get the scale
    of level 0 times the ratio of the shapes and keep the same physical extent.
Channels
    Names and colours from OME-XML ``Channel`` elements; RGB(A) samples become the
    channels ``R``, ``G``, ``B`` (, ``A``).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from .._errors import MissingDependencyError, NotAnImageError
from .io import TIFF_SUFFIXES
from .lazy import LazyArray
from .model import (
    Axis,
    ChannelInfo,
    Level,
    MultiscaleImage,
    axis_type_of,
    default_channel_color,
    normalize_color,
)
from .store import is_url, normalize_source

__all__ = ["TIFF_SUFFIXES", "TiffLevelArray", "has_tifffile", "is_tiff_path", "read_tiff"]

log = logging.getLogger(__name__)


#: Target size of the chunk a level reports (whole tiles or strips grouped to about this).
_CHUNK_BYTES = 16 * 2**20

_NGFF_ORDER = {"t": 0, "c": 1, "z": 2, "y": 3, "x": 4}
_LETTERS = {"T": "t", "C": "c", "S": "c", "Z": "z", "Y": "y", "X": "x"}

# OME-XML / ImageJ unit symbols -> NGFF unit names.
_LENGTH_UNITS = {
    "å": "angstrom",
    "angstrom": "angstrom",
    "pm": "picometer",
    "nm": "nanometer",
    "µm": "micrometer",
    "μm": "micrometer",  # greek mu
    "um": "micrometer",
    "\\u00b5m": "micrometer",  # ImageJ writes the escape literally
    "micron": "micrometer",
    "microns": "micrometer",
    "micrometer": "micrometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "dm": "decimeter",
    "m": "meter",
    "km": "kilometer",
    "in": "inch",
    "inch": "inch",
    "ft": "foot",
}
_TIME_UNITS = {
    "ps": "picosecond",
    "ns": "nanosecond",
    "µs": "microsecond",
    "μs": "microsecond",
    "us": "microsecond",
    "ms": "millisecond",
    "s": "second",
    "sec": "second",
    "min": "minute",
    "h": "hour",
    "d": "day",
}
_RGB_CHANNELS = (("R", "FF0000"), ("G", "00FF00"), ("B", "0000FF"), ("A", "FFFFFF"))
# ResolutionUnit tag -> micrometres per unit
_UM_PER_RESOLUTION_UNIT = {2: 25400.0, 3: 10000.0}


def has_tifffile() -> bool:
    """True when the optional ``tifffile`` package is installed (it is not imported)."""
    return find_spec("tifffile") is not None


def is_tiff_path(path: str | os.PathLike[str]) -> bool:
    """True when a file name ends in one of :data:`TIFF_SUFFIXES` (any case)."""
    return os.fspath(path).lower().endswith(TIFF_SUFFIXES)


def _tifffile() -> Any:
    try:
        import tifffile
    except ImportError as exc:
        raise MissingDependencyError(
            "reading TIFF files needs the 'tifffile' package: pip install tifffile"
        ) from exc
    return tifffile


def _strip_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in TIFF_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


# ---------------------------------------------------------------------------------
# lazy access to the pixels
# ---------------------------------------------------------------------------------
class _TiffSource:
    """The file behind the levels: opened on first read, shared by all levels.

    One :class:`tifffile.TiffFile` is kept open once a level is read (closed when
    this object goes); tifffile's lock serialises seeks and reads.  The file must
    not change after it was opened (checked by size and modification time).
    """

    def __init__(self, path: str, series: int, stamp: tuple[int, int]) -> None:
        self.path = path
        self.series = series
        self.stamp = stamp
        self._lock = threading.Lock()
        self._arrays: dict[int, Any] = {}
        self._tif: Any = None
        self._stores: list[Any] = []
        self._closer: weakref.finalize | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "series": self.series, "stamp": self.stamp}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["series"], state["stamp"])  # type: ignore[misc]

    def array(self, level: int) -> Any:
        """The zarr array of one level (opens the file on first use)."""
        with self._lock:
            if level in self._arrays:
                return self._arrays[level]
            tifffile = _tifffile()
            if self._closer is None:
                try:
                    stat = os.stat(self.path)
                except OSError as exc:
                    raise NotAnImageError(
                        f"{self.path}: cannot open the TIFF file ({exc})"
                    ) from exc
                if (stat.st_size, stat.st_mtime_ns) != self.stamp:
                    raise NotAnImageError(
                        f"{self.path}: the TIFF file changed since it was opened"
                    )
                tif = tifffile.TiffFile(self.path)
                self._tif = tif
                self._stores = []
                self._closer = weakref.finalize(self, _close_all, tif, self._stores)
            store = self._tif.series[self.series].aszarr(level=level)
            self._stores.append(store)  # its file cache may hold companion files open
            array = zarr.open_array(store, mode="r")
            self._arrays[level] = array
            return array

    def close(self) -> None:
        """Close the file (it is opened again by the next read)."""
        with self._lock:
            if self._closer is not None:
                self._closer()
            self._closer = None
            self._arrays = {}


def _close_all(tif: Any, stores: list[Any]) -> None:
    for store in stores:
        store.close()
    tif.close()


class TiffLevelArray(LazyArray):
    """One level of a TIFF series as a lazy, read-only array in NGFF axis order.

    Reads go through tifffile's zarr store and decode only the tiles or strips they
    cover.  ``order`` lists, for every axis of this array, the axis of the stored
    series it is (tifffile order, e.g. ``YXS`` read as ``c, y, x``).  ``chunks`` is
    whole tiles/strips grouped to about 16 MiB.
    """

    def __init__(
        self,
        source: _TiffSource,
        level: int,
        stored_shape: Sequence[int],
        order: Sequence[int],
        dtype: Any,
        stored_chunks: Sequence[int],
    ) -> None:
        self._source = source
        self._level = level
        self._order = tuple(int(i) for i in order)
        self.shape = tuple(int(stored_shape[i]) for i in self._order)
        self.dtype = np.dtype(dtype)
        self._chunks = _grow_chunks(
            tuple(int(stored_chunks[i]) for i in self._order), self.shape, self.dtype.itemsize
        )

    @property
    def chunks(self) -> tuple[int, ...]:
        """Whole tiles/strips grouped to about 16 MiB, in this array's axis order."""
        return self._chunks

    def __repr__(self) -> str:
        return f"TiffLevelArray({self._source.path!r}, level={self._level}, shape={self.shape})"

    def _read(self, box: tuple[slice, ...]) -> np.ndarray:
        stored: list[slice] = [slice(None)] * self.ndim
        for axis, stored_axis in enumerate(self._order):
            stored[stored_axis] = box[axis]
        try:
            block = np.asarray(self._source.array(self._level)[tuple(stored)])
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise NotAnImageError(
                f"{self._source.path}: cannot read level {self._level} of the TIFF ({exc})"
            ) from exc
        return block.transpose(self._order)


def _grow_chunks(
    native: tuple[int, ...], shape: tuple[int, ...], itemsize: int
) -> tuple[int, ...]:
    """Whole native chunks grouped along the last axes first, up to ``_CHUNK_BYTES``."""
    unit = [max(1, min(c, n)) for c, n in zip(native, shape)]
    for axis in reversed(range(len(unit))):
        while unit[axis] < shape[axis] and math.prod(unit) * itemsize * 2 <= _CHUNK_BYTES:
            unit[axis] = min(unit[axis] * 2, shape[axis])
    return tuple(unit)


# ---------------------------------------------------------------------------------
# metadata
# ---------------------------------------------------------------------------------
def _map_axes(letters: str, path: str) -> list[str]:
    """NGFF axis names for tifffile's axis letters (see the module docstring)."""
    names = [_LETTERS.get(c) for c in letters]
    others = [c for c, n in zip(letters, names) if n is None]
    if others:
        if "Z" in letters or len(others) > 1:
            raise NotAnImageError(
                f"{path}: TIFF axes '{letters}' are not supported: the axes "
                f"{', '.join(repr(c) for c in others)} have no place among t, c, z, y, x"
            )
        names = [n if n is not None else "z" for n in names]
    if names.count("c") > 1:
        raise NotAnImageError(
            f"{path}: TIFF axes '{letters}' have both channels (C) and samples (S); not supported"
        )
    if "y" not in names or "x" not in names:
        raise NotAnImageError(f"{path}: TIFF axes '{letters}' have no Y and X axes")
    return [str(n) for n in names]


def _length_unit(symbol: Any, path: str, notes: list[str]) -> str | None:
    text = str(symbol or "").strip()
    if not text or text.lower() in ("pixel", "pixels", "reference frame"):
        return None
    unit = _LENGTH_UNITS.get(text) or _LENGTH_UNITS.get(text.lower())
    if unit is None:
        notes.append(f"length unit '{text}' has no NGFF equivalent; left unset")
        log.warning("%s: %s", path, notes[-1])
    return unit


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _ome_image(xml: str, shape: dict[str, int]) -> ET.Element | None:
    """The OME ``Image`` element of the series (first one whose X/Y sizes match)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    images = root.findall("{*}Image")
    for image in images:
        pixels = image.find("{*}Pixels")
        if pixels is not None and (
            pixels.get("SizeX") == str(shape.get("x"))
            and pixels.get("SizeY") == str(shape.get("y"))
        ):
            return image
    return images[0] if images else None


def _ome_metadata(
    tif: Any, shape: dict[str, int], path: str, notes: list[str]
) -> tuple[dict[str, tuple[float, str | None]], list[ChannelInfo]]:
    sizes: dict[str, tuple[float, str | None]] = {}
    channels: list[ChannelInfo] = []
    image = _ome_image(tif.ome_metadata or "", shape)
    pixels = image.find("{*}Pixels") if image is not None else None
    if pixels is None:
        notes.append("OME-XML without Pixels; voxel size unknown")
        return sizes, channels
    for name in ("x", "y", "z"):
        value = _positive(pixels.get(f"PhysicalSize{name.upper()}"))
        if value is not None:
            unit = _length_unit(pixels.get(f"PhysicalSize{name.upper()}Unit", "µm"), path, notes)
            sizes[name] = (value, unit)
    increment = _positive(pixels.get("TimeIncrement"))
    if increment is not None:
        symbol = pixels.get("TimeIncrementUnit") or "s"
        sizes["t"] = (increment, _TIME_UNITS.get(symbol))
    elements = pixels.findall("{*}Channel")
    for i, element in enumerate(elements):
        label = element.get("Name")
        color = normalize_color(_int_or_none(element.get("Color")))
        if len(elements) == 1:  # one channel: no channel axis, white unless told
            channels.append(ChannelInfo(label=label or "", color=color or "FFFFFF"))
            continue
        channels.append(
            ChannelInfo(
                label=label or f"channel {i}",
                color=color or default_channel_color(i, len(elements)),
            )
        )
    return sizes, channels


def _int_or_none(text: Any) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _resolution(page: Any, tag: str) -> float | None:
    """Pixels per unit of a ``XResolution``/``YResolution`` tag, or None."""
    found = page.tags.get(tag)
    if found is None:
        return None
    value = found.value
    try:
        number = value[0] / value[1] if isinstance(value, tuple) else float(value)
    except (TypeError, ZeroDivisionError):
        return None
    return _positive(number)


def _tag_metadata(
    tif: Any, page: Any, path: str, notes: list[str]
) -> dict[str, tuple[float, str | None]]:
    """Voxel sizes from ImageJ metadata and the resolution tags."""
    sizes: dict[str, tuple[float, str | None]] = {}
    ij = tif.imagej_metadata if tif.is_imagej else None
    ij = ij if isinstance(ij, dict) else {}
    xres, yres = _resolution(page, "XResolution"), _resolution(page, "YResolution")
    res_unit = int(getattr(page.tags.get("ResolutionUnit"), "value", 1) or 1)
    if ij:
        unit = _length_unit(ij.get("unit"), path, notes)
        if xres is not None and (xres != 1.0 or unit is not None):
            sizes["x"] = (1.0 / xres, unit)
        if yres is not None and (yres != 1.0 or unit is not None):
            sizes["y"] = (1.0 / yres, unit)
        spacing = _positive(ij.get("spacing"))
        if spacing is not None:
            sizes["z"] = (spacing, unit)
        interval = _positive(ij.get("finterval"))
        if interval is not None:
            sizes["t"] = (interval, "second")
    elif res_unit in _UM_PER_RESOLUTION_UNIT:
        um = _UM_PER_RESOLUTION_UNIT[res_unit]
        if xres is not None:
            sizes["x"] = (um / xres, "micrometer")
        if yres is not None:
            sizes["y"] = (um / yres, "micrometer")
    return sizes


# ---------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------
def read_tiff(path: str | os.PathLike[str]) -> MultiscaleImage:
    """Read the first series of a TIFF, OME-TIFF or ImageJ TIFF file, lazily.

    Parameters
    ----------
    path
        Local path of the file (``.tif``, ``.tiff``, ``.ome.tif``, ...).

    Returns
    -------
    MultiscaleImage
        One level per level of the series (pyramidal files: finest first, paths
        ``"0"``, ``"1"``, ...), each a :class:`TiffLevelArray` in NGFF axis order
        ``([t,] [c,] [z,] y, x)``.  Only the file's tags are read here.  Axes, voxel
        sizes, units and channels as described in the module docstring;
        ``attrs["tiff"]`` keeps the series' tifffile axes, kind, compression and
        flags.

    Raises
    ------
    MissingDependencyError
        ``tifffile`` is not installed.
    NotAnImageError
        The path does not exist, is not a TIFF file, is remote, needs a codec that is
        not installed (``pip install imagecodecs``), or has axes that do not map to
        ``t, c, z, y, x``.  Damage found only while reading pixels raises it too.
    """
    if is_url(path):
        raise NotAnImageError(f"{path}: remote TIFF files are not supported; download it first")
    tifffile = _tifffile()
    src = normalize_source(path)
    try:
        stat = os.stat(src)
    except OSError as exc:
        raise NotAnImageError(f"{src}: cannot open the TIFF file ({exc})") from exc
    if not Path(src).is_file():
        raise NotAnImageError(f"{src}: is not a file; a TIFF image is a single file")
    notes: list[str] = []
    try:
        with tifffile.TiffFile(src) as tif:
            image = _describe(tif, src, notes, tifffile)
    except (tifffile.TiffFileError, OSError, ValueError, KeyError, IndexError) as exc:
        if isinstance(exc, NotAnImageError):
            raise
        raise NotAnImageError(f"{src}: not a readable TIFF file ({exc})") from exc
    source = _TiffSource(src, 0, (stat.st_size, stat.st_mtime_ns))
    levels = [
        Level(
            path=str(i),
            data=TiffLevelArray(
                source, i, info["shape"], info["order"], info["dtype"], info["chunks"]
            ),
            scale=info["scale"],
            translation=info["translation"],
        )
        for i, info in enumerate(image.pop("levels"))
    ]
    result = MultiscaleImage(levels=levels, source=src, notes=notes, **image)
    log.debug(
        "%s: TIFF %s -> axes %s, %d levels",
        src,
        image["attrs"]["tiff"]["axes"],
        result.axis_names,
        len(levels),
    )
    return result


def _describe(tif: Any, src: str, notes: list[str], tifffile: Any) -> dict[str, Any]:
    """Everything :func:`read_tiff` needs from the open file, without reading pixels."""
    if not tif.series:
        raise NotAnImageError(f"{src}: the TIFF file holds no image")
    if len(tif.series) > 1:
        notes.append(f"the file holds {len(tif.series)} series; series 0 was read")
    series = tif.series[0]
    letters = str(series.axes).upper()
    names = _map_axes(letters, src)
    order = sorted(range(len(names)), key=lambda i: _NGFF_ORDER[names[i]])
    out_names = [names[i] for i in order]
    shape0 = dict(zip(names, (int(n) for n in series.shape)))

    for lvl in series.levels:
        page = lvl.keyframe
        if page.compression not in tifffile.TIFF.DECOMPRESSORS:
            raise NotAnImageError(
                f"{src}: TIFF compression {page.compression.name} needs a codec that is not "
                "installed (pip install imagecodecs)"
            )
        if page.predictor > 1 and page.predictor not in tifffile.TIFF.UNPREDICTORS:
            raise NotAnImageError(
                f"{src}: TIFF predictor {page.predictor.name} needs 'imagecodecs' "
                "(pip install imagecodecs)"
            )

    keyframe = series.keyframe
    if tif.is_ome:
        sizes, channels = _ome_metadata(tif, shape0, src, notes)
    else:
        sizes, channels = _tag_metadata(tif, keyframe, src, notes), []
    if "S" in letters and int(keyframe.photometric) == 2 and shape0["c"] in (3, 4):  # RGB
        channels = [ChannelInfo(label=n, color=c) for n, c in _RGB_CHANNELS[: shape0["c"]]]
    if len(channels) != shape0.get("c", 1):
        if channels:
            notes.append(
                f"OME-XML describes {len(channels)} channels, the image has "
                f"{shape0.get('c', 1)}; channel names not used"
            )
        channels = []
    missing = [n for n in ("z", "y", "x") if n in shape0 and n not in sizes]
    if missing:
        notes.append(f"no physical size for axes {', '.join(missing)}; 1 per voxel")
    spatial_units = {sizes[n][1] for n in ("z", "y", "x") if n in sizes}
    # axes without a size share the unit of the others, if they agree on one
    shared = spatial_units.pop() if len(spatial_units) == 1 else None
    axes = []
    scale0 = []
    for name in out_names:
        value, unit = sizes.get(name, (1.0, shared if name in "zyx" else None))
        if name == "c":
            value, unit = 1.0, None
        axes.append(Axis(name, axis_type_of(name), unit))
        scale0.append(float(value))

    levels = []
    base = [int(series.shape[i]) for i in order]
    for i, lvl in enumerate(series.levels):
        shape = [int(n) for n in lvl.shape]
        if len(shape) != len(names):
            raise NotAnImageError(
                f"{src}: TIFF level {i} has shape {lvl.shape}, level 0 {series.shape}"
            )
        store = series.aszarr(level=i)
        try:
            stored = zarr.open_array(store, mode="r")
        finally:
            store.close()
        if tuple(stored.shape) != tuple(shape):
            raise NotAnImageError(
                f"{src}: TIFF level {i} reads as {stored.shape}, expected {tuple(shape)}"
            )
        scale, translation = [], []
        for axis, (n0, s0) in enumerate(zip(base, scale0)):
            n = shape[order[axis]]
            s = s0 * n0 / n if axes[axis].type == "space" else s0
            scale.append(s)
            translation.append((s - s0) / 2.0)  # same physical extent as level 0
        levels.append(
            {
                "shape": shape,
                "order": order,
                "dtype": lvl.dtype,
                "chunks": stored.chunks,
                "scale": tuple(scale),
                "translation": tuple(translation),
            }
        )
    attrs = {
        "tiff": {
            "axes": letters,
            "kind": str(series.kind),
            "compression": keyframe.compression.name,
            "is_ome": bool(tif.is_ome),
            "is_imagej": bool(tif.is_imagej),
            "num_series": len(tif.series),
        }
    }
    return {
        "axes": tuple(axes),
        "levels": levels,
        "name": _strip_suffix(Path(src).name),
        "channels": channels,
        "attrs": attrs,
    }
