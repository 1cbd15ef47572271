"""The ``napari-zarrnii`` command line: ``info``, ``convert`` and ``crop``.

Each subcommand is an ``add_<name>_parser(subparsers)`` function that registers its
arguments and sets ``func`` to a ``cmd_<name>(args) -> int`` function; add a
subcommand by writing both and listing the first in :data:`SUBCOMMANDS`.

Errors of this package (:class:`~napari_zarrnii.ZarrNiiError`: missing file, not an
image, destination exists, bad box, no scheduler, ...) print one line on stderr and
exit with status 2, without a traceback; other exceptions are bugs and keep their
traceback.

Paths may be object-store URLs (``s3://bucket/image.ome.zarr``): credentials and
endpoint come from the environment (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ...)
or from ``--storage-option KEY=VALUE``.  ``convert`` and ``crop`` run on a
dask.distributed cluster with ``--scheduler ADDRESS``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ._errors import ZarrNiiError

__all__ = [
    "SUBCOMMANDS",
    "build_parser",
    "cmd_convert",
    "cmd_crop",
    "cmd_info",
    "main",
    "parse_storage_options",
]

log = logging.getLogger(__name__)


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _open(path: str, storage_options: dict[str, Any] | None = None) -> Any:
    from ._zarrnii import ZarrNii
    from .core.store import is_url

    if storage_options and is_url(path):
        return ZarrNii.open(path, storage_options=storage_options)
    return ZarrNii.open(path)


def parse_storage_options(items: Sequence[str] | None) -> dict[str, Any]:
    """``['KEY=VALUE', ...]`` as a dict: VALUE as JSON when it parses, else text.

    A dotted key fills a nested mapping: ``client_kwargs.region_name=eu-west-1``
    gives ``{'client_kwargs': {'region_name': 'eu-west-1'}}``.

    Raises
    ------
    ValueError
        An item without ``=`` or with an empty key.
    """
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--storage-option {item!r}: expected KEY=VALUE")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        *parents, leaf = key.strip().split(".")
        node = out
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"--storage-option {item!r}: '{part}' is set to a value already")
            node = child
        node[leaf] = value
    return out


@contextlib.contextmanager
def _cluster(address: str | None) -> Iterator[Any]:
    """A client of the scheduler at ``address`` (closed on exit), or None for threads."""
    if not address:
        yield None
        return
    from .core.pyramid.cluster import connect

    with connect(address) as client:
        yield client


def _format_name(image: Any) -> str:
    if image.ngff_version is not None:
        zipped = ", zipped" if str(image.source or "").lower().endswith(".ozx") else ""
        return f"OME-NGFF {image.ngff_version}{zipped}"
    readers = (("tiff", "TIFF"), ("imaris", "Imaris"))
    return next((name for key, name in readers if key in image.attrs), "NIfTI")


def _fmt_tuple(values: Sequence[Any] | None, sep: str = "x") -> str:
    if values is None:
        return "-"
    return sep.join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in values)


class _Progress:
    """A tqdm bar fed by ``progress(done, total, message)`` callbacks."""

    def __init__(self, enabled: bool, desc: str) -> None:
        from tqdm import tqdm

        self._bar = tqdm(
            total=0, unit="block", desc=desc, disable=not enabled, file=sys.stderr, leave=True
        )

    def __call__(self, done: int, total: int, message: str) -> None:
        if self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        if message:
            self._bar.set_postfix_str(message, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


# ---------------------------------------------------------------------------------------
# info
# ---------------------------------------------------------------------------------------
def add_info_parser(sub: Any) -> None:
    """Register ``info PATH [--json]``."""
    p = sub.add_parser(
        "info",
        help="describe an OME-Zarr or NIfTI image",
        description="Levels, shapes, chunks, scale, translation, units, "
        "channels and storage per level.",
    )
    p.add_argument("path", help="OME-Zarr store (folder, .ozx or URL) or NIfTI file")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    _add_storage_option(p)
    p.set_defaults(func=cmd_info)


def _add_storage_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage-option",
        action="append",
        metavar="KEY=VALUE",
        help="option of the filesystem of a URL (s3fs, gcsfs, ...), for input and output, "
        "e.g. endpoint_url=http://localhost:9000, anon=true, "
        "client_kwargs.region_name=eu-west-1; repeat for more (default: the environment, "
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, ...)",
    )


def _info_dict(z: Any, rows: list[Any]) -> dict[str, Any]:
    image = z.pyramid
    return {
        "source": image.source,
        "format": _format_name(image).lower(),
        "name": image.name,
        "dtype": str(image.dtype),
        "axes": [{"name": a.name, "type": a.type, "unit": a.unit} for a in image.axes],
        "channels": [
            {
                "label": c.label,
                "color": c.color,
                "window": None if c.window is None else [c.window.start, c.window.end],
            }
            for c in image.channel_infos()
        ]
        if image.channel_axis is not None
        else [],
        "labels": list(image.labels),
        "levels": [
            {
                "level": i,
                "path": lvl.path,
                "shape": list(lvl.shape),
                "scale": list(lvl.scale),
                "translation": list(lvl.translation),
            }
            for i, lvl in enumerate(image.levels)
        ],
        "storage": [r.as_dict() for r in rows],
        "notes": list(image.notes),
    }


def cmd_info(args: argparse.Namespace) -> int:
    """Print what an image holds: axes, channels, levels and their storage."""
    from .core.storage import format_storage_report

    z = _open(args.path, parse_storage_options(args.storage_option))
    image = z.pyramid
    rows = z.storage_report()
    if args.json:
        _out(json.dumps(_info_dict(z, rows), indent=2))
        return 0
    fmt = _format_name(image)
    _out(f"{image.source}  ({fmt}, {image.dtype})")
    if image.name:
        _out(f"name: {image.name}")
    axes = ", ".join(
        f"{a.name} ({a.type or '?'}{', ' + a.unit if a.unit else ''})" for a in image.axes
    )
    _out(f"axes: {axes}")
    if image.channel_axis is not None:
        _out(f"channels ({image.num_channels}):")
        for i, c in enumerate(image.channel_infos()):
            window = "" if c.window is None else f"  window {c.window.start:g}-{c.window.end:g}"
            _out(f"  {i}: {c.label or '-'}  #{c.color}{window}")
    if image.labels:
        _out(f"labels: {', '.join(image.labels)}")
    _out(f"levels ({image.num_levels}):")
    header = ("level", "path", "shape", "chunks", "shards", "scale", "translation")
    table = [header]
    for r, lvl in zip(rows, image.levels):
        table.append(
            (
                str(r.level),
                lvl.path,
                _fmt_tuple(lvl.shape),
                _fmt_tuple(r.chunks),
                _fmt_tuple(r.shards),
                _fmt_tuple(lvl.scale, ", "),
                _fmt_tuple(lvl.translation, ", "),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        _out("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    _out("storage:")
    for line in format_storage_report(rows).splitlines():
        _out("  " + line)
    for note in image.notes:
        _out(f"note: {note}")
    return 0


# ---------------------------------------------------------------------------------------
# convert
# ---------------------------------------------------------------------------------------
def _add_write_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-layer",
        type=int,
        default=4,
        help="coarsest level written, e.g. 4 for levels 0-4 (default 4)",
    )
    p.add_argument(
        "--method",
        default="local_mean",
        choices=("local_mean", "nearest", "mode", "max", "min"),
        help="downsampling method (default local_mean)",
    )
    from .core.ngff import DEFAULT_NGFF_VERSION, WRITABLE_VERSIONS

    p.add_argument(
        "--ngff-version",
        default=DEFAULT_NGFF_VERSION,
        choices=WRITABLE_VERSIONS,
        help=f"OME-NGFF version (default {DEFAULT_NGFF_VERSION}): 0.4 = zarr v2, 0.5 = zarr "
        "v3, 0.6 = zarr v3 with coordinate systems (keeps the rotation of oblique images)",
    )
    p.add_argument(
        "--chunks",
        type=int,
        nargs="+",
        metavar="N",
        help="chunk shape, per spatial axis in array order (z y x) or per axis",
    )
    p.add_argument(
        "--shards",
        type=int,
        nargs="+",
        metavar="N",
        help="shard shape (NGFF 0.5 and 0.6 only), like --chunks; .ozx outputs shard "
        "2 chunks per spatial axis by default",
    )
    p.add_argument(
        "--downsample-factors",
        type=int,
        nargs="+",
        metavar="F",
        help="factors per spatial axis in array order, e.g. 1 2 2 to keep z",
    )
    p.add_argument(
        "--compressor",
        default=None,
        help="'default', 'none', 'blosc-zstd:3', 'blosc-lz4', 'zstd:3', 'gzip'",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="run the blocks on the workers of the dask.distributed scheduler at ADDRESS "
        "(e.g. tcp://10.0.0.5:8786); they read the input and write the output "
        "themselves, so both must be reachable from them",
    )
    _add_storage_option(p)


def add_convert_parser(sub: Any) -> None:
    """Register ``convert IN OUT [options]``."""
    p = sub.add_parser(
        "convert",
        help="NIfTI, TIFF or OME-Zarr to a multiscale OME-Zarr (or NIfTI)",
        description="Build a multiscale OME-Zarr from a NIfTI file, a TIFF/OME-TIFF "
        "file (needs tifffile) or one level of an OME-Zarr; an OUT ending in .ozx "
        "writes one zipped OME-Zarr file (RFC-9), .nii/.nii.gz writes NIfTI instead.",
    )
    p.add_argument(
        "input", help="NIfTI, TIFF or Imaris file, or OME-Zarr store (folder, .ozx or URL)"
    )
    p.add_argument(
        "output", help="destination .ome.zarr (folder or s3:// URL) or .ozx (or .nii/.nii.gz)"
    )
    p.add_argument(
        "--level", type=int, default=0, help="input level used as the new level 0 (default 0)"
    )
    _add_write_options(p)
    p.set_defaults(func=cmd_convert)


def _write(z: Any, output: str, args: argparse.Namespace, client: Any = None) -> Path | str:
    from .core.io import resolve_destination

    if resolve_destination(output).format.key == "nifti":
        return z.to_nifti(output, overwrite=args.overwrite, client=client)
    storage: dict[str, Any] = parse_storage_options(args.storage_option)
    if args.compressor is not None:
        storage["compressor"] = None if args.compressor.lower() == "none" else args.compressor
    bar = _Progress(not args.no_progress, "writing")
    try:
        return z.to_ome_zarr(
            output,
            max_layer=args.max_layer,
            scaling_method=args.method,
            downsample_factors=tuple(args.downsample_factors) if args.downsample_factors else None,
            chunks=tuple(args.chunks) if args.chunks else None,
            shards=tuple(args.shards) if args.shards else None,
            storage_options=storage or None,
            ngff_version=args.ngff_version,
            overwrite=args.overwrite,
            progress=bar,
            client=client,
        )
    finally:
        bar.close()


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert ``args.input`` to ``args.output``."""
    z = _open(args.input, parse_storage_options(args.storage_option)).get_level(args.level)
    with _cluster(args.scheduler) as client:
        out = _write(z, args.output, args, client)
    _out(f"wrote {out}")
    return 0


