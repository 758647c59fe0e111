"""The TAXII 2.1 server against a live ``atalaya`` API on a loopback port, read with taxii2-client as a real client.

A USA node serves "sites for MEX", "sites for GTM" and "tracks for MEX". The agreement lets USA share sites
(not tracks) with MEX at up to TLP:AMBER with the caveat NO-ACTION-WITHOUT-HOST-CONSENT; GTM has none.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from sqlalchemy import select
from taxii2client.common import TokenAuth
from taxii2client.exceptions import AccessError
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from atalaya.api.users import add_user, issue_token, revoke_tokens
from atalaya.core.workspace import Workspace, init_workspace
from atalaya.share import taxii_store as ts
from atalaya.sovereignty.agreements import example_document, parse_agreement, store_agreements
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.translog.node import open_log

pytestmark = pytest.mark.xdist_group("taxii")

REL = "TLP:AMBER;REL:MEX,USA;CAV:NO-ACTION-WITHOUT-HOST-CONSENT;ORIG:USA"
OWN = "TLP:AMBER;REL:USA;ORIG:USA"
GTM_REL = "TLP:AMBER;REL:GTM,USA;CAV:NO-ACTION-WITHOUT-HOST-CONSENT;ORIG:USA"
TAXII = "application/taxii+json;version=2.1"
AGREEMENT = {
    **example_document(),
    "id": "usa-mex-2026",
    "effective": {"from": "2026-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"},
    "sharing": [{"from": "USA", "to": "MEX", "max_tlp": "AMBER", "caveats": ["NO-ACTION-WITHOUT-HOST-CONSENT"],
                 "products": ["sites"]}],
}  # fmt: skip


def stix_location(n: int, *, modified: str = "2026-03-01T00:00:00.000Z", sid: str | None = None) -> dict[str, Any]:
    """A valid STIX 2.1 location object."""
    return {
        "type": "location",
        "spec_version": "2.1",
        "id": sid or f"location--{uuid.UUID(int=n)}",
        "created": "2026-03-01T00:00:00.000Z",
        "modified": modified,
        "name": f"site {n}",
        "latitude": 25.0 + n / 1000,
        "longitude": -107.0,
    }


@dataclass(kw_only=True)
class Node:
    """A served USA node with its collections and users' tokens."""

    url: str
    ws: Workspace
    store: KnowledgeStore
    mex_sites: ts.Collection
    gtm_sites: ts.Collection
    mex_tracks: ts.Collection
    tokens: dict[str, str]

    @property
    def root(self) -> str:
        return f"{self.url}/taxii2/atalaya/"

    def collection(self, c: ts.Collection, user: str) -> Collection:
        return Collection(f"{self.root}collections/{c.id}/", user=user, password=self.tokens[user])

    def get(self, path: str, user: str, **kw: Any) -> requests.Response:
        headers = {"Accept": TAXII, "Authorization": f"Bearer {self.tokens[user]}", **kw.pop("headers", {})}
        return requests.get(self.root + path, headers=headers, timeout=30, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    import uvicorn

    from atalaya.api.app import create_app

    ws = init_workspace(tmp_path_factory.mktemp("taxii") / "ws", party="USA", name="Collecting party")
    store = KnowledgeStore.open(ws.db_url)
    store_agreements(store, [parse_agreement(AGREEMENT)])
    tokens = {}
    for name, party, role in (("ana", "USA", "analyst"), ("lia", "MEX", "liaison"), ("gil", "GTM", "liaison")):
        tokens[name] = issue_token(store, add_user(store, name, f"{name}-password-1", party=party, role=role))
    n = Node(
        url="",
        ws=ws,
        store=store,
        mex_sites=ts.ensure_collection(store, party="MEX", kind="sites", marking=REL),
        gtm_sites=ts.ensure_collection(store, party="GTM", kind="sites", marking=GTM_REL),
        mex_tracks=ts.ensure_collection(store, party="MEX", kind="tracks", marking=REL),
        tokens=tokens,
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(ws, store=store), host="127.0.0.1", port=port, log_level="warning")
    )
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the test server did not start"
    n.url = f"http://127.0.0.1:{port}"
    try:
        yield n
    finally:
        server.should_exit = True
        th.join(timeout=10)
        store.close()


def _disseminations(ws: Workspace, since: int) -> list[dict[str, Any]]:
    with open_log(ws, readonly=True) as log:
        return [e for i in range(since, log.size) if (e := log.get(i))["kind"] == "dissemination"]


def _log_size(ws: Workspace) -> int:
    with open_log(ws, readonly=True) as log:
        return log.size


