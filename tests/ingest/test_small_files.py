"""Many small files: one commit and one Parquet file per partition, one reader pass for many files, linear time,
compaction, ``--replace``."""

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


# -- many files in one reader pass ------------------------------------------------------------------------------

_EV = (
    '<event version="2.0" uid="{uid}" type="a-h-G-E-V" time="{t}" start="{t}" stale="{t}" how="m-g">'
    '<point lat="{lat}" lon="-99.5" hae="12" ce="{ce}" le="9"/>'
    '<detail><track speed="4" course="{course}"/>{extra}</detail></event>'
)


def _ev(i: int, *, lat: str | None = None, course: str = "90", extra: str = "", ce: str = "10") -> str:
    t = f"2024-05-02T01:{i // 60 % 60:02d}:{i % 60:02d}Z"
    return _EV.format(uid=f"V-{i}", t=t, lat=lat or f"{19 + i * 1e-3:.6f}", course=course, extra=extra, ce=ce)


def _varied_folder(d: Path) -> Path:
    """CoT files as a folder of real captures has them: one event each mostly, and every kind of odd one."""
    d.mkdir(parents=True)
    for i in range(40):
        (d / f"a{i:03d}.cot").write_text('<?xml version="1.0" encoding="UTF-8"?>\n' + _ev(i) + "\n", encoding="utf-8")
    (d / "b-two-events.cot").write_text("\n\n" + _ev(100) + "\n" + _ev(101, lat="x19") + "\n", encoding="utf-8")
    (d / "b-copy-of-a003.cot").write_text(_ev(3) + "\n", encoding="utf-8")  # the same observation as a003
    (d / "c-entity.cot").write_text(_ev(102, extra='<contact callsign="A&amp;B"/>'), encoding="utf-8")
    (d / "c-heading.cot").write_text(_ev(103, course="-90"), encoding="utf-8")  # normalised, noted
    (d / "d-malformed.cot").write_text(_ev(104)[:-30] + "\n", encoding="utf-8")
    (d / "d-mismatch.cot").write_text(
        '<?xml version="1.0"?>\n\n' + _ev(105).replace("<detail>", "<detail><b>") + "\n", encoding="utf-8"
    )
    (d / "e-no-fix.cot").write_text(
        _ev(106, lat="0.0001", ce="9999999").replace('lon="-99.5"', 'lon="0.0002"'), encoding="utf-8"
    )
    (d / "e-empty.cot").write_text("", encoding="utf-8")
    (d / "f-latin1.cot").write_bytes(
        ('<?xml version="1.0" encoding="ISO-8859-1"?>\n' + _ev(107, extra='<contact callsign="Peñón"/>')).encode(
            "latin-1"
        )
    )
    (d / "f-gz.cot.gz").write_bytes(gzip.compress(_ev(108).encode()))
    return d


def _lake_rows(ws: Workspace) -> list[dict[str, object]]:
    t = Lake(ws.lake_dir).query("SELECT * EXCLUDE (ingest_run) FROM observations ORDER BY obs_id")
    return t.to_pylist()


def _unit_rows(ws: Workspace) -> dict[str, tuple[object, ...]]:
    store = KnowledgeStore.open(ws.db_url)
    try:
        with store.engine.connect() as conn:
            units = conn.execute(ks.ingest_units.select()).all()
            quarantine = conn.execute(ks.quarantine.select()).all()
    finally:
        store.close()
    q: dict[str, list[tuple[object, ...]]] = {}
    for r in quarantine:
        q.setdefault(r.path, []).append((r.src_rec, r.reason, r.raw, r.format))
    out: dict[str, tuple[object, ...]] = {}
    for u in units:
        counts = (u.records, u.accepted, u.quarantined, u.duplicates, u.bytes)
        out[u.path] = (u.sha256, u.format, u.source, *counts, u.summary["reasons"], sorted(q.get(u.path, [])))
    return out


