"""Zarr stores written in place at an object-store URL (``s3://``, ``gs://``, ``az://``).

Object stores have no rename, so a store cannot be written aside and moved into
place as :func:`~.store.atomic_destination` does on disk.  Instead the store is
written where it will stay, in an order that keeps readers safe (the policy is
:func:`~.store.remote_destination`; this module is the mechanics):

* :class:`StagedStore` is the zarr store the writer and its workers use: array
  chunks go to the URL at once, every metadata document (``zarr.json``, ``.zarray``,
  ``.zgroup``, ``.zattrs``) is kept in memory;
* :meth:`StagedStore.commit` writes those documents after all chunks are written,
  arrays and groups deepest first, the root's last (:func:`metadata_order`), so the
  OME metadata that makes the store an image appears last;
* :class:`RemoteLocation` checks, probes and removes what is at the URL (the root's
  metadata first, so a reader never finds an image whose chunks are being deleted).

Workers of a dask.distributed cluster receive a :class:`StagedStore` holding only
the metadata of the array they write (:meth:`StagedStore.for_array`), its URL and
its storage options, and write their chunks to the URL themselves.

Filesystems come from fsspec (``s3fs`` for ``s3://``, ``gcsfs`` for ``gs://``,
``adlfs`` for ``az://``); credentials and endpoint come from ``storage_options`` or
from the standard environment of each process (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, ...).  Writes get the
readers' connect and read time-outs (:func:`~.remote.storage_options_for`), so a
server that stops answering fails the write instead of hanging it.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.storage import FsspecStore, WrapperStore

from .._errors import (
    MissingDependencyError,
    ObjectStoreError,
    ReadOnlyStoreError,
    UnsupportedFormatError,
)
from .remote import storage_options_for
from .storage import METADATA_FILES

if TYPE_CHECKING:
    from zarr.core.buffer import Buffer, BufferPrototype

__all__ = [
    "RemoteLocation",
    "StagedStore",
    "chunk_filesystem_options",
    "credential_errors",
    "is_metadata_key",
    "metadata_order",
    "no_credentials_message",
    "unreachable_errors",
]

log = logging.getLogger(__name__)


#: Package that gives fsspec each writable scheme, for the message when it is missing.
_FILESYSTEM_PACKAGES = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
}
#: Schemes whose first path component is a bucket (or container), not a store.
_BUCKET_SCHEMES = frozenset(_FILESYSTEM_PACKAGES)
#: Schemes fsspec reads but cannot write.
_READ_ONLY_SCHEMES = frozenset({"http", "https"})


def is_metadata_key(key: str) -> bool:
    """True for a zarr metadata document (``zarr.json``, ``.zarray``, ...) at any depth."""
    return key.rsplit("/", 1)[-1] in METADATA_FILES


def metadata_order(keys: Iterable[str]) -> list[str]:
    """Metadata keys in the order they are written: deepest first, the root's last.

    Within one folder ``.zarray``/``.zgroup`` come before ``.zattrs`` (zarr v2), so
    the root's attributes -- the OME metadata -- are the very last key written.
    """

    def rank(key: str) -> tuple[int, bool, str]:
        depth = key.count("/")
        return (-depth, key.endswith(".zattrs"), key)

    return sorted(keys, key=rank)


def unreachable_errors() -> tuple[type[BaseException], ...]:
    """What a filesystem raises when its endpoint cannot be reached.

    aiohttp (gcsfs, adlfs, http) raises ``OSError`` subclasses; botocore (s3fs)
    raises its own ``ConnectionError`` family, which s3fs lets through as it is.
    """
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    botocore = sys.modules.get("botocore.exceptions")  # raised only once it is imported
    if botocore is not None:
        errors.append(botocore.ConnectionError)
    return tuple(errors)


def credential_errors() -> tuple[type[BaseException], ...]:
    """What a filesystem raises when it has no credentials to sign a request with.

    botocore (s3fs) raises ``NoCredentialsError`` / ``PartialCredentialsError`` from
    its own family, not an ``OSError``; nothing when botocore is not imported.
    """
    botocore = sys.modules.get("botocore.exceptions")
    if botocore is None:
        return ()
    return (botocore.NoCredentialsError, botocore.PartialCredentialsError)


def no_credentials_message(url: str, exc: BaseException, where: str = "") -> str:
    """One line saying that ``url`` was asked without credentials, and where they go."""
    place = f" {where}" if where else ""
    return (
        f"{url}: no credentials for the object store{place} ({exc}); set "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), pass "
        "storage_options / --storage-option key=... secret=..., or anon=true for a "
        "public bucket"
    )


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower() if "://" in url else ""


class RemoteLocation:
    """An object-store URL seen as a prefix of keys: exists, probe, remove.

    Parameters
    ----------
    url
        ``s3://bucket/path/image.ome.zarr`` and the like (not the bucket itself).
    storage_options
        Options of the fsspec filesystem (credentials, ``endpoint_url``,
        ``client_kwargs``, ...); none to use the environment.

    Raises
    ------
    ReadOnlyStoreError
        An ``http(s)://`` URL (read-only).
    UnsupportedFormatError
        The URL names a bucket, not a store inside it.
    MissingDependencyError
        The fsspec filesystem of the scheme is not installed (``s3fs`` for ``s3://``).
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        scheme = _scheme(url)
        if scheme in _READ_ONLY_SCHEMES:
            raise ReadOnlyStoreError(
                f"{url}: {scheme}:// URLs are read-only; write to a local path or an object "
                "store (s3://, gs://, az://)"
            )
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.fs, root = _filesystem(self.url, self.storage_options)
        self.root = str(root).rstrip("/")
        if scheme in _BUCKET_SCHEMES and "/" not in self.root.strip("/"):
            raise UnsupportedFormatError(
                f"{url}: names a bucket; write the store inside it "
                f"(e.g. {self.url}/image.ome.zarr)"
            )

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def keys(self) -> list[str]:
        """Every key under the prefix, relative to it (listed afresh, not cached)."""
        self.fs.invalidate_cache(self.root)
        try:
            found = self.fs.find(self.root)
        except FileNotFoundError:
            return []
        prefix = self.root + "/"
        return sorted(p[len(prefix) :] for p in found if p.startswith(prefix))

    def exists(self) -> bool:
        """True when anything is stored at the URL (a key, or keys under the prefix).

        Raises
        ------
        ObjectStoreError
            The endpoint cannot be reached, or there are no credentials to ask it with
            (this is the first request of a write).
        """
        self.fs.invalidate_cache(self.root)
        try:
            return bool(self.fs.exists(self.root))
        except credential_errors() as exc:
            raise ObjectStoreError(no_credentials_message(self.url, exc)) from exc
        except unreachable_errors() as exc:
            raise ObjectStoreError(
                f"{self.url}: cannot reach the object store ({exc}); check the endpoint "
                "(endpoint_url, AWS_ENDPOINT_URL) and the network"
            ) from exc

    def probe(self) -> None:
        """Write and delete one small key: fail early (credentials, bucket, permissions).

        Raises
        ------
        ReadOnlyStoreError
            The key cannot be written (the message keeps the store's own reason).
        ObjectStoreError
            There are no credentials to sign the request with.
        """
        key = self._path(f".zarrnii-probe-{uuid.uuid4().hex[:12]}")
        try:
            self.fs.pipe_file(key, b"")
        except credential_errors() as exc:
            raise ObjectStoreError(no_credentials_message(self.url, exc)) from exc
        except OSError as exc:
            raise ReadOnlyStoreError(
                f"{self.url}: cannot write there ({type(exc).__name__}: {exc})"
            ) from exc
        try:
            self.fs.rm_file(key)
        except OSError as exc:
            raise ReadOnlyStoreError(
                f"{self.url}: can write but not delete there ({type(exc).__name__}: {exc}); "
                "a failed write could not be cleaned up"
            ) from exc

    def put(self, key: str, data: bytes) -> None:
        """Write one key (relative to the prefix)."""
        self.fs.pipe_file(self._path(key), data)

    def remove(self) -> int:
        """Delete every key under the prefix, the root's metadata first; return how many.

        Deleting the root's ``zarr.json`` / ``.zattrs`` / ``.zgroup`` first makes the
        store stop being an image before any of its chunks go.
        """
        keys = self.keys()
        first = [k for k in keys if is_metadata_key(k) and "/" not in k]
        for key in sorted(first, key=lambda k: k != ".zattrs"):  # OME attributes first
            self.fs.rm_file(self._path(key))
        rest = [self._path(k) for k in keys if k not in first]
        if rest:
            self.fs.rm(rest)
        self.fs.invalidate_cache(self.root)
        return len(keys)


def chunk_filesystem_options(url: str, storage_options: Mapping[str, Any]) -> dict[str, Any]:
    """The filesystem options for reading and writing chunks at ``url``.

    s3fs (2026.x) asks for an object's size (a HEAD request) before every
    whole-object read, to split objects larger than its block size (50 MiB) into
    concurrent range requests.  Chunks are smaller than that, so for ``s3://`` the
    default here is ``max_concurrency=1``: one GET per chunk read (by readers, and by
    the writer where it reads a level back), not a HEAD and a GET.  An explicit
    ``max_concurrency`` is kept.
    """
    options = dict(storage_options)
    if _scheme(url) in ("s3", "s3a"):
        options.setdefault("max_concurrency", 1)
    return options


def _filesystem(url: str, storage_options: Mapping[str, Any]) -> tuple[Any, str]:
    import fsspec

    try:
        return fsspec.url_to_fs(url, **storage_options_for(url, storage_options))
    except ImportError as exc:
        package = _FILESYSTEM_PACKAGES.get(_scheme(url), "the fsspec filesystem for it")
        extra = " (pip install 'napari-zarrnii[s3]')" if package == "s3fs" else ""
        raise MissingDependencyError(f"{url}: needs {package}{extra}") from exc


def _slice(data: bytes, byte_range: ByteRequest | None) -> bytes:
    if byte_range is None:
        return data
    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start : byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset :]
    if isinstance(byte_range, SuffixByteRequest):
        return data[-byte_range.suffix :]
    raise ValueError(f"unexpected byte range {byte_range!r}")


