"""Paths, URLs and safe writing: write aside, then rename into place.

Every write of this package goes through :func:`atomic_destination` (a whole store),
:func:`atomic_files` (files written together), :func:`atomic_ozx` (a store zipped
into one file) or :func:`replace_file_atomically` (one metadata file), so a failed or
cancelled write leaves neither a half-written store nor a damaged previous one.

This module is the one place that knows local from remote destinations: a store
writer asks :func:`open_destination` where to write, and gets a temporary folder
beside a local destination, or, for an object-store URL (``s3://``, ``gs://``,
``az://``), a zarr store written in place with its metadata last
(:func:`remote_destination`: object stores have no rename).

Zipped OME-Zarr (``.ozx``) follows RFC-9 as ngff-zarr 0.50 writes it: the root of the
archive is the root of the hierarchy (its ``zarr.json`` is the first entry), the other
``zarr.json`` files follow breadth first (shallower first, then by name), then every
other file by name; entries are stored without zip compression (the chunks are
compressed already), with ZIP64 records wherever a size or offset needs them; the
archive comment is ``{"ome": {"version": ..., "zipFile": {"centralDirectory":
{"jsonFirst": true}}}}`` with the version the root ``zarr.json`` records.  RFC-9 is
defined on zarr v3 (OME-NGFF 0.5 and later).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import DestinationExistsError, ReadOnlyStoreError, UnsupportedFormatError
from .progress import Cancel, Progress, cancel_checker, report

if TYPE_CHECKING:
    from .io import Destination
    from .objectstore import StagedStore

__all__ = [
    "ARRAY_STORAGE_OPTIONS",
    "OZX_SUFFIX",
    "atomic_destination",
    "atomic_files",
    "atomic_ozx",
    "destination_exists",
    "is_url",
    "is_zipped",
    "local_path",
    "normalize_source",
    "open_destination",
    "pack_ozx",
    "remote_destination",
    "replace_file_atomically",
    "split_storage_options",
]

#: The file-name suffix of zipped OME-Zarr (RFC-9).
OZX_SUFFIX = ".ozx"

log = logging.getLogger(__name__)

_URL_SCHEMES = (
    "http://",
    "https://",
    "s3://",
    "s3a://",
    "gs://",
    "gcs://",
    "az://",
    "abfs://",
    "file://",
)


def is_url(path: Any) -> bool:
    """True for a remote URL (``file://`` counts as local)."""
    text = str(path)
    return text.startswith(_URL_SCHEMES) and not text.startswith("file://")


def normalize_source(path: Any) -> str:
    """A path as a string without trailing slashes; ``file://`` URLs become paths."""
    text = os.fspath(path) if not isinstance(path, str) else path
    if text.startswith("file://"):
        text = text[len("file://") :]
    if is_url(text):
        return text.rstrip("/")
    return str(Path(text).expanduser()).rstrip("/") or "/"


def is_zipped(path: Any) -> bool:
    """True for a zipped OME-Zarr (RFC-9): a name ending in ``.ozx`` (any case)."""
    return normalize_source(path).lower().endswith(OZX_SUFFIX)


def local_path(path: Any, *, purpose: str = "write") -> Path:
    """A local filesystem path, or ReadOnlyStoreError for a remote URL.

    For what only works on local files (NIfTI, BigDataViewer and ``.ozx`` files,
    metadata edits in place); OME-Zarr stores are written to URLs through
    :func:`open_destination`.
    """
    text = normalize_source(path)
    if is_url(text):
        raise ReadOnlyStoreError(
            f"{text}: cannot {purpose} at a URL (only OME-Zarr stores are written to "
            "object stores); use a local path"
        )
    return Path(text)


#: Keys of ``storage_options`` that describe the arrays written (the zarrnii meaning);
#: every other key is an option of the filesystem behind a URL.
ARRAY_STORAGE_OPTIONS = ("compressor", "compressors", "chunks", "shards")


def split_storage_options(
    storage_options: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``storage_options`` into array options and filesystem options.

    zarrnii passes ``{'compressor': ..., 'chunks': ...}`` as ``storage_options``;
    zarr, fsspec and ome-zarr-py pass the filesystem's options (``key``, ``secret``,
    ``endpoint_url``, ``client_kwargs``, ``anon``, ``profile``, ...) under the same
    name.  Both are accepted in one mapping: the keys of
    :data:`ARRAY_STORAGE_OPTIONS` describe the arrays, the others go to the
    filesystem of a URL.

    Returns
    -------
    (array_options, filesystem_options)
    """
    options = dict(storage_options or {})
    array = {k: options.pop(k) for k in ARRAY_STORAGE_OPTIONS if k in options}
    return array, options


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_destination(path: Any, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; move it to ``path`` only on success.

    Parameters
    ----------
    path
        Final location of the store (a folder).
    overwrite
        Replace an existing ``path``.  Without it an existing path raises
        :class:`DestinationExistsError` before anything is written.

    The previous store, if any, is renamed aside and deleted only after the new one
    is in place; on any error (or cancellation) the temporary folder is removed and
    the previous store is left untouched.
    """
    dest = local_path(path)
    if dest.exists() and not overwrite:
        raise DestinationExistsError(dest)
    parent = dest.parent
    # folders created for this write are removed again if it fails: it leaves nothing
    created = [p for p in (parent, *parent.parents) if not p.exists()]
    parent.mkdir(parents=True, exist_ok=True)
    if not os.access(parent, os.W_OK):
        raise ReadOnlyStoreError(f"{parent}: folder is not writable")
    tag = uuid.uuid4().hex[:8]
    tmp = parent / f".{dest.name}.partial-{tag}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        for folder in created:  # innermost first; only if still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    old = parent / f".{dest.name}.old-{tag}"
    moved_old = False
    try:
        if dest.exists() or dest.is_symlink():
            if not overwrite:  # appeared while we were writing
                raise DestinationExistsError(
                    dest, "appeared during the write; not replaced", replaceable=False
                )
            os.replace(dest, old)
            moved_old = True
        os.replace(tmp, dest)
    except BaseException:
        if moved_old and not dest.exists():
            os.replace(old, dest)
        _remove(tmp)
        raise
    if moved_old:
        _remove(old)
    log.info("wrote %s", dest)


@contextlib.contextmanager
def atomic_files(paths: Sequence[Any], *, overwrite: bool = False) -> Iterator[list[Path]]:
    """Yield one temporary file path beside each destination; rename them into place on success.

    Parameters
    ----------
    paths
        Final locations of the files written together.  They are renamed into place
        in the order given: put last the file that refers to the others (a
        BigDataViewer XML after its HDF5), so whoever finds it finds them too.
    overwrite
        Replace existing files.  Without it an existing destination raises
        :class:`DestinationExistsError` before anything is written.

    On any error (or cancellation) the temporary files, and folders created for them,
    are removed and the previous files are left untouched.  The writer should flush
    and close its files before the block ends.
    """
    dests = [local_path(p) for p in paths]
    for dest in dests:
        if dest.is_dir():
            raise DestinationExistsError(
                dest, "is a folder; not replaced by a file", replaceable=False
            )
        if (dest.exists() or dest.is_symlink()) and not overwrite:
            raise DestinationExistsError(dest)
    created: list[Path] = []
    for dest in dests:
        for folder in (dest.parent, *dest.parent.parents):
            if not folder.exists() and folder not in created:
                created.append(folder)
    created.sort(key=lambda p: len(p.parts), reverse=True)  # innermost first
    for dest in dests:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(dest.parent, os.W_OK):
            raise ReadOnlyStoreError(f"{dest.parent}: folder is not writable")
    tag = uuid.uuid4().hex[:8]
    temps = [dest.parent / f".{dest.name}.partial-{tag}" for dest in dests]

    def clean() -> None:
        for tmp in temps:
            _remove(tmp)
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()

    try:
        yield temps
        for dest in dests:
            if (dest.exists() or dest.is_symlink()) and not overwrite:
                raise DestinationExistsError(
                    dest, "appeared during the write; not replaced", replaceable=False
                )
        for tmp, dest in zip(temps, dests):
            os.replace(tmp, dest)
    except BaseException:
        clean()
        raise
    log.info("wrote %s", ", ".join(map(str, dests)))


def replace_file_atomically(path: Path, content: Any) -> None:
    """Replace a JSON file in one step: write a temporary file beside it, then rename.

    The previous file stays in place until the new one is completely written and
    flushed to disk.
    """
    path = Path(path)
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ReadOnlyStoreError(f"{path}: not writable")
    if path.exists():
        mode = path.stat().st_mode & 0o777
    else:  # what a plain open() would give under the current umask
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600): give it the replaced file's permissions
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(content, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


# -- zipped OME-Zarr (RFC-9) ------------------------------------------------------------


def _rfc9_order(names: Sequence[str]) -> list[str]:
    """Root ``zarr.json`` first, the other ``zarr.json`` breadth first, then the rest by name."""
    is_metadata = [n == "zarr.json" or n.endswith("/zarr.json") for n in names]
    metadata = sorted(
        (n for n, meta in zip(names, is_metadata) if meta), key=lambda n: (n.count("/"), n)
    )
    return metadata + sorted(n for n, meta in zip(names, is_metadata) if not meta)


def _ome_version(root_json: Path) -> str:
    """The OME-NGFF version the root ``zarr.json`` of a store records."""
    try:
        doc = json.loads(root_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{root_json}: unreadable zarr metadata ({exc})") from exc
    ome = (doc.get("attributes") or {}).get("ome") if isinstance(doc, dict) else None
    version = ome.get("version") if isinstance(ome, dict) else None
    if not isinstance(version, str):
        raise ValueError(f"{root_json}: no OME-NGFF version under attributes.ome.version")
    return version


def pack_ozx(
    store: Any,
    target: Any,
    *,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> Path:
    """Zip the zarr v3 OME-Zarr folder ``store`` into ``target`` as RFC-9 says.

    Entry order, compression, ZIP64 and the archive comment are those of the module
    docstring.  ``target`` is written in place (see :func:`atomic_ozx` for a write
    that leaves nothing behind); files are streamed, one at a time.

    Parameters
    ----------
    store
        Folder of a zarr v3 hierarchy with a root ``zarr.json`` holding ``ome.version``.
    target
        The zip file to write.
    progress, cancel
        ``progress(done, total, message)`` per file; a cancel event or callable.

    Raises
    ------
    ValueError
        ``store`` has no root ``zarr.json`` (a zarr v2 store cannot be zipped as
        OME-Zarr) or it records no OME-NGFF version.
    CancelledError
        ``cancel`` was set (``target`` is then incomplete: remove it).
    """
    root = local_path(store)
    root_json = root / "zarr.json"
    if not root_json.is_file():
        raise ValueError(
            f"{root}: zipped OME-Zarr (RFC-9) needs a zarr v3 store (OME-NGFF 0.5 or "
            "later) with zarr.json at its root"
        )
    version = _ome_version(root_json)
    names = [p.relative_to(root).as_posix() for p in sorted(root.rglob("*")) if p.is_file()]
    ordered = _rfc9_order(names)
    check = cancel_checker(cancel)
    out = local_path(target)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for i, name in enumerate(ordered):
            check()
            zf.write(root / name, arcname=name)
            report(progress, i + 1, len(ordered), f"zipping {out.name}")
        zf.comment = json.dumps(
            {"ome": {"version": version, "zipFile": {"centralDirectory": {"jsonFirst": True}}}}
        ).encode("utf-8")
    return out


@contextlib.contextmanager
def atomic_ozx(
    path: Any,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> Iterator[Path]:
    """Yield where to write a store; zip it (RFC-9) into the file ``path`` on success.

    The store is written in a temporary folder beside ``path``, zipped into a
    temporary file beside it (:func:`pack_ozx`), and that file is renamed into place
    (:func:`atomic_files`).  The yielded location does not exist yet; it is named
    after ``path`` (``brain.ozx`` -> ``brain.ome.zarr``), since writers name an image
    after its store.  On any error or cancellation the temporary folder and file are
    removed and a previous ``path`` is left untouched.

    Raises
    ------
    DestinationExistsError
        ``path`` exists (a folder always; a file unless ``overwrite``).
    """
    dest = local_path(path)
    stem = dest.name[: -len(OZX_SUFFIX)] if is_zipped(dest) else dest.name
    with atomic_files([dest], overwrite=overwrite) as (tmp_zip,):
        staging = tmp_zip.with_name(f"{tmp_zip.name}.store")
        staging.mkdir()
        try:
            store = staging / f"{stem or 'image'}.ome.zarr"
            yield store
            pack_ozx(store, tmp_zip, progress=progress, cancel=cancel)
        finally:
            _remove(staging)


# -- object stores: written in place, metadata last -----------------------------------------


def destination_exists(location: Any, storage_options: Mapping[str, Any] | None = None) -> bool:
    """True when something is at ``location``: a local path, or keys under a URL's prefix."""
    text = normalize_source(location)
    if not is_url(text):
        path = Path(text)
        return path.exists() or path.is_symlink()
    from .objectstore import RemoteLocation

    return RemoteLocation(text, storage_options).exists()


@contextlib.contextmanager
def remote_destination(
    url: str,
    *,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[StagedStore]:
    """Yield a zarr store written in place at an object-store URL, its metadata last.

    Object stores have no rename, so the store cannot be written aside and moved
    into place.  What is guaranteed instead:

    * **Metadata last.**  Array chunks are written as they are computed (by this
      process or by the workers of a cluster); every metadata document (``zarr.json``,
      ``.zarray``, ``.zgroup``, ``.zattrs``) is held back and written only when the
      block yields without error, arrays and groups deepest first and the root's last
      (:func:`~.objectstore.metadata_order`).  A reader that finds the root's metadata
      therefore finds every chunk and every array; before that the URL is not a zarr
      group.
    * **Nothing left on failure.**  On an error or a cancellation every key under the
      URL's prefix is deleted (the root's metadata first).  Nothing else may write
      under that prefix while the store is written: it is refused unless empty, or
      emptied with ``overwrite``.
    * **Replacing is not atomic.**  With ``overwrite`` an existing store is deleted
      (its root metadata first, so it stops being an image at once) *before* the new
      one is written, after a probe key proves the URL writable: while the new store
      is written the URL holds no image, and if the write fails it holds nothing.
    * Before anything is written a probe key is written and deleted, so wrong
      credentials, a missing bucket or a read-only location fail at once.

    Two writers to one URL at once are not detected (object stores have no locks).

    Parameters
    ----------
    url
        ``s3://bucket/path/name.ome.zarr`` (or ``gs://``, ``az://``; not a bucket).
    overwrite
        Replace what is at ``url``; without it anything there raises
        :class:`DestinationExistsError` before anything is written.
    storage_options
        Options of the fsspec filesystem; none to use the environment
        (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ...).

    Yields
    ------
    StagedStore
        The zarr store to create the hierarchy in; it pickles for workers.
    """
    from .objectstore import RemoteLocation, StagedStore

    location = RemoteLocation(url, storage_options)
    if location.exists():
        if not overwrite:
            raise DestinationExistsError(location.url)
        location.probe()
        removed = location.remove()
        log.info("%s: removed the previous store (%d keys) before writing", url, removed)
    else:
        location.probe()
    staged = StagedStore(location.url, location.storage_options)
    try:
        yield staged
        staged.commit()
    except BaseException:
        try:
            removed = location.remove()
        except OSError:  # keep the write's own error; say what may be left
            log.exception("%s: could not remove what the failed write wrote", url)
        else:
            log.info("%s: write failed; removed the %d keys it wrote", url, removed)
        raise
    log.info("wrote %s", location.url)


@contextlib.contextmanager
def open_destination(
    destination: Destination,
    *,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> Iterator[str | StagedStore]:
    """Where a writer creates a zarr store for ``destination``, safely for its kind.

    * a local folder: an empty temporary folder beside it (its absolute path),
      renamed into place on success (:func:`atomic_destination`);
    * a local ``.ozx`` file: a folder in a temporary place, zipped and moved into
      place on success (:func:`atomic_ozx`);
    * an object-store URL: a :class:`~.objectstore.StagedStore` written in place,
      chunks first and metadata last (:func:`remote_destination`).

    On an error or a cancellation what was written is removed.  The yielded value
    is what ``zarr.create_group(store=...)`` takes.

    Raises
    ------
    UnsupportedFormatError
        A ``.ozx`` file at a URL (zip it locally, then copy it).
    DestinationExistsError
        The destination exists and ``destination.overwrite`` is False.
    """
    location = destination.location
    if is_url(location):
        if is_zipped(location):
            raise UnsupportedFormatError(
                f"{location}: a zipped OME-Zarr (.ozx) is written to a local file only; "
                "write it locally and copy it, or write an .ome.zarr store to the URL"
            )
        with remote_destination(
            location,
            overwrite=destination.overwrite,
            storage_options=destination.storage_options,
        ) as staged:
            yield staged
        return
    if is_zipped(location):
        with atomic_ozx(
            location, overwrite=destination.overwrite, progress=progress, cancel=cancel
        ) as store:
            store.mkdir()
            yield str(store.absolute())
        return
    with atomic_destination(location, overwrite=destination.overwrite) as tmp:
        # workers in other processes open the arrays by this path: absolute
        yield str(tmp.absolute())
