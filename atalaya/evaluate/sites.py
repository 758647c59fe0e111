"""Score suspected sites against the scenario ground truth (``OUT/truth/sites.parquet``).

Predictions and true sites are matched one-to-one within ``radius_m``
(:func:`atalaya.geo.matching.match_points`); the report gives precision,
recall, F1, F0.5, the median location error, the days from a site's first
activity to its first supporting detection, per-kind recall and the share of
matched sites whose kind was right. Crossing points are scored by the
crossings analytic, not here.

A site no sensor saw cannot be found, so the report also scores against two
subsets of the true sites (see :func:`observability`):

- *observed*: at least one detection in ``truth/detections.parquet`` carries
  the site's truth id;
- *observable*: at least :data:`OBSERVABLE_MIN_DETECTIONS` detections
  attributable to the site on at least :data:`OBSERVABLE_MIN_DAYS` distinct UTC
  days. A detection is attributable when its truth id is the site's, or when it
  is a true (not false-alarm) detection of something mobile (vehicle, vessel,
  aircraft, RF emitter) that is stopped (speed under 2 m/s or unknown) within
  :data:`OBSERVABLE_RADIUS_M` of the site: the people, phones and vehicles at
  the place. Static detections (structures, heat) count only by truth id, so a
  neighbour's barn is not the lab's evidence. Two days are the least from
  which a *persistent* place can be told from a one-off event, which is what a
  suspected site is.

Predictions matched to true sites outside a subset are left out of that
subset's score (they are neither right nor wrong there). The flat keys
``observable_precision``, ``observable_recall``, ``observable_f1`` … carry the
observable figures for the scorecard.

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
from atalaya.geo.matching import days_to_first_detection, match_points

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

SITE_KINDS = ("lab", "stash_house", "airstrip", "landing_beach")
"""True site kinds scored by default (crossings belong to the crossings analytic)."""
DEFAULT_RADIUS_M = 500.0
"""Default matching radius."""
OBSERVABLE_MIN_DETECTIONS = 2
"""Attributable detections a true site needs to count as observable."""
OBSERVABLE_MIN_DAYS = 2
"""Distinct UTC days with attributable detections a true site needs to count as observable."""
OBSERVABLE_RADIUS_M = 300.0
"""Distance within which a stopped mobile detection is attributed to a true site."""
_STOPPED_MPS = 2.0
_MOBILE_KINDS = ("vehicle", "vessel", "aircraft", "emitter")
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
    observable: npt.NDArray[np.bool_] | None = None
    """Whether the site is observable (see the module docstring); None: same as ``observed``."""


def _truth_dir(path: Path) -> Path:
    p = Path(path)
    return p / "truth" if (p / "truth" / "sites.parquet").exists() else p


def _feed_detections(sdir: Path, files: list[str]) -> pa.Table:
    """``file, row, time_us, lon, lat, kind, speed_mps`` of the detection feed rows (row 1 is the first data row)."""
    import pyarrow.csv as pcsv

    parts = []
    for f in files:
        path = sdir / f
        if not path.exists():
            continue
        t = pcsv.read_csv(
            path,
            convert_options=pcsv.ConvertOptions(
                include_columns=["time", "lon", "lat", "kind", "speed_mps"],
                column_types={"time": pa.timestamp("us", tz="UTC"), "speed_mps": pa.float64(), "kind": pa.string()},
            ),
        )
        parts.append(
            pa.table(
                {
                    "file": pa.array([f] * t.num_rows, type=pa.string()),
                    "row": pa.array(np.arange(1, t.num_rows + 1, dtype=np.int64)),
                    "time_us": t.column("time").cast(pa.int64()),
                    "lon": t.column("lon").cast(pa.float64()),
                    "lat": t.column("lat").cast(pa.float64()),
                    "kind": t.column("kind"),
                    "speed_mps": t.column("speed_mps"),
                }
            )
        )
    return pa.concat_tables(parts) if parts else pa.table({"file": pa.array([], pa.string())})


def observability(
    site_id: list[str],
    lon: F64,
    lat: F64,
    detections: pa.Table,
    *,
    min_detections: int = OBSERVABLE_MIN_DETECTIONS,
    min_days: int = OBSERVABLE_MIN_DAYS,
    radius_m: float = OBSERVABLE_RADIUS_M,
) -> tuple[I64, I64]:
    """Attributable detections and distinct days per true site (see the module docstring).

    ``detections`` has ``truth_id, false_alarm, time_us, lon, lat, kind, speed_mps``.
    A site is observable when both counts reach ``min_detections`` and ``min_days``.

    >>> det = pa.table({"truth_id": ["lab-1", "lab-1", "phone-9", None], "false_alarm": [False, False, False, True],
    ...                 "time_us": [0, 86_400_000_000, 2 * 86_400_000_000, 0],
    ...                 "lon": [-107.0, -107.0, -107.001, -107.0], "lat": [25.0, 25.0, 25.0, 25.0],
    ...                 "kind": ["structure", "thermal", "emitter", "vehicle"],
    ...                 "speed_mps": [None, None, 0.0, 0.0]})
    >>> n, d = observability(["lab-1", "lab-2"], np.array([-107.0, -100.0]), np.array([25.0, 20.0]), det)
    >>> n.tolist(), d.tolist()
    ([3, 0], [3, 0])
    """
    from atalaya.geo.matching import candidate_pairs

    ns = len(site_id)
    if detections.num_rows == 0 or ns == 0:
        return np.zeros(ns, dtype=np.int64), np.zeros(ns, dtype=np.int64)

    def col(name: str) -> npt.NDArray[Any]:
        return np.asarray(detections.column(name).to_numpy(zero_copy_only=False))

    tid = detections.column("truth_id")
    pos = np.asarray(pc.index_in(tid, value_set=pa.array(site_id, pa.string())).fill_null(-1).to_numpy(), np.int64)
    fa = np.asarray(detections.column("false_alarm").fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
    kind = detections.column("kind").cast(pa.string())
    mobile = np.asarray(pc.is_in(kind, value_set=pa.array(_MOBILE_KINDS)).fill_null(False).to_numpy(), dtype=bool)
    spd = np.asarray(detections.column("speed_mps").cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64)
    near_ok = np.flatnonzero(mobile & ~fa & ~(spd >= _STOPPED_MPS) & (pos < 0))
    di, sj, _ = candidate_pairs(col("lon")[near_ok], col("lat")[near_ok], lon, lat, radius_m=radius_m)
    by_id = np.flatnonzero(pos >= 0)
    det = np.r_[by_id, near_ok[di]]
    site = np.r_[pos[by_id], sj]
    # a detection near two sites counts for both; one detection counts once per site
    pair = np.unique(site * (1 << 40) + det)
    site, det = pair >> 40, pair & ((1 << 40) - 1)
    day = col("time_us").astype(np.int64)[det] // _US_PER_DAY
    n = np.bincount(site, minlength=ns).astype(np.int64)
    sd = np.unique(site * (1 << 32) + (day - day.min() if day.size else day))
    days = np.bincount(sd >> 32, minlength=ns).astype(np.int64)
    return n, days


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
    observable: npt.NDArray[np.bool_] | None = None
    det = tdir / "detections.parquet"
    lon = t.column("lon").to_numpy().astype(np.float64)
    lat = t.column("lat").to_numpy().astype(np.float64)
    if det.exists() and ids:
        truth_det = pq.read_table(det)
        seen = truth_det.column("truth_id")
        observed = np.asarray(
            pc.is_in(pa.array(ids), value_set=pc.unique(seen.drop_null())).to_numpy(zero_copy_only=False), dtype=bool
        )
        if "file" in truth_det.column_names and "row" in truth_det.column_names:
            files = sorted(str(f) for f in pc.unique(truth_det.column("file")).to_pylist() if f is not None)
            feed = _feed_detections(tdir.parent, files)
            if feed.num_rows:
                joined = truth_det.select(["file", "row", "truth_id", "false_alarm"]).join(
                    feed, keys=["file", "row"], join_type="inner"
                )
                n, days = observability(ids, lon, lat, joined)
                observable = (n >= OBSERVABLE_MIN_DETECTIONS) & (days >= OBSERVABLE_MIN_DAYS)
    return TruthSites(
        id=ids,
        kind=[str(x) for x in t.column("kind").to_pylist()],
        lon=lon,
        lat=lat,
        first_day=first_day.astype(np.int64),
        observed=observed,
        observable=observable,
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


def _subset_score(
    lon: F64, lat: F64, t: TruthSites, m: Any, subset: npt.NDArray[np.bool_], radius_m: float
) -> dict[str, Any]:
    keep_pred = np.ones(m.n_pred, dtype=bool)
    keep_pred[m.pred_index[~subset[m.true_index]]] = False
    ms = match_points(lon[keep_pred], lat[keep_pred], t.lon[subset], t.lat[subset], radius_m=radius_m)
    out: dict[str, Any] = ms.to_dict()
    return out


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
    # against the true sites some sensor saw, and those observable: predictions matched elsewhere are left out
    report["observed"] = _subset_score(lon, lat, t, m, t.observed, radius_m)
    observable = t.observed if t.observable is None else t.observable
    sub = _subset_score(lon, lat, t, m, observable, radius_m)
    report["observable"] = sub
    for k in ("n_true", "tp", "fp", "fn", "precision", "recall", "f1", "f0_5", "median_error_m"):
        report[f"observable_{k}"] = sub[k]
    report["median_error_m"] = None if math.isnan(m.median_error_m) else round(m.median_error_m, 1)
    return report
