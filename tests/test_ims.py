"""Imaris (.ims) files: levels, pixels, channels, time, geometry, laziness, napari."""

from __future__ import annotations

import gc
import pickle
import sys
from pathlib import Path

import h5py
import npe2
import numpy as np
import pytest

import napari_zarrnii
from napari_zarrnii import MissingDependencyError, NotAnImageError, ZarrNii
from napari_zarrnii._reader import get_reader
from napari_zarrnii.core.ims import ImsLevelArray, read_ims
from napari_zarrnii.core.io import FORMATS, format_of, open_image

from .ims_files import PAD, chars, voxels, write_ims

MANIFEST = Path(napari_zarrnii.__file__).parent / "napari.yaml"
SHAPE = (6, 20, 30)  # z, y, x of level 0
VOXEL = (2.0, 0.5, 0.25)  # z, y, x
EXT_MIN = (-10.0, 5.0, 100.0)  # z, y, x: outer edge of the first voxel


@pytest.fixture
def ims(tmp_path):
    path = tmp_path / "cells.ims"
    levels = write_ims(path, shape=SHAPE, voxel_size=VOXEL, ext_min=EXT_MIN)
    return path, levels


def test_the_format_table_knows_imaris(ims):
    path, _ = ims
    assert format_of(path) is FORMATS["ims"]
    assert format_of(str(path).upper().replace(".IMS", ".ims")).key == "ims"
    assert FORMATS["ims"].requires == ("h5py", "ims")


def test_every_level_every_channel_and_time_point(ims):
    path, levels = ims
    image = open_image(path)
    assert image.axis_names == ("t", "c", "z", "y", "x")
    assert [a.type for a in image.axes] == ["time", "channel", "space", "space", "space"]
    assert image.num_levels == 3
    # real sizes (n // 2 per level), not the chunk-padded dataset shapes
    assert [lvl.shape for lvl in image.levels] == [
        (2, 2, 6, 20, 30),
        (2, 2, 3, 10, 15),
        (2, 2, 1, 5, 7),
    ]
    with h5py.File(path, "r") as h5:
        padded = h5["DataSet/ResolutionLevel 1/TimePoint 0/Channel 0/Data"].shape
    assert padded == (4, 16, 16)  # the file is padded: the reader must cut
    for r, expected in enumerate(levels):
        got = np.asarray(image.levels[r].data)
        np.testing.assert_array_equal(got, expected)
        assert PAD not in got
    # indexing reads the voxels of one time point and channel, strided or not
    level0 = image.levels[0].data
    np.testing.assert_array_equal(level0[1, 0, 3], voxels(1, 0, SHAPE)[3])
    np.testing.assert_array_equal(
        level0[0, 1, :, 2:17:5, ::-4], voxels(0, 1, SHAPE)[:, 2:17:5, ::-4]
    )
    assert image.dtype == np.uint16
    assert level0.chunks == (1, 1, 4, 8, 16)


def test_channels_keep_their_names_colours_and_display_range(ims):
    path, _ = ims
    dapi, gfp = open_image(path).channel_infos()
    assert (dapi.label, dapi.color) == ("DAPI", "0000FF")
    assert (gfp.label, gfp.color) == ("GFP", "00FF00")
    assert (dapi.window.start, dapi.window.end) == (10.0, 900.0)
    assert (dapi.window.min, dapi.window.max) == (0.0, 65535.0)  # uint16 range
    assert gfp.window is None  # no ColorRange: no window invented


def test_time_step_comes_from_the_time_stamps(ims):
    path, _ = ims
    image = open_image(path)
    assert image.axes[0].unit == "second"
    assert all(lvl.scale[0] == 30.0 for lvl in image.levels)
    assert image.attrs["imaris"]["time_points"][1] == "2024-01-01 10:00:30.000"


def test_uneven_time_stamps_count_time_points(tmp_path):
    path = tmp_path / "uneven.ims"
    write_ims(
        path,
        n_times=3,
        time_stamps=("2024-01-01 10:00:00", "2024-01-01 10:00:10", "2024-01-01 10:05:00"),
    )
    image = open_image(path)
    assert image.levels[0].scale[0] == 1.0 and image.axes[0].unit is None
    assert any("evenly" in note for note in image.notes)


