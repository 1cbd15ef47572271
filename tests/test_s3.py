"""OME-Zarr to and from an object store: moto's S3 server on loopback (no network).

The server and the ``AWS_*`` variables that point at it are the session fixture
``s3_server`` (conftest.py); every test gets a new bucket.  What is checked: the
store written at a URL is byte for byte the one written to disk, by threads or by
the workers of a cluster; its metadata is written after every chunk, the root's
last; a failed or cancelled write leaves no key; an existing store is replaced only
with ``overwrite``; the command line and the npe2 reader work with URLs.
"""

from __future__ import annotations

import socket
import threading

import dask.array as da
import nibabel as nib
import numpy as np
import pytest

from napari_zarrnii import (
    CancelledError,
    DestinationExistsError,
    ObjectStoreError,
    ReadOnlyStoreError,
    UnsupportedFormatError,
    ZarrNii,
)
from napari_zarrnii._cli import main, parse_storage_options
from napari_zarrnii._reader import get_reader
from napari_zarrnii.core.objectstore import is_metadata_key, metadata_order
from napari_zarrnii.core.omezarr import read_ome_zarr
from napari_zarrnii.core.pyramid import write_levels, write_pyramid

from .test_pyramid import image_with_channels_and_labels, make_image, random_data, store_bytes

s3fs = pytest.importorskip("s3fs")

# Closing a cluster while its comms wind down may leave sockets for the garbage
# collector; that is distributed's teardown, not something these writes leak.
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def _cli_options(s3) -> list[str]:
    """Credentials and endpoint as command-line storage options."""
    out = []
    for key, value in s3.storage_options.items():
        out += ["--storage-option", f"{key}={value}"]
    return out


@pytest.fixture
def nifti(tmp_path):
    vol = random_data((20, 40, 36), np.uint16)
    vol[:, :, :16] = 0  # some blocks (16 voxels wide) entirely 0: not written
    path = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(vol.transpose(2, 1, 0), np.diag([0.5, 0.5, 1.0, 1.0])), path)
    return path, vol


# -- the command line and the reader -----------------------------------------------------


def test_convert_to_s3_and_back_and_crop_on_the_command_line(
    tmp_path, s3_server, s3_bucket, nifti, capsys
):
    path, vol = nifti
    url = f"{s3_bucket}/brain.ome.zarr"
    write = ["--max-layer", "2", "--chunks", "16", "16", "16", "--no-progress"]
    assert main(["convert", str(path), url, *write, *_cli_options(s3_server)]) == 0
    assert f"wrote {url}" in capsys.readouterr().out
    (tmp_path / "local").mkdir()
    local = tmp_path / "local" / "brain.ome.zarr"
    assert main(["convert", str(path), str(local), *write]) == 0
    assert s3_server.read(url) == store_bytes(local)

    # the npe2 reader opens the URL (credentials and endpoint from the environment)
    reader = get_reader(url)
    assert reader is not None
    data, meta, kind = reader(url)[0]
    assert kind == "image" and len(data) == 3
    np.testing.assert_array_equal(np.asarray(data[0][...]), vol)
    for ours, theirs in zip(data, read_ome_zarr(local).levels, strict=True):
        np.testing.assert_array_equal(np.asarray(ours[...]), np.asarray(theirs.data[...]))
    assert meta["metadata"]["napari_zarrnii"]["source"] == url

    # back from the object store (the environment's credentials): as from the local store
    (tmp_path / "back").mkdir()
    back = tmp_path / "back" / "copy.ome.zarr"
    assert main(["convert", url, str(back), *write]) == 0
    assert main(["convert", str(local), str(tmp_path / "copy.ome.zarr"), *write]) == 0
    assert store_bytes(back) == store_bytes(tmp_path / "copy.ome.zarr")
    z = ZarrNii.from_ome_zarr(str(back))
    np.testing.assert_array_equal(np.asarray(z.darr).reshape(vol.shape), vol)

    # a crop from the object store to the object store
    crop = f"{s3_bucket}/crop.ome.zarr"
    box = ["--bbox", "2", "4", "6", "18", "30", "34"]
    assert main(["crop", url, crop, *box, *write, *_cli_options(s3_server)]) == 0
    assert main(["crop", str(local), str(tmp_path / "crop.ome.zarr"), *box, *write]) == 0
    assert s3_server.read(crop) == store_bytes(tmp_path / "crop.ome.zarr")
    assert main(["info", crop, *_cli_options(s3_server)]) == 0
    assert "16x26x28" in capsys.readouterr().out

    # an existing store is refused without --overwrite, in one line
    assert main(["convert", str(path), url, *write]) == 2
    assert "already exists" in capsys.readouterr().err


