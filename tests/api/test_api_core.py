"""API: authentication, party scoping through the egress chokepoint, analyst actions, log verification."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from atalaya.api.app import create_app
from atalaya.api.users import add_user
from atalaya.core.workspace import Workspace
from atalaya.sovereignty.agreements import example_document, parse_agreement, store_agreements
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.translog import open_checkpoint
from atalaya.store.translog.node import log_signer, open_log

AGREEMENT = {
    **example_document(),
    "id": "usa-mex-2026",
    "effective": {"from": "2026-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"},
    "sharing": [
        {"from": "USA", "to": "MEX", "max_tlp": "AMBER", "caveats": ["NO-ACTION-WITHOUT-HOST-CONSENT"],
         "products": ["sites", "sorties"]},
    ],
}  # fmt: skip
REL = "TLP:AMBER;REL:MEX,USA;CAV:NO-ACTION-WITHOUT-HOST-CONSENT;ORIG:USA"


@pytest.fixture
def client(workspace: Workspace) -> Iterator[TestClient]:
    store = KnowledgeStore.open(workspace.db_url)
    add_user(store, "ana", "analyst-pass", party="USA", role="analyst")
    add_user(store, "lia", "liaison-pass", party="MEX", role="liaison")
    store_agreements(store, [parse_agreement(AGREEMENT)])
    with store.begin() as conn:
        conn.execute(
            ks.sites.insert(),
            [
                {"id": "site--a", "kind": "lab", "lon": -107.0, "lat": 25.0, "score": 0.9, "marking": REL},
                {"id": "site--b", "kind": "lab", "lon": -107.5, "lat": 25.5, "score": 0.8,
                 "marking": "TLP:AMBER;REL:USA;ORIG:USA"},
                {"id": "site--c", "kind": "stash_house", "lon": -106.0, "lat": 31.5, "score": 0.7,
                 "marking": "TLP:RED;REL:MEX,USA;CAV:NO-ACTION-WITHOUT-HOST-CONSENT;ORIG:USA"},
            ],
        )  # fmt: skip
    with open_log(workspace) as log:
        log.append({"kind": "agreement", "id": "usa-mex-2026", "version": 1})
        log.checkpoint(log_signer(workspace))
    app = create_app(workspace, store=store)
    with TestClient(app) as c:
        yield c
    store.close()


def _login(c: TestClient, user: str, pw: str) -> dict[str, str]:
    r = c.post("/api/auth/login", json={"username": user, "password": pw})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_requires_authentication(client: TestClient) -> None:
    assert client.get("/api/sites").status_code == 401
    assert client.post("/api/auth/login", json={"username": "ana", "password": "wrong"}).status_code == 401


def test_analyst_sees_all_sites_paginated(client: TestClient) -> None:
    h = _login(client, "ana", "analyst-pass")
    r = client.get("/api/sites", params={"limit": 2}, headers=h).json()
    assert r["total"] == 3
    assert [s["id"] for s in r["items"]] == ["site--a", "site--b"]
    assert r["next_offset"] == 2
    r2 = client.get("/api/sites", params={"limit": 2, "offset": 2}, headers=h).json()
    assert [s["id"] for s in r2["items"]] == ["site--c"]
    assert r2["next_offset"] is None


def test_liaison_sees_only_what_was_released_and_it_is_logged(client: TestClient, workspace: Workspace) -> None:
    with open_log(workspace, readonly=True) as log:
        before = log.size
    h = _login(client, "lia", "liaison-pass")
    r = client.get("/api/sites", headers=h).json()
    # site--b is not releasable to MEX; site--c is TLP:RED, above the agreement's AMBER ceiling
    assert [s["id"] for s in r["items"]] == ["site--a"]
    assert client.get("/api/sites/site--b", headers=h).status_code == 404
    with open_log(workspace, readonly=True) as log:
        entries = [log.get(i) for i in range(before, log.size)]
    diss = [e for e in entries if e["kind"] == "dissemination"]
    assert diss
    assert diss[0]["recipient"] == "MEX"
    assert diss[0]["basis"] == ["usa-mex-2026@v1"]
    assert diss[0]["objects_sha256"] == hashlib.sha256(b"site--a").hexdigest()


def test_status_change_persists_and_is_audited(client: TestClient, workspace: Workspace) -> None:
    ha = _login(client, "ana", "analyst-pass")
    hl = _login(client, "lia", "liaison-pass")
    assert client.patch("/api/sites/site--a", json={"status": "confirmed"}, headers=hl).status_code == 403
    r = client.patch("/api/sites/site--a", json={"status": "confirmed", "note": "seen twice"}, headers=ha)
    assert r.status_code == 200
    got = client.get("/api/sites/site--a", headers=ha).json()
    assert got["status"] == "confirmed"
    assert got["note"] == "seen twice"
    assert got["status_by"] == "ana"
    assert client.patch("/api/sites/nope", json={"status": "dismissed"}, headers=ha).status_code == 404
    assert client.patch("/api/sites/site--a", json={"status": "bogus"}, headers=ha).status_code == 422


def test_log_verification_inclusion_and_consistency(client: TestClient, workspace: Workspace) -> None:
    h = _login(client, "ana", "analyst-pass")
    old = client.get("/api/log/checkpoint", headers=h).json()["checkpoint"]
    with open_log(workspace) as log:
        log.append({"kind": "overflight", "sortie": "S1"})
        log.checkpoint(log_signer(workspace))
    r = client.post("/api/log/verify", json={"old_checkpoint": old}, headers=h).json()
    assert r["ok"] is True
    assert r["inclusion"]["ok"] is True
    assert r["consistency"] == {"ok": True, "old_size": 1, "new_size": 2}
    entries = client.get("/api/log/entries", headers=h).json()
    assert entries["items"][0]["kind"] == "overflight"


def test_forged_old_checkpoint_fails_verification(client: TestClient) -> None:
    h = _login(client, "ana", "analyst-pass")
    cp = client.get("/api/log/checkpoint", headers=h).json()["checkpoint"]
    forged = cp.replace("\n1\n", "\n2\n", 1)
    r = client.post("/api/log/verify", json={"old_checkpoint": forged}, headers=h).json()
    assert r["ok"] is False
    assert r["consistency"]["ok"] is False


def test_partner_cannot_read_raw_detections(client: TestClient) -> None:
    h = _login(client, "lia", "liaison-pass")
    assert client.get("/api/map/detections", headers=h).status_code == 403


def test_openapi_documents_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/auth/login", "/api/sites", "/api/sites/{site_id}", "/api/log/verify", "/api/map/territories"):
        assert p in paths


def test_concurrent_partner_requests_logged_once_per_content(client: TestClient, workspace: Workspace) -> None:
    """16 identical reads side by side are one release: one dissemination entry, under a signed checkpoint;
    a read whose content changed is a new release."""
    from concurrent.futures import ThreadPoolExecutor

    h = _login(client, "lia", "liaison-pass")
    with open_log(workspace, readonly=True) as log:
        before = log.size
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda _: client.get("/api/sites", headers=h).status_code, range(16)))
    assert codes == [200] * 16
    with open_log(workspace, readonly=True) as log:
        kinds = [log.get(i)["kind"] for i in range(before, log.size)]
        signed = open_checkpoint(log.latest_checkpoint() or "", log_signer(workspace).verifier()).size
        size = log.size
    assert kinds == ["dissemination"]
    assert signed == size  # nothing appended outside a signed checkpoint
    store = KnowledgeStore.open(workspace.db_url)
    try:
        with store.begin() as conn:
            conn.execute(ks.sites.update().where(ks.sites.c.id == "site--a").values(score=0.95))
        assert client.get("/api/sites", headers=h).status_code == 200
        assert store.count(ks.log_entries) == size + 1  # every leaf indexed, the new release too
    finally:
        store.close()
    with open_log(workspace, readonly=True) as log:
        assert log.size == size + 1 and log.get(size)["kind"] == "dissemination"
