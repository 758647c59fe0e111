"""Read endpoints behind the web workspace's layers and views.

Map layers (GeoJSON, aggregated or decimated on the server): sites, tracks,
corridors, crossings, maritime events and, in demo mode, the scenario's ground
truth. Tables (paginated): tracks, corridors, crossings, maritime events,
sorties with their compliance verdict. The per-partner compliance report as
JSON, CSV or HTML. Background jobs (ingest, analysis) with progress.

Every item a partner's user can reach passes :meth:`AppState.release` before
it is shaped into a response, so the egress policy decides and the
dissemination is logged. Ground truth, jobs and raw lake data stay with this
node's own users.
"""

from __future__ import annotations

import csv
import json
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import h3
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from sqlalchemy import Table, select

from atalaya.api.deps import AppState, PageDep, StateDep, UserDep, page, released_page
from atalaya.api.routes_map import Body, Memo, send
from atalaya.api.security import content_disposition, neutralise_csv, party_code, style_hashes_csp
from atalaya.api.users import User
from atalaya.share.egress import Release
from atalaya.store.knowledge import schema as ks

router = APIRouter(tags=["layers"])

MAX_FEATURES = 20_000
"""Upper bound on features in one map layer response."""
MAX_LINE_POINTS = 400
"""Vertices kept per track line on the map (decimated evenly)."""
MAX_JOBS = 200
"""Finished jobs kept in memory (oldest dropped first)."""

DayQ = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="Only this UTC day (YYYY-MM-DD)")]


# --------------------------------------------------------------------------- helpers


def _own(state: AppState, user: User) -> bool:
    return user.party == state.workspace.party


def _require_own(state: AppState, user: User, what: str) -> None:
    if not _own(state, user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"{what} is not released to partner users")


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, bytes):
        return None
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def _query(state: AppState, table: Table, *where: Any, order: Any = None) -> list[dict[str, Any]]:
    q = select(table)
    for w in where:
        q = q.where(w)
    if order is not None:
        q = q.order_by(*order) if isinstance(order, tuple) else q.order_by(order)
    with state.store.engine.connect() as conn:
        return [{k: _jsonable(v) for k, v in r._mapping.items()} for r in conn.execute(q)]


def _day_bounds(day: str) -> tuple[datetime, datetime]:
    try:
        d0 = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"bad day {day!r}: use YYYY-MM-DD") from None
    return d0, d0 + timedelta(days=1)


def _overlaps(row: dict[str, Any], day: str | None, start: str = "start", end: str = "end") -> bool:
    """Whether an item's [start, end] (ISO text) touches the day; items without times always show."""
    if not day:
        return True
    d0, d1 = _day_bounds(day)
    s, e = row.get(start), row.get(end) or row.get(start)
    if not s:
        return True
    try:
        ts = datetime.fromisoformat(str(s))
        te = datetime.fromisoformat(str(e))
    except ValueError:
        return True
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    te = te if te.tzinfo else te.replace(tzinfo=UTC)
    return ts < d1 and te >= d0


def _fc(features: list[dict[str, Any]], **extra: Any) -> Any:
    """A FeatureCollection response, encoded directly (large coordinate lists skip FastAPI's per-value encoder)."""
    body = json.dumps({"type": "FeatureCollection", "features": features, **extra}, separators=(",", ":"))
    return Response(body, media_type="application/geo+json")


def _decimate(coords: list[list[float]], n: int = MAX_LINE_POINTS) -> list[list[float]]:
    if len(coords) <= n:
        return coords
    idx = np.unique(np.r_[np.linspace(0, len(coords) - 1, n).astype(int), len(coords) - 1])
    return [coords[i] for i in idx.tolist()]


