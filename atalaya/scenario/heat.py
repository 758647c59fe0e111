"""Satellite thermal detections as NASA FIRMS publishes them: persistent heat and what looks like it.

The scenario's other feeds cover its few days; heat that persists is told
from heat that does not over months and years, so this generator writes a
multi-year FIRMS history ending with the scenario's last day:

- **Gas flares** (truth: ``truth/persistent_heat.parquet``): production
  platforms in the Bay of Campeche and the deep-water fields of the northern
  Gulf (``offshore_flare``), refineries, gas-processing and petrochemical
  plants on land (``industrial_flare``). Each flares at its own strength, so
  its chance of being detected on a clear overpass differs (weak flares are
  seen on a few days a year only); some start or stop flaring within the
  history, some flare only now and then.
- **One-off fires** scattered over Mexico (grass, forest and field fires, the
  dry season from February to May most): one to three days each, one to four
  pixels an overpass.
- **Seasonal burns**: cane and field burning in the farming states, the same
  farms every year, on a few days a season, each burn somewhere else on the
  farm. Over years a farm gathers as many days with heat as a weak flare.

Every detection is a fire pixel: its centre lies anywhere within the pixel
around the source (VIIRS 375 m at nadir, MODIS 1 km, both growing towards the
swath edge: the ``scan`` and ``track`` columns), plus the geolocation error.
A strong source lights the pixel next to it as well. Overpasses follow the
satellites' equator crossing times (S-NPP, NOAA-20 and NOAA-21 at 01:30 and
13:30, Aqua at 01:30 and 13:30, Terra at 10:30 and 22:30 local solar time);
clouds hide a source on a share of them.

Files (``feeds/firms/``), with FIRMS's own names and columns: the archive
(``fire_archive_SV-C2.csv``, ``fire_archive_M-C61.csv``, with the archive's
``type`` column) up to the day before the scenario, and the near-real-time
files (``fire_nrt_SV-C2.csv``, ``fire_nrt_M-C61.csv``) for its days. The
truth of every row (``truth/firms.parquet``: file, row, source id, source
kind) says which source lit it.

>>> from atalaya.scenario.config import get_config
>>> heat_config(get_config("small")).history_days
730
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from atalaya.ingest.firms import MODIS_COLUMNS, VIIRS_COLUMNS
from atalaya.scenario.config import DAY_S, ScenarioConfig
from atalaya.scenario.truth import write_parquet
from atalaya.scenario.world import F64, World, unflat

I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

OFFSHORE_FIELDS: tuple[tuple[str, float, float, float, float], ...] = (
    # name, lon, lat, radius (km), weight
    ("Cantarell", -92.22, 19.42, 14.0, 0.30),
    ("Ku-Maloob-Zaap", -92.30, 19.62, 10.0, 0.22),
    ("Abkatun-Pol-Chuc", -91.98, 19.18, 12.0, 0.18),
    ("Litoral de Tabasco", -92.75, 18.72, 14.0, 0.15),
    ("Ek-Balam", -92.55, 19.52, 6.0, 0.07),
    ("Perdido", -94.90, 26.12, 25.0, 0.08),
)
"""Offshore fields where platforms flare: ``(name, lon, lat, radius km, share of the platforms)``."""

INDUSTRIAL_PLANTS: tuple[tuple[str, float, float], ...] = (
    ("Salina Cruz refinery", -95.195, 16.205),
    ("Minatitlán refinery", -94.535, 17.985),
    ("Tula refinery", -99.265, 20.055),
    ("Salamanca refinery", -101.190, 20.575),
    ("Cadereyta refinery", -99.975, 25.585),
    ("Madero refinery", -97.845, 22.270),
    ("Dos Bocas refinery", -93.190, 18.420),
    ("Cactus gas plant", -93.180, 17.860),
    ("Nuevo Pemex gas plant", -92.985, 17.885),
    ("Ciudad Pemex gas plant", -92.470, 17.880),
    ("La Venta gas plant", -94.045, 18.100),
    ("Cangrejera petrochemical complex", -94.360, 18.100),
    ("Morelos petrochemical complex", -94.390, 18.065),
    ("Burgos gas plant", -98.330, 26.050),
    ("Poza Rica gas plant", -97.455, 20.540),
    ("Altamira industrial port", -97.905, 22.455),
    ("Coatzacoalcos cryogenic plant", -94.420, 18.125),
    ("Arenque gas plant", -97.760, 22.330),
)
"""Plants on land that flare: ``(name, lon, lat)`` (a seed moves each by up to 1.5 km)."""

FIRE_STATES = ("MX-CHP", "MX-OAX", "MX-GRO", "MX-MIC", "MX-JAL", "MX-DUR", "MX-SIN", "MX-CHH", "MX-CAM",
               "MX-ROO", "MX-YUC", "MX-VER", "MX-TAB", "MX-TAM", "MX-SLP", "MX-NAY", "MX-SON", "MX-PUE")  # fmt: skip
"""States where wild and field fires burn (the lab states among them)."""
BURN_STATES = ("MX-VER", "MX-TAB", "MX-JAL", "MX-SIN", "MX-TAM", "MX-CAM", "MX-CHP", "MX-SLP", "MX-MIC", "MX-OAX")
"""Farming states where cane and fields are burned every season."""

SATELLITES: tuple[tuple[str, str, float, float], ...] = (
    # FIRMS satellite code, instrument, day crossing (local solar hours), night crossing
    ("N", "VIIRS", 13.5, 1.5),
    ("N20", "VIIRS", 12.8, 0.8),
    ("N21", "VIIRS", 14.2, 2.2),
    ("Aqua", "MODIS", 13.5, 1.5),
    ("Terra", "MODIS", 10.5, 22.5),
)
"""Satellites whose fire pixels FIRMS publishes, with the local solar times they pass over."""

KINDS = ("offshore_flare", "industrial_flare")
"""Kinds of persistent heat in the truth."""


@dataclass(frozen=True, kw_only=True)
class HeatConfig:
    """How much heat a scenario size holds."""

    history_days: int
    """Days of FIRMS history written before the scenario's first day."""
    offshore: int
    """Flaring platforms offshore."""
    industrial: int
    """Flares at plants on land (at most two per plant of :data:`INDUSTRIAL_PLANTS`)."""
    fires_per_year: int
    """One-off fires a year."""
    burn_farms: int
    """Farms burned every season."""


