"""Exports of sites, tracks and corridors for the tools analysts use: GeoJSON (QGIS), KML (Google Earth), CoT (ATAK).

Exports read the knowledge store and leave through the egress chokepoint
(:func:`atalaya.share.egress.release`): for a partner (``recipient`` other than
the node's party) every object is decided by the policy and the release is
recorded in the transparency log; for the node's own use nothing is filtered.

>>> feats = [{"id": "s1", "geometry": {"type": "Point", "coordinates": [-107.0, 25.0]}, "name": "lab",
...           "props": {"score": 0.9}}]
>>> "<Placemark" in points_kml(feats, title="sites")
True
>>> points_cot([], kind="sites", stale_s=60, now=None)
''
>>> cot_type_for("tracks", {"kind": "vessel"}), cot_type_for("sites", {"kind": "lab"})
('a-u-S', 'a-s-G-I')
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import h3
from sqlalchemy import select

from atalaya.core.errors import ValidationError
from atalaya.core.workspace import Workspace
from atalaya.share.egress import EgressPolicy, FileSink, release, require_party
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks

KINDS = ("sites", "tracks", "corridors")
FORMATS = ("geojson", "kml", "cot")
_COT_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True, kw_only=True)
class ExportResult:
    """What an export wrote."""

    path: Path
    """The file written."""
    kind: str
    """sites, tracks or corridors."""
    format: str
    """geojson, kml or cot."""
    objects: int
    """Objects exported."""
    withheld: int
    """Objects the egress policy withheld from the recipient."""
    log_index: int | None
    """Transparency-log index of the dissemination record (partner exports only)."""
    reasons: list[str]
    """Why items were withheld (one line per distinct reason)."""

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "path": str(self.path)}


def _iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def _site_items(store: KnowledgeStore) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(ks.sites).order_by(ks.sites.c.score.desc(), ks.sites.c.id)).all()
    return [
        {
            "id": r.id,
            "marking": r.marking,
            "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
            "name": f"{r.kind} ({r.score:.2f})" if r.score is not None else r.kind,
            "time": r.last_seen,
            "props": {
                "kind": r.kind,
                "score": r.score,
                "rank": r.rank,
                "status": r.status,
                "radius_m": r.radius_m,
                "first_seen": _iso(r.first_seen),
                "last_seen": _iso(r.last_seen),
                "n_days": r.n_days,
                "note": r.note,
                "marking": r.marking,
            },
        }
        for r in rows
    ]


def _track_items(store: KnowledgeStore) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(ks.tracks).order_by(ks.tracks.c.id)).all()
    out = []
    for r in rows:
        if not r.geometry:
            continue
        out.append(
            {
                "id": r.id,
                "marking": r.marking,
                "geometry": display_geometry(json.loads(r.geometry)),
                "name": r.ident or r.id,
                "time": r.end,
                "props": {
                    "kind": r.kind,
                    "ident": r.ident,
                    "ident_kind": r.ident_kind,
                    "start": _iso(r.start),
                    "end": _iso(r.end),
                    "n_points": r.n_points,
                    "length_km": r.length_km,
                    "marking": r.marking,
                },
            }
        )
    return out


def display_geometry(g: dict[str, Any]) -> dict[str, Any]:
    """A track's stored geometry made valid for export: a LineString with fewer than two distinct positions (a
    track of one position reported again and again, as stores written before tracks were given Points hold)
    becomes a Point; other geometries pass unchanged.

    >>> display_geometry({"type": "LineString", "coordinates": [[-107.0, 25.0], [-107.0, 25.0]]})
    {'type': 'Point', 'coordinates': [-107.0, 25.0]}
    """
    if g.get("type") != "LineString":
        return g
    coords = g.get("coordinates") or []
    if len({(float(c[0]), float(c[1])) for c in coords}) >= 2:
        return g
    if not coords:
        raise ValidationError("a track's stored geometry is an empty LineString", hint="re-run `atalaya analyse`")
    return {"type": "Point", "coordinates": list(coords[0])}


def _cells_polygon(cells: Sequence[str]) -> dict[str, Any]:
    polys = []
    for c in cells:
        ring = [[lon, lat] for lat, lon in h3.cell_to_boundary(c)]
        ring.append(ring[0])
        polys.append([ring])
    return {"type": "MultiPolygon", "coordinates": polys}


def _corridor_items(store: KnowledgeStore) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(ks.corridors).order_by(ks.corridors.c.kind, ks.corridors.c.rank)).all()
    return [
        {
            "id": r.id,
            "marking": r.marking,
            "geometry": _cells_polygon(list(r.h3_cells or [])),
            "name": f"{r.kind} corridor #{r.rank}",
            "time": None,
            "props": {
                "kind": r.kind,
                "rank": r.rank,
                "volume": r.volume,
                "cells": len(r.h3_cells or []),
                "marking": r.marking,
            },
        }
        for r in rows
    ]


def to_geojson(items: Sequence[dict[str, Any]]) -> str:
    """A GeoJSON FeatureCollection (RFC 7946)."""
    feats = [{"type": "Feature", "id": it["id"], "properties": {"id": it["id"], "name": it["name"], **it["props"]},
              "geometry": it["geometry"]} for it in items]  # fmt: skip
    return json.dumps({"type": "FeatureCollection", "features": feats}, default=str)


def _kml_coords(coords: Sequence[Sequence[float]]) -> str:
    return " ".join(f"{c[0]:.6f},{c[1]:.6f},0" for c in coords)


def _kml_geometry(g: dict[str, Any]) -> str:
    t = g["type"]
    if t == "Point":
        return f"<Point><coordinates>{_kml_coords([g['coordinates']])}</coordinates></Point>"
    if t == "LineString":
        coords = _kml_coords(g["coordinates"])
        return f"<LineString><tessellate>1</tessellate><coordinates>{coords}</coordinates></LineString>"
    if t == "MultiPolygon":
        polys = "".join(
            f"<Polygon><outerBoundaryIs><LinearRing><coordinates>{_kml_coords(p[0])}</coordinates></LinearRing>"
            "</outerBoundaryIs></Polygon>"
            for p in g["coordinates"]
        )
        return f"<MultiGeometry>{polys}</MultiGeometry>"
    raise ValidationError(f"cannot write {t} geometry to KML")


def points_kml(items: Sequence[dict[str, Any]], *, title: str) -> str:
    """A KML document (Google Earth) with one Placemark per item and its properties as ExtendedData."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>', '<kml xmlns="http://www.opengis.net/kml/2.2">',
             f"<Document><name>{escape(title)}</name>"]  # fmt: skip
    for it in items:
        data = "".join(
            f"<Data name={quoteattr(str(k))}><value>{escape('' if v is None else str(v))}</value></Data>"
            for k, v in it["props"].items()
        )
        parts.append(
            f"<Placemark id={quoteattr(it['id'])}><name>{escape(it['name'])}</name>"
            f"<ExtendedData>{data}</ExtendedData>{_kml_geometry(it['geometry'])}</Placemark>"
        )
    parts.append("</Document></kml>")
    return "\n".join(parts) + "\n"


