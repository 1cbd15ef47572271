"""Boxes across levels, crops, masks and Otsu: properties, not examples."""

from __future__ import annotations

import math

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from napari_zarrnii import ZarrNii
from napari_zarrnii.core.mask import (
    find_tissue_bounds,
    nearest_index_map,
    resample_nearest,
    threshold_otsu,
)
from napari_zarrnii.core.model import Level
from napari_zarrnii.core.omezarr import read_ome_zarr
from napari_zarrnii.core.roi import (
    BoxError,
    crop_level,
    index_box,
    map_box_between_levels,
    physical_box,
    scale_box_power_of_two,
)

from .conftest import ramp, write_ngff_store
from .helpers import CountingStore, chunks_overlapping

skfilters = pytest.importorskip("skimage.filters")

EPS = 1e-6


def grid(shape, scale, translation) -> Level:
    return Level(
        "x",
        np.broadcast_to(np.zeros((), np.uint8), tuple(shape)),
        tuple(scale),
        tuple(translation),
    )


@st.composite
def level_pairs(draw, aligned: bool | None = None):
    """A fine level and a coarser one with per-axis integer factors, 1-3 axes."""
    ndim = draw(st.integers(1, 3))
    shape0 = draw(st.lists(st.integers(1, 200), min_size=ndim, max_size=ndim))
    s0 = draw(st.lists(st.floats(0.1, 5.0), min_size=ndim, max_size=ndim))
    t0 = draw(st.lists(st.floats(-100, 100), min_size=ndim, max_size=ndim))
    factors = draw(st.lists(st.integers(1, 8), min_size=ndim, max_size=ndim))
    is_aligned = draw(st.booleans()) if aligned is None else aligned
    if is_aligned:  # mean downsampling: coarse voxel centred on its block
        t1 = [t + (f - 1) / 2 * s for t, f, s in zip(t0, factors, s0)]
    else:
        t1 = [t + draw(st.floats(-2, 2)) * s for t, s in zip(t0, s0)]
    shape1 = [max(1, math.ceil(n / f)) for n, f in zip(shape0, factors)]
    fine = grid(shape0, s0, t0)
    coarse = grid(shape1, [s * f for s, f in zip(s0, factors)], t1)
    return fine, coarse, factors, is_aligned


@st.composite
def boxes(draw, level: Level):
    lo, hi = [], []
    for n in level.shape:
        a = draw(st.integers(0, n - 1))
        b = draw(st.integers(a + 1, n))
        lo.append(a)
        hi.append(b)
    return lo, hi


# ---------------------------------------------------------------------------------
# box mapping
# ---------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(data=st.data(), pair=level_pairs())
def test_mapped_box_covers_physical_extent_within_one_voxel(data, pair):
    fine, coarse, _, _ = pair
    src, dst = (fine, coarse) if data.draw(st.booleans()) else (coarse, fine)
    lo, hi = data.draw(boxes(src))
    pmin, pmax = physical_box(src, lo, hi)
    mlo, mhi = map_box_between_levels(lo, hi, src, dst)
    qmin, qmax = physical_box(dst, mlo, mhi)
    emin, emax = physical_box(dst, [0] * len(dst.shape), dst.shape)  # target extent
    for i, s in enumerate(dst.scale):
        assert 0 <= mlo[i] <= mhi[i] <= dst.shape[i]
        want_lo, want_hi = max(pmin[i], emin[i]), min(pmax[i], emax[i])
        if want_lo < want_hi:  # the box overlaps the target: it is covered
            assert qmin[i] <= want_lo + EPS * s
            assert qmax[i] >= want_hi - EPS * s
        # never more than one target voxel beyond the box on either side
        assert qmin[i] > pmin[i] - s - EPS * s
        assert qmax[i] < pmax[i] + s + EPS * s


@settings(max_examples=200, deadline=None)
@given(data=st.data(), pair=level_pairs(aligned=True))
def test_aligned_pyramid_round_trip_is_exact(data, pair):
    fine, coarse, factors, _ = pair
    lo, hi = data.draw(boxes(coarse))
    flo, fhi = map_box_between_levels(lo, hi, coarse, fine)
    # the coarse box is exactly factor * box (clipped) at the fine level ...
    assert list(flo) == [min(a * f, n) for a, f, n in zip(lo, factors, fine.shape)]
    assert list(fhi) == [min(b * f, n) for b, f, n in zip(hi, factors, fine.shape)]
    # ... and comes back unchanged
    assert map_box_between_levels(flo, fhi, fine, coarse) == (tuple(lo), tuple(hi))


