"""Read OME-Zarr stores into :class:`~.model.MultiscaleImage` (metadata only).

Handles NGFF 0.1-0.6 images, their ``labels/``, bioformats2raw layouts (series 0, the
others listed), HCS plates (a lazy mosaic of the first field of every well) and single
wells, in folders, at URLs or zipped (``.ozx``, RFC-9).  Opening reads group and array
metadata and nothing else: the levels are the zarr arrays themselves (0.6 matrices
stored in small zarr arrays are read too).
"""

from __future__ import annotations

import json
import logging
import math
import os
import posixpath
import zipfile
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import zarr
from zarr.storage import ZipStore

from .._errors import (
    InvalidMetadataError,
    NotOmeZarrError,
    ObjectStoreError,
    ReadOnlyStoreError,
    ZarrNiiError,
)
from .lazy import LazyArray, read_zarr
from .model import Axis, Level, MultiscaleImage, default_axes, integer_factor
from .ngff import ngff_attrs, parse_image_label, parse_multiscale, parse_omero, spec_for
from .placement import Frame
from .store import is_url, is_zipped, normalize_source
from .transforms import ArrayLoader

__all__ = [
    "close_group",
    "detect_layout",
    "find_source_image",
    "open_group",
    "read_ome_zarr",
    "zarr_metadata_problem",
]

log = logging.getLogger(__name__)


def _zip_store(src: str, mode: str) -> ZipStore:
    """A read-only zarr store over a zipped OME-Zarr (``.ozx``, RFC-9) file."""
    if mode != "r":
        raise ReadOnlyStoreError(f"{src}: zipped OME-Zarr (.ozx) is read-only here")
    if is_url(src):
        raise NotOmeZarrError(f"{src}: zipped OME-Zarr (.ozx) is read from local files only")
    if not os.path.isfile(src):
        raise NotOmeZarrError(f"{src}: no such file")
    if not zipfile.is_zipfile(src):
        raise NotOmeZarrError(f"{src}: not a zip file")
    return ZipStore(src, mode="r")


def _remote_errors(url: bool, kind: str) -> tuple[type[BaseException], ...]:
    """The errors of ``kind`` (``"unreachable"``, ``"credentials"``) a URL's filesystem
    raises; nothing for a local store (whose opening imports no object-store code).

    Asked for when an error arrives: botocore's classes exist only once s3fs has
    imported it, which happens while the store is opened.
    """
    if not url:
        return ()
    from .objectstore import credential_errors, unreachable_errors

    return unreachable_errors() if kind == "unreachable" else credential_errors()


