"""The core model: lazy channel views and colour parsing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_zarrnii.core.model import SlicedArray, normalize_color


def _key(shape, data):
    key = []
    for n in shape:
        if data.draw(st.booleans()):
            key.append(data.draw(st.integers(-n, n - 1)))
        else:
            bound = st.one_of(st.none(), st.integers(-n - 2, n + 2))
            step = st.one_of(st.none(), st.sampled_from([1, 2, 3, -1, -2]))
            key.append(slice(data.draw(bound), data.draw(bound), data.draw(step)))
    return tuple(key)


@settings(max_examples=300, deadline=None)
@given(st.data(), st.integers(0, 4), st.booleans())
def test_sliced_array_matches_numpy(data, channel, lazy):
    base = np.arange(5 * 6 * 7 * 8).reshape(5, 6, 7, 8)
    view = SlicedArray(base, (channel,))
    if lazy:
        view.LAZY_ABOVE = 0  # every composed result stays a view
    reference = base[channel]
    assert view.shape == reference.shape and view.dtype == reference.dtype
    key = _key(reference.shape, data)
    got = view[key]
    np.testing.assert_array_equal(np.asarray(got), reference[key])
    if isinstance(got, SlicedArray) and got.ndim:
        again = _key(got.shape, data)
        np.testing.assert_array_equal(np.asarray(got[again]), reference[key][again])


def test_large_results_stay_lazy_and_read_only_what_is_asked():
    reads = []

    class Spy:
        shape, dtype = (64, 256, 256), np.dtype("uint16")

        def __getitem__(self, key):
            reads.append(key)
            return np.zeros(
                tuple(
                    len(range(*k.indices(n)))
                    for k, n in zip(key, self.shape)
                    if isinstance(k, slice)
                ),
                self.dtype,
            )

    view = SlicedArray(Spy())
    tile = view[:, 0:200, 0:200]  # napari's first step: the tile over every plane
    assert isinstance(tile, SlicedArray) and not reads
    plane = np.asarray(tile[10])
    assert plane.shape == (200, 200)
    assert reads == [(10, slice(0, 200, 1), slice(0, 200, 1))]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("FF0000", "FF0000"),
        ("#00ff00", "00FF00"),
        ("0000FFFF", "0000FF"),
        ("blue", "0000FF"),
        ((1.0, 0.5, 0.0), "FF8000"),
        ((255, 255, 0, 255), "FFFF00"),
        (-16776961, "FF0000"),
        ("nonsense", None),
        (None, None),
        ((1, 2), None),
    ],
)
def test_normalize_color(value, expected):
    assert normalize_color(value) == expected
