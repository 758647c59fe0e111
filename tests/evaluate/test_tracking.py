"""Tracking metrics: GOSPA against brute force and Stone Soup, SIAP on constructed cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from atalaya.evaluate.tracking import gospa, observable_truth, score_tracks, siap


def brute_gospa(a: np.ndarray, b: np.ndarray, c: float, p: float) -> tuple[float, float, float, float]:
    """Minimum over every partial one-to-one assignment (α = 2), returning (distance, loc, missed, false)."""
    best = (np.inf, 0.0, 0.0, 0.0)
    n, m = len(a), len(b)
    for k in range(min(n, m) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                d = [min(float(np.hypot(*(a[i] - b[j]))), c) for i, j in zip(rows, cols, strict=True)]
                loc = sum(x**p for x in d if x < c)
                n_pairs = sum(1 for x in d if x < c)
                missed = c**p / 2 * (n - n_pairs)
                false = c**p / 2 * (m - n_pairs)
                tot = loc + missed + false
                if tot < best[0] - 1e-9:
                    best = (tot, loc, missed, false)
    return best[0] ** (1 / p), best[1], best[2], best[3]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("p", [1.0, 2.0])
def test_gospa_matches_brute_force(seed: int, p: float) -> None:
    rng = np.random.default_rng(seed)
    n, m = rng.integers(0, 5), rng.integers(0, 5)
    a = rng.uniform(0, 300, (n, 2))
    b = rng.uniform(0, 300, (m, 2))
    g = gospa(truth_time=np.zeros(n, dtype=int), truth_x=a[:, 0], truth_y=a[:, 1], track_time=np.zeros(m, dtype=int),
              track_x=b[:, 0], track_y=b[:, 1], c=100.0, p=p)  # fmt: skip
    want = brute_gospa(a, b, 100.0, p)
    if n + m == 0:
        assert g.distance.size == 0
        return
    assert g.distance[0] == pytest.approx(want[0], abs=1e-6)
    assert (g.localisation[0], g.missed[0], g.false[0]) == pytest.approx(want[1:], abs=1e-6)


def test_gospa_many_steps_at_once_equals_each_step() -> None:
    rng = np.random.default_rng(7)
    ta, tb = rng.integers(0, 6, 40), rng.integers(0, 6, 35)
    a, b = rng.uniform(0, 400, (40, 2)), rng.uniform(0, 400, (35, 2))
    g = gospa(truth_time=ta, truth_x=a[:, 0], truth_y=a[:, 1], track_time=tb, track_x=b[:, 0], track_y=b[:, 1],
              c=150.0)  # fmt: skip
    for k, t in enumerate(g.time.tolist()):
        one = gospa(truth_time=ta[ta == t], truth_x=a[ta == t, 0], truth_y=a[ta == t, 1], track_time=tb[tb == t],
                    track_x=b[tb == t, 0], track_y=b[tb == t, 1], c=150.0)  # fmt: skip
        assert g.distance[k] == pytest.approx(one.distance[0])


def test_gospa_agrees_with_stonesoup() -> None:
    pytest.importorskip("stonesoup")
    from datetime import datetime

    from stonesoup.metricgenerator.ospametric import GOSPAMetric
    from stonesoup.types.state import State

    rng = np.random.default_rng(3)
    metric = GOSPAMetric(c=100.0, p=2)
    ts = datetime(2026, 3, 2)
    for _ in range(20):
        n, m = rng.integers(1, 7), rng.integers(1, 7)
        a, b = rng.uniform(0, 400, (n, 2)), rng.uniform(0, 400, (m, 2))
        res, _ = metric.compute_gospa_metric([State(v.reshape(2, 1), timestamp=ts) for v in b],
                                             [State(v.reshape(2, 1), timestamp=ts) for v in a])  # fmt: skip
        ss = res.value
        g = gospa(truth_time=np.zeros(n, dtype=int), truth_x=a[:, 0], truth_y=a[:, 1],
                  track_time=np.zeros(m, dtype=int), track_x=b[:, 0], track_y=b[:, 1], c=100.0, p=2)  # fmt: skip
        assert g.distance[0] == pytest.approx(ss["distance"], rel=1e-6)
        assert g.localisation[0] == pytest.approx(ss["localisation"], rel=1e-6, abs=1e-6)
        assert g.missed[0] == pytest.approx(ss["missed"], abs=1e-6)
        assert g.false[0] == pytest.approx(ss["false"], abs=1e-6)


def test_gospa_rejects_bad_parameters() -> None:
    z = np.zeros(0)
    with pytest.raises(Exception, match="GOSPA needs"):
        gospa(truth_time=z, truth_x=z, truth_y=z, track_time=z, track_x=z, track_y=z, c=0.0)


def test_siap_constructed_case() -> None:
    # truth 0 tracked by track 1 then track 2 (one ID change); truth 1 never tracked; track 3 spurious
    s = siap(
        truth_id=np.array([0, 0, 0, 1, 1]), truth_time=np.array([0, 1, 2, 0, 1]),
        truth_x=np.array([0.0, 10, 20, 1000, 1000]), truth_y=np.zeros(5),
        track_id=np.array([1, 1, 2, 3]), track_time=np.array([0, 1, 2, 2]),
        track_x=np.array([1.0, 11, 21, 5000]), track_y=np.zeros(4), association_m=50.0,
    )  # fmt: skip
    assert s.completeness == pytest.approx(3 / 5)
    assert s.spuriousness == pytest.approx(1 / 4)
    assert s.id_changes == 1
    assert s.ambiguity == 1.0
    assert s.position_accuracy_m == pytest.approx(1.0)


def test_score_tracks_perfect_and_empty() -> None:
    t = np.arange(5) * 20_000_000
    truth = {"object_id": np.array(["a"] * 5), "time": t, "lon": -107.0 + np.arange(5) * 1e-3, "lat": np.full(5, 25.0)}
    perfect = {"track_id": np.array(["x"] * 5), "time": t, "lon": truth["lon"], "lat": truth["lat"]}
    s = score_tracks(perfect, truth, c=100.0)
    assert s["gospa"] == pytest.approx(0.0, abs=1e-6)
    assert (s["completeness"], s["spuriousness"], s["id_changes"]) == (1.0, 0.0, 0.0)
    empty = {k: v[:0] for k, v in perfect.items()}
    s = score_tracks(empty, truth, c=100.0)
    assert s["completeness"] == 0.0
    assert s["gospa"] == pytest.approx(np.sqrt(100.0**2 / 2))


def test_observable_truth_windows() -> None:
    us = 1_000_000
    m = observable_truth(
        truth_id=np.array(["a"] * 10 + ["b"] * 3), truth_time_us=np.r_[np.arange(10) * 20, np.arange(3) * 20] * us,
        det_truth_id=np.array(["a", "a", "a", "a", "b", None], dtype=object),
        det_time_us=np.array([0, 20, 160, 180, 20, 40]) * us, max_gap_s=60.0,
    )  # fmt: skip
    assert m.tolist() == [True, True] + [False] * 6 + [True, True] + [False] * 3
