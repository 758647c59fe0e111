"""Compliance verdicts on generated scenarios against the planted violations of their truth."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from atalaya.evaluate.compliance import score_compliance, verdict_status
from atalaya.geo.territories import load_territories
from atalaya.scenario.config import get_config
from atalaya.scenario.sites import build_sites
from atalaya.scenario.sorties import agreements_record, build_sorties, reported_fixes
from atalaya.scenario.truth import compliance_truth
from atalaya.scenario.world import get_world
from atalaya.sovereignty.agreements import load_agreements
from atalaya.sovereignty.compliance import RULES, SortieRecord, TrackArrays, check_sorties


@cache
def _scored(seed: int, tmp: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    cfg = get_config("demo")
    world = get_world()
    sorties = build_sorties(cfg, build_sites(cfg, world, cfg.rng(seed, 1)), world, cfg.rng(seed, 2),
                            plant_rng=cfg.rng(seed, 5))  # fmt: skip
    docs = agreements_record(cfg)
    d = tmp / f"agreements-{seed}"
    d.mkdir(parents=True, exist_ok=True)
    for a in docs:
        (d / f"{a['id']}.yaml").write_text(yaml.safe_dump(a, sort_keys=False), encoding="utf-8")
    # the tracks as the feeds carry them (GPX: every 10 s, 6 decimals, altitude to 0.1 m)
    pairs = [(reported_fixes(s.t), s) for s in sorties]
    tracks = TrackArrays.build(
        sortie_id=np.concatenate([np.full(i.size, s.sortie_id, dtype=object) for i, s in pairs]),
        time_us=np.concatenate([s.t[i] * 1_000_000 for i, s in pairs]),
        lon=np.concatenate([np.round(s.lon[i], 6) for i, s in pairs]),
        lat=np.concatenate([np.round(s.lat[i], 6) for i, s in pairs]),
        alt_m=np.concatenate([np.round(s.alt[i], 1) for i, s in pairs]),
    )
    verdicts = check_sorties(
        sorties=[SortieRecord.from_dict(s.record()) for s in sorties],
        tracks=tracks,
        agreements=load_agreements([d]),
        territories=load_territories(),
    )
    return [v.to_dict() for v in verdicts], compliance_truth(sorties, docs)


@pytest.mark.parametrize("seed", [7, 12])
def test_planted_violations_found_and_compliant_sorties_pass(
    seed: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    verdicts, truth = _scored(seed, tmp_path_factory.getbasetemp())
    fig = score_compliance(verdicts, truth)
    assert fig["missing"] == 0 and fig["sorties"] == len(truth) >= 10
    # most sorties comply (or never enter foreign territory); a few violate on purpose
    statuses = [t["status"] for t in truth]
    assert statuses.count("violation") / len(statuses) <= 0.4
    assert fig["planted"] >= 2
    # every planted violation is found with its rule; no sortie compliant by the truth is flagged
    assert fig["planted_found"] == fig["planted"]
    assert fig["compliant_flagged"] == 0
    assert fig["status_accuracy"] == 1.0
    for rule, c in fig["rules"].items():
        assert c["precision"] == 1.0 and c["recall"] == 1.0, (rule, c)
    known = {r.id for r in RULES}
    for t in truth:
        assert set(t["rules"]) <= known and set(t["planted"]) <= set(t["rules"])


def test_planted_rules_cover_the_brief() -> None:
    from atalaya.scenario.sorties import PLAN_PLANTS, RECORD_PLANTS

    assert set(PLAN_PLANTS) | set(RECORD_PLANTS) == {
        "depth", "outside-area", "altitude", "time-window", "platform-type", "notification-late", "report-late",
        "report-missing", "no-agreement",
    }  # fmt: skip
    assert set(PLAN_PLANTS) | set(RECORD_PLANTS) <= {r.id for r in RULES}


def test_score_compliance_counts_misses_and_false_flags() -> None:
    truth = [
        {"sortie_id": "A", "status": "violation", "rules": ["depth", "altitude"], "planted": ["depth"]},
        {"sortie_id": "B", "status": "compliant", "rules": [], "planted": []},
        {"sortie_id": "C", "status": "no-host", "rules": [], "planted": []},
        {"sortie_id": "D", "status": "compliant", "rules": [], "planted": []},
    ]
    verdicts = [
        {"sortie_id": "A", "hosts": ["MEX"], "violations": [{"rule": "altitude"}]},
        {"sortie_id": "B", "hosts": ["MEX"], "violations": [{"rule": "depth"}]},
        {"sortie_id": "C", "hosts": [], "violations": []},
    ]
    f = score_compliance(verdicts, truth)
    assert f["planted"] == 1 and f["planted_found"] == 0
    assert f["compliant_flagged"] == 1 and f["missing"] == 1
    assert f["status_accuracy"] == 0.5  # A right (violation), C right, B wrong, D missing
    assert f["rules"]["depth"] == {"tp": 0, "fp": 1, "fn": 1, "precision": 0.0, "recall": 0.0}
    assert f["rules"]["altitude"]["recall"] == 1.0
    assert f["confusion"]["compliant"] == {"violation": 1, "missing": 1}
    assert verdict_status({"sortie_id": "X", "status": "unverifiable", "rules": []}) == ("unverifiable", set())
