"""Exact overflight accounting: time, distance, entries and depth per track and territory.

Many tracks are accounted at once (rows sorted by track, then time). Between two
fixes the object is assumed to move at constant speed along the straight line in
lon/lat (for fixes a few km apart this is the geodesic within metres). Where the
line crosses territory boundaries, the crossing points are found exactly
(shapely intersection of the segment with the boundaries) and the segment's
time and geodesic length are split in proportion to the fraction on each side.
Outside every territory of a level the track is in the ``INTL`` pseudo-territory,
so the totals of a track at one level add up to its observed time and length.

Gaps: a segment whose two fixes are further apart in time than the track's limit
(``max_gap_s``, by default from :data:`MAX_GAP_S` per platform kind) is
*unobserved*. Its time and length go to no territory, no entry or exit is counted
across it and it is not a crossing; a gap ends a visit (the stay after it is a new
visit, without an entry). Per track, ``observed_s + unobserved_s = duration_s``
and each level's per-territory times add up to ``observed_s`` (distances to
``observed_km``).

Depth is the geodesic distance (km) from a fix inside a territory to the
territory's boundary (land border, coast for states, or the 12 nm limit for
countries); crossing points have depth 0. The nearest boundary point is found in
an azimuthal equidistant plane centred on a batch of fixes of one territory and
one 2° tile, and the distance to it is then measured on the WGS84 ellipsoid
(within about 0.1 % and tens of metres). Only fixes that could beat their group's
best are measured: every fix gets a guaranteed upper bound of its depth
(:func:`atalaya.geo.territories.depth_upper_bound`, its distance to a known
boundary point), and per (track, territory) fixes are measured in order of
decreasing bound until no bound left exceeds the best measured depth, so the
maximum is that of measuring every fix.

Tracks are processed in chunks of whole tracks (:data:`CHUNK_ROWS` fixes), so
the working memory does not grow with the number of fixes; chunks, and then the
levels' depth searches, run on :data:`THREADS` threads.

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

import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import shapely

from atalaya.core.errors import ValidationError
from atalaya.geo.kernels import aeqd_forward, aeqd_inverse, geodesic_distance
from atalaya.geo.territories import (
    Territories,
    cells_pure,
    depth_cell_bound,
    depth_upper_bound,
    grid_width,
    label_points,
    label_points_grid,
)

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
_T = TypeVar("_T")
_R = TypeVar("_R")

CHUNK_ROWS = 1 << 19
"""Fixes per chunk of whole tracks (bounds the working memory)."""
THREADS = 2
"""Chunks (and then levels) are processed on this many threads: the heavy numpy, shapely and pyproj calls
release the GIL. Working memory grows with it (about one chunk's worth per thread)."""
DEPTH_TILE_DEG = 2.0
"""Exact depths are measured in batches of one territory and one tile of this size."""
PREFILTER_KM = 20.0
"""A chunk keeps as depth candidates the fixes whose bound is within this (plus :data:`PREFILTER_REL`)…"""
PREFILTER_REL = 0.03
"""…of their group's largest bound; groups whose measured maximum falls lower are revisited."""

MAX_GAP_S: dict[str, float] = {"aircraft": 300.0, "sortie": 300.0, "vessel": 1800.0}
"""Longest silence (s) between two fixes still accounted as flown/sailed, per platform kind; longer is unobserved.

Aircraft (ADS-B, sortie tracks) report every few seconds and cover ~20-70 km in 5 min; AIS reports every 2 s to
3 min (minutes at anchor), and a vessel covers ~10-20 km in 30 min."""
DEFAULT_MAX_GAP_S = MAX_GAP_S["aircraft"]
"""The limit :func:`account_tracks` applies when none is given."""
_GAP = -2
"""Piece label of an unobserved segment (−1 is international)."""

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
        pa.field("observed_s", pa.float64()),
        pa.field("unobserved_s", pa.float64()),
        pa.field("observed_km", pa.float64()),
        pa.field("gaps", pa.int64()),
        pa.field("max_gap_s", pa.float64()),
    ]
)
"""One row per track: span (``duration_s``) and straight-line length (``length_km``, gaps' chords included), and the
totals that each level's per-territory figures add up to (``observed_s``, ``observed_km``); ``gaps``: unobserved
segments; ``max_gap_s``: the limit applied (null: none)."""


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
    t: Territories, level: str, lon: FloatArray, lat: FloatArray, s: IntArray, e: IntArray, gap: BoolArray
) -> tuple[_Pieces, IntArray]:
    """Pieces of every segment; an unobserved segment (``gap``) is one piece labelled :data:`_GAP`, flanked by
    zero-length pieces at its fixes where no observed segment of the track holds them."""
    lab, ix, iy = label_points_grid(t, lon, lat, level)
    xs, ys, xe, ye = ix[s], iy[s], ix[e], iy[e]
    dx, dy = xe - xs, ye - ys
    # Both ends in pure cells (ix ≥ 0) of one territory, at most one cell apart.
    safe = (xs >= 0) & (xe >= 0) & (np.abs(dx) <= 1) & (np.abs(dy) <= 1) & (lab[s] == lab[e])
    # Within a 2×2 block of boundary-free cells the straight segment crosses no boundary.
    diag = np.flatnonzero(safe & (dx != 0) & (dy != 0))
    if len(diag):
        nx = grid_width(t, level)
        c1 = ys[diag].astype(np.int64) * nx + xe[diag]
        c2 = ye[diag].astype(np.int64) * nx + xs[diag]
        safe[diag] = cells_pure(t, c1, level) & cells_pure(t, c2, level)
    cand = np.flatnonzero(~safe & (s != e) & ~gap)
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
    # A candidate that meets no boundary (not even at its ends) lies in one territory: its start's.
    crossed = np.zeros(len(cand), dtype=bool)
    crossed[k] = True
    p_lab = lab[s[seg_c]]
    c = np.flatnonzero(crossed[p_k])
    fm = 0.5 * (p_f0[c] + p_f1[c])
    si, ei = s[seg_c[c]], e[seg_c[c]]
    p_lab[c] = label_points(t, lon[si] + fm * (lon[ei] - lon[si]), lat[si] + fm * (lat[ei] - lat[si]), level)
    # Merge: per segment, 1 piece (not a candidate) or its candidate pieces, in order.
    npc = np.ones(len(s), dtype=np.int64)
    npc[cand] = np.bincount(p_k, minlength=len(cand))
    g = np.flatnonzero(gap)
    if len(g):
        # A gap's end fixes keep a zero-length piece unless an observed segment of the track holds them.
        nseg = len(s)
        gp = np.minimum(g + 1, nseg - 1)
        pre = ~((g > 0) & (e[g - 1] == s[g]) & ~gap[g - 1])
        post = ~((g < nseg - 1) & (s[gp] == e[g]) & ~gap[gp])
        npc[g] = 1 + pre.astype(np.int64) + post.astype(np.int64)
    off = np.cumsum(npc) - npc
    seg = np.repeat(np.arange(len(s)), npc)
    out_lab = np.repeat(lab[s], npc)
    f0 = np.zeros(len(seg))
    f1 = np.ones(len(seg))
    f1[off[np.flatnonzero(s == e)]] = 0.0  # single-fix tracks: one empty piece
    rank = np.arange(len(seg_c)) - np.searchsorted(seg_c, seg_c)
    pos = off[seg_c] + rank
    f0[pos], f1[pos], out_lab[pos] = p_f0, p_f1, p_lab
    if len(g):
        f1[off[g[pre]]] = 0.0
        mid = off[g] + pre
        out_lab[mid] = _GAP
        last = mid[post] + 1
        f0[last], out_lab[last] = 1.0, lab[e[g[post]]]
    return _Pieces(seg=seg, f0=f0, f1=f1, label=out_lab), lab


