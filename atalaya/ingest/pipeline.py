"""The ingest pipeline: the same steps for every format.

For each input file (an *ingest unit*):

1. hash the file; a file already committed with the same format and source is
   skipped (re-running an import is idempotent). Equal hashes need equal sizes, so
   when no committed unit of that format and source has the file's size the hash
   is computed on a background thread while the file is read, and only recorded;
2. stream it through its reader; validate each batch (vectorised), quarantine
   bad records with their reason and location;
3. compute content-hash ids and write the good rows to staging partitions;
4. de-duplicate against the unit itself and the lake (first occurrence wins);
5. commit atomically (lake marker), then record the unit and its quarantine in
   the knowledge store. :func:`reconcile` repairs the knowledge store if a
   crash fell between the two.

One writer at a time: an ingest holds the lake's writer lock
(:meth:`Lake.write_lock`) from its recovery to its last file, so the check
"already ingested", the commit and the knowledge-store row of each unit happen
with no other writer in between, and each file is committed exactly once. A
second ingest (another process, an API job) gets a
:class:`~atalaya.core.errors.BusyError` naming the holder, or waits
(``wait``, ``ATALAYA_LOCK_WAIT``).

A crash or Ctrl-C before the marker leaves no trace once :meth:`Lake.recover`
runs (every ingest starts with it, under the lock).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import pyarrow as pa
from sqlalchemy import delete, select

from atalaya.core.errors import AtalayaError, IngestError
from atalaya.core.ids import float_bits, hash_columns, hash_string_codes, hash_strings, ids_to_arrow, new_run_id
from atalaya.core.markings import Marking
from atalaya.core.workspace import Workspace
from atalaya.ingest.base import ParsedBatch, Reader, ReadOptions, Reject
from atalaya.ingest.dedupe import keep_mask
from atalaya.ingest.registry import detect_format, get_reader
from atalaya.ingest.validate import (
    US_PER_DAY,
    Bounds,
    bool_array,
    from_numpy,
    np_values,
    rejects_from,
    string_array,
    to_arrow,
    valid_mask,
)
from atalaya.model.observation import SCHEMA
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.lake import Lake, LakeWriter, open_private

IGNORED_NAMES = frozenset({"README.md", "README", "MANIFEST.csv", "SOURCES.md"})


@dataclass(kw_only=True)
class UnitResult:
    """Outcome of ingesting one file."""

    path: str
    """The file as given."""
    format: str = ""
    """Format used."""
    source: str = ""
    """Source (partition key)."""
    status: str = "ingested"
    """``ingested``, ``skipped`` (already ingested) or ``failed``."""
    unit_id: str = ""
    """Unit id (32 hex) when ingested."""
    records: int = 0
    """Input records read."""
    accepted: int = 0
    """Rows written to the lake."""
    quarantined: int = 0
    """Records sent to the quarantine."""
    duplicates: int = 0
    """Rows skipped as duplicates (same content id within the file or already in the lake)."""
    bytes: int = 0
    """File size."""
    reasons: dict[str, int] = field(default_factory=dict)
    """Quarantine reasons and their counts."""
    error: str = ""
    """Why the file failed as a whole (status ``failed``)."""
    notes: dict[str, int] = field(default_factory=dict)
    """Auxiliary fields normalised or nulled in kept rows (``"course_deg normalised"``: count)."""
    replaced: list[str] = field(default_factory=list)
    """Earlier units of the same file this one replaced (``--replace``)."""
    seconds: float = 0.0
    """Wall time."""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(kw_only=True)
class IngestSummary:
    """Outcome of an ingest run over many files."""

    run_id: str
    """Run id."""
    units: list[UnitResult] = field(default_factory=list)
    """Per-file results."""

    def totals(self) -> dict[str, int]:
        t: Counter[str] = Counter()
        for u in self.units:
            t["files"] += 1
            t[f"files_{u.status}"] += 1
            for k in ("records", "accepted", "quarantined", "duplicates", "bytes"):
                t[k] += getattr(u, k)
        return dict(t)

    def reasons(self) -> dict[str, int]:
        c: Counter[str] = Counter()
        for u in self.units:
            c.update(u.reasons)
        return dict(c.most_common())

    def notes(self) -> dict[str, int]:
        c: Counter[str] = Counter()
        for u in self.units:
            c.update(u.notes)
        return dict(c.most_common())

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "totals": self.totals(),
            "quarantine_reasons": self.reasons(),
            "field_notes": self.notes(),
            "units": [u.to_dict() for u in self.units],
        }


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files named directly, and files under named directories (sorted, hidden files and READMEs skipped)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p)
                if f.is_file() and not any(part.startswith(".") for part in rel.parts) and f.name not in IGNORED_NAMES:
                    out.append(f)
        elif p.exists():
            out.append(p)
        else:
            raise IngestError(f"no such file or directory: {p}", hint="check the path")
    return out


def file_sha256(path: Path) -> str:
    return _file_digest(path)[0]


def _file_digest(path: Path, stop: threading.Event | None = None) -> tuple[str, int]:
    """SHA-256 (hex) and length of the file's bytes, read into one reused buffer (hashlib releases the GIL)."""
    h = hashlib.sha256()
    n = 0
    buf = bytearray(1 << 20)
    with open(path, "rb") as fh, memoryview(buf) as view:
        while k := fh.readinto(buf):
            if stop is not None and stop.is_set():
                break
            h.update(view[:k])
            n += k
    return h.hexdigest(), n


