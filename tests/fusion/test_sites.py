"""Suspected sites: quality on a synthetic world and on the demo scenario, incrementality, store behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from atalaya.core.errors import StoreError, ValidationError
from atalaya.core.workspace import Workspace
from atalaya.evaluate.sites import TruthSites, score_sites
from atalaya.fusion import grid
from atalaya.fusion.sites import (
    METHOD,
    SiteParams,
    accumulate_evidence,
    cooccur_llr,
    detect_sites,
    extract_sites,
    load_state,
    run_sites,
    set_site_status,
    state_path,
    to_evidence,
)
from atalaya.geo.matching import match_points
from atalaya.store.knowledge import KnowledgeStore, schema

DAY0 = 20_514  # 2026-03-02
US_H = 3_600_000_000
US_D = 24 * US_H
_COLS: tuple[str, ...] = (
    "lon",
    "lat",
    "time_us",
    "sensor",
    "kind",
    "pos_err_m",
    "err_minor_m",
    "confidence",
    "speed_mps",
    "alt_m",
    "ident",
    "err_orient_deg",
)


@dataclass
class World:
    """Synthetic detections with the true sites behind them (a small test-data builder)."""

    cols: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in _COLS})
    truth_kind: list[str] = field(default_factory=list)
    truth_lon: list[float] = field(default_factory=list)
    truth_lat: list[float] = field(default_factory=list)

    def add(self, rng: np.random.Generator, lon: float, lat: float, n: int, *, sensor: str, kind: str,
            day: int, hour: float, err: float, conf: float = 0.75, speed: float = float("nan"),
            alt: float = float("nan"), minor: float = float("nan"), ident: str | None = None,
            orient: float | None = None) -> None:  # fmt: skip
        # error along the ellipse's axes (major at ``orient`` degrees from north), rotated to east/north
        th = np.radians(orient if orient is not None else 0.0)
        u = rng.normal(0, err, n)
        v = rng.normal(0, err if minor != minor else minor, n)
        e = u * np.sin(th) + v * np.cos(th)
        nn = u * np.cos(th) - v * np.sin(th)
        k = 111_320.0
        self.cols["lon"] += list(lon + e / (k * np.cos(np.radians(lat))))
        self.cols["lat"] += list(lat + nn / k)
        t0 = (DAY0 + day) * US_D + int((hour - lon / 15.0) % 24 * US_H)  # local solar hour → UTC
        self.cols["time_us"] += list(t0 + rng.integers(0, US_H // 2, n))
        self.cols["sensor"] += [sensor] * n
        self.cols["kind"] += [kind] * n
        self.cols["pos_err_m"] += [err] * n
        self.cols["err_minor_m"] += [minor] * n
        self.cols["confidence"] += list(np.clip(rng.normal(conf, 0.1, n), 0.05, 0.99))
        self.cols["speed_mps"] += [speed] * n
        self.cols["alt_m"] += [alt] * n
        self.cols["ident"] += [ident] * n
        self.cols["err_orient_deg"] += [orient if orient is not None else float("nan")] * n

    def site(self, kind: str, lon: float, lat: float) -> None:
        self.truth_kind.append(kind)
        self.truth_lon.append(lon)
        self.truth_lat.append(lat)

    def arrays(self, days: set[int] | None = None) -> dict[str, Any]:
        t = np.asarray(self.cols["time_us"], dtype=np.int64)
        sel = np.ones(t.size, bool) if days is None else np.isin(t // US_D - DAY0, list(days))
        out: dict[str, Any] = {}
        for k, v in self.cols.items():
            a = np.asarray(v, dtype=object if k in ("sensor", "kind", "ident") else np.float64)
            out[k] = a[sel]
        out["time_us"] = t[sel]
        return out

    def truth(self) -> TruthSites:
        n = len(self.truth_kind)
        return TruthSites(id=[f"s{i}" for i in range(n)], kind=list(self.truth_kind),
                          lon=np.array(self.truth_lon), lat=np.array(self.truth_lat),
                          first_day=np.full(n, DAY0), observed=np.ones(n, bool))  # fmt: skip


def make_world(seed: int, *, days: int = 5) -> World:
    """Labs, stash houses, airstrips and beaches among ranches, kilns, wandering phones, traffic and false alarms.

    What sets a site apart is a signature of its use, as in the scenario: tagged vehicles stopping, phones bedded
    down, aircraft on the ground away from airports, boats ashore, vehicles and night heat on the same days. The
    ranches show everything else: buildings, parked cars on some days, a cooking fire on some nights.
    """
    rng = np.random.default_rng(seed)
    w = World()

    def place() -> tuple[float, float]:
        return float(rng.uniform(-108.5, -104.0)), float(rng.uniform(23.0, 27.0))

    def phone(x: float, y: float, ident: str, d: int, n: int) -> None:
        for _ in range(n):  # fixes from changing bearings: the ellipses cross over the place
            w.add(rng, x, y, 1, sensor="SIGINT", kind="emitter", day=d, hour=float(rng.uniform(0, 24)),
                  err=float(rng.uniform(150, 500)), minor=60.0, ident=ident,
                  orient=float(rng.uniform(0, 180)))  # fmt: skip

    for i in range(12):  # labs: structure; on active days heat at night with the crew's trucks, the cook's phone
        x, y = place()
        w.site("lab", x, y)
        for d in range(days):
            w.add(rng, x, y, int(rng.integers(1, 5)), sensor="EO", kind="structure", day=d, hour=14, err=40)
            if rng.random() < 0.7:
                w.add(rng, x, y, int(rng.integers(1, 4)), sensor="IR", kind="thermal", day=d, hour=2, err=50)
                if rng.random() < 0.7:
                    w.add(rng, x, y, 2, sensor="EO", kind="vehicle", day=d, hour=4, err=30, speed=0.3)
                if rng.random() < 0.6:
                    phone(x, y, f"lab-phone-{i}", d, 2)
    for i in range(8):  # stash houses: structure, vehicles dwelling, tagged loads stopping, a phone
        x, y = place()
        w.site("stash_house", x, y)
        for d in range(days):
            w.add(rng, x, y, int(rng.integers(1, 4)), sensor="EO", kind="structure", day=d, hour=11, err=40)
            if rng.random() < 0.6:
                w.add(rng, x, y, int(rng.integers(2, 8)), sensor="EO", kind="vehicle", day=d, hour=16, err=30,
                      speed=0.5)  # fmt: skip
            if rng.random() < 0.5:
                w.add(rng, x, y, 3, sensor="COT", kind="vehicle", day=d, hour=17, err=15, speed=0.0,
                      ident=f"TAG-{seed}-{i}-{d}")  # fmt: skip
            if rng.random() < 0.5:
                phone(x, y, f"stash-phone-{i}", d, 2)
    for i in range(5):  # airstrips: structure, light aircraft on the ground
        x, y = place()
        w.site("airstrip", x, y)
        for d in range(days):
            w.add(rng, x, y, 2, sensor="EO", kind="structure", day=d, hour=12, err=50)
            if rng.random() < 0.5:
                w.add(rng, x, y, 1, sensor="ADSB", kind="aircraft", day=d, hour=6, err=20, speed=5.0, alt=0.0,
                      ident=f"0d{seed:02d}{i}{d}")  # fmt: skip
    for _ in range(5):  # landing beaches: a fuel cache, boats stopped on the shore, vehicles waiting
        x, y = place()
        w.site("landing_beach", x, y)
        for d in range(days):
            w.add(rng, x, y, 1, sensor="EO", kind="structure", day=d, hour=15, err=40)
            if rng.random() < 0.6:
                w.add(rng, x, y, 4, sensor="RADAR", kind="vessel", day=d, hour=3, err=60, speed=0.2)
                w.add(rng, x, y, 2, sensor="EO", kind="vehicle", day=d, hour=3, err=40, speed=0.1)
    for _ in range(300):  # ranches: buildings seen repeatedly, cars parked on some days, a fire on some nights
        x, y = place()
        for d in range(days):
            if rng.random() < 0.5:
                w.add(rng, x, y, int(rng.integers(1, 4)), sensor="EO", kind="structure", day=d, hour=13, err=40)
                if rng.random() < 0.3:
                    w.add(rng, x, y, int(rng.integers(1, 4)), sensor="EO", kind="vehicle", day=d, hour=13, err=40,
                          speed=0.0)  # fmt: skip
                if rng.random() < 0.1:
                    w.add(rng, x, y, 1, sensor="IR", kind="thermal", day=d, hour=21, err=40)
    for _ in range(60):  # legitimate heat sources (kilns, burns, by day and night)
        x, y = place()
        for d in range(days):
            if rng.random() < 0.5:
                w.add(rng, x, y, 2, sensor="IR", kind="thermal", day=d, hour=float(rng.uniform(0, 24)), err=60)
    for i in range(80):  # phones of people going about a town (fixes spread over kilometres)
        x, y = place()
        for d in range(days):
            for _ in range(3):
                px = x + float(rng.normal(0, 0.03))
                py = y + float(rng.normal(0, 0.03))
                w.add(rng, px, py, 1, sensor="SIGINT", kind="emitter", day=d, hour=float(rng.uniform(0, 24)),
                      err=float(rng.uniform(150, 500)), minor=60.0, ident=f"town-phone-{i}",
                      orient=float(rng.uniform(0, 180)))  # fmt: skip
    n = 3000  # moving traffic and false alarms everywhere
    for d in range(days):
        xs, ys = rng.uniform(-108.5, -104.0, n), rng.uniform(23.0, 27.0, n)
        for i in range(0, n, 3):
            w.add(rng, float(xs[i]), float(ys[i]), 1, sensor="GMTI", kind="vehicle", day=d, hour=12, err=40,
                  speed=20.0)  # fmt: skip
            w.add(rng, float(xs[i + 1]), float(ys[i + 1]), 1, sensor="EO", kind="structure", day=d, hour=12,
                  err=40, conf=0.35)  # fmt: skip
            w.add(rng, float(xs[i + 2]), float(ys[i + 2]), 1, sensor="SIGINT", kind="emitter", day=d, hour=12,
                  err=3000, minor=1000)  # fmt: skip
    return w


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_quality_on_synthetic_world(seed: int) -> None:
    w = make_world(seed)
    sites = detect_sites(**w.arrays())
    r = score_sites(sites, w.truth(), radius_m=300.0)
    assert r["f1"] >= 0.85, r
    assert r["precision"] >= 0.9, r
    assert r["median_error_m"] <= 50.0, r
    assert r["kind_accuracy"] >= 0.85, r
    assert np.all(np.diff(sites.score) <= 0) and sites.rank.tolist() == list(range(1, sites.n_sites + 1))


def test_single_kind_of_evidence_never_makes_a_site() -> None:
    w = make_world(5)
    a = w.arrays()
    only_structures = {k: v[a["kind"] == "structure"] for k, v in a.items()}
    # a building on the shore is a signature of its own (a landing beach's cache): see the shore tests below
    assert detect_sites(**only_structures, params=SiteParams(shore_radius_m=0.0)).n_sites == 0
    only_heat = {k: v[a["kind"] == "thermal"] for k, v in a.items()}
    assert detect_sites(**only_heat).n_sites == 0


def _one_site(rng: np.random.Generator, *, hour: float, sigint_err: float = 0.0) -> dict[str, Any]:
    w = World()
    for d in range(3):
        w.add(rng, -107.0, 25.0, 3, sensor="EO", kind="structure", day=d, hour=13, err=40)
        w.add(rng, -107.0, 25.0, 3, sensor="IR", kind="thermal", day=d, hour=hour, err=40)
        w.add(rng, -107.0, 25.0, 2, sensor="EO", kind="vehicle", day=d, hour=hour, err=30, speed=0.0)
        if sigint_err:
            w.add(rng, -107.0, 25.0, 6, sensor="SIGINT", kind="emitter", day=d, hour=hour, err=sigint_err)
    return w.arrays()


def test_vehicles_with_night_heat_make_a_lab_by_day_a_ranch() -> None:
    night = detect_sites(**_one_site(np.random.default_rng(1), hour=2.0))
    day = detect_sites(**_one_site(np.random.default_rng(1), hour=14.0))
    assert night.n_sites == 1 and day.n_sites == 0
    assert night.kind == ["lab"] and night.evidence[0]["night_thermal_fraction"] > 0.9
    assert night.evidence[0]["vehicles_with_night_heat_days"] == 3
    # the same place by day scores context only, below the threshold
    low = detect_sites(**_one_site(np.random.default_rng(1), hour=14.0), params=SiteParams(min_score=0.0))
    assert low.n_sites == 1 and low.score[0] <= SiteParams().context_cap + 1e-9 < night.score[0]


def _imaged(rng: np.random.Generator, days: int, busy: set[int]) -> dict[str, Any]:
    """A building imaged by day on ``days`` days; on the ``busy`` ones, cars and heat by night as well. Forty
    ordinary buildings around are imaged on the same days (the background the rate is measured on)."""
    w = World()
    for d in range(days):
        w.add(rng, -107.0, 25.0, 3, sensor="EO", kind="structure", day=d, hour=13, err=40)
        for r in range(40):
            w.add(rng, -107.1 + 0.02 * (r % 10), 24.9 + 0.05 * (r // 10), 2, sensor="EO", kind="structure", day=d,
                  hour=13, err=40)  # fmt: skip
        if d in busy:
            w.add(rng, -107.0, 25.0, 3, sensor="IR", kind="thermal", day=d, hour=2.0, err=40)
            w.add(rng, -107.0, 25.0, 2, sensor="EO", kind="vehicle", day=d, hour=2.0, err=30, speed=0.0)
    return w.arrays()


def test_vehicles_with_night_heat_are_weighed_against_the_days_a_place_was_seen() -> None:
    # two busy days in a week's imagery stand out; two in sixteen days are what ordinary ranches show
    week = detect_sites(**_imaged(np.random.default_rng(3), 5, {1, 3}))
    long = detect_sites(**_imaged(np.random.default_rng(3), 16, {1, 3}), params=SiteParams(min_score=0.0))
    assert week.n_sites == 1 and week.kind == ["lab"]
    at = int(np.argmin(np.hypot(long.lon + 107.0, long.lat - 25.0)))  # the busy building, among the ordinary ones
    assert long.evidence[at]["vehicles_with_night_heat_days"] == 2 and long.evidence[at]["imaged_days"] == 16
    assert long.score[at] < SiteParams().min_score <= week.score[0]
    # more busy days in the long look pass again
    assert detect_sites(**_imaged(np.random.default_rng(3), 16, {1, 3, 6, 9, 12})).n_sites == 1


def test_background_rate_of_vehicles_with_night_heat_is_measured_on_the_built_places() -> None:
    rng = np.random.default_rng(5)
    n = np.full(2_000, 10)
    k = rng.binomial(n, 0.02)
    built = np.ones(n.size, dtype=bool)
    sig, rate = cooccur_llr(k, n, built)
    assert rate == pytest.approx(0.02, abs=0.005)
    assert np.all(sig[k == 0] == 0.0) and np.all(np.diff(sig[np.argsort(k, kind="stable")]) >= 0)
    # places that are not built do not count towards the rate; with none, the rate is the prior's
    assert cooccur_llr(k, n, ~built)[1] == pytest.approx(SiteParams().cooccur_prior_rate)


def test_uncertain_emitters_weigh_less_than_sharp_ones() -> None:
    sharp = detect_sites(**_one_site(np.random.default_rng(2), hour=2.0, sigint_err=80.0))
    vague = detect_sites(**_one_site(np.random.default_rng(2), hour=2.0, sigint_err=3000.0))
    assert sharp.evidence[0]["support"]["emitter"] > 10 * vague.evidence[0]["support"].get("emitter", 0.0)
    assert sharp.score[0] > vague.score[0]


def test_phone_bedded_down_makes_a_stash_house_of_a_ranch_with_cars() -> None:
    rng = np.random.default_rng(8)
    w = World()
    for d in range(4):
        w.add(rng, -107.0, 25.0, 2, sensor="EO", kind="structure", day=d, hour=13, err=40)
        w.add(rng, -107.0, 25.0, 2, sensor="EO", kind="vehicle", day=d, hour=13, err=30, speed=0.0)
    ranch = detect_sites(**w.arrays())
    assert ranch.n_sites == 0
    for d in range(4):
        for _ in range(3):
            w.add(rng, -107.0, 25.0, 1, sensor="SIGINT", kind="emitter", day=d, hour=float(rng.uniform(0, 24)),
                  err=400.0, minor=80.0, ident="+5215550001", orient=float(rng.uniform(0, 180)))  # fmt: skip
    stash = detect_sites(**w.arrays())
    assert stash.n_sites == 1 and stash.kind == ["stash_house"]
    assert stash.evidence[0]["signatures"]["emitter_beddown"] > 0.3


def test_phones_bedded_down_in_a_town_are_people_at_home() -> None:
    def world(phones: int) -> World:
        rng = np.random.default_rng(9)
        w = World()
        for d in range(4):
            w.add(rng, -107.0, 25.0, 2, sensor="EO", kind="structure", day=d, hour=13, err=40)
        for k in range(phones):  # each phone stays at its own house, all within a kilometre of the building
            hx, hy = -107.0 + rng.uniform(-0.008, 0.008), 25.0 + rng.uniform(-0.008, 0.008)
            for d in range(4):
                for _ in range(3):
                    hour, orient = float(rng.uniform(0, 24)), float(rng.uniform(0, 180))
                    w.add(rng, hx, hy, 1, sensor="SIGINT", kind="emitter", day=d, hour=hour, err=300.0, minor=80.0,
                          ident=f"+52155500{k:02d}", orient=orient)  # fmt: skip
        return w

    crew = detect_sites(**world(3).arrays())
    assert crew.n_sites == 1 and "emitter_beddown" in crew.evidence[0]["signatures"]
    town = detect_sites(**world(SiteParams().beddown_crowd_phones + 1).arrays(), params=SiteParams(min_score=0.0))
    assert all("emitter_beddown" not in e["signatures"] for e in town.evidence)
    assert detect_sites(**world(SiteParams().beddown_crowd_phones + 1).arrays()).n_sites == 0


def test_sharp_bed_down_names_a_place_on_its_own_a_loose_one_does_not() -> None:
    def phone(err: float, minor: float) -> World:
        rng = np.random.default_rng(8)
        w = World()
        for d in range(4):  # twelve fixes over four days, no building, heat or car seen near
            for _ in range(3):
                w.add(rng, -107.0, 25.0, 1, sensor="SIGINT", kind="emitter", day=d, hour=float(rng.uniform(0, 24)),
                      err=err, minor=minor, ident="+5215550001", orient=float(rng.uniform(0, 180)))  # fmt: skip
        return w

    sharp = detect_sites(**phone(400.0, 80.0).arrays())
    assert sharp.n_sites == 1 and "emitter_beddown" in sharp.evidence[0]["signatures"]
    assert detect_sites(**phone(4_000.0, 1_500.0).arrays()).n_sites == 0  # too loose to name a place alone


def test_aircraft_on_the_ground_counts_away_from_airports_and_on_land_only() -> None:
    rng = np.random.default_rng(9)
    strip, airport, sea = World(), World(), World()
    # a clandestine strip in Durango, Mexico City's airport (MMMX), and the Pacific 160 km off Nayarit
    for w, (x, y) in ((strip, (-105.2, 24.6)), (airport, (-99.072, 19.436)), (sea, (-108.64, 21.86))):
        w.add(rng, x, y, 1, sensor="ADSB", kind="aircraft", day=0, hour=6, err=20, speed=60.0, alt=0.0, ident="0d1")
        w.add(rng, x, y, 1, sensor="ADSB", kind="aircraft", day=1, hour=6, err=20, speed=60.0, alt=0.0, ident="0d2")
    found = detect_sites(**strip.arrays())
    assert found.n_sites == 1 and found.kind == ["airstrip"]
    assert detect_sites(**airport.arrays()).n_sites == 0
    assert detect_sites(**sea.arrays()).n_sites == 0


def test_only_track_ends_of_aircraft_count_and_low_ends_are_carried_to_the_ground() -> None:
    # a climb-out reported every 30 s: 10 m, 40 m, 70 m … above ground; the ground point lies one third of a step
    # behind the first report
    n = 6
    lon = -105.0 + 0.006 * np.arange(n)
    alt = 10.0 + 30.0 * np.arange(n)
    t = DAY0 * US_D + 30_000_000 * np.arange(n)
    s = detect_sites(lon=lon, lat=np.full(n, 24.0), time_us=t, sensor=["ADSB"] * n, kind=["aircraft"] * n,
                     alt_m=alt, speed_mps=np.full(n, 60.0), ident=["0dabc"] * n,
                     params=SiteParams(min_score=0.0))  # fmt: skip
    assert s.n_sites == 1
    assert abs(s.lon[0] - (-105.0 - 0.002)) < 0.0003  # the end carried back to the ground, not the airborne rows


def test_ellipse_uses_both_axes() -> None:
    ev = to_evidence(lon=[-107.0] * 2, lat=[25.0] * 2, time_us=[0, 0], sensor=["SIGINT"] * 2, kind=["emitter"] * 2,
                     pos_err_m=[900.0, 900.0], err_minor_m=[100.0, float("nan")])  # fmt: skip
    assert ev.sigma_m.tolist() == [300.0, 900.0]


def test_incremental_days_equal_one_batch(tmp_path: Path) -> None:
    w = make_world(21, days=4)
    state = grid.empty_state()
    for d in range(5):  # local solar hours spill into a fifth UTC day
        state = grid.merge(state, accumulate_evidence(to_evidence(**w.arrays({d}))))
        grid.write_state(tmp_path / "s.parquet", state)  # the saved state carries the merge between days
        state, _ = grid.read_state(tmp_path / "s.parquet")
    once = accumulate_evidence(to_evidence(**w.arrays()))
    assert state.n_rows == once.n_rows
    np.testing.assert_allclose(state.w, once.w)
    np.testing.assert_array_equal(state.n, once.n)
    a, b = extract_sites(state), extract_sites(once)
    assert a.id == b.id and a.kind == b.kind
    np.testing.assert_allclose(a.score, b.score)


def test_state_grows_with_area_not_detections() -> None:
    rng = np.random.default_rng(4)
    w1, w2 = World(), World()
    w1.add(rng, -107.0, 25.0, 100, sensor="EO", kind="structure", day=0, hour=12, err=10)
    w2.add(rng, -107.0, 25.0, 10_000, sensor="EO", kind="structure", day=0, hour=12, err=10)
    s1 = accumulate_evidence(to_evidence(**w1.arrays()))
    s2 = accumulate_evidence(to_evidence(**w2.arrays()))
    assert s2.n_rows <= s1.n_rows + 4 and int(s2.n.sum()) == 10_000


def test_empty_and_degenerate_inputs() -> None:
    z = np.zeros(0)
    assert detect_sites(lon=z, lat=z, time_us=z.astype(np.int64), sensor=[], kind=[]).n_sites == 0
    s = detect_sites(lon=[float("nan")], lat=[25.0], time_us=[0], sensor=["EO"], kind=["structure"])
    assert s.n_sites == 0
    assert extract_sites(grid.empty_state()).to_arrow().num_rows == 0


# -- workspace, lake and knowledge store ------------------------------------------------------------


def _write_lake(ws: Workspace, arrays: dict[str, Any], tmp: Path, name: str, marking: str | None = None) -> None:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from atalaya.ingest.pipeline import ingest_paths

    t = pa.table(
        {
            "time": pa.array(arrays["time_us"], type=pa.timestamp("us", tz="UTC")),
            "lon": arrays["lon"], "lat": arrays["lat"], "pos_err_m": arrays["pos_err_m"],
            "err_minor_m": arrays["err_minor_m"], "speed_mps": arrays["speed_mps"], "alt_m": arrays["alt_m"],
            "sensor": pa.array(arrays["sensor"].tolist()), "kind": pa.array(arrays["kind"].tolist()),
            "confidence": arrays["confidence"], "ident": pa.array(arrays["ident"].tolist(), type=pa.string()),
            "err_orient_deg": arrays["err_orient_deg"],
            "ident_kind": pa.array(["icao24" if s == "ADSB" and i is not None else None
                                    for s, i in zip(arrays["sensor"].tolist(), arrays["ident"].tolist(), strict=True)],
                                   type=pa.string()),
        }
    )  # fmt: skip
    path = tmp / f"{name}.csv"
    pcsv.write_csv(t, path)
    from atalaya.core.markings import Marking

    mk = Marking.from_text(marking) if marking else None
    ingest_paths(ws, [path], store=KnowledgeStore.open(ws.db_url), marking=mk)


def test_sites_carry_the_combination_of_their_inputs_markings(workspace: Workspace, tmp_path: Path) -> None:
    from atalaya.core.markings import combine_texts

    strict = "TLP:AMBER+STRICT;REL:MEX,USA;ORIG:USA"
    green = "TLP:GREEN;REL:GTM,USA;CAV:INTEL-ONLY;ORIG:USA"
    w = make_world(31, days=4)
    store = KnowledgeStore.open(workspace.db_url)
    _write_lake(workspace, w.arrays({0, 1}), tmp_path, "d01", marking=strict)
    _write_lake(workspace, w.arrays({2, 3}), tmp_path, "d23", marking=green)
    summary = run_sites(workspace, store)
    with store.engine.connect() as conn:
        marks = {r.marking for r in conn.execute(schema.sites.select()).all()}
    # per run (the grid state keeps no markings): never weaker than any detection behind a site
    want = combine_texts([strict, green])
    assert want == "TLP:AMBER+STRICT;REL:USA;CAV:INTEL-ONLY;ORIG:USA"
    assert summary["sites"] > 0 and marks == {want} and summary["marking"] == want


def test_run_sites_incremental_stable_ids_and_analyst_status(workspace: Workspace, tmp_path: Path) -> None:
    w = make_world(31, days=4)
    store = KnowledgeStore.open(workspace.db_url)
    _write_lake(workspace, w.arrays({0, 1}), tmp_path, "d01")
    s1 = run_sites(workspace, store)
    assert s1["new_units"] == 1 and s1["sites"] > 0 and state_path(workspace).exists()
    with store.engine.connect() as conn:
        rows1 = {r.id: r for r in conn.execute(schema.sites.select()).all()}
    target = max(rows1.values(), key=lambda r: r.score).id
    set_site_status(store, target, "confirmed", "seen by the host patrol", "analyst1")

    again = run_sites(workspace, store)  # nothing new: no units read, same sites
    assert again["new_units"] == 0 and again["rows_read"] == 0 and again["sites"] == s1["sites"]
    assert s1["emitter_fixes"] > 0 and again["emitter_fixes"] == s1["emitter_fixes"]
    # a crash after the fixes were saved but before the grid state was: the re-run rebuilds the state from the
    # lake and does not count the unit's fixes twice
    state_path(workspace).unlink()
    rebuilt = run_sites(workspace, store)
    assert rebuilt["new_units"] == 1 and rebuilt["emitter_fixes"] == s1["emitter_fixes"]
    assert rebuilt["sites"] == s1["sites"] and rebuilt["emitter_beddowns"] == s1["emitter_beddowns"]
    # a state saved by another method is not extracted from as it is; the next run reads every unit again
    st, meta = grid.read_state(state_path(workspace))
    grid.write_state(state_path(workspace), st, {**meta, "method": "sites/grid-v2"})
    with pytest.raises(StoreError, match="re-run"):
        load_state(workspace)
    redone = run_sites(workspace, store)
    assert redone["new_units"] == 1 and redone["sites"] == s1["sites"]
    assert redone["emitter_fixes"] == s1["emitter_fixes"]  # the fixes file keeps its own units: none twice
    assert grid.read_state(state_path(workspace))[1]["method"] == METHOD

    _write_lake(workspace, w.arrays({2, 3, 4}), tmp_path, "d23")
    s2 = run_sites(workspace, store)
    assert s2["new_units"] == 1 and s2["rows_read"] == len(w.arrays({2, 3, 4})["lon"])
    with store.engine.connect() as conn:
        rows2 = {r.id: r for r in conn.execute(schema.sites.select()).all()}
        audit = conn.execute(schema.audit.select()).all()
    kept = rows2[target]
    assert (kept.status, kept.note, kept.status_by) == ("confirmed", "seen by the host patrol", "analyst1")
    assert kept.status_at is not None and kept.n_days >= rows1[target].n_days
    assert set(rows1) <= set(rows2)  # ids survive re-analysis
    assert any(a.action == "site.status" and a.object_id == target for a in audit)
    assert kept.provenance["method"] == METHOD and kept.provenance["observations"]
    # the incremental result equals analysing everything at once
    once = detect_sites(**w.arrays())
    m = match_points(once.lon, once.lat, [r.lon for r in rows2.values()], [r.lat for r in rows2.values()],
                     radius_m=1.0)  # fmt: skip
    assert m.tp == once.n_sites


def test_set_site_status_errors(workspace: Workspace) -> None:
    store = KnowledgeStore.open(workspace.db_url)
    with pytest.raises(ValidationError) as e:
        set_site_status(store, "site--x", "maybe", None, "a")
    assert "confirmed" in (e.value.hint or "")
    with pytest.raises(StoreError):
        set_site_status(store, "site--nope", "dismissed", None, "a")


# -- the scenario -----------------------------------------------------------------------------------


def _demo_sites_card(demo_scenario: Path, demo_workspace: Workspace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tracks then sites, as ``analyze all`` runs them; the stored sites scored as ``atalaya evaluate`` does."""
    from atalaya.evaluate.scorecard import evaluate_sites
    from atalaya.fusion.tracks import run_tracks

    store = KnowledgeStore.open(demo_workspace.db_url)
    try:
        run_tracks(demo_workspace, store)
        summary = run_sites(demo_workspace, store)
        return summary, evaluate_sites(demo_workspace, store, demo_scenario / "truth")
    finally:
        store.close()


