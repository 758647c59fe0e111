"""Benchmark: overflight accounting of many tracks vs point-labelling peers.

    python bench/bench_accounting.py --n 10000000 --tracks 2000

(a) atalaya accounting (country and state levels, crossings, depth),
(b) GeoPandas ``sjoin`` point labelling (countries only; skipped if geopandas is missing),
(c) a hand-tuned shapely ``contains_xy`` loop with a bounding-box prefilter (countries only).
First, the start-up cost of a new process with an empty and with a filled on-disk cache.
Each part runs in its own process so that peak RSS is measured per part.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from typing import Any

import numpy as np


def make_tracks(n: int, tracks: int, seed: int = 0) -> dict[str, Any]:
    """Random-walk tracks over Mexico, the US border and the Gulf, ~1 km steps every 10 s."""
    rng = np.random.default_rng(seed)
    per = n // tracks
    lon0 = rng.uniform(-112.0, -86.0, tracks)
    lat0 = rng.uniform(16.0, 31.0, tracks)
    heading = np.cumsum(rng.normal(0.0, 0.15, (tracks, per)), axis=1) + rng.uniform(0, 2 * np.pi, (tracks, 1))
    step = 0.009
    lon = lon0[:, None] + np.cumsum(step * np.cos(heading), axis=1)
    lat = lat0[:, None] + np.cumsum(step * np.sin(heading), axis=1)
    tid = np.repeat(np.arange(tracks), per)
    t = np.tile(np.arange(per, dtype=np.int64) * 10_000_000, tracks) + 1_700_000_000_000_000
    return {"track_id": tid, "time_us": t, "lon": lon.ravel(), "lat": lat.ravel()}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def part_atalaya(n: int, tracks: int, q: Any) -> None:
    from atalaya.geo.territories import depth_upper_bound, label_points, load_territories
    from atalaya.sovereignty.accounting import account_tracks

    terr = load_territories()
    t0 = time.perf_counter()
    for level in ("country", "state"):  # lookup grids and depth-bound grids are built once per process
        label_points(terr, np.zeros(1), np.zeros(1), level)
        depth_upper_bound(terr, np.zeros(1), np.zeros(1), np.zeros(1, dtype=np.int64), level)
    print(f"  (grids built once per process in {time.perf_counter() - t0:.2f} s)", flush=True)
    d = make_tracks(n, tracks)
    base = _rss_mb()
    t0 = time.perf_counter()
    c0 = time.process_time()
    acc = account_tracks(territories=terr, **d)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    q.put(("atalaya accounting (country+state)", dt, _rss_mb(), base, f"{acc.summary.num_rows} rows, cpu {cpu:.2f} s"))


def part_start(cache: str, q: Any) -> None:
    """Time from a new process to territories and grids ready, with the on-disk cache in ``cache``."""
    import os

    os.environ["ATALAYA_CACHE_DIR"] = cache
    t0 = time.perf_counter()
    c0 = time.process_time()
    from atalaya.geo.territories import depth_upper_bound, label_points, load_territories

    terr = load_territories()
    for level in ("country", "state"):
        label_points(terr, np.zeros(1), np.zeros(1), level)
        depth_upper_bound(terr, np.zeros(1), np.zeros(1), np.zeros(1, dtype=np.int64), level)
    q.put((time.perf_counter() - t0, time.process_time() - c0, _rss_mb()))


def start_times(ctx: Any) -> None:
    """Cold start (empty cache folder: derive and save everything) vs warm start (load it) in fresh processes."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="atalaya-cache-") as cache:
        for what in ("cold start (empty cache)", "warm start (cached)"):
            q = ctx.Queue()
            p = ctx.Process(target=part_start, args=(cache, q))
            p.start()
            wall, cpu, rss = q.get()
            p.join()
            print(
                f"{what:<40} {wall:8.2f} s   cpu {cpu:.2f} s   peak RSS {rss:7.0f} MB  (import + territories + grids)"
            )


