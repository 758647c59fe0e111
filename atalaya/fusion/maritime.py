"""Maritime events from AIS positions: dark gaps, rendezvous (ship-to-ship meetings) and loitering.

Every detector takes plain columns (vessel id, time in µs since the epoch,
lon, lat, optionally speed) and returns an Arrow table of events with a score
in [0, 1] and the reasons behind it, so that an analyst sees *why* an event
was raised.

- :func:`detect_dark_gaps` — silences longer than ``min_gap_s`` judged in
  context: how far offshore and from a port, whether the vessel was being
  received regularly just before, whether other vessels were still received
  nearby while it was silent, and the speed implied across the gap.
- :func:`detect_rendezvous` — two vessels within ``radius_m`` at low speed for
  ``min_duration_s``, away from ports (positions resampled on a time grid,
  candidate pairs by time slice × spatial grid, runs confirmed); plus meetings
  with a *dark* partner: a vessel stationary at sea while another vessel,
  silent at the time, could have reached it and left again (its gap start
  and end are within its own speed of the meeting), and radar contacts that
  show a second hull beside a stationary vessel.
- :func:`detect_loitering` — low net movement over a window while at sea,
  away from ports.
- :func:`run_maritime` — the workspace job: AIS and radar from the lake →
  ``WORKSPACE/analysis/maritime/{dark_gaps,rendezvous,loitering}.parquet``,
  a bucket of vessels at a time (:data:`BUCKET_ROWS`).

>>> import numpy as np
>>> e = np.array([], dtype=np.int64)
>>> detect_dark_gaps(e, e, np.array([]), np.array([])).num_rows
0
>>> detect_rendezvous(e, e, np.array([]), np.array([])).num_rows
0
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely

from atalaya.core.ids import new_run_id
from atalaya.core.markings import NO_INPUTS_MARKING, combine_groups, combine_texts
from atalaya.core.workspace import Workspace
from atalaya.fusion.corridors import as_codes, check_columns, neighbour_pairs, sort_tracks
from atalaya.geo.kernels import aeqd_forward, geodesic_distance, to_aeqd
from atalaya.geo.naturalearth import load_layer
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.lake import Lake, bucket_count

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

METHOD = "maritime/context-v1"
_US = 1_000_000


# --------------------------------------------------------------------------- coast and ports


@dataclass(frozen=True, kw_only=True)
class Coast:
    """Land and ports in a local azimuthal equidistant plane, for distances in metres."""

    lon0: float
    """Projection centre, lon."""
    lat0: float
    """Projection centre, lat."""
    land: shapely.STRtree
    """R-tree over the land polygons (projected)."""
    ports: shapely.STRtree
    """R-tree over the ports (projected points)."""
    shore: shapely.STRtree
    """R-tree over the coastline (projected lines): land boundaries that face the sea, land borders left out."""

    def _xy(self, lon: F64, lat: F64) -> Any:
        x, y = aeqd_forward(self.lon0, self.lat0, lon, lat)
        return shapely.points(x, y)

    def distance_to_land(self, lon: Any, lat: Any) -> F64:
        """Metres from each point to the nearest land (0 on land)."""
        return self._nearest(self.land, lon, lat)

    def distance_to_port(self, lon: Any, lat: Any) -> F64:
        """Metres from each point to the nearest port of the bundled ports layer."""
        return self._nearest(self.ports, lon, lat)

    def distance_to_shore(self, lon: Any, lat: Any) -> F64:
        """Metres from each point (on land or at sea) to the nearest coastline."""
        return self._nearest(self.shore, lon, lat)

    def faces_open_sea(
        self, lon: Any, lat: Any, *, start_m: float = 2_000.0, end_m: float = 25_000.0, bearings: int = 72
    ) -> npt.NDArray[np.bool_]:
        """Whether open water lies before each point: along at least one of ``bearings`` evenly spaced
        directions the whole stretch from ``start_m`` to ``end_m`` out is at sea (no land, no barrier island
        closing a lagoon)."""
        x0 = np.asarray(lon, dtype=np.float64).ravel()
        y0 = np.asarray(lat, dtype=np.float64).ravel()
        n = x0.size
        if n == 0 or len(self.land) == 0:
            return np.zeros(n, dtype=bool)
        px, py = aeqd_forward(self.lon0, self.lat0, x0, y0)
        az = np.radians(np.arange(bearings) * 360.0 / bearings)
        dx, dy = np.sin(az), np.cos(az)
        xa = (px[:, None] + start_m * dx[None, :]).ravel()
        ya = (py[:, None] + start_m * dy[None, :]).ravel()
        xb = (px[:, None] + end_m * dx[None, :]).ravel()
        yb = (py[:, None] + end_m * dy[None, :]).ravel()
        coords = np.stack([np.stack([xa, ya], axis=1), np.stack([xb, yb], axis=1)], axis=1)
        rays = shapely.linestrings(coords)
        hit = np.zeros(rays.size, dtype=bool)
        ray_idx, _ = self.land.query(rays, predicate="intersects")
        hit[ray_idx] = True
        out: npt.NDArray[np.bool_] = np.asarray((~hit.reshape(n, bearings)).any(axis=1), dtype=bool)
        return out

    def _nearest(self, tree: shapely.STRtree, lon: Any, lat: Any) -> F64:
        x = np.asarray(lon, dtype=np.float64).ravel()
        y = np.asarray(lat, dtype=np.float64).ravel()
        out = np.full(x.size, np.inf)
        if x.size == 0 or len(tree) == 0:
            return out
        idx, d = tree.query_nearest(self._xy(x, y), return_distance=True, all_matches=False)
        np.minimum.at(out, idx[0], d)
        return out


_COAST_PIECE = 32


@cache
def _coastline() -> Any:
    """The coastline in lon/lat, in short pieces (kept in the on-disk cache: dissolving the land takes ~1 s)."""
    from atalaya.geo.territories import cached_arrays

    a = cached_arrays("coastline", _build_coastline, depends_on=(__file__,))
    return shapely.linestrings(a["xy"], indices=a["piece"])


@cache
def _coastline_tree() -> shapely.STRtree:
    return shapely.STRtree(_coastline())


def near_shore(lon: Any, lat: Any, radius_m: float, *, open_sea_m: float | None = None) -> npt.NDArray[np.bool_]:
    """Points within ``radius_m`` of the coastline (on either side of it); with ``open_sea_m``, only those that
    also face open water that far out (:meth:`Coast.faces_open_sea`).

    A cheap test in degrees (with a radius that errs on the far side) picks the
    points near some coast; only those are measured in metres, on one local
    projection.

    >>> near_shore(np.array([-106.2756, -105.0]), np.array([23.0824, 25.0]), 500.0).tolist()
    [True, False]
    """
    x = np.asarray(lon, dtype=np.float64).ravel()
    y = np.asarray(lat, dtype=np.float64).ravel()
    out = np.zeros(x.size, dtype=bool)
    if x.size == 0 or radius_m <= 0:
        return out
    coslat = np.cos(np.radians(np.minimum(np.abs(y) + 1.0, 89.0)))
    deg = 1.01 * radius_m / (111_000.0 * coslat)
    idx, _ = _coastline_tree().query(shapely.points(x, y), predicate="dwithin", distance=deg)
    cand = np.unique(idx)
    if cand.size:
        cs = coast_for(x[cand], y[cand])
        near = cand[cs.distance_to_shore(x[cand], y[cand]) <= radius_m]
        if open_sea_m is not None and near.size:
            near = near[cs.faces_open_sea(x[near], y[near], end_m=open_sea_m)]
        out[near] = True
    return out


def _build_coastline() -> dict[str, npt.NDArray[Any]]:
    """The boundary of all bundled admin-0 land dissolved (shared land borders vanish), cut into pieces of 32
    vertices so that an R-tree over them narrows a query to a few kilometres of coast."""
    land = [g for _, g in load_layer("admin0_region")]
    parts = shapely.get_parts(np.array(land, dtype=object))
    lines = shapely.get_parts(shapely.boundary(shapely.union_all(parts, grid_size=1e-7)))
    xy, line_of = shapely.get_coordinates(lines, return_index=True)
    start = np.flatnonzero(np.r_[True, line_of[1:] != line_of[:-1]])
    stop = np.r_[start[1:], line_of.size]
    rows: list[npt.NDArray[np.intp]] = []
    for a, b in zip(start.tolist(), stop.tolist(), strict=True):
        rows.extend(np.arange(i, min(i + _COAST_PIECE, b)) for i in range(a, b - 1, _COAST_PIECE - 1))
    sizes = np.array([r.size for r in rows])
    return {"xy": xy[np.concatenate(rows)], "piece": np.repeat(np.arange(sizes.size), sizes)}


@cache
def coast(lon0: float, lat0: float) -> Coast:
    """Land (bundled admin-0 polygons) and ports projected around ``(lon0, lat0)`` (cached per centre).

    Distances are exact from the centre and within 1 % up to ≈ 1,500 km from it.
    """
    land = [g for _, g in load_layer("admin0_region")]
    parts = shapely.get_parts(np.array(land, dtype=object))
    parts = shapely.simplify(parts, 0.002)
    lx = to_aeqd(parts, lon0, lat0)
    ports = np.array([g for _, g in load_layer("ports")], dtype=object)
    px = to_aeqd(ports, lon0, lat0)
    sx = to_aeqd(_coastline(), lon0, lat0)
    return Coast(lon0=lon0, lat0=lat0, land=shapely.STRtree(lx), ports=shapely.STRtree(px), shore=shapely.STRtree(sx))


def coast_for(lon: F64, lat: F64) -> Coast:
    """The :func:`coast` centred (to the degree) on the median of the points."""
    if lon.size == 0:
        return coast(-100.0, 22.0)
    return coast(float(np.round(np.median(lon))), float(np.round(np.median(lat))))


# --------------------------------------------------------------------------- helpers


def _group_starts(codes: I64) -> I64:
    """Index of the first row of each run of equal codes (codes sorted)."""
    if codes.size == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]).astype(np.int64)


def _runs(key: I64, step: I64, max_step: int) -> tuple[I64, I64]:
    """Runs of rows (sorted by key, then step) with the same key and step increments ≤ ``max_step``.

    Returns (first row, last row) of each run.
    """
    if key.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    brk = np.r_[True, (key[1:] != key[:-1]) | (step[1:] - step[:-1] > max_step)]
    first = np.flatnonzero(brk)
    last = np.r_[first[1:] - 1, key.size - 1]
    return first.astype(np.int64), last.astype(np.int64)


def _fmt_h(s: float) -> str:
    return f"{s / 3600:.1f} h"


def _km(m: float) -> str:
    return f"{m / 1000:.0f} km" if m >= 10_000 else f"{m / 1000:.1f} km"


@dataclass(frozen=True, kw_only=True)
class _Sorted:
    """Positions sorted by vessel and time, with dense vessel codes."""

    codes: I64
    ids: npt.NDArray[Any]
    t: I64
    x: F64
    y: F64
    v: F64
    dup: tuple[I64, I64, F64, F64] = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    """``codes, t, x, y`` of the reports set aside as another at the same time from the same vessel (still a
    reception there: :func:`_presence` counts them)."""


def _prepare(track_id: Any, time_us: Any, lon: Any, lat: Any, speed: Any = None) -> _Sorted:
    n = check_columns(track_id=track_id, time_us=time_us, lon=lon, lat=lat, speed=speed)
    codes, ids = as_codes(track_id) if n else (np.zeros(0, np.int64), np.zeros(0, dtype=object))
    return _sorted(codes, ids, time_us, lon, lat, speed)


def _sorted(codes: I64, ids: npt.NDArray[Any], time_us: Any, lon: Any, lat: Any, speed: Any = None) -> _Sorted:
    """Positions of vessels with dense ``codes`` into ``ids`` (the ids in code order), sorted by vessel and time."""
    t = np.asarray(time_us, dtype=np.int64).ravel()
    x = np.asarray(lon, dtype=np.float64).ravel()
    y = np.asarray(lat, dtype=np.float64).ravel()
    v = np.asarray(speed, dtype=np.float64).ravel() if speed is not None else np.full(t.size, np.nan)
    ok = np.isfinite(x) & np.isfinite(y)
    codes, t, x, y, v = codes[ok], t[ok], x[ok], y[ok], v[ok]
    o = sort_tracks(codes, t)
    codes, t, x, y, v = codes[o], t[o], x[o], y[o], v[o]
    # drop exact duplicate times of one vessel (keep the first)
    keep = np.r_[True, (codes[1:] != codes[:-1]) | (t[1:] != t[:-1])] if codes.size else np.zeros(0, bool)
    return _Sorted(codes=codes[keep], ids=ids.astype(str), t=t[keep], x=x[keep], y=y[keep], v=v[keep],
                   dup=(codes[~keep], t[~keep], x[~keep], y[~keep]))  # fmt: skip


def _median_interval_s(s: _Sorted) -> F64:
    """Median time between consecutive messages, per vessel code (NaN for single-message vessels)."""
    nv = int(s.ids.size)
    out = np.full(nv, np.nan)
    if s.codes.size < 2:
        return out
    same = s.codes[1:] == s.codes[:-1]
    dt = (s.t[1:] - s.t[:-1])[same] / _US
    c = s.codes[1:][same]
    o = np.lexsort((dt, c))
    c, dt = c[o], dt[o]
    st = _group_starts(c)
    cnt = np.diff(np.r_[st, c.size])
    out[c[st]] = dt[st + cnt // 2]
    return out


def _typical_speed(s: _Sorted) -> F64:
    """Median speed while moving (> 1 m/s) per vessel code, from reported or derived speeds."""
    nv = int(s.ids.size)
    out = np.full(nv, np.nan)
    if s.codes.size < 2:
        return out
    same = s.codes[1:] == s.codes[:-1]
    dt = np.maximum((s.t[1:] - s.t[:-1]) / _US, 1.0)
    d = geodesic_distance(s.x[:-1], s.y[:-1], s.x[1:], s.y[1:])
    v = np.where(np.isfinite(s.v[1:]), s.v[1:], d / dt)
    m = same & (v > 1.0)
    c, vv = s.codes[1:][m], v[m]
    o = np.lexsort((vv, c))
    c, vv = c[o], vv[o]
    st = _group_starts(c)
    cnt = np.diff(np.r_[st, c.size])
    out[c[st]] = vv[st + cnt // 2]
    return out


# --------------------------------------------------------------------------- dark gaps


@dataclass(frozen=True, kw_only=True)
class DarkGapParams:
    """Settings of :func:`detect_dark_gaps`."""

    min_gap_s: float = 3600.0
    """Silences shorter than this are not events."""
    full_gap_s: float = 3 * 3600.0
    """The duration factor of the score reaches 1 at this length."""
    port_m: float = 10_000.0
    """Gaps that start or end within this distance of a port score lower (0 in the port)."""
    coast_m: float = 5_000.0
    """Gaps closer to land than this score up to half lower."""
    before_s: float = 3600.0
    """Window before the gap in which the vessel's own reception rate is measured."""
    nearby_deg: float = 1.0
    """Grid cell (degrees) for counting other vessels received around the gap (3 × 3 cells)."""
    max_speed_mps: float = 25.0
    """An implied speed above this across the gap is implausible (likely another transmitter): score halved."""
    min_score: float = 0.3
    """Gaps scoring below are not returned."""


