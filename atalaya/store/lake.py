"""The observation lake: append-only Parquet, partitioned by day and source, read with DuckDB.

Layout under ``WORKSPACE/lake``::

    observations/day=2026-03-02/source=ais/part-<unit>-<k>.parquet
    _commits/<unit>.json        commit marker: the unit's files and summary
    _staging/<unit>/...         files being written (never read)
    _staging/<unit>.owner       the writing process: PID and its start time
    _writer.lock                the one-writer lock (flock), with its holder's PID and since when

An *ingest unit* (one input file) writes to staging, then commits: files are
renamed into their partitions and the commit marker is written last (atomic
rename, fsync). Readers only see files whose unit has a marker, and
:meth:`Lake.recover` removes what a crash left behind, so a crash or Ctrl-C at
any point leaves the lake as it was before the unit or with the whole unit.

One writer at a time: publishing a unit (files, then marker) and recovery run
under :meth:`Lake.write_lock`, an OS lock on ``_writer.lock`` that other
processes and other threads of this one respect (a second writer gets a
:class:`~atalaya.core.errors.BusyError` naming the holder, or waits). Recovery
removes only what a dead writer left: staging whose owner process is gone, and
published files without a marker (publishing happens under the lock it holds).
Readers take no lock and never delete anything.

Files are created 0600 and directories 0700.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import fcntl
import itertools
import json
import os
import queue
import re
import shutil
import socket
import sys
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from atalaya.core.errors import BusyError, StoreError
from atalaya.model.observation import SCHEMA

_PART_RE = re.compile(r"^part-(?P<unit>[0-9a-f]{32})-(?P<k>\d+)\.parquet$")
_UNIT_RE = re.compile(r"^[0-9a-f]{32}$")
LOCK_NAME = "_writer.lock"
FILE_MODE = 0o600
DIR_MODE = 0o700
ROW_GROUP_ROWS = 262_144
WRITE_OPTIONS: dict[str, Any] = {
    # snappy + dictionaries only for string-like columns: about twice as fast to write as zstd with
    # dictionaries everywhere, for ~10 % more bytes (measured on detection CSVs; see docs/benchmarks.md)
    "compression": "snappy",
    "use_dictionary": [f.name for f in SCHEMA if pa.types.is_dictionary(f.type) or f.type == pa.string()],
    "write_statistics": ["time", "lon", "lat", "sensor", "kind", "ident"],
    # values are encoded 64k at a time (Arrow's default is 1024): ~4 % less writer CPU; a data page may then
    # overshoot its 1 MB target by one such batch
    "write_batch_size": 1 << 16,
    # mostly increasing integers: deltas are ~10 % cheaper to write than plain values and 12 % fewer bytes in all;
    # floats split by byte position: ~3 % less writer CPU, lon/lat ~14 % fewer bytes (read by DuckDB and pyarrow)
    "column_encoding": {
        "time": "DELTA_BINARY_PACKED",
        "src_rec": "DELTA_BINARY_PACKED",
        **{f.name: "BYTE_STREAM_SPLIT" for f in SCHEMA if pa.types.is_floating(f.type)},
    },
}


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_path(path: Path) -> None:
    if path.is_dir():
        _fsync_dir(path)
        return
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _fsync_all(paths: list[Path]) -> None:
    """fsync files and directories, several at a time (the device merges the flushes)."""
    if len(paths) <= 1:
        for p in paths:
            _fsync_path(p)
        return
    with cf.ThreadPoolExecutor(max_workers=min(8, len(paths)), thread_name_prefix="atalaya-fsync") as pool:
        for f in [pool.submit(_fsync_path, p) for p in paths]:
            f.result()


def _split_by_day(table: pa.Table, day_index: np.ndarray, days: np.ndarray) -> list[tuple[int, pa.Table]]:
    """Each day's rows, in their order, by day.

    Rows usually come in runs of one day (time-ordered input, or a few time-ordered pieces one after the
    other): each day's runs are slices of the batch, nothing is copied. Only input with many short runs is
    reordered, with one take.
    """
    if len(days) == 1:
        return [(int(days[0]), table)]
    starts = np.flatnonzero(day_index[1:] != day_index[:-1]) + 1
    if len(starts) < 4 * len(days):
        bounds = [0, *starts.tolist(), len(day_index)]
        runs: dict[int, list[pa.Table]] = {}
        for lo, hi in itertools.pairwise(bounds):
            runs.setdefault(int(day_index[lo]), []).append(table.slice(lo, hi - lo))
        return [(d, parts[0] if len(parts) == 1 else pa.concat_tables(parts)) for d, parts in sorted(runs.items())]
    order = np.argsort(day_index, kind="stable")
    order = np.ascontiguousarray(order, dtype=np.int64)  # indices through the buffer: no pandas import
    table = table.take(pa.Array.from_buffers(pa.int64(), len(order), [None, pa.py_buffer(order)]))
    day_index = day_index[order]
    bounds = [*np.searchsorted(day_index, days, side="left").tolist(), len(day_index)]
    return [(int(d), table.slice(bounds[i], bounds[i + 1] - bounds[i])) for i, d in enumerate(days)]


def make_dirs(path: Path) -> None:
    """Create ``path`` and any missing parents, each 0700 (``Path.mkdir`` gives parents the default mode)."""
    if path.is_dir():
        return
    make_dirs(path.parent)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=DIR_MODE)


def open_private(path: Path, mode: str = "w") -> Any:
    """Open ``path`` for writing (``w`` text, ``wb`` bytes), created 0600 (truncated if it exists)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    return os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` atomically (temp file 0600, fsync, rename, fsync dir)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open_private(tmp) as fh:
        json.dump(data, fh, sort_keys=True, indent=1, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


# -- the one-writer lock ------------------------------------------------------------------------------


@dataclass(kw_only=True)
class _Held:
    fd: int
    thread: int
    depth: int


_HELD: dict[str, _Held] = {}
"""Lock files this process holds, by path: the holding thread re-enters, other threads contend like processes."""
_HELD_GUARD = threading.Lock()


def _holder_text(info: dict[str, Any]) -> str:
    if not info.get("pid"):
        return "busy: the lake is being written by another process (it has not said which yet)"
    what = f" ({info['command']})" if info.get("command") else ""
    host = f" on {info['host']}" if info.get("host") and info["host"] != socket.gethostname() else ""
    return f"busy: the lake is being written by PID {info['pid']}{host}{what} since {info.get('since', '?')}"


class WriterLock:
    """The lake's one-writer lock: ``flock`` on ``LAKE/_writer.lock``, held by an open file of this process.

    The holder writes its PID, host, command and start time into the file; a second writer (another process,
    or another thread of this one) waits up to ``wait`` seconds, then gets a :class:`BusyError` that names the
    holder. The thread that holds the lock may take it again (re-entrant). The kernel releases it when the
    holder exits, however it ends, so a crash never leaves the lake locked.
    """

    def __init__(self, path: Path, *, wait: float = 0.0, purpose: str = "") -> None:
        self.path = path
        self.wait = max(0.0, wait)
        self.purpose = purpose

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def held(self) -> bool:
        """Whether the calling thread holds this lock."""
        with _HELD_GUARD:
            h = _HELD.get(str(self.path))
        return h is not None and h.thread == threading.get_ident()

    def holder(self) -> dict[str, Any]:
        """What the holder wrote in the lock file (empty when free or not yet written)."""
        try:
            info = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def acquire(self) -> None:
        key = str(self.path)
        me = threading.get_ident()
        with _HELD_GUARD:
            h = _HELD.get(key)
            if h is not None and h.thread == me:
                h.depth += 1
                return
        make_dirs(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            deadline = time.monotonic() + self.wait
            delay = 0.01
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        waited = f" (waited {self.wait:g} s)" if self.wait else ""
                        raise BusyError(
                            _holder_text(self.holder()) + waited,
                            hint="let it finish and run this again, or wait for it: `atalaya ingest --wait SECONDS`, "
                            "ATALAYA_LOCK_WAIT=SECONDS or lock_wait under [store] in atalaya.toml",
                        ) from None
                    time.sleep(min(delay, left))
                    delay = min(delay * 2, 0.2)
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": datetime.now(UTC).isoformat(timespec="seconds"),
                "command": (self.purpose or " ".join(["atalaya", *sys.argv[1:]]))[:200],
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except BaseException:
            os.close(fd)  # closing our descriptor never releases another holder's lock (flock is per open file)
            raise
        with _HELD_GUARD:
            _HELD[key] = _Held(fd=fd, thread=me, depth=1)

    def release(self) -> None:
        key = str(self.path)
        with _HELD_GUARD:
            h = _HELD.get(key)
            if h is None or h.thread != threading.get_ident():
                raise StoreError(f"{self.path} is not held by this thread")
            h.depth -= 1
            if h.depth:
                return
            del _HELD[key]
        try:
            os.ftruncate(h.fd, 0)  # a free lock names no holder
        finally:
            os.close(h.fd)  # releases the flock


def _proc_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, Linux ``/proc``), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


_ACTIVE_WRITERS: weakref.WeakValueDictionary[str, LakeWriter] = weakref.WeakValueDictionary()
"""This process's unfinished writers by unit id (their staging is alive)."""


def _owner_alive(owner: dict[str, Any], unit_id: str) -> bool:
    """Whether the process that owns a unit's staging (as its ``.owner`` file says) may still be writing it."""
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if owner.get("host") not in (None, socket.gethostname()):
        return True  # another machine's process: cannot tell, leave it
    if pid == os.getpid():
        return unit_id in _ACTIVE_WRITERS and _proc_start(pid) == owner.get("start")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, someone else's
    start = _proc_start(pid)
    return start is None or owner.get("start") is None or start == owner.get("start")  # else: PID reused


@dataclass(frozen=True, kw_only=True)
class RecoveryReport:
    """What :meth:`Lake.recover` cleaned up."""

    staging_removed: int = 0
    """Staging directories of units that never committed."""
    orphan_files_removed: int = 0
    """Partition files of units without a commit marker."""
    staging_kept: int = 0
    """Staging directories left alone: their writer is alive."""


_Key = tuple[str, str]
_Parts = list[tuple[_Key, pa.Table]]


@dataclass(kw_only=True)
class _Shard:
    """One background writer thread, the partitions it owns and the rows it holds for them."""

    queue: queue.Queue[_Parts | None]
    thread: threading.Thread | None = None
    pending: dict[_Key, list[pa.Table]] = field(default_factory=dict)
    pending_rows: dict[_Key, int] = field(default_factory=dict)


@dataclass(kw_only=True)
class LakeWriter:
    """Writes one unit's partitions to staging; :meth:`commit` publishes them atomically.

    Parquet encoding runs on background threads (it releases the GIL), so the
    caller validates and hashes the next batch while this one is written. A
    batch's rows are split by day; each day's partition belongs to one of
    ``SHARDS`` writer threads (days alternate), so partitions are written side
    by side and each file still gets its rows in arrival order. At most
    ``QUEUE_DEPTH`` batches' parts wait per thread, which bounds memory. Rows are
    held per partition until a row group's worth (``ROW_GROUP_ROWS``) is there, a
    thread holds ``PENDING_ROWS``, or a batch comes without that day (time-ordered
    input has moved on), so a partition fed by several batches gets a few large
    row groups, not one small one per batch, and little is left to write at the end.
    """

    lake: Lake
    """The lake being written."""
    unit_id: str
    """The unit (32 hex characters)."""
    _writers: dict[_Key, pq.ParquetWriter] = field(default_factory=dict)
    _paths: dict[_Key, Path] = field(default_factory=dict)
    _rows: int = 0
    _done: bool = False
    _shards: list[_Shard] = field(default_factory=list)
    _error: BaseException | None = None
    _rewrites: list[tuple[Path, Path]] = field(default_factory=list)
    """Files written whole by :meth:`add_rewrite` (staged path, path under ``observations``)."""
    _supersedes: list[str] = field(default_factory=list)
    """Lake paths (``observations/…``) the commit replaces: invisible from the marker on, deleted after it."""
    _synced: set[_Key] = field(default_factory=set)
    """Partitions whose staged file is flushed to disk as it stands."""
    lock_wait: float = 0.0
    """Seconds :meth:`commit` waits for the lake's writer lock when the caller does not hold it already."""

    QUEUE_DEPTH = 2
    SHARDS = 2
    PENDING_ROWS = ROW_GROUP_ROWS
    """Rows one writer thread may hold back (per thread)."""

    @property
    def staging(self) -> Path:
        return self.lake.staging_dir / self.unit_id

    @property
    def owner_file(self) -> Path:
        return self.lake.staging_dir / f"{self.unit_id}.owner"

    def _start(self) -> None:
        """Claim the unit's staging: the owner file (this process), then the directory."""
        _ACTIVE_WRITERS[self.unit_id] = self
        make_dirs(self.lake.staging_dir)
        owner = {"pid": os.getpid(), "start": _proc_start(os.getpid()), "host": socket.gethostname()}
        write_json_atomic(self.owner_file, owner)
        make_dirs(self.staging)

    def _release_staging(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        self.owner_file.unlink(missing_ok=True)
        _ACTIVE_WRITERS.pop(self.unit_id, None)

    @property
    def rows(self) -> int:
        return self._rows

    def write(self, table: pa.Table, day_index: np.ndarray, source: str, *, days: np.ndarray | None = None) -> None:
        """Append rows (observation schema); ``day_index`` is each row's UTC day number since the epoch.

        ``days`` (the distinct values of ``day_index``) may be given when the caller already knows them.
        """
        if self._done:
            raise StoreError("lake writer already committed or aborted")
        self._raise_worker_error()
        if table.num_rows == 0:
            return
        if days is None:
            days = np.unique(day_index)
        if not self._shards:
            self._shards = [_Shard(queue=queue.Queue(maxsize=self.QUEUE_DEPTH)) for _ in range(self.SHARDS)]
        for i, shard in enumerate(self._shards):
            if shard.thread is None:
                shard.thread = threading.Thread(
                    target=self._work, args=(shard,), name=f"lake-writer-{self.unit_id[:8]}-{i}", daemon=True
                )
                shard.thread.start()
        by_shard: dict[int, _Parts] = {}
        for d, part in _split_by_day(table, day_index, days):
            by_shard.setdefault(d % len(self._shards), []).append(((str(np.datetime64(d, "D")), source), part))
        for i, parts in by_shard.items():
            self._shards[i].queue.put(parts)
        self._rows += table.num_rows

    def _work(self, shard: _Shard) -> None:
        while True:
            parts = shard.queue.get()
            if parts is None:
                return
            if self._error is not None:
                continue  # drain after a failure
            try:
                self._write_now(shard, parts)
            except BaseException as e:  # re-raised in the caller's thread
                self._error = e

    def _raise_worker_error(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise StoreError(f"writing the lake failed: {err}", hint="check free disk space and permissions") from err

    def _write_now(self, shard: _Shard, parts: _Parts) -> None:
        now = {key for key, _ in parts}
        for key in [k for k in shard.pending if k not in now]:
            self._flush(shard, key)  # a day this batch no longer has: in time-ordered input it is complete
        for key, part in parts:
            shard.pending.setdefault(key, []).append(part)
            shard.pending_rows[key] = shard.pending_rows.get(key, 0) + part.num_rows
            if shard.pending_rows[key] >= ROW_GROUP_ROWS:
                self._flush(shard, key)
        while sum(shard.pending_rows.values()) > self.PENDING_ROWS:
            self._flush(shard, max(shard.pending_rows, key=shard.pending_rows.__getitem__))

    def _flush(self, shard: _Shard, key: _Key) -> None:
        """Write a partition's held rows (in arrival order)."""
        parts = shard.pending.pop(key, [])
        shard.pending_rows.pop(key, None)
        if not parts:
            return
        w = self._writers.get(key)
        if w is None:
            day, source = key
            rel = Path(f"day={day}") / f"source={source}" / f"part-{self.unit_id}-0.parquet"
            p = self._staged(key)
            open_private(p, "wb").close()  # 0600 first: Arrow's writer truncates it, the mode stays
            w = pq.ParquetWriter(p, SCHEMA, **WRITE_OPTIONS)
            self._writers[key] = w
            self._paths[key] = rel
        w.write_table(parts[0] if len(parts) == 1 else pa.concat_tables(parts), row_group_size=ROW_GROUP_ROWS)

    def _staged(self, key: _Key) -> Path:
        """Where a partition's file is written before the commit: side by side in the unit's staging directory
        (directories are made only once, in the lake, when the file moves there)."""
        day, source = key
        return self.staging / f"{day}_{source}.parquet"

    def _join(self) -> None:
        for shard in self._shards:
            shard.queue.put(None)
        for shard in self._shards:
            if shard.thread is not None:
                shard.thread.join()
                shard.thread = None

    def staged_partitions(self) -> dict[tuple[str, str], Path]:
        """Staged file of each (day, source) partition written so far."""
        return {k: self._staged(k) for k in self._paths}

    def close_files(self) -> None:
        """Finish writing (before de-duplication rewrites and commit)."""
        self._join()
        self._raise_worker_error()
        owner = {key: shard for shard in self._shards for key in shard.pending}
        keys = list(dict.fromkeys([*owner, *self._writers]))
        if keys:
            # partitions are independent files: the held rows are written and the files closed side by side
            # (mostly waiting for fsync: the device merges concurrent flushes)
            with cf.ThreadPoolExecutor(max_workers=min(16, len(keys)), thread_name_prefix="atalaya-lake") as pool:
                for f in [pool.submit(self._finish, owner.get(key), key) for key in keys]:
                    f.result()
        self._writers.clear()
        self._shards = []

    def _finish(self, shard: _Shard | None, key: _Key) -> None:
        if shard is not None:
            self._flush(shard, key)
        w = self._writers.get(key)
        if w is not None:
            w.close()
            _fsync_path(self._staged(key))  # while other partitions are still being finished
            self._synced.add(key)

    def rewrite_partition(self, key: tuple[str, str], keep: np.ndarray) -> int:
        """Drop rows of a staged partition file (``keep`` mask in write order); returns rows dropped.

        Streams the file one batch of at most :data:`ROW_GROUP_ROWS` rows at a time into a new file, so memory
        stays bounded whatever the partition holds (a file of 30M repeats of one row once took it all).
        """
        path = self._staged(key)
        self._synced.discard(key)
        keep = np.asarray(keep, dtype=bool)
        tmp = path.with_name(path.name + ".rewrite")
        open_private(tmp, "wb").close()
        seen = kept = 0
        with pq.ParquetWriter(tmp, SCHEMA, **WRITE_OPTIONS) as out:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=ROW_GROUP_ROWS):
                mask = keep[seen : seen + batch.num_rows]
                seen += batch.num_rows
                part = pa.Table.from_batches([batch]).cast(SCHEMA).filter(pa.array(mask, type=pa.bool_()))
                if part.num_rows:
                    out.write_table(part, row_group_size=ROW_GROUP_ROWS)
                    kept += part.num_rows
        if seen != len(keep):
            tmp.unlink(missing_ok=True)
            raise StoreError(
                f"staged partition {path.name} holds {seen} rows but the keep mask has {len(keep)}",
                hint="this is a bug in the caller: the mask must cover every row written to the partition",
            )
        os.replace(tmp, path)
        dropped = seen - kept
        self._rows -= dropped
        return dropped

    def add_rewrite(self, key: _Key, parts: Iterable[pa.Table], replaces: Iterable[str]) -> int:
        """Stage one new file for partition ``key`` from ``parts`` (observation schema) that replaces the lake
        files ``replaces`` (``observations/…``) when this writer commits; returns the rows written."""
        if self._done:
            raise StoreError("lake writer already committed or aborted")
        day, source = key
        k = 1 + len(self._rewrites)
        rel = Path(f"day={day}") / f"source={source}" / f"part-{self.unit_id}-{k}.parquet"
        staged = self.staging / f"rewrite-{k}.parquet"
        open_private(staged, "wb").close()
        rows = 0
        with pq.ParquetWriter(staged, SCHEMA, **WRITE_OPTIONS) as out:
            for part in parts:
                if part.num_rows:
                    out.write_table(part.cast(SCHEMA), row_group_size=ROW_GROUP_ROWS)
                    rows += part.num_rows
        if rows:
            self._rewrites.append((staged, rel))
            self._rows += rows
        else:
            staged.unlink()
        self._supersedes.extend(replaces)
        return rows

    def commit(self, marker: dict[str, Any], extra_files: Iterable[tuple[Path, Path]] = ()) -> list[str]:
        """Close files, move them into the lake, then write the commit marker (the commit point).

        ``extra_files`` are ``(staged path, final path)`` pairs moved before the marker (e.g. the quarantine file).
        Moving and marking run under the lake's writer lock (re-entered when the caller holds it, else awaited
        ``lock_wait`` seconds): recovery, which runs under it too, never sees a unit half published.
        """
        self.close_files()
        with self.lake.write_lock(wait=self.lock_wait, purpose=f"commit of unit {self.unit_id}"):
            files = self._publish(extra_files)
            self._mark(marker, files)
            for rel in self._supersedes:  # invisible since the marker; recover() finishes this after a crash
                (self.lake.root / rel).unlink(missing_ok=True)
        self._release_staging()
        self._done = True
        return files

    def _publish(self, extra_files: Iterable[tuple[Path, Path]] = ()) -> list[str]:
        """Move the closed files into their partitions (and ``extra_files`` to theirs), durably; the lake paths."""
        files: list[str] = []
        moved: list[Path] = []
        unsynced: list[Path] = []
        for key, rel in self._paths.items():
            src = self._staged(key)
            dst = self.lake.obs_dir / rel
            make_dirs(dst.parent)
            os.replace(src, dst)
            moved.append(dst)
            if key not in self._synced:
                unsynced.append(dst)
            files.append(str(Path("observations") / rel))
        for src, rel in self._rewrites:
            dst = self.lake.obs_dir / rel
            make_dirs(dst.parent)
            os.replace(src, dst)
            moved.append(dst)
            unsynced.append(dst)
            files.append(str(Path("observations") / rel))
        for src, dst in extra_files:
            make_dirs(dst.parent)
            os.chmod(src, FILE_MODE)
            os.replace(src, dst)
            moved.append(dst)
            unsynced.append(dst)
        # Published files without a marker are removed by recover(), so the files and their directory entries
        # need only be durable before the marker: what is left is flushed at once, in parallel (fsync releases
        # the GIL).
        _fsync_all([*unsynced, *sorted({p.parent for p in moved})])
        return files

    def _mark(self, marker: dict[str, Any], files: list[str]) -> None:
        """Write the commit marker: from here on the unit is in the lake."""
        marker = dict(marker, unit_id=self.unit_id, files=sorted(files), rows=self._rows)
        if self._supersedes:
            marker["supersedes"] = sorted(set(self._supersedes))
        make_dirs(self.lake.commits_dir)
        write_json_atomic(self.lake.commits_dir / f"{self.unit_id}.json", marker)

    def abort(self) -> None:
        """Discard everything written by this unit."""
        self._join()
        self._shards = []
        self._error = None
        for w in self._writers.values():
            with contextlib.suppress(Exception):  # best effort while discarding
                w.close()
        self._release_staging()
        self._done = True


def _units_of(markers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    retired: set[str] = set()
    for m in markers.values():
        retired.update(m.get("retires", ()))
    out: dict[str, dict[str, Any]] = {}
    for mid, m in markers.items():
        if m.get("kind") == "compaction":
            continue
        if "units" in m:
            for u in m["units"]:
                out[str(u["unit_id"])] = dict(u, files=m.get("files", []), batch=mid)
        else:
            out[mid] = m
    return {k: v for k, v in out.items() if k not in retired}


class Lake:
    """The observation lake of a workspace."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.obs_dir = self.root / "observations"
        self.staging_dir = self.root / "_staging"
        self.commits_dir = self.root / "_commits"

    @property
    def lock_path(self) -> Path:
        return self.root / LOCK_NAME

    # -- the writer lock --------------------------------------------------------------------------
    def write_lock(self, *, wait: float = 0.0, purpose: str = "") -> WriterLock:
        """The lake's one-writer lock (a context manager; re-entrant in the thread that holds it).

        ``wait``: seconds to wait for another holder before :class:`BusyError`; ``purpose``: what the holder
        says it is doing (default: the command line).
        """
        return WriterLock(self.lock_path, wait=wait, purpose=purpose)

    def holds_write_lock(self) -> bool:
        """Whether the calling thread holds the lake's writer lock."""
        return WriterLock(self.lock_path).held()

    # -- commit protocol -------------------------------------------------------------------------
    def writer(self, unit_id: str, *, lock_wait: float = 0.0) -> LakeWriter:
        """A writer for a new unit (its staging is claimed for this process at once)."""
        if not _UNIT_RE.fullmatch(unit_id):
            raise StoreError(f"bad unit id {unit_id!r}")
        w = LakeWriter(lake=self, unit_id=unit_id, lock_wait=lock_wait)
        w._start()
        return w

    def markers(self) -> dict[str, dict[str, Any]]:
        """Commit markers as written, by their file's name: a unit's, a batch of units', or a compaction's."""
        out: dict[str, dict[str, Any]] = {}
        if not self.commits_dir.exists():
            return out
        for p in sorted(self.commits_dir.glob("*.json")):
            try:
                out[p.stem] = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as e:
                raise StoreError(
                    f"unreadable commit marker {p}: {e}", hint="restore it from backup or remove the unit's files"
                ) from e
        return out

    def committed_units(self) -> dict[str, dict[str, Any]]:
        """Commit markers by unit id: a batch's units each get their own (with the batch's ``files``); units a
        later commit retired (``atalaya ingest --replace``) and compactions are left out."""
        return _units_of(self.markers())

    def _visible(self, markers: dict[str, dict[str, Any]]) -> tuple[set[str], set[str]]:
        """Commit ids whose files are visible, and lake paths (``observations/…``) superseded by a rewrite."""
        superseded: set[str] = set()
        for m in markers.values():
            superseded.update(m.get("supersedes", ()))
        return set(markers), superseded

    def recover(self, quarantine_dir: Path | None = None, *, wait: float = 0.0) -> RecoveryReport:
        """Remove what dead writers left behind: their staging, published files without a marker, temp markers.

        Runs under the writer lock (waiting ``wait`` seconds for it, else :class:`BusyError`), so no unit is
        being published meanwhile; staging whose owner process is still alive is left alone.
        """
        with self.write_lock(wait=wait, purpose="lake recovery"):
            return self._recover(quarantine_dir)

    def _recover(self, quarantine_dir: Path | None) -> RecoveryReport:
        staging = kept = 0
        if self.staging_dir.exists():
            owners: dict[str, dict[str, Any]] = {}
            for p in self.staging_dir.glob("*.owner"):
                try:
                    info = json.loads(p.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    info = {}
                owners[p.stem] = info if isinstance(info, dict) else {}
            names = {p.name.removesuffix(".owner") for p in self.staging_dir.iterdir() if not p.name.startswith(".")}
            for unit in sorted(names):
                if _owner_alive(owners.get(unit, {}), unit):
                    kept += 1
                    continue
                d = self.staging_dir / unit
                if d.is_dir():
                    shutil.rmtree(d, ignore_errors=True)
                    staging += 1
                (self.staging_dir / f"{unit}.owner").unlink(missing_ok=True)
        markers = self.markers()
        committed, superseded = self._visible(markers)
        units = set(_units_of(markers))
        orphans = 0
        if self.obs_dir.exists():
            for p in self.obs_dir.glob("day=*/source=*/part-*.parquet"):
                m = _PART_RE.match(p.name)
                rel = str(p.relative_to(self.root))
                if m is None or m.group("unit") not in committed or rel in superseded:
                    p.unlink(missing_ok=True)  # a dead writer's, or replaced by a committed rewrite
                    orphans += 1
        if quarantine_dir is not None and quarantine_dir.exists():
            for p in quarantine_dir.glob("*.jsonl"):
                if p.stem not in units:
                    p.unlink(missing_ok=True)
        for tmp in self.commits_dir.glob("*.tmp") if self.commits_dir.exists() else ():
            tmp.unlink(missing_ok=True)
        return RecoveryReport(staging_removed=staging, orphan_files_removed=orphans, staging_kept=kept)

    def retire_unit(self, unit_id: str, quarantine_dir: Path | None = None) -> int:
        """Take a committed unit out of the lake (its marker first, then its files); the files removed.

        For a unit committed twice by an older Atalaya (two writers at once): the later copy holds no row the
        earlier one lacks. Needs the writer lock.
        """
        if not self.holds_write_lock():
            raise StoreError("retiring a unit needs the lake's writer lock", hint="take Lake.write_lock() first")
        marker_path = self.commits_dir / f"{unit_id}.json"
        if not _UNIT_RE.fullmatch(unit_id) or not marker_path.exists():
            return 0
        marker_path.unlink()
        _fsync_dir(self.commits_dir)
        removed = 0
        for p in self.obs_dir.glob(f"day=*/source=*/part-{unit_id}-*.parquet"):
            p.unlink(missing_ok=True)
            removed += 1
        if quarantine_dir is not None:
            (quarantine_dir / f"{unit_id}.jsonl").unlink(missing_ok=True)
        return removed

    def stage_removal(self, writer: LakeWriter, units: Iterable[str]) -> int:
        """Stage, in ``writer``, copies without the rows of ``units`` of every visible file holding some of them
        (their partitions are those of the units' markers); the copies replace the files when ``writer``
        commits. Returns the rows left out."""
        drop = set(units)
        all_units = self.committed_units()
        keys: set[tuple[str, str]] = set()
        for u in drop:
            for f in all_units.get(u, {}).get("files", ()):
                parts = Path(f).parts
                if len(parts) >= 3:
                    keys.add((parts[-3].removeprefix("day="), parts[-2].removeprefix("source=")))
        removed = 0
        for key in sorted(keys):
            for p in self.files(days=[key[0]], sources=[key[1]]):
                t = pq.read_table(p, schema=SCHEMA)
                runs = t.column("ingest_run").cast(pa.string()).to_pylist()
                mask = [r not in drop for r in runs]
                if all(mask):
                    continue
                kept = t.filter(pa.array(mask, type=pa.bool_()))
                removed += t.num_rows - kept.num_rows
                writer.add_rewrite(key, [kept], [str(p.relative_to(self.root))])
        return removed

    def compact(self, *, min_files: int = 2, wait: float = 0.0) -> dict[str, int]:
        """Rewrite each partition of ``min_files`` or more files into one file, atomically (one commit marker
        of kind ``compaction`` whose new files replace the old), under the writer lock. Returns counts."""
        from atalaya.core.ids import new_run_id

        with self.write_lock(wait=wait, purpose="lake compaction"):
            self._recover(None)
            by_key: dict[tuple[str, str], list[Path]] = {}
            for p in self.files():
                key = (p.parent.parent.name.removeprefix("day="), p.parent.name.removeprefix("source="))
                by_key.setdefault(key, []).append(p)
            todo = {k: v for k, v in by_key.items() if len(v) >= min_files}
            out = {"partitions": 0, "files_before": 0, "files_after": 0, "rows": 0}
            if not todo:
                return out
            writer = self.writer(new_run_id())
            try:
                for key, paths in sorted(todo.items()):
                    tables = (pq.read_table(p, schema=SCHEMA) for p in paths)
                    out["rows"] += writer.add_rewrite(key, tables, [str(p.relative_to(self.root)) for p in paths])
                    out["partitions"] += 1
                    out["files_before"] += len(paths)
                    out["files_after"] += 1
                writer.commit({"kind": "compaction", "committed_at": datetime.now(UTC).isoformat()})
            except BaseException:
                writer.abort()
                raise
            return out

    # -- reading -----------------------------------------------------------------------------------
    def files(self, *, days: Iterable[str] | None = None, sources: Iterable[str] | None = None) -> list[Path]:
        """Committed Parquet files, optionally restricted to some partitions."""
        committed, superseded = self._visible(self.markers())
        day_set = set(days) if days is not None else None
        src_set = set(sources) if sources is not None else None
        out: list[Path] = []
        if not self.obs_dir.exists():
            return out
        for p in sorted(self.obs_dir.glob("day=*/source=*/part-*.parquet")):
            m = _PART_RE.match(p.name)
            if m is None or m.group("unit") not in committed or str(p.relative_to(self.root)) in superseded:
                continue
            day = p.parent.parent.name.removeprefix("day=")
            src = p.parent.name.removeprefix("source=")
            if (day_set is None or day in day_set) and (src_set is None or src in src_set):
                out.append(p)
        return out

    def connect(self, con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with the view ``observations`` over the committed files (plus ``day``, ``source``)."""
        con = con or duckdb.connect()
        files = self.files()
        if files:
            file_list = ", ".join("'" + str(p).replace("'", "''") + "'" for p in files)
            con.execute(
                f"CREATE OR REPLACE VIEW observations AS SELECT * FROM read_parquet([{file_list}], "
                "hive_partitioning = true, hive_types_autocast = false, union_by_name = true)"
            )
        else:
            cols = ", ".join(f"CAST(NULL AS {_duck_type(f.type)}) AS {f.name}" for f in SCHEMA)
            con.execute(
                f"CREATE OR REPLACE VIEW observations AS SELECT {cols}, CAST(NULL AS VARCHAR) AS day, "
                "CAST(NULL AS VARCHAR) AS source WHERE false"
            )
        return con

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run SQL over the ``observations`` view and return an Arrow table."""
        con = self.connect()
        try:
            return fetch_arrow(con.sql(sql, params=params or None))
        except duckdb.Error as e:
            raise StoreError(f"lake query failed: {e}\n  SQL: {sql}") from e
        finally:
            con.close()

    def existing_id_keys(self, day: str, source: str) -> np.ndarray:
        """First 64 bits of the obs ids already committed in one partition (for de-duplication)."""
        return self.existing_id_keys_by_partition([(day, source)])[(day, source)]

    def existing_id_keys_by_partition(
        self, partitions: Iterable[tuple[str, str]], *, exclude_units: Iterable[str] = ()
    ) -> dict[tuple[str, str], np.ndarray]:
        """:meth:`existing_id_keys` of several ``(day, source)`` partitions, listing the committed files once
        (rows of ``exclude_units`` left out: units being replaced)."""
        wanted = set(partitions)
        excluded = set(exclude_units)
        found: dict[tuple[str, str], list[np.ndarray]] = {}
        for p in self.files(days={d for d, _ in wanted}, sources={s for _, s in wanted}):
            key = (p.parent.parent.name.removeprefix("day="), p.parent.name.removeprefix("source="))
            if key in wanted:
                t = pq.read_table(p, columns=["obs_id", "ingest_run"] if excluded else ["obs_id"])
                if excluded:
                    runs = t.column("ingest_run").cast(pa.string()).to_pylist()
                    t = t.filter(pa.array([r not in excluded for r in runs], type=pa.bool_()))
                found.setdefault(key, []).append(id_keys(t.column("obs_id").combine_chunks()))
        empty = np.zeros(0, dtype=np.uint64)
        return {k: np.concatenate(found[k]) if k in found else empty for k in wanted}


def bucket_count(n_rows: int, bucket_rows: int) -> int:
    """Buckets of about ``bucket_rows`` rows that ``n_rows`` make (``bucket_rows`` 0 or less: one, all at once);
    a bucket is the rows whose key hashes to it, ``hash(key) % count = bucket`` in DuckDB.

    >>> bucket_count(9_000_001, 4_000_000), bucket_count(10, 4_000_000), bucket_count(10, 0), bucket_count(0, 5)
    (3, 1, 1, 1)
    """
    return max(1, -(-n_rows // bucket_rows)) if bucket_rows > 0 else 1


def fetch_arrow(result: duckdb.DuckDBPyRelation) -> pa.Table:
    """A DuckDB relation as an Arrow table (DuckDB 1.x and 2.x spell it differently)."""
    fn = getattr(result, "to_arrow_table", None) or result.arrow
    table: pa.Table = fn()
    return table


def id_keys(ids: pa.Array) -> np.ndarray:
    """The first 8 bytes (big-endian) of each 16-byte obs id, as uint64."""
    if len(ids) == 0:
        return np.zeros(0, dtype=np.uint64)
    buf = ids.buffers()[1]
    arr = np.frombuffer(buf, dtype=">u8", count=(ids.offset + len(ids)) * 2)
    return arr.reshape(-1, 2)[ids.offset :, 0].astype(np.uint64)


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_float32(t):
        return "FLOAT"
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_fixed_size_binary(t):
        return "BLOB"
    return "VARCHAR"
