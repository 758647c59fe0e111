"""TAXII 2.1 pages of 1,000 objects from a collection of 1,000,000, against medallion in the same run.

Builds a USA workspace (SQLite by default, PostgreSQL with ``--db``) whose "sites for MEX" collection holds
``--objects`` STIX 2.1 location objects, serves it with ``atalaya serve`` in its own process and times pages of
``--page`` objects over HTTP on loopback (one keep-alive connection, like a TAXII client):

* ``partner``: a MEX liaison (Basic with an API token) — every page goes through the egress chokepoint and is
  recorded as a dissemination in the transparency log;
* ``own``: the node's analyst (no egress, no log);

each as a walk with ``next`` from the start and as pages at random depths (``added_after`` anywhere in the
collection: a page must cost the same at the end of the collection as at its start).

The peer is medallion, the OASIS reference TAXII 2.1 server, with its memory backend loaded with the same
objects, at growing sizes (``--peer-sizes``) until a page takes longer than ``--peer-limit`` seconds or the
load fails. Prints p50/p95 per case and the ratio at each size both ran.

    .venv/bin/python bench/bench_taxii.py --objects 1000000
    .venv/bin/python bench/bench_taxii.py --objects 1000000 --db postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import requests

TAXII = "application/taxii+json;version=2.1"
STIX = "application/stix+json;version=2.1"
AGREEMENT_SHARING = [{"from": "USA", "to": "MEX", "max_tlp": "AMBER", "caveats": ["NO-ACTION-WITHOUT-HOST-CONSENT"],
                      "products": ["sites"]}]  # fmt: skip
REL = "TLP:AMBER;REL:MEX,USA;CAV:NO-ACTION-WITHOUT-HOST-CONSENT;ORIG:USA"
TLP_AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"  # TLP 2.0 AMBER (OASIS)


def objects(n: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """``n`` STIX 2.1 location objects (about 450 bytes each as JSON)."""
    rng = np.random.default_rng(seed)
    lat = rng.uniform(14.5, 32.7, n)
    lon = rng.uniform(-118.0, -86.7, n)
    for i in range(n):
        day = 1 + i % 28
        yield {
            "type": "location",
            "spec_version": "2.1",
            "id": f"location--{uuid.UUID(int=(seed << 64) + i)}",
            "created": f"2026-03-{day:02d}T00:00:00.000Z",
            "modified": f"2026-03-{day:02d}T06:00:00.000Z",
            "name": f"suspected site {i}",
            "latitude": round(float(lat[i]), 5),
            "longitude": round(float(lon[i]), 5),
            "precision": 250.0,
            "object_marking_refs": [TLP_AMBER],
        }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before answering {url}")
        try:
            requests.get(url, timeout=10)
            return
        except requests.RequestException:  # not listening yet, or busy starting
            time.sleep(0.2)
    raise RuntimeError(f"no answer from {url} in {timeout:.0f} s")


@contextmanager
def running(cmd: list[str], url: str, timeout: float = 120.0) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait(url, proc, timeout)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def fmt_ms(xs: list[float]) -> str:
    return f"p50 {pct(xs, 50) * 1e3:7.1f} ms  p95 {pct(xs, 95) * 1e3:7.1f} ms  (n={len(xs)})"


def get(s: requests.Session, url: str, params: dict[str, Any], timeout: float) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    r = s.get(url, params=params, timeout=timeout)
    body = r.json()
    dt = time.perf_counter() - t0
    if r.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {r.status_code}: {body}")
    return dt, body


def walk(s: requests.Session, url: str, page: int, pages: int, timeout: float) -> list[float]:
    """Times of ``pages`` consecutive pages following ``next``."""
    out: list[float] = []
    params: dict[str, Any] = {"limit": page}
    for _ in range(pages):
        dt, body = get(s, url, params, timeout)
        out.append(dt)
        if not body.get("more"):
            break
        if len(body.get("objects", [])) != page:
            raise RuntimeError(f"a page held {len(body.get('objects', []))} objects, not {page}")
        params = {"limit": page, "next": body["next"]}
    return out


def random_depths(
    s: requests.Session, url: str, page: int, stamps: list[str], n: int, timeout: float, seed: int = 7
) -> list[float]:
    """Times of ``n`` pages starting after random dates_added across the collection."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        dt, _ = get(s, url, {"limit": page, "added_after": rng.choice(stamps)}, timeout)
        out.append(dt)
    return out


# --------------------------------------------------------------------------- atalaya


