"""npe2 sample data: the generated multichannel pyramid with labels."""

from __future__ import annotations

from ._layers import image_to_layer_data
from .core.sample import make_sample_image

__all__ = ["make_sample_data"]


def make_sample_data() -> list[tuple]:
    """Layer data of the generated sample (two channels, three levels, one label image)."""
    return image_to_layer_data(make_sample_image())