def detect_dark_gaps(
    track_id: Any, time_us: Any, lon: Any, lat: Any, *, params: DarkGapParams | None = None, coast_: Coast | None = None
) -> pa.Table:
    """AIS silences of each vessel, scored in context.

    Score = duration × offshore × reception, each in [0, 1]:

    - duration: ``gap / full_gap_s`` (gaps under ``min_gap_s`` are not events);
    - offshore: ``min(1, port distance / port_m) × (0.5 + 0.5 min(1, land distance / coast_m))``
      at the worse of the two ends (a vessel switching off in port is normal);
    - reception: ``0.25 + 0.75 max(before, nearby)`` where *before* is the
      vessel's message rate in the ``before_s`` before the gap relative to its
      usual rate and *nearby* is the mean number of other vessels received per
      hour of the gap in the 3 × 3 grid cells around it (capped at 1); a gap
      with neither is probably a coverage hole.

    The implied speed across the gap is reported (well below the usual speed:
    stopped or detoured while silent); above ``max_speed_mps`` it is
    implausible and the score is halved.

    >>> t = np.r_[np.arange(0, 3600, 120), np.arange(4 * 3600, 5 * 3600, 120)] * 1_000_000
    >>> g = detect_dark_gaps(np.zeros(t.size, np.int64), t, np.full(t.size, -94.0), np.full(t.size, 23.0))
    >>> g.column("duration_s").to_pylist(), g.column("score")[0].as_py() > 0.5
    ([10920.0], True)
    """
    p = params or DarkGapParams()
    s = _prepare(track_id, time_us, lon, lat)
    return _dark_gaps(s, coast_ or coast_for(s.x, s.y), p, _presence(s, p.nearby_deg))


