"""Benchmark: identified tracks on millions of AIS-like positions; the multi-target tracker vs Stone Soup.

    python bench/bench_tracks.py --positions 5000000 --targets 60 --duration 3600

(a) :func:`atalaya.fusion.tracks.build_identified_tracks` on ``--positions``
    AIS-like reports (vessels reporting every 60 s, 1 % shuffled rows, shared MMSIs,
    spoofed jumps and single outliers), rate in positions per second.
(b) :func:`atalaya.fusion.mtt.track_scans` and Stone Soup's ``MultiTargetTracker``
    set up equivalently (CV model with the same ``q``, the same per-detection
    noise, Mahalanobis ``DistanceHypothesiser`` with the same gate as missed
    distance, ``GNNWith2DAssignment``, ``MultiMeasurementInitiator`` with
    ``min_points=2`` and a 2-scan holding deleter = 2-of-3, deletion after 3
    missed scans) on the same GMTI-like detections; wall time of the tracking
    loop (detections built beforehand for both), throughput ratio, and the
    GOSPA (c = 200 m, p = 2) of both against the truth. Stone Soup's tracks keep
    the predictions it coasts after a track's last detection; its GOSPA is
    shown as it comes and with those trailing states dropped, as ours are.
Skips (b)'s peer if stonesoup is not installed.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from atalaya.evaluate.tracking import gospa, siap
from atalaya.fusion.mtt import TrackerConfig, track_scans
from atalaya.fusion.tracking.motion import ConstantVelocity
from atalaya.fusion.tracking.simulate import ScanWorld, simulate_scans
from atalaya.fusion.tracks import build_identified_tracks

GATE = 3.0
Q = 0.1


def ais_like(n: int, seed: int = 0) -> dict[str, Any]:
    """Vessels reporting every 60 s along slowly turning courses, with anomalies."""
    rng = np.random.default_rng(seed)
    per = 1440
    ships = max(1, n // per)
    heading = np.cumsum(rng.normal(0.0, 0.02, (ships, per)), axis=1) + rng.uniform(0, 2 * np.pi, (ships, 1))
    step = rng.uniform(0.001, 0.005, (ships, 1))  # 100–500 m per minute
    lon = rng.uniform(-118.0, -86.0, (ships, 1)) + np.cumsum(step * np.cos(heading), axis=1)
    lat = rng.uniform(14.0, 30.0, (ships, 1)) + np.cumsum(step * np.sin(heading), axis=1)
    ms = rng.choice(np.arange(200_000_000, 800_000_000), ships, replace=False)
    pair = np.arange(1, ships // 50, 2)
    ms[pair] = ms[pair - 1]  # 2 % of the ships share their MMSI with another
    mmsi = np.repeat(ms, per)
    t = np.tile(np.arange(per, dtype=np.int64) * 60_000_000, ships) + 1_772_000_000_000_000
    lon, lat = lon.ravel(), lat.ravel()
    bad = rng.random(lon.size) < 0.001  # spoofed jumps / outliers
    lon[bad] += rng.uniform(-5, 5, int(bad.sum()))
    m = lon.size
    perm = np.arange(m)
    sw = rng.choice(m, m // 100, replace=False)
    perm[sw] = perm[rng.permutation(sw)]
    return {"ident": mmsi[perm], "time_us": t[perm], "lon": lon[perm], "lat": lat[perm],
            "kind": np.full(m, "vessel", dtype=object)[perm]}  # fmt: skip


def bench_identified(n: int) -> None:
    d = ais_like(n)
    import pyarrow as pa

    kind = pa.array(d["kind"]).dictionary_encode()
    build_identified_tracks(ident=d["ident"][:10000], time_us=d["time_us"][:10000], lon=d["lon"][:10000],
                            lat=d["lat"][:10000], kind=kind[:10000])  # fmt: skip
    t0 = time.perf_counter()
    res = build_identified_tracks(ident=d["ident"], time_us=d["time_us"], lon=d["lon"], lat=d["lat"], kind=kind)
    dt = time.perf_counter() - t0
    m = d["lon"].size
    print(f"(a) identified tracks: {m:,} positions in {dt:.2f} s = {m / dt / 1e6:.2f} M positions/s; "
          f"{res.n_segments:,} segments, {res.outliers:,} outliers, {res.duplicates:,} duplicates")  # fmt: skip


def ours(w: ScanWorld) -> tuple[dict[str, Any], float]:
    cfg = TrackerConfig(motion=ConstantVelocity(q=Q), gate=GATE)
    t0 = time.perf_counter()
    r = track_scans(time_s=w.det_time, x=w.det_x, y=w.det_y, sigma_m=w.det_sigma, config=cfg)
    dt = time.perf_counter() - t0
    return {"track": r.track, "time": r.time_s, "x": r.state[:, 0], "y": r.state[:, 2], "upd": r.detection >= 0}, dt


def run_stonesoup(w: ScanWorld) -> tuple[dict[str, Any], float]:
    from datetime import datetime, timedelta

    from stonesoup.dataassociator.neighbour import GNNWith2DAssignment
    from stonesoup.deleter.time import UpdateTimeStepsDeleter
    from stonesoup.hypothesiser.distance import DistanceHypothesiser
    from stonesoup.initiator.simple import MultiMeasurementInitiator
    from stonesoup.measures import Mahalanobis
    from stonesoup.models.measurement.linear import LinearGaussian
    from stonesoup.models.transition.linear import CombinedLinearGaussianTransitionModel
    from stonesoup.models.transition.linear import ConstantVelocity as SsCV
    from stonesoup.predictor.kalman import KalmanPredictor
    from stonesoup.tracker.simple import MultiTargetTracker
    from stonesoup.types.detection import Detection
    from stonesoup.types.state import GaussianState
    from stonesoup.types.update import Update
    from stonesoup.updater.kalman import KalmanUpdater

    epoch = datetime(2026, 3, 2)
    transition = CombinedLinearGaussianTransitionModel([SsCV(Q), SsCV(Q)])
    mm = LinearGaussian(ndim_state=4, mapping=(0, 2), noise_covar=np.diag([50.0**2] * 2))
    predictor = KalmanPredictor(transition)
    updater = KalmanUpdater(mm)
    hyp = DistanceHypothesiser(predictor, updater, measure=Mahalanobis(), missed_distance=GATE)
    assoc = GNNWith2DAssignment(hyp)
    init = MultiMeasurementInitiator(
        prior_state=GaussianState(np.zeros((4, 1)), np.diag([0.0, 15.0**2, 0.0, 15.0**2])),
        measurement_model=mm, deleter=UpdateTimeStepsDeleter(2), data_associator=GNNWith2DAssignment(hyp),
        updater=updater, min_points=2,
    )  # fmt: skip
    scans = []
    times = np.unique(w.det_time)
    bounds = [*np.searchsorted(w.det_time, times, side="left").tolist(), w.det_time.size]
    for k, t in enumerate(times):
        ts = epoch + timedelta(seconds=float(t))
        dets = {
            Detection(np.array([[w.det_x[i]], [w.det_y[i]]]), timestamp=ts,
                      measurement_model=LinearGaussian(ndim_state=4, mapping=(0, 2),
                                                       noise_covar=np.diag([w.det_sigma[i] ** 2] * 2)))
            for i in range(bounds[k], bounds[k + 1])
        }  # fmt: skip
        scans.append((ts, dets))
    tracker = MultiTargetTracker(
        initiator=init, deleter=UpdateTimeStepsDeleter(3), detector=iter(scans), data_associator=assoc,
        updater=updater,
    )  # fmt: skip
    all_tracks: set[Any] = set()
    t0 = time.perf_counter()
    for _, tracks in tracker:
        all_tracks |= tracks
    dt = time.perf_counter() - t0
    rows = [(n, (s.timestamp - epoch).total_seconds(), float(s.state_vector[0, 0]), float(s.state_vector[2, 0]),
             isinstance(s, Update)) for n, trk in enumerate(all_tracks) for s in trk.states]  # fmt: skip
    a = np.array([r[:4] for r in rows]) if rows else np.zeros((0, 4))
    return {"track": a[:, 0].astype(np.int64), "time": a[:, 1], "x": a[:, 2], "y": a[:, 3],
            "upd": np.array([r[4] for r in rows], dtype=bool)}, dt  # fmt: skip


def trim(p: dict[str, Any]) -> dict[str, Any]:
    """Drop each track's states after its last update."""
    last: dict[int, float] = {}
    for k, t, u in zip(p["track"].tolist(), p["time"].tolist(), p["upd"].tolist(), strict=True):
        if u:
            last[k] = max(last.get(k, -np.inf), t)
    keep = np.array([t <= last.get(k, -np.inf) for k, t in zip(p["track"].tolist(), p["time"].tolist(), strict=True)])
    return {k: v[keep] if keep.size else v for k, v in p.items()}


