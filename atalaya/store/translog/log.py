"""The transparency log: JSON entries on :class:`LogStorage`, signed checkpoints, proofs.

>>> import tempfile
>>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
>>> signer = NoteSigner(name="example.org/log", key=Ed25519PrivateKey.generate())
>>> with TransparencyLog.open(tempfile.mkdtemp(), origin="example.org/log") as log:
...     log.append({"kind": "agreement", "version": 1})
...     log.append_many([{"kind": "overflight", "sortie": "S1"}, {"kind": "retraction", "of": 0}])
...     note = log.checkpoint(signer)
...     bundle = log.prove(1)
0
range(1, 3)
>>> verify_bundle(bundle, signer.verifier()).entry
{'kind': 'overflight', 'sortie': 'S1'}
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from atalaya.core.errors import LogDamagedError, LogIntegrityError, StoreError
from atalaya.store.translog.bundle import ConsistencyProof, ProofBundle, verify_bundle
from atalaya.store.translog.checkpoint import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    SignedNote,
    sign_note,
)
from atalaya.store.translog.entries import canonical_json, decode_entry
from atalaya.store.translog.storage import CHECKPOINT_NAME, REPAIR_HINT, LogStorage

__all__ = ["NoteSigner", "TransparencyLog", "verify_bundle"]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class TransparencyLog:
    """An append-only log of JSON entries with RFC 9162 proofs and C2SP checkpoints."""

    def __init__(self, storage: LogStorage, origin: str) -> None:
        self.storage = storage
        self.origin = origin

    @classmethod
    def open(
        cls,
        directory: Path | str,
        *,
        origin: str,
        readonly: bool = False,
        verifier: NoteVerifier | None = None,
    ) -> TransparencyLog:
        """Open the log in ``directory`` (writer unless ``readonly``), recovering a torn append.

        Raises :class:`LogIntegrityError` when the stored checkpoint does not match
        the entries: the log is shorter than what it signed (truncated) or its
        root at the signed size differs (entries edited, deleted or reordered).
        A writer raises :class:`LogDamagedError` (and changes nothing) when the
        files are damaged anywhere a torn append cannot explain; ``verifier``
        also checks the stored checkpoint's signature. What a writer's recovery
        cut is listed in :attr:`recovered`.
        """
        if not origin or "\n" in origin or origin.startswith("cosignature/"):
            raise StoreError(f"invalid log origin {origin!r}", hint="use a name like atalaya.usa/log")
        storage = LogStorage.open(directory, readonly=readonly, verifier=verifier)
        log = cls(storage, origin)
        try:
            log._check_against_checkpoint()
        except BaseException:
            storage.close()
            raise
        return log

    def close(self) -> None:
        """Release the files (and the writer lock)."""
        self.storage.close()

    def __enter__(self) -> TransparencyLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def directory(self) -> Path:
        """The log directory."""
        return self.storage.directory

    @property
    def recovered(self) -> list[str]:
        """What the writer's open cut (a torn append after the last checkpoint) and where it kept the bytes."""
        return self.storage.recovered

    @property
    def size(self) -> int:
        """Number of entries."""
        return self.storage.size

    def root(self, size: int | None = None) -> bytes:
        """Root hash at ``size`` (default: current)."""
        return self.storage.root(size)

    # ---------------------------------------------------------------- entries
    def append(self, entry: Mapping[str, Any]) -> int:
        """Append one entry durably; returns its index."""
        return self.storage.append_leaves([canonical_json(entry)])[0]

    def append_many(self, entries: Iterable[Mapping[str, Any]], *, batch: int = 4096) -> range:
        """Append entries in group commits of ``batch``; returns their indices."""
        first = self.size
        buf: list[bytes] = []
        for e in entries:
            buf.append(canonical_json(e))
            if len(buf) >= batch:
                self.storage.append_leaves(buf)
                buf = []
        if buf:
            self.storage.append_leaves(buf)
        return range(first, self.size)

    def get(self, index: int) -> dict[str, Any]:
        """Entry ``index`` as an object."""
        return decode_entry(self.storage.leaf(index))

    def get_bytes(self, index: int) -> bytes:
        """Entry ``index`` as its canonical leaf bytes."""
        return self.storage.leaf(index)

    # ---------------------------------------------------------------- checkpoints
    @property
    def checkpoint_path(self) -> Path:
        """Where the newest signed checkpoint is kept."""
        return self.directory / CHECKPOINT_NAME

    def latest_checkpoint(self) -> str | None:
        """Text of the newest signed checkpoint, if any was made."""
        p = self.checkpoint_path
        return p.read_text(encoding="utf-8") if p.exists() else None

    def checkpoint(self, signer: NoteSigner, *, extensions: tuple[str, ...] = ()) -> str:
        """Sign a checkpoint of the current tree, store it as the newest, return its text."""
        # Everything a checkpoint covers has durable hashes: recovery never takes it for a torn append.
        self.storage.sync_levels()
        cp = Checkpoint(origin=self.origin, size=self.size, root=self.root(), extensions=extensions)
        text = sign_note(cp.body(), signer).text()
        _atomic_write(self.checkpoint_path, text)
        return text

    def _check_against_checkpoint(self) -> None:
        text = self.latest_checkpoint()
        if text is None:
            return
        cp = Checkpoint.parse(SignedNote.parse(text).body)
        if cp.origin != self.origin:
            raise LogIntegrityError(
                f"{self.checkpoint_path} is for log {cp.origin!r}, this log is {self.origin!r}",
                hint="the log directory belongs to another origin; check [log] origin in atalaya.toml",
            )
        if cp.size > self.size:
            raise LogDamagedError(
                f"log {self.origin} holds {self.size} entries but its last signed checkpoint covers {cp.size}",
                hint="entries were deleted or the entries file was truncated; " + REPAIR_HINT,
            )
        got = self.root(cp.size)
        if got != cp.root:
            raise LogDamagedError(
                f"{self.directory}: root mismatch at size {cp.size}: checkpoint says {cp.root.hex()}, "
                f"entries give {got.hex()}",
                hint="entries or hashes were edited, deleted or reordered after they were signed; " + REPAIR_HINT,
            )

    # ---------------------------------------------------------------- proofs
    def prove(self, index: int, checkpoint: str | None = None) -> ProofBundle:
        """An offline proof bundle for entry ``index`` under ``checkpoint`` (default: the newest signed one)."""
        text = checkpoint if checkpoint is not None else self.latest_checkpoint()
        if text is None:
            raise LogIntegrityError(
                f"log {self.origin} has no signed checkpoint yet",
                hint="run `atalaya log checkpoint` first",
            )
        cp = Checkpoint.parse(SignedNote.parse(text).body)
        if not 0 <= index < cp.size:
            raise LogIntegrityError(
                f"entry {index} is not covered by the checkpoint (size {cp.size}; log size {self.size})",
                hint="sign a newer checkpoint (`atalaya log checkpoint`) and prove again",
            )
        return ProofBundle(
            index=index,
            entry=self.get_bytes(index).decode("utf-8"),
            checkpoint=text,
            inclusion_proof=tuple(self.storage.inclusion_proof(index, cp.size)),
        )

    def consistency(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """Consistency proof from ``old_size`` to ``new_size`` (default: current size)."""
        new = self.size if new_size is None else new_size
        return ConsistencyProof(
            old_size=old_size, new_size=new, proof=tuple(self.storage.consistency_proof(old_size, new))
        )
