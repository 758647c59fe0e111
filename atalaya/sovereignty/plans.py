"""Check a planned route before it is flown: which authorisation covers each leg.

A plan is a KML, GeoJSON or GPX route (times optional). It is densified to
points at most :data:`DENSIFY_KM` apart, accounted against the territories
(country and state level, :func:`atalaya.sovereignty.accounting.account_tracks`)
and split into legs at every boundary crossing. For each leg over a foreign
country the plan is tested against every collection item whose host is that
country and whose collector is the flying party: platform type, authorised
areas, depth, time windows and altitude band (time and altitude only when the
plan gives them). A leg is covered when at least one item passes every test;
otherwise each item says why it does not cover the leg.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from atalaya.core.errors import ValidationError
from atalaya.geo.kernels import geodesic_distance
from atalaya.geo.territories import Territories, label_points
from atalaya.sovereignty.accounting import account_tracks
from atalaya.sovereignty.agreements import Agreement, AgreementSet, Collection, parse_time
from atalaya.sovereignty.compliance import authorised_region, point_depth_km

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DENSIFY_KM = 1.0
"""Greatest spacing of the densified plan points, km."""
SLIVER_KM = 0.05
"""Pieces shorter than this between nearby country and state crossings join their neighbour."""


@dataclass(frozen=True, kw_only=True)
class Plan:
    """A planned route: vertices with optional times and altitudes."""

    name: str
    """Route name."""
    lon: FloatArray
    """Vertex longitudes."""
    lat: FloatArray
    """Vertex latitudes."""
    time_us: IntArray | None = None
    """Vertex times, µs since the epoch (``None``: not planned)."""
    alt_m: FloatArray | None = None
    """Vertex altitudes, metres (``None``: not planned)."""


@dataclass(frozen=True, kw_only=True)
class LegCoverage:
    """One collection item tested against one leg."""

    agreement_id: str
    """Agreement."""
    version: int
    """Its version used."""
    collection_id: str
    """Collection item."""
    reasons: tuple[str, ...]
    """Why it does not cover the leg (empty: it does)."""


@dataclass(frozen=True, kw_only=True)
class Leg:
    """A stretch of the route inside one territory."""

    index: int
    """Position in the route (0-based)."""
    country: str
    """Country id (``INTL`` outside every country)."""
    state: str | None
    """State id, if over one."""
    start_lon: float
    """Where the leg starts."""
    start_lat: float
    """Where the leg starts."""
    end_lon: float
    """Where it ends."""
    end_lat: float
    """Where it ends."""
    start_time: str | None
    """When it starts (ISO UTC; ``None`` without planned times)."""
    end_time: str | None
    """When it ends."""
    distance_km: float
    """Length, km."""
    max_depth_km: float | None
    """Greatest depth into the country (``None`` outside every country)."""
    foreign: bool
    """Over a country other than the flying party's."""
    coverage: tuple[LegCoverage, ...] = ()
    """Every candidate item and its verdict (foreign legs only)."""
    notes: tuple[str, ...] = field(default=())
    """What could not be checked."""

    @property
    def covered_by(self) -> list[str]:
        """Ids of the collection items that cover the leg."""
        return [c.collection_id for c in self.coverage if not c.reasons]

    @property
    def covered(self) -> bool:
        """Not foreign, or covered by at least one item."""
        return not self.foreign or bool(self.covered_by)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = {k: v for k, v in self.__dict__.items() if k not in ("coverage", "notes")}
        d["covered"] = self.covered
        d["covered_by"] = self.covered_by
        d["not_covered"] = [
            {
                "agreement_id": c.agreement_id,
                "version": c.version,
                "collection_id": c.collection_id,
                "reasons": list(c.reasons),
            }
            for c in self.coverage
            if c.reasons
        ]
        d["notes"] = list(self.notes)
        return d


# --------------------------------------------------------------------------- reading plans


def _xml_root(path: Path) -> Any:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        return etree.parse(str(path), parser).getroot()
    except (OSError, etree.XMLSyntaxError) as e:
        raise ValidationError(f"cannot read plan {path}: {e}", hint="give a well-formed KML or GPX file") from e


def _local(tag: Any) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _times(values: Sequence[str | None]) -> IntArray | None:
    if not values or any(v is None for v in values):
        return None
    return np.asarray([int(parse_time(str(v)).timestamp() * 1_000_000) for v in values], dtype=np.int64)


