"""Zipped OME-Zarr (``.ozx``, RFC-9): read, write aside, interoperate with ngff-zarr.

RFC-9 facts checked here (from the RFC text and ngff-zarr 0.50's ``rfc9_zip.py``):
the archive root is the hierarchy root, the root ``zarr.json`` is the first entry and
every ``zarr.json`` comes before any other file, breadth first; entries are stored
without zip compression; the comment is JSON naming the OME version and
``jsonFirst``; arrays are sharded.
"""

from __future__ import annotations

import json
import threading
import zipfile

import nibabel as nib
import npe2
import numpy as np
import pytest
import zarr

from napari_zarrnii import (
    CancelledError,
    DestinationExistsError,
    NotOmeZarrError,
    UnsupportedFormatError,
    ZarrNii,
)
from napari_zarrnii._cli import main
from napari_zarrnii._reader import get_reader
from napari_zarrnii.core.io import format_of, open_image, save_image
from napari_zarrnii.core.model import Axis, Level, MultiscaleImage
from napari_zarrnii.core.omezarr import read_ome_zarr
from napari_zarrnii.core.store import pack_ozx

from .conftest import ramp
from .ngff_schemas import validate_ngff

ngff_zarr = pytest.importorskip("ngff_zarr")

AXES = (
    Axis("c", "channel"),
    Axis("z", "space", "micrometer"),
    Axis("y", "space", "micrometer"),
    Axis("x", "space", "micrometer"),
)


def image_with_labels() -> MultiscaleImage:
    data = ramp((2, 12, 40, 36))
    seg = (ramp((12, 40, 36)) % 4).astype(np.uint8)
    label = MultiscaleImage(
        axes=AXES[1:],
        levels=[Level("0", seg, (2.0, 0.5, 0.5), (1.0, 0.0, 0.0))],
        name="cells",
        is_label=True,
    )
    return MultiscaleImage(
        axes=AXES,
        levels=[Level("0", data, (1.0, 2.0, 0.5, 0.5), (0.0, 1.0, 0.0, 0.0))],
        name="zipped",
        labels={"cells": label},
    )


def entries(path) -> list[zipfile.ZipInfo]:
    with zipfile.ZipFile(path) as zf:
        return zf.infolist()


def check_rfc9_layout(path, version: str) -> None:
    infos = entries(path)
    names = [i.filename for i in infos]
    assert names[0] == "zarr.json"
    n_json = sum(n.endswith("zarr.json") for n in names)
    assert all(n.endswith("zarr.json") for n in names[:n_json])  # jsonFirst holds
    depths = [n.count("/") for n in names[:n_json]]
    assert depths == sorted(depths)  # breadth first
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}
    assert not any(n.endswith("/") for n in names)  # files only, no folder entries
    with zipfile.ZipFile(path) as zf:
        comment = json.loads(zf.comment.decode("utf-8"))
    assert comment == {
        "ome": {"version": version, "zipFile": {"centralDirectory": {"jsonFirst": True}}}
    }


# -- writing ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.5", "0.6"])
def test_written_ozx_follows_rfc9_and_reads_back(tmp_path, version):
    image = image_with_labels()
    out = save_image(image, tmp_path / "img.ozx", max_layer=2, chunks=8, ngff_version=version)
    assert out == tmp_path / "img.ozx" and out.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.ozx"]  # nothing aside left
    check_rfc9_layout(out, version)
    back = read_ome_zarr(out)
    assert back.ngff_version == version and back.name == "zipped" and back.source == str(out)
    np.testing.assert_array_equal(np.asarray(back.levels[0].data[...]), image.levels[0].data)
    # sharded, two chunks per spatial axis by default (RFC-9: fewer entries)
    assert back.levels[0].data.shards == (1, 16, 16, 16)
    assert back.levels[0].data.chunks == (1, 8, 8, 8)
    assert back.levels[1].scale == pytest.approx((1.0, 2.0, 1.0, 1.0))
    label = back.labels["cells"]
    np.testing.assert_array_equal(
        np.asarray(label.levels[0].data[...]), image.labels["cells"].levels[0].data
    )
    with zipfile.ZipFile(out) as zf:
        attrs = json.loads(zf.read("zarr.json"))["attributes"]
        label_attrs = json.loads(zf.read("labels/cells/zarr.json"))["attributes"]
    validate_ngff(attrs, version, "image")
    validate_ngff(label_attrs, version, "label")


def test_ngff_zarr_reads_our_ozx(tmp_path):
    image = image_with_labels()
    out = save_image(image, tmp_path / "img.ozx", max_layer=1, ngff_version="0.5")
    ours = read_ome_zarr(out)
    peer = ngff_zarr.from_ngff_zarr(str(out), validate=True)
    assert len(peer.images) == ours.num_levels == 2
    for lvl, peer_image in zip(ours.levels, peer.images):
        np.testing.assert_array_equal(np.asarray(peer_image.data), np.asarray(lvl.data[...]))
        assert [peer_image.scale[a] for a in "czyx"] == pytest.approx(lvl.scale)
        assert [peer_image.translation[a] for a in "czyx"] == pytest.approx(lvl.translation)