def _dead_endpoint() -> str:
    """A loopback address where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_credentials_and_endpoint_from_the_environment_or_storage_options(
    tmp_path, s3_server, s3_bucket, nifti, monkeypatch, capsys
):
    """The ``AWS_*`` variables, unless ``--storage-option`` says otherwise; the server
    sees which access key signed each request."""
    path, _ = nifti
    write = ["--max-layer", "1", "--no-progress"]

    def run(args, expect=0):
        # filesystems are cached by their options, not by the environment
        s3fs.S3FileSystem.clear_instance_cache()
        mark = len(s3_server.log.requests)
        assert main(args) == expect
        return s3_server.log.since(mark)

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key-from-env")
    sent = run(["convert", str(path), f"{s3_bucket}/env.ome.zarr", *write])
    assert len(sent) > 5 and {r.access_key for r in sent} == {"key-from-env"}
    assert {r.method for r in sent} >= {"PUT", "DELETE"}  # the probe key, put and deleted

    # options win: endpoint and key given on the command line, a dead endpoint in the
    # environment
    monkeypatch.setenv("AWS_ENDPOINT_URL", _dead_endpoint())
    options = ["--storage-option", f"endpoint_url={s3_server.endpoint}"]
    options += ["--storage-option", "key=key-from-option", "--storage-option", "secret=s"]
    sent = run(["convert", str(path), f"{s3_bucket}/options.ome.zarr", *write, *options])
    assert len(sent) > 5 and {r.access_key for r in sent} == {"key-from-option"}
    sent = run(["info", f"{s3_bucket}/options.ome.zarr", *options])
    assert sent and {r.access_key for r in sent} == {"key-from-option"}
    capsys.readouterr()

    # without them, the environment's endpoint: nothing answers there, said in one line
    # (one attempt: botocore would retry for seconds)
    once = ["--storage-option", "config_kwargs.retries.total_max_attempts=1"]
    assert not run(["convert", str(path), f"{s3_bucket}/dead.ome.zarr", *write, *once], 2)
    err = capsys.readouterr().err
    assert "cannot reach the object store" in err and "dead.ome.zarr" in err
    assert "Traceback" not in err
    assert not run(["info", f"{s3_bucket}/options.ome.zarr", *once], 2)
    assert "cannot reach the server" in capsys.readouterr().err
    with pytest.raises(ObjectStoreError, match=r"options\.ome\.zarr"):
        ZarrNii.from_ome_zarr(
            f"{s3_bucket}/options.ome.zarr",
            storage_options={"config_kwargs": {"retries": {"total_max_attempts": 1}}},
        )


def test_storage_options_parse_as_json_with_nested_keys():
    assert parse_storage_options(
        ["anon=true", "endpoint_url=http://h:9000", "client_kwargs.region_name=eu", "n=3"]
    ) == {
        "anon": True,
        "endpoint_url": "http://h:9000",
        "client_kwargs": {"region_name": "eu"},
        "n": 3,
    }
    assert parse_storage_options(['client_kwargs={"verify": false}']) == {
        "client_kwargs": {"verify": False}
    }
    for bad in (["novalue"], ["=x"], ["a=1", "a.b=2"]):
        with pytest.raises(ValueError, match="storage-option"):
            parse_storage_options(bad)


# -- the same store, wherever it is written ----------------------------------------------


def test_s3_store_is_the_local_store_by_threads_and_on_a_cluster(
    tmp_path, s3_server, s3_bucket, dask_client
):
    image = image_with_channels_and_labels("dask")
    options = {"max_layer": 2, "chunks": 16}
    local = write_pyramid(image, tmp_path / "img.ome.zarr", **options)
    want = store_bytes(local)
    assert any(k.startswith("labels/cells/2/") for k in want)
    threads = f"{s3_bucket}/threads/img.ome.zarr"
    mark = len(s3_server.log.requests)
    assert write_pyramid(image, threads, **options) == threads
    sent = s3_server.log.since(mark)
    # the workers get the endpoint and credentials with each task, not from their
    # environment
    cluster = f"{s3_bucket}/cluster/img.ome.zarr"
    write_pyramid(
        image,
        cluster,
        client=dask_client,
        storage_options={"compressor": "default", **s3_server.storage_options},
        **options,
    )
    got = s3_server.read(threads)
    assert got == want
    assert s3_server.read(cluster) == want

    # every key put once; a chunk read back (to build the next level) is one GET,
    # without a HEAD before it
    prefix = f"/{s3_bucket.removeprefix('s3://')}/threads/img.ome.zarr/"
    puts = [r.path[len(prefix) :] for r in sent if r.method == "PUT" and r.path.startswith(prefix)]
    assert sorted(k for k in puts if not k.startswith(".zarrnii-probe")) == sorted(got)
    assert [r.path for r in sent if r.method == "HEAD"] == [prefix[:-1]]  # exists?
    assert all(r.status < 400 for r in sent if r.method in ("PUT", "DELETE"))

    # the workers may have no AWS_* variables (a cluster started before them): the
    # options travel with the arrays read
    back = read_ome_zarr(cluster, storage_options=s3_server.storage_options)
    assert list(back.labels) == ["cells"] and back.num_levels == 3
    for ours, theirs in zip(back.levels, read_ome_zarr(local).levels, strict=True):
        np.testing.assert_array_equal(np.asarray(ours.data[...]), np.asarray(theirs.data[...]))

    # the levels of a store on S3, written as they are, from S3 to S3 on the cluster
    again = f"{s3_bucket}/again/img.ome.zarr"
    write_levels(
        back, again, chunks=16, client=dask_client, storage_options=s3_server.storage_options
    )
    write_levels(read_ome_zarr(local), tmp_path / "again.ome.zarr", chunks=16)
    assert s3_server.read(again) == store_bytes(tmp_path / "again.ome.zarr")

    # NGFF 0.4 (zarr v2: .zarray, .zgroup, .zattrs) on the cluster
    image = make_image(random_data((16, 32, 32), np.uint16))
    v2 = {**options, "ngff_version": "0.4"}
    (tmp_path / "v2").mkdir()
    local = write_pyramid(image, tmp_path / "v2" / "img.ome.zarr", **v2)
    cluster = f"{s3_bucket}/v2/img.ome.zarr"
    write_pyramid(
        image, cluster, client=dask_client, storage_options=s3_server.storage_options, **v2
    )
    assert s3_server.read(cluster) == store_bytes(local)
    assert ".zarray" in "".join(store_bytes(local))


def test_zarrnii_reads_and_writes_urls_with_storage_options(s3_server, s3_bucket):
    data = random_data((16, 32, 32), np.uint16)
    url = f"{s3_bucket}/api.ome.zarr"
    # array options and filesystem options in one mapping, as zarrnii and fsspec users
    # each write them
    out = ZarrNii.from_array(data).to_ome_zarr(
        url, max_layer=1, storage_options={"compressor": None, **s3_server.storage_options}
    )
    assert out == url
    mark = len(s3_server.log.requests)
    z = ZarrNii.from_ome_zarr(url, storage_options=s3_server.storage_options)
    np.testing.assert_array_equal(np.asarray(z.darr), data)
    # one GET per document and chunk read, without a HEAD before each
    sent = s3_server.log.since(mark)
    assert sum(r.method == "GET" for r in sent) >= 2 and not any(r.method == "HEAD" for r in sent)
    assert z.num_levels == 2
    meta = s3_server.read(url)["0/zarr.json"]
    assert b"blosc" not in meta  # compressor=None reached the arrays


# -- order and cleanliness --------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_metadata_is_written_after_every_chunk_the_root_last(s3_server, s3_bucket, version):
    """Every PUT, in the order the server received it; a reader polling the bucket
    meanwhile never sees a metadata document before all chunks are there."""
    url = f"{s3_bucket}/order.ome.zarr"
    snapshots: list[list[str]] = []
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.01):  # a listing every few ms: the write takes under 1 s
            snapshots.append(s3_server.keys(url))

    poller = threading.Thread(target=poll)
    mark = len(s3_server.log.requests)
    poller.start()
    try:
        write_pyramid(
            image_with_channels_and_labels("numpy"),
            url,
            max_layer=2,
            chunks=16,
            ngff_version=version,
            workers=2,
        )
    finally:
        done.set()
        poller.join()
    root = "/" + url.removeprefix("s3://") + "/"
    sent = [r for r in s3_server.log.since(mark) if r.path.startswith(root)]
    keys = [r.path[len(root) :] for r in sent if r.method == "PUT"]
    probes = [k for k in keys if k.startswith(".zarrnii-probe")]
    assert len(probes) == 1 and keys[0] == probes[0]  # the probe goes first ...
    assert [r.path[len(root) :] for r in sent if r.method == "DELETE"] == probes
    keys = keys[1:]
    final = s3_server.keys(url)
    assert sorted(keys) == final  # ... and is gone; every key was written once
    is_meta = [is_metadata_key(k) for k in keys]
    first_meta = is_meta.index(True)
    assert not any(is_meta[:first_meta]) and all(is_meta[first_meta:])
    assert keys[first_meta:] == metadata_order(keys[first_meta:])
    assert keys[-1] == ("zarr.json" if version == "0.5" else ".zattrs")
    data_keys = {k for k in final if not is_metadata_key(k)}
    assert len(data_keys) > 30
    seen_meta = [s for s in snapshots if any(is_metadata_key(k) for k in s)]
    for snapshot in seen_meta:
        assert data_keys <= set(snapshot)
    assert len(snapshots) > len(seen_meta)  # the poller saw the write under way


def _bad_source() -> da.Array:
    """2 MiB that fail at their last chunk: more than one task (of about 1 MiB), so
    blocks before the failing one are written first when tasks run in order."""

    def bad(block, block_info=None):
        if block_info[0]["chunk-location"] == (1, 3, 3):
            raise ValueError("unreadable chunk")
        return block

    data = random_data((64, 128, 128), np.uint16)
    return da.from_array(data, chunks=32).map_blocks(bad, dtype=data.dtype)


def _chunks_put(s3_server, mark: int, url: str) -> int:
    """How many chunks were put under ``url`` since ``mark``; they were deleted after."""
    root = "/" + url.removeprefix("s3://") + "/"
    sent = s3_server.log.since(mark)
    put = [i for i, r in enumerate(sent) if r.method == "PUT" and r.path.startswith(root)]
    put = [i for i in put if not is_metadata_key(sent[i].path) and "probe" not in sent[i].path]
    if put:  # deleted one by one, or in batches (POST ?delete)
        deletes = [i for i, r in enumerate(sent) if r.method in ("DELETE", "POST")]
        assert deletes and max(deletes) > max(put)
    return len(put)


@pytest.mark.parametrize("where", ["threads", "cluster"])
def test_a_failed_or_cancelled_write_leaves_no_key(s3_server, s3_bucket, dask_client, where):
    kwargs = {"client": dask_client, "storage_options": s3_server.storage_options}
    kwargs = kwargs if where == "cluster" else {}
    url = f"{s3_bucket}/failed.ome.zarr"
    mark = len(s3_server.log.requests)
    with pytest.raises(ValueError, match="unreadable chunk"):
        # one thread: the tasks before the failing one are written
        workers = {} if where == "cluster" else {"workers": 1}
        write_pyramid(make_image(_bad_source()), url, max_layer=1, chunks=32, **workers, **kwargs)
    assert s3_server.keys(s3_bucket) == []
    put = _chunks_put(s3_server, mark, url)  # written before the failure, then deleted
    assert put >= 1 or where == "cluster"  # workers may take the failing task first

    event = threading.Event()
    seen = []

    def progress(done, total, message):
        seen.append(done)
        event.set()

    data = random_data((16, 32, 32), np.uint16)
    mark = len(s3_server.log.requests)
    with pytest.raises(CancelledError):
        write_pyramid(
            make_image(data), url, max_layer=2, chunks=8, progress=progress, cancel=event, **kwargs
        )
    assert seen[-1] == 1
    assert s3_server.keys(s3_bucket) == []
    assert _chunks_put(s3_server, mark, url) >= 1  # the first block, then deleted


def test_an_existing_store_is_replaced_only_with_overwrite(s3_server, s3_bucket):
    url = f"{s3_bucket}/img.ome.zarr"
    old = random_data((16, 32, 32), np.uint16, seed=1) + 1  # no block entirely 0
    write_pyramid(make_image(old), url, max_layer=3, chunks=16)
    before = s3_server.read(url)
    with pytest.raises(DestinationExistsError, match=r"img\.ome\.zarr"):
        write_pyramid(make_image(old), url, max_layer=1)
    assert s3_server.read(url) == before

    new = random_data((16, 32, 32), np.uint16, seed=2)
    new[:, :16] = 0  # blocks not written: the old ones must not show through
    write_pyramid(make_image(new), url, max_layer=1, chunks=16, overwrite=True)
    keys = s3_server.keys(url)
    assert not any(k.startswith(("2/", "3/")) for k in keys)
    back = read_ome_zarr(url)
    assert back.num_levels == 2
    np.testing.assert_array_equal(np.asarray(back.levels[0].data[...]), new)

    # anything under the prefix counts as existing
    s3_server.filesystem().pipe_file(f"{s3_bucket.removeprefix('s3://')}/other/notes.txt", b"x")
    with pytest.raises(DestinationExistsError):
        write_pyramid(make_image(new), f"{s3_bucket}/other", max_layer=1)


def test_destinations_that_cannot_be_written_are_refused_first(s3_server, s3_bucket, tmp_path):
    image = make_image(random_data((8, 16, 16), np.uint16))
    with pytest.raises(ReadOnlyStoreError, match="read-only"):
        write_pyramid(image, "http://127.0.0.1:9/x.ome.zarr")
    with pytest.raises(UnsupportedFormatError, match="names a bucket"):
        write_pyramid(image, s3_bucket)
    with pytest.raises(UnsupportedFormatError, match=r"\.ozx"):
        write_pyramid(image, f"{s3_bucket}/x.ozx")
    z = ZarrNii.from_array(np.zeros((8, 16, 16), np.uint16))
    with pytest.raises(ReadOnlyStoreError, match="NIfTI"):
        z.to_nifti(f"{s3_bucket}/x.nii.gz")
    with pytest.raises(ReadOnlyStoreError, match="no-such-bucket"):
        write_pyramid(image, "s3://no-such-bucket-zarrnii/x.ome.zarr")
    assert s3_server.keys(s3_bucket) == []


# -- no credentials -------------------------------------------------------------------------


def no_credentials_env(tmp_path) -> dict[str, str]:
    """This environment with the endpoint but no credentials for botocore to find (nor
    an instance-metadata server to ask)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_ENDPOINT_URL"] = os.environ["AWS_ENDPOINT_URL"]
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-credentials")
    env["AWS_CONFIG_FILE"] = str(tmp_path / "no-config")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def test_no_credentials_is_said_in_one_line_before_anything_is_written(
    s3_server, s3_bucket, tmp_path, nifti
):
    """The command line, in a process whose environment has no credentials."""
    import subprocess
    import sys

    path, _ = nifti
    there = f"{s3_bucket}/there.ome.zarr"
    assert main(["convert", str(path), there, "--max-layer", "1", "--no-progress"]) == 0
    keys = s3_server.keys(s3_bucket)
    cli = [
        sys.executable,
        "-c",
        "import sys; from napari_zarrnii._cli import main; sys.exit(main())",
    ]
    env = no_credentials_env(tmp_path)
    for args in (
        ["convert", str(path), f"{s3_bucket}/x.ome.zarr", "--no-progress"],
        ["info", there],
    ):
        run = subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 2, run.stderr
        assert "no credentials" in run.stderr and "AWS_ACCESS_KEY_ID" in run.stderr
        assert "Traceback" not in run.stderr
    assert s3_server.keys(s3_bucket) == keys  # nothing written, nothing removed