def test_power_of_two_rule():
    assert scale_box_power_of_two((1, 2, 3), (4, 5, 6), 3, 0) == ((8, 16, 24), (32, 40, 48))
    assert scale_box_power_of_two((8, 9), (17, 31), 0, 3) == ((1, 1), (3, 4))


def test_index_box_is_inverse_of_physical_box():
    lvl = grid((10, 20), (2.0, 0.5), (1.0, -3.0))
    lo, hi = (2, 5), (7, 18)
    assert index_box(lvl, *physical_box(lvl, lo, hi)) == (lo, hi)
    assert index_box(lvl, (-1e9, -1e9), (1e9, 1e9)) == ((0, 0), (10, 20))


# ---------------------------------------------------------------------------------
# crops
# ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def aligned_store(tmp_path_factory):
    """A mean-downsampled 2x pyramid written by our writer (aligned voxel edges)."""
    path = tmp_path_factory.mktemp("roi") / "aligned.ome.zarr"
    vol = ramp((40, 48, 56))
    ZarrNii.from_array(vol, voxel_size=(2.0, 1.0, 0.5), origin=(3.0, -1.0, 7.0)).to_ome_zarr(
        path, max_layer=3, chunks=(8, 8, 8), downsample_factors=(2, 2, 2)
    )
    return path, vol


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_crop_then_upsample_lands_on_the_same_voxels(aligned_store, data):
    path, _ = aligned_store
    img = ZarrNii.from_ome_zarr(path)
    k = data.draw(st.integers(1, img.num_levels - 1))
    coarse = img.get_level(k)
    lo, hi = data.draw(boxes(coarse.image.levels[0]))
    crop = coarse.crop(lo, hi)
    ones = crop.create_tissue_mask(threshold=-1)  # every voxel is "tissue"
    up = ones.upsample_to_level(0)
    assert up.shape == img.shape and up.origin == img.origin
    got = up.darr.compute()
    want_box = coarse.map_bounds_to_level(list(zip(lo, hi)), 0)
    want = np.zeros(img.shape, np.uint8)
    want[tuple(slice(a, b) for a, b in want_box)] = 1
    np.testing.assert_array_equal(got, want)
    # and the level-0 crop of that box sits exactly over the coarse crop
    fine = img.crop_with_bounding_box(want_box)
    np.testing.assert_allclose(
        np.asarray(fine.affine) @ [-0.5, -0.5, -0.5, 1],
        np.asarray(crop.affine) @ [-0.5, -0.5, -0.5, 1],
    )


def _counting_image(path):
    """The image of ``path`` with its level-0 array read through a CountingStore."""
    image = read_ome_zarr(path)
    store = CountingStore(zarr.storage.LocalStore(str(path), read_only=True))
    arr = zarr.open_array(store, path=image.levels[0].path, mode="r")
    lvl0 = image.levels[0]
    image = image.replace(
        levels=[Level(lvl0.path, arr, lvl0.scale, lvl0.translation), *image.levels[1:]]
    )
    return image, store


@pytest.mark.parametrize("layout", ["v2-nested", "v3", "v3-sharded"])
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_crop_reads_only_overlapping_chunks(layout, tmp_path_factory, data):
    path = tmp_path_factory.getbasetemp() / f"count-{layout}.ome.zarr"
    vol = ramp((32, 40, 48))
    if not path.exists():
        if layout == "v2-nested":
            write_ngff_store(
                path,
                version="0.4",
                data=vol,
                axes=(("z", "space", None), ("y", "space", None), ("x", "space", None)),
                translation=(1.0, 2.0, 3.0),
            )
        else:
            ZarrNii.from_array(vol, origin=(1.0, 2.0, 3.0)).to_ome_zarr(
                path,
                max_layer=1,
                chunks=(8, 8, 8),
                shards=(16, 16, 16) if layout == "v3-sharded" else None,
            )
    image, store = _counting_image(path)
    img = ZarrNii(image)
    lo, hi = data.draw(boxes(image.levels[0]))
    store.reset()
    crop = img.crop(lo, hi)
    assert store.reads == 0  # nothing read to build the crop
    with dask.config.set(scheduler="synchronous"):
        got = crop.darr.compute()
    np.testing.assert_array_equal(got, vol[tuple(slice(a, b) for a, b in zip(lo, hi))])
    arr = image.levels[0].data
    unit = arr.shards or arr.chunks
    key = tuple(slice(a, b) for a, b in zip(lo, hi))
    expected = chunks_overlapping(arr.shape, unit, key)
    assert len(set(store.keys)) == expected  # only the overlapping chunks/shards
    if arr.shards is None:
        assert store.reads == expected  # each read once
    # crop voxel 0 has the world position of source voxel box_min
    np.testing.assert_allclose(crop.affine @ [0, 0, 0, 1], img.affine @ [*lo, 1])


