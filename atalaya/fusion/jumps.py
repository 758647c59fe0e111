"""Stale repeats and impossible position jumps of identified tracks (ADS-B, AIS, CoT).

Two things real feeds do to an identified track that a kinematic gate alone handles badly:

- **Stale repeats** (:func:`mark_stale`): a receiver or decoder that holds the last position fix reports it again
  with a newer time (a position every second, updated every few seconds). Judged as fixes, those rows make the
  object stand still and then leap, which splits the track or zig-zags it. A row whose position is the same as one
  of the few rows before it (same ident) is marked *stale*: it stays in the track (the object was heard) but its
  position is not used for speeds, gates or links — the fix it repeats is.
- **Impossible jumps** (:func:`jump_episodes`): positions that the object cannot have reached (GNSS spoofing, a bad
  CPR decode, a mistyped MMSI) are kept out of the real track by
  :func:`atalaya.fusion.tracks.build_identified_tracks`; here they become *events* of their own, with where the
  track was, where it was reported, how far and how fast that implies, and whether the track came back to its path
  (a spoofed or badly decoded episode) or went on from the new place.

Both work on rows sorted by (ident, time), vectorised: one pass per look-back step, never one per row.

>>> import numpy as np
>>> c = np.zeros(5, dtype=np.int64)
>>> x = np.array([0.0, 0.0, 0.1, 0.0, 0.2])
>>> stale, src = mark_stale(c, np.arange(5, dtype=np.int64), x, np.zeros(5))
>>> stale.tolist(), src.tolist()
([False, True, False, True, False], [0, 0, 2, 0, 4])
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from atalaya.core.workspace import Workspace

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

_US = 1_000_000
_R = 6_371_008.8
_DEG = np.pi / 180.0

STALE_TOL_DEG = 1e-7
"""Two positions closer than this in both longitude and latitude (about 1 cm) are the same fix repeated."""

EVENT_KIND = "position_jump"
"""Event kind of an impossible jump (the ``kind`` of each row of :data:`EVENTS_SCHEMA`)."""
CAUSES = ("bad_decode", "spoofing_suspected", "continued")
"""Why a jump is thought to have happened: one report away and back (a bad decode), several reports away and back
(spoofing suspected), or the track went on from the new place (no return seen)."""

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("cause", pa.string(), nullable=False),
        pa.field("ident", pa.string()),
        pa.field("ident_kind", pa.string()),
        pa.field("object_kind", pa.string()),
        pa.field("track_id", pa.string()),
        pa.field("start", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("end", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("lon", pa.float64(), nullable=False),
        pa.field("lat", pa.float64(), nullable=False),
        pa.field("end_lon", pa.float64(), nullable=False),
        pa.field("end_lat", pa.float64(), nullable=False),
        pa.field("distance_km", pa.float64(), nullable=False),
        pa.field("max_distance_km", pa.float64(), nullable=False),
        pa.field("dt_s", pa.float64(), nullable=False),
        pa.field("speed_mps", pa.float64(), nullable=False),
        pa.field("n_points", pa.int64(), nullable=False),
        pa.field("returned", pa.bool_(), nullable=False),
        pa.field("marking", pa.string()),
    ]
)
"""Columns of ``WORKSPACE/analysis/events/position_jumps.parquet``: one row per jump episode. ``lon``/``lat`` is
the last good position before the jump, ``end_lon``/``end_lat`` the first position reported after it (the map
draws the jump as a line between them); ``start`` is the time of that first jumped report and ``end`` the last
report of the episode; ``distance_km`` and ``speed_mps`` are the jump's own (from the good position to the first
jumped one, the speed allowing for both positions' errors and the kind's timing noise), ``max_distance_km`` the
farthest the episode went from the good position."""


def events_dir(ws: Workspace) -> Path:
    """Where track events are written: ``WORKSPACE/analysis/events``."""
    return ws.root / "analysis" / "events"


def mark_stale(c: I64, t: I64, x: F64, y: F64, lag: int = 8, tol_deg: float = STALE_TOL_DEG) -> tuple[B, I64]:
    """Rows (sorted by ident code ``c``, then time ``t``) that repeat the position of one of the ``lag`` rows before
    them (same ident, later time), and for every row the row of the fix it repeats (itself for a fix).

    A repeat of a repeat points at the original fix, so the stale rows of a decoder holding one position all name
    the same fix, and an older fix reported again after a newer one (a zig-zag) names the older fix.
    """
    m = c.size
    stale = np.zeros(m, dtype=bool)
    src = np.arange(m, dtype=np.int64)
    for k in range(1, min(lag, m - 1) + 1):
        # longitude first, on views (no gather): most rows differ there, the rest is checked on the few that match
        j = np.flatnonzero(np.abs(x[k:] - x[:-k]) <= tol_deg) + k
        i = j - k
        hit = (c[i] == c[j]) & (t[j] > t[i]) & (np.abs(y[j] - y[i]) <= tol_deg) & ~stale[j]
        if hit.any():
            stale[j[hit]] = True
            src[j[hit]] = i[hit]
    while True:  # a repeat of a repeat: to the fix
        nxt = src[src]
        if np.array_equal(nxt, src):
            return stale, src
        src = nxt


def flat_dist(lon1: F64, lat1: F64, lon2: F64, lat2: F64) -> F64:
    """Equirectangular distance in metres (the antimeridian handled); good to ~0.5 % over a few hundred km."""
    dlon = np.remainder(lon2 - lon1 + 180.0, 360.0) - 180.0
    xx = dlon * np.cos(0.5 * (lat1 + lat2) * _DEG)
    return np.asarray(np.hypot(xx, lat2 - lat1) * (_DEG * _R), dtype=np.float64)


@dataclass(frozen=True, kw_only=True)
class Jumps:
    """Jump episodes found by :func:`jump_episodes`, as arrays over episodes (row numbers index the fix arrays)."""

    from_row: I64
    """Last good fix before the jump."""
    to_row: I64
    """First fix of the episode (the jumped position)."""
    last_row: I64
    """Last fix of the episode."""
    back_row: I64
    """First good fix after the episode, ``-1`` where the track went on from the new place."""
    distance_m: F64
    max_distance_m: F64
    speed_mps: F64
    """Implied speed of the jump, allowing for both positions' errors and the timing noise."""
    n_points: I64
    """Fixes in the episode."""
    end_us: I64
    """Last time the episode was reported (its last fix's stale repeats included)."""
    from_us: I64
    """Last time the good position before the jump was reported (its stale repeats included)."""

    def __len__(self) -> int:
        return int(self.from_row.size)

    @staticmethod
    def empty() -> Jumps:
        z = np.zeros(0, dtype=np.int64)
        f = np.zeros(0)
        return Jumps(from_row=z, to_row=z, last_row=z, back_row=z, distance_m=f, max_distance_m=f, speed_mps=f,
                     n_points=z, end_us=z, from_us=z)  # fmt: skip


