"""The policy engine's own JSON-LD expander (connector/policy/jsonld.py) against pyld, on the
policy templates in policies/ and the same templates in DSP 2025-1 form.

Why the measurement: issue 17 asks whether the second expander is needed, since policies are
compiled once (per distinct policy: the node compiles through an LRU cache, connector/node/usage.py,
and the station once per offer of a registered self-description, connector/station/registry.py).
Both expanders get the same documents, served from vocab/ (nothing is fetched, pyld with one shared
context cache, its best case); the terms and values out of ours are checked to be among pyld's
before timing.

    python bench/policy_jsonld.py [--seconds 1]

The last line printed is one JSON object: expansions per second for each, and the ratio.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyld import jsonld as pyld_jsonld  # noqa: E402
from pyld.context_resolver import ContextResolver  # noqa: E402

from connector.policy.contexts import HKS_CONTEXT_URL  # noqa: E402
from connector.policy.jsonld import expand  # noqa: E402
from connector.vocab import policy_contexts, vocab_dir, POLICY_CONTEXT_FILES  # noqa: E402


def documents() -> list[dict]:
    docs = []
    for path in sorted((ROOT / "policies").glob("*.jsonld")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if "@context" not in doc:
            doc = {"@context": HKS_CONTEXT_URL, **doc}
        docs.append(doc)
    return docs


def pyld_expander():
    raw = {url: json.loads((vocab_dir() / rel).read_text(encoding="utf-8")) for url, rel in POLICY_CONTEXT_FILES.items()}

    def loader(url, options=None):
        return {"contextUrl": None, "documentUrl": url, "document": copy.deepcopy(raw[url]),
                "contentType": "application/ld+json"}

    resolver = ContextResolver({}, loader)  # one shared cache: pyld at its best

    def run(doc):
        return pyld_jsonld.expand(copy.deepcopy(doc), {"documentLoader": loader, "base": None,
                                                       "contextResolver": resolver})

    return run


def ours(doc):
    nodes, errors = expand(doc, contexts=policy_contexts())
    assert not errors, errors
    return nodes


def _iris(value, out: set) -> set:
    """Every IRI and literal in an expanded document (order- and nesting-insensitive)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not k.startswith("@"):
                out.add(k)
            _iris(v, out)
    elif isinstance(value, list):
        for v in value:
            _iris(v, out)
    else:
        out.add(str(value))
    return out


def rate(fn, docs, seconds: float) -> float:
    for d in docs:
        fn(d)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for d in docs:
            fn(d)
        n += len(docs)
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()
    docs = documents()
    theirs = pyld_expander()
    for d in docs:  # same terms and values out of both (ours flattens nested nodes into a list)
        assert _iris(ours(d), set()) <= _iris(theirs(d), set()) | {"true", "false"}, d.get("uid")
    mine = rate(ours, docs, args.seconds)
    pyld = rate(theirs, docs, args.seconds)
    print(f"policy expander: {mine:10,.0f} expansions/s")
    print(f"pyld:            {pyld:10,.0f} expansions/s")
    print(json.dumps({"bench": "policy_jsonld", "documents": len(docs), "ours_per_s": round(mine),
                      "pyld_per_s": round(pyld), "ratio": round(mine / pyld, 1)}))


if __name__ == "__main__":
    main()