@dataclass(frozen=True, kw_only=True)
class _DepthMemo:
    """Work kept between calls of :func:`_depth_exact` for one level."""

    projected: dict[tuple[int, int], npt.NDArray[np.object_]] = field(default_factory=dict)
    """Per tile: each boundary piece in the tile's azimuthal equidistant plane (``None``: not projected yet)."""
    trees: dict[tuple[int, int, int], tuple[tuple[float, float, float, float], Any, Any]] = field(default_factory=dict)
    """Per (territory, tile): the lon/lat box covered, its projected pieces and their STRtree."""


def _depth_exact(
    t: Territories,
    level: str,
    lon: FloatArray,
    lat: FloatArray,
    terr: IntArray,
    ub: FloatArray,
    memo: _DepthMemo | None = None,
) -> FloatArray:
    """Geodesic distance (km) from each point to the boundary of its territory ``terr`` (≥ 0).

    ``ub`` bounds each distance from above (``inf`` allowed): only boundary pieces
    within it are considered. Points are measured in batches of one territory and
    one :data:`DEPTH_TILE_DEG` tile, in an azimuthal equidistant plane centred on the
    tile. ``memo`` keeps the boundary pieces already projected for a tile and indexed
    for a batch, so that repeated calls (rounds of :func:`_max_depth`) do that once.
    """
    out = np.zeros(len(lon))
    if len(lon) == 0:
        return out
    pieces, tree, owner = _boundary_pieces(t, level)
    memo = _DepthMemo() if memo is None else memo
    tx = np.floor(lon / DEPTH_TILE_DEG).astype(np.int64)
    ty = np.floor(lat / DEPTH_TILE_DEG).astype(np.int64)
    tile = (tx - tx.min()) * 4096 + (ty - ty.min())
    key = terr * (1 << 24) + tile
    order = np.argsort(key, kind="stable")
    uk, start = np.unique(key[order], return_index=True)
    ends = np.r_[start[1:], len(order)]
    for k, a, b in zip(uk.tolist(), start.tolist(), ends.tolist(), strict=True):
        ti = k >> 24
        m = order[a:b]
        x, y = lon[m], lat[m]
        reach = float(np.max(ub[m]))
        # Any boundary point within ``reach`` km lies in this lon/lat box (meridian degree ≥ 110.57 km,
        # parallel degree ≥ a·cos φ at the highest latitude reached).
        dlat = reach / 110.5
        top = float(np.max(np.abs(y))) + dlat
        need = (-np.inf, -np.inf, np.inf, np.inf)
        if np.isfinite(reach) and top < 89.0:
            dlon = reach / (111.3 * np.cos(np.radians(top)))
            need = (float(x.min()) - dlon, float(y.min()) - dlat, float(x.max()) + dlon, float(y.max()) + dlat)
        cx, cy = int(tx[m[0]]), int(ty[m[0]])
        lon0, lat0 = (cx + 0.5) * DEPTH_TILE_DEG, (cy + 0.5) * DEPTH_TILE_DEG
        # Pieces of a box covering this one, already projected and indexed, serve as well (the nearest
        # piece lies in both); the first round has the largest bounds, so later rounds mostly reuse it.
        hit = memo.trees.get((ti, cx, cy))
        if hit is None or not (
            hit[0][0] <= need[0] and hit[0][1] <= need[1] and hit[0][2] >= need[2] and hit[0][3] >= need[3]
        ):
            if np.isfinite(need[0]):
                cand = tree.query(shapely.box(*need))
                ids = cand[owner[cand] == ti]
            else:
                ids = np.flatnonzero(owner == ti)
            if len(ids) == 0:
                ids = np.flatnonzero(owner == ti)
                need = (-np.inf, -np.inf, np.inf, np.inf)
            done = memo.projected.get((cx, cy))
            if done is None:
                done = np.full(len(pieces), None, dtype=object)
                memo.projected[(cx, cy)] = done
            new = ids[shapely.is_missing(done[ids])]
            if len(new):
                done[new] = shapely.transform(
                    pieces[new],
                    lambda xy, lon0=lon0, lat0=lat0: np.column_stack(aeqd_forward(lon0, lat0, xy[:, 0], xy[:, 1])),
                )
            local = done[ids]
            hit = (need, local, shapely.STRtree(local))
            memo.trees[(ti, cx, cy)] = hit
        _, local, local_tree = hit
        px, py = aeqd_forward(lon0, lat0, x, y)
        pts = shapely.points(px, py)
        near = local_tree.query_nearest(pts, all_matches=False)
        seg = shapely.shortest_line(local[near[1]], pts[near[0]])
        q = shapely.get_coordinates(shapely.get_point(seg, 0))
        qlon, qlat = aeqd_inverse(lon0, lat0, q[:, 0], q[:, 1])
        out[m[near[0]]] = geodesic_distance(x[near[0]], y[near[0]], qlon, qlat) / 1000.0
    return out


