"""Lazy arrays read through the shared chunk cache (:mod:`.cache`), chunk by chunk.

:class:`CachedArray` wraps a zarr array (or any :class:`~.lazy.LazyArray` that states
its chunks, such as a plate mosaic) for viewing.  A read maps its box onto the chunk
grid -- zarr's *read* chunks, the inner chunks of a sharded array -- takes the chunks
the cache holds, fetches the missing ones together (one event-loop call gathering a
zarr read per chunk, so a remote store sees concurrent requests and a local one
decodes on several threads) and assembles the result.  A chunk that another thread
is already fetching (a prefetch, another layer) is waited for, not read twice.

Computation (dask graphs, the pyramid writer, crops, masks) reads every chunk once:
caching it would only push out what the viewer needs.  :meth:`CachedArray.uncached`
hands such readers the array beneath, and :func:`~.lazy.as_dask` uses it.

Results are exactly those of reading the wrapped array directly.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import sys
import threading
import uuid
import warnings
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from .cache import ChunkCache, chunk_cache
from .lazy import LazyArray, is_zarr, storage_chunks

if TYPE_CHECKING:
    from .prefetch import Pyramid

__all__ = ["CachedArray", "ChunkReadWarning", "chunk_plan"]

log = logging.getLogger(__name__)

#: Most zarr chunk reads in flight at once for one fetch (remote stores gain most).
CONCURRENT_READS = 32

#: Threads reading chunks of non-zarr arrays (plate wells, ...), shared by all.
_POOL_THREADS = 8
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


class ChunkReadWarning(UserWarning):
    """Chunks could not be read (server error, timeout, damaged file); shown as zeros."""


def _fetch_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(_POOL_THREADS, thread_name_prefix="zarrnii-fetch")
    return _pool


#: One axis of a read: (chunk index, slice inside the chunk, slice of the result).
AxisPlan = list[tuple[int, slice, slice]]


def chunk_plan(box_axis: slice, chunk: int) -> AxisPlan:
    """How a forward slice of one axis falls on chunks of size ``chunk``."""
    start, stop, step = box_axis.start, box_axis.stop, box_axis.step
    n = len(range(start, stop, step))
    out: AxisPlan = []
    pos, k = start, 0
    while k < n:
        ci = pos // chunk
        count = len(range(pos, min((ci + 1) * chunk, stop), step))
        local = pos - ci * chunk
        out.append((ci, slice(local, local + (count - 1) * step + 1, step), slice(k, k + count)))
        k += count
        pos += count * step
    return out


def _read_errors() -> tuple[type[BaseException], ...]:
    """What a failing store raises (aiohttp's errors only when it is in use)."""
    from .objectstore import unreachable_errors

    errors: tuple[type[BaseException], ...] = (OSError, *unreachable_errors())
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None:
        errors += (aiohttp.ClientError,)
    return errors


class CachedArray(LazyArray):
    """A chunked array read through the shared chunk cache.

    Parameters
    ----------
    base
        A zarr array, or a :class:`~.lazy.LazyArray` whose ``chunks`` is its chunk
        grid (reads of one chunk are then ``base[chunk box]`` on a small thread pool).
    source
        Where the array comes from (path or URL and array path), for messages.
    cache
        The cache to use; default the process-wide one (:func:`~.cache.chunk_cache`).
    on_error
        ``"raise"``: a chunk that cannot be read raises.  ``"warn"`` (the viewer):
        it reads as zeros, is not cached, and a :class:`ChunkReadWarning` naming the
        source and the cause is issued (once until a read succeeds again), so a
        failing server gives a notification instead of a broken view.
    """

    def __init__(
        self,
        base: Any,
        *,
        source: str = "",
        cache: ChunkCache | None = None,
        on_error: str = "raise",
    ) -> None:
        if on_error not in ("raise", "warn"):
            raise ValueError(f"on_error must be 'raise' or 'warn', not {on_error!r}")
        self._base = base
        self.shape = tuple(int(n) for n in base.shape)
        self.dtype = np.dtype(base.dtype)
        self.source = source
        self.on_error = on_error
        self._cache = cache
        self._zarr = is_zarr(base)
        grid = storage_chunks(base, shards=False)
        if grid is None or len(grid) != len(self.shape) or not all(grid):
            raise ValueError(f"{source or base!r}: a cached array needs a regular chunk grid")
        self.read_chunks: tuple[int, ...] = grid
        shards = getattr(base, "shards", None) if self._zarr else None
        self._shard_factor = (
            tuple(int(s) // c for s, c in zip(shards, grid)) if shards is not None else None
        )
        self._init_runtime()

    def _init_runtime(self) -> None:
        self.token = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._inflight: dict[tuple[int, ...], Future[np.ndarray]] = {}
        self._warned: set[str] = set()
        self.pyramid: Pyramid | None = None
        self.level = 0
        #: chunks read from the base (counted for tests and benchmarks)
        self.fetched = 0
        cache = self.cache
        weakref.finalize(self, cache.drop, self.token)

    # -- pickling: the array beneath travels, the runtime state is made anew ------------
    def __getstate__(self) -> dict[str, Any]:
        return {"base": self._base, "source": self.source, "on_error": self.on_error}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["base"], source=state["source"], on_error=state["on_error"])  # type: ignore[misc]

    # -- array protocol -------------------------------------------------------------------
    @property
    def cache(self) -> ChunkCache:
        """The cache this array reads through."""
        return self._cache if self._cache is not None else chunk_cache()

    @property
    def base(self) -> Any:
        """The wrapped array."""
        return self._base

    @property
    def chunks(self) -> tuple[int, ...] | None:
        """Storage chunks of the wrapped array (shards for a sharded zarr array)."""
        return storage_chunks(self._base)

    def uncached(self) -> Any:
        """The wrapped array: computations read it directly, keeping the cache for viewing."""
        return self._base

    def __repr__(self) -> str:
        return f"CachedArray(shape={self.shape}, dtype={self.dtype}, source={self.source!r})"

    def chunk_box(self, chunk: tuple[int, ...]) -> tuple[slice, ...]:
        """The region of the array that chunk ``chunk`` covers."""
        return tuple(
            slice(i * c, min((i + 1) * c, n), 1)
            for i, c, n in zip(chunk, self.read_chunks, self.shape)
        )

    def chunk_grid(self) -> tuple[int, ...]:
        """Number of chunks along each axis."""
        return tuple(-(-n // c) for n, c in zip(self.shape, self.read_chunks))

    # -- reading --------------------------------------------------------------------------
    def _read(self, box: tuple[slice, ...]) -> np.ndarray:
        out = np.empty(tuple(len(range(s.start, s.stop, s.step)) for s in box), self.dtype)
        if out.size == 0:
            return out
        plans = [chunk_plan(s, c) for s, c in zip(box, self.read_chunks)]
        chunks = list(itertools.product(*[[p[0] for p in plan] for plan in plans]))
        pyramid = self.pyramid
        if pyramid is not None:
            pyramid.foreground_started()
        try:
            arrays = self.obtain(chunks)
        finally:
            if pyramid is not None:
                pyramid.foreground_finished()
        # one copy per chunk; chunks come in the order of itertools.product(*plans)
        sources = itertools.product(*[[p[1] for p in plan] for plan in plans])
        targets = itertools.product(*[[p[2] for p in plan] for plan in plans])
        for chunk, src, dst in zip(chunks, sources, targets):
            out[dst] = arrays[chunk][src]
        if pyramid is not None:
            pyramid.after_read(self, box)
        return out

    def obtain(
        self, chunks: Sequence[tuple[int, ...]], *, prefetch: bool = False
    ) -> dict[tuple[int, ...], np.ndarray]:
        """The decoded chunks: from the cache, from a fetch under way, or read now.

        With ``prefetch=True`` the chunks are inserted as prefetched ones (they may be
        refused for lack of room), nothing is protected, errors are logged, and only
        the chunks that were read are returned.
        """
        cache = self.cache
        if prefetch:  # looked up without counting hits and misses, nor marking use
            found: dict[tuple[int, ...], np.ndarray] = {}
            missing = [c for c in chunks if not cache.contains(self.token, c)]
        else:
            found = cache.get_many(self.token, chunks)
            missing = [c for c in chunks if c not in found]
        mine: list[tuple[int, ...]] = []
        waits: dict[tuple[int, ...], Future[np.ndarray]] = {}
        if missing:
            with self._lock:
                for c in missing:
                    fut = self._inflight.get(c)
                    if fut is None:
                        self._inflight[c] = Future()
                        mine.append(c)
                    elif not prefetch:  # the background never waits behind others
                        waits[c] = fut
        if mine:
            found.update(self._fetch_and_store(mine, prefetch=prefetch))
        for c, fut in waits.items():
            try:
                found[c] = fut.result()
            except _read_errors() as exc:
                found[c] = self._failed(c, exc)
        if waits:  # read by another thread (maybe as a prefetch): now in use on screen
            cache.protect(self.token, list(waits))
        return found

    def _fetch_and_store(
        self, chunks: list[tuple[int, ...]], *, prefetch: bool
    ) -> dict[tuple[int, ...], np.ndarray]:
        cache = self.cache
        try:
            arrays = self._fetch(chunks)
        except BaseException as exc:
            with self._lock:
                futures = [self._inflight.pop(c) for c in chunks]
            for fut in futures:
                fut.set_exception(exc)
            raise
        out: dict[tuple[int, ...], np.ndarray] = {}
        failed: dict[tuple[int, ...], BaseException] = {}
        for c, arr in zip(chunks, arrays):
            if isinstance(arr, BaseException):
                failed[c] = arr
                continue
            arr = np.asarray(arr)
            cache.put(self.token, c, arr, prefetch=prefetch)
            out[c] = arr
        with self._lock:
            self.fetched += len(out)
            futures = [self._inflight.pop(c) for c in chunks]
        for c, fut in zip(chunks, futures):
            if c in failed:
                fut.set_exception(failed[c])
            else:
                fut.set_result(out[c])
        if failed and prefetch:
            log.debug("%s: prefetch failed (%s)", self.source, next(iter(failed.values())))
        elif failed:
            out.update({c: self._failed(c, exc) for c, exc in failed.items()})
        elif self._warned and not prefetch:
            self._warned.clear()  # reading works again: warn again on the next failure
        return out

    def _failed(self, chunk: tuple[int, ...], exc: BaseException) -> np.ndarray:
        if self.on_error == "raise":
            raise exc
        message = f"{type(exc).__name__}: {exc}"
        if message not in self._warned:
            self._warned.add(message)
            warnings.warn(
                f"{self.source or 'array'}: chunks cannot be read and are shown as zeros "
                f"({message})",
                ChunkReadWarning,
                stacklevel=2,
            )
        region = self.chunk_box(chunk)
        return np.zeros(tuple(s.stop - s.start for s in region), self.dtype)

    def _fetch(self, chunks: list[tuple[int, ...]]) -> list[np.ndarray | BaseException]:
        """The decoded chunks, or for each that cannot be read the error saying why.

        Errors a store raises (time-outs, connection errors) and damaged chunks
        (:class:`~napari_zarrnii.ChunkReadError`, naming the chunk) are returned in
        place of the chunk; anything else is raised.
        """
        if self._zarr:
            from zarr.core.sync import sync

            reads = self._zarr_reads(chunks)
            results = sync(
                _gather_reads(self._base.async_array, [box for box, _ in reads], self._named)
            )
            out: dict[tuple[int, ...], np.ndarray | BaseException] = {}
            for (box, members), block in zip(reads, results):
                if len(members) == 1 or isinstance(block, BaseException):
                    out.update({c: block for c in members})
                    continue
                for c in members:  # split a whole-shard read into its chunks
                    region = self.chunk_box(c)
                    out[c] = block[
                        tuple(
                            slice(r.start - b.start, r.stop - b.start) for r, b in zip(region, box)
                        )
                    ].copy()
            return [out[c] for c in chunks]
        boxes = [self.chunk_box(c) for c in chunks]
        if len(boxes) == 1:
            return [self._read_or_error(boxes[0])]
        return list(_fetch_pool().map(self._read_or_error, boxes))

    def _read_or_error(self, box: tuple[slice, ...]) -> np.ndarray | BaseException:
        from .._errors import ChunkReadError

        errors: tuple[type[BaseException], ...] = (ChunkReadError, *_read_errors())
        try:
            return self._base._checked_read(box)
        except errors as exc:
            return exc

    def _named(self, box: tuple[slice, ...], exc: BaseException) -> BaseException:
        """A decoding error of the zarr read of ``box`` as the ChunkReadError naming it."""
        from .lazy import chunk_error, zarr_store_name

        coords = tuple(s.start // c for s, c in zip(box, self.read_chunks))
        if self._shard_factor is not None:  # the stored key is the shard's
            coords = tuple(c // f for c, f in zip(coords, self._shard_factor))
        arr = self._base
        key: str | None
        try:
            key = arr.metadata.encode_chunk_key(coords)
        except (AttributeError, ValueError, TypeError):  # the error stands without a key
            key = None
        return chunk_error(zarr_store_name(arr), str(arr.store_path.path), key, exc)

    def _zarr_reads(
        self, chunks: list[tuple[int, ...]]
    ) -> list[tuple[tuple[slice, ...], list[tuple[int, ...]]]]:
        """The zarr reads fetching ``chunks``: (box, chunks it holds), one per chunk...

        ...except where the missing chunks of one shard form a whole block: one read
        of that block, so the shard's index is fetched once, not once per chunk.
        """
        factor = self._shard_factor
        if factor is None or all(f == 1 for f in factor):
            return [(self.chunk_box(c), [c]) for c in chunks]
        by_shard: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
        for c in chunks:
            by_shard.setdefault(tuple(i // f for i, f in zip(c, factor)), []).append(c)
        reads = []
        for members in by_shard.values():
            lo = [min(c[a] for c in members) for a in range(len(factor))]
            hi = [max(c[a] for c in members) + 1 for a in range(len(factor))]
            if len(members) > 1 and len(members) == math.prod(b - a for a, b in zip(lo, hi)):
                first, last = self.chunk_box(tuple(lo)), self.chunk_box(tuple(h - 1 for h in hi))
                box = tuple(slice(f.start, e.stop, 1) for f, e in zip(first, last))
                reads.append((box, members))
            else:
                reads.extend((self.chunk_box(c), [c]) for c in members)
        return reads


async def _gather_reads(
    async_array: Any,
    boxes: list[tuple[slice, ...]],
    named: Callable[[tuple[slice, ...], BaseException], BaseException],
) -> list[np.ndarray | BaseException]:
    """Read ``boxes`` concurrently; a box that fails gives its error, not the others'."""
    from .lazy import CHUNK_ERRORS

    limit = asyncio.Semaphore(CONCURRENT_READS)
    transient = _read_errors()

    async def one(box: tuple[slice, ...]) -> np.ndarray | BaseException:
        async with limit:
            try:
                return np.asarray(await async_array.getitem(box))
            except transient as exc:
                return exc
            except CHUNK_ERRORS as exc:  # decoding: the chunk is damaged
                return named(box, exc)

    return list(await asyncio.gather(*(one(b) for b in boxes)))


def cached_levels(
    levels: Sequence[Any],
    *,
    source: str = "",
    channel_axis: int | None = None,
    on_error: str = "warn",
    cache: ChunkCache | None = None,
    prefetch: bool = True,
    wrap: Callable[[Any], bool] | None = None,
) -> list[Any]:
    """The levels of one image, each wrapped in a :class:`CachedArray` where it can be.

    Levels that are zarr arrays or chunked lazy arrays are wrapped and grouped in one
    :class:`~.prefetch.Pyramid` (which prefetches neighbouring planes and the coarser
    level); in-memory, dask or unchunked levels are returned as they are.
    """
    from .prefetch import Pyramid

    out: list[Any] = []
    wrapped: list[CachedArray] = []
    for i, data in enumerate(levels):
        ok = wrap(data) if wrap is not None else _cacheable(data)
        if not ok:
            out.append(data)
            continue
        arr = CachedArray(
            data, source=f"{source}#{i}" if source else "", cache=cache, on_error=on_error
        )
        arr.level = i
        out.append(arr)
        wrapped.append(arr)
    if prefetch and wrapped:
        Pyramid(out, channel_axis=channel_axis)
    return out


def _cacheable(data: Any) -> bool:
    if isinstance(data, CachedArray):
        return False
    if is_zarr(data):
        return True
    return isinstance(data, LazyArray) and storage_chunks(data) is not None
