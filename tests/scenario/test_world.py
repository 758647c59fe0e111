"""The scenario world: determinism, geography, truth consistency, and feeds the readers accept."""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from pathlib import Path

import numpy as np
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import yaml

from atalaya.ingest.base import ReadOptions
from atalaya.model.observation import COLUMN_NAMES, IdentKind, ObjectKind, Sensor
from atalaya.scenario.config import ScenarioConfig, get_config
from atalaya.scenario.generate import generate
from atalaya.scenario.world import REGION, get_world


def tiny() -> ScenarioConfig:
    """A one-day world small enough for tests (same generators as the named sizes)."""
    return get_config(
        "demo",
        days=1,
        bg_structures=60,
        bg_heat=20,
        bg_vehicles_per_day=20,
        vessels=10,
        bg_flights_per_day=10,
        bg_phones=40,
        sorties_per_day=5,
    )


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world") / "a"
    generate(out, seed=7, config=tiny())
    return out


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_differs(world_dir: Path, tmp_path: Path) -> None:
    again = tmp_path / "b"
    generate(again, seed=7, config=tiny())
    assert _digest(again) == _digest(world_dir)
    other = tmp_path / "c"
    generate(other, seed=8, config=tiny())
    assert _digest(other) != _digest(world_dir)


def test_refuses_non_empty_out(world_dir: Path) -> None:
    from atalaya.core.errors import ConfigError

    with pytest.raises(ConfigError, match="not empty"):
        generate(world_dir, seed=7, config=tiny())


def test_layout(world_dir: Path) -> None:
    for rel in (
        "README.md",
        "records/sorties.json",
        "records/platforms.json",
        "records/parties.json",
        "truth/sites.parquet",
        "truth/crossings.parquet",
        "truth/dark_gaps.parquet",
        "truth/rendezvous.parquet",
        "truth/detections.parquet",
        "truth/overflight.parquet",
        "truth/routes.json",
        "truth/persistent_heat.parquet",
        "truth/firms.parquet",
    ):
        assert (world_dir / rel).is_file(), rel
    feeds = {p.parent.name for p in (world_dir / "feeds").rglob("*") if p.is_file()}
    assert feeds == {"ais", "adsb", "cot", "detections", "sorties", "firms"}
    assert not list((world_dir / "feeds").rglob("*.parquet"))  # no truth among the feeds


def test_sites_on_the_map(world_dir: Path) -> None:
    w = get_world()
    s = pq.read_table(world_dir / "truth/sites.parquet").to_pylist()
    kinds = {r["kind"] for r in s}
    assert kinds == {"lab", "stash_house", "airstrip", "landing_beach", "crossing"}
    inland = [r for r in s if r["kind"] in ("lab", "stash_house", "airstrip")]
    lon = np.array([r["lon"] for r in inland])
    lat = np.array([r["lat"] for r in inland])
    assert w.in_mex(lon, lat).all()
    labs = [r for r in s if r["kind"] == "lab"]
    assert {r["state"] for r in labs} <= {"MX-SIN", "MX-DUR", "MX-CHH", "MX-MIC", "MX-JAL"}
    stash = [r for r in s if r["kind"] == "stash_house"]
    assert (w.border_km(np.array([r["lon"] for r in stash]), np.array([r["lat"] for r in stash])) < 50).all()
    xing = [r for r in s if r["kind"] == "crossing"]
    assert (w.border_km(np.array([r["lon"] for r in xing]), np.array([r["lat"] for r in xing])) < 1).all()
    beaches = [r for r in s if r["kind"] == "landing_beach"]
    assert (w.border_km(np.array([r["lon"] for r in beaches]), np.array([r["lat"] for r in beaches])) > 20).all()


def test_vessels_at_sea_vehicles_on_land(world_dir: Path) -> None:
    w = get_world()
    t = pq.read_table(next((world_dir / "truth/tracks").glob("*.parquet"))).to_pandas()
    ais = t[(t.kind == "vessel") & t.ident_kind.eq("mmsi")]
    assert len(ais) > 0
    assert not w.on_land(ais.lon.to_numpy(), ais.lat.to_numpy()).any()
    veh = t[t.kind == "vehicle"]
    assert w.on_land(veh.lon.to_numpy(), veh.lat.to_numpy()).mean() > 0.99


def test_crossings_on_the_border(world_dir: Path) -> None:
    w = get_world()
    c = pq.read_table(world_dir / "truth/crossings.parquet").to_pandas()
    assert len(c) > 0 and c.illicit.any()
    assert (w.border_km(c.lon.to_numpy(), c.lat.to_numpy()) <= 1.0).all()
    tracks = pq.read_table(next((world_dir / "truth/tracks").glob("*.parquet"))).to_pandas()
    for row in c.itertuples():
        tr = tracks[tracks.trip_id == row.object_id]
        # the crossing happens on the object's own true path, at that time
        ts = tr.time.astype("int64").to_numpy() / 1e6
        t0 = row.time.timestamp()
        assert ts.min() <= t0 <= ts.max()
        x = np.interp(t0, ts, tr.lon.to_numpy())
        y = np.interp(t0, ts, tr.lat.to_numpy())
        assert abs(x - row.lon) < 0.02 and abs(y - row.lat) < 0.02


