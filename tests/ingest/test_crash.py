"""A process killed midway (SIGKILL, no clean-up) leaves the lake and the knowledge store consistent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from atalaya.core.workspace import Workspace, init_workspace
from atalaya.ingest.pipeline import ingest_paths
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.lake import Lake

N_FILES = 6
ROWS = 60_000


def _write_files(d: Path) -> list[Path]:
    rng = np.random.default_rng(3)
    out = []
    for k in range(N_FILES):
        p = d / f"det-{k}.csv"
        t0 = 1_772_409_600 + k * 86_400
        with open(p, "w") as fh:
            fh.write("time,lon,lat,sensor,kind,confidence\n")
            ts = t0 + np.sort(rng.integers(0, 86_000, ROWS))
            lon = rng.uniform(-110, -100, ROWS)
            lat = rng.uniform(20, 30, ROWS)
            fh.writelines(f"{int(t)},{x:.6f},{y:.6f},EO,vehicle,0.5\n" for t, x, y in zip(ts, lon, lat, strict=True))
        out.append(p)
    return out


def _count(ws: Workspace) -> int:
    return int(Lake(ws.lake_dir).query("SELECT count(*) AS n FROM observations").column("n")[0].as_py())


def test_sigkill_midway_then_rerun(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws", party="USA")
    files = _write_files(tmp_path)
    env = dict(os.environ, ATALAYA_WORKSPACE=str(ws.root))
    proc = subprocess.Popen(
        [sys.executable, "-m", "atalaya.cli.main", "-q", "ingest", *map(str, files)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # wait until at least one unit committed, then kill without warning
    deadline = time.monotonic() + 120
    commits = ws.lake_dir / "_commits"
    while time.monotonic() < deadline and proc.poll() is None:
        if commits.exists() and any(commits.glob("*.json")):
            break
        time.sleep(0.05)
    time.sleep(0.3)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    # whatever happened, what a reader sees is a set of whole files
    n_units = len(Lake(ws.lake_dir).committed_units())
    assert _count(ws) == n_units * ROWS
    # re-running finishes the job exactly once
    s = ingest_paths(ws, files)
    assert s.totals()["files_ingested"] == N_FILES - n_units
    assert s.totals()["files_skipped"] == n_units
    assert _count(ws) == N_FILES * ROWS
    store = KnowledgeStore.open(ws.db_url)
    try:
        assert store.count(ks.ingest_units) == N_FILES
    finally:
        store.close()
    assert not any((ws.lake_dir / "_staging").iterdir())
