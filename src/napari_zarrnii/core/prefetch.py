"""Reading ahead of the viewer: neighbouring chunk planes and the coarser level.

No napari here: the arrays see the boxes napari reads.  A read with an extent of one
on an axis is a plane on a slider; when the only such axis whose position changed
since the previous read of the same layer (at the same level) is one, the user is
stepping along it, in that direction.  After a plane read at level ``L`` the
:class:`Pyramid` of the image schedules, on one background thread:

1. when the user steps along a slider: the chunk plane beyond the current one in the
   direction of movement once the plane is within a quarter of a chunk of its edge
   (chunks one plane deep: the next plane), over the same displayed region;
2. the same view at level ``L + 1`` (shown when the user zooms out);
3. when stepping: the chunk plane behind, if the previous plane lies in it.

Nothing along a slider is read before the user moves it: a first view, a zoom or a pan
does not know where the user goes next, and a chunk plane of a large view is hundreds
of MiB.

A new read of the same layer elsewhere cancels what is still pending for it (stale
jobs are dropped, never run).  Prefetching waits while any foreground read runs and
for a short pause after it, reads a few chunks at a time, stops when the cache cannot
make room without evicting what the view on screen uses (:meth:`ChunkCache.put`), and
never raises: a failure is logged.  Reads of the coarsest level (napari's thumbnails)
neither schedule nor cancel anything.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .cached import CachedArray

__all__ = ["Prefetcher", "Pyramid", "prefetcher", "set_prefetch"]

log = logging.getLogger(__name__)

#: Environment variable: ``0`` turns prefetching off.
ENV_PREFETCH = "NAPARI_ZARRNII_PREFETCH"

Chunk = tuple[int, ...]
Stream = tuple[str, Any]


@dataclass
class _Job:
    stream: Stream
    generation: int
    array: CachedArray
    chunks: deque[Chunk] = field(default_factory=deque)


class Prefetcher:
    """One background thread running prefetch jobs, newest view first.

    Parameters
    ----------
    delay
        Seconds to wait after the last foreground read before reading ahead (lets
        the other layers of the same step and the draw go first).
    batch
        Chunks read per step; cancellation takes effect between steps.
    """

    def __init__(self, delay: float = 0.03, batch: int = 8) -> None:
        self.delay = delay
        self.batch = batch
        self.enabled = os.environ.get(ENV_PREFETCH, "1").strip() not in ("0", "false", "no")
        self._cond = threading.Condition()
        self._jobs: deque[_Job] = deque()
        self._generation: dict[Stream, int] = {}
        self._foreground = 0
        self._last_foreground = 0.0
        self._thread: threading.Thread | None = None
        self._paused = False
        #: counters (for tests and benchmarks)
        self.chunks_read = 0
        self.jobs_dropped = 0
        self.jobs_done = 0

    # -- foreground -----------------------------------------------------------------------
    def foreground_started(self) -> None:
        """A read for the screen begins: prefetching waits until none runs."""
        with self._cond:
            self._foreground += 1

    def foreground_finished(self) -> None:
        """A read for the screen ended."""
        with self._cond:
            self._foreground = max(0, self._foreground - 1)
            self._last_foreground = time.monotonic()
            self._cond.notify_all()

    # -- jobs -----------------------------------------------------------------------------
    def replace(self, stream: Stream, jobs: Sequence[tuple[CachedArray, list[Chunk]]]) -> None:
        """Cancel what is pending for ``stream`` and queue ``jobs`` (array, chunks) for it."""
        with self._cond:
            generation = self._generation.get(stream, 0) + 1
            self._generation[stream] = generation
            if not self.enabled:
                return
            for array, chunks in jobs:
                if chunks:
                    self._jobs.append(_Job(stream, generation, array, deque(chunks)))
            if self._jobs:
                self._ensure_thread()
            self._cond.notify_all()

    def cancel(self, stream: Stream | None = None) -> None:
        """Drop pending jobs of one stream (of all with None)."""
        with self._cond:
            streams = list(self._generation) if stream is None else [stream]
            for s in streams:
                self._generation[s] = self._generation.get(s, 0) + 1
            self._cond.notify_all()

    def pending(self) -> int:
        """Chunks queued in jobs that are still current."""
        with self._cond:
            return sum(
                len(j.chunks) for j in self._jobs if self._generation.get(j.stream) == j.generation
            )

    def pause(self, paused: bool = True) -> None:
        """Hold (or release) the background thread between steps (used by tests)."""
        with self._cond:
            self._paused = paused
            self._cond.notify_all()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no current job is left (True) or ``timeout`` passes (False)."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._busy_or_queued():
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def _busy_or_queued(self) -> bool:
        return self._running or any(
            self._generation.get(j.stream) == j.generation for j in self._jobs
        )

    _running = False

    # -- the thread -----------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._loop, name="zarrnii-prefetch", daemon=True
            )
            self._thread.start()

    def _next(self) -> tuple[_Job, list[Chunk]]:
        """Wait for the next batch to read (called with the condition held)."""
        while True:
            while self._jobs and self._generation.get(self._jobs[0].stream) != (
                self._jobs[0].generation
            ):
                self._jobs.popleft()
                self.jobs_dropped += 1
            if not self._jobs or self._paused:
                self._cond.notify_all()
                self._cond.wait(0.5)
                continue
            if self._foreground:
                self._cond.wait(self.delay)
                continue
            left = self._last_foreground + self.delay - time.monotonic()
            if left > 0:
                self._cond.wait(left)
                continue
            job = self._jobs[0]
            batch = [job.chunks.popleft() for _ in range(min(self.batch, len(job.chunks)))]
            if not job.chunks:
                self._jobs.popleft()
                self.jobs_done += 1
            return job, batch

    def _loop(self) -> None:
        while True:
            with self._cond:
                job, batch = self._next()
                self._running = True
            try:
                self._run(job, batch)
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()

    def _run(self, job: _Job, batch: list[Chunk]) -> None:
        array = job.array
        cache = array.cache
        todo = [c for c in batch if not cache.contains(array.token, c)]
        if not todo:
            return
        try:
            read = array.obtain(todo, prefetch=True)
        except Exception:  # read errors come back per chunk: this is a fault of ours
            log.warning("prefetch of %s failed", array.source, exc_info=True)
            return
        self.chunks_read += len(read)
        if any(not cache.contains(array.token, c) for c in read):
            # no room without evicting the view on screen: stop reading ahead for now
            self.cancel(job.stream)


_PREFETCHER: Prefetcher | None = None
_LOCK = threading.Lock()


def prefetcher() -> Prefetcher:
    """The process-wide prefetcher."""
    global _PREFETCHER
    if _PREFETCHER is None:
        with _LOCK:
            if _PREFETCHER is None:
                _PREFETCHER = Prefetcher()
    return _PREFETCHER


def set_prefetch(enabled: bool) -> None:
    """Turn reading ahead on or off for every image (off cancels what is pending)."""
    p = prefetcher()
    p.enabled = bool(enabled)
    if not enabled:
        p.cancel()


def _fork_reset() -> None:
    global _PREFETCHER
    _PREFETCHER = None


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_fork_reset)


def _chunk_range(s: slice, chunk: int) -> range:
    n = len(range(s.start, s.stop, s.step))
    if n == 0:
        return range(0)
    last = s.start + (n - 1) * s.step
    return range(s.start // chunk, last // chunk + 1)


class Pyramid:
    """The levels of one image, finest first, which read ahead for each other.

    Parameters
    ----------
    levels
        The image's levels; the :class:`CachedArray` among them are linked to this
        pyramid (others are left alone and never prefetched).
    channel_axis
        The channel axis, if any: each channel is a layer of its own (a separate
        stream of reads), and it is never a slider.
    """

    def __init__(
        self,
        levels: Sequence[Any],
        *,
        channel_axis: int | None = None,
        prefetch: Prefetcher | None = None,
    ) -> None:
        self.levels = list(levels)
        self.channel_axis = channel_axis
        self.id = uuid.uuid4().hex
        self._prefetcher = prefetch
        self._lock = threading.Lock()
        self._last: dict[Stream, tuple[int, tuple[slice, ...]]] = {}
        for i, level in enumerate(self.levels):
            if isinstance(level, CachedArray):
                level.pyramid = self
                level.level = i

    @property
    def prefetcher(self) -> Prefetcher:
        """The prefetcher this pyramid queues jobs on."""
        return self._prefetcher if self._prefetcher is not None else prefetcher()

    def foreground_started(self) -> None:
        """Called by a level when a read for the screen begins."""
        self.prefetcher.foreground_started()

    def foreground_finished(self) -> None:
        """Called by a level when a read for the screen ends."""
        self.prefetcher.foreground_finished()

    def stream_of(self, box: tuple[slice, ...]) -> Stream:
        """Reads of one channel form one stream (one napari layer)."""
        c = self.channel_axis
        return (self.id, None if c is None else box[c].start)

    def after_read(self, array: CachedArray, box: tuple[slice, ...]) -> None:
        """Schedule the reads that follow a foreground read of ``array``."""
        n = len(self.levels)
        if n > 1 and array.level == n - 1:
            return  # the coarsest level: napari's thumbnail
        if array.cache.budget == 0 or not self.prefetcher.enabled:
            return
        stream = self.stream_of(box)
        jobs = self.plan(array, box, stream)
        if jobs is not None:  # None: the same view again, what is pending stays
            self.prefetcher.replace(stream, jobs)

    def plan(
        self, array: CachedArray, box: tuple[slice, ...], stream: Stream | None = None
    ) -> list[tuple[CachedArray, list[Chunk]]] | None:
        """The prefetch jobs (array, chunks) after a read of ``box``, in order.

        None when ``box`` is the stream's previous read again (a redraw).
        """
        stream = stream if stream is not None else self.stream_of(box)
        level, shape, grid = array.level, array.shape, array.read_chunks
        extents = [len(range(s.start, s.stop, s.step)) for s in box]
        if sum(1 for e in extents if e > 1) > 2:
            return []  # a volume (3-D rendering): nothing to step through
        planes = [
            a for a, e in enumerate(extents) if e == 1 and shape[a] > 1 and a != self.channel_axis
        ]
        with self._lock:
            last = self._last.get(stream)
            if last == (level, box):
                return None
            self._last[stream] = (level, box)
        moved = []
        if last is not None and last[0] == level:
            moved = [a for a in planes if last[1][a].start != box[a].start]
        slider = moved[0] if len(moved) == 1 else -1
        ranges = [_chunk_range(s, c) for s, c in zip(box, grid)]
        jobs: list[tuple[CachedArray, list[Chunk]]] = []
        behind: list[tuple[CachedArray, list[Chunk]]] = []
        if slider >= 0:  # the user steps along this axis: read along it
            assert last is not None
            p, c = box[slider].start, grid[slider]
            direction = 1 if p > last[1][slider].start else -1
            for d, margin, dest in ((direction, max(1, c // 4), jobs), (-direction, 1, behind)):
                near = {
                    q // c for q in range(p + d, p + d * (margin + 1), d) if 0 <= q < shape[slider]
                }
                for target in sorted(near - {p // c}):
                    axes = [
                        range(target, target + 1) if a == slider else r
                        for a, r in enumerate(ranges)
                    ]
                    dest.append((array, list(itertools.product(*axes))))
        coarser = self.levels[level + 1] if level + 1 < len(self.levels) else None
        if isinstance(coarser, CachedArray):
            cbox = _scale_box(box, shape, coarser.shape)
            cranges = [_chunk_range(s, c) for s, c in zip(cbox, coarser.read_chunks)]
            jobs.append((coarser, list(itertools.product(*cranges))))
        return jobs + behind


def _scale_box(
    box: tuple[slice, ...], shape: Sequence[int], coarse_shape: Sequence[int]
) -> tuple[slice, ...]:
    """``box`` of a level mapped onto a coarser level (whole voxels covering it)."""
    out = []
    for s, n, m in zip(box, shape, coarse_shape):
        f = n / m if m else 1.0
        count = len(range(s.start, s.stop, s.step))
        last = s.start + (count - 1) * s.step if count else s.start
        lo = min(int(s.start / f), m - 1)
        hi = min(int(last / f) + 1, m)
        out.append(slice(lo, max(hi, lo + 1), 1))
    return tuple(out)
