"""Writing OME-NGFF 0.6: NIfTI round trips, world positions, labels, napari layers, peers.

World positions are compared three ways: the NIfTI affine (nibabel), the napari
layer arguments of this package's reader, and napari-ome-zarr's reader; stores are
validated against the official 0.6 schemas and read back by ngff-zarr.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from pathlib import Path

import nibabel as nib
import npe2
import numpy as np
import pytest
import zarr

from napari_zarrnii import ZarrNii
from napari_zarrnii._cli import main
from napari_zarrnii._layers import image_to_layer_data, layers_to_image
from napari_zarrnii.core.io import open_image, save_image
from napari_zarrnii.core.model import Axis, Level, MultiscaleImage
from napari_zarrnii.core.omezarr import read_ome_zarr
from napari_zarrnii.core.pyramid import write_pyramid

from .conftest import ramp
from .ngff_schemas import validate_ngff

SHAPE = (12, 10, 8)  # NIfTI i, j, k


def rotation(axis, degrees: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    x, y, z = axis
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def homogeneous(linear, origin) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = linear
    m[:3, 3] = origin
    return m


AFFINES = {
    "oblique": homogeneous(rotation((1, 1, 0.3), 20) @ np.diag([0.6, 0.9, 1.5]), (5, -6, 7)),
    "oblique_LPI": homogeneous(
        rotation((0.2, 1, 0), 25) @ np.diag([-0.6, -0.9, -1.5]), (-5.0, 6.0, -7.0)
    ),
    "sheared": homogeneous(
        np.array([[1.0, 0.2, 0.0], [0.0, 1.0, 0.1], [0.0, 0.0, 1.0]]) @ np.diag([0.5, 0.5, 2]),
        (1, 2, 3),
    ),
    "LPS": homogeneous(np.diag([-0.5, -0.7, 1.2]), (30.0, 12.0, -7.0)),
}


def save_nifti(path: Path, affine: np.ndarray, code: int = 1) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(0).permutation(math.prod(SHAPE)).astype(np.int16)
    data = data.reshape(SHAPE)
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code=code)
    img.set_qform(affine, code=code)
    nib.save(img, path)
    return path, data


def root_ome(path: Path) -> dict:
    return json.loads((path / "zarr.json").read_text())["attributes"]["ome"]


def nifti_world(path: Path, ijk) -> np.ndarray:
    """napari's world (S, A, R) of NIfTI voxel ``ijk``: the RAS+ position read backwards."""
    img = nib.load(path)
    return (img.affine @ np.r_[np.asarray(ijk, float), 1.0])[:3][::-1]


def layer_world(kwargs: dict, index) -> np.ndarray:
    """Where napari puts data index ``index`` of a layer made from ``kwargs``."""
    scale = np.asarray(kwargs["scale"], float)
    translate = np.asarray(kwargs["translate"], float)
    affine = np.asarray(kwargs.get("affine", np.eye(len(scale) + 1)), float)
    return (affine @ np.r_[scale * np.asarray(index, float) + translate, 1.0])[:-1]


def voxel_of(image: MultiscaleImage, value) -> tuple[int, ...]:
    (where,) = np.argwhere(np.asarray(image.levels[0].data[...]) == value)
    return tuple(int(i) for i in where)


# -- NIfTI -> OME-Zarr 0.6 -> NIfTI ------------------------------------------------------------


def nifti_voxels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every voxel's world position (RAS+) and value, sorted by value."""
    img = nib.load(path)
    values = np.asarray(img.dataobj).reshape(-1)
    ijk = np.indices(img.shape).reshape(3, -1)
    ras = (img.affine[:3, :3] @ ijk + img.affine[:3, 3:]).T
    order = np.argsort(values)
    return ras[order], values[order]


