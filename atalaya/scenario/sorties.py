"""Collection platforms, their sorties and flown tracks, and the draft agreements they claim.

Four platform types fly from US bases: MQ-9 drones orbiting at 7,500 m
(~85 m/s), the U-2 flying long legs at 20,000 m (~210 m/s), the RC-135 on
racetracks at 10,000 m (~230 m/s) and the P-8 (240 m/s transit at 7,000 m,
150 m/s patrols at 300 m over the sea). Missions range from orbits on the US
side of the border to deep orbits over the Sinaloa/Durango sierra, some inside
an agreement's area and time window, some not, some claiming none.

Most collection is *tasked* (:func:`build_tasking`): the fusion cell names
coarse areas of interest (a 30–60 km box around a suspected cluster, a stretch
of coast, a region where the organisations' phones are heard), as many empty
"suspected" areas as a share of the real ones, and revisits each on several
days. MQ-9s orbit up to three boxes per sortie, U-2s fly legs through many,
by day or by night (for the heat of the labs); P-8s patrol coastal stretches
low (radar and EO on boats and beaches); the RC-135 flies racetracks over
regions. Tasking knows boxes, never the exact places. Untasked sorties (border
orbits, open-sea patrols, border SIGINT racetracks) fly as well.
Every sortie's track is sampled each second (the truth for overflight
accounting); feeds carry a thinner GPX copy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from atalaya.geo.territories import Territories, label_points, load_territories
from atalaya.scenario.config import ScenarioConfig
from atalaya.scenario.sites import Sites
from atalaya.scenario.world import (
    F64,
    I64,
    LAB_STATES,
    B,
    World,
    circle,
    flat_m,
    knots,
    offset,
    racetrack,
    sample_knots,
    unflat,
)

GPX_STEP_S = 10
"""Seconds between the fixes of the sortie tracks as reported (GPX); compliance truth is judged on them."""

COLLECTOR = "USA"
HOST = "MEX"


@dataclass(frozen=True, kw_only=True)
class PlatformType:
    """Performance and sensors of one platform type."""

    name: str
    """Type name (``MQ-9``, ``U-2``, ``RC-135``, ``P-8``)."""
    cruise_mps: float
    """Cruise (or orbit) speed, m/s."""
    alt_m: float
    """Working altitude, metres."""
    sensors: tuple[str, ...]
    """Sensor kinds carried (``Sensor`` values)."""


PLATFORM_TYPES: dict[str, PlatformType] = {
    "MQ-9": PlatformType(name="MQ-9", cruise_mps=85.0, alt_m=7_500.0, sensors=("EO", "IR", "GMTI", "SIGINT")),
    "U-2": PlatformType(name="U-2", cruise_mps=210.0, alt_m=20_000.0, sensors=("EO", "IR", "SIGINT")),
    "RC-135": PlatformType(name="RC-135", cruise_mps=230.0, alt_m=10_000.0, sensors=("SIGINT",)),
    "P-8": PlatformType(name="P-8", cruise_mps=240.0, alt_m=7_000.0, sensors=("RADAR", "EO")),
}

BASES: dict[str, tuple[float, float]] = {
    "Fort Huachuca (KFHU)": (-110.344, 31.588),
    "Laughlin AFB (KDLF)": (-100.778, 29.359),
    "Davis-Monthan AFB (KDMA)": (-110.876, 32.166),
    "JBSA-Lackland (KSKF)": (-98.581, 29.384),
    "NAS Corpus Christi (KNGP)": (-97.291, 27.693),
    "NAS North Island (KNZY)": (-117.215, 32.699),
}

PLATFORMS: tuple[tuple[str, str, str], ...] = (
    ("MQ9-01", "MQ-9", "Fort Huachuca (KFHU)"),
    ("MQ9-02", "MQ-9", "Fort Huachuca (KFHU)"),
    ("MQ9-03", "MQ-9", "Laughlin AFB (KDLF)"),
    ("MQ9-04", "MQ-9", "Laughlin AFB (KDLF)"),
    ("MQ9-05", "MQ-9", "NAS Corpus Christi (KNGP)"),
    ("U2-01", "U-2", "Davis-Monthan AFB (KDMA)"),
    ("U2-02", "U-2", "Davis-Monthan AFB (KDMA)"),
    ("RC135-01", "RC-135", "JBSA-Lackland (KSKF)"),
    ("P8-01", "P-8", "NAS Corpus Christi (KNGP)"),
    ("P8-02", "P-8", "NAS North Island (KNZY)"),
)
"""``(platform_id, type, home base)``."""

MISSIONS: tuple[tuple[str, str, float], ...] = (
    ("mq9_border", "MQ-9", 1.0),
    ("rc135_border", "RC-135", 0.5),
    ("p8_gulf", "P-8", 0.5),
    ("p8_pacific", "P-8", 0.5),
)
"""Untasked missions: ``(mission, platform type, weight)``."""

TASKED: dict[str, str] = {
    "mq9_shallow": "MQ-9",
    "mq9_deep": "MQ-9",
    "u2_legs": "U-2",
    "p8_coast": "P-8",
    "rc135_region": "RC-135",
}
"""Tasked missions and the platform type that flies them."""


@dataclass(frozen=True, kw_only=True)
class Sortie:
    """One collection flight: record fields and the 1 s truth track."""

    sortie_id: str
    """Id, e.g. ``S-20260302-03``."""
    platform_id: str
    """Platform flown."""
    platform_type: str
    """Its type."""
    base: str
    """Take-off and landing base."""
    mission: str
    """Mission pattern (informative)."""
    agreement_id: str | None
    """Agreement the sortie claims to fly under (``None``: none claimed)."""
    authorisation_id: str | None
    """Collection item of that agreement claimed."""
    notified_at: int | None
    """When the host was notified (Unix s), or ``None``."""
    report_filed_at: int | None
    """When the post-flight report was filed (Unix s), or ``None``."""
    planted: tuple[str, ...] = ()
    """Compliance rules broken on purpose (ground truth only: never in the manifest)."""
    t: I64
    """Track times, Unix seconds, every second from take-off to landing."""
    lon: F64
    """Track longitudes."""
    lat: F64
    """Track latitudes."""
    alt: F64
    """Track altitudes, metres."""
    speed: F64
    """Ground speed, m/s."""
    course: F64
    """Course, degrees true."""

    @property
    def takeoff(self) -> int:
        """Take-off time (Unix s)."""
        return int(self.t[0])

    @property
    def landing(self) -> int:
        """Landing time (Unix s)."""
        return int(self.t[-1])

    def record(self) -> dict[str, Any]:
        """The manifest entry (``records/sorties.json``)."""
        return {
            "sortie_id": self.sortie_id,
            "platform_id": self.platform_id,
            "platform_type": self.platform_type,
            "party": COLLECTOR,
            "mission": self.mission,
            "agreement_id": self.agreement_id,
            "authorisation_id": self.authorisation_id,
            "notified_at": iso(self.notified_at),
            "report_filed_at": iso(self.report_filed_at),
            "takeoff": iso(self.takeoff),
            "landing": iso(self.landing),
            "base": self.base,
        }


def iso(t: int | float | None) -> str | None:
    """ISO 8601 UTC text with ``Z`` for Unix seconds (``None`` stays ``None``)."""
    if t is None:
        return None
    return datetime.fromtimestamp(int(t), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, kw_only=True)
class Area:
    """An area of interest the fusion cell tasks collection on (coarse: never a site's exact place)."""

    area_id: str
    """Id, e.g. ``AOI-007``."""
    kind: str
    """``border`` (a box near the US border), ``inland`` (a box in the sierra), ``coast`` (a stretch of
    coast) or ``region`` (where phones are heard)."""
    lon: float
    """Centre longitude."""
    lat: float
    """Centre latitude."""
    half_m: float
    """Half the side of the box (``border``/``inland``), metres."""
    days: tuple[int, ...]
    """Days on which collection is tasked over it."""
    path: tuple[tuple[float, float], ...] = ()
    """For ``coast``: points along the stretch; for ``region``: unused."""
    basin: str = ""
    """For ``coast``: ``pacific`` or ``gulf`` (the P-8 base that covers it)."""
    holds_sites: bool = False
    """Whether the box holds a hidden site (truth, for inspection only: tasking never reads it)."""


def _visit_days(cfg: ScenarioConfig, rng: np.random.Generator) -> tuple[int, ...]:
    lo, hi = cfg.revisits
    k = int(rng.integers(lo, hi + 1))
    if cfg.days <= k:
        return tuple(range(cfg.days))
    first = int(rng.integers(0, cfg.days - k + 1))
    span = list(range(first, min(cfg.days, first + k + 2)))
    return tuple(sorted(int(d) for d in rng.choice(span, size=k, replace=False)))


def _coast_path(coast: Any, at: float, length_deg: float, rng: np.random.Generator) -> tuple[tuple[float, float], ...]:
    """Points every ~9 km along the coast line around linear position ``at`` (the stretch holds ``at``)."""
    a = at - float(rng.uniform(0.2, 0.8)) * length_deg
    pos = np.arange(a, a + length_deg, 0.08)
    pts = shapely.line_interpolate_point(coast, np.clip(pos, 0.0, float(coast.length)))
    xy = shapely.get_coordinates(pts)
    # cut at jumps between coast rings: keep the run that holds ``at``
    jump = np.hypot(np.diff(xy[:, 0]), np.diff(xy[:, 1])) > 0.3
    run = np.concatenate([[0], np.cumsum(jump)])
    mine = run[int(np.argmin(np.abs(pos - at)))]
    keep = xy[run == mine]
    return tuple((float(x), float(y)) for x, y in keep)


def build_tasking(cfg: ScenarioConfig, sites: Sites, world: World, rng: np.random.Generator) -> list[Area]:
    """Areas of interest and the days collection is tasked on each, in id order.

    Each hidden lab, airstrip and stash house lies in some 30–60 km box (placed
    at random around it, so the box never gives the place away; one box may
    hold several); beaches lie on 80–130 km stretches of coast; regions are
    the states where the organisations' phones are heard. As many empty
    suspected areas as ``cfg.decoy_share`` of the real ones are tasked too.
    """
    out: list[Area] = []
    boxes: list[tuple[str, float, float, float, bool]] = []
    inland = [*sites.labs, *sites.airstrips]
    taken: set[str] = set()
    for group, kind in ((inland, "inland"), (sites.stash_houses, "border")):
        for st in group:
            if st.site_id in taken:
                continue
            half = float(rng.uniform(15_000.0, 30_000.0))
            dx, dy = (float(v) for v in rng.uniform(-0.65 * half, 0.65 * half, 2))
            cx, cy = unflat(np.array([st.lon]), np.array([st.lat]), np.array([-dx]), np.array([-dy]))
            bx, by = float(cx[0]), float(cy[0])
            for other in group:
                e, n = flat_m(np.array([bx]), np.array([by]), np.array([other.lon]), np.array([other.lat]))
                if abs(float(e[0])) < half and abs(float(n[0])) < half:
                    taken.add(other.site_id)
            boxes.append((kind, bx, by, half, True))
    n_real = len(boxes)
    for i in range(round(cfg.decoy_share * n_real)):
        kind = boxes[i % n_real][0] if n_real else "inland"
        half = float(rng.uniform(15_000.0, 30_000.0))
        if kind == "border":
            for _ in range(50):
                q = shapely.line_interpolate_point(world.border, float(rng.uniform(0.03, 0.97)), normalized=True)
                bx, by = offset(float(q.x), float(q.y), float(rng.uniform(150, 210)), float(rng.uniform(10e3, 40e3)))
                if world.in_mex(np.array([bx]), np.array([by]))[0]:
                    break
        else:
            states = sorted({st.state for st in inland} or set(LAB_STATES))
            code = states[int(rng.integers(len(states)))]
            xs, ys = world.sample_in(rng, world.states[code], 40)
            ok = np.flatnonzero(world.remote(xs, ys, 30.0))
            j = int(ok[0]) if ok.size else 0
            bx, by = float(xs[j]), float(ys[j])
        boxes.append((kind, bx, by, half, False))
    coast = world.mex.boundary
    stretches: list[tuple[tuple[tuple[float, float], ...], bool]] = []
    for b in sites.beaches:
        at = float(shapely.line_locate_point(coast, shapely.Point(b.lon, b.lat)))
        stretches.append((_coast_path(coast, at, float(rng.uniform(0.75, 1.2)), rng), True))
    for i in range(round(cfg.decoy_share * len(sites.beaches))):
        b = sites.beaches[i % len(sites.beaches)]
        at = float(shapely.line_locate_point(coast, shapely.Point(b.lon, b.lat)))
        at += float(rng.choice([-1.0, 1.0]) * rng.uniform(1.5, 4.0))
        at = min(max(at, 0.0), float(coast.length))
        path = _coast_path(coast, at, float(rng.uniform(0.75, 1.2)), rng)
        if len(path) >= 3 and float(world.border_km(np.array([path[0][0]]), np.array([path[0][1]]))[0]) > 30:
            stretches.append((path, False))
    order = rng.permutation(len(boxes) + len(stretches))
    for k in order.tolist():
        days = _visit_days(cfg, rng)
        aid = f"AOI-{len(out) + 1:03d}"
        if k < len(boxes):
            kind, bx, by, half, real = boxes[k]
            out.append(Area(area_id=aid, kind=kind, lon=bx, lat=by, half_m=half, days=days, holds_sites=real))
        else:
            path, real = stretches[k - len(boxes)]
            mx, my = path[len(path) // 2]
            basin = "gulf" if mx > -98.5 and my > 17.0 else "pacific"  # Gulf and Caribbean coasts vs the Pacific
            out.append(
                Area(area_id=aid, kind="coast", lon=mx, lat=my, half_m=0.0, days=days, path=path, basin=basin,
                     holds_sites=real)
            )  # fmt: skip
    # regions: the states where the organisations' sites are (phones heard), centre blurred by ~60 km
    by_state: dict[str, list[tuple[float, float]]] = {}
    for st in (*sites.labs, *sites.stash_houses, *sites.airstrips):
        by_state.setdefault(st.state, []).append((st.lon, st.lat))
    for code in sorted(by_state):
        pts = np.array(by_state[code])
        rx, ry = offset(float(pts[:, 0].mean()), float(pts[:, 1].mean()), float(rng.uniform(0, 360)), 6e4)
        out.append(
            Area(area_id=f"AOI-{len(out) + 1:03d}", kind="region", lon=rx, lat=ry, half_m=150_000.0,
                 days=_visit_days(cfg, rng), holds_sites=True)
        )  # fmt: skip
    return out


def _fly(
    wx: list[float], wy: list[float], walt: list[float], wspd: list[float], t0: int
) -> tuple[I64, F64, F64, F64, F64, F64]:
    tk, xk, yk, sk, zk = knots(np.array(wx), np.array(wy), np.array(wspd), t0=float(t0), alt=np.array(walt))
    t = np.arange(t0, int(np.floor(tk[-1])) + 1, dtype=np.int64)
    x, y, s, c = sample_knots(tk, xk, yk, sk, t.astype(np.float64))
    z = np.interp(t.astype(np.float64), tk, zk)
    return t, x, y, z, s, c


@cache
def _territories() -> Territories:
    return load_territories()


def in_host(lon: F64, lat: F64) -> B:
    """Whether each point lies in the host's territory (land or territorial sea), as accounting labels it."""
    t = _territories()
    lab = label_points(t, np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64), "country")
    owners = np.append(t.owners, "INTL").astype(object)
    out: B = owners[np.where(lab < 0, len(t), lab)] == HOST
    return out


def host_state(lon: F64, lat: F64) -> npt.NDArray[np.object_]:
    """The host state (territory id, e.g. ``MEX-SON``) under each point; ``""`` elsewhere (sea, other countries)."""
    t = _territories()
    lab = label_points(t, np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64), "state")
    ids = np.append(np.asarray(t.ids, dtype=object), "")
    owners = np.append(t.owners, "").astype(object)
    k = np.where(lab < 0, len(t), lab)
    out: npt.NDArray[np.object_] = np.where(owners[k] == HOST, ids[k], "")
    return out


