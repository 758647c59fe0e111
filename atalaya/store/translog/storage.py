"""Durable, append-only storage of log leaves and every complete-subtree hash.

Files in the log directory::

    entries.dat     records: u32 big-endian length || leaf bytes, back to back
    entries.idx     u64 big-endian byte offset of each record in entries.dat
    level-00.hash   32-byte leaf hashes, one per entry
    level-NN.hash   32-byte hashes of the complete aligned subtrees of 2**NN leaves
    lock            held with ``fcntl.flock`` by the one writer

``level-NN.hash`` holds ``size >> NN`` hashes, so any proof needs O(log n)
``pread`` calls and nothing is recomputed from leaves.

Commit protocol of :meth:`LogStorage.append_leaves` (one batch = one group
commit): write the records and ``fsync`` ``entries.dat``; then write their
offsets and ``fsync`` ``entries.idx`` (the commit point); then write the hashes
of every level. Hashes are derived data: the level files are fsynced every
``LEVEL_SYNC_EVERY`` entries and on close, and ``levels.synced`` records the size
up to which they are durable. The log size is the number of indexed records, so
a crash at any point leaves either the old log or the new one after
:meth:`LogStorage.open` recovers. Recovery first *looks* (nothing is written):

* entries a signed checkpoint covers are never removed: if the index or the
  records break before the checkpoint's size, or the checkpoint itself does not
  parse or verify, the writer refuses to open with :class:`LogDamagedError`
  naming each file, byte offset and entry (read-only opens still work);
* past the checkpoint, only a *torn append* may be cut: index slots and record
  bytes past the last intact record whose leaf hashes never became durable (an
  append that died before its hashes were synced). What is cut is copied first
  into ``torn-<UTC time>/`` in the log directory and reported in
  :attr:`LogStorage.recovered`; committed entries (with durable hashes) that
  fail their checks are damage, not a torn tail, and refuse the open too;
* a stored hash below the durable watermark that disagrees with recomputation
  is corruption and refuses the open (the open checks the newest
  ``TAIL_CHECK`` entries and nodes; :func:`diagnose` and :meth:`LogStorage.verify`
  check everything); hashes past the watermark are derived data and rebuilt.

``atalaya log repair`` (:mod:`atalaya.store.translog.repair`) is the way out of
a refused open.

>>> import tempfile
>>> d = tempfile.mkdtemp()
>>> with LogStorage.open(d) as s:
...     s.append_leaves([b"a", b"b", b"c"])
...     s.size, s.leaf(1)
range(0, 3)
(3, b'b')
>>> with LogStorage.open(d) as s:
...     s.root().hex()[:12]
'36642e73c254'
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from atalaya.core.errors import AtalayaError, LogDamagedError, LogIntegrityError, StoreError
from atalaya.store.translog import merkle
from atalaya.store.translog.checkpoint import Checkpoint, NoteVerifier, SignedNote, verify_note

DATA_NAME = "entries.dat"
INDEX_NAME = "entries.idx"
LOCK_NAME = "lock"
SYNCED_NAME = "levels.synced"
CHECKPOINT_NAME = "checkpoint"
"""File holding the newest signed checkpoint (C2SP signed note text)."""
TORN_PREFIX = "torn-"
"""Folders ``torn-<UTC time>/`` keep the bytes of a torn append that recovery cut."""
REPAIR_HINT = (
    "the log refuses to append until an operator acts: inspect it with `atalaya log status --verify`, "
    "then run `atalaya log repair` (it copies the damaged files into translog/damaged-<UTC time>/, rebuilds "
    "what the intact files allow and checks the result against the signed checkpoint; see docs/operations.md, "
    '"Repairing a damaged transparency log")'
)
LEVEL_SYNC_EVERY = 1 << 16
"""Hash levels are fsynced (and the watermark advanced) at least every this many entries, and on close."""
TAIL_CHECK = 256
"""How many of the newest leaves (and nodes per level) :meth:`LogStorage.open` re-hashes."""
MAX_LEAF = (1 << 32) - 1
"""Largest leaf, in bytes (u32 length prefix)."""

_H = merkle.HASH_SIZE
_LEN = struct.Struct(">I")
_log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Damage:
    """One damaged place in the log's files."""

    file: str
    """File name inside the log directory (``entries.idx``, ``entries.dat``, ``level-00.hash``, ``checkpoint``)."""
    offset: int
    """Byte offset in that file where the damage was seen."""
    index: int | None
    """Entry index concerned (the first entry under a damaged node), if any."""
    what: str
    """What is wrong, in words."""
    covered: bool
    """Whether the last signed checkpoint covers that entry (always true for the checkpoint itself)."""

    def __str__(self) -> str:
        entry = "" if self.index is None else f", entry {self.index}"
        where = "covered by the signed checkpoint" if self.covered else "after the last signed checkpoint"
        return f"{self.file} byte {self.offset}{entry} ({where}): {self.what}"


