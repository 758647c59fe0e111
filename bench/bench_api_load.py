"""Load test of the HTTP API on loopback: N concurrent clients (httpx async) for a fixed time.

Builds a demo-scale workspace (scenario ``demo``: generate, ingest, records, agreements, sites, tracks when
installed) unless ``--workspace`` names one, serves it with ``atalaya serve`` in its own process, logs in an
analyst, warms the caches, then runs closed-loop clients that cycle through the read endpoints the web
workspace uses. Reports p50/p95/p99 latency and throughput per endpoint (target: p95 < 100 ms).

    .venv/bin/python bench/bench_api_load.py --clients 50 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ENDPOINTS = [
    "/api/auth/me",
    "/api/sites?limit=50",
    "/api/map/sites",
    "/api/map/detections",
    "/api/map/detections?day={day}",
    "/api/map/sorties",
    "/api/map/tracks?limit=2000",
    "/api/sorties?limit=50",
    "/api/log/checkpoint",
    "/api/log/entries?limit=50",
    "/api/map/territories?level=state",
    "/api/map/days",
]


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


async def _client(
    c: httpx.AsyncClient, paths: list[str], start: int, stop_at: float, out: dict[str, list[float]], errors: list[str]
) -> None:
    i = start
    while time.perf_counter() < stop_at:
        path = paths[i % len(paths)]
        i += 1
        t0 = time.perf_counter()
        try:
            r = await c.get(path)
            await r.aread()
            if r.status_code != 200:
                errors.append(f"{path}: HTTP {r.status_code}")
                continue
        except httpx.HTTPError as e:
            errors.append(f"{path}: {type(e).__name__}")
            continue
        out.setdefault(path, []).append(time.perf_counter() - t0)


async def run_load(base: str, token: str, paths: list[str], clients: int, seconds: float) -> dict[str, Any]:
    """Closed-loop load: ``clients`` tasks, each cycling through ``paths`` from a different offset."""
    out: dict[str, list[float]] = {}
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30.0) as c:
        t0 = time.perf_counter()
        stop_at = t0 + seconds
        await asyncio.gather(*(_client(c, paths, k, stop_at, out, errors) for k in range(clients)))
        wall = time.perf_counter() - t0
    rows = []
    for path in paths:
        lat = np.asarray(out.get(path, []), dtype=np.float64) * 1000.0
        if not len(lat):
            continue
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        rows.append({"endpoint": path, "n": len(lat), "p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1),
                     "p99_ms": round(float(p99), 1), "rps": round(len(lat) / wall, 1)})  # fmt: skip
    all_lat = np.concatenate([np.asarray(v) for v in out.values()]) * 1000.0 if out else np.zeros(1)
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "requests": int(sum(len(v) for v in out.values())),
        "rps": round(sum(len(v) for v in out.values()) / wall, 1),
        "p50_ms": round(float(np.percentile(all_lat, 50)), 1),
        "p95_ms": round(float(np.percentile(all_lat, 95)), 1),
        "p99_ms": round(float(np.percentile(all_lat, 99)), 1),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "endpoints": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, help="Serve this workspace (with user bench/bench-password).")
    ap.add_argument("--out", type=Path, default=Path("bench/out/api-load"), help="Where to build the workspace.")
    ap.add_argument("--size", default="demo", help="Scenario size to build (default: demo).")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--json", action="store_true", help="Print the result as JSON.")
    ap.add_argument("--skip", action="append", default=[], help="Leave out endpoints containing this text.")
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
        paths = [p.format(day=days[0] if days else "2026-03-02") for p in ENDPOINTS]
        paths = [p for p in paths if not any(k in p for k in args.skip)]
        for p in paths:  # warm-up: territories, caches
            httpx.get(base + p, headers=h, timeout=120)
        res = asyncio.run(run_load(base, token, paths, args.clients, args.seconds))
        res["command"] = " ".join([Path(sys.executable).name, *sys.argv])
        if args.json:
            print(json.dumps(res, indent=1))
        else:
            print(
                f"{res['clients']} clients, {res['seconds']} s: {res['requests']} requests, {res['rps']} req/s, "
                f"p50 {res['p50_ms']} ms, p95 {res['p95_ms']} ms, p99 {res['p99_ms']} ms, errors {res['errors']}"
            )
            print(f"{'endpoint':<40} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>7}")
            for r in res["endpoints"]:
                cells = f"{r['n']:>6} {r['p50_ms']:>8} {r['p95_ms']:>8} {r['p99_ms']:>8} {r['rps']:>7}"
                print(f"{r['endpoint']:<40} {cells}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