HEAT_SIZES: dict[str, HeatConfig] = {
    "demo": HeatConfig(history_days=365, offshore=12, industrial=6, fires_per_year=800, burn_farms=50),
    "small": HeatConfig(history_days=730, offshore=30, industrial=12, fires_per_year=1500, burn_farms=120),
    "large": HeatConfig(history_days=1095, offshore=60, industrial=24, fires_per_year=3000, burn_farms=300),
}
"""Heat per named scenario size (other sizes take ``small``'s)."""


def heat_config(cfg: ScenarioConfig) -> HeatConfig:
    """The heat of a scenario's size."""
    return HEAT_SIZES.get(cfg.size, HEAT_SIZES["small"])


@dataclass(frozen=True, kw_only=True)
class HeatSources:
    """Every heat source of the history (flares, farms, fires), one row each."""

    id: list[str]
    """``flare-001`` …, ``burn-001`` …, ``fire-00001`` …"""
    kind: list[str]
    """``offshore_flare``, ``industrial_flare``, ``seasonal_burn`` or ``fire``."""
    lon: F64
    """Longitude of the source (for a farm, its centre)."""
    lat: F64
    """Latitude."""


@dataclass(frozen=True, kw_only=True)
class Pixels:
    """Fire pixels, one row each (times as Unix seconds)."""

    source: I64
    """Index of the source in :class:`HeatSources`."""
    t: I64
    """Overpass time."""
    sat: I64
    """Index into :data:`SATELLITES`."""
    lon: F64
    """Pixel centre."""
    lat: F64
    """Pixel centre."""
    scan: F64
    """Pixel size across track, km."""
    track: F64
    """Pixel size along track, km."""
    frp: F64
    """Fire radiative power, MW."""


