"""The policy engine as the shell calls it: with the ``vocab/`` contexts passed in.

The policy package holds no context of its own (``vocab/`` is the only source), so
every caller passes ``contexts=``; these wrappers do that for the tests.
"""

from __future__ import annotations

from typing import Any

from connector.policy import compile_policy as _compile_policy
from connector.policy import parse_policy as _parse_policy
from connector.vocab import policy_contexts


def compile_policy(doc: Any, **kw: Any):
    kw.setdefault("contexts", policy_contexts())
    return _compile_policy(doc, **kw)


def parse_policy(doc: Any, **kw: Any):
    kw.setdefault("contexts", policy_contexts())
    return _parse_policy(doc, **kw)
