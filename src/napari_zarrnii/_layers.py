"""Model <-> napari layer data and metadata, in one place.

:func:`image_to_layer_data` turns a :class:`~.core.model.MultiscaleImage` into napari
``LayerDataTuple`` s (one image layer per channel, one labels layer per label image);
:func:`layers_to_image` does the reverse for the writer and the widgets.  Layer data
are the lazy arrays of the model, never a copy: stored levels (zarr arrays, plate
mosaics) are read through the shared chunk cache (:mod:`.core.cached`), which also
reads ahead of the view (:mod:`.core.prefetch`); :func:`layers_to_image` hands the
arrays beneath the cache back, so saving a layer does not flush what is on screen.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .core.lazy import LazyArray, select_index
from .core.model import (
    Axis,
    ChannelInfo,
    Level,
    MultiscaleImage,
    Window,
    axis_type_of,
    integer_factor,
)

__all__ = [
    "MAX_PLANE_BYTES",
    "MAX_PLANE_CHUNKS",
    "check_displayable",
    "colormap_for",
    "contrast_limits_for",
    "data_contrast_limits",
    "image_to_layer_data",
    "layers_to_image",
]

log = logging.getLogger(__name__)

#: omero colours napari knows by name (nicer names in the layer controls)
_NAMED = {
    "FF0000": "red",
    "00FF00": "green",
    "0000FF": "blue",
    "FF00FF": "magenta",
    "00FFFF": "cyan",
    "FFFF00": "yellow",
    "FFFFFF": "gray",
}
_COLOR_OF_NAME = {v: k for k, v in _NAMED.items()} | {"grey": "FFFFFF", "gray_r": "FFFFFF"}

#: napari accepts pint units; NGFF units are pint names, "pixel" where none is given
_DEFAULT_UNIT = "pixel"


def colormap_for(color: str) -> str:
    """napari colormap for an omero colour: a named map, or a black-to-colour map."""
    return _NAMED.get(color.upper(), f"#{color.lower()}")


#: A coarsest level up to this many elements per channel is read whole for contrast.
CONTRAST_SAMPLE = 1 << 20


def contrast_limits_for(info: ChannelInfo, dtype: Any) -> tuple[float, float]:
    """Contrast limits without reading data: the omero window, else the dtype range."""
    if info.window is not None and info.window.end > info.window.start:
        return float(info.window.start), float(info.window.end)
    dt = np.dtype(dtype)
    if np.issubdtype(dt, np.integer):
        ii = np.iinfo(dt)
        return float(ii.min), float(ii.max)
    return 0.0, 1.0


def data_contrast_limits(data: Any) -> tuple[float, float] | None:
    """Contrast limits from the data of a (coarsest) level: its minimum and maximum.

    As napari does for multiscale data (``calc_data_range`` of the coarsest level):
    a level of at most :data:`CONTRAST_SAMPLE` elements is read whole; a larger one
    through a central patch of its middle plane of about that many elements.  NaNs
    are ignored; a constant image gets ``(min(v, 0), max(v, 1))``.  None when there
    is nothing to read (empty, or all NaN).
    """
    shape = tuple(int(n) for n in data.shape)
    if not shape or math.prod(shape) == 0:
        return None
    if math.prod(shape) <= CONTRAST_SAMPLE:
        key: tuple[Any, ...] = tuple(slice(None) for _ in shape)
    else:  # middle plane, central patch of the last two axes
        side = math.isqrt(CONTRAST_SAMPLE)
        key = tuple(n // 2 for n in shape[:-2]) + tuple(
            slice(max(0, n // 2 - side // 2), max(0, n // 2 - side // 2) + side)
            for n in shape[-2:]
        )
    values = np.asarray(data[key])
    if values.size == 0:
        return None
    if np.issubdtype(values.dtype, np.floating):
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return None
        lo, hi = float(finite.min()), float(finite.max())
    else:
        lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        return min(lo, 0.0), max(hi, 1.0)
    return lo, hi


def _drop(values: Sequence[Any], axis: int | None) -> list[Any]:
    return [v for i, v in enumerate(values) if i != axis]


def _affine_without(affine: np.ndarray | None, axis: int | None) -> np.ndarray | None:
    if affine is None:
        return None
    if axis is None:
        return np.asarray(affine, dtype=float)
    keep = [i for i in range(affine.shape[0]) if i != axis]
    return np.asarray(affine, dtype=float)[np.ix_(keep, keep)]


def _take(data: Any, axis: int | None, index: int) -> Any:
    """Channel ``index`` of ``data`` along ``axis``, lazily."""
    if axis is None:
        return data
    return select_index(data, axis, index)


def _base_metadata(image: MultiscaleImage) -> dict[str, Any]:
    return {
        "napari_zarrnii": {
            "source": image.source,
            "ngff_version": image.ngff_version,
            "name": image.name,
            "axes": [
                {"name": a.name, "type": a.type, "unit": a.unit, "orientation": a.orientation}
                for a in image.axes
            ],
            "level_paths": [lvl.path for lvl in image.levels],
            "notes": list(image.notes),
        },
        "ome": image.attrs,
    }


def _napari_unit(unit: str | None) -> str:
    """``unit`` if napari (pint) understands it, else ``'pixel'`` with a logged warning.

    NGFF files in the wild carry units pint does not know (``'arbitrary unit'``, ...);
    napari refuses to create a layer with one, which would make the image unreadable.
    """
    if not unit:
        return _DEFAULT_UNIT
    try:
        import pint

        pint.get_application_registry().parse_expression(unit).units  # noqa: B018
    except ImportError:  # pragma: no cover - napari depends on pint
        return unit
    # pint's parser raises anything from UndefinedUnitError to AssertionError and
    # tokenize errors for text that is no unit.
    except Exception:  # noqa: BLE001
        log.warning("unit %r is unknown to napari; shown as %r", unit, _DEFAULT_UNIT)
        return _DEFAULT_UNIT
    return unit


def _spatial_kwargs(image: MultiscaleImage, drop_axis: int | None) -> dict[str, Any]:
    level0 = image.levels[0]
    kwargs: dict[str, Any] = {
        "scale": _drop(level0.scale, drop_axis),
        "translate": _drop(level0.translation, drop_axis),
        "axis_labels": _drop(image.axis_names, drop_axis),
        "units": [_napari_unit(u) for u in _drop(image.units, drop_axis)],
    }
    affine = _affine_without(image.world_affine, drop_axis)
    if affine is not None:
        kwargs["affine"] = affine
    return kwargs


def _viewed_levels(image: MultiscaleImage) -> list[Any]:
    """The image's levels as the viewer reads them: through the shared chunk cache.

    The cache follows the budget and read-ahead set in napari's Preferences, whichever
    way the image reaches napari (reader, widget, sample).
    """
    from ._napari_settings import follow_plugin_settings
    from .core.cached import cached_levels

    follow_plugin_settings()
    return cached_levels(
        [lvl.data for lvl in image.levels],
        source=image.source or image.name or "",
        channel_axis=image.channel_axis,
    )


def _level_data(levels: Sequence[Any], axis: int | None, index: int) -> Any:
    data = [_take(lvl, axis, index) for lvl in levels]
    return data if len(data) > 1 else data[0]


def _cache_metadata(levels: Sequence[Any]) -> dict[str, Any] | None:
    from .core.cached import CachedArray

    if not any(isinstance(lvl, CachedArray) for lvl in levels):
        return None
    from .core.cache import describe_cache
    from .core.prefetch import prefetcher

    return describe_cache({"prefetch": prefetcher().enabled})


def image_to_layer_data(image: MultiscaleImage, *, with_labels: bool = True) -> list[tuple]:
    """napari layer data tuples for an image: one layer per channel, then its labels.

    Every level becomes a level of one napari multiscale layer; names, colours,
    contrast limits and visibility come from ``omero``; scale, translation, axis
    labels and units from the multiscale metadata.  Nothing is read but, for a
    channel without an ``omero`` window, its coarsest level (for contrast limits).

    Raises
    ------
    NotDisplayableError
        napari cannot show the image or one of its labels (see :func:`check_displayable`).
    """
    check_displayable(image)
    for label in image.labels.values() if with_labels else ():
        check_displayable(label)
    if image.is_label:
        return [_labels_layer(image, image.name or "labels")]
    axis = image.channel_axis
    infos = image.channel_infos()
    base_name = image.name or (image.source or "image").rstrip("/").rsplit("/", 1)[-1]
    levels = _viewed_levels(image)
    cache = _cache_metadata(levels)
    layers: list[tuple] = []
    for c, info in enumerate(infos):
        if len(infos) > 1:
            name = info.label or f"{base_name} [{c}]"
        else:
            name = info.label or base_name
        metadata = _base_metadata(image)
        metadata["napari_zarrnii"]["channel_index"] = c if axis is not None else None
        metadata["napari_zarrnii"]["channel"] = {
            "label": info.label,
            "color": info.color,
            "window": None if info.window is None else vars(info.window),
            "active": info.active,
        }
        if cache is not None:
            metadata["napari_zarrnii"]["cache"] = dict(cache)
        data = _level_data(levels, axis, c)
        kwargs: dict[str, Any] = {
            "name": name,
            "colormap": colormap_for(info.color),
            "contrast_limits": _contrast_limits(info, data, image.dtype),
            "visible": info.active,
            "multiscale": image.num_levels > 1,
            "metadata": metadata,
            "blending": "additive" if len(infos) > 1 else "translucent",
            **_spatial_kwargs(image, axis),
        }
        layers.append((data, kwargs, "image"))
    if with_labels:
        for label_name, label in image.labels.items():
            layers.append(_labels_layer(label, label_name))
    return layers


#: napari reads one whole plane (the last two axes) of a layer's coarsest level to show
#: it and to draw its thumbnail.  Above these the image is refused rather than read:
#: zarr keeps about 2 KiB of bookkeeping per chunk of a read, so a plane of millions of
#: tiny chunks takes gigabytes before one voxel is shown.
MAX_PLANE_CHUNKS = 2**16
MAX_PLANE_BYTES = 2**30


def check_displayable(image: MultiscaleImage) -> None:
    """Refuse, before napari tries, an image napari cannot show or cannot show in bounds.

    Raises
    ------
    NotDisplayableError
        Complex (or non-numeric) voxels; fewer than two axes once the channel axis is
        split off; or a coarsest level one plane of which spans more than
        :data:`MAX_PLANE_CHUNKS` stored chunks or :data:`MAX_PLANE_BYTES` bytes.  The
        message names the path and says how to convert the image.
    """
    from ._errors import NotDisplayableError
    from .core.lazy import storage_chunks

    where = image.source or image.name or "image"
    dtype = image.dtype
    if dtype.kind not in "biuf":
        raise NotDisplayableError(
            f"{where}: voxels of type {dtype} cannot be shown by napari; read it with "
            "ZarrNii and write a real-valued image (e.g. numpy.abs of the voxels) to show"
        )
    shown = [a.name for i, a in enumerate(image.axes) if i != image.channel_axis]
    if len(shown) < 2:
        raise NotDisplayableError(
            f"{where}: napari shows images of 2 or more dimensions; this one has "
            f"{len(shown)} ({', '.join(shown) or 'none'}) besides its channels"
        )
    coarsest = image.levels[-1]
    shape = coarsest.shape[-2:]
    chunks = storage_chunks(coarsest.data) or coarsest.shape
    n_chunks = math.prod(-(-n // max(int(c), 1)) for n, c in zip(shape, chunks[-2:]))
    n_bytes = math.prod(shape) * dtype.itemsize
    if n_chunks > MAX_PLANE_CHUNKS or n_bytes > MAX_PLANE_BYTES:
        raise NotDisplayableError(
            f"{where}: level '{coarsest.path}', the coarsest, is too large to show: one "
            f"{'x'.join(map(str, shape))} plane spans {n_chunks} chunks and {n_bytes} bytes "
            f"(napari reads a whole plane; limits {MAX_PLANE_CHUNKS} chunks, "
            f"{MAX_PLANE_BYTES} bytes); write a pyramid first: "
            "napari-zarrnii convert IN OUT.ome.zarr"
        )


def _contrast_limits(info: ChannelInfo, data: Any, dtype: Any) -> tuple[float, float]:
    """The omero window (nothing read); else the range of the coarsest level's data."""
    found = None
    if info.window is None or info.window.end <= info.window.start:
        found = data_contrast_limits(data[-1] if isinstance(data, list) else data)
    return found or contrast_limits_for(info, dtype)


