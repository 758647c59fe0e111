"""Exact overflight accounting: time, distance, entries and depth per track and territory.

Many tracks are accounted at once (rows sorted by track, then time). Between two
fixes the object is assumed to move at constant speed along the straight line in
lon/lat (for fixes a few km apart this is the geodesic within metres). Where the
line crosses territory boundaries, the crossing points are found exactly
(shapely intersection of the segment with the boundaries) and the segment's
time and geodesic length are split in proportion to the fraction on each side.
Outside every territory of a level the track is in the ``INTL`` pseudo-territory,
so the totals of a track at one level add up to its duration and length.

Depth is the geodesic distance (km) from a fix inside a territory to the
territory's boundary (land border, coast for states, or the 12 nm limit for
countries); crossing points have depth 0. The nearest boundary point is found in
an azimuthal equidistant plane centred on the fixes of that territory and the
distance to it is then measured on the WGS84 ellipsoid (typically within 0.5 %).
Only fixes that could beat the best depth found so far are measured exactly: depth
is 1-Lipschitz along the track, so fixes whose along-track bound cannot exceed the
maximum are skipped.

>>> import numpy as np
>>> from shapely.geometry import box
>>> from atalaya.geo.territories import territories_from_geometries
>>> t = territories_from_geometries(ids=["A"], geoms=[box(0.0, -1.0, 1.0, 1.0)])
>>> acc = account_tracks(
...     track_id=np.array(["x", "x"]), time_us=np.array([0, 3_000_000]),
...     lon=np.array([-1.0, 2.0]), lat=np.array([0.0, 0.0]), territories=t, levels=("country",))
>>> rows = acc.summary.to_pylist()
>>> [(r["territory_id"], round(r["time_s"], 3), r["entries"]) for r in rows]
[('INTL', 2.0, 1), ('A', 1.0, 1)]
>>> empty = account_tracks(track_id=np.array([], dtype=object), time_us=np.array([], dtype=np.int64),
...     lon=np.array([]), lat=np.array([]), territories=t)
>>> empty.summary.num_rows, empty.events.num_rows
(0, 0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import shapely

from atalaya.core.errors import ValidationError
from atalaya.geo.kernels import aeqd_forward, aeqd_inverse, geodesic_distance
from atalaya.geo.territories import Territories, cells_pure, grid_width, label_points, label_points_cells

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

DEPTH_STEPS_KM: tuple[float, ...] = (50.0, 5.0)
"""Along-track spacings of the exact depth samples before the remaining candidates are measured."""

SUMMARY_SCHEMA = pa.schema(
    [
        pa.field("track_id", pa.string()),
        pa.field("level", pa.string()),
        pa.field("territory_id", pa.string()),
        pa.field("owner", pa.string()),
        pa.field("time_s", pa.float64()),
        pa.field("distance_km", pa.float64()),
        pa.field("visits", pa.int64()),
        pa.field("entries", pa.int64()),
        pa.field("exits", pa.int64()),
        pa.field("max_depth_km", pa.float64()),
        pa.field("first_in", pa.timestamp("us", tz="UTC")),
        pa.field("last_out", pa.timestamp("us", tz="UTC")),
    ]
)
"""One row per (track, level, territory) visited; ``INTL`` has no owner and a null depth."""

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("track_id", pa.string()),
        pa.field("level", pa.string()),
        pa.field("territory_id", pa.string()),
        pa.field("event", pa.string()),
        pa.field("time", pa.timestamp("us", tz="UTC")),
        pa.field("lon", pa.float64()),
        pa.field("lat", pa.float64()),
    ]
)
"""Every boundary crossing as an ``exit`` from one territory and an ``entry`` into the next (re-entries kept)."""

TRACKS_SCHEMA = pa.schema(
    [
        pa.field("track_id", pa.string()),
        pa.field("points", pa.int64()),
        pa.field("start", pa.timestamp("us", tz="UTC")),
        pa.field("end", pa.timestamp("us", tz="UTC")),
        pa.field("duration_s", pa.float64()),
        pa.field("length_km", pa.float64()),
    ]
)
"""One row per track: the totals that each level's per-territory figures add up to."""


