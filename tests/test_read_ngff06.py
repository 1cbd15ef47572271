"""Reading OME-NGFF 0.6 (RFC-5 coordinate systems): stores from ngff-zarr and by hand.

World positions are checked two independent ways: through the napari layer
arguments (``affine @ (scale * index + translate)``) and from the JSON with numpy
(:func:`tests.ngff06.world_point`).
"""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import zarr

from napari_zarrnii import InvalidMetadataError
from napari_zarrnii._errors import SelectionError
from napari_zarrnii._layers import image_to_layer_data
from napari_zarrnii.core.omezarr import read_ome_zarr

from .conftest import ramp
from .ngff06 import io, world_point, write_ngff06_store, write_parameters

ngff_zarr = pytest.importorskip("ngff_zarr")


def layer_world(kwargs: dict, index) -> np.ndarray:
    """Where napari puts data index ``index`` of a layer made from ``kwargs``."""
    scale = np.asarray(kwargs["scale"], float)
    translate = np.asarray(kwargs["translate"], float)
    affine = np.asarray(kwargs.get("affine", np.eye(len(scale) + 1)), float)
    return (affine @ np.array([*(scale * np.asarray(index, float) + translate), 1.0]))[:-1]


def level_world(image, level: int, index) -> np.ndarray:
    """Where the model puts voxel ``index`` of ``level``."""
    lvl = image.levels[level]
    p = np.asarray(lvl.scale) * np.asarray(index, float) + np.asarray(lvl.translation)
    if image.world_affine is None:
        return p
    return (image.world_affine @ np.array([*p, 1.0]))[:-1]


def rot_x(degrees: float) -> list[list[float]]:
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    return [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]


# -- ngff-zarr 0.50, version="0.6" ---------------------------------------------------------


def _ngff_zarr_multiscales(data, dims, **image_kwargs):
    scale = {"z": 2.0, "y": 0.5, "x": 0.25}
    translation = {"z": 10.0, "y": -3.0, "x": 4.0}
    img = ngff_zarr.to_ngff_image(
        data,
        dims=dims,
        scale={d: v for d, v in scale.items() if d in dims},
        translation={d: v for d, v in translation.items() if d in dims},
        name="peer",
        axes_units={d: "micrometer" for d in dims if d in "zyx"},
    )
    return ngff_zarr.to_multiscales(img, scale_factors=[2, 4], **image_kwargs)


@pytest.mark.parametrize("dims", [("z", "y", "x"), ("c", "z", "y", "x")])
def test_ngff_zarr_06_store_reads_like_its_05_twin(tmp_path, dims):
    data = ramp((2, 16, 32, 32)[-len(dims) :])
    ms = _ngff_zarr_multiscales(data, dims)
    paths = {}
    for version in ("0.5", "0.6"):
        paths[version] = tmp_path / f"peer{version}.ome.zarr"
        ngff_zarr.to_ngff_zarr(str(paths[version]), ms, version=version)
    stored = json.loads((paths["0.6"] / "zarr.json").read_text())["attributes"]["ome"]
    assert stored["version"] == "0.6" and "coordinateSystems" in stored["multiscales"][0]
    old, new = read_ome_zarr(paths["0.5"]), read_ome_zarr(paths["0.6"])
    assert new.ngff_version == "0.6" and old.ngff_version == "0.5"
    assert new.axes == old.axes and new.axis_names == dims
    assert new.units == old.units
    assert new.world_affine is None
    assert new.num_levels == old.num_levels == 3
    peer = ngff_zarr.from_ngff_zarr(str(paths["0.6"]))
    for k, (a, b) in enumerate(zip(new.levels, old.levels)):
        np.testing.assert_array_equal(np.asarray(a.data[...]), np.asarray(b.data[...]))
        assert a.scale == pytest.approx(b.scale) and a.translation == pytest.approx(b.translation)
        # and where ngff-zarr itself puts each level
        assert a.scale == pytest.approx([peer.images[k].scale.get(d, 1.0) for d in dims])
        assert a.translation == pytest.approx(
            [peer.images[k].translation.get(d, 0.0) for d in dims]
        )
    np.testing.assert_array_equal(np.asarray(new.levels[0].data[...]), data)
    assert new.notes == []