def _max_depth(
    t: Territories,
    level: str,
    lon: FloatArray,
    lat: FloatArray,
    fix: IntArray,
    group: IntArray,
    ub: FloatArray,
    n_groups: int,
    g_lab: IntArray,
    more: Callable[[FloatArray], tuple[IntArray, IntArray, FloatArray]],
) -> FloatArray:
    """Largest depth per group from candidate fixes ``fix`` (global rows) of ``group`` with upper bounds ``ub``.

    Branch and bound: each round measures, per group, the candidates with the
    largest bounds, then drops every candidate whose bound does not exceed its
    group's best measured depth. Groups without a candidate get -inf.
    """
    best = np.full(n_groups, -np.inf)
    memo = _DepthMemo()
    take = 1
    while len(fix):
        o = np.lexsort((-ub, group))
        fix, group, ub = fix[o], group[o], ub[o]
        first = np.r_[0, np.flatnonzero(group[1:] != group[:-1]) + 1]
        rank = np.arange(len(group)) - np.repeat(first, np.diff(np.r_[first, len(group)]))
        now = rank < take
        i = fix[now]
        d = _depth_exact(t, level, lon[i], lat[i], g_lab[group[now]], ub[now], memo)
        np.maximum.at(best, group[now], d)
        rest = ~now
        fix, group, ub = fix[rest], group[rest], ub[rest]
        if take == 1:
            f2, g2, u2 = more(best)
            fix, group, ub = np.r_[fix, f2], np.r_[group, g2], np.r_[ub, u2]
        keep = ub > best[group]
        fix, group, ub = fix[keep], group[keep], ub[keep]
        take *= 4
    return best


