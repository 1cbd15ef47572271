"""Paths, URLs and safe writing: write aside, then rename into place.

Every write of this package goes through :func:`atomic_destination` (a whole store)
or :func:`replace_file_atomically` (one metadata file), so a failed or cancelled
write leaves neither a half-written store nor a damaged previous one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .._errors import DestinationExistsError, ReadOnlyStoreError

__all__ = [
    "atomic_destination",
    "atomic_files",
    "is_url",
    "local_path",
    "normalize_source",
    "replace_file_atomically",
]

log = logging.getLogger(__name__)

_URL_SCHEMES = ("http://", "https://", "s3://", "gs://", "gcs://", "az://", "abfs://", "file://")


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


def local_path(path: Any, *, purpose: str = "write") -> Path:
    """A local filesystem path, or ReadOnlyStoreError for a remote URL."""
    text = normalize_source(path)
    if is_url(text):
        raise ReadOnlyStoreError(f"{text}: remote stores are read-only here; cannot {purpose}")
    return Path(text)


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
