"""Block reductions: one numpy block in, one downsampled block out.

Every kernel is exact: ``local_mean`` of integers sums in a wide integer type and
rounds half to even, ``mode`` never returns a value absent from its block, and a
partial block at the end of an axis is reduced over the voxels present.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

__all__ = ["LABEL_METHODS", "SCALING_METHODS", "downsample_block"]

SCALING_METHODS = ("local_mean", "nearest", "mode", "max", "min")
#: Methods that never create a label value absent from the source.
LABEL_METHODS = ("mode", "nearest")

#: Kernels work on slabs of about this many input bytes: temporaries stay small and
#: in cache whatever the block size.
_KERNEL_SLAB_BYTES = 4 * 2**20


def _take(a: np.ndarray, axis: int, start: int, step: int) -> np.ndarray:
    index = [slice(None)] * a.ndim
    index[axis] = slice(start, None, step)
    return a[tuple(index)]


def _mean_accumulator(dtype: np.dtype, count: int) -> np.dtype:
    """A signed/unsigned integer type holding the sum of ``count`` values of ``dtype``."""
    info = np.iinfo(dtype) if dtype.kind in "iu" else np.iinfo(np.uint8)
    wide = np.int64 if info.min < 0 else np.uint64
    narrow = np.int32 if info.min < 0 else np.uint32
    bound = max(abs(int(info.min)), int(info.max)) * count
    return np.dtype(narrow if bound < 2**31 else wide)


def _sum_blocks(a: np.ndarray, factors: Sequence[int], acc: np.dtype) -> np.ndarray:
    """Exact block sums, one axis at a time (strided slices: no transposed copies)."""
    out: np.ndarray = a
    first = True
    for axis in np.argsort([-f for f in factors], kind="stable"):
        f = int(factors[axis])
        if f == 1:
            continue
        total = (
            _take(out, int(axis), 0, f).astype(acc)
            if first
            else _take(out, int(axis), 0, f).copy()
        )
        for j in range(1, f):
            total += _take(out, int(axis), j, f)
        out, first = total, False
    return out if not first else a.astype(acc)


def _round_half_even(total: np.ndarray, count: int) -> np.ndarray:
    """``rint(total / count)`` exactly, in integers; ``total`` (a temporary) is reused.

    For a power-of-two count (every factor 2, 4, ...) with ``count = 2**k``:
    ``(total + 2**(k-1) - 1 + parity(total >> k)) >> k`` rounds half to even in place,
    with no temporary but the parity (the accumulator has headroom for the addend).
    """
    if count > 1 and count & (count - 1) == 0:
        k = count.bit_length() - 1
        parity = total >> k
        parity &= 1
        total += parity
        total += (count >> 1) - 1
        total >>= k
        return total
    q = total // count
    r = total - q * count
    up = (2 * r > count) | ((2 * r == count) & (q % 2 == 1))
    return q + up.astype(q.dtype)


def _mean_exact(a: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    count = math.prod(factors)
    dtype = a.dtype
    if dtype.kind == "f" or dtype.kind == "c":
        work = np.float64 if dtype.kind == "f" else np.complex128
        return (_sum_blocks(a, factors, np.dtype(work)) / count).astype(dtype)
    if dtype.kind == "b":
        return _round_half_even(_sum_blocks(a, factors, np.dtype(np.uint32)), count) > 0
    if dtype.itemsize < 8:
        acc = _mean_accumulator(dtype, count)
        return _round_half_even(_sum_blocks(a, factors, acc), count).astype(dtype)
    # 64-bit integers have no wider type: write x = n*q + r with q truncated towards
    # zero (|sum q| <= max |x|) and |r| < n (|sum r| < n*n), sum both, then round.
    quot = a // count
    rem = a % count
    if dtype.kind == "i":
        negative = (rem != 0) & (a < 0)
        quot[negative] += 1
        rem[negative] -= count
    total_q = _sum_blocks(quot, factors, dtype)
    total_r = _sum_blocks(rem, factors, dtype)
    q2 = total_r // count  # floor: 0 <= r2 < n
    base = total_q + q2
    r2 = total_r - q2 * count
    up = (2 * r2 > count) | ((2 * r2 == count) & (base % 2 != 0))
    return (base + up.astype(dtype)).astype(dtype)


def _extreme_exact(a: np.ndarray, factors: Sequence[int], ufunc: np.ufunc) -> np.ndarray:
    out = a
    for axis, f in enumerate(factors):
        if f == 1:
            continue
        total = _take(out, axis, 0, f).copy()
        for j in range(1, f):
            ufunc(total, _take(out, axis, j, f), out=total)
        out = total
    return out if out is not a else a.copy()


def _batcher_network(n: int) -> list[tuple[int, int]]:
    """Compare-exchange pairs of Batcher's odd-even merge sort, restricted to ``n`` items."""
    size = 1
    while size < n:
        size *= 2
    pairs: list[tuple[int, int]] = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    # Missing items act as +inf at the end: comparisons with them never swap.
    return [(i, j) for i, j in pairs if j < n]


_NETWORKS: dict[int, list[tuple[int, int]]] = {}


