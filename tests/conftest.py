"""Shared fixtures: knowledge-store backends (SQLite and the real PostgreSQL server), workspaces."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from atalaya.core.workspace import Workspace, init_workspace
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge.store import normalise_url

PG_ENV = "ATALAYA_TEST_PG"


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