def _dark_gaps(s: _Sorted, cs: Coast, p: DarkGapParams, seen: _Presence) -> pa.Table:
    """:func:`detect_dark_gaps` of sorted positions, with the vessels received around (``seen``: these and
    any others)."""
    if s.codes.size < 2:
        return _gap_table(s, np.zeros(0, np.int64), {}, [])
    same = s.codes[1:] == s.codes[:-1]
    dt = (s.t[1:] - s.t[:-1]) / _US
    k = np.flatnonzero(same & (dt >= p.min_gap_s))  # gap between rows k and k+1
    a, b = k, k + 1
    dur = dt[k]
    c = s.codes[a]
    d_port = np.minimum(cs.distance_to_port(s.x[a], s.y[a]), cs.distance_to_port(s.x[b], s.y[b]))
    d_land = np.minimum(cs.distance_to_land(s.x[a], s.y[a]), cs.distance_to_land(s.x[b], s.y[b]))
    dist = geodesic_distance(s.x[a], s.y[a], s.x[b], s.y[b])
    v_imp = dist / np.maximum(dur, 1.0)
    # own reception rate before the gap
    med = _median_interval_s(s)
    t_s = s.t // _US
    span = int(t_s.max() - t_s.min()) + 2
    key = s.codes * span + (t_s - t_s.min())
    lo = np.searchsorted(key, c * span + (t_s[a] - int(p.before_s) - t_s.min()), side="left")
    lo = np.maximum(lo, np.searchsorted(s.codes, c, side="left"))  # never into the previous vessel's messages
    n_before = (a - lo + 1).astype(np.float64)
    expected = p.before_s / np.maximum(med[c], 1.0)
    before = np.clip(n_before / np.maximum(expected, 1.0), 0.0, 1.0)
    # other vessels received around the gap while it lasted
    vessel_hours, gap_hours = _nearby_vessel_hours(seen, t_s[a], t_s[b], (s.x[a] + s.x[b]) / 2,
                                                   (s.y[a] + s.y[b]) / 2, c)  # fmt: skip
    nearby = np.clip(vessel_hours / np.maximum(gap_hours, 1), 0.0, 1.0)
    f_dur = np.clip(dur / p.full_gap_s, 0.0, 1.0)
    f_off = np.clip(d_port / p.port_m, 0.0, 1.0) * (0.5 + 0.5 * np.clip(d_land / p.coast_m, 0.0, 1.0))
    f_rec = 0.25 + 0.75 * np.maximum(before, nearby)
    usual = _typical_speed(s)[c]
    jump = v_imp > p.max_speed_mps
    score = f_dur * f_off * f_rec * np.where(jump, 0.5, 1.0)
    keep = score >= p.min_score
    reasons: list[str] = []
    for i in np.flatnonzero(keep).tolist():  # one line per reported event (events are few)
        r = [
            f"silent {_fmt_h(dur[i])}",
            f"{_km(d_land[i])} from land, {_km(d_port[i])} from the nearest port",
            f"{int(n_before[i])} messages in the {_fmt_h(p.before_s)} before "
            f"(usually one per {med[c[i]] / 60:.1f} min)",
            f"{vessel_hours[i]} vessel-hours of other vessels received nearby while silent",
        ]
        if jump[i]:
            r.append(f"implied {v_imp[i]:.1f} m/s is implausible (another transmitter?)")
        elif np.isfinite(usual[i]) and v_imp[i] < 0.5 * usual[i]:
            r.append(f"implied {v_imp[i]:.1f} m/s vs usual {usual[i]:.1f} m/s: stopped or detoured while silent")
        else:
            r.append(f"implied {v_imp[i]:.1f} m/s")
        reasons.append("; ".join(r))
    cols = {
        "duration_s": dur,
        "implied_speed_mps": v_imp,
        "usual_speed_mps": usual,
        "dist_port_m": d_port,
        "dist_land_m": d_land,
        "n_before": n_before.astype(np.int64),
        "nearby_vessel_hours": vessel_hours,
        "score": score,
    }
    sel = np.flatnonzero(keep)
    return _gap_table(s, a[sel], {k_: v[sel] for k_, v in cols.items()}, reasons)


@dataclass(frozen=True, kw_only=True)
class _Presence:
    """Which vessels were received where and when: the distinct (hour, grid cell, vessel) of their positions."""

    keys: I64
    """Sorted distinct ``((hour - h0) * cells + cell) * nv + code``."""
    h0: int
    """First hour (hours since the epoch)."""
    nv: int
    """Vessel codes are below this."""
    cell_deg: float
    """Grid cell, degrees."""


def _grid_shape(cell_deg: float) -> tuple[int, int]:
    """Width and height in cells of the lon/lat grid of :func:`_cells` (a margin of one cell all round)."""
    return math.ceil(360 / cell_deg) + 2, math.ceil(180 / cell_deg) + 2


def _cells(lon: F64, lat: F64, cell_deg: float) -> tuple[I64, int, int]:
    """Grid cell of each point and the grid's width and height in cells (:func:`_grid_shape`)."""
    nx, ny = _grid_shape(cell_deg)
    cell = (
        (np.floor((lat + 90) / cell_deg).astype(np.int64) + 1) * nx
        + np.floor((lon + 180) / cell_deg).astype(np.int64)
        + 1
    )
    return cell, nx, ny


def _presence_keys(hour: I64, cell: I64, code: I64, *, h0: int, nv: int, cell_deg: float) -> I64:
    nx, ny = _grid_shape(cell_deg)
    return np.unique(((hour - h0) * (nx * ny) + cell) * nv + code)


def _presence(s: _Sorted, cell_deg: float) -> _Presence:
    """The :class:`_Presence` of sorted positions: every report with a position, those set aside as repeats of
    a time included (``run_maritime`` counts them in SQL alike)."""
    dc, dt, dx, dy = s.dup
    hour = np.r_[s.t, dt] // (3600 * _US)
    h0 = int(hour.min()) if hour.size else 0
    nv = int(s.ids.size) + 1
    cell, _, _ = _cells(np.r_[s.x, dx], np.r_[s.y, dy], cell_deg)
    return _Presence(keys=_presence_keys(hour, cell, np.r_[s.codes, dc], h0=h0, nv=nv, cell_deg=cell_deg), h0=h0,
                     nv=nv, cell_deg=cell_deg)  # fmt: skip


