"""Remote stores (``http(s)://``, ``s3://``, ...): opened once, metadata fetched once.

:func:`remote_store` builds the zarr store of a URL: fsspec's asynchronous file system
(chunk requests issued concurrently by :class:`~.cached.CachedArray`), with time-outs
so that a server that stops answering raises instead of hanging forever, behind zarr's
:class:`~zarr.experimental.cache_store.CacheStore`, which keeps the metadata documents
and the recently fetched encoded bytes (shard indexes above all) in memory (16 MiB:
the decoded chunks are kept by :mod:`.cache`; this only saves requests).
:func:`fetch_metadata` fetches the metadata of several arrays of a group in one round
trip, so that opening them one by one afterwards costs no request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "CONNECT_TIMEOUT",
    "ENCODED_CACHE_BYTES",
    "READ_TIMEOUT",
    "fetch_metadata",
    "remote_store",
    "storage_options_for",
]

log = logging.getLogger(__name__)

#: Seconds to establish a connection, and to wait for the next bytes of an answer.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
#: Bytes of encoded data (metadata, shard indexes, recent chunks) kept per store.
ENCODED_CACHE_BYTES = 16 << 20


def _default_options(url: str) -> dict[str, Any]:
    if url.startswith(("http://", "https://")):
        import aiohttp

        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT
        )
        return {"client_kwargs": {"timeout": timeout}}
    if url.startswith(("s3://", "s3a://")):
        return {
            "config_kwargs": {"connect_timeout": CONNECT_TIMEOUT, "read_timeout": READ_TIMEOUT}
        }
    return {}


def storage_options_for(url: str, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The filesystem options of ``url``: the caller's, over the time-outs of this module.

    A nested option (``config_kwargs``, ``client_kwargs``) given by the caller is merged
    key by key with the defaults, the caller's keys winning.  ``s3://`` reads each
    chunk with one GET (:func:`~.objectstore.chunk_filesystem_options`).
    """
    from .objectstore import chunk_filesystem_options

    options = dict(given or {})
    for key, value in _default_options(url).items():
        mine = options.get(key)
        if isinstance(value, dict) and isinstance(mine, Mapping):
            options[key] = {**value, **mine}
        else:
            options.setdefault(key, value)
    return chunk_filesystem_options(url, options)


def remote_store(url: str, storage_options: Mapping[str, Any] | None = None) -> Any:
    """A read-only zarr store for ``url``, with time-outs and an encoded-bytes cache.

    ``storage_options`` go to the fsspec filesystem (credentials, ``endpoint_url``,
    ``anon``, ...; default the environment), over this module's time-outs.

    Raises whatever fsspec raises for an unknown protocol or a missing backend
    (``ValueError``, ``ImportError``).
    """
    from zarr.storage import FsspecStore

    options = storage_options_for(url, storage_options)
    store: Any = FsspecStore.from_url(url, storage_options=options, read_only=True)
    try:
        from zarr.experimental.cache_store import CacheStore
        from zarr.storage import MemoryStore
    except ImportError:  # zarr without the experimental cache store
        return store
    return CacheStore(store, cache_store=MemoryStore(), max_size=ENCODED_CACHE_BYTES)


def fetch_metadata(group: Any, paths: Sequence[str]) -> None:
    """Fetch the metadata of ``group``'s members ``paths`` concurrently (errors ignored).

    Only useful over a caching store (:func:`remote_store`): opening the members one
    by one afterwards is then answered from memory.  Errors are left for that
    opening to report, with the field at fault.
    """
    if len(paths) < 2:
        return
    from zarr.core.sync import sync

    async def fetch() -> list[Any]:
        return await asyncio.gather(
            *(group._async_group.getitem(p) for p in paths), return_exceptions=True
        )

    sync(fetch())
