"""Suspected sites: detections → ranked persistent places of interest with their evidence.

How it works (method ``sites/grid-v1``):

1. **Channels.** Each detection becomes evidence on one channel by what was
   seen: structures, thermal anomalies (split night/day by local solar time),
   stationary vehicles, aircraft on the ground, stopped vessels, RF emitters and
   chemical hits. Moving vehicles and vessels, own platforms and friendly
   patrols carry no site evidence.
2. **Accumulation** (:mod:`atalaya.fusion.grid`). Detections are binned per
   grid cell, day and channel, weighted by confidence; the grid level follows
   the position uncertainty (error-ellipse area), so a 1 km SIGINT fix spreads
   thin over a coarse cell while an EO fix lands in a 72 m cell. The binned
   state is saved and merged with each new batch: no re-clustering.
3. **Extraction.** Level-0 cells are smoothed over 3×3 neighbours; local maxima
   over 5×5 (about 360 m) above a minimum mass are candidate sites. Each
   candidate gathers the evidence around it at every level with a kernel that
   counts how much of each cell's mass (given its spread) falls within
   ~100 m of the candidate; its position is the precision-weighted centroid of
   the sharp static evidence near the peak.
4. **Score.** Each evidence group (structure, thermal, activity, emitter,
   chemical) gives a saturating probability capped below one half, so one kind
   of evidence alone, however repeated, stays below the default threshold;
   they combine by noisy-OR (corroboration), thermal counts more when it is at
   night (activity pattern), and the total is scaled by persistence over
   distinct days. The breakdown is kept as evidence with sample observation ids.
5. **Kind.** Night thermal with structures, chemicals or emitters → lab;
   aircraft on the ground → airstrip; stopped boats → landing beach; structure
   with stationary vehicles → stash house; else unknown.

:func:`detect_sites` is the pure function over arrays; :func:`run_sites`
reads new lake units, updates ``WORKSPACE/analysis/sites_state.parquet`` and
upserts the ``sites`` table, keeping analysts' status and notes.

>>> import numpy as np
>>> empty = np.zeros(0)
>>> detect_sites(lon=empty, lat=empty, time_us=empty.astype(np.int64), sensor=[], kind=[]).n_sites
0
"""

from __future__ import annotations

import enum
import json
import math
import re
import time as _time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import insert, select, update

from atalaya.core.errors import StoreError, ValidationError
from atalaya.core.provenance import Provenance
from atalaya.core.workspace import Workspace
from atalaya.evaluate.matching import match_points
from atalaya.fusion import grid
from atalaya.model.objects import SiteKind, SiteStatus
from atalaya.model.observation import ObjectKind, Sensor
from atalaya.store.knowledge import KnowledgeStore, schema, upsert
from atalaya.store.lake import Lake

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

METHOD = "sites/grid-v1"
"""Method name recorded in provenance and analysis runs."""
STATE_FILE = "sites_state.parquet"
"""State file name under ``WORKSPACE/analysis``."""
ANALYST_COLUMNS = ("status", "note", "status_by", "status_at")
"""Columns of the ``sites`` table that belong to analysts: never overwritten by re-analysis."""

_US_PER_S = 1_000_000
_US_PER_DAY = 86_400 * _US_PER_S


class Channel(enum.IntEnum):
    """Evidence channels accumulated on the grid."""

    STRUCTURE = 0
    THERMAL_NIGHT = 1
    THERMAL_DAY = 2
    VEHICLE = 3
    EMITTER = 4
    CHEMICAL = 5
    AIRCRAFT = 6
    VESSEL = 7


GROUPS: dict[str, tuple[Channel, ...]] = {
    "structure": (Channel.STRUCTURE,),
    "thermal": (Channel.THERMAL_NIGHT, Channel.THERMAL_DAY),
    "activity": (Channel.VEHICLE, Channel.AIRCRAFT, Channel.VESSEL),
    "emitter": (Channel.EMITTER,),
    "chemical": (Channel.CHEMICAL,),
}
"""Evidence groups: corroboration counts distinct groups, not channels."""

_STATIC = (Channel.STRUCTURE, Channel.THERMAL_NIGHT, Channel.THERMAL_DAY, Channel.CHEMICAL)
_DEFAULT_SIGMA = {Sensor.ADSB.value: 30.0, Sensor.AIS.value: 20.0, Sensor.COT.value: 15.0}


