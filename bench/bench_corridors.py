"""Benchmark: corridors (H3 cell flows) on many track points vs a pandas peer.

    python bench/bench_corridors.py --n 1000000 --tracks 2000 --res 6

(a) :func:`atalaya.fusion.corridors.corridor_flows`: cells, directed edges with
    distinct-track volumes, gap filling along the grid, ranked corridors;
(b) the peer a user would write: ``h3.latlng_to_cell`` per point in a Python
    loop, pandas ``groupby`` for cell and edge volumes (distinct tracks) and a
    Python breadth-first search for the corridors (no gap filling, so it does
    less work).
Both run in this process on the same data; the script prints both times, the
ratio and the cell IoU of the two corridor sets.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from typing import Any

import numpy as np


def make_tracks(n: int, tracks: int, lanes: int = 40, seed: int = 0) -> dict[str, Any]:
    """Tracks along ``lanes`` random straight lanes over Mexico (≈ 600 m steps every 30 s, 300 m noise)."""
    rng = np.random.default_rng(seed)
    per = n // tracks
    a = np.column_stack([rng.uniform(-112, -90, lanes), rng.uniform(16, 31, lanes)])
    b = a + rng.normal(0, 1.5, (lanes, 2))
    lane = rng.integers(0, lanes, tracks)
    f = np.linspace(0, 1, per)
    lon = a[lane, 0][:, None] + f[None, :] * (b[lane, 0] - a[lane, 0])[:, None] + rng.normal(0, 0.003, (tracks, per))
    lat = a[lane, 1][:, None] + f[None, :] * (b[lane, 1] - a[lane, 1])[:, None] + rng.normal(0, 0.003, (tracks, per))
    tid = np.repeat(np.arange(tracks), per)
    t = np.tile(np.arange(per, dtype=np.int64) * 30_000_000, tracks) + 1_700_000_000_000_000
    return {"track_id": tid, "time_us": t, "lon": lon.ravel(), "lat": lat.ravel()}


def peer(d: dict[str, Any], res: int, min_tracks: int, min_cells: int) -> set[int]:
    import h3
    import pandas as pd

    df = pd.DataFrame(d)
    df["cell"] = [h3.latlng_to_cell(la, lo, res) for la, lo in zip(df["lat"], df["lon"], strict=True)]
    df = df.sort_values(["track_id", "time_us"])
    df["prev"] = df.groupby("track_id")["cell"].shift()
    steps = df[df["prev"].notna() & (df["prev"] != df["cell"])]
    cell_vol = df.groupby("cell")["track_id"].nunique()
    edge_vol = steps.groupby(["prev", "cell"])["track_id"].nunique()
    hot = set(cell_vol[cell_vol >= min_tracks].index)
    adj: dict[str, set[str]] = defaultdict(set)
    for (u, v), k in edge_vol.items():
        if k >= min_tracks and u in hot and v in hot:
            adj[u].add(v)
            adj[v].add(u)
    seen: set[str] = set()
    out: set[int] = set()
    for s in adj:
        if s in seen:
            continue
        comp, stack = [], [s]
        seen.add(s)
        while stack:
            u = stack.pop()
            comp.append(u)
            for v in adj[u] - seen:
                seen.add(v)
                stack.append(v)
        if len(comp) >= min_cells:
            out.update(h3.str_to_int(c) for c in comp)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--tracks", type=int, default=2000)
    ap.add_argument("--res", type=int, default=6)
    args = ap.parse_args()
    from atalaya.evaluate.events import cell_iou
    from atalaya.fusion.corridors import CorridorParams, corridor_flows

    d = make_tracks(args.n, args.tracks)
    p = CorridorParams(res=args.res)
    t0 = time.perf_counter()
    f = corridor_flows(d["track_id"], d["time_us"], d["lon"], d["lat"], params=p)
    ta = time.perf_counter() - t0
    ours = f.cells.column("cell").to_numpy()[f.cells.column("corridor").to_numpy() >= 0]
    t0 = time.perf_counter()
    theirs = peer(d, args.res, p.min_tracks, p.min_cells)
    tp = time.perf_counter() - t0
    print(f"points {args.n:,}  tracks {args.tracks:,}  H3 res {args.res}")
    print(f"atalaya corridor_flows   {ta:7.2f} s   corridors {f.corridors.num_rows}  cells {ours.size}")
    print(f"pandas + h3 loop peer    {tp:7.2f} s   cells {len(theirs)}")
    iou = cell_iou(ours.view(np.uint64), np.array(sorted(theirs), dtype=np.uint64))
    print(f"speed-up {tp / ta:.1f}x   corridor cell IoU vs peer {iou:.3f}")


if __name__ == "__main__":
    main()
