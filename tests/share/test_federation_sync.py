"""Federation between node processes: publish, sync with proofs, re-sync with nothing new, a retraction
acknowledged by a signed receipt, a cosigned checkpoint, and a forked log refused by the witness."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from atalaya.core.workspace import Workspace
from atalaya.sovereignty import service
from atalaya.sovereignty.agreements import load_agreements
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks

pytestmark = pytest.mark.xdist_group("federation")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cli(ws: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATALAYA_WORKSPACE": str(ws)}
    res = subprocess.run([sys.executable, "-m", "atalaya.cli.main", *args], env=env, text=True,
                         capture_output=True, timeout=300)  # fmt: skip
    if check and res.returncode:
        raise AssertionError(f"atalaya {' '.join(args)} failed ({res.returncode}):\n{res.stderr}")
    return res


@contextmanager
def _serve(ws: Path) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "ATALAYA_WORKSPACE": str(ws)}
    proc = subprocess.Popen([sys.executable, "-m", "atalaya.cli.main", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(url + "/api/log/checkpoint", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail(f"the node at {ws} did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _json(res: subprocess.CompletedProcess[str]) -> object:
    return json.loads(res.stdout)


@pytest.fixture
def collector(demo_workspace: Workspace, demo_scenario: Path, tmp_path: Path) -> Workspace:
    """The USA node: the demo with its agreements logged and its sorties checked."""
    store = KnowledgeStore.open(demo_workspace.db_url)
    try:
        service.load_agreements(demo_workspace, store, load_agreements([demo_scenario / "records" / "agreements"]))
        service.run(demo_workspace, store, out_dir=tmp_path / "reports")
    finally:
        store.close()
    return demo_workspace


def test_two_nodes_publish_sync_retract_and_witness(collector: Workspace, tmp_path: Path) -> None:
    usa = collector.root
    mex = tmp_path / "mex"
    _cli(tmp_path, "init", str(mex), "--party", "MEX", "--role", "host")
    # each side registers the other: keys pinned out of band, tokens issued to the other node
    _cli(usa, "users", "add", "mex-node", "--role", "liaison", "--party", "MEX", "--password", "mex node pass 1")
    (tmp_path / "usa-token").write_text(_cli(usa, "users", "token", "mex-node").stdout.strip())
    os.chmod(tmp_path / "usa-token", 0o600)
    usa_key = _cli(usa, "log", "export-key").stdout.strip()
    (tmp_path / "mex-token").write_text("unused: MEX serves nothing in this test")
    _cli(usa, "partners", "add", "MEX", "http://127.0.0.1:9", "--key", _cli(mex, "log", "export-key").stdout.strip(),
         "--witness-key", _cli(mex, "log", "export-key", "--witness").stdout.strip(),
         "--token-file", str(tmp_path / "mex-token"))  # fmt: skip
    backup = tmp_path / "usa-before-publish"
    shutil.copytree(usa, backup)

    pub = _json(_cli(usa, "share", "publish", "--for", "MEX", "--kind", "sorties", "--kind", "verdicts", "--json"))
    assert isinstance(pub, dict)
    n_sorties = pub["added"]["MEX"]["sorties"]
    assert n_sorties > 0 and pub["added"]["MEX"]["verdicts"] > 0 and pub["log_indices"]

    with _serve(usa) as url:
        _cli(mex, "partners", "add", "USA", url, "--key", usa_key, "--token-file", str(tmp_path / "usa-token"))
        first = _json(_cli(mex, "sync", "USA", "--json"))[0]  # type: ignore[index]
        assert first["unverified"] == 0 and first["received"] > n_sorties, first
        assert first["cosigned"] and first["publications"] >= 2
        # the host recomputed every sortie over Mexico from the shared flown tracks: the same figures
        checks = _json(_cli(mex, "partners", "checks", "USA", "--json"))
        with KnowledgeStore.open(Workspace.find(mex).db_url).begin() as conn:
            n_received = conn.execute(
                select(func.count()).select_from(ks.received_objects).where(
                    ks.received_objects.c.type == "x-atalaya-sortie")
            ).scalar_one()  # fmt: skip
        assert isinstance(checks, list) and len(checks) == n_received > 0
        over_mex = [c for c in checks if c["claimed"]]
        assert over_mex and all(c["status"] == "agrees" for c in over_mex), [c for c in checks if c["differences"]]
        assert all(c["recomputed"] == [] for c in checks if not c["claimed"] and c["status"] == "agrees")
        _tampered_figures_are_disputed(Workspace.find(mex))
        again = _json(_cli(mex, "sync", "USA", "--json"))[0]  # type: ignore[index]
        assert again["nothing_new"] and again["requests"] == 1
        # the collector keeps the host's cosignatures and publishes them with its checkpoints
        token = (tmp_path / "usa-token").read_text().strip()
        head = httpx.get(url + "/api/log/checkpoint", headers={"Authorization": f"Bearer {token}"}).json()
        assert [c["witness"] for c in head["cosignatures"]] == ["MEX"]
        assert "\u2014 atalaya.mex/witness " in head["cosignatures"][0]["checkpoint"]

        # a retraction reaches the host, is hidden there and acknowledged with a signed receipt
        mex_store = KnowledgeStore.open(Workspace.find(mex).db_url)
        with mex_store.begin() as conn:
            sid = conn.execute(
                select(ks.received_objects.c.stix_id).where(ks.received_objects.c.type == "x-atalaya-verdict")
            ).scalars().first()  # fmt: skip
        assert sid
        _cli(usa, "share", "retract", str(sid), "--reason", "verdict recomputed with corrected track")
        third = _json(_cli(mex, "sync", "USA", "--json"))[0]  # type: ignore[index]
        assert third["retracted"] >= 1 and third["receipts"] == 1 and third["unverified"] == 0
        with mex_store.begin() as conn:
            live = conn.execute(
                select(func.count()).select_from(ks.received_objects).where(
                    ks.received_objects.c.stix_id == sid, ks.received_objects.c.retracted_at.is_(None))
            ).scalar_one()  # fmt: skip
        assert live == 0
        status = _json(_cli(usa, "share", "retractions", "--json"))
        assert isinstance(status, list) and status[-1]["object"] == sid and "MEX" in status[-1]["acknowledged"]

    # a fork: another history, longer than what the host saw, signed with the same key, is refused by its witness
    (tmp_path / "other.jsonl").write_text(
        "".join(json.dumps({"kind": "note", "id": f"fork-{i}", "text": "another history"}) + "\n" for i in range(400))
    )
    _cli(backup, "log", "append", str(tmp_path / "other.jsonl"))
    with _serve(backup) as url2:
        _cli(mex, "partners", "add", "USA", url2, "--key", usa_key, "--token-file", str(tmp_path / "usa-token"))
        forked = _cli(mex, "sync", "USA", check=False)
        assert forked.returncode != 0
        assert "not consistent" in forked.stderr, forked.stderr


def _tampered_figures_are_disputed(mex: Workspace) -> None:
    """A logged figure that the flown track does not support (here: 20 minutes fewer over Mexico) is flagged."""
    from atalaya.share.federation.hostcheck import check_partner_sorties

    store = KnowledgeStore.open(mex.db_url)
    t = ks.received_objects.c
    with store.begin() as conn:
        for seq, body in conn.execute(select(t.seq, t.body).where(t.type == "x-atalaya-sortie")).all():
            obj = json.loads(body)
            over = [r for r in obj.get("over_territory") or [] if r.get("territory") == "MEX"]
            if over:
                over[0]["seconds"] = max(0.0, float(over[0]["seconds"]) - 1200.0)
                conn.execute(ks.received_objects.update().where(t.seq == seq).values(body=json.dumps(obj)))
                target = obj["atalaya_id"]
                break
    checks = {c.sortie_id: c for c in check_partner_sorties(mex, store, "USA")}
    assert checks[target].status == "differs"
    assert [(d["territory"], d["figure"]) for d in checks[target].differences] == [("MEX", "seconds")]
    assert sum(c.status == "differs" for c in checks.values()) == 1
