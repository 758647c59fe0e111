"""Load test of the HTTP API on loopback: N concurrent users (httpx async), bounded in time and requests.

Builds a demo-scale workspace (scenario ``demo``: generate, ingest, records, agreements, sites, tracks when
installed) unless ``--workspace`` names one, serves it with ``atalaya serve`` in its own process and runs
users that behave like the web workspace: each logs in once, loads the map page (territories, days, every
layer), then pans and zooms (detection density for the new view), moves the day slider (the daily layers)
and opens the tables, pausing between these actions as a person does (``--think``, seconds; 0 makes it a
closed loop that only measures capacity). Like a browser, a user sends ``Accept-Encoding: gzip`` and revalidates
what it already holds with ``If-None-Match`` (``--no-etag`` to turn that off). Reports p50/p95/p99 latency
and throughput per endpoint (target: p95 < 100 ms). Loopback only.

    .venv/bin/python bench/bench_api_load.py --clients 50 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

HOME = (-104.0, 25.0, 4.2)
"""The map's initial centre (lon, lat) and zoom."""
VIEWPORT = (1280, 800)
"""Map size in pixels."""
DAILY = ["/api/map/detections", "/api/map/tracks", "/api/map/sorties", "/api/map/maritime", "/api/map/crossings"]
"""Layers reloaded when the day slider moves."""
LAYERS = ["/api/map/corridors", "/api/map/tracks", "/api/map/sorties", "/api/map/maritime", "/api/map/crossings",
          "/api/map/sites"]  # fmt: skip
"""Layers loaded with the page, after the detection density."""
TABLES = ["/api/sites?limit=50", "/api/sorties?limit=50", "/api/log/checkpoint", "/api/log/entries?limit=50"]
"""The other views' first pages."""


def view_bbox(lon: float, lat: float, zoom: float, size: tuple[int, int] = VIEWPORT) -> str:
    """The ``west,south,east,north`` of a web-Mercator map of ``size`` pixels centred at (lon, lat)."""
    deg_per_px = 360.0 / (256.0 * 2.0**zoom)
    half_w = size[0] / 2 * deg_per_px
    y = math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))
    half_h = size[1] / 2 * math.radians(deg_per_px)
    south = math.degrees(2 * math.atan(math.exp(y - half_h)) - math.pi / 2)
    north = math.degrees(2 * math.atan(math.exp(y + half_h)) - math.pi / 2)
    return f"{lon - half_w:.4f},{south:.4f},{lon + half_w:.4f},{north:.4f}"


def _detections(lon: float, lat: float, zoom: float, day: str | None = None) -> str:
    q = f"/api/map/detections?zoom={zoom:.2f}&bbox={view_bbox(lon, lat, zoom)}"
    return q + (f"&day={day}" if day else "")


def session(days: list[str], rng: random.Random) -> Iterator[list[tuple[str, str]]]:
    """One user's actions, each a list of (label, path) requested one after another (as the web client does).

    The page load first, then rounds of pan/zoom, a day change and a table view.
    """
    lon, lat, zoom = HOME
    yield [
        ("auth/me", "/api/auth/me"),
        ("territories", "/api/map/territories?level=country"),
        ("territories", "/api/map/territories?level=state"),
        ("days", "/api/map/days"),
        ("detections (page)", _detections(lon, lat, zoom)),
        *((p.removeprefix("/api/"), p) for p in LAYERS),
    ]
    while True:
        for _ in range(4):  # pan and zoom around the theatre
            zoom = min(11.0, max(3.0, zoom + rng.choice([-1.0, -0.5, 0.5, 1.0])))
            lon = min(-86.0, max(-118.0, lon + rng.uniform(-1, 1) * 300 / 2**zoom))
            lat = min(33.0, max(14.0, lat + rng.uniform(-1, 1) * 200 / 2**zoom))
            yield [("detections (view)", _detections(lon, lat, zoom))]
        day = rng.choice(days) if days else None
        yield [  # the day slider
            ("detections (view)", _detections(lon, lat, zoom, day))
            if path.endswith("detections")
            else (path.removeprefix("/api/") + " (day)", f"{path}?day={day}" if day else path)
            for path in DAILY
        ]
        table = rng.choice(TABLES)
        yield [(table.removeprefix("/api/").split("?")[0], table)]


