"""OME-NGFF 0.6 coordinate systems and transformations (core/transforms.py, core/placement.py).

The examples marked "spec example" are the JSON examples of the 0.6 specification
(ngff-spec ``examples/transformations/*.json``) with the functions the specification
text says they define; points are mapped by hand from those functions.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_zarrnii import InvalidMetadataError
from napari_zarrnii._errors import SelectionError
from napari_zarrnii.core.model import Axis
from napari_zarrnii.core.placement import (
    Frame,
    resolve_multiscale,
    restrict_frame,
    split_placement,
)
from napari_zarrnii.core.transforms import (
    NotAffineError,
    diagonal_parts,
    inverse_matrix,
    parse_coordinate_systems,
    parse_transformation,
    parse_transformations,
    transformation_matrix,
)


def apply(m: np.ndarray, point) -> np.ndarray:
    return (np.asarray(m) @ np.array([*point, 1.0]))[:-1]


def matrix_of(raw: dict, n_in: int, n_out: int | None = None, **kwargs) -> np.ndarray:
    return transformation_matrix(parse_transformation(raw, "store", "t"), n_in, n_out, **kwargs)


def io(src: str = "in", dst: str = "out") -> dict:
    return {"input": {"name": src}, "output": {"name": dst}}


# -- coordinate systems ----------------------------------------------------------------------


def test_coordinate_systems_parse_axes_units_and_orientation():
    systems = parse_coordinate_systems(
        [
            {
                "name": "volume_micrometers",
                "axes": [
                    {"name": "z", "type": "space", "unit": "micrometer"},
                    {
                        "name": "y",
                        "type": "space",
                        "unit": "micrometer",
                        "orientation": {"type": "anatomical", "value": "anterior-to-posterior"},
                    },
                    {"name": "x", "unit": "micrometer", "discrete": False, "longName": "x axis"},
                ],
            },
            {"name": "t_c", "axes": [{"name": "t"}, {"name": "c"}]},
        ],
        "store",
        "multiscales[0].coordinateSystems",
    )
    assert [s.name for s in systems] == ["volume_micrometers", "t_c"]
    z, y, x = systems[0].axes
    assert z == Axis("z", "space", "micrometer")
    assert y.orientation == "anterior-to-posterior"
    assert x.type == "space"  # guessed from the name when no type is given
    assert [a.type for a in systems[1].axes] == ["time", "channel"]
    assert systems[0].ndim == 3


def test_orientation_only_known_values_on_space_axes(caplog):
    (system,) = parse_coordinate_systems(
        [
            {
                "name": "s",
                "axes": [
                    {"name": "c", "type": "channel", "orientation": "left-to-right"},
                    {"name": "y", "type": "space", "orientation": "sideways"},
                    {"name": "x", "type": "space", "orientation": "right-to-left"},
                ],
            }
        ],
        "store",
        "cs",
    )
    assert [a.orientation for a in system.axes] == [None, None, "right-to-left"]
    assert "sideways" in caplog.text


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ([], "cs"),
        ({"name": "a"}, "cs"),
        ([{"axes": [{"name": "x"}]}], "cs[0].name"),
        ([{"name": "a", "axes": []}], "cs[0].axes"),
        ([{"name": "a", "axes": [{"type": "space"}]}], "cs[0].axes[0]"),
        ([{"name": "a", "axes": [{"name": "x"}, {"name": "x"}]}], "cs[0].axes"),
        ([{"name": "a", "axes": [{"name": "x", "type": 3}]}], "cs[0].axes[0].type"),
        (
            [{"name": "a", "axes": [{"name": "x"}]}, {"name": "a", "axes": [{"name": "y"}]}],
            "cs[1].name",
        ),
    ],
)
def test_invalid_coordinate_systems_name_the_field(raw, field):
    with pytest.raises(InvalidMetadataError) as info:
        parse_coordinate_systems(raw, "store", "cs")
    assert info.value.field == field
    assert info.value.path == "store"


# -- one transformation at a time ------------------------------------------------------------


def test_identity():  # spec example identity.json: x = i, y = j
    m = matrix_of({"type": "identity", **io()}, 2, 2)
    assert np.allclose(apply(m, (3, 4)), (3, 4))


def test_scale():  # spec example scale.json, axes in = [j, i], out = [y, x]
    m = matrix_of({"type": "scale", "scale": [2, 3.12], **io()}, 2, 2)
    j, i = 5.0, 7.0
    assert np.allclose(apply(m, (j, i)), (2 * j, 3.12 * i))


def test_translation():  # spec example translation.json
    m = matrix_of({"type": "translation", "translation": [9, -1.42], **io()}, 2, 2)
    assert np.allclose(apply(m, (1.0, 2.0)), (10.0, 0.58))


def test_affine_2d_to_2d():  # spec example affine2d2d.json: y = 1j + 2i + 3, x = 4j + 5i + 6
    m = matrix_of({"type": "affine", "affine": [[1, 2, 3], [4, 5, 6]], **io()}, 2, 2)
    j, i = 2.0, -1.0
    assert np.allclose(apply(m, (j, i)), (j + 2 * i + 3, 4 * j + 5 * i + 6))


def test_affine_2d_to_3d():
    # spec example affine2d3d.json.  Its text reads the homogeneous coordinate as the
    # first column (z = 1), against the definition it illustrates (the upper rows of
    # the homogeneous matrix, translation last), affine2d2d.json and the example with
    # a channel; ngff-zarr and napari-ome-zarr also put the translation last.
    m = matrix_of({"type": "affine", "affine": [[1, 0, 0], [2, 3, 4], [5, 6, 7]], **io()}, 2, 3)
    assert m.shape == (4, 3)
    i, j = 2.0, 3.0
    assert np.allclose(apply(m, (i, j)), (i, 2 * i + 3 * j + 4, 5 * i + 6 * j + 7))


def test_affine_with_channel():  # spec example affine2d2d_with_channel.json
    raw = {"type": "affine", "affine": [[1, 0, 0, 0], [0, 1, 2, 3], [0, 4, 5, 6]], **io()}
    m = matrix_of(raw, 3, 3)
    assert np.allclose(apply(m, (1, 2, 3)), (1, 2 + 6 + 3, 8 + 15 + 6))


def test_affine_written_as_full_homogeneous_matrix_is_accepted():
    full = [[0, 2, 0, 1], [3, 0, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]]
    m = matrix_of({"type": "affine", "affine": full, **io()}, 3, 3)
    assert np.allclose(m, full)


def test_rotation():  # spec example rotation.json, in = [j, i], out = [y, x]
    m = matrix_of({"type": "rotation", "rotation": [[0, -1], [1, 0]], **io()}, 2, 2)
    j, i = 2.0, 5.0
    # row 0 gives the first output axis: y = 0*j - 1*i; row 1: x = 1*j + 0*i
    assert np.allclose(apply(m, (j, i)), (-i, j))


@pytest.mark.parametrize(
    ("perm", "point", "expected"),
    [
        ([0, 1], (2.0, 5.0), (2.0, 5.0)),  # spec example mapAxis1.json "equivalent to identity"
        ([1, 0], (2.0, 5.0), (5.0, 2.0)),  # "permutation": x = j, y = i
        ([2, 0, 1], (1.0, 2.0, 3.0), (3.0, 1.0, 2.0)),  # output i takes input perm[i]
        ([1, 2, 0], (1.0, 2.0, 3.0), (2.0, 3.0, 1.0)),
        ([0, 1, 3, 2], (1.0, 2.0, 3.0, 4.0), (1.0, 2.0, 4.0, 3.0)),
    ],
)
def test_map_axis(perm, point, expected):
    m = matrix_of({"type": "mapAxis", "mapAxis": perm, **io()}, len(perm), len(perm))
    assert np.allclose(apply(m, point), expected)
    # a permutation's inverse is the inverse permutation
    back = inverse_matrix(
        parse_transformation({"type": "mapAxis", "mapAxis": perm}, "", "t"), *[len(perm)] * 2
    )
    assert np.allclose(apply(back, expected), point)


def test_project_axis():  # spec examples projectAxis.json and projectAxis2.json
    up = matrix_of({"type": "projectAxis", "createdOutputs": [0, 1], **io()}, 2, 4)
    assert np.allclose(apply(up, (7.0, 8.0)), (0, 0, 7, 8))  # c = 0, z = 0, y = i, x = j
    swap = matrix_of(
        {"type": "projectAxis", "createdOutputs": [0], "droppedInputs": [0], **io()}, 3, 3
    )
    assert np.allclose(apply(swap, (5.0, 7.0, 8.0)), (0, 7, 8))  # z = 0, y = i, x = j


def test_sequence_applies_members_first_to_last():  # spec example sequence.json
    raw = {
        "type": "sequence",
        **io(),
        "transformations": [
            {"type": "translation", "translation": [0.1, 0.9]},
            {"type": "scale", "scale": [2, 3]},
        ],
    }
    i, j = 1.0, 2.0
    assert np.allclose(apply(matrix_of(raw, 2, 2), (i, j)), ((i + 0.1) * 2, (j + 0.9) * 3))
    raw["transformations"].reverse()
    assert np.allclose(apply(matrix_of(raw, 2, 2), (i, j)), (i * 2 + 0.1, j * 3 + 0.9))


def test_nested_sequences_and_dimension_changes():
    raw = {
        "type": "sequence",
        **io(),
        "transformations": [
            {"type": "affine", "affine": [[1, 0, 0], [0, 1, 0], [0, 0, 5]]},  # 2D -> 3D
            {
                "type": "sequence",
                "transformations": [
                    {"type": "mapAxis", "mapAxis": [1, 2, 0]},
                    {
                        "type": "sequence",
                        "transformations": [{"type": "scale", "scale": [1, 2, 3]}],
                    },
                ],
            },
            {"type": "translation", "translation": [10, 20, 30]},
        ],
    }
    m = matrix_of(raw, 2, 3)
    # (a, b) -> (a, b, 5) -> (b, 5, a) -> (b, 10, 3a) -> (b + 10, 30, 3a + 30)
    assert np.allclose(apply(m, (2.0, 3.0)), (13.0, 30.0, 36.0))


def test_by_dimension():  # spec examples byDimension1.json and byDimension2.json
    first = {
        "type": "byDimension",
        **io(),
        "transformations": [
            {
                "transformation": {"type": "translation", "translation": [-1.0]},
                "inputAxes": [1],
                "outputAxes": [1],
            },
            {
                "transformation": {"type": "scale", "scale": [2.0]},
                "inputAxes": [0],
                "outputAxes": [0],
            },
        ],
    }
    assert np.allclose(apply(matrix_of(first, 2, 2), (3.0, 4.0)), (6.0, 3.0))
    second = {
        "type": "byDimension",
        **io(),
        "transformations": [
            {
                "transformation": {"type": "translation", "translation": [0.5, 1.5]},
                "inputAxes": [3, 2],
                "outputAxes": [1, 2],
            },
            {
                "transformation": {"type": "scale", "scale": [2]},
                "inputAxes": [1],
                "outputAxes": [0],
            },
        ],
    }
    l_, j, k, i = 9.0, 1.0, 2.0, 3.0  # in = [l, j, k, i], out = [z, y, x]
    assert np.allclose(apply(matrix_of(second, 4, 3), (l_, j, k, i)), (2 * j, i + 0.5, k + 1.5))


def test_by_dimension_of_a_rotation_and_a_sequence():
    raw = {
        "type": "byDimension",
        **io(),
        "transformations": [
            {
                "transformation": {"type": "rotation", "rotation": [[0, -1], [1, 0]]},
                "inputAxes": [1, 2],
                "outputAxes": [1, 2],
            },
            {
                "transformation": {
                    "type": "sequence",
                    "transformations": [
                        {"type": "scale", "scale": [3]},
                        {"type": "translation", "translation": [1]},
                    ],
                },
                "inputAxes": [0],
                "outputAxes": [0],
            },
        ],
    }
    assert np.allclose(apply(matrix_of(raw, 3, 3), (2.0, 5.0, 7.0)), (7.0, -7.0, 5.0))


@pytest.mark.parametrize(
    ("items", "field"),
    [
        # spec example byDimensionInvalid1.json: output index 2 of a 2D system
        (
            [
                ({"type": "translation", "translation": [-1.0]}, [1], [2]),
                ({"type": "scale", "scale": [2.0]}, [0], [2]),
            ],
            "t.transformations[0].outputAxes",
        ),
        # spec example byDimensionInvalid2.json: output axis 1 set twice
        (
            [
                ({"type": "translation", "translation": [-1.0]}, [1], [1]),
                ({"type": "scale", "scale": [2.0]}, [1], [1]),
            ],
            "t.transformations[1].outputAxes",
        ),
        ([({"type": "scale", "scale": [2.0]}, [0], [0])], "t.transformations"),
        ([({"type": "scale", "scale": [2.0]}, [5], [0])], "t.transformations[0].inputAxes"),
        (
            [({"type": "scale", "scale": [2.0, 3.0]}, [0], [0, 1])],
            "t.transformations[0].transformation.scale",
        ),
    ],
)
def test_invalid_by_dimension_names_the_field(items, field):
    raw = {
        "type": "byDimension",
        **io(),
        "transformations": [
            {"transformation": t, "inputAxes": i, "outputAxes": o} for t, i, o in items
        ],
    }
    with pytest.raises(InvalidMetadataError) as info:
        matrix_of(raw, 2, 2)
    assert info.value.field == field


def test_bijection_uses_forward_and_its_inverse_member():
    raw = {
        "type": "bijection",
        **io(),
        "forward": {"type": "affine", "affine": [[2, 0, 1], [0, 2, 1]]},
        "inverse": {"type": "affine", "affine": [[0.5, 0, -0.5], [0, 0.5, -0.5]]},
    }
    t = parse_transformation(raw, "", "t")
    assert np.allclose(apply(transformation_matrix(t, 2, 2), (1, 2)), (3, 5))
    assert np.allclose(apply(inverse_matrix(t, 2, 2), (3, 5)), (1, 2))


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "scale", "scale": [2.0, 4.0, 0.5]},
        {"type": "translation", "translation": [1.0, -2.0, 3.0]},
        {"type": "affine", "affine": [[1, 2, 0, 1], [0, 1, 0, 2], [3, 0, 1, 3]]},
        {"type": "rotation", "rotation": [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]},
        {
            "type": "sequence",
            "transformations": [
                {"type": "scale", "scale": [2.0, 4.0, 0.5]},
                {"type": "mapAxis", "mapAxis": [2, 0, 1]},
                {"type": "translation", "translation": [1.0, -2.0, 3.0]},
            ],
        },
    ],
)
def test_closed_form_inverse(raw):
    t = parse_transformation(raw, "", "t")
    point = np.array([1.5, -2.0, 4.0])
    forward = apply(transformation_matrix(t, 3, 3), point)
    assert np.allclose(apply(inverse_matrix(t, 3, 3), forward), point)


def test_no_inverse_for_singular_or_dimension_changing_transformations():
    flat = parse_transformation({"type": "affine", "affine": [[1, 1, 0], [1, 1, 0]]}, "", "t")
    with pytest.raises(NotAffineError, match="not invertible"):
        inverse_matrix(flat, 2, 2)
    up = parse_transformation({"type": "projectAxis", "createdOutputs": [0]}, "", "t")
    with pytest.raises(NotAffineError, match="no inverse"):
        inverse_matrix(up, 2, 3)


@pytest.mark.parametrize("kind", ["displacements", "coordinates"])
def test_fields_are_no_affine(kind):
    t = parse_transformation(
        {"type": kind, "path": "fields/f", "interpolation": "linear"}, "", "t"
    )
    with pytest.raises(NotAffineError, match="fields/f"):
        transformation_matrix(t, 2, 2)


def test_matrix_from_a_parameter_array():
    raw = {"type": "affine", "path": "coordinateTransformations/a", **io()}
    stored = np.array([[0.0, 1.0, 5.0], [1.0, 0.0, 6.0]])
    asked = []

    def load(path):
        asked.append(path)
        return stored

    assert np.allclose(apply(matrix_of(raw, 2, 2, load=load), (1, 2)), (7, 7))
    assert asked == ["coordinateTransformations/a"]
    with pytest.raises(NotAffineError, match="not read"):
        matrix_of(raw, 2, 2)

    def broken(path):
        raise KeyError(path)

    with pytest.raises(NotAffineError, match="cannot be read"):
        matrix_of(raw, 2, 2, load=broken)


@pytest.mark.parametrize(
    ("raw", "n_in", "n_out", "field"),
    [
        ({"type": "scale", "scale": [1.0, 2.0]}, 3, 3, "t.scale"),
        ({"type": "translation", "translation": [1.0]}, 2, 2, "t.translation"),
        ({"type": "affine", "affine": [[1, 0], [0, 1]]}, 2, 2, "t.affine"),
        ({"type": "affine", "affine": [[1, 0, 0], [0, 1, 0]]}, 2, 3, "t"),
        ({"type": "rotation", "rotation": [[1, 1], [0, 1]]}, 2, 2, "t.rotation"),
        ({"type": "rotation", "rotation": [[1, 0], [0, -1]]}, 2, 2, "t.rotation"),  # det -1
        ({"type": "rotation", "rotation": [[1, 0], [0, 1]]}, 3, 3, "t.rotation"),
        ({"type": "mapAxis", "mapAxis": [1, 0]}, 3, 3, "t.mapAxis"),
        ({"type": "identity"}, 2, 3, "t"),
        ({"type": "projectAxis", "droppedInputs": [4]}, 3, None, "t.droppedInputs"),
        (
            {"type": "sequence", "transformations": [{"type": "scale", "scale": [1.0]}]},
            2,
            2,
            "t.transformations[0].scale",
        ),
    ],
)
def test_parameters_that_do_not_fit_the_dimensions_name_the_field(raw, n_in, n_out, field):
    with pytest.raises(InvalidMetadataError) as info:
        matrix_of(raw, n_in, n_out)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ([], "t"),
        ({"scale": [1.0]}, "t.type"),
        ({"type": "inverseOf", "transformation": {"type": "identity"}}, "t.type"),
        ({"type": "scale"}, "t.scale"),
        ({"type": "scale", "scale": [1.0, 0.0]}, "t.scale"),
        ({"type": "scale", "scale": ["1"]}, "t.scale"),
        ({"type": "scale", "scale": [1.0, float("nan")]}, "t.scale"),
        ({"type": "translation", "translation": [True]}, "t.translation"),
        ({"type": "affine"}, "t"),
        ({"type": "affine", "affine": [[1, 0, 0], [0, 1]]}, "t.affine"),
        ({"type": "rotation", "rotation": [1, 0]}, "t.rotation[0]"),
        ({"type": "mapAxis", "mapAxis": [0, 0]}, "t.mapAxis"),
        ({"type": "mapAxis", "mapAxis": [1, 2]}, "t.mapAxis"),
        ({"type": "mapAxis", "mapAxis": [0.5, 1]}, "t.mapAxis"),
        ({"type": "projectAxis"}, "t"),
        ({"type": "displacements"}, "t.path"),
        ({"type": "sequence", "transformations": []}, "t.transformations"),
        (
            {"type": "sequence", "transformations": [{"type": "scale", "scale": [0]}]},
            "t.transformations[0].scale",
        ),
        ({"type": "bijection", "forward": {"type": "identity"}}, "t.inverse"),
        ({"type": "byDimension", "transformations": [{"inputAxes": [0]}]}, ""),
        (
            {
                "type": "byDimension",
                "transformations": [{"transformation": {"type": "identity"}, "inputAxes": [0]}],
            },
            "t.transformations[0].outputAxes",
        ),
        ({"type": "scale", "scale": [1.0], "input": 3}, "t.input"),
        ({"type": "scale", "scale": [1.0], "output": {"name": 1}}, "t.output.name"),
    ],
)
def test_invalid_transformations_name_the_field(raw, field):
    with pytest.raises(InvalidMetadataError) as info:
        parse_transformation(raw, "store", "t")
    if field:
        assert info.value.field == field
    assert "store" in str(info.value)


def test_legacy_forms_are_read():
    # 0.6.dev drafts: a bare name as input/output, snake-case byDimension axes
    t = parse_transformation(
        {"type": "scale", "scale": [2.0], "input": "a", "output": "b"}, "", "t"
    )
    assert (t.input.name, t.output.name) == ("a", "b")
    raw = {
        "type": "byDimension",
        "transformations": [
            {"type": "scale", "scale": [2.0], "input_axes": [0], "output_axes": [1]},
            {"type": "scale", "scale": [3.0], "input_axes": [1], "output_axes": [0]},
        ],
    }
    assert np.allclose(apply(matrix_of(raw, 2, 2), (1.0, 1.0)), (3.0, 2.0))


def test_parse_transformations_list():
    items = parse_transformations([{"type": "identity"}, {"type": "scale", "scale": [2]}], "", "l")
    assert [t.field for t in items] == ["l[0]", "l[1]"]
    with pytest.raises(InvalidMetadataError):
        parse_transformations([], "", "l")


def test_diagonal_parts():
    assert diagonal_parts(np.diag([2.0, 3.0, 1.0])) == ((2.0, 3.0), (0.0, 0.0))
    shifted = np.array([[2.0, 0, 5], [0, -1.0, 6], [0, 0, 1]])
    assert diagonal_parts(shifted) == ((2.0, -1.0), (5.0, 6.0))
    assert diagonal_parts(np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, 1]])) is None
    assert diagonal_parts(np.array([[1.0, 1e-3, 0], [0, 1, 0], [0, 0, 1]])) is None
    assert diagonal_parts(np.diag([1.0, 0.0, 1.0])) is None
    noise = np.diag([1.0, 1.0, 1.0])
    noise[0, 1] = 1e-17  # rounding from cos(90 degrees)
    assert diagonal_parts(noise) is not None


# -- multiscales -----------------------------------------------------------------------------


def _ds(path: str, scale, translation=None, output: str = "intrinsic") -> dict:
    ends = {"input": {"path": path}, "output": {"name": output}}
    if translation is None:
        return {
            "path": path,
            "coordinateTransformations": [{"type": "scale", "scale": scale, **ends}],
        }
    return {
        "path": path,
        "coordinateTransformations": [
            {
                "type": "sequence",
                **ends,
                "transformations": [
                    {"type": "scale", "scale": scale},
                    {"type": "translation", "translation": translation},
                ],
            }
        ],
    }


YX = [{"name": "y", "type": "space", "unit": "micrometer"}, {"name": "x", "type": "space"}]


def test_spec_example_default_is_where_the_transformation_leads():
    # spec example multiscales_transformations.json: "physical" is listed first and
    # reached from "intrinsic": the image is shown there, as napari-ome-zarr does
    ms = {
        "coordinateSystems": [
            {"name": "physical", "axes": YX},
            {"name": "intrinsic", "axes": YX},
        ],
        "datasets": [_ds("s0", [1, 1])],
        "coordinateTransformations": [
            {"scale": [10, 10], "type": "scale", **io("intrinsic", "physical")}
        ],
    }
    resolved = resolve_multiscale(ms, path="store")
    assert resolved.intrinsic.name == "intrinsic" and resolved.frame.name == "physical"
    assert np.allclose(apply(resolved.frame.matrix, (1, 2)), (10, 20))
    assert resolved.notes == ["shown in coordinate system 'physical'; also defined: 'intrinsic'"]
    intrinsic = resolve_multiscale(ms, path="store", coordinate_system="intrinsic")
    assert intrinsic.frame.name == "intrinsic"
    assert np.allclose(intrinsic.frame.matrix, np.eye(3))
    # without a transformation out of it, the intrinsic system is shown
    del ms["coordinateTransformations"]
    assert resolve_multiscale(ms, path="store").frame.name == "intrinsic"


def test_unknown_coordinate_system_is_a_selection_error():
    ms = {
        "coordinateSystems": [{"name": "intrinsic", "axes": YX}],
        "datasets": [_ds("s0", [1, 1])],
    }
    with pytest.raises(SelectionError, match=r"'elsewhere'.*intrinsic"):
        resolve_multiscale(ms, path="store", coordinate_system="elsewhere")


def test_graph_forward_backward_and_multi_hop():
    rot = [[0, -1], [1, 0]]
    ms = {
        "coordinateSystems": [
            {"name": "intrinsic", "axes": YX},
            {"name": "a", "axes": YX},
            {"name": "b", "axes": YX},
            {"name": "c", "axes": YX},
        ],
        "datasets": [_ds("s0", [2, 2], [1, 1]), _ds("s1", [4, 4], [2, 2])],
        "coordinateTransformations": [
            {"type": "rotation", "rotation": rot, **io("intrinsic", "a")},
            # given from b to a: reaching b needs its inverse
            {"type": "translation", "translation": [100, 0], **io("b", "a")},
            {"type": "scale", "scale": [3, 3], **io("b", "c")},
        ],
    }
    point = np.array([5.0, 7.0])  # in intrinsic
    rotated = np.array([-7.0, 5.0])
    frames = {n: resolve_multiscale(ms, coordinate_system=n).frame for n in "abc"}
    assert np.allclose(apply(frames["a"].matrix, point), rotated)
    assert np.allclose(apply(frames["b"].matrix, point), rotated - [100, 0])
    assert np.allclose(apply(frames["c"].matrix, point), 3 * (rotated - [100, 0]))


def test_systems_reached_only_through_a_field_are_noted_not_shown():
    ms = {  # spec example displacements/multiscales.json
        "coordinateSystems": [
            {"name": "physical", "axes": YX},
            {"name": "output", "axes": YX},
        ],
        "datasets": [_ds("s0", [2.0, 2.0], output="physical")],
        "coordinateTransformations": [
            {
                "type": "displacements",
                **io("physical", "output"),
                "path": "coordinateTransformations/displacementField",
            }
        ],
    }
    for choice in (None, "output"):
        resolved = resolve_multiscale(ms, path="store", coordinate_system=choice)
        assert resolved.frame.name == "physical"
        assert np.allclose(resolved.frame.matrix, np.eye(3))
        assert any(
            "'output' cannot be shown" in n and "displacementField" in n for n in resolved.notes
        )


def test_invalid_multiscale_level_transformations_are_skipped_with_a_note():
    ms = {
        "coordinateSystems": [{"name": "intrinsic", "axes": YX}, {"name": "w", "axes": YX}],
        "datasets": [_ds("s0", [1, 1])],
        "coordinateTransformations": [
            {"type": "warp", **io("intrinsic", "w")},
            {"type": "scale", "scale": [2, 2], "input": {"name": "intrinsic"}},
            {"type": "scale", "scale": [2, 2], **io("intrinsic", "nowhere")},
        ],
    }
    resolved = resolve_multiscale(ms, path="store")
    text = "\n".join(resolved.notes)
    assert "coordinateTransformations[0].type ignored" in text
    assert "coordinateTransformations[1] ignored" in text
    assert "'w' cannot be shown" in text


def test_a_system_with_other_dimensions_is_not_shown():
    ms = {
        "coordinateSystems": [
            {"name": "intrinsic", "axes": YX},
            {"name": "volume", "axes": [{"name": "z"}, *YX]},
        ],
        "datasets": [_ds("s0", [1, 1])],
        "coordinateTransformations": [
            {"type": "projectAxis", "createdOutputs": [0], **io("intrinsic", "volume")}
        ],
    }
    resolved = resolve_multiscale(ms, coordinate_system="volume")
    assert resolved.frame.name == "intrinsic"
    assert any("'volume' cannot be shown: it has 3 axes" in n for n in resolved.notes)


@pytest.mark.parametrize(
    ("datasets", "field"),
    [
        (
            [_ds("s0", [1, 1], output="a"), _ds("s1", [2, 2], output="b")],
            "multiscales[0].datasets",
        ),
        ([_ds("s0", [1, 1], output="nowhere")], "multiscales[0].datasets[0]"),
        (
            [
                {
                    "path": "s0",
                    "coordinateTransformations": [
                        {"type": "scale", "scale": [1], **io("s0", "a")}
                    ],
                }
            ],
            "multiscales[0].datasets[0].coordinateTransformations[0].scale",
        ),
        ([{"path": "s0"}], "multiscales[0].datasets[0].coordinateTransformations"),
        (
            [
                {
                    "path": "s0",
                    "coordinateTransformations": [
                        {"type": "displacements", "path": "f", **io("s0", "a")}
                    ],
                }
            ],
            "multiscales[0].datasets[0].coordinateTransformations[0]",
        ),
        ([], "multiscales[0].datasets"),
    ],
)
def test_invalid_dataset_transformations_name_the_field(datasets, field):
    ms = {
        "coordinateSystems": [{"name": "a", "axes": YX}, {"name": "b", "axes": YX}],
        "datasets": datasets,
    }
    with pytest.raises(InvalidMetadataError) as info:
        resolve_multiscale(ms, path="store")
    assert info.value.field.startswith(field)


def test_dataset_without_output_uses_the_only_system():
    ms = {
        "coordinateSystems": [{"name": "only", "axes": YX}],
        "datasets": [
            {"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": [2, 3]}]}
        ],
    }
    resolved = resolve_multiscale(ms)
    assert resolved.intrinsic.name == "only"
    assert np.allclose(np.diag(resolved.to_intrinsic[0]), (2, 3, 1))


def test_label_links():
    ms = {
        "coordinateSystems": [{"name": "physical", "axes": YX}],
        "datasets": [_ds("s0", [1, 1], output="physical")],
        "coordinateTransformations": [
            {
                "type": "identity",
                "input": {"path": "labels/cells", "name": "physical"},
                "output": {"name": "physical"},
            },
            {
                "type": "translation",
                "translation": [5, 6],
                "input": {"name": "physical"},
                "output": {"path": "labels/nuclei", "name": "physical"},
            },
            {
                "type": "scale",
                "scale": [2, 2],
                "input": {"name": "physical"},
                "output": {"path": "../elsewhere", "name": "physical"},
            },
        ],
    }
    resolved = resolve_multiscale(ms)
    assert set(resolved.label_links) == {"cells", "nuclei"}
    assert np.allclose(resolved.label_links["cells"], np.eye(3))
    # image -> label is given: the label is placed by its inverse
    assert np.allclose(apply(resolved.label_links["nuclei"], (5, 6)), (0, 0))
    assert any("'../elsewhere' is no label image" in n for n in resolved.notes)


def test_parent_frame_places_a_label_by_axis_name():
    czyx = (Axis("c", "channel"), Axis("z", "space"), Axis("y", "space"), Axis("x", "space"))
    m = np.eye(5)
    m[1:4, 1:4] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]
    m[1:4, 4] = (1, 2, 3)
    parent = Frame("world", m, czyx, czyx)
    label = restrict_frame(parent, czyx[1:])
    assert label is not None and [a.name for a in label.axes] == ["z", "y", "x"]
    assert np.allclose(apply(label.matrix, (1, 2, 3)), (4, 4, 2))
    assert restrict_frame(parent, (Axis("q"),)) is None
    coupled = Frame("w", np.eye(3) + np.eye(3, k=1) * 0.5, czyx[2:], czyx[2:])
    assert restrict_frame(coupled, czyx[3:]) is None

    ms = {
        "coordinateSystems": [{"name": "own", "axes": [{"name": "z"}, *YX]}],
        "datasets": [_ds("0", [1, 1, 1], output="own")],
    }
    resolved = resolve_multiscale(ms, parent=parent)
    assert resolved.frame.name == "world"
    assert np.allclose(resolved.frame.matrix, label.matrix)


def test_split_placement():
    levels = [np.diag([2.0, 2.0, 1.0]), np.diag([4.0, 4.0, 1.0])]
    levels[1][:2, 2] = 1.0
    scale_only = np.diag([10.0, 0.5, 1.0])
    scale_only[:2, 2] = (100, 200)
    scales, translations, affine = split_placement(levels, scale_only)
    assert affine is None
    assert scales == [(20.0, 1.0), (40.0, 2.0)]
    assert translations == [(100.0, 200.0), (110.0, 200.5)]

    rotation = np.array([[0.0, -1, 3], [1, 0, 4], [0, 0, 1]])
    scales, translations, affine = split_placement(levels, rotation)
    assert np.allclose(affine, rotation)
    assert scales == [(2.0, 2.0), (4.0, 4.0)] and translations[1] == (1.0, 1.0)

    # datasets that are no scale/translation themselves (out of spec): level 0 carries it
    sheared = [np.array([[1.0, 1, 0], [0, 1, 0], [0, 0, 1]])]
    sheared.append(sheared[0] @ np.diag([2.0, 2.0, 1.0]))
    scales, translations, affine = split_placement(sheared, np.eye(3))
    assert np.allclose(affine, sheared[0])
    assert scales == [(1.0, 1.0), (2.0, 2.0)]
    for lvl, (s, t) in enumerate(zip(scales, translations)):
        placed = affine @ np.array([[s[0], 0, t[0]], [0, s[1], t[1]], [0, 0, 1]])
        assert np.allclose(placed, sheared[lvl])

    twisted = [sheared[0], np.eye(3)]
    with pytest.raises(InvalidMetadataError, match="rotated or sheared"):
        split_placement(twisted, np.eye(3), field="multiscales[0]")
