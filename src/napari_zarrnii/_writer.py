"""npe2 writers: image and labels layers to OME-Zarr through the core pyramid writer.

A single-resolution layer gets a pyramid (levels until the coarsest fits on screen);
a multiscale layer is written with its levels as they are.  Several layers go into
one store: image layers become channels, labels layers go under ``labels/``.  An
existing destination is never replaced from here: napari has no overwrite
confirmation for folders, so the user is asked to choose another name.
"""

from __future__ import annotations

import logging
from typing import Any

from ._layers import layers_to_image
from .core.model import MultiscaleImage

__all__ = ["auto_max_layer", "write_image", "write_labels", "write_layers"]

log = logging.getLogger(__name__)


def auto_max_layer(image: MultiscaleImage, target: int = 256, limit: int = 8) -> int:
    """Number of extra levels that brings the largest spatial axis to ``target`` or less."""
    largest = max((image.shape[i] for i in image.spatial_axes), default=1)
    layers = 0
    while largest > target and layers < limit:
        largest = -(-largest // 2)
        layers += 1
    return layers


def _write(path: str, image: MultiscaleImage) -> list[str]:
    from .core.pyramid import write_levels, write_pyramid

    if image.num_levels > 1:
        out = write_levels(image, path)
    else:
        out = write_pyramid(image, path, max_layer=auto_max_layer(image))
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
