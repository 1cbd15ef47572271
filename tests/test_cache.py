"""The shared chunk cache, cached arrays and reading ahead (no napari)."""

from __future__ import annotations

import gc
import pickle
import random
import threading

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_zarrnii.core.cache import (
    ENTRY_OVERHEAD,
    ChunkCache,
    chunk_cache,
    default_budget,
    parse_size,
    set_cache_budget,
)
from napari_zarrnii.core.cached import CachedArray, ChunkReadWarning, chunk_plan
from napari_zarrnii.core.lazy import as_dask, select_index
from napari_zarrnii.core.prefetch import Prefetcher, Pyramid

from .stores import CountingStore

MiB = 1 << 20


def _chunk(n: int, value: int = 0) -> np.ndarray:
    """An array of ``n`` bytes (uint8)."""
    return np.full(n, value, np.uint8)


def _size(n: int) -> int:
    return n + ENTRY_OVERHEAD


# -- the cache itself ----------------------------------------------------------------------
def test_lru_order_and_budget():
    cache = ChunkCache(3 * _size(100))
    for i in range(3):
        assert cache.put("a", (i,), _chunk(100, i))
    assert cache.get_many("a", [(0,)])  # (0,) is now the most recently used
    cache.put("a", (3,), _chunk(100, 3))
    assert cache.contains("a", (0,)) and not cache.contains("a", (1,))
    assert cache.nbytes == 3 * _size(100) <= cache.budget
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.evictions, stats.entries) == (1, 0, 1, 3)


def test_resize_evicts_and_oversized_is_refused():
    cache = ChunkCache(10 * _size(100))
    for i in range(10):
        cache.put("a", (i,), _chunk(100))
    cache.resize(4 * _size(100))
    assert len(cache) == 4 and cache.nbytes <= cache.budget
    assert all(cache.contains("a", (i,)) for i in range(6, 10))  # the newest stay
    assert not cache.put("a", (99,), _chunk(5 * _size(100)))
    cache.resize(0)
    assert len(cache) == 0 and not cache.put("a", (0,), _chunk(1))


def test_cached_arrays_are_read_only():
    cache = ChunkCache(MiB)
    arr = _chunk(10)
    cache.put("a", (0,), arr)
    got = cache.get_many("a", [(0,)])[(0,)]
    with pytest.raises(ValueError):
        got[0] = 1
    arr[0] = 1  # the caller's array stays writable


def test_prefetch_never_evicts_the_view_on_screen():
    cache = ChunkCache(4 * _size(100))
    for i in range(4):
        cache.put("a", (i,), _chunk(100))
    cache.protect("a", [(0,), (1,), (2,), (3,)])
    assert not cache.put("a", (10,), _chunk(100), prefetch=True)
    assert all(cache.contains("a", (i,)) for i in range(4))
    assert cache.put("a", (11,), _chunk(100))  # a foreground read may evict
    # once (0,) is no longer in the latest reads, prefetch may take its place
    for k in range(20):
        cache.protect("b", [(k,)])
    assert cache.put("a", (12,), _chunk(100), prefetch=True)
    assert cache.nbytes <= cache.budget


def test_drop_forgets_one_owner():
    cache = ChunkCache(MiB)
    cache.put("a", (0,), _chunk(10))
    cache.put("b", (0,), _chunk(10))
    assert cache.drop("a") == _size(10)
    assert not cache.contains("a", (0,)) and cache.contains("b", (0,))