@pytest.mark.parametrize("kind", sorted(AFFINES))
def test_nifti_round_trip_through_06_is_exact(tmp_path, kind):
    src, data = save_nifti(tmp_path / "in.nii.gz", AFFINES[kind])
    ZarrNii.from_nifti(src).to_ome_zarr(tmp_path / "mid.ome.zarr", ngff_version="0.6")
    ZarrNii.from_ome_zarr(tmp_path / "mid.ome.zarr").to_nifti(tmp_path / "back.nii.gz")
    ZarrNii.from_nifti(src).to_nifti(tmp_path / "direct.nii.gz")
    intrinsic = ZarrNii.from_ome_zarr(tmp_path / "mid.ome.zarr", coordinate_system="intrinsic")
    assert intrinsic.pyramid.world_affine is None
    before, after = nib.load(src), nib.load(tmp_path / "back.nii.gz")
    direct = nib.load(tmp_path / "direct.nii.gz")
    # the 0.6 store loses nothing: as written straight from NIfTI to NIfTI, which
    # keeps RAS-like files as they are (and stores LPS-like ones flipped to RAS)
    np.testing.assert_allclose(after.affine, direct.affine, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(after.dataobj), np.asarray(direct.dataobj))
    if np.all(np.diag(AFFINES[kind]) > 0):
        # NIfTI stores float32 affines: equal to that precision
        np.testing.assert_allclose(after.affine, before.affine, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(after.dataobj), data)
    (ras_before, v_before), (ras_after, v_after) = (
        nifti_voxels(src),
        nifti_voxels(tmp_path / "back.nii.gz"),
    )
    np.testing.assert_array_equal(v_after, v_before)
    np.testing.assert_allclose(ras_after, ras_before, rtol=0, atol=1e-5)

    ome = root_ome(tmp_path / "mid.ome.zarr")
    validate_ngff({"ome": ome}, "0.6", "image")
    validate_ngff({"ome": ome}, "0.6", "strict_image")
    (ms,) = ome["multiscales"]
    shown = ms["coordinateSystems"][-1]
    assert [a["orientation"]["value"] for a in shown["axes"]] == [
        "inferior-to-superior",
        "posterior-to-anterior",
        "left-to-right",
    ]
    if kind == "LPS":  # axis-aligned: the intrinsic system is the world
        assert [s["name"] for s in ms["coordinateSystems"]] == ["intrinsic"]
        assert "coordinateTransformations" not in ms
    else:
        assert [s["name"] for s in ms["coordinateSystems"]] == ["intrinsic", "scanner"]
        (t,) = ms["coordinateTransformations"]
        assert (t["input"], t["output"]) == ({"name": "intrinsic"}, {"name": "scanner"})
        assert all("orientation" not in a for a in ms["coordinateSystems"][0]["axes"])


def test_cli_round_trip_and_system_named_after_the_xform_code(tmp_path):
    src, data = save_nifti(tmp_path / "in.nii.gz", AFFINES["oblique"], code=2)
    out = tmp_path / "mid.ome.zarr"
    assert main(["convert", str(src), str(out), "--ngff-version", "0.6", "--no-progress"]) == 0
    ome = root_ome(out)
    assert ome["version"] == "0.6"
    assert ome["multiscales"][0]["coordinateSystems"][1]["name"] == "aligned"
    assert main(["convert", str(out), str(tmp_path / "back.nii"), "--no-progress"]) == 0
    back = nib.load(tmp_path / "back.nii")
    np.testing.assert_allclose(back.affine, nib.load(src).affine, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(back.dataobj), data)
    with pytest.raises(SystemExit):  # argparse refuses versions not written
        main(["convert", str(src), str(tmp_path / "x.ome.zarr"), "--ngff-version", "0.3"])