@dataclass(frozen=True, kw_only=True)
class SiteParams:
    """Tuning of the sites analytic (defaults are set on physics, not on a scenario)."""

    default_sigma_m: float = 50.0
    """Position error assumed where a detection has none (and its sensor no default)."""
    default_confidence: float = 0.7
    """Confidence assumed where a detection has none."""
    stationary_mps: float = 2.0
    """Vehicles and vessels slower than this (or without speed) count as stopped."""
    aircraft_ground_m: float = 150.0
    """Aircraft below this altitude (or slower than ``aircraft_slow_mps``) count as on the ground."""
    aircraft_slow_mps: float = 40.0
    """Aircraft slower than this count as on the ground."""
    night_hours: tuple[float, float] = (19.0, 6.0)
    """Local solar hours [start, end) that count as night."""
    channel_weight: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 3.0, 2.0)
    """Multiplier per channel (chemical hits and aircraft on the ground are rare and specific)."""
    min_peak_mass: float = 1.5
    """Minimum smoothed level-0 evidence mass (3×3 cells) for a candidate."""
    support_radius_m: float = 100.0
    """Radius within which evidence supports a site (kernel scale), ground metres."""
    group_scale: tuple[float, ...] = (1.0, 0.75, 1.5, 1.0, 0.7)
    """Support mass at which each group (structure, thermal, activity, emitter, chemical) reaches 63 % of its cap."""
    group_cap: tuple[float, ...] = (0.4, 0.4, 0.4, 0.3, 0.55)
    """Highest probability one group alone gives (same order as ``group_scale``)."""
    day_scale: float = 1.5
    """Distinct days at which persistence reaches 63 %."""
    min_score: float = 0.4
    """Sites scoring below this are not reported (one evidence group alone stays below 0.4)."""
    samples: int = 8
    """Supporting observation ids kept per site."""


@dataclass(frozen=True, kw_only=True)
class SiteTable:
    """Detected sites, ranked by score (rank 1 first)."""

    id: list[str]
    """Stable site ids derived from the position (see :func:`site_id`)."""
    kind: list[str]
    """SiteKind values."""
    lon: F64
    """Longitude of the precision-weighted centroid."""
    lat: F64
    """Latitude."""
    radius_m: F64
    """Two-sigma uncertainty radius of the position, metres."""
    score: F64
    """Score in [0, 1]."""
    rank: I64
    """1-based rank by score."""
    first_seen_us: I64
    """Earliest supporting detection, µs since the epoch."""
    last_seen_us: I64
    """Latest supporting detection."""
    n_days: I64
    """Distinct days with supporting evidence."""
    first_day: I64
    """First UTC day (days since the epoch) with supporting evidence."""
    evidence: list[dict[str, Any]]
    """Score breakdown per site."""
    samples: list[list[str]]
    """Supporting observation ids (hex), a sample per site."""

    @property
    def n_sites(self) -> int:
        return len(self.id)

    def take(self, idx: npt.NDArray[np.intp]) -> SiteTable:
        """Rows at ``idx`` (ranks are renumbered)."""
        ii = idx.tolist()
        return SiteTable(
            id=[self.id[i] for i in ii], kind=[self.kind[i] for i in ii], lon=self.lon[idx], lat=self.lat[idx],
            radius_m=self.radius_m[idx], score=self.score[idx], rank=np.arange(1, len(ii) + 1, dtype=np.int64),
            first_seen_us=self.first_seen_us[idx], last_seen_us=self.last_seen_us[idx], n_days=self.n_days[idx],
            first_day=self.first_day[idx], evidence=[self.evidence[i] for i in ii],
            samples=[self.samples[i] for i in ii],
        )  # fmt: skip

    def to_arrow(self) -> pa.Table:
        """The sites as an Arrow table (evidence as JSON text)."""
        return pa.table(
            {
                "id": self.id,
                "kind": self.kind,
                "lon": self.lon,
                "lat": self.lat,
                "radius_m": self.radius_m,
                "score": self.score,
                "rank": self.rank,
                "first_seen": pa.array(self.first_seen_us, type=pa.timestamp("us", tz="UTC")),
                "last_seen": pa.array(self.last_seen_us, type=pa.timestamp("us", tz="UTC")),
                "n_days": self.n_days,
                "evidence": [json.dumps(e, sort_keys=True) for e in self.evidence],
            }
        )


def _empty_sites() -> SiteTable:
    f = np.zeros(0)
    i = np.zeros(0, dtype=np.int64)
    return SiteTable(
        id=[], kind=[], lon=f, lat=f.copy(), radius_m=f.copy(), score=f.copy(), rank=i, first_seen_us=i.copy(),
        last_seen_us=i.copy(), n_days=i.copy(), first_day=i.copy(), evidence=[], samples=[],
    )  # fmt: skip


def site_id(lon: float, lat: float) -> str:
    """Stable site id from a position rounded to 1e-4° (about 10 m).

    >>> site_id(-107.12345, 25.56789)
    'site--25.5679-107.1235'
    """
    return f"site--{lat:.4f}{lon:+.4f}".replace("+", "")


