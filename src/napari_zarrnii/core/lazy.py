"""Lazy, read-only arrays: one base for every array-like this package hands out.

napari, dask and the pyramid writer need ``shape``, ``dtype``, ``ndim`` and
``__getitem__`` of the arrays they are given, nothing more.  :class:`LazyArray` gives
them once, for every source this package reads (zarr levels, plate mosaics, TIFF
pages, NIfTI voxels, ...): a subclass states its ``shape``, ``dtype`` and optional
storage ``chunks`` and implements :meth:`LazyArray._read`, which receives one
normalised slice per axis.  Everything else lives here, once:

* key normalisation (integers, negative indices, slices with any step, ``...``,
  fancy indices), with IndexError for what numpy would refuse;
* lazy views: indexing composes with the index already applied while the result is
  large (napari's multiscale slicing first cuts the visible tile out of *every*
  plane, then picks one plane: an eager array would read them all), and small results
  are read at once -- only the elements asked for;
* the storage chunk grid seen through a view (kept only where it stays aligned), so
  dask arrays built on a view still read one stored chunk per task.

Functions :func:`storage_chunks`, :func:`as_dask`, :func:`select_index` and
:func:`select_indices` work on any array-like (zarr, dask, numpy, lazy).

Reading zarr arrays goes through :func:`read_zarr`: a chunk that cannot be read or
decoded (truncated, damaged) raises :class:`~napari_zarrnii.ChunkReadError` naming
the store, the array and the chunk key (:func:`chunk_error` builds it, for any code
that reads chunks itself).
"""

from __future__ import annotations

import itertools
import math
import sys
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import ChunkReadError, ZarrNiiError

if TYPE_CHECKING:
    import dask.array as da

__all__ = [
    "MAX_DASK_BLOCKS",
    "ArrayAdapter",
    "DaskBlocks",
    "LazyArray",
    "LazyView",
    "as_dask",
    "bounded_chunks",
    "chunk_error",
    "dask_blocks",
    "is_dask",
    "is_zarr",
    "lazy_view",
    "normalize_key",
    "read_region",
    "read_zarr",
    "select_index",
    "select_indices",
    "storage_chunks",
    "with_chunk_errors",
]

#: One normalised index per axis: an ``int`` (the axis is dropped) or a ``range``.
Index = tuple["int | range", ...]


