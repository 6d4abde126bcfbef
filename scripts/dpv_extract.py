#!/usr/bin/env python3
"""Regenerate vocab/dpv/dpv-2.2.json from the official DPV 2.2 Turtle files.

Input: w3c/dpv (https://github.com/w3c/dpv), release 2.2, the files ``2.2/dpv/dpv.ttl`` and
``2.2/pd/pd.ttl`` (W3C Software and Document Licence). The copies this data was made from are
w3c/dpv commit f01a55c3 (2026-02-28), as kept in ``<shared>/reference/ids/dpv/dpv-2.2.ttl`` and
``pd-2.2.ttl``; their SHA-256 digests are written into the output, and ``--check`` refuses inputs
whose digests differ from the ones recorded in the current file.

Output: ``{"source": {...}, "personal_data": {IRI: [broader IRIs, English label, special category]},
"purposes": {IRI: [broader IRIs, English label]}}``, keys sorted.

* personal data: every ``pd:`` concept with an English label, plus the DPV data classes
  (DATA_CLASSES below); broader: its ``skos:broader`` values, sorted; special category: a
  transitive broader concept is ``dpv:SpecialCategoryPersonalData``;
* purposes: ``dpv:Purpose`` and every concept whose ``skos:broader`` chain reaches it; broader:
  its ``skos:broader`` values that are purposes too, sorted.

Usage: ``python scripts/dpv_extract.py DPV_TTL PD_TTL [-o vocab/dpv/dpv-2.2.json]``
(needs rdflib, a dependency of the project), then ``python scripts/dpv_extract.py --python``,
which renders ``connector/policy/_dpv.py`` from that JSON file. The pure policy package builds its
concept hierarchy at import time and reads no file, so it carries the JSON as two text tables (one
concept a line) that vocab.concept_table reads at import;
``tests/test_vocab_contexts.py`` checks that the two are equal.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import rdflib
from rdflib.namespace import SKOS

DPV = "https://w3id.org/dpv#"
PD = "https://w3id.org/dpv/pd#"
DATA_CLASSES = ["Data", "NonPersonalData", "AnonymisedData", "PersonalData", "PseudonymisedData",
                "SensitivePersonalData", "SpecialCategoryPersonalData"]
SOURCE = {"repository": "https://github.com/w3c/dpv", "commit": "f01a55c3", "version": "2.2",
          "files": {"dpv": "2.2/dpv/dpv.ttl", "pd": "2.2/pd/pd.ttl"}, "licence": "W3C Software and Document Licence"}
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "vocab" / "dpv" / "dpv-2.2.json"
DEFAULT_PY = Path(__file__).resolve().parents[1] / "connector" / "policy" / "_dpv.py"

PY_HEADER = '''"""Personal-data categories and purposes of the W3C Data Privacy Vocabulary 2.2 (w3c/dpv f01a55c3,
2.2/pd/pd.ttl and the dpv:Purpose subtree and data classes of 2.2/dpv/dpv.ttl; W3C Software and
Document Licence), rendered from vocab/dpv/dpv-2.2.json by scripts/dpv_extract.py --python: do not
edit by hand. Two tables, one concept a line, that vocab.concept_table reads (its docstring says how).
"""

from __future__ import annotations

from .vocab import concept_table
'''

PY_FOOTER = '''

PERSONAL_DATA: dict[str, tuple[tuple[str, ...], str, bool]] = concept_table(_PERSONAL_DATA_TABLE)
PURPOSES: dict[str, tuple[tuple[str, ...], str]] = {
    iri: (broader, label) for iri, (broader, label, _) in concept_table(_PURPOSES_TABLE).items()
}
'''


def _curie(iri: str) -> str:
    for prefix, ns in (("pd", PD), ("dpv", DPV)):  # pd's namespace starts with dpv's: try it first
        if iri.startswith(ns):
            return f"{prefix}:{iri[len(ns):]}"
    raise ValueError(f"{iri} is in neither the DPV nor the PD namespace")


def _table(name: str, entries: dict) -> list[str]:
    lines = [f'{name} = """\\']
    for iri, (broader, label, *special) in entries.items():
        if " | " in label or "\\" in label or '"""' in label or label != label.strip():
            raise ValueError(f"label of {iri} cannot stand in the table: {label!r}")
        lines.append(" | ".join([_curie(iri), " ".join(_curie(b) for b in broader), label]
                                + (["special"] if special == [True] else [])))
    return lines + ['"""']


def render_python(data: dict) -> str:
    """connector/policy/_dpv.py for ``data`` (the JSON file's content)."""
    lines = [PY_HEADER, *_table("_PERSONAL_DATA_TABLE", data["personal_data"]), "",
             *_table("_PURPOSES_TABLE", data["purposes"])]
    return "\n".join(lines) + PY_FOOTER


def extract(dpv_ttl: Path, pd_ttl: Path) -> dict:
    g = rdflib.Graph()
    g.parse(dpv_ttl, format="turtle")
    g.parse(pd_ttl, format="turtle")

    def broader(s: str) -> list[str]:
        return sorted(str(o) for o in g.objects(rdflib.URIRef(s), SKOS.broader))

    def label(s: str) -> str | None:
        for o in g.objects(rdflib.URIRef(s), SKOS.prefLabel):
            if getattr(o, "language", None) == "en":
                return str(o)
        return None

    def ancestors(s: str, seen: frozenset = frozenset()) -> set[str]:
        out: set[str] = set()
        for b in broader(s):
            if b not in seen:
                out |= {b} | ancestors(b, seen | {s})
        return out

    concepts = {str(s) for s in g.subjects(SKOS.prefLabel, None) if isinstance(s, rdflib.URIRef)}
    data = sorted(c for c in concepts if c.startswith(PD)) + [DPV + c for c in DATA_CLASSES]
    personal = {iri: [broader(iri), label(iri), DPV + "SpecialCategoryPersonalData" in ancestors(iri)]
                for iri in sorted(data)}
    purpose_set = {c for c in concepts if c.startswith(DPV) and (c == DPV + "Purpose" or DPV + "Purpose" in ancestors(c))}
    purposes = {iri: [[b for b in broader(iri) if b in purpose_set], label(iri)] for iri in sorted(purpose_set)}
    source = dict(SOURCE, sha256={name: hashlib.sha256(path.read_bytes()).hexdigest()
                                  for name, path in (("dpv", dpv_ttl), ("pd", pd_ttl))})
    return {"source": source, "personal_data": personal, "purposes": purposes}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dpv_ttl", type=Path, nargs="?")
    ap.add_argument("pd_ttl", type=Path, nargs="?")
    ap.add_argument("--python", action="store_true", help="render connector/policy/_dpv.py from the JSON file")
    ap.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="only compare with the output file; exit 1 if it differs")
    args = ap.parse_args(argv)
    if args.python:
        DEFAULT_PY.write_text(render_python(json.loads(args.output.read_text(encoding="utf-8"))), encoding="utf-8")
        print(f"wrote {DEFAULT_PY}")
        return 0
    if args.dpv_ttl is None or args.pd_ttl is None:
        ap.error("the DPV and PD Turtle files are required")
    text = json.dumps(extract(args.dpv_ttl, args.pd_ttl), indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    if args.check:
        same = args.output.is_file() and args.output.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{args.output} differs from what the inputs give")
        return 0 if same else 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
