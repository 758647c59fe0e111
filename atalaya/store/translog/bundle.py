"""Offline proof files: inclusion bundles and consistency proofs (documented JSON forms).

An inclusion *bundle* holds everything a partner needs to check one entry with
nothing but the log's verifier key::

    {
      "format": "atalaya.tlog-bundle/v1",
      "index": 5,
      "entry": "{\\"kind\\":\\"overflight\\",...}",     canonical JSON text = the exact leaf bytes
      "checkpoint": "atalaya.usa/log\\n8\\n...\\n\\n— atalaya.usa/log ...\\n",
      "inclusion_proof": ["base64 hash", ...]          RFC 9162 audit path, leaf side first
    }

A consistency proof file::

    {"format": "atalaya.tlog-consistency/v1", "old_size": 4, "new_size": 8, "proof": ["base64 hash", ...]}

>>> ConsistencyProof.from_json(ConsistencyProof(old_size=0, new_size=3, proof=()).to_json()).new_size
3
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from atalaya.core.errors import LogIntegrityError
from atalaya.store.translog import merkle
from atalaya.store.translog.checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from atalaya.store.translog.entries import decode_entry

BUNDLE_FORMAT = "atalaya.tlog-bundle/v1"
CONSISTENCY_FORMAT = "atalaya.tlog-consistency/v1"


def _hashes_from(items: Any, what: str) -> tuple[bytes, ...]:
    if not isinstance(items, list):
        raise LogIntegrityError(f"{what} must be a list of base64 hashes")
    out: list[bytes] = []
    for i, s in enumerate(items):
        try:
            h = base64.b64decode(str(s), validate=True)
        except (binascii.Error, ValueError) as e:
            raise LogIntegrityError(f"{what}[{i}] is not base64") from e
        out.append(h)
    return tuple(out)


def _load(text: str, fmt: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise LogIntegrityError(f"not a JSON {fmt} file: {e}") from e
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        got = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise LogIntegrityError(f"expected a {fmt} document, got format {got!r}")
    return obj


def _int(obj: dict[str, Any], key: str) -> int:
    v = obj.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise LogIntegrityError(f"field {key!r} must be a non-negative integer, got {v!r}")
    return v


@dataclass(frozen=True, kw_only=True)
class ProofBundle:
    """Everything needed to check one entry offline."""

    index: int
    """Position of the entry in the log."""
    entry: str
    """Canonical JSON text of the entry: its UTF-8 bytes are the leaf."""
    checkpoint: str
    """Signed checkpoint (C2SP signed note text) whose tree contains the entry."""
    inclusion_proof: tuple[bytes, ...]
    """RFC 9162 audit path from the leaf to the checkpoint's root."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "format": BUNDLE_FORMAT,
            "index": self.index,
            "entry": self.entry,
            "checkpoint": self.checkpoint,
            "inclusion_proof": [base64.b64encode(h).decode("ascii") for h in self.inclusion_proof],
        }

    def to_json(self) -> str:
        """JSON text."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ProofBundle:
        """Parse the JSON form."""
        obj = _load(text, BUNDLE_FORMAT)
        entry, cp = obj.get("entry"), obj.get("checkpoint")
        if not isinstance(entry, str) or not isinstance(cp, str):
            raise LogIntegrityError("bundle 'entry' and 'checkpoint' must be strings")
        return cls(
            index=_int(obj, "index"),
            entry=entry,
            checkpoint=cp,
            inclusion_proof=_hashes_from(obj.get("inclusion_proof"), "inclusion_proof"),
        )


@dataclass(frozen=True, kw_only=True)
class VerifiedEntry:
    """What a verified bundle establishes."""

    index: int
    """Position of the entry."""
    entry: dict[str, Any]
    """The entry object."""
    checkpoint: Checkpoint
    """The verified checkpoint that contains it."""


def verify_bundle(
    bundle: ProofBundle, log_key: NoteVerifier, *, witnesses: tuple[NoteVerifier, ...] = ()
) -> VerifiedEntry:
    """Check a bundle with only the log's verifier key (and optional witness cosignature keys).

    Raises :class:`LogIntegrityError` naming what failed: the signature, the
    checkpoint format, or the root the inclusion proof leads to.
    """
    cp = open_checkpoint(bundle.checkpoint, log_key, witnesses=witnesses)
    leaf = bundle.entry.encode("utf-8")
    try:
        merkle.verify_inclusion(bundle.index, cp.size, merkle.leaf_hash(leaf), bundle.inclusion_proof, cp.root)
    except LogIntegrityError as e:
        raise LogIntegrityError(
            f"entry {bundle.index} is not in log {cp.origin} at size {cp.size}: {e.message}",
            hint="the entry, its index or the proof was altered; ask the log for a fresh bundle",
        ) from e
    return VerifiedEntry(index=bundle.index, entry=decode_entry(leaf), checkpoint=cp)


@dataclass(frozen=True, kw_only=True)
class ConsistencyProof:
    """A proof that the tree of ``new_size`` entries extends the tree of ``old_size``."""

    old_size: int
    """Size of the earlier tree."""
    new_size: int
    """Size of the later tree."""
    proof: tuple[bytes, ...]
    """RFC 9162 consistency proof hashes."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "format": CONSISTENCY_FORMAT,
            "old_size": self.old_size,
            "new_size": self.new_size,
            "proof": [base64.b64encode(h).decode("ascii") for h in self.proof],
        }

    def to_json(self) -> str:
        """JSON text."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ConsistencyProof:
        """Parse the JSON form."""
        obj = _load(text, CONSISTENCY_FORMAT)
        return cls(
            old_size=_int(obj, "old_size"),
            new_size=_int(obj, "new_size"),
            proof=_hashes_from(obj.get("proof"), "proof"),
        )

    def verify(self, old: Checkpoint, new: Checkpoint) -> None:
        """Check this proof links two (already signature-checked) checkpoints of the same log."""
        if old.origin != new.origin:
            raise LogIntegrityError(f"checkpoints are of different logs: {old.origin!r} and {new.origin!r}")
        if (old.size, new.size) != (self.old_size, self.new_size):
            raise LogIntegrityError(
                f"proof is from size {self.old_size} to {self.new_size}, "
                f"the checkpoints have sizes {old.size} and {new.size}",
                hint=f"ask the log for `atalaya log consistency --old {old.size} --new {new.size}`",
            )
        merkle.verify_consistency(old.size, new.size, self.proof, old.root, new.root)


def verify_consistency_notes(
    old_text: str, new_text: str, proof: ConsistencyProof, log_key: NoteVerifier
) -> tuple[Checkpoint, Checkpoint]:
    """Verify both signed checkpoints and the consistency proof between them."""
    old = open_checkpoint(old_text, log_key)
    new = open_checkpoint(new_text, log_key)
    proof.verify(old, new)
    return old, new
