"""FIRMS active-fire CSV (MODIS C6.1, VIIRS 375 m) read natively, and persistent heat turned into a site."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from atalaya.core.errors import ConfigError
from atalaya.core.workspace import Workspace
from atalaya.fusion.sites import PERSISTENT_HEAT, SiteParams, detect_sites, params_for
from atalaya.ingest.base import ReadOptions
from atalaya.ingest.firms import MODIS_COLUMNS, VIIRS_COLUMNS, FirmsReader
from atalaya.ingest.registry import detect_format, get_reader

FLARE = (-92.0503, 19.4001)  # a gas flare on a production platform in the Bay of Campeche, 80 km offshore
FIRE = (-106.1032, 28.6123)  # a one-off grass fire in Chihuahua

# Rebuilt from FIRMS's published layouts: the VIIRS S-NPP / NOAA-20 NRT header and value formats (confidence
# l/n/h, version 2.0NRT, acq_time HHMM with leading zeros) and the MODIS C6.1 archive (confidence 0-100, version
# 6.1, archive `type` column: 3 = offshore; acq_time without leading zeros).
VIIRS = (
    ",".join(VIIRS_COLUMNS)
    + "\n"
    + "".join(
        f"{FLARE[1] + dy:.5f},{FLARE[0] + dx:.5f},{b},{scan},{track},{date},{hhmm},{sat},VIIRS,{conf},2.0NRT,"
        f"{b5},{frp},{dn}\n"
        for dy, dx, b, scan, track, date, hhmm, sat, conf, b5, frp, dn in [
            (0.0004, -0.0006, 367.0, 0.41, 0.37, "2022-03-14", "0742", "N", "h", 296.51, 45.21, "N"),
            (-0.0008, 0.0003, 345.22, 0.44, 0.38, "2022-05-02", "0736", "N", "n", 295.1, 21.7, "N"),
            (0.0002, 0.0009, 359.8, 0.39, 0.36, "2022-07-19", "1924", "N20", "h", 310.2, 38.02, "D"),
            (-0.0003, -0.0002, 338.61, 0.52, 0.42, "2022-09-08", "0754", "N", "n", 294.8, 14.35, "N"),
            (0.0007, 0.0001, 367.0, 0.4, 0.37, "2022-11-23", "0718", "N20", "h", 293.77, 52.6, "N"),
            (-0.0001, 0.0005, 351.3, 0.47, 0.4, "2023-01-30", "0748", "N", "n", 292.4, 25.1, "N"),
            (0.0005, -0.0004, 362.44, 0.38, 0.36, "2023-04-11", "1906", "N20", "h", 312.06, 41.88, "D"),
            (-0.0006, -0.0007, 340.07, 0.58, 0.45, "2023-06-27", "0730", "N", "l", 296.0, 9.93, "N"),
            (0.0001, 0.0002, 367.0, 0.42, 0.38, "2023-08-15", "0742", "N", "h", 297.35, 60.4, "N"),
            (0.0003, -0.0001, 355.9, 0.4, 0.37, "2023-10-03", "0724", "N20", "h", 295.62, 33.2, "N"),
            (-0.0004, 0.0006, 348.5, 0.45, 0.39, "2023-12-19", "0736", "N", "n", 291.9, 19.75, "N"),
            # the one-off fire: two adjacent pixels of one overpass
            (0.0, 0.0, 331.2, 0.52, 0.5, "2023-03-02", "2014", "N20", "n", 300.12, 4.8, "D"),
            (0.0, 0.0034, 328.7, 0.52, 0.5, "2023-03-02", "2014", "N20", "l", 299.9, 3.1, "D"),
        ]
    )
)
VIIRS = "\n".join(
    line
    if i < 12
    else line.replace(f"{FLARE[1] + 0.0:.5f},{FLARE[0] + 0.0:.5f}", f"{FIRE[1]:.5f},{FIRE[0]:.5f}").replace(
        f"{FLARE[1] + 0.0:.5f},{FLARE[0] + 0.0034:.5f}", f"{FIRE[1]:.5f},{FIRE[0] + 0.0034:.5f}"
    )
    for i, line in enumerate(VIIRS.split("\n"))
)
MODIS = (
    ",".join((*MODIS_COLUMNS, "type"))
    + "\n"
    + "".join(
        f"{FLARE[1] + dy:.4f},{FLARE[0] + dx:.4f},{b},{scan},{track},{date},{hhmm},{sat},MODIS,{conf},6.1,{b31},{frp},"
        f"{dn},3\n"
        for dy, dx, b, scan, track, date, hhmm, sat, conf, b31, frp, dn in [
            (0.0012, -0.0020, 318.6, 1.1, 1.0, "2022-02-06", "412", "Terra", 64, 290.5, 35.3, "N"),
            (-0.0024, 0.0011, 322.9, 1.3, 1.1, "2022-08-29", "1936", "Aqua", 81, 301.2, 58.1, "D"),
            (0.0011, 0.0026, 316.4, 1.0, 1.0, "2023-05-20", "425", "Terra", 59, 291.7, 29.4, "N"),
        ]
    )
)


def _write(tmp_path: Path) -> tuple[Path, Path]:
    v, m = tmp_path / "fire_nrt_SV-C2.csv", tmp_path / "fire_archive_M-C61.csv"
    v.write_text(VIIRS)
    m.write_text(MODIS)
    return v, m


def _read(path: Path) -> dict[str, Any]:
    batches = list(FirmsReader().read(path, ReadOptions()))
    assert not [r for b in batches for r in b.rejects]
    out: dict[str, Any] = {}
    for b in batches:
        for k, v in b.columns.items():
            out.setdefault(k, []).extend(v.to_pylist() if hasattr(v, "to_pylist") else np.asarray(v).tolist())
    return out


def test_firms_files_are_detected_from_their_header(tmp_path: Path) -> None:
    v, m = _write(tmp_path)
    assert detect_format(v) == "firms" and detect_format(m) == "firms"
    assert get_reader("firms").name == "firms"


def test_viirs_rows_read_time_confidence_pixel_size_and_attrs(tmp_path: Path) -> None:
    v, _ = _write(tmp_path)
    c = _read(v)
    assert len(c["time"]) == 13 and c["src_rec"][:2] == [2, 3]
    assert set(c["sensor"]) == {"IR"} and set(c["kind"]) == {"thermal"}
    assert c["time"][0] == 1_647_243_720_000_000  # 2022-03-14T07:42:00Z
    assert [round(x, 2) for x in c["confidence"][:2]] == [0.9, 0.6] and round(c["confidence"][7], 2) == 0.3
    # the pixel (0.41 km across track, 0.37 km along) as a 1-sigma ellipse: side / sqrt(12)
    assert c["pos_err_m"][0] == pytest.approx(410 / 12**0.5, rel=1e-5)
    assert c["err_minor_m"][0] == pytest.approx(370 / 12**0.5, rel=1e-5)
    assert "course_deg" not in c or all(x is None or x != x for x in c["course_deg"])  # track is no course
    a = json.loads(c["attrs"][0])
    assert a == {"bright_ti4": 367, "scan": 0.41, "track": 0.37, "satellite": "N", "instrument": "VIIRS",
                 "confidence": "h", "version": "2.0NRT", "bright_ti5": 296.51, "frp": 45.21,
                 "daynight": "N"}  # fmt: skip


def test_modis_archive_rows_read(tmp_path: Path) -> None:
    _, m = _write(tmp_path)
    c = _read(m)
    assert len(c["time"]) == 3
    assert c["time"][0] == 1_644_120_720_000_000  # acq_time 412 is 04:12 UTC on 2022-02-06
    assert [round(x, 2) for x in c["confidence"]] == [0.64, 0.81, 0.59]
    assert c["pos_err_m"][1] == pytest.approx(1300 / 12**0.5, rel=1e-5)
    a = json.loads(c["attrs"][0])
    assert a["brightness"] == 318.6 and a["bright_t31"] == 290.5 and a["frp"] == 35.3 and a["type"] == 3


def test_bad_rows_are_rejected_with_a_reason(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(",".join(VIIRS_COLUMNS) + "\n19.4,-92.05,367,0.4,0.37,2023-03-01,2599,N,VIIRS,h,2.0NRT,296,45,N\n"
                 "19.4,-92.05,367\n19.4,-92.05,367,0.4,0.37,2023-03-01,0742,N,VIIRS,x,2.0NRT,296,45,N\n")  # fmt: skip
    batches = list(FirmsReader().read(p, ReadOptions()))
    rejects = [r for b in batches for r in b.rejects]
    assert len(rejects) == 2 and "not a time" in rejects[0].reason and "fields" in rejects[1].reason
    good = [x for b in batches for x in np.asarray(b.columns.get("confidence", [])).tolist()]
    assert len(good) == 1 and good[0] != good[0]  # an unknown confidence class is no confidence


def _detections(tmp_path: Path) -> dict[str, Any]:
    v, m = _write(tmp_path)
    cols = [_read(v), _read(m)]
    return {
        "lon": np.concatenate([c["lon"] for c in cols]), "lat": np.concatenate([c["lat"] for c in cols]),
        "time_us": np.concatenate([c["time"] for c in cols]).astype(np.int64),
        "sensor": np.concatenate([c["sensor"] for c in cols]).astype(object),
        "kind": np.concatenate([c["kind"] for c in cols]).astype(object),
        "pos_err_m": np.concatenate([c["pos_err_m"] for c in cols]),
        "err_minor_m": np.concatenate([c["err_minor_m"] for c in cols]),
        "confidence": np.concatenate([c["confidence"] for c in cols]),
    }  # fmt: skip


def test_a_recurring_gas_flare_is_a_persistent_heat_site_a_one_off_fire_is_not(tmp_path: Path) -> None:
    s = detect_sites(**_detections(tmp_path))
    assert s.n_sites == 1 and s.kind == [PERSISTENT_HEAT]
    assert abs(s.lon[0] - FLARE[0]) < 0.002 and abs(s.lat[0] - FLARE[1]) < 0.002
    ph = s.evidence[0]["persistent_heat"]
    assert ph["days"] == 14 and ph["first_day"] == "2022-02-06" and ph["last_day"] == "2023-12-19"
    assert s.score[0] == pytest.approx(1 - np.exp(-14 / 10), abs=1e-6)
    # heat alone is context for the other kinds: below their threshold
    assert s.evidence[0]["kinds_score"] < SiteParams().min_score


def test_persistent_heat_threshold_is_per_kind(tmp_path: Path) -> None:
    det = _detections(tmp_path)
    assert detect_sites(**det, params=SiteParams(thresholds=(("persistent_heat", 0.8),))).n_sites == 0
    # only the days count: the same flare seen on 5 days is no persistent heat
    few = np.flatnonzero(det["time_us"] < 1_656_633_600_000_000)  # before 2022-07-01
    assert detect_sites(**{k: v[few] for k, v in det.items()}).n_sites == 0


def test_thresholds_are_read_from_the_workspace_configuration(workspace: Workspace) -> None:
    cfg = workspace.root / "atalaya.toml"
    cfg.write_text(cfg.read_text() + "\n[sites.thresholds]\npersistent_heat = 0.8\nlab = 0.55\n")
    p = params_for(Workspace.open(workspace.root))
    assert dict(p.thresholds) == {"persistent_heat": 0.8, "lab": 0.55}
    assert params_for(workspace) == SiteParams()
    cfg.write_text(cfg.read_text().replace("lab = 0.55", "lab = 2"))
    with pytest.raises(ConfigError, match="not a score"):
        params_for(Workspace.open(workspace.root))
    cfg.write_text(cfg.read_text().replace("lab = 2", "flare = 0.5"))
    with pytest.raises(ConfigError, match="not a site kind"):
        params_for(Workspace.open(workspace.root))