def is_dask(data: Any) -> bool:
    """True for a dask array (without importing dask when nothing has imported it)."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(data, module.Array)


def _expand_ellipsis(key: tuple[Any, ...], ndim: int) -> tuple[Any, ...]:
    positions = [i for i, k in enumerate(key) if k is Ellipsis]
    if len(positions) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if positions:
        pos = positions[0]
        fill = (slice(None),) * (ndim - (len(key) - 1))
        key = key[:pos] + fill + key[pos + 1 :]
    if len(key) > ndim:
        raise IndexError(
            f"too many indices for an array of {ndim} dimensions ({len(key)} were given)"
        )
    return tuple(key) + (slice(None),) * (ndim - len(key))


def _is_integer(item: Any) -> bool:
    return isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_))


def normalize_key(key: Any, shape: Sequence[int]) -> tuple[Index, tuple[Any, ...] | None]:
    """Split an index into a basic part and an optional fancy part.

    Parameters
    ----------
    key
        What ``__getitem__`` received.
    shape
        Shape of the array indexed.

    Returns
    -------
    (basic, fancy)
        ``basic`` has one ``int`` (in range, non-negative) or ``range`` per axis;
        ``fancy`` is None for a basic index, else the numpy index to apply to the
        result of ``basic`` (whose fancy axes are then whole ranges).

    Raises
    ------
    IndexError
        An integer out of range, too many indices, or an index of another kind.
    """
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is None for k in key):
        raise IndexError("new axes (None) are not supported by lazy arrays")
    key = _expand_ellipsis(key, len(shape))
    basic: list[int | range] = []
    fancy: list[Any] = []
    is_fancy = False
    for item, size in zip(key, shape):
        if isinstance(item, range):
            basic.append(item)
            fancy.append(slice(None))
        elif isinstance(item, slice):
            basic.append(range(int(size))[item])
            fancy.append(slice(None))
        elif _is_integer(item):
            i = int(item)
            if not -size <= i < size:
                raise IndexError(f"index {i} is out of bounds for an axis of size {size}")
            basic.append(i % size)
        elif isinstance(item, (list, np.ndarray)) or hasattr(item, "__array__"):
            is_fancy = True
            basic.append(range(int(size)))
            fancy.append(np.asarray(item))
        else:
            raise IndexError(f"unsupported index {item!r} ({type(item).__name__})")
    return tuple(basic), (tuple(fancy) if is_fancy else None)


def _positive(r: range) -> tuple[slice, bool]:
    """A forward slice covering ``r``, and whether the result must be flipped."""
    if len(r) == 0:
        return slice(0, 0, 1), False
    if r.step > 0:
        return slice(r.start, r[-1] + 1, r.step), False
    return slice(r[-1], r.start + 1, -r.step), True


def _compose(outer: range, inner: int | range) -> int | range:
    """``outer`` indexed by ``inner`` (an index or a range of positions in ``outer``)."""
    if isinstance(inner, int):
        return outer[inner]
    if len(inner) == 0:
        return range(0)
    start, step = outer[inner[0]], outer.step * inner.step
    return range(start, start + step * len(inner), step)


class LazyArray:
    """Base of the lazy, read-only arrays of this package.

    Subclasses set ``shape`` (tuple of int) and ``dtype`` (numpy dtype) and implement
    :meth:`_read`; they may override :attr:`chunks` with their storage chunk shape.
    Nothing is read until a (small) result is asked for or the array is converted
    with :func:`numpy.asarray`.
    """

    #: Results with more elements than this stay lazy views.
    LAZY_ABOVE = 1 << 20

    shape: tuple[int, ...]
    dtype: np.dtype

    # -- what a subclass provides ------------------------------------------------------
    def _read(self, box: tuple[slice, ...]) -> np.ndarray:
        """Read a box: one slice per axis, ``0 <= start <= stop <= n``, ``step >= 1``.

        Must return an array of exactly ``len(range(start, stop, step))`` elements per
        axis, in ``self.dtype``.
        """
        raise NotImplementedError

    @property
    def chunks(self) -> tuple[int, ...] | None:
        """Storage chunk shape (the unit worth reading at once), or None."""
        return None

    def uncached(self) -> Any:
        """The array computations should read: ``self``, unless this array keeps a cache.

        A computation (dask graph, pyramid writer) reads every chunk once; an array
        that caches chunks for viewing returns the array beneath it here, so bulk
        reads do not push out what a viewer needs.  :func:`as_dask` uses it.
        """
        return self

    # -- array protocol ------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes the array holds once read."""
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype})"

    def __getitem__(self, key: Any) -> Any:
        basic, fancy = normalize_key(key, self.shape)
        view = LazyView(self, basic)
        if fancy is not None:
            return view.read()[fancy]  # fancy holds one entry per axis the view keeps
        return view if view.size > self.LAZY_ABOVE else view.read()

    def view(self, key: Any) -> LazyView:
        """A lazy view through a basic index, whatever its size."""
        basic, fancy = normalize_key(key, self.shape)
        if fancy is not None:
            raise IndexError("a lazy view takes integers and slices only")
        return LazyView(self, basic)

    def read(self) -> np.ndarray:
        """Read the whole array."""
        return self._checked_read(tuple(slice(0, n, 1) for n in self.shape))

    def _checked_read(self, box: tuple[slice, ...]) -> np.ndarray:
        out = np.asarray(self._read(box))
        expected = tuple(len(range(s.start, s.stop, s.step)) for s in box)
        if out.shape != expected:
            raise ValueError(
                f"{self!r}: read of {box} returned shape {out.shape}, expected {expected}"
            )
        return out if out.dtype == self.dtype else out.astype(self.dtype)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self.read()
        return out if dtype is None else out.astype(dtype, copy=False)