@pytest.mark.parametrize("kind", ["oblique", "oblique_LPI"])
def test_readers_place_the_06_store_where_the_nifti_is(tmp_path, kind):
    from napari_ome_zarr._reader import napari_get_reader

    src, data = save_nifti(tmp_path / "in.nii.gz", AFFINES[kind])
    out = tmp_path / "mid.ome.zarr"
    save_image(open_image(src), out, ngff_version="0.6", max_layer=1)
    ours = read_ome_zarr(out)
    (_, kwargs, _), *_ = image_to_layer_data(ours)
    with contextlib.redirect_stdout(io.StringIO()):  # napari-ome-zarr prints the attrs
        (peer_data, peer, _), *_ = napari_get_reader(str(out))(str(out))
    np.testing.assert_array_equal(np.asarray(peer_data[0]), np.asarray(ours.levels[0].data[...]))
    rng = np.random.default_rng(2)
    for ijk in [(0, 0, 0), (11, 9, 7), *(tuple(rng.integers(0, SHAPE)) for _ in range(6))]:
        index = voxel_of(ours, data[ijk])  # the value finds the voxel in the store
        expected = nifti_world(src, ijk)
        np.testing.assert_allclose(layer_world(kwargs, index), expected, atol=1e-5)
        got = peer["affine"](np.asarray(peer["scale"]) * np.asarray(index, float))
        np.testing.assert_allclose(got, expected, atol=1e-5)


# -- the pyramid writer ------------------------------------------------------------------------


def oblique_image(with_labels: bool = True) -> MultiscaleImage:
    axes = (
        Axis("c", "channel"),
        Axis("z", "space", "micrometer"),
        Axis("y", "space", "micrometer"),
        Axis("x", "space", "micrometer"),
    )
    world = np.eye(5)
    world[1:4, 1:4] = rotation((0, 1, 1), 30)
    world[1:4, 4] = (10.0, -20.0, 5.0)
    data = ramp((2, 16, 32, 24))
    image = MultiscaleImage(
        axes=axes,
        levels=[Level("0", data, (1.0, 2.0, 0.5, 0.5), (0.0, 1.0, 2.0, 3.0))],
        name="oblique",
        world_affine=world,
    )
    if with_labels:
        seg = (ramp((16, 32, 24)) % 5).astype(np.uint8)
        label = MultiscaleImage(
            axes=axes[1:],
            levels=[Level("0", seg, (2.0, 0.5, 0.5), (1.0, 2.0, 3.0))],
            name="cells",
            is_label=True,
        )
        image.labels["cells"] = label
    return image


def model_world(image: MultiscaleImage, level: int, index) -> np.ndarray:
    lvl = image.levels[level]
    p = np.asarray(lvl.scale) * np.asarray(index, float) + np.asarray(lvl.translation)
    if image.world_affine is None:
        return p
    return (np.asarray(image.world_affine) @ np.r_[p, 1.0])[:-1]


def test_pyramid_with_world_affine_and_labels(tmp_path):
    image = oblique_image()
    out = write_pyramid(
        image, tmp_path / "o.ome.zarr", max_layer=2, chunks=8, shards=16, ngff_version="0.6"
    )
    group = zarr.open_group(str(out), mode="r")
    validate_ngff(dict(group.attrs), "0.6", "image")
    validate_ngff(dict(group.attrs), "0.6", "strict_image")
    label_attrs = dict(group["labels/cells"].attrs)
    validate_ngff(label_attrs, "0.6", "image")
    validate_ngff(label_attrs, "0.6", "label")
    assert dict(group["labels"].attrs) == {"ome": {"version": "0.6", "labels": ["cells"]}}
    meta = json.loads((out / "0" / "zarr.json").read_text())
    assert "sharding_indexed" in json.dumps(meta["codecs"])
    # the label carries its image's world transformation, cut to its axes
    (image_t,) = dict(group.attrs)["ome"]["multiscales"][0]["coordinateTransformations"]
    (label_t,) = label_attrs["ome"]["multiscales"][0]["coordinateTransformations"]
    assert image_t["output"] == label_t["output"] == {"name": "world"}

    back = read_ome_zarr(out)
    assert back.notes[0] == "shown in coordinate system 'world'; also defined: 'intrinsic'"
    np.testing.assert_allclose(back.world_affine, image.world_affine, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(back.levels[0].data[...]), image.levels[0].data)
    label = back.labels["cells"]
    np.testing.assert_array_equal(
        np.asarray(label.levels[0].data[...]), image.labels["cells"].levels[0].data
    )
    for index in [(0, 0, 0), (3, 17, 11), (15, 31, 23)]:
        want = model_world(image, 0, (0, *index))[1:]
        np.testing.assert_allclose(model_world(back, 0, (0, *index))[1:], want, atol=1e-9)
        np.testing.assert_allclose(model_world(label, 0, index), want, atol=1e-9)
    # the label opened alone is placed there too
    alone = read_ome_zarr(out / "labels" / "cells")
    np.testing.assert_allclose(
        model_world(alone, 0, (3, 17, 11)), model_world(image, 0, (0, 3, 17, 11))[1:], atol=1e-9
    )


