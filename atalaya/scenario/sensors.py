"""Airborne sensors: footprints, detection probability, position noise and false alarms.

Only what lies under a sortie's sensor footprint at the time can be detected:
each sensor scans at a fixed interval while the platform is airborne and
detects each target within its footprint radius with its probability, with
Gaussian position noise (SIGINT with a rotated error ellipse) and Poisson false
alarms spread over the footprint.

- EO: structures (sites, a landing beach's fuel cache and legitimate
  buildings), vehicles, vessels, and what stands at a site while it is in use:
  the crew's trucks at an active lab or stash house, the aircraft and the
  vehicles meeting it on a clandestine airstrip, the beached go-fast and its
  reception party on a landing beach. EO sees less by night.
- IR: heat (active labs at night, legitimate heat sources, cooking fires at
  ranches by night).
- GMTI: moving road vehicles (speed and course, no identity).
- SIGINT: phone transmissions geolocated with error ellipses (emitter id) that
  grow with range, the long axis along the line of sight.
- RADAR: maritime surface contacts (all vessels, go-fast boats included).

Legitimate look-alikes keep precision hard: ranches with parked vehicles on
some days and cooking fires by night, kilns and burns by day and night, and
false alarms of every kind.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from atalaya.scenario.movement import DayTraffic, emissions_arrays
from atalaya.scenario.sites import Site, Sites
from atalaya.scenario.sorties import Sortie
from atalaya.scenario.world import F64, I64, flat_m, unflat

OBJ = npt.NDArray[np.object_]


@dataclass(frozen=True, kw_only=True)
class SensorSpec:
    """One sensor on one platform type."""

    sensor: str
    """``Sensor`` value."""
    radius_m: float
    """Footprint radius around the platform's nadir, metres."""
    scan_s: int
    """Seconds between scans of moving targets."""
    static_scan_s: int
    """Seconds between looks at fixed targets (sites, heat sources)."""
    pd: float
    """Probability of detecting a target inside the footprint per scan."""
    err_m: tuple[float, float]
    """Range of the 1-sigma position error (semi-major axis), metres."""
    fa_per_scan: float
    """Mean false alarms per scan."""
    err_per_km: float = 0.0
    """Growth of the semi-major error axis per km of range to the target (SIGINT), metres."""


def _spec(
    sensor: str,
    radius_km: float,
    scan: int,
    static: int,
    pd: float,
    err: tuple[float, float],
    fa: float,
    per_km: float = 0.0,
) -> SensorSpec:
    return SensorSpec(
        sensor=sensor,
        radius_m=radius_km * 1000.0,
        scan_s=scan,
        static_scan_s=static,
        pd=pd,
        err_m=err,
        fa_per_scan=fa,
        err_per_km=per_km,
    )


NIGHT_EO = 0.5
"""Factor on EO detection probability of fixed targets at local night."""


SPECS: dict[str, tuple[SensorSpec, ...]] = {
    "MQ-9": (
        _spec("EO", 12, scan=60, static=120, pd=0.5, err=(15, 40), fa=0.015),
        _spec("IR", 12, scan=60, static=120, pd=0.7, err=(20, 60), fa=0.004),
        _spec("GMTI", 30, scan=20, static=0, pd=0.8, err=(30, 60), fa=0.02),
        _spec("SIGINT", 40, scan=0, static=0, pd=0.6, err=(100, 300), fa=0.0, per_km=8.0),
    ),
    "U-2": (
        _spec("EO", 40, scan=0, static=150, pd=0.5, err=(30, 80), fa=0.03),
        _spec("IR", 40, scan=0, static=150, pd=0.6, err=(40, 100), fa=0.008),
        _spec("SIGINT", 150, scan=0, static=0, pd=0.5, err=(200, 600), fa=0.0, per_km=10.0),
    ),
    "RC-135": (_spec("SIGINT", 300, scan=0, static=0, pd=0.7, err=(300, 900), fa=0.0, per_km=10.0),),
    "P-8": (
        _spec("RADAR", 120, scan=60, static=0, pd=0.85, err=(100, 250), fa=0.1),
        _spec("EO", 15, scan=60, static=60, pd=0.6, err=(20, 50), fa=0.01),
    ),
}
"""Sensors carried by each platform type."""

