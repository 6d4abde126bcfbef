"""The pure limits on a JSON-LD body (connector.protocol.bounds) and the echo cap for errors."""
from __future__ import annotations

import pytest

from connector.protocol.bounds import (JsonLdLimitExceeded, JsonLdLimits, JsonLdTooLarge, check_jsonld_shape,
                                       check_jsonld_size, time_limit_exceeded)
from connector.protocol.errors import ECHO_LIMIT, MalformedMessage, echo


def nested(depth: int) -> dict:
    """Containers nested exactly `depth` deep (the outer object is depth 1)."""
    doc: dict = {"leaf": 1}
    for _ in range(depth - 1):
        doc = {"n": doc}
    return doc


def test_defaults_are_the_documented_ones() -> None:
    limits = JsonLdLimits()
    assert (limits.max_bytes, limits.max_depth, limits.max_nodes, limits.timeout) == (1024 * 1024, 32, 50_000, 5.0)


@pytest.mark.parametrize("depth", [1, 2, 31, 32])
def test_depth_up_to_the_limit_passes(depth: int) -> None:
    check_jsonld_shape(nested(depth), JsonLdLimits())


@pytest.mark.parametrize("container", ["dict", "list"])
def test_depth_over_the_limit_is_named(container: str) -> None:
    doc: object = 1
    for _ in range(33):
        doc = {"n": doc} if container == "dict" else [doc]
    with pytest.raises(JsonLdLimitExceeded, match=r"nesting depth over 32 \(limit\)") as info:
        check_jsonld_shape(doc, JsonLdLimits())
    assert info.value.status == 400


def test_scalars_do_not_add_depth() -> None:
    check_jsonld_shape(nested(4), JsonLdLimits(max_depth=4))
    with pytest.raises(JsonLdLimitExceeded):
        check_jsonld_shape(nested(5), JsonLdLimits(max_depth=4))


def test_nodes_count_objects_arrays_and_values() -> None:
    doc = {"a": [1, 2, {"b": None}], "c": "x"}  # dict, list, 1, 2, dict, None, "x"
    assert check_jsonld_shape(doc, JsonLdLimits()) == 7
    check_jsonld_shape(doc, JsonLdLimits(max_nodes=7))
    with pytest.raises(JsonLdLimitExceeded, match=r"more than 6 JSON objects, arrays and values \(limit\)"):
        check_jsonld_shape(doc, JsonLdLimits(max_nodes=6))


def test_a_flat_body_over_the_node_limit_is_refused() -> None:
    with pytest.raises(JsonLdLimitExceeded):
        check_jsonld_shape({"items": list(range(60_000))}, JsonLdLimits())


def test_size_and_time() -> None:
    check_jsonld_size(1024 * 1024, JsonLdLimits())
    with pytest.raises(JsonLdTooLarge, match=r"1048577 bytes is over 1048576 bytes \(limit\)") as info:
        check_jsonld_size(1024 * 1024 + 1, JsonLdLimits())
    assert info.value.status == 413
    assert time_limit_exceeded(JsonLdLimits(timeout=0.5)).reason == \
        "JSON-LD body refused: processing took over 0.5 s (limit)"


def test_echo_keeps_short_values_and_cuts_long_ones() -> None:
    assert echo("abc") == "'abc'"
    assert echo("abc", quote=False) == "abc"
    assert echo(None) == "None"
    long = "x" * 10_000
    assert echo(long) == repr("x" * ECHO_LIMIT) + "… (10000 characters)"
    assert echo(long, quote=False) == "x" * ECHO_LIMIT + "… (10000 characters)"
    assert len(echo(list(range(10_000)))) == ECHO_LIMIT + 1
    assert echo(b"\xff" * 3) == repr("\ufffd" * 3)


def test_a_protocol_error_reason_is_clipped() -> None:
    assert len(MalformedMessage("y" * 100_000).reason) <= 1001