# ---------------------------------------------------------------------------------------
# crop
# ---------------------------------------------------------------------------------------
def add_crop_parser(sub: Any) -> None:
    """Register ``crop IN OUT (--bbox ... | --tissue) [--level L] [options]``."""
    p = sub.add_parser(
        "crop",
        help="crop full resolution to a box chosen at any level",
        description="Crop level 0 to a bounding box given (--bbox) or found (--tissue) at "
        "--level, mapped to level 0 through physical space; write the crop as "
        "OME-Zarr, or NIfTI when OUT ends in .nii/.nii.gz.",
    )
    p.add_argument("input", help="OME-Zarr store (folder, .ozx or URL) or NIfTI file")
    p.add_argument(
        "output", help="destination .ome.zarr (folder or s3:// URL), .ozx or .nii/.nii.gz"
    )
    box = p.add_mutually_exclusive_group(required=True)
    box.add_argument(
        "--bbox",
        type=float,
        nargs="+",
        metavar="V",
        help="zmin ymin xmin zmax ymax xmax: voxel indices at --level, "
        "max exclusive (ymin xmin ymax xmax for 2-D)",
    )
    box.add_argument(
        "--tissue",
        action="store_true",
        help="the bounding box of the tissue (Otsu threshold) at --level",
    )
    p.add_argument(
        "--level",
        type=int,
        default=None,
        help="level of --bbox / --tissue (default: 0 for --bbox, the coarsest for --tissue)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="tissue threshold (absolute, or a fraction of the range if < 1)",
    )
    _add_write_options(p)
    p.set_defaults(func=cmd_crop)


