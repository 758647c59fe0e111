"""Event scores: keyed matching with time/distance tolerance, cell IoU, crossing matching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from atalaya.core.errors import ValidationError
from atalaya.core.workspace import Workspace
from atalaya.evaluate.events import cell_iou, match_crossings, match_events, score_dark_gaps, score_rendezvous
from atalaya.store.knowledge import KnowledgeStore


def test_match_is_one_to_one_and_closest_in_time_first() -> None:
    m = match_events(pred_key=["a", "a"], pred_start=[0, 1000], pred_end=[100, 1100], true_key=["a"],
                     true_start=[990], true_end=[1090], time_tol_s=2000)  # fmt: skip
    assert m.pred_index.tolist() == [1] and m.tp == 1 and m.fp == 1
    assert m.precision == 0.5 and m.recall == 1.0


def test_time_and_distance_tolerances_bind() -> None:
    kw = {"pred_key": ["a"], "pred_start": [0], "pred_end": [100], "true_key": ["a"], "true_end": [400]}
    assert match_events(**kw, true_start=[300], time_tol_s=100).tp == 0
    assert match_events(**kw, true_start=[150], time_tol_s=100).tp == 1
    pos = {"pred_lon": [0.0], "pred_lat": [0.0], "true_lon": [0.0], "true_lat": [0.1]}
    assert match_events(**kw, true_start=[50], time_tol_s=0, **pos, dist_tol_m=5_000).tp == 0
    assert match_events(**kw, true_start=[50], time_tol_s=0, **pos, dist_tol_m=20_000).tp == 1
    with pytest.raises(ValidationError, match="dist_tol_m"):
        match_events(**kw, true_start=[50], time_tol_s=0, **pos)


def test_pair_keys_match_on_either_vessel_and_missing_keys_never_match() -> None:
    m = match_events(pred_key=[["x", None], ["", ""]], pred_start=[0, 0], pred_end=[10, 10],
                     true_key=[["y", "x"]], true_start=[0], true_end=[10], time_tol_s=0)  # fmt: skip
    assert m.pred_index.tolist() == [0]
    with pytest.raises(ValidationError, match="rows"):
        match_events(pred_key=["a"], pred_start=[0, 1], pred_end=[1, 2], true_key=[], true_start=[], true_end=[],
                     time_tol_s=0)  # fmt: skip


def test_scenario_tables_are_scored() -> None:
    us = 1_000_000
    pred = pa.table({"vessel": ["111", "222"], "start_us": [0, 0], "end_us": [3600 * us, 3600 * us]})
    truth = pa.table({"mmsi": [111], "start": pa.array([60 * us], pa.timestamp("us", tz="UTC")),
                      "end": pa.array([3500 * us], pa.timestamp("us", tz="UTC"))})  # fmt: skip
    m = score_dark_gaps(pred, truth)
    assert (m.tp, m.fp, m.fn) == (1, 1, 0)
    ts = pa.timestamp("us", tz="UTC")
    rp = pa.table(
        {
            "vessel_a": pa.array(["1"], pa.string()),
            "vessel_b": pa.array([None], pa.string()),
            "start_us": [0],
            "end_us": [3600 * us],
            "lon": [-94.0],
            "lat": [23.0],
        }
    )
    rt = pa.table(
        {
            "mmsi_a": [2],
            "mmsi_b": [1],
            "start": pa.array([1800 * us], ts),
            "end": pa.array([7200 * us], ts),
            "lon": [-94.01],
            "lat": [23.0],
        }
    )
    assert score_rendezvous(rp, rt).tp == 1


def test_cell_iou_and_crossings() -> None:
    assert cell_iou(np.array([1, 2, 2]), np.array([2])) == 0.5
    assert cell_iou([], [5]) == 0.0
    m = match_crossings([-106.45, -106.45], [31.76, 31.76], [0, 10_000], [-106.46], [31.76], [9_000], time_s=1800)
    assert m.pred_index.tolist() == [1] and m.recall == 1.0


def test_observable_crossings_need_a_sighting_on_each_side() -> None:
    from atalaya.evaluate.events import observable_crossings

    us = 1_000_000
    x = pa.table({"object_id": ["a", "b", "c", "d"], "time": pa.array([3600 * us] * 4, pa.int64()),
                  "lon": [-106.45] * 4, "lat": [31.76] * 4})  # fmt: skip
    o = pa.table(
        {
            # a: seen 5 min before (south) and 5 min after (north); b: only before; c: after but 20 km away;
            # d: seen exactly at the crossing (counts for both sides)
            "object_id": ["a", "a", "b", "c", "c", "d"],
            "time_s": [3300.0, 3900.0, 3300.0, 3300.0, 3900.0, 3600.0],
            "lon": [-106.45] * 6,
            "lat": [31.74, 31.78, 31.74, 31.74, 31.94, 31.76],
        }
    )
    assert observable_crossings(x, o).tolist() == [True, False, False, True]
    assert observable_crossings(x, o, window_s=200.0).tolist() == [False, False, False, True]
    assert observable_crossings(x.slice(0, 0), o).size == 0


def test_corridor_truth_is_the_tracks_own_objects_over_their_spans() -> None:
    from atalaya.evaluate.events import score_corridors, track_true_paths
    from atalaya.fusion.corridors import corridor_flows

    # three identified trucks share a road (a corridor); eight id-less tracks of other traffic share another road.
    # The truth of every track is its own object's path: scoring the id-less tracks against the identified
    # objects only (the old comparison) would call the second road a false corridor.
    n = 40
    lon = np.linspace(-100.0, -99.0, n)
    rows = []
    for k in range(3):
        rows += [(f"trk-{k}", f"obj-{k}", i * 60_000_000, lon[i], 20.0) for i in range(n)]
    for k in range(8):
        rows += [(f"gmti-{k}", f"bg-{k}", i * 60_000_000, lon[i], 21.0) for i in range(2 * k, 2 * k + 12)]
    tid, obj, t, x, y = (np.array(c) for c in zip(*rows, strict=True))
    # truth: dense paths over the whole day (the id-less objects are seen for twelve minutes only)
    g_obj = np.repeat(np.unique(obj), 4 * n)
    g_t = np.tile(np.arange(4 * n) * 15_000_000, np.unique(obj).size)
    g_x = np.tile(np.linspace(-100.0, -99.0, 4 * n), np.unique(obj).size)
    g_y = np.where(np.char.startswith(g_obj.astype(str), "bg"), 21.0, 20.0)
    pts = pa.table({"track_id": tid, "kind": ["vehicle"] * tid.size, "time_us": t, "lon": x, "lat": y})
    truth = pa.table({"object_id": g_obj, "trip_id": np.char.add(g_obj.astype(str), "-d0"),
                      "kind": ["vehicle"] * g_obj.size, "time": g_t, "lon": g_x, "lat": g_y})  # fmt: skip
    att = pa.table({"track_id": tid, "object_id": np.char.add(obj.astype(str), "-d0"), "time_us": t})
    assert score_corridors(pts, truth, att)["vehicle"] >= 0.8
    # each id-less track gets its twelve minutes of its object's truth, not the whole day
    g_trip = np.char.add(g_obj.astype(str), "-d0")
    p_tid, _, p_t, _, _ = track_true_paths(tid, tid, att.column("object_id"), t, g_trip, g_obj, g_t, g_x, g_y)
    assert p_t[p_tid == "gmti-1"].min() == 2 * 60_000_000 and p_t[p_tid == "gmti-1"].max() == 13 * 60_000_000
    # the old comparison: all tracks against the identified objects' paths only
    ident = np.char.startswith(g_obj.astype(str), "obj")
    old_t = corridor_flows(g_obj[ident], g_t[ident], g_x[ident], g_y[ident]).cells
    old_p = corridor_flows(tid, t, x, y).cells
    from atalaya.evaluate.events import cell_iou

    sel = lambda c: c.filter(pa.compute.greater_equal(c.column("corridor"), 0)).column("cell").to_numpy()  # noqa: E731
    assert cell_iou(sel(old_p), sel(old_t)) < 0.7


def test_corridor_truth_leaves_out_a_concurrent_flight_of_the_same_aircraft() -> None:
    from atalaya.evaluate.events import score_corridors, track_true_paths

    # four aircraft each fly two flights at once under one object and ICAO address (the scenario does this);
    # their tracks follow the southern flights only, so the northern ones are no part of the truth
    minute, n = 60_000_000, 61
    g = [(f"acft-{k}", f"acft-{k}-000-{f}", i * minute // 4, -110.0 + 2.0 * i / (4 * n - 4), 30.0 + 3.0 * f)
         for k in range(4) for f in range(2) for i in range(4 * n - 3)]  # fmt: skip
    g_obj, g_trip, g_t, g_x, g_y = (np.array(c) for c in zip(*g, strict=True))
    rows = [(f"trk-{k}", f"acft-{k}-000-0", i * minute, -110.0 + 2.0 * i / (n - 1), 30.0) for k in range(4)
            for i in range(n)]  # fmt: skip
    tid, trip, t, x, y = (np.array(c) for c in zip(*rows, strict=True))
    p_tid, path, p_t, _, p_y = track_true_paths(tid, tid, trip, t, g_trip, g_obj, g_t, g_x, g_y)
    assert set(p_tid.tolist()) == {f"trk-{k}" for k in range(4)} and np.all(p_y == 30.0)
    assert np.unique(path).size == 4 and p_t[p_tid == "trk-0"].max() == (n - 1) * minute
    pts = pa.table({"track_id": tid, "kind": ["aircraft"] * tid.size, "time_us": t, "lon": x, "lat": y})
    truth = pa.table({"object_id": g_obj, "trip_id": g_trip, "kind": ["aircraft"] * g_obj.size, "time": g_t,
                      "lon": g_x, "lat": g_y})  # fmt: skip
    att = pa.table({"track_id": tid, "object_id": trip, "time_us": t})
    assert score_corridors(pts, truth, att)["aircraft"] >= 0.9
    # the object's path over the span (both flights under one id) scores the tracks against the northern flights
    # and the jumps between the two
    by_object = truth.set_column(1, "trip_id", truth.column("object_id"))
    att_object = att.set_column(1, "object_id", pa.array(np.char.rpartition(trip.astype(str), "-000-")[:, 0]))
    assert score_corridors(pts, by_object, att_object)["aircraft"] < 0.5


def test_corridor_truth_follows_a_vessel_across_its_daily_trips() -> None:
    from atalaya.evaluate.events import track_true_paths

    # a vessel gets a new trip every day; its track runs from 20:00 on day 0 to 06:00 on day 1
    hour, day = 3_600_000_000, 86_400_000_000
    g_t = np.arange(0, 12 * day, 120_000_000)
    g_trip = np.char.add("v1-d", (g_t // day).astype(str))
    g_x = -90.0 + g_t / (12 * day)
    t = np.arange(20 * hour, day + 6 * hour + 1, 300_000_000)
    trip = np.char.add("v1-d", (t // day).astype(str))
    trip[5] = "v2-d0"  # one report mis-associated with another vessel: under 10 % and 20 reports
    g_trip, g_x = np.r_[g_trip, ["v2-d0"] * 10], np.r_[g_x, [-80.0] * 10]
    g_obj = np.char.partition(g_trip, "-")[:, 0]
    g_t = np.r_[g_t, np.arange(10) * day // 10]
    tid = np.full(t.size, "trk")
    _, path, p_t, p_x, _ = track_true_paths(tid, tid, trip, t, g_trip, g_obj, g_t, g_x, np.zeros(g_x.size))
    assert p_t.min() == 20 * hour and p_t.max() == day + 6 * hour and np.all(p_x < -85.0)
    assert np.all(np.diff(p_t) == 120_000_000) and np.unique(path).size == 1  # both days, one path
    # tracked for twelve days, a day is 8 % of the reports: its count (over 20) keeps it
    t = np.arange(0, 12 * day - 1, 600_000_000)
    tid, trip = np.full(t.size, "trk"), np.char.add("v1-d", (t // day).astype(str))
    _, path, p_t, _, _ = track_true_paths(tid, tid, trip, t, g_trip, g_obj, g_t, g_x, np.zeros(g_x.size))
    assert np.unique(p_t // day).size == 12 and np.unique(path).size == 1


def test_true_path_crossings_in_buckets_of_trips(demo_scenario: Path) -> None:
    # a long scenario's truth (tens of millions of samples) is crossed with the border a bucket of whole trips
    # at a time: the crossings, and their order, are those of one call over every true sample
    import pyarrow.parquet as pq

    from atalaya.evaluate.events import true_path_crossings
    from atalaya.fusion.corridors import TRACK_KINDS, border_crossings

    files = sorted(str(p) for p in (demo_scenario / "truth" / "tracks").glob("*.parquet"))
    tr = pa.concat_tables([pq.read_table(f, columns=["trip_id", "kind", "time", "lon", "lat"]) for f in files])
    tr = tr.filter(pc.is_in(tr.column("kind").cast(pa.string()), pa.array(list(TRACK_KINDS))))
    once = border_crossings(tr.column("trip_id"), tr.column("time").cast(pa.int64()).to_numpy(),
                            tr.column("lon").to_numpy(), tr.column("lat").to_numpy())  # fmt: skip
    parts = true_path_crossings(files, bucket_rows=tr.num_rows // 7)
    assert once.num_rows > 10 and len(set(once.column("track").to_pylist())) > 5
    assert parts.to_pylist() == once.to_pylist()
    assert true_path_crossings([]).num_rows == 0


def test_corridor_scoring_in_buckets_of_tracks(demo_workspace: Workspace, demo_scenario: Path) -> None:
    # a long period's tracks are scored a bucket of whole tracks at a time: the corridor cells on either side
    # (observed tracks, their true paths) are those of one pass over all of them
    import pyarrow.parquet as pq

    from atalaya.evaluate.events import corridor_cells, track_objects
    from atalaya.fusion.corridors import CorridorParams, load_track_points
    from atalaya.fusion.tracks import run_tracks

    store = KnowledgeStore.open(demo_workspace.db_url)
    try:
        run_tracks(demo_workspace, store)
    finally:
        store.close()
    pts = load_track_points(demo_workspace)
    att = track_objects(demo_workspace, demo_scenario / "truth")
    names = ["object_id", "trip_id", "kind"]
    truth = pa.concat_tables([pq.read_table(f, columns=[*names, "time", "lon", "lat"], read_dictionary=names)
                              for f in sorted((demo_scenario / "truth" / "tracks").glob("*.parquet"))])  # fmt: skip
    cp = CorridorParams(min_tracks=2)  # the demo's two days have no lane used by three tracks
    whole = corridor_cells(pts, truth, att, params=cp)
    parts = corridor_cells(pts, truth, att, bucket_rows=5_000, params=cp)
    assert set(whole) == {"vehicle", "vessel", "aircraft"}
    assert sum(p.size + t.size for p, t in whole.values()) > 100
    # and the truth read one kind's followed trips at a time, from the files, as `atalaya evaluate` does
    from atalaya.evaluate.events import _true_paths

    files = sorted(str(f) for f in (demo_scenario / "truth" / "tracks").glob("*.parquet"))
    asked: list[int] = []

    def read(trips: pa.Array) -> pa.Table:
        asked.append(len(trips))
        return _true_paths(files, trips)

    lazily = corridor_cells(pts, read, att, params=cp)
    assert len(asked) == 3 and min(asked) > 0  # one read per kind, of that kind's followed trips only
    for kind, (p, t) in whole.items():
        assert np.array_equal(np.sort(p), np.sort(parts[kind][0])), kind
        assert np.array_equal(np.sort(t), np.sort(parts[kind][1])), kind
        assert np.array_equal(np.sort(p), np.sort(lazily[kind][0])), kind
        assert np.array_equal(np.sort(t), np.sort(lazily[kind][1])), kind
