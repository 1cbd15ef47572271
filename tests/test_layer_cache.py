"""Layers read through the chunk cache: contrast on open, cache metadata, saving, settings."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from napari_zarrnii._layers import data_contrast_limits, image_to_layer_data, layers_to_image
from napari_zarrnii.core.cache import chunk_cache
from napari_zarrnii.core.cached import CachedArray
from napari_zarrnii.core.lazy import LazyView
from napari_zarrnii.core.omezarr import read_ome_zarr

from .conftest import write_ngff_store
from .stores import CountingStore

WINDOWS = {
    "channels": [
        {
            "label": "a",
            "color": "FF0000",
            "window": {"start": 10, "end": 900, "min": 0, "max": 4095},
        },
        {
            "label": "b",
            "color": "00FF00",
            "window": {"start": 20, "end": 800, "min": 0, "max": 4095},
        },
    ]
}


def _twelve_bit(shape=(2, 16, 64, 64)) -> np.ndarray:
    rng = np.random.default_rng(3)
    data = rng.integers(100, 400, shape).astype("uint16")
    data[0, :, 20:40, 20:40] = 3000
    data[1, :, 10:20, 30:50] = 1700
    return data


def _open_counted(path):
    store = CountingStore.local(path)
    group = zarr.open_group(store, mode="r")
    return read_ome_zarr(str(path), group=group), store


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_omero_window_wins_and_nothing_is_read(tmp_path, version):
    path, _ = write_ngff_store(
        tmp_path / "w.ome.zarr", version=version, data=_twelve_bit(), omero=WINDOWS
    )
    image, store = _open_counted(path)
    layers = image_to_layer_data(image)
    assert [ly[1]["contrast_limits"] for ly in layers] == [(10.0, 900.0), (20.0, 800.0)]
    assert store.chunk_reads() == 0


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_without_window_contrast_comes_from_the_coarsest_level(tmp_path, version):
    data = _twelve_bit()
    path, levels = write_ngff_store(tmp_path / "n.ome.zarr", version=version, data=data)
    image, store = _open_counted(path)
    layers = image_to_layer_data(image)
    coarsest = levels[-1]
    for c, layer in enumerate(layers):
        lo, hi = layer[1]["contrast_limits"]
        assert (lo, hi) == (float(coarsest[c].min()), float(coarsest[c].max()))
        assert hi < 4096  # 12-bit data, not the uint16 range
    read_levels = {k.split("/")[0] for k in store.chunk_keys()}
    assert read_levels == {str(len(levels) - 1)}  # only the coarsest level was read


def test_one_channel_with_a_window_one_without(tmp_path):
    data = _twelve_bit()
    omero = {"channels": [WINDOWS["channels"][0], {"label": "b", "color": "00FF00"}]}
    path, levels = write_ngff_store(tmp_path / "m.ome.zarr", version="0.4", data=data, omero=omero)
    image, store = _open_counted(path)
    layers = image_to_layer_data(image)
    assert layers[0][1]["contrast_limits"] == (10.0, 900.0)
    assert layers[1][1]["contrast_limits"] == (
        float(levels[-1][1].min()),
        float(levels[-1][1].max()),
    )
    assert store.chunk_reads() > 0


def test_contrast_of_a_large_level_reads_a_central_patch():
    class Counting:
        shape = (3, 4000, 4000)
        dtype = np.dtype("float32")

        def __init__(self):
            self.keys = []

        def __getitem__(self, key):
            self.keys.append(key)
            out = np.zeros((1024, 1024), "float32")
            out[0, 0], out[1, 1], out[2, 2] = np.nan, -2.5, 7.0
            return out

    data = Counting()
    assert data_contrast_limits(data) == (-2.5, 7.0)
    (key,) = data.keys
    assert key[0] == 1 and key[1] == slice(1488, 2512) and key[2] == slice(1488, 2512)


def test_constant_and_empty_data():
    assert data_contrast_limits(np.full((4, 4), 5, "uint16")) == (0.0, 5.0)
    assert data_contrast_limits(np.zeros((0, 4))) is None
    assert data_contrast_limits(np.full((2, 2), np.nan)) is None


def test_layers_read_through_the_cache_and_say_so(tmp_path):
    data = _twelve_bit()
    path, _ = write_ngff_store(tmp_path / "c.ome.zarr", version="0.5", data=data, omero=WINDOWS)
    layers = image_to_layer_data(read_ome_zarr(path))
    for data_levels, kwargs, _ in layers:
        assert all(isinstance(lvl, LazyView) for lvl in data_levels)
        assert all(isinstance(lvl.base, CachedArray) for lvl in data_levels)
        info = kwargs["metadata"]["napari_zarrnii"]["cache"]
        assert info["id"] == chunk_cache().id
        assert info["budget_bytes"] == chunk_cache().budget
        assert info["prefetch"] in (True, False)
    np.testing.assert_array_equal(np.asarray(layers[1][0][0][3]), data[1, 3])
    # levels of one image read ahead for each other; channels share the level arrays
    base0 = layers[0][0][0].base
    assert base0 is layers[1][0][0].base and base0.pyramid is layers[0][0][1].base.pyramid


def test_saving_layers_reads_beneath_the_cache(tmp_path):
    path, _ = write_ngff_store(tmp_path / "s.ome.zarr", version="0.5", data=_twelve_bit())
    layers = image_to_layer_data(read_ome_zarr(path))
    image = layers_to_image(layers[:1])
    for level in image.levels:
        assert not isinstance(getattr(level.data, "base", None), CachedArray)


def test_plate_wells_are_cached_per_well_plane(tmp_path):
    from .test_read_omezarr import _write_plate  # a hand-written 2 x 3 plate of (c, y, x)

    path, _ = _write_plate(tmp_path, missing={(1, 2)})
    image = read_ome_zarr(path, plate_level=0)
    layers = image_to_layer_data(image)
    level0 = layers[1][0][0]  # channel 1, level 0
    assert isinstance(level0.base, CachedArray)
    assert level0.base.read_chunks == (1, 16, 16)  # one plane of one well
    mosaic = np.asarray(image.levels[0].data[...])
    np.testing.assert_array_equal(np.asarray(level0[...]), mosaic[1])
    np.testing.assert_array_equal(np.asarray(level0[10:30, 5:40]), mosaic[1, 10:30, 5:40])


def test_plugin_settings_drive_the_cache(tmp_path, monkeypatch):
    napari_settings = pytest.importorskip("napari.settings")
    from napari_zarrnii import _napari_settings
    from napari_zarrnii.core.cache import set_cache_budget
    from napari_zarrnii.core.prefetch import prefetcher

    monkeypatch.setattr(napari_settings, "_PLUGIN_SETTINGS", {})
    monkeypatch.setattr(_napari_settings, "_followed", None)
    monkeypatch.setattr(_napari_settings, "_started", False)
    settings = napari_settings.get_plugin_settings("napari-zarrnii", path_dir=tmp_path)
    before = chunk_cache().budget
    try:
        set_cache_budget(123 << 20)  # set by the API: "automatic" in napari keeps it
        assert _napari_settings.follow_plugin_settings(background=False)
        assert chunk_cache().budget == 123 << 20
        settings.cache.budget_mib = 64
        assert chunk_cache().budget == 64 << 20
        settings.cache.prefetch = False
        assert prefetcher().enabled is False
    finally:
        settings.cache.prefetch = True
        set_cache_budget(before)
    assert prefetcher().enabled is True


def test_saved_plugin_settings_apply_at_once(tmp_path, monkeypatch):
    pytest.importorskip("napari.settings")
    from napari.settings import _napari_settings as napari_module

    from napari_zarrnii import _napari_settings
    from napari_zarrnii.core.cache import set_cache_budget

    (tmp_path / "napari-zarrnii.yaml").write_text("cache:\n  budget_mib: 96\n")
    monkeypatch.setattr(napari_module, "_CFG_PATH", str(tmp_path / "settings.yaml"))
    monkeypatch.setattr(_napari_settings, "_started", False)
    monkeypatch.setattr(_napari_settings, "attach", lambda: False)  # no live settings here
    before = chunk_cache().budget
    try:
        assert _napari_settings.follow_plugin_settings(background=False)
        assert chunk_cache().budget == 96 << 20
    finally:
        set_cache_budget(before)


def test_opening_ome_zarr_in_napari_imports_only_zarr(tmp_path):
    """On top of what napari has loaded, an OME-Zarr open imports zarr and its codecs only."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    path, _ = write_ngff_store(tmp_path / "i.ome.zarr", version="0.5", data=_twelve_bit())
    code = f"""
import sys
import napari.viewer  # what napari has imported when it calls a reader
before = {{m.split('.')[0] for m in sys.modules}}
from napari_zarrnii._reader import get_reader
layers = get_reader({str(path)!r})({str(path)!r})
import numpy as np
np.asarray(layers[0][0][0][3])
new = {{m.split('.')[0] for m in sys.modules}} - before
heavy = new & {{'dask', 'distributed', 'nibabel', 'tifffile', 'scipy', 'skimage', 'h5py',
                'ome_zarr', 'pandas', 'matplotlib', 'tqdm'}}
assert not heavy, sorted(heavy)
print(sorted(new))
"""
    src = str(Path(__file__).resolve().parent.parent / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "zarr" in out.stdout
