"""The block engine: levels written block by block, a bounded number in flight.

Level 0 is streamed from the source in chunk-aligned blocks; every next level is
computed from the previous level *as written*, block by block.  A block of level k+1
is submitted as soon as the blocks of level k it reads are written, so levels overlap;
memory is bounded by the blocks in flight, whatever the image size.  In threads, the
tasks of level k also return their block downsampled for level k+1, which is then
assembled in memory instead of read back from the store (:meth:`_LevelJob.hand_on`;
at most ``_CARRY_BYTES`` held).

Two parts, kept apart so that the same scheduler runs blocks in threads or on a
dask.distributed cluster:

* a block is a self-contained task: :func:`run_block` receives a picklable
  :class:`BlockTask` (the source or a picklable slice of it, the target's store
  folder and array path, the region), reads its input, writes its output itself and
  returns a small :class:`BlockResult` -- no pixels come back;
* :class:`BlockExecutor` runs tasks: :class:`ThreadExecutor` (the default) in a
  thread pool of this process, :class:`~.cluster.DistributedExecutor` on the workers
  of a ``distributed.Client``.  :class:`_Runner` decides what to submit and when.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import socket
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, TypeAlias, TypeVar

import numpy as np
import zarr
from zarr.core.array_spec import ArrayConfig
from zarr.core.common import ZarrFormat

from ..._errors import CancelledError, ObjectStoreError
from ..lazy import dask_blocks, is_dask, read_region, storage_chunks
from ..objectstore import credential_errors, no_credentials_message
from .chunkio import ChunkIO
from .kernels import downsample_block
from .plan import LevelPlan

__all__ = [
    "ArrayLocation",
    "BlockExecutor",
    "BlockFuture",
    "BlockResult",
    "BlockTask",
    "Cancel",
    "CancelEvent",
    "ProgressCallback",
    "ThreadExecutor",
    "run_block",
]

log = logging.getLogger(__name__)

#: ``progress(done_blocks, total_blocks, message)``, called in the calling thread.
ProgressCallback: TypeAlias = Callable[[int, int, str], None]


class CancelEvent(Protocol):
    """Anything with ``is_set()``, such as :class:`threading.Event`."""

    def is_set(self) -> bool:
        """True once the operation should stop."""
        ...


#: A cancel signal: an event (``is_set()``) or a callable returning True to stop.
Cancel: TypeAlias = CancelEvent | Callable[[], bool]

#: Aim for about this many input bytes per task when chunks are small (in threads of
#: this process): fewer, larger zarr calls, memory still bounded by ``workers x task``.
#: Executors that pay more per task aim higher (:attr:`BlockExecutor.task_bytes`).
_TASK_INPUT_BYTES = 2**20
#: Never group chunks into a task larger than this (input bytes).
_TASK_MAX_BYTES = 64 * 2**20
#: Blocks of the next level computed ahead by the tasks of the level before
#: (:meth:`_LevelJob.hand_on`) are kept in memory up to this many bytes; a level whose
#: pieces would not fit reads the level before back from the store instead.
_CARRY_BYTES = 64 * 2**20
#: Arrays are written with ``write_empty_chunks``: :func:`run_block` skips all-fill
#: blocks itself, which spares zarr that check on every chunk.
ARRAY_CONFIG = ArrayConfig(order="C", write_empty_chunks=True)


# ----------------------------------------------------------------------------------------
# block geometry and sources
# ----------------------------------------------------------------------------------------


def _read_region(array: Any, region: tuple[slice, ...], dtype: np.dtype[Any]) -> np.ndarray:
    if isinstance(array, ArrayLocation):
        return np.asarray(array.read(region), dtype=dtype)
    # a dask source: one small graph per block, computed in this worker thread
    return read_region(array, region, dtype)


def _task_unit(
    base: tuple[int, ...],
    shape: tuple[int, ...],
    in_itemsize: int,
    factors: tuple[int, ...],
    prefer: tuple[int, ...] | None,
    target: int | None = None,
) -> tuple[int, ...]:
    """Output block per task: whole chunks (or shards), grouped up to ``target`` input bytes.

    With a chunked source (level 0), blocks grow to whole source chunks when those are
    multiples of ours, so no source chunk is computed or decoded twice.  ``target``
    defaults to ``_TASK_INPUT_BYTES``; a task is never grown past ``_TASK_MAX_BYTES``.
    """
    target = _TASK_INPUT_BYTES if target is None else min(int(target), _TASK_MAX_BYTES)
    scale = math.prod(factors) * in_itemsize
    unit = list(base)
    if prefer is not None and len(prefer) == len(unit):
        grown = [p if p % u == 0 and p > u else u for u, p in zip(unit, prefer)]
        if math.prod(min(g, n) for g, n in zip(grown, shape)) * scale <= _TASK_MAX_BYTES:
            unit = grown
    # Grow small blocks along the outer axes first (contiguous slabs in C order).
    for axis in range(len(unit)):
        while (
            math.prod(min(u, n) for u, n in zip(unit, shape)) * scale * 2 <= target
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


# ----------------------------------------------------------------------------------------
# self-contained block tasks
# ----------------------------------------------------------------------------------------


class _Opened(NamedTuple):
    array: zarr.Array
    #: direct chunk I/O, or None when the array goes through zarr
    io: ChunkIO | None


def _opened(array: zarr.Array) -> _Opened:
    return _Opened(array, ChunkIO.for_array(array))


#: Arrays opened by :class:`ArrayLocation` in this process (a worker opens each level
#: once, not once per block); bounded, the oldest are forgotten first.
_OPEN_ARRAYS: OrderedDict[tuple[str, str], _Opened] = OrderedDict()
_OPEN_ARRAYS_MAX = 32
_OPEN_LOCK = threading.Lock()


@dataclass(frozen=True)
class ArrayLocation:
    """Where a level is stored: a local zarr store folder and the array's path in it.

    Pickles to the two strings and the zarr format; the array is opened where it is
    used (once per process).  The array the writer created is attached in its own
    process (:meth:`of`), so the thread executor never opens anything again.
    """

    store: str
    path: str
    zarr_format: ZarrFormat
    _opened: _Opened | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, store: str, path: str, array: zarr.Array) -> ArrayLocation:
        """The location of ``array`` (created in ``store`` at ``path``), attached."""
        zarr_format: ZarrFormat = 2 if array.metadata.zarr_format == 2 else 3
        return cls(store, path, zarr_format, _opened(array))

    def __getstate__(self) -> dict[str, Any]:
        return {"store": self.store, "path": self.path, "zarr_format": self.zarr_format}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_opened", None)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the array (opens it)."""
        return tuple(self.open().shape)

    def open(self) -> zarr.Array:
        """The array, writable, with the writer's array config."""
        return self._handles().array

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        """The values of ``region``."""
        array, io = self._handles()
        return io.read(region) if io is not None else np.asarray(array[region])

    def write(self, region: tuple[slice, ...], data: np.ndarray) -> None:
        """Write ``data`` at a chunk-aligned ``region``."""
        array, io = self._handles()
        if io is not None:
            io.write(region, data)
        else:
            array[region] = data

    def _target(self) -> tuple[Any, tuple[str, str]]:
        """The zarr store to open the array in, and its key among the opened arrays."""
        return self.store, (self.store, self.path)

    def _handles(self) -> _Opened:
        if self._opened is not None:
            return self._opened
        store, key = self._target()
        with _OPEN_LOCK:
            opened = _OPEN_ARRAYS.get(key)
            if opened is not None:
                _OPEN_ARRAYS.move_to_end(key)
                return opened
        array = zarr.open_array(
            store=store, path=self.path, mode="r+", zarr_format=self.zarr_format
        ).with_config(ARRAY_CONFIG)
        opened = _opened(array)
        with _OPEN_LOCK:
            _OPEN_ARRAYS[key] = opened
            while len(_OPEN_ARRAYS) > _OPEN_ARRAYS_MAX:
                _OPEN_ARRAYS.popitem(last=False)
        return opened


