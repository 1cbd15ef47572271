"""Writing pyramids on a dask.distributed cluster: same bytes as threads, same safety.

A LocalCluster of two worker processes (one thread each) is started once for the
session (``dask_client`` in conftest.py); the last test starts a real ``dask
scheduler`` and two ``dask worker`` processes on loopback ports.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import dask.array as da
import nibabel as nib
import numpy as np
import pytest
import zarr

import napari_zarrnii
from napari_zarrnii import CancelledError, ClusterError, MissingDependencyError, ZarrNii
from napari_zarrnii._cli import main
from napari_zarrnii.core.omezarr import read_ome_zarr
from napari_zarrnii.core.pyramid import write_levels, write_pyramid

from .test_pyramid import image_with_channels_and_labels, make_image, random_data, store_bytes

distributed = pytest.importorskip("distributed")

# Closing a cluster while its comms wind down may leave sockets for the garbage
# collector; that is distributed's teardown, not something these writes leak.
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture
def client(dask_client):
    """The session's LocalCluster (tests/conftest.py)."""
    return dask_client


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


def test_cluster_tasks_group_more_chunks_and_write_the_same_bytes(tmp_path, client):
    """Tasks on a cluster aim for CLUSTER_TASK_BYTES of input: fewer tasks, same store."""
    data = random_data((64, 128, 128), np.uint16)  # 2 MiB, 32 chunks of 32^3 x 4
    image = make_image(da.from_array(data, chunks=32))
    threaded, clustered = _twin(tmp_path, "grouped.zarr")
    totals: dict[str, int] = {}
    for out, kwargs in ((threaded, {}), (clustered, {"client": client})):
        key = "cluster" if kwargs else "threads"
        write_pyramid(
            image,
            out,
            max_layer=2,
            chunks=32,
            progress=lambda d, t, m, key=key: totals.__setitem__(key, t),
            **kwargs,
        )
    assert totals["cluster"] < totals["threads"]
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


def test_a_failing_block_on_a_worker_fails_the_write_and_leaves_nothing(
    tmp_path, client, monkeypatch
):
    from napari_zarrnii.core.pyramid import cluster

    def bad(block, block_info=None):
        if block_info[0]["chunk-location"] == (1, 3, 3):
            raise ValueError("unreadable chunk")
        return block

    # 2 MiB: several tasks (about 1 MiB each), so others are in flight when one fails
    monkeypatch.setattr(cluster, "CLUSTER_TASK_BYTES", 2**20)
    data = random_data((64, 128, 128), np.uint16)
    source = da.from_array(data, chunks=32).map_blocks(bad, dtype=data.dtype)
    with pytest.raises(ValueError, match="unreadable chunk"):
        write_pyramid(
            make_image(source), tmp_path / "x.zarr", max_layer=1, chunks=32, client=client
        )
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


def test_active_client_is_the_users_current_client(tmp_path, client):
    """``client='active'``: the client a user made current, or the default one."""
    data = random_data((16, 40, 36), np.uint16)
    z = ZarrNii.from_array(data)
    threaded, clustered = _twin(tmp_path, "active.ome.zarr")
    z.to_ome_zarr(threaded, max_layer=2, chunks=8)
    before = _tasks_run(client)
    with client.as_current():
        z.to_ome_zarr(clustered, max_layer=2, chunks=8, client="active")
    assert _tasks_run(client) > before  # the blocks ran on the cluster
    assert store_bytes(clustered) == store_bytes(threaded)

    # a default client, as ``Client(cluster)`` makes one, found without as_current()
    user = distributed.Client(client.scheduler.address, set_as_default=True)
    try:
        before = _tasks_run(client)
        z.to_ome_zarr(tmp_path / "default.ome.zarr", max_layer=2, chunks=8, client="active")
        assert _tasks_run(client) > before
    finally:
        user.close()
    with pytest.raises(ClusterError, match=r"no dask\.distributed client is active"):
        z.to_ome_zarr(tmp_path / "none.ome.zarr", client="active")
    assert not (tmp_path / "none.ome.zarr").exists()


def _tasks_run(client) -> int:
    """How many tasks the cluster's workers have executed."""
    counts = client.run(lambda dask_worker: dask_worker.state.executed_count)
    return sum(counts.values())


