"""The :class:`ZarrNii` facade: the zarrnii-style Python API over :mod:`.core`.

A :class:`ZarrNii` holds a :class:`~.core.model.MultiscaleImage` (one or more pyramid
levels, all lazy) and a current level.  It never imports napari or Qt.

Conventions (shared with the rest of the package, see ``docs/``):

- Axes are kept in storage order (e.g. ``c, z, y, x``).  ``voxel_size``, ``origin``,
  bounding boxes and ``downsample_factors`` follow the array order of the **spatial**
  axes (``z, y, x``), not NIfTI's ``x, y, z``.
- Level numbers: :meth:`ZarrNii.get_level` takes a position among the levels this
  object holds (``0 .. num_levels - 1``, negative from the coarsest), which is the
  store's level number whenever all levels are held (the default).
  :meth:`ZarrNii.upsample_to_level` and :meth:`ZarrNii.map_bounds_to_level` take the
  level number in the **store** the image was read from (:attr:`ZarrNii.pyramid`),
  so a mask made on ``get_level(-1)`` can be carried to any level of that store.
- Physical placement: voxel ``i`` is centred at ``translation + i * scale``; crops and
  resampled masks keep their exact physical position (their ``translation`` changes).
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ._errors import SelectionError, ZarrNiiError
from .core.io import check_omero_channels, format_of, open_image, save_image
from .core.lazy import (
    as_dask,
    select_index,
    select_indices,
    storage_chunks,
    with_chunk_errors,
)
from .core.mask import (
    apply_mask,
    find_tissue_bounds,
    nearest_index_map,
    resample_nearest,
    tissue_mask,
)
from .core.model import (
    Axis,
    ChannelInfo,
    Level,
    MultiscaleImage,
    axis_type_of,
    default_channel_color,
)
from .core.ngff import DEFAULT_NGFF_VERSION, emit_image_attrs, ngff_attrs
from .core.roi import (
    BoxError,
    crop_labels,
    crop_level,
    index_box,
    level_on_grid,
    map_box_between_levels,
)

__all__ = ["SelectionError", "ZarrNii"]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------
# helpers on MultiscaleImage
# ---------------------------------------------------------------------------------
def _norm_index(i: int, n: int, what: str, hint: str = "") -> int:
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
        raise SelectionError(f"{what} must be an integer, not {i!r}")
    if not -n <= int(i) < n:
        raise SelectionError(
            f"{what} {i} does not exist: valid are 0..{n - 1} (or -{n}..-1 from the end){hint}"
        )
    return int(i) % n


def _drop_axis(image: MultiscaleImage, axis: int, keep: Callable[[Any], Any]) -> MultiscaleImage:
    """``image`` with ``axis`` removed, every level's data replaced by ``keep(data)``."""
    levels = [
        Level(
            path=lvl.path,
            data=keep(lvl.data),
            scale=tuple(s for i, s in enumerate(lvl.scale) if i != axis),
            translation=tuple(t for i, t in enumerate(lvl.translation) if i != axis),
        )
        for lvl in image.levels
    ]
    world = image.world_affine
    if world is not None:
        rows = [i for i in range(world.shape[0]) if i != axis]
        world = np.asarray(world, dtype=float)[np.ix_(rows, rows)]
    return image.replace(
        axes=tuple(a for i, a in enumerate(image.axes) if i != axis),
        levels=levels,
        world_affine=world,
    )


def _restrict_levels(image: MultiscaleImage, keep: Callable[[Any], Any]) -> MultiscaleImage:
    return image.replace(
        levels=[
            Level(lvl.path, keep(lvl.data), lvl.scale, lvl.translation) for lvl in image.levels
        ]
    )


def _channel_index(image: MultiscaleImage, key: int | str) -> int:
    infos = image.channel_infos()
    if isinstance(key, str):
        labels = [info.label for info in infos]
        if key in labels:
            return labels.index(key)
        lowered = [label.lower() for label in labels]
        if key.lower() in lowered:
            return lowered.index(key.lower())
        raise SelectionError(f"no channel labelled {key!r}; the channels are {labels}")
    return _norm_index(key, image.num_channels, "channel")


def _chunk_checked(level: Level) -> Level:
    """``level`` read through :func:`~.core.lazy.read_zarr`: a damaged chunk names itself."""
    return Level(level.path, with_chunk_errors(level.data), level.scale, level.translation)


def _box_values(values: Sequence[float], name: str) -> list[float]:
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError) as exc:
        raise BoxError(f"{name} must be numbers, got {values!r}") from exc
    if not all(np.isfinite(out)):
        raise BoxError(f"{name} must be finite numbers, got {', '.join(f'{v:g}' for v in out)}")
    return out


def _shape_only(shape: Sequence[int]) -> np.ndarray:
    """A zero-memory array of a given shape (a grid description for Level)."""
    return np.broadcast_to(np.zeros((), np.uint8), tuple(int(n) for n in shape))


