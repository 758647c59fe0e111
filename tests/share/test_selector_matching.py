"""Private selector comparisons: normal forms, the agreement's term and limits, the log on both sides,
what crosses the wire — in process, and between two nodes as real processes."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.core.workspace import Workspace, init_workspace
from atalaya.share.matching.protocol import Party
from atalaya.share.matching.selectors import name_key, normalise
from atalaya.share.matching.service import (
    MatchRefusedError,
    Responder,
    Transport,
    compare,
    import_selectors,
)
from atalaya.sovereignty.agreements import example_document, parse_agreement, store_agreements
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.translog.node import open_log

# --------------------------------------------------------------------------- normal forms


def test_phone_forms_meet_in_e164() -> None:
    n = normalise("phone", ["+52 1 55 1234 5678", "55-1234-5678", "(55) 1234 5678", "+52 (55) 1234-5678"])
    assert n.items == ["phone:+525512345678"]
    assert normalise("phone", ["202 555 0143"], region="US").items == ["phone:+12025550143"]
    assert normalise("phone", ["12"]).rejects[0][2].startswith("not a possible")


def test_names_and_companies_are_order_and_accent_free() -> None:
    assert name_key("María de la Luz HERNÁNDEZ") == name_key("Hernandez, Maria Luz")
    assert name_key("Exportadora Pacífico S.A. de C.V.", company=True) == name_key("exportadora pacifico", company=True)
    assert normalise("person", ["Ana Ruiz|1980-02-30"]).rejects[0][2].startswith("birth date")


def test_accounts_are_checked() -> None:
    ok = normalise("account", ["GB82 WEST 1234 5698 7654 32", "032180000118359719", "gb82west12345698765433"])
    assert ok.items == ["account:GB82WEST12345698765432", "account:032180000118359719"]
    assert ok.rejects[0][2] == "IBAN check digits do not match"
    assert normalise("account", ["032180000118359718"]).rejects[0][2] == "CLABE check digit does not match"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="AaÁáBbEeÉéÑñOoÓó ,.-", min_size=1, max_size=30), min_size=1, max_size=5))
def test_name_keys_are_idempotent(names: list[str]) -> None:
    first = normalise("person", names)
    again = normalise("person", [i.split(":", 1)[1] for i in first.items])
    assert again.items == first.items


# --------------------------------------------------------------------------- two nodes in one process


def _node(root: Path, party: str, agreement: dict[str, Any] | None) -> tuple[Workspace, KnowledgeStore]:
    ws = init_workspace(root / party.lower(), party=party)
    store = KnowledgeStore.open(ws.db_url)
    if agreement is not None:
        store_agreements(store, [parse_agreement(agreement)])
    return ws, store


def _agreement(reveal: str = "intersection", **limits: int) -> dict[str, Any]:
    doc = example_document()
    now = datetime.now(UTC)
    doc["effective"] = {"from": (now - timedelta(days=1)).isoformat(), "to": (now + timedelta(days=30)).isoformat()}
    doc["collection"][0]["time_windows"] = [doc["effective"]]
    doc["matching"] = [{"parties": ["USA", "MEX"], "selectors": ["phone", "mmsi"], "reveal": reveal, **limits}]
    return doc


class Wire(Transport):
    """The responder's service called in-process, keeping every byte that crosses."""

    def __init__(self, ws: Workspace, store: KnowledgeStore, initiator: str) -> None:
        self.ws, self.store, self.initiator = ws, store, initiator
        self.responder = Responder()
        self.sent: list[bytes] = []

    def answer(self, *, kind: str, reveal: str, request: bytes) -> dict[str, Any]:
        r = self.responder.answer(self.ws, self.store, initiator=self.initiator, kind=kind, reveal=reveal,
                                  request=request)  # fmt: skip
        self.sent += [request, r["setup"], r["response"], r["request"]]
        return r

    def complete(self, *, match_id: str, setup: bytes, response: bytes) -> dict[str, Any]:
        self.sent += [setup, response]
        out = self.responder.complete(self.ws, self.store, initiator=self.initiator, match_id=match_id, setup=setup,
                                      response=response)  # fmt: skip
        self.outcome = out
        return {"match_id": match_id}


def _phones(prefix: str, n: int) -> list[str]:
    return [f"+52 55 {prefix}{i:04d}" for i in range(n)]


