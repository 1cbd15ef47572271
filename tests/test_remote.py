"""Reading over HTTP from a loopback server, as from a remote store."""

from __future__ import annotations

import functools
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

pytest.importorskip("aiohttp", reason="fsspec's HTTP filesystem needs aiohttp")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def http_root(tmp_path):
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_read_over_http(http_root, version):
    from napari_zarrnii._reader import get_reader
    from napari_zarrnii.core.omezarr import read_ome_zarr

    from .conftest import ramp, write_ngff_store

    root, url = http_root
    data = ramp((2, 8, 32, 32))
    _, levels = write_ngff_store(
        root / "remote.ome.zarr",
        version=version,
        data=data,
        omero={"channels": [{"label": "a", "color": "FF0000"}, {"label": "b", "color": "00FF00"}]},
    )
    image = read_ome_zarr(f"{url}/remote.ome.zarr")
    assert image.num_levels == 3
    np.testing.assert_array_equal(np.asarray(image.levels[1].data[...]), levels[1])
    reader = get_reader(f"{url}/remote.ome.zarr")
    assert reader is not None
    layers = reader(f"{url}/remote.ome.zarr")
    assert [ly[1]["name"] for ly in layers] == ["a", "b"]
    np.testing.assert_array_equal(np.asarray(layers[1][0][0][3, 4:6, 5]), data[1, 3, 4:6, 5])


def test_remote_store_is_read_only(http_root):
    from napari_zarrnii import ReadOnlyStoreError
    from napari_zarrnii.core.metadata import write_channels
    from napari_zarrnii.core.model import ChannelInfo

    from .conftest import ramp, write_ngff_store

    root, url = http_root
    write_ngff_store(
        root / "ro.ome.zarr",
        version="0.4",
        data=ramp((8, 8)),
        n_levels=1,
        axes=(("y", "space", None), ("x", "space", None)),
    )
    with pytest.raises(ReadOnlyStoreError):
        write_channels(f"{url}/ro.ome.zarr", [ChannelInfo("x")])


def test_missing_remote_store_is_declined(http_root):
    from napari_zarrnii._reader import get_reader

    _, url = http_root
    assert get_reader(f"{url}/nothing-here.ome.zarr") is None