ROW_FIELDS = (
    "time",
    "lon",
    "lat",
    "pos_err_m",
    "err_minor_m",
    "err_orient_deg",
    "speed_mps",
    "course_deg",
    "kind",
    "ident",
    "confidence",
    "truth_id",
)


@dataclass(kw_only=True)
class Targets:
    """Arrays of one target population for one day."""

    t: F64
    """Times (NaN for fixed targets)."""
    lon: F64
    """Longitudes."""
    lat: F64
    """Latitudes."""
    speed: F64
    """Speeds (NaN where not measured)."""
    course: F64
    """Courses (NaN where not measured)."""
    kind: OBJ
    """Object kind reported."""
    truth: OBJ
    """True object id."""
    ident: OBJ
    """Identifier the sensor reads (SIGINT emitter), else ``None``."""
    night: npt.NDArray[np.bool_] | None = None
    """For fixed targets: hot only at local night (active labs), else always."""
    since: F64 | None = None
    """For fixed targets: present from this time (Unix s; NaN or ``None``: all day)."""
    until: F64 | None = None
    """For fixed targets: present until this time (Unix s; NaN or ``None``: all day)."""


def _empty_targets() -> Targets:
    z = np.zeros(0)
    o = np.zeros(0, dtype=object)
    return Targets(t=z, lon=z, lat=z, speed=z, course=z, kind=o, truth=o, ident=o)


def _moving(
    traffic: DayTraffic, kinds: tuple[str, ...], *, min_speed: float = -1.0, roles: tuple[str, ...] = ()
) -> Targets:
    trs = [tr for tr in traffic.tracks if tr.kind in kinds and (not roles or tr.role in roles)]
    if not trs:
        return _empty_targets()
    t = np.concatenate([tr.t for tr in trs]).astype(np.float64)
    sp = np.concatenate([tr.speed for tr in trs])
    keep = sp > min_speed
    kind = np.concatenate([np.full(tr.t.size, tr.kind, dtype=object) for tr in trs])
    truth = np.concatenate([np.full(tr.t.size, tr.trip_id, dtype=object) for tr in trs])
    return Targets(
        t=t[keep],
        lon=np.concatenate([tr.lon for tr in trs])[keep],
        lat=np.concatenate([tr.lat for tr in trs])[keep],
        speed=sp[keep],
        course=np.concatenate([tr.course for tr in trs])[keep],
        kind=kind[keep],
        truth=truth[keep],
        ident=np.full(int(keep.sum()), None, dtype=object),
    )


def _static(lon: F64, lat: F64, kind: str | OBJ, truth: list[str]) -> Targets:
    n = lon.size
    return Targets(
        t=np.full(n, np.nan),
        lon=lon,
        lat=lat,
        speed=np.full(n, np.nan),
        course=np.full(n, np.nan),
        kind=np.full(n, kind, dtype=object) if isinstance(kind, str) else kind,
        truth=np.array(truth, dtype=object),
        ident=np.full(n, None, dtype=object),
    )


def _join(parts: list[Targets]) -> Targets:
    """One fixed-target population from several (windows and night flags kept)."""
    parts = [p for p in parts if p.lon.size]
    if not parts:
        return _empty_targets()
    out = Targets(
        t=np.concatenate([p.t for p in parts]),
        lon=np.concatenate([p.lon for p in parts]),
        lat=np.concatenate([p.lat for p in parts]),
        speed=np.concatenate([p.speed for p in parts]),
        course=np.concatenate([p.course for p in parts]),
        kind=np.concatenate([p.kind for p in parts]),
        truth=np.concatenate([p.truth for p in parts]),
        ident=np.concatenate([p.ident for p in parts]),
    )
    out.night = np.concatenate([p.night if p.night is not None else np.zeros(p.lon.size, bool) for p in parts])
    out.since = np.concatenate([p.since if p.since is not None else np.full(p.lon.size, np.nan) for p in parts])
    out.until = np.concatenate([p.until if p.until is not None else np.full(p.lon.size, np.nan) for p in parts])
    return out


