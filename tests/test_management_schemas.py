"""The management API accepts a body through fastjsonschema and decides and explains a refusal
through jsonschema (connector/node/management.py). The two must agree: above all, fastjsonschema
must never accept what jsonschema refuses. Checked on every schema, with bodies built from each
property's edge values and with arbitrary JSON in every property."""
from __future__ import annotations

import itertools

import fastjsonschema
import jsonschema
from hypothesis import given, settings, strategies as st

from connector.node.management import ACCEPTORS, SCHEMAS, VALIDATORS

EDGE_VALUES = [
    None, True, False, 0, 1, -1, 1.0, 1.5, 2**70, "", "x", "x" * 255, "x" * 256, "x" * 1000, "x" * 1001,
    "x" * 2048, "x" * 4001, "a b", "a/b", "a?b", "a#b", "a\x00b", "a\x7fb", "a\u0085b", "\u00e9\u4e2d", "http://h",
    "https://h/x", "ftp://h", " http://h", "HTTP://h", "2025-1", "2024-1", "HttpData-PULL", "json", [], ["a"],
    ["a", "a"], ["a/b"], [1], {}, {"@id": "x"}, {"@id": ""}, {"@id": 3}, {"@id": "a\x00"}, {"permission": {}},
    {"permission": []},
]


def fast_accepts(name: str, body: object) -> bool:
    try:
        ACCEPTORS[name](body)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def agree(name: str, body: object) -> None:
    assert fast_accepts(name, body) == VALIDATORS[name].is_valid(body), (name, body)


def minimal(schema: dict) -> dict:
    """A valid body: each required property with a value its own schema accepts."""
    body = {}
    for key in schema.get("required", []):
        sub = schema["properties"][key]
        for value in EDGE_VALUES:
            if jsonschema.Draft202012Validator(sub).is_valid(value):
                body[key] = value
                break
    return body


def test_every_schema_agrees_on_its_edge_values():
    checked = 0
    for name, schema in SCHEMAS.items():
        base = minimal(schema)
        assert VALIDATORS[name].is_valid(base), name  # the base is valid: the mutations below test each keyword
        agree(name, base)
        for key, value in itertools.product(list(schema.get("properties", {})) + ["unknown"], EDGE_VALUES):
            agree(name, {**base, key: value})
            checked += 1
        for key in base:  # each required property missing
            agree(name, {k: v for k, v in base.items() if k != key})
        for value in EDGE_VALUES:  # not an object at all
            agree(name, value)
    assert checked > 1000


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(sorted(SCHEMAS)), key=st.text(max_size=20), value=JSON)
def test_every_schema_agrees_on_arbitrary_json(name, key, value):
    base = minimal(SCHEMAS[name])
    props = list(SCHEMAS[name].get("properties", {}))
    agree(name, {**base, key: value})
    for prop in props:
        agree(name, {**base, prop: value})
