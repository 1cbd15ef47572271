"""napari-zarrnii: multiscale OME-Zarr and NIfTI images in napari and in Python.

The public API imports neither napari nor Qt::

    from napari_zarrnii import ZarrNii

Images opened in napari are read through one shared cache of decoded chunks;
``set_cache_budget("2GiB")``, ``cache_info()`` and ``set_prefetch(False)`` tune it.
"""

from __future__ import annotations

from ._errors import (
    BoxError,
    CancelledError,
    ChannelCountError,
    ChannelMetadataError,
    ChunkReadError,
    ClusterError,
    DestinationExistsError,
    InvalidMetadataError,
    MissingDependencyError,
    NiftiError,
    NotAnImageError,
    NotDisplayableError,
    NoTissueError,
    NotOmeZarrError,
    ObjectStoreError,
    ReadOnlyStoreError,
    SelectionError,
    UnsupportedFormatError,
    ZarrNiiError,
)

try:
    from ._version import __version__
except ImportError:  # running from a source tree without a build
    __version__ = "0.0.0+unknown"

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
    "ZarrNii",
    "ZarrNiiError",
    "__version__",
    "cache_info",
    "set_cache_budget",
    "set_prefetch",
]


def __getattr__(name: str):  # lazy: keeps `import napari_zarrnii` (and napari start-up) fast
    if name == "ZarrNii":
        from ._zarrnii import ZarrNii

        return ZarrNii
    if name in ("cache_info", "set_cache_budget"):
        from .core import cache

        return getattr(cache, name)
    if name == "set_prefetch":
        from .core.prefetch import set_prefetch

        return set_prefetch
    raise AttributeError(f"module 'napari_zarrnii' has no attribute {name!r}")
