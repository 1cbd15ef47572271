"""The one seam between files and the model: which format a path is, open it, save to it.

Every part of the package that reads or writes an image -- the napari reader and
writer, the command line, :class:`~napari_zarrnii.ZarrNii` and the widgets -- goes
through :func:`open_image` and :func:`save_image`.  Which reader or writer handles a
path is decided here, once, from one table of formats (:data:`FORMATS`): file-name
suffixes, URL schemes and folder contents.  Nothing heavy is imported until a format
is used, so importing this module (as the napari reader does on every drop) is cheap.

A destination is resolved once into a :class:`Destination` (location, format, whether
an existing one may be replaced, the options of the filesystem behind a URL) and
handed to the format's writer, which writes it aside and moves it into place, or, at
an object-store URL, in place with its metadata last (:mod:`.store`).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import (
    ChannelCountError,
    ChannelMetadataError,
    MissingDependencyError,
    NotAnImageError,
    UnsupportedFormatError,
)
from .store import OZX_SUFFIX, is_url, normalize_source, split_storage_options

if TYPE_CHECKING:
    from .model import MultiscaleImage

__all__ = [
    "FORMATS",
    "IMS_SUFFIXES",
    "NIFTI_SUFFIXES",
    "OME_ZARR_SUFFIXES",
    "OZX_SUFFIXES",
    "TIFF_SUFFIXES",
    "Destination",
    "ImageFormat",
    "auto_max_layer",
    "check_omero_channels",
    "format_of",
    "looks_like_zarr",
    "open_image",
    "resolve_destination",
    "save_image",
]

log = logging.getLogger(__name__)

#: A writer: ``writer(image, destination, *, progress, cancel, **options) -> location``.
Writer = Callable[..., Any]


@dataclass(frozen=True)
class ImageFormat:
    """One image format: how it is recognised, read and written.

    Attributes
    ----------
    key
        Short identifier used in APIs (``format="nifti"``).
    name
        What messages call it.
    suffixes
        File-name endings, lower case, longest first where one ends another.
    reader, writer
        ``"module:function"`` of the reader (``reader(source, **options) ->
        MultiscaleImage``) and writer, imported on first use; None when the format
        cannot be read or written.
    folder
        Stored as a folder (zarr) rather than a file.
    napari
        Claimed by the napari reader (drag and drop).
    requires
        An optional module the format needs, and the pip extra that installs it.
    zarr
        Holds a zarr hierarchy (a folder, or a zip file for ``.ozx``): claimed
        only when it opens as a group with OME metadata.
    """

    key: str
    name: str
    suffixes: tuple[str, ...]
    reader: str | None = None
    writer: str | None = None
    folder: bool = False
    napari: bool = True
    requires: tuple[str, str] | None = None
    zarr: bool = False

    def matches(self, name: str) -> bool:
        """True when ``name`` ends in one of this format's suffixes (any case)."""
        return name.lower().endswith(self.suffixes)

    def stem(self, name: str) -> str:
        """``name`` without this format's suffix."""
        lower = name.lower()
        for suffix in self.suffixes:
            if lower.endswith(suffix):
                return name[: -len(suffix)]
        return name

    def available(self) -> bool:
        """True when the optional module this format needs is installed."""
        if self.requires is None:
            return True
        from importlib.util import find_spec

        return find_spec(self.requires[0]) is not None

    def _function(self, which: str) -> Callable[..., Any]:
        target = self.reader if which == "read" else self.writer
        if target is None:
            raise UnsupportedFormatError(f"{self.name} images cannot be {which}ten here")
        if not self.available():
            assert self.requires is not None
            module, extra = self.requires
            raise MissingDependencyError(
                f"{self.name} needs the optional package '{module}' "
                f"(pip install 'napari-zarrnii[{extra}]')"
            )
        module_name, _, function = target.partition(":")
        found: Callable[..., Any] = getattr(
            importlib.import_module(module_name, package=__package__), function
        )
        return found