def _track_codes(track_id: Any) -> tuple[IntArray, npt.NDArray[np.object_]]:
    tid = np.asarray(track_id)
    n = len(tid)
    change = np.ones(n, dtype=bool)
    change[1:] = tid[1:] != tid[:-1]
    code = np.cumsum(change) - 1
    names = np.asarray([str(v) for v in tid[change]], dtype=object)
    return code.astype(np.int64), names


def _chunks(code: IntArray, rows: int) -> list[tuple[int, int]]:
    """Row ranges of about ``rows`` fixes each that hold whole tracks."""
    n = len(code)
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]]) if n else np.zeros(0, np.int64)
    cuts = np.unique(starts[np.searchsorted(starts, np.arange(0, n, rows), side="left").clip(0, len(starts) - 1)])
    bounds = [*cuts.tolist(), n]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def _map(fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """``[fn(x) for x in items]``, on :data:`THREADS` threads when there is more than one item and thread."""
    if THREADS <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(fn, items))


def _warm(t: Territories, level: str, with_depth: bool) -> None:
    """Build the lazily cached lookup structures of a level (so that threads only read them)."""
    grid_width(t, level)
    _boundary_pieces(t, level)
    if with_depth:
        depth_cell_bound(t, np.zeros(0), np.zeros(0), np.zeros(0, np.int64), level)