def _labels_layer(label: MultiscaleImage, name: str) -> tuple:
    axis = label.channel_axis  # label images may keep a channel axis of size 1
    metadata = _base_metadata(label)
    levels = _viewed_levels(label)
    cache = _cache_metadata(levels)
    if cache is not None:
        metadata["napari_zarrnii"]["cache"] = cache
    kwargs: dict[str, Any] = {
        "name": name,
        "multiscale": label.num_levels > 1,
        "metadata": metadata,
        "opacity": 0.5,
        **_spatial_kwargs(label, axis),
    }
    if label.label_colors:
        colors: dict[int | None, Any] = {None: (0.5, 0.5, 0.5, 1.0), 0: (0.0, 0.0, 0.0, 0.0)}
        colors.update({int(k): tuple(v) for k, v in label.label_colors.items()})
        kwargs["colormap"] = colors
    if label.label_properties:
        keys = sorted({k for p in label.label_properties for k in p if k != "label-value"})
        props: dict[str, list[Any]] = {"index": [p["label-value"] for p in label.label_properties]}
        for key in keys:
            props[key] = [p.get(key) for p in label.label_properties]
        kwargs["features"] = props
    return (_level_data(levels, axis, 0), kwargs, "labels")


# -- napari layers -> model (writer, widgets) ---------------------------------------------


