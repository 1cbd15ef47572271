"""Regressions found in review: reader robustness, layer placement and units, atomic writes."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import zarr

from napari_zarrnii import InvalidMetadataError, ZarrNiiError
from napari_zarrnii._layers import image_to_layer_data, layers_to_image
from napari_zarrnii._reader import get_reader
from napari_zarrnii.core.model import Axis, Level, MultiscaleImage
from napari_zarrnii.core.omezarr import read_ome_zarr
from napari_zarrnii.core.pyramid import write_pyramid

from .conftest import ramp, write_ngff_store

YX = (("y", "space", "micrometer"), ("x", "space", "micrometer"))


def _edit_zattrs(path, change):
    attrs = json.loads((path / ".zattrs").read_text())
    change(attrs)
    (path / ".zattrs").write_text(json.dumps(attrs))


def _store(tmp_path, name="img.ome.zarr", **kwargs):
    kwargs.setdefault("data", ramp((16, 16)))
    kwargs.setdefault("axes", YX)
    path, _ = write_ngff_store(tmp_path / name, **kwargs)
    return path


# -- the reader raises only its own errors (naming path and field) ---------------------------


@pytest.mark.parametrize("bad", [5, "x", {"a": 1}])
def test_image_label_with_non_list_colors_or_properties(tmp_path, bad):
    path = _store(tmp_path)
    _edit_zattrs(path, lambda a: a.update({"image-label": {"colors": bad, "properties": bad}}))
    image = read_ome_zarr(path)
    assert image.is_label and image.label_colors == {} and image.label_properties == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: (p / "1" / ".zarray").write_text("{not json"),
        lambda p: (p / "1" / ".zarray").write_text(
            json.dumps({**json.loads((p / "1" / ".zarray").read_text()), "dtype": "<x9"})
        ),
        lambda p: (p / "1" / ".zarray").write_text(
            json.dumps(
                {**json.loads((p / "1" / ".zarray").read_text()), "compressor": {"id": "x"}}
            )
        ),
    ],
    ids=["non-json", "unknown-dtype", "unknown-codec"],
)
def test_damaged_level_metadata_names_the_dataset(tmp_path, damage):
    path = _store(tmp_path)
    damage(path)
    with pytest.raises(InvalidMetadataError) as info:
        read_ome_zarr(path)
    assert str(path) in str(info.value) and "datasets[1]" in str(info.value)


def test_damaged_label_does_not_hide_the_image(tmp_path):
    path = _store(tmp_path)
    write_ngff_store(path / "labels" / "seg", data=ramp((16, 16)), axes=YX)
    zarr.open_group(str(path / "labels"), mode="a", zarr_format=2).attrs["labels"] = ["seg"]
    (path / "labels" / "seg" / "0" / ".zarray").write_text("{not json")
    image = read_ome_zarr(path)
    assert image.labels == {} and any("seg" in n for n in image.notes)


def test_old_version_with_unsupported_ndim_is_invalid_metadata(tmp_path):
    root = zarr.open_group(str(tmp_path / "six.zarr"), mode="w", zarr_format=2)
    root.create_array("0", shape=(1, 1, 1, 2, 2, 2), dtype="u1")
    root.attrs["multiscales"] = [{"version": "0.1", "datasets": [{"path": "0"}]}]
    with pytest.raises(InvalidMetadataError, match=r"six\.zarr"):
        read_ome_zarr(tmp_path / "six.zarr")


def _bf2raw(tmp_path, series):
    root = zarr.open_group(str(tmp_path / "bf.zarr"), mode="w", zarr_format=2)
    root.attrs["bioformats2raw.layout"] = 3
    root.create_group("OME").attrs["series"] = series
    return tmp_path / "bf.zarr"


def test_bioformats2raw_missing_series_or_index(tmp_path):
    path = _bf2raw(tmp_path, ["0", "1"])
    with pytest.raises(InvalidMetadataError, match="series"):
        read_ome_zarr(path)
    write_ngff_store(path / "0", data=ramp((8, 8)), axes=YX)
    assert read_ome_zarr(path).shape == (8, 8)
    with pytest.raises(InvalidMetadataError, match="series"):
        read_ome_zarr(path, series=5)


def _group(tmp_path, attrs, name="g.zarr"):
    root = zarr.open_group(str(tmp_path / name), mode="w", zarr_format=2)
    root.attrs.update(attrs)
    return root


PLATE = {
    "version": "0.4",
    "rows": [{"name": "A"}],
    "columns": [{"name": "1"}],
    "wells": [{"path": "A/1", "rowIndex": 0, "columnIndex": 0}],
}


@pytest.mark.parametrize(
    ("attrs", "children"),
    [
        ({"well": [1]}, {}),
        ({"well": {"version": "0.4", "images": [{"path": "0"}]}}, {}),
        ({"well": {"version": "0.4", "images": [{"nopath": "0"}]}}, {}),
        ({"plate": PLATE}, {}),
        ({"plate": {**PLATE, "rows": 3, "columns": 2}}, {}),
        ({"plate": {**PLATE, "wells": [{"path": "A/1", "rowIndex": None, "columnIndex": 0}]}}, {}),
        ({"plate": PLATE}, {"A/1": {"well": [3]}}),
        ({"plate": PLATE}, {"A/1": {"well": {"version": "0.4", "images": [{"path": "0"}]}}}),
    ],
    ids=[
        "well-list",
        "well-field-missing",
        "well-image-without-path",
        "plate-well-missing",
        "plate-rows-not-list",
        "plate-rowIndex-null",
        "plate-well-attrs-list",
        "plate-field-missing",
    ],
)
def test_broken_plates_and_wells_raise_invalid_metadata(tmp_path, attrs, children):
    root = _group(tmp_path, attrs)
    for child, child_attrs in children.items():
        root.require_group(child).attrs.update(child_attrs)
    with pytest.raises(InvalidMetadataError) as info:
        read_ome_zarr(tmp_path / "g.zarr")
    assert "g.zarr" in str(info.value)


# -- get_reader never raises, and declines what it cannot read -------------------------------


class _Status500(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(500)
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


def test_get_reader_declines_a_failing_server():
    pytest.importorskip("aiohttp")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Status500)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert get_reader(f"http://127.0.0.1:{server.server_address[1]}/x.zarr") is None
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("error", [ImportError("install gcsfs"), RuntimeError("no credentials")])
def test_get_reader_never_raises_for_urls(monkeypatch, error):
    import napari_zarrnii.core.omezarr as omezarr

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(omezarr, "open_group", fail)
    assert get_reader("gs://bucket/image.zarr") is None


def test_get_reader_claims_a_labels_group_only_with_an_image_above(tmp_path):
    path = _store(tmp_path)
    write_ngff_store(path / "labels" / "seg", data=ramp((16, 16)), axes=YX)
    zarr.open_group(str(path / "labels"), mode="a", zarr_format=2).attrs["labels"] = ["seg"]
    assert get_reader(str(path / "labels")) is not None  # read with the image above it
    assert get_reader(str(path / "labels" / "seg")) is not None
    orphan = tmp_path / "orphan_labels"
    write_ngff_store(orphan / "seg", data=ramp((16, 16)), axes=YX)
    zarr.open_group(str(orphan), mode="a", zarr_format=2).attrs["labels"] = ["seg"]
    assert get_reader(str(orphan)) is None


# -- napari layers -----------------------------------------------------------------------------


def test_units_napari_does_not_know_do_not_break_the_layer(tmp_path):
    from napari.layers import Layer

    path = _store(tmp_path, axes=(("y", "space", "arbitrary unit"), ("x", "space", "micrometer")))
    layers = image_to_layer_data(read_ome_zarr(path))
    for data, meta, kind in layers:
        layer = Layer.create(data, meta, kind)
        assert [str(u) for u in layer.units] == ["pixel", "micrometer"]


def test_odd_shaped_multiscale_layer_keeps_integer_factors(tmp_path):
    axes = (Axis("y", "space", "micrometer"), Axis("x", "space", "micrometer"))
    data = np.random.default_rng(0).integers(0, 100, (37, 50)).astype(np.uint16)
    image = MultiscaleImage(axes, [Level("0", data, (0.5, 0.5), (1.0, 0.0))])
    source = read_ome_zarr(write_pyramid(image, tmp_path / "odd.zarr", max_layer=2, chunks=8))
    layer = image_to_layer_data(source)[0]
    back = layers_to_image([layer])
    for got, want in zip(back.levels, source.levels):
        assert got.shape == want.shape
        assert got.scale == pytest.approx(want.scale)
        assert got.translation == pytest.approx(want.translation)


# -- atomic writes -----------------------------------------------------------------------------


def test_failed_write_leaves_no_new_parent_folders(tmp_path):
    class Broken:
        shape, dtype, ndim = (16, 16), np.dtype(np.uint8), 2

        def __getitem__(self, key):
            raise OSError("disk on fire")

    axes = (Axis("y", "space"), Axis("x", "space"))
    image = MultiscaleImage(axes, [Level("0", Broken(), (1.0, 1.0), (0.0, 0.0))])
    with pytest.raises(OSError, match="disk on fire"):
        write_pyramid(image, tmp_path / "new" / "deeper" / "x.zarr", max_layer=1)
    assert list(tmp_path.iterdir()) == []


def test_reader_errors_are_package_errors(tmp_path):
    path = _store(tmp_path)
    shutil.rmtree(path / "1")
    (path / "1").mkdir()
    (path / "1" / ".zarray").write_text("[]")
    with pytest.raises(ZarrNiiError):
        read_ome_zarr(path)


@pytest.mark.parametrize(
    ("names", "types", "problem"),
    [
        ("yxc", ("space", "space", "channel"), "order"),
        ("zyxt", ("space", "space", "space", "time"), "order"),
        ("tx", ("time", "space"), "2 or 3"),
        ("abcdef", ("space",) * 6, "2 to 5"),
        ("tcyx", ("time", "time", "space", "space"), "one time"),
    ],
)
@pytest.mark.parametrize("writer", ["pyramid", "levels"])
def test_axes_that_ome_ngff_forbids_are_refused_before_writing(
    tmp_path, names, types, problem, writer
):
    from napari_zarrnii.core.pyramid import write_levels

    axes = tuple(Axis(n, t) for n, t in zip(names, types))
    shape = (2,) * (len(axes) - 2) + (8, 8)
    image = MultiscaleImage(
        axes, [Level("0", np.ones(shape, np.uint8), (1.0,) * len(axes), (0.0,) * len(axes))]
    )
    with pytest.raises(ValueError, match=problem):
        if writer == "pyramid":
            write_pyramid(image, tmp_path / "x.zarr", max_layer=1)
        else:
            write_levels(image, tmp_path / "x.zarr")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_copy_with_write_levels_keeps_the_downsampling_method(tmp_path, version):
    from napari_zarrnii.core.pyramid import write_levels

    from .ngff_schemas import validate_ngff

    axes = (Axis("y", "space", "micrometer"), Axis("x", "space", "micrometer"))
    seg = MultiscaleImage(
        axes, [Level("0", np.eye(32, dtype=np.uint8), (1.0, 1.0), (0.0, 0.0))], is_label=True
    )
    image = MultiscaleImage(
        axes,
        [Level("0", ramp((32, 32)), (1.0, 1.0), (0.0, 0.0))],
        labels={"seg": seg},
    )
    src = write_pyramid(image, tmp_path / "a.zarr", max_layer=2, ngff_version=version)
    copy = write_levels(read_ome_zarr(src), tmp_path / "b.zarr", ngff_version=version)
    group = zarr.open_group(str(copy), mode="r")
    attrs = dict(group.attrs)
    validate_ngff(attrs, version, "strict_image")
    assert attrs.get("ome", attrs)["multiscales"][0]["type"] == "local_mean"
    label_attrs = dict(group["labels/seg"].attrs)
    assert label_attrs.get("ome", label_attrs)["multiscales"][0]["type"] == "mode"


@pytest.mark.parametrize("version", ["0.1", "0.3"])
def test_old_versions_derive_integer_factors_for_odd_shapes(tmp_path, version):
    path, _ = write_ngff_store(
        tmp_path / "old.zarr", version=version, data=ramp((37, 50)), axes=YX
    )
    image = read_ome_zarr(path)
    assert [lvl.shape for lvl in image.levels] == [(37, 50), (19, 25), (10, 13)]
    assert image.levels[1].scale == pytest.approx((2.0, 2.0))
    assert image.levels[2].scale == pytest.approx((4.0, 4.0))
    assert image.levels[2].translation == pytest.approx((1.5, 1.5))