def cmd_crop(args: argparse.Namespace) -> int:
    """Crop level 0 of ``args.input`` and write it to ``args.output``."""
    from .core.roi import BoxError

    z = _open(args.input, parse_storage_options(args.storage_option))
    level = args.level if args.level is not None else (-1 if args.tissue else 0)
    at_level = z.get_level(level)
    n = len(at_level.voxel_size)
    if args.tissue:
        bounds = at_level.find_tissue_bounds(args.threshold)
    else:
        if len(args.bbox) != 2 * n:
            raise BoxError(
                f"--bbox needs {2 * n} values (min then max per spatial axis "
                f"{at_level.spatial_dims}), got {len(args.bbox)}"
            )
        bounds = list(zip(args.bbox[:n], args.bbox[n:]))
    full = at_level.map_bounds_to_level(bounds, 0)
    _out(f"box at level {at_level.level}: {_fmt_box(bounds)}")
    _out(f"box at level 0: {_fmt_box(full)}")
    crop = z.get_level(0).crop_with_bounding_box(full)
    with _cluster(args.scheduler) as client:
        out = _write(crop, args.output, args, client)
    _out(f"wrote {out}")
    return 0


def _fmt_box(bounds: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{lo:g}:{hi:g}" for lo, hi in bounds)


# ---------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------
#: Functions registering one subcommand each, in the order ``--help`` lists them.
SUBCOMMANDS: list[Callable[[Any], None]] = [add_info_parser, add_convert_parser, add_crop_parser]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand of :data:`SUBCOMMANDS`."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="napari-zarrnii",
        description="Inspect, convert and crop multiscale OME-Zarr and NIfTI images.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 error).

    Parameters
    ----------
    argv
        Arguments without the program name (default ``sys.argv[1:]``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (ZarrNiiError, ValueError, OSError) as exc:
        # bad input or parameters, a missing file: one line, no traceback
        sys.stderr.write(f"napari-zarrnii {args.command}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
