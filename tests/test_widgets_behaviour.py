"""How the dock widgets behave around their work, as a user drives them.

Each test reproduces a problem found by driving the widgets in a real viewer: the
layer a run writes, errors after a successful write in a busy GUI thread, settings
that stick, invalid input, declined questions, closed docks and the smaller ones.
"""

from __future__ import annotations

import numpy as np
import pytest
from napari.utils.notifications import NotificationSeverity, notification_manager
from qtpy.QtCore import QThreadPool

from napari_zarrnii.core.omezarr import read_ome_zarr
from napari_zarrnii.core.pyramid import write_pyramid
from napari_zarrnii.core.sample import make_sample_image

from .conftest import ramp
from .helpers import WIDGET_TIMEOUT_MS, wait_until_idle

pytestmark = pytest.mark.gui

TIMEOUT = WIDGET_TIMEOUT_MS


@pytest.fixture
def errors():
    """Error notifications shown while the test runs (napari's own record of them)."""
    start = len(notification_manager.records)

    def shown() -> list[str]:
        return [
            str(n.message)
            for n in notification_manager.records[start:]
            if n.severity >= NotificationSeverity.ERROR
        ]

    return shown


def _pyramid_widget(viewer):
    from napari_zarrnii._widgets.pyramid import CreatePyramidWidget

    return CreatePyramidWidget(viewer)


# -- 1: a run writes the layer it was started with, and the selection stays ---------------


def test_pyramid_rerun_writes_the_chosen_layer(make_napari_viewer, qtbot, tmp_path, errors):
    viewer = make_napari_viewer()
    other = ramp((8, 24, 24))
    single = (ramp((8, 24, 24)) + 7) % 1000
    viewer.add_image(other, name="other")
    viewer.add_image(single, name="single")
    widget = _pyramid_widget(viewer)
    widget.layers.value = [viewer.layers["single"]]
    out = tmp_path / "single.ome.zarr"
    widget.output.value = out
    widget.n_levels.value = 2
    assert widget.open_result.value
    widget.run_button.clicked.emit()
    wait_until_idle(qtbot, widget)
    assert widget.runner.last_outcome == "done", widget.runner.last_error
    # the result replaced the chosen layer, and the selection follows it (not 'other')
    chosen = list(widget.layers.value)
    assert [ly.name for ly in chosen] == ["single"]
    # the run said what it wrote where
    assert "'single'" in widget.runner.target and "single.ome.zarr" in widget.runner.target
    assert chosen[0].metadata["napari_zarrnii"]["source"] == str(out)
    assert viewer.layers["other"] in viewer.layers

    # again into the same store: the question names the store and what replaces it
    questions = []
    widget.confirm_overwrite = lambda path, question: questions.append((path, question)) or True
    widget.run_button.clicked.emit()
    wait_until_idle(qtbot, widget)
    assert widget.runner.last_outcome == "done", widget.runner.last_error
    assert len(questions) == 1
    path, question = questions[0]
    assert path == str(out) and "'single'" in question and "'other'" not in question
    np.testing.assert_array_equal(np.asarray(read_ome_zarr(out).levels[0].data), single)
    assert [ly.name for ly in widget.layers.value] == ["single"]
    assert errors() == []


def test_pyramid_selection_is_not_changed_by_new_layers(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 8), np.uint8), name="a")
    viewer.add_image(np.zeros((8, 8), np.uint8), name="b")
    widget = _pyramid_widget(viewer)
    widget.layers.value = [viewer.layers["b"]]
    viewer.layers.remove("b")
    assert list(widget.layers.value) == []  # not silently 'a'
    assert not widget.run_button.enabled
    viewer.add_image(np.zeros((8, 8), np.uint8), name="c")
    assert list(widget.layers.value) == []


def test_pyramid_replacing_a_shown_store_reopens_it(make_napari_viewer, qtbot, tmp_path):
    """A layer showing the store that is replaced shows the new store, never stale data."""
    viewer = make_napari_viewer()
    first = tmp_path / "single.ome.zarr"
    viewer.add_image(ramp((8, 24, 24)), name="single")
    widget = _pyramid_widget(viewer)
    widget.output.value = first
    widget.run()
    wait_until_idle(qtbot, widget)
    viewer.add_image(np.full((4, 24, 24), 3, np.uint16), name="other")
    widget.layers.value = [viewer.layers["other"]]
    widget.open_result.value = False
    questions = []
    widget.confirm_overwrite = lambda path, question: questions.append(question) or True
    widget.run()
    wait_until_idle(qtbot, widget)
    assert widget.runner.last_outcome == "done", widget.runner.last_error
    assert "'single'" in questions[0] and "'other'" in questions[0]
    shown = [ly for ly in viewer.layers if ly.metadata.get("napari_zarrnii", {}).get("source")]
    assert len(shown) == 1
    assert tuple(shown[0].data[0].shape) == (4, 24, 24)
    assert list(widget.layers.value) == [viewer.layers["other"]]


