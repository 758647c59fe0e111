"""Score overflight accounting against the scenario's densely resampled truth (``truth/overflight.parquet``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from atalaya.sovereignty.accounting import Accounting


def score_overflight(acc: Accounting, truth_dir: Path) -> dict[str, Any]:
    """p50/p95 errors (time s, distance km and relative, country depth km), missed visits, conservation."""
    truth = pq.read_table(Path(truth_dir) / "overflight.parquet").to_pylist()
    ours = {(r["track_id"], r["level"], r["territory_id"]): r for r in acc.summary.to_pylist()}
    err_s, err_km, rel_km, err_depth = [], [], [], []
    missed = 0
    for t in truth:
        mine = ours.get((t["sortie_id"], t["level"], t["territory_id"]))
        if mine is None:
            missed += 1
            continue
        err_s.append(abs(mine["time_s"] - t["time_s"]))
        err_km.append(abs(mine["distance_km"] - t["distance_km"]))
        rel_km.append(err_km[-1] / max(t["distance_km"], 10.0))
        if t["level"] == "country" and t["territory_id"] != "INTL" and mine["max_depth_km"] is not None:
            err_depth.append(abs(mine["max_depth_km"] - t["max_depth_km"]))
    tracks = acc.tracks.to_pylist()
    worst_conservation_s = 0.0
    for tr in tracks:
        tot = sum(r["time_s"] for k, r in ours.items() if k[0] == tr["track_id"] and k[1] == "country")
        worst_conservation_s = max(worst_conservation_s, abs(tot - tr["duration_s"]))

    def pct(xs: list[float], q: float) -> float | None:
        return round(float(np.percentile(xs, q)), 4) if xs else None

    return {
        "visits_truth": len(truth),
        "visits_missed": missed,
        "time_err_s_p50": pct(err_s, 50),
        "time_err_s_p95": pct(err_s, 95),
        "distance_err_km_p95": pct(err_km, 95),
        "distance_err_rel_p95": pct(rel_km, 95),
        "depth_err_km_p95": pct(err_depth, 95),
        "conservation_worst_s": round(worst_conservation_s, 6),
    }