def test_discovery_lists_only_the_partners_own_collections(node: Node) -> None:
    server = Server(f"{node.url}/taxii2/", user="lia", password=node.tokens["lia"])
    assert server.default is not None and server.default.url == node.root
    root: ApiRoot = server.api_roots[0]
    assert root.versions == [TAXII]
    titles = sorted(c.title for c in root.collections)
    assert titles == ["sites for MEX", "tracks for MEX"]
    assert all(c.can_read and not c.can_write for c in root.collections)
    # the collector's own analyst sees every collection and may write
    own = ApiRoot(node.root, auth=TokenAuth(node.tokens["ana"]))  # a client's custom auth: here a wrong scheme
    with pytest.raises(requests.HTTPError) as e:
        own.refresh()
    assert e.value.response is not None and e.value.response.status_code == 401
    ana = ApiRoot(node.root, user="ana", password=node.tokens["ana"])
    assert len(ana.collections) == 3 and all(c.can_write for c in ana.collections)
    # another partner's collection does not exist for MEX
    r = node.get(f"collections/{node.gtm_sites.id}/objects/", "lia")
    assert r.status_code == 404 and r.headers["content-type"] == TAXII
    assert r.json()["http_status"] == "404" and "no collection" in r.json()["description"]


def test_paging_through_pages_with_next_and_added_after(node: Node) -> None:
    c = ts.ensure_collection(node.store, party="MEX", kind="sites")
    objs = [stix_location(i) for i in range(1000, 1025)]
    assert ts.publish(node.store, c, objs, kind="sites", marking=REL, about=["MEX"]).added == 25
    col = node.collection(c, "lia")
    pages = list(as_pages(col.get_objects, per_request=10, **{"type": "location"}))
    assert [len(p.get("objects", [])) for p in pages] == [10, 10, 5]
    assert [p["more"] for p in pages] == [True, True, False] and "next" not in pages[-1]
    got = [o["id"] for p in pages for o in p["objects"]]
    assert got[-25:] == [o["id"] for o in objs]
    # the first page's last date_added resumes the same walk with added_after
    r = node.get(f"collections/{c.id}/objects/", "lia", params={"limit": 10, "match[type]": "location"})
    last = r.headers["X-TAXII-Date-Added-Last"]
    assert r.headers["X-TAXII-Date-Added-First"] < last and last.endswith("Z") and len(last.split(".")[1]) == 7
    rest = col.get_objects(added_after=last, type="location")
    assert [o["id"] for o in rest["objects"]] == got[10:]


def test_next_is_stable_under_concurrent_inserts(node: Node) -> None:
    c = node.mex_sites
    before = [stix_location(i) for i in range(2000, 2012)]
    ts.publish(node.store, c, before, kind="sites", marking=REL, about=["MEX"])
    col = node.collection(c, "lia")
    first = col.get_objects(limit=5, type="location")
    assert first["more"]
    late = [stix_location(i) for i in range(2100, 2103)]
    ts.publish(node.store, c, late, kind="sites", marking=REL, about=["MEX"])  # added while the client pages
    seen = [o["id"] for o in first["objects"]]
    env = first
    while env.get("more"):
        env = col.get_objects(limit=5, next=env["next"], type="location")
        seen += [o["id"] for o in env.get("objects", [])]
    assert len(seen) == len(set(seen))  # nothing twice
    assert {o["id"] for o in before + late} <= set(seen)  # nothing skipped, the late ones at the end
    assert seen[-3:] == [o["id"] for o in late]


def test_partner_gets_only_releasable_objects_and_each_page_is_a_dissemination(node: Node) -> None:
    c = ts.ensure_collection(node.store, party="MEX", kind="sites")
    ok = stix_location(3000)
    held = stix_location(3001)  # not releasable to MEX
    ts.publish(node.store, c, [ok], kind="sites", marking=REL, about=["MEX"])
    ts.publish(node.store, c, [held], kind="sites", marking=OWN, about=["MEX"])
    ids = f"{ok['id']},{held['id']}"
    size = _log_size(node.ws)
    env = node.collection(c, "lia").get_objects(id=ids)
    assert [o["id"] for o in env["objects"]] == [ok["id"]]
    diss = _disseminations(node.ws, size)
    assert len(diss) == 1 and diss[0]["recipient"] == "MEX" and diss[0]["objects"] == 1
    assert diss[0]["objects_sha256"] == hashlib.sha256(f"{ok['id']}@{ok['modified']}".encode()).hexdigest()
    assert diss[0]["basis"] == ["usa-mex-2026@v1"] and diss[0]["user"] == "lia"
    # the withheld object is not found, nor in the manifest; this node's analyst sees both, unlogged
    assert node.get(f"collections/{c.id}/objects/{held['id']}/", "lia").status_code == 404
    man = node.collection(c, "lia").get_manifest(id=ids)
    assert [m["id"] for m in man["objects"]] == [ok["id"]]
    size = _log_size(node.ws)
    assert len(node.collection(c, "ana").get_objects(id=ids)["objects"]) == 2
    assert _disseminations(node.ws, size) == []