def _gap_limits(max_gap_s: Any, n_tracks: int, n: int, trk_start: IntArray) -> FloatArray:
    """Per track limit (s, ``inf``: none) from a number, one per track or one per fix."""
    if max_gap_s is None:
        return np.full(n_tracks, np.inf)
    v = np.asarray(max_gap_s, dtype=np.float64)
    if v.ndim == 0:
        v = np.full(n_tracks, float(v))
    elif len(v) == n_tracks:
        v = v.copy()
    elif len(v) == n:
        v = v[trk_start]
    else:
        raise ValidationError(
            f"max_gap_s has {len(v)} values for {n_tracks} track(s) and {n} fix(es)",
            hint="give one number, one per track or one per fix",
        )
    v[np.isnan(v)] = np.inf
    if (v < 0).any():
        raise ValidationError("max_gap_s must not be negative", hint="give a limit in seconds, or None for none")
    return v


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
    max_gap_s: Any = DEFAULT_MAX_GAP_S,
) -> Accounting:
    """Account many tracks at once against the territories of each level.

    Rows must be sorted by track, then time (``time_us``: int64 µs since the
    epoch, UTC). ``alt_m`` is accepted for future altitude rules and not used
    yet. With ``depth=False`` the (costlier) penetration depth is skipped (null).
    ``max_gap_s`` is the longest silence between two fixes still accounted: a
    number, or one per track (in order of first appearance; one per fix is read at
    each track's first fix), ``None`` or ``inf`` for no limit; a longer segment is
    unobserved (see the module's notes). :data:`MAX_GAP_S` gives limits per kind.
    Tracks are processed in chunks of about :data:`CHUNK_ROWS` fixes, so working
    memory stays bounded whatever the number of fixes.
    """
    del alt_m
    lon = np.ascontiguousarray(lon, dtype=np.float64)
    lat = np.ascontiguousarray(lat, dtype=np.float64)
    tus = np.ascontiguousarray(time_us, dtype=np.int64)
    n = len(lon)
    if not (len(lat) == len(tus) == n == len(np.asarray(track_id))):
        raise ValidationError("track_id, time_us, lon and lat differ in length", hint="pass one value of each per fix")
    for level in levels:
        territories.level_indices(level)  # validates the level names before any work
    code, names = _track_codes(track_id)
    chunks = _chunks(code, CHUNK_ROWS)
    for a, b in chunks:
        c, tc = code[a:b], tus[a:b]
        if np.any((tc[1:] < tc[:-1]) & (c[1:] == c[:-1])):
            raise ValidationError(
                "fixes are not sorted by time within a track",
                hint="sort rows by track id, then time (e.g. ORDER BY ident, time)",
            )
        if not (np.isfinite(lon[a:b]).all() and np.isfinite(lat[a:b]).all()):
            raise ValidationError("non-finite coordinates", hint="drop fixes without a position before accounting")
    if n == 0:
        return Accounting(
            summary=SUMMARY_SCHEMA.empty_table(), events=EVENTS_SCHEMA.empty_table(), tracks=TRACKS_SCHEMA.empty_table()
        )
    trk_start = np.searchsorted(code, np.arange(len(names))).astype(np.int64)
    trk_end = (np.r_[trk_start[1:], n] - 1).astype(np.int64)
    lim_s = _gap_limits(max_gap_s, len(names), n, trk_start)
    lim_us = lim_s * 1e6
    for level in levels:  # build the shared lookup structures once, before the threads use them
        _warm(territories, level, depth)

    def run(chunk: tuple[int, int]) -> tuple[FloatArray, list[_LevelPart]]:
        a, b = chunk
        c = code[a:b]
        s, e = _segments(c)
        x, y, tc = lon[a:b], lat[a:b], tus[a:b]
        seg_len = geodesic_distance(x[s], y[s], x[e], y[e])
        seg_dt = (tc[e] - tc[s]).astype(np.float64)
        sc = c[s] - c[0]
        gap = seg_dt > lim_us[c[s]]
        ntr = int(c[-1] - c[0]) + 1
        # Per track: length, and the unobserved time, length and segments (gap segments only: usually none).
        tot = np.zeros((ntr, 4))
        tot[:, 0] = np.bincount(sc, weights=seg_len / 1000.0, minlength=ntr)
        g = np.flatnonzero(gap)
        if len(g):
            tot[:, 1] = np.bincount(sc[g], weights=seg_dt[g] / 1e6, minlength=ntr)
            tot[:, 2] = np.bincount(sc[g], weights=seg_len[g] / 1000.0, minlength=ntr)
            tot[:, 3] = np.bincount(sc[g], minlength=ntr)
        return tot, [
            _account_chunk(territories, level, a, x, y, tc, c, s, e, seg_len, seg_dt, gap, depth) for level in levels
        ]

    totals = np.zeros((len(names), 4))
    parts: dict[str, list[_LevelPart]] = {level: [] for level in levels}
    for (a, _), (tot, level_parts) in zip(chunks, _map(run, chunks), strict=True):
        c0 = int(code[a])
        totals[c0 : c0 + len(tot)] += tot
        for level, part in zip(levels, level_parts, strict=True):
            parts[level].append(part)
    duration_s = (tus[trk_end] - tus[trk_start]) / 1e6
    tracks = pa.table(
        {
            "track_id": pa.array(names.tolist(), pa.string()),
            "points": pa.array(trk_end - trk_start + 1, pa.int64()),
            "start": pa.array(tus[trk_start], pa.timestamp("us", tz="UTC")),
            "end": pa.array(tus[trk_end], pa.timestamp("us", tz="UTC")),
            "duration_s": pa.array(duration_s, pa.float64()),
            "length_km": pa.array(totals[:, 0], pa.float64()),
            "observed_s": pa.array(duration_s - totals[:, 1], pa.float64()),
            "unobserved_s": pa.array(totals[:, 1], pa.float64()),
            "observed_km": pa.array(totals[:, 0] - totals[:, 2], pa.float64()),
            "gaps": pa.array(np.rint(totals[:, 3]).astype(np.int64), pa.int64()),
            "max_gap_s": pa.array(lim_s, pa.float64(), mask=~np.isfinite(lim_s)),
        },
        schema=TRACKS_SCHEMA,
    )
    done = _map(
        lambda level: _level_tables(territories, level, parts[level], names, lon, lat, trk_start, trk_end, depth),
        levels,
    )
    summaries = [sm for sm, _ in done]
    events = [ev for _, ev in done]
    return Accounting(
        summary=pa.concat_tables(summaries) if summaries else SUMMARY_SCHEMA.empty_table(),
        events=pa.concat_tables(events) if events else EVENTS_SCHEMA.empty_table(),
        tracks=tracks,
    )


