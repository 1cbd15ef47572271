"""Every code block of the zarrnii "Multiscale OME-Zarr" page, run against ZarrNii.

Each ``test_seed_*`` test reproduces one block of ``seed/multiscale-ome-zarr.md`` with
generated stores in place of its paths, then checks the result.  Where the block
cannot run as written, or runs but means something else here, the test says so in
its docstring and ``docs/seed-deviations.md`` explains why and shows the right way.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import dask.array as da
import nibabel as nib
import numcodecs
import numpy as np
import pytest
import zarr

from napari_zarrnii import ZarrNii, ZarrNiiError
from napari_zarrnii._zarrnii import SelectionError
from napari_zarrnii.core.mask import NoTissueError
from napari_zarrnii.core.roi import BoxError
from napari_zarrnii.core.storage import storage_report

from .conftest import ramp, write_ngff_store

ZYX = (("z", "space", "micrometer"), ("y", "space", "micrometer"), ("x", "space", "micrometer"))


# ---------------------------------------------------------------------------------
# generated data standing in for the seed's paths
# ---------------------------------------------------------------------------------
def blob_volume(shape=(64, 96, 96), seed=0, dtype="uint16") -> np.ndarray:
    """A bright ellipsoid ("tissue") on a dim noisy background."""
    rng = np.random.default_rng(seed)
    grids = np.indices(shape, dtype=np.float32)
    centre = (
        np.array(shape, dtype=np.float32)[:, None, None, None]
        * np.array([0.5, 0.45, 0.55], dtype=np.float32)[:, None, None, None]
    )
    radii = np.array(shape, dtype=np.float32)[:, None, None, None] * 0.3
    inside = (((grids - centre) / radii) ** 2).sum(axis=0) <= 1.0
    vol = rng.normal(100, 10, shape)
    vol[inside] += 1500 + rng.normal(0, 50, int(inside.sum()))
    return np.clip(vol, 0, None).astype(dtype)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The seed's paths: a real (mean-downsampled) pyramid and a hand-written one."""
    root = tmp_path_factory.mktemp("seed")
    vol = blob_volume()
    brain = root / "multiscale.zarr"
    ZarrNii.from_array(vol, voxel_size=(1.0, 1.0, 1.0)).to_ome_zarr(
        brain, max_layer=4, chunks=(32, 32, 32)
    )
    strided, strided_levels = write_ngff_store(
        root / "strided.ome.zarr", version="0.5", data=vol, axes=ZYX, n_levels=5
    )
    return {
        "brain": brain,
        "vol": vol,
        "strided": strided,
        "strided_levels": strided_levels,
        "root": root,
    }


@pytest.fixture
def highres_nifti(tmp_path) -> tuple[Path, np.ndarray]:
    """A NIfTI volume: voxels (x, y, z), 0.5 x 0.5 x 1 mm, axis-aligned."""
    zyx = blob_volume((32, 48, 40), seed=1)
    path = tmp_path / "highres.nii"
    nib.save(nib.Nifti1Image(zyx.transpose(2, 1, 0), np.diag([0.5, 0.5, 1.0, 1.0])), path)
    return path, zyx


@pytest.fixture
def multichannel_nifti(tmp_path) -> tuple[Path, np.ndarray]:
    """A 3-channel NIfTI (vector intent, dims x, y, z, 1, c): (c, z, y, x) once read."""
    czyx = np.stack([blob_volume((16, 24, 20), seed=s) for s in range(3)])
    xyz1c = czyx.transpose(3, 2, 1, 0)[:, :, :, None, :]
    img = nib.Nifti1Image(xyz1c, np.eye(4))
    img.header.set_intent("vector")
    path = tmp_path / "multichannel.nii"
    nib.save(img, path)
    return path, czyx


# ---------------------------------------------------------------------------------
# Understanding OME-Zarr Multiscale
# ---------------------------------------------------------------------------------
def test_seed_pyramid_structure(stores):
    """Pyramid Structure: runs as written."""
    znimg = ZarrNii.from_ome_zarr(stores["brain"])

    available = znimg.get_available_levels()
    shapes = [znimg.get_level(i).darr.shape for i in range(znimg.num_levels)]

    assert available == [0, 1, 2, 3, 4]
    assert shapes == [(64, 96, 96), (32, 48, 48), (16, 24, 24), (8, 12, 12), (4, 6, 6)]
    assert isinstance(znimg.get_level(0).darr, da.Array)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_seed_metadata_inspection(ngff_store, version):
    """Metadata Inspection: runs as written, for NGFF 0.4 and 0.5 alike (deviation 16).

    The shape ratios are floats (``c / n``) and are not the true factors when a shape
    is odd (ceil division); ``voxel_size`` ratios are exact (deviation 13).
    """
    path, _levels = ngff_store(version=version, n_levels=3)
    znimg = ZarrNii.from_ome_zarr(path)

    metadata = znimg.get_ome_zarr_metadata()
    multiscales = metadata.get("multiscales", [])
    factors = []
    for i in range(znimg.num_levels - 1):
        current = znimg.get_level(i)
        next_level = znimg.get_level(i + 1)
        factor = [c / n for c, n in zip(current.darr.shape, next_level.darr.shape)]
        factors.append(factor)

    assert metadata["version"] == version
    assert [d["path"] for d in multiscales[0]["datasets"]] == ["0", "1", "2"]
    assert factors == [[1.0, 2.0, 2.0, 2.0]] * 2  # (c, z, y, x): channels never shrink
    voxel = [znimg.get_level(i).voxel_size for i in range(3)]
    assert voxel == [(1.0, 1.0, 1.0), (2.0, 2.0, 2.0), (4.0, 4.0, 4.0)]