def test_no_agreement_or_uncovered_product_releases_nothing(node: Node) -> None:
    ts.publish(node.store, node.gtm_sites, [stix_location(4000)], kind="sites", marking=GTM_REL, about=["GTM"])
    ts.publish(node.store, node.mex_tracks, [stix_location(4001)], kind="tracks", marking=REL, about=["MEX"])
    size = _log_size(node.ws)
    gil = node.collection(node.gtm_sites, "gil").get_objects()
    assert "objects" not in gil and gil["more"] is False  # marking allows GTM, but no agreement lets USA share
    lia = node.collection(node.mex_tracks, "lia").get_objects()
    assert "objects" not in lia  # the agreement covers sites, not tracks
    assert _disseminations(node.ws, size) == []  # nothing released, nothing recorded
    assert len(node.collection(node.gtm_sites, "ana").get_objects()["objects"]) == 1


def test_versions_manifest_and_idempotent_publish(node: Node) -> None:
    c = node.mex_sites
    sid = f"location--{uuid.uuid4()}"
    v1 = stix_location(5000, sid=sid, modified="2026-03-01T00:00:00.000Z")
    v2 = stix_location(5000, sid=sid, modified="2026-03-02T00:00:00.5Z")
    assert ts.publish(node.store, c, [v1, v2], kind="sites", marking=REL, about=["MEX"]).added == 2
    again = ts.publish(node.store, c, [v1, v2], kind="sites", marking=REL, about=["MEX"])
    assert (again.added, again.unchanged) == (0, 2)
    col = node.collection(c, "lia")
    assert col.object_versions(sid)["versions"] == [v1["modified"], v2["modified"]]
    assert col.get_object(sid)["objects"] == [v2]  # the default is the last version
    assert col.get_object(sid, version="first")["objects"] == [v1]
    assert len(col.get_object(sid, version="all")["objects"]) == 2
    assert col.get_object(sid, version=v1["modified"])["objects"] == [v1]
    man = col.get_manifest(id=sid, version="all")["objects"]
    assert [(m["id"], m["version"]) for m in man] == [(sid, v1["modified"]), (sid, v2["modified"])]
    assert all(m["media_type"] == "application/stix+json;version=2.1" for m in man)
    assert man[0]["date_added"] < man[1]["date_added"]


def test_delete_is_a_retraction_kept_for_audit(node: Node) -> None:
    c = node.mex_sites
    sid = f"location--{uuid.uuid4()}"
    v1 = stix_location(6000, sid=sid, modified="2026-03-01T00:00:00.000Z")
    v2 = stix_location(6000, sid=sid, modified="2026-03-05T00:00:00.000Z")
    ts.publish(node.store, c, [v1, v2], kind="sites", marking=REL, about=["MEX"])
    with pytest.raises(AccessError):  # the collection tells the client it cannot write
        node.collection(c, "lia").delete_object(sid)
    r = requests.delete(f"{node.root}collections/{c.id}/objects/{sid}/", timeout=30,
                        headers={"Accept": TAXII, "Authorization": f"Bearer {node.tokens['lia']}"})  # fmt: skip
    assert r.status_code == 403 and r.json()["title"] == "Forbidden"  # and the server refuses: partners read
    ana = node.collection(c, "ana")
    ana.delete_object(sid, version=v2["modified"])  # retract the last version: the first is the last again
    assert node.collection(c, "lia").get_object(sid)["objects"] == [v1]
    ana.delete_object(sid)
    r = node.get(f"collections/{c.id}/objects/{sid}/", "lia")
    assert r.status_code == 404 and r.json()["title"] == "Object Not Found"
    assert node.get(f"collections/{c.id}/objects/{sid}/versions/", "ana").status_code == 404
    assert node.get(f"collections/{c.id}/objects/{sid}/", "ana").status_code == 404  # hidden from every reader
    with node.store.engine.connect() as conn:
        rows = conn.execute(select(ks.stix_objects).where(ks.stix_objects.c.stix_id == sid)).all()
        audit = conn.execute(select(ks.audit).where(ks.audit.c.object_id == sid)).all()
    assert len(rows) == 2 and all(r.retracted_at is not None and r.retracted_by == "ana" for r in rows)
    assert [a.action for a in audit] == ["taxii.retract", "taxii.retract"]
    assert requests.delete(
        f"{node.root}collections/{c.id}/objects/{sid}/", timeout=30,
        headers={"Accept": TAXII, "Authorization": f"Bearer {node.tokens['ana']}"},
    ).status_code == 404  # fmt: skip