def _clear_leg(x0: float, y0: float, x1: float, y1: float) -> bool:
    """Whether the straight leg between two points stays out of the host's territory."""
    f = np.linspace(0.0, 1.0, 41)
    return not bool(in_host(x0 + f * (x1 - x0), y0 + f * (y1 - y0)).any())


def _climb_point(bx: float, by: float, x: float, y: float, dist: float = 40_000.0) -> tuple[float, float]:
    """Where a climb from the base toward ``(x, y)`` (or a descent to it from there) ends: the point ``dist`` out
    on the bearing nearest the target whose leg stays out of the host (the aircraft is at working altitude before
    it enters foreign airspace)."""
    az = float(np.degrees(np.arctan2((x - bx) * np.cos(np.radians(by)), y - by)))
    for turn in (0.0, 20.0, -20.0, 40.0, -40.0, 60.0, -60.0, 90.0, -90.0, 120.0, -120.0, 150.0, -150.0, 180.0):
        cx, cy = offset(bx, by, az + turn, dist)
        if _clear_leg(bx, by, cx, cy):
            return cx, cy
    return offset(bx, by, az, dist)


def _border_orbit_centre(world: World, f: float, dist: float, radius: float) -> tuple[float, float]:
    """Centre of an orbit on the US side of the border near fraction ``f`` of the line, clear of the host."""
    p = shapely.line_interpolate_point(world.border, f, normalized=True)
    q = shapely.line_interpolate_point(world.border, min(f + 0.01, 1.0), normalized=True)
    if q.equals(p):
        q = p
        p = shapely.line_interpolate_point(world.border, max(f - 0.01, 0.0), normalized=True)
    heading = float(np.degrees(np.arctan2((q.x - p.x) * np.cos(np.radians(p.y)), q.y - p.y)))
    for d in (dist, dist + 20_000.0, dist + 40_000.0, dist + 70_000.0):
        for side in (-90.0, 90.0, 0.0, 180.0):
            cx, cy = offset(float(p.x), float(p.y), heading + side, d)
            ox, oy = circle(cx, cy, radius + 8_000.0)
            if world.in_usa(np.array([cx]), np.array([cy]))[0] and not in_host(ox, oy).any():
                return cx, cy
    return offset(float(p.x), float(p.y), 0.0, dist)