class LazyView(LazyArray):
    """``base`` seen through one ``int`` or ``range`` per axis; views never nest.

    Indexing a view composes the new index with the one it holds, on the same base.
    """

    base: LazyArray
    index: Index

    def __init__(self, base: LazyArray, index: Index) -> None:
        if isinstance(base, LazyView):  # compose: a view of a view is a view of the base
            it = iter(index)
            index = tuple(_compose(r, next(it)) if isinstance(r, range) else r for r in base.index)
            base = base.base
        if len(index) != len(base.shape):
            raise IndexError(f"{len(index)} indices for an array of {len(base.shape)} axes")
        self.base = base
        self.index = tuple(index)
        self.shape = tuple(len(r) for r in self.index if isinstance(r, range))
        self.dtype = base.dtype

    def __repr__(self) -> str:
        return f"LazyView(shape={self.shape}, dtype={self.dtype}, base={self.base!r})"

    def uncached(self) -> Any:
        """The same view of the base's :meth:`~LazyArray.uncached` array."""
        source = self.base.uncached()
        if source is self.base:
            return self
        return lazy_view(source, self.index)

    @property
    def chunks(self) -> tuple[int, ...] | None:
        """The base's storage chunks on the kept axes, where the view stays aligned.

        Aligned: unit step starting on a chunk boundary (or chunks of one).  Otherwise
        None: a dask array built on the view would read stored chunks more than once.
        """
        base_chunks = self.base.chunks
        if base_chunks is None:
            return None
        kept = []
        for c, r in zip(base_chunks, self.index):
            if not isinstance(r, range):
                continue
            aligned = c == 1 or len(r) == 0 or (r.step == 1 and r.start % c == 0)
            if not aligned:
                return None
            kept.append(c)
        return tuple(kept)

    def _read(self, box: tuple[slice, ...]) -> np.ndarray:
        boxes = iter(box)
        base_box: list[slice] = []
        flips: list[int] = []
        drops: list[int] = []
        for axis, r in enumerate(self.index):
            if isinstance(r, range):
                s = next(boxes)
                sl, flip = _positive(r[s.start : s.stop : s.step])
                if flip:
                    flips.append(axis)
                base_box.append(sl)
            else:
                base_box.append(slice(r, r + 1, 1))
                drops.append(axis)
        out = self.base._checked_read(tuple(base_box))
        if flips:
            out = np.flip(out, axis=tuple(flips))
        return out.reshape(tuple(n for i, n in enumerate(out.shape) if i not in drops))


class ArrayAdapter(LazyArray):
    """Any indexable array (zarr, h5py, numpy, ...) as a :class:`LazyArray`.

    Reads are ``numpy.asarray(base[box])``: only what is asked for, in the base's
    own chunked way.
    """

    def __init__(self, base: Any) -> None:
        self.base = base
        self.shape = tuple(int(n) for n in base.shape)
        self.dtype = np.dtype(base.dtype)

    def __repr__(self) -> str:
        return f"ArrayAdapter({self.base!r})"

    @property
    def chunks(self) -> tuple[int, ...] | None:
        """Storage chunks of the base (shards for a sharded zarr array)."""
        return storage_chunks(self.base)

    def _read(self, box: tuple[slice, ...]) -> np.ndarray:
        if is_zarr(self.base):
            return read_zarr(self.base, box)
        return np.asarray(self.base[box])


def is_zarr(data: Any) -> bool:
    """True for a zarr array (without importing zarr when nothing has imported it)."""
    zarr = sys.modules.get("zarr")
    return zarr is not None and isinstance(data, zarr.Array)


def with_chunk_errors(data: Any) -> Any:
    """``data``, a zarr array wrapped so that its damaged chunks raise ChunkReadError.

    Other arrays (lazy, dask, numpy) are returned as they are.
    """
    return ArrayAdapter(data) if is_zarr(data) else data


#: What decoding a damaged chunk raises: numcodecs and zarr's codecs raise ValueError
#: (a truncated uncompressed chunk cannot be reshaped), RuntimeError (blosc, zstd),
#: zlib.error or EOFError (gzip), TypeError; the store raises OSError.
CHUNK_ERRORS = (ValueError, TypeError, RuntimeError, OSError, EOFError, zlib.error)

#: How many chunks of a failed read are read one by one to find the damaged one.
_MAX_CHUNKS_SEARCHED = 4096


def chunk_error(
    store: str, array_path: str, chunk_key: str | None, exc: BaseException
) -> ChunkReadError:
    """The typed error for a stored chunk that cannot be read or decoded.

    Parameters
    ----------
    store
        The store holding the array (path or URL), as the user named it.
    array_path
        The array's path inside the store (``"0"``, ``"labels/cells/1"``).
    chunk_key
        The chunk's (or shard's) key inside the array (``"c/0/1/2"``), or None when
        unknown.
    exc
        What reading or decoding it raised.

    Returns
    -------
    ChunkReadError
        To be raised ``from exc``.
    """
    detail = str(exc) or type(exc).__name__
    return ChunkReadError(
        store, array_path, chunk_key, f"{detail} (the stored chunk is truncated or damaged)"
    )