def _console_script() -> list[str]:
    """``napari-zarrnii`` as installed beside this Python (else the same entry point)."""
    found = shutil.which("napari-zarrnii", path=str(Path(sys.executable).parent))
    if found:
        return [found]
    return [
        sys.executable,
        "-c",
        "import sys; from napari_zarrnii._cli import main; sys.exit(main())",
    ]


def _without_aws(env: dict[str, str], tmp_path: Path | None = None) -> dict[str, str]:
    """``env`` without ``AWS_*``; with ``tmp_path``, also no credential files for
    botocore to find and no instance-metadata server to ask."""
    out = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    if tmp_path is not None:
        out["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-credentials")
        out["AWS_CONFIG_FILE"] = str(tmp_path / "no-config")
        out["AWS_EC2_METADATA_DISABLED"] = "true"
    return out


def test_convert_on_a_scheduler_and_workers_started_from_the_command_line(
    tmp_path, s3_server, s3_bucket
):
    """``dask scheduler``, two ``dask worker`` processes and ``napari-zarrnii convert
    --scheduler``: the same store as a conversion in threads, on disk and on S3."""
    vol = random_data((20, 40, 36), np.uint16)
    vol[:, :, :16] = 0  # some blocks (16 voxels wide) entirely 0: not written
    nifti = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(vol.transpose(2, 1, 0), np.diag([0.5, 0.5, 1.0, 1.0])), nifti)
    write = ["--max-layer", "2", "--chunks", "8", "16", "16", "--no-progress"]

    src = str(Path(napari_zarrnii.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    # the workers find the object store only through the options sent with each task
    worker_env = _without_aws(env, tmp_path)
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
                    env=worker_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        with distributed.Client(address, timeout=60, set_as_default=False) as c:
            c.wait_for_workers(2, timeout=60)
            workers = {w["host"] for w in c.scheduler_info()["workers"].values()}
            ran = []
            (tmp_path / "cluster").mkdir()
            on_disk = tmp_path / "cluster" / "brain.ome.zarr"
            url = f"{s3_bucket}/brain.ome.zarr"
            options = []
            for key, value in s3_server.storage_options.items():
                options += ["--storage-option", f"{key}={value}"]
            # the console script, to the object store; the environment has no AWS_*
            before = _tasks_run(c)
            run = subprocess.run(
                [*_console_script(), "convert", str(nifti), url, *write, *options,
                 "--scheduler", address],
                env=_without_aws(env),
                capture_output=True,
                text=True,
                timeout=120,
            )  # fmt: skip
            assert run.returncode == 0, run.stderr
            assert f"wrote {url}" in run.stdout
            ran.append(_tasks_run(c) - before)
            # the same command in this process, to a folder the workers share
            before = _tasks_run(c)
            assert main(["convert", str(nifti), str(on_disk), *write, "--scheduler", address]) == 0
            ran.append(_tasks_run(c) - before)
            # credentials in the client's environment only: its probe passes, the
            # workers cannot sign a request; said in one line, nothing left behind
            lost = f"{s3_bucket}/lost.ome.zarr"
            run = subprocess.run(
                [*_console_script(), "convert", str(nifti), lost, *write, "--scheduler", address],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert run.returncode == 2, run.stderr
            assert "no credentials" in run.stderr and "on 127.0.0.1" not in run.stderr
            assert "(process " in run.stderr and "Traceback" not in run.stderr
            assert s3_server.keys(lost) == []
            c.shutdown()  # the scheduler stops its workers, then itself
        assert workers == {"127.0.0.1"}
        # the blocks ran on the workers (grouped into tasks: at least one per level)
        assert min(ran) >= 3

        # the same conversion in threads, in this process
        (tmp_path / "threads").mkdir()
        threaded = tmp_path / "threads" / "brain.ome.zarr"
        assert main(["convert", str(nifti), str(threaded), *write]) == 0
        want = store_bytes(threaded)
        assert {k.split("/")[0] for k in want} >= {"0", "1", "2"}
        assert store_bytes(on_disk) == want
        assert s3_server.read(url) == want
    finally:
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
