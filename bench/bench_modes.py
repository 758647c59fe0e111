"""Benchmark: the raw Mode-S reader (``modes-hex``) vs pyModeS over the same AVR capture, in the same run.

Generates ``--n`` messages of a busy receiver (``--aircraft`` aircraft within ~250 NM, about 2,000 messages a
second): DF17 airborne positions (even/odd CPR), velocities, identifications and surface positions, DF11
all-call replies, DF4 altitude and DF5 identity replies, one per line as ``<epoch seconds> *<hex>;``. Then,
each in its own process:

- atalaya: :class:`~atalaya.ingest.modes.ModeSHexReader` over the file (framing, times, CRC, every field,
  global/local CPR positions, per-aircraft state, observation columns);
- pyModeS (3.x, the current API): the file read line by line, each message given to ``PipeDecoder.decode``
  with its time (the streaming API that pairs CPR frames and decodes positions, as a user would call it),
  and, as a second, lighter peer, ``pyModeS.decode(msg)`` per message (every field, no positions).

    .venv/bin/python bench/bench_modes.py --n 1000000
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

from atalaya.ingest import modes_encode as enc
from atalaya.ingest.base import ReadOptions
from atalaya.ingest.modes import ModeSHexReader

T0 = 1_700_000_000.0
RATE = 2000.0
"""Messages per second of the simulated receiver."""
KINDS = ("airborne", "velocity", "ident", "surface", "df11", "df4", "df5")
MIX = (0.35, 0.2, 0.05, 0.03, 0.1, 0.15, 0.12)


def generate(path: Path, n: int, aircraft: int, seed: int = 7) -> dict[str, int]:
    """Write ``n`` AVR lines; return the count of each kind of message."""
    rng = np.random.default_rng(seed)
    icao = rng.choice(1 << 24, size=aircraft, replace=False).astype(np.int64)
    lat0, lon0 = rng.uniform(49.0, 55.0, aircraft), rng.uniform(-1.0, 9.0, aircraft)
    ve, vn = rng.integers(-450, 450, aircraft), rng.integers(-450, 450, aircraft)
    alt = (rng.integers(40, 1600, aircraft) * 25).astype(np.float64)
    calls = [f"TST{i:04d}" for i in range(aircraft)]
    ground = max(1, aircraft // 30)
    ground_icao = (icao[:ground] ^ 0x800000).astype(np.int64)
    t = T0 + np.cumsum(rng.exponential(1.0 / RATE, n))
    who = rng.integers(0, aircraft, n)
    kind = rng.choice(len(KINDS), size=n, p=MIX)
    dt_h = (t - T0) / 3600.0
    lat = lat0[who] + vn[who] * dt_h / 60.0
    lon = lon0[who] + ve[who] * dt_h / 60.0 / np.cos(np.radians(lat0[who]))
    odd = rng.random(n) < 0.5
    msg = np.zeros((n, 14), dtype=np.uint8)
    nbytes = np.full(n, 14, dtype=np.int64)
    for k, name in enumerate(KINDS):
        s = np.flatnonzero(kind == k)
        a = icao[who[s]]
        if name == "airborne":
            msg[s] = enc.airborne_position(a, lat[s], lon[s], alt[who[s]], odd[s])
        elif name == "velocity":
            msg[s] = enc.velocity(a, ve[who[s]], vn[who[s]], rng.integers(-30, 30, s.size) * 64)
        elif name == "ident":
            msg[s] = enc.identification(a, [calls[i] for i in who[s]], category=np.full(s.size, 3),
                                        tc=np.full(s.size, 4))  # fmt: skip
        elif name == "surface":  # a ground fleet of its own, taxiing east at 5.5 kt (movement code 20)
            g = who[s] % ground
            taxi = 5.5 * dt_h[s] / 60.0 / np.cos(np.radians(lat0[g]))
            msg[s] = enc.surface_position(ground_icao[g], lat0[g], lon0[g] + taxi, np.full(s.size, 20),
                                          np.full(s.size, 90.0), odd[s])  # fmt: skip
        elif name == "df11":
            msg[s], nbytes[s] = enc.all_call_reply(a), 7
        elif name == "df4":
            msg[s], nbytes[s] = enc.altitude_reply(a, alt[who[s]]), 7
        else:
            msg[s], nbytes[s] = enc.identity_reply(a, [f"{i % 8}{i // 8 % 8}{i // 64 % 8}0" for i in who[s]]), 7
    hexes = enc.to_hex(msg, nbytes)
    with open(path, "w") as fh:
        fh.writelines(f"{ts:.6f} *{h};\n" for ts, h in zip(t.tolist(), hexes, strict=True))
    return {name: int((kind == k).sum()) for k, name in enumerate(KINDS)}


def run_atalaya(path: Path) -> tuple[float, float, str]:
    warm = path.with_suffix(".warm")
    with path.open("rb") as fh:
        warm.write_bytes(b"".join(fh.readline() for _ in range(1000)))
    for _ in ModeSHexReader().read(warm, ReadOptions()):
        pass
    t, c = time.perf_counter(), time.process_time()
    rows = rejects = 0
    for b in ModeSHexReader().read(path, ReadOptions()):
        rows += len(b)
        rejects += len(b.rejects)
    return time.perf_counter() - t, time.process_time() - c, f"position rows={rows:,} rejects={rejects}"


def run_pymodes_pipe(path: Path) -> tuple[float, float, str]:
    import pyModeS

    t, c = time.perf_counter(), time.process_time()
    pipe = pyModeS.PipeDecoder()
    positions = 0
    with open(path) as fh:
        for line in fh:
            ts, msg = line.split(" ", 1)
            d = pipe.decode(msg.strip().strip("*;"), timestamp=float(ts))
            if d.get("latitude") is not None:
                positions += 1
    return time.perf_counter() - t, time.process_time() - c, f"positions={positions:,}"


def run_pymodes_decode(path: Path) -> tuple[float, float, str]:
    import pyModeS

    t, c = time.perf_counter(), time.process_time()
    n = 0
    with open(path) as fh:
        for line in fh:
            pyModeS.decode(line.split(" ", 1)[1].strip().strip("*;"))
            n += 1
    return time.perf_counter() - t, time.process_time() - c, f"messages={n:,}"


RUNNERS = {"atalaya": run_atalaya, "pymodes-pipe": run_pymodes_pipe, "pymodes-decode": run_pymodes_decode}


def _peak_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(which: str, path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", which, "--file", str(path)], check=True, capture_output=True, text=True
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _report(label: str, n: int, r: dict[str, Any]) -> None:
    print(
        f"{label:<34} {r['secs']:7.2f}s wall {r['cpu']:7.2f}s CPU  {n / r['secs']:>10,.0f} msgs/s wall"
        f"  {n / r['cpu']:>10,.0f} msgs/s CPU  {r['extra']}  peak RSS {r['rss_mib']:.0f} MiB"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1_000_000, help="messages to generate")
    ap.add_argument("--aircraft", type=int, default=3000, help="distinct aircraft")
    ap.add_argument("--skip-peer", action="store_true", help="time only the atalaya reader")
    ap.add_argument("--child", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    ap.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        secs, cpu, extra = RUNNERS[args.child](args.file)
        print(json.dumps({"secs": secs, "cpu": cpu, "extra": extra, "rss_mib": _peak_rss_mib()}))
        return
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "capture.avr"
        t = time.perf_counter()
        counts = generate(path, args.n, args.aircraft)
        print(f"generated {args.n:,} messages ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t:.1f}s:"
              f" {counts}")  # fmt: skip
        a = _measure("atalaya", path)
        _report("atalaya ModeSHexReader", args.n, a)
        if args.skip_peer:
            return
        for which, label in (("pymodes-pipe", "pyModeS PipeDecoder.decode"), ("pymodes-decode", "pyModeS decode")):
            p = _measure(which, path)
            _report(label, args.n, p)
            print(
                f"  ratio atalaya/{label}: {p['secs'] / a['secs']:.1f}x by wall time,"
                f" {p['cpu'] / a['cpu']:.1f}x by CPU time"
            )
        print(f"os.cpu_count()={os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
