"""Results files of the benchmarks: ``benchmarks/results/<name>-<date>.json``.

Every benchmark script saves what it measured in one JSON file of this shape, which
``benchmarks/plot.py`` turns into the charts of the documentation::

    {
      "benchmark": "write",             # which script
      "date": "2026-12-01T10:00:00+00:00",
      "provisional": false,             # a small run, to be replaced by a full one
      "machine": {...}, "versions": {...}, "settings": {...},
      "ours": "napari-zarrnii",         # the tool the ratios are taken against
      "results": [{"case": "...", "tool": "...", "metrics": {"wall_s": 1.2, ...}}, ...]
    }
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
OURS = "napari-zarrnii"
_PACKAGES = (
    "napari-zarrnii",
    "zarr",
    "numcodecs",
    "dask",
    "napari",
    "napari-ome-zarr",
    "ome-zarr",
    "ngff-zarr",
)


def _versions() -> dict[str, str]:
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
    }
    try:
        info["loadavg"] = list(os.getloadavg())
    except OSError:
        pass
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        info["ram_gib"] = round(pages / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return info


def save_results(
    name: str,
    results: list[dict[str, Any]],
    settings: dict[str, Any],
    *,
    out: Path | None = None,
    provisional: bool = False,
) -> Path:
    """Write one results file and return its path.

    Parameters
    ----------
    name
        The benchmark (``write``, ``open``, ``roi``, ...).
    results
        ``{"case": ..., "tool": ..., "metrics": {name: number or None}}`` per measurement.
    settings
        The options of the run (sizes, repeats, ...).
    out
        Where to write (default ``benchmarks/results/<name>-<date>.json``).
    provisional
        Mark a small run made only so that the charts exist.
    """
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    payload = {
        "benchmark": name,
        "date": now.isoformat(),
        "provisional": provisional,
        "machine": _machine(),
        "versions": _versions(),
        "settings": settings,
        "ours": OURS,
        "results": results,
    }
    path = out or RESULTS / f"{name}-{now:%Y-%m-%d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return path