def test_voxel_size_and_origin_place_voxels_where_imaris_does(ims):
    path, _ = ims
    image = open_image(path)
    level0 = image.levels[0]
    assert level0.scale[2:] == VOXEL
    assert all(a.unit == "micrometer" for a in image.axes[2:])
    # world position of a voxel centre: ExtMin (outer edge) + (index + 1/2) * voxel size
    for idx in [(0, 0, 0), (5, 19, 29), (2, 7, 11)]:
        world = [t + i * s for t, i, s in zip(level0.translation[2:], idx, level0.scale[2:])]
        expected = [lo + (i + 0.5) * v for lo, i, v in zip(EXT_MIN, idx, VOXEL)]
        np.testing.assert_allclose(world, expected)
    # every level covers the extent of the file: ExtMin .. ExtMax
    ext_max = [lo + n * v for lo, n, v in zip(EXT_MIN, SHAPE, VOXEL)]
    for r in range(image.num_levels):
        extent = image.physical_extent(r)[2:]
        np.testing.assert_allclose([e[0] for e in extent], EXT_MIN)
        np.testing.assert_allclose([e[1] for e in extent], ext_max)
    # a coarse voxel sits over the fine voxels it was made from
    level1 = image.levels[1]
    centre = [t + 1 * s for t, s in zip(level1.translation[2:], level1.scale[2:])]
    fine = [lo + v * 3 for lo, v in zip(EXT_MIN, VOXEL)]  # voxels 2 and 3 meet there
    np.testing.assert_allclose(centre, fine)


def test_a_single_channel_single_time_point_plane_keeps_only_y_x(tmp_path):
    path = tmp_path / "plane.ims"
    levels = write_ims(
        path, shape=(1, 16, 24), n_channels=1, n_times=1, n_levels=2, names=("Brightfield",)
    )
    image = open_image(path)
    assert image.axis_names == ("y", "x")
    assert [lvl.shape for lvl in image.levels] == [(16, 24), (8, 12)]
    np.testing.assert_array_equal(np.asarray(image.levels[1].data), levels[1][0, 0, 0])
    (channel,) = image.channel_infos()
    assert (channel.label, channel.color) == ("Brightfield", "0000FF")


def test_without_image_size_attributes_level_0_uses_the_image_info(tmp_path):
    path = tmp_path / "old.ims"
    levels = write_ims(path, image_size_attrs=False)
    image = open_image(path)
    assert image.levels[0].shape == levels[0].shape  # from DataSetInfo/Image X/Y/Z
    np.testing.assert_array_equal(np.asarray(image.levels[0].data), levels[0])
    assert any("ImageSizeX" in note for note in image.notes)


def test_opening_reads_no_voxels_and_closes_the_file(ims, monkeypatch):
    path, levels = ims
    image = read_ims(path)
    source = image.levels[0].data._source
    assert not source.is_open  # described, then closed: nothing held open
    np.testing.assert_array_equal(image.levels[2].data[1, 1, 0, 2], levels[2][1, 1, 0, 2])
    assert source.is_open
    # the file is open read-only: HDF5 refuses to open it for writing meanwhile
    with pytest.raises(OSError):
        h5py.File(path, "r+")
    del image, source
    gc.collect()
    with h5py.File(path, "r+") as h5:  # closed when the arrays went
        assert "DataSet" in h5


def test_level_arrays_pickle_by_path(ims):
    path, levels = ims
    array = open_image(path).levels[1].data
    assert isinstance(array, ImsLevelArray)
    np.asarray(array[0, 0, 0])  # open the file in this copy
    copy = pickle.loads(pickle.dumps(array))
    assert copy.shape == array.shape and copy.chunks == array.chunks
    np.testing.assert_array_equal(np.asarray(copy), levels[1])


def test_missing_h5py_names_the_extra(ims, monkeypatch):
    path, _ = ims
    monkeypatch.setitem(sys.modules, "h5py", None)  # `import h5py` now fails
    with pytest.raises(MissingDependencyError, match=r"napari-zarrnii\[ims\]"):
        open_image(path)
    with pytest.raises(MissingDependencyError, match=r"h5py.*napari-zarrnii\[ims\]"):
        read_ims(path)


def test_files_that_are_not_imaris_are_refused(tmp_path):
    text = tmp_path / "notes.ims"
    text.write_text("not hdf5")
    with pytest.raises(NotAnImageError, match=r"notes\.ims"):
        open_image(text)
    other = tmp_path / "other.ims"
    with h5py.File(other, "w") as h5:
        h5.create_dataset("x", data=np.zeros(3))
    with pytest.raises(NotAnImageError, match="no 'DataSet' group"):
        open_image(other)
    with pytest.raises(NotAnImageError, match=r"no such file|cannot open"):
        open_image(tmp_path / "missing.ims", format="ims")


def test_broken_channel_data_is_named(tmp_path):
    path = tmp_path / "broken.ims"
    write_ims(path)
    with h5py.File(path, "a") as h5:
        del h5["DataSet/ResolutionLevel 1/TimePoint 0/Channel 1/Data"]
        h5["DataSet/ResolutionLevel 1/TimePoint 0/Channel 1"].attrs["ImageSizeX"] = chars(15)
    with pytest.raises(NotAnImageError, match="ResolutionLevel 1/TimePoint 0/Channel 1/Data"):
        open_image(path)


