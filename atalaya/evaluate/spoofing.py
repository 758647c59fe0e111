"""Detected position jumps (:mod:`atalaya.fusion.jumps`) against the planted ones (``truth/position_jumps.parquet``).

A detected ``position_jump`` event matches a planted jump of the same ICAO24 whose first jumped report is within
``time_tol_s`` of the event's start (one-to-one, nearest in time first). Figures: precision, recall, F1, the
median error of the jump's length (km), and the share of matches whose cause is right (a planted ``spoofing``
episode found as ``spoofing_suspected``, a ``bad_decode`` as ``bad_decode``).

>>> import pyarrow as pa
>>> ts = pa.array([1_000_000_000, 2_000_000_000], type=pa.timestamp("us", tz="UTC"))
>>> pred = pa.table({"ident": ["0d0001", "0d0002"], "start": ts, "distance_km": [300.0, 200.0],
...                  "cause": ["spoofing_suspected", "bad_decode"]})
>>> truth = pa.table({"icao24": ["0d0001"], "start": ts[:1], "distance_km": [301.0], "kind": ["spoofing"]})
>>> fig = score_jumps(pred, truth)
>>> fig["precision"], fig["recall"], fig["distance_err_km_median"], fig["cause_accuracy"]
(0.5, 1.0, 1.0, 1.0)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from atalaya.core.workspace import Workspace
from atalaya.evaluate.events import match_events
from atalaya.store.knowledge import KnowledgeStore

_US = 1_000_000
CAUSE_OF = {"spoofing": "spoofing_suspected", "bad_decode": "bad_decode"}
"""The event cause that names each planted kind."""


def _seconds(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(col.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()), dtype=np.float64) / _US


def score_jumps(pred: pa.Table, truth: pa.Table, *, time_tol_s: float = 60.0) -> dict[str, Any]:
    """Position-jump events (``ident, start, distance_km, cause``) against planted jumps (``icao24, start,
    distance_km, kind``); see the module docs for the figures."""
    ps, ts = _seconds(pred.column("start")), _seconds(truth.column("start"))
    m = match_events(
        pred_key=[str(v) for v in pred.column("ident").to_pylist()], pred_start=ps, pred_end=ps,
        true_key=[str(v) for v in truth.column("icao24").to_pylist()], true_start=ts, true_end=ts,
        time_tol_s=time_tol_s,
    )  # fmt: skip
    ok = np.abs(ps[m.pred_index] - ts[m.true_index]) <= time_tol_s
    pi, ti = m.pred_index[ok], m.true_index[ok]
    out: dict[str, Any] = {
        "n_pred": int(pred.num_rows), "n_true": int(truth.num_rows), "tp": int(pi.size),
        "precision": round(pi.size / pred.num_rows, 4) if pred.num_rows else 1.0,
        "recall": round(pi.size / truth.num_rows, 4) if truth.num_rows else 1.0,
    }  # fmt: skip
    p, r = out["precision"], out["recall"]
    out["f1"] = round(2 * p * r / (p + r), 4) if p + r else 0.0
    dk = np.abs(np.asarray(pred.column("distance_km"))[pi] - np.asarray(truth.column("distance_km"))[ti])
    out["distance_err_km_median"] = round(float(np.median(dk)), 3) if dk.size else None
    causes = np.asarray(pred.column("cause").to_pylist(), dtype=object)[pi]
    want = np.asarray([CAUSE_OF.get(str(k)) for k in truth.column("kind").to_pylist()], dtype=object)[ti]
    out["cause_accuracy"] = round(float(np.mean(causes == want)), 4) if pi.size else None
    return out


def evaluate_spoofing(ws: Workspace, store: KnowledgeStore, truth_dir: Path) -> dict[str, Any]:
    """The scorecard case: ``WORKSPACE/analysis/events/position_jumps.parquet`` against the scenario's planted
    jumps (empty figures for a scenario without them)."""
    from atalaya.fusion.jumps import EVENTS_SCHEMA, events_dir

    truth_path = Path(truth_dir) / "position_jumps.parquet"
    if not truth_path.exists():
        return {}
    truth = pq.read_table(truth_path)
    if truth.num_rows == 0 and not truth.column_names:
        return {}
    path = events_dir(ws) / "position_jumps.parquet"
    pred = pq.read_table(path) if path.exists() else EVENTS_SCHEMA.empty_table()
    pred = pred.filter(pa.compute.equal(pred.column("ident_kind"), "icao24")) if pred.num_rows else pred
    return score_jumps(pred, truth)


__all__ = ["CAUSE_OF", "evaluate_spoofing", "score_jumps"]
