"""One fuzz target per reader: bytes in, records or quarantines out, and no exception but the file-level one.

``run_one(target, data)`` writes ``data`` to a file named as the target's reader expects, streams it through the
reader and the pipeline's validation step (:func:`atalaya.ingest.validate.to_arrow`, which also quotes rejected
rows), and checks what every batch says about itself. The only exception allowed out is
:class:`~atalaya.core.errors.IngestError` (a file that cannot be read at all, e.g. truncated compression or a
header line that names no columns): the pipeline records such a file as failed and goes on.

Used by the atheris driver (``fuzz_readers.py``) and by the corpus replay test (``test_fuzz_corpus.py``).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from atalaya.core.errors import IngestError
from atalaya.ingest.base import ReaderLimits, ReadOptions
from atalaya.ingest.registry import get_reader
from atalaya.ingest.validate import Bounds, rejects_from, to_arrow

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
CRASHERS = HERE / "crashers"

# small limits so that the fuzzer reaches them with small inputs
FUZZ_LIMITS = ReaderLimits(
    max_line_bytes=4096,
    max_record_bytes=16384,
    max_document_bytes=16384,
    max_depth=32,
    max_decompressed_bytes=1 << 20,
    max_compression_ratio=50.0,
    ratio_floor_bytes=65536,
)


@dataclass(frozen=True)
class Target:
    """A reader under test and the file name its input is written to."""

    format: str
    filename: str


TARGETS: dict[str, Target] = {
    "csv": Target("csv", "in.csv"),
    "csv-gz": Target("csv", "in.csv.gz"),
    "nmea-bz2": Target("nmea", "in.nmea.bz2"),
    "geoparquet": Target("geoparquet", "in.parquet"),
    "geojson": Target("geojson", "in.geojson"),
    "gpx": Target("gpx", "in.gpx"),
    "kml": Target("kml", "in.kml"),
    "cot": Target("cot", "in.cot"),
    "nmea": Target("nmea", "in.nmea"),
    "sbs": Target("sbs", "in.sbs"),
    "opensky-csv": Target("opensky-csv", "in.csv"),
    "opensky-json": Target("opensky-json", "in.json"),
    "readsb-trace": Target("readsb-trace", "in.json"),
    "readsb-trace-gz": Target("readsb-trace", "in.json.gz"),
    "adsb-records": Target("adsb-records", "in.json"),
}
"""Fuzz target name (the corpus folder) → reader and file name. ``-gz``/``-bz2`` targets fuzz the decompression."""

_DIR = Path(tempfile.mkdtemp(prefix=f"atalaya-fuzz-{os.getpid()}-"))
_NOW_US = int(time.time() * 1e6)


def reader_for(target: str) -> Callable[..., object]:
    """The reader of a target; the CSV reader parses in the calling thread (deterministic, fast to start)."""
    fmt = TARGETS[target].format
    if fmt == "csv":
        from atalaya.ingest.tabular import CsvReader

        return CsvReader(threads=0)  # type: ignore[return-value]
    return get_reader(fmt)  # type: ignore[return-value]


def run_one(target: str, data: bytes, *, batch_rows: int = 64) -> tuple[int, int]:
    """Read ``data`` as ``target``; ``(accepted rows, quarantined records)``. Raises only ``IngestError``."""
    spec = TARGETS[target]
    path = _DIR / spec.filename
    path.write_bytes(data)
    reader = reader_for(target)
    options = ReadOptions(batch_rows=batch_rows, limits=FUZZ_LIMITS)
    accepted = quarantined = 0
    try:
        for batch in reader.read(path, options):  # type: ignore[attr-defined]
            assert batch.records_read >= 0 and batch.bytes_read >= 0
            quarantined += len(batch.rejects)
            for r in batch.rejects:
                assert isinstance(r.reason, str) and r.reason, r
                assert len(r.raw) <= 512
            n = len(batch)
            if n:
                lengths = {k: len(v) for k, v in batch.columns.items()}
                assert set(lengths.values()) == {n}, lengths
                arrays, keep, problems = to_arrow(batch.columns, Bounds(), _NOW_US)
                quarantined += len(rejects_from(arrays, problems))
                accepted += int(keep.sum())
    except IngestError:
        pass
    return accepted, quarantined


def corpus_files(target: str) -> list[Path]:
    """The seed corpus and the kept crashers of a target."""
    out: list[Path] = []
    for root in (CORPUS / target, CRASHERS / target):
        if root.is_dir():
            out.extend(sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")))
    return out
