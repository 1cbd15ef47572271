"""Blocks on a dask.distributed cluster: the executor behind ``client=``.

``distributed`` is optional: it is imported only when a client is given.  The
scheduler of :mod:`.engine` is the same as with threads; only where a block runs
changes.  Each block is one ``client.submit(run_block, task, pure=False)``: the worker
reads the block's input (the previous level from the store, or the block's part of
the source), writes its output into the store folder and returns a small
:class:`~.engine.BlockResult`.

Workers therefore need ``napari_zarrnii`` importable and the destination's folder on
a filesystem they share with the client (always true for a ``LocalCluster``).  A
source is sent to the workers block by block: an in-memory array as the block's
values, a dask array as the block's sub-graph, a zarr array or a lazy file reader as a
reference to its storage (which the workers must be able to read).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from ..._errors import MissingDependencyError
from .engine import BlockExecutor, BlockTask, run_block

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ["DistributedExecutor"]

log = logging.getLogger(__name__)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise MissingDependencyError(
            "writing on a cluster (client=...) needs dask.distributed: "
            "pip install 'napari-zarrnii[distributed]'"
        ) from exc
    return distributed


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
        self._completed = distributed.as_completed()

    @property
    def workers(self) -> int:
        return self._workers

    def submit(self, task: BlockTask) -> Future:
        future: Future = self._client.submit(run_block, task, pure=False)
        self._completed.add(future)
        return future

    def wait_any(self, futures: Collection[Future]) -> Collection[Future]:
        done: list[Future] = self._completed.next_batch(block=True)
        return done

    def drain(self, futures: Collection[Future]) -> None:
        # A running task cannot be stopped: wait until none can still write into the
        # folder that is about to be removed (at most the blocks in flight).
        self._distributed.wait(list(futures))

    def close(self) -> None:
        self._completed.clear()
