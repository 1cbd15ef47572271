"""napari's asynchronous slicing with layers read through the chunk cache."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import zarr

from napari_zarrnii._layers import image_to_layer_data
from napari_zarrnii.core.omezarr import read_ome_zarr

from .conftest import ramp, write_ngff_store
from .stores import CountingStore

pytestmark = pytest.mark.gui

OMERO = {
    "channels": [
        {
            "label": label,
            "color": color,
            "window": {"start": 0, "end": 60000, "min": 0, "max": 65535},
        }
        for label, color in (("a", "FF0000"), ("b", "00FF00"))
    ]
}


@pytest.fixture
def fresh_settings(monkeypatch):
    """napari's settings for this test only, never saved to the user's file."""
    from napari import settings as napari_settings
    from napari.settings import NapariSettings

    fresh = NapariSettings(config_path=None)
    monkeypatch.setattr(napari_settings, "_SETTINGS", fresh)
    return fresh


@pytest.fixture
def no_prefetch():
    """Nothing read ahead: the plane stepped to is read when asked for."""
    from napari_zarrnii.core.prefetch import prefetcher, set_prefetch

    before = prefetcher().enabled
    set_prefetch(False)
    yield
    set_prefetch(before)


def test_ui_stays_responsive_while_a_slow_plane_loads(
    fresh_settings, no_prefetch, make_napari_viewer, qtbot, tmp_path
):
    from qtpy.QtCore import QTimer

    data = ramp((2, 32, 48, 48))
    path, _ = write_ngff_store(
        tmp_path / "slow.ome.zarr", version="0.5", data=data, n_levels=1, omero=OMERO
    )
    store = CountingStore.local(path)
    image = read_ome_zarr(str(path), group=zarr.open_group(store, mode="r"))
    fresh_settings.experimental.async_ = True  # after make_napari_viewer reset the settings
    viewer = make_napari_viewer()
    assert not viewer._layer_slicer._force_sync
    layers = [viewer.add_image(d, **kwargs) for d, kwargs, _ in image_to_layer_data(image)]
    qtbot.waitUntil(lambda: all(ly.loaded for ly in layers), timeout=20000)
    z_axis = 0
    shown = viewer.dims.current_step[z_axis]
    target = 29 if shown < 16 else 3  # in the other 16-deep chunk layer: must be read

    gate = threading.Event()
    store.set_gate(gate)  # chunk reads now wait until the gate opens
    safety = threading.Timer(20.0, gate.set)  # a synchronous slicer would block until then
    safety.start()
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    try:
        viewer.dims.set_current_step(z_axis, target)
        returned_while_held = not gate.is_set()
        assert returned_while_held, "the UI thread waited for the store"
        qtbot.waitUntil(lambda: len(ticks) >= 5, timeout=10000)  # the event loop runs
        assert not gate.is_set() and not all(ly.loaded for ly in layers)
    finally:
        gate.set()
        safety.cancel()
        timer.stop()
    qtbot.waitUntil(lambda: all(ly.loaded for ly in layers), timeout=20000)
    for c, layer in enumerate(layers):
        np.testing.assert_array_equal(np.asarray(layer._slice.image.raw), data[c, target])
    assert store.chunk_reads() > 0
