"""Shared fixtures: small synthetic OME-Zarr stores written by hand (not by our writer),
a dask.distributed cluster and an S3 server on loopback.

Writing the metadata by hand, version by version, keeps the reader tests
independent of the package's own emitter.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

AXES_5D = (
    ("t", "time", "second"),
    ("c", "channel", None),
    ("z", "space", "micrometer"),
    ("y", "space", "micrometer"),
    ("x", "space", "micrometer"),
)


def ramp(shape: tuple[int, ...], dtype: Any = "uint16") -> np.ndarray:
    """Data whose every voxel is distinct enough to catch axis or offset mistakes."""
    grids = np.indices(shape)
    weights = np.cumprod((1, *reversed(shape[1:])))[::-1]
    out = sum(g * w for g, w in zip(grids, weights))
    return (
        out % (np.iinfo(dtype).max if np.issubdtype(np.dtype(dtype), np.integer) else 1e6)
    ).astype(dtype)


def write_ngff_store(
    path: Path,
    *,
    version: str = "0.4",
    data: np.ndarray | None = None,
    axes: tuple[tuple[str, str | None, str | None], ...] | None = None,
    n_levels: int = 3,
    scale: tuple[float, ...] | None = None,
    translation: tuple[float, ...] | None = None,
    omero: dict | None = None,
    extra: dict | None = None,
    name: str | None = "test image",
) -> tuple[Path, list[np.ndarray]]:
    """Write an NGFF image by hand: 2x pyramid on spatial axes by striding."""
    data = ramp((2, 16, 32, 32)) if data is None else data
    ndim = data.ndim
    axes = axes or AXES_5D[-ndim:]
    scale = scale or tuple(1.0 for _ in range(ndim))
    translation = translation or tuple(0.0 for _ in range(ndim))
    zarr_format = 3 if version == "0.5" else 2
    kwargs: dict[str, Any] = {"zarr_format": zarr_format}
    root = zarr.open_group(str(path), mode="w", **kwargs)
    levels = []
    datasets = []
    spatial = [a[1] == "space" for a in axes]
    for i in range(n_levels):
        f = 2**i
        key = tuple(slice(None, None, f) if s else slice(None) for s in spatial)
        level = data[key]
        levels.append(level)
        arr_kwargs: dict[str, Any] = {}
        if zarr_format == 2:
            arr_kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        else:
            arr_kwargs["dimension_names"] = [a[0] for a in axes]
        chunks = tuple(min(16, n) if s else 1 for n, s in zip(level.shape, spatial))
        arr = root.create_array(
            str(i), shape=level.shape, dtype=level.dtype, chunks=chunks, **arr_kwargs
        )
        arr[...] = level
        lvl_scale = [s * f if sp else s for s, sp in zip(scale, spatial)]
        # striding keeps voxel 0: same translation at every level
        ds: dict[str, Any] = {"path": str(i)}
        if version >= "0.4":
            ds["coordinateTransformations"] = [{"type": "scale", "scale": lvl_scale}]
            if any(translation):
                ds["coordinateTransformations"].append(
                    {"type": "translation", "translation": list(translation)}
                )
        datasets.append(ds)
    ms: dict[str, Any] = {"datasets": datasets}
    if version >= "0.4":
        ms["axes"] = [
            {k: v for k, v in (("name", n), ("type", t), ("unit", u)) if v is not None}
            for n, t, u in axes
        ]
    elif version == "0.3":
        ms["axes"] = [a[0] for a in axes]
    if name:
        ms["name"] = name
    content: dict[str, Any] = {"multiscales": [ms]}
    if omero is not None:
        content["omero"] = omero
    if extra:
        content.update(extra)
    if version == "0.5":
        root.attrs["ome"] = {"version": "0.5", **content}
    else:
        ms["version"] = version
        root.attrs.update(content)
    return path, levels


@pytest.fixture
def ngff_store(tmp_path: Path):
    """Factory fixture: ``ngff_store(version=..., data=..., ...)`` -> (path, levels)."""
    counter = iter(range(1000))

    def make(**kwargs: Any) -> tuple[Path, list[np.ndarray]]:
        return write_ngff_store(tmp_path / f"img{next(counter)}.ome.zarr", **kwargs)

    return make


# -- dask.distributed ------------------------------------------------------------------------


@pytest.fixture
def sample_store(tmp_path: Path):
    """A maker of small two-channel 3-D OME-Zarr stores with labels, written by our writer:
    ``sample_store(version="0.5", name="sample.ome.zarr")``."""
    from napari_zarrnii.core.pyramid import write_pyramid
    from napari_zarrnii.core.sample import make_sample_image

    def make(version: str = "0.5", name: str = "sample.ome.zarr") -> Path:
        image = make_sample_image(shape=(16, 64, 64), n_levels=1, n_cells=6)
        return write_pyramid(image, tmp_path / name, max_layer=2, chunks=16, ngff_version=version)

    return make


@pytest.fixture(scope="session")
def dask_client():
    """A LocalCluster of two worker processes (one thread each), for the whole session.

    The client is not made the default one: only what a test passes it to runs on
    the cluster (``client='active'`` finds it only inside ``as_current()``).  The
    HTTP server binds a free port (8787 may be taken on a shared machine).
    """
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.ERROR,
    )
    with distributed.Client(cluster, set_as_default=False) as client:
        yield client
    cluster.close()


# -- S3 on loopback ----------------------------------------------------------------------


@dataclass(frozen=True)
class S3Request:
    """One request as the server received it."""

    method: str
    path: str  # /bucket/key (path-style addressing, as with a custom endpoint)
    query: str
    status: int
    access_key: str | None  # from the request's signature


class RequestLog:
    """WSGI middleware in front of moto's app: every request that reaches the server."""

    _CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[S3Request] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        status: list[int] = []

        def start(line: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(int(line.split()[0]))
            return start_response(line, headers, exc_info)

        try:
            return self.app(environ, start)
        finally:
            found = self._CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
            request = S3Request(
                environ["REQUEST_METHOD"],
                environ.get("PATH_INFO", ""),
                environ.get("QUERY_STRING", ""),
                status[0] if status else 0,
                found.group(1) if found else None,
            )
            with self._lock:
                self.requests.append(request)

    def since(self, mark: int) -> list[S3Request]:
        """The requests after the first ``mark`` (``mark = len(log.requests)`` before)."""
        with self._lock:
            return list(self.requests[mark:])


@dataclass(frozen=True)
class S3Server:
    """A moto S3 server on loopback, with the credentials the environment gives."""

    endpoint: str
    log: RequestLog
    key: str = "testing"
    secret: str = "testing"

    @property
    def storage_options(self) -> dict[str, Any]:
        """The options that reach the server without the environment (e.g. on workers)."""
        return {"key": self.key, "secret": self.secret, "endpoint_url": self.endpoint}

    def filesystem(self) -> Any:
        """A fresh s3fs filesystem (no listing cache shared with the code under test).

        ``max_concurrency=1``: one GET per key, without the HEAD that s3fs sends
        first to split large objects.
        """
        import s3fs

        return s3fs.S3FileSystem(
            key=self.key,
            secret=self.secret,
            endpoint_url=self.endpoint,
            max_concurrency=1,
            skip_instance_cache=True,
        )

    def keys(self, url: str) -> list[str]:
        """Every key under ``url``, relative to it, listed afresh."""
        root = url.removeprefix("s3://").rstrip("/")
        fs = self.filesystem()
        try:
            found = fs.find(root)
        except FileNotFoundError:
            return []
        return sorted(p[len(root) + 1 :] for p in found if p.startswith(root + "/"))

    def read(self, url: str) -> dict[str, bytes]:
        """Every key under ``url`` with its bytes."""
        root = url.removeprefix("s3://").rstrip("/")
        keys = self.keys(url)
        got = self.filesystem().cat([f"{root}/{k}" for k in keys])  # concurrently
        return {k: got[f"{root}/{k}"] for k in keys}


_AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 API (``ThreadedMotoServer``) on a free loopback port; ``AWS_*`` point at it.

    The variables are set for the rest of the session, so that readers that take no
    storage options (the npe2 reader) and worker processes started afterwards find
    the server as they would find a real endpoint.  Every request is recorded in
    ``s3_server.log``.
    """
    pytest.importorskip("s3fs")
    server_module = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    # the werkzeug server looks its app up on every request: put the log in front
    wsgi = server._server
    log = RequestLog(wsgi.app)
    wsgi.app = log
    host, port = server.get_host_and_port()
    s3 = S3Server(f"http://{host}:{port}", log)
    saved = {name: os.environ.get(name) for name in _AWS_ENV}
    os.environ.update(
        AWS_ACCESS_KEY_ID=s3.key,
        AWS_SECRET_ACCESS_KEY=s3.secret,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=s3.endpoint,
    )
    try:
        yield s3
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A new, empty bucket: ``s3://<name>``."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_server.filesystem().mkdir(name)
    return f"s3://{name}"