def _nearby_vessel_hours(seen: _Presence, t0_s: I64, t1_s: I64, gx: F64, gy: F64, own: I64) -> tuple[I64, I64]:
    """Per gap: distinct (other vessel, hour) pairs received in the 3 × 3 cells around it, and the gap's hours."""
    trip, nv, h0 = seen.keys, seen.nv, seen.h0
    gc, nx, ny = _cells(gx, gy, seen.cell_deg)
    hc = trip // nv  # (hour, cell) of each distinct triple
    gh0 = t0_s // 3600 + 1  # hours fully inside the gap
    gh1 = t1_s // 3600 - 1
    nh = np.maximum(gh1 - gh0 + 1, 0)
    if int(nh.sum()) == 0:
        return np.zeros(t0_s.size, np.int64), nh
    g = np.repeat(np.arange(t0_s.size), nh)
    hh = np.repeat(gh0, nh) + (np.arange(int(nh.sum())) - np.repeat(np.cumsum(nh) - nh, nh))
    total = np.zeros(t0_s.size, np.int64)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            q = (hh - h0) * (nx * ny) + gc[g] + dy * nx + dx
            n = np.searchsorted(hc, q, side="right") - np.searchsorted(hc, q, side="left")
            # the vessel itself is silent inside the gap, but subtract it should it appear (clock skew)
            own_key = q * nv + own[g]
            pos = np.searchsorted(trip, own_key)
            mine = (pos < trip.size) & (trip[np.minimum(pos, trip.size - 1)] == own_key)
            np.add.at(total, g, n - mine)
    return total, nh


def _gap_table(s: _Sorted, a: I64, cols: dict[str, Any], reasons: list[str]) -> pa.Table:
    b = a + 1
    base: dict[str, Any] = {
        "vessel": pa.array(s.ids[s.codes[a]].tolist() if a.size else [], pa.string()),
        "start_us": pa.array(s.t[a], pa.int64()),
        "end_us": pa.array(s.t[b] if a.size else np.zeros(0, np.int64), pa.int64()),
        "start_lon": pa.array(s.x[a], pa.float64()),
        "start_lat": pa.array(s.y[a], pa.float64()),
        "end_lon": pa.array(s.x[b] if a.size else np.zeros(0), pa.float64()),
        "end_lat": pa.array(s.y[b] if a.size else np.zeros(0), pa.float64()),
    }
    names = ("duration_s", "implied_speed_mps", "usual_speed_mps", "dist_port_m", "dist_land_m", "n_before",
             "nearby_vessel_hours", "score")  # fmt: skip
    for nm in names:
        v = cols.get(nm, np.zeros(0, np.int64 if nm in ("n_before", "nearby_vessel_hours") else np.float64))
        base[nm] = pa.array(np.asarray(v))
    base["reasons"] = pa.array(reasons, pa.string())
    return pa.table(base)


# --------------------------------------------------------------------------- resampling


@dataclass(frozen=True, kw_only=True)
class _Grid:
    """Positions of every vessel at the slice times it was received around (sorted by vessel, slice)."""

    code: I64
    slice: I64
    x: F64
    y: F64
    v: F64


def _resample(s: _Sorted, slice_s: int, max_interp_s: float) -> _Grid:
    """Interpolate each vessel at multiples of ``slice_s`` between fixes at most ``max_interp_s`` apart."""
    empty = _Grid(code=np.zeros(0, np.int64), slice=np.zeros(0, np.int64), x=np.zeros(0), y=np.zeros(0),
                  v=np.zeros(0))  # fmt: skip
    if s.codes.size == 0:
        return empty
    st = _group_starts(s.codes)
    en = np.r_[st[1:], s.codes.size] - 1
    t_s = s.t / _US
    s0 = np.ceil(t_s[st] / slice_s).astype(np.int64)
    s1 = np.floor(t_s[en] / slice_s).astype(np.int64)
    cnt = np.maximum(s1 - s0 + 1, 0)
    tot = int(cnt.sum())
    if tot == 0:
        return empty
    g = np.repeat(np.arange(st.size), cnt)
    sl = np.repeat(s0, cnt) + (np.arange(tot) - np.repeat(np.cumsum(cnt) - cnt, cnt))
    ts = sl * slice_s
    base = float(t_s.min())
    span = float(t_s.max() - base) + 2 * slice_s
    key = s.codes * span + (t_s - base)
    j = np.searchsorted(key, s.codes[st][g] * span + (ts - base), side="left")  # first fix at or after
    j = np.minimum(j, en[g])
    i = np.where(t_s[j] > ts, j - 1, j)
    i = np.maximum(i, st[g])
    gap = t_s[j] - t_s[i]
    ok = gap <= max_interp_s
    w = np.where(gap > 0, (ts - t_s[i]) / np.where(gap > 0, gap, 1.0), 0.0)
    x = s.x[i] + w * (s.x[j] - s.x[i])
    y = s.y[i] + w * (s.y[j] - s.y[i])
    # speed over the fix pair around the slice (the next pair when the slice falls on a fix)
    sa = np.where(i < j, i, np.where(i < en[g], i, i - 1))
    sa = np.maximum(sa, st[g])
    sb = np.minimum(sa + 1, en[g])
    sgap = t_s[sb] - t_s[sa]
    d = geodesic_distance(s.x[sa], s.y[sa], s.x[sb], s.y[sb])
    vd = np.where(sgap > 0, d / np.where(sgap > 0, sgap, 1.0), np.nan)
    v = np.where(np.isfinite(vd), vd, s.v[i])
    return _Grid(code=s.codes[st][g][ok], slice=sl[ok], x=x[ok], y=y[ok], v=v[ok])


# --------------------------------------------------------------------------- loitering


@dataclass(frozen=True, kw_only=True)
class LoiterParams:
    """Settings of :func:`detect_loitering`."""

    window_s: int = 2 * 3600
    """Window over which the vessel must stay within ``radius_m``."""
    radius_m: float = 2_000.0
    """Largest extent (diagonal of the lon/lat box) of the positions in a window."""
    slice_s: int = 300
    """Time grid for resampling."""
    max_interp_s: float = 1800.0
    """Fixes further apart are not interpolated (no position in between)."""
    port_m: float = 10_000.0
    """Windows centred closer to a port are anchorage, not loitering."""
    land_m: float = 1_000.0
    """Windows centred closer to land are not at sea."""


def _stationary_runs(g: _Grid, window: int, radius_m: float) -> tuple[I64, I64]:
    """Runs of grid rows of one vessel whose every ``window``-slice window stays within ``radius_m``.

    Returns (first row, last row) of each run (rows of ``g``).
    """
    n = g.code.size
    if n <= window:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    from numpy.lib.stride_tricks import sliding_window_view

    wx = sliding_window_view(g.x, window + 1)
    wy = sliding_window_view(g.y, window + 1)
    i = np.arange(wx.shape[0])
    contiguous = (g.code[i + window] == g.code[i]) & (g.slice[i + window] - g.slice[i] == window)
    ext = geodesic_distance(wx.min(axis=1), wy.min(axis=1), wx.max(axis=1), wy.max(axis=1))
    good = contiguous & (ext <= radius_m)
    cover = np.zeros(n + 1, np.int64)
    gi = np.flatnonzero(good)
    np.add.at(cover, gi, 1)
    np.add.at(cover, gi + window + 1, -1)
    inside = np.cumsum(cover)[:n] > 0
    rows = np.flatnonzero(inside)
    f, last = _runs(g.code[rows], g.slice[rows], 1)
    return rows[f], rows[last]


def detect_loitering(
    track_id: Any,
    time_us: Any,
    lon: Any,
    lat: Any,
    *,
    params: LoiterParams | None = None,
    coast_: Coast | None = None,
) -> pa.Table:
    """Periods when a vessel stays within ``radius_m`` for at least ``window_s``, at sea and away from ports.

    Positions are resampled every ``slice_s``; every window of ``window_s``
    whose positions fit in ``radius_m`` marks its slices; marked slices form
    events. Returns ``vessel, start_us, end_us, lon, lat, duration_s,
    dist_port_m, dist_land_m, score`` (duration relative to the window, capped
    at 1) and ``reasons``.

    >>> t = np.arange(0, 4 * 3600, 120) * 1_000_000
    >>> lo = detect_loitering(np.zeros(t.size, np.int64), t, np.full(t.size, -94.0), np.full(t.size, 23.0))
    >>> lo.column("duration_s").to_pylist()
    [14100.0]
    """
    p = params or LoiterParams()
    s = _prepare(track_id, time_us, lon, lat)
    return _loitering(s, coast_ or coast_for(s.x, s.y), p)


