"""The npe2 writer (File > Save Layers): image, multiscale, labels and several layers."""

from __future__ import annotations

import json

import npe2
import numpy as np
import pytest

from napari_zarrnii.core.omezarr import read_ome_zarr

from .conftest import ramp
from .ngff_schemas import validate_ngff


@pytest.fixture(autouse=True)
def _discover():
    npe2.PluginManager.instance().discover(include_npe1=False)


def _root_attrs(path):
    meta = json.loads((path / "zarr.json").read_text())
    return meta["attributes"]


def _image_meta(name, **extra):
    meta = {
        "name": name,
        "scale": [2.0, 0.5, 0.5],
        "translate": [10.0, -4.0, 3.0],
        "colormap": "magenta",
        "contrast_limits": [5.0, 900.0],
        "visible": True,
        "axis_labels": ["z", "y", "x"],
        "units": ["micrometer", "micrometer", "micrometer"],
    }
    meta.update(extra)
    return meta


def test_single_image_gets_a_valid_pyramid(tmp_path):
    data = ramp((16, 600, 300))
    out = tmp_path / "one.ome.zarr"
    written = npe2.write(
        str(out), [(data, _image_meta("cells"), "image")], plugin_name="napari-zarrnii"
    )
    assert written == [str(out)]
    validate_ngff(_root_attrs(out), "0.5", "image")
    image = read_ome_zarr(out)
    assert image.num_levels >= 2
    np.testing.assert_array_equal(np.asarray(image.levels[0].data[...]), data)
    assert image.levels[0].scale == pytest.approx((2.0, 0.5, 0.5))
    assert image.levels[0].translation == pytest.approx((10.0, -4.0, 3.0))
    assert image.units == ("micrometer",) * 3
    (channel,) = image.channel_infos()
    assert (channel.label, channel.color) == ("cells", "FF00FF")
    assert (channel.window.start, channel.window.end) == (5.0, 900.0)
    # level 1 is the block mean, centred between the fine voxels it averages
    level1 = image.levels[1]
    f = np.asarray(level1.scale) / np.asarray(image.levels[0].scale)
    expected = np.asarray((10.0, -4.0, 3.0)) + (f - 1) / 2 * np.asarray((2.0, 0.5, 0.5))
    assert level1.translation == pytest.approx(tuple(expected))


def test_multiscale_layer_is_written_as_it_is(tmp_path):
    levels = [ramp((64, 64)), ramp((32, 32)), ramp((16, 16))]
    meta = {
        "name": "ms",
        "multiscale": True,
        "scale": [1.0, 1.0],
        "translate": [0.0, 0.0],
        "axis_labels": ["y", "x"],
    }
    out = tmp_path / "ms.ome.zarr"
    npe2.write(str(out), [(levels, meta, "image")], plugin_name="napari-zarrnii")
    image = read_ome_zarr(out)
    assert [lvl.shape for lvl in image.levels] == [(64, 64), (32, 32), (16, 16)]
    for lvl, ref in zip(image.levels, levels):
        np.testing.assert_array_equal(np.asarray(lvl.data[...]), ref)
    assert image.levels[2].scale == pytest.approx((4.0, 4.0))
    assert image.levels[2].translation == pytest.approx((1.5, 1.5))


def test_image_layers_become_channels_and_labels_go_under_labels(tmp_path):
    a, b = ramp((4, 300, 300)), ramp((4, 300, 300))[::-1].copy()
    seg = (ramp((4, 300, 300)) % 4).astype(np.uint32)
    out = tmp_path / "multi.ome.zarr"
    npe2.write(
        str(out),
        [
            (a, _image_meta("DAPI", colormap="blue"), "image"),
            (b, _image_meta("GFP", colormap="green", visible=False), "image"),
            (
                seg,
                {"name": "nuclei", "scale": [2.0, 0.5, 0.5], "translate": [10.0, -4.0, 3.0]},
                "labels",
            ),
        ],
        plugin_name="napari-zarrnii",
    )
    validate_ngff(_root_attrs(out), "0.5", "image")
    image = read_ome_zarr(out)
    assert image.axis_names == ("c", "z", "y", "x")
    assert [(c.label, c.color, c.active) for c in image.channel_infos()] == [
        ("DAPI", "0000FF", True),
        ("GFP", "00FF00", False),
    ]
    np.testing.assert_array_equal(np.asarray(image.levels[0].data[1]), b)
    label = image.labels["nuclei"]
    validate_ngff(
        json.loads((out / "labels" / "nuclei" / "zarr.json").read_text())["attributes"],
        "0.5",
        "label",
    )
    np.testing.assert_array_equal(np.asarray(label.levels[0].data[...]), seg)
    # a label level never holds a value that is not in the finer level
    assert set(np.unique(np.asarray(label.levels[1].data[...]))) <= set(np.unique(seg))


