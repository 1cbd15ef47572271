"""Benchmark: write an OME-Zarr pyramid to local disk and to S3, and read it back.

Run by hand (not part of the tests)::

    python benchmarks/bench_s3.py                 # 512^3 uint16, chunks 128, 4 levels
    python benchmarks/bench_s3.py --size 256      # a quicker check

The S3 server is moto's, started by this script in its own process on a free
loopback port (no network, nothing to configure): what is measured is the cost of
the object-store path (HTTP round trips, s3fs, staging the metadata, the probe key)
against local disk, not a real object store's bandwidth.  Every request the server
answers is counted from its request log, by method.

Cases, each with the same generated volume (smooth structure plus noise, as
``bench_write.py``):

* ``write local``: ``ZarrNii.to_ome_zarr`` to a folder (written aside, renamed).
* ``write s3``: the same to ``s3://bench/<name>.ome.zarr`` (chunks first,
  metadata last).
* ``write s3, s3fs max_concurrency=10``: s3fs's own default, which sends a HEAD
  before every whole-object GET (the writer reads each level back to build the
  next); the writer's default is 1.
* ``read local`` / ``read s3``: every level read back in full
  (``ZarrNii.from_ome_zarr(...).get_level(i).darr``), checked equal.

Results go to ``benchmarks/results/s3.json`` (``--out``; the shape of
``benchmarks/_results.py``, marked provisional below ``--size 512``) and a markdown
table is printed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _results import OURS, RESULTS, save_results  # noqa: E402
from bench_write import disk_bytes, volume  # noqa: E402

#: The size of the full run; smaller runs are saved as provisional.
DEFAULT_SIZE = 512

#: One werkzeug request line: ``... "PUT /bucket/key HTTP/1.1" 200 -``.
_REQUEST = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3})')


class MotoServer:
    """moto's S3 server in a child process on a free loopback port, its log in a file."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / "moto.log"
        self._log = self.log_path.open("w")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError as exc:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"moto's server did not start; see {self.log_path}"
                    ) from exc
                time.sleep(0.1)

    def requests(self) -> list[tuple[str, str, int]]:
        """Every request answered so far: (method, path, status)."""
        text = self.log_path.read_text(errors="replace")
        return [(m, p, int(s)) for m, p, s in _REQUEST.findall(text)]

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._log.close()


def _counted(server: MotoServer, before: int) -> dict[str, int]:
    time.sleep(0.2)  # the last log lines
    sent = server.requests()[before:]
    counts = Counter(method for method, _, _ in sent)
    out = {k: counts[k] for k in sorted(counts)}
    out["total"] = len(sent)
    out["errors"] = sum(1 for _, _, status in sent if status >= 400)
    return out


def _read_all(location: str, storage_options: dict[str, Any] | None) -> list[np.ndarray]:
    from napari_zarrnii import ZarrNii

    kwargs = {"storage_options": storage_options} if storage_options else {}
    z = ZarrNii.from_ome_zarr(location, **kwargs)
    return [np.asarray(z.get_level(i).darr) for i in range(z.num_levels)]


def _s3_bytes(url: str, options: dict[str, Any]) -> int:
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
    return int(fs.du(url.removeprefix("s3://")))