def test_metadata_is_a_copy_and_lists_labels(ngff_store):
    path, _ = ngff_store(version="0.4")
    labels_group = zarr.open_group(str(path / "labels"), mode="w", zarr_format=2)
    labels_group.attrs["labels"] = []
    znimg = ZarrNii.from_ome_zarr(path)
    meta = znimg.get_ome_zarr_metadata()
    meta["multiscales"].clear()
    assert znimg.get_ome_zarr_metadata()["multiscales"]


# ---------------------------------------------------------------------------------
# Creating Multiscale OME-Zarr
# ---------------------------------------------------------------------------------
def test_seed_basic_multiscale_creation(highres_nifti, tmp_path):
    """Basic Multiscale Creation: runs as written (``max_layer=4``: up to levels 0-4,
    deviation 3).

    Automatic factors first make voxels near-isotropic: 0.5 x 0.5 x 1 mm voxels
    shrink only in x and y at the first level.
    """
    path, zyx = highres_nifti
    znimg = ZarrNii.from_nifti(path)
    out = tmp_path / "output_multiscale.zarr"

    znimg.to_ome_zarr(out, max_layer=4, scaling_method="local_mean")

    result = ZarrNii.from_ome_zarr(out)
    assert result.num_levels == 5
    np.testing.assert_array_equal(result.darr.compute(), zyx)
    assert result.voxel_size == (1.0, 0.5, 0.5)
    assert result.get_level(1).voxel_size == (1.0, 1.0, 1.0)
    assert result.get_level(4).voxel_size == (8.0, 8.0, 8.0)


def test_seed_custom_scaling_parameters(highres_nifti, tmp_path):
    """Custom Scaling Parameters: runs, but ``(2, 2, 1)`` does NOT preserve z here.

    Factors follow the array order ``(z, y, x)``; ``(2, 2, 1)`` keeps **x**.  To keep z
    write ``(1, 2, 2)`` (deviation 2).  ``chunks=(128, 128, 64)`` is (z, y, x) too and
    is clipped to each level's shape.
    """
    path, _ = highres_nifti
    znimg = ZarrNii.from_nifti(path)
    out = tmp_path / "custom_multiscale.zarr"

    znimg.to_ome_zarr(
        out,
        max_layer=3,
        scaling_method="local_mean",
        downsample_factors=(2, 2, 1),  # seed comment: "Preserve Z resolution"
        chunks=(128, 128, 64),
    )

    result = ZarrNii.from_ome_zarr(out)
    assert [result.get_level(i).shape for i in range(4)] == [
        (32, 48, 40),
        (16, 24, 40),
        (8, 12, 40),
        (4, 6, 40),
    ]
    assert result.get_level(0).image.levels[0].data.chunks == (32, 48, 40)

    # the right way to keep z
    right = tmp_path / "keep_z.zarr"
    znimg.to_ome_zarr(right, max_layer=2, downsample_factors=(1, 2, 2))
    kept = ZarrNii.from_ome_zarr(right)
    assert [kept.get_level(i).shape[0] for i in range(3)] == [32, 32, 32]


def test_seed_advanced_multiscale_options(highres_nifti, tmp_path):
    """Advanced Multiscale Options: ``zarr.Blosc`` does not exist in zarr 3.

    The block is run with ``numcodecs.Blosc(cname='zstd', clevel=3)`` (deviation 1);
    ``zarr.codecs.BloscCodec`` and names such as ``'blosc-zstd:3'`` work too.
    """
    assert not hasattr(zarr, "Blosc")
    path, _ = highres_nifti
    znimg = ZarrNii.from_nifti(path)
    out = tmp_path / "advanced_multiscale.zarr"

    znimg.to_ome_zarr(
        out,
        max_layer=5,
        scaling_method="local_mean",
        storage_options={
            "compressor": numcodecs.Blosc(cname="zstd", clevel=3),
            "chunks": (256, 256, 128),
        },
        omero_metadata={
            "name": "Brain Dataset",
            "channels": [{"label": "DAPI", "color": "blue"}],
        },
    )

    result = ZarrNii.from_ome_zarr(out)
    meta = result.get_ome_zarr_metadata()
    assert meta["omero"]["channels"][0]["label"] == "DAPI"
    assert meta["omero"]["channels"][0]["color"] == "0000FF"
    assert result.name == "Brain Dataset"
    arr_meta = json.loads((out / "0" / "zarr.json").read_text())
    codecs = json.dumps(arr_meta["codecs"])
    assert "blosc" in codecs and "zstd" in codecs
    assert result.image.levels[0].data.chunks == (32, 48, 40)  # (256, 256, 128) clipped
    assert result.num_levels == 6


