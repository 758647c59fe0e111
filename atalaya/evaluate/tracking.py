"""Tracking metrics against ground truth: GOSPA and the SIAP measures.

**GOSPA** (generalised optimal sub-pattern assignment, α = 2; Rahmathullah,
García-Fernández and Svensson, 2017) compares the set of track states with the
set of true states at each time step::

    d(t) = ( min over assignments γ  Σ_{(i,j)∈γ} d(x_i, y_j)^p  +  c^p / 2 · (|X| + |Y| − 2|γ|) )^(1/p)

where pairs farther than the cut-off ``c`` are never worth assigning. Its three
parts are reported as Stone Soup does, as p-th power sums: *localisation*
(Σ d^p of the assigned pairs), *missed* (c^p/2 per unassigned truth) and
*false* (c^p/2 per unassigned track), so ``distance = (loc + missed + false)^(1/p)``.
Pairs within ``c`` are found with a k-d tree over (x, y, time) for every step at
once; each step splits into connected components, lone pairs are closed-form
and larger clusters are solved with :func:`scipy.optimize.linear_sum_assignment`.

**SIAP** (Single Integrated Air Picture; Votruba et al. 2001, as in Stone
Soup's ``SIAPMetrics``): at each time a track is associated with the nearest
true object within ``association_m`` (a truth may have several tracks, a track
one truth). With J(t) truths, JT(t) of them tracked, N(t) tracks and NA(t) of
them associated: completeness = ΣJT / ΣJ, spuriousness = Σ(N − NA) / ΣN,
ambiguity = ΣNA / ΣJT. *ID changes* counts, over all truths, the times the
track associated with a truth (its nearest one) changes from one tracked step
to the next; their rate is per hour of tracked time. Unlike Stone Soup's
``TrackToTruth`` associator the association here is made per step, without
its confirmation/ending hysteresis.

>>> import numpy as np
>>> g = gospa(
...     truth_time=np.array([0, 0, 1]), truth_x=np.array([0.0, 100.0, 0.0]), truth_y=np.zeros(3),
...     track_time=np.array([0, 1, 1]), track_x=np.array([3.0, 4.0, 900.0]), track_y=np.zeros(3), c=50.0, p=1,
... )
>>> g.distance.tolist(), g.localisation.tolist(), g.missed.tolist(), g.false.tolist()
([28.0, 29.0], [3.0, 4.0], [25.0, 0.0], [0.0, 25.0])
>>> gospa(truth_time=np.zeros(0), truth_x=np.zeros(0), truth_y=np.zeros(0),
...       track_time=np.zeros(0), track_x=np.zeros(0), track_y=np.zeros(0), c=50.0).mean_distance
0.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from atalaya.core.errors import ValidationError
from atalaya.geo.kernels import aeqd_forward

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_US = 1_000_000


@dataclass(frozen=True, kw_only=True)
class GospaResult:
    """GOSPA per time step (sorted by time) and its time averages."""

    time: I64
    """Time step (the integer time key of the inputs)."""
    distance: F64
    """GOSPA distance at the step."""
    localisation: F64
    """Σ d^p of the assigned pairs."""
    missed: F64
    """c^p/2 per missed truth."""
    false: F64
    """c^p/2 per false track."""
    n_truth: I64
    """True objects at the step."""
    n_tracks: I64
    """Track states at the step."""

    @property
    def mean_distance(self) -> float:
        return float(self.distance.mean()) if self.distance.size else 0.0

    def summary(self) -> dict[str, float]:
        """Time-averaged distance and parts (parts as p-th power sums, like the distance's)."""
        if self.distance.size == 0:
            return {"gospa": 0.0, "localisation": 0.0, "missed": 0.0, "false": 0.0, "steps": 0.0}
        return {
            "gospa": float(self.distance.mean()),
            "localisation": float(self.localisation.mean()),
            "missed": float(self.missed.mean()),
            "false": float(self.false.mean()),
            "steps": float(self.distance.size),
        }


def _time_keys(a: I64, b: I64) -> tuple[I64, I64, I64]:
    steps, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    return steps, inv[: a.size], inv[a.size :]


def _near_pairs(ka: I64, xa: F64, ya: F64, kb: I64, xb: F64, yb: F64, radius: float) -> tuple[I64, I64, F64]:
    """Pairs (row of a, row of b) at the same time key closer than ``radius``, with distances."""
    if ka.size == 0 or kb.size == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e, np.zeros(0)
    sep = 4.0 * radius + 1.0  # time keys become a third axis far apart
    ta = cKDTree(np.column_stack([xa, ya, ka * sep]))
    tb = cKDTree(np.column_stack([xb, yb, kb * sep]))
    sdm = ta.sparse_distance_matrix(tb, radius, output_type="coo_matrix")
    i, j = sdm.row.astype(np.int64), sdm.col.astype(np.int64)
    same = ka[i] == kb[j]
    i, j = i[same], j[same]
    d = np.hypot(xa[i] - xb[j], ya[i] - yb[j])
    ok = d < radius
    return i[ok], j[ok], d[ok]


def gospa(
    *,
    truth_time: Any,
    truth_x: Any,
    truth_y: Any,
    track_time: Any,
    track_x: Any,
    track_y: Any,
    c: float,
    p: float = 2.0,
) -> GospaResult:
    """GOSPA (α = 2) per time step between true and estimated positions in a metric plane.

    Times are integer keys (e.g. seconds); a step is every key present in either set.
    """
    if c <= 0 or p < 1:
        raise ValidationError(f"GOSPA needs c > 0 and p >= 1, got c={c}, p={p}", hint="e.g. c=200 (metres), p=2")
    tt = np.asarray(truth_time, dtype=np.int64)
    kt = np.asarray(track_time, dtype=np.int64)
    steps, ka, kb = _time_keys(tt, kt)
    xa, ya = np.asarray(truth_x, dtype=np.float64), np.asarray(truth_y, dtype=np.float64)
    xb, yb = np.asarray(track_x, dtype=np.float64), np.asarray(track_y, dtype=np.float64)
    ns = steps.size
    n_truth = np.bincount(ka, minlength=ns).astype(np.int64)
    n_tracks = np.bincount(kb, minlength=ns).astype(np.int64)
    i, j, d = _near_pairs(ka, xa, ya, kb, xb, yb, c)
    ai, _, ad = _assign(i, j, d, n_a=ka.size, n_b=kb.size, c=c, p=p)
    step_of = ka[ai]
    loc = np.bincount(step_of, weights=ad**p, minlength=ns).astype(np.float64)
    n_asg = np.bincount(step_of, minlength=ns)
    half = c**p / 2.0
    missed = half * (n_truth - n_asg)
    false = half * (n_tracks - n_asg)
    dist = (loc + missed + false) ** (1.0 / p)
    return GospaResult(
        time=steps.astype(np.int64), distance=dist, localisation=loc, missed=missed.astype(np.float64),
        false=false.astype(np.float64), n_truth=n_truth, n_tracks=n_tracks,
    )  # fmt: skip


def _assign(i: I64, j: I64, d: F64, *, n_a: int, n_b: int, c: float, p: float) -> tuple[I64, I64, F64]:
    """Optimal one-to-one pairs among candidate pairs (all closer than ``c``), minimising Σ d^p − c^p per pair."""
    if i.size == 0:
        return i, j, d
    graph = coo_matrix((np.ones(i.size), (i, n_a + j)), shape=(n_a + n_b, n_a + n_b))
    _, label = connected_components(graph, directed=False)
    comp = label[i]
    size = np.bincount(comp, minlength=int(label.max()) + 1)
    lone = size[comp] == 1
    out_i, out_j, out_d = [i[lone]], [j[lone]], [d[lone]]
    rest = np.flatnonzero(~lone)
    if rest.size:
        order = rest[np.argsort(comp[rest], kind="stable")]
        for grp in np.split(order, np.flatnonzero(np.diff(comp[order])) + 1):
            ui, ii = np.unique(i[grp], return_inverse=True)
            uj, jj = np.unique(j[grp], return_inverse=True)
            gain = np.zeros((ui.size, uj.size))  # assigning saves c^p − d^p against leaving both unassigned
            gain[ii, jj] = c**p - d[grp] ** p
            r, cidx = linear_sum_assignment(gain, maximize=True)
            ok = gain[r, cidx] > 0
            r, cidx = r[ok], cidx[ok]
            out_i.append(ui[r])
            out_j.append(uj[cidx])
            out_d.append(_pair_d(i[grp], j[grp], d[grp], ui[r], uj[cidx]))
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)