# -- detections → channels --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """Detections mapped to evidence channels (only those that carry site evidence)."""

    lon: F64
    """Longitude."""
    lat: F64
    """Latitude."""
    time_us: I64
    """Time, µs since the epoch (UTC)."""
    channel: npt.NDArray[np.int8]
    """:class:`Channel` value."""
    weight: F64
    """Evidence weight (confidence × channel weight)."""
    sigma_m: F64
    """1-sigma position error (geometric mean of the ellipse axes), ground metres."""
    obs_id: list[bytes | None] | None = None
    """Observation ids (16 bytes), when known."""


def _arr(x: Any, n: int, fill: float) -> F64:
    if x is None:
        return np.full(n, fill)
    a = np.asarray(x, dtype=np.float64)
    return np.where(np.isfinite(a), a, fill) if fill == fill else a


def to_evidence(
    *,
    lon: Any,
    lat: Any,
    time_us: Any,
    sensor: Sequence[str | None] | npt.NDArray[Any],
    kind: Sequence[str | None] | npt.NDArray[Any],
    pos_err_m: Any = None,
    err_minor_m: Any = None,
    confidence: Any = None,
    speed_mps: Any = None,
    alt_m: Any = None,
    obs_id: list[bytes | None] | None = None,
    params: SiteParams = SiteParams(),
) -> Evidence:
    """Map detections to evidence channels with their weight and spread; drops what is no site evidence.

    >>> ev = to_evidence(lon=[-107.0, -107.0], lat=[25.0, 25.0], time_us=[0, 0], sensor=["IR", "GMTI"],
    ...                  kind=["thermal", "vehicle"], speed_mps=[float("nan"), 20.0])
    >>> ev.channel.tolist(), ev.weight.tolist()
    ([2], [0.7])
    >>> to_evidence(lon=[], lat=[], time_us=[], sensor=[], kind=[]).channel.size
    0
    """
    lon_a = np.asarray(lon, dtype=np.float64)
    n = lon_a.size
    lat_a = np.asarray(lat, dtype=np.float64)
    t = np.asarray(time_us, dtype=np.int64)
    sen = np.asarray(sensor, dtype=object).astype(str) if n else np.zeros(0, dtype=str)
    knd = np.asarray(kind, dtype=object).astype(str) if n else np.zeros(0, dtype=str)
    nan = math.nan
    spd = _arr(speed_mps, n, nan)
    alt = _arr(alt_m, n, nan)
    conf = np.clip(_arr(confidence, n, params.default_confidence), 0.0, 1.0)
    sig_default = np.full(n, params.default_sigma_m)
    for s, v in _DEFAULT_SIGMA.items():
        sig_default[sen == s] = v
    a = np.asarray(pos_err_m, dtype=np.float64) if pos_err_m is not None else np.full(n, nan)
    a = np.where(np.isfinite(a) & (a > 0), a, sig_default)
    b = np.asarray(err_minor_m, dtype=np.float64) if err_minor_m is not None else np.full(n, nan)
    b = np.where(np.isfinite(b) & (b > 0), np.minimum(b, a), a)
    sigma = np.sqrt(a * b)

    ch = np.full(n, -1, dtype=np.int8)
    stopped = ~(spd >= params.stationary_mps)  # NaN speed counts as stopped
    ch[knd == ObjectKind.STRUCTURE.value] = Channel.STRUCTURE
    thermal = knd == ObjectKind.THERMAL.value
    if thermal.any():
        hour = ((t % _US_PER_DAY) / (3600 * _US_PER_S) + lon_a / 15.0) % 24.0
        h0, h1 = params.night_hours
        night = (hour >= h0) | (hour < h1) if h0 > h1 else (hour >= h0) & (hour < h1)
        ch[thermal & night] = Channel.THERMAL_NIGHT
        ch[thermal & ~night] = Channel.THERMAL_DAY
    friendly = np.isin(sen, [Sensor.TRACK.value])
    ch[(knd == ObjectKind.VEHICLE.value) & stopped & ~friendly] = Channel.VEHICLE
    ch[(knd == ObjectKind.EMITTER.value)] = Channel.EMITTER
    ch[(knd == ObjectKind.CHEMICAL.value)] = Channel.CHEMICAL
    ground = ~(alt >= params.aircraft_ground_m) | (spd < params.aircraft_slow_mps)
    ch[(knd == ObjectKind.AIRCRAFT.value) & ground & ~friendly] = Channel.AIRCRAFT
    ch[(knd == ObjectKind.VESSEL.value) & stopped] = Channel.VESSEL
    keep = np.flatnonzero(ch >= 0)
    chw = np.asarray(params.channel_weight, dtype=np.float64)
    ck = ch[keep]
    return Evidence(
        lon=lon_a[keep],
        lat=lat_a[keep],
        time_us=t[keep],
        channel=ck,
        weight=conf[keep] * chw[ck],
        sigma_m=sigma[keep],
        obs_id=[obs_id[i] for i in keep.tolist()] if obs_id is not None else None,
    )


