"""Shared fixtures: knowledge-store backends (SQLite and the real PostgreSQL server), workspaces."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from atalaya.core.workspace import Workspace, init_workspace
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge.store import normalise_url

PG_ENV = "ATALAYA_TEST_PG"

# CI replays the same property-test examples on every run (a red CI points at a change, not at luck); a developer's
# run explores new ones, and the coverage-guided fuzzers (tests/fuzz) keep exploring in CI.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


def _pg_admin_url() -> str | None:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI"):
            raise RuntimeError(f"{PG_ENV} must be set in CI: the contract suite runs on PostgreSQL too")
        return None
    return url


@pytest.fixture(scope="session")
def pg_server() -> str | None:
    """Admin URL of the PostgreSQL server for tests, or None when unavailable outside CI."""
    return _pg_admin_url()


def _create_pg_database(admin_url: str) -> tuple[str, str]:
    from sqlalchemy import create_engine, text

    name = f"atalaya_t_{uuid.uuid4().hex[:12]}"
    eng = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    base = admin_url.rsplit("/", 1)[0]
    return name, f"{base}/{name}"


def _drop_pg_database(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    eng = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    eng.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, pg_server: str | None) -> Iterator[str]:
    """A fresh, empty database URL on each backend (the contract suite runs on both)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'k.sqlite'}"
        return
    if pg_server is None:
        pytest.skip(f"PostgreSQL not configured (set {PG_ENV}=postgresql://user@host:port/db)")
    name, url = _create_pg_database(pg_server)
    try:
        yield url
    finally:
        _drop_pg_database(pg_server, name)


@pytest.fixture
def store(db_url: str) -> Iterator[KnowledgeStore]:
    s = KnowledgeStore.open(db_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A fresh workspace (SQLite knowledge store) for party USA."""
    return init_workspace(tmp_path / "ws", party="USA", name="Collecting party")


# --------------------------------------------------------------------------- scenario fixtures
# The demo scenario is generated once per test run and shared by all workers (file lock), then
# ingested once into a template workspace; tests that modify a workspace copy the template.

DEMO_SEED = 7


def _shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    # with pytest-xdist each worker has its own basetemp under a common parent
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _once(lock_dir: Path, name: str, build: Callable[[Path], None]) -> Path:
    import fcntl

    target = lock_dir / name
    with open(lock_dir / f"{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if not (target / ".complete").exists():
            if target.exists():
                shutil.rmtree(target)
            build(target)
            (target / ".complete").write_text("ok")
    return target


@pytest.fixture(scope="session")
def demo_scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo scenario (seed 7): OUT/feeds, OUT/records, OUT/truth."""
    from atalaya.scenario.generate import generate

    return _once(_shared_dir(tmp_path_factory), f"demo-scenario-{DEMO_SEED}",
                 lambda p: generate(p, size="demo", seed=DEMO_SEED))  # fmt: skip


@pytest.fixture(scope="session")
def demo_workspace_template(tmp_path_factory: pytest.TempPathFactory, demo_scenario: Path) -> Path:
    """A workspace with the demo scenario ingested and its records imported (read-only: copy before changing)."""

    def build(p: Path) -> None:
        from atalaya.core.markings import Marking
        from atalaya.ingest.pipeline import ingest_paths
        from atalaya.ingest.records import load_records

        ws = init_workspace(p, party="USA", name="Collecting party")
        ingest_paths(ws, [demo_scenario / "feeds"])
        store = KnowledgeStore.open(ws.db_url)
        try:
            load_records(store, demo_scenario / "records", marking=Marking.from_text("TLP:AMBER;ORIG:USA"))
        finally:
            store.close()

    return _once(_shared_dir(tmp_path_factory), f"demo-ws-{DEMO_SEED}", build)


@pytest.fixture
def demo_workspace(demo_workspace_template: Path, tmp_path: Path) -> Workspace:
    """A private, writable copy of the ingested demo workspace."""
    dst = tmp_path / "demo-ws"
    shutil.copytree(demo_workspace_template, dst, ignore=shutil.ignore_patterns(".complete"))
    return Workspace.open(dst)
