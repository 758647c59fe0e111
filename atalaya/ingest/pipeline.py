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
import os
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
from atalaya.core.ids import hash_strings, new_run_id
from atalaya.core.markings import Marking
from atalaya.core.workspace import Workspace
from atalaya.ingest.base import ParsedBatch, Reader, ReadOptions, Reject
from atalaya.ingest.batch import (
    FileOutcome,
    FormatGuesser,
    GroupRows,
    LoadedFile,
    ingested_units,
    load_file,
    quarantine_rows,
    read_group,
    reason_key,
    record_units,
    unit_row,
)
from atalaya.ingest.dedupe import keep_mask
from atalaya.ingest.manyfiles import ManyFilesReader, many_files_reader
from atalaya.ingest.registry import detect_format, get_reader
from atalaya.ingest.rows import day_partitions, observation_table
from atalaya.ingest.validate import (
    Bounds,
    bool_array,
    from_numpy,
    rejects_from,
    string_array,
    to_arrow,
)
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
    """Files named directly, and files under named directories (sorted, hidden files and READMEs skipped).

    Directories are walked with ``os.scandir`` (each entry's type from the listing, no stat per entry); symbolic
    links to files are followed, links to directories are not entered (as ``Path.rglob`` does).
    """
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found: list[tuple[tuple[str, ...], Path]] = []
            _walk(p, (), found)
            found.sort(key=lambda rel_path: rel_path[0])  # the order of sorted(p.rglob("*")): by path parts
            out.extend(f for _, f in found)
        elif p.exists():
            out.append(p)
        else:
            raise IngestError(f"no such file or directory: {p}", hint="check the path")
    return out