def _loitering(s: _Sorted, cs: Coast, p: LoiterParams) -> pa.Table:
    """:func:`detect_loitering` of sorted positions."""
    g = _resample(s, p.slice_s, p.max_interp_s)
    window = max(1, round(p.window_s / p.slice_s))
    f, last = _stationary_runs(g, window, p.radius_m)
    cx, cy = _run_centres(g, f, last)
    d_port = cs.distance_to_port(cx, cy)
    d_land = cs.distance_to_land(cx, cy)
    keep = (d_port >= p.port_m) & (d_land >= p.land_m)
    f, last, cx, cy, d_port, d_land = f[keep], last[keep], cx[keep], cy[keep], d_port[keep], d_land[keep]
    start = g.slice[f] * p.slice_s
    end = g.slice[last] * p.slice_s
    dur = (end - start).astype(np.float64)
    reasons = [
        f"within {p.radius_m / 1000:.1f} km for {_fmt_h(d)}; {_km(dl)} from land, {_km(dp)} from a port"
        for d, dl, dp in zip(dur.tolist(), d_land.tolist(), d_port.tolist(), strict=True)
    ]
    return pa.table(
        {
            "vessel": pa.array(s.ids[g.code[f]].tolist() if f.size else [], pa.string()),
            "start_us": pa.array(start * _US, pa.int64()),
            "end_us": pa.array(end * _US, pa.int64()),
            "lon": pa.array(cx, pa.float64()),
            "lat": pa.array(cy, pa.float64()),
            "duration_s": pa.array(dur, pa.float64()),
            "dist_port_m": pa.array(d_port, pa.float64()),
            "dist_land_m": pa.array(d_land, pa.float64()),
            "score": pa.array(np.clip(dur / (2 * p.window_s), 0.0, 1.0), pa.float64()),
            "reasons": pa.array(reasons, pa.string()),
        }
    )


def _run_centres(g: _Grid, f: I64, last: I64) -> tuple[F64, F64]:
    """Mean position of each run of grid rows ``f..last``."""
    if f.size == 0:
        return np.zeros(0), np.zeros(0)
    cx = np.r_[0.0, np.cumsum(g.x)]
    cy = np.r_[0.0, np.cumsum(g.y)]
    n = (last - f + 1).astype(np.float64)
    return (cx[last + 1] - cx[f]) / n, (cy[last + 1] - cy[f]) / n


# --------------------------------------------------------------------------- rendezvous


@dataclass(frozen=True, kw_only=True)
class RendezvousParams:
    """Settings of :func:`detect_rendezvous`."""

    radius_m: float = 500.0
    """Two vessels closer than this are together."""
    min_duration_s: float = 1800.0
    """Together (and slow) for at least this long."""
    max_speed_mps: float = 1.5
    """Both slower than this (≈ 3 knots)."""
    slice_s: int = 300
    """Time grid for resampling (one position per vessel and slice)."""
    max_interp_s: float = 1800.0
    """Fixes further apart are not interpolated."""
    port_m: float = 10_000.0
    """Meetings within this distance of a port are berthing or anchorage, not rendezvous."""
    land_m: float = 1_000.0
    """Meetings closer to land are not at sea."""
    dark_reach_factor: float = 1.5
    """A silent vessel could reach a meeting at up to this multiple of its usual speed…"""
    dark_reach_slack_m: float = 3_000.0
    """…plus this slack."""
    dark_default_speed_mps: float = 10.0
    """Usual speed assumed for vessels whose speed is unknown."""
    radar_radius_m: float = 1_000.0
    """Radar contacts within this distance of a stationary vessel are counted beside it."""
    radar_scan_s: int = 60
    """Contacts within one scan period are one look."""
    min_radar_looks: int = 2
    """Looks with two or more hulls that make a radar-only meeting."""


def detect_rendezvous(
    track_id: Any,
    time_us: Any,
    lon: Any,
    lat: Any,
    speed: Any = None,
    *,
    params: RendezvousParams | None = None,
    radar_time_us: Any = None,
    radar_lon: Any = None,
    radar_lat: Any = None,
    dark_gaps: pa.Table | None = None,
    coast_: Coast | None = None,
) -> pa.Table:
    """Ship-to-ship meetings, including those with a partner whose AIS was off.

    1. *AIS–AIS*: positions resampled every ``slice_s``; slow points at sea and
       away from ports are bucketed by slice × spatial grid; pairs within
       ``radius_m`` in the same slice are joined; runs of a pair lasting
       ``min_duration_s`` are meetings.
    2. *Dark partner*: a vessel stationary (within ``2 × radius_m``) for
       ``min_duration_s`` at sea while another vessel's dark gap (``dark_gaps``,
       default :func:`detect_dark_gaps` on the same positions) covers part of
       that time, and the silent vessel could have sailed from where it went
       dark to the meeting and from there to where it reappeared at its usual
       speed × ``dark_reach_factor`` (+ slack).
    3. *Radar*: radar contacts (no identity) show two hulls beside a stationary
       vessel in ``min_radar_looks`` scans: a meeting with an unknown partner.

    A meeting that repeats one already found for the same vessel at the same
    time is dropped (AIS–AIS first). Returns ``vessel_a, vessel_b`` (null when
    unknown), ``start_us, end_us, lon, lat, duration_s, min_dist_m, kind``
    (``ais``, ``dark``, ``radar``), ``radar_looks, score`` and ``reasons``.

    >>> t = np.arange(0, 2 * 3600, 120) * 1_000_000
    >>> ids = np.r_[np.zeros(t.size, np.int64), np.ones(t.size, np.int64)]
    >>> r = detect_rendezvous(ids, np.r_[t, t], np.full(2 * t.size, -94.0), np.r_[np.full(t.size, 23.0),
    ...                       np.full(t.size, 23.002)])
    >>> r.column("kind").to_pylist(), r.column("duration_s").to_pylist()
    (['ais'], [6900.0])
    """
    p = params or RendezvousParams()
    s = _prepare(track_id, time_us, lon, lat, speed)
    cs = coast_ or coast_for(s.x, s.y)
    gaps = dark_gaps if dark_gaps is not None else _dark_gaps(
        s, cs, DarkGapParams(min_score=0.0), _presence(s, DarkGapParams().nearby_deg)
    )  # fmt: skip
    return _meetings(_meeting_inputs(s, cs, p), s.ids, _typical_speed(s), gaps, radar_time_us, radar_lon, radar_lat, p)


@dataclass(frozen=True, kw_only=True)
class _Meets:
    """What :func:`_meetings` needs of the vessels' positions: their slow moments at sea on the time grid (sorted
    by vessel and slice) and their stationary runs at sea (sorted by vessel and start)."""

    code: I64
    slice: I64
    x: F64
    y: F64
    run_code: I64
    run_t0: I64
    """Start of each stationary run, seconds."""
    run_t1: I64
    run_x: F64
    run_y: F64

    @staticmethod
    def concat(parts: Sequence[_Meets]) -> _Meets:
        """The parts of several sets of vessels as one, in vessel order."""
        f = {k: np.concatenate([getattr(m, k) for m in parts]) for k in _Meets.__dataclass_fields__}
        o = np.lexsort((f["slice"], f["code"]))
        r = np.lexsort((f["run_t0"], f["run_code"]))
        return _Meets(**{k: v[o] if k in ("code", "slice", "x", "y") else v[r] for k, v in f.items()})


def _meeting_inputs(s: _Sorted, cs: Coast, p: RendezvousParams) -> _Meets:
    """The :class:`_Meets` of sorted positions (each vessel on its own: any set of whole vessels)."""
    g = _resample(s, p.slice_s, p.max_interp_s)
    gi = np.flatnonzero(g.v <= p.max_speed_mps)
    at_sea = (cs.distance_to_port(g.x[gi], g.y[gi]) >= p.port_m) & (cs.distance_to_land(g.x[gi], g.y[gi]) >= p.land_m)
    gi = gi[at_sea]
    rf, rl = _stationary_runs(g, math.ceil(p.min_duration_s / p.slice_s), 2 * p.radius_m)
    rx, ry = _run_centres(g, rf, rl)
    sea = (cs.distance_to_port(rx, ry) >= p.port_m) & (cs.distance_to_land(rx, ry) >= p.land_m)
    rf, rl = rf[sea], rl[sea]
    return _Meets(code=g.code[gi], slice=g.slice[gi], x=g.x[gi], y=g.y[gi], run_code=g.code[rf],
                  run_t0=g.slice[rf] * p.slice_s, run_t1=g.slice[rl] * p.slice_s, run_x=rx[sea],
                  run_y=ry[sea])  # fmt: skip