def _log_entries(ws: Workspace) -> list[dict[str, Any]]:
    with open_log(ws, readonly=True) as log:
        return [json.loads(log.get_bytes(i)) for i in range(log.size)]


def test_two_nodes_find_exactly_the_planted_overlap_and_nothing_crosses_in_clear(tmp_path: Path) -> None:
    usa, usa_store = _node(tmp_path, "USA", _agreement())
    mex, mex_store = _node(tmp_path, "MEX", _agreement())
    planted = _phones("77", 7)
    import_selectors(usa_store, "phone", _phones("11", 300) + planted, source="usa.txt")
    mex_values = planted + _phones("22", 150)
    wire = Wire(usa, usa_store, "MEX")
    out = compare(mex, mex_store, wire, partner="USA", kind="phone", values=mex_values)
    assert out.overlap == 7 and sorted(out.common or []) == sorted(planted)
    assert (out.own_items, out.peer_items) == (157, 307)
    assert wire.outcome.overlap == 7 and sorted(wire.outcome.common or []) == sorted(planted)
    # nothing of either list crosses in clear or as a plain hash
    items = normalise("phone", _phones("11", 300) + mex_values).items
    needles = [i.encode() for i in items] + [i.split(":")[1].encode() for i in items]
    needles += [hashlib.sha256(i.encode()).digest() for i in items]
    blob = b"".join(wire.sent)
    assert not [n for n in needles if n in blob]
    # both logs hold the comparison, with sizes and digests, never an item
    for ws, role in ((usa, "responder"), (mex, "initiator")):
        entries = [e for e in _log_entries(ws) if e.get("kind") == "match"]
        final = entries[-1]
        assert final["role"] == role and final["overlap"] == 7 and final["agreement"] == "AGR-X@v1"
        assert len(final["messages"]) == 6
        text = json.dumps(entries)
        assert "+5255" not in text and "phone:" not in text


def test_size_only_terms_reveal_a_count_not_the_items(tmp_path: Path) -> None:
    usa, usa_store = _node(tmp_path, "USA", _agreement("size"))
    mex, mex_store = _node(tmp_path, "MEX", _agreement("size"))
    import_selectors(usa_store, "phone", _phones("11", 40) + _phones("77", 3), source="usa.txt")
    out = compare(mex, mex_store, Wire(usa, usa_store, "MEX"), partner="USA", kind="phone",
                  values=_phones("77", 3) + _phones("33", 10))  # fmt: skip
    assert out.overlap == 3 and out.common is None


def test_a_peer_cannot_ask_for_more_than_the_term_reveals(tmp_path: Path) -> None:
    usa, usa_store = _node(tmp_path, "USA", _agreement("size"))
    import_selectors(usa_store, "phone", _phones("11", 5), source="usa.txt")
    greedy = Party(normalise("phone", _phones("11", 5)).items, reveal=True)
    with pytest.raises(MatchRefusedError, match="reveals 'size'"):
        Responder().answer(usa, usa_store, initiator="MEX", kind="phone", reveal="intersection",
                           request=greedy.request())  # fmt: skip
    # and claiming 'size' while sending a revealing request is refused by the protocol itself
    with pytest.raises(MatchRefusedError, match="only their number"):
        Responder().answer(usa, usa_store, initiator="MEX", kind="phone", reveal="size", request=greedy.request())


def test_no_term_no_comparison_and_limits_hold(tmp_path: Path) -> None:
    usa, usa_store = _node(tmp_path, "USA", _agreement(max_items=50, max_per_day=2))
    mex, mex_store = _node(tmp_path, "MEX", _agreement(max_items=50, max_per_day=2))
    import_selectors(usa_store, "phone", _phones("11", 20), source="usa.txt")
    import_selectors(usa_store, "mmsi", ["366000001"], source="usa.txt")
    with pytest.raises(MatchRefusedError, match="no agreement in force lets MEX and GTM"):
        compare(mex, mex_store, Wire(usa, usa_store, "MEX"), partner="GTM", kind="phone", values=_phones("11", 2))
    with pytest.raises(MatchRefusedError, match="compare icao24"):
        compare(mex, mex_store, Wire(usa, usa_store, "MEX"), partner="USA", kind="icao24", values=["abc123"])
    with pytest.raises(MatchRefusedError, match="allows at most 50"):
        compare(mex, mex_store, Wire(usa, usa_store, "MEX"), partner="USA", kind="phone", values=_phones("44", 51))
    # the responder counts what the initiator started, whatever the initiator's own count says
    responder_wire = Wire(usa, usa_store, "MEX")
    for _ in range(2):
        compare(mex, mex_store, responder_wire, partner="USA", kind="mmsi", values=["366000001"])
    with pytest.raises(MatchRefusedError, match="allows 2 a day"):
        compare(mex, mex_store, responder_wire, partner="USA", kind="mmsi", values=["366000001"])
    other, other_store = _node(tmp_path / "b", "MEX", _agreement(max_items=50, max_per_day=2))
    with pytest.raises(MatchRefusedError, match="MEX has started 2 mmsi comparisons"):
        compare(other, other_store, responder_wire, partner="USA", kind="mmsi", values=["366000001"])


