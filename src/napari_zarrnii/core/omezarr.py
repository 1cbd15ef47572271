"""Read OME-Zarr stores into :class:`~.model.MultiscaleImage` (metadata only).

Handles NGFF 0.1-0.5 images, their ``labels/``, bioformats2raw layouts (series 0, the
others listed), HCS plates (a lazy mosaic of the first field of every well) and single
wells.  Opening reads group and array metadata and nothing else: the levels are the
zarr arrays themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import zarr

from .._errors import InvalidMetadataError, NotOmeZarrError, ZarrNiiError
from .lazy import LazyArray
from .model import Level, MultiscaleImage, default_axes, integer_factor
from .ngff import ngff_attrs, parse_image_label, parse_multiscale, parse_omero, spec_for
from .store import is_url, normalize_source

__all__ = ["detect_layout", "open_group", "read_ome_zarr"]

log = logging.getLogger(__name__)


def open_group(source: Any, mode: Literal["r", "r+", "a", "w", "w-"] = "r") -> zarr.Group:
    """Open a zarr group (v2 or v3, local or URL) or raise NotOmeZarrError.

    A URL is opened read-only through :func:`~.remote.remote_store` (time-outs, metadata
    and encoded bytes kept in memory), as a group in one round trip.
    """
    src = normalize_source(source)
    node: zarr.Group | zarr.Array
    try:
        if mode == "r" and is_url(src):
            from .remote import remote_store

            node = zarr.open_group(remote_store(src), mode="r")
        elif mode == "r":
            node = zarr.open(src, mode=mode)
        else:
            node = zarr.open_group(src, mode=mode)
    except zarr.errors.ContainsArrayError as exc:
        raise NotOmeZarrError(f"{src}: is a zarr array, not an OME-Zarr image group") from exc
    except (FileNotFoundError, KeyError, zarr.errors.NodeTypeValidationError) as exc:
        raise NotOmeZarrError(f"{src}: not a zarr group ({type(exc).__name__}: {exc})") from exc
    except (ValueError, TypeError, OSError) as exc:
        raise NotOmeZarrError(f"{src}: cannot be opened as zarr ({exc})") from exc
    if not isinstance(node, zarr.Group):
        raise NotOmeZarrError(f"{src}: is a zarr array, not an OME-Zarr image group")
    return node


def _attrs(group: zarr.Group) -> dict[str, Any]:
    return dict(group.attrs.asdict())


def detect_layout(attrs: Mapping[str, Any]) -> str | None:
    """Which NGFF layout a group's attributes describe, or None if not OME-Zarr."""
    ome, _ = ngff_attrs(attrs)
    if "multiscales" in ome:
        return "image"
    if "plate" in ome:
        return "plate"
    if "well" in ome:
        return "well"
    if "bioformats2raw.layout" in ome or "bioformats2raw.layout" in attrs:
        return "bioformats2raw"
    if "labels" in ome:
        return "labels"
    return None


def read_ome_zarr(
    source: Any,
    *,
    multiscale: int = 0,
    series: int | str = 0,
    with_labels: bool = True,
    plate_level: int | None = None,
    group: zarr.Group | None = None,
) -> MultiscaleImage:
    """Read the image an OME-Zarr path points at, lazily.

    Parameters
    ----------
    source
        Local path or URL of an OME-Zarr image, bioformats2raw root, plate or well.
    multiscale
        Which entry of ``multiscales`` to read (the others are listed in ``notes``).
    series
        For a bioformats2raw layout, which series to open.
    with_labels
        Also read the label images under ``labels/``.
    plate_level
        For a plate: the finest pyramid level used in the mosaic (default: the first
        level whose mosaic is at most 16384 pixels wide).
    group
        The zarr group at ``source`` when the caller has it open already (the
        npe2 reader does, from deciding whether to claim the path).

    Raises
    ------
    NotOmeZarrError
        The path is not a zarr group or holds no OME metadata.
    InvalidMetadataError
        The metadata is present but wrong (the message names path and field).
    """
    src = normalize_source(source)
    if group is None:
        group = open_group(src)
    attrs = _attrs(group)
    layout = detect_layout(attrs)
    if layout == "image":
        return _read_image(group, src, attrs, multiscale=multiscale, with_labels=with_labels)
    if layout == "bioformats2raw":
        return _read_bioformats2raw(group, src, attrs, series=series, with_labels=with_labels)
    if layout == "plate":
        return _read_plate(group, src, attrs, plate_level=plate_level)
    if layout == "well":
        return _read_well(group, src, attrs, with_labels=with_labels)
    if layout == "labels":
        raise NotOmeZarrError(
            f"{src}: is a 'labels' group; open the image above it or one label image in it"
        )
    raise NotOmeZarrError(f"{src}: zarr group without OME-NGFF metadata")