def _overpasses(rng: np.random.Generator, lon: F64, day0: int, days: I64, sat: I64, night: B) -> tuple[I64, F64, F64]:
    """Overpass time (Unix s), pixel scan and track (km) of ``sat`` over ``lon`` on ``days`` (relative to
    ``day0``, the Unix day of the history's start)."""
    local = np.array([s[3] for s in SATELLITES])[sat] * night + np.array([s[2] for s in SATELLITES])[sat] * ~night
    view = rng.uniform(0.0, 1.0, sat.size)  # where in the swath: 0 at nadir, 1 at the edge
    hours = local - lon / 15.0 + (view - 0.5) * 1.6 * np.where(rng.random(sat.size) < 0.5, -1, 1)
    t = (day0 + days) * DAY_S + np.round(hours * 3600.0).astype(np.int64)
    modis = np.array([s[1] == "MODIS" for s in SATELLITES])[sat]
    base = np.where(modis, 1.0, 0.375)
    scan = base * (1.0 + np.where(modis, 3.8, 1.1) * view**2)
    track = base * (1.0 + np.where(modis, 1.0, 1.05) * view**2)
    return t, scan, track


def _pixels(
    rng: np.random.Generator,
    src: I64,
    slon: F64,
    slat: F64,
    spread_m: F64,
    day0: int,
    days: I64,
    sat: I64,
    night: B,
    frp: F64,
) -> Pixels:
    """Fire pixels of sources ``src`` seen on ``days`` by ``sat``: the fire anywhere within ``spread_m`` of the
    source (a farm's field, a fire's front), the pixel centre anywhere around it within the pixel, a second pixel
    beside a strong one."""
    t, scan, track = _overpasses(rng, slon, day0, days, sat, night)
    r = spread_m * np.sqrt(rng.random(src.size))
    az = rng.uniform(0.0, 2.0 * np.pi, src.size)
    e = r * np.sin(az) + (rng.random(src.size) - 0.5) * scan * 1000.0 + rng.normal(0.0, 80.0, src.size)
    n = r * np.cos(az) + (rng.random(src.size) - 0.5) * track * 1000.0 + rng.normal(0.0, 80.0, src.size)
    # a strong source lights the neighbouring pixel across track as well
    twin = rng.random(src.size) < np.clip(frp / 80.0, 0.02, 0.35)
    k = np.flatnonzero(twin)
    e = np.r_[e, e[k] + np.sign(rng.random(k.size) - 0.5) * scan[k] * 1000.0]
    n = np.r_[n, n[k]]
    idx = np.r_[np.arange(src.size), k]
    lon, lat = unflat(slon[idx], slat[idx], e, n)
    share = np.ones(idx.size)
    share[k] = 0.6
    share[src.size :] = 0.4
    return Pixels(source=src[idx], t=t[idx], sat=sat[idx], lon=lon, lat=lat, scan=scan[idx], track=track[idx],
                  frp=frp[idx] * share)  # fmt: skip


def _clear(rng: np.random.Generator, n: int, doy: I64) -> B:
    """Whether each look is free of cloud (clearer in the dry season, January to May)."""
    p = 0.55 + 0.2 * np.cos(2.0 * np.pi * (doy - 80) / 365.25)
    clear: B = rng.random(n) < p
    return clear


def _place_flares(rng: np.random.Generator, world: World, hc: HeatConfig) -> tuple[F64, F64, list[str]]:
    """Flare positions: platforms in the offshore fields at least 800 m apart, then plant flares on land."""
    xs: list[float] = []
    ys: list[float] = []
    kinds: list[str] = []
    w = np.array([f[4] for f in OFFSHORE_FIELDS])
    tries = 0
    while sum(k == "offshore_flare" for k in kinds) < hc.offshore and tries < 100 * hc.offshore:
        tries += 1
        _, fx, fy, rkm, _ = OFFSHORE_FIELDS[int(rng.choice(len(OFFSHORE_FIELDS), p=w / w.sum()))]
        r = rkm * 1000.0 * np.sqrt(rng.random())
        az = rng.uniform(0.0, 2.0 * np.pi)
        x, y = unflat(np.array([fx]), np.array([fy]), np.array([r * np.sin(az)]), np.array([r * np.cos(az)]))
        if world.on_land(x, y)[0] or _too_close(xs, ys, float(x[0]), float(y[0]), 800.0):
            continue
        xs.append(float(x[0]))
        ys.append(float(y[0]))
        kinds.append("offshore_flare")
    plants = rng.permutation(len(INDUSTRIAL_PLANTS))
    for i in range(hc.industrial):
        _, px, py = INDUSTRIAL_PLANTS[int(plants[i % len(plants)])]
        # a plant's second flare stands 1.5–3 km from its first (another unit of the complex)
        r = rng.uniform(0.0, 1_500.0) if i < len(plants) else rng.uniform(1_500.0, 3_000.0)
        az = rng.uniform(0.0, 2.0 * np.pi)
        x, y = unflat(np.array([px]), np.array([py]), np.array([r * np.sin(az)]), np.array([r * np.cos(az)]))
        xs.append(float(x[0]))
        ys.append(float(y[0]))
        kinds.append("industrial_flare")
    return np.array(xs), np.array(ys), kinds


