"""The documentation site builds strictly and holds what it promises.

``mkdocs build --strict`` (with broken links and anchors as warnings, see mkdocs.yml)
fails on any warning: a missing page, a broken link, a docstring the API renderer cannot
parse.  The built site must hold the pages, the widget screenshots, the benchmark charts,
the API rendered from the docstrings and the command-line reference generated from the
parser.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the docs extra is not installed")
pytest.importorskip("material", reason="the docs extra is not installed")
pytest.importorskip("mkdocstrings_handlers.python", reason="the docs extra is not installed")

ROOT = Path(__file__).resolve().parents[1]
WIDGETS = ("create-pyramid", "channel-metadata", "crop-roi", "storage-report")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    return out


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_the_site_has_its_pages(site: Path) -> None:
    pages = [p for p in site.rglob("index.html") if "assets" not in p.parts]
    assert len(pages) >= 10
    for page in (
        "quickstart",
        "opening",
        "saving",
        "tutorial",
        "cli",
        "conventions",
        "reliability",
        "architecture",
        "cluster",
        "benchmarks",
        "seed-deviations",
        "changelog",
        *(f"widgets/{w}" for w in WIDGETS),
    ):
        assert (site / page / "index.html").is_file(), page
    assert (site / "search" / "search_index.json").is_file()
    assert not list(site.rglob("*.py")), "build scripts are not published"


def test_widget_pages_show_both_theme_screenshots(site: Path) -> None:
    for widget in WIDGETS:
        html = _text(site / "widgets" / widget / "index.html")
        for theme in ("light", "dark"):
            name = f"widget-{widget}-{theme}.png"
            assert f"{name}#only-{theme}" in html, (widget, theme)
            assert (site / "images" / name).stat().st_size > 10_000


def test_benchmark_charts_are_published(site: Path) -> None:
    html = _text(site / "benchmarks" / "index.html")
    charts = re.findall(r'src="\.\./images/(bench-[\w-]+\.png)"', html)
    assert {
        "bench-write.png",
        "bench-write-distributed.png",
        "bench-open.png",
        "bench-roi.png",
        "bench-s3.png",
    } <= set(charts)
    for chart in charts:
        assert (site / "images" / chart).stat().st_size > 10_000


def test_diagrams_need_no_network(site: Path) -> None:
    """The diagrams' library is served by the site itself (the theme fetches mermaid
    from a CDN only when no ``mermaid`` is loaded): the pages work offline."""
    html = _text(site / "architecture" / "index.html")
    assert 'class="mermaid"' in html
    scripts = re.findall(r'<script src="([^"]+)"', html)
    mine = [s for s in scripts if "mermaid" in s]
    assert mine and not any("://" in s for s in scripts)
    assert (site / "architecture" / mine[0]).resolve().stat().st_size > 1_000_000
    assert (site / "javascripts" / "mermaid-LICENSE.txt").is_file()


def test_api_pages_are_rendered_from_the_docstrings(site: Path) -> None:
    from napari_zarrnii._zarrnii import ZarrNii

    html = _text(site / "api" / "zarrnii" / "index.html")
    for method in ("from_ome_zarr", "get_level", "to_ome_zarr", "crop_with_bounding_box"):
        assert f'id="napari_zarrnii._zarrnii.ZarrNii.{method}"' in html, method
    # the parameter table of a method, taken from its numpy docstring
    summary = inspect.getdoc(ZarrNii.find_tissue_bounds).splitlines()[0]  # type: ignore[union-attr]
    assert summary.split("(")[0].strip() in html
    assert "level_range" in html and "downsample_factors" in html
    io_html = _text(site / "api" / "io" / "index.html")
    for name in ("open_image", "save_image", "MultiscaleImage"):
        assert f"{name}</code>" in io_html or f'id="napari_zarrnii.core.{name}' in io_html, name
    assert "write_pyramid" in _text(site / "api" / "pyramid" / "index.html")


def test_cli_reference_comes_from_the_parser(site: Path) -> None:
    from napari_zarrnii._cli import build_parser

    html = _text(site / "cli" / "index.html")
    assert "cli-reference" not in html  # the marker was replaced
    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in subcommands.items():
        assert f'id="{name}"' in html, name
        for action in sub._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert flag in html, (name, flag)


def test_documented_names_have_docstrings() -> None:
    import napari_zarrnii.core.io as io
    import napari_zarrnii.core.pyramid as pyramid
    from napari_zarrnii._zarrnii import ZarrNii

    missing = [
        f"ZarrNii.{name}"
        for name, member in vars(ZarrNii).items()
        if not name.startswith("_")
        and (inspect.isfunction(member) or isinstance(member, (property, classmethod)))
        and not inspect.getdoc(getattr(ZarrNii, name))
    ]
    for module in (io, pyramid):
        for name in module.__all__:
            obj = getattr(module, name)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and not inspect.getdoc(obj):
                missing.append(f"{module.__name__}.{name}")
    assert not missing
