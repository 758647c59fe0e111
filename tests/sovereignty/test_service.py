"""The sovereignty service on every path: the README's commands log everything, the host sees every sortie over it.

Each test here states one finding of the host's-side review and failed on the code before the service.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from atalaya.api.app import create_app
from atalaya.api.users import add_user
from atalaya.cli.main import main
from atalaya.core.workspace import Workspace
from atalaya.model.observation import SCHEMA
from atalaya.sovereignty import service
from atalaya.sovereignty.agreements import example_document, load_agreements, parse_agreement
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.lake import Lake
from atalaya.store.translog.node import open_log


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, _ = capsys.readouterr()
    return code, out


def _entries(ws: Workspace) -> list[dict[str, object]]:
    with open_log(ws, readonly=True) as log:
        return [log.get(i) for i in range(log.size)]


def test_readme_path_logs_every_agreement_and_overflight_record(
    demo_workspace: Workspace, demo_scenario: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ingest, records import, agreements load, sovereignty account, sovereignty check: the log holds it all."""
    w = str(demo_workspace.root)
    code, out = cli(
        capsys, "-q", "-w", w, "agreements", "load", str(demo_scenario / "records" / "agreements"), "--json"
    )
    assert code == 0, out
    n_agreements = len(load_agreements([demo_scenario / "records" / "agreements"]))
    assert json.loads(out)["log"]["appended"] == n_agreements
    code, out = cli(capsys, "-q", "-w", w, "sovereignty", "account", "--json")
    assert code == 0, out
    assert json.loads(out)["log"]["appended"] > 0
    code, out = cli(capsys, "-q", "-w", w, "sovereignty", "check", "--json")
    assert code == 0, out
    verdicts = json.loads(out)
    entries = _entries(demo_workspace)
    assert sum(e["kind"] == "agreement" for e in entries) == n_agreements
    logged = {(e["sortie"], e["level"], e["territory"]) for e in entries if e["kind"] == "overflight"}
    # every sortie that entered a host has its country and state records in the log
    for v in verdicts:
        for host in v["hosts"]:
            assert (v["sortie_id"], "country", host) in logged
            assert any(k[0] == v["sortie_id"] and k[1] == "state" for k in logged)
    # everything is under a signed checkpoint and verifies; re-running appends nothing
    code, out = cli(capsys, "-q", "-w", w, "log", "status", "--verify", "--json")
    assert code == 0, out
    status = json.loads(out)
    assert status["checkpoint_size"] == status["size"] == len(entries)
    cli(capsys, "-q", "-w", w, "sovereignty", "check", "--json")
    assert len(_entries(demo_workspace)) == len(entries)
    # the partner report leaves through the egress chokepoint: one dissemination entry, then none for the same files
    code, out = cli(capsys, "-q", "-w", w, "sovereignty", "report", "--partner", "MEX", "--json")
    assert code == 0, out
    rep = json.loads(out)
    assert rep["release"]["log_index"] is not None and rep["totals"]["sorties_over_partner"] > 0
    entries = _entries(demo_workspace)
    assert entries[rep["release"]["log_index"]]["kind"] == "dissemination"
    assert entries[rep["release"]["log_index"]]["purpose"] == "accountability"
    cli(capsys, "-q", "-w", w, "sovereignty", "report", "--partner", "MEX", "--json")
    assert len(_entries(demo_workspace)) == len(entries)
    # the partner verifies offline with nothing but the bundle and the key
    code, key = cli(capsys, "-q", "-w", w, "log", "export-key")
    bundle = demo_workspace.root / "b.json"
    cli(capsys, "-q", "-w", w, "log", "prove", "--index", str(len(entries) - 1), "--out", str(bundle))
    code, out = cli(capsys, "-q", "log", "verify", "--bundle", str(bundle), "--key", key.strip())
    assert code == 0, out


