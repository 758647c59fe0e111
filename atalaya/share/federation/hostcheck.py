"""The host checks, not trusts: it recomputes each partner sortie over its territory from the shared flown track.

For every sortie a partner shared (``x-atalaya-sortie``, its sortie-over-territory
records taken from the partner's log) with its flown track
(``x-atalaya-flown-track``), this node

1. accounts the flown track itself — its own territories, the same gap limit
   for sorties (:data:`~atalaya.sovereignty.accounting.MAX_GAP_S`) and the same
   accounting code the collector runs — and forms the records the collector
   should have logged;
2. compares them with what the collector logged, territory by territory: time
   and distance within :data:`REL_TOL` (or :data:`ABS_TOL_S` / :data:`ABS_TOL_KM`),
   depth within :data:`DEPTH_TOL_KM`, entries and exits exactly, and no territory
   on one side only;
3. where its own lake holds fixes of the platform (the host's radar or ADS-B:
   the sortie's ``platform_id`` as ICAO24), measures how far the shared track lies
   from them at the same instants;
4. stores the result per sortie (``host_checks``) and writes one ``host-check``
   entry to its own log, so the collector (and anyone auditing the host) sees
   which figures the host accepts and which it disputes.

A sortie without a flown track is ``unverifiable`` here, as in compliance.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import and_, select

from atalaya.core.workspace import Workspace
from atalaya.geo.kernels import geodesic_distance
from atalaya.sovereignty.accounting import MAX_GAP_S, account_tracks
from atalaya.sovereignty.overflight import overflight_records
from atalaya.sovereignty.territory_sets import TerritoryChoice
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.translog import journal

REL_TOL = 0.005
"""Relative tolerance on time and distance (the two nodes may hold different territory data versions)."""
ABS_TOL_S = 5.0
"""Absolute tolerance on time over a territory, seconds."""
ABS_TOL_KM = 0.5
"""Absolute tolerance on distance over a territory, km."""
DEPTH_TOL_KM = 1.0
"""Tolerance on the deepest point, km."""
OWN_FIX_TOL_KM = 5.0
"""Largest distance between the shared track and the host's own fix of the platform before it is disputed."""
FIGURES = ("seconds", "km", "max_depth_km", "entries", "exits")


