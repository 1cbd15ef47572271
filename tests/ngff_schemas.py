"""Validate attributes against the official OME-NGFF JSON schemas shipped with ngff-zarr.

The schemas refer to each other by their ``https://ngff.openmicroscopy.org/...`` ids;
a :class:`referencing.Registry` built from the local copies resolves those without
any network access.  0.6 adds ``coordinate_systems`` and ``coordinate_transformations``
schemas, referenced from ``image`` the same way.
"""

from __future__ import annotations

import functools
import json
from importlib.resources import files
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = ["schema_kinds", "validate_ngff"]


@functools.cache
def _registry(version: str) -> tuple[Registry, dict[str, dict[str, Any]]]:
    folder = files("ngff_zarr") / "spec" / version / "schemas"
    schemas: dict[str, dict[str, Any]] = {}
    resources = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".schema"):
            continue
        schema = json.loads(entry.read_text(encoding="utf-8"))
        kind = entry.name.removesuffix(".schema")
        schemas[kind] = schema
        uri = schema.get("$id", f"https://ngff.openmicroscopy.org/{version}/schemas/{entry.name}")
        resources.append((uri, Resource.from_contents(schema, default_specification=DRAFT202012)))
    if not schemas:
        raise FileNotFoundError(f"no OME-NGFF {version} schemas in ngff_zarr")
    return Registry().with_resources(resources), schemas


def schema_kinds(version: str) -> list[str]:
    """Schema names available for a version (``image``, ``label``, ``strict_image``, ...)."""
    return sorted(_registry(version)[1])


def validate_ngff(attrs: dict[str, Any], version: str, kind: str = "image") -> None:
    """Raise :class:`jsonschema.ValidationError` unless ``attrs`` match the schema.

    Parameters
    ----------
    attrs
        The group attributes as stored (for 0.5 the dict holding the ``ome`` key).
    version
        ``'0.4'``, ``'0.5'`` or ``'0.6'`` (any version ngff-zarr ships schemas for; its
        0.6 copies are those of the 0.6 release, which also accept ``'0.6rc0'``).
    kind
        Schema name: ``'image'``, ``'label'``, ``'plate'``, ``'well'``,
        ``'strict_image'``, ...
    """
    registry, schemas = _registry(version)
    if kind not in schemas:
        raise KeyError(f"no {kind!r} schema for OME-NGFF {version}; have {sorted(schemas)}")
    validator = jsonschema.Draft202012Validator(schemas[kind], registry=registry)
    validator.validate(attrs)
