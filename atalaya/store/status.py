"""What a workspace holds: the lake's contents per source, day and kind, and the knowledge store's counts.

One query for ``atalaya status`` and the API's ``/api/status``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from atalaya.core.workspace import Workspace
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.lake import Lake


def workspace_status(ws: Workspace, store: KnowledgeStore) -> dict[str, Any]:
    """Figures for ``atalaya status``: lake contents per source, day and kind, and knowledge-store counts."""
    lake = Lake(ws.lake_dir)
    rows = lake.query(
        "SELECT source, day, CAST(sensor AS VARCHAR) AS sensor, CAST(kind AS VARCHAR) AS kind, count(*) AS n, "
        "min(time) AS first, max(time) AS last FROM observations GROUP BY ALL ORDER BY source, day, sensor, kind"
    ).to_pylist()
    by_source: dict[str, int] = {}
    by_day: dict[str, int] = {}
    by_kind: dict[str, int] = {}
    for r in rows:
        by_source[r["source"]] = by_source.get(r["source"], 0) + r["n"]
        by_day[r["day"]] = by_day.get(r["day"], 0) + r["n"]
        by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + r["n"]
    counts = {}
    with store.engine.connect() as conn:
        for t in (ks.ingest_units, ks.quarantine, ks.sorties, ks.tracks, ks.sites, ks.entities, ks.agreements,
                  ks.log_entries):  # fmt: skip
            counts[t.name] = int(conn.execute(select(func.count()).select_from(t)).scalar_one())
    return {
        "workspace": str(ws.root),
        "party": ws.party,
        "observations": sum(by_source.values()),
        "by_source": by_source,
        "by_day": by_day,
        "by_kind": by_kind,
        "partitions": [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()} for r in rows],
        "knowledge_store": counts,
    }