@dataclass(frozen=True, kw_only=True)
class _LevelPart:
    """One level's figures for one chunk of whole tracks: per group (track, territory), events, depth candidates."""

    g_code: IntArray
    g_lab: IntArray
    g_time: FloatArray
    g_dist: FloatArray
    g_visits: IntArray
    g_entries: IntArray
    g_exits: IntArray
    g_first: IntArray
    g_last: IntArray
    ev_code: IntArray
    """Per crossing: track code, territory left and entered, time and place."""
    ev_from: IntArray
    ev_to: IntArray
    ev_time: IntArray
    ev_lon: FloatArray
    ev_lat: FloatArray
    fix: IntArray
    """Depth candidates: global rows, their group (index in this part) and depth upper bounds (km)."""
    fix_group: IntArray
    fix_ub: FloatArray
    thr: FloatArray
    """Per group: fixes with bounds below this were not kept as candidates (-inf: all kept)."""


def _account_chunk(
    t: Territories,
    level: str,
    row0: int,
    lon: FloatArray,
    lat: FloatArray,
    tus: IntArray,
    code: IntArray,
    s: IntArray,
    e: IntArray,
    seg_len: FloatArray,
    seg_dt: FloatArray,
    gap: BoolArray,
    with_depth: bool,
) -> _LevelPart:
    p, lab = _pieces(t, level, lon, lat, s, e, gap)
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
    unobs = r_lab == _GAP
    if unobs.any():
        # Nothing is entered or left across an unobserved segment, and its time goes to no territory.
        entered &= ~unobs & ~np.r_[False, unobs[:-1]]
        exited &= ~unobs & ~np.r_[unobs[1:], False]
        ob = np.flatnonzero(~unobs)
        r_time, r_dist, r_code, r_lab = r_time[ob], r_dist[ob], r_code[ob], r_lab[ob]
        t_in, t_out, x_in, y_in = t_in[ob], t_out[ob], x_in[ob], y_in[ob]
        entered, exited = entered[ob], exited[ob]
    # Groups (track, territory).
    width = len(t) + 1
    key = r_code * width + r_lab + 1
    gk, gi = np.unique(key, return_inverse=True)
    ng = len(gk)
    g_first = np.full(ng, np.iinfo(np.int64).max)
    np.minimum.at(g_first, gi, t_in)
    g_last = np.full(ng, np.iinfo(np.int64).min)
    np.maximum.at(g_last, gi, t_out)
    ent = np.flatnonzero(entered)
    fix = np.zeros(0, np.int64)
    fix_group = np.zeros(0, np.int64)
    fix_ub = np.zeros(0)
    thr = np.full(ng, -np.inf)
    if with_depth:
        inside = np.flatnonzero(lab >= 0)
        fk = code[inside] * width + lab[inside] + 1
        fg = np.searchsorted(gk, fk).clip(0, max(ng - 1, 0))
        ok = gk[fg] == fk if ng else np.zeros(len(fk), dtype=bool)
        inside, fg = inside[ok], fg[ok]
        # Cheap per-cell bounds choose the candidates; only those get their own (closer) bound.
        cub = depth_cell_bound(t, lon[inside], lat[inside], lab[inside], level)
        top = np.full(ng, -np.inf)
        np.maximum.at(top, fg, cub)
        # Keep the fixes whose bound is near their group's largest; the rest is fetched again only
        # when the measured maximum falls below the threshold (see _level_tables).
        thr = top.copy()
        fin = np.isfinite(top)
        thr[fin] -= PREFILTER_KM + PREFILTER_REL * top[fin]
        keep = np.flatnonzero(cub >= thr[fg])
        kept = inside[keep]
        ub = np.minimum(depth_upper_bound(t, lon[kept], lat[kept], lab[kept], level), cub[keep])
        fix, fix_group, fix_ub = kept + row0, fg[keep], ub
    return _LevelPart(
        g_code=gk // width,
        g_lab=gk % width - 1,
        g_time=np.bincount(gi, weights=r_time, minlength=ng).astype(np.float64),
        g_dist=np.bincount(gi, weights=r_dist, minlength=ng).astype(np.float64),
        g_visits=np.bincount(gi, minlength=ng).astype(np.int64),
        g_entries=np.bincount(gi, weights=entered, minlength=ng).astype(np.int64),
        g_exits=np.bincount(gi, weights=exited, minlength=ng).astype(np.int64),
        g_first=g_first,
        g_last=g_last,
        ev_code=r_code[ent],
        ev_from=r_lab[ent - 1],
        ev_to=r_lab[ent],
        ev_time=t_in[ent],
        ev_lon=x_in[ent],
        ev_lat=y_in[ent],
        fix=fix,
        fix_group=fix_group,
        fix_ub=fix_ub,
        thr=thr,
    )


