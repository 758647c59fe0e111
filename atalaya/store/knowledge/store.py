"""The knowledge store: curated, mutable picture in SQL (SQLite file or PostgreSQL), via SQLAlchemy Core.

The logic is written once; dialect differences (upsert) are isolated in
:func:`upsert`. The same contract test suite runs on both backends.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from atalaya.core.errors import MigrationError, StoreError
from atalaya.store.knowledge import migrations
from atalaya.store.knowledge import schema as s


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def normalise_url(url: str) -> str:
    """Map ``postgresql://`` to the psycopg 3 driver; keep other URLs as given."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class KnowledgeStore:
    """An opened, migrated knowledge store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> KnowledgeStore:
        """Connect to ``url`` and apply pending migrations."""
        try:
            engine = create_engine(normalise_url(url), future=True, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError) as e:
            raise StoreError(
                f"cannot use knowledge store URL {url!r}: {e}",
                hint="use sqlite:///path/file.sqlite or postgresql://user@host:5432/db",
            ) from e
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        if migrate:
            store.migrate()
        return store

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def migrate(self) -> list[int]:
        """Apply pending migrations; returns the versions applied.

        Safe when several processes open a new store at once: PostgreSQL serialises them with an advisory lock,
        a SQLite file with an exclusive lock on ``<file>.migrate-lock`` beside it.
        """
        with self._sqlite_migrate_lock():
            return self._migrate_once()

    @contextmanager
    def _sqlite_migrate_lock(self) -> Iterator[None]:
        path = self.engine.url.database if self.dialect == "sqlite" else None
        if not path or path == ":memory:" or path.startswith("file:"):
            yield
            return
        fd = os.open(f"{path}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _migrate_once(self) -> list[int]:
        applied: list[int] = []
        try:
            with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    # serialise concurrent migrators
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(1952543340)")
                if not conn.dialect.has_table(conn, "schema_migrations"):
                    s.schema_migrations.create(conn)
                version = migrations.current_version(conn)
                for m in migrations.pending(version):
                    m.apply(conn)
                    migrations.record(conn, m)
                    applied.append(m.version)
        except OperationalError as e:
            if "already exists" in str(e.orig):
                raise MigrationError(f"schema migration failed: {e}") from e
            raise StoreError(
                f"cannot reach the knowledge store at {self.engine.url.render_as_string(hide_password=True)}: {e.orig}",
                hint="check that the database server runs and the URL (user, host, port, database) is right",
            ) from e
        except SQLAlchemyError as e:
            raise MigrationError(f"schema migration failed: {e}") from e
        return applied

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return migrations.current_version(conn)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction: committed on success, rolled back on any exception."""
        with self.engine.begin() as conn:
            yield conn

    def count(self, table: Table) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def upsert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], keys: Sequence[str],
           update: Sequence[str] | None = None) -> None:  # fmt: skip
    """Insert rows, updating ``update`` columns (default: all non-key) where the key exists.

    Written once for SQLite and PostgreSQL (both support ``ON CONFLICT``).
    """
    if not rows:
        return
    name = conn.dialect.name
    ins: Any
    if name == "postgresql":
        ins = postgresql.insert(table)
    elif name == "sqlite":
        ins = sqlite.insert(table)
    else:  # pragma: no cover - only the two supported backends
        raise StoreError(f"unsupported database dialect {name!r}", hint="use SQLite or PostgreSQL")
    cols = update if update is not None else [c.name for c in table.columns if c.name not in keys]
    if cols:
        stmt = ins.on_conflict_do_update(index_elements=list(keys), set_={c: ins.excluded[c] for c in cols})
    else:
        stmt = ins.on_conflict_do_nothing(index_elements=list(keys))
    # chunk to respect bound-parameter limits
    per_row = max(1, len(rows[0]))
    chunk = max(1, 30_000 // per_row)
    for i in range(0, len(rows), chunk):
        conn.execute(stmt, list(rows[i : i + chunk]))
