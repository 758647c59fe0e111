"""The ingest pipeline: quarantine, idempotency, de-duplication, crash consistency — on both backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from atalaya.core.markings import Marking
from atalaya.core.workspace import Workspace, init_workspace
from atalaya.ingest.base import ParsedBatch, ReadOptions, Reject
from atalaya.ingest.pipeline import Ingestor, ingest_paths, reconcile
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.lake import Lake

HEADER = "time,lon,lat,sensor,kind,ident,confidence\n"
GOOD = [
    "2026-03-02T01:00:00Z,-107.5,25.1,IR,thermal,,0.8\n",
    "2026-03-02T02:00:00Z,-107.6,25.2,EO,vehicle,ABC123,0.7\n",
    "2026-03-03T02:00:00Z,-107.7,25.3,EO,structure,,0.9\n",
]


def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path


@pytest.fixture
def ws(tmp_path: Path, db_url: str) -> Workspace:
    return init_workspace(tmp_path / "ws", party="USA", db_url=db_url)


def _count(ws: Workspace) -> int:
    return int(Lake(ws.lake_dir).query("SELECT count(*) AS n FROM observations").column("n")[0].as_py())


def test_bad_rows_are_quarantined_and_the_rest_ingested(ws: Workspace, tmp_path: Path) -> None:
    bad = [
        "2026-03-02T03:00:00Z,-107.6,nan,IR,thermal,,0.8\n",  # NaN latitude
        "2026-03-02T03:00:00Z,-190.0,25.0,IR,thermal,,0.8\n",  # out of range
        "1901-01-01T00:00:00Z,-107.0,25.0,IR,thermal,,0.8\n",  # out-of-range time
        "2026-03-02T03:00:00Z,0,0,IR,thermal,,0.5\n",  # null island
    ]
    f = _csv(tmp_path / "det.csv", GOOD + bad)
    s = ingest_paths(ws, [f])
    t = s.totals()
    assert t["accepted"] == 3
    assert t["quarantined"] == 4
    assert _count(ws) == 3
    store = KnowledgeStore.open(ws.db_url)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(select(ks.quarantine.c.src_rec, ks.quarantine.c.reason)).all()
    finally:
        store.close()
    by_line = {r[0]: r[1] for r in rows}
    assert sorted(by_line) == [5, 6, 7, 8]
    assert "out of range" in by_line[6]
    assert "1980" in by_line[7]
    assert "null island" in by_line[8]
    # the quarantine file holds the same records
    unit = s.units[0].unit_id
    lines = (ws.quarantine_dir / f"{unit}.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all("reason" in json.loads(x) for x in lines)


def test_reingest_is_idempotent(ws: Workspace, tmp_path: Path) -> None:
    f = _csv(tmp_path / "det.csv", GOOD)
    first = ingest_paths(ws, [f])
    second = ingest_paths(ws, [f])
    assert first.units[0].status == "ingested"
    assert second.units[0].status == "skipped"
    assert _count(ws) == 3
    # nothing was rejected, so no quarantine file was left behind
    assert first.units[0].quarantined == 0
    assert not list(ws.quarantine_dir.glob("*.jsonl"))


def test_reingest_is_exact_with_equal_sizes_and_the_full_hash_is_recorded(ws: Workspace, tmp_path: Path) -> None:
    """A file of a committed unit's size is hashed before reading; any other is hashed while it is read."""
    import hashlib

    f = _csv(tmp_path / "det.csv", GOOD)
    assert ingest_paths(ws, [f]).units[0].status == "ingested"
    # same size, one byte different: hashed up front, not taken for a re-run
    same_size = tmp_path / "same.csv"
    same_size.write_bytes(f.read_bytes().replace(b"0.8\n", b"0.7\n"))
    assert same_size.stat().st_size == f.stat().st_size
    # the same content under another name, and a changed size: re-run and new file
    copy = tmp_path / "copy.csv"
    copy.write_bytes(f.read_bytes())
    longer = _csv(tmp_path / "longer.csv", [*GOOD, "2026-03-05T02:00:00Z,-107.7,25.3,EO,structure,,0.9\n"])
    s = ingest_paths(ws, [same_size, copy, longer, longer])
    assert [u.status for u in s.units] == ["ingested", "skipped", "ingested", "skipped"]
    store = KnowledgeStore.open(ws.db_url)
    try:
        with store.engine.connect() as conn:
            recorded = {r.path: r.sha256 for r in conn.execute(select(ks.ingest_units))}
    finally:
        store.close()
    for p in (f, same_size, longer):
        assert recorded[str(p)] == hashlib.sha256(p.read_bytes()).hexdigest()
    markers = Lake(ws.lake_dir).committed_units().values()
    assert sorted(m["sha256"] for m in markers) == sorted(recorded.values())


