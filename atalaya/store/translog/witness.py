"""Witness mode: a partner node checks each new checkpoint extends the last one it saw, then cosigns.

The witness keeps, per log origin, the newest checkpoint it cosigned (a JSON
file under its own state directory). For a new checkpoint it requires

1. a valid signature by the log's key (the key is pinned on first sight);
2. a size no smaller than the stored one, and a consistency proof from the
   stored tree to the new one (at equal sizes: the same root, or it is a fork);

then stores the new state and adds a c2sp.org/tlog-cosignature/v1 line signed
with its own key. A log that shows one history to the witness and another to
anyone else is caught: the other checkpoint can never get this cosignature.

>>> import tempfile
>>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
>>> from atalaya.store.translog.checkpoint import Checkpoint, NoteSigner, sign_note
>>> log_key = NoteSigner(name="a.example/log", key=Ed25519PrivateKey.generate())
>>> w = Witness(state_dir=tempfile.mkdtemp(), signer=NoteSigner(name="b.example/w", key=Ed25519PrivateKey.generate()))
>>> note = sign_note(Checkpoint(origin="a.example/log", size=0, root=EMPTY_ROOT).body(), log_key).text()
>>> cosigned = w.cosign(note, (), log_key.verifier())
>>> w.state("a.example/log").size
0
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from atalaya.core.errors import LogIntegrityError
from atalaya.store.translog import merkle
from atalaya.store.translog.checkpoint import (
    SIG_COSIGNATURE_V1,
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    SignedNote,
    cosign,
    verify_note,
)
from atalaya.store.translog.merkle import EMPTY_ROOT

__all__ = ["EMPTY_ROOT", "Witness", "WitnessState"]


@dataclass(frozen=True, kw_only=True)
class WitnessState:
    """The newest checkpoint a witness has cosigned for one log."""

    origin: str
    """The log's origin."""
    size: int
    """Tree size of that checkpoint."""
    root: bytes
    """Its root hash."""
    log_key: str
    """The log's verifier key (vkey text), pinned on first sight."""
    checkpoint: str
    """The signed checkpoint text as cosigned."""


class Witness:
    """Cosigns checkpoints of other logs after checking they are consistent with what it saw before."""

    def __init__(self, *, state_dir: Path | str, signer: NoteSigner) -> None:
        self.state_dir = Path(state_dir)
        self.signer = signer

    def verifier(self) -> NoteVerifier:
        """The cosignature verifier key (type 0x04) that clients use to check this witness."""
        return self.signer.verifier(SIG_COSIGNATURE_V1)

    def _path(self, origin: str) -> Path:
        return self.state_dir / (hashlib.sha256(origin.encode("utf-8")).hexdigest()[:24] + ".json")

    def state(self, origin: str) -> WitnessState | None:
        """What this witness last cosigned for ``origin`` (None if never)."""
        p = self._path(origin)
        if not p.exists():
            return None
        obj = json.loads(p.read_text(encoding="utf-8"))
        return WitnessState(
            origin=obj["origin"],
            size=int(obj["size"]),
            root=bytes.fromhex(obj["root"]),
            log_key=obj["log_key"],
            checkpoint=obj["checkpoint"],
        )

    def _save(self, st: WitnessState) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        p = self._path(st.origin)
        tmp = p.with_name(p.name + ".tmp")
        data = {
            "origin": st.origin,
            "size": st.size,
            "root": st.root.hex(),
            "log_key": st.log_key,
            "checkpoint": st.checkpoint,
        }
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)

    def cosign(
        self, checkpoint: str, proof: Sequence[bytes], log_key: NoteVerifier, *, timestamp: int | None = None
    ) -> str:
        """Verify ``checkpoint`` against the stored state with ``proof``; store it and return it cosigned."""
        note = SignedNote.parse(checkpoint)
        verify_note(note, log_key)
        cp = Checkpoint.parse(note.body)
        if cp.origin != log_key.name:
            # Not required by C2SP, but Atalaya logs sign with their origin as key name.
            raise LogIntegrityError(
                f"checkpoint origin {cp.origin!r} does not match the log key name {log_key.name!r}",
                hint="use the verifier key exported by that log (`atalaya log export-key`)",
            )
        old = self.state(cp.origin)
        if old is not None and old.log_key != log_key.vkey():
            raise LogIntegrityError(
                f"log {cp.origin} is pinned to key {old.log_key}, the checkpoint was checked with {log_key.vkey()}",
                hint="a log key change needs the witness operator to remove the pinned state deliberately",
            )
        old_size, old_root = (0, EMPTY_ROOT) if old is None else (old.size, old.root)
        if cp.size < old_size:
            raise LogIntegrityError(
                f"rollback: log {cp.origin} checkpoint has size {cp.size}, "
                f"this witness already cosigned size {old_size}",
                hint="a log never shrinks; report this checkpoint to the log operator",
            )
        if old is not None:
            try:
                merkle.verify_consistency(old_size, cp.size, proof, old_root, cp.root)
            except LogIntegrityError as e:
                raise LogIntegrityError(
                    f"refusing to cosign {cp.origin} at size {cp.size}: not consistent with size {old_size} "
                    f"cosigned before: {e.message}",
                    hint=e.hint
                    or f"ask the log for `atalaya log consistency --old {old_size} --new {cp.size}` and retry",
                ) from e
        self._save(
            WitnessState(origin=cp.origin, size=cp.size, root=cp.root, log_key=log_key.vkey(), checkpoint=checkpoint)
        )
        return cosign(note, self.signer, timestamp=timestamp).text()
