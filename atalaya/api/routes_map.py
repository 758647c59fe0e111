"""Map layers, aggregated on the server so large data stays smooth: territories, detection density, sorties.

Responses that depend only on the data (not on the caller) are encoded once, gzip-compressed once and
served with an entity tag, so a repeated request costs a dictionary look-up (or a ``304 Not Modified``).
Cache keys carry the state of what the response was built from (the lake's commits, the table rows), so
a new ingest or analysis run is seen on the next request.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import h3
import numpy as np
import numpy.typing as npt
import shapely
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import Response
from h3.api import basic_int as h3i

from atalaya.api.deps import AppState, StateDep, UserDep

router = APIRouter(prefix="/api/map", tags=["map"])

MAX_TRACK_POINTS = 1500
"""Vertices kept per sortie line on the map (decimated evenly)."""
DETECTION_SENSORS = ("EO", "IR", "SAR", "GMTI", "SIGINT", "RADAR", "HUMINT")
"""Sensors whose observations are detections (positions reported by AIS, ADS-B, CoT or sortie tracks are not)."""
MAX_CELLS = 20_000
"""Upper bound on hexagons in one detection-density response (the densest first)."""
GZIP_LEVEL = 6
"""Compression level of cached bodies (gzip's default: most of level 9's gain at a fraction of its time)."""

T = TypeVar("T")


# --------------------------------------------------------------------------- cached, compressed bodies


@dataclass(frozen=True, kw_only=True)
class Body:
    """An encoded response body, its gzip form and its entity tag."""

    raw: bytes
    """The body as sent without compression."""
    gz: bytes
    """The body gzip-compressed (fixed mtime, so equal bodies compress equally)."""
    etag: str
    """Strong entity tag: a hash of ``raw``, quoted."""
    media_type: str
    """Content type."""

    @classmethod
    def of(cls, raw: bytes, media_type: str = "application/geo+json") -> Body:
        tag = '"' + hashlib.blake2b(raw, digest_size=16).hexdigest() + '"'
        return cls(raw=raw, gz=gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0), etag=tag, media_type=media_type)


def send(request: Request, body: Body) -> Response:
    """``body`` as a response: ``304`` when the client holds it (``If-None-Match``), gzip when accepted."""
    headers = {"ETag": body.etag, "Cache-Control": "private, no-cache", "Vary": "Accept-Encoding"}
    tags = request.headers.get("if-none-match", "")
    if tags and (tags.strip() == "*" or body.etag in (t.strip().removeprefix("W/") for t in tags.split(","))):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(body.gz, media_type=body.media_type, headers={**headers, "Content-Encoding": "gzip"})
    return Response(body.raw, media_type=body.media_type, headers=headers)


class Memo:
    """A bounded, thread-safe memo (least recently used out) that builds each key once.

    Concurrent requests for a key being built wait for that build instead of repeating it, so an expensive
    aggregate (territories, a million detections) is computed once however many clients ask at once.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._building: dict[Any, threading.Lock] = {}

    def get(self, key: Any, build: Callable[[], T]) -> T:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                value: T = self._data[key]
                return value
            lock = self._building.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._data:
                    hit: T = self._data[key]
                    return hit
            try:
                value = build()
            finally:
                with self._lock:
                    self._building.pop(key, None)
            with self._lock:
                self._data[key] = value
                while len(self._data) > self._size:
                    self._data.popitem(last=False)
            return value


_memo = Memo(64)
"""Built data: territories, detection points and densities, sortie lines."""
_views = Memo(64)
"""Response bodies per view and filter (many, each cheap to rebuild from ``_memo``)."""


def _lake_stamp(state: AppState) -> tuple[str, ...]:
    """Identifies the lake's committed content (one marker per committed ingest unit)."""
    commits = state.workspace.lake_dir / "_commits"
    return (str(commits), *sorted(p.name for p in commits.glob("*.json"))) if commits.is_dir() else ()


# --------------------------------------------------------------------------- territories


def _territories_body(level: str, tolerance: float = 0.01) -> Body:
    def build() -> Body:
        from atalaya.geo.territories import load_territories

        t = load_territories()
        feats = []
        for i in range(len(t.ids)):
            if t.levels[i] != level:
                continue
            g = shapely.simplify(t.geoms[i], tolerance, preserve_topology=True)
            props = {"id": str(t.ids[i]), "name": str(t.names[i]), "owner": str(t.owners[i])}
            feats.append(
                f'{{"type":"Feature","id":{json.dumps(str(t.ids[i]))},"properties":{json.dumps(props)},'
                f'"geometry":{shapely.to_geojson(g)}}}'
            )
        return Body.of(('{"type":"FeatureCollection","features":[' + ",".join(feats) + "]}").encode())

    return _memo.get(("territories", level, tolerance), build)