def build(root: Path, size: str) -> Path:
    """Generate and load a scenario workspace under ``root``; returns the workspace directory."""
    from atalaya.api.users import add_user
    from atalaya.core.markings import Marking
    from atalaya.core.workspace import init_workspace
    from atalaya.fusion.sites import run_sites
    from atalaya.ingest.pipeline import ingest_paths
    from atalaya.ingest.records import load_records
    from atalaya.scenario.generate import generate
    from atalaya.sovereignty.agreements import load_agreements
    from atalaya.store.knowledge import KnowledgeStore
    from atalaya.store.knowledge import schema as ks
    from atalaya.store.translog.node import log_signer, open_log

    scen = root / "scenario"
    generate(scen, size=size, seed=0, overwrite=True)
    ws = init_workspace(root / "ws", party="USA", name="Collecting party")
    store = KnowledgeStore.open(ws.db_url)
    try:
        ingest_paths(ws, [scen / "feeds"], store=store)
        load_records(store, scen / "records", marking=Marking.from_text("TLP:AMBER;ORIG:USA"))
        agreements = list(load_agreements([scen / "records" / "agreements"]))
        with store.begin() as conn:
            for a in agreements:
                conn.execute(
                    ks.agreements.insert().values(
                        id=a.id, version=a.version, title=a.title, document=a.document, sha256=a.sha256,
                        effective_from=a.effective_from, effective_to=a.effective_to, status="active",
                        created_at=datetime.now(UTC),
                    )
                )  # fmt: skip
        run_sites(ws, store)
        try:
            from atalaya.fusion.tracks import run_tracks

            run_tracks(ws, store)
        except ImportError:
            pass
        add_user(store, "bench", "bench-password", party="USA", role="analyst")
        with open_log(ws) as log:
            for a in agreements:
                log.append({"kind": "agreement", "id": a.id, "version": a.version, "sha256": a.sha256})
            log.checkpoint(log_signer(ws))
    finally:
        store.close()
    return ws.root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _user(
    base: str,
    k: int,
    days: list[str],
    stop_at: float,
    max_requests: int,
    etag: bool,
    think: tuple[float, float],
    arrive: float,
    out: dict[str, list[float]],
    errors: list[str],
) -> None:
    """One user: logs in once, then acts (pausing ``think`` seconds between actions) until time or requests run out."""
    await asyncio.sleep(arrive)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60.0) as c:
        t0 = time.perf_counter()
        r = await c.post("/api/auth/login", json={"username": "bench", "password": "bench-password"})
        if r.status_code != 200:
            errors.append(f"login: HTTP {r.status_code}")
            return
        out.setdefault("auth/login", []).append(time.perf_counter() - t0)
        headers = {"Authorization": f"Bearer {r.json()['token']}", "Accept-Encoding": "gzip"}
        held: dict[str, str] = {}
        n = 0
        rng = random.Random(k)
        for action in session(days, rng):
            if n >= max_requests or time.perf_counter() >= stop_at:
                break
            n += await _act(c, action, headers, held if etag else None, out, errors)
            pause = rng.uniform(*think)
            if pause > 0:
                await asyncio.sleep(min(pause, max(0.0, stop_at - time.perf_counter())))


async def _act(
    c: httpx.AsyncClient,
    action: list[tuple[str, str]],
    headers: dict[str, str],
    held: dict[str, str] | None,
    out: dict[str, list[float]],
    errors: list[str],
) -> int:
    """Request an action's paths one after another; ``held``: entity tags to revalidate (a browser's cache)."""
    for label, path in action:
        h = {**headers, "If-None-Match": held[path]} if held is not None and path in held else headers
        t0 = time.perf_counter()
        try:
            r = await c.get(path, headers=h)
            await r.aread()
        except httpx.HTTPError as e:
            errors.append(f"{label}: {type(e).__name__}")
            continue
        if r.status_code not in (200, 304):
            errors.append(f"{label}: HTTP {r.status_code}")
            continue
        out.setdefault(label, []).append(time.perf_counter() - t0)
        if held is not None and "etag" in r.headers:
            held[path] = r.headers["etag"]
    return len(action)


def _stats(lat_s: list[float], wall: float) -> dict[str, Any]:
    lat = np.asarray(lat_s, dtype=np.float64) * 1000.0
    p50, p95, p99 = np.percentile(lat, [50, 95, 99]) if len(lat) else (0.0, 0.0, 0.0)
    return {"n": len(lat), "p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1),
            "p99_ms": round(float(p99), 1), "rps": round(len(lat) / wall, 1)}  # fmt: skip


