"""Scenario sizes: how many days, places and moving things a generated world holds.

>>> SIZES["demo"].days
2
>>> get_config("small").start.isoformat()
'2026-03-02T00:00:00+00:00'
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from atalaya.core.errors import ConfigError

START = datetime(2026, 3, 2, tzinfo=UTC)
"""Fixed start of every scenario (no wall clock anywhere)."""

DAY_S = 86_400
"""Seconds per day."""


@dataclass(frozen=True, kw_only=True)
class ScenarioConfig:
    """Everything that scales with the scenario size."""

    size: str
    """Size name (``demo``, ``small``, ``large`` or ``custom``)."""
    days: int
    """Number of simulated days from :data:`START`."""
    start: datetime = START
    """First instant of the scenario (UTC)."""
    labs: int
    """Hidden drug laboratories in the sierra."""
    stash_houses: int
    """Stash houses near the US border."""
    airstrips: int
    """Clandestine airstrips."""
    beaches: int
    """Landing beaches on the coasts."""
    crossings: int
    """Illicit border crossing points on the MEX–USA land border."""
    bg_structures: int
    """Legitimate structures (ranches, farms) that EO sensors also see."""
    bg_heat: int
    """Legitimate heat sources (kilns, burns) that IR sensors also see."""
    smuggle_trips_per_day: int
    """Smuggling vehicle trips (lab → stash house → crossing) per day."""
    bg_vehicles_per_day: int
    """Legitimate vehicle trips per day."""
    vessels: int
    """Legitimate vessels with AIS (persistent fleet)."""
    suspect_vessels: int
    """Vessels that switch AIS off and meet others at sea."""
    rendezvous_per_day: int
    """Planted rendezvous (with dark gaps) per day."""
    gofast_per_day: int
    """Go-fast boat runs to landing beaches per day."""
    bg_flights_per_day: int
    """Legitimate flights with ADS-B per day."""
    narco_flights_per_day: int
    """Light aircraft flights to clandestine airstrips per day."""
    patrols: int
    """Host-party ground patrol teams reporting by CoT."""
    bg_phones: int
    """Legitimate phones that SIGINT may geolocate."""
    sorties_per_day: float
    """Mean untasked collection sorties (border orbits, open-sea patrols) launched per day."""
    decoy_share: float = 0.6
    """Empty "suspected" areas tasked per area of interest that holds a hidden site."""
    revisits: tuple[int, int] = (2, 4)
    """Least and most days on which each area of interest is tasked."""
    mq9_tasked_per_day: int = 3
    """MQ-9 sorties a day orbiting tasked boxes (the U-2s fly legs through the rest)."""
    u2_areas_per_sortie: int = 14
    """Most tasked boxes one U-2 sortie flies through."""
    ais_step_s: int = 60
    """Seconds between AIS position reports."""
    adsb_step_s: int = 10
    """Seconds between ADS-B position messages."""
    cot_step_s: int = 60
    """Seconds between CoT position events."""
    gpx_step_s: int = 10
    """Seconds between points of the sortie GPX tracks."""

    @property
    def start_s(self) -> int:
        """Scenario start as Unix seconds."""
        return int(self.start.timestamp())

    def day_start_s(self, day: int) -> int:
        """Unix seconds of the first instant of ``day`` (0-based)."""
        return self.start_s + day * DAY_S

    def rng(self, seed: int, *key: int) -> np.random.Generator:
        """An independent generator for one component (SeedSequence spawn key ``key``)."""
        return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=tuple(key)))


SIZES: dict[str, ScenarioConfig] = {
    "demo": ScenarioConfig(
        size="demo",
        days=2,
        labs=12,
        stash_houses=8,
        airstrips=5,
        beaches=5,
        crossings=6,
        bg_structures=300,
        bg_heat=60,
        smuggle_trips_per_day=10,
        bg_vehicles_per_day=60,
        vessels=25,
        suspect_vessels=6,
        rendezvous_per_day=2,
        gofast_per_day=2,
        bg_flights_per_day=40,
        narco_flights_per_day=2,
        patrols=4,
        bg_phones=300,
        sorties_per_day=6,
        ais_step_s=180,
        adsb_step_s=30,
    ),
    "small": ScenarioConfig(
        size="small",
        days=7,
        labs=40,
        stash_houses=25,
        airstrips=15,
        beaches=12,
        crossings=14,
        bg_structures=1500,
        bg_heat=300,
        smuggle_trips_per_day=30,
        bg_vehicles_per_day=250,
        vessels=100,
        suspect_vessels=15,
        rendezvous_per_day=3,
        gofast_per_day=4,
        bg_flights_per_day=150,
        narco_flights_per_day=4,
        patrols=10,
        bg_phones=2000,
        sorties_per_day=6,
        ais_step_s=120,
    ),
    "large": ScenarioConfig(
        size="large",
        days=16,
        labs=120,
        stash_houses=70,
        airstrips=40,
        beaches=30,
        crossings=30,
        bg_structures=6000,
        bg_heat=1200,
        smuggle_trips_per_day=80,
        bg_vehicles_per_day=2500,
        vessels=600,
        suspect_vessels=40,
        rendezvous_per_day=6,
        gofast_per_day=8,
        bg_flights_per_day=1000,
        narco_flights_per_day=8,
        patrols=30,
        bg_phones=10000,
        sorties_per_day=8,
    ),
}
"""The named sizes."""


def get_config(size: str, **overrides: Any) -> ScenarioConfig:
    """The configuration of a named size, optionally with fields replaced (e.g. ``days=1`` for tests).

    >>> get_config("demo", days=1).days
    1
    """
    try:
        cfg = SIZES[size]
    except KeyError:
        raise ConfigError(f"unknown scenario size {size!r}", hint=f"use one of: {', '.join(SIZES)}") from None
    if overrides:
        cfg = replace(cfg, **overrides)
    if cfg.days < 1:
        raise ConfigError(f"scenario needs at least one day, got {cfg.days}", hint="pass days >= 1")
    return cfg
