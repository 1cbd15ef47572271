"""Writing OME-Zarr stores: arrays, blocks through the engine, metadata last.

:func:`write_pyramid` builds a pyramid from level 0; :func:`write_levels` writes the
levels of a multiscale image as they are.  Where the store is created is decided by
:func:`~..store.open_destination`: a local store is written into a temporary folder
beside the destination and renamed into place when complete; a destination ending in
``.ozx`` is zipped (RFC-9) beside it first and the zip file moved into place; an
object-store URL (``s3://``, ...) is written in place, chunks first and metadata last,
and emptied again if the write fails (:func:`~..store.remote_destination`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import zarr
from zarr.core.common import ZarrFormat

from ..._errors import UnsupportedFormatError
from ..io import check_omero_channels
from ..lazy import storage_chunks
from ..model import ChannelInfo, Level, MultiscaleImage, Window
from ..ngff import (
    DEFAULT_NGFF_VERSION,
    emit_image_attrs,
    emit_labels_group_attrs,
    in_parent_world,
    ngff_attrs,
    parse_omero,
    spec_for,
    world_system_name,
)
from ..objectstore import StagedStore
from ..store import (
    OZX_SUFFIX,
    is_url,
    is_zipped,
    local_path,
    normalize_source,
    open_destination,
    split_storage_options,
)
from .cluster import ClientArg
from .codecs import (
    DEFAULT_COMPRESSOR,
    Compressor,
    ResolvedCompressor,
    describe_compressor,
    merge_storage_options,
    resolve_compressor,
)
from .engine import (
    ARRAY_CONFIG,
    ArrayLocation,
    BlockExecutor,
    Cancel,
    ProgressCallback,
    ThreadExecutor,
    _LevelJob,
    _opened,
    _Runner,
    _task_unit,
)
from .kernels import SCALING_METHODS
from .plan import (
    AS_IS,
    AxisSizes,
    LevelPlan,
    PyramidPlan,
    _check_ngff_axes,
    _label_plans_for,
    default_shards,
    plan_levels,
    plan_pyramid,
)

if TYPE_CHECKING:
    from ..io import Destination

__all__ = ["write_levels", "write_pyramid"]

log = logging.getLogger(__name__)

#: A destination folder (or ``.ozx`` file), an object-store URL, or a resolved
#: :class:`~..io.Destination`.
StorePath: TypeAlias = "str | os.PathLike[str] | Destination"

#: Arrays of a ``.ozx`` store are sharded (RFC-9: fewer zip entries) with this many
#: chunks per spatial axis per shard unless shards are given, as ngff-zarr 0.50 does.
OZX_CHUNKS_PER_SHARD = 2


def _resolve(
    path: StorePath, overwrite: bool, storage_options: Mapping[str, Any] | None
) -> tuple[Destination, dict[str, Any]]:
    """The destination (with the filesystem options) and the array options.

    ``storage_options`` may mix array options (compressor, chunks, shards) and the
    options of the filesystem behind a URL (see :func:`~..store.split_storage_options`).
    """
    from ..io import FORMATS, Destination

    array_options, fs_options = split_storage_options(storage_options)
    if isinstance(path, Destination):
        dest = replace(
            path,
            overwrite=path.overwrite or overwrite,
            storage_options={**path.storage_options, **fs_options},
        )
    else:
        location = normalize_source(path)
        fmt = FORMATS["ozx" if is_zipped(location) else "ome-zarr"]
        dest = Destination(location, fmt, overwrite, fs_options)
    if dest.storage_options and not dest.is_remote:
        log.warning(
            "storage_options %s not used: %s is a local path (known array options: "
            "compressor, chunks, shards)",
            sorted(dest.storage_options),
            dest.location,
        )
    return dest, array_options


def _check_zipped(location: str, version: str) -> None:
    """Refuse a ``.ozx`` destination for a zarr v2 version (RFC-9 is zarr v3)."""
    if is_zipped(location) and spec_for(version, writing=True).zarr_format != 3:
        raise UnsupportedFormatError(
            f"{location}: zipped OME-Zarr (.ozx, RFC-9) is zarr v3: write OME-NGFF "
            f"0.5 or 0.6, not {version}"
        )


def _zipped_shards(location: str, image: MultiscaleImage, chunks: Any, shards: Any) -> Any:
    """``shards``, or the default shards of a ``.ozx`` destination when there are none."""
    if shards is None and is_zipped(location):
        return default_shards(image.axes, chunks, OZX_CHUNKS_PER_SHARD)
    return shards


@dataclass(frozen=True)
class _StagedArrayLocation(ArrayLocation):
    """A level of a store written in place at a URL (:class:`~..objectstore.StagedStore`).

    The URL holds no metadata until the write completes, so the array's own metadata
    travels with the location (``staged``): a worker opens the array from it and
    writes its chunks to the URL.  Arrays opened in a process are kept per write
    (the store's token) with the local ones of :class:`~.engine.ArrayLocation`.
    """

    staged: StagedStore | None = field(default=None, compare=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "staged": self.staged}

    def _target(self) -> tuple[Any, tuple[str, str]]:
        assert self.staged is not None
        return self.staged, (self.staged.token, self.path)


def _location(store: str | StagedStore, path: str, array: zarr.Array) -> ArrayLocation:
    """Where workers find the level at ``path`` of the store being written."""
    if isinstance(store, StagedStore):
        zarr_format: ZarrFormat = 2 if array.metadata.zarr_format == 2 else 3
        return _StagedArrayLocation(
            store.url, path, zarr_format, _opened(array), staged=store.for_array(path)
        )
    return ArrayLocation.of(store, path, array)


def _create_array(
    group: zarr.Group,
    path: str,
    lp: LevelPlan,
    plan: PyramidPlan,
    compressors: ResolvedCompressor,
) -> zarr.Array:
    kwargs: dict[str, Any] = {}
    if plan.zarr_format == 2:
        kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    else:
        kwargs["dimension_names"] = [a.name for a in plan.axes]
        if lp.shards is not None:
            kwargs["shards"] = lp.shards
    return group.create_array(
        name=path,
        shape=lp.shape,
        dtype=plan.dtype,
        chunks=lp.chunks,
        compressors=compressors,
        fill_value=0,
        config=ARRAY_CONFIG,
        **kwargs,
    )


def _jobs_for(
    image: MultiscaleImage, plan: PyramidPlan, prefix: str, label: str, task_bytes: int
) -> list[_LevelJob]:
    """One job per level: level 0 (or every level for 'as-is') from the source.

    Tasks aim for ``task_bytes`` of input: the executor's
    :attr:`~.engine.BlockExecutor.task_bytes`.
    """
    jobs: list[_LevelJob] = []
    ones = (1,) * len(plan.axes)
    for i, lp in enumerate(plan.levels):
        from_source = plan.method == AS_IS or i == 0
        source = image.levels[i if plan.method == AS_IS else 0].data if from_source else None
        factors = ones if from_source else lp.factors
        job = _LevelJob(
            name=f"{label}level {i}/{plan.num_levels - 1}",
            path=f"{prefix}{lp.path}",
            plan=lp,
            dtype=plan.dtype,
            source=source,
            previous=None if from_source else jobs[i - 1],
            factors=factors,
            method=plan.method,
            depth=i,
        )
        # Our own previous level has our chunks: no need to prefer its chunking.
        prefer = storage_chunks(source, shards=False) if from_source else None
        job.unit = _task_unit(
            lp.shards or lp.chunks, lp.shape, plan.dtype.itemsize, factors, prefer, task_bytes
        )
        jobs.append(job)
    return jobs


def _compute_windows(
    data: np.ndarray, channel_axis: int | None, n_channels: int
) -> list[Window | None]:
    """Display windows per channel from (coarse) data: 0.1-99.9 percentiles, min/max."""
    out: list[Window | None] = []
    for c in range(n_channels):
        values = data if channel_axis is None else np.take(data, c, axis=channel_axis)
        values = np.asarray(values, dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
        if values.size == 0:
            out.append(None)
            continue
        lo, hi = float(values.min()), float(values.max())
        start, end = (float(v) for v in np.percentile(values, [0.1, 99.9]))
        if end <= start:
            start, end = lo, hi if hi > lo else lo + 1.0
        out.append(Window(start=start, end=end, min=lo, max=max(hi, end)))
    return out


def _output_channels(
    image: MultiscaleImage, omero: Mapping[str, Any] | None, coarsest: Any, path: str
) -> list[ChannelInfo]:
    n = image.num_channels
    if omero is not None:
        channels = parse_omero(omero, n, path)
    else:
        channels = image.channel_infos()
    if any(ch.window is None for ch in channels):
        windows = _compute_windows(_sample(coarsest, image), image.channel_axis, n)
        channels = [
            ch if ch.window is not None or w is None else _with_window(ch, w)
            for ch, w in zip(channels, windows)
        ]
    return channels


def _sample(array: Any, image: MultiscaleImage, max_voxels: int = 2**24) -> np.ndarray:
    """The coarsest level, strided along spatial axes when it is large (one level only)."""
    spatial = image.spatial_axes
    size = math.prod(int(n) for n in array.shape)
    step = max(1, math.ceil((size / max_voxels) ** (1 / max(len(spatial), 1))))
    index = tuple(
        slice(None, None, step) if i in spatial else slice(None) for i in range(array.ndim)
    )
    return np.asarray(array[index])


def _with_window(ch: ChannelInfo, window: Window) -> ChannelInfo:
    return replace(ch, window=window)


def _write_store(
    image: MultiscaleImage,
    dest: Destination,
    plan: PyramidPlan,
    label_plans: dict[str, PyramidPlan],
    *,
    omero: Mapping[str, Any] | None,
    progress: ProgressCallback | None,
    cancel: Cancel | None,
    workers: int | None,
    client: ClientArg,
) -> Path | str:
    spec = spec_for(plan.ngff_version, writing=True)
    omero = check_omero_channels(omero, image)
    _check_ngff_axes(plan.axes, image.name or "image")
    for name, lplan in label_plans.items():
        _check_ngff_axes(lplan.axes, f"label '{name}'")
    compressor = plan.compressor
    runner = _Runner(0, progress, cancel)  # its total once the blocks are planned
    runner.check_cancel()
    with _executor(workers, client) as executor:
        task_bytes = executor.task_bytes
        jobs = _jobs_for(image, plan, "", "", task_bytes)
        label_jobs = {
            name: _jobs_for(
                image.labels[name], lplan, f"labels/{name}/", f"labels/{name} ", task_bytes
            )
            for name, lplan in label_plans.items()
        }
        all_jobs = jobs + [j for js in label_jobs.values() for j in js]
        runner.total = sum(j.n_tasks() for j in all_jobs)
        log.info(
            "writing %s: %d levels%s, %s, %d blocks, %d workers",
            dest.location,
            plan.num_levels,
            f" + {len(label_plans)} label images" if label_plans else "",
            describe_compressor(compressor, spec.zarr_format),
            runner.total,
            executor.workers,
        )
        with open_destination(dest, progress=progress, cancel=cancel) as store:
            _write_into(
                store,
                image,
                plan,
                label_plans,
                jobs,
                label_jobs,
                omero,
                dest.location,
                runner,
                executor,
            )
    log.info(
        "wrote %s (%d blocks, %d not all 0, %d from the level before in memory, "
        "peak %d in flight)",
        dest.location,
        runner.done,
        runner.written,
        sum(j.carried_blocks for j in all_jobs),
        runner.peak_in_flight,
    )
    return dest.location if dest.is_remote else local_path(dest.location)


def _executor(workers: int | None, client: ClientArg) -> BlockExecutor[Any]:
    if client is None:
        return ThreadExecutor(workers or os.cpu_count() or 1)
    from .cluster import DistributedExecutor, resolve_client

    resolved = resolve_client(client)
    assert resolved is not None
    if workers is not None:
        log.info("workers=%d ignored: blocks run on the cluster's workers", workers)
    return DistributedExecutor(resolved)


def _write_into(
    store: str | StagedStore,
    image: MultiscaleImage,
    plan: PyramidPlan,
    label_plans: dict[str, PyramidPlan],
    jobs: list[_LevelJob],
    label_jobs: dict[str, list[_LevelJob]],
    omero: Mapping[str, Any] | None,
    path: str,
    runner: _Runner,
    executor: BlockExecutor[Any],
) -> None:
    """Create the arrays in ``store``, run the blocks, write the metadata.

    ``store`` is what :func:`~..store.open_destination` gives: an absolute folder
    path, or a store at a URL that holds the metadata back until the write is done.
    """
    spec = spec_for(plan.ngff_version, writing=True)
    zarr_format: ZarrFormat = 2 if spec.zarr_format == 2 else 3
    root = zarr.create_group(store=store, zarr_format=zarr_format)
    label_groups: dict[str, zarr.Group] = {}
    for name, lplan in [("", plan), *label_plans.items()]:
        if name:
            label_groups[name] = root.require_group("labels").require_group(name)
        codecs = resolve_compressor(plan.compressor, zarr_format, lplan.dtype.itemsize)
        for job in label_jobs[name] if name else jobs:
            array = _create_array(root, job.path, job.plan, lplan, codecs)
            job.location = _location(store, job.path, array)
    runner.run(executor, jobs + [j for js in label_jobs.values() for j in js])
    # metadata last: the windows come from the coarsest level as written
    out_name = omero.get("name") if isinstance(omero, Mapping) else None
    out_image = _output_image(image, plan, jobs, name=out_name or image.name or _stem(path))
    if not image.is_label:
        out_image.channels = _output_channels(image, omero, jobs[-1].target, str(path))
    attrs = emit_image_attrs(
        out_image,
        spec.version,
        [lp.path for lp in plan.levels],
        method=_method_for_metadata(plan.method),
    )
    if image.is_label:
        _drop_label_source(attrs)
    if plan.method == AS_IS:
        _keep_source_method(attrs, image)
    root.attrs.update(attrs)
    if label_plans:
        labels_group = root.require_group("labels")
        labels_group.attrs.update(emit_labels_group_attrs(list(label_plans), spec.version))
        for name, lplan in label_plans.items():
            src = image.labels[name]
            lab = _output_image(
                src.replace(is_label=True), lplan, label_jobs[name], name=src.name or name
            )
            if spec.stores_affine:  # label images follow their image into its world
                lab = in_parent_world(lab, out_image)
            label_attrs = emit_image_attrs(
                lab,
                spec.version,
                [lp.path for lp in lplan.levels],
                method=_method_for_metadata(lplan.method),
                world=world_system_name(out_image),
            )
            if lplan.method == AS_IS:
                _keep_source_method(label_attrs, src)
            label_groups[name].attrs.update(label_attrs)
    runner.check_cancel()


def _stem(path: str) -> str:
    """The store's name without ``.ome.zarr``/``.zarr``/``.ozx``: the default multiscale name."""
    name = path.rstrip("/").rsplit("/", 1)[-1] if is_url(path) else local_path(path).name
    for suffix in (".ome.zarr", ".zarr", OZX_SUFFIX):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name


def _method_for_metadata(method: str) -> str | None:
    return method if method in SCALING_METHODS else None


def _keep_source_method(attrs: dict[str, Any], image: MultiscaleImage) -> None:
    """Levels copied as they are keep the ``type``/``metadata`` of the multiscale they
    were read from (the one whose dataset paths are the image's level paths)."""
    source, _ = ngff_attrs(image.attrs or {})
    entries = source.get("multiscales")
    paths = [lvl.path for lvl in image.levels]
    for ms in entries if isinstance(entries, list) else []:
        datasets = ms.get("datasets") if isinstance(ms, Mapping) else None
        if (
            not isinstance(datasets, list)
            or [d.get("path") if isinstance(d, Mapping) else None for d in datasets] != paths
        ):
            continue
        out = attrs.get("ome", attrs)["multiscales"][0]
        if isinstance(ms.get("type"), str):
            out["type"] = ms["type"]
        if isinstance(ms.get("metadata"), Mapping):
            out["metadata"] = dict(ms["metadata"])
        return


def _drop_label_source(attrs: dict[str, Any]) -> None:
    block = attrs.get("ome", attrs).get("image-label")
    if isinstance(block, dict):
        block.pop("source", None)


def _output_image(
    image: MultiscaleImage, plan: PyramidPlan, jobs: list[_LevelJob], name: str | None
) -> MultiscaleImage:
    levels = [
        Level(lp.path, job.target, lp.scale, lp.translation) for lp, job in zip(plan.levels, jobs)
    ]
    return image.replace(levels=levels, name=name, labels={})


def write_pyramid(
    image: MultiscaleImage,
    path: StorePath,
    plan: PyramidPlan | None = None,
    *,
    overwrite: bool = False,
    compressor: Compressor = DEFAULT_COMPRESSOR,
    omero: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    cancel: Cancel | None = None,
    workers: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
    client: ClientArg = None,
    **plan_kwargs: Any,
) -> Path | str:
    """Build and write a multiscale OME-Zarr from ``image.levels[0]``, out of core.

    Level 0 is copied from the source in chunk-aligned blocks (a dask source is computed
    block by block); every next level is computed from the previous level as written on
    disk, block by block, in ``workers`` threads (or on the workers of ``client``) with
    at most two blocks per thread in flight.  Label images in ``image.labels`` are
    written under ``labels/<name>`` with the same factors and a label-safe method.

    Parameters
    ----------
    image
        The image (its level 0 is the source; other levels are ignored).
    path
        Destination folder (``.ome.zarr``), or file (``.ozx``: zipped OME-Zarr,
        RFC-9, NGFF 0.5 or 0.6, sharded with :data:`OZX_CHUNKS_PER_SHARD` chunks per
        spatial axis unless the shards are given), written aside and moved into
        place; or an object-store URL (``s3://bucket/name.ome.zarr``, ``gs://``,
        ``az://``), written in place with its metadata last and emptied again on
        failure (see :func:`~napari_zarrnii.core.store.remote_destination` for the
        exact guarantees); or a :class:`~napari_zarrnii.core.io.Destination`.
        For NGFF 0.6 an ``image.world_affine`` is stored as a transformation from
        the intrinsic coordinate system to a named one (``world``, or ``scanner``
        and the like for NIfTI-born images, whose axes also get their RFC-4
        orientation); label images are placed in their image's world.  0.4 and
        0.5 store scale and translation only.
    plan
        A plan from :func:`plan_pyramid`; when None one is made from ``plan_kwargs``
        (``max_layer``, ``downsample_factors``, ``chunks``, ``shards``,
        ``scaling_method``, ``ngff_version``).
    overwrite
        Replace an existing destination (else :class:`DestinationExistsError`).
    compressor
        ``'default'`` (Blosc zstd clevel 3 bit-shuffle), None for no compression, or a
        codec (see :func:`resolve_compressor`).  Overrides the plan's.
    omero
        Channel metadata, e.g. ``{'name': 'Brain', 'channels': [{'label': 'DAPI',
        'color': 'blue', 'window': {...}}]}``; default ``image.channels``.  Missing
        windows are computed from the coarsest written level.
    progress
        ``progress(done_blocks, total_blocks, message)``, called in the calling thread
        after every block.  An exception raised by it aborts the write.
    cancel
        A :class:`threading.Event` or a callable returning True to stop: raises
        :class:`~napari_zarrnii.CancelledError` and leaves nothing behind.
    workers
        Threads (default ``os.cpu_count()``); ignored with a ``client``.
    storage_options
        ``{'compressor': ..., 'chunks': ..., 'shards': ...}`` (see
        :func:`resolve_storage_options`); any other key is an option of the
        filesystem behind a URL (``key``, ``secret``, ``endpoint_url``,
        ``client_kwargs``, ``anon``, ``profile``, ...; see
        :func:`~napari_zarrnii.core.store.split_storage_options`).  Without them
        credentials come from the environment (``AWS_ACCESS_KEY_ID``, ...).
    client
        A ``distributed.Client``, or ``'active'`` for the client current in this
        process: blocks run as tasks on its workers, which write into the destination
        themselves (a folder on a filesystem they share, or a URL they can reach: the
        filesystem options travel with each task, else each worker's environment
        gives the credentials); they must be able to import napari_zarrnii and read
        the source.  The store is byte-identical to the threaded one.  Needs
        ``dask.distributed`` (:class:`~napari_zarrnii.MissingDependencyError`
        otherwise).

    Returns
    -------
    pathlib.Path or str
        The written store: its local path, or its URL.
    """
    if plan is not None and plan_kwargs:
        raise ValueError(f"give either a plan or plan arguments, not both ({sorted(plan_kwargs)})")
    dest, array_options = _resolve(path, overwrite, storage_options)
    where = dest.location
    _check_zipped(
        where, plan.ngff_version if plan else plan_kwargs.get("ngff_version", DEFAULT_NGFF_VERSION)
    )
    options = merge_storage_options(
        array_options,
        compressor=compressor,
        chunks=plan_kwargs.get("chunks"),
        shards=plan_kwargs.get("shards"),
    )
    compressor = options["compressor"]
    if plan is None:
        plan_kwargs["chunks"] = options["chunks"]
        plan_kwargs["shards"] = _zipped_shards(where, image, options["chunks"], options["shards"])
    elif options["chunks"] is not None or options["shards"] is not None:
        log.warning("storage_options chunks/shards ignored: the plan given sets them")
    if plan is None:
        plan = plan_pyramid(image, **plan_kwargs)
    if plan.levels[0].shape != image.shape:
        raise ValueError(f"plan level 0 shape {plan.levels[0].shape} != image shape {image.shape}")
    if compressor is not DEFAULT_COMPRESSOR:
        plan = PyramidPlan(
            plan.levels, plan.method, plan.ngff_version, plan.dtype, plan.axes, compressor
        )
    label_plans = _label_plans_for(image, plan, as_is=False)
    return _write_store(
        image,
        dest,
        plan,
        label_plans,
        omero=omero,
        progress=progress,
        cancel=cancel,
        workers=workers,
        client=client,
    )


def write_levels(
    image: MultiscaleImage,
    path: StorePath,
    *,
    ngff_version: str = DEFAULT_NGFF_VERSION,
    chunks: AxisSizes | None = None,
    shards: AxisSizes | None = None,
    overwrite: bool = False,
    compressor: Compressor = DEFAULT_COMPRESSOR,
    omero: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    cancel: Cancel | None = None,
    workers: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
    client: ClientArg = None,
) -> Path | str:
    """Write every level of ``image`` as it is (no downsampling), e.g. a napari multiscale.

    Each level keeps its own scale and translation; labels in ``image.labels`` are
    written as they are under ``labels/<name>``.  Levels read from an OME-Zarr keep the
    multiscale ``type`` and ``metadata`` (the downsampling method) stored there.  Same
    safety, atomicity, progress, cancellation and ``client`` as :func:`write_pyramid`,
    whose parameters these are.
    """
    dest, array_options = _resolve(path, overwrite, storage_options)
    _check_zipped(dest.location, ngff_version)
    options = merge_storage_options(
        array_options, compressor=compressor, chunks=chunks, shards=shards
    )
    plan = plan_levels(
        image,
        chunks=options["chunks"],
        shards=_zipped_shards(dest.location, image, options["chunks"], options["shards"]),
        ngff_version=ngff_version,
        compressor=options["compressor"],
    )
    label_plans = _label_plans_for(image, plan, as_is=True)
    return _write_store(
        image,
        dest,
        plan,
        label_plans,
        omero=omero,
        progress=progress,
        cancel=cancel,
        workers=workers,
        client=client,
    )