def _as_tuple(layer: Any) -> tuple[Any, dict[str, Any], str]:
    """(data, state, layer type) for a napari layer or an npe2 layer-data tuple."""
    if isinstance(layer, tuple):
        data, meta, kind = (*layer, "image")[:3] if len(layer) == 2 else layer
        return data, dict(meta or {}), str(kind)
    data, meta, kind = layer.as_layer_data_tuple()
    return data, dict(meta), str(kind)


def _levels_of(data: Any, meta: dict[str, Any]) -> list[Any]:
    """A layer's levels, read beneath the viewer's chunk cache."""
    if meta.get("multiscale") or (
        isinstance(data, (list, tuple)) and len(data) > 0 and hasattr(data[0], "shape")
    ):
        levels = list(data)
    else:
        levels = [data]
    return [lvl.uncached() if isinstance(lvl, LazyArray) else lvl for lvl in levels]


def _axes_from_meta(meta: dict[str, Any], ndim: int) -> tuple[Axis, ...]:
    stored = ((meta.get("metadata") or {}).get("napari_zarrnii") or {}).get("axes")
    if stored:
        stored_axes = [a for a in stored if a.get("type") != "channel"]
        if len(stored_axes) == ndim:
            return tuple(
                Axis(a["name"], a.get("type"), a.get("unit"), a.get("orientation"))
                for a in stored_axes
            )
    names = [str(n) for n in (meta.get("axis_labels") or [])]
    generic = len(names) != ndim or any(
        n.startswith("axis") or n.lstrip("-").isdigit() for n in names
    )
    if generic or len(set(names)) != len(names):
        names = ["t", "z", "y", "x"][-ndim:] if ndim <= 4 else ["t", "c", "z", "y", "x"][-ndim:]
    units = list(meta.get("units") or [])
    axes = []
    for i, n in enumerate(names):
        kind = axis_type_of(n.lower())
        text = str(units[i]) if i < len(units) and units[i] is not None else ""
        unit = None if text in ("pixel", "dimensionless", "") else text
        axes.append(Axis(n, kind, unit))
    return tuple(axes)