# ---------------------------------------------------------------------------------
# Working with Existing Multiscale Data
# ---------------------------------------------------------------------------------
def test_seed_level_selection_and_navigation(stores):
    """Level Selection and Navigation: runs as written."""
    multiscale_img = ZarrNii.from_ome_zarr(stores["brain"])

    full_res = multiscale_img.get_level(0)
    thumbnail = multiscale_img.get_level(-1)
    mid_res = multiscale_img.get_level(2)

    assert full_res.darr.shape == (64, 96, 96)
    assert thumbnail.darr.shape == (4, 6, 6)
    assert mid_res.darr.shape == (16, 24, 24)
    assert thumbnail.level == 4 and thumbnail.voxel_size == (16.0, 16.0, 16.0)
    # mean-downsampled levels sit on the centre of their 2**k blocks
    assert mid_res.origin == (1.5, 1.5, 1.5)
    np.testing.assert_array_equal(full_res.darr.compute(), stores["vol"])


def test_seed_selective_level_loading(stores):
    """Selective Level Loading: runs as written; ``level_range`` is inclusive.

    ``get_level(i)`` indexes the levels held: on ``mid_levels`` (store levels 1-3)
    ``get_level(0)`` is store level 1 (``level_numbers`` maps them; deviation 12).
    """
    low_res_only = ZarrNii.from_ome_zarr(stores["brain"], level=3)
    mid_levels = ZarrNii.from_ome_zarr(stores["brain"], level_range=(1, 3))

    assert low_res_only.num_levels == 1 and low_res_only.shape == (8, 12, 12)
    assert low_res_only.level_numbers == [3]
    assert low_res_only.get_level(0) is low_res_only
    assert low_res_only.get_level(-1) is low_res_only
    with pytest.raises(SelectionError, match="single level"):
        low_res_only.get_level(1)
    assert mid_levels.num_levels == 3 and mid_levels.level_numbers == [1, 2, 3]
    assert mid_levels.get_level(0).shape == (32, 48, 48)
    assert mid_levels.get_level(-1).level == 3
    with pytest.raises(IndexError):
        ZarrNii.from_ome_zarr(stores["brain"], level=7)
    with pytest.raises(SelectionError):
        ZarrNii.from_ome_zarr(stores["brain"], level_range=(3, 1))


# ---------------------------------------------------------------------------------
# Multi-Resolution Processing
# ---------------------------------------------------------------------------------
def test_seed_progressive_analysis(stores):
    """Progressive Analysis: runs as written.

    ``threshold=0.1`` on integer data means 10 % of the data range (deviation 9).
    Masks are carried between levels through physical space (scale + translation).
    """
    multiscale_img = ZarrNii.from_ome_zarr(stores["brain"])

    thumbnail = multiscale_img.get_level(-1)
    rough_mask = thumbnail.create_tissue_mask(threshold=0.1)

    med_res = multiscale_img.get_level(2)
    refined_mask = med_res.refine_mask(rough_mask.upsample_to_level(2))

    full_res = multiscale_img.get_level(0)
    final_result = full_res.apply_refined_mask(refined_mask.upsample_to_level(0))

    thumb = thumbnail.darr.compute()
    lo, hi = int(thumb.min()), int(thumb.max())
    np.testing.assert_array_equal(rough_mask.darr.compute(), thumb > lo + 0.1 * (hi - lo))
    assert rough_mask.image.is_label and rough_mask.dtype == np.uint8
    assert refined_mask.shape == med_res.shape
    assert refined_mask.origin == med_res.origin
    out = final_result.darr.compute()
    vol = stores["vol"]
    assert out.shape == vol.shape and out.dtype == vol.dtype
    kept = out > 0
    np.testing.assert_array_equal(out[kept], vol[kept])
    # the tissue is kept, the background is dropped
    assert out[32, 43, 53] == vol[32, 43, 53] > 1000
    assert out[2, 2, 2] == 0