@pytest.mark.parametrize("version", ["0.5", "0.6"])
def test_ngff_zarr_ozx_is_read(tmp_path, version):
    data = ramp((16, 64, 48))
    img = ngff_zarr.to_ngff_image(
        data,
        dims=("z", "y", "x"),
        scale={"z": 2.0, "y": 0.5, "x": 0.5},
        translation={"z": 1.0, "y": -2.0, "x": 3.0},
        name="peer",
        axes_units={d: "micrometer" for d in "zyx"},
    )
    ms = ngff_zarr.to_multiscales(img, scale_factors=[2, 4])
    path = tmp_path / f"peer{version}.ozx"
    ngff_zarr.to_ngff_zarr(str(path), ms, version=version)
    folder = tmp_path / f"peer{version}.ome.zarr"
    ngff_zarr.to_ngff_zarr(str(folder), ms, version=version)
    check_rfc9_layout(path, version)
    zipped, plain = read_ome_zarr(path), read_ome_zarr(folder)
    assert zipped.ngff_version == version and zipped.axes == plain.axes
    assert zipped.name == plain.name and zipped.num_levels == plain.num_levels == 3
    assert zipped.levels[0].data.shards is not None  # ngff-zarr shards .ozx arrays
    for a, b in zip(zipped.levels, plain.levels):
        assert a.scale == b.scale and a.translation == b.translation
        np.testing.assert_array_equal(np.asarray(a.data[...]), np.asarray(b.data[...]))
    np.testing.assert_array_equal(np.asarray(zipped.levels[0].data[...]), data)
    # through napari's reader and the API too
    npe2.PluginManager.instance().discover(include_npe1=False)
    layers = npe2.read([str(path)], stack=False, plugin_name="napari-zarrnii")
    assert len(layers) == 1 and layers[0][1]["scale"] == pytest.approx([2.0, 0.5, 0.5])
    z = ZarrNii.from_ome_zarr(path, level=1)
    assert z.shape == plain.levels[1].shape


def test_round_trip_through_the_api_and_the_cli(tmp_path, capsys):
    src = tmp_path / "in.nii.gz"
    vol = ramp((20, 24, 16), "int16")
    nib.save(nib.Nifti1Image(vol, np.diag([0.5, 0.5, 1.0, 1.0])), src)
    assert main(["convert", str(src), str(tmp_path / "a.ozx"), "--no-progress"]) == 0
    assert main(["info", str(tmp_path / "a.ozx")]) == 0
    out = capsys.readouterr().out
    assert "OME-NGFF 0.5, zipped" in out and "levels" in out
    z = ZarrNii.open(tmp_path / "a.ozx")
    z.to_ome_zarr(tmp_path / "b.ozx", ngff_version="0.6", max_layer=1)
    z.to_nifti(tmp_path / "back.nii.gz")
    np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / "back.nii.gz").dataobj), vol)
    b = ZarrNii.from_ome_zarr(tmp_path / "b.ozx")
    assert b.pyramid.ngff_version == "0.6"
    np.testing.assert_array_equal(np.asarray(b.darr), np.asarray(z.darr))
    assert b.voxel_size == pytest.approx(z.voxel_size)
    assert main(["crop", str(tmp_path / "b.ozx"), str(tmp_path / "c.ozx"), "--bbox",
                 "0", "0", "0", "4", "4", "4", "--no-progress"]) == 0  # fmt: skip
    assert ZarrNii.open(tmp_path / "c.ozx").shape == (4, 4, 4)


def test_npe2_writer_writes_ozx(tmp_path):
    npe2.PluginManager.instance().discover(include_npe1=False)
    out = tmp_path / "layers.ozx"
    data = ramp((8, 300, 300))
    written = npe2.write(
        str(out), [(data, {"name": "cells", "scale": [2.0, 1.0, 1.0]}, "image")],
        plugin_name="napari-zarrnii",
    )  # fmt: skip
    assert written == [str(out)] and zipfile.is_zipfile(out)
    back = read_ome_zarr(out)
    assert back.num_levels > 1 and back.ngff_version == "0.5"
    np.testing.assert_array_equal(np.asarray(back.levels[0].data[...]), data)


def test_ozx_needs_zarr_v3(tmp_path):
    with pytest.raises(UnsupportedFormatError, match=r"zarr v3.*not 0\.4"):
        save_image(image_with_labels(), tmp_path / "old.ozx", ngff_version="0.4")
    assert list(tmp_path.iterdir()) == []
    assert format_of(tmp_path / "x.ozx", writing=True).key == "ozx"


# -- writing aside: nothing left behind -----------------------------------------------------