def _depth_target(a: Area, limit_km: float, states: tuple[str, ...]) -> tuple[float, float] | None:
    """A point beyond ``limit_km`` into the host (by 25–60 km) inside one of ``states``, near box ``a``."""
    from atalaya.scenario.truth import host_depth_km

    az = np.repeat(np.arange(0.0, 360.0, 30.0), 40)
    dist = np.tile(np.arange(10_000.0, 410_000.0, 10_000.0), 12)
    pts = [offset(a.lon, a.lat, float(z), float(d)) for z, d in zip(az, dist, strict=True)]
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    ok = np.isin(host_state(x, y), [state_id(c) for c in states])
    if not ok.any():
        return None
    d = np.full(x.size, np.nan)
    d[ok] = host_depth_km(x[ok], y[ok])
    good = np.flatnonzero(ok & (d > limit_km + 25.0) & (d < limit_km + 60.0))
    if good.size == 0:
        return None
    j = int(good[np.argmin(dist[good])])
    return float(x[j]), float(y[j])


def _sea_target(a: Area) -> tuple[float, float] | None:
    """A point of the host's territorial sea (no state below it, 6 km clear of land and of the 12 nm line) within
    250 km of box ``a``."""
    gx, gy = np.meshgrid(np.linspace(a.lon - 2.5, a.lon + 2.5, 101), np.linspace(a.lat - 2.2, a.lat + 2.2, 89))
    x, y = gx.ravel(), gy.ravel()
    near = np.hypot((x - a.lon) * 111.32 * np.cos(np.radians(a.lat)), (y - a.lat) * 110.57) < 250.0
    x, y = x[near], y[near]
    sea = in_host(x, y) & (host_state(x, y) == "")
    x, y = x[sea], y[sea]
    for k in np.argsort(np.hypot(x - a.lon, y - a.lat)).tolist():
        ox, oy = circle(float(x[k]), float(y[k]), 6_000.0)
        if (in_host(ox, oy) & (host_state(ox, oy) == "")).all():
            return float(x[k]), float(y[k])
    return None