# -- a loopback server that adds latency, fails or hangs on request, and counts -------------
class _Behaviour:
    """What the server does with chunk requests; counts every request per path."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.latency = 0.0
        self.fail = False  # chunk requests answer 500
        self.hang = 0.0  # chunk requests wait this long before answering
        self.active = 0
        self.most_active = 0

    def chunk_requests(self) -> int:
        with self.lock:
            return sum(n for p, n in self.counts.items() if not _is_metadata(p))


def _is_metadata(path: str) -> bool:
    return path.rsplit("/", 1)[-1] in ("zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata")


class _SlowHandler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real server
    behaviour: _Behaviour

    def log_message(self, *args):
        pass

    def do_GET(self):
        b = self.behaviour
        with b.lock:
            b.counts[self.path] = b.counts.get(self.path, 0) + 1
            b.active += 1
            b.most_active = max(b.most_active, b.active)
        try:
            if not _is_metadata(self.path):
                if b.hang:
                    time.sleep(b.hang)
                if b.fail:
                    self.send_error(500, "simulated server error")
                    return
            if b.latency:
                time.sleep(b.latency)
            super().do_GET()
        finally:
            with b.lock:
                b.active -= 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # concurrent clients are not refused (as by a real server)

    def handle_error(self, request, client_address):  # clients that gave up waiting
        pass


@pytest.fixture
def slow_http(tmp_path):
    behaviour = _Behaviour()
    handler = type("Handler", (_SlowHandler,), {"behaviour": behaviour})
    server = _Server(("127.0.0.1", 0), functools.partial(handler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}", behaviour
    finally:
        server.shutdown()
        server.server_close()


def _volume(root, name="vol.ome.zarr"):
    from .conftest import ramp, write_ngff_store

    data = ramp((2, 32, 64, 64))
    write_ngff_store(
        root / name,
        version="0.5",
        data=data,
        omero={
            "channels": [
                {
                    "label": "a",
                    "color": "FF0000",
                    "window": {"start": 0, "end": 900, "min": 0, "max": 65535},
                },
                {
                    "label": "b",
                    "color": "00FF00",
                    "window": {"start": 0, "end": 900, "min": 0, "max": 65535},
                },
            ]
        },
    )
    return data


def test_metadata_fetched_once_and_chunks_concurrently(slow_http):
    from napari_zarrnii._reader import get_reader

    root, url, behaviour = slow_http
    data = _volume(root)
    behaviour.latency = 0.02
    reader = get_reader(f"{url}/vol.ome.zarr")
    assert reader is not None
    layers = reader(f"{url}/vol.ome.zarr")
    metadata = {p: n for p, n in behaviour.counts.items() if _is_metadata(p)}
    assert metadata and max(metadata.values()) == 1, metadata
    assert behaviour.chunk_requests() == 0  # omero windows: nothing read on open
    plane = np.asarray(layers[0][0][0][5])  # level 0, channel a, z = 5: 4 x 4 chunks
    np.testing.assert_array_equal(plane, data[0, 5])
    assert behaviour.chunk_requests() == 16
    assert behaviour.most_active > 4  # issued together, not one after the other
    np.testing.assert_array_equal(np.asarray(layers[0][0][0][6]), data[0, 6])
    assert behaviour.chunk_requests() == 16  # the next plane is in the same chunks


def test_failing_server_gives_a_warning_not_an_error(slow_http):
    from napari_zarrnii._reader import get_reader
    from napari_zarrnii.core.cached import ChunkReadWarning

    root, url, behaviour = slow_http
    data = _volume(root)
    layers = get_reader(f"{url}/vol.ome.zarr")(f"{url}/vol.ome.zarr")
    behaviour.fail = True
    level0 = layers[0][0][0]
    with pytest.warns(ChunkReadWarning, match="vol.ome.zarr"):
        plane = np.asarray(level0[3])
    assert not plane.any()
    behaviour.fail = False  # the server recovers: the chunks were not cached as zeros
    np.testing.assert_array_equal(np.asarray(level0[3]), data[0, 3])


def test_server_that_stops_answering_times_out(slow_http, monkeypatch):
    from napari_zarrnii._reader import get_reader
    from napari_zarrnii.core import remote
    from napari_zarrnii.core.cached import ChunkReadWarning

    root, url, behaviour = slow_http
    _volume(root, "hang.ome.zarr")
    monkeypatch.setattr(remote, "READ_TIMEOUT", 0.5)
    layers = get_reader(f"{url}/hang.ome.zarr")(f"{url}/hang.ome.zarr")
    behaviour.hang = 3.0
    with pytest.warns(ChunkReadWarning, match="TimeoutError|Timeout"):
        plane = np.asarray(layers[1][0][0][7])
    assert not plane.any()


def test_object_store_urls_get_time_outs_and_one_get_per_chunk():
    """Readers and writers of s3:// (and s3a://) give up on a silent server, and read a
    chunk with one GET; the caller's nested options win key by key."""
    from napari_zarrnii.core.remote import CONNECT_TIMEOUT, READ_TIMEOUT, storage_options_for

    for url in ("s3://bucket/x.ome.zarr", "s3a://bucket/x.ome.zarr"):
        options = storage_options_for(url, {"config_kwargs": {"read_timeout": 5}})
        assert options["config_kwargs"] == {"connect_timeout": CONNECT_TIMEOUT, "read_timeout": 5}
        assert options["max_concurrency"] == 1
        assert storage_options_for(url)["config_kwargs"]["read_timeout"] == READ_TIMEOUT
    assert storage_options_for("gs://bucket/x.ome.zarr", {"token": "anon"}) == {"token": "anon"}
