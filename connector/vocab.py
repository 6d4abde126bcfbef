"""Locate and load the connector's own JSON-LD context documents.

This is the only module of the JSON-LD layer that touches the filesystem. The protocol
code (:mod:`connector.protocol.jsonld`) receives the parsed documents as a plain dict and
never reads files or fetches URLs.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connector.policy.contexts import PolicyContexts

__all__ = ["CONTEXT_FILES", "POLICY_CONTEXT_FILES", "vocab_dir", "load_contexts", "policy_contexts"]

#: context URL -> file path relative to the vocab folder
CONTEXT_FILES: dict[str, str] = {
    "https://w3id.org/dspace/2025/1/context.jsonld": "dsp-2025-1/context.jsonld",
    "https://w3id.org/dspace/2025/1/odrl-profile.jsonld": "dsp-2025-1/odrl-profile.jsonld",
    "https://w3id.org/dspace/2024/1/context.json": "dsp-2024-1/context.json",
    "http://www.w3.org/ns/odrl.jsonld": "odrl-2.2/odrl.jsonld",
    "https://w3id.org/edc/dspace/v0.0.1": "edc/dspace-v0.0.1.jsonld",
}

#: context URL -> file, for the policy engine (``connector.policy.contexts.POLICY_CONTEXT_URLS``).
#: Not the same set as CONTEXT_FILES: the DSP layer does not accept the station context in a
#: message, and policies are not written in the EDC context.
POLICY_CONTEXT_FILES: dict[str, str] = {
    "http://www.w3.org/ns/odrl.jsonld": "odrl-2.2/odrl.jsonld",
    "https://w3id.org/dspace/2024/1/context.json": "dsp-2024-1/context.json",
    "https://w3id.org/dspace/2025/1/context.jsonld": "dsp-2025-1/context.jsonld",
    "https://w3id.org/dspace/2025/1/odrl-profile.jsonld": "dsp-2025-1/odrl-profile.jsonld",
    "https://w3id.org/hks/context.jsonld": "hks/context.jsonld",
}


def vocab_dir() -> Path:
    """Return the folder holding the context files.

    An installed wheel carries it as ``connector/_vocab``. A source or editable checkout
    has it at ``<repo>/vocab``.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "_vocab", here.parent / "vocab"):
        if (candidate / CONTEXT_FILES["https://w3id.org/dspace/2025/1/context.jsonld"]).is_file():
            return candidate
    raise FileNotFoundError(
        f"JSON-LD vocab folder not found (looked for {here / '_vocab'} and {here.parent / 'vocab'})"
    )


def _read(files: dict[str, str]) -> dict[str, dict]:
    base = vocab_dir()
    docs: dict[str, dict] = {}
    for url, rel in files.items():
        with open(base / rel, encoding="utf-8") as fh:
            docs[url] = json.load(fh)
    return docs


@functools.lru_cache(maxsize=1)
def policy_contexts() -> "PolicyContexts":
    """Return the context documents the policy engine reads, for ``compile_policy(contexts=...)``.

    Cached: one table per process, so each context is processed once.
    """
    from connector.policy.contexts import PolicyContexts

    return PolicyContexts(_read(POLICY_CONTEXT_FILES))


@functools.lru_cache(maxsize=1)
def load_contexts() -> dict[str, dict]:
    """Return ``{context URL: parsed JSON-LD document}`` for every context the connector serves.

    The result is cached, so callers must treat it as read-only. ``JsonLdProcessor`` makes
    its own deep copies.
    """
    return _read(CONTEXT_FILES)
