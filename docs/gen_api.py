"""Render docs/api.md from the numpy-style docstrings of the public API.

``python docs/gen_api.py`` rewrites ``docs/api.md``; a test checks it is up to date.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

OUT = Path(__file__).resolve().parent / "api.md"

SECTIONS = [
    ("The ZarrNii API", "napari_zarrnii._zarrnii", ["ZarrNii"]),
    ("Errors", "napari_zarrnii._errors", None),
    ("Image model", "napari_zarrnii.core.model", None),
    ("Reading OME-Zarr", "napari_zarrnii.core.omezarr", ["read_ome_zarr", "detect_layout"]),
    (
        "Chunk cache",
        "napari_zarrnii.core.cache",
        ["set_cache_budget", "cache_info", "default_budget", "parse_size", "CacheStats"],
    ),
    ("Reading ahead", "napari_zarrnii.core.prefetch", ["set_prefetch"]),
    ("NIfTI", "napari_zarrnii.core.nifti", None),
    ("TIFF (optional tifffile)", "napari_zarrnii.core.tiff", None),
    ("Imaris (optional h5py)", "napari_zarrnii.core.ims", None),
    ("Oblique images in OME-Zarr", "napari_zarrnii.core.oblique", None),
    ("Pyramids and writing", "napari_zarrnii.core.pyramid", None),
    ("Regions of interest", "napari_zarrnii.core.roi", None),
    ("Masks", "napari_zarrnii.core.mask", None),
    ("Channel metadata", "napari_zarrnii.core.metadata", None),
    ("Storage report", "napari_zarrnii.core.storage", None),
    ("Export", "napari_zarrnii.core.export", None),
    ("OME-NGFF metadata", "napari_zarrnii.core.ngff", None),
    ("OME-NGFF 0.6 coordinate transformations", "napari_zarrnii.core.transforms", None),
    ("OME-NGFF 0.6 coordinate systems resolved", "napari_zarrnii.core.placement", None),
    ("Safe writes", "napari_zarrnii.core.store", None),
]


def _signature(obj) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def _doc(obj) -> str:
    return inspect.cleandoc(obj.__doc__ or "").strip() or "*(no docstring)*"


def _members(cls) -> list[tuple[str, object]]:
    out = []
    for name, member in cls.__dict__.items():
        if name.startswith("_"):
            continue  # constructors are documented by their class's docstring
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if isinstance(member, property):
            out.append((name, member))
        elif inspect.isfunction(member):
            out.append((name, member))
    return out


def render() -> str:
    lines = [
        "# Python API",
        "",
        "Generated from the docstrings by `docs/gen_api.py`; do not edit by hand.",
        "",
    ]
    for title, module_name, names in SECTIONS:
        module = importlib.import_module(module_name)
        names = names or list(getattr(module, "__all__", []))
        lines += [f"## {title}", "", f"`{module_name}`", ""]
        for name in names:
            obj = getattr(module, name, None)
            if obj is None or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            kind = "class" if inspect.isclass(obj) else "def"
            lines += [f"### `{kind} {name}{_signature(obj)}`", "", _doc(obj), ""]
            if inspect.isclass(obj) and not issubclass(obj, Exception):
                for member_name, member in _members(obj):
                    if isinstance(member, property):
                        header = f"#### `{name}.{member_name}` (property)"
                        doc = _doc(member.fget) if member.fget else ""
                    else:
                        header = f"#### `{name}.{member_name}{_signature(member)}`"
                        doc = _doc(member)
                    lines += [header, "", doc, ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
