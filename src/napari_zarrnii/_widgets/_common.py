"""What every widget shares: running core functions in a thread, layer look-ups, layout.

:class:`TaskRunner` runs a core function (``write_pyramid``, ``write_nifti``, ...) in a
napari thread worker so the viewer stays responsive.  It passes the function a
``progress(done, total, message)`` callback and a ``cancel`` :class:`threading.Event`;
progress reaches the GUI thread through a Qt signal and is shown both in the widget
and in napari's activity dock (a :class:`napari.utils.cancelable_progress`, whose
cancel button sets the same event).  The outcome comes back to the GUI thread, where
a success callback runs or the cause of the failure is shown.

The runner is the one place of a task's life cycle.  Each task is bound to what it
works on (its *target*, shown under the progress bar) when it starts; its progress,
result, error and cancellation are handled once, in that order, even when napari's
progress bar processes events (and so delivers the result) in the middle of a
progress update.  The status line always ends on ``"<task>: done"``, ``"<task>:
cancelled ..."`` or the error.  Closing the dock that holds a widget cancels its task.

:class:`Panel` is the frame of a dock widget: its controls in a vertical scroll
area, so four docks fit a small screen; :class:`ElidedLabel` and
:func:`set_message` keep long paths and messages from widening a dock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from magicgui.widgets import Container, Label, ProgressBar, PushButton
from magicgui.widgets.bases import Widget
from napari.qt.threading import create_worker
from napari.utils import cancelable_progress
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent, QObject, Qt, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QFrame,
    QHeaderView,
    QLabel,
    QMessageBox,
    QScrollArea,
    QSizePolicy,
    QStyledItemDelegate,
    QWidget,
)

from .._errors import CancelledError
from ..core.store import destination_exists, is_url, normalize_source

__all__ = [
    "ElidedLabel",
    "Panel",
    "TaskRunner",
    "alert_color",
    "ask_replace",
    "ask_yes_no",
    "contrast",
    "describe_layers",
    "fill_table",
    "fit_rows",
    "format_bytes",
    "image_layers",
    "layer_choices",
    "layers_showing",
    "message_text",
    "notify_failure",
    "on_closed",
    "parse_ints",
    "read_only_table",
    "same_store",
    "set_message",
    "source_layers",
    "text_on",
    "theme_color",
    "watch_layers",
    "zarrnii_info",
]

log = logging.getLogger(__name__)

#: At most this many progress updates per second reach the GUI.
_PROGRESS_HZ = 20.0
#: Words longer than this get break opportunities, so a path or a long number wraps.
_LONG_WORD = 24
_ZWSP = "\u200b"


# -- layers ------------------------------------------------------------------------------
def zarrnii_info(layer: Any) -> dict[str, Any]:
    """What our reader stored in a layer's metadata (empty for other layers)."""
    meta = getattr(layer, "metadata", None) or {}
    info = meta.get("napari_zarrnii")
    return dict(info) if isinstance(info, dict) else {}


def image_layers(viewer: Any, *, kinds: Sequence[str] = ("image",)) -> list[Any]:
    """The viewer's layers of the given kinds (``'image'``, ``'labels'``, ``'shapes'``)."""
    names = {k.lower() for k in kinds}
    return [ly for ly in viewer.layers if type(ly).__name__.lower() in names]


def source_layers(viewer: Any, source: str) -> dict[int, Any]:
    """Image layers our reader opened from ``source``, by channel index."""
    out: dict[int, Any] = {}
    for layer in image_layers(viewer):
        info = zarrnii_info(layer)
        if info.get("source") and same_store(info["source"], source):
            index = info.get("channel_index")
            out[int(index) if index is not None else 0] = layer
    return dict(sorted(out.items()))


def same_store(a: Any, b: Any) -> bool:
    """Whether two paths (or URLs) name the same store."""
    ta, tb = normalize_source(a), normalize_source(b)
    if is_url(ta) or is_url(tb):
        return ta == tb
    return os.path.realpath(ta) == os.path.realpath(tb)


