"""Bar charts of the benchmark results for the documentation.

``python benchmarks/plot.py`` reads every ``benchmarks/results/*.json``, keeps the
newest file of each benchmark and writes ``docs/images/bench-<benchmark>.png``:

* benchmarks with peers (``write``, ``open``, and any file with a ``summary`` per case
  and reader, such as ``browse``): for every metric, how many times more the peer
  needs than napari-zarrnii (time, memory, bytes; above 1 means napari-zarrnii needs
  less), one bar per case and peer;
* benchmarks of napari-zarrnii alone (``roi``, ``s3``): each metric per step;
* ``*-distributed`` benchmarks: napari-zarrnii on clusters against napari-zarrnii on
  threads (in the peers' charts these rows are left out).

Results files are described in ``benchmarks/_results.py``.  Run it again after
re-running a benchmark; the charts of a provisional (small) run say so in their title.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, NullFormatter

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
IMAGES = HERE.parent / "docs" / "images"
OURS = "napari-zarrnii"

#: Readable names of the metrics in the results files.
LABELS = {
    "wall_s": "wall time",
    "cpu_s": "CPU time",
    "open_s": "open (second in a session)",
    "first_open_s": "first open",
    "peak_rss_mib": "peak memory",
    "rss_above_source_mib": "memory above the source",
    "disk_mib": "bytes on disk",
    "chunks": "chunks read",
    "first_open": "first open",
    "open": "open",
    "zsteps_out": "z-steps, zoomed out",
    "zsteps_in": "z-steps, zoomed in",
    "zoom_in": "zoom in",
    "pan": "pan",
    "reader_cost": "reader's own cost",
    "requests": "requests",
    "put": "PUT requests",
    "get": "GET requests",
    "head": "HEAD requests",
    "other_requests": "other requests",
    "request_errors": "answers with an error status",
    "stored_mib": "stored",
}
#: On a cluster, at most this many times the threaded wall time is the goal.
CLUSTER_GOAL = 1.25
UNITS = {"_s": "s", "_mib": "MiB", "chunks": "chunks"}


def load(folder: Path = RESULTS) -> dict[str, dict[str, Any]]:
    """The newest results file of each benchmark, by benchmark name."""
    newest: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        dated = re.match(r"(.+?)-\d{4}-\d{2}-\d{2}", path.stem)
        name = data.get("benchmark") or (dated.group(1) if dated else path.stem)
        data["_file"] = path.name
        if name not in newest or str(data.get("date", "")) >= str(newest[name].get("date", "")):
            newest[name] = data
    return newest


def _median(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("median")
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _is_cluster(tool: str) -> bool:
    """A row of our own engine on a cluster (compared with our threads, not a peer)."""
    return "cluster" in tool.lower() or "scheduler" in tool.lower()


def ratios(
    data: dict[str, Any], clusters: bool = False
) -> dict[str, dict[tuple[str, str], float]]:
    """metric -> {(case, peer): peer's value / ours} for the cases both measured.

    With ``clusters``, the rows of napari-zarrnii on a cluster instead of the peers'.
    """
    values: dict[str, dict[str, dict[str, float]]] = {}  # metric -> case -> tool -> value
    if "summary" in data:  # per case, per reader, per metric: {median, min, max, n}
        for case, readers in data["summary"].items():
            for tool, metrics in readers.items():
                for metric, stats in metrics.items():
                    value = _median(stats)
                    if value is not None:
                        values.setdefault(metric, {}).setdefault(case, {})[tool] = value
    else:
        for row in data.get("results", []):
            for metric, value in row.get("metrics", {}).items():
                number = _median(value)
                if number is not None:
                    values.setdefault(metric, {}).setdefault(row["case"], {})[row["tool"]] = number
    ours = data.get("ours", OURS)
    found: dict[str, dict[tuple[str, str], float]] = {}
    for metric, cases in values.items():
        for case, tools in cases.items():
            base = tools.get(ours)
            if not base or base <= 0:
                continue
            for tool, value in tools.items():
                if tool not in (ours, "floor") and value > 0 and _is_cluster(tool) == clusters:
                    found.setdefault(metric, {})[(case, tool)] = value / base
    return found


def _title(name: str, data: dict[str, Any]) -> str:
    date = str(data.get("date", ""))[:10]
    note = " — provisional run" if data.get("provisional") else ""
    return f"{name} benchmark, {date}{note}"


def plot_ratios(name: str, data: dict[str, Any], out: Path, clusters: bool = False) -> Path | None:
    """Grouped horizontal bars: one panel per metric, one bar per (case, peer).

    With ``clusters``: one bar per (case, cluster), napari-zarrnii on the cluster
    against napari-zarrnii on threads; green where the time is within
    :data:`CLUSTER_GOAL` and the memory or bytes are no more than on threads.
    """
    found = ratios(data, clusters=clusters)
    if not found:
        return None
    metrics = list(found)
    height = sum(1.0 + 0.32 * len(found[m]) for m in metrics) + 0.8
    all_cases = {case for m in metrics for (case, _) in found[m]}
    longest = max(
        len(tool if len(all_cases) == 1 else f"{case} — {tool}")
        for m in metrics
        for (case, tool) in found[m]
    )
    # wide enough for the bar labels and the bars beside them
    width = max(8.5, 4.0 + 0.062 * longest)
    fig, axes = plt.subplots(len(metrics), 1, figsize=(width, height), squeeze=False)
    for ax, metric in zip(axes[:, 0], metrics):
        items = sorted(found[metric].items())
        cases = {case for (case, _), _ in items}
        labels = [tool if len(cases) == 1 else f"{case} — {tool}" for (case, tool), _ in items]
        values = [v for _, v in items]
        if clusters:
            limit = CLUSTER_GOAL if metric.endswith("_s") else 1.0 + 1e-3
            colors = ["#2e7d32" if v <= limit else "#c62828" for v in values]
        else:
            colors = ["#2e7d32" if v >= 1 else "#c62828" for v in values]
        bars = ax.barh(range(len(values)), values, color=colors)
        ax.set_yticks(range(len(values)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(1.0, color="#555555", linewidth=1)
        ax.set_xscale("log")
        where = f" ({next(iter(cases))})" if len(cases) == 1 else ""
        # at the right edge of the bars: a centred title runs off a narrow panel
        ratio = "cluster ÷ threads" if clusters else "peer ÷ napari-zarrnii"
        if clusters and metric in ("peak_rss_mib", "rss_above_source_mib"):
            ratio += " (the client process)"
        ax.set_title(f"{LABELS.get(metric, metric)}{where}: {ratio}", fontsize=9, loc="right")
        for bar, value in zip(bars, values):
            ax.annotate(
                f"{value:.2g}x",
                (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
            )
        low, high = min([*values, 1.0]), max([*values, 1.0])
        ax.set_xlim(low / 1.6, high * 2.2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="x", labelsize=7)
    legend = (
        f"napari-zarrnii on a cluster against its threads; goal: time at most {CLUSTER_GOAL}x"
        if clusters
        else "above 1: napari-zarrnii needs less"
    )
    fig.suptitle(_title(name, data) + "\n" + legend, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / height))  # room for the two-line title
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _unit(metric: str) -> str:
    return next((u for suffix, u in UNITS.items() if metric.endswith(suffix)), "")


def plot_steps(name: str, data: dict[str, Any], out: Path) -> Path | None:
    """One panel per metric, one bar per case (a benchmark of napari-zarrnii alone)."""
    rows = [r for r in data.get("results", []) if r.get("metrics")]
    if not rows:
        return None
    metrics = list(dict.fromkeys(m for r in rows for m in r["metrics"]))
    ncols = min(len(metrics), 4)
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(4.2 * ncols, (0.45 * len(rows) + 1.2) * nrows + 0.4),
        squeeze=False,
    )
    for ax in axes.flat[len(metrics) :]:
        ax.set_visible(False)
    labels = [r["case"] for r in rows]
    for k, (ax, metric) in enumerate(zip(axes.flat, metrics)):
        values = [_median(r["metrics"].get(metric)) or 0.0 for r in rows]
        ax.barh(range(len(values)), values, color="#3f51b5")
        first = k % ncols == 0
        ax.set_yticks(range(len(values)), labels if first else [""] * len(values), fontsize=8)
        ax.invert_yaxis()
        ax.set_title(
            f"{LABELS.get(metric, metric)} ({_unit(metric)})".replace(" ()", ""), fontsize=9
        )
        ax.tick_params(axis="x", labelsize=7)
        for y, value in enumerate(values):
            ax.annotate(
                f"{value:.3g}",
                (value, y),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
            )
        ax.set_xlim(0, max([*values, 1e-9]) * 1.3)
    fig.suptitle(_title(name, data), fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_all(folder: Path = RESULTS, images: Path = IMAGES) -> list[Path]:
    """Write the chart of every benchmark with results; returns the files written."""
    images.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in sorted(load(folder).items()):
        out = images / f"bench-{name}.png"
        if name.endswith("-distributed"):  # our engine on clusters against its threads
            made = plot_ratios(name, data, out, clusters=True)
        else:
            made = plot_ratios(name, data, out) or plot_steps(name, data, out)
        if made is not None:
            written.append(made)
    return written


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--images", type=Path, default=IMAGES)
    args = parser.parse_args(list(argv) if argv is not None else None)
    for path in plot_all(args.results, args.images):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
