"""The STIX object store behind TAXII, on SQLite and PostgreSQL: versions, date_added order, paging, retraction."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from atalaya.core.errors import ValidationError
from atalaya.share import taxii_store as ts
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks

REL = "TLP:AMBER;REL:MEX,USA;ORIG:USA"


def obj(n: int, *, modified: str = "2026-03-01T00:00:00.000Z", typ: str = "location") -> dict[str, Any]:
    return {"type": typ, "spec_version": "2.1", "id": f"{typ}--{uuid.UUID(int=n)}",
            "created": "2026-03-01T00:00:00.000Z", "modified": modified, "name": f"o{n}"}  # fmt: skip


def _walk(store: KnowledgeStore, cid: str, f: ts.Filters, limit: int) -> list[ts.StoredObject]:
    out: list[ts.StoredObject] = []
    cursor = None
    while True:
        page = ts.query(store, cid, f, limit=limit, cursor=cursor)
        out += page.rows
        if not page.more:
            return out
        cursor = page.next


def test_publish_is_idempotent_and_a_new_modified_is_a_new_version(store: KnowledgeStore) -> None:
    c = ts.ensure_collection(store, party="mex", kind="sites")
    assert ts.ensure_collection(store, party="MEX", kind="sites") == c and c.title == "sites for MEX"
    first = ts.publish(store, c, [obj(1), obj(2)], kind="sites", marking=REL, about=["mex"])
    assert (first.added, first.unchanged) == (2, 0)
    again = ts.publish(store, c.id, [obj(1), obj(2), obj(1, modified="2026-03-02T00:00:00Z")], kind="sites",
                       marking=REL, about=["MEX"])  # fmt: skip
    assert (again.added, again.unchanged) == (1, 2)
    rows = _walk(store, c.id, ts.Filters(versions=("all",)), 10)
    assert [r.about for r in rows] == [["MEX"]] * 3 and {r.marking for r in rows} == {REL}
    added = [r.added_us for r in rows]
    assert added == sorted(set(added))  # strictly increasing
    last = _walk(store, c.id, ts.Filters(), 10)
    assert [(r.stix_id, r.version) for r in last] == [(obj(2)["id"], obj(2)["modified"]),
                                                      (obj(1)["id"], "2026-03-02T00:00:00Z")]  # fmt: skip
    first_v = _walk(store, c.id, ts.Filters(versions=("first",), ids=(obj(1)["id"],)), 10)
    assert [r.version for r in first_v] == ["2026-03-01T00:00:00.000Z"]


def test_bad_objects_are_refused_before_anything_is_stored(store: KnowledgeStore) -> None:
    c = ts.ensure_collection(store, party="MEX", kind="sites")
    bad_ones = [
        ({**obj(1), "type": "indicator"}, "does not match"),
        ({**obj(2), "spec_version": "2.0"}, "2.0"),
        ({**obj(3), "modified": "March 1st"}, "not a STIX timestamp"),
        ({"id": "x"}, "not a STIX"),
    ]
    for bad, why in bad_ones:
        with pytest.raises(ValidationError, match=why):
            ts.publish(store, c, [obj(10), bad], kind="sites", marking=REL)
    assert ts.count(store, c.id) == 0
    with pytest.raises(ValidationError, match="no TAXII collection"):
        ts.publish(store, "nope", [obj(1)], kind="sites", marking=REL)


def test_filters_and_paging_with_a_cursor(store: KnowledgeStore) -> None:
    c = ts.ensure_collection(store, party="MEX", kind="sites")
    ts.publish(store, c, [obj(i, typ="location" if i % 3 else "indicator") for i in range(30)], kind="sites",
               marking=REL)  # fmt: skip
    every = _walk(store, c.id, ts.Filters(), 7)
    assert len(every) == 30 and len({r.stix_id for r in every}) == 30
    ind = _walk(store, c.id, ts.Filters(types=("indicator",)), 4)
    assert [r.stix_id for r in ind] == [obj(i, typ="indicator")["id"] for i in range(0, 30, 3)]
    after = _walk(store, c.id, ts.Filters(added_after_us=every[19].added_us), 100)
    assert after == every[20:]
    with pytest.raises(ValueError, match="not a 'next' value"):
        ts.query(store, c.id, ts.Filters(), cursor="eyJ0cnVzdCI6Im1lIn0")


def test_concurrent_publishers_get_distinct_increasing_dates(store: KnowledgeStore) -> None:
    c = ts.ensure_collection(store, party="MEX", kind="sites")
    errors: list[BaseException] = []

    def pub(k: int) -> None:
        try:
            for j in range(5):
                ts.publish(store, c, [obj(1000 * k + 10 * j + i) for i in range(10)], kind="sites", marking=REL)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=pub, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = _walk(store, c.id, ts.Filters(), 33)
    assert len(rows) == 200 and len({r.added_us for r in rows}) == 200


def test_retraction_hides_versions_and_keeps_them(store: KnowledgeStore) -> None:
    c = ts.ensure_collection(store, party="MEX", kind="sites")
    v1, v2 = obj(1), obj(1, modified="2026-04-01T00:00:00.000Z")
    ts.publish(store, c, [v1, v2, obj(2)], kind="sites", marking=REL)
    assert ts.retract(store, c.id, v1["id"], actor="ana", versions=(v2["modified"],), reason="wrong position") == 1
    assert [r.version for r in _walk(store, c.id, ts.Filters(ids=(v1["id"],)), 10)] == [v1["modified"]]
    assert ts.retract(store, c.id, v1["id"], actor="ana") == 1
    assert ts.retract(store, c.id, v1["id"], actor="ana") == 0
    assert _walk(store, c.id, ts.Filters(ids=(v1["id"],), versions=("all",)), 10) == []
    with store.engine.connect() as conn:
        kept = conn.execute(select(ks.stix_objects.c.retracted_by).where(ks.stix_objects.c.stix_id == v1["id"])).all()
        audit = conn.execute(select(ks.audit.c.details).where(ks.audit.c.action == "taxii.retract")).all()
    assert [k[0] for k in kept] == ["ana", "ana"]
    assert audit[0][0]["reason"] == "wrong position" and audit[0][0]["versions"] == [v2["modified"]]


@pytest.mark.parametrize(
    "filters",
    [ts.Filters(), ts.Filters(versions=("all",)), ts.Filters(types=("location",)), ts.Filters(versions=("first",))],
)
def test_a_page_walks_an_index_not_the_collection(tmp_path: Any, filters: ts.Filters) -> None:
    """SQLite's plan for a page reads an index in date_added order: no full scan, no sort of the collection."""
    store = KnowledgeStore.open(f"sqlite:///{tmp_path / 'k.sqlite'}")
    try:
        c = ts.ensure_collection(store, party="MEX", kind="sites")
        q = ts.page_select(c.id, filters, limit=1001, after=123)
        sql = str(q.compile(store.engine, compile_kwargs={"literal_binds": True}))
        with store.engine.connect() as conn:
            plan = " | ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
        assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, plan
    finally:
        store.close()


def test_migration_5_adds_the_taxii_tables_to_an_older_store(tmp_path: Any) -> None:
    from sqlalchemy import inspect, text

    from atalaya.store.knowledge import migrations

    url = f"sqlite:///{tmp_path / 'k.sqlite'}"
    store = KnowledgeStore.open(url)
    with store.begin() as conn:  # back to what schema version 4 had
        for table in ("taxii_status", "stix_objects", "taxii_collections"):
            conn.execute(text(f"DROP TABLE {table}"))
        conn.execute(text("DELETE FROM schema_migrations WHERE version >= 5"))
    store.close()
    store = KnowledgeStore.open(url)
    try:
        with store.engine.connect() as conn:
            assert {"taxii_collections", "stix_objects", "taxii_status"} <= set(inspect(conn).get_table_names())
            names = {ix["name"] for ix in inspect(conn).get_indexes("stix_objects")}
        assert {"ix_stix_objects_latest", "ix_stix_objects_type"} <= names
        assert store.schema_version() == migrations.LATEST
        c = ts.ensure_collection(store, party="MEX", kind="sites")
        assert ts.publish(store, c, [obj(1)], kind="sites", marking=REL).added == 1
    finally:
        store.close()