def test_demo_scenario_sites(demo_scenario: Path, demo_workspace: Workspace) -> None:
    summary, r = _demo_sites_card(demo_scenario, demo_workspace)
    # the scenario's flares are persistent_heat sites, scored by their own case (tests/evaluate/test_heat.py)
    assert summary["sites"] - summary["kinds"].get("persistent_heat", 0) == r["n_pred"]
    assert summary["projected_landings"] >= 0
    # every reported site is a real one, close to the truth; recall is bounded by what the sensors saw
    assert r["precision"] >= 0.85, r
    assert r["median_error_m"] is None or r["median_error_m"] <= 150.0, r
    assert r["observed"]["n_true"] >= 1


@pytest.mark.xfail(
    strict=True,
    reason="bar not met on the 2-day demo: observable F1 0.79 (precision 1.00, recall 0.65 on 26 observable "
    "sites; 0.84 before the collection flights were calibrated): with two days, most labs show vehicles and "
    "night heat together on one day at most (what ranches show too now and then); the small scenario's 7 days "
    "do better (docs/scorecard.md)",
)
def test_demo_scenario_meets_the_bar_on_observable_sites(demo_scenario: Path, demo_workspace: Workspace) -> None:
    _, r = _demo_sites_card(demo_scenario, demo_workspace)
    # the bar, on the true sites the scenario makes observable (attributable detections on 2+ days)
    assert r["observable_n_true"] >= 1, r
    assert r["observable_f1"] >= 0.85, r
    assert r["observable_median_error_m"] is not None and r["observable_median_error_m"] <= 150.0, r