def _last_point(g: dict[str, Any]) -> tuple[float, float]:
    if g["type"] == "Point":
        return float(g["coordinates"][0]), float(g["coordinates"][1])
    if g["type"] == "LineString":
        return float(g["coordinates"][-1][0]), float(g["coordinates"][-1][1])
    ring = g["coordinates"][0][0]
    return sum(p[0] for p in ring) / len(ring), sum(p[1] for p in ring) / len(ring)


COT_TRACK_MODES = ("points", "route")
"""How tracks go out as CoT: position updates (one event per point, one uid) or one drawn route (``b-m-r``)."""
MAX_COT_TRACK_POINTS = 500
"""Points sent per track (evenly decimated, both ends kept): a TAK client replays every update it is sent."""
_TRACK_TYPES = {"vehicle": "a-u-G-E-V", "vessel": "a-u-S", "aircraft": "a-u-A", "person": "a-u-G-U"}


def cot_type_for(kind: str, props: dict[str, Any]) -> str:
    """The CoT type of an exported object: sites are suspect ground installations; tracks are unknown units typed
    by platform (vehicle, vessel, aircraft, person); corridors are map shapes."""
    if kind == "sites":
        return "a-s-G-I"
    if kind == "tracks":
        return _TRACK_TYPES.get(str(props.get("kind")), "a-u-G")
    return "b-m-p-s-m"


def _decimate(coords: Sequence[Sequence[float]], limit: int) -> list[Sequence[float]]:
    if len(coords) <= limit:
        return list(coords)
    idx = sorted({round(i * (len(coords) - 1) / (limit - 1)) for i in range(limit)})
    return [coords[i] for i in idx]


def _t(t: datetime) -> str:
    return t.strftime(_COT_TIME)


def _event(
    uid: str, ctype: str, t: datetime, stale_s: int, lon: float, lat: float, detail: str, *, how: str = "m-f"
) -> str:
    return (
        f'<event version="2.0" uid={quoteattr(uid)} type={quoteattr(ctype)} how="{how}" '
        f'time="{_t(t)}" start="{_t(t)}" stale="{_t(t + timedelta(seconds=stale_s))}">'
        f'<point lat="{lat:.7f}" lon="{lon:.7f}" hae="9999999.0" ce="9999999.0" le="9999999.0"/>'
        f"<detail>{detail}</detail></event>"
    )