def test_thread_safety_keeps_the_books():
    cache = ChunkCache(50 * _size(1000))
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(2000):
                key = (rng.randrange(200),)
                if rng.random() < 0.5:
                    cache.put(str(seed % 3), key, _chunk(1000), prefetch=rng.random() < 0.3)
                else:
                    cache.get_many(str(seed % 3), [key])
                if rng.random() < 0.05:
                    cache.protect(str(seed % 3), [key])
                assert cache.nbytes <= cache.budget
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert cache.nbytes == len(cache) * _size(1000) <= cache.budget


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1024", 1024), (2048, 2048), ("1 KiB", 1024), ("2GiB", 2 << 30), ("1.5mb", 1_500_000)],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["lots", "-1", "3 parsecs", True])
def test_parse_size_refuses(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_default_budget_and_environment(monkeypatch):
    monkeypatch.delenv("NAPARI_ZARRNII_CACHE", raising=False)
    budget = default_budget()
    assert 256 * MiB <= budget <= 2 << 30
    monkeypatch.setenv("NAPARI_ZARRNII_CACHE", "300MiB")
    assert default_budget() == 300 * MiB
    monkeypatch.setenv("NAPARI_ZARRNII_CACHE", "10%")
    assert 0 < default_budget()


def test_set_cache_budget_from_the_package_top():
    import napari_zarrnii

    before = chunk_cache().budget
    try:
        assert napari_zarrnii.set_cache_budget("64MiB") == 64 * MiB
        assert chunk_cache().budget == 64 * MiB == napari_zarrnii.cache_info().budget
    finally:
        set_cache_budget(before)


# -- cached arrays ---------------------------------------------------------------------------
def _store(tmp_path, shape, chunks, *, zarr_format=3, shards=None, data=None, name="a"):
    path = tmp_path / f"{name}.zarr"
    arr = zarr.create_array(
        str(path),
        shape=shape,
        chunks=chunks,
        shards=shards,
        dtype="uint16",
        zarr_format=zarr_format,
        fill_value=0,
    )
    if data is None:
        data = (np.arange(np.prod(shape)) % 65521).astype("uint16").reshape(shape)
    arr[...] = data
    store = CountingStore.local(path)
    return zarr.open_array(store, mode="r"), store, data


def test_chunk_plan_covers_steps():
    assert chunk_plan(slice(3, 20, 1), 8) == [
        (0, slice(3, 8, 1), slice(0, 5)),
        (1, slice(0, 8, 1), slice(5, 13)),
        (2, slice(0, 4, 1), slice(13, 17)),
    ]
    plan = chunk_plan(slice(1, 30, 10), 8)  # 1, 11, 21: one index in chunks 0, 1, 2
    assert [p[0] for p in plan] == [0, 1, 2]
    assert [p[1] for p in plan] == [slice(1, 2, 10), slice(3, 4, 10), slice(5, 6, 10)]


@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
    root = tmp_path_factory.mktemp("cached")
    shape = (3, 21, 37, 45)
    out = {}
    for name, fmt, chunks, shards in [
        ("v2", 2, (1, 8, 8, 16), None),
        ("v3", 3, (2, 5, 16, 8), None),
        ("sharded", 3, (1, 4, 8, 8), (1, 8, 16, 16)),
    ]:
        arr, _, data = _store(root, shape, chunks, zarr_format=fmt, shards=shards, name=name)
        out[name] = (arr, data)
    return out


_index = st.one_of(
    st.integers(-3, 2),
    st.builds(
        slice,
        st.one_of(st.none(), st.integers(-40, 40)),
        st.one_of(st.none(), st.integers(-40, 40)),
        st.one_of(st.none(), st.integers(-7, 7).filter(lambda s: s != 0)),
    ),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(["v2", "v3", "sharded"]),
    budget=st.sampled_from([0, 4096, 1 << 24]),
    first=_index,
    rest=st.tuples(
        st.builds(slice, st.integers(0, 25), st.integers(0, 25), st.integers(1, 4)),
        st.builds(slice, st.integers(-40, 40), st.integers(-40, 40), st.integers(1, 9)),
        st.builds(slice, st.none(), st.none(), st.sampled_from([1, -1, 3, -5])),
    ),
)
def test_reads_equal_the_zarr_array(arrays, kind, budget, first, rest):
    arr, data = arrays[kind]
    cached = CachedArray(arr, cache=ChunkCache(budget))
    key = (first, *rest)
    if isinstance(first, int):
        key = (first % 3, *rest)
    expected = data[key]
    for _ in range(2):  # cold, then from the cache
        got = np.asarray(cached[key])
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
    assert cached.cache.nbytes <= budget


def test_results_identical_with_and_without_cache(arrays):
    arr, data = arrays["v3"]
    rng = np.random.default_rng(1)
    with_cache = CachedArray(arr, cache=ChunkCache(1 << 24))
    without = CachedArray(arr, cache=ChunkCache(0))
    for _ in range(30):
        lo = [int(rng.integers(0, n)) for n in data.shape]
        key = tuple(slice(a, int(rng.integers(a, n)) + 1) for a, n in zip(lo, data.shape))
        np.testing.assert_array_equal(np.asarray(with_cache[key]), np.asarray(without[key]))
    assert len(without.cache) == 0 and len(with_cache.cache) > 0


def test_stepping_through_a_chunk_reads_it_once(tmp_path):
    arr, store, data = _store(tmp_path, (32, 64, 64), (16, 16, 16))
    cached = CachedArray(arr, cache=ChunkCache(1 << 26))
    store.reset()
    for z in range(16):  # 16 planes inside one 16-deep chunk layer
        np.testing.assert_array_equal(np.asarray(cached[z]), data[z])
    assert store.chunk_reads() == 16  # the 4 x 4 chunks under the plane, once each
    assert cached.fetched == 16
    stats = cached.cache.stats()
    assert (stats.misses, stats.hits) == (16, 15 * 16)


def test_two_threads_wanting_a_chunk_read_it_once(tmp_path):
    arr, store, data = _store(tmp_path, (16, 32, 32), (16, 16, 16))
    cached = CachedArray(arr, cache=ChunkCache(1 << 26))
    gate = threading.Event()
    store.set_gate(gate)
    store.reset()
    results = {}

    def read(i: int) -> None:
        results[i] = np.asarray(cached[3])

    threads = [threading.Thread(target=read, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    threading.Timer(0.2, gate.set).start()
    for t in threads:
        t.join()
    assert store.chunk_reads() == 4
    for r in results.values():
        np.testing.assert_array_equal(r, data[3])


def test_pickles_and_reads_the_same(arrays):
    counted, data = arrays["v2"]
    arr = zarr.open_array(str(counted.store._store.root), mode="r")  # a plain local store
    cached = CachedArray(arr, source="v2")
    clone = pickle.loads(pickle.dumps(cached))
    assert clone.token != cached.token and clone.source == "v2"
    np.testing.assert_array_equal(np.asarray(clone[1, 2:9, 3]), data[1, 2:9, 3])


def test_computation_reads_beneath_the_cache(arrays):
    arr, data = arrays["v3"]
    cache = ChunkCache(1 << 26)
    cached = CachedArray(arr, cache=cache)
    view = select_index(cached, 0, 1)  # the lazy view a channel layer holds
    assert cached.chunks == tuple(arr.chunks)
    d = as_dask(view)
    np.testing.assert_array_equal(d.compute(), data[1])
    assert as_dask(cached).chunks[0][0] == arr.chunks[0]
    assert len(cache) == 0 and cache.stats().misses == 0


def test_a_dropped_array_leaves_the_cache(arrays):
    arr, _ = arrays["v3"]
    cache = ChunkCache(1 << 26)
    cached = CachedArray(arr, cache=cache)
    np.asarray(cached[0, :4])
    assert len(cache) > 0
    del cached
    gc.collect()
    assert len(cache) == 0


def test_failing_store_raises_or_warns(tmp_path):
    arr, store, _ = _store(tmp_path, (16, 16), (8, 8))
    store.set_fail(True)
    with pytest.raises(OSError, match="simulated"):
        np.asarray(CachedArray(arr, cache=ChunkCache(1 << 20))[2:9, 3:9])
    viewer_side = CachedArray(arr, cache=ChunkCache(1 << 20), on_error="warn", source="src")
    with pytest.warns(ChunkReadWarning, match="src"):
        out = np.asarray(viewer_side[2:9, 3:9])
    assert not out.any() and len(viewer_side.cache) == 0  # zeros, not cached
    store.set_fail(False)
    np.testing.assert_array_equal(np.asarray(viewer_side[2:9, 3:9]), arr[2:9, 3:9])


# -- the random-view stress: bounded bytes and memory ------------------------------------------
def test_budget_holds_under_random_views(tmp_path):
    psutil = pytest.importorskip("psutil")
    shape = (128, 1024, 1024)  # 256 MiB of uint16 once decoded; only metadata on disk
    path = tmp_path / "big.zarr"
    zarr.create_array(str(path), shape=shape, chunks=(32, 64, 64), dtype="uint16", fill_value=7)
    budget = 24 * MiB
    cache = ChunkCache(budget)
    cached = CachedArray(zarr.open_array(str(path), mode="r"), cache=cache)
    proc = psutil.Process()
    gc.collect()
    rss0 = proc.memory_info().rss
    peak_cache = 0
    rng = np.random.default_rng(0)
    for _ in range(120):
        z = int(rng.integers(0, shape[0]))
        y0, x0 = (int(v) for v in rng.integers(0, 768, 2))
        plane = np.asarray(cached[z, y0 : y0 + 256, x0 : x0 + 256])
        assert plane.shape == (256, 256) and plane[0, 0] == 7
        peak_cache = max(peak_cache, cache.nbytes)
        assert cache.nbytes <= budget
    gc.collect()
    grown = proc.memory_info().rss - rss0
    # 120 views touched up to ~20 chunks of 256 KiB each (far more than the budget);
    # what stays is the budget plus the allocator's slack
    assert peak_cache > budget // 2
    assert grown < budget + 48 * MiB, f"RSS grew by {grown / MiB:.0f} MiB"


# -- reading ahead ------------------------------------------------------------------------------
@pytest.fixture
def pyramid_store(tmp_path):
    """Two levels of a (c, z, y, x) image in 8^3 chunks, read through counting stores."""
    data = (np.arange(2 * 32 * 32 * 32) % 60000).astype("uint16").reshape(2, 32, 32, 32)
    arrays, stores = [], []
    for i, level in enumerate([data, data[:, ::2, ::2, ::2]]):
        arr, store, _ = _store(tmp_path, level.shape, (1, 8, 8, 8), data=level, name=f"l{i}")
        arrays.append(arr)
        stores.append(store)
    return arrays, stores, data


def _pyramid(arrays, cache, prefetcher):
    levels = [CachedArray(a, cache=cache) for a in arrays]
    Pyramid(levels, channel_axis=0, prefetch=prefetcher)
    return levels


def test_prefetch_reads_the_next_chunk_plane_and_the_coarser_level(pyramid_store):
    arrays, stores, data = pyramid_store
    cache = ChunkCache(1 << 26)
    prefetch = Prefetcher(delay=0.0)
    levels = _pyramid(arrays, cache, prefetch)
    np.asarray(levels[0][0, 6, 0:16, 0:16])
    np.asarray(levels[0][0, 7, 0:16, 0:16])  # stepping up, near the top of chunk layer 0
    assert prefetch.wait_idle()
    # ahead: z-chunk 1 under the same 2 x 2 chunks; coarser: level 1 plane 3
    assert all(cache.contains(levels[0].token, (0, 1, y, x)) for y in (0, 1) for x in (0, 1))
    assert cache.contains(levels[1].token, (0, 0, 0, 0))
    assert not any(cache.contains(levels[0].token, (1, 1, y, x)) for y in (0, 1) for x in (0, 1))
    for s in stores:
        s.reset()
    np.testing.assert_array_equal(np.asarray(levels[0][0, 8, 0:16, 0:16]), data[0, 8, :16, :16])
    assert stores[0].chunk_reads() == 0  # served from what was read ahead


def test_prefetch_is_cancelled_when_the_view_moves(pyramid_store):
    arrays, stores, _ = pyramid_store
    cache = ChunkCache(1 << 26)
    prefetch = Prefetcher(delay=0.0)
    prefetch.pause()
    levels = _pyramid(arrays, cache, prefetch)
    np.asarray(levels[0][0, 6, 0:16, 0:16])
    np.asarray(levels[0][0, 7, 0:16, 0:16])  # schedules z-chunk 1 at y, x < 16
    assert prefetch.pending() > 0
    np.asarray(levels[0][0, 25, 16:32, 16:32])  # elsewhere: the first jobs are stale
    np.asarray(levels[0][0, 24, 16:32, 16:32])  # and steps down there
    stores[0].reset()
    prefetch.pause(False)
    assert prefetch.wait_idle()
    read = stores[0].chunk_keys()
    assert read == {f"c/0/2/{y}/{x}" for y in (2, 3) for x in (2, 3)}  # the new view's
    assert prefetch.jobs_dropped >= 1


def test_prefetch_stays_within_the_budget(pyramid_store):
    arrays, _, _ = pyramid_store
    plane_chunks = 4 * (8 * 8 * 8 * 2 + ENTRY_OVERHEAD)
    cache = ChunkCache(plane_chunks)  # room for the view and nothing more
    prefetch = Prefetcher(delay=0.0)
    levels = _pyramid(arrays, cache, prefetch)
    np.asarray(levels[0][0, 6, 0:16, 0:16])
    np.asarray(levels[0][0, 7, 0:16, 0:16])
    assert prefetch.wait_idle()
    assert cache.nbytes <= cache.budget
    assert all(cache.contains(levels[0].token, (0, 0, y, x)) for y in (0, 1) for x in (0, 1))
    assert cache.stats().refused >= 1


def test_channels_are_separate_streams(pyramid_store):
    arrays, _, _ = pyramid_store
    cache = ChunkCache(1 << 26)
    prefetch = Prefetcher(delay=0.0)
    prefetch.pause()
    levels = _pyramid(arrays, cache, prefetch)
    for z in (6, 7):
        np.asarray(levels[0][0, z, 0:16, 0:16])
        np.asarray(levels[0][1, z, 0:16, 0:16])  # the other channel does not cancel the first
    prefetch.pause(False)
    assert prefetch.wait_idle()
    assert cache.contains(levels[0].token, (0, 1, 0, 0))
    assert cache.contains(levels[0].token, (1, 1, 0, 0))


def test_slider_direction_follows_the_user(pyramid_store):
    arrays, _, _ = pyramid_store
    levels = _pyramid(arrays, ChunkCache(1 << 26), Prefetcher())
    pyr = levels[0].pyramid
    assert pyr is not None
    box = lambda z: (slice(0, 1, 1), slice(z, z + 1, 1), slice(0, 16, 1), slice(0, 16, 1))  # noqa: E731
    first = pyr.plan(levels[0], box(8))  # a first view: only the coarser level
    assert first is not None and [a for a, _ in first] == [levels[1]]
    assert pyr.plan(levels[0], box(8)) is None  # the same view again: keep what is pending
    pyr.plan(levels[0], box(10))
    jobs = pyr.plan(levels[0], box(9))  # moving down, 1 plane above chunk layer 0
    assert jobs is not None
    first_array, first_chunks = jobs[0]
    assert first_array is levels[0] and {c[1] for c in first_chunks} == {0}
    assert [a for a, _ in jobs] == [levels[0], levels[1]]  # nothing behind: 10 is in layer 1
    volume = (slice(0, 1, 1), slice(0, 32, 1), slice(0, 32, 1), slice(0, 32, 1))
    assert pyr.plan(levels[0], volume) == []


def test_a_shard_index_is_read_once_per_read(tmp_path):
    data = (np.arange(32 * 64 * 64) % 60000).astype("uint16").reshape(32, 64, 64)
    arr, store, _ = _store(tmp_path, data.shape, (8, 16, 16), shards=(16, 32, 32), data=data)
    cached = CachedArray(arr, cache=ChunkCache(1 << 26))
    store.reset()
    np.testing.assert_array_equal(np.asarray(cached[3]), data[3])
    # 4 shards under the plane, 4 inner chunks of each: the index once, then the chunks
    assert len(store.gets) == 4 and all(n <= 5 for n in store.gets.values()), store.gets
    assert cached.fetched == 16
