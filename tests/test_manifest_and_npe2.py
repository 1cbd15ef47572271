"""The npe2 manifest, and reading through npe2 as napari does (no viewer)."""

from __future__ import annotations

from pathlib import Path

import npe2
import numpy as np
import pytest
import zarr

import napari_zarrnii

from .conftest import ramp

MANIFEST = Path(napari_zarrnii.__file__).parent / "napari.yaml"


@pytest.fixture
def plugin_manager():
    pm = npe2.PluginManager()
    pm.register(npe2.PluginManifest.from_file(MANIFEST))
    return pm


def test_manifest_is_shipped_and_valid():
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    assert manifest.name == "napari-zarrnii"
    ids = {c.id for c in manifest.contributions.commands}
    for reader in manifest.contributions.readers:
        assert reader.command in ids
    for writer in manifest.contributions.writers:
        assert writer.command in ids
    assert manifest.contributions.sample_data
    names = {w.display_name for w in manifest.contributions.widgets}
    assert {"Create pyramid", "Channel metadata", "Crop ROI to full resolution"} <= names


def test_manifest_commands_import(plugin_manager):
    manifest = plugin_manager.get_manifest("napari-zarrnii")
    for command in manifest.contributions.commands:
        module, _, attr = command.python_name.partition(":")
        mod = __import__(module, fromlist=[attr])
        assert callable(getattr(mod, attr)), command.python_name


def test_installed_entry_point_finds_manifest():
    pm = npe2.PluginManager()
    pm.discover(include_npe1=False)
    assert "napari-zarrnii" in pm._manifests


def test_npe2_read_ome_zarr(ngff_store):
    path, levels = ngff_store(
        version="0.5",
        omero={
            "channels": [
                {
                    "label": "A",
                    "color": "FF0000",
                    "window": {"start": 0, "end": 9, "min": 0, "max": 9},
                },
                {
                    "label": "B",
                    "color": "00FFFF",
                    "window": {"start": 0, "end": 9, "min": 0, "max": 9},
                },
            ]
        },
    )
    npe2.PluginManager.instance().discover(include_npe1=False)
    layers = npe2.read([str(path)], stack=False, plugin_name="napari-zarrnii")
    assert [ly[1]["name"] for ly in layers] == ["A", "B"]
    assert [ly[1]["colormap"] for ly in layers] == ["red", "cyan"]
    data = layers[1][0]
    np.testing.assert_array_equal(np.asarray(data[1][...]), levels[1][1])


def test_reader_declines_what_it_cannot_read(tmp_path):
    from napari_zarrnii._reader import get_reader

    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w").create_array("x", shape=(2,), dtype="u1")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.nii").write_text("not a nifti")
    (tmp_path / "empty.zarr").mkdir()
    assert get_reader(str(plain)) is None
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path / "empty.zarr")) is None
    assert get_reader(str(tmp_path / "missing.ome.zarr")) is None
    # a zarr array inside a store is not an image group
    arr_path = tmp_path / "img.zarr"
    root = zarr.open_group(str(arr_path), mode="w")
    root.create_array("0", shape=(4, 4), dtype="u1")
    assert get_reader(str(arr_path / "0")) is None


def test_reader_claims_ome_and_reports_bad_metadata(ngff_store):
    import json

    from napari_zarrnii import InvalidMetadataError
    from napari_zarrnii._reader import get_reader

    path, _ = ngff_store(
        version="0.4",
        data=ramp((8, 8)),
        n_levels=1,
        axes=(("y", "space", None), ("x", "space", None)),
    )
    attrs = json.loads((path / ".zattrs").read_text())
    attrs["multiscales"][0]["datasets"][0]["path"] = "missing"
    (path / ".zattrs").write_text(json.dumps(attrs))
    reader = get_reader(str(path))
    assert reader is not None
    with pytest.raises(InvalidMetadataError, match="missing"):
        reader(str(path))


def test_package_import_pulls_no_qt_or_napari():
    import subprocess
    import sys

    code = (
        "import sys, napari_zarrnii; from napari_zarrnii import ZarrNii;"
        "import napari_zarrnii.core.omezarr, napari_zarrnii.core.ngff, napari_zarrnii.core.store;"
        "gui=('napari','qtpy','PyQt6','PySide6','magicgui','vispy');"
        "bad=[m for m in sys.modules if m.split('.')[0] in gui];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sample_data_contribution():
    from napari_zarrnii._sample_data import make_sample_data

    layers = make_sample_data()
    assert [ly[2] for ly in layers] == ["image", "image", "labels"]
    assert [ly[1]["name"] for ly in layers] == ["DAPI", "GFP", "cells"]
    assert all(len(ly[0]) == 3 for ly in layers)


def test_reader_opens_the_store_once(ngff_store, monkeypatch):
    import napari_zarrnii.core.omezarr as omezarr
    from napari_zarrnii._reader import get_reader

    path, _ = ngff_store(version="0.5")
    calls = []
    real = omezarr.open_group
    monkeypatch.setattr(omezarr, "open_group", lambda *a, **k: calls.append(a) or real(*a, **k))
    reader = get_reader(str(path))
    layers = reader(str(path))
    assert len(layers) == 2
    assert len(calls) == 1, "the group opened to claim the path is reused for reading"