def _meetings(
    m: _Meets,
    ids: npt.NDArray[Any],
    usual: F64,
    gaps: pa.Table,
    radar_time_us: Any,
    radar_lon: Any,
    radar_lat: Any,
    p: RendezvousParams,
) -> pa.Table:
    """Rendezvous of all vessels from their :class:`_Meets` (``ids`` and ``usual`` speeds by vessel code)."""
    ev: list[dict[str, Any]] = []
    # 1. AIS–AIS
    i, j, d = neighbour_pairs(m.slice, m.x, m.y, p.radius_m)
    other = m.code[i] != m.code[j]
    i, j, d = i[other], j[other], d[other]
    ca, cb = np.minimum(m.code[i], m.code[j]), np.maximum(m.code[i], m.code[j])
    pair = ca * (int(ids.size) + 1) + cb
    o = np.lexsort((m.slice[i], pair))
    i, j, d, pair, ca, cb = i[o], j[o], d[o], pair[o], ca[o], cb[o]
    f, last = _runs(pair, m.slice[i], 2)
    min_slices = math.ceil(p.min_duration_s / p.slice_s)
    long = (m.slice[i][last] - m.slice[i][f]) >= min_slices
    if f.size:
        cd = np.r_[0.0, np.cumsum(d)]
        cx = np.r_[0.0, np.cumsum((m.x[i] + m.x[j]) / 2)]
        cy = np.r_[0.0, np.cumsum((m.y[i] + m.y[j]) / 2)]
        dmin = np.minimum.reduceat(d, f) if d.size else np.zeros(0)
        for r in np.flatnonzero(long).tolist():
            a0, a1 = int(f[r]), int(last[r])
            n = a1 - a0 + 1
            t0 = int(m.slice[i][a0]) * p.slice_s
            t1 = int(m.slice[i][a1]) * p.slice_s
            dur = float(t1 - t0)
            ev.append(
                {
                    "vessel_a": str(ids[ca[a0]]),
                    "vessel_b": str(ids[cb[a0]]),
                    "start_us": t0 * _US,
                    "end_us": t1 * _US,
                    "lon": float((cx[a1 + 1] - cx[a0]) / n),
                    "lat": float((cy[a1 + 1] - cy[a0]) / n),
                    "duration_s": dur,
                    "min_dist_m": float(dmin[r]),
                    "kind": "ais",
                    "score": 0.6 + 0.4 * min(1.0, dur / (3 * p.min_duration_s)),
                    "reasons": f"both slow within {p.radius_m:.0f} m for {_fmt_h(dur)} "
                    f"(closest {float(dmin[r]):.0f} m, mean {float((cd[a1 + 1] - cd[a0]) / n):.0f} m), at sea",
                }
            )
    # stationary vessels at sea: candidates for dark and radar partners
    r_code, r_t0, r_t1, rx, ry = m.run_code, m.run_t0, m.run_t1, m.run_x, m.run_y
    looks = _radar_looks(rx, ry, r_t0, r_t1, radar_time_us, radar_lon, radar_lat, p)
    # 2. dark partner
    ev.extend(_dark_partner_events(ids, usual, gaps, r_code, r_t0, r_t1, rx, ry, looks, p))
    # 3. radar only
    for r in np.flatnonzero(looks >= p.min_radar_looks).tolist():
        dur = float(r_t1[r] - r_t0[r])
        ev.append(
            {
                "vessel_a": str(ids[r_code[r]]),
                "vessel_b": None,
                "start_us": int(r_t0[r]) * _US,
                "end_us": int(r_t1[r]) * _US,
                "lon": float(rx[r]),
                "lat": float(ry[r]),
                "duration_s": dur,
                "min_dist_m": math.nan,
                "kind": "radar",
                "radar_looks": int(looks[r]),
                "score": min(0.9, 0.4 + 0.1 * int(looks[r])),
                "reasons": f"stationary at sea for {_fmt_h(dur)}; radar saw a second hull beside it in "
                f"{int(looks[r])} scans; partner not broadcasting AIS",
            }
        )
    return _rendezvous_table(_dedupe(ev))


def _radar_looks(rx: F64, ry: F64, t0_s: I64, t1_s: I64, rt: Any, rlon: Any, rlat: Any, p: RendezvousParams) -> I64:
    """Per stationary run: radar scans with two or more contacts within ``radar_radius_m`` of it."""
    out = np.zeros(rx.size, np.int64)
    if rt is None or rx.size == 0:
        return out
    ct = np.asarray(rt, dtype=np.int64).ravel() // _US
    cx = np.asarray(rlon, dtype=np.float64).ravel()
    cy = np.asarray(rlat, dtype=np.float64).ravel()
    if ct.size == 0:
        return out
    n = rx.size
    i, j, _ = neighbour_pairs(np.zeros(n + ct.size, np.int64), np.r_[rx, cx], np.r_[ry, cy], p.radar_radius_m)
    cross = (i < n) & (j >= n)
    run, c = i[cross], j[cross] - n
    inside = (ct[c] >= t0_s[run]) & (ct[c] <= t1_s[run])
    run, c = run[inside], c[inside]
    look = ct[c] // p.radar_scan_s
    key, counts = np.unique(np.column_stack([run, look]), axis=0, return_counts=True) if run.size else (
        np.zeros((0, 2), np.int64), np.zeros(0, np.int64))  # fmt: skip
    two = key[counts >= 2, 0]
    np.add.at(out, two, 1)
    return out


def _dark_partner_events(
    ids: npt.NDArray[Any],
    usual: F64,
    gaps: pa.Table,
    r_code: I64,
    r_t0: I64,
    r_t1: I64,
    rx: F64,
    ry: F64,
    looks: I64,
    p: RendezvousParams,
) -> list[dict[str, Any]]:
    """Stationary vessels that a silent vessel could have met (reachable from and to its gap's ends)."""
    if gaps.num_rows == 0 or r_code.size == 0:
        return []
    code_of = {str(v): k for k, v in enumerate(ids.tolist())}
    gv = np.array([code_of.get(v, -1) for v in gaps.column("vessel").to_pylist()], np.int64)
    g0 = gaps.column("start_us").to_numpy() // _US
    g1 = gaps.column("end_us").to_numpy() // _US
    gx0, gy0 = gaps.column("start_lon").to_numpy(), gaps.column("start_lat").to_numpy()
    gx1, gy1 = gaps.column("end_lon").to_numpy(), gaps.column("end_lat").to_numpy()
    vmax = np.where(gv >= 0, usual[np.maximum(gv, 0)], np.nan)
    vmax = np.where(np.isfinite(vmax), vmax, p.dark_default_speed_mps) * p.dark_reach_factor
    # gap × run pairs overlapping in time (sorted sweep keeps this near-linear)
    o = np.argsort(r_t0)
    hi = np.searchsorted(r_t0[o], g1, side="right")
    cnt = hi.astype(np.int64)
    gi = np.repeat(np.arange(g0.size), cnt)
    ri = o[np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)]
    m = (r_t1[ri] >= g0[gi]) & (r_code[ri] != gv[gi])
    gi, ri = gi[m], ri[m]
    meet0 = np.maximum(r_t0[ri], g0[gi])
    meet1 = np.minimum(r_t1[ri], g1[gi])
    d_in = geodesic_distance(gx0[gi], gy0[gi], rx[ri], ry[ri])
    d_out = geodesic_distance(rx[ri], ry[ri], gx1[gi], gy1[gi])
    # some meeting time τ in [meet0, meet1] must be reachable from where it went dark and leave time to
    # reach where it reappeared: g0 + d_in / v ≤ τ ≤ g1 - d_out / v
    v = vmax[gi]
    tau_min = g0[gi] + np.maximum(d_in - p.dark_reach_slack_m, 0.0) / v
    tau_max = g1[gi] - np.maximum(d_out - p.dark_reach_slack_m, 0.0) / v
    ok = (tau_min <= np.minimum(tau_max, meet1)) & (tau_max >= meet0) & (meet1 >= meet0)
    spare = np.clip((tau_max - tau_min) / np.maximum(g1[gi] - g0[gi], 1.0), 0.0, 1.0)
    out: list[dict[str, Any]] = []
    for k in np.flatnonzero(ok).tolist():
        g, r = int(gi[k]), int(ri[k])
        slack = 1.0 - float(spare[k])  # little spare time: the gap is just long enough for the detour
        dur = float(r_t1[r] - r_t0[r])
        score = 0.3 + 0.4 * slack + (0.2 if looks[r] >= p.min_radar_looks else 0.0)
        out.append(
            {
                "vessel_a": str(ids[r_code[r]]),
                "vessel_b": str(gaps.column("vessel")[g].as_py()),
                "start_us": int(r_t0[r]) * _US,
                "end_us": int(r_t1[r]) * _US,
                "lon": float(rx[r]),
                "lat": float(ry[r]),
                "duration_s": dur,
                "min_dist_m": math.nan,
                "kind": "dark",
                "radar_looks": int(looks[r]),
                "score": float(min(1.0, score)),
                "reasons": f"stationary at sea for {_fmt_h(dur)} while {gaps.column('vessel')[g].as_py()} was dark "
                f"({_fmt_h(float(g1[g] - g0[g]))}); it went dark {_km(float(d_in[k]))} away and reappeared "
                f"{_km(float(d_out[k]))} away, within reach at {vmax[g]:.1f} m/s"
                + (f"; radar saw two hulls in {int(looks[r])} scans" if looks[r] else ""),
            }
        )
    return out


