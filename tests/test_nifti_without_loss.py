"""NIfTI without loss: 4-D channels, oblique volumes in OME-Zarr, channel metadata, 2-D arrays."""

from __future__ import annotations

import logging
import math

import nibabel as nib
import numpy as np
import pytest

from napari_zarrnii import ChannelCountError, NiftiError, ZarrNii
from napari_zarrnii.core.io import open_image, save_image
from napari_zarrnii.core.model import Axis, Level, MultiscaleImage
from napari_zarrnii.core.oblique import axis_aligned_approximation
from napari_zarrnii.core.omezarr import read_ome_zarr

from .conftest import ramp


def _save(path, data, affine=None, intent=None):
    img = nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]) if affine is None else affine)
    if intent is not None:
        img.header.set_intent(intent)
    nib.save(img, path)
    return path


# -- 4-D: time by default, channels on request ------------------------------------------------
def test_fourth_dimension_is_time_by_default(tmp_path):
    data = ramp((4, 5, 6, 3), "int16")
    path = _save(tmp_path / "fmri.nii.gz", data)
    image = open_image(path)
    assert image.axis_names == ("t", "z", "y", "x")
    assert image.axes[0].type == "time" and image.num_channels == 1


@pytest.mark.parametrize(
    "opener",
    [
        lambda p: open_image(p, fourth_axis="channel"),
        lambda p: ZarrNii.from_nifti(p, fourth_axis="channel").image,
        lambda p: ZarrNii.open(p, fourth_axis="channel").image,
    ],
)
def test_fourth_dimension_read_as_channels(tmp_path, opener):
    data = ramp((4, 5, 6, 3), "int16")
    path = _save(tmp_path / "tissues.nii.gz", data)
    image = opener(path)
    assert image.axis_names == ("c", "z", "y", "x")
    assert image.axes[0].type == "channel" and image.num_channels == 3
    assert image.time_axis is None
    values = np.asarray(image.levels[0].data)
    for c in range(3):
        # array axes (z, y, x) = NIfTI (k, j, i) for this RAS-aligned file
        np.testing.assert_array_equal(values[c], data[..., c].transpose(2, 1, 0))
    assert image.attrs["nifti"]["fourth_axis"] == "channel"
    assert any("dimension 4" in note for note in image.notes)


def test_channels_from_dimension_four_survive_ome_zarr(tmp_path):
    data = ramp((4, 5, 6, 2), "uint16")
    path = _save(tmp_path / "two.nii", data)
    znii = ZarrNii.from_nifti(path, fourth_axis="channel")
    out = znii.to_ome_zarr(
        tmp_path / "two.ome.zarr",
        max_layer=1,
        omero_metadata={"channels": [{"label": "T1"}, {"label": "T2"}]},
    )
    back = ZarrNii.from_ome_zarr(out)
    assert back.axes == ("c", "z", "y", "x") and back.channel_labels == ["T1", "T2"]
    np.testing.assert_array_equal(back.get_channel("T2").darr.compute(), data[..., 1].T)


def test_fifth_dimension_vector_is_channels_either_way(tmp_path):
    data = ramp((4, 5, 6, 1, 3), "float32")
    path = _save(tmp_path / "warp.nii.gz", data, intent="vector")
    for fourth in ("time", "channel"):
        image = open_image(path, fourth_axis=fourth)
        assert image.axis_names == ("c", "z", "y", "x")
        assert image.attrs["nifti"]["intent"] == "vector"


def test_channel_fourth_axis_refuses_a_vector_fifth_dimension(tmp_path):
    path = _save(tmp_path / "tv.nii.gz", ramp((3, 3, 3, 2, 3), "int16"), intent="vector")
    assert open_image(path).axis_names == ("t", "c", "z", "y", "x")
    with pytest.raises(NiftiError, match=r"tv\.nii\.gz.*dimension 5"):
        open_image(path, fourth_axis="channel")
    with pytest.raises(ValueError, match="fourth_axis"):
        open_image(path, fourth_axis="colour")
    with pytest.raises(TypeError, match="fourth_axis"):
        ZarrNii.open(path, level=1)