def _beacon_trip(tag: str, t0: int, legs: list[tuple[float, float, float]], lon0: float, lat0: float) -> dict[str, Any]:
    """Reports of a tagged vehicle's beacon, one a minute: each leg is (metres north, metres east, speed m/s) from
    where the last one ended (speed 0: parked that many minutes, ``north`` read as minutes)."""
    k = 111_320.0
    x, y, t = 0.0, 0.0, t0
    rows: list[tuple[int, float, float, float]] = []
    for north, east, v in legs:
        if v == 0.0:
            for _ in range(int(north)):
                rows.append((t, x, y, 0.0))
                t += 60_000_000
            continue
        dist = float(np.hypot(north, east))
        for j in range(1, int(dist // (v * 60.0)) + 1):
            f = j * v * 60.0 / dist
            rows.append((t, x + east * f, y + north * f, v))
            t += 60_000_000
        x, y = x + east, y + north
    n = len(rows)
    return {
        "lon": np.array([lon0 + r[1] / (k * np.cos(np.radians(lat0))) for r in rows]),
        "lat": np.array([lat0 + r[2] / k for r in rows]), "time_us": np.array([r[0] for r in rows], dtype=np.int64),
        "sensor": np.full(n, "COT", dtype=object), "kind": np.full(n, "vehicle", dtype=object),
        "pos_err_m": np.full(n, 10.0), "err_minor_m": np.full(n, np.nan), "confidence": np.full(n, 0.95),
        "speed_mps": np.array([r[3] for r in rows]), "alt_m": np.full(n, np.nan),
        "ident": np.full(n, tag, dtype=object), "err_orient_deg": np.full(n, np.nan),
    }  # fmt: skip


def _join(*parts: dict[str, Any]) -> dict[str, Any]:
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}


def test_loads_setting_out_make_a_lab_loads_stopping_over_a_stash_house() -> None:
    """A tagged truck's beacon is first heard 500 m down the road from the lab it left (a report a minute at 12 m/s:
    anywhere up to 720 m); it stops two hours at the stash house, reporting, and drives on."""
    rng = np.random.default_rng(10)
    w = World()
    lab = (-106.0, 25.5)
    stash = (lab[0], lab[1] + 9_780.0 / 111_320.0)  # where the second leg ends
    for d in range(3):
        for x, y in (lab, stash):
            w.add(rng, x, y, 2, sensor="EO", kind="structure", day=d, hour=12, err=30)
            w.add(rng, x, y, 1, sensor="EO", kind="vehicle", day=d, hour=12, err=30, speed=0.0)
    trips = [
        _beacon_trip(f"TAG-{d}", (DAY0 + d) * US_D + 5 * US_H, [(-220.0, 0.0, 12.0), (10_000.0, 0.0, 12.0),
                     (120.0, 0.0, 0.0), (30_000.0, 0.0, 20.0)], lab[0], lab[1])
        for d in range(3)
    ]  # fmt: skip
    # the first report: 500 m north of the lab (the trip is laid out from 220 m south, a report every 720 m)
    assert abs((trips[0]["lat"][0] - lab[1]) * 111_320.0 - 500.0) < 1.0
    s = detect_sites(**_join(w.arrays(), *trips))
    truth = TruthSites(id=["lab", "stash"], kind=["lab", "stash_house"], lon=np.array([lab[0], stash[0]]),
                       lat=np.array([lab[1], stash[1]]), first_day=np.full(2, DAY0),
                       observed=np.ones(2, bool))  # fmt: skip
    r = score_sites(s, truth, radius_m=300.0)
    assert r["tp"] == 2 and r["kind_accuracy"] == 1.0, (r, s.kind)
    assert all(e["signatures"]["tagged_vehicle"] > 0.3 for e in s.evidence[:2])
    at_lab = next(e for e, k in zip(s.evidence, s.kind, strict=True) if k == "lab")
    assert at_lab["support"]["tagged_origin"] > 2.0  # all three departures, each on the lab
    # without the trips, both are buildings with cars: ranches
    assert detect_sites(**w.arrays()).n_sites == 0


def _setting_out(lon0: float, lat0: float, back_m: list[float], days: list[int], tag: str = "TAG") -> dict[str, Any]:
    """Trips of a tagged truck setting out north from ``(lon0, lat0)``, one per entry: a report a minute at 12 m/s,
    laid out from ``back_m`` south (so first heard 720 - ``back_m`` m north), each ending somewhere else."""
    return _join(*(
        _beacon_trip(f"{tag}-{k}", (DAY0 + d) * US_D + 5 * US_H,
                     [(-b, 0.0, 12.0), (10_000.0, 0.0, 12.0), (0.0, 3_000.0 * (k + 1), 12.0)], lon0, lat0)
        for k, (b, d) in enumerate(zip(back_m, days, strict=True))
    ))  # fmt: skip


def test_a_tagged_truck_setting_out_from_one_unseen_spot_on_several_days_names_it() -> None:
    lon0, lat0 = -106.0, 25.5  # nothing imaged anywhere: the departures alone
    trips = _setting_out(lon0, lat0, [100.0, 400.0, 650.0], [0, 1, 2])  # first heard 620, 320 and 70 m north
    s = detect_sites(**trips)
    assert s.n_sites == 1 and s.kind == ["lab"], (s.kind, s.evidence)
    # the stretches back from where each was first heard share 170 m about the spot
    assert match_points(s.lon, s.lat, np.array([lon0]), np.array([lat0]), radius_m=100.0).tp == 1
    assert s.evidence[0]["days"]["tagged_origin"] == 3
    # the same three trips on one day, or from three places 5 km apart, or the rule off: no place
    assert detect_sites(**_setting_out(lon0, lat0, [100.0, 400.0, 650.0], [0, 0, 0])).n_sites == 0
    apart = _join(
        *(_setting_out(lon0 + 0.05 * k, lat0, [b], [k], tag=f"T{k}") for k, b in enumerate((100.0, 400.0, 650.0)))
    )
    assert detect_sites(**apart).n_sites == 0
    assert detect_sites(**trips, params=SiteParams(beacon_free_min_days=0)).n_sites == 0
    # and where it stops: trips from elsewhere that end there, last heard up to a report's travel short of it
    kx = 111_320.0 * np.cos(np.radians(lat0))
    back = _join(*(
        _beacon_trip(f"IN-{d}", (DAY0 + d) * US_D + 15 * US_H, [(0.0, 3_000.0 * (d + 1), 12.0),
                     (10_000.0 + b, 0.0, 12.0)], lon0 - 3_000.0 * (d + 1) / kx, lat0 - (10_000.0 + b) / 111_320.0)
        for d, b in enumerate((150.0, 400.0, 650.0))  # each from its own place; last heard 70, 320 and 570 m short
    ))  # fmt: skip
    s = detect_sites(**back)
    assert s.n_sites == 1 and s.evidence[0]["days"]["tagged_vehicle"] == 3, (s.kind, s.evidence)
    assert match_points(s.lon, s.lat, np.array([lon0]), np.array([lat0]), radius_m=100.0).tp == 1


def test_a_tagged_truck_last_heard_short_of_a_building_stopped_there() -> None:
    """The beacon is last heard 500 m short of a building it drives to (a report a minute at 12 m/s: anywhere up
    to 720 m short), then goes quiet; the building shows what ranches show (built, cars on one day)."""
    rng = np.random.default_rng(12)
    x, y = -106.0, 25.5
    w = _ranch_like(rng, x, y)
    y0 = y - 10_580.0 / 111_320.0
    trips = [_beacon_trip(f"TAG-{d}", (DAY0 + d) * US_D + 9 * US_H, [(10_580.0, 0.0, 12.0)], x, y0) for d in range(2)]
    assert abs((y - trips[0]["lat"][-1]) * 111_320.0 - 500.0) < 1.0
    s = detect_sites(**_join(w.arrays(), *trips))
    assert s.n_sites == 1 and s.kind == ["stash_house"], (s.kind, s.evidence)
    assert s.evidence[0]["support"]["tagged_vehicle"] > 1.0 and "tagged_origin" not in s.evidence[0]["support"]
    assert match_points(s.lon, s.lat, np.array([x]), np.array([y]), radius_m=50.0).tp == 1
    assert detect_sites(**w.arrays()).n_sites == 0


def test_a_beacon_that_sends_no_speed_stops_only_where_it_stood() -> None:
    """A truck crawls 2 km through a village at 3 m/s (a report every 180 m), parks two hours at a building seen as
    a ranch is, and drives on; its beacon sends positions only."""
    rng = np.random.default_rng(14)
    x, y = -106.0, 25.5
    w = _ranch_like(rng, x, y)
    y0 = y - 12_000.0 / 111_320.0
    trips = [_beacon_trip(f"TAG-{d}", (DAY0 + d) * US_D + 9 * US_H,
                          [(10_000.0, 0.0, 12.0), (2_000.0, 0.0, 3.0), (120.0, 0.0, 0.0), (20_000.0, 0.0, 12.0)],
                          x, y0) for d in range(2)]  # fmt: skip
    tr = _join(*trips)
    told = detect_sites(**_join(w.arrays(), tr))
    tr["speed_mps"] = np.full(tr["speed_mps"].size, np.nan)
    s = detect_sites(**_join(w.arrays(), tr))
    assert s.n_sites == told.n_sites == 1 and s.kind == ["stash_house"], (s.kind, s.evidence)
    assert match_points(s.lon, s.lat, np.array([x]), np.array([y]), radius_m=100.0).tp == 1
    # the parked reports count, as they did with speeds told (and the report arriving there: reached at a crawl)
    told_stops = told.evidence[0]["support"]["tagged_vehicle"]
    assert abs(s.evidence[0]["support"]["tagged_vehicle"] - told_stops) < 0.02 * told_stops


def test_a_trip_driven_across_midnight_does_not_stop_at_midnight() -> None:
    from atalaya.fusion.sites import beacon_ends

    rng = np.random.default_rng(13)
    x, y = -106.0, 25.5
    trips = [_beacon_trip(f"TAG-{d}", (DAY0 + d + 1) * US_D - 30 * 60_000_000, [(40_000.0, 0.0, 12.0)], x, y)
             for d in range(3)]  # fmt: skip
    tr = _join(*trips)
    ends = beacon_ends(tr["ident"], tr["time_us"], tr["lon"], tr["lat"])
    assert ends.n == 6 and int(ends.start.sum()) == 3  # one trip a night: a start and a stop each
    # a building by the road where each night's 23:59 report falls, seen as a ranch is: the road is no stop there
    last = np.flatnonzero(tr["time_us"] < (DAY0 + 1) * US_D)[-1]
    bx, by = float(tr["lon"][last]) + 0.0004, float(tr["lat"][last])
    w = _ranch_like(rng, bx, by)
    assert detect_sites(**_join(w.arrays(), *trips)).n_sites == 0
    cand = detect_sites(**_join(w.arrays(), *trips), params=SiteParams(min_score=0.0))
    at = match_points(cand.lon, cand.lat, np.array([bx]), np.array([by]), radius_m=100.0)
    assert at.tp == 1 and "tagged_vehicle" not in cand.evidence[int(at.pred_index[0])]["support"]


def test_a_beacon_out_of_coverage_while_driving_neither_stops_nor_sets_off() -> None:
    """Three days of the same 43 km drive north, with no report from km 10 to km 25 (16 minutes on the road)."""
    x, y = -106.0, 25.5
    days = []
    for d in range(3):
        tr = _beacon_trip(f"TAG-{d}", (DAY0 + d) * US_D + 8 * US_H, [(43_000.0, 0.0, 15.6)], x, y)
        north = (tr["lat"] - y) * 111_320.0
        keep = (north < 10_000.0) | (north > 25_000.0)
        days.append({k: v[keep] for k, v in tr.items()})
    trips = _join(*days)
    from atalaya.fusion.sites import beacon_ends

    ends = beacon_ends(trips["ident"], trips["time_us"], trips["lon"], trips["lat"])
    assert ends.n == 6  # each day: where it set off and where it stopped, nothing at the gap
    assert detect_sites(**trips).n_sites == 0


def test_free_places_need_a_shared_part_and_find_where_stretches_cross() -> None:
    from atalaya.fusion.sites import TrackEnds, free_places

    k = 111_320.0
    kx = k * np.cos(np.radians(25.5))

    def ends(x_m: list[float], y_m: list[float], course: list[float]) -> TrackEnds:
        n = len(x_m)
        return TrackEnds(lon=-106.0 + np.array(x_m) / kx, lat=25.5 + np.array(y_m) / k,
                         time_us=np.arange(n, dtype=np.int64) * US_D, sigma_m=np.full(n, 15.0),
                         half_along_m=np.full(n, 360.0), course_deg=np.array(course),
                         start=np.ones(n, bool))  # fmt: skip

    # a yard with two gates: trucks set off north one day, east the next; the stretches meet at the yard only
    member, lon, lat, sig = free_places(ends([0.0, 360.0], [360.0, 0.0], [0.0, 90.0]))
    assert member.tolist() == [0, 1]
    assert np.hypot((lon + 106.0) * kx, (lat - 25.5) * k).max() < 5.0 and sig.max() < 60.0
    # stretches along one road, each meeting the next, share no place
    assert free_places(ends([0.0] * 8, [600.0 * i for i in range(8)], [0.0] * 8))[0].size == 0


def test_departures_split_a_beacon_at_its_pauses_and_carry_the_start_back() -> None:
    from atalaya.fusion.sites import beacon_ends

    def departures(*cols: Any) -> Any:
        e = beacon_ends(*cols)
        return e.subset(e.start)

    lon0, lat0 = -106.0, 25.5
    a = _beacon_trip("T", 0, [(-220.0, 0.0, 12.0), (5_000.0, 0.0, 12.0)], lon0, lat0)
    b = _beacon_trip("T", 4 * US_H, [(0.0, 3_000.0, 12.0)], lon0 + 0.1, lat0)  # later, elsewhere
    both = _join(a, b)
    d = departures(both["ident"], both["time_us"], both["lon"], both["lat"])
    assert d.n == 2 and d.start.all()
    north = (d.lat - lat0) * 111_320.0
    assert abs(north[0] - (500.0 - 360.0)) < 1.0 and abs(d.half_along_m[0] - 360.0) < 1.0
    assert d.course_deg.round().tolist() == [180.0, 270.0]  # outwards: back along the course they set off on
    # one pause of ten minutes (under the 15 asked for) is the same trip
    b2 = _beacon_trip("T", int(a["time_us"][-1]) + 10 * 60_000_000, [(3_000.0, 0.0, 12.0)], lon0, lat0)
    assert departures(*(_join(a, b2)[k] for k in ("ident", "time_us", "lon", "lat"))).n == 1


# -- buildings on the shore --------------------------------------------------------------------------------------


def _shore_point(lon: float, lat: float) -> tuple[float, float]:
    """The coastline point (bundled Natural Earth) nearest to ``(lon, lat)``."""
    import shapely

    from atalaya.fusion.maritime import _coastline

    lines = _coastline()
    p = shapely.Point(lon, lat)
    near = lines[int(np.argmin(shapely.distance(lines, p)))]
    q = shapely.line_interpolate_point(near, shapely.line_locate_point(near, p))
    return float(q.x), float(q.y)


def _building(lon: float, lat: float, days: int, seed: int = 3, per_day: int = 3) -> dict[str, Any]:
    w = World()
    rng = np.random.default_rng(seed)
    for d in range(days):
        w.add(rng, lon, lat, per_day, sensor="EO", kind="structure", day=d, hour=13, err=30)
    return w.arrays()


def test_building_on_a_remote_shore_is_a_landing_beach() -> None:
    x, y = _shore_point(-109.6, 25.75)  # northern Sinaloa coast, far from the bundled ports
    sites = detect_sites(**_building(x, y, days=2))
    assert sites.n_sites == 1 and sites.kind == ["landing_beach"], sites.evidence
    assert "built_on_shore" in sites.evidence[0]["signatures"]
    d = match_points(sites.lon, sites.lat, np.array([x]), np.array([y]), radius_m=100.0)
    assert d.tp == 1
    # seen a few times on one day only, or 5 km inland, or disabled: context alone, no site
    assert detect_sites(**_building(x, y, days=1)).n_sites == 0
    # a lone false alarm on the shore is no building; one day of many sharp looks is
    assert detect_sites(**_building(x, y, days=1, per_day=1)).n_sites == 0
    assert detect_sites(**_building(x, y, days=1, per_day=12)).n_sites == 1
    assert detect_sites(**_building(x + 0.05, y + 0.03, days=3)).n_sites == 0
    assert detect_sites(**_building(x, y, days=3), params=SiteParams(shore_radius_m=0.0)).n_sites == 0


def _boats(lon: float, lat: float, n: int = 4, seed: int = 4) -> World:
    """``n`` sharp radar looks at a boat stopped at ``(lon, lat)`` one night."""
    w = World()
    w.add(np.random.default_rng(seed), lon, lat, n, sensor="RADAR", kind="vessel", day=0, hour=3, err=40, conf=0.95,
          speed=0.3)  # fmt: skip
    return w


def test_boat_stopped_on_a_remote_shore_is_a_landing_beach_with_nothing_built() -> None:
    x, y = _shore_point(-109.6, 25.75)
    sites = detect_sites(**_boats(x, y).arrays())
    assert sites.n_sites == 1 and sites.kind == ["landing_beach"], sites.evidence
    assert "boat_ashore" in sites.evidence[0]["signatures"]
    assert match_points(sites.lon, sites.lat, np.array([x]), np.array([y]), radius_m=100.0).tp == 1
    # the same boat stopped 5 km out at sea, or without the shore test, is no place on land
    assert detect_sites(**_boats(x - 0.05, y).arrays()).n_sites == 0
    assert detect_sites(**_boats(x, y).arrays(), params=SiteParams(shore_radius_m=0.0)).n_sites == 0


def test_boats_and_cars_along_a_landing_beach_are_one_site() -> None:
    x, y = _shore_point(-109.6, 25.75)
    w = World(cols={k: list(v) for k, v in _building(x, y, days=4, per_day=6).items()})
    rng = np.random.default_rng(5)
    bx, by = _shore_point(x + 0.004, y - 0.002)  # 340 m along the shore: boats and cars, nothing built
    for d in range(2):
        w.add(rng, bx, by, 3, sensor="RADAR", kind="vessel", day=d, hour=3, err=40, speed=0.3)
        w.add(rng, bx, by, 6, sensor="EO", kind="vehicle", day=d, hour=16, err=30, speed=0.0)
    sites = detect_sites(**w.arrays())
    assert sites.n_sites == 1 and sites.kind == ["landing_beach"], sites.evidence
    assert match_points(sites.lon, sites.lat, np.array([x]), np.array([y]), radius_m=50.0).tp == 1  # the building
    # with the satellite rule off, the boats' stretch of beach is a second site
    assert detect_sites(**w.arrays(), params=SiteParams(satellite_radius_m=0.0)).n_sites == 2


def test_building_on_the_shore_at_a_port_is_not_a_site() -> None:
    from atalaya.geo.naturalearth import load_layer

    port = next(g for p, g in load_layer("ports") if "Mazatl" in str(p.get("name", "")))
    x, y = _shore_point(port.x, port.y)
    assert detect_sites(**_building(x, y, days=4)).n_sites == 0


# -- bed-downs anchored on a building ----------------------------------------------------------------------------


def _ranch_like(rng: np.random.Generator, x: float, y: float) -> World:
    """A remote building seen on three days with cars on one: context only, what a ranch shows."""
    w = World()
    for d in range(3):
        w.add(rng, x, y, 2, sensor="EO", kind="structure", day=d, hour=13, err=40)
    w.add(rng, x, y, 2, sensor="EO", kind="vehicle", day=1, hour=13, err=40, speed=0.0)
    return w


def _loose_phone(w: World, rng: np.random.Generator, x: float, y: float, *, days: int, per_day: int) -> None:
    """Fixes of a phone that stays at ``(x, y)``, each a 1.5 km × 500 m ellipse, too vague to name a place."""
    for d in range(days):
        for _ in range(per_day):
            w.add(rng, x, y, 1, sensor="SIGINT", kind="emitter", day=d, hour=float(rng.uniform(0, 24)), err=1500,
                  minor=500.0, ident="+520000000001", orient=float(rng.uniform(0, 180)))  # fmt: skip


def test_loose_beddown_is_anchored_on_the_building_inside_it() -> None:
    rng = np.random.default_rng(8)
    x, y = -106.7, 25.9
    w = _ranch_like(rng, x, y)
    assert detect_sites(**w.arrays()).n_sites == 0
    _loose_phone(w, rng, x + 0.002, y - 0.002, days=2, per_day=3)  # the phone stays ~300 m off the building
    sites = detect_sites(**w.arrays())
    assert sites.n_sites == 1, sites.evidence
    assert "emitter_beddown" in sites.evidence[0]["signatures"]
    assert match_points(sites.lon, sites.lat, np.array([x]), np.array([y]), radius_m=60.0).tp == 1
    # the same phone with no building near it names no place
    alone = World()
    _loose_phone(alone, np.random.default_rng(8), x, y, days=2, per_day=3)
    assert detect_sites(**alone.arrays()).n_sites == 0


def test_anchor_weight_is_shared_between_equally_likely_buildings() -> None:
    from atalaya.fusion.beddown import Beddowns
    from atalaya.fusion.sites import anchor_beddowns

    x, y = -106.7, 25.9
    rng = np.random.default_rng(2)
    w = World()
    for dx in (-0.004, 0.004):  # two buildings ~800 m apart, both inside the bed-down's ellipse
        for d in range(3):
            w.add(rng, x + dx, y, 3, sensor="EO", kind="structure", day=d, hour=13, err=20)
    a = w.arrays()
    state = accumulate_evidence(to_evidence(**{k: a[k] for k in ("lon", "lat", "time_us", "sensor", "kind",
                                                               "pos_err_m", "confidence")}))  # fmt: skip
    bd = Beddowns(ident=np.array([0, 1]), lon=np.array([x, x + 0.3]), lat=np.array([y, y]),
                  sigma_m=np.array([600.0, 600.0]), sigma_major_m=np.array([600.0, 600.0]),
                  sigma_minor_m=np.array([600.0, 600.0]), major_deg=np.zeros(2), n_fixes=np.array([6, 6]),
                  n_days=np.array([2, 2]),
                  day_mask=np.array([3, 3], dtype=np.uint64), first_day=np.array([DAY0, DAY0]),
                  inlier=np.ones(12, dtype=bool))  # fmt: skip
    lon, _, sig, weight, anchored = anchor_beddowns(bd, state)
    assert anchored.tolist() == [True, False]
    assert 0.3 < weight[0] < 0.7  # either building, about evenly
    assert min(abs(lon[0] - (x - 0.004)), abs(lon[0] - (x + 0.004))) < 0.0005 and sig[0] <= 30.0
    assert weight[1] == 0.0  # far from any building and too loose to name a place on its own


def test_beddown_is_anchored_along_its_long_axis_not_across_it() -> None:
    """Fixes taken from one side leave a bed-down loose along their line of sight: a building 420 m off along that
    axis names it (2.2 sigmas; the mean radius, 3.5 times smaller, would not reach it); one as far across hardly
    does (8 sigmas; 3.7 with the building's own extent, ``support_radius_m``, added)."""
    from atalaya.fusion.beddown import Beddowns
    from atalaya.fusion.sites import anchor_beddowns

    x, y = -106.7, 25.9
    rng = np.random.default_rng(5)
    w = World()
    m_lat = 110_570.0
    for dy in (420.0, -3_000.0):  # one building 420 m north, another far south (present, but out of reach)
        for d in range(3):
            w.add(rng, x, y + dy / m_lat, 3, sensor="EO", kind="structure", day=d, hour=13, err=20)
    a = w.arrays()
    state = accumulate_evidence(to_evidence(**{k: a[k] for k in ("lon", "lat", "time_us", "sensor", "kind",
                                                               "pos_err_m", "confidence")}))  # fmt: skip

    def bed_down(major_deg: float) -> Beddowns:
        return Beddowns(ident=np.array([0]), lon=np.array([x]), lat=np.array([y]), sigma_m=np.array([100.0]),
                        sigma_major_m=np.array([190.0]), sigma_minor_m=np.array([52.6]),
                        major_deg=np.array([major_deg]), n_fixes=np.array([4]), n_days=np.array([1]),
                        day_mask=np.array([1], dtype=np.uint64), first_day=np.array([DAY0]),
                        inlier=np.ones(4, dtype=bool))  # fmt: skip

    _, lat, _, weight, anchored = anchor_beddowns(bed_down(0.0), state)  # long axis north–south
    assert anchored[0] and weight[0] > 0.8
    assert abs((lat[0] - y) * m_lat - 420.0) < 30.0
    _, _, _, weight, _ = anchor_beddowns(bed_down(90.0), state)  # long axis east–west
    assert weight[0] < 0.1


# -- id-less vehicle tracks ending at a building -----------------------------------------------------------------


def test_vehicle_track_ending_at_a_building_is_a_site_in_the_open_it_is_not() -> None:
    from atalaya.fusion.sites import track_ends

    x, y = -106.4, 26.1
    a = _ranch_like(np.random.default_rng(4), x, y).arrays()
    # a GMTI track drives 5 km in and ends 30 m from the building; another ends in the open 20 km away
    t0 = (DAY0 + 1) * US_D + 10 * US_H
    n = 12
    lon = np.r_[np.linspace(x + 0.05, x + 0.0003, n), np.linspace(x + 0.3, x + 0.2, n)]
    lat = np.r_[np.full(n, y), np.full(n, y + 0.1)]
    tid = ["near"] * n + ["open"] * n
    t = np.r_[t0 + np.arange(n) * 20_000_000, t0 + np.arange(n) * 20_000_000]
    ends = track_ends(tid, t, lon, lat)
    assert ends.n == 4
    assert detect_sites(**a).n_sites == 0
    sites = detect_sites(**a, track_ends=ends)
    assert sites.n_sites == 1 and "vehicle_stops" in sites.evidence[0]["signatures"], sites.evidence
    assert match_points(sites.lon, sites.lat, np.array([x]), np.array([y]), radius_m=60.0).tp == 1
    # without the building, the same track ends name no place
    bare = {k: v[:0] for k, v in a.items()}
    assert detect_sites(**bare, track_ends=ends).n_sites == 0
    # short tracks (under three points) count for nothing
    assert track_ends(["s", "s"], np.array([1, 2]), np.zeros(2), np.zeros(2)).n == 0


def test_track_ends_are_carried_on_to_where_the_vehicle_stopped_or_set_off() -> None:
    """A vehicle seen once every 20 s at 15 m/s stops up to 300 m after its last point (and set off up to 300 m
    before its first): the end is that stretch, and names a building 280 m beyond the last point; the last point
    alone, known to 60 m, is too far from it."""
    from atalaya.fusion.sites import TrackEnds, track_ends

    x, y = -106.4, 26.1
    m_lon = 111_320.0 * np.cos(np.radians(y))
    rng = np.random.default_rng(9)
    n = 15
    t = (DAY0 + 1) * US_D + 10 * US_H + np.arange(n) * 20_000_000
    lon = x + (-280.0 - 300.0 * np.arange(n)[::-1]) / m_lon  # east along the parallel, last point 280 m short
    ends = track_ends(["a"] * n, t, lon, np.full(n, y))
    east = (ends.lon - x) * m_lon
    assert ends.time_us.tolist() == [t[0], t[-1]]
    assert abs(east[1] - (-280.0 + 150.0)) < 1.0  # the end: half a revisit's travel on
    assert abs(east[0] - ((lon[0] - x) * m_lon - 150.0)) < 1.0  # the start: half a revisit's travel back
    assert ends.course_deg.round(1).tolist() == [270.0, 90.0]  # outwards: back from the start, on from the end
    assert ends.half_along_m == pytest.approx([150.0, 150.0], rel=1e-3)
    assert ends.sigma_m.tolist() == [60.0, 60.0] and ends.start.tolist() == [True, False]
    # a track that does not move (all points at one place) is not carried anywhere
    still = track_ends(["s"] * 3, t[:3], np.full(3, x), np.full(3, y))
    assert np.allclose(still.lon, x) and np.allclose(still.half_along_m, 0.0)
    a = _ranch_like(rng, x, y).arrays()
    sites = detect_sites(**a, track_ends=ends)
    assert sites.n_sites == 1 and "vehicle_stops" in sites.evidence[0]["signatures"], sites.evidence
    assert match_points(sites.lon, sites.lat, np.array([x]), np.array([y]), radius_m=60.0).tp == 1
    last = TrackEnds.at([lon[-1]], [y], [t[-1]])
    assert detect_sites(**a, track_ends=last).n_sites == 0
    # the same end across the road from the building (280 m north of it, driving east) names nothing either
    across = track_ends(["a"] * n, t, lon + 280.0 / m_lon, np.full(n, y + 280.0 / 110_570.0))
    assert detect_sites(**a, track_ends=across).n_sites == 0


def _dark_descent(w: World, x0: float, y0: float, *, climb: bool = False, ident: str = "0d5a01") -> tuple[float, float]:
    """A light aircraft flying east at 240 km/h, 200 m lower each minute (higher when ``climb``), whose ADS-B stops
    at 1,050 m after ten reports; returns where that descent meets the ground (21 km on, along the same geodesic)."""
    from atalaya.geo.kernels import WGS84

    for i in range(10):
        alt = 1_050.0 + 200.0 * (9 - i) if not climb else 1_050.0 + 200.0 * i
        lon, lat, _ = WGS84.fwd(x0, y0, 90.0, 4_000.0 * i)
        w.cols["lon"].append(lon)
        w.cols["lat"].append(lat)
        w.cols["time_us"].append((DAY0 + 1) * US_D + 15 * US_H + i * 60_000_000)
        for col, v in (("sensor", "ADSB"), ("kind", "aircraft"), ("pos_err_m", 30.0), ("err_minor_m", float("nan")),
                       ("confidence", 0.9), ("speed_mps", 66.7), ("alt_m", alt), ("ident", ident),
                       ("err_orient_deg", float("nan"))):  # fmt: skip
            w.cols[col].append(v)
    tx, ty, _ = WGS84.fwd(x0, y0, 90.0, 36_000.0 + 21_000.0)
    return tx, ty


def test_aircraft_gone_dark_in_a_descent_names_the_building_ahead() -> None:
    from atalaya.fusion.sites import projected_landings

    x0, y0 = -105.6, 24.6
    probe = World()
    tx, ty = _dark_descent(probe, x0, y0)
    a = probe.arrays()
    ld = projected_landings(a["ident"], a["time_us"], a["lon"], a["lat"], a["alt_m"])
    assert ld.n == 1 and abs(ld.distance_m[0] - 21_000.0) < 50.0 and abs(ld.course_deg[0] - 90.0) < 0.5
    assert abs(ld.lon[0] - tx) < 1e-4 and abs(ld.lat[0] - ty) < 1e-5
    assert ld.sigma_along_m[0] > 5 * ld.sigma_cross_m[0] / 2  # far less sure how far than which way

    rng = np.random.default_rng(4)
    k = 111_320.0 * np.cos(np.radians(ty))
    sx = tx + 1_500.0 / k  # the strip 1.5 km beyond the projected touchdown: well inside the along-course error
    w = _ranch_like(rng, sx, ty)
    assert detect_sites(**w.arrays()).n_sites == 0  # a building seen on three days is no site by itself
    _dark_descent(w, x0, y0)
    sites = detect_sites(**w.arrays())
    assert sites.n_sites == 1 and sites.kind == ["airstrip"], sites.evidence
    assert "projected_landing" in sites.evidence[0]["signatures"]
    assert match_points(sites.lon, sites.lat, np.array([sx]), np.array([ty]), radius_m=60.0).tp == 1

    # the same flight climbing away, or a building 4 km off the course, names nothing
    climbing = _ranch_like(np.random.default_rng(4), sx, ty)
    _dark_descent(climbing, x0, y0, climb=True)
    assert detect_sites(**climbing.arrays()).n_sites == 0
    aside = _ranch_like(np.random.default_rng(4), tx, ty + 4_000.0 / 111_320.0)
    _dark_descent(aside, x0, y0)
    assert detect_sites(**aside.arrays()).n_sites == 0


def test_projected_landings_need_a_descent_ending_airborne_and_within_reach() -> None:
    from atalaya.fusion.sites import projected_landings

    n = 10
    t = np.arange(n, dtype=np.int64) * 60_000_000
    lon = -105.0 + 0.01 * np.arange(n)
    lat = np.full(n, 24.0)
    track = np.zeros(n, dtype=np.int64)

    def count(alt: Any, **kw: float) -> int:
        return projected_landings(track, t, lon, lat, np.asarray(alt, dtype=float), SiteParams(**kw)).n

    assert count(1_000.0 - 50.0 * np.arange(n)) == 1
    assert count(np.full(n, 1_000.0)) == 0  # level: no descent to carry on
    assert count(470.0 - 50.0 * np.arange(n)) == 1  # ends 20 m up: 400 m to go
    assert count(90.0 - 10.0 * np.arange(n)) == 0  # ends at 0 m: met the ground in view (track ends count there)
    assert count(1_000.0 - 20.0 * np.arange(n)) == 0  # 40 m lost in the last two minutes: too little to tell
    assert count(1_000.0 - 20.0 * np.arange(n), landing_window_s=600.0) == 1  # 200 m over ten minutes: a descent
    assert count(1_000.0 - 50.0 * np.arange(n), landing_max_m=10_000.0) == 0  # 18 km to go: beyond reach
    assert count(np.full(n, np.nan)) == 0


def test_projected_landing_at_an_airport_names_nothing() -> None:
    # an airliner losing reception on its way into Mexico City (MMMX), a hangar there seen on three days
    w = _ranch_like(np.random.default_rng(5), -99.072, 19.436)
    k = 111_320.0 * np.cos(np.radians(19.436))
    _dark_descent(w, -99.072 - 30_000.0 / k, 19.436, ident="0d0777")
    assert detect_sites(**w.arrays()).n_sites == 0


def test_run_sites_reads_landings_from_the_aircraft_tracks(workspace: Workspace, tmp_path: Path) -> None:
    from atalaya.fusion.tracks import run_tracks

    x0, y0 = -105.6, 24.6
    tx, ty = _dark_descent(World(), x0, y0)
    w = _ranch_like(np.random.default_rng(4), tx, ty)
    _dark_descent(w, x0, y0)
    store = KnowledgeStore.open(workspace.db_url)
    _write_lake(workspace, w.arrays(), tmp_path, "all")
    before = run_sites(workspace, store)  # no tracks built yet: the building alone
    assert before["projected_landings"] == 0 and before["sites"] == 0
    run_tracks(workspace, store)
    after = run_sites(workspace, store)
    assert after["projected_landings"] == 1 and after["sites"] == 1 and after["kinds"] == {"airstrip": 1}
    # the saved evidence with everything derived from it is what was extracted
    assert extract_sites(load_state(workspace)).n_sites == 1
    with store.engine.connect() as conn:
        row = conn.execute(schema.sites.select()).one()
    assert "projected_landing" in row.evidence["signatures"]
    assert match_points([row.lon], [row.lat], np.array([tx]), np.array([ty]), radius_m=60.0).tp == 1
    # the tracks' last minutes, read alone, give what all their points do
    import pyarrow.parquet as pq

    from atalaya.fusion.sites import projected_landings, workspace_landings
    from atalaya.fusion.tracks import tracks_dir

    tb = pq.read_table(tracks_dir(workspace) / "identified.parquet").to_pydict()
    whole = projected_landings(np.asarray(tb["track_id"], dtype=object),
                               np.array([t.timestamp() * 1e6 for t in tb["time"]], dtype=np.int64),
                               np.asarray(tb["lon"], dtype=np.float64), np.asarray(tb["lat"], dtype=np.float64),
                               np.array([np.nan if a is None else a for a in tb["alt_m"]]))  # fmt: skip
    read = workspace_landings(workspace)
    assert whole.n == read.n == 1 and np.allclose([whole.lon, whole.lat], [read.lon, read.lat], rtol=0, atol=1e-9)


def test_rewriting_sites_drops_the_unsupported_ones_analysts_never_touched(workspace: Workspace) -> None:
    from atalaya.fusion.sites import write_sites

    rng = np.random.default_rng(9)
    here, there, third = World(), World(), World()
    for w, (x, y) in ((here, (-105.2, 24.6)), (there, (-104.8, 24.1)), (third, (-106.0, 25.0))):
        for d in range(2):
            w.add(rng, x, y, 1, sensor="ADSB", kind="aircraft", day=d, hour=6, err=20, speed=60.0, alt=0.0,
                  ident=f"0d{d}")  # fmt: skip
    a, b, c = (detect_sites(**w.arrays()) for w in (here, there, third))
    assert a.n_sites == b.n_sites == c.n_sites == 1
    store = KnowledgeStore.open(workspace.db_url)

    def ids() -> set[str]:
        with store.engine.connect() as conn:
            return {r.id for r in conn.execute(schema.sites.select()).all()}

    (ia,) = write_sites(store, a, run_id="sites-1")
    (ib,) = write_sites(store, b, run_id="sites-2")  # the first place is no longer supported: gone
    assert ids() == {ib}
    set_site_status(store, ib, "confirmed", None, "analyst1")
    (ic,) = write_sites(store, c, run_id="sites-3")  # the confirmed one stays, with its status
    assert ids() == {ib, ic} and ia not in ids()
    with store.engine.connect() as conn:
        kept = conn.execute(schema.sites.select().where(schema.sites.c.id == ib)).one()
    assert kept.status == "confirmed" and kept.run_id == "sites-2"
    assert write_sites(store, c, run_id="sites-4") == [ic] and ids() == {ib, ic}  # a re-run keeps its own sites