class StagedStore(WrapperStore[FsspecStore]):
    """A zarr store at a URL whose metadata is held back until :meth:`commit`.

    Chunks are written to (and read from) the URL at once; metadata documents are
    kept in memory, so a reader of the URL finds no array and no group until the
    write is complete.  Pickles to its URL, storage options, staged documents and a
    token naming the write (so that workers can open its arrays).

    Parameters
    ----------
    url
        Where the store is written.
    storage_options
        Options of the fsspec filesystem (see :class:`RemoteLocation`).
    metadata
        Documents staged already (key -> bytes), e.g. for a worker.
    token
        Names the write; stores of one write compare equal.
    """

    def __init__(
        self,
        url: str,
        storage_options: Mapping[str, Any] | None = None,
        *,
        metadata: Mapping[str, bytes] | None = None,
        token: str | None = None,
    ) -> None:
        self._setup(url, storage_options, metadata, token)

    def _setup(
        self,
        url: str,
        storage_options: Mapping[str, Any] | None,
        metadata: Mapping[str, bytes] | None,
        token: str | None,
    ) -> None:
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.token = token or uuid.uuid4().hex
        self._staged: dict[str, bytes] = dict(metadata or {})
        try:
            store = FsspecStore.from_url(
                self.url, storage_options=storage_options_for(url, self.storage_options)
            )
        except ImportError as exc:
            package = _FILESYSTEM_PACKAGES.get(_scheme(url), "its fsspec filesystem")
            raise MissingDependencyError(f"{url}: needs {package}") from exc
        super().__init__(store)

    # -- identity and pickling ----------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "storage_options": self.storage_options,
            "metadata": self._staged,
            "token": self.token,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._setup(state["url"], state["storage_options"], state["metadata"], state["token"])

    def __eq__(self, value: object) -> bool:
        return isinstance(value, StagedStore) and (value.url, value.token) == (
            self.url,
            self.token,
        )

    def __hash__(self) -> int:
        return hash((self.url, self.token))

    def __repr__(self) -> str:
        return f"StagedStore({self.url!r}, {len(self._staged)} metadata documents staged)"

    def __str__(self) -> str:
        return self.url

    def _with_store(self, store: FsspecStore) -> StagedStore:
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)  # the same staged documents
        other._store = store
        return other

    # -- what this store adds ---------------------------------------------------------
    @property
    def staged(self) -> dict[str, bytes]:
        """The metadata documents not written yet (key -> bytes)."""
        return dict(self._staged)

    def for_array(self, path: str) -> StagedStore:
        """The same store holding only the metadata of the array at ``path``.

        What a worker needs to open that array and write its chunks.
        """
        prefix = f"{path.strip('/')}/"
        mine = {
            k: v
            for k, v in self._staged.items()
            if k.startswith(prefix) and "/" not in k[len(prefix) :]
        }
        return StagedStore(self.url, self.storage_options, metadata=mine, token=self.token)

    def commit(self) -> list[str]:
        """Write the staged metadata to the URL in :func:`metadata_order`; return the keys.

        Call it once every chunk is written: the root's metadata, written last, is
        what makes the store an image.
        """
        location = RemoteLocation(self.url, self.storage_options)
        order = metadata_order(self._staged)
        for key in order:
            location.put(key, self._staged[key])
        log.debug("%s: wrote %d metadata documents, the root last", self.url, len(order))
        return order

    # -- zarr's Store interface ----------------------------------------------------------
    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        if is_metadata_key(key):
            data = self._staged.get(key)
            return None if data is None else prototype.buffer.from_bytes(_slice(data, byte_range))
        return await self._store.get(key, prototype, byte_range)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

    async def _get_many(
        self, requests: Iterable[tuple[str, BufferPrototype, ByteRequest | None]]
    ) -> AsyncGenerator[tuple[str, Buffer | None], None]:
        for key, prototype, byte_range in requests:
            yield key, await self.get(key, prototype, byte_range)

    async def exists(self, key: str) -> bool:
        if is_metadata_key(key):
            return key in self._staged
        return await self._store.exists(key)

    async def set(self, key: str, value: Buffer) -> None:
        if is_metadata_key(key):
            self._check_writable()
            self._staged[key] = value.to_bytes()
            return
        await self._store.set(key, value)

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        if is_metadata_key(key):
            self._staged.setdefault(key, value.to_bytes())
            return
        await self._store.set_if_not_exists(key, value)

    async def _set_many(self, values: Iterable[tuple[str, Buffer]]) -> None:
        for key, value in values:
            await self.set(key, value)

    async def delete(self, key: str) -> None:
        if is_metadata_key(key):
            self._staged.pop(key, None)
            return
        await self._store.delete(key)

    async def delete_dir(self, prefix: str) -> None:
        start = prefix.rstrip("/") + "/" if prefix else ""
        for key in [k for k in self._staged if k.startswith(start)]:
            del self._staged[key]
        await self._store.delete_dir(prefix)

    async def clear(self) -> None:
        self._staged.clear()
        await self._store.clear()

    async def is_empty(self, prefix: str) -> bool:
        start = prefix.rstrip("/") + "/" if prefix else ""
        if any(k.startswith(start) for k in self._staged):
            return False
        return await self._store.is_empty(prefix)

    async def _listed(
        self, listing: AsyncIterator[str], staged: Iterable[str]
    ) -> AsyncIterator[str]:
        seen = set()
        for key in staged:
            seen.add(key)
            yield key
        async for key in listing:
            if key not in seen:
                seen.add(key)
                yield key

    def list(self) -> AsyncIterator[str]:
        return self._listed(self._store.list(), list(self._staged))

    def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        staged = [k for k in self._staged if k.startswith(prefix)]
        return self._listed(self._store.list_prefix(prefix), staged)

    def list_dir(self, prefix: str) -> AsyncIterator[str]:
        start = prefix.rstrip("/") + "/" if prefix else ""
        children = {k[len(start) :].split("/", 1)[0] for k in self._staged if k.startswith(start)}
        return self._listed(self._store.list_dir(prefix), sorted(children))