@dataclass(frozen=True)
class BlockTask:
    """One block to compute and write; everything in it pickles.

    Attributes
    ----------
    source
        What to read: the previous level (an :class:`ArrayLocation`), the source array,
        or (for tasks sent to other processes) the part of an in-memory or dask source
        that this block reads.
    in_region
        The region of ``source`` to read.
    src_chunks
        Chunk shape of the source: a large input is read one slab of whole chunks at
        a time.
    target
        Where to write.
    out_region
        The region of the target to write.
    factors, method
        Downsampling factors (all 1 to copy) and method.
    dtype
        Data type of the target.
    """

    source: Any
    in_region: tuple[slice, ...]
    src_chunks: tuple[int, ...]
    target: ArrayLocation
    out_region: tuple[slice, ...]
    factors: tuple[int, ...]
    method: str
    dtype: np.dtype[Any]
    #: the next level's factors and method: also return this block downsampled by them
    #: (threads only: it is the next level's input, handed on in memory)
    carry: tuple[tuple[int, ...], str] | None = None


@dataclass(frozen=True)
class BlockResult:
    """What a block task returns: the region it covered and whether it wrote it.

    ``written`` is False for a block that is entirely 0 (the fill value): nothing is
    stored for it.  ``carried`` is the block downsampled for the next level when the
    task was asked for it (:attr:`BlockTask.carry`).
    """

    out_region: tuple[slice, ...]
    written: bool
    carried: np.ndarray | None = field(default=None, compare=False, repr=False)


