"""What every widget shares: running core functions in a thread, layer look-ups, messages.

:class:`TaskRunner` runs a core function (``write_pyramid``, ``write_nifti``, ...) in a
napari thread worker so the viewer stays responsive.  It passes the function a
``progress(done, total, message)`` callback and a ``cancel`` :class:`threading.Event`;
progress reaches the GUI thread through a Qt signal and is shown both in the widget
and in napari's activity dock (a :class:`napari.utils.cancelable_progress`, whose
cancel button sets the same event).  The outcome comes back to the GUI thread, where
a success callback runs or the cause of the failure is shown as a notification.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from magicgui.widgets import Container, Label, ProgressBar, PushButton
from napari.qt.threading import create_worker
from napari.utils import cancelable_progress
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QObject, Signal

from .._errors import CancelledError

__all__ = [
    "TaskRunner",
    "fill_table",
    "format_bytes",
    "image_layers",
    "layer_choices",
    "notify_failure",
    "omezarr_layers",
    "parse_ints",
    "read_only_table",
    "source_layers",
    "watch_layers",
    "zarrnii_info",
]

log = logging.getLogger(__name__)

#: At most this many progress updates per second reach the GUI.
_PROGRESS_HZ = 20.0


def zarrnii_info(layer: Any) -> dict[str, Any]:
    """What our reader stored in a layer's metadata (empty for other layers)."""
    meta = getattr(layer, "metadata", None) or {}
    info = meta.get("napari_zarrnii")
    return dict(info) if isinstance(info, dict) else {}


def image_layers(viewer: Any, *, kinds: Sequence[str] = ("image",)) -> list[Any]:
    """The viewer's layers of the given kinds (``'image'``, ``'labels'``, ``'shapes'``)."""
    names = {k.lower() for k in kinds}
    return [ly for ly in viewer.layers if type(ly).__name__.lower() in names]


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


@dataclass
class _Outcome:
    value: Any = None
    error: BaseException | None = None


class _ProgressRelay(QObject):
    """Carries progress from the worker thread to the GUI thread (queued signal)."""

    progressed = Signal(int, int, str)