def _linear(meta: dict[str, Any], ndim: int, name: str) -> np.ndarray:
    """A layer's ``rotate @ shear`` (napari's order), as an ``ndim x ndim`` matrix.

    napari's layer state holds ``rotate`` as a matrix and ``shear`` as the upper
    triangle (row by row) or a matrix; a 2-D ``rotate`` may be an angle in degrees.
    """
    rotate: Any = meta.get("rotate")
    shear: Any = meta.get("shear")
    rot = np.eye(ndim)
    if rotate is not None:
        if isinstance(rotate, (int, float, np.number)):
            a = np.radians(float(rotate))
            sub = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        else:
            sub = np.asarray(rotate, dtype=float)
        if sub.ndim != 2 or sub.shape[0] != sub.shape[1] or sub.shape[0] > ndim:
            raise ValueError(f"layer '{name}': rotate {rotate!r} is no rotation matrix")
        rot[ndim - len(sub) :, ndim - len(sub) :] = sub
    sh = np.eye(ndim)
    if shear is not None:
        values = np.asarray(shear, dtype=float)
        if values.ndim == 1:
            n = (1 + math.isqrt(1 + 8 * values.size)) // 2
            if n * (n - 1) // 2 != values.size or n > ndim:
                raise ValueError(f"layer '{name}': shear {list(values)} has a strange size")
            sub = np.eye(n)
            sub[np.triu_indices(n, 1)] = values
        else:
            sub = values
        sh[ndim - len(sub) :, ndim - len(sub) :] = sub
    return rot @ sh


