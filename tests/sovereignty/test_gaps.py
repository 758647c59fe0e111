"""Gaps: silences longer than a platform kind's limit are unobserved — no territory, no crossing, no entry."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from shapely.geometry import box

from atalaya.cli.main import main
from atalaya.core.errors import ValidationError
from atalaya.core.workspace import Workspace
from atalaya.geo.territories import load_territories, territories_from_geometries
from atalaya.model.observation import SCHEMA
from atalaya.sovereignty import service
from atalaya.sovereignty.accounting import MAX_GAP_S, account_tracks, uncovered_points
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.lake import Lake

AB = territories_from_geometries(
    ids=["A", "B", "SA"],
    geoms=[box(0.0, 0.0, 1.0, 1.0), box(1.0, 0.0, 2.0, 1.0), box(0.0, 0.0, 0.5, 1.0)],
    levels=["country", "country", "state"],
    owners=["A", "B", "A"],
)
H3 = 3 * 3600


def _track(lon: list[float], lat: list[float], t_s: list[float], tid: str = "t") -> dict[str, Any]:
    return {
        "track_id": np.array([tid] * len(lon), dtype=object),
        "time_us": (np.asarray(t_s) * 1e6).astype(np.int64),
        "lon": np.asarray(lon, dtype=float),
        "lat": np.asarray(lat, dtype=float),
    }


def _rows(acc: Any, level: str = "country") -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["track_id"], r["territory_id"]): r for r in acc.summary.to_pylist() if r["level"] == level}


def test_three_hour_silence_between_two_countries_is_unobserved() -> None:
    d = _track([0.2, 0.6, 1.4, 1.8], [0.5] * 4, [0, 60, 60 + H3, 120 + H3])
    acc = account_tracks(**d, territories=AB)
    rows = _rows(acc)
    assert set(rows) == {("t", "A"), ("t", "B")}
    assert rows["t", "A"]["time_s"] == pytest.approx(60.0) and rows["t", "B"]["time_s"] == pytest.approx(60.0)
    for k in ("A", "B"):
        assert (rows["t", k]["entries"], rows["t", k]["exits"], rows["t", k]["visits"]) == (0, 0, 1)
    ev = [(e["level"], e["territory_id"], e["event"]) for e in acc.events.to_pylist()]
    assert ev == [("state", "SA", "exit"), ("state", "INTL", "entry")]  # a real crossing; none across the gap
    tr = acc.tracks.to_pylist()[0]
    assert tr["duration_s"] == pytest.approx(120.0 + H3)
    assert tr["observed_s"] == pytest.approx(120.0) and tr["unobserved_s"] == pytest.approx(H3)
    assert tr["gaps"] == 1 and tr["max_gap_s"] == MAX_GAP_S["aircraft"]
    assert tr["observed_km"] == pytest.approx(sum(r["distance_km"] for r in rows.values()))
    assert tr["observed_km"] < tr["length_km"]
    assert rows["t", "A"]["last_out"] < rows["t", "B"]["first_in"]
    # Without a limit the same fixes are one flight across the border (the old behaviour).
    old = account_tracks(**d, territories=AB, max_gap_s=None)
    assert _rows(old)["t", "B"]["entries"] == 1 and old.tracks.to_pylist()[0]["gaps"] == 0
    assert old.tracks.to_pylist()[0]["max_gap_s"] is None


def test_a_gap_inside_one_territory_ends_the_visit_without_an_exit() -> None:
    acc = account_tracks(**_track([0.7, 0.8, 0.9, 0.95], [0.5] * 4, [0, 10, 10 + H3, 20 + H3]), territories=AB)
    a = _rows(acc)["t", "A"]
    assert (a["visits"], a["entries"], a["exits"]) == (2, 0, 0)
    assert a["time_s"] == pytest.approx(20.0)


def test_isolated_fix_between_two_gaps_is_a_visit_of_no_time() -> None:
    acc = account_tracks(**_track([0.2, 1.5, 0.3], [0.5] * 3, [0, H3, 2 * H3]), territories=AB)
    rows = _rows(acc)
    assert rows["t", "B"]["time_s"] == 0.0 and rows["t", "B"]["visits"] == 1 and rows["t", "B"]["entries"] == 0
    assert rows["t", "A"]["visits"] == 2 and acc.events.num_rows == 0
    assert acc.tracks.to_pylist()[0]["observed_s"] == 0.0


def test_aircraft_reappearing_far_away_after_a_gap() -> None:
    """An ICAO24 seen over Mexico City, silent 6 h, then over Houston: no flight over the border is invented."""
    t = load_territories()
    mex = ([-99.20, -99.10, -99.00], [19.40, 19.45, 19.50])
    hou = ([-95.40, -95.30, -95.20], [29.70, 29.75, 29.80])
    d = _track(mex[0] + hou[0], mex[1] + hou[1], [0, 10, 20, 6 * 3600, 6 * 3600 + 10, 6 * 3600 + 20], "a1b2c3")
    acc = account_tracks(**d, territories=t)
    c = _rows(acc)
    assert set(c) == {("a1b2c3", "MEX"), ("a1b2c3", "USA")}
    assert c["a1b2c3", "MEX"]["time_s"] == pytest.approx(20.0) and c["a1b2c3", "USA"]["time_s"] == pytest.approx(20.0)
    assert c["a1b2c3", "USA"]["entries"] == 0
    ev = acc.events.to_pylist()
    assert not [e for e in ev if e["level"] == "country"]
    # Only the crossings flown within Mexico City's area (first 20 s); nothing between there and Houston.
    assert all(e["time"].timestamp() <= 20 for e in ev)
    assert {k[1] for k in _rows(acc, "state")} <= {"INTL", "USA-TX", *{e["territory_id"] for e in ev}}


def _split_at_gaps(d: dict[str, Any], limit_s: float) -> dict[str, Any]:
    """The same fixes with each track cut at its gaps into separately named tracks."""
    tid, tus = d["track_id"], d["time_us"]
    same = np.r_[False, tid[1:] == tid[:-1]]
    gap = same & (np.r_[0, np.diff(tus)] > limit_s * 1e6)
    piece = np.cumsum(gap)
    return d | {"track_id": np.array([f"{a}#{b}" for a, b in zip(tid, piece, strict=True)], dtype=object)}


@pytest.mark.parametrize("limit", [25.0, 60.0])
def test_many_tracks_with_gaps_equal_their_observed_pieces(limit: float) -> None:
    """Vectorised over many tracks: each track's figures are those of its observed pieces accounted apart."""
    rng = np.random.default_rng(3)
    ntr, per = 150, 30
    lon = (np.cumsum(rng.normal(0, 0.12, (ntr, per)), axis=1) + rng.uniform(0.2, 1.8, (ntr, 1))).ravel()
    lat = (np.cumsum(rng.normal(0, 0.12, (ntr, per)), axis=1) + rng.uniform(0.2, 0.8, (ntr, 1))).ravel()
    dt = rng.choice([5, 10, 20, 40, 4000], size=(ntr, per), p=[0.3, 0.3, 0.2, 0.1, 0.1])
    tus = np.cumsum(dt, axis=1).ravel().astype(np.int64) * 1_000_000
    tid = np.repeat(np.array([f"t{i:03d}" for i in range(ntr)], dtype=object), per)
    d: dict[str, Any] = {"track_id": tid, "time_us": tus, "lon": lon, "lat": lat}
    acc = account_tracks(**d, territories=AB, max_gap_s=limit)
    ref = account_tracks(**_split_at_gaps(d, limit), territories=AB, max_gap_s=None)
    for level in ("country", "state"):
        want: dict[tuple[str, str], list[float]] = {}
        for r in ref.summary.to_pylist():
            if r["level"] == level:
                w = want.setdefault((r["track_id"].split("#")[0], r["territory_id"]), [0.0, 0.0, 0, 0, 0, 0.0])
                w[0] += r["time_s"]
                w[1] += r["distance_km"]
                w[2] += r["visits"]
                w[3] += r["entries"]
                w[4] += r["exits"]
                w[5] = max(w[5], r["max_depth_km"] or 0.0)
        got = {
            k: [r["time_s"], r["distance_km"], r["visits"], r["entries"], r["exits"], r["max_depth_km"] or 0.0]
            for k, r in _rows(acc, level).items()
        }
        assert set(got) == set(want)
        for k, w in want.items():
            assert got[k] == pytest.approx(w, rel=1e-9, abs=1e-6), k
    assert acc.events.num_rows == ref.events.num_rows
    tr = {r["track_id"]: r for r in acc.tracks.to_pylist()}
    assert sum(r["gaps"] for r in tr.values()) == ref.tracks.num_rows - ntr > 0
    for r in tr.values():
        assert r["observed_s"] + r["unobserved_s"] == pytest.approx(r["duration_s"])
        for level in ("country", "state"):
            tot = sum(x["time_s"] for x in _rows(acc, level).values() if x["track_id"] == r["track_id"])
            assert tot == pytest.approx(r["observed_s"], abs=1e-6)


