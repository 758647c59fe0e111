"""Repairing a damaged log (``atalaya log repair``): keep the damaged files, rebuild from intact data, verify.

A writer refuses to open a log whose files are damaged (see
:mod:`atalaya.store.translog.storage`). :func:`repair_log`, holding the
single-writer lock:

1. checks every file (:func:`~atalaya.store.translog.storage.diagnose`); a
   healthy log is left alone;
2. copies every log file as it is into ``damaged-<UTC time>/`` in the log
   directory (nothing is deleted, ever);
3. finds the signed checkpoint to check against: the stored one; else the
   stored one with the single flipped bit under which its signature verifies
   again; else the copy given with ``checkpoint_text`` (from ``log checkpoint
   --out``, a backup, a partner or the witness);
4. reads the records of ``entries.dat`` from its first byte (this rebuilds a
   damaged index) and requires the entries the checkpoint covers to give its
   root exactly; if they do not, ``entries.dat`` itself is damaged where it was
   signed and nothing can be rebuilt from this node's files: the repair stops
   with the entries that differ and the live files unchanged;
5. keeps the unsigned entries after the checkpoint while their stored leaf hash
   (or the stored hash of their pair) vouches for them; the first one that fails
   and all after it are left out of the live log (an append-only log cannot skip
   one) and stay in the ``damaged-…`` copy, named in the report;
6. writes the index, every hash level and the watermark afresh, then opens the
   log as a writer (which checks the checkpoint's root) and re-hashes everything.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from atalaya.core.errors import AtalayaError, LogDamagedError, LogIntegrityError
from atalaya.store.translog import merkle
from atalaya.store.translog.checkpoint import Checkpoint, NoteSigner, NoteVerifier, open_checkpoint
from atalaya.store.translog.log import TransparencyLog, _atomic_write
from atalaya.store.translog.storage import (
    CHECKPOINT_NAME,
    DATA_NAME,
    INDEX_NAME,
    SYNCED_NAME,
    _fsync_dir,
    _stamp,
    diagnose,
    level_name,
    writer_lock,
)

DAMAGED_PREFIX = "damaged-"
"""Folders ``damaged-<UTC time>/`` keep the files as they were before a repair."""

_H = merkle.HASH_SIZE


@dataclass(frozen=True, kw_only=True)
class RepairReport:
    """What :func:`repair_log` found and did."""

    findings: tuple[str, ...]
    """The damage found before the repair (empty: the log was healthy and was left alone)."""
    actions: tuple[str, ...]
    """What was done, in order."""
    kept: Path | None
    """Folder holding every log file as it was before the repair."""
    size: int
    """Entries in the repaired log."""
    signed_size: int
    """Entries the signed checkpoint covers (all verified against its root)."""
    left_out: tuple[int, int] | None
    """Unsigned entries ``[first, end)`` that failed their hashes and were left out (kept in :attr:`kept`)."""

    @property
    def repaired(self) -> bool:
        """Whether anything was damaged (and is now repaired)."""
        return bool(self.findings)


def _undo_one_bit_flip(raw: bytes, verifier: NoteVerifier) -> tuple[str, int, int] | None:
    """The checkpoint text whose signature verifies after flipping one bit back, and where that bit was."""
    buf = bytearray(raw)
    for at in range(len(buf)):
        for bit in range(8):
            buf[at] ^= 1 << bit
            try:
                text = bytes(buf).decode("utf-8")
                open_checkpoint(text, verifier)
            except (UnicodeDecodeError, AtalayaError):
                pass
            else:
                return text, at, bit
            finally:
                buf[at] ^= 1 << bit
    return None


def _parse_records(path: Path) -> tuple[list[int], list[bytes], int, str | None]:
    """Offsets and leaf hashes of the whole records of ``entries.dat`` from byte 0, where they end, why it stopped."""
    offsets: list[int] = []
    hashes: list[bytes] = []
    size = path.stat().st_size
    pos = 0
    stop: str | None = None
    with open(path, "rb") as fh:
        while pos < size:
            head = fh.read(4)
            if len(head) < 4:
                stop = f"{size - pos} stray byte(s) at byte {pos}"
                break
            n = int.from_bytes(head, "big")
            if pos + 4 + n > size:
                stop = f"the record at byte {pos} claims {n} bytes, past the end of {DATA_NAME} ({size} bytes)"
                break
            offsets.append(pos)
            hashes.append(merkle.leaf_hash(fh.read(n)))
            pos += 4 + n
    return offsets, hashes, pos, stop


def _stored(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


def _vouched(i: int, hashes: list[bytes], level0: bytes, level1: bytes) -> bool:
    """Whether a stored hash vouches for leaf ``i``: its own leaf hash, or its pair's node hash."""
    if level0[i * _H : (i + 1) * _H] == hashes[i]:
        return True
    j = i >> 1
    if 2 * j + 1 >= len(hashes) or len(level1) < (j + 1) * _H:
        return False
    return level1[j * _H : (j + 1) * _H] == merkle.node_hash(hashes[2 * j], hashes[2 * j + 1])