def run_block(task: BlockTask) -> BlockResult:
    """Read a block's input, downsample it, write it to the target: one task.

    Runs in a worker thread or on a dask.distributed worker; only a small
    :class:`BlockResult` is returned (with, when the task asks for it in threads, the
    block downsampled for the next level).

    Raises
    ------
    ObjectStoreError
        The process has no credentials for the object store it reads or writes (a
        worker whose environment lacks them): said in one line naming the machine.
    """
    try:
        return _run_block(task)
    except credential_errors() as exc:
        # the object store is the target's or the source's: a local target rules one out
        target = task.target.store
        url = f"{target} (or the source)" if "://" in target else "the source"
        where = f"on {socket.gethostname()} (process {os.getpid()})"
        raise ObjectStoreError(no_credentials_message(url, exc, where)) from exc


def _run_block(task: BlockTask) -> BlockResult:
    source = task.source
    out_region = task.out_region
    if all(f == 1 for f in task.factors):
        out = _read_region(source, task.in_region, task.dtype)
    else:
        pieces = _input_pieces(task.in_region, out_region, task.src_chunks, task.factors)
        if len(pieces) == 1:
            block = _read_region(source, task.in_region, task.dtype)
            out = downsample_block(block, task.factors, task.method)
        else:
            out = np.empty(tuple(r.stop - r.start for r in out_region), task.dtype)
            for src_piece, dst_piece in pieces:
                block = _read_region(source, src_piece, task.dtype)
                out[dst_piece] = downsample_block(block, task.factors, task.method)
                del block
    # Whole-chunk writes of all-fill blocks are skipped, as zarr itself would (arrays
    # are created with write_empty_chunks=True to spare zarr that check per chunk).
    written = bool(out.any())
    if written:
        task.target.write(out_region, out)
    carried = None
    if task.carry is not None:
        # what the next level computes from this block once written and read back: a
        # block not written reads back as the fill value (+0.0 where it held -0.0)
        carried = downsample_block(out if written else np.zeros_like(out), *task.carry)
    return BlockResult(out_region, written, carried)


def _portable(source: Any, region: tuple[slice, ...]) -> tuple[Any, tuple[slice, ...]]:
    """What a task sent to another process reads: only the block's part of the source.

    An in-memory array is cut to the region (pickling the view copies only it); a dask
    array to the tasks of the region's chunks (:class:`~..lazy.DaskBlocks`), or to the
    region's optimised sub-graph when the region is not whole chunks.  Other arrays
    (zarr, lazy file readers) pickle as a reference to their storage and are sent as
    they are.
    """
    relative = tuple(slice(0, r.stop - r.start) for r in region)
    if isinstance(source, np.ndarray):
        return source[region], relative
    if is_dask(source):
        direct = dask_blocks(source, region)  # whole chunks: just their tasks
        if direct is not None:
            return direct, relative
        import dask

        (sub,) = dask.optimize(source[region])
        return sub, relative
    return source, region


# ----------------------------------------------------------------------------------------
# executors
# ----------------------------------------------------------------------------------------


class BlockFuture(Protocol):
    """A submitted block: ``concurrent.futures.Future`` or ``distributed.Future``."""

    def result(self) -> BlockResult:
        """The block's result; raises the task's exception."""
        ...


#: The future type of an executor.
F = TypeVar("F", bound=BlockFuture)


_E = TypeVar("_E", bound="BlockExecutor[Any]")