def _read_gpx(path: Path) -> Plan:
    root = _xml_root(path)
    pts: list[tuple[float, float, float | None, str | None]] = []
    name = path.stem
    for el in root.iter():
        tag = _local(el.tag)
        if tag == "name" and name == path.stem and el.text:
            name = el.text.strip()
        if tag in ("rtept", "trkpt"):
            ele = next((c.text for c in el if _local(c.tag) == "ele"), None)
            tm = next((c.text for c in el if _local(c.tag) == "time"), None)
            pts.append((float(el.get("lon")), float(el.get("lat")), float(ele) if ele else None, tm))
    return _plan(name, pts, path)


def _read_kml(path: Path) -> Plan:
    root = _xml_root(path)
    pts: list[tuple[float, float, float | None, str | None]] = []
    name = path.stem
    for el in root.iter():
        tag = _local(el.tag)
        if tag == "name" and name == path.stem and el.text:
            name = el.text.strip()
        if tag == "LineString":
            text = next((c.text for c in el if _local(c.tag) == "coordinates"), "") or ""
            for tok in text.split():
                parts = [float(v) for v in tok.split(",")]
                pts.append((parts[0], parts[1], parts[2] if len(parts) > 2 else None, None))
        if tag == "Track":
            whens = [c.text for c in el if _local(c.tag) == "when"]
            coords = [c.text or "" for c in el if _local(c.tag) == "coord"]
            for w, c in zip(whens, coords, strict=False):
                parts = [float(v) for v in c.split()]
                pts.append((parts[0], parts[1], parts[2] if len(parts) > 2 else None, w))
    return _plan(name, pts, path)


def _read_geojson(path: Path) -> Plan:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValidationError(f"cannot read plan {path}: {e}", hint="give a GeoJSON LineString") from e
    feats = doc.get("features") if doc.get("type") == "FeatureCollection" else [doc]
    pts: list[tuple[float, float, float | None, str | None]] = []
    name = path.stem
    for f in feats or []:
        geom = f.get("geometry", f) if f.get("type") == "Feature" else f
        props = f.get("properties") or {} if f.get("type") == "Feature" else {}
        name = str(props.get("name") or name)
        lines = (
            [geom["coordinates"]]
            if geom.get("type") == "LineString"
            else geom.get("coordinates", [])
            if geom.get("type") == "MultiLineString"
            else []
        )
        times = props.get("times") or props.get("coordTimes")
        k = 0
        for line in lines:
            for c in line:
                t = times[k] if isinstance(times, list) and k < len(times) else None
                pts.append((float(c[0]), float(c[1]), float(c[2]) if len(c) > 2 else None, t))
                k += 1
    return _plan(name, pts, path)


def _plan(name: str, pts: list[tuple[float, float, float | None, str | None]], path: Path) -> Plan:
    if len(pts) < 2:
        raise ValidationError(
            f"plan {path} has {len(pts)} route point(s)",
            hint="give a route of at least two points (GeoJSON LineString, KML LineString/gx:Track, GPX rte/trk)",
        )
    alts = [p[2] for p in pts]
    return Plan(
        name=name,
        lon=np.asarray([p[0] for p in pts], dtype=np.float64),
        lat=np.asarray([p[1] for p in pts], dtype=np.float64),
        time_us=_times([p[3] for p in pts]),
        alt_m=None if any(a is None for a in alts) else np.asarray(alts, dtype=np.float64),
    )


PLAN_READERS = {".gpx": _read_gpx, ".kml": _read_kml, ".geojson": _read_geojson, ".json": _read_geojson}
"""File suffix → plan reader."""


def read_plan(path: Path | str) -> Plan:
    """Read a planned route from KML, GeoJSON or GPX (by suffix)."""
    p = Path(path)
    reader = PLAN_READERS.get(p.suffix.lower())
    if reader is None:
        raise ValidationError(
            f"unknown plan format {p.suffix!r} for {p}", hint="give a .kml, .geojson/.json or .gpx route"
        )
    try:
        return reader(p)
    except (TypeError, ValueError, KeyError, IndexError) as e:
        raise ValidationError(f"cannot read plan {p}: {e}", hint="check the route's coordinates and times") from e


# --------------------------------------------------------------------------- checking


