"""Benchmark: the whole ingest (read, validate, hash ids, de-duplicate, write the lake, commit) per format,
next to the peer a user would otherwise write, in the same run, each in its own process (clean peak RSS).

    .venv/bin/python bench/bench_ingest.py --csv 5000000 --nmea 1000000 --cot 200000
    .venv/bin/python bench/bench_ingest.py --rss 10000000      # peak RSS of a 10M-record CSV ingest
    .venv/bin/python bench/bench_ingest.py --csv 2000000 --geoparquet 0 --nmea 0 --cot 0 --repeat 5

With ``--repeat N`` both contenders run N times, alternating, and the ratio of each pair is reported with its
range (on a shared machine only ratios measured side by side mean much).

Peers: CSV → pandas.read_csv + DataFrame.to_parquet; GeoParquet → pandas.read_parquet + to_parquet;
AIS NMEA → pyais FileReaderStream + decode(); CoT → lxml iterparse building a dict per event.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_s() -> float:
    """CPU seconds (user + system, all threads) of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _atalaya(path: str, fmt: str) -> dict[str, Any]:
    from atalaya.core.workspace import init_workspace
    from atalaya.ingest.pipeline import ingest_paths

    with tempfile.TemporaryDirectory() as d:
        ws = init_workspace(Path(d) / "ws", party="USA")
        t, c = time.perf_counter(), _cpu_s()
        s = ingest_paths(ws, [Path(path)], fmt=fmt)
        dt, dc = time.perf_counter() - t, _cpu_s() - c
        tot = s.totals()
    return {"seconds": dt, "cpu_s": dc, "rows": tot["accepted"], "quarantined": tot["quarantined"], "rss_mb": _rss_mb()}


def _peer(path: str, fmt: str) -> dict[str, Any]:
    t, c = time.perf_counter(), _cpu_s()
    rows = 0
    with tempfile.TemporaryDirectory() as d:
        if fmt == "csv":
            import pandas as pd

            df = pd.read_csv(path)
            df.to_parquet(Path(d) / "out.parquet")
            rows = len(df)
        elif fmt == "geoparquet":
            import pandas as pd

            df = pd.read_parquet(path)
            df.to_parquet(Path(d) / "out.parquet")
            rows = len(df)
        elif fmt == "nmea":
            from bench_nmea import run_pyais

            rows = run_pyais(Path(path))[2]
        elif fmt == "cot":
            from bench_cot import run_peer

            rows = run_peer(Path(path))
    return {"seconds": time.perf_counter() - t, "cpu_s": _cpu_s() - c, "rows": rows, "rss_mb": _rss_mb()}


def _child_main(which: str, path: str, fmt: str) -> None:
    res = _atalaya(path, fmt) if which == "atalaya" else _peer(path, fmt)
    print(json.dumps(res))


def _run(which: str, path: Path, fmt: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", which, str(path), fmt], check=True, capture_output=True, text=True
    )
    res: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return res


def _report(fmt: str, n: int, a: dict[str, Any], p: dict[str, Any] | None, peer: str) -> None:
    ra = a["rows"] / a["seconds"]
    line = (
        f"{fmt:<11} n={n:>10,}  atalaya {ra:>11,.0f} rows/s {a['seconds']:6.2f} s (CPU {a['cpu_s']:5.2f} s)"
        f" RSS {a['rss_mb']:5.0f} MB"
    )
    if p is not None:
        rp = p["rows"] / p["seconds"]
        line += (
            f" | {peer} {rp:>11,.0f} rows/s {p['seconds']:6.2f} s (CPU {p['cpu_s']:5.2f} s) RSS {p['rss_mb']:5.0f} MB"
            f"  ratio {ra / rp:4.2f}x"
        )
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", type=int, default=2_000_000)
    ap.add_argument("--geoparquet", type=int, default=2_000_000)
    ap.add_argument("--nmea", type=int, default=1_000_000)
    ap.add_argument("--cot", type=int, default=200_000)
    ap.add_argument("--rss", type=int, default=0, help="only: peak RSS of ingesting an N-row CSV")
    ap.add_argument("--repeat", type=int, default=1, help="run each pair N times, alternating; report the ratio range")
    ap.add_argument("--child", nargs=3, metavar=("WHICH", "PATH", "FORMAT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child_main(*args.child)
        return 0
    import bench_cot
    import bench_nmea
    import bench_tabular

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.rss:
            p = bench_tabular.make_csv(tmp / "big.csv", args.rss, seed=1)
            a = _run("atalaya", p, "csv")
            _report("csv (rss)", args.rss, a, None, "")
            return 0
        plan = [
            ("csv", args.csv, lambda p, n: bench_tabular.make_csv(p, n, seed=1), "data.csv", "pandas"),
            ("geoparquet", args.geoparquet, lambda p, n: bench_tabular.make_geoparquet(p, n, seed=1),
             "data.parquet", "pandas"),
            ("nmea", args.nmea, lambda p, n: bench_nmea.generate(p, n), "data.nmea", "pyais"),
            ("cot", args.cot, lambda p, n: bench_cot.generate(p, n), "data.cot", "lxml"),
        ]  # fmt: skip
        for fmt, n, make, name, peer in plan:
            if n <= 0:
                continue
            path = tmp / name
            make(path, n)
            ratios = []
            for _ in range(max(1, args.repeat)):
                a = _run("atalaya", path, fmt)
                p = _run("peer", path, fmt)
                _report(fmt, n, a, p, peer)
                ratios.append((a["rows"] / a["seconds"]) / (p["rows"] / p["seconds"]))
            if len(ratios) > 1:
                ratios.sort()
                med = ratios[len(ratios) // 2]
                lo, hi = ratios[0], ratios[-1]
                print(f"{fmt:<11} ratio over {len(ratios)} runs: median {med:.2f}x, range {lo:.2f}-{hi:.2f}x")
            path.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
