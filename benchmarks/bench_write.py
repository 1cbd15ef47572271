"""Benchmark: write a 4-level OME-Zarr pyramid with napari-zarrnii and its peers.

Run by hand (not part of the tests)::

    python benchmarks/bench_write.py                # 256x512x512 uint16, 4 levels, 3 tools
    python benchmarks/bench_write.py --big          # also 1024^3 uint16, 5 levels, lazy
    python benchmarks/bench_write.py --distributed  # threads vs LocalCluster vs dask CLI
    python benchmarks/bench_write.py --repeat 3     # medians of 3 interleaved runs

Every tool runs in its own subprocess, so peak RSS (``ru_maxrss`` of the child) is its
own.  The source volume (smooth structure + Gaussian noise, realistic compressibility)
is generated in the child before timing starts (in memory), or chunk by chunk while
writing (``--big``: a lazy dask array); it is the same for every tool.  Wall time
covers the whole write (pyramid + compression + metadata).  Bytes on disk are counted
afterwards.  Markdown tables are printed: medians over ``--repeat`` runs, which are
interleaved (tool A, B, C, A, B, C, ...) so a burst of load from other processes does
not favour one tool.

``--distributed`` writes the lazy volume with napari-zarrnii on threads, on a
``LocalCluster`` of 2 worker processes (1 thread each) and on a ``dask scheduler`` with
2 ``dask worker`` processes started from the command line on loopback.  Cluster start
(and the workers' first import of napari_zarrnii) is not timed.  The peak RSS reported
for those is the client process's (the workers' is shown beside it); it should not grow
with the image size.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _results import save_results

SMALL = (256, 512, 512)
BIG = (1024, 1024, 1024)
CHUNKS = (128, 128, 128)


def generate_block(
    start: tuple[int, ...], shape: tuple[int, ...], full: tuple[int, ...]
) -> np.ndarray:
    """A block of the synthetic volume: smooth sinusoids and a blob, plus noise (sigma 60)."""
    coords = [
        (np.arange(s, s + n, dtype=np.float32) / np.float32(f))
        for s, n, f in zip(start, shape, full)
    ]
    z = coords[0][:, None, None]
    y = coords[1][None, :, None]
    x = coords[2][None, None, :]
    base = (
        2000.0
        + 1500.0 * np.sin(6 * z) * np.cos(9 * y) * np.sin(7 * x + 2 * z)
        + 800.0 * np.exp(-((y - 0.5) ** 2 + (x - 0.5) ** 2) / 0.05)
    )
    seed = hash((start, shape)) & 0xFFFFFFFF
    noise = np.random.default_rng(seed).normal(0.0, 60.0, shape).astype(np.float32)
    return np.clip(base + noise, 0, 65535).astype(np.uint16)


def volume(shape: tuple[int, ...], slab: int = 16) -> np.ndarray:
    """The whole volume in memory, generated slab by slab (no full-size float temporaries)."""
    out = np.empty(shape, np.uint16)
    for z in range(0, shape[0], slab):
        n = min(slab, shape[0] - z)
        out[z : z + n] = generate_block((z, 0, 0), (n, *shape[1:]), shape)
    return out


def lazy_volume(shape: tuple[int, ...], chunks: tuple[int, ...]):
    import dask.array as da

    def block(block_info=None):
        info = block_info[None]
        start = tuple(lo for lo, _ in info["array-location"])
        bshape = tuple(hi - lo for lo, hi in info["array-location"])
        return generate_block(start, bshape, shape)

    return da.map_blocks(
        block,
        dtype=np.uint16,
        chunks=da.core.normalize_chunks(chunks, shape),
        meta=np.empty((0, 0, 0), np.uint16),
    )


def cheap_volume(shape: tuple[int, ...], chunks: tuple[int, ...]):
    """A lazy volume that costs almost nothing to produce, to time the engines alone.

    Each chunk is a copy of one of 8 blocks generated up front (same statistics as
    :func:`lazy_volume`), picked by the chunk's position.
    """
    import dask.array as da

    pool = [generate_block((i * chunks[0], 0, 0), chunks, shape) for i in range(8)]

    def block(block_info=None):
        loc = block_info[None]["chunk-location"]
        info = block_info[None]["array-location"]
        bshape = tuple(hi - lo for lo, hi in info)
        base = pool[(loc[0] + 3 * loc[1] + 5 * loc[2]) % len(pool)]
        return base[tuple(slice(0, n) for n in bshape)].copy()

    return da.map_blocks(
        block,
        dtype=np.uint16,
        chunks=da.core.normalize_chunks(chunks, shape),
        meta=np.empty((0, 0, 0), np.uint16),
    )


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# -- children -------------------------------------------------------------------------


def run_zarrnii(data, out: Path, levels: int, workers: int | None) -> None:
    from napari_zarrnii.core.model import Axis, Level, MultiscaleImage
    from napari_zarrnii.core.pyramid import write_pyramid

    axes = tuple(Axis(n, "space", "micrometer") for n in "zyx")
    image = MultiscaleImage(axes=axes, levels=[Level("0", data, (1.0, 1.0, 1.0), (0.0,) * 3)])
    write_pyramid(
        image, out, max_layer=levels - 1, ngff_version="0.5", chunks=CHUNKS, workers=workers
    )


def run_zarrnii_on(client, data, out: Path, levels: int) -> None:
    from napari_zarrnii.core.model import Axis, Level, MultiscaleImage
    from napari_zarrnii.core.pyramid import write_pyramid

    axes = tuple(Axis(n, "space", "micrometer") for n in "zyx")
    image = MultiscaleImage(axes=axes, levels=[Level("0", data, (1.0, 1.0, 1.0), (0.0,) * 3)])
    write_pyramid(
        image, out, max_layer=levels - 1, ngff_version="0.5", chunks=CHUNKS, client=client
    )


def _worker_env() -> dict[str, str]:
    """Environment for cluster processes: napari_zarrnii importable as in this process."""
    import napari_zarrnii

    env = dict(os.environ)
    src = str(Path(napari_zarrnii.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def _warm_up(client) -> None:
    """Workers import the writer once, as a cluster that has written before has."""
    for module in ("napari_zarrnii.core.pyramid.engine", "dask.array"):
        client.run(lambda name=module: importlib.import_module(name) and None)


class LocalClusterSetup:
    """A LocalCluster of 2 worker processes with 1 thread each.

    distributed's nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which
    also pins glibc's mmap threshold: every allocation above 128 KiB is then fresh pages
    from the kernel.  ``malloc_defaults=True`` leaves it out, so the workers allocate
    like any other process (like the threaded run).
    """

    malloc_defaults = False

    def __enter__(self):
        import logging

        import dask
        from distributed import Client, LocalCluster

        os.environ.update(_worker_env())  # spawned workers inherit it
        environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
        if self.malloc_defaults:
            environ.pop("MALLOC_TRIM_THRESHOLD_", None)
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
            self.cluster = LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
        self.client = Client(self.cluster)
        _warm_up(self.client)
        return self.client

    def __exit__(self, *exc):
        self.client.close()
        self.cluster.close()


class LocalClusterMallocSetup(LocalClusterSetup):
    """The same LocalCluster, its workers with glibc's malloc defaults."""

    malloc_defaults = True