@dataclass(kw_only=True)
class Diagnosis:
    """What :func:`diagnose` (or a writer's open) found, without changing anything."""

    slots: int = 0
    """Full index slots in ``entries.idx``."""
    good: int = 0
    """Entries whose index slots and records chain end to end (the intact prefix)."""
    checkpoint: Checkpoint | None = None
    """The stored checkpoint, when it parses (and verifies, when a key was given)."""
    covered: int = 0
    """Entries the signed checkpoint covers (all slots when the checkpoint is unreadable)."""
    damage: list[Damage] = field(default_factory=list)
    """Everything that fails its checks and may not be cut."""
    torn: str | None = None
    """A torn append past the checkpoint that a writer cuts (keeping it aside), in words."""
    root: bytes | None = None
    """Root of the intact prefix from the stored hashes (when they reach that far)."""

    @property
    def ok(self) -> bool:
        """Nothing damaged and nothing torn."""
        return not self.damage and self.torn is None


def damaged_error(directory: Path, damage: Sequence[Damage], header: str | None = None) -> LogDamagedError:
    """The error a writer raises on damage: every finding, and how to repair."""
    lines = "".join(f"\n  - {d}" for d in damage)
    head = header or f"the transparency log in {directory} is damaged"
    return LogDamagedError(
        f"{head}; nothing was changed:{lines}", hint=REPAIR_HINT, findings=tuple(str(d) for d in damage)
    )


def read_checkpoint(directory: Path, verifier: NoteVerifier | None) -> tuple[Checkpoint | None, list[Damage]]:
    """The stored checkpoint of ``directory`` (``None`` if there is none) and any damage to it."""
    path = directory / CHECKPOINT_NAME
    if not path.exists():
        return None, []
    raw = path.read_bytes()
    try:
        note = SignedNote.parse(raw.decode("utf-8"))
        cp = Checkpoint.parse(note.body)
        if verifier is not None:
            verify_note(note, verifier)
    except (UnicodeDecodeError, AtalayaError) as e:
        what = e.message if isinstance(e, AtalayaError) else f"not UTF-8 text ({e.reason})"
        return None, [Damage(file=CHECKPOINT_NAME, offset=0, index=None, what=what, covered=True)]
    return cp, []


def level_name(level: int) -> str:
    """File name of hash level ``level``."""
    return f"level-{level:02d}.hash"


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_exact(fd: int, n: int, offset: int) -> bytes:
    out = os.pread(fd, n, offset)
    while len(out) < n:
        more = os.pread(fd, n - len(out), offset + len(out))
        if not more:
            break
        out += more
    return out