def test_sorties_and_records(world_dir: Path) -> None:
    sorties = json.loads((world_dir / "records/sorties.json").read_text())
    assert len(sorties) >= 3
    assert {s["party"] for s in sorties} == {"USA"}
    types = {p["platform_type"] for p in json.loads((world_dir / "records/platforms.json").read_text())}
    assert types == {"MQ-9", "U-2", "RC-135", "P-8"}
    x0, y0, x1, y1 = REGION
    for s in sorties:
        text = (world_dir / f"feeds/sorties/{s['sortie_id']}.gpx").read_text()
        assert f"<name>{s['sortie_id']}</name>" in text and f"<src>{s['platform_id']}</src>" in text
        lat = np.array([float(v) for v in re.findall(r'lat="([-0-9.e]+)"', text)])
        lon = np.array([float(v) for v in re.findall(r'lon="([-0-9.e]+)"', text)])
        assert ((lon > x0) & (lon < x1) & (lat > y0) & (lat < y1)).all()
    agreements = sorted((world_dir / "records/agreements").glob("*.yaml"))
    assert agreements
    for p in agreements:
        a = yaml.safe_load(p.read_text())
        assert {"id", "version", "title", "parties", "effective", "collection", "sharing", "retention"} <= set(a)
        for c in a["collection"]:
            assert {"platform_types", "areas", "max_depth_km", "time_windows", "altitude_m"} <= set(c)
    claimed = {s["agreement_id"] for s in sorties}
    assert claimed <= {a.stem for a in agreements} | {None}


def test_overflight_truth_conserves_duration(world_dir: Path) -> None:
    ov = pq.read_table(world_dir / "truth/overflight.parquet").to_pandas()
    sorties = json.loads((world_dir / "records/sorties.json").read_text())
    from datetime import datetime

    for s in sorties:
        dur = (datetime.fromisoformat(s["landing"]) - datetime.fromisoformat(s["takeoff"])).total_seconds()
        for level in ("country", "state"):
            rows = ov[(ov.sortie_id == s["sortie_id"]) & (ov.level == level)]
            assert rows.time_s.sum() == pytest.approx(dur)
        country = ov[(ov.sortie_id == s["sortie_id"]) & (ov.level == "country")]
        state = ov[(ov.sortie_id == s["sortie_id"]) & (ov.level == "state")]
        assert state.distance_km.sum() == pytest.approx(country.distance_km.sum())
    assert (ov.entries >= 1).all() and (ov.max_depth_km >= 0).all()


def test_detections_header_values_and_truth(world_dir: Path) -> None:
    files = sorted((world_dir / "feeds/detections").glob("*.csv"))
    assert files
    truth = pq.read_table(world_dir / "truth/detections.parquet").to_pandas()
    tracks = pq.read_table(next((world_dir / "truth/tracks").glob("*.parquet"))).to_pandas()
    known = set(tracks.trip_id) | {r["site_id"] for r in pq.read_table(world_dir / "truth/sites.parquet").to_pylist()}
    total = 0
    for f in files:
        header = f.read_text().split("\n", 1)[0].split(",")
        assert set(header) <= set(COLUMN_NAMES)
        t = pcsv.read_csv(f).to_pandas()
        total += len(t)
        assert set(t.sensor) <= {s.value for s in Sensor}
        assert set(t.kind) <= {k.value for k in ObjectKind}
        assert set(t.ident_kind.dropna()) <= {k.value for k in IdentKind}
        rel = str(f.relative_to(world_dir))
        tr = truth[truth.file == rel].sort_values("row")
        assert tr.row.tolist() == list(range(1, len(t) + 1))
    assert total == len(truth)
    real = truth[~truth.false_alarm]
    assert truth.truth_id.isna().equals(truth.false_alarm)
    ok = real.truth_id.map(lambda x: x in known or x.startswith(("bgs-", "bgh-", "phone:")))
    assert ok.all(), real.truth_id[~ok].unique()[:5]


def test_dark_gaps_are_silent(world_dir: Path) -> None:
    from atalaya.ingest.base import read_all
    from atalaya.ingest.nmea import NmeaReader

    gaps = pq.read_table(world_dir / "truth/dark_gaps.parquet").to_pandas()
    cols: dict[str, list[object]] = {"time": [], "ident": []}
    for f in sorted((world_dir / "feeds/ais").glob("*.nmea")):
        c, rejects = read_all(NmeaReader(), f)
        assert not rejects
        cols["time"].extend(c["time"])
        cols["ident"].extend(c["ident"])
    t = np.array(cols["time"], dtype=np.int64) / 1e6
    ident = np.array(cols["ident"], dtype=object)
    for g in gaps.itertuples():
        m = (ident == str(g.mmsi)) & (t >= g.start.timestamp()) & (t <= g.end.timestamp())
        assert not m.any()
        assert (ident == str(g.mmsi)).any()  # the vessel does broadcast outside the gap