def _join(src: str, path: str) -> str:
    return f"{src.rstrip('/')}/{path.strip('/')}"


def _node(group: zarr.Group, path: str, src: str, field: str) -> Any:
    """``group[path]``, or InvalidMetadataError naming ``field`` when it cannot be opened."""
    try:
        return group[path]
    except KeyError as exc:
        raise InvalidMetadataError(src, field, f"'{path}' does not exist") from exc
    except (ValueError, TypeError, OSError) as exc:  # damaged .zarray/zarr.json, codec, ...
        raise InvalidMetadataError(
            src, field, f"'{path}' cannot be opened ({type(exc).__name__}: {exc})"
        ) from exc


def _child_group(group: zarr.Group, path: str, src: str, field: str) -> zarr.Group:
    node = _node(group, path, src, field)
    if not isinstance(node, zarr.Group):
        raise InvalidMetadataError(src, field, f"'{path}' is not a group")
    return node


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _open_array(group: zarr.Group, path: str, src: str, field: str) -> zarr.Array:
    node = _node(group, path, src, field)
    if not isinstance(node, zarr.Array):
        raise InvalidMetadataError(src, field, f"'{path}' is a group, not an array")
    return node


def _read_image(
    group: zarr.Group,
    src: str,
    attrs: Mapping[str, Any],
    *,
    multiscale: int = 0,
    with_labels: bool = True,
) -> MultiscaleImage:
    ome, version = ngff_attrs(attrs)
    if version is None:
        log.warning("%s: multiscales has no version; reading as 0.4", src)
        version = "0.4"
    spec = spec_for(version, path=src)
    parsed = parse_multiscale(ome, spec.version, src, multiscale)
    if is_url(src):  # one round trip for the metadata of every level
        from .remote import fetch_metadata

        fetch_metadata(group, parsed.paths)
    arrays = [
        _open_array(group, p, src, f"multiscales[{multiscale}].datasets[{i}].path")
        for i, p in enumerate(parsed.paths)
    ]
    ndim = arrays[0].ndim
    if parsed.axes is not None:
        axes = parsed.axes
    else:
        try:
            axes = default_axes(ndim)
        except ValueError as exc:
            raise InvalidMetadataError(
                src, f"multiscales[{multiscale}].datasets[0]", str(exc)
            ) from exc
    for i, arr in enumerate(arrays):
        if arr.ndim != len(axes):
            raise InvalidMetadataError(
                src,
                f"multiscales[{multiscale}].datasets[{i}]",
                f"array '{parsed.paths[i]}' has {arr.ndim} dimensions, axes has {len(axes)}",
            )
    levels = []
    base_shape = arrays[0].shape
    for i, (path, arr) in enumerate(zip(parsed.paths, arrays)):
        scale = parsed.scales[i]
        translation = parsed.translations[i] or (0.0,) * ndim
        if scale is None:  # 0.1-0.3 store no scale: derive it from the shapes
            scale = tuple(
                (integer_factor(b, s) if a.type == "space" else 1.0)
                for a, b, s in zip(axes, base_shape, arr.shape)
            )
            translation = tuple(
                (f - 1) / 2 if a.type == "space" else 0.0 for a, f in zip(axes, scale)
            )
        if len(translation) != ndim:
            translation = (0.0,) * ndim
        levels.append(
            Level(
                path=path,
                data=arr,
                scale=tuple(map(float, scale)),
                translation=tuple(map(float, translation)),
            )
        )
    notes: list[str] = []
    multiscales = ome.get("multiscales") or []
    if len(multiscales) > 1:
        others = [
            (m.get("name") if isinstance(m, Mapping) else None) or f"#{k}"
            for k, m in enumerate(multiscales)
            if k != multiscale
        ]
        notes.append(f"other multiscales in this group: {', '.join(map(str, others))}")
        log.info("%s: %s", src, notes[-1])
    image_label = ome.get("image-label")
    is_label = image_label is not None
    image = MultiscaleImage(
        axes=tuple(axes),
        levels=levels,
        name=parsed.name,
        is_label=is_label,
        source=src,
        ngff_version=spec.version,
        attrs=dict(attrs),
        notes=notes,
    )
    if is_label:
        colors, props = parse_image_label(image_label, src)
        image.label_colors = colors
        image.label_properties = props
    else:
        image.channels = parse_omero(ome.get("omero"), image.num_channels, src)
    if with_labels and not is_label:
        image.labels = _read_labels(group, src, image)
    return image