def open_group(
    source: Any,
    mode: Literal["r", "r+", "a", "w", "w-"] = "r",
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> zarr.Group:
    """Open a zarr group (v2 or v3, local, URL or ``.ozx`` zip).

    A URL is opened read-only through :func:`~.remote.remote_store` (time-outs, metadata
    and encoded bytes kept in memory), as a group in one round trip.
    ``storage_options`` go to the fsspec filesystem of a URL (credentials,
    ``endpoint_url``, ...; else the environment's ``AWS_*`` variables and the like);
    they are ignored for local paths.

    A zipped OME-Zarr (``.ozx``) opens read-only through zarr's ``ZipStore``; its root
    group is the root of the archive (RFC-9).

    Raises
    ------
    NotOmeZarrError
        No such path, no zarr group there, or a zarr array rather than a group.
    InvalidMetadataError
        A local store whose ``zarr.json`` (or ``.zgroup``/``.zattrs``) is not a JSON
        object: names the file.
    ObjectStoreError
        The server of a URL cannot be reached, or there are no credentials to ask it.
    """
    src = normalize_source(source)
    store: Any = _zip_store(src, mode) if is_zipped(src) else src
    node: zarr.Group | zarr.Array
    kwargs: dict[str, Any] = {}
    url = is_url(src)
    if url and storage_options:
        kwargs["storage_options"] = dict(storage_options)
    try:
        if mode == "r" and is_url(src):
            from .remote import remote_store

            store = remote_store(src, **kwargs)
            node = zarr.open_group(store, mode="r")
        elif mode == "r":
            node = zarr.open(store, mode=mode, **kwargs)
        else:
            node = zarr.open_group(store, mode=mode, **kwargs)
    except _remote_errors(url, "unreachable") as exc:
        raise ObjectStoreError(
            f"{src}: cannot reach the server ({exc}); check the endpoint "
            "(endpoint_url, AWS_ENDPOINT_URL) and the network"
        ) from exc
    except _remote_errors(url, "credentials") as exc:
        from .objectstore import no_credentials_message

        raise ObjectStoreError(no_credentials_message(src, exc)) from exc
    except zarr.errors.ContainsArrayError as exc:
        _close(store)
        raise NotOmeZarrError(f"{src}: is a zarr array, not an OME-Zarr image group") from exc
    except (
        FileNotFoundError,
        KeyError,
        zarr.errors.NodeTypeValidationError,
        # zarr reads a zarr.json that is no JSON object with .get(): AttributeError
        AttributeError,
        ValueError,
        TypeError,
        OSError,
    ) as exc:
        _close(store)
        raise _open_error(src, exc) from exc
    if not isinstance(node, zarr.Group):
        _close(store)
        raise NotOmeZarrError(f"{src}: is a zarr array, not an OME-Zarr image group")
    return node


def _close(store: Any) -> None:
    if isinstance(store, ZipStore):
        store.close()


def close_group(group: zarr.Group) -> None:
    """Release what :func:`open_group` holds open for ``group`` (a zip file's handle)."""
    _close(group.store)


#: zarr metadata files, v3 first.
_METADATA_FILES = ("zarr.json", ".zgroup", ".zarray", ".zattrs")


def zarr_metadata_problem(folder: Any) -> tuple[str, str] | None:
    """The first zarr metadata file of a local folder that is not a JSON object, and why.

    Returns
    -------
    (file name, problem) or None
        None when every metadata file present parses as a JSON object (or the folder
        is remote or has none).
    """
    src = normalize_source(folder)
    if is_url(src):
        return None
    for name in _METADATA_FILES:
        path = os.path.join(src, name)
        if not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as fh:
                content = json.load(fh)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return name, f"is not valid JSON ({exc})"
        if not isinstance(content, dict):
            kind = type(content).__name__.replace("dict", "object").replace("NoneType", "null")
            return name, f"holds a JSON {kind}, zarr metadata must be a JSON object"
    return None


def _open_error(src: str, exc: BaseException) -> ZarrNiiError:
    """The typed error for a path zarr cannot open as a group, in the user's words."""
    if not is_url(src):
        if not os.path.exists(src):
            return NotOmeZarrError(f"{src}: no such file or folder")
        problem = zarr_metadata_problem(src)
        if problem is not None:
            return InvalidMetadataError(src, problem[0], problem[1], kind="zarr")
        if os.path.isdir(src) and not any(
            os.path.exists(os.path.join(src, name)) for name in ("zarr.json", ".zgroup")
        ):
            return NotOmeZarrError(f"{src}: not a zarr group (no zarr.json or .zgroup in it)")
    if isinstance(exc, (FileNotFoundError, KeyError, zarr.errors.NodeTypeValidationError)):
        return NotOmeZarrError(f"{src}: no zarr group there ({type(exc).__name__})")
    return NotOmeZarrError(f"{src}: cannot be opened as zarr ({type(exc).__name__}: {exc})")


def _attrs(group: zarr.Group) -> dict[str, Any]:
    return dict(group.attrs.asdict())


def detect_layout(attrs: Mapping[str, Any]) -> str | None:
    """Which NGFF layout a group's attributes describe, or None if not OME-Zarr."""
    ome, _ = ngff_attrs(attrs)
    if "multiscales" in ome:
        return "image"
    if "plate" in ome:
        return "plate"
    if "well" in ome:
        return "well"
    if "bioformats2raw.layout" in ome or "bioformats2raw.layout" in attrs:
        return "bioformats2raw"
    if "labels" in ome:
        return "labels"
    return None


def read_ome_zarr(
    source: Any,
    *,
    multiscale: int = 0,
    series: int | str = 0,
    with_labels: bool = True,
    plate_level: int | None = None,
    group: zarr.Group | None = None,
    coordinate_system: str | None = None,
    with_source_image: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> MultiscaleImage:
    """Read the image an OME-Zarr path points at, lazily.

    Parameters
    ----------
    source
        Local path or URL of an OME-Zarr image, bioformats2raw root, plate, well,
        ``labels`` group or label image, or a local zipped OME-Zarr (``.ozx``,
        read-only).  A ``labels`` group (``x.zarr/labels``) reads as the image it
        belongs to (``x.zarr``) with all its labels.
    multiscale
        Which entry of ``multiscales`` to read (the others are listed in ``notes``).
    series
        For a bioformats2raw layout, which series to open.
    with_labels
        Also read the label images under ``labels/``.
    plate_level
        For a plate: the finest pyramid level used in the mosaic (default: the first
        level whose mosaic is at most 16384 pixels wide).
    group
        The zarr group at ``source`` when the caller has it open already (the
        npe2 reader does, from deciding whether to claim the path).
    coordinate_system
        NGFF 0.6: name of the coordinate system to show the image in.  Default:
        where its author placed it, the output of the first multiscale
        transformation from the intrinsic system (the one the resolution levels
        map to) that napari can show, else the intrinsic system; pass
        ``'intrinsic'`` (or any name) to choose.  Label images follow the image.  A
        system only reachable through transformations napari cannot show
        (displacement or coordinate fields) is not applied; ``notes`` says so.
        Ignored for older versions.
    with_source_image
        For a label image (``x.zarr/labels/cells``): read the image it labels (found
        by :func:`find_source_image`) with this one label in its ``labels``, so the
        label is shown over its image, as the napari reader does.  When no such
        image is found, or when False (default), the label image itself is read.
    storage_options
        Options of the fsspec filesystem of a URL (``key``, ``secret``,
        ``endpoint_url``, ``client_kwargs``, ``anon``, ...); see :func:`open_group`.

    Raises
    ------
    NotOmeZarrError
        The path is not a zarr group or holds no OME metadata.
    InvalidMetadataError
        The metadata is present but wrong (the message names path and field).
    SelectionError
        ``coordinate_system`` names no coordinate system of the image.
    """
    src = normalize_source(source)
    if group is None:
        group = open_group(src, storage_options=storage_options)
    attrs = _attrs(group)
    layout = detect_layout(attrs)
    cs = coordinate_system
    if layout == "image":
        if with_source_image and "image-label" in ngff_attrs(attrs)[0]:
            parent = find_source_image(src, group)
            if parent is not None:
                return _label_with_its_image(group, src, attrs, parent, multiscale, cs)
        return _read_image(
            group, src, attrs, multiscale=multiscale, with_labels=with_labels, coordinate_system=cs
        )
    if layout == "bioformats2raw":
        return _read_bioformats2raw(
            group, src, attrs, series=series, with_labels=with_labels, coordinate_system=cs
        )
    if layout == "plate":
        return _read_plate(group, src, attrs, plate_level=plate_level, coordinate_system=cs)
    if layout == "well":
        return _read_well(group, src, attrs, with_labels=with_labels, coordinate_system=cs)
    if layout == "labels":
        parent = find_source_image(src, group)
        if parent is None:
            raise NotOmeZarrError(
                f"{src}: is a 'labels' group without an image above it; open one label image in it"
            )
        image = read_ome_zarr(parent, with_labels=True, coordinate_system=cs)
        image.notes.append(f"'{src}' is a labels group: opened with its image '{parent}'")
        log.info("%s", image.notes[-1])
        return image
    raise NotOmeZarrError(f"{src}: zarr group without OME-NGFF metadata")


def _join(src: str, path: str) -> str:
    return f"{src.rstrip('/')}/{path.strip('/')}"


def _relative(src: str, rel: str) -> str:
    """``rel`` (e.g. ``'../../'``) resolved against the group at ``src`` (path or URL)."""
    if is_url(src):
        scheme, _, rest = src.partition("://")
        netloc, _, path = rest.partition("/")
        joined = posixpath.normpath(posixpath.join("/" + path, rel))
        return f"{scheme}://{netloc}{joined.rstrip('/')}"
    return os.path.normpath(os.path.join(src, rel))


def _is_plain_image(path: str) -> bool:
    """True when ``path`` is an OME-Zarr image group that is not a label image."""
    try:
        attrs = _attrs(open_group(path))
    except ZarrNiiError:
        return False
    return detect_layout(attrs) == "image" and "image-label" not in ngff_attrs(attrs)[0]


def find_source_image(source: Any, group: zarr.Group | None = None) -> str | None:
    """The image a ``labels`` group or a label image belongs to, or None.

    Parameters
    ----------
    source
        Path or URL of a ``labels`` group (``x.zarr/labels``) or of one label image
        (``x.zarr/labels/cells``).
    group
        The zarr group at ``source``, when already open.

    Returns
    -------
    str or None
        For a label image, the image named by its ``image-label.source.image``
        (relative to the label), else the group two levels up; for a ``labels``
        group, the group above it.  None when that is not an OME-Zarr image (or
        ``source`` is neither).
    """
    src = normalize_source(source)
    try:
        attrs = _attrs(group if group is not None else open_group(src))
    except ZarrNiiError:
        return None
    ome, _ = ngff_attrs(attrs)
    layout = detect_layout(attrs)
    candidates: list[str] = []
    if layout == "labels":
        candidates.append(_relative(src, ".."))
    elif layout == "image" and "image-label" in ome:
        label_source = _mapping(_mapping(ome.get("image-label")).get("source")).get("image")
        if isinstance(label_source, str) and label_source.strip():
            candidates.append(_relative(src, label_source))
        candidates.append(_relative(src, "../.."))  # the layout the spec prescribes
    for candidate in dict.fromkeys(candidates):
        if candidate != src and _is_plain_image(candidate):
            return candidate
    return None


def _label_with_its_image(
    group: zarr.Group,
    src: str,
    attrs: Mapping[str, Any],
    parent: str,
    multiscale: int,
    coordinate_system: str | None,
) -> MultiscaleImage:
    """The image at ``parent`` holding only the label image at ``src``.

    A label listed under its image's ``labels/`` is read as one of them, so it is
    placed as they are (in NGFF 0.6, through the image's link to it); a label stored
    elsewhere (found through ``image-label.source``) is read by itself.
    """
    image = read_ome_zarr(parent, with_labels=True, coordinate_system=coordinate_system)
    name = src.rstrip("/").rsplit("/", 1)[-1]
    listed = image.labels.get(name)
    if listed is not None and normalize_source(listed.source or "") == src:
        label = listed
    else:
        label = _read_image(
            group,
            src,
            attrs,
            multiscale=multiscale,
            with_labels=False,
            coordinate_system=coordinate_system,
        )
        label.is_label = True
        label.name = label.name or name
    image.labels = {name: label}
    image.notes.append(f"label image '{src}' opened over its image '{parent}'")
    log.info("%s", image.notes[-1])
    return image


def _node(group: zarr.Group, path: str, src: str, field: str) -> Any:
    """``group[path]``, or InvalidMetadataError naming ``field`` when it cannot be opened."""
    try:
        return group[path]
    except KeyError as exc:
        raise InvalidMetadataError(src, field, f"'{path}' does not exist") from exc
    # damaged .zarray/zarr.json (a JSON list reaches zarr's .get: AttributeError), codec...
    except (ValueError, TypeError, OSError, AttributeError) as exc:
        problem = zarr_metadata_problem(_join(src, path))
        if problem is not None:
            file, why = problem
            raise InvalidMetadataError(src, field, f"'{path}/{file}' {why}") from exc
        raise InvalidMetadataError(
            src, field, f"'{path}' cannot be opened ({type(exc).__name__}: {exc})"
        ) from exc


def _child_group(group: zarr.Group, path: str, src: str, field: str) -> zarr.Group:
    node = _node(group, path, src, field)
    if not isinstance(node, zarr.Group):
        raise InvalidMetadataError(src, field, f"'{path}' is not a group")
    return node


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _open_array(group: zarr.Group, path: str, src: str, field: str) -> zarr.Array:
    node = _node(group, path, src, field)
    if not isinstance(node, zarr.Array):
        raise InvalidMetadataError(src, field, f"'{path}' is a group, not an array")
    return node


#: parameter arrays (matrices) larger than this are no matrices: not read
_MAX_PARAMETERS = 4096


def _parameter_loader(group: zarr.Group, src: str) -> ArrayLoader:
    """Reads a 0.6 transformation's parameter array (``path`` relative to ``group``)."""

    def load(path: str) -> np.ndarray:
        where = path.strip("/")
        arr = _open_array(group, where, src, "coordinateTransformations path")
        if math.prod(arr.shape) > _MAX_PARAMETERS:
            raise ValueError(f"'{where}' has shape {arr.shape}: too large for a matrix")
        return np.asarray(arr[...])

    return load


def _read_image(
    group: zarr.Group,
    src: str,
    attrs: Mapping[str, Any],
    *,
    multiscale: int = 0,
    with_labels: bool = True,
    coordinate_system: str | None = None,
    parent: Frame | None = None,
) -> MultiscaleImage:
    ome, version = ngff_attrs(attrs)
    if version is None:
        log.warning("%s: multiscales has no version; reading as 0.4", src)
        version = "0.4"
    spec = spec_for(version, path=src)
    parsed = parse_multiscale(
        ome,
        spec.version,
        src,
        multiscale,
        coordinate_system=coordinate_system,
        parent=parent,
        load=_parameter_loader(group, src),
    )
    if is_url(src):  # one round trip for the metadata of every level
        from .remote import fetch_metadata

        fetch_metadata(group, parsed.paths)
    arrays = [
        _open_array(group, p, src, f"multiscales[{multiscale}].datasets[{i}].path")
        for i, p in enumerate(parsed.paths)
    ]
    ndim = arrays[0].ndim
    if parsed.axes is not None:
        axes = parsed.axes
    else:
        try:
            axes = default_axes(ndim)
        except ValueError as exc:
            raise InvalidMetadataError(
                src, f"multiscales[{multiscale}].datasets[0]", str(exc)
            ) from exc
    for i, arr in enumerate(arrays):
        if arr.ndim != len(axes):
            raise InvalidMetadataError(
                src,
                f"multiscales[{multiscale}].datasets[{i}]",
                f"array '{parsed.paths[i]}' has {arr.ndim} dimensions, axes has {len(axes)}",
            )
    levels = []
    notes: list[str] = []
    base_shape = arrays[0].shape
    for i, (path, arr) in enumerate(zip(parsed.paths, arrays)):
        scale = parsed.scales[i]
        translation = parsed.translations[i] or (0.0,) * ndim
        if scale is None:  # 0.1-0.3 store no scale: derive it from the shapes
            scale = tuple(
                (integer_factor(b, s) if a.type == "space" else 1.0)
                for a, b, s in zip(axes, base_shape, arr.shape)
            )
            translation = tuple(
                (f - 1) / 2 if a.type == "space" else 0.0 for a, f in zip(axes, scale)
            )
        if len(translation) != ndim:
            translation = (0.0,) * ndim
        levels.append(
            Level(
                path=path,
                data=arr,
                scale=tuple(map(float, scale)),
                translation=tuple(map(float, translation)),
            )
        )
    _check_levels(levels, axes, src, f"multiscales[{multiscale}]", spec.version)
    notes.extend(parsed.notes)
    for note in parsed.notes:
        log.info("%s: %s", src, note)
    levels = _drop_repeated_levels(levels, src, notes)
    multiscales = ome.get("multiscales") or []
    if len(multiscales) > 1:
        others = [
            (m.get("name") if isinstance(m, Mapping) else None) or f"#{k}"
            for k, m in enumerate(multiscales)
            if k != multiscale
        ]
        notes.append(f"other multiscales in this group: {', '.join(map(str, others))}")
        log.info("%s: %s", src, notes[-1])
    image_label = ome.get("image-label")
    is_label = image_label is not None
    image = MultiscaleImage(
        axes=tuple(axes),
        levels=levels,
        name=parsed.name,
        is_label=is_label,
        source=src,
        ngff_version=spec.version,
        attrs=dict(attrs),
        world_affine=parsed.world_affine,
        notes=notes,
    )
    if is_label:
        colors, props = parse_image_label(image_label, src)
        image.label_colors = colors
        image.label_properties = props
    else:
        image.channels = parse_omero(ome.get("omero"), image.num_channels, src)
    if with_labels and not is_label:
        image.labels = _read_labels(group, src, image, parsed.frame, parsed.label_links)
    return image


def _label_frame(frame: Frame | None, links: Mapping[str, np.ndarray], name: str) -> Frame | None:
    """Where a 0.6 label image is shown: its parent's frame after the link to it, if any.

    None (the label's own intrinsic system) when the parent is shown in its
    intrinsic system and no transformation links the two, as 0.6 then takes the
    two intrinsic systems to be the same.
    """
    if frame is None:
        return None
    link = links.get(name)
    if link is None:
        if frame.axes == frame.source_axes and np.allclose(
            frame.matrix, np.eye(len(frame.matrix))
        ):
            return None
        return frame
    return Frame(frame.name, frame.matrix @ link, frame.source_axes, frame.axes)


def _check_levels(
    levels: list[Level], axes: tuple[Axis, ...], src: str, field: str, version: str
) -> None:
    """Refuse level metadata napari cannot show: fewer than 2 axes, bad scales, growing levels.

    Raises
    ------
    InvalidMetadataError
        Names the ``datasets`` entry: a scale of 0 (or below 0 before NGFF 0.6, whose
        transformations may flip an axis), or a level larger than the one before it
        along some axis (datasets go from the finest level to the coarsest).
    """
    if len(axes) < 2:
        raise InvalidMetadataError(
            src, f"{field}.axes", f"has {len(axes)} axis; OME-NGFF images have 2 to 5"
        )
    for i, level in enumerate(levels):
        where = f"{field}.datasets[{i}]"
        for axis, value in zip(axes, level.scale):
            if value == 0 or (value < 0 and version < "0.6"):
                raise InvalidMetadataError(
                    src,
                    f"{where}.coordinateTransformations",
                    f"scale of axis '{axis.name}' is {value:g}; scales must be above 0",
                )
        if i == 0:
            continue
        previous = levels[i - 1]
        grown = [a.name for a, n, m in zip(axes, level.shape, previous.shape) if n > m]
        if grown:
            raise InvalidMetadataError(
                src,
                f"{where}.path",
                f"level '{level.path}' (shape {level.shape}) is larger than level "
                f"'{previous.path}' (shape {previous.shape}) along {', '.join(grown)}; "
                "datasets must go from the finest level to the coarsest",
            )


def _drop_repeated_levels(levels: list[Level], src: str, notes: list[str]) -> list[Level]:
    """The levels without those repeating the shape of the level before them.

    ome-zarr-py writes coarse levels of one shape for small images (a 1x1 plane
    cannot shrink); napari refuses a pyramid whose sizes do not decrease.  The
    finest of equal shapes is kept.
    """
    kept = [levels[0]]
    dropped = []
    for level in levels[1:]:
        if level.shape == kept[-1].shape:
            dropped.append(level.path)
        else:
            kept.append(level)
    if dropped:
        notes.append(
            f"levels {', '.join(repr(p) for p in dropped)} repeat the shape of a finer "
            "level and were not opened"
        )
        log.info("%s: %s", src, notes[-1])
    return kept


def _read_labels(
    group: zarr.Group,
    src: str,
    parent: MultiscaleImage,
    frame: Frame | None = None,
    links: Mapping[str, np.ndarray] | None = None,
) -> dict[str, MultiscaleImage]:
    try:
        labels_group = group["labels"]
    except KeyError:
        return {}
    except (ValueError, TypeError, OSError) as exc:
        log.warning("%s/labels: cannot be opened (%s); label images ignored", src, exc)
        parent.notes.append(f"labels cannot be opened: {exc}")
        return {}
    if not isinstance(labels_group, zarr.Group):
        return {}
    ome, _ = ngff_attrs(_attrs(labels_group))
    names = ome.get("labels")
    if not isinstance(names, list):
        log.warning("%s/labels: no 'labels' list; label images ignored", src)
        return {}
    out: dict[str, MultiscaleImage] = {}
    for name in names:
        if not isinstance(name, str):
            continue
        try:
            sub = labels_group[name]
            if not isinstance(sub, zarr.Group):
                raise NotOmeZarrError(f"{src}/labels/{name}: not a group")
            label = _read_image(
                sub,
                _join(src, f"labels/{name}"),
                _attrs(sub),
                with_labels=False,
                parent=_label_frame(frame, links or {}, name),
            )
        except (ZarrNiiError, KeyError, ValueError, TypeError, OSError) as exc:
            # A broken label must not hide the image: report it and go on.
            log.warning("%s/labels/%s: skipped (%s)", src, name, exc)
            parent.notes.append(f"label '{name}' skipped: {exc}")
            continue
        label.is_label = True
        label.name = label.name or name
        out[name] = label
    return out


def _read_bioformats2raw(
    group: zarr.Group,
    src: str,
    attrs: Mapping[str, Any],
    *,
    series: int | str,
    with_labels: bool,
    coordinate_system: str | None = None,
) -> MultiscaleImage:
    names: list[str] = []
    try:
        ome_group = group["OME"]
        if isinstance(ome_group, zarr.Group):
            ome_attrs, _ = ngff_attrs(_attrs(ome_group))
            listed = ome_attrs.get("series")
            if isinstance(listed, list):
                names = [str(s) for s in listed]
    except KeyError:
        pass
    if not names:  # without OME/ the series are the numbered child groups
        names = sorted(
            (k for k, v in group.members() if isinstance(v, zarr.Group) and k.isdigit()),
            key=int,
        )
    if not names:
        raise InvalidMetadataError(src, "bioformats2raw.layout", "no image series found")
    if isinstance(series, int) and not -len(names) <= series < len(names):
        raise InvalidMetadataError(src, "series", f"no series {series!r}; have {names}")
    chosen = names[series] if isinstance(series, int) else str(series)
    if chosen not in names:
        raise InvalidMetadataError(src, "series", f"no series {series!r}; have {names}")
    sub = _child_group(group, chosen, src, f"series {chosen}")
    image = _read_image(
        sub,
        _join(src, chosen),
        _attrs(sub),
        with_labels=with_labels,
        coordinate_system=coordinate_system,
    )
    image.attrs = {
        **image.attrs,
        "bioformats2raw": {"root": src, "series": names, "opened": chosen},
    }
    if len(names) > 1:
        image.notes.append(
            f"bioformats2raw: {len(names)} series ({', '.join(names)}); open another as "
            f"'{src}/<series>'"
        )
    if image.name is None:
        image.name = f"{src.rstrip('/').rsplit('/', 1)[-1]} [{chosen}]"
    return image


def _read_well(
    group: zarr.Group,
    src: str,
    attrs: Mapping[str, Any],
    *,
    with_labels: bool,
    coordinate_system: str | None = None,
) -> MultiscaleImage:
    ome, _ = ngff_attrs(attrs)
    images = _mapping(ome.get("well")).get("images")
    if not isinstance(images, list) or not images or not isinstance(images[0], Mapping):
        raise InvalidMetadataError(src, "well.images", "must list at least one field")
    path = images[0].get("path")
    if not isinstance(path, str):
        raise InvalidMetadataError(src, "well.images[0].path", "each field needs a path")
    sub = _child_group(group, path, src, "well.images[0].path")
    image = _read_image(
        sub,
        _join(src, path),
        _attrs(sub),
        with_labels=with_labels,
        coordinate_system=coordinate_system,
    )
    if len(images) > 1:
        image.notes.append(f"well has {len(images)} fields; showing field '{path}'")
    return image


class _LazyTile(LazyArray):
    """A plate well's field at one level, opened only when first read.

    Wells of one plate may differ slightly in shape: reads are clipped to the real
    array and padded with zeros; a missing or damaged field reads as zeros.
    """

    def __init__(self, group: zarr.Group, path: str, shape: tuple[int, ...], dtype: Any) -> None:
        self._group = group
        self._path = path
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self._array: Any = None

    def _open(self) -> Any:
        if self._array is None:
            try:
                self._array = self._group[self._path]
            except KeyError:
                self._array = False
            except (ValueError, TypeError, OSError) as exc:  # damaged metadata: show empty
                log.warning("plate tile %s cannot be opened (%s); shown empty", self._path, exc)
                self._array = False
        return self._array

    def _read(self, box: tuple[slice, ...]) -> np.ndarray:
        out = np.zeros(tuple(len(range(s.start, s.stop, s.step)) for s in box), self.dtype)
        arr = self._open()
        if arr is False:
            return out
        real = tuple(
            slice(min(s.start, n), min(s.stop, n), s.step) for s, n in zip(box, arr.shape)
        )
        data = read_zarr(arr, real)
        out[tuple(slice(0, k) for k in data.shape)] = data
        return out


class PlateMosaic(LazyArray):
    """A lazy array tiling one field per well over the plate grid (last two axes)."""

    def __init__(
        self,
        tiles: dict[tuple[int, int], _LazyTile],
        grid: tuple[int, int],
        tile_shape: tuple[int, ...],
        dtype: Any,
    ) -> None:
        self._tiles = tiles
        self._grid = grid
        self._tile_shape = tile_shape
        self.dtype = np.dtype(dtype)
        self.shape = (*tile_shape[:-2], grid[0] * tile_shape[-2], grid[1] * tile_shape[-1])

    @property
    def chunks(self) -> tuple[int, ...]:
        """One plane of one well: the unit a viewer reads and caches."""
        return (*(1 for _ in self._tile_shape[:-2]), *self._tile_shape[-2:])

    def _read(self, box: tuple[slice, ...]) -> np.ndarray:
        # read the contiguous box tile by tile, then apply the steps
        whole = tuple(slice(s.start, max(s.stop, s.start), 1) for s in box)
        out = np.zeros(tuple(s.stop - s.start for s in whole), self.dtype)
        th, tw = self._tile_shape[-2:]
        ys, xs = whole[-2], whole[-1]
        for r in range(ys.start // th, -(-ys.stop // th) if ys.stop > ys.start else 0):
            for c in range(xs.start // tw, -(-xs.stop // tw) if xs.stop > xs.start else 0):
                tile = self._tiles.get((r, c))
                if tile is None:
                    continue
                y0, y1 = max(ys.start, r * th), min(ys.stop, (r + 1) * th)
                x0, x1 = max(xs.start, c * tw), min(xs.stop, (c + 1) * tw)
                sub = (
                    *whole[:-2],
                    slice(y0 - r * th, y1 - r * th, 1),
                    slice(x0 - c * tw, x1 - c * tw, 1),
                )
                dest = (
                    Ellipsis,
                    slice(y0 - ys.start, y1 - ys.start),
                    slice(x0 - xs.start, x1 - xs.start),
                )
                out[dest] = tile._checked_read(sub)
        return out[tuple(slice(None, None, s.step) for s in box)]


def _read_plate(
    group: zarr.Group,
    src: str,
    attrs: Mapping[str, Any],
    *,
    plate_level: int | None,
    coordinate_system: str | None = None,
) -> MultiscaleImage:
    ome, _ = ngff_attrs(attrs)
    plate = ome.get("plate")
    if not isinstance(plate, Mapping):
        raise InvalidMetadataError(src, "plate", "must be an object")
    wells = plate.get("wells")
    rows, cols = plate.get("rows"), plate.get("columns")
    rows = rows if isinstance(rows, list) else []
    cols = cols if isinstance(cols, list) else []
    if not isinstance(wells, list) or not wells:
        raise InvalidMetadataError(src, "plate.wells", "must list at least one well")
    positions: dict[str, tuple[int, int]] = {}
    row_names = [r.get("name") for r in rows if isinstance(r, Mapping)]
    col_names = [c.get("name") for c in cols if isinstance(c, Mapping)]
    for i, well in enumerate(wells):
        if not isinstance(well, Mapping) or not isinstance(well.get("path"), str):
            raise InvalidMetadataError(src, f"plate.wells[{i}].path", "each well needs a path")
        path = well["path"]
        if "rowIndex" in well and "columnIndex" in well:
            try:
                positions[path] = (int(well["rowIndex"]), int(well["columnIndex"]))
            except (TypeError, ValueError) as exc:
                raise InvalidMetadataError(
                    src, f"plate.wells[{i}]", f"rowIndex/columnIndex must be integers ({exc})"
                ) from exc
        else:  # 0.1-0.3: from the names in the path
            rname, _, cname = path.partition("/")
            positions[path] = (
                row_names.index(rname) if rname in row_names else 0,
                col_names.index(cname) if cname in col_names else 0,
            )
    first_path = next(iter(positions))
    first_well = _child_group(group, first_path, src, "plate.wells[0].path")
    well_src = _join(src, first_path)
    well_ome, _ = ngff_attrs(_attrs(first_well))
    images = _mapping(well_ome.get("well")).get("images")
    if not isinstance(images, list) or not images or not isinstance(images[0], Mapping):
        raise InvalidMetadataError(well_src, "well.images", "no field listed")
    if not isinstance(images[0].get("path"), str):
        raise InvalidMetadataError(well_src, "well.images[0].path", "each field needs a path")
    field = images[0]["path"]
    field_group = _child_group(first_well, field, well_src, "well.images[0].path")
    template = _read_image(
        field_group,
        _join(src, f"{first_path}/{field}"),
        _attrs(field_group),
        with_labels=False,
        coordinate_system=coordinate_system,
    )
    n_rows = max(len(row_names), 1 + max(p[0] for p in positions.values()))
    n_cols = max(len(col_names), 1 + max(p[1] for p in positions.values()))
    if plate_level is None:
        plate_level = next(
            (i for i, lvl in enumerate(template.levels) if lvl.shape[-1] * n_cols <= 16384),
            template.num_levels - 1,
        )
    plate_level = min(max(plate_level, 0), template.num_levels - 1)
    levels = []
    for lvl in template.levels[plate_level:]:
        tiles = {
            pos: _LazyTile(group, f"{wpath}/{field}/{lvl.path}", lvl.shape, lvl.data.dtype)
            for wpath, pos in positions.items()
        }
        mosaic = PlateMosaic(tiles, (n_rows, n_cols), lvl.shape, lvl.data.dtype)
        levels.append(Level(lvl.path, mosaic, lvl.scale, lvl.translation))
    name = plate.get("name") if isinstance(plate.get("name"), str) else src.rsplit("/", 1)[-1]
    return template.replace(
        levels=levels,
        name=name,
        source=src,
        attrs=dict(attrs),
        labels={},
        notes=[
            f"plate: {len(positions)} wells of {n_rows}x{n_cols}, field '{field}', "
            f"from level {plate_level}"
        ],
    )