def layers_showing(viewer: Any, path: Any) -> list[Any]:
    """Layers whose data is read from the store at ``path`` (they go stale if it is replaced)."""
    return [
        ly
        for ly in viewer.layers
        if zarrnii_info(ly).get("source") and same_store(zarrnii_info(ly)["source"], path)
    ]


def describe_layers(layers: Iterable[Any]) -> str:
    """``"layers 'DAPI', 'GFP'"`` / ``"layer 'vol'"``."""
    names = [f"'{ly.name}'" for ly in layers]
    return f"layer{'s' if len(names) != 1 else ''} {', '.join(names)}"


def layer_choices(viewer: Any, layers_of: Callable[[Any], list[Any]]) -> Callable[..., list]:
    """A magicgui ``choices`` callable listing ``layers_of(viewer)`` as (name, layer)."""

    def choices(*_: Any) -> list[tuple[str, Any]]:
        return [(ly.name, ly) for ly in layers_of(viewer)]

    return choices


_LAYER_LIST_EVENTS = frozenset({"inserted", "removed", "reordered", "name"})


def watch_layers(viewer: Any, callback: Callable[[], None], owner: Any) -> None:
    """Call ``callback`` whenever layers are added, removed, reordered or renamed.

    ``owner`` (a QWidget, or a magicgui widget) ends the subscription when it is
    closed (see :func:`on_closed`), so a closed dock widget is never called back.
    """
    events = viewer.layers.events

    def on_event(event: Any) -> None:
        if getattr(event, "type", None) in _LAYER_LIST_EVENTS:
            callback()

    def stop() -> None:
        # may run while napari tears the viewer down (its emitters half gone)
        with contextlib.suppress(AttributeError, RuntimeError, TypeError, ValueError):
            events.disconnect(on_event)

    events.connect(on_event)
    on_closed(getattr(owner, "native", owner), stop)


# -- closing -----------------------------------------------------------------------------
class _CloseWatch(QObject):
    """Calls back once when its widget is destroyed or taken out of its dock."""

    def __init__(self, widget: QWidget, callback: Callable[[], None]) -> None:
        super().__init__(widget)
        self._docked = False
        fired = [False]

        def fire(*_: Any) -> None:
            if not fired[0]:
                fired[0] = True
                # a widget collected with the viewer (or at exit) may be half torn down
                with contextlib.suppress(AttributeError, RuntimeError):
                    callback()

        self._fire = fire
        widget.destroyed.connect(fire)
        widget.installEventFilter(self)
        self._follow(widget)

    def _follow(self, widget: QWidget) -> None:
        # napari closes a dock by taking its widget out (parent None), then deleting the
        # dock; the dock's own destroyed signal comes too late to be handled safely
        dock = widget.parentWidget()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parentWidget()
        if dock is not None:
            self._docked = True
        elif self._docked and widget.parentWidget() is None:
            self._fire()

    def eventFilter(self, obj: Any, event: Any) -> bool:
        if event.type() == QEvent.Type.ParentChange and isinstance(obj, QWidget):
            self._follow(obj)
        return False


def on_closed(widget: QWidget, callback: Callable[[], None]) -> None:
    """Call ``callback`` once when ``widget`` is closed.

    Closed means destroyed, or taken out of the dock it was placed in: napari's
    close button removes the widget from its dock (keeping it alive) and deletes
    the dock.
    """
    _CloseWatch(widget, callback)


# -- text that fits ----------------------------------------------------------------------
def _breakable(text: str) -> str:
    """Text with break opportunities after ``/`` and inside very long words."""
    words = []
    for word in text.split(" "):
        if len(word) > _LONG_WORD:
            word = word.replace("/", "/" + _ZWSP).replace("\\", "\\" + _ZWSP)
            parts = word.split(_ZWSP)
            word = _ZWSP.join(
                _ZWSP.join(p[i : i + _LONG_WORD] for i in range(0, len(p), _LONG_WORD))
                for p in parts
            )
        words.append(word)
    return " ".join(words)