def zarr_store_name(array: Any) -> str:
    store = array.store_path.store
    root = getattr(store, "root", None)
    if root is not None:  # LocalStore
        return str(root)
    fs, path = getattr(store, "fs", None), getattr(store, "path", None)
    if fs is not None and path is not None:  # FsspecStore
        try:
            return str(fs.unstrip_protocol(path))
        except (AttributeError, TypeError, ValueError):
            return str(path)
    return str(store)


def read_zarr(array: Any, box: tuple[slice, ...]) -> np.ndarray:
    """``array[box]`` of a zarr array, its read errors naming the chunk at fault.

    Raises
    ------
    ChunkReadError
        A chunk (or shard) of the box cannot be read or decoded; names the store,
        the array path and the chunk key.  The chunks of the box are read one by one
        (at most 4096 of them) only after a read has failed, to find that key.
    """
    try:
        return np.asarray(array[box])
    except ZarrNiiError:
        raise
    except CHUNK_ERRORS as exc:
        raise _locate_chunk_error(array, box, exc) from exc


def _locate_chunk_error(array: Any, box: tuple[slice, ...], exc: BaseException) -> ChunkReadError:
    store, path = zarr_store_name(array), str(array.store_path.path)
    grid = storage_chunks(array)
    if grid is None or len(grid) != len(box):
        return chunk_error(store, path, None, exc)
    ranges: list[Sequence[int]] = []
    for s, c, n in zip(box, grid, array.shape):
        start, stop, step = s.indices(int(n))
        if stop <= start:
            return chunk_error(store, path, None, exc)
        last = start + (len(range(start, stop, step)) - 1) * step
        if step <= c:
            ranges.append(range(start // c, last // c + 1))
        else:  # strided: only the chunks holding a selected index
            ranges.append(sorted({i // c for i in range(start, last + 1, step)}))
    for coords in itertools.islice(itertools.product(*ranges), _MAX_CHUNKS_SEARCHED):
        region = tuple(
            slice(k * c, min((k + 1) * c, int(n))) for k, c, n in zip(coords, grid, array.shape)
        )
        try:
            array[region]
        except CHUNK_ERRORS as inner:
            return chunk_error(store, path, array.metadata.encode_chunk_key(coords), inner)
    return chunk_error(store, path, None, exc)


def lazy_view(data: Any, key: Any) -> LazyView:
    """A lazy view of any array-like through a basic index (nothing is read)."""
    base = data if isinstance(data, LazyArray) else ArrayAdapter(data)
    return base.view(key)


@dataclass(frozen=True)
class DaskBlocks:
    """Whole chunks of a dask array, with only the part of its graph they need.

    Computing them runs just those chunks' tasks in the calling thread: no slicing of
    the array, no graph optimisation -- about a tenth of the overhead of computing
    ``array[region]``, which matters when a writer reads every chunk of a large
    array once.  Picklable (the graph holds only these chunks' tasks and what they
    depend on), so a block task can carry it to another process.
    """

    graph: Mapping[Any, Any]
    #: the chunks' keys, in C order over ``grid``
    keys: tuple[Any, ...]
    #: where each chunk starts in the region, per axis
    offsets: tuple[tuple[int, ...], ...]
    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    @property
    def grid(self) -> tuple[int, ...]:
        """Chunks per axis in the region."""
        return tuple(len(starts) for starts in self.offsets)

    def compute(self, region: tuple[slice, ...] | None = None) -> np.ndarray:
        """The values of ``region`` (default: all), running only the chunks it touches.

        One whole chunk is returned as computed; anything else is assembled.
        """
        if region is None:
            box = tuple((0, n) for n in self.shape)
        else:
            box = tuple(s.indices(n)[:2] for s, n in zip(region, self.shape))
        picked: list[tuple[Any, tuple[int, ...]]] = []
        for index, key in zip(itertools.product(*(range(g) for g in self.grid)), self.keys):
            start = tuple(offsets[i] for offsets, i in zip(self.offsets, index))
            stop = tuple(
                offsets[i + 1] if i + 1 < len(offsets) else n
                for offsets, i, n in zip(self.offsets, index, self.shape)
            )
            if all(a < hi and lo < b for a, b, (lo, hi) in zip(start, stop, box)):
                picked.append((key, start))
        from dask.local import get_sync

        values = get_sync(self.graph, [key for key, _ in picked])
        whole = tuple(hi - lo for lo, hi in box)
        if len(values) == 1 and np.shape(values[0]) == whole:
            return np.asarray(values[0])
        out = np.empty(whole, self.dtype)
        for (_, start), value in zip(picked, values):
            src = []
            dst = []
            for a, n, (lo, hi) in zip(start, np.shape(value), box):
                first, last = max(a, lo), min(a + n, hi)
                src.append(slice(first - a, last - a))
                dst.append(slice(first - lo, last - lo))
            out[tuple(dst)] = np.asarray(value)[tuple(src)]
        return out


#: Regions of more chunks than this are read by slicing the dask array instead.
_MAX_DIRECT_BLOCKS = 64


def dask_blocks(data: Any, region: tuple[slice, ...]) -> DaskBlocks | None:
    """``data[region]`` as :class:`DaskBlocks`, when ``region`` is whole chunks of ``data``.

    None when ``data`` is not a dask array, or the region does not start and end on
    its chunk boundaries (then slice the array as usual).
    """
    if not is_dask(data) or len(region) != data.ndim:
        return None
    indices: list[range] = []
    offsets: list[tuple[int, ...]] = []
    shape: list[int] = []
    for s, sizes, n in zip(region, data.chunks, data.shape):
        start, stop, step = s.indices(int(n))
        if step != 1 or stop <= start:
            return None
        bounds = np.concatenate(([0], np.cumsum(sizes)))
        first = int(np.searchsorted(bounds, start))
        last = int(np.searchsorted(bounds, stop))
        if first >= len(bounds) or bounds[first] != start or bounds[last] != stop:
            return None
        indices.append(range(first, last))
        offsets.append(tuple(int(b - start) for b in bounds[first:last]))
        shape.append(stop - start)
    grid = tuple(len(r) for r in indices)
    if math.prod(grid) > _MAX_DIRECT_BLOCKS:
        return None
    keys = tuple((data.name, *index) for index in itertools.product(*indices))
    graph = data.__dask_graph__().cull(set(keys))
    return DaskBlocks(
        graph=dict(graph),
        keys=keys,
        offsets=tuple(offsets),
        shape=tuple(shape),
        dtype=np.dtype(data.dtype),
    )


def read_region(data: Any, region: tuple[slice, ...], dtype: Any = None) -> np.ndarray:
    """Read ``data[region]`` into memory, whatever ``data`` is.

    A dask array is computed with the synchronous scheduler (one small graph, in the
    calling thread): whole chunks straight from their tasks (:func:`dask_blocks`),
    other regions by slicing; lazy arrays and zarr arrays read only the region.
    """
    if isinstance(data, DaskBlocks):
        block = data.compute(region)
    elif (direct := dask_blocks(data, region)) is not None:
        block = direct.compute()
    else:
        block = data[region]
        if is_dask(block):
            block = block.compute(scheduler="synchronous")
    return np.asarray(block) if dtype is None else np.asarray(block, dtype=dtype)


def storage_chunks(data: Any, *, shards: bool = True) -> tuple[int, ...] | None:
    """The chunk shape worth reading ``data`` by: shards of a sharded zarr array, else chunks.

    Parameters
    ----------
    data
        A zarr array, a dask array, a :class:`LazyArray` or any array-like.
    shards
        False gives a sharded zarr array's inner chunks rather than its shards.

    Returns
    -------
    tuple of int or None
        One entry per axis, or None when the array has no (regular) chunk grid.
    """
    zarr = sys.modules.get("zarr")
    if zarr is not None and isinstance(data, zarr.Array):
        return tuple(int(c) for c in ((data.shards if shards else None) or data.chunks))
    chunks = getattr(data, "chunks", None)
    if chunks is None:
        return None
    if chunks and isinstance(chunks[0], tuple):  # dask: tuple of tuples
        return tuple(int(c[0]) if c else 0 for c in chunks)
    try:
        out = tuple(int(c) for c in chunks)
    except (TypeError, ValueError):
        return None
    return out if len(out) == len(data.shape) else None


#: Most blocks :func:`as_dask` gives a dask array.  dask lists every block of a graph
#: to optimise it, so an array declaring billions of tiny chunks would take gigabytes
#: before anything is read; bigger blocks (whole multiples of the stored chunks) keep
#: that bounded.
MAX_DASK_BLOCKS = 2**18


def bounded_chunks(
    shape: Sequence[int], chunks: Sequence[int], max_blocks: int = MAX_DASK_BLOCKS
) -> tuple[int, ...]:
    """``chunks`` grown by whole multiples until ``shape`` has at most ``max_blocks`` blocks.

    The axis cut into the most blocks is doubled first; a block never exceeds the
    array.  Chunks already within the bound are returned as they are.
    """
    out = [max(1, int(c)) for c in chunks]
    counts = [-(-int(n) // c) for n, c in zip(shape, out)]
    while math.prod(counts) > max_blocks:
        axis = max(range(len(out)), key=lambda i: counts[i])
        out[axis] = min(out[axis] * 2, int(shape[axis]))
        counts[axis] = -(-int(shape[axis]) // out[axis])
    return tuple(out)


def as_dask(data: Any) -> da.Array:
    """``data`` as a dask array chunked like its storage (nothing is read).

    Blocks are the stored chunks (shards), or whole multiples of them for arrays of
    more than :data:`MAX_DASK_BLOCKS` chunks.

    Parameters
    ----------
    data
        A dask array (returned as is), a zarr array (read through :func:`read_zarr`
        by shard or chunk), or any array-like with ``shape``, ``dtype`` and
        ``__getitem__`` (``da.from_array`` with its storage chunks, else ``"auto"``).
        A lazy array that caches chunks for viewing is read beneath its cache
        (:meth:`LazyArray.uncached`).
    """
    import dask.array as da
    import zarr

    if isinstance(data, da.Array):
        return data
    if isinstance(data, LazyArray):
        data = data.uncached()
    chunks = storage_chunks(data)
    if chunks is not None and all(chunks):
        chunks = bounded_chunks(tuple(int(n) for n in data.shape), chunks)
    if isinstance(data, zarr.Array):
        # through read_zarr, so that a damaged chunk names itself
        return da.from_array(
            ArrayAdapter(data),
            chunks=chunks,
            name=False,
            asarray=True,
            meta=np.empty((0,) * data.ndim, dtype=data.dtype),
        )
    if chunks is not None and not all(chunks):
        chunks = None
    # name=False: a random name, not a hash of the (possibly remote) array object
    return da.from_array(data, chunks=chunks or "auto", name=False, asarray=True)


def select_index(data: Any, axis: int, index: int) -> Any:
    """Lazily take index ``index`` of ``axis`` (the axis is dropped).

    Dask arrays are sliced with dask; other arrays get a :class:`LazyView`, so nothing
    is read and no task graph is built.
    """
    size = int(data.shape[axis])
    if not -size <= index < size:
        raise IndexError(f"index {index} out of range for an axis of size {size}")
    key = tuple(index % size if i == axis else slice(None) for i in range(len(data.shape)))
    if is_dask(data):
        return data[key]
    return lazy_view(data, key)


def select_indices(data: Any, axis: int, indices: Sequence[int]) -> Any:
    """Lazily keep the given indices of ``axis`` (the axis is kept).

    Evenly spaced increasing indices become a slice (a :class:`LazyView` for non-dask
    arrays); other selections use dask fancy indexing.
    """
    size = int(data.shape[axis])
    idx = [int(i) % size if -size <= int(i) < size else None for i in indices]
    if any(i is None for i in idx) or not idx:
        raise IndexError(f"indices {list(indices)} out of range for an axis of size {size}")
    steps = {b - a for a, b in itertools.pairwise(idx)}  # type: ignore[operator]
    if len(steps) <= 1 and (not steps or next(iter(steps)) > 0):
        step = next(iter(steps)) if steps else 1
        first, last = idx[0], idx[-1]
        assert first is not None and last is not None
        sl = slice(first, last + 1, step)
        key = tuple(sl if i == axis else slice(None) for i in range(len(data.shape)))
        if is_dask(data):
            return data[key]
        return lazy_view(data, key)
    key_fancy = tuple(
        np.asarray(idx) if i == axis else slice(None) for i in range(len(data.shape))
    )
    return as_dask(data)[key_fancy]