def test_seed_roi_processing(stores):
    """Region of Interest Processing: runs as written.

    ``2 ** 3`` is right only for isotropic 2x pyramids with aligned voxels (mean
    downsampling, as here).  :meth:`ZarrNii.map_bounds_to_level` uses the real scale
    and translation and is right for any pyramid (deviation 4).  The seed passes one
    (min, max) pair per axis, which ``crop_with_bounding_box`` accepts (deviation 5).
    """
    multiscale_img = ZarrNii.from_ome_zarr(stores["brain"])

    low_res = multiscale_img.get_level(3)
    roi_bounds = low_res.find_tissue_bounds()

    scale_factor = 2**3
    full_res_bounds = [(b[0] * scale_factor, b[1] * scale_factor) for b in roi_bounds]

    full_res = multiscale_img.get_level(0)
    roi_data = full_res.crop_with_bounding_box(*full_res_bounds)

    assert len(roi_bounds) == 3
    assert roi_data.shape == tuple(b - a for a, b in full_res_bounds)
    assert low_res.map_bounds_to_level(roi_bounds, 0) == full_res_bounds
    # coarse voxels only partly in the tissue average below the threshold: the crop
    # misses at most one coarse voxel (8 voxels) of tissue edge on each side
    tissue = np.argwhere(stores["vol"] > 1000)
    assert all(
        lo - 8 <= t.min() and t.max() < hi + 8 for (lo, hi), t in zip(full_res_bounds, tissue.T)
    )
    assert (tissue >= [a for a, _ in full_res_bounds]).all(axis=1).mean() > 0.9
    np.testing.assert_array_equal(
        roi_data.darr.compute(),
        stores["vol"][tuple(slice(a, b) for a, b in full_res_bounds)],
    )
    assert roi_data.origin == tuple(float(a) for a, _ in full_res_bounds)


def test_roi_power_of_two_is_wrong_for_other_pyramids(stores):
    """On a strided pyramid (voxel 0 kept, no half-voxel shift) ``2**3`` is off by half a
    coarse voxel; mapping through physical space covers the coarse box exactly."""
    strided = ZarrNii.from_ome_zarr(stores["strided"])
    low = strided.get_level(3)
    bounds = low.find_tissue_bounds()
    naive = [(a * 8, b * 8) for a, b in bounds]
    mapped = low.map_bounds_to_level(bounds, 0)
    assert mapped != naive
    # physical extent of the coarse box (voxel edges) is inside the mapped box's
    for (a, b), (ma, mb) in zip(bounds, mapped):
        assert ma - 0.5 <= 8 * a - 4 and mb - 0.5 >= 8 * b - 4


# ---------------------------------------------------------------------------------
# Optimization Strategies
# ---------------------------------------------------------------------------------
def test_seed_chunk_size_optimization(stores, ngff_store, tmp_path):
    """Chunk Size Optimization: runs as written; dask chunks are the stored chunks."""
    multiscale_img = ZarrNii.from_ome_zarr(stores["brain"])
    chunks = []
    for level in range(multiscale_img.num_levels):
        level_data = multiscale_img.get_level(level)
        chunks.append(level_data.darr.chunks)

    for level, got in enumerate(chunks):
        stored = multiscale_img.image.levels[level].data.chunks
        assert tuple(c[0] for c in got) == stored

    # sharded (zarr v3): dask chunks are the shards (one task reads one shard)
    vol = stores["vol"][:32, :32, :32]
    path = tmp_path / "sharded.ome.zarr"
    ZarrNii.from_array(vol).to_ome_zarr(path, max_layer=1, chunks=(8, 8, 8), shards=(16, 16, 16))
    sharded = ZarrNii.from_ome_zarr(path)
    assert sharded.darr.chunksize == (16, 16, 16)
    assert sharded.image.levels[0].data.chunks == (8, 8, 8)


def test_seed_memory_efficient_access(stores):
    """Memory-Efficient Access Patterns: ``process_single_block`` is not defined in the
    seed; a trivial one (block maximum) is defined here (deviation 10).

    Iterating ``darr.blocks`` yields one slab of blocks per index of the first axis,
    not one block per chunk; ``darr.blocks.ravel()`` yields single chunks.
    """
    multiscale_img = ZarrNii.from_ome_zarr(stores["brain"], use_dask=True)

    def process_single_block(block):
        return int(block.max().compute())

    def process_blocks(img_level):
        """Process image in memory-efficient blocks"""
        for block in img_level.darr.blocks:
            result = process_single_block(block)
            yield result

    results = list(process_blocks(multiscale_img.get_level(1)))

    level1 = multiscale_img.get_level(1).darr
    assert len(results) == level1.numblocks[0]
    assert max(results) == int(level1.max().compute())
    per_chunk = [process_single_block(b) for b in level1.blocks.ravel()]
    assert len(per_chunk) == math.prod(level1.numblocks)


def test_use_dask_false_gives_the_zarr_array(stores):
    """``use_dask=False``: ``darr`` is the zarr array (deviation 14)."""
    img = ZarrNii.from_ome_zarr(stores["brain"], use_dask=False)
    assert isinstance(img.darr, zarr.Array)
    assert isinstance(img.get_level(2).darr, zarr.Array)
    np.testing.assert_array_equal(img.darr[5:7, 10:12, :4], stores["vol"][5:7, 10:12, :4])
    # processing still works (dask inside)
    assert img.get_level(-1).find_tissue_bounds()


