"""The block engine: levels written block by block, a bounded number in flight.

Level 0 is streamed from the source in chunk-aligned blocks; every next level is
computed from the previous level *as written*, block by block.  A block of level k+1
starts as soon as the blocks of level k it reads are written, so levels overlap; memory
is bounded by the blocks in flight, whatever the image size.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

import numpy as np

from ..._errors import CancelledError
from .kernels import downsample_block
from .plan import LevelPlan

__all__ = ["Cancel", "CancelEvent", "ProgressCallback"]

#: ``progress(done_blocks, total_blocks, message)``, called in the calling thread.
ProgressCallback: TypeAlias = Callable[[int, int, str], None]


class CancelEvent(Protocol):
    """Anything with ``is_set()``, such as :class:`threading.Event`."""

    def is_set(self) -> bool:
        """True once the operation should stop."""
        ...


#: A cancel signal: an event (``is_set()``) or a callable returning True to stop.
Cancel: TypeAlias = CancelEvent | Callable[[], bool]

#: Aim for about this many input bytes per task when chunks are small: fewer, larger
#: zarr calls, memory still bounded by ``workers x task``.
_TASK_INPUT_BYTES = 2**20
#: Never group chunks into a task larger than this (input bytes).
_TASK_MAX_BYTES = 64 * 2**20


def _is_dask(array: Any) -> bool:
    return type(array).__module__.startswith("dask") and hasattr(array, "dask")


def _source_chunks(array: Any) -> tuple[int, ...] | None:
    chunks = getattr(array, "chunks", None)
    if not chunks:
        return None
    if isinstance(chunks[0], tuple):
        return tuple(int(c[0]) if c else 1 for c in chunks)
    try:
        return tuple(int(c) for c in chunks)
    except (TypeError, ValueError):
        return None


def _read_region(array: Any, region: tuple[slice, ...], dtype: np.dtype) -> np.ndarray:
    if _is_dask(array):
        # One small graph per block, computed in this worker thread: never the whole.
        block = array[region].compute(scheduler="synchronous")
    else:
        block = array[region]
    return np.asarray(block, dtype=dtype)


def _task_unit(
    base: tuple[int, ...],
    shape: tuple[int, ...],
    in_itemsize: int,
    factors: tuple[int, ...],
    prefer: tuple[int, ...] | None,
) -> tuple[int, ...]:
    """Output block per task: whole chunks (or shards), grouped up to the byte target.

    With a chunked source (level 0), blocks grow to whole source chunks when those are
    multiples of ours, so no source chunk is computed or decoded twice.
    """
    scale = math.prod(factors) * in_itemsize
    unit = list(base)
    if prefer is not None and len(prefer) == len(unit):
        grown = [p if p % u == 0 and p > u else u for u, p in zip(unit, prefer)]
        if math.prod(min(g, n) for g, n in zip(grown, shape)) * scale <= _TASK_MAX_BYTES:
            unit = grown
    # Grow small blocks along the outer axes first (contiguous slabs in C order).
    for axis in range(len(unit)):
        while (
            math.prod(min(u, n) for u, n in zip(unit, shape)) * scale * 2 <= _TASK_INPUT_BYTES
            and unit[axis] < shape[axis]
        ):
            unit[axis] *= 2
    return tuple(min(u, -(-n // b) * b) for u, n, b in zip(unit, shape, base))


def _region(index: Sequence[int], unit: Sequence[int], shape: Sequence[int]) -> tuple[slice, ...]:
    return tuple(slice(i * u, min((i + 1) * u, n)) for i, u, n in zip(index, unit, shape))


def _regions(shape: tuple[int, ...], unit: tuple[int, ...]) -> Iterator[tuple[slice, ...]]:
    grid = [range(-(-n // u)) for n, u in zip(shape, unit)]
    for index in itertools.product(*grid):
        yield _region(index, unit, shape)


@dataclass(eq=False)
class _LevelJob:
    """How to fill one output array: from which source, by which factors and method."""

    name: str
    path: str
    plan: LevelPlan
    dtype: np.dtype
    #: the source array, or None to read the previous job's (already written) array
    source: Any
    previous: _LevelJob | None
    factors: tuple[int, ...]
    method: str
    #: depth in its pyramid (0 for level 0): deeper ready blocks are scheduled first
    depth: int = 0
    target: Any = None  # the zarr array, once created
    unit: tuple[int, ...] = ()
    done: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    _cursor: Iterator[tuple[int, ...]] | None = None
    _head: tuple[int, ...] | None = None

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(-(-n // u) for n, u in zip(self.plan.shape, self.unit))

    def n_tasks(self) -> int:
        return math.prod(self.grid)

    def start(self) -> None:
        self.done = np.zeros(self.grid, bool)
        self._cursor = itertools.product(*(range(g) for g in self.grid))
        self._head = next(self._cursor, None)

    @property
    def exhausted(self) -> bool:
        return self._head is None

    def in_region(self, out_region: tuple[slice, ...]) -> tuple[slice, ...]:
        shape = self.source_shape
        return tuple(
            slice(r.start * f, min(r.stop * f, n))
            for r, f, n in zip(out_region, self.factors, shape)
        )

    @property
    def source_shape(self) -> tuple[int, ...]:
        src = self.source if self.previous is None else self.previous.plan
        return tuple(int(n) for n in src.shape)

    def head_ready(self) -> bool:
        """True when the next block's input is completely written (or comes from the source)."""
        if self._head is None:
            return False
        prev = self.previous
        if prev is None:
            return True
        needed = self.in_region(_region(self._head, self.unit, self.plan.shape))
        cover = tuple(
            slice(r.start // u, (r.stop - 1) // u + 1) for r, u in zip(needed, prev.unit)
        )
        return bool(prev.done[cover].all())

    def pop(self) -> tuple[int, ...]:
        assert self._cursor is not None and self._head is not None
        index, self._head = self._head, next(self._cursor, None)
        return index


class _Runner:
    """Runs the blocks of all levels in a thread pool, a bounded number in flight.

    A block of level k+1 starts as soon as the blocks of level k it reads are written,
    so levels overlap instead of waiting for each other; ready blocks of deeper levels
    go first.  Memory is bounded by the blocks running, not by the image.
    """

    def __init__(
        self,
        workers: int,
        total: int,
        progress: Callable[[int, int, str], Any] | None,
        cancel: Any,
    ) -> None:
        self.workers = max(1, int(workers))
        self.max_in_flight = 2 * self.workers
        self.total = total
        self.done = 0
        self.progress = progress
        if cancel is None:
            self._cancelled: Callable[[], bool] = lambda: False
        elif hasattr(cancel, "is_set"):
            self._cancelled = cancel.is_set
        elif callable(cancel):
            self._cancelled = cancel
        else:
            raise TypeError(f"cancel must be a threading.Event or a callable, not {cancel!r}")
        self.peak_in_flight = 0

    def cancelled(self) -> bool:
        return bool(self._cancelled())

    def check_cancel(self) -> None:
        if self.cancelled():
            raise CancelledError("write cancelled; nothing was written")

    def run(self, pool: ThreadPoolExecutor, jobs: Sequence[_LevelJob]) -> None:
        for job in jobs:
            job.start()
        order = sorted(jobs, key=lambda j: -j.depth)  # deeper levels first when ready
        pending: dict[Future[None], tuple[_LevelJob, tuple[int, ...]]] = {}
        try:
            while True:
                while len(pending) < self.max_in_flight:
                    ready = next((j for j in order if j.head_ready()), None)
                    if ready is None:
                        break
                    self.check_cancel()
                    index = ready.pop()
                    pending[pool.submit(self._block, ready, index)] = (ready, index)
                self.peak_in_flight = max(self.peak_in_flight, len(pending))
                if not pending:
                    if any(not j.exhausted for j in jobs):  # pragma: no cover - a bug
                        raise RuntimeError("pyramid scheduler stalled")
                    return
                finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in finished:
                    job, index = pending.pop(future)
                    future.result()
                    job.done[index] = True
                    self.done += 1
                    if self.progress is not None:
                        self.progress(self.done, self.total, job.name)
                self.check_cancel()
        finally:
            # Never leave a worker writing into a folder that is about to be removed.
            for future in pending:
                future.cancel()
            wait(list(pending))

    def _block(self, job: _LevelJob, index: tuple[int, ...]) -> None:
        if self.cancelled():
            return
        out_region = _region(index, job.unit, job.plan.shape)
        in_region = job.in_region(out_region)
        source = job.source if job.previous is None else job.previous.target
        if all(f == 1 for f in job.factors):
            out = _read_region(source, in_region, job.dtype)
        else:
            src_chunks = (
                job.previous.plan.chunks
                if job.previous is not None
                else (_source_chunks(source) or job.source_shape)
            )
            pieces = _input_pieces(in_region, out_region, src_chunks, job.factors)
            if len(pieces) == 1:
                block = _read_region(source, in_region, job.dtype)
                out = downsample_block(block, job.factors, job.method)
            else:
                out = np.empty(tuple(r.stop - r.start for r in out_region), job.dtype)
                for src_piece, dst_piece in pieces:
                    block = _read_region(source, src_piece, job.dtype)
                    out[dst_piece] = downsample_block(block, job.factors, job.method)
                    del block
        # Whole-chunk writes of all-fill blocks are skipped, as zarr itself would (we
        # create arrays with write_empty_chunks=True to spare zarr that check per chunk).
        if out.any():
            job.target[out_region] = out


def _input_pieces(
    in_region: tuple[slice, ...],
    out_region: tuple[slice, ...],
    src_chunks: Sequence[int],
    factors: Sequence[int],
) -> list[tuple[tuple[slice, ...], tuple[slice, ...]]]:
    """Split a task's input along one axis into whole source chunks (whole blocks too).

    Every source chunk is still read once, but only a slab of the input is in memory
    at a time: the task holds its output plus one slab.
    """
    for axis, (r, c, f) in enumerate(zip(in_region, src_chunks, factors)):
        if r.stop - r.start <= c:
            continue
        step = math.lcm(int(c), int(f))
        if r.stop - r.start <= step:
            continue
        pieces = []
        for start in range(r.start, r.stop, step):
            stop = min(start + step, r.stop)
            src = list(in_region)
            dst = [slice(0, o.stop - o.start) for o in out_region]
            src[axis] = slice(start, stop)
            o0 = (start - r.start) // f
            dst[axis] = slice(o0, o0 + -(-(stop - start) // f))
            pieces.append((tuple(src), tuple(dst)))
        return pieces
    return [(in_region, tuple(slice(0, o.stop - o.start) for o in out_region))]
