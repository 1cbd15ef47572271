"""OME-NGFF 0.6 coordinate systems and coordinate transformations (RFC-5), as data.

Nothing here does I/O.  :func:`parse_coordinate_systems` and
:func:`parse_transformation` turn the JSON of a ``multiscales`` entry into
:class:`CoordinateSystem` and :class:`Transformation` values, naming the field at
fault in :class:`~napari_zarrnii.InvalidMetadataError`; :func:`transformation_matrix`
turns every transformation an affine can express (identity, scale, translation,
affine, rotation, mapAxis, projectAxis, sequence, byDimension and bijection of
those) into one homogeneous matrix; :func:`resolve_multiscale` follows the
transformations from each resolution level to the coordinate system chosen for
display, and :func:`split_placement` turns the result into per-level scale and
translation plus, only when needed, one affine (what napari takes).

Facts from the 0.6 specification this module relies on:

* The default ("intrinsic") coordinate system of a multiscale image is the
  ``output`` of every dataset's transformation; other systems are reached through
  the multiscale's own ``coordinateTransformations`` (forward, or backward through
  a closed-form inverse).
* Matrices are applied to column vectors of coordinates in the order of the
  system's axes; ``affine`` is stored as its upper ``M x (N+1)`` rows, ``rotation``
  as ``N x N``; ``mapAxis[i]`` is the input axis that becomes output axis ``i``.
* ``sequence`` applies its members first to last.
* ``displacements`` and ``coordinates`` are vector fields: not affine.  A system
  reached only through one is reported in the notes, not shown.
* Matrices may be stored in a zarr array (``path``); they are read through the
  ``load`` callback the caller gives (the reader does; tests need not).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import InvalidMetadataError, SelectionError, ZarrNiiError
from .model import Axis

__all__ = [
    "ORIENTATION_VALUES",
    "TRANSFORMATION_TYPES",
    "ArrayLoader",
    "CoordinateSystem",
    "Frame",
    "NotAffineError",
    "ResolvedMultiscale",
    "SystemRef",
    "Transformation",
    "diagonal_parts",
    "inverse_matrix",
    "parse_axis",
    "parse_coordinate_systems",
    "parse_orientation",
    "parse_transformation",
    "parse_transformations",
    "resolve_multiscale",
    "restrict_frame",
    "split_placement",
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

_TYPES_BY_NAME = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
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
    kind = kind or _TYPES_BY_NAME.get(name)
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


# -- a multiscale's coordinate systems, resolved ---------------------------------------------


@dataclass(frozen=True, eq=False)
class Frame:
    """Where an image's intrinsic coordinates are shown.

    ``matrix`` maps intrinsic coordinates (axes ``source_axes``) to those of the
    system ``name`` (axes ``axes``).  Label images are placed with their parent
    image's frame, so they overlay it in any system it is shown in.
    """

    name: str
    matrix: np.ndarray
    source_axes: tuple[Axis, ...]
    axes: tuple[Axis, ...]


@dataclass
class ResolvedMultiscale:
    """A 0.6 multiscale's coordinate systems and the transformations that matter.

    Attributes
    ----------
    systems
        Every coordinate system of the multiscale, in stored order.
    intrinsic
        The system all datasets map to (the 0.6 default for display).
    frame
        The system the image is shown in and the matrix from ``intrinsic`` to it.
    to_intrinsic
        Per dataset, the ``(n+1) x (n+1)`` matrix from array indices to ``intrinsic``.
    label_links
        Per label image path under ``labels/``, the matrix from that label's
        intrinsic system to this image's (from transformations naming a ``path``).
    notes
        What was not applied and why, and which other systems exist.
    """

    systems: tuple[CoordinateSystem, ...]
    intrinsic: CoordinateSystem
    frame: Frame
    to_intrinsic: list[np.ndarray]
    label_links: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _dataset_matrix(
    ds: Mapping[str, Any], i: int, field_: str, path: str, load: ArrayLoader | None
) -> tuple[list[Transformation], str | None]:
    where = f"{field_}.datasets[{i}].coordinateTransformations"
    transforms = parse_transformations(ds.get("coordinateTransformations"), path, where)
    outputs = {t.output.name for t in transforms if t.output is not None and t.output.name}
    if len(outputs) > 1:
        raise InvalidMetadataError(path, where, f"outputs name several systems {sorted(outputs)}")
    first = transforms[0]
    if first.input is not None and first.input.path not in (None, ds.get("path")):
        log.warning(
            "%s: %s[0].input.path %r differs from the dataset path %r; using the dataset path",
            path,
            where,
            first.input.path,
            ds.get("path"),
        )
    return transforms, next(iter(outputs), None)


def resolve_multiscale(
    ms: Mapping[str, Any],
    *,
    path: str = "",
    field: str = "multiscales[0]",
    coordinate_system: str | None = None,
    parent: Frame | None = None,
    load: ArrayLoader | None = None,
) -> ResolvedMultiscale:
    """Follow a 0.6 ``multiscales`` entry from its arrays to the system to show.

    Parameters
    ----------
    ms
        One ``multiscales`` entry (``coordinateSystems``, ``datasets``, optional
        ``coordinateTransformations``).
    path, field
        Store path and the entry's place in the metadata, for messages.
    coordinate_system
        Name of the system to show; default the intrinsic one.  A system reached
        only through transformations no affine expresses is not shown: the image is
        shown in its intrinsic system and ``notes`` says why.
    parent
        For a label image: its parent image's frame (the label is shown there and
        its own multiscale transformations are not followed).
    load
        Reads parameter arrays stored by ``path`` (relative to this group).

    Raises
    ------
    InvalidMetadataError
        Malformed coordinate systems or dataset transformations (naming the field).
    SelectionError
        ``coordinate_system`` names no system of this multiscale.
    """
    systems = parse_coordinate_systems(
        ms.get("coordinateSystems"), path, f"{field}.coordinateSystems"
    )
    by_name = {s.name: s for s in systems}
    datasets = ms.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise InvalidMetadataError(path, f"{field}.datasets", "must be a non-empty list")
    parsed = [
        _dataset_matrix(ds if isinstance(ds, Mapping) else {}, i, field, path, load)
        for i, ds in enumerate(datasets)
    ]
    names = {name for _, name in parsed if name is not None}
    if len(names) > 1:
        raise InvalidMetadataError(
            path,
            f"{field}.datasets",
            f"datasets map to different systems {sorted(names)}; all must map to one",
        )
    if names:
        intrinsic_name = names.pop()
        if intrinsic_name not in by_name:
            raise InvalidMetadataError(
                path,
                f"{field}.datasets[0].coordinateTransformations[0].output.name",
                f"names no coordinate system ({intrinsic_name!r}; have {sorted(by_name)})",
            )
    elif len(systems) == 1:
        intrinsic_name = systems[0].name
    else:
        raise InvalidMetadataError(
            path,
            f"{field}.datasets[0].coordinateTransformations[0].output",
            "must name the intrinsic coordinate system",
        )
    intrinsic = by_name[intrinsic_name]
    n = intrinsic.ndim
    to_intrinsic = []
    for transforms, _ in parsed:
        m = np.eye(n + 1)
        for t in transforms:
            try:
                m = _matrix(t, n, n, path, load) @ m
            except NotAffineError as exc:
                raise InvalidMetadataError(path, exc.field, exc.problem) from exc
        to_intrinsic.append(m)
    notes: list[str] = []
    edges, label_links = _edges(ms, field, path, intrinsic, notes, load)
    if parent is not None:
        frame = restrict_frame(parent, intrinsic.axes)
        if frame is None:
            notes.append(
                f"cannot be placed in the parent image's system '{parent.name}' (its axes "
                f"{[a.name for a in intrinsic.axes]} do not match); shown in its own "
                f"'{intrinsic.name}'"
            )
            frame = Frame(intrinsic.name, np.eye(n + 1), intrinsic.axes, intrinsic.axes)
        return ResolvedMultiscale(systems, intrinsic, frame, to_intrinsic, label_links, notes)
    if coordinate_system is not None and coordinate_system not in by_name:
        raise SelectionError(
            f"{path}: no coordinate system {coordinate_system!r}; have {sorted(by_name)}"
        )
    reach, why = _reachable(intrinsic, by_name, edges, path, load)
    target = coordinate_system or intrinsic.name
    frame = Frame(intrinsic.name, np.eye(n + 1), intrinsic.axes, intrinsic.axes)
    for name in by_name:
        if name == intrinsic.name:
            continue
        if name not in reach:
            reason = "; ".join(why.get(name, [])) or "no transformation leads there"
            notes.append(f"coordinate system '{name}' cannot be shown: {reason}")
        elif reach[name].shape != (n + 1, n + 1):
            notes.append(
                f"coordinate system '{name}' cannot be shown: it has "
                f"{reach[name].shape[0] - 1} axes, the image {n}"
            )
        elif name == target:
            frame = Frame(name, reach[name], intrinsic.axes, by_name[name].axes)
    others = [s for s in by_name if s != frame.name]
    if target != frame.name:
        log.warning(
            "%s: coordinate system %r cannot be shown; showing %r", path, target, frame.name
        )
    if others:
        notes.insert(
            0,
            f"shown in coordinate system '{frame.name}'; also defined: "
            + ", ".join(f"'{s}'" for s in others),
        )
    return ResolvedMultiscale(systems, intrinsic, frame, to_intrinsic, label_links, notes)


_Edge = tuple[str, str, Transformation]


def _edges(
    ms: Mapping[str, Any],
    field: str,
    path: str,
    intrinsic: CoordinateSystem,
    notes: list[str],
    load: ArrayLoader | None,
) -> tuple[list[_Edge], dict[str, np.ndarray]]:
    """Multiscale-level transformations: edges between this group's systems, label links.

    A transformation that does not parse is left out with a note: it only adds a
    view, and the image is readable without it.
    """
    raw = ms.get("coordinateTransformations")
    if raw is None:
        return [], {}
    where = f"{field}.coordinateTransformations"
    if not isinstance(raw, list):
        notes.append(f"{where} is not a list; ignored")
        return [], {}
    edges: list[_Edge] = []
    links: dict[str, np.ndarray] = {}
    n = intrinsic.ndim
    for i, item in enumerate(raw):
        try:
            t = parse_transformation(item, path, f"{where}[{i}]")
        except InvalidMetadataError as exc:
            notes.append(f"{exc.field} ignored: {exc.problem}")
            continue
        if t.input is None or t.output is None or not t.input.name or not t.output.name:
            notes.append(f"{t.field} ignored: input and output must name coordinate systems")
            continue
        in_path, out_path = t.input.path or "", t.output.path or ""
        if not in_path and not out_path:
            edges.append((t.input.name, t.output.name, t))
            continue
        label_side = out_path or in_path
        own = t.input if out_path else t.output
        if (in_path and out_path) or own.name != intrinsic.name:
            notes.append(f"{t.field} ({t.describe()}) ignored: links systems of other groups")
            continue
        if not label_side.startswith("labels/"):
            notes.append(f"{t.field} ({t.describe()}) ignored: '{label_side}' is no label image")
            continue
        try:
            # label intrinsic -> this intrinsic: forward if the label is the input
            m = (
                _matrix(t, n, n, path, load)
                if in_path
                else inverse_matrix(t, n, n, path=path, load=load)
            )
        except (InvalidMetadataError, NotAffineError) as exc:
            notes.append(f"{t.field} ({t.describe()}) not applied: {exc}")
            continue
        links[label_side.removeprefix("labels/").strip("/")] = m
    return edges, links


def _reachable(
    intrinsic: CoordinateSystem,
    by_name: Mapping[str, CoordinateSystem],
    edges: Sequence[_Edge],
    path: str,
    load: ArrayLoader | None,
) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Matrices from the intrinsic system to every system an affine path reaches.

    Breadth first, so the fewest transformations win; forward edges before
    inverted ones.  ``why`` collects, per unreached system, the transformations
    that led there but are no affine (or name systems that do not exist).
    """
    reach = {intrinsic.name: np.eye(intrinsic.ndim + 1)}
    why: dict[str, list[str]] = {}
    queue = deque([intrinsic.name])
    while queue:
        here = queue.popleft()
        steps = [(dst, t, False) for src, dst, t in edges if src == here]
        steps += [(src, t, True) for src, dst, t in edges if dst == here and src != here]
        for there, t, backward in steps:
            if there in reach:
                continue
            if there not in by_name:
                why.setdefault(there, []).append(f"{t.field} names no such system")
                continue
            n_here, n_there = reach[here].shape[0] - 1, by_name[there].ndim
            try:
                if backward:
                    m = inverse_matrix(t, n_there, n_here, path=path, load=load)
                else:
                    m = _matrix(t, n_here, n_there, path, load)
            except (InvalidMetadataError, NotAffineError) as exc:
                text = exc.problem if isinstance(exc, NotAffineError) else str(exc)
                how = "inverse of " if backward else ""
                why.setdefault(there, []).append(f"{how}{t.field} ({t.describe()}): {text}")
                continue
            reach[there] = m @ reach[here]
            queue.append(there)
    return reach, why


