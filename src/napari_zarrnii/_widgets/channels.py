"""Channel metadata: edit labels, colours, windows and visibility; save them.

Edits apply live to the layers of the image (one layer per channel).  For an image
opened from a writable OME-Zarr store, Save writes the ``omero`` block back into the
store atomically (:func:`~..core.metadata.write_channels`) and Revert re-reads it.
Any other image -- a read-only store (URL, read-only folder), a NIfTI or TIFF file,
a layer that exists only in memory -- cannot be saved in place: "Save as..." writes
it as OME-Zarr with the edited channels and shows the copy in its place.

A window is checked as it is typed, with the rule the reader applies
(:func:`~..core.metadata.window_problem`); the problem is shown under the table and
nothing is applied or saved until it is fixed.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from magicgui.widgets import ComboBox, Label
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QMouseEvent, QPalette
from qtpy.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .._errors import ReadOnlyStoreError
from .._layers import colormap_for, contrast_limits_for, image_to_layer_data, layers_to_image
from ..core.io import open_image, save_image
from ..core.metadata import read_channels, window_problem, write_channels
from ..core.model import ChannelInfo, MultiscaleImage, Window
from ..core.ngff import WRITABLE_VERSIONS as WRITABLE
from ..core.store import is_url, normalize_source
from ._common import (
    ElidedLabel,
    TaskRunner,
    alert_color,
    ask_replace,
    ask_yes_no,
    describe_layers,
    fit_rows,
    image_layers,
    layer_choices,
    notify_failure,
    on_closed,
    same_store,
    set_message,
    source_layers,
    text_on,
    theme_color,
    watch_layers,
    zarrnii_info,
)

if TYPE_CHECKING:
    import napari

__all__ = ["ChannelMetadataWidget"]

COLUMNS = ("label", "colour", "start", "end", "min", "max", "active")
#: what the headers mean, as their tooltips
HEADER_TIPS = (
    "channel label (the layer name)",
    "channel colour: click to change",
    "window start: shown as black",
    "window end: shown at full colour",
    "smallest value of the contrast range",
    "largest value of the contrast range",
    "active: the channel is shown",
)
_WINDOW_COLUMNS = {"start": 2, "end": 3, "min": 4, "max": 5}
_COLOR_COLUMN, _ACTIVE_COLUMN = 1, 6
DESC = "Saving a copy"


def _ask_color(current: str) -> str | None:
    color = QColorDialog.getColor(QColor(f"#{current}"), None, "Channel colour")
    return color.name()[1:].upper() if color.isValid() else None


def _ask_save_path() -> str | None:
    path, _ = QFileDialog.getSaveFileName(
        None, "Save a copy as OME-Zarr", "", "OME-Zarr (*.ome.zarr)"
    )
    return path or None


def _confirm_overwrite(path: str, question: str) -> bool:
    return ask_yes_no("Replace existing store?", question)


class _ToggleCell(QWidget):
    """A check box centred in a table cell; a click anywhere in the cell toggles it."""

    def __init__(self, checked: bool) -> None:
        super().__init__()
        self.box = QCheckBox()
        self.box.setChecked(checked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.box, 0, Qt.AlignmentFlag.AlignCenter)
        self.toggled = self.box.toggled

    def isChecked(self) -> bool:
        return bool(self.box.isChecked())

    def setChecked(self, checked: bool) -> None:
        self.box.setChecked(checked)

    def mouseReleaseEvent(self, event: QMouseEvent | None) -> None:
        if event is not None and event.button() == Qt.MouseButton.LeftButton:
            self.box.toggle()

    def restyle(self, border: str) -> None:
        """Outline the box so an unchecked one shows in any theme."""
        self.box.setStyleSheet(f"QCheckBox::indicator {{ border: 1px solid {border}; }}")


class ChannelMetadataWidget(QWidget):
    """Edit the channels (omero metadata) of an image layer and its sibling channels.

    ``choose_color(hex) -> hex | None``, ``ask_save_path() -> path | None`` and
    ``confirm_overwrite(path, question) -> bool`` open dialogs; tests replace them.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self.choose_color = _ask_color
        self.ask_save_path = _ask_save_path
        self.confirm_overwrite = _confirm_overwrite
        #: the OME-Zarr store the channels are saved into; None when not saved in place
        self.source: str | None = None
        self.channels: list[ChannelInfo] = []
        self.layers: dict[int, Any] = {}
        self.problems: dict[int, str] = {}
        self._dtype: Any = np.uint16
        self._read_only = True
        self._updating = False

        self.layer = ComboBox(label="image", choices=layer_choices(viewer, image_layers))
        self.where = ElidedLabel(value="")
        self.status = Label(value="")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for col, tip in enumerate(HEADER_TIPS):
            header_item = self.table.horizontalHeaderItem(col)
            if header_item is not None:
                header_item.setToolTip(tip)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self._vertical_header().setVisible(False)
        self.table.itemChanged.connect(self._on_item_changed)
        self.problem = QLabel("")
        self.problem.setWordWrap(True)
        self.problem.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.problem.setVisible(False)
        self.use_contrast_button = QPushButton("Use current contrast limits")
        self.save_button = QPushButton("Save")
        self.revert_button = QPushButton("Revert")
        self.save_as_button = QPushButton("Save as...")
        self.use_contrast_button.clicked.connect(self.use_current_contrast)
        self.save_button.clicked.connect(self.save)
        self.revert_button.clicked.connect(self.revert)
        self.save_as_button.clicked.connect(lambda: self.save_as())
        self.runner = TaskRunner()
        self.runner.on_busy_changed(lambda _busy: self._refresh_buttons())
        self._layout()

        self._shown: Any = None  # the layer whose image the table shows
        self.layer.changed.connect(self._on_layer_chosen)
        watch_layers(viewer, self._on_layers_changed, self)
        viewer.events.theme.connect(self._on_theme)
        on_closed(self, self._closed)
        self.load()

    def _layout(self) -> None:
        content = QWidget()
        layout = QVBoxLayout(content)
        pick = QHBoxLayout()
        pick.addWidget(QLabel("image"))
        pick.addWidget(self.layer.native, 1)
        layout.addLayout(pick)
        layout.addWidget(self.where.native)
        set_message(self.status, "")
        layout.addWidget(self.status.native)
        layout.addWidget(self.table)
        layout.addWidget(self.problem)
        layout.addWidget(self.use_contrast_button)
        row = QHBoxLayout()
        for button in (self.save_button, self.revert_button, self.save_as_button):
            row.addWidget(button)
        layout.addLayout(row)
        layout.addWidget(self.runner.native)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(content)
        scroll.setMinimumHeight(110)
        self.scroll_area = scroll
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

    def _fix_width(self) -> None:
        """The panel is as wide as its controls need (the table's columns above all)."""
        scroll = getattr(self, "scroll_area", None)
        content = scroll.widget() if scroll is not None else None
        if scroll is None or content is None:
            return
        bar = scroll.verticalScrollBar()
        extra = (bar.sizeHint().width() if bar is not None else 12) + 4
        scroll.setMinimumWidth(content.minimumSizeHint().width() + extra)

    def _vertical_header(self) -> QHeaderView:
        return cast(QHeaderView, self.table.verticalHeader())

    def _header(self) -> QHeaderView:
        return cast(QHeaderView, self.table.horizontalHeader())

    def _closed(self) -> None:
        self.runner.close()
        with contextlib.suppress(AttributeError, RuntimeError, TypeError, ValueError):
            self._viewer.events.theme.disconnect(self._on_theme)

    # -- loading --------------------------------------------------------------------------
    def _on_layers_changed(self) -> None:
        self.layer.reset_choices()
        if self.source is not None:
            self.layers = source_layers(self._viewer, self.source)

    def _on_layer_chosen(self, *_: Any) -> None:
        if self.layer.value is not self._shown:  # not a rename or a re-listing
            self.load()

    def load(self) -> None:
        """Show the channels of the chosen layer's image (as stored, for an OME-Zarr)."""
        layer = self.layer.value
        self._shown = layer
        self.problems = {}
        if layer is None:
            self.source, self.channels, self.layers = None, [], {}
            self._read_only = True
            self.where.value = ""
            set_message(self.status, "Open or add an image to edit its channels.")
            self._fill_table()
            return
        info = zarrnii_info(layer)
        src = info.get("source")
        self._dtype = layer.dtype
        if src and info.get("ngff_version"):
            self.source = str(src)
            self.layers = source_layers(self._viewer, self.source)
            try:
                stored = read_channels(self.source)
            except (OSError, ValueError) as exc:
                notify_failure(f"Reading the channels of {self.source}", exc)
                stored = [self._from_layer(ly) for ly in self.layers.values()]
            self.channels = [self._with_window(i, ch) for i, ch in enumerate(stored)]
        else:
            self.source = None
            self.layers = {0: layer}
            self.channels = [self._from_layer(layer)]
        self._show_where(layer, src)
        self._fill_table()

    def _from_layer(self, layer: Any) -> ChannelInfo:
        """The channel a layer shows: its name, colour, contrast limits and visibility."""
        channel = layers_to_image([layer]).channels[0]
        return replace(channel, label=str(layer.name))

    def _with_window(self, index: int, ch: ChannelInfo) -> ChannelInfo:
        """Channels without a stored window get the one the layer shows."""
        if ch.window is not None:
            return ch
        lo, hi = contrast_limits_for(ch, self._dtype)
        layer = self.layers.get(index)
        start, end = (float(v) for v in layer.contrast_limits) if layer is not None else (lo, hi)
        return replace(ch, window=Window(start, end, min(lo, start), max(hi, end)))

    def _show_where(self, layer: Any, src: str | None) -> None:
        if self.source is not None:
            read_only = is_url(self.source) or not os.access(self.source, os.W_OK)
            self.where.value = self.source
            text = (
                "read-only: edits apply to the layers; Save as... writes a copy with them"
                if read_only
                else "changes apply live; Save writes them into the store"
            )
        else:
            read_only = True
            self.where.value = str(src) if src else f"'{layer.name}' (in memory)"
            origin = f"opened from {Path(str(src)).name}" if src else "in memory"
            text = f"{origin}: edits apply to the layer; Save as... writes it as OME-Zarr"
        self._read_only = read_only
        set_message(self.status, text)
        self._refresh_buttons()

    def _refresh_buttons(self) -> None:
        ok = not self.problems and bool(self.channels)
        busy = self.runner.busy
        self.save_button.setEnabled(ok and not self._read_only and not busy)
        self.save_as_button.setEnabled(ok and not busy)
        self.revert_button.setEnabled(bool(self.channels) and not busy)

    # -- the table ------------------------------------------------------------------------
    def _spin_width(self) -> int:
        """Wide enough for the dtype's numbers (at most 7 digits are shown whole)."""
        dtype = np.dtype(self._dtype)
        digits = len(str(int(np.iinfo(dtype).max))) if dtype.kind in "iu" else 7
        digits += 1 if dtype.kind == "i" else 0
        return self.table.fontMetrics().horizontalAdvance("8" * min(digits, 7)) + 10

    def _size_columns(self) -> None:
        header = self._header()
        header.setMinimumSectionSize(24)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        metrics = self.table.fontMetrics()
        widths = {
            _COLOR_COLUMN: metrics.horizontalAdvance("FFFFFF") + 14,
            _ACTIVE_COLUMN: metrics.horizontalAdvance("active") + 12,
        }
        for col in _WINDOW_COLUMNS.values():
            widths[col] = self._spin_width()
        for col, width in widths.items():
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Fixed)
            self.table.setColumnWidth(col, width)
        # room for a label like "cytoplasm (GFP)" beside the fixed columns
        label = metrics.horizontalAdvance("cytoplasm (GFP)") + 12
        self.table.setMinimumWidth(sum(widths.values()) + label + 2 * self.table.frameWidth())
        self._fix_width()

    def _fill_table(self) -> None:
        self._updating = True
        try:
            self.table.setRowCount(len(self.channels))
            self._size_columns()
            for row, ch in enumerate(self.channels):
                item = QTableWidgetItem(ch.label)
                item.setToolTip(ch.label)
                self.table.setItem(row, 0, item)
                button = QPushButton(ch.color)
                button.clicked.connect(lambda _=False, r=row: self._pick_color(r))
                self.table.setCellWidget(row, _COLOR_COLUMN, button)
                self._paint_color(row)
                window = ch.window or Window(0.0, 1.0, 0.0, 1.0)
                for key, col in _WINDOW_COLUMNS.items():
                    spin = QDoubleSpinBox()
                    spin.setRange(*self._value_range())
                    spin.setButtonSymbols(QDoubleSpinBox.ButtonSymbols.NoButtons)
                    spin.setDecimals(3 if np.dtype(self._dtype).kind == "f" else 0)
                    spin.setMinimumWidth(0)
                    spin.setValue(float(getattr(window, key)))
                    spin.setToolTip(f"window {key}")
                    spin.valueChanged.connect(lambda _v, r=row: self._on_window_changed(r))
                    self.table.setCellWidget(row, col, spin)
                check = _ToggleCell(ch.active)
                check.setToolTip("shown")
                check.toggled.connect(lambda on, r=row: self.set_channel(r, active=bool(on)))
                self.table.setCellWidget(row, _ACTIVE_COLUMN, check)
        finally:
            self._updating = False
        fit_rows(self.table, max(1, min(len(self.channels), 8)))
        self._on_theme()
        self._show_problems()

    def _value_range(self) -> tuple[float, float]:
        """What a window value may be: the dtype's range (wide for floats)."""
        dtype = np.dtype(self._dtype)
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            return float(info.min), float(info.max)
        return -1e12, 1e12

    def _paint_color(self, row: int) -> None:
        button = cast(QPushButton, self.table.cellWidget(row, _COLOR_COLUMN))
        color = f"#{self.channels[row].color}"
        text = text_on(color)
        border = theme_color(self._viewer, "text", "#808080")
        button.setText(self.channels[row].color)
        button.setToolTip(f"colour {color}: click to change")
        button.setStyleSheet(
            f"QPushButton {{ background-color: {color}; color: {text}; "
            f"border: 1px solid {border}; padding: 0px; }}"
        )
        palette = button.palette()
        palette.setColor(QPalette.ColorRole.ButtonText, QColor(text))
        palette.setColor(QPalette.ColorRole.Button, QColor(color))
        button.setPalette(palette)

    def _on_theme(self, *_: Any) -> None:
        """Outlines and the problem colour follow napari's theme."""
        border = theme_color(self._viewer, "text", "#808080")
        for row in range(self.table.rowCount()):
            cell = self.table.cellWidget(row, _ACTIVE_COLUMN)
            if isinstance(cell, _ToggleCell):
                cell.restyle(border)
            if row < len(self.channels):
                self._paint_color(row)
        color = alert_color(self._viewer)
        self.problem.setStyleSheet(f"QLabel {{ color: {color}; }}")
        palette = self.problem.palette()
        palette.setColor(QPalette.ColorRole.WindowText, QColor(color))
        self.problem.setPalette(palette)
        self._show_problems()

    # -- editing ------------------------------------------------------------------------
    def spin(self, row: int, key: str) -> QDoubleSpinBox:
        """The spin box of a window value (``'start'``, ``'end'``, ``'min'``, ``'max'``)."""
        return cast(QDoubleSpinBox, self.table.cellWidget(row, _WINDOW_COLUMNS[key]))

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._updating or item.column() != 0:
            return
        row, text = item.row(), item.text()
        self._updating = True
        try:
            item.setToolTip(text)
        finally:
            self._updating = False
        self.set_channel(row, label=text)

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
        if "window" in changes:
            self._check_window(row)
        self._apply(row)

    def _check_window(self, row: int) -> None:
        window = self.channels[row].window
        problem = None if window is None else window_problem(window)
        if problem is None:
            self.problems.pop(row, None)
        else:
            self.problems[row] = problem
        self._show_problems()

    def _show_problems(self) -> None:
        """The window problems under the table, the spin boxes at fault outlined."""
        color = alert_color(self._viewer)
        for row in range(min(self.table.rowCount(), len(self.channels))):
            bad = row in self.problems
            for key in ("start", "end"):
                spin = self.spin(row, key)
                if spin is not None:
                    spin.setStyleSheet(f"border: 1px solid {color};" if bad else "")
        lines = [
            f"\u26a0 {self.channels[row].label or f'channel {row}'}: window {problem}"
            for row, problem in sorted(self.problems.items())
            if row < len(self.channels)
        ]
        self.problem.setText("\n".join(lines))
        self.problem.setVisible(bool(lines))
        self._refresh_buttons()

    def _apply(self, row: int) -> None:
        layer = self.layers.get(row)
        if layer is None:
            return
        ch = self.channels[row]
        if ch.label and layer.name != ch.label:
            layer.name = ch.label
        layer.colormap = colormap_for(ch.color)
        window = ch.window
        if window is not None and window_problem(window) is None:
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
            self._check_window(row)

    # -- saving -------------------------------------------------------------------------
    def save(self) -> bool:
        """Write the channels into the store (atomically); True on success."""
        if self.source is None or self.problems:
            return False
        try:
            write_channels(self.source, self.channels)
        except ReadOnlyStoreError as exc:
            show_warning(f"{exc}\nUse 'Save as...' to write a copy with these channels.")
            self._read_only = True
            self._refresh_buttons()
            return False
        except (OSError, ValueError) as exc:
            notify_failure("Saving channel metadata", exc)
            return False
        show_info(f"Saved the channels of {self.source}")
        return True

    def revert(self) -> None:
        """Re-read the channels (from the store, or the layer) and apply them."""
        self.load()
        for row in range(len(self.channels)):
            self._apply(row)

    def _image_to_save(self) -> tuple[Any, str]:
        """A function reading the image to save (in the worker), and what it is."""
        channels = list(self.channels)
        if self.source is not None:
            source = self.source

            def from_store() -> MultiscaleImage:
                return open_image(source, format="ome-zarr").replace(channels=channels)

            return from_store, f"the image of {Path(source).name}"
        layers = [self.layers[i] for i in sorted(self.layers)]
        image = layers_to_image(layers).replace(channels=channels)
        return (lambda: image), describe_layers(layers)

    def save_as(self, path: str | None = None) -> bool:
        """Write the image (levels as they are) with the edited channels as OME-Zarr.

        Returns True when the write started.
        """
        if not self.channels or self.problems or self.runner.busy:
            return False
        path = path or self.ask_save_path()
        if not path:
            return False
        path = normalize_source(path)
        if self.source is not None and same_store(path, self.source):
            show_warning("Save as...: choose another store than the one shown (use Save)")
            return False
        try:
            read_image, what = self._image_to_save()
        except ValueError as exc:
            notify_failure(DESC, exc)
            return False
        overwrite = ask_replace(
            self,
            DESC,
            path,
            lambda: f"{path}\nalready exists.\n\nReplace it with {what} and these channels?",
        )
        if overwrite is None:
            return False
        replaced = list(self.layers.values())

        def write(progress: Any, cancel: Any) -> str:
            image = read_image()
            version = image.ngff_version if image.ngff_version in WRITABLE else None
            options: dict[str, Any] = {"ngff_version": version} if version else {}
            if image.num_levels > 1:
                options["keep_levels"] = True
            else:
                options["max_layer"] = "auto"
            out = save_image(
                image,
                path,
                format="ome-zarr",
                overwrite=overwrite,
                progress=progress,
                cancel=cancel,
                **options,
            )
            return str(out)

        return self.runner.start(
            write,
            desc=DESC,
            target=f"{what} -> {path}",
            on_done=lambda out: self._saved_copy(out, replaced),
        )

    def _saved_copy(self, path: str, replaced: list[Any]) -> None:
        """Show the copy in place of the layers it was saved from, so Save works from now on."""
        for layer in replaced:
            if layer in self._viewer.layers:
                self._viewer.layers.remove(layer)
        copy = open_image(path, format="ome-zarr")
        for data, kwargs, kind in image_to_layer_data(copy, with_labels=False):
            getattr(self._viewer, f"add_{kind}")(data, **kwargs)
        show_info(f"Saved a copy with the edited channels as {path}")
        self.layer.reset_choices()
        match = next(iter(source_layers(self._viewer, path).values()), None)
        if match is not None and match is not self._shown:
            self.layer.value = match  # loads the copy's channels (_on_layer_chosen)
        else:
            self.load()
