"""Create pyramid: write layers, a NIfTI or TIFF file or an OME-Zarr store as OME-Zarr.

The preview table is :func:`~..core.pyramid.plan_pyramid`'s plan, refreshed on every
change; Run hands the same plan to :func:`~..core.pyramid.write_pyramid` in a worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    LineEdit,
    PushButton,
    Select,
    SpinBox,
)
from qtpy.QtWidgets import QMessageBox

from .._errors import DestinationExistsError
from .._layers import image_to_layer_data, layers_to_image
from ..core.model import MultiscaleImage
from ..core.pyramid import SCALING_METHODS, PyramidPlan, plan_pyramid, write_pyramid
from ..core.tiff import has_tifffile
from ._common import (
    TaskRunner,
    fill_table,
    format_bytes,
    image_layers,
    layer_choices,
    parse_ints,
    read_only_table,
    watch_layers,
    zarrnii_info,
)

if TYPE_CHECKING:
    import napari

__all__ = ["CreatePyramidWidget"]

# TIFF needs the optional tifffile: offered only when it is installed.
SOURCES = ("layers", "NIfTI file", *(("TIFF file",) if has_tifffile() else ()), "OME-Zarr folder")
FILE_FILTERS = {
    "NIfTI file": "NIfTI (*.nii *.nii.gz)",
    "TIFF file": "TIFF (*.tif *.tiff *.ome.tif *.ome.tiff)",
}
COMPRESSORS = ("blosc-zstd", "blosc-lz4", "zstd", "none")
COLUMNS = ("level", "shape", "voxel size", "chunks", "size")


def _confirm_overwrite(path: str) -> bool:
    answer = QMessageBox.question(
        None, "Replace existing store?", f"{path} already exists.\nReplace it?"
    )
    return answer == QMessageBox.StandardButton.Yes


def _fmt(values: Any) -> str:
    return " x ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in values)


class CreatePyramidWidget(Container):
    """Build a multiscale OME-Zarr with a live preview of the levels it will write.

    ``confirm_overwrite(path) -> bool`` asks before replacing an existing store; tests
    replace it.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.confirm_overwrite = _confirm_overwrite
        self._cache: dict[tuple[str, str], MultiscaleImage] = {}
        self.source_kind = ComboBox(label="source", choices=SOURCES, value="layers")
        self.layers = Select(
            label="layers",
            choices=layer_choices(viewer, lambda v: image_layers(v, kinds=("image", "labels"))),
        )
        self.file = FileEdit(label="file", mode="r", filter=FILE_FILTERS["NIfTI file"])
        self.output = FileEdit(label="output", mode="w", filter="OME-Zarr (*.ome.zarr)")
        self.n_levels = SpinBox(label="levels", value=4, min=1, max=16)
        self.factors = LineEdit(label="downsample factors", value="auto")
        self.method = ComboBox(label="method", choices=SCALING_METHODS, value="local_mean")
        self.chunks = LineEdit(label="chunks", value="auto")
        self.compressor = ComboBox(label="compressor", choices=COMPRESSORS, value="blosc-zstd")
        self.clevel = SpinBox(label="compression level", value=3, min=1, max=9)
        self.ngff_version = ComboBox(label="OME-NGFF", choices=("0.5", "0.4"), value="0.5")
        self.shards = LineEdit(label="shards (0.5 only)", value="")
        self.summary = Label(value="")
        self.preview = read_only_table(COLUMNS)
        self.open_result = CheckBox(label="open result", value=True)
        self.run_button = PushButton(text="Create pyramid")
        self.runner = TaskRunner()
        super().__init__(
            widgets=[
                self.source_kind, self.layers, self.file, self.output, self.n_levels,
                self.factors, self.method, self.chunks, self.compressor, self.clevel,
                self.ngff_version, self.shards, self.summary, self.preview,
                self.open_result, self.run_button, self.runner,
            ]
        )  # fmt: skip
        self.preview.min_height = 140
        self.plan: PyramidPlan | None = None
        for widget in (
            self.source_kind, self.layers, self.file, self.n_levels, self.factors,
            self.method, self.chunks, self.compressor, self.clevel, self.ngff_version,
            self.shards,
        ):  # fmt: skip
            widget.changed.connect(self.update_preview)
        self.run_button.changed.connect(lambda *_: self.run())
        watch_layers(viewer, self._on_layers_changed, self)
        self._select_default_layers()
        self.update_preview()

    # -- source -------------------------------------------------------------------------
    def _on_layers_changed(self) -> None:
        self.layers.reset_choices()
        if not self.layers.value:
            self._select_default_layers()
        self.update_preview()

    def _select_default_layers(self) -> None:
        """All layers of the first image's source (its channels and labels), or the first."""
        candidates = image_layers(self._viewer, kinds=("image", "labels"))
        if not candidates:
            return
        source = zarrnii_info(candidates[0]).get("source")
        same = [ly for ly in candidates if source and zarrnii_info(ly).get("source") == source]
        self.layers.value = same or candidates[:1]

    def source_image(self) -> MultiscaleImage:
        """The image to write, from the chosen layers or file (metadata only)."""
        kind = self.source_kind.value
        if kind == "layers":
            if not self.layers.value:
                raise ValueError("choose one or more image/labels layers")
            return layers_to_image(list(self.layers.value))
        path = str(self.file.value or "")
        if path in ("", "."):
            raise ValueError(f"choose a {kind}")
        key = (kind, path)
        if key not in self._cache:
            if kind == "NIfTI file":
                from ..core.nifti import read_nifti

                self._cache[key] = read_nifti(path)
            elif kind == "TIFF file":
                from ..core.tiff import read_tiff

                self._cache[key] = read_tiff(path)
            else:
                from ..core.omezarr import read_ome_zarr

                self._cache[key] = read_ome_zarr(path)
        return self._cache[key]

    def _compressor(self) -> str | None:
        name = self.compressor.value
        return None if name == "none" else f"{name}:{self.clevel.value}"

    def make_plan(self) -> tuple[MultiscaleImage, PyramidPlan]:
        """The source image and the plan the current settings describe."""
        image = self.source_image()
        shards = parse_ints(self.shards.value, "shards") if self.shards.enabled else None
        plan = plan_pyramid(
            image,
            max_layer=self.n_levels.value - 1,
            downsample_factors=parse_ints(self.factors.value, "downsample factors"),
            chunks=parse_ints(self.chunks.value, "chunks"),
            shards=shards,
            scaling_method="mode" if image.is_label else self.method.value,
            ngff_version=self.ngff_version.value,
            compressor=self._compressor(),
        )
        return image, plan

    # -- preview ------------------------------------------------------------------------
    def update_preview(self, *_: Any) -> None:
        """Refresh the plan table (no data is read)."""
        kind = self.source_kind.value
        self.layers.visible = kind == "layers"
        self.file.visible = kind != "layers"
        self.file.mode = "d" if kind == "OME-Zarr folder" else "r"
        self.file.filter = FILE_FILTERS.get(kind)
        self.shards.enabled = self.ngff_version.value == "0.5"
        self.clevel.enabled = self.compressor.value != "none"
        self.plan = None
        try:
            image, plan = self.make_plan()
        except (OSError, ValueError) as exc:
            self.summary.value = f"cannot plan: {exc}"
            fill_table(self.preview, [], COLUMNS)
            self.run_button.enabled = False
            return
        if image.is_label:
            self.method.value = "mode"
        self.method.enabled = not image.is_label
        self.plan = plan
        units = [a.unit for a in image.axes if a.type == "space"]
        unit = units[0] if units and units[0] and len(set(units)) == 1 else ""
        rows = [
            (
                row["level"],
                "x".join(map(str, row["shape"])),
                f"{_fmt(row['voxel_size'])} {unit}".strip(),
                row["n_chunks"],
                format_bytes(row["bytes"]),
            )
            for row in plan.table()
        ]
        fill_table(self.preview, rows, COLUMNS)
        names = "".join(a.name for a in image.axes)
        self.summary.value = (
            f"{plan.num_levels} levels ({names}, {plan.dtype}), {plan.method}, "
            f"{plan.compressor_description}\n"
            f"{format_bytes(plan.total_bytes)} uncompressed in {plan.total_chunks} chunks"
        )
        self.run_button.enabled = True

    # -- run ----------------------------------------------------------------------------
    def run(self, *, overwrite: bool = False) -> None:
        """Write the pyramid in a worker (progress, Cancel, overwrite confirmation)."""
        from napari.utils.notifications import show_error

        path = str(self.output.value or "")
        if path in ("", "."):
            show_error("Create pyramid: choose an output path (.ome.zarr)")
            return
        try:
            image, plan = self.make_plan()
        except (OSError, ValueError) as exc:
            show_error(f"Create pyramid: {exc}")
            return
        source_layers = list(self.layers.value) if self.source_kind.value == "layers" else []

        def write(progress: Any, cancel: Any) -> Path:
            return write_pyramid(
                image, path, plan, overwrite=overwrite, progress=progress, cancel=cancel
            )

        def on_error(exc: BaseException) -> bool:
            if isinstance(exc, DestinationExistsError) and self.confirm_overwrite(path):
                self.run(overwrite=True)
                return True
            return False

        self.runner.start(
            write,
            desc="Writing pyramid",
            on_done=lambda out: self._done(out, source_layers),
            on_error=on_error,
        )

    def _done(self, path: Path, source_layers: list[Any]) -> None:
        from napari.utils.notifications import show_info

        show_info(f"Wrote {path}")
        if not self.open_result.value:
            return
        from ..core.omezarr import read_ome_zarr

        layer_data = image_to_layer_data(read_ome_zarr(path))
        for layer in source_layers:
            if layer in self._viewer.layers:
                self._viewer.layers.remove(layer)
        for data, kwargs, kind in layer_data:
            getattr(self._viewer, f"add_{kind}")(data, **kwargs)
