"""Benchmark: a folder of single-event CoT files against the same events in one file.

Generates ``--files`` files of one CoT event each in a temporary directory, ingests the folder into a new
workspace, then ingests the same events written as one file into another, in the same run; prints files/s
and the ratio of the two times. CPU seconds (all threads of the process) are printed beside each wall time: on a
loaded machine they are the figures to compare.

    .venv/bin/python bench/bench_small_files.py --files 10000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from atalaya.core.workspace import init_workspace
from atalaya.ingest.pipeline import ingest_paths


def event(i: int) -> str:
    t = f"2024-05-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"
    return (
        f'<event version="2.0" uid="UID-{i}" type="a-f-A-M-F-Q" time="{t}" start="{t}" stale="{t}" how="m-g">'
        f'<point lat="{14 + (i % 1900) * 0.01:.6f}" lon="{-118 + (i % 3200) * 0.01:.6f}" hae="100.0" ce="10" '
        f'le="10"/><detail><track speed="10" course="90"/></detail></event>\n'
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=10_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "events"
        folder.mkdir()
        for i in range(args.files):
            (folder / f"ev{i:06d}.cot").write_text('<?xml version="1.0"?>\n' + event(i), encoding="utf-8")
        one = root / "all.cot"
        one.write_text("".join(event(i) for i in range(args.files)), encoding="utf-8")

        ws = init_workspace(root / "ws1", party="USA")
        t0, c0 = time.perf_counter(), time.process_time()
        s = ingest_paths(ws, [folder])
        folder_s, folder_cpu = time.perf_counter() - t0, time.process_time() - c0
        tot = s.totals()
        assert tot["files_ingested"] == args.files and tot["accepted"] == args.files, tot

        ws2 = init_workspace(root / "ws2", party="USA")
        t0, c0 = time.perf_counter(), time.process_time()
        s2 = ingest_paths(ws2, [one])
        one_s, one_cpu = time.perf_counter() - t0, time.process_time() - c0
        assert s2.totals()["accepted"] == args.files, s2.totals()

        rate = args.files / folder_s
        print(f"folder of {args.files} files: {folder_s:.2f} s, {rate:,.0f} files/s (CPU {folder_cpu:.2f} s)")
        print(f"same events in one file:     {one_s:.2f} s (CPU {one_cpu:.2f} s)")
        print(f"ratio folder / one file:     {folder_s / one_s:.1f}x")


if __name__ == "__main__":
    main()
