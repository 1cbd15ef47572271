"""The I/O seam: one table of formats decides what every path is, and every write is atomic."""

from __future__ import annotations

import threading
from pathlib import Path

import dask.array as da
import nibabel as nib
import npe2
import numpy as np
import pytest

import napari_zarrnii
from napari_zarrnii import (
    CancelledError,
    DestinationExistsError,
    NotAnImageError,
    UnsupportedFormatError,
    ZarrNii,
)
from napari_zarrnii._reader import get_reader
from napari_zarrnii.core.io import (
    FORMATS,
    NIFTI_SUFFIXES,
    format_of,
    open_image,
    resolve_destination,
    save_image,
)
from napari_zarrnii.core.store import atomic_files

from .conftest import ramp

MANIFEST = Path(napari_zarrnii.__file__).parent / "napari.yaml"


def _nifti(path: Path, shape=(6, 5, 4)) -> Path:
    nib.save(nib.Nifti1Image(ramp(shape, "int16"), np.diag([2.0, 2.0, 2.0, 1.0])), path)
    return path


def test_manifest_patterns_come_from_the_format_table():
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    (reader,) = manifest.contributions.readers
    patterns = set(reader.filename_patterns)
    for fmt in FORMATS.values():
        if fmt.napari and fmt.reader:
            for suffix in fmt.suffixes[:2]:
                assert f"*{suffix}" in patterns, (fmt.key, suffix)
    for writer in manifest.contributions.writers:
        for ext in writer.filename_extensions:
            assert format_of(f"out{ext}", writing=True).writer, ext


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("a.ome.zarr", "ome-zarr"),
        ("a.zarr", "ome-zarr"),
        ("b.nii", "nifti"),
        ("B.NII.GZ", "nifti"),
        ("c.hdr", "nifti"),
        ("d.ome.tif", "tiff"),
        ("e.tiff", "tiff"),
        ("plain_folder_name", "ome-zarr"),
    ],
)
def test_format_of_names_for_writing(name, key):
    assert format_of(name, writing=True).key == key


def test_unknown_suffixes_are_refused_with_the_choices(tmp_path):
    with pytest.raises(UnsupportedFormatError, match=r"x\.txt.*\.ome\.zarr.*\.nii"):
        resolve_destination(tmp_path / "x.txt")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UnsupportedFormatError, match=r"notes\.txt"):
        format_of(tmp_path / "notes.txt")
    with pytest.raises(NotAnImageError, match="no such file"):
        format_of(tmp_path / "missing")


def test_a_name_of_another_format_is_refused(tmp_path):
    with pytest.raises(UnsupportedFormatError, match=r"NIfTI.*OME-Zarr"):
        resolve_destination(tmp_path / "out.nii.gz", format="ome-zarr")
    img = ZarrNii.from_array(ramp((4, 8, 8)))
    with pytest.raises(UnsupportedFormatError):
        img.to_ome_zarr(tmp_path / "out.nii.gz", max_layer=1)
    with pytest.raises(UnsupportedFormatError):
        img.to_nifti(tmp_path / "out.ome.zarr")
    assert not list(tmp_path.iterdir())


def test_folders_are_read_by_content_not_name(tmp_path, ngff_store):
    path, levels = ngff_store(version="0.5")
    plain = tmp_path / "no_suffix"
    path.rename(plain)
    image = open_image(plain)
    assert image.ngff_version == "0.5"
    np.testing.assert_array_equal(np.asarray(image.levels[0].data), levels[0])


def test_open_and_save_round_trip_every_writable_format(tmp_path):
    src = open_image(_nifti(tmp_path / "in.nii.gz"))
    zarr_out = save_image(src, tmp_path / "out.ome.zarr", max_layer="auto")
    nifti_out = save_image(open_image(zarr_out), tmp_path / "back.nii")
    back = open_image(nifti_out)
    np.testing.assert_array_equal(np.asarray(back.levels[0].data), np.asarray(src.levels[0].data))
    assert back.levels[0].scale == src.levels[0].scale


