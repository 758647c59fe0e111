"""Multi-target tracking of detections without identity (GMTI, radar, EO vehicles).

A tracker is its roles wired together (:mod:`atalaya.fusion.tracking`):
constant-velocity Kalman filter in a local azimuthal equidistant plane,
Mahalanobis gating, global nearest neighbour assignment, M-of-N initiation and
deletion after misses. Detections are processed scan by scan (a scan is all
detections sharing a timestamp) and each scan is vectorised over every live
track: one batched predict, one gated assignment, one batched update.

Association is in two stages, as in a tracker with a separate initiator:
confirmed tracks take their detections first, tentative tracks then compete
for the rest, and each detection left over starts a tentative track.

The output is offline (the whole batch is known): a confirmed track keeps the
states of its tentative phase, and the predictions coasted after its last
detection are dropped, so a track spans from its first to its last detection.

>>> import numpy as np
>>> t = np.repeat(np.arange(6) * 20_000_000, 1)           # one target, six scans 20 s apart
>>> lon = -107.0 + np.arange(6) * 0.004                  # ≈ 20 m/s eastwards
>>> lat = np.full(6, 25.0)
>>> res = track_unidentified(time_us=t, lon=lon, lat=lat, sigma_m=np.full(6, 30.0))
>>> res.n_tracks, np.unique(res.track).tolist(), res.detection.tolist()
(1, [0], [0, 1, 2, 3, 4, 5])
>>> track_unidentified(time_us=t[:0], lon=lon[:0], lat=lat[:0]).n_tracks
0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from atalaya.core.errors import ValidationError
from atalaya.fusion.tracking.associate import associate
from atalaya.fusion.tracking.kalman import isotropic, update
from atalaya.fusion.tracking.lifecycle import MOfN
from atalaya.fusion.tracking.motion import ConstantVelocity
from atalaya.geo.kernels import aeqd_forward, aeqd_inverse

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

US = 1_000_000


@dataclass(frozen=True, kw_only=True)
class TrackerConfig:
    """Parameters of the multi-target tracker (defaults suit ground vehicles seen by GMTI)."""

    motion: ConstantVelocity = field(default_factory=lambda: ConstantVelocity(q=0.1))
    """Motion model; ``q`` is the acceleration noise density, m²/s³."""
    gate: float = 3.0
    """Mahalanobis distance gate; also the cost of a missed detection in the assignment."""
    lifecycle: MOfN = field(default_factory=MOfN)
    """Initiation and deletion rule."""
    init_speed_sigma: float = 15.0
    """1-sigma of each velocity component of a new track, m/s (its velocity starts at zero)."""
    default_sigma_m: float = 50.0
    """Position error used where a detection has none (``pos_err_m`` missing), metres."""
    min_sigma_m: float = 5.0
    """Floor on the position error of a detection, metres."""


@dataclass(frozen=True, kw_only=True)
class MetricTracks:
    """Tracker output in the local plane: one row per track and scan, sorted by track then time."""

    track: I64
    """Track number, 0… in order of birth (only confirmed tracks appear)."""
    time_s: F64
    """Scan time, seconds (same origin as the input)."""
    state: F64
    """State ``[x, vx, y, vy]`` after the scan (updated, or predicted when coasting), shape ``(n, 4)``."""
    detection: I64
    """Input row of the detection that updated the state, ``-1`` when coasting."""

    @property
    def n_tracks(self) -> int:
        return int(np.unique(self.track).size)


@dataclass(frozen=True, kw_only=True)
class TrackPoints:
    """Points of the tracks made by :func:`track_unidentified`, sorted by track then time."""

    track: I64
    """Track number, 0… in order of birth."""
    time_us: I64
    """Microseconds since the epoch (UTC)."""
    lon: F64
    """Estimated longitude."""
    lat: F64
    """Estimated latitude."""
    speed_mps: F64
    """Estimated speed, m/s."""
    course_deg: F64
    """Estimated course, degrees true."""
    detection: I64
    """Input row of the detection behind the point, ``-1`` where the track coasted through a missed scan."""

    @property
    def n_tracks(self) -> int:
        return int(np.unique(self.track).size)

    def __len__(self) -> int:
        return int(self.track.size)


def _check(**arrays: Any) -> int:
    sizes = {k: np.asarray(v).shape for k, v in arrays.items() if v is not None}
    n = {s[0] if s else -1 for s in sizes.values()}
    if len(n) > 1 or any(len(s) != 1 for s in sizes.values()):
        raise ValidationError(
            f"tracker inputs must be 1-D arrays of one length, got shapes {sizes}",
            hint="pass one value per detection in every array",
        )
    return n.pop() if n else 0


def track_scans(*, time_s: F64, x: F64, y: F64, sigma_m: F64, config: TrackerConfig | None = None) -> MetricTracks:
    """Track detections given in a local metric plane (the engine behind :func:`track_unidentified`).

    >>> import numpy as np
    >>> out = track_scans(time_s=np.zeros(0), x=np.zeros(0), y=np.zeros(0), sigma_m=np.zeros(0))
    >>> out.n_tracks, out.state.shape
    (0, (0, 4))
    """
    cfg = config or TrackerConfig()
    n_in = _check(time_s=time_s, x=x, y=y, sigma_m=sigma_m)
    time_s = np.asarray(time_s, dtype=np.float64)
    sig = np.asarray(sigma_m, dtype=np.float64)
    sig = np.maximum(np.where(np.isfinite(sig) & (sig > 0), sig, cfg.default_sigma_m), cfg.min_sigma_m)
    order = np.argsort(time_s, kind="stable")
    ts = time_s[order]
    z_all = np.column_stack([np.asarray(x, dtype=np.float64)[order], np.asarray(y, dtype=np.float64)[order]])
    r_all = isotropic(sig[order])
    cuts = np.flatnonzero(np.diff(ts)) + 1
    starts = np.concatenate([[0], cuts]) if n_in else np.zeros(0, dtype=np.int64)
    ends = np.concatenate([cuts, [n_in]]) if n_in else np.zeros(0, dtype=np.int64)

    rule, motion, gate = cfg.lifecycle, cfg.motion, cfg.gate
    v0 = cfg.init_speed_sigma**2
    # live track arrays
    xs = np.zeros((0, 4))
    ps = np.zeros((0, 4, 4))
    tid = np.zeros(0, dtype=np.int64)
    t_last = np.zeros(0)  # time of the state
    t_upd = np.zeros(0)  # time of the last detection
    hits = np.zeros(0, dtype=np.int64)
    age = np.zeros(0, dtype=np.int64)
    misses = np.zeros(0, dtype=np.int64)
    conf = np.zeros(0, dtype=bool)
    next_id = 0
    h_tid: list[I64] = []
    h_t: list[F64] = []
    h_x: list[F64] = []
    h_det: list[I64] = []
    confirmed_ids: list[I64] = []

    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        t = float(ts[a])
        z, r = z_all[a:b], r_all[a:b]
        det_rows = order[a:b]
        m = b - a
        stale = t - t_upd > rule.max_coast_s  # lost while no scan came in: gone before associating
        if stale.any():
            keep = ~stale
            xs, ps, tid, t_last, t_upd = xs[keep], ps[keep], tid[keep], t_last[keep], t_upd[keep]
            hits, age, misses, conf = hits[keep], age[keep], misses[keep], conf[keep]
        k = tid.size
        det_of = np.full(k, -1, dtype=np.int64)
        if k:
            xs, ps = motion.predict(xs, ps, t - t_last)
            t_last = np.full(k, t)
            free = np.ones(m, dtype=bool)
            for stage in (conf, ~conf):
                rows = np.flatnonzero(stage)
                cols = np.flatnonzero(free)
                if rows.size == 0 or cols.size == 0:
                    continue
                asg = associate(xs[rows], ps[rows], z[cols], r[cols], gate=gate)
                det_of[rows[asg.track]] = cols[asg.detection]
                free[cols[asg.detection]] = False
            hit = det_of >= 0
            if hit.any():
                hr = np.flatnonzero(hit)
                xs[hr], ps[hr] = update(xs[hr], ps[hr], z[det_of[hr]], r[det_of[hr]])
                t_upd[hr] = t
            hits += hit
            age += 1
            misses = np.where(hit, 0, misses + 1)
            h_tid.append(tid)
            h_t.append(np.full(k, t))
            h_x.append(xs.copy())
            h_det.append(np.where(hit, det_rows[np.maximum(det_of, 0)], -1))
            newly = ~conf & rule.confirm(hits=hits, age=age)
            if newly.any():
                confirmed_ids.append(tid[newly])
                conf = conf | newly
            gone = rule.expire(confirmed=conf, hits=hits, age=age, misses=misses, since_update_s=t - t_upd)
            if gone.any():
                keep = ~gone
                xs, ps, tid, t_last, t_upd = xs[keep], ps[keep], tid[keep], t_last[keep], t_upd[keep]
                hits, age, misses, conf = hits[keep], age[keep], misses[keep], conf[keep]
            unused = np.flatnonzero(free)
        else:
            unused = np.arange(m)
        nb = unused.size
        if nb:
            xn = np.zeros((nb, 4))
            xn[:, 0] = z[unused, 0]
            xn[:, 2] = z[unused, 1]
            pn = np.zeros((nb, 4, 4))
            pn[:, 0, 0] = r[unused, 0, 0]
            pn[:, 2, 2] = r[unused, 1, 1]
            pn[:, 1, 1] = pn[:, 3, 3] = v0
            new_ids = np.arange(next_id, next_id + nb, dtype=np.int64)
            next_id += nb
            h_tid.append(new_ids)
            h_t.append(np.full(nb, t))
            h_x.append(xn)
            h_det.append(det_rows[unused])
            one = np.ones(nb, dtype=np.int64)
            new_conf = rule.confirm(hits=one, age=one)  # m == 1: confirmed at birth
            if new_conf.any():
                confirmed_ids.append(new_ids[new_conf])
            xs, ps = np.concatenate([xs, xn]), np.concatenate([ps, pn])
            tid = np.concatenate([tid, new_ids])
            t_last = np.concatenate([t_last, np.full(nb, t)])
            t_upd = np.concatenate([t_upd, np.full(nb, t)])
            hits, age = np.concatenate([hits, one]), np.concatenate([age, one])
            misses = np.concatenate([misses, np.zeros(nb, dtype=np.int64)])
            conf = np.concatenate([conf, new_conf])

    return _finish(h_tid, h_t, h_x, h_det, confirmed_ids)


def _finish(h_tid: list[I64], h_t: list[F64], h_x: list[F64], h_det: list[I64], confirmed: list[I64]) -> MetricTracks:
    if not h_tid or not confirmed:
        return MetricTracks(
            track=np.zeros(0, dtype=np.int64), time_s=np.zeros(0), state=np.zeros((0, 4)),
            detection=np.zeros(0, dtype=np.int64),
        )  # fmt: skip
    tid = np.concatenate(h_tid)
    t = np.concatenate(h_t)
    xs = np.concatenate(h_x)
    det = np.concatenate(h_det)
    keep = np.isin(tid, np.concatenate(confirmed))
    tid, t, xs, det = tid[keep], t[keep], xs[keep], det[keep]
    order = np.lexsort((t, tid))
    tid, t, xs, det = tid[order], t[order], xs[order], det[order]
    # drop the predictions coasted after each track's last detection
    upd_t = np.where(det >= 0, t, -np.inf)
    bounds = np.flatnonzero(np.diff(tid)) + 1
    starts = np.concatenate([[0], bounds])
    last = np.maximum.reduceat(upd_t, starts)
    counts = np.diff(np.concatenate([starts, [tid.size]]))
    keep = t <= np.repeat(last, counts)
    tid, t, xs, det = tid[keep], t[keep], xs[keep], det[keep]
    # renumber 0… in order of birth
    _, dense = np.unique(tid, return_inverse=True)
    return MetricTracks(track=dense.astype(np.int64), time_s=t, state=xs, detection=det)


def local_origin(lon: F64, lat: F64) -> tuple[float, float]:
    """Centre of the local plane for a batch: the midpoint of the bounding box."""
    if lon.size == 0:
        return 0.0, 0.0
    return float(0.5 * (lon.min() + lon.max())), float(0.5 * (lat.min() + lat.max()))


def track_unidentified(
    *,
    time_us: Any,
    lon: Any,
    lat: Any,
    sigma_m: Any = None,
    config: TrackerConfig | None = None,
) -> TrackPoints:
    """Tracks from id-less detections (times in µs since the epoch, WGS84 positions, 1-sigma errors in metres).

    Pure and vectorised per scan; see the module docstring for the method.
    """
    time_us = np.asarray(time_us, dtype=np.int64)
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    n = _check(time_us=time_us, lon=lon, lat=lat, sigma_m=sigma_m)
    sig = np.full(n, np.nan) if sigma_m is None else np.asarray(sigma_m, dtype=np.float64)
    lon0, lat0 = local_origin(lon, lat)
    x, y = aeqd_forward(lon0, lat0, lon, lat) if n else (np.zeros(0), np.zeros(0))
    t0 = int(time_us.min()) if n else 0
    res = track_scans(time_s=(time_us - t0) / US, x=x, y=y, sigma_m=sig, config=config)
    st = res.state
    plon, plat = aeqd_inverse(lon0, lat0, st[:, 0], st[:, 2]) if st.shape[0] else (np.zeros(0), np.zeros(0))
    return TrackPoints(
        track=res.track,
        time_us=t0 + np.round(res.time_s * US).astype(np.int64),
        lon=plon,
        lat=plat,
        speed_mps=np.hypot(st[:, 1], st[:, 3]),
        course_deg=np.degrees(np.arctan2(st[:, 1], st[:, 3])) % 360.0,
        detection=res.detection,
    )
