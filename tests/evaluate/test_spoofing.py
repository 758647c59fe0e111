"""Planted ADS-B spoofing and bad decodes in the scenario, found as position-jump events and scored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from atalaya.core.workspace import Workspace
from atalaya.evaluate.spoofing import evaluate_spoofing
from atalaya.fusion.jumps import events_dir
from atalaya.fusion.tracks import run_tracks
from atalaya.store.knowledge import KnowledgeStore

pytestmark = pytest.mark.xdist_group("demo")


def test_planted_jumps_leave_true_tracks_alone(demo_scenario: Path) -> None:
    truth = pq.read_table(demo_scenario / "truth" / "position_jumps.parquet")
    kinds = truth.column("kind").to_pylist()
    assert kinds.count("spoofing") >= 2 and kinds.count("bad_decode") >= 1
    assert (np.asarray(truth.column("distance_km")) >= 150.0).all()
    # the true tracks hold no jumped position: at each jump's time the aircraft truly was far from it
    from atalaya.geo.kernels import geodesic_distance

    for row in truth.to_pylist():
        true = pq.read_table(demo_scenario / "truth" / "tracks" / f"{row['start'].date()}.parquet",
                             columns=["trip_id", "time", "lon", "lat"],
                             filters=[("trip_id", "=", row["trip_id"]), ("time", "=", row["start"])])  # fmt: skip
        assert true.num_rows == 1
        d = geodesic_distance(np.asarray(true.column("lon")), np.asarray(true.column("lat")),
                              np.array([row["jump_lon"]]), np.array([row["jump_lat"]]))  # fmt: skip
        assert float(d[0]) > 100_000.0


def test_scenario_jumps_are_found_as_events(demo_workspace: Workspace, demo_scenario: Path) -> None:
    store = KnowledgeStore.open(demo_workspace.db_url)
    try:
        run_tracks(demo_workspace, store)
        fig = evaluate_spoofing(demo_workspace, store, demo_scenario / "truth")
    finally:
        store.close()
    assert fig["n_true"] >= 3
    assert fig["recall"] >= 0.9 and fig["precision"] >= 0.8 and fig["f1"] >= 0.85
    assert fig["cause_accuracy"] >= 0.9
    assert fig["distance_err_km_median"] < 5.0
    ev = pq.read_table(events_dir(demo_workspace) / "position_jumps.parquet")
    assert set(ev.column("kind").to_pylist()) == {"position_jump"}