def _read_labels(
    group: zarr.Group, src: str, parent: MultiscaleImage
) -> dict[str, MultiscaleImage]:
    try:
        labels_group = group["labels"]
    except KeyError:
        return {}
    except (ValueError, TypeError, OSError) as exc:
        log.warning("%s/labels: cannot be opened (%s); label images ignored", src, exc)
        parent.notes.append(f"labels cannot be opened: {exc}")
        return {}
    if not isinstance(labels_group, zarr.Group):
        return {}
    ome, _ = ngff_attrs(_attrs(labels_group))
    names = ome.get("labels")
    if not isinstance(names, list):
        log.warning("%s/labels: no 'labels' list; label images ignored", src)
        return {}
    out: dict[str, MultiscaleImage] = {}
    for name in names:
        if not isinstance(name, str):
            continue
        try:
            sub = labels_group[name]
            if not isinstance(sub, zarr.Group):
                raise NotOmeZarrError(f"{src}/labels/{name}: not a group")
            label = _read_image(sub, _join(src, f"labels/{name}"), _attrs(sub), with_labels=False)
        except (ZarrNiiError, KeyError, ValueError, TypeError, OSError) as exc:
            # A broken label must not hide the image: report it and go on.
            log.warning("%s/labels/%s: skipped (%s)", src, name, exc)
            parent.notes.append(f"label '{name}' skipped: {exc}")
            continue
        label.is_label = True
        label.name = label.name or name
        out[name] = label
    return out


def _read_bioformats2raw(
    group: zarr.Group, src: str, attrs: Mapping[str, Any], *, series: int | str, with_labels: bool
) -> MultiscaleImage:
    names: list[str] = []
    try:
        ome_group = group["OME"]
        if isinstance(ome_group, zarr.Group):
            ome_attrs, _ = ngff_attrs(_attrs(ome_group))
            listed = ome_attrs.get("series")
            if isinstance(listed, list):
                names = [str(s) for s in listed]
    except KeyError:
        pass
    if not names:  # without OME/ the series are the numbered child groups
        names = sorted(
            (k for k, v in group.members() if isinstance(v, zarr.Group) and k.isdigit()),
            key=int,
        )
    if not names:
        raise InvalidMetadataError(src, "bioformats2raw.layout", "no image series found")
    if isinstance(series, int) and not -len(names) <= series < len(names):
        raise InvalidMetadataError(src, "series", f"no series {series!r}; have {names}")
    chosen = names[series] if isinstance(series, int) else str(series)
    if chosen not in names:
        raise InvalidMetadataError(src, "series", f"no series {series!r}; have {names}")
    sub = _child_group(group, chosen, src, f"series {chosen}")
    image = _read_image(sub, _join(src, chosen), _attrs(sub), with_labels=with_labels)
    image.attrs = {
        **image.attrs,
        "bioformats2raw": {"root": src, "series": names, "opened": chosen},
    }
    if len(names) > 1:
        image.notes.append(
            f"bioformats2raw: {len(names)} series ({', '.join(names)}); open another as "
            f"'{src}/<series>'"
        )
    if image.name is None:
        image.name = f"{src.rstrip('/').rsplit('/', 1)[-1]} [{chosen}]"
    return image