def test_many_files_in_one_pass_give_the_rows_and_units_of_file_by_file_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from atalaya.core.markings import Marking
    from atalaya.ingest.cot import CotReader
    from atalaya.ingest.pipeline import Ingestor, expand_paths

    d = _varied_folder(tmp_path / "in")
    passes: list[int] = []
    one_by_one: list[str] = []
    real_many, real_read = CotReader.read_many, CotReader.read

    def many(self: CotReader, datas: list[bytes], options: ReadOptions) -> object:
        passes.append(len(datas))
        return real_many(self, datas, options)

    def alone(self: CotReader, path: Path, options: ReadOptions) -> object:
        one_by_one.append(path.name)
        return real_read(self, path, options)

    monkeypatch.setattr(CotReader, "read_many", many)
    monkeypatch.setattr(CotReader, "read", alone)
    batched = init_workspace(tmp_path / "batched", party="USA")
    s = ingest_paths(batched, [d])
    # all in one pass but the Latin-1 and the gzip files (read alone) and the empty one (no format: fails)
    assert passes == [len(expand_paths([d])) - 3]
    assert sorted(one_by_one) == ["f-gz.cot.gz", "f-latin1.cot"]

    single = init_workspace(tmp_path / "single", party="USA")
    store = KnowledgeStore.open(single.db_url)
    try:
        ing = Ingestor(workspace=single, store=store, marking=Marking.from_text("TLP:AMBER;ORIG:USA"))
        by_file = [ing.ingest_file(f) for f in expand_paths([d])]  # one unit, one commit each
    finally:
        store.close()

    assert _lake_rows(batched) == _lake_rows(single)
    assert _unit_rows(batched) == _unit_rows(single)
    for a, b in zip(s.units, by_file, strict=True):
        assert (a.path, a.status, a.records, a.accepted, a.quarantined, a.duplicates, a.reasons, a.notes) == (
            b.path, b.status, b.records, b.accepted, b.quarantined, b.duplicates, b.reasons, b.notes,
        )  # fmt: skip
    # the cases the folder was built for are there
    units = {Path(u.path).name: u for u in s.units}
    assert units["b-copy-of-a003.cot"].duplicates == 1 and units["b-copy-of-a003.cot"].accepted == 0
    assert units["b-two-events.cot"].records == 2 and units["b-two-events.cot"].accepted == 1
    assert units["c-heading.cot"].notes == {"course_deg normalised": 1}
    assert units["c-entity.cot"].accepted == 1 and units["f-latin1.cot"].accepted == 1
    assert units["e-no-fix.cot"].quarantined == 1 and units["d-malformed.cot"].quarantined == 1
    assert units["e-empty.cot"].status == "failed" and "cannot tell the format" in units["e-empty.cot"].error
    q = _unit_rows(batched)
    assert q[str(d / "b-two-events.cot")][-1][0][0] == 4  # the second event's line in its own file
    assert "tag mismatch: b line 3 and detail, line 3," in q[str(d / "d-mismatch.cot")][-1][0][1]  # in its file


def test_a_malformed_file_among_500_good_is_quarantined_by_name_and_the_rest_ingested(
    ws: Workspace, tmp_path: Path
) -> None:
    d = tmp_path / "in"
    d.mkdir()
    for i in range(500):
        (d / f"ev{i:04d}.cot").write_text(_ev(i) + "\n", encoding="utf-8")
    bad = d / "ev0250x.cot"
    bad.write_text(_ev(9999)[:-40] + "\n", encoding="utf-8")  # cut short: not well-formed
    unreadable = d / "ev0251x.cot.gz"
    unreadable.write_bytes(gzip.compress(_ev(9998).encode())[:30])  # truncated: the file fails as a whole
    s = ingest_paths(ws, [d])
    t = s.totals()
    assert t["files_ingested"] == 501 and t["accepted"] == 500 and t["quarantined"] == 1
    assert [u.path for u in s.units if u.status == "failed"] == [str(unreadable)]
    rows = _unit_rows(ws)
    assert len(rows) == 501 and str(unreadable) not in rows
    (src_rec, reason, raw, fmt) = rows[str(bad)][-1][0]
    assert fmt == "cot"
    assert src_rec == 1 and reason.startswith("malformed XML") and raw.startswith('<event version="2.0" uid="V-9999"')
    assert Lake(ws.lake_dir).query("SELECT count(*) AS n FROM observations").column("n")[0].as_py() == 500


def test_a_rerun_of_a_batched_folder_changes_nothing(ws: Workspace, tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    for i in range(300):
        (d / f"ev{i:04d}.cot").write_text(_ev(i) + "\n", encoding="utf-8")
    (d / "same-bytes-as-ev0007.cot").write_bytes((d / "ev0007.cot").read_bytes())
    first = ingest_paths(ws, [d])
    copy = next(u for u in first.units if u.path.endswith("same-bytes-as-ev0007.cot"))
    original = next(u for u in first.units if u.path.endswith("ev0007.cot"))
    assert copy.status == "skipped" and copy.unit_id == original.unit_id  # one unit per content
    rows, units = _lake_rows(ws), _unit_rows(ws)
    again = ingest_paths(ws, [d])
    assert again.totals()["files_skipped"] == 301 and again.totals().get("files_ingested", 0) == 0
    assert [u.unit_id for u in again.units] == [u.unit_id for u in first.units]
    assert _lake_rows(ws) == rows and _unit_rows(ws) == units
    assert len(list(Lake(ws.lake_dir).commits_dir.glob("*.json"))) == 1  # nothing committed the second time


def test_when_the_one_pass_read_fails_each_file_is_read_alone(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from atalaya.core.errors import IngestError
    from atalaya.ingest.cot import CotReader

    def broken(self: CotReader, datas: list[bytes], options: ReadOptions) -> object:
        raise IngestError("cannot read these together")

    monkeypatch.setattr(CotReader, "read_many", broken)
    s = ingest_paths(ws, [_varied_folder(tmp_path / "in")])
    assert [Path(u.path).name for u in s.units if u.status != "ingested"] == ["e-empty.cot"]
    assert s.totals()["accepted"] == 45 and s.totals()["duplicates"] == 1 and s.totals()["quarantined"] == 4