# -- 2: the result arrives while the progress handler is still running --------------------


def test_finish_delivered_inside_the_progress_handler(make_napari_viewer, qtbot, errors):
    """napari's progress bar calls processEvents(): the result can arrive inside it."""
    from napari_zarrnii._widgets._common import TaskRunner

    make_napari_viewer()  # its activity dock draws (and processes events on) progress
    runner = TaskRunner()
    qtbot.addWidget(runner.native)
    results = []

    def task(progress, cancel):
        progress(1, 3, "level 1/3")
        return 42

    runner.start(task, desc="Writing pyramid", on_done=results.append)
    # keep the GUI thread busy until the worker has queued its progress AND its result
    assert QThreadPool.globalInstance().waitForDone(TIMEOUT)
    qtbot.waitUntil(lambda: not runner.busy, timeout=TIMEOUT)
    assert results == [42]
    assert runner.last_outcome == "done"
    assert runner.status == "Writing pyramid: done"
    assert errors() == []


@pytest.mark.parametrize("which", ["pyramid", "crop"])
def test_write_in_busy_gui_thread_ends_done(
    make_napari_viewer, qtbot, tmp_path, sample_store, errors, which
):
    viewer = make_napari_viewer()
    viewer.open(str(sample_store()), plugin="napari-zarrnii")
    if which == "pyramid":
        widget = _pyramid_widget(viewer)
        widget.output.value = tmp_path / "out.ome.zarr"
        widget.open_result.value = False
        widget.run()
    else:
        from napari_zarrnii._widgets.crop import CropRoiWidget

        widget = CropRoiWidget(viewer)
        widget.image.value = viewer.layers["DAPI"]
        widget.set_box((0, 0, 0), (8, 64, 64))
        widget.save_path.value = tmp_path / "crop.ome.zarr"
        widget.save()
    assert QThreadPool.globalInstance().waitForDone(TIMEOUT)
    wait_until_idle(qtbot, widget)
    assert widget.runner.last_outcome == "done", widget.runner.last_error
    assert widget.runner.status.endswith(": done")
    assert errors() == []


# -- 3: the method follows the source ------------------------------------------------------


def test_pyramid_method_comes_back_after_labels(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.uint16), name="img")
    viewer.add_labels(np.zeros((32, 32), np.uint8), name="seg")
    widget = _pyramid_widget(viewer)
    widget.layers.value = [viewer.layers["img"]]
    widget.method.value = "nearest"
    widget.layers.value = [viewer.layers["seg"]]
    assert widget.method.value == "mode" and not widget.method.enabled
    assert widget.plan.method == "mode"
    widget.layers.value = [viewer.layers["img"]]
    assert widget.method.enabled
    assert widget.method.value == "nearest"
    assert widget.plan.method == "nearest"


# -- 4: a window with start above end is refused, next to the table ------------------------


def test_channel_window_start_above_end_is_refused(
    make_napari_viewer, qtbot, sample_store, errors
):
    from napari_zarrnii._widgets.channels import ChannelMetadataWidget

    path = sample_store()
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-zarrnii")
    widget = ChannelMetadataWidget(viewer)
    qtbot.addWidget(widget)
    before = path.joinpath("zarr.json").read_bytes()
    dapi = widget.layers[0]
    limits = tuple(dapi.contrast_limits)
    widget.spin(0, "start").setValue(5000)
    widget.spin(0, "end").setValue(1000)
    assert "start" in widget.problem.text() and "end" in widget.problem.text()
    assert widget.problem.isVisible() or not widget.isVisible()
    assert not widget.save_button.isEnabled() and not widget.save_as_button.isEnabled()
    assert not widget.save()
    assert path.joinpath("zarr.json").read_bytes() == before
    assert tuple(dapi.contrast_limits) == limits
    widget.spin(0, "end").setValue(6000)
    assert widget.problem.text() == ""
    assert widget.save_button.isEnabled()
    assert widget.save()
    assert read_ome_zarr(path).channels[0].window.end == 6000


# -- 5: "No" is an answer, and closing a dock stops its work --------------------------------


