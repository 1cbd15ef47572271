"""Progress and cancellation of long operations, as every writer of the package takes them.

A long operation takes ``progress(done, total, message)`` -- tqdm in the command line,
napari's progress bar in the widgets -- and ``cancel``, a :class:`threading.Event` (or
anything with ``is_set()``) or a callable returning True to stop.  When cancelled it
raises :class:`~napari_zarrnii.CancelledError` and leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeAlias

from .._errors import CancelledError

__all__ = ["Cancel", "Progress", "cancel_checker", "report"]


class _EventLike(Protocol):
    def is_set(self) -> bool: ...


#: ``progress(done, total, message)``; its return value is ignored.
Progress: TypeAlias = Callable[[int, int, str], Any]
#: A :class:`threading.Event`-like object or a callable returning True to stop.
Cancel: TypeAlias = "_EventLike | Callable[[], bool]"


def cancel_checker(cancel: Cancel | None, what: str = "write") -> Callable[[], None]:
    """A function raising :class:`CancelledError` once ``cancel`` is set.

    Raises
    ------
    TypeError
        ``cancel`` is neither an event nor a callable.
    """
    if cancel is None:
        return lambda: None
    is_set: Callable[[], bool]
    if hasattr(cancel, "is_set"):
        is_set = cancel.is_set
    elif callable(cancel):
        is_set = cancel
    else:
        raise TypeError(f"cancel must be a threading.Event or a callable, not {cancel!r}")

    def check() -> None:
        if is_set():
            raise CancelledError(f"{what} cancelled; nothing was written")

    return check


def report(progress: Progress | None, done: int, total: int, message: str = "") -> None:
    """Call ``progress`` if there is one."""
    if progress is not None:
        progress(done, total, message)
