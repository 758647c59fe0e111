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
:meth:`LogStorage.open` recovers: it drops torn index slots and records past the
last indexed one, and rebuilds from the leaves every hash past the watermark.
A stored hash below the watermark that disagrees with recomputation is
corruption, not a torn write, and raises :class:`LogIntegrityError` (the open checks the newest
``TAIL_CHECK`` entries and nodes; :meth:`LogStorage.verify` checks everything).

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
import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import NoReturn

from atalaya.core.errors import LogIntegrityError, StoreError
from atalaya.store.translog import merkle

DATA_NAME = "entries.dat"
INDEX_NAME = "entries.idx"
LOCK_NAME = "lock"
SYNCED_NAME = "levels.synced"
LEVEL_SYNC_EVERY = 1 << 16
"""Hash levels are fsynced (and the watermark advanced) at least every this many entries, and on close."""
TAIL_CHECK = 256
"""How many of the newest leaves (and nodes per level) :meth:`LogStorage.open` re-hashes."""
MAX_LEAF = (1 << 32) - 1
"""Largest leaf, in bytes (u32 length prefix)."""

_H = merkle.HASH_SIZE
_LEN = struct.Struct(">I")


def level_name(level: int) -> str:
    """File name of hash level ``level``."""
    return f"level-{level:02d}.hash"


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
    def open(cls, directory: Path | str, *, readonly: bool = False) -> LogStorage:
        """Open (creating if needed) the log in ``directory``, recovering from a torn tail.

        With ``readonly=True`` nothing is written or locked: the size is the
        largest prefix that every file fully covers.
        """
        d = Path(directory)
        s = cls(d, readonly=readonly)
        try:
            if readonly:
                s._open_readonly()
            else:
                s._open_writer()
        except BaseException:
            s.close()
            raise
        return s

    def _open_writer(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise StoreError(
                f"transparency log {self.directory} is open for writing by another process",
                hint="a log has exactly one writer; wait for it to finish, or open read-only",
            ) from e
        flags = os.O_RDWR | os.O_CREAT
        self._data_fd = os.open(self.directory / DATA_NAME, flags, 0o644)
        self._idx_fd = os.open(self.directory / INDEX_NAME, flags, 0o644)
        self._recover()

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
        if self._lock_fd >= 0 and self._idx_fd >= 0 and self._synced != self._size:
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

    def _recover(self) -> None:
        idx_size = os.fstat(self._idx_fd).st_size
        data_size = os.fstat(self._data_fd).st_size
        n = idx_size // 8
        # The newest index slots may be torn; an index slot is valid when its record
        # starts where the previous one ends and lies wholly inside entries.dat.
        start = max(0, n - TAIL_CHECK)
        expected = 0 if start == 0 else self._record_end(start - 1)
        good = start
        for i in range(start, n):
            off = self._offset(i)
            if off != expected:
                break
            end = self._record_end(i)
            if end > data_size:
                break
            expected = end
            good = i + 1
        n = good
        self._size = n
        self._data_end = self._record_end(n - 1) if n else 0
        if idx_size != n * 8:
            os.ftruncate(self._idx_fd, n * 8)
        if data_size != self._data_end:
            os.ftruncate(self._data_fd, self._data_end)
        raw = (self.directory / SYNCED_NAME).read_bytes() if (self.directory / SYNCED_NAME).exists() else b""
        self._synced = min(int.from_bytes(raw, "big") if len(raw) == 8 else 0, n)
        self._recover_levels(n)
        for fd in (self._data_fd, self._idx_fd):
            os.fsync(fd)
        self.sync_levels()

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
            # Check the newest stored hashes against recomputation.
            lo = max(0, have - TAIL_CHECK)
            if have > lo:
                stored = _read_exact(fd, (have - lo) * _H, lo * _H)
                fresh = self._compute(level, lo, have)
                if stored != fresh:
                    self._raise_mismatch(level, lo, stored, fresh)
            # Rebuild what a crash left missing.
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

    def _raise_mismatch(self, level: int, lo: int, stored_run: bytes, fresh_run: bytes) -> NoReturn:
        """Raise for the first differing hash of two runs of hashes that start at node ``lo``."""
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
        what = f"entry {index}" if level == 0 else f"node {index} of level {level} (entries {index << level}…)"
        raise LogIntegrityError(
            f"{self.directory}: stored hash of {what} does not match recomputation: "
            f"stored {stored.hex()}, recomputed {fresh.hex()}",
            hint="a log file was edited or corrupted; restore it from a backup or a partner's mirror",
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
        """Recompute every hash from the entries and compare with what is stored (O(n))."""
        size = self._size
        expected = 0
        for i in range(size):
            off = self._offset(i)
            if off != expected:
                raise LogIntegrityError(
                    f"{self.directory}: index slot {i} points at byte {off}, the previous record ends at {expected}",
                    hint="entries were deleted or reordered in entries.dat or entries.idx",
                )
            expected = self._record_end(i)
        level = 0
        while (size >> level) > 0:
            count = size >> level
            step = 1 << 16
            for lo in range(0, count, step):
                hi = min(count, lo + step)
                fresh = self._compute(level, lo, hi)
                stored = _read_exact(self._level_fds[level], (hi - lo) * _H, lo * _H)
                if fresh != stored:
                    self._raise_mismatch(level, lo, stored, fresh)
            level += 1
