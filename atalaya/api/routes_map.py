"""Map layers, aggregated on the server so large data stays smooth: territories, detection density, sorties."""

from __future__ import annotations

import json
import threading
from functools import cache
from typing import Annotated, Any

import h3
import numpy as np
import shapely
from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import Response
from sqlalchemy import select

from atalaya.api.deps import AppState, StateDep, UserDep
from atalaya.store.knowledge import schema as ks

router = APIRouter(prefix="/api/map", tags=["map"])

MAX_TRACK_POINTS = 1500


@cache
def _territories_geojson(level: str, tolerance: float) -> str:
    from atalaya.geo.territories import load_territories

    t = load_territories()
    feats = []
    for i in range(len(t.ids)):
        if t.levels[i] != level:
            continue
        g = shapely.simplify(t.geoms[i], tolerance, preserve_topology=True)
        feats.append(
            {
                "type": "Feature",
                "id": str(t.ids[i]),
                "properties": {"id": str(t.ids[i]), "name": str(t.names[i]), "owner": str(t.owners[i])},
                "geometry": json.loads(shapely.to_geojson(g)),
            }
        )
    return json.dumps({"type": "FeatureCollection", "features": feats})


@router.get("/territories")
def territories(user: UserDep, level: Annotated[str, Query(pattern="^(country|state)$")] = "country") -> Any:
    """Territories (countries with territorial sea, or states) as simplified GeoJSON; also the offline basemap."""
    return Response(_territories_geojson(level, 0.01), media_type="application/geo+json")


@router.get("/detections")
def detections(
    state: StateDep,
    user: UserDep,
    resolution: Annotated[int, Query(ge=3, le=9)] = 6,
    day: str | None = None,
    sensor: str | None = None,
) -> Response:
    """Detection density on an H3 grid (counts per cell), so a million detections draw as a few thousand hexes."""
    if user.party != state.workspace.party:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "raw detections are not released to partner users")
    key = ("detections", _lake_stamp(state), resolution, day, sensor)
    body = _cached(key, lambda: json.dumps(_detections(state, resolution, day, sensor)).encode())
    return Response(body, media_type="application/json")


def _lake_stamp(state: AppState) -> tuple[str, ...]:
    """Identifies the lake's committed content (one marker per committed ingest unit)."""
    commits = state.workspace.lake_dir / "_commits"
    return (str(commits), *sorted(p.name for p in commits.glob("*.json"))) if commits.is_dir() else ()


_cache: dict[Any, Any] = {}
_cache_lock = threading.Lock()


def _cached(key: Any, build: Any) -> Any:
    """A small process-wide memo for aggregates over the (append-only) lake; keys carry the lake stamp."""
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    value = build()
    with _cache_lock:
        if len(_cache) > 128:
            _cache.clear()
        _cache[key] = value
    return value


def _detections(state: AppState, resolution: int, day: str | None, sensor: str | None) -> dict[str, Any]:
    where = ["ident_kind IS DISTINCT FROM 'sortie'"]
    params: list[Any] = []
    if day:
        where.append("day = ?")
        params.append(day)
    if sensor:
        where.append("CAST(sensor AS VARCHAR) = ?")
        params.append(sensor.upper())
    tbl = state.lake.query(f"SELECT lon, lat FROM observations WHERE {' AND '.join(where)}", params)
    lon = tbl.column("lon").to_numpy()
    lat = tbl.column("lat").to_numpy()
    feats = []
    if len(lon):
        # bin on a fine lon/lat grid first (vectorised), then map occupied bins to H3 cells
        q = 0.01
        # offset lon bins to be non-negative so the key decodes back exactly (lon in [-180, 180] → [0, 36000])
        key = np.round(lat / q).astype(np.int64) * 100_000 + (np.round(lon / q).astype(np.int64) + 18_000)
        uniq, counts = np.unique(key, return_counts=True)
        blat = (uniq // 100_000) * q
        blon = (uniq % 100_000 - 18_000) * q
        cells: dict[str, int] = {}
        for la, lo, c in zip(blat.tolist(), blon.tolist(), counts.tolist(), strict=True):
            cell = h3.latlng_to_cell(la, lo, resolution)
            cells[cell] = cells.get(cell, 0) + c
        for cell, c in cells.items():
            ring = [[p[1], p[0]] for p in h3.cell_to_boundary(cell)]
            ring.append(ring[0])
            feats.append(
                {
                    "type": "Feature",
                    "properties": {"cell": cell, "count": c},
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                }
            )
    return {"type": "FeatureCollection", "features": feats, "total": len(lon)}


@router.get("/sorties")
def sorties(state: StateDep, user: UserDep, day: str | None = None) -> Any:
    """Sortie tracks as GeoJSON lines (decimated), with their compliance verdict for colouring."""
    with state.store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(ks.sorties))]
    rows = state.release(user, "sorties", rows)
    allowed = {r["id"]: r for r in rows}
    if not allowed:
        return {"type": "FeatureCollection", "features": []}
    lines = _cached(("sortie-lines", _lake_stamp(state), day), lambda: _sortie_lines(state, day))
    feats = []
    for sid, (coords, t0, t1) in lines.items():
        if sid not in allowed:
            continue
        attrs = allowed[sid].get("attrs") or {}
        feats.append(
            {
                "type": "Feature",
                "id": sid,
                "properties": {
                    "sortie_id": sid,
                    "platform_type": allowed[sid].get("platform_type"),
                    "compliance": attrs.get("compliance", "unknown"),
                    "start": t0,
                    "end": t1,
                },
                "geometry": {"type": "LineString", "coordinates": coords},
            }
        )
    body = json.dumps({"type": "FeatureCollection", "features": feats}, separators=(",", ":"))
    return Response(body, media_type="application/geo+json")


def _sortie_lines(state: AppState, day: str | None) -> dict[str, tuple[list[list[float]], float, float]]:
    """Decimated sortie tracks from the lake: id → (coordinates, start epoch, end epoch)."""
    where = "ident_kind = 'sortie'" + (" AND day = ?" if day else "")
    tbl = state.lake.query(
        f"SELECT ident, lon, lat, epoch(time) AS t FROM observations WHERE {where} ORDER BY ident, time",
        [day] if day else [],
    )
    ident = np.asarray(tbl.column("ident").to_pylist(), dtype=object)
    lon = tbl.column("lon").to_numpy()
    lat = tbl.column("lat").to_numpy()
    t = tbl.column("t").to_numpy()
    out: dict[str, tuple[list[list[float]], float, float]] = {}
    if len(ident):
        starts = np.flatnonzero(np.r_[True, ident[1:] != ident[:-1]])
        ends = np.r_[starts[1:], len(ident)]
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            step = max(1, (e - s) // MAX_TRACK_POINTS)
            sel = np.r_[np.arange(s, e, step), e - 1]
            coords = np.column_stack([lon[sel], lat[sel]]).round(5).tolist()
            out[str(ident[s])] = (coords, float(t[s]), float(t[e - 1]))
    return out