@router.get("/territories")
def territories(
    request: Request, user: UserDep, level: Annotated[str, Query(pattern="^(country|state)$")] = "country"
) -> Response:
    """Territories (countries with territorial sea, or states) as simplified GeoJSON; also the offline basemap."""
    return send(request, _territories_body(level))


def warm(state: AppState) -> None:
    """Build what the map's first page load asks for (territories take seconds in a fresh process)."""
    for level in ("country", "state"):
        _territories_body(level)
    _density(state, _lake_stamp(state), None, None, resolution_for_zoom(DEFAULT_ZOOM))


def warm_in_background(state: AppState) -> threading.Thread:
    """Start :func:`warm` in a daemon thread; requests that need a layer meanwhile wait for its one build."""
    t = threading.Thread(target=_warm_quietly, args=(state,), name="map-warm", daemon=True)
    t.start()
    return t


def _warm_quietly(state: AppState) -> None:
    try:
        warm(state)
    except Exception:  # warming is an optimisation: the request that needs the layer reports any error
        return


# --------------------------------------------------------------------------- detection density

DEFAULT_ZOOM = 4.2
"""The web workspace's initial zoom."""


def resolution_for_zoom(zoom: float) -> int:
    """The H3 resolution whose hexagons span roughly 8–20 screen pixels at a web-map ``zoom`` (clamped to 3–9).

    One H3 resolution step shrinks a hexagon's edge by √7 (≈ 2.65) and one zoom step doubles the scale,
    hence the slope ln 2 / ln √7 ≈ 0.71.

    >>> [resolution_for_zoom(z) for z in (0, 4.2, 8, 12, 20)]
    [3, 3, 6, 9, 9]
    """
    return int(min(9, max(3, round(0.71 * zoom + 0.3))))


def _edge_deg(resolution: int) -> float:
    return float(h3.average_hexagon_edge_length(resolution, unit="km")) / 111.32


@dataclass(frozen=True, kw_only=True)
class _Density:
    """Detection counts per H3 cell at one resolution, densest first; features are encoded when first sent."""

    cells: npt.NDArray[np.uint64]
    """H3 cells (integer form)."""
    lon: npt.NDArray[np.float64]
    """A point inside each cell (a grid bin's centre), longitude."""
    lat: npt.NDArray[np.float64]
    """The same point, latitude."""
    count: npt.NDArray[np.int64]
    """Detections per cell."""
    total: int
    """Detections counted."""
    encoded: dict[int, str] = field(default_factory=dict)
    """Features encoded so far, by index (a zoomed-in view needs a few of a million cells)."""

    def feature(self, i: int) -> str:
        """Cell ``i`` as an encoded GeoJSON Feature (hexagon with ``cell`` and ``count``)."""
        text = self.encoded.get(i)
        if text is None:
            c = int(self.cells[i])
            ring = [[round(p[1], 5), round(p[0], 5)] for p in h3i.cell_to_boundary(c)]
            ring.append(ring[0])
            text = (
                f'{{"type":"Feature","properties":{{"cell":"{h3i.int_to_str(c)}","count":{int(self.count[i])}}},'
                f'"geometry":{{"type":"Polygon","coordinates":[{json.dumps(ring, separators=(",", ":"))}]}}}}'
            )
            self.encoded[i] = text  # a race only encodes the same text twice
        return text