def _release(state: AppState, user: User, kind: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """:meth:`AppState.release`: the egress chokepoint (a partner release is logged once per content)."""
    return state.release(user, kind, items)


class _FileCache:
    """Memoises derived data keyed by the mtimes of the files it came from (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[Any, tuple[Any, Any]] = {}

    def get(self, key: Any, files: list[Path], build: Callable[[], Any]) -> Any:
        stamp = tuple((str(p), p.stat().st_mtime_ns) for p in files if p.exists())
        with self._lock:
            hit = self._data.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = build()
        with self._lock:
            if len(self._data) > 64:
                self._data.clear()
            self._data[key] = (stamp, value)
        return value


_cache = _FileCache()
_lines_memo = Memo(8)


def _read_table(path: Path) -> list[dict[str, Any]]:
    """Rows of a Parquet, JSON (list or FeatureCollection), JSON Lines or CSV file."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        t = pq.read_table(path)
        return [{k: _jsonable(v) for k, v in r.items()} for r in t.to_pylist()]
    if suffix in (".json", ".geojson"):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("type") == "FeatureCollection":
            out = []
            for f in data.get("features", []):
                props = dict(f.get("properties") or {})
                geom = f.get("geometry") or {}
                if geom.get("type") == "Point":
                    props.setdefault("lon", geom["coordinates"][0])
                    props.setdefault("lat", geom["coordinates"][1])
                out.append(props)
            return out
        if isinstance(data, dict):
            data = data.get("events") or data.get("items") or []
        return [dict(d) for d in data if isinstance(d, dict)]
    if suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            return [dict(r) for r in csv.DictReader(fh)]
    return []


# --------------------------------------------------------------------------- sites (map)


@router.get("/api/map/sites")
def map_sites(
    state: StateDep, user: UserDep, min_score: float = 0.0, status_: Annotated[str | None, Query(alias="status")] = None
) -> Any:
    """Ranked sites as GeoJSON points (``score`` sizes the circle), released to the caller."""
    where = [ks.sites.c.score >= min_score]
    if status_:
        where.append(ks.sites.c.status == status_)
    rows = _release(
        state, user, "sites", _query(state, ks.sites, *where, order=(ks.sites.c.score.desc(), ks.sites.c.id))
    )
    feats = [
        {
            "type": "Feature",
            "id": i,
            "properties": {
                "id": r["id"],
                "kind": r["kind"],
                "score": r.get("score") or 0.0,
                "rank": r.get("rank"),
                "status": r.get("status"),
                "first_seen": r.get("first_seen"),
                "last_seen": r.get("last_seen"),
            },
            "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
        }
        for i, r in enumerate(rows[:MAX_FEATURES])
    ]
    return _fc(feats, total=len(rows))


# --------------------------------------------------------------------------- tracks


def _track_summary(r: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in r.items() if k != "geometry"}


def _tracks_from_files(state: AppState) -> list[dict[str, Any]]:
    """Track lines from ``WORKSPACE/analysis/tracks/*.parquet`` (point rows), when the table has no geometry."""
    d = state.workspace.root / "analysis" / "tracks"
    files = sorted(d.glob("*.parquet")) if d.is_dir() else []

    def build() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for f in files:
            t = pq.read_table(f)
            names = set(t.column_names)
            key = next((k for k in ("track_id", "id", "object_id") if k in names), None)
            if key is None or not {"lon", "lat"} <= names:
                continue
            if "time" in names:
                t = t.sort_by([(key, "ascending"), ("time", "ascending")])
            ids = np.asarray(t.column(key).to_pylist(), dtype=object)
            lon = t.column("lon").to_numpy(zero_copy_only=False)
            lat = t.column("lat").to_numpy(zero_copy_only=False)
            times = t.column("time").to_pylist() if "time" in names else [None] * len(ids)
            if not len(ids):
                continue
            starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
            ends = np.r_[starts[1:], len(ids)]
            for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
                coords = np.column_stack([lon[s:e], lat[s:e]]).round(5).tolist()
                out.append(
                    {
                        "id": str(ids[s]),
                        "kind": "track",
                        "start": _jsonable(times[s]),
                        "end": _jsonable(times[e - 1]),
                        "n_points": e - s,
                        "geometry": json.dumps({"type": "LineString", "coordinates": _decimate(coords)}),
                        "marking": "TLP:AMBER",
                    }
                )
        return out

    rows: list[dict[str, Any]] = _cache.get(("tracks-files",), files, build)
    return rows


def _all_tracks(state: AppState, kind: str | None) -> list[dict[str, Any]]:
    where = [ks.tracks.c.kind == kind] if kind else []
    rows = _query(state, ks.tracks, *where, order=(ks.tracks.c.start, ks.tracks.c.id))
    if not rows:
        rows = [r for r in _tracks_from_files(state) if not kind or r.get("kind") == kind]
    return rows


@router.get("/api/tracks")
def list_tracks(
    state: StateDep, user: UserDep, p: PageDep, kind: str | None = None, day: DayQ = None
) -> dict[str, Any]:
    """Fused tracks (summaries without geometry), paginated."""
    rows = [_track_summary(r) for r in _all_tracks(state, kind) if _overlaps(r, day)]
    return released_page(state, user, "tracks", rows, p)


@router.get("/api/tracks/{track_id}")
def get_track(track_id: str, state: StateDep, user: UserDep) -> dict[str, Any]:
    """One track with its geometry, attributes and provenance."""
    rows = _query(state, ks.tracks, ks.tracks.c.id == track_id)
    if not rows:
        rows = [r for r in _tracks_from_files(state) if r["id"] == track_id]
    rows = _release(state, user, "tracks", rows)
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no track {track_id}")
    r = dict(rows[0])
    if isinstance(r.get("geometry"), str):
        r["geometry"] = json.loads(r["geometry"])
    return r


@dataclass(frozen=True, kw_only=True)
class _TrackLines:
    """The stored track lines parsed, decimated and encoded once per state of the tracks table."""

    rows: list[dict[str, Any]]
    """Track summaries (no geometry), longest first (ties: start, id), for release and filtering."""
    features: list[str]
    """Each track's feature after its ``id`` member (``,"properties":…,"geometry":…}``), same order."""
    kind: npt.NDArray[np.str_]
    """Track kind per row."""
    start: npt.NDArray[np.float64]
    """Start (epoch seconds; NaN when unknown: shown on every day)."""
    end: npt.NDArray[np.float64]
    """End (epoch seconds; the start when unknown)."""


def _epoch(v: Any) -> float:
    if not v:
        return float("nan")
    try:
        t = datetime.fromisoformat(str(v))
    except ValueError:
        return float("nan")
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def _tracks_stamp(state: AppState) -> Any:
    """Changes whenever the tracks table (or the track point files it falls back to) changes."""
    from sqlalchemy import func

    c = ks.tracks.c
    # columns stored before the geometry, so SQLite need not read the lines' overflow pages
    q = select(func.count(), func.max(c.id), func.min(c.id), func.sum(c.n_points), func.max(c.end), func.min(c.start))
    with state.store.engine.connect() as conn:
        table = tuple(map(str, conn.execute(q).one()))
    d = state.workspace.root / "analysis" / "tracks"
    files = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(d.glob("*.parquet"))) if d.is_dir() else ()
    return table, files


