"""OME-NGFF 0.6 in a real napari viewer: world positions from ``layer.data_to_world``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_zarrnii._layers import image_to_layer_data
from napari_zarrnii.core.omezarr import read_ome_zarr

from .conftest import ramp
from .ngff06 import io, world_point, write_ngff06_store

pytestmark = pytest.mark.gui


def test_06_store_in_the_viewer(make_napari_viewer, tmp_path):
    a = math.radians(25)
    chain = {
        "type": "sequence",
        "transformations": [
            {
                "type": "rotation",
                "rotation": [
                    [1, 0, 0],
                    [0, math.cos(a), -math.sin(a)],
                    [0, math.sin(a), math.cos(a)],
                ],
            },
            {"type": "translation", "translation": [-5.0, 10.0, 2.5]},
        ],
    }
    world = {
        "name": "world",
        "axes": [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"],
    }
    path, levels, ms = write_ngff06_store(
        tmp_path / "rotated.ome.zarr",
        data=ramp((8, 32, 32)),
        scale=(2.0, 0.5, 0.25),
        translation=(1.0, 2.0, 3.0),
        systems=[world],
        transforms=[{**chain, **io("intrinsic", "world")}],
    )
    viewer = make_napari_viewer()
    # the same store in its intrinsic system: scale and translation only
    image = read_ome_zarr(path, coordinate_system="intrinsic")
    (data, kwargs, _), *_ = image_to_layer_data(image)
    plain = viewer.add_image(data, **kwargs)
    assert plain.multiscale and len(plain.data) == 2
    np.testing.assert_allclose(plain.data_to_world((1, 2, 3)), world_point(ms, 0, (1, 2, 3)))
    np.testing.assert_array_equal(np.asarray(plain.data[1][3]), levels[1][3])

    # drag and drop: where the author placed it, the "world" system (napari rotates)
    (layer,) = viewer.open(str(path), plugin="napari-zarrnii")
    assert not np.allclose(layer.affine.affine_matrix, np.eye(4))
    for index in [(0, 0, 0), (1, 2, 3), (7, 31, 0), (4, 16, 31)]:
        expected = world_point(ms, 0, index, [chain])
        np.testing.assert_allclose(layer.data_to_world(index), expected, atol=1e-9)
    assert layer.metadata["napari_zarrnii"]["ngff_version"] == "0.6"


def test_oblique_nifti_saved_as_06_opens_where_the_nifti_is(make_napari_viewer, tmp_path):
    import nibabel as nib
    import npe2

    a = math.radians(20)
    affine = np.array(
        [
            [0.8 * math.cos(a), -0.9 * math.sin(a), 0.0, -12.0],
            [0.8 * math.sin(a), 0.9 * math.cos(a), 0.0, 7.5],
            [0.0, 0.0, 1.5, 3.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    values = np.random.default_rng(0).permutation(10 * 12 * 6).astype(np.int16)
    nib.save(nib.Nifti1Image(values.reshape(10, 12, 6), affine), tmp_path / "obl.nii.gz")
    viewer = make_napari_viewer()
    (source,) = viewer.open(str(tmp_path / "obl.nii.gz"), plugin="napari-zarrnii")
    manifest = npe2.PluginManager.instance().get_manifest("napari-zarrnii")
    (writer,) = [w for w in manifest.contributions.writers if w.command.endswith("_06")]
    out = tmp_path / "obl.ome.zarr"
    assert viewer.layers.save(str(out), plugin="napari-zarrnii", _writer=writer) == [str(out)]
    (reopened,) = viewer.open(str(out), plugin="napari-zarrnii")
    level0 = reopened.data[0] if reopened.multiscale else reopened.data
    np.testing.assert_array_equal(np.asarray(level0[...]), np.asarray(source.data))
    for index in [(0, 0, 0), (5, 11, 9), (3, 4, 5)]:
        np.testing.assert_allclose(
            reopened.data_to_world(index), source.data_to_world(index), atol=1e-9
        )