_ActivityRow = tuple[float, float, str, str, float, float]


def _scatter(rng: np.random.Generator, lon: float, lat: float, n: int, spread_m: float) -> tuple[F64, F64]:
    """``n`` points around a place (vehicles parked around a building, people on a beach)."""
    e, nn = rng.normal(0.0, spread_m, n), rng.normal(0.0, spread_m, n)
    return unflat(np.full(n, lon), np.full(n, lat), e, nn)


def _activity(day: int, sites: Sites, traffic: DayTraffic, rng: np.random.Generator) -> Targets:
    """What stands at the sites in use today: trucks, aircraft on the ground, beached boats, reception parties."""
    rows: list[_ActivityRow] = []
    nan = float("nan")

    def put(site: Site, n: int, kind: str, spread: float, since: float = nan, until: float = nan) -> None:
        xs, ys = _scatter(rng, site.lon, site.lat, n, spread)
        rows.extend((float(x), float(y), kind, site.site_id, since, until) for x, y in zip(xs, ys, strict=True))

    for lab in sites.labs:
        if day in lab.active_days:
            put(lab, int(rng.integers(1, 4)), "vehicle", 40.0)
    for st in sites.stash_houses:
        if day in st.active_days:
            put(st, int(rng.integers(1, 4)), "vehicle", 30.0)
    by_id = {s.site_id: s for s in (*sites.airstrips, *sites.beaches)}
    route = {r["trip_id"]: r["sites"] for r in traffic.routes}
    for tr in traffic.tracks:
        visited = [by_id[s] for s in route.get(tr.trip_id, ()) if s in by_id]
        if not visited or tr.t.size == 0:
            continue
        end = float(tr.t[-1])
        if tr.role == "narco_flight" and len(visited) == 2:
            sa, sb = visited
            t0 = float(tr.t[0])
            put(sa, 1, "aircraft", 150.0, t0 - 3600.0, t0)  # loading before take-off
            put(sa, int(rng.integers(1, 3)), "vehicle", 80.0, t0 - 5400.0, t0 + 600.0)
            put(sb, 1, "aircraft", 150.0, end - 900.0, end + 2700.0)  # unloading after landing
            put(sb, int(rng.integers(1, 4)), "vehicle", 80.0, end - 2700.0, end + 3600.0)
        elif tr.role == "gofast":
            b = visited[0]
            put(b, 1, "vessel", 40.0, end - 1200.0, end + 600.0)  # beached go-fast
            put(b, int(rng.integers(2, 5)), "vehicle", 120.0, end - 3 * 3600.0, end + 5400.0)
    if not rows:
        return _empty_targets()
    tg = _static(
        np.array([r[0] for r in rows]),
        np.array([r[1] for r in rows]),
        np.array([r[2] for r in rows], dtype=object),
        [r[3] for r in rows],
    )
    tg.since = np.array([r[4] for r in rows])
    tg.until = np.array([r[5] for r in rows])
    return tg


def _lookalikes(day: int, sites: Sites, rng: np.random.Generator) -> tuple[Targets, Targets]:
    """Legitimate places that look like sites today: ranch vehicles (EO) and night cooking fires (IR)."""
    bx, by = sites.bg_structures
    ids = np.array([f"bgs-{i:05d}" for i in range(bx.size)], dtype=object)
    parked = np.flatnonzero(rng.random(bx.size) < 0.3)
    k = rng.integers(1, 4, parked.size)
    src = np.repeat(parked, k)
    vx, vy = unflat(bx[src], by[src], rng.normal(0.0, 40.0, src.size), rng.normal(0.0, 40.0, src.size))
    vehicles = _static(vx, vy, "vehicle", ids[src].tolist())
    fires = np.flatnonzero(rng.random(bx.size) < 0.15)
    fx, fy = unflat(bx[fires], by[fires], rng.normal(0.0, 30.0, fires.size), rng.normal(0.0, 30.0, fires.size))
    heat = _static(fx, fy, "thermal", ids[fires].tolist())
    heat.night = np.ones(fires.size, dtype=bool)
    return vehicles, heat