def _pair_d(i: I64, j: I64, d: F64, pi: I64, pj: I64) -> F64:
    """Distances of the chosen pairs ``(pi, pj)`` looked up among candidates ``(i, j, d)``."""
    key = i.astype(np.int64) * (int(j.max()) + 1) + j
    want = pi.astype(np.int64) * (int(j.max()) + 1) + pj
    order = np.argsort(key)
    return np.asarray(d[order[np.searchsorted(key[order], want)]], dtype=np.float64)


@dataclass(frozen=True, kw_only=True)
class SiapResult:
    """SIAP measures (sums over all time steps, Stone Soup's time-range definitions)."""

    completeness: float
    """ΣJT / ΣJ: share of true object-steps with at least one associated track."""
    spuriousness: float
    """Σ(N − NA) / ΣN: share of track-steps associated with no true object."""
    ambiguity: float
    """ΣNA / ΣJT: associated tracks per tracked truth (1 is ideal)."""
    id_changes: int
    """Times the track associated with a truth changed between its tracked steps."""
    id_change_rate_per_h: float
    """``id_changes`` per hour of tracked time."""
    position_accuracy_m: float
    """Mean distance of associated tracks to their truth, metres."""
    n_truth_steps: int
    """ΣJ."""
    n_track_steps: int
    """ΣN."""