@dataclass
class HostCheck:
    """One sortie as the host sees it."""

    origin: str
    sortie_id: str
    status: str
    claimed: list[dict[str, Any]]
    recomputed: list[dict[str, Any]]
    differences: list[dict[str, Any]] = field(default_factory=list)
    own_observations: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _latest_objects(store: KnowledgeStore, origin: str, types: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Newest live version of each received object of ``types`` from ``origin``, by STIX id."""
    t = ks.received_objects.c
    with store.begin() as conn:
        rows = conn.execute(
            select(t.stix_id, t.version, t.body)
            .where(and_(t.origin == origin, t.type.in_(list(types)), t.retracted_at.is_(None)))
            .order_by(t.stix_id, t.version)
        ).all()
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        out[r.stix_id] = json.loads(r.body)
    return {k: v for k, v in out.items() if not v.get("revoked")}


def _key(rec: Mapping[str, Any]) -> tuple[str, str]:
    return str(rec.get("level")), str(rec.get("territory"))


def _differs(name: str, claimed: Any, mine: Any) -> bool:
    if claimed is None or mine is None:
        return (claimed is None) != (mine is None) and name != "max_depth_km"
    a, b = float(claimed), float(mine)
    if name in ("entries", "exits"):
        return a != b
    if name == "max_depth_km":
        return abs(a - b) > DEPTH_TOL_KM
    floor = ABS_TOL_S if name == "seconds" else ABS_TOL_KM
    return abs(a - b) > max(floor, REL_TOL * max(abs(a), abs(b)))


def compare(claimed: Sequence[Mapping[str, Any]], mine: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What disagrees between the collector's records and the host's, territory by territory.

    >>> c = [{"level": "country", "territory": "MEX", "seconds": 3600.0, "km": 700.0, "entries": 1, "exits": 1}]
    >>> compare(c, [dict(c[0], seconds=3602.0)])
    []
    >>> compare(c, [dict(c[0], seconds=3000.0)])[0]["figure"]
    'seconds'
    >>> compare(c, [])[0]["figure"]
    'territory'
    """
    a = {_key(r): r for r in claimed}
    b = {_key(r): r for r in mine}
    out: list[dict[str, Any]] = []
    for k in sorted(set(a) | set(b)):
        if k not in a or k not in b:
            out.append({"level": k[0], "territory": k[1], "figure": "territory",
                        "claimed": k in a, "recomputed": k in b})  # fmt: skip
            continue
        for name in FIGURES:
            if _differs(name, a[k].get(name), b[k].get(name)):
                out.append({"level": k[0], "territory": k[1], "figure": name, "claimed": a[k].get(name),
                            "recomputed": b[k].get(name)})  # fmt: skip
    return out


def _own_fixes(ws: Workspace, platforms: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """This node's own fixes of each platform (ICAO24) as ``(time_us, lon, lat)``."""
    from atalaya.store.lake import Lake

    wanted = sorted({p.lower() for p in platforms if p})
    if not wanted or not ws.lake_dir.exists():
        return {}
    try:
        tab = Lake(ws.lake_dir).query(
            "SELECT lower(CAST(ident AS VARCHAR)) AS ident, epoch_us(time) AS time_us, lon, lat FROM observations "
            "WHERE CAST(ident_kind AS VARCHAR) = 'icao24' AND lower(CAST(ident AS VARCHAR)) IN (SELECT UNNEST(?)) "
            "ORDER BY ident, time_us",
            [wanted],
        )
    except Exception:  # an empty lake has no observations view: nothing of our own to compare with
        return {}
    ident = np.asarray(tab.column("ident").to_pylist(), dtype=object)
    out = {}
    for p in wanted:
        sel = ident == p
        if sel.any():
            out[p] = (tab.column("time_us").to_numpy()[sel], tab.column("lon").to_numpy()[sel],
                      tab.column("lat").to_numpy()[sel])  # fmt: skip
    return out


def _against_own(
    t: np.ndarray, lon: np.ndarray, lat: np.ndarray, own: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> dict[str, Any] | None:
    """The shared track at the instants of the host's own fixes (linear interpolation): how far apart."""
    ot, olon, olat = own
    inside = (ot >= t[0]) & (ot <= t[-1])
    if not inside.any():
        return None
    ot, olon, olat = ot[inside], olon[inside], olat[inside]
    ilon = np.interp(ot, t, lon)
    ilat = np.interp(ot, t, lat)
    d = geodesic_distance(ilon, ilat, olon, olat) / 1000.0
    return {"fixes": len(ot), "median_km": round(float(np.median(d)), 3), "max_km": round(float(d.max()), 3),
            "disputed": bool(d.max() > OWN_FIX_TOL_KM)}  # fmt: skip


def check_partner_sorties(ws: Workspace, store: KnowledgeStore, origin: str) -> list[HostCheck]:
    """Recompute every sortie ``origin`` shared over this node's territory; store and log the result."""
    origin = origin.upper()
    sorties = _latest_objects(store, origin, ["x-atalaya-sortie"])
    tracks = {o.get("sortie_ref"): o for o in _latest_objects(store, origin, ["x-atalaya-flown-track"]).values()}
    checks: list[HostCheck] = []
    with_track: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for sid, s in sorted(sorties.items()):
        key = str(s.get("atalaya_id"))
        claimed = [dict(r) for r in s.get("over_territory") or [] if r.get("owner") == ws.party]
        tr = tracks.get(sid)
        if tr is None or len(tr.get("time_us") or []) < 2:
            checks.append(HostCheck(origin=origin, sortie_id=key, status="unverifiable", claimed=claimed,
                                    recomputed=[], differences=[{"figure": "track", "claimed": bool(claimed),
                                                                 "recomputed": None}]))  # fmt: skip
            continue
        with_track.append((key, s, tr))
    if with_track:
        tid = np.concatenate([np.full(len(tr["time_us"]), k, dtype=object) for k, _, tr in with_track])
        t = np.concatenate([np.asarray(tr["time_us"], dtype=np.int64) for _, _, tr in with_track])
        xy = np.concatenate([np.asarray([c[:2] for c in tr["coordinates"]], dtype=np.float64)
                             for _, _, tr in with_track])  # fmt: skip
        order = np.lexsort((t, tid))
        tid, t, xy = tid[order], t[order], xy[order]
        terr = TerritoryChoice.from_config(ws).load(xy[:, 0], xy[:, 1])
        acc = account_tracks(track_id=tid, time_us=t, lon=xy[:, 0], lat=xy[:, 1], territories=terr,
                             levels=("country", "state"), max_gap_s=MAX_GAP_S["sortie"])  # fmt: skip
        mine_all = overflight_records(acc, collector=origin, hosts=[ws.party])
        own = _own_fixes(ws, [str(s.get("platform_id") or "") for _, s, _ in with_track])
        for key, s, _tr in with_track:
            claimed = [dict(r) for r in s.get("over_territory") or [] if r.get("owner") == ws.party]
            mine = [{k: v for k, v in r.items() if k != "kind"} for r in mine_all if r["sortie"] == key]
            diffs = compare(claimed, mine)
            sel = tid == key
            vs_own = None
            pid = str(s.get("platform_id") or "").lower()
            if pid in own:
                vs_own = _against_own(t[sel], xy[sel, 0], xy[sel, 1], own[pid])
            status = "differs" if diffs or (vs_own or {}).get("disputed") else "agrees"
            checks.append(HostCheck(origin=origin, sortie_id=key, status=status, claimed=claimed, recomputed=mine,
                                    differences=diffs, own_observations=vs_own))  # fmt: skip
    _save(ws, store, checks)
    return checks


def _save(ws: Workspace, store: KnowledgeStore, checks: Sequence[HostCheck]) -> None:
    if not checks:
        return
    entries = [
        {
            "kind": "host-check",
            "id": f"{c.origin}|{c.sortie_id}",
            "collector": c.origin,
            "host": ws.party,
            "sortie": c.sortie_id,
            "status": c.status,
            "differences": c.differences,
            "own_observations": c.own_observations,
        }
        for c in checks
    ]
    got = journal.record(ws, store, entries)
    now = datetime.now(UTC)
    t = ks.host_checks.c
    with store.begin() as conn:
        conn.execute(
            ks.host_checks.delete().where(
                and_(t.origin == checks[0].origin, t.sortie_id.in_([c.sortie_id for c in checks]))
            )
        )
        conn.execute(
            ks.host_checks.insert(),
            [
                {
                    "origin": c.origin,
                    "sortie_id": c.sortie_id,
                    "status": c.status,
                    "claimed": c.claimed,
                    "recomputed": c.recomputed,
                    "differences": c.differences,
                    "own_observations": c.own_observations,
                    "checked_at": now,
                    "log_index": int(i),
                }
                for c, i in zip(checks, got["indices"], strict=True)
            ],
        )


def stored_checks(store: KnowledgeStore, origin: str | None = None) -> list[dict[str, Any]]:
    """The host's stored checks (of one partner or all), by partner and sortie."""
    t = ks.host_checks.c
    q = select(ks.host_checks).order_by(t.origin, t.sortie_id)
    if origin:
        q = q.where(t.origin == origin.upper())
    with store.begin() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]