def _detection_points(
    state: AppState, stamp: tuple[str, ...], day: str | None, sensor: str | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    def build() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        sensors = [sensor] if sensor else list(DETECTION_SENSORS)
        where = [f"CAST(sensor AS VARCHAR) IN ({', '.join('?' * len(sensors))})", "lon IS NOT NULL", "lat IS NOT NULL"]
        params: list[Any] = list(sensors)
        if day:
            where.append("day = ?")
            params.append(day)
        tbl = state.lake.query(f"SELECT lon, lat FROM observations WHERE {' AND '.join(where)}", params)
        lon = tbl.column("lon").to_numpy().astype(np.float64)
        lat = tbl.column("lat").to_numpy().astype(np.float64)
        return lon, lat

    return _memo.get(("detection-points", stamp, day, sensor), build)


def _density(state: AppState, stamp: tuple[str, ...], day: str | None, sensor: str | None, resolution: int) -> _Density:
    def build() -> _Density:
        lon, lat = _detection_points(state, stamp, day, sensor)
        return density(lon, lat, resolution)

    return _memo.get(("density", stamp, day, sensor, resolution), build)


def density(lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64], resolution: int) -> _Density:
    """Count points per H3 cell: bin on a lon/lat grid a quarter of a cell edge wide, then look up each bin once.

    ``h3`` has no vectorised lookup, so the Python loop runs over occupied bins, not over points.

    >>> d = density(np.array([-107.0, -107.0001, 10.0]), np.array([25.0, 25.0001, 0.0]), 5)
    >>> d.count.tolist(), d.total
    ([2, 1], 3)
    >>> json.loads(d.feature(0))["properties"] == {"cell": h3.latlng_to_cell(25.0, -107.0, 5), "count": 2}
    True
    >>> density(np.zeros(0), np.zeros(0), 5).count.tolist()
    []
    """
    empty = np.zeros(0)
    if not len(lon):
        return _Density(cells=np.zeros(0, dtype=np.uint64), lon=empty, lat=empty, count=np.zeros(0, dtype=np.int64),
                        total=0)  # fmt: skip
    q = min(0.01, _edge_deg(resolution) / 4)
    width = int(np.ceil(360.0 / q)) + 2
    half = width // 2  # lon bin indices shifted to [0, width), so the key decodes back exactly
    key = np.round(lat / q).astype(np.int64) * width + (np.round(lon / q).astype(np.int64) + half)
    bins, per_bin = np.unique(key, return_counts=True)
    blat = (bins // width) * q
    blon = (bins % width - half) * q
    bin_cells = np.fromiter(
        (h3i.latlng_to_cell(a, o, resolution) for a, o in zip(blat.tolist(), blon.tolist(), strict=True)),
        dtype=np.uint64,
        count=len(bins),
    )
    cells, first, inverse = np.unique(bin_cells, return_index=True, return_inverse=True)
    counts = np.bincount(inverse.ravel(), weights=per_bin, minlength=len(cells)).astype(np.int64)
    order = np.argsort(-counts, kind="stable")  # densest first, so a capped response keeps the hot spots
    first = first[order]
    return _Density(cells=cells[order], lon=blon[first], lat=blat[first], count=counts[order], total=len(lon))


def _parse_bbox(bbox: str | None) -> tuple[float, float, float, float] | None:
    if not bbox:
        return None
    try:
        w, s, e, n = (float(v) for v in bbox.split(","))
    except ValueError:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"bad bbox {bbox!r}: give west,south,east,north in degrees"
        ) from None
    if not (-90 <= s <= n <= 90) or not all(np.isfinite([w, s, e, n])):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"bad bbox {bbox!r}: give west,south,east,north with -90 <= south <= north <= 90",
        )
    return w, s, (e + 360 if e < w else e), n  # west > east: the view crosses the antimeridian


def _snap(bbox: tuple[float, float, float, float], step: float) -> tuple[float, float, float, float]:
    """The bbox grown to a grid of ``step`` degrees (so nearby views share one cached answer)."""
    w, s, e, n = bbox
    if e - w >= 360:
        return -180.0, max(-90.0, np.floor(s / step) * step), 180.0, min(90.0, np.ceil(n / step) * step)
    snapped = (np.floor(w / step) * step, np.floor(s / step) * step, np.ceil(e / step) * step, np.ceil(n / step) * step)
    return (
        round(snapped[0], 6),
        max(-90.0, round(snapped[1], 6)),
        round(snapped[2], 6),
        min(90.0, round(snapped[3], 6)),
    )


def _in_view(d: _Density, bbox: tuple[float, float, float, float] | None, pad: float) -> npt.NDArray[np.intp]:
    """Indices of the cells whose point lies in ``bbox`` grown by ``pad`` degrees (all without a bbox)."""
    if bbox is None:
        return np.arange(len(d.count))
    w, s, e, n = bbox
    lat_ok = (d.lat >= s - pad) & (d.lat <= n + pad)
    if e - w >= 360 - 2 * pad:
        lon_ok = np.ones(len(d.lon), dtype=bool)
    else:
        lo = (w - pad + 180) % 360 - 180  # the view's west edge and width, taken round the antimeridian
        span = e - w + 2 * pad
        lon_ok = (d.lon - lo) % 360 <= span
    return np.flatnonzero(lat_ok & lon_ok)


