"""Everything that moves, one day at a time: vehicles, vessels, aircraft, patrols and phones.

Smuggling vehicles drive lab → stash house → illicit crossing → US side; supply
runs visit active labs; legitimate vehicles drive between towns, some through
the official ports of entry. A persistent fleet of vessels sails the open sea
with AIS; suspect vessels switch AIS off (dark gaps) to meet others at sea
(rendezvous); go-fast boats run from sea to landing beaches without AIS.
Airliners fly with ADS-B; light aircraft fly to clandestine airstrips and
switch ADS-B off on the way. Host-party ground patrols report by CoT. Phones
transmit from sites, vehicles and towns (SIGINT targets).

Vehicles that cross the border go through a *gate*: a point a few hundred
metres on each side of the crossing site or port of entry, so that the path
cuts the border line there and only there (legs that would cut it elsewhere
are routed through points further back from the line, or the trip is
dropped). The crossing truth is then computed from the true paths
(:func:`atalaya.scenario.truth.border_cuts`): every cut of the line by a
vehicle, vessel or aircraft, at its interpolated time.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from atalaya.scenario.config import DAY_S, ScenarioConfig
from atalaya.scenario.sites import Site, Sites
from atalaya.scenario.truth import border_cuts
from atalaya.scenario.world import (
    F64,
    I64,
    PORTS_OF_ENTRY,
    B,
    World,
    dist_m,
    knots,
    offset,
    sample_knots,
)


@dataclass(frozen=True, kw_only=True)
class Track:
    """The true path of one moving object during one trip."""

    object_id: str
    """Persistent id of the object (vessel, aircraft, vehicle, team)."""
    trip_id: str
    """Id of this trip."""
    kind: str
    """``ObjectKind`` value: ``vehicle``, ``vessel``, ``aircraft`` or ``person``."""
    role: str
    """Why it moves: ``smuggling``, ``supply``, ``background``, ``gofast``, ``suspect``, ``narco_flight``,
    ``patrol``."""
    ident: str | None
    """Identifier it broadcasts or carries (MMSI, ICAO24, CoT uid, plate)."""
    ident_kind: str | None
    """``IdentKind`` value of ``ident``."""
    name: str | None
    """Vessel name, callsign or label."""
    feed: str | None
    """Feed it reports on: ``ais``, ``adsb``, ``cot`` or ``None``."""
    t: I64
    """Sample times, Unix seconds (on the absolute grid of the kind's step)."""
    lon: F64
    """Longitudes."""
    lat: F64
    """Latitudes."""
    alt: F64
    """Altitude, metres (0 on the surface)."""
    speed: F64
    """Speed over ground, m/s."""
    course: F64
    """Course over ground, degrees."""
    on: B
    """Whether the transponder/beacon is transmitting at each sample."""
    plate: str | None = None
    """Licence plate of a road vehicle."""
    phone: str | None = None
    """Phone (emitter id) carried aboard."""


@dataclass(kw_only=True)
class DayTraffic:
    """All movement of one day and the events planted in it."""

    tracks: list[Track] = field(default_factory=list)
    """Every trip."""
    crossings: list[dict[str, Any]] = field(default_factory=list)
    """Border crossings where the true paths cut the MEX–USA line: trip, time, lon, lat, direction, kind, and
    the intended crossing site or port of entry (id and position) when the cut is the one made there."""
    routes: list[dict[str, Any]] = field(default_factory=list)
    """Smuggling routes used: trip, site ids in order."""
    dark_gaps: list[dict[str, Any]] = field(default_factory=list)
    """AIS dark gaps: mmsi, object, start, end, positions."""
    rendezvous: list[dict[str, Any]] = field(default_factory=list)
    """Ship-to-ship meetings: both objects, time window, position."""
    emissions: list[dict[str, Any]] = field(default_factory=list)
    """Phone transmissions: emitter, owner object, time, lon, lat."""


def _stable(text: str) -> int:
    return zlib.crc32(text.encode())


def plate(rng: np.random.Generator) -> str:
    """A Mexican-style plate such as ``ABC-123-D``."""
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    a = "".join(letters[int(i)] for i in rng.integers(0, len(letters), 3))
    return f"{a}-{int(rng.integers(100, 1000))}-{letters[int(rng.integers(len(letters)))]}"


def _sample(
    wx: list[float],
    wy: list[float],
    spd: list[float],
    dwell: list[float],
    t0: float,
    step: int,
    t_end: float,
    alt: list[float] | None = None,
) -> tuple[I64, F64, F64, F64, F64, F64, F64, F64, F64]:
    tk, xk, yk, sk, zk = knots(
        np.array(wx),
        np.array(wy),
        np.array(spd),
        t0=t0,
        dwell=np.array(dwell),
        alt=None if alt is None else np.array(alt),
    )
    end = min(tk[-1], t_end)
    first = int(np.ceil(t0 / step)) * step
    t = np.arange(first, end + 1e-9, step, dtype=np.int64)
    x, y, s, c = sample_knots(tk, xk, yk, sk, t.astype(np.float64))
    z = np.interp(t.astype(np.float64), tk, zk)
    return t, x, y, z, s, c, tk, xk, yk


LONG_TRIP_START_S = 3 * 3600.0
"""Latest start (seconds after midnight) of a smuggling trip longer than the day."""

TURNAROUND_S = 1_800
"""Least time an aircraft spends on the ground between two flights."""


def _free_airframe(busy: dict[int, list[tuple[int, int]]], first: int, n: int, t0: int, t1: int) -> int | None:
    """The first airframe from ``first`` on (cyclically) that is on the ground from ``t0`` to ``t1``; booked."""
    for k in range(n):
        i = (first + k) % n
        if all(t1 + TURNAROUND_S <= a or t0 >= b + TURNAROUND_S for a, b in busy.get(i, [])):
            busy.setdefault(i, []).append((t0, t1))
            return i
    return None


class Movement:
    """Generates each day's traffic; holds the persistent fleets between days."""

    def __init__(
        self,
        cfg: ScenarioConfig,
        world: World,
        sites: Sites,
        seed: int,
        *,
        plates: dict[str, list[str]] | None = None,
        phones: dict[str, list[str]] | None = None,
        bg_phones: list[str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.world = world
        self.sites = sites
        self.seed = seed
        rng = cfg.rng(seed, 10)
        self.site_plates = plates or {}
        self.site_phones = phones or {}
        mex_t = [(a[1], a[2]) for a in world.airports]
        ax = np.array([p[0] for p in mex_t])
        ay = np.array([p[1] for p in mex_t])
        in_mex = world.in_mex(ax, ay)
        in_usa = world.in_usa(ax, ay) & (world.border_km(ax, ay) < 400)
        self.mx_towns = [(float(x), float(y)) for x, y in zip(ax[in_mex], ay[in_mex], strict=True)]
        self.us_towns = [(float(x), float(y)) for x, y in zip(ax[in_usa], ay[in_usa], strict=True)]
        self.airports = [a for a in world.airports if a[3] in ("major", "mid", "")] or list(world.airports)
        # ports of entry snapped onto the border line
        self.poe: list[tuple[float, float, str]] = []
        for name, x, y in PORTS_OF_ENTRY:
            q = shapely.line_interpolate_point(
                world.border, shapely.line_locate_point(world.border, shapely.Point(x, y))
            )
            self.poe.append((float(q.x), float(q.y), name))
        # vessel fleet
        n = cfg.vessels + cfg.suspect_vessels
        basins = rng.choice(["pacific", "gulf", "caribbean"], size=n, p=[0.5, 0.4, 0.1])
        self.v_basin = [str(b) for b in basins]
        self.v_lon = np.zeros(n)
        self.v_lat = np.zeros(n)
        for b in ("pacific", "gulf", "caribbean"):
            idx = np.flatnonzero(basins == b)
            if idx.size:
                sx, sy = world.sample_sea(rng, b, idx.size)
                self.v_lon[idx], self.v_lat[idx] = sx, sy
        mids = np.array([345, 338, 366, 351, 636, 538, 352])
        self.v_mmsi = [
            int(mids[int(rng.integers(len(mids)))]) * 1_000_000 + int(rng.integers(100_000, 999_999)) for _ in range(n)
        ]
        self.v_suspect = np.zeros(n, dtype=bool)
        self.v_suspect[cfg.vessels :] = True
        self.v_speed = np.where(self.v_suspect, rng.uniform(4.0, 7.0, n), rng.uniform(5.0, 10.0, n))
        prefixes = ("MAR", "SANTA", "DON", "OCEAN", "PACIFIC", "GULF", "ESTRELLA", "LUCIA", "ATLAS", "CORAL")
        self.v_name = [f"{prefixes[int(rng.integers(len(prefixes)))]} {int(rng.integers(1, 99))}" for _ in range(n)]
        self.v_type = [int(rng.choice([30, 70, 80, 60, 37])) if not s else 30 for s in self.v_suspect]
        # aircraft fleet
        m = max(4, cfg.bg_flights_per_day // 3)
        a_icao = [int(rng.choice([0xA00000, 0x0D0000])) + int(rng.integers(0, 0x7FFF)) for _ in range(m)]
        airlines = ("AMX", "VOI", "VIV", "AAL", "UAL", "SWA", "DAL", "AIJ")
        self.a_call = [f"{airlines[int(rng.integers(len(airlines)))]}{int(rng.integers(100, 9999))}" for _ in range(m)]
        self.n_light = max(2, cfg.narco_flights_per_day * 2)
        l_icao = [0x0D0000 + 0x4000 + int(rng.integers(0, 0x3FFF)) for _ in range(self.n_light)]
        # one ICAO24 address per airframe: a drawn address already taken moves up to the next free one
        taken: set[int] = set()
        for codes in (a_icao, l_icao):
            for k, code in enumerate(codes):
                while code in taken:
                    code += 1
                taken.add(code)
                codes[k] = code
        self.a_icao = [f"{c:06x}" for c in a_icao]
        self.l_icao = [f"{c:06x}" for c in l_icao]
        self.l_call = [f"XB{''.join(chr(65 + int(i)) for i in rng.integers(0, 26, 3))}" for _ in range(self.n_light)]
        # patrol bases
        self.patrol_base = [self.mx_towns[int(rng.integers(len(self.mx_towns)))] for _ in range(cfg.patrols)]
        self.bg_phones = bg_phones or [f"52{int(rng.integers(10**9, 10**10 - 1))}" for _ in range(cfg.bg_phones)]
        self.bg_phone_home = [self.mx_towns[int(rng.integers(len(self.mx_towns)))] for _ in self.bg_phones]

    # ------------------------------------------------------------------ helpers

    def land_route(self, a: tuple[float, float], b: tuple[float, float]) -> list[tuple[float, float]] | None:
        """Waypoints from ``a`` to ``b`` staying on land (direct or via one town)."""
        w = self.world
        if w.segment_on_land(a[0], a[1], b[0], b[1]):
            return [a, b]
        towns = sorted(
            self.mx_towns + self.us_towns, key=lambda p: float(dist_m(a[0], a[1], *p) + dist_m(p[0], p[1], *b))
        )
        for p in towns[:8]:
            if w.segment_on_land(a[0], a[1], p[0], p[1]) and w.segment_on_land(p[0], p[1], b[0], b[1]):
                return [a, p, b]
        return None

    def sea_hop(self, rng: np.random.Generator, x: float, y: float, basin: str) -> tuple[float, float]:
        """A random open-sea point reachable from ``(x, y)`` in a straight line (or the point itself)."""
        for _ in range(12):
            d = float(rng.uniform(40_000, 250_000))
            nx, ny = offset(x, y, float(rng.uniform(0, 360)), d)
            if self.world.segment_at_sea(x, y, nx, ny):
                return nx, ny
        return x, y

    # ------------------------------------------------------------------ border gates

    def touches_border(self, pts: list[tuple[float, float]]) -> bool:
        """Whether the polyline through ``pts`` meets the MEX–USA border line."""
        return bool(shapely.intersects(shapely.LineString(pts), self.world.border))

    def gate(self, x: float, y: float) -> tuple[tuple[float, float], tuple[float, float]] | None:
        """Points a few hundred metres either side of border point ``(x, y)``: ``(mexican, us)``.

        The segment between them cuts the border line exactly once, within
        100 m of ``(x, y)``; ``None`` when no such pair is found.
        """
        w = self.world
        s = float(shapely.line_locate_point(w.border, shapely.Point(x, y)))
        a = shapely.line_interpolate_point(w.border, max(s - 0.002, 0.0))
        b = shapely.line_interpolate_point(w.border, s + 0.002)
        az0 = float(np.degrees(np.arctan2((b.x - a.x) * np.cos(np.radians(y)), b.y - a.y))) + 90.0
        for d in (300.0, 150.0):
            for turn in (0.0, 20.0, -20.0, 45.0, -45.0):
                p = offset(x, y, az0 + turn, d)
                q = offset(x, y, az0 + turn + 180.0, d)
                px, py = np.array([p[0], q[0]]), np.array([p[1], q[1]])
                mex, usa = w.in_mex(px, py), w.in_usa(px, py)
                if mex[0] and usa[1]:
                    gm, gu = p, q
                elif mex[1] and usa[0]:
                    gm, gu = q, p
                else:
                    continue
                cut = shapely.get_coordinates(shapely.intersection(shapely.LineString([gm, gu]), w.border))
                if cut.shape[0] == 1 and float(dist_m(cut[0, 0], cut[0, 1], x, y)) < 100.0:
                    return gm, gu
        return None

    def side_leg(
        self, a: tuple[float, float], b: tuple[float, float], site: tuple[float, float], usa: bool
    ) -> list[tuple[float, float]] | None:
        """Waypoints strictly between ``a`` and ``b`` (one country's side) so that the legs never meet the border.

        ``[]`` when the straight leg is clear; else one point further back from
        ``site`` (away from the line, in the direction of ``b`` or ``a``,
        whichever is the gate); ``None`` when ``a`` or ``b`` lies in the other
        country or no detour is found.
        """
        w = self.world
        xs, ys = np.array([a[0], b[0]]), np.array([a[1], b[1]])
        if not (w.in_usa(xs, ys) if usa else w.in_mex(xs, ys)).all():
            return None
        if not self.touches_border([a, b]):
            return []
        g = b if float(dist_m(b[0], b[1], *site)) < float(dist_m(a[0], a[1], *site)) else a
        far = a if g is b else b
        az = float(np.degrees(np.arctan2((g[0] - site[0]) * np.cos(np.radians(site[1])), g[1] - site[1])))
        for d in (1_500.0, 4_000.0, 10_000.0):
            for turn in (0.0, 25.0, -25.0):
                m = offset(site[0], site[1], az + turn, d)
                mx, my = np.array([m[0]]), np.array([m[1]])
                inside = w.in_usa(mx, my) if usa else w.in_mex(mx, my)
                if inside[0] and not self.touches_border([far, m]) and not self.touches_border([m, g]):
                    return [m]
        return None

    # ------------------------------------------------------------------ one day

    def day(self, day: int) -> DayTraffic:
        """All traffic of one day (deterministic in the seed and the day)."""
        out = DayTraffic()
        # trip → (crossing id, site lon, site lat, illicit, sites made active by crossing there)
        self._intent: dict[str, tuple[str, float, float, bool, list[Site]]] = {}
        d0 = float(self.cfg.day_start_s(day))
        d1 = d0 + DAY_S
        self._vessels(day, d0, d1, self.cfg.rng(self.seed, 20, day), out)
        self._smuggling(day, d0, d1, self.cfg.rng(self.seed, 21, day), out)
        self._background_vehicles(day, d0, d1, self.cfg.rng(self.seed, 22, day), out)
        self._flights(day, d0, d1, self.cfg.rng(self.seed, 23, day), out)
        self._patrols(day, d0, d1, self.cfg.rng(self.seed, 24, day), out)
        self._phones(day, d0, d1, self.cfg.rng(self.seed, 25, day), out)
        self._crossings(day, out)
        return out

    def _crossings(self, day: int, out: DayTraffic) -> None:
        """Every cut of the border line by the day's vehicles, vessels and aircraft, labelled with the intent."""
        w = self.world
        trs = [tr for tr in out.tracks if tr.kind in ("vehicle", "vessel", "aircraft") and tr.t.size >= 2]
        sizes = np.array([tr.t.size for tr in trs], dtype=np.int64)
        xy = np.column_stack([np.concatenate([tr.lon for tr in trs]), np.concatenate([tr.lat for tr in trs])]) if (
            trs) else np.zeros((0, 2))  # fmt: skip
        lines = shapely.linestrings(xy, indices=np.repeat(np.arange(sizes.size), sizes))
        near = np.asarray(shapely.intersects(lines, w.border), dtype=bool)
        for tr in (trs[i] for i in np.flatnonzero(near).tolist()):
            tt, xx, yy, into = border_cuts(tr.t, tr.lon, tr.lat, w.border, w.usa)
            intent = self._intent.get(tr.trip_id)
            at = -1
            if intent is not None and tt.size:
                d = dist_m(xx, yy, intent[1], intent[2])
                at = int(np.argmin(d)) if float(np.min(d)) <= 1_000.0 else -1
                if at >= 0:
                    for site in intent[4]:
                        site.active_days.add(day)
            for k in range(tt.size):
                mine = intent is not None and k == at
                out.crossings.append(
                    {
                        "object_id": tr.trip_id,
                        "trip_id": tr.trip_id,
                        "time": float(tt[k]),
                        "lon": float(xx[k]),
                        "lat": float(yy[k]),
                        "crossing_id": intent[0] if mine and intent is not None else None,
                        "illicit": tr.role == "smuggling",
                        "kind": tr.kind,
                        "direction": "north" if into[k] else "south",
                        "site_lon": intent[1] if mine and intent is not None else None,
                        "site_lat": intent[2] if mine and intent is not None else None,
                    }
                )

    def _vessels(self, day: int, d0: float, d1: float, rng: np.random.Generator, out: DayTraffic) -> None:
        n = len(self.v_mmsi)
        step = 60
        # planted rendezvous: a suspect vessel meets another vessel of its basin
        meet: dict[int, tuple[float, float, float, float]] = {}
        suspects = [int(i) for i in np.flatnonzero(self.v_suspect)]
        rng.shuffle(suspects)
        for a in suspects[: self.cfg.rendezvous_per_day]:
            same = [
                j
                for j in range(n)
                if j != a and j not in meet and self.v_basin[j] == self.v_basin[a] and not self.v_suspect[j]
            ]
            if not same:
                continue
            dd = dist_m(self.v_lon[a], self.v_lat[a], self.v_lon[same], self.v_lat[same])
            b = same[int(np.argmin(dd))]
            mx, my = (self.v_lon[a] + self.v_lon[b]) / 2, (self.v_lat[a] + self.v_lat[b]) / 2
            ok = self.world.open_sea(np.array([mx]), np.array([my]))[0]
            ok = ok and self.world.segment_at_sea(self.v_lon[a], self.v_lat[a], mx, my)
            ok = ok and self.world.segment_at_sea(self.v_lon[b], self.v_lat[b], mx, my)
            if not ok:
                continue
            ta = float(dist_m(self.v_lon[a], self.v_lat[a], mx, my)) / self.v_speed[a]
            tb = float(dist_m(self.v_lon[b], self.v_lat[b], mx, my)) / self.v_speed[b]
            tm = d0 + max(ta, tb) + float(rng.uniform(1800, 6 * 3600))
            dur = float(rng.uniform(2400, 7200))
            if tm + dur > d1 - 3 * 3600:
                continue
            meet[a] = (mx, my, tm, dur)
            meet[b] = (mx, my, tm, dur)
            out.rendezvous.append(
                {
                    "rendezvous_id": f"rdv-{day:03d}-{len(out.rendezvous) + 1:02d}",
                    "object_a": f"vessel-{a:04d}",
                    "mmsi_a": self.v_mmsi[a],
                    "object_b": f"vessel-{b:04d}",
                    "mmsi_b": self.v_mmsi[b],
                    "start": tm,
                    "end": tm + dur,
                    "lon": mx,
                    "lat": my,
                }
            )
        for i in range(n):
            x, y, v = float(self.v_lon[i]), float(self.v_lat[i]), float(self.v_speed[i])
            wx, wy, dw = [x], [y], [0.0]
            t_acc = 0.0
            if i in meet:
                mx, my, tm, dur = meet[i]
                wx.append(mx)
                wy.append(my)
                arrive = float(dist_m(x, y, mx, my)) / v
                dw.append(tm - d0 - arrive + dur)
                t_acc = tm - d0 + dur
                x, y = mx, my
            while t_acc < DAY_S + 3600:
                nx, ny = self.sea_hop(rng, x, y, self.v_basin[i])
                if (nx, ny) == (x, y):
                    dw[-1] += 3600.0
                    t_acc += 3600.0
                    continue
                t_acc += float(dist_m(x, y, nx, ny)) / v
                wx.append(nx)
                wy.append(ny)
                dw.append(0.0)
                x, y = nx, ny
            t, lon, lat, _, s, c, _, _, _ = _sample(wx, wy, [v] * (len(wx) - 1), dw, d0, step, d1 - step)
            self.v_lon[i], self.v_lat[i] = float(np.interp(d1, t, lon)), float(np.interp(d1, t, lat))
            on = np.ones(t.size, dtype=bool)
            on &= rng.random(t.size) > 0.01  # occasional reception loss
            role = "suspect" if self.v_suspect[i] else "background"
            if i in meet and self.v_suspect[i] and rng.random() < 0.8:
                _, _, tm, dur = meet[i]
                g0 = tm - float(rng.uniform(1800, 3 * 3600))
                g1 = tm + dur + float(rng.uniform(1800, 3 * 3600))
                g1 = min(g1, d1 - 2 * step)
                gap = (t >= g0) & (t <= g1)
                on &= ~gap
                self._gap(out, i, t, lon, lat, gap)
            elif self.v_suspect[i] and rng.random() < 0.3:
                g0 = d0 + float(rng.uniform(2 * 3600, 14 * 3600))
                g1 = g0 + float(rng.uniform(3 * 3600, 8 * 3600))
                gap = (t >= g0) & (t <= g1)
                on &= ~gap
                self._gap(out, i, t, lon, lat, gap)
            out.tracks.append(
                Track(
                    object_id=f"vessel-{i:04d}",
                    trip_id=f"vessel-{i:04d}-d{day:03d}",
                    kind="vessel",
                    role=role,
                    ident=str(self.v_mmsi[i]),
                    ident_kind="mmsi",
                    name=self.v_name[i],
                    feed="ais",
                    t=t,
                    lon=lon,
                    lat=lat,
                    alt=np.zeros(t.size),
                    speed=s,
                    course=c,
                    on=on,
                )
            )
        # go-fast boats: from the open sea to a landing beach, no AIS
        for k in range(self.cfg.gofast_per_day if self.sites.beaches else 0):
            beach = self.sites.beaches[int(rng.integers(len(self.sites.beaches)))]
            assert beach.approach is not None  # every landing beach has an approach point
            ax, ay = beach.approach
            az = float(np.degrees(np.arctan2((ax - beach.lon) * np.cos(np.radians(ay)), ay - beach.lat)))
            sx, sy = offset(ax, ay, az, float(rng.uniform(80_000, 110_000)))
            t0 = d0 + float(rng.uniform(0, DAY_S - 4 * 3600))
            t, lon, lat, _, s, c, _, _, _ = _sample(
                [sx, ax, beach.lon], [sy, ay, beach.lat], [22.0, 8.0], [0.0, 0.0, 1200.0], t0, 20, d1 - 1
            )
            beach.active_days.add(day)
            out.tracks.append(
                Track(
                    object_id=f"gofast-{day:03d}-{k:02d}",
                    trip_id=f"gofast-{day:03d}-{k:02d}",
                    kind="vessel",
                    role="gofast",
                    ident=None,
                    ident_kind=None,
                    name=None,
                    feed=None,
                    t=t,
                    lon=lon,
                    lat=lat,
                    alt=np.zeros(t.size),
                    speed=s,
                    course=c,
                    on=np.zeros(t.size, dtype=bool),
                )
            )
            out.routes.append({"trip_id": f"gofast-{day:03d}-{k:02d}", "kind": "maritime", "sites": [beach.site_id]})

    def _gap(self, out: DayTraffic, i: int, t: I64, lon: F64, lat: F64, gap: B) -> None:
        idx = np.flatnonzero(gap)
        if idx.size == 0:
            return
        a, b = int(idx[0]), int(idx[-1])
        out.dark_gaps.append(
            {
                "object_id": f"vessel-{i:04d}",
                "mmsi": self.v_mmsi[i],
                "start": int(t[a]),
                "end": int(t[b]),
                "start_lon": float(lon[a]),
                "start_lat": float(lat[a]),
                "end_lon": float(lon[b]),
                "end_lat": float(lat[b]),
            }
        )

    def _road_track(
        self,
        oid: str,
        trip: str,
        role: str,
        wps: list[tuple[float, float]],
        spd: list[float],
        dwell: list[float],
        t0: float,
        d1: float,
        *,
        plate_: str,
        feed: str | None = None,
        ident: str | None = None,
        ident_kind: str | None = None,
        phone: str | None = None,
    ) -> tuple[Track, F64, F64, F64]:
        t, lon, lat, _, s, c, tk, xk, yk = _sample([p[0] for p in wps], [p[1] for p in wps], spd, dwell, t0, 20, d1 - 1)
        tr = Track(
            object_id=oid,
            trip_id=trip,
            kind="vehicle",
            role=role,
            ident=ident if ident is not None else plate_,
            ident_kind=ident_kind if ident_kind is not None else "plate",
            name=None,
            feed=feed,
            t=t,
            lon=lon,
            lat=lat,
            alt=np.zeros(t.size),
            speed=s,
            course=c,
            on=np.ones(t.size, dtype=bool),
            plate=plate_,
            phone=phone,
        )
        return tr, tk, xk, yk

    def _smuggling(self, day: int, d0: float, d1: float, rng: np.random.Generator, out: DayTraffic) -> None:
        labs = [lab for lab in self.sites.labs if day in lab.active_days] or self.sites.labs
        for k in range(self.cfg.smuggle_trips_per_day):
            lab = labs[int(rng.integers(len(labs)))]
            stash = self.sites.stash_houses[int(rng.integers(len(self.sites.stash_houses)))]
            xing = next(c for c in self.sites.crossings if c.site_id == stash.link)
            first = self.land_route((lab.lon, lab.lat), (stash.lon, stash.lat))
            if first is None or self.touches_border(first):
                continue
            site = (xing.lon, xing.lat)
            ux, uy = offset(xing.lon, xing.lat, float(rng.uniform(-30, 30)), float(rng.uniform(20_000, 50_000)))
            if not (
                self.world.in_usa(np.array([ux]), np.array([uy]))[0]
                and self.world.segment_on_land(xing.lon, xing.lat, ux, uy)
            ):
                ux, uy = offset(xing.lon, xing.lat, 0.0, 8_000.0)
            gate = self.gate(*site)
            if gate is None:
                continue
            gm, gu = gate
            pre = self.side_leg((stash.lon, stash.lat), gm, site, usa=False)
            post = self.side_leg(gu, (ux, uy), site, usa=True)
            if pre is None or post is None:
                continue
            wps = [*first, *pre, gm, gu, *post, (ux, uy)]
            spd = [12.0] + [22.0] * (len(first) - 2) + [7.0] * (len(pre) + 2) + [15.0] * (len(post) + 1)
            dwell = [0.0] * (len(first) - 1) + [float(rng.uniform(3600, 4 * 3600))] + [0.0] * (len(wps) - len(first))
            total = sum(float(dist_m(*a, *b)) / v for a, b, v in zip(wps[:-1], wps[1:], spd, strict=True)) + sum(dwell)
            if total + 600 < DAY_S:
                t0 = d0 + float(rng.uniform(0, DAY_S - total - 600))
            else:  # longer than the day: sets out in the small hours (never on a report) and ends with the day
                t0 = d0 + float(rng.uniform(60.0, LONG_TRIP_START_S))
            oid = f"veh-{day:03d}-{k:03d}"
            pl_pool = self.site_plates.get(lab.site_id) or self.site_plates.get(stash.site_id) or []
            pl = pl_pool[int(rng.integers(len(pl_pool)))] if pl_pool else plate(rng)
            ph_pool = self.site_phones.get(stash.site_id) or self.site_phones.get(lab.site_id) or []
            ph = ph_pool[int(rng.integers(len(ph_pool)))] if ph_pool else None
            tagged = rng.random() < 0.25
            tr, *_ = self._road_track(
                oid,
                oid,
                "smuggling",
                wps,
                spd,
                dwell,
                t0,
                d1,
                plate_=pl,
                feed="cot" if tagged else None,
                ident=f"TAG-{_stable(oid + str(self.seed)):08x}" if tagged else None,
                ident_kind="cot_uid" if tagged else None,
                phone=ph,
            )
            out.tracks.append(tr)
            lab.active_days.add(day)
            self._intent[oid] = (xing.site_id, xing.lon, xing.lat, True, [stash, xing])
            out.routes.append({"trip_id": oid, "kind": "road", "sites": [lab.site_id, stash.site_id, xing.site_id]})
        # supply runs to active labs
        for lab in self.sites.labs:
            if day not in lab.active_days or rng.random() > 0.6:
                continue
            towns = sorted(self.mx_towns, key=lambda p: float(dist_m(lab.lon, lab.lat, *p)))
            town = towns[int(rng.integers(min(3, len(towns))))]
            there = self.land_route(town, (lab.lon, lab.lat))
            if there is None:
                continue
            wps = [*there, *there[::-1][1:]]
            spd = [15.0] * (len(wps) - 1)
            dwell = [0.0] * len(wps)
            dwell[len(there) - 1] = float(rng.uniform(3600, 3 * 3600))
            oid = f"sup-{day:03d}-{lab.site_id}"
            t0 = d0 + float(rng.uniform(0, 10 * 3600))
            pl_pool = self.site_plates.get(lab.site_id) or []
            pl = pl_pool[int(rng.integers(len(pl_pool)))] if pl_pool else plate(rng)
            tr, *_ = self._road_track(oid, oid, "supply", wps, spd, dwell, t0, d1, plate_=pl)
            out.tracks.append(tr)

    def _background_vehicles(self, day: int, d0: float, d1: float, rng: np.random.Generator, out: DayTraffic) -> None:
        poe = self.poe
        for k in range(self.cfg.bg_vehicles_per_day):
            oid = f"car-{day:03d}-{k:04d}"
            if rng.random() < 0.15:
                px, py, pname = poe[int(rng.integers(len(poe)))]
                sx, sy = offset(px, py, float(rng.uniform(150, 210)), float(rng.uniform(5_000, 60_000)))
                ex, ey = offset(px, py, float(rng.uniform(-30, 30)), float(rng.uniform(5_000, 60_000)))
                south = rng.random() < 0.5
                gate = self.gate(px, py)
                if gate is None:
                    continue
                gm, gu = gate
                pre = self.side_leg((sx, sy), gm, (px, py), usa=False)
                post = self.side_leg(gu, (ex, ey), (px, py), usa=True)
                if pre is None or post is None:
                    continue
                wps = [(sx, sy), *pre, gm, gu, *post, (ex, ey)]
                if south:
                    wps = wps[::-1]
                spd = [15.0] * (len(wps) - 1)
                dwell = [0.0] * len(wps)
                dwell[len(pre) + 1 if not south else len(post) + 1] = float(rng.uniform(300, 3600))  # queue at the gate
                spd[len(pre) + 1 if not south else len(post) + 1] = 5.0  # through the line
                t0 = d0 + float(rng.uniform(0, DAY_S - 4 * 3600))
                tr, *_ = self._road_track(oid, oid, "background", wps, spd, dwell, t0, d1, plate_=plate(rng))
                out.tracks.append(tr)
                self._intent[oid] = (f"poe:{pname}", px, py, False, [])
                continue
            pool = self.mx_towns if rng.random() < 0.75 else self.us_towns
            a = pool[int(rng.integers(len(pool)))]
            b = pool[int(rng.integers(len(pool)))]
            if a == b or not (30_000 < float(dist_m(*a, *b)) < 600_000):
                b = offset(a[0], a[1], float(rng.uniform(0, 360)), float(rng.uniform(20_000, 80_000)))
            route = self.land_route(a, b)
            if route is None or self.touches_border(route):
                continue
            spd = [float(rng.uniform(18, 28))] * (len(route) - 1)
            t0 = d0 + float(rng.uniform(0, DAY_S - 2 * 3600))
            tr, *_ = self._road_track(oid, oid, "background", route, spd, [0.0] * len(route), t0, d1, plate_=plate(rng))
            out.tracks.append(tr)

    def _flights(self, day: int, d0: float, d1: float, rng: np.random.Generator, out: DayTraffic) -> None:
        step = self.cfg.adsb_step_s
        ap = self.airports
        busy: dict[int, list[tuple[int, int]]] = {}
        light_busy: dict[int, list[tuple[int, int]]] = {}
        for k in range(self.cfg.bg_flights_per_day):
            a = ap[int(rng.integers(len(ap)))]
            b = ap[int(rng.integers(len(ap)))]
            d = float(dist_m(a[1], a[2], b[1], b[2]))
            if not 250_000 < d < 3_000_000:
                continue
            drawn = int(rng.integers(len(self.a_icao)))
            az = float(np.degrees(np.arctan2((b[1] - a[1]) * np.cos(np.radians(a[2])), b[2] - a[2])))
            c1 = offset(a[1], a[2], az, 80_000.0)
            c2 = offset(b[1], b[2], az + 180.0, 80_000.0)
            t0 = d0 + float(rng.uniform(0, DAY_S - d / 230.0 - 1800))
            t, lon, lat, z, s, c, _, _, _ = _sample(
                [a[1], c1[0], c2[0], b[1]], [a[2], c1[1], c2[1], b[2]], [130.0, 230.0, 130.0], [0, 0, 0, 0],
                t0, step, d1 - 1, alt=[0.0, 10_500.0, 10_500.0, 0.0],
            )  # fmt: skip
            on = rng.random(t.size) > 0.02
            i = _free_airframe(busy, drawn, len(self.a_icao), int(t[0]), int(t[-1]))
            if i is None:  # every airframe of the fleet is in the air or turning around
                continue
            oid = f"acft-{i:04d}"
            out.tracks.append(
                Track(
                    object_id=oid,
                    trip_id=f"{oid}-{day:03d}-{k:04d}",
                    kind="aircraft",
                    role="background",
                    ident=self.a_icao[i],
                    ident_kind="icao24",
                    name=self.a_call[i],
                    feed="adsb",
                    t=t,
                    lon=lon,
                    lat=lat,
                    alt=z,
                    speed=s,
                    course=c,
                    on=on,
                )
            )
        strips = self.sites.airstrips
        for k in range(self.cfg.narco_flights_per_day if len(strips) >= 2 else 0):
            i, j = rng.choice(len(strips), size=2, replace=False)
            sa, sb = strips[int(i)], strips[int(j)]
            drawn = int(rng.integers(self.n_light))
            d = float(dist_m(sa.lon, sa.lat, sb.lon, sb.lat))
            t0 = d0 + float(rng.uniform(0, max(60.0, DAY_S - d / 70.0 - 3600)))
            mid = ((sa.lon + sb.lon) / 2, (sa.lat + sb.lat) / 2)
            t, lon, lat, z, s, c, _, _, _ = _sample(
                [sa.lon, mid[0], sb.lon], [sa.lat, mid[1], sb.lat], [70.0, 70.0], [0, 0, 900.0], t0, step, d1 - 1,
                alt=[0.0, 3_000.0, 0.0],
            )  # fmt: skip
            cut = t0 + (t[-1] - t0) * float(rng.uniform(0.3, 0.7))
            li = _free_airframe(light_busy, drawn, self.n_light, int(t[0]), int(t[-1]))
            if li is None:
                continue
            sa.active_days.add(day)
            sb.active_days.add(day)
            oid = f"light-{li:03d}"
            out.tracks.append(
                Track(
                    object_id=oid,
                    trip_id=f"{oid}-{day:03d}-{k:02d}",
                    kind="aircraft",
                    role="narco_flight",
                    ident=self.l_icao[li],
                    ident_kind="icao24",
                    name=self.l_call[li],
                    feed="adsb",
                    t=t,
                    lon=lon,
                    lat=lat,
                    alt=z,
                    speed=s,
                    course=c,
                    on=t < cut,
                )
            )
            out.routes.append({"trip_id": f"{oid}-{day:03d}-{k:02d}", "kind": "air", "sites": [sa.site_id, sb.site_id]})

    def _patrols(self, day: int, d0: float, d1: float, rng: np.random.Generator, out: DayTraffic) -> None:
        for k, (bx, by) in enumerate(self.patrol_base):
            wps = [(bx, by)]
            for _ in range(int(rng.integers(3, 7))):
                p = offset(bx, by, float(rng.uniform(0, 360)), float(rng.uniform(3_000, 30_000)))
                if self.world.in_mex(np.array([p[0]]), np.array([p[1]]))[0]:
                    wps.append(p)
            wps.append((bx, by))
            t0 = d0 + 12 * 3600 + float(rng.uniform(0, 3600))
            t, lon, lat, _, s, c, _, _, _ = _sample(
                [p[0] for p in wps], [p[1] for p in wps], [8.0] * (len(wps) - 1), [600.0] * len(wps), t0,
                self.cfg.cot_step_s, d1 - 1,
            )  # fmt: skip
            uid = f"MEX-PATROL-{k + 1:02d}"
            out.tracks.append(
                Track(
                    object_id=uid,
                    trip_id=f"{uid}-{day:03d}",
                    kind="person",
                    role="patrol",
                    ident=uid,
                    ident_kind="cot_uid",
                    name=f"SEDENA-{k + 1:02d}",
                    feed="cot",
                    t=t,
                    lon=lon,
                    lat=lat,
                    alt=np.zeros(t.size),
                    speed=s,
                    course=c,
                    on=np.ones(t.size, dtype=bool),
                )
            )

    def _phones(self, day: int, d0: float, d1: float, rng: np.random.Generator, out: DayTraffic) -> None:
        site_by_id: dict[str, Site] = {s.site_id: s for s in self.sites.all()}
        for sid in sorted(self.site_phones):
            site = site_by_id.get(sid)
            if site is None or (site.kind == "lab" and day not in site.active_days):
                continue
            for ph in self.site_phones[sid]:
                for tt in np.sort(rng.uniform(d0, d1, int(rng.poisson(20)))):
                    e, n = rng.normal(0, 60, 2)
                    x, y = offset(site.lon, site.lat, float(np.degrees(np.arctan2(e, n))), float(np.hypot(e, n)))
                    out.emissions.append(
                        {"emitter": ph, "object_id": f"phone:{ph}", "time": float(tt), "lon": x, "lat": y}
                    )
        for tr in out.tracks:
            if tr.phone is None or tr.t.size < 2:
                continue
            for tt in np.sort(rng.uniform(float(tr.t[0]), float(tr.t[-1]), int(rng.poisson(20)))):
                x = float(np.interp(tt, tr.t, tr.lon))
                y = float(np.interp(tt, tr.t, tr.lat))
                out.emissions.append(
                    {"emitter": tr.phone, "object_id": f"phone:{tr.phone}", "time": float(tt), "lon": x, "lat": y}
                )
        for ph, (hx, hy) in zip(self.bg_phones, self.bg_phone_home, strict=True):
            for tt in np.sort(rng.uniform(d0, d1, int(rng.poisson(12)))):
                x, y = offset(hx, hy, float(rng.uniform(0, 360)), float(rng.uniform(0, 8_000)))
                out.emissions.append({"emitter": ph, "object_id": f"phone:{ph}", "time": float(tt), "lon": x, "lat": y})


def emissions_arrays(
    em: list[dict[str, Any]],
) -> tuple[F64, F64, F64, npt.NDArray[np.object_], npt.NDArray[np.object_]]:
    """Emission events as arrays ``(time, lon, lat, emitter, object_id)`` sorted by time then emitter."""
    if not em:
        z = np.zeros(0)
        return z, z, z, np.zeros(0, dtype=object), np.zeros(0, dtype=object)
    em = sorted(em, key=lambda e: (e["time"], e["emitter"]))
    return (
        np.array([e["time"] for e in em]),
        np.array([e["lon"] for e in em]),
        np.array([e["lat"] for e in em]),
        np.array([e["emitter"] for e in em], dtype=object),
        np.array([e["object_id"] for e in em], dtype=object),
    )