def score(w: ScanWorld, p: dict[str, Any]) -> str:
    tt = np.round(w.truth_time).astype(np.int64)
    kt = np.round(p["time"]).astype(np.int64)
    g = gospa(truth_time=tt, truth_x=w.truth_x, truth_y=w.truth_y, track_time=kt, track_x=p["x"], track_y=p["y"],
              c=200.0, p=2)  # fmt: skip
    s = siap(truth_id=w.truth_id, truth_time=tt, truth_x=w.truth_x, truth_y=w.truth_y, track_id=p["track"],
             track_time=kt, track_x=p["x"], track_y=p["y"], association_m=200.0)  # fmt: skip
    return (f"GOSPA {g.mean_distance:6.1f} m  completeness {s.completeness:.3f}  spuriousness {s.spuriousness:.3f}"
            f"  ID changes {s.id_changes}")  # fmt: skip


def bench_mtt(targets: int, duration: float, seed: int) -> None:
    w = simulate_scans(seed=seed, n_targets=targets, duration_s=duration)
    n_scans = np.unique(w.det_time).size
    print(f"(b) GMTI-like world: {targets} targets, {n_scans} scans of 20 s, {w.det_time.size:,} detections")
    ours(w)  # warm-up
    p, dt = ours(w)
    print(f"    atalaya     {dt:8.3f} s  {w.det_time.size / dt:12,.0f} det/s  {score(w, p)}")
    try:
        import stonesoup  # noqa: F401
    except ImportError:
        print("    stonesoup not installed: pip install stonesoup")
        return
    sp, sdt = run_stonesoup(w)
    print(f"    stonesoup   {sdt:8.3f} s  {w.det_time.size / sdt:12,.0f} det/s  {score(w, sp)}  (as output)")
    print(f"    stonesoup   {'':8}    {'':12}         {score(w, trim(sp))}  (trailing coasts dropped)")
    print(f"    throughput ratio atalaya / stonesoup: {sdt / dt:.0f}x")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--positions", type=int, default=5_000_000)
    ap.add_argument("--targets", type=int, default=60)
    ap.add_argument("--duration", type=float, default=3600.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-identified", action="store_true")
    a = ap.parse_args(argv)
    print("command: python bench/bench_tracks.py " + " ".join(sys.argv[1:] if argv is None else argv))
    if not a.skip_identified:
        bench_identified(a.positions)
    bench_mtt(a.targets, a.duration, a.seed)


if __name__ == "__main__":
    main()
