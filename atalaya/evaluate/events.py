"""Scores for event analytics: labelled events with time/distance tolerance, H3-cell IoU, border crossings.

- :func:`match_events` — one-to-one matching of predicted to true events.
  A pair is a candidate when the events share a key (e.g. an MMSI; events
  with two keys, such as rendezvous, match on either), their time intervals
  overlap once widened by ``time_tol_s`` and, when positions are given, they
  lie within ``dist_tol_m``. Pairs are taken in order of time offset (greedy,
  :func:`atalaya.geo.matching.match_pairs`). Precision, recall and F0.5
  come from :class:`atalaya.geo.matching.MatchResult`.
- :func:`cell_iou` — intersection over union of two sets of H3 cells.
- :func:`match_crossings` — crossings matched one-to-one within ``dist_m`` and
  ``time_s`` (identity is not needed: tracks and truth name objects differently).

>>> import numpy as np
>>> m = match_events(pred_key=np.array(["a", "b"]), pred_start=np.array([0, 0]), pred_end=np.array([10, 10]),
...                  true_key=np.array(["a"]), true_start=np.array([5]), true_end=np.array([20]), time_tol_s=0)
>>> m.tp, m.fp, m.fn, round(m.f05, 3)
(1, 1, 0, 0.556)
>>> e = np.array([], dtype=np.int64)
>>> match_events(pred_key=e, pred_start=e, pred_end=e, true_key=e, true_start=e, true_end=e, time_tol_s=0).f05
1.0
>>> cell_iou([1, 2, 3], [2, 3, 4]), cell_iou([], [])
(0.5, 1.0)
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import numpy.typing as npt

from atalaya.core.errors import ValidationError
from atalaya.geo.kernels import geodesic_distance
from atalaya.geo.matching import MatchResult, match_pairs

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: a trip is part of a track's corridor truth when it supplies this share of the track's attributed
#: observations, or this many of them (:func:`track_true_paths`)
MIN_TRIP_SHARE = 0.1
MIN_TRIP_OBS = 20


def _keys(k: Any, n: int, name: str) -> npt.NDArray[Any]:
    """Keys as a 2-D string array ``(n, m)``; '' = no key."""
    a = np.asarray(k, dtype=object)
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    if a.shape[0] != n:
        raise ValidationError(
            f"{name} has {a.shape[0]} rows for {n} events", hint="pass one key (or one row of keys) per event"
        )
    out: npt.NDArray[Any] = np.where(a == None, "", a).astype(str)  # noqa: E711 - elementwise test for missing keys
    return out


def match_events(
    *,
    pred_key: Any,
    pred_start: Any,
    pred_end: Any,
    true_key: Any,
    true_start: Any,
    true_end: Any,
    time_tol_s: float,
    pred_lon: Any = None,
    pred_lat: Any = None,
    true_lon: Any = None,
    true_lat: Any = None,
    dist_tol_m: float | None = None,
) -> MatchResult:
    """Match predicted events to labelled ones one-to-one (see the module docs).

    Times are in any one unit (seconds or µs) shared by starts, ends and
    ``time_tol_s`` scaled accordingly: pass seconds for both to be safe.
    Keys are one per event or an ``(n, m)`` array (e.g. both vessels of a
    rendezvous); empty or ``None`` keys never match. ``distance_m`` of the
    result holds the positional distance when positions are given, else the
    time offset (start and end differences summed).

    >>> m = match_events(pred_key=[["a", "b"]], pred_start=[100], pred_end=[200], true_key=[["c", "b"]],
    ...                  true_start=[250], true_end=[300], time_tol_s=60, pred_lon=[0.0], pred_lat=[0.0],
    ...                  true_lon=[0.0], true_lat=[0.01], dist_tol_m=5_000)
    >>> m.tp, round(float(m.distance_m[0]))
    (1, 1106)
    """
    ps = np.asarray(pred_start, dtype=np.float64).ravel()
    pe = np.asarray(pred_end, dtype=np.float64).ravel()
    ts = np.asarray(true_start, dtype=np.float64).ravel()
    te = np.asarray(true_end, dtype=np.float64).ravel()
    npred, ntrue = ps.size, ts.size
    pk = _keys(pred_key, npred, "pred_key")
    tk = _keys(true_key, ntrue, "true_key")
    # candidate pairs by shared key: join on each key column pair
    pi_l: list[I64] = []
    tj_l: list[I64] = []
    for a in range(pk.shape[1] if npred else 0):
        for b in range(tk.shape[1] if ntrue else 0):
            order = np.argsort(tk[:, b], kind="stable")
            sk = tk[order, b]
            lo = np.searchsorted(sk, pk[:, a], side="left")
            hi = np.searchsorted(sk, pk[:, a], side="right")
            cnt = np.where(pk[:, a] == "", 0, hi - lo)
            tot = int(cnt.sum())
            if tot == 0:
                continue
            pi_l.append(np.repeat(np.arange(npred), cnt))
            tj_l.append(order[np.repeat(lo - np.cumsum(np.r_[0, cnt[:-1]]), cnt) + np.arange(tot)])
    if pi_l:
        pairs = np.unique(np.column_stack([np.concatenate(pi_l), np.concatenate(tj_l)]), axis=0)
        i, j = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    else:
        i = j = np.zeros(0, np.int64)
    ok = (ps[i] <= te[j] + time_tol_s) & (ts[j] <= pe[i] + time_tol_s)
    i, j = i[ok], j[ok]
    cost = np.abs(ps[i] - ts[j]) + np.abs(pe[i] - te[j])
    if pred_lon is not None and true_lon is not None:
        if dist_tol_m is None:
            raise ValidationError("positions given without dist_tol_m", hint="pass dist_tol_m, e.g. 5000")
        d = geodesic_distance(
            np.asarray(pred_lon, np.float64)[i], np.asarray(pred_lat, np.float64)[i],
            np.asarray(true_lon, np.float64)[j], np.asarray(true_lat, np.float64)[j],
        )  # fmt: skip
        near = d <= dist_tol_m
        i, j, d, cost = i[near], j[near], d[near], cost[near]
        sel = match_pairs(i, j, cost)
        dist = d[sel]
    else:
        sel = match_pairs(i, j, cost)
        dist = cost[sel]
    order = np.argsort(i[sel], kind="stable")
    return MatchResult(
        pred_index=i[sel][order], true_index=j[sel][order], distance_m=dist[order], n_pred=npred, n_true=ntrue
    )


def cell_iou(pred_cells: Any, true_cells: Any) -> float:
    """Intersection over union of two cell sets (1.0 when both are empty).

    >>> cell_iou(np.array([10, 11]), np.array([11]))
    0.5
    """
    a = np.unique(np.asarray(pred_cells).ravel())
    b = np.unique(np.asarray(true_cells).ravel())
    union = np.union1d(a, b).size
    return float(np.intersect1d(a, b).size / union) if union else 1.0


def match_crossings(
    pred_lon: Any,
    pred_lat: Any,
    pred_time_s: Any,
    true_lon: Any,
    true_lat: Any,
    true_time_s: Any,
    *,
    dist_m: float = 2_000.0,
    time_s: float = 1_800.0,
) -> MatchResult:
    """Crossings matched one-to-one within ``dist_m`` and ``time_s`` (nearest in time first).

    >>> m = match_crossings([-106.45, -100.0], [31.76, 28.7], [0.0, 0.0], [-106.451], [31.76], [600.0])
    >>> m.tp, m.fp, m.fn, m.recall
    (1, 1, 0, 1.0)
    >>> match_crossings([], [], [], [], [], []).recall
    1.0
    """
    from atalaya.geo.matching import candidate_pairs

    px = np.asarray(pred_lon, np.float64).ravel()
    tx = np.asarray(true_lon, np.float64).ravel()
    pt = np.asarray(pred_time_s, np.float64).ravel()
    tt = np.asarray(true_time_s, np.float64).ravel()
    i, j, d = candidate_pairs(px, pred_lat, tx, true_lat, radius_m=dist_m)
    dt = np.abs(pt[i] - tt[j])
    ok = dt <= time_s
    i, j, d, dt = i[ok], j[ok], d[ok], dt[ok]
    sel = match_pairs(i, j, dt)
    order = np.argsort(i[sel], kind="stable")
    return MatchResult(
        pred_index=i[sel][order], true_index=j[sel][order], distance_m=d[sel][order], n_pred=px.size, n_true=tx.size
    )


# --------------------------------------------------------------------------- scenario scores

_US = 1_000_000


def _us(col: Any) -> npt.NDArray[np.int64]:
    """Timestamps (Arrow timestamp or int µs column) as int µs."""
    import pyarrow as pa

    if isinstance(col, pa.ChunkedArray | pa.Array) and pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    out: npt.NDArray[np.int64] = np.asarray(col, dtype=np.int64)
    return out


def score_dark_gaps(pred: Any, truth: Any, *, time_tol_s: float = 1800.0) -> MatchResult:
    """Detected dark gaps (:func:`atalaya.fusion.maritime.detect_dark_gaps`) against ``truth/dark_gaps.parquet``.

    Same MMSI, and start and end each within ``time_tol_s`` of the labelled ones.
    """
    m = match_events(
        pred_key=pred.column("vessel").to_pylist(), pred_start=_us(pred.column("start_us")) / _US,
        pred_end=_us(pred.column("end_us")) / _US, true_key=[str(v) for v in truth.column("mmsi").to_pylist()],
        true_start=_us(truth.column("start")) / _US, true_end=_us(truth.column("end")) / _US, time_tol_s=time_tol_s,
    )  # fmt: skip
    ps, pe = _us(pred.column("start_us"))[m.pred_index] / _US, _us(pred.column("end_us"))[m.pred_index] / _US
    ts, te = _us(truth.column("start"))[m.true_index] / _US, _us(truth.column("end"))[m.true_index] / _US
    ok = (np.abs(ps - ts) <= time_tol_s) & (np.abs(pe - te) <= time_tol_s)
    return MatchResult(pred_index=m.pred_index[ok], true_index=m.true_index[ok], distance_m=m.distance_m[ok],
                       n_pred=m.n_pred, n_true=m.n_true)  # fmt: skip


def score_rendezvous(
    pred: Any, truth: Any, *, time_tol_s: float = 3600.0, dist_tol_m: float = 5_000.0
) -> MatchResult:  # fmt: skip
    """Detected meetings against ``truth/rendezvous.parquet``: a shared MMSI, overlap within ``time_tol_s``,
    position within ``dist_tol_m``."""
    pk = np.column_stack([pred.column("vessel_a").to_pylist(), pred.column("vessel_b").to_pylist()]) if (
        pred.num_rows) else np.zeros((0, 2), dtype=object)  # fmt: skip
    tk = np.column_stack([[str(v) for v in truth.column("mmsi_a").to_pylist()],
                          [str(v) for v in truth.column("mmsi_b").to_pylist()]]) if truth.num_rows else np.zeros(
        (0, 2), dtype=object)  # fmt: skip
    return match_events(
        pred_key=pk, pred_start=_us(pred.column("start_us")) / _US, pred_end=_us(pred.column("end_us")) / _US,
        true_key=tk, true_start=_us(truth.column("start")) / _US, true_end=_us(truth.column("end")) / _US,
        time_tol_s=time_tol_s, pred_lon=pred.column("lon").to_numpy(), pred_lat=pred.column("lat").to_numpy(),
        true_lon=truth.column("lon").to_numpy(), true_lat=truth.column("lat").to_numpy(), dist_tol_m=dist_tol_m,
    )  # fmt: skip


def score_crossings(pred: Any, truth: Any, *, dist_m: float = 2_000.0, time_s: float = 1_800.0) -> MatchResult:
    """Detected crossings (:func:`atalaya.fusion.corridors.border_crossings`) against ``truth/crossings.parquet``."""
    return match_crossings(
        pred.column("lon").to_numpy(), pred.column("lat").to_numpy(), _us(pred.column("time_us")) / _US,
        truth.column("lon").to_numpy(), truth.column("lat").to_numpy(), _us(truth.column("time")) / _US,
        dist_m=dist_m, time_s=time_s,
    )  # fmt: skip


OBSERVABLE_WINDOW_S = 600.0
"""A crossing is observable when its object was observed within this time before it and within it after it …"""
OBSERVABLE_RADIUS_M = 5_000.0
"""… each time within this distance of the crossing point (see :func:`observable_crossings`)."""


def _us_arrow(col: Any) -> Any:
    """Timestamps as an Arrow int64 µs column."""
    import pyarrow as pa

    return col.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()) if pa.types.is_timestamp(col.type) else col


def truth_observations(truth_dir: Any, objects: Any = None) -> Any:
    """What the collection actually saw of each true object: ``object_id, time_s, lon, lat, how``.

    Two kinds of observation, both read from the scenario's own output:

    - ``report``: a true track sample (``truth/tracks``) at which the object
      broadcast on a feed (AIS, ADS-B or CoT: ``ident`` is set there);
    - ``detection``: a sensor detection attributed to the object by
      ``truth/detections.parquet`` (GMTI, EO, radar …), at the detection's
      reported time and position (read from ``feeds/detections`` beside
      ``truth/``; skipped when the feeds are not there).

    ``object_id`` is the trip id (as in ``truth/crossings.parquet``);
    ``objects`` (ids) restricts the result to those objects.
    """
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    truth = Path(truth_dir)
    schema = pa.schema(
        [("object_id", pa.string()), ("time_s", pa.float64()), ("lon", pa.float64()), ("lat", pa.float64()),
         ("how", pa.string())]
    )  # fmt: skip
    want = None if objects is None else pa.array(sorted({str(o) for o in objects}), pa.string())
    parts: list[pa.Table] = []

    def part(oid: Any, t_us: Any, lon: Any, lat: Any, how: str) -> pa.Table:
        n = len(oid)
        cols = [oid, pc.divide(t_us.cast(pa.float64()), 1e6), lon, lat, pa.array([how] * n, pa.string())]
        return pa.Table.from_arrays(cols, names=schema.names).cast(schema)

    for f in sorted((truth / "tracks").glob("*.parquet")):
        tb = pq.read_table(f, columns=["trip_id", "time", "lon", "lat", "ident"])
        keep = pc.invert(pc.is_null(tb.column("ident")))
        if want is not None:
            keep = pc.and_(keep, pc.is_in(tb.column("trip_id"), want))
        tb = tb.filter(keep)
        parts.append(part(tb.column("trip_id"), _us_arrow(tb.column("time")), tb.column("lon"), tb.column("lat"),
                          "report"))  # fmt: skip
    det_path = truth / "detections.parquet"
    if det_path.exists():
        det = pq.read_table(det_path)
        det = det.filter(pc.invert(pc.is_null(det.column("truth_id"))))
        if want is not None:
            det = det.filter(pc.is_in(det.column("truth_id"), want))
        opts = pcsv.ConvertOptions(include_columns=["time", "lon", "lat"],
                                   column_types={"time": pa.timestamp("us", tz="UTC")})  # fmt: skip
        for rel in sorted(set(det.column("file").to_pylist())):
            src = truth.parent / str(rel)
            if not src.exists():
                continue
            sub = det.filter(pc.equal(det.column("file"), rel))
            rows = pcsv.read_csv(src, convert_options=opts).take(pc.subtract(sub.column("row"), 1))
            parts.append(part(sub.column("truth_id"), _us_arrow(rows.column("time")), rows.column("lon"),
                              rows.column("lat"), "detection"))  # fmt: skip
    return pa.concat_tables(parts) if parts else schema.empty_table()


def observable_crossings(
    crossings: Any,
    observations: Any,
    *,
    window_s: float = OBSERVABLE_WINDOW_S,
    radius_m: float = OBSERVABLE_RADIUS_M,
) -> npt.NDArray[np.bool_]:
    """Which true crossings the collection could have seen: observed on both sides, close in time and space.

    A crossing of object ``o`` at time ``t`` and point ``p`` is *observable*
    when ``observations`` (:func:`truth_observations`) hold a sighting of
    ``o`` in ``[t - window_s, t]`` and one in ``[t, t + window_s]``, each
    within ``radius_m`` of ``p``. A sighting at ``t`` itself (the crossing
    under a sensor footprint or broadcast at the line) counts for both sides.
    ``crossings`` needs ``object_id``, ``time``, ``lon`` and ``lat``.

    >>> import pyarrow as pa
    >>> x = pa.table({"object_id": ["a", "b"], "time": pa.array([600_000_000, 600_000_000], pa.int64()),
    ...               "lon": [-106.45, -106.45], "lat": [31.76, 31.76]})
    >>> o = pa.table({"object_id": ["a", "a", "b"], "time_s": [300.0, 900.0, 300.0],
    ...               "lon": [-106.45, -106.45, -106.45], "lat": [31.74, 31.78, 31.74]})
    >>> observable_crossings(x, o).tolist()
    [True, False]
    """
    n = crossings.num_rows
    out = np.zeros(n, dtype=bool)
    if n == 0 or observations.num_rows == 0:
        return out
    codes, uniq = np.unique(
        np.r_[np.asarray(crossings.column("object_id").to_pylist(), dtype=str),
              np.asarray(observations.column("object_id").to_pylist(), dtype=str)],
        return_inverse=True,
    )  # fmt: skip
    del codes
    xc, oc = uniq[:n], uniq[n:]
    ot = observations.column("time_s").to_numpy().astype(np.float64)
    order = np.lexsort((ot, oc))
    oc, ot = oc[order], ot[order]
    ox = observations.column("lon").to_numpy()[order]
    oy = observations.column("lat").to_numpy()[order]
    key = oc.astype(np.float64) * 1e12 + ot  # object, then time (times < 1e11 s)
    xt = _us(crossings.column("time")) / _US
    xx = crossings.column("lon").to_numpy()
    xy = crossings.column("lat").to_numpy()
    lo = np.searchsorted(key, xc * 1e12 + xt - window_s, side="left")
    hi = np.searchsorted(key, xc * 1e12 + xt + window_s, side="right")
    for i in np.flatnonzero(hi > lo).tolist():
        sl = slice(int(lo[i]), int(hi[i]))
        near = geodesic_distance(ox[sl], oy[sl], np.full(hi[i] - lo[i], xx[i]), np.full(hi[i] - lo[i], xy[i]))
        ok = near <= radius_m
        out[i] = bool(np.any(ok & (ot[sl] <= xt[i])) and np.any(ok & (ot[sl] >= xt[i])))
    return out


def track_true_paths(
    track_id: Any,
    obs_track: Any,
    obs_trip: Any,
    obs_time_us: Any,
    truth_trip: Any,
    truth_object: Any,
    truth_time_us: Any,
    truth_lon: Any,
    truth_lat: Any,
    *,
    min_share: float = MIN_TRIP_SHARE,
    min_obs: int = MIN_TRIP_OBS,
) -> tuple[npt.NDArray[Any], I64, I64, F64, F64]:
    """The true paths behind each track: every trip it follows, over the time it follows it.

    ``track_id`` names the tracks to cover; ``obs_track``/``obs_trip``/
    ``obs_time_us`` attribute the observations behind the tracks to true trips
    (one row per observation; an empty or null trip is an unattributed
    observation, e.g. a false alarm); ``truth_*`` are the dense true samples,
    with each trip's object. A track *follows* every trip that supplies at
    least ``min_share`` of its attributed observations or at least ``min_obs``
    of them. Those trips make its true paths: one per object, consecutive trips
    of the object chained (a vessel across midnight), a trip that overlaps the
    previous one in time starting a new path; each path runs from the first to
    the last observation its trips supply. The result, ``(track id, path, time
    µs, lon, lat)``, holds the ``truth_*`` samples of the paths' trips within
    the paths' spans, ``path`` numbering the paths of all tracks. Tracks
    without an attributed observation have none.

    Why trips, a union, and paths:

    - trips, not objects: an object may make several movements at once (the
      scenario flies concurrent flights under one aircraft object and ICAO
      address); the object's samples over the track's span would add flights
      the track never followed;
    - a union, not the majority trip: one movement may be several trips in a
      row (a vessel gets a new trip every day, a week-long track follows
      seven, a seventh each; keeping only trips with half a track's
      observations left no true vessel corridor on dev seed 61: IoU 0), and a
      track that switches objects follows each for a while. The share and
      count floors leave out trips that lend a track a stray observation or
      two (a mis-associated detection); the count floor keeps a trip followed
      at length by a long track (a vessel tracked for weeks: a day's share is
      small);
    - each path over the time the track follows it, not the track's whole
      span: an object followed for an hour of a day-long track contributes an
      hour (over the whole span, vehicles 0.86 and vessels 0.66 on dev seed
      61, against 0.94 and 0.79);
    - separate paths: one id over two simultaneous paths would jump between
      them at every sample, and the corridor analytic would fill each jump
      with the cells between them (all trips over the track's span under the
      track's id: vessels 0.13 on dev seed 61).

    >>> tid, path, t, x, y = track_true_paths(
    ...     ["a", "b"], ["a", "a", "a", "b", "b"], ["o1-d0", "o1-d1", "o2-d0", "", ""], [10, 30, 20, 10, 20],
    ...     ["o1-d0"] * 3 + ["o1-d1"] * 2 + ["o2-d0"] * 2, ["o1"] * 5 + ["o2"] * 2,
    ...     [0, 10, 20, 30, 40, 15, 20], [0.0, 1.0, 2.0, 3.0, 4.0, 9.0, 9.5], [0.0] * 7)
    >>> tid.tolist(), path.tolist(), t.tolist(), x.tolist()
    (['a', 'a', 'a', 'a'], [0, 0, 0, 1], [10, 20, 30, 20], [1.0, 2.0, 3.0, 9.5])
    """
    from atalaya.fusion.corridors import unique_rows

    big, small = np.iinfo(np.int64).max, np.iinfo(np.int64).min

    def key(x: Any) -> npt.NDArray[Any]:  # integer codes as they are (no text per row), anything else as text
        a = np.asarray(x).ravel()
        return a.astype(np.int64) if np.issubdtype(a.dtype, np.integer) else a.astype(str)

    tracks = np.unique(key(track_id))
    otr = key(obs_track)
    otp_raw = np.asarray(obs_trip)
    if np.issubdtype(otp_raw.dtype, np.integer):  # integer trip codes: negative for an unattributed observation
        otp: npt.NDArray[Any] = otp_raw.astype(np.int64).ravel()
        attributed = otp >= 0
    else:
        otp = np.asarray(obs_trip, dtype=object).ravel()
        otp = np.where(np.equal(otp, np.array(None, dtype=object)), "", otp).astype(str)
        attributed = otp != ""
    ot = np.asarray(obs_time_us, dtype=np.int64).ravel()
    gtr = key(truth_trip)
    gob = key(truth_object)
    gt = np.asarray(truth_time_us, dtype=np.int64).ravel()
    gx = np.asarray(truth_lon, dtype=np.float64).ravel()
    gy = np.asarray(truth_lat, dtype=np.float64).ravel()
    z = np.zeros(0, np.int64)
    empty = (np.zeros(0, dtype=tracks.dtype), z, z, np.zeros(0), np.zeros(0))
    if tracks.size == 0 or gtr.size == 0:
        return empty
    trips, trcode = np.unique(np.r_[otp, gtr], return_inverse=True)
    trcode = trcode.ravel().astype(np.int64)
    a_trip, g_trip = trcode[: otp.size], trcode[otp.size :]
    # each trip's object and span (a trip code without truth samples keeps object -1 and is never followed)
    t_lo, t_hi = np.full(trips.size, big), np.full(trips.size, small)
    np.minimum.at(t_lo, g_trip, gt)
    np.maximum.at(t_hi, g_trip, gt)
    t_obj = np.full(trips.size, -1, np.int64)
    t_obj[g_trip] = np.unique(gob, return_inverse=True)[1].ravel()
    # observations per (track, trip), with their span; unattributed ones count for no trip and in no share
    a_trk = np.searchsorted(tracks, otr)
    ok = (a_trk < tracks.size) & attributed
    ok[ok] &= tracks[np.minimum(a_trk[ok], tracks.size - 1)] == otr[ok]
    pairs, pinv, n_pair = unique_rows(a_trk[ok].astype(np.int64), a_trip[ok])
    if len(pairs) == 0:
        return empty
    p_lo, p_hi = np.full(len(pairs), big), np.full(len(pairs), small)
    np.minimum.at(p_lo, pinv, ot[ok])
    np.maximum.at(p_hi, pinv, ot[ok])
    n_track = np.bincount(pairs[:, 0], weights=n_pair, minlength=tracks.size)
    keep = (n_pair >= min_share * n_track[pairs[:, 0]]) | (n_pair >= min_obs)
    keep &= t_obj[pairs[:, 1]] >= 0
    # paths: per track and object, trips in order of start; a trip overlapping the previous one starts a path
    p_trk, p_trip, p_lo, p_hi = pairs[keep, 0], pairs[keep, 1], p_lo[keep], p_hi[keep]
    o = np.lexsort((t_lo[p_trip], t_obj[p_trip], p_trk))
    p_trk, p_trip, p_lo, p_hi = p_trk[o], p_trip[o], p_lo[o], p_hi[o]
    new = np.ones(p_trk.size, dtype=bool)
    new[1:] = (p_trk[1:] != p_trk[:-1]) | (t_obj[p_trip[1:]] != t_obj[p_trip[:-1]])
    new[1:] |= t_lo[p_trip[1:]] <= t_hi[p_trip[:-1]]
    p_path = np.cumsum(new) - 1
    # a path's span runs from its first to its last observation, across the midnights between its trips
    starts = np.flatnonzero(new)
    p_lo = np.minimum.reduceat(p_lo, starts)[p_path]
    p_hi = np.maximum.reduceat(p_hi, starts)[p_path]
    # (trip, time) keys on a shared time rank, so that one int64 sort serves all (track, trip) spans
    ranks, rinv = np.unique(np.r_[gt, p_lo, p_hi], return_inverse=True)
    rinv = rinv.ravel().astype(np.int64)
    nr, m = ranks.size, p_trk.size
    gkey = g_trip * nr + rinv[: gt.size]
    order = np.argsort(gkey, kind="stable")
    gkey = gkey[order]
    lo = np.searchsorted(gkey, p_trip * nr + rinv[gt.size : gt.size + m], side="left")
    hi = np.searchsorted(gkey, p_trip * nr + rinv[gt.size + m :], side="right")
    cnt = hi - lo
    take = order[np.repeat(lo - np.cumsum(np.r_[0, cnt[:-1]]), cnt) + np.arange(int(cnt.sum()))]
    return tracks[np.repeat(p_trk, cnt)], np.repeat(p_path, cnt), gt[take], gx[take], gy[take]


EVAL_MEMORY_LIMIT = "4GB"
"""Memory DuckDB may take for the attribution joins of :func:`track_objects` before it spills to disk."""


def track_objects(ws: Any, truth_dir: Any) -> Any:
    """``track_id, object_id, time_us`` per observation behind the workspace's tracks (``analysis/tracks``).

    ``object_id`` is the true object's trip id (``trip_id`` of ``truth/tracks``,
    ``truth_id`` of ``truth/detections.parquet``): one physical movement. Feed
    reports with an identifier (AIS, ADS-B, CoT) are reports of a true sample,
    so they are attributed by identifier (``ident_kind``, ``ident``) and time;
    where several trips share the identifier at that time (aircraft flying the
    same call sign at once), the one nearest to the report. Sensor detections
    are attributed by ``truth/detections.parquet`` (feed file and row, the row
    being the lake's ``src_rec``). Other observations get a null object.
    """
    import tempfile
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    from atalaya.fusion import corridors as co
    from atalaya.store.lake import Lake

    truth = Path(truth_dir)
    out_schema = pa.schema([("track_id", pa.string()), ("object_id", pa.string()), ("time_us", pa.int64())])
    files = sorted(co.tracks_dir(ws).glob("*.parquet")) if co.tracks_dir(ws).exists() else []
    files = [f for f in files if {"obs_id", "track_id"} <= set(pq.read_schema(f).names)]
    if not files:
        return out_schema.empty_table()
    true_files = sorted((truth / "tracks").glob("*.parquet"))
    det_path = truth / "detections.parquet"
    det = (
        pq.read_table(det_path, columns=["file", "row", "truth_id"])
        if det_path.exists()
        else pa.table(
            {"file": pa.array([], pa.string()), "row": pa.array([], pa.int64()), "truth_id": pa.array([], pa.string())}
        )
    )
    con = Lake(ws.lake_dir).connect()
    spill = tempfile.TemporaryDirectory(prefix="atalaya-eval-")
    try:
        # the true samples are read by DuckDB from their files, and the joins spill to disk past a few GB: a long
        # scenario's truth (tens of millions of samples) joined in memory took more than 20 GB
        con.execute(f"SET memory_limit = '{EVAL_MEMORY_LIMIT}'")
        con.execute("SET temp_directory = '" + spill.name.replace("'", "''") + "'")
        true_list = ", ".join("'" + str(f).replace("'", "''") + "'" for f in true_files)
        con.execute(
            "CREATE TEMP VIEW truth_tracks AS SELECT trip_id, ident, ident_kind, time, lon, lat "
            f"FROM read_parquet([{true_list}], union_by_name = true)"
            if true_files
            else "CREATE TEMP VIEW truth_tracks AS SELECT NULL::VARCHAR AS trip_id, NULL::VARCHAR AS ident, "
            "NULL::VARCHAR AS ident_kind, NULL::TIMESTAMPTZ AS time, NULL::DOUBLE AS lon, NULL::DOUBLE AS lat "
            "WHERE false"
        )
        con.register("det", det)
        file_list = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
        con.execute(
            "CREATE TEMP TABLE tobs AS SELECT CAST(t.track_id AS VARCHAR) AS track_id, o.obs_id, "
            "CAST(o.ident_kind AS VARCHAR) AS ident_kind, o.ident, epoch_us(o.time) AS time_us, o.lon, o.lat, "
            f"o.src_file, o.src_rec FROM read_parquet([{file_list}], union_by_name = true) t "
            "JOIN observations o USING (obs_id)"
        )
        # feed files as the lake saw them (absolute paths) ↔ as the truth names them (relative to the scenario)
        srcs = [str(r[0]) for r in con.execute("SELECT DISTINCT src_file FROM tobs WHERE ident IS NULL").fetchall()]
        rel = sorted({str(f) for f in det.column("file").to_pylist()})
        pairs = [(s, r) for s in srcs for r in rel if s == r or s.replace("\\", "/").endswith("/" + r)]
        con.register("fmap", pa.table({"src_file": pa.array([p[0] for p in pairs], pa.string()),
                                       "file": pa.array([p[1] for p in pairs], pa.string())}))  # fmt: skip
        res = con.sql(
            "WITH rep AS (SELECT b.obs_id, g.trip_id FROM tobs b JOIN truth_tracks g "
            "ON b.ident = g.ident AND b.ident_kind = CAST(g.ident_kind AS VARCHAR) AND b.time_us = epoch_us(g.time) "
            "QUALIFY row_number() OVER (PARTITION BY b.obs_id ORDER BY (b.lon - g.lon) ^ 2 + (b.lat - g.lat) ^ 2, "
            "g.trip_id) = 1) "
            "SELECT b.track_id, COALESCE(r.trip_id, d.truth_id) AS object_id, b.time_us FROM tobs b "
            "LEFT JOIN rep r ON r.obs_id = b.obs_id "
            "LEFT JOIN fmap f ON b.ident IS NULL AND b.src_file = f.src_file "
            "LEFT JOIN det d ON d.file = f.file AND d.row = b.src_rec"
        ).to_arrow_table()
    finally:
        con.close()
        spill.cleanup()
    return res.cast(out_schema)


CORRIDOR_BUCKET_ROWS = 4_000_000
"""Track points of one kind scored at a time by :func:`score_corridors` (buckets of whole tracks)."""


def score_corridors(
    pts: Any, truth_tracks: Any, attribution: Any, *, bucket_rows: int = CORRIDOR_BUCKET_ROWS, params: Any = None
) -> dict[str, float]:
    """Corridor H3-cell IoU per object kind: the tracks' corridors vs the same tracks' true paths
    (:func:`corridor_cells`)."""
    cells = corridor_cells(pts, truth_tracks, attribution, bucket_rows=bucket_rows, params=params)
    return {kind: round(cell_iou(p, t), 4) for kind, (p, t) in cells.items()}


def corridor_cells(
    pts: Any, truth_tracks: Any, attribution: Any, *, bucket_rows: int = CORRIDOR_BUCKET_ROWS, params: Any = None
) -> dict[str, tuple[I64, I64]]:
    """The corridor cells per object kind of the tracks and of the same tracks' true paths (``params``: the
    corridor analytic's :class:`~atalaya.fusion.corridors.CorridorParams`, its defaults when not given).

    ``pts`` are the track points the corridor analytic reads
    (:func:`atalaya.fusion.corridors.load_track_points`: ``track_id, kind,
    time_us, lon, lat``), ``truth_tracks`` the scenario's ``truth/tracks``
    (``object_id, trip_id, time, lon, lat``), or a function that reads the
    samples of the trips it is given (then each kind's are read in turn, not
    all held at once), and ``attribution`` the trip
    behind each track observation (:func:`track_objects`). Both corridor sets
    come from :func:`atalaya.fusion.corridors.corridor_flows` with its default
    settings: one over the observed positions, one over
    :func:`track_true_paths`, i.e. each track replaced by the dense true paths
    of the trips it follows (every trip that supplies a tenth of its attributed
    observations, or 20 of them), over the time it follows them.

    Like is compared with like: the same objects (every track counts, the
    identified ones and the id-less GMTI/radar ones alike, and only they), the
    same spans (an object seen for ten minutes contributes ten minutes of
    truth, not its whole trip) and the same movements (a trip, not the object:
    the scenario flies concurrent flights under one aircraft object and ICAO
    address, and a track of one of them is not scored against the others;
    consecutive daily trips of a vessel followed across midnight all count).
    A cell's volume is distinct tracks on the observed side and distinct true
    paths on the other, which differ only where one track follows two objects
    through the same cell. The score thus measures what the analytic makes of
    the observed positions — noise, sparse sampling filled along the H3 grid,
    gaps, tracks that jump between objects — not which objects the collection
    happened to see. (Comparing all tracks against the true paths of the
    identified objects only, as before, counted the id-less tracks of
    background traffic as false corridor cells: vehicle IoU 0.55 on ``small``
    seed 53, where 263 of 301 vehicle tracks are GMTI tracks of objects
    outside that truth. Scoring each track against its majority *object* over
    its span gave aircraft 0.24–0.44 on seeds 41–43/51–53: the other flights
    of the object, and the jumps between them under one id, counted as true
    corridor cells.)
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from atalaya.fusion import corridors as co
    from atalaya.store.lake import bucket_count

    cp = params or co.CorridorParams()
    # only the trips some observation behind a track is attributed to can be followed: the rest of the truth is
    # left out first; ids then become integer codes, one code space per kind of id (tens of millions of
    # observations and samples must not each hold a Python string)
    read_truth = truth_tracks if callable(truth_tracks) else None
    if read_truth is None:
        followed = pc.unique(attribution.column("object_id").drop_null())
        keep = _member(truth_tracks.column("trip_id"), followed)
        if not pc.all(keep).as_py():  # (a copy of tens of millions of samples only when some are not followed)
            truth_tracks = truth_tracks.filter(keep)
    text = pa.dictionary(pa.int32(), pa.string())

    def dictionary(col: Any) -> list[Any]:  # chunks of ids as dictionaries, a null as ""
        c = col if pa.types.is_dictionary(col.type) else pc.dictionary_encode(col.cast(pa.string()))
        out = []
        for ch in c.cast(text).chunks:
            if ch.null_count:
                d = pa.concat_arrays([ch.dictionary, pa.array([""], pa.string())])
                ch = pa.DictionaryArray.from_arrays(ch.indices.fill_null(len(d) - 1), d)
            out.append(ch)
        return out

    out: dict[str, tuple[I64, I64]] = {}
    # one kind at a time, with the observations behind its tracks and the truth of the trips they are attributed
    # to (a track follows no other trip); within a kind, a bucket of tracks at a time: what corridors need of a
    # bucket is each track's (each true path's) distinct cells and steps, numbered apart across buckets
    for kind in co.TRACK_KINDS:
        pk = pts.filter(pc.equal(pts.column("kind"), kind))
        att = attribution.filter(_member(attribution.column("track_id"), pc.unique(pk.column("track_id"))))
        trip_col = att.column("object_id")
        trips = pc.unique(trip_col).drop_null()
        tk = read_truth(trips) if read_truth else truth_tracks.filter(_member(truth_tracks.column("trip_id"), trips))
        trk_codes, _ = co.as_codes(pa.chunked_array([*dictionary(pk.column("track_id")),
                                                     *dictionary(att.column("track_id"))], text))  # fmt: skip
        trip_null = np.asarray(trip_col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        trip_codes, _ = co.as_codes(pa.chunked_array([*dictionary(trip_col),
                                                      *dictionary(tk.column("trip_id"))], text))  # fmt: skip
        n_p, n_att = len(pk), len(trip_col)
        p_trk, a_trk = trk_codes[:n_p], trk_codes[n_p:]
        a_trip, g_trip = np.where(trip_null, -1, trip_codes[:n_att]), trip_codes[n_att:]
        p_t, p_x, p_y = pk.column("time_us").to_numpy(), pk.column("lon").to_numpy(), pk.column("lat").to_numpy()
        a_t = att.column("time_us").to_numpy()
        g_obj = co.as_codes(tk.column("object_id"))[0]
        g_t, g_x, g_y = _us(tk.column("time")), tk.column("lon").to_numpy(), tk.column("lat").to_numpy()
        del pk, att, tk, trk_codes, trip_codes, trip_col, trip_null
        k = bucket_count(n_p, bucket_rows)
        obs: list[tuple[I64, I64, I64, I64, I64]] = []
        true: list[tuple[I64, I64, I64, I64, I64]] = []
        for bk in range(k):
            ip = p_trk % k == bk if k > 1 else np.ones(n_p, dtype=bool)
            ia = a_trk % k == bk if k > 1 else np.ones(a_trk.size, dtype=bool)
            ig = np.isin(g_trip, np.unique(a_trip[ia & (a_trip >= 0)])) if k > 1 else np.ones(g_trip.size, bool)
            obs.append(co.visits_steps(p_trk[ip], p_t[ip], p_x[ip], p_y[ip], cp, distinct=True))
            _, path, tt, tx, ty = track_true_paths(p_trk[ip], a_trk[ia], a_trip[ia], a_t[ia], g_trip[ig], g_obj[ig],
                                                   g_t[ig], g_x[ig], g_y[ig])  # fmt: skip
            true.append(co.visits_steps(path, tt, tx, ty, cp, distinct=True))
            del ip, ia, ig, path, tt, tx, ty
        pf = co.flows_of_parts(obs, cp)
        tf = co.flows_of_parts(true, cp)
        p_cells = pf.cells.filter(pc.greater_equal(pf.cells.column("corridor"), 0)).column("cell")
        t_cells = tf.cells.filter(pc.greater_equal(tf.cells.column("corridor"), 0)).column("cell")
        out[kind] = (pa.chunked_array([p_cells]).to_numpy(), pa.chunked_array([t_cells]).to_numpy())
    return out


def _member(col: Any, values: Any) -> Any:
    """Whether each entry of an Arrow column (plain or dictionary; nulls are not) is among ``values``: a
    dictionary column is tested on its distinct values, not row by row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    vs = pc.unique(values).drop_null() if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values)
    vs = vs.cast(pa.string()) if not pa.types.is_dictionary(vs.type) else vs.cast(vs.type.value_type)
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    out = []
    for ch in chunks:
        if pa.types.is_dictionary(ch.type):
            hit = np.asarray(pc.is_in(ch.dictionary.cast(pa.string()), value_set=vs).to_numpy(zero_copy_only=False),
                             dtype=bool)  # fmt: skip
            idx = np.asarray(ch.indices.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
            m = hit[idx] if hit.size else np.zeros(len(ch), bool)
            out.append(m & ~np.asarray(ch.is_null().to_numpy(zero_copy_only=False), dtype=bool))
        else:
            out.append(np.asarray(pc.is_in(ch.cast(pa.string()), value_set=vs).fill_null(False)
                                  .to_numpy(zero_copy_only=False), dtype=bool))  # fmt: skip
    return pa.array(np.concatenate(out) if out else np.zeros(0, bool))


def score_workspace(ws: Any, truth_dir: Any) -> dict[str, Any]:
    """Score the workspace's stored maritime events, crossings and corridors against a scenario's ``truth/``.

    Crossings (``truth/crossings.parquet``: every cut of the MEX–USA line by a
    true vehicle, vessel or aircraft path) are matched one-to-one within 2 km
    and 30 min (:func:`score_crossings`) to:

    - ``crossings_true_tracks``: the analytic run on the true paths (its ceiling);
    - ``crossings_lake_tracks``: the workspace's own crossings
      (``analysis/corridors/crossings.parquet`` of ``analyze corridors``, or,
      when absent, :func:`atalaya.fusion.corridors.track_crossings` of its
      tracks): precision and recall against all true crossings;
    - ``crossings_observable``: the same crossings, recall counted only over
      the *observable* true crossings (:func:`observable_crossings`: the object
      was observed, by a feed report or an attributed sensor detection, within
      10 minutes and 5 km of the crossing on both sides); ``precision`` is the
      one against all true crossings (a detected crossing that is real but was
      not observable is still right); ``by_kind`` splits the recall.

    Dark gaps and rendezvous are scored when ``analyze maritime`` has written them.
    """
    import glob
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from atalaya.fusion import corridors as co
    from atalaya.fusion import maritime as ma

    truth = Path(truth_dir)
    out: dict[str, Any] = {}
    if (ma.maritime_dir(ws) / "dark_gaps.parquet").exists():
        pred_g = pq.read_table(ma.maritime_dir(ws) / "dark_gaps.parquet")
        out["dark_gaps"] = score_dark_gaps(pred_g, pq.read_table(truth / "dark_gaps.parquet")).to_dict()
    if (ma.maritime_dir(ws) / "rendezvous.parquet").exists():
        pred_r = pq.read_table(ma.maritime_dir(ws) / "rendezvous.parquet")
        out["rendezvous"] = score_rendezvous(pred_r, pq.read_table(truth / "rendezvous.parquet")).to_dict()
    truth_x = pq.read_table(truth / "crossings.parquet")
    true_files = sorted(glob.glob(str(truth / "tracks" / "*.parquet")))
    out["crossings_true_tracks"] = score_crossings(true_path_crossings(true_files), truth_x).to_dict()
    pts = co.load_track_points(ws)
    stored = ws.root / "analysis" / "corridors" / "crossings.parquet"
    pred_x = pq.read_table(stored) if stored.exists() else co.track_crossings(pts)
    m = score_crossings(pred_x, truth_x)
    out["crossings_lake_tracks"] = m.to_dict()
    obs = truth_observations(truth, truth_x.column("object_id").to_pylist())
    seen = observable_crossings(truth_x, obs)
    hit = np.zeros(truth_x.num_rows, dtype=bool)
    hit[m.true_index] = True
    kinds = np.asarray(truth_x.column("kind").to_pylist() if "kind" in truth_x.column_names else
                       ["vehicle"] * truth_x.num_rows, dtype=str)  # fmt: skip
    n_obs = int(seen.sum())
    out["crossings_observable"] = {
        "n_true": n_obs,
        "tp": int((hit & seen).sum()),
        "recall": round(float((hit & seen).sum() / n_obs), 4) if n_obs else 1.0,
        "precision": m.to_dict()["precision"],
        "n_pred": m.n_pred,
        "share_observable": round(n_obs / truth_x.num_rows, 4) if truth_x.num_rows else 1.0,
        "by_kind": {
            str(k): {"n_true": int((seen & (kinds == k)).sum()),
                     "recall": round(float((hit & seen & (kinds == k)).sum() / max(1, (seen & (kinds == k)).sum())), 4)}
            for k in np.unique(kinds).tolist()
        },
    }  # fmt: skip
    att = track_objects(ws, truth)
    att = pa.table(
        {
            "track_id": pc.dictionary_encode(att.column("track_id")),  # ids once each, not once a row
            "object_id": pc.dictionary_encode(att.column("object_id")),
            "time_us": att.column("time_us"),
        }
    )
    del obs, seen, hit, pred_x, truth_x
    # of the true paths (tens of millions of samples on a long scenario), only the trips some track follows, read
    # one kind of object at a time
    out["corridor_iou"] = score_corridors(pts, functools.partial(_true_paths, true_files), att)
    return out


TRUTH_BUCKET_ROWS = 4_000_000
"""True samples crossed with the border at a time by :func:`true_path_crossings` (buckets of whole trips)."""


def _truth_con(true_files: list[str]) -> Any:
    """A DuckDB connection with the view ``truth_tracks`` over the true samples of the kinds that form tracks."""
    import duckdb

    from atalaya.fusion import corridors as co

    con = duckdb.connect()
    kinds = ", ".join(f"'{k}'" for k in co.TRACK_KINDS)
    files = ", ".join("'" + str(f).replace("'", "''") + "'" for f in true_files)
    try:
        con.execute(
            "CREATE TEMP VIEW truth_tracks AS SELECT object_id, trip_id, kind, time, lon, lat "
            f"FROM read_parquet([{files}], union_by_name = true) WHERE CAST(kind AS VARCHAR) IN ({kinds})"
        )
    except duckdb.Error:
        con.close()
        raise
    return con


def true_path_crossings(true_files: list[str], *, bucket_rows: int = TRUTH_BUCKET_ROWS) -> Any:
    """:func:`atalaya.fusion.corridors.border_crossings` of the true paths (``truth/tracks`` files), a bucket of
    whole trips at a time (by a hash of the trip id), in the order one call over all of them gives."""
    import pyarrow as pa

    from atalaya.fusion import corridors as co
    from atalaya.store.lake import bucket_count, fetch_arrow

    if not true_files:
        return co.border_crossings(np.array([]), np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    con = _truth_con(true_files)
    try:
        n = int(con.execute("SELECT count(*) FROM truth_tracks").fetchall()[0][0])
        k = bucket_count(n, bucket_rows)
        parts = []
        for b in range(k):
            tb = fetch_arrow(con.sql(
                "SELECT trip_id, epoch_us(time) AS time_us, lon, lat FROM truth_tracks"
                + ("" if k == 1 else f" WHERE hash(trip_id) % {k} = {b}")
            ))  # fmt: skip
            parts.append(co.border_crossings(tb.column("trip_id"), tb.column("time_us").to_numpy(),
                                             tb.column("lon").to_numpy(), tb.column("lat").to_numpy()))  # fmt: skip
            del tb
    finally:
        con.close()
    x = pa.concat_tables(parts)
    # one call orders its crossings by trip, then along the trip (an Arrow sort is stable)
    return x.sort_by([("track", "ascending"), ("time_us", "ascending")]) if k > 1 else x


def _true_paths(true_files: list[str], trips: Any) -> Any:
    """``object_id, trip_id, kind, time, lon, lat`` of the true samples of ``trips`` (ids as dictionaries)."""
    import pyarrow as pa

    from atalaya.store.lake import fetch_arrow

    names = ["object_id", "trip_id", "kind"]
    empty = pa.table({**{c: pa.array([], pa.string()).dictionary_encode() for c in names},
                      "time": pa.array([], pa.timestamp("us", tz="UTC")), "lon": pa.array([], pa.float64()),
                      "lat": pa.array([], pa.float64())})  # fmt: skip
    if not true_files:
        return empty
    con = _truth_con(true_files)
    try:
        ids = trips if isinstance(trips, (pa.Array, pa.ChunkedArray)) else pa.array(trips, pa.string())
        con.register("followed", pa.table({"trip_id": ids.drop_null().cast(pa.string())}))
        tb = fetch_arrow(con.sql("SELECT * FROM truth_tracks WHERE trip_id IN (SELECT trip_id FROM followed)"))
    finally:
        con.close()
    return pa.table({c: (tb.column(c).dictionary_encode() if c in names else tb.column(c)) for c in tb.column_names})


def main(argv: list[str] | None = None) -> int:
    """``python -m atalaya.evaluate.events SCENARIO WORKSPACE``: run maritime, then score events and corridors."""
    import json
    import sys
    from pathlib import Path

    from atalaya.core.workspace import Workspace
    from atalaya.fusion import maritime as ma
    from atalaya.store.knowledge import KnowledgeStore

    args = sys.argv[1:] if argv is None else argv
    sc, wsd = Path(args[0]), Path(args[1])
    ws = Workspace.open(wsd)
    store = KnowledgeStore.open(ws.db_url)
    try:
        ma.run_maritime(ws, store)
        print(json.dumps(score_workspace(ws, sc / "truth"), indent=1))
    finally:
        store.close()
    return 0


if __name__ == "__main__":  # pragma: no cover - command-line entry
    raise SystemExit(main())
