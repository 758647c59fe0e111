"""Exports: GeoJSON, KML and CoT that other tools (and our own readers) read back; partner exports pass the egress."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from atalaya.core.errors import ValidationError
from atalaya.core.workspace import Workspace
from atalaya.ingest.base import read_all
from atalaya.ingest.cot import CotReader
from atalaya.share.exports import export
from atalaya.sovereignty.agreements import example_document, parse_agreement, store_agreements
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.translog.node import open_log

REL = "TLP:AMBER;REL:MEX,USA;CAV:NO-ACTION-WITHOUT-HOST-CONSENT;ORIG:USA"
T = datetime(2026, 3, 2, 6, tzinfo=UTC)
LINE = [[-107.0, 25.0], [-107.01, 25.01]]


@pytest.fixture
def store(workspace: Workspace) -> KnowledgeStore:
    s = KnowledgeStore.open(workspace.db_url)
    with s.begin() as conn:
        conn.execute(
            ks.sites.insert(),
            [
                {"id": "site--a", "kind": "lab", "lon": -107.25, "lat": 25.5, "score": 0.9, "marking": REL,
                 "last_seen": T},
                {"id": "site--b", "kind": "stash_house", "lon": -106.4, "lat": 31.6, "score": 0.7,
                 "marking": "TLP:AMBER;ORIG:USA", "last_seen": T},
            ],
        )  # fmt: skip
        conn.execute(
            ks.tracks.insert().values(
                id="track--1", kind="vehicle", ident="TAG-1", ident_kind="cot_uid", start=T, end=T, n_points=3,
                length_km=2.0, geometry=json.dumps({"type": "LineString", "coordinates": LINE}),
                marking=REL,
            )
        )  # fmt: skip
        conn.execute(
            ks.corridors.insert().values(
                id="corridor--v1", h3_cells=["866d2c107ffffff", "866d2c137ffffff"], volume=5, kind="vehicle", rank=1,
                marking=REL,
            )
        )  # fmt: skip
    doc = {**example_document(), "id": "AGR-A", "effective": {"from": "2026-01-01T00:00:00Z", "to": None},
           "sharing": [{"from": "USA", "to": "MEX", "max_tlp": "AMBER", "caveats": ["NO-ACTION-WITHOUT-HOST-CONSENT"],
                        "products": ["sites"]}]}  # fmt: skip
    store_agreements(s, [parse_agreement(doc)])
    return s


def test_formats_read_back(workspace: Workspace, store: KnowledgeStore, tmp_path: Path) -> None:
    g = export(workspace, store, kind="sites", fmt="geojson", out=tmp_path / "s.geojson")
    doc = json.loads(g.path.read_text())
    assert [f["id"] for f in doc["features"]] == ["site--a", "site--b"]
    assert doc["features"][0]["geometry"] == {"type": "Point", "coordinates": [-107.25, 25.5]}
    k = export(workspace, store, kind="corridors", fmt="kml", out=tmp_path / "c.kml")
    root = etree.parse(str(k.path)).getroot()
    ns = {"k": "http://www.opengis.net/kml/2.2"}
    assert len(root.findall(".//k:Polygon", ns)) == 2
    c = export(workspace, store, kind="sites", fmt="cot", out=tmp_path / "s.cot")
    cols, rejects = read_all(CotReader(), c.path)
    assert rejects == []
    assert sorted(cols["ident"]) == ["atalaya-site--a", "atalaya-site--b"]
    assert sorted(round(x, 2) for x in cols["lat"]) == [25.5, 31.6]
    t = export(workspace, store, kind="tracks", fmt="cot", out=tmp_path / "t.cot")
    cols, _ = read_all(CotReader(), t.path)
    assert cols["lon"] == [pytest.approx(-107.0), pytest.approx(-107.01)]
    with pytest.raises(ValidationError):
        export(workspace, store, kind="people", fmt="kml", out=tmp_path / "x")


def test_partner_export_passes_egress_and_is_logged(
    workspace: Workspace, store: KnowledgeStore, tmp_path: Path
) -> None:
    r = export(workspace, store, kind="sites", fmt="geojson", out=tmp_path / "mex.geojson", recipient="MEX")
    assert r.objects == 1
    assert r.withheld == 1
    ids = [f["id"] for f in json.loads(r.path.read_text())["features"]]
    assert ids == ["site--a"]
    assert r.log_index is not None
    with open_log(workspace, readonly=True) as log:
        e = log.get(r.log_index)
    assert e["kind"] == "dissemination"
    assert e["recipient"] == "MEX"
    # tracks are not covered by the agreement's sharing terms: nothing leaves, nothing is logged
    t = export(workspace, store, kind="tracks", fmt="geojson", out=tmp_path / "t.geojson", recipient="MEX")
    assert (t.objects, t.withheld, t.log_index) == (0, 1, None)
    assert t.reasons == ["AGR-A v1 does not cover 'tracks'"]  # the reason a user can act on
    # an unknown party is refused, not silently given an empty file
    with pytest.raises(ValidationError, match="unknown party 'XYZ'"):
        export(workspace, store, kind="sites", fmt="geojson", out=tmp_path / "x.geojson", recipient="XYZ")


def test_export_is_logged_once_per_content(workspace: Workspace, store: KnowledgeStore, tmp_path: Path) -> None:
    """The same file released twice to the same user is one dissemination; a changed one is another."""
    a = export(workspace, store, kind="sites", fmt="kml", out=tmp_path / "a.kml", recipient="MEX")
    b = export(workspace, store, kind="sites", fmt="kml", out=tmp_path / "b.kml", recipient="MEX")
    assert a.log_index == b.log_index
    with store.begin() as conn:
        conn.execute(ks.sites.update().where(ks.sites.c.id == "site--a").values(score=0.5))
    c = export(workspace, store, kind="sites", fmt="kml", out=tmp_path / "c.kml", recipient="MEX")
    assert c.log_index == (a.log_index or 0) + 1


def _events_of(path: Path) -> list[etree._Element]:
    text = path.read_text()
    assert "<events" not in text and "<?xml" not in text  # no wrapper root: one message per event, as TAK sends
    lines = [ln for ln in text.splitlines() if ln]
    return [etree.fromstring(ln.encode()) for ln in lines]


def test_cot_export_is_what_tak_clients_take(workspace: Workspace, store: KnowledgeStore, tmp_path: Path) -> None:
    s = export(workspace, store, kind="sites", fmt="cot", out=tmp_path / "s.cot")
    evs = _events_of(s.path)
    assert [e.tag for e in evs] == ["event", "event"]
    assert {e.get("type") for e in evs} == {"a-s-G-I"}  # suspect ground installations
    cols, rejects = read_all(CotReader(), s.path)
    assert rejects == [] and all(json.loads(a)["affiliation"] == "s" for a in cols["attrs"])
    # tracks: one position update per point, one uid, typed by platform, times from start to end
    with store.begin() as conn:
        line = [[-107.0 + k * 0.001, 25.0 + k * 0.001] for k in range(2000)]
        conn.execute(
            ks.tracks.insert().values(
                id="track--boat", kind="vessel", ident="MMSI-1", ident_kind="mmsi", start=T,
                end=T.replace(hour=8), n_points=2000, length_km=280.0,
                geometry=json.dumps({"type": "LineString", "coordinates": line}), marking=REL,
            )
        )  # fmt: skip
    t = export(workspace, store, kind="tracks", fmt="cot", out=tmp_path / "t.cot")
    evs = _events_of(t.path)
    by_uid: dict[str, list[etree._Element]] = {}
    for e in evs:
        by_uid.setdefault(str(e.get("uid")), []).append(e)
    assert {u: {e.get("type") for e in es} for u, es in by_uid.items()} == {
        "atalaya-track--1": {"a-u-G-E-V"},
        "atalaya-track--boat": {"a-u-S"},
    }
    boat = by_uid["atalaya-track--boat"]
    assert len(boat) == 500  # decimated to the bound, both ends kept
    assert (
        boat[0].get("time") == "2026-03-02T06:00:00.000000Z" and boat[-1].get("time") == "2026-03-02T08:00:00.000000Z"
    )
    assert float(boat[-1].find("point").get("lon")) == pytest.approx(line[-1][0])
    cols, rejects = read_all(CotReader(), t.path)
    assert rejects == [] and len(cols["time"]) == 502
    assert set(cols["kind"]) == {"vehicle", "vessel"}
    # or as drawn routes: one b-m-r event each, the points as links
    r = export(workspace, store, kind="tracks", fmt="cot", out=tmp_path / "r.cot", cot_tracks="route")
    evs = _events_of(r.path)
    assert [e.get("type") for e in evs] == ["b-m-r", "b-m-r"]
    assert [len(e.findall("detail/link")) for e in evs] == [2, 500]
    cols, rejects = read_all(CotReader(), r.path)
    assert rejects == [] and len(cols["time"]) == 2
    links = json.loads(cols["attrs"][0])["detail"]["link"]
    assert links[1]["point"] == "25.0100000,-107.0100000"