def _densify(plan: Plan, start: datetime | None, speed_mps: float | None) -> tuple[FloatArray, ...]:
    seg = geodesic_distance(plan.lon[:-1], plan.lat[:-1], plan.lon[1:], plan.lat[1:]) / 1000.0
    n = np.maximum(np.ceil(seg / DENSIFY_KM).astype(np.int64), 1)
    f = np.concatenate([np.arange(k) / k for k in n.tolist()] + [np.array([0.0])])
    i = np.r_[np.repeat(np.arange(len(seg)), n), len(seg) - 1]
    f[-1] = 1.0
    j = np.minimum(i + 1, len(plan.lon) - 1)
    x = plan.lon[i] + f * (plan.lon[j] - plan.lon[i])
    y = plan.lat[i] + f * (plan.lat[j] - plan.lat[i])
    cum = np.r_[0.0, np.cumsum(geodesic_distance(x[:-1], y[:-1], x[1:], y[1:]) / 1000.0)]
    if plan.time_us is not None:
        tv = plan.time_us.astype(np.float64)
        t = tv[i] + f * (tv[j] - tv[i])
    elif start is not None and speed_mps:
        t = start.timestamp() * 1e6 + cum * 1000.0 / speed_mps * 1e6
    else:
        t = np.full(len(x), np.nan)
    z = plan.alt_m[i] + f * (plan.alt_m[j] - plan.alt_m[i]) if plan.alt_m is not None else np.full(len(x), np.nan)
    return x, y, t, z, cum


def _iso(t: float) -> str | None:
    if not np.isfinite(t):
        return None
    return datetime.fromtimestamp(t / 1e6, tz=UTC).isoformat().replace("+00:00", "Z")


def _test_item(
    a: Agreement,
    item: Collection,
    territories: Territories,
    platform_type: str | None,
    x: FloatArray,
    y: FloatArray,
    t: FloatArray,
    z: FloatArray,
    depth: FloatArray,
    country: str,
) -> tuple[str, ...]:
    reasons = []
    if platform_type and platform_type not in item.platform_types:
        reasons.append(f"platform type {platform_type} not authorised ({', '.join(item.platform_types)})")
    region = authorised_region(item, territories)
    # The leg's end points lie on boundaries (country and state lines are digitised apart): test inner points.
    ax, ay = (x[1:-1], y[1:-1]) if len(x) > 2 else (np.r_[0.5 * (x[0] + x[-1])], np.r_[0.5 * (y[0] + y[-1])])
    inside_host = shapely.contains_xy(territories.geoms[territories.index_of(country)], ax, ay)
    outside = inside_host & ~shapely.contains_xy(region, ax, ay)
    if outside.any():
        reasons.append(f"{int(outside.sum())} of {len(ax)} route points lie outside the authorised areas")
    if depth.max(initial=0.0) > item.max_depth_km:
        reasons.append(f"reaches {depth.max():.1f} km deep; {item.max_depth_km:g} km authorised")
    if np.isfinite(t).all() and len(t):
        ts = [datetime.fromtimestamp(float(v) / 1e6, tz=UTC) for v in (t.min(), t.max())]
        if not all(any(w.contains(v) for w in item.time_windows) for v in ts):
            reasons.append("outside the authorised time windows")
        if not all(a.in_effect(v) for v in ts):
            reasons.append(f"agreement {a.id} v{a.version} not in force then")
    zz = z[np.isfinite(z)]
    if len(zz) and (zz.min() < item.altitude_min_m or zz.max() > item.altitude_max_m):
        reasons.append(
            f"altitude {zz.min():g}–{zz.max():g} m outside {item.altitude_min_m:g}–{item.altitude_max_m:g} m"
        )
    return tuple(reasons)


