"""Tracks: identified positions (AIS MMSI, ADS-B ICAO24, CoT uid) and id-less detections, to the stores.

**Identified tracks** (:func:`build_identified_tracks`) are built without any
per-point Python loop:

1. rows are sorted by (ident, time); exact repeats (same ident, time, position) are dropped;
2. each position is tested against the one before it with the object kind's
   kinematic envelope (:class:`Envelope`): the implied speed, allowing for both
   positions' errors, must stay under ``max_speed_mps`` and the gap under
   ``max_gap_s``; a failed test starts a new *run*;
3. a run that starts with a failed test is linked to the most recent earlier
   run end (up to ``lag`` rows back, same ident) that it can be reached from;
   each run end is taken by at most one successor. Chains of linked runs are the
   *segments*. Two objects sharing an id thus become two interleaved segments,
   and a spoofed jump starts its own segment instead of corrupting the real one;
4. single-position spikes whose implied acceleration on both sides exceeds
   ``max_accel_mps2`` (plus the noise allowance) are removed, and segments shorter
   than ``min_points`` are dropped as outliers.

**Unidentified tracks** come from :func:`atalaya.fusion.mtt.track_unidentified`.

:func:`run_tracks` reads the lake, writes full points as Parquet under
``WORKSPACE/analysis/tracks/`` (``track_id, time, lon, lat, speed, course,
obs_id, alt_m``) and upserts one summary row per track into the knowledge store
(stable id from ident kind, ident and start time; simplified GeoJSON
LineString; provenance with a sample of the supporting observation ids).

>>> import numpy as np
>>> t = np.arange(6, dtype=np.int64) * 60_000_000                  # one report per minute
>>> lon = np.array([-110.0, -109.99, -109.98, -105.0, -109.96, -109.95])  # a spoofed jump at row 3
>>> res = build_identified_tracks(ident=np.array(["366000001"] * 6), time_us=t, lon=lon,
...                               lat=np.full(6, 25.0), kind=np.array(["vessel"] * 6))
>>> res.segment.tolist(), res.n_segments
([0, 0, 0, -1, 0, 0], 1)
>>> build_identified_tracks(ident=np.array([], dtype=str), time_us=t[:0], lon=lon[:0], lat=lon[:0]).n_segments
0
"""

from __future__ import annotations

import time as _time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely
from sqlalchemy import insert

from atalaya.core.errors import ValidationError
from atalaya.core.ids import prefixed_id
from atalaya.core.markings import NO_INPUTS_MARKING, combine_groups, combine_texts
from atalaya.core.provenance import Provenance
from atalaya.core.workspace import Workspace
from atalaya.fusion.jumps import (
    EVENT_KIND,
    Jumps,
    events_dir,
    events_table,
    host_chains,
    iso,
    jump_cause,
    jump_episodes,
    mark_stale,
)
from atalaya.fusion.mtt import TrackerConfig, track_unidentified
from atalaya.geo.kernels import geodesic_distance
from atalaya.store.knowledge import KnowledgeStore, schema, upsert
from atalaya.store.lake import Lake, bucket_count

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

METHOD_IDENTIFIED = "tracks/identified-v1"
METHOD_UNIDENTIFIED = "tracks/mtt-gnn-v1"
_US = 1_000_000
_R = 6_371_008.8
_DEG = np.pi / 180.0


@dataclass(frozen=True, kw_only=True)
class Envelope:
    """Kinematic envelope of an object kind: what a real position sequence can do."""

    max_speed_mps: float
    """Highest plausible speed over ground, m/s."""
    max_accel_mps2: float
    """Highest plausible change of speed, m/s²."""
    max_gap_s: float
    """A longer silence ends a segment, seconds."""
    default_err_m: float
    """Position error assumed where a row has none (1-sigma, metres)."""
    timing_noise_s: float = 0.0
    """Seconds a report's time may be off from its position's (a fix stamped on receipt, a late message): added to
    every interval before the speed test."""
    min_jump_m: float = 1000.0
    """Shortest impossible move reported as a position-jump event, metres (shorter ones are position noise)."""


_MACH_1_5 = 515.0
"""Mach 1.5 at sea level, m/s: the fastest an identified aircraft is taken to fly (military jets included)."""

ENVELOPES: dict[str, Envelope] = {
    "vessel": Envelope(max_speed_mps=35.0, max_accel_mps2=1.5, max_gap_s=3 * 3600.0, default_err_m=15.0,
                       timing_noise_s=2.0, min_jump_m=500.0),
    "aircraft": Envelope(max_speed_mps=_MACH_1_5, max_accel_mps2=12.0, max_gap_s=1800.0, default_err_m=30.0,
                         timing_noise_s=1.0, min_jump_m=2000.0),
    "vehicle": Envelope(max_speed_mps=60.0, max_accel_mps2=6.0, max_gap_s=1800.0, default_err_m=15.0,
                        timing_noise_s=1.0, min_jump_m=500.0),
    "person": Envelope(max_speed_mps=60.0, max_accel_mps2=6.0, max_gap_s=1800.0, default_err_m=15.0,
                       timing_noise_s=1.0, min_jump_m=500.0),
    "platform": Envelope(max_speed_mps=_MACH_1_5, max_accel_mps2=12.0, max_gap_s=1800.0, default_err_m=30.0,
                         timing_noise_s=1.0, min_jump_m=2000.0),
}  # fmt: skip
"""Envelopes by object kind (``ObjectKind`` values); other kinds use :data:`DEFAULT_ENVELOPE`."""
DEFAULT_ENVELOPE = Envelope(max_speed_mps=_MACH_1_5, max_accel_mps2=12.0, max_gap_s=1800.0, default_err_m=30.0,
                            timing_noise_s=1.0, min_jump_m=2000.0)  # fmt: skip
"""Envelope of kinds without their own entry."""

IDENT_KINDS = ("mmsi", "icao24", "cot_uid")
"""Identifier kinds whose positions make identified tracks."""
MTT_SENSORS = ("GMTI", "RADAR")
"""Sensors whose id-less detections are tracked by the multi-target tracker (each sensor on its own)."""