def _wrapping(label: QLabel) -> None:
    label.setWordWrap(True)
    policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
    policy.setHeightForWidth(True)
    label.setSizePolicy(policy)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)


def set_message(label: Label | QLabel, text: str) -> None:
    """Show ``text`` wrapped to the label's width, however long its words."""
    native = label if isinstance(label, QLabel) else label.native
    if not native.wordWrap():
        _wrapping(native)
    native.setText(_breakable(text))
    native.setToolTip(text if len(text) > 80 else "")


def message_text(label: Label | QLabel) -> str:
    """The text of a label filled by :func:`set_message` (without break marks)."""
    native = label if isinstance(label, QLabel) else label.native
    return str(native.text()).replace(_ZWSP, "")


class _Elider(QObject):
    """Keeps a QLabel's one line of text elided to the label's width."""

    def __init__(self, label: QLabel, mode: Qt.TextElideMode) -> None:
        super().__init__(label)
        self.text = ""
        self._label = label
        self._mode = mode
        label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        label.setMinimumWidth(0)
        label.installEventFilter(self)

    def set(self, text: str) -> None:
        self.text = text
        self._label.setToolTip(text)
        self.refresh()

    def refresh(self) -> None:
        width = self._label.contentsRect().width()
        metrics = self._label.fontMetrics()
        if width <= 0:
            shown = self.text
        else:
            shown = "\n".join(
                metrics.elidedText(line, self._mode, width) for line in self.text.splitlines()
            )
        if shown != self._label.text():
            self._label.setText(shown)

    def eventFilter(self, obj: Any, event: Any) -> bool:
        if event.type() in (QEvent.Type.Resize, QEvent.Type.FontChange):
            self.refresh()
        return False


class ElidedLabel(Label):
    """A label that shows its text on one line, elided in the middle to fit.

    ``value`` is the full text; the label's tooltip shows it too.
    """

    def __init__(self, value: str = "", **kwargs: Any) -> None:
        super().__init__(value="", **kwargs)
        self._elider = _Elider(self.native, Qt.TextElideMode.ElideMiddle)
        self._elider.set(value)

    @property
    def value(self) -> str:
        elider = getattr(self, "_elider", None)
        return elider.text if elider is not None else str(self.native.text())

    @value.setter
    def value(self, value: str) -> None:
        elider = getattr(self, "_elider", None)
        if elider is None:
            self.native.setText(str(value))
        else:
            elider.set(str(value))


def theme_color(viewer: Any, name: str, fallback: str = "#888888") -> str:
    """A colour of the viewer's current theme (``'text'``, ``'error'``, ...) as ``#rrggbb``."""
    from napari.utils.theme import get_theme

    try:
        color = getattr(get_theme(viewer.theme), name)
    except (KeyError, AttributeError, ValueError):
        return fallback
    return str(color.as_hex()) if hasattr(color, "as_hex") else str(color)


