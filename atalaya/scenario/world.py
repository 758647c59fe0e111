"""The map the scenario lives on, and kinematics along it.

Geography comes from the bundled Natural Earth layers: Mexico and its
neighbours (land), Mexican and US states, the MEX–USA land border, airports and
ports. Kinematics turn waypoint lists into timed, regularly sampled paths.

>>> w = get_world()
>>> bool(w.on_land(np.array([-103.0]), np.array([24.0]))[0])
True
>>> bool(w.on_land(np.array([-110.0]), np.array([20.0]))[0])
False
>>> t, lon, lat, spd, crs = timed_path(np.array([-100.0, -100.0]), np.array([20.0, 20.1]), 10.0, t0=0, step=60)
>>> int(t[-1]) <= 1200 and float(spd[0])
10.0
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Geod
from shapely.geometry.base import BaseGeometry

from atalaya.geo.naturalearth import load_layer

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

GEOD = Geod(ellps="WGS84")
"""WGS84 ellipsoid for distances and forward positions."""

LAB_STATES = ("MX-SIN", "MX-DUR", "MX-CHH", "MX-MIC", "MX-JAL")
"""States whose sierra hides the laboratories."""

BORDER_STATES_MX = ("MX-BCN", "MX-SON", "MX-CHH", "MX-COA", "MX-NLE", "MX-TAM")
"""Mexican states on the US border."""

PORTS_OF_ENTRY: tuple[tuple[str, float, float], ...] = (
    ("Tijuana–San Ysidro", -117.03, 32.54),
    ("Mexicali–Calexico", -115.50, 32.66),
    ("Nogales", -110.94, 31.33),
    ("Ciudad Juárez–El Paso", -106.45, 31.75),
    ("Piedras Negras–Eagle Pass", -100.50, 28.70),
    ("Nuevo Laredo–Laredo", -99.51, 27.50),
    ("Reynosa–Hidalgo", -98.23, 26.08),
    ("Matamoros–Brownsville", -97.50, 25.89),
)
"""Official ports of entry (legitimate cross-border traffic)."""

SEA_BOXES: dict[str, tuple[float, float, float, float]] = {
    "pacific": (-117.5, 13.5, -93.0, 31.0),
    "gulf": (-97.6, 18.3, -84.5, 29.5),
    "caribbean": (-87.6, 15.5, -84.0, 21.8),
}
"""Basins where vessels sail: ``(min lon, min lat, max lon, max lat)``."""

REGION = (-125.0, 10.0, -80.0, 37.0)
"""Bounding box every generated position lies in."""


@dataclass(frozen=True, kw_only=True)
class World:
    """Prepared geometries of the scenario map."""

    mex: BaseGeometry
    """Mexico (land)."""
    usa: BaseGeometry
    """United States (land)."""
    land: BaseGeometry
    """All land of the region."""
    coast_buffer: BaseGeometry
    """Land grown by about 5 km (vessels keep out of it)."""
    states: dict[str, BaseGeometry]
    """ISO 3166-2 code → state polygon (Mexico and the US border states)."""
    border: BaseGeometry
    """MEX–USA land border (MultiLineString)."""
    airports: tuple[tuple[str, float, float, str], ...]
    """Airports in the region: ``(code, lon, lat, type)``, sorted by code."""
    ports: tuple[tuple[str, float, float], ...]
    """Sea ports in the region: ``(name, lon, lat)``, sorted by name."""

    def on_land(self, lon: F64, lat: F64) -> B:
        """Whether each point is on land."""
        return np.asarray(shapely.contains_xy(self.land, lon, lat), dtype=bool)

    def in_mex(self, lon: F64, lat: F64) -> B:
        """Whether each point is on Mexican land."""
        return np.asarray(shapely.contains_xy(self.mex, lon, lat), dtype=bool)

    def in_usa(self, lon: F64, lat: F64) -> B:
        """Whether each point is on US land."""
        return np.asarray(shapely.contains_xy(self.usa, lon, lat), dtype=bool)

    def open_sea(self, lon: F64, lat: F64) -> B:
        """Whether each point is at sea at least about 5 km from land."""
        return ~np.asarray(shapely.contains_xy(self.coast_buffer, lon, lat), dtype=bool)

    def segment_at_sea(self, lon0: float, lat0: float, lon1: float, lat1: float) -> bool:
        """Whether the straight segment between two points stays in open sea."""
        f = np.linspace(0.0, 1.0, 41)
        return bool(self.open_sea(lon0 + f * (lon1 - lon0), lat0 + f * (lat1 - lat0)).all())

    def segment_on_land(self, lon0: float, lat0: float, lon1: float, lat1: float) -> bool:
        """Whether the straight segment between two points stays on land."""
        n = max(8, int(np.hypot(lon1 - lon0, lat1 - lat0) / 0.02))
        f = np.linspace(0.0, 1.0, n + 1)
        return bool(self.on_land(lon0 + f * (lon1 - lon0), lat0 + f * (lat1 - lat0)).all())

    def border_km(self, lon: F64, lat: F64) -> F64:
        """Approximate distance of each point to the MEX–USA border, km."""
        pts = shapely.points(lon, lat)
        deg = shapely.distance(pts, self.border)
        near = shapely.shortest_line(pts, self.border)
        coords = shapely.get_coordinates(near).reshape(-1, 2, 2)
        _, _, d = GEOD.inv(coords[:, 0, 0], coords[:, 0, 1], coords[:, 1, 0], coords[:, 1, 1])
        return np.where(np.isfinite(deg), np.asarray(d) / 1000.0, np.nan)

    def sample_in(self, rng: np.random.Generator, geom: BaseGeometry, n: int) -> tuple[F64, F64]:
        """``n`` uniform random points inside ``geom`` (rejection sampling in its bounds)."""
        x0, y0, x1, y1 = geom.bounds
        xs: list[F64] = []
        ys: list[F64] = []
        got = 0
        while got < n:
            x = rng.uniform(x0, x1, 4 * n + 16)
            y = rng.uniform(y0, y1, 4 * n + 16)
            ok = np.asarray(shapely.contains_xy(geom, x, y), dtype=bool)
            xs.append(x[ok])
            ys.append(y[ok])
            got += int(ok.sum())
        return np.concatenate(xs)[:n], np.concatenate(ys)[:n]

    def sample_sea(self, rng: np.random.Generator, basin: str, n: int) -> tuple[F64, F64]:
        """``n`` random open-sea points in a basin of :data:`SEA_BOXES`."""
        x0, y0, x1, y1 = SEA_BOXES[basin]
        xs: list[F64] = []
        ys: list[F64] = []
        got = 0
        while got < n:
            x = rng.uniform(x0, x1, 3 * n + 16)
            y = rng.uniform(y0, y1, 3 * n + 16)
            ok = self.open_sea(x, y)
            xs.append(x[ok])
            ys.append(y[ok])
            got += int(ok.sum())
        return np.concatenate(xs)[:n], np.concatenate(ys)[:n]

    def basin_of(self, lon: float, lat: float) -> str:
        """The basin a sea point belongs to (first box that holds it)."""
        for name, (x0, y0, x1, y1) in SEA_BOXES.items():
            if x0 <= lon <= x1 and y0 <= lat <= y1 and not (name == "pacific" and lon > -94.5 and lat > 16.5):
                return name
        return "pacific"

    def remote(self, lon: F64, lat: F64, km: float) -> B:
        """Whether each point is at least ``km`` from every airport and port (a remoteness proxy)."""
        ref = np.array([(a[1], a[2]) for a in self.airports] + [(p[1], p[2]) for p in self.ports])
        out = np.ones(len(lon), dtype=bool)
        coslat = np.cos(np.radians(lat))
        for x, y in ref:
            d = np.hypot((lon - x) * 111.32 * coslat, (lat - y) * 110.57)
            out &= d >= km
        return out


@cache
def get_world() -> World:
    """The scenario map, built once per process."""
    countries = {p["adm0_a3"]: g for p, g in load_layer("admin0_region")}
    mex, usa = countries["MEX"], countries["USA"]
    land = shapely.union_all(list(countries.values()))
    states = {
        str(p["iso_3166_2"]): g
        for p, g in load_layer("admin1")
        if p["adm0_a3"] == "MEX" or p["iso_3166_2"] in ("US-CA", "US-AZ", "US-NM", "US-TX")
    }
    border = shapely.union_all(
        [g for p, g in load_layer("boundary_lines_land") if {p.get("adm0_a3_l"), p.get("adm0_a3_r")} == {"MEX", "USA"}]
    )
    x0, y0, x1, y1 = REGION
    airports = sorted(
        (str(p.get("iata_code") or p.get("abbrev") or p.get("name")), float(g.x), float(g.y), str(p.get("type", "")))
        for p, g in load_layer("airports")
        if x0 <= g.x <= x1 and y0 <= g.y <= y1
    )
    ports = sorted(
        (str(p.get("name")), float(g.x), float(g.y))
        for p, g in load_layer("ports")
        if x0 <= g.x <= x1 and y0 <= g.y <= y1
    )
    region_land = shapely.clip_by_rect(land, x0 - 1, y0 - 1, x1 + 1, y1 + 1)
    coast_buffer = shapely.buffer(shapely.simplify(region_land, 0.01), 0.05, quad_segs=2)
    for g in (mex, usa, land, coast_buffer, border, *states.values()):
        shapely.prepare(g)
    return World(
        mex=mex,
        usa=usa,
        land=land,
        coast_buffer=coast_buffer,
        states=states,
        border=border,
        airports=tuple(airports),
        ports=tuple(ports),
    )


# --------------------------------------------------------------------------- kinematics


def circle(lon: float, lat: float, radius_m: float, *, turns: float = 1.0, step_deg: float = 10.0) -> tuple[F64, F64]:
    """Waypoints of ``turns`` clockwise circles of ``radius_m`` around a centre, starting due north."""
    az = np.arange(0.0, 360.0 * turns + 1e-9, step_deg)
    x, y, _ = GEOD.fwd(np.full(az.size, lon), np.full(az.size, lat), az, np.full(az.size, radius_m))
    return np.asarray(x), np.asarray(y)


def racetrack(
    lon: float, lat: float, heading_deg: float, length_m: float, width_m: float, *, laps: int = 1
) -> tuple[F64, F64]:
    """Waypoints of ``laps`` racetrack circuits centred on a point, long axis along ``heading_deg``."""
    half = length_m / 2.0
    (ax, bx), (ay, by), _ = GEOD.fwd([lon, lon], [lat, lat], [heading_deg, heading_deg + 180.0], [half, half])
    r = width_m / 2.0
    pts_x: list[float] = []
    pts_y: list[float] = []
    for cx, cy, base in ((ax, ay, heading_deg), (bx, by, heading_deg + 180.0)):
        az = base - 90.0 + np.arange(0.0, 181.0, 20.0)
        x, y, _ = GEOD.fwd(np.full(az.size, cx), np.full(az.size, cy), az, np.full(az.size, r))
        pts_x.extend(np.asarray(x).tolist())
        pts_y.extend(np.asarray(y).tolist())
    one_x, one_y = np.array(pts_x), np.array(pts_y)
    return np.tile(one_x, laps), np.tile(one_y, laps)


def offset(lon: float, lat: float, az_deg: float, dist_m: float) -> tuple[float, float]:
    """The point ``dist_m`` from a point along azimuth ``az_deg``."""
    x, y, _ = GEOD.fwd(lon, lat, az_deg, dist_m)
    return float(x), float(y)


def dist_m(lon0: F64 | float, lat0: F64 | float, lon1: F64 | float, lat1: F64 | float) -> F64:
    """Geodesic distances, metres (broadcasting)."""
    a, b, c, d = np.broadcast_arrays(
        np.asarray(lon0, float), np.asarray(lat0, float), np.asarray(lon1, float), np.asarray(lat1, float)
    )
    _, _, dd = GEOD.inv(a.ravel(), b.ravel(), c.ravel(), d.ravel())
    return np.asarray(dd, dtype=np.float64).reshape(a.shape)


def flat_m(lon0: F64, lat0: F64, lon1: F64, lat1: F64) -> tuple[F64, F64]:
    """East/north offsets (metres) of points 1 from points 0, local flat-earth approximation."""
    coslat = np.cos(np.radians(lat0))
    return (lon1 - lon0) * 111_320.0 * coslat, (lat1 - lat0) * 110_574.0


def unflat(lon0: F64, lat0: F64, east_m: F64, north_m: F64) -> tuple[F64, F64]:
    """Inverse of :func:`flat_m`: points ``east_m``/``north_m`` metres from points 0."""
    coslat = np.cos(np.radians(lat0))
    return lon0 + east_m / (111_320.0 * coslat), lat0 + north_m / 110_574.0


def knots(
    lon: F64,
    lat: F64,
    speed: F64 | float,
    *,
    t0: float,
    dwell: F64 | None = None,
    alt: F64 | None = None,
    max_seg_m: float = 20_000.0,
) -> tuple[F64, F64, F64, F64, F64]:
    """Time knots of a waypoint path: ``(t, lon, lat, seg_speed, alt)`` after geodesic densification.

    ``speed`` is per segment (or one value), ``dwell`` seconds waited at each waypoint, ``alt``
    metres at each waypoint (linear in between). ``seg_speed[i]`` is the speed from knot ``i`` to
    ``i+1`` (0 while dwelling).
    """
    n = lon.size
    spd = np.broadcast_to(np.asarray(speed, dtype=np.float64), (max(n - 1, 0),))
    dw = np.zeros(n) if dwell is None else np.asarray(dwell, dtype=np.float64)
    al = np.zeros(n) if alt is None else np.asarray(alt, dtype=np.float64)
    tx: list[float] = [float(t0)]
    xs: list[float] = [float(lon[0])]
    ys: list[float] = [float(lat[0])]
    zs: list[float] = [float(al[0])]
    ss: list[float] = []
    t = float(t0)
    for i in range(n):
        if dw[i] > 0:
            t += float(dw[i])
            ss.append(0.0)
            tx.append(t)
            xs.append(xs[-1])
            ys.append(ys[-1])
            zs.append(zs[-1])
        if i == n - 1:
            break
        d = float(dist_m(lon[i], lat[i], lon[i + 1], lat[i + 1]))
        k = int(np.ceil(d / max_seg_m))
        if k > 1:
            mid = GEOD.npts(lon[i], lat[i], lon[i + 1], lat[i + 1], k - 1)
            seq = [*mid, (float(lon[i + 1]), float(lat[i + 1]))]
        else:
            seq = [(float(lon[i + 1]), float(lat[i + 1]))]
        v = max(float(spd[i]), 0.1)
        step = d / len(seq) / v
        for j, (x, y) in enumerate(seq, start=1):
            t += step
            tx.append(t)
            xs.append(x)
            ys.append(y)
            zs.append(float(al[i] + (al[i + 1] - al[i]) * j / len(seq)))
            ss.append(v)
    ss.append(0.0)
    return np.array(tx), np.array(xs), np.array(ys), np.array(ss), np.array(zs)


def sample_knots(tk: F64, xk: F64, yk: F64, sk: F64, t: F64) -> tuple[F64, F64, F64, F64]:
    """Positions, speeds and courses at times ``t`` along knots from :func:`knots`."""
    lon = np.interp(t, tk, xk)
    lat = np.interp(t, tk, yk)
    seg = np.clip(np.searchsorted(tk, t, side="right") - 1, 0, tk.size - 1)
    spd = sk[seg]
    nxt = np.minimum(seg + 1, tk.size - 1)
    de, dn = flat_m(xk[seg], yk[seg], xk[nxt], yk[nxt])
    crs = np.degrees(np.arctan2(de, dn)) % 360.0
    moving = (de != 0) | (dn != 0)
    # while dwelling keep the last course flown
    idx = np.maximum.accumulate(np.where(moving, np.arange(t.size), -1)) if t.size else np.zeros(0, dtype=np.int64)
    crs = np.where(idx >= 0, crs[np.maximum(idx, 0)], 0.0) if t.size else crs
    return lon, lat, spd, crs


def timed_path(
    lon: F64,
    lat: F64,
    speed: F64 | float,
    *,
    t0: float,
    step: int,
    dwell: F64 | None = None,
    t_end: float | None = None,
) -> tuple[I64, F64, F64, F64, F64]:
    """Sample a waypoint path every ``step`` seconds on the absolute grid (times multiple of ``step``).

    Returns ``(t, lon, lat, speed_mps, course_deg)``; ``t`` in integer Unix seconds.
    """
    tk, xk, yk, sk, _ = knots(lon, lat, speed, t0=t0, dwell=dwell)
    end = tk[-1] if t_end is None else min(tk[-1], t_end)
    first = int(np.ceil(t0 / step)) * step
    t = np.arange(first, end + 1e-9, step, dtype=np.int64)
    x, y, s, c = sample_knots(tk, xk, yk, sk, t.astype(np.float64))
    return t, x, y, s, c