def siap(
    *,
    truth_id: Any,
    truth_time: Any,
    truth_x: Any,
    truth_y: Any,
    track_id: Any,
    track_time: Any,
    track_x: Any,
    track_y: Any,
    association_m: float,
    time_unit_s: float = 1.0,
) -> SiapResult:
    """SIAP completeness, spuriousness, ambiguity, ID changes and accuracy (positions in a metric plane).

    Ids are integer codes; times integer keys of ``time_unit_s`` seconds.

    >>> import numpy as np
    >>> s = siap(truth_id=np.array([0, 0, 0]), truth_time=np.array([0, 1, 2]), truth_x=np.zeros(3),
    ...          truth_y=np.zeros(3), track_id=np.array([7, 8, 9]), track_time=np.array([0, 1, 1]),
    ...          track_x=np.array([1.0, 2.0, 500.0]), track_y=np.zeros(3), association_m=10.0)
    >>> s.completeness, s.spuriousness, s.id_changes
    (0.6666666666666666, 0.3333333333333333, 1)
    """
    gid = np.asarray(truth_id, dtype=np.int64)
    tid = np.asarray(track_id, dtype=np.int64)
    tt = np.asarray(truth_time, dtype=np.int64)
    kt = np.asarray(track_time, dtype=np.int64)
    _, ka, kb = _time_keys(tt, kt)
    xa, ya = np.asarray(truth_x, dtype=np.float64), np.asarray(truth_y, dtype=np.float64)
    xb, yb = np.asarray(track_x, dtype=np.float64), np.asarray(track_y, dtype=np.float64)
    nt, nk = ka.size, kb.size
    # each track state → nearest truth at its time within the threshold
    truth_of = np.full(nk, -1, dtype=np.int64)
    dist = np.full(nk, np.inf)
    if nt and nk:
        sep = 4.0 * association_m + 1.0
        tree = cKDTree(np.column_stack([xa, ya, ka * sep]))
        q = tree.query(np.column_stack([xb, yb, kb * sep]), k=1, distance_upper_bound=association_m)
        dd, idx = np.asarray(q[0], dtype=np.float64), np.asarray(q[1], dtype=np.int64)
        ok = np.isfinite(dd)
        ok[ok] &= ka[idx[ok]] == kb[ok]
        truth_of[ok] = idx[ok]
        dist[ok] = dd[ok]
    assoc = truth_of >= 0
    n_assoc = int(assoc.sum())
    tracked_truth_rows = np.unique(truth_of[assoc])
    jt = int(tracked_truth_rows.size)
    # nearest associated track of each tracked truth row → ID changes along each truth
    rows = np.flatnonzero(assoc)
    best_track = np.full(nt, -1, dtype=np.int64)
    if rows.size:
        o = np.lexsort((dist[rows], truth_of[rows]))
        r = rows[o]
        first = np.ones(r.size, dtype=bool)
        first[1:] = truth_of[r][1:] != truth_of[r][:-1]
        best_track[truth_of[r][first]] = tid[r][first]
    tr = np.flatnonzero(best_track >= 0)
    changes = 0
    tracked_s = 0.0
    if tr.size:
        o = np.lexsort((tt[tr], gid[tr]))
        g, tk, tm = gid[tr][o], best_track[tr][o], tt[tr][o]
        same = g[1:] == g[:-1]
        changes = int((same & (tk[1:] != tk[:-1])).sum())
        tracked_s = float(np.diff(tm)[same].sum()) * time_unit_s
    return SiapResult(
        completeness=jt / nt if nt else 0.0,
        spuriousness=(nk - n_assoc) / nk if nk else 0.0,
        ambiguity=n_assoc / jt if jt else 1.0,
        id_changes=changes,
        id_change_rate_per_h=changes / (tracked_s / 3600.0) if tracked_s > 0 else 0.0,
        position_accuracy_m=float(dist[assoc].mean()) if n_assoc else 0.0,
        n_truth_steps=nt,
        n_track_steps=nk,
    )