def test_crop_level_keeps_non_spatial_axes():
    data = da.from_array(ramp((2, 3, 10, 12)), chunks=(1, 1, 5, 5))
    lvl = Level("0", data, (1.0, 1.0, 2.0, 3.0), (0.0, 0.0, 10.0, 20.0))
    out = crop_level(lvl, (2, 4), (7, 9))
    assert out.shape == (2, 3, 5, 5)
    assert out.translation == (0.0, 0.0, 14.0, 32.0)
    with pytest.raises(BoxError):
        crop_level(lvl, (7, 4), (2, 9))


# ---------------------------------------------------------------------------------
# masks and resampling
# ---------------------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(
    n_src=st.integers(1, 30),
    s_src=st.floats(0.5, 4.0),
    t_src=st.floats(-5, 5),
    n_dst=st.integers(1, 60),
    s_dst=st.floats(0.25, 4.0),
    t_dst=st.floats(-5, 5),
    chunk=st.integers(1, 9),
    out_chunk=st.integers(1, 17),
)
def test_resample_nearest_matches_numpy(
    n_src, s_src, t_src, n_dst, s_dst, t_dst, chunk, out_chunk
):
    src = np.arange(1, n_src + 1, dtype=np.int32)
    idx = nearest_index_map(n_src, s_src, t_src, n_dst, s_dst, t_dst)
    want = np.where(idx >= 0, src[np.clip(idx, 0, None)], 0)
    got = resample_nearest(da.from_array(src, chunks=chunk), [idx], [out_chunk]).compute()
    np.testing.assert_array_equal(got, want)
    # every target centre inside the source's voxel edges maps to the voxel containing it
    centres = t_dst + np.arange(n_dst) * s_dst
    inside = (centres >= t_src - s_src / 2 + 1e-9) & (
        centres < t_src + (n_src - 0.5) * s_src - 1e-9
    )
    assert np.all(idx[inside] >= 0)
    ok = idx >= 0
    assert np.all(np.abs(centres[ok] - (t_src + idx[ok] * s_src)) <= s_src / 2 + 1e-9)


def test_resample_nearest_3d_graph_is_per_output_chunk():
    src = da.from_array(ramp((4, 5, 6)), chunks=2)
    maps = [np.repeat(np.arange(4), 2), None, np.repeat(np.arange(6), 3)]
    out = resample_nearest(src, maps, (3, 5, 4))
    np.testing.assert_array_equal(out.compute(), np.repeat(np.repeat(ramp((4, 5, 6)), 2, 0), 3, 2))
    assert len(out.dask.layers[out.name]) == math.prod(out.numblocks)


_SHAPES = st.tuples(st.integers(1, 40), st.integers(1, 40))
int_images = st.one_of(
    *(
        arrays(
            dtype=dt,
            shape=_SHAPES,
            elements=st.integers(max(np.iinfo(dt).min, -300), min(np.iinfo(dt).max, 3000)),
        )
        for dt in (np.uint8, np.uint16, np.int16, np.int32)
    )
)
float_images = arrays(
    dtype=st.sampled_from([np.float32, np.float64]),
    shape=_SHAPES,
    elements=st.floats(-1000, 1000, allow_nan=False, allow_subnormal=False, width=32),
)


@settings(max_examples=200, deadline=None)
@given(image=st.one_of(int_images, float_images))
def test_otsu_matches_skimage(image):
    want = float(skfilters.threshold_otsu(image))
    assert threshold_otsu(image) == want
    chunked = da.from_array(image, chunks=(7, 9))
    assert threshold_otsu(chunked) == pytest.approx(want, rel=1e-6, abs=1e-6)


