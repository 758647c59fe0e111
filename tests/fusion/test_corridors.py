"""Corridors and border crossings on constructed tracks, run_corridors on the demo workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h3
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from atalaya.core.errors import ValidationError
from atalaya.core.workspace import Workspace
from atalaya.evaluate.events import cell_iou, score_crossings
from atalaya.fusion.corridors import (
    CorridorParams,
    CrossingParams,
    border_crossings,
    cell_int,
    cell_str,
    corridor_flows,
    crossing_hotspots,
    h3_cells,
    run_corridors,
)
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks

MIN = 60_000_000


def lane(
    n_tracks: int, lon0: float, lon1: float, lat: float, *, first_id: int = 0, pts: int = 60
) -> tuple[np.ndarray, ...]:
    """``n_tracks`` tracks along one east–west lane with small noise."""
    rng = np.random.default_rng(first_id)
    ids = np.repeat(np.arange(first_id, first_id + n_tracks), pts)
    t = np.tile(np.arange(pts) * MIN, n_tracks)
    lon = np.tile(np.linspace(lon0, lon1, pts), n_tracks) + rng.normal(0, 0.002, ids.size)
    return ids, t, lon, np.full(ids.size, lat) + rng.normal(0, 0.002, ids.size)


def cat(*tracks: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    return tuple(np.concatenate([tr[k] for tr in tracks]) for k in range(4))


def test_h3_cells_match_h3_per_point() -> None:
    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(-118, -86, 500), rng.uniform(14, 33, 500)
    lon[:100] = lon[100:200]  # repeated positions
    lat[:100] = lat[100:200]
    got = h3_cells(lon, lat, 7)
    want = [h3.str_to_int(h3.latlng_to_cell(b, a, 7)) for a, b in zip(lon, lat, strict=True)]
    assert got.view(np.uint64).tolist() == want
    assert cell_int(cell_str(got)).tolist() == got.tolist()
    with pytest.raises(ValidationError, match="resolution"):
        h3_cells(lon, lat, 16)


@pytest.mark.parametrize("res", [5, 6, 7, 8])
def test_binned_h3_cells_are_exact_on_dense_points(res: int) -> None:
    rng = np.random.default_rng(res)
    lon = rng.normal(-100.0, 0.3, 20_000)
    lat = rng.normal(25.0, 0.3, 20_000)
    got = h3_cells(lon, lat, res)
    want = [h3.str_to_int(h3.latlng_to_cell(b, a, res)) for a, b in zip(lon, lat, strict=True)]
    assert got.view(np.uint64).tolist() == want


def test_corridors_rank_busy_lanes_and_drop_quiet_ones() -> None:
    busy = lane(12, -100.0, -99.0, 20.0)
    quiet = lane(5, -100.0, -99.0, 21.0, first_id=100)
    lonely = lane(2, -100.0, -99.0, 22.0, first_id=200)
    f = corridor_flows(*cat(busy, quiet, lonely))
    c = f.corridors.to_pylist()
    assert [r["volume"] for r in c] == [12, 5]
    assert [r["rank"] for r in c] == [1, 2]
    assert abs(c[0]["lat"] - 20.0) < 0.1 and abs(c[1]["lat"] - 21.0) < 0.1
    # the lanes' cells: every cell of a corridor is used by ≥ min_tracks tracks
    cells = f.cells.filter(pc.greater_equal(f.cells.column("corridor"), 0))
    assert min(cells.column("tracks").to_pylist()) >= CorridorParams().min_tracks


def test_sparse_tracks_are_filled_along_the_grid() -> None:
    dense = lane(4, -100.0, -99.0, 20.0, pts=200)
    sparse = lane(4, -100.0, -99.0, 20.0, pts=8, first_id=50)  # jumps of ≈ 15 km between fixes
    cd = f_cells(dense)
    cs = f_cells(sparse)
    assert cell_iou(cs, cd) >= 0.6


def f_cells(tr: tuple[np.ndarray, ...]) -> np.ndarray:
    f = corridor_flows(*tr, params=CorridorParams(min_tracks=2))
    return f.cells.filter(pc.greater_equal(f.cells.column("corridor"), 0)).column("cell").to_numpy()


def test_border_crossings_found_where_tracks_cut_the_line() -> None:
    # Ciudad Juárez → El Paso and back (the line runs along the Rio Grande at ≈ 31.76° there)
    t = np.arange(5) * 10 * MIN
    x = border_crossings(np.zeros(5), t, np.full(5, -106.45), np.array([31.70, 31.74, 31.80, 31.85, 31.70]))
    assert x.column("direction").to_pylist() == ["north", "south"]
    assert all(abs(v - 31.76) < 0.02 for v in x.column("lat").to_pylist())
    t_n = x.column("time_us")[0].as_py()
    assert 10 * MIN < t_n < 20 * MIN  # interpolated between the fixes either side
    # a track that stays in Mexico crosses nothing; one that jumps after a long silence is not joined
    assert border_crossings(np.zeros(3), t[:3], np.full(3, -106.45), np.array([31.6, 31.65, 31.7])).num_rows == 0
    far = np.array([0, 10 * 3600]) * 1_000_000
    assert border_crossings(np.zeros(2), far, np.full(2, -106.45), np.array([31.7, 31.8])).num_rows == 0


def test_crossing_inferred_across_a_gap_only_when_plausible() -> None:
    # seen in Ciudad Juárez, silent for 40 min, seen again in El Paso: crossed in between
    t = np.array([0, 40]) * MIN
    x = border_crossings(np.zeros(2), t, np.full(2, -106.45), np.array([31.70, 31.82]),
                         params=CrossingParams(max_speed_mps=50.0))  # fmt: skip
    assert x.column("direction").to_pylist() == ["north"] and x.column("gap_s")[0].as_py() == 2400.0
    # the same jump in 10 s is not a vehicle moving: not joined
    fast = border_crossings(np.zeros(2), np.array([0, 10_000_000]), np.full(2, -106.45), np.array([31.70, 31.82]),
                            params=CrossingParams(max_speed_mps=50.0))  # fmt: skip
    assert fast.num_rows == 0


def test_dense_fixes_keep_both_cuts_of_a_meander_sparse_ones_only_the_change_of_side() -> None:
    import shapely

    from atalaya.fusion.corridors import Border

    # a river bend: the line rises to a point; side B lies above it
    line = shapely.LineString([(-1.0, 0.0), (0.0, 0.0), (0.5, 1.0), (1.0, 0.0), (2.0, 0.0)])
    above = shapely.Polygon([(-1.0, 0.0), (0.0, 0.0), (0.5, 1.0), (1.0, 0.0), (2.0, 0.0), (2.0, 3.0), (-1.0, 3.0)])
    bd = Border.from_line(line, above)
    # a west-east chord starting above the rising bank leaves side B under the bend's tip and comes back
    lon, lat = np.array([0.1, 0.9]), np.array([0.5, 0.5])
    dense = border_crossings(np.zeros(2), np.array([0, MIN]), lon, lat, border=bd)
    assert dense.column("direction").to_pylist() == ["south", "north"]
    assert [round(v, 2) for v in dense.column("lon").to_pylist()] == [0.25, 0.75]
    sparse = border_crossings(np.zeros(2), np.array([0, 30 * MIN]), lon, lat, border=bd)
    assert sparse.num_rows == 0


def test_idless_fragments_either_side_are_linked_and_one_event_is_kept_once() -> None:
    import pyarrow as pa

    from atalaya.fusion.corridors import track_crossings

    def pts(tid: str, src: str, t_min: list[int], lat: list[float]) -> pa.Table:
        n = len(t_min)
        return pa.table({"track_id": [tid] * n, "kind": ["vehicle"] * n, "time_us": [m * MIN for m in t_min],
                         "lon": [-106.45] * n, "lat": lat, "source": [src] * n})  # fmt: skip

    # GMTI loses a vehicle in Ciudad Juárez and picks one up in El Paso 8 min later (≈ 13 km: 27 m/s)
    a = pts("g1", "unidentified-GMTI", [0, 1, 2], [31.66, 31.68, 31.70])
    b = pts("g2", "unidentified-GMTI", [10, 11], [31.82, 31.84])
    # another fragment starts too far away to be the same vehicle
    c = pts("g3", "unidentified-GMTI", [10, 11], [33.5, 33.52])
    x = track_crossings(pa.concat_tables([a, b, c]))
    assert x.column("method").to_pylist() == ["link"] and x.column("track").to_pylist() == ["g1>g2"]
    assert x.column("direction").to_pylist() == ["north"] and 2 * MIN < x.column("time_us")[0].as_py() < 10 * MIN
    # the same vehicle carries a tag: one crossing, from the identified track
    tag = pts("cot", "identified", list(range(12)), list(np.linspace(31.66, 31.84, 12)))
    y = track_crossings(pa.concat_tables([a, b, c, tag]))
    assert y.column("track").to_pylist() == ["cot"]


def test_hotspots_cluster_crossings_with_hour_profile() -> None:
    rng = np.random.default_rng(3)
    lon = np.r_[-106.45 + rng.normal(0, 0.003, 30), -100.5 + rng.normal(0, 0.003, 10)]
    lat = np.r_[31.76 + rng.normal(0, 0.002, 30), 28.7 + rng.normal(0, 0.002, 10)]
    hours = np.r_[np.full(30, 2), np.full(10, 14)]
    t = (hours * 3600 + 86_400 * rng.integers(0, 5, 40)) * 1_000_000
    h = crossing_hotspots(lon, lat, t, direction=np.array(["north"] * 40))
    rows = h.to_pylist()
    assert [r["count"] for r in rows] == [30, 10]
    assert rows[0]["hour_profile"][2] == 30 and rows[1]["hour_profile"][14] == 10
    assert rows[0]["north"] == 30 and rows[0]["radius_m"] < 2_000


def test_run_corridors_on_demo(demo_workspace: Workspace, demo_scenario: Path) -> None:
    store = KnowledgeStore.open(demo_workspace.db_url)
    try:
        s1 = run_corridors(demo_workspace, store)
        s2 = run_corridors(demo_workspace, store)  # replaces, does not pile up
        with store.begin() as conn:
            n_corr = len(conn.execute(select(ks.corridors.c.id)).all())
            xs = conn.execute(select(ks.crossings.c.count, ks.crossings.c.hour_profile)).all()
    finally:
        store.close()
    assert s1["track_points"] > 0 and s1["corridors"] == s2["corridors"]
    assert n_corr == sum(s2["corridors"].values())
    assert sum(r[0] for r in xs) == s2["crossings"] and all(sum(r[1]) == r[0] for r in xs)
    xing = pq.read_table(demo_workspace.root / "analysis/corridors/crossings.parquet")
    assert xing.num_rows == s2["crossings"]


def test_tracks_in_buckets_give_the_same_corridors_and_crossings(demo_workspace: Workspace) -> None:
    # a period too large to hold at once is read a bucket of whole tracks at a time (by a hash of the track id);
    # corridors count each track's cells across buckets, and repeats of one crossing are dropped over all of them
    from atalaya.fusion.tracks import run_tracks

    def outputs(bucket_rows: int) -> tuple[dict[str, Any], list[Any], list[Any], list[dict[str, Any]]]:
        s = run_corridors(demo_workspace, store, bucket_rows=bucket_rows)
        with store.begin() as conn:
            corr = sorted(tuple(r) for r in conn.execute(select(ks.corridors.c.id, ks.corridors.c.volume,
                                                                ks.corridors.c.h3_cells)).all())  # fmt: skip
            xs = sorted(tuple(r) for r in conn.execute(select(ks.crossings.c.id, ks.crossings.c.count)).all())
        pts = pq.read_table(demo_workspace.root / "analysis/corridors/crossings.parquet").to_pylist()
        return {k: s[k] for k in ("track_points", "tracks", "corridors", "crossings")}, corr, xs, pts

    store = KnowledgeStore.open(demo_workspace.db_url)
    try:
        for built in (False, True):  # identified positions from the lake; then the tracks files
            if built:
                run_tracks(demo_workspace, store)
            whole = outputs(0)
            parts = outputs(whole[0]["track_points"] // 5)
            print(built, whole[0])
            assert whole[0]["crossings"] > 0
            assert parts == whole
    finally:
        store.close()


def test_crossing_truth_is_found_on_the_true_tracks(demo_scenario: Path) -> None:
    import pyarrow as pa

    tr = pa.concat_tables([pq.read_table(p) for p in sorted((demo_scenario / "truth/tracks").glob("*.parquet"))])
    tr = tr.filter(pc.is_in(tr.column("kind"), pa.array(["vehicle", "vessel", "aircraft"])))
    x = border_crossings(tr.column("trip_id").to_numpy(zero_copy_only=False),
                         tr.column("time").cast(pa.int64()).to_numpy(), tr.column("lon").to_numpy(),
                         tr.column("lat").to_numpy())  # fmt: skip
    truth = pq.read_table(demo_scenario / "truth/crossings.parquet")
    m = score_crossings(x, truth, dist_m=2_000, time_s=1_800)
    assert m.n_true > 0 and m.recall >= 0.95 and m.precision >= 0.95, m.to_dict()
    # vehicles cross where they meant to: at the crossing site or port of entry, through its gate
    veh = truth.filter(pc.equal(truth.column("kind"), "vehicle")).to_pandas()
    assert len(veh) > 0 and veh.crossing_id.notna().all()
    from atalaya.geo.kernels import geodesic_distance

    d = geodesic_distance(veh.lon.to_numpy(), veh.lat.to_numpy(), veh.site_lon.to_numpy(), veh.site_lat.to_numpy())
    assert float(d.max()) < 100.0


def _ingest_positions(ws: Workspace, tmp: Path, name: str, marking: str, rows: list[str]) -> None:
    from atalaya.core.markings import Marking
    from atalaya.ingest.pipeline import ingest_paths

    src = tmp / f"{name}.csv"
    src.write_text("time,lon,lat,pos_err_m,sensor,kind,ident,ident_kind\n" + "\n".join(rows) + "\n", encoding="utf-8")
    ingest_paths(ws, [src], marking=Marking.from_text(marking))


def _northbound(uid: str, lon: float, k0: int) -> list[str]:
    """A tagged vehicle driving north across the border at ``lon``, a report a minute for half an hour."""
    base = np.datetime64("2026-03-02T06:00:00") + np.timedelta64(10 * k0, "m")
    return [f"{base + np.timedelta64(60 * k, 's')}Z,{lon:.5f},{31.66 + 0.008 * k:.5f},15,COT,vehicle,{uid},cot_uid"
            for k in range(31)]  # fmt: skip


@pytest.mark.parametrize("with_tracks", [True, False])
def test_corridors_and_crossings_take_their_tracks_markings(workspace: Workspace, tmp_path: Path,
                                                            with_tracks: bool) -> None:  # fmt: skip
    from atalaya.core.markings import combine_texts
    from atalaya.fusion.tracks import run_tracks

    usa = "TLP:AMBER;REL:MEX,USA;ORIG:USA"
    mex = "TLP:AMBER+STRICT;REL:USA;CAV:INTEL-ONLY;ORIG:MEX"
    # two lanes ~90 km apart, each crossing the border: the west lane by USA reports only, the east one by both
    west = [r for i in range(4) for r in _northbound(f"w{i}", -107.5, i)]
    east = [r for i in range(3) for r in _northbound(f"e{i}", -106.6, i)]
    _ingest_positions(workspace, tmp_path, "usa", usa, west + east)
    _ingest_positions(workspace, tmp_path, "mex", mex, _northbound("e9", -106.6, 3))
    store = KnowledgeStore.open(workspace.db_url)
    if with_tracks:
        run_tracks(workspace, store)
    run_corridors(workspace, store)
    with store.engine.connect() as conn:
        corridors = conn.execute(select(ks.corridors.c.h3_cells, ks.corridors.c.marking)).all()
        hotspots = conn.execute(select(ks.crossings.c.lon, ks.crossings.c.marking)).all()
    both = combine_texts([usa, mex])
    assert both == "TLP:AMBER+STRICT;REL:MEX,USA;CAV:INTEL-ONLY"
    by_lane = {("west" if h3.cell_to_latlng(c[0])[1] < -107.0 else "east"): m for c, m in corridors}
    assert by_lane == {"west": combine_texts([usa]), "east": both}
    assert sorted((round(lon, 1), m) for lon, m in hotspots) == [(-107.5, combine_texts([usa])), (-106.6, both)]
    xing = pq.read_table(workspace.root / "analysis" / "corridors" / "crossings.parquet")
    assert sorted(set(xing.column("marking").to_pylist())) == sorted({combine_texts([usa]), combine_texts([mex])})