# ---------------------------------------------------------------------------------
# Channel and Time Series Support
# ---------------------------------------------------------------------------------
def test_seed_multi_channel_multiscale(multichannel_nifti, tmp_path):
    """Multi-Channel Multiscale: runs as written, with two notes (deviations 6-8).

    ``multi_channel`` is the one-level NIfTI image: ``to_ome_zarr`` writes a store
    but does not change it, so ``multi_channel.get_level(-1)`` is the image itself
    (full resolution).  Reopen the written store to reach its coarse levels.
    ``get_channel`` drops the channel axis.
    """
    path, czyx = multichannel_nifti
    multi_channel = ZarrNii.from_nifti(path)
    assert multi_channel.shape == (3, 16, 24, 20)
    out = tmp_path / "multichannel_multiscale.zarr"

    multi_channel.to_ome_zarr(
        out,
        max_layer=3,
        omero_metadata={
            "channels": [
                {"label": "DAPI", "color": "blue"},
                {"label": "GFP", "color": "green"},
                {"label": "RFP", "color": "red"},
            ]
        },
    )

    dapi_full = multi_channel.get_level(0).get_channel(0)
    gfp_thumbnail = multi_channel.get_level(-1).get_channel(1)

    assert dapi_full.axes == ("z", "y", "x")
    np.testing.assert_array_equal(dapi_full.darr.compute(), czyx[0])
    assert gfp_thumbnail.shape == (16, 24, 20)  # the NIfTI image has one level

    written = ZarrNii.from_ome_zarr(out)
    assert written.num_levels == 4 and written.channel_labels == ["DAPI", "GFP", "RFP"]
    gfp_coarse = written.get_level(-1).get_channel("GFP")
    assert gfp_coarse.shape == written.get_level(-1).shape[1:]
    assert gfp_coarse.image.channels[0].color == "00FF00"
    # channel selection survives level changes, and the reverse order
    np.testing.assert_array_equal(written.get_channel(1).get_level(0).darr.compute(), czyx[1])
    np.testing.assert_array_equal(written.get_level(0).get_channel(-1).darr.compute(), czyx[2])
    with pytest.raises(SelectionError):
        written.get_channel(3)
    with pytest.raises(SelectionError, match="no channel labelled"):
        written.get_channel("YFP")


def test_from_ome_zarr_channel_and_time_subsets(ngff_store):
    data = ramp((4, 3, 8, 16, 16))
    path, _ = ngff_store(
        version="0.4",
        data=data,
        omero={"channels": [{"label": "a"}, {"label": "b"}, {"label": "c"}]},
    )
    sub = ZarrNii.from_ome_zarr(path, channels=["c", 0], timepoints=[1, 3])
    assert sub.shape == (2, 2, 8, 16, 16) and sub.channel_labels == ["c", "a"]
    np.testing.assert_array_equal(sub.darr.compute(), data[[1, 3]][:, [2, 0]])
    lazy = ZarrNii.from_ome_zarr(path, channels=[1, 2], use_dask=False)
    np.testing.assert_array_equal(np.asarray(lazy.darr[0]), data[0, 1:3])


def test_seed_time_series_multiscale(ngff_store):
    """Time Series Multiscale: runs as written (12 time points, 3 levels)."""
    data = ramp((12, 8, 32, 32))
    path, levels = ngff_store(version="0.5", data=data, axes=(("t", "time", "second"), *ZYX))
    time_series = ZarrNii.from_ome_zarr(path)

    t0_full = time_series.get_level(0).get_timepoint(0)
    t10_mid = time_series.get_level(2).get_timepoint(10)

    level_2_timeseries = [
        time_series.get_level(2).get_timepoint(t) for t in range(time_series.num_timepoints)
    ]

    assert time_series.num_timepoints == 12
    np.testing.assert_array_equal(t0_full.darr.compute(), data[0])
    np.testing.assert_array_equal(t10_mid.darr.compute(), levels[2][10])
    assert len(level_2_timeseries) == 12 and t10_mid.axes == ("z", "y", "x")
    with pytest.raises(SelectionError):
        time_series.get_timepoint(12)


# ---------------------------------------------------------------------------------
# Visualization and Interaction
# ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def brain_for_plots(tmp_path_factory):
    """Big enough for the seed's crop (100, 100, 50)-(200, 200, 60)."""
    path = tmp_path_factory.mktemp("viz") / "brain.zarr"
    vol = blob_volume((208, 208, 64), seed=3, dtype="uint8")
    write_ngff_store(path, version="0.5", data=vol, axes=ZYX, n_levels=3)
    return path, vol


