"""Identified tracks: shared ids, spoofed jumps, outliers, gaps, and run_tracks into the stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from atalaya.core.errors import ValidationError
from atalaya.core.workspace import init_workspace
from atalaya.fusion.tracks import POINTS_SCHEMA, build_identified_tracks, run_tracks, tracks_dir
from atalaya.store.knowledge import KnowledgeStore, schema

MIN = 60_000_000


def straight(n: int, lon0: float, lat0: float, dlon: float = 0.003, t0: int = 0) -> tuple[np.ndarray, ...]:
    """A vessel report per minute moving ~300 m/min eastwards."""
    return t0 + np.arange(n, dtype=np.int64) * MIN, lon0 + np.arange(n) * dlon, np.full(n, lat0)


def test_shared_id_makes_two_segments() -> None:
    ta, xa, ya = straight(20, -110.0, 24.0)
    tb, xb, yb = straight(20, -95.0, 20.0, t0=30_000_000)
    res = build_identified_tracks(ident=np.array(["366000001"] * 40), time_us=np.r_[ta, tb], lon=np.r_[xa, xb],
                                  lat=np.r_[ya, yb], kind=np.array(["vessel"] * 40))  # fmt: skip
    assert res.n_segments == 2
    assert len(set(res.segment[:20].tolist())) == 1 and len(set(res.segment[20:].tolist())) == 1
    assert res.segment[0] != res.segment[20]


def test_spoofed_jump_does_not_corrupt_the_track() -> None:
    t, x, y = straight(30, -110.0, 24.0)
    x = x.copy()
    x[10:14] = -100.0 + np.arange(4) * 0.003  # four spoofed positions 1,000 km away
    res = build_identified_tracks(ident=np.array(["a"] * 30), time_us=t, lon=x, lat=y, kind=np.array(["vessel"] * 30))
    real = np.r_[0:10, 14:30]
    assert len(set(res.segment[real].tolist())) == 1  # the real positions stay one segment
    assert res.segment[10] != res.segment[0] and len(set(res.segment[10:14].tolist())) == 1


def test_single_outlier_and_spike_are_dropped_and_shuffled_input_is_sorted() -> None:
    t, x, y = straight(12, -110.0, 24.0)
    y = y.copy()
    y[4] += 0.5  # 55 km off for one report
    perm = np.random.default_rng(0).permutation(12)
    res = build_identified_tracks(ident=np.array(["a"] * 12)[perm], time_us=t[perm], lon=x[perm], lat=y[perm],
                                  kind=np.array(["vessel"] * 12))  # fmt: skip
    seg = np.empty(12, dtype=np.int64)
    seg[perm] = res.segment
    assert seg[4] == -1 and res.outliers == 1
    assert len(set(np.delete(seg, 4).tolist())) == 1
    assert np.all(np.diff(t[perm][res.order]) > 0)


def test_gap_splits_and_kind_envelopes() -> None:
    t1, x1, y1 = straight(5, -110.0, 24.0)
    t2, x2, y2 = straight(5, -109.9, 24.0, t0=int(t1[-1]) + 4 * 3600 * 1_000_000)  # four hours later
    res = build_identified_tracks(ident=np.array(["a"] * 10), time_us=np.r_[t1, t2], lon=np.r_[x1, x2],
                                  lat=np.r_[y1, y2], kind=np.array(["vessel"] * 10))  # fmt: skip
    assert res.n_segments == 2
    # an aircraft at 200 m/s is fine, a vessel at 200 m/s is not
    t = np.arange(6, dtype=np.int64) * 10_000_000
    lon = -100.0 + np.arange(6) * 0.0195
    air = build_identified_tracks(ident=np.array(["x"] * 6), time_us=t, lon=lon, lat=np.zeros(6) + 20,
                                  kind=np.array(["aircraft"] * 6))  # fmt: skip
    boat = build_identified_tracks(ident=np.array(["x"] * 6), time_us=t, lon=lon, lat=np.zeros(6) + 20,
                                   kind=np.array(["vessel"] * 6))  # fmt: skip
    assert air.n_segments == 1 and boat.n_segments == 0


def test_exact_duplicates_and_empty_and_bad_input() -> None:
    t, x, y = straight(4, -110.0, 24.0)
    res = build_identified_tracks(ident=np.array(["a"] * 5), time_us=np.r_[t, t[1]], lon=np.r_[x, x[1]],
                                  lat=np.r_[y, y[1]])  # fmt: skip
    assert res.duplicates == 1 and (res.segment >= 0).sum() == 4
    e = build_identified_tracks(ident=np.zeros(0, dtype=str), time_us=t[:0], lon=x[:0], lat=y[:0])
    assert e.n_segments == 0 and e.order.size == 0
    with pytest.raises(ValidationError):
        build_identified_tracks(ident=np.array(["a"]), time_us=t, lon=x, lat=y)


def test_run_tracks_writes_points_and_summaries(tmp_path: Path) -> None:
    from atalaya.ingest.pipeline import ingest_paths

    ws = init_workspace(tmp_path / "ws", party="USA")
    cols = "time,lon,lat,alt_m,pos_err_m,sensor,kind,ident,ident_kind"
    lines = [cols]
    base = np.datetime64("2026-03-02T00:00:00")
    for k in range(30):  # one AIS vessel, a report a minute
        ts = str(base + np.timedelta64(60 * k, "s")) + "Z"
        lines.append(f"{ts},{-110 + 0.003 * k:.6f},24.0,,10,AIS,vessel,366000001,mmsi")
    for k in range(10):  # one aircraft descending with ADS-B, a report a minute
        ts = str(base + np.timedelta64(60 * k, "s")) + "Z"
        lines.append(f"{ts},{-108 + 0.04 * k:.6f},26.0,{2000 - 100 * k},30,ADSB,aircraft,0d0001,icao24")
    for k in range(15):  # one GMTI target every 20 s, ~12 m/s
        ts = str(base + np.timedelta64(20 * k, "s")) + "Z"
        lines.append(f"{ts},{-107 + 0.0024 * k:.6f},25.0,,30,GMTI,vehicle,,")
    src = tmp_path / "obs.csv"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ingest_paths(ws, [src])
    store = KnowledgeStore.open(ws.db_url)
    summary = run_tracks(ws, store)
    assert summary["families"]["identified"]["tracks"] == 2
    assert summary["families"]["unidentified-GMTI"]["tracks"] == 1
    pts = pq.read_table(tracks_dir(ws) / "identified.parquet")
    assert pts.schema.equals(POINTS_SCHEMA) and pts.num_rows == 40
    # the aircraft's reported altitude travels with its points; the vessel has none
    air = pts.filter(pc.is_valid(pts.column("alt_m"))).sort_by("time")
    assert air.column("alt_m").to_pylist() == [2000.0 - 100 * k for k in range(10)]
    assert len(air.column("track_id").unique()) == 1
    assert pts.column("alt_m").null_count == 30
    with store.engine.connect() as conn:
        rows = conn.execute(select(schema.tracks)).mappings().all()
    ids = {r["id"] for r in rows}
    assert len(rows) == 3 and all(r["geometry"].startswith('{"type":"LineString"') for r in rows)
    ident = next(r for r in rows if r["ident"] == "366000001")
    assert ident["n_points"] == 30 and ident["provenance"]["n_support"] == 30
    assert len(ident["provenance"]["observations"]) == 5 and ident["length_km"] == pytest.approx(8.87, rel=0.02)
    again = run_tracks(ws, store)  # stable ids: re-running updates the same rows
    assert again["tracks"] == 3
    with store.engine.connect() as conn:
        assert {r.id for r in conn.execute(select(schema.tracks.c.id))} == ids
    store.close()


def test_two_objects_on_one_id_at_the_same_times_track_alike_in_any_row_order() -> None:
    # two aircraft squawk one ICAO24, report at the same seconds and cross paths 50 m apart: the tracks must not
    # depend on the order the rows came in (a lake scan's order varies), nor on the other ids tracked beside them
    n = 60
    t = np.arange(n, dtype=np.int64) * 10_000_000
    k = np.arange(n) - n // 2
    step = 600.0 / 111_000  # 60 m/s, a report every 10 s
    xa, ya = -106.0 + k * step / np.cos(np.radians(25.0)), np.full(n, 25.0)
    xb, yb = np.full(n, -105.9995), 25.0 + k * step
    tt, xx, yy = np.r_[t, t], np.r_[xa, xb], np.r_[ya, yb]
    ident, kind = np.array(["0d0001"] * 2 * n), np.array(["aircraft"] * 2 * n)
    other_t, other_x, other_y = straight(25, -110.0, 24.0)
    results = set()
    for seed in range(8):
        perm = np.random.default_rng(seed).permutation(2 * n)
        res = build_identified_tracks(
            ident=np.r_[ident[perm], np.array(["366000001"] * 25)], time_us=np.r_[tt[perm], other_t],
            lon=np.r_[xx[perm], other_x], lat=np.r_[yy[perm], other_y],
            kind=np.r_[kind[perm], np.array(["vessel"] * 25)],
        )  # fmt: skip
        seg = np.empty(2 * n, dtype=np.int64)
        seg[perm] = res.segment[: 2 * n]
        results.add(frozenset(frozenset(np.flatnonzero(seg == s).tolist()) for s in set(seg.tolist())))
    assert len(results) == 1


def test_run_tracks_in_buckets_of_ids_gives_the_same_tracks(tmp_path: Path) -> None:
    from atalaya.ingest.pipeline import ingest_paths

    cols = "time,lon,lat,alt_m,pos_err_m,sensor,kind,ident,ident_kind"
    lines = [cols]
    base = np.datetime64("2026-03-02T00:00:00")
    rng = np.random.default_rng(7)
    for v in range(12):  # twelve vessels, one of them reporting two positions at once (a shared MMSI)
        lon0, lat0 = -112 + rng.uniform(0, 4), 22 + rng.uniform(0, 4)
        for k in range(30):
            ts = str(base + np.timedelta64(60 * k + v, "s")) + "Z"
            lines.append(f"{ts},{lon0 + 0.003 * k:.6f},{lat0:.6f},,10,AIS,vessel,3660000{v:02d},mmsi")
            if v == 0:
                lines.append(f"{ts},{lon0 + 0.5 + 0.003 * k:.6f},{lat0:.6f},,10,AIS,vessel,3660000{v:02d},mmsi")
    src = tmp_path / "obs.csv"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = {}
    for name, bucket_rows in (("one", 10**9), ("buckets", 50)):
        ws = init_workspace(tmp_path / name, party="USA")
        ingest_paths(ws, [src])
        store = KnowledgeStore.open(ws.db_url)
        summary = run_tracks(ws, store, bucket_rows=bucket_rows)
        with store.engine.connect() as conn:
            rows = sorted(conn.execute(select(schema.tracks.c.id, schema.tracks.c.n_points)).all())
        store.close()
        pts = pq.read_table(tracks_dir(ws) / "identified.parquet").sort_by([("track_id", "ascending"),
                                                                            ("time", "ascending")])  # fmt: skip
        out[name] = (summary["families"]["identified"], rows, pts)
    assert out["one"][0] == out["buckets"][0] and out["one"][0]["tracks"] == 13
    assert out["one"][1] == out["buckets"][1]
    assert out["one"][2].equals(out["buckets"][2])


def test_a_track_takes_the_combination_of_its_reports_markings(tmp_path: Path) -> None:
    from atalaya.core.markings import Marking
    from atalaya.ingest.pipeline import ingest_paths

    ws = init_workspace(tmp_path / "ws", party="USA")
    strict = "TLP:AMBER+STRICT;REL:MEX,USA;ORIG:USA"
    green = "TLP:GREEN;REL:GTM,USA;ORIG:USA"
    base = np.datetime64("2026-03-02T00:00:00")
    for part, marking in enumerate((strict, green)):  # one vessel and one GMTI target, reported half by each
        lines = ["time,lon,lat,pos_err_m,sensor,kind,ident,ident_kind"]
        for k in range(part, 30, 2):
            ts = str(base + np.timedelta64(60 * k, "s")) + "Z"
            lines.append(f"{ts},{-110 + 0.003 * k:.6f},24.0,10,AIS,vessel,366000001,mmsi")
        for k in range(part, 16, 2):
            ts = str(base + np.timedelta64(20 * k, "s")) + "Z"
            lines.append(f"{ts},{-107 + 0.0024 * k:.6f},25.0,30,GMTI,vehicle,,")
        src = tmp_path / f"obs{part}.csv"
        src.write_text("\n".join(lines) + "\n", encoding="utf-8")
        ingest_paths(ws, [src], marking=Marking.from_text(marking))
    store = KnowledgeStore.open(ws.db_url)
    run_tracks(ws, store)
    with store.engine.connect() as conn:
        rows = conn.execute(select(schema.tracks.c.ident_kind, schema.tracks.c.marking)).all()
    # AMBER+STRICT and GREEN reports make an AMBER+STRICT track, releasable where both are: never a downgrade
    assert sorted((r[0] or "", r[1]) for r in rows) == [("", "TLP:AMBER+STRICT;REL:USA;ORIG:USA"),
                                                        ("mmsi", "TLP:AMBER+STRICT;REL:USA;ORIG:USA")]  # fmt: skip