class CommandLineClusterSetup:
    """``dask scheduler`` + 2 ``dask worker --nthreads 1 --no-nanny`` on loopback.

    Without a nanny the workers get this process's environment (glibc's malloc
    defaults, as the threaded run).
    """

    def __enter__(self):
        import socket

        from distributed import Client

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        address = f"tcp://127.0.0.1:{port}"
        env = _worker_env()
        dask_cli = [sys.executable, "-m", "dask"]
        loopback = ["--host", "127.0.0.1"]
        worker_options = ["--nthreads", "1", "--no-nanny", *loopback, "--no-dashboard"]
        quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self.procs = [
            subprocess.Popen(
                [*dask_cli, "scheduler", *loopback, "--port", str(port), "--no-dashboard"],
                **quiet,
            )
        ]
        for _ in range(2):
            self.procs.append(
                subprocess.Popen(
                    [*dask_cli, "worker", address, *worker_options],
                    **quiet,
                )
            )
        self.client = Client(address, timeout=120)
        self.client.wait_for_workers(2, timeout=120)
        _warm_up(self.client)
        return self.client

    def __exit__(self, *exc):
        self.client.shutdown()
        self.client.close()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _worker_peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def our_codec():
    """Our default codec as a zarr v3 codec, to compare the peers' engines at equal codec."""
    import zarr.codecs

    return zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")


