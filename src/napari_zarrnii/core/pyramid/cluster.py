"""Blocks on a dask.distributed cluster: the executor behind ``client=``.

``distributed`` is optional: it is imported only when a client is given.  The
scheduler of :mod:`.engine` is the same as with threads; only where a block runs
changes.  Each block is one ``client.submit(run_block, task, pure=False)``: the worker
reads the block's input (the previous level from the store, or the block's part of
the source), writes its output into the store folder and returns a small
:class:`~.engine.BlockResult`.

Workers therefore need ``napari_zarrnii`` importable, and either the destination's
folder on a filesystem they share with the client (always true for a
``LocalCluster``) or an object-store destination they can reach (its URL and storage
options travel with each task; credentials otherwise come from the environment of
each worker).  A source is sent to the workers block by block: an in-memory array as
the block's values, a dask array as the block's sub-graph, a zarr array or a lazy file
reader as a reference to its storage (which the workers must be able to read).

Which client: :func:`resolve_client` turns ``client=`` into one (``"active"`` is the
client already current in this process); :func:`connect` opens and closes one for
a scheduler address (the command line's ``--scheduler``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING, Any

from ..._errors import ClusterError, MissingDependencyError
from .engine import BlockExecutor, BlockTask, run_block

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = [
    "ACTIVE_CLIENT",
    "CLUSTER_TASK_BYTES",
    "ClientArg",
    "DistributedExecutor",
    "connect",
    "resolve_client",
]

#: ``client=ACTIVE_CLIENT`` runs on the dask.distributed client already current in
#: this process (``distributed.Client.current()``).
ACTIVE_CLIENT = "active"

#: What ``client=`` takes: a ``distributed.Client``, ``"active"``, or None for threads.
ClientArg = Any

log = logging.getLogger(__name__)

#: Input bytes a block task aims for on a cluster.  Each task costs a round trip
#: through the scheduler, pickling, and a worker thread switch, so tasks there are
#: larger than in threads (1 MiB): with 128³ uint16 chunks, level 0 is written 4
#: chunks per task instead of 1.  At 1024³ on 2 local worker processes this took the
#: run from 1.35x to 1.23x the threaded time (docs/benchmarks.md).  A worker holds at
#: most two tasks per thread (input plus output), well under its memory.
CLUSTER_TASK_BYTES = 16 * 2**20


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise MissingDependencyError(
            "writing on a cluster (client=...) needs dask.distributed: "
            "pip install 'napari-zarrnii[distributed]'"
        ) from exc
    return distributed


def resolve_client(client: ClientArg) -> Client | None:
    """The ``distributed.Client`` that ``client=`` names, or None (threads).

    Parameters
    ----------
    client
        None (threads in this process), a ``distributed.Client``, or ``"active"``:
        the client current in this process (the last one created, or the one of a
        ``with client.as_current():`` block).

    Raises
    ------
    ClusterError
        ``"active"`` but no client is current.
    MissingDependencyError
        dask.distributed is not installed.
    TypeError
        Anything else (a scheduler address: connect a ``Client`` to it first).
    """
    if client is None:
        return None
    if isinstance(client, str):
        if client != ACTIVE_CLIENT:
            raise TypeError(
                f"client must be a distributed.Client or {ACTIVE_CLIENT!r}, not {client!r}; "
                f"for a scheduler address use distributed.Client({client!r})"
            )
        distributed = _import_distributed()
        try:
            found: Client = distributed.Client.current(allow_global=True)
        except ValueError as exc:
            raise ClusterError(
                f"client={ACTIVE_CLIENT!r}: no dask.distributed client is active in this "
                "process; create one (distributed.Client(...)) or pass it as client="
            ) from exc
        return found
    distributed = _import_distributed()
    if not isinstance(client, distributed.Client):
        raise TypeError(
            f"client must be a distributed.Client or {ACTIVE_CLIENT!r}, "
            f"not {type(client).__name__}"
        )
    return client


@contextlib.contextmanager
def connect(address: str, *, timeout: float = 30.0) -> Iterator[Client]:
    """A client connected to the scheduler at ``address``, closed on exit.

    It is not made the process's default client: only what it is passed to runs
    on the cluster.

    Raises
    ------
    ClusterError
        No scheduler answers at ``address`` within ``timeout`` seconds.
    MissingDependencyError
        dask.distributed is not installed.
    """
    distributed = _import_distributed()
    try:
        client = distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(
            f"cannot reach the dask scheduler at {address} within {timeout:g} s ({exc})"
        ) from exc
    try:
        nthreads = sum(client.nthreads().values())
        log.info("connected to %s: %d worker threads", address, nthreads)
        yield client
    finally:
        client.close()


class DistributedExecutor(BlockExecutor["Future"]):
    """Runs block tasks on the workers of a ``distributed.Client``.

    At most two blocks per worker thread are in flight; finished blocks are collected
    with ``distributed.as_completed`` so their dependents are submitted at once.

    Parameters
    ----------
    client
        A connected ``distributed.Client``.
    """

    ships_tasks = True

    def __init__(self, client: Client) -> None:
        distributed = _import_distributed()
        if not isinstance(client, distributed.Client):
            raise TypeError(f"client must be a distributed.Client, not {type(client).__name__}")
        self._distributed = distributed
        self._client = client
        nthreads = client.nthreads()
        self._workers = max(1, sum(nthreads.values()))
        if not nthreads:
            log.warning("the cluster has no workers yet: blocks wait until one connects")
        # the client's own loop: it need not be the process's default client
        self._completed = distributed.as_completed(loop=client.loop)

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def task_bytes(self) -> int:
        return CLUSTER_TASK_BYTES

    def submit(self, task: BlockTask) -> Future:
        future: Future = self._client.submit(run_block, task, pure=False)
        self._completed.add(future)
        return future

    def wait_any(self, futures: Collection[Future]) -> Collection[Future]:
        done: list[Future] = self._completed.next_batch(block=True)
        return done

    def drain(self, futures: Collection[Future]) -> None:
        # A running task cannot be stopped: wait until none can still write into the
        # folder or URL prefix that is about to be removed (at most the blocks in
        # flight).  distributed.wait() uses the current client: make it ours.
        with self._client.as_current():
            self._distributed.wait(list(futures))

    def close(self) -> None:
        self._completed.clear()