def test_same_world_positions_as_napari_ome_zarr(tmp_path):
    napari_ome_zarr_reader = pytest.importorskip("napari_ome_zarr._reader")
    dims = ("c", "z", "y", "x")
    ms = _ngff_zarr_multiscales(ramp((2, 16, 32, 32)), dims)
    path = tmp_path / "peer.ome.zarr"
    ngff_zarr.to_ngff_zarr(str(path), ms, version="0.6")
    peer_layers = napari_ome_zarr_reader.napari_get_reader(str(path))(str(path))
    (_, peer, _) = peer_layers[0]
    ours = image_to_layer_data(read_ome_zarr(path))
    assert len(ours) == 2 and peer["channel_axis"] == 0
    for index in [(0, 0, 0), (3, 5, 7), (15, 31, 31)]:
        expected = peer["affine"](np.asarray(peer["scale"]) * index)
        for _, kwargs, _ in ours:
            np.testing.assert_allclose(layer_world(kwargs, index), expected)


def test_ngff_zarr_06_orientation_reaches_the_layer_metadata(tmp_path):
    ms = _ngff_zarr_multiscales(ramp((16, 32, 32)), ("z", "y", "x"), orientation="RAS")
    ngff_zarr.to_ngff_zarr(str(tmp_path / "ras.ome.zarr"), ms, version="0.6")
    image = read_ome_zarr(tmp_path / "ras.ome.zarr")
    assert [a.orientation for a in image.axes] == [
        "inferior-to-superior",
        "posterior-to-anterior",
        "left-to-right",
    ]
    (_, kwargs, _), *_ = image_to_layer_data(image)
    axes = kwargs["metadata"]["napari_zarrnii"]["axes"]
    assert axes[2] == {
        "name": "x",
        "type": "space",
        "unit": "micrometer",
        "orientation": "left-to-right",
    }


def test_orientation_is_read_from_05_axes_too(tmp_path):
    ms = _ngff_zarr_multiscales(ramp((8, 16, 16)), ("z", "y", "x"), orientation="LPS")
    ngff_zarr.to_ngff_zarr(str(tmp_path / "lps.ome.zarr"), ms, version="0.5")
    image = read_ome_zarr(tmp_path / "lps.ome.zarr")
    assert image.axes[2].orientation == "right-to-left"


