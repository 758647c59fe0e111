"""Benchmark: ``detect_sites`` on synthetic detections vs scikit-learn DBSCAN / HDBSCAN at equal size.

Synthetic detections: clustered around sites (structures, night heat, stopped
vehicles, SIGINT ellipses) plus uniform noise over northern Mexico. Each
measurement runs in a fresh subprocess so that its peak RSS is its own.
The peers only cluster points (no scoring); they run on the largest size they
manage within ``--peer-max`` and the ratio is printed at equal size.

    .venv/bin/python bench/bench_sites.py --n 10000000 --peer-n 200000,1000000
    taskset -c 0,1 .venv/bin/python bench/bench_sites.py ...   # the 2-core target

scikit-learn is a benchmark peer only (``pip install scikit-learn``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np

US_D = 86_400_000_000
DAY0 = 20_514


def synth(n: int, seed: int = 7) -> dict[str, Any]:
    """``n`` detections: 60 % around 20 000 places, 40 % uniform noise; 7 days."""
    rng = np.random.default_rng(seed)
    n_sites = 20_000
    sx, sy = rng.uniform(-110, -100, n_sites), rng.uniform(20, 30, n_sites)
    nc = int(n * 0.6)
    which = rng.integers(0, n_sites, nc)
    kinds = np.array(["structure", "thermal", "vehicle", "emitter"], dtype=object)
    sensors = np.array(["EO", "IR", "EO", "SIGINT"], dtype=object)
    kc = rng.integers(0, 4, nc)
    err_c = np.where(kc == 3, rng.uniform(250, 900, nc), rng.uniform(15, 80, nc))
    k = 111_320.0
    lon_c = sx[which] + rng.normal(0, 1, nc) * err_c / (k * np.cos(np.radians(sy[which])))
    lat_c = sy[which] + rng.normal(0, 1, nc) * err_c / k
    nn = n - nc
    kn = rng.integers(0, 4, nn)
    lon = np.concatenate([lon_c, rng.uniform(-110, -100, nn)])
    lat = np.concatenate([lat_c, rng.uniform(20, 30, nn)])
    kk = np.concatenate([kc, kn])
    err = np.concatenate([err_c, rng.uniform(15, 80, nn)])
    return {
        "lon": lon,
        "lat": lat,
        "time_us": (DAY0 + rng.integers(0, 7, n)) * US_D + rng.integers(0, US_D, n),
        "sensor": sensors[kk],
        "kind": kinds[kk],
        "pos_err_m": err,
        "confidence": rng.uniform(0.3, 0.95, n),
        "speed_mps": np.where(kk == 2, rng.uniform(0, 3, n), np.nan),
    }


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_one(method: str, n: int) -> dict[str, Any]:
    """Run one method on ``n`` detections in this process; returns time and peak RSS."""
    data = synth(n)
    from atalaya.fusion.sites import detect_sites

    base = _peak_rss_mb()
    t0 = time.perf_counter()
    if method == "atalaya":
        out = detect_sites(**data)
        found = out.n_sites
    else:
        from atalaya.fusion.grid import mercator

        x, y = mercator(data["lon"], data["lat"])
        xy = np.column_stack([x, y])
        if method == "dbscan":
            from sklearn.cluster import DBSCAN  # type: ignore[import-untyped]  # no stubs; benchmark peer only

            labels = DBSCAN(eps=150.0, min_samples=4, n_jobs=-1).fit_predict(xy)
        else:
            from sklearn.cluster import HDBSCAN

            labels = HDBSCAN(min_cluster_size=4).fit_predict(xy)
        found = int(labels.max() + 1)
    secs = time.perf_counter() - t0
    return {"method": method, "n": n, "seconds": round(secs, 2), "peak_rss_mb": round(_peak_rss_mb(), 1),
            "rss_before_mb": round(base, 1), "clusters_or_sites": found}  # fmt: skip


def measure(method: str, n: int, timeout: float) -> dict[str, Any] | None:
    """Run one method in a fresh subprocess; None when it fails or runs past ``timeout``."""
    cmd = [sys.executable, __file__, "--child", method, "--n", str(n)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        print(f"  {method} n={n:,}: over {timeout:.0f} s, stopped", flush=True)
        return None
    if res.returncode != 0:
        print(f"  {method} n={n:,}: failed ({res.stderr.strip().splitlines()[-1:] or res.returncode})", flush=True)
        return None
    out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"  {out}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000_000, help="detections for detect_sites")
    ap.add_argument("--peer-n", default="200000,1000000", help="sizes for the peers and the equal-size comparison")
    ap.add_argument("--peer-timeout", type=float, default=600.0, help="seconds before a peer run is abandoned")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(run_one(a.child, a.n)))
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cores available: {cores}")
    print(f"detect_sites on {a.n:,} detections")
    big = measure("atalaya", a.n, 3600.0)
    sizes = [int(s) for s in a.peer_n.split(",") if s]
    for peer in ("dbscan", "hdbscan"):
        for n in sizes:
            print(f"{peer} vs detect_sites at n={n:,}")
            p = measure(peer, n, a.peer_timeout)
            if p is None:
                break
            m = measure("atalaya", n, a.peer_timeout)
            if m is not None and m["seconds"] > 0:
                print(f"  ratio {peer}/detect_sites time: {p['seconds'] / m['seconds']:.1f}x, "
                      f"peak RSS {p['peak_rss_mb']:.0f} vs {m['peak_rss_mb']:.0f} MB")  # fmt: skip
    if big:
        ok = big["seconds"] < 60 and big["peak_rss_mb"] < 2048
        print(f"target (< 60 s, < 2 GB at {a.n:,}): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
