"""Bounds on the work one peer's body may cause (pure: no I/O, no clock).

A DSP message whose ``@context`` is a known DSP context is read as plain JSON (the fast
path). Anything else needs JSON-LD expansion and compaction with PyLD (the slow path), whose
cost grows with the inline contexts and the document far faster than with its size: an
869 KB body once took 11.8 s. Before a body is handed to PyLD, :func:`check_jsonld_size`
and :func:`check_jsonld_shape` refuse it when it is over the size, nesting-depth or
node-count limit; the shell checks the size in the event loop and runs the shape check and
PyLD in a worker process, under the time limit (``connector/node/jsonld_pool.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import MalformedMessage, PayloadTooLarge

__all__ = ["JsonLdLimits", "JsonLdLimitExceeded", "JsonLdTooLarge", "check_jsonld_size", "check_jsonld_shape",
           "time_limit_exceeded"]

PREFIX = "JSON-LD body refused"


@dataclass(frozen=True)
class JsonLdLimits:
    """Limits on a body that leaves the fast path. Defaults: see the README's settings table."""

    max_bytes: int = 1024 * 1024
    max_depth: int = 32
    max_nodes: int = 50_000  # JSON objects, arrays and values, the @context included
    timeout: float = 5.0  # seconds of JSON-LD processing
    memory_mib: int = 512  # memory one body may make its worker allocate, beyond what the worker holds

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.max_depth < 1 or self.max_nodes < 1 or self.timeout <= 0 or self.memory_mib < 1:
            raise ValueError("JSON-LD limits must be positive")


class JsonLdLimitExceeded(MalformedMessage):
    """400: the body is over one of the limits (its reason names the limit)."""

    code = "JsonLdLimitExceeded"


class JsonLdTooLarge(PayloadTooLarge):
    """413: the body is over the slow path's size limit."""

    code = "JsonLdLimitExceeded"


def check_jsonld_size(size: int, limits: JsonLdLimits) -> None:
    if size > limits.max_bytes:
        raise JsonLdTooLarge(f"{PREFIX}: {size} bytes is over {limits.max_bytes} bytes (limit)")


def check_jsonld_shape(doc: Any, limits: JsonLdLimits) -> int:
    """Count the body's objects, arrays and values and measure its nesting depth; raise
    :class:`JsonLdLimitExceeded` as soon as either is over its limit. Returns the node count.

    Iterative (no recursion limit to hit) and it stops at the first node over a limit, so
    its own cost is bounded by ``max_nodes``."""
    max_depth, max_nodes = limits.max_depth, limits.max_nodes
    nodes = 0
    stack: list[tuple[Any, int]] = [(doc, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        value, depth = pop()
        nodes += 1
        if nodes > max_nodes:
            raise JsonLdLimitExceeded(f"{PREFIX}: more than {max_nodes} JSON objects, arrays and values (limit)")
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= max_depth:  # the child would be a container nested max_depth + 1 deep
                    raise JsonLdLimitExceeded(f"{PREFIX}: nesting depth over {max_depth} (limit)")
                push((child, depth + 1))
            else:
                nodes += 1
        if nodes > max_nodes:
            raise JsonLdLimitExceeded(f"{PREFIX}: more than {max_nodes} JSON objects, arrays and values (limit)")
    return nodes


def time_limit_exceeded(limits: JsonLdLimits) -> JsonLdLimitExceeded:
    """The error for a body whose JSON-LD processing ran over the time limit."""
    return JsonLdLimitExceeded(f"{PREFIX}: processing took over {limits.timeout:g} s (limit)")
