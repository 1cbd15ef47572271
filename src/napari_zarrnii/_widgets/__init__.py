"""Dock widgets of napari-zarrnii: thin magicgui/Qt shells over :mod:`napari_zarrnii.core`.

Each widget takes the viewer (injected by npe2), runs long core functions in a thread
worker with progress and a working Cancel, and reports failures as notifications.
"""

from __future__ import annotations

__all__ = [
    "ChannelMetadataWidget",
    "CreatePyramidWidget",
    "CropRoiWidget",
    "StorageReportWidget",
]


def __getattr__(name: str):  # import Qt-heavy modules only when a widget is asked for
    if name == "CreatePyramidWidget":
        from .pyramid import CreatePyramidWidget

        return CreatePyramidWidget
    if name == "ChannelMetadataWidget":
        from .channels import ChannelMetadataWidget

        return ChannelMetadataWidget
    if name == "CropRoiWidget":
        from .crop import CropRoiWidget

        return CropRoiWidget
    if name == "StorageReportWidget":
        from .storage import StorageReportWidget

        return StorageReportWidget
    raise AttributeError(name)