def _track_lines(state: AppState, stamp: Any) -> _TrackLines:
    def build() -> _TrackLines:
        rows = [r for r in _all_tracks(state, None) if r.get("geometry")]
        rows.sort(key=lambda r: -(r.get("n_points") or 0))  # stable: ties keep (start, id) order
        summaries, feats = [], []
        for r in rows:
            g = json.loads(r["geometry"]) if isinstance(r["geometry"], str) else r["geometry"]
            if g.get("type") == "LineString":
                g = {"type": "LineString", "coordinates": _decimate(g["coordinates"])}
            props = {
                "id": r["id"],
                "kind": r.get("kind"),
                "ident": r.get("ident"),
                "start": r.get("start"),
                "end": r.get("end"),
                "length_km": r.get("length_km"),
            }
            geometry = json.dumps(g, separators=(",", ":"))
            feats.append(f',"properties":{json.dumps(props, separators=(",", ":"))},"geometry":{geometry}}}')
            summaries.append(_track_summary(r))
        start = np.array([_epoch(r.get("start")) for r in summaries], dtype=np.float64)
        end = np.array([_epoch(r.get("end")) for r in summaries], dtype=np.float64)
        end = np.where(np.isnan(end), start, end)
        kind = np.array([str(r.get("kind")) for r in summaries], dtype=np.str_)
        return _TrackLines(rows=summaries, features=feats, kind=kind, start=start, end=end)

    return _lines_memo.get(("track-lines", stamp), build)


