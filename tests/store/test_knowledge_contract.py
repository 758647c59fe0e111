"""The knowledge-store contract: the same tests on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from atalaya.core.errors import MigrationError, StoreError
from atalaya.store.knowledge import KnowledgeStore, migrations, upsert
from atalaya.store.knowledge import schema as ks


def test_fresh_store_is_migrated_to_latest(store: KnowledgeStore) -> None:
    assert store.schema_version() == migrations.LATEST
    # re-opening applies nothing more
    assert store.migrate() == []


def test_migrations_are_recorded_once(db_url: str) -> None:
    a = KnowledgeStore.open(db_url)
    b = KnowledgeStore.open(db_url)
    try:
        with a.engine.connect() as conn:
            rows = conn.execute(select(ks.schema_migrations.c.version)).all()
        assert [r[0] for r in rows] == [m.version for m in migrations.MIGRATIONS]
        assert b.schema_version() == migrations.LATEST
    finally:
        a.close()
        b.close()


def test_newer_schema_is_refused(store: KnowledgeStore) -> None:
    with store.begin() as conn:
        conn.execute(
            ks.schema_migrations.insert().values(version=999, description="future", applied_at=datetime.now(UTC))
        )
    with pytest.raises(MigrationError, match="newer than this Atalaya"):
        store.migrate()


def test_upsert_inserts_then_updates(store: KnowledgeStore) -> None:
    row = {"id": "site--a", "kind": "lab", "lon": -107.1, "lat": 25.2, "score": 0.5, "marking": "TLP:AMBER"}
    with store.begin() as conn:
        upsert(conn, ks.sites, [row], keys=["id"])
        upsert(conn, ks.sites, [dict(row, score=0.9)], keys=["id"], update=["score"])
    with store.engine.connect() as conn:
        got = conn.execute(select(ks.sites.c.score, ks.sites.c.status)).all()
    assert got == [(0.9, "suspected")]


def test_upsert_many_rows_in_chunks(store: KnowledgeStore) -> None:
    rows = [
        {"id": f"t{i}", "time": datetime(2026, 3, 2, tzinfo=UTC), "from_account": "a", "to_account": "b",
         "amount": float(i), "currency": "USD"}
        for i in range(4000)
    ]  # fmt: skip
    with store.begin() as conn:
        upsert(conn, ks.transactions, rows, keys=["id"])
    assert store.count(ks.transactions) == 4000


def test_json_and_timezone_round_trip(store: KnowledgeStore) -> None:
    t = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
    with store.begin() as conn:
        conn.execute(
            ks.entities.insert().values(
                id="e1", schema="Person", caption="Juan", properties={"name": ["Juan Pérez"], "alias": ["El Flaco"]},
                first_seen=t, provenance={"sources": ["police_reports"]},
            )
        )  # fmt: skip
    with store.engine.connect() as conn:
        r = conn.execute(select(ks.entities)).one()._mapping
    assert r["properties"] == {"name": ["Juan Pérez"], "alias": ["El Flaco"]}
    assert r["marking"] == "TLP:AMBER"
    seen = r["first_seen"]
    assert seen.replace(tzinfo=seen.tzinfo or UTC) == t


def test_transaction_rolls_back_on_error(store: KnowledgeStore) -> None:
    def failing_transaction() -> None:
        with store.begin() as conn:
            conn.execute(ks.parties.insert().values(id="USA", name="United States"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing_transaction()
    assert store.count(ks.parties) == 0


def test_unique_ingest_file_constraint(store: KnowledgeStore) -> None:
    now = datetime.now(UTC)
    base = dict(run_id="r", path="f", sha256="0" * 64, format="csv", source="csv", started_at=now,
                committed_at=now, records=1, accepted=1, quarantined=0, duplicates=0, bytes=1)  # fmt: skip
    with store.begin() as conn:
        conn.execute(ks.ingest_units.insert().values(id="u1", **base))
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), store.begin() as conn:
        conn.execute(ks.ingest_units.insert().values(id="u2", **base))


def test_unreachable_database_says_what_to_check() -> None:
    with pytest.raises(StoreError, match="cannot reach") as ei:
        KnowledgeStore.open("postgresql://nobody@127.0.0.1:1/none")
    assert "URL" in (ei.value.hint or "")


def test_verdicts_stored_once_per_sortie_on_every_backend(store: KnowledgeStore) -> None:
    """The sovereignty repository's writes: upsert by sortie, replace-all drops sorties no longer checked."""
    from atalaya.sovereignty.repository import load_verdicts, save_verdicts

    now = datetime.now(UTC)

    def row(sid: str, status: str, audience: list[str]) -> dict[str, object]:
        return {"sortie_id": sid, "status": status, "reason": f"{status} because", "worst": None, "n_violations": 0,
                "hosts": audience, "audience": audience, "track_points": 10, "record": {"status": status},
                "checked_at": now, "marking": "TLP:AMBER", "agreement_id": None, "agreement_version": None,
                "collection_id": None, "as_of": None, "provenance": None}  # fmt: skip

    save_verdicts(store, [row("S-1", "compliant", ["MEX"]), row("S-2", "no-host", [])])
    save_verdicts(store, [row("S-1", "violation", ["MEX"])])
    got = {r["sortie_id"]: r for r in load_verdicts(store)}
    assert got["S-1"]["status"] == "violation" and got["S-1"]["record"] == {"status": "violation"}
    assert got["S-1"]["checked_at"].tzinfo is not None
    assert [r["sortie_id"] for r in load_verdicts(store, party="mex")] == ["S-1"]
    save_verdicts(store, [row("S-1", "compliant", ["MEX"])], replace_all=True)
    assert [r["sortie_id"] for r in load_verdicts(store)] == ["S-1"]


