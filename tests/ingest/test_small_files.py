"""Many small files: one commit and one Parquet file per partition, linear time, compaction, ``--replace``."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from atalaya.core.workspace import Workspace, init_workspace
from atalaya.ingest.base import ReadOptions
from atalaya.ingest.pipeline import ingest_paths
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.lake import Lake


def _cot(d: Path, n: int, start: int = 0) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        t = f"2024-05-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z"
        (d / f"ev{i:05d}.cot").write_text(
            f'<event version="2.0" uid="U-{i}" type="a-f-A" time="{t}" start="{t}" stale="{t}" how="m-g">'
            f'<point lat="{20 + i * 1e-3:.6f}" lon="{-100 - i * 1e-3:.6f}" hae="100" ce="10" le="10"/></event>\n',
            encoding="utf-8",
        )
    return d


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "ws", party="USA")


def _units(ws: Workspace) -> int:
    store = KnowledgeStore.open(ws.db_url)
    try:
        with store.engine.connect() as conn:
            return len(conn.execute(ks.ingest_units.select()).all())
    finally:
        store.close()


def test_small_files_share_one_commit_and_one_file_and_stay_exactly_once(ws: Workspace, tmp_path: Path) -> None:
    d = _cot(tmp_path / "in", 40)
    s = ingest_paths(ws, [d])
    assert s.totals()["files_ingested"] == 40 and s.totals()["accepted"] == 40
    lake = Lake(ws.lake_dir)
    assert len(lake.files()) == 1  # was 40 Parquet files
    assert len(list(lake.commits_dir.glob("*.json"))) == 1
    assert len(lake.committed_units()) == 40 and _units(ws) == 40
    again = ingest_paths(ws, [_cot(d, 5, start=40)])  # the 40 skipped one by one, 5 new ones ingested
    assert again.totals()["files_skipped"] == 40 and again.totals()["files_ingested"] == 5
    assert _units(ws) == 45
    assert lake.query("SELECT count(*) AS n FROM observations").column("n")[0].as_py() == 45


def test_a_failing_small_file_leaves_nothing_of_itself_in_the_batch(ws: Workspace, tmp_path: Path) -> None:
    d = _cot(tmp_path / "in", 5)
    (d / "ev00002.cot").unlink()
    (d / "ev00002.cot.gz").write_bytes(gzip.compress((d / "ev00001.cot").read_bytes() * 50)[:40])  # truncated
    s = ingest_paths(ws, [d], fmt="cot")
    statuses = sorted(u.status for u in s.units)
    assert statuses.count("ingested") == 4
    assert _units(ws) == statuses.count("ingested")


def test_each_partition_is_read_once_per_run_not_once_per_file(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_paths(ws, [_cot(tmp_path / "a", 30)])
    reads = []
    real = pq.read_table

    def counting(*a: object, **k: object) -> object:
        reads.append(a[0])
        return real(*a, **k)

    monkeypatch.setattr(pq, "read_table", counting)
    big = tmp_path / "big"  # files over the batching threshold take the one-unit path
    monkeypatch.setattr("atalaya.ingest.pipeline.SMALL_FILE_BYTES", 0)
    ingest_paths(ws, [_cot(big, 20, start=100)])
    assert len(reads) <= 1  # before: every unit read every file of the partition (20 units: 20 + 190 reads)


def test_compaction_rewrites_a_fragmented_partition_into_one_file(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("atalaya.ingest.pipeline.SMALL_FILE_BYTES", 0)  # one file per unit, as lakes had
    ingest_paths(ws, [_cot(tmp_path / "a", 12)])
    lake = Lake(ws.lake_dir)
    assert len(lake.files()) == 12
    before = lake.query("SELECT obs_id, ingest_run FROM observations ORDER BY obs_id")
    out = lake.compact()
    assert out == {"partitions": 1, "files_before": 12, "files_after": 1, "rows": 12}
    assert len(lake.files()) == 1
    assert len(list((lake.obs_dir).rglob("*.parquet"))) == 1  # the old files are gone
    assert lake.query("SELECT obs_id, ingest_run FROM observations ORDER BY obs_id").equals(before)
    assert len(lake.committed_units()) == 12
    s = ingest_paths(ws, [tmp_path / "a"])  # still exactly once per file
    assert s.totals()["files_skipped"] == 12
    assert lake.compact()["partitions"] == 0


def test_replace_reingests_a_file_with_another_mapping(ws: Workspace, tmp_path: Path) -> None:
    f = tmp_path / "det.csv"
    f.write_text(
        "when,x,y,sensor,kind\n2026-03-02T01:00:00Z,25.1,-10.5,EO,vehicle\n2026-03-02T02:00:00Z,bad,-10.6,EO,vehicle\n",
        encoding="utf-8",
    )
    wrong = ReadOptions(column_map={"when": "time", "x": "lon", "y": "lat"})  # x and y swapped
    s1 = ingest_paths(ws, [f], options=wrong)
    old = s1.units[0].unit_id
    assert s1.totals()["quarantined"] == 1
    assert (ws.quarantine_dir / f"{old}.jsonl").exists()
    right = ReadOptions(column_map={"when": "time", "x": "lat", "y": "lon"})
    assert ingest_paths(ws, [f], options=right).totals()["files_skipped"] == 1  # no --replace: already ingested
    s2 = ingest_paths(ws, [f], options=right, replace=True)
    assert s2.units[0].status == "ingested" and s2.units[0].replaced == [old]
    lake = Lake(ws.lake_dir)
    t = lake.query("SELECT lon, lat, ingest_run FROM observations")
    assert t.column("lon").to_pylist() == [-10.5] and t.column("lat").to_pylist() == [25.1]
    assert set(t.column("ingest_run").to_pylist()) == {s2.units[0].unit_id}
    assert old not in lake.committed_units()
    assert not (ws.quarantine_dir / f"{old}.jsonl").exists()
    assert _units(ws) == 1
    store = KnowledgeStore.open(ws.db_url)
    try:
        with store.engine.connect() as conn:
            q = conn.execute(ks.quarantine.select()).all()
    finally:
        store.close()
    assert {r.unit_id for r in q} == {s2.units[0].unit_id}
    # a later ingest (recovery, reconcile) keeps it that way
    ingest_paths(ws, [f], options=right)
    assert _units(ws) == 1 and lake.query("SELECT count(*) AS n FROM observations").column("n")[0].as_py() == 1