def accumulate_evidence(ev: Evidence) -> grid.GridState:
    """Bin evidence into a grid state (see :func:`atalaya.fusion.grid.accumulate`)."""
    return grid.accumulate(
        lon=ev.lon, lat=ev.lat, time_us=ev.time_us, channel=ev.channel, weight=ev.weight, sigma_m=ev.sigma_m,
        obs_id=ev.obs_id,
    )  # fmt: skip


# -- extraction -------------------------------------------------------------------------------------


def _lookup(sorted_keys: I64, query: I64) -> npt.NDArray[np.intp]:
    """Position of each query key in ``sorted_keys`` or -1."""
    pos = np.searchsorted(sorted_keys, query)
    pos_c = np.minimum(pos, max(sorted_keys.size - 1, 0))
    hit = (pos < sorted_keys.size) & (sorted_keys[pos_c] == query) if sorted_keys.size else np.zeros(query.size, bool)
    return np.where(hit, pos_c, -1)


def _expand(sorted_keys: I64, query: I64) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """All ``(query index, position)`` with ``sorted_keys[position] == query[index]``."""
    lo = np.searchsorted(sorted_keys, query, side="left")
    hi = np.searchsorted(sorted_keys, query, side="right")
    cnt = hi - lo
    tot = int(cnt.sum())
    qi = np.repeat(np.arange(query.size), cnt)
    pos = np.repeat(lo - np.cumsum(np.r_[0, cnt[:-1]]), cnt) + np.arange(tot)
    return qi, pos


def _window(r: int) -> I64:
    d = np.arange(-r, r + 1, dtype=np.int64)
    return (d[:, None] * grid.ROW + d[None, :]).ravel()


def find_peaks(state: grid.GridState, params: SiteParams = SiteParams()) -> tuple[I64, F64]:
    """Candidate site cells (level 0): local maxima of the 3×3-smoothed evidence mass over 5×5 cells.

    Returns the peak cell keys and their smoothed mass.

    >>> find_peaks(grid.empty_state())[0].size
    0
    """
    fine = state.level == 0
    if not fine.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    cells, inv = np.unique(state.cell[fine], return_inverse=True)
    mass = np.bincount(inv, weights=state.w[fine], minlength=cells.size)
    smooth = np.zeros(cells.size)
    for off in _window(1).tolist():
        pos = _lookup(cells, cells + off)
        smooth += np.where(pos >= 0, mass[np.maximum(pos, 0)], 0.0)
    cand = np.flatnonzero(smooth >= params.min_peak_mass)
    if cand.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    is_max = np.ones(cand.size, dtype=bool)
    for off in _window(2).tolist():
        if off == 0:
            continue
        pos = _lookup(cells, cells[cand] + off)
        other = np.where(pos >= 0, smooth[np.maximum(pos, 0)], -1.0)
        # ties go to the lower key, so exactly one cell of a plateau survives
        beats = (other > smooth[cand]) | ((other == smooth[cand]) & (off < 0))
        is_max &= ~beats
    peaks = cand[is_max]
    return cells[peaks], smooth[peaks]


def _group_prob(support: F64, scale: float, cap: float) -> F64:
    out: F64 = cap * (1.0 - np.exp(-support / scale))
    return out