class BlockExecutor(ABC, Generic[F]):
    """Runs block tasks; the scheduler decides which block goes when.

    An executor is used as a context manager by one write.  The scheduler keeps at most
    :attr:`slots` blocks submitted and not yet collected.
    """

    #: Tasks leave this process (they are pickled): in-memory and dask sources are cut
    #: to each block's region before they are sent.
    ships_tasks: ClassVar[bool] = False

    @property
    @abstractmethod
    def workers(self) -> int:
        """Blocks that run at the same time (threads, or the cluster's threads)."""

    @property
    def slots(self) -> int:
        """Blocks in flight at most: two per worker thread, so none waits idle."""
        return 2 * self.workers

    @property
    def task_bytes(self) -> int:
        """Input bytes a task aims for when chunks are small (see :func:`_task_unit`)."""
        return _TASK_INPUT_BYTES

    @abstractmethod
    def submit(self, task: BlockTask) -> F:
        """Start running ``task`` (:func:`run_block`)."""

    @abstractmethod
    def wait_any(self, futures: Collection[F]) -> Collection[F]:
        """Wait until at least one of ``futures`` is done; return those done."""

    @abstractmethod
    def drain(self, futures: Collection[F]) -> None:
        """After an error or a cancel: drop what has not started, wait for the rest.

        Returns only when no task of ``futures`` can still write.
        """

    def close(self) -> None:
        """Release what the executor holds (threads)."""

    def __enter__(self: _E) -> _E:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ThreadExecutor(BlockExecutor["Future[BlockResult]"]):
    """Blocks in a thread pool of this process (numpy, zarr codecs release the GIL)."""

    def __init__(self, workers: int) -> None:
        self._workers = max(1, int(workers))
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="zarrnii-pyramid")

    @property
    def workers(self) -> int:
        return self._workers

    def submit(self, task: BlockTask) -> Future[BlockResult]:
        return self._pool.submit(run_block, task)

    def wait_any(
        self, futures: Collection[Future[BlockResult]]
    ) -> Collection[Future[BlockResult]]:
        done, _ = wait(futures, return_when=FIRST_COMPLETED)
        return done

    def drain(self, futures: Collection[Future[BlockResult]]) -> None:
        for future in futures:
            future.cancel()  # only those not started yet
        wait(futures)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


# ----------------------------------------------------------------------------------------
# the scheduler
# ----------------------------------------------------------------------------------------


