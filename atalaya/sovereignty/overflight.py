"""Sortie-over-territory records: account every sortie and write each record to the transparency log.

One log leaf per (sortie, territory, level) visited in a partner's territory —
time inside, distance, entries, exits, maximum depth, first entry and last
exit — so the host can verify, offline, what was flown over it. Appending goes
through :func:`atalaya.store.translog.journal.record`: idempotent (a record
already in the log with the same content is not appended again) and a changed
record (e.g. re-accounting after a late track) is appended as a new leaf that
says which earlier leaf it supersedes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from atalaya.core.workspace import Workspace
from atalaya.geo.territories import Territories, load_territories
from atalaya.sovereignty.accounting import Accounting
from atalaya.sovereignty.compliance import account_sorties
from atalaya.sovereignty.tracks import sortie_tracks
from atalaya.store.lake import Lake

ACCOUNTING_VERSION = "accounting/v1"


def account_workspace_sorties(ws: Workspace, territories: Territories | None = None) -> Accounting:
    """Overflight accounting of every sortie track in the workspace lake, at country and state level."""
    return account_sorties(sortie_tracks(Lake(ws.lake_dir)), territories or load_territories())


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