def test_ngff_zarr_affine_stored_in_an_array(tmp_path):
    from ngff_zarr.v06.zarr_metadata import (
        Affine,
        CoordinateSystem,
        CoordinateSystemIdentifier,
    )
    from ngff_zarr.v06.zarr_metadata import Axis as PeerAxis

    ms = _ngff_zarr_multiscales(ramp((16, 32, 32)), ("z", "y", "x"))
    world_axes = [PeerAxis(name=d, type="space", unit="micrometer") for d in "zyx"]
    ms.metadata.coordinateSystems.append(CoordinateSystem(name="world", axes=world_axes))
    matrix = [[0.0, 1.0, 0.0, 5.0], [1.0, 0.0, 0.0, 6.0], [0.2, 0.0, 1.0, 7.0]]
    ms.metadata.coordinateTransformations = [
        Affine(
            affine=matrix,
            input=CoordinateSystemIdentifier(name="intrinsic"),
            output=CoordinateSystemIdentifier(name="world"),
        )
    ]
    path = tmp_path / "affine.ome.zarr"
    ngff_zarr.to_ngff_zarr(str(path), ms, version="0.6")
    written = json.loads((path / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
    assert "path" in written["coordinateTransformations"][0]  # the matrix is in an array

    intrinsic = read_ome_zarr(path, coordinate_system="intrinsic")
    assert intrinsic.world_affine is None
    assert intrinsic.notes == ["shown in coordinate system 'intrinsic'; also defined: 'world'"]

    world = read_ome_zarr(path)  # by default where the author placed it
    assert world.notes == ["shown in coordinate system 'world'; also defined: 'intrinsic'"]
    np.testing.assert_allclose(world.world_affine[:3], matrix)
    (_, kwargs, _), *_ = image_to_layer_data(world)
    for index in [(0, 0, 0), (3, 5, 7), (15, 31, 31)]:
        expected = world_point(written, 0, index, [{"type": "affine", "affine": matrix}])
        np.testing.assert_allclose(layer_world(kwargs, index), expected)
        for k in range(3):
            np.testing.assert_allclose(
                level_world(world, k, index),
                world_point(written, k, index, [{"type": "affine", "affine": matrix}]),
            )


# -- hand-written stores: every kind of transformation -----------------------------------------

WORLD = {
    "name": "world",
    "axes": [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"],
}

CHAINS = {
    "affine": [
        {"type": "affine", "affine": [[1, 0.5, 0, 3], [0, 1, 0, -2], [0.1, 0, 2, 1]]},
    ],
    "rotation": [{"type": "rotation", "rotation": rot_x(30)}],
    "mapAxis": [{"type": "mapAxis", "mapAxis": [1, 2, 0]}],
    "sequence": [
        {
            "type": "sequence",
            "transformations": [
                {"type": "rotation", "rotation": rot_x(-45)},
                {"type": "translation", "translation": [1, 2, 3]},
                {"type": "scale", "scale": [2, 1, 0.5]},
            ],
        }
    ],
    "scale": [{"type": "scale", "scale": [10, 10, 10]}],
    "scale+translation": [
        {
            "type": "sequence",
            "transformations": [
                {"type": "scale", "scale": [3, 1, 2]},
                {"type": "translation", "translation": [100, 0, -50]},
            ],
        }
    ],
    "byDimension": [
        {
            "type": "byDimension",
            "transformations": [
                {
                    "transformation": {"type": "rotation", "rotation": [[0, -1], [1, 0]]},
                    "inputAxes": [1, 2],
                    "outputAxes": [1, 2],
                },
                {
                    "transformation": {"type": "translation", "translation": [4]},
                    "inputAxes": [0],
                    "outputAxes": [0],
                },
            ],
        }
    ],
}
DIAGONAL = {"scale", "scale+translation"}
VOXELS = [(0, 0, 0), (3, 5, 7), (7, 15, 1), (1, 2, 15)]


@pytest.mark.parametrize("kind", sorted(CHAINS))
def test_multiscale_transformation_places_every_level(tmp_path, kind):
    (chain,) = CHAINS[kind]
    path, levels, ms = write_ngff06_store(
        tmp_path / f"{kind}.ome.zarr",
        data=ramp((16, 32, 32)),
        scale=(2.0, 0.5, 0.25),
        translation=(1.0, -4.0, 8.0),
        n_levels=3,
        systems=[WORLD],
        transforms=[{**chain, **io("intrinsic", "world")}],
    )
    intrinsic = read_ome_zarr(path, coordinate_system="intrinsic")
    assert intrinsic.world_affine is None
    assert intrinsic.levels[0].scale == pytest.approx((2.0, 0.5, 0.25))
    assert intrinsic.levels[0].translation == pytest.approx((1.0, -4.0, 8.0))

    image = read_ome_zarr(path)  # the default: 'world', where the transformation leads
    explicit = read_ome_zarr(path, coordinate_system="world")
    assert [lvl.scale for lvl in image.levels] == [lvl.scale for lvl in explicit.levels]
    assert [lvl.translation for lvl in image.levels] == [
        lvl.translation for lvl in explicit.levels
    ]
    if kind in DIAGONAL:
        assert image.world_affine is None and explicit.world_affine is None
    else:
        np.testing.assert_array_equal(image.world_affine, explicit.world_affine)
    assert image.notes == ["shown in coordinate system 'world'; also defined: 'intrinsic'"]
    for k, level in enumerate(levels):
        np.testing.assert_array_equal(np.asarray(image.levels[k].data[...]), level)
    (_, kwargs, kind_), *_ = image_to_layer_data(image)
    assert kind_ == "image"
    assert ("affine" in kwargs) == (kind not in DIAGONAL)
    for index in VOXELS:
        expected = world_point(ms, 0, index, [chain])
        np.testing.assert_allclose(layer_world(kwargs, index), expected, atol=1e-9)
        for k in range(3):
            small = tuple(i // 2**k for i in index)
            np.testing.assert_allclose(
                level_world(image, k, small), world_point(ms, k, small, [chain]), atol=1e-9
            )


def test_transformation_given_towards_the_intrinsic_system_is_inverted(tmp_path):
    to_intrinsic = {"type": "affine", "affine": [[0, 1, 0, 2], [1, 0, 0, 0], [0, 0, 4, -1]]}
    path, _, ms = write_ngff06_store(
        tmp_path / "inverse.ome.zarr",
        data=ramp((8, 16, 16)),
        scale=(1.0, 0.5, 0.5),
        systems=[WORLD],
        transforms=[{**to_intrinsic, **io("world", "intrinsic")}],
    )
    image = read_ome_zarr(path, coordinate_system="world")
    (_, kwargs, _), *_ = image_to_layer_data(image)
    full = np.vstack([np.asarray(to_intrinsic["affine"], float), [0, 0, 0, 1]])
    for index in VOXELS[:3]:
        intrinsic = world_point(ms, 0, index)
        expected = np.linalg.solve(full, np.array([*intrinsic, 1.0]))[:-1]
        np.testing.assert_allclose(layer_world(kwargs, index), expected, atol=1e-9)


def test_bijection_inverse_member_is_used_backwards(tmp_path):
    forward = {"type": "scale", "scale": [2, 2, 2]}
    inverse = {"type": "scale", "scale": [0.5, 0.5, 0.5]}
    path, _, ms = write_ngff06_store(
        tmp_path / "bijection.ome.zarr",
        data=ramp((8, 16, 16)),
        systems=[WORLD],
        transforms=[
            {
                "type": "bijection",
                "forward": forward,
                "inverse": inverse,
                **io("world", "intrinsic"),
            }
        ],
    )
    image = read_ome_zarr(path, coordinate_system="world")
    np.testing.assert_allclose(level_world(image, 0, (2, 4, 6)), world_point(ms, 0, (2, 4, 6)) / 2)


def test_displacement_field_opens_with_a_note(tmp_path):
    path, levels, _ = write_ngff06_store(
        tmp_path / "displaced.ome.zarr",
        data=ramp((8, 16, 16)),
        scale=(2.0, 2.0, 2.0),
        intrinsic="physical",
        systems=[{**WORLD, "name": "output"}],
        transforms=[
            {
                "type": "displacements",
                "path": "coordinateTransformations/displacementField",
                "interpolation": "linear",
                **io("physical", "output"),
            }
        ],
    )
    for choice in (None, "output"):
        image = read_ome_zarr(path, coordinate_system=choice)
        assert image.world_affine is None
        assert image.levels[0].scale == (2.0, 2.0, 2.0)
        np.testing.assert_array_equal(np.asarray(image.levels[1].data[...]), levels[1])
        notes = "\n".join(image.notes)
        assert "coordinate system 'output' cannot be shown" in notes
        assert "displacement field ('coordinateTransformations/displacementField')" in notes
        (_, kwargs, _), *_ = image_to_layer_data(image)
        assert "affine" not in kwargs
        assert kwargs["metadata"]["napari_zarrnii"]["notes"] == image.notes


def test_channel_axis_stays_out_of_the_affine(tmp_path):
    # 4-D c, z, y, x with a rotation of the spatial axes written as a 4x5 affine
    rot = np.asarray(rot_x(60))
    affine = np.zeros((4, 5))
    affine[0, 0] = 1.0
    affine[1:, 1:4] = rot
    affine[1:, 4] = (5, 6, 7)
    c_world = {"name": "world", "axes": [{"name": "c", "type": "channel"}, *WORLD["axes"]]}
    path, _, ms = write_ngff06_store(
        tmp_path / "channels.ome.zarr",
        data=ramp((2, 8, 16, 16)),
        axes="czyx",
        scale=(1.0, 2.0, 0.5, 0.5),
        systems=[c_world],
        transforms=[{"type": "affine", "affine": affine.tolist(), **io("intrinsic", "world")}],
    )
    image = read_ome_zarr(path, coordinate_system="world")
    layers = image_to_layer_data(image)
    assert len(layers) == 2
    for c, (data, kwargs, _) in enumerate(layers):
        assert kwargs["affine"].shape == (4, 4)
        assert tuple(data[0].shape) == (8, 16, 16)
        for index in VOXELS[:3]:
            expected = world_point(ms, 0, (c, *index), [{"type": "affine", "affine": affine}])
            assert expected[0] == c
            np.testing.assert_allclose(layer_world(kwargs, index), expected[1:], atol=1e-9)


def test_a_system_mixing_the_channel_axis_is_not_shown(tmp_path):
    mixing = np.eye(4, 5)
    mixing[0, 1] = 0.5  # channel coordinate depends on z
    c_world = {"name": "world", "axes": [{"name": "c", "type": "channel"}, *WORLD["axes"]]}
    path, _, _ = write_ngff06_store(
        tmp_path / "mixing.ome.zarr",
        data=ramp((2, 8, 16, 16)),
        axes="czyx",
        systems=[c_world],
        transforms=[{"type": "affine", "affine": mixing.tolist(), **io("intrinsic", "world")}],
    )
    image = read_ome_zarr(path, coordinate_system="world")
    assert image.world_affine is None
    assert any("channel axis 'c'" in n for n in image.notes)
    default = read_ome_zarr(path)  # not shown, so not the default either
    assert default.world_affine is None and default.levels[0].scale == (1.0, 1.0, 1.0, 1.0)


def _add_label(
    path, name: str, data: np.ndarray, *, scale=(1.0, 1.0, 1.0), translation=(0.0, 0.0, 0.0)
):
    write_ngff06_store(
        path / "labels" / name,
        data=data,
        n_levels=2,
        scale=scale,
        translation=translation,
        extra={"image-label": {"colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}]}},
        name=name,
    )
    group = zarr.open_group(str(path / "labels"), mode="a", zarr_format=3)
    names = list(group.attrs.get("ome", {}).get("labels", []))
    group.attrs["ome"] = {"version": "0.6", "labels": [*names, name]}


def test_labels_follow_the_image_into_its_system(tmp_path):
    link = {"type": "translation", "translation": [0.0, 8.0, -8.0]}  # image -> label
    chain = {"type": "rotation", "rotation": rot_x(90)}
    path, _, _ = write_ngff06_store(
        tmp_path / "labelled.ome.zarr",
        data=ramp((8, 16, 16)),
        scale=(2.0, 1.0, 1.0),
        systems=[WORLD],
        transforms=[
            {**chain, **io("intrinsic", "world")},
            {**link, **io("intrinsic", "intrinsic", dst_path="labels/cells")},
        ],
    )
    cells = (ramp((8, 16, 16)) % 3).astype("uint8")
    _add_label(path, "cells", cells, scale=(2.0, 1.0, 1.0))
    _add_label(path, "plain", cells)

    intrinsic = read_ome_zarr(path, coordinate_system="intrinsic")
    label = intrinsic.labels["cells"]
    assert label.is_label and label.ngff_version == "0.6"
    # the label's intrinsic system is the image's shifted by the link
    np.testing.assert_allclose(level_world(label, 0, (1, 2, 3)), (2.0, 2.0 - 8.0, 3.0 + 8.0))
    plain = intrinsic.labels["plain"]
    assert plain.world_affine is None and plain.levels[0].scale == (1.0, 1.0, 1.0)

    world = read_ome_zarr(path)  # the default: 'world', and the labels follow
    layers = {kw["name"]: (kw, kind) for _, kw, kind in image_to_layer_data(world)}
    kwargs, kind = layers["cells"]
    assert kind == "labels"
    rot = np.asarray(rot_x(90))
    for index in VOXELS[:3]:
        in_label = np.array([2.0, 1.0, 1.0]) * index
        expected = rot @ (in_label - np.asarray(link["translation"]))
        np.testing.assert_allclose(layer_world(kwargs, index), expected, atol=1e-9)
    plain_kwargs, _ = layers["plain"]
    np.testing.assert_allclose(layer_world(plain_kwargs, (1, 2, 3)), rot @ [1, 2, 3], atol=1e-9)


def test_plate_well_and_bioformats2raw_06(tmp_path):
    plate = tmp_path / "plate.ome.zarr"
    root = zarr.open_group(str(plate), mode="w", zarr_format=3)
    wells = [("A", "1", 0, 0), ("B", "2", 1, 1)]
    root.attrs["ome"] = {
        "version": "0.6",
        "plate": {
            "name": "p",
            "rows": [{"name": "A"}, {"name": "B"}],
            "columns": [{"name": "1"}, {"name": "2"}],
            "wells": [
                {"path": f"{r}/{c}", "rowIndex": ri, "columnIndex": ci} for r, c, ri, ci in wells
            ],
        },
    }
    fields = {}
    for r, c, _, _ in wells:
        well = zarr.open_group(str(plate / r / c), mode="a", zarr_format=3)
        well.attrs["ome"] = {"version": "0.6", "well": {"images": [{"path": "0"}]}}
        data = ramp((2, 16, 16)) + (1000 if r == "B" else 0)
        _, levels, _ = write_ngff06_store(
            plate / r / c / "0", data=data.astype("uint16"), axes="cyx", scale=(1.0, 0.5, 0.5)
        )
        fields[r] = levels
    mosaic = read_ome_zarr(plate)
    assert mosaic.ngff_version == "0.6" and mosaic.shape == (2, 32, 32)
    np.testing.assert_array_equal(np.asarray(mosaic.levels[0].data[:, 16:, 16:]), fields["B"][0])
    well = read_ome_zarr(plate / "B" / "2")
    np.testing.assert_array_equal(np.asarray(well.levels[0].data[...]), fields["B"][0])
    assert well.levels[0].scale == (1.0, 0.5, 0.5)

    bf2raw = tmp_path / "bf.ome.zarr"
    top = zarr.open_group(str(bf2raw), mode="w", zarr_format=3)
    top.attrs["ome"] = {"version": "0.6", "bioformats2raw.layout": 3}
    ome = top.create_group("OME")
    ome.attrs["ome"] = {"version": "0.6", "series": ["0", "1"]}
    for s in ("0", "1"):
        write_ngff06_store(bf2raw / s, data=ramp((4, 8, 8)) + int(s), name=f"series {s}")
    second = read_ome_zarr(bf2raw, series=1)
    assert second.ngff_version == "0.6" and second.name == "series 1"
    np.testing.assert_array_equal(np.asarray(second.levels[0].data[...]), ramp((4, 8, 8)) + 1)


@pytest.mark.parametrize("tag", ["0.6", "0.6rc0", "0.6.dev4"])
def test_released_and_pre_release_tags_read_as_06(tmp_path, tag):
    path, _, _ = write_ngff06_store(tmp_path / "t.ome.zarr", data=ramp((4, 8, 8)), version=tag)
    assert read_ome_zarr(path).ngff_version == "0.6"


def test_default_is_the_first_transformation_out_of_intrinsic_that_can_be_shown(tmp_path):
    systems = [{**WORLD, "name": name} for name in ("warped", "behind", "aligned", "scaled")]
    path, _, ms = write_ngff06_store(
        tmp_path / "several.ome.zarr",
        data=ramp((8, 16, 16)),
        systems=systems,
        transforms=[
            {"type": "displacements", "path": "field", **io("intrinsic", "warped")},
            # towards the intrinsic system: not where the author placed the image
            {"type": "scale", "scale": [2, 2, 2], **io("behind", "intrinsic")},
            {"type": "rotation", "rotation": rot_x(30), **io("intrinsic", "aligned")},
            {"type": "scale", "scale": [3, 3, 3], **io("intrinsic", "scaled")},
        ],
    )
    image = read_ome_zarr(path)
    assert image.notes[0] == (
        "shown in coordinate system 'aligned'; also defined: 'intrinsic', 'warped', "
        "'behind', 'scaled'"
    )
    rotation = {"type": "rotation", "rotation": rot_x(30)}
    np.testing.assert_allclose(
        level_world(image, 0, (1, 2, 3)), world_point(ms, 0, (1, 2, 3), [rotation]), atol=1e-12
    )
    # any system still selects, the intrinsic one included
    assert read_ome_zarr(path, coordinate_system="scaled").levels[0].scale == (3.0, 3.0, 3.0)
    assert read_ome_zarr(path, coordinate_system="intrinsic").world_affine is None

    only_backwards, _, _ = write_ngff06_store(
        tmp_path / "backwards.ome.zarr",
        data=ramp((8, 16, 16)),
        systems=[WORLD],
        transforms=[{"type": "scale", "scale": [2, 2, 2], **io("world", "intrinsic")}],
    )
    assert (
        read_ome_zarr(only_backwards).notes[0].startswith("shown in coordinate system 'intrinsic'")
    )


def test_unknown_coordinate_system(tmp_path):
    path, _, _ = write_ngff06_store(tmp_path / "t.ome.zarr", data=ramp((4, 8, 8)))
    with pytest.raises(SelectionError, match="no coordinate system 'world'"):
        read_ome_zarr(path, coordinate_system="world")


def test_coordinate_system_is_ignored_before_06(ngff_store):
    path, _ = ngff_store(version="0.5", data=ramp((4, 8, 8)), n_levels=1)
    assert read_ome_zarr(path, coordinate_system="world").world_affine is None


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda ms: ms.pop("coordinateSystems"), "multiscales[0].coordinateSystems"),
        (
            lambda ms: ms["datasets"][1]["coordinateTransformations"][0].update(
                output={"name": "elsewhere"}
            ),
            "multiscales[0].datasets",
        ),
        (
            lambda ms: ms["datasets"][0]["coordinateTransformations"][0].update(scale=[1, 1]),
            "multiscales[0].datasets[0].coordinateTransformations[0].scale",
        ),
        (lambda ms: ms["datasets"][0].pop("path"), "multiscales[0].datasets[0].path"),
    ],
)
def test_invalid_06_metadata_names_the_field(tmp_path, edit, field):
    path, _, ms = write_ngff06_store(tmp_path / "bad.ome.zarr", data=ramp((4, 8, 8)))
    edit(ms)
    group = zarr.open_group(str(path), mode="a", zarr_format=3)
    group.attrs["ome"] = {"version": "0.6", "multiscales": [ms]}
    with pytest.raises(InvalidMetadataError) as info:
        read_ome_zarr(path)
    assert info.value.field == field


def test_dataset_input_path_differing_from_the_dataset_is_only_a_warning(tmp_path, caplog):
    path, _, ms = write_ngff06_store(tmp_path / "t.ome.zarr", data=ramp((4, 8, 8)))
    ms["datasets"][0]["coordinateTransformations"][0]["input"] = {"path": "elsewhere"}
    zarr.open_group(str(path), mode="a").attrs["ome"] = {"version": "0.6", "multiscales": [ms]}
    with caplog.at_level(logging.WARNING):
        image = read_ome_zarr(path)
    assert image.levels[0].path == "s0"
    assert "differs from the dataset path" in caplog.text


def test_channel_metadata_saves_into_a_06_store(tmp_path):
    from napari_zarrnii.core.metadata import read_channels, write_channels
    from napari_zarrnii.core.model import ChannelInfo

    path, _, _ = write_ngff06_store(tmp_path / "c.ome.zarr", data=ramp((2, 4, 8, 8)), axes="czyx")
    write_channels(path, [ChannelInfo("DAPI", "0000FF"), ChannelInfo("GFP", "00FF00")])
    assert [c.label for c in read_channels(path)] == ["DAPI", "GFP"]
    ome = json.loads((path / "zarr.json").read_text())["attributes"]["ome"]
    assert ome["version"] == "0.6" and "coordinateSystems" in ome["multiscales"][0]


def test_parameter_array_too_large_or_missing_is_a_note(tmp_path):
    path, _, _ = write_ngff06_store(
        tmp_path / "t.ome.zarr",
        data=ramp((4, 8, 8)),
        systems=[WORLD, {**WORLD, "name": "gone"}],
        transforms=[
            {
                "type": "affine",
                "path": "coordinateTransformations/big",
                **io("intrinsic", "world"),
            },
            {
                "type": "affine",
                "path": "coordinateTransformations/gone",
                **io("intrinsic", "gone"),
            },
        ],
    )
    write_parameters(path, "coordinateTransformations/big", np.zeros((100, 100)))
    image = read_ome_zarr(path, coordinate_system="world")
    assert image.world_affine is None
    notes = "\n".join(image.notes)
    assert "'world' cannot be shown" in notes and "too large" in notes
    assert "'gone' cannot be shown" in notes and "does not exist" in notes