OME_ZARR_SUFFIXES = (".ome.zarr", ".zarr")
OZX_SUFFIXES = (OZX_SUFFIX,)
NIFTI_SUFFIXES = (".nii.gz", ".nii", ".img.gz", ".hdr.gz", ".img", ".hdr")
TIFF_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".ome.btf", ".btf", ".tf8", ".tf2")
IMS_SUFFIXES = (".ims",)

#: Every format, by key.  The napari manifest's reader patterns and writer extensions
#: are checked against this table by the tests.
FORMATS: dict[str, ImageFormat] = {
    f.key: f
    for f in (
        ImageFormat(
            "ome-zarr",
            "OME-Zarr",
            OME_ZARR_SUFFIXES,
            reader=".omezarr:read_ome_zarr",
            writer=".io:_write_ome_zarr",
            folder=True,
            zarr=True,
        ),
        ImageFormat(
            "ozx",
            "zipped OME-Zarr",
            OZX_SUFFIXES,
            reader=".omezarr:read_ome_zarr",
            writer=".io:_write_ome_zarr",  # the pyramid writer zips by the name
            zarr=True,
        ),
        ImageFormat(
            "nifti",
            "NIfTI",
            NIFTI_SUFFIXES,
            reader=".nifti:read_nifti",
            writer=".io:_write_nifti",
        ),
        ImageFormat(
            "tiff",
            "TIFF",
            TIFF_SUFFIXES,
            reader=".tiff:read_tiff",
            napari=False,  # napari's own readers open TIFF files
            requires=("tifffile", "tiff"),
        ),
        ImageFormat(
            "ims",
            "Imaris",
            IMS_SUFFIXES,
            reader=".ims:read_ims",
            requires=("h5py", "ims"),
        ),
    )
}

#: Files whose presence makes a folder a zarr group or array (v2 or v3).
_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zattrs", ".zarray")


def looks_like_zarr(source: Any) -> bool:
    """True for a URL or a local folder holding zarr metadata (nothing is parsed)."""
    src = normalize_source(source)
    if is_url(src):
        return True
    path = Path(src)
    return path.is_dir() and any((path / name).exists() for name in _ZARR_MARKERS)


def _by_suffix(name: str) -> ImageFormat | None:
    matches = [f for f in FORMATS.values() if f.matches(name)]
    if not matches:
        return None
    # the longest matching suffix wins (".ome.tif" is TIFF; ".nii.gz" is not ".gz")
    return max(matches, key=lambda f: max(len(s) for s in f.suffixes if name.lower().endswith(s)))


def format_of(source: Any, *, writing: bool = False) -> ImageFormat:
    """The format of a path or URL, for reading (default) or writing.

    Parameters
    ----------
    source
        Path or URL.
    writing
        Decide from the name alone (the destination need not exist).  A name without
        any suffix is an OME-Zarr folder.

    Raises
    ------
    NotAnImageError
        (reading) The path does not exist, or is a folder without zarr metadata.
    UnsupportedFormatError
        The suffix is not one of :data:`FORMATS`.
    """
    src = normalize_source(source)
    name = src.rstrip("/").rsplit("/", 1)[-1]
    found = _by_suffix(name)
    if found is not None:
        return found
    if writing:
        if "." not in name.lstrip("."):
            return FORMATS["ome-zarr"]
        raise UnsupportedFormatError(f"{src}: {_unknown_suffix(name, writing=True)}")
    if looks_like_zarr(src):
        return FORMATS["ome-zarr"]
    if not is_url(src) and not os.path.exists(src):
        raise NotAnImageError(f"{src}: no such file or folder")
    raise UnsupportedFormatError(f"{src}: {_unknown_suffix(name, writing=False)}")


def _unknown_suffix(name: str, *, writing: bool) -> str:
    usable = [f for f in FORMATS.values() if (f.writer if writing else f.reader)]
    choices = ", ".join(f"{f.name} ({' '.join(f.suffixes[:2])})" for f in usable)
    verb = "write" if writing else "read"
    return f"cannot tell which format to {verb} from the name '{name}'; use {choices}"