def test_seed_visualization_data(brain_for_plots):
    """Level-Appropriate Visualization, without the plots (matplotlib is optional,
    deviation 15)."""
    path, vol = brain_for_plots
    multiscale_img = ZarrNii.from_ome_zarr(path)

    thumbnail = multiscale_img.get_level(-1)
    overview = thumbnail.darr[thumbnail.darr.shape[0] // 2]
    full_res = multiscale_img.get_level(0)
    roi = full_res.crop_with_bounding_box((100, 100, 50), (200, 200, 60))
    detail = roi.darr[5]

    assert overview.shape == (52, 16)
    assert roi.shape == (100, 100, 10)
    np.testing.assert_array_equal(detail.compute(), vol[105, 100:200, 50:60])


def test_seed_visualization_matplotlib(brain_for_plots, monkeypatch):
    """Level-Appropriate Visualization with matplotlib (Agg), if it is installed."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda: None)
    path, _ = brain_for_plots
    multiscale_img = ZarrNii.from_ome_zarr(path)

    thumbnail = multiscale_img.get_level(-1)
    plt.figure(figsize=(8, 6))
    plt.imshow(thumbnail.darr[thumbnail.darr.shape[0] // 2], cmap="gray")
    plt.title(f"Overview (Level {multiscale_img.num_levels - 1})")
    plt.show()

    full_res = multiscale_img.get_level(0)
    roi = full_res.crop_with_bounding_box((100, 100, 50), (200, 200, 60))
    plt.figure(figsize=(10, 8))
    plt.imshow(roi.darr[5], cmap="gray")
    plt.title("Detailed View (Full Resolution)")
    plt.show()
    plt.close("all")


def test_seed_interactive_exploration(stores, tmp_path):
    """Interactive Exploration: runs as written.

    ``'scaling_factor': 2 ** level`` is a guess that holds for this 2x pyramid only; the
    real factor is the voxel size ratio (deviation 13).
    """

    def create_viewer_pyramid(zarr_path, output_dir):
        """Prepare multiscale data for web viewers"""
        img = ZarrNii.from_ome_zarr(zarr_path)

        viewer_metadata = {
            "levels": [],
            "pixel_size": img.voxel_size,
            "shape": img.darr.shape,
        }

        for level in range(img.num_levels):
            level_img = img.get_level(level)
            viewer_metadata["levels"].append(
                {
                    "level": level,
                    "shape": level_img.darr.shape,
                    "scaling_factor": 2**level,
                }
            )

        return viewer_metadata

    meta = create_viewer_pyramid(stores["brain"], tmp_path)
    assert meta["pixel_size"] == (1.0, 1.0, 1.0) and meta["shape"] == (64, 96, 96)
    img = ZarrNii.from_ome_zarr(stores["brain"])
    for entry in meta["levels"]:
        real = img.get_level(entry["level"]).voxel_size[0] / img.voxel_size[0]
        assert real == entry["scaling_factor"]


# ---------------------------------------------------------------------------------
# Best Practices: storage
# ---------------------------------------------------------------------------------
def test_seed_storage_considerations(stores, capsys):
    """Storage Considerations: runs, but measures nothing on zarr v3 or nested v2 stores.

    It lists only the files directly inside each level folder: chunks live in
    sub-folders (``c/0/0/0`` in v3, ``0/0/0`` in nested v2), so it reports the
    metadata file alone.  ``ZarrNii.storage_report()`` walks the folders (deviation 11).
    """

    def analyze_multiscale_storage(zarr_path):
        """Analyze storage usage per level"""
        total_size = 0
        level_sizes = []

        for level in range(len(os.listdir(zarr_path))):
            level_path = os.path.join(zarr_path, str(level))
            if os.path.exists(level_path):
                size = sum(
                    os.path.getsize(os.path.join(level_path, f))
                    for f in os.listdir(level_path)
                    if os.path.isfile(os.path.join(level_path, f))
                )
                level_sizes.append(size)
                total_size += size
                print(f"Level {level}: {size / (1024**3):.2f} GB")

        print(f"Total storage: {total_size / (1024**3):.2f} GB")
        return level_sizes

    seed_sizes = analyze_multiscale_storage(stores["brain"])
    assert "Total storage" in capsys.readouterr().out

    rows = ZarrNii.from_ome_zarr(stores["brain"]).storage_report()
    metadata_only = [
        (Path(stores["brain"]) / str(i) / "zarr.json").stat().st_size for i in range(5)
    ]
    assert seed_sizes == metadata_only
    real = [r.bytes_on_disk for r in rows[:-1]]
    assert all(r > 0 for r in real) and real[0] > 10 * metadata_only[0]
    assert [r.n_files for r in rows[:-1]] == [2 * 3 * 3, 1 * 2 * 2, 1, 1, 1]
    assert rows[-1].path == "total" and rows[-1].bytes_on_disk == sum(real)


# ---------------------------------------------------------------------------------
# Integration with Other Tools
# ---------------------------------------------------------------------------------
def test_seed_napari_integration(stores):
    """Napari Integration: the layer is made on napari's Qt-free ViewerModel here (the
    seed's ``napari.Viewer()`` needs a screen; deviation 15)."""
    napari = pytest.importorskip("napari")
    from napari.components import ViewerModel

    assert napari is not None
    multiscale_img = ZarrNii.from_ome_zarr(stores["brain"])
    pyramid_data = [multiscale_img.get_level(i).darr for i in range(multiscale_img.num_levels)]

    viewer = ViewerModel()
    layer = viewer.add_image(pyramid_data, multiscale=True, name="Multiscale Brain")

    assert layer.multiscale and len(layer.data) == 5
    # scale/translate would place the levels correctly:
    assert [multiscale_img.get_level(i).voxel_size[0] for i in range(5)] == [1, 2, 4, 8, 16]


def test_seed_bigdataviewer_export(stores, tmp_path):
    """BigDataViewer/ImageJ Integration: runs as written when h5py is installed
    (an optional dependency, deviation 17)."""
    h5py = pytest.importorskip("h5py")
    multiscale_img = ZarrNii.from_ome_zarr(stores["brain"])
    xml_path, h5_path = tmp_path / "output.xml", tmp_path / "output.h5"

    multiscale_img.to_bdv_format(str(xml_path), str(h5_path))

    with h5py.File(h5_path, "r") as f:
        np.testing.assert_array_equal(
            f["s00/resolutions"][:], [[1, 1, 1], [2, 2, 2], [4, 4, 4], [8, 8, 8], [16, 16, 16]]
        )
        assert f["s00/subdivisions"].shape == (5, 3)
        cells = f["t00000/s00/0/cells"]
        assert cells.dtype == np.int16 and cells.shape == (64, 96, 96)
        np.testing.assert_array_equal(cells[:].view(np.uint16), stores["vol"])
        assert f["t00000/s00/4/cells"].shape == (4, 6, 6)
    root = ET.parse(xml_path).getroot()
    assert root.tag == "SpimData"
    assert root.find("SequenceDescription/ImageLoader/hdf5").text == "output.h5"
    assert root.find(".//ViewSetup/size").text == "96 96 64"
    affine = [float(v) for v in root.find(".//ViewRegistration//affine").text.split()]
    assert affine == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]


