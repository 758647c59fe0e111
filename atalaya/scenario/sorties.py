"""Collection platforms, their sorties and flown tracks, and the draft agreements they claim.

Four platform types fly from US bases: MQ-9 drones orbiting at 7,500 m
(~85 m/s), the U-2 flying long legs at 20,000 m (~210 m/s), the RC-135 on
racetracks at 10,000 m (~230 m/s) and the P-8 (240 m/s transit at 7,000 m,
150 m/s patrols at 300 m over the sea). Missions range from orbits on the US
side of the border to deep orbits over the Sinaloa/Durango sierra, some inside
an agreement's area and time window, some not, some claiming none.
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
from atalaya.scenario.world import F64, I64, World, circle, knots, offset, racetrack, sample_knots

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
    ("U2-01", "U-2", "Davis-Monthan AFB (KDMA)"),
    ("RC135-01", "RC-135", "JBSA-Lackland (KSKF)"),
    ("P8-01", "P-8", "NAS Corpus Christi (KNGP)"),
    ("P8-02", "P-8", "NAS North Island (KNZY)"),
)
"""``(platform_id, type, home base)``."""

MISSIONS: tuple[tuple[str, str, float], ...] = (
    ("mq9_border", "MQ-9", 1.0),
    ("mq9_shallow", "MQ-9", 1.2),
    ("mq9_deep", "MQ-9", 1.4),
    ("u2_legs", "U-2", 0.6),
    ("rc135_border", "RC-135", 0.7),
    ("p8_gulf", "P-8", 0.6),
    ("p8_pacific", "P-8", 0.5),
)
"""``(mission, platform type, weight)``."""


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


def _fly(
    wx: list[float], wy: list[float], walt: list[float], wspd: list[float], t0: int
) -> tuple[I64, F64, F64, F64, F64, F64]:
    tk, xk, yk, sk, zk = knots(np.array(wx), np.array(wy), np.array(wspd), t0=float(t0), alt=np.array(walt))
    t = np.arange(t0, int(np.floor(tk[-1])) + 1, dtype=np.int64)
    x, y, s, c = sample_knots(tk, xk, yk, sk, t.astype(np.float64))
    z = np.interp(t.astype(np.float64), tk, zk)
    return t, x, y, z, s, c


def _plan(
    mission: str, ptype: PlatformType, base: tuple[float, float], sites: Sites, world: World, rng: np.random.Generator
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
    elif mission == "mq9_shallow":
        order = sorted(sites.stash_houses, key=lambda st: (st.lon - bx) ** 2 + (st.lat - by) ** 2)
        s = order[int(rng.integers(max(1, len(order) // 2)))]
        climb_toward(s.lon, s.lat)
        orbit(s.lon, s.lat, 8_000.0, float(rng.uniform(8, 14)), h, v)
    elif mission == "mq9_deep":
        near = [lab for lab in sites.labs if lab.state in ("MX-SIN", "MX-DUR", "MX-CHH")] or sites.labs
        if rng.random() < 0.2:
            near = [lab for lab in sites.labs if lab.state in ("MX-MIC", "MX-JAL")] or near
        lab = near[int(rng.integers(len(near)))]
        cx, cy = offset(lab.lon, lab.lat, float(rng.uniform(0, 360)), float(rng.uniform(0, 6_000)))
        climb_toward(cx, cy)
        orbit(cx, cy, 12_000.0, float(rng.uniform(6, 12)), h, v)
    elif mission == "u2_legs":
        picks = rng.choice(len(sites.labs), size=min(4, len(sites.labs)), replace=False)
        stops = sorted((sites.labs[int(i)] for i in picks), key=lambda lb: (lb.lat, lb.lon), reverse=True)
        climb_toward(stops[0].lon, stops[0].lat)
        for lb in stops:
            go(lb.lon, lb.lat, h, v)
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
    else:  # P-8 maritime patrol: transit high, patrol low over the sea near landing beaches
        basin_states = (
            ("MX-TAM", "MX-VER", "MX-CAM", "MX-ROO") if mission == "p8_gulf" else ("MX-SIN", "MX-SON", "MX-NAY")
        )
        cands = [b for b in sites.beaches if b.state in basin_states]
        if cands and rng.random() < 0.6:
            b = cands[int(rng.integers(len(cands)))]
            assert b.approach is not None  # beaches always carry an approach point
            cx, cy = offset(
                b.approach[0], b.approach[1], float(rng.uniform(0, 360)), float(rng.uniform(20_000, 60_000))
            )
        else:
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


def build_sorties(cfg: ScenarioConfig, sites: Sites, world: World, rng: np.random.Generator) -> list[Sortie]:
    """All sorties of the scenario, in take-off order (ids by day and order)."""
    names = [m[0] for m in MISSIONS]
    weights = np.array([m[2] for m in MISSIONS])
    weights = weights / weights.sum()
    busy_until: dict[str, int] = {p[0]: 0 for p in PLATFORMS}
    out: list[Sortie] = []
    window_end = cfg.start_s + 3 * DAY_S  # agreement window of the deep collection item
    for day in range(cfg.days):
        n = max(1, int(rng.poisson(cfg.sorties_per_day)))
        plans: list[tuple[int, str]] = sorted(
            (int(cfg.day_start_s(day) + rng.integers(0, 20 * 3600)), names[int(rng.choice(len(names), p=weights))])
            for _ in range(n)
        )
        k = 0
        for t0, mission in plans:
            ptype_name = next(m[1] for m in MISSIONS if m[0] == mission)
            free = [p for p in PLATFORMS if p[1] == ptype_name and busy_until[p[0]] < t0]
            if mission.startswith("p8_"):
                want = "NAS Corpus Christi (KNGP)" if mission == "p8_gulf" else "NAS North Island (KNZY)"
                free = [p for p in free if p[2] == want]
            if not free:  # that type is busy: fly an MQ-9 mission instead when one is free
                mission = ("mq9_border", "mq9_shallow", "mq9_deep")[int(rng.integers(3))]
                ptype_name = "MQ-9"
                free = [p for p in PLATFORMS if p[1] == ptype_name and busy_until[p[0]] < t0]
            if not free:
                continue
            pid, _, base = free[0]
            ptype = PLATFORM_TYPES[ptype_name]
            wx, wy, wa, ws = _plan(mission, ptype, BASES[base], sites, world, rng)
            t, x, y, z, s, c = _fly(wx, wy, wa, ws, t0)
            busy_until[pid] = int(t[-1]) + 4 * 3600
            k += 1
            sid = f"S-{datetime.fromtimestamp(cfg.day_start_s(day), tz=UTC):%Y%m%d}-{k:02d}"
            agreement, item = _claim(mission, t0, window_end, rng)
            lead = {"C1": 24, "C2": 48, "C3": 12}.get(item or "", 24)
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
                    platform_type=ptype_name,
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
    if mission == "rc135_border" or rng.random() < 0.1:
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
