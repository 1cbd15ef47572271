"""Every Python example of the README and the documentation site runs as written.

The ``python`` code blocks of a page run in order, in one namespace, in an empty
folder, like a reader pasting them into one Python session.  The input files a page
names but does not make (``sample.ome.zarr``, ``t1w.nii.gz``, ...) are generated there
first (:data:`INPUTS`).  A block is skipped only when its first line says why, visibly
for the reader::

    # not run by the docs tests: needs network access

Blocks using a napari viewer (``viewer``, ``import napari``) run in the GUI test of their
page, with a real viewer as ``viewer`` (and behind ``napari.Viewer()``); the Qt-free
test of the page runs every other block.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
_SKIP = re.compile(r"#\s*not run by the docs tests:(.*)")
_NAPARI = re.compile(r"\bviewer\b|\bimport napari\b")


@dataclass(frozen=True)
class Block:
    """One ``python`` block of a page."""

    page: str
    line: int
    code: str
    skip: str | None  # the reason shown to the reader
    napari: bool


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix() if page.is_relative_to(ROOT) else page.name


def blocks_of(page: Path) -> list[Block]:
    """The ``python`` blocks of a page, in order."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        code = match.group(1)
        first = code.split("\n", 1)[0].strip()
        skip = _SKIP.fullmatch(first)
        found.append(
            Block(
                page=_name(page),
                line=text.count("\n", 0, match.start()) + 2,
                code=code,
                skip=skip.group(1).strip() if skip else None,
                napari=bool(_NAPARI.search(code)),
            )
        )
    return found


# -- inputs the pages name -------------------------------------------------------------
def _sample(path: Path) -> None:
    from napari_zarrnii.core.pyramid import write_pyramid
    from napari_zarrnii.core.sample import make_sample_image

    path.parent.mkdir(parents=True, exist_ok=True)
    write_pyramid(make_sample_image(), path, max_layer=2)


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    import nibabel as nib

    nib.save(nib.Nifti1Image(data, affine), path)


def _t1w(path: Path) -> None:
    data = np.zeros((40, 48, 32), np.int16)  # x, y, z as on disk
    data[10:30, 12:36, 8:24] = 500
    affine = np.diag([-1.0, 1.0, 1.5, 1.0])  # x runs right to left
    affine[:3, 3] = [20.0, -24.0, -12.0]
    _nifti(path, data, affine)


def _oblique(path: Path) -> None:
    c, s = np.cos(np.deg2rad(12)), np.sin(np.deg2rad(12))
    affine = np.array([[c, -s, 0, -20], [s, c, 0, -30], [0, 0, 1.5, -10], [0, 0, 0, 1.0]])
    data = (np.arange(24 * 20 * 16) % 200).astype(np.int16).reshape(24, 20, 16)
    _nifti(path, data, affine)


def _probseg(path: Path) -> None:
    rng = np.random.default_rng(0)
    _nifti(path, rng.random((24, 28, 20, 3), dtype=np.float32), np.diag([1.0, 1.0, 1.0, 1.0]))


def _ims(path: Path) -> None:
    pytest.importorskip("h5py")
    from .ims_files import write_ims

    write_ims(path)


def _tiff(path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    data = (np.arange(2 * 16 * 64 * 64) % 4096).astype(np.uint16).reshape(2, 16, 64, 64)
    metadata = {"axes": "CZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "PhysicalSizeZ": 2.0}
    tifffile.imwrite(path, data, ome=True, metadata=metadata)


#: Files the pages read without making them, and how the test makes them.
INPUTS: dict[str, Callable[[Path], None]] = {
    "sample.ome.zarr": _sample,
    "demo-output/sample.ome.zarr": _sample,
    "brain.ome.zarr": _sample,
    "t1w.nii.gz": _t1w,
    "oblique.nii.gz": _oblique,
    "probseg.nii.gz": _probseg,
    "cells.ims": _ims,
    "cells.ome.tif": _tiff,
}


def _make_inputs(blocks: list[Block], folder: Path) -> None:
    code = "\n".join(b.code for b in blocks)
    for name, make in INPUTS.items():
        if re.search(rf"[\"']{re.escape(name)}[\"']", code):
            make(folder / name)


def _run(blocks: list[Block], namespace: dict[str, Any]) -> None:
    for block in blocks:
        compiled = compile(block.code, f"{block.page}:{block.line}", "exec")
        exec(compiled, namespace)


def _pages_with(predicate: Callable[[Block], bool]) -> list[str]:
    return [_name(p) for p in PAGES if any(predicate(b) for b in blocks_of(p))]


# -- tests ------------------------------------------------------------------------------
def test_the_pages_have_examples_and_skips_say_why() -> None:
    every = [b for page in PAGES for b in blocks_of(page)]
    assert len(every) >= 30
    assert {"README.md", "docs/tutorial.md", "docs/opening.md"} <= {b.page for b in every}
    for block in every:
        assert block.skip is None or len(block.skip) > 5, f"{block.page}:{block.line}"
    # a skip is the exception: at most one block in ten
    assert sum(b.skip is not None for b in every) * 10 <= len(every)


def test_a_page_is_split_into_its_blocks(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```python\nx = 1\n```\n\n```console\n$ ls\n```\n"
        "```python\n# not run by the docs tests: needs a cluster\nconnect()\n```\n"
        "```python\nviewer.open(x)\n```\n",
        encoding="utf-8",
    )
    blocks = blocks_of(page)
    assert [b.code for b in blocks] == [
        "x = 1\n",
        "# not run by the docs tests: needs a cluster\nconnect()\n",
        "viewer.open(x)\n",
    ]
    assert [b.skip for b in blocks] == [None, "needs a cluster", None]
    assert [b.napari for b in blocks] == [False, False, True]
    assert [b.line for b in blocks] == [3, 10, 14]


@pytest.mark.parametrize("page", _pages_with(lambda b: not b.napari and b.skip is None))
def test_examples_of_the_page_run(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = [b for b in blocks_of(ROOT / page) if b.skip is None and not b.napari]
    monkeypatch.chdir(tmp_path)
    _make_inputs(blocks, tmp_path)
    _run(blocks, {"__name__": "__docs__"})


@pytest.mark.gui
@pytest.mark.parametrize("page", _pages_with(lambda b: b.napari and b.skip is None))
def test_examples_of_the_page_run_in_napari(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_napari_viewer: Any
) -> None:
    import napari

    blocks = [b for b in blocks_of(ROOT / page) if b.skip is None]
    monkeypatch.chdir(tmp_path)
    _make_inputs(blocks, tmp_path)
    viewer = make_napari_viewer()
    monkeypatch.setattr(napari, "Viewer", lambda *args, **kwargs: viewer)
    _run(blocks, {"__name__": "__docs__", "viewer": viewer})
    assert len(viewer.layers) > 0