class TaskRunner(Container):
    """A progress bar, a status line and a Cancel button that run one task at a time.

    ``start(fn, ...)`` calls ``fn(progress=..., cancel=...)`` in a napari thread worker.
    """

    def __init__(self) -> None:
        self._bar = ProgressBar(value=0, min=0, max=1, visible=False, label="")
        self._status = Label(value="")
        self._cancel_button = PushButton(text="Cancel", enabled=False)
        super().__init__(widgets=[self._bar, self._status, self._cancel_button], labels=False)
        self.margins = (0, 0, 0, 0)
        self._cancel_button.changed.connect(self.cancel)
        self._relay = _ProgressRelay()
        self._relay.progressed.connect(self._on_progress)
        self._event: threading.Event | None = None
        self._pbar: cancelable_progress | None = None
        self._worker: Any = None
        self._last_emit = 0.0
        self._alive = True
        self.native.destroyed.connect(self._on_destroyed)
        #: the outcome of the last task: 'done', 'cancelled', 'failed' (for tests)
        self.last_outcome: str | None = None
        self.last_error: BaseException | None = None

    @property
    def busy(self) -> bool:
        """True while a task runs."""
        return self._worker is not None

    @property
    def alive(self) -> bool:
        """False once the widget's Qt object is destroyed (dock closed)."""
        return self._alive

    @property
    def status(self) -> str:
        return str(self._status.value)

    def cancel(self) -> None:
        """Ask the running task to stop (it raises CancelledError and cleans up)."""
        if self._event is not None and not self._event.is_set():
            self._event.set()
            self._status.value = "Cancelling..."

    def start(
        self,
        fn: Callable[..., Any],
        *,
        desc: str,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], bool] | None = None,
    ) -> None:
        """Run ``fn(progress=..., cancel=...)`` in a thread.

        Parameters
        ----------
        fn
            The task; it receives keyword arguments ``progress`` and ``cancel``.
        desc
            What the task does ("Writing pyramid"): progress bar and messages.
        on_done
            Called in the GUI thread with the task's return value.
        on_error
            Called in the GUI thread with the exception; return True when it handled
            it (no notification is shown then).
        """
        if self.busy:
            show_warning(f"{desc}: another task of this widget is still running")
            return
        event = threading.Event()
        self._event = event
        self._desc = desc
        self._on_done = on_done
        self._on_error = on_error
        self.last_outcome = None
        self.last_error = None
        self._pbar = cancelable_progress(total=0, desc=desc, cancel_callback=event.set)
        self._bar.visible = True
        self._bar.max = 0  # busy indicator until the first progress report
        self._bar.value = 0
        self._status.value = f"{desc}..."
        self._cancel_button.enabled = True
        relay = self._relay

        def report(done: int, total: int, message: str = "") -> None:
            now = time.monotonic()
            if done >= total or now - self._last_emit >= 1.0 / _PROGRESS_HZ:
                self._last_emit = now
                relay.progressed.emit(int(done), int(total), str(message))

        def call() -> _Outcome:
            try:
                return _Outcome(value=fn(progress=report, cancel=event))
            except Exception as exc:  # noqa: BLE001 - reported in the GUI thread with its cause
                return _Outcome(error=exc)

        worker = create_worker(call, _start_thread=False)
        worker.returned.connect(self._on_returned)
        self._worker = worker
        worker.start()

    def _on_destroyed(self, *_: Any) -> None:
        self._alive = False
        if self._event is not None:
            self._event.set()  # a closed widget cannot show a result: stop the work

    def _on_progress(self, done: int, total: int, message: str) -> None:
        if self._pbar is None or not self._alive:
            return
        if total > 0:
            self._bar.max = total
            self._bar.value = min(done, total)
            if self._pbar.total != total:
                self._pbar.total = total
            self._pbar.update(max(0, done - self._pbar.n))
        if message:
            self._status.value = message
            self._pbar.set_description(f"{self._desc}: {message}")

    def _finish(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
        self._pbar = None
        self._worker = None
        self._event = None
        if not self._alive:
            return
        self._bar.visible = False
        self._cancel_button.enabled = False

    def _on_returned(self, outcome: _Outcome) -> None:
        self._finish()
        if not self._alive:  # the widget was closed: only say what happened
            if outcome.error is not None and not isinstance(outcome.error, CancelledError):
                notify_failure(self._desc, outcome.error)
            return
        if outcome.error is None:
            self.last_outcome = "done"
            self._status.value = f"{self._desc}: done"
            if self._on_done is not None:
                try:
                    self._on_done(outcome.value)
                except Exception as exc:  # noqa: BLE001 - shown to the user with its cause
                    self.last_outcome = "failed"
                    self.last_error = exc
                    notify_failure(self._desc, exc)
            return
        exc = outcome.error
        self.last_error = exc
        if isinstance(exc, CancelledError):
            self.last_outcome = "cancelled"
            self._status.value = f"{self._desc}: cancelled, nothing written"
            show_info(f"{self._desc}: cancelled; nothing was written")
            return
        self.last_outcome = "failed"
        self._status.value = f"{self._desc}: failed ({type(exc).__name__})"
        if self._on_error is not None and self._on_error(exc):
            return
        notify_failure(self._desc, exc)


def read_only_table(columns: Sequence[str]) -> Any:
    """A magicgui Table the user cannot edit, with the given column headers."""
    from magicgui.widgets import Table
    from qtpy.QtWidgets import QAbstractItemView, QHeaderView

    table = Table(value=([], [], list(columns)))
    table.native.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.native.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.native.verticalHeader().setVisible(False)
    return table


def fill_table(table: Any, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None:
    """Replace a table's content (cells shown as text)."""
    table.value = ([[str(c) for c in row] for row in rows], [], list(columns))
    table.native.verticalHeader().setVisible(False)
    table.native.resizeColumnsToContents()


def source_layers(viewer: Any, source: str) -> dict[int, Any]:
    """Image layers our reader opened from ``source``, by channel index."""
    out: dict[int, Any] = {}
    for layer in image_layers(viewer):
        info = zarrnii_info(layer)
        if info.get("source") == source:
            index = info.get("channel_index")
            out[int(index) if index is not None else 0] = layer
    return dict(sorted(out.items()))


def omezarr_layers(viewer: Any) -> list[Any]:
    """Image layers opened from an OME-Zarr store by our reader."""
    return [
        ly
        for ly in image_layers(viewer)
        if zarrnii_info(ly).get("source") and zarrnii_info(ly).get("ngff_version")
    ]


def layer_choices(viewer: Any, layers_of: Callable[[Any], list[Any]]) -> Callable[..., list]:
    """A magicgui ``choices`` callable listing ``layers_of(viewer)`` as (name, layer)."""

    def choices(*_: Any) -> list[tuple[str, Any]]:
        return [(ly.name, ly) for ly in layers_of(viewer)]

    return choices


def watch_layers(viewer: Any, callback: Callable[[], None], owner: Any) -> None:
    """Call ``callback`` whenever layers are added, removed or reordered.

    ``owner`` (a QWidget, or a magicgui widget) ends the subscription when it is
    destroyed, so a closed dock widget is never called back.
    """
    events = viewer.layers.events
    emitters = (events.inserted, events.removed, events.reordered)

    def on_change(*_: Any) -> None:
        callback()

    def stop(*_: Any) -> None:
        for emitter in emitters:
            emitter.disconnect(on_change)

    for emitter in emitters:
        emitter.connect(on_change)
    getattr(owner, "native", owner).destroyed.connect(stop)