# ---------------------------------------------------------------------------------
# the facade
# ---------------------------------------------------------------------------------
class ZarrNii:
    """A lazy multiscale image with the zarrnii API (OME-Zarr, NIfTI or arrays).

    Parameters
    ----------
    image
        The levels held (finest first) with their axes, channels and metadata.
    level
        Index (into ``image.levels``) of the current level: the one ``darr``,
        ``shape``, ``voxel_size`` and every processing method use.
    pyramid
        The whole image as stored (all levels), used to resolve store level numbers
        (:meth:`upsample_to_level`, :meth:`map_bounds_to_level`,
        :meth:`storage_report`); default ``image``.
    level_numbers
        The store level number of each held level; default ``0 .. n - 1``.
    use_dask
        If False, :attr:`darr` returns the stored array (a zarr array, or a lazy view
        of it) instead of a dask array; processing methods use dask either way.

    Notes
    -----
    Most users start from :meth:`from_ome_zarr`, :meth:`from_nifti` or
    :meth:`from_array`.  Every method returning an image returns a new
    :class:`ZarrNii`; none reads voxels except :meth:`find_tissue_bounds`, Otsu
    thresholds and the writers.
    """

    def __init__(
        self,
        image: MultiscaleImage,
        level: int = 0,
        *,
        pyramid: MultiscaleImage | None = None,
        level_numbers: Sequence[int] | None = None,
        use_dask: bool = True,
    ) -> None:
        self._image = image
        self._level = _norm_index(level, image.num_levels, "level")
        self._pyramid = pyramid if pyramid is not None else image
        numbers = (
            list(level_numbers) if level_numbers is not None else list(range(image.num_levels))
        )
        if len(numbers) != image.num_levels:
            raise ValueError(f"level_numbers {numbers} do not match {image.num_levels} levels")
        self._level_numbers = [int(n) for n in numbers]
        self._use_dask = bool(use_dask)
        self._darr: Any = None

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_ome_zarr(
        cls,
        path_or_url: str | os.PathLike[str],
        level: int | None = None,
        level_range: tuple[int, int] | None = None,
        channels: Sequence[int | str] | None = None,
        timepoints: Sequence[int] | None = None,
        use_dask: bool = True,
        *,
        multiscale: int = 0,
        coordinate_system: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> ZarrNii:
        """Open an OME-Zarr image (NGFF 0.1-0.6, local or remote), reading metadata only.

        Parameters
        ----------
        path_or_url
            Store path, ``http(s)://`` / ``s3://`` URL, or a zipped OME-Zarr file
            (``.ozx``, RFC-9).  An NGFF 0.6 image is shown in the coordinate system
            its author placed it in (see ``docs/conventions.md``).
        level
            Hold only this level (negative counts from the coarsest).
        level_range
            ``(first, last)``: hold levels ``first`` to ``last`` **inclusive**.
        channels
            Channel indices or labels to keep (the channel axis is kept, in the order
            given).
        timepoints
            Time indices to keep (the time axis is kept).
        use_dask
            True: :attr:`darr` is a dask array chunked like the store (shards for
            sharded arrays).  False: :attr:`darr` is the zarr array itself (or a lazy
            view of it after a channel/time selection), read on indexing.
        multiscale
            Which ``multiscales`` entry to read.
        coordinate_system
            NGFF 0.6: the coordinate system to place the image in (``'intrinsic'``,
            ...); default where its author placed it (see ``docs/conventions.md``).
        storage_options
            Options of the fsspec filesystem of a URL (``key``, ``secret``,
            ``endpoint_url``, ``client_kwargs``, ``anon``, ...); default the
            environment (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ...).

        Returns
        -------
        ZarrNii
            Its current level is the finest level held.  ``get_level(i)`` indexes the
            held levels; the store's pyramid stays available as :attr:`pyramid`.

        Raises
        ------
        NotOmeZarrError, InvalidMetadataError
            Not an OME-Zarr image, or bad metadata.
        SelectionError
            A level, channel or time point that does not exist.
        """
        image = open_image(
            path_or_url,
            format="ome-zarr",
            multiscale=multiscale,
            coordinate_system=coordinate_system,
            storage_options=storage_options,
        )
        n = image.num_levels
        if level is not None and level_range is not None:
            raise ValueError("give level or level_range, not both")
        if level is not None:
            numbers = [_norm_index(level, n, "level", f" ({image.source} has {n} levels)")]
        elif level_range is not None:
            if len(level_range) != 2:
                raise ValueError(f"level_range must be (first, last), not {level_range!r}")
            first = _norm_index(level_range[0], n, "level_range[0]")
            last = _norm_index(level_range[1], n, "level_range[1]")
            if last < first:
                raise SelectionError(f"level_range {tuple(level_range)}: last is before first")
            numbers = list(range(first, last + 1))
        else:
            numbers = list(range(n))
        held = image.select_levels(numbers)
        if channels is not None:
            held = cls._keep_channels(held, channels)
        if timepoints is not None:
            held = cls._keep_timepoints(held, timepoints)
        return cls(held, 0, pyramid=image, level_numbers=numbers, use_dask=use_dask)

    @staticmethod
    def _keep_channels(image: MultiscaleImage, channels: Sequence[int | str]) -> MultiscaleImage:
        if isinstance(channels, (int, str)):
            channels = [channels]
        axis = image.channel_axis
        idx = [_channel_index(image, c) for c in channels]
        if axis is None:
            if any(i != 0 for i in idx):
                raise SelectionError("the image has no channel axis (one channel, index 0)")
            return image
        infos = image.channel_infos()
        out = _restrict_levels(image, lambda d: select_indices(d, axis, idx))
        return out.replace(channels=[infos[i] for i in idx])

    @staticmethod
    def _keep_timepoints(image: MultiscaleImage, timepoints: Sequence[int]) -> MultiscaleImage:
        if isinstance(timepoints, int):
            timepoints = [timepoints]
        axis = image.time_axis
        if axis is None:
            if any(int(t) not in (0, -1) for t in timepoints):
                raise SelectionError("the image has no time axis (one time point, index 0)")
            return image
        n = image.shape[axis]
        idx = [_norm_index(t, n, "time point") for t in timepoints]
        return _restrict_levels(image, lambda d: select_indices(d, axis, idx))

    @classmethod
    def open(cls, path_or_url: str | os.PathLike[str], **options: Any) -> ZarrNii:
        """Open any image the package reads, the format told from the path.

        Parameters
        ----------
        path_or_url
            An OME-Zarr store (folder or URL), a NIfTI, TIFF or Imaris (``.ims``) file.
        **options
            Passed to :meth:`from_ome_zarr` for OME-Zarr stores (``level=``,
            ``channels=``, ...) and to :meth:`from_nifti` for NIfTI files
            (``fourth_axis=``); other formats take none.

        Returns
        -------
        ZarrNii

        Raises
        ------
        NotAnImageError
            No such path, or no image in it.
        UnsupportedFormatError
            A file this package does not read.
        """
        fmt = format_of(path_or_url)
        if fmt.zarr:
            return cls.from_ome_zarr(path_or_url, **options)
        if fmt.key == "nifti":
            unknown = sorted(set(options) - {"fourth_axis"})
            if unknown:
                raise TypeError(f"NIfTI files take no options but fourth_axis, not {unknown}")
            return cls.from_nifti(path_or_url, **options)
        if options:
            raise TypeError(f"{fmt.name} files take no options, not {sorted(options)}")
        return cls(open_image(path_or_url, format=fmt.key))

    @classmethod
    def from_nifti(cls, path: str | os.PathLike[str], *, fourth_axis: str = "time") -> ZarrNii:
        """Open a NIfTI file (``.nii``, ``.nii.gz``, ``.hdr/.img``) lazily.

        Parameters
        ----------
        path
            Local file.
        fourth_axis
            What NIfTI dimension 4 holds: ``"time"`` (the NIfTI convention, default)
            or ``"channel"`` (channels, contrasts or tissue classes stacked along
            dimension 4).  Dimension 5 (vector components) is always channels.

        Returns
        -------
        ZarrNii
            One level with axes ``([t,] [c,] z, y, x)`` oriented as (S, A, R) (see
            :mod:`napari_zarrnii.core.nifti`); oblique files keep their rotation in
            :attr:`affine`.

        Raises
        ------
        NiftiError
            A damaged file, or ``fourth_axis="channel"`` for a file whose dimension 5
            also holds channels.
        ValueError
            ``fourth_axis`` is neither ``"time"`` nor ``"channel"``.
        """
        return cls(open_image(path, format="nifti", fourth_axis=fourth_axis))

    @classmethod
    def from_ims(cls, path: str | os.PathLike[str]) -> ZarrNii:
        """Open an Imaris ``.ims`` file lazily, every resolution level (needs ``h5py``).

        Parameters
        ----------
        path
            Local file.

        Returns
        -------
        ZarrNii
            Every resolution level, axes ``([t,] [c,] [z,] y, x)``, voxel sizes and
            origin from the file's extents, channel names and colours (see
            :mod:`napari_zarrnii.core.ims`).

        Raises
        ------
        MissingDependencyError
            ``h5py`` is not installed (``pip install 'napari-zarrnii[ims]'``).
        NotAnImageError
            The file is missing or holds no Imaris image.
        """
        return cls(open_image(path, format="ims"))

    @classmethod
    def from_tiff(cls, path: str | os.PathLike[str]) -> ZarrNii:
        """Open a TIFF, OME-TIFF or ImageJ TIFF file lazily (needs ``tifffile``).

        Parameters
        ----------
        path
            Local file; its first series is read.

        Returns
        -------
        ZarrNii
            Every level of a pyramidal file, axes ``([t,] [c,] [z,] y, x)``, voxel
            sizes from OME-XML, ImageJ metadata or the resolution tags (see
            :mod:`napari_zarrnii.core.tiff`).

        Raises
        ------
        MissingDependencyError
            ``tifffile`` is not installed.
        NotAnImageError
            The file is missing, not a TIFF, or its layout is not supported.
        """
        return cls(open_image(path, format="tiff"))

    @classmethod
    def from_array(
        cls,
        array: Any,
        voxel_size: Sequence[float] | None = None,
        origin: Sequence[float] | None = None,
        axes: str | Sequence[str] = "zyx",
        units: str | None = "micrometer",
        channel_labels: Sequence[str] | None = None,
        name: str | None = None,
    ) -> ZarrNii:
        """Wrap a numpy or dask array (or any lazy array-like) as a one-level image.

        Parameters
        ----------
        array
            The voxels, axes in the order ``axes`` names them.
        voxel_size, origin
            Per spatial axis (array order): physical voxel size and the physical
            position of voxel 0's centre.  Default: 1 and 0 for every spatial axis
            (as many values as ``axes`` names spatial axes).
        axes
            Axis names, e.g. ``"zyx"``, ``"czyx"`` or ``["t", "z", "y", "x"]``;
            ``t`` is time, ``c`` channel, any other name a spatial axis.
        units
            Unit of the spatial axes (an NGFF unit name), or None.
        channel_labels
            Labels of the channels (with a ``c`` axis).
        name
            Image name.

        Returns
        -------
        ZarrNii
        """
        names = list(axes)
        shape = tuple(int(n) for n in array.shape)
        if len(names) != len(shape):
            raise ValueError(f"axes {names} name {len(names)} axes, the array has {len(shape)}")
        types = [axis_type_of(n) for n in names]
        n_space = types.count("space")
        voxel_size = tuple(
            float(v) for v in (voxel_size if voxel_size is not None else [1.0] * n_space)
        )
        origin = tuple(float(v) for v in (origin if origin is not None else [0.0] * n_space))
        if len(voxel_size) != n_space or len(origin) != n_space:
            raise ValueError(
                f"voxel_size {voxel_size} and origin {origin} need {n_space} values "
                f"(one per spatial axis of {names})"
            )
        for what, values in (("voxel_size", voxel_size), ("origin", origin)):
            if not all(np.isfinite(values)) or (what == "voxel_size" and 0 in values):
                need = "non-zero finite numbers" if what == "voxel_size" else "finite numbers"
                raise ValueError(f"{what} ({', '.join(f'{v:g}' for v in values)}): use {need}")
        spatial_values = iter(zip(voxel_size, origin))
        scale, translation = [], []
        for t in types:
            s, o = next(spatial_values) if t == "space" else (1.0, 0.0)
            scale.append(s)
            translation.append(o)
        axis_objs = tuple(
            Axis(n, t, units if t == "space" else None) for n, t in zip(names, types)
        )
        image = MultiscaleImage(
            axes=axis_objs,
            levels=[Level("0", array, tuple(scale), tuple(translation))],
            name=name,
        )
        if channel_labels is not None:
            n_ch = image.num_channels
            if len(channel_labels) != n_ch:
                raise ValueError(f"{len(channel_labels)} channel labels for {n_ch} channels")
            image.channels = [
                ChannelInfo(str(label), default_channel_color(i, n_ch))
                for i, label in enumerate(channel_labels)
            ]
        return cls(image)

    # -- the held image and its levels ---------------------------------------------------
    @property
    def image(self) -> MultiscaleImage:
        """The :class:`~.core.model.MultiscaleImage` of the held levels."""
        return self._image

    @property
    def pyramid(self) -> MultiscaleImage:
        """The whole image as stored (every level), which store level numbers refer to."""
        return self._pyramid

    @property
    def num_levels(self) -> int:
        """Number of levels held (all levels of the store unless opened with ``level=``)."""
        return self._image.num_levels

    def get_available_levels(self) -> list[int]:
        """The indices :meth:`get_level` accepts: ``[0, ..., num_levels - 1]``.

        Returns
        -------
        list of int
            Positions among the held levels; the store's level numbers are
            :attr:`level_numbers` (the same list when every level is held).
        """
        return list(range(self.num_levels))

    @property
    def level_numbers(self) -> list[int]:
        """Store level number of each held level (``[1, 2, 3]`` for ``level_range=(1, 3)``)."""
        return list(self._level_numbers)

    @property
    def level(self) -> int:
        """Store level number of the current level."""
        return self._level_numbers[self._level]

    def get_level(self, level: int) -> ZarrNii:
        """One held level as its own single-level image.

        Parameters
        ----------
        level
            Position among the held levels: 0 is the finest held, -1 the coarsest.

        Returns
        -------
        ZarrNii
            Holding only that level, with its own ``darr``, ``voxel_size`` and
            ``origin``.  On a single-level image ``get_level(0)`` and ``get_level(-1)``
            return the image itself.

        Raises
        ------
        SelectionError
            No such level (an IndexError).
        """
        n = self.num_levels
        if n == 1:
            if level in (0, -1):
                return self
            raise SelectionError(
                f"level {level} does not exist: this ZarrNii holds a single level (store "
                f"level {self.level}); open the store again to reach other levels, e.g. "
                f"ZarrNii.from_ome_zarr(path).get_level({level})"
            )
        i = _norm_index(level, n, "level", f"; store levels held: {self._level_numbers}")
        return ZarrNii(
            self._image.select_levels([i]),
            pyramid=self._pyramid,
            level_numbers=[self._level_numbers[i]],
            use_dask=self._use_dask,
        )

    @property
    def _current(self) -> Level:
        return self._image.levels[self._level]

    def _same_levels(self, image: MultiscaleImage) -> ZarrNii:
        """A ZarrNii over ``image`` holding the same levels (after a selection)."""
        return ZarrNii(
            image,
            self._level,
            pyramid=self._pyramid,
            level_numbers=self._level_numbers,
            use_dask=self._use_dask,
        )

    def _single(self, image: MultiscaleImage, number: int | None = None) -> ZarrNii:
        return ZarrNii(
            image,
            pyramid=self._pyramid,
            level_numbers=[self.level if number is None else number],
            use_dask=self._use_dask,
        )

    # -- data and geometry --------------------------------------------------------------------
    @property
    def darr(self) -> Any:
        """The current level's voxels, lazily.

        A dask array chunked like the store (shards for sharded zarr v3 arrays),
        created on first access; with ``use_dask=False`` the stored array (zarr array
        or lazy view) itself.
        """
        if self._darr is None:
            data = self._current.data
            self._darr = data if not self._use_dask else as_dask(data)
        return self._darr

    def _dask(self) -> da.Array:
        return self.darr if self._use_dask else as_dask(self._current.data)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the current level (all axes)."""
        return self._current.shape

    @property
    def dtype(self) -> np.dtype:
        """Data type."""
        return np.dtype(self._current.data.dtype)

    @property
    def axes(self) -> tuple[str, ...]:
        """Axis names in array order, e.g. ``('c', 'z', 'y', 'x')``."""
        return self._image.axis_names

    @property
    def dims(self) -> list[str]:
        """Axis names in array order, as a list (zarrnii's ``dims``)."""
        return list(self._image.axis_names)

    @property
    def _spatial(self) -> tuple[int, ...]:
        return self._image.spatial_axes

    @property
    def spatial_dims(self) -> list[str]:
        """Names of the spatial axes, in array order."""
        return [self.axes[i] for i in self._spatial]

    @property
    def scale(self) -> tuple[float, ...]:
        """Physical scale of the current level, one value per axis (1 for t/c)."""
        return self._current.scale

    @property
    def voxel_size(self) -> tuple[float, ...]:
        """Physical voxel size of the current level, per spatial axis in array order."""
        return tuple(self._current.scale[i] for i in self._spatial)

    @property
    def translation(self) -> tuple[float, ...]:
        """Physical position of voxel 0's centre, per spatial axis in array order."""
        return tuple(self._current.translation[i] for i in self._spatial)

    @property
    def origin(self) -> tuple[float, ...]:
        """Same as :attr:`translation` (zarrnii's name)."""
        return self.translation

    @property
    def units(self) -> tuple[str | None, ...]:
        """Unit of each spatial axis."""
        return tuple(self._image.axes[i].unit for i in self._spatial)

    @property
    def affine(self) -> np.ndarray:
        """Homogeneous voxel-to-physical matrix of the spatial axes, in array order.

        ``(n + 1, n + 1)`` for ``n`` spatial axes (4x4 for ``z, y, x``): the current
        level's scale and translation, composed with the image's ``world_affine``
        (oblique NIfTI) when there is one.  ``affine @ [z, y, x, 1]`` is the physical
        position of voxel ``(z, y, x)`` in the same axis order.
        """
        ndim = self._image.ndim
        full = np.eye(ndim + 1)
        full[:ndim, :ndim] = np.diag(self._current.scale)
        full[:ndim, ndim] = self._current.translation
        if self._image.world_affine is not None:
            full = np.asarray(self._image.world_affine, dtype=float) @ full
        keep = [*self._spatial, ndim]
        return full[np.ix_(keep, keep)]

    # -- metadata -----------------------------------------------------------------------------
    def get_ome_zarr_metadata(self) -> dict[str, Any]:
        """The OME-NGFF metadata as stored, the same shape for NGFF 0.4 and 0.5.

        Returns
        -------
        dict
            The NGFF keys of the store's root (``multiscales``, ``omero``, ...) with
            ``version`` added for 0.4 (where it lives inside ``multiscales``) and
            ``labels`` listing the label images found.  For images not read from
            OME-Zarr (NIfTI, arrays), the NGFF 0.5 metadata this image would be
            written with.  A deep copy: changing it changes nothing.
        """
        ome, version = ngff_attrs(self._pyramid.attrs or {})
        if "multiscales" in ome:
            out = copy.deepcopy(ome)
            out.setdefault("version", version)
        else:
            out = emit_image_attrs(self._pyramid, "0.5")["ome"]
        if self._pyramid.labels and "labels" not in out:
            out["labels"] = list(self._pyramid.labels)
        return out

    @property
    def name(self) -> str | None:
        """Image name (from ``multiscales.name``, the file name or the caller)."""
        return self._image.name

    # -- channels and time ---------------------------------------------------------------------
    @property
    def num_channels(self) -> int:
        """Number of channels (1 without a channel axis)."""
        return self._image.num_channels

    @property
    def channel_labels(self) -> list[str]:
        """Channel labels (from ``omero``; defaults where missing)."""
        return [info.label for info in self._image.channel_infos()]

    def get_channel(self, channel: int | str) -> ZarrNii:
        """One channel, with the channel axis dropped.

        Parameters
        ----------
        channel
            Index (negative from the end) or label.

        Returns
        -------
        ZarrNii
            Every held level keeps the selection (``get_channel(0).get_level(2)``
            works); nothing is read.  Without a channel axis, channel 0 is the image
            itself.
        """
        axis = self._image.channel_axis
        if axis is None:
            if isinstance(channel, str) or channel in (0, -1):
                if isinstance(channel, str) and channel not in ("", *self.channel_labels):
                    raise SelectionError(f"no channel labelled {channel!r}")
                return self
            raise SelectionError(f"channel {channel} does not exist: the image has one channel")
        index = _channel_index(self._image, channel)
        info = self._image.channel_infos()[index]
        image = _drop_axis(self._image, axis, lambda d: select_index(d, axis, index))
        image.channels = [info]
        return self._same_levels(image)

    @property
    def num_timepoints(self) -> int:
        """Number of time points (1 without a time axis)."""
        axis = self._image.time_axis
        return 1 if axis is None else self.shape[axis]

    def get_timepoint(self, timepoint: int) -> ZarrNii:
        """One time point, with the time axis dropped.

        Parameters
        ----------
        timepoint
            Index (negative from the end).

        Returns
        -------
        ZarrNii
            Every held level keeps the selection; nothing is read.  Without a time
            axis, time point 0 is the image itself.
        """
        axis = self._image.time_axis
        if axis is None:
            if timepoint in (0, -1):
                return self
            raise SelectionError(f"time point {timepoint} does not exist: no time axis")
        index = _norm_index(timepoint, self.shape[axis], "time point")
        image = _drop_axis(self._image, axis, lambda d: select_index(d, axis, index))
        return self._same_levels(image)

    # -- masks ---------------------------------------------------------------------------------
    def create_tissue_mask(self, threshold: float | None = None) -> ZarrNii:
        """A tissue mask of the current level: uint8, 1 where the data is above a threshold.

        Parameters
        ----------
        threshold
            None: Otsu's threshold of this level's data (computed now).  A float
            strictly between 0 and 1 on integer data: that fraction of the data range
            (``min + t * (max - min)``; ``0.1`` = 10 % of the range).  Anything else:
            an absolute intensity.

        Returns
        -------
        ZarrNii
            A label image (``image.is_label``) on the same grid (same scale and
            translation) and the same axes minus the channel axis (a voxel is tissue
            when any channel is above the threshold).  Lazy.
        """
        axis = self._image.channel_axis
        mask, value = tissue_mask(self._dask(), threshold, axis)
        level = self._current
        keep = [i for i in range(self._image.ndim) if i != axis]
        image = MultiscaleImage(
            axes=tuple(self._image.axes[i] for i in keep),
            levels=[
                Level(
                    level.path,
                    mask,
                    tuple(level.scale[i] for i in keep),
                    tuple(level.translation[i] for i in keep),
                )
            ],
            name=f"{self.name or 'image'} tissue mask",
            is_label=True,
            source=None,
            attrs={"napari_zarrnii": {"threshold": value}},
        )
        if self._image.world_affine is not None:
            rows = [*keep, self._image.ndim]
            image.world_affine = np.asarray(self._image.world_affine)[np.ix_(rows, rows)]
        return self._single(image)

    def _resampled_onto(self, names: Sequence[str], grid: Level) -> da.Array:
        """This image's data resampled (nearest) onto another grid of the same space.

        ``names`` are the grid's axis names; spatial axes are matched by name, other
        axes are kept as they are.
        """
        level = self._current
        maps: list[np.ndarray | None] = []
        chunks = list(storage_chunks(self._dask()) or level.shape)
        grid_chunks = storage_chunks(grid.data)
        for i, name in enumerate(self.axes):
            if i not in self._spatial:
                maps.append(None)
                continue
            if name not in names:
                raise ZarrNiiError(f"spatial axis {name!r} not in the target grid {list(names)}")
            j = list(names).index(name)
            maps.append(
                nearest_index_map(
                    level.shape[i],
                    level.scale[i],
                    level.translation[i],
                    grid.shape[j],
                    grid.scale[j],
                    grid.translation[j],
                )
            )
            if grid_chunks is not None:
                chunks[i] = grid_chunks[j]
        return resample_nearest(self._dask(), maps, chunks)

    def upsample_to_level(self, level: int) -> ZarrNii:
        """This mask (or image) resampled onto the grid of another level of the store.

        Nearest neighbour, exact in physical space: each target voxel takes the value
        of the source voxel containing its centre (0 outside the source), computed from
        both levels' scale and translation, so it is right for any factors and for the
        half-voxel shifts of mean-downsampled pyramids.  Lazy: one task per target
        chunk.  Also works towards coarser levels (nearest subsampling).

        Parameters
        ----------
        level
            Level number in the store this image comes from (:attr:`pyramid`);
            negative counts from the coarsest.

        Returns
        -------
        ZarrNii
            On that level's grid (shape, scale, translation of the spatial axes), other
            axes unchanged, chunked like that level's storage.
        """
        n = self._pyramid.num_levels
        number = _norm_index(level, n, "level", f" (the store has {n} levels)")
        target = self._pyramid.levels[number]
        names = self._pyramid.axis_names
        data = self._resampled_onto(names, target)
        scale, translation = list(self._current.scale), list(self._current.translation)
        for i in self._spatial:
            j = names.index(self.axes[i])
            scale[i], translation[i] = target.scale[j], target.translation[j]
        image = self._image.replace(
            levels=[Level(target.path, data, tuple(scale), tuple(translation))]
        )
        return self._single(image, number)

    resample_to_level = upsample_to_level

    def _same_grid(self, other: ZarrNii) -> bool:
        a, b = self._current, other._current
        for i in self._spatial:
            name = self.axes[i]
            if name not in other.axes:
                return False
            j = other.axes.index(name)
            if (a.shape[i], a.scale[i], a.translation[i]) != (
                b.shape[j],
                b.scale[j],
                b.translation[j],
            ) and not (
                a.shape[i] == b.shape[j]
                and np.isclose(a.scale[i], b.scale[j], rtol=1e-9)
                and np.isclose(a.translation[i], b.translation[j], rtol=1e-9, atol=1e-9)
            ):
                return False
        return True

    def _mask_on_this_grid(self, mask: ZarrNii) -> tuple[da.Array, list[int]]:
        """Mask data on this grid and, per mask axis, the axis of this image it maps to."""
        missing = [n for n in mask.axes if n not in self.axes]
        if missing:
            raise ZarrNiiError(f"mask axes {mask.axes} have {missing}, not in {self.axes}")
        positions = [self.axes.index(n) for n in mask.axes]
        if sorted(positions) != positions:
            raise ZarrNiiError(f"mask axes {mask.axes} are not in the order of {self.axes}")
        if mask._same_grid(self):
            return mask._dask(), positions
        grid = Level(
            self._current.path,
            _shape_only(self.shape),
            self._current.scale,
            self._current.translation,
        )
        return mask._resampled_onto(self.axes, grid), positions

    def refine_mask(self, coarse_mask: ZarrNii, threshold: float | None = None) -> ZarrNii:
        """A mask of this level, restricted to a coarser mask (logical AND).

        Parameters
        ----------
        coarse_mask
            A mask on this level's grid (e.g. ``rough.upsample_to_level(k)``); a mask
            on another grid of the same space is resampled onto this one first.
        threshold
            Threshold of this level's own mask (see :meth:`create_tissue_mask`).

        Returns
        -------
        ZarrNii
            uint8 mask (label image) on this level's grid.  Lazy except for the Otsu
            threshold.
        """
        own = self.create_tissue_mask(threshold)
        coarse, positions = own._mask_on_this_grid(coarse_mask)
        if positions != list(range(len(own.axes))):
            key = tuple(slice(None) if i in positions else None for i in range(len(own.axes)))
            coarse = coarse[key]
        refined = (own._dask().astype(bool) & coarse.astype(bool)).astype(np.uint8)
        image = own.image.replace(
            levels=[
                Level(own._current.path, refined, own._current.scale, own._current.translation)
            ],
            name=f"{self.name or 'image'} refined mask",
        )
        return self._single(image)

    def apply_refined_mask(self, mask: ZarrNii) -> ZarrNii:
        """This level's data where ``mask`` is non-zero, 0 elsewhere (lazy, dtype kept).

        Parameters
        ----------
        mask
            A mask on this level's grid (e.g. ``refined.upsample_to_level(0)``) or on
            another grid of the same space (resampled onto this one).  It is broadcast
            over the channel axis.

        Returns
        -------
        ZarrNii
            Same grid, axes and channels as this image.
        """
        data, positions = self._mask_on_this_grid(mask)
        masked = apply_mask(self._dask(), data, positions)
        level = self._current
        image = self._image.replace(
            levels=[Level(level.path, masked, level.scale, level.translation)]
        )
        return self._single(image)

    def find_tissue_bounds(self, threshold: float | None = None) -> list[tuple[int, int]]:
        """Bounding box of the tissue at the current level (reads this level once).

        Parameters
        ----------
        threshold
            As in :meth:`create_tissue_mask` (default Otsu).

        Returns
        -------
        list of (int, int)
            One ``(min, max)`` per spatial axis in array order (``z, y, x``), voxel
            indices of this level, ``max`` exclusive.  Use :meth:`map_bounds_to_level`
            to carry them to another level, then :meth:`crop_with_bounding_box`.

        Raises
        ------
        NoTissueError
            Nothing above the threshold.
        """
        return find_tissue_bounds(self._dask(), threshold, self._spatial)

    # -- ROI ---------------------------------------------------------------------------------
    def _spatial_level(self, level: Level, names: Sequence[str]) -> Level:
        idx = [list(names).index(self.axes[i]) for i in self._spatial]
        return Level(
            level.path,
            _shape_only([level.shape[j] for j in idx]),
            tuple(level.scale[j] for j in idx),
            tuple(level.translation[j] for j in idx),
        )

    def map_bounds_to_level(
        self, bounds: Sequence[tuple[float, float]], level: int
    ) -> list[tuple[int, int]]:
        """Carry a bounding box of the current level to another level of the store.

        Keeps the physical extent of the voxels' edges (real scale and translation of
        both levels) and rounds outward to whole voxels, clipped to the target shape:
        the right replacement for multiplying by ``2 ** level``.

        Parameters
        ----------
        bounds
            ``(min, max)`` per spatial axis, voxel indices of this level, max exclusive.
        level
            Store level number (negative from the coarsest).

        Returns
        -------
        list of (int, int)
        """
        n = self._pyramid.num_levels
        number = _norm_index(level, n, "level", f" (the store has {n} levels)")
        pairs = [tuple(b) for b in bounds]
        if len(pairs) != len(self._spatial) or any(len(p) != 2 for p in pairs):
            raise BoxError(f"bounds need one (min, max) per spatial axis {self.spatial_dims}")
        src = self._spatial_level(self._current, self.axes)
        dst = self._spatial_level(self._pyramid.levels[number], self._pyramid.axis_names)
        lo, hi = map_box_between_levels([p[0] for p in pairs], [p[1] for p in pairs], src, dst)
        return list(zip(lo, hi))

    def _parse_bbox(self, args: tuple[Any, ...]) -> tuple[list[float], list[float]]:
        n = len(self._spatial)
        try:
            arrays = [np.asarray(a, dtype=float) for a in args]
        except (TypeError, ValueError) as exc:
            raise BoxError(f"bounding box arguments must be sequences of numbers ({exc})") from exc
        if len(arrays) == 1 and arrays[0].shape == (n, 2):
            # a single list of (min, max) pairs, e.g. find_tissue_bounds()'s result
            return list(arrays[0][:, 0]), list(arrays[0][:, 1])
        if any(a.ndim != 1 for a in arrays):
            raise BoxError("bounding box arguments must be flat sequences of numbers")
        seqs = [tuple(float(v) for v in a) for a in arrays]
        as_pairs = len(seqs) == n and all(len(s) == 2 for s in seqs)
        as_corners = len(seqs) == 2 and all(len(s) == n for s in seqs)
        if as_pairs and as_corners:  # only with 2 spatial axes: decide by validity
            pairs_ok = all(a < b for a, b in seqs)
            corners_ok = all(a < b for a, b in zip(*seqs))
            if not (pairs_ok or corners_ok):
                raise BoxError(f"bounding box {seqs}: every min must be below its max")
            if pairs_ok and corners_ok:
                raise BoxError(
                    f"ambiguous bounding box {seqs} for 2 spatial axes: call "
                    "crop(bbox_min=(ymin, xmin), bbox_max=(ymax, xmax)) or pass one list of "
                    "(min, max) pairs"
                )
            as_pairs, as_corners = pairs_ok, corners_ok
        if as_pairs:
            return [s[0] for s in seqs], [s[1] for s in seqs]
        if as_corners:
            return list(seqs[0]), list(seqs[1])
        raise BoxError(
            f"expected (bbox_min, bbox_max) with {n} values each, or {n} (min, max) pairs "
            f"(one per spatial axis {self.spatial_dims}); got {len(seqs)} arguments"
        )

    def crop_with_bounding_box(
        self,
        *args: Sequence[float],
        bbox_min: Sequence[float] | None = None,
        bbox_max: Sequence[float] | None = None,
    ) -> ZarrNii:
        """Crop the current level to a voxel bounding box (lazy; reads overlapping chunks only).

        Accepts either form, in voxel indices of this level, spatial axes in array
        order (``z, y, x``), max exclusive:

        - two corners: ``crop_with_bounding_box((zmin, ymin, xmin), (zmax, ymax, xmax))``
          (or ``bbox_min=``, ``bbox_max=``);
        - one ``(min, max)`` pair per spatial axis:
          ``crop_with_bounding_box((zmin, zmax), (ymin, ymax), (xmin, xmax))``, or a
          single list of pairs such as :meth:`find_tissue_bounds` returns.

        With three spatial axes the forms cannot be confused (2 arguments of 3 values
        vs 3 arguments of 2).  With two spatial axes, two arguments of two values fit
        both: the form under which every min is below its max wins; if both do, a
        :class:`~.core.roi.BoxError` asks for :meth:`crop` with keywords.

        The box is clipped to the image; non-spatial axes are kept whole.

        Returns
        -------
        ZarrNii
            A single-level image whose ``origin`` is the physical position of the box's
            first voxel, so it lies exactly over the source.
        """
        if bbox_min is not None or bbox_max is not None:
            if args or bbox_min is None or bbox_max is None:
                raise BoxError("give both bbox_min and bbox_max, and no positional box")
            return self.crop(bbox_min, bbox_max)
        lo, hi = self._parse_bbox(args)
        return self.crop(lo, hi)

    def crop(self, bbox_min: Sequence[float], bbox_max: Sequence[float]) -> ZarrNii:
        """Crop the current level to ``[bbox_min, bbox_max)`` (voxels, spatial axes).

        Parameters
        ----------
        bbox_min, bbox_max
            One value per spatial axis in array order; ``bbox_max`` exclusive.  Float
            values are rounded outward; the box is clipped to the image.

        Returns
        -------
        ZarrNii
            Lazy crop placed over the source (``translation`` shifted by
            ``bbox_min * voxel_size``).  Label images with a level on the grid of the
            current level are cropped with it (see :attr:`label_names`).

        Raises
        ------
        BoxError
            Another number of values than spatial axes, a ``bbox_min`` value not below
            its ``bbox_max`` value, or a box outside the image.  A box reaching beyond
            the image is clipped to it, with a logged warning.
        """
        names = self.spatial_dims
        if len(bbox_min) != len(names) or len(bbox_max) != len(names):
            raise BoxError(
                f"bbox_min/bbox_max need {len(names)} values (spatial axes "
                f"{names}), got {len(bbox_min)} and {len(bbox_max)}"
            )
        lo, hi = _box_values(bbox_min, "bbox_min"), _box_values(bbox_max, "bbox_max")
        bad = [f"{n}: {a:g} >= {b:g}" for n, a, b in zip(names, lo, hi) if a >= b]
        if bad:
            raise BoxError(f"bbox_min must be below bbox_max on every axis ({', '.join(bad)})")
        cropped = crop_level(self._current, lo, hi, axes=self._spatial)
        labels = crop_labels(self._image.labels, self._current, self._image.axes, lo, hi)
        return self._single(self._image.replace(levels=[cropped], labels=labels))

    def crop_physical(
        self, min_physical: Sequence[float], max_physical: Sequence[float]
    ) -> ZarrNii:
        """Crop the current level to a physical box (units of :attr:`units`).

        Parameters
        ----------
        min_physical, max_physical
            Corners per spatial axis in array order, in the coordinates of
            ``scale`` and ``translation`` (before any ``world_affine``).  Every voxel
            overlapping the box is kept.

        Returns
        -------
        ZarrNii
        """
        lo, hi = index_box(self._current, min_physical, max_physical, axes=self._spatial)
        return self.crop(lo, hi)

    # -- writing ---------------------------------------------------------------------------------
    @property
    def label_names(self) -> list[str]:
        """Names of the label images :meth:`to_ome_zarr` writes with the current level.

        A label image goes with an image level when one of its levels lies on that
        level's grid: same number of voxels, voxel size and position on every spatial
        axis.  :meth:`get_level` keeps the label images (their level on the new
        level's grid is written), :meth:`crop_with_bounding_box` crops them with the
        image.  Label images on no grid of the current level are not written.
        """
        level, axes = self._current, self._image.axes
        return [
            n for n, lb in self._image.labels.items() if level_on_grid(lb, level, axes) is not None
        ]

    def _export_image(self, *, with_labels: bool = True) -> MultiscaleImage:
        """The current level as a one-level image, with the labels on its grid."""
        level = _chunk_checked(self._current)
        labels: dict[str, MultiscaleImage] = {}
        if with_labels:
            for name, label in self._image.labels.items():
                k = level_on_grid(label, level, self._image.axes)
                if k is None:
                    log.info("label image %r not written: not on the grid of this level", name)
                else:
                    labels[name] = label.replace(levels=[_chunk_checked(label.levels[k])])
        return self._image.replace(levels=[level], labels=labels)

    def to_nifti(
        self, path: str | os.PathLike[str], overwrite: bool = False, *, client: Any = None
    ) -> Path:
        """Write the current level as NIfTI (``.nii`` or ``.nii.gz``).

        Parameters
        ----------
        path
            Destination file (a local path).
        overwrite
            Replace an existing file.
        client
            A ``distributed.Client`` (or ``'active'``): its workers compute the blocks,
            this process writes them in order (a NIfTI file is one stream), so the
            pixels pass through this process.  Default: threads here.

        Returns
        -------
        pathlib.Path
            The written file (see :func:`napari_zarrnii.core.nifti.write_nifti` for
            axes, affine and units).
        """
        out = save_image(
            self._export_image(with_labels=False),
            path,
            format="nifti",
            overwrite=overwrite,
            client=client,
        )
        return Path(out)

    def to_ome_zarr(
        self,
        path: str | os.PathLike[str],
        max_layer: int = 4,
        scaling_method: str = "local_mean",
        downsample_factors: Any = None,
        chunks: Any = None,
        storage_options: Mapping[str, Any] | None = None,
        omero_metadata: Mapping[str, Any] | None = None,
        ngff_version: str = DEFAULT_NGFF_VERSION,
        overwrite: bool = False,
        progress: Callable[[int, int, str], Any] | None = None,
        *,
        shards: Any = None,
        workers: int | None = None,
        cancel: Any = None,
        client: Any = None,
    ) -> Path | str:
        """Write a multiscale OME-Zarr built from the current level (as level 0).

        Parameters
        ----------
        path
            Destination folder, or a file ending in ``.ozx`` for a zipped OME-Zarr
            (RFC-9; written as a folder aside, zipped, then moved into place), or an
            object-store URL (``s3://bucket/name.ome.zarr``): written in place, chunks
            first and metadata last, removed again if the write fails (see
            ``docs/cluster.md``).
        max_layer
            Index of the coarsest level (``4`` writes levels 0-4; fewer when the image
            cannot shrink further).
        scaling_method
            ``'local_mean'``, ``'nearest'``, ``'mode'``, ``'max'`` or ``'min'`` (label
            images always use a label-safe method).
        downsample_factors
            Per spatial axis in array order, e.g. ``(1, 2, 2)`` to keep z (z, y, x);
            None for automatic factors.
        chunks
            Chunk shape, per axis or per spatial axis (array order).
        storage_options
            ``{'compressor': codec, 'chunks': ..., 'shards': ...}``.  The codec may be
            a numcodecs codec (``numcodecs.Blosc(cname='zstd', clevel=3)``), a zarr v3
            codec (``zarr.codecs.BloscCodec``), a name (``'blosc-zstd:3'``) or None.
            (zarrnii's ``zarr.Blosc`` does not exist in zarr 3.)  Any other key is an
            option of the filesystem of a URL (``key``, ``secret``, ``endpoint_url``,
            ``client_kwargs``, ...); default the environment (``AWS_*``).
        omero_metadata
            ``{'name': ..., 'channels': [{'label': 'DAPI', 'color': 'blue'}, ...]}``,
            one entry per channel.
        ngff_version
            ``'0.5'`` (zarr v3, default), ``'0.6'`` (zarr v3; keeps the rotation of
            an oblique image as a transformation to a named coordinate system) or
            ``'0.4'`` (zarr v2).
        overwrite
            Replace an existing store.
        progress
            ``progress(done_blocks, total_blocks, message)``.
        shards
            Shard shape (NGFF 0.5 and 0.6 only), like ``chunks``.
        workers
            Threads.
        cancel
            A ``threading.Event`` or callable to stop the write.
        client
            A ``distributed.Client``, or ``'active'`` for the client current in this
            process: blocks run as tasks on its workers, which read the source and
            write the store themselves (no pixel passes through this process but the
            coarsest level, read for missing display windows).  The store is the same,
            byte for byte, as the threaded one.

        Returns
        -------
        pathlib.Path or str
            The written store (its URL for an object store).  An oblique image (a
            NIfTI with a rotation) is written axis-aligned for NGFF 0.4/0.5, keeping
            its voxel sizes and the world position of its centre; a warning says
            which rotation was dropped (see
            :func:`napari_zarrnii.core.oblique.axis_aligned_approximation`).

        Raises
        ------
        ChannelCountError
            ``omero_metadata`` lists another number of channels than the image has;
            nothing is written.
        """
        image = self._export_image()
        omero_metadata = check_omero_channels(omero_metadata, image, argument="omero_metadata")
        if omero_metadata and omero_metadata.get("name"):
            image = image.replace(name=str(omero_metadata["name"]))
        plan_kwargs: dict[str, Any] = {
            "max_layer": max_layer,
            "scaling_method": scaling_method,
            "downsample_factors": downsample_factors,
            "chunks": chunks,
            "ngff_version": ngff_version,
        }
        if shards is not None:
            plan_kwargs["shards"] = shards
        return save_image(
            image,
            path,
            format="ome-zarr",
            overwrite=overwrite,
            omero=omero_metadata,
            progress=progress,
            cancel=cancel,
            workers=workers,
            storage_options=storage_options,
            client=client,
            **plan_kwargs,
        )

    def to_bdv_format(
        self,
        xml_path: str | os.PathLike[str],
        h5_path: str | os.PathLike[str],
        overwrite: bool = False,
    ) -> tuple[Path, Path]:
        """Export the held levels (from the current one down) for BigDataViewer.

        Parameters
        ----------
        xml_path, h5_path
            Destinations of the SpimData XML and the BDV HDF5 file.
        overwrite
            Replace existing files.

        Returns
        -------
        (xml_path, h5_path)

        Raises
        ------
        MissingDependencyError
            h5py is not installed (``pip install napari-zarrnii[bdv]``).

        Notes
        -----
        The HDF5 file is written by this process, with threads: h5py cannot write
        one file from many processes, so a dask.distributed client active in this
        process is not used.
        """
        from .core.export import write_bdv

        image = self._image.select_levels(range(self._level, self.num_levels))
        return write_bdv(image, xml_path, h5_path, overwrite=overwrite)

    def storage_report(self) -> list[Any]:
        """Storage of the held levels in the store they were read from, plus a total.

        Returns
        -------
        list of :class:`~napari_zarrnii.core.storage.StorageRow`
            Per level: path, shape, chunks, shards, dtype, uncompressed bytes, bytes on
            disk, number of chunk/shard files and compression ratio (on-disk fields
            are None for remote stores and in-memory images).  Format it with
            :func:`~napari_zarrnii.core.storage.format_storage_report`.
        """
        from .core.storage import storage_report

        return storage_report(self._pyramid, self._level_numbers)

    # -- display -----------------------------------------------------------------------------
    def __repr__(self) -> str:
        src = self._pyramid.source or "in memory"
        held = self._level_numbers
        levels = f"{held[0]}" if len(held) == 1 else f"{held[0]}-{held[-1]}"
        units = {u for u in self.units if u}
        unit = f" {units.pop()}" if len(units) == 1 else ""
        vs = ", ".join(f"{v:.4g}" for v in self.voxel_size)
        kind = "mask" if self._image.is_label else "image"
        return (
            f"ZarrNii({kind} {src!r}, level {self.level} (held {levels} of "
            f"{self._pyramid.num_levels}), axes={''.join(self.axes)}, shape={self.shape}, "
            f"dtype={self.dtype}, voxel_size=({vs}){unit}, channels={self.num_channels})"
        )