def _column(t: Any, names: tuple[str, ...]) -> Any:
    for n in names:
        if isinstance(t, pa.Table):
            if n in t.column_names:
                return t.column(n).to_numpy(zero_copy_only=False)
        elif n in t:
            return np.asarray(t[n])
    raise ValidationError(f"missing column: one of {names}", hint="pass a table or dict with these columns")


def _time_us(v: Any) -> I64:
    a = np.asarray(v)
    if np.issubdtype(a.dtype, np.datetime64):
        return a.astype("datetime64[us]").astype(np.int64)
    if a.dtype == object:  # datetimes from Arrow with a time zone
        return np.array([int(x.timestamp() * _US) for x in a], dtype=np.int64) if a.size else np.zeros(0, np.int64)
    return a.astype(np.int64)


def _codes(v: Any) -> I64:
    _, inv = np.unique(np.asarray(v).astype(str), return_inverse=True)
    return inv.astype(np.int64)


def score_tracks(
    tracks_points: Any,
    truth_points: Any,
    *,
    c: float = 200.0,
    p: float = 2.0,
    association_m: float | None = None,
    time_step_s: float = 1.0,
) -> dict[str, float]:
    """GOSPA and SIAP of track points against true points (tables or dicts of columns).

    ``tracks_points`` has ``track_id, time, lon, lat``; ``truth_points`` has
    ``object_id`` (or ``truth_id``/``trip_id``), ``time, lon, lat``. Times (µs since
    the epoch, or datetimes) are compared on a grid of ``time_step_s`` seconds;
    evaluate tracks at the times the truth is sampled (e.g. the scan times). The
    SIAP association threshold defaults to ``c``.

    >>> import numpy as np
    >>> truth = {"object_id": np.array(["a", "a"]), "time": np.array([0, 20_000_000]),
    ...          "lon": np.array([-107.0, -107.001]), "lat": np.array([25.0, 25.0])}
    >>> trk = {"track_id": np.array(["t1", "t1"]), "time": np.array([0, 20_000_000]),
    ...        "lon": np.array([-107.0, -107.001]), "lat": np.array([25.0003, 25.0003])}
    >>> s = score_tracks(trk, truth, c=100.0, p=1)
    >>> round(s["gospa"], 1), s["completeness"], s["spuriousness"]
    (33.2, 1.0, 0.0)
    >>> score_tracks({k: v[:0] for k, v in trk.items()}, truth, c=100.0, p=1)["completeness"]
    0.0
    """
    k_lon, k_lat = _column(tracks_points, ("lon",)).astype(np.float64), _column(tracks_points, ("lat",))
    g_lon, g_lat = _column(truth_points, ("lon",)).astype(np.float64), _column(truth_points, ("lat",))
    k_lat, g_lat = np.asarray(k_lat, dtype=np.float64), np.asarray(g_lat, dtype=np.float64)
    step_us = max(1, round(time_step_s * _US))
    kt = np.round(_time_us(_column(tracks_points, ("time", "time_us"))) / step_us).astype(np.int64)
    gt = np.round(_time_us(_column(truth_points, ("time", "time_us"))) / step_us).astype(np.int64)
    kid = _codes(_column(tracks_points, ("track_id", "track")))
    gid = _codes(_column(truth_points, ("object_id", "truth_id", "trip_id")))
    all_lon, all_lat = np.concatenate([k_lon, g_lon]), np.concatenate([k_lat, g_lat])
    if all_lon.size:
        lon0 = float(0.5 * (all_lon.min() + all_lon.max()))
        lat0 = float(0.5 * (all_lat.min() + all_lat.max()))
        kx, ky = aeqd_forward(lon0, lat0, k_lon, k_lat)
        gx, gy = aeqd_forward(lon0, lat0, g_lon, g_lat)
    else:
        kx = ky = gx = gy = np.zeros(0)
    g = gospa(truth_time=gt, truth_x=gx, truth_y=gy, track_time=kt, track_x=kx, track_y=ky, c=c, p=p)
    s = siap(
        truth_id=gid, truth_time=gt, truth_x=gx, truth_y=gy, track_id=kid, track_time=kt, track_x=kx, track_y=ky,
        association_m=association_m if association_m is not None else c, time_unit_s=step_us / _US,
    )  # fmt: skip
    out: dict[str, float] = dict(g.summary())
    out.update(
        completeness=s.completeness,
        spuriousness=s.spuriousness,
        ambiguity=s.ambiguity,
        id_changes=float(s.id_changes),
        id_change_rate_per_h=s.id_change_rate_per_h,
        position_accuracy_m=s.position_accuracy_m,
        n_tracks=float(np.unique(kid).size),
        n_truths=float(np.unique(gid).size),
        c=float(c),
        p=float(p),
    )
    return out