def test_reimport_is_idempotent_and_rejects_say_why(tmp_path: Path) -> None:
    _ws, store = _node(tmp_path, "USA", None)
    first = import_selectors(store, "mmsi", ["366000001", "36600000", "366000002"], source="a")
    again = import_selectors(store, "mmsi", ["366000001", "366000002"], source="b")
    assert (first.added, again.added, again.already) == (2, 0, 2)
    assert first.rejects == [(1, "36600000", "an MMSI has nine digits")]


# --------------------------------------------------------------------------- two nodes as real processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cli(ws: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATALAYA_WORKSPACE": str(ws)}
    return subprocess.run([sys.executable, "-m", "atalaya.cli.main", *args], env=env, text=True,
                          capture_output=True, check=check, timeout=120)  # fmt: skip


@pytest.fixture
def usa_server(tmp_path: Path) -> Iterator[tuple[Path, str, Path]]:
    doc = tmp_path / "agr.json"
    doc.write_text(json.dumps(_agreement()))
    usa = tmp_path / "usa"
    _cli(tmp_path, "init", str(usa), "--party", "USA")
    _cli(usa, "agreements", "load", str(doc))
    (tmp_path / "usa.txt").write_text("\n".join(["# our list", *_phones("11", 50), *_phones("77", 4)]))
    _cli(usa, "selectors", "import", str(tmp_path / "usa.txt"), "--kind", "phone")
    _cli(usa, "users", "add", "mex-node", "--role", "liaison", "--party", "MEX", "--password", "correct horse 42 b")
    token = _cli(usa, "users", "token", "mex-node").stdout.strip().split()[-1]
    port = _free_port()
    env = {**os.environ, "ATALAYA_WORKSPACE": str(usa)}
    proc = subprocess.Popen([sys.executable, "-m", "atalaya.cli.main", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(url + "/api/log/checkpoint", timeout=1).status_code in (200, 401):
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("the USA node did not start")
        (tmp_path / "token").write_text(token)
        yield usa, url, tmp_path
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_match_between_two_node_processes(usa_server: tuple[Path, str, Path]) -> None:
    usa, url, tmp = usa_server
    mex = tmp / "mex"
    _cli(tmp, "init", str(mex), "--party", "MEX")
    _cli(mex, "agreements", "load", str(tmp / "agr.json"))
    vkey = _cli(usa, "log", "export-key").stdout.strip()
    os.chmod(tmp / "token", 0o600)
    _cli(mex, "partners", "add", "USA", url, "--key", vkey, "--token-file", str(tmp / "token"))
    (tmp / "mex.csv").write_text("name,phone\n" + "\n".join(f"x{i},{p}" for i, p in enumerate(_phones("77", 4))))
    res = json.loads(_cli(mex, "match", "USA", "--kind", "phone", "--file", str(tmp / "mex.csv"), "--column",
                          "phone", "--json").stdout)  # fmt: skip
    assert res["overlap"] == 4 and res["peer_items"] == 54 and sorted(res["common"]) == sorted(_phones("77", 4))
    # the responder logged it too, with what it learnt and the digests of the same messages
    usa_entry = [e for e in _log_entries(Workspace.find(usa)) if e.get("kind") == "match"][-1]
    mex_entry = [e for e in _log_entries(Workspace.find(mex)) if e.get("kind") == "match"][-1]
    assert usa_entry["id"] == res["match_id"] == mex_entry["id"] and usa_entry["overlap"] == 4
    assert usa_entry["messages"] == mex_entry["messages"]
    refused = _cli(mex, "match", "USA", "--kind", "icao24", "--file", str(tmp / "mex.csv"), check=False)
    assert refused.returncode != 0 and "no agreement in force lets MEX and USA compare icao24" in refused.stderr
