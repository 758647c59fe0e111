"""End-to-end tests of the web workspace in headless Chromium (Playwright), over a small generated scenario.

Chromium comes from the system (``ATALAYA_CHROMIUM`` or ``/usr/bin/chromium``); the tests are skipped when
no binary exists outside CI. Screenshots go to ``test-artifacts/screenshots/`` for review.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("ATALAYA_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
REL = "TLP:AMBER;REL:MEX,USA;CAV:INTEL-ONLY,NO-ACTION-WITHOUT-HOST-CONSENT;ORIG:USA"
OWN = "TLP:AMBER;REL:USA;ORIG:USA"


@dataclass(frozen=True, kw_only=True)
class Served:
    """A running server over a scenario workspace."""

    url: str
    """Base URL."""
    workspace: Any
    """The served workspace."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def build_workspace(root: Path) -> Any:
    """A one-day demo scenario, ingested and analysed, with users, released and unreleased sites, a signed log."""
    from sqlalchemy import update

    from atalaya.api.users import add_user
    from atalaya.core.markings import Marking
    from atalaya.core.workspace import init_workspace
    from atalaya.fusion.sites import run_sites
    from atalaya.ingest.pipeline import ingest_paths
    from atalaya.ingest.records import load_records
    from atalaya.scenario.config import get_config
    from atalaya.scenario.generate import generate
    from atalaya.sovereignty import service
    from atalaya.sovereignty.agreements import load_agreements
    from atalaya.store.knowledge import KnowledgeStore
    from atalaya.store.knowledge import schema as ks

    scen = root / "scenario"
    generate(scen, size="demo", seed=3, config=get_config("demo", days=1))
    ws = init_workspace(root / "ws", party="USA", name="Collecting party")
    store = KnowledgeStore.open(ws.db_url)
    try:
        ingest_paths(ws, [scen / "feeds"], store=store)
        load_records(store, scen / "records", marking=Marking.from_text("TLP:AMBER;ORIG:USA"))
        # the README's path: agreements loaded (and logged) through the sovereignty service, sorties checked
        service.load_agreements(ws, store, load_agreements([scen / "records" / "agreements"]))
        run_sites(ws, store)
        with store.begin() as conn:
            conn.execute(update(ks.sites).values(marking=OWN))
            conn.execute(
                ks.sites.insert(),
                [
                    {"id": "site--released", "kind": "lab", "lon": -107.4, "lat": 25.8, "score": 0.97, "n_days": 3,
                     "evidence": {"n_detections": 14, "thermal": 0.42, "structure": 0.31, "emitter": 0.12},
                     "provenance": {"method": "sites/grid-v1", "observations": ["obs-1", "obs-2"]}, "marking": REL},
                    {"id": "site--withheld", "kind": "stash_house", "lon": -106.4, "lat": 31.6, "score": 0.95,
                     "n_days": 2, "evidence": {"n_detections": 9, "structure": 0.4},
                     "provenance": {"method": "sites/grid-v1"}, "marking": OWN},
                ],
            )  # fmt: skip
            conn.execute(update(ks.sorties).values(marking=REL))
        add_user(store, "ana", "analyst-pass", party="USA", role="analyst")
        add_user(store, "adm", "admin-pass-1", party="USA", role="admin")
        add_user(store, "lia", "liaison-pass", party="MEX", role="liaison")
        service.check(ws, store)
    finally:
        store.close()
    return ws


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"no Chromium at {CHROMIUM}: apt-get install chromium, or set ATALAYA_CHROMIUM")
        pytest.skip(f"no Chromium binary at {CHROMIUM} (apt-get install chromium, or set ATALAYA_CHROMIUM)")
    import uvicorn

    from atalaya.api.app import create_app

    root = tmp_path_factory.mktemp("web")
    ws = build_workspace(root)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(ws, truth_dir=root / "scenario" / "truth"), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the test server did not start"
    try:
        yield Served(url=f"http://127.0.0.1:{port}", workspace=ws)
    finally:
        server.should_exit = True
        th.join(timeout=10)


@pytest.fixture(scope="session")
def browser(served: Served) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    try:
        yield pg
    finally:
        ctx.close()


def _shot(pg: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"{name}.png"))


def _login(pg: Any, served: Served, user: str, pw: str) -> None:
    pg.goto(served.url + "/")
    pg.fill("#login-user", user)
    pg.fill("#login-pass", pw)
    pg.click("#login-submit")
    pg.wait_for_selector("#app:not([hidden])")


def _map_ready(pg: Any) -> None:
    pg.wait_for_selector("canvas.maplibregl-canvas[data-ready='1']", state="attached", timeout=90_000)


def test_wrong_password_is_refused(page: Any, served: Served) -> None:
    page.goto(served.url + "/")
    page.fill("#login-user", "ana")
    page.fill("#login-pass", "not-the-password")
    page.click("#login-submit")
    page.wait_for_selector("#login-error:has-text('Wrong username or password')")
    assert page.is_hidden("#app")


