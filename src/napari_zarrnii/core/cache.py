"""One process-wide cache of decoded chunks, bounded in bytes, least recently used out.

Every layer this package opens in napari reads its chunks through this cache
(:mod:`.cached`): a chunk decoded once serves every plane it holds (a 64-deep chunk
serves 64 z-steps) until it is evicted.  The cache is shared, so its budget bounds the
memory of all open images together.

The budget
    Default: 1/16 of physical memory, at least 256 MiB and at most 2 GiB (see
    :func:`default_budget`); the environment variable ``NAPARI_ZARRNII_CACHE``
    (``"2GiB"``, ``"512MB"``, ``"10%"`` of RAM, a number of bytes, ``0`` to disable)
    replaces the default; :func:`set_cache_budget` (also exported as
    ``napari_zarrnii.set_cache_budget``) and the plugin setting change it at run time,
    evicting at once what no longer fits.

Prefetched chunks are second-class: they are inserted only when room can be made
without evicting a chunk that one of the latest foreground reads used (the view on
screen), so prefetch never pushes out what is being looked at and never grows the
cache past its budget.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CacheStats",
    "ChunkCache",
    "cache_budget",
    "cache_info",
    "chunk_cache",
    "default_budget",
    "parse_size",
    "set_cache_budget",
]

log = logging.getLogger(__name__)

#: Environment variable that replaces the default budget.
ENV_BUDGET = "NAPARI_ZARRNII_CACHE"

#: Share of physical memory used by default, and the bounds of the default.
DEFAULT_FRACTION = 1 / 16
DEFAULT_MIN = 256 << 20
DEFAULT_MAX = 2 << 30
#: Budget when physical memory cannot be found.
FALLBACK_BUDGET = 1 << 30

#: Bookkeeping counted per entry besides the array's bytes (key, dicts, array header).
ENTRY_OVERHEAD = 256

#: How many of the latest foreground reads are protected from prefetch evictions.
PROTECTED_READS = 16

#: A cache key: (owner token, chunk coordinates).
Key = tuple[str, tuple[int, ...]]

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}


def physical_memory() -> int | None:
    """Total physical memory in bytes, or None when it cannot be found."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        if pages > 0 and page_size > 0:
            return int(pages) * int(page_size)
    except (AttributeError, ValueError, OSError):  # Windows has no sysconf
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        return None


def parse_size(value: Any) -> int:
    """Bytes from ``1073741824``, ``"1GiB"``, ``"512 MB"``, ``"1.5g"`` or ``"10%"`` (of RAM).

    Raises
    ------
    ValueError
        For text that is no size, or a negative size.
    """
    if isinstance(value, bool):
        raise ValueError(f"cache size {value!r}: not a number of bytes")
    if isinstance(value, (int, np.integer)):
        n = int(value)
    elif isinstance(value, float):
        n = int(value)
    else:
        text = str(value).strip().lower()
        match = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*(%|[a-z]*)", text)
        if match is None:
            raise ValueError(f"cache size {value!r}: expected e.g. '2GiB', '512MB' or '10%'")
        number, unit = float(match.group(1)), match.group(2)
        if unit == "%":
            total = physical_memory()
            if total is None:
                raise ValueError(f"cache size {value!r}: physical memory is unknown here")
            n = int(total * number / 100)
        elif unit in _UNITS:
            n = int(number * _UNITS[unit])
        else:
            raise ValueError(f"cache size {value!r}: unknown unit '{unit}'")
    if n < 0:
        raise ValueError(f"cache size {value!r}: must not be negative")
    return n