class LogStorage:
    """The files of one log directory. Use :meth:`open`; one writer per directory."""

    def __init__(self, directory: Path, *, readonly: bool) -> None:
        self.directory = directory
        self.readonly = readonly
        self._ready = False
        """Set once a writer's recovery finished; only then does close() advance the watermark."""
        self.recovered: list[str] = []
        """What the writer's open cut (a torn append past the checkpoint) and where it kept it."""
        self._lock_fd = -1
        self._data_fd = -1
        self._idx_fd = -1
        self._level_fds: list[int] = []
        self._counts: list[int] = []
        """Number of hashes stored per level."""
        self._pending: list[bytes | None] = []
        """Per level: the last hash when that level's count is odd (the left sibling still waiting for a pair)."""
        self._size = 0
        self._data_end = 0
        self._synced = 0
        """Log size up to which the hash level files are known durable (the watermark)."""

    # ------------------------------------------------------------------ open/close
    @classmethod
    def open(cls, directory: Path | str, *, readonly: bool = False, verifier: NoteVerifier | None = None) -> LogStorage:
        """Open (creating if needed) the log in ``directory``, recovering from a torn append.

        A writer refuses (:class:`LogDamagedError`) to open damaged files (see the
        module docs); ``verifier`` also checks the stored checkpoint's signature.
        With ``readonly=True`` nothing is written or locked: the size is the
        largest prefix that every file fully covers.
        """
        d = Path(directory)
        s = cls(d, readonly=readonly)
        try:
            if readonly:
                s._open_readonly()
            else:
                s._open_writer(verifier)
        except BaseException:
            s.close()
            raise
        return s

    def _take_lock(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise StoreError(
                f"transparency log {self.directory} is open for writing by another process",
                hint="a log has exactly one writer; wait for it to finish, or open read-only",
            ) from e

    def _open_writer(self, verifier: NoteVerifier | None) -> None:
        self._take_lock()
        flags = os.O_RDWR | os.O_CREAT
        self._data_fd = os.open(self.directory / DATA_NAME, flags, 0o644)
        self._idx_fd = os.open(self.directory / INDEX_NAME, flags, 0o644)
        self._recover(verifier)

    def _open_inspect(self) -> None:
        """Open every file read-only, without locking, for :func:`diagnose`."""
        self._data_fd = os.open(self.directory / DATA_NAME, os.O_RDONLY)
        self._idx_fd = os.open(self.directory / INDEX_NAME, os.O_RDONLY)
        level = 0
        while (self.directory / level_name(level)).exists():
            self._level_fds.append(os.open(self.directory / level_name(level), os.O_RDONLY))
            self._counts.append(os.fstat(self._level_fds[-1]).st_size // _H)
            self._pending.append(None)
            level += 1
        self._synced = self._read_synced()

    def _open_readonly(self) -> None:
        if not (self.directory / DATA_NAME).exists():
            raise StoreError(
                f"no transparency log in {self.directory}",
                hint="append an entry first (`atalaya log append FILE`)",
            )
        self._data_fd = os.open(self.directory / DATA_NAME, os.O_RDONLY)
        self._idx_fd = os.open(self.directory / INDEX_NAME, os.O_RDONLY)
        n = os.fstat(self._idx_fd).st_size // 8
        data_size = os.fstat(self._data_fd).st_size
        while n and self._record_end(n - 1) > data_size:
            n -= 1
        level = 0
        while (level == 0 or (n >> level) > 0) and level < 64:
            path = self.directory / level_name(level)
            fd = os.open(path, os.O_RDONLY) if path.exists() else -1
            self._level_fds.append(fd)
            count = os.fstat(fd).st_size // _H if fd >= 0 else 0
            self._counts.append(count)
            n = min(n, ((count + 1) << level) - 1)
            level += 1
        self._size = n
        self._data_end = self._record_end(n - 1) if n else 0

    def close(self) -> None:
        """Release files and the writer lock (fsyncing the hash levels first)."""
        if self._ready and self._lock_fd >= 0 and self._idx_fd >= 0 and self._synced != self._size:
            self.sync_levels()
        for fd in (self._data_fd, self._idx_fd, *self._level_fds):
            if fd >= 0:
                os.close(fd)
        self._data_fd = self._idx_fd = -1
        self._level_fds = []
        if self._lock_fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> LogStorage:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ recovery
    def _offset(self, index: int) -> int:
        raw = _read_exact(self._idx_fd, 8, index * 8)
        if len(raw) != 8:
            raise LogIntegrityError(f"index slot {index} of {self.directory / INDEX_NAME} is missing")
        return int.from_bytes(raw, "big")

    def _record_end(self, index: int) -> int:
        """End offset of record ``index`` per its length prefix (``2**64`` if the prefix is unreadable)."""
        off = self._offset(index)
        raw = _read_exact(self._data_fd, 4, off)
        if len(raw) != 4:
            return 1 << 64
        length: int = _LEN.unpack(raw)[0]
        return off + 4 + length

    def _read_synced(self) -> int:
        path = self.directory / SYNCED_NAME
        raw = path.read_bytes() if path.exists() else b""
        return int.from_bytes(raw, "big") if len(raw) == 8 else 0

    def _data_end_of(self, n: int) -> int:
        return self._record_end(n - 1) if n else 0

    def _scan(self, verifier: NoteVerifier | None, *, window: int | None) -> Diagnosis:
        """Look at the index, the records and the checkpoint (reads only); ``window``: newest slots checked."""
        cp, cp_damage = read_checkpoint(self.directory, verifier)
        idx_size = os.fstat(self._idx_fd).st_size
        data_size = os.fstat(self._data_fd).st_size
        slots, partial = divmod(idx_size, 8)
        diag = Diagnosis(slots=slots, checkpoint=cp, damage=list(cp_damage))
        # An unreadable checkpoint protects every slot: nothing may be cut.
        diag.covered = cp.size if cp is not None else (slots if cp_damage else 0)
        # The index slots must chain: each record starts where the previous one ends, inside entries.dat.
        start = 0 if window is None else max(0, slots - window)
        expected = self._data_end_of(start)
        good = start
        broken: Damage | None = None
        for i in range(start, slots):
            off = self._offset(i)
            covered = i < diag.covered
            if off != expected:
                broken = Damage(
                    file=INDEX_NAME,
                    offset=i * 8,
                    index=i,
                    what=f"index slot {i} says its record starts at byte {off} of {DATA_NAME}, "
                    f"but the previous record ends at byte {expected}",
                    covered=covered,
                )
                break
            end = self._record_end(i)
            if end > data_size:
                length = "an unreadable length" if end == 1 << 64 else f"{end - off - 4} bytes"
                broken = Damage(
                    file=DATA_NAME,
                    offset=off,
                    index=i,
                    what=f"record {i} has {length} by its length prefix and runs past the end of "
                    f"{DATA_NAME} ({data_size} bytes)",
                    covered=covered,
                )
                break
            expected = end
            good = i + 1
        diag.good = good
        data_end = expected
        tail = slots > good or partial > 0 or data_size > data_end
        if good < diag.covered:
            if broken is None:
                broken = Damage(
                    file=INDEX_NAME,
                    offset=idx_size,
                    index=good,
                    what=f"{INDEX_NAME} ends after {slots} slots",
                    covered=True,
                )
            diag.damage.append(broken)
        elif tail:
            # A torn append left no durable leaf hash past the intact prefix; committed entries did.
            durable = min(self._level_count(0), self._read_synced())
            what = (
                f"{slots - good} index slot(s) from entry {good} and {partial} stray byte(s) in {INDEX_NAME}, "
                f"{data_size - data_end} byte(s) past the last intact record (byte {data_end}) in {DATA_NAME}"
            )
            if durable > good:
                first = broken or Damage(file=INDEX_NAME, offset=good * 8, index=good, what=what, covered=False)
                diag.damage.append(first)
                diag.damage.append(
                    Damage(
                        file=level_name(0),
                        offset=good * _H,
                        index=good,
                        what=f"entries {good}…{durable - 1} were committed (their leaf hashes are durable) "
                        "but their index slots or records do not check out",
                        covered=False,
                    )
                )
            else:
                reason = "" if broken is None else f" ({broken.what})"
                diag.torn = f"torn append after entry {good - 1 if good else 'none'}: {what}{reason}"
        return diag

    def _level_count(self, level: int) -> int:
        path = self.directory / level_name(level)
        return path.stat().st_size // _H if path.exists() else 0

    def _level_damage(self, n: int, covered: int, *, window: int | None, trust_all: bool = False) -> list[Damage]:
        """Stored hashes of the first ``n`` entries that differ from recomputation (first per level; reads only)."""
        out: list[Damage] = []
        saved = self._size
        self._size = n
        try:
            for level in range(max(n.bit_length(), 1)):
                if level >= len(self._level_fds) or self._level_fds[level] < 0:
                    break
                fd = self._level_fds[level]
                have = os.fstat(fd).st_size // _H
                trusted = min(have, n >> level) if trust_all else min(have, n >> level, self._synced >> level)
                lo = 0 if window is None else max(0, trusted - window)
                step = 1 << 16
                for a in range(lo, trusted, step):
                    b = min(trusted, a + step)
                    stored = _read_exact(fd, (b - a) * _H, a * _H)
                    fresh = self._compute(level, a, b)
                    if stored != fresh:
                        out.append(self._mismatch(level, a, stored, fresh, covered))
                        break
        finally:
            self._size = saved
        return out

    def _recover(self, verifier: NoteVerifier | None) -> None:
        for level in range(len(self._level_fds), max((os.fstat(self._idx_fd).st_size // 8).bit_length(), 1)):
            self._level_fd(level)
        self._synced = self._read_synced()
        diag = self._scan(verifier, window=TAIL_CHECK)
        n = diag.good
        diag.damage += self._level_damage(n, diag.covered, window=TAIL_CHECK)
        if diag.damage:
            header = None
            if n < diag.covered and diag.checkpoint is not None:
                header = (
                    f"the transparency log in {self.directory} holds {n} entries but its last signed checkpoint "
                    f"covers {diag.covered}"
                )
            raise damaged_error(self.directory, diag.damage, header)
        data_end = self._data_end_of(n)
        if diag.torn is not None:
            self._keep_torn_tail(n, data_end, diag.torn)
        self._size = n
        self._data_end = data_end
        if os.fstat(self._idx_fd).st_size != n * 8:
            os.ftruncate(self._idx_fd, n * 8)
        if os.fstat(self._data_fd).st_size != data_end:
            os.ftruncate(self._data_fd, data_end)
        self._synced = min(self._synced, n)
        self._recover_levels(n)
        for fd in (self._data_fd, self._idx_fd):
            os.fsync(fd)
        self.sync_levels()
        self._ready = True

    def _keep_torn_tail(self, n: int, data_end: int, what: str) -> None:
        """Copy what recovery is about to cut into ``torn-<time>/`` and report it."""
        folder = self.directory / f"{TORN_PREFIX}{_stamp()}"
        folder.mkdir()
        idx_tail = _read_exact(self._idx_fd, max(0, os.fstat(self._idx_fd).st_size - n * 8), n * 8)
        data_tail = _read_exact(self._data_fd, max(0, os.fstat(self._data_fd).st_size - data_end), data_end)
        (folder / f"{INDEX_NAME}.tail").write_bytes(idx_tail)
        (folder / f"{DATA_NAME}.tail").write_bytes(data_tail)
        report = {
            "what": what,
            "kept_entries": n,
            INDEX_NAME: {"from_byte": n * 8, "bytes": len(idx_tail), "file": f"{INDEX_NAME}.tail"},
            DATA_NAME: {"from_byte": data_end, "bytes": len(data_tail), "file": f"{DATA_NAME}.tail"},
        }
        (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        for name in (f"{INDEX_NAME}.tail", f"{DATA_NAME}.tail", "report.json"):
            fd = os.open(folder / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(folder)
        _fsync_dir(self.directory)
        note = f"{self.directory}: cut a {what}; the cut bytes are kept in {folder}"
        self.recovered.append(note)
        _log.warning("%s", note)

    def sync_levels(self) -> None:
        """Make the hash level files durable and advance the watermark to the current size."""
        for fd in self._level_fds:
            if fd >= 0:
                os.fsync(fd)
        tmp = self.directory / (SYNCED_NAME + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, self._size.to_bytes(8, "big"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.directory / SYNCED_NAME)
        self._synced = self._size

    def _level_fd(self, level: int) -> int:
        while len(self._level_fds) <= level:
            lv = len(self._level_fds)
            self._level_fds.append(os.open(self.directory / level_name(lv), os.O_RDWR | os.O_CREAT, 0o644))
            self._counts.append(os.fstat(self._level_fds[-1]).st_size // _H)
            self._pending.append(None)
        return self._level_fds[level]

    def _recover_levels(self, n: int) -> None:
        """Trim hashes past the watermark or the size and rebuild them from the leaves (derived data only)."""
        top = max(n.bit_length(), 1)
        for level in range(top):
            fd = self._level_fd(level)
            want = n >> level
            have = os.fstat(fd).st_size // _H
            # Hashes past the durable watermark may be stale after a crash: rebuild them, don't trust them.
            trusted = min(have, want, self._synced >> level)
            if os.fstat(fd).st_size != trusted * _H:
                have = trusted
                os.ftruncate(fd, have * _H)
            if have < want:
                os.pwrite(fd, self._compute(level, have, want), have * _H)
            self._counts[level] = want
            self._pending[level] = self.subtree(level, want - 1) if want & 1 else None
        # Levels above the top hold nothing for this size.
        for level in range(top, len(self._level_fds)):
            os.ftruncate(self._level_fds[level], 0)
            self._counts[level] = 0
            self._pending[level] = None

    def _compute(self, level: int, lo: int, hi: int) -> bytes:
        """Hashes ``[lo, hi)`` of ``level`` recomputed from the level below (leaves for level 0)."""
        if level == 0:
            return b"".join(merkle.leaf_hash(leaf) for leaf in self.iter_leaves(lo, hi))
        fd = self._level_fds[level - 1]
        below = _read_exact(fd, (hi - lo) * 2 * _H, lo * 2 * _H)
        if len(below) != (hi - lo) * 2 * _H:
            raise LogIntegrityError(f"hash level {level - 1} is shorter than level {level} needs")
        return b"".join(
            merkle.node_hash(below[j : j + _H], below[j + _H : j + 2 * _H]) for j in range(0, len(below), 2 * _H)
        )

    def _mismatch(self, level: int, lo: int, stored_run: bytes, fresh_run: bytes, covered: int) -> Damage:
        """The first differing hash of two runs of hashes that start at node ``lo``."""
        k = next(
            (
                i
                for i in range(len(fresh_run) // _H)
                if stored_run[i * _H : (i + 1) * _H] != fresh_run[i * _H : (i + 1) * _H]
            ),
            len(fresh_run) // _H,
        )
        stored, fresh = stored_run[k * _H : (k + 1) * _H], fresh_run[k * _H : (k + 1) * _H]
        index = lo + k
        if level == 0:
            what = f"entry {index}"
            cause = f"the record in {DATA_NAME} or this hash was altered"
        else:
            what = f"node {index} of level {level} (entries {index << level}…)"
            cause = f"this hash or one in {level_name(level - 1)} was altered"
        return Damage(
            file=level_name(level),
            offset=index * _H,
            index=index << level,
            what=f"stored hash of {what} does not match recomputation: stored {stored.hex()}, "
            f"recomputed {fresh.hex()} ({cause})",
            covered=(index << level) < covered,
        )

    # ------------------------------------------------------------------ reads
    @property
    def size(self) -> int:
        """Number of committed entries."""
        return self._size

    def leaf(self, index: int) -> bytes:
        """The bytes of entry ``index``."""
        if not 0 <= index < self._size:
            raise IndexError(f"entry {index} is outside the log (size {self._size})")
        off = self._offset(index)
        raw = _read_exact(self._data_fd, 4, off)
        n = _LEN.unpack(raw)[0]
        data = _read_exact(self._data_fd, n, off + 4)
        if len(data) != n:
            raise LogIntegrityError(f"entry {index} is truncated in {self.directory / DATA_NAME}")
        return data

    def iter_leaves(self, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """Entries ``[start, stop)`` in order, read sequentially."""
        stop = self._size if stop is None else min(stop, self._size)
        if start >= stop:
            return
        pos = self._offset(start)
        end = self._record_end(stop - 1)
        chunk = 1 << 20
        buf = b""
        buf_at = pos
        for _ in range(start, stop):
            rel = pos - buf_at
            if rel + 4 > len(buf):
                buf = _read_exact(self._data_fd, max(chunk, 4), pos)
                buf_at, rel = pos, 0
            n = _LEN.unpack_from(buf, rel)[0]
            if rel + 4 + n > len(buf):
                buf = _read_exact(self._data_fd, min(max(chunk, 4 + n), end - pos), pos)
                buf_at, rel = pos, 0
            yield buf[rel + 4 : rel + 4 + n]
            pos += 4 + n

    def subtree(self, level: int, index: int) -> bytes:
        """Stored hash of the complete subtree ``index`` at ``level`` (see :class:`merkle.HashSource`)."""
        if level >= len(self._level_fds) or self._level_fds[level] < 0 or index >= self._counts[level]:
            raise LogIntegrityError(f"hash level {level} has no node {index} (log size {self._size})")
        h = _read_exact(self._level_fds[level], _H, index * _H)
        if len(h) != _H:
            raise LogIntegrityError(f"hash level {level} is truncated at node {index}")
        return h

    def leaf_hash(self, index: int) -> bytes:
        """Stored leaf hash of entry ``index``."""
        return self.subtree(0, index)

    def root(self, size: int | None = None) -> bytes:
        """Root hash of the first ``size`` entries (default: all)."""
        return merkle.root_hash(self, self._check_size(size))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path for entry ``index`` in the tree of ``size`` entries (default: all)."""
        return merkle.inclusion_proof(self, index, self._check_size(size))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Proof that the tree of ``new_size`` entries (default: all) extends that of ``old_size``."""
        return merkle.consistency_proof(self, old_size, self._check_size(new_size))

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self._size
        if not 0 <= size <= self._size:
            raise LogIntegrityError(
                f"tree size {size} is beyond the log (size {self._size})",
                hint="ask for a size up to the current one",
            )
        return size

    # ------------------------------------------------------------------ writes
    def append_leaves(self, leaves: Sequence[bytes]) -> range:
        """Append ``leaves`` durably as one group commit; returns their indices."""
        if self.readonly:
            raise StoreError("the log was opened read-only", hint="open it without readonly=True to append")
        first = self._size
        if not leaves:
            return range(first, first)
        n = first + len(leaves)
        # Leaf records and their offsets.
        parts: list[bytes] = []
        offsets: list[int] = []
        pos = self._data_end
        for leaf in leaves:
            if len(leaf) > MAX_LEAF:
                raise StoreError(f"log entry of {len(leaf)} bytes is too large (limit {MAX_LEAF})")
            offsets.append(pos)
            parts.append(_LEN.pack(len(leaf)))
            parts.append(leaf)
            pos += 4 + len(leaf)
        # New hashes per level, carrying the pending left siblings.
        top = n.bit_length()
        for level in range(top):
            self._level_fd(level)
        new: list[list[bytes]] = [[] for _ in range(top)]
        pending = list(self._pending)
        counts = list(self._counts)
        sha = merkle.leaf_hash
        node = merkle.node_hash
        for leaf in leaves:
            h = sha(leaf)
            level = 0
            while True:
                new[level].append(h)
                counts[level] += 1
                if counts[level] & 1:
                    pending[level] = h
                    break
                left = pending[level]
                pending[level] = None
                if left is None:  # pragma: no cover - an odd count always leaves a pending sibling
                    raise LogIntegrityError(f"internal: no left sibling at level {level}")
                h = node(left, h)
                level += 1
        # Commit: data, then index (the commit point), then hashes (derived data, fsynced in
        # larger groups: recovery rebuilds whatever lies past the durable watermark).
        os.pwrite(self._data_fd, b"".join(parts), self._data_end)
        os.fsync(self._data_fd)
        os.pwrite(self._idx_fd, struct.pack(f">{len(offsets)}Q", *offsets), first * 8)
        os.fsync(self._idx_fd)
        for level in range(top):
            if new[level]:
                os.pwrite(self._level_fds[level], b"".join(new[level]), self._counts[level] * _H)
        self._counts[:top] = counts[:top]
        self._pending[:top] = pending[:top]
        self._size = n
        self._data_end = pos
        if n - self._synced >= LEVEL_SYNC_EVERY:
            self.sync_levels()
        return range(first, n)

    # ------------------------------------------------------------------ audit
    def verify(self) -> None:
        """Recompute every hash from the entries and compare with what is stored (O(n)); raise on the first."""
        found = self._scan(None, window=None)
        size = self._size
        chain = [d for d in found.damage if d.file != CHECKPOINT_NAME and (d.index or 0) < size]
        if found.good < size and not chain:
            chain = [
                Damage(
                    file=INDEX_NAME,
                    offset=found.good * 8,
                    index=found.good,
                    what=found.torn or "index slots or records do not chain",
                    covered=False,
                )
            ]
        damage = chain + self._level_damage(size, found.covered, window=None, trust_all=True)
        if damage:
            raise LogIntegrityError(
                f"{self.directory}: {damage[0]}",
                hint="entries or hashes were altered, deleted or reordered; see `atalaya log repair`",
            )


@contextlib.contextmanager
def writer_lock(directory: Path | str) -> Iterator[None]:
    """Hold the log's single-writer lock without opening (or recovering) its files."""
    s = LogStorage(Path(directory), readonly=False)
    try:
        s._take_lock()
        yield
    finally:
        s.close()


def diagnose(directory: Path | str, *, verifier: NoteVerifier | None = None, full: bool = True) -> Diagnosis:
    """Check the log files in ``directory`` without writing or locking anything.

    ``full`` re-hashes every entry and node (O(n)); otherwise only the newest
    ``TAIL_CHECK`` slots, entries and nodes, as a writer's open does. The
    checkpoint's root is compared with the stored hashes at its size.
    """
    d = Path(directory)
    if not (d / DATA_NAME).exists() or not (d / INDEX_NAME).exists():
        raise StoreError(f"no transparency log in {d}", hint="append an entry first (`atalaya log append FILE`)")
    s = LogStorage(d, readonly=True)
    try:
        s._open_inspect()
        window = None if full else TAIL_CHECK
        diag = s._scan(verifier, window=window)
        n = diag.good
        # Hashes past the durable watermark are derived data a writer rebuilds: not damage.
        diag.damage += s._level_damage(n, diag.covered, window=window)
        s._size = n
        cp = diag.checkpoint
        enough = all(
            lv < len(s._counts) and s._counts[lv] >= (n >> lv) for lv in range(max(n.bit_length(), 1)) if n >> lv
        )
        if enough:
            diag.root = merkle.root_hash(s, n)
        if cp is not None and cp.size <= n and enough:
            got = merkle.root_hash(s, cp.size)
            if got != cp.root:
                diag.damage.append(
                    Damage(
                        file=CHECKPOINT_NAME,
                        offset=0,
                        index=None,
                        what=f"root mismatch at size {cp.size}: checkpoint says {cp.root.hex()}, "
                        f"entries give {got.hex()}",
                        covered=True,
                    )
                )
        return diag
    finally:
        s.close()