def run(
    size: int, chunks: int, max_layer: int, folder: Path
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from napari_zarrnii import ZarrNii

    shape = (size, size, size)
    t0 = time.perf_counter()
    vol = volume(shape)
    print(f"generated {shape} uint16 in {time.perf_counter() - t0:.1f} s", flush=True)
    z = ZarrNii.from_array(vol, voxel_size=(1.0, 1.0, 1.0))
    write = {"max_layer": max_layer, "chunks": chunks}

    server = MotoServer(folder)
    rows: list[dict[str, Any]] = []
    try:
        options = {"key": "bench", "secret": "bench", "endpoint_url": server.endpoint}
        import s3fs

        s3fs.S3FileSystem(skip_instance_cache=True, **options).mkdir("bench")
        local = folder / "vol.ome.zarr"

        def case(name: str, action: Any, where: str) -> Any:
            before = len(server.requests())
            start = time.perf_counter()
            result = action()
            wall = time.perf_counter() - start
            counted = _counted(server, before)
            other = counted["total"] - sum(counted.get(m, 0) for m in ("PUT", "GET", "HEAD"))
            metrics: dict[str, Any] = {
                "wall_s": round(wall, 3),
                "requests": counted["total"],
                "put": counted.get("PUT", 0),
                "get": counted.get("GET", 0),
                "head": counted.get("HEAD", 0),
                "other_requests": other,
                "request_errors": counted["errors"],
            }
            if where:
                metrics["stored_mib"] = round(stored(where) / 2**20, 2)
            rows.append({"case": name, "tool": OURS, "metrics": metrics})
            print(f"{name}: {wall:.2f} s, {counted['total']} requests", flush=True)
            return result

        def stored(where: str) -> int:
            return _s3_bytes(where, options) if "://" in where else disk_bytes(Path(where))

        case("write local", lambda: z.to_ome_zarr(local, **write), str(local))
        url = "s3://bench/vol.ome.zarr"
        case("write s3", lambda: z.to_ome_zarr(url, storage_options=options, **write), url)
        url10 = "s3://bench/vol-mc10.ome.zarr"
        options10 = {**options, "max_concurrency": 10}
        case(
            "write s3, s3fs max_concurrency=10",
            lambda: z.to_ome_zarr(url10, storage_options=options10, **write),
            url10,
        )
        want = case("read local", lambda: _read_all(str(local), None), "")
        got = case("read s3", lambda: _read_all(url, options), "")
        if len(got) != len(want) or not all(np.array_equal(a, b) for a, b in zip(got, want)):
            raise AssertionError("the store read back from S3 differs from the local one")
        np.testing.assert_array_equal(want[0], vol)
    finally:
        server.stop()
    settings = {
        "shape": list(shape),
        "dtype": "uint16",
        "chunks": chunks,
        "levels": max_layer + 1,
        "voxel_mib": round(vol.nbytes / 2**20, 1),
        "server": "moto (own process, loopback)",
    }
    return settings, rows


def versions() -> dict[str, str]:
    import boto3
    import fsspec
    import moto
    import s3fs

    return {
        "s3fs": s3fs.__version__,
        "fsspec": fsspec.__version__,
        "boto3": boto3.__version__,
        "moto": moto.__version__,
    }


def table(settings: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    mib = settings["voxel_mib"]
    lines = [
        f"{'x'.join(map(str, settings['shape']))} uint16 ({mib:.0f} MiB), chunks "
        f"{settings['chunks']}, {settings['levels']} levels",
        "",
        "| case | wall (s) | MiB/s (level 0) | requests | PUT | GET | HEAD | other | "
        "stored (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        m = row["metrics"]
        stored = m.get("stored_mib")
        lines.append(
            f"| {row['case']} | {m['wall_s']:.2f} | {mib / m['wall_s']:.0f} | "
            f"{m['requests']} | {m['put']} | {m['get']} | {m['head']} | "
            f"{m['other_requests']} | {'' if stored is None else f'{stored:.1f}'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size", type=int, default=DEFAULT_SIZE, help="edge of the cube (default 512)"
    )
    parser.add_argument("--chunks", type=int, default=128, help="chunk edge (default 128)")
    parser.add_argument(
        "--max-layer", type=int, default=3, help="coarsest level written (default 3)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "s3.json", help="JSON results file")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    try:
        settings, rows = run(args.size, args.chunks, args.max_layer, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    settings["versions"] = versions()
    out = save_results("s3", rows, settings, out=args.out, provisional=args.size < DEFAULT_SIZE)
    print()
    print(table(settings, rows))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
