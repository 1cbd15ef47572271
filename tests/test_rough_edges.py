"""What a new user hits first: the command line's words, bad input, huge declared shapes.

Each test reproduces one rough edge through the interface the user used (the
``napari-zarrnii`` entry point, the napari reader and writer, the Python API) and
checks the error names the path and the field or chunk, in that interface's words.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import zarr

from napari_zarrnii import (
    BoxError,
    ChannelMetadataError,
    ChunkReadError,
    InvalidMetadataError,
    NiftiError,
    NotDisplayableError,
    UnsupportedFormatError,
    ZarrNii,
)
from napari_zarrnii._cli import main
from napari_zarrnii._reader import get_reader
from napari_zarrnii._writer import write_image
from napari_zarrnii.core.cached import ChunkReadWarning
from napari_zarrnii.core.io import open_image, save_image
from napari_zarrnii.core.lazy import MAX_DASK_BLOCKS, as_dask, chunk_error
from napari_zarrnii.core.model import Axis, Level, MultiscaleImage
from napari_zarrnii.core.pyramid import write_pyramid

from .conftest import ramp, write_ngff_store

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """The generated sample (2 channels, 8x32x32, 3 levels, labels 'cells') via the CLI."""
    path = tmp_path / "sample.ome.zarr"
    args = ["sample", str(path), "--shape", "8", "32", "32", "--no-progress"]
    assert main(args) == 0
    capsys.readouterr()
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC)}


# -- the command line -------------------------------------------------------------------
def test_convert_onto_an_existing_output_names_the_flag_before_any_progress(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "copy.ome.zarr"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, stdout, err = _run(capsys, "convert", str(sample), str(out))
    assert code == 2
    assert (
        err
        == f"napari-zarrnii convert: error: {out}: already exists; add --overwrite to replace it\n"
    )
    assert stdout == ""  # no empty progress bar, no half-done report
    assert (out / "keep.txt").read_text() == "mine"


def test_progress_bar_appears_only_once_work_starts(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "convert", str(sample), str(tmp_path / "a.ome.zarr"))
    assert code == 0 and "writing" in err and "writing: 0block" not in err


def _closed_pipe_run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before anything is written
    try:
        return subprocess.run(
            [sys.executable, "-m", "napari_zarrnii._cli", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=_cli_env(),
            check=False,
            timeout=300,
        )
    finally:
        os.close(write_end)


def test_info_into_a_closed_pipe_ends_quietly(sample: Path) -> None:
    done = _closed_pipe_run(["info", str(sample)])
    assert done.stderr == b""
    assert done.returncode == 141


def test_info_piped_to_head(sample: Path) -> None:
    done = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -m napari_zarrnii._cli info "{sample}" | head -1'],
        capture_output=True,
        env=_cli_env(),
        check=False,
        timeout=300,
    )
    assert done.stdout.decode().splitlines() == [f"{sample}  (OME-NGFF 0.5, uint16)"]
    assert b"Broken pipe" not in done.stderr and b"Errno" not in done.stderr


def test_reversed_bbox_names_the_axes_in_plain_numbers(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "crop.ome.zarr"
    code, _, err = _run(
        capsys, "crop", str(sample), str(out), "--bbox", "5", "1", "1", "2", "9", "9"
    )
    assert code == 2
    assert "--bbox: zmin 5 >= zmax 2 (the order is zmin ymin xmin zmax ymax xmax)" in err
    assert "np.float64" not in err and not out.exists()


def test_out_of_range_bbox_is_clipped_with_a_note_and_each_box_printed_once(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "crop.ome.zarr"
    code, stdout, err = _run(
        capsys, "crop", str(sample), str(out), "--bbox", "-3", "4", "4", "100", "12", "40"
    )
    assert code == 0
    assert "note: --bbox -3:100 4:12 4:40 reaches beyond level 0 (shape 8x32x32); " in err
    assert "clipped to 0:8 4:12 4:32" in err
    assert stdout.splitlines() == [
        "box at level 0: 0:8 4:12 4:32",
        "label image 'cells': cropped with the image",
        f"wrote {out}",
    ]
    assert ZarrNii.from_ome_zarr(out).shape == (2, 8, 8, 28)


def test_bbox_outside_the_level_is_refused(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "crop.ome.zarr"
    code, _, err = _run(
        capsys,
        "crop",
        str(sample),
        str(out),
        "--level",
        "1",
        "--bbox",
        "0",
        "0",
        "20",
        "4",
        "8",
        "30",
    )
    assert code == 2
    assert "--bbox 0:4 0:8 20:30 lies outside level 1 (shape 8x16x16) along x" in err
    assert not out.exists()


def test_level_out_of_range_names_the_flag(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "convert", str(sample), str(tmp_path / "o.nii"), "--level", "3")
    assert code == 2
    assert f"--level 3: {sample} has 3 levels (0 to 2, or -1 to -3)" in err


def test_write_options_are_checked_in_the_flags_words(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "o.ome.zarr")
    code, _, err = _run(capsys, "convert", str(sample), out, "--chunks", "8", "8")
    assert code == 2 and "--chunks: 2 values; give one for every spatial axis" in err
    code, _, err = _run(capsys, "convert", str(sample), out, "--max-layer", "-1")
    assert code == 2 and "--max-layer: must be 0 or more" in err
    # one value is every spatial axis
    assert main(["convert", str(sample), out, "--chunks", "8", "--no-progress"]) == 0
    assert ZarrNii.from_ome_zarr(out).image.levels[0].chunks == (1, 8, 8, 8)


def test_api_box_errors_and_clipping(sample: Path, caplog: pytest.LogCaptureFixture) -> None:
    z = ZarrNii.from_ome_zarr(sample)
    with pytest.raises(BoxError) as info:
        z.crop((5, 1, 1), (2, 9, 9))
    assert "bbox_min must be below bbox_max on every axis (z: 5 >= 2)" in str(info.value)
    with caplog.at_level(logging.WARNING, logger="napari_zarrnii"):
        crop = z.crop((0, 0, 0), (100, 8, 8))
    assert crop.shape == (2, 8, 8, 8)
    assert "clipped to (0, 0, 0)-(8, 8, 8)" in caplog.text and "np." not in caplog.text


def _label_of(path: Path) -> np.ndarray:
    return np.asarray(zarr.open_group(str(path), mode="r")["labels/cells/0"][...])


def test_crop_keeps_labels_on_the_image_grid_whatever_the_box(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cells = _label_of(sample)
    # a box given at level 1 (mapped to level 0), a box covering everything, --tissue
    cases = {
        "l1": ["--level", "1", "--bbox", "1", "2", "3", "3", "6", "9"],
        "all": ["--bbox", "0", "0", "0", "8", "32", "32"],
        "tissue": ["--tissue"],
    }
    for name, box in cases.items():
        out = tmp_path / f"{name}.ome.zarr"
        code, stdout, _ = _run(capsys, "crop", str(sample), str(out), *box, "--no-progress")
        assert code == 0, name
        assert "label image 'cells': cropped with the image" in stdout
        image = ZarrNii.from_ome_zarr(out)
        label = _label_of(out)
        assert label.shape == image.shape[1:]
        origin = np.round(
            (np.asarray(image.origin) - ZarrNii.from_ome_zarr(sample).origin)
            / np.asarray(image.voxel_size)
        ).astype(int)
        expected = cells[tuple(slice(o, o + n) for o, n in zip(origin, label.shape))]
        np.testing.assert_array_equal(label, expected)
    # the Python API follows the same rule, as does a level picked with get_level
    z = ZarrNii.from_ome_zarr(sample)
    assert z.get_level(0).crop((0, 4, 4), (8, 12, 12)).label_names == ["cells"]
    assert z.get_level(1).label_names == ["cells"]
    out = tmp_path / "level1.ome.zarr"
    assert main(["convert", str(sample), str(out), "--level", "1", "--no-progress"]) == 0
    assert _label_of(out).shape == (8, 16, 16)


def test_labels_on_another_grid_are_named_as_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    axes = tuple(Axis(n, "space", "micrometer") for n in "zyx")
    coarse = MultiscaleImage(
        axes,
        [Level("0", np.ones((4, 8, 8), np.uint8), (2.0, 2.0, 2.0), (0.5, 0.5, 0.5))],
        name="coarse",
        is_label=True,
    )
    image = MultiscaleImage(
        axes,
        [Level("0", ramp((8, 16, 16)), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))],
        labels={"coarse": coarse},
    )
    src = tmp_path / "two-grids.ome.zarr"
    write_pyramid(image, src, max_layer=1)
    out = tmp_path / "crop.ome.zarr"
    code, stdout, _ = _run(
        capsys, "crop", str(src), str(out), "--bbox", "0", "0", "0", "4", "8", "8"
    )
    assert code == 0
    assert "label image 'coarse': not written (not on the grid of level 0)" in stdout
    assert "labels" not in zarr.open_group(str(out), mode="r")


def test_info_on_what_is_no_image_says_so_plainly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    attrs_only = tmp_path / "attrs.zarr"
    attrs_only.mkdir()
    (attrs_only / ".zattrs").write_text("{}")
    listed = tmp_path / "list.zarr"
    listed.mkdir()
    (listed / "zarr.json").write_text("[1, 2]")
    expected = {
        empty: "not a zarr group (no zarr.json or .zgroup in it)",
        attrs_only: "not a zarr group (no zarr.json or .zgroup in it)",
        tmp_path / "missing.zarr": "no such file or folder",
        listed: "invalid zarr metadata at 'zarr.json': holds a JSON list",
    }
    for path, words in expected.items():
        code, _, err = _run(capsys, "info", str(path))
        assert code == 2 and f"{path}: {words}" in err, err
        assert "GroupNotFoundError" not in err and "StorePath" not in err
    with pytest.raises(InvalidMetadataError) as info:
        open_image(listed)
    assert info.value.field == "zarr.json"
    assert get_reader(str(empty)) is None  # napari: declined, left to other readers


def test_level_zarr_json_that_is_a_list_names_the_dataset(ngff_store) -> None:
    path, _ = ngff_store(version="0.5")
    (path / "1" / "zarr.json").write_text("[]")
    with pytest.raises(InvalidMetadataError) as info:
        open_image(path)
    assert info.value.field == "multiscales[0].datasets[1].path"
    assert "'1/zarr.json' holds a JSON list" in str(info.value)


def test_output_with_a_foreign_suffix_is_refused(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.txt"
    code, _, err = _run(capsys, "convert", str(sample), str(out))
    assert code == 2 and "cannot tell which format to write from the name 'x.txt'" in err
    with pytest.raises(
        UnsupportedFormatError, match=r"names end in \.ome\.zarr or \.zarr, not '\.txt'"
    ):
        ZarrNii.from_ome_zarr(sample).to_ome_zarr(out)
    assert not out.exists()
    # no suffix at all is still an OME-Zarr folder
    ZarrNii.from_ome_zarr(sample).get_level(-1).to_ome_zarr(tmp_path / "plain", max_layer=0)
    assert (tmp_path / "plain" / "zarr.json").exists()


# -- bad input: reading --------------------------------------------------------------------
def test_zero_scale_is_refused_naming_the_transformation(ngff_store) -> None:
    path, _ = ngff_store(version="0.5", scale=(1.0, 0.0, 1.0, 1.0))
    with pytest.raises(InvalidMetadataError) as info:
        get_reader(str(path))(str(path))
    assert info.value.field == "multiscales[0].datasets[0].coordinateTransformations"
    assert "scale of axis 'z' is 0" in str(info.value) and str(path) in str(info.value)


def test_levels_that_grow_are_refused_naming_the_dataset(ngff_store) -> None:
    path, _ = ngff_store(version="0.4")
    group = zarr.open_group(str(path), mode="r+")
    multiscales = group.attrs["multiscales"]
    datasets = multiscales[0]["datasets"]
    datasets[0]["path"], datasets[2]["path"] = datasets[2]["path"], datasets[0]["path"]
    group.attrs["multiscales"] = multiscales
    with pytest.raises(InvalidMetadataError) as info:
        get_reader(str(path))(str(path))
    assert info.value.field == "multiscales[0].datasets[1].path"
    assert "from the finest level to the coarsest" in str(info.value)


def test_one_dimensional_ome_zarr_is_refused(ngff_store) -> None:
    path, _ = ngff_store(
        version="0.5", data=np.arange(16, dtype="uint8"), axes=(("x", "space", None),), n_levels=1
    )
    with pytest.raises(InvalidMetadataError) as info:
        open_image(path)
    assert info.value.field == "multiscales[0].axes"


def _truncated_store(path: Path, zarr_format: int = 3) -> Path:
    root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    kwargs = (
        {"dimension_names": list("zyx")}
        if zarr_format == 3
        else {"chunk_key_encoding": {"name": "v2", "separator": "/"}}
    )
    arr = root.create_array(
        "0", shape=(16, 16, 16), chunks=(8, 8, 8), dtype="u1", compressors=None, **kwargs
    )
    arr[...] = 7
    axes = [{"name": n, "type": "space"} for n in "zyx"]
    ms = {
        "axes": axes,
        "datasets": [
            {
                "path": "0",
                "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0]}],
            }
        ],
    }
    if zarr_format == 3:
        root.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
        key = "c/0/0/1"
    else:
        root.attrs["multiscales"] = [{**ms, "version": "0.4"}]
        key = "0/0/1"
    with open(path / "0" / key, "r+b") as fh:
        fh.truncate(50)
    return path


@pytest.mark.parametrize(("zarr_format", "key"), [(3, "c/0/0/1"), (2, "0/0/1")])
def test_truncated_chunk_names_store_array_and_chunk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], zarr_format: int, key: str
) -> None:
    path = _truncated_store(tmp_path / "trunc.ome.zarr", zarr_format)
    words = f"{path}: chunk '{key}' of array '0' cannot be read: "
    # napari: the damaged chunk shows as zeros with a warning naming it (a notification),
    # from the first read on (the contrast limits read the coarsest level on open)
    with pytest.warns(ChunkReadWarning) as record:
        data, _, _ = get_reader(str(path))(str(path))[0]
        plane = np.asarray(data[:, :, 8:])
    message = str(record[0].message)
    assert words in message and "truncated or damaged" in message
    np.testing.assert_array_equal(plane[:8, :8], 0)  # the chunk: z 0-7, y 0-7, x 8-15
    np.testing.assert_array_equal(plane[:8, 8:], 7)  # its neighbours in the same read
    np.testing.assert_array_equal(plane[8:], 7)
    np.testing.assert_array_equal(np.asarray(data[:, :, :8]), 7)  # the rest still reads
    # the Python API (dask) and the command line
    with pytest.raises(ChunkReadError, match=f"chunk '{key}'"):
        ZarrNii.from_ome_zarr(path).darr.compute()
    code, _, err = _run(capsys, "convert", str(path), str(tmp_path / "copy.ome.zarr"))
    assert code == 2 and words in err
    assert not (tmp_path / "copy.ome.zarr").exists()


def test_chunk_error_is_the_one_typed_error() -> None:
    exc = chunk_error("s.zarr", "labels/cells/0", "c/1/2", ValueError("boom"))
    assert isinstance(exc, ChunkReadError) and isinstance(exc, ValueError)
    assert (exc.store, exc.array, exc.chunk) == ("s.zarr", "labels/cells/0", "c/1/2")
    assert str(exc).startswith("s.zarr: chunk 'c/1/2' of array 'labels/cells/0' cannot be read")


def _nifti(path: Path, data: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


def test_complex_images_are_declined_by_napari_but_read_by_the_api(tmp_path: Path) -> None:
    path = _nifti(
        tmp_path / "complex.nii", (np.arange(60) * (1 + 1j)).reshape(3, 4, 5).astype(np.complex64)
    )
    with pytest.raises(NotDisplayableError) as info:
        get_reader(str(path))(str(path))
    assert str(path) in str(info.value) and "complex64" in str(info.value)
    assert ZarrNii.from_nifti(path).dtype == np.complex64
    store = tmp_path / "complex.ome.zarr"
    write_ngff_store(
        store,
        version="0.5",
        data=np.ones((4, 4, 4), np.complex64),
        axes=tuple((n, "space", None) for n in "zyx"),
        n_levels=1,
    )
    with pytest.raises(NotDisplayableError):
        get_reader(str(store))(str(store))


def test_nifti_with_a_zero_dimension_is_refused(tmp_path: Path) -> None:
    path = _nifti(tmp_path / "zero.nii", np.ones((4, 5, 6), np.int16))
    raw = bytearray(path.read_bytes())
    struct.pack_into("<h", raw, 40 + 2 * 2, 0)  # dim[2] = 0
    path.write_bytes(bytes(raw))
    with pytest.raises(NiftiError, match=r"header field dim\[2\] is 0: the file holds no voxels"):
        open_image(path)


def test_single_file_nifti_with_vox_offset_zero_is_refused(tmp_path: Path) -> None:
    path = _nifti(tmp_path / "off.nii", np.arange(120, dtype=np.int16).reshape(4, 5, 6))
    raw = bytearray(path.read_bytes())
    struct.pack_into("<f", raw, 108, 0.0)  # vox_offset
    path.write_bytes(bytes(raw))
    with pytest.raises(NiftiError) as info:
        open_image(path)
    assert str(path) in str(info.value)
    assert "vox_offset is 0, inside the 352-byte header" in str(info.value)


def _huge_store(path: Path) -> Path:
    root = zarr.open_group(str(path), mode="w")
    root.create_array(
        "0", shape=(10000, 10000, 10000), chunks=(4, 4, 4), dtype="u2", dimension_names=list("zyx")
    )
    root.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": [{"name": n, "type": "space"} for n in "zyx"],
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0]}],
                    }
                ],
            }
        ],
    }
    return path


def test_huge_declared_shape_stays_within_bounded_memory(tmp_path: Path) -> None:
    path = _huge_store(tmp_path / "huge.ome.zarr")
    tracemalloc.start()
    try:
        reader = get_reader(str(path))
        with pytest.raises(NotDisplayableError) as info:
            reader(str(path))  # napari would read a 10000x10000 plane of 6.25e6 chunks
        z = ZarrNii.from_ome_zarr(path)
        assert z.darr.npartitions <= MAX_DASK_BLOCKS
        corner = z.darr[100:108, 200:208, 300:308].compute()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "level '0', the coarsest, is too large to show" in str(info.value)
    assert corner.shape == (8, 8, 8) and not corner.any()
    assert peak < 300 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_dask_blocks_are_whole_chunks_until_there_are_too_many() -> None:
    small = zarr.create_array({}, shape=(64, 64), chunks=(8, 8), dtype="u1")
    assert as_dask(small).chunksize == (8, 8)
    big = zarr.create_array({}, shape=(100000, 100000), chunks=(10, 10), dtype="u1")
    dask_big = as_dask(big)
    assert dask_big.npartitions <= MAX_DASK_BLOCKS
    assert all(c % 10 == 0 for c in dask_big.chunksize)


# -- bad input: writing --------------------------------------------------------------------
def test_omero_colour_that_is_no_colour_is_refused_before_writing(
    sample: Path, tmp_path: Path
) -> None:
    z = ZarrNii.from_ome_zarr(sample)
    out = tmp_path / "o.ome.zarr"
    bad = {"channels": [{"label": "DAPI", "color": "notacolor"}, {"label": "GFP"}]}
    with pytest.raises(ChannelMetadataError) as info:
        z.to_ome_zarr(out, omero_metadata=bad)
    assert "omero_metadata: channels[0].color 'notacolor' is not a colour" in str(info.value)
    with pytest.raises(ChannelMetadataError, match=r"omero: channels\[0\]\.color"):
        save_image(z.image, out, omero=bad)
    reversed_window = r"channels\[0\]\.window: start \(5\) must be below end \(1\)"
    with pytest.raises(ChannelMetadataError, match=reversed_window):
        write_pyramid(z.image, out, omero={"channels": [{"window": {"start": 5, "end": 1}}, {}]})
    assert not out.exists()


def test_layer_with_scale_zero_is_refused_by_the_writer(tmp_path: Path) -> None:
    out = tmp_path / "layer.ome.zarr"
    with pytest.raises(InvalidMetadataError) as info:
        write_image(str(out), np.ones((4, 8, 8), np.uint8), {"name": "flat", "scale": [0, 1, 1]})
    assert str(info.value).startswith("layer 'flat': invalid layer metadata at 'scale'")
    assert not out.exists()


def test_model_refuses_a_zero_or_infinite_placement() -> None:
    axes = tuple(Axis(n, "space") for n in "yx")
    with pytest.raises(InvalidMetadataError, match="level '0' scale"):
        MultiscaleImage(axes, [Level("0", np.ones((2, 2)), (0.0, 1.0), (0.0, 0.0))])
    with pytest.raises(InvalidMetadataError, match="level '0' translation"):
        MultiscaleImage(axes, [Level("0", np.ones((2, 2)), (1.0, 1.0), (np.inf, 0.0))])
    with pytest.raises(ValueError, match="voxel_size"):
        ZarrNii.from_array(np.ones((2, 2)), voxel_size=(0, 1), axes="yx")


def test_a_coarsest_plane_of_too_many_bytes_is_not_shown(tmp_path: Path) -> None:
    path = tmp_path / "wide.ome.zarr"
    root = zarr.open_group(str(path), mode="w")
    root.create_array(
        "0",
        shape=(2, 40000, 40000),
        chunks=(1, 8192, 8192),
        dtype="u1",
        dimension_names=list("zyx"),
    )
    root.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": [{"name": n, "type": "space"} for n in "zyx"],
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0]}],
                    }
                ],
            }
        ],
    }
    with pytest.raises(NotDisplayableError, match="spans 25 chunks and 1600000000 bytes"):
        get_reader(str(path))(str(path))


# -- one definition of each small fact -----------------------------------------------------
def test_cli_scaling_methods_are_the_kernels() -> None:
    from napari_zarrnii._cli import build_parser
    from napari_zarrnii.core.pyramid.kernels import SCALING_METHODS

    convert = build_parser()._subparsers._group_actions[0].choices["convert"]  # type: ignore[union-attr]
    method = next(a for a in convert._actions if a.dest == "method")
    assert list(method.choices) == list(SCALING_METHODS)


def test_package_never_imports_ome_zarr_py() -> None:
    uses = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if re.search(r"^\s*(import|from) ome_zarr\b(?!_)", p.read_text(), re.MULTILINE)
    ]
    assert uses == []
    pyproject = (SRC.parent / "pyproject.toml").read_text()
    runtime = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    assert "ome-zarr" not in runtime


def test_napari_writer_says_what_a_napari_user_can_do(tmp_path: Path) -> None:
    out = tmp_path / "keep.ome.zarr"
    out.mkdir()
    with pytest.raises(FileExistsError) as info:
        write_image(str(out), np.ones((8, 8), np.uint8), {"name": "x"})
    assert "choose another name or delete it first" in str(info.value)
    assert "overwrite=True" not in str(info.value)