def test_existing_file_is_kept_without_overwrite_and_replaced_with_it(tmp_path):
    target = tmp_path / "keep.ozx"
    target.write_bytes(b"precious")
    with pytest.raises(DestinationExistsError):
        save_image(image_with_labels(), target, max_layer=0)
    assert target.read_bytes() == b"precious"
    save_image(image_with_labels(), target, max_layer=0, overwrite=True)
    assert read_ome_zarr(target).name == "zipped"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.ozx"]
    folder = tmp_path / "folder.ozx"
    folder.mkdir()
    with pytest.raises(DestinationExistsError, match="is a folder"):
        save_image(image_with_labels(), folder, max_layer=0, overwrite=True)


@pytest.mark.parametrize("when", ["pyramid", "zipping", "error"])
def test_cancel_or_failure_leaves_nothing(tmp_path, when):
    target = tmp_path / "out" / "x.ozx"
    stop = threading.Event()

    def progress(done, total, message):
        if when == "error" and message.startswith("zipping"):
            raise RuntimeError("disk full")
        if (when == "pyramid" and done == 2) or (when == "zipping" and "zipping" in message):
            stop.set()

    expected = RuntimeError if when == "error" else CancelledError
    with pytest.raises(expected):
        save_image(image_with_labels(), target, max_layer=2, chunks=8, progress=progress,
                   cancel=stop)  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # not even the folder made for it


def test_previous_file_survives_a_cancelled_replacement(tmp_path):
    target = tmp_path / "x.ozx"
    save_image(image_with_labels(), target, max_layer=0)
    before = target.read_bytes()
    with pytest.raises(CancelledError):
        save_image(image_with_labels(), target, max_layer=1, overwrite=True, cancel=lambda: True)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ozx"]


# -- reading: what is not a zipped OME-Zarr is declined ---------------------------------------


def test_reader_declines_zips_that_are_not_ome_zarr(tmp_path):
    with zipfile.ZipFile(tmp_path / "notes.ozx", "w") as zf:
        zf.writestr("readme.txt", "hello")
    plain = tmp_path / "plain.ome.zarr"
    zarr.open_group(str(plain), mode="w").create_array("x", shape=(2,), dtype="u1")
    pack_ozx_without_ome = tmp_path / "plain.ozx"
    with zipfile.ZipFile(pack_ozx_without_ome, "w") as zf:
        for f in sorted(plain.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(plain).as_posix())
    (tmp_path / "text.ozx").write_text("not a zip")
    for name in ("notes.ozx", "plain.ozx", "text.ozx", "missing.ozx"):
        assert get_reader(str(tmp_path / name)) is None, name
    with pytest.raises(NotOmeZarrError, match="not a zip file"):
        read_ome_zarr(tmp_path / "text.ozx")
    with pytest.raises(NotOmeZarrError, match="without OME-NGFF metadata"):
        read_ome_zarr(tmp_path / "plain.ozx")
    with pytest.raises(NotOmeZarrError):
        open_image(tmp_path / "notes.ozx")


def test_a_zip_whose_root_is_a_subfolder_is_not_claimed(tmp_path):
    """RFC-9: the archive root is the hierarchy root (no 'image.ome.zarr/' inside)."""
    folder = save_image(image_with_labels(), tmp_path / "img.ome.zarr", max_layer=0)
    with zipfile.ZipFile(tmp_path / "nested.ozx", "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(tmp_path).as_posix())
    assert get_reader(str(tmp_path / "nested.ozx")) is None


def test_pack_ozx_refuses_zarr_v2(tmp_path):
    folder = save_image(
        image_with_labels(), tmp_path / "v2.ome.zarr", max_layer=0, ngff_version="0.4"
    )
    with pytest.raises(ValueError, match="zarr v3"):
        pack_ozx(folder, tmp_path / "v2.ozx")


def test_pyramid_writer_zips_by_the_name(tmp_path):
    """The widgets call write_pyramid/write_levels directly: a .ozx name zips there too."""
    from napari_zarrnii.core.pyramid import plan_pyramid, write_levels, write_pyramid

    image = image_with_labels().replace(name=None)  # named after the file then
    plan = plan_pyramid(image, 1, chunks=8)  # a previewed plan keeps its (absent) shards
    out = write_pyramid(image, tmp_path / "planned.ozx", plan)
    assert out == tmp_path / "planned.ozx" and zipfile.is_zipfile(out)
    back = read_ome_zarr(out)
    assert back.name == "planned" and back.levels[0].data.shards is None
    levels = write_levels(back, tmp_path / "levels.ozx", ngff_version="0.6")
    again = read_ome_zarr(levels)
    assert again.ngff_version == "0.6" and again.levels[1].data.shards is not None
    for a, b in zip(again.levels, back.levels):
        np.testing.assert_array_equal(np.asarray(a.data[...]), np.asarray(b.data[...]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["levels.ozx", "planned.ozx"]
