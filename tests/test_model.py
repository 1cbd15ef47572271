"""The core model: colour parsing."""

from __future__ import annotations

import pytest

from napari_zarrnii.core.model import normalize_color


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
