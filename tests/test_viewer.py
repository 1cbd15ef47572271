"""napari end to end: drag-and-drop equivalents through viewer.open, on a real canvas."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import ramp

pytestmark = pytest.mark.gui


def _omero(*specs):
    return {
        "channels": [
            {
                "label": label,
                "color": color,
                "active": active,
                "window": {"start": 0, "end": 4000, "min": 0, "max": 65535},
            }
            for label, color, active in specs
        ]
    }


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_open_multichannel_pyramid(make_napari_viewer, ngff_store, version):
    data = ramp((2, 8, 64, 64))
    path, levels = ngff_store(
        version=version,
        data=data,
        scale=(1.0, 2.0, 0.5, 0.25),
        translation=(0, 4.0, -2.0, 8.0),
        omero=_omero(("DAPI", "0000FF", True), ("GFP", "00FF00", False)),
    )
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-zarrnii")
    assert [ly.name for ly in layers] == ["DAPI", "GFP"]
    dapi, gfp = layers
    assert dapi.multiscale and len(dapi.data) == 3
    assert dapi.colormap.name == "blue" and gfp.colormap.name == "green"
    assert dapi.visible and not gfp.visible
    assert tuple(dapi.contrast_limits) == (0, 4000)
    np.testing.assert_allclose(dapi.scale, (2.0, 0.5, 0.25))
    np.testing.assert_allclose(dapi.translate, (4.0, -2.0, 8.0))
    assert tuple(dapi.axis_labels) == ("z", "y", "x")
    assert [str(u) for u in dapi.units] == ["micrometer"] * 3
    np.testing.assert_array_equal(np.asarray(gfp.data[1][3, 5:9, 7]), levels[1][1, 3, 5:9, 7])
    assert dapi.metadata["napari_zarrnii"]["source"] == str(path)
    # the world position of a voxel is where NGFF puts it
    assert np.allclose(dapi.data_to_world((1, 2, 3)), (4.0 + 2.0, -2.0 + 1.0, 8.0 + 0.75))


def test_labels_open_as_labels_layer(make_napari_viewer):
    from napari_zarrnii._sample_data import make_sample_data

    viewer = make_napari_viewer()
    for data, kwargs, kind in make_sample_data():
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    kinds = [type(ly).__name__ for ly in viewer.layers]
    assert kinds == ["Image", "Image", "Labels"]
    assert viewer.layers["cells"].multiscale


def test_screenshot_is_not_blank(make_napari_viewer, ngff_store):
    data = ramp((32, 64), dtype="uint16")
    path, _ = ngff_store(
        version="0.5",
        data=data,
        n_levels=2,
        axes=(("y", "space", "micrometer"), ("x", "space", "micrometer")),
        omero={
            "channels": [
                {
                    "label": "ramp",
                    "color": "FFFFFF",
                    "window": {"start": 0, "end": 2047, "min": 0, "max": 65535},
                }
            ]
        },
    )
    viewer = make_napari_viewer(show=True)
    viewer.open(str(path), plugin="napari-zarrnii")
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.ndim == 3
    gray = shot[..., :3].astype(float).mean(axis=-1)
    assert gray.std() > 10, "the canvas shows nothing"


def test_bad_store_does_not_crash_napari(make_napari_viewer, tmp_path):
    import zarr

    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w").create_array("a", shape=(4,), dtype="u1")
    viewer = make_napari_viewer()
    from napari_zarrnii._reader import get_reader

    assert get_reader(str(plain)) is None
    assert len(viewer.layers) == 0


@pytest.mark.parametrize("oblique", [False, True])
def test_nifti_lands_on_ras_world_coordinates(make_napari_viewer, tmp_path, oblique):
    import nibabel as nib

    data = np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4)
    # permuted and flipped: i runs right-to-left, j along S, k along A
    affine = np.array([[-2.0, 0, 0, 30.0], [0, 0, 1.5, -12.0], [0, 0.8, 0, 4.0], [0, 0, 0, 1]])
    if oblique:
        c, s = np.cos(0.3), np.sin(0.3)
        rot = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
        affine = rot @ affine
    path = tmp_path / "head.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin="napari-zarrnii")
    assert tuple(layer.axis_labels) == ("z", "y", "x")
    values = np.asarray(layer.data)
    for ijk in [(0, 0, 0), (5, 4, 3), (2, 1, 3), (4, 0, 2)]:
        ras = (affine @ (*ijk, 1))[:3]
        # find the layer voxel holding the value of voxel ijk, then compare positions
        idx = tuple(int(v) for v in np.argwhere(values == data[ijk])[0])
        np.testing.assert_allclose(layer.data_to_world(idx), ras[::-1], atol=1e-4)
