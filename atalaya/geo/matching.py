"""One-to-one matching of predicted places to true ones within a radius, and the scores built on it.

Any analytic that outputs points (sites, crossings, rendezvous) is scored the
same way: each prediction may claim at most one true place within
``radius_m`` and each true place at most one prediction; pairs are taken
closest first (greedy by distance, computed as rounds of mutual nearest
neighbours, which gives the same pairs when distances are distinct). From the
pairs come precision, recall, F1, F0.5, the median location error and, with
days, the days to first detection.

>>> import numpy as np
>>> m = match_points(np.array([-107.0, -100.0]), np.array([25.0, 20.0]),
...                  np.array([-107.001, -90.0]), np.array([25.0, 20.0]), radius_m=500.0)
>>> m.tp, m.fp, m.fn, round(m.f1, 3), round(m.median_error_m)
(1, 1, 1, 0.5, 101)
>>> e = match_points(np.array([]), np.array([]), np.array([]), np.array([]), radius_m=500.0)
>>> e.tp, e.precision, e.recall, e.f1
(0, 1.0, 1.0, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from atalaya.core.errors import ValidationError
from atalaya.geo.kernels import geodesic_distance

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_M_PER_DEG = 111_320.0


@dataclass(frozen=True, kw_only=True)
class MatchResult:
    """Pairs of a one-to-one matching and the counts behind the scores."""

    pred_index: I64
    """Index of each matched prediction."""
    true_index: I64
    """Index of the true place it matched (same order)."""
    distance_m: F64
    """Distance of each pair, metres."""
    n_pred: int
    """Number of predictions."""
    n_true: int
    """Number of true places."""

    @property
    def tp(self) -> int:
        """Matched pairs."""
        return int(self.pred_index.size)

    @property
    def fp(self) -> int:
        """Predictions without a match."""
        return self.n_pred - self.tp

    @property
    def fn(self) -> int:
        """True places without a match."""
        return self.n_true - self.tp

    @property
    def precision(self) -> float:
        """TP / predictions (1.0 when nothing was predicted)."""
        return self.tp / self.n_pred if self.n_pred else 1.0

    @property
    def recall(self) -> float:
        """TP / true places (1.0 when there is nothing to find)."""
        return self.tp / self.n_true if self.n_true else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        return f_beta(self.precision, self.recall, 1.0)

    @property
    def f05(self) -> float:
        """F0.5: weighs precision twice as much as recall."""
        return f_beta(self.precision, self.recall, 0.5)

    @property
    def median_error_m(self) -> float:
        """Median distance of the matched pairs (NaN without pairs)."""
        return float(np.median(self.distance_m)) if self.tp else math.nan

    def pred_matched(self) -> npt.NDArray[np.bool_]:
        """Mask over predictions: matched or not."""
        m = np.zeros(self.n_pred, dtype=bool)
        m[self.pred_index] = True
        return m

    def true_matched(self) -> npt.NDArray[np.bool_]:
        """Mask over true places: found or not."""
        m = np.zeros(self.n_true, dtype=bool)
        m[self.true_index] = True
        return m

    def to_dict(self) -> dict[str, Any]:
        """The scores as plain numbers (for JSON reports)."""
        return {
            "n_pred": self.n_pred,
            "n_true": self.n_true,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "f0_5": round(self.f05, 4),
            "median_error_m": None if math.isnan(self.median_error_m) else round(self.median_error_m, 1),
        }


def f_beta(precision: float, recall: float, beta: float) -> float:
    """F-beta score (0.0 when both are 0).

    >>> f_beta(1.0, 0.5, 1.0), round(f_beta(1.0, 0.5, 0.5), 4), f_beta(0.0, 0.0, 1.0)
    (0.6666666666666666, 0.8333, 0.0)
    """
    b2 = beta * beta
    den = b2 * precision + recall
    return (1 + b2) * precision * recall / den if den > 0 else 0.0


def candidate_pairs(lon_a: Any, lat_a: Any, lon_b: Any, lat_b: Any, *, radius_m: float) -> tuple[I64, I64, F64]:
    """All pairs ``(i, j, distance)`` with point ``i`` of A within ``radius_m`` of point ``j`` of B.

    Points are bucketed on a grid of about ``radius_m`` so that only neighbouring
    buckets are compared (no N×M matrix).

    >>> i, j, d = candidate_pairs(np.array([0.0]), np.array([0.0]), np.array([0.0, 1.0]), np.array([0.001, 0.0]),
    ...                           radius_m=200.0)
    >>> i.tolist(), j.tolist(), [round(x) for x in d]
    ([0], [0], [111])
    >>> candidate_pairs(np.array([]), np.array([]), np.array([0.0]), np.array([0.0]), radius_m=1.0)[0].size
    0
    """
    if radius_m <= 0 or not math.isfinite(radius_m):
        raise ValidationError(f"matching radius must be positive, got {radius_m}", hint="pass e.g. radius_m=500")
    xa = np.asarray(lon_a, dtype=np.float64)
    ya = np.asarray(lat_a, dtype=np.float64)
    xb = np.asarray(lon_b, dtype=np.float64)
    yb = np.asarray(lat_b, dtype=np.float64)
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0))
    if xa.size == 0 or xb.size == 0:
        return empty
    max_lat = min(float(np.max(np.abs(np.r_[ya, yb]))), 85.0)
    step_y = radius_m / _M_PER_DEG * 1.01
    step_x = step_y / math.cos(math.radians(max_lat))
    ca_x = np.floor(xa / step_x).astype(np.int64)
    ca_y = np.floor(ya / step_y).astype(np.int64)
    cb_x = np.floor(xb / step_x).astype(np.int64)
    cb_y = np.floor(yb / step_y).astype(np.int64)
    width = np.int64(1 << 32)
    kb = cb_y * width + cb_x
    order = np.argsort(kb, kind="stable")
    kb_sorted = kb[order]
    ii: list[I64] = []
    jj: list[I64] = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            q = (ca_y + dy) * width + (ca_x + dx)
            lo = np.searchsorted(kb_sorted, q, side="left")
            hi = np.searchsorted(kb_sorted, q, side="right")
            cnt = hi - lo
            tot = int(cnt.sum())
            if tot == 0:
                continue
            rep = np.repeat(np.arange(xa.size), cnt)
            starts = np.repeat(lo - np.cumsum(np.r_[0, cnt[:-1]]), cnt)
            ii.append(rep)
            jj.append(order[starts + np.arange(tot)])
    if not ii:
        return empty
    i = np.concatenate(ii)
    j = np.concatenate(jj)
    d = geodesic_distance(xa[i], ya[i], xb[j], yb[j])
    keep = d <= radius_m
    return i[keep].astype(np.int64), j[keep].astype(np.int64), d[keep]


def match_pairs(i: I64, j: I64, d: F64) -> npt.NDArray[np.intp]:
    """Greedy one-to-one selection over candidate pairs, closest first; returns the chosen pair positions.

    Each round keeps the pairs that are the nearest for both ends among the
    still unmatched, then removes their ends; ties are broken by pair order.

    >>> match_pairs(np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([1.0, 2.0, 1.5])).tolist()
    [0]
    >>> match_pairs(np.array([], dtype=np.int64), np.array([], dtype=np.int64), np.array([])).tolist()
    []
    """
    chosen: list[npt.NDArray[np.intp]] = []
    alive = np.arange(i.size)
    # rank pairs by (distance, position) so that every end has one strict best
    rank = np.empty(i.size, dtype=np.int64)
    rank[np.lexsort((np.arange(i.size), d))] = np.arange(i.size)
    while alive.size:
        ai, aj, ar = i[alive], j[alive], rank[alive]
        best_i = np.full(int(ai.max()) + 1, np.iinfo(np.int64).max)
        np.minimum.at(best_i, ai, ar)
        best_j = np.full(int(aj.max()) + 1, np.iinfo(np.int64).max)
        np.minimum.at(best_j, aj, ar)
        win = (best_i[ai] == ar) & (best_j[aj] == ar)
        won = alive[win]
        chosen.append(won)
        taken_i = np.zeros(best_i.size, dtype=bool)
        taken_i[ai[win]] = True
        taken_j = np.zeros(best_j.size, dtype=bool)
        taken_j[aj[win]] = True
        alive = alive[~(taken_i[ai] | taken_j[aj])]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.intp)


def match_points(pred_lon: Any, pred_lat: Any, true_lon: Any, true_lat: Any, *, radius_m: float) -> MatchResult:
    """Match predictions to true places one-to-one within ``radius_m`` (closest pairs first).

    >>> m = match_points(np.array([0.0, 0.0005]), np.array([0.0, 0.0]), np.array([0.0]), np.array([0.0]),
    ...                  radius_m=100.0)
    >>> m.pred_index.tolist(), m.tp, m.fp
    ([0], 1, 1)
    """
    i, j, d = candidate_pairs(pred_lon, pred_lat, true_lon, true_lat, radius_m=radius_m)
    sel = match_pairs(i, j, d)
    order = np.argsort(i[sel], kind="stable")
    sel = sel[order]
    return MatchResult(
        pred_index=i[sel],
        true_index=j[sel],
        distance_m=d[sel],
        n_pred=int(np.asarray(pred_lon).size),
        n_true=int(np.asarray(true_lon).size),
    )


def days_to_first_detection(result: MatchResult, pred_first_day: Any, true_first_day: Any) -> F64:
    """Days from a true place's first active day to the first day its matched prediction was seen.

    One value per matched pair (order of ``result``); negative values mean the
    prediction's evidence predates the recorded activity.

    >>> m = match_points(np.array([0.0]), np.array([0.0]), np.array([0.0]), np.array([0.0]), radius_m=10.0)
    >>> days_to_first_detection(m, np.array([3]), np.array([1])).tolist()
    [2.0]
    >>> days_to_first_detection(match_points([], [], [], [], radius_m=1.0), [], []).size
    0
    """
    p = np.asarray(pred_first_day, dtype=np.float64)
    t = np.asarray(true_first_day, dtype=np.float64)
    if result.tp == 0:
        return np.zeros(0)
    out: F64 = p[result.pred_index] - t[result.true_index]
    return out