class _BackgroundDigest:
    """:func:`_file_digest` on its own thread, started at once; :meth:`result` waits for it."""

    def __init__(self, path: Path) -> None:
        self._stop = threading.Event()
        self._out: tuple[str, int] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(path,), name="atalaya-sha256", daemon=True)
        self._thread.start()

    def _run(self, path: Path) -> None:
        try:
            self._out = _file_digest(path, self._stop)
        except BaseException as e:  # re-raised by result() in the caller's thread
            self._error = e

    def result(self) -> tuple[str, int]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._out is not None
        return self._out

    def cancel(self) -> None:
        self._stop.set()


class _TapDigest:
    """SHA-256 and length of the bytes a reader passes on as it reads a file (its ``tap``)."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._n = 0

    def __call__(self, data: bytes | bytearray | memoryview) -> None:
        self._sha.update(data)
        self._n += len(data)

    def result(self) -> tuple[str, int]:
        return self._sha.hexdigest(), self._n


DigestFn = Callable[[], tuple[str, int]]
Tap = Callable[[bytes | bytearray | memoryview], None]


class _TappingReader(Protocol):
    """A reader that can pass a file's bytes, as it reads them, to a ``tap`` (the CSV reader)."""

    def taps(self, path: Path) -> bool: ...

    def read(self, path: Path, options: ReadOptions, *, tap: Tap | None = None) -> Iterator[ParsedBatch]: ...


def _tapping(reader: Reader, path: Path) -> _TappingReader | None:
    """``reader`` when it can tap this file's own bytes (not when it decompresses them), else ``None``."""
    taps = getattr(reader, "taps", None)
    return cast(_TappingReader, reader) if callable(taps) and taps(path) else None


def _warm_up_arrow() -> None:
    """Start, on a thread of its own, the import pyarrow makes the first time it converts a NumPy array (pandas,
    when installed: ~0.2 s holding the GIL). Begun at once it overlaps the first block's read and parse, which
    run without the GIL; left to the first conversion it stalls every thread at the start of the first file.
    Readers marked ``arrow_native`` (CSV) convert through Arrow buffers only and need no warm-up: for them the
    import, and its CPU time, is skipped altogether."""
    if "pandas" in sys.modules or importlib.util.find_spec("pandas") is None:
        return
    threading.Thread(target=pa.array, args=(np.zeros(1),), name="atalaya-warm-up", daemon=True).start()


_POOL_LOCK = threading.Lock()
_POOL_USERS = 0
_POOL_SAVED: pa.MemoryPool | None = None


@contextlib.contextmanager
def _malloc_for_arrow() -> Iterator[None]:
    """Arrow allocates from the C library's malloc while units are ingested, then from its default pool again.

    The wheels' default pool (mimalloc) hands freed memory back to the system within milliseconds and faults
    it in again, as transparent huge pages zeroed 2 MB at a time; an ingest frees and allocates some 100 MB
    per batch, which that way costs ~0.3 s of system time per 2M CSV rows more than with malloc. Arrays keep
    the pool they came from, so switching the default pool is safe; nested and concurrent ingests share one
    switch.
    """
    global _POOL_USERS, _POOL_SAVED
    with _POOL_LOCK:
        if _POOL_USERS == 0:
            current = pa.default_memory_pool()
            if current.backend_name == "mimalloc":
                _POOL_SAVED = current
                pa.set_memory_pool(pa.system_memory_pool())
        _POOL_USERS += 1
    try:
        yield
    finally:
        with _POOL_LOCK:
            _POOL_USERS -= 1
            if _POOL_USERS == 0 and _POOL_SAVED is not None:
                pa.set_memory_pool(_POOL_SAVED)
                _POOL_SAVED = None


def _source_name(fmt: str, source: str | None) -> str:
    s = (source or fmt).strip().lower()
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in s) or fmt


