"""Axis-aligned approximation of an image with a world affine, for stores without affines.

An oblique NIfTI image (or a napari layer with a rotation) reaches the model with
``scale``/``translation`` per level and a :attr:`~.model.MultiscaleImage.world_affine`
holding the rotation (and any shear) and the world offset.  OME-NGFF up to 0.5 stores
scale and translation only.  Writing scale and translation as they are would drop the
offset too and move the volume far from where it was (tens of millimetres for a head
scan); :func:`axis_aligned_approximation` instead keeps

- the voxel sizes (the lengths of the affine's columns times the level's scale), and
- the world position of the centre of every level,

and drops only the rotation/shear, which it describes (angle in degrees, rotation axis,
tilt of every axis) in a logged warning and in :attr:`~.model.MultiscaleImage.notes`.
A voxel then moves by at most ``2 sin(angle / 2)`` times its distance from the centre.

Versions that can store an affine (OME-NGFF 0.6 and later) keep the image as it is:
the function takes the NGFF version and returns the image unchanged for them, so the
0.6 writer stores the affine itself.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from .model import Level, MultiscaleImage

__all__ = ["axis_aligned_approximation", "describe_rotation"]

log = logging.getLogger(__name__)


#: Below this (per matrix element), what is left of an affine is no rotation.
_IDENTITY_ATOL = 1e-9


def _stores_affines(ngff_version: str | None) -> bool:
    from .ngff import spec_for

    return bool(ngff_version) and spec_for(ngff_version).stores_affine


def describe_rotation(matrix: np.ndarray, names: Sequence[str]) -> str:
    """Words for what an affine's linear part does besides scaling its axes.

    Parameters
    ----------
    matrix
        ``(k, k)`` linear part over ``k`` axes, columns scaled to unit length.
    names
        The names of the ``k`` axes, in the matrix order.

    Returns
    -------
    str
        E.g. ``"a rotation of 12.0 degrees about the axis (z, y, x) = (0, 0, 1)
        (axes tilted: z 12.0, y 12.0, x 0.0 degrees)"``, plus a shear or a reflection
        when there is one.
    """
    k = matrix.shape[0]
    u, _, vt = np.linalg.svd(matrix)
    nearest = u @ vt  # the closest orthogonal matrix (polar decomposition)
    parts = []
    reflected = np.linalg.det(nearest) < 0
    rotation = nearest.copy()
    if reflected:
        rotation[:, -1] *= -1
    label = ", ".join(names)
    if k == 3:
        angle = math.degrees(math.acos(float(np.clip((np.trace(rotation) - 1) / 2, -1, 1))))
        axis = np.array(
            [
                rotation[2, 1] - rotation[1, 2],
                rotation[0, 2] - rotation[2, 0],
                rotation[1, 0] - rotation[0, 1],
            ]
        )
        norm = float(np.linalg.norm(axis))
        if norm > 1e-12:
            axis /= norm
            if axis[int(np.argmax(np.abs(axis)))] < 0:  # name the line, not its sense
                axis = -axis
            about = ", ".join(f"{v:.3f}" for v in axis)
            parts.append(f"a rotation of {angle:.1f} degrees about the axis ({label}) = ({about})")
        else:
            parts.append(f"a rotation of {angle:.1f} degrees")
    elif k == 2:
        angle = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
        parts.append(f"a rotation of {abs(angle):.1f} degrees in the ({label}) plane")
    tilts = [
        math.degrees(math.acos(float(np.clip(abs(matrix[i, i]), -1.0, 1.0)))) for i in range(k)
    ]
    parts.append(
        "axes tilted by " + ", ".join(f"{n} {t:.1f}" for n, t in zip(names, tilts)) + " degrees"
    )
    if not np.allclose(matrix, nearest, atol=1e-6):
        parts.append("a shear (the axes were not perpendicular)")
    if reflected:
        parts.append("a reflection")
    return "; ".join(parts)


def axis_aligned_approximation(
    image: MultiscaleImage, ngff_version: str | None
) -> MultiscaleImage:
    """The image without its world affine, for an OME-NGFF version that cannot store one.

    Parameters
    ----------
    image
        Any model image; its label images are treated alike.
    ngff_version
        The version about to be written.  For versions that store affines (not in
        ``NgffSpec.stores_affine``, i.e. 0.6 and later) the image is returned as it
        is, and so is an image without ``world_affine``.

    Returns
    -------
    MultiscaleImage
        A copy without ``world_affine`` whose levels keep their voxel sizes (scale
        times the length of the affine's columns) and the world position of their
        centre; non-spatial axes are unchanged.  When a rotation or shear was dropped
        a warning is logged (and added to ``notes``) naming the angle in degrees, the
        rotation axis and the tilt of every spatial axis; a pure offset is folded into
        the translation without loss.
    """
    if _stores_affines(ngff_version):
        return image
    labels = {
        name: axis_aligned_approximation(label, ngff_version)
        for name, label in image.labels.items()
    }
    if image.world_affine is None:
        if all(labels[name] is label for name, label in image.labels.items()):
            return image
        return image.replace(labels=labels)
    spatial = list(image.spatial_axes)
    affine = np.asarray(image.world_affine, dtype=np.float64)
    linear = affine[np.ix_(spatial, spatial)]
    offset = affine[spatial, -1]
    lengths = np.linalg.norm(linear, axis=0)
    lengths = np.where(lengths > 0, lengths, 1.0)
    direction = linear / lengths
    levels = []
    for level in image.levels:
        shape = np.array([level.shape[i] for i in spatial], dtype=np.float64)
        scale = np.array([level.scale[i] for i in spatial], dtype=np.float64)
        trans = np.array([level.translation[i] for i in spatial], dtype=np.float64)
        centre = linear @ (trans + scale * (shape - 1) / 2) + offset
        new_scale = scale * lengths
        new_trans = centre - new_scale * (shape - 1) / 2
        full_scale, full_trans = list(level.scale), list(level.translation)
        for k, i in enumerate(spatial):
            full_scale[i] = float(new_scale[k])
            full_trans[i] = float(new_trans[k])
        levels.append(Level(level.path, level.data, tuple(full_scale), tuple(full_trans)))
    notes = list(image.notes)
    names = [image.axes[i].name for i in spatial]
    where = image.source or image.name or "image"
    if np.allclose(direction, np.eye(len(spatial)), atol=_IDENTITY_ATOL):
        log.info("%s: world offset folded into the translation (no rotation)", where)
    else:
        centre0 = levels[0].translation
        shape0 = image.levels[0].shape
        centre_text = ", ".join(
            f"{centre0[i] + levels[0].scale[i] * (shape0[i] - 1) / 2:.6g}" for i in spatial
        )
        units = {image.axes[i].unit for i in spatial}
        unit = f" {units.pop()}" if len(units) == 1 and None not in units else ""
        message = (
            f"OME-NGFF {ngff_version} stores no rotation: written axis-aligned, dropping "
            f"{describe_rotation(direction, names)}; voxel sizes kept and the centre of the "
            f"volume kept at ({', '.join(names)}) = ({centre_text}){unit}; "
            "OME-NGFF 0.6 keeps the rotation (ngff_version='0.6')"
        )
        notes.append(message)
        log.warning("%s: %s", where, message)
    return image.replace(levels=levels, world_affine=None, labels=labels, notes=notes)