def open_image(source: Any, *, format: str | None = None, **options: Any) -> MultiscaleImage:
    """Open any image this package reads, lazily (metadata only).

    Parameters
    ----------
    source
        Path or URL: an OME-Zarr store, a NIfTI, TIFF or Imaris (``.ims``) file.
    format
        A key of :data:`FORMATS` to skip detection (the reader then reports a path
        that is not of that format).
    **options
        Passed to the format's reader (e.g. ``multiscale=``, ``series=`` for OME-Zarr,
        ``fourth_axis="channel"`` for NIfTI).

    Raises
    ------
    NotAnImageError
        No such path, or no image in it.
    UnsupportedFormatError
        A file this package does not read.
    """
    fmt = FORMATS[format] if format is not None else format_of(source)
    reader = fmt._function("read")
    image: MultiscaleImage = reader(normalize_source(source), **options)
    return image


@dataclass(frozen=True)
class Destination:
    """Where an image is written, resolved once and handed to the writer.

    Attributes
    ----------
    location
        Normalised local path or URL.
    format
        The format written there.
    overwrite
        An existing image there may be replaced.
    storage_options
        Options of the filesystem behind a URL (credentials, endpoint, ...).
    """

    location: str
    format: ImageFormat
    overwrite: bool = False
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_remote(self) -> bool:
        """True for a URL."""
        return is_url(self.location)

    @property
    def name(self) -> str:
        """The file or folder name without the format's suffix (a default image name)."""
        return self.format.stem(self.location.rstrip("/").rsplit("/", 1)[-1])

    @property
    def path(self) -> Path:
        """The local path (raises :class:`ReadOnlyStoreError` for a URL)."""
        from .store import local_path

        return local_path(self.location)


def resolve_destination(
    destination: Any,
    *,
    format: str | None = None,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> Destination:
    """Resolve where and in which format to write, from the name or ``format``.

    Raises
    ------
    UnsupportedFormatError
        The name's suffix is unknown (``x.txt``), or names another format than
        ``format``.  A name without a suffix is an OME-Zarr folder.
    """
    if isinstance(destination, Destination):
        return destination
    location = normalize_source(destination)
    if format is None:
        fmt = format_of(location, writing=True)
    else:
        fmt = FORMATS[format]
        name = location.rstrip("/").rsplit("/", 1)[-1]
        named = _by_suffix(name)
        if fmt is FORMATS["ome-zarr"] and named is FORMATS["ozx"]:
            fmt = named  # the same writer, zipped: the name chooses
        # a name with another suffix (x.txt) would be taken for another kind of file
        if (named is not None and named is not fmt) or (named is None and "." in name.lstrip(".")):
            endings = " or ".join(fmt.suffixes[:2])
            if named is not None:
                raise UnsupportedFormatError(
                    f"{location}: the name says {named.name} but {fmt.name} is written; "
                    f"use a name ending in {endings}"
                )
            raise UnsupportedFormatError(
                f"{location}: {fmt.name} is written, whose names end in {endings}, "
                f"not '.{name.rsplit('.', 1)[-1]}'"
            )
    if fmt.writer is None:
        raise UnsupportedFormatError(f"{location}: {fmt.name} images cannot be written here")
    return Destination(location, fmt, overwrite, dict(storage_options or {}))


def save_image(
    image: MultiscaleImage,
    destination: Any,
    *,
    format: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int, str], Any] | None = None,
    cancel: Any = None,
    client: Any = None,
    **options: Any,
) -> Path | str:
    """Write an image in the format its destination names, atomically.

    Parameters
    ----------
    image
        The image to write.
    destination
        Path, URL (or a :class:`Destination`).  ``.ome.zarr``/``.zarr`` (or no
        suffix) writes OME-Zarr, ``.ozx`` zipped OME-Zarr (RFC-9, NGFF 0.5 or 0.6),
        ``.nii``/``.nii.gz`` NIfTI.  An object-store URL (``s3://``, ``gs://``,
        ``az://``) takes OME-Zarr stores only, written in place with their metadata
        last (see :func:`~.store.remote_destination`).
    format
        A key of :data:`FORMATS`, when the name alone should not decide.
    overwrite
        Replace an existing image (else :class:`DestinationExistsError`).
    progress, cancel
        ``progress(done, total, message)`` and a :class:`threading.Event` (or a
        callable) to stop; a cancelled write leaves nothing behind.
    client
        None (threads in this process), a ``distributed.Client`` or ``'active'``
        (the client current in this process).  OME-Zarr: blocks run as tasks on
        the workers, which read the source and write the store themselves.  NIfTI:
        one file is one stream, written in order, so the workers compute its blocks
        and this process writes them: the pixels pass through this process.
    **options
        For OME-Zarr: a ``plan`` or ``max_layer`` (``"auto"``: until the coarsest
        level fits in 256 voxels), ``scaling_method``, ``downsample_factors``,
        ``chunks``, ``shards``, ``ngff_version`` (``'0.4'``, ``'0.5'``, ``'0.6'``;
        0.6 keeps an oblique image's ``world_affine``), ``compressor``,
        ``storage_options`` (array options, plus the filesystem options of a URL:
        :func:`~.store.split_storage_options`), ``omero``, ``workers``;
        ``keep_levels=True`` writes the image's levels as they are.  ``.ozx`` takes
        the same options and shards every array (two chunks per spatial axis) unless
        given shards or a plan.  For NIfTI: ``level``.

    Returns
    -------
    pathlib.Path or str
        What was written: a local path, or the URL.

    Raises
    ------
    ChannelCountError
        ``omero`` lists another number of channels than the image has (checked
        before anything is written).
    """
    if options.get("omero") is not None:
        options["omero"] = check_omero_channels(options["omero"], image, argument="omero")
    array_options, fs_options = split_storage_options(options.pop("storage_options", None))
    if array_options:
        options["storage_options"] = array_options
    dest = resolve_destination(
        destination, format=format, overwrite=overwrite, storage_options=fs_options
    )
    if client is not None:
        options["client"] = client
    writer = dest.format._function("write")
    out: Path | str = writer(image, dest, progress=progress, cancel=cancel, **options)
    return out


