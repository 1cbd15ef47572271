"""Pyramid engine: kernels, plans, writing OME-Zarr 0.4/0.5 and reading it back everywhere."""

from __future__ import annotations

import json
import logging
import math
import threading
import tracemalloc
from pathlib import Path

import dask.array as da
import numcodecs
import numpy as np
import pytest
import zarr
import zarr.codecs
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_zarrnii import CancelledError, DestinationExistsError
from napari_zarrnii.core.model import Axis, ChannelInfo, Level, MultiscaleImage, Window
from napari_zarrnii.core.omezarr import read_ome_zarr
from napari_zarrnii.core.pyramid import (
    SCALING_METHODS,
    PyramidPlan,
    describe_compressor,
    downsample_block,
    plan_levels,
    plan_pyramid,
    resolve_compressor,
    resolve_storage_options,
    write_levels,
    write_pyramid,
)

from .ngff_schemas import validate_ngff

AXES = {
    "yx": (Axis("y", "space", "micrometer"), Axis("x", "space", "micrometer")),
    "zyx": tuple(Axis(n, "space", "micrometer") for n in "zyx"),
    "czyx": (Axis("c", "channel"), *(Axis(n, "space", "micrometer") for n in "zyx")),
    "tczyx": (
        Axis("t", "time", "second"),
        Axis("c", "channel"),
        *(Axis(n, "space", "micrometer") for n in "zyx"),
    ),
}


def make_image(data, axes="zyx", scale=None, translation=None, **kwargs) -> MultiscaleImage:
    ax = AXES[axes]
    scale = scale or (1.0,) * len(ax)
    translation = translation or (0.0,) * len(ax)
    return MultiscaleImage(axes=ax, levels=[Level("0", data, scale, translation)], **kwargs)


# -- references --------------------------------------------------------------------------


