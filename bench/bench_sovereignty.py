"""Benchmark: what the sovereignty service adds to ``sovereignty account`` (the log, the sortie records).

    python bench/bench_sovereignty.py --n 10000000 --tracks 2000 --sorties 100

One workspace lake holding ``n`` fixes on ``tracks`` random-walk tracks over Mexico, the border and the Gulf
(``bench_accounting.make_tracks``): ``sorties`` of them reported as sortie tracks (``ident_kind = 'sortie'``,
with manifests in the knowledge store), the rest as ADS-B aircraft (ICAO24). Each part in its own process:

(a) the accounting alone, as ``sovereignty account`` did before the service: the lake query of every identified
    track, then ``account_tracks`` at country level (the peer);
(b) ``service.account`` at country level: the same, plus the sortie tracks at country and state level and their
    sortie-over-territory records appended to the transparency log, indexed, and a signed checkpoint;
(c) ``service.account`` again: everything already logged (the idempotent path).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_accounting import make_tracks  # the same synthetic tracks as the accounting bench


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build(root: Path, n: int, tracks: int, sorties: int) -> Path:
    """A workspace whose lake holds the tracks (sorties first) and whose store holds the sortie manifests."""
    from datetime import UTC, datetime

    import pyarrow as pa

    from atalaya.core.workspace import init_workspace
    from atalaya.model.observation import SCHEMA
    from atalaya.store.knowledge import KnowledgeStore
    from atalaya.store.knowledge import schema as ks
    from atalaya.store.lake import Lake

    ws = init_workspace(root / "ws", party="USA", name="bench")
    d = make_tracks(n, tracks)
    tid = d["track_id"]
    is_sortie = tid < sorties
    ident = np.where(is_sortie, np.char.add("S-", tid.astype(str)), np.char.add("ac", tid.astype(str)))
    per_file = 2_000_000
    lake = Lake(ws.lake_dir)
    for a in range(0, n, per_file):
        b = min(n, a + per_file)
        sl = slice(a, b)
        m = b - a
        table = pa.table(
            {
                "obs_id": pa.array([uuid.uuid4().bytes for _ in range(m)], type=pa.binary(16)),
                "time": pa.array(d["time_us"][sl], type=pa.timestamp("us", tz="UTC")),
                "lon": d["lon"][sl],
                "lat": d["lat"][sl],
                "sensor": pa.array(np.where(is_sortie[sl], "TRACK", "ADSB")).dictionary_encode(),
                "kind": pa.array(["aircraft"] * m).dictionary_encode(),
                "ident": pa.array(ident[sl]).dictionary_encode(),
                "ident_kind": pa.array(np.where(is_sortie[sl], "sortie", "icao24")).dictionary_encode(),
                "marking": pa.array(["TLP:AMBER;ORIG:USA"] * m).dictionary_encode(),
                "format": pa.array(["bench"] * m).dictionary_encode(),
                "src_file": pa.array(["bench"] * m).dictionary_encode(),
                "src_rec": pa.array(np.arange(a, b, dtype=np.int64)),
                "ingest_run": pa.array(["bench"] * m).dictionary_encode(),
            }
        )
        full = pa.table({f.name: (table.column(f.name) if f.name in table.column_names else
                                  pa.nulls(m, type=f.type)) for f in SCHEMA}).cast(SCHEMA)  # fmt: skip
        days = (d["time_us"][sl] // 86_400_000_000).astype(np.int64)
        w = lake.writer(uuid.uuid4().hex)
        w.write(full, days, "bench")
        w.commit({"kind": "bench"})
    store = KnowledgeStore.open(ws.db_url)
    t0 = datetime.fromtimestamp(int(d["time_us"].min()) / 1e6, tz=UTC)
    t1 = datetime.fromtimestamp(int(d["time_us"].max()) / 1e6, tz=UTC)
    with store.begin() as conn:
        conn.execute(
            ks.sorties.insert(),
            [{"id": f"S-{i}", "platform_type": "MQ-9", "party_id": "USA", "takeoff": t0, "landing": t1}
             for i in range(sorties)],
        )  # fmt: skip
    store.close()
    return ws.root


def _warm(terr: Any) -> None:
    """Build the lookup and depth grids once per process, before the clock starts (as bench_accounting does)."""
    from atalaya.geo.territories import depth_upper_bound, label_points

    for level in ("country", "state"):
        label_points(terr, np.zeros(1), np.zeros(1), level)
        depth_upper_bound(terr, np.zeros(1), np.zeros(1), np.zeros(1, dtype=np.int64), level)


def part_peer(root: str, q: Any) -> None:
    from atalaya.core.workspace import Workspace
    from atalaya.geo.territories import load_territories
    from atalaya.sovereignty.accounting import account_tracks
    from atalaya.sovereignty.tracks import identified_tracks
    from atalaya.store.lake import Lake

    ws = Workspace.open(root)
    terr = load_territories()
    _warm(terr)
    base = _rss_mb()
    t0 = time.perf_counter()
    c0 = time.process_time()
    fixes = identified_tracks(Lake(ws.lake_dir))
    acc = account_tracks(
        track_id=np.asarray(fixes.column("track_id").to_pylist(), dtype=object),
        time_us=fixes.column("time_us").to_numpy(), lon=fixes.column("lon").to_numpy(),
        lat=fixes.column("lat").to_numpy(), territories=terr, levels=("country",),
    )  # fmt: skip
    q.put(("accounting alone (lake query + account_tracks)", time.perf_counter() - t0, _rss_mb(), base,
           time.process_time() - c0, f"{acc.summary.num_rows} rows"))  # fmt: skip


def part_service(root: str, label: str, q: Any) -> None:
    from atalaya.core.workspace import Workspace
    from atalaya.geo.territories import load_territories
    from atalaya.sovereignty import service
    from atalaya.store.knowledge import KnowledgeStore

    ws = Workspace.open(root)
    terr = load_territories()
    _warm(terr)
    store = KnowledgeStore.open(ws.db_url)
    base = _rss_mb()
    t0 = time.perf_counter()
    c0 = time.process_time()
    res = service.account(ws, store, level="country", territories=terr)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    store.close()
    q.put((label, dt, _rss_mb(), base, cpu,
           f"{res.accounting.summary.num_rows} rows, {res.sorties} sorties, log {res.log}"))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--tracks", type=int, default=2000)
    ap.add_argument("--sorties", type=int, default=100)
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="atalaya-bench-sov-") as tmp:
        t0 = time.perf_counter()
        root = str(build(Path(tmp), args.n, args.tracks, args.sorties))
        print(f"lake of {args.n:,} fixes ({args.tracks} tracks, {args.sorties} sorties) built in "
              f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
        results = []
        for target, extra in ((part_peer, ()), (part_service, ("service.account, first run (logs)",)),
                              (part_service, ("service.account, again (nothing new)",))):  # fmt: skip
            q = ctx.Queue()
            p = ctx.Process(target=target, args=(root, *extra, q))
            p.start()
            res = q.get()
            p.join()
            results.append(res)
            print(f"{res[0]:<48} {res[1]:7.2f} s wall  {res[4]:7.2f} s cpu   peak RSS {res[2]:7.0f} MB   {res[5]}",
                  flush=True)  # fmt: skip
        peer, peer_cpu = results[0][1], results[0][4]
        for name, dt, _rss, _base, cpu, _ in results[1:]:
            print(f"{name:<48} {100 * (dt - peer) / peer:+6.1f} % wall, {100 * (cpu - peer_cpu) / peer_cpu:+6.1f} % cpu"
                  " against the accounting alone")  # fmt: skip


if __name__ == "__main__":
    main()