def test_ngff_zarr_reads_the_06_pyramid(tmp_path):
    ngff_zarr = pytest.importorskip("ngff_zarr")
    image = oblique_image()
    out = write_pyramid(image, tmp_path / "o.ome.zarr", max_layer=2, chunks=8, ngff_version="0.6")
    ours = read_ome_zarr(out, coordinate_system="intrinsic")
    peer = ngff_zarr.from_ngff_zarr(str(out), validate=True)
    assert len(peer.images) == ours.num_levels == 3
    for lvl, peer_image in zip(ours.levels, peer.images):
        np.testing.assert_array_equal(np.asarray(peer_image.data), np.asarray(lvl.data[...]))
        assert [peer_image.scale[a] for a in "czyx"] == pytest.approx(lvl.scale)
        assert [peer_image.translation[a] for a in "czyx"] == pytest.approx(lvl.translation)
    (t,) = peer.metadata.coordinateTransformations
    assert (t.input.name, t.output.name) == ("intrinsic", "world")
    assert [cs.name for cs in peer.metadata.coordinateSystems] == ["intrinsic", "world"]
    # the peer's transformation is the world affine: rotation, then translation
    rotation_t, translation_t = t.transformations
    assert (rotation_t.type, translation_t.type) == ("rotation", "translation")
    np.testing.assert_allclose(rotation_t.rotation, image.world_affine[:4, :4], atol=1e-11)
    np.testing.assert_allclose(translation_t.translation, image.world_affine[:4, 4], atol=1e-11)


def test_napari_ome_zarr_places_image_and_labels_where_we_do(tmp_path):
    from napari_ome_zarr._reader import napari_get_reader

    out = write_pyramid(oblique_image(), tmp_path / "o.ome.zarr", max_layer=1, ngff_version="0.6")
    ours = {kw["name"]: kw for _, kw, _ in image_to_layer_data(read_ome_zarr(out))}
    with contextlib.redirect_stdout(io.StringIO()):
        peer_layers = napari_get_reader(str(out))(str(out))
    (_, peer_image, _), (_, peer_label, kind) = peer_layers
    assert kind == "labels"
    for index in [(0, 0, 0), (3, 17, 11), (15, 31, 23)]:
        expected = layer_world(ours["cells"], index)
        np.testing.assert_allclose(layer_world(ours["channel 0"], index), expected, atol=1e-9)
        for peer in (peer_image, peer_label):
            got = peer["affine"](np.asarray(peer["scale"]) * np.asarray(index, float))
            np.testing.assert_allclose(got, expected, atol=1e-9)


