"""Errors raised by napari-zarrnii.

Every error derives from :class:`ZarrNiiError` and, where one fits, from the
matching builtin, so ``except ValueError`` keeps working for callers that do not
know this package.  Messages name the path and the field at fault.
"""

from __future__ import annotations

__all__ = [
    "BoxError",
    "CancelledError",
    "ChannelCountError",
    "ClusterError",
    "DestinationExistsError",
    "InvalidMetadataError",
    "MissingDependencyError",
    "NiftiError",
    "NoTissueError",
    "NotAnImageError",
    "NotOmeZarrError",
    "ObjectStoreError",
    "ReadOnlyStoreError",
    "SelectionError",
    "UnsupportedFormatError",
    "ZarrNiiError",
]


class ZarrNiiError(Exception):
    """Base class of every error raised by napari-zarrnii."""


class NotAnImageError(ZarrNiiError, ValueError):
    """The path does not exist, or holds no image this package can read."""


class NotOmeZarrError(NotAnImageError):
    """The path is not a zarr group with OME-NGFF image metadata."""


class UnsupportedFormatError(ZarrNiiError, ValueError):
    """The format cannot be told from the name, or cannot be read or written here."""


class InvalidMetadataError(ZarrNiiError, ValueError):
    """OME-NGFF metadata is present but wrong: names the path and the field."""

    def __init__(self, path: str, field: str, problem: str) -> None:
        self.path = path
        self.field = field
        self.problem = problem
        super().__init__(f"{path}: invalid OME-NGFF metadata at '{field}': {problem}")


class NiftiError(ZarrNiiError, ValueError):
    """A NIfTI file is damaged, or an image cannot be stored as NIfTI."""


class DestinationExistsError(ZarrNiiError, FileExistsError):
    """The destination exists and ``overwrite=True`` was not given."""


class ObjectStoreError(ZarrNiiError, ConnectionError):
    """The object store behind a URL cannot be reached (endpoint, network, TLS)."""


class ReadOnlyStoreError(ZarrNiiError, PermissionError):
    """The store cannot be written (remote URL or read-only folder)."""


class SelectionError(ZarrNiiError, IndexError):
    """A level, channel or time point that this image does not have."""


class BoxError(ZarrNiiError, ValueError):
    """A bounding box is malformed, empty, or lies outside the image."""


class NoTissueError(ZarrNiiError, ValueError):
    """No voxel is above the threshold: there is no tissue to bound."""


class MissingDependencyError(ZarrNiiError, ImportError):
    """An optional dependency needed for this operation is not installed."""


class ChannelCountError(ZarrNiiError, ValueError):
    """Channel metadata lists another number of channels than the image has."""


class CancelledError(ZarrNiiError):
    """A long operation was cancelled by the user; nothing was left behind."""


class ClusterError(ZarrNiiError, ConnectionError):
    """No dask.distributed cluster to run on: no active client, or no scheduler there."""
