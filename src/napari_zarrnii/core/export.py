"""Exports to other formats: BigDataViewer HDF5 + XML.

BigDataViewer layout (as written by BigStitcher / Fiji's "Export to HDF5")::

    /s00/resolutions          float64 (levels, 3)  downsampling factors x, y, z
    /s00/subdivisions         int32   (levels, 3)  chunk (block) shape x, y, z
    /t00000/s00/0/cells       int16   (z, y, x)    level 0, chunked by subdivisions
    /t00000/s00/1/cells       ...

BDV's HDF5 loader reads 16-bit voxels: ``cells`` are int16 datasets holding the bits
of unsigned 16-bit values.  uint16 data is stored bit for bit; other integer types are
clipped to 0-65535; float data is clipped to 0-65535 and rounded (a logged warning
says so).  Each channel of the image becomes a view setup (``s00``, ``s01``, ...);
each time point a ``t00000``, ``t00001``, ... group.  The XML (SpimData 0.2) gives each
setup its size and voxel size and each view a registration affine mapping voxel
``(x, y, z)`` to the image's physical space (scale and translation of level 0).

h5py is an optional dependency: ``pip install napari-zarrnii[bdv]``.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from .._errors import DestinationExistsError, MissingDependencyError, ZarrNiiError
from .lazy import as_dask, select_index, storage_chunks
from .model import MultiscaleImage
from .progress import Cancel, Progress, cancel_checker, report
from .store import atomic_files, local_path

__all__ = ["MissingDependencyError", "write_bdv"]

log = logging.getLogger(__name__)


def _import_h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:
        raise MissingDependencyError(
            "BigDataViewer export needs h5py: pip install 'napari-zarrnii[bdv]' "
            "(or pip install h5py)"
        ) from exc
    return h5py


def _to_bdv_uint16(block: np.ndarray) -> np.ndarray:
    if block.dtype == np.uint16:
        return block.view(np.int16)
    if block.dtype.kind == "f":
        block = np.rint(np.nan_to_num(block))
    return np.clip(block, 0, 65535).astype(np.uint16).view(np.int16)


def _xyz(values: Any) -> list[float]:
    return [float(v) for v in reversed(list(values))]


def _fmt(values: Any) -> str:
    return " ".join(f"{float(v):.12g}" for v in values)


def _setup_xml(
    parent: ET.Element,
    setup: int,
    name: str,
    size_xyz: list[int],
    voxel_xyz: list[float],
    unit: str,
) -> None:
    vs = ET.SubElement(parent, "ViewSetup")
    ET.SubElement(vs, "id").text = str(setup)
    ET.SubElement(vs, "name").text = name
    ET.SubElement(vs, "size").text = " ".join(str(int(n)) for n in size_xyz)
    voxel = ET.SubElement(vs, "voxelSize")
    ET.SubElement(voxel, "unit").text = unit
    ET.SubElement(voxel, "size").text = _fmt(voxel_xyz)
    attrs = ET.SubElement(vs, "attributes")
    for key, value in (("illumination", 0), ("channel", setup), ("tile", 0), ("angle", 0)):
        ET.SubElement(attrs, key).text = str(value)


def _build_xml(
    h5_rel: str,
    n_setups: int,
    n_times: int,
    names: list[str],
    size_xyz: list[int],
    voxel_xyz: list[float],
    origin_xyz: list[float],
    unit: str,
) -> ET.ElementTree:
    root = ET.Element("SpimData", version="0.2")
    ET.SubElement(root, "BasePath", type="relative").text = "."
    seq = ET.SubElement(root, "SequenceDescription")
    loader = ET.SubElement(seq, "ImageLoader", format="bdv.hdf5")
    ET.SubElement(loader, "hdf5", type="relative").text = h5_rel
    setups = ET.SubElement(seq, "ViewSetups")
    for s in range(n_setups):
        _setup_xml(setups, s, names[s], size_xyz, voxel_xyz, unit)
    for key, ids in (
        ("illumination", [0]),
        ("channel", range(n_setups)),
        ("tile", [0]),
        ("angle", [0]),
    ):
        block = ET.SubElement(setups, "Attributes", name=key)
        for i in ids:
            item = ET.SubElement(block, key.capitalize())
            ET.SubElement(item, "id").text = str(i)
            ET.SubElement(item, "name").text = names[i] if key == "channel" else str(i)
    tps = ET.SubElement(seq, "Timepoints", type="range")
    ET.SubElement(tps, "first").text = "0"
    ET.SubElement(tps, "last").text = str(n_times - 1)
    regs = ET.SubElement(root, "ViewRegistrations")
    affine = np.zeros((3, 4))
    affine[:, :3] = np.diag(voxel_xyz)
    affine[:, 3] = origin_xyz
    text = " ".join(f"{v:.12g}" for v in affine.ravel())
    for t in range(n_times):
        for s in range(n_setups):
            reg = ET.SubElement(regs, "ViewRegistration", timepoint=str(t), setup=str(s))
            vt = ET.SubElement(reg, "ViewTransform", type="affine")
            ET.SubElement(vt, "Name").text = "calibration"
            ET.SubElement(vt, "affine").text = text
    ET.indent(root)
    return ET.ElementTree(root)


def write_bdv(
    image: MultiscaleImage,
    xml_path: Any,
    h5_path: Any,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> tuple[Path, Path]:
    """Write every level of ``image`` as a BigDataViewer HDF5 file plus its XML.

    Parameters
    ----------
    image
        A 3-D image with optional channel and time axes (``[t,] [c,] z, y, x`` in
        any order); 2-D images get a singleton z.  Level 0 is BDV's full resolution;
        ``resolutions`` are each level's scale divided by level 0's.
    xml_path, h5_path
        Destinations; the XML refers to the HDF5 file by a path relative to the XML's
        folder when possible.
    overwrite
        Replace existing files.
    progress, cancel
        ``progress(done, total, message)`` per written level; an event or callable that
        stops the export (:class:`~napari_zarrnii.CancelledError`, nothing left behind).

    Returns
    -------
    (xml_path, h5_path)

    Raises
    ------
    MissingDependencyError
        h5py is not installed.
    DestinationExistsError
        A destination exists and ``overwrite`` is False.
    """
    h5py = _import_h5py()
    xml_dest, h5_dest = local_path(xml_path), local_path(h5_path)
    if xml_dest == h5_dest:
        raise ZarrNiiError(f"{xml_dest}: the XML and the HDF5 file need different names")
    for dest in (xml_dest, h5_dest):
        if dest.exists() and not overwrite:
            raise DestinationExistsError(dest)
    spatial = image.spatial_axes
    if not 2 <= len(spatial) <= 3:
        raise ZarrNiiError(f"BigDataViewer export needs 2 or 3 spatial axes, not {spatial}")
    if image.dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        log.warning(
            "BigDataViewer stores 16-bit voxels; %s data is clipped to 0-65535", image.dtype
        )
    c_axis, t_axis = image.channel_axis, image.time_axis
    n_setups = image.num_channels
    n_times = 1 if t_axis is None else image.shape[t_axis]
    base = image.levels[0]

    def zyx(values: Any) -> list[float]:
        out = [float(values[a]) for a in spatial]
        return [1.0] * (3 - len(out)) + out

    base_scale = zyx(base.scale)
    infos = image.channel_infos()
    names = [info.label or f"channel {i}" for i, info in enumerate(infos)]
    unit = next((image.axes[a].unit for a in spatial if image.axes[a].unit), None) or "pixel"
    check_cancel = cancel_checker(cancel, "BigDataViewer export")
    total = n_times * n_setups * len(image.levels)
    try:
        h5_ref = os.path.relpath(h5_dest, xml_dest.parent)
    except ValueError:  # other drive on Windows
        h5_ref = str(h5_dest)
    size_zyx = [1] * (3 - len(spatial)) + [base.shape[a] for a in spatial]
    tree = _build_xml(
        h5_ref,
        n_setups,
        n_times,
        names,
        [int(n) for n in reversed(size_zyx)],
        _xyz(base_scale),
        _xyz(zyx(base.translation)),
        unit,
    )
    # the XML is renamed into place last: whoever finds it finds its HDF5 file complete
    with atomic_files([h5_dest, xml_dest], overwrite=overwrite) as (tmp_h5, tmp_xml):
        with h5py.File(tmp_h5, "w") as f:
            for s in range(n_setups):
                res, sub = [], []
                for lvl in image.levels:
                    res.append(_xyz(np.divide(zyx(lvl.scale), base_scale)))
                    chunks = storage_chunks(lvl.data) or lvl.shape
                    block = [min(int(chunks[a]), 64, lvl.shape[a]) for a in spatial]
                    block = [1] * (3 - len(block)) + block
                    sub.append([int(b) for b in reversed(block)])
                group = f.require_group(f"s{s:02d}")
                group.create_dataset("resolutions", data=np.asarray(res, dtype=np.float64))
                group.create_dataset("subdivisions", data=np.asarray(sub, dtype=np.int32))
            done = 0
            for t in range(n_times):
                for s in range(n_setups):
                    for li, lvl in enumerate(image.levels):
                        check_cancel()
                        _write_cells(f, image, lvl.data, t, s, li, t_axis, c_axis, spatial)
                        done += 1
                        report(progress, done, total, f"time {t}, setup {s}, level {li}")
        tree.write(tmp_xml, encoding="UTF-8", xml_declaration=True)
    log.info("wrote BigDataViewer %s + %s", xml_dest, h5_dest)
    return xml_dest, h5_dest


def _write_cells(
    f: Any,
    image: MultiscaleImage,
    data: Any,
    t: int,
    s: int,
    level_index: int,
    t_axis: int | None,
    c_axis: int | None,
    spatial: tuple[int, ...],
) -> None:
    # drop the time then the channel axis (higher axis first keeps indices valid)
    view: Any = data
    picks = sorted(((a, i) for a, i in ((t_axis, t), (c_axis, s)) if a is not None), reverse=True)
    for axis, index in picks:
        view = select_index(view, axis, index)
    x = as_dask(view)
    if x.ndim != len(spatial):
        raise ZarrNiiError(f"unexpected axes {image.axis_names} for BigDataViewer export")
    if x.ndim == 2:
        x = x[None]
    sub = f[f"s{s:02d}/subdivisions"][level_index]
    chunks = tuple(int(c) for c in reversed(sub))
    dset = f.create_dataset(
        f"t{t:05d}/s{s:02d}/{level_index}/cells",
        shape=x.shape,
        dtype=np.int16,
        chunks=tuple(min(c, n) for c, n in zip(chunks, x.shape)),
    )
    converted = da.map_blocks(_to_bdv_uint16, x, dtype=np.int16)
    # h5py is not thread safe: dask writes one block at a time under this lock, on this
    # process's threads (never a dask.distributed client's workers: h5py cannot write
    # one file from many processes)
    da.store(converted, dset, lock=True, scheduler="threads")