def chain_extents(chain: I64, by_chain: I64 | None = None) -> tuple[I64, I64, I64, I64]:
    """First row, last row and size of each chain (``chain`` per row, ``-1`` for none; numbered ``0…``), and the next
    row of each row's chain (the number of rows where none). ``by_chain``: the rows with a chain sorted by chain
    then row, where known (else sorted here)."""
    m = chain.size
    n_ch = int(chain.max()) + 1 if m else 0
    if by_chain is None:
        rows = np.flatnonzero(chain >= 0)
        by_chain = rows[np.argsort(chain[rows] * np.int64(m) + rows, kind="stable")]
    ch = chain[by_chain]
    brk = np.flatnonzero(ch[1:] != ch[:-1]) + 1
    starts = np.r_[0, brk].astype(np.int64) if ch.size else np.zeros(0, dtype=np.int64)
    ends = np.r_[brk - 1, ch.size - 1].astype(np.int64) if ch.size else np.zeros(0, dtype=np.int64)
    first = np.full(n_ch, m, dtype=np.int64)
    last = np.full(n_ch, -1, dtype=np.int64)
    size = np.zeros(n_ch, dtype=np.int64)
    first[ch[starts]] = by_chain[starts]
    last[ch[starts]] = by_chain[ends]
    size[ch[starts]] = ends - starts + 1
    nxt = np.full(m, m, dtype=np.int64)
    same = ch[1:] == ch[:-1]
    nxt[by_chain[:-1][same]] = by_chain[1:][same]
    return first, last, size, nxt


