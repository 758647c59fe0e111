"""Identified tracks on the patterns of real ADS-B captures: stale repeats, receiver gaps, a circling military
aircraft, a GNSS-spoofed airliner jumping hundreds of kilometres and back, and the events and exports they make.

The fixtures rebuild what real receiver captures showed: a position reported every second but updated only every
few seconds (the decoder holds the last fix), gaps of minutes where the receiver lost the aircraft, and spoofed
positions 260 km and 563 km from the real one reported one second after a good position.
"""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import shapely
from shapely.geometry import LineString, Point, shape

from atalaya.core.workspace import init_workspace
from atalaya.fusion.jumps import EVENTS_SCHEMA, events_dir, mark_stale
from atalaya.fusion.tracks import POINTS_SCHEMA, IdentifiedTracks, build_identified_tracks, run_tracks, tracks_dir
from atalaya.share.exports import export
from atalaya.store.knowledge import KnowledgeStore

S = 1_000_000
R = 6_371_008.8
M_PER_DEG = R * np.pi / 180.0


def held_reports(
    fix_t: np.ndarray, fix_x: np.ndarray, fix_y: np.ndarray, report_t: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Each report carries the latest fix at or before its time (a decoder holding its last position), rounded to
    five decimals as SBS/readsb write it."""
    k = np.searchsorted(fix_t, report_t, side="right") - 1
    ok = k >= 0
    return report_t[ok], np.round(fix_x[k[ok]], 5), np.round(fix_y[k[ok]], 5)


def circling_military(rng: np.random.Generator, t0: int = 0) -> tuple[np.ndarray, ...]:
    """A military aircraft orbiting (12 km radius, 140 m/s) for an hour: fixes every 1-7 s, a report every second,
    two receiver gaps (3 and 7 minutes)."""
    dur = 3600
    fix_t = np.cumsum(rng.integers(1, 8, size=dur)).astype(np.int64)
    fix_t = fix_t[fix_t < dur]
    ang = fix_t * (140.0 / 12_000.0)
    x = -105.0 + 12_000.0 * np.cos(ang) / (M_PER_DEG * np.cos(np.radians(24.0)))
    y = 24.0 + 12_000.0 * np.sin(ang) / M_PER_DEG
    rep = np.arange(dur, dtype=np.int64)
    rep = rep[~(((rep >= 600) & (rep < 780)) | ((rep >= 1500) & (rep < 1920)))]
    t, x, y = held_reports(fix_t, x, y, rep)
    return t0 + t * S, x, y


def spoofed_airliner(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """An airliner cruising east at 240 m/s for 80 minutes, fixes every 1-3 s, a report every second; one report
    260 km north of it at t=1200 s (back the next second) and, at t=3000 s, 40 s of reports from a place 563 km
    south-west (one spoofed position held, then drifting) before the real positions come back."""
    dur = 4800
    fix_t = np.cumsum(rng.integers(1, 4, size=dur)).astype(np.int64)
    fix_t = fix_t[fix_t < dur]
    x0 = 5.0 + fix_t * 240.0 / (M_PER_DEG * np.cos(np.radians(47.0)))
    t, x, y = held_reports(fix_t, x0, np.full(fix_t.size, 47.0), np.arange(dur, dtype=np.int64))
    x, y = x.copy(), y.copy()
    a = int(np.searchsorted(t, 1200))
    y[a] = y[a - 1] + 260_000.0 / M_PER_DEG  # one report 260 km due north
    x[a] = x[a - 1]
    b = int(np.searchsorted(t, 3000))
    dy = -563_000.0 / M_PER_DEG  # 563 km due south, then a slow drift
    x[b : b + 40] = x[b - 1]
    y[b : b + 40] = y[b - 1] + dy + np.r_[np.zeros(20), np.arange(20) * 0.0003]
    return t * S, x, y, {"bad_decode": a, "spoof": b}


def intervals_overlap(res: IdentifiedTracks, ident: np.ndarray, t: np.ndarray) -> bool:
    """Whether two tracks of one ident overlap in time."""
    segs = np.unique(res.segment[res.segment >= 0])
    spans = []
    for s in segs.tolist():
        rows = np.flatnonzero(res.segment == s)
        spans.append((str(ident[rows[0]]), int(t[rows].min()), int(t[rows].max())))
    spans.sort()
    return any(p[0] == q[0] and q[1] <= p[2] for p, q in itertools.pairwise(spans))


def test_stale_repeats_point_at_their_fix_even_after_a_newer_one() -> None:
    c = np.zeros(6, dtype=np.int64)
    x = np.array([0.0, 0.0, 0.001, 0.0, 0.001, 0.002])  # A A B A(zig-zag) B C
    stale, src = mark_stale(c, np.arange(6, dtype=np.int64), x, np.zeros(6))
    assert stale.tolist() == [False, True, False, True, True, False]
    assert src.tolist() == [0, 0, 2, 0, 2, 5]
    # the same position under another ident, or at the same time, is not a repeat
    stale2, _ = mark_stale(np.array([0, 1]), np.array([0, 1]), np.zeros(2), np.zeros(2))
    assert not stale2.any()


def test_circling_military_aircraft_with_stale_repeats_and_receiver_gaps_is_one_track() -> None:
    t, x, y = circling_military(np.random.default_rng(3))
    ident = np.array(["ae1234"] * t.size)
    res = build_identified_tracks(ident=ident, time_us=t, lon=x, lat=y, kind=np.array(["aircraft"] * t.size))
    assert res.n_segments == 1
    assert (res.segment >= 0).all()  # every report kept, the stale ones flagged
    assert res.n_stale == int(res.stale.sum()) and res.n_stale > t.size // 3
    assert len(res.jumps) == 0
    # the fixes alone (what the tracker uses) move at the aircraft's 140 m/s, where all the reports would show it
    # standing still and then leaping (only a fix first heard late, after a receiver gap, is off)
    fx = res.order[~res.stale[res.order]]
    d = np.hypot(np.diff(x[fx]) * np.cos(np.radians(24.0)), np.diff(y[fx])) * M_PER_DEG
    v = d / (np.diff(t[fx]) / S)
    assert np.mean(np.abs(v - 140.0) < 5.0) > 0.98
    d_all = np.hypot(np.diff(x) * np.cos(np.radians(24.0)), np.diff(y)) * M_PER_DEG
    assert np.mean(np.abs(d_all / (np.diff(t) / S) - 140.0) < 5.0) < 0.5


def test_spoofed_airliner_is_one_track_with_its_jumps_as_events() -> None:
    t, x, y, at = spoofed_airliner(np.random.default_rng(5))
    n = t.size
    ident = np.array(["4ca123"] * n)
    res = build_identified_tracks(ident=ident, time_us=t, lon=x, lat=y, kind=np.array(["aircraft"] * n))
    assert res.n_segments == 1 and not intervals_overlap(res, ident, t)
    spoofed = np.r_[at["bad_decode"], at["spoof"] : at["spoof"] + 40]
    assert (res.segment[spoofed] == -1).all()  # the spoofed reports stay out of the real track
    real = np.setdiff1d(np.arange(n), spoofed)
    assert (res.segment[real] == 0).all()
    j = res.jumps
    assert len(j) == 2
    fr, to = res.jump_rows[j.from_row], res.jump_rows[j.to_row]
    assert to.tolist() == [at["bad_decode"], at["spoof"]]
    # from the last good fix (reported again up to the second before the jump)
    assert x[fr].tolist() == x[to - 1].tolist() and y[fr].tolist() == y[to - 1].tolist()
    assert ((t[to] - j.from_us) == S).all()
    assert j.distance_m / 1000.0 == pytest.approx([260.0, 563.0], rel=0.005)
    assert (j.speed_mps > 50_000.0).all()  # hundreds of km in a second or two: far beyond Mach 1.5
    assert (j.back_row >= 0).all()  # both came back to the real path
    assert j.n_points.tolist()[0] == 1 and j.n_points.tolist()[1] >= 2
    assert int(j.end_us[1] - t[at["spoof"]]) == 39 * S


def test_a_jump_that_never_returns_continues_as_a_second_track_with_an_event() -> None:
    t, x, y, _ = spoofed_airliner(np.random.default_rng(6))
    keep = t < 1100 * S
    t, x, y = t[keep], x[keep].copy(), y[keep].copy()
    x[600:] += 300_000.0 / (M_PER_DEG * np.cos(np.radians(47.0)))  # from report 600 on, 300 km further east
    ident = np.array(["4ca999"] * t.size)
    res = build_identified_tracks(ident=ident, time_us=t, lon=x, lat=y, kind=np.array(["aircraft"] * t.size))
    assert res.n_segments == 2 and not intervals_overlap(res, ident, t)
    assert len(res.jumps) == 1 and int(res.jumps.back_row[0]) == -1
    assert res.jumps.distance_m[0] / 1000.0 == pytest.approx(300.0, rel=0.01)


def test_gps_jitter_and_slow_outliers_make_no_events() -> None:
    rng = np.random.default_rng(8)
    n = 600
    t = np.arange(n, dtype=np.int64) * 5 * S
    x = -100.0 + np.arange(n) * 0.01 + rng.normal(0, 0.0004, n)  # ~200 m/s with 40 m of jitter
    y = np.full(n, 30.0) + rng.normal(0, 0.0004, n)
    y[300] += 0.012  # one report 1.3 km off: an outlier, too short to be a jump
    res = build_identified_tracks(ident=np.array(["a1"] * n), time_us=t, lon=x, lat=y,
                                  kind=np.array(["aircraft"] * n))  # fmt: skip
    assert res.n_segments == 1 and len(res.jumps) == 0


def test_supersonic_military_aircraft_is_not_split() -> None:
    n = 300
    t = np.arange(n, dtype=np.int64) * 2 * S
    x = -100.0 + np.arange(n) * 2 * 450.0 / (M_PER_DEG * np.cos(np.radians(30.0)))  # 450 m/s, Mach 1.3
    res = build_identified_tracks(ident=np.array(["ae0001"] * n), time_us=t, lon=x, lat=np.full(n, 30.0),
                                  kind=np.array(["aircraft"] * n))  # fmt: skip
    assert res.n_segments == 1 and len(res.jumps) == 0


def _csv(path: Path, rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, str]]) -> Path:
    base = np.datetime64("2026-03-02T00:00:00", "us")
    lines = ["time,lon,lat,alt_m,pos_err_m,sensor,kind,ident,ident_kind"]
    for t, x, y, ident in rows:
        times = np.datetime_as_string(base + t.astype("timedelta64[us]"), unit="s")
        lines += [
            f"{ts}Z,{a:.5f},{b:.5f},10000,,ADSB,aircraft,{ident},icao24" for ts, a, b in zip(times, x, y, strict=True)
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.xdist_group("workspace")
def test_run_tracks_stores_jump_events_and_every_export_geometry_is_valid(tmp_path: Path) -> None:
    from atalaya.ingest.pipeline import ingest_paths

    ws = init_workspace(tmp_path / "ws", party="USA")
    t1, x1, y1, _ = spoofed_airliner(np.random.default_rng(5))
    t2, x2, y2 = circling_military(np.random.default_rng(3), t0=0)
    t3 = np.arange(120, dtype=np.int64) * S  # a parked aircraft: one position reported for two minutes
    x3, y3 = np.full(120, -99.5), np.full(120, 19.4)
    ingest_paths(ws, [_csv(tmp_path / "obs.csv", [(t1, x1, y1, "4ca123"), (t2, x2, y2, "ae1234"),
                                                  (t3, x3, y3, "0d0abc")])])  # fmt: skip
    store = KnowledgeStore.open(ws.db_url)
    try:
        summary = run_tracks(ws, store)
        fam = summary["families"]["identified"]
        assert fam["tracks"] == 3 and summary["position_jumps"] == 2
        ev = pq.read_table(events_dir(ws) / "position_jumps.parquet")
        assert ev.schema.remove_metadata().equals(EVENTS_SCHEMA)
        assert ev.column("cause").to_pylist() == ["bad_decode", "spoofing_suspected"]
        assert ev.column("distance_km").to_pylist() == pytest.approx([260.0, 563.0], rel=0.005)
        assert ev.column("ident").to_pylist() == ["4ca123", "4ca123"] and all(ev.column("returned").to_pylist())
        assert ev.column("track_id").to_pylist()[0] == ev.column("track_id").to_pylist()[1] is not None
        pts = pq.read_table(tracks_dir(ws) / "identified.parquet")
        assert pts.schema.equals(POINTS_SCHEMA)
        assert pc.sum(pts.column("stale")).as_py() > 0
        for fmt in ("geojson", "kml"):
            out = tmp_path / f"tracks.{fmt}"
            export(ws, store, kind="tracks", fmt=fmt, out=out)
            geoms = _geojson_geometries(out) if fmt == "geojson" else _kml_geometries(out)
            assert len(geoms) == 3
            assert all(shapely.is_valid(g) for g in geoms), fmt
            assert sorted(g.geom_type for g in geoms) == ["LineString", "LineString", "Point"]
    finally:
        store.close()


def _geojson_geometries(path: Path) -> list[shapely.Geometry]:
    return [shape(f["geometry"]) for f in json.loads(path.read_text(encoding="utf-8"))["features"]]


def _kml_geometries(path: Path) -> list[shapely.Geometry]:
    ns = {"k": "http://www.opengis.net/kml/2.2"}
    out: list[shapely.Geometry] = []
    for pm in ET.parse(path).getroot().iterfind(".//k:Placemark", ns):
        for tag, make in (("Point", Point), ("LineString", LineString)):
            node = pm.find(f"k:{tag}/k:coordinates", ns)
            if node is not None and node.text:
                coords = [tuple(float(v) for v in c.split(",")[:2]) for c in node.text.split()]
                out.append(make(coords[0]) if tag == "Point" else make(coords))
    return out
