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