def reported_fixes(t: I64) -> npt.NDArray[np.int64]:
    """Indices of the track samples written to the GPX feed (every ``GPX_STEP_S`` seconds, first and last)."""
    idx = np.flatnonzero(t % GPX_STEP_S == 0)
    return np.unique(np.r_[0, idx, t.size - 1]).astype(np.int64)


def track_rules(
    t: I64, lon: F64, lat: F64, alt: F64, platform_type: str, item: dict[str, Any], *, strict: bool = False
) -> list[str]:
    """The rules of collection item ``item`` (a dict of ``agreements_record``) that a flown track breaks in the
    host: ``platform-type``, ``outside-area``, ``depth``, ``time-window``, ``altitude`` (judged on the fixes
    given). ``strict``: any fix outside the areas counts (else stretches of under three fixes, where polygons
    meet, are let pass)."""
    from atalaya.scenario.truth import host_depth_km

    rules: list[str] = []
    if platform_type not in item["platform_types"]:
        rules.append("platform-type")
    inside = in_host(lon, lat)
    if not inside.any():
        return rules
    x, y, tt, z = lon[inside], lat[inside], t[inside], alt[inside]
    ok = np.zeros(x.size, dtype=bool)
    states = [state_id(c) for a in item["areas"] for c in a.get("states", [])]
    if states:
        ok |= np.isin(host_state(x, y), states)
    for a in item["areas"]:
        if a.get("polygon") is not None:
            ok |= np.asarray(shapely.contains_xy(_polygon(json.dumps(a["polygon"])), x, y), dtype=bool)
    bad = ~ok
    if strict:
        off = bool(bad.any())
    else:
        m = np.diff(np.r_[False, bad, False].astype(np.int8))
        off = bool(((np.flatnonzero(m == -1) - np.flatnonzero(m == 1)) >= 3).any())
    if off:
        rules.append("outside-area")
    if float(host_depth_km(x, y).max()) > float(item["max_depth_km"]) - (5.0 if strict else 0.0):
        rules.append("depth")
    in_window = np.zeros(tt.size, dtype=bool)
    for w in item["time_windows"]:
        in_window |= (tt >= _unix(w["from"])) & (tt <= _unix(w["to"]))
    if not in_window.all():
        rules.append("time-window")
    band = item["altitude_m"]
    if ((z < float(band["min"]) - 5.0) | (z > float(band["max"]) + 5.0)).any():
        rules.append("altitude")
    return rules


@cache
def _polygon(geojson: str) -> Any:
    g = shapely.from_geojson(geojson)
    shapely.prepare(g)
    return g