def _walk(folder: Path, rel: tuple[str, ...], found: list[tuple[tuple[str, ...], Path]]) -> None:
    with os.scandir(folder) as entries:
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_dir(follow_symlinks=False):
                _walk(folder / e.name, (*rel, e.name), found)
            elif e.is_file() and e.name not in IGNORED_NAMES:
                found.append(((*rel, e.name), folder / e.name))


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
                        reasons[reason_key(r.reason)] += 1
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

        Each file is read once (the bytes hashed are the bytes parsed). Files whose reader can read many at a time
        (:mod:`atalaya.ingest.manyfiles`) are read, validated and id-hashed as one batch per format and source,
        each row and reject kept with its file; the others, and all of them if that one pass fails, one by one.
        A file that fails leaves nothing in the batch; the batch commits whole or not at all. Needs the lake's
        writer lock (taken here unless held).
        """
        if not self.lake.holds_write_lock():
            with self.writing():
                return self.ingest_batch(paths, fmt=fmt, source=source)
        _warm_up_arrow()  # overlaps reading the files
        with _malloc_for_arrow():
            return self._ingest_batch(paths, fmt=fmt, source=source)

    def _ingest_batch(self, paths: Sequence[Path], *, fmt: str | None, source: str | None) -> list[UnitResult]:
        t_batch = time.perf_counter()
        results = [UnitResult(path=str(p)) for p in paths]
        loaded: list[LoadedFile | None] = []
        guess = FormatGuesser()
        for path, res in zip(paths, results, strict=True):
            try:
                f = load_file(path, fmt, guess)
                res.bytes, res.format, res.source = len(f.data), f.format, _source_name(f.format, source)
                loaded.append(f)
            except (AtalayaError, OSError) as e:
                res.status, res.error = "failed", str(e) if isinstance(e, AtalayaError) else f"cannot read {path}: {e}"
                with contextlib.suppress(OSError):
                    res.bytes = path.stat().st_size
                loaded.append(None)
        prior = ingested_units(self.store, [f.sha256 for f in loaded if f is not None])
        todo: list[int] = []  # files to ingest, in order
        for i, lf in enumerate(loaded):
            if lf is None:
                continue
            res = results[i]
            unit = prior.get((lf.sha256, res.format, res.source))
            if unit is not None:  # already ingested, or the same bytes earlier in this batch
                res.status, res.unit_id = "skipped", unit
                continue
            res.unit_id = prior[(lf.sha256, res.format, res.source)] = new_run_id()
            todo.append(i)
        if not todo:
            return results
        # files a reader can take many at a time, by format and source; the others one by one
        readers: dict[str, Reader] = {}
        manys: dict[str, ManyFilesReader] = {}
        groups: dict[tuple[str, str], list[int]] = {}
        alone: list[int] = []
        for i in todo:
            f, res = cast(LoadedFile, loaded[i]), results[i]
            try:
                reader = readers.get(res.format) or self.readers.get(res.format) or get_reader(res.format)
            except AtalayaError as e:
                res.status, res.error, res.unit_id = "failed", str(e), ""
                continue
            readers[res.format] = reader
            many = many_files_reader(reader)
            if many is not None and not self.options.received_at_mtime and many.batchable(f.data[:4096], f.path):
                manys[res.format] = many
                groups.setdefault((res.format, res.source), []).append(i)
            else:
                alone.append(i)
        batch_id = new_run_id()
        writer = self.lake.writer(batch_id, lock_wait=self._wait())
        outcomes: dict[int, FileOutcome] = {}
        keys: dict[_Key, list[np.ndarray]] = {}
        owners: dict[_Key, list[np.ndarray]] = {}
        now_us = int(time.time() * 1e6)
        marking_text = self.marking.to_text()

        def take(rows: GroupRows, members: Sequence[int], source: str) -> None:
            for table, day_index, days in rows.parts:  # rows and their ids in the same order
                writer.write(table, day_index, source, days=days)
            index = np.asarray(members, dtype=np.int64)
            for key, parts in rows.keys.items():
                keys.setdefault(key, []).extend(parts)
                owners.setdefault(key, []).extend(index[o] for o in rows.owners[key])

        try:
            for (form, src), members in groups.items():
                files = [cast(LoadedFile, loaded[i]) for i in members]
                outs = [FileOutcome() for _ in members]
                try:
                    unit_ids = [results[i].unit_id for i in members]
                    rows = read_group(manys[form], files, outs, source=src, unit_ids=unit_ids, options=self.options,
                                      bounds=self.bounds, marking_text=marking_text, now_us=now_us)  # fmt: skip
                except (AtalayaError, OSError):
                    alone.extend(members)  # each read alone: a file that fails does so by itself
                    continue
                take(rows, members, src)
                outcomes.update(zip(members, outs, strict=True))
            for i in sorted(alone):
                f, res = cast(LoadedFile, loaded[i]), results[i]
                out = FileOutcome()
                try:
                    rows = self._read_alone(readers[res.format], f, res, out, marking_text, now_us)
                except AtalayaError as e:
                    res.status, res.error, res.unit_id = "failed", str(e), ""
                    continue
                except OSError as e:
                    res.status, res.error, res.unit_id = "failed", f"cannot read {f.path}: {e}", ""
                    continue
                take(rows, [i], res.source)
                outcomes[i] = out
            done = sorted(outcomes)
            if not done:
                writer.abort()
                return _no_unit_of_failed(results)
            slot = np.full(len(results), -1, dtype=np.int64)
            slot[done] = np.arange(len(done))
            all_ids = {key: np.concatenate(parts) for key, parts in keys.items()}
            existing = self._existing(all_ids)
            keeps = {key: keep_mask(all_ids[key], existing[key]) for key in all_ids}
            writer.close_files()
            dropped = np.zeros(len(done), dtype=np.int64)
            for key, keep in keeps.items():
                if not keep.all():
                    writer.rewrite_partition(key, keep)
                    dropped += np.bincount(slot[np.concatenate(owners[key])[~keep]], minlength=len(done))
            committed_at = datetime.now(UTC).isoformat()
            share = (time.perf_counter() - t_batch) / max(1, sum(results[i].bytes for i in done))
            qfiles: list[tuple[Path, Path]] = []
            markers = []
            for k, i in enumerate(done):
                f, res, out = cast(LoadedFile, loaded[i]), results[i], outcomes[i]
                res.records, res.quarantined, res.duplicates = out.records, out.quarantined, int(dropped[k])
                res.accepted = out.accepted - res.duplicates
                res.reasons, res.notes = dict(out.reasons.most_common()), dict(out.notes.most_common())
                res.seconds = round(f.read_s + share * res.bytes, 4)
                markers.append({"unit_id": res.unit_id, "run_id": self.run_id, "path": str(f.path),
                                "sha256": f.sha256, "format": res.format, "source": res.source,
                                "marking": marking_text, "started_at": f.started.isoformat(),
                                "bytes": res.bytes, "committed_at": committed_at, "records": res.records,
                                "accepted": res.accepted, "quarantined": res.quarantined,
                                "duplicates": res.duplicates, "reasons": res.reasons})  # fmt: skip
                if out.qlines:
                    staged = writer.staging / f"q-{res.unit_id}.jsonl"
                    with open_private(staged) as qf:
                        qf.write("\n".join(out.qlines) + "\n")
                    qfiles.append((staged, self.workspace.quarantine_dir / f"{res.unit_id}.jsonl"))
            writer.commit({"run_id": self.run_id, "committed_at": committed_at, "units": markers}, extra_files=qfiles)
        except BaseException:
            writer.abort()
            raise
        self._remember(all_ids, keeps)
        record_units(self.store, markers, self.workspace.quarantine_dir)
        return _no_unit_of_failed(results)

    def _read_alone(
        self, reader: Reader, f: LoadedFile, res: UnitResult, out: FileOutcome, marking_text: str, now_us: int
    ) -> GroupRows:
        """A file of a batch that no reader takes with others: read from its path, as :meth:`ingest_file` does,
        checked to be the bytes hashed."""
        options = self.options
        if options.received_at_mtime and options.reference_time_us is None:
            options = replace(options, reference_time_us=f.mtime_ns // 1000)
        rows = GroupRows()
        keys: dict[_Key, list[np.ndarray]] = {}
        src_hash = hash_strings([res.source])[0]
        for batch in reader.read(f.path, options):
            out.records += batch.records_read
            rejects = list(batch.rejects)
            if len(batch):
                rejects += self._write_batch(batch, _buffer_sink(rows.parts), keys, src_hash, marking_text,
                                             res.unit_id, f.path, res, now_us)  # fmt: skip
            for r in rejects:
                out.reject(r, res.format)
        out.notes.update(res.notes)
        out.accepted = sum(t.num_rows for t, _, _ in rows.parts)
        st = f.path.stat()
        if st.st_size != len(f.data) or st.st_mtime_ns != f.mtime_ns:
            raise IngestError(f"{f.path} changed while it was being ingested", hint="ingest it once complete")
        rows.keys = keys
        rows.owners = {key: [np.zeros(len(p), dtype=np.int64) for p in parts] for key, parts in keys.items()}
        return rows

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
        zeros = from_numpy(np.zeros(n, dtype=np.int32), pa.int32())
        consts = {
            "marking": [marking_text],
            "format": [res.format],
            "src_file": [str(path)],
            "ingest_run": [unit_id],
        }
        table, t_us, ids_a = observation_table(
            arrays, src_hash, {k: pa.DictionaryArray.from_arrays(zeros, string_array(v)) for k, v in consts.items()}
        )
        day_index, days = day_partitions(t_us)
        sink(table, day_index, days)
        for d in days:
            day = str(np.datetime64(int(d), "D"))
            keys.setdefault((day, res.source), []).append(ids_a if len(days) == 1 else ids_a[day_index == d])
        return rejects


def _no_unit_of_failed(results: list[UnitResult]) -> list[UnitResult]:
    """A file skipped as the same bytes as one that failed in the same batch fails too (it has no unit)."""
    failed = {r.unit_id: r.path for r in results if r.status == "failed" and r.unit_id}
    for r in results:
        if r.status == "failed":
            r.unit_id = ""
        elif r.status == "skipped" and r.unit_id in failed:
            r.status, r.unit_id, r.error = "failed", "", f"the same bytes as {failed[r.unit_id]}, which failed"
    return results


def _writer_sink(writer: LakeWriter, source: str) -> Sink:
    def sink(table: pa.Table, day_index: np.ndarray, days: np.ndarray) -> None:
        writer.write(table, day_index, source, days=days)

    return sink


def _buffer_sink(buf: list[tuple[pa.Table, np.ndarray, np.ndarray]]) -> Sink:
    def sink(table: pa.Table, day_index: np.ndarray, days: np.ndarray) -> None:
        buf.append((table, day_index, days))

    return sink


def record_unit(store: KnowledgeStore, marker: dict[str, Any], quarantine_file: Path) -> None:
    """Record a committed unit and its quarantine in the knowledge store (one transaction, idempotent)."""
    with store.begin() as conn:
        _record(conn, marker, quarantine_file)


def _record(conn: Any, marker: dict[str, Any], quarantine_file: Path) -> None:
    exists = conn.execute(select(ks.ingest_units.c.id).where(ks.ingest_units.c.id == marker["unit_id"])).first()
    if exists:
        return
    conn.execute(ks.ingest_units.insert().values(**unit_row(marker)))
    rows = quarantine_rows(marker, quarantine_file)
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
        sizes = [f.stat().st_size for f in files]
        summary = IngestSummary(run_id=ing.run_id)
        total = sum(sizes)
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

                for f, size in zip(files, sizes, strict=True):
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
