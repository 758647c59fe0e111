"""Recovery touches only what dead writers left; a file committed twice is repaired; workspace files are private.

The stateful test drives ingest, status, recovery and a writer killed at each point of the commit protocol in any
order, and checks after each step that readers see whole units only and that recovery restores one row per
record and one knowledge-store unit per file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from atalaya.core.workspace import Workspace, init_workspace
from atalaya.ingest import pipeline
from atalaya.ingest.pipeline import ingest_paths, reconcile
from atalaya.store import lake as lake_mod
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.lake import Lake, LakeWriter
from atalaya.store.status import workspace_status

T0 = 1_772_409_600


def _csv(path: Path, k: int, rows: int) -> Path:
    lines = ["time,lon,lat,sensor,kind,confidence"]
    lines += [f"{T0 + k * 86_400 + i * 7},{-105 + i * 1e-4:.6f},{25 + k:.6f},EO,vehicle,0.5" for i in range(rows)]
    lines += ["not-a-time,1,2,EO,vehicle,0.5"]  # one record to the quarantine
    path.write_text("\n".join(lines) + "\n")
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _rows(lake: Lake) -> int:
    return int(lake.query("SELECT count(*) AS n FROM observations").column("n")[0].as_py())


def _units(ws: Workspace) -> int:
    store = KnowledgeStore.open(ws.db_url)
    try:
        return store.count(ks.ingest_units)
    finally:
        store.close()


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name != lake_mod.LOCK_NAME)


def _ws(tmp: Path) -> Workspace:
    ws = init_workspace(tmp / "ws", party="USA")
    KnowledgeStore.open(ws.db_url).close()
    return ws


# -- recovery leaves live writers alone ---------------------------------------------------------------


def test_recovery_removes_a_dead_writers_staging_and_keeps_a_live_ones(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    files = [_csv(tmp_path / f"f{k}.csv", k, 200) for k in range(2)]
    ingest_paths(ws, files[:1])
    lake = Lake(ws.lake_dir)
    live = lake.writer("aa" * 16)
    dead = lake.writer("bb" * 16)
    (dead.staging / "x.parquet").write_bytes(b"half a file")
    owner = json.loads(dead.owner_file.read_text())
    dead.owner_file.write_text(json.dumps(dict(owner, pid=_dead_pid())))
    other = lake.writer("cc" * 16)  # another live process's staging (this test's parent: alive, not us)
    other.owner_file.write_text(json.dumps(dict(owner, pid=os.getppid(), start=lake_mod._proc_start(os.getppid()))))
    before = _rows(lake)

    report = lake.recover(ws.quarantine_dir)
    assert report.staging_removed == 1 and report.staging_kept == 2
    assert live.staging.is_dir() and other.staging.is_dir() and not dead.staging.exists()
    assert not dead.owner_file.exists()
    assert _rows(lake) == before == 200
    live.abort()
    other.abort()
    assert not any(lake.staging_dir.iterdir())


def test_readers_delete_nothing(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    ingest_paths(ws, [_csv(tmp_path / "f.csv", 0, 100)])
    lake = Lake(ws.lake_dir)
    w = lake.writer("dd" * 16)  # a unit half written...
    w.staging.mkdir(parents=True, exist_ok=True)
    (w.staging / "x.parquet").write_bytes(b"...")
    orphan = lake.obs_dir / "day=2026-03-02" / "source=csv" / f"part-{'ee' * 16}-0.parquet"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"...")  # ...and one being published
    before = _tree(ws.root)
    with lake.write_lock(purpose="a writer publishing a unit"):  # held here, as by a writer in mid-commit
        done = subprocess.run(
            [sys.executable, "-m", "atalaya.cli.main", "-w", str(ws.root), "status", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["observations"] == 100
    assert _tree(ws.root) == before  # `atalaya status` removed neither the staging nor the file being published
    store = KnowledgeStore.open(ws.db_url)
    try:
        assert workspace_status(ws, store)["observations"] == 100
    finally:
        store.close()
    assert _tree(ws.root) == before
    w.abort()


# -- a file committed twice (before the lock) is repaired, keeping the first commit ---------------------


@pytest.mark.parametrize("known", ["first", "later"])
def test_reconcile_repairs_a_file_committed_twice(tmp_path: Path, known: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "SMALL_FILE_BYTES", 0)  # a unit committed alone, as before batches
    ws = _ws(tmp_path)
    f = _csv(tmp_path / "f.csv", 0, 300)
    ingest_paths(ws, [f])
    lake = Lake(ws.lake_dir)
    ((u1, m1),) = lake.committed_units().items()
    # what two ingests at once left: the same file's rows committed again as a second unit
    u2 = "ff" * 16
    for p in lake.obs_dir.glob(f"day=*/source=*/part-{u1}-*.parquet"):
        shutil.copy(p, p.with_name(p.name.replace(u1, u2)))
    shutil.copy(ws.quarantine_dir / f"{u1}.jsonl", ws.quarantine_dir / f"{u2}.jsonl")
    later = "2099-01-01T00:00:00+00:00" if known == "first" else "2000-01-01T00:00:00+00:00"
    m2 = dict(m1, unit_id=u2, committed_at=later, files=[s.replace(u1, u2) for s in m1["files"]])
    (lake.commits_dir / f"{u2}.json").write_text(json.dumps(m2))
    assert _rows(lake) == 600  # the rows twice
    keep = u1 if known == "first" else u2

    store = KnowledgeStore.open(ws.db_url)
    try:
        assert reconcile(ws, store) == (1 if known == "first" else 2)
        with store.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(ks.ingest_units.select().with_only_columns(ks.ingest_units.c.id))]
            q = [r[0] for r in conn.execute(ks.quarantine.select().with_only_columns(ks.quarantine.c.unit_id))]
        assert ids == [keep] and q == [keep]
        assert reconcile(ws, store) == 0
    finally:
        store.close()
    assert list(lake.committed_units()) == [keep]
    assert _rows(lake) == 300
    assert ingest_paths(ws, [f]).totals().get("files_skipped") == 1


# -- workspace files 0600, folders 0700 ------------------------------------------------------------------


def test_workspace_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        ws = init_workspace(tmp_path / "ws", party="USA")
        ingest_paths(ws, [_csv(tmp_path / "f.csv", 0, 50), _csv(tmp_path / "g.csv", 1, 50)])
    finally:
        os.umask(old)
    assert any(ws.quarantine_dir.iterdir()) and any(ws.lake_dir.rglob("*.parquet"))
    assert (ws.root / "knowledge.sqlite").exists()
    loose = []
    for p in [ws.root, *ws.root.rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        if mode & 0o077 or (p.is_dir() and mode != 0o700):
            loose.append(f"{p.relative_to(ws.root)}: {mode:o}")
    assert loose == []


# -- any interleaving of ingest, status, recovery and a writer killed at a point ------------------------


class _Killed(BaseException):
    """Stands in for SIGKILL: raised at a point of the commit protocol, no clean-up runs."""


POINTS = ("writing", "published", "marked")


class IngestMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="atalaya-sm-"))
        self.ws = _ws(self.tmp)
        self.files = [_csv(self.tmp / f"f{k}.csv", k, 40 + 10 * k) for k in range(3)]
        self.files.append(self.tmp / "copy-of-f0.csv")  # the same bytes again: already ingested
        shutil.copy(self.files[0], self.files[3])
        self.rows = {0: 40, 1: 50, 2: 60, 3: 40}
        self.in_lake: set[int] = set()  # contents (file 3 is file 0) committed in the lake
        self.lake = Lake(self.ws.lake_dir)

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _expected_rows(self) -> int:
        return sum(self.rows[k] for k in self.in_lake)

    @rule(k=st.integers(0, 3))
    def ingest(self, k: int) -> None:
        s = ingest_paths(self.ws, [self.files[k]], wait=0)
        t = s.totals()
        content = 0 if k == 3 else k
        assert t.get("files_failed", 0) == 0
        assert t.get("files_skipped", 0) == (1 if content in self.in_lake else 0)
        self.in_lake.add(content)
        self._assert_recovered()

    @rule()
    def status(self) -> None:
        before = _tree(self.ws.root)
        store = KnowledgeStore.open(self.ws.db_url)
        try:
            assert workspace_status(self.ws, store)["observations"] == self._expected_rows()
        finally:
            store.close()
        assert _tree(self.ws.root) == before  # a reader changes nothing

    @rule()
    def recover(self) -> None:
        store = KnowledgeStore.open(self.ws.db_url)
        try:
            pipeline.Ingestor(workspace=self.ws, store=store, marking=_marking(self.ws)).prepare()
        finally:
            store.close()
        self._assert_recovered()

    @precondition(lambda self: len(self.in_lake) < 3)
    @rule(k=st.integers(0, 2), point=st.sampled_from(POINTS))
    def kill(self, k: int, point: str) -> None:
        if k in self.in_lake:
            return
        with _kill_at(point), contextlib.suppress(_Killed):
            ingest_paths(self.ws, [self.files[k]], wait=0)
        _forget_writers()
        # killed in its commit ("marked": after the marker) or in the recovery it starts with: what is committed
        # stays, once; the knowledge-store row comes with the next recovery
        paths = [m["path"] for m in self.lake.committed_units().values()]
        assert len(paths) == len(set(paths))
        self.in_lake = {0 if k == 3 else k for k in (self.files.index(Path(p)) for p in paths)}  # file 3 is file 0

    @invariant()
    def readers_see_whole_units(self) -> None:
        assert _rows(self.lake) == self._expected_rows()

    def _assert_recovered(self) -> None:
        assert _units(self.ws) == len(self.in_lake)
        assert not any(self.lake.staging_dir.iterdir()) if self.lake.staging_dir.exists() else True
        committed = set(self.lake.committed_units())
        commits = set(self.lake.markers())  # a batch of small files commits under one id
        for p in self.lake.obs_dir.glob("day=*/source=*/*.parquet"):
            assert p.name.split("-")[1] in commits
        assert {p.stem for p in self.ws.quarantine_dir.glob("*.jsonl")} == committed


def _marking(ws: Workspace) -> Any:
    from atalaya.core.markings import Marking

    return Marking.from_text(f"TLP:AMBER;ORIG:{ws.party}")


def _raise(*_: object, **__: object) -> None:
    raise _Killed


def _skip(*_: object, **__: object) -> None:
    pass


@contextlib.contextmanager
def _kill_at(point: str) -> Iterator[None]:
    """Stop the ingest at ``point`` and skip every clean-up a killed process would not run."""
    target = {
        "writing": mock.patch.object(LakeWriter, "close_files", _raise),
        "published": mock.patch.object(LakeWriter, "_mark", _raise),
        "marked": mock.patch.object(pipeline, "record_unit", _raise),
    }[point]
    with target, mock.patch.object(LakeWriter, "abort", _skip):
        yield


def _forget_writers() -> None:
    """The killed writers' process is gone: its staging now belongs to a dead PID."""
    dead = _dead_pid()
    for unit, w in list(lake_mod._ACTIVE_WRITERS.items()):
        w._join()
        if w.owner_file.exists():
            info = json.loads(w.owner_file.read_text())
            w.owner_file.write_text(json.dumps(dict(info, pid=dead)))
        lake_mod._ACTIVE_WRITERS.pop(unit, None)


IngestMachine.TestCase.settings = settings(
    max_examples=8, stateful_step_count=8, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_ingest_status_recovery_and_kills = IngestMachine.TestCase
