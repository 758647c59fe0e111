"""Scenario generation benchmark: wall time, peak RSS and observations per size.

Each size runs in a fresh child process so peak RSS is that run's alone::

    .venv/bin/python bench/bench_scenario.py            # demo and small
    .venv/bin/python bench/bench_scenario.py --large    # and large (long; needs disk)
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

CHILD = """
import json, sys
from pathlib import Path
from atalaya.scenario.generate import generate
s = generate(Path(sys.argv[1]), size=sys.argv[2], seed=int(sys.argv[3]))
print(json.dumps(s.to_dict()))
"""


def run(size: str, seed: int, keep: Path | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        out = (keep or Path(tmp)) / f"scenario-{size}"
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(out), size, str(seed)], capture_output=True, text=True, check=True
        )
        wall = time.perf_counter() - t0
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {
        "size": size,
        "seed": seed,
        "wall_s": round(wall, 1),
        "peak_rss_mb_max_so_far": round(rss_mb),
        "observations": summary["observations"],
        "counts": summary["counts"],
        "disk_mb": round(disk / 2**20, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", action="store_true", help="also run the large size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None, help="keep outputs under this directory")
    args = ap.parse_args()
    sizes = ["demo", "small"] + (["large"] if args.large else [])
    for size in sizes:
        print(json.dumps(run(size, args.seed, args.keep)), flush=True)


if __name__ == "__main__":
    main()