def observable_truth(
    *,
    truth_id: Any,
    truth_time_us: Any,
    det_truth_id: Any,
    det_time_us: Any,
    max_gap_s: float = 120.0,
    min_detections: int = 2,
) -> npt.NDArray[np.bool_]:
    """Mask of the true points a tracker could be expected to follow: inside a detected window.

    A window of a true object runs from one of its detections to the last one
    that follows with no gap longer than ``max_gap_s``; windows with fewer than
    ``min_detections`` detections are ignored. Detections without a truth
    (false alarms) play no part.

    >>> import numpy as np
    >>> m = observable_truth(truth_id=np.array(["a"] * 5), truth_time_us=np.arange(5) * 20_000_000,
    ...                      det_truth_id=np.array(["a", "a", None]), det_time_us=np.array([20, 60, 0]) * 1_000_000)
    >>> m.tolist()
    [False, True, True, True, False]
    >>> observable_truth(truth_id=np.zeros(0), truth_time_us=np.zeros(0), det_truth_id=np.zeros(0),
    ...                  det_time_us=np.zeros(0)).size
    0
    """
    tid = np.asarray(truth_id).astype(str)
    tt = np.asarray(truth_time_us, dtype=np.int64)
    did = np.asarray(det_truth_id, dtype=object)
    dt = np.asarray(det_time_us, dtype=np.int64)
    has = np.array([v is not None and v == v for v in did], dtype=bool) if did.size else np.zeros(0, dtype=bool)
    did, dt = did[has].astype(str), dt[has]
    mask = np.zeros(tt.size, dtype=bool)
    if did.size == 0 or tt.size == 0:
        return mask
    _, inv = np.unique(np.concatenate([tid, did]), return_inverse=True)
    ti, di = inv[: tid.size], inv[tid.size :]
    o = np.lexsort((dt, di))
    di, dt = di[o], dt[o]
    new = np.ones(di.size, dtype=bool)
    new[1:] = (di[1:] != di[:-1]) | (np.diff(dt) > max_gap_s * _US)
    win = np.cumsum(new) - 1
    n_win = int(win.max()) + 1
    w_obj = di[new]
    w_start = dt[new]
    w_end = np.maximum.reduceat(dt, np.flatnonzero(new))
    w_n = np.bincount(win, minlength=n_win)
    good = w_n >= min_detections
    w_obj, w_start, w_end = w_obj[good], w_start[good], w_end[good]
    # windows of one object do not overlap: find, for each true point, the last window of its object starting before it
    wk = np.lexsort((w_start, w_obj))
    w_obj, w_start, w_end = w_obj[wk], w_start[wk], w_end[wk]
    t0 = min(int(tt.min()), int(dt.min()))
    span = max(int(tt.max()), int(dt.max())) - t0 + 1
    key_w = w_obj.astype(np.int64) * span + (w_start - t0)
    key_t = ti.astype(np.int64) * span + (tt - t0)
    pos = np.searchsorted(key_w, key_t, side="right") - 1
    ok = pos >= 0
    ok[ok] &= (w_obj[pos[ok]] == ti[ok]) & (tt[ok] <= w_end[pos[ok]])
    mask[ok] = True
    return mask


