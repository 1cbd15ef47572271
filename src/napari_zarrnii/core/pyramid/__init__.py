"""Out-of-core pyramids: plan, downsample block by block, write OME-Zarr.

Plan, preview and write are kept apart:

* :func:`plan_pyramid` describes the levels to write (shape, factors, scale,
  translation, chunks, shards, size) without touching any data; the preview table of
  a widget is :meth:`PyramidPlan.table`.
* :func:`downsample_block` reduces one numpy block (``local_mean``, ``mode``,
  ``nearest``, ``max``, ``min``).
* :func:`write_pyramid` streams level 0 from the source in chunk-aligned blocks, then
  builds every next level from the previous level *as written*, block by block, with a
  bounded number of blocks in flight: peak memory is about ``block size x workers``
  (plus at most 64 MiB of blocks handed on), whatever the image size.  A block of level
  k+1 starts as soon as the blocks of level k it reads are written, so levels overlap;
  in threads, the tasks of level k also hand their blocks, downsampled, on to level
  k+1 in memory, so level k is not read back from the store.  Blocks are
  self-contained tasks (:func:`~.engine.run_block`) run by an executor: a thread pool,
  or the workers of a ``dask.distributed`` client (``client=``).  :func:`write_levels`
  writes the levels of an existing multiscale image as they are.

Modules: :mod:`.plan` (plans), :mod:`.kernels` (block reductions), :mod:`.codecs`
(compressors, storage options), :mod:`.engine` (block tasks, executors, the
scheduler), :mod:`.chunkio` (whole-chunk reads and writes in the worker),
:mod:`.cluster` (the dask.distributed executor), :mod:`.write` (stores).

A block is one output chunk (one shard when sharding), grouped up to ~1 MiB of input
when chunks are small; with a chunked source (dask, zarr) whose chunks are multiples of
the output chunks, level-0 blocks grow to whole source chunks so that none is computed
twice.  Source chunks that do not line up with the output chunks are read once per
output block that overlaps them: rechunk such a dask source to the output chunks.
Blocks that are entirely 0 (the fill value) are not written.

Conventions (documented once, here):

Factors
    ``downsample_factors`` and ``chunks`` follow the array's own axis order.  Factors
    apply to spatial axes only (time and channel axes are never downsampled).  Automatic
    factors first make anisotropic voxels near-isotropic (only axes finer than the
    coarsest by more than :math:`\\sqrt 2` shrink by 2), then shrink every spatial axis
    by 2.  An axis of one voxel is never shrunk and a factor larger than the axis is
    clipped to the axis size.  Planning stops early (fewer levels than asked) when no
    axis can shrink any more; the reason is logged.
Partial blocks
    An output axis has ``ceil(n / f)`` voxels; the last block along an axis uses the
    voxels present (its mean is the mean of those voxels).
Scale and translation
    ``scale_new = scale * f``.  Block reductions (``local_mean``, ``mode``, ``max``,
    ``min``) place the new voxel at the centre of its block:
    ``translation_new = translation + (f - 1) / 2 * scale``.  ``nearest`` keeps element 0
    of each block, so the translation does not change.
Rounding
    ``local_mean`` of integer data sums exactly in a wide integer type and rounds half to
    even (as :func:`numpy.rint`, unbiased over many levels): never truncated, never
    overflowing.  Float data is averaged in float64 and stored in its own dtype.
Labels
    Label images use a label-safe method: ``mode`` (default; most frequent value of a
    block, ties to the smallest, never a value absent from the block) or ``nearest``.
    Any other method asked for a label image falls back to ``mode`` with a logged
    warning (the facade passes one ``scaling_method`` for an image and its labels).
    A label image given as the image itself (``image.is_label``) is written as a
    multiscale image with ``image-label`` metadata at the root and no ``omero``: it
    validates against both the NGFF ``image`` and ``label`` schemas of 0.4 and 0.5.
    Its ``image-label.source`` is left out (there is no parent image to point at).
Compression
    The default codec is Blosc zstd, clevel 3, bit-shuffle, chosen by measuring speed and
    size together on smooth + noisy uint16 volumes (see :data:`DEFAULT_COMPRESSOR`).
"""

from .codecs import (
    DEFAULT_COMPRESSOR,
    Codec,
    Compressor,
    describe_compressor,
    resolve_compressor,
    resolve_storage_options,
)
from .engine import Cancel, CancelEvent, ProgressCallback
from .engine import _input_pieces as _input_pieces  # block geometry, imported by the tests
from .engine import _regions as _regions
from .engine import _task_unit as _task_unit
from .kernels import LABEL_METHODS, SCALING_METHODS, downsample_block
from .plan import (
    AxisSizes,
    Factors,
    LevelPlan,
    PyramidPlan,
    default_shards,
    plan_levels,
    plan_pyramid,
)
from .write import write_levels, write_pyramid

__all__ = [
    "DEFAULT_COMPRESSOR",
    "LABEL_METHODS",
    "SCALING_METHODS",
    "AxisSizes",
    "Cancel",
    "CancelEvent",
    "Codec",
    "Compressor",
    "Factors",
    "LevelPlan",
    "ProgressCallback",
    "PyramidPlan",
    "default_shards",
    "describe_compressor",
    "downsample_block",
    "plan_levels",
    "plan_pyramid",
    "resolve_compressor",
    "resolve_storage_options",
    "write_levels",
    "write_pyramid",
]
