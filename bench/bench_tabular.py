"""Benchmark of the tabular readers against pandas (the peer) in the same run.

    .venv/bin/python bench/bench_tabular.py --rows 5000000 [--repeat 3] [--only geoparquet]

Generates a realistic detection CSV once into a temporary directory, then times
(a) ``pandas.read_csv`` + ``DataFrame.to_parquet`` and (b) ``CsvReader`` alone
(all batches consumed); the same for a GeoParquet input (WKB points with
``geo`` metadata) against ``pandas.read_parquet``. Prints rows/s, the ratio and
the peak RSS of the process.

``make_csv(path, n, seed)`` is importable so that the full ingest pipeline can
be added to this bench.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

_SENSORS = np.array(["EO", "IR", "SAR", "GMTI", "SIGINT"])
_KINDS = np.array(["vehicle", "thermal", "structure", "emitter", "vessel"])


def _columns(n: int, seed: int) -> dict[str, pa.Array]:
    rng = np.random.default_rng(seed)
    t0 = np.datetime64("2024-03-01T00:00:00", "us")
    t = t0 + (np.sort(rng.integers(0, 30 * 86_400_000_000, n))).astype("timedelta64[us]")
    times = pa.array(t, type=pa.timestamp("us", tz="UTC"))
    return {
        "time": times,
        "lon": pa.array(np.round(rng.uniform(-117.0, -97.0, n), 6)),
        "lat": pa.array(np.round(rng.uniform(18.0, 32.5, n), 6)),
        "alt_m": pa.array(np.round(rng.uniform(0, 2500, n), 1).astype(np.float32)),
        "pos_err_m": pa.array(np.round(rng.gamma(2.0, 15.0, n), 1).astype(np.float32)),
        "sensor": pa.array(_SENSORS[rng.integers(0, len(_SENSORS), n)]),
        "kind": pa.array(_KINDS[rng.integers(0, len(_KINDS), n)]),
        "ident": pa.array(np.char.add("trk-", rng.integers(0, 50_000, n).astype(str))),
        "confidence": pa.array(np.round(rng.uniform(0.2, 1.0, n), 3).astype(np.float32)),
        "platform_id": pa.array(np.array(["MQ9-01", "MQ9-02", "P8-01", "RC135-01"])[rng.integers(0, 4, n)]),
        "sortie_id": pa.array(np.char.add("S", rng.integers(0, 400, n).astype(str))),
    }


def make_csv(path: Path, n: int, seed: int = 0) -> Path:
    """Write ``n`` detection rows with the canonical column names (ISO 8601 times with Z)."""
    chunk = 1_000_000
    with pacsv.CSVWriter(path, schema=_schema()) as w:
        for start in range(0, n, chunk):
            cols = _columns(min(chunk, n - start), seed + start)
            w.write_table(pa.table(cols))
    # pyarrow writes "2024-03-01 00:00:00.123456Z"; the scenario writer uses "T": both are ISO 8601.
    return path


def _schema() -> pa.Schema:
    return pa.table(_columns(1, 0)).schema


def make_geoparquet(path: Path, n: int, seed: int = 0) -> Path:
    """Write ``n`` detection rows as GeoParquet (WKB points, ``geo`` metadata)."""
    import shapely

    chunk = 1_000_000
    writer: pq.ParquetWriter | None = None
    try:
        for start in range(0, n, chunk):
            cols = _columns(min(chunk, n - start), seed + start)
            lon = cols.pop("lon").to_numpy()
            lat = cols.pop("lat").to_numpy()
            wkb = shapely.to_wkb(shapely.points(lon, lat))
            cols["geometry"] = pa.array(wkb, type=pa.binary())
            table = pa.table(cols)
            geo = {
                "version": "1.1.0",
                "primary_column": "geometry",
                "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Point"]}},
            }
            table = table.replace_schema_metadata({"geo": json.dumps(geo)})
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=262_144)
    finally:
        if writer is not None:
            writer.close()
    return path


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _time(fn: Callable[[], int]) -> tuple[float, int]:
    t = time.perf_counter()
    rows = fn()
    return time.perf_counter() - t, rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns a process exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs, peer and reader alternating")
    ap.add_argument("--only", choices=("csv", "geoparquet"), default=None, help="run one format only")
    args = ap.parse_args(argv)

    import pandas as pd  # type: ignore[import-untyped]  # pandas ships no stubs here; benchmark peer only

    from atalaya.ingest.base import ReadOptions
    from atalaya.ingest.tabular import CsvReader, ParquetReader

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        d = Path(tmp)
        csv_path = d / "detections.csv"
        gpq_path = d / "detections.parquet"
        if args.only != "geoparquet":
            make_csv(csv_path, args.rows, args.seed)
            print(f"rows={args.rows:,} csv={csv_path.stat().st_size / 1e6:.0f} MB")
        if args.only != "csv":
            make_geoparquet(gpq_path, args.rows, args.seed)
            print(f"rows={args.rows:,} geoparquet={gpq_path.stat().st_size / 1e6:.0f} MB")

        def pandas_csv() -> int:
            df = pd.read_csv(csv_path)
            df.to_parquet(d / "pandas.parquet")
            return len(df)

        def reader_csv() -> int:
            n = rej = 0
            for b in CsvReader().read(csv_path, ReadOptions()):
                n += len(b)
                rej += len(b.rejects)
            if rej:
                print(f"  unexpected rejects: {rej}", file=sys.stderr)
            return n

        def pandas_pq() -> int:
            return len(pd.read_parquet(gpq_path))

        def reader_pq() -> int:
            return sum(len(b) for b in ParquetReader().read(gpq_path, ReadOptions()))

        results = []
        for label, peer, ours in (
            ("csv", pandas_csv, reader_csv),
            ("geoparquet", pandas_pq, reader_pq),
        ):
            if args.only not in (None, label):
                continue
            tp = to = float("inf")
            for _ in range(max(1, args.repeat)):
                t1, np_ = _time(peer)
                t2, no = _time(ours)
                tp, to = min(tp, t1), min(to, t2)
            if np_ != no:
                print(f"  row count differs: peer {np_} vs reader {no}", file=sys.stderr)
            results.append((label, np_ / tp, no / to))
            print(
                f"{label:11s} peer {np_ / tp / 1e6:6.2f} M rows/s ({tp:6.2f} s)   "
                f"reader {no / to / 1e6:6.2f} M rows/s ({to:6.2f} s)   reader/peer = {tp / to:5.2f}x"
            )
        print(f"peak RSS {_peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
