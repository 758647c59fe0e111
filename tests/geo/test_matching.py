"""One-to-one radius matching: pairs, greediness, scores, against brute-force references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from atalaya.core.errors import ValidationError
from atalaya.geo.kernels import geodesic_distance
from atalaya.geo.matching import (
    candidate_pairs,
    days_to_first_detection,
    f_beta,
    match_pairs,
    match_points,
)


def _brute_pairs(xa: np.ndarray, ya: np.ndarray, xb: np.ndarray, yb: np.ndarray, r: float) -> set[tuple[int, int]]:
    d = geodesic_distance(xa[:, None], ya[:, None], xb[None, :], yb[None, :])
    i, j = np.nonzero(d <= r)
    return set(zip(i.tolist(), j.tolist(), strict=True))


def _sequential_greedy(i: np.ndarray, j: np.ndarray, d: np.ndarray) -> set[tuple[int, int]]:
    used_i: set[int] = set()
    used_j: set[int] = set()
    out: set[tuple[int, int]] = set()
    for k in np.lexsort((np.arange(d.size), d)).tolist():
        if int(i[k]) in used_i or int(j[k]) in used_j:
            continue
        used_i.add(int(i[k]))
        used_j.add(int(j[k]))
        out.add((int(i[k]), int(j[k])))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_candidate_pairs_equal_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    xa, ya = rng.uniform(-108, -107.9, 300), rng.uniform(25.0, 25.1, 300)
    xb, yb = rng.uniform(-108, -107.9, 200), rng.uniform(25.0, 25.1, 200)
    i, j, d = candidate_pairs(xa, ya, xb, yb, radius_m=400.0)
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == _brute_pairs(xa, ya, xb, yb, 400.0)
    assert np.all(d <= 400.0)


@pytest.mark.parametrize("seed", [3, 4, 5, 6])
def test_matching_equals_sequential_greedy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    xa, ya = rng.uniform(-108, -107.95, 400), rng.uniform(25.0, 25.05, 400)
    xb, yb = rng.uniform(-108, -107.95, 300), rng.uniform(25.0, 25.05, 300)
    i, j, d = candidate_pairs(xa, ya, xb, yb, radius_m=500.0)
    sel = match_pairs(i, j, d)
    got = set(zip(i[sel].tolist(), j[sel].tolist(), strict=True))
    assert got == _sequential_greedy(i, j, d)
    m = match_points(xa, ya, xb, yb, radius_m=500.0)
    assert len(set(m.pred_index.tolist())) == m.tp and len(set(m.true_index.tolist())) == m.tp


def test_one_to_one_and_closest_first() -> None:
    # two predictions near one true site: the closer one matches, the other is a false positive
    m = match_points([-107.0, -107.002], [25.0, 25.0], [-107.0005], [25.0], radius_m=500.0)
    assert (m.tp, m.fp, m.fn) == (1, 1, 0)
    assert m.pred_index.tolist() == [0]
    assert m.precision == 0.5 and m.recall == 1.0
    assert math.isclose(m.f1, 2 / 3) and math.isclose(m.f05, f_beta(0.5, 1.0, 0.5))


def test_radius_is_inclusive_and_distance_geodesic() -> None:
    d = float(geodesic_distance(np.array([-107.0]), np.array([25.0]), np.array([-107.01]), np.array([25.0]))[0])
    assert match_points([-107.0], [25.0], [-107.01], [25.0], radius_m=d + 1e-6).tp == 1
    assert match_points([-107.0], [25.0], [-107.01], [25.0], radius_m=d - 1.0).tp == 0
    assert math.isclose(match_points([-107.0], [25.0], [-107.01], [25.0], radius_m=2000).median_error_m, d)


def test_empty_inputs_and_scores() -> None:
    none = match_points([], [], [], [], radius_m=100.0)
    assert (none.precision, none.recall, none.f1) == (1.0, 1.0, 1.0)
    assert math.isnan(none.median_error_m) and none.to_dict()["median_error_m"] is None
    miss = match_points([], [], [-107.0], [25.0], radius_m=100.0)
    assert (miss.precision, miss.recall, miss.f1, miss.fn) == (1.0, 0.0, 0.0, 1)
    spurious = match_points([-107.0], [25.0], [], [], radius_m=100.0)
    assert (spurious.precision, spurious.fp) == (0.0, 1)
    assert f_beta(0.0, 0.0, 0.5) == 0.0


def test_bad_radius_says_what_to_do() -> None:
    with pytest.raises(ValidationError) as e:
        match_points([0.0], [0.0], [0.0], [0.0], radius_m=0.0)
    assert e.value.hint


def test_days_to_first_detection_per_pair() -> None:
    m = match_points([-107.0, -100.0], [25.0, 20.0], [-100.0, -107.0], [20.0, 25.0], radius_m=100.0)
    dd = days_to_first_detection(m, np.array([10, 20]), np.array([18, 7]))
    assert dd.tolist() == [3.0, 2.0]
    assert m.true_matched().all() and m.pred_matched().all()