def _dedupe(ev: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop meetings that repeat a better one (same vessel, overlapping time); keep AIS–AIS first."""
    rank = {"ais": 0, "dark": 1, "radar": 2}
    ev = sorted(ev, key=lambda e: (rank[e["kind"]], -e["score"], e["start_us"]))
    kept: list[dict[str, Any]] = []
    busy: dict[str, list[tuple[int, int]]] = {}
    for e in ev:
        names = [v for v in (e["vessel_a"], e["vessel_b"]) if v is not None]
        same = [k for k in kept if set(names) <= {k["vessel_a"], k["vessel_b"]}
                and e["start_us"] <= k["end_us"] and k["start_us"] <= e["end_us"]]  # fmt: skip
        if same:  # the same meeting seen another way: widen it and add the evidence
            k = same[0]
            k["start_us"], k["end_us"] = min(k["start_us"], e["start_us"]), max(k["end_us"], e["end_us"])
            k["duration_s"] = (k["end_us"] - k["start_us"]) / _US
            k["radar_looks"] = max(k.get("radar_looks", 0), e.get("radar_looks", 0))
            k["reasons"] += "; also: " + e["reasons"]
            continue
        clash = any(e["start_us"] <= b and a <= e["end_us"] for v in names for a, b in busy.get(v, []))
        if e["kind"] == "dark" and not clash:
            # a dark partner can meet only one vessel per gap: keep its best candidate
            clash = any(k["kind"] == "dark" and k["vessel_b"] == e["vessel_b"] and k["start_us"] <= e["end_us"]
                        and e["start_us"] <= k["end_us"] for k in kept)  # fmt: skip
        if clash:
            continue
        kept.append(e)
        for v in names:
            busy.setdefault(v, []).append((e["start_us"], e["end_us"]))
    return sorted(kept, key=lambda e: e["start_us"])


def _rendezvous_table(ev: list[dict[str, Any]]) -> pa.Table:
    def col(name: str, typ: pa.DataType, default: Any = None) -> pa.Array:
        return pa.array([e.get(name, default) for e in ev], typ)

    return pa.table(
        {
            "vessel_a": col("vessel_a", pa.string()),
            "vessel_b": col("vessel_b", pa.string()),
            "start_us": col("start_us", pa.int64()),
            "end_us": col("end_us", pa.int64()),
            "lon": col("lon", pa.float64()),
            "lat": col("lat", pa.float64()),
            "duration_s": col("duration_s", pa.float64()),
            "min_dist_m": col("min_dist_m", pa.float64()),
            "kind": col("kind", pa.string()),
            "radar_looks": col("radar_looks", pa.int64(), 0),
            "score": col("score", pa.float64()),
            "reasons": col("reasons", pa.string()),
        }
    )


# --------------------------------------------------------------------------- workspace job


def maritime_dir(ws: Workspace) -> Path:
    """Where maritime events are written (``WORKSPACE/analysis/maritime``)."""
    return ws.root / "analysis" / "maritime"


BUCKET_ROWS = 4_000_000
"""AIS positions analysed at a time: above this, the vessels are split into buckets by a hash of the MMSI. Dark
gaps and loitering are a vessel's own; what the others add (who else was received around a silence, who stopped
beside whom) is gathered from every bucket in a compact form, so the events are the same and the memory is bounded
by the bucket instead of the period."""


def _cell_sql(cell_deg: float) -> str:
    """SQL of :func:`_cells` (the same arithmetic in doubles)."""
    nx, _ = _grid_shape(cell_deg)
    return (f"(CAST(floor((lat + 90) / {cell_deg!r}) AS BIGINT) + 1) * {nx} "
            f"+ CAST(floor((lon + 180) / {cell_deg!r}) AS BIGINT) + 1")  # fmt: skip


def _global_codes(col: pa.ChunkedArray | pa.Array, ids: npt.NDArray[Any]) -> I64:
    """Codes into the sorted ``ids`` of a column of ids (each distinct id looked up once)."""
    codes, local = as_codes(col)
    return np.searchsorted(ids, local.astype(str)).astype(np.int64)[codes] if codes.size else codes


def _by_vessel(parts: Sequence[pa.Table], time_col: str) -> pa.Table:
    """Event tables of several sets of vessels as one, ordered by vessel and time."""
    tb = pa.concat_tables(parts)
    return tb.sort_by([("vessel", "ascending"), (time_col, "ascending")]) if tb.num_rows else tb


def vessel_markings(lake: Lake, where: str, ids: npt.NDArray[Any]) -> list[str]:
    """The marking of each vessel of ``ids`` (sorted MMSIs): the combination of the markings of its reports in the
    lake (rows meeting ``where``). DuckDB gives the distinct (vessel, marking) pairs; each distinct set of markings
    is combined once."""
    pairs = lake.query(f"SELECT DISTINCT ident, CAST(marking AS VARCHAR) AS marking FROM observations WHERE {where}")
    if pairs.num_rows == 0 or ids.size == 0:
        return [NO_INPUTS_MARKING.to_text()] * int(ids.size)
    mk = pc.dictionary_encode(pairs.column("marking").combine_chunks())
    per = combine_groups(_global_codes(pairs.column("ident"), ids),
                         np.asarray(mk.indices.fill_null(-1).to_numpy(zero_copy_only=False), np.int64),
                         mk.dictionary.to_pylist(), int(ids.size))  # fmt: skip
    return [m or NO_INPUTS_MARKING.to_text() for m in per]


def _distinct_marking(col: pa.ChunkedArray | pa.Array) -> str:
    """The combination of the distinct markings of a column."""
    texts = [t for t in pc.unique(col).to_pylist() if t is not None]
    return combine_texts(texts) if texts else NO_INPUTS_MARKING.to_text()


def with_markings(
    events: pa.Table,
    marks: Sequence[str],
    ids: npt.NDArray[Any],
    vessel_cols: Sequence[str],
    *,
    radar: str | None = None,
) -> pa.Table:
    """``events`` with a ``marking`` column: per event, the combination of the markings of the vessels named in
    ``vessel_cols`` (``marks`` by vessel, in the order of the sorted ``ids``), and of the radar contacts
    (``radar``, their combined marking) for meetings that radar saw (``radar_looks`` > 0): an event never goes
    further than any report behind it. The radar contacts are taken together, not one by one: this may
    over-restrict a meeting, never weaken it. Each distinct set of markings is combined once.

    >>> ev = pa.table({"vessel_a": ["1", "2"], "vessel_b": ["2", None], "radar_looks": [0, 3]})
    >>> with_markings(ev, ["TLP:GREEN;ORIG:USA", "TLP:RED;ORIG:USA"], np.array(["1", "2"]), ("vessel_a", "vessel_b"),
    ...               radar="TLP:AMBER;CAV:INTEL-ONLY;ORIG:USA").column("marking").to_pylist()
    ['TLP:RED;ORIG:USA', 'TLP:RED;CAV:INTEL-ONLY;ORIG:USA']
    """
    none = NO_INPUTS_MARKING.to_text()
    mark_of = dict(zip(np.asarray(ids).astype(str).tolist(), marks, strict=True))
    cols = [events.column(c).to_pylist() for c in vessel_cols]
    looks = (events.column("radar_looks").fill_null(0).to_pylist() if radar is not None
             and "radar_looks" in events.column_names else [0] * events.num_rows)  # fmt: skip
    out: list[str] = []
    for k in range(events.num_rows):
        ms = [mark_of.get(str(col[k]), none) for col in cols if col[k] is not None]
        if radar is not None and looks[k] > 0:
            ms.append(radar)
        out.append(combine_texts(ms) if ms else none)
    return events.append_column("marking", pa.array(out, pa.string()))


def run_maritime(
    ws: Workspace, store: KnowledgeStore, *, progress: bool = False, bucket_rows: int = BUCKET_ROWS
) -> dict[str, Any]:
    """Dark gaps, rendezvous and loitering from the AIS and radar positions in the lake; returns a summary.

    Vessels are analysed in buckets of about ``bucket_rows`` positions (:data:`BUCKET_ROWS`).

    Writes ``dark_gaps.parquet``, ``rendezvous.parquet`` and
    ``loitering.parquet`` under :func:`maritime_dir` (replacing earlier ones)
    and records the run in ``analysis_runs``. Each event has a ``marking``: the combination of the markings of
    the AIS reports of its vessel (both vessels of a meeting), and of the radar contacts where radar saw it
    (:func:`with_markings`).
    """
    started = datetime.now(UTC)
    run_id = f"maritime-{new_run_id()[:16]}"
    lake = Lake(ws.lake_dir)
    where = "CAST(ident_kind AS VARCHAR) = 'mmsi' AND ident IS NOT NULL"
    head = lake.query(f"SELECT count(*) AS n, median(lon) AS x, median(lat) AS y FROM observations WHERE {where}")
    n_ais = int(head.column("n")[0].as_py() or 0)
    k = bucket_count(n_ais, bucket_rows)
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=k + 2, desc="maritime", unit="step")
    cs = (
        coast(float(np.round(head.column("x")[0].as_py())), float(np.round(head.column("y")[0].as_py())))
        if n_ais
        else coast_for(np.zeros(0), np.zeros(0))
    )
    # every vessel's code, and where and when each was received (for the context of the others' silences)
    gp, rp, lp = DarkGapParams(), RendezvousParams(), LoiterParams()
    seen_tb = lake.query(
        f"SELECT DISTINCT epoch_us(time) // {3600 * _US} AS hour, {_cell_sql(gp.nearby_deg)} AS cell, ident "
        f"FROM observations WHERE {where} AND isfinite(lon) AND isfinite(lat)"
    )
    ids = np.unique(np.asarray(pc.unique(seen_tb.column("ident")).to_numpy(zero_copy_only=False)).astype(str))
    hour = np.asarray(seen_tb.column("hour").to_numpy(), dtype=np.int64)
    h0 = int(hour.min()) if hour.size else 0
    seen = _Presence(
        keys=_presence_keys(hour, np.asarray(seen_tb.column("cell").to_numpy(), dtype=np.int64),
                            _global_codes(seen_tb.column("ident"), ids), h0=h0, nv=int(ids.size) + 1,
                            cell_deg=gp.nearby_deg),
        h0=h0, nv=int(ids.size) + 1, cell_deg=gp.nearby_deg,
    )  # fmt: skip
    del seen_tb, hour
    if bar is not None:
        bar.update(1)
    # each bucket of vessels on its own: an id's positions all fall in one bucket
    gap_parts: list[pa.Table] = []
    all_parts: list[pa.Table] = []
    loit_parts: list[pa.Table] = []
    meets: list[_Meets] = []
    usual = np.full(ids.size, np.nan)
    for bk in range(k):
        cond = where if k == 1 else f"{where} AND hash(ident) % {k} = {bk}"
        ais = lake.query(
            f"SELECT ident, epoch_us(time) AS time_us, lon, lat, speed_mps FROM observations WHERE {cond} "
            "ORDER BY ident, time_us, lon, lat"
        )
        s = _sorted(_global_codes(ais.column("ident"), ids), ids, ais.column("time_us").to_numpy(),
                    ais.column("lon").to_numpy(), ais.column("lat").to_numpy(),
                    ais.column("speed_mps").cast(pa.float64()).fill_null(math.nan).to_numpy())  # fmt: skip
        del ais
        # a gap's usual speed is the one its positions show (as :func:`detect_dark_gaps` takes no speeds)
        s_pos = dataclasses.replace(s, v=np.full(s.v.size, np.nan))
        gap_parts.append(_dark_gaps(s_pos, cs, gp, seen))
        all_parts.append(_dark_gaps(s_pos, cs, DarkGapParams(min_score=0.0), seen))
        del s_pos
        loit_parts.append(_loitering(s, cs, lp))
        meets.append(_meeting_inputs(s, cs, rp))
        sp = _typical_speed(s)
        usual = np.where(np.isfinite(sp), sp, usual)
        del s
        if bar is not None:
            bar.update(1)
    gaps, all_gaps, loit = (_by_vessel(parts, "start_us") for parts in (gap_parts, all_parts, loit_parts))
    radar = lake.query(
        "SELECT epoch_us(time) AS time_us, lon, lat, CAST(marking AS VARCHAR) AS marking FROM observations "
        "WHERE CAST(sensor AS VARCHAR) = 'RADAR' AND CAST(kind AS VARCHAR) IN ('vessel', 'unknown')"
    )
    rdv = _meetings(_Meets.concat(meets), ids, usual, all_gaps, radar.column("time_us").to_numpy(),
                    radar.column("lon").to_numpy(), radar.column("lat").to_numpy(), rp)  # fmt: skip
    if bar is not None:
        bar.update(1)
        bar.close()
    marks = vessel_markings(lake, where, ids)
    radar_mark = _distinct_marking(radar.column("marking")) if radar.num_rows else None
    gaps, loit = (with_markings(tb, marks, ids, ("vessel",)) for tb in (gaps, loit))
    rdv = with_markings(rdv, marks, ids, ("vessel_a", "vessel_b"), radar=radar_mark)
    out = maritime_dir(ws)
    out.mkdir(parents=True, exist_ok=True)
    meta = {b"run_id": run_id.encode(), b"method": METHOD.encode()}
    for name, tb in (("dark_gaps", gaps), ("rendezvous", rdv), ("loitering", loit)):
        tmp = out / f"{name}.parquet.tmp"
        pq.write_table(tb.replace_schema_metadata(meta), tmp)
        tmp.replace(out / f"{name}.parquet")
    summary: dict[str, Any] = {
        "run_id": run_id,
        "ais_positions": n_ais,
        "vessels": int(ids.size),
        "radar_contacts": radar.num_rows,
        "dark_gaps": gaps.num_rows,
        "rendezvous": rdv.num_rows,
        "rendezvous_by_kind": {k: rdv.column("kind").to_pylist().count(k) for k in ("ais", "dark", "radar")},
        "loitering": loit.num_rows,
        "output": str(out),
    }
    with store.begin() as conn:
        conn.execute(
            ks.analysis_runs.insert().values(
                id=run_id, kind="maritime", started_at=started, finished_at=datetime.now(UTC),
                params={"method": METHOD}, summary=json.loads(json.dumps(summary)),
            )
        )  # fmt: skip
    return summary
