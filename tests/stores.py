"""zarr stores for tests: one that counts chunk reads, and can be slowed down or held."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

from zarr.storage import LocalStore
from zarr.storage._wrapper import WrapperStore

METADATA_KEYS = (".zarray", ".zgroup", ".zattrs", ".zmetadata", "zarr.json")


def is_chunk_key(key: str) -> bool:
    """True for a chunk (not a metadata document)."""
    return not key.endswith(METADATA_KEYS)


class CountingStore(WrapperStore[Any]):
    """Counts every ``get`` per key; can add latency or hold chunk reads on an event.

    ``latency`` (seconds) is slept (asynchronously) before each chunk read; while
    ``gate`` is cleared chunk reads wait for it; ``fail`` makes chunk reads raise
    ``OSError``.  Counters are shared by copies made by zarr (``_with_store``).
    """

    def __init__(self, store: Any, *, shared: dict[str, Any] | None = None) -> None:
        super().__init__(store)
        self.shared = (
            shared
            if shared is not None
            else {
                "gets": Counter(),
                "lock": threading.Lock(),
                "latency": 0.0,
                "gate": None,
                "fail": False,
            }
        )

    def _with_store(self, store: Any) -> CountingStore:
        return type(self)(store, shared=self.shared)

    @classmethod
    def local(cls, path: Any) -> CountingStore:
        """A counting store over a local folder, read-only."""
        return cls(LocalStore(str(path), read_only=True))

    # -- knobs ------------------------------------------------------------------------
    @property
    def gets(self) -> Counter[str]:
        """Reads per key."""
        return self.shared["gets"]

    def chunk_reads(self) -> int:
        """Chunk reads so far (metadata documents not counted)."""
        with self.shared["lock"]:
            return sum(n for k, n in self.shared["gets"].items() if is_chunk_key(k))

    def chunk_keys(self) -> set[str]:
        """Chunk keys read so far."""
        with self.shared["lock"]:
            return {k for k in self.shared["gets"] if is_chunk_key(k)}

    def reset(self) -> None:
        with self.shared["lock"]:
            self.shared["gets"].clear()

    def set_latency(self, seconds: float) -> None:
        self.shared["latency"] = seconds

    def set_gate(self, gate: threading.Event | None) -> None:
        self.shared["gate"] = gate

    def set_fail(self, fail: bool) -> None:
        self.shared["fail"] = fail

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        with self.shared["lock"]:
            self.shared["gets"][key] += 1
        if is_chunk_key(key):
            gate = self.shared["gate"]
            while gate is not None and not gate.is_set():
                await asyncio.sleep(0.01)
            if self.shared["latency"]:
                await asyncio.sleep(self.shared["latency"])
            if self.shared["fail"]:
                raise OSError(f"simulated failure reading {key}")
        return await self._store.get(key, prototype, byte_range)
