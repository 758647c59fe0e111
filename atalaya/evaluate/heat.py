"""Score persistent-heat sites against the scenario's flares (``OUT/truth/persistent_heat.parquet``).

The scenario's FIRMS history (:mod:`atalaya.scenario.heat`) holds gas flares
offshore and on land, one-off fires and farms burned every season. Stored
sites of kind ``persistent_heat`` are matched one-to-one to the flares within
``radius_m`` (2 km by default: a MODIS pixel at the swath edge is 4.8 km
across, and the flares of one platform complex stand a kilometre or two
apart); the report gives precision, recall, F1, the median location error and
recall per flare kind.

A flare detected on fewer than :data:`OBSERVABLE_MIN_DAYS` distinct days
cannot be told from a farm burned every season; the ``observable_*`` figures
score against the flares seen on at least that many days (predictions matched
to the others are left out). ``other_kinds_at_flares`` counts the sites of
any other kind within ``radius_m`` of a flare: heat taken for a lab, a stash
house, an airstrip or a beach.

>>> import numpy as np
>>> truth = HeatTruth(id=["flare-001", "flare-002"], kind=["offshore_flare", "industrial_flare"],
...                   lon=np.array([-92.2, -94.5]), lat=np.array([19.4, 18.0]), days=np.array([40, 3]))
>>> r = score_heat({"lon": [-92.201, -100.0], "lat": [19.4, 20.0], "kind": ["persistent_heat"] * 2}, truth)
>>> r["tp"], r["fp"], r["recall"], r["observable_recall"], r["observable_precision"]
(1, 1, 0.5, 1.0, 0.5)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow.parquet as pq

from atalaya.core.errors import ValidationError
from atalaya.core.workspace import Workspace
from atalaya.geo.matching import candidate_pairs, match_points
from atalaya.store.knowledge import KnowledgeStore

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

PERSISTENT_HEAT = "persistent_heat"
"""The site kind scored here (as :data:`atalaya.fusion.sites.PERSISTENT_HEAT`)."""
DEFAULT_RADIUS_M = 2_000.0
"""Default matching radius."""
OBSERVABLE_MIN_DAYS = 10
"""Distinct days with a detection a flare needs to count as observable (the default threshold's days)."""


@dataclass(frozen=True, kw_only=True)
class HeatTruth:
    """The flares of a scenario."""

    id: list[str]
    """``flare-001`` …"""
    kind: list[str]
    """``offshore_flare`` or ``industrial_flare``."""
    lon: F64
    """Longitudes."""
    lat: F64
    """Latitudes."""
    days: I64
    """Distinct days on which the FIRMS history holds a detection of the flare."""


def load_heat_truth(path: Path | str) -> HeatTruth:
    """Read ``truth/persistent_heat.parquet`` (``path`` is the scenario directory or its ``truth/``)."""
    p = Path(path)
    f = p / "truth" / "persistent_heat.parquet" if (p / "truth").is_dir() else p / "persistent_heat.parquet"
    if not f.exists():
        raise ValidationError(
            f"no persistent-heat truth at {f}",
            hint="pass the directory written by `atalaya scenario generate` (or its truth/); "
            "scenarios generated before the FIRMS history have none: generate it again",
        )
    t = pq.read_table(f)
    return HeatTruth(
        id=[str(x) for x in t.column("site_id").to_pylist()],
        kind=[str(x) for x in t.column("kind").to_pylist()],
        lon=np.asarray(t.column("lon").to_numpy(), dtype=np.float64),
        lat=np.asarray(t.column("lat").to_numpy(), dtype=np.float64),
        days=np.asarray(t.column("detection_days").to_numpy(), dtype=np.int64),
    )


def _column(pred: Any, name: str) -> list[Any]:
    v = pred.get(name) if isinstance(pred, dict) else getattr(pred, name, None)
    return [] if v is None else list(v)


def score_heat(
    predicted: Any,
    truth: HeatTruth | Path | str,
    *,
    radius_m: float = DEFAULT_RADIUS_M,
    min_days: int = OBSERVABLE_MIN_DAYS,
) -> dict[str, Any]:
    """Score predicted sites (a dict of columns ``lon, lat, kind`` or an object with those attributes; only
    ``persistent_heat`` ones are scored) against the flares; returns a flat, JSON-ready report."""
    t = truth if isinstance(truth, HeatTruth) else load_heat_truth(truth)
    kind = np.asarray(_column(predicted, "kind"), dtype=object)
    lon = np.asarray(_column(predicted, "lon"), dtype=np.float64)
    lat = np.asarray(_column(predicted, "lat"), dtype=np.float64)
    if not (kind.size == lon.size == lat.size):
        raise ValidationError(
            f"predicted sites have {lon.size} lon, {lat.size} lat and {kind.size} kind values",
            hint="pass one lon, lat and kind per site",
        )
    heat = kind == PERSISTENT_HEAT
    hx, hy = lon[heat], lat[heat]
    m = match_points(hx, hy, t.lon, t.lat, radius_m=radius_m)
    report: dict[str, Any] = {"radius_m": radius_m, **m.to_dict()}
    found = m.true_matched()
    tk = np.asarray(t.kind, dtype=object)
    for k in sorted(set(t.kind)):
        report[f"recall_{k}"] = round(float(found[tk == k].mean()), 4) if (tk == k).any() else None
    # against the flares seen on enough days: predictions matched to the others are left out
    seen = t.days >= min_days
    keep = np.ones(hx.size, dtype=bool)
    keep[m.pred_index[~seen[m.true_index]]] = False
    sub = match_points(hx[keep], hy[keep], t.lon[seen], t.lat[seen], radius_m=radius_m).to_dict()
    for k in ("n_true", "tp", "fp", "fn", "precision", "recall", "f1"):
        report[f"observable_{k}"] = sub[k]
    # sites of another kind at a flare: heat that leaked into the other kinds
    oi, _, _ = candidate_pairs(lon[~heat], lat[~heat], t.lon, t.lat, radius_m=radius_m)
    report["other_kinds_at_flares"] = int(np.unique(oi).size)
    return report


def evaluate_heat(ws: Workspace, store: KnowledgeStore, truth_dir: Path) -> dict[str, Any]:
    """Scorecard evaluator: the stored sites (not dismissed) against the scenario's flares; empty when the
    scenario has no persistent-heat truth (generated before the FIRMS history)."""
    from sqlalchemy import select

    from atalaya.store.knowledge import schema as ks

    if not (Path(truth_dir) / "persistent_heat.parquet").exists():
        return {}
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(ks.sites.c.lon, ks.sites.c.lat, ks.sites.c.kind).where(ks.sites.c.status != "dismissed")
        ).all()
    predicted = {"lon": [r.lon for r in rows], "lat": [r.lat for r in rows], "kind": [r.kind for r in rows]}
    return score_heat(predicted, Path(truth_dir))


__all__ = [
    "DEFAULT_RADIUS_M",
    "OBSERVABLE_MIN_DAYS",
    "PERSISTENT_HEAT",
    "HeatTruth",
    "evaluate_heat",
    "load_heat_truth",
    "score_heat",
]