@pytest.fixture
def manifest_under_test():
    """napari's plugin manager holding the manifest of the package under test."""
    pm = npe2.PluginManager.instance()
    pm.discover(include_npe1=False)
    installed = pm.get_manifest("napari-zarrnii")
    tested = npe2.PluginManifest.from_file(MANIFEST)
    swap = tested.contributions.readers != installed.contributions.readers
    if swap:  # a checkout whose manifest differs from the installed one
        pm.unregister("napari-zarrnii")
        pm.register(tested)
    yield pm
    if swap:
        pm.unregister("napari-zarrnii")
        pm.register(installed)


def test_npe2_reader_gives_one_multiscale_layer_per_channel(ims, manifest_under_test):
    path, levels = ims
    assert get_reader(str(path)) is not None
    layers = npe2.read([str(path)], stack=False, plugin_name="napari-zarrnii")
    assert [kind for _, _, kind in layers] == ["image", "image"]
    (dapi_data, dapi, _), (gfp_data, gfp, _) = layers
    assert (dapi["name"], gfp["name"]) == ("DAPI", "GFP")
    assert (dapi["colormap"], gfp["colormap"]) == ("blue", "green")
    assert dapi["contrast_limits"] == (10.0, 900.0)
    assert dapi["multiscale"] and len(dapi_data) == 3
    assert [d.shape for d in gfp_data] == [(2, 6, 20, 30), (2, 3, 10, 15), (2, 1, 5, 7)]
    np.testing.assert_array_equal(np.asarray(gfp_data[1][1, 2]), levels[1][1, 1, 2])
    assert dapi["axis_labels"] == ["t", "z", "y", "x"]
    np.testing.assert_allclose(dapi["scale"], (30.0, *VOXEL))
    np.testing.assert_allclose(
        dapi["translate"], (0.0, *(lo + v / 2 for lo, v in zip(EXT_MIN, VOXEL)))
    )


def test_zarrnii_from_ims_and_open(ims, tmp_path):
    path, levels = ims
    znii = ZarrNii.from_ims(path)
    assert znii.num_levels == 3 and znii.axes == ("t", "c", "z", "y", "x")
    assert znii.channel_labels == ["DAPI", "GFP"] and znii.num_timepoints == 2
    assert znii.voxel_size == VOXEL
    np.testing.assert_allclose(znii.origin, [lo + v / 2 for lo, v in zip(EXT_MIN, VOXEL)])
    gfp = znii.get_channel("GFP").get_timepoint(1).get_level(-1)
    np.testing.assert_array_equal(gfp.darr.compute(), levels[2][1, 1])
    opened = ZarrNii.open(path)
    assert opened.shape == znii.shape
    # converting to OME-Zarr keeps pixels, channels and the position of every voxel
    out = znii.to_ome_zarr(tmp_path / "cells.ome.zarr", max_layer=1)
    back = ZarrNii.from_ome_zarr(out)
    np.testing.assert_array_equal(back.darr.compute(), levels[0])
    assert back.channel_labels == ["DAPI", "GFP"]
    np.testing.assert_allclose(back.origin, znii.origin)
    np.testing.assert_allclose(back.voxel_size, znii.voxel_size)


def test_command_line_describes_and_converts_imaris(ims, tmp_path, capsys):
    from napari_zarrnii._cli import main

    path, levels = ims
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "(Imaris, uint16)" in out and "DAPI" in out and "2x2x6x20x30" in out
    dest = tmp_path / "converted.ome.zarr"
    assert main(["convert", str(path), str(dest), "--max-layer", "1"]) == 0
    np.testing.assert_array_equal(np.asarray(open_image(dest).levels[0].data), levels[0])


@pytest.mark.gui
def test_imaris_file_in_the_viewer(make_napari_viewer, ims, manifest_under_test):
    path, levels = ims
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-zarrnii")
    assert [ly.name for ly in layers] == ["DAPI", "GFP"]
    dapi, gfp = layers
    assert dapi.multiscale and len(dapi.data) == 3
    assert dapi.colormap.name == "blue" and gfp.colormap.name == "green"
    assert tuple(dapi.axis_labels) == ("t", "z", "y", "x")
    assert [str(u) for u in dapi.units[1:]] == ["micrometer"] * 3
    # the voxel (t, z, y, x) = (1, 2, 7, 11) is where Imaris puts it
    expected = (30.0, *(lo + (i + 0.5) * v for lo, i, v in zip(EXT_MIN, (2, 7, 11), VOXEL)))
    np.testing.assert_allclose(dapi.data_to_world((1, 2, 7, 11)), expected)
    viewer.dims.set_point(0, 30.0)  # time point 1
    viewer.dims.set_point(1, expected[1])
    np.testing.assert_array_equal(np.asarray(gfp.data[0][1, 2]), levels[0][1, 1, 2])
    assert viewer.screenshot(canvas_only=True).any()