def part_labels_only(n: int, tracks: int, q: Any) -> None:
    from atalaya.geo.territories import label_points, load_territories

    terr = load_territories()
    label_points(terr, np.zeros(1), np.zeros(1), "country")
    d = make_tracks(n, tracks)
    base = _rss_mb()
    t0 = time.perf_counter()
    lab = label_points(terr, d["lon"], d["lat"], "country")
    dt = time.perf_counter() - t0
    q.put(("atalaya label_points (country)", dt, _rss_mb(), base, int((lab >= 0).sum())))


def part_geopandas(n: int, tracks: int, q: Any) -> None:
    try:
        import geopandas as gpd  # type: ignore[import-untyped]  # bench-only peer, ships no type stubs
    except ImportError:
        q.put(("geopandas sjoin (country)", None, 0.0, 0.0, "skipped: geopandas not installed"))
        return
    from atalaya.geo.territories import load_territories

    terr = load_territories()
    idx = terr.level_indices("country")
    polys = gpd.GeoDataFrame({"tid": idx}, geometry=list(terr.geoms[idx]), crs="EPSG:4326")
    d = make_tracks(n, tracks)
    base = _rss_mb()
    t0 = time.perf_counter()
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(d["lon"], d["lat"]), crs="EPSG:4326")
    j = gpd.sjoin(pts, polys, how="left", predicate="within")
    dt = time.perf_counter() - t0
    q.put(("geopandas sjoin (country)", dt, _rss_mb(), base, int(j["tid"].notna().sum())))


def part_shapely_loop(n: int, tracks: int, q: Any) -> None:
    import shapely

    from atalaya.geo.territories import load_territories

    terr = load_territories()
    idx = terr.level_indices("country")
    d = make_tracks(n, tracks)
    x, y = d["lon"], d["lat"]
    base = _rss_mb()
    t0 = time.perf_counter()
    out = np.full(len(x), -1, dtype=np.int64)
    for i in idx:
        g = terr.geoms[i]
        bx0, by0, bx1, by1 = g.bounds
        m = np.flatnonzero((x >= bx0) & (x <= bx1) & (y >= by0) & (y <= by1))
        out[m[shapely.contains_xy(g, x[m], y[m])]] = i
    dt = time.perf_counter() - t0
    q.put(("shapely contains_xy loop (country)", dt, _rss_mb(), base, int((out >= 0).sum())))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10_000_000, help="total track points")
    ap.add_argument("--tracks", type=int, default=2_000, help="number of tracks")
    ap.add_argument("--skip-geopandas", action="store_true")
    ap.add_argument("--skip-start", action="store_true", help="skip the cold vs warm start measurement")
    a = ap.parse_args(argv)
    parts = [part_atalaya, part_labels_only, part_shapely_loop]
    if not a.skip_geopandas:
        parts.append(part_geopandas)
    ctx = mp.get_context("spawn")
    if not a.skip_start:
        start_times(ctx)
    results = {}
    print(f"{a.n:,} points in {a.tracks:,} tracks")
    for fn in parts:
        q = ctx.Queue()
        p = ctx.Process(target=fn, args=(a.n, a.tracks, q))
        p.start()
        name, dt, rss, base, extra = q.get()
        p.join()
        results[fn.__name__] = dt
        if dt is None:
            print(f"{name:<40} {extra}")
        else:
            print(f"{name:<40} {dt:8.2f} s   peak RSS {rss:7.0f} MB (inputs+setup {base:.0f} MB)   [{extra}]")
    ours = results["part_atalaya"]
    for k in ("part_shapely_loop", "part_geopandas"):
        if results.get(k):
            print(f"ratio {k[5:]} / atalaya accounting = {results[k] / ours:.2f}x")
    if results.get("part_shapely_loop"):
        print(
            f"ratio shapely_loop / atalaya labels = {results['part_shapely_loop'] / results['part_labels_only']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