def extract_sites(state: grid.GridState, params: SiteParams = SiteParams()) -> SiteTable:
    """Sites from an accumulated state: peaks, gathered evidence, position, score, kind; ranked by score.

    >>> extract_sites(grid.empty_state()).n_sites
    0
    """
    peak_cells, _ = find_peaks(state, params)
    npk = peak_cells.size
    if npk == 0:
        return _empty_sites()
    # index of state rows by (cell, level)
    rkey = state.cell * 4 + state.level.astype(np.int64)
    rorder = np.argsort(rkey, kind="stable")
    rsorted = rkey[rorder]
    px0, py0 = grid.cell_center(peak_cells, 0)

    def gather(px: F64, py: F64, levels: Sequence[int], radius_cells: dict[int, int]) -> tuple[I64, I64]:
        pk: list[I64] = []
        rw: list[I64] = []
        for lv in levels:
            base = grid.cell_keys(px, py, lv)
            win = _window(radius_cells.get(lv, 1))
            q = (base[:, None] + win[None, :]).ravel() * 4 + lv
            qi, pos = _expand(rsorted, q)
            pk.append(qi // win.size)
            rw.append(rorder[pos])
        return np.concatenate(pk).astype(np.int64), np.concatenate(rw).astype(np.int64)

    # position: precision-weighted centroid of static evidence in the 3×3 around the peak (all evidence if none)
    p_i, r_i = gather(px0, py0, [0], {0: 1})
    static = np.isin(state.channel[r_i], np.asarray(_STATIC, dtype=np.int8))
    has_static = np.bincount(p_i[static], minlength=npk) > 0
    use = static | ~has_static[p_i]
    q = np.bincount(p_i[use], weights=state.q[r_i[use]], minlength=npk)
    qx = np.bincount(p_i[use], weights=state.qx[r_i[use]], minlength=npk)
    qy = np.bincount(p_i[use], weights=state.qy[r_i[use]], minlength=npk)
    px = np.where(q > 0, qx / np.maximum(q, 1e-300), px0)
    py = np.where(q > 0, qy / np.maximum(q, 1e-300), py0)

    # support: every row near the site, every level, with a kernel for its spread
    p_i, r_i = gather(px, py, range(grid.LEVELS), {0: 2})
    scale = grid.ground_scale(py)[p_i]
    rq = np.maximum(state.q[r_i], 1e-300)
    rx = state.qx[r_i] / rq
    ry = state.qy[r_i] / rq
    d2 = ((rx - px[p_i]) ** 2 + (ry - py[p_i]) ** 2) * scale**2
    spread2 = (state.w[r_i] / rq) * scale**2  # mean variance of the row's detections, ground m²
    cell_g = grid.cell_size(state.level[r_i]) * scale
    var_row = spread2 + np.where(state.level[r_i] > 0, cell_g**2 / 12.0, 0.0)
    r0 = params.support_radius_m
    kern = r0 * r0 / (r0 * r0 + var_row) * np.exp(-d2 / (2.0 * (r0 * r0 + var_row)))
    kw = kern * state.w[r_i]
    ch = state.channel[r_i].astype(np.int64)
    nch = len(Channel)
    support = np.bincount(p_i * nch + ch, weights=kw, minlength=npk * nch).reshape(npk, nch)

    # days and detections that count: rows whose kernel is at least ~0.3
    strong = kern >= 0.3
    sp_i, sr_i = p_i[strong], r_i[strong]
    day = state.day[sr_i].astype(np.int64)
    pd_key = np.unique(sp_i * (1 << 32) + day)
    n_days = np.bincount((pd_key >> 32).astype(np.int64), minlength=npk)
    pcd = np.unique((sp_i * nch + state.channel[sr_i].astype(np.int64)) * (1 << 32) + day)
    ch_days = np.bincount((pcd >> 32).astype(np.int64), minlength=npk * nch).reshape(npk, nch)
    n_det = np.bincount(sp_i, weights=state.n[sr_i], minlength=npk).astype(np.int64)
    big = np.iinfo(np.int64).max
    first = np.full(npk, big)
    np.minimum.at(first, sp_i, state.t_first[sr_i])
    last = np.full(npk, -big)
    np.maximum.at(last, sp_i, state.t_last[sr_i])
    first_day = np.full(npk, big)
    np.minimum.at(first_day, sp_i, day)

    # score
    gnames = list(GROUPS)
    gsup = np.stack([support[:, [int(c) for c in GROUPS[g]]].sum(axis=1) for g in gnames], axis=1)
    gprob = np.stack(
        [_group_prob(gsup[:, k], params.group_scale[k], params.group_cap[k]) for k in range(len(gnames))], axis=1
    )
    th_n = support[:, Channel.THERMAL_NIGHT]
    th_all = th_n + support[:, Channel.THERMAL_DAY]
    night_frac = np.where(th_all > 0, th_n / np.maximum(th_all, 1e-300), 0.0)
    k_th = gnames.index("thermal")
    gprob[:, k_th] *= 0.75 + 0.25 * night_frac
    corroboration = 1.0 - np.prod(1.0 - gprob, axis=1)
    persistence = 1.0 - np.exp(-n_days / params.day_scale)
    score = corroboration * (0.55 + 0.45 * persistence)

    # kind
    def present(g: str, frac: float = 0.25) -> npt.NDArray[np.bool_]:
        k = gnames.index(g)
        out: npt.NDArray[np.bool_] = gprob[:, k] >= frac * params.group_cap[k]
        return out

    thermal, chem, struct, emit = present("thermal"), present("chemical"), present("structure"), present("emitter")
    air = support[:, Channel.AIRCRAFT] >= 0.5 * params.channel_weight[Channel.AIRCRAFT]
    boat = support[:, Channel.VESSEL] >= 0.5 * params.channel_weight[Channel.VESSEL]
    veh = support[:, Channel.VEHICLE] >= 0.5
    kind = np.full(npk, SiteKind.UNKNOWN.value, dtype=object)
    kind[struct & veh] = SiteKind.STASH_HOUSE.value
    kind[boat] = SiteKind.LANDING_BEACH.value
    kind[air] = SiteKind.AIRSTRIP.value
    kind[chem | (thermal & (struct | emit | (night_frac >= 0.5)))] = SiteKind.LAB.value

    keep = np.flatnonzero(score >= params.min_score)
    if keep.size == 0:
        return _empty_sites()
    keep = keep[np.lexsort((peak_cells[keep], -score[keep]))]

    lon, lat = grid.inverse_mercator(px[keep], py[keep])
    qn = np.bincount(p_i[strong], weights=(kern * state.q[r_i])[strong], minlength=npk)[keep]
    sc = grid.ground_scale(py[keep])
    radius = np.maximum(2.0 * sc / np.sqrt(np.maximum(qn, 1e-300)), 10.0)
    radius = np.minimum(radius, params.support_radius_m * 3)

    # samples: heaviest supporting rows that carry an id
    samples: list[list[str]] = [[] for _ in range(npk)]
    order = np.lexsort((-kw, p_i))
    want = np.zeros(npk, dtype=bool)
    want[keep] = True
    for j in order[want[p_i[order]] & strong[order]].tolist():
        s = state.sample[r_i[j]]
        lst = samples[p_i[j]]
        if s is not None and len(lst) < params.samples and s.hex() not in lst:
            lst.append(s.hex())

    evidence: list[dict[str, Any]] = []
    for j, i in enumerate(keep.tolist()):
        evidence.append(
            {
                "method": METHOD,
                "score": round(float(score[i]), 4),
                "corroboration": round(float(corroboration[i]), 4),
                "persistence": round(float(persistence[i]), 4),
                "groups": {g: round(float(gprob[i, k]), 4) for k, g in enumerate(gnames) if gprob[i, k] > 0},
                "support": {c.name.lower(): round(float(support[i, c]), 3) for c in Channel if support[i, c] > 0},
                "days": {c.name.lower(): int(ch_days[i, c]) for c in Channel if ch_days[i, c] > 0},
                "n_days": int(n_days[i]),
                "night_thermal_fraction": round(float(night_frac[i]), 3),
                "movement": round(float(support[i, [Channel.VEHICLE, Channel.AIRCRAFT, Channel.VESSEL]].sum()), 3),
                "n_detections": int(n_det[i]),
                "radius_m": round(float(radius[j]), 1),
            }
        )
    return SiteTable(
        id=[site_id(float(a), float(b)) for a, b in zip(lon, lat, strict=True)],
        kind=[str(k) for k in kind[keep]],
        lon=lon,
        lat=lat,
        radius_m=radius,
        score=score[keep],
        rank=np.arange(1, keep.size + 1, dtype=np.int64),
        first_seen_us=first[keep],
        last_seen_us=last[keep],
        n_days=n_days[keep].astype(np.int64),
        first_day=first_day[keep],
        evidence=evidence,
        samples=[samples[i] for i in keep.tolist()],
    )


def detect_sites(
    *,
    lon: Any,
    lat: Any,
    time_us: Any,
    sensor: Sequence[str | None] | npt.NDArray[Any],
    kind: Sequence[str | None] | npt.NDArray[Any],
    pos_err_m: Any = None,
    err_minor_m: Any = None,
    confidence: Any = None,
    speed_mps: Any = None,
    alt_m: Any = None,
    obs_id: list[bytes | None] | None = None,
    params: SiteParams = SiteParams(),
) -> SiteTable:
    """Ranked suspected sites from detections (pure: arrays in, table out).

    Equivalent to accumulating the detections in one batch and extracting;
    :func:`run_sites` does the same incrementally.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> n = 40
    >>> lon = -107.0 + rng.normal(0, 0.0003, n); lat = 25.0 + rng.normal(0, 0.0003, n)
    >>> t = (20_514 + np.arange(n) % 4) * 86_400_000_000 + 5 * 3_600_000_000 + 7 * 3_600_000_000
    >>> kinds = ["structure", "thermal"] * (n // 2)
    >>> s = detect_sites(lon=lon, lat=lat, time_us=t, sensor=["EO", "IR"] * (n // 2), kind=kinds,
    ...                  pos_err_m=np.full(n, 30.0))
    >>> s.n_sites, s.kind, s.n_days.tolist()
    (1, ['lab'], [4])
    """
    ev = to_evidence(
        lon=lon, lat=lat, time_us=time_us, sensor=sensor, kind=kind, pos_err_m=pos_err_m, err_minor_m=err_minor_m,
        confidence=confidence, speed_mps=speed_mps, alt_m=alt_m, obs_id=obs_id, params=params,
    )  # fmt: skip
    return extract_sites(accumulate_evidence(ev), params)


# -- lake and knowledge store -----------------------------------------------------------------------

_LAKE_COLUMNS = ("obs_id", "time", "lon", "lat", "alt_m", "pos_err_m", "err_minor_m", "speed_mps", "sensor", "kind",
                 "confidence")  # fmt: skip
_EVIDENCE_KINDS = tuple(
    k.value
    for k in (ObjectKind.STRUCTURE, ObjectKind.THERMAL, ObjectKind.VEHICLE, ObjectKind.EMITTER, ObjectKind.CHEMICAL,
              ObjectKind.AIRCRAFT, ObjectKind.VESSEL)
)  # fmt: skip
_PART_RE = re.compile(r"^part-(?P<unit>[0-9a-f]{32})-\d+\.parquet$")


def evidence_from_arrow(table: pa.Table, params: SiteParams = SiteParams()) -> Evidence:
    """Evidence from an Arrow table with observation columns (lake schema)."""

    def num(name: str) -> Any:
        if name not in table.column_names:
            return None
        return table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)

    def text(name: str) -> npt.NDArray[Any]:
        col = table.column(name)
        if pa.types.is_dictionary(col.type):
            col = col.cast(pa.string())
        return np.asarray(col.to_pylist(), dtype=object)

    t = table.column("time")
    if pa.types.is_timestamp(t.type):
        t = pc.cast(t, pa.timestamp("us", tz="UTC")).cast(pa.int64())
    ids = table.column("obs_id").to_pylist() if "obs_id" in table.column_names else None
    return to_evidence(
        lon=num("lon"), lat=num("lat"), time_us=t.to_numpy(zero_copy_only=False), sensor=text("sensor"),
        kind=text("kind"), pos_err_m=num("pos_err_m"), err_minor_m=num("err_minor_m"),
        confidence=num("confidence"), speed_mps=num("speed_mps"), alt_m=num("alt_m"), obs_id=ids, params=params,
    )  # fmt: skip


