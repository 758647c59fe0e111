"""The knowledge-store side of sovereignty: sortie manifests in, verdicts in and out.

One place for these reads and writes, run by the store contract suite on
SQLite and PostgreSQL. A verdict is stored once per sortie (``verdicts``),
and every view — CLI, API, partner report — reads it from here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select

from atalaya.sovereignty.compliance import SortieRecord, SortieVerdict
from atalaya.store.knowledge import KnowledgeStore, upsert
from atalaya.store.knowledge import schema as ks


def _aware(v: Any) -> Any:
    return v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v


def sorties_from_store(store: KnowledgeStore) -> list[SortieRecord]:
    """Sortie manifests from the ``sorties`` table, by take-off time."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(ks.sorties).order_by(ks.sorties.c.takeoff, ks.sorties.c.id)).mappings().all()
    out = []
    for r in rows:
        d = {k: _aware(v) for k, v in r.items()}
        d["sortie_id"] = d.pop("id")
        out.append(SortieRecord.from_dict(d))
    return out


def verdict_row(v: SortieVerdict, *, audience: Sequence[str], marking: str, as_of: datetime | None) -> dict[str, Any]:
    """The ``verdicts`` row of one verdict."""
    return {
        "sortie_id": v.sortie.sortie_id,
        "status": v.status,
        "reason": v.reason,
        "worst": v.worst.value if v.worst else None,
        "n_violations": len(v.violations),
        "hosts": list(v.hosts),
        "audience": sorted({p.upper() for p in audience}),
        "agreement_id": v.sortie.agreement_id,
        "agreement_version": v.agreement_version,
        "collection_id": v.collection_id,
        "track_points": v.track_points,
        "record": v.to_dict(),
        "checked_at": datetime.now(UTC),
        "as_of": as_of,
        "marking": marking,
        "provenance": {"method": "compliance/v1", "track_points": v.track_points},
    }


def save_verdicts(store: KnowledgeStore, rows: Sequence[dict[str, Any]], *, replace_all: bool = False) -> int:
    """Store verdict rows; returns how many changed.

    A verdict equal to the stored one (same status, reason, audience and record) is left as it is, with the
    time it was first reached; ``replace_all`` drops the verdicts of sorties no longer checked.
    """
    keys = ("status", "reason", "audience", "record", "marking")
    with store.begin() as conn:
        stored = {
            r["sortie_id"]: tuple(r[k] for k in keys)
            for r in conn.execute(select(ks.verdicts.c.sortie_id, *(ks.verdicts.c[k] for k in keys))).mappings()
        }
        if replace_all:
            keep = [r["sortie_id"] for r in rows]
            conn.execute(delete(ks.verdicts).where(ks.verdicts.c.sortie_id.not_in(keep)))
        changed = [r for r in rows if stored.get(r["sortie_id"]) != tuple(_plain(r[k]) for k in keys)]
        upsert(conn, ks.verdicts, changed, keys=["sortie_id"])
    return len(changed)


def _plain(v: Any) -> Any:
    """A value as it comes back from a JSON column (tuples become lists)."""
    return json.loads(json.dumps(v, default=str)) if isinstance(v, dict | list | tuple) else v


def load_verdicts(
    store: KnowledgeStore, *, sortie_ids: Sequence[str] | None = None, party: str | None = None
) -> list[dict[str, Any]]:
    """Stored verdict rows (all, those of some sorties, or those whose audience includes ``party``)."""
    q = select(ks.verdicts)
    if sortie_ids is not None:
        q = q.where(ks.verdicts.c.sortie_id.in_(list(sortie_ids)))
    with store.engine.connect() as conn:
        rows = [{k: _aware(v) for k, v in r.items()} for r in conn.execute(q).mappings()]
    if party is not None:
        p = party.upper()
        rows = [r for r in rows if p in (r["audience"] or [])]
    return rows
