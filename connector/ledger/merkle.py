"""RFC 6962 / RFC 9162 Merkle tree: hashing, compact tree, proofs, verification.

Pure functions and small in-memory classes only: no file, network or database
I/O, no clock, no logging.

Hashing (RFC 6962 section 2.1, RFC 9162 section 2.1.1)::

    leaf_hash(d)    = SHA-256(0x00 || d)
    node_hash(l, r) = SHA-256(0x01 || l || r)
    MTH({})         = SHA-256("")

Node coordinates
----------------
Proof *generation* never walks the tree itself.  It asks a callback for the
hashes of complete ("perfect") subtrees::

    get_node(start, level) -> bytes   # hash of leaves [start, start + 2**level)

``start`` is always a multiple of ``2**level`` and ``start + 2**level`` never
exceeds the tree size the proof is for; ``level == 0`` asks for a stored leaf
hash.  Those nodes never change once the leaf ``start + 2**level - 1`` has been
appended, so a shell can store them permanently: :meth:`CompactTree.append_with_nodes`
returns exactly the interior nodes each append completes (one per append on
average), which is all a database needs to answer ``get_node`` with one
primary-key lookup.  Hashes of non-perfect ranges (the right edge of a tree
whose size is not a power of two) are folded here from at most log2(n)
perfect pieces.

Cost model, for a tree of n leaves and an O(1) ``get_node``:

* ``inclusion_proof``: at most ``2 * ceil(log2 n)`` ``get_node`` calls
  (``len(proof)`` plus the pieces of the single right-edge range a proof can
  contain) and at most ``ceil(log2 n)`` SHA-256 compressions to fold that
  range.  At n = 1,000,000: 20 proof hashes, at most 25 lookups.
* ``consistency_proof`` / ``subtree_consistency_proof``: the same bounds
  plus one lookup (``2 * ceil(log2 n) + 1``).
* ``verify_*``: ``len(proof)`` compressions (two per step for consistency).
* Planning helpers (:func:`inclusion_proof_nodes`, :func:`consistency_proof_nodes`)
  list the ``(start, level)`` pairs a proof will request, so a shell backed by
  SQL can fetch them in one round trip and then answer from a dict.

If ``get_node`` is *not* O(1) (for example a tile store that keeps only every
k-th level, like :class:`MemoryLeafStore` with ``stride=k``), each call costs up
to ``2**(k-1)`` extra compressions; see :class:`MemoryLeafStore`.

Verification follows RFC 9162 sections 2.1.3.2 and 2.1.4.2 and never raises:
malformed or out-of-range input returns ``False``.  Subtree inclusion and
consistency proofs (draft-ietf-plants-merkle-tree-certs, as implemented by
transparency-dev/merkle) are provided too, because the reference vector set
contains them.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Callable, Iterable, Sequence

__all__ = [
    "HASH_SIZE",
    "EMPTY_ROOT",
    "MAX_TREE_SIZE",
    "NodeGetter",
    "leaf_hash",
    "node_hash",
    "root_from_leaves",
    "CompactTree",
    "MemoryLeafStore",
    "is_valid_subtree",
    "inclusion_proof",
    "inclusion_proof_nodes",
    "inclusion_proof_ranges",
    "range_hash",
    "consistency_proof",
    "consistency_proof_nodes",
    "subtree_inclusion_proof",
    "subtree_consistency_proof",
    "subtree_consistency_proof_nodes",
    "subtree_root",
    "root_at",
    "verify_inclusion",
    "verify_consistency",
    "verify_subtree_inclusion",
    "verify_subtree_consistency",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
#: Sizes and indices are uint64 on the wire (RFC 9162, C2SP); larger values are rejected.
MAX_TREE_SIZE = (1 << 64) - 1

NodeGetter = Callable[[int, int], bytes]

_sha256 = hashlib.sha256
_LEAF = b"\x00"
_NODE = b"\x01"
_BYTES_LIKE = (bytes, bytearray, memoryview)


# ---------------------------------------------------------------------------
# Hashing
# ---------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data)."""
    if type(data) is bytes:
        return _sha256(_LEAF + data).digest()
    if not isinstance(data, _BYTES_LIKE):
        raise TypeError(f"leaf data must be bytes, not {type(data).__name__}")
    h = _sha256(_LEAF)
    h.update(data)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    if not (isinstance(left, _BYTES_LIKE) and isinstance(right, _BYTES_LIKE)):
        raise TypeError("node_hash takes two bytes values")
    return _sha256(_NODE + bytes(left) + bytes(right)).digest()