@router.get("/api/map/tracks")
def map_tracks(
    request: Request,
    state: StateDep,
    user: UserDep,
    day: DayQ = None,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_FEATURES)] = 10_000,
) -> Any:
    """Track lines (simplified on the server), longest first, at most ``limit``."""
    stamp = (str(state.workspace.root), _tracks_stamp(state))
    lines = _track_lines(state, stamp)
    keep = np.ones(len(lines.rows), dtype=bool)
    if kind:
        keep &= lines.kind == kind
    if day:
        d0, d1 = (t.timestamp() for t in _day_bounds(day))
        keep &= np.isnan(lines.start) | ((lines.start < d1) & (lines.end >= d0))
    idx = np.flatnonzero(keep).tolist()
    items = [lines.rows[i] for i in idx]
    if not _own(state, user):  # release by the markings stored now, not those of when the lines were cached
        with state.store.engine.connect() as conn:
            marks = {r.id: r.marking for r in conn.execute(select(ks.tracks.c.id, ks.tracks.c.marking))}
        items = [{**r, "marking": marks.get(r["id"], r.get("marking"))} for r in items]
    position = {str(r["id"]): i for r, i in zip(items, idx, strict=True)}
    released = _release(state, user, "tracks", items)

    def build() -> Body:
        feats = ",".join(
            f'{{"type":"Feature","id":{n}' + lines.features[position[str(r["id"])]]
            for n, r in enumerate(released[:limit])
        )
        return Body.of(f'{{"type":"FeatureCollection","features":[{feats}],"total":{len(released)}}}'.encode())

    if not _own(state, user):  # what a partner gets depends on the agreements in force: build it each time
        return send(request, build())
    return send(request, _lines_memo.get(("tracks", stamp, day, kind, limit), build))


# --------------------------------------------------------------------------- corridors and crossings


def _corridor_geometry(cells: list[str]) -> dict[str, Any] | None:
    valid = [c for c in cells if isinstance(c, str) and h3.is_valid_cell(c)]
    if not valid:
        return None
    geo: dict[str, Any] = h3.cells_to_geo(valid)
    return geo


@router.get("/api/corridors")
def list_corridors(state: StateDep, user: UserDep, p: PageDep) -> dict[str, Any]:
    """Corridors (H3 cell flows) ranked by volume, paginated."""
    rows = _query(state, ks.corridors, order=(ks.corridors.c.volume.desc(), ks.corridors.c.id))
    for r in rows:
        r["n_cells"] = len(r.get("h3_cells") or [])
    return released_page(state, user, "corridors", rows, p)


@router.get("/api/map/corridors")
def map_corridors(state: StateDep, user: UserDep) -> Any:
    """Corridors as (multi)polygons of their H3 cells."""
    rows = _release(state, user, "corridors", _query(state, ks.corridors, order=ks.corridors.c.volume.desc()))
    feats = []
    for i, r in enumerate(rows[:MAX_FEATURES]):
        g = _corridor_geometry(list(r.get("h3_cells") or []))
        if g is None:
            continue
        feats.append(
            {
                "type": "Feature",
                "id": i,
                "properties": {
                    "id": r["id"],
                    "kind": r.get("kind"),
                    "volume": r.get("volume") or 0,
                    "rank": r.get("rank"),
                },
                "geometry": g,
            }
        )
    return _fc(feats, total=len(rows))


@router.get("/api/crossings")
def list_crossings(state: StateDep, user: UserDep, p: PageDep) -> dict[str, Any]:
    """Border-crossing hot spots by count, paginated."""
    rows = _query(state, ks.crossings, order=(ks.crossings.c.count.desc(), ks.crossings.c.id))
    return released_page(state, user, "crossings", rows, p)


@router.get("/api/map/crossings")
def map_crossings(state: StateDep, user: UserDep, day: DayQ = None) -> Any:
    """Crossing hot spots as points (``count`` sizes them)."""
    rows = [r for r in _query(state, ks.crossings) if _overlaps(r, day, "first_seen", "last_seen")]
    rows = _release(state, user, "crossings", rows)
    feats = [
        {
            "type": "Feature",
            "id": i,
            "properties": {
                "id": r["id"],
                "count": r.get("count") or 0,
                "first_seen": r.get("first_seen"),
                "last_seen": r.get("last_seen"),
            },
            "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
        }
        for i, r in enumerate(rows[:MAX_FEATURES])
    ]
    return _fc(feats, total=len(rows))


# --------------------------------------------------------------------------- maritime events


_EVENT_KINDS = {"dark_gaps": "dark_gap", "gaps": "dark_gap", "rendezvous": "rendezvous", "loiters": "loitering"}
"""Event kind by file stem, for files whose rows carry no ``kind``."""


