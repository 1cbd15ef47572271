"""The ``napari-zarrnii`` command line, through ``main([...])``."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from napari_zarrnii import ZarrNii
from napari_zarrnii._cli import build_parser, main

from .conftest import ramp


def blob(shape=(32, 48, 40)) -> np.ndarray:
    vol = np.full(shape, 20, np.uint16)
    vol[8:24, 12:36, 10:30] = 1000
    return vol


@pytest.fixture
def nifti(tmp_path):
    vol = blob()
    path = tmp_path / "in.nii.gz"
    nib.save(nib.Nifti1Image(vol.transpose(2, 1, 0), np.diag([0.5, 0.5, 1.0, 1.0])), path)
    return path, vol


def test_parser_has_the_subcommands():
    parser = build_parser()
    text = parser.format_help()
    for name in ("info", "convert", "crop"):
        assert name in text
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_info(ngff_store, capsys):
    path, _ = ngff_store(
        version="0.5", omero={"channels": [{"label": "DAPI", "color": "blue"}, {"label": "GFP"}]}
    )
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "OME-NGFF 0.5" in out and "DAPI" in out and "GFP" in out
    assert "2x16x32x32" in out and "1x16x16x16" in out  # shape, chunks
    assert "micrometer" in out and "on disk" in out and "total" in out
    assert main(["info", "--json", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [lvl["shape"] for lvl in info["levels"]] == [
        [2, 16, 32, 32],
        [2, 8, 16, 16],
        [2, 4, 8, 8],
    ]
    assert info["storage"][-1]["path"] == "total"
    assert info["storage"][0]["bytes_on_disk"] > 0


def test_info_nifti(nifti, capsys):
    path, _ = nifti
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "NIfTI" in out and "32x48x40" in out


def test_convert_nifti_to_ome_zarr(nifti, tmp_path, capsys):
    path, vol = nifti
    out = tmp_path / "out.ome.zarr"
    code = main(
        [
            "convert",
            str(path),
            str(out),
            "--max-layer",
            "2",
            "--chunks",
            "16",
            "16",
            "16",
            "--ngff-version",
            "0.4",
            "--no-progress",
        ]
    )
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    img = ZarrNii.from_ome_zarr(out)
    assert img.num_levels == 3 and img.pyramid.ngff_version == "0.4"
    assert img.image.levels[0].data.chunks == (16, 16, 16)
    np.testing.assert_array_equal(img.darr.compute(), vol)
    # exists -> error without traceback, exit 2
    assert main(["convert", str(path), str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "Traceback" not in err
    assert (
        main(
            [
                "convert",
                str(path),
                str(out),
                "--overwrite",
                "--max-layer",
                "1",
                "--method",
                "nearest",
                "--compressor",
                "none",
            ]
        )
        == 0
    )
    assert ZarrNii.from_ome_zarr(out).num_levels == 2


def test_convert_level_to_nifti(ngff_store, tmp_path):
    data = ramp((16, 32, 32))
    path, levels = ngff_store(
        version="0.5",
        data=data,
        n_levels=2,
        axes=(
            ("z", "space", "micrometer"),
            ("y", "space", "micrometer"),
            ("x", "space", "micrometer"),
        ),
    )
    out = tmp_path / "l1.nii.gz"
    assert main(["convert", str(path), str(out), "--level", "1"]) == 0
    np.testing.assert_array_equal(ZarrNii.from_nifti(out).darr.compute(), levels[1])


def test_crop_bbox_and_tissue(nifti, tmp_path, capsys):
    path, vol = nifti
    store = tmp_path / "p.ome.zarr"
    ZarrNii.from_nifti(path).to_ome_zarr(store, max_layer=2, downsample_factors=(2, 2, 2))
    out = tmp_path / "crop.ome.zarr"
    # box given at level 1 -> level 0 box x2 (aligned mean pyramid)
    assert (
        main(
            [
                "crop",
                str(store),
                str(out),
                "--level",
                "1",
                "--bbox",
                "2",
                "3",
                "4",
                "6",
                "9",
                "12",
                "--max-layer",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "box at level 0: 4:12 6:18 8:24" in text
    crop = ZarrNii.from_ome_zarr(out)
    np.testing.assert_array_equal(crop.darr.compute(), vol[4:12, 6:18, 8:24])
    src = ZarrNii.from_ome_zarr(store)
    np.testing.assert_allclose(crop.affine @ [0, 0, 0, 1], src.affine @ [4, 6, 8, 1])

    nii = tmp_path / "tissue.nii.gz"
    assert main(["crop", str(store), str(nii), "--tissue"]) == 0
    got = ZarrNii.from_nifti(nii).darr.compute()
    # the coarsest level (4 x) bounds the blob 8:24, 12:36, 10:30 to whole coarse voxels
    assert got.shape == (16, 24, 24)
    assert (got == 1000).sum() == (vol == 1000).sum()


def test_crop_errors(nifti, tmp_path, capsys):
    path, _ = nifti
    assert main(["crop", str(path), str(tmp_path / "x.ome.zarr"), "--bbox", "1", "2"]) == 2
    assert "--bbox needs 6 values" in capsys.readouterr().err
    assert (
        main(
            [
                "crop",
                str(path),
                str(tmp_path / "x.ome.zarr"),
                "--bbox",
                "0",
                "0",
                "0",
                "5",
                "5",
                "5",
                "--level",
                "3",
            ]
        )
        == 2
    )
    assert "single level" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing.zarr")]) == 2
    err = capsys.readouterr().err
    assert "missing.zarr" in err and "Traceback" not in err