class DayTargets:
    """Target populations of one day, built once and shared by every sortie."""

    def __init__(self, day: int, sites: Sites, traffic: DayTraffic, heat_on: npt.NDArray[np.bool_]) -> None:
        # the draws of look-alikes and site activity follow from the world itself (its seed) and the day
        hx, hy = sites.bg_heat
        key = zlib.crc32(np.ascontiguousarray(hx).tobytes() + np.ascontiguousarray(hy).tobytes())
        rng = np.random.default_rng(np.random.SeedSequence([key, day]))
        # a landing beach keeps a fuel cache and a shelter above the tide line
        st = [*sites.labs, *sites.stash_houses, *sites.airstrips, *sites.beaches]
        bx, by = sites.bg_structures
        buildings = _static(
            np.concatenate([np.array([s.lon for s in st]), bx]),
            np.concatenate([np.array([s.lat for s in st]), by]),
            "structure",
            [s.site_id for s in st] + [f"bgs-{i:05d}" for i in range(bx.size)],
        )
        ranch_vehicles, fires = _lookalikes(day, sites, rng)
        self.structures = _join([buildings, _activity(day, sites, traffic, rng), ranch_vehicles])
        labs = [s for s in sites.labs if day in s.active_days]
        heat = _static(
            np.concatenate([np.array([s.lon for s in labs]), hx[heat_on]]),
            np.concatenate([np.array([s.lat for s in labs]), hy[heat_on]]),
            "thermal",
            [s.site_id for s in labs] + [f"bgh-{i:05d}" for i in np.flatnonzero(heat_on)],
        )
        heat.night = np.arange(heat.lon.size) < len(labs)
        self.heat = _join([heat, fires])
        self.road = _moving(traffic, ("vehicle",))
        self.road_moving = _moving(traffic, ("vehicle",), min_speed=2.0)
        self.sea = _moving(traffic, ("vessel",))
        t, x, y, em, oid = emissions_arrays(traffic.emissions)
        self.phones = Targets(
            t=t, lon=x, lat=y, speed=np.full(t.size, np.nan), course=np.full(t.size, np.nan),
            kind=np.full(t.size, "emitter", dtype=object), truth=oid, ident=em,
        )  # fmt: skip


def _platform_at(s: Sortie, t: F64) -> tuple[F64, F64, F64]:
    tt = t.astype(np.float64)
    st = s.t.astype(np.float64)
    return np.interp(tt, st, s.lon), np.interp(tt, st, s.lat), np.interp(tt, st, s.alt)


def _rows(
    rng: np.random.Generator,
    spec: SensorSpec,
    t: F64,
    lon: F64,
    lat: F64,
    tg: Targets,
    idx: I64,
    *,
    ellipse: bool,
    range_m: F64 | None = None,
    bearing_deg: F64 | None = None,
) -> dict[str, Any]:
    n = idx.size
    a = rng.uniform(spec.err_m[0], spec.err_m[1], n)
    if range_m is not None:
        a = a + spec.err_per_km * range_m / 1000.0
    if ellipse:
        b = a * rng.uniform(0.15, 0.5, n)
        th = (bearing_deg % 180.0) if bearing_deg is not None else rng.uniform(0.0, 180.0, n)
    else:
        b = a.copy()
        th = np.zeros(n)
    n1, n2 = rng.standard_normal(n), rng.standard_normal(n)
    r = np.radians(th)
    east = n1 * a * np.sin(r) + n2 * b * np.cos(r)
    north = n1 * a * np.cos(r) - n2 * b * np.sin(r)
    x, y = unflat(lon, lat, east, north)
    sp = tg.speed[idx]
    has_sp = np.isfinite(sp)
    sp = np.where(has_sp, np.maximum(sp + rng.normal(0, 1.0, n), 0.0), np.nan)
    crs = np.where(has_sp, (tg.course[idx] + rng.normal(0, 5.0, n)) % 360.0, np.nan)
    return {
        "time": t,
        "lon": x,
        "lat": y,
        "pos_err_m": a,
        "err_minor_m": b if ellipse else np.full(n, np.nan),
        "err_orient_deg": th if ellipse else np.full(n, np.nan),
        "speed_mps": sp,
        "course_deg": crs,
        "kind": tg.kind[idx],
        "ident": tg.ident[idx],
        "confidence": np.clip(rng.normal(0.75, 0.12, n), 0.05, 0.99),
        "truth_id": tg.truth[idx],
    }


