"""Every command-line example of the README and docs/ runs and prints what they show.

Examples are ``console`` code blocks: lines starting with ``$ napari-zarrnii`` are run
(in one fresh folder per block, in order) and the lines after them, up to the next
``$``, are the output shown: standard output and standard error as a terminal shows
them, without the progress bars.  A line ``...`` stands for any number of lines.  An example whose
output shows ``error:`` must fail with status 2; the others must succeed.  Inputs the
examples use but do not make (a TIFF file, the store the demo writes) are generated
before the block runs.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_zarrnii._cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_BLOCK = re.compile(r"^```console\n(.*?)^```", re.S | re.M)


def _blocks() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for k, match in enumerate(_BLOCK.finditer(doc.read_text(encoding="utf-8"))):
            if "$ napari-zarrnii" in match.group(1):
                name = doc.relative_to(ROOT / "docs") if doc.parent != ROOT else doc.name
                found.append((f"{Path(name).as_posix()}#{k}", match.group(1)))
    return found


def _steps(block: str) -> list[tuple[list[str], list[str]]]:
    steps: list[tuple[list[str], list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((shlex.split(line[2:]), []))
        elif steps:
            steps[-1][1].append(line.rstrip())
    return steps


def _matches(expected: list[str], actual: list[str]) -> bool:
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(_matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and actual[0] == expected[0] and _matches(expected[1:], actual[1:])


def _make_inputs(words: list[str], folder: Path) -> None:
    if words and words[0] == "info" and len(words) > 1 and words[1].endswith(".ome.zarr"):
        store = folder / words[1]
        if not store.exists():  # a store the page's reader made before (the demo's)
            from napari_zarrnii.core.pyramid import write_pyramid
            from napari_zarrnii.core.sample import make_sample_image

            write_pyramid(make_sample_image(), store, max_layer=2)
    for word in words:
        path = folder / word
        if word.endswith((".tif", ".tiff")) and not path.exists():
            tifffile = pytest.importorskip("tifffile")
            data = (np.arange(2 * 16 * 64 * 64) % 4096).astype(np.uint16).reshape(2, 16, 64, 64)
            tifffile.imwrite(
                path,
                data,
                ome=True,
                metadata={
                    "axes": "CZYX",
                    "PhysicalSizeX": 0.5,
                    "PhysicalSizeY": 0.5,
                    "PhysicalSizeZ": 2.0,
                },
            )


def test_there_are_examples() -> None:
    names = [name for name, _ in _blocks()]
    assert any(n.startswith("README.md") for n in names)
    assert any(n.startswith("cli.md") for n in names)


@pytest.mark.parametrize(("name", "block"), _blocks(), ids=[n for n, _ in _blocks()])
def test_example_prints_what_the_docs_show(
    name: str,
    block: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for argv, expected in _steps(block):
        assert argv[0] == "napari-zarrnii", f"{name}: {argv}"
        _make_inputs(argv[1:], tmp_path)
        with monkeypatch.context() as m:
            m.setattr(sys, "stderr", sys.stdout)  # one stream, in the order printed
            code = main(argv[1:])
        out, err = capsys.readouterr()
        # progress bars redraw their line with carriage returns
        actual = [line.rstrip() for line in out.split("\n")[:-1] if "\r" not in line]
        failing = any(": error: " in line for line in expected)
        assert code == (2 if failing else 0), f"{name}: {shlex.join(argv)} -> {code}\n{err}"
        assert _matches(expected, actual), (
            f"{name}: $ {shlex.join(argv)}\n--- shown\n"
            + "\n".join(expected)
            + "\n--- printed\n"
            + "\n".join(actual)
        )
