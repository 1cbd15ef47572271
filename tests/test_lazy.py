"""The lazy-array base: views that compose, read only what is asked, keep aligned chunks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_zarrnii.core.lazy import (
    ArrayAdapter,
    LazyArray,
    LazyView,
    as_dask,
    is_dask,
    lazy_view,
    normalize_key,
    read_region,
    select_index,
    select_indices,
    storage_chunks,
)


def _key(shape, data):
    key = []
    for n in shape:
        if data.draw(st.booleans()):
            key.append(data.draw(st.integers(-n, n - 1)))
        else:
            bound = st.one_of(st.none(), st.integers(-n - 2, n + 2))
            step = st.one_of(st.none(), st.sampled_from([1, 2, 3, -1, -2]))
            key.append(slice(data.draw(bound), data.draw(bound), data.draw(step)))
    if data.draw(st.booleans()) and key:
        cut = data.draw(st.integers(0, len(key)))
        key = [*key[:cut], Ellipsis]
    return tuple(key)


class Ramp(LazyArray):
    """A computed array that records the boxes it is asked for."""

    def __init__(self, shape, dtype="int64"):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.boxes = []

    @property
    def chunks(self):
        return (2, 4, 4, 4)[-self.ndim :]

    def reference(self):
        return np.arange(np.prod(self.shape), dtype=self.dtype).reshape(self.shape)

    def _read(self, box):
        self.boxes.append(box)
        for s, n in zip(box, self.shape):  # the contract of _read
            assert 0 <= s.start <= s.stop <= n and s.step >= 1
        return self.reference()[box]


@settings(max_examples=300, deadline=None)
@given(st.data(), st.integers(0, 4), st.booleans())
def test_views_match_numpy(data, channel, lazy):
    base = Ramp((5, 6, 7, 8))
    view = base.view((channel,))
    if lazy:
        view.LAZY_ABOVE = 0  # every composed result stays a view
    reference = base.reference()[channel]
    assert view.shape == reference.shape and view.dtype == reference.dtype
    key = _key(reference.shape, data)
    got = view[key]
    np.testing.assert_array_equal(np.asarray(got), reference[key])
    if isinstance(got, LazyView) and got.ndim:
        assert got.base is base  # views never nest
        again = _key(got.shape, data)
        np.testing.assert_array_equal(np.asarray(got[again]), reference[key][again])


@pytest.fixture(scope="module")
def zarr_ramp(tmp_path_factory):
    reference = np.arange(4 * 9 * 10, dtype="uint16").reshape(4, 9, 10)
    z = zarr.create_array(
        str(tmp_path_factory.mktemp("z") / "a.zarr"),
        shape=reference.shape,
        chunks=(2, 4, 4),
        dtype=reference.dtype,
    )
    z[...] = reference
    return reference, z


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_adapter_over_numpy_and_zarr_matches_numpy(zarr_ramp, data):
    reference, z = zarr_ramp
    key = _key(reference.shape, data)
    for base in (reference, z):
        adapter = ArrayAdapter(base)
        adapter.LAZY_ABOVE = 0
        np.testing.assert_array_equal(np.asarray(adapter[key]), reference[key])


def test_large_results_stay_lazy_and_read_only_what_is_asked():
    base = Ramp((64, 256, 256), "uint16")
    tile = base[:, 0:200, 0:200]  # napari's first step: the tile over every plane
    assert isinstance(tile, LazyView) and not base.boxes
    plane = np.asarray(tile[10])
    assert plane.shape == (200, 200)
    assert base.boxes == [(slice(10, 11, 1), slice(0, 200, 1), slice(0, 200, 1))]


def test_negative_steps_are_read_forwards_and_flipped():
    base = Ramp((4, 6))
    got = base[::-1, 5:0:-2]
    np.testing.assert_array_equal(got, base.reference()[::-1, 5:0:-2])
    assert base.boxes == [(slice(0, 4, 1), slice(1, 6, 2))]


def test_fancy_indices_read_the_basic_part_then_index():
    base = Ramp((3, 5, 7))
    np.testing.assert_array_equal(base[1, [0, 2, 4], 1:3], base.reference()[1, [0, 2, 4], 1:3])
    np.testing.assert_array_equal(base[np.array([2, 0])], base.reference()[np.array([2, 0])])


@pytest.mark.parametrize(
    "key", [(5,), (-6,), (0, 0, 0, 0), (Ellipsis, Ellipsis), ("a",), (None,), (1.5,)]
)
def test_bad_keys_raise_index_error(key):
    with pytest.raises(IndexError):
        normalize_key(key, (5, 4, 3))


def test_view_chunks_are_kept_only_where_aligned():
    base = Ramp((4, 8, 8, 8))  # chunks (2, 4, 4, 4)
    assert base.view((1,)).chunks == (4, 4, 4)
    assert base.view((slice(None), slice(4, 8))).chunks == (2, 4, 4, 4)
    assert base.view((slice(None), slice(1, 8))).chunks is None  # off the chunk grid
    assert base.view((slice(None), slice(0, 8, 2))).chunks is None  # strided


def test_storage_chunks_and_as_dask(tmp_path):
    z = zarr.create_array(
        str(tmp_path / "s.zarr"),
        shape=(8, 16, 16),
        chunks=(2, 4, 4),
        shards=(4, 8, 8),
        dtype="uint8",
    )
    z[...] = 7
    assert storage_chunks(z) == (4, 8, 8)  # shards are the unit worth reading
    assert storage_chunks(lazy_view(z, (1,))) == (8, 8)
    assert storage_chunks(np.zeros(3)) is None
    d = as_dask(lazy_view(z, (slice(None), slice(0, 8))))
    assert is_dask(d) and d.chunksize == (4, 8, 8)
    assert int(d.sum().compute()) == 7 * 8 * 8 * 16
    assert not is_dask(z)


def test_select_index_and_indices_are_lazy_and_right():
    base = Ramp((4, 3, 5))
    ref = base.reference()
    one = select_index(base, 1, -1)
    assert isinstance(one, LazyView) and not base.boxes
    np.testing.assert_array_equal(np.asarray(one), ref[:, 2])
    even = select_indices(base, 0, [0, 2])
    assert isinstance(even, LazyView)
    np.testing.assert_array_equal(np.asarray(even), ref[[0, 2]])
    scattered = select_indices(base, 0, [3, 0])
    assert is_dask(scattered)
    np.testing.assert_array_equal(scattered.compute(), ref[[3, 0]])
    with pytest.raises(IndexError):
        select_index(base, 0, 4)
    with pytest.raises(IndexError):
        select_indices(base, 0, [0, 9])


def test_read_region_computes_dask_and_reads_lazy():
    base = Ramp((4, 6))
    np.testing.assert_array_equal(
        read_region(as_dask(np.ones((4, 6))), (slice(0, 2), slice(0, 3)), "uint8"),
        np.ones((2, 3), "uint8"),
    )
    np.testing.assert_array_equal(
        read_region(base, (slice(1, 3), slice(None))), base.reference()[1:3]
    )


def test_a_wrong_read_names_the_array():
    class Broken(Ramp):
        def _read(self, box):
            return np.zeros((1,))

    with pytest.raises(ValueError, match="Broken"):
        np.asarray(Broken((2, 2)))


def test_views_pickle(tmp_path):
    z = zarr.create_array(str(tmp_path / "p.zarr"), shape=(4, 4), chunks=(2, 2), dtype="i4")
    z[...] = np.arange(16).reshape(4, 4)
    view = pickle.loads(pickle.dumps(lazy_view(z, (slice(1, 3),))))
    np.testing.assert_array_equal(np.asarray(view), np.arange(16).reshape(4, 4)[1:3])


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_whole_chunks_of_dask_are_read_from_their_own_tasks(data):
    """dask_blocks: chunk-aligned regions run only their chunks' tasks, and match slicing."""
    import dask.array as da

    from napari_zarrnii.core.lazy import DaskBlocks, dask_blocks

    values = np.arange(37 * 50 * 23, dtype=np.uint16).reshape(37, 50, 23)
    array = da.from_array(values, chunks=((10, 10, 17), (16, 16, 16, 2), (23,))) + 1
    expected = values + 1
    bounds = [(0, 10, 20, 37), (0, 16, 32, 48, 50), (0, 23)]
    region = []
    for edges in bounds:
        lo = data.draw(st.integers(0, len(edges) - 2))
        hi = data.draw(st.integers(lo + 1, len(edges) - 1))
        region.append(slice(edges[lo], edges[hi]))
    region = tuple(region)
    blocks = dask_blocks(array, region)
    assert isinstance(blocks, DaskBlocks)
    blocks = pickle.loads(pickle.dumps(blocks))  # what a cluster task carries
    np.testing.assert_array_equal(blocks.compute(), expected[region])
    np.testing.assert_array_equal(read_region(array, region), expected[region])
    sub = tuple(
        slice(data.draw(st.integers(0, n - 1)), None) for n in blocks.shape
    )  # a part of it, as a task reading pieces does
    np.testing.assert_array_equal(read_region(blocks, sub), expected[region][sub])
    # only the region's chunks (and what they depend on) travel with it
    chunk_keys = {k for k in blocks.graph if isinstance(k, tuple) and k[0] == array.name}
    assert chunk_keys == set(blocks.keys)


def test_unaligned_dask_regions_are_sliced_as_before():
    import dask.array as da

    from napari_zarrnii.core.lazy import dask_blocks

    values = np.arange(40 * 40, dtype=np.int32).reshape(40, 40)
    array = da.from_array(values, chunks=16)
    for region in [(slice(1, 16), slice(0, 16)), (slice(0, 40, 2), slice(0, 16))]:
        assert dask_blocks(array, region) is None
        np.testing.assert_array_equal(read_region(array, region), values[region])
    assert dask_blocks(values, (slice(0, 16), slice(0, 16))) is None  # not dask