POINTS_SCHEMA = pa.schema(
    [
        pa.field("track_id", pa.string(), nullable=False),
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("lon", pa.float64(), nullable=False),
        pa.field("lat", pa.float64(), nullable=False),
        pa.field("speed", pa.float32()),
        pa.field("course", pa.float32()),
        pa.field("obs_id", pa.binary(16)),
        pa.field("alt_m", pa.float32()),
        pa.field("stale", pa.bool_()),
    ]
)
"""Columns of the track point files under ``WORKSPACE/analysis/tracks/`` (speed m/s, course degrees true, altitude
above MSL in metres where the feed reports one: ADS-B; ``stale`` true for a stale repeat of an earlier fix, kept to
show the object was heard but not a position of its own: use only the other points for speeds and shapes)."""


@dataclass(frozen=True, kw_only=True)
class IdentifiedTracks:
    """Segments found by :func:`build_identified_tracks`, as arrays over the input rows."""

    segment: I64
    """Segment of each input row, ``-1`` for rows dropped (duplicates, outliers, too-short segments)."""
    order: I64
    """Input rows of the kept points, sorted by segment then time."""
    n_segments: int
    """Number of segments (numbered 0… in order of ident, then start time)."""
    outliers: int = 0
    """Rows dropped as kinematic outliers (spikes and segments shorter than ``min_points``)."""
    duplicates: int = 0
    """Rows dropped as exact repeats (same ident, time and position) of a row already seen."""
    stale: B = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """Per input row: a stale repeat of an earlier fix (kept in its track, not used for kinematics)."""
    n_stale: int = 0
    """Stale repeats among the kept and dropped rows."""
    jumps: Jumps = field(default_factory=Jumps.empty)
    """Impossible jumps (spoofing, bad decodes), as rows of the fix arrays; :attr:`jump_rows` maps them to input
    rows."""
    jump_rows: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Input row of each fix row the :attr:`jumps` refer to."""


def _codes(values: Any) -> I64:
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(np.asarray(values, dtype=object))
    enc = pc.dictionary_encode(arr)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    idx = enc.indices.to_numpy(zero_copy_only=False)
    return np.asarray(np.where(enc.is_null().to_numpy(zero_copy_only=False), -1, idx), dtype=np.int64)


_ENVELOPE_FIELDS = ("max_speed_mps", "max_accel_mps2", "max_gap_s", "default_err_m", "timing_noise_s", "min_jump_m")


def _envelope_arrays(kind: Any, n: int, envelopes: dict[str, Envelope]) -> tuple[F64, ...]:
    """Per row: the :data:`_ENVELOPE_FIELDS` of its kind's envelope."""
    if kind is None:
        e = DEFAULT_ENVELOPE
        return tuple(np.full(n, float(getattr(e, name))) for name in _ENVELOPE_FIELDS)
    arr = kind if isinstance(kind, pa.Array | pa.ChunkedArray) else pa.array(np.asarray(kind, dtype=object))
    enc = pc.dictionary_encode(arr)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    names = enc.dictionary.to_pylist()
    table = [envelopes.get(str(k), DEFAULT_ENVELOPE) for k in names] or [DEFAULT_ENVELOPE]
    idx = np.asarray(enc.indices.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    return tuple(np.array([float(getattr(e, name)) for e in table])[idx] for name in _ENVELOPE_FIELDS)


def _flat_dist(lon1: F64, lat1: F64, lon2: F64, lat2: F64, coslat: F64 | None = None) -> F64:
    """Equirectangular distance, metres (accurate to ~0.5 % over the short steps of a track).

    ``coslat`` (cosine of a latitude near both points, e.g. the first's) saves the cosine per pair.
    """
    dlon = lon2 - lon1
    if dlon.size and float(np.abs(dlon).max()) > 180.0:  # across the antimeridian
        dlon = dlon - 360.0 * np.round(dlon / 360.0)
    x = dlon * (np.cos(0.5 * (lat1 + lat2) * _DEG) if coslat is None else coslat)
    dy = lat2 - lat1
    return np.asarray(np.sqrt(x * x + dy * dy) * (_DEG * _R), dtype=np.float64)


def _sort_rows(code: I64, t: I64, x: F64, y: F64) -> I64:
    """Row order by (code, time), rows at the same time by position: one int64 key when it fits, else a lexsort.

    An id flown by two objects at once reports two positions at one time; ordering those by position, not by
    where they happened to come in, makes the tracks the same whatever the order of the rows (and whichever other
    ids are tracked with them).

    >>> _sort_rows(np.array([1, 0, 0, 0]), np.array([5, 7, 7, 3]), np.array([0.0, 2.0, 1.0, 0.0]), np.zeros(4)).tolist()
    [3, 2, 1, 0]
    """
    if code.size == 0:
        return np.zeros(0, dtype=np.int64)
    t0 = int(t.min())
    span = int(t.max()) - t0 + 1
    if (int(code.max()) + 1) * span < 2**62:
        key = code * np.int64(span) + (t - t0)
        o = np.asarray(np.argsort(key), dtype=np.int64)
        tie = key[o][1:] == key[o][:-1]
    else:
        o = np.asarray(np.lexsort((t, code)), dtype=np.int64)
        tie = (code[o][1:] == code[o][:-1]) & (t[o][1:] == t[o][:-1])
    if tie.any():
        rows = np.zeros(o.size, dtype=bool)
        rows[1:] |= tie
        rows[:-1] |= tie
        pos = np.flatnonzero(rows)
        group = np.cumsum(np.r_[True, ~tie])[pos]  # one number per run of equal (code, time)
        sub = o[pos]
        o[pos] = sub[np.lexsort((y[sub], x[sub], group))]
    return o


def build_identified_tracks(
    *,
    ident: Any,
    time_us: Any,
    lon: Any,
    lat: Any,
    kind: Any = None,
    pos_err_m: Any = None,
    envelopes: dict[str, Envelope] | None = None,
    lag: int = 8,
    min_points: int = 2,
    err_sigmas: float = 3.0,
) -> IdentifiedTracks:
    """Clean, segmented tracks of identified positions (see the module docstring for the method).

    ``ident`` may be strings (NumPy or Arrow) or integer codes; ``kind`` picks the
    envelope per row; ``pos_err_m`` (1-sigma, NaN for unknown) widens the speed
    gate by ``err_sigmas`` times both positions' errors.
    """
    if lag < 1 or min_points < 1:
        raise ValidationError("lag and min_points must be at least 1", hint="e.g. lag=8, min_points=2")
    t = np.asarray(time_us, dtype=np.int64)
    n = t.size
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    ident_arr = np.asarray(ident) if not isinstance(ident, pa.Array | pa.ChunkedArray) else None
    if ident_arr is not None and np.issubdtype(ident_arr.dtype, np.integer):
        enc = pc.dictionary_encode(pa.array(ident_arr))  # dense codes keep the sort key small
        code = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    else:
        code = _codes(ident) if n else np.zeros(0, dtype=np.int64)
    if x.size != n or y.size != n or code.size != n:
        raise ValidationError("ident, time_us, lon and lat must have one value per row", hint="check array lengths")
    env = _envelope_arrays(kind, n, envelopes or ENVELOPES)
    err = env[3] if pos_err_m is None else np.asarray(pos_err_m, dtype=np.float64)
    err = np.where(np.isfinite(err) & (err > 0), err, env[3])
    seg = np.full(n, -1, dtype=np.int64)
    stale_in = np.zeros(n, dtype=bool)
    if n == 0:
        return IdentifiedTracks(segment=seg, order=np.zeros(0, dtype=np.int64), n_segments=0, stale=stale_in)

    valid = code >= 0
    o = _sort_rows(code, t, x, y)
    o = o[valid[o]]
    c, ts, xs, ys = code[o], t[o], x[o], y[o]
    m = o.size
    dup = np.zeros(m, dtype=bool)
    dup[1:] = (c[1:] == c[:-1]) & (ts[1:] == ts[:-1]) & (xs[1:] == xs[:-1]) & (ys[1:] == ys[:-1])
    n_dup = int(dup.sum())
    if n_dup:
        o, c, ts, xs, ys = o[~dup], c[~dup], ts[~dup], xs[~dup], ys[~dup]
        m = o.size
    # stale repeats: kept, but their fix stands for them in every gate and link
    stale, src = mark_stale(c, ts, xs, ys, lag)
    seen = ts.copy()
    if stale.any():
        np.maximum.at(seen, src[stale], ts[stale])
    fix = np.flatnonzero(~stale)
    fo = o[fix]
    if fix.size == m:  # no stale repeats: the sorted rows are the fixes
        f = _Fixes(c=c, t=ts, seen=seen, x=xs, y=ys, vmax=env[0][fo], amax=env[1][fo], gmax=env[2][fo], err=err[fo],
                   tnoise=env[4][fo], min_jump=env[5][fo])  # fmt: skip
    else:
        f = _Fixes(c=c[fix], t=ts[fix], seen=seen[fix], x=xs[fix], y=ys[fix], vmax=env[0][fo], amax=env[1][fo],
                   gmax=env[2][fo], err=err[fo], tnoise=env[4][fo], min_jump=env[5][fo])  # fmt: skip
    chain, co, n_out = _chains(f, lag, err_sigmas)
    excursion_of = host_chains(f.c, chain, lag, by_chain=co)
    exc_row = (chain >= 0) & excursion_of[np.maximum(chain, 0)]
    jumps = jump_episodes(c=f.c, t=f.t, seen=f.seen, x=f.x, y=f.y, err=f.err, vmax=f.vmax, gmax=f.gmax,
                          tnoise=f.tnoise, min_jump=f.min_jump, chain=chain, excursion=exc_row,
                          err_sigmas=err_sigmas, by_chain=co)  # fmt: skip
    n_exc = int(exc_row.sum())
    chain = np.where(exc_row, -1, chain)
    # every row (stale ones through their fix) to its chain; chains too small are dropped
    fix_chain = np.full(m, -1, dtype=np.int64)
    fix_chain[fix] = chain
    row_chain = fix_chain[src]
    n_ch = int(chain.max()) + 1 if chain.size else 0
    kept = row_chain >= 0
    size = np.bincount(row_chain[kept], minlength=max(n_ch, 1))
    small = kept & (size[np.maximum(row_chain, 0)] < min_points)
    n_out += int((small & ~stale).sum())
    kept &= ~small
    rows = np.flatnonzero(kept)
    rc = row_chain[rows]
    if not bool(np.all(rc[1:] >= rc[:-1])):  # by chain (its first fix: ident, start time), then time
        rows = rows[np.argsort(rc * np.int64(m) + rows, kind="stable")]
    ch = row_chain[rows]
    dense = np.zeros(ch.size, dtype=np.int64)
    if ch.size:
        dense[1:] = np.cumsum(ch[1:] != ch[:-1])
    seg[o[rows]] = dense
    stale_in[o[stale]] = True
    return IdentifiedTracks(
        segment=seg, order=o[rows], n_segments=int(dense.max()) + 1 if dense.size else 0,
        outliers=n_out + n_exc, duplicates=n_dup, stale=stale_in, n_stale=int(stale.sum()),
        jumps=jumps, jump_rows=fo,
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class _Fixes:
    """Fix rows (stale repeats left out) sorted by (ident, time), with each row's envelope."""

    c: I64
    t: I64
    seen: I64
    """Last time the fix was reported (its stale repeats)."""
    x: F64
    y: F64
    vmax: F64
    amax: F64
    gmax: F64
    err: F64
    tnoise: F64
    min_jump: F64


def _chains(f: _Fixes, lag: int, err_sigmas: float) -> tuple[I64, I64, int]:
    """Chain of each fix (``-1`` for spikes; numbered ``0…`` in order of first fix), the fixes with a chain sorted
    by chain then time, and the number of spikes: runs of feasible steps, each run linked to the most recent
    feasible run end among the ``lag`` runs before it (same ident)."""
    c, ts, xs, ys = f.c, f.t, f.x, f.y
    m = c.size
    if m == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 0
    cl = np.cos(ys * _DEG)

    def feasible(i: I64, j: I64) -> B:
        """Fix j reachable from earlier fix i (same ident assumed): the silence since i was last heard under the
        kind's gap, the distance within the speed envelope (plus timing noise and both positions' errors)."""
        dt = (ts[j] - ts[i]) / _US
        d = _flat_dist(xs[i], ys[i], xs[j], ys[j], cl[i])
        reach = f.vmax[j] * (dt + f.tnoise[j]) + err_sigmas * (f.err[i] + f.err[j])
        return np.asarray(((ts[j] - f.seen[i]) / _US <= f.gmax[j]) & (d <= reach), dtype=bool)

    idx = np.arange(m, dtype=np.int64)
    first = np.ones(m, dtype=bool)
    first[1:] = c[1:] != c[:-1]
    ok1 = np.zeros(m, dtype=bool)
    if m > 1:
        ok1[1:] = ~first[1:] & feasible(idx[:-1], idx[1:])
    run_start = ~ok1
    run = np.cumsum(run_start) - 1
    start_row = np.flatnonzero(run_start)
    end_row = np.r_[start_row[1:] - 1, m - 1].astype(np.int64)
    n_runs = start_row.size
    parent = np.arange(n_runs, dtype=np.int64)
    # link broken runs to an earlier run end of the same ident, up to `lag` runs back (a spoofed episode of any
    # length between two parts of the real track is one or a few runs)
    cand = np.flatnonzero(~first[start_row])
    taken = np.zeros(n_runs, dtype=bool)
    for k in range(2, lag + 2):
        if cand.size == 0:
            break
        pr = cand - k
        okp = pr >= 0
        cand_k, pr = cand[okp], pr[okp]
        s, e = start_row[cand_k], end_row[pr]
        good = (c[e] == c[s]) & ~taken[pr]
        good[good] = feasible(e[good], s[good])
        sr, pp = cand_k[good], pr[good]
        if sr.size:
            ordr = np.lexsort((sr, pp))  # each run end takes one successor: the earliest
            sr, pp = sr[ordr], pp[ordr]
            one = np.ones(sr.size, dtype=bool)
            one[1:] = pp[1:] != pp[:-1]
            sr, pp = sr[one], pp[one]
            parent[sr] = pp
            taken[pp] = True
        linked = np.zeros(n_runs, dtype=bool)
        linked[sr] = True
        cand = cand[~linked[cand]]
    while True:  # pointer jumping to the chain roots
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            break
        parent = nxt
    chain = parent[run]
    ordered = bool(np.all(chain[1:] >= chain[:-1]))
    co = idx if ordered else np.asarray(np.argsort(chain * np.int64(m) + idx), dtype=np.int64)
    spike = _spikes(chain[co], ts[co], xs[co], ys[co], f.amax[co], f.err[co], cl[co], err_sigmas)
    out = np.full(m, -1, dtype=np.int64)
    # chain numbers dense, in order of first fix (the roots are the chains' first runs)
    co = co[~spike]
    ch = chain[co]
    dense = np.zeros(co.size, dtype=np.int64)
    if co.size:
        dense[1:] = np.cumsum(ch[1:] != ch[:-1])
    out[co] = dense
    return out, co, int(spike.sum())


def _spikes(ch: I64, ts: I64, xs: F64, ys: F64, amax: F64, err: F64, cl: F64, k: float) -> B:
    """Single points whose implied acceleration exceeds the envelope on both sides (rows sorted by chain, time)."""
    m = ch.size
    out = np.zeros(m, dtype=bool)
    if m < 3:
        return out
    same = ch[1:] == ch[:-1]
    dt = np.maximum((ts[1:] - ts[:-1]) / _US, 1e-3)
    d = _flat_dist(xs[:-1], ys[:-1], xs[1:], ys[1:], cl[:-1])
    v = d / dt
    # speed change across point i (between segments i-1→i and i→i+1), allowed: a·Δt plus the noise of three positions
    mid = same[:-1] & same[1:]
    span = 0.5 * (dt[:-1] + dt[1:])
    noise = k * (err[:-2] + 2 * err[1:-1] + err[2:]) / np.minimum(dt[:-1], dt[1:])
    acc_bad = np.abs(v[1:] - v[:-1]) > amax[1:-1] * span + noise
    # a spike: bad on entry and exit, and the neighbours agree with each other
    dd = _flat_dist(xs[:-2], ys[:-2], xs[2:], ys[2:], cl[:-2])
    detour = (d[:-1] + d[1:]) > 2.0 * dd + k * (err[:-2] + err[2:]) + 1.0
    out[1:-1] = mid & acc_bad & detour
    return out


def point_kinematics(track: I64, time_us: I64, lon: F64, lat: F64) -> tuple[F64, F64]:
    """Implied speed (m/s) and course (degrees true) of each point, from the next point of its track
    (the last point repeats its predecessor's; single points get NaN). Rows sorted by track, time.

    >>> import numpy as np
    >>> sp, co = point_kinematics(np.array([0, 0]), np.array([0, 10_000_000]), np.array([0.0, 0.0]),
    ...                           np.array([0.0, 0.001]))
    >>> [round(float(v), 2) for v in sp], co.tolist()
    ([11.12, 11.12], [0.0, 0.0])
    >>> point_kinematics(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0))[0].size
    0
    """
    m = track.size
    sp = np.full(m, np.nan)
    co = np.full(m, np.nan)
    if m < 2:
        return sp, co
    same = track[1:] == track[:-1]
    dt = np.maximum((time_us[1:] - time_us[:-1]) / _US, 1e-6)
    dlon = np.remainder(lon[1:] - lon[:-1] + 180.0, 360.0) - 180.0
    e = dlon * np.cos(0.5 * (lat[1:] + lat[:-1]) * _DEG) * (_DEG * _R)
    nn = (lat[1:] - lat[:-1]) * (_DEG * _R)
    v = np.hypot(e, nn) / dt
    c = np.degrees(np.arctan2(e, nn)) % 360.0
    fwd = np.flatnonzero(same)
    sp[fwd], co[fwd] = v[fwd], c[fwd]
    last = fwd + 1
    is_last = np.ones(m, dtype=bool)
    is_last[:-1] = ~same
    li = last[is_last[last]]
    sp[li], co[li] = v[li - 1], c[li - 1]
    return sp, co


@dataclass(frozen=True, kw_only=True)
class _Batch:
    """Track points of one family (identified or one sensor's MTT), sorted by track then time."""

    track: I64
    time_us: I64
    lon: F64
    lat: F64
    speed: F64
    course: F64
    obs_id: pa.Array
    track_ident: list[str | None]
    track_ident_kind: list[str | None]
    track_kind: list[str]
    source: pa.Array
    marking: pa.Array
    method: str
    extra: dict[str, Any] = field(default_factory=dict)
    alt_m: F64 | None = None
    """Reported altitude per point (NaN where none); ``None`` where the family has none."""
    stale: B | None = None
    """Per point: a stale repeat of an earlier fix (``None``: none are)."""
    events: dict[str, list[Any]] = field(default_factory=dict)
    """Position-jump events (columns of :data:`~atalaya.fusion.jumps.EVENTS_SCHEMA`, ``track_id`` still the
    batch's track number, ``-1`` for none)."""


def _lake_table(lake: Lake, where: str) -> pa.Table:
    return lake.query(
        "SELECT obs_id, epoch_us(time) AS t_us, lon, lat, alt_m, pos_err_m, speed_mps, course_deg, "
        "CAST(sensor AS VARCHAR) AS sensor, CAST(kind AS VARCHAR) AS kind, ident, "
        "CAST(ident_kind AS VARCHAR) AS ident_kind, CAST(marking AS VARCHAR) AS marking, source "
        f"FROM observations WHERE {where}"
    )


def _np(t: pa.Table, name: str, dtype: Any = None) -> Any:
    col = t.column(name)
    if dtype is not None:
        return col.to_numpy().astype(dtype) if col.null_count == 0 else np.asarray(
            pc.fill_null(col, np.nan).to_numpy(), dtype=dtype)  # fmt: skip
    return col.to_numpy(zero_copy_only=False)


def _dictionary(col: pa.ChunkedArray) -> pa.DictionaryArray:
    """A string column as a dictionary array: an integer per row, each distinct string once."""
    arr = col.combine_chunks()
    return arr if pa.types.is_dictionary(arr.type) else pc.dictionary_encode(arr)


BUCKET_ROWS = 4_000_000
"""Identified positions tracked at a time: above this, the ids are split into buckets by a hash of the id and
each bucket is tracked on its own (an id's positions all fall in one bucket, so the tracks are the same), which
bounds the memory by the bucket instead of the period."""


def _identified_where() -> str:
    kinds = ", ".join(f"'{k}'" for k in IDENT_KINDS)
    return f"ident IS NOT NULL AND CAST(ident_kind AS VARCHAR) IN ({kinds})"


def _identified_batches(lake: Lake, bucket_rows: int = BUCKET_ROWS) -> Iterator[_Batch]:
    """:func:`_identified_batch` over buckets of ids (see :data:`BUCKET_ROWS`), one batch per bucket."""
    where = _identified_where()
    n = int(lake.query(f"SELECT count(*) AS n FROM observations WHERE {where}").column("n")[0].as_py() or 0)
    k = bucket_count(n, bucket_rows)
    for b in range(k):
        yield _identified_batch(lake, where if k == 1 else f"{where} AND hash(ident) % {k} = {b}")


def _identified_batch(lake: Lake, where: str | None = None) -> _Batch:
    tab = _lake_table(lake, where or _identified_where())
    # strings become dictionaries and numbers arrays, column by column, and the table is let go: tens of millions
    # of positions must not hold a Python-sized string per row, nor a sorted copy of every column
    text = {name: _dictionary(tab.column(name)) for name in ("ident", "ident_kind", "kind", "source", "marking")}
    num = {name: _np(tab, name, np.float64) for name in ("lon", "lat", "alt_m", "pos_err_m", "speed_mps", "course_deg")}
    t_all = _np(tab, "t_us", np.int64)
    obs_all = tab.column("obs_id").combine_chunks()
    del tab
    codes = {
        k: np.asarray(text[k].indices.to_numpy(zero_copy_only=False), dtype=np.int64) for k in ("ident_kind", "ident")
    }
    key = codes["ident_kind"] * (len(text["ident"].dictionary) + 1) + codes["ident"]  # (ident kind, ident) as one
    res = build_identified_tracks(
        ident=key, time_us=t_all, lon=num["lon"], lat=num["lat"], kind=text["kind"], pos_err_m=num["pos_err_m"],
    )  # fmt: skip
    o = res.order
    rows = pa.array(o, type=pa.int64())
    tr = res.segment[o]
    t_us = t_all[o]
    lon, lat = num["lon"][o], num["lat"][o]
    st = res.stale[o]
    sp_i, co_i = _fix_kinematics(tr, t_us, lon, lat, st)
    sp_r, co_r = num["speed_mps"][o], num["course_deg"][o]
    firsts = np.flatnonzero(np.concatenate([[True], tr[1:] != tr[:-1]])) if tr.size else np.zeros(0, dtype=np.int64)
    at_first = pa.array(o[firsts], type=pa.int64())

    def per_track(name: str) -> list[Any]:
        return list(text[name].take(at_first).to_pylist())

    return _Batch(
        track=tr, time_us=t_us, lon=lon, lat=lat,
        speed=np.where(np.isfinite(sp_r), sp_r, sp_i), course=np.where(np.isfinite(co_r), co_r, co_i),
        obs_id=obs_all.take(rows),
        track_ident=per_track("ident"), track_ident_kind=per_track("ident_kind"),
        track_kind=[k or "unknown" for k in per_track("kind")],
        source=text["source"].take(rows), marking=text["marking"].take(rows),
        method=METHOD_IDENTIFIED,
        extra={"outliers": res.outliers, "duplicates": res.duplicates, "stale": res.n_stale,
               "position_jumps": len(res.jumps)},
        alt_m=num["alt_m"][o], stale=st, events=_jump_events(res, text, t_all, num),
    )  # fmt: skip


def _fix_kinematics(tr: I64, t_us: I64, lon: F64, lat: F64, stale: B) -> tuple[F64, F64]:
    """:func:`point_kinematics` of the fixes; a stale repeat takes its fix's speed and course (rows sorted by track,
    time; a track's first row is always a fix)."""
    if not stale.any():
        return point_kinematics(tr, t_us, lon, lat)
    fx = np.flatnonzero(~stale)
    sp_f, co_f = point_kinematics(tr[fx], t_us[fx], lon[fx], lat[fx])
    sp, co = np.full(tr.size, np.nan), np.full(tr.size, np.nan)
    sp[fx], co[fx] = sp_f, co_f
    at = np.maximum.accumulate(np.where(stale, -1, np.arange(tr.size)))
    return sp[np.maximum(at, 0)], co[np.maximum(at, 0)]


def _jump_events(res: IdentifiedTracks, text: dict[str, pa.DictionaryArray], t_all: I64,
                 num: dict[str, Any]) -> dict[str, list[Any]]:  # fmt: skip
    """The position-jump events of a batch as columns (see :attr:`_Batch.events`)."""
    j = res.jumps
    if len(j) == 0:
        return {}
    fr, to = res.jump_rows[j.from_row], res.jump_rows[j.to_row]
    pick = pa.array(fr, type=pa.int64())

    def col(name: str, rows: pa.Array = pick) -> list[Any]:
        return list(text[name].take(rows).to_pylist())

    idents, ikinds = col("ident"), col("ident_kind")
    marks = [combine_texts([m for m in pair if m]) if any(pair) else NO_INPUTS_MARKING.to_text()
             for pair in zip(col("marking"), col("marking", pa.array(to, type=pa.int64())), strict=True)]  # fmt: skip
    returned = (j.back_row >= 0).tolist()
    n_pts = j.n_points.tolist()
    start = t_all[to]
    return {
        "id": [prefixed_id("jump", str(k), str(i), iso(int(ts))) for k, i, ts in zip(ikinds, idents, start.tolist(),
                                                                                      strict=True)],
        "kind": [EVENT_KIND] * len(j), "cause": [jump_cause(r, n) for r, n in zip(returned, n_pts, strict=True)],
        "ident": idents, "ident_kind": ikinds, "object_kind": col("kind"),
        "track_id": res.segment[fr].tolist(),
        "start": start.tolist(), "end": np.maximum(j.end_us, start).tolist(),
        "lon": num["lon"][fr].tolist(), "lat": num["lat"][fr].tolist(),
        "end_lon": num["lon"][to].tolist(), "end_lat": num["lat"][to].tolist(),
        "distance_km": (j.distance_m / 1000.0).round(3).tolist(),
        "max_distance_km": (j.max_distance_m / 1000.0).round(3).tolist(),
        "dt_s": ((start - j.from_us) / _US).tolist(), "speed_mps": j.speed_mps.round(1).tolist(),
        "n_points": n_pts, "returned": returned, "marking": marks,
    }  # fmt: skip


def _mtt_batch(lake: Lake, sensor: str, config: TrackerConfig | None) -> _Batch:
    tab = _lake_table(lake, f"ident IS NULL AND CAST(sensor AS VARCHAR) = '{sensor}'")
    res = track_unidentified(
        time_us=_np(tab, "t_us", np.int64), lon=_np(tab, "lon", np.float64), lat=_np(tab, "lat", np.float64),
        sigma_m=_np(tab, "pos_err_m", np.float64), config=config,
    )  # fmt: skip
    det = res.detection
    has = det >= 0
    safe = pa.array(np.where(has, det, 0), type=pa.int64())
    obs = tab.column("obs_id").combine_chunks().take(safe) if tab.num_rows else pa.array([], type=pa.binary(16))
    obs = pc.if_else(pa.array(has), obs, pa.nulls(len(obs), type=obs.type)) if len(obs) else obs
    firsts: list[int] = []
    if len(res):
        firsts = np.flatnonzero(np.concatenate([[True], res.track[1:] != res.track[:-1]])).tolist()
    kind_col = tab.column("kind").combine_chunks().take(safe) if tab.num_rows else pa.array([], type=pa.string())
    return _Batch(
        track=res.track, time_us=res.time_us, lon=res.lon, lat=res.lat, speed=res.speed_mps, course=res.course_deg,
        obs_id=obs, track_ident=[None] * len(firsts), track_ident_kind=[None] * len(firsts),
        track_kind=[kind_col[int(i)].as_py() or "unknown" for i in firsts],
        source=_at_detections(tab, "source", safe, has), marking=_at_detections(tab, "marking", safe, has),
        method=METHOD_UNIDENTIFIED, extra={"sensor": sensor, "detections": tab.num_rows},
    )  # fmt: skip


def _at_detections(tab: pa.Table, name: str, safe: pa.Array, has: npt.NDArray[np.bool_]) -> pa.Array:
    """A column of the detections at each track point: null where the point has none (predicted, not seen)."""
    if tab.num_rows == 0:
        return pa.array([], type=pa.string())
    col = tab.column(name).combine_chunks().take(safe)
    return pc.if_else(pa.array(has), col, pa.nulls(len(col), type=col.type))


def _ids(b: _Batch, bounds: I64) -> list[str]:
    out = []
    for k, i in enumerate(bounds[:-1].tolist()):
        start = datetime.fromtimestamp(int(b.time_us[i]) / _US, tz=UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        if b.track_ident[k] is not None:
            out.append(prefixed_id("track", str(b.track_ident_kind[k]), str(b.track_ident[k]), start))
        else:  # id-less: the sensor and the first supporting detection
            first = b.obs_id[i].as_py()
            out.append(prefixed_id("track", str(b.extra.get("sensor")), start, first.hex() if first else ""))
    return out


def _summaries(
    b: _Batch, run_id: str, *, sample: int = 5, simplify_deg: float = 0.0005
) -> tuple[list[dict[str, Any]], list[str]]:
    n = b.track.size
    if n == 0:
        return [], []
    bounds = np.concatenate([[0], np.flatnonzero(b.track[1:] != b.track[:-1]) + 1, [n]]).astype(np.int64)
    ids = _ids(b, bounds)
    counts = np.diff(bounds)
    step = np.zeros(n)
    if n > 1:
        same = b.track[1:] == b.track[:-1]
        step[1:] = np.where(same, geodesic_distance(b.lon[:-1], b.lat[:-1], b.lon[1:], b.lat[1:],
                                                    exact_beyond=False), 0.0)  # fmt: skip
    length_km = np.add.reduceat(step, bounds[:-1]) / 1000.0
    n_stale = np.add.reduceat(b.stale.astype(np.int64), bounds[:-1]) if b.stale is not None else np.zeros(counts.size)
    geo = shapely.to_geojson(track_geometries(bounds, b.lon, b.lat, b.stale, simplify_deg))
    # per track, without a Python object per point: the supporting observation ids (a sample of them as hex), the
    # sources and the markings
    valid = np.asarray(b.obs_id.is_valid().to_numpy(zero_copy_only=False), dtype=bool) if len(b.obs_id) else (
        np.zeros(n, dtype=bool))  # fmt: skip
    valid_rows = np.flatnonzero(valid)
    before = np.r_[0, np.cumsum(valid)]  # valid rows before each row
    srcs = _distinct_per_track(bounds, b.source)
    marks_of = _distinct_per_track(bounds, b.marking)
    marking = track_markings(bounds, b.marking)
    rows = []
    for k in range(counts.size):
        a, z = int(bounds[k]), int(bounds[k + 1])
        v0, n_support = int(before[a]), int(before[z] - before[a])
        at = np.arange(n_support) if n_support <= sample else np.linspace(0, n_support - 1, sample).astype(np.int64)
        picks = [bytes(x).hex() for x in b.obs_id.take(pa.array(valid_rows[v0 + at])).to_pylist()]
        first = datetime.fromtimestamp(int(b.time_us[a]) / _US, tz=UTC)
        last = datetime.fromtimestamp(int(b.time_us[z - 1]) / _US, tz=UTC)
        marks = marks_of[k]
        prov = Provenance(
            sources=tuple(srcs[k]), observations=tuple(picks), n_support=n_support,
            first_seen=first.isoformat(), last_seen=last.isoformat(), run_id=run_id, method=b.method,
        )  # fmt: skip
        rows.append({
            "id": ids[k], "kind": b.track_kind[k], "ident": b.track_ident[k], "ident_kind": b.track_ident_kind[k],
            "start": first, "end": last, "n_points": z - a, "length_km": round(float(length_km[k]), 3),
            "geometry": str(geo[k]), "run_id": run_id,
            "attrs": {"method": b.method, **({"sensor": b.extra["sensor"]} if "sensor" in b.extra else {}),
                      **({"stale": int(n_stale[k])} if n_stale[k] else {}),
                      **({"markings": marks} if len(marks) > 1 else {})},
            "marking": marking[k], "provenance": prov.to_dict(),
        })  # fmt: skip
    return rows, ids


def track_geometries(bounds: I64, lon: F64, lat: F64, stale: B | None, simplify_deg: float) -> Any:
    """One valid display geometry per track (``bounds`` delimit the tracks' rows): the line through its fixes
    (stale repeats left out), simplified by ``simplify_deg``; the unsimplified line where simplifying would
    collapse it (a closed circuit); a Point where the track has fewer than two distinct positions — never a
    LineString of one repeated point.

    >>> g = track_geometries(np.array([0, 2, 5]), np.array([1.0, 1.0, 0.0, 1.0, 0.0]), np.zeros(5), None, 0.0)
    >>> [x.geom_type for x in g], bool(shapely.is_valid(g).all())
    (['Point', 'LineString'], True)
    """
    ntr = bounds.size - 1
    track = np.repeat(np.arange(ntr, dtype=np.int64), np.diff(bounds))
    fx = np.ones(track.size, dtype=bool) if stale is None else ~stale
    ft, fxs, fys = track[fx], lon[fx], lat[fx]
    # consecutive equal positions add nothing to a line
    new = np.ones(ft.size, dtype=bool)
    new[1:] = (ft[1:] != ft[:-1]) | (fxs[1:] != fxs[:-1]) | (fys[1:] != fys[:-1])
    ft, fxs, fys = ft[new], fxs[new], fys[new]
    n_pos = np.bincount(ft, minlength=ntr)
    many = n_pos[ft] >= 2
    out = np.empty(ntr, dtype=object)
    if many.any():
        ids, dense = np.unique(ft[many], return_inverse=True)
        out[ids] = shapely.linestrings(np.column_stack([fxs[many], fys[many]]), indices=dense)
    firsts = np.flatnonzero(np.r_[True, ft[1:] != ft[:-1]]) if ft.size else np.zeros(0, dtype=np.int64)
    single = n_pos[ft[firsts]] < 2
    out[ft[firsts][single]] = shapely.points(fxs[firsts][single], fys[firsts][single])
    simple = shapely.simplify(out, simplify_deg, preserve_topology=False) if simplify_deg > 0 else out
    ok = shapely.is_valid(simple) & ~shapely.is_empty(simple)
    simple = np.where(ok, simple, out)
    bad = ~shapely.is_valid(simple)  # a line whose distinct positions are all one (e.g. A, B, A with B = A)
    if bad.any():
        simple[bad] = shapely.points(shapely.get_point(simple[bad], 0))
    return simple


def track_markings(bounds: I64, marking: pa.Array | pa.ChunkedArray) -> list[str]:
    """The marking of each track (``bounds`` delimit the tracks' rows): the :func:`~atalaya.core.markings.combine`
    of the markings of the observations that make it (null for a point without an observation, e.g. a predicted
    one), so a track never goes further than any of its reports may; a track with none gets
    :data:`~atalaya.core.markings.NO_INPUTS_MARKING`. Vectorised: the distinct markings of each
    track by one ``numpy.unique``, then each distinct set of markings combined once.

    >>> b = np.array([0, 2, 3])
    >>> track_markings(b, pa.array(["TLP:AMBER+STRICT;REL:MEX,USA;ORIG:USA", "TLP:GREEN;REL:USA;ORIG:USA", None]))
    ['TLP:AMBER+STRICT;REL:USA;ORIG:USA', 'TLP:RED']
    """
    ntr = bounds.size - 1
    if ntr <= 0:
        return []
    arr = marking.combine_chunks() if isinstance(marking, pa.ChunkedArray) else marking
    if len(arr) == 0:
        return [NO_INPUTS_MARKING.to_text()] * ntr
    enc = arr if pa.types.is_dictionary(arr.type) else pc.dictionary_encode(arr)
    code = np.asarray(enc.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    track = np.repeat(np.arange(ntr, dtype=np.int64), np.diff(bounds))
    out = combine_groups(track, code, enc.dictionary.to_pylist(), ntr)
    return [m if m is not None else NO_INPUTS_MARKING.to_text() for m in out]


def _distinct_per_track(bounds: I64, values: pa.Array | pa.ChunkedArray) -> list[list[str]]:
    """The sorted distinct non-empty strings of each track's rows (``bounds`` delimit the tracks)."""
    ntr = bounds.size - 1
    if ntr <= 0 or len(values) == 0:
        return [[] for _ in range(max(ntr, 0))]
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    enc = arr if pa.types.is_dictionary(arr.type) else pc.dictionary_encode(arr)
    names = enc.dictionary.to_pylist()
    idx = np.asarray(enc.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    track = np.repeat(np.arange(ntr, dtype=np.int64), np.diff(bounds))
    ok = idx >= 0
    pairs = np.unique(track[ok] * (len(names) + 1) + idx[ok])
    out: list[list[str]] = [[] for _ in range(ntr)]
    for t, i in zip((pairs // (len(names) + 1)).tolist(), (pairs % (len(names) + 1)).tolist(), strict=True):
        if names[i]:
            out[t].append(names[i])
    return [sorted(x) for x in out]


def _points_table(b: _Batch, ids: list[str]) -> pa.Table:
    n = b.track.size
    if n == 0:
        return POINTS_SCHEMA.empty_table()
    _, dense = np.unique(b.track, return_inverse=True)
    tid = pa.DictionaryArray.from_arrays(pa.array(dense.astype(np.int32)), pa.array(ids, type=pa.string()))
    return pa.table(
        {
            "track_id": pc.cast(tid, pa.string()),
            "time": pa.array(b.time_us, type=pa.timestamp("us", tz="UTC")),
            "lon": pa.array(b.lon),
            "lat": pa.array(b.lat),
            "speed": pa.array(b.speed.astype(np.float32)),
            "course": pa.array(b.course.astype(np.float32)),
            "obs_id": b.obs_id,
            "alt_m": pa.array(b.alt_m.astype(np.float32), from_pandas=True)
            if b.alt_m is not None
            else pa.nulls(n, pa.float32()),
            "stale": pa.array(b.stale if b.stale is not None else np.zeros(n, dtype=bool)),
        },
        schema=POINTS_SCHEMA,
    )


def write_jump_events(ws: Workspace, parts: list[pa.Table], run_id: str) -> int:
    """Write the position-jump events to ``position_jumps.parquet`` under
    :func:`~atalaya.fusion.jumps.events_dir` (replacing an earlier run's); returns how many."""
    tb = pa.concat_tables(parts) if parts else events_table({})
    tb = tb.sort_by([("start", "ascending"), ("id", "ascending")])
    out = events_dir(ws)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".position_jumps.parquet.tmp"
    meta = {b"run_id": run_id.encode(), b"method": METHOD_IDENTIFIED.encode()}
    pq.write_table(tb.replace_schema_metadata(meta), tmp)
    tmp.replace(out / "position_jumps.parquet")
    return int(tb.num_rows)


def tracks_dir(ws: Workspace) -> Path:
    """Where :func:`run_tracks` writes the track points: ``WORKSPACE/analysis/tracks``."""
    return ws.root / "analysis" / "tracks"


def run_tracks(
    ws: Workspace,
    store: KnowledgeStore,
    *,
    progress: bool = False,
    sensors: tuple[str, ...] = MTT_SENSORS,
    config: TrackerConfig | None = None,
    bucket_rows: int = BUCKET_ROWS,
) -> dict[str, Any]:
    """Build identified and unidentified tracks from the whole lake; write points and summaries; return a summary.

    Identified positions are tracked in buckets of ids of about ``bucket_rows`` positions (:data:`BUCKET_ROWS`).

    Points go to ``WORKSPACE/analysis/tracks/identified.parquet`` and
    ``unidentified-<SENSOR>.parquet`` (:data:`POINTS_SCHEMA`, replaced on each
    run); summaries are upserted into the ``tracks`` table.
    """
    started = datetime.now(UTC)
    t0 = _time.perf_counter()
    lake = Lake(ws.lake_dir)
    run_id = f"tracks-{uuid.uuid4().hex[:12]}"
    out_dir = tracks_dir(ws)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[str, Any]] = [("identified", lambda: _identified_batches(lake, bucket_rows))]
    jobs += [(f"unidentified-{s}", lambda s=s: iter([_mtt_batch(lake, s, config)])) for s in sensors]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="family", desc="tracks")
    summary: dict[str, Any] = {"run_id": run_id, "families": {}}
    total = 0
    jumps: list[pa.Table] = []
    try:
        for name, job in jobs:
            tmp = out_dir / f".{name}.parquet.tmp"
            fam: dict[str, Any] = {"tracks": 0, "points": 0}
            with pq.ParquetWriter(tmp, POINTS_SCHEMA, compression="zstd") as writer:
                for b in job():
                    rows, ids = _summaries(b, run_id)
                    writer.write_table(_points_table(b, ids))
                    if b.events:
                        tracks_of = [ids[k] if k >= 0 else None for k in b.events["track_id"]]
                        jumps.append(events_table({**b.events, "track_id": tracks_of}))
                    with store.begin() as conn:
                        upsert(conn, schema.tracks, rows, keys=["id"])
                    fam["tracks"] += len(rows)
                    fam["points"] += int(b.track.size)
                    for k, v in b.extra.items():  # counts add up over buckets; the rest is the family's
                        fam[k] = fam.get(k, 0) + v if isinstance(v, int) and not isinstance(v, bool) else v
                    del b, rows, ids
            tmp.replace(out_dir / f"{name}.parquet")
            summary["families"][name] = fam
            total += fam["tracks"]
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    summary["tracks"] = total
    summary["points_dir"] = str(out_dir)
    summary["position_jumps"] = write_jump_events(ws, jumps, run_id)
    summary["seconds"] = round(_time.perf_counter() - t0, 3)
    with store.begin() as conn:
        conn.execute(
            insert(schema.analysis_runs).values(
                id=run_id, kind="tracks", started_at=started, finished_at=datetime.now(UTC),
                params={"methods": [METHOD_IDENTIFIED, METHOD_UNIDENTIFIED], "sensors": list(sensors)},
                summary=summary,
            )
        )  # fmt: skip
    return summary


__all__ = [
    "DEFAULT_ENVELOPE",
    "ENVELOPES",
    "POINTS_SCHEMA",
    "Envelope",
    "IdentifiedTracks",
    "build_identified_tracks",
    "point_kinematics",
    "run_tracks",
    "track_unidentified",
    "tracks_dir",
]
