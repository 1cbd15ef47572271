"""Emitting OME-NGFF 0.6 metadata: valid against the official 0.6 schemas, read back the same.

These tests store the emitted attributes next to hand-written arrays and read them
with the package's reader; tests/test_write_ngff06.py writes 0.6 stores end to end.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import zarr

from napari_zarrnii.core.model import Axis, ChannelInfo, Level, MultiscaleImage
from napari_zarrnii.core.ngff import (
    DEFAULT_NGFF_VERSION,
    WRITABLE_VERSIONS,
    emit_dataset_transformations,
    emit_image_attrs,
    emit_labels_group_attrs,
    spec_for,
)
from napari_zarrnii.core.omezarr import read_ome_zarr

from .conftest import ramp
from .ngff_schemas import validate_ngff

ZYX = (
    Axis("z", "space", "millimeter", "inferior-to-superior"),
    Axis("y", "space", "millimeter", "posterior-to-anterior"),
    Axis("x", "space", "millimeter", "left-to-right"),
)


def make_image(
    shape=(8, 16, 16),
    axes=ZYX,
    *,
    scale=(2.0, 0.5, 0.25),
    translation=(1.0, -2.0, 3.0),
    n_levels=3,
    world_affine=None,
    **kwargs,
) -> MultiscaleImage:
    data = ramp(shape)
    spatial = [a.type == "space" for a in axes]
    levels = []
    for k in range(n_levels):
        f = 2**k
        key = tuple(slice(None, None, f) if s else slice(None) for s in spatial)
        levels.append(
            Level(
                str(k),
                data[key],
                tuple(v * f if s else v for v, s in zip(scale, spatial)),
                tuple(
                    t + (f - 1) / 2 * v if s else t for v, t, s in zip(scale, translation, spatial)
                ),
            )
        )
    return MultiscaleImage(
        axes=tuple(axes), levels=levels, world_affine=world_affine, name="emitted", **kwargs
    )


def store(path, image: MultiscaleImage, attrs: dict) -> None:
    """Arrays of ``image`` as zarr v3 plus ``attrs`` as emitted (what a writer would do)."""
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    for level in image.levels:
        arr = root.create_array(
            level.path, shape=level.shape, dtype=level.data.dtype, dimension_names=image.axis_names
        )
        arr[...] = level.data
    root.attrs.update(attrs)


def world(image: MultiscaleImage, level: int, index) -> np.ndarray:
    lvl = image.levels[level]
    p = np.asarray(lvl.scale) * np.asarray(index, float) + np.asarray(lvl.translation)
    if image.world_affine is None:
        return p
    return (np.asarray(image.world_affine) @ np.array([*p, 1.0]))[:-1]


def test_image_metadata_is_valid_and_reads_back(tmp_path):
    image = make_image()
    attrs = emit_image_attrs(image, "0.6", method="mean")
    validate_ngff(attrs, "0.6", "image")
    validate_ngff(attrs, "0.6", "strict_image")
    ome = attrs["ome"]
    assert ome["version"] == "0.6"
    (ms,) = ome["multiscales"]
    assert "axes" not in ms and "version" not in ms
    (system,) = ms["coordinateSystems"]
    assert system["name"] == "intrinsic"
    assert system["axes"][2] == {
        "name": "x",
        "type": "space",
        "unit": "millimeter",
        "orientation": {"type": "anatomical", "value": "left-to-right"},
    }
    first = ms["datasets"][0]["coordinateTransformations"]
    assert first == [
        {
            "type": "sequence",
            "input": {"path": "0"},
            "output": {"name": "intrinsic"},
            "transformations": [
                {"type": "scale", "scale": [2.0, 0.5, 0.25]},
                {"type": "translation", "translation": [1.0, -2.0, 3.0]},
            ],
        }
    ]
    store(tmp_path / "e.ome.zarr", image, attrs)
    back = read_ome_zarr(tmp_path / "e.ome.zarr")
    assert back.ngff_version == "0.6" and back.axes == image.axes and back.notes == []
    for a, b in zip(back.levels, image.levels):
        assert a.scale == pytest.approx(b.scale) and a.translation == pytest.approx(b.translation)
        np.testing.assert_array_equal(np.asarray(a.data[...]), b.data)


def test_scale_alone_when_there_is_no_translation():
    (t,) = emit_dataset_transformations((1.0, 2.0), (0.0, 0.0), "s0")
    assert t == {
        "type": "scale",
        "scale": [1.0, 2.0],
        "input": {"path": "s0"},
        "output": {"name": "intrinsic"},
    }
    with pytest.raises(ValueError, match="must be positive"):
        emit_dataset_transformations((1.0, -2.0), (0.0, 0.0), "s0")


def test_five_dimensions_with_channels_and_omero(tmp_path):
    axes = (
        Axis("t", "time", "second"),
        Axis("c", "channel"),
        Axis("z", "space", "micrometer"),
        Axis("y", "space", "micrometer"),
        Axis("x", "space", "micrometer"),
    )
    image = make_image(
        (2, 3, 4, 8, 8),
        axes,
        scale=(0.5, 1.0, 2.0, 0.25, 0.25),
        translation=(0.0, 0.0, 0.0, 0.0, 0.0),
        n_levels=2,
        channels=[ChannelInfo("a", "FF0000"), ChannelInfo("b", "00FF00"), ChannelInfo("c")],
    )
    attrs = emit_image_attrs(image, "0.6", method="mean")
    validate_ngff(attrs, "0.6", "strict_image")
    assert [c["label"] for c in attrs["ome"]["omero"]["channels"]] == ["a", "b", "c"]
    store(tmp_path / "t.ome.zarr", image, attrs)
    back = read_ome_zarr(tmp_path / "t.ome.zarr")
    assert back.axes == axes and [c.label for c in back.channels] == ["a", "b", "c"]
    assert back.levels[1].scale == pytest.approx((0.5, 1.0, 4.0, 0.5, 0.5))


def _homogeneous(linear, shift) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = linear
    m[:3, 3] = shift
    return m


_C, _S = math.cos(0.4), math.sin(0.4)
WORLD_AFFINES = {
    "rotation": (_homogeneous([[1, 0, 0], [0, _C, -_S], [0, _S, _C]], (4, 5, 6)), "rotation"),
    "permutation": (_homogeneous([[0, 0, 1], [1, 0, 0], [0, 1, 0]], (0, 0, 7)), "mapAxis"),
    "scale": (_homogeneous(np.diag([2.0, 3.0, 4.0]), (0, 0, 0)), "scale"),
    "translation": (_homogeneous(np.eye(3), (1, 2, 3)), "translation"),
    "flip": (_homogeneous(np.diag([1.0, 1.0, -1.0]), (0, 0, 30)), "affine"),
    "shear": (_homogeneous([[1, 0.3, 0], [0, 1, 0], [0, 0, 1]], (0, 0, 0)), "affine"),
}


@pytest.mark.parametrize("kind", sorted(WORLD_AFFINES))
def test_world_affine_becomes_a_multiscale_transformation(tmp_path, kind):
    affine, expected_type = WORLD_AFFINES[kind]
    image = make_image(world_affine=affine)
    attrs = emit_image_attrs(image, "0.6")
    validate_ngff(attrs, "0.6", "image")
    (ms,) = attrs["ome"]["multiscales"]
    intrinsic, world_cs = ms["coordinateSystems"]
    assert (intrinsic["name"], world_cs["name"]) == ("intrinsic", "world")
    assert all("orientation" not in a for a in intrinsic["axes"])
    assert world_cs["axes"][0]["orientation"] == {
        "type": "anatomical",
        "value": "inferior-to-superior",
    }
    (t,) = ms["coordinateTransformations"]
    assert (t["input"], t["output"]) == ({"name": "intrinsic"}, {"name": "world"})
    kinds = [m["type"] for m in t.get("transformations", [t])]
    assert kinds[0] == expected_type
    assert kinds[1:] in ([], ["translation"])

    store(tmp_path / "w.ome.zarr", image, attrs)
    intrinsic = read_ome_zarr(tmp_path / "w.ome.zarr", coordinate_system="intrinsic")
    assert intrinsic.world_affine is None
    back = read_ome_zarr(tmp_path / "w.ome.zarr")  # 'world' by default
    assert [a.orientation for a in back.axes] == [a.orientation for a in ZYX]
    for k in range(image.num_levels):
        for index in [(0, 0, 0), (1, 2, 3), (3, 7, 1)]:
            np.testing.assert_allclose(world(back, k, index), world(image, k, index), atol=1e-9)


def test_label_image_and_labels_group(tmp_path):
    label = make_image(n_levels=2, is_label=True, label_colors={1: (1.0, 0.0, 0.0, 1.0)})
    attrs = emit_image_attrs(label, "0.6")
    validate_ngff(attrs, "0.6", "image")
    validate_ngff(attrs, "0.6", "label")
    assert attrs["ome"]["image-label"]["colors"] == [{"label-value": 1, "rgba": [255, 0, 0, 255]}]
    assert "omero" not in attrs["ome"]
    assert emit_labels_group_attrs(["cells"], "0.6") == {
        "ome": {"version": "0.6", "labels": ["cells"]}
    }


def test_older_emitters_are_unchanged_and_06_is_writable():
    image = make_image()
    axes05 = emit_image_attrs(image, "0.5")["ome"]["multiscales"][0]["axes"]
    assert all("orientation" not in a for a in axes05)
    validate_ngff(emit_image_attrs(image, "0.4"), "0.4", "image")
    with pytest.raises(ValueError, match="read-only"):
        emit_image_attrs(image, "0.3")
    with pytest.raises(ValueError, match=r"0\.3 is read-only.*0\.4, 0\.5, 0\.6"):
        spec_for("0.3", writing=True)
    assert spec_for("0.6", writing=True).stores_affine
    assert WRITABLE_VERSIONS == ("0.4", "0.5", "0.6") and DEFAULT_NGFF_VERSION == "0.5"
    assert not any(spec_for(v).stores_affine for v in ("0.4", "0.5"))


@pytest.mark.parametrize("kind", ["none", *sorted(WORLD_AFFINES)])
def test_ngff_zarr_reads_what_is_emitted(tmp_path, kind):
    ngff_zarr = pytest.importorskip("ngff_zarr")
    affine = None if kind == "none" else WORLD_AFFINES[kind][0]
    image = make_image(world_affine=affine)
    path = tmp_path / "peer.ome.zarr"
    store(path, image, emit_image_attrs(image, "0.6", method="mean"))
    peer = ngff_zarr.from_ngff_zarr(str(path), validate=True)
    for level, peer_image in zip(image.levels, peer.images):
        assert [peer_image.scale[a] for a in "zyx"] == pytest.approx(level.scale)
        assert [peer_image.translation[a] for a in "zyx"] == pytest.approx(level.translation)
    transforms = peer.metadata.coordinateTransformations
    if affine is None:
        assert transforms is None
    else:
        (t,) = transforms
        assert (t.input.name, t.output.name) == ("intrinsic", "world")
