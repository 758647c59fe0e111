"""Small files in batches: each file read and hashed from one read, many of one format parsed and validated as
one columnar batch, and their knowledge-store rows written in bulk.

:meth:`~atalaya.ingest.pipeline.Ingestor.ingest_batch` drives these steps under the lake's writer lock; every
file stays its own ingest unit (its ``ingest_units`` row, its quarantine, skipped when ingested again), and the
batch commits whole or not at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from sqlalchemy import select

from atalaya.core.errors import IngestError
from atalaya.core.ids import hash_strings
from atalaya.ingest.base import Reader, ReadOptions, Reject, logical_suffix
from atalaya.ingest.manyfiles import FilesBatch, ManyFilesReader
from atalaya.ingest.registry import SNIFF_BYTES, detect_format, detect_format_of, get_reader
from atalaya.ingest.rows import day_partitions, observation_table
from atalaya.ingest.validate import Bounds, bool_array, from_numpy, rejects_from, string_array, to_arrow
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks

I64 = npt.NDArray[np.int64]
Part = tuple[pa.Table, np.ndarray, np.ndarray]
"""Rows for the lake writer: a table, each row's day number, the distinct days."""
Key = tuple[str, str]
"""A lake partition: (day, source)."""

LOOKUP_CHUNK = 500
"""Values per ``IN (…)`` of a knowledge-store look-up (SQLite allows 999 bound values by default)."""


@dataclass(kw_only=True)
class LoadedFile:
    """One small file of a batch, read once: its bytes, their SHA-256 and its format."""

    path: Path
    data: bytes
    sha256: str
    mtime_ns: int
    format: str
    started: datetime
    read_s: float
    """Seconds spent reading, hashing and sniffing it."""


class FormatGuesser:
    """Formats of the files of a batch, sniffed from their first bytes.

    The first file of each folder and suffix is sniffed by every reader (:func:`detect_format_of`); a later file
    of that folder and suffix that the winning reader scores at least as high is taken to be of that format
    without asking the others (a folder of thousands of captures from one device: one full sniff, not one per
    file). Any other file is sniffed in full.
    """

    def __init__(self) -> None:
        self._first: dict[tuple[Path, str], tuple[str, float]] = {}
        self._readers: dict[str, Reader] = {}

    def __call__(self, head: bytes, path: Path) -> str:
        key = (path.parent, logical_suffix(path))
        known = self._first.get(key)
        if known is not None and self._score(known[0], head, path) >= known[1]:
            return known[0]
        name = detect_format_of(head, path)
        if known is None:
            self._first[key] = (name, self._score(name, head, path))
        return name

    def _score(self, name: str, head: bytes, path: Path) -> float:
        reader = self._readers.get(name)
        if reader is None:
            reader = self._readers[name] = get_reader(name)
        return reader.sniff(head, path)


def load_file(path: Path, fmt: str | None, guess: FormatGuesser | None = None) -> LoadedFile:
    """Read a small file whole, hash those bytes and tell its format (from the same bytes, unless compressed).

    The bytes parsed are the bytes hashed; a file whose size or modification time changes while it is read fails
    (:class:`IngestError`), as does one that cannot be read (:class:`OSError`).
    """
    t0 = time.perf_counter()
    started = datetime.now(UTC)
    fd = os.open(path, os.O_RDONLY)
    try:
        before = os.fstat(fd)
        chunks = [os.read(fd, before.st_size + 1)]  # one read for a file that stays as it is
        while chunks[-1] and sum(len(c) for c in chunks) <= before.st_size:
            chunks.append(os.read(fd, 1 << 20))
        after = os.fstat(fd)
    finally:
        os.close(fd)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if len(data) != before.st_size or after.st_size != before.st_size or after.st_mtime_ns != before.st_mtime_ns:
        raise IngestError(f"{path} changed while it was being ingested", hint="ingest it once complete")
    if fmt is None:
        if path.suffix.lower() in (".gz", ".bz2", ".xz"):  # sniffed on the decompressed head
            fmt = detect_format(path)
        else:
            fmt = (guess or FormatGuesser())(data[:SNIFF_BYTES], path)
    return LoadedFile(
        path=path,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        mtime_ns=before.st_mtime_ns,
        format=fmt,
        started=started,
        read_s=time.perf_counter() - t0,
    )


def ingested_units(store: KnowledgeStore, shas: Sequence[str]) -> dict[tuple[str, str, str], str]:
    """Committed units of files with these hashes: ``(sha256, format, source)`` → unit id (one query per
    :data:`LOOKUP_CHUNK` hashes)."""
    out: dict[tuple[str, str, str], str] = {}
    wanted = sorted(set(shas))
    c = ks.ingest_units.c
    with store.engine.connect() as conn:
        for i in range(0, len(wanted), LOOKUP_CHUNK):
            rows = conn.execute(
                select(c.id, c.sha256, c.format, c.source).where(c.sha256.in_(wanted[i : i + LOOKUP_CHUNK]))
            ).all()
            for unit_id, sha, fmt, source in rows:
                out[(str(sha), str(fmt), str(source))] = str(unit_id)
    return out


@dataclass(kw_only=True)
class FileOutcome:
    """What reading a file gave, before de-duplication: counts, quarantine lines, notes."""

    records: int = 0
    accepted: int = 0
    quarantined: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    qlines: list[str] = field(default_factory=list)

    def reject(self, r: Reject, fmt: str) -> None:
        self.quarantined += 1
        self.reasons[reason_key(r.reason)] += 1
        self.qlines.append(quarantine_line(r, fmt))


def reason_key(reason: str) -> str:
    """Group reasons by their stable prefix (before a colon with record-specific detail)."""
    return reason.split(":", 1)[0].strip()[:120]


