"""Reference records load idempotently on both backends and bad manifests say what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from atalaya.core.errors import ValidationError
from atalaya.core.markings import Marking
from atalaya.ingest.records import load_records
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks


def _write(d: Path) -> None:
    (d / "parties.json").write_text(json.dumps([{"code": "USA", "name": "US", "role": "collecting"},
                                                {"code": "MEX", "name": "MX", "role": "host"}]))  # fmt: skip
    (d / "platforms.json").write_text(json.dumps([{"platform_id": "MQ9-01", "platform_type": "MQ-9", "party": "USA",
                                                   "sensors": ["EO", "IR"]}]))  # fmt: skip
    (d / "sorties.json").write_text(
        json.dumps(
            [
                {"sortie_id": "S1", "platform_id": "MQ9-01", "platform_type": "MQ-9", "party": "USA",
                 "agreement_id": "usa-mex", "authorisation_id": "border", "notified_at": "2026-03-01T10:00:00Z",
                 "report_filed_at": None, "takeoff": "2026-03-02T06:00:00Z", "landing": "2026-03-02T18:00:00Z",
                 "base": "Fort Huachuca", "mission": "border-orbit"},
            ]
        )
    )  # fmt: skip


def test_records_load_and_reload(tmp_path: Path, store: KnowledgeStore) -> None:
    _write(tmp_path)
    mk = Marking.from_text("TLP:AMBER;ORIG:USA")
    first = load_records(store, tmp_path, marking=mk)
    again = load_records(store, tmp_path, marking=mk)
    assert first.to_dict() == again.to_dict() == {"parties": 2, "platforms": 1, "sorties": 1}
    assert store.count(ks.sorties) == 1
    with store.engine.connect() as conn:
        row = conn.execute(select(ks.sorties)).one()._mapping
    assert row["agreement_id"] == "usa-mex"
    assert row["report_filed_at"] is None
    assert row["takeoff"].hour == 6
    assert row["marking"] == "TLP:AMBER;ORIG:USA"


def test_bad_manifest_names_the_record(tmp_path: Path, store: KnowledgeStore) -> None:
    (tmp_path / "sorties.json").write_text(json.dumps([{"sortie_id": "S1", "platform_id": "P", "takeoff": "nope"}]))
    with pytest.raises(ValidationError, match=r"sorties.json\[0\]: bad time"):
        load_records(store, tmp_path, marking=Marking())
    (tmp_path / "sorties.json").write_text(json.dumps({"not": "a list"}))
    with pytest.raises(ValidationError, match="JSON array"):
        load_records(store, tmp_path, marking=Marking())