# -- channel metadata must describe every channel -----------------------------------------------
def test_omero_metadata_of_the_wrong_length_is_refused_before_writing(tmp_path):
    znii = ZarrNii.from_array(ramp((2, 4, 8, 8)), axes="czyx", name="cells")
    dest = tmp_path / "out.ome.zarr"
    with pytest.raises(ChannelCountError) as info:
        znii.to_ome_zarr(dest, max_layer=1, omero_metadata={"channels": [{"label": "DAPI"}]})
    message = str(info.value)
    assert "omero_metadata" in message and "1 channel" in message and "has 2" in message
    assert isinstance(info.value, ValueError)
    assert not dest.exists() and not list(tmp_path.iterdir())  # nothing written, not even aside
    with pytest.raises(ChannelCountError, match=r"^omero: .*3 channel.*has 2"):
        save_image(znii.image, dest, omero={"channels": [{}, {}, {}]}, max_layer=1)
    assert not list(tmp_path.iterdir())
    one = ZarrNii.from_array(ramp((4, 8, 8)))
    with pytest.raises(ChannelCountError, match="no channel axis"):
        one.to_ome_zarr(dest, omero_metadata={"channels": [{"label": "a"}, {"label": "b"}]})
    # the right length, as a tuple, is written
    out = znii.to_ome_zarr(
        dest, max_layer=1, omero_metadata={"channels": ({"label": "A"}, {"label": "B"})}
    )
    assert read_ome_zarr(out).channel_infos()[1].label == "B"


# -- oblique volumes keep their position in OME-Zarr 0.4/0.5 --------------------------------
ANGLE = 12.0
ORIGIN = (60.0, -40.0, -30.0)  # RAS mm of voxel (0, 0, 0)
SHAPE = (20, 24, 16)  # i, j, k
ZOOMS = (1.0, 1.2, 2.0)


def _rotation_about(axis, degrees):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    x, y, z = axis
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) * c + s * k + (1 - c) * np.outer(axis, axis)


def _oblique_nifti(path):
    affine = np.eye(4)
    affine[:3, :3] = _rotation_about((0.3, 0.2, 1.0), ANGLE) @ np.diag(ZOOMS)
    affine[:3, 3] = ORIGIN
    return _save(path, ramp(SHAPE, "int16"), affine), affine


def _world(image, level, idx):
    """Exact world (z, y, x) = (S, A, R) of array index ``idx`` of a model level."""
    lvl = image.levels[level]
    position = np.asarray(lvl.translation) + np.asarray(lvl.scale) * np.asarray(idx, float)
    if image.world_affine is None:
        return position
    return (image.world_affine @ np.append(position, 1.0))[:3]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_oblique_nifti_keeps_its_place_in_ome_zarr(tmp_path, version, caplog):
    path, affine = _oblique_nifti(tmp_path / "head.nii.gz")
    before = open_image(path)
    assert before.world_affine is not None
    n = np.array(before.shape, float)
    centre = (n - 1) / 2
    # the file's own centre, from the NIfTI affine (RAS read backwards)
    ras_centre = (affine @ np.append((np.array(SHAPE) - 1) / 2, 1.0))[:3]
    np.testing.assert_allclose(_world(before, 0, centre), ras_centre[::-1], atol=1e-4)
    with caplog.at_level(logging.WARNING):
        out = ZarrNii.from_nifti(path).to_ome_zarr(
            tmp_path / f"head{version}.ome.zarr", max_layer=1, ngff_version=version
        )
    after = read_ome_zarr(out)
    assert after.world_affine is None and after.ngff_version == version
    voxel = np.array(before.levels[0].scale)
    np.testing.assert_allclose(after.levels[0].scale, voxel, rtol=1e-6)  # the voxel sizes
    # the centre of the volume stays at the same world point (well within a voxel)
    shift = np.linalg.norm(_world(after, 0, centre) - _world(before, 0, centre))
    assert shift < 1e-3 * voxel.min()
    # every corner moves no further than the dropped rotation moves it about the centre
    bound = 2 * math.sin(math.radians(ANGLE) / 2)
    for corner in np.ndindex(2, 2, 2):
        idx = np.array(corner) * (n - 1)
        moved = np.linalg.norm(_world(after, 0, idx) - _world(before, 0, idx))
        reach = np.linalg.norm((idx - centre) * voxel)
        assert moved <= bound * reach + 1e-3, (corner, moved, bound * reach)
    # a coarser level sits over the same place too
    n1 = np.array(after.levels[1].shape, float)
    centre1 = _world(after, 1, (n1 - 1) / 2)
    assert np.linalg.norm(centre1 - _world(before, 0, centre)) < voxel.max()
    # what was dropped is said, in degrees, with the axes
    (record,) = [r for r in caplog.records if "stores no rotation" in r.getMessage()]
    text = record.getMessage()
    assert f"{ANGLE:.1f} degrees" in text and "(z, y, x)" in text and "centre" in text
    assert f"OME-NGFF {version}" in text


