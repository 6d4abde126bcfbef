"""Every proof vector of transparency-dev/merkle testdata (copied under
/work/shared/reference/ledger/merkle-testvectors) against connector.ledger.merkle.

Four kinds live there: inclusion, consistency (RFC 6962/9162), and
subtreeinclusion, subtreeconsistency (draft-ietf-plants-merkle-tree-certs).
Each file is one probe with ``wantErr``; happy paths are also regenerated
from the RFC 6962 test leaves to check proof *generation* byte for byte.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from connector.ledger import merkle as m
from support.reference import cases, reference_dir


TESTDATA_PATH = "ledger/merkle-testvectors/testdata"
TESTDATA = reference_dir() / TESTDATA_PATH
KINDS = ("inclusion", "consistency", "subtreeinclusion", "subtreeconsistency")

pytestmark = pytest.mark.needs_reference(TESTDATA_PATH)

FILES = sorted(TESTDATA.rglob("*.json")) if TESTDATA.is_dir() else []

# The 8 leaves of the RFC 6962 / Certificate Transparency test tree from which
# the vectors were generated.
RFC6962_LEAVES = [
    bytes.fromhex(x)
    for x in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]


def _b(s: str | None) -> bytes:
    return base64.b64decode(s) if s else b""


def _load(path: Path) -> tuple[str, dict]:
    kind = path.relative_to(TESTDATA).parts[0]
    return kind, json.loads(path.read_text(encoding="utf-8"))


def _run(kind: str, d: dict) -> bool:
    proof = [_b(x) for x in (d.get("proof") or [])]
    if kind == "inclusion":
        return m.verify_inclusion(_b(d["leafHash"]), d["leafIdx"], d["treeSize"], proof, _b(d["root"]))
    if kind == "consistency":
        return m.verify_consistency(d["size1"], d["size2"], _b(d["root1"]), _b(d["root2"]), proof)
    if kind == "subtreeinclusion":
        return m.verify_subtree_inclusion(
            _b(d["leafHash"]), d["leafIdx"], d["start"], d["end"], proof, _b(d["root"])
        )
    if kind == "subtreeconsistency":
        return m.verify_subtree_consistency(
            d["start"], d["end"], d["size"], _b(d["root1"]), _b(d["root2"]), proof
        )
    raise AssertionError(f"unknown vector kind {kind}")


def test_vector_set_is_complete():
    """Guard against silently running nothing or skipping a new kind."""
    kinds = {p.relative_to(TESTDATA).parts[0] for p in FILES}
    assert kinds == set(KINDS), f"unexpected vector kinds: {sorted(kinds)}"
    counts = {k: sum(1 for p in FILES if p.relative_to(TESTDATA).parts[0] == k) for k in KINDS}
    # transparency-dev/merkle 417fb0c3: 98 + 98 RFC vectors, 204 + 118 subtree vectors.
    assert counts["inclusion"] >= 98 and counts["consistency"] >= 98, counts
    assert counts["subtreeinclusion"] >= 200 and counts["subtreeconsistency"] >= 100, counts
    wants = [_load(p)[1]["wantErr"] for p in FILES]
    assert any(wants) and not all(wants)


@pytest.mark.parametrize("path", cases(FILES, TESTDATA_PATH), ids=lambda p: str(p.relative_to(TESTDATA)))
def test_vector(path: Path):
    kind, d = _load(path)
    got = _run(kind, d)
    assert got is (not d["wantErr"]), f"{d['desc']}: verify returned {got}, wantErr={d['wantErr']}"


@pytest.fixture(scope="module")
def rfc_store() -> m.MemoryLeafStore:
    st = m.MemoryLeafStore()
    st.extend(m.leaf_hash(x) for x in RFC6962_LEAVES)
    return st


HAPPY = [p for p in FILES if p.name.startswith("happy-path")]


@pytest.mark.parametrize("path", cases(HAPPY, TESTDATA_PATH), ids=lambda p: str(p.relative_to(TESTDATA)))
def test_happy_path_regenerated(path: Path, rfc_store: m.MemoryLeafStore):
    kind, d = _load(path)
    proof = [_b(x) for x in (d.get("proof") or [])]
    if kind == "inclusion":
        assert rfc_store.root(d["treeSize"]) == _b(d["root"])
        assert m.leaf_hash(RFC6962_LEAVES[d["leafIdx"]]) == _b(d["leafHash"])
        assert rfc_store.inclusion_proof(d["leafIdx"], d["treeSize"]) == proof
    elif kind == "consistency":
        assert rfc_store.root(d["size1"]) == _b(d["root1"])
        assert rfc_store.root(d["size2"]) == _b(d["root2"])
        assert rfc_store.consistency_proof(d["size1"], d["size2"]) == proof
    elif kind == "subtreeinclusion":
        # The "-subtree" variants shift the same leaves to [start, end).
        start, end = d["start"], d["end"]
        st = m.MemoryLeafStore()
        st.extend(m.leaf_hash(b"filler %d" % i) for i in range(start))
        st.extend(m.leaf_hash(x) for x in RFC6962_LEAVES[: end - start])
        assert m.subtree_root(start, end, st.get_node) == _b(d["root"])
        assert m.subtree_inclusion_proof(d["leafIdx"], start, end, st.get_node) == proof
    elif kind == "subtreeconsistency":
        assert m.subtree_root(d["start"], d["end"], rfc_store.get_node) == _b(d["root1"])
        assert rfc_store.root(d["size"]) == _b(d["root2"])
        assert m.subtree_consistency_proof(d["start"], d["end"], d["size"], rfc_store.get_node) == proof