def _near(px: F64, py: F64, tx: F64, ty: F64, radius: float) -> npt.NDArray[np.bool_]:
    e, n = flat_m(px, py, tx, ty)
    return np.asarray(e * e + n * n <= radius * radius, dtype=bool)


def detect(
    sortie: Sortie, targets: DayTargets, d0: int, d1: int, rng: np.random.Generator
) -> dict[str, list[dict[str, Any]]]:
    """Detections of one sortie during ``[d0, d1)``, per sensor, as column dicts (with ``truth_id``)."""
    out: dict[str, list[dict[str, Any]]] = {}
    airborne = (sortie.t >= d0) & (sortie.t < d1) & (sortie.alt > 250.0)
    if not airborne.any():
        return out
    ta, tb = float(sortie.t[airborne][0]), float(sortie.t[airborne][-1])
    for spec in SPECS[sortie.platform_type]:
        parts: list[dict[str, Any]] = []
        pops: list[tuple[Targets, int]] = []
        if spec.sensor == "EO":
            if spec.static_scan_s:
                pops.append((targets.structures, spec.static_scan_s))
            if spec.scan_s:
                pops.append((targets.sea if sortie.platform_type == "P-8" else targets.road, spec.scan_s))
        elif spec.sensor == "IR":
            pops.append((targets.heat, spec.static_scan_s))
        elif spec.sensor == "GMTI":
            pops.append((targets.road_moving, spec.scan_s))
        elif spec.sensor == "RADAR":
            pops.append((targets.sea, spec.scan_s))
        for tg, scan in pops:
            if tg.lon.size == 0:
                continue
            if np.isnan(tg.t).all():  # fixed targets: each scan looks at every target in the footprint
                st = sortie.t[airborne & (sortie.t % scan == 0)].astype(np.float64)
                if st.size == 0:
                    continue
                px, py, _ = _platform_at(sortie, st)
                box = (
                    (tg.lon > px.min() - 4)
                    & (tg.lon < px.max() + 4)
                    & (tg.lat > py.min() - 4)
                    & (tg.lat < py.max() + 4)
                )
                cand = np.flatnonzero(box)
                if cand.size == 0:
                    continue
                for c0 in range(0, st.size, 256):
                    sx, sy, stt = px[c0 : c0 + 256], py[c0 : c0 + 256], st[c0 : c0 + 256]
                    hit = _near(sx[:, None], sy[:, None], tg.lon[cand][None, :], tg.lat[cand][None, :], spec.radius_m)
                    hour = (stt // 3600) % 24  # local night (UTC-6/-7): 02:00-12:00 UTC
                    dark = (hour >= 2) & (hour < 12)
                    pd = np.full(stt.size, spec.pd)
                    if spec.sensor == "EO":
                        pd = np.where(dark, spec.pd * NIGHT_EO, pd)
                    hit &= rng.random(hit.shape) < pd[:, None]
                    if tg.night is not None:
                        hit &= ~tg.night[cand][None, :] | dark[:, None]
                    if tg.since is not None and tg.until is not None:
                        t0, t1 = tg.since[cand][None, :], tg.until[cand][None, :]
                        hit &= ~(stt[:, None] < t0) & ~(stt[:, None] > t1)  # NaN bounds: all day
                    si, ti = np.nonzero(hit)
                    if si.size:
                        idx = cand[ti]
                        parts.append(_rows(rng, spec, stt[si], tg.lon[idx], tg.lat[idx], tg, idx, ellipse=False))
            else:
                sel = np.flatnonzero((tg.t >= ta) & (tg.t <= tb) & (tg.t % scan == 0))
                if sel.size == 0:
                    continue
                px, py, _ = _platform_at(sortie, tg.t[sel])
                hit = _near(px, py, tg.lon[sel], tg.lat[sel], spec.radius_m) & (rng.random(sel.size) < spec.pd)
                idx = sel[hit]
                if idx.size:
                    parts.append(_rows(rng, spec, tg.t[idx], tg.lon[idx], tg.lat[idx], tg, idx, ellipse=False))
        if spec.sensor == "SIGINT":
            tg = targets.phones
            sel = np.flatnonzero((tg.t >= ta) & (tg.t <= tb))
            if sel.size:
                px, py, pz = _platform_at(sortie, tg.t[sel])
                hit = _near(px, py, tg.lon[sel], tg.lat[sel], spec.radius_m) & (rng.random(sel.size) < spec.pd)
                idx = sel[hit]
                if idx.size:
                    # single-platform geolocation: the error grows with slant range, longest along the line of sight
                    e, n = flat_m(px[hit], py[hit], tg.lon[idx], tg.lat[idx])
                    slant = np.sqrt(e * e + n * n + pz[hit] ** 2)
                    los = np.degrees(np.arctan2(e, n)) % 360.0
                    parts.append(
                        _rows(rng, spec, np.round(tg.t[idx], 3), tg.lon[idx], tg.lat[idx], tg, idx, ellipse=True,
                              range_m=slant, bearing_deg=los)
                    )  # fmt: skip
        if spec.fa_per_scan > 0:
            scan = spec.scan_s or spec.static_scan_s
            st = sortie.t[airborne & (sortie.t % scan == 0)].astype(np.float64)
            k = rng.poisson(spec.fa_per_scan, st.size)
            ft = np.repeat(st, k)
            if ft.size:
                px, py, _ = _platform_at(sortie, ft)
                rr = spec.radius_m * np.sqrt(rng.random(ft.size))
                aa = rng.uniform(0, 2 * np.pi, ft.size)
                fx, fy = unflat(px, py, rr * np.sin(aa), rr * np.cos(aa))
                kinds = {
                    "EO": ("structure", "vehicle"),
                    "IR": ("thermal",),
                    "GMTI": ("vehicle",),
                    "RADAR": ("vessel",),
                }[spec.sensor]
                fk = np.array(kinds, dtype=object)[rng.integers(0, len(kinds), ft.size)]
                moving = np.isin(fk, ["vehicle", "vessel"]) & (spec.sensor in ("GMTI", "RADAR"))
                fake = Targets(
                    t=ft,
                    lon=fx,
                    lat=fy,
                    speed=np.where(moving, rng.uniform(2, 30, ft.size), np.nan),
                    course=np.where(moving, rng.uniform(0, 360, ft.size), np.nan),
                    kind=fk,
                    truth=np.full(ft.size, None, dtype=object),
                    ident=np.full(ft.size, None, dtype=object),
                )
                rows = _rows(rng, spec, ft, fx, fy, fake, np.arange(ft.size), ellipse=False)
                rows["confidence"] = np.clip(rng.normal(0.35, 0.15, ft.size), 0.05, 0.95)
                parts.append(rows)
        if parts:
            out.setdefault(spec.sensor, []).extend(parts)
    return out


def concat(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate detection column dicts."""
    return {k: np.concatenate([p[k] for p in parts]) for k in ROW_FIELDS}