def test_without_the_approximation_the_centre_would_move(tmp_path):
    path, _ = _oblique_nifti(tmp_path / "head.nii.gz")
    image = open_image(path)
    centre = (np.array(image.shape, float) - 1) / 2
    naive = image.replace(world_affine=None)  # scale and translation written as they are
    assert np.linalg.norm(_world(naive, 0, centre) - _world(image, 0, centre)) > 50.0
    fixed = axis_aligned_approximation(image, "0.5")
    assert np.linalg.norm(_world(fixed, 0, centre) - _world(image, 0, centre)) < 1e-6
    assert any("stores no rotation" in note for note in fixed.notes)


def test_versions_that_store_affines_keep_the_image_and_offsets_fold_exactly():
    axes = tuple(Axis(n, "space", "millimeter") for n in "zyx")
    data = np.zeros((4, 6, 8), np.uint8)
    shifted = np.eye(4)
    shifted[:3, 3] = (5.0, -2.0, 7.5)
    image = MultiscaleImage(
        axes, [Level("0", data, (1.0, 2.0, 0.5), (0.0, 1.0, 0.0))], world_affine=shifted
    )
    assert axis_aligned_approximation(image, "0.6") is image  # 0.6 writes the affine itself
    folded = axis_aligned_approximation(image, "0.4")
    assert folded.world_affine is None and folded.notes == []  # nothing was dropped
    assert folded.levels[0].translation == pytest.approx((5.0, -1.0, 7.5))
    assert folded.levels[0].scale == (1.0, 2.0, 0.5)


# -- arrays with any number of spatial axes --------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "axes", "n_space"),
    [((8, 9), "yx", 2), ((3, 8, 9), "cyx", 2), ((2, 4, 8, 9), "tzyx", 3), ((5,), "x", 1)],
)
def test_from_array_defaults_follow_the_spatial_axes(tmp_path, shape, axes, n_space):
    znii = ZarrNii.from_array(ramp(shape), axes=axes)
    assert znii.voxel_size == (1.0,) * n_space
    assert znii.origin == (0.0,) * n_space
    if n_space >= 2:
        out = znii.to_ome_zarr(tmp_path / "a.ome.zarr", max_layer=1)
        np.testing.assert_array_equal(ZarrNii.from_ome_zarr(out).darr.compute(), ramp(shape))


def test_from_array_still_checks_given_sizes():
    with pytest.raises(ValueError, match="need 2 values"):
        ZarrNii.from_array(ramp((8, 9)), axes="yx", voxel_size=(1.0, 1.0, 1.0))
    znii = ZarrNii.from_array(ramp((8, 9)), axes="yx", voxel_size=np.array([0.5, 0.25]))
    assert znii.voxel_size == (0.5, 0.25)