def test_limits_per_track_per_fix_and_invalid() -> None:
    a = _track([0.2, 0.6, 1.4], [0.5] * 3, [0, 100, 1500], "a")
    b = _track([0.2, 0.6, 1.4], [0.5] * 3, [0, 100, 1500], "b")
    d = {k: np.r_[a[k], b[k]] for k in a}
    per_track = account_tracks(**d, territories=AB, max_gap_s=[300.0, 1800.0])
    per_fix = account_tracks(**d, territories=AB, max_gap_s=np.repeat([300.0, 1800.0], 3))
    for acc in (per_track, per_fix):
        tr = {r["track_id"]: r for r in acc.tracks.to_pylist()}
        assert (tr["a"]["gaps"], tr["b"]["gaps"]) == (1, 0)
        assert (tr["a"]["max_gap_s"], tr["b"]["max_gap_s"]) == (300.0, 1800.0)
    with pytest.raises(ValidationError, match="max_gap_s"):
        account_tracks(**d, territories=AB, max_gap_s=[1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValidationError, match="negative"):
        account_tracks(**d, territories=AB, max_gap_s=-1.0)


def test_uncovered_points_of_the_bundled_territories() -> None:
    t = load_territories()
    lon = np.array([-99.1, -95.0, -90.0, 2.35, 139.7, -40.0])
    lat = np.array([19.4, 29.7, 25.0, 48.85, 35.6, 30.0])
    # Mexico City, Houston, the Gulf of Mexico are covered; Paris, Tokyo and the mid-Atlantic are not.
    assert uncovered_points(t, lon, lat).tolist() == [False, False, False, True, True, True]


def _rows_for(ident: str, kind: str, t0: datetime, pts: list[tuple[float, float, float]]) -> list[dict[str, Any]]:
    return [
        {"obs_id": uuid.uuid4().bytes, "time": t0 + timedelta(seconds=s), "lon": x, "lat": y, "sensor": "ADSB",
         "kind": "aircraft", "ident": ident, "ident_kind": kind, "marking": "TLP:AMBER;ORIG:USA",
         "format": "test", "src_file": "t", "src_rec": i, "ingest_run": "t"}
        for i, (s, x, y) in enumerate(pts)
    ]  # fmt: skip


def test_account_warns_of_fixes_where_no_territory_is_loaded(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    rows = _rows_for("a1b2c3", "icao24", t0, [(0, -99.2, 19.4)])
    rows += _rows_for(
        "a1b2c3", "icao24", t0, [(10, -99.1, 19.45), (6 * 3600, -95.4, 29.7), (6 * 3600 + 10, -95.3, 29.7)]
    )
    rows += _rows_for("3c66b0", "icao24", t0, [(0, 2.30, 48.80), (10, 2.35, 48.85), (20, 2.40, 48.90)])
    rows += _rows_for("366999000", "mmsi", t0, [(0, -94.0, 27.0), (1200, -93.95, 27.0), (2400, -93.9, 27.0)])
    for r in rows[-3:]:
        r["kind"], r["sensor"] = "vessel", "AIS"
    days = np.array([(r["time"].date() - datetime(1970, 1, 1).date()).days for r in rows])
    w = Lake(workspace.lake_dir).writer(uuid.uuid4().hex)
    w.write(pa.Table.from_pylist(rows, schema=SCHEMA), days, "test")
    w.commit({"kind": "test"})
    store = KnowledgeStore.open(workspace.db_url)
    try:
        res = service.account(workspace, store)
    finally:
        store.close()
    assert res.unlabelled_points == 3
    tr = {r["track_id"]: r for r in res.accounting.tracks.to_pylist()}
    assert tr["a1b2c3"]["gaps"] == 1 and tr["a1b2c3"]["max_gap_s"] == MAX_GAP_S["aircraft"]
    assert tr["366999000"]["gaps"] == 0 and tr["366999000"]["max_gap_s"] == MAX_GAP_S["vessel"]
    main(["-q", "-w", str(workspace.root), "sovereignty", "account", "--json"])
    out, err = capsys.readouterr()
    assert json.loads(out)["unlabelled_points"] == 3
    assert "3 fix(es) lie outside the region the loaded territories cover" in err and "--territories" in err