def _maritime_events(state: AppState) -> list[dict[str, Any]]:
    """Events from ``WORKSPACE/analysis/maritime/`` (Parquet/JSON/GeoJSON/CSV) and the track events of
    ``WORKSPACE/analysis/events/`` (position jumps), normalised."""
    files: list[Path] = []
    for d in (state.workspace.root / "analysis" / "maritime", state.workspace.root / "analysis" / "events"):
        files += sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")) if d.is_dir() else []

    def build() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for f in files:
            default_kind = _EVENT_KINDS.get(f.stem, f.stem)
            for n, r in enumerate(_read_table(f)):
                lon = r.get("lon", r.get("start_lon"))
                lat = r.get("lat", r.get("start_lat"))
                if lon is None or lat is None:
                    continue
                ev = dict(r)
                ev["id"] = str(
                    r.get("id") or r.get("event_id") or r.get("rendezvous_id") or r.get("gap_id") or f"{f.stem}-{n}"
                )
                ev["kind"] = str(r.get("kind") or r.get("type") or default_kind)
                ev["lon"], ev["lat"] = float(lon), float(lat)
                ev.setdefault("marking", "TLP:AMBER")
                out.append(ev)
        out.sort(key=lambda e: (str(e.get("start") or ""), e["id"]))
        return out

    rows: list[dict[str, Any]] = _cache.get(("maritime",), files, build)
    return rows


@router.get("/api/maritime/events")
def list_maritime(
    state: StateDep, user: UserDep, p: PageDep, kind: str | None = None, day: DayQ = None
) -> dict[str, Any]:
    """Maritime events (dark gaps, rendezvous, loitering), paginated."""
    rows = [dict(r) for r in _maritime_events(state) if (not kind or r["kind"] == kind) and _overlaps(r, day)]
    return released_page(state, user, "maritime", rows, p)


