"""OME-NGFF metadata as data: one spec per version, parsing and emitting.

Nothing here does I/O.  Parsing takes the attribute dicts of a zarr group (and the
shapes of its arrays) and returns plain values for :mod:`.model`; emitting builds the
attribute dict to store for a version.  Version differences live in
:data:`NGFF_SPECS`, not in if-chains spread through the code.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .._errors import InvalidMetadataError
from .model import (
    Axis,
    ChannelInfo,
    Level,
    MultiscaleImage,
    Window,
    axis_type_of,
    default_channel_color,
    normalize_color,
    window_problem,
)
from .placement import (
    Frame,
    display_problem,
    resolve_multiscale,
    restrict_frame,
    split_placement,
)
from .transforms import ArrayLoader, diagonal_parts, parse_orientation

__all__ = [
    "DEFAULT_NGFF_VERSION",
    "INTRINSIC_SYSTEM",
    "NGFF_SPECS",
    "NIFTI_ORIENTATION",
    "NIFTI_SYSTEMS",
    "WORLD_SYSTEM",
    "WRITABLE_VERSIONS",
    "NgffSpec",
    "ParsedMultiscale",
    "anatomical_axes",
    "emit_coordinate_systems",
    "emit_dataset_transformations",
    "emit_image_attrs",
    "emit_label_attrs",
    "emit_labels_group_attrs",
    "emit_omero",
    "in_parent_world",
    "ngff_attrs",
    "parse_image_label",
    "parse_multiscale",
    "parse_omero",
    "spec_for",
    "world_system_name",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NgffSpec:
    """What differs between OME-NGFF versions, as data."""

    version: str
    zarr_format: int
    #: metadata stored under an ``ome`` key (0.5+) rather than at the top level
    under_ome_key: bool
    #: where the axes are: none (0.1/0.2), ``axes`` as a list of names (0.3) or of
    #: dicts (0.4/0.5), or named ``coordinateSystems`` (0.6, RFC-5)
    axes_style: str  # "none" | "names" | "dicts" | "systems"
    #: per-dataset ``coordinateTransformations`` present
    has_transforms: bool
    #: this package writes the version (older ones are read-only)
    writable: bool
    #: :func:`emit_image_attrs` can describe an image in this version
    emittable: bool = False
    #: an image's world affine (rotation, shear) can be stored, as a transformation
    #: from the intrinsic coordinate system to a named one (0.6)
    stores_affine: bool = False


NGFF_SPECS: dict[str, NgffSpec] = {
    "0.1": NgffSpec("0.1", 2, False, "none", False, False),
    "0.2": NgffSpec("0.2", 2, False, "none", False, False),
    "0.3": NgffSpec("0.3", 2, False, "names", False, False),
    "0.4": NgffSpec("0.4", 2, False, "dicts", True, True, True),
    "0.5": NgffSpec("0.5", 3, True, "dicts", True, True, True),
    "0.6": NgffSpec("0.6", 3, True, "systems", True, True, True, stores_affine=True),
}

#: The versions this package writes, oldest first (what a version choice offers).
WRITABLE_VERSIONS: tuple[str, ...] = tuple(v for v, s in NGFF_SPECS.items() if s.writable)

#: The version written unless another is asked for.  0.6 is written on request only:
#: ome-zarr-py 0.18 reads a 0.6 store as 0.5 with default t, c, z, y, x axes.
DEFAULT_NGFF_VERSION = "0.5"


def spec_for(version: str | None, *, path: str = "", writing: bool = False) -> NgffSpec:
    """The spec of an NGFF version; ``'0.5-dev'``, ``'0.6rc0'``-style tags map to their release."""
    text = str(version or "").strip()
    key = text[:3] if text[:3] in NGFF_SPECS else None
    if key is None:
        raise InvalidMetadataError(path, "version", f"unsupported OME-NGFF version {text!r}")
    spec = NGFF_SPECS[key]
    if writing and not spec.writable:
        writable = ", ".join(v for v, s in NGFF_SPECS.items() if s.writable)
        raise ValueError(f"OME-NGFF {key} is read-only here; write one of {writable}")
    return spec


def ngff_attrs(attrs: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The NGFF part of a group's attributes and its version, whatever the layout.

    0.5 keeps everything under ``ome`` with one ``version``; 0.1-0.4 keep keys at the
    top level with the version inside ``multiscales`` (or ``plate``/``well``).
    """
    if isinstance(attrs.get("ome"), Mapping):
        ome = dict(attrs["ome"])
        return ome, str(ome.get("version")) if ome.get("version") is not None else "0.5"
    ome = dict(attrs)
    version = None
    for key in ("multiscales", "plate", "well"):
        value = ome.get(key)
        if isinstance(value, list) and value and isinstance(value[0], Mapping):
            version = value[0].get("version")
        elif isinstance(value, Mapping):
            version = value.get("version")
        if version is not None:
            break
    return ome, str(version) if version is not None else None


