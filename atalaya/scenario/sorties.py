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

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import shapely

from atalaya.scenario.config import DAY_S, ScenarioConfig
from atalaya.scenario.sites import Sites
from atalaya.scenario.world import (
    F64,
    I64,
    LAB_STATES,
    World,
    circle,
    flat_m,
    knots,
    offset,
    racetrack,
    sample_knots,
    unflat,
)

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


def _plan(
    mission: str,
    ptype: PlatformType,
    base: tuple[float, float],
    areas: list[Area],
    world: World,
    rng: np.random.Generator,
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Waypoints (lon, lat, alt, speed of the leg leaving each waypoint) from base back to base."""
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
        dx, dy = x - bx, y - by
        az = float(np.degrees(np.arctan2(dx * np.cos(np.radians(by)), dy)))
        cx, cy = offset(bx, by, az, 40_000.0)
        go(cx, cy, h, v)

    def orbit(cx: float, cy: float, radius: float, hours: float, alt: float, speed: float) -> None:
        turns = max(1.0, hours * 3600.0 * speed / (2 * np.pi * radius))
        ox, oy = circle(cx, cy, radius, turns=float(np.floor(turns)))
        for x, y in zip(ox.tolist(), oy.tolist(), strict=True):
            go(x, y, alt, speed)

    if mission == "mq9_border":
        f = float(rng.uniform(0.05, 0.95))
        p = shapely.line_interpolate_point(world.border, f, normalized=True)
        cx, cy = offset(float(p.x), float(p.y), 0.0, float(rng.uniform(25_000.0, 45_000.0)))
        climb_toward(cx, cy)
        _stay_north(world, wx, wy, wa, ws, cx, cy, h, v)
        orbit(cx, cy, 10_000.0, float(rng.uniform(8, 14)), h, v)
    elif mission in ("mq9_shallow", "mq9_deep"):
        # orbit each tasked box in turn, alternating an inner and an outer circle to cover it
        climb_toward(areas[0].lon, areas[0].lat)
        per = float(rng.uniform(8, 12)) / len(areas)
        for a in areas:
            inner = max(5_000.0, 0.3 * a.half_m)
            outer = max(a.half_m - 6_000.0, inner + 5_000.0)
            for _ in range(max(1, round(per))):
                orbit(a.lon, a.lat, inner, 0.4, h, v)
                orbit(a.lon, a.lat, outer, 0.6, h, v)
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
    lx, ly = wx[-1], wy[-1]
    az = float(np.degrees(np.arctan2((lx - bx) * np.cos(np.radians(by)), ly - by)))
    ax, ay = offset(bx, by, az, 40_000.0)
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


def build_sorties(
    cfg: ScenarioConfig, sites: Sites, world: World, rng: np.random.Generator, areas: list[Area] | None = None
) -> list[Sortie]:
    """All sorties of the scenario, in take-off order within each day (ids by day and order).

    ``areas`` is the tasking (:func:`build_tasking` when not given). Tasked sorties get platforms
    first; a platform needs 4 h on the ground between sorties.
    """
    if areas is None:
        areas = build_tasking(cfg, sites, world, rng)
    names = [m[0] for m in MISSIONS]
    weights = np.array([m[2] for m in MISSIONS])
    weights = weights / weights.sum()
    booked: dict[str, list[tuple[int, int]]] = {p[0]: [] for p in PLATFORMS}
    out: list[Sortie] = []
    window_end = cfg.start_s + 3 * DAY_S  # agreement window of the deep collection item
    turnaround = 4 * 3600

    def free_at(pid: str, t0: int, t1: int) -> bool:
        return all(t1 + turnaround <= a or t0 >= b + turnaround for a, b in booked[pid])

    for day in range(cfg.days):
        n = int(rng.poisson(cfg.sorties_per_day))
        untasked: list[tuple[int, str, list[Area]]] = [
            (int(cfg.day_start_s(day) + rng.integers(0, 20 * 3600)), names[int(rng.choice(len(names), p=weights))], [])
            for _ in range(n)
        ]
        flown: list[tuple[int, str, str, str, list[Area], tuple[I64, F64, F64, F64, F64, F64]]] = []
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
            for pid, _, base in cands:
                legs = _chain(BASES[base], tasked) if mission == "u2_legs" else tasked
                wx, wy, wa, ws = _plan(mission, PLATFORM_TYPES[ptype_name], BASES[base], legs, world, rng)
                track = _fly(wx, wy, wa, ws, t0)
                if free_at(pid, t0, int(track[0][-1])):
                    booked[pid].append((t0, int(track[0][-1])))
                    flown.append((t0, pid, base, mission, legs, track))
                    break
        flown.sort(key=lambda f: (f[0], f[1]))
        for k, (t0, pid, base, mission, _legs, (t, x, y, z, s, c)) in enumerate(flown, start=1):
            sid = f"S-{datetime.fromtimestamp(cfg.day_start_s(day), tz=UTC):%Y%m%d}-{k:02d}"
            agreement, item = _claim(mission, t0, window_end, rng)
            lead = {"C1": 24, "C2": 48, "C3": 12}.get((item or "").rsplit("/", 1)[-1], 24)
            notified: int | None = None
            if agreement is not None:
                late = rng.random() < 0.15
                notified = t0 - int(3600 * (rng.uniform(1, lead - 1) if late else rng.uniform(lead + 1, lead + 30)))
            r = rng.random()
            report: int | None = None
            if r > 0.05:
                report = int(t[-1]) + int(3600 * (rng.uniform(2, 40) if r > 0.15 else rng.uniform(80, 120)))
            out.append(
                Sortie(
                    sortie_id=sid,
                    platform_id=pid,
                    platform_type=next(p[1] for p in PLATFORMS if p[0] == pid),
                    base=base,
                    mission=mission,
                    agreement_id=agreement,
                    authorisation_id=item,
                    notified_at=notified,
                    report_filed_at=report,
                    t=t,
                    lon=x,
                    lat=y,
                    alt=z,
                    speed=s,
                    course=c,
                )
            )
    return out


def _claim(mission: str, t0: int, window_end: int, rng: np.random.Generator) -> tuple[str | None, str | None]:
    if mission.startswith("rc135_") or rng.random() < 0.1:
        return None, None
    if mission.startswith("p8_"):
        return "AGR-2026-002", "AGR-2026-002/C3"
    if mission in ("mq9_border", "mq9_shallow"):
        return "AGR-2026-001", "AGR-2026-001/C1"
    return "AGR-2026-001", "AGR-2026-001/C2"


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


GULF_AREA = {
    "type": "Polygon",
    "coordinates": [[[-97.9, 21.0], [-96.5, 21.0], [-94.0, 25.5], [-94.0, 27.0], [-97.6, 27.0], [-97.9, 21.0]]],
}
PACIFIC_AREA = {
    "type": "Polygon",
    "coordinates": [
        [[-112.5, 27.0], [-108.0, 22.0], [-105.0, 20.5], [-106.5, 19.5], [-111.0, 22.0], [-114.5, 27.0], [-112.5, 27.0]]
    ],
}


def agreements_record(cfg: ScenarioConfig) -> list[dict[str, Any]]:
    """The draft agreements (one YAML file each in ``records/agreements/``)."""
    start = cfg.start
    month_from = start - timedelta(days=1)
    month_to = start + timedelta(days=29, hours=23, minutes=59, seconds=59)
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
            "title": "Northern Mexico counter-narcotics aerial surveillance (draft)",
            "parties": [COLLECTOR, HOST],
            "effective": {"from": _z(month_from), "to": _z(start + timedelta(days=120))},
            "collection": [
                {
                    "id": "AGR-2026-001/C1",
                    "collector": COLLECTOR,
                    "host": HOST,
                    "platform_types": ["MQ-9"],
                    "areas": [{"states": ["MX-BCN", "MX-SON", "MX-CHH", "MX-COA", "MX-NLE", "MX-TAM"]}],
                    "max_depth_km": 60,
                    "time_windows": [{"from": _z(month_from), "to": _z(month_to)}],
                    "altitude_m": {"min": 5000, "max": 9000},
                    "notification_lead_h": 24,
                    "report_deadline_h": 48,
                },
                {
                    "id": "AGR-2026-001/C2",
                    "collector": COLLECTOR,
                    "host": HOST,
                    "platform_types": ["MQ-9", "U-2"],
                    "areas": [{"states": ["MX-SON", "MX-CHH", "MX-SIN", "MX-DUR"]}],
                    "max_depth_km": 700,
                    "time_windows": [{"from": _z(start), "to": _z(start + timedelta(days=3))}],
                    "altitude_m": {"min": 5000, "max": 21000},
                    "notification_lead_h": 48,
                    "report_deadline_h": 72,
                },
            ],
            "sharing": sharing,
            "retention": {"observations_days": 90, "products_days": 365},
        },
        {
            "id": "AGR-2026-002",
            "version": 1,
            "title": "Maritime patrol in the Gulf of Mexico and the Gulf of California approaches (draft)",
            "parties": [COLLECTOR, HOST],
            "effective": {"from": _z(month_from), "to": _z(start + timedelta(days=120))},
            "collection": [
                {
                    "id": "AGR-2026-002/C3",
                    "collector": COLLECTOR,
                    "host": HOST,
                    "platform_types": ["P-8"],
                    "areas": [{"polygon": GULF_AREA}, {"polygon": PACIFIC_AREA}],
                    "max_depth_km": 25,
                    "time_windows": [{"from": _z(month_from), "to": _z(month_to)}],
                    "altitude_m": {"min": 150, "max": 9000},
                    "notification_lead_h": 12,
                    "report_deadline_h": 48,
                }
            ],
            "sharing": sharing,
            "retention": {"observations_days": 60, "products_days": 365},
        },
    ]
