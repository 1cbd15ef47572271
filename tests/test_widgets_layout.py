"""The four docks on a 1280x800 screen, in napari's dark and light themes.

The window is shown (layout only happens for visible widgets) and sized 1280x800;
with every dock open nothing may push the window past that size, no panel may need
sideways scrolling, a long message may not widen its dock, and the controls must be
readable in both themes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import QLocale, QPoint, Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QApplication, QScrollArea

from napari_zarrnii.core.pyramid import write_pyramid
from napari_zarrnii.core.sample import make_sample_image

pytestmark = pytest.mark.gui

PLUGIN = "napari-zarrnii"
NAMES = ("Create pyramid", "Channel metadata", "Crop ROI to full resolution", "Storage report")
SCREEN = (1280, 800)
TIMEOUT = 30_000


@pytest.fixture
def four_docks(make_napari_viewer, qtbot, tmp_path):
    """A shown 1280x800 viewer with the sample store open and all four docks."""
    store: Path = write_pyramid(
        make_sample_image(n_cells=6), tmp_path / "sample.ome.zarr", max_layer=2, chunks=64
    )
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(*SCREEN)
    viewer.open(str(store), plugin=PLUGIN)
    docks = {}
    for name in NAMES:
        dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
        docks[name] = (dock, widget)
    for _, widget in docks.values():
        if hasattr(widget, "runner"):
            qtbot.waitUntil(lambda w=widget: not w.runner.busy, timeout=TIMEOUT)
    _settle(qtbot)
    return viewer, docks


def _settle(qtbot) -> None:
    for _ in range(5):
        QApplication.processEvents()
        qtbot.wait(20)


def _canvas_width(viewer) -> int:
    return viewer.window._qt_viewer.canvas.native.width()


def _scroll_areas(widget) -> list[QScrollArea]:
    native = getattr(widget, "native", widget)
    areas = native.findChildren(QScrollArea)
    return [a for a in areas if a.isVisible()]


def test_four_docks_fit_1280x800(four_docks, qtbot):
    viewer, docks = four_docks
    window = viewer.window._qt_window
    assert (window.width(), window.height()) == SCREEN
    heights = [dock.minimumSizeHint().height() for dock, _ in docks.values()]
    assert sum(heights) <= SCREEN[1] - 100, heights
    widths = {name: dock.width() for name, (dock, _) in docks.items()}
    assert max(widths.values()) <= 480, widths
    canvas = _canvas_width(viewer)
    assert canvas >= 420
    for name, (_, widget) in docks.items():
        for area in _scroll_areas(widget):
            assert not area.horizontalScrollBar().isVisible(), name
            content = area.widget()
            assert content.minimumSizeHint().width() <= area.viewport().width(), name

    # a long message wraps inside the dock: the dock and the canvas keep their width
    pyramid = docks["Create pyramid"][1]
    pyramid.factors.value = "2," + "9" * 150
    assert "cannot plan" in pyramid.summary.value
    pyramid.output.value = Path("/a/very/long/folder/name" * 8) / "single.ome.zarr"
    _settle(qtbot)
    assert {name: dock.width() for name, (dock, _) in docks.items()} == widths
    assert _canvas_width(viewer) == canvas
    assert (window.width(), window.height()) == SCREEN


def test_storage_table_fits_the_dock(four_docks):
    _, docks = four_docks
    table = docks["Storage report"][1].table.native
    assert not table.horizontalScrollBar().isVisible()
    assert table.horizontalHeader().length() <= table.viewport().width()
    # what the cells show (not only what they hold): ratios with two decimals, shapes whole
    delegate = table.itemDelegate()
    shown = [
        [delegate.displayText(table.item(r, c).text(), QLocale()) for c in range(5)]
        for r in range(table.rowCount())
    ]
    assert all(len(r.split(".")[-1]) == 2 for r in shown[7][1:]), shown[7]
    metrics = table.fontMetrics()
    for c in range(1, 4):
        assert metrics.horizontalAdvance(shown[0][c]) + 8 <= table.columnWidth(c), shown[0]


def test_channel_table_shows_labels_and_toggles_by_cell(four_docks, qtbot):
    _, docks = four_docks
    widget = docks["Channel metadata"][1]
    table = widget.table
    assert not table.horizontalScrollBar().isVisible()
    widget.table.item(1, 0).setText("membrane")
    _settle(qtbot)
    label_width = table.fontMetrics().horizontalAdvance("cytoplasm (GFP)")
    assert table.columnWidth(0) >= label_width + 8
    # a click anywhere in the 'active' cell toggles it: its corner, or the box itself
    cell = table.cellWidget(1, 6)
    assert cell.geometry() == table.visualRect(table.model().index(1, 6))
    assert widget.channels[1].active
    qtbot.mouseClick(cell, Qt.MouseButton.LeftButton, pos=QPoint(2, 2))
    assert not widget.channels[1].active
    qtbot.mouseClick(cell.box, Qt.MouseButton.LeftButton)
    assert widget.channels[1].active


def test_long_path_is_elided_with_the_full_text_at_hand(four_docks, qtbot):
    _, docks = four_docks
    widget = docks["Create pyramid"][1]
    long = Path("/data/" + "deeply/nested/" * 12) / "single.ome.zarr"
    widget.output.value = long
    _settle(qtbot)
    label = widget.target.native
    assert "…" in label.text() and label.text().endswith("single.ome.zarr")
    assert str(long) in label.toolTip()
    for line in label.text().splitlines():
        assert label.fontMetrics().horizontalAdvance(line) <= label.width()


def _luminance(color: QColor) -> float:
    return 0.2126 * color.redF() + 0.7152 * color.greenF() + 0.0722 * color.blueF()


def _contrast(a: QColor, b: QColor) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)))
    return (lb + 0.05) / (la + 0.05)


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_controls_readable_in_theme(four_docks, qtbot, theme):
    viewer, docks = four_docks
    viewer.theme = theme
    _settle(qtbot)
    widget = docks["Channel metadata"][1]
    widget.table.cellWidget(0, 6).setChecked(False)
    _settle(qtbot)
    # the unchecked box stands out from the cell around it
    cell = widget.table.cellWidget(0, 6)
    image = cell.grab().toImage()
    corner = image.pixelColor(1, 1)
    colors = {
        image.pixelColor(x, y).rgb() for x in range(image.width()) for y in range(image.height())
    }
    best = max(_contrast(QColor.fromRgb(c), corner) for c in colors)
    assert best >= 3.0, (theme, best)
    # the text on colour swatches is readable on bright and dark colours alike
    for color in ("FFFF00", "00FF00", "00FFFF", "FFFFFF", "0000FF", "000000", "FF0000"):
        widget.set_channel(0, color=color)
        swatch = widget.table.cellWidget(0, 1)
        text = swatch.palette().color(swatch.foregroundRole())
        assert _contrast(text, QColor(f"#{color}")) >= 4.5, (color, text.name())
    # the message next to the table uses a colour readable on the theme's background
    widget.spin(0, "start").setValue(60000)
    widget.spin(0, "end").setValue(10)
    _settle(qtbot)
    label = widget.problem
    fg = label.palette().color(label.foregroundRole())
    bg = widget.palette().color(widget.backgroundRole())
    assert label.text() and _contrast(fg, bg) >= 3.0, (fg.name(), bg.name())
    assert np.isfinite(_contrast(fg, bg))
