"""Nothing lost under concurrency: real processes side by side on one workspace.

``status`` in a loop during an ingest, two identical ingests at once, an API ingest job next to a CLI ingest:
afterwards the lake and the knowledge store hold exactly what one ingest alone leaves, and nothing failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from atalaya.core.errors import BusyError
from atalaya.core.workspace import Workspace, init_workspace
from atalaya.ingest.pipeline import ingest_paths
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.lake import Lake

pytestmark = pytest.mark.xdist_group("concurrency")  # real processes: kept off the other worker's CPU

N_FILES = 6
ROWS = 10_000


def _write_files(d: Path, n_files: int = N_FILES, rows: int = ROWS) -> list[Path]:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    out = []
    for k in range(n_files):
        p = d / f"det-{k}.csv"
        t0 = 1_772_409_600 + k * 86_400
        ts = t0 + np.sort(rng.integers(0, 86_000, rows))
        lon = rng.uniform(-110, -100, rows)
        lat = rng.uniform(20, 30, rows)
        with open(p, "w") as fh:
            fh.write("time,lon,lat,sensor,kind,confidence\n")
            fh.writelines(f"{int(t)},{x:.6f},{y:.6f},EO,vehicle,0.5\n" for t, x, y in zip(ts, lon, lat, strict=True))
        out.append(p)
    return out


def _workspace(tmp_path: Path) -> Workspace:
    """A workspace as ``atalaya init`` leaves it (knowledge store created)."""
    ws = init_workspace(tmp_path / "ws", party="USA")
    KnowledgeStore.open(ws.db_url).close()
    return ws


def _cli(ws: Workspace, *args: str) -> list[str]:
    return [sys.executable, "-m", "atalaya.cli.main", "-q", "-w", str(ws.root), *args]


def _spawn(ws: Workspace, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(_cli(ws, *args), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_cli(ws, *args), env=_env(), capture_output=True, text=True, timeout=120)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ATALAYA_LOCK_WAIT", None)
    return env


def _lake_rows(ws: Workspace) -> int:
    return int(Lake(ws.lake_dir).query("SELECT count(*) AS n FROM observations").column("n")[0].as_py())


def _units(ws: Workspace) -> int:
    store = KnowledgeStore.open(ws.db_url)
    try:
        return store.count(ks.ingest_units)
    finally:
        store.close()


def _assert_whole(ws: Workspace, n_files: int = N_FILES, rows: int = ROWS) -> None:
    """What one ingest alone leaves: every row once, one unit (marker and row) per file, no leftovers."""
    assert _lake_rows(ws) == n_files * rows
    assert len(Lake(ws.lake_dir).committed_units()) == n_files
    assert _units(ws) == n_files
    staging = ws.lake_dir / "_staging"
    assert not staging.exists() or not any(staging.iterdir())
    again = ingest_paths(ws, [ws.root.parent / "in"], wait=0)  # nothing left to do
    assert again.totals().get("files_skipped") == n_files
    assert _lake_rows(ws) == n_files * rows


def test_status_in_a_loop_during_an_ingest_loses_nothing(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    files = _write_files(tmp_path / "in")
    ingest = _spawn(ws, "ingest", *map(str, files))
    statuses: list[subprocess.CompletedProcess[str]] = []
    running = [_spawn(ws, "status")]
    while running:  # two at a time, staggered, until the ingest is done
        if ingest.poll() is None and len(running) < 2:
            running.append(_spawn(ws, "status"))
        for p in [p for p in running if p.poll() is not None]:
            out, err = p.communicate()
            statuses.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
            running.remove(p)
        time.sleep(0.05)
    _, err = ingest.communicate(timeout=120)
    assert ingest.returncode == 0, err
    assert statuses and all(s.returncode == 0 for s in statuses), [s.stderr for s in statuses if s.returncode]
    _assert_whole(ws)


def test_two_identical_ingests_at_once_commit_each_file_once(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    files = _write_files(tmp_path / "in")
    procs = [_spawn(ws, "ingest", "--wait", "120", *map(str, files)) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    # one of them ingested every file, the other found them done
    ingested = sorted(out.split("\n", 1)[0] for out, _ in outs)
    assert ingested == [
        f"files: {N_FILES} (ingested 0, already ingested {N_FILES}, failed 0)",
        f"files: {N_FILES} (ingested {N_FILES}, already ingested 0, failed 0)",
    ]
    _assert_whole(ws)


def test_a_second_writer_is_told_who_holds_the_lake(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    files = _write_files(tmp_path / "in", 1, 100)
    with Lake(ws.lake_dir).write_lock(purpose="test"):
        t0 = time.monotonic()
        busy = _run(ws, "ingest", "--wait", "0.5", str(files[0]))
        assert time.monotonic() - t0 >= 0.5
        assert busy.returncode == 2
        assert f"busy: the lake is being written by PID {os.getpid()}" in busy.stderr
        assert "since 20" in busy.stderr and "--wait" in busy.stderr
        # readers are not held up and change nothing
        status = _run(ws, "status")
        assert status.returncode == 0, status.stderr
    assert ingest_paths(ws, files).totals().get("files_ingested") == 1  # free again
    assert _lake_rows(ws) == 100


def test_the_lock_is_taken_by_other_threads_of_one_process_too(tmp_path: Path) -> None:
    import threading

    lake = Lake(tmp_path / "lake")
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with lake.write_lock():
                pass
        except BusyError as e:
            errors.append(e)

    with lake.write_lock(), lake.write_lock():  # re-entrant in the thread that holds it
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert len(errors) == 1 and "being written by PID" in str(errors[0])
    with lake.write_lock():  # free again
        assert lake.holds_write_lock()
    assert not lake.holds_write_lock()


def test_api_ingest_job_beside_a_cli_ingest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from atalaya.api.deps import AppState
    from atalaya.api.routes_layers import JobRequest, start_job

    ws = _workspace(tmp_path)
    files = _write_files(tmp_path / "in")
    monkeypatch.setenv("ATALAYA_LOCK_WAIT", "120")
    store = KnowledgeStore.open(ws.db_url)
    try:
        state = AppState(workspace=ws, store=store)
        cli = _spawn(ws, "ingest", "--wait", "120", *map(str, files))
        job = start_job(state, JobRequest(kind="ingest", path=str(tmp_path / "in")), "test", wait=True)
        out, err = cli.communicate(timeout=180)
    finally:
        store.close()
    assert job["status"] == "done", job.get("error")
    assert cli.returncode == 0, err
    ingested = job["result"]["files"] - job["result"]["skipped"]
    assert ingested + int(out.split("(ingested ", 1)[1].split(",", 1)[0]) == N_FILES
    _assert_whole(ws)