async def run_load(
    base: str,
    days: list[str],
    clients: int,
    seconds: float,
    max_requests: int,
    etag: bool = True,
    think: tuple[float, float] = (0.0, 0.0),
    ramp: float = 0.0,
) -> dict[str, Any]:
    """``clients`` users arriving (logging in) evenly over ``ramp`` seconds, then all active for ``seconds``; each
    at most ``max_requests`` requests, pausing ``think`` (s) between actions."""
    out: dict[str, list[float]] = {}
    errors: list[str] = []
    t0 = time.perf_counter()
    stop_at = t0 + ramp + seconds
    await asyncio.gather(
        *(
            _user(base, k, days, stop_at, max_requests, etag, think, ramp * k / clients, out, errors)
            for k in range(clients)
        )
    )
    wall = time.perf_counter() - t0
    logins = out.pop("auth/login", [])
    every = [x for v in out.values() for x in v]
    return {
        "clients": clients,
        "think_s": list(think),
        "ramp_s": ramp,
        "seconds": round(wall, 1),
        "requests": len(every),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "all": _stats(every, wall),
        "login": _stats(logins, wall),
        "endpoints": [{"endpoint": k, **_stats(v, wall)} for k, v in sorted(out.items())],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, help="Serve this workspace (with user bench/bench-password).")
    ap.add_argument("--out", type=Path, default=Path("bench/out/api-load"), help="Where to build the workspace.")
    ap.add_argument("--size", default="demo", help="Scenario size to build (default: demo).")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0, help="How long all users are active (after --ramp).")
    ap.add_argument("--requests", type=int, default=5000, help="Stop a user after this many requests.")
    ap.add_argument("--think", default="1,3", help="Pause between a user's actions: MIN,MAX seconds (0: closed loop).")
    ap.add_argument(
        "--ramp",
        type=float,
        default=30.0,
        help="Users arrive (log in) evenly over this many seconds, before --seconds.",
    )
    ap.add_argument("--no-etag", dest="etag", action="store_false", help="Never revalidate with If-None-Match.")
    ap.add_argument("--json", action="store_true", help="Print the result as JSON.")
    args = ap.parse_args()

    if args.workspace is None:
        t0 = time.perf_counter()
        if (args.out / "ws" / "atalaya.toml").exists():
            ws_root = args.out / "ws"
        else:
            args.out.mkdir(parents=True, exist_ok=True)
            ws_root = build(args.out, args.size)
        print(f"workspace {ws_root} ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    else:
        ws_root = args.workspace
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    exe = Path(sys.executable).with_name("atalaya")
    cmd = [str(exe), "-w", str(ws_root), "serve", "--port", str(port)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        token = ""
        while time.monotonic() < deadline:
            try:
                r = httpx.post(base + "/api/auth/login", json={"username": "bench", "password": "bench-password"})
                if r.status_code == 200:
                    token = r.json()["token"]
                    break
                raise SystemExit(f"login failed: HTTP {r.status_code} {r.text}")
            except httpx.TransportError:
                if server.poll() is not None:
                    err = server.stderr.read().decode() if server.stderr else ""
                    raise SystemExit(f"server exited: {err}") from None
                time.sleep(0.2)
        if not token:
            raise SystemExit("the server did not come up within 60 s")
        h = {"Authorization": f"Bearer {token}"}
        days = httpx.get(base + "/api/map/days", headers=h).json()["days"]
        t0 = time.perf_counter()
        asyncio.run(run_load(base, days, 1, 120.0, 40))  # warm-up: one user's page load and a few rounds
        print(f"warm-up (one user, 40 requests) {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        lo, _, hi = args.think.partition(",")
        think = (float(lo), float(hi or lo))
        res = asyncio.run(run_load(base, days, args.clients, args.seconds, args.requests, args.etag, think, args.ramp))
        res["command"] = " ".join([Path(sys.executable).name, *sys.argv])
        if args.json:
            print(json.dumps(res, indent=1))
        else:
            a = res["all"]
            print(
                f"{res['clients']} users (think {args.think} s), {res['seconds']} s: {res['requests']} requests, "
                f"{a['rps']} req/s, "
                f"p50 {a['p50_ms']} ms, p95 {a['p95_ms']} ms, p99 {a['p99_ms']} ms, errors {res['errors']} "
                f"{res['error_samples']}"
            )
            print(f"{'endpoint':<32} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>7}")
            for r in [{"endpoint": "auth/login (once per user)", **res["login"]}, *res["endpoints"]]:
                cells = f"{r['n']:>6} {r['p50_ms']:>8} {r['p95_ms']:>8} {r['p99_ms']:>8} {r['rps']:>7}"
                print(f"{r['endpoint']:<32} {cells}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
