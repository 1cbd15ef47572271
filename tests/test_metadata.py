"""Saving channel metadata in place: only ``omero`` changes, atomically, schema-valid."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import zarr

from napari_zarrnii._errors import InvalidMetadataError, NotOmeZarrError, ReadOnlyStoreError
from napari_zarrnii.core.metadata import read_channels, window_problem, write_channels
from napari_zarrnii.core.model import ChannelInfo, Window

from .conftest import ramp
from .ngff_schemas import validate_ngff

OMERO = {
    "id": 7,
    "name": "stored name",
    "rdefs": {"defaultZ": 3, "model": "color"},
    "channels": [
        {
            "label": "DAPI",
            "color": "0000FF",
            "active": True,
            "family": "linear",
            "coefficient": 1,
            "window": {"start": 0, "end": 4000, "min": 0, "max": 65535},
        },
        {
            "label": "GFP",
            "color": "00FF00",
            "active": False,
            "family": "exponential",
            "window": {"start": 10, "end": 900, "min": 0, "max": 65535},
        },
    ],
}
NEW = [
    ChannelInfo("nuclei", "FF00FF", Window(5.0, 3000.0, 0.0, 65535.0), active=False),
    ChannelInfo("membrane", "FFFF00", Window(20.0, 800.0, 0.0, 65535.0), active=True),
]


def _meta_file(path: Path, version: str) -> Path:
    return path / ("zarr.json" if version == "0.5" else ".zattrs")


def _attrs(path: Path, version: str) -> dict:
    doc = json.loads(_meta_file(path, version).read_text())
    return doc["attributes"] if version == "0.5" else doc


def _ome(attrs: dict, version: str) -> dict:
    return attrs["ome"] if version == "0.5" else attrs


@pytest.fixture(params=["0.4", "0.5"])
def version(request):
    return request.param


@pytest.fixture
def store(ngff_store, version):
    path, _ = ngff_store(
        version=version,
        data=ramp((2, 8, 16, 16)),
        n_levels=2,
        omero=json.loads(json.dumps(OMERO)),
        extra={"custom": {"keep": [1, 2]}},
    )
    return path


def test_read_channels(store):
    infos = read_channels(store)
    assert [c.label for c in infos] == ["DAPI", "GFP"]
    assert infos[1].window == Window(10.0, 900.0, 0.0, 65535.0)
    assert not infos[1].active


def test_write_changes_only_omero(store, version):
    before = _attrs(store, version)
    write_channels(store, NEW)
    after = _attrs(store, version)
    validate_ngff(after, version, "image")
    ome_b, ome_a = _ome(before, version), _ome(after, version)
    assert {k: v for k, v in ome_a.items() if k != "omero"} == {
        k: v for k, v in ome_b.items() if k != "omero"
    }
    assert after.get("custom", ome_a.get("custom")) == {"keep": [1, 2]}
    omero = ome_a["omero"]
    # keys we do not manage survive
    assert omero["id"] == 7 and omero["name"] == "stored name"
    assert omero["rdefs"]["defaultZ"] == 3
    assert omero["channels"][1]["family"] == "exponential"
    assert [c["label"] for c in omero["channels"]] == ["nuclei", "membrane"]
    assert omero["channels"][0]["color"] == "FF00FF"
    assert omero["channels"][0]["window"] == {
        "start": 5.0,
        "end": 3000.0,
        "min": 0.0,
        "max": 65535.0,
    }
    assert read_channels(store) == NEW
    # the rest of the store is untouched and still opens
    if version == "0.5":
        doc = json.loads((store / "zarr.json").read_text())
        assert doc["zarr_format"] == 3 and doc["node_type"] == "group"
    assert zarr.open_group(str(store), mode="r")["0"].shape == (2, 8, 16, 16)


def test_name_argument(store, version):
    write_channels(store, NEW, name="renamed")
    assert _ome(_attrs(store, version), version)["omero"]["name"] == "renamed"


def test_write_without_previous_omero(ngff_store, version):
    path, _ = ngff_store(version=version, data=ramp((2, 4, 8, 8)), n_levels=1)
    write_channels(path, NEW)
    validate_ngff(_attrs(path, version), version, "image")
    assert read_channels(path) == NEW


def test_failed_replace_keeps_original(store, version, monkeypatch):
    meta = _meta_file(store, version)
    original = meta.read_bytes()

    def broken(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="simulated"):
        write_channels(store, NEW)
    monkeypatch.undo()
    assert meta.read_bytes() == original
    assert not [p for p in store.iterdir() if p.name.endswith(".tmp")], "temporary file left"
    assert [c.label for c in read_channels(store)] == ["DAPI", "GFP"]


def test_failure_in_consolidated_rolls_back(store, version, monkeypatch):
    zarr.consolidate_metadata(str(store))
    meta = _meta_file(store, version)
    before = json.loads(meta.read_text())
    calls = []
    real = os.replace

    def fail_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("simulated failure on the second file")
        return real(src, dst)

    if version == "0.5":
        # the root zarr.json consolidates its children only: nest the image one level down
        parent = store.parent / "outer.zarr"
        zarr.open_group(str(parent), mode="w", zarr_format=3)
        os.replace(store, parent / "img")
        zarr.consolidate_metadata(str(parent))
        store = parent / "img"
        meta = store / "zarr.json"
        before = json.loads(meta.read_text())
    monkeypatch.setattr(os, "replace", fail_second)
    with pytest.raises(OSError, match="second file"):
        write_channels(store, NEW)
    monkeypatch.undo()
    assert json.loads(meta.read_text()) == before


def test_consolidated_v2_updated(ngff_store):
    path, _ = ngff_store(version="0.4", data=ramp((2, 4, 8, 8)), n_levels=1, omero=OMERO)
    zarr.consolidate_metadata(str(path))
    write_channels(path, NEW)
    consolidated = json.loads((path / ".zmetadata").read_text())["metadata"][".zattrs"]
    assert consolidated == json.loads((path / ".zattrs").read_text())
    group = zarr.open_group(str(path), mode="r", use_consolidated=True)
    assert group.attrs["omero"]["channels"][0]["label"] == "nuclei"


def test_consolidated_v3_parent_updated(tmp_path):
    from .conftest import write_ngff_store

    parent = tmp_path / "outer.zarr"
    zarr.open_group(str(parent), mode="w", zarr_format=3)
    write_ngff_store(
        parent / "img", version="0.5", data=ramp((2, 4, 8, 8)), n_levels=1, omero=OMERO
    )
    zarr.consolidate_metadata(str(parent))
    write_channels(parent / "img", NEW)
    doc = json.loads((parent / "zarr.json").read_text())
    entry = doc["consolidated_metadata"]["metadata"]["img"]
    own = json.loads((parent / "img" / "zarr.json").read_text())
    assert entry["attributes"] == own["attributes"]
    group = zarr.open_group(str(parent), mode="r", use_consolidated=True)
    assert group["img"].attrs["ome"]["omero"]["channels"][1]["label"] == "membrane"


def test_file_permissions_kept(store, version):
    meta = _meta_file(store, version)
    meta.chmod(0o644)
    write_channels(store, NEW)
    assert meta.stat().st_mode & 0o777 == 0o644


def test_wrong_channel_count(store):
    with pytest.raises(ValueError, match="2 channel"):
        write_channels(store, NEW[:1])


@pytest.mark.parametrize(
    ("window", "word"),
    [
        (Window(900.0, 100.0, 0.0, 65535.0), "below"),
        (Window(100.0, 100.0, 0.0, 65535.0), "below"),
        (Window(float("nan"), 100.0, 0.0, 65535.0), "finite"),
    ],
)
def test_unusable_window_is_refused(store, window, word):
    """A window the reader would ignore is refused before anything is written."""
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    assert word in (window_problem(window) or "")
    bad = [NEW[0], ChannelInfo("membrane", "FFFF00", window)]
    with pytest.raises(InvalidMetadataError, match=r"omero\.channels\[1\]\.window"):
        write_channels(store, bad)
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before


def test_usable_windows():
    assert window_problem(Window(0.0, 1.0, 0.0, 1.0)) is None
    assert window_problem(Window(-5.0, 5.0, 10.0, -10.0)) is None  # min/max widen on save


def test_url_is_read_only():
    with pytest.raises(ReadOnlyStoreError, match="read-only"):
        write_channels("https://example.org/image.ome.zarr", NEW)


def test_not_an_image(tmp_path):
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w", zarr_format=2).attrs["a"] = 1
    with pytest.raises(NotOmeZarrError):
        write_channels(tmp_path / "plain.zarr", NEW)


def test_read_only_folder(store, version):
    meta = _meta_file(store, version)
    store.chmod(0o555)
    meta.chmod(0o444)
    try:
        if os.access(store, os.W_OK):
            pytest.skip("running as a user that ignores permissions (root)")
        original = meta.read_bytes()
        with pytest.raises(ReadOnlyStoreError, match="read-only"):
            write_channels(store, NEW)
        assert meta.read_bytes() == original
    finally:
        store.chmod(0o755)
        meta.chmod(0o644)


def test_revert_rereads(store):
    write_channels(store, NEW)
    assert read_channels(store) == NEW
    write_channels(store, read_channels(store))
    assert read_channels(store) == NEW


def test_no_write_permission_reported(store, version, monkeypatch):
    """Same check without chmod (which root ignores): the OS says 'not writable'."""
    meta = _meta_file(store, version)
    original = meta.read_bytes()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **kw: False if mode == os.W_OK else real_access(p, mode)
    )
    with pytest.raises(ReadOnlyStoreError, match="read-only") as info:
        write_channels(store, NEW)
    assert str(store) in str(info.value)
    assert meta.read_bytes() == original


def test_replaced_metadata_file_keeps_its_permissions(tmp_path):
    from napari_zarrnii.core.store import replace_file_atomically

    target = tmp_path / "zarr.json"
    target.write_text("{}")
    target.chmod(0o640)
    replace_file_atomically(target, {"a": 1})
    assert target.stat().st_mode & 0o777 == 0o640
    fresh = tmp_path / "new.json"
    replace_file_atomically(fresh, {})
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    import os

    current = os.umask(0)
    os.umask(current)
    return current


def test_one_window_rule_for_the_reader_and_the_writers(tmp_path, caplog):
    """The reader ignores, and every writer refuses, the same windows, for the same reason."""
    import logging

    from napari_zarrnii import ChannelMetadataError
    from napari_zarrnii.core.model import window_problem as rule
    from napari_zarrnii.core.ngff import parse_omero
    from napari_zarrnii.core.pyramid import write_pyramid

    from .test_pyramid import make_image, random_data

    image = make_image(random_data((4, 8, 8), np.uint16))
    for start, end in ((5.0, 1.0), (3.0, 3.0), (float("inf"), 9.0)):
        problem = rule(start, end)
        assert problem is not None
        assert window_problem(Window(start, end, 0.0, 10.0)) == problem  # the widget's check
        with caplog.at_level(logging.WARNING, logger="napari_zarrnii.core.ngff"):
            caplog.clear()
            (channel,) = parse_omero({"channels": [{"window": {"start": start, "end": end}}]}, 1)
        assert channel.window is None and problem in caplog.text
        omero = {"channels": [{"window": {"start": start, "end": end}}]}
        with pytest.raises(ChannelMetadataError, match=re.escape(problem)):
            write_pyramid(image, tmp_path / "never.ome.zarr", omero=omero)
    assert rule(1.0, 2.0) is None and rule(None, 2.0) is None
