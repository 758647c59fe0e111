"""Emitter bed-downs: where phones stay, from their SIGINT ellipses."""

from __future__ import annotations

import numpy as np
import pytest

from atalaya.fusion.beddown import BeddownParams, beddowns

LON0, LAT0 = -107.0, 25.0
M_LON = 111_320.0 * np.cos(np.radians(LAT0))
M_LAT = 111_320.0


def _fixes(
    rng: np.random.Generator, ident: int, x: float, y: float, n: int, days: int, a: float = 600.0, b: float = 120.0
) -> dict[str, np.ndarray]:
    """Fixes of a phone at (x, y) metres east/north of the origin, from bearings all round."""
    th = rng.uniform(0.0, 180.0, n)
    u, v = rng.normal(0, a, n), rng.normal(0, b, n)
    r = np.radians(th)
    e = x + u * np.sin(r) + v * np.cos(r)
    nn = y + u * np.cos(r) - v * np.sin(r)
    return {
        "ident": np.full(n, ident, dtype=np.int64), "lon": LON0 + e / M_LON, "lat": LAT0 + nn / M_LAT,
        "a": np.full(n, a), "b": np.full(n, b), "orient_deg": th, "day": np.arange(n) % days,
    }  # fmt: skip


def _cat(*parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _err_m(lon: float, lat: float, x: float, y: float) -> float:
    return float(np.hypot((lon - LON0) * M_LON - x, (lat - LAT0) * M_LAT - y))


def test_crossing_ellipses_locate_far_better_than_one_fix() -> None:
    rng = np.random.default_rng(1)
    bd = beddowns(**_fixes(rng, 0, 200.0, -300.0, n=20, days=4))
    assert bd.n_beddowns == 1 and bd.n_days[0] == 4 and bd.n_fixes[0] >= 18
    err = _err_m(bd.lon[0], bd.lat[0], 200.0, -300.0)
    assert err < 100.0 and bd.sigma_m[0] < 80.0  # one fix: 600 m along its major axis
    assert err < 4 * bd.sigma_m[0]


def test_trips_elsewhere_do_not_move_the_bed_down() -> None:
    rng = np.random.default_rng(2)
    home = _fixes(rng, 0, 0.0, 0.0, n=16, days=4)
    road = _fixes(rng, 0, 0.0, 0.0, n=6, days=2)  # a third of its fixes on the road, kilometres apart
    road["lon"] = road["lon"] + np.linspace(10_000.0, 60_000.0, 6) / M_LON
    bd = beddowns(**_cat(home, road))
    assert bd.n_beddowns == 1
    assert _err_m(bd.lon[0], bd.lat[0], 0.0, 0.0) < 150.0
    assert bd.inlier[:16].sum() >= 14 and not bd.inlier[16:].any()


def test_a_phone_that_stays_at_two_places_beds_down_at_both() -> None:
    rng = np.random.default_rng(2)
    lab = _fixes(rng, 0, 0.0, 0.0, n=6, days=2)  # fewer fixes at the lab than at the house: the median lies
    house = _fixes(rng, 0, 25_000.0, 8_000.0, n=10, days=3)  # between them, kilometres from either
    bd = beddowns(**_cat(lab, house))
    assert bd.n_beddowns == 2 and bd.ident.tolist() == [0, 0]
    pos = list(zip(bd.lon.tolist(), bd.lat.tolist(), strict=True))
    assert min(_err_m(x, y, 0.0, 0.0) for x, y in pos) < 300.0  # one at each place
    assert min(_err_m(x, y, 25_000.0, 8_000.0) for x, y in pos) < 300.0
    assert sorted(bd.n_fixes.tolist())[0] >= 5 and bd.inlier.sum() >= 14
    # one stay only, when asked
    assert beddowns(**_cat(lab, house), params=BeddownParams(max_stays=1)).n_beddowns == 1


def test_wandering_phone_and_single_day_do_not_bed_down() -> None:
    rng = np.random.default_rng(3)
    n = 24
    spread = _fixes(rng, 0, 0.0, 0.0, n=n, days=4)
    spread["lon"] = spread["lon"] + rng.normal(0, 5_000.0, n) / M_LON  # about town, kilometres around
    spread["lat"] = spread["lat"] + rng.normal(0, 5_000.0, n) / M_LAT
    one_day = _fixes(rng, 1, 0.0, 0.0, n=10, days=1)
    bd = beddowns(**_cat(spread, one_day))
    assert bd.n_beddowns == 0
    assert beddowns(**one_day, params=BeddownParams(min_days=1)).n_beddowns == 1


def test_many_emitters_at_once_and_degenerate_input() -> None:
    rng = np.random.default_rng(4)
    parts = [_fixes(rng, i, 1_000.0 * i, 0.0, n=8, days=3) for i in range(50)]
    bd = beddowns(**_cat(*parts))
    assert bd.n_beddowns == 50 and sorted(bd.ident.tolist()) == list(range(50))
    errs = [_err_m(bd.lon[k], bd.lat[k], 1_000.0 * bd.ident[k], 0.0) for k in range(50)]
    assert np.median(errs) < 150.0
    z = np.zeros(0)
    empty = beddowns(ident=z.astype(np.int64), lon=z, lat=z, a=z, b=z, orient_deg=z, day=z.astype(np.int64))
    assert empty.n_beddowns == 0
    nan = _fixes(rng, 0, 0.0, 0.0, n=3, days=3)
    nan["lon"][:] = np.nan
    assert beddowns(**nan).n_beddowns == 0


def test_a_crew_phone_mostly_on_the_road_still_beds_down_where_it_stays() -> None:
    """The share of agreeing fixes is taken among the fixes near the place: a phone whose fixes are mostly strung
    along hundreds of kilometres of road beds down where a few of them agree; one carried about its town does not."""
    rng = np.random.default_rng(6)
    stay = _fixes(rng, 0, 0.0, 0.0, n=4, days=2)
    road = _fixes(rng, 0, 0.0, 0.0, n=16, days=2)
    road["lon"] = road["lon"] + np.linspace(20_000.0, 400_000.0, 16) / M_LON  # a fifth of its fixes agree
    bd = beddowns(**_cat(stay, road))
    assert bd.n_beddowns == 1 and bd.n_fixes[0] == 4
    assert _err_m(bd.lon[0], bd.lat[0], 0.0, 0.0) < 400.0
    # counted over all its fixes, the share (4 of 20) is under the 30 % asked for
    assert beddowns(**_cat(stay, road), params=BeddownParams(share_radius_m=1e9)).n_beddowns == 0
    # about town: the fixes that do not agree lie near the place, and the share stays low
    town = _fixes(rng, 1, 0.0, 0.0, n=16, days=2)
    town["lon"] = town["lon"] + rng.uniform(-6_000.0, 6_000.0, 16) / M_LON
    town["lat"] = town["lat"] + rng.uniform(-6_000.0, 6_000.0, 16) / M_LAT
    assert beddowns(**_cat(stay | {"ident": np.full(4, 1)}, town)).n_beddowns == 0


def test_error_ellipse_of_fixes_from_one_side_is_long_along_their_line_of_sight() -> None:
    rng = np.random.default_rng(7)
    f = _fixes(rng, 0, 0.0, 0.0, n=6, days=2, a=500.0, b=60.0)
    f["orient_deg"] = np.full(6, 150.0) + rng.normal(0, 2.0, 6)  # all from the same side
    e, nn = rng.normal(0, 500.0, 6), rng.normal(0, 60.0, 6)
    r = np.radians(f["orient_deg"])
    f["lon"] = LON0 + (e * np.sin(r) + nn * np.cos(r)) / M_LON
    f["lat"] = LAT0 + (e * np.cos(r) - nn * np.sin(r)) / M_LAT
    bd = beddowns(**f)
    assert bd.n_beddowns == 1
    assert abs(bd.major_deg[0] - 150.0) < 5.0
    assert bd.sigma_major_m[0] > 5 * bd.sigma_minor_m[0]
    assert bd.sigma_minor_m[0] < bd.sigma_m[0] < bd.sigma_major_m[0]
    assert bd.sigma_m[0] == pytest.approx(np.sqrt(bd.sigma_major_m[0] * bd.sigma_minor_m[0]))
