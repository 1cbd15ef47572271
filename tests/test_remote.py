"""Reading over HTTP from a loopback server, as from a remote store."""

from __future__ import annotations

import functools
import threading
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