def state_path(ws: Workspace) -> Path:
    """Where the accumulated state of a workspace lives."""
    return ws.root / "analysis" / STATE_FILE


def _unit_of(path: Path) -> str | None:
    m = _PART_RE.match(path.name)
    return m.group("unit") if m else None


def update_state(ws: Workspace, *, progress: bool = False, params: SiteParams = SiteParams()) -> dict[str, Any]:
    """Fold the lake units not yet analysed into the saved state; returns counts."""
    path = state_path(ws)
    state, meta = grid.read_state(path)
    done = set(json.loads(meta.get("units", "[]")))
    files = [p for p in Lake(ws.lake_dir).files() if _unit_of(p) not in done]
    new_units = sorted({u for p in files if (u := _unit_of(p)) is not None})
    n_rows = 0
    n_ev = 0
    it: Any = files
    if progress and files:
        from tqdm import tqdm

        it = tqdm(files, desc="sites: reading lake", unit="file")
    batches: list[grid.GridState] = []
    for p in it:
        pf = pq.ParquetFile(p)
        cols = [c for c in _LAKE_COLUMNS if c in pf.schema_arrow.names]
        for rb in pf.iter_batches(columns=cols, batch_size=1_000_000):
            tb = pa.Table.from_batches([rb])
            kind = tb.column("kind").cast(pa.string())
            tb = tb.filter(pc.is_in(kind, value_set=pa.array(_EVIDENCE_KINDS)))
            n_rows += rb.num_rows
            if tb.num_rows == 0:
                continue
            ev = evidence_from_arrow(tb, params)
            n_ev += int(ev.channel.size)
            batches.append(accumulate_evidence(ev))
        if len(batches) > 16:
            merged = batches[0]
            for b in batches[1:]:
                merged = grid.merge(merged, b)
            batches = [merged]
    for b in batches:
        state = grid.merge(state, b)
    if new_units or not path.exists():
        grid.write_state(path, state, {"units": json.dumps(sorted(done | set(new_units))), "method": METHOD})
    return {
        "new_units": len(new_units),
        "rows_read": n_rows,
        "evidence_rows": n_ev,
        "state_rows": state.n_rows,
        "state": state,
    }