def test_map_renders_its_layers_offline(page: Any, served: Served) -> None:
    outside: list[str] = []
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    page.on(
        "request",
        lambda r: (
            outside.append(r.url) if r.url.startswith(("http", "ws")) and not r.url.startswith(served.url) else None
        ),
    )
    _login(page, served, "ana", "analyst-pass")
    _map_ready(page)
    layers = page.evaluate("() => window.atalaya.map.getStyle().layers.map(l => l.id)")
    for lid in ("background", "countries-fill", "states-line", "detections", "sorties", "sites", "tracks",
                "corridors", "crossings", "maritime", "truth-sites", "truth-tracks"):  # fmt: skip
        assert lid in layers, lid
    counts = page.evaluate(
        "() => Object.fromEntries(Object.entries(window.atalaya.state.layers).map(([k, v]) => [k, v.count]))"
    )
    assert counts["sorties"] > 0 and counts["detections"] > 0 and counts["sites"] >= 2
    assert page.evaluate("() => window.atalaya.map.getCanvas().width") > 0
    # demo mode: the truth overlay toggles on
    page.check("input[data-layer='truth-sites']")
    assert page.evaluate("() => window.atalaya.map.getLayoutProperty('truth-sites', 'visibility')") == "visible"
    # the day slider reloads the daily layers for that day
    page.fill("#day-slider", "1")
    page.dispatch_event("#day-slider", "change")
    page.wait_for_function("() => /^\\d{4}-\\d{2}-\\d{2}/.test(document.getElementById('day-label').textContent)")
    page.wait_for_timeout(1500)
    _shot(page, "map-analyst")
    assert outside == [], f"requests left the node: {outside[:5]}"
    assert blocked == [], f"the CSP blocked: {blocked[:3]}"
    # the session is an HttpOnly cookie: nothing the page's scripts can read holds it
    assert "atalaya_session" not in page.evaluate("() => document.cookie")
    assert page.evaluate("() => sessionStorage.length") == 0
    page.click("#tabs a[data-view='sorties']")
    page.wait_for_selector("#report .charts")
    page.wait_for_timeout(500)
    assert blocked == [], f"the CSP blocked: {blocked[:3]}"


def test_clicking_a_site_shows_its_evidence(page: Any, served: Served) -> None:
    _login(page, served, "ana", "analyst-pass")
    _map_ready(page)
    page.evaluate("() => window.atalaya.map.jumpTo({center: [-107.4, 25.8], zoom: 9})")
    page.wait_for_function("() => window.atalaya.map.loaded() && !window.atalaya.map.isMoving()")
    page.wait_for_timeout(500)
    x, y = page.evaluate(
        "() => { const p = window.atalaya.map.project([-107.4, 25.8]); const r = window.atalaya.map.getCanvas()"
        ".getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; }"
    )
    page.mouse.click(x, y)
    page.wait_for_selector("#side-content h3:has-text('site--released')")
    text = page.inner_text("#side-content")
    assert "Evidence" in text and "thermal" in text and "Provenance" in text and "sites/grid-v1" in text
    _shot(page, "site-evidence")


def test_status_change_persists_after_reload(page: Any, served: Served) -> None:
    _login(page, served, "ana", "analyst-pass")
    page.click("#tabs a[data-view='sites']")
    page.click("#sites-table tr[data-id='site--released']")
    page.wait_for_selector("#site-detail h3:has-text('site--released')")
    page.fill("#site-detail textarea[data-note]", "two thermal passes at night")
    page.click("#site-detail button[data-act='note']")
    page.wait_for_selector("#detail-note:has-text('two thermal passes')")
    page.click("#site-detail button[data-act='confirmed']")
    page.wait_for_selector("#detail-status:has-text('confirmed')")
    page.reload()
    page.wait_for_selector("#app:not([hidden])")
    page.goto(served.url + "/#sites")
    page.click("#sites-table tr[data-id='site--released']")
    page.wait_for_selector("#detail-status:has-text('confirmed')")
    assert "two thermal passes at night" in page.inner_text("#site-detail")
    _shot(page, "site-confirmed")


def test_compliance_table_and_partner_report(page: Any, served: Served) -> None:
    _login(page, served, "ana", "analyst-pass")
    page.click("#tabs a[data-view='sorties']")
    page.wait_for_selector("#sorties-table tbody tr")
    rows = page.locator("#sorties-table tbody tr").count()
    assert rows >= 2
    page.wait_for_selector("#report .charts")
    page.wait_for_selector("#report-frame")
    page.wait_for_function(
        "() => { const f = document.getElementById('report-frame'); return f.contentDocument === null || "
        "(f.contentDocument.body && f.contentDocument.body.innerText.length > 0); }"
    )
    assert "sorties" in page.inner_text("#report")
    _shot(page, "compliance")