def run_ome_zarr(data, out: Path, levels: int, workers: int | None, same_codec=False) -> None:
    from ome_zarr.scale import Methods
    from ome_zarr.writer import write_image

    factors = [{"z": 2**i, "y": 2**i, "x": 2**i} for i in range(1, levels)]
    options: dict = {"chunks": CHUNKS}
    if same_codec:
        options["compressor"] = our_codec()
    write_image(
        data,
        str(out),
        scale_factors=factors,
        method=Methods.LOCAL_MEAN,
        axes="zyx",
        storage_options=options,
    )


def run_ngff_zarr(
    data, out: Path, levels: int, workers: int | None, method: str = "", same_codec=False
) -> None:
    import ngff_zarr
    from ngff_zarr import Methods

    image = ngff_zarr.to_ngff_image(data, dims=("z", "y", "x"))
    kwargs = {"method": Methods(method)} if method else {}
    ms = ngff_zarr.to_multiscales(
        image, scale_factors=[2**i for i in range(1, levels)], chunks=CHUNKS[0], **kwargs
    )
    extra = {"compressors": [our_codec()]} if same_codec else {}
    ngff_zarr.to_ngff_zarr(str(out), ms, version="0.5", **extra)


# Peers run with their own defaults (zarr v3's zstd level 0 codec) and, to compare the
# engines alone, with our codec (blosc zstd 3 bit-shuffle).
TOOLS = {
    "napari-zarrnii": run_zarrnii,
    "ome-zarr-py (local_mean)": run_ome_zarr,
    "ome-zarr-py (local_mean, our codec)": lambda d, o, n, w: run_ome_zarr(
        d, o, n, w, same_codec=True
    ),
    "ngff-zarr (bin_shrink)": lambda d, o, n, w: run_ngff_zarr(d, o, n, w, "itkwasm_bin_shrink"),
    "ngff-zarr (bin_shrink, our codec)": lambda d, o, n, w: run_ngff_zarr(
        d, o, n, w, "itkwasm_bin_shrink", same_codec=True
    ),
    "ngff-zarr (default gaussian)": run_ngff_zarr,
}
# napari-zarrnii on a cluster: the setup (not timed) and the client's write.
CLUSTERS = {
    "LocalCluster, 2 processes (distributed's worker environment)": LocalClusterSetup,
    "LocalCluster, 2 processes (glibc malloc defaults)": LocalClusterMallocSetup,
    "dask scheduler + 2 dask worker --no-nanny (command line)": CommandLineClusterSetup,
}
OURS = "napari-zarrnii"
#: The peer our ratios are quoted against: the fastest, with our codec (same bytes).
REFERENCE = "ngff-zarr (bin_shrink, our codec)"


def child(args: argparse.Namespace) -> None:
    shape = tuple(args.shape)
    out = Path(args.out)
    if args.cheap:
        data = cheap_volume(shape, CHUNKS)
    elif args.lazy:
        data = lazy_volume(shape, CHUNKS)
    else:
        data = volume(shape)
    if args.tool in CLUSTERS:
        t0 = time.perf_counter()
        with CLUSTERS[args.tool]() as client:
            setup = time.perf_counter() - t0
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            cpu0 = _cpu_seconds() + sum(client.run(_cpu_seconds).values())
            t0 = time.perf_counter()
            run_zarrnii_on(client, data, out, args.levels)
            wall = time.perf_counter() - t0
            cpu = _cpu_seconds() + sum(client.run(_cpu_seconds).values()) - cpu0
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            workers = sorted(client.run(_worker_peak_rss).values())
        result = {"wall": wall, "cpu": cpu, "peak_rss": peak, "rss_before": rss_before}
        print(json.dumps({**result, "setup": setup, "workers_peak_rss": workers}))
        return
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    TOOLS[args.tool](data, out, args.levels, args.workers)
    wall = time.perf_counter() - t0
    cpu = _cpu_seconds() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"wall": wall, "cpu": cpu, "peak_rss": peak, "rss_before": rss_before}))


