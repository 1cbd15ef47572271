"""Whole chunks of a local zarr array, encoded and stored in the calling thread.

zarr's own write path hands every chunk to its event loop, which encodes it in a pool
of its own threads and writes it from another: buffers are allocated in many threads
(each growing its own malloc arena) and every chunk crosses threads three times.  The
engine reads and writes whole chunks only (its blocks are chunk-aligned), so for the
arrays it creates -- a local store, regular chunks, no sharding, codecs that encode
synchronously -- it does the same work itself, in the worker that computed the block,
with zarr's own codec objects: the bytes stored are the ones zarr would store.  Any
other array goes through zarr.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import zarr
from numcodecs.compat import ensure_bytes
from zarr.abc.codec import BytesBytesCodec
from zarr.codecs import BytesCodec
from zarr.core.array_spec import ArraySpec
from zarr.core.buffer import Buffer, NDBuffer, default_buffer_prototype
from zarr.core.chunk_grids import RegularChunkGrid
from zarr.core.codec_pipeline import BatchedCodecPipeline
from zarr.core.metadata import ArrayV2Metadata, ArrayV3Metadata
from zarr.storage import LocalStore

__all__ = ["ChunkIO"]


def _sync_codec(codec: object) -> bool:
    return callable(getattr(codec, "_encode_sync", None)) and callable(
        getattr(codec, "_decode_sync", None)
    )


class ChunkIO:
    """Reads and writes chunk-aligned regions of one array without zarr's event loop.

    Use :meth:`for_array`, which returns None for arrays this does not handle.
    """

    def __init__(self, array: zarr.Array) -> None:
        self._array = array
        self._store: LocalStore = array.store  # type: ignore[assignment]
        self._prefix = f"{array.path}/" if array.path else ""
        self._metadata = array.metadata
        self._shape = tuple(int(n) for n in array.shape)
        self._chunks = tuple(int(c) for c in array.chunks)
        self._dtype = np.dtype(array.dtype)
        self._prototype = default_buffer_prototype()
        self._spec: ArraySpec | None = None
        self._bytes_codec: BytesCodec | None = None
        self._bb_codecs: tuple[BytesBytesCodec, ...] = ()
        self._compressor: Any = None
        if isinstance(self._metadata, ArrayV3Metadata):
            pipeline = array.async_array.codec_pipeline
            assert isinstance(pipeline, BatchedCodecPipeline)
            assert isinstance(pipeline.array_bytes_codec, BytesCodec)
            self._bytes_codec = pipeline.array_bytes_codec
            self._bb_codecs = pipeline.bytes_bytes_codecs
            self._spec = self._metadata.get_chunk_spec(
                (0,) * len(self._shape), array.async_array.config, self._prototype
            )
        else:
            self._compressor = self._metadata.compressor

    @classmethod
    def for_array(cls, array: Any) -> ChunkIO | None:
        """A ChunkIO for ``array``, or None when zarr must do the work itself."""
        if not isinstance(array, zarr.Array) or not isinstance(array.store, LocalStore):
            return None
        meta = array.metadata
        dtype = np.dtype(array.dtype)
        if dtype.hasobject or not dtype.isnative or array.fill_value != 0:
            return None
        if isinstance(meta, ArrayV3Metadata):
            pipeline = array.async_array.codec_pipeline
            if not (
                isinstance(meta.chunk_grid, RegularChunkGrid)
                and isinstance(pipeline, BatchedCodecPipeline)
                and not pipeline.array_array_codecs
                and isinstance(pipeline.array_bytes_codec, BytesCodec)
                and all(_sync_codec(c) for c in pipeline.bytes_bytes_codecs)
            ):
                return None
        elif isinstance(meta, ArrayV2Metadata):
            if meta.filters or meta.order != "C":
                return None
        else:  # pragma: no cover - a future format
            return None
        return cls(array)

    def _chunk_range(self, region: tuple[slice, ...]) -> list[range]:
        return [range(r.start // c, -(-r.stop // c)) for r, c in zip(region, self._chunks)]

    def _key(self, coords: tuple[int, ...]) -> str:
        return self._prefix + self._metadata.encode_chunk_key(coords)

    def write(self, region: tuple[slice, ...], data: np.ndarray) -> None:
        """Store ``data`` at ``region``, whose chunks it covers entirely (or up to the
        array's end).  Chunks at the end are padded with 0, the fill value."""
        for coords in itertools.product(*self._chunk_range(region)):
            starts = [i * c for i, c in zip(coords, self._chunks)]
            stops = [min(a + c, n) for a, c, n in zip(starts, self._chunks, self._shape)]
            src = tuple(slice(a - r.start, b - r.start) for a, b, r in zip(starts, stops, region))
            part = data[src]
            if part.shape != self._chunks:
                full = np.zeros(self._chunks, self._dtype)
                full[tuple(slice(0, s) for s in part.shape)] = part
                part = full
            self._store.set_sync(self._key(coords), self._encode(part))

    def _encode(self, chunk: np.ndarray) -> Buffer:
        chunk = np.ascontiguousarray(chunk, dtype=self._dtype)
        if self._bytes_codec is not None:
            assert self._spec is not None
            buf: Buffer | None = self._bytes_codec._encode_sync(
                self._prototype.nd_buffer.from_numpy_array(chunk), self._spec
            )
            for codec in self._bb_codecs:
                assert buf is not None
                buf = codec._encode_sync(buf, self._spec)  # type: ignore[attr-defined]
            assert buf is not None
            return buf
        cdata = self._compressor.encode(chunk) if self._compressor is not None else chunk
        return self._prototype.buffer.from_bytes(ensure_bytes(cdata))

    def _decode(self, data: Buffer) -> np.ndarray:
        if self._bytes_codec is not None:
            assert self._spec is not None
            for codec in reversed(self._bb_codecs):
                data = codec._decode_sync(data, self._spec)  # type: ignore[attr-defined]
            out: NDBuffer = self._bytes_codec._decode_sync(data, self._spec)
            return out.as_numpy_array().reshape(self._chunks)
        raw = data.as_numpy_array()
        if self._compressor is not None:
            raw = np.frombuffer(ensure_bytes(self._compressor.decode(raw)), np.uint8)
        return raw.view(self._dtype).reshape(self._chunks)

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        """The values of ``region``: missing chunks read as 0, the fill value."""
        out = np.zeros(tuple(r.stop - r.start for r in region), self._dtype)
        for coords in itertools.product(*self._chunk_range(region)):
            stored = self._store.get_sync(self._key(coords), prototype=self._prototype)
            if stored is None:
                continue
            chunk = self._decode(stored)
            dst, src = [], []
            for i, c, r in zip(coords, self._chunks, region):
                a, b = max(i * c, r.start), min((i + 1) * c, r.stop)
                dst.append(slice(a - r.start, b - r.start))
                src.append(slice(a - i * c, b - i * c))
            out[tuple(dst)] = chunk[tuple(src)]
        return out