def test_log_verification_remembers_the_checkpoint(page: Any, served: Served) -> None:
    from atalaya.store.translog.node import log_signer, open_log

    _login(page, served, "ana", "analyst-pass")
    page.click("#tabs a[data-view='log']")
    page.wait_for_selector("#log-table tbody tr")
    page.click("#log-verify")
    page.wait_for_selector("#verify-overall:has-text('Verified')")
    assert "inclusion holds" in page.inner_text("#log-verify-result")
    with open_log(served.workspace) as log:
        log.append({"kind": "overflight", "sortie": "S-TEST"})
        log.checkpoint(log_signer(served.workspace))
    page.reload()
    page.wait_for_selector("#log-remembered:has-text('tree size')")
    page.click("#log-verify")
    page.wait_for_selector("#verify-consistency:has-text('consistency holds')")
    assert "Verified" in page.inner_text("#verify-overall")
    _shot(page, "log-verified")


def test_log_verification_is_done_in_the_page(page: Any, served: Served) -> None:
    import json

    _login(page, served, "ana", "analyst-pass")
    page.click("#tabs a[data-view='log']")
    page.wait_for_selector("#log-table tbody tr")
    calls: list[str] = []
    page.on("request", lambda r: calls.append(r.url) if "/api/log/" in r.url else None)

    def tamper(route: Any) -> None:  # a server that lies about an entry's content
        resp = route.fetch()
        body = resp.json()
        entry = json.loads(body["entry"])
        entry["kind"] = "tampered"
        body["entry"] = json.dumps(entry, separators=(",", ":"), sort_keys=True)
        route.fulfill(response=resp, body=json.dumps(body))

    page.route("**/api/log/proof*", tamper)
    page.click("#log-verify")
    page.wait_for_selector("#verify-overall:has-text('Verification failed')")
    assert "inclusion FAILS" in page.inner_text("#log-verify-result")
    assert not [u for u in calls if u.endswith("/api/log/verify")], "the page asked the server for its verdict"
    page.unroute("**/api/log/proof*")

    def forge(route: Any) -> None:  # a checkpoint whose signature does not cover its body
        resp = route.fetch()
        body = resp.json()
        lines = body["checkpoint"].split("\n")
        lines[1] = str(int(lines[1]) + 1)
        body["checkpoint"] = "\n".join(lines)
        route.fulfill(response=resp, body=json.dumps(body))

    page.route("**/api/log/checkpoint", forge)
    page.click("#log-verify")
    page.wait_for_selector("#log-verify-result:has-text('no valid signature')")
    page.unroute("**/api/log/checkpoint")
    page.click("#log-verify")
    page.wait_for_selector("#verify-overall:has-text('Verified in this browser')")


def test_liaison_sees_only_what_was_released(page: Any, served: Served) -> None:
    _login(page, served, "lia", "liaison-pass")
    assert "liaison" in page.inner_text("#whoami")
    assert page.is_hidden("#tabs a[data-view='jobs']")
    _map_ready(page)
    toggles = page.evaluate("() => [...document.querySelectorAll('#layer-toggles input')].map(i => i.dataset.layer)")
    assert "detections" not in toggles and "truth-sites" not in toggles
    assert page.evaluate("() => window.atalaya.state.layers.sites.count") == 1, page.evaluate(
        "() => JSON.stringify(window.atalaya.state.layers)"
    )  # only site--released
    assert page.evaluate("() => window.atalaya.state.layers.sorties.count") > 0
    page.click("#tabs a[data-view='sites']")
    page.wait_for_selector("#sites-table tbody tr")
    ids = page.eval_on_selector_all("#sites-table tbody tr", "rows => rows.map(r => r.dataset.id)")
    assert ids == ["site--released"]
    assert page.locator("#site-detail button[data-act]").count() == 0
    codes = page.evaluate(
        "async () => { const me = await (await fetch('/api/auth/me')).json();"
        " const h = {'X-CSRF-Token': me.csrf_token};"
        " const a = await fetch('/api/sites/site--withheld', {headers: h});"
        " const b = await fetch('/api/map/detections', {headers: h});"
        " const c = await fetch('/api/jobs', {headers: h});"
        " const d = await fetch('/api/sites/site--released', {method: 'PATCH', headers: {...h, 'Content-Type':"
        " 'application/json'}, body: JSON.stringify({status: 'dismissed'})});"
        " return [a.status, b.status, c.status, d.status]; }"
    )
    assert codes == [404, 403, 403, 403]
    _shot(page, "liaison-sites")


def test_admin_runs_an_ingest_job_with_progress(page: Any, served: Served, tmp_path: Path) -> None:
    gpx = tmp_path / "extra.gpx"
    gpx.write_text(
        '<?xml version="1.0"?><gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"><trk><name>S-EXTRA</name>'
        "<trkseg><trkpt lat='31.5' lon='-110.3'><time>2026-03-02T10:00:00Z</time></trkpt>"
        "<trkpt lat='31.4' lon='-110.2'><time>2026-03-02T10:01:00Z</time></trkpt></trkseg></trk></gpx>",
        encoding="utf-8",
    )
    _login(page, served, "adm", "admin-pass-1")
    page.click("#tabs a[data-view='jobs']")
    page.fill("#job-path", str(gpx))
    page.click("#job-form button[type='submit']")
    page.wait_for_selector("#jobs-table td.job-status:has-text('done')", timeout=60_000)
    assert "100%" in page.inner_text("#jobs-table")
    _shot(page, "jobs")
