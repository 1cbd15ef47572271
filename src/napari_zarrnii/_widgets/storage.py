"""Storage report: per level shape, chunks, shards, bytes on disk and compression."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox, Container, Label, PushButton

from ..core.omezarr import read_ome_zarr
from ..core.storage import StorageRow, storage_report
from ._common import (
    TaskRunner,
    fill_table,
    layer_choices,
    omezarr_layers,
    read_only_table,
    watch_layers,
    zarrnii_info,
)

if TYPE_CHECKING:
    import napari

__all__ = ["StorageReportWidget"]

#: one table row per quantity, one column per level: fits a narrow dock
ROWS = StorageRow.QUANTITIES


def _column(r: StorageRow) -> list[str]:
    return list(r.cells())


def _header(r: StorageRow) -> str:
    return "total" if r.level is None else f"level {r.level}"


class StorageReportWidget(Container):
    """How the store of an OME-Zarr layer is laid out and how well it compresses."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.layer = ComboBox(label="layer", choices=layer_choices(viewer, omezarr_layers))
        self.source = Label(value="")
        self.refresh = PushButton(text="Refresh")
        self.table = read_only_table(("",))
        self.table.min_height = 300
        self.runner = TaskRunner()
        super().__init__(widgets=[self.layer, self.source, self.refresh, self.table, self.runner])
        self.rows: list[StorageRow] = []
        self.layer.changed.connect(self.update_report)
        self.refresh.changed.connect(self.update_report)
        watch_layers(viewer, self.reset_choices, self)
        self.update_report()

    def update_report(self, *_: Any) -> None:
        """Measure the chosen layer's store in a worker (it walks the chunk files)."""
        layer = self.layer.value
        if layer is None:
            self.source.value = "Open an OME-Zarr image to see how it is stored."
            fill_table(self.table, [], ("",))
            return
        src = zarrnii_info(layer)["source"]
        self.source.value = f"store: {src}"

        def measure(progress: Any, cancel: Any) -> list[StorageRow]:
            return storage_report(read_ome_zarr(src, with_labels=False))

        self.runner.start(measure, desc="Measuring storage", on_done=self._show)

    def _show(self, rows: list[StorageRow]) -> None:
        self.rows = rows
        columns = [_column(r) for r in rows]
        table = [[name, *(c[i] for c in columns)] for i, name in enumerate(ROWS)]
        fill_table(self.table, table, ("", *(_header(r) for r in rows)))
