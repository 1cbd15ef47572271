"""What napari-ome-zarr users rely on: labels open over their image, greyscale rendering,
pyramids whose coarse levels repeat a shape."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import zarr

from napari_zarrnii import NotOmeZarrError, ZarrNii
from napari_zarrnii._layers import image_to_layer_data
from napari_zarrnii._reader import get_reader
from napari_zarrnii.core.omezarr import find_source_image, read_ome_zarr

from .conftest import ramp, write_ngff_store

ZYX = (("z", "space", "micrometer"), ("y", "space", "micrometer"), ("x", "space", "micrometer"))


def _ome_zarr_py_store(path, *, labels=("cells", "nuclei"), shape=(2, 8, 32, 32)):
    """An image with label images, written by ome-zarr-py (how such stores arise)."""
    from ome_zarr.writer import write_image, write_labels

    group = zarr.open_group(str(path), mode="w")
    image = ramp(shape)
    seg = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ome-zarr-py's own deprecations
        write_image(image, group, axes="czyx")
        for k, name in enumerate(labels):
            seg[name] = ((ramp(shape[1:]) + k) % (3 + k)).astype(np.uint8)
            write_labels(seg[name], group, name=name, axes="zyx")
    return image, seg


def _layers(path):
    reader = get_reader(str(path))
    assert reader is not None, f"{path} was declined"
    return reader(str(path))


# -- labels open with the image they belong to ------------------------------------------------
def test_labels_group_opens_its_image_and_all_labels(tmp_path):
    path = tmp_path / "written.ome.zarr"
    image, seg = _ome_zarr_py_store(path)
    layers = _layers(path / "labels")
    assert [kind for _, _, kind in layers] == ["image", "image", "labels", "labels"]
    assert [meta["name"] for _, meta, kind in layers if kind == "labels"] == ["cells", "nuclei"]
    np.testing.assert_array_equal(np.asarray(layers[1][0][0][3]), image[1, 3])
    np.testing.assert_array_equal(np.asarray(layers[3][0][0]), seg["nuclei"])
    # the API reads the group as its image too: there is nothing else it could mean
    opened = read_ome_zarr(path / "labels")
    assert opened.source == str(path) and list(opened.labels) == ["cells", "nuclei"]
    assert any("labels group" in note for note in opened.notes)


def test_one_label_opens_over_its_image(tmp_path):
    path = tmp_path / "written.ome.zarr"
    image, seg = _ome_zarr_py_store(path)
    layers = _layers(path / "labels" / "cells")
    assert [kind for _, _, kind in layers] == ["image", "image", "labels"]
    data, meta, _ = layers[-1]
    assert meta["name"] == "cells" and meta.get("visible", True)
    np.testing.assert_array_equal(np.asarray(data[0]), seg["cells"])
    np.testing.assert_array_equal(np.asarray(layers[0][0][0]), image[0])
    # label and image share the world: same scale and translation per voxel
    np.testing.assert_allclose(meta["scale"], layers[0][1]["scale"])
    # as an API call the label image is read as itself unless asked otherwise
    alone = read_ome_zarr(path / "labels" / "cells")
    assert alone.is_label and alone.shape == (8, 32, 32)
    assert ZarrNii.from_ome_zarr(path / "labels" / "cells").shape == (8, 32, 32)
    together = read_ome_zarr(path / "labels" / "cells", with_source_image=True)
    assert not together.is_label and list(together.labels) == ["cells"]


def test_image_label_source_is_followed(tmp_path):
    image_path, _ = write_ngff_store(tmp_path / "raw.zarr", data=ramp((4, 16, 16)), axes=ZYX)
    label_path, _ = write_ngff_store(
        tmp_path / "segmentations" / "cells.zarr", data=ramp((4, 16, 16)) % 5, axes=ZYX
    )
    group = zarr.open_group(str(label_path), mode="r+")
    group.attrs["image-label"] = {"version": "0.4", "source": {"image": "../../raw.zarr"}}
    assert find_source_image(label_path) == str(image_path)
    layers = _layers(label_path)
    assert [kind for _, _, kind in layers] == ["image", "labels"]
    assert layers[0][1]["metadata"]["napari_zarrnii"]["source"] == str(image_path)
    # a source that is no image: the label opens by itself
    group.attrs["image-label"] = {"version": "0.4", "source": {"image": "../nothing.zarr"}}
    assert find_source_image(label_path) is None
    assert [kind for _, _, kind in _layers(label_path)] == ["labels"]


def test_labels_group_without_an_image_above(tmp_path):
    orphan = tmp_path / "labels"
    write_ngff_store(orphan / "cells", data=ramp((4, 8, 8)) % 3, axes=ZYX)
    zarr.open_group(str(orphan), mode="a", zarr_format=2).attrs["labels"] = ["cells"]
    assert get_reader(str(orphan)) is None
    with pytest.raises(NotOmeZarrError, match="without an image above it"):
        read_ome_zarr(orphan)


# -- omero rendering model ------------------------------------------------------------------
@pytest.mark.parametrize(("model", "expected"), [("greyscale", "gray"), ("color", "blue")])
def test_rdefs_model_decides_grey_or_colour(ngff_store, model, expected):
    omero = {
        "rdefs": {"model": model},
        "channels": [
            {"label": "DAPI", "color": "0000FF", "window": {"start": 0, "end": 9}},
            {"label": "GFP", "color": "00FF00"},
        ],
    }
    path, _ = ngff_store(version="0.4", omero=omero)
    image = read_ome_zarr(path)
    colours = [c.color for c in image.channel_infos()]
    assert colours == (["FFFFFF"] * 2 if model == "greyscale" else ["0000FF", "00FF00"])
    layers = image_to_layer_data(image)
    assert layers[0][1]["colormap"] == expected
    assert image.attrs["omero"]["channels"][0]["color"] == "0000FF"  # stored colours kept


def test_greyscale_written_by_ome_zarr_py(tmp_path):
    from ome_zarr.writer import write_image

    group = zarr.open_group(str(tmp_path / "grey.zarr"), mode="w")
    omero = {
        "rdefs": {"model": "greyscale"},
        "channels": [
            {"label": c, "color": colour, "window": {"start": 0, "end": 9, "min": 0, "max": 9}}
            for c, colour in (("a", "FF0000"), ("b", "00FF00"))
        ],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_image(ramp((2, 16, 16)), group, axes="cyx", omero=omero)
    layers = _layers(tmp_path / "grey.zarr")
    assert [meta["colormap"] for _, meta, _ in layers] == ["gray", "gray"]


def test_a_single_coloured_channel_is_not_written_as_greyscale(tmp_path):
    znii = ZarrNii.from_array(ramp((4, 16, 16)))
    out = znii.to_ome_zarr(
        tmp_path / "one.ome.zarr", max_layer=1, omero_metadata={"channels": [{"color": "FF00FF"}]}
    )
    image = read_ome_zarr(out)
    assert image.attrs["ome"]["omero"]["rdefs"]["model"] == "color"
    assert image.channel_infos()[0].color == "FF00FF"


# -- pyramids whose coarse levels repeat a shape ----------------------------------------------
def test_repeated_coarse_levels_written_by_ome_zarr_py_are_dropped(tmp_path, caplog):
    from napari.layers import Image
    from napari.layers.image._image_utils import guess_multiscale
    from ome_zarr.writer import write_image

    group = zarr.open_group(str(tmp_path / "small.zarr"), mode="w")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_image(ramp((2, 8, 8)), group, axes="cyx")
    stored = [group[f"s{i}"].shape for i in range(5)]
    assert stored[-1] == stored[-2]  # ome-zarr-py wrote a repeated level
    with pytest.raises(ValueError, match="decreasing"):
        guess_multiscale([group[f"s{i}"] for i in range(5)])  # napari refuses that pyramid
    with caplog.at_level(logging.INFO):
        image = read_ome_zarr(tmp_path / "small.zarr")
    assert [lvl.shape for lvl in image.levels] == stored[:-1]
    assert [lvl.path for lvl in image.levels] == ["s0", "s1", "s2", "s3"]
    assert any("'s4'" in note and "repeat" in note for note in image.notes)
    for data, meta, _ in _layers(tmp_path / "small.zarr"):
        layer = Image(data, **{k: v for k, v in meta.items() if k != "metadata"})
        assert layer.multiscale and len(layer.data) == 4


def test_repeated_levels_keep_the_finest_of_equal_shapes(tmp_path):
    root = zarr.open_group(str(tmp_path / "hand.zarr"), mode="w", zarr_format=2)
    shapes = [(16, 16), (8, 8), (8, 8), (8, 8)]
    datasets = []
    for i, shape in enumerate(shapes):
        root.create_array(str(i), shape=shape, dtype="uint8", chunks=shape)[...] = i
        factor = 16 // shape[0]
        datasets.append(
            {
                "path": str(i),
                "coordinateTransformations": [{"type": "scale", "scale": [factor, factor]}],
            }
        )
    root.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
            "datasets": datasets,
        }
    ]
    image = read_ome_zarr(tmp_path / "hand.zarr")
    assert [lvl.path for lvl in image.levels] == ["0", "1"]
    assert int(np.asarray(image.levels[1].data)[0, 0]) == 1  # the finest of the 8x8 levels
    assert ZarrNii.from_ome_zarr(tmp_path / "hand.zarr").num_levels == 2


@pytest.mark.gui
def test_viewer_opens_a_label_over_its_image(make_napari_viewer, tmp_path):
    path = tmp_path / "written.ome.zarr"
    _, seg = _ome_zarr_py_store(path)
    viewer = make_napari_viewer()
    layers = viewer.open(str(path / "labels" / "nuclei"), plugin="napari-zarrnii")
    assert [type(ly).__name__ for ly in layers] == ["Image", "Image", "Labels"]
    image, _, nuclei = layers
    assert nuclei.name == "nuclei" and nuclei.visible
    np.testing.assert_array_equal(np.asarray(nuclei.data[0]), seg["nuclei"])
    np.testing.assert_allclose(nuclei.data_to_world((3, 5, 7)), image.data_to_world((3, 5, 7)))
    viewer.layers.clear()
    layers = viewer.open(str(path / "labels"), plugin="napari-zarrnii")
    assert [ly.name for ly in layers if type(ly).__name__ == "Labels"] == ["cells", "nuclei"]
