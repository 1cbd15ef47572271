"""A generated sample: a two-channel 3-D pyramid with omero metadata and labels.

Made in memory in well under a second, so File > Open Sample, the demo and the tests
need no download.
"""

from __future__ import annotations

import numpy as np

from .model import Axis, ChannelInfo, Level, MultiscaleImage, Window

__all__ = ["make_sample_image"]


def _block_mean(arr: np.ndarray, f: int) -> np.ndarray:
    z, y, x = (s // f for s in arr.shape)
    return arr[: z * f, : y * f, : x * f].reshape(z, f, y, f, x, f).mean(axis=(1, 3, 5))


def make_sample_image(
    shape: tuple[int, int, int] = (32, 192, 192),
    n_levels: int = 3,
    n_cells: int | None = None,
    seed: int = 0,
    voxel_size: tuple[float, float, float] = (2.0, 0.5, 0.5),
) -> MultiscaleImage:
    """A synthetic tissue: nuclei (DAPI) and cytoplasm (GFP) channels plus a label image.

    Parameters
    ----------
    shape
        Level-0 shape (z, y, x); every level halves the spatial axes.
    n_levels
        Number of pyramid levels.
    n_cells
        Number of cells (default: one per 20 µm cube of tissue).
    seed
        Random seed: the same seed gives the same image.
    voxel_size
        Level-0 voxel size in micrometres (z, y, x).

    Notes
    -----
    Each cell is drawn only inside its own neighbourhood, so the time grows with the
    number of cells, not with the number of cells times the volume.
    """
    rng = np.random.default_rng(seed)
    shape_arr = np.array(shape)
    if n_cells is None:
        n_cells = max(4, round(float(np.prod(shape_arr * np.array(voxel_size))) / 20.0**3))
    nuclei = np.zeros(shape, np.float32)
    cyto = np.zeros(shape, np.float32)
    labels = np.zeros(shape, np.uint16)
    aniso = np.array(voxel_size) / min(voxel_size)
    margin = np.minimum(np.ceil(4.0 / aniso), shape_arr // 4)
    centres = rng.uniform(margin, shape_arr - margin, size=(n_cells, 3))
    radii = rng.uniform(5.0, 9.0, size=n_cells)  # in finest-voxel units
    for i, (c, r) in enumerate(zip(centres, radii)):
        reach = np.ceil(4.0 * r / aniso).astype(int)  # cytoplasm fades out by 4 radii
        lo = np.maximum(np.floor(c).astype(int) - reach, 0)
        hi = np.minimum(np.floor(c).astype(int) + reach + 1, shape_arr)
        window = tuple(slice(a, b) for a, b in zip(lo, hi))
        d2 = [
            ((np.arange(a, b, dtype=np.float32) - cc) * f / r) ** 2
            for a, b, cc, f in zip(lo, hi, c, aniso)
        ]
        dist2 = d2[0][:, None, None] + d2[1][None, :, None] + d2[2][None, None, :]
        nuclei[window] += np.exp(-dist2 * 2.0) * rng.uniform(0.6, 1.0)
        cyto[window] += np.exp(-dist2 / 4.0) * rng.uniform(0.3, 0.6)
        labels[window][dist2 < 0.5] = i + 1
    noise = rng.normal(0.0, 0.02, size=(2, *shape)).astype(np.float32)
    stack = np.stack([nuclei, cyto]) + noise
    data = np.clip(stack * 3000.0 + 100.0, 0, 65535).astype(np.uint16)

    axes = (Axis("c", "channel"), *(Axis(n, "space", "micrometer") for n in "zyx"))
    levels: list[Level] = []
    label_levels: list[Level] = []
    scale = np.array(voxel_size, float)
    mean_translation = np.zeros(3)  # a block mean sits at the centre of its block
    current, current_labels = data, labels
    for i in range(n_levels):
        levels.append(Level(str(i), current, (1.0, *scale), (0.0, *mean_translation)))
        # labels are strided (every 2nd voxel): they keep the first voxel's position
        label_levels.append(Level(str(i), current_labels, tuple(scale), (0.0, 0.0, 0.0)))
        mean_translation = mean_translation + scale / 2
        scale = scale * 2
        current = np.stack([np.rint(_block_mean(ch, 2)).astype(np.uint16) for ch in current])
        current_labels = current_labels[::2, ::2, ::2][
            : current.shape[1], : current.shape[2], : current.shape[3]
        ]
    label = MultiscaleImage(
        axes=axes[1:],
        levels=label_levels,
        name="cells",
        is_label=True,
        label_properties=[
            {"label-value": i + 1, "radius_um": round(float(r) * min(voxel_size), 2)}
            for i, r in enumerate(radii)
        ],
    )
    hi = [float(np.percentile(level, 99.9)) for level in levels[-1].data]
    return MultiscaleImage(
        axes=axes,
        levels=levels,
        name="zarrnii sample",
        channels=[
            ChannelInfo("DAPI", "0000FF", Window(100.0, hi[0], 0.0, 65535.0)),
            ChannelInfo("GFP", "00FF00", Window(100.0, hi[1], 0.0, 65535.0)),
        ],
        labels={"cells": label},
    )