def check_omero_channels(omero: Any, image: MultiscaleImage, *, argument: str = "omero") -> Any:
    """Refuse channel metadata whose ``channels`` list does not match the image.

    Parameters
    ----------
    omero
        An ``omero``-style mapping (``{'name': ..., 'channels': [...]}``) or None.
    image
        The image it describes.
    argument
        The name of the argument it came in, for the message.

    Returns
    -------
    Any
        ``omero``, with a tuple of channels turned into a list.

    Raises
    ------
    ChannelCountError
        ``channels`` has another length than the image's channel count (1 for an
        image without a channel axis).
    ChannelMetadataError
        An entry is not a mapping, its ``color`` is no colour, or its ``window`` has
        values that are not finite numbers or an ``end`` not above its ``start``.
    """
    if not isinstance(omero, Mapping) or "channels" not in omero:
        return omero
    channels = omero["channels"]
    if isinstance(channels, tuple):
        omero = {**omero, "channels": list(channels)}
        channels = omero["channels"]
    if not isinstance(channels, list):
        raise ChannelMetadataError(
            f"{argument}: 'channels' must be a list of channel entries, not "
            f"{type(channels).__name__}"
        )
    _check_channel_entries(channels, argument)
    if image.is_label:
        return omero
    expected = image.num_channels
    if len(channels) != expected:
        axis = image.channel_axis
        where = (
            f"(axis '{image.axes[axis].name}' of {image.axis_names})"
            if axis is not None
            else "(no channel axis: one channel)"
        )
        who = f" '{image.name or image.source}'" if image.name or image.source else ""
        raise ChannelCountError(
            f"{argument}: 'channels' lists {len(channels)} channel(s), the image{who} has "
            f"{expected} {where}; give one entry per channel"
        )
    return omero


