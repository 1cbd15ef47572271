"""Channel metadata: edit labels, colours, windows and visibility; save them in place.

Edits apply live to the layers of the image (one layer per channel); Save writes the
``omero`` block back into the store atomically (:func:`~..core.metadata.write_channels`),
Revert re-reads it.  A read-only source (URL, read-only folder) cannot be saved in
place: "Save as..." writes a copy of the image with its levels as they are and the
edited channels (:func:`~..core.pyramid.write_levels`).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Label
from napari.utils.notifications import show_info, show_warning
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .._errors import DestinationExistsError, ReadOnlyStoreError
from .._layers import colormap_for, contrast_limits_for, image_to_layer_data
from ..core.metadata import read_channels, write_channels
from ..core.model import ChannelInfo, Window
from ..core.omezarr import read_ome_zarr
from ..core.store import is_url
from ._common import (
    TaskRunner,
    layer_choices,
    notify_failure,
    omezarr_layers,
    source_layers,
    watch_layers,
    zarrnii_info,
)

if TYPE_CHECKING:
    import napari

__all__ = ["ChannelMetadataWidget"]

COLUMNS = ("label", "colour", "start", "end", "min", "max", "active")
_WINDOW_COLUMNS = {"start": 2, "end": 3, "min": 4, "max": 5}


def _ask_color(current: str) -> str | None:
    color = QColorDialog.getColor(QColor(f"#{current}"), None, "Channel colour")
    return color.name()[1:].upper() if color.isValid() else None


def _ask_save_path() -> str | None:
    path, _ = QFileDialog.getSaveFileName(
        None, "Save a copy as OME-Zarr", "", "OME-Zarr (*.ome.zarr)"
    )
    return path or None


def _confirm_overwrite(path: str) -> bool:
    answer = QMessageBox.question(None, "Replace?", f"{path} exists. Replace it?")
    return answer == QMessageBox.StandardButton.Yes


class ChannelMetadataWidget(QWidget):
    """Edit the channels (omero metadata) of an image opened from OME-Zarr.

    ``choose_color(hex) -> hex | None``, ``ask_save_path() -> path | None`` and
    ``confirm_overwrite(path) -> bool`` open dialogs; tests replace them.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self.choose_color = _ask_color
        self.ask_save_path = _ask_save_path
        self.confirm_overwrite = _confirm_overwrite
        self.source: str | None = None
        self.channels: list[ChannelInfo] = []
        self.layers: dict[int, Any] = {}
        self._dtype: Any = np.uint16
        self._updating = False

        self.layer = ComboBox(label="image", choices=layer_choices(viewer, omezarr_layers))
        self.status = Label(value="")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        # share the dock's width: no horizontal scrolling for a handful of columns
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        for col in (1, 6):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setMinimumSectionSize(40)
        self.table.itemChanged.connect(self._on_item_changed)
        self.use_contrast_button = QPushButton("Use current contrast limits")
        self.save_button = QPushButton("Save")
        self.revert_button = QPushButton("Revert")
        self.save_as_button = QPushButton("Save as...")
        self.use_contrast_button.clicked.connect(self.use_current_contrast)
        self.save_button.clicked.connect(self.save)
        self.revert_button.clicked.connect(self.revert)
        self.save_as_button.clicked.connect(lambda: self.save_as())
        self.runner = TaskRunner()

        row1 = QHBoxLayout()
        row1.addWidget(self.use_contrast_button)
        row2 = QHBoxLayout()
        for button in (self.save_button, self.revert_button, self.save_as_button):
            row2.addWidget(button)
        layout = QVBoxLayout(self)
        pick = QHBoxLayout()
        pick.addWidget(QLabel("image"))
        pick.addWidget(self.layer.native, 1)
        layout.addLayout(pick)
        layout.addWidget(self.status.native)
        layout.addWidget(self.table, 1)
        layout.addLayout(row1)
        layout.addLayout(row2)
        layout.addWidget(self.runner.native)

        self.layer.changed.connect(lambda *_: self.load())
        watch_layers(viewer, self._on_layers_changed, self)
        self.load()

    # -- loading --------------------------------------------------------------------------
    def _on_layers_changed(self) -> None:
        self.layer.reset_choices()
        if self.source is not None:
            self.layers = source_layers(self._viewer, self.source)

    def load(self) -> None:
        """Show the channels of the chosen layer's image (as stored on disk)."""
        layer = self.layer.value
        if layer is None:
            self.source, self.channels, self.layers = None, [], {}
            self.status.value = "Open an OME-Zarr image to edit its channels."
            self._fill_table()
            return
        self.source = zarrnii_info(layer)["source"]
        self.layers = source_layers(self._viewer, self.source)
        self._dtype = layer.dtype
        try:
            stored = read_channels(self.source)
        except (OSError, ValueError) as exc:
            notify_failure(f"Reading the channels of {self.source}", exc)
            stored = [self._from_layer(ly) for ly in self.layers.values()]
        self.channels = [self._with_window(i, ch) for i, ch in enumerate(stored)]
        self._show_writable()
        self._fill_table()

    def _from_layer(self, layer: Any) -> ChannelInfo:
        info = zarrnii_info(layer).get("channel") or {}
        return ChannelInfo(label=layer.name, color=info.get("color", "FFFFFF"))

    def _with_window(self, index: int, ch: ChannelInfo) -> ChannelInfo:
        """Channels without a stored window get the one the layer shows."""
        if ch.window is not None:
            return ch
        lo, hi = contrast_limits_for(ch, self._dtype)
        layer = self.layers.get(index)
        start, end = (float(v) for v in layer.contrast_limits) if layer is not None else (lo, hi)
        return replace(ch, window=Window(start, end, min(lo, start), max(hi, end)))

    def _show_writable(self) -> None:
        src = self.source or ""
        read_only = is_url(src) or not os.access(src, os.W_OK)
        where = (
            "read-only: edits apply to the layers; use Save as... to keep them"
            if read_only
            else "changes apply live; Save writes them into the store"
        )
        self.status.value = f"{src}\n{where}"
        self.save_button.setEnabled(not read_only)

    def _fill_table(self) -> None:
        self._updating = True
        try:
            self.table.setRowCount(len(self.channels))
            for row, ch in enumerate(self.channels):
                self.table.setItem(row, 0, QTableWidgetItem(ch.label))
                button = QPushButton(ch.color)
                button.clicked.connect(lambda _=False, r=row: self._pick_color(r))
                self.table.setCellWidget(row, 1, button)
                self._paint_color(row)
                window = ch.window or Window(0.0, 1.0, 0.0, 1.0)
                for key, col in _WINDOW_COLUMNS.items():
                    spin = QDoubleSpinBox()
                    spin.setRange(*self._value_range())
                    spin.setButtonSymbols(QDoubleSpinBox.ButtonSymbols.NoButtons)
                    spin.setDecimals(3 if np.dtype(self._dtype).kind == "f" else 0)
                    spin.setMinimumWidth(40)
                    spin.setValue(float(getattr(window, key)))
                    spin.valueChanged.connect(lambda _v, r=row: self._on_window_changed(r))
                    self.table.setCellWidget(row, col, spin)
                check = QCheckBox()
                check.setChecked(ch.active)
                check.toggled.connect(lambda on, r=row: self.set_channel(r, active=bool(on)))
                self.table.setCellWidget(row, 6, check)
        finally:
            self._updating = False

    def _value_range(self) -> tuple[float, float]:
        """What a window value may be: the dtype's range (wide for floats)."""
        dtype = np.dtype(self._dtype)
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            return float(info.min), float(info.max)
        return -1e12, 1e12

    def _paint_color(self, row: int) -> None:
        button = self.table.cellWidget(row, 1)
        color = self.channels[row].color
        text = "#000000" if QColor(f"#{color}").lightness() > 128 else "#FFFFFF"
        button.setText(color)
        button.setStyleSheet(f"background-color: #{color}; color: {text};")

    # -- editing ------------------------------------------------------------------------
    def spin(self, row: int, key: str) -> QDoubleSpinBox:
        """The spin box of a window value (``'start'``, ``'end'``, ``'min'``, ``'max'``)."""
        return self.table.cellWidget(row, _WINDOW_COLUMNS[key])

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if not self._updating and item.column() == 0:
            self.set_channel(item.row(), label=item.text())

    def _on_window_changed(self, row: int) -> None:
        if self._updating:
            return
        values = {k: self.spin(row, k).value() for k in _WINDOW_COLUMNS}
        self.set_channel(row, window=Window(**values))

    def _pick_color(self, row: int) -> None:
        color = self.choose_color(self.channels[row].color)
        if color:
            self.set_channel(row, color=color)

    def set_channel(self, row: int, **changes: Any) -> None:
        """Change one channel (``label``, ``color``, ``window``, ``active``) and its layer."""
        self.channels[row] = replace(self.channels[row], **changes)
        if "color" in changes:
            self._paint_color(row)
        self._apply(row)

    def _apply(self, row: int) -> None:
        layer = self.layers.get(row)
        if layer is None:
            return
        ch = self.channels[row]
        if ch.label and layer.name != ch.label:
            layer.name = ch.label
        layer.colormap = colormap_for(ch.color)
        window = ch.window
        if window is not None and window.end > window.start:
            lo, hi = layer.contrast_limits_range
            layer.contrast_limits_range = (min(lo, window.start), max(hi, window.end))
            layer.contrast_limits = (window.start, window.end)
        layer.visible = ch.active

    def _set_table_window(self, row: int, window: Window) -> None:
        self._updating = True
        try:
            for key in _WINDOW_COLUMNS:
                self.spin(row, key).setValue(float(getattr(window, key)))
        finally:
            self._updating = False

    def use_current_contrast(self) -> None:
        """Copy every layer's current contrast limits into the channel windows."""
        for row, layer in self.layers.items():
            if row >= len(self.channels):
                continue
            start, end = (float(v) for v in layer.contrast_limits)
            old = self.channels[row].window or Window(start, end, start, end)
            window = Window(start, end, min(old.min, start), max(old.max, end))
            self.channels[row] = replace(self.channels[row], window=window)
            self._set_table_window(row, window)

    # -- saving -------------------------------------------------------------------------
    def save(self) -> bool:
        """Write the channels into the store (atomically); True on success."""
        if self.source is None:
            return False
        try:
            write_channels(self.source, self.channels)
        except ReadOnlyStoreError as exc:
            show_warning(f"{exc}\nUse 'Save as...' to write a copy with these channels.")
            self.save_button.setEnabled(False)
            return False
        except (OSError, ValueError) as exc:
            notify_failure("Saving channel metadata", exc)
            return False
        show_info(f"Saved the channels of {self.source}")
        return True

    def revert(self) -> None:
        """Re-read the channels from the store and apply them to the layers."""
        self.load()
        for row in range(len(self.channels)):
            self._apply(row)

    def save_as(self, path: str | None = None, *, overwrite: bool = False) -> None:
        """Write a copy of the image (levels as they are) with the edited channels."""
        if self.source is None:
            return
        path = path or self.ask_save_path()
        if not path:
            return
        source, channels = self.source, list(self.channels)

        def write(progress: Any, cancel: Any) -> str:
            from ..core.pyramid import write_levels

            image = read_ome_zarr(source).replace(channels=channels)
            version = image.ngff_version if image.ngff_version in ("0.4", "0.5") else "0.5"
            out = write_levels(
                image,
                path,
                ngff_version=version,
                overwrite=overwrite,
                progress=progress,
                cancel=cancel,
            )
            return str(out)

        def on_error(exc: BaseException) -> bool:
            if isinstance(exc, DestinationExistsError) and self.confirm_overwrite(path):
                self.save_as(path, overwrite=True)
                return True
            return False

        self.runner.start(write, desc="Saving a copy", on_done=self._saved_copy, on_error=on_error)

    def _saved_copy(self, path: str) -> None:
        """Open the copy in place of the read-only layers, so Save works from now on."""
        for layer in list(self.layers.values()):
            self._viewer.layers.remove(layer)
        for data, kwargs, kind in image_to_layer_data(read_ome_zarr(path), with_labels=False):
            getattr(self._viewer, f"add_{kind}")(data, **kwargs)
        show_info(f"Saved a copy with the edited channels as {path}")
        self.layer.reset_choices()
        match = [
            ly for ly in omezarr_layers(self._viewer) if zarrnii_info(ly).get("source") == path
        ]
        if match:
            self.layer.value = match[0]
