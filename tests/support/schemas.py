"""Validate DSP messages against the official JSON Schemas (test helper).

The schemas are read from the shared reference folder, which is not part of the repo:
``$CONNECTOR_SHARED_DIR`` if set, otherwise ``<repo>/../shared``. When it is missing,
:func:`schemas_available` returns False, and tests must ``pytest.skip`` with
:data:`SKIP_REASON`.

Sources:

* ``dsp-2025-1``: ``reference/dsp/dsp-2025-1/schema`` (the spec's schemas)
* ``tck-2025-1``: ``reference/dsp/tck-2025-1-schemas`` (the copies the Eclipse DSP TCK
  validates with; slightly older)
* ``dsp-2024-1``: ``reference/dsp/dsp-2024-1/schema``

A 2025-1 message is validated against both 2025-1 sources, wherever its type has a schema.

Repairs applied when loading (see ``reference/README.md`` and DIGEST §8):

* ``"$ref": "...#definitions/X"`` becomes ``...#/definitions/X``. Python's ``referencing``
  rejects the former (2025-1 transfer schemas).
* ``"items": "string"`` becomes ``"items": {"type": "string"}`` (TCK contract-schema.json;
  otherwise jsonschema crashes on an agreement that carries ``profile``).
* 2024-1 ``Operator`` enum: ``odrl:lteq`` is added next to the typo ``odrl:term-lteq``.
  Without it no 2024-1 constraint using "less than or equal" can validate.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT201909

from .reference import shared_dir

__all__ = [
    "SKIP_REASON",
    "shared_dir",
    "dsp_reference_dir",
    "schemas_available",
    "schema_files_for",
    "validate",
    "validation_errors",
]

SKIP_REASON = (
    "shared reference material not found (set CONNECTOR_SHARED_DIR or provide <repo>/../shared "
    "with reference/dsp/...)"
)

_SOURCES_2025 = ("dsp-2025-1", "tck-2025-1")
_SOURCES_2024 = ("dsp-2024-1",)


def dsp_reference_dir() -> Path:
    return shared_dir() / "reference" / "dsp"


def _source_root(source: str) -> Path:
    ref = dsp_reference_dir()
    return {
        "dsp-2025-1": ref / "dsp-2025-1" / "schema",
        "tck-2025-1": ref / "tck-2025-1-schemas",
        "dsp-2024-1": ref / "dsp-2024-1" / "schema",
    }[source]


def schemas_available() -> bool:
    """True when all three schema sources are present."""
    return all(_source_root(s).is_dir() for s in (*_SOURCES_2025, *_SOURCES_2024))


# ---------------------------------------------------------------- loading and repairs


def _repair(node: Any, source: str) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and "#definitions/" in value:
                value = value.replace("#definitions/", "#/definitions/")
            elif key == "items" and isinstance(value, str):
                value = {"type": value}
            else:
                value = _repair(value, source)
            out[key] = value
        if source == "dsp-2024-1" and "odrl:term-lteq" in out.get("enum", ()):
            if "odrl:lteq" not in out["enum"]:
                out["enum"] = [*out["enum"], "odrl:lteq"]
        return out
    if isinstance(node, list):
        return [_repair(v, source) for v in node]
    return node


@functools.lru_cache(maxsize=None)
def _schemas(source: str) -> dict[str, dict]:
    """{file name: repaired schema} for one source. The TCK's duplicate files are identical."""
    root = _source_root(source)
    out: dict[str, dict] = {}
    for path in sorted(root.rglob("*-schema.json")):
        schema = _repair(json.loads(path.read_text(encoding="utf-8")), source)
        out.setdefault(path.name, schema)
    return out


@functools.lru_cache(maxsize=None)
def _registry(source: str) -> Registry:
    resources = []
    for schema in _schemas(source).values():
        resource = Resource.from_contents(schema, default_specification=DRAFT201909)
        resources.append((schema["$id"], resource))
    return Registry().with_resources(resources).crawl()


@functools.lru_cache(maxsize=None)
def _validator(source: str, file_name: str) -> jsonschema.protocols.Validator:
    schema = _schemas(source)[file_name]
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft201909Validator)
    return cls(schema, registry=_registry(source))


# ---------------------------------------------------------------- public helpers


def _type_name(message: dict) -> str:
    t = message.get("@type") if isinstance(message, dict) else None
    if isinstance(t, list) and len(t) == 1:
        t = t[0]
    if not isinstance(t, str):
        raise AssertionError(f"message has no single string @type: {json.dumps(message)[:200]}")
    return t.split(":", 1)[1] if ":" in t else t


def _file_name(type_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", type_name).lower() + "-schema.json"


def schema_files_for(message_type: str, version: str) -> list[tuple[str, str]]:
    """[(source, schema file name)] that exist for ``message_type`` (bare or prefixed)."""
    sources = {"2025-1": _SOURCES_2025, "2024-1": _SOURCES_2024}.get(version)
    if sources is None:
        raise ValueError(f"unsupported DSP version {version!r}")
    name = _file_name(message_type.split(":", 1)[1] if ":" in message_type else message_type)
    return [(s, name) for s in sources if name in _schemas(s)]


def validation_errors(message: dict, version: str) -> list[str]:
    """Readable validation errors (empty when valid). Raises AssertionError if there is no schema."""
    type_name = _type_name(message)
    targets = schema_files_for(type_name, version)
    if not targets:
        raise AssertionError(f"no {version} JSON Schema for @type {type_name!r}")
    problems: list[str] = []
    for source, file_name in targets:
        errors = sorted(_validator(source, file_name).iter_errors(message), key=lambda e: list(e.absolute_path))
        for err in errors[:8]:
            where = "/".join(str(p) for p in err.absolute_path) or "<root>"
            line = f"[{source}/{file_name}] at {where}: {err.message}"
            for sub in sorted(err.context, key=jsonschema.exceptions.relevance)[:3]:
                sub_where = "/".join(str(p) for p in sub.absolute_path) or "<root>"
                line += f"\n      - at {sub_where}: {sub.message}"
            problems.append(line)
        if len(errors) > 8:
            problems.append(f"[{source}/{file_name}] ... and {len(errors) - 8} more")
    return problems


def validate(message: dict, version: str) -> None:
    """Validate ``message`` against the ``version`` schema(s) for its ``@type``.

    Raises AssertionError with a readable report on failure.
    """
    problems = validation_errors(message, version)
    if problems:
        body = json.dumps(message, indent=2)
        if len(body) > 1500:
            body = body[:1500] + "\n..."
        raise AssertionError(
            f"{_type_name(message)} is not valid DSP {version}:\n  " + "\n  ".join(problems) + f"\nmessage:\n{body}"
        )


def copy_schema(source: str, file_name: str) -> dict:
    """A deep copy of a repaired schema (for tests that inspect schemas)."""
    return copy.deepcopy(_schemas(source)[file_name])