def _unix(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def state_id(code: str) -> str:
    """ISO 3166-2 code → territory id (``MX-SON`` → ``MEX-SON``)."""
    prefix, _, suffix = code.partition("-")
    return f"{ {'MX': 'MEX', 'US': 'USA'}.get(prefix, prefix) }-{suffix}"


def _plan(
    mission: str,
    ptype: PlatformType,
    base: tuple[float, float],
    areas: list[Area],
    world: World,
    rng: np.random.Generator,
    plant: str | None = None,
    done: list[str] | None = None,
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Waypoints (lon, lat, alt, speed of the leg leaving each waypoint) from base back to base.

    ``plant`` flies one rule of the claimed collection item broken on purpose: ``depth`` (an orbit beyond
    the item's depth limit), ``altitude`` (one orbit below its altitude band) or ``outside-area`` (an orbit
    over the host's territorial sea, outside the item's states); the plan falls back to the normal one when
    the tasked boxes offer no such place. A plant flown is appended to ``done``.
    """
    bx, by = base
    v, h = ptype.cruise_mps, ptype.alt_m
    wx: list[float] = [bx]
    wy: list[float] = [by]
    wa: list[float] = [0.0]
    ws: list[float] = []

    def go(x: float, y: float, alt: float, speed: float) -> None:
        wx.append(x)
        wy.append(y)
        wa.append(alt)
        ws.append(speed)

    def climb_toward(x: float, y: float) -> None:
        go(*_climb_point(bx, by, x, y), h, v)

    def orbit(cx: float, cy: float, radius: float, hours: float, alt: float, speed: float) -> None:
        turns = max(1.0, hours * 3600.0 * speed / (2 * np.pi * radius))
        ox, oy = circle(cx, cy, radius, turns=float(np.floor(turns)))
        for x, y in zip(ox.tolist(), oy.tolist(), strict=True):
            go(x, y, alt, speed)

    if mission == "mq9_border":
        f = float(rng.uniform(0.05, 0.95))
        cx, cy = _border_orbit_centre(world, f, float(rng.uniform(25_000.0, 45_000.0)), 10_000.0)
        climb_toward(cx, cy)
        _stay_north(world, wx, wy, wa, ws, cx, cy, h, v)
        orbit(cx, cy, 10_000.0, float(rng.uniform(8, 14)), h, v)
    elif mission in ("mq9_shallow", "mq9_deep"):
        # orbit each tasked box in turn, alternating an inner and an outer circle to cover it
        climb_toward(areas[0].lon, areas[0].lat)
        per = float(rng.uniform(8, 12)) / len(areas)
        for k, a in enumerate(areas):
            inner = max(5_000.0, 0.3 * a.half_m)
            outer = max(a.half_m - 6_000.0, inner + 5_000.0)
            for r in range(max(1, round(per))):
                low = plant == "altitude" and k == 0 and r == 0
                if low and done is not None:
                    done.append("altitude")
                orbit(a.lon, a.lat, inner, 0.4, PLANTED_LOW_M if low else h, v)
                orbit(a.lon, a.lat, outer, 0.6, h, v)
        item = _ITEMS["C1"]
        side = None
        if plant == "depth":
            side = _depth_target(areas[-1], float(item["max_depth_km"]), tuple(item["areas"][0]["states"]))
        elif plant == "outside-area":
            side = _sea_target(areas[-1])
        if side is not None:
            if done is not None:
                done.append(str(plant))
            go(*side, h, v)
            orbit(side[0], side[1], 5_000.0, 0.3, h, v)
            go(areas[-1].lon, areas[-1].lat, h, v)
    elif mission == "u2_legs":
        # legs through each tasked box, the order chained nearest-first from the base
        climb_toward(areas[0].lon, areas[0].lat)
        for a in areas:
            go(a.lon, a.lat, h, v)
    elif mission == "rc135_region":
        a = areas[0]
        heading = float(rng.uniform(0, 180))
        climb_toward(a.lon, a.lat)
        rx, ry = racetrack(a.lon, a.lat, heading, 200_000.0, 40_000.0, laps=int(rng.integers(6, 10)))
        for x, y in zip(rx.tolist(), ry.tolist(), strict=True):
            go(x, y, h, v)
    elif mission == "rc135_border":
        f = float(rng.uniform(0.3, 0.95))
        p = shapely.line_interpolate_point(world.border, f, normalized=True)
        q = shapely.line_interpolate_point(world.border, min(f + 0.02, 1.0), normalized=True)
        heading = float(np.degrees(np.arctan2((q.x - p.x) * np.cos(np.radians(p.y)), q.y - p.y)))
        cx, cy = offset(float(p.x), float(p.y), heading - 90.0, 70_000.0)
        if not world.in_usa(np.array([cx]), np.array([cy]))[0]:
            cx, cy = offset(float(p.x), float(p.y), heading + 90.0, 70_000.0)
        climb_toward(cx, cy)
        _stay_north(world, wx, wy, wa, ws, cx, cy, h, v)
        rx, ry = racetrack(cx, cy, heading, 180_000.0, 30_000.0, laps=int(rng.integers(10, 16)))
        for x, y in zip(rx.tolist(), ry.tolist(), strict=True):
            go(x, y, h, v)
    elif mission == "p8_coast":
        # transit high, then low passes up and down each tasked stretch of coast
        first = areas[0].path[0]
        climb_toward(*first)
        for a in areas:
            go(a.path[0][0], a.path[0][1], h, v)
            for k in range(int(rng.integers(2, 5))):
                pts = a.path if k % 2 == 0 else a.path[::-1]
                for x, y in pts:
                    go(x, y, 450.0, 150.0)
            go(wx[-1], wy[-1], h, v)
    else:  # untasked P-8 maritime patrol: transit high, patrol low over the open sea
        sx, sy = world.sample_sea(rng, "gulf" if mission == "p8_gulf" else "pacific", 1)
        cx, cy = float(sx[0]), float(sy[0])
        climb_toward(cx, cy)
        go(cx, cy, h, v)
        heading = float(rng.uniform(0, 180))
        legs = int(rng.integers(6, 10))
        x, y = cx, cy
        for k in range(legs):
            x, y = offset(x, y, heading + (180.0 if k % 2 else 0.0), 80_000.0)
            go(x, y, 300.0, 150.0)
            x, y = offset(x, y, heading + 90.0, 15_000.0)
            go(x, y, 300.0, 150.0)
        go(x, y, h, v)
    # descend toward base and land
    ax, ay = _climb_point(bx, by, wx[-1], wy[-1])
    if mission in ("mq9_border", "rc135_border"):
        _stay_north(world, wx, wy, wa, ws, ax, ay, h, v)
    go(ax, ay, h, v)
    go(bx, by, 0.0, v * 0.8)
    return wx, wy, wa, ws


def _stay_north(
    world: World,
    wx: list[float],
    wy: list[float],
    wa: list[float],
    ws: list[float],
    x: float,
    y: float,
    h: float,
    v: float,
) -> None:
    """Add dog-leg waypoints so the leg from the last waypoint to ``(x, y)`` stays out of Mexico."""
    for _ in range(6):
        f = np.linspace(0.0, 1.0, 200)
        px, py = wx[-1] + f * (x - wx[-1]), wy[-1] + f * (y - wy[-1])
        inside = world.in_mex(px, py)
        if not inside.any():
            return
        i = int(np.flatnonzero(inside)[inside.sum() // 2])
        mx, my = offset(float(px[i]), float(py[i]), 0.0, 80_000.0)
        wx.append(mx)
        wy.append(my)
        wa.append(h)
        ws.append(v)


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(np.hypot((a[0] - b[0]) * 111.32 * np.cos(np.radians(a[1])), (a[1] - b[1]) * 110.57))


def _chain(start: tuple[float, float], areas: list[Area]) -> list[Area]:
    """Areas in nearest-next order from ``start``."""
    left = list(areas)
    out: list[Area] = []
    at = start
    while left:
        j = min(range(len(left)), key=lambda i: (_km(at, (left[i].lon, left[i].lat)), left[i].area_id))
        out.append(left.pop(j))
        at = (out[-1].lon, out[-1].lat)
    return out


def _tasked_plans(
    cfg: ScenarioConfig, day: int, areas: list[Area], rng: np.random.Generator
) -> list[tuple[int, str, list[Area]]]:
    """The day's tasked sorties: ``(take-off, mission, areas)``; some fly by night (local night ≈ 02–12 UTC)."""
    d0 = cfg.day_start_s(day)
    today = [a for a in areas if day in a.days]

    def takeoff(night_share: float) -> int:
        if rng.random() < night_share:
            return d0 + int(rng.uniform(0.0, 2.5 * 3600))
        return d0 + int(rng.uniform(12.5 * 3600, 15.5 * 3600))

    plans: list[tuple[int, str, list[Area]]] = []
    # P-8s: up to three stretches of their own coast each
    for basin in ("gulf", "pacific"):
        coast = [a for a in today if a.kind == "coast" and a.basin == basin]
        if coast:
            picks = _chain(BASES["NAS Corpus Christi (KNGP)" if basin == "gulf" else "NAS North Island (KNZY)"], coast)
            plans.append((takeoff(0.3), "p8_coast", picks[:3]))
    # RC-135: one region a day
    regions = [a for a in today if a.kind == "region"]
    if regions:
        plans.append((takeoff(0.4), "rc135_region", [regions[int(rng.integers(len(regions)))]]))
    # MQ-9s: boxes near the border first, then the sierra, up to three neighbouring boxes a sortie
    boxes = [a for a in today if a.kind in ("border", "inland")]
    boxes.sort(key=lambda a: (a.kind != "border", a.area_id))
    left = list(boxes)
    for _ in range(cfg.mq9_tasked_per_day):
        if not left:
            break
        seed = left.pop(0)
        near = sorted(
            (a for a in left if _km((seed.lon, seed.lat), (a.lon, a.lat)) < 250.0),
            key=lambda a: (_km((seed.lon, seed.lat), (a.lon, a.lat)), a.area_id),
        )[:2]
        for a in near:
            left.remove(a)
        plans.append((takeoff(0.4), "mq9_shallow" if seed.kind == "border" else "mq9_deep", [seed, *near]))
    # U-2s: the rest, in legs chained from the base, one by day and one by night (which boxes get the
    # night flight alternates from day to day)
    u2_base = BASES["Davis-Monthan AFB (KDMA)"]
    for k in range(2):
        if not left:
            break
        chain = _chain(u2_base, left)[: cfg.u2_areas_per_sortie]
        for a in chain:
            left.remove(a)
        if (k + day) % 2:
            t0 = d0 + int(rng.uniform(0.0, 2.0 * 3600))
        else:
            t0 = d0 + int(rng.uniform(12.5 * 3600, 15.0 * 3600))
        plans.append((t0, "u2_legs", chain))
    return plans


PLAN_PLANTS = ("depth", "outside-area", "altitude")
"""Violations planted in the flight plan (of MQ-9 sorties over the border band, item C1)."""
RECORD_PLANTS = ("time-window", "platform-type", "notification-late", "report-late", "report-missing", "no-agreement")
"""Violations planted in the paperwork (the claim, the notification, the post-flight report)."""
PLANT_SHARE = 0.25
"""Share of the sorties flown under an agreement over the host that break one rule on purpose."""


class _Plants:
    """Which rule the next planted violation breaks: every rule in turn, in a seeded order."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        rules = [*PLAN_PLANTS, *RECORD_PLANTS]
        self.queue = [rules[int(i)] for _ in range(50) for i in rng.permutation(len(rules))]

    def draw(self, allowed: tuple[str, ...]) -> str | None:
        """With probability :data:`PLANT_SHARE`, the first queued rule among ``allowed`` (taken off the queue)."""
        if self.rng.random() >= PLANT_SHARE:
            return None
        for k, rule in enumerate(self.queue):
            if rule in allowed:
                return self.queue.pop(k)
        return None


def build_sorties(
    cfg: ScenarioConfig,
    sites: Sites,
    world: World,
    rng: np.random.Generator,
    areas: list[Area] | None = None,
    plant_rng: np.random.Generator | None = None,
) -> list[Sortie]:
    """All sorties of the scenario, in take-off order within each day (ids by day and order).

    ``areas`` is the tasking (:func:`build_tasking` when not given). Tasked sorties get platforms
    first; a platform needs 4 h on the ground between sorties. Each sortie claims the collection item
    of its mission (:data:`ITEM_OF_MISSION`; RC-135s claim none), notifies the host in time and files
    its report by the deadline, except for the violations planted on purpose (``plant_rng``, seeded
    apart so that planting leaves the flights themselves unchanged; see :class:`_Plants`), which each
    sortie lists in ``planted``.
    """
    if areas is None:
        areas = build_tasking(cfg, sites, world, rng)
    plants = _Plants(plant_rng if plant_rng is not None else np.random.default_rng(0))
    names = [m[0] for m in MISSIONS]
    weights = np.array([m[2] for m in MISSIONS])
    weights = weights / weights.sum()
    booked: dict[str, list[tuple[int, int]]] = {p[0]: [] for p in PLATFORMS}
    out: list[Sortie] = []
    turnaround = 4 * 3600
    items = {c["id"]: c for a in agreements_record(cfg) for c in a["collection"]}

    def free_at(pid: str, t0: int, t1: int) -> bool:
        return all(t1 + turnaround <= a or t0 >= b + turnaround for a, b in booked[pid])

    for day in range(cfg.days):
        n = int(rng.poisson(cfg.sorties_per_day))
        untasked: list[tuple[int, str, list[Area]]] = [
            (int(cfg.day_start_s(day) + rng.integers(0, 20 * 3600)), names[int(rng.choice(len(names), p=weights))], [])
            for _ in range(n)
        ]
        flown: list[tuple[int, str, str, str, list[Area], tuple[I64, F64, F64, F64, F64, F64], str | None]] = []
        for t0, mission, tasked in [*_tasked_plans(cfg, day, areas, rng), *sorted(untasked, key=lambda p: p[0])]:
            ptype_name = TASKED.get(mission) or next(m[1] for m in MISSIONS if m[0] == mission)
            cands = [p for p in PLATFORMS if p[1] == ptype_name]
            if mission.startswith("p8_"):
                gulf = mission == "p8_gulf" or (mission == "p8_coast" and tasked[0].basin == "gulf")
                want = "NAS Corpus Christi (KNGP)" if gulf else "NAS North Island (KNZY)"
                cands = [p for p in cands if p[2] == want]
            if tasked and mission.startswith("mq9_"):  # the MQ-9 whose base is nearest the first box
                cands.sort(key=lambda p: (_km(BASES[p[2]], (tasked[0].lon, tasked[0].lat)), p[0]))
            cands = [p for p in cands if free_at(p[0], t0, t0 + 3600)]
            if not cands and not tasked:  # that type is busy: fly a border orbit instead when an MQ-9 is free
                mission, ptype_name = "mq9_border", "MQ-9"
                cands = [p for p in PLATFORMS if p[1] == ptype_name and free_at(p[0], t0, t0 + 3600)]
            plant = plants.draw(PLAN_PLANTS) if mission == "mq9_shallow" and cands else None
            for pid, _, base in cands:
                legs = _chain(BASES[base], tasked) if mission == "u2_legs" else tasked
                done: list[str] = []
                wx, wy, wa, ws = _plan(mission, PLATFORM_TYPES[ptype_name], BASES[base], legs, world, rng, plant, done)
                track = _fly(wx, wy, wa, ws, t0)
                if free_at(pid, t0, int(track[0][-1])):
                    booked[pid].append((t0, int(track[0][-1])))
                    flown.append((t0, pid, base, mission, legs, track, done[0] if done else None))
                    break
        flown.sort(key=lambda f: (f[0], f[1]))
        for k, (t0, pid, base, mission, _legs, (t, x, y, z, s, c), planted) in enumerate(flown, start=1):
            sid = f"S-{datetime.fromtimestamp(cfg.day_start_s(day), tz=UTC):%Y%m%d}-{k:02d}"
            item: str | None = ITEM_OF_MISSION.get(mission)
            if not mission.startswith("rc135_"):
                rng.random()  # (a draw once spent on a random claim: kept so that later flights stay as they were)
            fx = reported_fixes(t)
            over_host = bool(in_host(x[fx], y[fx]).any())
            ptype = next(p[1] for p in PLATFORMS if p[0] == pid)
            if planted is None and item is not None and over_host:
                # the crew files under the item that covers the flight as flown (a border-band MQ-9 sortie that
                # went deeper or over the sea is filed under the country-wide item)
                # judged on the reported fixes and the chords between them, as the host will judge it
                cx, cy = np.interp(t, t[fx], x[fx]), np.interp(t, t[fx], y[fx])
                for cand in dict.fromkeys((item, *ITEM_OF_MISSION.values())):
                    if not track_rules(t, cx, cy, z, ptype, items[cand], strict=True):
                        item = cand
                        break
            if planted is None and item is not None and over_host:
                allowed = RECORD_PLANTS if item == "AGR-2026-001/C1" else RECORD_PLANTS[2:]
                planted = plants.draw(allowed)
            if planted == "time-window":
                item = EXPIRED_ITEM
            elif planted == "platform-type":
                item = OTHER_TYPE_ITEM
            elif planted == "no-agreement":
                item = None
            lead = float(items[item]["notification_lead_h"]) if item else 24.0
            deadline = float(items[item]["report_deadline_h"]) if item else 48.0
            notified: int | None = None
            if item is not None:
                rng.random()
                rng.uniform()
                hours = plants.rng.uniform(1.0, lead - 1.0) if planted == "notification-late" else (
                    lead + plants.rng.uniform(1.0, 30.0))  # fmt: skip
                notified = t0 - int(3600 * hours)
            if rng.random() > 0.05:
                rng.uniform()
            report: int | None = int(t[-1]) + int(3600 * plants.rng.uniform(1.0, deadline - 2.0))
            if planted == "report-late":
                report = int(t[-1]) + int(3600 * (deadline + plants.rng.uniform(2.0, 30.0)))
            elif planted == "report-missing":
                report = None
            out.append(
                Sortie(
                    sortie_id=sid,
                    platform_id=pid,
                    platform_type=ptype,
                    base=base,
                    mission=mission,
                    agreement_id=item.split("/", 1)[0] if item else None,
                    authorisation_id=item,
                    notified_at=notified,
                    report_filed_at=report,
                    planted=(planted,) if planted else (),
                    t=t,
                    lon=x,
                    lat=y,
                    alt=z,
                    speed=s,
                    course=c,
                )
            )
    return out


# --------------------------------------------------------------------------- records


def platforms_record() -> list[dict[str, Any]]:
    """``records/platforms.json``."""
    return [
        {
            "platform_id": pid,
            "platform_type": ptype,
            "party": COLLECTOR,
            "base": base,
            "base_lon": BASES[base][0],
            "base_lat": BASES[base][1],
            "cruise_mps": PLATFORM_TYPES[ptype].cruise_mps,
            "alt_m": PLATFORM_TYPES[ptype].alt_m,
            "sensors": list(PLATFORM_TYPES[ptype].sensors),
        }
        for pid, ptype, base in PLATFORMS
    ]


def parties_record() -> list[dict[str, Any]]:
    """``records/parties.json``."""
    return [
        {"code": COLLECTOR, "name": "United States of America", "role": "collecting"},
        {"code": HOST, "name": "Estados Unidos Mexicanos", "role": "host"},
    ]


def _z(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


MX_STATES: tuple[str, ...] = (
    "MX-AGU", "MX-BCN", "MX-BCS", "MX-CAM", "MX-CHH", "MX-CHP", "MX-CMX", "MX-COA", "MX-COL", "MX-DUR", "MX-GRO",
    "MX-GUA", "MX-HID", "MX-JAL", "MX-MEX", "MX-MIC", "MX-MOR", "MX-NAY", "MX-NLE", "MX-OAX", "MX-PUE", "MX-QUE",
    "MX-ROO", "MX-SIN", "MX-SLP", "MX-SON", "MX-TAB", "MX-TAM", "MX-TLA", "MX-VER", "MX-YUC", "MX-ZAC",
)  # fmt: skip
"""Every Mexican state (ISO 3166-2)."""

PACIFIC_AREA = {
    "type": "Polygon",
    "coordinates": [
        [[-119.5, 33.0], [-114.5, 33.0], [-111.0, 31.5], [-109.2, 29.0], [-107.5, 26.5], [-105.0, 23.8],
         [-103.8, 21.5], [-102.8, 19.8], [-100.5, 18.6], [-98.0, 17.7], [-95.5, 17.3], [-93.0, 16.3], [-91.8, 15.2],
         [-91.5, 12.5], [-105.0, 13.0], [-115.0, 18.0], [-121.0, 26.0], [-119.5, 33.0]]
    ],
}  # fmt: skip
"""Pacific approaches: Baja California, the Gulf of California and the Pacific coast with its waters."""
GULF_AREA = {
    "type": "Polygon",
    "coordinates": [
        [[-97.8, 28.0], [-93.0, 28.0], [-84.0, 23.0], [-85.0, 16.5], [-89.2, 15.8], [-91.5, 17.0], [-94.5, 16.8],
         [-96.8, 18.0], [-98.3, 20.5], [-99.0, 23.0], [-99.3, 25.5], [-98.8, 27.0], [-97.8, 28.0]]
    ],
}  # fmt: skip
"""Gulf of Mexico and Caribbean approaches: the Gulf coast and the Yucatán peninsula with their waters."""


@cache
def border_strip() -> dict[str, Any]:
    """A GeoJSON polygon 2–3 km either side of the MEX–USA land border: the river and the strip along it, where
    the country and state outlines of the map disagree by a few hundred metres."""
    from atalaya.scenario.world import get_world

    g = shapely.simplify(shapely.buffer(get_world().border, 0.025, quad_segs=2), 0.005)
    if g.geom_type != "Polygon":
        g = max(getattr(g, "geoms", [g]), key=lambda p: p.area)
    ring = [[round(float(x), 4), round(float(y), 4)] for x, y in shapely.get_coordinates(g.exterior)]
    return {"type": "Polygon", "coordinates": [ring]}


PLANTED_LOW_M = 3_500.0
"""Altitude of the orbit flown below the band on purpose (a planted ``altitude`` violation)."""

_ITEMS: dict[str, dict[str, Any]] = {
    "C1": {
        "title": "MQ-9 collection over the border band",
        "platform_types": ["MQ-9"],
        "areas": [{"states": ["MX-BCN", "MX-SON", "MX-CHH", "MX-COA", "MX-NLE", "MX-TAM"]}, {"border_strip": True}],
        "max_depth_km": 130,
        "altitude_m": {"min": 5000, "max": 9000},
        "notification_lead_h": 24,
        "report_deadline_h": 48,
    },
    "C2": {
        "title": "High-altitude and deep collection over the whole country",
        "platform_types": ["MQ-9", "U-2"],
        "areas": [
            {"states": list(MX_STATES)},
            {"polygon": PACIFIC_AREA},
            {"polygon": GULF_AREA},
            {"border_strip": True},
        ],
        "max_depth_km": 900,
        "altitude_m": {"min": 5000, "max": 21000},
        "notification_lead_h": 48,
        "report_deadline_h": 72,
    },
    "C3": {
        "title": "Maritime patrol of the coasts and their approaches",
        "platform_types": ["P-8"],
        "areas": [{"polygon": PACIFIC_AREA}, {"polygon": GULF_AREA}],
        "max_depth_km": 250,
        "altitude_m": {"min": 150, "max": 9000},
        "notification_lead_h": 12,
        "report_deadline_h": 48,
    },
}
"""Collection items of the scenario's agreements (limits; ids, parties and time windows are added per scenario)."""

ITEM_OF_MISSION: dict[str, str] = {
    "mq9_border": "AGR-2026-001/C1",
    "mq9_shallow": "AGR-2026-001/C1",
    "mq9_deep": "AGR-2026-001/C2",
    "u2_legs": "AGR-2026-001/C2",
    "p8_coast": "AGR-2026-002/C3",
    "p8_gulf": "AGR-2026-002/C3",
    "p8_pacific": "AGR-2026-002/C3",
}
"""The collection item each mission is flown under (RC-135 missions claim none)."""

EXPIRED_ITEM = "AGR-2026-001/C4"
"""Twin of C1 whose time window closed before the scenario (claimed by planted ``time-window`` violations)."""
OTHER_TYPE_ITEM = "AGR-2026-001/C5"
"""Twin of C1 for the MQ-1C (claimed by MQ-9 sorties in planted ``platform-type`` violations)."""

EFFECTIVE_YEARS = 10
"""The agreements stay in force this many years from the scenario's start (the demo works on any date)."""


def collection_window(cfg: ScenarioConfig) -> tuple[datetime, datetime]:
    """The collection time window of the scenario's items: from a day before the start to two days after the last
    day (flights of the last day land after midnight), and at least 30 days."""
    return cfg.start - timedelta(days=1), cfg.start + timedelta(days=max(cfg.days + 2, 30)) - timedelta(seconds=1)


def _item(item_id: str, key: str, window: tuple[datetime, datetime], **over: Any) -> dict[str, Any]:
    d = {k: v for k, v in _ITEMS[key].items() if k != "title"}
    d.update(over)
    d["areas"] = [{"polygon": border_strip()} if a.get("border_strip") else a for a in d["areas"]]
    return {
        "id": item_id,
        "collector": COLLECTOR,
        "host": HOST,
        "platform_types": d["platform_types"],
        "areas": d["areas"],
        "max_depth_km": d["max_depth_km"],
        "time_windows": [{"from": _z(window[0]), "to": _z(window[1])}],
        "altitude_m": d["altitude_m"],
        "notification_lead_h": d["notification_lead_h"],
        "report_deadline_h": d["report_deadline_h"],
    }


def agreements_record(cfg: ScenarioConfig) -> list[dict[str, Any]]:
    """The draft agreements (one YAML file each in ``records/agreements/``).

    They are in force for :data:`EFFECTIVE_YEARS` years from the scenario's start (sharing terms outlive
    the flights); their collection items' time windows bound the scenario's flights
    (:func:`collection_window`).
    """
    start = cfg.start
    effective = {"from": _z(start - timedelta(days=90)), "to": _z(start + timedelta(days=365 * EFFECTIVE_YEARS + 2))}
    window = collection_window(cfg)
    expired = (start - timedelta(days=60), start - timedelta(days=30, seconds=1))
    sharing = [
        {
            "from": COLLECTOR,
            "to": HOST,
            "max_tlp": "AMBER",
            "caveats": ["INTEL-ONLY", "NO-ACTION-WITHOUT-HOST-CONSENT"],
            "products": ["sites", "crossings", "corridors", "sorties", "reports"],
        },
        {"from": HOST, "to": COLLECTOR, "max_tlp": "AMBER", "caveats": ["INTEL-ONLY"], "products": ["sites"]},
    ]
    return [
        {
            "id": "AGR-2026-001",
            "version": 1,
            "title": "Counter-narcotics aerial surveillance over Mexico (draft)",
            "parties": [COLLECTOR, HOST],
            "effective": effective,
            "collection": [
                _item("AGR-2026-001/C1", "C1", window),
                _item("AGR-2026-001/C2", "C2", window),
                _item(EXPIRED_ITEM, "C1", expired),
                _item(OTHER_TYPE_ITEM, "C1", window, platform_types=["MQ-1C"]),
            ],
            "sharing": sharing,
            "retention": {"observations_days": 90, "products_days": 365},
        },
        {
            "id": "AGR-2026-002",
            "version": 1,
            "title": "Maritime patrol off the Pacific and Gulf coasts of Mexico (draft)",
            "parties": [COLLECTOR, HOST],
            "effective": effective,
            "collection": [_item("AGR-2026-002/C3", "C3", window)],
            "sharing": sharing,
            "retention": {"observations_days": 60, "products_days": 365},
        },
    ]
