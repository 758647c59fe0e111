"""Benchmark: accounting against every country of the world, and the world set's start-up from the cache.

    python bench/bench_world.py --n 10000000 --tracks 2000

Tracks are great-circle flights between 48 cities of Europe, Africa, Asia and the Americas (none crossing the
antimeridian), one fix every 10 s. Parts, each in its own process (peak RSS per part):

(0) start-up of a new process with the on-disk cache filled: import, the world set (all 258 countries with
    their territorial seas, and the bundled states), lookup and depth-bound grids of both levels ready;
(a) atalaya ``account_tracks`` at country level (crossings, entries, depth) against the world set, then the
    same without depth;
(b) atalaya ``label_points`` alone (country);
(c) shapely ``STRtree`` box query, then prepared ``contains`` per candidate pair, on the same points (country);
(d) GeoPandas ``sjoin`` (country; skipped when geopandas is missing).
The first run derives the world set into the cache (a few minutes); ``--cache DIR`` keeps it between runs.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
from typing import Any

import numpy as np

CITIES: dict[str, tuple[float, float]] = {
    # Europe
    "London": (-0.13, 51.51), "Paris": (2.35, 48.86), "Berlin": (13.40, 52.52), "Madrid": (-3.70, 40.42),
    "Rome": (12.50, 41.90), "Warsaw": (21.01, 52.23), "Stockholm": (18.07, 59.33), "Athens": (23.73, 37.98),
    "Moscow": (37.62, 55.76), "Istanbul": (28.98, 41.01), "Lisbon": (-9.14, 38.72), "Kyiv": (30.52, 50.45),
    # Africa
    "Cairo": (31.24, 30.04), "Lagos": (3.38, 6.52), "Nairobi": (36.82, -1.29), "Johannesburg": (28.05, -26.20),
    "Casablanca": (-7.59, 33.57), "Dakar": (-17.47, 14.72), "Addis Ababa": (38.75, 9.03), "Kinshasa": (15.27, -4.44),
    "Algiers": (3.06, 36.75), "Luanda": (13.23, -8.84), "Khartoum": (32.56, 15.50), "Cape Town": (18.42, -33.92),
    # Asia
    "Dubai": (55.27, 25.20), "Delhi": (77.21, 28.61), "Mumbai": (72.88, 19.08), "Beijing": (116.40, 39.90),
    "Tokyo": (139.69, 35.69), "Singapore": (103.82, 1.35), "Bangkok": (100.50, 13.76), "Tehran": (51.39, 35.69),
    "Riyadh": (46.68, 24.71), "Karachi": (67.01, 24.86), "Seoul": (126.98, 37.57), "Jakarta": (106.85, -6.21),
    # Americas
    "New York": (-74.01, 40.71), "Mexico City": (-99.13, 19.43), "Bogota": (-74.07, 4.71), "Lima": (-77.04, -12.05),
    "Sao Paulo": (-46.63, -23.55), "Buenos Aires": (-58.38, -34.60), "Miami": (-80.19, 25.76),
    "Toronto": (-79.38, 43.65), "Caracas": (-66.90, 10.48), "Santiago": (-70.67, -33.45),
    "Panama": (-79.52, 8.98), "Havana": (-82.37, 23.11),
}  # fmt: skip


def make_flights(n: int, tracks: int, seed: int = 0) -> dict[str, Any]:
    """Great-circle flights between random city pairs (spherical interpolation), ``n // tracks`` fixes each."""
    rng = np.random.default_rng(seed)
    ll = np.radians(np.array(list(CITIES.values())))
    xyz = np.column_stack([np.cos(ll[:, 1]) * np.cos(ll[:, 0]), np.cos(ll[:, 1]) * np.sin(ll[:, 0]), np.sin(ll[:, 1])])
    per = n // tracks
    f = np.linspace(0.0, 1.0, per)
    lon_rows: list[Any] = []
    lat_rows: list[Any] = []
    while len(lon_rows) < tracks:
        a, b = rng.choice(len(xyz), 2, replace=False)
        om = np.arccos(np.clip(xyz[a] @ xyz[b], -1.0, 1.0))
        p = (np.sin((1 - f) * om)[:, None] * xyz[a] + np.sin(f * om)[:, None] * xyz[b]) / np.sin(om)
        lon = np.degrees(np.arctan2(p[:, 1], p[:, 0]))
        if np.any(np.abs(np.diff(lon)) > 180.0):
            continue  # crosses the antimeridian
        lon_rows.append(lon)
        lat_rows.append(np.degrees(np.arcsin(np.clip(p[:, 2], -1.0, 1.0))))
    tid = np.repeat(np.arange(tracks), per)
    t = np.tile(np.arange(per, dtype=np.int64) * 10_000_000, tracks) + 1_700_000_000_000_000
    return {"track_id": tid, "time_us": t, "lon": np.concatenate(lon_rows), "lat": np.concatenate(lat_rows)}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def part_start(cache: str, q: Any) -> None:
    """Time from a new process to the world set and its grids ready (one tile), with the cache in ``cache``."""
    os.environ["ATALAYA_CACHE_DIR"] = cache
    t0 = time.perf_counter()
    c0 = time.process_time()
    from atalaya.geo.territories import depth_upper_bound, label_points
    from atalaya.geo.world import load_world

    t1 = time.perf_counter()
    terr = load_world()
    for level in ("country", "state"):
        lab = label_points(terr, np.zeros(1), np.zeros(1), level)
        depth_upper_bound(terr, np.zeros(1), np.zeros(1), lab, level)
    q.put((time.perf_counter() - t0, time.perf_counter() - t1, time.process_time() - c0, _rss_mb(), len(terr)))