@router.get("/api/map/maritime")
def map_maritime(state: StateDep, user: UserDep, day: DayQ = None) -> Any:
    """Maritime events as points (a dark gap also as a dashed line from where AIS stopped to where it resumed)."""
    rows = _release(state, user, "maritime", [dict(r) for r in _maritime_events(state) if _overlaps(r, day)])
    feats: list[dict[str, Any]] = []
    for r in rows[:MAX_FEATURES]:
        props = {k: v for k, v in r.items() if not isinstance(v, dict | list)}
        feats.append(
            {"type": "Feature", "properties": props, "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]}}
        )
        if r.get("end_lon") is not None and r.get("end_lat") is not None:
            feats.append(
                {
                    "type": "Feature",
                    "properties": {**props, "segment": True},
                    "geometry": {
                        "type": "LineString",
                        "coordinates": [[r["lon"], r["lat"]], [float(r["end_lon"]), float(r["end_lat"])]],
                    },
                }
            )
    return _fc(feats, total=len(rows))


# --------------------------------------------------------------------------- sorties and compliance


_check_lock = threading.Lock()
_check_cache: dict[str, tuple[Any, Any]] = {}


def _check_key(state: AppState) -> Any:
    from sqlalchemy import func

    commits = state.workspace.lake_dir / "_commits"
    lake_stamp = tuple(sorted(p.name for p in commits.glob("*.json"))) if commits.is_dir() else ()
    with state.store.engine.connect() as conn:
        n_sorties = conn.execute(select(func.count()).select_from(ks.sorties)).scalar_one()
        agreements = tuple(conn.execute(select(ks.agreements.c.sha256, ks.agreements.c.status)).all())
    return (str(state.workspace.root), hash(lake_stamp), n_sorties, hash(agreements))


def _checked(state: AppState) -> Any:
    """The sovereignty service's check of every sortie, re-run only when the lake, sorties or agreements change."""
    from atalaya.sovereignty import service

    key = _check_key(state)
    with _check_lock:
        hit = _check_cache.get(str(state.workspace.root))
        if hit is not None and hit[0] == key:
            return hit[1]
        res = service.check(state.workspace, state.store)
        _check_cache[str(state.workspace.root)] = (key, res)
        return res


def _sortie_release(state: AppState, user: User) -> Release:
    from atalaya.sovereignty import service

    return state.release_of(user, "sorties", service.sortie_views(state.store))


def _why_empty(state: AppState, user: User, rel: Release, what: str) -> str | None:
    """Why a partner's view is empty, in words (``None`` when it is not empty or the user is this node's)."""
    if rel.items or _own(state, user):
        return None
    if not rel.withheld:
        return f"nothing flown over {user.party}: no {what} over its territory are recorded"
    return rel.why_empty


@router.get("/api/sorties")
def list_sorties(
    state: StateDep,
    user: UserDep,
    p: PageDep,
    compliance: Annotated[
        Literal["compliant", "violation", "unverifiable", "no-host", "unchecked"] | None,
        Query(description="Only sorties with this verdict status"),
    ] = None,
    day: DayQ = None,
) -> dict[str, Any]:
    """Sorties with their stored verdict (compliant, violation, unverifiable, no-host, or unchecked), paginated.

    A partner's user sees every sortie over its party's territory (accountability is never withheld); an
    empty page says why in ``why_empty``.
    """
    rel = _sortie_release(state, user)
    rows = [
        {k: v for k, v in r.items() if k != "verdict"}
        for r in rel.items
        if (compliance is None or r["status"] == compliance) and _overlaps(r, day, "takeoff", "landing")
    ]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return {
        **page(rows[p.offset : p.offset + p.limit], len(rows), p),
        "counts": counts,
        "why_empty": _why_empty(state, user, rel, "sorties") if not rows else None,
    }


@router.get("/api/sorties/{sortie_id}")
def get_sortie(sortie_id: str, state: StateDep, user: UserDep) -> dict[str, Any]:
    """One sortie: manifest and its stored verdict with violations and evidence."""
    rows = [r for r in _sortie_release(state, user).items if r["id"] == sortie_id]
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no sortie {sortie_id}")
    row: dict[str, Any] = rows[0]
    return row


@router.get("/api/reports/partner")
def get_partner_report(
    state: StateDep,
    user: UserDep,
    party: Annotated[str | None, Query(max_length=16, pattern=r"^[A-Za-z]{2,16}$")] = None,
    format: Annotated[Literal["json", "csv", "html"], Query()] = "json",
) -> Any:
    """Per-partner overflight and compliance report (a partner's user always gets its own party's).

    Made by the sovereignty service and released through the egress chokepoint (logged as a dissemination).
    """
    import tempfile

    from atalaya.core.errors import ValidationError
    from atalaya.sovereignty import service

    try:
        target = user.party if not _own(state, user) else (party_code(party) if party else "")
    except ValueError as e:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"party: {e}") from e
    if not target:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "give ?party=CODE (the partner, e.g. MEX)")
    try:
        res = _checked(state)
    except ValidationError as e:
        raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from e
    with tempfile.TemporaryDirectory(dir=state.workspace.root) as tmp:
        try:
            with state.log_lock:
                rep = service.report(state.workspace, state.store, partner=target, out_dir=Path(tmp),
                                     user=user.username, result=res)  # fmt: skip
        except ValidationError as e:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(e)) from e
        if format == "json":
            return {**rep.data, "party": rep.partner, "node_party": state.workspace.party,
                    "release": rep.release.to_dict()}  # fmt: skip
        body = rep.paths[format].read_bytes()
    if format == "html":
        html = body.decode("utf-8")
        csp = {"Content-Security-Policy": style_hashes_csp(html), "X-Frame-Options": "SAMEORIGIN"}
        return HTMLResponse(html, headers=csp)
    return Response(
        neutralise_csv(body.decode("utf-8")),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": content_disposition(f"compliance-{rep.partner}.csv")},
    )


# --------------------------------------------------------------------------- time slider


@router.get("/api/map/days")
def days(state: StateDep, user: UserDep) -> dict[str, Any]:
    """The UTC days with data (for the time slider): lake partitions for own users, sortie days for partners."""
    if _own(state, user):
        obs = state.workspace.lake_dir / "observations"
        ds = sorted(p.name.removeprefix("day=") for p in obs.glob("day=*")) if obs.is_dir() else []
    else:
        ds = sorted({str(r.get("takeoff") or "")[:10] for r in _sortie_release(state, user).items} - {""})
    return {"days": ds}


# --------------------------------------------------------------------------- ground truth (demo mode)


def _truth_dir(state: AppState, user: User) -> Path:
    _require_own(state, user, "scenario ground truth")
    if state.truth_dir is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "no ground truth loaded: start the server with `atalaya serve --truth DIR`"
        )
    return state.truth_dir


@router.get("/api/map/truth/sites")
def truth_sites(state: StateDep, user: UserDep) -> Any:
    """True hidden sites of the demo scenario (``truth/sites.parquet``)."""
    path = _truth_dir(state, user) / "sites.parquet"
    if not path.is_file():
        return _fc([])

    def build() -> list[dict[str, Any]]:
        return [
            {
                "type": "Feature",
                "properties": {k: v for k, v in r.items() if k not in ("lon", "lat") and not isinstance(v, list)},
                "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
            }
            for r in _read_table(path)
        ]

    return _fc(_cache.get(("truth-sites", str(path)), [path], build))


