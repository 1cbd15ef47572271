"""NIfTI reading and writing: orientation, laziness, dtypes, round trips, errors.

The geometry tests compare, for every voxel of tiny synthetic volumes with distinct
values, the world coordinate the model gives (napari's ``(z, y, x) = (S, A, R)``)
with nibabel's ``affine @ [i, j, k, 1]`` read backwards, matching voxels by value:
a wrong permutation or flip moves values away from their coordinates.
"""

from __future__ import annotations

import gzip
import json
import math
import pickle
from pathlib import Path
from typing import Any

import dask.array as da
import nibabel as nib
import numpy as np
import pytest

from napari_zarrnii._errors import DestinationExistsError, NotAnImageError, ZarrNiiError
from napari_zarrnii.core import nifti
from napari_zarrnii.core.model import Axis, ChannelInfo, Level, MultiscaleImage, Window
from napari_zarrnii.core.nifti import NiftiError, nifti_affine, read_nifti, write_nifti

SHAPE = (4, 5, 6)  # distinct sizes, so a swapped axis cannot go unnoticed
#: Tolerance between two files: NIfTI stores affines in float32.
FILE_ATOL = 1e-5


def _rotation(axis: Any, degrees: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    x, y, z = axis
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def _affine(linear: Any, origin: Any = (0.0, 0.0, 0.0)) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = origin
    return affine


SHEAR = np.array([[1.0, 0.2, 0.0], [0.0, 1.0, 0.1], [0.0, 0.0, 1.0]])

AFFINES = {
    # axis-aligned, anisotropic, off-origin
    "RAS": _affine(np.diag([0.5, 0.7, 1.2]), (-10.0, 20.0, 5.0)),
    "LPS": _affine(np.diag([-0.5, -0.7, 1.2]), (30.0, 12.0, -7.0)),
    # i -> P, j -> I, k -> R
    "PIR": _affine([[0, 0, 1.1], [-0.8, 0, 0], [0, -1.3, 0]], (1.0, 2.0, 3.0)),
    # i -> S, j -> L, k -> A
    "SLA": _affine([[0, -0.9, 0], [0, 0, 0.6], [1.4, 0, 0]], (-4.0, 0.5, 8.0)),
    "oblique": _affine(_rotation((1, 1, 0.3), 20) @ SHEAR @ np.diag([0.6, 0.9, 1.5]), (5, -6, 7)),
    "oblique_LPI": _affine(
        _rotation((0.2, 1, 0), 20) @ np.diag([-0.6, -0.9, -1.5]), (-5.0, 6.0, -7.0)
    ),
}


def _unique_values(shape: tuple[int, ...], dtype: Any, seed: int = 0) -> np.ndarray:
    n = math.prod(shape)
    values = np.random.default_rng(seed).permutation(n)
    if np.dtype(dtype).kind == "f":
        return (values * 0.25 - 7.5).astype(dtype).reshape(shape)
    return values.astype(dtype).reshape(shape)


def _save(path: Path, data: np.ndarray, affine: np.ndarray, **header: Any) -> Path:
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units(*header.pop("units", ("mm", "sec")))
    if "zooms" in header:  # the time step
        img.header.set_zooms((*img.header.get_zooms()[:3], header.pop("zooms")))
    for key, value in header.items():
        img.header[key] = value
    nib.save(img, path)
    return path


def _save_raw(
    path: Path,
    data: np.ndarray,
    affine: np.ndarray,
    *,
    slope: float | None = None,
    inter: float | None = None,
    endianness: str = "=",
) -> Path:
    """Write header and stored values by hand (nib.save recomputes scl_slope/inter)."""
    header = nib.Nifti1Header(endianness=endianness)
    header.set_data_dtype(data.dtype)
    header.set_data_shape(data.shape)
    header.set_sform(affine, code=2)
    header.set_qform(affine, code=1)
    header.set_xyzt_units("mm", "sec")
    if slope is not None or inter is not None:
        header["scl_slope"] = 1.0 if slope is None else slope
        header["scl_inter"] = 0.0 if inter is None else inter
    stored = data.astype(data.dtype.newbyteorder(header.endianness))
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wb") as fh:
        header.write_to(fh)
        fh.write(stored.tobytes(order="F"))
    return path


def _nib_voxels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per voxel: world coordinate in napari order ([t,] [c,] S, A, R) and value."""
    img = nib.load(path)
    data = np.asanyarray(img.dataobj)
    shape = data.shape + (1,) * (3 - data.ndim)
    data = data.reshape(shape, order="F")
    index = np.indices(shape).reshape(len(shape), -1)
    ras = img.affine[:3, :3] @ index[:3] + img.affine[:3, 3:4]
    coords = [ras[::-1]]
    if len(shape) > 4 and shape[4] > 1:
        coords.insert(0, index[4][None])
    if len(shape) > 3 and shape[3] > 1:
        tr = float(img.header["pixdim"][4])
        coords.insert(0, (index[3] * tr + float(img.header["toffset"]))[None])
    return np.concatenate(coords).T, data[tuple(index)]


def _model_voxels(image: MultiscaleImage, level: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per voxel: world coordinate of the model (world_affine after scale/translation)."""
    lvl = image.levels[level]
    data = np.asarray(lvl.data)
    index = np.indices(data.shape).reshape(data.ndim, -1).T
    coords = index * np.asarray(lvl.scale) + np.asarray(lvl.translation)
    if image.world_affine is not None:
        homogeneous = np.c_[coords, np.ones(len(coords))]
        coords = (image.world_affine @ homogeneous.T).T[:, :-1]
    return coords, data.reshape(-1)


def _assert_same_voxels(
    first: tuple[np.ndarray, np.ndarray],
    second: tuple[np.ndarray, np.ndarray],
    atol: float = 1e-9,
) -> None:
    """Same values at the same coordinates.

    ``atol`` 1e-9 when both sides derive from one stored affine; 1e-5 (float32 of
    coordinates of some tens of mm) when comparing two files, as NIfTI stores its
    affine in float32.
    """
    (c1, v1), (c2, v2) = first, second
    assert c1.shape == c2.shape
    o1, o2 = np.argsort(v1, kind="stable"), np.argsort(v2, kind="stable")
    assert len(np.unique(v1)) == len(v1), "test volumes need distinct values"
    np.testing.assert_allclose(v1[o1], v2[o2], rtol=1e-6)
    np.testing.assert_allclose(c1[o1], c2[o2], rtol=0, atol=atol)


# -- orientation ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(AFFINES))
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_every_voxel_keeps_its_world_coordinate(tmp_path: Path, name: str, suffix: str) -> None:
    path = _save(tmp_path / f"vol{suffix}", _unique_values(SHAPE, np.int16), AFFINES[name])
    image = read_nifti(path)
    assert image.axis_names == ("z", "y", "x")
    assert all(a.type == "space" and a.unit == "millimeter" for a in image.axes)
    assert all(s > 0 for s in image.levels[0].scale)
    _assert_same_voxels(_model_voxels(image), _nib_voxels(path))


@pytest.mark.parametrize("name", sorted(AFFINES))
def test_corner_and_random_voxels(tmp_path: Path, name: str) -> None:
    """Spot checks written out: model world at a voxel == reversed(affine @ ijk)."""
    values = _unique_values(SHAPE, np.int32)
    path = _save(tmp_path / "vol.nii", values, AFFINES[name])
    affine = nib.load(path).affine  # as stored: float32 sform
    image = read_nifti(path)
    lvl = image.levels[0]
    model = np.asarray(lvl.data)
    rng = np.random.default_rng(1)
    corners = [(i, j, k) for i in (0, 3) for j in (0, 4) for k in (0, 5)]
    picks = corners + [tuple(int(rng.integers(n)) for n in SHAPE) for _ in range(10)]
    wa = np.eye(4) if image.world_affine is None else image.world_affine
    for ijk in picks:
        (where,) = np.argwhere(model == values[ijk])  # value identifies the voxel
        world = wa @ np.r_[where * np.asarray(lvl.scale) + np.asarray(lvl.translation), 1]
        expected = (affine @ np.r_[ijk, 1])[:3][::-1]
        np.testing.assert_allclose(world[:3], expected, atol=1e-9)


def test_axis_aligned_uses_scale_and_translation(tmp_path: Path) -> None:
    image = read_nifti(
        _save(tmp_path / "lps.nii", _unique_values(SHAPE, np.int16), AFFINES["LPS"])
    )
    assert image.world_affine is None
    lvl = image.levels[0]
    # LPS: i runs R->L and j A->P, so both are flipped; k is S already
    assert lvl.shape == (6, 5, 4)
    np.testing.assert_allclose(lvl.scale, (1.2, 0.7, 0.5))
    # voxel (0, 0, 0) of the flipped array is original voxel (3, 4, 0)
    np.testing.assert_allclose(lvl.translation, (-7.0, 12.0 - 4 * 0.7, 30.0 - 3 * 0.5))


def test_permuted_axes_follow_s_a_r(tmp_path: Path) -> None:
    image = read_nifti(
        _save(tmp_path / "pir.nii", _unique_values(SHAPE, np.int16), AFFINES["PIR"])
    )
    # PIR: S is j (flipped), A is i (flipped), R is k
    assert image.levels[0].shape == (5, 4, 6)
    np.testing.assert_allclose(image.levels[0].scale, (1.3, 0.8, 1.1))
    assert image.world_affine is None


def test_oblique_sets_world_affine(tmp_path: Path) -> None:
    path = _save(tmp_path / "obl.nii.gz", _unique_values(SHAPE, np.int16), AFFINES["oblique"])
    image = read_nifti(path)
    assert image.world_affine is not None
    assert image.world_affine.shape == (4, 4)
    assert image.levels[0].translation == (0.0, 0.0, 0.0)
    columns = np.linalg.norm(image.world_affine[:3, :3], axis=0)
    np.testing.assert_allclose(columns, 1.0)


def test_4d_has_leading_time_axis(tmp_path: Path) -> None:
    data = _unique_values((*SHAPE, 3), np.int16)
    path = _save(
        tmp_path / "bold.nii.gz",
        data,
        AFFINES["oblique"],
        units=("micron", "msec"),
        toffset=4.0,
        zooms=2.5,
    )
    image = read_nifti(path)
    assert image.axis_names == ("t", "z", "y", "x")
    assert image.axes[0] == Axis("t", "time", "millisecond")
    assert image.axes[1].unit == "micrometer"
    assert image.levels[0].scale[0] == 2.5
    assert image.levels[0].translation[0] == 4.0
    assert image.world_affine.shape == (5, 5)
    np.testing.assert_array_equal(image.world_affine[0], [1, 0, 0, 0, 0])
    _assert_same_voxels(_model_voxels(image), _nib_voxels(path))


@pytest.mark.parametrize(
    ("shape", "names"),
    [
        ((*SHAPE, 1, 3), ("c", "z", "y", "x")),
        ((*SHAPE, 2, 3), ("t", "c", "z", "y", "x")),
        ((*SHAPE, 2, 1), ("t", "z", "y", "x")),
        ((*SHAPE, 1), ("z", "y", "x")),
        ((*SHAPE, 1, 1, 1), ("z", "y", "x")),
    ],
)
def test_extra_dimensions(tmp_path: Path, shape: tuple[int, ...], names: tuple[str, ...]) -> None:
    path = _save(tmp_path / "v.nii", _unique_values(shape, np.int16), AFFINES["SLA"])
    image = read_nifti(path)
    assert image.axis_names == names
    _assert_same_voxels(_model_voxels(image), _nib_voxels(path))
    if "c" in names:
        assert image.axes[image.channel_axis].type == "channel"
        assert len(image.channels) == shape[4]
    out = write_nifti(image, tmp_path / "out.nii")
    _assert_same_voxels(_nib_voxels(out), _nib_voxels(path), atol=FILE_ATOL)


def test_2d_file(tmp_path: Path) -> None:
    path = _save(tmp_path / "slice.nii", _unique_values((4, 5), np.uint8), AFFINES["RAS"])
    image = read_nifti(path)
    assert image.shape == (1, 5, 4)
    _assert_same_voxels(_model_voxels(image), _nib_voxels(path))


# -- laziness and dtypes ------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.float32, np.float64])
def test_lazy_and_dtype_kept(tmp_path: Path, dtype: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[Any] = []
    original = nifti._NiftiVoxels.__getitem__

    def counting(self: Any, key: Any) -> np.ndarray:
        reads.append(key)
        return original(self, key)

    monkeypatch.setattr(nifti._NiftiVoxels, "__getitem__", counting)
    path = _save(tmp_path / "v.nii.gz", _unique_values(SHAPE, dtype), AFFINES["LPS"])
    image = read_nifti(path)
    data = image.levels[0].data
    assert isinstance(data, da.Array)
    assert data.dtype == dtype
    assert image.levels[0].path == "0"
    assert reads == []  # opening reads the header only
    assert np.asarray(data).dtype == dtype
    assert reads


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [(np.int16, np.float32), (np.uint8, np.float32), (np.float64, np.float64)],
)
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_scaling_applied_without_float64(
    tmp_path: Path, dtype: Any, expected: Any, suffix: str
) -> None:
    path = _save_raw(
        tmp_path / f"s{suffix}", _unique_values(SHAPE, dtype), AFFINES["PIR"], slope=0.5, inter=-3
    )
    image = read_nifti(path)
    assert image.dtype == expected
    assert image.attrs["nifti"]["scl_slope"] == 0.5
    _assert_same_voxels(_model_voxels(image), _nib_voxels(path))
    out = write_nifti(image, tmp_path / f"out{suffix}")
    assert nib.load(out).get_data_dtype() == expected
    _assert_same_voxels(_nib_voxels(out), _nib_voxels(path), atol=FILE_ATOL)


def test_identity_scaling_keeps_dtype(tmp_path: Path) -> None:
    path = _save_raw(tmp_path / "s.nii", _unique_values(SHAPE, np.uint16), np.eye(4), slope=1.0)
    assert read_nifti(path).dtype == np.uint16


def test_big_endian_file(tmp_path: Path) -> None:
    values = _unique_values(SHAPE, np.int16)
    path = _save_raw(tmp_path / "be.nii", values, AFFINES["SLA"], endianness=">")
    image = read_nifti(path)
    assert image.dtype == np.dtype(np.int16)
    _assert_same_voxels(_model_voxels(image), _nib_voxels(path))


def test_slabs_and_flips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Force many chunks (and many written blocks) through flips and permutations."""
    monkeypatch.setattr(nifti, "_SLAB_BYTES", 3 * 4 * 5 * 2)
    path = _save(tmp_path / "v.nii.gz", _unique_values((*SHAPE, 2), np.int16), AFFINES["SLA"])
    image = read_nifti(path)
    assert image.levels[0].data.npartitions > 1
    _assert_same_voxels(_model_voxels(image), _nib_voxels(path))
    out = write_nifti(image, tmp_path / "out.nii.gz")
    _assert_same_voxels(_nib_voxels(out), _nib_voxels(path), atol=FILE_ATOL)


# -- metadata -------------------------------------------------------------------------
def test_window_name_and_attrs(tmp_path: Path) -> None:
    path = _save(
        tmp_path / "brain.T1w.nii.gz",
        _unique_values(SHAPE, np.int16),
        AFFINES["RAS"],
        cal_min=10.0,
        cal_max=90.0,
        descrip=b"synthetic",
    )
    image = read_nifti(path)
    assert image.name == "brain.T1w"
    assert image.source == str(path)
    assert image.ngff_version is None
    assert image.channels == [
        ChannelInfo(label="", window=Window(start=10.0, end=90.0, min=-32768.0, max=32767.0))
    ]
    meta = image.attrs["nifti"]
    assert meta["descrip"] == "synthetic"
    assert meta["sform_code"] == 2
    np.testing.assert_allclose(meta["affine"], AFFINES["RAS"])
    json.dumps(image.attrs, allow_nan=False)
    out = write_nifti(image, tmp_path / "out.nii")
    header = nib.load(out).header
    assert (float(header["cal_min"]), float(header["cal_max"])) == (10.0, 90.0)


def test_no_window_without_cal(tmp_path: Path) -> None:
    image = read_nifti(_save(tmp_path / "v.nii", _unique_values(SHAPE, np.int16), np.eye(4)))
    assert [c.window for c in image.channels] == [None]


def test_unknown_units_read_as_millimetres(tmp_path: Path) -> None:
    path = _save(
        tmp_path / "v.nii",
        _unique_values(SHAPE, np.int16),
        np.eye(4),
        units=("unknown", "unknown"),
    )
    image = read_nifti(path)
    assert {a.unit for a in image.axes} == {"millimeter"}
    assert image.notes


# -- writing --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(AFFINES))
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_round_trip(tmp_path: Path, name: str, dtype: Any, suffix: str) -> None:
    path = _save(tmp_path / f"in{suffix}", _unique_values(SHAPE, dtype), AFFINES[name])
    image = read_nifti(path)
    out = write_nifti(image, tmp_path / f"out{suffix}")
    assert out == tmp_path / f"out{suffix}"
    written = nib.load(out)
    assert written.get_data_dtype() == dtype
    assert written.header.get_sform(coded=True)[1] == 2
    assert written.header.get_qform(coded=True)[1] == 1
    _assert_same_voxels(_nib_voxels(out), _nib_voxels(path), atol=FILE_ATOL)
    np.testing.assert_allclose(nifti_affine(image), written.affine, atol=FILE_ATOL)
    # a second trip lands on the same model
    again = read_nifti(out)
    _assert_same_voxels(_model_voxels(again), _model_voxels(image), atol=FILE_ATOL)
    assert (again.world_affine is None) == (image.world_affine is None)


def test_round_trip_4d(tmp_path: Path) -> None:
    data = _unique_values((*SHAPE, 3), np.float32)
    path = _save(tmp_path / "in.nii", data, AFFINES["oblique_LPI"], toffset=1.5, zooms=2.0)
    out = write_nifti(read_nifti(path), tmp_path / "out.nii.gz")
    header = nib.load(out).header
    assert header.get_data_shape() == (4, 5, 6, 3)
    assert float(header["pixdim"][4]) == 2.0
    assert float(header["toffset"]) == 1.5
    assert header.get_xyzt_units() == ("mm", "sec")
    _assert_same_voxels(_nib_voxels(out), _nib_voxels(path), atol=FILE_ATOL)


def _ngff_image(data: Any) -> MultiscaleImage:
    axes = (
        Axis("c", "channel"),
        Axis("z", "space", "micrometer"),
        Axis("y", "space", "micrometer"),
        Axis("x", "space", "micrometer"),
    )
    level = Level("0", data, scale=(1.0, 2.0, 0.5, 0.25), translation=(0.0, 10.0, -3.0, 4.0))
    window = Window(start=10.0, end=200.0, min=0.0, max=255.0)
    return MultiscaleImage(
        axes=axes,
        levels=[level],
        channels=[ChannelInfo("a", window=window), ChannelInfo("b")],
    )


@pytest.mark.parametrize("lazy", [True, False])
def test_write_ngff_image(tmp_path: Path, lazy: bool) -> None:
    values = _unique_values((2, 3, 4, 5), np.uint16)
    data = da.from_array(values, chunks=(1, 2, 3, 2)) if lazy else values
    image = _ngff_image(data)
    affine = nifti_affine(image)
    np.testing.assert_allclose(
        affine, [[0.25, 0, 0, 4.0], [0, 0.5, 0, -3.0], [0, 0, 2.0, 10.0], [0, 0, 0, 1]]
    )
    out = write_nifti(image, tmp_path / "ngff.nii.gz")
    written = nib.load(out)
    assert written.shape == (5, 4, 3, 1, 2)
    assert written.get_data_dtype() == np.uint16
    assert written.header.get_xyzt_units()[0] == "micron"
    assert written.header.get_intent()[0] == "vector"
    assert float(written.header["cal_min"]) == 10.0
    stored = np.asanyarray(written.dataobj)
    np.testing.assert_array_equal(stored[..., 0, :], values.transpose(3, 2, 1, 0))
    _assert_same_voxels(_nib_voxels(out), _model_voxels(image), atol=FILE_ATOL)


def test_write_converts_other_units_to_mm(tmp_path: Path) -> None:
    image = _ngff_image(_unique_values((2, 3, 4, 5), np.uint16))
    image.axes = tuple(
        Axis(a.name, a.type, "nanometer" if a.type == "space" else a.unit) for a in image.axes
    )
    out = write_nifti(image, tmp_path / "nm.nii")
    written = nib.load(out)
    assert written.header.get_xyzt_units()[0] == "mm"
    np.testing.assert_allclose(np.diag(written.affine)[:3], [0.25e-6, 0.5e-6, 2e-6])


def test_write_refuses_to_overwrite(tmp_path: Path) -> None:
    image = read_nifti(_save(tmp_path / "in.nii", _unique_values(SHAPE, np.int16), np.eye(4)))
    dest = tmp_path / "out.nii.gz"
    dest.write_bytes(b"old")
    with pytest.raises(DestinationExistsError, match=r"out\.nii\.gz"):
        write_nifti(image, dest)
    assert dest.read_bytes() == b"old"
    write_nifti(image, dest, overwrite=True)
    assert nib.load(dest).shape == SHAPE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nii", "out.nii.gz"]


def test_overwrite_source_in_place(tmp_path: Path) -> None:
    path = _save(tmp_path / "in.nii", _unique_values(SHAPE, np.int16), AFFINES["PIR"])
    before = _nib_voxels(path)
    write_nifti(read_nifti(path), path, overwrite=True)
    _assert_same_voxels(_nib_voxels(path), before, atol=FILE_ATOL)


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    def boom(block: np.ndarray) -> np.ndarray:
        raise RuntimeError("boom")

    data = da.from_array(_unique_values((2, 3, 4, 5), np.uint16), chunks=(1, 3, 4, 5))
    image = _ngff_image(data.map_blocks(boom, dtype=np.uint16))
    dest = tmp_path / "out.nii"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        write_nifti(image, dest, overwrite=True)
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.nii"]


def test_write_rejects_other_suffix(tmp_path: Path) -> None:
    image = _ngff_image(_unique_values((2, 3, 4, 5), np.uint16))
    with pytest.raises(NiftiError, match=r"\.nii"):
        write_nifti(image, tmp_path / "out.zarr")


# -- errors ---------------------------------------------------------------------------
def _truncated_gz(tmp_path: Path) -> Path:
    path = _save(tmp_path / "big.nii.gz", _unique_values((32, 32, 32), np.int32), np.eye(4))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def test_not_nifti(tmp_path: Path) -> None:
    cases = {
        "junk.nii": b"hello world" * 50,
        "junk.nii.gz": b"hello world" * 50,
        "empty.nii": b"",
        "text.nii.gz": gzip.compress(b"hello world" * 50),
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(NotAnImageError, match=name):
            read_nifti(tmp_path / name)
    with pytest.raises(NotAnImageError, match="no such file"):
        read_nifti(tmp_path / "missing.nii")
    with pytest.raises(NotAnImageError, match="folder"):
        read_nifti(tmp_path)


def test_truncated_files(tmp_path: Path) -> None:
    path = _save(tmp_path / "t.nii", _unique_values(SHAPE, np.int16), np.eye(4))
    path.write_bytes(path.read_bytes()[:400])
    with pytest.raises(NiftiError, match=r"t\.nii.*truncated"):
        read_nifti(path)
    gz = _truncated_gz(tmp_path)
    with pytest.raises(ZarrNiiError, match=r"big\.nii\.gz.*truncated"):
        read_nifti(gz)


def test_corrupt_gzip_fails_on_read(tmp_path: Path) -> None:
    smooth = np.add.outer(np.arange(64), np.arange(64))[..., None] * np.arange(1, 33)
    path = _save(tmp_path / "c.nii.gz", smooth.astype(np.int32), np.eye(4))
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2  # inside Huffman-coded deflate blocks: invalid codes
    raw[middle : middle + 64] = b"\xff" * 64
    path.write_bytes(bytes(raw))
    image = read_nifti(path)  # header and gzip size field are intact
    with pytest.raises(NiftiError, match=r"c\.nii\.gz.*corrupt"):
        image.levels[0].data.compute()


def test_multi_member_gzip_is_accepted(tmp_path: Path) -> None:
    """A valid gzip of several members (bgzip, pigz -i) has a partial size field."""
    path = _save(tmp_path / "m.nii", _unique_values(SHAPE, np.int16), AFFINES["LPS"])
    raw = path.read_bytes()
    multi = tmp_path / "m.nii.gz"
    multi.write_bytes(gzip.compress(raw[:500]) + gzip.compress(raw[500:]))
    _assert_same_voxels(_model_voxels(read_nifti(multi)), _nib_voxels(path))


# -- other layouts --------------------------------------------------------------------
def test_nifti2_and_pair(tmp_path: Path) -> None:
    values = _unique_values(SHAPE, np.int16)
    two = tmp_path / "two.nii"
    nib.save(nib.Nifti2Image(values, AFFINES["PIR"]), two)
    image = read_nifti(two)
    assert image.attrs["nifti"]["version"] == 2
    _assert_same_voxels(_model_voxels(image), _nib_voxels(two))
    pair = tmp_path / "pair.img"
    nib.save(nib.Nifti1Pair(values, AFFINES["LPS"]), pair)
    image = read_nifti(pair)
    assert image.name == "pair"
    _assert_same_voxels(_model_voxels(image), _nib_voxels(pair))


def test_write_2d_image_without_units(tmp_path: Path) -> None:
    values = _unique_values((3, 4), np.float32)
    image = MultiscaleImage(
        axes=(Axis("y", "space"), Axis("x", "space")),
        levels=[Level("0", values, scale=(0.5, 2.0), translation=(1.0, -1.0))],
    )
    out = write_nifti(image, tmp_path / "plane.nii")
    written = nib.load(out)
    assert written.shape == (4, 3, 1)
    assert written.header.get_xyzt_units()[0] == "unknown"
    coords, data = _nib_voxels(out)
    _assert_same_voxels((coords[:, 1:], data), _model_voxels(image), atol=FILE_ATOL)
    np.testing.assert_array_equal(coords[:, 0], 0.0)


def test_gzip_slabs_decompress_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Slabs of a .gz file share one stream, so reading all of them decompresses once."""
    monkeypatch.setattr(nifti, "_SLAB_BYTES", 4 * 5 * 2)
    path = _save(tmp_path / "v.nii.gz", _unique_values(SHAPE, np.int16), AFFINES["LPS"])
    opened: list[Any] = []
    real_open = gzip.open

    def counting_open(*args: Any, **kwargs: Any) -> Any:
        opened.append(args[0])
        return real_open(*args, **kwargs)

    monkeypatch.setattr(nifti.gzip, "open", counting_open)
    image = read_nifti(path)
    assert image.levels[0].data.npartitions == 6
    _assert_same_voxels(_model_voxels(image), _nib_voxels(path))
    assert len(opened) == 1


def test_lazy_data_pickles(tmp_path: Path) -> None:
    path = _save(tmp_path / "v.nii.gz", _unique_values(SHAPE, np.int16), AFFINES["SLA"])
    data = read_nifti(path).levels[0].data
    expected = data.compute()
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(data)).compute(), expected)
