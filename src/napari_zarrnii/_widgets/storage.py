"""Storage report: per level shape, chunks, shards, bytes on disk and compression.

For a layer opened from an OME-Zarr store the store's chunk files are measured (in a
worker).  Any other image or labels layer is described as it is held: shape, chunks,
dtype and size in memory, with nothing on disk until it is saved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox, Label, PushButton

from .._layers import layers_to_image
from ..core.io import open_image
from ..core.storage import StorageRow, storage_report
from ._common import (
    ElidedLabel,
    Panel,
    TaskRunner,
    fill_table,
    image_layers,
    layer_choices,
    on_closed,
    read_only_table,
    set_message,
    watch_layers,
    zarrnii_info,
)

if TYPE_CHECKING:
    import napari

__all__ = ["StorageReportWidget"]

#: one table row per quantity, one column per level: fits a narrow dock
ROWS = StorageRow.QUANTITIES
#: quantities that only a stored image has
_ON_DISK = ("on disk", "files", "ratio")


def _header(r: StorageRow) -> str:
    return "total" if r.level is None else f"level {r.level}"


def _layers(viewer: Any) -> list[Any]:
    return image_layers(viewer, kinds=("image", "labels"))


class StorageReportWidget(Panel):
    """How the store of a layer is laid out and how well it compresses."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.layer = ComboBox(label="layer", choices=layer_choices(viewer, _layers))
        self.source = ElidedLabel(value="")
        self.note = Label(value="")
        self.refresh = PushButton(text="Refresh")
        self.table = read_only_table(("",))
        self.runner = TaskRunner()
        super().__init__(
            widgets=[self.layer, self.source, self.note, self.refresh, self.table, self.runner]
        )
        self.span(self.source, self.note, self.refresh, self.table, self.runner)
        self.rows: list[StorageRow] = []
        self._again = False
        self.runner.on_busy_changed(self._on_busy_changed)
        self.layer.changed.connect(self.update_report)
        self.refresh.changed.connect(self.update_report)
        watch_layers(viewer, self.layer.reset_choices, self)
        on_closed(self.native, self.runner.close)
        self.update_report()
        self.fix_width()

    def update_report(self, *_: Any) -> None:
        """Measure the chosen layer's store in a worker (it walks the chunk files)."""
        layer = self.layer.value
        if layer is None:
            self.source.value = ""
            set_message(self.note, "Open or add an image to see how it is stored.")
            self._show([], stored=False)
            return
        info = zarrnii_info(layer)
        src = info.get("source")
        if not (src and info.get("ngff_version")):
            self.source.value = str(src) if src else f"'{layer.name}' (in memory)"
            origin = "from a file that is not OME-Zarr" if src else "in memory"
            set_message(
                self.note,
                f"{origin}: not stored as OME-Zarr; Create pyramid or File > Save Layers "
                "writes it",
            )
            try:
                rows = storage_report(layers_to_image([layer]))
            except ValueError as exc:
                set_message(self.note, f"cannot describe '{layer.name}': {exc}")
                rows = []
            self._show(rows, stored=False)
            return
        self.source.value = str(src)
        set_message(self.note, "bytes on disk: the chunk files of each level")

        def measure(progress: Any, cancel: Any) -> list[StorageRow]:
            return storage_report(open_image(src, format="ome-zarr", with_labels=False))

        if self.runner.busy:  # measure again once the running measurement ends
            self._again = True
            return
        self.runner.start(measure, desc="Measuring storage", on_done=self._show)

    def _on_busy_changed(self, busy: bool) -> None:
        if not busy and self._again:
            self._again = False
            self.update_report()

    def _show(self, rows: list[StorageRow], stored: bool = True) -> None:
        self.rows = rows
        columns = [list(r.cells()) for r in rows]
        table = [
            [name, *("-" if not stored and name in _ON_DISK else c[i] for c in columns)]
            for i, name in enumerate(ROWS)
        ]
        levels = [i + 1 for i, r in enumerate(rows) if r.level is not None]
        fill_table(
            self.table,
            table if rows else [],
            ("", *(_header(r) for r in rows)),
            stretch=levels,
            min_rows=len(ROWS),
        )