def test_labels_layer_alone(tmp_path):
    seg = (ramp((64, 64)) % 7).astype(np.uint16)
    out = tmp_path / "seg.ome.zarr"
    npe2.write(str(out), [(seg, {"name": "seg"}, "labels")], plugin_name="napari-zarrnii")
    image = read_ome_zarr(out)
    assert image.is_label
    np.testing.assert_array_equal(np.asarray(image.levels[0].data[...]), seg)


def test_existing_destination_is_never_replaced(tmp_path):
    out = tmp_path / "keep.ome.zarr"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="already exists"):
        npe2.write(
            str(out), [(ramp((8, 8)), {"name": "x"}, "image")], plugin_name="napari-zarrnii"
        )
    assert (out / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.ome.zarr"]


def test_written_store_is_read_by_napari_ome_zarr(tmp_path):
    from napari_ome_zarr._reader import napari_get_reader

    data = ramp((2, 8, 64, 64))
    out = tmp_path / "peer.ome.zarr"
    npe2.write(
        str(out),
        [
            (data[0], _image_meta("A", colormap="red"), "image"),
            (data[1], _image_meta("B", colormap="green"), "image"),
        ],
        plugin_name="napari-zarrnii",
    )
    reader = napari_get_reader(str(out))
    assert reader is not None
    layers = reader(str(out))
    image_layers = [ly for ly in layers if (ly[2] if len(ly) > 2 else "image") == "image"]
    assert image_layers
    pyramid, kwargs = image_layers[0][0], image_layers[0][1]
    np.testing.assert_array_equal(np.asarray(pyramid[0])[1], data[1])
    names = kwargs.get("name")
    assert [str(n).rsplit(" ", 1)[-1] for n in names] == ["A", "B"]
    scale = np.asarray(kwargs["scale"])
    assert scale[-3:] == pytest.approx((2.0, 0.5, 0.5))


def _writer_06():
    manifest = npe2.PluginManager.instance().get_manifest("napari-zarrnii")
    (writer,) = [
        w for w in manifest.contributions.writers if w.command.endswith("write_layers_06")
    ]
    return writer


def test_06_writer_output_is_read_by_napari_ome_zarr_and_ngff_zarr(tmp_path):
    import contextlib
    import io

    from napari_ome_zarr._reader import napari_get_reader
    from ngff_zarr import from_ngff_zarr

    data = ramp((2, 8, 64, 64))
    seg = (ramp((8, 64, 64)) % 5).astype(np.uint8)
    out = tmp_path / "peer06.ome.zarr"
    written = _writer_06().exec(
        args=[
            str(out),
            [
                (data[0], _image_meta("A", colormap="red"), "image"),
                (data[1], _image_meta("B", colormap="green"), "image"),
                (
                    seg,
                    {"name": "seg", "scale": [2.0, 0.5, 0.5], "translate": [10.0, -4.0, 3.0]},
                    "labels",
                ),
            ],
        ]
    )
    assert written == [str(out)]
    validate_ngff(_root_attrs(out), "0.6", "image")
    assert _root_attrs(out)["ome"]["version"] == "0.6"
    with contextlib.redirect_stdout(io.StringIO()):
        layers = napari_get_reader(str(out))(str(out))
    (pyramid, kwargs, _), (labels, label_kwargs, kind) = layers
    assert kind == "labels"
    np.testing.assert_array_equal(np.asarray(pyramid[0])[1], data[1])
    np.testing.assert_array_equal(np.asarray(labels[0]), seg)
    assert [str(n).rsplit(" ", 1)[-1] for n in kwargs["name"]] == ["A", "B"]
    for peer in (kwargs, label_kwargs):
        index = np.array([3.0, 10.0, 20.0])
        got = peer["affine"](np.asarray(peer["scale"]) * index)
        np.testing.assert_allclose(got, np.array([10.0, -4.0, 3.0]) + [2.0, 0.5, 0.5] * index)
    ms = from_ngff_zarr(str(out), validate=True)
    assert ms.images[0].scale == {"c": 1.0, "z": 2.0, "y": 0.5, "x": 0.5}
    assert ms.images[0].translation == {"c": 0.0, "z": 10.0, "y": -4.0, "x": 3.0}
    np.testing.assert_array_equal(np.asarray(ms.images[0].data), data)
