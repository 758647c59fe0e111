"""What the STIX mapping reads: rows of each product kind, the parties, and the log leaves behind them.

The TAXII server, the federation sync and exports read rows here, pass them
through the egress chokepoint (:func:`atalaya.share.egress.release`, which
decides each row by its ``marking`` and strips what ``SOURCE-PROTECT``
forbids), and map what was released with
:class:`~atalaya.share.stix.mapping.StixBuilder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from atalaya.core.errors import ValidationError
from atalaya.core.workspace import Workspace
from atalaya.share.stix.mapping import MAPPED_KINDS, MARITIME_KINDS, LogRef, maritime_id
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks

_TABLES = {"sites": ks.sites, "tracks": ks.tracks, "corridors": ks.corridors, "crossings": ks.crossings,
           "sorties": ks.sorties, "verdicts": ks.verdicts}  # fmt: skip
_MARITIME_FILES = {"dark_gap": "dark_gaps", "rendezvous": "rendezvous", "loitering": "loitering"}


def _aware(v: Any) -> Any:
    return v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v


def parties(store: KnowledgeStore) -> list[dict[str, Any]]:
    """Rows of the ``parties`` table (for the identities' names)."""
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(ks.parties).order_by(ks.parties.c.id)).mappings()]


def overflight_leaves(ws: Workspace, store: KnowledgeStore) -> dict[str, list[tuple[LogRef, dict[str, Any]]]]:
    """The current sortie-over-territory leaves of the log, by sortie id: each leaf's reference and its record.

    A record superseded by a later leaf (re-accounting) is left out: the newest leaf of each reference counts.
    """
    from atalaya.store.translog.node import open_log

    le = ks.log_entries
    newest = select(func.max(le.c.idx).label("idx")).where(le.c.kind == "overflight").group_by(le.c.ref_id).subquery()
    with store.engine.connect() as conn:
        hits = conn.execute(
            select(le.c.idx, le.c.leaf_hash, le.c.ref_id).join(newest, newest.c.idx == le.c.idx).order_by(le.c.idx)
        ).all()
    out: dict[str, list[tuple[LogRef, dict[str, Any]]]] = {}
    if not hits:
        return out
    log = open_log(ws, readonly=True)
    try:
        for idx, leaf_hash, ref_id in hits:
            rec = log.get(int(idx))
            ref = LogRef(origin=ws.log_origin, index=int(idx), leaf_hash=str(leaf_hash), ref=str(ref_id or ""))
            out.setdefault(str(rec.get("sortie")), []).append((ref, rec))
    finally:
        log.close()
    return out


def maritime_rows(ws: Workspace) -> list[dict[str, Any]]:
    """The maritime events of the workspace's last maritime run (``event_kind`` and the event's ``id`` added)."""
    import pyarrow.parquet as pq

    from atalaya.fusion.maritime import maritime_dir

    out: list[dict[str, Any]] = []
    for kind in MARITIME_KINDS:
        path = maritime_dir(ws) / f"{_MARITIME_FILES[kind]}.parquet"
        if path.exists():
            out.extend({**r, "event_kind": kind, "id": maritime_id(r, kind)} for r in pq.read_table(path).to_pylist())
    return out


def product_rows(
    ws: Workspace, store: KnowledgeStore, kind: str, *, ids: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Rows of product ``kind`` (all, or those with ``ids``) ready for the egress and the mapping.

    Sorties carry their ``overflight`` records and ``log_refs``; verdicts carry ``audience`` (the egress's
    accountability rule reads it) and an ``id`` (the sortie's), like every other row.
    """
    if kind not in MAPPED_KINDS:
        raise ValidationError(f"no STIX mapping for {kind!r}", hint=f"one of {', '.join(MAPPED_KINDS)}")
    if kind == "maritime":
        rows = maritime_rows(ws)
        return rows if ids is None else [r for r in rows if r.get("id") in set(ids)]
    t = _TABLES[kind]
    key = t.c.sortie_id if kind == "verdicts" else t.c.id
    q = select(t).order_by(key)
    if ids is not None:
        q = q.where(key.in_(list(ids)))
    with store.engine.connect() as conn:
        rows = [{k: _aware(v) for k, v in r.items()} for r in conn.execute(q).mappings()]
    if kind == "verdicts":
        for r in rows:
            r["id"] = r["sortie_id"]
    if kind == "sorties":
        leaves = overflight_leaves(ws, store)
        for r in rows:
            got = leaves.get(str(r["id"]), [])
            r["overflight"] = [rec for _, rec in got]
            r["log_refs"] = [ref for ref, _ in got]
            r["audience"] = sorted({str(rec.get("owner")) for _, rec in got if rec.get("owner")})
    return rows