def _read_well(
    group: zarr.Group, src: str, attrs: Mapping[str, Any], *, with_labels: bool
) -> MultiscaleImage:
    ome, _ = ngff_attrs(attrs)
    images = _mapping(ome.get("well")).get("images")
    if not isinstance(images, list) or not images or not isinstance(images[0], Mapping):
        raise InvalidMetadataError(src, "well.images", "must list at least one field")
    path = images[0].get("path")
    if not isinstance(path, str):
        raise InvalidMetadataError(src, "well.images[0].path", "each field needs a path")
    sub = _child_group(group, path, src, "well.images[0].path")
    image = _read_image(sub, _join(src, path), _attrs(sub), with_labels=with_labels)
    if len(images) > 1:
        image.notes.append(f"well has {len(images)} fields; showing field '{path}'")
    return image


class _LazyTile(LazyArray):
    """A plate well's field at one level, opened only when first read.

    Wells of one plate may differ slightly in shape: reads are clipped to the real
    array and padded with zeros; a missing or damaged field reads as zeros.
    """

    def __init__(self, group: zarr.Group, path: str, shape: tuple[int, ...], dtype: Any) -> None:
        self._group = group
        self._path = path
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self._array: Any = None

    def _open(self) -> Any:
        if self._array is None:
            try:
                self._array = self._group[self._path]
            except KeyError:
                self._array = False
            except (ValueError, TypeError, OSError) as exc:  # damaged metadata: show empty
                log.warning("plate tile %s cannot be opened (%s); shown empty", self._path, exc)
                self._array = False
        return self._array

    def _read(self, box: tuple[slice, ...]) -> np.ndarray:
        out = np.zeros(tuple(len(range(s.start, s.stop, s.step)) for s in box), self.dtype)
        arr = self._open()
        if arr is False:
            return out
        real = tuple(
            slice(min(s.start, n), min(s.stop, n), s.step) for s, n in zip(box, arr.shape)
        )
        data = np.asarray(arr[real])
        out[tuple(slice(0, k) for k in data.shape)] = data
        return out