def _level_tables(
    t: Territories,
    level: str,
    parts: list[_LevelPart],
    names: npt.NDArray[np.object_],
    lon: FloatArray,
    lat: FloatArray,
    trk_start: IntArray,
    trk_end: IntArray,
    with_depth: bool,
) -> tuple[pa.Table, pa.Table]:
    if not parts:
        return SUMMARY_SCHEMA.empty_table(), EVENTS_SCHEMA.empty_table()

    def cat(name: str) -> Any:
        return np.concatenate([getattr(q, name) for q in parts])

    g_code, g_lab = cat("g_code"), cat("g_lab")
    ng = len(g_code)
    g_depth = np.full(ng, np.nan)
    if with_depth:
        off = np.cumsum([0, *[len(q.g_code) for q in parts]])[:-1]
        group = np.concatenate([q.fix_group + o for q, o in zip(parts, off, strict=True)])
        thr = cat("thr")

        def more(best: FloatArray) -> tuple[IntArray, IntArray, FloatArray]:
            """Candidates left out by the chunk prefilter, for groups whose best depth is below the threshold."""
            short = np.flatnonzero(best < thr)
            if len(short) == 0:
                return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
            a, b = trk_start[g_code[short]], trk_end[g_code[short]] + 1
            grp = np.repeat(short, b - a)
            rows = np.arange(len(grp)) - np.repeat(np.cumsum(b - a) - (b - a), b - a) + np.repeat(a, b - a)
            lab = label_points(t, lon[rows], lat[rows], level)
            cub = depth_cell_bound(t, lon[rows], lat[rows], lab, level)
            # Fixes with a cell bound at or above the threshold were candidates already.
            k = np.flatnonzero((lab == g_lab[grp]) & (cub > best[grp]) & (cub < thr[grp]))
            rows, grp = rows[k], grp[k]
            ub = np.minimum(depth_upper_bound(t, lon[rows], lat[rows], lab[k], level), cub[k])
            k = np.flatnonzero(ub > best[grp])
            return rows[k], grp[k], ub[k]

        best = _max_depth(t, level, lon, lat, cat("fix"), group, cat("fix_ub"), ng, g_lab, more)
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
            "time_s": pa.array(cat("g_time")),
            "distance_km": pa.array(cat("g_dist")),
            "visits": pa.array(cat("g_visits")),
            "entries": pa.array(cat("g_entries")),
            "exits": pa.array(cat("g_exits")),
            "max_depth_km": pa.array(g_depth, pa.float64(), mask=np.isnan(g_depth)),
            "first_in": pa.array(cat("g_first"), ts),
            "last_out": pa.array(cat("g_last"), ts),
        },
        schema=SUMMARY_SCHEMA,
    )
    # Events: at each crossing an exit from the previous territory, then an entry into the next.
    ev_code = cat("ev_code")
    k = len(ev_code)
    inter = np.empty(2 * k, dtype=np.int64)
    inter[0::2], inter[1::2] = cat("ev_from"), cat("ev_to")
    kind = np.tile(np.array(["exit", "entry"], dtype=object), k)
    events = pa.table(
        {
            "track_id": pa.array(names[np.repeat(ev_code, 2)].tolist(), pa.string()),
            "level": pa.array([level] * (2 * k), pa.string()),
            "territory_id": pa.array(t.id_of(inter).tolist(), pa.string()),
            "event": pa.array(kind.tolist(), pa.string()),
            "time": pa.array(np.repeat(cat("ev_time"), 2), ts),
            "lon": pa.array(np.repeat(cat("ev_lon"), 2)),
            "lat": pa.array(np.repeat(cat("ev_lat"), 2)),
        },
        schema=EVENTS_SCHEMA,
    )
    return summary, events


