"""Helpers shared by the tests and the benchmarks (not part of the package).

``benchmarks/`` scripts import them with the repository root on ``sys.path``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from zarr.storage import WrapperStore

from napari_zarrnii.core.storage import METADATA_FILES

__all__ = ["WIDGET_TIMEOUT_MS", "CountingStore", "chunks_overlapping", "wait_until_idle"]


def chunks_overlapping(shape: Sequence[int], chunks: Sequence[int], key: Sequence[slice]) -> int:
    """How many chunks of a regular grid a basic slice touches."""
    total = 1
    for n, c, k in zip(shape, chunks, key):
        start, stop, _ = k.indices(n)
        total *= 0 if stop <= start else (math.ceil(stop / c) - start // c)
    return total


class CountingStore(WrapperStore):
    """A zarr store wrapper that counts reads of chunk/shard keys (not metadata).

    Examples
    --------
    >>> store = CountingStore(zarr.storage.LocalStore("image.ome.zarr", read_only=True))
    >>> arr = zarr.open_array(store, path="0")  # doctest: +SKIP
    >>> _ = arr[:10, :10, :10]  # doctest: +SKIP
    >>> store.reads  # doctest: +SKIP
    """

    def __init__(self, store: Any, counter: dict[str, Any] | None = None) -> None:
        super().__init__(store)
        self._counter = counter if counter is not None else {"reads": 0, "keys": []}
        self._lock = threading.Lock()

    def _with_store(self, store: Any) -> CountingStore:
        return type(self)(store, self._counter)

    def _count(self, key: str) -> None:
        if key.rsplit("/", 1)[-1] in METADATA_FILES:
            return
        with self._lock:
            self._counter["reads"] += 1
            self._counter["keys"].append(key)

    @property
    def reads(self) -> int:
        """Number of chunk/shard reads so far."""
        return int(self._counter["reads"])

    @property
    def keys(self) -> list[str]:
        """Keys read so far, in order."""
        return list(self._counter["keys"])

    def reset(self) -> None:
        """Set the counts back to zero."""
        with self._lock:
            self._counter["reads"] = 0
            self._counter["keys"] = []

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        """Read one key, counting it."""
        self._count(key)
        return await self._store.get(key, prototype, byte_range)

    async def get_partial_values(self, prototype: Any, key_ranges: Iterable[Any]) -> Any:
        """Read byte ranges, counting each key."""
        key_ranges = list(key_ranges)
        for key, _ in key_ranges:
            self._count(key)
        return await self._store.get_partial_values(prototype, key_ranges)


#: How long a widget test waits for a background task (milliseconds).
WIDGET_TIMEOUT_MS = 30_000


def wait_until_idle(qtbot: Any, widget: Any, timeout: int = WIDGET_TIMEOUT_MS) -> None:
    """Wait (processing Qt events) until ``widget``'s background runner is idle."""
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=timeout)