def host_chains(c: I64, chain: I64, lag: int, dominance: float = 4.0, by_chain: I64 | None = None) -> B:
    """Chains (numbered ``0…``; ``chain`` per fix row sorted by ident then time, ``-1`` for dropped rows) that are
    *excursions* of another chain of the same ident, found among the ``lag`` rows before the excursion's first
    row: either the excursion lies wholly inside one silence of a chain with at least as many fixes (a spoofed or
    badly decoded episode between two parts of the real track), or it has ``dominance`` times fewer fixes than a
    chain that began before it and goes on after it (spoofed episodes that repeat, linked to each other across the
    real track). Two objects sharing an id, reporting alike, are neither: both stay tracks. ``by_chain``: the rows
    with a chain sorted by chain then row, where known. Returns a flag per chain."""
    m = chain.size
    n_ch = int(chain.max()) + 1 if m else 0
    exc = np.zeros(n_ch, dtype=bool)
    if n_ch == 0:
        return exc
    first, last, size, nxt = chain_extents(chain, by_chain)
    # a chain beginning on its ident's first row has nothing before it to be an excursion of
    cand = np.flatnonzero(size > 0)
    cand = cand[(first[cand] > 0) & (c[np.maximum(first[cand] - 1, 0)] == c[first[cand]])]
    for k in range(1, lag + 1):
        if cand.size == 0:
            break
        s = first[cand]
        p = s - k
        good = p >= 0
        cand, s, p = cand[good], s[good], p[good]
        a = chain[p]
        good = (a >= 0) & (c[p] == c[s]) & (a != cand)
        ag, cg, pg = a[good], cand[good], p[good]
        nested = (size[ag] >= size[cg]) & (nxt[pg] < m) & (nxt[pg] > last[cg])
        minor = (size[ag] >= dominance * size[cg]) & (last[ag] > last[cg])
        good[good] = nested | minor
        exc[cand[good]] = True
        cand = cand[~good]
    return exc