def _world(cache: str) -> Any:
    os.environ["ATALAYA_CACHE_DIR"] = cache
    from atalaya.geo.world import load_world

    return load_world()


def part_atalaya(cache: str, n: int, tracks: int, q: Any, depth: bool = True) -> None:
    from atalaya.geo.territories import depth_upper_bound, label_points
    from atalaya.sovereignty.accounting import account_tracks

    terr = _world(cache)
    label_points(terr, np.zeros(1), np.zeros(1))
    depth_upper_bound(terr, np.zeros(1), np.zeros(1), np.zeros(1, dtype=np.int64))
    d = make_flights(n, tracks)
    base = _rss_mb()
    t0 = time.perf_counter()
    c0 = time.process_time()
    acc = account_tracks(territories=terr, levels=("country",), depth=depth, **d)
    first, first_cpu = time.perf_counter() - t0, time.process_time() - c0
    # Again in the same process: the tiles the flights touch are loaded, the boundary index is built.
    t0 = time.perf_counter()
    c0 = time.process_time()
    acc = account_tracks(territories=terr, levels=("country",), depth=depth, **d)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    visited = len(set(acc.summary.column("territory_id").to_pylist()))
    extra = (
        f"{acc.summary.num_rows} rows, {visited} territories visited, cpu {cpu:.2f} s; first call in the process "
        f"(loads the tiles): {first:.2f} s, cpu {first_cpu:.2f} s"
    )
    q.put((f"atalaya accounting (country, {'depth' if depth else 'no depth'})", dt, _rss_mb(), base, extra))


def part_atalaya_no_depth(cache: str, n: int, tracks: int, q: Any) -> None:
    part_atalaya(cache, n, tracks, q, depth=False)


def part_labels(cache: str, n: int, tracks: int, q: Any) -> None:
    from atalaya.geo.territories import label_points

    terr = _world(cache)
    label_points(terr, np.zeros(1), np.zeros(1))
    d = make_flights(n, tracks)
    base = _rss_mb()
    t0 = time.perf_counter()
    c0 = time.process_time()
    lab = label_points(terr, d["lon"], d["lat"])
    dt = time.perf_counter() - t0
    extra = f"{int((lab >= 0).sum())} in a country, cpu {time.process_time() - c0:.2f} s (tiles loaded in the call)"
    q.put(("atalaya label_points (country)", dt, _rss_mb(), base, extra))


