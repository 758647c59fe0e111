"""Scorecard over several seeds: generate a scenario per seed, ingest, analyse, account, evaluate; print a table.

    .venv/bin/python bench/scorecard.py --size small --seeds 41 42 43 [--out /tmp/scorecards]

Seeds given here should not have been used to develop the analytics. The table is what docs/scorecard.md records.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

ROWS: list[tuple[str, str, str]] = [
    ("tracks_gmti", "completeness", "GMTI tracks: SIAP completeness"),
    ("tracks_gmti", "spuriousness", "GMTI tracks: SIAP spuriousness"),
    ("tracks_gmti", "gospa", "GMTI tracks: GOSPA (c=200 m, p=2)"),
    ("tracks_gmti", "id_changes", "GMTI tracks: ID changes"),
    ("sites", "f1", "sites: F1 (all true sites, 500 m)"),
    ("sites", "precision", "sites: precision"),
    ("sites", "recall", "sites: recall (all)"),
    ("sites", "median_error_m", "sites: median location error (m)"),
    ("sites", "kind_accuracy", "sites: kind right (share of matches)"),
    ("sites", "observable_f1", "sites: F1 (observable sites)"),
    ("sites", "observable_precision", "sites: precision (observable)"),
    ("sites", "observable_recall", "sites: recall (observable)"),
    ("maritime_corridors", "dark_gaps_f0_5", "dark gaps: F0.5"),
    ("maritime_corridors", "rendezvous_recall", "rendezvous: recall"),
    ("maritime_corridors", "crossings_observable_recall", "crossings: recall, observable (2 km, 30 min)"),
    ("maritime_corridors", "crossings_observable_precision", "crossings: precision"),
    ("maritime_corridors", "crossings_lake_tracks_recall", "crossings: recall, all true crossings"),
    ("maritime_corridors", "corridor_iou_vehicle", "corridors: H3 IoU (vehicles)"),
    ("maritime_corridors", "corridor_iou_vessel", "corridors: H3 IoU (vessels)"),
    ("maritime_corridors", "corridor_iou_aircraft", "corridors: H3 IoU (aircraft)"),
    ("overflight", "time_err_s_p95", "overflight: p95 time error (s)"),
    ("overflight", "distance_err_rel_p95", "overflight: p95 relative distance error"),
    ("overflight", "depth_err_km_p95", "overflight: p95 depth error (km)"),
    ("compliance", "status_accuracy", "compliance: verdict status right (share of sorties)"),
    ("compliance", "compliant_share", "compliance: share of sorties compliant"),
    ("compliance", "planted_found", "compliance: planted violations found"),
    ("compliance", "planted", "compliance: planted violations"),
    ("compliance", "compliant_flagged", "compliance: compliant sorties flagged"),
    ("overflight", "conservation_worst_s", "overflight: worst conservation error (s)"),
    ("position_jumps", "f1", "position jumps: F1 (planted ADS-B spoofing and bad decodes, 60 s)"),
    ("position_jumps", "precision", "position jumps: precision"),
    ("position_jumps", "recall", "position jumps: recall"),
    ("position_jumps", "cause_accuracy", "position jumps: cause right (share of matches)"),
    ("persistent_heat", "f1", "persistent heat: F1 (flares, 2 km)"),
    ("persistent_heat", "precision", "persistent heat: precision"),
    ("persistent_heat", "recall", "persistent heat: recall (all flares)"),
    ("persistent_heat", "observable_recall", "persistent heat: recall (flares seen on >= 10 days)"),
    ("persistent_heat", "median_error_m", "persistent heat: median location error (m)"),
    ("persistent_heat", "other_kinds_at_flares", "persistent heat: other kinds' sites at flares"),
]


def run_seed(size: str, seed: int, root: Path) -> dict[str, Any]:
    from atalaya.analytics import ANALYTICS, run_analytics
    from atalaya.core.markings import Marking
    from atalaya.core.workspace import init_workspace
    from atalaya.evaluate.scorecard import scorecard
    from atalaya.ingest.pipeline import ingest_paths
    from atalaya.ingest.records import load_records
    from atalaya.scenario.generate import generate
    from atalaya.sovereignty.agreements import load_agreements, store_agreements
    from atalaya.sovereignty.service import run as run_sovereignty
    from atalaya.store.knowledge import KnowledgeStore

    t0 = time.perf_counter()
    scen = root / f"{size}-{seed}"
    generate(scen, size=size, seed=seed)
    ws = init_workspace(root / f"ws-{size}-{seed}", party="USA")
    ingest_paths(ws, [scen / "feeds"])
    store = KnowledgeStore.open(ws.db_url)
    try:
        mk = Marking.from_text("TLP:AMBER;ORIG:USA")
        load_records(store, scen / "records", marking=mk)
        store_agreements(store, load_agreements([scen / "records" / "agreements"]).all())
        run_analytics(ws, store, list(ANALYTICS), progress=False)
        run_sovereignty(ws, store)
        card = scorecard(ws, store, scen / "truth")
    finally:
        store.close()
    card["seconds"] = round(time.perf_counter() - t0, 1)
    return card


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="small")
    ap.add_argument("--seeds", type=int, nargs="+", default=[41, 42, 43])
    ap.add_argument("--out", type=Path, default=None, help="keep scenarios and workspaces here")
    args = ap.parse_args(argv)
    root = args.out or Path(tempfile.mkdtemp(prefix="atalaya-scorecard-"))
    root.mkdir(parents=True, exist_ok=True)
    cards = {}
    for seed in args.seeds:
        cards[seed] = run_seed(args.size, seed, root)
        (root / f"scorecard-{args.size}-{seed}.json").write_text(json.dumps(cards[seed], indent=1, default=str))
    head = "| figure | " + " | ".join(f"seed {s}" for s in args.seeds) + " |"
    print(head)
    print("|---|" + "---|" * len(args.seeds))
    for section, key, label in ROWS:
        vals = []
        for s in args.seeds:
            v = cards[s].get(section, {}).get(key)
            vals.append("—" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)))
        print(f"| {label} | " + " | ".join(vals) + " |")
    print(f"\nworkspaces and JSON scorecards: {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