def test_log_journal_appends_once_and_indexes_on_every_backend(db_url: str, tmp_path: Path) -> None:
    """Domain records into the transparency log: indexed in the store, idempotent, superseded when changed."""
    from atalaya.core.workspace import init_workspace
    from atalaya.store.translog import journal

    ws = init_workspace(tmp_path / "ws", party="USA", name="contract", db_url=db_url)
    rec = {"kind": "overflight", "sortie": "S-1", "level": "country", "territory": "MEX", "seconds": 60.0}
    store = KnowledgeStore.open(ws.db_url)
    try:
        first = journal.record(ws, store, [rec])
        again = journal.record(ws, store, [rec])
        changed = journal.record(ws, store, [{**rec, "seconds": 61.0}])
        assert (first["appended"], again["appended"], changed["appended"]) == (1, 0, 1)
        assert first["checkpoint_signed"] and not again["checkpoint_signed"]
        with store.engine.connect() as conn:
            rows = conn.execute(select(ks.log_entries.c.idx, ks.log_entries.c.ref_id).order_by("idx")).all()
        assert [tuple(r) for r in rows] == [(0, "overflight:S-1|country|MEX"), (1, "overflight:S-1|country|MEX")]
    finally:
        store.close()


def test_many_processes_open_a_new_store_at_once(tmp_path: Path) -> None:
    """Several processes creating the same SQLite store at once all end up at the latest schema."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'k.sqlite'}"
    code = f"from atalaya.store.knowledge import KnowledgeStore; KnowledgeStore.open({url!r}).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(6)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors
    s = KnowledgeStore.open(url)
    try:
        assert s.schema_version() == migrations.LATEST
        with s.engine.connect() as conn:
            versions = [r[0] for r in conn.execute(select(ks.schema_migrations.c.version))]
        assert sorted(versions) == [m.version for m in migrations.MIGRATIONS]
    finally:
        s.close()


def test_an_unchanged_verdict_keeps_the_time_it_was_reached(store: KnowledgeStore) -> None:
    from atalaya.sovereignty.repository import load_verdicts, save_verdicts

    def row(status: str, at: datetime) -> dict[str, object]:
        return {"sortie_id": "S-1", "status": status, "reason": status, "worst": None, "n_violations": 0,
                "hosts": ["MEX"], "audience": ["MEX"], "track_points": 10, "record": {"status": status, "v": [1]},
                "checked_at": at, "marking": "TLP:AMBER", "agreement_id": None, "agreement_version": None,
                "collection_id": None, "as_of": None, "provenance": None}  # fmt: skip

    t1, t2 = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)
    assert save_verdicts(store, [row("compliant", t1)]) == 1
    assert save_verdicts(store, [row("compliant", t2)]) == 0
    assert load_verdicts(store)[0]["checked_at"] == t1
    assert save_verdicts(store, [row("violation", t2)]) == 1
    assert load_verdicts(store)[0]["checked_at"] == t2
