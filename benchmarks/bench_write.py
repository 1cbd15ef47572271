"""Benchmark: write a 4-level OME-Zarr pyramid with napari-zarrnii and its peers.

Run by hand (not part of the tests)::

    python benchmarks/bench_write.py            # 256x512x512 uint16, 4 levels, 3 tools
    python benchmarks/bench_write.py --big      # also our 1024^3 uint16, 5 levels, lazy

Every tool runs in its own subprocess, so peak RSS (``ru_maxrss`` of the child) is its
own.  The source volume (smooth structure + Gaussian noise, realistic compressibility)
is generated in the child before timing starts; it is the same for every tool.  Wall
time covers the whole write (pyramid + compression + metadata).  Bytes on disk are
counted afterwards.  A markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
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


def child(args: argparse.Namespace) -> None:
    shape = tuple(args.shape)
    out = Path(args.out)
    if args.lazy:
        data = lazy_volume(shape, CHUNKS)
    else:
        data = volume(shape)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    TOOLS[args.tool](data, out, args.levels, args.workers)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"wall": wall, "peak_rss": peak, "rss_before": rss_before}))


# -- parent ---------------------------------------------------------------------------


def measure(tool: str, shape, levels: int, tmp: Path, lazy=False, workers=None) -> dict:
    out = tmp / f"{tool.split()[0]}-{'x'.join(map(str, shape))}.ome.zarr"
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


def table(rows: list[dict], source_bytes: int) -> str:
    ok = [r for r in rows if "error" not in r]
    ours = next((r for r in ok if r["tool"] == "napari-zarrnii"), None)
    lines = [
        "| tool | wall s | source MiB/s | peak RSS MiB | RSS above source MiB | MiB on disk "
        "| time vs ours | disk vs ours |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['tool']} | failed: {r['error']} | | | | | | |")
            continue
        ratio_t = r["wall"] / ours["wall"] if ours else float("nan")
        ratio_b = r["bytes"] / ours["bytes"] if ours else float("nan")
        lines.append(
            f"| {r['tool']} | {r['wall']:.2f} | {source_bytes / 2**20 / r['wall']:.0f} "
            f"| {r['peak_rss'] / 2**20:.0f} | {(r['peak_rss'] - r['rss_before']) / 2**20:.0f} "
            f"| {r['bytes'] / 2**20:.1f} | {ratio_t:.2f}x | {ratio_b:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tool", default="napari-zarrnii")
    parser.add_argument("--out")
    parser.add_argument("--shape", type=int, nargs=3, default=list(SMALL))
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--lazy", action="store_true")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--big", action="store_true", help="also write 1024^3 (lazy, 5 levels)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool (best kept)")
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
    shape = tuple(args.shape)
    source_bytes = int(np.prod(shape)) * 2
    print(
        f"# write {'x'.join(map(str, shape))} uint16 ({source_bytes / 2**20:.0f} MiB) to "
        f"{args.levels} levels, {os.cpu_count()} CPUs\n"
    )
    # Runs are interleaved (tool A, B, C, A, B, C, ...) and the best of each kept, so a
    # burst of load from other processes does not favour one tool.
    runs: dict[str, list[dict]] = {tool: [] for tool in args.tools}
    for _ in range(args.repeat):
        for tool in args.tools:
            runs[tool].append(measure(tool, shape, args.levels, tmp))
            print(f"  {tool}: {runs[tool][-1].get('wall', 'failed')}", file=sys.stderr)
    rows = []
    for tool in args.tools:
        good = [r for r in runs[tool] if "error" not in r]
        rows.append(min(good, key=lambda r: r["wall"]) if good else runs[tool][0])
    print(table(rows, source_bytes))
    ours = next((r for r in rows if r["tool"] == "napari-zarrnii" and "error" not in r), None)
    peers = [r for r in rows if r["tool"] != "napari-zarrnii" and "error" not in r]
    if ours and peers:
        fastest = min(peers, key=lambda r: r["wall"])
        print(
            f"\nspeed-up vs the fastest peer ({fastest['tool']}): "
            f"{fastest['wall'] / ours['wall']:.2f}x"
        )
    case = f"{'x'.join(map(str, shape))} uint16, {args.levels} levels"
    results = [_result(case, r) for r in rows]
    if args.big:
        big = measure("napari-zarrnii", BIG, 5, tmp, lazy=True)
        results.append(_result(f"{'x'.join(map(str, BIG))} uint16, 5 levels, lazy", big))
        print(
            f"\n# napari-zarrnii, {'x'.join(map(str, BIG))} uint16 (2 GiB) lazy dask source, "
            "5 levels\n"
        )
        print(table([big], int(np.prod(BIG)) * 2))
        if "error" not in big:
            verdict = "OK" if big["peak_rss"] < 600e6 else "TOO HIGH"
            print(f"\npeak RSS {big['peak_rss'] / 1e6:.0f} MB (limit 600 MB): {verdict}")
    if args.tmp is None:
        shutil.rmtree(tmp, ignore_errors=True)
    settings = {"shape": list(shape), "levels": args.levels, "repeat": args.repeat}
    saved = save_results("write", results, settings, out=args.json, provisional=args.provisional)
    print(f"\nresults: {saved}")


def _result(case: str, row: dict) -> dict:
    """One measurement in the shape of the results file."""
    if "error" in row:
        return {"case": case, "tool": row["tool"], "metrics": {}, "error": str(row["error"])}
    metrics = {
        "wall_s": row["wall"],
        "peak_rss_mib": row["peak_rss"] / 2**20,
        "rss_above_source_mib": (row["peak_rss"] - row["rss_before"]) / 2**20,
        "disk_mib": row["bytes"] / 2**20,
    }
    return {"case": case, "tool": row["tool"], "metrics": metrics}


if __name__ == "__main__":
    main()