@router.get("/api/map/truth/tracks")
def truth_tracks(
    state: StateDep,
    user: UserDep,
    day: DayQ = None,
    limit: Annotated[int, Query(ge=1, le=MAX_FEATURES)] = 5000,
) -> Any:
    """True tracks of moving objects for one day (decimated lines; sorties' platforms left out)."""
    d = _truth_dir(state, user) / "tracks"
    files = sorted(d.glob("*.parquet")) if d.is_dir() else []
    if day:
        files = [f for f in files if f.stem == day]
    elif files:
        files = files[:1]
    if not files:
        return _fc([])

    def build() -> list[dict[str, Any]]:
        t = pa.concat_tables([pq.read_table(f, columns=["object_id", "kind", "time", "lon", "lat"]) for f in files])
        kinds = np.asarray(t.column("kind").to_pylist(), dtype=object)
        t = t.filter(pa.array(kinds != "platform"))
        t = t.sort_by([("object_id", "ascending"), ("time", "ascending")])
        ids = np.asarray(t.column("object_id").to_pylist(), dtype=object)
        kinds = np.asarray(t.column("kind").to_pylist(), dtype=object)
        lon = t.column("lon").to_numpy(zero_copy_only=False)
        lat = t.column("lat").to_numpy(zero_copy_only=False)
        feats: list[dict[str, Any]] = []
        if not len(ids):
            return feats
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        ends = np.r_[starts[1:], len(ids)]
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            if e - s < 2:
                continue
            coords = _decimate(np.column_stack([lon[s:e], lat[s:e]]).round(5).tolist(), 200)
            feats.append(
                {
                    "type": "Feature",
                    "properties": {"object_id": str(ids[s]), "kind": str(kinds[s]), "truth": True},
                    "geometry": {"type": "LineString", "coordinates": coords},
                }
            )
        return feats

    feats: list[dict[str, Any]] = _cache.get(("truth-tracks", tuple(map(str, files))), files, build)
    return _fc(feats[:limit], total=len(feats))


# --------------------------------------------------------------------------- jobs


class JobRequest(BaseModel):
    kind: Literal["ingest", "analyze"]
    """``ingest``: read ``path`` (file or directory on the server) into the lake; ``analyze``: sites and compliance."""
    path: str | None = None
    """Server-side path to ingest (ingest jobs)."""


_jobs_lock = threading.Lock()


def _job_update(state: AppState, job_id: str, **values: Any) -> None:
    with _jobs_lock:
        state.jobs[job_id].update(values)


def _run_ingest(state: AppState, job_id: str, path: Path) -> dict[str, Any]:
    """An ingest job: under the lake's writer lock, like ``atalaya ingest`` (waits ``lock_wait``, else busy)."""
    from atalaya.core.markings import Marking
    from atalaya.ingest.pipeline import Ingestor, expand_paths
    from atalaya.ingest.records import load_records
    from atalaya.store.knowledge import KnowledgeStore

    store = KnowledgeStore.open(state.workspace.db_url)
    try:
        marking = Marking.from_text(f"TLP:AMBER;ORIG:{state.workspace.party}")
        ing = Ingestor(workspace=state.workspace, store=store, marking=marking)
        files = expand_paths([path])
        total = max(1, sum(f.stat().st_size for f in files))
        done = 0
        totals = {"files": 0, "accepted": 0, "quarantined": 0, "duplicates": 0, "skipped": 0, "failed": 0}

        def tick(n: int) -> None:
            nonlocal done
            done += n
            _job_update(state, job_id, progress=min(0.99, done / total))

        _job_update(state, job_id, message="waiting for the lake's writer lock")
        with ing.writing():
            for f in files:
                before = done
                _job_update(state, job_id, message=f"reading {f.name}")
                res = ing.ingest_file(f, progress=tick)
                done = before + res.bytes
                _job_update(state, job_id, progress=min(0.99, done / total))
                totals["files"] += 1
                totals["accepted"] += res.accepted
                totals["quarantined"] += res.quarantined
                totals["duplicates"] += res.duplicates
                if res.status in ("skipped", "failed"):
                    totals[res.status] += 1
            records = path / "records" if path.is_dir() else None
            if records is not None and records.is_dir():
                _job_update(state, job_id, message="importing records")
                load_records(store, records, marking=marking)
        return totals
    finally:
        store.close()