def build_atalaya(root: Path, n: int, db_url: str) -> dict[str, Any]:
    from atalaya.api.users import add_user, issue_token
    from atalaya.core.workspace import init_workspace
    from atalaya.share import taxii_store as ts
    from atalaya.sovereignty.agreements import example_document, parse_agreement, store_agreements
    from atalaya.store.knowledge import KnowledgeStore

    ws = init_workspace(root / "ws", party="USA", name="bench", db_url=db_url)
    store = KnowledgeStore.open(ws.db_url)
    try:
        effective = {"from": "2026-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"}
        doc = {**example_document(), "id": "usa-mex-bench", "effective": effective, "sharing": AGREEMENT_SHARING}
        store_agreements(store, [parse_agreement(doc)])
        tokens = {
            "lia": issue_token(store, add_user(store, "lia", "liaison-pass-1", party="MEX", role="liaison")),
            "ana": issue_token(store, add_user(store, "ana", "analyst-pass-1", party="USA", role="analyst")),
        }
        c = ts.ensure_collection(store, party="MEX", kind="sites", marking=REL)
        t0 = time.perf_counter()
        batch: list[dict[str, Any]] = []
        for o in objects(n):
            batch.append(o)
            if len(batch) == 50_000:
                ts.publish(store, c, batch, kind="sites", marking=REL, about=["MEX"])
                batch = []
        if batch:
            ts.publish(store, c, batch, kind="sites", marking=REL, about=["MEX"])
        load_s = time.perf_counter() - t0
        # date_added of objects at random depths of the collection, for added_after (set-up only: OFFSET is O(n))
        from sqlalchemy import select

        from atalaya.store.knowledge import schema as ks

        t = ks.stix_objects.c
        rng = random.Random(5)
        stamps = []
        with store.engine.connect() as conn:
            for k in sorted(rng.randrange(max(1, n - 1000)) for _ in range(60)):
                q = select(t.added_us).where(t.collection_id == c.id).order_by(t.added_us).offset(k).limit(1)
                stamps.append(ts.format_timestamp(int(conn.execute(q).scalar_one())))
        assert ts.count(store, c.id) == n
    finally:
        store.close()
    return {"ws": ws, "tokens": tokens, "collection": c.id, "load_s": load_s, "stamps": stamps}


def bench_atalaya(
    root: Path, n: int, db_url: str, *, page: int, pages: int, who: tuple[str, ...] = ("partner", "own")
) -> dict[str, dict[str, list[float]]]:
    """Page times of a served collection of ``n`` objects, per user (``partner`` through the egress, ``own``)."""
    built = build_atalaya(root / f"atalaya-{n}", n, db_url)
    backend = "PostgreSQL" if db_url.startswith("postgres") else "SQLite"
    print(f"  atalaya {n:>9,} objects published in {built['load_s']:.1f} s ({n / built['load_s']:,.0f}/s, {backend})")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "atalaya.cli.main", "-q", "-w", str(built["ws"].root), "serve", "--port", str(port)]
    if db_url:
        cmd[4:4] = ["--db", db_url]
    out: dict[str, dict[str, list[float]]] = {}
    with running(cmd, f"{base}/taxii2/"):
        url = f"{base}/taxii2/atalaya/collections/{built['collection']}/objects/"
        for w in who:
            s = requests.Session()
            s.headers["Accept"] = TAXII
            if w == "partner":
                s.auth = ("lia", built["tokens"]["lia"])  # Basic with an API token, as taxii2-client sends it
            else:
                s.headers["Authorization"] = f"Bearer {built['tokens']['ana']}"
            get(s, url, {"limit": 1}, 60)  # warm the connection and the caches
            out[w] = {
                "walk": walk(s, url, page, pages, 60),
                "random": random_depths(s, url, page, built["stamps"], pages, 60),
            }
            print(f"  atalaya {n:>9,} objects, {w:8s} page {page}: next walk {fmt_ms(out[w]['walk'])}; "
                  f"random depth {fmt_ms(out[w]['random'])}")  # fmt: skip
    return out


# --------------------------------------------------------------------------- medallion


def medallion_data(n: int, path: Path) -> tuple[str, list[str]]:
    """The memory backend's data file with the same objects; the collection id and some dates_added."""
    cid = str(uuid.uuid4())
    objs = list(objects(n))
    base = 1_770_000_000.0
    added = [time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + i // 1_000_000)) + f".{i % 1_000_000:06d}Z"
             for i in range(n)]  # fmt: skip
    manifest = [{"id": o["id"], "date_added": a, "version": o["modified"], "media_type": STIX}
                for o, a in zip(objs, added, strict=True)]  # fmt: skip
    for o, a in zip(objs, added, strict=True):
        o["_date_added"] = a
    data = {
        "/discovery": {"title": "bench", "default": "http://127.0.0.1/api1/", "api_roots": ["http://127.0.0.1/api1/"]},
        "api1": {
            "information": {"title": "bench", "versions": [TAXII], "max_content_length": 10_000_000},
            "status": [],
            "collections": [{"id": cid, "title": "sites for MEX", "can_read": True, "can_write": False,
                             "media_types": [STIX], "objects": objs, "manifest": manifest}],
        },
    }  # fmt: skip
    path.write_text(json.dumps(data))
    rng = random.Random(3)
    return cid, [added[rng.randrange(n)] for _ in range(200)]


