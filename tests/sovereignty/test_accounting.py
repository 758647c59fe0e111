"""Overflight accounting: constructed answers, conservation, a dense-resampling oracle and a real-route check."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon, box

from atalaya.core.errors import ValidationError
from atalaya.geo.kernels import WGS84, geodesic_distance
from atalaya.geo.territories import Territories, load_territories, territories_from_geometries
from atalaya.sovereignty.accounting import Accounting, account_tracks

RECT = territories_from_geometries(ids=["A"], geoms=[box(0.0, -1.0, 1.0, 1.0)])
SHAPES = territories_from_geometries(
    ids=["A", "B", "C", "S1"],
    geoms=[
        box(0.0, 0.0, 1.0, 1.0),
        box(1.0, 0.0, 2.0, 1.0),
        Polygon([(0.2, 1.2), (1.8, 1.2), (1.0, 1.9)]),
        box(0.0, 0.0, 0.5, 0.5),
    ],
    levels=["country", "country", "country", "state"],
    owners=["A", "B", "C", "A"],
)


def _rows(acc: Accounting, level: str = "country") -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["track_id"], r["territory_id"]): r for r in acc.summary.to_pylist() if r["level"] == level}


def _line(lons: Any, lats: Any, dt_s: float = 1.0, tid: str = "t") -> dict[str, Any]:
    n = len(lons)
    return {
        "track_id": np.array([tid] * n, dtype=object),
        "time_us": (np.arange(n) * dt_s * 1e6).astype(np.int64),
        "lon": np.asarray(lons, dtype=float),
        "lat": np.asarray(lats, dtype=float),
    }


def test_east_west_crossing_of_a_rectangle() -> None:
    lons = np.linspace(-1.0, 2.0, 31)
    acc = account_tracks(**_line(lons, np.zeros(31)), territories=RECT, levels=("country",))
    rows = _rows(acc)
    a, intl = rows[("t", "A")], rows[("t", "INTL")]
    assert a["time_s"] == pytest.approx(10.0, abs=1e-9)
    assert intl["time_s"] == pytest.approx(20.0, abs=1e-9)
    one_deg = float(geodesic_distance([0.0], [0.0], [1.0], [0.0])[0]) / 1000
    assert a["distance_km"] == pytest.approx(one_deg, rel=1e-9)
    assert (a["entries"], a["exits"], a["visits"]) == (1, 1, 1)
    # Deepest fix: (0.5, 0) is 0.5° of longitude from the east/west sides (nearer than 1° of latitude).
    assert a["max_depth_km"] == pytest.approx(one_deg / 2, rel=2e-3)
    assert intl["max_depth_km"] is None
    ev = acc.events.to_pylist()
    assert [(e["territory_id"], e["event"]) for e in ev] == [
        ("INTL", "exit"),
        ("A", "entry"),
        ("A", "exit"),
        ("INTL", "entry"),
    ]
    assert [round(e["lon"], 9) for e in ev] == [0.0, 0.0, 1.0, 1.0]
    assert ev[1]["time"].timestamp() == pytest.approx(10.0)
    assert a["first_in"].timestamp() == pytest.approx(10.0)
    assert a["last_out"].timestamp() == pytest.approx(20.0)


def test_crossing_inside_one_segment() -> None:
    # Two fixes only, both outside: the crossing of A happens between them.
    acc = account_tracks(**_line([-1.0, 2.0], [0.0, 0.0], dt_s=3.0), territories=RECT, levels=("country",))
    a = _rows(acc)[("t", "A")]
    assert a["time_s"] == pytest.approx(1.0)
    assert a["max_depth_km"] == 0.0
    assert a["entries"] == 1


def test_leave_and_reenter() -> None:
    lons = [0.5, 1.5, 0.5, 1.5, 0.5]
    acc = account_tracks(**_line(lons, [0.0] * 5, dt_s=10.0), territories=RECT, levels=("country",))
    a = _rows(acc)[("t", "A")]
    assert a["visits"] == 3
    assert (a["entries"], a["exits"]) == (2, 2)
    assert a["time_s"] == pytest.approx(20.0)
    assert len(acc.events) == 8


def test_track_entirely_inside_and_single_fix() -> None:
    d = _line([0.2, 0.4, 0.6], [0.0, 0.1, 0.0])
    acc = account_tracks(**d, territories=RECT, levels=("country",))
    rows = _rows(acc)
    assert set(rows) == {("t", "A")}
    assert (rows[("t", "A")]["entries"], rows[("t", "A")]["visits"]) == (0, 1)
    assert len(acc.events) == 0
    one = account_tracks(**_line([0.5], [0.0]), territories=RECT, levels=("country",))
    r = _rows(one)[("t", "A")]
    assert (r["time_s"], r["distance_km"], r["visits"]) == (0.0, 0.0, 1)


def test_empty_and_invalid() -> None:
    acc = account_tracks(**_line([], []), territories=RECT)
    assert (acc.summary.num_rows, acc.events.num_rows, acc.tracks.num_rows) == (0, 0, 0)
    d = _line([0.0, 1.0], [0.0, 0.0])
    d["time_us"] = d["time_us"][::-1].copy()
    with pytest.raises(ValidationError, match="sorted"):
        account_tracks(**d, territories=RECT)
    with pytest.raises(ValidationError):
        account_tracks(**_line([0.0], [0.0]), territories=RECT, levels=("county",))


def _conservation(acc) -> None:  # type: ignore[no-untyped-def]
    tr = {r["track_id"]: r for r in acc.tracks.to_pylist()}
    for level in ("country", "state"):
        tot: dict[str, list[float]] = {}
        for r in acc.summary.to_pylist():
            if r["level"] == level:
                x = tot.setdefault(r["track_id"], [0.0, 0.0])
                x[0] += r["time_s"]
                x[1] += r["distance_km"]
        for tid, (ts, dk) in tot.items():
            assert ts == pytest.approx(tr[tid]["observed_s"], rel=1e-12, abs=1e-9)
            assert dk == pytest.approx(tr[tid]["observed_km"], rel=1e-12, abs=1e-9)
            assert tr[tid]["observed_s"] + tr[tid]["unobserved_s"] == pytest.approx(tr[tid]["duration_s"], abs=1e-9)
            if tr[tid]["gaps"] == 0:
                assert ts == pytest.approx(tr[tid]["duration_s"], rel=1e-12, abs=1e-9)
                assert dk == pytest.approx(tr[tid]["length_km"], rel=1e-12, abs=1e-9)
        assert set(tot) == set(tr)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-0.5, 2.5), st.floats(-0.5, 2.5), st.integers(0, 30)),
        min_size=1,
        max_size=40,
    ),
    st.integers(1, 4),
    st.sampled_from([None, 12.0, 25.0]),
)
def test_conservation_random_tracks(pts: list[tuple[float, float, int]], ntracks: int, gap: float | None) -> None:
    n = len(pts)
    tid = np.sort(np.arange(n) % ntracks).astype(str).astype(object)
    dt = np.array([p[2] for p in pts], dtype=np.int64) * 1_000_000
    time_us = np.concatenate([np.cumsum(dt[tid == k]) for k in np.unique(tid)])
    acc = account_tracks(
        track_id=tid,
        time_us=time_us,
        lon=np.array([p[0] for p in pts]),
        lat=np.array([p[1] for p in pts]),
        territories=SHAPES,
        max_gap_s=gap,
    )
    _conservation(acc)


def _oracle(
    t: Territories, lon: Any, lat: Any, time_us: Any, level: str = "country", step_m: float = 50.0
) -> dict[str, float]:
    """Time per territory by resampling every segment at ~50 m and labelling sub-step midpoints."""
    idx = t.level_indices(level)
    out: dict[str, float] = {}
    for i in range(len(lon) - 1):
        d = float(geodesic_distance(lon[i : i + 1], lat[i : i + 1], lon[i + 1 : i + 2], lat[i + 1 : i + 2])[0])
        k = max(1, int(np.ceil(d / step_m)))
        f = (np.arange(k) + 0.5) / k
        x = lon[i] + f * (lon[i + 1] - lon[i])
        y = lat[i] + f * (lat[i + 1] - lat[i])
        lab = np.full(k, "INTL", dtype=object)
        for j in idx:
            lab[shapely.contains_xy(t.geoms[j], x, y)] = t.ids[j]
        dt = (time_us[i + 1] - time_us[i]) / 1e6 / k
        for name in np.unique(lab):
            out[str(name)] = out.get(str(name), 0.0) + dt * int((lab == name).sum())
    return out


def test_against_dense_resampling_oracle() -> None:
    rng = np.random.default_rng(7)
    n = 60
    lon = np.cumsum(rng.normal(0, 0.08, n)) + 1.0
    lat = np.cumsum(rng.normal(0, 0.08, n)) + 0.8
    time_us = np.cumsum(rng.integers(5, 60, n)).astype(np.int64) * 1_000_000
    for level in ("country", "state"):
        acc = account_tracks(**_line(lon, lat) | {"time_us": time_us}, territories=SHAPES, levels=(level,))
        got = {r["territory_id"]: r["time_s"] for r in acc.summary.to_pylist()}
        want = _oracle(SHAPES, lon, lat, time_us, level)
        assert set(got) == {k for k, v in want.items() if v > 0}
        step_s = float(np.diff(time_us).max()) / 1e6 / (0.08 * 111e3 / 50)
        for k, v in want.items():
            assert got[k] == pytest.approx(v, abs=4 * step_s + 1e-6)


def test_belize_city_to_houston_real_map() -> None:
    terr = load_territories()
    # Great-circle route BZE (-88.308, 17.539) → IAH (-95.341, 29.984), one fix per 15 s at ~800 km/h.
    dist = WGS84.inv(-88.308, 17.539, -95.341, 29.984)[2]
    v = 222.0
    n = int(dist / (v * 15)) + 1
    mid = np.array(WGS84.npts(-88.308, 17.539, -95.341, 29.984, n - 2))
    lon = np.r_[-88.308, mid[:, 0], -95.341]
    lat = np.r_[17.539, mid[:, 1], 29.984]
    time_us = 1_700_000_000_000_000 + np.arange(n, dtype=np.int64) * 15_000_000
    acc = account_tracks(
        track_id=np.array(["a1b2c3"] * n, dtype=object), time_us=time_us, lon=lon, lat=lat, territories=terr
    )
    ev = [e for e in acc.events.to_pylist() if e["level"] == "country" and e["event"] == "entry"]
    assert [e["territory_id"] for e in ev] == ["MEX", "INTL", "USA"]
    rows = _rows(acc)
    total = acc.tracks.to_pylist()[0]
    assert 1_500 < total["length_km"] < 1_560
    assert 40 < rows[("a1b2c3", "BLZ")]["distance_km"] < 150
    assert 300 < rows[("a1b2c3", "MEX")]["distance_km"] < 500
    assert 700 < rows[("a1b2c3", "INTL")]["distance_km"] < 1_000
    assert 60 < rows[("a1b2c3", "USA")]["distance_km"] < 200
    # The Yucatán leg: deepest point well inside Mexico; the Gulf leg has no depth.
    assert rows[("a1b2c3", "MEX")]["max_depth_km"] > 50
    assert rows[("a1b2c3", "INTL")]["max_depth_km"] is None
    states = {r["territory_id"] for r in acc.summary.to_pylist() if r["level"] == "state"}
    assert {"MEX-ROO", "MEX-YUC", "USA-TX"} <= states
    _conservation(acc)


def _walks(n_tracks: int, per: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    heading = np.cumsum(rng.normal(0.0, 0.15, (n_tracks, per)), axis=1) + rng.uniform(0, 6.3, (n_tracks, 1))
    lon = rng.uniform(-110.0, -88.0, n_tracks)[:, None] + np.cumsum(0.02 * np.cos(heading), axis=1)
    lat = rng.uniform(16.0, 31.0, n_tracks)[:, None] + np.cumsum(0.02 * np.sin(heading), axis=1)
    return {
        "track_id": np.repeat(np.arange(n_tracks), per),
        "time_us": np.tile(np.arange(per, dtype=np.int64) * 10_000_000, n_tracks),
        "lon": lon.ravel(),
        "lat": lat.ravel(),
    }


def test_max_depth_equals_measuring_every_fix() -> None:
    from atalaya.geo.territories import label_points
    from atalaya.sovereignty.accounting import _depth_exact

    terr = load_territories()
    d = _walks(12, 600, seed=5)
    acc = account_tracks(**d, territories=terr)
    for level in ("country", "state"):
        lab = label_points(terr, d["lon"], d["lat"], level)
        k = np.flatnonzero(lab >= 0)
        every = _depth_exact(terr, level, d["lon"][k], d["lat"][k], lab[k], np.full(len(k), np.inf))
        want: dict[tuple[str, str], float] = {}
        for i, v in zip(k.tolist(), every.tolist(), strict=True):
            key = (str(d["track_id"][i]), str(terr.ids[lab[i]]))
            want[key] = max(want.get(key, 0.0), v)
        got = _rows(acc, level)
        for key, v in want.items():
            assert got[key]["max_depth_km"] == pytest.approx(v, rel=1e-3, abs=0.05)


def test_chunks_of_whole_tracks_give_the_same_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    import atalaya.sovereignty.accounting as accounting

    terr = load_territories()
    d = _walks(9, 300, seed=11)
    one = account_tracks(**d, territories=terr)
    monkeypatch.setattr(accounting, "CHUNK_ROWS", 700)
    many = account_tracks(**d, territories=terr)
    assert many.events.equals(one.events)
    assert many.tracks.column("points").equals(one.tracks.column("points"))
    assert np.allclose(many.tracks.column("length_km").to_numpy(), one.tracks.column("length_km").to_numpy())
    a, b = one.summary, many.summary
    for col in ("track_id", "level", "territory_id", "visits", "entries", "exits", "first_in", "last_out"):
        assert b.column(col).equals(a.column(col))
    for col in ("time_s", "distance_km", "max_depth_km"):
        assert np.allclose(
            b.column(col).to_numpy(zero_copy_only=False), a.column(col).to_numpy(zero_copy_only=False), equal_nan=True
        )