class _GrowingReader:
    """A reader that appends to its file while reading it."""

    name = "growing"
    extensions = (".grow",)

    def sniff(self, head: bytes, path: Path) -> float:
        return 0.0

    def read(self, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        with open(path, "ab") as fh:
            fh.write(b"more")
        yield from ()


def test_a_file_changed_while_ingested_fails_and_leaves_nothing(ws: Workspace, tmp_path: Path) -> None:
    f = tmp_path / "x.grow"
    f.write_bytes(b"payload" * 1000)
    store = KnowledgeStore.open(ws.db_url)
    try:
        ing = Ingestor(workspace=ws, store=store, marking=Marking(), readers={"growing": _GrowingReader()})
        res = ing.ingest_file(f, fmt="growing")
        assert res.status == "failed" and "changed while" in res.error
        assert store.count(ks.ingest_units) == 0
    finally:
        store.close()
    assert not Lake(ws.lake_dir).committed_units()


def test_duplicates_within_and_across_files_are_skipped(ws: Workspace, tmp_path: Path) -> None:
    a = _csv(tmp_path / "a.csv", [*GOOD, GOOD[0]])
    b = _csv(tmp_path / "b.csv", [GOOD[1], "2026-03-04T02:00:00Z,-107.7,25.3,EO,structure,,0.9\n"])
    s = ingest_paths(ws, [a, b])
    assert [u.duplicates for u in s.units] == [1, 1]
    assert [u.accepted for u in s.units] == [3, 1]
    assert _count(ws) == 4
    ids = Lake(ws.lake_dir).query("SELECT obs_id FROM observations").column("obs_id").to_pylist()
    assert len(set(ids)) == 4


def _pinned_csv(path: Path) -> Path:
    """40k rows over several batches and days: varied idents (empty, padded, long, non-ASCII), missing values,
    enum spellings to normalise, quoted fields and an extra column."""
    sensors = ["EO", "ir", " SAR ", "GMTI", "sigint"]
    kinds = ["vehicle", "Thermal", "structure", "emitter", "vessel "]
    rows = ["time,lon,lat,alt_m,sensor,kind,ident,confidence,platform,sortie,note\n"]
    for i in range(40_000):
        day, sec = divmod(i * 37, 86_400)
        t = f"2026-03-{2 + day % 20:02d}T{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}.{i % 1000:03d}Z"
        lon = -117.0 + (i * 7919 % 200_000) / 10_000
        lat = 18.0 + (i * 104_729 % 145_000) / 10_000
        alt = "" if i % 7 == 0 else f"{(i * 31) % 2500 + 0.5:.1f}"
        ident = ["", f"trk-{i % 977}", f" MMSI{i % 53:09d} ", "x" * (20 + i % 40), "ü-" + str(i % 11)][i % 5]
        conf = "" if i % 11 == 0 else f"{(i % 1000) / 1000:.3f}"
        rows.append(
            f'{t},{lon:.6f},{lat:.6f},{alt},{sensors[i % 5]},"{kinds[(i // 5) % 5]}",{ident},{conf},'
            f'P{i % 3},S{i % 17},"n{i % 4}"\n'
        )
    path.write_text("".join(rows), encoding="utf-8")
    return path


def test_lake_contents_and_ids_are_pinned(ws: Workspace, tmp_path: Path) -> None:
    """Content ids and stored values of a CSV ingest never change between versions (re-ingest and
    de-duplication compare ids with what the lake already holds)."""
    import hashlib

    s = ingest_paths(ws, [_pinned_csv(tmp_path / "pinned.csv")], options=ReadOptions(batch_rows=9_000))
    assert s.totals()["accepted"] == 40_000
    t = Lake(ws.lake_dir).query(
        "SELECT src_rec, obs_id, epoch_us(time) AS t, lon, lat, alt_m, sensor::VARCHAR AS s, kind::VARCHAR AS k, "
        "ident, confidence, platform_id::VARCHAR AS p, sortie_id::VARCHAR AS so, attrs FROM observations "
        "ORDER BY src_rec"
    )
    ids = hashlib.sha256(b"".join(t.column("obs_id").to_pylist())).hexdigest()
    assert ids == "5339e1f2a471aba404f15b2a6062b83f6410dfdd2182af707a316c43a55b1306"
    h = hashlib.sha256()
    for r in t.to_pylist():
        h.update(repr(sorted(r.items())).encode())
    assert h.hexdigest() == "2d4fb06cb0c8e36d98aea4e12217d172f526ee24f952d8cce81d862564b067c9"


def test_partitioned_by_day_and_source(ws: Workspace, tmp_path: Path) -> None:
    f = _csv(tmp_path / "det.csv", GOOD)
    ingest_paths(ws, [f], source="eo-feed")
    parts = sorted(p.relative_to(ws.lake_dir / "observations").parent.as_posix() for p in Lake(ws.lake_dir).files())
    assert parts == ["day=2026-03-02/source=eo-feed", "day=2026-03-03/source=eo-feed"]


def test_marking_and_provenance_columns(ws: Workspace, tmp_path: Path) -> None:
    f = _csv(tmp_path / "det.csv", GOOD)
    mk = Marking.from_text("TLP:GREEN;REL:MEX,USA;ORIG:USA")
    ingest_paths(ws, [f], marking=mk)
    t = (
        Lake(ws.lake_dir)
        .query(
            "SELECT marking::VARCHAR AS m, src_file::VARCHAR AS f, src_rec, format::VARCHAR AS fmt FROM observations "
            "ORDER BY src_rec"
        )
        .to_pylist()
    )
    assert {r["m"] for r in t} == {mk.to_text()}
    assert [r["src_rec"] for r in t] == [2, 3, 4]
    assert {r["fmt"] for r in t} == {"csv"}
    assert all(r["f"].endswith("det.csv") for r in t)


class _ExplodingReader:
    """A reader that yields one good batch, then fails like an interrupted process."""

    name = "exploding"
    extensions = (".boom",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def sniff(self, head: bytes, path: Path) -> float:
        return 0.0

    def read(self, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        n = 10
        yield ParsedBatch(
            columns={
                "time": np.full(n, 1_772_409_600_000_000, dtype=np.int64) + np.arange(n),
                "lon": np.linspace(-107, -106, n),
                "lat": np.linspace(25, 26, n),
                "sensor": ["EO"] * n,
                "kind": ["vehicle"] * n,
                "src_rec": np.arange(1, n + 1),
            },
            rejects=[Reject(src_rec=11, reason="bad record", raw="x")],
            records_read=11,
        )
        raise self.exc


def _ingestor(ws: Workspace, store: KnowledgeStore, reader: _ExplodingReader) -> Ingestor:
    return Ingestor(workspace=ws, store=store, marking=Marking(), readers={"exploding": reader})


def test_interrupt_midway_leaves_stores_unchanged(ws: Workspace, tmp_path: Path) -> None:
    f = _csv(tmp_path / "ok.csv", GOOD)
    ingest_paths(ws, [f])
    boom = tmp_path / "x.boom"
    boom.write_text("payload")
    store = KnowledgeStore.open(ws.db_url)
    try:
        ing = _ingestor(ws, store, _ExplodingReader(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            ing.ingest_file(boom, fmt="exploding")
        assert _count(ws) == 3
        assert store.count(ks.ingest_units) == 1
        assert store.count(ks.quarantine) == 0
        # a failure inside a reader is reported, not raised, and also leaves nothing behind
        from atalaya.core.errors import IngestError

        res = _ingestor(ws, store, _ExplodingReader(IngestError("disk gone"))).ingest_file(boom, fmt="exploding")
        assert res.status == "failed" and "disk gone" in res.error
        assert _count(ws) == 3
    finally:
        store.close()
    assert not any((ws.lake_dir / "_staging").iterdir())


def test_crash_between_file_moves_and_marker_is_recovered(ws: Workspace, tmp_path: Path) -> None:
    import pyarrow as pa

    from atalaya.model.observation import SCHEMA

    lake = Lake(ws.lake_dir)
    w = lake.writer("0" * 31 + "1")
    empty = pa.Table.from_pylist([], schema=SCHEMA)
    w.write(empty, np.zeros(0, dtype=np.int64), "x")
    # simulate a partition file published without its commit marker
    orphan = ws.lake_dir / "observations" / "day=2026-03-02" / "source=x" / f"part-{'0' * 31}1-0.parquet"
    orphan.parent.mkdir(parents=True)
    import pyarrow.parquet as pq

    pq.write_table(empty, orphan)
    report = lake.recover(ws.quarantine_dir)
    assert report.orphan_files_removed == 1
    assert not orphan.exists()


def test_crash_between_lake_commit_and_store_record_is_reconciled(ws: Workspace, tmp_path: Path) -> None:
    f = _csv(tmp_path / "det.csv", GOOD)
    ingest_paths(ws, [f])
    store = KnowledgeStore.open(ws.db_url)
    try:
        with store.begin() as conn:  # lose the store's record, as if the process died right after the lake commit
            conn.execute(ks.quarantine.delete())
            conn.execute(ks.ingest_units.delete())
        assert reconcile(ws, store) == 1
        assert store.count(ks.ingest_units) == 1
        assert reconcile(ws, store) == 0
    finally:
        store.close()
    # and the file is again recognised as already ingested
    assert ingest_paths(ws, [f]).units[0].status == "skipped"


def test_unknown_format_and_missing_path_say_what_to_do(ws: Workspace, tmp_path: Path) -> None:
    from atalaya.core.errors import IngestError

    weird = tmp_path / "weird.bin"
    weird.write_bytes(b"\x00\x01\x02 nothing recognisable")
    s = ingest_paths(ws, [weird])
    assert s.units[0].status == "failed"
    assert "--format" in s.units[0].error
    with pytest.raises(IngestError, match="no such file"):
        ingest_paths(ws, [tmp_path / "missing.csv"])


class _PoolSpyReader:
    """A reader that notes Arrow's default memory pool while it reads."""

    name = "poolspy"
    extensions = (".spy",)

    def __init__(self) -> None:
        self.seen: list[str] = []

    def sniff(self, head: bytes, path: Path) -> float:
        return 0.0

    def read(self, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        import pyarrow as pa

        self.seen.append(pa.default_memory_pool().backend_name)
        yield from ()


def test_arrow_allocates_from_malloc_while_ingesting_and_the_pool_is_restored(ws: Workspace, tmp_path: Path) -> None:
    import pyarrow as pa

    before = pa.default_memory_pool().backend_name
    f = tmp_path / "x.spy"
    f.write_bytes(b"x")
    spy = _PoolSpyReader()
    store = KnowledgeStore.open(ws.db_url)
    try:
        Ingestor(workspace=ws, store=store, marking=Marking(), readers={"poolspy": spy}).ingest_file(f, fmt="poolspy")
    finally:
        store.close()
    assert spy.seen == ["system"] if before == "mimalloc" else [before]
    assert pa.default_memory_pool().backend_name == before


def test_a_bad_auxiliary_field_is_nulled_or_normalised_and_the_record_kept(ws: Workspace, tmp_path: Path) -> None:
    # a calibration flight reporting headings as a signed byte (-128..127) lost 39 % of its positions
    header = "time,lon,lat,sensor,kind,ident,course_deg,speed_mps,confidence\n"
    rows = [
        "2026-03-02T01:00:00Z,-107.5,25.1,ADSB,aircraft,A1,-128,100,0.9\n",
        "2026-03-02T01:00:01Z,-107.5,25.2,ADSB,aircraft,A1,127,-3,0.9\n",
        "2026-03-02T01:00:02Z,-107.5,25.3,ADSB,aircraft,A1,-90,100,1.7\n",
        "2026-03-02T01:00:03Z,-107.5,25.4,ADSB,aircraft,A1,45,100,0.9\n",
    ]
    f = tmp_path / "flight.csv"
    f.write_text(header + "".join(rows), encoding="utf-8")
    s = ingest_paths(ws, [f])
    assert s.totals()["accepted"] == 4 and s.totals().get("quarantined", 0) == 0
    assert s.notes() == {"course_deg normalised": 2, "speed_mps nulled": 1, "confidence nulled": 1}
    assert s.to_dict()["field_notes"] == s.notes()
    t = Lake(ws.lake_dir).query("SELECT course_deg, speed_mps, confidence, attrs FROM observations ORDER BY time")
    assert t.column("course_deg").to_pylist() == [232.0, 127.0, 270.0, 45.0]
    assert t.column("speed_mps").to_pylist()[1] is None
    assert t.column("confidence").to_pylist()[2] is None
    attrs = [json.loads(a) if a else {} for a in t.column("attrs").to_pylist()]
    assert attrs[0]["qc"] == {"course_deg": "normalised from -128"}
    assert attrs[1]["qc"] == {"speed_mps": "nulled: -3"}
    assert attrs[2]["qc"] == {"course_deg": "normalised from -90", "confidence": "nulled: 1.7"}
    assert "qc" not in attrs[3]
