"""NIfTI <-> :class:`~.model.MultiscaleImage`, with the orientation napari needs.

Convention
----------
NIfTI places voxel ``(i, j, k)`` at the RAS+ world position ``affine @ [i, j, k, 1]``.
napari shows a NIfTI image in a world whose axes are ``(z, y, x) = (S, A, R)``: the
RAS+ coordinate read backwards.  :func:`read_nifti` reorders (and lazily flips) the
voxel axes so that array axes ``(z, y, x)`` run as closely as possible along
``(S, A, R)`` (chosen by :func:`nibabel.orientations.io_orientation`), so that:

- for an axis-aligned volume, ``scale`` and ``translation`` alone place every voxel;
- for an oblique or sheared volume, ``translation`` is zero and
  :attr:`MultiscaleImage.world_affine` holds the rest.

In both cases, for every voxel::

    world_affine @ [scale * index + translation, 1] == reversed(affine @ [i, j, k, 1])

(``world_affine`` being the identity when it is None).  :func:`nifti_affine` is the
exact inverse and :func:`write_nifti` stores any model image (NIfTI- or NGFF-born)
with array axes ``(x, y, z[, t][, c])``, so the world position of every voxel survives
a round trip.

Non-spatial axes: NIfTI dimension 4 becomes a leading ``t`` axis (type ``time``) and
dimension 5 (vector components, as written by ITK/ANTs) a ``c`` axis (type
``channel``) after it: ``(t, c, z, y, x)``.  ``read_nifti(path,
fourth_axis="channel")`` reads dimension 4 as channels instead (``(c, z, y, x)``).
Singleton ``t``/``c`` dimensions are dropped (a 5-D file with one time point gives
``(c, z, y, x)``); dimensions 6 and 7 must be singletons.  Files with fewer than
three dimensions get singleton spatial axes.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
import threading
import weakref
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import nibabel as nib
import numpy as np
from dask.base import tokenize
from nibabel.arrayproxy import ArrayProxy
from nibabel.filebasedimages import ImageFileError
from nibabel.orientations import io_orientation
from nibabel.spatialimages import HeaderDataError

from .._errors import (
    DestinationExistsError,
    NiftiError,
    NotAnImageError,
)
from .io import NIFTI_SUFFIXES
from .lazy import LazyArray
from .model import Axis, ChannelInfo, Level, MultiscaleImage, Window, default_channel_color
from .progress import Cancel, Progress, cancel_checker, report
from .store import atomic_files, is_url, local_path, normalize_source

__all__ = [
    "FOURTH_AXIS_CHOICES",
    "NiftiError",
    "nifti_affine",
    "read_nifti",
    "write_nifti",
]

log = logging.getLogger(__name__)

#: Target size of one dask chunk (a contiguous slab of the file) and of one block
#: written at a time.  Small files are a single chunk.
_SLAB_BYTES = 64 * 2**20

#: What NIfTI dimension 4 may be read as (:func:`read_nifti`'s ``fourth_axis``).
FOURTH_AXIS_CHOICES = ("time", "channel")

#: Relative tolerance under which an affine counts as axis-aligned.
_DIAGONAL_RTOL = 1e-6


# NIfTI unit codes (as nibabel names them) <-> NGFF unit names.
_SPACE_UNITS_FROM_NIFTI = {"mm": "millimeter", "micron": "micrometer", "meter": "meter"}
_TIME_UNITS_FROM_NIFTI = {"sec": "second", "msec": "millisecond", "usec": "microsecond"}
_SPACE_UNITS_TO_NIFTI = {v: k for k, v in _SPACE_UNITS_FROM_NIFTI.items()}
_TIME_UNITS_TO_NIFTI = {v: k for k, v in _TIME_UNITS_FROM_NIFTI.items()}
# Other NGFF units, converted on writing: length in millimetres, time in seconds.
_MM_PER_UNIT = {
    "angstrom": 1e-7,
    "picometer": 1e-9,
    "nanometer": 1e-6,
    "micrometer": 1e-3,
    "millimeter": 1.0,
    "centimeter": 10.0,
    "decimeter": 100.0,
    "meter": 1e3,
    "kilometer": 1e6,
    "inch": 25.4,
    "foot": 304.8,
}
_SECONDS_PER_UNIT = {
    "picosecond": 1e-12,
    "nanosecond": 1e-9,
    "microsecond": 1e-6,
    "millisecond": 1e-3,
    "centisecond": 1e-2,
    "decisecond": 1e-1,
    "second": 1.0,
    "minute": 60.0,
    "hour": 3600.0,
    "day": 86400.0,
}


# ---------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------
class _NiftiVoxels(LazyArray):
    """Array-like over the voxels of a NIfTI file, in the file's own axis order.

    Built on an :class:`~nibabel.arrayproxy.ArrayProxy` without scaling, so a read
    returns the stored dtype; ``scl_slope``/``scl_inter`` are applied here in
    float32 (float64 for float64 data) rather than in nibabel's float64.  Read
    errors become :class:`NiftiError` naming the file.

    Uncompressed files are opened per read (reads run in parallel and fetch only the
    bytes asked for).  A ``.gz`` stream cannot seek without decompressing from the
    start, so one stream is kept open (closed when this object goes) and reads are
    serialised on it: reading the slabs in order decompresses the file once, not
    once per slab.  gzip damage that deflate decodes into wrong values is caught
    only by the CRC at the end of the stream, so a read reaching the last voxel also
    reads the trailer.
    """

    def __init__(
        self,
        data_file: str,
        spec: tuple[Any, ...],
        source: str,
        dtype: np.dtype,
        slope: float | None,
        inter: float | None,
    ) -> None:
        self._file = data_file
        self._spec = spec
        self._source = source
        self._slope = slope
        self._inter = inter
        self._gzip = data_file.lower().endswith(".gz")
        self._proxy = ArrayProxy(data_file, spec, mmap=False, keep_file_open=False)
        self.shape = tuple(int(n) for n in self._proxy.shape)
        self.dtype = np.dtype(dtype)
        self._lock = threading.Lock()
        self._stream: Any = None
        self._stream_proxy: ArrayProxy | None = None
        self._closer: weakref.finalize | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_lock", "_stream", "_stream_proxy", "_closer"):
            state.pop(key)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._stream = self._stream_proxy = self._closer = None

    def _reaches_end(self, box: tuple[slice, ...]) -> bool:
        return all(
            s.stop > s.start and range(s.start, s.stop, s.step)[-1] == n - 1
            for s, n in zip(box, self.shape)
        )

    def _close_stream(self) -> None:
        if self._closer is not None:
            self._closer()
        self._stream = self._stream_proxy = self._closer = None

    def _read_raw(self, box: tuple[slice, ...]) -> np.ndarray:
        if not self._gzip:
            return np.asarray(self._proxy[box])
        with self._lock:
            try:
                if self._stream_proxy is None:
                    self._stream = gzip.open(self._file, "rb")
                    self._closer = weakref.finalize(self, self._stream.close)
                    self._stream_proxy = ArrayProxy(self._stream, self._spec, mmap=False)
                raw = np.asarray(self._stream_proxy[box])
                if self._reaches_end(box):
                    while self._stream.read(2**16):  # checks the CRC and the size
                        pass
            except BaseException:
                self._close_stream()  # its position is unknown now
                raise
        return raw

    def _read(self, box: tuple[slice, ...]) -> np.ndarray:
        try:
            raw = self._read_raw(box)
        except (OSError, EOFError, ValueError, zlib.error) as exc:
            raise NiftiError(
                f"{self._source}: NIfTI voxel data cannot be read, the file may be "
                f"truncated or corrupt ({type(exc).__name__}: {exc})"
            ) from exc
        if self._slope is None and self._inter is None:
            return raw.astype(self.dtype, copy=False)  # only byte order may change
        out = raw.astype(self.dtype)
        if self._slope is not None:
            out *= self.dtype.type(self._slope)
        if self._inter is not None:
            out += self.dtype.type(self._inter)
        return out


def _strip_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in NIFTI_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _slab_chunks(shape: Sequence[int], itemsize: int, fortran: bool) -> tuple[int, ...]:
    """Chunks that cut an array into byte-contiguous slabs of about ``_SLAB_BYTES``.

    The fastest-varying axes are kept whole while they fit; the first one that does
    not is cut into slabs and all slower axes into single indices.
    """
    order = range(len(shape)) if fortran else reversed(range(len(shape)))
    chunks = [1] * len(shape)
    inner = max(int(itemsize), 1)
    whole = True
    for axis in order:
        n = int(shape[axis])
        if whole and inner * n <= _SLAB_BYTES:
            chunks[axis] = n
            inner = max(inner * n, 1)
        elif whole:
            chunks[axis] = max(1, min(n, _SLAB_BYTES // inner))
            whole = False
    return tuple(max(c, 1) if n else 0 for c, n in zip(chunks, shape))


def _check_complete(data_file: str, source: str, offset: int, nbytes: int) -> None:
    """Raise NiftiError if the voxel data cannot all be in ``data_file``.

    Uncompressed: compare file sizes.  gzip: compare the trailer's ISIZE (size
    modulo 2**32); only on a mismatch (a truncated file, or a legitimate
    multi-member gzip) decompress the file once, in bounded memory, to decide.
    """
    expected = offset + nbytes
    try:
        size = os.path.getsize(data_file)
        if not data_file.lower().endswith(".gz"):
            if data_file.lower().endswith((".bz2", ".zst")):
                return
            if size < expected:
                raise NiftiError(
                    f"{source}: truncated NIfTI file: the header describes {expected} bytes, "
                    f"the file has {size}"
                )
            return
        with open(data_file, "rb") as fh:
            fh.seek(max(size - 4, 0))
            tail = fh.read(4)
        if len(tail) == 4 and struct.unpack("<I", tail)[0] == expected % 2**32:
            return
        log.info("%s: gzip size field does not match the header; verifying the file", source)
        total = 0
        buffer = bytearray(min(_SLAB_BYTES, 16 * 2**20))
        with gzip.open(data_file, "rb") as gz:
            while count := gz.readinto(buffer):
                total += count
    except NiftiError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise NiftiError(
            f"{source}: truncated or corrupt NIfTI file ({type(exc).__name__}: {exc})"
        ) from exc
    if total < expected:
        raise NiftiError(
            f"{source}: truncated NIfTI file: the header describes {expected} bytes, "
            f"the gzip stream holds {total}"
        )


def _check_layout(header: Any, src: str, shape: Sequence[int], offset: int) -> None:
    """Refuse a header whose voxels cannot be where it says: no voxels, data in the header.

    Raises
    ------
    NiftiError
        A dimension of size 0 (``dim[k]``), or a single-file NIfTI (``.nii``) whose
        ``vox_offset`` points inside its header (reading there would show the header
        bytes as voxels).
    """
    empty = [f"dim[{k + 1}]" for k, n in enumerate(shape) if n == 0]
    if empty:
        raise NiftiError(f"{src}: header field {', '.join(empty)} is 0: the file holds no voxels")
    magic = bytes(np.asarray(header["magic"]).item()).rstrip(b"\x00")
    minimum = int(header.single_vox_offset)
    if magic in (b"n+1", b"n+2") and offset < minimum:
        raise NiftiError(
            f"{src}: header field vox_offset is {offset}, inside the {minimum}-byte header: "
            f"the voxels of a single-file NIfTI start at byte {minimum} or later, so the "
            "header is damaged"
        )


def _load(src: str) -> nib.Nifti1Pair:
    path = Path(src)
    if not path.exists():
        raise NotAnImageError(f"{src}: no such file")
    if path.is_dir():
        raise NotAnImageError(f"{src}: is a folder, not a NIfTI file")
    try:
        # mmap=False: voxels are read by explicit slab reads, which fetch only the
        # bytes asked for, keep no mapping open and leave the file replaceable.
        img = nib.load(src, mmap=False)
    except (ImageFileError, HeaderDataError, OSError, EOFError, ValueError, zlib.error) as exc:
        raise NotAnImageError(f"{src}: not a readable NIfTI file ({exc})") from exc
    if not isinstance(img, nib.Nifti1Pair):  # Nifti1/2 images and pairs derive from it
        raise NotAnImageError(f"{src}: is a {type(img).__name__}, not a NIfTI image")
    return img


def _voxel_to_sar(
    affine: np.ndarray, shape3: Sequence[int]
) -> tuple[list[int], list[bool], np.ndarray, np.ndarray]:
    """Permutation and flips of the voxel axes that best give array axes (S, A, R).

    Returns ``perm`` (voxel axis of each array axis), ``flip`` (per array axis), and
    the 3x3 matrix and offset mapping array indices to (S, A, R) world coordinates.
    """
    ornt = io_orientation(affine)
    world_of_voxel: list[int | None] = [None if np.isnan(row[0]) else int(row[0]) for row in ornt]
    # Degenerate (zero) columns get no orientation: give them the unused world axes.
    unused = [w for w in range(3) if w not in world_of_voxel]
    for v in range(3):
        if world_of_voxel[v] is None:
            world_of_voxel[v] = unused.pop(0)
    perm = [world_of_voxel.index(2 - m) for m in range(3)]
    flip = [bool(ornt[v, 1] < 0) for v in perm]
    # array index n -> voxel index ijk
    to_voxel = np.zeros((4, 4))
    to_voxel[3, 3] = 1.0
    for m, v in enumerate(perm):
        if flip[m]:
            to_voxel[v, m] = -1.0
            to_voxel[v, 3] = shape3[v] - 1
        else:
            to_voxel[v, m] = 1.0
    reordered = affine @ to_voxel
    sar = reordered[[2, 1, 0]]
    return perm, flip, sar[:, :3], sar[:, 3]


def _json_float(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def read_nifti(path: str | os.PathLike[str], *, fourth_axis: str = "time") -> MultiscaleImage:
    """Read a NIfTI-1/2 file (``.nii``, ``.nii.gz``, or a ``.hdr``/``.img`` pair), lazily.

    Parameters
    ----------
    path
        Local path of the file.
    fourth_axis
        What NIfTI dimension 4 holds: ``"time"`` (the NIfTI convention, default) or
        ``"channel"`` (files that stack channels, contrasts or tissue classes along
        dimension 4).  Dimension 5 (vector components, intent ``vector``) is always
        read as channels; a file with both dimensions 4 and 5 larger than one cannot
        be read with ``"channel"``.

    Returns
    -------
    MultiscaleImage
        One level (path ``"0"``) whose data is a dask array over the file, cut into
        contiguous slabs of about 64 MiB (one chunk for small files).  Nothing is read
        here but the header.  Axes are ``([t,] [c,] z, y, x)`` oriented as (S, A, R),
        see the module docstring; units come from ``xyzt_units`` (millimetres when
        unknown).  The stored dtype is kept; when ``scl_slope``/``scl_inter`` are set
        the data is scaled to float32 (float64 for float64 data).  ``cal_min`` and
        ``cal_max`` become the channel window.  ``attrs["nifti"]`` keeps the affine,
        form codes, ``descrip`` and ``dim`` of the header.

    Raises
    ------
    NotAnImageError
        The path does not exist or is not a NIfTI file.
    NiftiError
        The file is truncated or corrupt, or its layout is not supported (RGB voxels,
        non-singleton dimensions 6-7, ``fourth_axis="channel"`` with a dimension 5).
        Damage found only while reading voxels raises it too, from the dask
        computation.
    ValueError
        ``fourth_axis`` is neither ``"time"`` nor ``"channel"``.
    """
    if fourth_axis not in FOURTH_AXIS_CHOICES:
        raise ValueError(f"fourth_axis must be one of {FOURTH_AXIS_CHOICES}, not {fourth_axis!r}")
    if is_url(path):
        raise NotAnImageError(f"{path}: remote NIfTI files are not supported; download it first")
    src = normalize_source(path)
    img = _load(src)
    header = img.header
    proxy_in: Any = img.dataobj  # an ArrayProxy: nibabel loads lazily
    data_file = str(proxy_in.file_like)
    stored = np.dtype(header.get_data_dtype())
    if stored.fields is not None:
        raise NiftiError(f"{src}: RGB/structured NIfTI voxels ({stored}) are not supported")
    shape = tuple(int(n) for n in header.get_data_shape())
    offset = int(proxy_in.offset)
    _check_layout(header, src, shape, offset)
    _check_complete(data_file, src, offset, int(np.prod(shape, dtype=np.int64)) * stored.itemsize)
    notes: list[str] = []

    # -- dtype and scaling ------------------------------------------------------
    # nibabel moves scl_slope/scl_inter from the header to the proxy on loading
    raw_slope, raw_inter = float(proxy_in.slope), float(proxy_in.inter)
    slope: float | None = raw_slope
    inter: float | None = raw_inter
    if raw_slope == 1.0 or not np.isfinite(raw_slope) or raw_slope == 0.0:
        slope = None
    if raw_inter == 0.0 or not np.isfinite(raw_inter):
        inter = None
    native = stored.newbyteorder("=")
    if slope is None and inter is None:
        out_dtype = native
    else:
        out_dtype = np.dtype(np.float64 if native == np.float64 else np.float32)
        if native.kind == "c":
            out_dtype = native
    spec = (shape, stored, offset, 1.0, 0.0)
    voxels = _NiftiVoxels(data_file, spec, src, out_dtype, slope, inter)
    stat = os.stat(data_file)
    darr = da.from_array(
        voxels,
        chunks=_slab_chunks(shape, stored.itemsize, fortran=True),
        name=f"nifti-{tokenize(src, stat.st_mtime_ns, stat.st_size, slope, inter)}",
        asarray=True,
        fancy=False,
        meta=np.empty((0,) * len(shape), dtype=out_dtype),
    )

    # -- dimensions: (i, j, k[, t][, c]) ---------------------------------------------
    if len(shape) < 3:
        darr = darr[(Ellipsis,) + (None,) * (3 - len(shape))]
    extra = shape[3:]
    if any(n != 1 for n in extra[2:]):
        raise NiftiError(f"{src}: NIfTI dimensions 6-7 {extra[2:]} are not supported")
    n4 = extra[0] if len(extra) > 0 else 1
    n5 = extra[1] if len(extra) > 1 else 1
    if fourth_axis == "channel" and n4 > 1 and n5 > 1:
        raise NiftiError(
            f"{src}: fourth_axis='channel' reads dimension 4 ({n4}) as channels, but "
            f"dimension 5 holds {n5} vector components (channels) too; open it with "
            "fourth_axis='time'"
        )
    keep4, keep5 = n4 > 1, n5 > 1
    keep_t = keep4 and fourth_axis == "time"
    keep_c = keep5 or (keep4 and fourth_axis == "channel")
    nc = n5 if keep5 else n4
    select: list[Any] = [slice(None)] * 3
    for _, keep in zip(extra, (keep4, keep5, False, False)):
        select.append(slice(None) if keep else 0)
    darr = darr[tuple(select)]
    if keep4 and fourth_axis == "channel":
        notes.append(f"NIfTI dimension 4 ({n4}) read as channels (fourth_axis='channel')")
    spatial_shape = darr.shape[:3]

    # -- orientation -------------------------------------------------------------------
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)):
        notes.append("the header affine is not finite; using the voxel sizes alone")
        log.warning("%s: %s", src, notes[-1])
        affine = np.asarray(header.get_base_affine(), dtype=np.float64)
    perm, flip, matrix, offset_sar = _voxel_to_sar(affine, spatial_shape)
    sizes = np.linalg.norm(matrix, axis=0)
    for m in range(3):
        if not sizes[m] > 0:
            notes.append(f"voxel axis {perm[m]} has no extent in the affine; using size 1")
            log.warning("%s: %s", src, notes[-1])
            matrix[:, m] = 0.0
            matrix[m, m] = 1.0
            sizes[m] = 1.0
    rotation = matrix / sizes
    off_diagonal = rotation - np.diag(np.diag(rotation))
    aligned = bool(
        np.all(np.abs(off_diagonal) <= _DIAGONAL_RTOL) and np.all(np.diag(rotation) > 0)
    )

    non_spatial = [3] * keep_t + [3 + keep_t] * keep_c
    darr = darr.transpose([*non_spatial, *perm])
    n_lead = len(non_spatial)
    flips = tuple(
        [slice(None)] * n_lead + [slice(None, None, -1) if f else slice(None) for f in flip]
    )
    if any(flip):
        darr = darr[flips]

    # -- axes, scale and translation ------------------------------------------------------
    xyz_code, t_code = header.get_xyzt_units()
    space_unit = _SPACE_UNITS_FROM_NIFTI.get(xyz_code)
    if space_unit is None:
        space_unit = "millimeter"
        notes.append(f"spatial unit '{xyz_code}' read as millimetres")
    zooms = header.get_zooms()
    axes: list[Axis] = []
    scale: list[float] = []
    translation: list[float] = []
    if keep_t:
        time_unit = _TIME_UNITS_FROM_NIFTI.get(t_code)
        if time_unit is None and t_code != "unknown":
            notes.append(f"time unit '{t_code}' has no NGFF equivalent; left unset")
        tr = float(zooms[3]) if len(zooms) > 3 else 0.0
        axes.append(Axis("t", "time", time_unit))
        scale.append(tr if np.isfinite(tr) and tr > 0 else 1.0)
        toffset = float(header["toffset"])
        translation.append(toffset if np.isfinite(toffset) else 0.0)
    if keep_c:
        axes.append(Axis("c", "channel", None))
        scale.append(1.0)
        translation.append(0.0)
    axes.extend(Axis(name, "space", space_unit) for name in ("z", "y", "x"))
    world_affine: np.ndarray | None = None
    if aligned:
        scale.extend(float(matrix[m, m]) for m in range(3))
        translation.extend(float(v) for v in offset_sar)
    else:
        scale.extend(float(s) for s in sizes)
        translation.extend([0.0, 0.0, 0.0])
        world_affine = np.eye(len(axes) + 1)
        world_affine[n_lead : n_lead + 3, n_lead : n_lead + 3] = rotation
        world_affine[n_lead : n_lead + 3, -1] = offset_sar

    # -- channels ------------------------------------------------------------------
    window = None
    cal_min, cal_max = float(header["cal_min"]), float(header["cal_max"])
    if np.isfinite(cal_min) and np.isfinite(cal_max) and cal_max > cal_min:
        low, high = cal_min, cal_max
        if out_dtype.kind in "iu":
            info = np.iinfo(out_dtype)
            low, high = min(low, float(info.min)), max(high, float(info.max))
        window = Window(start=cal_min, end=cal_max, min=low, max=high)
    if keep_c:
        channels = [
            ChannelInfo(label=f"channel {i}", color=default_channel_color(i, nc), window=window)
            for i in range(nc)
        ]
    else:
        channels = [ChannelInfo(label="", color="FFFFFF", window=window)]

    descrip = header["descrip"].item()
    if isinstance(descrip, bytes):
        descrip = descrip.decode("latin-1").rstrip("\x00")
    _, sform_code = header.get_sform(coded=True)
    _, qform_code = header.get_qform(coded=True)
    attrs = {
        "nifti": {
            "affine": [[float(v) for v in row] for row in np.asarray(img.affine)],
            "qform_code": int(qform_code),
            "sform_code": int(sform_code),
            "descrip": str(descrip),
            "dim": [int(v) for v in header["dim"]],
            "pixdim": [_json_float(v) for v in header["pixdim"]],
            "xyzt_units": [str(xyz_code), str(t_code)],
            "datatype": str(stored),
            "scl_slope": None if slope is None else float(slope),
            "scl_inter": None if inter is None else float(inter),
            "intent": str(header.get_intent()[0]),
            "fourth_axis": fourth_axis,
            "version": 2 if isinstance(header, nib.Nifti2Header) else 1,
        }
    }
    level = Level(path="0", data=darr, scale=tuple(scale), translation=tuple(translation))
    image = MultiscaleImage(
        axes=tuple(axes),
        levels=[level],
        name=_strip_suffix(Path(src).name),
        channels=channels,
        source=src,
        ngff_version=None,
        attrs=attrs,
        world_affine=world_affine,
        notes=notes,
    )
    log.debug(
        "%s: NIfTI %s %s -> axes %s (voxel axes %s, flips %s, %s)",
        src,
        shape,
        stored,
        image.axis_names,
        perm,
        flip,
        "aligned" if aligned else "oblique",
    )
    return image


# ---------------------------------------------------------------------------------
# geometry of a model image as NIfTI
# ---------------------------------------------------------------------------------
class _Layout:
    """Where the axes of a model image go in a NIfTI file."""

    def __init__(self, image: MultiscaleImage) -> None:
        self.spatial = list(image.spatial_axes)
        time_axes = [i for i, a in enumerate(image.axes) if a.type == "time"]
        channel_axes = [i for i, a in enumerate(image.axes) if a.type == "channel"]
        if not 1 <= len(self.spatial) <= 3:
            raise NiftiError(
                f"{image.source or image.name}: NIfTI needs 1 to 3 spatial axes, "
                f"the image has {len(self.spatial)} ({image.axis_names})"
            )
        if len(time_axes) > 1 or len(channel_axes) > 1:
            raise NiftiError(
                f"{image.source or image.name}: NIfTI stores at most one time and one "
                f"channel axis, not {image.axis_names}"
            )
        self.time = time_axes[0] if time_axes else None
        self.channel = channel_axes[0] if channel_axes else None
        known = {*self.spatial, *time_axes, *channel_axes}
        self.other = [i for i in range(image.ndim) if i not in known]
        for i in self.other:
            if image.shape[i] != 1:
                raise NiftiError(
                    f"{image.source or image.name}: axis '{image.axes[i].name}' "
                    f"(type {image.axes[i].type}) cannot be stored in NIfTI"
                )


def _unit_plan(
    units: Sequence[str | None], table: dict[str, str], factors: dict[str, float], base: str
) -> tuple[str, list[float]]:
    """NIfTI unit code and per-axis factors for axes in the given NGFF units.

    Axes sharing one unit NIfTI knows keep their numbers; otherwise every axis whose
    unit is known is converted to ``base`` (mm or seconds).  Unknown units keep their
    numbers under the code ``'unknown'``.
    """
    distinct = set(units)
    if len(distinct) == 1:
        (unit,) = distinct
        if unit in table:
            return table[unit], [1.0] * len(units)
        if unit is None or unit not in factors:
            return "unknown", [1.0] * len(units)
    if all(u in factors for u in units):
        code = {"millimeter": "mm", "second": "sec"}[base]
        return code, [factors[str(u)] / factors[base] for u in units]
    log.warning("units %s cannot all be expressed in NIfTI; numbers kept as they are", units)
    return "unknown", [1.0] * len(units)


def _geometry(image: MultiscaleImage, level: int) -> dict[str, Any]:
    layout = _Layout(image)
    lvl = image.levels[level]
    nsp = len(layout.spatial)
    ndim = image.ndim
    # world (model spatial axes order) = W @ (s * n + t) + o
    scale = np.array([lvl.scale[i] for i in layout.spatial], dtype=np.float64)
    trans = np.array([lvl.translation[i] for i in layout.spatial], dtype=np.float64)
    rot = np.eye(nsp)
    off = np.zeros(nsp)
    if image.world_affine is not None:
        wa = np.asarray(image.world_affine, dtype=np.float64)
        if wa.shape != (ndim + 1, ndim + 1):
            raise NiftiError(
                f"{image.source or image.name}: world_affine has shape {wa.shape}, "
                f"expected {(ndim + 1, ndim + 1)}"
            )
        rot = wa[np.ix_(layout.spatial, layout.spatial)]
        off = wa[layout.spatial, -1]
        others = [i for i in range(ndim) if i not in layout.spatial]
        if others and (
            np.any(wa[np.ix_(layout.spatial, others)])
            or np.any(wa[np.ix_(others, layout.spatial)])
        ):
            log.warning(
                "%s: world_affine mixes spatial and non-spatial axes; NIfTI keeps only "
                "the spatial part",
                image.source or image.name,
            )
    # Embed 1-2 spatial axes in 3-D: missing leading axes (S, then A) of size 1.
    pad = 3 - nsp
    full_rot = np.eye(3)
    full_rot[pad:, pad:] = rot
    full_scale = np.concatenate([np.ones(pad), scale])
    full_trans = np.concatenate([np.zeros(pad), trans])
    full_off = np.concatenate([np.zeros(pad), off])
    code, factors = _unit_plan(
        [image.axes[i].unit for i in layout.spatial],
        _SPACE_UNITS_TO_NIFTI,
        _MM_PER_UNIT,
        "millimeter",
    )
    unit_factor = np.concatenate([np.ones(pad), factors])
    # array (n0, n1, n2) -> world (S, A, R); NIfTI (i, j, k) = (n2, n1, n0), RAS = rev(SAR)
    sar_linear = unit_factor[:, None] * (full_rot * full_scale[None, :])
    sar_offset = unit_factor * (full_rot @ full_trans + full_off)
    affine = np.eye(4)
    affine[:3, :3] = sar_linear[::-1, ::-1]
    affine[:3, 3] = sar_offset[::-1]
    t_code, t_scale, t_offset = "unknown", 1.0, 0.0
    if layout.time is not None:
        t_code, (t_factor,) = _unit_plan(
            [image.axes[layout.time].unit], _TIME_UNITS_TO_NIFTI, _SECONDS_PER_UNIT, "second"
        )
        t_scale = float(lvl.scale[layout.time]) * t_factor
        t_offset = float(lvl.translation[layout.time]) * t_factor
    return {
        "layout": layout,
        "affine": affine,
        "xyz_code": code,
        "t_code": t_code,
        "t_scale": t_scale,
        "t_offset": t_offset,
    }


def nifti_affine(image: MultiscaleImage, level: int = 0) -> np.ndarray:
    """The 4x4 NIfTI (RAS+) affine of one level of a model image.

    Voxel ``(i, j, k)`` of the NIfTI array is the model voxel whose last three spatial
    indices are ``(k, j, i)``: NIfTI ``i`` runs along the array's ``x`` axis, ``j``
    along ``y``, ``k`` along ``z``.  The spatial axes ``(z, y, x)`` of the model are
    the world axes ``(S, A, R)`` (see the module docstring), so for every voxel
    ``affine @ [i, j, k, 1]`` is the model's world coordinate read backwards.

    Units: when all spatial axes are in millimetres, micrometres or metres the
    numbers are kept (and :func:`write_nifti` sets ``xyzt_units`` to match); other
    known length units are converted to millimetres; unknown units are kept as they
    are.  Images with one or two spatial axes get singleton leading axes.

    Parameters
    ----------
    image
        Any model image, from :func:`read_nifti` or from OME-Zarr.
    level
        Pyramid level.

    Returns
    -------
    numpy.ndarray
        A 4x4 float64 affine.
    """
    return _geometry(image, level)["affine"]


# ---------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------
def _nifti_dtype(dtype: np.dtype, name: str) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.fields is not None:
        raise NiftiError(f"{name}: structured dtype {dtype} cannot be stored in NIfTI")
    if dtype.kind == "b":
        return np.dtype(np.uint8)
    if dtype == np.float16:
        return np.dtype(np.float32)
    return dtype.newbyteorder("=")


def _blocks(
    shape: Sequence[int], itemsize: int, chunks: Sequence[Sequence[int]]
) -> Iterator[tuple[Any, ...]]:
    """Indices of successive byte-contiguous blocks (C order) of about ``_SLAB_BYTES``."""
    slab = _slab_chunks(shape, itemsize, fortran=False)
    cut = next((a for a in range(len(shape)) if slab[a] != shape[a]), None)
    if cut is None:
        yield (slice(None),) * len(shape)
        return
    step = slab[cut]
    native = chunks[cut][0] if chunks[cut] else step
    if step > native:  # whole chunks along the cut axis, to read each chunk once
        step = (step // native) * native
    for outer in np.ndindex(*shape[:cut]):
        for start in range(0, shape[cut], step):
            yield (*outer, slice(start, min(start + step, shape[cut])))


def _header_class(shape: Sequence[int]) -> type[nib.Nifti1Header]:
    return nib.Nifti2Header if max(shape) > 32767 else nib.Nifti1Header


def write_nifti(
    image: MultiscaleImage,
    path: str | os.PathLike[str],
    level: int = 0,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> Path:
    """Write one level of a model image as a NIfTI file (``.nii`` or ``.nii.gz``).

    The voxels are stored in the order ``(x, y, z[, t][, c])`` with the affine of
    :func:`nifti_affine` as sform and qform (the qform without shears), so every
    voxel keeps its world position.  A time axis becomes dimension 4 (``pixdim[4]``
    its scale, ``toffset`` its translation); a channel axis dimension 5 with intent
    ``vector`` (and dimension 4 of size 1 if there is no time axis).  The dtype is
    kept (bool becomes uint8, float16 float32); no scaling is stored.  ``cal_min``
    and ``cal_max`` come from the first channel's window.  NIfTI-2 is written when a
    dimension exceeds 32767.

    The data is computed and written in contiguous blocks of about 64 MiB, so the
    level is never held in memory at once.  The file is written beside ``path`` under
    a temporary name and renamed into place on success.

    Parameters
    ----------
    image
        The image to write.
    path
        Destination, ending in ``.nii`` or ``.nii.gz``.
    level
        Pyramid level to write.
    overwrite
        Replace an existing file.
    progress, cancel
        ``progress(done_blocks, total_blocks, message)``; an event or callable that
        stops the write (:class:`~napari_zarrnii.CancelledError`, nothing left behind).

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    DestinationExistsError
        ``path`` exists and ``overwrite`` is False.
    ReadOnlyStoreError
        ``path`` is a remote URL or its folder is not writable.
    NiftiError
        The suffix is not ``.nii``/``.nii.gz`` or the image cannot be stored as NIfTI.
    """
    dest = local_path(path, purpose="write NIfTI")
    lower = dest.name.lower()
    if not lower.endswith((".nii", ".nii.gz")):
        raise NiftiError(f"{dest}: a NIfTI file name ends in .nii or .nii.gz")
    if (dest.exists() or dest.is_symlink()) and not overwrite:
        raise DestinationExistsError(dest)
    if dest.is_dir():
        raise DestinationExistsError(
            dest, "is a folder; not replaced by a NIfTI file", replaceable=False
        )
    name = str(dest)
    geometry = _geometry(image, level)
    layout: _Layout = geometry["layout"]
    lvl = image.levels[level]
    dtype = _nifti_dtype(lvl.data.dtype, name)

    data = lvl.data
    if not isinstance(data, da.Array):
        data = da.from_array(data, chunks="auto", asarray=True, fancy=False)
    select = tuple(0 if i in layout.other else slice(None) for i in range(image.ndim))
    if layout.other:
        data = data[select]
    kept = [i for i in range(image.ndim) if i not in layout.other]
    # C order of (c, t, spatial...) is the NIfTI F order (x, y, z, t, c)
    order = [a for a in (layout.channel, layout.time) if a is not None] + layout.spatial
    data = data.transpose([kept.index(a) for a in order])

    spatial_shape = [lvl.shape[i] for i in layout.spatial][::-1]  # x, y, z
    spatial_shape += [1] * (3 - len(spatial_shape))
    shape = list(spatial_shape)
    if layout.time is not None or layout.channel is not None:
        shape.append(lvl.shape[layout.time] if layout.time is not None else 1)
    if layout.channel is not None:
        shape.append(lvl.shape[layout.channel])

    header = _header_class(shape)()
    try:
        header.set_data_dtype(dtype)
    except HeaderDataError as exc:
        raise NiftiError(f"{name}: dtype {dtype} cannot be stored in NIfTI ({exc})") from exc
    header.set_data_shape(shape)
    nifti_attrs = image.attrs.get("nifti") if isinstance(image.attrs, dict) else None
    nifti_attrs = nifti_attrs if isinstance(nifti_attrs, dict) else {}
    affine = geometry["affine"]
    sform_code = int(nifti_attrs.get("sform_code") or 0) or 2
    qform_code = int(nifti_attrs.get("qform_code") or 0) or 1
    header.set_sform(affine, code=sform_code)
    header.set_qform(affine, code=qform_code, strip_shears=True)
    header.set_xyzt_units(geometry["xyz_code"], geometry["t_code"])
    if layout.time is not None:
        header["pixdim"][4] = geometry["t_scale"]
        header["toffset"] = geometry["t_offset"]
    if layout.channel is not None:
        header.set_intent("vector")
    channels = image.channels
    window = channels[0].window if channels else None
    if window is not None:
        header["cal_min"] = window.start
        header["cal_max"] = window.end
    descrip = str(nifti_attrs.get("descrip") or "napari-zarrnii")
    header["descrip"] = descrip.encode("latin-1", "replace")[:79]

    check_cancel = cancel_checker(cancel, "NIfTI write")
    with atomic_files([dest], overwrite=overwrite) as (tmp,), open(tmp, "wb") as raw:
        if lower.endswith(".gz"):
            gz = gzip.GzipFile(
                filename="",
                mode="wb",
                fileobj=raw,
                compresslevel=nib.openers.Opener.default_compresslevel,
                mtime=0,
            )
            with gz:
                _write_voxels(gz, header, data, dtype, progress, check_cancel)
        else:
            _write_voxels(raw, header, data, dtype, progress, check_cancel)
        raw.flush()
        os.fsync(raw.fileno())
    log.info("wrote %s (%s, %s)", dest, "x".join(map(str, shape)), dtype)
    return dest


def _write_voxels(
    fileobj: Any,
    header: nib.Nifti1Header,
    data: da.Array,
    dtype: np.dtype,
    progress: Progress | None,
    check_cancel: Callable[[], None],
) -> None:
    header.write_to(fileobj)
    offset = int(header.get_data_offset())
    position = fileobj.tell()
    if position < offset:
        fileobj.write(b"\x00" * (offset - position))
    blocks = list(_blocks(data.shape, dtype.itemsize, data.chunks))
    for done, index in enumerate(blocks, start=1):
        check_cancel()
        block = np.ascontiguousarray(np.asarray(data[index].compute()), dtype=dtype)
        fileobj.write(block.reshape(-1).view(np.uint8))
        report(progress, done, len(blocks), f"block {done}/{len(blocks)}")