# -- parsing ------------------------------------------------------------------------------


@dataclass
class ParsedMultiscale:
    """What one ``multiscales`` entry says, before arrays are opened.

    For 0.6, ``axes`` are those of the coordinate system shown, ``world_affine``
    the affine napari applies after each level's scale and translation when that
    system is not reached by scale and translation alone, ``frame`` the matrix
    from the intrinsic system to it (label images are placed with their parent's),
    ``label_links`` the transformations to the label images' systems, and
    ``notes`` what was not applied.
    """

    name: str | None
    axes: tuple[Axis, ...] | None  # None: to be guessed from the array's ndim (0.1/0.2)
    paths: list[str]
    scales: list[tuple[float, ...] | None]  # None where the version stores none
    translations: list[tuple[float, ...]]
    version: str
    world_affine: np.ndarray | None = None
    frame: Frame | None = None
    label_links: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _transform_values(
    transforms: Any, ndim: int, path: str, field: str
) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """Compose a list of NGFF coordinate transformations into (scale, translation)."""
    if transforms is None:
        return None, None
    if not isinstance(transforms, list):
        raise InvalidMetadataError(path, field, "coordinateTransformations must be a list")
    scale = np.ones(ndim)
    translation = np.zeros(ndim)
    for i, t in enumerate(transforms):
        where = f"{field}[{i}]"
        if not isinstance(t, Mapping):
            raise InvalidMetadataError(path, where, "a transformation must be an object")
        kind = t.get("type")
        if kind == "identity":
            continue
        if kind not in ("scale", "translation"):
            raise InvalidMetadataError(path, f"{where}.type", f"unsupported type {kind!r}")
        if "path" in t and kind not in t:
            raise InvalidMetadataError(
                path, where, "transformations stored in a separate array are not supported"
            )
        try:
            values = np.asarray(t[kind], dtype=float)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidMetadataError(
                path, f"{where}.{kind}", f"not a list of numbers ({exc})"
            ) from exc
        if values.shape != (ndim,):
            raise InvalidMetadataError(
                path, f"{where}.{kind}", f"needs {ndim} values (one per axis), has {values.size}"
            )
        if not np.all(np.isfinite(values)):
            raise InvalidMetadataError(path, f"{where}.{kind}", "values must be finite")
        if kind == "scale":
            scale = scale * values
            translation = translation * values
        else:
            translation = translation + values
    return tuple(scale), tuple(translation)


