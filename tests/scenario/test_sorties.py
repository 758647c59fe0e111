"""Scenario calibration: agreements in force for years, flights inside their windows, one ICAO24 per airframe,
smuggling trips setting out at any hour."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import numpy as np

from atalaya.scenario.config import get_config
from atalaya.scenario.movement import Movement
from atalaya.scenario.sites import build_sites
from atalaya.scenario.sorties import EFFECTIVE_YEARS, agreements_record, build_sorties, collection_window
from atalaya.scenario.world import get_world


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_agreements_in_force_for_years_and_windows_bound_the_flights() -> None:
    cfg = get_config("demo")
    world = get_world()
    sorties = build_sorties(cfg, build_sites(cfg, world, cfg.rng(3, 1)), world, cfg.rng(3, 2), plant_rng=cfg.rng(3, 5))
    lo, hi = collection_window(cfg)
    for a in agreements_record(cfg):
        assert _ts(a["effective"]["to"]) >= cfg.start + timedelta(days=365 * EFFECTIVE_YEARS)
        assert _ts(a["effective"]["from"]) <= cfg.start
        for c in a["collection"]:
            for w in c["time_windows"]:
                assert _ts(w["to"]) - _ts(w["from"]) <= timedelta(days=60)  # windows stay bounded
    assert hi - lo <= timedelta(days=60)
    for s in sorties:
        assert lo.timestamp() <= s.takeoff and s.landing <= hi.timestamp()


def test_one_icao24_per_airframe_and_never_two_flights_at_once() -> None:
    cfg = get_config("demo")
    world = get_world()
    mv = Movement(cfg, world, build_sites(cfg, world, cfg.rng(7, 1)), 7)
    codes = [*mv.a_icao, *mv.l_icao]
    assert len(set(codes)) == len(codes)
    for day in range(cfg.days):
        flights = [t for t in mv.day(day).tracks if t.feed == "adsb" and t.t.size]
        owner: dict[str, str] = {}
        spans: dict[str, list[tuple[int, int]]] = {}
        for tr in flights:
            assert owner.setdefault(str(tr.ident), tr.object_id) == tr.object_id
            spans.setdefault(str(tr.ident), []).append((int(tr.t[0]), int(tr.t[-1])))
        for ident, ss in spans.items():
            ss.sort()
            for (_, b), (c, _) in itertools.pairwise(ss):
                assert c > b, f"{ident} flies two flights at once"


def test_smuggling_trips_never_set_out_at_midnight() -> None:
    cfg = get_config("small", days=3)
    world = get_world()
    mv = Movement(cfg, world, build_sites(cfg, world, cfg.rng(7, 1)), 7)
    starts = []
    for day in range(cfg.days):
        d0 = cfg.day_start_s(day)
        starts += [int(t.t[0]) - d0 for t in mv.day(day).tracks if t.role == "smuggling" and t.t.size]
    s = np.array(starts)
    assert s.size >= 30
    assert (s == 0).sum() == 0  # long trips once all set out at 00:00:00, on a report
    assert np.unique(s).size >= 0.8 * s.size
    assert np.unique(s // 600).size >= 12  # spread (trips longer than the day over the small hours)
