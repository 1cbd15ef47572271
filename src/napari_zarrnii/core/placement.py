"""Where the levels of an OME-NGFF 0.6 multiscale image land: its coordinate systems resolved.

Nothing here does I/O.  :func:`resolve_multiscale` follows a ``multiscales``
entry from each resolution level to the coordinate system chosen for display,
through the transformations of :mod:`.transforms`, and :func:`split_placement`
turns the result into per-level scale and translation plus, only when needed, one
affine (what napari takes).

Facts from the 0.6 specification this module relies on:

* The "intrinsic" coordinate system of a multiscale image is the ``output`` of
  every dataset's transformation; the specification makes it the one to view and
  process the image in "unless a use case dictates otherwise".  A viewer is such a
  use case: when the multiscale declares transformations from its intrinsic system
  to other systems, the author placed the image there.  The default shown is the
  output of the first such transformation (in stored order) that napari can show,
  as napari-ome-zarr does, else the intrinsic system (:func:`default_system`).
* Other systems are reached through the multiscale's ``coordinateTransformations``,
  each naming its ``input`` and ``output``; one end is the intrinsic system, the
  other a system of the same group or, with a ``path``, of a label image under
  ``labels/``.  They are followed forward, or backward through an inverse.
* Without a transformation linking them, an image's and its label images'
  intrinsic systems are taken to be the same.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import InvalidMetadataError, SelectionError
from .model import Axis
from .transforms import (
    ArrayLoader,
    CoordinateSystem,
    NotAffineError,
    Transformation,
    diagonal_parts,
    inverse_matrix,
    parse_coordinate_systems,
    parse_transformation,
    parse_transformations,
    transformation_matrix,
)

__all__ = [
    "Frame",
    "ResolvedMultiscale",
    "default_system",
    "display_problem",
    "resolve_multiscale",
    "restrict_frame",
    "split_placement",
]

log = logging.getLogger(__name__)


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


def _dataset_transforms(
    ds: Mapping[str, Any], i: int, field_: str, path: str
) -> tuple[list[Transformation], str | None]:
    """A dataset's transformations and the system they name as output (None: none named)."""
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
        Name of the system to show; default :func:`default_system` (the output of
        the first transformation out of the intrinsic system that napari can show,
        else the intrinsic system).  A system reached only through transformations
        no affine expresses is not shown: the image is shown in its intrinsic
        system and ``notes`` says why.
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
        _dataset_transforms(ds if isinstance(ds, Mapping) else {}, i, field, path)
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
                m = transformation_matrix(t, n, n, path=path, load=load) @ m
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
    if coordinate_system is None:
        target = default_system(intrinsic, by_name, edges, reach)
    else:
        target = coordinate_system
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


def display_problem(frame: Frame) -> str | None:
    """Why napari cannot show ``frame`` (it mixes the channel axis with others), or None.

    Layers split the channel axis off (one layer per channel), so the matrix must
    keep that axis where it is, unscaled and unshifted.
    """
    m = frame.matrix
    if m.shape[0] != m.shape[1]:
        return f"it has {m.shape[0] - 1} axes, the image {m.shape[1] - 1}"
    for i, axis in enumerate(frame.source_axes):
        if axis.type != "channel":
            continue
        unit = np.eye(m.shape[1])[i]
        if not (np.allclose(m[i], unit) and np.allclose(m[:, i], np.eye(m.shape[0])[:, i])):
            return f"it moves, scales or mixes the channel axis '{axis.name}'"
        if frame.axes[i].type != "channel":
            return f"its axis {i} ('{frame.axes[i].name}') is not the channel axis"
    return None


def default_system(
    intrinsic: CoordinateSystem,
    by_name: Mapping[str, CoordinateSystem],
    edges: Sequence[_Edge],
    reach: Mapping[str, np.ndarray],
) -> str:
    """The system an image is shown in when none is asked for.

    The output of the first multiscale transformation (in stored order) from the
    intrinsic system to another system of the same group that napari can show
    (an affine path, as many axes, the channel axis left alone); the intrinsic
    system when there is none.  The 0.6 text makes the intrinsic system the one to
    view "unless a use case dictates otherwise": a viewer shows the data where
    its author placed it, napari-ome-zarr shows that first transformation too,
    and a store written from an image with a world affine reads back exactly.
    """
    for src, dst, _ in edges:
        if src != intrinsic.name or dst == intrinsic.name or dst not in reach:
            continue
        frame = Frame(dst, reach[dst], intrinsic.axes, by_name[dst].axes)
        if display_problem(frame) is None:
            return dst
    return intrinsic.name


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
                transformation_matrix(t, n, n, path=path, load=load)
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
                    m = transformation_matrix(t, n_here, n_there, path=path, load=load)
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