@router.get("/detections")
def detections(
    request: Request,
    state: StateDep,
    user: UserDep,
    resolution: Annotated[int | None, Query(ge=3, le=9, description="H3 resolution (overrides zoom)")] = None,
    zoom: Annotated[float | None, Query(ge=0, le=24, description="Map zoom; picks the H3 resolution")] = None,
    bbox: Annotated[str | None, Query(description="Only cells in view: west,south,east,north (degrees)")] = None,
    day: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")] = None,
    sensor: str | None = None,
) -> Response:
    """Density of sensor detections (EO, IR, SAR, GMTI, SIGINT, RADAR, HUMINT) on an H3 grid, counts per cell.

    A million detections draw as a few thousand hexagons: the resolution follows the zoom (or is given),
    only cells in the view (``bbox``) are sent, densest first, at most ``MAX_CELLS``. ``total`` counts all
    detections of the day and sensor; ``in_view`` those in the cells sent.
    """
    if user.party != state.workspace.party:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "raw detections are not released to partner users")
    if sensor is not None and sensor.upper() not in DETECTION_SENSORS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"sensor {sensor!r} does not report detections: use one of {', '.join(DETECTION_SENSORS)}",
        )
    res = resolution if resolution is not None else resolution_for_zoom(zoom) if zoom is not None else 6
    view = _parse_bbox(bbox)
    pad = 3 * _edge_deg(res)  # a cell's point is within two edges of any part of it
    if view is not None:
        view = _snap(view, pad)
    stamp = _lake_stamp(state)
    sensor_u = sensor.upper() if sensor else None

    def build() -> Body:
        d = _density(state, stamp, day, sensor_u, res)
        idx = _in_view(d, view, pad)
        truncated = len(idx) > MAX_CELLS
        idx = idx[:MAX_CELLS]  # cells are densest first
        tail = {"total": d.total, "in_view": int(d.count[idx].sum()), "resolution": res, "truncated": truncated}
        feats = ",".join(d.feature(i) for i in idx.tolist())
        return Body.of(f'{{"type":"FeatureCollection","features":[{feats}],{json.dumps(tail)[1:]}'.encode())

    return send(request, _views.get(("detections", stamp, day, sensor_u, res, view), build))


# --------------------------------------------------------------------------- sorties


@router.get("/sorties")
def sorties(request: Request, state: StateDep, user: UserDep, day: str | None = None) -> Response:
    """Sortie tracks as GeoJSON lines (decimated), with their compliance verdict for colouring."""
    from atalaya.sovereignty.service import sortie_views

    rows = state.release(user, "sorties", sortie_views(state.store))
    shown = tuple(
        sorted(
            (
                str(r["id"]),
                json.dumps(
                    {
                        "platform_type": r.get("platform_type"),
                        "compliance": r["status"],
                    },
                    default=str,
                ),
            )
            for r in rows
        )
    )
    stamp = _lake_stamp(state)

    def build() -> Body:
        if not shown:
            return Body.of(b'{"type":"FeatureCollection","features":[]}')
        lines = _memo.get(("sortie-lines", stamp, day), lambda: _sortie_lines(state, day))
        feats = []
        for sid, meta in shown:
            if sid not in lines:
                continue
            coords, t0, t1 = lines[sid]
            sid_json = json.dumps(sid)
            feats.append(
                f'{{"type":"Feature","id":{sid_json},"properties":{{"sortie_id":{sid_json},{meta[1:-1]},'
                f'"start":{json.dumps(t0)},"end":{json.dumps(t1)}}},'
                f'"geometry":{{"type":"LineString","coordinates":{coords}}}}}'
            )
        return Body.of(('{"type":"FeatureCollection","features":[' + ",".join(feats) + "]}").encode())

    return send(request, _views.get(("sorties", stamp, day, shown), build))


def _sortie_lines(state: AppState, day: str | None) -> dict[str, tuple[str, float, float]]:
    """Decimated sortie tracks from the lake: id → (encoded coordinates, start epoch, end epoch)."""
    from atalaya.sovereignty.tracks import sortie_tracks

    tr = sortie_tracks(state.lake)
    ident, lon, lat, t = tr.sortie_id, tr.lon, tr.lat, tr.time_us / 1e6
    if day:
        d0 = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        keep = (t >= d0) & (t < d0 + 86_400)
        ident, lon, lat, t = ident[keep], lon[keep], lat[keep], t[keep]
    out: dict[str, tuple[str, float, float]] = {}
    if len(ident):
        starts = np.flatnonzero(np.r_[True, ident[1:] != ident[:-1]])
        ends = np.r_[starts[1:], len(ident)]
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            step = max(1, (e - s) // MAX_TRACK_POINTS)
            sel = np.r_[np.arange(s, e, step), e - 1]
            coords = np.column_stack([lon[sel], lat[sel]]).round(5).tolist()
            out[str(ident[s])] = (json.dumps(coords, separators=(",", ":")), float(t[s]), float(t[e - 1]))
    return out