def _ts(us: int) -> datetime:
    return datetime.fromtimestamp(us / _US_PER_S, tz=UTC)


def _reuse_ids(store: KnowledgeStore, sites: SiteTable, radius_m: float) -> list[str]:
    """Keep the ids of sites already in the store within ``radius_m`` (so re-analysis does not rename them)."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(schema.sites.c.id, schema.sites.c.lon, schema.sites.c.lat)).all()
    ids = list(sites.id)
    if not rows or sites.n_sites == 0:
        return ids
    old_id = [r[0] for r in rows]
    m = match_points(sites.lon, sites.lat, np.array([r[1] for r in rows]), np.array([r[2] for r in rows]),
                     radius_m=radius_m)  # fmt: skip
    for i, j in zip(m.pred_index.tolist(), m.true_index.tolist(), strict=True):
        ids[i] = old_id[j]
    # a new id that collides with an unmatched old one keeps its own row: suffix it
    taken = set(old_id) - {old_id[j] for j in m.true_index.tolist()}
    matched = set(m.pred_index.tolist())
    for i in range(len(ids)):
        if i not in matched and ids[i] in taken:
            ids[i] = f"{ids[i]}-{i}"
    return ids


def write_sites(store: KnowledgeStore, sites: SiteTable, *, run_id: str, reuse_radius_m: float = 250.0) -> list[str]:
    """Upsert sites into the ``sites`` table, never touching analysts' columns; returns the ids written."""
    ids = _reuse_ids(store, sites, reuse_radius_m)
    rows = []
    for i in range(sites.n_sites):
        prov = Provenance(
            observations=tuple(sites.samples[i]),
            n_support=int(sites.evidence[i].get("n_detections", 0)),
            first_seen=_ts(int(sites.first_seen_us[i])).isoformat(),
            last_seen=_ts(int(sites.last_seen_us[i])).isoformat(),
            run_id=run_id,
            method=METHOD,
        )
        rows.append(
            {
                "id": ids[i],
                "kind": sites.kind[i],
                "lon": float(sites.lon[i]),
                "lat": float(sites.lat[i]),
                "radius_m": float(sites.radius_m[i]),
                "score": float(sites.score[i]),
                "rank": int(sites.rank[i]),
                "status": SiteStatus.SUSPECTED.value,
                "first_seen": _ts(int(sites.first_seen_us[i])),
                "last_seen": _ts(int(sites.last_seen_us[i])),
                "n_days": int(sites.n_days[i]),
                "evidence": sites.evidence[i],
                "run_id": run_id,
                "provenance": prov.to_dict(),
            }
        )
    cols = [c for c in rows[0] if c not in ("id", *ANALYST_COLUMNS)] if rows else []
    with store.begin() as conn:
        upsert(conn, schema.sites, rows, keys=["id"], update=cols)
    return ids


