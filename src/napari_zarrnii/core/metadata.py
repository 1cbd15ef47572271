"""Read and save the channel metadata (``omero``) of an OME-Zarr image in place.

:func:`write_channels` changes nothing but the ``omero`` block: it reads the group's
metadata file (``.zattrs`` for NGFF 0.4 / zarr v2, ``zarr.json`` for NGFF 0.5 / zarr
v3), replaces ``omero`` and writes the file back with
:func:`~.store.replace_file_atomically` (temporary file, then rename), so a failed
save leaves the previous file intact.  Every other key is kept as it was, and keys of
the old ``omero`` block this package does not manage (``id``, ``rdefs`` entries,
per-channel ``family``, ...) are kept too.

Consolidated metadata (``.zmetadata`` of zarr v2, ``consolidated_metadata`` of a zarr
v3 ``zarr.json``), in the group itself or in any zarr group above it, is updated the
same way, so readers that trust it see the new channels.  If updating one of those
files fails, the files already written are put back as they were.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import InvalidMetadataError, NotOmeZarrError, ReadOnlyStoreError
from .model import ChannelInfo, Window
from .model import window_problem as model_window_problem
from .ngff import emit_omero, ngff_attrs
from .omezarr import detect_layout, read_ome_zarr
from .store import is_url, local_path, normalize_source, replace_file_atomically

__all__ = ["read_channels", "window_problem", "write_channels"]

log = logging.getLogger(__name__)

#: omero channel keys this package writes; any other key of an old channel is kept.
_MANAGED_CHANNEL_KEYS = frozenset({"label", "color", "window", "active", "inverted"})


def window_problem(window: Window) -> str | None:
    """Why a channel window cannot be saved, or None when it can.

    The rule is the reader's (:func:`~.model.window_problem`; :func:`~.ngff.parse_omero`
    ignores any other window): finite numbers and ``start`` below ``end``.
    """
    return model_window_problem(window.start, window.end, window.min, window.max)


def read_channels(source: Any) -> list[ChannelInfo]:
    """The channels of the OME-Zarr image at ``source`` (one per channel index).

    Channels the ``omero`` block does not describe get defaults (see
    :meth:`~.model.MultiscaleImage.channel_infos`).  Reads metadata only.
    """
    return read_ome_zarr(source, with_labels=False).channel_infos()


@dataclass
class _Edit:
    """One metadata file to replace: its path, new content and old content."""

    path: Path
    new: Any
    old: Any


def write_channels(
    source: Any, channels: Sequence[ChannelInfo], *, name: str | None = None
) -> None:
    """Save ``channels`` as the ``omero`` block of the OME-Zarr image at ``source``.

    Parameters
    ----------
    source
        Local path of an OME-Zarr image group (NGFF 0.4 or 0.5; older versions keep
        their layout too).
    channels
        One :class:`~.model.ChannelInfo` per index of the channel axis (one for an
        image without a channel axis).
    name
        ``omero.name`` to store; default: keep the stored one (or the image's name).

    Raises
    ------
    ReadOnlyStoreError
        ``source`` is a URL, or a metadata file or its folder is not writable.
    NotOmeZarrError
        ``source`` is not an OME-Zarr image group (a plate, a bioformats2raw root, ...).
    InvalidMetadataError
        A channel window the reader would ignore (see :func:`window_problem`).
    ValueError
        The number of channels does not match the image.
    """
    text = normalize_source(source)
    if is_url(text):
        raise ReadOnlyStoreError(
            f"{text}: remote stores are read-only here; cannot save channel metadata "
            "(save a copy to a local folder instead)"
        )
    root = local_path(text, purpose="save channel metadata")
    for i, channel in enumerate(channels):
        problem = None if channel.window is None else window_problem(channel.window)
        if problem is not None:
            raise InvalidMetadataError(str(root), f"omero.channels[{i}].window", problem)
    meta_file, zarr_format = _group_metadata_file(root)
    doc = _load_json(meta_file)
    attrs = doc if zarr_format == 2 else doc.get("attributes")
    if not isinstance(attrs, Mapping) or detect_layout(attrs) != "image":
        raise NotOmeZarrError(
            f"{root}: not an OME-Zarr image group; channel metadata can only be saved on "
            "the image itself (open the series or well field, not the plate or root)"
        )
    image = read_ome_zarr(root, with_labels=False)
    if image.is_label:
        raise NotOmeZarrError(f"{root}: is a label image; label images have no channels")
    if len(channels) != image.num_channels:
        raise ValueError(
            f"{root}: the image has {image.num_channels} channel(s), got {len(channels)} "
            "channel descriptions"
        )
    ome, _ = ngff_attrs(attrs)
    old_omero = ome.get("omero") if isinstance(ome.get("omero"), Mapping) else None
    keep_name = name if name is not None else (old_omero or {}).get("name") or image.name
    omero = _merged_omero(old_omero, emit_omero(list(channels), image.dtype, keep_name))

    edits = [_Edit(meta_file, _with_omero(doc, omero, zarr_format), doc)]
    edits.extend(_consolidated_edits(root, zarr_format, omero))
    for edit in edits:
        _check_writable(edit.path, root)
    _apply(edits, root)
    log.info("saved channel metadata of %s (%d file(s))", root, len(edits))


# -- helpers -----------------------------------------------------------------------------


def _group_metadata_file(root: Path) -> tuple[Path, int]:
    """The file holding a group's attributes and the zarr format (2 or 3)."""
    v3 = root / "zarr.json"
    if v3.is_file():
        return v3, 3
    v2 = root / ".zattrs"
    if v2.is_file():
        return v2, 2
    if (root / ".zgroup").is_file():
        raise NotOmeZarrError(f"{root}: zarr group without attributes (.zattrs): not OME-Zarr")
    raise NotOmeZarrError(f"{root}: not a zarr group (no zarr.json or .zattrs)")


def _load_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except json.JSONDecodeError as exc:
        raise NotOmeZarrError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise NotOmeZarrError(f"{path}: expected a JSON object")
    return doc


def _merged_omero(old: Mapping[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new`` keeping the old block's extra keys (``id``, ``rdefs``, channel extras)."""
    if not old:
        return new
    out = {k: v for k, v in old.items() if k not in ("channels", "name")}
    out.update({k: v for k, v in new.items() if k != "rdefs"})
    if isinstance(old.get("rdefs"), Mapping):
        out["rdefs"] = {**new.get("rdefs", {}), **old["rdefs"]}
    elif "rdefs" in new:
        out["rdefs"] = new["rdefs"]
    raw_channels = old.get("channels")
    old_channels: list[Any] = raw_channels if isinstance(raw_channels, list) else []
    channels = []
    for i, ch in enumerate(new["channels"]):
        prev = old_channels[i] if i < len(old_channels) else None
        extras = (
            {k: v for k, v in prev.items() if k not in _MANAGED_CHANNEL_KEYS}
            if isinstance(prev, Mapping)
            else {}
        )
        channels.append({**ch, **extras})
    out["channels"] = channels
    return out


def _with_omero(doc: dict[str, Any], omero: dict[str, Any], zarr_format: int) -> dict[str, Any]:
    """A copy of a group metadata document with its ``omero`` block replaced."""
    if zarr_format == 2:
        return {**doc, "omero": omero}
    attrs = dict(doc.get("attributes") or {})
    if isinstance(attrs.get("ome"), Mapping):
        attrs["ome"] = {**attrs["ome"], "omero": omero}
    else:  # an older NGFF version stored in zarr v3: keys at the top level
        attrs["omero"] = omero
    return {**doc, "attributes": attrs}


def _is_zarr_group(folder: Path) -> bool:
    return (folder / ".zgroup").is_file() or (folder / "zarr.json").is_file()


def _consolidated_edits(root: Path, zarr_format: int, omero: dict[str, Any]) -> list[_Edit]:
    """Edits of every consolidated-metadata file that describes ``root``'s attributes."""
    edits: list[_Edit] = []
    folder = root
    rel: list[str] = []
    while True:
        if zarr_format == 2:
            edit = _v2_consolidated_edit(folder, "/".join([*rel, ".zattrs"]), omero)
        else:
            edit = _v3_consolidated_edit(folder, rel, omero)
        if edit is not None:
            edits.append(edit)
        parent = folder.parent
        if parent == folder or not _is_zarr_group(parent):
            return edits
        rel.insert(0, folder.name)
        folder = parent


def _v2_consolidated_edit(folder: Path, key: str, omero: dict[str, Any]) -> _Edit | None:
    path = folder / ".zmetadata"
    if not path.is_file():
        return None
    doc = _load_json(path)
    entries = doc.get("metadata")
    if not isinstance(entries, Mapping) or not isinstance(entries.get(key), Mapping):
        return None
    new_entries = dict(entries)
    new_entries[key] = _with_omero(dict(entries[key]), omero, 2)
    return _Edit(path, {**doc, "metadata": new_entries}, doc)


def _v3_update_entries(entries: Mapping[str, Any], rel: list[str], omero: dict[str, Any]):
    """Consolidated v3 entries with the group at ``rel`` updated, or None if absent.

    zarr v3 stores descendants flat (``"a/b"``) at the root and may nest them in the
    ``consolidated_metadata`` of a child group entry: update both forms.
    """
    changed = False
    out = dict(entries)
    flat = "/".join(rel)
    if isinstance(out.get(flat), Mapping):
        out[flat] = _with_omero(dict(out[flat]), omero, 3)
        changed = True
    for i in range(1, len(rel)):
        head = "/".join(rel[:i])
        child = out.get(head)
        if not isinstance(child, Mapping):
            continue
        nested = child.get("consolidated_metadata")
        if isinstance(nested, Mapping) and isinstance(nested.get("metadata"), Mapping):
            inner = _v3_update_entries(nested["metadata"], rel[i:], omero)
            if inner is not None:
                out[head] = {**child, "consolidated_metadata": {**nested, "metadata": inner}}
                changed = True
    return out if changed else None


def _v3_consolidated_edit(folder: Path, rel: list[str], omero: dict[str, Any]) -> _Edit | None:
    if not rel:  # the group's own zarr.json consolidates its children, not itself
        return None
    path = folder / "zarr.json"
    if not path.is_file():
        return None
    doc = _load_json(path)
    consolidated = doc.get("consolidated_metadata")
    if not isinstance(consolidated, Mapping) or not isinstance(
        consolidated.get("metadata"), Mapping
    ):
        return None
    entries = _v3_update_entries(consolidated["metadata"], rel, omero)
    if entries is None:
        return None
    return _Edit(
        path, {**doc, "consolidated_metadata": {**consolidated, "metadata": entries}}, doc
    )


def _read_only(path: Path, root: Path, why: str) -> ReadOnlyStoreError:
    return ReadOnlyStoreError(
        f"{root}: the store is read-only ({path} {why}); channel metadata cannot be saved "
        "in place - save a copy elsewhere instead"
    )


def _check_writable(path: Path, root: Path) -> None:
    if not os.access(path.parent, os.W_OK):
        raise _read_only(path, root, "is in a folder without write permission")
    if path.exists() and not os.access(path, os.W_OK):
        raise _read_only(path, root, "is not writable")


def _apply(edits: list[_Edit], root: Path) -> None:
    """Replace every file; on failure put back those already replaced, then re-raise."""
    done: list[_Edit] = []
    try:
        for edit in edits:
            replace_file_atomically(edit.path, edit.new)
            done.append(edit)
    except OSError as exc:
        for edit in reversed(done):
            try:
                replace_file_atomically(edit.path, edit.old)
            except OSError as undo_exc:  # report both: the user must know the state
                log.error("%s: could not restore after a failed save: %s", edit.path, undo_exc)
        if isinstance(exc, ReadOnlyStoreError):
            raise
        if isinstance(exc, PermissionError) or exc.errno in (errno.EROFS, errno.EACCES):
            raise _read_only(
                Path(exc.filename or root), root, f"cannot be written: {exc}"
            ) from exc
        raise
