"""The JSON-LD context documents the policy expander reads, as the shell passes them in.

The policy package holds no copy of any context: ``vocab/`` is the only source.
The shell (``connector.vocab.policy_contexts()``) reads the files and builds one
:class:`PolicyContexts`, which callers pass to ``compile_policy(contexts=...)``.
This module only reshapes the documents, purely:

* the DSP 2025-1 context keeps its message terms in type-scoped contexts, some
  of which ``@import`` the DSP ODRL profile. The policy expander does not apply
  type-scoped contexts, so that document is read flat: its own terms, then the
  profile's, then each type term followed by the terms of its scoped context
  (the first definition of a term wins; none of them clash in meaning);
* the ODRL context is also served for the two other URLs policies name it by.

A :class:`PolicyContexts` also keeps the processed form of each of its documents,
so a context is processed once per process, not once per policy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "ODRL_CONTEXT_URL",
    "DSP_2024_1_CONTEXT_URL",
    "DSP_2025_1_CONTEXT_URL",
    "DSP_2025_1_ODRL_PROFILE_URL",
    "HKS_CONTEXT_URL",
    "POLICY_CONTEXT_URLS",
    "PolicyContexts",
    "flatten_scoped",
]

ODRL_CONTEXT_URL = "http://www.w3.org/ns/odrl.jsonld"
DSP_2024_1_CONTEXT_URL = "https://w3id.org/dspace/2024/1/context.json"
DSP_2025_1_CONTEXT_URL = "https://w3id.org/dspace/2025/1/context.jsonld"
DSP_2025_1_ODRL_PROFILE_URL = "https://w3id.org/dspace/2025/1/odrl-profile.jsonld"
HKS_CONTEXT_URL = "https://w3id.org/hks/context.jsonld"

#: the documents the shell must pass (each a ``vocab/`` file)
POLICY_CONTEXT_URLS = (
    ODRL_CONTEXT_URL,
    DSP_2024_1_CONTEXT_URL,
    DSP_2025_1_CONTEXT_URL,
    DSP_2025_1_ODRL_PROFILE_URL,
    HKS_CONTEXT_URL,
)

#: other URLs policies use for the ODRL 2.2 context
_ODRL_ALIASES = ("https://www.w3.org/ns/odrl.jsonld", "http://www.w3.org/ns/odrl/2/")


def _inner(doc: Any) -> Any:
    return doc["@context"] if isinstance(doc, Mapping) and "@context" in doc else doc


def flatten_scoped(context: Mapping[str, Any], docs: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``context`` with its type-scoped contexts merged in flat (see the module docstring).

    ``@protected`` is dropped; an ``@import`` inside a scoped context is read from ``docs``.
    """
    scoped = {k: v for k, v in context.items() if isinstance(v, Mapping) and "@context" in v}
    out: dict[str, Any] = {k: v for k, v in context.items() if k != "@protected" and k not in scoped}
    imports = []
    for definition in scoped.values():
        url = definition["@context"].get("@import")
        if url is not None and url not in imports:
            imports.append(url)
    for url in imports:
        for term, value in _inner(docs[url]).items():
            if not term.startswith("@"):
                out.setdefault(term, value)
    for term, definition in scoped.items():
        rest = {k: v for k, v in definition.items() if k != "@context"}
        out.setdefault(term, rest["@id"] if set(rest) == {"@id"} else rest)
        for inner_term, value in definition["@context"].items():
            if not inner_term.startswith("@"):
                out.setdefault(inner_term, value)
    return out


class PolicyContexts(Mapping):
    """Read-only ``{context URL: document}`` for the policy expander, with a processed-context cache.

    ``docs`` must hold every URL of :data:`POLICY_CONTEXT_URLS` (the ``vocab/`` files, parsed).
    """

    def __init__(self, docs: Mapping[str, Any]):
        missing = [u for u in POLICY_CONTEXT_URLS if u not in docs]
        if missing:
            raise ValueError(f"policy contexts missing: {', '.join(missing)}")
        table: dict[str, Any] = dict(docs)
        table[DSP_2025_1_CONTEXT_URL] = flatten_scoped(_inner(docs[DSP_2025_1_CONTEXT_URL]), docs)
        for alias in _ODRL_ALIASES:
            table.setdefault(alias, docs[ODRL_CONTEXT_URL])
        self._docs = table
        #: ids of the (inner) context objects this table owns: only those are cached
        self.owned_ids = frozenset(id(_inner(d)) for d in table.values())
        #: processed active contexts by id of the context object (filled by the expander)
        self.processed: dict[int, Any] = {}

    def __getitem__(self, url: str) -> Any:
        return self._docs[url]

    def __iter__(self) -> Iterator[str]:
        return iter(self._docs)

    def __len__(self) -> int:
        return len(self._docs)