READERS = {
    "ais": ("atalaya.ingest.nmea", "nmea"),
    "adsb": ("atalaya.ingest.adsb", "sbs"),
    "cot": ("atalaya.ingest.cot", "cot"),
    "detections": ("atalaya.ingest.tabular", "csv"),
    "sorties": ("atalaya.ingest.tracks", "gpx"),
}


@pytest.mark.parametrize("feed", sorted(READERS))
def test_feeds_parse_without_rejects(world_dir: Path, feed: str) -> None:
    module, fmt = READERS[feed]
    try:
        importlib.import_module(module)
    except ImportError:
        pytest.skip(f"reader module {module} is not in this tree yet")
    from atalaya.ingest.registry import detect_format, get_reader

    files = sorted(p for p in (world_dir / "feeds" / feed).rglob("*") if p.is_file())
    assert files
    rows = 0
    for f in files:
        assert detect_format(f) == fmt
        for b in get_reader(fmt).read(f, ReadOptions()):
            assert not b.rejects, (f.name, b.rejects[:3])
            rows += len(b)
    assert rows > 0


def test_cli_refuses_non_empty_out(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from atalaya.cli.main import cli
    from atalaya.core.errors import ConfigError

    (tmp_path / "keep.txt").write_text("x")
    res = CliRunner().invoke(cli, ["scenario", "generate", "--size", "demo", "--seed", "1", str(tmp_path)])
    assert isinstance(res.exception, ConfigError)
    assert "--force" in str(res.exception)
    assert (tmp_path / "keep.txt").read_text() == "x"


SITE_KINDS = ("lab", "stash_house", "airstrip", "landing_beach")


def few_days() -> ScenarioConfig:
    """A three-day world with thin background: enough days for tasked revisits, quick to generate."""
    return get_config(
        "demo",
        days=3,
        bg_structures=100,
        bg_heat=30,
        bg_vehicles_per_day=20,
        vessels=10,
        bg_flights_per_day=10,
        bg_phones=40,
        sorties_per_day=1,
    )


@pytest.fixture(scope="module")
def tasked_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tasked") / "a"
    generate(out, seed=11, config=few_days())
    return out


def test_most_active_sites_are_observable(tasked_dir: Path) -> None:
    sites = pq.read_table(tasked_dir / "truth/sites.parquet").to_pandas()
    active = sites[sites.kind.isin(SITE_KINDS) & (sites.active_days.map(len) > 0)]
    assert len(active) >= 15
    det = pq.read_table(tasked_dir / "truth/detections.parquet").to_pandas()
    det["day"] = det.file.str.extract(r"(\d{4}-\d\d-\d\d)_", expand=False)
    mine = det[det.truth_id.isin(active.site_id)]
    per_site = mine.groupby("truth_id").agg(n=("row", "size"), days=("day", "nunique"))
    observable = set(per_site[(per_site.n >= 2) & (per_site.days >= 2)].index)
    share = active.site_id.isin(observable).mean()
    assert share >= 0.7, (share, sorted(set(active.site_id) - observable))
    for kind in SITE_KINDS:  # every kind of hidden place is found somewhere
        assert active[active.kind == kind].site_id.isin(observable).any(), kind


def test_false_alarms_and_lookalikes_keep_precision_hard(tasked_dir: Path) -> None:
    det = pq.read_table(tasked_dir / "truth/detections.parquet").to_pandas()
    sites = set(pq.read_table(tasked_dir / "truth/sites.parquet").column("site_id").to_pylist())
    static = det[det.file.str.contains("_EO|_IR")]  # the sensors that see places
    no_site = ~static.truth_id.isin(sites)
    assert no_site.mean() >= 0.3
    assert static.false_alarm.mean() >= 0.05
    lookalike = static.truth_id.fillna("").str.startswith(("bgs-", "bgh-"))
    assert lookalike.mean() >= 0.05


def test_tasking_is_coarse_and_includes_empty_areas() -> None:
    from atalaya.scenario.sites import build_sites
    from atalaya.scenario.sorties import build_tasking
    from atalaya.scenario.world import flat_m

    cfg = few_days()
    w = get_world()
    sites = build_sites(cfg, w, cfg.rng(11, 1))
    areas = build_tasking(cfg, sites, w, cfg.rng(11, 2))
    boxes = [a for a in areas if a.kind in ("inland", "border")]
    assert any(not a.holds_sites for a in boxes) and any(not a.holds_sites for a in areas if a.kind == "coast")
    cx, cy = np.array([a.lon for a in boxes]), np.array([a.lat for a in boxes])
    half = np.array([a.half_m for a in boxes])
    assert ((half >= 15_000) & (half <= 30_000)).all()
    nearest: list[float] = []
    for s in (*sites.labs, *sites.airstrips, *sites.stash_houses):
        e, n = flat_m(cx, cy, np.full(cx.size, s.lon), np.full(cx.size, s.lat))
        assert ((np.abs(e) < half) & (np.abs(n) < half)).any(), s.site_id  # every site lies in some box
        nearest.append(float(np.hypot(e, n).min()))
    assert np.median(nearest) > 3_000  # boxes are not centred on the places they hold
    assert all(len(a.days) >= min(2, cfg.days) for a in areas)