def _check_channel_entries(channels: list[Any], argument: str) -> None:
    """Refuse channel entries a writer would otherwise drop silently (bad colour, window)."""
    from .model import normalize_color, window_problem

    for i, entry in enumerate(channels):
        where = f"{argument}: channels[{i}]"
        if not isinstance(entry, Mapping):
            raise ChannelMetadataError(f"{where} must be a mapping, not {type(entry).__name__}")
        color = entry.get("color")
        if color is not None and normalize_color(color) is None:
            raise ChannelMetadataError(
                f"{where}.color {color!r} is not a colour; use hex 'RRGGBB' or '#RRGGBB', "
                "a name such as 'green', or an RGB triple"
            )
        window = entry.get("window")
        if window is None:
            continue
        if not isinstance(window, Mapping):
            raise ChannelMetadataError(
                f"{where}.window must be a mapping of start, end (and min, max)"
            )
        values: dict[str, float | None] = {}
        for key in ("start", "end", "min", "max"):
            value = window.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                raise ChannelMetadataError(f"{where}.window.{key} {value!r} is not a number")
            values[key] = None if value is None else float(value)
        problem = window_problem(values["start"], values["end"], values["min"], values["max"])
        if problem is not None:
            raise ChannelMetadataError(f"{where}.window: {problem}")


def auto_max_layer(image: MultiscaleImage, target: int = 256, limit: int = 8) -> int:
    """Number of extra levels that brings the largest spatial axis to ``target`` or less."""
    largest = max((image.shape[i] for i in image.spatial_axes), default=1)
    layers = 0
    while largest > target and layers < limit:
        largest = -(-largest // 2)
        layers += 1
    return layers


# -- writers (private: reached through save_image) ------------------------------------------
def _version_of(options: Mapping[str, Any]) -> str:
    """The NGFF version a write with these options produces."""
    from .ngff import DEFAULT_NGFF_VERSION, spec_for

    plan = options.get("plan")
    version = plan.ngff_version if plan is not None else options.get("ngff_version")
    return spec_for(version or DEFAULT_NGFF_VERSION, writing=True).version


def _placed_for(image: MultiscaleImage, version: str) -> MultiscaleImage:
    """``image`` as OME-NGFF ``version`` can place it.

    A version that stores affines (0.6) keeps the world affine, written as a
    transformation from the intrinsic system to a named one (label images follow it);
    0.4 and 0.5 store per-level scale and translation only, so an oblique image is
    written axis-aligned where it was (:func:`.oblique.axis_aligned_approximation`).
    """
    from .oblique import axis_aligned_approximation

    return axis_aligned_approximation(image, version)


def _write_ome_zarr(
    image: MultiscaleImage,
    dest: Destination,
    *,
    progress: Callable[[int, int, str], Any] | None = None,
    cancel: Any = None,
    keep_levels: bool = False,
    **options: Any,
) -> Path | str:
    """Folders, ``.ozx`` files and URLs alike: the pyramid writer decides where (by the name)."""
    from .pyramid import write_levels, write_pyramid

    image = _placed_for(image, _version_of(options))
    kwargs: dict[str, Any] = {
        "overwrite": dest.overwrite,
        "progress": progress,
        "cancel": cancel,
        **options,
    }
    if keep_levels:
        return write_levels(image, dest, **kwargs)
    if options.get("max_layer") == "auto":
        kwargs["max_layer"] = auto_max_layer(image)
    return write_pyramid(image, dest, **kwargs)


def _write_nifti(
    image: MultiscaleImage,
    dest: Destination,
    *,
    progress: Callable[[int, int, str], Any] | None = None,
    cancel: Any = None,
    level: int = 0,
    client: Any = None,
) -> Path:
    """One file, one stream: blocks are computed by dask (on ``client``'s workers when
    given, else in threads here, never on a client the caller did not pass) and
    written in order by this process."""
    import dask

    from .nifti import write_nifti
    from .store import local_path

    local_path(dest.location, purpose="write NIfTI")  # before connecting to anything
    scheduler: Any = "threads"
    if client is not None:
        from .pyramid.cluster import resolve_client

        scheduler = resolve_client(client)
    with dask.config.set(scheduler=scheduler):
        return write_nifti(
            image, dest.location, level, overwrite=dest.overwrite, progress=progress, cancel=cancel
        )
