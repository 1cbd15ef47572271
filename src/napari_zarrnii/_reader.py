"""npe2 reader: claims OME-Zarr folders/URLs/.ozx and NIfTI files, declines everything else.

``get_reader`` reads metadata only; a path without OME metadata gets ``None`` so
napari can offer it to other readers.  A path that *is* OME-Zarr but whose
metadata is wrong is claimed, and reading it raises an error that names the path
and the field, which napari shows as a notification.  Which paths are which is
decided by :mod:`.core.io`, like everywhere else in the package.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any

from ._errors import NotAnImageError, UnsupportedFormatError, ZarrNiiError
from .core.io import format_of, open_image
from .core.store import normalize_source

__all__ = ["get_reader", "read_path"]

log = logging.getLogger(__name__)


def read_path(path: Any, group: Any = None) -> list[tuple]:
    """Layer data tuples for one OME-Zarr or NIfTI path (raises for bad input).

    ``group`` is the zarr group at ``path`` if it is already open.
    """
    from ._layers import image_to_layer_data

    src = normalize_source(path)
    fmt = format_of(src)
    options: dict[str, Any] = {}
    if fmt.zarr:
        # a label image opens over the image it labels, as napari users expect
        options["with_source_image"] = True
        if group is not None:
            options["group"] = group
    image = open_image(src, format=fmt.key, **options)
    for note in image.notes:
        log.info("%s: %s", src, note)
    return image_to_layer_data(image)


def get_reader(path: str | list[str]) -> Callable[[Any], list[tuple]] | None:
    """Return a reader function when ``path`` is OME-Zarr or NIfTI, else None."""
    try:
        paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
        sources = [normalize_source(p) for p in paths]
    except (TypeError, ValueError) as exc:  # not a path napari could mean
        log.debug("declined %r: %s", path, exc)
        return None
    if not sources:
        return None
    opened: dict[str, Any] = {}
    for src in sources:
        claim = _claim(src)
        if claim is None:
            return None
        opened[src] = claim
    # the groups opened to decide are handed on: metadata is not fetched twice
    return functools.partial(_read_all, opened=opened)


def _claim(src: str) -> Any:
    """None to decline; else the opened zarr group (or True for a file format)."""
    try:
        fmt = format_of(src)
    except (NotAnImageError, UnsupportedFormatError) as exc:
        log.debug("declined %s: %s", src, exc)
        return None
    if not fmt.napari:
        return None
    if not fmt.zarr:
        return True if os.path.isfile(src) else None
    from .core.omezarr import close_group, detect_layout, find_source_image, open_group

    try:
        group = open_group(src)
        layout = detect_layout(group.attrs.asdict())
        # a 'labels' group is read with the image above it; without one there is none
        if layout is None or (layout == "labels" and find_source_image(src, group) is None):
            close_group(group)
            return None
        return group
    except NotAnImageError as exc:
        log.debug("declined %s: %s", src, exc)
        return None
    # get_reader must never raise: HTTP errors, missing fsspec backends (gcsfs, adlfs),
    # missing credentials... are logged and the path left to other readers.
    except Exception as exc:  # noqa: BLE001
        log.info("declined %s: cannot be opened (%s: %s)", src, type(exc).__name__, exc)
        return None


def _read_all(path: str | list[str], opened: dict[str, Any] | None = None) -> list[tuple]:
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    layers: list[tuple] = []
    for p in paths:
        group = (opened or {}).get(normalize_source(p))
        try:
            layers.extend(read_path(p, group=None if group is True else group))
        except ZarrNiiError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            raise ZarrNiiError(f"{p}: cannot be read ({type(exc).__name__}: {exc})") from exc
    return layers