class _CarryBudget:
    """Bytes of carried blocks held in memory, shared by the levels of one write."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0

    def take(self, nbytes: int) -> bool:
        if self.used + nbytes > self.limit:
            return False
        self.used += nbytes
        self.peak = max(self.peak, self.used)
        return True

    def give(self, nbytes: int) -> None:
        self.used -= nbytes


@dataclass(eq=False)
class _LevelJob:
    """How to fill one output array: from which source, by which factors and method."""

    name: str
    path: str
    plan: LevelPlan
    dtype: np.dtype[Any]
    #: the source array, or None to read the previous job's (already written) array
    source: Any
    previous: _LevelJob | None
    factors: tuple[int, ...]
    method: str
    #: depth in its pyramid (0 for level 0): deeper ready blocks are scheduled first
    depth: int = 0
    #: where the level is written, once its array is created
    location: ArrayLocation | None = None
    unit: tuple[int, ...] = ()
    done: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    _cursor: Iterator[tuple[int, ...]] | None = None
    _head: tuple[int, ...] | None = None
    #: the job that reads this one's array, when its tasks should get their input from
    #: this job's tasks in memory (see :meth:`hand_on`)
    carry_to: _LevelJob | None = None
    #: blocks of this level handed on by the previous level's tasks: block index ->
    #: [(where in the block, values)]; indices whose pieces did not all fit
    _pieces: dict[tuple[int, ...], list[tuple[tuple[slice, ...], np.ndarray]]] = field(
        default_factory=dict
    )
    _dropped: set[tuple[int, ...]] = field(default_factory=set)
    _budget: _CarryBudget | None = None
    #: blocks written from what the previous level handed on (not read back)
    carried_blocks: int = 0

    @property
    def target(self) -> zarr.Array:
        """The written array."""
        if self.location is None:
            raise RuntimeError(f"{self.name}: array not created yet")  # pragma: no cover
        return self.location.open()

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

    # -- blocks handed on in memory -----------------------------------------------------
    def can_carry_to(self, child: _LevelJob) -> bool:
        """True when ``child``'s blocks can be assembled from this job's, downsampled.

        Every block of this level must start on a multiple of the child's factors, so
        that no window of the child straddles two of them: then a block downsampled on
        its own gives exactly the child's voxels over it (every method is local to its
        window; a partial window only ever comes at the array's end).
        """
        return all(
            u % f == 0 or u >= n for u, f, n in zip(self.unit, child.factors, self.plan.shape)
        )

    def carry_bytes(self, child: _LevelJob) -> int:
        """About the most memory the pieces handed on to ``child`` take at once.

        Blocks go in row-major order, the order of the source's storage.  A block of
        the child is complete once the blocks under it along the first downsampled
        axis are all written, so the pieces of about one row of this level's blocks
        (all blocks with the same index on that axis) wait in memory, plus some of the
        next: 1.5 rows.
        """
        axis = next((a for a, f in enumerate(child.factors) if f > 1), 0)
        piece = math.prod(-(-u // f) for u, f in zip(self.unit, child.factors))
        row = math.prod(self.grid[axis + 1 :])
        return int(1.5 * row * piece * self.dtype.itemsize)

    def _child_blocks(
        self, out_region: tuple[slice, ...]
    ) -> tuple[list[tuple[int, int]], list[range]]:
        """Where the block at ``out_region`` lands in the next level, downsampled, and the
        indices of the next level's blocks it is part of (per axis)."""
        child = self.carry_to
        assert child is not None
        reduced = [
            (r.start // f, r.start // f + -(-(r.stop - r.start) // f))
            for r, f in zip(out_region, child.factors)
        ]
        ranges = [range(a // u, (b - 1) // u + 1) for (a, b), u in zip(reduced, child.unit)]
        return reduced, ranges

    def _carry_for(self, out_region: tuple[slice, ...]) -> tuple[tuple[int, ...], str] | None:
        """What the task of this block hands on: nothing when every block of the next
        level it is part of has been dropped already (they read the store)."""
        child = self.carry_to
        if child is None:
            return None
        _, ranges = self._child_blocks(out_region)
        if all(index in child._dropped for index in itertools.product(*ranges)):
            return None
        return child.factors, child.method

    def hand_on(self, out_region: tuple[slice, ...], carried: np.ndarray) -> None:
        """Keep ``carried`` (the block at ``out_region``, downsampled) for the next level."""
        child = self.carry_to
        assert child is not None and child._budget is not None
        reduced, ranges = self._child_blocks(out_region)
        whole = math.prod(len(r) for r in ranges) == 1
        for index in itertools.product(*ranges):
            if index in child._dropped:
                continue
            block = _region(index, child.unit, child.plan.shape)
            src, dst = [], []
            for (a, b), r in zip(reduced, block):
                lo, hi = max(a, r.start), min(b, r.stop)
                src.append(slice(lo - a, hi - a))
                dst.append(slice(lo - r.start, hi - r.start))
            piece = carried if whole else np.ascontiguousarray(carried[tuple(src)])
            if not child._budget.take(piece.nbytes):
                child._drop(index)
                continue
            child._pieces.setdefault(index, []).append((tuple(dst), piece))

    def _drop(self, index: tuple[int, ...]) -> None:
        self._dropped.add(index)
        assert self._budget is not None
        for _, piece in self._pieces.pop(index, []):
            self._budget.give(piece.nbytes)

    def _carried_block(self, index: tuple[int, ...]) -> np.ndarray | None:
        """Block ``index`` assembled from what the previous level handed on, or None.

        Called once the previous level's blocks under it are all done, so either every
        piece is here or one was dropped (then the block reads the store).
        """
        pieces = self._pieces.pop(index, None)
        if self._budget is not None:
            for _, piece in pieces or []:
                self._budget.give(piece.nbytes)
        if pieces is None or index in self._dropped:
            self._dropped.discard(index)
            return None
        prev = self.previous
        assert prev is not None
        needed = self.in_region(_region(index, self.unit, self.plan.shape))
        expected = math.prod(
            (r.stop - 1) // u - r.start // u + 1 for r, u in zip(needed, prev.unit)
        )
        if len(pieces) != expected:  # pragma: no cover - a bug
            raise RuntimeError(f"{self.name}: block {index} got {len(pieces)}/{expected} parts")
        region = _region(index, self.unit, self.plan.shape)
        out = np.empty(tuple(r.stop - r.start for r in region), self.dtype)
        for dst, piece in pieces:
            out[dst] = piece
        return out

    def task(self, index: tuple[int, ...], *, portable: bool) -> BlockTask:
        """The self-contained task of block ``index``."""
        assert self.location is not None
        out_region = _region(index, self.unit, self.plan.shape)
        in_region = self.in_region(out_region)
        source: Any
        factors = self.factors
        carried = self._carried_block(index) if self._budget is not None else None
        if carried is not None:
            # the previous level's tasks computed it already: write it as it is
            source, src_chunks = carried, carried.shape
            in_region = tuple(slice(0, n) for n in carried.shape)
            factors = (1,) * len(carried.shape)
            self.carried_blocks += 1
        elif self.previous is not None:
            assert self.previous.location is not None
            source, src_chunks = self.previous.location, self.previous.plan.chunks
        else:
            source = self.source
            src_chunks = storage_chunks(source, shards=False) or self.source_shape
            if portable:
                source, in_region = _portable(source, in_region)
        return BlockTask(
            source=source,
            in_region=in_region,
            src_chunks=src_chunks,
            target=self.location,
            out_region=out_region,
            factors=factors,
            method=self.method,
            dtype=self.dtype,
            carry=self._carry_for(out_region),
        )


class _Runner:
    """Schedules the blocks of all levels on an executor, a bounded number in flight.

    A block of level k+1 is submitted as soon as the blocks of level k it reads are
    written, so levels overlap instead of waiting for each other; ready blocks of
    deeper levels go first.  Memory is bounded by the blocks in flight, not by the
    image.  Progress is reported and cancellation checked in the calling thread.
    """

    def __init__(
        self,
        total: int,
        progress: ProgressCallback | None,
        cancel: Cancel | None,
    ) -> None:
        self.total = total
        self.done = 0
        self.written = 0
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
        #: memory of the blocks handed on to the next level (threads only)
        self.carry: _CarryBudget | None = None

    def cancelled(self) -> bool:
        return bool(self._cancelled())

    def check_cancel(self) -> None:
        if self.cancelled():
            raise CancelledError("write cancelled; nothing was written")

    def _plan_carry(self, jobs: Sequence[_LevelJob]) -> None:
        """Which levels get their input in memory from the tasks of the level before.

        Only in this process: tasks sent to other processes read it from the store (no
        pixel comes back here).  Levels are taken from the top (where reading back costs
        most) while their expected memory fits :data:`_CARRY_BYTES`; the budget also
        caps what is really held (a piece that does not fit is dropped, and its block
        reads the store).
        """
        self.carry = _CarryBudget(_CARRY_BYTES)
        planned = 0
        for job in sorted(jobs, key=lambda j: j.depth):
            prev = job.previous
            if prev is None or not prev.can_carry_to(job):
                continue
            need = prev.carry_bytes(job)
            if planned + need > _CARRY_BYTES:
                continue
            planned += need
            prev.carry_to = job
            job._budget = self.carry

    def run(self, executor: BlockExecutor[F], jobs: Sequence[_LevelJob]) -> None:
        for job in jobs:
            job.start()
        order = sorted(jobs, key=lambda j: -j.depth)  # deeper levels first when ready
        pending: dict[F, tuple[_LevelJob, tuple[int, ...]]] = {}
        portable = executor.ships_tasks
        if not portable:
            self._plan_carry(jobs)
        try:
            while True:
                while len(pending) < executor.slots:
                    ready = next((j for j in order if j.head_ready()), None)
                    if ready is None:
                        break
                    self.check_cancel()
                    index = ready.pop()
                    future = executor.submit(ready.task(index, portable=portable))
                    pending[future] = (ready, index)
                self.peak_in_flight = max(self.peak_in_flight, len(pending))
                if not pending:
                    if any(not j.exhausted for j in jobs):  # pragma: no cover - a bug
                        raise RuntimeError("pyramid scheduler stalled")
                    return
                for future in executor.wait_any(list(pending)):
                    job, index = pending.pop(future)
                    result = future.result()
                    if result.carried is not None and job.carry_to is not None:
                        job.hand_on(result.out_region, result.carried)
                    job.done[index] = True
                    self.done += 1
                    self.written += result.written
                    if self.progress is not None:
                        self.progress(self.done, self.total, job.name)
                self.check_cancel()
        finally:
            # Never leave a worker writing into a folder that is about to be removed.
            if pending:
                executor.drain(list(pending))