def test_zarrnii_open_dispatches_on_the_format(tmp_path, ngff_store):
    store, _ = ngff_store(version="0.4")
    opened = ZarrNii.open(store, level=1)
    assert opened.level == 1 and opened.shape == (2, 8, 16, 16)
    assert ZarrNii.open(_nifti(tmp_path / "a.nii")).shape == (4, 5, 6)
    with pytest.raises(TypeError, match="no options"):
        ZarrNii.open(tmp_path / "a.nii", level=1)


def test_reader_declines_what_the_table_does_not_know(tmp_path):
    (tmp_path / "x.txt").write_text("no image")
    assert get_reader(str(tmp_path / "x.txt")) is None
    assert get_reader(str(tmp_path / "missing.nii")) is None
    assert get_reader(str(_nifti(tmp_path / "ok.nii"))) is not None


def test_every_suffix_is_defined_once():
    seen: dict[str, str] = {}
    for fmt in FORMATS.values():
        for suffix in fmt.suffixes:
            assert suffix == suffix.lower()
            assert suffix not in seen, (suffix, seen.get(suffix), fmt.key)
            seen[suffix] = fmt.key
    assert FORMATS["nifti"].suffixes == NIFTI_SUFFIXES


# -- atomic writes of files --------------------------------------------------------------
def test_atomic_files_rename_on_success_in_order(tmp_path):
    a, b = tmp_path / "sub" / "a.h5", tmp_path / "sub" / "a.xml"
    with atomic_files([a, b]) as (ta, tb):
        ta.write_text("data")
        tb.write_text("index")
        assert not a.exists() and not b.exists()
    assert a.read_text() == "data" and b.read_text() == "index"
    assert sorted(p.name for p in a.parent.iterdir()) == ["a.h5", "a.xml"]


def test_atomic_files_leave_nothing_on_failure(tmp_path):
    target = tmp_path / "new" / "deeper" / "f.nii"
    with pytest.raises(RuntimeError), atomic_files([target]) as (tmp,):
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert not (tmp_path / "new").exists()


def test_atomic_files_refuse_existing_without_overwrite(tmp_path):
    (tmp_path / "f.nii").write_text("old")
    with pytest.raises(DestinationExistsError), atomic_files([tmp_path / "f.nii"]):
        pass  # pragma: no cover - refused before the block runs
    with atomic_files([tmp_path / "f.nii"], overwrite=True) as (tmp,):
        tmp.write_text("new")
    assert (tmp_path / "f.nii").read_text() == "new"


def test_cancelled_nifti_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    dest = _nifti(tmp_path / "keep.nii.gz")
    before = dest.read_bytes()
    event = threading.Event()
    seen = []

    def progress(done, total, message):
        seen.append((done, total))
        event.set()

    # 150 MiB: more than one 64 MiB block, so the write is cancelled after the first
    img = ZarrNii.from_array(da.zeros((300, 512, 512), dtype="uint16"), axes="zyx")
    with pytest.raises(CancelledError):
        save_image(img.image, dest, overwrite=True, progress=progress, cancel=event)
    assert dest.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.nii.gz"]
    assert seen and seen[0][1] >= 1


def test_bdv_export_writes_the_xml_last_and_nothing_on_failure(tmp_path, monkeypatch):
    pytest.importorskip("h5py")
    from napari_zarrnii.core import export

    img = ZarrNii.from_array(ramp((8, 16, 16)), axes="zyx")
    xml, h5 = tmp_path / "bdv.xml", tmp_path / "bdv.h5"

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export, "_write_cells", broken)
    with pytest.raises(OSError, match="disk full"):
        img.to_bdv_format(xml, h5)
    assert not list(tmp_path.iterdir())
    monkeypatch.undo()
    assert img.to_bdv_format(xml, h5) == (xml, h5)
    assert xml.exists() and h5.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bdv.h5", "bdv.xml"]