def _is_uint(x: object) -> bool:
    return type(x) is int and 0 <= x <= MAX_TREE_SIZE


def _is_hash(x: object) -> bool:
    return isinstance(x, (bytes, bytearray)) and len(x) == HASH_SIZE


def _check_hash(x: object, what: str) -> bytes:
    if not _is_hash(x):
        raise ValueError(f"{what} must be {HASH_SIZE} bytes")
    return bytes(x)  # type: ignore[arg-type]


def _check_size(x: object, what: str) -> int:
    if not _is_uint(x):
        raise ValueError(f"{what} must be an int in [0, 2**64)")
    return x  # type: ignore[return-value]


def _fold_right(hashes: Sequence[bytes]) -> bytes:
    """Root of perfect subtrees given left to right, largest first."""
    r = hashes[-1]
    for i in range(len(hashes) - 2, -1, -1):
        r = _sha256(_NODE + hashes[i] + r).digest()
    return r


def root_from_leaves(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH over the given leaf hashes (any count; empty -> SHA-256 of "")."""
    t = CompactTree()
    for h in leaf_hashes:
        t.append(h)
    return t.root()


# ---------------------------------------------------------------------------
# Compact tree (frontier)
# ---------------------------------------------------------------------------


class CompactTree:
    """Append-only Merkle tree keeping only its frontier: O(log n) hashes.

    The frontier is the list of roots of the perfect subtrees the first
    ``size`` leaves decompose into, left to right (one per set bit of
    ``size``, largest first).  ``append`` is amortised one node hash.

    ``to_state()`` returns a JSON-serialisable dict; ``from_state()`` restores
    it after validating it, so the shell can persist the tree head in the same
    transaction as the leaf.
    """

    __slots__ = ("_size", "_frontier")

    STATE_VERSION = 1

    def __init__(self) -> None:
        self._size = 0
        self._frontier: list[bytes] = []

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return self._size

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactTree):
            return NotImplemented
        return self._size == other._size and self._frontier == other._frontier

    def __repr__(self) -> str:
        return f"CompactTree(size={self._size}, root={self.root().hex()})"

    def copy(self) -> "CompactTree":
        t = CompactTree()
        t._size = self._size
        t._frontier = list(self._frontier)
        return t

    def append(self, leaf_hash: bytes) -> int:
        """Append one leaf hash; return its index."""
        if type(leaf_hash) is not bytes or len(leaf_hash) != HASH_SIZE:
            leaf_hash = _check_hash(leaf_hash, "leaf hash")
        index = self._size
        if index >= MAX_TREE_SIZE:
            raise OverflowError("tree is full")
        f = self._frontier
        h = leaf_hash
        s = index
        while s & 1:
            h = _sha256(_NODE + f.pop() + h).digest()
            s >>= 1
        f.append(h)
        self._size = index + 1
        return index

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for h in leaf_hashes:
            self.append(h)

    def append_with_nodes(self, leaf_hash: bytes) -> tuple[int, list[tuple[int, int, bytes]]]:
        """Append one leaf hash; return ``(index, completed)``.

        ``completed`` lists the interior nodes this append finished, as
        ``(start, level, hash)`` with ``level >= 1``, lowest first.  Storing
        them (and the leaf hash at level 0) gives a ``get_node`` store that
        answers every proof request with a lookup.
        """
        leaf_hash = _check_hash(leaf_hash, "leaf hash")
        index = self._size
        if index >= MAX_TREE_SIZE:
            raise OverflowError("tree is full")
        f = self._frontier
        h = leaf_hash
        s = index
        level = 0
        done: list[tuple[int, int, bytes]] = []
        while s & 1:
            h = _sha256(_NODE + f.pop() + h).digest()
            s >>= 1
            level += 1
            done.append((s << level, level, h))
        f.append(h)
        self._size = index + 1
        return index, done

    def root(self) -> bytes:
        if not self._frontier:
            return EMPTY_ROOT
        return _fold_right(self._frontier)

    def frontier_nodes(self) -> list[tuple[int, int, bytes]]:
        """The frontier as ``(start, level, hash)``, left to right."""
        out = []
        start = 0
        it = iter(self._frontier)
        for level in range(self._size.bit_length() - 1, -1, -1):
            if self._size >> level & 1:
                out.append((start, level, next(it)))
                start += 1 << level
        return out

    def to_state(self) -> dict:
        return {
            "v": self.STATE_VERSION,
            "size": self._size,
            "frontier": [h.hex() for h in self._frontier],
        }

    @classmethod
    def from_state(cls, state: dict) -> "CompactTree":
        if not isinstance(state, dict):
            raise ValueError("compact tree state must be a dict")
        if state.get("v") != cls.STATE_VERSION:
            raise ValueError(f"unsupported compact tree state version {state.get('v')!r}")
        size = state.get("size")
        if not _is_uint(size):
            raise ValueError("compact tree state: size must be an int in [0, 2**64)")
        frontier = state.get("frontier")
        if not isinstance(frontier, list):
            raise ValueError("compact tree state: frontier must be a list")
        if len(frontier) != bin(size).count("1"):
            raise ValueError(
                f"compact tree state: frontier has {len(frontier)} hashes, "
                f"size {size} needs {bin(size).count('1')}"
            )
        hashes = []
        for x in frontier:
            if not isinstance(x, str) or len(x) != 2 * HASH_SIZE or x != x.lower():
                raise ValueError("compact tree state: frontier entries must be 64 lowercase hex digits")
            try:
                hashes.append(bytes.fromhex(x))
            except ValueError:
                raise ValueError("compact tree state: frontier entry is not hex") from None
        t = cls()
        t._size = size
        t._frontier = hashes
        return t


# ---------------------------------------------------------------------------
# Range decomposition
# ---------------------------------------------------------------------------


def _largest_pow2_below(n: int) -> int:
    """Largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _pieces(lo: int, hi: int) -> list[tuple[int, int]]:
    """Perfect subtrees (start, level) covering [lo, hi), left to right.

    Valid for every range a proof or subtree root needs: such a range starts
    at a multiple of the smallest power of two >= its length, so each piece
    is a node of the tree.
    """
    out = []
    n = hi - lo
    while n:
        level = n.bit_length() - 1
        out.append((lo, level))
        lo += 1 << level
        n -= 1 << level
    return out


def _range_hash(lo: int, hi: int, get_node: NodeGetter) -> bytes:
    pieces = _pieces(lo, hi)
    hashes = []
    for start, level in pieces:
        h = get_node(start, level)
        if type(h) is not bytes or len(h) != HASH_SIZE:
            h = _check_hash(h, f"get_node({start}, {level})")
        hashes.append(h)
    return _fold_right(hashes)


def _inclusion_ranges(index: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """RFC 9162 PATH(index, D[lo:hi]) as leaf ranges, bottom-up."""
    out = []
    while hi - lo > 1:
        mid = lo + _largest_pow2_below(hi - lo)
        if index < mid:
            out.append((mid, hi))
            hi = mid
        else:
            out.append((lo, mid))
            lo = mid
    out.reverse()
    return out


def _subtree_consistency_ranges(start: int, end: int, size: int) -> list[tuple[int, int]]:
    """SUBTREE_PROOF(start, end, D[0:size]) as leaf ranges, bottom-up.

    With start == 0 this is RFC 9162 PROOF(end, D[0:size]) (SUBPROOF with
    b = true).  Requires a valid, non-empty subtree with end <= size.
    """
    lo, hi, known = 0, size, True
    out = []
    while True:
        if start == lo and end == hi:
            if not known:
                out.append((lo, hi))
            break
        mid = lo + _largest_pow2_below(hi - lo)
        if end <= mid:
            out.append((mid, hi))
            hi = mid
        elif mid <= start:
            out.append((lo, mid))
            lo = mid
        else:  # start == lo < mid < end: the subtree's left part is [lo, mid)
            out.append((lo, mid))
            lo = start = mid
            known = False
    out.reverse()
    return out


def _nodes_for(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    seen: dict[tuple[int, int], None] = {}
    for lo, hi in ranges:
        for p in _pieces(lo, hi):
            seen[p] = None
    return list(seen)


def is_valid_subtree(start: int, end: int) -> bool:
    """True if [start, end) is a non-empty subtree: start is a multiple of the
    smallest power of two >= end - start (draft-ietf-plants-merkle-tree-certs)."""
    if not (_is_uint(start) and _is_uint(end)) or start >= end:
        return False
    n = end - start
    ceil = 1 << (n - 1).bit_length()
    return start % ceil == 0


# ---------------------------------------------------------------------------
# Proof generation
# ---------------------------------------------------------------------------


def _check_index(index: int, size: int) -> None:
    _check_size(size, "size")
    if type(index) is not int or not 0 <= index < size:
        raise ValueError(f"index {index!r} out of range for tree size {size}")


def inclusion_proof_nodes(index: int, size: int) -> list[tuple[int, int]]:
    """The (start, level) nodes ``inclusion_proof(index, size, ...)`` will request."""
    _check_index(index, size)
    return _nodes_for(_inclusion_ranges(index, 0, size))


def inclusion_proof_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges ``[lo, hi)`` whose hashes form the inclusion proof, bottom-up.

    ``inclusion_proof(index, size, g) == [range_hash(lo, hi, g) for lo, hi in inclusion_proof_ranges(index, size)]``;
    a shell proving many leaves of one tree can memoise ``range_hash`` by range."""
    _check_index(index, size)
    return _inclusion_ranges(index, 0, size)


def range_hash(lo: int, hi: int, get_node: NodeGetter) -> bytes:
    """Hash of a range returned by :func:`inclusion_proof_ranges` (folded from perfect nodes)."""
    if not (_is_uint(lo) and _is_uint(hi)) or lo >= hi:
        raise ValueError(f"[{lo!r}, {hi!r}) is not a non-empty range")
    return _range_hash(lo, hi, get_node)


def inclusion_proof(index: int, size: int, get_node: NodeGetter) -> list[bytes]:
    """RFC 9162 section 2.1.3.1 inclusion proof for leaf ``index`` in the tree of ``size`` leaves."""
    _check_index(index, size)
    return [_range_hash(lo, hi, get_node) for lo, hi in _inclusion_ranges(index, 0, size)]


def _check_consistency_sizes(old_size: int, new_size: int) -> None:
    _check_size(old_size, "old_size")
    _check_size(new_size, "new_size")
    if old_size == 0:
        raise ValueError("no consistency proof from the empty tree")
    if old_size > new_size:
        raise ValueError(f"old_size {old_size} > new_size {new_size}")


def consistency_proof_nodes(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The (start, level) nodes ``consistency_proof(old_size, new_size, ...)`` will request."""
    _check_consistency_sizes(old_size, new_size)
    return _nodes_for(_subtree_consistency_ranges(0, old_size, new_size))


def consistency_proof(old_size: int, new_size: int, get_node: NodeGetter) -> list[bytes]:
    """RFC 9162 section 2.1.4.1 consistency proof; requires 0 < old_size <= new_size."""
    _check_consistency_sizes(old_size, new_size)
    return [_range_hash(lo, hi, get_node) for lo, hi in _subtree_consistency_ranges(0, old_size, new_size)]


def _check_subtree(start: int, end: int, size: int | None = None) -> None:
    if not is_valid_subtree(start, end):
        raise ValueError(f"[{start!r}, {end!r}) is not a valid non-empty subtree")
    if size is not None:
        _check_size(size, "size")
        if end > size:
            raise ValueError(f"subtree end {end} > tree size {size}")


def subtree_inclusion_proof(index: int, start: int, end: int, get_node: NodeGetter) -> list[bytes]:
    """Inclusion proof of leaf ``index`` in the subtree [start, end)."""
    _check_subtree(start, end)
    if type(index) is not int or not start <= index < end:
        raise ValueError(f"index {index!r} outside subtree [{start}, {end})")
    return [_range_hash(lo, hi, get_node) for lo, hi in _inclusion_ranges(index, start, end)]


def subtree_consistency_proof_nodes(start: int, end: int, size: int) -> list[tuple[int, int]]:
    _check_subtree(start, end, size)
    return _nodes_for(_subtree_consistency_ranges(start, end, size))


def subtree_consistency_proof(start: int, end: int, size: int, get_node: NodeGetter) -> list[bytes]:
    """Proof that subtree [start, end) is part of the tree of ``size`` leaves."""
    _check_subtree(start, end, size)
    return [_range_hash(lo, hi, get_node) for lo, hi in _subtree_consistency_ranges(start, end, size)]


def subtree_root(start: int, end: int, get_node: NodeGetter) -> bytes:
    """Hash of the valid subtree [start, end) from stored nodes."""
    _check_subtree(start, end)
    return _range_hash(start, end, get_node)


def root_at(size: int, get_node: NodeGetter) -> bytes:
    """MTH of the first ``size`` leaves from stored nodes (EMPTY_ROOT for 0)."""
    _check_size(size, "size")
    if size == 0:
        return EMPTY_ROOT
    return _range_hash(0, size, get_node)


# ---------------------------------------------------------------------------
# Verification (never raises)
# ---------------------------------------------------------------------------


def _proof_ok(proof: object) -> bool:
    if not isinstance(proof, (list, tuple)):
        return False
    for p in proof:
        if not _is_hash(p):
            return False
    return True


def _root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes | None:
    """RFC 9162 section 2.1.3.2 steps 2-5; None if the proof has the wrong shape."""
    fn = index
    sn = size - 1
    r = bytes(leaf)
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _sha256(_NODE + p + r).digest()
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = _sha256(_NODE + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return r


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2.  False for any malformed or out-of-range input."""
    try:
        if not (_is_uint(index) and _is_uint(size) and index < size):
            return False
        if not (_is_hash(leaf_hash) and _is_hash(root) and _proof_ok(proof)):
            return False
        r = _root_from_inclusion(leaf_hash, index, size, proof)
        return r is not None and hmac.compare_digest(r, bytes(root))
    except Exception:  # pragma: no cover - defensive: verification must not raise
        return False


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2.  False for any malformed or out-of-range input.

    Edge cases follow transparency-dev/merkle (and its test vectors):
    old_size == 0 is always False (nothing to prove), old_size > new_size is
    False, and old_size == new_size holds iff the proof is empty and the two
    roots are equal byte strings.
    """
    try:
        if not (_is_uint(old_size) and _is_uint(new_size)) or old_size == 0 or old_size > new_size:
            return False
        if not _proof_ok(proof):
            return False
        if not (isinstance(old_root, (bytes, bytearray)) and isinstance(new_root, (bytes, bytearray))):
            return False
        if old_size == new_size:
            return len(proof) == 0 and hmac.compare_digest(bytes(old_root), bytes(new_root))
        if not (_is_hash(old_root) and _is_hash(new_root)) or len(proof) == 0:
            return False
        path = list(proof)
        if old_size & (old_size - 1) == 0:  # exact power of two
            path.insert(0, bytes(old_root))
        fn = old_size - 1
        sn = new_size - 1
        while fn & 1:
            fn >>= 1
            sn >>= 1
        fr = sr = bytes(path[0])
        for c in path[1:]:
            if sn == 0:
                return False
            if fn & 1 or fn == sn:
                fr = _sha256(_NODE + c + fr).digest()
                sr = _sha256(_NODE + c + sr).digest()
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
            else:
                sr = _sha256(_NODE + sr + c).digest()
            fn >>= 1
            sn >>= 1
        return (
            sn == 0
            and hmac.compare_digest(fr, bytes(old_root))
            and hmac.compare_digest(sr, bytes(new_root))
        )
    except Exception:  # pragma: no cover
        return False


def verify_subtree_inclusion(
    leaf_hash: bytes, index: int, start: int, end: int, proof: Sequence[bytes], subtree_root: bytes
) -> bool:
    """Inclusion of leaf ``index`` in the valid subtree [start, end) with hash ``subtree_root``."""
    try:
        if not is_valid_subtree(start, end) or not (_is_uint(index) and start <= index < end):
            return False
        return verify_inclusion(leaf_hash, index - start, end - start, proof, subtree_root)
    except Exception:  # pragma: no cover
        return False


def verify_subtree_consistency(
    start: int, end: int, size: int, subtree_root: bytes, root: bytes, proof: Sequence[bytes]
) -> bool:
    """Subtree [start, end) with hash ``subtree_root`` is part of the tree of ``size`` leaves with ``root``.

    Algorithm of draft-ietf-plants-merkle-tree-certs ("Verifying a Subtree
    Consistency Proof").  An empty subtree (start == end <= size) is
    consistent with any tree iff its hash is SHA-256("") and the proof is
    empty, as in transparency-dev/merkle.
    """
    try:
        if not (_is_uint(start) and _is_uint(end) and _is_uint(size)) or not start <= end <= size:
            return False
        if not _proof_ok(proof):
            return False
        if not (isinstance(subtree_root, (bytes, bytearray)) and isinstance(root, (bytes, bytearray))):
            return False
        if start == end:
            return len(proof) == 0 and hmac.compare_digest(bytes(subtree_root), EMPTY_ROOT)
        if not is_valid_subtree(start, end):
            return False
        node = bytes(subtree_root)
        fn, sn, tn = start, end - 1, size - 1
        if sn == tn:
            while fn != sn:
                fn >>= 1
                sn >>= 1
                tn >>= 1
        else:
            while fn != sn and sn & 1:
                fn >>= 1
                sn >>= 1
                tn >>= 1
        if fn == sn:
            fr = sr = node
            rest = proof
        else:
            if len(proof) == 0:
                return False
            fr = sr = bytes(proof[0])
            rest = proof[1:]
        for c in rest:
            if tn == 0:
                return False
            if sn & 1 or sn == tn:
                if fn < sn:
                    fr = _sha256(_NODE + c + fr).digest()
                sr = _sha256(_NODE + c + sr).digest()
                while not sn & 1:
                    fn >>= 1
                    sn >>= 1
                    tn >>= 1
            else:
                sr = _sha256(_NODE + sr + c).digest()
            fn >>= 1
            sn >>= 1
            tn >>= 1
        return tn == 0 and hmac.compare_digest(fr, node) and hmac.compare_digest(sr, bytes(root))
    except Exception:  # pragma: no cover
        return False


# ---------------------------------------------------------------------------
# In-memory node store
# ---------------------------------------------------------------------------


class MemoryLeafStore:
    """In-memory leaf store answering ``get_node`` from a level cache.

    Every complete node is computed once, when the append that completes it
    happens (amortised one node hash per append, as in :class:`CompactTree`),
    and kept if its level is a multiple of ``stride``.  Each kept level is one
    ``bytearray`` of concatenated 32-byte hashes, so memory is about
    ``32 * n * (1 + 2**-stride + 2**-2*stride + ...)`` bytes: 64 MB for a
    million leaves with ``stride=1``, about 34 MB with ``stride=4``.

    ``get_node(start, level)`` is a slice for a kept level and otherwise
    ``2**(level % stride) - 1`` compressions from the nearest kept level
    below, i.e. the trade-off of storing interior "tiles" of height
    ``stride`` in a database.
    """

    __slots__ = ("_stride", "_levels", "_frontier", "_size")

    def __init__(self, stride: int = 1) -> None:
        if type(stride) is not int or stride < 1:
            raise ValueError("stride must be a positive int")
        self._stride = stride
        self._levels: list[bytearray] = [bytearray()]
        self._frontier: list[bytes] = []
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    @property
    def stride(self) -> int:
        return self._stride

    def __len__(self) -> int:
        return self._size

    def append(self, leaf_hash: bytes) -> int:
        if type(leaf_hash) is not bytes or len(leaf_hash) != HASH_SIZE:
            leaf_hash = _check_hash(leaf_hash, "leaf hash")
        index = self._size
        levels = self._levels
        stride = self._stride
        levels[0] += leaf_hash
        f = self._frontier
        h = leaf_hash
        s = index
        level = 0
        while s & 1:
            h = _sha256(_NODE + f.pop() + h).digest()
            s >>= 1
            level += 1
            if level % stride == 0:
                k = level // stride
                if k == len(levels):
                    levels.append(bytearray())
                levels[k] += h
        f.append(h)
        self._size = index + 1
        return index

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for h in leaf_hashes:
            self.append(h)

    def leaf_hash(self, index: int) -> bytes:
        if type(index) is not int or not 0 <= index < self._size:
            raise IndexError(f"leaf index {index!r} out of range (size {self._size})")
        return bytes(self._levels[0][index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def get_node(self, start: int, level: int) -> bytes:
        """Hash of the complete subtree [start, start + 2**level)."""
        if type(start) is not int or type(level) is not int or start < 0 or level < 0:
            raise ValueError(f"bad node coordinates ({start!r}, {level!r})")
        width = 1 << level
        if start & (width - 1) or start + width > self._size:
            raise ValueError(f"[{start}, {start + width}) is not a complete node of a tree of size {self._size}")
        base = level - level % self._stride
        arr = self._levels[base // self._stride]
        i = start >> base
        if base == level:
            return bytes(arr[i * HASH_SIZE : (i + 1) * HASH_SIZE])
        count = 1 << (level - base)
        hs = [bytes(arr[j * HASH_SIZE : (j + 1) * HASH_SIZE]) for j in range(i, i + count)]
        while len(hs) > 1:
            hs = [_sha256(_NODE + hs[j] + hs[j + 1]).digest() for j in range(0, len(hs), 2)]
        return hs[0]

    __call__ = get_node

    def _size_arg(self, size: int | None) -> int:
        if size is None:
            return self._size
        if type(size) is not int or not 0 <= size <= self._size:
            raise ValueError(f"size {size!r} out of range (store has {self._size} leaves)")
        return size

    def root(self, size: int | None = None) -> bytes:
        size = self._size_arg(size)
        if size == self._size:
            return _fold_right(self._frontier) if self._frontier else EMPTY_ROOT
        return root_at(size, self.get_node)

    def compact_tree(self) -> CompactTree:
        t = CompactTree()
        t._size = self._size
        t._frontier = list(self._frontier)
        return t

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(index, self._size_arg(size), self.get_node)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        return consistency_proof(old_size, self._size_arg(new_size), self.get_node)
