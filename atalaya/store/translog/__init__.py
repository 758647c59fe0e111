"""Transparency log: RFC 9162 Merkle tree, durable storage, C2SP checkpoints, proofs, witnesses.

Public API (everything else is internal)::

    TransparencyLog        open/append/append_many/get/checkpoint/prove/consistency
    NoteSigner, NoteVerifier, Checkpoint, open_checkpoint
    ProofBundle, ConsistencyProof, verify_bundle, verify_consistency_notes
    Witness
    verify_inclusion, verify_consistency   RFC 9162 §2.1.3.2 / §2.1.4.2
"""

from __future__ import annotations

from atalaya.store.translog.bundle import (
    ConsistencyProof,
    ProofBundle,
    VerifiedEntry,
    verify_bundle,
    verify_consistency_notes,
)
from atalaya.store.translog.checkpoint import Checkpoint, NoteSigner, NoteVerifier, open_checkpoint
from atalaya.store.translog.log import TransparencyLog
from atalaya.store.translog.merkle import leaf_hash, verify_consistency, verify_inclusion
from atalaya.store.translog.witness import Witness

__all__ = [
    "Checkpoint",
    "ConsistencyProof",
    "NoteSigner",
    "NoteVerifier",
    "ProofBundle",
    "TransparencyLog",
    "VerifiedEntry",
    "Witness",
    "leaf_hash",
    "open_checkpoint",
    "verify_bundle",
    "verify_consistency",
    "verify_consistency_notes",
    "verify_inclusion",
]
