"""Multi-target tracker: quality bars on simulated scan worlds, Stone Soup parity, the demo scenario."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from atalaya.core.errors import ValidationError
from atalaya.evaluate.tracking import gospa, siap
from atalaya.fusion.mtt import TrackerConfig, track_scans, track_unidentified
from atalaya.fusion.tracking.simulate import ScanWorld, simulate_scans


def _scores(w: ScanWorld, track: Any, time_s: Any, x: Any, y: Any) -> tuple[float, Any]:
    tt, kt = np.round(w.truth_time).astype(np.int64), np.round(time_s).astype(np.int64)
    g = gospa(truth_time=tt, truth_x=w.truth_x, truth_y=w.truth_y, track_time=kt, track_x=x, track_y=y, c=200.0)
    s = siap(truth_id=w.truth_id, truth_time=tt, truth_x=w.truth_x, truth_y=w.truth_y, track_id=track,
             track_time=kt, track_x=x, track_y=y, association_m=200.0)  # fmt: skip
    return g.mean_distance, s


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_quality_bars_on_simulated_worlds(seed: int) -> None:
    w = simulate_scans(seed=seed, n_targets=30, duration_s=1800.0)
    r = track_scans(time_s=w.det_time, x=w.det_x, y=w.det_y, sigma_m=w.det_sigma)
    _, s = _scores(w, r.track, r.time_s, r.state[:, 0], r.state[:, 2])
    assert s.completeness >= 0.9
    assert s.spuriousness <= 0.1
    raw = float(np.mean(w.det_sigma[w.det_truth >= 0])) * np.sqrt(np.pi / 2)  # mean error of the detections
    assert s.position_accuracy_m < 0.95 * raw


def test_every_detection_is_used_at_most_once_and_tracks_are_time_ordered() -> None:
    w = simulate_scans(seed=5, n_targets=20, duration_s=900.0)
    r = track_scans(time_s=w.det_time, x=w.det_x, y=w.det_y, sigma_m=w.det_sigma)
    used = r.detection[r.detection >= 0]
    assert used.size == np.unique(used).size
    same = r.track[1:] == r.track[:-1]
    assert np.all(np.diff(r.time_s)[same] > 0)
    assert np.all(np.diff(r.track) >= 0)


def test_unidentified_on_lon_lat_and_empty() -> None:
    t = np.arange(8) * 20_000_000
    res = track_unidentified(time_us=t, lon=-107.0 + np.arange(8) * 0.002, lat=np.full(8, 25.0),
                             sigma_m=np.full(8, 20.0))  # fmt: skip
    assert res.n_tracks == 1
    assert np.nanmedian(res.speed_mps[2:]) == pytest.approx(10.1, abs=1.5)
    assert np.nanmedian(res.course_deg[2:]) == pytest.approx(90.0, abs=5.0)
    assert len(track_unidentified(time_us=t[:0], lon=t[:0], lat=t[:0])) == 0
    with pytest.raises(ValidationError, match="one length"):
        track_unidentified(time_us=t, lon=t[:3], lat=t)


@pytest.mark.skipif(importlib.util.find_spec("stonesoup") is None, reason="stonesoup not installed")
def test_same_gospa_as_stonesoup_set_up_equivalently() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    try:
        from bench_tracks import ours, run_stonesoup, trim
    finally:
        sys.path.pop(0)
    w = simulate_scans(seed=21, n_targets=8, duration_s=600.0)
    p, _ = ours(w)
    sp, _ = run_stonesoup(w)
    sp = trim(sp)
    g_ours, _ = _scores(w, p["track"], p["time"], p["x"], p["y"])
    g_ss, _ = _scores(w, sp["track"], sp["time"], sp["x"], sp["y"])
    assert g_ours <= g_ss + 1e-6


def test_config_validation() -> None:
    from atalaya.core.errors import ConfigError
    from atalaya.fusion.tracking.lifecycle import MOfN

    with pytest.raises(ConfigError, match="M-of-N"):
        TrackerConfig(lifecycle=MOfN(m=4, n=3))


@pytest.mark.slow
def test_quality_bars_on_demo_scenario(tmp_path: Path) -> None:
    from atalaya.evaluate.tracking import scenario_tracking_case, score_tracks

    out = tmp_path / "scn"
    subprocess.run([sys.executable, "-m", "atalaya.cli.main", "scenario", "generate", "--size", "demo", "--seed",
                    "3", str(out)], check=True, capture_output=True)  # fmt: skip
    case = scenario_tracking_case(out)
    d = case.detections
    res = track_unidentified(time_us=d.column("time").to_numpy(), lon=d.column("lon").to_numpy(),
                             lat=d.column("lat").to_numpy(), sigma_m=d.column("pos_err_m").to_numpy())  # fmt: skip
    s = score_tracks({"track_id": res.track, "time": res.time_us, "lon": res.lon, "lat": res.lat}, case.truth)
    assert s["completeness"] >= 0.9
    assert s["spuriousness"] <= 0.1
