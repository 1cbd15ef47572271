"""npe2 writers: image and labels layers to OME-Zarr through the package's one writer.

A single-resolution layer gets a pyramid (levels until the coarsest fits on screen);
a multiscale layer is written with its levels as they are.  Several layers go into
one store: image layers become channels, labels layers go under ``labels/``.  A name
ending in ``.ozx`` writes one zipped OME-Zarr file (RFC-9) instead of a folder.  An
existing destination is never replaced from here: napari has no overwrite
confirmation for folders, so the user is asked to choose another name.

The writers write OME-NGFF 0.5 (:data:`~.core.ngff.DEFAULT_NGFF_VERSION`), which every
common reader opens.  :func:`write_layers_06` ("OME-Zarr 0.6" in napari's save
dialog) writes 0.6, which also keeps a layer's rotation and shear.
"""

from __future__ import annotations

import logging
from typing import Any

from ._errors import DestinationExistsError
from ._layers import layers_to_image
from .core.io import save_image
from .core.model import MultiscaleImage
from .core.ngff import DEFAULT_NGFF_VERSION, spec_for

__all__ = ["write_image", "write_labels", "write_layers", "write_layers_06"]

log = logging.getLogger(__name__)


def _write(path: str, image: MultiscaleImage, version: str = DEFAULT_NGFF_VERSION) -> list[str]:
    try:
        if image.num_levels > 1:
            out = save_image(
                image, path, format="ome-zarr", keep_levels=True, ngff_version=version
            )
        else:
            out = save_image(
                image, path, format="ome-zarr", max_layer="auto", ngff_version=version
            )
    except DestinationExistsError as exc:
        if not exc.replaceable:
            raise
        # napari's Save dialog cannot say overwrite=True: tell what the user can do
        raise DestinationExistsError(
            exc.path,
            "already exists and is not replaced from napari; choose another name or "
            "delete it first",
            replaceable=False,
        ) from exc
    log.info("saved %s", out)
    return [str(out)]


def _write_version(path: str, layer_data: list[tuple[Any, dict, str]], version: str) -> list[str]:
    keep = spec_for(version).stores_affine
    return _write(path, layers_to_image(layer_data, keep_rotation=keep), version)


def write_layers(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """Write several image and labels layers into one OME-Zarr store (OME-NGFF 0.5)."""
    return _write_version(path, layer_data, DEFAULT_NGFF_VERSION)


def write_layers_06(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """Write image and labels layers as OME-NGFF 0.6, keeping rotation and shear."""
    return _write_version(path, layer_data, "0.6")


def write_image(path: str, data: Any, meta: dict) -> list[str]:
    """Write one image layer as an OME-Zarr store."""
    return _write_version(path, [(data, meta, "image")], DEFAULT_NGFF_VERSION)


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Write one labels layer as an OME-Zarr label image."""
    return _write_version(path, [(data, meta, "labels")], DEFAULT_NGFF_VERSION)