def run_sites(
    ws: Workspace,
    store: KnowledgeStore,
    *,
    progress: bool = False,
    params: SiteParams = SiteParams(),
) -> dict[str, Any]:
    """Update the sites of a workspace from the lake units not yet analysed; returns a summary.

    Reads only new units, merges them into ``WORKSPACE/analysis/sites_state.parquet``,
    extracts sites from the whole state and upserts them (ids stay stable; status,
    note, status_by and status_at are never overwritten).
    """
    started = datetime.now(UTC)
    t0 = _time.perf_counter()
    upd = update_state(ws, progress=progress, params=params)
    state: grid.GridState = upd.pop("state")
    sites = extract_sites(state, params)
    run_id = f"sites-{uuid.uuid4().hex[:12]}"
    ids = write_sites(store, sites, run_id=run_id)
    kinds: dict[str, int] = {}
    for k in sites.kind:
        kinds[k] = kinds.get(k, 0) + 1
    summary = {
        **upd,
        "run_id": run_id,
        "sites": sites.n_sites,
        "kinds": kinds,
        "top": [{"id": ids[i], "kind": sites.kind[i], "score": round(float(sites.score[i]), 3)}
                for i in range(min(5, sites.n_sites))],
        "seconds": round(_time.perf_counter() - t0, 3),
        "state_file": str(state_path(ws)),
    }  # fmt: skip
    with store.begin() as conn:
        conn.execute(
            insert(schema.analysis_runs).values(
                id=run_id, kind="sites", started_at=started, finished_at=datetime.now(UTC),
                params={"method": METHOD, "min_score": params.min_score},
                summary={k: v for k, v in summary.items() if k != "top"},
            )
        )  # fmt: skip
    return summary


def set_site_status(store: KnowledgeStore, site_id: str, status: str, note: str | None, user: str) -> dict[str, Any]:
    """Record an analyst's decision on a site (kept across re-analysis); returns the updated fields."""
    try:
        st = SiteStatus(status)
    except ValueError:
        raise ValidationError(
            f"unknown site status {status!r}", hint=f"use one of: {', '.join(s.value for s in SiteStatus)}"
        ) from None
    if not user:
        raise ValidationError("a site status needs the analyst's name", hint="pass the user making the decision")
    now = datetime.now(UTC)
    values = {"status": st.value, "note": note, "status_by": user, "status_at": now}
    with store.begin() as conn:
        res = conn.execute(update(schema.sites).where(schema.sites.c.id == site_id).values(**values))
        if res.rowcount == 0:
            raise StoreError(f"no site {site_id!r}", hint="list sites with `atalaya analyze sites` or check the id")
        conn.execute(
            insert(schema.audit).values(
                time=now, actor=user, action="site.status", object_type="site", object_id=site_id,
                details={"status": st.value, "note": note},
            )
        )  # fmt: skip
    return {"id": site_id, **values}


__all__ = [
    "ANALYST_COLUMNS",
    "Channel",
    "Evidence",
    "SiteParams",
    "SiteTable",
    "accumulate_evidence",
    "detect_sites",
    "evidence_from_arrow",
    "extract_sites",
    "find_peaks",
    "run_sites",
    "set_site_status",
    "site_id",
    "state_path",
    "to_evidence",
    "update_state",
    "write_sites",
]