def test_add_objects_by_the_nodes_analyst_with_status(node: Node) -> None:
    c = node.mex_sites
    good = stix_location(7000)
    bad = {**stix_location(7001), "type": "indicator"}
    status = node.collection(c, "ana").add_objects({"objects": [good, bad]})
    assert (status.status, status.total_count, status.success_count, status.failure_count) == ("complete", 2, 1, 1)
    assert "does not match its id" in status.failures[0]["message"]
    assert node.get(f"status/{status.id}/", "ana").json()["success_count"] == 1
    assert node.get(f"status/{status.id}/", "lia").status_code == 404  # someone else's status
    # the object takes the collection's marking and kind: released to MEX
    assert node.collection(c, "lia").get_object(good["id"])["objects"] == [good]
    r = requests.post(
        f"{node.root}collections/{c.id}/objects/", data=b'{"objects": []}', timeout=30,
        headers={"Accept": TAXII, "Content-Type": TAXII, "Authorization": f"Bearer {node.tokens['lia']}"},
    )  # fmt: skip
    assert r.status_code == 403  # partners read


def test_wrong_media_types_are_refused_with_taxii_errors(node: Node) -> None:
    c = node.mex_sites
    r = node.get(f"collections/{c.id}/objects/", "lia", headers={"Accept": "application/json"})
    assert r.status_code == 406 and r.headers["content-type"] == TAXII and r.json()["title"] == "Not Acceptable"
    r = node.get(f"collections/{c.id}/objects/", "lia", headers={"Accept": "application/taxii+json;version=2.0"})
    assert r.status_code == 406
    assert node.get(f"collections/{c.id}/objects/", "lia", headers={"Accept": "*/*"}).status_code == 200
    post = requests.post(
        f"{node.root}collections/{c.id}/objects/", json={"objects": [stix_location(8000)]}, timeout=30,
        headers={"Accept": TAXII, "Authorization": f"Bearer {node.tokens['ana']}"},
    )  # fmt: skip
    assert post.status_code == 415 and post.json()["http_status"] == "415"
    for params in ({"limit": "0"}, {"next": "bogus"}, {"added_after": "yesterday"}, {"match[colour]": "red"}):
        r = node.get(f"collections/{c.id}/objects/", "lia", params=params)
        assert r.status_code == 400 and r.headers["content-type"] == TAXII, params
    with pytest.raises(requests.HTTPError) as e:  # a client asking for a STIX bundle instead of an envelope
        node.collection(c, "lia").get_objects(accept="application/stix+json;version=2.1")
    assert e.value.response is not None and e.value.response.status_code == 406


def test_basic_auth_takes_an_api_token_never_the_password_and_is_throttled(node: Node) -> None:
    url = f"{node.root}collections/"

    def basic(user: str, secret: str) -> requests.Response:
        cred = base64.b64encode(f"{user}:{secret}".encode()).decode()
        return requests.get(url, headers={"Accept": TAXII, "Authorization": f"Basic {cred}"}, timeout=30)

    assert basic("lia", node.tokens["lia"]).status_code == 200
    r = basic("lia", "lia-password-1")
    assert r.status_code == 401 and "Basic" in r.headers["www-authenticate"] and "API token" in r.json()["description"]
    assert basic("ana", node.tokens["lia"]).status_code == 401  # someone else's token
    assert requests.get(url, headers={"Accept": TAXII}, timeout=30).status_code == 401
    statuses = [basic("nobody", "x" * 40).status_code for _ in range(6)]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    # a revoked token stops working on the next request
    tok = issue_token(node.store, add_user(node.store, "leo", "leo-password-12", party="MEX", role="liaison"))
    assert basic("leo", tok).status_code == 200
    revoke_tokens(node.store, "leo")
    assert basic("leo", tok).status_code == 401


def test_source_protect_strips_source_identities_from_released_objects(node: Node) -> None:
    c = node.mex_sites
    protected = f"{REL.replace(';ORIG', ',SOURCE-PROTECT;ORIG')}"
    o = {**stix_location(9000), "sensors": ["EO-7", "SIGINT-2"], "x_score": 0.9}
    ts.publish(node.store, c, [o], kind="sites", marking=protected, about=["MEX"])
    got = node.collection(c, "lia").get_object(o["id"])["objects"]
    assert got == [{k: v for k, v in o.items() if k != "sensors"}]  # the caveat applied, the rest as stored
    assert node.collection(c, "ana").get_object(o["id"])["objects"] == [o]  # this node's analysts see sources