def test_declined_replace_is_not_an_error(make_napari_viewer, qtbot, tmp_path, errors):
    viewer = make_napari_viewer()
    viewer.add_image(ramp((8, 24, 24)), name="vol")
    out = tmp_path / "out.ome.zarr"
    write_pyramid(make_sample_image(shape=(4, 16, 16), n_levels=1), out, max_layer=0)
    before = read_ome_zarr(out).levels[0].shape
    widget = _pyramid_widget(viewer)
    widget.output.value = out
    widget.confirm_overwrite = lambda path, question: False
    widget.run()
    wait_until_idle(qtbot, widget)
    assert widget.runner.last_outcome == "cancelled"
    assert "cancelled" in widget.runner.status and "kept" in widget.runner.status
    assert read_ome_zarr(out).levels[0].shape == before
    assert errors() == []


def test_closing_the_dock_stops_the_write(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from napari_zarrnii._widgets import pyramid as pyramid_module

    real = pyramid_module.save_image
    started = []

    def held_write(image, path, *, progress, cancel, **kwargs):
        started.append(True)
        cancel.wait(5)  # the user closes the dock meanwhile
        return real(image, path, progress=progress, cancel=cancel, **kwargs)

    monkeypatch.setattr(pyramid_module, "save_image", held_write)
    viewer = make_napari_viewer()
    viewer.add_image(np.ones((8, 32, 32), np.uint16), name="vol")
    source = viewer.layers["vol"]
    dock, widget = viewer.window.add_plugin_dock_widget("napari-zarrnii", "Create pyramid")
    widget.output.value = tmp_path / "never.ome.zarr"
    widget.run()
    qtbot.waitUntil(lambda: bool(started), timeout=TIMEOUT)
    dock.title.close_button.click()  # the dock's own close button
    wait_until_idle(qtbot, widget)
    assert widget.runner.last_outcome == "cancelled"
    assert not (tmp_path / "never.ome.zarr").exists()
    assert list(viewer.layers) == [source]


# -- 7: the smaller ones ---------------------------------------------------------------------


def test_channel_layer_list_follows_renames(make_napari_viewer, qtbot, sample_store):
    from napari_zarrnii._widgets.channels import ChannelMetadataWidget

    viewer = make_napari_viewer()
    viewer.open(str(sample_store()), plugin="napari-zarrnii")
    widget = ChannelMetadataWidget(viewer)
    qtbot.addWidget(widget)
    viewer.layers["GFP"].name = "membrane"
    assert "membrane" in [
        widget.layer.native.itemText(i) for i in range(widget.layer.native.count())
    ]


def test_channel_metadata_of_an_in_memory_layer(make_napari_viewer, qtbot, tmp_path):
    from napari_zarrnii._widgets.channels import ChannelMetadataWidget

    viewer = make_napari_viewer()
    data = ramp((8, 24, 24))
    viewer.add_image(data, name="in memory", colormap="green")
    widget = ChannelMetadataWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.layer.value is viewer.layers["in memory"]
    assert [c.label for c in widget.channels] == ["in memory"]
    assert "in memory" in widget.status.value
    widget.table.item(0, 0).setText("nuclei")
    assert viewer.layers[0].name == "nuclei"
    assert not widget.save_button.isEnabled() and widget.save_as_button.isEnabled()
    out = tmp_path / "saved.ome.zarr"
    widget.ask_save_path = lambda: str(out)
    widget.save_as_button.click()
    wait_until_idle(qtbot, widget)
    assert widget.runner.last_outcome == "done", widget.runner.last_error
    saved = read_ome_zarr(out)
    assert [c.label for c in saved.channels] == ["nuclei"]
    np.testing.assert_array_equal(np.asarray(saved.levels[0].data), data)
    assert widget.source == str(out) and widget.save_button.isEnabled()


def test_storage_report_describes_an_in_memory_layer(make_napari_viewer, qtbot):
    from napari_zarrnii._widgets.storage import StorageReportWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 32, 32), np.uint16), name="scratch")
    widget = StorageReportWidget(viewer)
    wait_until_idle(qtbot, widget)
    assert widget.layer.value is viewer.layers["scratch"]
    assert "in memory" in widget.source.value
    assert widget.table.data[0][1] == "8x32x32"
    assert widget.table.data[4][1] == "16.0 KiB"