def default_budget() -> int:
    """The budget used unless one is set: ``NAPARI_ZARRNII_CACHE``, else 1/16 of RAM.

    1/16 of physical memory, kept between 256 MiB and 2 GiB.  The unit of browsing is
    a chunk plane: a 2-channel view of a 1024 x 1024 plane in 64^3 uint16 chunks holds
    256 MiB of decoded chunks (and serves 64 z-steps), a zoomed-in view of a 1200 x
    900 window about 100 MiB.  256 MiB keeps one such view on a small laptop; 2 GiB
    (reached with 32 GiB of RAM) keeps half a dozen views and what is read ahead, and
    leaves the rest of the memory to napari, whose own dask cache takes 1/4 of RAM,
    and to the user's analysis.  More than that mostly keeps chunks of views long
    left: set it higher where it pays (``NAPARI_ZARRNII_CACHE``, the plugin setting).
    """
    text = os.environ.get(ENV_BUDGET)
    if text:
        try:
            return parse_size(text)
        except ValueError as exc:
            log.warning("%s=%r ignored: %s", ENV_BUDGET, text, exc)
    total = physical_memory()
    if total is None:
        return FALLBACK_BUDGET
    return int(min(max(total * DEFAULT_FRACTION, DEFAULT_MIN), DEFAULT_MAX))


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of the cache's counters."""

    budget: int
    nbytes: int
    entries: int
    hits: int
    misses: int
    inserts: int
    evictions: int
    refused: int

    @property
    def hit_rate(self) -> float:
        """Share of looked-up chunks found in the cache (0 before any lookup)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class ChunkCache:
    """A thread-safe, byte-bounded LRU of decoded chunks.

    Keys are ``(owner, chunk)``: ``owner`` a token unique to one opened array,
    ``chunk`` its chunk coordinates.  Values are read-only numpy arrays.

    Parameters
    ----------
    budget
        Most bytes the entries may hold (their ``nbytes`` plus a small fixed
        overhead each).  0 disables the cache: nothing is stored.
    """

    def __init__(self, budget: int) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[Key, np.ndarray] = OrderedDict()
        self._owners: dict[str, set[tuple[int, ...]]] = {}
        self._budget = max(0, int(budget))
        self._nbytes = 0
        self._hits = self._misses = self._inserts = self._evictions = self._refused = 0
        self._tick = 0  # counts foreground reads
        self._used: dict[Key, int] = {}  # entry -> the last foreground read that used it
        self.id = uuid.uuid4().hex[:12]

    # -- size --------------------------------------------------------------------------
    @property
    def budget(self) -> int:
        """The most bytes the cache holds."""
        return self._budget

    @property
    def nbytes(self) -> int:
        """Bytes held now (never more than :attr:`budget`)."""
        return self._nbytes

    def __len__(self) -> int:
        return len(self._entries)

    def resize(self, budget: int) -> None:
        """Change the budget; entries that no longer fit are evicted now."""
        with self._lock:
            self._budget = max(0, int(budget))
            for victim in self._victims(self._budget) or ():
                self._remove(victim)
                self._evictions += 1

    @staticmethod
    def entry_size(array: np.ndarray) -> int:
        """Bytes an entry counts for."""
        return int(array.nbytes) + ENTRY_OVERHEAD

    # -- reads -------------------------------------------------------------------------
    def get_many(self, owner: str, chunks: Iterable[tuple[int, ...]]) -> dict[Any, np.ndarray]:
        """The cached chunks among ``chunks`` of ``owner``, for one foreground read.

        Every chunk asked for counts as a hit or a miss; the hits become the most
        recently used entries and are protected from prefetch evictions (as are the
        misses once inserted) until :data:`PROTECTED_READS` more reads happened.
        """
        found: dict[Any, np.ndarray] = {}
        with self._lock:
            self._tick += 1
            tick = self._tick
            entries, used = self._entries, self._used
            for chunk in chunks:
                key = (owner, chunk)
                value = entries.get(key)
                if value is None:
                    self._misses += 1
                    continue
                entries.move_to_end(key)
                used[key] = tick
                self._hits += 1
                found[chunk] = value
        return found

    def contains(self, owner: str, chunk: tuple[int, ...]) -> bool:
        """True when the chunk is cached (not counted, not marked used)."""
        return (owner, chunk) in self._entries

    def protect(self, owner: str, chunks: Iterable[tuple[int, ...]]) -> None:
        """Count a foreground read of these (cached) chunks without looking them up.

        The chunks used by the latest :data:`PROTECTED_READS` foreground reads are
        protected: a prefetch insert may not evict them.
        """
        with self._lock:
            self._tick += 1
            for chunk in chunks:
                key = (owner, chunk)
                if key in self._entries:
                    self._entries.move_to_end(key)
                    self._used[key] = self._tick

    def _is_protected(self, key: Key) -> bool:
        used = self._used.get(key)  # None: only ever read ahead, never on screen
        return used is not None and used > self._tick - PROTECTED_READS

    # -- writes ------------------------------------------------------------------------
    def put(
        self, owner: str, chunk: tuple[int, ...], array: np.ndarray, *, prefetch: bool = False
    ) -> bool:
        """Insert a chunk; True if it is now cached.

        A foreground insert evicts the least recently used entries until it fits.
        A prefetch insert (``prefetch=True``) may only evict entries no recent
        foreground read used, and is refused (False) when that does not make room.
        An array larger than the whole budget is never cached.
        """
        size = self.entry_size(array)
        key = (owner, chunk)
        with self._lock:
            if size > self._budget:
                self._refused += 1
                return False
            old = self._entries.pop(key, None)
            if old is not None:
                self._nbytes -= self.entry_size(old)
            victims = self._victims(self._budget - size, spare_protected=prefetch)
            if victims is None:  # a prefetch that would evict the view on screen
                if old is not None:  # put back what was there
                    self._entries[key] = old
                    self._nbytes += self.entry_size(old)
                self._refused += 1
                return False
            for victim in victims:
                self._remove(victim)
                self._evictions += 1
            if array.flags.writeable:
                array = array.view()
                array.flags.writeable = False
            self._entries[key] = array
            if not prefetch:
                self._used[key] = self._tick
            self._owners.setdefault(owner, set()).add(chunk)
            self._nbytes += size
            self._inserts += 1
            return True

    def _victims(self, limit: int, *, spare_protected: bool = False) -> list[Key] | None:
        """The least recently used entries to evict to hold at most ``limit`` bytes.

        None when sparing protected entries (a prefetch) cannot make that room.
        """
        excess = self._nbytes - limit
        victims: list[Key] = []
        freed = 0
        for key, value in self._entries.items():  # least recently used first
            if freed >= excess:
                break
            if spare_protected and self._is_protected(key):
                continue
            victims.append(key)
            freed += self.entry_size(value)
        return victims if freed >= excess else None

    def _remove(self, key: Key) -> None:
        value = self._entries.pop(key)
        self._used.pop(key, None)
        self._nbytes -= self.entry_size(value)
        owner, chunk = key
        chunks = self._owners.get(owner)
        if chunks is not None:
            chunks.discard(chunk)
            if not chunks:
                del self._owners[owner]

    def drop(self, owner: str) -> int:
        """Forget every chunk of ``owner`` (an array that is gone); returns bytes freed."""
        with self._lock:
            before = self._nbytes
            for chunk in list(self._owners.get(owner, ())):
                self._remove((owner, chunk))
            return before - self._nbytes

    def clear(self) -> None:
        """Forget every entry (the counters are kept)."""
        with self._lock:
            self._entries.clear()
            self._owners.clear()
            self._used.clear()
            self._nbytes = 0

    # -- reporting ---------------------------------------------------------------------
    def stats(self) -> CacheStats:
        """Counters and sizes, as one consistent snapshot."""
        with self._lock:
            return CacheStats(
                budget=self._budget,
                nbytes=self._nbytes,
                entries=len(self._entries),
                hits=self._hits,
                misses=self._misses,
                inserts=self._inserts,
                evictions=self._evictions,
                refused=self._refused,
            )

    def owner_bytes(self, owner: str) -> int:
        """Bytes held for one owner."""
        with self._lock:
            return sum(
                self.entry_size(self._entries[(owner, c)]) for c in self._owners.get(owner, ())
            )

    def describe(self) -> dict[str, Any]:
        """What ``layer.metadata['napari_zarrnii']['cache']`` reports."""
        s = self.stats()
        return {"id": self.id, "budget_bytes": s.budget, "pid": os.getpid()}

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"ChunkCache(budget={s.budget}, nbytes={s.nbytes}, entries={s.entries}, "
            f"hits={s.hits}, misses={s.misses})"
        )


_CACHE: ChunkCache | None = None
_CACHE_LOCK = threading.Lock()


def chunk_cache() -> ChunkCache:
    """The process-wide cache (created with :func:`default_budget` on first use)."""
    global _CACHE
    if _CACHE is None:
        with _CACHE_LOCK:
            if _CACHE is None:
                _CACHE = ChunkCache(default_budget())
                log.debug("chunk cache of %d bytes", _CACHE.budget)
    return _CACHE


def set_cache_budget(nbytes: int | str | None) -> int:
    """Set the budget of the shared chunk cache; evicts at once what no longer fits.

    Parameters
    ----------
    nbytes
        Bytes (``int``) or a size such as ``"2GiB"``, ``"512MB"`` or ``"10%"`` of
        physical memory; 0 disables caching; None restores the default
        (:func:`default_budget`).

    Returns
    -------
    int
        The new budget in bytes.

    Raises
    ------
    ValueError
        A size that cannot be read, or a negative one.
    """
    budget = default_budget() if nbytes is None else parse_size(nbytes)
    chunk_cache().resize(budget)
    log.info("chunk cache budget set to %d bytes", budget)
    return budget


def cache_budget() -> int:
    """The budget of the shared chunk cache, in bytes."""
    return chunk_cache().budget


def cache_info() -> CacheStats:
    """Budget, bytes held, entries, hits and misses of the shared chunk cache."""
    return chunk_cache().stats()


def _fork_reset() -> None:  # a forked child must not share the parent's lock state
    global _CACHE
    _CACHE = None


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_fork_reset)


def describe_cache(extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The cache's identity and budget, plus ``extra``, for layer metadata."""
    return {**chunk_cache().describe(), **(extra or {})}