class PlateMosaic(LazyArray):
    """A lazy array tiling one field per well over the plate grid (last two axes)."""

    def __init__(
        self,
        tiles: dict[tuple[int, int], _LazyTile],
        grid: tuple[int, int],
        tile_shape: tuple[int, ...],
        dtype: Any,
    ) -> None:
        self._tiles = tiles
        self._grid = grid
        self._tile_shape = tile_shape
        self.dtype = np.dtype(dtype)
        self.shape = (*tile_shape[:-2], grid[0] * tile_shape[-2], grid[1] * tile_shape[-1])

    @property
    def chunks(self) -> tuple[int, ...]:
        """One plane of one well: the unit a viewer reads and caches."""
        return (*(1 for _ in self._tile_shape[:-2]), *self._tile_shape[-2:])

    def _read(self, box: tuple[slice, ...]) -> np.ndarray:
        # read the contiguous box tile by tile, then apply the steps
        whole = tuple(slice(s.start, max(s.stop, s.start), 1) for s in box)
        out = np.zeros(tuple(s.stop - s.start for s in whole), self.dtype)
        th, tw = self._tile_shape[-2:]
        ys, xs = whole[-2], whole[-1]
        for r in range(ys.start // th, -(-ys.stop // th) if ys.stop > ys.start else 0):
            for c in range(xs.start // tw, -(-xs.stop // tw) if xs.stop > xs.start else 0):
                tile = self._tiles.get((r, c))
                if tile is None:
                    continue
                y0, y1 = max(ys.start, r * th), min(ys.stop, (r + 1) * th)
                x0, x1 = max(xs.start, c * tw), min(xs.stop, (c + 1) * tw)
                sub = (
                    *whole[:-2],
                    slice(y0 - r * th, y1 - r * th, 1),
                    slice(x0 - c * tw, x1 - c * tw, 1),
                )
                dest = (
                    Ellipsis,
                    slice(y0 - ys.start, y1 - ys.start),
                    slice(x0 - xs.start, x1 - xs.start),
                )
                out[dest] = tile._checked_read(sub)
        return out[tuple(slice(None, None, s.step) for s in box)]


def _read_plate(
    group: zarr.Group, src: str, attrs: Mapping[str, Any], *, plate_level: int | None
) -> MultiscaleImage:
    ome, _ = ngff_attrs(attrs)
    plate = ome.get("plate")
    if not isinstance(plate, Mapping):
        raise InvalidMetadataError(src, "plate", "must be an object")
    wells = plate.get("wells")
    rows, cols = plate.get("rows"), plate.get("columns")
    rows = rows if isinstance(rows, list) else []
    cols = cols if isinstance(cols, list) else []
    if not isinstance(wells, list) or not wells:
        raise InvalidMetadataError(src, "plate.wells", "must list at least one well")
    positions: dict[str, tuple[int, int]] = {}
    row_names = [r.get("name") for r in rows if isinstance(r, Mapping)]
    col_names = [c.get("name") for c in cols if isinstance(c, Mapping)]
    for i, well in enumerate(wells):
        if not isinstance(well, Mapping) or not isinstance(well.get("path"), str):
            raise InvalidMetadataError(src, f"plate.wells[{i}].path", "each well needs a path")
        path = well["path"]
        if "rowIndex" in well and "columnIndex" in well:
            try:
                positions[path] = (int(well["rowIndex"]), int(well["columnIndex"]))
            except (TypeError, ValueError) as exc:
                raise InvalidMetadataError(
                    src, f"plate.wells[{i}]", f"rowIndex/columnIndex must be integers ({exc})"
                ) from exc
        else:  # 0.1-0.3: from the names in the path
            rname, _, cname = path.partition("/")
            positions[path] = (
                row_names.index(rname) if rname in row_names else 0,
                col_names.index(cname) if cname in col_names else 0,
            )
    first_path = next(iter(positions))
    first_well = _child_group(group, first_path, src, "plate.wells[0].path")
    well_src = _join(src, first_path)
    well_ome, _ = ngff_attrs(_attrs(first_well))
    images = _mapping(well_ome.get("well")).get("images")
    if not isinstance(images, list) or not images or not isinstance(images[0], Mapping):
        raise InvalidMetadataError(well_src, "well.images", "no field listed")
    if not isinstance(images[0].get("path"), str):
        raise InvalidMetadataError(well_src, "well.images[0].path", "each field needs a path")
    field = images[0]["path"]
    field_group = _child_group(first_well, field, well_src, "well.images[0].path")
    template = _read_image(
        field_group, _join(src, f"{first_path}/{field}"), _attrs(field_group), with_labels=False
    )
    n_rows = max(len(row_names), 1 + max(p[0] for p in positions.values()))
    n_cols = max(len(col_names), 1 + max(p[1] for p in positions.values()))
    if plate_level is None:
        plate_level = next(
            (i for i, lvl in enumerate(template.levels) if lvl.shape[-1] * n_cols <= 16384),
            template.num_levels - 1,
        )
    plate_level = min(max(plate_level, 0), template.num_levels - 1)
    levels = []
    for lvl in template.levels[plate_level:]:
        tiles = {
            pos: _LazyTile(group, f"{wpath}/{field}/{lvl.path}", lvl.shape, lvl.data.dtype)
            for wpath, pos in positions.items()
        }
        mosaic = PlateMosaic(tiles, (n_rows, n_cols), lvl.shape, lvl.data.dtype)
        levels.append(Level(lvl.path, mosaic, lvl.scale, lvl.translation))
    name = plate.get("name") if isinstance(plate.get("name"), str) else src.rsplit("/", 1)[-1]
    return template.replace(
        levels=levels,
        name=name,
        source=src,
        attrs=dict(attrs),
        labels={},
        notes=[
            f"plate: {len(positions)} wells of {n_rows}x{n_cols}, field '{field}', "
            f"from level {plate_level}"
        ],
    )
