"""readsb/tar1090 trace files and OpenSky/``traffic``/pandas record tables, in their published layouts."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from atalaya.core.errors import IngestError
from atalaya.ingest.adsb import FT_TO_M, KT_TO_MPS
from atalaya.ingest.adsb_json import FPM_TO_MPS, AdsbRecordsReader, ReadsbTraceReader, epoch_us
from atalaya.ingest.base import ReaderLimits, ReadOptions, read_all
from atalaya.ingest.registry import detect_format, get_reader

BASE = 1663372800.0  # 2022-09-17T00:00:00Z
BASE_US = 1_663_372_800_000_000

# A trace_full file as readsb writes it (README-json.md, "trace jsons"): header keys, then one point per line;
# 14 fields per point since 2022: dt, lat, lon, alt (ft | "ground" | null), gs (kt), track, flags, vrate (fpm),
# aircraft details | null, source, geom alt (ft), geom rate (fpm), ias (kt), roll.
TRACE_FULL = (
    '{"icao":"3c66b0","r":"D-AIUO","t":"A320","dbFlags":0,"desc":"AIRBUS A-320","timestamp": 1663372800.000,\n'
    '"trace":[\n'
    '[21.43,50.033264,8.570496,"ground",12.3,245.4,2,null,{"type":"adsb_icao","flight":"DLH4YT  ",'
    '"alt_geom":null,"gs":12.3,"track":245.4,"squawk":"1000","emergency":"none","category":"A3","nav_qnh":1013.6,'
    '"version":2,"nic_baro":1,"nac_p":10,"nac_v":2,"sil":3,"sil_type":"perhour","alert":0,"spi":0},'
    '"adsb_icao",null,null,null,null],\n'
    '[95.10,50.030120,8.546210,1500,152.0,250.1,0,1984,null,"adsb_icao",1650,2048,160,0.5],\n'
    '[130.55,null,null,2400,160.0,250.3,0,1920,null,"adsb_icao",null,null,null,null],\n'
    '[201.00,50.010001,8.470002,null,170.1,251.0,1,null,null,"mlat",null,null,null,null],\n'
    '[7340.72,40.471933,-3.562231,"ground",15.0,180.0,2,null,{"type":"adsb_icao","flight":"DLH1122 ",'
    '"squawk":"2000"},"adsb_icao",null,null,null,null],\n'
    '[7400.00,40.460000,-3.560000,800,140.0,181.5,12,-640,null,"adsb_icao",850,-512,145,-1.2]\n'
    "]\n"
    "}\n"
)


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    data = text.encode() if isinstance(text, str) else text
    p.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return p


def _attrs(cols: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [json.loads(a) if a else {} for a in cols["attrs"]]


# --------------------------------------------------------------------------- readsb traces


@pytest.mark.parametrize("name", ["trace_full_3c66b0.json", "trace_full_3c66b0.json.gz"])
def test_trace_full_legs_ground_nulls(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, name, TRACE_FULL)
    assert detect_format(path) == "readsb-trace"
    batches = list(ReadsbTraceReader().read(path, ReadOptions()))
    assert sum(b.records_read for b in batches) == 6
    cols, rejects = read_all(ReadsbTraceReader(), path)
    assert rejects == []
    assert cols["src_rec"] == [1, 2, 4, 5, 6]  # the point without a position is skipped
    assert cols["time"] == [BASE_US + round(dt * 1e6) for dt in (21.43, 95.10, 201.00, 7340.72, 7400.00)]
    assert set(cols["ident"]) == {"3c66b0"} and set(cols["ident_kind"]) == {"icao24"}
    a = _attrs(cols)
    assert [x["leg"] for x in a] == [1, 1, 1, 2, 2]
    assert [x.get("on_ground") for x in a] == [True, False, None, True, False]
    assert cols["alt_m"][0] != cols["alt_m"][0] and cols["alt_m"][2] != cols["alt_m"][2]  # ground, null → NaN
    assert cols["alt_m"][1] == pytest.approx(1500 * FT_TO_M)
    assert cols["speed_mps"][1] == pytest.approx(152.0 * KT_TO_MPS)
    assert cols["course_deg"][1] == 250.1
    # the callsign carries within its leg and resets at the next one
    assert cols["name"] == ["DLH4YT", "DLH4YT", "DLH4YT", "DLH1122", "DLH1122"]
    assert a[1]["vertrate_mps"] == pytest.approx(1984 * FPM_TO_MPS, abs=1e-3)
    assert a[1]["geom_alt_m"] == pytest.approx(1650 * FT_TO_M, abs=0.01)
    assert a[2]["stale"] is True and a[2]["source"] == "mlat"
    assert a[4]["alt_geometric"] is True and a[4]["squawk"] == "2000" and a[4]["roll_deg"] == -1.2
    assert a[0]["registration"] == "D-AIUO" and a[0]["type_code"] == "A320"


def test_trace_recent_old_layout_and_batches(tmp_path: Path) -> None:
    # trace_recent files before 2022 carried 9 fields per point; a non-ICAO (TIS-B) address has a "~"
    pts = [[i * 5.0, 45.0 + i * 0.01, 7.0, 3000 + i, 200.0, 90.0, 0, 0, None] for i in range(10)]
    doc = {"icao": "~a1b2c3", "timestamp": BASE, "trace": pts}
    path = _write(tmp_path, "trace_recent_~a1b2c3.json", json.dumps(doc))
    batches = list(ReadsbTraceReader().read(path, ReadOptions(batch_rows=3)))
    assert [len(b) for b in batches if len(b)] == [3, 3, 3, 1]
    cols, _ = read_all(ReadsbTraceReader(), path, ReadOptions(batch_rows=3))
    assert set(cols["ident"]) == {"~a1b2c3"} and set(cols["ident_kind"]) == {"other"}
    assert sum(b.bytes_read for b in batches) == path.stat().st_size


def test_trace_keys_in_another_order(tmp_path: Path) -> None:
    doc = json.loads(TRACE_FULL)
    reordered = {"trace": doc["trace"], "icao": doc["icao"], "timestamp": doc["timestamp"]}
    path = _write(tmp_path, "t.json", json.dumps(reordered, indent=1))
    cols, rejects = read_all(ReadsbTraceReader(), path)
    assert len(cols["time"]) == 5 and rejects == []


def test_trace_bad_points_quarantined_truncation_reported(tmp_path: Path) -> None:
    text = (
        '{"icao":"3c66b0","timestamp":1663372800.0,"trace":[\n'
        "[1.0,50.0,8.0,1000,100,90,0,null,null],\n"
        "[2.0,95.0,8.0,1000,100,90,0,null,null],\n"
        '["x",50.0,8.0,1000,100,90,0,null,null],\n'
        '[4.0,50.0,8.0,"high",100,90,0,null,null],\n'
        "[5.0,50.0,8.0,1000,100,90,0,null,null],\n"
        "[6.0,50.0,8."
    )
    cols, rejects = read_all(ReadsbTraceReader(), _write(tmp_path, "t.json", text))
    assert cols["src_rec"] == [1, 5]
    reasons = {r.src_rec: r.reason for r in rejects}
    assert "out of range" in reasons[2] and "time offset" in reasons[3] and "altitude" in reasons[4]
    assert "truncated" in reasons[6]


def test_trace_forced_on_other_json_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.json", '{"time": 1700000000, "states": [["abc123", "X", "Y"]]}')
    with pytest.raises(IngestError, match="0 records"):
        read_all(ReadsbTraceReader(), path)
    with pytest.raises(IngestError, match="timestamp"):
        read_all(ReadsbTraceReader(), _write(tmp_path, "t.json", '{"icao":"3c66b0","trace":[[1,2,3]],"x":1}'))


def test_trace_respects_record_limit(tmp_path: Path) -> None:
    big = '"' + "x" * 5000 + '"'
    text = f'{{"icao":"3c66b0","timestamp":1.6e9,"trace":[[1,50,8,0,0,0,0,0,{{"a":{big}}}],[2,50,8,0,0,0,0,0,null]]}}'
    opts = ReadOptions(limits=ReaderLimits(max_record_bytes=1000))
    path = _write(tmp_path, "t.json", text)
    batches = list(ReadsbTraceReader().read(path, opts))
    rejects = [r for b in batches for r in b.rejects]
    assert sum(len(b) for b in batches) == 1 and len(rejects) == 1
    assert "longer than 1000" in rejects[0].reason


# --------------------------------------------------------------------------- OpenSky / traffic records

# OpenSky Impala state_vectors_data4 rows as records (metres, m/s): the names of the historical CSV
OPENSKY_RECORDS = [
    {"time": 1500000010, "icao24": "3c66b0", "lat": 50.1, "lon": 8.6, "velocity": 120.5, "heading": 270.0,
     "vertrate": -3.25, "callsign": "DLH4YT  ", "onground": False, "alert": False, "spi": False, "squawk": "1000",
     "baroaltitude": 1000.0, "geoaltitude": 1050.0, "lastposupdate": 1500000009.5, "lastcontact": 1500000010.0,
     "hour": 1499997600},
    {"time": 1500000020, "icao24": "3c66b0", "lat": None, "lon": None, "velocity": 120.0, "heading": 270.0,
     "vertrate": 0.0, "callsign": "DLH4YT  ", "onground": False, "alert": False, "spi": False, "squawk": "1000",
     "baroaltitude": 1000.0, "geoaltitude": None, "lastposupdate": None, "lastcontact": 1500000020.0,
     "hour": 1499997600},
    {"time": 1500000030, "icao24": "4CA2D6", "lat": 50.2, "lon": 8.7, "velocity": None, "heading": None,
     "vertrate": None, "callsign": None, "onground": True, "alert": False, "spi": False, "squawk": None,
     "baroaltitude": None, "geoaltitude": None, "lastposupdate": None, "lastcontact": 1500000030.0,
     "hour": 1499997600},
]  # fmt: skip

# traffic's columns (feet, knots, ft/min), timestamps as pandas writes them by default (epoch ms)
TRAFFIC_RECORDS = [
    {"timestamp": 1500000000000, "icao24": "3c66b0", "callsign": "DLH4YT", "latitude": 50.1, "longitude": 8.6,
     "altitude": 3000.0, "geoaltitude": 3100.0, "groundspeed": 250.0, "track": 90.0, "vertical_rate": 1024.0,
     "onground": False, "squawk": "1000"},
    {"timestamp": 1500000001000, "icao24": "3c66b0", "callsign": "DLH4YT", "latitude": 50.11, "longitude": 8.61,
     "altitude": 3025.0, "geoaltitude": None, "groundspeed": 251.0, "track": 90.5, "vertical_rate": 1024.0,
     "onground": False, "squawk": "1000"},
]  # fmt: skip


def test_opensky_records_metres(tmp_path: Path) -> None:
    path = _write(tmp_path, "opensky.json", json.dumps(OPENSKY_RECORDS, indent=2))
    assert detect_format(path) == "adsb-records"
    cols, rejects = read_all(AdsbRecordsReader(), path)
    assert rejects == []
    assert cols["src_rec"] == [1, 3]  # the record without a position is skipped
    assert cols["time"] == [1_500_000_009_500_000, 1_500_000_030_000_000]  # lastposupdate, else time
    assert cols["ident"] == ["3c66b0", "4ca2d6"] and cols["name"] == ["DLH4YT", None]
    assert cols["alt_m"][0] == 1050.0 and cols["speed_mps"][0] == 120.5 and cols["course_deg"][0] == 270.0
    a = _attrs(cols)
    assert a[0] == {"vertrate_mps": -3.25, "on_ground": False, "squawk": "1000"} and a[1] == {"on_ground": True}


def test_traffic_records_feet_knots(tmp_path: Path) -> None:
    path = _write(tmp_path, "traffic.json.gz", json.dumps(TRAFFIC_RECORDS))
    assert detect_format(path) == "adsb-records"
    cols, rejects = read_all(AdsbRecordsReader(), path)
    assert rejects == []
    assert cols["time"] == [1_500_000_000_000_000, 1_500_000_001_000_000]
    assert cols["alt_m"] == pytest.approx([3100 * FT_TO_M, 3025 * FT_TO_M])
    assert cols["speed_mps"] == pytest.approx([250 * KT_TO_MPS, 251 * KT_TO_MPS])
    assert _attrs(cols)[0]["vertrate_mps"] == pytest.approx(1024 * FPM_TO_MPS, abs=1e-3)


def _pandas_frame() -> Any:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(TRAFFIC_RECORDS)
    df["timestamp"] = pd.to_datetime(df["timestamp"], unit="ms", utc=True)
    return df


@pytest.mark.parametrize(
    ("orient", "kw"),
    [
        ("records", {}),
        ("records", {"lines": True}),
        ("columns", {}),
        ("index", {}),
        ("split", {}),
        ("table", {"date_format": "iso"}),
        ("records", {"date_format": "iso"}),
        ("columns", {"date_format": "iso", "date_unit": "us"}),
    ],
)
def test_pandas_orients(tmp_path: Path, orient: str, kw: dict[str, Any]) -> None:
    df = _pandas_frame()
    path = tmp_path / f"flights_{orient}.json"
    with warnings.catch_warnings():  # epoch ms: pandas' default before 4, in the files people have
        warnings.simplefilter("ignore")
        df.to_json(path, orient=orient, **{"date_format": "epoch", **kw})
    assert detect_format(path) == "adsb-records"
    cols, rejects = read_all(AdsbRecordsReader(), path)
    assert rejects == []
    assert cols["time"] == [1_500_000_000_000_000, 1_500_000_001_000_000]
    assert cols["ident"] == ["3c66b0", "3c66b0"] and cols["lat"] == [50.1, 50.11]
    assert cols["alt_m"] == pytest.approx([3100 * FT_TO_M, 3025 * FT_TO_M])


def test_pandas_columns_orient_literal(tmp_path: Path) -> None:
    # what DataFrame.to_json() writes by default (orient="columns", epoch ms), without pandas
    text = (
        '{"timestamp":{"0":1500000000000,"1":1500000001000},"icao24":{"0":"3c66b0","1":"3c66b0"},'
        '"latitude":{"0":50.1,"1":null},"longitude":{"0":8.6,"1":null},"altitude":{"0":3000.0,"1":3025.0}}'
    )
    path = _write(tmp_path, "cols.json", text)
    assert detect_format(path) == "adsb-records"
    cols, _ = read_all(AdsbRecordsReader(), path)
    assert cols["src_rec"] == [1] and cols["alt_m"] == pytest.approx([3000 * FT_TO_M])


def test_records_bad_ones_quarantined(tmp_path: Path) -> None:
    recs: list[Any] = [
        {"time": 1500000000, "icao24": "zzzzzz", "lat": 1, "lon": 2},
        {"time": "yesterday", "icao24": "3c66b0", "lat": 1, "lon": 2},
        {"time": 1500000000, "icao24": "3c66b0", "lat": 91, "lon": 2},
        [1, 2, 3],
        {"time": "2017-07-14T02:40:00+02:00", "icao24": "3c66b0", "lat": 1, "lon": 2},
    ]
    text = json.dumps(recs)[:-1] + ', {"time": 1, "icao24": "3c66b0", "lat": 1, "lon": tru}]'
    batches = list(AdsbRecordsReader().read(_write(tmp_path, "r.json", text), ReadOptions(batch_rows=1)))
    rejects = {r.src_rec: r.reason for b in batches for r in b.rejects}
    assert "icao24" in rejects[1] and "time" in rejects[2] and "out of range" in rejects[3]
    assert "not an object" in rejects[4] and "not valid JSON" in rejects[6]
    assert sum(len(b) for b in batches) == 1 and sum(b.records_read for b in batches) == 6
    cols, _ = read_all(AdsbRecordsReader(), _write(tmp_path, "r.json", text))
    assert cols["time"] == [1_500_000_000_000_000 - 2 * 3600 * 1_000_000]


def test_records_forced_on_other_json_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "t.json", TRACE_FULL)
    with pytest.raises(IngestError, match="0 records"):
        read_all(AdsbRecordsReader(), path)


def test_epoch_units() -> None:
    s = 1_500_000_000
    assert {epoch_us(s), epoch_us(s * 10**3), epoch_us(s * 10**6), epoch_us(s * 10**9)} == {s * 10**6}
    assert epoch_us("2017-07-14 02:40:00") == s * 10**6 and epoch_us(None) is None and epoch_us(1e300) is None


def test_detection_keeps_the_other_json_formats(tmp_path: Path) -> None:
    states = _write(tmp_path, "s.json", '{"time": 1700000000, "states": [["abc123", "X", "Y"]]}')
    assert detect_format(states) == "opensky-json"
    fc = '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"icao24": "abc123"}}]}'
    assert detect_format(_write(tmp_path, "f.json", fc)) == "geojson"
    assert get_reader("readsb-trace").name == "readsb-trace" and get_reader("adsb-records").name == "adsb-records"