def _luminance(hex_color: str) -> float:
    """Relative luminance (WCAG) of ``#rrggbb``."""
    value = hex_color.lstrip("#")[:6]
    channels = [int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    la, lb = sorted((_luminance(a), _luminance(b)))
    return (lb + 0.05) / (la + 0.05)


def text_on(background: str) -> str:
    """Black or white, whichever reads better on ``background`` (``#rrggbb``)."""
    black, white = contrast("#000000", background), contrast("#ffffff", background)
    return "#000000" if black >= white else "#ffffff"


def alert_color(viewer: Any) -> str:
    """A colour for problems that reads on the theme's background: error, warning or text."""
    background = theme_color(viewer, "background", "#232323")
    for name in ("error", "warning"):
        color = theme_color(viewer, name, "")
        if color and contrast(color, background) >= 4.5:
            return color
    return theme_color(viewer, "text", text_on(background))


# -- panels ------------------------------------------------------------------------------
class Panel(Container):
    """A dock widget's frame: its controls (``body``) in a vertical scroll area.

    The scroll area lets napari give the dock any height (several docks share a
    small screen); its width is the controls' minimum when the panel is built, and
    long texts wrap or elide rather than widen it.
    """

    #: smallest height of the scroll area (a dock can be shrunk to this)
    MIN_HEIGHT = 110
    #: smallest width: room for the tables (a dock this wide leaves 1280x800 a canvas)
    MIN_WIDTH = 420

    def __init__(self, widgets: Sequence[Widget], *, labels: bool = True) -> None:
        self.body = Container(widgets=widgets, labels=labels)
        body_layout = self.body.native.layout()
        if body_layout is not None:  # controls at the top, the spare height below them
            body_layout.addStretch(1)
        super().__init__(widgets=[], labels=False)
        self.margins = (0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        scroll.setWidget(self.body.native)
        scroll.setMinimumHeight(self.MIN_HEIGHT)
        self.scroll_area = scroll
        layout = self.native.layout()
        assert layout is not None
        layout.addWidget(scroll)

    def span(self, *widgets: Widget) -> None:
        """Give ``widgets`` the whole row (no empty label column before them)."""
        for widget in widgets:
            ref = getattr(widget, "_labeled_widget_ref", None)
            labeled = ref() if ref is not None else None
            if labeled is not None:
                labeled._label_widget.visible = False

    def fix_width(self) -> None:
        """Make the controls' current minimum width the panel's (call once, when built)."""
        bar = self.scroll_area.verticalScrollBar()
        extra = (bar.sizeHint().width() if bar is not None else 12) + 4
        width = self.body.native.minimumSizeHint().width() + extra
        self.scroll_area.setMinimumWidth(max(width, self.MIN_WIDTH))


# -- tables ------------------------------------------------------------------------------
def read_only_table(columns: Sequence[str]) -> Any:
    """A magicgui Table the user cannot edit, with the given column headers.

    Cells show their text as it is (magicgui's own delegate would print ``'2.65'``
    as ``2.6500``), elided in the middle when a column is narrow.
    """
    from magicgui.widgets import Table

    table = Table(value=([], [], list(columns)))
    native = table.native
    native.setItemDelegate(QStyledItemDelegate(native))
    native.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    native.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    native.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    native.setWordWrap(False)
    header = native.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    header.setMinimumSectionSize(24)
    native.verticalHeader().setVisible(False)
    return table


def fill_table(
    table: Any,
    rows: Sequence[Sequence[Any]],
    columns: Sequence[str],
    *,
    stretch: Sequence[int] | None = None,
    min_rows: int = 1,
) -> None:
    """Replace a table's content (cells shown as text, full text in each cell's tooltip).

    Columns in ``stretch`` share the width the others (sized to their content) leave;
    by default every column but the first.  The table is as high as its rows (at
    least ``min_rows``), so what follows it sits right under them.
    """
    table.value = ([[str(c) for c in row] for row in rows], [], list(columns))
    native = table.native
    native.verticalHeader().setVisible(False)
    for r in range(native.rowCount()):
        for c in range(native.columnCount()):
            item = native.item(r, c)
            if item is not None:
                item.setToolTip(item.text())
    header = native.horizontalHeader()
    stretching = set(range(1, len(columns)) if stretch is None else stretch)
    if not stretching and len(columns):
        stretching = {len(columns) - 1}
    for c in range(native.columnCount()):
        mode = (
            QHeaderView.ResizeMode.Stretch
            if c in stretching
            else QHeaderView.ResizeMode.ResizeToContents
        )
        header.setSectionResizeMode(c, mode)
    fit_rows(native, max(len(rows), min_rows))


def fit_rows(table: Any, n_rows: int) -> None:
    """Make a QTableWidget as high as its header and ``n_rows`` rows.

    When every row fits the table needs no vertical scroll bar (which would take
    its width from the columns); with more rows it scrolls.
    """
    vertical = table.verticalHeader()
    every = n_rows >= table.rowCount()
    if every and vertical is not None and table.rowCount():
        rows = vertical.length()
        rows += (n_rows - table.rowCount()) * vertical.defaultSectionSize()
    else:
        rows = n_rows * (vertical.defaultSectionSize() if vertical is not None else 30)
    header = table.horizontalHeader()
    head = header.sizeHint().height() if header is not None and not header.isHidden() else 0
    height = head + rows + 2 * table.frameWidth()
    table.setVerticalScrollBarPolicy(
        Qt.ScrollBarPolicy.ScrollBarAlwaysOff if every else Qt.ScrollBarPolicy.ScrollBarAsNeeded
    )
    table.setMinimumHeight(height)
    table.setMaximumHeight(height)


# -- numbers and messages --------------------------------------------------------------
def parse_ints(text: str, what: str) -> int | tuple[int, ...] | None:
    """``'auto'``/empty -> None; ``'64'`` -> 64 (every spatial axis); ``'2,2,1'`` -> (2, 2, 1)."""
    value = (text or "").strip().lower()
    if value in ("", "auto", "default", "none"):
        return None
    parts = [p for p in value.replace(",", " ").replace("x", " ").split() if p]
    try:
        numbers = tuple(int(p) for p in parts)
    except ValueError as exc:
        raise ValueError(f"{what}: {text!r} is not 'auto' or whole numbers like 2,2,1") from exc
    if any(n < 1 for n in numbers):
        raise ValueError(f"{what}: {text!r} must be numbers >= 1")
    return numbers[0] if len(numbers) == 1 else numbers


def format_bytes(n: float | None) -> str:
    """Bytes as ``'12.3 MiB'``."""
    from ..core.storage import format_bytes as _fmt

    return _fmt(None if n is None else int(n))


def notify_failure(action: str, exc: BaseException) -> None:
    """Show why ``action`` failed: the error type and message (the cause, not a traceback)."""
    log.error("%s failed: %s", action, exc, exc_info=exc)
    show_error(f"{action} failed: {type(exc).__name__}: {exc}")


def ask_yes_no(title: str, question: str) -> bool:
    """A modal Yes/No question; True for Yes (No is the default button)."""
    answer = QMessageBox.question(
        None,
        title,
        question,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return bool(answer == QMessageBox.StandardButton.Yes)


def ask_replace(widget: Any, action: str, path: str, question: Callable[[], str]) -> bool | None:
    """Whether a save of ``action`` may write over ``path``, asking if something is there.

    False when nothing exists at ``path`` (local or URL); True when something does and
    ``widget.confirm_overwrite(path, question())`` said yes; None when the user kept it
    (reported through ``widget.runner.decline``) or the destination cannot be checked
    (an error shown): then nothing is written.
    """
    try:
        exists = destination_exists(path)
    # a URL that cannot be written or reached, or whose filesystem is not installed
    except (OSError, ValueError, ImportError) as exc:
        show_error(f"{action}: {exc}")
        return None
    if not exists:
        return False
    if not widget.confirm_overwrite(path, question()):
        widget.runner.decline(action, f"{path} exists and was kept")
        return None
    return True


# -- running tasks -----------------------------------------------------------------------
@dataclass
class _Outcome:
    value: Any = None
    error: BaseException | None = None


@dataclass
class _Task:
    """One run: what it is, what it works on, and how to report back."""

    number: int
    desc: str
    target: str
    event: threading.Event
    on_done: Callable[[Any], None] | None
    on_error: Callable[[BaseException], bool] | None
    pbar: cancelable_progress | None = None
    last_emit: float = 0.0
    worker: Any = field(default=None, repr=False)


class _ProgressRelay(QObject):
    """Carries progress from the worker thread to the GUI thread (queued signal)."""

    progressed = Signal(int, int, int, str)  # task number, done, total, message


class TaskRunner(Container):
    """A target line, a progress bar, a status line and a Cancel button; one task at a time.

    ``start(fn, ...)`` calls ``fn(progress=..., cancel=...)`` in a napari thread worker.
    """

    def __init__(self) -> None:
        self._target = ElidedLabel(value="")
        self._bar = ProgressBar(value=0, min=0, max=1, visible=False, label="")
        self._status = Label(value="")
        self._cancel_button = PushButton(text="Cancel", enabled=False)
        super().__init__(
            widgets=[self._target, self._bar, self._status, self._cancel_button], labels=False
        )
        self.margins = (0, 0, 0, 0)
        _wrapping(self._status.native)
        self._target.visible = False
        self._cancel_button.visible = False
        self._cancel_button.changed.connect(self.cancel)
        self._relay = _ProgressRelay()
        self._relay.progressed.connect(self._on_progress)
        self._task: _Task | None = None
        self._count = 0
        self._depth = 0  # > 0 while a progress update runs (it may process events)
        self._pending: tuple[_Task, _Outcome] | None = None
        self._closed = False
        self._destroyed = False
        self._busy_listeners: list[Callable[[bool], None]] = []
        self.native.destroyed.connect(self._on_destroyed)
        #: the outcome of the last task: 'done', 'cancelled', 'failed'
        self.last_outcome: str | None = None
        self.last_error: BaseException | None = None

    # -- state ---------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a task runs."""
        return self._task is not None

    @property
    def alive(self) -> bool:
        """False once the widget is closed (its dock removed, or destroyed)."""
        return not self._closed

    @property
    def status(self) -> str:
        """The status line: the task's progress, then how it ended."""
        return message_text(self._status)

    @property
    def target(self) -> str:
        """What the current (or last) task works on, as shown above the progress bar."""
        return str(self._target.value)

    def on_busy_changed(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(busy)`` whenever a task starts or ends."""
        self._busy_listeners.append(callback)

    def _set_status(self, text: str) -> None:
        if not self._destroyed:
            set_message(self._status, text)

    def _set_busy(self, busy: bool) -> None:
        if not self._destroyed:
            self._bar.visible = busy
            self._cancel_button.enabled = busy
            self._cancel_button.visible = busy
        for callback in list(self._busy_listeners):
            if not self._destroyed:
                callback(busy)

    # -- control -------------------------------------------------------------------------
    def cancel(self, *_: Any) -> None:
        """Ask the running task to stop (it raises CancelledError and cleans up)."""
        task = self._task
        if task is not None and not task.event.is_set():
            task.event.set()
            self._set_status(f"{task.desc}: cancelling...")

    def close(self) -> None:
        """The widget was closed: cancel the task; its result no longer reaches the widget."""
        if self._closed:
            return
        self._closed = True
        self._busy_listeners.clear()
        self.cancel()

    def decline(self, desc: str, reason: str) -> None:
        """Record a task the user chose not to run (answered No): a cancellation."""
        self.last_outcome = "cancelled"
        self.last_error = None
        self._set_status(f"{desc}: cancelled, {reason}")

    def start(
        self,
        fn: Callable[..., Any],
        *,
        desc: str,
        target: str = "",
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], bool] | None = None,
    ) -> bool:
        """Run ``fn(progress=..., cancel=...)`` in a thread; False if another task runs.

        Parameters
        ----------
        fn
            The task; it receives keyword arguments ``progress`` and ``cancel``.
        desc
            What the task does ("Writing pyramid"): status line, progress bar, messages.
        target
            What it works on ("layer 'vol' -> /data/vol.ome.zarr"), fixed for the run
            and shown above the progress bar.
        on_done
            Called in the GUI thread with the task's return value.
        on_error
            Called in the GUI thread with the exception; return True when it handled
            it (no notification is shown then).
        """
        if self.busy:
            show_warning(f"{desc}: another task of this widget is still running")
            return False
        if self._closed:
            return False
        self._count += 1
        task = _Task(self._count, desc, target, threading.Event(), on_done, on_error)
        self._task = task
        self.last_outcome = None
        self.last_error = None
        task.pbar = cancelable_progress(total=0, desc=desc, cancel_callback=task.event.set)
        self._target.value = target
        self._target.visible = bool(target)
        self._bar.max = 0  # busy indicator until the first progress report
        self._bar.value = 0
        self._set_status(f"{desc}...")
        relay = self._relay

        def report(done: int, total: int, message: str = "") -> None:
            now = time.monotonic()
            if done >= total or now - task.last_emit >= 1.0 / _PROGRESS_HZ:
                task.last_emit = now
                relay.progressed.emit(task.number, int(done), int(total), str(message))

        def call() -> _Outcome:
            try:
                return _Outcome(value=fn(progress=report, cancel=task.event))
            except Exception as exc:  # noqa: BLE001 - reported in the GUI thread with its cause
                return _Outcome(error=exc)

        worker = create_worker(call, _start_thread=False)
        worker.returned.connect(lambda outcome: self._on_outcome(task, outcome))
        worker.errored.connect(lambda exc: self._on_outcome(task, _Outcome(error=exc)))
        task.worker = worker
        self._set_busy(True)
        worker.start()
        return True

    # -- GUI-thread handlers ---------------------------------------------------------------
    def _on_destroyed(self, *_: Any) -> None:
        self._destroyed = True
        self.close()

    def _on_progress(self, number: int, done: int, total: int, message: str) -> None:
        task = self._task
        if task is None or task.number != number:
            return  # a late report of a task that has ended
        self._depth += 1
        try:
            if not self._destroyed:
                if total > 0:
                    self._bar.max = total
                    self._bar.value = min(done, total)
                if message:
                    self._set_status(message)
            pbar = task.pbar
            # napari's progress bar processes events here: the result may arrive inside
            if pbar is not None and total > 0:
                if pbar.total != total:
                    pbar.total = total
                pbar.update(max(0, done - pbar.n))
            if pbar is not None and message and self._task is task:
                pbar.set_description(f"{task.desc}: {message}")
        finally:
            self._depth -= 1
        if self._depth == 0 and self._pending is not None:
            pending, self._pending = self._pending, None
            self._conclude(*pending)

    def _on_outcome(self, task: _Task, outcome: _Outcome) -> None:
        if task is not self._task:
            return  # already concluded (errored after returned, or a stale worker)
        if self._depth > 0:
            self._pending = (task, outcome)  # finish once the progress update is over
            return
        self._conclude(task, outcome)

    def _conclude(self, task: _Task, outcome: _Outcome) -> None:
        if task is not self._task:
            return
        self._task = None
        pbar, task.pbar = task.pbar, None
        try:
            self._report(task, outcome)
        finally:
            # closing napari's progress bar processes events: do it when all is said
            if pbar is not None:
                pbar.close()
            if self._task is None:
                self._set_busy(False)

    def _report(self, task: _Task, outcome: _Outcome) -> None:
        exc = outcome.error
        self.last_error = exc
        if exc is None:
            self.last_outcome = "done"
        elif isinstance(exc, CancelledError):
            self.last_outcome = "cancelled"
        else:
            self.last_outcome = "failed"
        if not self._destroyed:
            self._bar.visible = False
            self._cancel_button.enabled = False
            self._cancel_button.visible = False
        if self._closed:
            self._report_closed(task, outcome)
            return
        if exc is None:
            self._set_status(f"{task.desc}: done")
            if task.on_done is not None:
                try:
                    task.on_done(outcome.value)
                except Exception as err:  # noqa: BLE001 - shown to the user with its cause
                    self.last_outcome = "failed"
                    self.last_error = err
                    self._set_status(f"{task.desc} failed: {type(err).__name__}: {err}")
                    notify_failure(task.desc, err)
            return
        if isinstance(exc, CancelledError):
            self._set_status(f"{task.desc}: cancelled, nothing written")
            show_info(f"{task.desc}: cancelled; nothing was written")
            return
        self._set_status(f"{task.desc} failed: {type(exc).__name__}: {exc}")
        if task.on_error is not None and task.on_error(exc):
            return
        notify_failure(task.desc, exc)

    def _report_closed(self, task: _Task, outcome: _Outcome) -> None:
        """The widget was closed while the task ran: only say what happened."""
        exc = outcome.error
        if exc is None:
            show_info(f"{task.desc}: done ({task.target}); its panel was closed")
        elif isinstance(exc, CancelledError):
            show_info(f"{task.desc}: stopped because its panel was closed; nothing was written")
        else:
            notify_failure(task.desc, exc)
