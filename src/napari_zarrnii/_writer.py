"""npe2 writers: image and labels layers to OME-Zarr through the package's one writer.

A single-resolution layer gets a pyramid (levels until the coarsest fits on screen);
a multiscale layer is written with its levels as they are.  Several layers go into
one store: image layers become channels, labels layers go under ``labels/``.  An
existing destination is never replaced from here: napari has no overwrite
confirmation for folders, so the user is asked to choose another name.
"""

from __future__ import annotations

import logging
from typing import Any

from ._errors import DestinationExistsError
from ._layers import layers_to_image
from .core.io import auto_max_layer, save_image  # auto_max_layer: widgets import it here
from .core.model import MultiscaleImage

__all__ = ["auto_max_layer", "write_image", "write_labels", "write_layers"]

log = logging.getLogger(__name__)


def _write(path: str, image: MultiscaleImage) -> list[str]:
    try:
        if image.num_levels > 1:
            out = save_image(image, path, format="ome-zarr", keep_levels=True)
        else:
            out = save_image(image, path, format="ome-zarr", max_layer="auto")
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


def write_layers(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """Write several image and labels layers into one OME-Zarr store."""
    return _write(path, layers_to_image(layer_data))


def write_image(path: str, data: Any, meta: dict) -> list[str]:
    """Write one image layer as an OME-Zarr store."""
    return _write(path, layers_to_image([(data, meta, "image")]))


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Write one labels layer as an OME-Zarr label image."""
    return _write(path, layers_to_image([(data, meta, "labels")]))