def jump_episodes(
    *,
    c: I64,
    t: I64,
    seen: I64,
    x: F64,
    y: F64,
    err: F64,
    vmax: F64,
    gmax: F64,
    tnoise: F64,
    min_jump: F64,
    chain: I64,
    excursion: B,
    err_sigmas: float = 3.0,
    by_chain: I64 | None = None,
) -> Jumps:
    """The impossible jumps of fix rows sorted by (ident, time): every run of consecutive excursion rows
    (``excursion`` per row) between good rows of the same ident, and every hand-over from one kept chain to the
    next at an impossible speed (the track went on from the new place); only those at least ``min_jump`` metres
    long whose implied speed, after both positions' errors and ``tnoise`` seconds of timing noise, is above
    ``vmax``. ``seen`` is the last time each fix was reported (its stale repeats); ``chain`` is ``-1`` for rows
    dropped as spikes (neither good nor part of an episode); ``by_chain``: the rows with a chain sorted by chain
    then row, where known.
    """
    m = c.size
    if m < 2:
        return Jumps.empty()
    rows = np.arange(m, dtype=np.int64)
    good = (chain >= 0) & ~excursion
    # runs of excursion rows of one ident
    new_ident = np.ones(m, dtype=bool)
    new_ident[1:] = c[1:] != c[:-1]
    ex_start = excursion & (new_ident | np.r_[True, ~excursion[:-1]])
    ex_id = np.cumsum(ex_start) - 1
    starts = np.flatnonzero(ex_start)
    ex_rows = rows[excursion]
    lasts = np.full(starts.size, -1, dtype=np.int64)
    if starts.size:
        np.maximum.at(lasts, ex_id[excursion], ex_rows)
    # the good rows before and after each episode (same ident)
    prev_good = np.maximum.accumulate(np.where(good, rows, -1))
    next_good = np.minimum.accumulate(np.where(good, rows, m)[::-1])[::-1]
    fr = np.where(starts > 0, prev_good[np.maximum(starts - 1, 0)], -1)
    bk = np.where(lasts + 1 < m, next_good[np.minimum(lasts + 1, m - 1)], m)
    ok = (fr >= 0) & (c[np.maximum(fr, 0)] == c[starts])
    back = np.where((bk < m) & (c[np.minimum(bk, m - 1)] == c[starts]), bk, -1)
    ep_from, ep_to, ep_last, ep_back = fr[ok], starts[ok], lasts[ok], back[ok]
    ep_hand = np.zeros(ep_from.size, dtype=bool)
    # hand-overs: a kept chain ends and the next good row of its ident starts another one
    g = rows[good]
    hand = (c[g[1:]] == c[g[:-1]]) & (chain[g[1:]] != chain[g[:-1]])
    if hand.any():
        a, b = g[:-1][hand], g[1:][hand]
        first_of, last_of, _, _ = chain_extents(np.where(good, chain, -1),
                                                None if by_chain is None else by_chain[good[by_chain]])  # fmt: skip
        clean = (last_of[chain[a]] == a) & (first_of[chain[b]] == b)  # one ends, the other begins: no overlap
        clean &= (t[b] - seen[a]) / _US <= gmax[b]
        a, b = a[clean], b[clean]
        # a hand-over across an excursion is already that excursion's episode
        between = np.r_[0, np.cumsum(excursion)]
        a_b = between[b] - between[a + 1] == 0
        a, b = a[a_b], b[a_b]
        last_b = np.full(a.size, -1, dtype=np.int64)
        if a.size:
            last_b = last_of[chain[b]]
        ep_from = np.r_[ep_from, a]
        ep_to = np.r_[ep_to, b]
        ep_last = np.r_[ep_last, last_b]
        ep_back = np.r_[ep_back, np.full(a.size, -1, dtype=np.int64)]
        ep_hand = np.r_[ep_hand, np.ones(a.size, dtype=bool)]
    if ep_from.size == 0:
        return Jumps.empty()
    d = flat_dist(x[ep_from], y[ep_from], x[ep_to], y[ep_to])
    dt = (t[ep_to] - t[ep_from]) / _US
    speed = np.maximum(d - err_sigmas * (err[ep_from] + err[ep_to]), 0.0) / (dt + tnoise[ep_to])
    keep = (d >= min_jump[ep_to]) & (speed > vmax[ep_to])
    ep_from, ep_to, ep_last, ep_back = ep_from[keep], ep_to[keep], ep_last[keep], ep_back[keep]
    d, speed, ep_hand = d[keep], speed[keep], ep_hand[keep]
    # the farthest each episode went from the good position, and its number of fixes
    n_pts = ep_last - ep_to + 1
    span = np.repeat(ep_to, n_pts) + (np.arange(int(n_pts.sum())) - np.repeat(np.cumsum(n_pts) - n_pts, n_pts))
    ep_of = np.repeat(np.arange(ep_to.size), n_pts)
    # a hand-over's new chain, or an episode's excursion rows
    mine = np.where(np.repeat(ep_hand, n_pts), chain[span] == chain[np.repeat(ep_to, n_pts)], excursion[span])
    far = np.zeros(ep_to.size)
    if span.size:
        dist = np.where(mine, flat_dist(x[ep_from[ep_of]], y[ep_from[ep_of]], x[span], y[span]), 0.0)
        np.maximum.at(far, ep_of, dist)
        n_pts = np.bincount(ep_of[mine], minlength=ep_to.size).astype(np.int64)
    order = np.lexsort((t[ep_to], c[ep_to]))
    return Jumps(
        from_row=ep_from[order], to_row=ep_to[order], last_row=ep_last[order], back_row=ep_back[order],
        distance_m=d[order], max_distance_m=np.maximum(far, d)[order], speed_mps=speed[order],
        n_points=n_pts[order], end_us=np.where(ep_hand, seen[ep_to], seen[ep_last])[order],
        from_us=seen[ep_from][order],
    )  # fmt: skip


def jump_cause(returned: bool, n_points: int) -> str:
    """The :data:`CAUSES` word of a jump episode."""
    if not returned:
        return "continued"
    return "bad_decode" if n_points <= 1 else "spoofing_suspected"


def events_table(rows: dict[str, Any]) -> pa.Table:
    """Jump events as an Arrow table of :data:`EVENTS_SCHEMA` (``rows``: a column name → values mapping)."""
    if not rows or not len(rows.get("id", [])):
        return EVENTS_SCHEMA.empty_table()
    return pa.table({f.name: pa.array(rows[f.name], type=f.type) for f in EVENTS_SCHEMA}, schema=EVENTS_SCHEMA)


def iso(t_us: int) -> str:
    """A time in µs since the epoch as ISO 8601 UTC (for event ids)."""
    return datetime.fromtimestamp(t_us / _US, tz=UTC).strftime("%Y%m%dT%H%M%S.%fZ")


__all__ = [
    "CAUSES",
    "EVENTS_SCHEMA",
    "EVENT_KIND",
    "Jumps",
    "events_dir",
    "events_table",
    "host_chains",
    "jump_cause",
    "jump_episodes",
    "mark_stale",
]