def _parse_axes(raw: Any, path: str, version: str) -> tuple[Axis, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise InvalidMetadataError(path, "multiscales[0].axes", "must be a non-empty list")
    axes = []
    for i, item in enumerate(raw):
        if isinstance(item, str):  # 0.3
            name, kind, unit = item, None, None
        elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
            name, kind, unit = item["name"], item.get("type"), item.get("unit")
        else:
            raise InvalidMetadataError(path, f"multiscales[0].axes[{i}]", "needs a 'name'")
        if kind is None:
            kind = axis_type_of(name, None)
        # RFC-4 orientation: ngff-zarr writes it on 0.4/0.5 axes as well
        orientation = (
            parse_orientation(item.get("orientation"), path, f"multiscales[0].axes[{i}]")
            if isinstance(item, Mapping) and kind == "space"
            else None
        )
        axes.append(Axis(name, kind, unit if isinstance(unit, str) else None, orientation))
    names = [a.name for a in axes]
    if len(set(names)) != len(names):
        raise InvalidMetadataError(path, "multiscales[0].axes", f"duplicate axis names {names}")
    return tuple(axes)


def parse_multiscale(
    ome: Mapping[str, Any],
    version: str,
    path: str,
    index: int = 0,
    *,
    coordinate_system: str | None = None,
    parent: Frame | None = None,
    load: ArrayLoader | None = None,
) -> ParsedMultiscale:
    """Parse entry ``index`` of ``multiscales`` into axes, dataset paths and transforms.

    Parameters
    ----------
    ome, version, path, index
        The NGFF attributes, their version, the store path (for messages) and which
        ``multiscales`` entry to parse.
    coordinate_system
        0.6: the coordinate system to show (default: see
        :func:`~.placement.default_system`).
    parent
        0.6 label images: the parent image's frame, so the label overlays it.
    load
        0.6: reads matrices stored in zarr arrays (``path`` relative to the group).
    """
    spec = spec_for(version, path=path)
    multiscales = ome.get("multiscales")
    field = f"multiscales[{index}]"
    if not isinstance(multiscales, list) or len(multiscales) <= index:
        raise InvalidMetadataError(path, "multiscales", "must be a non-empty list")
    ms = multiscales[index]
    if not isinstance(ms, Mapping):
        raise InvalidMetadataError(path, field, "must be an object")
    datasets = ms.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise InvalidMetadataError(path, f"{field}.datasets", "must be a non-empty list")
    for i, ds in enumerate(datasets):
        if not isinstance(ds, Mapping) or not isinstance(ds.get("path"), str):
            raise InvalidMetadataError(
                path, f"{field}.datasets[{i}].path", "each dataset needs a 'path'"
            )
    name = ms.get("name")
    if spec.axes_style == "systems":
        return _parse_systems(
            ms,
            spec,
            path,
            field,
            name if isinstance(name, str) else None,
            coordinate_system=coordinate_system,
            parent=parent,
            load=load,
        )
    axes = _parse_axes(ms.get("axes"), path, spec.version) if spec.axes_style != "none" else None
    ndim = len(axes) if axes is not None else None
    outer_scale, outer_translation = (None, None)
    if ndim is not None and spec.has_transforms:
        outer_scale, outer_translation = _transform_values(
            ms.get("coordinateTransformations"), ndim, path, f"{field}.coordinateTransformations"
        )
    paths: list[str] = []
    scales: list[tuple[float, ...] | None] = []
    translations: list[tuple[float, ...]] = []
    for i, ds in enumerate(datasets):
        where = f"{field}.datasets[{i}]"
        paths.append(ds["path"])
        scale = translation = None
        if ndim is not None and spec.has_transforms:
            scale, translation = _transform_values(
                ds.get("coordinateTransformations"),
                ndim,
                path,
                f"{where}.coordinateTransformations",
            )
            if scale is None and spec.version >= "0.4":
                log.warning(
                    "%s: %s has no coordinateTransformations; scale derived from the shapes",
                    path,
                    where,
                )
        if scale is not None and translation is not None and outer_scale is not None:
            # dataset transform first, then the multiscale-level one
            scale = tuple(np.multiply(scale, outer_scale))
            translation = tuple(
                np.multiply(translation, outer_scale) + np.asarray(outer_translation)
            )
        scales.append(scale)
        translations.append(translation if translation is not None else tuple([0.0] * (ndim or 0)))
    return ParsedMultiscale(
        name=name if isinstance(name, str) else None,
        axes=axes,
        paths=paths,
        scales=scales,
        translations=translations,
        version=spec.version,
    )


def _parse_systems(
    ms: Mapping[str, Any],
    spec: NgffSpec,
    path: str,
    field: str,
    name: str | None,
    *,
    coordinate_system: str | None,
    parent: Frame | None,
    load: ArrayLoader | None,
) -> ParsedMultiscale:
    """A 0.6 (RFC-5) multiscale: levels placed in the chosen coordinate system."""
    resolved = resolve_multiscale(
        ms,
        path=path,
        field=field,
        coordinate_system=coordinate_system,
        parent=parent,
        load=load,
    )
    notes = list(resolved.notes)
    frame = resolved.frame
    moved = display_problem(frame)
    if moved:
        notes.append(f"coordinate system '{frame.name}' cannot be shown: {moved}")
        log.warning("%s: coordinate system %r not shown: %s", path, frame.name, moved)
        axes = resolved.intrinsic.axes
        frame = Frame(resolved.intrinsic.name, np.eye(len(axes) + 1), axes, axes)
    scales, translations, affine = split_placement(
        resolved.to_intrinsic, frame.matrix, path=path, field=field
    )
    return ParsedMultiscale(
        name=name,
        axes=frame.axes,
        paths=[ds["path"] for ds in ms["datasets"]],
        scales=list(scales),
        translations=translations,
        version=spec.version,
        world_affine=affine,
        frame=frame,
        label_links=resolved.label_links,
        notes=notes,
    )


def _float(value: Any) -> float | None:
    """``value`` as a float (infinities and NaN included), None when it is no number."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _number(value: Any) -> float | None:
    """``value`` as a finite float, else None."""
    out = _float(value)
    return out if out is not None and np.isfinite(out) else None


def parse_omero(omero: Any, n_channels: int, path: str = "") -> list[ChannelInfo]:
    """Channel infos from an ``omero`` block, robust to partial or invalid entries.

    Entries that cannot be used are skipped (with a logged warning) and the channel
    gets defaults; extra entries are ignored.  Never raises for bad ``omero`` data.
    With ``rdefs.model == "greyscale"`` every channel is shown in grey (colour
    ``FFFFFF``), as OMERO and napari-ome-zarr show it; the stored colours stay in
    the image's ``attrs``.  ``"color"`` (or no model) keeps the channel colours.
    """
    if omero is None:
        return []
    channels = omero.get("channels") if isinstance(omero, Mapping) else None
    if not isinstance(channels, list):
        log.warning("%s: 'omero' has no 'channels' list; ignored", path)
        return []
    if len(channels) != n_channels:
        log.warning(
            "%s: 'omero' lists %d channels, the image has %d; using what matches",
            path,
            len(channels),
            n_channels,
        )
    rdefs = omero.get("rdefs")
    greyscale = isinstance(rdefs, Mapping) and rdefs.get("model") == "greyscale"
    infos: list[ChannelInfo] = []
    for i in range(n_channels):
        raw = channels[i] if i < len(channels) else None
        default_label = f"channel {i}" if n_channels > 1 else ""
        if not isinstance(raw, Mapping):
            if raw is not None:
                log.warning("%s: omero.channels[%d] is not an object; ignored", path, i)
            infos.append(
                ChannelInfo(label=default_label, color=default_channel_color(i, n_channels))
            )
            continue
        label = raw.get("label")
        label = (
            str(label) if isinstance(label, (str, int, float)) and str(label) else default_label
        )
        color = normalize_color(raw.get("color"))
        if raw.get("color") is not None and color is None:
            log.warning(
                "%s: omero.channels[%d].color %r is not a colour; ignored",
                path,
                i,
                raw.get("color"),
            )
        window = None
        w = raw.get("window")
        if isinstance(w, Mapping):
            start, end = _float(w.get("start")), _float(w.get("end"))
            lo, hi = _number(w.get("min")), _number(w.get("max"))
            if start is None or end is None:
                problem: str | None = "start and end must be numbers"
            else:
                problem = window_problem(start, end)
                if problem is None:
                    low = lo if lo is not None else min(start, 0.0)
                    window = Window(start, end, low, hi if hi is not None else end)
            if problem is not None:
                log.warning(
                    "%s: omero.channels[%d].window %r unusable (%s); ignored",
                    path,
                    i,
                    dict(w),
                    problem,
                )
        active = raw.get("active")
        infos.append(
            ChannelInfo(
                label=label,
                color=color or default_channel_color(i, n_channels),
                window=window,
                active=active if isinstance(active, bool) else True,
                inverted=bool(raw.get("inverted", False))
                if isinstance(raw.get("inverted", False), bool)
                else False,
            )
        )
    if greyscale:
        infos = [replace(info, color="FFFFFF") for info in infos]
    return infos


def parse_image_label(
    image_label: Any, path: str = ""
) -> tuple[dict[int, tuple[float, float, float, float]], list[dict[str, Any]]]:
    """Colours (label value to RGBA 0-1) and properties from an ``image-label`` block."""
    colors: dict[int, tuple[float, float, float, float]] = {}
    props: list[dict[str, Any]] = []
    if not isinstance(image_label, Mapping):
        return colors, props
    raw_colors, raw_props = image_label.get("colors"), image_label.get("properties")
    for key, value in (("colors", raw_colors), ("properties", raw_props)):
        if value is not None and not isinstance(value, list):
            log.warning("%s: image-label.%s is not a list; ignored", path, key)
    for i, entry in enumerate(raw_colors if isinstance(raw_colors, list) else []):
        try:
            value = int(entry["label-value"])
            rgba = [float(c) for c in entry["rgba"]]
            if len(rgba) == 3:
                rgba.append(255.0)
            if len(rgba) != 4:
                raise ValueError("rgba needs 4 values")
            colors[value] = tuple(min(max(c / 255.0, 0.0), 1.0) for c in rgba)  # type: ignore[assignment]
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("%s: image-label.colors[%d] unusable (%s); ignored", path, i, exc)
    for entry in raw_props if isinstance(raw_props, list) else []:
        if isinstance(entry, Mapping) and "label-value" in entry:
            props.append(dict(entry))
    return colors, props


# -- emitting -------------------------------------------------------------------------------


def _round(values: Sequence[float]) -> list[float]:
    # Keep metadata readable: 1e-12 relative noise from float maths is not information.
    return [float(f"{float(v):.12g}") for v in values]


def _axes_json(axes: Sequence[Axis], *, orientation: bool = False) -> list[dict[str, Any]]:
    out = []
    for axis in axes:
        entry: dict[str, Any] = {"name": axis.name}
        if axis.type:
            entry["type"] = axis.type
        if axis.unit and axis.type in ("space", "time"):
            entry["unit"] = axis.unit
        if orientation and axis.orientation and axis.type == "space":
            entry["orientation"] = {"type": "anatomical", "value": axis.orientation}
        out.append(entry)
    return out


def emit_omero(
    channels: Sequence[ChannelInfo], dtype: Any, name: str | None = None
) -> dict[str, Any]:
    """An ``omero`` block valid for 0.4 and 0.5 (``color`` and a full ``window`` each)."""
    dt = np.dtype(dtype)
    if np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        dmin, dmax = float(info.min), float(info.max)
    else:
        dmin, dmax = 0.0, 1.0
    out_channels = []
    for ch in channels:
        win = ch.window or Window(dmin, dmax, dmin, dmax)
        out_channels.append(
            {
                "label": ch.label,
                "color": normalize_color(ch.color) or "FFFFFF",
                "active": bool(ch.active),
                "inverted": bool(ch.inverted),
                "coefficient": 1,
                "family": "linear",
                "window": {
                    "start": float(win.start),
                    "end": float(win.end),
                    "min": float(min(win.min, win.start)),
                    "max": float(max(win.max, win.end)),
                },
            }
        )
    block: dict[str, Any] = {
        "channels": out_channels,
        # "greyscale" shows every channel in grey: only right when all of them are
        "rdefs": {
            "model": "greyscale" if all(c["color"] == "FFFFFF" for c in out_channels) else "color"
        },
    }
    if name:
        block["name"] = name
    return block


def _wrap(spec: NgffSpec, content: dict[str, Any]) -> dict[str, Any]:
    if spec.under_ome_key:
        return {"ome": {"version": spec.version, **content}}
    return content


def _emitting(version: str) -> NgffSpec:
    spec = spec_for(version)
    if not spec.emittable:
        have = ", ".join(v for v, s in NGFF_SPECS.items() if s.emittable)
        raise ValueError(f"OME-NGFF {spec.version} is read-only here; write one of {have}")
    return spec


#: names of the coordinate systems this package writes in 0.6 metadata
INTRINSIC_SYSTEM = "intrinsic"
WORLD_SYSTEM = "world"

#: NIfTI ``sform_code``/``qform_code`` values and the name the world system of a
#: NIfTI-born image gets in 0.6 metadata (other images: :data:`WORLD_SYSTEM`).
NIFTI_SYSTEMS = {1: "scanner", 2: "aligned", 3: "talairach", 4: "mni152", 5: "template"}

#: RFC-4 orientation of the world axes of a NIfTI-born image: the reader shows it
#: with ``(z, y, x) = (S, A, R)``, RAS+ read backwards (see :mod:`.nifti`).
NIFTI_ORIENTATION = {
    "z": "inferior-to-superior",
    "y": "posterior-to-anterior",
    "x": "left-to-right",
}


def _nifti_header(image: MultiscaleImage) -> Mapping[str, Any] | None:
    nifti = image.attrs.get("nifti") if isinstance(image.attrs, Mapping) else None
    return nifti if isinstance(nifti, Mapping) else None


def world_system_name(image: MultiscaleImage) -> str:
    """The name of the 0.6 system a world affine leads to: from the NIfTI code, else ``world``.

    A NIfTI-born image (``attrs["nifti"]``) names it after its ``sform_code``, else its
    ``qform_code`` (:data:`NIFTI_SYSTEMS`, e.g. ``scanner``); any other image
    :data:`WORLD_SYSTEM`.
    """
    nifti = _nifti_header(image)
    for key in ("sform_code", "qform_code"):
        code = nifti.get(key) if nifti is not None else None
        if isinstance(code, int) and code in NIFTI_SYSTEMS:
            return NIFTI_SYSTEMS[code]
    return WORLD_SYSTEM


def anatomical_axes(image: MultiscaleImage) -> tuple[Axis, ...]:
    """``image.axes``, a NIfTI-born image's spatial ones with their RFC-4 orientation.

    The world of an image read from NIfTI is ``(z, y, x) = (S, A, R)``
    (:data:`NIFTI_ORIENTATION`); axes that already carry an orientation, and the
    axes of any other image, are returned as they are.
    """
    if _nifti_header(image) is None:
        return tuple(image.axes)
    return tuple(
        replace(a, orientation=NIFTI_ORIENTATION[a.name])
        if a.type == "space" and a.orientation is None and a.name in NIFTI_ORIENTATION
        else a
        for a in image.axes
    )


def emit_coordinate_systems(
    image: MultiscaleImage, *, world: str | None = None
) -> list[dict[str, Any]]:
    """0.6 ``coordinateSystems`` of ``image``: ``intrinsic``, and a world one with a world affine.

    The model's axes (names, types, units, RFC-4 orientation, filled in for
    NIfTI-born images by :func:`anatomical_axes`) describe the system the image is
    shown in: the intrinsic one, or the world system (named ``world``, default
    :func:`world_system_name`) when the image has a ``world_affine``.  Then
    ``intrinsic`` keeps names, types and units (the level scales are in those
    units) and orientation goes with the world system only.
    """
    axes = anatomical_axes(image)
    if image.world_affine is None:
        return [{"name": INTRINSIC_SYSTEM, "axes": _axes_json(axes, orientation=True)}]
    return [
        {"name": INTRINSIC_SYSTEM, "axes": _axes_json(axes)},
        {"name": world or world_system_name(image), "axes": _axes_json(axes, orientation=True)},
    ]


def emit_dataset_transformations(
    scale: Sequence[float],
    translation: Sequence[float],
    path: str,
    system: str = INTRINSIC_SYSTEM,
) -> list[dict[str, Any]]:
    """0.6 ``coordinateTransformations`` of one dataset: array ``path`` -> ``system``.

    A single ``scale``, or a ``sequence`` of scale then translation, the two forms
    0.6 allows there.  Scale factors must be positive (the 0.6 schema).
    """
    if any(not float(v) > 0 for v in scale):
        raise ValueError(
            f"dataset '{path}': OME-NGFF 0.6 scale factors must be positive, not {list(scale)}"
        )
    ends = {"input": {"path": path}, "output": {"name": system}}
    scale_t = {"type": "scale", "scale": _round(scale)}
    if not any(float(t) != 0 for t in translation):
        return [{**scale_t, **ends}]
    translation_t = {"type": "translation", "translation": _round(translation)}
    return [{"type": "sequence", **ends, "transformations": [scale_t, translation_t]}]


def _world_transformation(affine: np.ndarray, world: str) -> dict[str, Any]:
    """The intrinsic -> ``world`` transformation of ``affine``, in its least expressive form.

    The 0.6 text asks writers to prefer a sequence of simpler transformations to
    an equivalent affine: scale, mapAxis (a permutation), rotation, each followed
    by a translation when there is one; an affine otherwise.
    """
    m = np.asarray(affine, dtype=float)
    n = m.shape[0] - 1
    lin, shift = m[:n, :n], m[:n, n]
    ends = {
        "input": {"name": INTRINSIC_SYSTEM},
        "output": {"name": world},
        "name": f"{INTRINSIC_SYSTEM}_to_{world}",
    }
    first: dict[str, Any] | None = None
    parts = diagonal_parts(np.vstack([np.hstack([lin, np.zeros((n, 1))]), np.eye(n + 1)[-1:]]))
    is_permutation = (
        bool(np.all((lin == 0) | (lin == 1)))
        and bool(np.all(lin.sum(axis=0) == 1))
        and bool(np.all(lin.sum(axis=1) == 1))
    )
    if np.array_equal(lin, np.eye(n)):
        translation_only = {"type": "translation", "translation": _round(shift.tolist())}
        return {**translation_only, **ends} if np.any(shift != 0) else {"type": "identity", **ends}
    if parts is not None and all(v > 0 for v in parts[0]):
        first = {"type": "scale", "scale": _round(parts[0])}
    elif is_permutation:
        first = {"type": "mapAxis", "mapAxis": [int(np.argmax(row)) for row in lin]}
    elif np.allclose(lin @ lin.T, np.eye(n), atol=1e-9) and np.isclose(np.linalg.det(lin), 1.0):
        first = {"type": "rotation", "rotation": [_round(row.tolist()) for row in lin]}
    if first is None:
        return {"type": "affine", "affine": [_round(row.tolist()) for row in m[:n]], **ends}
    if not np.any(shift != 0):
        return {**first, **ends}
    translation = {"type": "translation", "translation": _round(shift.tolist())}
    return {"type": "sequence", **ends, "transformations": [first, translation]}


def _multiscale_systems(
    image: MultiscaleImage, paths: Sequence[str], world: str | None
) -> dict[str, Any]:
    """The 0.6 ``multiscales`` entry of ``image`` (without name, type, metadata)."""
    world = world or world_system_name(image)
    datasets = [
        {
            "path": p,
            "coordinateTransformations": emit_dataset_transformations(
                level.scale, level.translation, p
            ),
        }
        for p, level in zip(paths, image.levels)
    ]
    ms: dict[str, Any] = {
        "coordinateSystems": emit_coordinate_systems(image, world=world),
        "datasets": datasets,
    }
    if image.world_affine is not None:
        ms["coordinateTransformations"] = [_world_transformation(image.world_affine, world)]
    return ms


def emit_image_attrs(
    image: MultiscaleImage,
    version: str,
    paths: Sequence[str] | None = None,
    *,
    method: str | None = None,
    with_omero: bool = True,
    world: str | None = None,
) -> dict[str, Any]:
    """The group attributes describing ``image`` as OME-NGFF ``version`` (0.4, 0.5, 0.6).

    For 0.6 the axes become the ``intrinsic`` coordinate system (with RFC-4
    orientation), every level a scale (and translation) into it, and a
    ``world_affine`` a transformation from ``intrinsic`` to a world system named
    ``world`` (default :func:`world_system_name`).  Older versions store no world
    affine.
    """
    spec = _emitting(version)
    paths = list(paths) if paths is not None else [str(i) for i in range(image.num_levels)]
    ms: dict[str, Any]
    if spec.axes_style == "systems":
        ms = _multiscale_systems(image, paths, world)
    else:
        datasets = []
        for p, level in zip(paths, image.levels):
            transforms: list[dict[str, Any]] = [{"type": "scale", "scale": _round(level.scale)}]
            if any(t != 0 for t in level.translation):
                transforms.append(
                    {"type": "translation", "translation": _round(level.translation)}
                )
            datasets.append({"path": p, "coordinateTransformations": transforms})
        ms = {"axes": _axes_json(image.axes), "datasets": datasets}
    if not spec.under_ome_key:
        ms = {"version": spec.version, **ms}
    if image.name:
        ms["name"] = image.name
    if method:
        ms["type"] = method
        ms["metadata"] = {"method": f"napari_zarrnii.{method}"}
    content: dict[str, Any] = {"multiscales": [ms]}
    if with_omero and not image.is_label:
        content["omero"] = emit_omero(image.channel_infos(), image.dtype, image.name)
    if image.is_label:
        content["image-label"] = emit_label_attrs(image, spec)
    return _wrap(spec, content)


def in_parent_world(label: MultiscaleImage, parent: MultiscaleImage) -> MultiscaleImage:
    """``label`` placed in ``parent``'s world, as a 0.6 label image under ``labels/``.

    0.6 takes a label image's intrinsic system to be its image's, and a reader may
    open the label alone: it gets the parent's world affine (cut to the label's
    axes, matched by name) and the parent's axis orientations.  A label without a
    world affine of its own is taken to be in the parent's intrinsic coordinates; one
    with its own keeps its place when the two affines differ by a scale and
    translation (folded into its levels), else it is placed with the parent's
    (logged).  Where the parent's affine cannot be cut to the label's axes, the
    label keeps its own.
    """
    oriented = {a.name: a.orientation for a in anatomical_axes(parent)}
    axes = tuple(
        replace(a, orientation=a.orientation or oriented.get(a.name)) if a.type == "space" else a
        for a in label.axes
    )
    affine = None
    if parent.world_affine is not None:
        whole = Frame("world", np.asarray(parent.world_affine, float), parent.axes, parent.axes)
        cut = restrict_frame(whole, axes)
        if cut is None:
            log.warning(
                "label %r: the image's world affine cannot be cut to its axes %s; not applied",
                label.name,
                label.axis_names,
            )
            return label.replace(axes=axes)
        affine = cut.matrix
    levels = list(label.levels)
    own = label.world_affine
    if own is not None:
        target = affine if affine is not None else np.eye(len(axes) + 1)
        parts = diagonal_parts(np.linalg.solve(target, np.asarray(own, float)))
        if parts is not None and all(v > 0 for v in parts[0]):
            scale, shift = np.asarray(parts[0]), np.asarray(parts[1])
            levels = [
                Level(
                    lvl.path,
                    lvl.data,
                    tuple(float(v) for v in scale * lvl.scale),
                    tuple(float(v) for v in scale * lvl.translation + shift),
                )
                for lvl in levels
            ]
        else:
            log.warning(
                "label %r is rotated against its image; written in its image's world, "
                "which 0.6 readers apply to label images",
                label.name,
            )
    return label.replace(axes=axes, levels=levels, world_affine=affine)


def emit_label_attrs(image: MultiscaleImage, spec: NgffSpec) -> dict[str, Any]:
    """The ``image-label`` block of a label image."""
    block: dict[str, Any] = {"source": {"image": "../../"}}
    if not spec.under_ome_key:
        block["version"] = spec.version
    if image.label_colors:
        block["colors"] = [
            {"label-value": int(v), "rgba": [round(c * 255) for c in rgba]}
            for v, rgba in sorted(image.label_colors.items())
        ]
    if image.label_properties:
        block["properties"] = [dict(p) for p in image.label_properties]
    return block


def emit_labels_group_attrs(names: Sequence[str], version: str) -> dict[str, Any]:
    """Attributes of the ``labels`` group listing the label images."""
    return _wrap(_emitting(version), {"labels": list(names)})
