"""TIFF, OME-TIFF and ImageJ TIFF as a source: reader, ZarrNii, CLI and Create pyramid."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from napari_zarrnii import ZarrNii
from napari_zarrnii._cli import main
from napari_zarrnii._errors import MissingDependencyError, NotAnImageError, ZarrNiiError
from napari_zarrnii.core import tiff as tiff_module
from napari_zarrnii.core.omezarr import read_ome_zarr
from napari_zarrnii.core.pyramid import write_pyramid
from napari_zarrnii.core.tiff import read_tiff

from .conftest import ramp

tifffile = pytest.importorskip("tifffile")


@pytest.fixture
def imagej_zyx(tmp_path):
    data = ramp((6, 40, 50))
    path = tmp_path / "stack.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.25, 1 / 0.25),
        metadata={"axes": "ZYX", "spacing": 1.5, "unit": "micron"},
    )
    return path, data


@pytest.fixture
def ome_czyx(tmp_path):
    data = ramp((2, 5, 30, 40))
    path = tmp_path / "cells.ome.tif"
    tifffile.imwrite(
        path,
        data,
        metadata={
            "axes": "CZYX",
            "PhysicalSizeX": 0.3,
            "PhysicalSizeY": 0.3,
            "PhysicalSizeZ": 2.0,
            "PhysicalSizeZUnit": "µm",
            "Channel": {"Name": ["DAPI", "GFP"], "Color": [0x0000FFFF, 0x00FF00FF]},
        },
    )
    return path, data


@pytest.fixture
def ome_pyramid(tmp_path):
    data = ramp((4, 64, 96))
    path = tmp_path / "pyramid.ome.tif"
    levels = [data, data[:, ::2, ::2], data[:, ::4, ::4]]
    meta = {"axes": "ZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "PhysicalSizeZ": 2.0}
    with tifffile.TiffWriter(path) as tw:
        tw.write(levels[0], subifds=2, tile=(32, 32), metadata=meta)
        for level in levels[1:]:
            tw.write(level, subfiletype=1, tile=(16, 16))
    return path, levels


def test_imagej_stack(imagej_zyx):
    path, data = imagej_zyx
    image = read_tiff(path)
    assert image.axis_names == ("z", "y", "x")
    assert [a.type for a in image.axes] == ["space"] * 3
    assert image.units == ("micrometer",) * 3
    assert image.shape == data.shape and image.num_levels == 1
    np.testing.assert_allclose(image.levels[0].scale, (1.5, 0.25, 0.25))
    assert image.levels[0].translation == (0.0, 0.0, 0.0)
    assert image.name == "stack" and image.source == str(path)
    assert image.attrs["tiff"]["is_imagej"]
    np.testing.assert_array_equal(np.asarray(image.levels[0].data), data)
    # basic indexing, as napari and the writer use it
    lvl = image.levels[0].data
    np.testing.assert_array_equal(lvl[2], data[2])
    np.testing.assert_array_equal(lvl[1:5:2, 3:20, ::-3], data[1:5:2, 3:20, ::-3])
    np.testing.assert_array_equal(lvl[..., 7], data[..., 7])
    np.testing.assert_array_equal(lvl[:, [1, 5], 2], data[:, [1, 5], 2])


def test_ome_channels_and_sizes(ome_czyx):
    path, data = ome_czyx
    z = ZarrNii.from_tiff(path)
    image = z.pyramid
    assert image.axis_names == ("c", "z", "y", "x")
    assert image.axes[0].type == "channel" and image.axes[0].unit is None
    assert image.units[1:] == ("micrometer",) * 3
    np.testing.assert_allclose(image.levels[0].scale, (1.0, 2.0, 0.3, 0.3))
    assert [(c.label, c.color) for c in image.channels] == [("DAPI", "0000FF"), ("GFP", "00FF00")]
    assert z.channel_labels == ["DAPI", "GFP"]
    np.testing.assert_array_equal(z.darr.compute(), data)
    np.testing.assert_array_equal(z.get_channel("GFP").darr.compute(), data[1])


def test_pyramidal_ome_tiff_levels(ome_pyramid):
    path, levels = ome_pyramid
    image = read_tiff(path)
    assert image.num_levels == 3
    assert [lvl.shape for lvl in image.levels] == [lvl.shape for lvl in levels]
    np.testing.assert_allclose(image.levels[1].scale, (2.0, 1.0, 1.0))
    np.testing.assert_allclose(image.levels[2].scale, (2.0, 2.0, 2.0))
    # coarser voxels cover the same physical extent as level 0
    for i in (1, 2):
        np.testing.assert_allclose(image.physical_extent(i), image.physical_extent(0))
    for lvl, expected in zip(image.levels, levels):
        np.testing.assert_array_equal(np.asarray(lvl.data), expected)
    assert ZarrNii.from_tiff(path).get_level(-1).shape == levels[2].shape


@pytest.mark.parametrize("planar", [False, True])
def test_rgb_samples_become_channels(tmp_path, planar):
    rgb = ramp((20, 30, 3), "uint8")
    path = tmp_path / "photo.tiff"
    if planar:
        tifffile.imwrite(path, rgb.transpose(2, 0, 1), photometric="rgb", planarconfig="separate")
    else:
        tifffile.imwrite(path, rgb, photometric="rgb")
    image = read_tiff(path)
    assert image.axis_names == ("c", "y", "x") and image.shape == (3, 20, 30)
    assert [(c.label, c.color) for c in image.channels] == [
        ("R", "FF0000"),
        ("G", "00FF00"),
        ("B", "0000FF"),
    ]
    np.testing.assert_array_equal(np.asarray(image.levels[0].data), rgb.transpose(2, 0, 1))


def test_plain_tiff_resolution_tags_and_unnamed_axis(tmp_path):
    data = ramp((5, 10, 12))
    path = tmp_path / "plain.tif"
    tifffile.imwrite(
        path, data, photometric="minisblack", resolution=(1000, 1000), resolutionunit="CENTIMETER"
    )
    image = read_tiff(path)
    assert image.axis_names == ("z", "y", "x")  # tifffile's 'Q' axis read as z
    np.testing.assert_allclose(image.levels[0].scale, (1.0, 10.0, 10.0))  # 1 cm / 1000
    assert image.units == ("micrometer",) * 3
    assert any("no physical size" in n for n in image.notes)
    np.testing.assert_array_equal(np.asarray(image.levels[0].data), data)


def test_opening_reads_no_pixels(ome_pyramid, monkeypatch):
    path, levels = ome_pyramid
    reads = []
    real = tifffile.zarr.FileCache.read

    def counting(self, *args, **kwargs):
        reads.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(tifffile.zarr.FileCache, "read", counting)
    image = read_tiff(path)
    assert reads == []
    np.testing.assert_array_equal(image.levels[0].data[1, :32, :32], levels[0][1, :32, :32])
    assert len(reads) == 1  # one tile
    # a pickled level (dask workers) opens the file again on its own
    clone = pickle.loads(pickle.dumps(image.levels[2].data))
    np.testing.assert_array_equal(np.asarray(clone), levels[2])


def test_round_trip_through_ome_zarr(ome_czyx, tmp_path):
    path, data = ome_czyx
    out = write_pyramid(read_tiff(path), tmp_path / "cells.ome.zarr", max_layer=1, chunks=16)
    back = read_ome_zarr(out)
    np.testing.assert_array_equal(np.asarray(back.levels[0].data), data)
    assert back.axis_names == ("c", "z", "y", "x")
    np.testing.assert_allclose(back.levels[0].scale, (1.0, 2.0, 0.3, 0.3))
    assert [c.label for c in back.channel_infos()] == ["DAPI", "GFP"]


def test_cli_convert_and_info(imagej_zyx, tmp_path, capsys):
    path, data = imagej_zyx
    out = tmp_path / "stack.ome.zarr"
    assert main(["convert", str(path), str(out), "--max-layer", "1", "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().out
    z = ZarrNii.from_ome_zarr(out)
    assert z.num_levels == 2
    np.testing.assert_array_equal(z.darr.compute(), data)
    np.testing.assert_allclose(z.voxel_size, (1.5, 0.25, 0.25))
    assert main(["info", str(path)]) == 0
    assert "(TIFF, uint16)" in capsys.readouterr().out


def test_bad_files_name_the_path(tmp_path, capsys):
    fake = tmp_path / "fake.tif"
    fake.write_bytes(b"not a tiff at all")
    with pytest.raises(NotAnImageError, match=r"fake\.tif"):
        read_tiff(fake)
    with pytest.raises(NotAnImageError, match=r"missing\.tif"):
        read_tiff(tmp_path / "missing.tif")
    assert main(["convert", str(fake), str(tmp_path / "o.ome.zarr"), "--no-progress"]) == 2
    assert "fake.tif" in capsys.readouterr().err


def test_unsupported_axes_are_refused(tmp_path):
    path = tmp_path / "odd.ome.tif"
    tifffile.imwrite(path, np.zeros((2, 3, 4, 8, 8), np.uint8), metadata={"axes": "QAZYX"})
    with pytest.raises(NotAnImageError, match=r"odd\.ome\.tif.*axes"):
        read_tiff(path)


def test_missing_codec_is_reported(tmp_path, monkeypatch):
    path = tmp_path / "deflate.tif"
    tifffile.imwrite(path, ramp((8, 8)), compression="zlib")
    np.testing.assert_array_equal(np.asarray(read_tiff(path).levels[0].data), ramp((8, 8)))

    class NoCodecs:
        def __contains__(self, key):
            return key == 1  # only uncompressed

    monkeypatch.setattr(tifffile.TIFF, "DECOMPRESSORS", NoCodecs(), raising=False)
    with pytest.raises(NotAnImageError, match="imagecodecs"):
        read_tiff(path)


def test_missing_tifffile(tmp_path, monkeypatch, imagej_zyx):
    import builtins

    real_import = builtins.__import__

    def no_tifffile(name, *args, **kwargs):
        if name == "tifffile":
            raise ImportError("No module named 'tifffile'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tifffile)
    with pytest.raises(MissingDependencyError, match="pip install tifffile") as exc:
        read_tiff(imagej_zyx[0])
    assert isinstance(exc.value, (ZarrNiiError, ImportError))
    assert tiff_module.is_tiff_path("A.OME.TIFF") and not tiff_module.is_tiff_path("a.nii")


@pytest.mark.gui
def test_create_pyramid_from_tiff_file(make_napari_viewer, qtbot, ome_pyramid, tmp_path):
    from napari_zarrnii._widgets.pyramid import CreatePyramidWidget

    path, levels = ome_pyramid
    viewer = make_napari_viewer()
    widget = CreatePyramidWidget(viewer)
    assert "TIFF file" in widget.source_kind.choices
    widget.source_kind.value = "TIFF file"
    assert "*.tif" in widget.file.filter
    widget.file.value = path
    assert widget.plan is not None and widget.plan.levels[0].shape == levels[0].shape
    out = tmp_path / "from_tiff.ome.zarr"
    widget.output.value = out
    widget.n_levels.value = 2
    widget.run()
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=30_000)
    assert widget.runner.last_outcome == "done", widget.runner.last_error
    np.testing.assert_array_equal(np.asarray(read_ome_zarr(out).levels[0].data), levels[0])
    assert len(viewer.layers) == 1