@dataclass(frozen=True, kw_only=True)
class Accounting:
    """Result of :func:`account_tracks`."""

    summary: pa.Table
    """Per (track, level, territory): :data:`SUMMARY_SCHEMA`."""
    events: pa.Table
    """Entries and exits: :data:`EVENTS_SCHEMA`."""
    tracks: pa.Table
    """Per track totals: :data:`TRACKS_SCHEMA`."""


@dataclass(frozen=True, kw_only=True)
class _Pieces:
    """A partition of every track into pieces lying in one territory each."""

    seg: IntArray
    """Index of the fix that starts the piece's segment."""
    f0: FloatArray
    """Fraction of the segment where the piece starts."""
    f1: FloatArray
    """Fraction where it ends."""
    label: IntArray
    """Territory index, -1 = international."""


def _segments(code: IntArray) -> tuple[IntArray, IntArray]:
    """Start and end fix of every segment; a one-fix track gets a zero-length segment."""
    n = len(code)
    last = np.ones(n, dtype=bool)
    last[:-1] = code[1:] != code[:-1]
    first = np.ones(n, dtype=bool)
    first[1:] = code[1:] != code[:-1]
    s = np.flatnonzero(~last | first & last)
    e = np.where(last[s], s, s + 1)
    return s, e


def _boundary_pieces(t: Territories, level: str) -> tuple[Any, Any, IntArray]:
    """Boundaries of the level cut into pieces of ≤ 32 vertices, their STRtree and owning territory."""
    key = f"acct:bnd:{level}"
    hit = t._cache.get(key)
    if hit is None:
        idx = t.level_indices(level)
        bnd = shapely.boundary(t.geoms[idx])
        rings = shapely.get_parts(bnd)
        ring_owner = np.repeat(idx, shapely.get_num_geometries(bnd))
        coords, ring = shapely.get_coordinates(rings, return_index=True)
        start = np.searchsorted(ring, ring)
        pos = np.arange(len(ring)) - start
        length = np.bincount(ring, minlength=len(rings))[ring]
        prim = pos < length - 1
        prim |= pos % 31 != 0
        sec = (pos % 31 == 0) & (pos > 0)
        v = np.r_[np.flatnonzero(prim), np.flatnonzero(sec)]
        piece = np.r_[pos[prim] // 31, pos[sec] // 31 - 1]
        o = np.lexsort((pos[v], piece, ring[v]))
        v, piece = v[o], piece[o]
        pkey = ring[v] * (1 << 32) + piece
        uk, pid = np.unique(pkey, return_inverse=True)
        pieces = shapely.linestrings(coords[v], indices=pid)
        owner = ring_owner[uk >> 32].astype(np.int64)
        hit = (pieces, shapely.STRtree(pieces), owner)
        t._cache[key] = hit
    return hit


def _crossings(
    t: Territories, level: str, lon: FloatArray, lat: FloatArray, s: IntArray, e: IntArray
) -> tuple[IntArray, FloatArray]:
    """Fractions along the candidate segments ``s→e`` where they meet a boundary of ``level``."""
    if len(s) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    pieces, tree, _ = _boundary_pieces(t, level)
    a = np.column_stack([lon[s], lat[s]])
    b = np.column_stack([lon[e], lat[e]])
    lines = shapely.linestrings(np.stack([a, b], axis=1))
    li, pi = tree.query(lines, predicate="intersects")
    if len(li) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    hits = shapely.intersection(lines[li], pieces[pi])
    xy, which = shapely.get_coordinates(hits, return_index=True)
    k = li[which]
    d = b[k] - a[k]
    den = np.einsum("ij,ij->i", d, d)
    f = np.einsum("ij,ij->i", xy - a[k], d) / np.where(den > 0, den, 1.0)
    return k.astype(np.int64), np.clip(f, 0.0, 1.0)


def _pieces(
    t: Territories, level: str, lon: FloatArray, lat: FloatArray, s: IntArray, e: IntArray
) -> tuple[_Pieces, IntArray]:
    lab, cells = label_points_cells(t, lon, lat, level)
    nx = max(grid_width(t, level), 1)
    cs, ce = cells[s], cells[e]
    xs, ys, xe, ye = cs % nx, cs // nx, ce % nx, ce // nx
    near = (np.abs(xs - xe) <= 1) & (np.abs(ys - ye) <= 1)
    # Within a 2×2 block of boundary-free cells the straight segment crosses no boundary.
    diag = near & (xs != xe) & (ys != ye)
    corner = np.ones(len(s), dtype=bool)
    corner[diag] = cells_pure(t, ys[diag] * nx + xe[diag], level) & cells_pure(t, ye[diag] * nx + xs[diag], level)
    safe = (cs >= 0) & (ce >= 0) & near & corner & (lab[s] == lab[e])
    cand = np.flatnonzero(~safe & (s != e))
    k, f = _crossings(t, level, lon, lat, s[cand], e[cand])
    # Each candidate segment: fractions 0, crossings…, 1 → pieces between consecutive fractions.
    kk = np.r_[k, np.arange(len(cand)), np.arange(len(cand))]
    ff = np.r_[f, np.zeros(len(cand)), np.ones(len(cand))]
    o = np.lexsort((ff, kk))
    kk, ff = kk[o], ff[o]
    same = kk[1:] == kk[:-1]
    p_k = kk[:-1][same]
    p_f0 = ff[:-1][same]
    p_f1 = ff[1:][same]
    keep = p_f1 > p_f0
    # A candidate segment with no crossing keeps one (possibly zero-length) piece.
    has = np.zeros(len(cand), dtype=bool)
    has[p_k[keep]] = True
    keep |= ~has[p_k] & (p_f0 == 0.0) & np.r_[True, p_k[1:] != p_k[:-1]]
    p_k, p_f0, p_f1 = p_k[keep], p_f0[keep], p_f1[keep]
    seg_c = cand[p_k]
    fm = 0.5 * (p_f0 + p_f1)
    si, ei = s[seg_c], e[seg_c]
    p_lab = label_points(t, lon[si] + fm * (lon[ei] - lon[si]), lat[si] + fm * (lat[ei] - lat[si]), level)
    # Merge: per segment, 1 piece (safe) or its candidate pieces, in order.
    npc = np.ones(len(s), dtype=np.int64)
    npc[cand] = 0
    np.add.at(npc, seg_c, 1)
    off = np.cumsum(npc) - npc
    total = int(npc.sum())
    seg = np.repeat(np.arange(len(s)), npc)
    f0 = np.zeros(total)
    f1 = np.ones(total)
    out_lab = np.empty(total, dtype=np.int64)
    not_cand = np.ones(len(s), dtype=bool)
    not_cand[cand] = False
    nc = np.flatnonzero(not_cand)
    out_lab[off[nc]] = lab[s[nc]]
    f1[off[nc]] = np.where(s[nc] == e[nc], 0.0, 1.0)
    rank = np.arange(len(seg_c)) - np.searchsorted(seg_c, seg_c)
    pos = off[seg_c] + rank
    f0[pos], f1[pos], out_lab[pos] = p_f0, p_f1, p_lab
    return _Pieces(seg=seg, f0=f0, f1=f1, label=out_lab), lab


def _depth_exact(t: Territories, level: str, lon: FloatArray, lat: FloatArray, terr: IntArray) -> FloatArray:
    """Geodesic distance (km) from each point to the boundary of its territory ``terr`` (≥ 0)."""
    out = np.zeros(len(lon))
    if len(lon) == 0:
        return out
    pieces, _, owner = _boundary_pieces(t, level)
    for ti in np.unique(terr).tolist():
        m = np.flatnonzero(terr == ti)
        lon0, lat0 = float(np.mean(lon[m])), float(np.mean(lat[m]))
        mine = pieces[owner == ti]
        local = shapely.transform(
            mine, lambda xy, lon0=lon0, lat0=lat0: np.column_stack(aeqd_forward(lon0, lat0, xy[:, 0], xy[:, 1]))
        )
        px, py = aeqd_forward(lon0, lat0, lon[m], lat[m])
        pts = shapely.points(px, py)
        near = shapely.STRtree(local).query_nearest(pts, all_matches=False)
        seg = shapely.shortest_line(local[near[1]], pts[near[0]])
        q = shapely.get_coordinates(shapely.get_point(seg, 0))
        qlon, qlat = aeqd_inverse(lon0, lat0, q[:, 0], q[:, 1])
        out[m[near[0]]] = geodesic_distance(lon[m[near[0]]], lat[m[near[0]]], qlon, qlat) / 1000.0
    return out


def _bound_km(lon1: FloatArray, lat1: FloatArray, lon2: FloatArray, lat2: FloatArray) -> FloatArray:
    """A safe upper bound (km) of the geodesic distance: local formula plus 1 % and 10 m."""
    return geodesic_distance(lon1, lat1, lon2, lat2, exact_beyond=False) * 1.01e-3 + 0.01


def _max_depth(
    t: Territories,
    level: str,
    lon: FloatArray,
    lat: FloatArray,
    lab: IntArray,
    code: IntArray,
    cum_km: FloatArray,
) -> FloatArray:
    """Per fix: exact depth where measured, else -inf; enough fixes measured that each group max is exact."""
    n = len(lon)
    depth = np.full(n, -np.inf)
    inside = lab >= 0
    if not inside.any():
        return depth
    # Runs of consecutive fixes in the same track and territory.
    brk = np.ones(n, dtype=bool)
    brk[1:] = (code[1:] != code[:-1]) | (lab[1:] != lab[:-1])
    run = np.cumsum(brk) - 1
    run_end = np.ones(n, dtype=bool)
    run_end[:-1] = brk[1:]
    group = code * (len(t) + 1) + lab + 1
    done = ~inside
    todo = inside & (brk | run_end)
    for step in (*DEPTH_STEPS_KM, 0.0):
        if step > 0:
            open_ = np.flatnonzero(inside & ~done)
            bucket = np.floor(cum_km[open_] / step)
            newb = np.ones(len(open_), dtype=bool)
            newb[1:] = bucket[1:] != bucket[:-1]
            todo[open_[newb]] = True
        else:
            todo = inside
        todo &= ~done
        idx = np.flatnonzero(todo)
        depth[idx] = _depth_exact(t, level, lon[idx], lat[idx], lab[idx])
        done[idx] = True
        if step == 0.0:
            break
        # Lipschitz bound from the nearest measured fix before and after in the same run.
        meas = done & inside
        ar = np.arange(n)
        prev = np.maximum.accumulate(np.where(meas, ar, -1))
        nxt = np.minimum.accumulate(np.where(meas, ar, n)[::-1])[::-1]
        # Bound from the nearest measured fix before and after in the same run: depth is 1-Lipschitz in
        # geodesic distance (the straight distance is tighter than the along-track one).
        ub = np.full(n, np.inf)
        open_ = np.flatnonzero(inside & ~done)
        pv, nv = prev[open_], nxt[open_]
        okp = (pv >= 0) & (run[np.maximum(pv, 0)] == run[open_])
        i, j = open_[okp], pv[okp]
        ub[i] = depth[j] + _bound_km(lon[i], lat[i], lon[j], lat[j])
        okn = (nv < n) & (run[np.minimum(nv, n - 1)] == run[open_])
        i, j = open_[okn], nv[okn]
        ub[i] = np.minimum(ub[i], depth[j] + _bound_km(lon[i], lat[i], lon[j], lat[j]))
        # Best measured depth per group (track, territory): runs are contiguous, groups are few.
        rstart = np.flatnonzero(brk)
        run_best = np.maximum.reduceat(np.where(meas, depth, -np.inf), rstart)
        gu, gi = np.unique(group[rstart], return_inverse=True)
        best = np.full(len(gu), -np.inf)
        np.maximum.at(best, gi, run_best)
        # Fixes that cannot beat their group's best are settled.
        done[open_] |= ub[open_] <= best[gi[run[open_]]]
        todo = np.zeros(n, dtype=bool)
    return depth


def _track_codes(track_id: Any) -> tuple[IntArray, npt.NDArray[np.object_]]:
    tid = np.asarray(track_id)
    n = len(tid)
    change = np.ones(n, dtype=bool)
    change[1:] = tid[1:] != tid[:-1]
    code = np.cumsum(change) - 1
    names = np.asarray([str(v) for v in tid[change]], dtype=object)
    return code.astype(np.int64), names


def account_tracks(
    *,
    track_id: Any,
    time_us: Any,
    lon: Any,
    lat: Any,
    territories: Territories,
    levels: Sequence[str] = ("country", "state"),
    alt_m: Any = None,
    depth: bool = True,
) -> Accounting:
    """Account many tracks at once against the territories of each level.

    Rows must be sorted by track, then time (``time_us``: int64 µs since the
    epoch, UTC). ``alt_m`` is accepted for future altitude rules and not used
    yet. With ``depth=False`` the (costlier) penetration depth is skipped (null).
    """
    del alt_m
    lon = np.ascontiguousarray(lon, dtype=np.float64)
    lat = np.ascontiguousarray(lat, dtype=np.float64)
    tus = np.ascontiguousarray(time_us, dtype=np.int64)
    n = len(lon)
    if not (len(lat) == len(tus) == n == len(np.asarray(track_id))):
        raise ValidationError("track_id, time_us, lon and lat differ in length", hint="pass one value of each per fix")
    code, names = _track_codes(track_id)
    if n and np.any((np.diff(tus) < 0) & (code[1:] == code[:-1])):
        raise ValidationError(
            "fixes are not sorted by time within a track",
            hint="sort rows by track id, then time (e.g. ORDER BY ident, time)",
        )
    if n and not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise ValidationError("non-finite coordinates", hint="drop fixes without a position before accounting")
    s, e = _segments(code)
    if n == 0:
        return Accounting(
            summary=SUMMARY_SCHEMA.empty_table(), events=EVENTS_SCHEMA.empty_table(), tracks=TRACKS_SCHEMA.empty_table()
        )
    seg_len = geodesic_distance(lon[s], lat[s], lon[e], lat[e])
    seg_dt = (tus[e] - tus[s]).astype(np.float64)
    trk_start = np.searchsorted(code, np.arange(len(names)))
    trk_end = (np.r_[trk_start[1:], n] - 1).astype(np.int64)
    trk_start = trk_start.astype(np.int64)
    cum_km = np.zeros(n)
    if n:
        step = np.zeros(n)
        step[e[e != s]] = seg_len[e != s] / 1000.0
        cum_km = np.cumsum(step)
    length_km = np.zeros(len(names))
    np.add.at(length_km, code[s], seg_len / 1000.0)
    tracks = pa.table(
        {
            "track_id": pa.array(names.tolist(), pa.string()),
            "points": pa.array(trk_end - trk_start + 1, pa.int64()),
            "start": pa.array(tus[trk_start], pa.timestamp("us", tz="UTC")),
            "end": pa.array(tus[trk_end], pa.timestamp("us", tz="UTC")),
            "duration_s": pa.array((tus[trk_end] - tus[trk_start]) / 1e6, pa.float64()),
            "length_km": pa.array(length_km, pa.float64()),
        },
        schema=TRACKS_SCHEMA,
    )
    summaries, events = [], []
    for level in levels:
        sm, ev = _account_level(territories, level, lon, lat, tus, code, names, s, e, seg_len, seg_dt, cum_km, depth)
        summaries.append(sm)
        events.append(ev)
    summary = pa.concat_tables(summaries) if summaries else SUMMARY_SCHEMA.empty_table()
    return Accounting(
        summary=summary,
        events=pa.concat_tables(events) if events else EVENTS_SCHEMA.empty_table(),
        tracks=tracks,
    )


def _account_level(
    t: Territories,
    level: str,
    lon: FloatArray,
    lat: FloatArray,
    tus: IntArray,
    code: IntArray,
    names: npt.NDArray[np.object_],
    s: IntArray,
    e: IntArray,
    seg_len: FloatArray,
    seg_dt: FloatArray,
    cum_km: FloatArray,
    with_depth: bool,
) -> tuple[pa.Table, pa.Table]:
    t.level_indices(level)  # validates the level name
    if len(s) == 0:
        return SUMMARY_SCHEMA.empty_table(), EVENTS_SCHEMA.empty_table()
    p, lab = _pieces(t, level, lon, lat, s, e)
    frac = p.f1 - p.f0
    p_time = seg_dt[p.seg] * frac / 1e6
    p_dist = seg_len[p.seg] * frac / 1000.0
    p_code = code[s[p.seg]]
    # Runs of consecutive pieces in one territory = visits.
    m = len(p.seg)
    brk = np.ones(m, dtype=bool)
    brk[1:] = (p_code[1:] != p_code[:-1]) | (p.label[1:] != p.label[:-1])
    rs = np.flatnonzero(brk)
    re = np.r_[rs[1:], m] - 1
    r_time = np.add.reduceat(p_time, rs)
    r_dist = np.add.reduceat(p_dist, rs)
    r_code, r_lab = p_code[rs], p.label[rs]
    s0, e0 = s[p.seg[rs]], e[p.seg[rs]]
    t_in = tus[s0] + np.rint(p.f0[rs] * seg_dt[p.seg[rs]]).astype(np.int64)
    x_in = lon[s0] + p.f0[rs] * (lon[e0] - lon[s0])
    y_in = lat[s0] + p.f0[rs] * (lat[e0] - lat[s0])
    s1 = s[p.seg[re]]
    t_out = tus[s1] + np.rint(p.f1[re] * seg_dt[p.seg[re]]).astype(np.int64)
    first_run = np.r_[True, r_code[1:] != r_code[:-1]]
    last_run = np.r_[r_code[1:] != r_code[:-1], True]
    entered = ~first_run
    exited = ~last_run
    # Groups (track, territory).
    key = r_code * (len(t) + 1) + r_lab + 1
    gk, gi = np.unique(key, return_inverse=True)
    ng = len(gk)
    g_code = gk // (len(t) + 1)
    g_lab = gk % (len(t) + 1) - 1
    g_time = np.bincount(gi, weights=r_time, minlength=ng)
    g_dist = np.bincount(gi, weights=r_dist, minlength=ng)
    g_visits = np.bincount(gi, minlength=ng)
    g_entries = np.bincount(gi, weights=entered, minlength=ng).astype(np.int64)
    g_exits = np.bincount(gi, weights=exited, minlength=ng).astype(np.int64)
    g_first = np.full(ng, np.iinfo(np.int64).max)
    np.minimum.at(g_first, gi, t_in)
    g_last = np.full(ng, np.iinfo(np.int64).min)
    np.maximum.at(g_last, gi, t_out)
    g_depth = np.full(ng, np.nan)
    if with_depth:
        d = _max_depth(t, level, lon, lat, lab, code, cum_km)
        fk = code * (len(t) + 1) + lab + 1
        fix_g = np.searchsorted(gk, fk)
        okf = (fix_g < ng) & (lab >= 0) & np.isfinite(d)
        okf[okf] = gk[fix_g[okf]] == fk[okf]
        best = np.full(ng, -np.inf)
        np.maximum.at(best, fix_g[okf], d[okf])
        g_depth = np.where(g_lab >= 0, np.maximum(best, 0.0), np.nan)
    ids = t.id_of(g_lab)
    owner_list = [*t.owners.tolist(), None]
    owners = np.asarray(owner_list, dtype=object)[np.where(g_lab < 0, len(t), g_lab)]
    ts = pa.timestamp("us", tz="UTC")
    summary = pa.table(
        {
            "track_id": pa.array(names[g_code].tolist(), pa.string()),
            "level": pa.array([level] * ng, pa.string()),
            "territory_id": pa.array(ids.tolist(), pa.string()),
            "owner": pa.array(owners.tolist(), pa.string()),
            "time_s": pa.array(g_time),
            "distance_km": pa.array(g_dist),
            "visits": pa.array(g_visits.astype(np.int64)),
            "entries": pa.array(g_entries),
            "exits": pa.array(g_exits),
            "max_depth_km": pa.array(g_depth, pa.float64(), from_pandas=True),
            "first_in": pa.array(g_first, ts),
            "last_out": pa.array(g_last, ts),
        },
        schema=SUMMARY_SCHEMA,
    )
    # Events: at each run start that is not a track start, an exit from the previous run and an entry.
    ent = np.flatnonzero(entered)
    prev_lab = r_lab[ent - 1]
    k = len(ent)
    ev_lab = np.r_[prev_lab, r_lab[ent]]
    order = np.argsort(np.r_[2 * np.arange(k), 2 * np.arange(k) + 1], kind="stable")
    events = pa.table(
        {
            "track_id": pa.array(names[np.r_[r_code[ent], r_code[ent]]][order].tolist(), pa.string()),
            "level": pa.array([level] * (2 * k), pa.string()),
            "territory_id": pa.array(t.id_of(ev_lab)[order].tolist(), pa.string()),
            "event": pa.array((["exit"] * k + ["entry"] * k), pa.string()).take(pa.array(order)),
            "time": pa.array(np.r_[t_in[ent], t_in[ent]][order], ts),
            "lon": pa.array(np.r_[x_in[ent], x_in[ent]][order]),
            "lat": pa.array(np.r_[y_in[ent], y_in[ent]][order]),
        },
        schema=EVENTS_SCHEMA,
    )
    return summary, events
