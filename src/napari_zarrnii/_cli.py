"""The ``napari-zarrnii`` command line: ``info``, ``convert``, ``crop`` and ``sample``.

Each subcommand is an ``add_<name>_parser(subparsers)`` function that registers its
arguments and sets ``func`` to a ``cmd_<name>(args) -> int`` function; add a
subcommand by writing both and listing the first in :data:`SUBCOMMANDS`.

Errors of this package (:class:`~napari_zarrnii.ZarrNiiError`: missing file, not an
image, destination exists, bad box, no scheduler, unreachable object store, ...)
print one line on stderr and exit with status 2, without a traceback; other exceptions
are bugs and keep their traceback.  Options are checked here, before any work starts,
so that their errors name the flag (``--bbox``, ``--level``, ``--overwrite``); what
only the library can check keeps the library's words.  Output cut short by the reader
(``info PATH | head``) ends quietly with status 141, as other command-line tools do.

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
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ._errors import BoxError, DestinationExistsError, SelectionError, ZarrNiiError

__all__ = [
    "SUBCOMMANDS",
    "build_parser",
    "cmd_convert",
    "cmd_crop",
    "cmd_info",
    "cmd_sample",
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
    """A tqdm bar fed by ``progress(done, total, message)`` callbacks.

    The bar appears with the first report, so a write refused before it starts
    (destination exists, bad option) prints no empty bar.
    """

    def __init__(self, enabled: bool, desc: str) -> None:
        self._enabled = enabled
        self._desc = desc
        self._bar: Any = None

    def __call__(self, done: int, total: int, message: str) -> None:
        if not self._enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="block", desc=self._desc, file=sys.stderr)
        if self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        if message:
            self._bar.set_postfix_str(message, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class _LazyChoices(Sequence[str]):
    """Choices imported on first use: ``--help`` stays fast without the pyramid code."""

    def __init__(self, load: Callable[[], Sequence[str]]) -> None:
        self._load = load

    def __getitem__(self, index: Any) -> Any:
        return self._load()[index]

    def __len__(self) -> int:
        return len(self._load())

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __contains__(self, value: object) -> bool:
        return value in self._load()


def _scaling_methods() -> Sequence[str]:
    from .core.pyramid.kernels import SCALING_METHODS

    return SCALING_METHODS


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
        choices=_LazyChoices(_scaling_methods),
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


def _destination(output: str, overwrite: bool) -> Any:
    """The resolved destination, refused before any work if it exists (unless --overwrite).

    A URL is checked by the writer, before it writes anything: that needs its
    filesystem options.
    """
    from .core.io import resolve_destination

    dest = resolve_destination(output, overwrite=overwrite)
    if not overwrite and not dest.is_remote and os.path.lexists(dest.location):
        raise DestinationExistsError(dest.location)
    return dest


def _axis_values(flag: str, values: Sequence[int] | None, image: Any) -> Any:
    """``--chunks``-style values: one for every spatial axis, one per spatial axis, or per axis."""
    if values is None:
        return None
    spatial = [image.axis_names[i] for i in image.spatial_axes]
    if any(v < 1 for v in values):
        raise ValueError(f"{flag}: values must be 1 or more, got {' '.join(map(str, values))}")
    if len(values) == 1:
        return int(values[0])
    if len(values) not in (len(spatial), image.ndim):
        raise ValueError(
            f"{flag}: {len(values)} values; give one for every spatial axis, one per spatial "
            f"axis ({' '.join(spatial)}) or one per axis ({' '.join(image.axis_names)})"
        )
    return tuple(int(v) for v in values)


def _write(
    z: Any, dest: Any, args: argparse.Namespace, options: dict[str, Any], client: Any = None
) -> Path | str:
    if dest.format.key == "nifti":
        return z.to_nifti(dest.location, overwrite=args.overwrite, client=client)
    image = z.image
    factors = _axis_values("--downsample-factors", args.downsample_factors, image)
    chunks = _axis_values("--chunks", args.chunks, image)
    shards = _axis_values("--shards", args.shards, image)
    storage = dict(options)
    if args.compressor is not None:
        storage["compressor"] = None if args.compressor.lower() == "none" else args.compressor
    bar = _Progress(not args.no_progress, "writing")
    try:
        return z.to_ome_zarr(
            dest.location,
            max_layer=args.max_layer,
            scaling_method=args.method,
            downsample_factors=factors,
            chunks=chunks,
            shards=shards,
            storage_options=storage or None,
            ngff_version=args.ngff_version,
            overwrite=args.overwrite,
            progress=bar,
            client=client,
        )
    finally:
        bar.close()


def _report_labels(z: Any, dest: Any, verb: str) -> None:
    """Say which label images go with the image (those on its grid) and which do not."""
    if dest.format.key == "nifti":
        return
    written = z.label_names
    for name in z.image.labels:
        if name in written:
            _out(f"label image '{name}': {verb}")
        else:
            _out(f"label image '{name}': not written (not on the grid of level {z.level})")


def _level(z: Any, level: int | None, default: int, path: str) -> Any:
    """Level ``level`` of ``z`` (``--level``), refused in the option's words."""
    n = z.num_levels
    chosen = default if level is None else level
    if not -n <= chosen < n:
        have = "a single level (0)" if n == 1 else f"{n} levels (0 to {n - 1}, or -1 to -{n})"
        raise SelectionError(f"--level {chosen}: {path} has {have}")
    return z.get_level(chosen)


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert ``args.input`` to ``args.output``."""
    if args.max_layer < 0:
        raise ValueError(f"--max-layer: must be 0 or more, got {args.max_layer}")
    options = parse_storage_options(args.storage_option)
    dest = _destination(args.output, args.overwrite)
    z = _level(_open(args.input, options), args.level, 0, args.input)
    with _cluster(args.scheduler) as client:
        out = _write(z, dest, args, options, client)
    _report_labels(z, dest, "written with the image")
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
        "OME-Zarr, or NIfTI when OUT ends in .nii/.nii.gz.  A box reaching beyond the "
        "level is clipped to it (with a note); a box outside it is refused.  Label "
        "images on the grid of level 0 are cropped with the image (OME-Zarr output).",
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


def _bbox(values: Sequence[float], at_level: Any) -> list[tuple[float, float]]:
    """``--bbox`` as (min, max) per spatial axis of ``at_level``, clipped to it (with a note).

    Raises
    ------
    BoxError
        Another number of values than two per spatial axis, a min not below its max,
        or a box that misses the level entirely.
    """
    names = at_level.spatial_dims
    n = len(names)
    order = " ".join([f"{a}min" for a in names] + [f"{a}max" for a in names])
    if len(values) != 2 * n:
        raise BoxError(f"--bbox needs {2 * n} values ({order}), got {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise BoxError(f"--bbox values must be finite numbers, got {_fmt_values(values)}")
    pairs = list(zip(values[:n], values[n:]))
    bad = [f"{a}min {lo:g} >= {a}max {hi:g}" for a, (lo, hi) in zip(names, pairs) if lo >= hi]
    if bad:
        raise BoxError(f"--bbox: {', '.join(bad)} (the order is {order})")
    shape = [at_level.shape[i] for i in at_level.image.spatial_axes]
    size = "x".join(map(str, shape))
    outside = [a for a, (lo, hi), s in zip(names, pairs, shape) if hi <= 0 or lo >= s]
    if outside:
        raise BoxError(
            f"--bbox {_fmt_box(pairs)} lies outside level {at_level.level} (shape {size}) "
            f"along {', '.join(outside)}"
        )
    clipped = [(max(lo, 0.0), min(hi, float(s))) for (lo, hi), s in zip(pairs, shape)]
    if clipped != pairs:
        _note(
            f"--bbox {_fmt_box(pairs)} reaches beyond level {at_level.level} (shape {size}); "
            f"clipped to {_fmt_box(clipped)}"
        )
    return clipped


def cmd_crop(args: argparse.Namespace) -> int:
    """Crop level 0 of ``args.input`` and write it to ``args.output``."""
    if args.max_layer < 0:
        raise ValueError(f"--max-layer: must be 0 or more, got {args.max_layer}")
    if args.threshold is not None and not math.isfinite(args.threshold):
        raise ValueError(f"--threshold must be a finite number, got {args.threshold}")
    options = parse_storage_options(args.storage_option)
    dest = _destination(args.output, args.overwrite)
    z = _open(args.input, options)
    at_level = _level(z, args.level, -1 if args.tissue else 0, args.input)
    if args.tissue:
        bounds = at_level.find_tissue_bounds(args.threshold)
    else:
        bounds = _bbox(args.bbox, at_level)
    _out(f"box at level {at_level.level}: {_fmt_box(bounds)}")
    full = at_level.map_bounds_to_level(bounds, 0)
    if at_level.level != 0:
        _out(f"box at level 0: {_fmt_box(full)}")
    crop = z.get_level(0).crop_with_bounding_box(full)
    with _cluster(args.scheduler) as client:
        out = _write(crop, dest, args, options, client)
    _report_labels(crop, dest, "cropped with the image")
    _out(f"wrote {out}")
    return 0


def _fmt_values(values: Sequence[float]) -> str:
    return " ".join(f"{v:g}" for v in values)


def _fmt_box(bounds: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{lo:g}:{hi:g}" for lo, hi in bounds)


def _note(text: str) -> None:
    sys.stderr.write(f"note: {text}\n")


# ---------------------------------------------------------------------------------------
# sample
# ---------------------------------------------------------------------------------------
def add_sample_parser(sub: Any) -> None:
    """Register ``sample OUT [--shape Z Y X] [--max-layer N]``."""
    p = sub.add_parser(
        "sample",
        help="write a generated sample image to try the other commands on",
        description="Write the generated sample (the one of File > Open Sample): a "
        "two-channel 3-D image (DAPI, GFP) with a label image 'cells', as a multiscale "
        "OME-Zarr.  Nothing is downloaded.",
    )
    p.add_argument("output", help="destination .ome.zarr")
    p.add_argument(
        "--shape",
        type=int,
        nargs=3,
        metavar=("Z", "Y", "X"),
        default=(32, 192, 192),
        help="level-0 shape (default 32 192 192)",
    )
    p.add_argument("--max-layer", type=int, default=2, help="coarsest level written (default 2)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sample)


def cmd_sample(args: argparse.Namespace) -> int:
    """Write the generated sample to ``args.output``."""
    if any(n < 1 for n in args.shape):
        raise ValueError(f"--shape: sizes must be 1 or more, got {_fmt_values(args.shape)}")
    if args.max_layer < 0:
        raise ValueError(f"--max-layer: must be 0 or more, got {args.max_layer}")
    dest = _destination(args.output, args.overwrite)
    if dest.format.key != "ome-zarr":
        raise ValueError(f"{args.output}: the sample is written as OME-Zarr (.ome.zarr)")
    from .core.io import save_image
    from .core.sample import make_sample_image

    image = make_sample_image(shape=tuple(args.shape), n_levels=1)
    bar = _Progress(not args.no_progress, "writing")
    try:
        out = save_image(image, dest, max_layer=args.max_layer, progress=bar)
    finally:
        bar.close()
    for name in image.labels:
        _out(f"label image '{name}': written with the image")
    _out(f"wrote {out}")
    return 0


# ---------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------
#: Functions registering one subcommand each, in the order ``--help`` lists them.
SUBCOMMANDS: list[Callable[[Any], None]] = [
    add_info_parser,
    add_convert_parser,
    add_crop_parser,
    add_sample_parser,
]


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
    """Run the command line; returns the exit status.

    0 on success, 2 for an error of the input or the options (one line on stderr),
    130 when interrupted, 141 when the reader of the output went away (``| head``).

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
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except DestinationExistsError as exc:
        hint = "; add --overwrite to replace it" if exc.replaceable else ""
        return _error(args.command, f"{exc.path}: {exc.problem}{hint}")
    except (ZarrNiiError, ValueError, OSError) as exc:
        # bad input or parameters, a missing file: one line, no traceback
        return _error(args.command, str(exc))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


def _error(command: str, message: str) -> int:
    sys.stderr.write(f"napari-zarrnii {command}: error: {message}\n")
    return 2


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout without a descriptor (tests)
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