ProgressFn = Callable[[int], None]
Sink = Callable[[pa.Table, np.ndarray, np.ndarray], None]
_Key = tuple[str, str]

SMALL_FILE_BYTES = 1 << 20
"""Files up to this size are ingested in batches: one commit and one Parquet file per partition for many."""
BATCH_BYTES = 64 << 20
BATCH_FILES = 50_000


@dataclass(kw_only=True)
class Ingestor:
    """Runs ingest units against one workspace's lake and knowledge store."""

    workspace: Workspace
    """Target workspace."""
    store: KnowledgeStore
    """Its knowledge store."""
    marking: Marking
    """Marking applied to everything ingested in this run."""
    options: ReadOptions = field(default_factory=ReadOptions)
    """Reader options."""
    bounds: Bounds = field(default_factory=Bounds)
    """Accepted time range."""
    run_id: str = field(default_factory=new_run_id)
    """This run."""
    readers: Mapping[str, Reader] = field(default_factory=dict)
    """Extra or replacement readers by format name (plugins, test doubles); the registry serves the rest."""
    lock_wait: float | None = None
    """Seconds to wait for the lake's writer lock (None: the workspace's ``lock_wait``)."""
    replace: bool = False
    """Re-ingest files already ingested, replacing the earlier units' rows and quarantine (one commit)."""
    _ids: dict[_Key, np.ndarray] = field(default_factory=dict, repr=False)
    """Id keys of the lake's partitions looked up so far under the lock held now (kept current by commits)."""

    @property
    def lake(self) -> Lake:
        return Lake(self.workspace.lake_dir)

    def _wait(self) -> float:
        return self.workspace.lock_wait if self.lock_wait is None else self.lock_wait

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the lake's writer lock (waiting :attr:`lock_wait`, else :class:`BusyError`) and :meth:`prepare`.

        Files ingested inside share the one lock; :meth:`ingest_file` outside it takes the lock per file.
        """
        with self.lake.write_lock(wait=self._wait(), purpose=_purpose(self.run_id)):
            self._ids.clear()
            try:
                self.prepare()
                yield
            finally:
                self._ids.clear()

    def _existing(self, keys: Iterable[_Key], exclude: Sequence[str] = ()) -> dict[_Key, np.ndarray]:
        """The lake's id keys per partition; each partition's files are read once per run (under the lock)."""
        keys = list(keys)
        if exclude:
            return self.lake.existing_id_keys_by_partition(keys, exclude_units=exclude)
        missing = [k for k in keys if k not in self._ids]
        if missing:
            self._ids.update(self.lake.existing_id_keys_by_partition(missing))
        return {k: self._ids[k] for k in keys}

    def _remember(self, keys: Mapping[_Key, np.ndarray], keeps: Mapping[_Key, np.ndarray]) -> None:
        for k, ids in keys.items():
            if k in self._ids:
                self._ids[k] = np.concatenate([self._ids[k], ids[keeps[k]]])

    def prior_units(self, sha256: str, source: str) -> list[str]:
        """Committed units of a file with this hash and source (any format): what ``--replace`` replaces."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(ks.ingest_units.c.id).where(
                    ks.ingest_units.c.sha256 == sha256, ks.ingest_units.c.source == source
                )
            ).all()
        return [str(r[0]) for r in rows]

    def prepare(self) -> None:
        """Recover from interrupted runs and bring the knowledge store in line with the lake (under the lock)."""
        with self.lake.write_lock(wait=self._wait(), purpose=_purpose(self.run_id)):
            self.lake.recover(self.workspace.quarantine_dir)
            reconcile(self.workspace, self.store)

    def already_ingested(self, sha256: str, fmt: str, source: str) -> str | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(
                select(ks.ingest_units.c.id).where(
                    ks.ingest_units.c.sha256 == sha256,
                    ks.ingest_units.c.format == fmt,
                    ks.ingest_units.c.source == source,
                )
            ).first()
        return None if row is None else str(row[0])

    def committed_with_size(self, size: int, fmt: str, source: str) -> bool:
        """Whether a committed unit of this format and source had a file of ``size`` bytes (else no equal hash)."""
        with self.store.engine.connect() as conn:
            row = conn.execute(
                select(ks.ingest_units.c.id)
                .where(
                    ks.ingest_units.c.bytes == size,
                    ks.ingest_units.c.format == fmt,
                    ks.ingest_units.c.source == source,
                )
                .limit(1)
            ).first()
        return row is not None

    def ingest_file(
        self, path: Path, *, fmt: str | None = None, source: str | None = None, progress: ProgressFn | None = None
    ) -> UnitResult:
        """Ingest one file as a unit, under the lake's writer lock (taken here unless :meth:`writing` holds it).

        Raises only for interruption and :class:`BusyError`; failures are reported in the result.
        """
        if self.lake.holds_write_lock():
            with _malloc_for_arrow():
                return self._ingest_file(path, fmt=fmt, source=source, progress=progress)
        with self.writing(), _malloc_for_arrow():
            return self._ingest_file(path, fmt=fmt, source=source, progress=progress)

    def _ingest_file(
        self, path: Path, *, fmt: str | None, source: str | None, progress: ProgressFn | None
    ) -> UnitResult:
        t0 = time.perf_counter()
        res = UnitResult(path=str(path), bytes=path.stat().st_size if path.exists() else 0)
        try:
            res.format = fmt or detect_format(path)
            reader = self.readers.get(res.format) or get_reader(res.format)  # fails with the known formats
            if not getattr(reader, "arrow_native", False):
                _warm_up_arrow()
            res.source = _source_name(res.format, source)
            mtime_ns = path.stat().st_mtime_ns  # before hashing: a change from here on fails the unit
            options = self.options
            if options.received_at_mtime and options.reference_time_us is None:
                options = replace(options, reference_time_us=mtime_ns // 1000)  # --received-at mtime
            if self.replace:
                digest = _file_digest(path)
                prior_units = self.prior_units(digest[0], res.source)
                self._run_unit(path, reader.read(path, options), lambda: digest, mtime_ns, res, progress,
                               replaces=prior_units)  # fmt: skip
            elif self.committed_with_size(res.bytes, res.format, res.source):
                digest = _file_digest(path)
                prior = self.already_ingested(digest[0], res.format, res.source)
                if prior:
                    res.status, res.unit_id = "skipped", prior
                    if progress:
                        progress(res.bytes)
                    return res
                self._run_unit(path, reader.read(path, options), lambda: digest, mtime_ns, res, progress)
            elif (tapping := _tapping(reader, path)) is not None:
                tap = _TapDigest()  # cannot be a re-run: hash the bytes as the reader reads them (read once)
                self._run_unit(path, tapping.read(path, options, tap=tap), tap.result, mtime_ns, res, progress)
            else:  # cannot be a re-run: hash while reading
                background = _BackgroundDigest(path)
                try:
                    self._run_unit(path, reader.read(path, options), background.result, mtime_ns, res, progress)
                finally:
                    background.cancel()
        except AtalayaError as e:
            res.status, res.error = "failed", str(e)
        except OSError as e:
            res.status, res.error = "failed", f"cannot read {path}: {e}"
        res.seconds = round(time.perf_counter() - t0, 3)
        return res

    def _run_unit(
        self,
        path: Path,
        batches: Iterator[ParsedBatch],
        digest: DigestFn,
        mtime_ns: int,
        res: UnitResult,
        progress: ProgressFn | None,
        *,
        replaces: Sequence[str] = (),
    ) -> None:
        unit_id = new_run_id()
        writer = self.lake.writer(unit_id, lock_wait=self._wait())
        qpath = writer.staging / "quarantine.jsonl"
        keys: dict[tuple[str, str], list[np.ndarray]] = {}
        reasons: Counter[str] = Counter()
        started = datetime.now(UTC)
        now_us = int(time.time() * 1e6)
        marking_text = self.marking.to_text()
        src_hash = hash_strings([res.source])[0]
        try:
            with open_private(qpath) as qf:
                for batch in batches:
                    res.records += batch.records_read
                    rejects = list(batch.rejects)
                    if len(batch):
                        sink = _writer_sink(writer, res.source)
                        rejects += self._write_batch(batch, sink, keys, src_hash, marking_text, unit_id, path,
                                                     res, now_us)  # fmt: skip
                    for r in rejects:
                        reasons[_reason_key(r.reason)] += 1
                        qf.write(
                            json.dumps(
                                {"src_rec": r.src_rec, "reason": r.reason, "raw": r.raw, "format": res.format},
                                ensure_ascii=False,
                            )
                            + "\n"
                        )
                    res.quarantined += len(rejects)
                    if progress and batch.bytes_read:
                        progress(batch.bytes_read)
            # which rows repeat an earlier one or the lake, found while the writer threads finish their last parts
            existing = self._existing(keys, exclude=replaces)
            all_ids = {key: np.concatenate(parts) for key, parts in keys.items()}
            keeps = {key: keep_mask(all_ids[key], existing[key]) for key in all_ids}
            writer.close_files()
            for key, keep in keeps.items():
                if not keep.all():
                    res.duplicates += writer.rewrite_partition(key, keep)
            res.accepted = writer.rows
            res.reasons = dict(reasons.most_common())
            res.unit_id = unit_id
            sha, hashed = digest()
            st = path.stat()
            if hashed != res.bytes or st.st_size != res.bytes or st.st_mtime_ns != mtime_ns:
                raise IngestError(
                    f"{path} changed while it was being ingested ({res.bytes} bytes, now {st.st_size})",
                    hint="ingest a file once it is complete",
                )
            marker = {
                "run_id": self.run_id,
                "path": str(path),
                "sha256": sha,
                "format": res.format,
                "source": res.source,
                "marking": marking_text,
                "started_at": started.isoformat(),
                "committed_at": datetime.now(UTC).isoformat(),
                "records": res.records,
                "accepted": res.accepted,
                "quarantined": res.quarantined,
                "duplicates": res.duplicates,
                "bytes": res.bytes,
                "reasons": res.reasons,
            }
            if replaces:
                marker["retires"] = sorted(replaces)
                self.lake.stage_removal(writer, replaces)
            # a clean unit leaves no quarantine file behind
            qfiles = [(qpath, self.workspace.quarantine_dir / f"{unit_id}.jsonl")] if res.quarantined else []
            writer.commit(marker, extra_files=qfiles)
        except BaseException:
            writer.abort()
            raise
        if replaces:
            self._ids.clear()
            for old in replaces:  # reconcile() does this after a crash here
                _forget_unit(self.store, old)
                (self.workspace.quarantine_dir / f"{old}.jsonl").unlink(missing_ok=True)
            res.replaced = list(replaces)
        else:
            self._remember(all_ids, keeps)
        record_unit(self.store, dict(marker, unit_id=unit_id), self.workspace.quarantine_dir / f"{unit_id}.jsonl")

    def ingest_batch(
        self, paths: Sequence[Path], *, fmt: str | None = None, source: str | None = None
    ) -> list[UnitResult]:
        """Ingest small files as one batch: each file is its own unit (its ``ingest_units`` row, its quarantine,
        skipped when ingested again), but all share one commit marker and one Parquet file per partition.

        A file that fails leaves nothing in the batch; the batch commits whole or not at all. Needs the lake's
        writer lock (taken here unless held).
        """
        if not self.lake.holds_write_lock():
            with self.writing():
                return self.ingest_batch(paths, fmt=fmt, source=source)
        with _malloc_for_arrow():
            return self._ingest_batch(paths, fmt=fmt, source=source)

    def _ingest_batch(self, paths: Sequence[Path], *, fmt: str | None, source: str | None) -> list[UnitResult]:
        batch_id = new_run_id()
        writer = self.lake.writer(batch_id, lock_wait=self._wait())
        results: list[UnitResult] = []
        units: list[tuple[UnitResult, dict[str, Any], list[str]]] = []
        seen: dict[tuple[str, str, str], str] = {}
        keys: dict[_Key, list[np.ndarray]] = {}
        owners: dict[_Key, list[int]] = {}
        now_us = int(time.time() * 1e6)
        marking_text = self.marking.to_text()
        try:
            for path in paths:
                t0 = time.perf_counter()
                res = UnitResult(path=str(path), bytes=path.stat().st_size if path.exists() else 0)
                results.append(res)
                started = datetime.now(UTC)
                try:
                    res.format = fmt or detect_format(path)
                    reader = self.readers.get(res.format) or get_reader(res.format)
                    res.source = _source_name(res.format, source)
                    mtime_ns = path.stat().st_mtime_ns
                    options = self.options
                    if options.received_at_mtime and options.reference_time_us is None:
                        options = replace(options, reference_time_us=mtime_ns // 1000)
                    sha, hashed = _file_digest(path)
                    prior = seen.get((sha, res.format, res.source)) or self.already_ingested(
                        sha, res.format, res.source
                    )
                    if prior:
                        res.status, res.unit_id = "skipped", prior
                        continue
                    unit_id = new_run_id()
                    buf: list[tuple[pa.Table, np.ndarray, np.ndarray]] = []
                    unit_keys: dict[_Key, list[np.ndarray]] = {}
                    qlines: list[str] = []
                    reasons: Counter[str] = Counter()
                    src_hash = hash_strings([res.source])[0]
                    for batch in reader.read(path, options):
                        res.records += batch.records_read
                        rejects = list(batch.rejects)
                        if len(batch):
                            rejects += self._write_batch(batch, _buffer_sink(buf), unit_keys, src_hash,
                                                         marking_text, unit_id, path, res, now_us)  # fmt: skip
                        for r in rejects:
                            reasons[_reason_key(r.reason)] += 1
                            qlines.append(json.dumps({"src_rec": r.src_rec, "reason": r.reason, "raw": r.raw,
                                                      "format": res.format}, ensure_ascii=False))  # fmt: skip
                        res.quarantined += len(rejects)
                    st = path.stat()
                    if hashed != res.bytes or st.st_size != res.bytes or st.st_mtime_ns != mtime_ns:
                        raise IngestError(f"{path} changed while it was being ingested", hint="ingest it once complete")
                except AtalayaError as e:
                    res.status, res.error = "failed", str(e)
                    continue
                except OSError as e:
                    res.status, res.error = "failed", f"cannot read {path}: {e}"
                    continue
                finally:
                    res.seconds = round(time.perf_counter() - t0, 3)
                for t, di, d in buf:
                    writer.write(t, di, res.source, days=d)
                for key, parts in unit_keys.items():
                    keys.setdefault(key, []).extend(parts)
                    owners.setdefault(key, []).extend([len(units)] * len(parts))
                res.accepted = sum(t.num_rows for t, _, _ in buf)
                res.reasons = dict(reasons.most_common())
                res.unit_id = unit_id
                seen[(sha, res.format, res.source)] = unit_id
                marker = {
                    "unit_id": unit_id,
                    "run_id": self.run_id,
                    "path": str(path),
                    "sha256": sha,
                    "format": res.format,
                    "source": res.source,
                    "marking": marking_text,
                    "started_at": started.isoformat(),
                    "bytes": res.bytes,
                }
                units.append((res, marker, qlines))
            if not units:
                writer.abort()
                return results
            all_ids = {key: np.concatenate(parts) for key, parts in keys.items()}
            existing = self._existing(all_ids)
            keeps = {key: keep_mask(all_ids[key], existing[key]) for key in all_ids}
            writer.close_files()
            for key, keep in keeps.items():
                if keep.all():
                    continue
                writer.rewrite_partition(key, keep)
                pos = 0
                for part, owner in zip(keys[key], owners[key], strict=True):
                    dropped = int(len(part) - np.count_nonzero(keep[pos : pos + len(part)]))
                    pos += len(part)
                    units[owner][0].duplicates += dropped
                    units[owner][0].accepted -= dropped
            committed_at = datetime.now(UTC).isoformat()
            qfiles: list[tuple[Path, Path]] = []
            markers = []
            for res, marker, qlines in units:
                marker.update(committed_at=committed_at, records=res.records, accepted=res.accepted,
                              quarantined=res.quarantined, duplicates=res.duplicates, reasons=res.reasons)  # fmt: skip
                markers.append(marker)
                if qlines:
                    staged = writer.staging / f"q-{res.unit_id}.jsonl"
                    with open_private(staged) as qf:
                        qf.write("\n".join(qlines) + "\n")
                    qfiles.append((staged, self.workspace.quarantine_dir / f"{res.unit_id}.jsonl"))
            writer.commit({"run_id": self.run_id, "committed_at": committed_at, "units": markers}, extra_files=qfiles)
        except BaseException:
            writer.abort()
            raise
        self._remember(all_ids, keeps)
        record_units(self.store, markers, self.workspace.quarantine_dir)
        return results

    def _write_batch(
        self,
        batch: ParsedBatch,
        sink: Sink,
        keys: dict[tuple[str, str], list[np.ndarray]],
        src_hash: np.uint64,
        marking_text: str,
        unit_id: str,
        path: Path,
        res: UnitResult,
        now_us: int,
    ) -> list[Reject]:
        arrays, keep, problems = to_arrow(batch.columns, self.bounds, now_us, notes=res.notes)
        rejects = rejects_from(arrays, problems)
        if problems:
            mask = bool_array(keep)
            arrays = {k: v.filter(mask) for k, v in arrays.items()}
        n = len(arrays["time"])
        if n == 0:
            return rejects
        t_us = np_values(arrays["time"], np.int64)  # no nulls: rows without a time were rejected
        alt = arrays["alt_m"]
        alt_values = np_values(alt, np.float32).astype(np.float64)
        alt_valid = valid_mask(alt)
        if alt_valid is not None:
            alt_values[~alt_valid] = np.nan
        lanes = hash_columns(
            [
                src_hash,  # the same in every row
                hash_string_codes(arrays["sensor"]),  # dictionary-encoded: hashed and mixed per distinct value
                t_us.view(np.uint64),
                float_bits(np_values(arrays["lon"], np.float64), 7),
                float_bits(np_values(arrays["lat"], np.float64), 7),
                float_bits(alt_values, 1),
                hash_strings(arrays["ident"]),
                hash_string_codes(arrays["kind"]),
            ]
        )
        obs_id = ids_to_arrow(*lanes)
        consts = {
            "marking": marking_text,
            "format": res.format,
            "src_file": str(path),
            "ingest_run": unit_id,
        }
        zeros = from_numpy(np.zeros(n, dtype=np.int32), pa.int32())
        cols: list[pa.Array] = []
        for f in SCHEMA:
            if f.name == "obs_id":
                cols.append(obs_id)
            elif f.name in consts:
                cols.append(pa.DictionaryArray.from_arrays(zeros, string_array([consts[f.name]])))
            else:
                cols.append(arrays[f.name])
        table = pa.Table.from_arrays(cols, schema=SCHEMA)
        day_index = t_us // US_PER_DAY
        lo, hi = int(day_index.min()), int(day_index.max())
        if lo == hi:
            days = np.array([lo])
        elif hi - lo < 1 << 16:  # a span of days: count them instead of sorting the rows
            days = np.flatnonzero(np.bincount(day_index - lo)) + lo
        else:
            days = np.unique(day_index)
        sink(table, day_index, days)
        ids_a = lanes[0]
        for d in days:
            day = str(np.datetime64(int(d), "D"))
            keys.setdefault((day, res.source), []).append(ids_a if len(days) == 1 else ids_a[day_index == d])
        return rejects


def _reason_key(reason: str) -> str:
    """Group reasons by their stable prefix (before a colon with record-specific detail)."""
    return reason.split(":", 1)[0].strip()[:120]


def _writer_sink(writer: LakeWriter, source: str) -> Sink:
    def sink(table: pa.Table, day_index: np.ndarray, days: np.ndarray) -> None:
        writer.write(table, day_index, source, days=days)

    return sink


def _buffer_sink(buf: list[tuple[pa.Table, np.ndarray, np.ndarray]]) -> Sink:
    def sink(table: pa.Table, day_index: np.ndarray, days: np.ndarray) -> None:
        buf.append((table, day_index, days))

    return sink


def record_units(store: KnowledgeStore, markers: Sequence[dict[str, Any]], quarantine_dir: Path) -> None:
    """Record committed units (a batch) and their quarantine in the knowledge store: one transaction."""
    with store.begin() as conn:
        for m in markers:
            _record(conn, m, quarantine_dir / f"{m['unit_id']}.jsonl")


def record_unit(store: KnowledgeStore, marker: dict[str, Any], quarantine_file: Path) -> None:
    """Record a committed unit and its quarantine in the knowledge store (one transaction, idempotent)."""
    with store.begin() as conn:
        _record(conn, marker, quarantine_file)


def _record(conn: Any, marker: dict[str, Any], quarantine_file: Path) -> None:
    rows = []
    if quarantine_file.exists():
        with open(quarantine_file, encoding="utf-8") as fh:
            for line in fh:
                q = json.loads(line)
                rows.append(
                    {
                        "unit_id": marker["unit_id"],
                        "format": q.get("format", marker["format"]),
                        "path": marker["path"],
                        "src_rec": int(q["src_rec"]),
                        "reason": q["reason"],
                        "raw": q.get("raw", ""),
                    }
                )
    if True:
        exists = conn.execute(select(ks.ingest_units.c.id).where(ks.ingest_units.c.id == marker["unit_id"])).first()
        if exists:
            return
        conn.execute(
            ks.ingest_units.insert().values(
                id=marker["unit_id"],
                run_id=marker["run_id"],
                path=marker["path"],
                sha256=marker["sha256"],
                format=marker["format"],
                source=marker["source"],
                started_at=datetime.fromisoformat(marker["started_at"]),
                committed_at=datetime.fromisoformat(marker["committed_at"]),
                records=marker["records"],
                accepted=marker["accepted"],
                quarantined=marker["quarantined"],
                duplicates=marker["duplicates"],
                bytes=marker["bytes"],
                summary={"reasons": marker.get("reasons", {}), "files": marker.get("files", [])},
                marking=marker["marking"],
                provenance={"run_id": marker["run_id"], "path": marker["path"]},
            )
        )
        for i in range(0, len(rows), 5000):
            conn.execute(ks.quarantine.insert(), rows[i : i + 5000])


def _forget_unit(store: KnowledgeStore, unit_id: str) -> None:
    """Delete a unit's knowledge-store row and its quarantine rows (one transaction)."""
    with store.begin() as conn:
        conn.execute(delete(ks.quarantine).where(ks.quarantine.c.unit_id == unit_id))
        conn.execute(delete(ks.ingest_units).where(ks.ingest_units.c.id == unit_id))


def reconcile(workspace: Workspace, store: KnowledgeStore) -> int:
    """Bring the knowledge store in line with the lake's commit markers, under the lake's writer lock.

    A unit committed in the lake but not recorded (a crash between the two) is recorded. A file committed
    more than once (two ingests at once, before the lock existed) keeps its first commit; each later copy is
    taken out of the knowledge store, then out of the lake: it holds no row that the first commit and the rest
    of the lake lack (its rows were either de-duplicated against the first or the same rows again). Returns
    the units recorded or retired.
    """
    lake = Lake(workspace.lake_dir)
    with lake.write_lock(wait=workspace.lock_wait, purpose="knowledge-store reconcile"):
        markers = lake.committed_units()
        retired = {u for m in lake.markers().values() for u in m.get("retires", ())}
        with store.engine.connect() as conn:
            known = {r[0] for r in conn.execute(select(ks.ingest_units.c.id))}
        fixed = 0
        for u in sorted(known & retired):  # replaced by a commit whose knowledge-store update a crash cut short
            _forget_unit(store, u)
            (workspace.quarantine_dir / f"{u}.jsonl").unlink(missing_ok=True)
            fixed += 1
        if not markers:
            return fixed
        by_file: dict[tuple[str, str, str], list[str]] = {}
        for unit_id, marker in markers.items():
            key = (str(marker.get("sha256", "")), str(marker.get("format", "")), str(marker.get("source", "")))
            by_file.setdefault(key if key[0] else ("", "", unit_id), []).append(unit_id)
        for units in by_file.values():
            units.sort(key=lambda u: (str(markers[u].get("committed_at", "")), u))
            for later in units[1:]:
                _forget_unit(store, later)  # the row first: a crash here leaves the marker to retire next time
                lake.retire_unit(later, workspace.quarantine_dir)
                fixed += 1
            first = units[0]
            if first not in known:
                record_unit(store, markers[first], workspace.quarantine_dir / f"{first}.jsonl")
                fixed += 1
    return fixed


def _purpose(run_id: str) -> str:
    return f"{' '.join(['atalaya', *sys.argv[1:]])[:150]}, ingest run {run_id}"


def ingest_paths(
    workspace: Workspace,
    paths: Sequence[Path],
    *,
    fmt: str | None = None,
    source: str | None = None,
    marking: Marking | None = None,
    options: ReadOptions | None = None,
    progress: bool = False,
    store: KnowledgeStore | None = None,
    wait: float | None = None,
    replace: bool = False,
) -> IngestSummary:
    """Ingest files and directories into the workspace; the library entry point of ``atalaya ingest``.

    Holds the lake's writer lock for the whole run; ``wait``: seconds to wait for another writer to finish
    (None: the workspace's ``lock_wait``), after which :class:`~atalaya.core.errors.BusyError` says who holds it.
    """
    own_store = store is None
    ks_store = store or KnowledgeStore.open(workspace.db_url)
    try:
        ing = Ingestor(
            workspace=workspace,
            store=ks_store,
            marking=marking or Marking.from_text(f"TLP:AMBER;ORIG:{workspace.party}"),
            options=options or ReadOptions(),
            lock_wait=wait,
            replace=replace,
        )
        files = expand_paths(paths)
        summary = IngestSummary(run_id=ing.run_id)
        total = sum(f.stat().st_size for f in files)
        bar: Any = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, desc="ingest", dynamic_ncols=True)
        try:
            with ing.writing():
                small: list[Path] = []
                small_bytes = 0

                def flush() -> None:
                    nonlocal small, small_bytes
                    if small:
                        summary.units.extend(ing.ingest_batch(small, fmt=fmt, source=source))
                        if bar is not None:
                            bar.update(small_bytes)
                    small, small_bytes = [], 0

                for f in files:
                    size = f.stat().st_size
                    if not replace and size <= SMALL_FILE_BYTES:
                        small.append(f)
                        small_bytes += size
                        if small_bytes >= BATCH_BYTES or len(small) >= BATCH_FILES:
                            flush()
                        continue
                    flush()
                    before = bar.n if bar is not None else 0
                    if bar is not None:
                        bar.set_postfix_str(f.name[-40:])
                    tick = bar.update if bar is not None else None
                    res = ing.ingest_file(f, fmt=fmt, source=source, progress=tick)
                    if bar is not None:
                        bar.update(max(0, before + res.bytes - bar.n))
                    summary.units.append(res)
                flush()
        finally:
            if bar is not None:
                bar.close()
        return summary
    finally:
        if own_store:
            ks_store.close()