def check_plan(
    plan: Plan,
    *,
    agreements: AgreementSet,
    territories: Territories,
    party: str,
    platform_type: str | None = None,
    start: datetime | None = None,
    speed_mps: float | None = None,
) -> list[Leg]:
    """Split the route into legs by territory and say which authorisation covers each."""
    x, y, t, z, cum = _densify(plan, start, speed_mps)
    has_t = bool(np.isfinite(t).all())
    # Accounting needs increasing times: planned times, or distance (1 µs per mm) when none are given.
    tacc = t.astype(np.int64) if has_t else np.rint(cum * 1e6).astype(np.int64)
    acc = account_tracks(
        track_id=np.zeros(len(x), dtype=np.int64),
        time_us=tacc,
        lon=x,
        lat=y,
        territories=territories,
        levels=("country", "state"),
        depth=False,
        max_gap_s=None,  # a plan's legs are drawn, not sampled: a long leg is no reception gap
    )
    cuts = np.unique(np.r_[tacc[0], np.asarray(acc.events.column("time").cast("int64").to_numpy()), tacc[-1]])
    if len(cuts) < 2:
        cuts = np.r_[tacc[0], tacc[-1]]
    tf = tacc.astype(np.float64)
    mid = 0.5 * (cuts[:-1] + cuts[1:])
    mx, my = np.interp(mid, tf, x), np.interp(mid, tf, y)
    c_lab = label_points(territories, mx, my, "country")
    s_lab = label_points(territories, mx, my, "state")
    c_ids = territories.id_of(c_lab)
    s_ids = territories.id_of(s_lab)
    # Merge consecutive pieces with the same (country, state).
    key = [f"{c}|{s}" for c, s in zip(c_ids, s_ids, strict=True)]
    # Country and state boundaries digitised apart leave slivers of a few metres: fold them into a neighbour.
    piece_km = np.interp(cuts[1:], tf, cum) - np.interp(cuts[:-1], tf, cum)
    for k in range(len(key)):
        if piece_km[k] < SLIVER_KM and len(key) > 1:
            src = k - 1 if k > 0 else k + 1
            key[k], c_lab[k], s_lab[k] = key[src], c_lab[src], s_lab[src]
            c_ids[k], s_ids[k] = c_ids[src], s_ids[src]
    starts = [k for k in range(len(key)) if k == 0 or key[k] != key[k - 1]]
    ends = [*starts[1:], len(key)]
    legs: list[Leg] = []
    for n, (a0, a1) in enumerate(zip(starts, ends, strict=True)):
        t0, t1 = float(cuts[a0]), float(cuts[a1])
        inner = (tf > t0) & (tf < t1)
        lx = np.r_[np.interp(t0, tf, x), x[inner], np.interp(t1, tf, x)]
        ly = np.r_[np.interp(t0, tf, y), y[inner], np.interp(t1, tf, y)]
        lt = np.r_[np.interp(t0, tf, t), t[inner], np.interp(t1, tf, t)] if has_t else np.full(len(lx), np.nan)
        lz = np.r_[np.interp(t0, tf, z), z[inner], np.interp(t1, tf, z)]
        country = str(c_ids[a0])
        state = str(s_ids[a0]) if s_lab[a0] >= 0 else None
        owner = str(territories.owners[c_lab[a0]]) if c_lab[a0] >= 0 else "INTL"
        foreign = owner not in (party, "INTL")
        depth = point_depth_km(territories, lx, ly) if c_lab[a0] >= 0 else np.zeros(0)
        coverage: list[LegCoverage] = []
        notes: list[str] = []
        if foreign:
            if not has_t:
                notes.append("no planned times: time windows and agreement periods not checked")
            if plan.alt_m is None:
                notes.append("no planned altitudes: altitude band not checked")
            at = datetime.fromtimestamp(float(lt[0]) / 1e6, tz=UTC) if has_t else None
            for aid in agreements.ids():
                ag = agreements.in_force(aid, at) if at is not None else agreements.latest(aid)
                if ag is None:
                    ag = agreements.latest(aid)
                if ag is None:
                    continue
                for item in ag.collection:
                    if item.host != owner or item.collector != party:
                        continue
                    reasons = _test_item(ag, item, territories, platform_type, lx, ly, lt, lz, depth, country)
                    coverage.append(
                        LegCoverage(agreement_id=ag.id, version=ag.version, collection_id=item.id, reasons=reasons)
                    )
            if not coverage:
                notes.append(f"no agreement authorises collection by {party} over {owner}")
        legs.append(
            Leg(
                index=n,
                country=country,
                state=state,
                start_lon=round(float(lx[0]), 6),
                start_lat=round(float(ly[0]), 6),
                end_lon=round(float(lx[-1]), 6),
                end_lat=round(float(ly[-1]), 6),
                start_time=_iso(float(lt[0])),
                end_time=_iso(float(lt[-1])),
                distance_km=round(float(np.interp(t1, tf, cum) - np.interp(t0, tf, cum)), 3),
                max_depth_km=round(float(depth.max()), 3) if len(depth) else None,
                foreign=foreign,
                coverage=tuple(coverage),
                notes=tuple(notes),
            )
        )
    return legs