def _placement(
    meta: dict[str, Any], ndim: int, name: str, keep_rotation: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Level 0's scale and translation, and the world affine applied after them.

    napari places data at ``affine @ (rotate @ shear @ (scale * index) + translate)``.
    Without rotate and shear that is the layer's scale and translate with its
    ``affine`` after them.  With them, ``keep_rotation`` makes the world affine
    ``affine @ [rotate @ shear | translate]`` over a translation of 0 (as an
    oblique NIfTI is held), else they are dropped with a warning, as OME-NGFF
    0.4/0.5 cannot store them.
    """
    scale = np.asarray(meta.get("scale", [1.0] * ndim), dtype=float)
    translate = np.asarray(meta.get("translate", [0.0] * ndim), dtype=float)
    for what, values in (("scale", scale), ("translate", translate)):
        zero_ok = what == "translate"
        if (
            values.shape != (ndim,)
            or not np.all(np.isfinite(values))
            or (not zero_ok and np.any(values == 0))
        ):
            from ._errors import InvalidMetadataError

            need = "finite numbers" if zero_ok else "non-zero finite numbers"
            shown = ", ".join(f"{v:g}" for v in values.ravel())
            raise InvalidMetadataError(
                f"layer '{name}'",
                what,
                f"({shown}) must be {ndim} {need}, one per axis",
                kind="layer",
            )
    affine = np.asarray(meta.get("affine", np.eye(ndim + 1)), dtype=float)
    linear = _linear(meta, ndim, name)
    world = None if np.allclose(affine, np.eye(ndim + 1)) else affine
    if np.array_equal(linear, np.eye(ndim)):
        return scale, translate, world
    if not keep_rotation:
        log.warning(
            "layer '%s': rotate and shear cannot be stored in OME-NGFF 0.4/0.5; dropped "
            "(OME-NGFF 0.6 keeps them)",
            name,
        )
        return scale, translate, world
    placed = np.eye(ndim + 1)
    placed[:ndim, :ndim] = linear
    placed[:ndim, ndim] = translate
    return scale, np.zeros(ndim), affine @ placed


def _level_placements(levels: Sequence[Any], scale0: np.ndarray, translate0: np.ndarray):
    """Scale and translation of each level of a napari multiscale layer.

    napari places every level so that it covers the same world extent as level 0:
    the ratio of shapes is the downsampling factor and a block of ``f`` voxels is
    centred ``(f - 1) / 2`` fine voxels after the first one.  Where an integer factor
    gives the level's shape (``ceil`` or ``floor`` of ``n0 / f``, as pyramids of odd
    sizes have) that factor is used, not the shape ratio (37 -> 19 is a factor of 2).
    """
    shape0 = [int(n) for n in levels[0].shape]
    for data in levels:
        factors = np.array([integer_factor(n0, int(n)) for n0, n in zip(shape0, data.shape)])
        yield tuple(scale0 * factors), tuple(translate0 + (factors - 1) / 2 * scale0)


def _channel_from_meta(meta: dict[str, Any], dtype: Any) -> ChannelInfo:
    from .core.model import normalize_color

    cmap = meta.get("colormap")
    color = None
    if isinstance(cmap, str):
        color = _COLOR_OF_NAME.get(cmap) or normalize_color(cmap)
    elif cmap is not None:
        name = cmap.get("name") if isinstance(cmap, dict) else getattr(cmap, "name", None)
        colors = cmap.get("colors") if isinstance(cmap, dict) else getattr(cmap, "colors", None)
        color = _COLOR_OF_NAME.get(str(name)) if name else None
        if color is None and colors is not None and len(colors):
            color = normalize_color(np.asarray(colors, dtype=float)[-1])
    lo, hi = (
        float(v)
        for v in meta.get("contrast_limits") or contrast_limits_for(ChannelInfo(""), dtype)
    )
    dmin, dmax = contrast_limits_for(ChannelInfo(""), dtype)
    return ChannelInfo(
        label=str(meta.get("name") or ""),
        color=color or "FFFFFF",
        window=Window(lo, hi, min(dmin, lo), max(dmax, hi)),
        active=bool(meta.get("visible", True)),
    )


def layers_to_image(
    layers: Sequence[Any], name: str | None = None, *, keep_rotation: bool = False
) -> MultiscaleImage:
    """A model from napari layers (or npe2 layer-data tuples).

    Image layers become the channels of one image (stacked along a new ``c`` axis
    when there are several; they must share shape, scale and translation); labels
    layers become its label images.  With only labels layers, the first one is the
    image (a label image) and the others its labels.  Colours, contrast limits and
    visibility become the omero channels; nothing is computed or read.

    A layer's ``affine`` becomes the image's ``world_affine``.  Its ``rotate`` and
    ``shear`` join it with ``keep_rotation`` (for OME-NGFF 0.6, which stores
    them), else they are dropped with a warning.  Label images follow their image
    into its world.
    """
    items = [_as_tuple(ly) for ly in layers]
    images = [it for it in items if it[2] == "image"]
    labels = [it for it in items if it[2] == "labels"]
    others = [it[1].get("name") for it in items if it[2] not in ("image", "labels")]
    if others:
        raise ValueError(f"only image and labels layers can be saved as OME-Zarr, not {others}")
    if not images and not labels:
        raise ValueError("nothing to save: choose image or labels layers")
    if images:
        image = _images_to_model(images, name, keep_rotation)
    else:
        image = _labels_to_model(labels[0], keep_rotation, as_image=True)
        labels = labels[1:]
    for item in labels:
        label = _labels_to_model(item, keep_rotation)
        key = label.name or f"labels{len(image.labels)}"
        image.labels[key] = label
    return image


def _images_to_model(
    images: Sequence[tuple], name: str | None, keep_rotation: bool
) -> MultiscaleImage:
    data0, meta0, _ = images[0]
    levels0 = _levels_of(data0, meta0)
    name0 = str(meta0.get("name") or "image")
    if meta0.get("rgb"):
        raise ValueError(f"layer '{name0}': RGB layers are not supported; split the channels")
    for data, meta, _ in images[1:]:
        other = _levels_of(data, meta)
        if [tuple(d.shape) for d in other] != [tuple(d.shape) for d in levels0]:
            raise ValueError(
                f"layer '{meta.get('name')}': shape {tuple(other[0].shape)} differs from "
                f"'{name0}' {tuple(levels0[0].shape)}; save them separately"
            )
        if not (
            np.allclose(meta.get("scale", 1), meta0.get("scale", 1))
            and np.allclose(meta.get("translate", 0), meta0.get("translate", 0))
        ):
            raise ValueError(f"layer '{meta.get('name')}': scale/translate differ from '{name0}'")
        if keep_rotation and not np.allclose(
            _linear(meta, len(levels0[0].shape), str(meta.get("name"))),
            _linear(meta0, len(levels0[0].shape), name0),
        ):
            raise ValueError(f"layer '{meta.get('name')}': rotate/shear differ from '{name0}'")
    ndim = len(levels0[0].shape)
    axes = _axes_from_meta(meta0, ndim)
    scale0, translate0, world_affine = _placement(meta0, ndim, name0, keep_rotation)
    placements = list(_level_placements(levels0, scale0, translate0))
    multi = len(images) > 1
    pos = 1 if axes and axes[0].type == "time" else 0
    out_levels = []
    for i, (scale, translation) in enumerate(placements):
        arrays = [_levels_of(d, m)[i] for d, m, _ in images]
        if multi:
            import dask.array as da

            data = da.stack([da.asarray(a) for a in arrays], axis=pos)
            scale = (*scale[:pos], 1.0, *scale[pos:])
            translation = (*translation[:pos], 0.0, *translation[pos:])
        else:
            data = arrays[0]
        out_levels.append(Level(str(i), data, tuple(scale), tuple(translation)))
    if multi:
        axes = (*axes[:pos], Axis("c", "channel"), *axes[pos:])
    if world_affine is not None and multi:
        world_affine = np.insert(np.insert(world_affine, pos, 0, axis=0), pos, 0, axis=1)
        world_affine[pos, pos] = 1.0
    dtype = np.dtype(levels0[0].dtype)
    source = ((meta0.get("metadata") or {}).get("napari_zarrnii") or {}).get("source")
    return MultiscaleImage(
        axes=axes,
        levels=out_levels,
        name=name or (name0 if not multi else None),
        channels=[_channel_from_meta(m, dtype) for _, m, _ in images],
        source=source,
        attrs=_nifti_attrs(meta0),
        world_affine=world_affine,
    )


def _nifti_attrs(meta: dict[str, Any]) -> dict[str, Any]:
    """The NIfTI header summary of a layer read from NIfTI (its world is RAS+), else {}."""
    ome = (meta.get("metadata") or {}).get("ome")
    nifti = ome.get("nifti") if isinstance(ome, dict) else None
    return {"nifti": dict(nifti)} if isinstance(nifti, dict) else {}


def _labels_to_model(
    item: tuple, keep_rotation: bool = False, *, as_image: bool = False
) -> MultiscaleImage:
    """A label image.

    As the image, it is placed by its own ``affine`` (and, with ``keep_rotation``,
    rotation and shear).  As a label of an image it follows the image into its world,
    unless ``keep_rotation`` and it carries a rotation, shear or affine of its own:
    then that world is kept and the writer places it against its image's (a label
    sharing its image's rotate and translate lands on the image, not translated twice).
    """
    data, meta, _ = item
    levels = _levels_of(data, meta)
    name = str(meta.get("name") or "labels")
    ndim = len(levels[0].shape)
    axes = _axes_from_meta(meta, ndim)
    scale0, translate0, world_affine = _placement(meta, ndim, name, keep_rotation)
    if not as_image and not keep_rotation:  # it follows its image into the image's world
        world_affine = None
    out = [
        Level(str(i), d, s, t)
        for i, (d, (s, t)) in enumerate(zip(levels, _level_placements(levels, scale0, translate0)))
    ]
    colors: dict[int, tuple[float, float, float, float]] = {}
    cmap = meta.get("colormap")
    color_dict = (
        cmap.get("color_dict") if isinstance(cmap, dict) else getattr(cmap, "color_dict", None)
    )
    if color_dict:
        for key, value in color_dict.items():
            if key is None or str(key) in ("None", "0"):
                continue
            rgba = tuple(float(v) for v in np.asarray(value, dtype=float).ravel()[:4])
            colors[int(key)] = rgba  # type: ignore[assignment]
    source = ((meta.get("metadata") or {}).get("napari_zarrnii") or {}).get("source")
    return MultiscaleImage(
        axes=axes,
        levels=out,
        name=name,
        is_label=True,
        label_colors=colors,
        source=source,
        world_affine=world_affine,
    )
