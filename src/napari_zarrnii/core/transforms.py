"""OME-NGFF 0.6 coordinate systems and coordinate transformations (RFC-5), as data.

Nothing here does I/O.  :func:`parse_coordinate_systems` and
:func:`parse_transformation` turn the JSON of a ``multiscales`` entry into
:class:`CoordinateSystem` and :class:`Transformation` values, naming the field at
fault in :class:`~napari_zarrnii.InvalidMetadataError`; :func:`transformation_matrix`
turns every transformation an affine can express (identity, scale, translation,
affine, rotation, mapAxis, projectAxis, sequence, byDimension and bijection of
those) into one homogeneous matrix, :func:`inverse_matrix` gives the way back, and
:func:`diagonal_parts` tells a scale and translation from anything more.
:mod:`.placement` follows them from the arrays to the system an image is shown in.

Facts from the 0.6 specification this module relies on:

* Matrices are applied to column vectors of coordinates in the order of the
  system's axes; ``affine`` is stored as its upper ``M x (N+1)`` rows, ``rotation``
  as ``N x N``; ``mapAxis[i]`` is the input axis that becomes output axis ``i``.
* ``sequence`` applies its members first to last.
* ``displacements`` and ``coordinates`` are vector fields: not affine.  A system
  reached only through one is reported in the notes, not shown.
* Matrices may be stored in a zarr array (``path``); they are read through the
  ``load`` callback the caller gives (the reader does; tests need not).
* ``inverseOf`` was removed in 0.6.dev3; ``bijection`` names both directions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import InvalidMetadataError, ZarrNiiError
from .model import Axis, axis_type_of

__all__ = [
    "ORIENTATION_VALUES",
    "TRANSFORMATION_TYPES",
    "ArrayLoader",
    "CoordinateSystem",
    "NotAffineError",
    "SystemRef",
    "Transformation",
    "diagonal_parts",
    "inverse_matrix",
    "parse_axis",
    "parse_coordinate_systems",
    "parse_orientation",
    "parse_transformation",
    "parse_transformations",
    "transformation_matrix",
]

log = logging.getLogger(__name__)

#: The transformation types of OME-NGFF 0.6 (``inverseOf`` was removed in 0.6.dev3).
TRANSFORMATION_TYPES = (
    "identity",
    "mapAxis",
    "projectAxis",
    "translation",
    "scale",
    "affine",
    "rotation",
    "sequence",
    "displacements",
    "coordinates",
    "bijection",
    "byDimension",
)

#: RFC-4 anatomical orientation values (``{"type": "anatomical", "value": ...}``).
ORIENTATION_VALUES = (
    "left-to-right",
    "right-to-left",
    "anterior-to-posterior",
    "posterior-to-anterior",
    "inferior-to-superior",
    "superior-to-inferior",
    "dorsal-to-ventral",
    "ventral-to-dorsal",
    "dorsal-to-palmar",
    "palmar-to-dorsal",
    "dorsal-to-plantar",
    "plantar-to-dorsal",
    "rostral-to-caudal",
    "caudal-to-rostral",
    "cranial-to-caudal",
    "caudal-to-cranial",
    "proximal-to-distal",
    "distal-to-proximal",
    "superficial-to-deep",
    "deep-to-superficial",
    "apical-to-basal",
    "basal-to-apical",
    "apex-to-base",
    "base-to-apex",
)

#: Reads the zarr array at a path relative to the multiscale group (matrix parameters).
ArrayLoader = Callable[[str], Any]

#: how far from orthonormal a stored rotation may be (float32 round trips)
_ROTATION_TOL = 1e-5


class NotAffineError(ZarrNiiError, ValueError):
    """A transformation that no affine matrix expresses (a field, an unread array, ...)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


# -- coordinate systems -------------------------------------------------------------------


@dataclass(frozen=True)
class CoordinateSystem:
    """A named coordinate system: its axes, in the order of coordinate vectors."""

    name: str
    axes: tuple[Axis, ...]

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.axes)


