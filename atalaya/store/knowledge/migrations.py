"""Versioned schema migrations for the knowledge store.

Each migration is a numbered function over a connection; the store applies
those above the recorded version, in order, each in its own transaction, and
records them in ``schema_migrations``. Never edit a released migration: add one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, inspect, select, text

from atalaya.core.errors import MigrationError
from atalaya.store.knowledge import schema as s


@dataclass(frozen=True, kw_only=True)
class Migration:
    """One schema step."""

    version: int
    """Sequential version number, from 1."""
    description: str
    """What it changes."""
    apply: Callable[[Connection], None]
    """The change."""


V1_TABLES = [
    s.parties, s.platforms, s.sorties, s.tracks, s.sites, s.corridors, s.crossings, s.entities,
    s.relationships, s.transactions, s.territories, s.agreements, s.products, s.log_entries, s.users,
    s.api_tokens, s.audit, s.ingest_units, s.quarantine, s.analysis_runs,
]  # fmt: skip


def _v1(conn: Connection) -> None:
    s.metadata.create_all(conn, tables=V1_TABLES)


def _v2(conn: Connection) -> None:
    s.metadata.create_all(conn, tables=[s.verdicts])


def _v3(conn: Connection) -> None:
    s.metadata.create_all(conn, tables=[s.sessions])
    # migration 1 creates api_tokens from the current table definition, so a new store has these already
    have = {c["name"] for c in inspect(conn).get_columns("api_tokens")}
    for name in ("revoked_at", "last_used_at"):
        if name not in have:
            col_type = s.api_tokens.c[name].type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE api_tokens ADD COLUMN {name} {col_type}"))


def _v4(conn: Connection) -> None:
    # migration 1 creates log_entries from the current table definition, so a new store has the index already
    for ix in s.log_entries.indexes:
        ix.create(conn, checkfirst=True)


def _v5(conn: Connection) -> None:
    s.metadata.create_all(conn, tables=[s.taxii_collections, s.stix_objects, s.taxii_status])


def _v6(conn: Connection) -> None:
    s.metadata.create_all(
        conn, tables=[s.selectors, s.matches, s.partners, s.received_objects, s.cosignatures, s.host_checks]
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(version=1, description="initial schema", apply=_v1),
    Migration(version=2, description="compliance verdicts, one record per sortie", apply=_v2),
    Migration(version=3, description="web sessions; API token revocation and last use", apply=_v3),
    Migration(version=4, description="index of log entries by reference", apply=_v4),
    Migration(version=5, description="TAXII collections, their STIX objects and status resources", apply=_v5),
    Migration(
        version=6,
        description="federation: partner nodes, received objects, cosignatures, selector lists, comparisons",
        apply=_v6,
    ),
)

LATEST = MIGRATIONS[-1].version


def current_version(conn: Connection) -> int:
    """The schema version recorded in the database (0 for an empty database)."""
    if not inspect(conn).has_table("schema_migrations"):
        return 0
    row = conn.execute(select(s.schema_migrations.c.version).order_by(s.schema_migrations.c.version.desc())).first()
    return int(row[0]) if row else 0


def pending(version: int) -> list[Migration]:
    """Migrations above ``version``; refuses a database newer than this code."""
    if version > LATEST:
        raise MigrationError(
            f"the knowledge store has schema version {version}, newer than this Atalaya ({LATEST})",
            hint="upgrade Atalaya before opening this store",
        )
    return [m for m in MIGRATIONS if m.version > version]


def record(conn: Connection, m: Migration) -> None:
    """Record an applied migration."""
    conn.execute(
        s.schema_migrations.insert().values(version=m.version, description=m.description, applied_at=datetime.now(UTC))
    )