def _run_analyze(state: AppState, job_id: str) -> dict[str, Any]:
    """Every registered analytic, then the sovereignty service's check (verdicts stored, records logged)."""
    from atalaya.analytics import ANALYTICS, run_analytics
    from atalaya.core.errors import ValidationError
    from atalaya.sovereignty import service

    steps = [*ANALYTICS, "compliance"]
    out = run_analytics(
        state.workspace, state.store, list(ANALYTICS), progress=False,
        on_step=lambda name, i: _job_update(state, job_id, message=name, progress=i / len(steps)),
    )  # fmt: skip
    out = {n: {k: v for k, v in r.items() if isinstance(v, int | float | str | dict)} for n, r in out.items()}
    _job_update(state, job_id, message="compliance", progress=(len(steps) - 1) / len(steps))
    try:
        res = service.check(state.workspace, state.store)
        out["compliance"] = {"sorties": len(res.verdicts), **res.counts(), "log": res.log}
    except ValidationError as e:
        out["compliance"] = {"skipped": str(e)}
    return out


def _job_thread(state: AppState, job_id: str, req: JobRequest) -> None:
    _job_update(state, job_id, status="running", started_at=datetime.now(UTC).isoformat())
    try:
        if req.kind == "ingest":
            result = _run_ingest(state, job_id, Path(str(req.path)))
        else:
            result = _run_analyze(state, job_id)
        _job_update(state, job_id, status="done", progress=1.0, result=result, message="done")
    except Exception as e:
        _job_update(
            state, job_id, status="failed", error=f"{type(e).__name__}: {e}", trace=traceback.format_exc(limit=5)
        )
    finally:
        _job_update(state, job_id, finished_at=datetime.now(UTC).isoformat())


def start_job(state: AppState, req: JobRequest, user: str, *, wait: bool = False) -> dict[str, Any]:
    """Start a background job in a thread and return its record (``wait``: run to completion first)."""
    job_id = uuid.uuid4().hex[:12]
    job: dict[str, Any] = {
        "id": job_id,
        "kind": req.kind,
        "path": req.path,
        "user": user,
        "status": "queued",
        "progress": 0.0,
        "message": "",
        "created_at": datetime.now(UTC).isoformat(),
    }
    with _jobs_lock:
        finished = [k for k, j in state.jobs.items() if j["status"] in ("done", "failed")]
        for k in finished[: max(0, len(state.jobs) - MAX_JOBS)]:
            del state.jobs[k]
        state.jobs[job_id] = job
    t = threading.Thread(target=_job_thread, args=(state, job_id, req), name=f"job-{job_id}", daemon=True)
    t.start()
    if wait:
        t.join()
    with _jobs_lock:
        return dict(state.jobs[job_id])


@router.post("/api/jobs", status_code=status.HTTP_202_ACCEPTED, tags=["jobs"])
def create_job(body: JobRequest, state: StateDep, user: UserDep) -> dict[str, Any]:
    """Start an ingest (``{"kind": "ingest", "path": …}``) or analysis run; admins of this node only."""
    if user.role != "admin" or not _own(state, user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "starting jobs needs an admin of this node's party")
    if body.kind == "ingest" and (not body.path or not Path(body.path).exists()):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"no such path on the server: {body.path!r}; give a file or directory readable by the server",
        )
    return start_job(state, body, user.username)


@router.get("/api/jobs", tags=["jobs"])
def list_jobs(state: StateDep, user: UserDep, p: PageDep) -> dict[str, Any]:
    """Jobs, newest first, with progress (0–1) and status (queued, running, done, failed)."""
    _require_own(state, user, "the job list")
    with _jobs_lock:
        rows = [dict(j) for j in reversed(list(state.jobs.values()))]
    return page(rows[p.offset : p.offset + p.limit], len(rows), p)


@router.get("/api/jobs/{job_id}", tags=["jobs"])
def get_job(job_id: str, state: StateDep, user: UserDep) -> dict[str, Any]:
    """One job."""
    _require_own(state, user, "the job list")
    with _jobs_lock:
        job = state.jobs.get(job_id)
        if job is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id}")
        return dict(job)
