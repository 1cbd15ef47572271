"""Browsing benchmark: what a napari user lives through with huge multiscale OME-Zarr.

napari-zarrnii and napari-ome-zarr (or any reader plugin given with ``--readers``)
browse the same stores with the same steps in the same run, each measurement in a
fresh napari process (``browse_child.py``) with a 1200x900 window:

* first open: from process start (interpreter and imports included) to the first
  slice drawn after ``viewer.open(path, plugin=...)``; and napari's floor, the same
  for two tiny in-memory multiscale layers (``add_image(..., multiscale=True)``), so
  "first open - floor" is what the reader costs;
* 10 z-steps out-zoomed (whole plane in view; napari shows the coarsest level that
  still has a voxel per screen pixel: level 0 of 1024^3 in this window, level 2 of
  4096^3);
* zoom in (camera centred, 2 screen pixels per level-0 voxel: napari shows level 0);
* 10 z-steps zoomed in at level 0;
* a pan across the full-resolution plane in 10 steps, left edge to right edge;
* the peak RSS of the process.

Every step is timed until the canvas has drawn the new data (see ``browse_child.py``
for how that is detected).  Cases: 1024^3 and 4096^3 uint16 volumes, 2 channels,
64^3 chunks, pyramids down to 256^3, as NGFF 0.4 (zarr v2) and NGFF 0.5 (zarr v3);
a 96-well plate written by ome-zarr-py; the 1024^3 NGFF 0.5 volume served over HTTP
by a loopback server that adds 30 ms to every request and counts requests per phase.
The data are written once into ``--data-dir`` and reused (``browse_data.py``
says which chunks hold data: the 4096^3 volumes only where the benchmark looks).

Run by hand, never by the test suite (needs an X display)::

    xvfb-run -a -s "-screen 0 1600x1200x24" env PYTHONPATH=$PWD/src \\
        python benchmarks/bench_browse.py                 # everything, 3 repeats
    ... bench_browse.py --cases 1024-v3 --repeat 1        # a quick look
    ... bench_browse.py --compare benchmarks/results/browse-2026-01-01.json

Prints Markdown tables and writes a JSON file (``benchmarks/results/browse-<date>.json``
unless ``--out``) with every run, the summaries and the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import browse_data  # noqa: E402

ZARRNII = "napari-zarrnii"
FLOOR = "floor"  # pseudo-reader: napari with two tiny in-memory multiscale layers
PEER = "napari-ome-zarr"
# case name -> (store in the data dir, served over HTTP?)
CASES: dict[str, tuple[str, bool]] = {
    "1024-v2": ("vol1024-v2.ome.zarr", False),
    "1024-v3": ("vol1024-v3.ome.zarr", False),
    "4096-v2": ("vol4096-v2.ome.zarr", False),
    "4096-v3": ("vol4096-v3.ome.zarr", False),
    "plate": ("plate96.ome.zarr", False),
    "http-1024-v3": ("vol1024-v3.ome.zarr", True),
}
PHASES = ("open", "zsteps_out", "zoom_in", "zsteps_in", "pan")
LABELS = {
    "first_open": "first open (process start to drawn)",
    "reader_cost": "first open - floor",
    "open": "viewer.open to drawn",
    "zsteps_out": "10 z-steps, out-zoomed",
    "zoom_in": "zoom in to level 0",
    "zsteps_in": "10 z-steps, level 0",
    "pan": "pan, 10 steps at level 0",
    "peak_rss_mib": "peak RSS (MiB)",
}


# --------------------------------------------------------------------------- data
def prepare_data(data_dir: Path, cases: list[str]) -> dict[str, Any]:
    """Write (or reuse) the stores the cases need; print chunks written per level."""
    data_dir.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {}
    for case in cases:
        store, _ = CASES[case]
        if store in info:
            continue
        path = data_dir / store
        if store.startswith("plate"):
            info[store] = browse_data.write_plate(path)
        else:
            size, fmt = int(store[3:7]), int(store[9])
            info[store] = browse_data.write_volume(path, size, fmt, sparse=size > 1024)
        levels = info[store]["levels"]
        written = ", ".join(
            f"L{lv['level']} {lv['chunks_written']}"
            + (f"/{lv['chunks_total']}" if "chunks_total" in lv else "")
            for lv in levels
        )
        print(f"{store}: chunks written per level: {written}", file=sys.stderr)
    return info


# --------------------------------------------------------------------------- HTTP
class SlowCountingHandler(SimpleHTTPRequestHandler):
    """Serves the data directory; adds latency to and counts every request.

    ``GET /__bench/requests`` returns the counts (neither delayed nor counted)."""

    protocol_version = "HTTP/1.1"  # keep-alive, as a real server

    def __init__(self, *args: Any, stats: dict[str, Any], latency: float, **kwargs: Any):
        self.stats = stats
        self.latency = latency
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _count(self) -> None:
        with self.stats["lock"]:
            self.stats["requests"] += 1
        time.sleep(self.latency)

    def do_GET(self) -> None:
        if self.path.startswith("/__bench/requests"):
            with self.stats["lock"]:
                body = json.dumps({"requests": self.stats["requests"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self._count()
        super().do_GET()

    def do_HEAD(self) -> None:
        self._count()
        super().do_HEAD()


def start_server(root: Path, latency: float) -> tuple[ThreadingHTTPServer, str]:
    stats: dict[str, Any] = {"requests": 0, "lock": threading.Lock()}
    handler = functools.partial(
        SlowCountingHandler, directory=str(root), stats=stats, latency=latency
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# --------------------------------------------------------------------------- runs
def run_child(args: dict[str, Any], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """One fresh napari process; its JSON result or {"error": ...}."""
    args = dict(args, t_launch=time.perf_counter())
    try:
        out = subprocess.run(
            [sys.executable, str(HERE / "browse_child.py"), json.dumps(args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        tail = (out.stderr or "").strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit code {out.returncode}"}
    return json.loads(lines[-1])


def child_env(config_dir: Path, napari_async: bool) -> dict[str, str]:
    env = dict(os.environ)
    # a fresh settings file: the user's napari settings do not leak into the numbers
    env["NAPARI_CONFIG"] = str(config_dir / "settings.yaml")
    env["NAPARI_ASYNC"] = "1" if napari_async else "0"
    src = HERE.parent / "src"
    if src.is_dir():  # measure this checkout's napari-zarrnii
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    return env


def metrics(result: dict[str, Any]) -> dict[str, float | None]:
    """The numbers of one run, flat (seconds, MiB, request counts)."""
    if "error" in result:
        return {}
    phases = result["phases"]
    m: dict[str, float | None] = {
        "first_open": result["first_open"],
        "peak_rss_mib": result["peak_rss_mib"],
    }
    for name in PHASES:
        if name in phases:
            m[name] = phases[name]["seconds"]
            if phases[name].get("requests") is not None:
                m[f"requests_{name}"] = phases[name]["requests"]
    return m


def check(result: dict[str, Any]) -> list[str]:
    """What makes a run suspect: missing chunks displayed, level 0 not reached."""
    problems = []
    for name, ph in result.get("phases", {}).items():
        if ph["zero_fraction"] > 0:
            problems.append(f"{name}: {ph['zero_fraction']:.1%} of displayed voxels are 0")
        if name in ("zoom_in", "zsteps_in", "pan") and ph["levels"] != [0]:
            problems.append(f"{name}: levels {ph['levels']} shown, expected level 0")
        if ph.get("nudges"):
            problems.append(f"{name}: {ph['nudges']} redraw(s) had to be requested")
    return problems


def stats(values: list[float]) -> dict[str, float] | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per case and reader: median, min, max of every metric.

    ``reader_cost`` is a run's first open minus the first open of the floor run of
    the same case and round (run just before it, so both see the same machine load)."""
    floors = {
        (run["case"], run["repeat"]): run["result"]["first_open"]
        for run in runs
        if run["reader"] == FLOOR and "first_open" in run["result"]
    }
    values: dict[str, dict[str, dict[str, list]]] = {}
    for run in runs:
        per = values.setdefault(run["case"], {}).setdefault(run["reader"], {})
        for key, value in metrics(run["result"]).items():
            per.setdefault(key, []).append(value)
        floor = floors.get((run["case"], run["repeat"]))
        if run["reader"] != FLOOR and floor is not None and "first_open" in run["result"]:
            per.setdefault("reader_cost", []).append(run["result"]["first_open"] - floor)
    return {
        case: {reader: {k: stats(v) for k, v in per.items()} for reader, per in readers.items()}
        for case, readers in values.items()
    }