COVERAGE_CELL_DEG = 1.0
"""Cell size of the coverage grid of :func:`uncovered_points`."""
COVERAGE_MARGIN_DEG = 1.0
"""Each territory part's bounding box is widened by this much (its sea and approaches) to make the coverage."""


def _coverage(t: Territories, level: str) -> BoolArray:
    """1° cells (lat row × lon column) touching a widened bounding box of some part of a territory of ``level``."""
    key = f"acct:coverage:{level}"
    hit = t._cache.get(key)
    if hit is None:
        parts = shapely.get_parts(t.geoms[t.level_indices(level)])
        b = shapely.bounds(parts).reshape(-1, 4)
        c = COVERAGE_CELL_DEG
        m = COVERAGE_MARGIN_DEG
        nx, ny = round(360 / c), round(180 / c)
        x0 = np.clip(np.floor((b[:, 0] - m + 180) / c), 0, nx - 1).astype(np.int64)
        x1 = np.clip(np.floor((b[:, 2] + m + 180) / c), 0, nx - 1).astype(np.int64)
        y0 = np.clip(np.floor((b[:, 1] - m + 90) / c), 0, ny - 1).astype(np.int64)
        y1 = np.clip(np.floor((b[:, 3] + m + 90) / c), 0, ny - 1).astype(np.int64)
        # Mark each box's corners in a 2D difference array, then integrate.
        d = np.zeros((ny + 1, nx + 1), dtype=np.int64)
        np.add.at(d, (y0, x0), 1)
        np.add.at(d, (y0, x1 + 1), -1)
        np.add.at(d, (y1 + 1, x0), -1)
        np.add.at(d, (y1 + 1, x1 + 1), 1)
        hit = np.cumsum(np.cumsum(d, axis=0), axis=1)[:ny, :nx] > 0
        t._cache[key] = hit
    grid: BoolArray = hit
    return grid


def uncovered_points(t: Territories, lon: Any, lat: Any, level: str = "country") -> BoolArray:
    """Fixes outside the region the loaded territories of ``level`` cover (no territory there could label them).

    The region is the union of each territory part's bounding box widened by
    :data:`COVERAGE_MARGIN_DEG`, on a :data:`COVERAGE_CELL_DEG` grid: fixes in the
    open sea near loaded coasts are covered (international, rightly), fixes over
    land or sea far from every loaded territory are not — their time is accounted
    as ``INTL`` only because nothing else is loaded there.

    >>> from shapely.geometry import box
    >>> from atalaya.geo.territories import territories_from_geometries
    >>> t = territories_from_geometries(ids=["A"], geoms=[box(0.0, 0.0, 1.0, 1.0)])
    >>> uncovered_points(t, np.array([0.5, 1.5, 10.0]), np.array([0.5, 0.5, 50.0])).tolist()
    [False, False, True]
    """
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    grid = _coverage(t, level)
    ny, nx = grid.shape
    ix = np.clip(np.floor((x + 180.0) / COVERAGE_CELL_DEG), 0, nx - 1).astype(np.int64)
    iy = np.clip(np.floor((y + 90.0) / COVERAGE_CELL_DEG), 0, ny - 1).astype(np.int64)
    out: BoolArray = ~grid[iy, ix]
    return out
