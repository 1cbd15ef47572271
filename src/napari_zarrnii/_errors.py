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
    "ChannelMetadataError",
    "ChunkReadError",
    "ClusterError",
    "DestinationExistsError",
    "InvalidMetadataError",
    "MissingDependencyError",
    "NiftiError",
    "NoTissueError",
    "NotAnImageError",
    "NotDisplayableError",
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
    """Metadata is present but wrong: names the path and the field.

    ``kind`` says which metadata: ``"OME-NGFF"`` (default) or ``"zarr"`` (a damaged
    ``zarr.json`` / ``.zarray``), for the message.
    """

    def __init__(self, path: str, field: str, problem: str, *, kind: str = "OME-NGFF") -> None:
        self.path = path
        self.field = field
        self.problem = problem
        super().__init__(f"{path}: invalid {kind} metadata at '{field}': {problem}")


class ChunkReadError(ZarrNiiError, ValueError):
    """A stored chunk cannot be read or decoded (truncated, damaged, unreadable).

    Attributes
    ----------
    store
        The store (path or URL) holding the array.
    array
        The array's path inside the store (``"0"``, ``"labels/cells/1"``).
    chunk
        The chunk's key inside the array (``"c/0/1/2"``, ``"0.1.2"``), or None when
        the failing chunk could not be singled out.
    """

    def __init__(self, store: str, array: str, chunk: str | None, problem: str) -> None:
        self.store = store
        self.array = array
        self.chunk = chunk
        self.problem = problem
        where = f"chunk '{chunk}'" if chunk is not None else "a chunk"
        super().__init__(f"{store}: {where} of array '{array}' cannot be read: {problem}")


class NotDisplayableError(ZarrNiiError, ValueError):
    """napari cannot show this image as it is; the message says how to convert it.

    Complex voxels, fewer than two dimensions to show, or a coarsest level too large
    for napari to read one plane of.  The image can still be read with the Python
    API (:class:`~napari_zarrnii.ZarrNii`).
    """


class NiftiError(ZarrNiiError, ValueError):
    """A NIfTI file is damaged, or an image cannot be stored as NIfTI."""


class DestinationExistsError(ZarrNiiError, FileExistsError):
    """The destination exists and ``overwrite=True`` was not given.

    Attributes
    ----------
    path
        The destination.
    problem
        What is wrong with it (``"already exists"``, ``"is a folder"``, ...).
    replaceable
        True when ``overwrite=True`` would replace it; the message then says so.
        Interfaces with other words for it (``--overwrite`` on the command line)
        build their message from ``path`` and ``problem``.
    """

    def __init__(
        self, path: object, problem: str = "already exists", *, replaceable: bool = True
    ) -> None:
        self.path = str(path)
        self.problem = problem
        self.replaceable = replaceable
        hint = "; pass overwrite=True to replace it" if replaceable else ""
        super().__init__(f"{self.path}: {problem}{hint}")


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


class ChannelMetadataError(ZarrNiiError, ValueError):
    """Channel metadata given to a writer is wrong: names the argument and the field."""


class ChannelCountError(ChannelMetadataError):
    """Channel metadata lists another number of channels than the image has."""


class CancelledError(ZarrNiiError):
    """A long operation was cancelled by the user; nothing was left behind."""


class ClusterError(ZarrNiiError, ConnectionError):
    """No dask.distributed cluster to run on: no active client, or no scheduler there."""