def block_views(arr: np.ndarray, factors):
    """Yield (output index, block) pairs by explicit loops: the slow, obvious reference."""
    out_shape = tuple(-(-n // f) for n, f in zip(arr.shape, factors))
    for idx in np.ndindex(out_shape):
        yield idx, arr[tuple(slice(i * f, (i + 1) * f) for i, f in zip(idx, factors))]


def reference(arr: np.ndarray, factors, method: str) -> np.ndarray:
    out_shape = tuple(-(-n // f) for n, f in zip(arr.shape, factors))
    out = np.empty(out_shape, arr.dtype)
    for idx, block in block_views(arr, factors):
        if method == "local_mean":
            mean = np.mean(block, dtype=np.float64)
            out[idx] = np.rint(mean) if arr.dtype.kind in "iub" else mean
        elif method == "mode":
            values, counts = np.unique(block, return_counts=True)
            out[idx] = values[np.argmax(counts)]  # first max = smallest value on ties
        elif method == "max":
            out[idx] = block.max()
        elif method == "min":
            out[idx] = block.min()
        elif method == "nearest":
            out[idx] = block.flat[0]
    return out


# -- downsample_block ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
@pytest.mark.parametrize(
    ("shape", "factors"),
    [((8, 8, 8), 2), ((7, 9, 5), 2), ((5, 11), (2, 3)), ((9, 6, 7), (3, 1, 2)), ((4, 4), 4)],
)
def test_local_mean_matches_block_mean(dtype, shape, factors):
    rng = np.random.default_rng(0)
    if np.dtype(dtype).kind == "f":
        arr = rng.normal(100, 30, shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, int(info.max) + 1, shape, dtype=dtype)
    fs = (factors,) * len(shape) if isinstance(factors, int) else factors
    got = downsample_block(arr, factors, "local_mean")
    want = reference(arr, fs, "local_mean")
    assert got.dtype == arr.dtype
    assert got.shape == tuple(-(-n // f) for n, f in zip(shape, fs))
    if arr.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-6)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.uint16, np.int8, np.int16, np.uint32, np.int32, np.uint64, np.int64]
)
def test_local_mean_never_overflows(dtype):
    info = np.iinfo(dtype)
    for value in (info.max, info.min):
        arr = np.full((6, 5, 7), value, dtype)
        got = downsample_block(arr, 2, "local_mean")
        assert (got == value).all(), (dtype, value)
    # the largest values that are not all equal: exact rounding, no wrap-around
    arr = np.full((2, 2), info.max, dtype)
    arr[0, 0] = info.max - 1
    assert downsample_block(arr, 2, "local_mean")[0, 0] == info.max  # 3.75 ulp -> max


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
@pytest.mark.parametrize("factors", [2, 3, (5, 2)])
def test_local_mean_of_64_bit_integers_is_exact(dtype, factors):
    info = np.iinfo(dtype)
    for value in (info.min, info.max, info.max - 1):
        arr = np.full((7, 6), value, dtype)
        assert (downsample_block(arr, factors, "local_mean") == value).all()
    small = np.random.default_rng(4).integers(-1000 if info.min else 0, 1000, (9, 10))
    np.testing.assert_array_equal(
        downsample_block(small.astype(dtype), factors, "local_mean"),
        downsample_block(small.astype(np.int32), factors, "local_mean").astype(dtype),
    )
    base = 2**62
    pairs = np.array([base + 1, base + 2, base + 2, base + 3], dtype)  # .5 ties
    np.testing.assert_array_equal(
        downsample_block(pairs, 2, "local_mean") - dtype(base), np.array([2, 2], dtype)
    )
    if dtype == np.int64:
        neg = np.array([-3, -2, -4, -3], dtype)
        np.testing.assert_array_equal(downsample_block(neg, 2, "local_mean"), [-2, -4])


def test_local_mean_rounds_half_to_even():
    arr = np.array([[1, 2, 2, 3, 4, 5, 0, 1]], np.uint8)
    np.testing.assert_array_equal(downsample_block(arr, (1, 2), "local_mean"), [[2, 2, 4, 0]])
    neg = np.array([[-1, -2, -3, -4]], np.int8)
    np.testing.assert_array_equal(downsample_block(neg, (1, 2), "local_mean"), [[-2, -4]])
    assert downsample_block(np.array([True, False]), 2, "local_mean").dtype == bool


def test_local_mean_of_partial_block_uses_voxels_present():
    arr = np.array([10, 20, 30], np.uint16)
    np.testing.assert_array_equal(downsample_block(arr, 2, "local_mean"), [15, 30])
    arr = np.arange(5 * 5, dtype=np.float32).reshape(5, 5)
    got = downsample_block(arr, 2, "local_mean")
    assert got[2, 2] == arr[4, 4]
    assert got[0, 2] == pytest.approx(arr[0:2, 4].mean())


@pytest.mark.parametrize("factors", [2, (2, 2, 1), (3, 3, 3), (4, 4, 4), (5, 5, 5)])
def test_mode_picks_majority_and_never_invents(factors):
    rng = np.random.default_rng(1)
    arr = rng.choice(
        np.array([0, 3, 7, 1000, 2**31 + 5], np.uint32),
        size=(13, 11, 10),
        p=[0.4, 0.3, 0.15, 0.1, 0.05],
    )
    fs = (factors,) * 3 if isinstance(factors, int) else factors
    got = downsample_block(arr, factors, "mode")
    np.testing.assert_array_equal(got, reference(arr, fs, "mode"))
    for idx, block in block_views(arr, fs):
        assert got[idx] in block


def test_mode_ties_go_to_the_smallest_label():
    arr = np.array([[5, 2], [2, 5]], np.int32)
    assert downsample_block(arr, 2, "mode")[0, 0] == 2
    arr = np.array([[9, 9], [4, 1]], np.uint8)
    assert downsample_block(arr, 2, "mode")[0, 0] == 9


@pytest.mark.parametrize("method", ["max", "min", "nearest"])
def test_max_min_nearest(method):
    arr = np.random.default_rng(2).integers(0, 60000, (9, 10, 7)).astype(np.uint16)
    got = downsample_block(arr, (2, 3, 2), method)
    np.testing.assert_array_equal(got, reference(arr, (2, 3, 2), method))


def test_large_blocks_are_reduced_in_slabs_identically():
    arr = np.random.default_rng(3).integers(0, 4096, (70, 130, 129), dtype=np.uint16)  # > 8 MiB
    for method in ("local_mean", "mode", "max"):
        got = downsample_block(arr, 2, method)
        sub = downsample_block(np.ascontiguousarray(arr[:8]), 2, method)
        np.testing.assert_array_equal(got[:4], sub)
    np.testing.assert_array_equal(
        downsample_block(arr, 2, "local_mean")[-1], reference(arr[-2:], (2, 2, 2), "local_mean")[0]
    )


def test_downsample_block_rejects_bad_arguments():
    arr = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="one per axis"):
        downsample_block(arr, (2, 2, 2), "local_mean")
    with pytest.raises(ValueError, match=">= 1"):
        downsample_block(arr, 0, "local_mean")
    with pytest.raises(ValueError, match="method"):
        downsample_block(arr, 2, "median")


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    factors=st.lists(st.integers(1, 4), min_size=3, max_size=3),
    method=st.sampled_from(SCALING_METHODS),
    seed=st.integers(0, 2**16),
)
def test_downsample_block_matches_reference(shape, factors, method, seed):
    arr = np.random.default_rng(seed).integers(0, 6, shape).astype(np.uint8)
    fs = tuple(factors[: len(shape)])
    np.testing.assert_array_equal(downsample_block(arr, fs, method), reference(arr, fs, method))


# -- plans ----------------------------------------------------------------------------------


def test_plan_max_layer_gives_levels_0_to_max():
    plan = plan_pyramid(make_image(np.zeros((64, 64, 64), np.uint16)), max_layer=4)
    assert [lp.index for lp in plan.levels] == [0, 1, 2, 3, 4]
    assert [lp.shape for lp in plan.levels] == [(64 >> i,) * 3 for i in range(5)]
    assert [lp.scale for lp in plan.levels] == [(2.0**i,) * 3 for i in range(5)]
    assert plan.levels[0].chunks == (64, 64, 64)  # default 128^3 clipped
    assert plan.ngff_version == "0.5" and plan.zarr_format == 3


def test_plan_explicit_factors_in_array_order():
    plan = plan_pyramid(
        make_image(np.zeros((10, 64, 64), np.uint8)), 3, downsample_factors=(1, 2, 2)
    )
    assert [lp.shape for lp in plan.levels] == [
        (10, 64, 64),
        (10, 32, 32),
        (10, 16, 16),
        (10, 8, 8),
    ]
    assert plan.levels[1].factors == (1, 2, 2)
    plan = plan_pyramid(
        make_image(np.zeros((64, 64, 10), np.uint8)), 2, downsample_factors=(2, 2, 1)
    )
    assert plan.levels[2].shape == (16, 16, 10)


def test_plan_auto_factors_make_anisotropic_voxels_isotropic_first():
    image = make_image(np.zeros((40, 256, 256), np.uint16), scale=(4.0, 1.0, 1.0))
    plan = plan_pyramid(image, 4)
    assert [lp.factors for lp in plan.levels[1:]] == [(1, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert plan.levels[2].scale == (4.0, 4.0, 4.0)
    assert plan.levels[4].shape == (10, 16, 16)


def test_plan_never_shrinks_below_one_voxel_and_stops_early(caplog):
    plan = plan_pyramid(make_image(np.zeros((1, 6, 3), np.uint8)), 10)
    for lp in plan.levels:
        assert all(n >= 1 for n in lp.shape)
        assert lp.factors[0] == 1  # the one-voxel axis never shrinks
    assert plan.levels[-1].shape == (1, 1, 1)
    assert len(plan.levels) == 4  # (1,6,3) (1,3,2) (1,2,1) (1,1,1), then nothing to do
    # a factor larger than the axis is clipped to the axis size
    plan = plan_pyramid(
        make_image(np.zeros((3, 64, 64), np.uint8)), 1, downsample_factors=(4, 4, 4)
    )
    assert plan.levels[1].factors == (3, 4, 4) and plan.levels[1].shape == (1, 16, 16)


def test_plan_never_downsamples_time_and_channel():
    image = make_image(np.zeros((3, 2, 16, 32, 32), np.uint16), axes="tczyx")
    plan = plan_pyramid(image, 3)
    for lp in plan.levels:
        assert lp.shape[:2] == (3, 2) and lp.factors[:2] == (1, 1) and lp.chunks[:2] == (1, 1)
    with pytest.raises(ValueError, match="only spatial axes"):
        plan_pyramid(image, 1, downsample_factors=(2, 1, 2, 2, 2))


def test_plan_translation_depends_on_method():
    image = make_image(
        np.zeros((16, 16), np.float32), axes="yx", scale=(0.5, 2.0), translation=(10.0, -1.0)
    )
    mean = plan_pyramid(image, 2, downsample_factors=2)
    # block reductions: the new voxel sits at the centre of its block
    assert mean.levels[1].translation == pytest.approx((10.0 + 0.25, -1.0 + 1.0))
    assert mean.levels[2].translation == pytest.approx((10.25 + 0.5, 0.0 + 2.0))
    assert mean.levels[2].scale == (2.0, 8.0)
    nearest = plan_pyramid(image, 2, downsample_factors=2, scaling_method="nearest")
    assert all(lp.translation == (10.0, -1.0) for lp in nearest.levels)
    factor3 = plan_pyramid(image, 1, downsample_factors=(3, 1), scaling_method="max")
    assert factor3.levels[1].translation == pytest.approx((10.0 + 0.5, -1.0))


def test_plan_chunks_shards_and_table():
    image = make_image(np.zeros((2, 100, 300, 300), np.uint16), axes="czyx")
    plan = plan_pyramid(image, 2, chunks=(32, 64, 64), shards=(64, 128, 128))
    assert plan.levels[0].chunks == (1, 32, 64, 64)
    assert plan.levels[0].shards == (1, 64, 128, 128)
    assert plan.levels[2].shape == (2, 25, 75, 75)
    assert plan.levels[2].chunks == (1, 25, 64, 64)
    assert plan.levels[2].shards == (1, 25, 128, 128)  # a multiple of the clipped chunks
    rows = plan.table()
    assert rows[0]["n_chunks"] == 2 * 4 * 5 * 5 and rows[1]["voxel_size"] == (2.0, 2.0, 2.0)
    assert rows[0]["bytes"] == 2 * 100 * 300 * 300 * 2
    assert "blosc zstd clevel 3 bitshuffle" in plan.summary()
    assert plan.total_bytes == sum(r["bytes"] for r in rows)
    with pytest.raises(ValueError, match=r"0\.5"):
        plan_pyramid(image, 1, shards=(64, 128, 128), ngff_version="0.4")
    with pytest.raises(ValueError, match="multiple"):
        plan_pyramid(image, 1, chunks=32, shards=48)
    with pytest.raises(ValueError, match="per spatial axis"):
        plan_pyramid(image, 1, chunks=(32, 32))


def test_plan_labels_use_a_label_safe_method(caplog):
    labels = make_image(np.zeros((8, 8), np.uint32), axes="yx", is_label=True, name="cells")
    with caplog.at_level(logging.WARNING, logger="napari_zarrnii.core.pyramid"):
        plan = plan_pyramid(labels, 1, scaling_method="local_mean")
    assert plan.method == "mode"
    assert "cells is a label image" in caplog.text
    assert plan_pyramid(labels, 1, scaling_method="nearest").method == "nearest"
    with pytest.raises(ValueError, match="scaling_method"):
        plan_pyramid(labels, 1, scaling_method="bicubic")


# -- writing and reading back -------------------------------------------------------------


CASES = {
    "2d-uint8": ("yx", (37, 50), np.uint8),
    "3d-uint16": ("zyx", (20, 33, 40), np.uint16),
    "4d-float32": ("czyx", (2, 9, 24, 30), np.float32),
    "5d-uint16": ("tczyx", (2, 3, 8, 20, 18), np.uint16),
}
FORMATS = {
    "0.4": ("0.4", None),
    "0.5": ("0.5", None),
    "0.5-shards": ("0.5", 16),
    "0.6": ("0.6", None),
    "0.6-shards": ("0.6", 16),
}


def random_data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(50, 10, shape).astype(dtype)
    return rng.integers(0, 200 if dtype == np.uint8 else 5000, shape).astype(dtype)


def expected_levels(data, plan: PyramidPlan):
    levels = [data]
    for lp in plan.levels[1:]:
        levels.append(downsample_block(levels[-1], lp.factors, plan.method))
    return levels


def root_attrs(path: Path) -> dict:
    return dict(zarr.open_group(str(path), mode="r").attrs)


def check_with_peers(path: Path, levels, plan: PyramidPlan):
    """ngff-zarr (every version), ome-zarr-py (0.4, 0.5) and napari-ome-zarr (0.6).

    ome-zarr-py 0.18 knows no 0.6: it reads a 0.6 store as 0.5 with default
    ``t, c, z, y, x`` axes, so napari-ome-zarr 0.10, which reads 0.6, checks it.
    """
    from ngff_zarr import from_ngff_zarr

    if plan.ngff_version == "0.6":
        check_napari_ome_zarr_06(path, levels, plan)
    else:
        from ome_zarr.io import parse_url
        from ome_zarr.reader import Reader

        node = next(iter(Reader(parse_url(str(path)))()))
        assert len(node.data) == len(levels)
        for arr, want in zip(node.data, levels):
            np.testing.assert_array_equal(np.asarray(arr), want)
        transforms = node.metadata["coordinateTransformations"]
        for lp, tr in zip(plan.levels, transforms):
            assert tr[0]["scale"] == pytest.approx(lp.scale)
    ms = from_ngff_zarr(str(path), validate=plan.ngff_version == "0.6")
    names = [a.name for a in plan.axes]
    for image, lp, want in zip(ms.images, plan.levels, levels):
        np.testing.assert_array_equal(np.asarray(image.data), want)
        assert [image.scale[n] for n in names] == pytest.approx(lp.scale)
        assert [image.translation[n] for n in names] == pytest.approx(lp.translation)


def check_napari_ome_zarr_06(path: Path, levels, plan: PyramidPlan):
    import contextlib
    import io

    from napari_ome_zarr._reader import napari_get_reader

    with contextlib.redirect_stdout(io.StringIO()):  # it prints the attributes
        data, kwargs, _ = napari_get_reader(str(path))(str(path))[0]
    assert len(data) == len(levels)
    for arr, want in zip(data, levels):
        np.testing.assert_array_equal(np.asarray(arr), want)
    channel = kwargs.get("channel_axis")
    keep = [i for i in range(len(plan.axes)) if i != channel]
    lp = plan.levels[0]
    index = np.array([n // 2 for i, n in enumerate(lp.shape) if i != channel], dtype=float)
    expected = np.asarray(lp.translation)[keep] + np.asarray(lp.scale)[keep] * index
    got = kwargs["affine"](np.asarray(kwargs["scale"]) * index)
    np.testing.assert_allclose(got, expected)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("case", list(CASES))
def test_write_and_read_back(tmp_path, case, fmt):
    axes, shape, dtype = CASES[case]
    version, shards = FORMATS[fmt]
    data = random_data(shape, dtype)
    n_spatial = sum(a.type == "space" for a in AXES[axes])
    scale = (1.0,) * (len(shape) - n_spatial) + (2.0,) + (0.5,) * (n_spatial - 1)
    image = make_image(data, axes, scale=scale)
    chunks = 8
    plan = plan_pyramid(image, 2, chunks=chunks, shards=shards, ngff_version=version)
    calls = []
    out = write_pyramid(
        image,
        tmp_path / "img.ome.zarr",
        plan,
        progress=lambda d, t, m: calls.append((d, t, m)),
        workers=2,
    )
    assert out == tmp_path / "img.ome.zarr"
    assert (
        calls
        and calls[-1][0] == calls[-1][1]
        and [c[0] for c in calls] == list(range(1, calls[-1][1] + 1))
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.ome.zarr"]  # no temp left

    attrs = root_attrs(out)
    validate_ngff(attrs, version, "image")
    validate_ngff(attrs, version, "strict_image")  # name, type and metadata present
    if version == "0.6":
        ms06 = attrs["ome"]["multiscales"][0]
        assert [cs["name"] for cs in ms06["coordinateSystems"]] == ["intrinsic"]
    if version == "0.4":
        assert (out / ".zattrs").exists()
        zarray = json.loads((out / "0" / ".zarray").read_text())
        assert zarray["dimension_separator"] == "/"
        assert zarray["compressor"]["cname"] == "zstd"
    else:
        meta = json.loads((out / "0" / "zarr.json").read_text())
        assert meta["dimension_names"] == [a.name for a in AXES[axes]]
        codecs = json.dumps(meta["codecs"])
        assert ("sharding_indexed" in codecs) == (shards is not None)
        assert "blosc" in codecs

    want = expected_levels(data, plan)
    back = read_ome_zarr(out)
    assert back.ngff_version == version and back.axis_names == tuple(a.name for a in AXES[axes])
    assert back.units == tuple(a.unit for a in AXES[axes])
    for level, lp, w in zip(back.levels, plan.levels, want):
        assert level.scale == pytest.approx(lp.scale)
        assert level.translation == pytest.approx(lp.translation)
        assert level.data.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(np.asarray(level.data[...]), w)
    assert len(back.channels) == back.num_channels
    assert all(ch.window is not None for ch in back.channels)
    check_with_peers(out, want, plan)


@pytest.mark.parametrize("version", ["0.4", "0.5", "0.6"])
def test_write_with_labels(tmp_path, version):
    data = random_data((12, 40, 36), np.uint16)
    seg = np.zeros((12, 40, 36), np.uint32)
    seg[2:9, 5:30, 4:20] = 7
    seg[:, 20:, 20:] = 3
    label = make_image(
        seg, scale=(3.0, 1.0, 1.0), is_label=True, label_colors={3: (1.0, 0.0, 0.0, 1.0)}
    )
    image = make_image(data, scale=(3.0, 1.0, 1.0), labels={"cells": label})
    out = write_pyramid(image, tmp_path / "x.zarr", max_layer=2, chunks=16, ngff_version=version)
    group = zarr.open_group(str(out), mode="r")
    validate_ngff(dict(group.attrs), version, "image")
    label_attrs = dict(group["labels/cells"].attrs)
    validate_ngff(label_attrs, version, "image")
    validate_ngff(label_attrs, version, "label")
    labels_attrs = dict(group["labels"].attrs)
    assert (labels_attrs.get("ome", labels_attrs))["labels"] == ["cells"]

    back = read_ome_zarr(out)
    assert list(back.labels) == ["cells"]
    lab = back.labels["cells"]
    assert lab.is_label and lab.label_colors[3] == (1.0, 0.0, 0.0, 1.0)
    plan = plan_pyramid(image, 2, chunks=16)
    assert [lv.shape for lv in lab.levels] == [lp.shape for lp in plan.levels]
    assert [lv.scale for lv in lab.levels] == [lp.scale for lp in plan.levels]
    level = seg
    for lv, lp in zip(lab.levels, plan.levels):
        if lp.index:
            level = downsample_block(level, lp.factors, "mode")
        got = np.asarray(lv.data[...])
        np.testing.assert_array_equal(got, level)
        assert set(np.unique(got)) <= {0, 3, 7}
    ms = (lab.attrs.get("ome", lab.attrs))["multiscales"][0]
    assert ms["type"] == "mode"


@pytest.mark.parametrize("version", ["0.4", "0.5", "0.6"])
def test_single_label_image_is_written_as_a_label_at_the_root(tmp_path, version):
    seg = np.random.default_rng(0).integers(0, 4, (30, 40)).astype(np.uint8)
    label = make_image(seg, axes="yx", is_label=True, name="seg")
    out = write_pyramid(
        label, tmp_path / "seg.zarr", max_layer=2, ngff_version=version, scaling_method="mode"
    )
    attrs = root_attrs(out)
    validate_ngff(attrs, version, "image")
    validate_ngff(attrs, version, "label")
    ome = attrs.get("ome", attrs)
    assert "omero" not in ome and "source" not in ome["image-label"]
    back = read_ome_zarr(out)
    assert back.is_label
    assert set(np.unique(np.asarray(back.levels[2].data[...]))) <= set(np.unique(seg))


def test_omero_metadata_and_computed_windows(tmp_path):
    data = np.zeros((2, 8, 32, 32), np.uint16)
    data[0] = 100
    data[0, :, :16] = 300
    data[1] = np.arange(32, dtype=np.uint16)[None, None, :] * 10
    image = make_image(data, "czyx")
    omero = {
        "name": "Brain",
        "channels": [
            {"label": "DAPI", "color": "blue"},
            {
                "label": "GFP",
                "color": "#00ff00",
                "window": {"start": 5, "end": 50, "min": 0, "max": 65535},
            },
        ],
    }
    out = write_pyramid(image, tmp_path / "o.zarr", max_layer=2, omero=omero)
    back = read_ome_zarr(out)
    assert back.name == "Brain"
    dapi, gfp = back.channels
    assert (dapi.label, dapi.color, gfp.label, gfp.color) == ("DAPI", "0000FF", "GFP", "00FF00")
    assert gfp.window == Window(5.0, 50.0, 0.0, 65535.0)
    assert dapi.window.min == 100.0 and dapi.window.max == 300.0
    assert 100.0 <= dapi.window.start < dapi.window.end <= 300.0


def test_channels_from_the_image_are_kept(tmp_path):
    data = random_data((2, 6, 16, 16), np.uint8)
    image = make_image(
        data,
        "czyx",
        channels=[
            ChannelInfo("a", "FF0000", Window(0, 10, 0, 255)),
            ChannelInfo("b", "00FF00"),
        ],
    )
    back = read_ome_zarr(write_pyramid(image, tmp_path / "c.zarr", max_layer=1))
    assert [c.label for c in back.channels] == ["a", "b"]
    assert back.channels[0].window == Window(0.0, 10.0, 0.0, 255.0)
    assert back.channels[1].window is not None


def test_dask_source_and_workers(tmp_path):
    data = random_data((24, 40, 40), np.uint16, seed=5)
    source = da.from_array(data, chunks=(16, 20, 20))
    image = make_image(source)
    out = write_pyramid(image, tmp_path / "d.zarr", max_layer=3, chunks=8, workers=3)
    plan = plan_pyramid(image, 3, chunks=8)
    back = read_ome_zarr(out)
    for level, want in zip(back.levels, expected_levels(data, plan)):
        np.testing.assert_array_equal(np.asarray(level.data[...]), want)


def test_write_levels_keeps_levels_as_they_are(tmp_path):
    rng = np.random.default_rng(0)
    levels = [
        Level(
            "a",
            rng.integers(0, 99, (16, 30, 30)).astype(np.uint16),
            (2.0, 0.5, 0.5),
            (1.0, 0.0, 0.0),
        ),
        Level(
            "b",
            rng.integers(0, 99, (16, 10, 10)).astype(np.uint16),
            (2.0, 1.5, 1.5),
            (1.0, 0.5, 0.5),
        ),
    ]
    image = MultiscaleImage(axes=AXES["zyx"], levels=levels)
    for version in ("0.4", "0.5"):
        calls: list[int] = []
        out = write_levels(
            image,
            tmp_path / f"l{version}.zarr",
            ngff_version=version,
            chunks=8,
            progress=lambda d, t, m, calls=calls: calls.append(d),
        )
        validate_ngff(root_attrs(out), version, "image")
        back = read_ome_zarr(out)
        assert [lv.path for lv in back.levels] == ["0", "1"]
        for got, src in zip(back.levels, levels):
            np.testing.assert_array_equal(np.asarray(got.data[...]), src.data)
            assert got.scale == src.scale and got.translation == src.translation
        assert calls == list(range(1, len(calls) + 1))
    plan = plan_levels(image, chunks=8)
    assert plan.method == "as-is" and plan.levels[1].factors == (1, 3, 3)


# -- codecs and storage options -------------------------------------------------------------


def test_compressor_choices(tmp_path):
    assert resolve_compressor("default", 2) == numcodecs.Blosc(
        "zstd", 3, numcodecs.Blosc.BITSHUFFLE
    )
    v3 = resolve_compressor(numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE), 3)
    assert isinstance(v3, zarr.codecs.BloscCodec) and v3.clevel == 5
    assert isinstance(resolve_compressor(numcodecs.Zstd(3), 3), zarr.codecs.ZstdCodec)
    assert isinstance(resolve_compressor(zarr.codecs.ZstdCodec(level=2), 2), numcodecs.Zstd)
    assert resolve_compressor(None, 3) is None and resolve_compressor("none", 2) is None
    assert describe_compressor(None) == "uncompressed"
    assert describe_compressor("zstd:5", 2) == "zstd level 5"
    with pytest.raises(ValueError, match="compressor"):
        resolve_compressor("snappy-ish", 3)

    data = random_data((8, 16, 16), np.uint16)
    for version, codec, key in [
        ("0.4", numcodecs.Zstd(1), '"id": "zstd"'),
        ("0.5", numcodecs.Blosc("lz4", 5), '"cname": "lz4"'),
        ("0.5", None, None),
        ("0.4", None, None),
    ]:
        out = tmp_path / f"{version}-{key}.zarr"
        write_pyramid(make_image(data), out, max_layer=1, ngff_version=version, compressor=codec)
        meta = (out / "0" / (".zarray" if version == "0.4" else "zarr.json")).read_text()
        if key is None:
            assert "blosc" not in meta and "zstd" not in meta
        else:
            assert key in meta.replace("'", '"')
        np.testing.assert_array_equal(np.asarray(read_ome_zarr(out).levels[0].data[...]), data)


def test_storage_options(tmp_path):
    opts = resolve_storage_options({"compressor": None, "chunks": (4, 8, 8), "shards": None})
    assert opts == {"compressor": None, "chunks": (4, 8, 8), "shards": None}
    assert resolve_storage_options(None, chunks=16)["chunks"] == 16
    assert resolve_storage_options({"chunks": 4}, chunks=16)["chunks"] == 16
    data = random_data((8, 16, 16), np.uint16)
    out = write_pyramid(
        make_image(data),
        tmp_path / "s.zarr",
        max_layer=1,
        storage_options={"chunks": (4, 8, 8), "shards": (8, 16, 16)},
    )
    meta = json.loads((out / "0" / "zarr.json").read_text())
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [8, 16, 16]
    assert meta["codecs"][0]["name"] == "sharding_indexed"
    assert meta["codecs"][0]["configuration"]["chunk_shape"] == [4, 8, 8]


# -- safety -------------------------------------------------------------------------------------


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_existing_destination_is_refused_and_overwrite_replaces(tmp_path):
    target = tmp_path / "img.zarr"
    first = random_data((8, 16, 16), np.uint16, seed=1)
    second = random_data((8, 16, 16), np.uint16, seed=2)
    write_pyramid(make_image(first), target, max_layer=1)
    with pytest.raises(DestinationExistsError, match=r"img\.zarr"):
        write_pyramid(make_image(second), target, max_layer=1)
    np.testing.assert_array_equal(np.asarray(read_ome_zarr(target).levels[0].data[...]), first)
    write_pyramid(make_image(second), target, max_layer=1, overwrite=True)
    np.testing.assert_array_equal(np.asarray(read_ome_zarr(target).levels[0].data[...]), second)
    assert _leftovers(tmp_path) == ["img.zarr"]


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize(
    "stop", ["progress-raises", "cancel-event", "cancel-callable", "source-raises"]
)
def test_failure_or_cancel_leaves_nothing_and_keeps_the_previous_store(tmp_path, stop):
    target = tmp_path / "img.zarr"
    previous = random_data((16, 32, 32), np.uint16, seed=1)
    write_pyramid(make_image(previous), target, max_layer=1)
    data = random_data((16, 32, 32), np.uint16, seed=2)
    event = threading.Event()
    seen = []

    def progress(done, total, message):
        seen.append(done)
        if done == 3:
            if stop == "progress-raises":
                raise Boom("disk full, say")
            event.set()

    source = data
    if stop == "source-raises":

        def bad(block, block_info=None):
            if block_info[0]["chunk-location"] == (1, 1, 1):
                raise Boom("unreadable chunk")
            return block

        source = da.from_array(data, chunks=4).map_blocks(bad, dtype=data.dtype)
    cancel = {"cancel-event": event, "cancel-callable": event.is_set}.get(stop)
    expected = {"progress-raises": Boom, "source-raises": Boom}.get(stop, CancelledError)
    with pytest.raises(expected):
        write_pyramid(
            make_image(source),
            target,
            max_layer=2,
            chunks=4,
            overwrite=True,
            progress=progress,
            cancel=cancel,
            workers=2,
        )
    if stop != "source-raises":
        assert seen[-1] == 3  # stopped promptly: no block reported after the stop
    assert _leftovers(tmp_path) == ["img.zarr"]
    np.testing.assert_array_equal(np.asarray(read_ome_zarr(target).levels[0].data[...]), previous)


def test_cancel_before_start_writes_nothing(tmp_path):
    event = threading.Event()
    event.set()
    with pytest.raises(CancelledError):
        write_pyramid(make_image(np.zeros((4, 4, 4), np.uint8)), tmp_path / "n.zarr", cancel=event)
    assert _leftovers(tmp_path) == []


def test_plan_and_plan_arguments_are_exclusive(tmp_path):
    image = make_image(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="either"):
        write_pyramid(image, tmp_path / "x.zarr", plan_pyramid(image, 1), max_layer=2)


# -- out of core -------------------------------------------------------------------------------


def test_memory_is_bounded_by_blocks_not_by_the_image(tmp_path):
    """A 64 MiB lazily generated image is written with a small fraction of it in memory."""
    shape, chunks = (256, 256, 512), (32, 64, 64)  # 64 MiB of uint16
    generated = []

    def make_block(block_info=None):
        loc = block_info[None]["array-location"]
        generated.append(tuple(lo for lo, _ in loc))
        z0, y0, x0 = (lo for lo, _ in loc)
        shp = tuple(hi - lo for lo, hi in loc)
        z, y, x = np.ogrid[z0 : z0 + shp[0], y0 : y0 + shp[1], x0 : x0 + shp[2]]
        return ((z * 7 + y * 3 + x) % 4096).astype(np.uint16)

    source = da.map_blocks(
        make_block,
        dtype=np.uint16,
        chunks=da.core.normalize_chunks(chunks, shape),
        meta=np.empty((0, 0, 0), np.uint16),
    )
    assert source.shape == shape
    image = make_image(source)
    image_bytes = math.prod(shape) * 2
    tracemalloc.start()
    try:
        write_pyramid(image, tmp_path / "big.zarr", max_layer=3, chunks=chunks, workers=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < image_bytes / 4, f"peak {peak / 2**20:.1f} MiB"
    n_blocks = math.prod(-(-n // c) for n, c in zip(shape, chunks))
    assert len(generated) == n_blocks  # every source block computed exactly once
    back = read_ome_zarr(tmp_path / "big.zarr")
    z, y, x = 100, 200, 300
    assert int(back.levels[0].data[z, y, x]) == (z * 7 + y * 3 + x) % 4096
    sample = np.asarray(back.levels[1].data[10:12, 20:22, 30:32])
    full = np.asarray(source[20:24, 40:44, 60:64])
    np.testing.assert_array_equal(sample, downsample_block(full, 2, "local_mean"))


def test_peak_blocks_in_flight_is_bounded(tmp_path, monkeypatch):
    import napari_zarrnii.core.pyramid.engine as engine

    running = []
    peak = [0]
    lock = threading.Lock()
    original = engine._read_region

    def counting(array, region, dtype):
        with lock:
            running.append(1)
            peak[0] = max(peak[0], len(running))
        try:
            return original(array, region, dtype)
        finally:
            with lock:
                running.pop()

    monkeypatch.setattr(engine, "_read_region", counting)
    monkeypatch.setattr(engine, "_TASK_INPUT_BYTES", 1)  # one chunk per task
    data = random_data((32, 32, 32), np.uint8)
    write_pyramid(make_image(data), tmp_path / "p.zarr", max_layer=2, chunks=4, workers=3)
    assert 1 <= peak[0] <= 3


def test_generated_blocks_cover_the_level_exactly():
    from napari_zarrnii.core.pyramid import _input_pieces, _regions, _task_unit

    unit = _task_unit((4, 4), (10, 9), 2, (2, 2), None)
    regions = list(_regions((10, 9), unit))
    covered = np.zeros((10, 9), int)
    for r in regions:
        covered[r] += 1
    assert (covered == 1).all()
    pieces = _input_pieces(
        (slice(0, 20), slice(0, 18)), (slice(0, 10), slice(0, 9)), (6, 6), (2, 2)
    )
    assert [p[0][0] for p in pieces] == [slice(0, 6), slice(6, 12), slice(12, 18), slice(18, 20)]
    assert [p[1][0] for p in pieces] == [slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 10)]


# -- block tasks ---------------------------------------------------------------------------------


def store_bytes(path: Path) -> dict[str, bytes]:
    """Every file of a store (relative path -> content): equal stores are byte-identical."""
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def image_with_channels_and_labels(source_kind: str = "numpy") -> MultiscaleImage:
    """2 channels (one mostly 0, so some blocks are skipped) and a label image."""
    data = random_data((2, 12, 40, 36), np.uint16)
    data[1, :, :20] = 0
    seg = np.zeros((12, 40, 36), np.uint32)
    seg[2:9, 5:30, 4:20] = 7
    seg[:, 20:, 20:] = 3
    if source_kind == "dask":
        source = da.from_array(data, chunks=(1, 6, 16, 16))
    elif source_kind == "zarr":
        source = zarr.create_array(zarr.storage.MemoryStore(), data=data, chunks=(1, 8, 16, 16))
    else:
        source = data
    label = make_image(seg, scale=(3.0, 1.0, 1.0), is_label=True)
    return make_image(
        source, "czyx", scale=(1.0, 3.0, 1.0, 1.0), labels={"cells": label}, name="cells+dapi"
    )


def _count_carried(monkeypatch) -> list[int]:
    """Counts the blocks written from what the level before handed on in memory."""
    from napari_zarrnii.core.pyramid import engine

    seen = [0, 0]  # blocks from memory, blocks that could have been
    original = engine._LevelJob._carried_block

    def counting(self, index):
        block = original(self, index)
        seen[0] += block is not None
        seen[1] += 1
        return block

    monkeypatch.setattr(engine._LevelJob, "_carried_block", counting)
    return seen


@pytest.mark.parametrize("method", ["local_mean", "nearest", "mode", "max", "min"])
@pytest.mark.parametrize(
    "case",
    [
        # v2, one chunk per task: 8 blocks of level k make one of level k+1
        {"ngff_version": "0.4", "chunks": (4, 8, 8), "source_chunks": None},
        # v3 shards, a dask source chunked larger than ours: a block of level 0, once
        # downsampled, is split among several blocks of level 1
        {"ngff_version": "0.5", "chunks": (4, 8, 8), "source_chunks": (16, 32, 32)},
        {"ngff_version": "0.5", "chunks": (4, 4, 4), "shards": (8, 8, 8), "source_chunks": None},
    ],
)
def test_levels_handed_on_in_memory_are_the_levels_read_back(tmp_path, monkeypatch, method, case):
    """Each level built from the blocks the level before handed on in memory is byte for
    byte the level built by reading the level before back from the store; odd sizes put
    partial windows at the ends; with a small memory budget some blocks do each."""
    from napari_zarrnii.core.pyramid import engine

    monkeypatch.setattr(engine, "_TASK_INPUT_BYTES", 1)  # one chunk (or shard) per task
    data = random_data((21, 37, 45), np.uint16)
    data[:, :, :12] = 0  # blocks entirely 0 are not stored: handed on all the same
    case = dict(case)
    source_chunks = case.pop("source_chunks")
    source = data if source_chunks is None else da.from_array(data, chunks=source_chunks)
    kwargs = {"max_layer": 3, "scaling_method": method, **case}

    monkeypatch.setattr(engine, "_CARRY_BYTES", 0)  # the reference: every level read back
    reference = tmp_path / "read-back" / "img.zarr"  # the name is in the metadata
    write_pyramid(make_image(source), reference, **kwargs)
    want = store_bytes(reference)

    for budget, name in ((64 * 2**20, "in-memory"), (2500, "some-in-memory")):
        monkeypatch.setattr(engine, "_CARRY_BYTES", budget)
        if budget < 2**20:  # planned although it cannot fit: the cap drops pieces
            monkeypatch.setattr(engine._LevelJob, "carry_bytes", lambda self, child: 0)
        carried = _count_carried(monkeypatch)
        out = tmp_path / name / "img.zarr"
        write_pyramid(make_image(source), out, **kwargs)
        if name == "in-memory":
            assert carried[0] == carried[1] > 0  # every level past 0 from memory
        else:
            assert 0 < carried[0] < carried[1]  # the budget ran out for some
        assert store_bytes(out) == want, name
        monkeypatch.undo()
        monkeypatch.setattr(engine, "_TASK_INPUT_BYTES", 1)


def test_parts_of_dropped_blocks_are_not_computed(tmp_path, monkeypatch):
    """Once a block of the next level is dropped (its parts did not fit), the remaining
    blocks under it hand nothing on; the result is the same."""
    from napari_zarrnii.core.pyramid import engine

    monkeypatch.setattr(engine, "_TASK_INPUT_BYTES", 1)
    data = random_data((16, 32, 32), np.uint16)
    kwargs = {"max_layer": 1, "chunks": (4, 8, 8), "workers": 1}
    monkeypatch.setattr(engine, "_CARRY_BYTES", 0)
    reference = tmp_path / "read-back" / "img.zarr"
    write_pyramid(make_image(data), reference, **kwargs)

    monkeypatch.setattr(engine, "_CARRY_BYTES", 1)  # every part is dropped on arrival
    monkeypatch.setattr(engine._LevelJob, "carry_bytes", lambda self, child: 0)
    asked = []
    original = engine._LevelJob._carry_for

    def carry_for(self, out_region):
        made = original(self, out_region)
        if self.carry_to is not None:
            asked.append(made is not None)
        return made

    monkeypatch.setattr(engine._LevelJob, "_carry_for", carry_for)
    out = tmp_path / "dropped" / "img.zarr"
    write_pyramid(make_image(data), out, **kwargs)
    # 8 blocks of level 0 under each of level 1's: the first ones (in flight before the
    # first part is dropped) still compute theirs, the rest do not
    assert any(asked) and not all(asked)
    assert store_bytes(out) == store_bytes(reference)


@pytest.mark.parametrize("method", ["local_mean", "nearest", "max"])
def test_negative_zeros_are_handed_on_as_they_read_back(tmp_path, monkeypatch, method):
    """A float block of -0.0 only is all fill value: not stored, it reads back as +0.0,
    and is handed on as +0.0 too (the bytes of the next level are the same)."""
    from napari_zarrnii.core.pyramid import engine

    monkeypatch.setattr(engine, "_TASK_INPUT_BYTES", 1)
    data = np.full((4, 4, 16), -0.0, np.float32)
    data[:, :, 6:] = 1.0
    stores = {}
    for budget, name in ((0, "read-back"), (64 * 2**20, "in-memory")):
        monkeypatch.setattr(engine, "_CARRY_BYTES", budget)
        out = tmp_path / name / "img.zarr"
        write_pyramid(make_image(data), out, max_layer=1, chunks=(4, 4, 4), scaling_method=method)
        stores[name] = store_bytes(out)
    assert stores["in-memory"] == stores["read-back"]


def test_only_levels_whose_pieces_fit_are_handed_on(tmp_path, monkeypatch):
    """Blocks go row by row (the source's order): the pieces of a row wait in memory.
    A level whose rows would not fit the budget reads the level before back instead
    (no piece computed for nothing); deeper, smaller levels are still handed on."""
    from napari_zarrnii.core.pyramid import engine

    monkeypatch.setattr(engine, "_TASK_INPUT_BYTES", 1)
    per_level: dict[str, list[bool]] = {}
    original = engine._LevelJob._carried_block

    def recording(self, index):
        block = original(self, index)
        per_level.setdefault(self.name, []).append(block is not None)
        return block

    monkeypatch.setattr(engine._LevelJob, "_carried_block", recording)
    built = []
    original_task = engine._LevelJob.task

    def task(self, index, *, portable):
        made = original_task(self, index, portable=portable)
        built.append((self.name, made.carry is not None))
        return made

    monkeypatch.setattr(engine._LevelJob, "task", task)
    data = random_data((32, 64, 64), np.uint16)
    # level 0 -> 1: rows of 8x8 blocks of 4x8x8, each handing on 2x4x4 voxels:
    # 1.5 x 64 x 32 x 2 bytes = 6 KiB; level 1 -> 2: rows of 4x4 blocks, 1.5 KiB.
    # A budget of 4 KiB takes only the second.
    monkeypatch.setattr(engine, "_CARRY_BYTES", 4 * 2**10)
    out = tmp_path / "fits" / "img.zarr"
    write_pyramid(make_image(data), out, max_layer=2, chunks=(4, 8, 8))
    assert "level 1/2" not in per_level  # read back from the store
    assert per_level["level 2/2"] and all(per_level["level 2/2"])
    assert not any(carry for name, carry in built if name == "level 0/2")
    monkeypatch.setattr(engine, "_CARRY_BYTES", 0)
    reference = tmp_path / "reference" / "img.zarr"
    write_pyramid(make_image(data), reference, max_layer=2, chunks=(4, 8, 8))
    assert store_bytes(out) == store_bytes(reference)


def test_block_tasks_are_self_contained(tmp_path, monkeypatch):
    """Tasks run from pickled copies (as on another process) write the same store."""
    import pickle
    from concurrent.futures import Future

    from napari_zarrnii.core.pyramid import engine
    from napari_zarrnii.core.pyramid import write as write_module
    from napari_zarrnii.core.pyramid.engine import BlockExecutor, run_block

    monkeypatch.setattr(engine, "_TASK_INPUT_BYTES", 1)  # one chunk per task

    shipped = []

    class PicklingExecutor(BlockExecutor[Future]):
        ships_tasks = True

        @property
        def workers(self) -> int:
            return 1

        def submit(self, task):
            copy = pickle.loads(pickle.dumps(task))
            assert copy.target._opened is None  # opened from its store path
            shipped.append(len(pickle.dumps(task)))
            future = Future()
            future.set_result(run_block(copy))
            return future

        def wait_any(self, futures):
            return [f for f in futures if f.done()]

        def drain(self, futures):
            pass

    for kind in ("numpy", "dask"):
        image = image_with_channels_and_labels(kind)
        threaded = write_pyramid(image, tmp_path / f"{kind}-t.zarr", max_layer=2, chunks=16)
        with monkeypatch.context() as m:
            m.setattr(write_module, "_executor", lambda *args, **kwargs: PicklingExecutor())
            shipped.clear()
            pickled = write_pyramid(image, tmp_path / f"{kind}-p.zarr", max_layer=2, chunks=16)
        assert shipped, "the pickling executor was not used"
        # a task carries its block of the source, never the whole image
        assert max(shipped) < image.levels[0].data.nbytes / 4
        want = store_bytes(threaded)
        assert len(want) > 20
        assert store_bytes(pickled) == want


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_direct_chunk_writes_store_what_zarr_stores(tmp_path, monkeypatch, version):
    """Chunks encoded in the worker hold the bytes zarr's own write path stores."""
    from napari_zarrnii.core.pyramid import chunkio

    shape = (2, 13, 37, 29)  # partial chunks at every end
    cases = [
        (np.uint16, "default"),
        (np.uint8, "blosc-lz4:5"),
        (np.float32, "zstd:3"),
        (np.int64, "zstd:1"),
        (np.uint16, None),
    ]  # not gzip: its header holds the time of writing
    for dtype, codec in cases:
        data = random_data(shape, dtype)
        data[:, :, :10] = 0  # some all-0 blocks, not written
        image = make_image(data, "czyx")
        kwargs = {"max_layer": 2, "chunks": 8, "ngff_version": version, "compressor": codec}
        name = f"{np.dtype(dtype).name}-{codec}.zarr"
        (tmp_path / "direct").mkdir(exist_ok=True)
        (tmp_path / "zarr").mkdir(exist_ok=True)
        used = []
        original = chunkio.ChunkIO.for_array.__func__

        def spy(cls, array, original=original, used=used):
            io = original(cls, array)
            used.append(io is not None)
            return io

        with monkeypatch.context() as m:
            m.setattr(chunkio.ChunkIO, "for_array", classmethod(spy))
            direct = write_pyramid(image, tmp_path / "direct" / name, **kwargs)
        assert used and all(used), "direct chunk I/O not used"
        with monkeypatch.context() as m:
            m.setattr(chunkio.ChunkIO, "for_array", classmethod(lambda cls, array: None))
            through_zarr = write_pyramid(image, tmp_path / "zarr" / name, **kwargs)
        want = store_bytes(through_zarr)
        assert store_bytes(direct) == want, (dtype, codec)
        np.testing.assert_array_equal(np.asarray(read_ome_zarr(direct).levels[0].data), data)