def test_ngff_zarr_06_store_with_affine_round_trips(tmp_path):
    """A peer's 0.6 store, read and written again: same pixels, same world."""
    ngff_zarr = pytest.importorskip("ngff_zarr")
    from ngff_zarr.v06.zarr_metadata import (
        Affine,
        CoordinateSystem,
        CoordinateSystemIdentifier,
    )
    from ngff_zarr.v06.zarr_metadata import Axis as PeerAxis

    img = ngff_zarr.to_ngff_image(
        ramp((16, 32, 32)),
        dims=("z", "y", "x"),
        scale={"z": 2.0, "y": 0.5, "x": 0.5},
        translation={"z": 1.0, "y": 2.0, "x": 3.0},
    )
    ms = ngff_zarr.to_multiscales(img, scale_factors=[2])
    world_axes = [PeerAxis(name=d, type="space") for d in "zyx"]
    ms.metadata.coordinateSystems.append(CoordinateSystem(name="world", axes=world_axes))
    matrix = [[0.0, 1.0, 0.0, 5.0], [1.0, 0.0, 0.0, 6.0], [0.2, 0.0, 1.0, 7.0]]
    ms.metadata.coordinateTransformations = [
        Affine(
            affine=matrix,
            input=CoordinateSystemIdentifier(name="intrinsic"),
            output=CoordinateSystemIdentifier(name="world"),
        )
    ]
    ngff_zarr.to_ngff_zarr(str(tmp_path / "peer.ome.zarr"), ms, version="0.6")
    first = read_ome_zarr(tmp_path / "peer.ome.zarr")
    again = save_image(first, tmp_path / "again.ome.zarr", keep_levels=True, ngff_version="0.6")
    second = read_ome_zarr(again)
    validate_ngff({"ome": root_ome(again)}, "0.6", "image")
    np.testing.assert_allclose(second.world_affine, first.world_affine, atol=1e-12)
    for k in range(first.num_levels):
        np.testing.assert_array_equal(
            np.asarray(second.levels[k].data[...]), np.asarray(first.levels[k].data[...])
        )
        for index in [(0, 0, 0), (3, 5, 7)]:
            np.testing.assert_allclose(
                model_world(second, k, index), model_world(first, k, index), atol=1e-9
            )


def test_05_still_drops_the_affine_with_a_warning(tmp_path, caplog):
    image = oblique_image(with_labels=False)
    with caplog.at_level(logging.WARNING):
        ZarrNii(image).to_ome_zarr(tmp_path / "o.ome.zarr", max_layer=0)
    assert "OME-NGFF 0.6 keeps the rotation" in caplog.text
    ome = root_ome(tmp_path / "o.ome.zarr")
    assert ome["version"] == "0.5" and "coordinateTransformations" not in ome["multiscales"][0]


# -- napari layers ---------------------------------------------------------------------------


def _rotated_layer_tuple():
    from napari.layers import Image

    layer = Image(
        ramp((8, 40, 30)),
        name="rotated",
        scale=(2.0, 0.5, 0.25),
        translate=(1.0, -2.0, 4.0),
        rotate=rotation((1, 0, 0), 30),
        shear=(0.1, 0.0, 0.2),
        axis_labels=("z", "y", "x"),
    )
    return layer, layer.as_layer_data_tuple()


def test_06_writer_keeps_rotation_and_shear(tmp_path):
    layer, item = _rotated_layer_tuple()
    pm = npe2.PluginManager.instance()
    pm.discover(include_npe1=False)
    (writer,) = [
        w
        for w in pm.get_manifest("napari-zarrnii").contributions.writers
        if w.command == "napari-zarrnii.write_layers_06"
    ]
    assert writer.display_name == "OME-Zarr 0.6 (napari-zarrnii)"
    out = tmp_path / "rot.ome.zarr"
    assert writer.exec(args=[str(out), [item]]) == [str(out)]
    assert root_ome(out)["version"] == "0.6"
    (data, kwargs, _), *_ = image_to_layer_data(read_ome_zarr(out))
    level0 = data[0] if isinstance(data, list) else data
    np.testing.assert_array_equal(np.asarray(level0[...]), layer.data)
    for index in [(0, 0, 0), (7, 39, 29), (3, 11, 17)]:
        np.testing.assert_allclose(
            layer_world(kwargs, index), layer.data_to_world(index), atol=1e-9
        )


