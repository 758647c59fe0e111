"""The main job end to end on the demo scenario: every step runs, the figures hold, a re-run changes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from atalaya.cli.cmd_demo import LOGIN_FILE, run_demo
from atalaya.core.workspace import Workspace, init_workspace
from atalaya.store.translog.node import open_log


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path, demo_scenario: Path) -> None:
    d = tmp_path / "demo"
    d.mkdir()
    # reuse the session's generated scenario (same size and seed as the demo's default)
    shutil.copytree(demo_scenario, d / "scenario", ignore=shutil.ignore_patterns(".complete"))
    init_workspace(d, party="USA")
    figures = run_demo(d, size="demo", seed=7, db=None, progress=False)
    assert figures["ingest"]["quarantined"] == 0
    assert figures["ingest"]["accepted"] > 50_000
    assert figures["records"]["sorties"] >= 5
    assert set(figures["analytics"]) == {"tracks", "sites", "maritime", "corridors"}
    sov = figures["sovereignty"]
    assert sov["sorties"] == figures["records"]["sorties"]
    assert Path(sov["reports"]["MEX"]["html"]).read_text().count("<svg") >= 2
    card = figures["scorecard"]
    assert card["overflight"]["conservation_worst_s"] < 1e-3
    assert card["overflight"]["visits_missed"] == 0
    assert card["maritime_corridors"]["dark_gaps_f0_5"] >= 0.8
    assert card["maritime_corridors"]["rendezvous_recall"] >= 0.8
    assert card["maritime_corridors"]["crossings_observable_recall"] >= 0.9
    assert card["tracks_gmti"]["completeness"] >= 0.9
    assert card["tracks_gmti"]["spuriousness"] <= 0.1
    logins = json.loads((d / LOGIN_FILE).read_text())
    assert set(logins) == {"analyst", "liaison-mex"}
    assert (d / "exports" / "scorecard.json").exists()
    with open_log(Workspace.open(d), readonly=True) as log:
        size = log.size
        assert log.latest_checkpoint() is not None
    # running the main job again ingests nothing new and appends nothing to the log
    again = run_demo(d, size="demo", seed=7, db=None, progress=False)
    assert again["ingest"]["files_skipped"] == again["ingest"]["files"]
    assert again["sovereignty"]["log"]["agreements"]["appended"] == 0
    assert again["sovereignty"]["log"]["overflight"]["appended"] == 0
    assert again["sovereignty"]["log"]["overflight"]["log_size"] == size