# --------------------------------------------------------------------------- report
def fmt_cell(s: dict[str, float] | None, digits: int = 2) -> str:
    if not s:
        return "-"
    if s["n"] == 1 or s["min"] == s["max"]:
        return f"{s['median']:.{digits}f}"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def markdown(summary: dict[str, Any], readers: list[str]) -> str:
    ours = readers[0]
    peers = readers[1:]
    lines = []
    floors = [
        f"{case} {fmt_cell(per[FLOOR]['first_open'])} ({fmt_cell(per[FLOOR]['open'])} of it "
        "from add_image)"
        for case, per in summary.items()
        if per.get(FLOOR, {}).get("first_open")
    ]
    if floors:
        lines.append(
            "napari's floor, process start to two tiny in-memory multiscale layers drawn "
            "(s): " + "; ".join(floors) + "\n"
        )
    head = "| case | phase | " + " | ".join(readers)
    head += "".join(f" | {ours} / {p}" for p in peers) + " |"
    lines += [head, "|---|---|" + "---:|" * (len(readers) + len(peers))]
    for case, per in summary.items():
        keys = ["first_open", "reader_cost", *PHASES, "peak_rss_mib"]
        for key in keys:
            cells = [per.get(r, {}).get(key) for r in readers]
            if not any(cells):
                continue
            digits = 0 if key == "peak_rss_mib" else 2
            row = f"| {case} | {LABELS[key]}{' (s)' if key != 'peak_rss_mib' else ''} | "
            row += " | ".join(fmt_cell(c, digits) for c in cells)
            for c in cells[1:]:
                ratio = "-"
                if cells[0] and c and c["median"] > 0:
                    ratio = f"{cells[0]['median'] / c['median']:.2f}"
                row += f" | {ratio}"
            lines.append(row + " |")
    req_rows = []
    for case, per in summary.items():
        for r in readers:
            counts = [per.get(r, {}).get(f"requests_{p}") for p in PHASES]
            if any(counts):
                req_rows.append(
                    f"| {case} | {r} | " + " | ".join(fmt_cell(c, 0) for c in counts) + " |"
                )
    if req_rows:
        lines += [
            "",
            "HTTP requests per phase (median, min-max):",
            "",
            "| case | reader | open | z-steps out | zoom in | z-steps in | pan |",
            "|---|---|---:|---:|---:|---:|---:|",
            *req_rows,
        ]
    return "\n".join(lines)


