"""Property tests of connector.ledger.merkle against a naive RFC 6962 recomputation."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.ledger import merkle as m

MAX_N = 300
LEAVES = [m.leaf_hash(b"leaf %d" % i) for i in range(MAX_N + 2)]


# --- naive oracle: the recursive definitions of RFC 6962 section 2.1 --------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@lru_cache(maxsize=None)
def mth(lo: int, hi: int) -> bytes:
    n = hi - lo
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return LEAVES[lo]
    k = _k(n)
    return hashlib.sha256(b"\x01" + mth(lo, lo + k) + mth(lo + k, hi)).digest()


def naive_path(m_: int, lo: int, hi: int) -> list[bytes]:
    n = hi - lo
    if n == 1:
        return []
    k = _k(n)
    if m_ < k:
        return naive_path(m_, lo, lo + k) + [mth(lo + k, hi)]
    return naive_path(m_ - k, lo + k, hi) + [mth(lo, lo + k)]


def naive_subproof(m_: int, lo: int, hi: int, b: bool) -> list[bytes]:
    n = hi - lo
    if m_ == n:
        return [] if b else [mth(lo, hi)]
    k = _k(n)
    if m_ <= k:
        return naive_subproof(m_, lo, lo + k, b) + [mth(lo + k, hi)]
    return naive_subproof(m_ - k, lo + k, hi, False) + [mth(lo, lo + k)]


def naive_subtree_subproof(start: int, end: int, lo: int, hi: int, b: bool) -> list[bytes]:
    """SUBTREE_SUBPROOF of draft-ietf-plants-merkle-tree-certs (absolute coordinates)."""
    n = hi - lo
    if start == lo and end == hi:
        return [] if b else [mth(lo, hi)]
    k = _k(n)
    if end <= lo + k:
        return naive_subtree_subproof(start, end, lo, lo + k, b) + [mth(lo + k, hi)]
    if lo + k <= start:
        return naive_subtree_subproof(start, end, lo + k, hi, b) + [mth(lo, lo + k)]
    return naive_subtree_subproof(lo + k, end, lo + k, hi, False) + [mth(lo, lo + k)]


@pytest.fixture(scope="module")
def store() -> m.MemoryLeafStore:
    s = m.MemoryLeafStore()
    s.extend(LEAVES[:MAX_N])
    return s


@pytest.fixture(scope="module")
def tiled_store() -> m.MemoryLeafStore:
    s = m.MemoryLeafStore(stride=3)
    s.extend(LEAVES[:MAX_N])
    return s


sizes = st.integers(min_value=1, max_value=MAX_N)


def flip(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[(bit // 8) % len(b)] ^= 1 << (bit % 8)
    return bytes(b)


# --- roots ------------------------------------------------------------------


def test_empty_tree():
    assert m.root_from_leaves([]) == hashlib.sha256(b"").digest() == m.EMPTY_ROOT
    assert m.CompactTree().root() == m.EMPTY_ROOT
    assert m.MemoryLeafStore().root() == m.EMPTY_ROOT
    assert m.leaf_hash(b"") == hashlib.sha256(b"\x00").digest()


def test_root_at_every_size(store, tiled_store):
    t = m.CompactTree()
    for n in range(MAX_N + 1):
        want = mth(0, n)
        assert t.size == n
        assert t.root() == want
        assert store.root(n) == want
        assert tiled_store.root(n) == want
        if n < MAX_N:
            assert t.append(LEAVES[n]) == n
    assert m.root_from_leaves(LEAVES[:MAX_N]) == mth(0, MAX_N)


def test_append_with_nodes_reports_every_complete_node(store):
    t = m.CompactTree()
    seen = {}
    for i in range(130):
        idx, done = t.append_with_nodes(LEAVES[i])
        assert idx == i
        for start, level, h in done:
            assert level >= 1 and start % (1 << level) == 0 and start + (1 << level) == i + 1
            assert h == mth(start, start + (1 << level)) == store.get_node(start, level)
            seen[(start, level)] = h
    # every complete interior node of a 130-leaf tree was reported exactly once
    want = {(s, lv) for lv in range(1, 8) for s in range(0, 130 - (1 << lv) + 1, 1 << lv)}
    assert set(seen) == want


def test_frontier_nodes():
    t = m.CompactTree()
    t.extend(LEAVES[:13])
    assert [(s, lv) for s, lv, _ in t.frontier_nodes()] == [(0, 3), (8, 2), (12, 0)]
    for s, lv, h in t.frontier_nodes():
        assert h == mth(s, s + (1 << lv))


# --- inclusion --------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(data=st.data(), n=sizes)
def test_inclusion_random(store, tiled_store, data, n):
    i = data.draw(st.integers(0, n - 1), label="index")
    root = mth(0, n)
    proof = store.inclusion_proof(i, n)
    assert proof == naive_path(i, 0, n)
    assert m.inclusion_proof(i, n, tiled_store.get_node) == proof
    nodes = m.inclusion_proof_nodes(i, n)
    assert len(nodes) <= 2 * max(1, (n - 1).bit_length())
    cache = {k: store.get_node(*k) for k in nodes}
    assert m.inclusion_proof(i, n, lambda s, lv: cache[(s, lv)]) == proof
    assert m.verify_inclusion(LEAVES[i], i, n, proof, root)

    # wrong leaf, wrong root, wrong index
    assert not m.verify_inclusion(LEAVES[MAX_N + 1], i, n, proof, root)
    assert not m.verify_inclusion(LEAVES[i], i, n, proof, flip(root, data.draw(st.integers(0, 255))))
    j = data.draw(st.integers(0, n + 5), label="other index")
    if j != i:
        assert not m.verify_inclusion(LEAVES[i], j, n, proof, root)
    assert not m.verify_inclusion(LEAVES[i], n, n, proof, root)
    assert not m.verify_inclusion(LEAVES[i], -1, n, proof, root)
    # tampered proofs
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1), label="element")
        bad = list(proof)
        bad[k] = flip(bad[k], data.draw(st.integers(0, 255), label="bit"))
        assert not m.verify_inclusion(LEAVES[i], i, n, bad, root)
        assert not m.verify_inclusion(LEAVES[i], i, n, proof[:-1], root)
        assert not m.verify_inclusion(LEAVES[i], i, n, proof[1:], root)
        assert not m.verify_inclusion(LEAVES[i], i, n, list(reversed(proof)), root) or len(set(proof)) == 1
    assert not m.verify_inclusion(LEAVES[i], i, n, proof + [root], root)
    assert not m.verify_inclusion(LEAVES[i], i, n, [LEAVES[0]] + proof, root)


# --- consistency ------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(data=st.data(), n=sizes)
def test_consistency_random(store, tiled_store, data, n):
    old = data.draw(st.integers(1, n), label="old size")
    r1, r2 = mth(0, old), mth(0, n)
    proof = store.consistency_proof(old, n)
    assert proof == naive_subproof(old, 0, n, True)
    assert m.consistency_proof(old, n, tiled_store.get_node) == proof
    nodes = m.consistency_proof_nodes(old, n)
    assert len(nodes) <= 2 * max(1, (n - 1).bit_length()) + 1
    assert m.verify_consistency(old, n, r1, r2, proof)
    # the same proof as a subtree consistency proof of [0, old)
    assert m.verify_subtree_consistency(0, old, n, r1, r2, proof)

    if old == n:
        assert proof == []
        assert not m.verify_consistency(old, n, r1, flip(r2, 3), proof)
        return
    bit = data.draw(st.integers(0, 255), label="bit")
    assert not m.verify_consistency(old, n, flip(r1, bit), r2, proof)
    assert not m.verify_consistency(old, n, r1, flip(r2, bit), proof)
    assert not m.verify_consistency(old, n, r2, r1, proof)
    assert not m.verify_consistency(old, n, r1, r2, [])
    k = data.draw(st.integers(0, len(proof) - 1), label="element")
    bad = list(proof)
    bad[k] = flip(bad[k], bit)
    assert not m.verify_consistency(old, n, r1, r2, bad)
    assert not m.verify_consistency(old, n, r1, r2, proof[:-1])
    assert not m.verify_consistency(old, n, r1, r2, proof + [r2])
    assert not m.verify_consistency(old, n, r1, r2, [r1] + proof)
    # a wrong old size never verifies (checked exhaustively up to 70 leaves too)
    other = data.draw(st.integers(0, n + 3), label="other old size")
    if other != old:
        assert not m.verify_consistency(other, n, r1, r2, proof)
    assert not m.verify_consistency(n, old, r2, r1, proof)
    assert not m.verify_consistency(0, n, r1, r2, proof)


def test_wrong_old_size_exhaustive(store):
    for n in range(2, 71):
        rn = mth(0, n)
        for old in range(1, n):
            proof = store.consistency_proof(old, n)
            for other in range(0, n + 2):
                if other != old:
                    assert not m.verify_consistency(other, n, mth(0, old), rn, proof), (old, other, n)


def test_sizes_are_bound_by_the_checkpoint_not_the_proof(store):
    """Documented limitation of RFC 9162 proofs: the root does not commit to the
    tree size, so the same path can verify for another size with an identical
    path shape.  Sizes must come from a signed checkpoint."""
    proof = store.inclusion_proof(0, 3)
    assert m.verify_inclusion(LEAVES[0], 0, 4, proof, mth(0, 3))
    cproof = store.consistency_proof(65, 70)
    assert m.verify_consistency(65, 69, mth(0, 65), mth(0, 70), cproof)


# --- subtrees ---------------------------------------------------------------


@st.composite
def valid_subtrees(draw):
    size = draw(st.integers(1, MAX_N))
    width = draw(st.integers(1, size))
    ceil = 1 << (width - 1).bit_length()
    slots = (size - width) // ceil
    start = draw(st.integers(0, slots)) * ceil
    return start, start + width, size


@settings(max_examples=300, deadline=None)
@given(sub=valid_subtrees(), data=st.data())
def test_subtree_proofs_random(store, tiled_store, sub, data):
    start, end, size = sub
    assert m.is_valid_subtree(start, end)
    sroot, root = mth(start, end), mth(0, size)
    assert m.subtree_root(start, end, store.get_node) == sroot
    proof = m.subtree_consistency_proof(start, end, size, store.get_node)
    assert proof == naive_subtree_subproof(start, end, 0, size, True)
    assert m.subtree_consistency_proof(start, end, size, tiled_store.get_node) == proof
    assert m.verify_subtree_consistency(start, end, size, sroot, root, proof)
    assert not m.verify_subtree_consistency(start, end, size, flip(sroot, 7), root, proof)
    assert not m.verify_subtree_consistency(start, end, size, sroot, flip(root, 7), proof)
    if proof:
        assert not m.verify_subtree_consistency(start, end, size, sroot, root, proof[:-1])
        assert not m.verify_subtree_consistency(start, end, size, sroot, root, [flip(proof[0], 1)] + proof[1:])

    i = data.draw(st.integers(start, end - 1), label="index")
    ip = m.subtree_inclusion_proof(i, start, end, store.get_node)
    assert ip == naive_path(i - start, start, end)
    assert m.verify_subtree_inclusion(LEAVES[i], i, start, end, ip, sroot)
    assert not m.verify_subtree_inclusion(LEAVES[i], i, start, end, ip, root if root != sroot else flip(root, 0))
    if start > 0:
        assert not m.verify_subtree_inclusion(LEAVES[i], start - 1, start, end, ip, sroot)


def test_invalid_subtrees_rejected(store):
    assert not m.is_valid_subtree(1, 3)
    assert not m.is_valid_subtree(2, 5)
    assert not m.is_valid_subtree(3, 3)
    assert m.is_valid_subtree(4, 7) and m.is_valid_subtree(0, 300) and m.is_valid_subtree(5, 6)
    with pytest.raises(ValueError):
        m.subtree_consistency_proof(1, 3, 8, store.get_node)
    with pytest.raises(ValueError):
        m.subtree_consistency_proof(0, 9, 8, store.get_node)
    with pytest.raises(ValueError):
        m.subtree_inclusion_proof(4, 0, 4, store.get_node)


# --- CompactTree state ------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, MAX_N - 40), more=st.integers(0, 40))
def test_compact_tree_state_round_trip(n, more):
    t = m.CompactTree()
    t.extend(LEAVES[:n])
    state = json.loads(json.dumps(t.to_state()))
    u = m.CompactTree.from_state(state)
    assert u == t and u.size == n and u.root() == t.root() == mth(0, n)
    assert len(state["frontier"]) == bin(n).count("1")
    for i in range(n, n + more):
        u.append(LEAVES[i])
        t.append(LEAVES[i])
    assert u.root() == t.root() == mth(0, n + more)


@pytest.mark.parametrize(
    "state",
    [
        None,
        [],
        {"v": 1, "size": 3, "frontier": ["00" * 32]},
        {"v": 1, "size": -1, "frontier": []},
        {"v": 1, "size": True, "frontier": ["00" * 32]},
        {"v": 1, "size": 1, "frontier": ["zz" * 32]},
        {"v": 1, "size": 1, "frontier": ["AA" * 32]},
        {"v": 1, "size": 1, "frontier": ["00" * 31]},
        {"v": 1, "size": 1, "frontier": "00" * 32},
        {"v": 2, "size": 0, "frontier": []},
        {"size": 0, "frontier": []},
    ],
)
def test_compact_tree_bad_state(state):
    with pytest.raises(ValueError):
        m.CompactTree.from_state(state)


def test_compact_tree_rejects_bad_leaf():
    t = m.CompactTree()
    for bad in (b"", b"x" * 31, b"x" * 33, "a" * 32, None, 5):
        with pytest.raises((ValueError, TypeError)):
            t.append(bad)
    assert t.size == 0


# --- store and generation input checks ---------------------------------------


def test_store_get_node_bounds(store):
    assert store.get_node(0, 0) == LEAVES[0]
    assert store.get_node(256, 5) == mth(256, 288)
    for start, level in [(1, 1), (0, 9), (296, 3), (-2, 1), (0, -1), (300, 0)]:
        with pytest.raises(ValueError):
            store.get_node(start, level)


def test_generation_input_checks(store):
    for args in [(0, 0), (5, 5), (-1, 5), (0, 301)]:
        with pytest.raises(ValueError):
            m.inclusion_proof(*args, store.get_node)
    for args in [(0, 5), (6, 5), (-1, 5)]:
        with pytest.raises(ValueError):
            m.consistency_proof(*args, store.get_node)
    with pytest.raises(ValueError):
        m.inclusion_proof(0, 2, lambda s, lv: b"short")


# --- verification never raises ------------------------------------------------

garbage = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.binary(max_size=40),
    st.text(max_size=40),
    st.lists(st.binary(max_size=40), max_size=4),
    st.lists(st.one_of(st.none(), st.integers(), st.text()), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(a=garbage, b=garbage, c=garbage, d=garbage, e=garbage, f=garbage)
def test_verifiers_never_raise(a, b, c, d, e, f):
    assert m.verify_inclusion(a, b, c, d, e) in (True, False)
    assert m.verify_consistency(a, b, c, d, e) in (True, False)
    assert m.verify_subtree_inclusion(a, b, c, d, e, f) in (True, False)
    assert m.verify_subtree_consistency(a, b, c, d, e, f) in (True, False)


def test_verifiers_reject_type_confusion(store):
    proof = store.inclusion_proof(3, 10)
    root = mth(0, 10)
    assert m.verify_inclusion(LEAVES[3], 3, 10, proof, root)
    assert not m.verify_inclusion(LEAVES[3], True, 10, proof, root)
    assert not m.verify_inclusion(LEAVES[3], 3.0, 10, proof, root)
    assert not m.verify_inclusion(LEAVES[3], 3, 10, tuple(proof) + ("x",), root)
    assert not m.verify_inclusion(LEAVES[3].hex(), 3, 10, proof, root)
    assert not m.verify_inclusion(LEAVES[3], 3, 10, b"".join(proof), root)
    assert m.verify_inclusion(LEAVES[3], 3, 10, tuple(proof), root)
    assert not m.verify_inclusion(LEAVES[3], 3, 2**64, proof, root)
    assert not m.verify_consistency(2**64, 2**64, root, root, [])
