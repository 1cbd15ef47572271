"""Create pyramid: write layers, a NIfTI, TIFF or Imaris file or an OME-Zarr store as OME-Zarr.

The preview table is :func:`~..core.pyramid.plan_pyramid`'s plan, refreshed on every
change; Run hands the same plan to :func:`~..core.io.save_image` in a worker.
A run is bound to the layers (or file) and the destination it started with: changing
the controls while it runs changes the next run, not this one.  A destination that
exists is replaced only after a question naming it and what replaces it.  The output
is a folder, or an object-store URL typed in "or URL" (``s3://bucket/name.ome.zarr``,
credentials and endpoint from the environment: ``AWS_ACCESS_KEY_ID``,
``AWS_ENDPOINT_URL``, ...), which wins when given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.types import FileDialogMode
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    Label,
    LineEdit,
    PushButton,
    Select,
    SpinBox,
)
from napari.utils.notifications import show_error, show_info, show_warning

from .._layers import image_to_layer_data, layers_to_image
from ..core.io import FORMATS, open_image, save_image
from ..core.model import MultiscaleImage
from ..core.ngff import DEFAULT_NGFF_VERSION, NGFF_SPECS, WRITABLE_VERSIONS
from ..core.oblique import axis_aligned_approximation
from ..core.pyramid import SCALING_METHODS, PyramidPlan, plan_pyramid
from ..core.store import is_url, normalize_source
from ._common import (
    ElidedLabel,
    Panel,
    TaskRunner,
    ask_replace,
    ask_yes_no,
    describe_layers,
    fill_table,
    format_bytes,
    image_layers,
    layer_choices,
    layers_showing,
    on_closed,
    parse_ints,
    read_only_table,
    set_message,
    watch_layers,
    zarrnii_info,
)

if TYPE_CHECKING:
    import napari

__all__ = ["CreatePyramidWidget", "PyramidJob"]

#: File sources, by the format that reads them; a format whose optional package is
#: missing (TIFF without tifffile, Imaris without h5py) is not offered.
SOURCE_FORMATS = {
    f"{FORMATS[key].name} {'folder' if FORMATS[key].folder else 'file'}": key
    for key in ("nifti", "tiff", "ims", "ome-zarr")
    if key in FORMATS and FORMATS[key].available()
}
SOURCES = ("layers", *SOURCE_FORMATS)
FILE_FILTERS = {
    label: f"{FORMATS[key].name} ({' '.join('*' + s for s in FORMATS[key].suffixes)})"
    for label, key in SOURCE_FORMATS.items()
    if not FORMATS[key].folder
}
COMPRESSORS = ("blosc-zstd", "blosc-lz4", "zstd", "none")
COLUMNS = ("level", "shape", "voxel size", "chunks", "size")
DEFAULT_METHOD = "local_mean"
UNIT_SYMBOLS = {"micrometer": "µm", "millimeter": "mm", "nanometer": "nm", "meter": "m"}
DESC = "Writing pyramid"


def _confirm_overwrite(path: str, question: str) -> bool:
    return ask_yes_no("Replace existing store?", question)


def _fmt(values: Any) -> str:
    return "x".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in values)


def _shape(image: MultiscaleImage) -> str:
    return f"{'x'.join(map(str, image.shape))} {image.dtype}"


def _existing(path: str) -> str:
    """What a destination holds now, in a few words (metadata only)."""
    from ..core.omezarr import read_ome_zarr

    try:
        image = read_ome_zarr(path, with_labels=False)
    except (OSError, ValueError):
        if is_url(path):
            return "objects that are not an OME-Zarr image"
        return "a folder" if Path(path).is_dir() else "a file"
    return f"an OME-Zarr image ({_shape(image)}, {image.num_levels} levels)"


@dataclass(frozen=True)
class PyramidJob:
    """What one run writes: from which layers (or file) to which store."""

    source: str
    layers: tuple[Any, ...]
    path: str

    @property
    def text(self) -> str:
        return f"from {self.source}\nto {self.path}"


class CreatePyramidWidget(Panel):
    """Build a multiscale OME-Zarr with a live preview of the levels it will write.

    ``confirm_overwrite(path, question) -> bool`` asks before replacing an existing
    store; tests replace it.
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
        self.file = FileEdit(label="file", mode=FileDialogMode.EXISTING_FILE)
        self.output = FileEdit(
            label="output", mode=FileDialogMode.OPTIONAL_FILE, filter="OME-Zarr (*.ome.zarr)"
        )
        self.output_url = LineEdit(label="or URL", value="")
        self.output_url.tooltip = (
            "An object-store URL, e.g. s3://bucket/name.ome.zarr (used instead of the "
            "output folder when given); credentials and endpoint from the environment "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, ...)"
        )
        self.n_levels = SpinBox(label="levels", value=4, min=1, max=16)
        self.factors = LineEdit(label="downsample factors", value="auto")
        self.method = ComboBox(label="method", choices=SCALING_METHODS, value=DEFAULT_METHOD)
        self.chunks = LineEdit(label="chunks", value="auto")
        self.compressor = ComboBox(label="compressor", choices=COMPRESSORS, value="blosc-zstd")
        self.clevel = SpinBox(label="compression level", value=3, min=1, max=9)
        self.ngff_version = ComboBox(
            label="OME-NGFF", choices=WRITABLE_VERSIONS, value=DEFAULT_NGFF_VERSION
        )
        self.shards = LineEdit(label="shards (zarr v3)", value="")
        self.target = ElidedLabel(label="writes")
        self.summary = Label(value="")
        self.preview = read_only_table(COLUMNS)
        self.open_result = CheckBox(label="open result", value=True)
        self.run_button = PushButton(text="Create pyramid")
        self.runner = TaskRunner()
        super().__init__(
            widgets=[
                self.source_kind, self.layers, self.file, self.output, self.output_url,
                self.n_levels, self.factors, self.method, self.chunks, self.compressor,
                self.clevel, self.ngff_version, self.shards, self.target, self.summary,
                self.preview,
                self.open_result, self.run_button, self.runner,
            ]
        )  # fmt: skip
        self.span(self.summary, self.preview, self.open_result, self.run_button, self.runner)
        self.layers.native.setMaximumHeight(90)
        self.plan: PyramidPlan | None = None
        #: the last run (what it wrote where), None before the first
        self.job: PyramidJob | None = None
        self._auto_select = True  # until something is chosen, follow the first image
        self._method_choice = DEFAULT_METHOD  # the user's method for images
        self.method.changed.connect(self._on_method_changed)
        self.layers.changed.connect(self._on_selection_changed)
        for widget in (
            self.source_kind, self.layers, self.file, self.output, self.output_url,
            self.n_levels, self.factors, self.method, self.chunks, self.compressor,
            self.clevel, self.ngff_version, self.shards,
        ):  # fmt: skip
            widget.changed.connect(self.update_preview)
        self.run_button.changed.connect(lambda *_: self.run())
        self.runner.on_busy_changed(lambda _busy: self._refresh_run_button())
        watch_layers(viewer, self._on_layers_changed, self)
        on_closed(self.native, self.runner.close)
        self._select_default_layers()
        self.update_preview()
        self.fix_width()

    # -- source -------------------------------------------------------------------------
    def _on_layers_changed(self) -> None:
        self.layers.reset_choices()
        if not self.layers.value and self._auto_select:
            self._select_default_layers()
        self.update_preview()

    def _on_selection_changed(self, *_: Any) -> None:
        if self.layers.value:
            self._auto_select = False  # from now on only the user changes it

    def _select_default_layers(self) -> None:
        """All layers of the first image's source (its channels and labels), or the first."""
        candidates = image_layers(self._viewer, kinds=("image", "labels"))
        if not candidates:
            return
        source = zarrnii_info(candidates[0]).get("source")
        same = [ly for ly in candidates if source and zarrnii_info(ly).get("source") == source]
        self.layers.value = same or candidates[:1]

    def _on_method_changed(self, *_: Any) -> None:
        if self.method.enabled:
            self._method_choice = self.method.value

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
            self._cache[key] = open_image(path, format=SOURCE_FORMATS[kind])
        return self._cache[key]

    def _source_text(self) -> str:
        if self.source_kind.value == "layers":
            return describe_layers(self.layers.value)
        return f"{self.source_kind.value} {Path(str(self.file.value)).name}"

    def _output_path(self) -> str | None:
        url = str(self.output_url.value or "").strip()
        if url:
            return normalize_source(url)
        path = str(self.output.value or "")
        return None if path in ("", ".") else normalize_source(path)

    def _compressor(self) -> str | None:
        name = self.compressor.value
        return None if name == "none" else f"{name}:{self.clevel.value}"

    def make_plan(self) -> tuple[MultiscaleImage, PyramidPlan]:
        """The image as it will be written and the plan the current settings describe.

        A version that cannot store a world affine gets the axis-aligned image that
        keeps the volume in place (planned as written, so preview and result agree).
        """
        image = axis_aligned_approximation(self.source_image(), self.ngff_version.value)
        shards = parse_ints(self.shards.value, "shards") if self.shards.enabled else None
        plan = plan_pyramid(
            image,
            max_layer=self.n_levels.value - 1,
            downsample_factors=parse_ints(self.factors.value, "downsample factors"),
            chunks=parse_ints(self.chunks.value, "chunks"),
            shards=shards,
            scaling_method="mode" if image.is_label else self._method_choice,
            ngff_version=self.ngff_version.value,
            compressor=self._compressor(),
        )
        return image, plan

    # -- preview ------------------------------------------------------------------------
    def _show_method(self, is_label: bool) -> None:
        """Labels always use 'mode'; images get back the method the user chose."""
        with self.method.changed.blocked():
            self.method.value = "mode" if is_label else self._method_choice
        self.method.enabled = not is_label

    def update_preview(self, *_: Any) -> None:
        """Refresh the plan table (no data is read)."""
        kind = self.source_kind.value
        self.layers.visible = kind == "layers"
        self.file.visible = kind != "layers"
        self.file.mode = (
            FileDialogMode.EXISTING_DIRECTORY
            if kind in SOURCE_FORMATS and FORMATS[SOURCE_FORMATS[kind]].folder
            else FileDialogMode.EXISTING_FILE
        )
        self.file.filter = FILE_FILTERS.get(kind)
        self.shards.enabled = NGFF_SPECS[self.ngff_version.value].zarr_format == 3
        self.clevel.enabled = self.compressor.value != "none"
        self.plan = None
        path = self._output_path()
        self.target.value = f"from {self._source_text()}\nto {path or '(choose an output)'}"
        try:
            image, plan = self.make_plan()
        except (OSError, ValueError) as exc:
            set_message(self.summary, f"cannot plan: {exc}")
            fill_table(self.preview, [], COLUMNS, stretch=(1, 2))
            self._refresh_run_button()
            return
        self._show_method(image.is_label)
        self.plan = plan
        units = [a.unit for a in image.axes if a.type == "space"]
        unit = units[0] if units and units[0] and len(set(units)) == 1 else ""
        unit = UNIT_SYMBOLS.get(unit, unit)
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
        fill_table(self.preview, rows, COLUMNS, stretch=(1, 2))
        names = "".join(a.name for a in image.axes)
        set_message(
            self.summary,
            f"{plan.num_levels} levels ({names}, {plan.dtype}), {plan.method}, "
            f"{plan.compressor_description}\n"
            f"{format_bytes(plan.total_bytes)} uncompressed in {plan.total_chunks} chunks",
        )
        self._refresh_run_button()

    def _refresh_run_button(self) -> None:
        ready = self.plan is not None and self._output_path() is not None
        self.run_button.enabled = ready and not self.runner.busy

    # -- run ----------------------------------------------------------------------------
    def _replace_question(
        self, job: PyramidJob, image: MultiscaleImage, plan: PyramidPlan, shown: list[Any]
    ) -> str:
        lines = [f"{job.path}", f"already holds {_existing(job.path)}."]
        if shown:
            lines.append(f"It is shown as {describe_layers(shown)}.")
        lines += [
            "",
            f"Replace it with a {plan.num_levels}-level pyramid of {job.source} "
            f"({_shape(image)})?",
        ]
        if shown:
            lines.append("The layers showing it will show the new store.")
        return "\n".join(lines)

    def run(self) -> bool:
        """Write the pyramid in a worker (progress, Cancel, replace only when confirmed).

        Returns True when a write started.
        """
        if self.runner.busy:
            show_warning(f"{DESC}: the previous write is still running")
            return False
        path = self._output_path()
        if path is None:
            show_error("Create pyramid: choose an output path (.ome.zarr) or type a URL")
            return False
        try:
            image, plan = self.make_plan()
        except (OSError, ValueError) as exc:
            show_error(f"Create pyramid: {exc}")
            return False
        from_layers = self.source_kind.value == "layers"
        job = PyramidJob(
            source=self._source_text(),
            layers=tuple(self.layers.value) if from_layers else (),
            path=path,
        )
        overwrite = ask_replace(
            self,
            DESC,
            path,
            lambda: self._replace_question(job, image, plan, layers_showing(self._viewer, path)),
        )
        if overwrite is None:
            return False

        def write(progress: Any, cancel: Any) -> Path | str:
            return save_image(
                image,
                path,
                format="ome-zarr",
                plan=plan,
                overwrite=overwrite,
                progress=progress,
                cancel=cancel,
            )

        self.job = job
        return self.runner.start(
            write, desc=DESC, target=job.text, on_done=lambda out: self._done(out, job)
        )

    def _done(self, path: Path | str, job: PyramidJob) -> None:
        """Show the new store: in place of the source layers and of stale views of it."""
        show_info(f"Wrote {path}")
        layers = self._viewer.layers
        replaced = layers_showing(self._viewer, path)  # they read the store just replaced
        if self.open_result.value:
            replaced += [ly for ly in job.layers if ly in layers and ly not in replaced]
        if not replaced and not self.open_result.value:
            return
        layer_data = image_to_layer_data(open_image(path, format="ome-zarr"))
        chosen = [ly for ly in self.layers.value if ly not in replaced]
        reselect = any(ly in replaced for ly in self.layers.value)
        for layer in replaced:
            if layer in layers:
                layers.remove(layer)
        added = [getattr(self._viewer, f"add_{kind}")(d, **kw) for d, kw, kind in layer_data]
        if reselect:
            self.layers.reset_choices()
            self.layers.value = chosen + [ly for ly in added if ly in layers]