def _too_close(xs: list[float], ys: list[float], x: float, y: float, m: float) -> bool:
    if not xs:
        return False
    dx = (np.asarray(xs) - x) * 111_320.0 * np.cos(np.radians(y))
    dy = (np.asarray(ys) - y) * 110_570.0
    return bool((np.hypot(dx, dy) < m).any())


def _flare_pixels(rng: np.random.Generator, fx: F64, fy: F64, kinds: list[str], day0: int, ndays: int) -> Pixels:
    """Every overpass of every flare, kept where the sky was clear and the flare was detected."""
    nf = fx.size
    offshore = np.array([k == "offshore_flare" for k in kinds])
    # flaring strength (MW) and the chance a clear night overpass of VIIRS detects it
    frp = np.exp(rng.normal(np.where(offshore, np.log(18.0), np.log(7.0)), 0.9))
    p_night = np.clip(0.02 + 0.25 * (1.0 - np.exp(-frp / 15.0)), 0.01, 0.4)
    mode = rng.random(nf)
    p_night = np.where(mode < 0.15, p_night * 0.06, p_night)  # flares lit now and then (maintenance, upsets)
    start = np.where(rng.random(nf) < 0.2, rng.integers(0, ndays, nf), 0)  # came on stream within the history
    stop = np.where(rng.random(nf) < 0.1, rng.integers(0, ndays, nf), ndays)  # shut in within the history
    stop = np.maximum(stop, start + 30)
    ns = len(SATELLITES)
    f, d, s, nt = (a.ravel() for a in np.meshgrid(np.arange(nf), np.arange(ndays), np.arange(ns), [0, 1],
                                                  indexing="ij"))  # fmt: skip
    night = nt == 1
    modis = np.array([x[1] == "MODIS" for x in SATELLITES])[s]
    p = p_night[f] * np.where(night, 1.0, 0.35) * np.where(modis, 0.45, 1.0)
    doy = (d + day0 + 4) % 365  # 1970-01-01 was a Thursday and day 0 of the year; close enough for seasons
    on = (d >= start[f]) & (d < stop[f]) & _clear(rng, f.size, doy) & (rng.random(f.size) < p)
    k = np.flatnonzero(on)
    f, d, s, night = f[k], d[k], s[k], night[k]
    day_frp = frp[f] * np.exp(rng.normal(0.0, 0.5, f.size))
    return _pixels(rng, f, fx[f], fy[f], np.full(f.size, 30.0), day0, d, s, night, day_frp)


def _fire_pixels(
    rng: np.random.Generator, world: World, n: int, day0: int, ndays: int, first: int, spread: tuple[float, float]
) -> tuple[Pixels, F64, F64]:
    """One-off fires: ``n`` fires over the history in :data:`FIRE_STATES`, each burning one to three days
    (sources numbered from ``first``)."""
    per = np.bincount(rng.integers(0, len(FIRE_STATES), n), minlength=len(FIRE_STATES))
    x, y = _sample_states(rng, world, FIRE_STATES, per)
    order = rng.permutation(x.size)
    x, y = x[order], y[order]
    day = _season_days(rng, n, day0, ndays, peak=105, width=45.0)
    return _event_pixels(rng, x, y, day, rng.integers(1, 4, n), first, spread, ndays, day0), x, y