def restrict_frame(frame: Frame, axes: Sequence[Axis]) -> Frame | None:
    """``frame`` for an image with a subset of its source axes (a label without ``c``).

    Matches axes by name; None when a name is missing or a dropped axis moves a
    kept one (the matrix cannot be cut down without changing the placement).
    """
    names = [a.name for a in frame.source_axes]
    if [a.name for a in axes] == names:
        return frame
    if frame.matrix.shape[0] != frame.matrix.shape[1] or any(a.name not in names for a in axes):
        return None
    keep = [names.index(a.name) for a in axes]
    dropped = [i for i in range(len(names)) if i not in keep]
    m = frame.matrix
    if dropped and (
        np.any(m[np.ix_(keep, dropped)] != 0) or np.any(m[np.ix_(dropped, keep)] != 0)
    ):
        return None
    rows = [*keep, len(names)]
    return Frame(
        frame.name,
        m[np.ix_(rows, rows)],
        tuple(axes),
        tuple(frame.axes[i] for i in keep),
    )


def split_placement(
    to_intrinsic: Sequence[np.ndarray], to_system: np.ndarray, *, path: str = "", field: str = ""
) -> tuple[list[tuple[float, ...]], list[tuple[float, ...]], np.ndarray | None]:
    """Per-level (scale, translation) and one affine applied after them, as napari takes.

    The affine is None whenever every level's full transformation is a scale and
    translation.  Otherwise it is ``to_system`` (the levels keep their dataset
    scale and translation), or, for non-conforming datasets that are not diagonal
    themselves, level 0's whole transformation (the levels keep what sets them
    apart from level 0).

    Raises
    ------
    InvalidMetadataError
        Levels that no scale and translation relate to each other.
    """
    full = [np.asarray(to_system, dtype=float) @ m for m in to_intrinsic]
    parts = [diagonal_parts(m) for m in full]
    if all(p is not None for p in parts):
        return [p[0] for p in parts if p], [p[1] for p in parts if p], None
    own = [diagonal_parts(m) for m in to_intrinsic]
    if all(p is not None for p in own):
        return [p[0] for p in own if p], [p[1] for p in own if p], np.asarray(to_system, float)
    base = full[0]
    if np.linalg.cond(base) > 1e12:
        raise InvalidMetadataError(path, f"{field}.datasets[0]", "transformation is singular")
    rel = [diagonal_parts(np.linalg.solve(base, m)) for m in full]
    if not all(p is not None for p in rel):
        bad = next(i for i, p in enumerate(rel) if p is None)
        raise InvalidMetadataError(
            path,
            f"{field}.datasets[{bad}].coordinateTransformations",
            "the level is rotated or sheared against level 0",
        )
    return [p[0] for p in rel if p], [p[1] for p in rel if p], base