def points_cot(
    items: Sequence[dict[str, Any]],
    *,
    kind: str,
    stale_s: int,
    now: datetime | None,
    track_mode: str = "points",
    max_points: int = MAX_COT_TRACK_POINTS,
) -> str:
    """Cursor-on-Target as TAK clients take it: one ``<event>`` per message, one per line, no enclosing root (a
    TAK stream or ``.cot`` file). Sites and corridors are one event each; a track is a series of position updates
    under one uid (``track_mode="points"``, times spread from its start to its end) or one drawn route
    (``"route"``: a ``b-m-r`` event with a ``<link>`` per point)."""
    if track_mode not in COT_TRACK_MODES:
        raise ValidationError(f"unknown CoT track mode {track_mode!r}", hint=f"use one of {', '.join(COT_TRACK_MODES)}")
    t0 = now or datetime.now(UTC)
    lines: list[str] = []
    for it in items:
        t = it.get("time") or t0
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        remarks = "; ".join(f"{k}={v}" for k, v in it["props"].items() if v is not None)
        name = it["name"][:60]
        uid = "atalaya-" + it["id"]
        ctype = cot_type_for(kind, it["props"])
        detail = f"<contact callsign={quoteattr(name)}/><remarks>{escape(remarks)}</remarks>"
        g = it["geometry"]
        if kind != "tracks" or g["type"] != "LineString":
            lon, lat = _last_point(g)
            lines.append(_event(uid, ctype, t, stale_s, lon, lat, detail))
            continue
        pts = _decimate(g["coordinates"], max(2, max_points))
        start = datetime.fromisoformat(it["props"]["start"]) if it["props"].get("start") else t
        span, last = t - start, max(1, len(pts) - 1)
        if track_mode == "route":
            links = "".join(
                f'<link uid={quoteattr(f"{uid}-{k}")} type="b-m-p-w" relation="c" '
                f'callsign="{k + 1}" point="{p[1]:.7f},{p[0]:.7f}"/>'
                for k, p in enumerate(pts)
            )
            route = (
                f'{links}<link_attr color="-1" method="Driving" direction="Infil" routetype="Primary" '
                f'order="Ascending Check Points"/>{detail}'
            )
            lines.append(_event(uid + "-route", "b-m-r", t, stale_s, pts[0][0], pts[0][1], route, how="h-e"))
            continue
        for k, p in enumerate(pts):
            lines.append(_event(uid, ctype, start + span * k // last, stale_s, float(p[0]), float(p[1]), detail))
    return "".join(line + "\n" for line in lines)


_ITEMS = {"sites": _site_items, "tracks": _track_items, "corridors": _corridor_items}


def render(kind: str, fmt: str, items: Sequence[dict[str, Any]], *, cot_tracks: str = "points") -> str:
    """The text of an export of ``items``."""
    if fmt == "geojson":
        return to_geojson(items)
    if fmt == "kml":
        return points_kml(items, title=f"Atalaya {kind}")
    stale = 7 * 86_400 if kind != "tracks" else 3600
    return points_cot(items, kind=kind, stale_s=stale, now=None, track_mode=cot_tracks)


def export(
    ws: Workspace,
    store: KnowledgeStore,
    *,
    kind: str,
    fmt: str,
    out: Path,
    recipient: str | None = None,
    user: str = "cli",
    cot_tracks: str = "points",
) -> ExportResult:
    """Write an export through the egress chokepoint (for another party: filtered by the policy and logged)."""
    if kind not in KINDS or fmt not in FORMATS:
        raise ValidationError(
            f"cannot export {kind!r} as {fmt!r}", hint=f"kinds: {', '.join(KINDS)}; formats: {', '.join(FORMATS)}"
        )
    pol = EgressPolicy.from_store(store, ws.party)
    rcpt = require_party(store, pol, recipient) if recipient else ws.party
    items = _ITEMS[kind](store)
    if cot_tracks not in COT_TRACK_MODES:
        raise ValidationError(f"unknown CoT track mode {cot_tracks!r}", hint=f"use one of {', '.join(COT_TRACK_MODES)}")
    sink = FileSink(
        path=out,
        render=lambda released: render(kind, fmt, [_with_marking(it) for it in released], cot_tracks=cot_tracks),
    )
    rel = release(ws, store, items, recipient=rcpt, kind=kind, user=user, sink=sink, policy=pol)
    return ExportResult(
        path=out, kind=kind, format=fmt, objects=len(rel.items), withheld=len(rel.withheld),
        log_index=rel.log_index, reasons=sorted({w["reason"] for w in rel.withheld}),
    )  # fmt: skip


def _with_marking(it: dict[str, Any]) -> dict[str, Any]:
    """The item's marking (as released) among the properties every format writes, so its caveats travel."""
    return {**it, "props": {**it["props"], "marking": it.get("marking")}}
