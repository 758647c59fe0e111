"""Hidden infrastructure: labs, stash houses, clandestine airstrips, landing beaches, crossing points.

Labs sit in remote sierra of Sinaloa, Durango, Chihuahua, Michoacán and Jalisco
(far from airports and ports); stash houses a few tens of km south of illicit
crossing points on the MEX–USA land border; airstrips in remote terrain;
landing beaches on the Mexican coasts with an open-sea approach. Labs run on
some days (heat at night); the other sites are active on the days traffic uses
them (recorded by the movement generators).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely

from atalaya.scenario.config import ScenarioConfig
from atalaya.scenario.world import F64, LAB_STATES, PORTS_OF_ENTRY, World, dist_m, offset

AIRSTRIP_STATES = ("MX-SIN", "MX-DUR", "MX-CHH", "MX-SON", "MX-TAM", "MX-CAM", "MX-CHP")
BEACH_STATES = ("MX-SIN", "MX-SON", "MX-NAY", "MX-GRO", "MX-OAX", "MX-MIC", "MX-ROO", "MX-TAM", "MX-VER", "MX-CAM")


@dataclass(kw_only=True)
class Site:
    """One hidden place of the world (truth)."""

    site_id: str
    """Stable id, e.g. ``lab-007``."""
    kind: str
    """``lab``, ``stash_house``, ``airstrip``, ``landing_beach`` or ``crossing``."""
    lon: float
    """Longitude, degrees."""
    lat: float
    """Latitude, degrees."""
    state: str
    """ISO 3166-2 code of the state it lies in (the Mexican side for crossings)."""
    active_days: set[int] = field(default_factory=set)
    """0-based scenario days on which the site was in use."""
    approach: tuple[float, float] | None = None
    """For landing beaches: a point offshore on the open-sea approach."""
    link: str | None = None
    """For stash houses: the crossing point it feeds."""


@dataclass(frozen=True, kw_only=True)
class Sites:
    """All sites, by kind, in id order."""

    labs: list[Site]
    """Laboratories."""
    stash_houses: list[Site]
    """Stash houses near the border."""
    airstrips: list[Site]
    """Clandestine airstrips."""
    beaches: list[Site]
    """Landing beaches."""
    crossings: list[Site]
    """Illicit crossing points on the border line."""
    bg_structures: tuple[F64, F64]
    """Legitimate structures (lon, lat)."""
    bg_heat: tuple[F64, F64]
    """Legitimate heat sources (lon, lat)."""

    def all(self) -> list[Site]:
        """Every site, labs first."""
        return [*self.labs, *self.stash_houses, *self.airstrips, *self.beaches, *self.crossings]


def _state_of(world: World, lon: float, lat: float) -> str:
    for code, g in world.states.items():
        if shapely.contains_xy(g, lon, lat):
            return code
    return ""


def _remote_points(
    world: World, rng: np.random.Generator, states: tuple[str, ...], n: int, km: float
) -> list[tuple[float, float, str]]:
    out: list[tuple[float, float, str]] = []
    per = np.bincount(rng.integers(0, len(states), n), minlength=len(states))
    for code, k in zip(states, per, strict=True):
        if k == 0:
            continue
        x, y = world.sample_in(rng, world.states[code], int(k) * 12 + 20)
        ok = world.remote(x, y, km) & world.in_mex(x, y)
        xs, ys = x[ok][:k], y[ok][:k]
        out.extend((float(a), float(b), code) for a, b in zip(xs, ys, strict=True))
    return out


def build_sites(cfg: ScenarioConfig, world: World, rng: np.random.Generator) -> Sites:
    """Place every site of the world."""
    labs = [
        Site(site_id=f"lab-{i + 1:03d}", kind="lab", lon=x, lat=y, state=s)
        for i, (x, y, s) in enumerate(_remote_points(world, rng, LAB_STATES, cfg.labs, 40.0))
    ]
    # lab schedules: two-state Markov chain over days (runs of activity)
    for lab in labs:
        on = bool(rng.random() < 0.6)
        for d in range(cfg.days):
            if on:
                lab.active_days.add(d)
            on = bool(rng.random() < (0.75 if on else 0.45))

    # illicit crossings: remote stretches of the border, away from ports of entry
    poe = np.array([(p[1], p[2]) for p in PORTS_OF_ENTRY])
    crossings: list[Site] = []
    while len(crossings) < cfg.crossings:
        f = rng.uniform(0.02, 0.98)
        p = shapely.line_interpolate_point(world.border, f, normalized=True)
        x, y = float(p.x), float(p.y)
        if float(dist_m(x, y, poe[:, 0], poe[:, 1]).min()) < 30_000:
            continue
        if (
            crossings
            and float(dist_m(x, y, np.array([c.lon for c in crossings]), np.array([c.lat for c in crossings])).min())
            < 15_000
        ):
            continue
        sx, sy = offset(x, y, 180.0, 2_000.0)
        crossings.append(
            Site(
                site_id=f"xing-{len(crossings) + 1:03d}", kind="crossing", lon=x, lat=y, state=_state_of(world, sx, sy)
            )
        )

    stash: list[Site] = []
    while len(stash) < cfg.stash_houses:
        c = crossings[len(stash) % len(crossings)]
        x, y = offset(c.lon, c.lat, float(rng.uniform(140.0, 220.0)), float(rng.uniform(6_000.0, 40_000.0)))
        if not world.in_mex(np.array([x]), np.array([y]))[0] or not world.segment_on_land(x, y, c.lon, c.lat):
            continue
        stash.append(
            Site(
                site_id=f"stash-{len(stash) + 1:03d}",
                kind="stash_house",
                lon=x,
                lat=y,
                state=_state_of(world, x, y),
                link=c.site_id,
            )
        )

    strips = [
        Site(site_id=f"strip-{i + 1:03d}", kind="airstrip", lon=x, lat=y, state=s)
        for i, (x, y, s) in enumerate(_remote_points(world, rng, AIRSTRIP_STATES, cfg.airstrips, 30.0))
    ]

    beaches: list[Site] = []
    coast = world.mex.boundary
    tries = 0
    while len(beaches) < cfg.beaches and tries < 20_000:
        tries += 1
        p = shapely.line_interpolate_point(coast, float(rng.uniform(0, 1)), normalized=True)
        x, y = float(p.x), float(p.y)
        st = _state_of(world, *offset(x, y, 0.0, 0.0))
        if st not in BEACH_STATES:
            # a coastal point can fall a hair outside its state polygon: probe around it
            for az in (0.0, 90.0, 180.0, 270.0):
                st = _state_of(world, *offset(x, y, az, 1_500.0))
                if st:
                    break
        if st not in BEACH_STATES or float(world.border_km(np.array([x]), np.array([y]))[0]) < 30:
            continue
        good = []
        for az in np.arange(0.0, 360.0, 15.0):
            ax, ay = offset(x, y, float(az), 9_000.0)
            fx, fy = offset(x, y, float(az), 120_000.0)
            if world.segment_at_sea(ax, ay, fx, fy):
                good.append(float(az))
        if len(good) < 3:
            continue
        az = good[len(good) // 2]
        ax, ay = offset(x, y, az, 9_000.0)
        beaches.append(
            Site(
                site_id=f"beach-{len(beaches) + 1:03d}", kind="landing_beach", lon=x, lat=y, state=st, approach=(ax, ay)
            )
        )

    # legitimate structures and heat sources: spread over the same terrain (and the US border states)
    bg_states = (*LAB_STATES, "MX-SON", "MX-COA", "MX-NLE", "MX-TAM", "MX-ZAC", "US-AZ", "US-NM", "US-TX")
    sx_l: list[F64] = []
    sy_l: list[F64] = []
    per = np.bincount(rng.integers(0, len(bg_states), cfg.bg_structures + cfg.bg_heat), minlength=len(bg_states))
    for code, k in zip(bg_states, per, strict=True):
        bx, by = world.sample_in(rng, world.states[code], int(k))
        sx_l.append(bx)
        sy_l.append(by)
    allx, ally = np.concatenate(sx_l), np.concatenate(sy_l)
    order = rng.permutation(allx.size)
    allx, ally = allx[order], ally[order]
    n = cfg.bg_structures
    return Sites(
        labs=labs,
        stash_houses=stash,
        airstrips=strips,
        beaches=beaches,
        crossings=crossings,
        bg_structures=(allx[:n], ally[:n]),
        bg_heat=(allx[n:], ally[n:]),
    )