def test_otsu_of_a_bimodal_volume():
    rng = np.random.default_rng(0)
    vol = np.where(
        rng.random((30, 30, 30)) < 0.3,
        rng.normal(1000, 50, (30, 30, 30)),
        rng.normal(100, 20, (30, 30, 30)),
    ).astype(np.uint16)
    t = threshold_otsu(da.from_array(vol, chunks=10))
    # any threshold in the empty gap between the modes separates them; Otsu (like
    # skimage) takes the first one
    assert vol[vol <= t].max() < 500 < vol[vol > t].min()


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_find_tissue_bounds_on_a_blob(data):
    shape = tuple(data.draw(st.lists(st.integers(4, 24), min_size=3, max_size=3)))
    lo = [data.draw(st.integers(0, n - 2)) for n in shape]
    hi = [data.draw(st.integers(a + 1, n)) for a, n in zip(lo, shape)]
    rng = np.random.default_rng(1)
    vol = rng.integers(0, 50, shape).astype(np.uint16)
    vol[tuple(slice(a, b) for a, b in zip(lo, hi))] = 1000 + rng.integers(0, 50)
    got = find_tissue_bounds(da.from_array(vol, chunks=5), threshold=500)
    assert got == list(zip(lo, hi))
    # with a channel axis: tissue in any channel counts
    two = np.stack([np.zeros_like(vol), vol])
    assert find_tissue_bounds(two, threshold=500, spatial_axes=(1, 2, 3)) == list(zip(lo, hi))
    img = ZarrNii.from_array(two, axes="czyx")
    assert img.find_tissue_bounds(threshold=500) == list(zip(lo, hi))
    # 40 % of the data range (0 .. ~1050) is between background and blob as well
    assert img.find_tissue_bounds(threshold=0.4) == list(zip(lo, hi))


def test_mask_pipeline_on_a_strided_pyramid(ngff_store):
    """A mask made at the coarsest level lands on the right level-0 voxels."""
    vol = np.zeros((16, 32, 32), np.uint16)
    vol[4:12, 8:24, 16:32] = 900
    path, levels = ngff_store(
        version="0.5",
        data=vol,
        n_levels=3,
        axes=(("z", "space", None), ("y", "space", None), ("x", "space", None)),
        translation=(5.0, 5.0, 5.0),
    )
    img = ZarrNii.from_ome_zarr(path)
    rough = img.get_level(-1).create_tissue_mask()
    assert rough.darr.compute().sum() == np.count_nonzero(levels[2])
    up = rough.upsample_to_level(0).darr.compute()
    # strided level 2 voxel j is centred on level-0 voxel 4j and covers 4j-2 .. 4j+1
    cover = [(np.arange(n) + 2) // 4 for n in vol.shape]
    valid = [c < n for c, n in zip(cover, levels[2].shape)]
    clipped = [np.minimum(c, n - 1) for c, n in zip(cover, levels[2].shape)]
    want = levels[2][np.ix_(*clipped)] * (
        valid[0][:, None, None] & valid[1][None, :, None] & valid[2][None, None, :]
    )
    np.testing.assert_array_equal(up, (want > 0).astype(np.uint8))
    refined = img.get_level(1).refine_mask(rough)  # other grid: resampled inside
    assert refined.shape == levels[1].shape
    masked = img.apply_refined_mask(refined)
    out = masked.darr.compute()
    assert out.dtype == vol.dtype and set(np.unique(out)) <= {0, 900}


def test_mask_with_channels_broadcasts(ngff_store):
    data = np.zeros((2, 8, 16, 16), np.uint16)
    data[1, 2:6, 4:12, 4:12] = 1000
    data[0] = 7
    path, _ = ngff_store(version="0.4", data=data, n_levels=2)
    img = ZarrNii.from_ome_zarr(path)
    mask = img.create_tissue_mask(threshold=500)
    assert mask.axes == ("z", "y", "x")
    out = img.apply_refined_mask(mask).darr.compute()
    assert out.shape == data.shape
    assert out[0].sum() == 7 * 4 * 8 * 8 and out[1].sum() == data[1].sum()
    frac = img.create_tissue_mask(threshold=0.5)  # 50 % of the range 0-1000
    np.testing.assert_array_equal(frac.darr.compute(), mask.darr.compute())