def compare(new: dict[str, Any], old_path: Path) -> str:
    old = json.loads(old_path.read_text())
    lines = [
        f"\nCompared with {old_path} ({old.get('date', '?')}): median new / old",
        "",
        "| case | reader | phase | old | new | new / old |",
        "|---|---|---|---:|---:|---:|",
    ]
    for case, per in new["summary"].items():
        for reader, ms in per.items():
            for key, s in ms.items():
                o = old.get("summary", {}).get(case, {}).get(reader, {}).get(key)
                if s and o and o["median"]:
                    lines.append(
                        f"| {case} | {reader} | {LABELS.get(key, key)} | {o['median']:.2f} "
                        f"| {s['median']:.2f} | {s['median'] / o['median']:.2f} |"
                    )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["ram_gib"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return info


def versions() -> dict[str, str]:
    out = {}
    for dist in (
        "napari",
        "napari-ome-zarr",
        "ome-zarr",
        "zarr",
        "dask",
        "vispy",
        "numcodecs",
        "fsspec",
        "PyQt6",
    ):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=HERE,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "../src"],
            cwd=HERE,
            capture_output=True,
            text=True,
        ).stdout.strip()
        out["napari-zarrnii"] = commit + (" (modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        help=f"comma-separated, from {', '.join(CASES)} (default: all)",
    )
    parser.add_argument(
        "--readers",
        default=f"{ZARRNII},{PEER}",
        help="plugin names; the first is compared with the others",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/zarrnii-bench"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--compare", type=Path, default=None, help="an earlier results JSON")
    parser.add_argument("--window", default="1200x900", help="napari window, WIDTHxHEIGHT")
    parser.add_argument("--zsteps", type=int, default=10)
    parser.add_argument("--pan-steps", type=int, default=10)
    parser.add_argument(
        "--zoom-in", type=float, default=2.0, help="screen pixels per level-0 voxel when zoomed in"
    )
    parser.add_argument("--latency", type=float, default=0.030, help="seconds per HTTP request")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument(
        "--napari-async",
        action="store_true",
        help="NAPARI_ASYNC=1 (napari's asynchronous slicing)",
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds per process")
    parser.add_argument(
        "--report", type=Path, default=None, help="print the tables of a results JSON, run nothing"
    )
    args = parser.parse_args()
    if args.report:
        report(json.loads(args.report.read_text()), args.report, args.compare)
        return
    if not os.environ.get("DISPLAY"):
        sys.exit(
            'needs an X display: xvfb-run -a -s "-screen 0 1600x1200x24" python '
            + " ".join(sys.argv)
        )
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        sys.exit(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    readers = [r.strip() for r in args.readers.split(",") if r.strip()]
    results = measure(args, cases, readers)
    date = dt.datetime.fromisoformat(results["date"])
    out = args.out or HERE / "results" / f"browse-{date:%Y-%m-%d}.json"
    if args.out is None and out.exists():  # a second run the same day keeps the first
        out = out.with_name(f"browse-{date:%Y-%m-%d-%H%M}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    report(results, out, args.compare)


def measure(args: argparse.Namespace, cases: list[str], readers: list[str]) -> dict[str, Any]:
    """Run every case, reader and repeat; the results as saved to JSON."""
    t_start = time.perf_counter()
    date = dt.datetime.now().astimezone()
    load_start = os.getloadavg()
    data = prepare_data(args.data_dir, cases)
    t_data = time.perf_counter() - t_start

    server, base_url = start_server(args.data_dir, args.latency)
    common = {
        "window": [int(v) for v in args.window.split("x")],
        "zsteps": args.zsteps,
        "pan_steps": args.pan_steps,
        "zoom_in": args.zoom_in,
    }
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as cfg:
        env = child_env(Path(cfg), args.napari_async)
        for case in cases:
            store, remote = CASES[case]
            for rep in range(args.repeat):
                order = readers if rep % 2 == 0 else readers[::-1]  # alternate who goes first
                for reader in ([] if args.no_floor else [FLOOR]) + order:
                    child = dict(
                        common,
                        mode="floor" if reader == FLOOR else "reader",
                        plugin=reader,
                        path=f"{base_url}/{store}" if remote else str(args.data_dir / store),
                    )
                    if remote and reader != FLOOR:
                        child["counter_url"] = f"{base_url}/__bench/requests"
                    load = os.getloadavg()[0]
                    result = run_child(child, env, args.timeout)
                    runs.append(
                        {
                            "case": case,
                            "reader": reader,
                            "repeat": rep,
                            "loadavg_1min_before": load,
                            "result": result,
                        }
                    )
                    problems = check(result)
                    short = {k: round(v, 2) for k, v in metrics(result).items() if v is not None}
                    print(
                        f"{case} #{rep + 1} {reader}: {result.get('error') or short}"
                        + (f"  PROBLEMS: {problems}" if problems else ""),
                        file=sys.stderr,
                    )
    server.shutdown()
    mach = machine()
    mach["loadavg_start"] = load_start
    mach["loadavg_end"] = os.getloadavg()
    return {
        "date": date.isoformat(timespec="seconds"),
        "machine": mach,
        "versions": versions(),
        "settings": dict(
            common,
            cases=cases,
            readers=readers,
            repeat=args.repeat,
            latency_s=args.latency,
            napari_async=args.napari_async,
        ),
        "data": data,
        "summary": summarize(runs),
        "runs": runs,
        "wall_seconds": {
            "total": round(time.perf_counter() - t_start, 1),
            "data": round(t_data, 1),
        },
    }


def report(results: dict[str, Any], path: Path, compare_with: Path | None) -> None:
    """Print the Markdown tables of a results dict (summaries recomputed from its runs)."""
    runs = results["runs"]
    readers = results["settings"]["readers"]
    summary = summarize(runs)
    print(markdown(summary, readers))
    bad = [
        f"{r['case']} {r['reader']} #{r['repeat'] + 1}: {p}"
        for r in runs
        for p in check(r["result"]) + ([r["result"]["error"]] if "error" in r["result"] else [])
    ]
    if bad:
        print("\nSuspect runs:\n" + "\n".join(f"- {b}" for b in bad))
    if compare_with:
        print(compare(dict(results, summary=summary), compare_with))
    mach, wall = results["machine"], results["wall_seconds"]
    print(
        f"\n{mach.get('cpu', '?')}, {mach['cores']} cores, {mach.get('ram_gib', '?')} GiB; "
        f"{results['date']}; load average {mach['loadavg_start'][0]:.1f} at the start, "
        f"{mach['loadavg_end'][0]:.1f} at the end; wall time {wall['total']:.0f} s "
        f"(data {wall['data']:.0f} s); results: {path}"
    )


if __name__ == "__main__":
    main()
