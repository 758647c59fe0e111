"""Benchmark: CotReader against the lxml ``iterparse`` loop an analyst would write.

Generates ``--events`` ATAK-style CoT events (contact, __group, track details)
wrapped in an ``<events>`` root (so the peer can read the same file), then reads
the file with each contender in a fresh child process and prints events/s, the
ratio and each process's peak RSS.

    .venv/bin/python bench/bench_cot.py --events 200000
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

import numpy as np

TYPES = ("a-f-A-M-F-Q", "a-h-G-E-V-C", "a-u-S-X", "a-f-G-U-C", "b-m-p-s-p-i")


def generate(path: Path, n: int, seed: int = 7) -> int:
    """Write ``n`` events to ``path``; returns the byte size."""
    rng = np.random.default_rng(seed)
    t0 = np.datetime64("2024-05-01T00:00:00", "ms")
    lat = rng.uniform(14.0, 33.0, n)
    lon = rng.uniform(-118.0, -86.0, n)
    hae = rng.uniform(0, 12000, n)
    spd = rng.uniform(0, 250, n)
    crs = rng.uniform(0, 360, n)
    kinds = rng.integers(0, len(TYPES), n)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('<?xml version="1.0" encoding="UTF-8"?>\n<events>\n')
        for i in range(n):
            t = str(t0 + np.timedelta64(i * 250, "ms")) + "Z"
            fh.write(
                f'<event version="2.0" uid="UID-{i % 5000:05d}" type="{TYPES[kinds[i]]}" time="{t}" '
                f'start="{t}" stale="{t}" how="m-g"><point lat="{lat[i]:.6f}" lon="{lon[i]:.6f}" '
                f'hae="{hae[i]:.1f}" ce="9999999" le="9999999"/><detail><contact callsign="CS-{i % 5000}" '
                f'endpoint="*:-1:stcp"/><__group name="Cyan" role="Team Member"/>'
                f'<track speed="{spd[i]:.2f}" course="{crs[i]:.1f}"/></detail></event>\n'
            )
        fh.write("</events>\n")
    return path.stat().st_size


def run_atalaya(path: Path) -> int:
    from atalaya.ingest.base import ReadOptions
    from atalaya.ingest.cot import CotReader

    n = 0
    for batch in CotReader().read(path, ReadOptions()):
        n += len(batch)
    return n


def run_peer(path: Path) -> int:
    """The straightforward loop: iterparse, a dict per event, parse values, clear."""
    from datetime import datetime

    from lxml import etree

    rows: list[dict[str, object]] = []
    for _, ev in etree.iterparse(str(path), events=("end",), tag="event"):
        pt = ev.find("point")
        det = ev.find("detail")
        contact = det.find("contact") if det is not None else None
        track = det.find("track") if det is not None else None
        rows.append(
            {
                "uid": ev.get("uid"),
                "type": ev.get("type"),
                "time": datetime.fromisoformat(ev.get("time")),
                "lat": float(pt.get("lat")),
                "lon": float(pt.get("lon")),
                "hae": float(pt.get("hae")),
                "ce": float(pt.get("ce")),
                "callsign": contact.get("callsign") if contact is not None else None,
                "speed": float(track.get("speed")) if track is not None else None,
                "course": float(track.get("course")) if track is not None else None,
            }
        )
        ev.clear()
        while ev.getprevious() is not None:
            del ev.getparent()[0]
    return len(rows)


def child(which: str, path: Path) -> None:
    t = time.perf_counter()
    n = run_atalaya(path) if which == "atalaya" else run_peer(path)
    dt = time.perf_counter() - t
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"n": n, "seconds": dt, "rss_mb": rss_mb}))


def measure(which: str, path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", which, str(path)], check=True, capture_output=True, text=True
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs per contender")
    ap.add_argument("--child", nargs=2, metavar=("WHICH", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.cot"
        size = generate(path, args.events)
        print(f"{args.events} events, {size / 1e6:.1f} MB")
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.repeat):
            for which in ("atalaya", "peer"):
                r = measure(which, path)
                if r["n"] != args.events:
                    raise SystemExit(f"{which} read {r['n']} events, expected {args.events}")
                if which not in best or r["seconds"] < best[which]["seconds"]:
                    best[which] = r
        for which, r in best.items():
            rate = r["n"] / r["seconds"]
            print(f"{which:8s} {rate:>12,.0f} events/s  {r['seconds']:.2f} s  peak RSS {r['rss_mb']:.0f} MB")
        ratio = best["peer"]["seconds"] / best["atalaya"]["seconds"]
        print(f"ratio   CotReader is {ratio:.1f}x the lxml iterparse peer")


if __name__ == "__main__":
    main()
