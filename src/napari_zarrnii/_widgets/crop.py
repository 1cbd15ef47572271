"""Crop ROI to full resolution: a box from a rectangle, the view or the tissue, at level 0.

The box is held in level-0 voxel indices of the chosen layer (``box_max`` exclusive,
in the layer's axis order).  World coordinates become voxel indices through the
layer's own transform and :func:`~..core.roi.index_box` (rounded outward); the crop
is :func:`~..core.roi.crop_level`, a lazy dask slice placed exactly over the source.

A rectangle being drawn or edited updates the box as it changes; a problem with it
(outside the image, empty) is shown under the box, not as a notification -- buttons
the user clicks report theirs as notifications.  A saved OME-Zarr crop gets a
pyramid down to about :data:`CROP_PYRAMID_TARGET` voxels along its largest axis.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.types import FileDialogMode
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.utils.notifications import show_error, show_info, show_warning

from .._layers import layers_to_image
from ..core.io import auto_max_layer, resolve_destination, save_image
from ..core.mask import tissue_bounds_and_threshold
from ..core.model import Level
from ..core.roi import crop_level, index_box, map_box_between_levels, physical_box
from ..core.store import normalize_source
from ._common import (
    Panel,
    TaskRunner,
    ask_replace,
    ask_yes_no,
    describe_layers,
    fill_table,
    format_bytes,
    image_layers,
    layer_choices,
    on_closed,
    read_only_table,
    set_message,
    source_layers,
    watch_layers,
    zarrnii_info,
)

if TYPE_CHECKING:
    import napari

__all__ = ["CropRoiWidget"]

ROI_LAYER = "ROI"
#: a saved OME-Zarr crop gets levels until its largest axis is at most this many voxels
CROP_PYRAMID_TARGET = 32
#: the part of the canvas the found box fills when the view is fitted to it
FIT_MARGIN = 0.85
OTSU_HINT = "Otsu (automatic)"


def _confirm_overwrite(path: str, question: str) -> bool:
    return ask_yes_no("Replace?", question)


def parse_threshold(text: str) -> float | None:
    """``''``/``'otsu'``/``'auto'`` -> None (Otsu); a number -> that number.

    A number between 0 and 1 on integer data is a fraction of the data range
    (:func:`~..core.mask.resolve_threshold`).
    """
    value = (text or "").strip().lower()
    if value in ("", "otsu", "auto"):
        return None
    try:
        number = float(value)
    except ValueError as exc:
        raise ValueError(f"threshold: {text!r} is not a number (empty for Otsu)") from exc
    if not math.isfinite(number):
        raise ValueError(f"threshold: {text!r} is not a finite number")
    return number


def _camera_and_canvas(viewer: Any) -> tuple[Any, tuple[int, int]]:
    """The camera and the canvas size (height, width) in screen pixels."""
    scene = getattr(viewer, "scene", None)
    if scene is not None:  # napari >= 0.9
        return scene.camera, tuple(viewer.canvas.size)
    return viewer.camera, tuple(viewer._canvas_size)  # older napari


class CropRoiWidget(Panel):
    """Choose a box on a (multiscale) image layer and load or save it at full resolution.

    ``confirm_overwrite(path, question) -> bool`` asks before replacing a file; tests
    replace it.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.confirm_overwrite = _confirm_overwrite
        self.box: tuple[tuple[int, ...], tuple[int, ...]] | None = None
        self._watched: Any = None
        self.image = ComboBox(label="image", choices=layer_choices(viewer, image_layers))
        self.all_channels = CheckBox(label="all channels of the image", value=True)
        self.shapes = ComboBox(
            label="shapes",
            choices=layer_choices(viewer, lambda v: image_layers(v, kinds=("shapes",))),
        )
        self.from_shapes = PushButton(text="From rectangle")
        self.from_view = PushButton(text="From current view")
        self.find_tissue = PushButton(text="Find tissue")
        self.threshold = LineEdit(
            label="threshold",
            value="",
            tooltip="Find tissue: voxels above this value; empty for Otsu's threshold, "
            "0-1 on integer data for a fraction of the data range",
        )
        self.z_start = SpinBox(label="z from (voxel)", min=0, max=0)
        self.z_stop = SpinBox(label="z to (voxel, excl.)", min=1, max=1)
        self.info = Label(value="")
        self.box_table = read_only_table(("",))
        self.crop_button = PushButton(text="Crop (add layer)")
        self.save_path = FileEdit(
            label="save as",
            mode=FileDialogMode.OPTIONAL_FILE,
            filter="OME-Zarr or NIfTI (*.ome.zarr *.nii *.nii.gz)",
        )
        self.save_button = PushButton(text="Save crop")
        self.runner = TaskRunner()
        buttons = Container(
            widgets=[self.from_shapes, self.from_view, self.find_tissue],
            layout="horizontal",
            labels=False,
        )
        buttons.margins = (0, 0, 0, 0)
        super().__init__(
            widgets=[
                self.image, self.all_channels, self.shapes, buttons, self.threshold,
                self.z_start, self.z_stop, self.box_table, self.info, self.crop_button,
                self.save_path, self.save_button, self.runner,
            ]
        )  # fmt: skip
        self.span(buttons, self.box_table, self.info, self.crop_button, self.save_button)
        self.span(self.runner)
        self.threshold.native.setPlaceholderText(OTSU_HINT)
        self.threshold.changed.connect(self._on_threshold_changed)
        self.image.changed.connect(self._on_image_changed)
        self.shapes.changed.connect(self._watch_shapes)
        self.all_channels.changed.connect(self._show_box)
        self.from_shapes.changed.connect(lambda *_: self.box_from_shapes())
        self.from_view.changed.connect(lambda *_: self.box_from_view())
        self.find_tissue.changed.connect(lambda *_: self.run_find_tissue())
        self.z_start.changed.connect(self._on_z_changed)
        self.z_stop.changed.connect(self._on_z_changed)
        self.crop_button.changed.connect(lambda *_: self.crop())
        self.save_button.changed.connect(lambda *_: self.save())
        self.runner.on_busy_changed(lambda _busy: self._refresh_buttons())
        watch_layers(viewer, self._on_layers_changed, self)
        on_closed(self.native, self._closed)
        self._on_image_changed()
        self._watch_shapes()
        self.fix_width()

    def _closed(self) -> None:
        self.runner.close()
        if self._watched is not None:
            with contextlib.suppress(AttributeError, RuntimeError, TypeError, ValueError):
                self._watched.events.data.disconnect(self._on_shapes_edited)
            self._watched = None

    # -- layers and levels ----------------------------------------------------------------
    def _on_layers_changed(self) -> None:
        self.image.reset_choices()
        self.shapes.reset_choices()

    def _layer(self) -> Any:
        layer = self.image.value
        if layer is None:
            raise ValueError("choose an image layer")
        return layer

    def _levels(self) -> list[Level]:
        """The chosen layer's levels with their physical placement, finest first."""
        return layers_to_image([self._layer()]).levels

    def _z_axis(self) -> int | None:
        """The layer axis the z range applies to: the last axis not shown in 2-D."""
        layer = self.image.value
        if layer is None or layer.ndim < 3:
            return None
        shown = self._displayed_axes(layer)
        hidden = [a for a in range(layer.ndim) if a not in shown]
        return hidden[-1] if hidden else None

    def _displayed_axes(self, layer: Any) -> list[int]:
        offset = self._viewer.dims.ndim - layer.ndim
        return [d - offset for d in self._viewer.dims.displayed if d - offset >= 0]

    def _on_image_changed(self, *_: Any) -> None:
        layer = self.image.value
        self.box = None
        z = self._z_axis()
        self.z_start.visible = self.z_stop.visible = z is not None
        if layer is not None and z is not None:
            n = int(self._levels()[0].shape[z])
            self.z_start.max, self.z_stop.max = n - 1, n
            self.z_start.value, self.z_stop.value = 0, n
        self._show_box()

    def _on_z_changed(self, *_: Any) -> None:
        z = self._z_axis()
        if self.box is None or z is None:
            return
        lo, hi = list(self.box[0]), list(self.box[1])
        lo[z], hi[z] = self.z_start.value, max(self.z_stop.value, self.z_start.value + 1)
        self.box = (tuple(lo), tuple(hi))
        self._show_box()

    # -- boxes ------------------------------------------------------------------------------
    def set_box(self, box_min: Any, box_max: Any) -> None:
        """Set the level-0 voxel box (all layer axes; ``box_max`` exclusive)."""
        shape = self._levels()[0].shape
        lo = [int(np.clip(v, 0, n)) for v, n in zip(box_min, shape)]
        hi = [int(np.clip(v, 0, n)) for v, n in zip(box_max, shape)]
        if any(h <= lo_ for lo_, h in zip(lo, hi)):
            raise ValueError(f"the box {tuple(lo)}-{tuple(hi)} is empty or outside the image")
        self.box = (tuple(lo), tuple(hi))
        z = self._z_axis()
        if z is not None:
            with self.z_start.changed.blocked(), self.z_stop.changed.blocked():
                self.z_start.value, self.z_stop.value = lo[z], hi[z]
        self._show_box()

    def _box_from_world(self, world_min: Any, world_max: Any) -> None:
        """Box over the displayed axes from two world corners; z from the z range."""
        layer = self._layer()
        level0 = self._levels()[0]
        shown = self._displayed_axes(layer)
        point = np.asarray(self._viewer.dims.point, dtype=float)
        corners = []
        for corner in (world_min, world_max):
            full = point.copy()
            full[list(self._viewer.dims.displayed)] = np.asarray(corner, float)[-len(shown) :]
            corners.append(np.asarray(layer.world_to_data(full), dtype=float))
        data_lo, data_hi = np.minimum(*corners), np.maximum(*corners)
        # data coordinates (voxel centres at integers) -> physical -> whole voxels
        scale, trans = np.asarray(level0.scale), np.asarray(level0.translation)
        lo_box, hi_box = index_box(
            level0,
            [trans[a] + data_lo[a] * scale[a] for a in shown],
            [trans[a] + data_hi[a] * scale[a] for a in shown],
            axes=shown,
        )
        lo, hi = [0] * layer.ndim, list(level0.shape)
        for a, start, stop in zip(shown, lo_box, hi_box):
            lo[a], hi[a] = start, stop
        z = self._z_axis()
        if z is not None:
            lo[z], hi[z] = self.z_start.value, max(self.z_stop.value, self.z_start.value + 1)
        self.set_box(lo, hi)

    def box_from_shapes(self, *, notify: bool = True) -> bool:
        """Box from the selected (else last) shape of the chosen Shapes layer.

        With ``notify`` False (the rectangle is being edited) a problem is only shown
        under the box.
        """
        shapes = self.shapes.value
        if shapes is None or len(shapes.data) == 0:
            if notify:
                show_warning("Draw a rectangle in a Shapes layer first (or use Find tissue).")
            return False
        selected = sorted(shapes.selected_data)
        vertices = np.asarray(shapes.data[selected[-1] if selected else -1], dtype=float)
        world = np.array([shapes.data_to_world(v) for v in vertices])
        try:
            self._box_from_world(world.min(axis=0), world.max(axis=0))
        except ValueError as exc:
            set_message(self.info, f"Rectangle: {exc}")
            if notify:
                show_error(f"Crop ROI: {exc}")
            return False
        return True

    def box_from_view(self) -> bool:
        """Box covering what the canvas shows (2-D view)."""
        if self._viewer.dims.ndisplay != 2:
            show_warning("Crop ROI: switch to the 2-D view to take the box from the view.")
            return False
        camera, size = _camera_and_canvas(self._viewer)
        center = np.asarray(camera.center, dtype=float)[-2:]
        half = np.asarray(size, dtype=float) / camera.zoom / 2
        try:
            self._box_from_world(center - half, center + half)
        except ValueError as exc:
            show_error(f"Crop ROI: {exc}")
            return False
        return True

    def _on_threshold_changed(self, *_: Any) -> None:
        try:
            parse_threshold(self.threshold.value)
        except ValueError as exc:
            set_message(self.info, str(exc))
        else:
            self._show_box()
        self._refresh_buttons()

    def run_find_tissue(self) -> bool:
        """Tissue bounds on the coarsest level (in a worker), drawn as a rectangle.

        The threshold is the one in the threshold box, Otsu's when it is empty; the
        view is fitted to the box found.  Returns True when the search started.
        """
        try:
            levels = self._levels()
            threshold = parse_threshold(self.threshold.value)
        except ValueError as exc:
            show_error(f"Find tissue: {exc}")
            return False
        coarse, level0 = levels[-1], levels[0]
        layer = self._layer()

        def bounds(progress: Any, cancel: Any) -> tuple[Any, float | None]:
            found, value = tissue_bounds_and_threshold(coarse.data, threshold)
            lo, hi = [b[0] for b in found], [b[1] for b in found]
            otsu = value if threshold is None else None  # shown in the empty threshold box
            return map_box_between_levels(lo, hi, coarse, level0), otsu

        return self.runner.start(
            bounds,
            desc="Finding tissue",
            target=f"layer '{layer.name}', level {len(levels) - 1} of {len(levels)}",
            on_done=self._tissue_found,
        )

    def _tissue_found(self, found: tuple[Any, float | None]) -> None:
        box, otsu = found
        if otsu is not None:
            self.threshold.native.setPlaceholderText(f"Otsu: {otsu:.4g}")
        self.set_box(*box)
        self.draw_box()
        self.fit_view()
        show_info("Tissue found: adjust the ROI rectangle, then click 'From rectangle'.")

    def fit_view(self) -> None:
        """Centre the 2-D view on the box and zoom so all of it shows."""
        if self.box is None or self._viewer.dims.ndisplay != 2:
            return
        layer = self._layer()
        shown = self._displayed_axes(layer)
        corners = []
        for corner in self.box:  # voxel edges -> world through the layer's transform
            data = np.zeros(layer.ndim)
            data[shown] = [corner[a] - 0.5 for a in shown]
            corners.append(np.asarray(layer.data_to_world(data), dtype=float)[-2:])
        lo, hi = np.minimum(*corners), np.maximum(*corners)
        camera, size = _camera_and_canvas(self._viewer)
        extent = np.maximum(hi - lo, 1e-9)
        center = list(camera.center)
        center[-2:] = list((lo + hi) / 2)
        camera.center = tuple(center)
        camera.zoom = float(min(np.asarray(size, dtype=float) / extent) * FIT_MARGIN)

    def draw_box(self) -> None:
        """Show the box as a rectangle in the 'ROI' Shapes layer (made if needed)."""
        if self.box is None:
            return
        layer = self._layer()
        level0 = self._levels()[0]
        shown = self._displayed_axes(layer)
        (pmin, pmax) = physical_box(
            level0, [self.box[0][a] for a in shown], [self.box[1][a] for a in shown], axes=shown
        )
        rect = np.array([[pmin[0], pmin[1]], [pmax[0], pmax[1]]])
        if ROI_LAYER in self._viewer.layers:
            roi = self._viewer.layers[ROI_LAYER]
            roi.data = [rect]
            roi.shape_type = ["rectangle"]
        else:
            roi = self._viewer.add_shapes(
                [rect], shape_type="rectangle", name=ROI_LAYER, edge_color="yellow",
                face_color="transparent", edge_width=max(level0.scale[a] for a in shown) * 2,
                axis_labels=[layer.axis_labels[a] for a in shown],
                units=[str(layer.units[a]) for a in shown],
            )  # fmt: skip
        self.shapes.reset_choices()
        self.shapes.value = roi

    def _watch_shapes(self, *_: Any) -> None:
        """Follow edits of the chosen Shapes layer: the box tracks the rectangle."""
        if self._watched is not None:
            self._watched.events.data.disconnect(self._on_shapes_edited)
        self._watched = self.shapes.value
        if self._watched is not None:
            self._watched.events.data.connect(self._on_shapes_edited)

    def _on_shapes_edited(self, event: Any = None) -> None:
        if not self.runner.alive or self.image.value is None:
            return
        if getattr(event, "action", None) in ("added", "changed"):
            self.box_from_shapes(notify=False)

    # -- showing ------------------------------------------------------------------------------
    def _targets(self) -> list[Any]:
        """The layers to crop: the chosen one, or all channels of its image."""
        layer = self._layer()
        source = zarrnii_info(layer).get("source")
        if self.all_channels.value and source:
            siblings = list(source_layers(self._viewer, source).values())
            same = [ly for ly in siblings if ly.data.shape == layer.data.shape
                    and np.allclose(ly.scale, layer.scale)]  # fmt: skip
            if layer in same:
                return same
        return [layer]

    def _show_box(self, *_: Any) -> None:
        """The box per axis in physical units and level-0 voxels, and its size."""
        layer = self.image.value
        if layer is None or self.box is None:
            fill_table(self.box_table, [], ("",), min_rows=2)
            set_message(
                self.info,
                "Open an image to crop."
                if layer is None
                else "No box yet: draw a rectangle, use the view, or find the tissue.",
            )
            self._refresh_buttons()
            return
        level0 = self._levels()[0]
        lo, hi = self.box
        pmin, pmax = physical_box(level0, lo, hi, axes=range(len(lo)))
        names = [str(n) for n in layer.axis_labels]
        units = {str(u) for u in layer.units}
        unit = units.pop() if len(units) == 1 else "physical"
        rows = [
            [unit, *(f"{a:.4g} - {b:.4g}" for a, b in zip(pmin, pmax))],
            ["voxels", *(f"{a} - {b}" for a, b in zip(lo, hi))],
        ]
        fill_table(self.box_table, rows, ("", *names))
        size = [b - a for a, b in zip(lo, hi)]
        n_layers = len(self._targets())
        nbytes = math.prod(size) * np.dtype(layer.dtype).itemsize * n_layers
        set_message(
            self.info,
            f"level-0 box {' x '.join(map(str, size))} x {n_layers} channel(s): "
            f"{format_bytes(nbytes)} to load",
        )
        self._refresh_buttons()

    def _refresh_buttons(self) -> None:
        has_box = self.image.value is not None and self.box is not None
        busy = self.runner.busy
        self.crop_button.enabled = has_box
        self.save_button.enabled = has_box and not busy
        try:
            parse_threshold(self.threshold.value)
            threshold_ok = True
        except ValueError:
            threshold_ok = False
        self.find_tissue.enabled = self.image.value is not None and threshold_ok and not busy

    # -- cropping ------------------------------------------------------------------------------
    def cropped_layer_data(self, suffix: str = " crop") -> list[tuple]:
        """Layer data tuples of the crop of every target layer (lazy dask slices)."""
        if self.box is None:
            raise ValueError("no box: draw a rectangle, use the view, or find the tissue")
        out = []
        for layer in self._targets():
            level0 = layers_to_image([layer]).levels[0]
            part = crop_level(level0, self.box[0], self.box[1], axes=range(layer.ndim))
            info = zarrnii_info(layer)
            info.update(
                source=None,
                crop_of=info.get("source") or layer.name,
                crop_box=[list(self.box[0]), list(self.box[1])],
            )
            kwargs = {
                "name": f"{layer.name}{suffix}",
                "scale": part.scale,
                "translate": part.translation,
                "colormap": layer.colormap.name,
                "contrast_limits": tuple(layer.contrast_limits),
                "blending": layer.blending,
                "axis_labels": tuple(layer.axis_labels),
                "units": tuple(str(u) for u in layer.units),
                "metadata": {"napari_zarrnii": info},
            }  # fmt: skip
            if not np.allclose(layer.affine.affine_matrix, np.eye(layer.ndim + 1)):
                kwargs["affine"] = layer.affine.affine_matrix
            out.append((part.data, kwargs, "image"))
        return out

    def crop(self) -> list[Any]:
        """Add the crop as new layer(s) over the source (nothing is read yet)."""
        try:
            layer_data = self.cropped_layer_data()
        except ValueError as exc:
            show_error(f"Crop ROI: {exc}")
            return []
        return [self._viewer.add_image(data, **kwargs) for data, kwargs, _ in layer_data]

    def save(self) -> bool:
        """Write the crop as OME-Zarr (with a pyramid) or NIfTI, by the path's suffix.

        Returns True when the write started.
        """
        path = str(self.save_path.value or "")
        if path in ("", "."):
            show_error("Save crop: choose a path ending in .ome.zarr, .nii or .nii.gz")
            return False
        path = normalize_source(path)
        try:
            resolve_destination(path)  # a name of no writable format is refused up front
            targets = self._targets()
            image = layers_to_image(self.cropped_layer_data(suffix=""))
        except ValueError as exc:
            show_error(f"Save crop: {exc}")
            return False
        assert self.box is not None
        image.name = image.name or Path(path).name.split(".")[0]
        size = "x".join(str(b - a) for a, b in zip(*self.box))
        what = f"{describe_layers(targets)}, box {size}"
        overwrite = ask_replace(
            self,
            "Saving crop",
            path,
            lambda: f"{path}\nalready exists.\n\nReplace it with the crop of {what}?",
        )
        if overwrite is None:
            return False

        def write(progress: Any, cancel: Any) -> Path | str:
            dest = resolve_destination(path, overwrite=overwrite)
            options: dict[str, Any] = {}
            if dest.format.zarr:  # a pyramid down to about CROP_PYRAMID_TARGET voxels
                options["max_layer"] = auto_max_layer(image, target=CROP_PYRAMID_TARGET)
            return save_image(image, dest, progress=progress, cancel=cancel, **options)

        return self.runner.start(
            write,
            desc="Saving crop",
            target=f"{what} -> {path}",
            on_done=lambda out: show_info(f"Saved the crop as {out}"),
        )
