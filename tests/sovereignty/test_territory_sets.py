"""Territory sets on every accounting path: region (default), world, auto; the warning where none is loaded."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from atalaya.cli.main import main
from atalaya.core.errors import ConfigError, ValidationError
from atalaya.core.workspace import Workspace
from atalaya.model.observation import SCHEMA
from atalaya.sovereignty import service
from atalaya.sovereignty.agreements import AgreementSet, example_document, parse_agreement
from atalaya.sovereignty.territory_sets import TerritoryChoice, unlabelled_points
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.lake import Lake

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
N = 20


def _write(ws: Workspace, rows: list[dict[str, object]]) -> None:
    days = np.array([(r["time"].date() - datetime(1970, 1, 1).date()).days for r in rows])  # type: ignore[attr-defined]
    w = Lake(ws.lake_dir).writer(uuid.uuid4().hex)
    w.write(pa.Table.from_pylist(rows, schema=SCHEMA), days, "test")
    w.commit({"kind": "test"})


def _over_france(ws: Workspace, sortie: str | None = None) -> None:
    """An aircraft (or a sortie) flying east over the Paris basin, one fix a minute."""
    _write(ws, [
        {"obs_id": uuid.uuid4().bytes, "time": T0 + timedelta(minutes=i), "lon": 1.8 + 0.02 * i, "lat": 48.8,
         "sensor": "ADSB", "kind": "aircraft", "ident": "3c66b0", "ident_kind": "icao24", "sortie_id": sortie,
         "marking": "TLP:AMBER;ORIG:USA", "format": "test", "src_file": "t", "src_rec": i, "ingest_run": "t"}
        for i in range(N)
    ])  # fmt: skip


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, str]:
    main(["-q", *args])
    out, err = capsys.readouterr()
    return out, err


def test_account_over_france_by_territory_set(workspace: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    _over_france(workspace)
    store = KnowledgeStore.open(workspace.db_url)
    try:
        region = service.account(workspace, store)
        world = service.account(workspace, store, choice=TerritoryChoice(territory_set="world"))
        auto = service.account(workspace, store, choice=TerritoryChoice(territory_set="auto"))
    finally:
        store.close()
    assert region.unlabelled_points == N
    assert [r["territory_id"] for r in region.accounting.summary.to_pylist()] == ["INTL"]
    for res in (world, auto):
        assert res.unlabelled_points == 0
        rows = res.accounting.summary.to_pylist()
        assert [r["territory_id"] for r in rows] == ["FRA"]
        assert rows[0]["time_s"] == pytest.approx((N - 1) * 60.0)
    w = str(workspace.root)
    out, err = _cli(capsys, "-w", w, "sovereignty", "account", "--json")
    assert json.loads(out)["unlabelled_points"] == N and f"warning: {N} fix(es) lie outside" in err
    assert "--territory-set world" in err
    out, err = _cli(capsys, "-w", w, "sovereignty", "account", "--territory-set", "world", "--json")
    assert json.loads(out)["unlabelled_points"] == 0 and "warning" not in err
    assert {r["territory_id"] for r in json.loads(out)["summary"]} == {"FRA"}
    # The workspace's configuration picks the set when the command line does not.
    cfg = workspace.root / "atalaya.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8") + '\n[territories]\nset = "world"\n', encoding="utf-8")
    out, err = _cli(capsys, "-w", w, "sovereignty", "account", "--json")
    assert {r["territory_id"] for r in json.loads(out)["summary"]} == {"FRA"} and "warning" not in err
    out, err = _cli(capsys, "-w", w, "sovereignty", "account", "--territory-set", "region", "--json")
    assert json.loads(out)["unlabelled_points"] == N and "warning" in err


def _sortie_over_france(ws: Workspace) -> KnowledgeStore:
    _over_france(ws, sortie="S-FR")
    store = KnowledgeStore.open(ws.db_url)
    doc = {**example_document(), "id": "AGR-T"}
    service.load_agreements(ws, store, AgreementSet([parse_agreement(doc)]))
    with store.begin() as conn:
        conn.execute(
            ks.sorties.insert(),
            [{"id": "S-FR", "platform_type": "MQ-9", "party_id": "USA", "takeoff": T0,
              "landing": T0 + timedelta(hours=1), "agreement_id": "AGR-T"}],
        )  # fmt: skip
    return store


def test_check_and_report_warn_where_no_territory_is_loaded(
    workspace: Workspace, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = _sortie_over_france(workspace)
    try:
        region = service.check(workspace, store)
        world = service.check(workspace, store, choice=TerritoryChoice(territory_set="world"))
        rep = service.report(workspace, store, partner="MEX", out_dir=tmp_path / "r", result=region)
    finally:
        store.close()
    assert region.unlabelled_points == N and region.verdicts[0].hosts == ()
    assert world.unlabelled_points == 0 and world.verdicts[0].hosts == ("FRA",)
    assert rep.to_dict()["unlabelled_points"] == N
    w = str(workspace.root)
    _, err = _cli(capsys, "-w", w, "sovereignty", "check", "--json")
    assert f"warning: {N} fix(es) lie outside" in err
    _, err = _cli(capsys, "-w", w, "sovereignty", "check", "--territory-set", "auto", "--json")
    assert "warning" not in err
    _, err = _cli(capsys, "-w", w, "sovereignty", "report", "--partner", "MEX", "--out", str(tmp_path / "c"))
    assert f"warning: {N} fix(es) lie outside" in err


def test_choice_settings_are_checked(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown territory set"):
        TerritoryChoice(territory_set="galaxy")
    cfg = workspace.root / "atalaya.toml"
    base = cfg.read_text(encoding="utf-8")
    for extra, match in (
        ('[territories]\nset = "everywhere"\n', "not a territory set"),
        ('[territories]\nadmin1 = "missing.geojson"\n', "no such file"),
        ('[territories]\nadmin_1 = "x"\n', "unknown key"),
    ):
        cfg.write_text(base + "\n" + extra, encoding="utf-8")
        with pytest.raises(ConfigError, match=match):
            TerritoryChoice.from_config(Workspace.open(workspace.root))
    (workspace.root / "states.geojson").write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    cfg.write_text(base + '\n[territories]\nset = "auto"\nadmin1 = "states.geojson"\n', encoding="utf-8")
    got = TerritoryChoice.from_config(Workspace.open(workspace.root), extra=tmp_path / "x.geojson")
    assert got == TerritoryChoice(
        territory_set="auto", admin1=workspace.root / "states.geojson", extra=tmp_path / "x.geojson"
    )


def test_auto_keeps_the_region_set_where_it_covers_the_fixes() -> None:
    from atalaya.geo.territories import load_territories

    lon, lat = np.array([-99.1, -95.0, -90.0]), np.array([19.4, 29.7, 25.0])
    assert TerritoryChoice(territory_set="auto").load(lon, lat) is load_territories()
    t = TerritoryChoice(territory_set="auto").load(np.r_[lon, 2.35], np.r_[lat, 48.85])
    assert "FRA" in t.id_index() and "MEX" in t.id_index()
    assert not unlabelled_points(t, np.r_[lon, 2.35], np.r_[lat, 48.85]).any()
    # a world set warns of fixes outside the tiles it was loaded for
    assert unlabelled_points(t, np.array([139.7]), np.array([35.6])).tolist() == [True]