def test_06_writer_places_labels_rotated_with_their_image(tmp_path):
    """A labels layer sharing its image's rotate, shear and translate lands on it."""
    from napari.layers import Labels

    image, item = _rotated_layer_tuple()
    labels = Labels(
        (ramp((8, 40, 30)) % 4).astype(np.uint8),
        name="cells",
        scale=image.scale,
        translate=image.translate,
        rotate=image.rotate,
        shear=image.shear,
        axis_labels=("z", "y", "x"),
    )
    out = tmp_path / "rot.ome.zarr"
    npe2.PluginManager.instance().discover(include_npe1=False)
    written = npe2.write(
        str(out),
        [item, labels.as_layer_data_tuple()],
        plugin_name="napari-zarrnii.write_layers_06",
    )
    assert written == [str(out)]
    read = {kw["name"]: (kind, kw) for _, kw, kind in image_to_layer_data(read_ome_zarr(out))}
    kind, kwargs = read["cells"]
    assert kind == "labels"
    for index in [(0, 0, 0), (7, 39, 29), (3, 11, 17)]:
        np.testing.assert_allclose(
            layer_world(kwargs, index), labels.data_to_world(index), atol=1e-9
        )


def test_default_writer_stays_05_and_drops_rotation(tmp_path, caplog):
    _, item = _rotated_layer_tuple()
    npe2.PluginManager.instance().discover(include_npe1=False)
    with caplog.at_level(logging.WARNING):
        npe2.write(str(tmp_path / "r.ome.zarr"), [item], plugin_name="napari-zarrnii")
    assert root_ome(tmp_path / "r.ome.zarr")["version"] == "0.5"
    assert "rotate and shear cannot be stored in OME-NGFF 0.4/0.5" in caplog.text
    image = layers_to_image([item], keep_rotation=True)
    assert image.world_affine is not None and image.levels[0].translation == (0.0, 0.0, 0.0)


def test_label_linked_to_its_image_keeps_its_place_when_written_again(tmp_path):
    from .ngff06 import io as ends
    from .ngff06 import write_ngff06_store

    rot = [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]
    path, _, _ = write_ngff06_store(
        tmp_path / "linked.ome.zarr",
        data=ramp((8, 16, 16)),
        scale=(2.0, 1.0, 1.0),
        systems=[{"name": "world", "axes": [{"name": n, "type": "space"} for n in "zyx"]}],
        transforms=[
            {"type": "rotation", "rotation": rot, **ends("intrinsic", "world")},
            {  # the label's intrinsic system is the image's shifted
                "type": "translation",
                "translation": [0.0, 8.0, -8.0],
                **ends("intrinsic", "intrinsic", dst_path="labels/cells"),
            },
        ],
    )
    write_ngff06_store(
        path / "labels" / "cells",
        data=(ramp((8, 16, 16)) % 3).astype("uint8"),
        scale=(2.0, 1.0, 1.0),
        extra={"image-label": {}},
        name="cells",
    )
    zarr.open_group(str(path / "labels"), mode="a", zarr_format=3).attrs["ome"] = {
        "version": "0.6",
        "labels": ["cells"],
    }
    first = read_ome_zarr(path)
    again = read_ome_zarr(save_image(first, tmp_path / "again.ome.zarr", keep_levels=True,
                                     ngff_version="0.6"))  # fmt: skip
    for index in [(0, 0, 0), (3, 5, 7), (7, 15, 15)]:
        np.testing.assert_allclose(
            model_world(again.labels["cells"], 0, index),
            model_world(first.labels["cells"], 0, index),
            atol=1e-9,
        )


def test_label_rotated_against_its_image_is_placed_with_the_image(tmp_path, caplog):
    image = oblique_image()
    label = image.labels["cells"]
    tilt = np.eye(4)
    tilt[:3, :3] = rotation((1, 0, 0), 10)
    image.labels["cells"] = label.replace(world_affine=tilt)
    with caplog.at_level(logging.WARNING):
        out = write_pyramid(image, tmp_path / "o.ome.zarr", max_layer=0, ngff_version="0.6")
    assert "label 'cells' is rotated against its image" in caplog.text
    back = read_ome_zarr(out)
    np.testing.assert_allclose(
        model_world(back.labels["cells"], 0, (1, 2, 3)),
        model_world(image, 0, (0, 1, 2, 3))[1:],
        atol=1e-9,
    )
