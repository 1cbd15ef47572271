"""The dock widgets end to end in a real viewer: parameters, workers, files, layers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_zarrnii.core.omezarr import read_ome_zarr

from .helpers import WIDGET_TIMEOUT_MS, wait_until_idle
from .ngff_schemas import validate_ngff

pytestmark = pytest.mark.gui

TIMEOUT = WIDGET_TIMEOUT_MS


# -- storage report ----------------------------------------------------------------------


def test_storage_report(make_napari_viewer, qtbot, sample_store):
    from napari_zarrnii._widgets.storage import StorageReportWidget

    path = sample_store()
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-zarrnii")
    widget = StorageReportWidget(viewer)
    wait_until_idle(qtbot, widget)
    assert widget.runner.last_outcome == "done"
    assert [r.level for r in widget.rows] == [0, 1, 2, None]
    assert widget.rows[-1].bytes_on_disk > 0
    assert widget.table.shape == (8, 5)
    assert widget.table.column_headers[1:] == ("level 0", "level 1", "level 2", "total")
    assert widget.table.data[0] == ["shape", "2x16x64x64", "2x16x32x32", "2x16x16x16", "-"]


# -- channel metadata --------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_channel_edit_and_save(make_napari_viewer, qtbot, sample_store, version):
    from napari_zarrnii._widgets.channels import ChannelMetadataWidget

    path = sample_store(version)
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-zarrnii")
    widget = ChannelMetadataWidget(viewer)
    qtbot.addWidget(widget)
    assert [c.label for c in widget.channels] == ["DAPI", "GFP"]
    assert set(widget.layers) == {0, 1}
    dapi, gfp = widget.layers[0], widget.layers[1]

    widget.table.item(0, 0).setText("nuclei")  # label
    widget.choose_color = lambda current: "FF00FF"
    widget.table.cellWidget(0, 1).click()  # colour
    widget.spin(0, "end").setValue(2000)  # window
    widget.table.cellWidget(1, 6).setChecked(False)  # active
    assert dapi.name == "nuclei"
    assert dapi.colormap.name == "magenta"
    assert tuple(dapi.contrast_limits) == (100, 2000)
    assert not gfp.visible

    gfp.contrast_limits = (150, 1234)
    widget.use_current_contrast()
    assert widget.channels[1].window.end == 1234
    assert widget.spin(1, "end").value() == 1234

    assert widget.save()
    meta = path / ("zarr.json" if version == "0.5" else ".zattrs")
    doc = json.loads(meta.read_text())
    attrs = doc["attributes"] if version == "0.5" else doc
    validate_ngff(attrs, version, "image")
    ome = attrs["ome"] if version == "0.5" else attrs
    channels = ome["omero"]["channels"]
    assert channels[0]["label"] == "nuclei" and channels[0]["color"] == "FF00FF"
    assert channels[0]["window"]["end"] == 2000
    assert channels[1]["active"] is False
    assert channels[1]["window"]["start"] == 150 and channels[1]["window"]["end"] == 1234

    # edit again, then revert: back to what is on disk
    widget.table.item(0, 0).setText("something else")
    widget.spin(0, "end").setValue(50000)
    widget.revert()
    assert widget.channels[0].label == "nuclei"
    assert widget.table.item(0, 0).text() == "nuclei"
    assert dapi.name == "nuclei"
    assert tuple(dapi.contrast_limits) == (100, 2000)


def test_channel_read_only_source_saves_a_copy(
    make_napari_viewer, qtbot, sample_store, tmp_path, monkeypatch
):
    from napari_zarrnii._errors import ReadOnlyStoreError
    from napari_zarrnii._widgets import channels as channels_module

    path = sample_store()
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-zarrnii")
    widget = channels_module.ChannelMetadataWidget(viewer)
    qtbot.addWidget(widget)

    def read_only(source, channels, **kwargs):
        raise ReadOnlyStoreError(f"{source}: the store is read-only (simulated)")

    monkeypatch.setattr(channels_module, "write_channels", read_only)
    widget.table.item(1, 0).setText("membrane")
    before = path.joinpath("zarr.json").read_bytes()
    assert not widget.save()
    assert path.joinpath("zarr.json").read_bytes() == before
    assert not widget.save_button.isEnabled()

    copy = tmp_path / "copy.ome.zarr"
    widget.ask_save_path = lambda: str(copy)
    widget.save_as_button.click()
    wait_until_idle(qtbot, widget)
    assert widget.runner.last_outcome == "done", widget.runner.last_error
    saved = read_ome_zarr(copy)
    assert [c.label for c in saved.channels] == ["DAPI", "membrane"]
    original = read_ome_zarr(path)
    assert saved.num_levels == original.num_levels
    np.testing.assert_array_equal(
        np.asarray(saved.levels[1].data), np.asarray(original.levels[1].data)
    )
    assert "cells" in saved.labels
    assert widget.source == str(copy)
    assert [ly.name for ly in viewer.layers][-2:] == ["DAPI", "membrane"]


# -- create pyramid ----------------------------------------------------------------------


def _pyramid_widget(viewer):
    from napari_zarrnii._widgets.pyramid import CreatePyramidWidget

    return CreatePyramidWidget(viewer)


def test_pyramid_preview_follows_settings(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 64, 96), np.uint16), name="vol", scale=(2.0, 0.5, 0.5))
    widget = _pyramid_widget(viewer)
    assert [ly.name for ly in widget.layers.value] == ["vol"]
    widget.n_levels.value = 3
    assert widget.preview.shape[0] == 3
    # z is 4x coarser: auto factors shrink y, x first
    assert widget.preview.data[1, 1] == "8x32x48"
    assert widget.preview.data[1, 2] == "2x1x1"
    widget.factors.value = "1,4,4"
    assert widget.preview.data[2, 1] == "8x4x6"
    widget.factors.value = "2,a"
    assert widget.plan is None and "cannot plan" in widget.summary.value
    assert not widget.run_button.enabled
    widget.factors.value = "auto"
    widget.ngff_version.value = "0.4"
    assert not widget.shards.enabled
    widget.compressor.value = "none"
    assert "uncompressed" in widget.summary.value


def test_pyramid_labels_force_mode(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((32, 32), np.uint8), name="seg")
    widget = _pyramid_widget(viewer)
    assert widget.method.value == "mode" and not widget.method.enabled
    assert widget.plan.method == "mode"


def test_pyramid_from_layer_writes_and_opens(make_napari_viewer, qtbot, tmp_path):
    from .conftest import ramp

    viewer = make_napari_viewer()
    data = ramp((8, 48, 40))
    viewer.add_image(data, name="vol", scale=(2.0, 0.5, 0.25), translate=(10.0, -4.0, 3.0))
    widget = _pyramid_widget(viewer)
    out = tmp_path / "out.ome.zarr"
    widget.output.value = out
    widget.n_levels.value = 3
    widget.chunks.value = "8,16,16"
    widget.compressor.value = "zstd"
    widget.run_button.clicked.emit()
    wait_until_idle(qtbot, widget)
    assert widget.runner.last_outcome == "done", widget.runner.last_error
    image = read_ome_zarr(out)
    assert image.num_levels == 3 and image.ngff_version == "0.5"
    np.testing.assert_array_equal(np.asarray(image.levels[0].data), data)
    assert image.levels[0].data.chunks == (8, 16, 16)
    # the result replaced the source layer, placed where it was
    assert [ly.name for ly in viewer.layers] == ["vol"]
    layer = viewer.layers["vol"]
    assert layer.multiscale and layer.metadata["napari_zarrnii"]["source"] == str(out)
    np.testing.assert_allclose(layer.translate, (10.0, -4.0, 3.0))
    np.testing.assert_allclose(layer.scale, (2.0, 0.5, 0.25))

    # again to the same path: asks, then replaces
    asked = []
    widget.confirm_overwrite = lambda path, question: asked.append(path) or True
    widget.open_result.value = False
    widget.n_levels.value = 2
    widget.ngff_version.value = "0.4"
    widget.run()
    wait_until_idle(qtbot, widget)
    assert asked == [str(out)]
    assert widget.runner.last_outcome == "done", widget.runner.last_error
    image = read_ome_zarr(out)
    assert image.num_levels == 2 and image.ngff_version == "0.4"

    # refused: the store stays as it is
    widget.confirm_overwrite = lambda path, question: False
    widget.n_levels.value = 1
    widget.run()
    wait_until_idle(qtbot, widget)
    assert widget.runner.last_outcome == "cancelled"
    assert read_ome_zarr(out).num_levels == 2


def test_pyramid_cancel_leaves_nothing(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from napari_zarrnii._widgets import pyramid as pyramid_module

    real = pyramid_module.save_image

    def held_write(image, path, *, progress, cancel, **kwargs):
        def hold(done, total, message):
            progress(done, total, message)
            cancel.wait(10)  # keep the write running until the user cancels

        return real(image, path, progress=hold, cancel=cancel, **kwargs)

    monkeypatch.setattr(pyramid_module, "save_image", held_write)
    viewer = make_napari_viewer()
    viewer.add_image(np.ones((16, 64, 64), np.uint16), name="vol")
    widget = _pyramid_widget(viewer)
    out = tmp_path / "cancelled.ome.zarr"
    widget.output.value = out
    widget.chunks.value = "8"
    widget.run()
    qtbot.waitUntil(lambda: widget.runner.busy and widget.runner._bar.max > 0, timeout=TIMEOUT)
    widget.runner._cancel_button.clicked.emit()
    wait_until_idle(qtbot, widget)
    assert widget.runner.last_outcome == "cancelled"
    assert list(tmp_path.iterdir()) == []
    assert [ly.name for ly in viewer.layers] == ["vol"]


def test_pyramid_from_nifti_file(make_napari_viewer, qtbot, tmp_path):
    import nibabel as nib

    data = np.arange(10 * 12 * 14, dtype=np.int16).reshape(10, 12, 14)
    nifti = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([0.5, 0.5, 2.0, 1.0])), str(nifti))
    viewer = make_napari_viewer()
    widget = _pyramid_widget(viewer)
    widget.source_kind.value = "NIfTI file"
    widget.file.value = nifti
    assert widget.plan is not None and widget.plan.levels[0].shape == (14, 12, 10)
    out = tmp_path / "brain.ome.zarr"
    widget.output.value = out
    widget.n_levels.value = 2
    widget.run()
    wait_until_idle(qtbot, widget)
    assert widget.runner.last_outcome == "done", widget.runner.last_error
    image = read_ome_zarr(out)
    from napari_zarrnii.core.nifti import read_nifti

    np.testing.assert_array_equal(
        np.asarray(image.levels[0].data), np.asarray(read_nifti(nifti).levels[0].data)
    )
    assert len(viewer.layers) == 1


def test_pyramid_to_an_s3_url(make_napari_viewer, qtbot, s3_server, s3_bucket, monkeypatch):
    """The output typed as a URL: written there, opened from there, replaced on request."""
    from .conftest import ramp

    shown = []
    monkeypatch.setattr("napari_zarrnii._widgets.pyramid.show_error", shown.append)
    # the destination check is the one every widget's save shares
    monkeypatch.setattr("napari_zarrnii._widgets._common.show_error", shown.append)
    viewer = make_napari_viewer()
    data = ramp((8, 48, 40))
    viewer.add_image(data, name="vol")
    widget = _pyramid_widget(viewer)
    widget.output_url.value = s3_bucket  # a bucket, not a store in it: refused
    assert widget.run() is False
    assert "names a bucket" in shown[-1]
    assert s3_server.keys(s3_bucket) == []

    url = f"{s3_bucket}/vol.ome.zarr"
    widget.output_url.value = url
    widget.n_levels.value = 2
    widget.chunks.value = "8,16,16"
    assert widget.run() is True
    wait_until_idle(qtbot, widget)
    assert widget.runner.last_outcome == "done", widget.runner.last_error
    image = read_ome_zarr(url)
    assert image.num_levels == 2
    np.testing.assert_array_equal(np.asarray(image.levels[0].data[...]), data)
    layer = viewer.layers["vol"]  # the source layer, replaced by the store at the URL
    assert layer.multiscale and layer.metadata["napari_zarrnii"]["source"] == url

    asked = []
    widget.confirm_overwrite = lambda path, question: asked.append(path) or True
    widget.n_levels.value = 1
    widget.run()
    wait_until_idle(qtbot, widget)
    assert asked == [url]
    assert widget.runner.last_outcome == "done", widget.runner.last_error
    assert read_ome_zarr(url).num_levels == 1
    assert not any(k.startswith("1/") for k in s3_server.keys(url))


# -- crop ROI ------------------------------------------------------------------------------


@pytest.fixture
def crop_setup(make_napari_viewer, sample_store):
    from napari_zarrnii._widgets.crop import CropRoiWidget

    path = sample_store()
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-zarrnii")
    widget = CropRoiWidget(viewer)
    widget.image.value = viewer.layers["DAPI"]
    return viewer, widget, path


def test_crop_from_rectangle(crop_setup):
    viewer, widget, path = crop_setup
    # voxels y 10..29, x 20..39 drawn edge to edge (scale 0.5 um, translation 0)
    viewer.add_shapes(
        [np.array([[4.75, 9.75], [14.75, 19.75]])], shape_type="rectangle", name="my roi"
    )
    widget.shapes.value = viewer.layers["my roi"]
    widget.z_start.value, widget.z_stop.value = 2, 6
    assert widget.box_from_shapes()
    assert widget.box == ((2, 10, 20), (6, 30, 40))
    assert widget.box_table.data[1] == ["voxels", "2 - 6", "10 - 30", "20 - 40"]
    assert widget.box_table.data[0] == ["micrometer", "3 - 11", "4.75 - 14.75", "9.75 - 19.75"]
    assert "4 x 20 x 20 x 2 channel(s): 6.2 KiB" in widget.info.value
    widget.z_stop.value = 8
    assert widget.box == ((2, 10, 20), (8, 30, 40))

    added = widget.crop()
    assert [ly.name for ly in added] == ["DAPI crop", "GFP crop"]
    full = read_ome_zarr(path).levels[0].data
    for c, layer in enumerate(added):
        np.testing.assert_allclose(layer.translate, (2 * 2.0, 10 * 0.5, 20 * 0.5))
        np.testing.assert_allclose(layer.scale, (2.0, 0.5, 0.5))
        np.testing.assert_array_equal(np.asarray(layer.data), full[c, 2:8, 10:30, 20:40])
        # the crop's voxel 0 sits on the source voxel it came from
        np.testing.assert_allclose(
            layer.data_to_world((0, 0, 0)), viewer.layers["DAPI"].data_to_world((2, 10, 20))
        )
    assert added[0].colormap.name == viewer.layers["DAPI"].colormap.name


def test_crop_follows_edited_rectangle(crop_setup):
    viewer, widget, _ = crop_setup
    roi = viewer.add_shapes([np.array([[0.0, 0.0], [5.0, 5.0]])], shape_type="rectangle")
    widget.shapes.value = roi
    roi.data = [np.array([[4.75, 9.75], [14.75, 19.75]])]
    assert widget.box is not None and widget.box[0][1:] == (10, 20)


def test_crop_from_view(crop_setup):
    viewer, widget, _ = crop_setup
    viewer.scene.camera.center = (0.0, 8.0, 12.0)
    viewer.scene.camera.zoom = 40.0  # screen pixels per micrometre
    h, w = viewer.canvas.size
    assert widget.box_from_view()
    (z0, y0, x0), (z1, y1, x1) = widget.box
    assert (z0, z1) == (0, 16)
    half_y, half_x = h / 40.0 / 2, w / 40.0 / 2
    assert y0 == max(0, int(np.floor((8.0 - half_y) / 0.5 + 0.5)))
    assert y1 == min(64, int(np.ceil((8.0 + half_y) / 0.5 + 0.5)))
    assert x0 == max(0, int(np.floor((12.0 - half_x) / 0.5 + 0.5)))
    assert x1 == min(64, int(np.ceil((12.0 + half_x) / 0.5 + 0.5)))


def test_crop_find_tissue_draws_rectangle(crop_setup, qtbot):
    from napari_zarrnii.core.mask import find_tissue_bounds

    viewer, widget, path = crop_setup
    widget.run_find_tissue()
    wait_until_idle(qtbot, widget)
    assert widget.runner.last_outcome == "done", widget.runner.last_error
    assert widget.box is not None
    roi = viewer.layers["ROI"]
    assert widget.shapes.value is roi and len(roi.data) == 1
    # the box covers the tissue found on the coarsest level
    image = read_ome_zarr(path)
    coarse = find_tissue_bounds(image.levels[-1].data[0])
    f = np.asarray(image.levels[0].data.shape[1:]) / np.asarray(image.levels[-1].data.shape[1:])
    for axis, (lo, hi) in enumerate(coarse):
        assert widget.box[0][axis] <= lo * f[axis] and widget.box[1][axis] >= hi * f[axis]
    # the rectangle drawn is the box (edges, in micrometres)
    (y0, x0), (y1, x1) = roi.data[0].min(axis=0), roi.data[0].max(axis=0)
    assert (y0, x0) == pytest.approx([(widget.box[0][a] - 0.5) * 0.5 for a in (1, 2)])
    assert (y1, x1) == pytest.approx([(widget.box[1][a] - 0.5) * 0.5 for a in (1, 2)])


@pytest.mark.parametrize("suffix", [".ome.zarr", ".nii.gz"])
def test_crop_save(crop_setup, qtbot, tmp_path, suffix):
    _, widget, path = crop_setup
    widget.set_box((1, 8, 16), (5, 40, 48))
    out = tmp_path / f"crop{suffix}"
    widget.save_path.value = out
    widget.save_button.clicked.emit()
    wait_until_idle(qtbot, widget)
    assert widget.runner.last_outcome == "done", widget.runner.last_error
    expected = np.asarray(read_ome_zarr(path).levels[0].data[:, 1:5, 8:40, 16:48])
    if suffix == ".nii.gz":
        from napari_zarrnii.core.nifti import read_nifti

        saved = read_nifti(out)
    else:
        saved = read_ome_zarr(out)
        assert [c.label for c in saved.channels] == ["DAPI", "GFP"]
    np.testing.assert_array_equal(np.asarray(saved.levels[0].data), expected)
    np.testing.assert_allclose(saved.levels[0].translation[-3:], (2.0, 4.0, 8.0))
    # saving again asks before replacing
    asked = []
    widget.confirm_overwrite = lambda p, question: asked.append(p) or False
    widget.save()
    wait_until_idle(qtbot, widget)
    assert asked == [str(out)]


# -- through napari's plugin menu ------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Create pyramid", "Channel metadata", "Crop ROI to full resolution", "Storage report"]
)
def test_widgets_dock_through_npe2(make_napari_viewer, qtbot, sample_store, name):
    path = sample_store()
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-zarrnii")
    dock, widget = viewer.window.add_plugin_dock_widget("napari-zarrnii", name)
    assert dock is not None and widget is not None
    if hasattr(widget, "runner"):
        wait_until_idle(qtbot, widget)
        assert widget.runner.last_outcome in (None, "done")


def test_pyramid_from_omezarr_folder(make_napari_viewer, qtbot, sample_store, tmp_path):
    path = sample_store("0.4")
    viewer = make_napari_viewer()
    widget = _pyramid_widget(viewer)
    widget.source_kind.value = "OME-Zarr folder"
    assert widget.file.mode.value == "d"
    widget.file.value = path
    assert widget.plan.levels[0].shape == (2, 16, 64, 64)
    out = tmp_path / "again.ome.zarr"
    widget.output.value = out
    widget.n_levels.value = 2
    widget.run()
    wait_until_idle(qtbot, widget)
    assert widget.runner.last_outcome == "done", widget.runner.last_error
    saved, source = read_ome_zarr(out), read_ome_zarr(path)
    np.testing.assert_array_equal(
        np.asarray(saved.levels[0].data), np.asarray(source.levels[0].data)
    )
    assert [c.label for c in saved.channels] == ["DAPI", "GFP"]
    assert "cells" in saved.labels
    assert [ly.name for ly in viewer.layers] == ["DAPI", "GFP", "cells"]


def test_closed_widget_is_left_alone(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """Closing a dock stops its task and its layer subscriptions."""
    from napari_zarrnii._widgets import pyramid as pyramid_module

    real = pyramid_module.save_image
    started = []

    def held_write(image, path, *, progress, cancel, **kwargs):
        started.append(True)
        cancel.wait(10)
        return real(image, path, progress=progress, cancel=cancel, **kwargs)

    monkeypatch.setattr(pyramid_module, "save_image", held_write)
    viewer = make_napari_viewer()
    viewer.add_image(np.ones((8, 32, 32), np.uint16), name="vol")
    dock, widget = viewer.window.add_plugin_dock_widget("napari-zarrnii", "Create pyramid")
    widget.output.value = tmp_path / "never.ome.zarr"
    widget.run()
    qtbot.waitUntil(lambda: bool(started), timeout=TIMEOUT)
    runner = widget.runner
    viewer.window.remove_dock_widget(dock)
    widget.native.deleteLater()
    qtbot.waitUntil(lambda: not runner.alive, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: not runner.busy, timeout=TIMEOUT)
    assert not (tmp_path / "never.ome.zarr").exists()
    viewer.add_image(np.zeros((4, 4)), name="later")  # no callback into the dead widget