def test_liaison_sees_every_sortie_over_mexico_as_check_says(
    demo_workspace: Workspace, demo_scenario: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w = str(demo_workspace.root)
    cli(capsys, "-q", "-w", w, "agreements", "load", str(demo_scenario / "records" / "agreements"))
    code, out = cli(capsys, "-q", "-w", w, "sovereignty", "check", "--json")
    assert code == 0
    checked = {v["sortie_id"]: v for v in json.loads(out)}
    over_mex = {sid for sid, v in checked.items() if "MEX" in v["hosts"]}
    assert over_mex
    store = KnowledgeStore.open(demo_workspace.db_url)
    add_user(store, "lia", "liaison-pass", party="MEX", role="liaison")
    add_user(store, "gtm", "liaison-pass", party="GTM", role="liaison")
    try:
        with TestClient(create_app(demo_workspace, store=store)) as c:
            tok = c.post("/api/auth/login", json={"username": "lia", "password": "liaison-pass"}).json()["token"]
            h = {"Authorization": f"Bearer {tok}"}
            got = c.get("/api/sorties", params={"limit": 1000}, headers=h).json()
            seen = {s["id"]: s for s in got["items"]}
            assert over_mex <= set(seen)
            for sid, s in seen.items():
                assert s["status"] == checked[sid]["status"]
                assert s["n_violations"] == len(checked[sid]["violations"])
            # the log: MEX reads only the entries about it, and there are some
            entries = c.get("/api/log/entries", params={"limit": 1000}, headers=h).json()["items"]
            assert entries and all("MEX" in e["audience"] for e in entries)
            assert {e["summary"]["sortie"] for e in entries if e["kind"] == "overflight"} == over_mex
            # a party with no agreement and nothing flown over it sees nothing of MEX's, and is told why
            tok = c.post("/api/auth/login", json={"username": "gtm", "password": "liaison-pass"}).json()["token"]
            hg = {"Authorization": f"Bearer {tok}"}
            other = c.get("/api/log/entries", params={"limit": 1000}, headers=hg).json()
            assert other["items"] == [] and "GTM" in other["why_empty"]
            none = c.get("/api/sorties", headers=hg).json()
            assert none["items"] == [] and none["why_empty"]
    finally:
        store.close()


def _agreement(**over: object) -> dict[str, object]:
    doc = {**example_document(), "id": "AGR-T", **over}
    window = [{"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z"}]
    doc["collection"] = [{**example_document()["collection"][0], "id": "AGR-T/C1", "time_windows": window}]
    return doc


def _adsb_sortie_rows(ws: Workspace, sortie: str, t0: datetime, n: int) -> None:
    """A sortie flown by an airframe reporting only ADS-B: rows keyed by ICAO24, recorded with the sortie id."""
    rows = [
        {"obs_id": uuid.uuid4().bytes, "time": t0 + timedelta(minutes=i), "lon": -110.9 + 0.01 * i, "lat": 31.2,
         "sensor": "ADSB", "kind": "aircraft", "ident": "a1b2c3", "ident_kind": "icao24", "sortie_id": sortie,
         "marking": "TLP:AMBER;ORIG:USA", "format": "test", "src_file": "t", "src_rec": i, "ingest_run": "t"}
        for i in range(n)
    ]  # fmt: skip
    days = np.array([(r["time"].date() - datetime(1970, 1, 1).date()).days for r in rows])  # type: ignore[attr-defined]
    w = Lake(ws.lake_dir).writer(uuid.uuid4().hex)
    w.write(pa.Table.from_pylist(rows, schema=SCHEMA), days, "test")
    w.commit({"kind": "test"})


def test_adsb_sortie_is_checked_on_its_fixes_and_a_sortie_without_track_is_unverifiable(workspace: Workspace) -> None:
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    _adsb_sortie_rows(workspace, "S-ADSB", t0, 30)
    store = KnowledgeStore.open(workspace.db_url)
    try:
        service.load_agreements(workspace, store, load_agreements_from([_agreement()]))
        with store.begin() as conn:
            conn.execute(
                ks.sorties.insert(),
                [{"id": sid, "platform_type": "MQ-9", "party_id": "USA", "takeoff": t0,
                  "landing": t0 + timedelta(hours=1), "agreement_id": "AGR-T", "authorisation_id": "AGR-T/C1"}
                 for sid in ("S-ADSB", "S-NONE")],
            )  # fmt: skip
        res = service.check(workspace, store)
        by = {v.sortie.sortie_id: v for v in res.verdicts}
        assert by["S-ADSB"].track_points == 30 and by["S-ADSB"].hosts == ("MEX",)
        assert by["S-NONE"].status == "unverifiable" and not by["S-NONE"].compliant
        # stored once, read by every view; the host still sees the unverifiable sortie it was told about
        views = {v["id"]: v for v in service.sortie_views(store)}
        assert views["S-NONE"]["status"] == "unverifiable" and views["S-NONE"]["audience"] == ["MEX"]
        assert views["S-ADSB"]["status"] == by["S-ADSB"].status
    finally:
        store.close()


def load_agreements_from(docs: list[dict[str, object]]) -> object:
    from atalaya.sovereignty.agreements import AgreementSet

    return AgreementSet([parse_agreement(d) for d in docs])


def test_cli_refuses_unknown_parties_and_uncovered_plans(
    workspace: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w = str(workspace.root)
    agr = tmp_path / "a.json"
    agr.write_text(json.dumps(_agreement()), encoding="utf-8")
    assert cli(capsys, "-q", "-w", w, "agreements", "load", str(agr))[0] == 0
    code, _ = cli(capsys, "-q", "-w", w, "export", "sites", "--for", "XYZ")
    assert code == 2
    store = KnowledgeStore.open(workspace.db_url)
    try:
        with store.begin() as conn:
            conn.execute(ks.sites.insert().values(id="site--own", kind="lab", lon=-107.0, lat=25.0,
                                                  marking="TLP:AMBER;REL:USA;ORIG:USA"))  # fmt: skip
    finally:
        store.close()
    code, out = cli(capsys, "-w", w, "export", "sites", "--for", "mex")
    assert code == 1 and "0 released, 1 withheld" in out and "not releasable to MEX" in out
    plan = tmp_path / "plan.geojson"
    plan.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": {
        "type": "LineString", "coordinates": [[-111.0, 32.0], [-108.0, 28.0], [-111.0, 32.0]]}}))  # fmt: skip
    code, out = cli(capsys, "-q", "-w", w, "sovereignty", "check-plan", str(plan), "--platform-type", "MQ-9")
    assert code == 1 and "NOT fully covered" in out


def test_account_of_the_scenario_has_no_impossible_flights(demo_workspace: Workspace) -> None:
    """One ADS-B identity per airframe: no track's accounting bridges two simultaneous flights (was 886,316 km
    for one aircraft in 7 h)."""
    store = KnowledgeStore.open(demo_workspace.db_url)
    try:
        res = service.account(demo_workspace, store, level="country")
    finally:
        store.close()
    tracks = res.accounting.tracks.to_pylist()
    assert tracks
    for t in tracks:
        if t["duration_s"] > 600:
            speed = 1000.0 * t["length_km"] / t["duration_s"]
            assert speed < 350.0, f"{t['track_id']}: {t['length_km']:.0f} km in {t['duration_s'] / 3600:.1f} h"