def part_strtree(cache: str, n: int, tracks: int, q: Any) -> None:
    import shapely

    terr = _world(cache)
    idx = terr.level_indices("country")
    geoms = terr.geoms[idx]
    d = make_flights(n, tracks)
    base = _rss_mb()
    t0 = time.perf_counter()
    shapely.prepare(geoms)
    tree = shapely.STRtree(geoms)
    out = np.full(n, -1, dtype=np.int64)
    step = 1 << 20
    for a in range(0, n, step):  # in blocks, so the point geometries stay in memory once
        pts = shapely.points(d["lon"][a : a + step], d["lat"][a : a + step])
        pi, gi = tree.query(pts)  # box candidates, then the prepared polygons' exact test
        ok = shapely.contains(geoms[gi], pts[pi])
        out[a + pi[ok]] = idx[gi[ok]]
    dt = time.perf_counter() - t0
    q.put(("shapely STRtree + contains (country)", dt, _rss_mb(), base, f"{int((out >= 0).sum())} in a country"))


def part_geopandas(cache: str, n: int, tracks: int, q: Any) -> None:
    try:
        import geopandas as gpd  # type: ignore[import-untyped]  # bench-only peer, ships no type stubs
    except ImportError:
        q.put(("geopandas sjoin (country)", None, 0.0, 0.0, "skipped: geopandas not installed"))
        return
    terr = _world(cache)
    idx = terr.level_indices("country")
    polys = gpd.GeoDataFrame({"tid": idx}, geometry=list(terr.geoms[idx]), crs="EPSG:4326")
    d = make_flights(n, tracks)
    base = _rss_mb()
    t0 = time.perf_counter()
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(d["lon"], d["lat"]), crs="EPSG:4326")
    j = gpd.sjoin(pts, polys, how="left", predicate="within")
    dt = time.perf_counter() - t0
    q.put(("geopandas sjoin (country)", dt, _rss_mb(), base, f"{int(j['tid'].notna().sum())} in a country"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10_000_000, help="total fixes")
    ap.add_argument("--tracks", type=int, default=2_000, help="number of flights")
    ap.add_argument("--cache", help="cache folder (default: a new temporary one, derived first)")
    ap.add_argument("--skip-geopandas", action="store_true")
    ap.add_argument("--skip-peers", action="store_true", help="only atalaya's parts")
    a = ap.parse_args(argv)
    import tempfile

    tmp = None if a.cache else tempfile.TemporaryDirectory(prefix="atalaya-world-")
    cache = a.cache or (tmp.name if tmp else "")
    ctx = mp.get_context("spawn")
    try:
        for what in ("first start (derives what the cache lacks)", "new process, cache filled"):
            q = ctx.Queue()
            p = ctx.Process(target=part_start, args=(cache, q))
            p.start()
            wall, ready, cpu, rss, count = q.get()
            p.join()
            print(
                f"{what:<44} {wall:8.2f} s (world set + grids after import: {ready:.2f} s)   cpu {cpu:.2f} s   "
                f"peak RSS {rss:6.0f} MB   {count} territories"
            )
        parts = [part_atalaya, part_atalaya_no_depth, part_labels]
        if not a.skip_peers:
            parts += [part_strtree] + ([] if a.skip_geopandas else [part_geopandas])
        results: dict[str, float] = {}
        print(f"{a.n:,} fixes in {a.tracks:,} great-circle flights")
        for fn in parts:
            q = ctx.Queue()
            p = ctx.Process(target=fn, args=(cache, a.n, a.tracks, q))
            p.start()
            name, dt, rss, base, extra = q.get()
            p.join()
            if dt is None:
                print(f"{name:<40} {extra}")
                continue
            results[fn.__name__] = dt
            print(f"{name:<40} {dt:8.2f} s   peak RSS {rss:7.0f} MB (inputs+setup {base:.0f} MB)   [{extra}]")
        for k in ("part_strtree", "part_geopandas"):
            if k in results:
                print(
                    f"ratio {k[5:]} / atalaya accounting = {results[k] / results['part_atalaya']:.2f}x;  "
                    f"/ atalaya labels = {results[k] / results['part_labels']:.2f}x"
                )
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
