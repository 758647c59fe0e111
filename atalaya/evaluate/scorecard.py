"""The scorecard: every analytic scored against a scenario's ground truth (DESIGN.md §4).

Evaluators are registered explicitly; each takes the workspace, its knowledge
store and the truth directory and returns a flat dict of figures.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

from atalaya.core.workspace import Workspace
from atalaya.store.knowledge import KnowledgeStore

Evaluator = Callable[[Workspace, KnowledgeStore, Path], dict[str, Any]]

EVALUATORS: dict[str, str] = {
    "tracks_gmti": "atalaya.evaluate.scorecard:evaluate_tracks",
    "sites": "atalaya.evaluate.scorecard:evaluate_sites",
    "maritime_corridors": "atalaya.evaluate.scorecard:evaluate_events",
    "overflight": "atalaya.evaluate.scorecard:evaluate_overflight",
    "compliance": "atalaya.evaluate.scorecard:evaluate_compliance",
    "position_jumps": "atalaya.evaluate.spoofing:evaluate_spoofing",
    "persistent_heat": "atalaya.evaluate.heat:evaluate_heat",
}
"""Name → ``module:function(ws, store, truth_dir) -> dict``, in scorecard order."""


def evaluate_tracks(ws: Workspace, store: KnowledgeStore, truth_dir: Path) -> dict[str, Any]:
    """Tracks from id-less GMTI detections: GOSPA (c=200 m, p=2) and SIAP against the observable truth."""
    import pyarrow.parquet as pq

    from atalaya.evaluate.tracking import scenario_tracking_case, score_tracks

    path = ws.root / "analysis" / "tracks" / "unidentified-GMTI.parquet"
    case = scenario_tracking_case(Path(truth_dir).parent, sensor="GMTI")
    pts = pq.read_table(path, columns=["track_id", "time", "lon", "lat"])
    figures = score_tracks(pts, case.truth)
    keep = ("gospa", "localisation", "missed", "false", "completeness", "spuriousness", "id_changes", "n_tracks",
            "n_truths", "position_accuracy_m")  # fmt: skip
    return {k: round(v, 4) for k, v in figures.items() if any(k.startswith(x) for x in keep)}


def evaluate_sites(ws: Workspace, store: KnowledgeStore, truth_dir: Path) -> dict[str, Any]:
    """Stored sites (not dismissed) against the true sites, one-to-one within 500 m (``persistent_heat`` sites, not
    a signature of illicit use, are scored by the ``persistent_heat`` case)."""
    from sqlalchemy import select

    from atalaya.evaluate.sites import score_sites
    from atalaya.store.knowledge import schema as ks

    with store.engine.connect() as conn:
        rows = conn.execute(
            select(ks.sites.c.lon, ks.sites.c.lat, ks.sites.c.kind, ks.sites.c.first_seen).where(
                ks.sites.c.status != "dismissed", ks.sites.c.kind != "persistent_heat"
            )
        ).all()

    def epoch_day(t: Any) -> float:
        if t is None:
            return float("nan")
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        return float(int(t.timestamp()) // 86_400)

    predicted = {
        "lon": [r.lon for r in rows],
        "lat": [r.lat for r in rows],
        "kind": [r.kind for r in rows],
        "first_day": [epoch_day(r.first_seen) for r in rows],
    }
    return score_sites(predicted, truth_dir)


def evaluate_events(ws: Workspace, store: KnowledgeStore, truth_dir: Path) -> dict[str, Any]:
    """Dark gaps, rendezvous, border crossings and corridor IoU (flattened to scorecard figures)."""
    from atalaya.evaluate.events import score_workspace

    raw = score_workspace(ws, truth_dir)
    flat: dict[str, Any] = {}
    for name, fig in raw.items():
        if not isinstance(fig, dict):
            continue
        for k, v in fig.items():
            if name == "corridor_iou":
                flat[f"corridor_iou_{k}"] = v
            elif k in ("precision", "recall", "f1", "f0_5", "n_pred", "n_true"):
                flat[f"{name}_{k}"] = v
    return flat


def evaluate_overflight(ws: Workspace, store: KnowledgeStore, truth_dir: Path) -> dict[str, Any]:
    from atalaya.evaluate.overflight import score_overflight
    from atalaya.sovereignty.overflight import account_workspace_sorties

    return score_overflight(account_workspace_sorties(ws), truth_dir)


def evaluate_compliance(ws: Workspace, store: KnowledgeStore, truth_dir: Path) -> dict[str, Any]:
    """Compliance verdicts of the stored sorties (stored agreements, flown tracks from the lake) against
    ``truth/compliance.json``: status accuracy, planted violations found, compliant sorties flagged, and
    precision/recall per rule (flattened)."""
    from atalaya.evaluate.compliance import load_compliance_truth, score_compliance
    from atalaya.geo.territories import load_territories
    from atalaya.sovereignty.agreements import stored_agreements
    from atalaya.sovereignty.compliance import check_sorties
    from atalaya.sovereignty.repository import sorties_from_store
    from atalaya.sovereignty.tracks import sortie_tracks
    from atalaya.store.lake import Lake

    truth = load_compliance_truth(Path(truth_dir))
    if not truth:
        return {}
    sorties = sorties_from_store(store)
    tracks = sortie_tracks(Lake(ws.lake_dir), [s.sortie_id for s in sorties])
    verdicts = check_sorties(
        sorties=sorties, tracks=tracks, agreements=stored_agreements(store), territories=load_territories()
    )
    fig = score_compliance([v.to_dict() for v in verdicts], truth)
    flat = {k: v for k, v in fig.items() if not isinstance(v, dict)}
    for rule, c in fig["rules"].items():
        flat[f"{rule}_precision"] = c["precision"]
        flat[f"{rule}_recall"] = c["recall"]
    return flat


def scorecard(ws: Workspace, store: KnowledgeStore, truth_dir: Path, only: list[str] | None = None) -> dict[str, Any]:
    """Run the evaluators (all, or ``only``) and collect their figures."""
    out: dict[str, Any] = {}
    for name, target in EVALUATORS.items():
        if only and name not in only:
            continue
        module, _, fn = target.partition(":")
        f: Evaluator = getattr(importlib.import_module(module), fn)
        out[name] = f(ws, store, Path(truth_dir))
    return out


def render_scorecard(card: dict[str, Any]) -> str:
    """A plain-text scorecard, one block per analytic."""
    lines = ["scorecard (against the scenario ground truth)"]
    for name, figures in card.items():
        lines.append(f"  {name}")
        for k, v in figures.items():
            if isinstance(v, dict | list):
                continue
            val = f"{v:.3f}" if isinstance(v, float) else str(v)
            lines.append(f"    {k:<28} {val}")
    return "\n".join(lines)