def parse_orientation(raw: Any, path: str, field: str) -> str | None:
    """The RFC-4 anatomical orientation of an axis (its ``value``), or None.

    RFC-4 spells it ``{"type": "anatomical", "value": "left-to-right"}``; a bare
    string is accepted too.  Other orientation types and unknown values are kept
    out of the model with a logged warning, never an error: orientation is advice.
    """
    if raw is None:
        return None
    kind: Any
    value: Any
    if isinstance(raw, str):
        kind, value = "anatomical", raw
    elif isinstance(raw, Mapping):
        kind, value = raw.get("type", "anatomical"), raw.get("value")
    else:
        log.warning("%s: %s is not an orientation object; ignored", path, field)
        return None
    if kind != "anatomical" or value not in ORIENTATION_VALUES:
        log.warning("%s: %s %r is no known anatomical orientation; ignored", path, field, raw)
        return None
    return str(value)


def parse_axis(raw: Any, path: str, field: str) -> Axis:
    """One axis object: name, type (guessed from t/c/z/y/x when absent), unit, orientation."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise InvalidMetadataError(path, field, "an axis needs a non-empty 'name'")
    name = raw["name"]
    kind = raw.get("type")
    if kind is not None and not isinstance(kind, str):
        raise InvalidMetadataError(path, f"{field}.type", f"must be a string, not {kind!r}")
    kind = kind or axis_type_of(name, None)
    unit = raw.get("unit")
    orientation = parse_orientation(raw.get("orientation"), path, f"{field}.orientation")
    if orientation is not None and kind != "space":
        log.warning("%s: %s: orientation on a %s axis ignored", path, field, kind)
        orientation = None
    return Axis(name, kind, unit if isinstance(unit, str) else None, orientation)


def parse_coordinate_systems(raw: Any, path: str, field: str) -> tuple[CoordinateSystem, ...]:
    """The ``coordinateSystems`` list: named, with unique names and unique axis names."""
    if not isinstance(raw, list) or not raw:
        raise InvalidMetadataError(path, field, "must be a non-empty list of coordinate systems")
    systems: list[CoordinateSystem] = []
    for i, item in enumerate(raw):
        where = f"{field}[{i}]"
        if not isinstance(item, Mapping):
            raise InvalidMetadataError(path, where, "a coordinate system must be an object")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidMetadataError(path, f"{where}.name", "needs a non-empty name")
        axes_raw = item.get("axes")
        if not isinstance(axes_raw, list) or not axes_raw:
            raise InvalidMetadataError(path, f"{where}.axes", "must be a non-empty list")
        axes = tuple(parse_axis(a, path, f"{where}.axes[{k}]") for k, a in enumerate(axes_raw))
        names = [a.name for a in axes]
        if len(set(names)) != len(names):
            raise InvalidMetadataError(path, f"{where}.axes", f"duplicate axis names {names}")
        if any(s.name == name for s in systems):
            raise InvalidMetadataError(path, f"{where}.name", f"duplicate name {name!r}")
        systems.append(CoordinateSystem(name, axes))
    return tuple(systems)


# -- transformations ------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemRef:
    """The ``input``/``output`` of a transformation: a system ``name``, a ``path``, or both."""

    name: str | None = None
    path: str | None = None


@dataclass(frozen=True)
class Transformation:
    """One parsed coordinate transformation (members of wrappers in ``children``).

    ``field`` is where it stands in the metadata (``multiscales[0].datasets[1]
    .coordinateTransformations[0]``), for messages.  Parameters are kept as given:
    ``vector`` (scale, translation), ``matrix`` (affine rows, rotation),
    ``permutation`` (mapAxis), ``dropped``/``created`` (projectAxis), ``path`` (a
    parameter array or vector field), ``children`` (sequence members, byDimension
    items with their ``axes``, bijection ``forward`` and ``inverse``).
    """

    type: str
    field: str
    input: SystemRef | None = None
    output: SystemRef | None = None
    name: str | None = None
    vector: tuple[float, ...] | None = None
    matrix: tuple[tuple[float, ...], ...] | None = None
    permutation: tuple[int, ...] | None = None
    dropped: tuple[int, ...] = ()
    created: tuple[int, ...] = ()
    path: str | None = None
    children: tuple[Transformation, ...] = ()
    axes: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = ()

    def describe(self) -> str:
        """``type`` with its systems, e.g. ``affine 'intrinsic' -> 'world'``."""
        ends = [self.input, self.output]
        if all(e is not None for e in ends):
            text = " -> ".join(_ref_text(e) for e in ends if e is not None)
            return f"{self.type} {text}"
        return self.type


def _ref_text(ref: SystemRef) -> str:
    if ref.path and ref.name:
        return f"'{ref.path}/{ref.name}'"
    return f"'{ref.name or ref.path}'"


def _ref(raw: Any, path: str, field: str) -> SystemRef | None:
    if raw is None:
        return None
    if isinstance(raw, str):  # 0.6.dev1-dev3 allowed a bare name
        return SystemRef(name=raw)
    if not isinstance(raw, Mapping):
        raise InvalidMetadataError(path, field, "must be an object with 'name' and/or 'path'")
    name, where = raw.get("name"), raw.get("path")
    for key, value in (("name", name), ("path", where)):
        if value is not None and not isinstance(value, str):
            raise InvalidMetadataError(path, f"{field}.{key}", f"must be a string, not {value!r}")
    return SystemRef(name=name or None, path=where or None)


def _numbers(value: Any, path: str, field: str) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidMetadataError(path, field, "must be a non-empty list of numbers")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
        raise InvalidMetadataError(path, field, f"must hold numbers only, not {value!r}")
    out = tuple(float(v) for v in value)
    if not all(np.isfinite(out)):
        raise InvalidMetadataError(path, field, "values must be finite")
    return out


def _rows(value: Any, path: str, field: str) -> tuple[tuple[float, ...], ...]:
    if not isinstance(value, list) or not value:
        raise InvalidMetadataError(path, field, "must be a non-empty list of rows")
    rows = tuple(_numbers(r, path, f"{field}[{i}]") for i, r in enumerate(value))
    if len({len(r) for r in rows}) != 1:
        raise InvalidMetadataError(path, field, "rows must all have the same length")
    return rows


def _indices(value: Any, path: str, field: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidMetadataError(path, field, "must be a non-empty list of axis indices")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or v < 0:
            raise InvalidMetadataError(
                path, field, f"axis indices are integers from 0, not {value!r}"
            )
        out.append(int(v))
    if len(set(out)) != len(out):
        raise InvalidMetadataError(path, field, f"indices must be unique, not {value!r}")
    return tuple(out)


def parse_transformation(raw: Any, path: str, field: str) -> Transformation:
    """One coordinate transformation object, validated (members of wrappers too).

    Raises
    ------
    InvalidMetadataError
        Naming ``path`` and the field at fault, e.g.
        ``multiscales[0].coordinateTransformations[0].transformations[1].scale``.
    """
    if not isinstance(raw, Mapping):
        raise InvalidMetadataError(path, field, "a transformation must be an object")
    kind = raw.get("type")
    if kind not in TRANSFORMATION_TYPES:
        raise InvalidMetadataError(path, f"{field}.type", f"unknown transformation type {kind!r}")
    name = raw.get("name")
    common: dict[str, Any] = {
        "type": kind,
        "field": field,
        "input": _ref(raw.get("input"), path, f"{field}.input"),
        "output": _ref(raw.get("output"), path, f"{field}.output"),
        "name": name if isinstance(name, str) else None,
    }
    where = raw.get("path")
    if where is not None and not isinstance(where, str):
        raise InvalidMetadataError(path, f"{field}.path", f"must be a string, not {where!r}")
    if kind == "identity":
        return Transformation(**common)
    if kind in ("scale", "translation"):
        if kind not in raw and where is not None:  # before 0.6.dev3 an array could hold them
            return Transformation(**common, path=where)
        values = _numbers(raw.get(kind), path, f"{field}.{kind}")
        if kind == "scale" and any(v == 0 for v in values):
            raise InvalidMetadataError(path, f"{field}.scale", "scale factors must not be 0")
        return Transformation(**common, vector=values)
    if kind in ("affine", "rotation"):
        if kind in raw:
            return Transformation(**common, matrix=_rows(raw[kind], path, f"{field}.{kind}"))
        if where is None:
            raise InvalidMetadataError(
                path, field, f"{kind} needs '{kind}' (a list of rows) or 'path' (an array)"
            )
        return Transformation(**common, path=where)
    if kind == "mapAxis":
        perm = _indices(raw.get("mapAxis"), path, f"{field}.mapAxis")
        if sorted(perm) != list(range(len(perm))):
            raise InvalidMetadataError(
                path,
                f"{field}.mapAxis",
                f"must name every input axis 0..{len(perm) - 1} once, not {list(perm)}",
            )
        return Transformation(**common, permutation=perm)
    if kind == "projectAxis":
        dropped = raw.get("droppedInputs")
        created = raw.get("createdOutputs")
        if dropped is None and created is None:
            raise InvalidMetadataError(
                path, field, "projectAxis needs 'droppedInputs' and/or 'createdOutputs'"
            )
        return Transformation(
            **common,
            dropped=_indices(dropped, path, f"{field}.droppedInputs")
            if dropped is not None
            else (),
            created=_indices(created, path, f"{field}.createdOutputs")
            if created is not None
            else (),
        )
    if kind in ("displacements", "coordinates"):
        if where is None:
            raise InvalidMetadataError(
                path, f"{field}.path", f"{kind} needs the 'path' of its field"
            )
        return Transformation(**common, path=where)
    if kind == "sequence":
        members = raw.get("transformations")
        if not isinstance(members, list) or not members:
            raise InvalidMetadataError(
                path, f"{field}.transformations", "must be a non-empty list"
            )
        children = tuple(
            parse_transformation(m, path, f"{field}.transformations[{i}]")
            for i, m in enumerate(members)
        )
        return Transformation(**common, children=children)
    if kind == "bijection":
        parts = []
        for key in ("forward", "inverse"):
            if key not in raw:
                raise InvalidMetadataError(path, f"{field}.{key}", "bijection needs it")
            parts.append(parse_transformation(raw[key], path, f"{field}.{key}"))
        return Transformation(**common, children=tuple(parts))
    # byDimension
    items = raw.get("transformations")
    if not isinstance(items, list) or not items:
        raise InvalidMetadataError(path, f"{field}.transformations", "must be a non-empty list")
    children_list: list[Transformation] = []
    axes: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    for i, item in enumerate(items):
        where_i = f"{field}.transformations[{i}]"
        if not isinstance(item, Mapping):
            raise InvalidMetadataError(path, where_i, "must be an object")
        # 0.6.dev drafts put the axes on the member itself, in snake case
        inner = item.get("transformation", item if "type" in item else None)
        if inner is None:
            raise InvalidMetadataError(path, f"{where_i}.transformation", "is missing")
        ins = item.get("inputAxes", item.get("input_axes"))
        outs = item.get("outputAxes", item.get("output_axes"))
        axes.append(
            (
                _indices(ins, path, f"{where_i}.inputAxes"),
                _indices(outs, path, f"{where_i}.outputAxes"),
            )
        )
        children_list.append(parse_transformation(inner, path, f"{where_i}.transformation"))
    return Transformation(**common, children=tuple(children_list), axes=tuple(axes))


def parse_transformations(raw: Any, path: str, field: str) -> list[Transformation]:
    """A ``coordinateTransformations`` list (each item parsed)."""
    if not isinstance(raw, list) or not raw:
        raise InvalidMetadataError(path, field, "must be a non-empty list of transformations")
    return [parse_transformation(t, path, f"{field}[{i}]") for i, t in enumerate(raw)]


# -- matrices -------------------------------------------------------------------------------


def _loaded(t: Transformation, load: ArrayLoader | None) -> np.ndarray:
    """Parameters stored in the zarr array at ``t.path``."""
    if load is None:
        raise NotAffineError(t.field, f"parameters stored in array '{t.path}' were not read")
    try:
        values = np.asarray(load(str(t.path)), dtype=float)
    except (ZarrNiiError, KeyError, ValueError, TypeError, OSError) as exc:
        raise NotAffineError(
            t.field, f"parameter array '{t.path}' cannot be read ({type(exc).__name__}: {exc})"
        ) from exc
    if not np.all(np.isfinite(values)):
        raise NotAffineError(t.field, f"parameter array '{t.path}' holds non-finite values")
    return values


def _check_dims(t: Transformation, key: str, got: int, want: int, what: str, path: str) -> None:
    if got != want:
        raise InvalidMetadataError(
            path, f"{t.field}.{key}", f"has {got} {what}, the input has {want} axes"
        )


def _matrix(
    t: Transformation, n_in: int, n_out: int | None, path: str, load: ArrayLoader | None
) -> np.ndarray:
    m = _matrix_free(t, n_in, n_out, path, load)
    if n_out is not None and m.shape[0] - 1 != n_out:
        raise InvalidMetadataError(
            path,
            t.field,
            f"{t.type} maps {n_in} axes to {m.shape[0] - 1}, the output system has {n_out}",
        )
    return m


def _matrix_free(
    t: Transformation, n_in: int, n_out: int | None, path: str, load: ArrayLoader | None
) -> np.ndarray:
    """The matrix of ``t`` from ``n_in`` axes; ``n_out`` only where ``t`` cannot tell."""
    kind = t.type
    if kind == "identity":
        return np.eye(n_in + 1)
    if kind in ("scale", "translation"):
        vec = np.asarray(t.vector if t.vector is not None else _loaded(t, load), dtype=float)
        vec = vec.ravel()
        _check_dims(t, kind, vec.size, n_in, "values", path)
        m = np.eye(n_in + 1)
        if kind == "scale":
            if np.any(vec == 0):
                raise InvalidMetadataError(path, f"{t.field}.scale", "scale factors must not be 0")
            m[:n_in, :n_in] = np.diag(vec)
        else:
            m[:n_in, n_in] = vec
        return m
    if kind == "affine":
        rows = np.asarray(t.matrix if t.matrix is not None else _loaded(t, load), dtype=float)
        if rows.ndim != 2:
            raise InvalidMetadataError(path, f"{t.field}.affine", "must be a 2-D matrix")
        _check_dims(t, "affine", rows.shape[1] - 1, n_in, "columns besides the last", path)
        bottom = np.eye(n_in + 1)[-1]
        if rows.shape[0] == n_in + 1 and np.allclose(rows[-1], bottom):
            rows = rows[:-1]  # the full homogeneous matrix, written out: accept it
        return np.vstack([rows, np.eye(n_in + 1)[-1:]])
    if kind == "rotation":
        rot = np.asarray(t.matrix if t.matrix is not None else _loaded(t, load), dtype=float)
        if rot.ndim != 2 or rot.shape[0] != rot.shape[1]:
            raise InvalidMetadataError(path, f"{t.field}.rotation", "must be a square matrix")
        _check_dims(t, "rotation", rot.shape[0], n_in, "rows", path)
        if not np.allclose(rot @ rot.T, np.eye(n_in), atol=_ROTATION_TOL) or not np.isclose(
            np.linalg.det(rot), 1.0, atol=_ROTATION_TOL
        ):
            raise InvalidMetadataError(
                path, f"{t.field}.rotation", "must be orthonormal with determinant 1"
            )
        m = np.eye(n_in + 1)
        m[:n_in, :n_in] = rot
        return m
    if kind == "mapAxis":
        perm = t.permutation or ()
        _check_dims(t, "mapAxis", len(perm), n_in, "indices", path)
        m = np.zeros((n_in + 1, n_in + 1))
        for i, p in enumerate(perm):
            m[i, p] = 1.0
        m[-1, -1] = 1.0
        return m
    if kind == "projectAxis":
        if any(d >= n_in for d in t.dropped):
            raise InvalidMetadataError(
                path, f"{t.field}.droppedInputs", f"indices must be below {n_in}"
            )
        out_dim = n_in - len(t.dropped) + len(t.created)
        if any(c >= out_dim for c in t.created):
            raise InvalidMetadataError(
                path, f"{t.field}.createdOutputs", f"indices must be below {out_dim}"
            )
        kept_in = [i for i in range(n_in) if i not in t.dropped]
        kept_out = [i for i in range(out_dim) if i not in t.created]
        m = np.zeros((out_dim + 1, n_in + 1))
        for o, i in zip(kept_out, kept_in):
            m[o, i] = 1.0
        m[-1, -1] = 1.0
        return m
    if kind == "sequence":
        acc = np.eye(n_in + 1)
        for k, child in enumerate(t.children):
            last = k == len(t.children) - 1
            acc = _matrix(child, acc.shape[0] - 1, n_out if last else None, path, load) @ acc
        return acc
    if kind == "bijection":
        return _matrix(t.children[0], n_in, n_out, path, load)
    if kind == "byDimension":
        return _by_dimension(t, n_in, n_out, path, load)
    what = "displacement" if kind == "displacements" else "coordinate"
    raise NotAffineError(t.field, f"a {what} field ('{t.path}') is no affine transformation")


def _by_dimension(
    t: Transformation, n_in: int, n_out: int | None, path: str, load: ArrayLoader | None
) -> np.ndarray:
    out_dim = n_out if n_out is not None else 1 + max(max(o) for _, o in t.axes)
    m = np.zeros((out_dim + 1, n_in + 1))
    m[-1, -1] = 1.0
    owners: dict[int, int] = {}
    for k, (child, (ins, outs)) in enumerate(zip(t.children, t.axes)):
        where = f"{t.field}.transformations[{k}]"
        if any(i >= n_in for i in ins):
            raise InvalidMetadataError(
                path, f"{where}.inputAxes", f"indices must be below {n_in} (input axes)"
            )
        if any(o >= out_dim for o in outs):
            raise InvalidMetadataError(
                path, f"{where}.outputAxes", f"indices must be below {out_dim} (output axes)"
            )
        for o in outs:
            if o in owners:
                raise InvalidMetadataError(
                    path,
                    f"{where}.outputAxes",
                    f"output axis {o} is already set by transformations[{owners[o]}]",
                )
            owners[o] = k
        sub = _matrix(child, len(ins), len(outs), path, load)
        m[np.ix_(list(outs), list(ins))] = sub[:-1, :-1]
        m[list(outs), -1] = sub[:-1, -1]
    missing = [o for o in range(out_dim) if o not in owners]
    if missing:
        raise InvalidMetadataError(
            path, f"{t.field}.transformations", f"output axes {missing} are set by no member"
        )
    return m


def transformation_matrix(
    t: Transformation,
    n_in: int,
    n_out: int | None = None,
    *,
    path: str = "",
    load: ArrayLoader | None = None,
) -> np.ndarray:
    """The homogeneous ``(n_out + 1) x (n_in + 1)`` matrix of ``t``.

    Parameters
    ----------
    t
        A parsed transformation.
    n_in, n_out
        Dimensionality of its input and output systems (``n_out`` None: as ``t``
        implies, which for all but byDimension it does).
    path
        Store path, for error messages.
    load
        Reads a parameter array (``affine``/``rotation`` stored by ``path``).

    Raises
    ------
    InvalidMetadataError
        Parameters that do not fit the dimensions, a rotation that is none, ...
    NotAffineError
        ``displacements``/``coordinates`` fields, and parameter arrays not read.
    """
    return _matrix(t, n_in, n_out, path, load)


def inverse_matrix(
    t: Transformation,
    n_in: int,
    n_out: int,
    *,
    path: str = "",
    load: ArrayLoader | None = None,
) -> np.ndarray:
    """The matrix from ``t``'s output (``n_out`` axes) back to its input (``n_in``).

    A ``bijection`` gives its ``inverse`` member; anything else is inverted in
    closed form when its matrix is square and regular.
    """
    if t.type == "bijection":
        return _matrix(t.children[1], n_out, n_in, path, load)
    m = _matrix(t, n_in, n_out, path, load)
    if m.shape[0] != m.shape[1]:
        raise NotAffineError(t.field, f"maps {n_in} axes to {n_out}: it has no inverse")
    if np.linalg.cond(m) > 1e12:
        raise NotAffineError(t.field, "is not invertible")
    return np.linalg.inv(m)


def diagonal_parts(m: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """``(scale, translation)`` of a square homogeneous matrix without rotation or shear.

    None when the linear part has any off-diagonal term (relative to its largest
    entry, beyond float noise) or a zero on the diagonal.
    """
    m = np.asarray(m, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        return None
    lin = m[:-1, :-1]
    tol = 1e-12 * max(1.0, float(np.abs(lin).max(initial=0.0)))
    off = lin - np.diag(np.diag(lin))
    if np.abs(off).max(initial=0.0) > tol or np.any(np.abs(np.diag(lin)) <= tol):
        return None
    return tuple(float(v) for v in np.diag(lin)), tuple(float(v) for v in m[:-1, -1])
