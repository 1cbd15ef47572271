"""Reading OME-Zarr: every version, layout and the metadata users rely on."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import zarr

from napari_zarrnii import InvalidMetadataError, NotOmeZarrError
from napari_zarrnii.core.omezarr import read_ome_zarr

from .conftest import ramp, write_ngff_store


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("ndim", [2, 3, 4, 5])
def test_levels_scale_translation_and_pixels(ngff_store, version, ndim):
    shape = (2, 3, 8, 16, 16)[-ndim:]
    data = ramp(shape)
    scale = (1.0, 1.0, 2.5, 0.5, 0.25)[-ndim:]
    translation = (0.0, 0.0, -3.0, 10.0, 7.5)[-ndim:]
    path, levels = ngff_store(version=version, data=data, scale=scale, translation=translation)
    image = read_ome_zarr(path)
    assert image.ngff_version == version
    assert image.num_levels == 3
    assert image.axis_names == tuple("tczyx"[-ndim:])
    for i, lvl in enumerate(image.levels):
        assert lvl.shape == levels[i].shape
        np.testing.assert_array_equal(np.asarray(lvl.data[...]), levels[i])
        assert lvl.translation == pytest.approx(translation)
    spatial = image.spatial_axes
    for ax in spatial:
        assert image.levels[1].scale[ax] == pytest.approx(scale[ax] * 2)
    units = dict(zip(image.axis_names, image.units))
    assert units.get("x") == "micrometer"


def test_multiscale_level_transform_composes(ngff_store):
    path, _ = ngff_store(version="0.4", data=ramp((8, 8)), scale=(2.0, 2.0), n_levels=1)
    attrs = json.loads((path / ".zattrs").read_text())
    attrs["multiscales"][0]["coordinateTransformations"] = [
        {"type": "scale", "scale": [3.0, 1.0]},
        {"type": "translation", "translation": [100.0, -5.0]},
    ]
    (path / ".zattrs").write_text(json.dumps(attrs))
    lvl = read_ome_zarr(path).levels[0]
    assert lvl.scale == pytest.approx((6.0, 2.0))
    assert lvl.translation == pytest.approx((100.0, -5.0))


@pytest.mark.parametrize("version", ["0.1", "0.2", "0.3"])
def test_old_versions_read_with_derived_scale(ngff_store, version):
    data = ramp((1, 2, 8, 16, 16))
    axes = (
        ("t", "time", None),
        ("c", "channel", None),
        ("z", "space", None),
        ("y", "space", None),
        ("x", "space", None),
    )
    path, levels = ngff_store(version=version, data=data, axes=axes)
    image = read_ome_zarr(path)
    assert image.ngff_version == version
    assert image.axis_names == ("t", "c", "z", "y", "x")
    assert image.levels[2].scale == pytest.approx((1, 1, 4, 4, 4))
    np.testing.assert_array_equal(np.asarray(image.levels[2].data[...]), levels[2])


def test_omero_channels(ngff_store):
    omero = {
        "channels": [
            {
                "label": "DAPI",
                "color": "0000FF",
                "window": {"start": 10, "end": 500, "min": 0, "max": 4095},
                "active": True,
            },
            {"label": "GFP", "color": "#00ff00", "active": False},
        ]
    }
    path, _ = ngff_store(version="0.5", omero=omero)
    image = read_ome_zarr(path)
    dapi, gfp = image.channel_infos()
    assert (dapi.label, dapi.color, dapi.window.start, dapi.window.end) == (
        "DAPI",
        "0000FF",
        10,
        500,
    )
    assert (gfp.label, gfp.color, gfp.active, gfp.window) == ("GFP", "00FF00", False, None)


@pytest.mark.parametrize(
    "omero",
    [
        {"channels": [{"label": "only one"}]},  # fewer channels than the image
        {"channels": [None, 42]},
        {"channels": [{"color": "not a colour", "window": {"start": "a"}}, {"window": [1, 2]}]},
        {"channels": "nope"},
        {"nothing": True},
        [],
    ],
)
def test_partial_or_invalid_omero_never_raises(ngff_store, omero, caplog):
    path, _ = ngff_store(version="0.4", omero=omero)
    with caplog.at_level(logging.WARNING):
        image = read_ome_zarr(path)
    infos = image.channel_infos()
    assert len(infos) == 2
    assert all(len(i.color) == 6 for i in infos)


def _add_label(image_path, version, data, name="cells", colors=True):
    zarr_format = 3 if version == "0.5" else 2
    labels = zarr.open_group(str(image_path / "labels"), mode="w", zarr_format=zarr_format)
    label_attrs = {"labels": [name]}
    if version == "0.5":
        labels.attrs["ome"] = {"version": "0.5", **label_attrs}
    else:
        labels.attrs.update(label_attrs)
    path, _ = write_ngff_store(
        image_path / "labels" / name,
        version=version,
        data=data,
        axes=(
            ("z", "space", "micrometer"),
            ("y", "space", "micrometer"),
            ("x", "space", "micrometer"),
        ),
        name=name,
    )
    group = zarr.open_group(str(path), mode="r+")
    image_label = {"source": {"image": "../../"}}
    if colors:
        image_label["colors"] = [
            {"label-value": 1, "rgba": [255, 0, 0, 255]},
            {"label-value": 2, "rgba": "bad"},
        ]
        image_label["properties"] = [{"label-value": 1, "class": "nucleus"}]
    if version == "0.5":
        ome = dict(group.attrs["ome"])
        ome["image-label"] = image_label
        group.attrs["ome"] = ome
    else:
        group.attrs["image-label"] = {"version": version, **image_label}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_labels_are_read(ngff_store, version):
    path, _ = ngff_store(
        version=version,
        data=ramp((8, 16, 16)),
        axes=(
            ("z", "space", "micrometer"),
            ("y", "space", "micrometer"),
            ("x", "space", "micrometer"),
        ),
    )
    seg = (ramp((8, 16, 16)) % 3).astype("uint32")
    _add_label(path, version, seg)
    image = read_ome_zarr(path)
    assert list(image.labels) == ["cells"]
    label = image.labels["cells"]
    assert label.is_label and label.num_levels == 3
    assert label.label_colors == {1: (1.0, 0.0, 0.0, 1.0)}  # the bad entry is skipped
    assert label.label_properties == [{"label-value": 1, "class": "nucleus"}]
    np.testing.assert_array_equal(np.asarray(label.levels[0].data[...]), seg)


def test_broken_label_does_not_hide_image(ngff_store):
    path, _ = ngff_store(version="0.4")
    labels = zarr.open_group(str(path / "labels"), mode="w", zarr_format=2)
    labels.attrs["labels"] = ["missing"]
    image = read_ome_zarr(path)
    assert image.labels == {}
    assert any("missing" in n for n in image.notes)


def test_other_multiscales_are_listed(ngff_store):
    path, _ = ngff_store(version="0.4")
    attrs = json.loads((path / ".zattrs").read_text())
    second = dict(attrs["multiscales"][0], name="second")
    attrs["multiscales"].append(second)
    (path / ".zattrs").write_text(json.dumps(attrs))
    image = read_ome_zarr(path)
    assert any("second" in n for n in image.notes)
    assert read_ome_zarr(path, multiscale=1).name == "second"


@pytest.mark.parametrize("with_ome_dir", [True, False])
def test_bioformats2raw_layout(tmp_path, with_ome_dir):
    root_path = tmp_path / "b2r.zarr"
    root = zarr.open_group(str(root_path), mode="w", zarr_format=2)
    root.attrs["bioformats2raw.layout"] = 3
    write_ngff_store(root_path / "0", version="0.4", data=ramp((2, 8, 16, 16)), name="series 0")
    write_ngff_store(root_path / "1", version="0.4", data=ramp((2, 4, 8, 8)), name="series 1")
    if with_ome_dir:
        ome = zarr.open_group(str(root_path / "OME"), mode="w", zarr_format=2)
        ome.attrs["series"] = ["0", "1"]
        (root_path / "OME" / "METADATA.ome.xml").write_text("<OME/>")
    image = read_ome_zarr(root_path)
    assert image.name == "series 0"
    assert image.attrs["bioformats2raw"]["series"] == ["0", "1"]
    assert any("2 series" in n for n in image.notes)
    assert read_ome_zarr(root_path, series=1).shape == (2, 4, 8, 8)
    assert read_ome_zarr(root_path / "1").name == "series 1"


def _write_plate(tmp_path, version="0.4", missing=()):
    plate_path = tmp_path / "plate.ome.zarr"
    zarr_format = 3 if version == "0.5" else 2
    root = zarr.open_group(str(plate_path), mode="w", zarr_format=zarr_format)
    wells = []
    rows, cols = ["A", "B"], ["1", "2", "3"]
    tiles = {}
    for r, rn in enumerate(rows):
        for c, cn in enumerate(cols):
            if (r, c) in missing:
                continue
            wells.append({"path": f"{rn}/{cn}", "rowIndex": r, "columnIndex": c})
            well = zarr.open_group(str(plate_path / rn / cn), mode="w", zarr_format=zarr_format)
            well_attrs = {"images": [{"path": "0"}]}
            tile = np.full((2, 16, 16), 10 * r + c + 1, dtype="uint16")
            tiles[(r, c)] = tile
            write_ngff_store(
                plate_path / rn / cn / "0",
                version=version,
                data=tile,
                n_levels=2,
                axes=(
                    ("c", "channel", None),
                    ("y", "space", "micrometer"),
                    ("x", "space", "micrometer"),
                ),
            )
            if version == "0.5":
                well.attrs["ome"] = {"version": "0.5", "well": well_attrs}
            else:
                well.attrs["well"] = {"version": version, **well_attrs}
    plate = {
        "name": "my plate",
        "rows": [{"name": n} for n in rows],
        "columns": [{"name": n} for n in cols],
        "wells": wells,
        "field_count": 1,
    }
    if version == "0.5":
        root.attrs["ome"] = {"version": "0.5", "plate": plate}
    else:
        root.attrs["plate"] = {"version": version, **plate}
    return plate_path, tiles


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_plate_is_a_mosaic_of_wells(tmp_path, version):
    path, _ = _write_plate(tmp_path, version, missing={(1, 2)})
    image = read_ome_zarr(path, plate_level=0)
    assert image.name == "my plate"
    assert image.shape == (2, 32, 48)
    mosaic = np.asarray(image.levels[0].data[...])
    assert mosaic[0, 0, 0] == 1 and mosaic[1, 20, 20] == 12 and mosaic[0, 5, 40] == 3
    assert mosaic[0, 20, 40] == 0  # missing well stays empty
    np.testing.assert_array_equal(image.levels[0].data[1, 16:32:2, 16], np.full(8, 12))
    assert image.levels[1].shape == (2, 16, 24)


def test_not_ome_zarr_is_declined(tmp_path):
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w").create_array(
        "a", shape=(4,), dtype="u1"
    )
    with pytest.raises(NotOmeZarrError, match="without OME-NGFF metadata"):
        read_ome_zarr(tmp_path / "plain.zarr")
    (tmp_path / "folder").mkdir()
    with pytest.raises(NotOmeZarrError):
        read_ome_zarr(tmp_path / "folder")
    with pytest.raises(NotOmeZarrError):
        read_ome_zarr(tmp_path / "does-not-exist.zarr")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda a: a["multiscales"][0].update(datasets=[]), "datasets"),
        (lambda a: a["multiscales"][0]["datasets"][0].update(path="nope"), "datasets[0].path"),
        (
            lambda a: a["multiscales"][0]["datasets"][0]["coordinateTransformations"][0].update(
                scale=[1, 2]
            ),
            "coordinateTransformations[0].scale",
        ),
        (lambda a: a["multiscales"][0].update(axes=[{"name": "x"}]), "datasets[0]"),
        (lambda a: a["multiscales"][0].update(version="9.9"), "version"),
    ],
)
def test_invalid_metadata_names_path_and_field(ngff_store, mutate, field):
    path, _ = ngff_store(
        version="0.4",
        data=ramp((4, 8, 8)),
        axes=(("z", "space", None), ("y", "space", None), ("x", "space", None)),
    )
    attrs = json.loads((path / ".zattrs").read_text())
    mutate(attrs)
    (path / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(InvalidMetadataError) as info:
        read_ome_zarr(path)
    assert str(path) in str(info.value)
    assert field in str(info.value)


def test_missing_chunks_read_as_fill_value(ngff_store):
    path, _ = ngff_store(
        version="0.5",
        data=ramp((16, 16)),
        n_levels=1,
        axes=(("y", "space", None), ("x", "space", None)),
    )
    for chunk in (path / "0" / "c").rglob("*"):
        if chunk.is_file():
            chunk.unlink()
    image = read_ome_zarr(path)
    assert not np.asarray(image.levels[0].data[...]).any()


def test_written_by_ome_zarr_py_is_read(tmp_path):
    data = ramp((2, 16, 64, 64))
    store_path = tmp_path / "peer.ome.zarr"
    root = zarr.open_group(str(store_path), mode="w", zarr_format=2)
    # ome-zarr-py's public writer with explicit pyramid levels
    from ome_zarr.writer import write_multiscale

    pyramid = [data, data[:, :, ::2, ::2], data[:, :, ::4, ::4]]
    transforms = [[{"type": "scale", "scale": [1, 2.0, 0.5 * f, 0.5 * f]}] for f in (1, 2, 4)]
    write_multiscale(pyramid, root, axes="czyx", coordinate_transformations=transforms)
    image = read_ome_zarr(store_path)
    assert image.num_levels == 3
    assert image.levels[2].scale == pytest.approx((1, 2.0, 2.0, 2.0))
    np.testing.assert_array_equal(np.asarray(image.levels[1].data[...]), pyramid[1])