def _mode_exact(a: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    count = math.prod(factors)
    offsets = itertools.product(*(range(f) for f in factors))
    cols = [a[tuple(slice(o, None, f) for o, f in zip(off, factors))] for off in offsets]
    if count <= 64:
        # A sorting network over the k views: vectorised min/max, no transposed copy.
        cols = [np.array(c) for c in cols]
        network = _NETWORKS.get(count)
        if network is None:
            network = _NETWORKS.setdefault(count, _batcher_network(count))
        for i, j in network:
            lo = np.minimum(cols[i], cols[j])
            np.maximum(cols[i], cols[j], out=cols[j])
            cols[i] = lo
        sorted_cols = cols
    else:
        stacked = np.sort(np.stack(cols, axis=-1), axis=-1)
        sorted_cols = [stacked[..., j] for j in range(count)]
    # Longest run in each sorted block; strict '>' keeps the first (smallest) on ties.
    best = sorted_cols[0].copy()
    best_n = np.ones(best.shape, np.int32)
    run = np.ones(best.shape, np.int32)
    for j in range(1, count):
        same = sorted_cols[j] == sorted_cols[j - 1]
        run = np.where(same, run + 1, 1).astype(np.int32)
        better = run > best_n
        np.copyto(best_n, run, where=better)
        np.copyto(best, sorted_cols[j], where=better)
    return best


def _reduce_exact(a: np.ndarray, factors: Sequence[int], method: str) -> np.ndarray:
    """Reduce an array whose shape is divisible by ``factors``."""
    if method == "local_mean":
        return _mean_exact(a, factors)
    if method == "max":
        return _extreme_exact(a, factors, np.maximum)
    if method == "min":
        return _extreme_exact(a, factors, np.minimum)
    if method == "mode":
        return _mode_exact(a, factors)
    raise ValueError(f"unknown method {method!r}")  # pragma: no cover


def downsample_block(arr: np.ndarray, factors: int | Sequence[int], method: str) -> np.ndarray:
    """Downsample a numpy block by integer factors.

    Parameters
    ----------
    arr
        The block.
    factors
        One factor for every axis, or a tuple with one factor per axis of ``arr``.
    method
        ``'local_mean'``: block mean (integers rounded half to even, exactly; floats in
        float64, stored as the input dtype).  ``'mode'``: most frequent value of the
        block, ties to the smallest.  ``'nearest'``: element 0 of each block.
        ``'max'``/``'min'``: block maximum/minimum.

    Returns
    -------
    numpy.ndarray
        Shape ``ceil(n / f)`` per axis, same dtype.  The last, partial block along an
        axis is reduced over the voxels present.
    """
    a = np.asarray(arr)
    if isinstance(factors, (int, np.integer)):
        fs = (int(factors),) * a.ndim
    else:
        fs = tuple(int(f) for f in factors)
    if len(fs) != a.ndim:
        raise ValueError(f"factors {factors!r}: need {a.ndim} values, one per axis")
    if any(f < 1 for f in fs):
        raise ValueError(f"factors {factors!r}: must be >= 1")
    if method not in SCALING_METHODS:
        raise ValueError(f"method {method!r}: use one of {', '.join(SCALING_METHODS)}")
    if all(f == 1 for f in fs):
        return a.copy()
    if method == "nearest":
        return np.ascontiguousarray(a[tuple(slice(None, None, f) for f in fs)])
    out_shape = tuple(-(-n // f) for n, f in zip(a.shape, fs))
    axis = next((i for i, n in enumerate(out_shape) if n > 1), None)
    if a.nbytes > 2 * _KERNEL_SLAB_BYTES and axis is not None:
        # Slabs of whole blocks along the first axis that has several.
        per_out = a.nbytes / out_shape[axis]
        step = max(1, int(_KERNEL_SLAB_BYTES // per_out))
        out = np.empty(out_shape, a.dtype)
        f = fs[axis]
        for o in range(0, out_shape[axis], step):
            src = [slice(None)] * a.ndim
            dst = [slice(None)] * a.ndim
            src[axis] = slice(o * f, min((o + step) * f, a.shape[axis]))
            dst[axis] = slice(o, min(o + step, out_shape[axis]))
            out[tuple(dst)] = _downsample_unsliced(a[tuple(src)], fs, method)
        return out
    return _downsample_unsliced(a, fs, method)


def _downsample_unsliced(a: np.ndarray, fs: tuple[int, ...], method: str) -> np.ndarray:
    out_shape = tuple(-(-n // f) for n, f in zip(a.shape, fs))
    if all(n % f == 0 for n, f in zip(a.shape, fs)):
        return _reduce_exact(a, fs, method)
    # Split each axis into its whole blocks and its remainder: every piece is divisible
    # by its own factors (the remainder is one block of the voxels present).
    pieces_per_axis = []
    for n, f in zip(a.shape, fs):
        full = n // f * f
        pieces = []
        if full:
            pieces.append((slice(0, full), f, slice(0, full // f)))
        if n > full:
            pieces.append((slice(full, n), n - full, slice(full // f, full // f + 1)))
        pieces_per_axis.append(pieces)
    out = np.empty(out_shape, a.dtype)
    for combo in itertools.product(*pieces_per_axis):
        src = tuple(p[0] for p in combo)
        dst = tuple(p[2] for p in combo)
        out[dst] = _reduce_exact(np.ascontiguousarray(a[src]), [p[1] for p in combo], method)
    return out
