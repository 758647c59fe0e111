"""Maritime events on constructed vessel tracks, and their quality on the demo scenario."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from atalaya.core.workspace import Workspace
from atalaya.evaluate.events import score_dark_gaps, score_rendezvous
from atalaya.fusion.maritime import (
    detect_dark_gaps,
    detect_loitering,
    detect_rendezvous,
    maritime_dir,
    run_maritime,
)
from atalaya.geo.kernels import aeqd_inverse
from atalaya.store.knowledge import KnowledgeStore

H = 3600
OPEN_SEA = (-91.0, 25.0)  # central Gulf of Mexico, > 200 km from land


def make_track(vid: int, t0_s: float, t1_s: float, *, step_s: float = 120.0, start: tuple[float, float] = OPEN_SEA,
               v_east: float = 0.0, v_north: float = 0.0) -> tuple[np.ndarray, ...]:  # fmt: skip
    """A vessel sailing at constant velocity (m/s) from ``start``: (ids, time_us, lon, lat)."""
    t = np.arange(t0_s, t1_s, step_s)
    lon, lat = aeqd_inverse(start[0], start[1], v_east * (t - t0_s), v_north * (t - t0_s))
    return np.full(t.size, vid), (t * 1e6).astype(np.int64), lon, lat


def cat(*tracks: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    return tuple(np.concatenate([tr[k] for tr in tracks]) for k in range(4))


def drop(tr: tuple[np.ndarray, ...], t0_s: float, t1_s: float) -> tuple[np.ndarray, ...]:
    keep = (tr[1] < t0_s * 1e6) | (tr[1] > t1_s * 1e6)
    return tuple(a[keep] for a in tr)


def test_dark_gap_offshore_with_reception_is_scored_high() -> None:
    a = drop(make_track(1, 0, 10 * H, v_east=5.0), 3 * H, 7 * H)
    b = make_track(2, 0, 10 * H, start=(-91.3, 25.2), v_north=4.0)  # another vessel received nearby
    g = detect_dark_gaps(*cat(a, b))
    assert g.num_rows == 1
    row = g.to_pylist()[0]
    assert row["vessel"] == "1" and row["score"] > 0.8
    assert abs(row["duration_s"] - 4 * H) <= 240
    assert row["nearby_vessel_hours"] >= 2 and "silent 4.1 h" in row["reasons"]


def test_short_silences_and_port_stops_are_not_dark_gaps() -> None:
    short = drop(make_track(1, 0, 6 * H, v_east=5.0), 2 * H, 2 * H + 1500)
    assert detect_dark_gaps(*short).num_rows == 0
    veracruz = (-96.135, 19.2)  # in the port of Veracruz
    port = drop(make_track(3, 0, 10 * H, start=veracruz), 2 * H, 8 * H)
    g = detect_dark_gaps(*port)
    assert g.num_rows == 0


def test_implausible_jump_halves_the_score() -> None:
    ok = drop(make_track(1, 0, 10 * H, v_east=5.0), 3 * H, 7 * H)
    ids, t, lon, lat = ok
    lon = np.where(t > 7 * H * 1e6, lon + 5.0, lon)  # reappears 500 km away after 4 h: 35 m/s
    g_ok = detect_dark_gaps(*ok).column("score")[0].as_py()
    g_jump = detect_dark_gaps(ids, t, lon, lat)
    assert g_jump.column("score")[0].as_py() <= 0.5 * g_ok + 1e-9
    assert "implausible" in g_jump.column("reasons")[0].as_py()


def test_rendezvous_two_vessels_stopped_together() -> None:
    a = make_track(1, 0, 3 * H)
    b = make_track(2, 0, 3 * H, start=(OPEN_SEA[0] + 0.003, OPEN_SEA[1]))  # ≈ 300 m apart
    passing = make_track(3, 0, 3 * H, start=(OPEN_SEA[0] - 0.3, OPEN_SEA[1]), v_east=8.0)  # sails through
    r = detect_rendezvous(*cat(a, b, passing))
    assert r.num_rows == 1
    row = r.to_pylist()[0]
    assert {row["vessel_a"], row["vessel_b"]} == {"1", "2"} and row["kind"] == "ais"
    assert row["duration_s"] >= 2.5 * H and row["min_dist_m"] < 400


def test_vessel_ids_as_an_arrow_dictionary_give_the_same_events() -> None:
    # run_maritime passes the lake's MMSIs as a dictionary column (an integer per position), not Python strings
    a = make_track(366000001, 0, 3 * H)
    b = make_track(366000002, 0, 3 * H, start=(OPEN_SEA[0] + 0.003, OPEN_SEA[1]))
    c = drop(make_track(366000003, 0, 12 * H, start=(OPEN_SEA[0] - 0.5, OPEN_SEA[1]), v_east=5.0), 4 * H, 8 * H)
    ids, t, x, y = cat(a, b, c)
    names = ids.astype(str).astype(object)
    half = ids.size // 2
    arrow = pa.chunked_array([pa.array(names[:half]).dictionary_encode(), pa.array(names[half:]).dictionary_encode()])
    for detect in (detect_rendezvous, detect_dark_gaps, detect_loitering):
        want, got = detect(names, t, x, y), detect(arrow, t, x, y)
        assert want.num_rows > 0 or detect is detect_loitering
        assert want.to_pylist() == got.to_pylist()


def test_messages_before_a_gap_are_the_vessels_own() -> None:
    # vessel 2 goes silent half an hour into the period: the hour before its gap reaches back past the first
    # message of all, and must not count vessel 1's last messages (which come just before it in the sorted rows)
    a = make_track(1, 0, 10 * H, start=(OPEN_SEA[0] - 0.5, OPEN_SEA[1]))
    b = drop(make_track(2, 0, 10 * H, v_east=5.0), 0.5 * H, 5 * H)
    g = detect_dark_gaps(*cat(a, b))
    assert g.column("vessel").to_pylist() == ["2"]
    assert g.column("n_before").to_pylist() == [15]  # its own reports at 0, 2, …, 28 min


def test_two_reports_of_one_vessel_at_one_time_both_count_as_received() -> None:
    # a vessel reporting twice at the same instant from two places (two transmitters on one MMSI): its track keeps
    # one of the two, but each was a reception where it was, and counts around another vessel's silence
    b = drop(make_track(2, 0, 10 * H, start=(-94.0, 23.0)), 0.5 * H, 5 * H)
    t = np.array([2.5 * H * 1e6] * 2, dtype=np.int64)
    a = (np.full(2, 1), t, np.array([-99.5, -94.2]), np.full(2, 23.0))
    g = detect_dark_gaps(*cat(b, a))
    assert g.column("vessel").to_pylist() == ["2"]
    assert g.column("nearby_vessel_hours").to_pylist() == [1]


def test_no_rendezvous_in_port() -> None:
    veracruz = (-96.135, 19.2)
    a = make_track(1, 0, 3 * H, start=veracruz)
    b = make_track(2, 0, 3 * H, start=(veracruz[0] + 0.002, veracruz[1]))
    assert detect_rendezvous(*cat(a, b)).num_rows == 0


def test_rendezvous_with_a_dark_partner() -> None:
    # B waits at the meeting point; A sails in at 5 m/s with AIS off, stays 1 h, sails away dark, reappears
    b = make_track(2, 0, 8 * H)
    ids, t, lon, lat = make_track(1, 0, 8 * H)
    ts = t / 1e6
    # A: east of the point, approaching (0–3 h), at the point (3–4 h), leaving north (4–8 h); dark 1.5 h–5.5 h
    x = np.where(ts < 3 * H, 5.0 * (3 * H - ts), 0.0)
    y = np.where(ts > 4 * H, 5.0 * (ts - 4 * H), 0.0)
    lon, lat = aeqd_inverse(OPEN_SEA[0], OPEN_SEA[1], x, y)
    a = drop((ids, t, lon, lat), 1.5 * H, 5.5 * H)
    r = detect_rendezvous(*cat(a, b))
    dark = [e for e in r.to_pylist() if e["kind"] == "dark"]
    assert len(dark) == 1
    assert dark[0]["vessel_a"] == "2" and dark[0]["vessel_b"] == "1"


def test_rendezvous_seen_by_radar_only() -> None:
    b = make_track(2, 0, 3 * H)
    scans = np.arange(H, 2 * H, 60.0)
    rt = np.repeat(scans, 2) * 1e6
    rlon = np.tile([OPEN_SEA[0], OPEN_SEA[0] + 0.002], scans.size)
    rlat = np.full(rt.size, OPEN_SEA[1])
    r = detect_rendezvous(*b, radar_time_us=rt.astype(np.int64), radar_lon=rlon, radar_lat=rlat)
    assert r.column("kind").to_pylist() == ["radar"]
    assert r.column("radar_looks")[0].as_py() >= 30
    assert detect_rendezvous(*b).num_rows == 0  # without the radar nothing is seen


def test_loitering_at_sea_but_not_when_sailing() -> None:
    still = make_track(1, 0, 4 * H)
    moving = make_track(2, 0, 4 * H, start=(-91.5, 24.5), v_east=6.0)
    lo = detect_loitering(*cat(still, moving))
    assert lo.column("vessel").to_pylist() == ["1"]
    assert lo.column("duration_s")[0].as_py() >= 3.5 * H


def test_maritime_quality_on_demo(demo_workspace: Workspace, demo_scenario: Path) -> None:
    store = KnowledgeStore.open(demo_workspace.db_url)
    try:
        summary = run_maritime(demo_workspace, store)
    finally:
        store.close()
    assert summary["ais_positions"] > 0
    out = maritime_dir(demo_workspace)
    gaps = score_dark_gaps(
        pq.read_table(out / "dark_gaps.parquet"), pq.read_table(demo_scenario / "truth/dark_gaps.parquet")
    )
    rdv = score_rendezvous(pq.read_table(out / "rendezvous.parquet"),
                           pq.read_table(demo_scenario / "truth/rendezvous.parquet"))  # fmt: skip
    assert gaps.n_true > 0 and gaps.f05 >= 0.8, gaps.to_dict()
    assert rdv.n_true > 0 and rdv.recall >= 0.8, rdv.to_dict()
    assert (out / "loitering.parquet").exists()


def test_vessels_in_buckets_give_the_same_events(demo_workspace: Workspace) -> None:
    # a period too large to hold at once is analysed a bucket of vessels at a time; what one vessel's events
    # take from the others (vessels received around a silence, a partner stopped beside it) crosses the buckets
    store = KnowledgeStore.open(demo_workspace.db_url)
    out = maritime_dir(demo_workspace)
    try:
        whole = run_maritime(demo_workspace, store)
        want = {n: pq.read_table(out / f"{n}.parquet").to_pylist() for n in ("dark_gaps", "rendezvous", "loitering")}
        parts = run_maritime(demo_workspace, store, bucket_rows=whole["ais_positions"] // 5)
        got = {n: pq.read_table(out / f"{n}.parquet").to_pylist() for n in want}
    finally:
        store.close()
    assert parts["vessels"] == whole["vessels"] and parts["ais_positions"] == whole["ais_positions"]
    # and the workspace job gives what the pure functions give on the same positions
    from atalaya.store.lake import Lake

    ais = Lake(demo_workspace.lake_dir).query(
        "SELECT ident, epoch_us(time) AS t, lon, lat FROM observations WHERE CAST(ident_kind AS VARCHAR) = 'mmsi'"
    )
    cols = (ais.column("ident"), ais.column("t").to_numpy(), ais.column("lon").to_numpy(), ais.column("lat").to_numpy())

    def unmarked(rows: list[dict[str, object]]) -> list[dict[str, object]]:  # the job adds each event's marking
        return [{k: v for k, v in r.items() if k != "marking"} for r in rows]

    assert detect_dark_gaps(*cols).to_pylist() == unmarked(want["dark_gaps"])
    assert detect_loitering(*cols).to_pylist() == unmarked(want["loitering"])
    assert len(want["dark_gaps"]) > 0 and len(want["rendezvous"]) > 0
    for name, rows in want.items():
        assert len(got[name]) == len(rows), name
        for w, g in zip(rows, got[name], strict=True):
            assert w.keys() == g.keys()
            for key, v in w.items():
                if isinstance(v, float) and not np.isnan(v):
                    assert g[key] == pytest.approx(v, rel=1e-9, abs=1e-6), (name, key)  # sums in another order
                elif isinstance(v, float):
                    assert np.isnan(g[key]), (name, key)
                elif key != "reasons":  # reasons print the same figures, rounded
                    assert g[key] == v, (name, key)


def test_shore_distance_and_open_sea() -> None:
    from atalaya.fusion.maritime import coast

    cs = coast(-106.0, 25.0)
    # the open Pacific shore south of Mazatlán; Altata's shore, on a lagoon behind a barrier spit; a point 30 km
    # inland; a point in the Gulf of California 70 km out
    lon = np.array([-106.2756, -107.9327, -107.62, -108.6])
    lat = np.array([23.0824, 24.6289, 24.85, 24.3])
    d = cs.distance_to_shore(lon, lat)
    assert d[0] < 100 and d[1] < 100 and d[2] > 20_000 and d[3] > 20_000, d
    assert cs.distance_to_land(lon, lat)[2] == 0.0  # inland: on land, far from the shore
    assert cs.faces_open_sea(lon, lat).tolist() == [True, False, False, True]
    assert cs.faces_open_sea(np.zeros(0), np.zeros(0)).size == 0


def test_maritime_events_take_their_vessels_markings(workspace: Workspace, tmp_path: Path) -> None:
    from atalaya.core.markings import Marking, combine_texts
    from atalaya.ingest.pipeline import ingest_paths

    usa = "TLP:GREEN;REL:MEX,USA;ORIG:USA"
    strict = "TLP:AMBER+STRICT;REL:USA;CAV:SOURCE-PROTECT;ORIG:USA"
    # vessel 1 (USA reports) and vessel 2 (AMBER+STRICT reports) stopped together for 10 h; vessel 3 (AMBER+STRICT)
    # sails by and goes dark for 4 h
    one = make_track(1, 0, 10 * H)
    two = make_track(2, 0, 10 * H, start=(OPEN_SEA[0] + 0.003, OPEN_SEA[1]))
    three = drop(make_track(3, 0, 10 * H, start=(-91.3, 25.2), v_east=5.0), 3 * H, 7 * H)
    for name, marking, tracks in (("usa", usa, (one,)), ("strict", strict, (two, three))):
        ids, t, lon, lat = cat(*tracks)
        when = np.datetime64("2026-03-02T00:00:00") + t.astype("timedelta64[us]")
        iso = np.datetime_as_string(when).tolist()
        rows = [f"{w}Z,{x:.6f},{y:.6f},10,AIS,vessel,36600000{v},mmsi"
                for v, w, x, y in zip(ids.tolist(), iso, lon.tolist(), lat.tolist(), strict=True)]  # fmt: skip
        src = tmp_path / f"{name}.csv"
        src.write_text("time,lon,lat,pos_err_m,sensor,kind,ident,ident_kind\n" + "\n".join(rows) + "\n")
        ingest_paths(workspace, [src], marking=Marking.from_text(marking))
    store = KnowledgeStore.open(workspace.db_url)
    try:
        run_maritime(workspace, store)
    finally:
        store.close()
    out = maritime_dir(workspace)
    ev = {n: pq.read_table(out / f"{n}.parquet").to_pylist() for n in ("dark_gaps", "rendezvous", "loitering")}
    assert [(e["vessel"], e["marking"]) for e in ev["dark_gaps"]] == [("366000003", combine_texts([strict]))]
    meets = [(e["vessel_a"], e["vessel_b"], e["marking"]) for e in ev["rendezvous"]]
    assert meets == [("366000001", "366000002", "TLP:AMBER+STRICT;REL:USA;CAV:SOURCE-PROTECT;ORIG:USA")]
    loit = {e["vessel"]: e["marking"] for e in ev["loitering"]}
    assert loit == {"366000001": combine_texts([usa]), "366000002": combine_texts([strict])}