def _sample_states(rng: np.random.Generator, world: World, states: tuple[str, ...], per: I64) -> tuple[F64, F64]:
    """``per[i]`` uniform points in each state ``states[i]``."""
    parts = [world.sample_in(rng, world.states[c], int(k)) for c, k in zip(states, per, strict=True) if k > 0]
    if not parts:
        return np.zeros(0), np.zeros(0)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _season_days(rng: np.random.Generator, n: int, day0: int, ndays: int, *, peak: int, width: float) -> I64:
    """``n`` days of the history, most of them within ``width`` days of day-of-year ``peak``."""
    years = max(1, -(-ndays // 365))
    doy = np.where(rng.random(n) < 0.8, np.round(rng.normal(peak, width, n)), rng.integers(0, 365, n))
    first_year_start = (day0 - (day0 + 4) % 365) - day0  # approximate start of the history's first year
    day = first_year_start + rng.integers(0, years + 1, n) * 365 + doy.astype(np.int64) % 365
    bad = (day < 0) | (day >= ndays)
    day[bad] = rng.integers(0, ndays, int(bad.sum()))
    return day.astype(np.int64)


def _event_pixels(
    rng: np.random.Generator,
    x: F64,
    y: F64,
    day: I64,
    length: I64,
    first: int,
    spread: tuple[float, float],
    ndays: int,
    day0: int,
) -> Pixels:
    """Pixels of short fires at ``x, y`` from ``day`` for ``length`` days: each clear overpass sees one to four
    pixels of the burning front (mostly by day)."""
    ev = np.repeat(np.arange(x.size), length)
    off = np.concatenate([np.arange(k) for k in length]) if length.size else np.zeros(0, np.int64)
    d = day[ev] + off
    keep = d < ndays
    ev, d = ev[keep], d[keep]
    ns = len(SATELLITES)
    e, s, nt = (a.ravel() for a in np.meshgrid(np.arange(ev.size), np.arange(ns), [0, 1], indexing="ij"))
    night = nt == 1
    doy = (d[e] + day0 + 4) % 365
    seen = _clear(rng, e.size, doy) & (rng.random(e.size) < np.where(night, 0.1, 0.4))
    k = np.flatnonzero(seen)
    e, s, night = e[k], s[k], night[k]
    reps = rng.integers(1, 4, e.size)
    e, s, night = np.repeat(e, reps), np.repeat(s, reps), np.repeat(night, reps)
    src = ev[e]
    frp = np.exp(rng.normal(np.log(6.0), 1.0, src.size))
    sp = rng.uniform(spread[0], spread[1], x.size)[src]
    return _pixels(rng, first + src, x[src], y[src], sp, day0, d[e], s, night, frp)


def _burn_pixels(
    rng: np.random.Generator, world: World, n: int, day0: int, ndays: int, first: int
) -> tuple[Pixels, F64, F64]:
    """Farms burned every dry season, on one to eight days a season, each burn elsewhere on the farm."""
    per = np.bincount(rng.integers(0, len(BURN_STATES), n), minlength=len(BURN_STATES))
    x, y = _sample_states(rng, world, BURN_STATES, per)
    order = rng.permutation(x.size)
    x, y = x[order], y[order]
    radius = rng.uniform(200.0, 1_500.0, n)  # the farm's size
    years = -(-ndays // 365) + 1
    per_season = rng.integers(1, 9, (n, years))
    farm = np.repeat(np.repeat(np.arange(n), years), per_season.ravel())
    yr = np.repeat(np.tile(np.arange(years), n), per_season.ravel())
    first_year_start = (day0 - (day0 + 4) % 365) - day0
    doy = np.round(rng.normal(75, 30, farm.size)).astype(np.int64) % 365  # zafra: December to May
    day = first_year_start + yr * 365 + doy
    ok = (day >= 0) & (day < ndays)
    farm, day = farm[ok], day[ok]
    # each burn at its own field within the farm
    r = radius[farm] * np.sqrt(rng.random(farm.size))
    az = rng.uniform(0.0, 2.0 * np.pi, farm.size)
    bx, by = unflat(x[farm], y[farm], r * np.sin(az), r * np.cos(az))
    px = _event_pixels(rng, bx, by, day, np.ones(farm.size, np.int64), 0, (50.0, 250.0), ndays, day0)
    return Pixels(source=first + farm[px.source], t=px.t, sat=px.sat, lon=px.lon, lat=px.lat, scan=px.scan,
                  track=px.track, frp=px.frp), x, y  # fmt: skip


def _cat(parts: list[Pixels]) -> Pixels:
    return Pixels(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in Pixels.__dataclass_fields__})


def build_heat(cfg: ScenarioConfig, world: World, rng: np.random.Generator) -> tuple[HeatSources, Pixels]:
    """The heat sources of the history and every fire pixel the satellites saw of them (time order)."""
    hc = heat_config(cfg)
    ndays = hc.history_days + cfg.days
    day0 = cfg.start_s // DAY_S - hc.history_days
    fx, fy, fkinds = _place_flares(rng, world, hc)
    flares = _flare_pixels(rng, fx, fy, fkinds, day0, ndays)
    nb = hc.burn_farms
    burns, bx, by = _burn_pixels(rng, world, nb, day0, ndays, fx.size)
    nfire = round(hc.fires_per_year * ndays / 365.0)
    fires, rx, ry = _fire_pixels(rng, world, nfire, day0, ndays, fx.size + nb, (50.0, 800.0))
    src = HeatSources(
        id=[f"flare-{i + 1:03d}" for i in range(fx.size)]
        + [f"burn-{i + 1:03d}" for i in range(nb)]
        + [f"fire-{i + 1:05d}" for i in range(nfire)],
        kind=[*fkinds, *(["seasonal_burn"] * nb), *(["fire"] * nfire)],
        lon=np.r_[fx, bx, rx],
        lat=np.r_[fy, by, ry],
    )
    px = _cat([flares, burns, fires])
    order = np.lexsort((px.lon, px.sat, px.t))
    return src, Pixels(**{k: getattr(px, k)[order] for k in Pixels.__dataclass_fields__})


def _rows(rng: np.random.Generator, px: Pixels, sources: HeatSources, *, archive: bool, modis: bool) -> list[list[Any]]:
    """CSV rows in FIRMS's layout (see :mod:`atalaya.ingest.firms`)."""
    n = px.t.size
    dt = px.t.astype("datetime64[s]")
    dates = np.datetime_as_string(dt, unit="D")
    hhmm = np.char.replace(np.datetime_as_string(dt, unit="m"), ":", "")
    hhmm = np.array([h[-4:] for h in hhmm.tolist()]) if n else np.zeros(0, str)
    if archive:  # archive files drop the leading zeros of acq_time
        hhmm = np.char.lstrip(hhmm, "0")
        hhmm[hhmm == ""] = "0"
    hour = (px.t % DAY_S) / 3600.0 + px.lon / 15.0
    night = ((hour % 24.0) < 6.0) | ((hour % 24.0) >= 18.0)
    t4 = np.clip(np.where(night, 300.0, 318.0) + 9.0 * np.log1p(px.frp) + rng.normal(0, 4.0, n), 295.0, 367.0)
    t5 = np.clip(np.where(night, 285.0, 298.0) + rng.normal(0, 4.0, n), 260.0, 330.0)
    if modis:
        t4 = np.clip(t4 + 8.0, 300.0, 500.0)
        conf_num = np.clip(np.round(35.0 + 14.0 * np.log1p(px.frp) + rng.normal(0, 10.0, n)), 0, 100).astype(int)
        conf: list[Any] = conf_num.tolist()
    else:
        conf = np.where(t4 >= 360.0, "h", np.where((t4 < 325.0) & ~night, "l", "n")).tolist()
    sats = [SATELLITES[int(i)][0] for i in px.sat.tolist()]
    offshore = np.asarray(sources.kind, dtype=object)[px.source] == "offshore_flare"
    ftype = np.where(offshore, 3, np.where(np.asarray(sources.kind, dtype=object)[px.source] == "fire", 0, 2))
    cols = [
        np.round(px.lat, 5).tolist(),
        np.round(px.lon, 5).tolist(),
        np.round(t4, 2).tolist(),
        np.round(px.scan, 2).tolist(),
        np.round(px.track, 2).tolist(),
        dates.tolist(),
        hhmm.tolist(),
        sats,
        ["MODIS" if modis else "VIIRS"] * n,
        conf,
        [("6.1" if archive else "6.1NRT") if modis else ("2" if archive else "2.0NRT")] * n,
        np.round(t5, 2).tolist(),
        np.round(px.frp, 2).tolist(),
        np.where(night, "N", "D").tolist(),
    ]
    if archive:
        cols.append(ftype.tolist())
    return [list(r) for r in zip(*cols, strict=True)]


FILES = {
    (True, False): "fire_archive_SV-C2.csv",
    (True, True): "fire_archive_M-C61.csv",
    (False, False): "fire_nrt_SV-C2.csv",
    (False, True): "fire_nrt_M-C61.csv",
}
"""File name by (archive, MODIS), as FIRMS names its downloads."""


def write_heat(out: Path, cfg: ScenarioConfig, sources: HeatSources, px: Pixels, rng: np.random.Generator) -> int:
    """Write the FIRMS files under ``out/feeds/firms/``, ``truth/persistent_heat.parquet`` and
    ``truth/firms.parquet``; returns the rows written."""
    fdir = out / "feeds" / "firms"
    fdir.mkdir(parents=True, exist_ok=True)
    modis = np.array([s[1] == "MODIS" for s in SATELLITES])[px.sat]
    archive = px.t < cfg.start_s
    truth: dict[str, list[Any]] = {"file": [], "row": [], "source_id": [], "source_kind": []}
    total = 0
    ids = np.asarray(sources.id, dtype=object)
    kinds = np.asarray(sources.kind, dtype=object)
    for (arch, mod), name in FILES.items():
        k = np.flatnonzero((archive == arch) & (modis == mod))
        sub = Pixels(**{f: getattr(px, f)[k] for f in Pixels.__dataclass_fields__})
        header = [*(MODIS_COLUMNS if mod else VIIRS_COLUMNS), *(["type"] if arch else [])]
        with open(fdir / name, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(header)
            w.writerows(_rows(rng, sub, sources, archive=arch, modis=mod))
        rel = f"feeds/firms/{name}"
        truth["file"].extend([rel] * k.size)
        truth["row"].extend(range(1, k.size + 1))
        truth["source_id"].extend(ids[sub.source].tolist())
        truth["source_kind"].extend(kinds[sub.source].tolist())
        total += int(k.size)
    write_parquet(out / "truth" / "firms.parquet", {k: pa.array(v, type=pa.int64() if k == "row" else pa.string())
                                                    for k, v in truth.items()})  # fmt: skip
    flare = np.flatnonzero(np.isin(kinds, KINDS))
    src_days = _detection_days(px, len(sources.id))
    write_parquet(
        out / "truth" / "persistent_heat.parquet",
        {
            "site_id": pa.array(ids[flare].tolist(), type=pa.string()),
            "kind": pa.array(kinds[flare].tolist(), type=pa.string()),
            "lon": pa.array(sources.lon[flare], type=pa.float64()),
            "lat": pa.array(sources.lat[flare], type=pa.float64()),
            "detection_days": pa.array(src_days[flare], type=pa.int64()),
        },
    )
    return total


def _detection_days(px: Pixels, n_sources: int) -> I64:
    """Distinct UTC days on which each source lit at least one pixel."""
    key = np.unique(px.source * (1 << 24) + px.t // DAY_S % (1 << 24))
    return np.bincount(key >> 24, minlength=n_sources).astype(np.int64)


def generate_heat(out: Path, cfg: ScenarioConfig, world: World, seed: int) -> int:
    """Build and write the FIRMS history of a scenario (see the module docstring); returns the rows written."""
    sources, px = build_heat(cfg, world, cfg.rng(seed, 60))
    return write_heat(Path(out), cfg, sources, px, cfg.rng(seed, 61))


def history_start(cfg: ScenarioConfig) -> datetime:
    """First day of the FIRMS history (UTC midnight)."""
    return datetime.fromtimestamp(cfg.start_s - heat_config(cfg).history_days * DAY_S, tz=UTC)


__all__ = [
    "FILES",
    "HEAT_SIZES",
    "INDUSTRIAL_PLANTS",
    "KINDS",
    "OFFSHORE_FIELDS",
    "HeatConfig",
    "HeatSources",
    "Pixels",
    "build_heat",
    "generate_heat",
    "heat_config",
    "history_start",
    "write_heat",
]
