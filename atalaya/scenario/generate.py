"""The scenario orchestrator: build the world, stream it to disk day by day, write the truth.

>>> from atalaya.scenario.config import get_config
>>> get_config("demo").days
2
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import yaml

from atalaya.core.errors import ConfigError
from atalaya.scenario import feeds
from atalaya.scenario.config import DAY_S, ScenarioConfig, get_config
from atalaya.scenario.heat import generate_heat
from atalaya.scenario.movement import Movement, Track
from atalaya.scenario.sensors import DayTargets, concat, detect
from atalaya.scenario.sites import Sites, build_sites
from atalaya.scenario.sorties import (
    Sortie,
    agreements_record,
    build_sorties,
    parties_record,
    platforms_record,
)
from atalaya.scenario.spoofing import TRUTH_COLUMNS as JUMP_COLUMNS
from atalaya.scenario.spoofing import plant_jumps
from atalaya.scenario.truth import compliance_truth, crossings_columns, overflight, write_json, write_parquet
from atalaya.scenario.world import get_world

OUT_PARTS = ("feeds", "records", "truth", "README.md")
"""What a generated scenario directory holds at its top level."""


@dataclass(kw_only=True)
class Summary:
    """Counts of what was generated."""

    size: str
    """Size name."""
    seed: int
    """Seed."""
    days: int
    """Days simulated."""
    counts: dict[str, int] = field(default_factory=dict)
    """Observation rows written per feed (``ais``, ``adsb``, ``cot``, ``detections``, ``sorties``, ``firms``)."""
    society: str = ""
    """What happened with people, organisations and money."""

    @property
    def observations(self) -> int:
        """All observation rows written to ``feeds/``."""
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "size": self.size,
            "seed": self.seed,
            "days": self.days,
            "counts": dict(sorted(self.counts.items())),
            "observations": self.observations,
            "society": self.society,
        }


def _date(cfg: ScenarioConfig, day: int) -> str:
    return datetime.fromtimestamp(cfg.day_start_s(day), tz=UTC).strftime("%Y-%m-%d")


SiteLists = dict[str, list[str]]


def _society(cfg: ScenarioConfig, seed: int, sites: Sites, out: Path) -> tuple[SiteLists, SiteLists, list[str], str]:
    """Build and write people/organisations/money; returns site plates, site phones, other phones, a note."""
    try:
        from atalaya.scenario.society import SiteRef, build_society, write_society
    except ImportError as e:  # the society generator is a separate module; the world stands without it
        return {}, {}, [], f"society not generated ({e})"
    refs = [
        SiteRef(site_id=s.site_id, kind=s.kind, lon=s.lon, lat=s.lat)
        for s in (*sites.labs, *sites.stash_houses, *sites.airstrips, *sites.beaches)
    ]
    size = cfg.size if cfg.size in ("demo", "small", "large") else "demo"
    soc = build_society(seed=seed, size=size, sites=refs, start=cfg.start, days=cfg.days)
    write_society(soc, out)
    note = "society written"
    try:
        from atalaya.scenario.money import build_money, write_money

        write_money(build_money(soc, seed=seed, start=cfg.start, days=cfg.days), out)
        note += ", money written"
    except ImportError as e:  # money is optional in the same way
        note += f", money not generated ({e})"
    plates: dict[str, list[str]] = {}
    for v in soc.vehicles:
        if v.site_id:
            plates.setdefault(v.site_id, []).append(v.plate)
    phones: dict[str, list[str]] = {}
    other: list[str] = []
    for p in soc.phones:
        if p.site_id:
            phones.setdefault(p.site_id, []).append(p.msisdn)
        else:
            other.append(p.msisdn)
    return plates, phones, other, note


def _tracks_table(tracks: list[Track], sorties: list[Sortie], d0: int, d1: int) -> dict[str, Any]:
    cols: dict[str, list[Any]] = {k: [] for k in ("object_id", "trip_id", "kind", "role", "ident", "ident_kind")}
    arrs: dict[str, list[Any]] = {
        k: [] for k in ("time", "lon", "lat", "alt_m", "speed_mps", "course_deg", "broadcast")
    }
    for tr in tracks:
        n = tr.t.size
        for k, v in (("object_id", tr.object_id), ("trip_id", tr.trip_id), ("kind", tr.kind), ("role", tr.role)):
            cols[k].append(np.full(n, v, dtype=object))
        for k, val in (("ident", tr.ident), ("ident_kind", tr.ident_kind)):
            col = np.full(n, None, dtype=object)
            if tr.feed:
                col[tr.on] = val
            cols[k].append(col)
        for k, a in (("time", tr.t), ("lon", tr.lon), ("lat", tr.lat), ("alt_m", tr.alt), ("speed_mps", tr.speed),
                     ("course_deg", tr.course), ("broadcast", tr.on)):  # fmt: skip
            arrs[k].append(a)
    for s in sorties:
        m = (s.t >= d0) & (s.t < d1) & (s.t % 10 == 0)
        n = int(m.sum())
        if n == 0:
            continue
        for k, v in (
            ("object_id", s.platform_id),
            ("trip_id", s.sortie_id),
            ("kind", "platform"),
            ("role", "collection"),
            ("ident", s.sortie_id),
            ("ident_kind", "sortie"),
        ):
            cols[k].append(np.full(n, v, dtype=object))
        for k, a in (
            ("time", s.t[m]),
            ("lon", s.lon[m]),
            ("lat", s.lat[m]),
            ("alt_m", s.alt[m]),
            ("speed_mps", s.speed[m]),
            ("course_deg", s.course[m]),
            ("broadcast", np.ones(n, dtype=bool)),
        ):
            arrs[k].append(a)
    out: dict[str, Any] = {}
    for k in ("object_id", "trip_id", "kind", "role", "ident", "ident_kind"):
        out[k] = pa.array(np.concatenate(cols[k]).tolist() if cols[k] else [], type=pa.string())
    t = np.concatenate(arrs["time"]) if arrs["time"] else np.zeros(0, dtype=np.int64)
    out["time"] = pa.array(t.astype(np.int64) * 1_000_000, type=pa.timestamp("us", tz="UTC"))
    for k in ("lon", "lat", "alt_m", "speed_mps", "course_deg"):
        out[k] = pa.array(np.concatenate(arrs[k]) if arrs[k] else np.zeros(0), type=pa.float64())
    out["broadcast"] = pa.array(np.concatenate(arrs["broadcast"]) if arrs["broadcast"] else np.zeros(0, dtype=bool))
    return out


def _ts(x: list[float]) -> pa.Array:
    a = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(a)
    us = np.round(np.where(ok, a, 0.0) * 1e6).astype(np.int64)
    return pa.array(us, type=pa.timestamp("us", tz="UTC"), mask=~ok)


def generate(
    out: Path,
    *,
    size: str = "demo",
    seed: int = 0,
    config: ScenarioConfig | None = None,
    overwrite: bool = False,
    on_day: Callable[[int, int], None] | None = None,
) -> Summary:
    """Generate a scenario into ``out`` (see ``README_OUT.md`` for the layout)."""
    cfg = config or get_config(size)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(f"{out} is not empty", hint="choose an empty directory or pass --force to replace it")
        for part in OUT_PARTS:
            target = out / part
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    summary = Summary(size=cfg.size, seed=seed, days=cfg.days)
    world = get_world()
    sites = build_sites(cfg, world, cfg.rng(seed, 1))
    plates, phones, other_phones, summary.society = _society(cfg, seed, sites, out)
    sorties = build_sorties(cfg, sites, world, cfg.rng(seed, 2), plant_rng=cfg.rng(seed, 5))
    movement = Movement(
        cfg, world, sites, seed, plates=plates, phones=phones, bg_phones=other_phones[: cfg.bg_phones] or None
    )
    counts = summary.counts
    for k in ("ais", "adsb", "cot", "detections", "sorties"):
        counts[k] = 0
    crossings: list[dict[str, Any]] = []
    routes: list[dict[str, Any]] = []
    gaps: list[dict[str, Any]] = []
    rdv: list[dict[str, Any]] = []
    jumps: list[dict[str, Any]] = []
    det_truth: dict[str, list[Any]] = {"file": [], "row": [], "truth_id": [], "false_alarm": []}
    for day in range(cfg.days):
        d0, d1 = cfg.day_start_s(day), cfg.day_start_s(day) + DAY_S
        date = _date(cfg, day)
        traffic = movement.day(day)
        heat_on = cfg.rng(seed, 30, day).random(sites.bg_heat[0].size) < 0.5
        targets = DayTargets(day, sites, traffic, heat_on)
        per_sensor: dict[str, list[dict[str, Any]]] = {}
        for si, s in enumerate(sorties):
            if s.landing < d0 or s.takeoff >= d1:
                continue
            for sensor, parts in detect(s, targets, d0, d1, cfg.rng(seed, 40, day, si)).items():
                for p in parts:
                    n = len(p["time"])
                    p["sensor"] = np.full(n, sensor, dtype=object)
                    p["ident_kind"] = np.full(n, "emitter" if sensor == "SIGINT" else None, dtype=object)
                    p["platform_id"] = np.full(n, s.platform_id, dtype=object)
                    p["sortie_id"] = np.full(n, s.sortie_id, dtype=object)
                    per_sensor.setdefault(sensor, []).append(p)
        for sensor in sorted(per_sensor):
            parts = per_sensor[sensor]
            cols = concat(parts)
            for k in ("sensor", "ident_kind", "platform_id", "sortie_id"):
                cols[k] = np.concatenate([p[k] for p in parts])
            order = np.lexsort((cols["lat"], cols["lon"], cols["sortie_id"].astype(str), cols["time"]))
            cols = {k: v[order] for k, v in cols.items()}
            rel = f"feeds/detections/{date}_{sensor}.csv"
            n = feeds.write_detections(out / rel, cols)
            counts["detections"] += n
            det_truth["file"].extend([rel] * n)
            det_truth["row"].extend(range(1, n + 1))
            det_truth["truth_id"].extend(cols["truth_id"].tolist())
            det_truth["false_alarm"].extend((cols["truth_id"] == None).tolist())  # noqa: E711 (elementwise)
        counts["ais"] += feeds.write_ais(
            out / f"feeds/ais/{date}.nmea", [t for t in traffic.tracks if t.feed == "ais"], cfg.ais_step_s
        )
        # the ADS-B feed as received: a few airliners spoofed or badly decoded (their true tracks untouched)
        adsb, day_jumps = plant_jumps([t for t in traffic.tracks if t.feed == "adsb"], cfg.adsb_step_s,
                                      cfg.rng(seed, 70, day))  # fmt: skip
        jumps.extend(day_jumps)
        counts["adsb"] += feeds.write_adsb(out / f"feeds/adsb/{date}.sbs", adsb, cfg.adsb_step_s)
        counts["cot"] += feeds.write_cot(
            out / f"feeds/cot/{date}.cot", [t for t in traffic.tracks if t.feed == "cot"], cfg.cot_step_s
        )
        write_parquet(out / f"truth/tracks/{date}.parquet", _tracks_table(traffic.tracks, sorties, d0, d1))
        crossings.extend(traffic.crossings)
        routes.extend(traffic.routes)
        gaps.extend(traffic.dark_gaps)
        rdv.extend(traffic.rendezvous)
        if on_day is not None:
            on_day(day + 1, cfg.days)
    # sorties: flown tracks, manifest, overflight truth
    ov: list[dict[str, Any]] = []
    for s in sorties:
        counts["sorties"] += feeds.write_sortie_gpx(out / f"feeds/sorties/{s.sortie_id}.gpx", s, cfg.gpx_step_s)
        ov.extend(overflight(s))
    write_parquet(out / "truth/overflight.parquet", {k: [r[k] for r in ov] for k in ov[0]} if ov else {})
    write_json(out / "records/sorties.json", [s.record() for s in sorties])
    write_json(out / "records/platforms.json", platforms_record())
    write_json(out / "records/parties.json", parties_record())
    agreements = agreements_record(cfg)
    write_json(out / "truth/compliance.json", compliance_truth(sorties, agreements))
    for a in agreements:
        ap = out / f"records/agreements/{a['id']}.yaml"
        ap.parent.mkdir(parents=True, exist_ok=True)
        ap.write_text(yaml.safe_dump(a, sort_keys=False, allow_unicode=True), encoding="utf-8")
    # satellite thermal detections over years: flares, fires, seasonal burns (feeds/firms, truth/persistent_heat)
    counts["firms"] = generate_heat(out, cfg, world, seed)
    # truth tables
    all_sites = sites.all()
    write_parquet(
        out / "truth/sites.parquet",
        {
            "site_id": [s.site_id for s in all_sites],
            "kind": [s.kind for s in all_sites],
            "lon": [s.lon for s in all_sites],
            "lat": [s.lat for s in all_sites],
            "state": [s.state for s in all_sites],
            "active_days": pa.array([sorted(s.active_days) for s in all_sites], type=pa.list_(pa.int32())),
            "first_active": _ts([cfg.day_start_s(min(s.active_days)) if s.active_days else np.nan for s in all_sites]),
            "link": [s.link for s in all_sites],
        },
    )
    write_parquet(out / "truth/crossings.parquet", crossings_columns(crossings))
    write_parquet(
        out / "truth/position_jumps.parquet",
        {k: _ts([j[k] for j in jumps]) if k in ("start", "end") else pa.array([j[k] for j in jumps])
         for k in JUMP_COLUMNS} if jumps else {},
    )  # fmt: skip
    write_json(out / "truth/routes.json", routes)
    write_parquet(
        out / "truth/dark_gaps.parquet",
        {
            "object_id": pa.array([g["object_id"] for g in gaps], type=pa.string()),
            "mmsi": pa.array([g["mmsi"] for g in gaps], type=pa.int64()),
            "start": _ts([g["start"] for g in gaps]),
            "end": _ts([g["end"] for g in gaps]),
            **{
                k: pa.array([g[k] for g in gaps], type=pa.float64())
                for k in ("start_lon", "start_lat", "end_lon", "end_lat")
            },
        },
    )
    write_parquet(
        out / "truth/rendezvous.parquet",
        {
            "rendezvous_id": pa.array([r["rendezvous_id"] for r in rdv], type=pa.string()),
            "object_a": pa.array([r["object_a"] for r in rdv], type=pa.string()),
            "mmsi_a": pa.array([r["mmsi_a"] for r in rdv], type=pa.int64()),
            "object_b": pa.array([r["object_b"] for r in rdv], type=pa.string()),
            "mmsi_b": pa.array([r["mmsi_b"] for r in rdv], type=pa.int64()),
            "start": _ts([r["start"] for r in rdv]),
            "end": _ts([r["end"] for r in rdv]),
            "lon": pa.array([r["lon"] for r in rdv], type=pa.float64()),
            "lat": pa.array([r["lat"] for r in rdv], type=pa.float64()),
        },
    )
    write_parquet(
        out / "truth/detections.parquet",
        {
            "file": pa.array(det_truth["file"], type=pa.string()),
            "row": pa.array(det_truth["row"], type=pa.int64()),
            "truth_id": pa.array(det_truth["truth_id"], type=pa.string()),
            "false_alarm": pa.array(det_truth["false_alarm"], type=pa.bool_()),
        },
    )
    write_json(out / "truth/summary.json", summary.to_dict())
    readme = resources.files("atalaya.scenario").joinpath("README_OUT.md").read_text(encoding="utf-8")
    (out / "README.md").write_text(
        readme.replace("{size}", cfg.size).replace("{seed}", str(seed)).replace("{days}", str(cfg.days)),
        encoding="utf-8",
    )
    return summary
