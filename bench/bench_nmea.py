"""Benchmark: NmeaReader vs a plain pyais decode loop over the same AIS NMEA file.

Generates ``--n`` sentences (types 1/3/18 with tag blocks, about 1 in 20 a
two-sentence type 5) into a temporary file, then times both in the same run.

    .venv/bin/python bench/bench_nmea.py --n 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from atalaya.ingest import ais_codec as codec
from atalaya.ingest.base import ReadOptions
from atalaya.ingest.nmea import NmeaReader


def generate(path: Path, n: int, seed: int = 7) -> int:
    """Write about ``n`` sentences; return the number of AIS messages written."""
    rng = np.random.default_rng(seed)
    n_static = n // 40  # each is two sentences → ~5 % of lines
    n_pos = n - 2 * n_static
    fleet = rng.integers(200_000_000, 775_999_999, size=5000)
    types = rng.choice([1, 3, 18], size=n_pos, p=[0.6, 0.15, 0.25])
    mmsi = fleet[rng.integers(0, fleet.size, size=n_pos)]
    payload = [b""] * n_pos
    for t in (1, 3, 18):
        sel = np.flatnonzero(types == t)
        enc = codec.encode_positions(
            t,
            codec.PositionFields(
                mmsi=mmsi[sel],
                lon=rng.uniform(-120, -85, sel.size),
                lat=rng.uniform(10, 32, sel.size),
                sog_knots=rng.uniform(0, 30, sel.size),
                cog_deg=rng.uniform(0, 359.9, sel.size),
                heading=rng.integers(0, 360, sel.size),
                status=0,
                second=rng.integers(0, 60, sel.size),
            ),
        )
        for i, (p, _) in zip(sel.tolist(), enc, strict=True):
            payload[i] = p
    statics = codec.encode_static(
        fleet[np.arange(n_static) % fleet.size].tolist(), [f"VESSEL {i}" for i in range(n_static)]
    )
    static_at = set(np.linspace(0, n_pos, n_static, endpoint=False).astype(int).tolist())
    t0 = 1_700_000_000
    k = 0
    with open(path, "w") as fh:
        for i in range(n_pos):
            if i in static_at and k < len(statics):
                p, fill = statics[k]
                tb = codec.tag_block(time_s=t0 + i // 10, station="bench")
                for s in codec.sentences(p, fill, seq_id=k % 10, channel="B"):
                    fh.write(f"{tb}{s}\n")
                k += 1
            tb = codec.tag_block(time_s=t0 + i // 10, station="bench")
            fh.write(f"{tb}{codec.sentences(payload[i], 0, channel='A')[0]}\n")
    return n_pos + k


def run_atalaya(path: Path) -> tuple[float, float, int, int]:
    """Read the file once (after a warm-up on a tiny file); wall and CPU seconds, rows, rejects."""
    warm = path.with_suffix(".warm.nmea")
    warm.write_bytes(b"".join(path.open("rb").readline() for _ in range(1)))
    for _ in NmeaReader().read(warm, ReadOptions(reference_time_us=0)):
        pass
    t, c = time.perf_counter(), time.process_time()
    rows = rejects = 0
    for b in NmeaReader().read(path, ReadOptions()):
        rows += len(b)
        rejects += len(b.rejects)
    return time.perf_counter() - t, time.process_time() - c, rows, rejects


def run_pyais(path: Path) -> tuple[float, float, int]:
    """The peer: pyais's file stream (reassembles multi-sentence messages) and ``decode()`` per message."""
    from pyais.stream import FileReaderStream

    t, c = time.perf_counter(), time.process_time()
    n = 0
    for msg in FileReaderStream(str(path)):
        msg.decode()
        n += 1
    return time.perf_counter() - t, time.process_time() - c, n


def _peak_rss_mib() -> float:
    """This process's peak RSS. ``ru_maxrss`` survives ``exec`` on Linux (it would show the parent's), so
    read the memory map's high-water mark where ``/proc`` has it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(which: str, path: Path) -> None:
    if which == "atalaya":
        secs, cpu, rows, rej = run_atalaya(path)
        extra = f"rows={rows:,} rejects={rej}"
    else:
        secs, cpu, rows = run_pyais(path)
        extra = f"messages={rows:,}"
    rss = _peak_rss_mib()
    print(json.dumps({"secs": secs, "cpu": cpu, "extra": extra, "rss_mib": rss}))


def _measure(which: str, path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", which, "--file", str(path)], check=True, capture_output=True, text=True
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1_000_000, help="sentences to generate")
    ap.add_argument("--skip-pyais", action="store_true", help="time only the atalaya reader")
    ap.add_argument("--child", choices=["atalaya", "pyais"], help=argparse.SUPPRESS)
    ap.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.file)
        return
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bench.nmea"
        t = time.perf_counter()
        msgs = generate(path, args.n)
        size = path.stat().st_size
        print(f"generated {msgs:,} messages ({size / 1e6:.1f} MB) in {time.perf_counter() - t:.1f}s")
        # each reader runs in its own process so that peak RSS is its own
        a = _measure("atalaya", path)
        _report("atalaya NmeaReader", msgs, a)
        if not args.skip_pyais:
            p = _measure("pyais", path)
            _report("pyais decode loop ", msgs, p)
            print(
                f"ratio atalaya/pyais: {p['secs'] / a['secs']:.1f}x by wall time,"
                f" {p['cpu'] / a['cpu']:.1f}x by CPU time"
                f" (os.cpu_count()={os.cpu_count()}, load average {os.getloadavg()[0]:.1f})"
            )


def _report(label: str, msgs: int, r: dict[str, Any]) -> None:
    print(
        f"{label}: {r['secs']:.2f}s wall, {r['cpu']:.2f}s CPU  {msgs / r['secs']:,.0f} msgs/s wall"
        f"  {msgs / r['cpu']:,.0f} msgs/s CPU  {r['extra']}  peak RSS {r['rss_mib']:.0f} MiB"
    )


if __name__ == "__main__":
    main()