def test_bdv_export_without_h5py(stores, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    img = ZarrNii.from_ome_zarr(stores["brain"], level=-1)
    with pytest.raises(ZarrNiiError, match=r"napari-zarrnii\[bdv\]") as info:
        img.to_bdv_format(tmp_path / "x.xml", tmp_path / "x.h5")
    assert isinstance(info.value, ImportError)
    assert not (tmp_path / "x.h5").exists()


# ---------------------------------------------------------------------------------
# the rest of the API
# ---------------------------------------------------------------------------------
def test_from_array_geometry_and_repr():
    data = np.zeros((2, 4, 6, 8), np.uint8)
    img = ZarrNii.from_array(
        data,
        voxel_size=(2.0, 0.5, 0.25),
        origin=(10.0, 0.0, -1.0),
        axes="czyx",
        channel_labels=["a", "b"],
        name="x",
    )
    assert img.axes == ("c", "z", "y", "x") and img.dims == ["c", "z", "y", "x"]
    assert img.voxel_size == (2.0, 0.5, 0.25) and img.origin == (10.0, 0.0, -1.0)
    np.testing.assert_array_equal(
        img.affine, [[2, 0, 0, 10], [0, 0.5, 0, 0], [0, 0, 0.25, -1], [0, 0, 0, 1]]
    )
    assert img.units == ("micrometer",) * 3 and img.channel_labels == ["a", "b"]
    assert "czyx" in repr(img) and "in memory" in repr(img)
    meta = img.get_ome_zarr_metadata()
    assert meta["multiscales"][0]["axes"][0]["name"] == "c"
    with pytest.raises(ValueError, match="spatial axis"):
        ZarrNii.from_array(data, axes="czyx", voxel_size=(1, 1))


def test_affine_includes_world_affine_of_oblique_nifti(tmp_path):
    theta = np.deg2rad(30)
    rot = np.array(
        [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]
    )
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([2.0, 2.0, 3.0])
    aff[:3, 3] = [5, 6, 7]
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), aff), tmp_path / "o.nii")
    img = ZarrNii.from_nifti(tmp_path / "o.nii")
    assert img.image.world_affine is not None
    # voxel (z, y, x) -> physical (S, A, R) == reversed RAS of NIfTI voxel (x, y, z)
    for zyx in [(0, 0, 0), (1, 2, 3), (5, 4, 3)]:
        ras = aff @ [zyx[2], zyx[1], zyx[0], 1]
        np.testing.assert_allclose(img.affine @ [*zyx, 1], [*ras[:3][::-1], 1], atol=1e-9)