def _keep_copies(directory: Path) -> Path:
    folder = directory / f"{DAMAGED_PREFIX}{_stamp()}"
    folder.mkdir()
    names = [DATA_NAME, INDEX_NAME, SYNCED_NAME, CHECKPOINT_NAME]
    names += sorted(p.name for p in directory.glob("level-*.hash"))
    for name in names:
        src = directory / name
        if src.exists():
            shutil.copy2(src, folder / name)
            fd = os.open(folder / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(folder)
    _fsync_dir(directory)
    return folder


def _write_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def repair_log(
    directory: Path | str, *, origin: str, signer: NoteSigner, checkpoint_text: str | None = None
) -> RepairReport:
    """Repair the log in ``directory`` (see the module docs); raises :class:`LogDamagedError` when it cannot."""
    d = Path(directory)
    verifier = signer.verifier()
    actions: list[str] = []
    with writer_lock(d):
        diag = diagnose(d, verifier=verifier, full=True)
        findings = tuple([str(x) for x in diag.damage] + ([diag.torn] if diag.torn else []))
        if not findings:
            return RepairReport(
                findings=(), actions=("nothing to repair",), kept=None, size=diag.good,
                signed_size=diag.covered, left_out=None,
            )  # fmt: skip
        kept = _keep_copies(d)
        actions.append(f"kept every log file as it was in {kept}")
        # The signed checkpoint to check against.
        cp: Checkpoint | None = diag.checkpoint
        cp_text: str | None = None
        if cp is None and (d / CHECKPOINT_NAME).exists():
            undone = _undo_one_bit_flip((d / CHECKPOINT_NAME).read_bytes(), verifier)
            if undone is not None:
                cp_text, at, bit = undone
                actions.append(f"restored the checkpoint: bit {bit} of byte {at} was flipped; its signature verifies")
            elif checkpoint_text is None:
                raise LogDamagedError(
                    f"the stored checkpoint {d / CHECKPOINT_NAME} is damaged and no single-bit correction makes its "
                    f"signature verify; the log files are unchanged (a copy is in {kept})",
                    hint="give a copy of the last signed checkpoint with `atalaya log repair --checkpoint FILE` "
                    "(from `atalaya log checkpoint --out`, a backup, a partner or the witness)",
                    findings=findings,
                )
        if cp_text is None and checkpoint_text is not None:
            given = open_checkpoint(checkpoint_text, verifier)
            if given.origin != origin:
                raise LogIntegrityError(
                    f"the given checkpoint is for log {given.origin!r}, this log is {origin!r}",
                    hint="give a checkpoint of this log",
                )
            if cp is None or given.size > cp.size:
                cp_text = checkpoint_text
                actions.append(f"checked the entries against the given checkpoint (size {given.size})")
        if cp_text is not None:
            cp = open_checkpoint(cp_text, verifier)
        signed = 0 if cp is None else cp.size
        # Rebuild from the records themselves.
        offsets, hashes, end, stop = _parse_records(d / DATA_NAME)
        if len(hashes) < signed:
            raise LogDamagedError(
                f"{d / DATA_NAME} holds only {len(hashes)} whole records ({stop}) but the signed checkpoint covers "
                f"{signed}; the log files are unchanged (a copy is in {kept})",
                hint=f"restore {DATA_NAME} from a backup or a partner's mirror: its first {signed} records must "
                "give the checkpoint's root",
                findings=findings,
            )
        level0 = _stored(d / level_name(0))
        level1 = _stored(d / level_name(1))
        if cp is not None and merkle.MemoryTree(hashes[:signed]).root() != cp.root:
            bad = [i for i in range(signed) if level0[i * _H : (i + 1) * _H] != hashes[i]][:10]
            which = (
                f"entries {', '.join(map(str, bad))} differ from their stored leaf hashes"
                if bad
                else ("the records do not give the signed root")
            )
            raise LogDamagedError(
                f"{d / DATA_NAME} is damaged where the checkpoint signed it ({which}); it cannot be rebuilt "
                f"from this node's files; the log files are unchanged (a copy is in {kept})",
                hint=f"restore {DATA_NAME} from a backup or a partner's mirror: its first {signed} records must "
                f"give root {cp.root.hex()}",
                findings=findings,
            )
        if signed:
            actions.append(f"entries 0…{signed - 1} give the signed checkpoint's root")
        keep = signed
        while keep < len(hashes) and _vouched(keep, hashes, level0, level1):
            keep += 1
        left_out = (keep, len(hashes)) if keep < len(hashes) else None
        if left_out is not None:
            actions.append(
                f"left out unsigned entries {keep}…{len(hashes) - 1}: entry {keep} fails its stored hash "
                f"(they stay in {kept / DATA_NAME})"
            )
        data_end = offsets[keep] if keep < len(offsets) else end
        if (d / DATA_NAME).stat().st_size != data_end:
            os.truncate(d / DATA_NAME, data_end)
            why = f" ({stop})" if stop else ""
            actions.append(f"cut {DATA_NAME} after entry {keep - 1} at byte {data_end}{why}")
        _write_file(d / INDEX_NAME, b"".join(o.to_bytes(8, "big") for o in offsets[:keep]))
        tree = merkle.MemoryTree(hashes[:keep])
        top = max(keep.bit_length(), 1)
        for level in range(top):
            _write_file(d / level_name(level), b"".join(tree.levels[level][: keep >> level]) if keep else b"")
        for p in d.glob("level-*.hash"):
            if int(p.name[6:8]) >= top:
                p.unlink()
        _write_file(d / SYNCED_NAME, keep.to_bytes(8, "big"))
        actions.append(f"rebuilt {INDEX_NAME} and every hash level from the {keep} records")
        if cp_text is not None:
            _atomic_write(d / CHECKPOINT_NAME, cp_text)
            actions.append("wrote the checkpoint back")
        _fsync_dir(d)
    # Check the result as every writer would, then re-hash everything.
    with TransparencyLog.open(d, origin=origin, verifier=verifier) as log:
        log.storage.verify()
        size = log.size
    actions.append(f"verified: {size} entries, every hash recomputes, the signed checkpoint (size {signed}) matches")
    return RepairReport(
        findings=findings, actions=tuple(actions), kept=kept, size=size, signed_size=signed, left_out=left_out
    )
