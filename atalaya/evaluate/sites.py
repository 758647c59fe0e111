"""Score suspected sites against the scenario ground truth (``OUT/truth/sites.parquet``).

Predictions and true sites are matched one-to-one within ``radius_m``
(:func:`atalaya.evaluate.matching.match_points`); the report gives precision,
recall, F1, F0.5, the median location error, the days from a site's first
activity to its first supporting detection, per-kind recall and the share of
matched sites whose kind was right. Crossing points are scored by the
crossings analytic, not here. Because a site no sensor ever saw cannot be
found, the report also scores against the *observed* true sites (those with at
least one detection in ``truth/detections.parquet``).

>>> import numpy as np
>>> truth = TruthSites(id=["lab-001"], kind=["lab"], lon=np.array([-107.0]), lat=np.array([25.0]),
...                    first_day=np.array([20514]), observed=np.array([True]))
>>> r = score_sites({"lon": [-107.0005], "lat": [25.0], "kind": ["lab"], "first_day": [20515]}, truth)
>>> r["f1"], r["median_error_m"], r["days_to_first_detection"]["median"], r["kind_accuracy"]
(1.0, 50.5, 1.0, 1.0)
>>> score_sites({"lon": [], "lat": []}, truth)["recall"]
0.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from atalaya.core.errors import ValidationError
from atalaya.evaluate.matching import days_to_first_detection, match_points

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

SITE_KINDS = ("lab", "stash_house", "airstrip", "landing_beach")
"""True site kinds scored by default (crossings belong to the crossings analytic)."""
DEFAULT_RADIUS_M = 500.0
"""Default matching radius."""
_US_PER_DAY = 86_400_000_000


@dataclass(frozen=True, kw_only=True)
class TruthSites:
    """True sites of a scenario."""

    id: list[str]
    """Truth site ids (``lab-001`` …)."""
    kind: list[str]
    """Kinds."""
    lon: F64
    """Longitudes."""
    lat: F64
    """Latitudes."""
    first_day: I64
    """First active day, days since 1970-01-01 (-1 when never active)."""
    observed: npt.NDArray[np.bool_]
    """Whether any detection of the scenario came from the site."""


def _truth_dir(path: Path) -> Path:
    p = Path(path)
    return p / "truth" if (p / "truth" / "sites.parquet").exists() else p


def load_truth_sites(path: Path | str, *, kinds: tuple[str, ...] = SITE_KINDS) -> TruthSites:
    """Read ``truth/sites.parquet`` (``path`` is the scenario directory or its ``truth/``)."""
    tdir = _truth_dir(Path(path))
    f = tdir / "sites.parquet"
    if not f.exists():
        raise ValidationError(
            f"no truth sites at {f}", hint="pass the directory written by `atalaya scenario generate` (or its truth/)"
        )
    t = pq.read_table(f)
    t = t.filter(pc.is_in(t.column("kind"), value_set=pa.array(list(kinds))))
    fa = t.column("first_active")
    first = (
        pc.cast(fa, pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
        if t.num_rows
        else np.zeros(0)
    )
    valid = ~np.asarray(pc.is_null(fa).to_numpy(zero_copy_only=False), dtype=bool) if t.num_rows else np.zeros(0, bool)
    first_day = np.where(valid, np.floor_divide(np.nan_to_num(first).astype(np.int64), _US_PER_DAY), -1)
    ids = [str(x) for x in t.column("site_id").to_pylist()]
    observed = np.ones(len(ids), dtype=bool)
    det = tdir / "detections.parquet"
    if det.exists() and ids:
        seen = pq.read_table(det, columns=["truth_id"]).column("truth_id")
        observed = np.asarray(
            pc.is_in(pa.array(ids), value_set=pc.unique(seen.drop_null())).to_numpy(zero_copy_only=False), dtype=bool
        )
    return TruthSites(
        id=ids,
        kind=[str(x) for x in t.column("kind").to_pylist()],
        lon=t.column("lon").to_numpy().astype(np.float64),
        lat=t.column("lat").to_numpy().astype(np.float64),
        first_day=first_day.astype(np.int64),
        observed=observed,
    )


def _col(pred: Any, name: str) -> Any:
    if isinstance(pred, pa.Table):
        return pred.column(name).to_pylist() if name in pred.column_names else None
    if isinstance(pred, dict):
        return pred.get(name)
    return getattr(pred, name, None)


def _stats(x: F64) -> dict[str, float | None]:
    if x.size == 0:
        return {"median": None, "mean": None}
    return {"median": round(float(np.median(x)), 2), "mean": round(float(np.mean(x)), 2)}


def score_sites(
    predicted: Any, truth: TruthSites | Path | str, *, radius_m: float = DEFAULT_RADIUS_M
) -> dict[str, Any]:
    """Score predicted sites (a :class:`~atalaya.fusion.sites.SiteTable`, an Arrow table or a dict of columns
    ``lon, lat`` and optionally ``kind``, ``first_day``) against the truth; returns a JSON-ready report."""
    t = truth if isinstance(truth, TruthSites) else load_truth_sites(truth)
    lon = np.asarray(_col(predicted, "lon") if _col(predicted, "lon") is not None else [], dtype=np.float64)
    lat = np.asarray(_col(predicted, "lat") if _col(predicted, "lat") is not None else [], dtype=np.float64)
    m = match_points(lon, lat, t.lon, t.lat, radius_m=radius_m)
    report: dict[str, Any] = {"radius_m": radius_m, **m.to_dict()}
    kinds = _col(predicted, "kind")
    if kinds is not None and m.tp:
        pk = np.asarray(list(kinds), dtype=object)[m.pred_index]
        tk = np.asarray(t.kind, dtype=object)[m.true_index]
        report["kind_accuracy"] = round(float(np.mean(pk == tk)), 4)
    else:
        report["kind_accuracy"] = None
    fd = _col(predicted, "first_day")
    if fd is not None and m.tp:
        ok = t.first_day[m.true_index] >= 0
        dd = days_to_first_detection(m, np.asarray(fd, dtype=np.float64), t.first_day.astype(np.float64))[ok]
        report["days_to_first_detection"] = _stats(dd)
    else:
        report["days_to_first_detection"] = {"median": None, "mean": None}
    found = m.true_matched()
    tk_all = np.asarray(t.kind, dtype=object)
    report["recall_by_kind"] = {
        k: {"found": int(found[tk_all == k].sum()), "of": int((tk_all == k).sum())} for k in sorted(set(t.kind))
    }
    # against the true sites some sensor saw: predictions matched to unobserved sites are left out
    obs = t.observed
    keep_pred = np.ones(m.n_pred, dtype=bool)
    keep_pred[m.pred_index[~obs[m.true_index]]] = False
    mo = match_points(lon[keep_pred], lat[keep_pred], t.lon[obs], t.lat[obs], radius_m=radius_m)
    report["observed"] = mo.to_dict()
    report["median_error_m"] = None if math.isnan(m.median_error_m) else round(m.median_error_m, 1)
    return report
