"""How a pyramid is stored: per level shape, chunks, shards, bytes on disk, compression.

:func:`storage_report` walks each level's folder of a local store (v2 ``0.0.0``,
nested v2 ``0/0/0`` and v3 ``c/0/0/0`` keys alike) and sums the sizes of its chunk
(or shard) files; metadata files are not counted.  Remote stores report sizes as
unknown (None) rather than listing a bucket.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from .lazy import storage_chunks
from .model import MultiscaleImage
from .store import is_url

__all__ = [
    "METADATA_FILES",
    "StorageRow",
    "format_bytes",
    "format_storage_report",
    "storage_report",
]

log = logging.getLogger(__name__)

#: Files that hold metadata, not voxels (zarr v2 and v3, consolidated metadata).
METADATA_FILES = frozenset({".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json"})


@dataclass(frozen=True)
class StorageRow:
    """Storage of one pyramid level (or the total, with ``level`` None).

    Attributes
    ----------
    level
        Level number in the store, None for the total row.
    path
        Array path inside the store (``"total"`` for the total row).
    shape, chunks, shards
        Array shape, chunk shape and shard shape (None when not sharded).
    dtype
        Data type name.
    uncompressed_bytes
        ``prod(shape) * itemsize``.
    bytes_on_disk
        Sum of the sizes of the level's chunk/shard files; None when unknown
        (remote store, in-memory image).
    n_files
        Number of chunk (or shard) files; chunks equal to the fill value are usually
        not written, so this can be below the grid size.
    compression_ratio
        ``uncompressed_bytes / bytes_on_disk``, None when unknown or nothing written.
    """

    level: int | None
    path: str
    shape: tuple[int, ...] | None
    chunks: tuple[int, ...] | None
    shards: tuple[int, ...] | None
    dtype: str | None
    uncompressed_bytes: int
    bytes_on_disk: int | None
    n_files: int | None
    compression_ratio: float | None

    #: what :meth:`cells` returns, in order
    QUANTITIES = ("shape", "chunks", "shards", "dtype", "size", "on disk", "files", "ratio")

    def cells(self) -> tuple[str, ...]:
        """The row's quantities as display strings, in the order of :attr:`QUANTITIES`."""
        return (
            _fmt_shape(self.shape),
            _fmt_shape(self.chunks),
            _fmt_shape(self.shards),
            self.dtype or "",
            format_bytes(self.uncompressed_bytes),
            format_bytes(self.bytes_on_disk),
            "?" if self.n_files is None else str(self.n_files),
            "?" if self.compression_ratio is None else f"{self.compression_ratio:.2f}",
        )

    def as_dict(self) -> dict[str, Any]:
        """The row as a plain dict (JSON-serialisable)."""
        out = asdict(self)
        for key in ("shape", "chunks", "shards"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out


def _walk_level(folder: Path) -> tuple[int, int]:
    total = files = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            if name in METADATA_FILES:
                continue
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:  # removed while walking
                continue
            files += 1
    return total, files


def _ratio(raw: int, disk: int | None) -> float | None:
    return raw / disk if disk else None


def storage_report(
    image: MultiscaleImage, levels: Sequence[int] | None = None
) -> list[StorageRow]:
    """Per level storage of an image read from a store, plus a total row (last).

    Parameters
    ----------
    image
        An image from :func:`~.omezarr.read_ome_zarr` (its ``source`` locates the
        files); for in-memory images or remote stores the on-disk fields are None.
    levels
        Level indices to report (default: all).

    Returns
    -------
    list of StorageRow
        One row per level, then the total (``level=None``, ``path="total"``).
    """
    source = image.source
    local = source is not None and not is_url(source) and Path(source).is_dir()
    if source is not None and is_url(source):
        log.info("%s: remote store, bytes on disk not measured", source)
    rows: list[StorageRow] = []
    indices = range(image.num_levels) if levels is None else levels
    for i in indices:
        lvl = image.levels[i]
        data = lvl.data
        dtype = np.dtype(data.dtype)
        shards = (
            tuple(int(s) for s in data.shards)
            if isinstance(data, zarr.Array) and data.shards
            else None
        )
        if isinstance(data, zarr.Array):
            chunks: tuple[int, ...] | None = tuple(int(c) for c in data.chunks)
        else:
            chunks = storage_chunks(data)
        raw = math.prod(lvl.shape) * dtype.itemsize
        disk = n_files = None
        if local and isinstance(data, zarr.Array):
            folder = Path(str(source)) / lvl.path
            if folder.is_dir():
                disk, n_files = _walk_level(folder)
        rows.append(
            StorageRow(
                level=i,
                path=lvl.path,
                shape=lvl.shape,
                chunks=chunks,
                shards=shards,
                dtype=dtype.name,
                uncompressed_bytes=raw,
                bytes_on_disk=disk,
                n_files=n_files,
                compression_ratio=_ratio(raw, disk),
            )
        )
    raw_total = sum(r.uncompressed_bytes for r in rows)
    known = [r.bytes_on_disk for r in rows]
    disk_total = (
        sum(d for d in known if d is not None) if all(d is not None for d in known) else None
    )
    files = [r.n_files for r in rows]
    rows.append(
        StorageRow(
            level=None,
            path="total",
            shape=None,
            chunks=None,
            shards=None,
            dtype=None,
            uncompressed_bytes=raw_total,
            bytes_on_disk=disk_total,
            n_files=sum(f for f in files if f is not None)
            if all(f is not None for f in files)
            else None,
            compression_ratio=_ratio(raw_total, disk_total),
        )
    )
    return rows


def format_bytes(n: int | None) -> str:
    """Bytes as ``'12.3 MiB'``; ``'?'`` for None."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


def _fmt_shape(shape: Iterable[int] | None) -> str:
    return "-" if shape is None else "x".join(str(s) for s in shape)


def format_storage_report(rows: Sequence[StorageRow]) -> str:
    """A plain-text table of :func:`storage_report` rows (one line per row).

    Parameters
    ----------
    rows
        Rows as returned by :func:`storage_report`.

    Returns
    -------
    str
        Aligned columns: level, path, shape, chunks, shards, dtype, size, on disk,
        files, ratio.
    """
    header = ("level", "path", *StorageRow.QUANTITIES)
    table: list[tuple[str, ...]] = [header]
    for r in rows:
        table.append(("" if r.level is None else str(r.level), r.path, *r.cells()))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    return "\n".join(lines)