@dataclass(frozen=True, kw_only=True)
class TrackingCase:
    """Id-less detections of one sensor from a generated scenario, with the truth to score tracks against."""

    detections: pa.Table
    """``time`` (µs since the epoch), ``lon, lat, pos_err_m, truth_id`` (null for false alarms), in feed order."""
    truth: pa.Table
    """Observable true points at the scan times: ``object_id, time`` (µs), ``lon, lat`` (:func:`observable_truth`)."""


def scenario_tracking_case(scenario_dir: Any, *, sensor: str = "GMTI", max_gap_s: float = 120.0) -> TrackingCase:
    """Read a sensor's detection feed and the matching truth from a scenario written by ``atalaya scenario``.

    The truth is the true trajectories kept inside the windows where the sensor
    saw the object (:func:`observable_truth`), at the scan times (the times of
    the sensor's detections), where a tracker has states to compare.
    """
    from pathlib import Path

    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    root = Path(scenario_dir)
    files = sorted((root / "feeds" / "detections").glob(f"*_{sensor}.csv"))
    if not files:
        raise ValidationError(
            f"no {sensor} detection files under {root / 'feeds' / 'detections'}",
            hint="generate a scenario first: atalaya scenario generate --size demo --seed 1 OUT",
        )
    det_truth = pq.read_table(root / "truth" / "detections.parquet", columns=["file", "row", "truth_id"])
    parts = []
    for f in files:
        t = pcsv.read_csv(f, convert_options=pcsv.ConvertOptions(column_types={"time": pa.timestamp("us", tz="UTC")}))
        rel = f.relative_to(root).as_posix()
        sel = det_truth.filter(pc.equal(det_truth.column("file"), rel))
        truth_by_row = np.full(t.num_rows, None, dtype=object)
        rows = sel.column("row").to_numpy() - 1
        truth_by_row[rows] = np.asarray(sel.column("truth_id").to_pylist(), dtype=object)
        parts.append(
            pa.table(
                {
                    "time": pc.cast(t.column("time"), pa.int64()),
                    "lon": t.column("lon"),
                    "lat": t.column("lat"),
                    "pos_err_m": pc.cast(t.column("pos_err_m"), pa.float64()),
                    "truth_id": pa.array(truth_by_row.tolist(), type=pa.string()),
                }
            )
        )
    det = pa.concat_tables(parts)
    ids = pc.unique(pc.drop_null(det.column("truth_id")))
    truth_parts = []
    for f in sorted((root / "truth" / "tracks").glob("*.parquet")):
        tr = pq.read_table(f, columns=["trip_id", "time", "lon", "lat"])
        tr = tr.filter(pc.is_in(tr.column("trip_id"), value_set=ids))
        truth_parts.append(tr)
    if not truth_parts:
        raise ValidationError(f"no truth tracks under {root / 'truth' / 'tracks'}", hint="regenerate the scenario")
    truth = pa.concat_tables(truth_parts)
    t_us = pc.cast(truth.column("time"), pa.int64()).to_numpy()
    mask = observable_truth(
        truth_id=truth.column("trip_id").to_numpy(zero_copy_only=False),
        truth_time_us=t_us,
        det_truth_id=np.asarray(det.column("truth_id").to_pylist(), dtype=object),
        det_time_us=det.column("time").to_numpy(),
        max_gap_s=max_gap_s,
    )
    mask &= np.isin(t_us, det.column("time").to_numpy())  # compared at the scans, where tracks have states
    keep = pa.array(mask)
    truth_out = pa.table(
        {
            "object_id": truth.column("trip_id").filter(keep),
            "time": pa.array(t_us[mask], type=pa.int64()),
            "lon": truth.column("lon").filter(keep),
            "lat": truth.column("lat").filter(keep),
        }
    )
    return TrackingCase(detections=det, truth=truth_out)