def test_storage_report_ratio_has_two_decimals(make_napari_viewer, qtbot, sample_store):
    from napari_zarrnii._widgets.storage import StorageReportWidget

    viewer = make_napari_viewer()
    viewer.open(str(sample_store()), plugin="napari-zarrnii")
    widget = StorageReportWidget(viewer)
    wait_until_idle(qtbot, widget)
    ratios = widget.table.data[7][1:]
    assert all(len(r.split(".")[-1]) == 2 for r in ratios), ratios


@pytest.fixture
def crop_setup(make_napari_viewer, sample_store):
    from napari_zarrnii._widgets.crop import CropRoiWidget

    path = sample_store()
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-zarrnii")
    widget = CropRoiWidget(viewer)
    widget.image.value = viewer.layers["DAPI"]
    return viewer, widget, path


def test_find_tissue_offers_the_threshold_and_shows_the_box(crop_setup, qtbot, errors):
    viewer, widget, _ = crop_setup
    assert widget.threshold.value == ""  # empty: Otsu
    viewer.scene.camera.center = (0.0, 500.0, 500.0)  # looking far away from the image
    viewer.scene.camera.zoom = 50.0
    widget.run_find_tissue()
    wait_until_idle(qtbot, widget)
    assert widget.runner.last_outcome == "done", widget.runner.last_error
    assert "Otsu" in widget.threshold.native.placeholderText()
    # the view now shows the whole box
    roi = viewer.layers["ROI"].data[0]
    (y0, x0), (y1, x1) = roi.min(axis=0), roi.max(axis=0)
    h, w = viewer.canvas.size
    cy, cx = viewer.scene.camera.center[-2:]
    zoom = viewer.scene.camera.zoom
    assert cy - h / zoom / 2 <= y0 and y1 <= cy + h / zoom / 2
    assert cx - w / zoom / 2 <= x0 and x1 <= cx + w / zoom / 2
    # a threshold above every voxel: the message points at the control that is there
    widget.threshold.value = "1e9"
    widget.run_find_tissue()
    wait_until_idle(qtbot, widget)
    assert widget.runner.last_outcome == "failed"
    assert "threshold" in widget.runner.status
    widget.threshold.value = "lots"
    assert "threshold" in widget.info.value
    assert not widget.find_tissue.enabled


def test_crop_rectangle_outside_the_image_is_reported_once(crop_setup, errors):
    viewer, widget, _ = crop_setup
    shapes = viewer.add_shapes(name="roi", ndim=2)
    widget.shapes.value = shapes
    far = np.array([[400.0, 400.0], [500.0, 500.0]])
    shapes.add_rectangles(far)  # what drawing does: added, then changed while dragging
    shapes.data = [far + 10.0]
    assert "empty or outside" in widget.info.value
    assert errors() == []
    widget.from_shapes.clicked.emit()
    assert len(errors()) == 1


def test_saved_crop_is_a_pyramid(crop_setup, qtbot, tmp_path):
    _, widget, path = crop_setup
    widget.set_box((0, 0, 0), (16, 64, 64))
    out = tmp_path / "crop.ome.zarr"
    widget.save_path.value = out
    widget.save()
    wait_until_idle(qtbot, widget)
    assert widget.runner.last_outcome == "done", widget.runner.last_error
    saved = read_ome_zarr(out)
    assert saved.num_levels >= 2
    np.testing.assert_array_equal(
        np.asarray(saved.levels[0].data), np.asarray(read_ome_zarr(path).levels[0].data)
    )


def test_crop_z_range_says_voxels(crop_setup):
    _, widget, _ = crop_setup
    assert "voxel" in widget.z_start.label and "voxel" in widget.z_stop.label


def test_ask_replace_asks_only_when_something_is_there(tmp_path):
    """One rule for every widget's save: nothing there -> write; there -> ask; No -> keep."""
    from types import SimpleNamespace

    from napari_zarrnii._widgets._common import ask_replace

    asked: list[str] = []
    declined: list[tuple[str, str]] = []

    def widget(answer: bool) -> SimpleNamespace:
        return SimpleNamespace(
            confirm_overwrite=lambda path, question: asked.append(question) or answer,
            runner=SimpleNamespace(decline=lambda *args: declined.append(args)),
        )

    target = tmp_path / "out.ome.zarr"
    assert ask_replace(widget(True), "Saving", str(target), lambda: "replace?") is False
    assert asked == []  # nothing there: no question
    target.mkdir()
    assert ask_replace(widget(True), "Saving", str(target), lambda: "replace?") is True
    assert ask_replace(widget(False), "Saving", str(target), lambda: "replace?") is None
    assert asked == ["replace?", "replace?"]
    assert declined == [("Saving", f"{target} exists and was kept")]
    assert target.exists()
