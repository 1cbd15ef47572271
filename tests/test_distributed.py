"""Writing pyramids on a dask.distributed cluster: same bytes as threads, same safety.

A LocalCluster of two worker processes (one thread each) is started once for the
module; the last test starts a real ``dask scheduler`` and two ``dask worker``
processes on loopback ports.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr

import napari_zarrnii
from napari_zarrnii import CancelledError, MissingDependencyError
from napari_zarrnii.core.omezarr import read_ome_zarr
from napari_zarrnii.core.pyramid import write_levels, write_pyramid

from .test_pyramid import image_with_channels_and_labels, make_image, random_data, store_bytes

distributed = pytest.importorskip("distributed")

# Closing a cluster while its comms wind down may leave sockets for the garbage
# collector; that is distributed's teardown, not something these writes leak.
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def _zarr_source(tmp_path: Path, data: np.ndarray) -> zarr.Array:
    """A zarr array on disk, as a crop or a conversion reads it."""
    return zarr.create_array(str(tmp_path / "source.zarr"), data=data, chunks=(1, 8, 16, 16))


def _twin(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """Two destinations with the same store name (the name is written in the metadata)."""
    (tmp_path / "threads").mkdir(exist_ok=True)
    (tmp_path / "cluster").mkdir(exist_ok=True)
    return tmp_path / "threads" / name, tmp_path / "cluster" / name


@pytest.mark.parametrize("kind", ["numpy", "dask", "zarr"])
def test_cluster_writes_the_same_bytes_as_threads(tmp_path, client, kind):
    image = image_with_channels_and_labels("numpy" if kind == "zarr" else kind)
    if kind == "zarr":
        source = _zarr_source(tmp_path, image.levels[0].data)
        image = image.replace(levels=[dataclasses.replace(image.levels[0], data=source)])
    threaded, clustered = _twin(tmp_path, "img.ome.zarr")
    calls = []
    write_pyramid(image, threaded, max_layer=2, chunks=8)
    write_pyramid(
        image,
        clustered,
        max_layer=2,
        chunks=8,
        client=client,
        progress=lambda d, t, m: calls.append((d, t)),
    )
    want = store_bytes(threaded)
    assert any(k.startswith("labels/cells/2/") for k in want)  # labels, every level
    assert store_bytes(clustered) == want
    assert [d for d, _ in calls] == list(range(1, calls[-1][1] + 1))
    back = read_ome_zarr(clustered)
    assert back.num_channels == 2 and list(back.labels) == ["cells"]


def test_cluster_writes_levels_as_they_are_and_v2_shards_alike(tmp_path, client):
    data = random_data((24, 40, 36), np.uint16)
    image = make_image(da.from_array(data, chunks=(8, 16, 16)))
    threaded, clustered = _twin(tmp_path, "s.zarr")
    for out, kwargs in ((threaded, {}), (clustered, {"client": client})):
        write_pyramid(image, out, max_layer=2, chunks=8, shards=16, **kwargs)
    assert store_bytes(clustered) == store_bytes(threaded)

    multiscale = read_ome_zarr(threaded)
    threaded, clustered = _twin(tmp_path, "v2.zarr")
    for out, kwargs in ((threaded, {}), (clustered, {"client": client})):
        write_levels(multiscale, out, ngff_version="0.4", chunks=8, **kwargs)
    assert store_bytes(clustered) == store_bytes(threaded)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_cancel_on_the_cluster_leaves_nothing(tmp_path, client):
    target = tmp_path / "img.zarr"
    previous = random_data((16, 32, 32), np.uint16, seed=1)
    write_pyramid(make_image(previous), target, max_layer=1)
    event = threading.Event()
    seen = []

    def progress(done, total, message):
        seen.append(done)
        if done == 3:
            event.set()

    data = random_data((16, 32, 32), np.uint16, seed=2)
    with pytest.raises(CancelledError):
        write_pyramid(
            make_image(data),
            target,
            max_layer=2,
            chunks=4,
            overwrite=True,
            progress=progress,
            cancel=event,
            client=client,
        )
    assert seen[-1] == 3
    time.sleep(0.5)  # a worker still writing would recreate the folder now
    assert _leftovers(tmp_path) == ["img.zarr"]
    np.testing.assert_array_equal(np.asarray(read_ome_zarr(target).levels[0].data[...]), previous)


def test_a_failing_block_on_a_worker_fails_the_write_and_leaves_nothing(tmp_path, client):
    def bad(block, block_info=None):
        if block_info[0]["chunk-location"] == (1, 1, 1):
            raise ValueError("unreadable chunk")
        return block

    data = random_data((16, 32, 32), np.uint16)
    source = da.from_array(data, chunks=8).map_blocks(bad, dtype=data.dtype)
    with pytest.raises(ValueError, match="unreadable chunk"):
        write_pyramid(make_image(source), tmp_path / "x.zarr", max_layer=1, client=client)
    time.sleep(0.5)
    assert _leftovers(tmp_path) == []


def test_client_needs_distributed_and_a_client(tmp_path, monkeypatch):
    image = make_image(np.zeros((8, 8, 8), np.uint8))
    with pytest.raises(TypeError, match=r"distributed\.Client"):
        write_pyramid(image, tmp_path / "a.zarr", client="tcp://127.0.0.1:8786")
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match="distributed"):
        write_pyramid(image, tmp_path / "b.zarr", client=object())
    assert _leftovers(tmp_path) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_scheduler_and_workers_started_from_the_command_line(tmp_path):
    env = dict(os.environ)
    src = str(Path(napari_zarrnii.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask_cli = [sys.executable, "-m", "dask"]
    common = ["--no-dashboard"]
    # one thread each; no nanny process: the test starts three processes, not five
    worker_options = ["--nthreads", "1", "--host", "127.0.0.1", "--no-nanny"]
    log = (tmp_path / "cluster.log").open("w")
    procs = [
        subprocess.Popen(
            [*dask_cli, "scheduler", "--host", "127.0.0.1", "--port", str(port), *common],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    ]
    try:
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [*dask_cli, "worker", address, *worker_options, *common],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        with distributed.Client(address, timeout=60) as c:
            c.wait_for_workers(2, timeout=60)
            image = image_with_channels_and_labels("dask")
            threaded, clustered = _twin(tmp_path, "cli.zarr")
            write_pyramid(image, threaded, max_layer=2, chunks=8)
            write_pyramid(image, clustered, max_layer=2, chunks=8, client=c)
            workers = {w["host"] for w in c.scheduler_info()["workers"].values()}
            c.shutdown()  # the scheduler stops its workers, then itself
        assert workers == {"127.0.0.1"}
        assert store_bytes(clustered) == store_bytes(threaded)
    finally:
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
