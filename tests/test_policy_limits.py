"""The policy compiler's work is linear in the policy's size, and nesting is limited with a PolicyError."""
import json

import pytest

from connector.policy.compiler import MAX_POLICY_DEPTH, _Compiler
from support.policies import compile_policy
from connector.policy.errors import PolicyError

ATOM = {"leftOperand": "purpose", "operator": "eq", "rightOperand": "x"}


def policy(constraint) -> dict:
    return {"@context": "http://www.w3.org/ns/odrl.jsonld", "@type": "Set", "uid": "http://example.com/p",
            "permission": [{"action": "use", "constraint": [constraint]}]}


def nested_lists(levels: int) -> dict:
    inner = ATOM
    for _ in range(levels):
        inner = [inner]
    return policy({"and": inner})  # "and" is an @list container: arrays in it are lists of lists


def nested_ands(levels: int) -> dict:
    inner = ATOM
    for _ in range(levels):
        inner = {"and": [inner]}
    return policy(inner)


@pytest.mark.parametrize("levels", [10, 20, 28])
def test_nested_lists_index_each_node_once(levels, monkeypatch):
    # Before the fix every @list item was indexed twice per level: 2^levels calls (35 levels: 12.7 s).
    calls = 0
    original = _Compiler._index

    def counting(self, node, depth):
        nonlocal calls
        calls += 1
        return original(self, node, depth)

    monkeypatch.setattr(_Compiler, "_index", counting)
    with pytest.raises(PolicyError):
        compile_policy(nested_lists(levels))  # a list where a constraint belongs: refused, with a path
    assert calls < 20 * levels


def test_reasonable_nesting_compiles():
    compiled = compile_policy(nested_ands(10))
    assert compiled is not None


@pytest.mark.parametrize("levels", [40, 400, 5000])
def test_deep_nesting_is_a_policy_error(levels):
    with pytest.raises(PolicyError) as err:
        compile_policy(nested_ands(levels))
    assert f"deeper than {MAX_POLICY_DEPTH}" in str(err.value)


def test_deeply_nested_text_is_a_policy_error():
    text = '{"permission": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(PolicyError) as err:
        compile_policy(text)
    assert "deeper than" in str(err.value)
    assert len(str(err.value)) < 300


# --- the policy engine's JSON-LD subset (connector/policy/jsonld.py): input outside it is refused,
# never expanded some other way (connector/policy/README.md lists what is outside)
_ODRL = "http://www.w3.org/ns/odrl.jsonld"
_SET = {"@type": "Set", "uid": "urn:policy:subset", "permission": [{"target": "urn:t", "action": "use"}]}
OUTSIDE_THE_SUBSET = {
    "a reverse property": ({"rev": {"@reverse": "http://example.org/r"}}, None, "@reverse"),
    "a property-scoped context": ({"p": {"@id": "http://example.org/p", "@context": {"a": "http://example.org/"}}},
                                  None, "@context in the definition"),
    "an @index container": ({"m": {"@id": "http://example.org/m", "@container": "@index"}}, None, "@container"),
    "a language map": ({"m": {"@id": "http://example.org/m", "@container": "@language"}}, None, "@container"),
    "a JSON literal": ({"j": {"@id": "http://example.org/j", "@type": "@json"}}, None, "@json"),
    "a nest": ({"n": {"@id": "http://example.org/n", "@nest": "@nest"}}, None, "@nest"),
    "a base IRI": ({"@base": "http://example.org/"}, None, "@base"),
    "a default language": ({"@language": "en"}, None, "@language in a @context"),
    "@included in the policy": ({}, {"@included": [{"@id": "urn:x"}]}, "@included"),
    "@nest in the policy": ({}, {"@nest": {}}, "@nest"),
    "@reverse in the policy": ({}, {"@reverse": {"http://example.org/r": {"@id": "urn:x"}}}, "@reverse"),
}


@pytest.mark.parametrize("case", sorted(OUTSIDE_THE_SUBSET))
def test_jsonld_outside_the_subset_is_a_policy_error(case):
    local, extra, named = OUTSIDE_THE_SUBSET[case]
    doc = {"@context": [_ODRL, local] if local else _ODRL, **_SET, **(extra or {})}
    with pytest.raises(PolicyError) as info:
        compile_policy(doc)
    assert named in str(info.value) and "JSON-LD subset" in str(info.value), str(info.value)


def test_the_same_policy_inside_the_subset_compiles():
    assert compile_policy({"@context": [_ODRL, {"ex": "http://example.org/"}], **_SET}) is not None