def bench_medallion(root: Path, n: int, *, page: int, pages: int, limit_s: float) -> dict[str, list[float]] | None:
    """Page times of medallion's memory backend holding ``n`` objects (None: it did not answer in time)."""
    data = root / f"medallion-{n}.json"
    cid, stamps = medallion_data(n, data)
    cfg = root / f"medallion-{n}.conf.json"
    cfg.write_text(json.dumps({
        "backend": {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend",
                    "filename": str(data)},
        "users": {"bench": "bench-pass"}, "taxii": {"max_page_size": page},
    }))  # fmt: skip
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "medallion.scripts.run", "--port", str(port), str(cfg)]
    try:
        with running(cmd, f"{base}/taxii2/", timeout=max(120.0, n / 2000)):
            s = requests.Session()
            s.headers["Accept"] = TAXII
            s.auth = ("bench", "bench-pass")
            url = f"{base}/api1/collections/{cid}/objects/"
            out = {
                "walk": walk(s, url, page, pages, limit_s),
                "random": random_depths(s, url, page, stamps, pages, limit_s),
            }
    except (RuntimeError, requests.RequestException) as e:
        print(f"  medallion {n:>9,} objects: no page within {limit_s:.0f} s ({e.__class__.__name__})")
        return None
    finally:
        data.unlink(missing_ok=True)
    walked, rand = fmt_ms(out["walk"]), fmt_ms(out["random"])
    print(f"  medallion {n:>9,} objects, page {page}: next walk {walked}; random depth {rand}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=1_000_000, help="objects in the collection")
    ap.add_argument("--page", type=int, default=1000, help="objects per page")
    ap.add_argument("--pages", type=int, default=40, help="pages timed per case")
    ap.add_argument("--db", default=os.environ.get("ATALAYA_BENCH_DB", ""),
                    help="knowledge store URL (default: the workspace's SQLite file); a PostgreSQL server URL gets "
                         "a fresh database")  # fmt: skip
    ap.add_argument("--peer-sizes", type=lambda t: [int(x) for x in t.split(",")],
                    default=[250, 500, 1000, 2000, 10_000, 1_000_000])  # fmt: skip
    ap.add_argument("--peer-limit", type=float, default=30.0, help="stop growing the peer past this page time (s)")
    ap.add_argument("--no-peer", action="store_true")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores; page {args.page}; {args.objects:,} objects")
    with tempfile.TemporaryDirectory(prefix="bench-taxii-") as tmp:
        root = Path(tmp)
        db_url, drop = args.db, None
        if db_url.startswith("postgres"):
            from sqlalchemy import create_engine, text

            from atalaya.store.knowledge.store import normalise_url

            name = f"atalaya_bench_{uuid.uuid4().hex[:10]}"
            eng = create_engine(normalise_url(db_url), isolation_level="AUTOCOMMIT")
            with eng.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            db_url = f"{db_url.rsplit('/', 1)[0]}/{name}"

            def drop() -> None:
                with eng.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

        try:
            big = bench_atalaya(root, args.objects, db_url, page=args.page, pages=args.pages)
            p95 = pct(big["partner"]["walk"] + big["partner"]["random"], 95)
            print(
                f"atalaya partner p95 over all pages: {p95 * 1e3:.1f} ms (target < 200 ms) at {args.objects:,} objects"
            )
            if args.no_peer:
                return
            # medallion's memory backend slows faster than linearly with the collection: grow it until a page takes
            # longer than --peer-limit; at each size atalaya serves the same objects in the same run
            for n in args.peer_sizes:
                page = min(args.page, max(1, n // 4))
                theirs = bench_medallion(root, n, page=page, pages=3, limit_s=args.peer_limit)
                if theirs is None:
                    break
                ours = bench_atalaya(root, n, "", page=page, pages=3, who=("partner",))  # SQLite beside it
                a = pct(ours["partner"]["walk"] + ours["partner"]["random"], 95)
                m = pct(theirs["walk"] + theirs["random"], 95)
                print(f"  {n:,} objects, page {page}: medallion p95 {m * 1e3:.1f} ms, atalaya (partner, through the "
                      f"egress, logged) p95 {a * 1e3:.1f} ms: ratio {m / a:.1f}x")  # fmt: skip
                if m > args.peer_limit:
                    break
        finally:
            if drop is not None:
                drop()


if __name__ == "__main__":
    main()
