"""The web surface: sessions, expiry, revocation, throttling, headers, CSRF, malformed parameters, safe downloads."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from atalaya.api.app import create_app
from atalaya.api.security import content_disposition, neutralise_csv
from atalaya.api.users import add_user
from atalaya.cli.main import main
from atalaya.core.workspace import Workspace
from atalaya.store.knowledge import KnowledgeStore, migrations
from atalaya.store.knowledge import schema as ks

STATIC = Path(str(resources.files("atalaya.web").joinpath("static")))


@pytest.fixture
def client(workspace: Workspace) -> Iterator[TestClient]:
    store = KnowledgeStore.open(workspace.db_url)
    add_user(store, "ana", "analyst-pass", party="USA", role="analyst")
    add_user(store, "adm", "admin-pass-1", party="USA", role="admin")
    add_user(store, "lia", "liaison-pass", party="MEX", role="liaison")
    with store.begin() as conn:
        conn.execute(ks.sites.insert(), [{"id": "site--a", "kind": "lab", "lon": -107.0, "lat": 25.0, "score": 0.9}])
    with TestClient(create_app(workspace, store=store)) as c:
        yield c
    store.close()


def _bearer(c: TestClient, user: str, pw: str) -> dict[str, str]:
    r = c.post("/api/auth/login", json={"username": user, "password": pw})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _cookie_login(c: TestClient, user: str, pw: str) -> str:
    r = c.post("/api/auth/login", json={"username": user, "password": pw, "session": "cookie"})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])


# --------------------------------------------------------------------------- sessions


def test_logout_revokes_the_session_on_the_server(client: TestClient) -> None:
    h = _bearer(client, "ana", "analyst-pass")
    assert client.get("/api/auth/me", headers=h).status_code == 200
    assert client.post("/api/auth/logout", headers=h).json()["revoked"] is True
    assert client.get("/api/auth/me", headers=h).status_code == 401  # the token was still valid before
    # the web page's cookie session too: a copy of the cookie is useless after logout
    csrf = _cookie_login(client, "ana", "analyst-pass")
    cookie = client.cookies.get("atalaya_session")
    assert cookie and client.get("/api/auth/me").status_code == 200
    assert client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    client.cookies.clear()
    assert client.get("/api/auth/me", headers={"Cookie": f"atalaya_session={cookie}"}).status_code == 401


def test_session_cookie_only_httponly_strict_and_never_in_the_page(client: TestClient) -> None:
    r = client.post("/api/auth/login", json={"username": "ana", "password": "analyst-pass", "session": "cookie"})
    assert "token" not in r.json()  # the page never sees the session secret
    sc = r.headers["set-cookie"].lower()
    assert "httponly" in sc and "samesite=strict" in sc and "path=/" in sc
    js = (STATIC / "app.js").read_text(encoding="utf-8")
    assert "sessionStorage" not in js and "Authorization" not in js
    assert 'session: "cookie"' in js


def test_cookie_requests_that_change_state_need_the_csrf_token(client: TestClient) -> None:
    csrf = _cookie_login(client, "ana", "analyst-pass")
    assert client.get("/api/auth/me").json()["csrf_token"] == csrf
    body = {"status": "confirmed"}
    assert client.patch("/api/sites/site--a", json=body).status_code == 403
    assert client.patch("/api/sites/site--a", json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.patch("/api/sites/site--a", json=body, headers={"X-CSRF-Token": csrf}).status_code == 200
    client.cookies.clear()
    h = _bearer(client, "ana", "analyst-pass")  # bearer clients are not exposed to CSRF
    assert client.patch("/api/sites/site--a", json=body, headers=h).status_code == 200


def test_sessions_and_api_tokens_expire(client: TestClient, workspace: Workspace) -> None:
    h = _bearer(client, "ana", "analyst-pass")
    store = client.app.state.atalaya.store  # type: ignore[attr-defined]
    past = datetime.now(UTC) - timedelta(minutes=1)
    with store.begin() as conn:
        conn.execute(update(ks.sessions).values(expires_at=past))
    assert client.get("/api/auth/me", headers=h).status_code == 401
    h = _bearer(client, "ana", "analyst-pass")
    with store.begin() as conn:  # idle for longer than the idle limit
        conn.execute(update(ks.sessions).values(last_seen_at=datetime.now(UTC) - timedelta(hours=1)))
    assert client.get("/api/auth/me", headers=h).status_code == 401
    # API tokens: a lifetime is required and bounded; expired and never-expiring (legacy) tokens are refused
    h = _bearer(client, "ana", "analyst-pass")
    assert client.post("/api/auth/tokens", json={"name": "ci", "days": 3650}, headers=h).status_code == 422
    tok = client.post("/api/auth/tokens", json={"name": "ci", "days": 30}, headers=h).json()["token"]
    th = {"Authorization": f"Bearer {tok}"}
    assert client.get("/api/auth/me", headers=th).json()["auth"] == "token"
    with store.begin() as conn:
        conn.execute(update(ks.api_tokens).values(expires_at=None))
    assert client.get("/api/auth/me", headers=th).status_code == 401
    with store.begin() as conn:
        conn.execute(update(ks.api_tokens).values(expires_at=past))
    assert client.get("/api/auth/me", headers=th).status_code == 401


def test_tokens_revoked_users_disabled_passwords_changed_through_the_api(client: TestClient) -> None:
    ana = _bearer(client, "ana", "analyst-pass")
    adm = _bearer(client, "adm", "admin-pass-1")
    tok = client.post("/api/auth/tokens", json={"name": "script"}, headers=ana).json()["token"]
    th = {"Authorization": f"Bearer {tok}"}
    tid = client.get("/api/auth/tokens", headers=ana).json()["items"][0]["id"]
    assert client.delete(f"/api/auth/tokens/{tid}", headers=ana).status_code == 200
    assert client.get("/api/auth/me", headers=th).status_code == 401
    # only admins manage others
    assert client.get("/api/users", headers=ana).status_code == 403
    assert client.post("/api/users/lia/disable", headers=ana).status_code == 403
    lia = _bearer(client, "lia", "liaison-pass")
    assert client.post("/api/users/lia/disable", headers=adm).status_code == 200
    assert client.get("/api/auth/me", headers=lia).status_code == 401
    assert client.post("/api/auth/login", json={"username": "lia", "password": "liaison-pass"}).status_code == 401
    assert client.post("/api/users/lia/enable", headers=adm).status_code == 200
    lia = _bearer(client, "lia", "liaison-pass")
    assert client.post("/api/users/nobody/disable", headers=adm).status_code == 404
    # own password: needs the current one; other sessions end, this one stays
    other = _bearer(client, "ana", "analyst-pass")
    bad = {"current_password": "wrong-password", "new_password": "a-new-passphrase"}
    assert client.post("/api/auth/password", json=bad, headers=ana).status_code == 403
    short = {"current_password": "analyst-pass", "new_password": "short"}
    assert client.post("/api/auth/password", json=short, headers=ana).status_code == 422
    ok = {"current_password": "analyst-pass", "new_password": "a-new-passphrase"}
    assert client.post("/api/auth/password", json=ok, headers=ana).status_code == 200
    assert client.get("/api/auth/me", headers=ana).status_code == 200
    assert client.get("/api/auth/me", headers=other).status_code == 401
    _bearer(client, "ana", "a-new-passphrase")
    # an admin sets another's password (all its sessions end) and revokes everything it holds
    assert (
        client.post("/api/users/lia/password", json={"new_password": "liaison-pass-2"}, headers=adm).status_code == 200
    )
    assert client.get("/api/auth/me", headers=lia).status_code == 401
    lia = _bearer(client, "lia", "liaison-pass-2")
    assert client.post("/api/users/lia/revoke", headers=adm).json()["revoked"] >= 1
    assert client.get("/api/auth/me", headers=lia).status_code == 401
    users = {u["username"]: u for u in client.get("/api/users", headers=adm).json()["items"]}
    assert users["lia"]["active"] is True and users["lia"]["sessions"] == 0


def test_users_cli_revokes_disables_and_sets_passwords(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = ["-w", str(workspace.root)]
    main([*ws, "users", "add", "ana", "--role", "analyst", "--password", "analyst-pass"])
    main([*ws, "users", "token", "ana", "--name", "ci", "--days", "7"])
    tok = capsys.readouterr().out.strip().splitlines()[-1]
    with TestClient(create_app(workspace)) as c:
        th = {"Authorization": f"Bearer {tok}"}
        assert c.get("/api/auth/me", headers=th).status_code == 200
        main([*ws, "users", "disable", "ana"])
        assert c.get("/api/auth/me", headers=th).status_code == 401
        main([*ws, "users", "enable", "ana"])
        assert c.get("/api/auth/me", headers=th).status_code == 200
        main([*ws, "users", "revoke", "ana"])
        assert c.get("/api/auth/me", headers=th).status_code == 401
        h = _bearer(c, "ana", "analyst-pass")
        main([*ws, "users", "passwd", "ana", "--password", "another-passphrase"])
        assert c.get("/api/auth/me", headers=h).status_code == 401
        _bearer(c, "ana", "another-passphrase")
    main([*ws, "users", "tokens", "ana"])
    assert "REVOKED" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*ws, "users", "token", "ana", "--days", "3650"])


# --------------------------------------------------------------------------- throttling


def test_repeated_wrong_passwords_lock_the_name_even_for_the_right_one(client: TestClient) -> None:
    codes = [
        client.post("/api/auth/login", json={"username": "ana", "password": f"guess-{i}"}).status_code
        for i in range(60)
    ]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
    r = client.post("/api/auth/login", json={"username": "ana", "password": "analyst-pass"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    # an unknown name gets the very same answers: the lockout does not say whether a user exists
    ghost = [client.post("/api/auth/login", json={"username": "ghost", "password": "x"}) for _ in range(6)]
    assert [g.status_code for g in ghost] == [401] * 5 + [429]
    assert ghost[-1].json()["detail"].split(":")[0] == r.json()["detail"].split(":")[0]
    assert ghost[0].json() == client.post("/api/auth/login", json={"username": "lia", "password": "x"}).json()


def test_one_address_is_throttled_across_names(client: TestClient) -> None:
    codes = [
        client.post("/api/auth/login", json={"username": f"user{i}", "password": "x"}).status_code for i in range(21)
    ]
    assert codes[:20] == [401] * 20 and codes[20] == 429
    assert client.post("/api/auth/login", json={"username": "lia", "password": "liaison-pass"}).status_code == 429


def test_login_takes_as_long_for_unknown_users(client: TestClient) -> None:
    def timed(user: str) -> float:
        t0 = time.perf_counter()
        assert client.post("/api/auth/login", json={"username": user, "password": "not-it"}).status_code == 401
        return time.perf_counter() - t0

    known, unknown = [], []
    for i in range(4):  # under both limits
        known.append(timed(["ana", "adm", "lia", "ana"][i]))
        unknown.append(timed(f"nobody-{i}"))
    k, u = statistics.median(known), statistics.median(unknown)
    assert u > 0.5 * k, f"unknown users answer in {u * 1000:.1f} ms, known in {k * 1000:.1f} ms"


# --------------------------------------------------------------------------- headers


def test_security_headers_on_every_response(client: TestClient) -> None:
    h = _bearer(client, "ana", "analyst-pass")
    for path, headers in [("/", {}), ("/static/app.js", {}), ("/api/sites", h), ("/api/sites", {}),
                          ("/api/nowhere", {}), ("/openapi.json", {})]:  # fmt: skip
        r = client.get(path, headers=headers)
        csp = r.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, (path, csp)
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, (path, csp)
        assert r.headers["x-frame-options"] == "DENY", path
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "no-referrer", path
    assert client.get("/api/sites", headers=h).headers["cache-control"] == "no-store"


def test_workspace_page_has_no_inline_script_or_style() -> None:
    import re

    html = (STATIC / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline <script> in index.html"
    assert "<style" not in html and not re.search(r"\sstyle=", html) and not re.search(r"\son\w+=", html)
    js = (STATIC / "app.js").read_text(encoding="utf-8")
    assert not re.search(r"\sstyle=", js), "style attributes are blocked by the CSP: use data-w/data-bg"


# --------------------------------------------------------------------------- parameters and downloads


def test_malformed_parameters_are_client_errors(client: TestClient) -> None:
    h = _bearer(client, "ana", "analyst-pass")
    bad = [
        ("/api/sites", {"offset": "9223372036854775808"}),
        ("/api/sites", {"limit": "99999999999999999999"}),
        ("/api/reports/partner", {"party": "ME\u202eX"}),
        ("/api/reports/partner", {"party": "MEX\r\nSet-Cookie: x=1"}),
        ("/api/reports/partner", {"party": 'MEX"; filename="evil.exe'}),
        ("/api/reports/partner", {"party": "m\u0131x"}),  # dotless i upper-cases to ASCII I
        ("/api/log/proof", {"index": "-1"}),
        ("/api/log/consistency", {"old": "18446744073709551616"}),
    ]
    for path, params in bad:
        r = client.get(path, params=params, headers=h)
        assert 400 <= r.status_code < 500, (path, params, r.status_code, r.text)
        assert r.headers.get("content-type", "").startswith("application/json"), (path, params)


def test_content_disposition_cannot_be_broken_by_a_name() -> None:
    v = content_disposition('compliance-MEX"; filename="evil.exe\r\n.csv')
    assert v.count("filename=") == 1 and "\r" not in v and "\n" not in v
    assert v.startswith('attachment; filename="compliance-MEX__') and "filename*=UTF-8''compliance-MEX%22" in v


def test_csv_cells_cannot_run_as_formulas() -> None:
    text = 'a,b,c,d,e,f,g\r\n=1+2,+cmd,-2+3,@SUM(A1),"\tx","\rx",-12.5\r\n'
    import csv
    import io

    cells = next(iter(csv.reader(io.StringIO(neutralise_csv(text).split("\r\n", 1)[1], newline=""))))
    assert cells == ["'=1+2", "'+cmd", "'-2+3", "'@SUM(A1)", "'\tx", "'\rx", "-12.5"]


def test_migration_3_brings_an_older_store_up_to_date(workspace: Workspace) -> None:
    from sqlalchemy import inspect, text

    store = KnowledgeStore.open(workspace.db_url)
    with store.begin() as conn:  # back to what schema version 2 had
        conn.execute(text("DROP TABLE sessions"))
        conn.execute(text("ALTER TABLE api_tokens DROP COLUMN revoked_at"))
        conn.execute(text("ALTER TABLE api_tokens DROP COLUMN last_used_at"))
        conn.execute(text("DROP INDEX ix_log_entries_ref"))
        conn.execute(text("DELETE FROM schema_migrations WHERE version >= 3"))
    store.close()
    store = KnowledgeStore.open(workspace.db_url)
    try:
        with store.engine.connect() as conn:
            cols = {c["name"] for c in inspect(conn).get_columns("api_tokens")}
            assert {"revoked_at", "last_used_at"} <= cols and inspect(conn).has_table("sessions")
            assert "ix_log_entries_ref" in {ix["name"] for ix in inspect(conn).get_indexes("log_entries")}
        assert store.schema_version() == migrations.LATEST  # and every later migration after them
    finally:
        store.close()