# -- parent ---------------------------------------------------------------------------


def measure(
    tool: str, shape, levels: int, tmp: Path, lazy=False, workers=None, cheap=False
) -> dict:
    slug = "".join(c if c.isalnum() else "-" for c in tool)
    out = tmp / f"{slug}-{'x'.join(map(str, shape))}.ome.zarr"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--tool",
        tool,
        "--out",
        str(out),
        "--levels",
        str(levels),
        "--shape",
        *map(str, shape),
    ]
    if lazy:
        cmd.append("--lazy")
    if cheap:
        cmd.append("--cheap")
    if workers:
        cmd += ["--workers", str(workers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"tool": tool, "error": proc.stderr.strip().splitlines()[-1:]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["tool"] = tool
    result["bytes"] = disk_bytes(out)
    shutil.rmtree(out, ignore_errors=True)
    return result


def median_run(runs: list[dict]) -> dict:
    """The run with the median wall time; every field reported is that run's, plus the
    median of the peak RSS and the spread of the wall times over all runs."""
    good = [r for r in runs if "error" not in r]
    if not good:
        return runs[0]
    ordered = sorted(good, key=lambda r: r["wall"])
    out = dict(ordered[(len(ordered) - 1) // 2])
    out["peak_rss"] = statistics.median(r["peak_rss"] for r in good)
    out["rss_before"] = statistics.median(r["rss_before"] for r in good)
    out["cpu"] = statistics.median(r["cpu"] for r in good)
    out["walls"] = [r["wall"] for r in good]
    return out


def table(rows: list[dict], source_bytes: int, reference: str = OURS) -> str:
    ok = [r for r in rows if "error" not in r]
    ref = next((r for r in ok if r["tool"] == reference), None)
    name = "ours" if reference == OURS else "ngff-zarr"
    lines = [
        "| tool | wall s (median) | runs s | CPU s | source MiB/s | peak RSS MiB "
        f"| RSS above start MiB | MiB on disk | time vs {name} | CPU vs {name} | RSS vs {name} "
        f"| disk vs {name} |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['tool']} | failed: {r['error']} | | | | | | | | | | |")
            continue
        ratio_t = r["wall"] / ref["wall"] if ref else float("nan")
        ratio_c = r["cpu"] / ref["cpu"] if ref else float("nan")
        ratio_m = r["peak_rss"] / ref["peak_rss"] if ref else float("nan")
        ratio_b = r["bytes"] / ref["bytes"] if ref else float("nan")
        runs = ", ".join(f"{w:.1f}" for w in r.get("walls", [r["wall"]]))
        lines.append(
            f"| {r['tool']} | {r['wall']:.2f} | {runs} | {r['cpu']:.1f} "
            f"| {source_bytes / 2**20 / r['wall']:.0f} | {r['peak_rss'] / 2**20:.0f} "
            f"| {(r['peak_rss'] - r['rss_before']) / 2**20:.0f} | {r['bytes'] / 2**20:.1f} "
            f"| {ratio_t:.2f}x | {ratio_c:.2f}x | {ratio_m:.2f}x | {ratio_b:.3f}x |"
        )
    return "\n".join(lines)


def cluster_table(rows: list[dict], source_bytes: int) -> str:
    threads = next((r for r in rows if r["tool"] == OURS and "error" not in r), None)
    lines = [
        "| executor | wall s (median) | runs s | vs threads | CPU s (all processes) "
        "| client peak RSS MiB | workers peak RSS MiB | cluster start s | MiB on disk |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['tool']} | failed: {r['error']} | | | | | | | |")
            continue
        ratio = r["wall"] / threads["wall"] if threads else float("nan")
        runs = ", ".join(f"{w:.1f}" for w in r.get("walls", [r["wall"]]))
        workers = " + ".join(f"{w / 2**20:.0f}" for w in r.get("workers_peak_rss", [])) or "-"
        setup = f"{r['setup']:.1f}" if "setup" in r else "-"
        name = "threads" if r["tool"] == OURS else r["tool"]
        lines.append(
            f"| {name} | {r['wall']:.2f} | {runs} | {ratio:.2f}x | {r['cpu']:.1f} "
            f"| {r['peak_rss'] / 2**20:.0f} | {workers} | {setup} | {r['bytes'] / 2**20:.1f} |"
        )
    return "\n".join(lines)


def machine() -> str:
    """One line about the machine and the load on it."""
    import platform

    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = []
    for dist in ("zarr", "numcodecs", "dask", "distributed", "ngff-zarr", "ome-zarr"):
        with contextlib.suppress(Exception):
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
    return (
        f"{time.strftime('%Y-%m-%d %H:%M')}, {model}, {os.cpu_count()} CPUs, {mem:.0f} GiB, "
        f"Python {platform.python_version()}, {', '.join(versions)}"
    )


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def compare(tools, shape, levels, tmp, repeat, lazy, cheap=False) -> list[dict]:
    """Median runs of each tool, interleaved."""
    runs: dict[str, list[dict]] = {tool: [] for tool in tools}
    for i in range(repeat):
        for tool in tools:
            runs[tool].append(measure(tool, shape, levels, tmp, lazy=lazy, cheap=cheap))
            wall = runs[tool][-1].get("wall")
            shown = f"{wall:.2f} s" if wall is not None else f"failed {runs[tool][-1]}"
            print(f"  run {i + 1} {tool}: {shown} (load {load()})", file=sys.stderr)
    return [{**median_run(runs[tool]), "tool": tool} for tool in tools]


def summary(rows: list[dict]) -> str:
    ours = next((r for r in rows if r["tool"] == OURS and "error" not in r), None)
    ref = next((r for r in rows if r["tool"] == REFERENCE and "error" not in r), None)
    if not (ours and ref):
        return ""
    return (
        f"\nnapari-zarrnii vs {REFERENCE}: time {ours['wall'] / ref['wall']:.2f}x, "
        f"CPU {ours['cpu'] / ref['cpu']:.2f}x, "
        f"peak RSS {ours['peak_rss'] / ref['peak_rss']:.2f}x, "
        f"bytes on disk {ours['bytes'] / ref['bytes']:.3f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tool", default=OURS)
    parser.add_argument("--out")
    parser.add_argument("--shape", type=int, nargs=3, default=list(SMALL))
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--lazy", action="store_true")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument(
        "--cheap",
        action="store_true",
        help="1024^3 from a source costing almost nothing (copies of 8 blocks): engines alone",
    )
    parser.add_argument("--big", action="store_true", help="also write 1024^3 (lazy, 5 levels)")
    parser.add_argument(
        "--big-tools",
        nargs="*",
        default=[OURS, REFERENCE, "ngff-zarr (bin_shrink)"],
        help="tools for --big",
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="threads vs LocalCluster vs dask CLI, lazy, 5 levels, at --dist-sizes",
    )
    parser.add_argument("--dist-sizes", type=int, nargs="*", default=[512, 1024])
    parser.add_argument("--no-small", action="store_true", help="skip the small comparison")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool (median kept)")
    parser.add_argument("--tools", nargs="*", default=list(TOOLS))
    parser.add_argument("--tmp", default=None, help="folder for the stores")
    parser.add_argument("--json", type=Path, default=None, help="results file (default: dated)")
    parser.add_argument(
        "--provisional", action="store_true", help="mark the results file as a small run"
    )
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    tmp = Path(args.tmp or tempfile.mkdtemp(prefix="bench-write-"))
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"# {machine()}\n# load average at start: {load()}\n")
    results: list[dict] = []
    if not args.no_small:
        shape = tuple(args.shape)
        source_bytes = int(np.prod(shape)) * 2
        print(
            f"## write {'x'.join(map(str, shape))} uint16 ({source_bytes / 2**20:.0f} MiB, in "
            f"memory) to {args.levels} levels, median of {args.repeat}\n"
        )
        rows = compare(args.tools, shape, args.levels, tmp, args.repeat, lazy=args.lazy)
        print(table(rows, source_bytes, REFERENCE if REFERENCE in args.tools else OURS))
        print(summary(rows))
        case = f"{'x'.join(map(str, shape))} uint16, {args.levels} levels"
        results += [_result(case, r) for r in rows]
    if args.big:
        source_bytes = int(np.prod(BIG)) * 2
        print(
            f"\n## write {'x'.join(map(str, BIG))} uint16 (2 GiB, lazy dask source generated "
            f"chunk by chunk) to 5 levels, median of {args.repeat}\n"
        )
        rows = compare(args.big_tools, BIG, 5, tmp, args.repeat, lazy=True)
        print(table(rows, source_bytes, REFERENCE if REFERENCE in args.big_tools else OURS))
        print(summary(rows))
        results += [_result(f"{'x'.join(map(str, BIG))} uint16, 5 levels, lazy", r) for r in rows]
    if args.cheap:
        source_bytes = int(np.prod(BIG)) * 2
        print(
            f"\n## write {'x'.join(map(str, BIG))} uint16 (2 GiB, lazy, every chunk a copy "
            f"of one of 8 blocks: the engines alone) to 5 levels, median of {args.repeat}\n"
        )
        rows = compare(args.big_tools, BIG, 5, tmp, args.repeat, lazy=True, cheap=True)
        print(table(rows, source_bytes, REFERENCE if REFERENCE in args.big_tools else OURS))
        print(summary(rows))
        case = f"{'x'.join(map(str, BIG))} uint16, 5 levels, cheap source"
        results += [_result(case, r) for r in rows]
    if args.distributed:
        for n in args.dist_sizes:
            shape = (n, n, n)
            source_bytes = n**3 * 2
            print(
                f"\n## napari-zarrnii on threads and on clusters: {n}^3 uint16 "
                f"({source_bytes / 2**20:.0f} MiB, lazy) to 5 levels, median of {args.repeat}\n"
            )
            rows = compare([OURS, *CLUSTERS], shape, 5, tmp, args.repeat, lazy=True)
            print(cluster_table(rows, source_bytes))
            results += [_result(f"{n}^3 uint16, 5 levels, lazy", r) for r in rows]
    print(f"\n# load average at end: {load()}")
    if args.tmp is None:
        shutil.rmtree(tmp, ignore_errors=True)
    settings = {
        "shape": args.shape,
        "levels": args.levels,
        "repeat": args.repeat,
        "big": args.big,
        "distributed": args.dist_sizes if args.distributed else [],
    }
    # a run of the cluster comparison alone is its own benchmark (chart and file), so
    # that it does not stand in for the comparison with the peers
    only_clusters = args.distributed and args.no_small and not (args.big or args.cheap)
    name = "write-distributed" if only_clusters else "write"
    saved = save_results(name, results, settings, out=args.json, provisional=args.provisional)
    print(f"\nresults: {saved}")


def _result(case: str, row: dict) -> dict:
    """One measurement (a median run) in the shape of the results file."""
    if "error" in row:
        return {"case": case, "tool": row["tool"], "metrics": {}, "error": str(row["error"])}
    metrics = {
        "wall_s": row["wall"],
        "cpu_s": row.get("cpu"),
        "peak_rss_mib": row["peak_rss"] / 2**20,
        "rss_above_source_mib": (row["peak_rss"] - row["rss_before"]) / 2**20,
        "disk_mib": row["bytes"] / 2**20,
    }
    return {"case": case, "tool": row["tool"], "metrics": metrics}


if __name__ == "__main__":
    main()
