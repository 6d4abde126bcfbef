"""Clearing-house ledger core: RFC 6962/9162 Merkle tree, C2SP checkpoints, canonical entries.

Pure Python (hashlib, ``cryptography`` Ed25519, ``rfc8785``): no I/O, no clock,
no logging.  Persistence, timestamps and transport belong to the shell.
"""

from .checkpoint import (
    Checkpoint,
    CheckpointError,
    MalformedNoteError,
    Note,
    NoteSignature,
    UnverifiedNoteError,
    VerifierKey,
    checkpoint_body,
    key_id,
    open_note,
    parse_checkpoint,
    parse_checkpoint_body,
    parse_note,
    parse_signer_key,
    parse_verifier_key,
    sign_checkpoint,
    sign_note,
    signer_key_string,
    verifier_key_string,
    verify_checkpoint,
)
from .entry import canonical_entry, decode_entry, entry_leaf_hash
from .merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MAX_TREE_SIZE,
    CompactTree,
    MemoryLeafStore,
    NodeGetter,
    consistency_proof,
    consistency_proof_nodes,
    inclusion_proof,
    inclusion_proof_nodes,
    inclusion_proof_ranges,
    is_valid_subtree,
    leaf_hash,
    node_hash,
    range_hash,
    root_at,
    root_from_leaves,
    subtree_consistency_proof,
    subtree_consistency_proof_nodes,
    subtree_inclusion_proof,
    subtree_root,
    verify_consistency,
    verify_inclusion,
    verify_subtree_consistency,
    verify_subtree_inclusion,
)

__all__ = [n for n in dir() if not n.startswith("_") and n not in {"checkpoint", "entry", "merkle"}]
