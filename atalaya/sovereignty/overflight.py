"""Sortie-over-territory records: account every sortie and write each record to the transparency log.

One log leaf per (sortie, territory, level) visited in a partner's territory —
time inside, distance, entries, exits, maximum depth, first entry and last
exit — so the host can verify, offline, what was flown over it. Appending is
idempotent: a record already in the log (same content hash) is not appended
again; a changed record (e.g. re-accounting after a late track) is appended as
a new leaf that says which earlier leaf it supersedes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from atalaya.core.workspace import Workspace
from atalaya.geo.territories import Territories, load_territories
from atalaya.sovereignty.accounting import Accounting
from atalaya.sovereignty.compliance import account_sorties, tracks_from_lake
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.lake import Lake
from atalaya.store.translog import leaf_hash
from atalaya.store.translog.node import log_signer, open_log

ACCOUNTING_VERSION = "accounting/v1"


def account_workspace_sorties(ws: Workspace, territories: Territories | None = None) -> Accounting:
    """Overflight accounting of every sortie track in the workspace lake, at country and state level."""
    return account_sorties(tracks_from_lake(Lake(ws.lake_dir)), territories or load_territories())


def _iso(v: Any) -> str | None:
    return None if v is None else v.astimezone(UTC).isoformat().replace("+00:00", "Z")


def overflight_records(acc: Accounting, *, collector: str, hosts: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Log entries for sortie time over territories not owned by the collecting party (optionally only ``hosts``)."""
    out = []
    for r in acc.summary.to_pylist():
        owner = r["owner"]
        if not owner or owner == collector or (hosts is not None and owner not in hosts):
            continue
        out.append(
            {
                "kind": "overflight",
                "method": ACCOUNTING_VERSION,
                "sortie": r["track_id"],
                "level": r["level"],
                "territory": r["territory_id"],
                "owner": owner,
                "seconds": round(float(r["time_s"]), 1),
                "km": round(float(r["distance_km"]), 3),
                "entries": int(r["entries"]),
                "exits": int(r["exits"]),
                "max_depth_km": None if r["max_depth_km"] is None else round(float(r["max_depth_km"]), 3),
                "first_in": _iso(r["first_in"]),
                "last_out": _iso(r["last_out"]),
            }
        )
    return out


def _ref(rec: dict[str, Any]) -> str:
    return f"{rec['sortie']}|{rec['level']}|{rec['territory']}"


def _log_ref(rec: dict[str, Any]) -> str:
    if rec["kind"] == "overflight":
        return f"overflight:{_ref(rec)}"
    version = f"@v{rec['version']}" if "version" in rec else ""
    return f"{rec['kind']}:{rec.get('id', '')}{version}"


def _digest(rec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(rec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def log_records(
    ws: Workspace, store: KnowledgeStore, records: Sequence[dict[str, Any]], *, checkpoint: bool = True
) -> dict[str, int]:
    """Append records not yet in the log; index them in the knowledge store; sign a checkpoint."""
    known: dict[str, tuple[int, str]] = {}
    with store.engine.connect() as conn:
        q = select(ks.log_entries.c.idx, ks.log_entries.c.ref_id, ks.log_entries.c.content_sha256)
        for row in conn.execute(q.order_by(ks.log_entries.c.idx)):
            known[str(row.ref_id)] = (int(row.idx), str(row.content_sha256))
    new: list[tuple[str, str, dict[str, Any]]] = []
    for rec in records:
        ref = _log_ref(rec)
        digest = _digest(rec)
        prev = known.get(ref)
        if prev is not None and prev[1] == digest:
            continue
        entry = dict(rec)
        if prev is not None:
            entry["supersedes"] = prev[0]
        new.append((ref, digest, entry))
    with open_log(ws) as log:
        if new:
            first = log.size
            log.append_many([e for _, _, e in new])
            now = datetime.now(UTC)
            rows = [
                {
                    "idx": first + i,
                    "leaf_hash": leaf_hash(log.get_bytes(first + i)).hex(),
                    "content_sha256": digest,
                    "kind": e["kind"],
                    "ref_id": ref,
                    "created_at": now,
                }
                for i, (ref, digest, e) in enumerate(new)
            ]
            with store.begin() as conn:
                conn.execute(ks.log_entries.insert(), rows)
        size = log.size
        if checkpoint and (new or log.latest_checkpoint() is None):
            log.checkpoint(log_signer(ws))
    return {"appended": len(new), "unchanged": len(records) - len(new), "log_size": size}