def quarantine_line(r: Reject, fmt: str) -> str:
    """One quarantine JSON line."""
    return json.dumps({"src_rec": r.src_rec, "reason": r.reason, "raw": r.raw, "format": fmt}, ensure_ascii=False)


@dataclass(kw_only=True)
class GroupRows:
    """Rows of a group of files read in one pass, for the lake writer, with each row's file."""

    parts: list[Part] = field(default_factory=list)
    keys: dict[Key, list[np.ndarray]] = field(default_factory=dict)
    """Id keys per partition, in the order the rows are written."""
    owners: dict[Key, list[I64]] = field(default_factory=dict)
    """The file (index in the group) of each id in :attr:`keys`."""


def read_group(
    reader: ManyFilesReader,
    files: Sequence[LoadedFile],
    outcomes: Sequence[FileOutcome],
    *,
    source: str,
    unit_ids: Sequence[str],
    options: ReadOptions,
    bounds: Bounds,
    marking_text: str,
    now_us: int,
) -> GroupRows:
    """Read, validate and hash the rows of many files of one format and source at once.

    Fills each file's :class:`FileOutcome`; raises what the reader raises (the caller then reads the files one by
    one, so that a file that fails does so alone).
    """
    out = GroupRows()
    fmt = files[0].format
    src_hash = hash_strings([source])[0]
    n_files = len(files)
    consts = {
        "marking": string_array([marking_text]),
        "format": string_array([fmt]),
        "src_file": string_array([str(f.path) for f in files]),
        "ingest_run": string_array(list(unit_ids)),
    }
    for fb in reader.read_many([f.data for f in files], options):
        for i, n in enumerate(fb.records.tolist()):
            outcomes[i].records += n
        for i, r in fb.rejects:
            outcomes[i].reject(r, fmt)
        if len(fb):
            _validated_rows(fb, outcomes, out, fmt=fmt, source=source, src_hash=src_hash, consts=consts,
                            bounds=bounds, now_us=now_us, n_files=n_files)  # fmt: skip
    return out


def _validated_rows(
    fb: FilesBatch,
    outcomes: Sequence[FileOutcome],
    out: GroupRows,
    *,
    fmt: str,
    source: str,
    src_hash: np.uint64,
    consts: Mapping[str, pa.Array],
    bounds: Bounds,
    now_us: int,
    n_files: int,
) -> None:
    noted: list[tuple[int, str]] = []
    arrays, keep, problems = to_arrow(fb.columns, bounds, now_us, noted_rows=noted)
    files = fb.files
    for row, note in noted:
        outcomes[int(files[row])].notes[note] += 1
    if problems:
        for (row, _), r in zip(problems, rejects_from(arrays, problems), strict=True):
            outcomes[int(files[row])].reject(r, fmt)
        mask = bool_array(keep)
        arrays = {k: v.filter(mask) for k, v in arrays.items()}
        files = files[keep]
    n = len(files)
    if n == 0:
        return
    codes = from_numpy(files.astype(np.int32), pa.int32())
    zeros = from_numpy(np.zeros(n, dtype=np.int32), pa.int32())
    table, t_us, ids_a = observation_table(
        arrays,
        src_hash,
        {k: pa.DictionaryArray.from_arrays(codes if len(v) > 1 else zeros, v) for k, v in consts.items()},
    )
    day_index, days = day_partitions(t_us)
    out.parts.append((table, day_index, days))
    for i, c in enumerate(np.bincount(files, minlength=n_files).tolist()):
        outcomes[i].accepted += c
    for d in days:
        key = (str(np.datetime64(int(d), "D")), source)
        sel = slice(None) if len(days) == 1 else day_index == d
        out.keys.setdefault(key, []).append(ids_a[sel])
        out.owners.setdefault(key, []).append(files[sel])


def record_units(store: KnowledgeStore, markers: Sequence[dict[str, Any]], quarantine_dir: Path) -> None:
    """Record committed units (a batch) and their quarantine in the knowledge store: one transaction, rows
    inserted in bulk; units already recorded are left as they are (idempotent)."""
    if not markers:
        return
    c = ks.ingest_units.c
    ids = [str(m["unit_id"]) for m in markers]
    with store.begin() as conn:
        known: set[str] = set()
        for i in range(0, len(ids), LOOKUP_CHUNK):
            known.update(str(r[0]) for r in conn.execute(select(c.id).where(c.id.in_(ids[i : i + LOOKUP_CHUNK]))))
        fresh = [m for m in markers if m["unit_id"] not in known]
        if not fresh:
            return
        conn.execute(ks.ingest_units.insert(), [unit_row(m) for m in fresh])
        rows: list[dict[str, Any]] = []
        for m in fresh:
            if m.get("quarantined", 1):  # a clean unit has no quarantine file
                rows.extend(quarantine_rows(m, quarantine_dir / f"{m['unit_id']}.jsonl"))
        for i in range(0, len(rows), 5000):
            conn.execute(ks.quarantine.insert(), rows[i : i + 5000])


def unit_row(marker: Mapping[str, Any]) -> dict[str, Any]:
    """The ``ingest_units`` row of a commit marker's unit."""
    return dict(
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


def quarantine_rows(marker: Mapping[str, Any], quarantine_file: Path) -> list[dict[str, Any]]:
    """The ``quarantine`` rows of a unit, from its committed quarantine file (none when there is no file)."""
    rows: list[dict[str, Any]] = []
    try:
        fh = open(quarantine_file, encoding="utf-8")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        return rows
    with fh:
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
    return rows


__all__ = [
    "FileOutcome",
    "FormatGuesser",
    "GroupRows",
    "LoadedFile",
    "ingested_units",
    "load_file",
    "quarantine_rows",
    "read_group",
    "reason_key",
    "record_units",
    "unit_row",
]