def test_crop_with_bounding_box_forms(stores):
    img = ZarrNii.from_ome_zarr(stores["brain"])
    a = img.crop_with_bounding_box((1, 2, 3), (5, 6, 7))
    b = img.crop_with_bounding_box((1, 5), (2, 6), (3, 7))
    c = img.crop_with_bounding_box([(1, 5), (2, 6), (3, 7)])
    d = img.crop_with_bounding_box(bbox_min=(1, 2, 3), bbox_max=(5, 6, 7))
    e = img.crop(bbox_min=np.array([1, 2, 3]), bbox_max=np.array([5, 6, 7]))
    f = img.crop_physical((0.5, 1.5, 2.5), (4.5, 5.5, 6.5))
    for crop in (a, b, c, d, e, f):
        assert crop.shape == (4, 4, 4) and crop.origin == (1.0, 2.0, 3.0)
    with pytest.raises(BoxError):
        img.crop_with_bounding_box((1, 2), (3, 4))
    with pytest.raises(BoxError, match="does not overlap"):
        img.crop_with_bounding_box((100, 0, 0), (120, 5, 5))
    clipped = img.crop_with_bounding_box((60, 90, 90), (80, 100, 100))
    assert clipped.shape == (4, 6, 6)


def test_crop_with_bounding_box_2d_ambiguity(ngff_store):
    path, _levels = ngff_store(
        version="0.4",
        data=ramp((20, 30)),
        axes=(("y", "space", None), ("x", "space", None)),
        n_levels=1,
    )
    img = ZarrNii.from_ome_zarr(path)
    assert img.crop_with_bounding_box((5, 2), (10, 20)).shape == (5, 18)  # pairs only valid
    assert img.crop_with_bounding_box((2, 5), (10, 8)).shape == (8, 3)  # corners only valid
    with pytest.raises(BoxError, match="ambiguous"):
        img.crop_with_bounding_box((1, 2), (3, 4))
    assert img.crop(bbox_min=(1, 2), bbox_max=(3, 4)).shape == (2, 2)


def test_find_tissue_bounds_without_tissue():
    img = ZarrNii.from_array(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(NoTissueError):
        img.find_tissue_bounds(threshold=10)


def test_to_nifti_round_trip(stores, tmp_path):
    img = ZarrNii.from_ome_zarr(stores["brain"]).get_level(2)
    out = img.to_nifti(tmp_path / "l2.nii.gz")
    back = ZarrNii.from_nifti(out)
    np.testing.assert_array_equal(back.darr.compute(), img.darr.compute())
    np.testing.assert_allclose(back.affine, img.affine)


def test_storage_report_layouts(ngff_store, tmp_path):
    for version in ("0.4", "0.5"):
        path, _levels = ngff_store(version=version)
        rows = storage_report(ZarrNii.from_ome_zarr(path).image)
        assert [r.n_files for r in rows[:-1]] == [2 * 1 * 2 * 2, 2, 2]
        assert rows[0].as_dict()["shape"] == [2, 16, 32, 32]
        assert all(r.bytes_on_disk and r.compression_ratio for r in rows)
    mem = ZarrNii.from_array(np.zeros((4, 4, 4), np.uint8)).storage_report()
    assert mem[0].bytes_on_disk is None and mem[-1].compression_ratio is None


def test_no_napari_or_qt_imported_by_the_api():
    code = (
        "import sys\n"
        "import napari_zarrnii._zarrnii, napari_zarrnii._cli\n"
        "import napari_zarrnii.core.mask, napari_zarrnii.core.roi\n"
        "import napari_zarrnii.core.storage, napari_zarrnii.core.export\n"
        "from napari_zarrnii import ZarrNii\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui')]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bdv_export_channels_and_time(tmp_path):
    h5py = pytest.importorskip("h5py")
    data = ramp((3, 2, 4, 6, 8))
    img = ZarrNii.from_array(
        data,
        voxel_size=(2.0, 1.0, 0.5),
        origin=(1.0, 2.0, 3.0),
        axes="tczyx",
        channel_labels=["a", "b"],
    )
    xml_path, h5_path = img.to_bdv_format(tmp_path / "t.xml", tmp_path / "t.h5")
    with h5py.File(h5_path, "r") as f:
        for t in range(3):
            for c in range(2):
                cells = f[f"t{t:05d}/s{c:02d}/0/cells"][:]
                np.testing.assert_array_equal(cells.view(np.uint16), data[t, c])
    root = ET.parse(xml_path).getroot()
    assert root.find(".//Timepoints/last").text == "2"
    assert len(root.findall(".//ViewRegistration")) == 6
    assert root.find(".//ViewSetup/voxelSize/size").text == "0.5 1 2"
    affine = [float(v) for v in root.find(".//ViewRegistration//affine").text.split()]
    assert affine == [0.5, 0, 0, 3, 0, 1, 0, 2, 0, 0, 2, 1]
    with pytest.raises(FileExistsError):
        img.to_bdv_format(xml_path, h5_path)
