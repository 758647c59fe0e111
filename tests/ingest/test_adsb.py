"""Tests of the ADS-B readers (SBS/BaseStation, OpenSky CSV and JSON) and the SBS writer."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.core.errors import IngestError
from atalaya.ingest.adsb import (
    FT_TO_M,
    KT_TO_MPS,
    OpenSkyCsvReader,
    OpenSkyJsonReader,
    SbsReader,
    _ffill_source,
    format_sbs_lines,
)
from atalaya.ingest.base import MAX_LINE_BYTES, ParsedBatch, ReadOptions, read_all

DATA = Path(__file__).parent / "data" / "adsb"
T0 = 1_704_110_400_000_000  # 2024-01-01T12:00:00Z in µs


def _good(icao: str = "A1B2C3", t: str = "12:00:00.000", lat: str = "34.1", lon: str = "-118.2") -> str:
    return f"MSG,3,1,1,{icao},1,2024/01/01,{t},2024/01/01,{t},,35000,,,{lat},{lon},,,0,0,0,0"


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def _batches(reader: Any, path: Path, **kw: Any) -> list[ParsedBatch]:
    return list(reader.read(path, ReadOptions(**kw)))


# --------------------------------------------------------------------------- SBS


def _flight(rng: np.random.Generator, n: int) -> dict[str, Any]:
    k = 7
    idx = rng.integers(0, k, n)
    icaos = np.array([f"{v:06x}" for v in rng.integers(0, 1 << 24, k)])
    calls = np.array([f"N{v}AB" for v in range(k)])
    return {
        "icao24": list(icaos[idx]),
        "time_us": T0 + np.sort(rng.integers(0, 3_600_000, n)) * 1000,
        "lon": rng.uniform(-180, 180, n),
        "lat": rng.uniform(-90, 90, n),
        "alt_m": rng.uniform(0, 12_000, n),
        "speed_mps": rng.uniform(0, 300, n),
        "course_deg": rng.uniform(0, 360, n),
        "callsign": list(calls[idx]),
    }


@pytest.mark.parametrize("batch_rows", [3, 50, 262_144])
def test_sbs_round_trip(tmp_path: Path, batch_rows: int) -> None:
    rng = np.random.default_rng(7)
    f = _flight(rng, 400)
    lines = format_sbs_lines(**f)
    assert len(lines) == 3 * 400  # MSG,1 + MSG,4 + MSG,3 per report
    p = _write(tmp_path, "a.sbs", "\n".join(lines) + "\n")
    cols, rejects = read_all(SbsReader(), p, ReadOptions(batch_rows=batch_rows))
    assert rejects == []
    assert len(cols["time"]) == 400
    np.testing.assert_array_equal(cols["time"], f["time_us"])
    np.testing.assert_allclose(cols["lon"], f["lon"], atol=0.6e-5)
    np.testing.assert_allclose(cols["lat"], f["lat"], atol=0.6e-5)
    np.testing.assert_allclose(cols["alt_m"], f["alt_m"], atol=0.51 * FT_TO_M)
    np.testing.assert_allclose(cols["speed_mps"], f["speed_mps"], atol=0.051 * KT_TO_MPS)
    np.testing.assert_allclose(cols["course_deg"], f["course_deg"], atol=0.051)
    assert cols["ident"] == f["icao24"]
    assert cols["name"] == f["callsign"]
    assert set(cols["sensor"]) == {"ADSB"}
    assert set(cols["kind"]) == {"aircraft"}
    assert set(cols["ident_kind"]) == {"icao24"}
    assert cols["src_rec"] == list(range(3, 1201, 3))  # the MSG,3 of each report


def test_sbs_state_carried_across_batches(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    f = _flight(rng, 200)
    p = _write(tmp_path, "a.sbs", "\n".join(format_sbs_lines(**f, ident_every=25)) + "\n")
    big, _ = read_all(SbsReader(), p, ReadOptions(batch_rows=1 << 20))
    small, _ = read_all(SbsReader(), p, ReadOptions(batch_rows=2))
    assert len(_batches(SbsReader(), p, batch_rows=2)) > 20  # really many batches
    assert big["name"] == small["name"]
    np.testing.assert_array_equal(big["speed_mps"], small["speed_mps"])
    assert big["attrs"] == small["attrs"]


def test_sbs_fill_respects_windows(tmp_path: Path) -> None:
    text = "\n".join(
        [
            "MSG,1,1,1,ABCDEF,1,2024/01/01,12:00:00.000,2024/01/01,12:00:00.000,CS1     ,,,,,,,,,,,",
            "MSG,4,1,1,ABCDEF,1,2024/01/01,12:00:00.000,2024/01/01,12:00:00.000,,,100,270,,,,,,,,",
            "MSG,6,1,1,ABCDEF,1,2024/01/01,12:00:00.000,2024/01/01,12:00:00.000,,,,,,,,7500,1,1,0,0",
            _good("ABCDEF", "12:00:30.000"),  # speed 30 s old: used
            _good("ABCDEF", "12:01:30.000"),  # speed 90 s old: not used; callsign still fresh
            _good("ABCDEF", "12:20:00.000"),  # all stale
            _good("123456", "12:00:30.000"),  # other aircraft: nothing to fill
        ]
    )
    cols, rejects = read_all(SbsReader(), _write(tmp_path, "w.sbs", text + "\n"))
    assert rejects == []
    assert cols["name"] == ["CS1", "CS1", None, None]
    assert cols["speed_mps"][0] == pytest.approx(100 * KT_TO_MPS)
    assert np.isnan(cols["speed_mps"][1:]).all()
    assert cols["course_deg"][0] == 270
    assert json.loads(cols["attrs"][0]) == {"squawk": "7500", "on_ground": False}
    assert json.loads(cols["attrs"][2]) == {"on_ground": False}


def test_sbs_published_samples() -> None:
    # One example line per record type, from the SBS-1 BaseStation port 30003
    # format description (woodair.net, barebones42_socket_data.htm).
    batches = _batches(SbsReader(), DATA / "barebones.sbs")
    rejects = [r for b in batches for r in b.rejects]
    assert rejects == []
    assert sum(b.records_read for b in batches) == 13
    cols, _ = read_all(SbsReader(), DATA / "barebones.sbs")
    assert cols["ident"] == ["400cb6", "4ca2d6"]
    assert cols["src_rec"] == [2, 3]
    assert cols["lat"] == [54.05735, 51.45735]
    assert cols["lon"] == [-4.38826, -1.02826]
    assert cols["alt_m"][1] == pytest.approx(37000 * FT_TO_M)
    assert cols["speed_mps"][0] == pytest.approx(76.4 * KT_TO_MPS)
    assert cols["course_deg"][0] == pytest.approx(258.3)
    expected = np.datetime64("2008-12-02T17:46:16.946", "us").astype(np.int64)
    assert cols["time"][0] == expected
    assert json.loads(cols["attrs"][0]) == {"on_ground": True}  # MSG,2 is a surface position


def test_sbs_bad_input_corpus(tmp_path: Path) -> None:
    lines: list[bytes] = [
        _good().encode(),  # 1 good
        b"MSG,3,1,1,A1B2C3,1,2024/01/01,12:00:00.000",  # 2 wrong field count
        _good(icao="A1B2CZ").encode(),  # 3 bad hex
        _good().replace("2024/01/01", "2024/02/30", 1).encode(),  # 4 no such day
        _good(t="25:00:00.000").encode(),  # 5 bad hour
        _good(lat="north").encode(),  # 6 non-numeric
        _good(lat="91.5").encode(),  # 7 out of range
        _good(lon="-181").encode(),  # 8 out of range
        b"",  # 9 empty: skipped
        _good(icao="B1B2C3").encode()[:-4] + b"\xff\xfe,0,0",  # 10 undecodable
        b"XYZ,1,2,3",  # 11 unknown record type
        b"MSG," + b"x" * (MAX_LINE_BYTES + 10),  # 12 absurdly long
        _good(icao="C1C2C3").encode(),  # 13 good
        _good(lat="", lon="5.0").encode(),  # 14 half a position
        _good(icao="D1D2D3").encode()[:40],  # 15 truncated last line, no newline
    ]
    p = _write(tmp_path, "bad.sbs", b"\n".join(lines))
    for batch_rows in (4, 1 << 18):
        batches = _batches(SbsReader(), p, batch_rows=batch_rows)
        cols, rejects = read_all(SbsReader(), p, ReadOptions(batch_rows=batch_rows))
        assert cols["ident"] == ["a1b2c3", "c1c2c3"]
        assert cols["src_rec"] == [1, 13]
        reasons = {r.src_rec: r.reason for r in rejects}
        assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 14, 15]
        assert "field count" in reasons[2]
        assert "hex" in reasons[3]
        assert "date/time" in reasons[4]
        assert "date/time" in reasons[5]
        assert "non-numeric latitude" in reasons[6]
        assert "latitude out of range" in reasons[7]
        assert "longitude out of range" in reasons[8]
        assert "UTF-8" in reasons[10]
        assert "record type" in reasons[11]
        assert "longer than" in reasons[12]
        assert "without" in reasons[14]
        assert "field count" in reasons[15]
        assert all(len(r.raw) <= 512 for r in rejects)
        assert sum(b.records_read for b in batches) == 15


def test_sbs_crlf_and_gzip(tmp_path: Path) -> None:
    text = "\r\n".join([_good(), _good(icao="C1C2C3")]) + "\r\n"
    p = tmp_path / "a.sbs.gz"
    with gzip.open(p, "wb") as fh:
        fh.write(text.encode())
    cols, rejects = read_all(SbsReader(), p)
    assert rejects == []
    assert cols["ident"] == ["a1b2c3", "c1c2c3"]
    assert json.loads(cols["attrs"][0]) == {"on_ground": False}


def test_sbs_tisb_address_is_other(tmp_path: Path) -> None:
    cols, rejects = read_all(SbsReader(), _write(tmp_path, "t.sbs", _good(icao="~A1B2C3") + "\n"))
    assert rejects == []
    assert cols["ident"] == ["~a1b2c3"]
    assert cols["ident_kind"] == ["other"]


def test_sbs_empty_file(tmp_path: Path) -> None:
    cols, rejects = read_all(SbsReader(), _write(tmp_path, "e.sbs", b""))
    assert rejects == []
    assert cols.get("time", []) == []


def test_format_sbs_lines_empty_and_ground() -> None:
    assert format_sbs_lines(icao24=[], time_us=np.zeros(0, dtype=np.int64), lon=np.zeros(0), lat=np.zeros(0)) == []
    (line,) = format_sbs_lines(
        icao24=["abcdef"],
        time_us=np.array([T0]),
        lon=np.array([-0.000001]),
        lat=np.array([np.nan]),
        on_ground=np.array([True]),
    )
    fields = line.split(",")
    assert len(fields) == 22
    assert fields[1] == "2"
    assert fields[14] == ""  # NaN → empty
    assert fields[15] == "0.00000"  # no exponent, no negative zero
    assert fields[21] == "-1"


def test_sbs_sniff() -> None:
    head = (DATA / "barebones.sbs").read_bytes()
    assert SbsReader().sniff(head, Path("x")) > 0.9
    assert SbsReader().sniff(b"!AIVDM,1,1,,A,13aEOK?P00PD2wVMdLDRhgvL289?,0*26\n", Path("x")) == 0.0
    assert OpenSkyCsvReader().sniff(head, Path("x")) == 0.0
    assert OpenSkyJsonReader().sniff(head, Path("x")) == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), max_size=60))
def test_ffill_source_matches_naive(rows: list[tuple[int, bool]]) -> None:
    codes = np.array([c for c, _ in rows], dtype=np.int64)
    valid = np.array([v for _, v in rows], dtype=bool)
    expected = []
    last: dict[int, int] = {}
    for i, (c, v) in enumerate(rows):
        if v:
            last[c] = i
        expected.append(last.get(c, -1))
    assert _ffill_source(codes, valid).tolist() == expected


# --------------------------------------------------------------------------- OpenSky CSV

_OS_HEADER = (
    "time,icao24,lat,lon,velocity,heading,vertrate,callsign,onground,alert,spi,squawk,"
    "baroaltitude,geoaltitude,lastposupdate,lastcontact"
)


def test_opensky_csv_fixture() -> None:
    batches = _batches(OpenSkyCsvReader(), DATA / "opensky_states.csv")
    cols, rejects = read_all(OpenSkyCsvReader(), DATA / "opensky_states.csv")
    assert rejects == []
    assert sum(b.records_read for b in batches) == 3  # the row without position is consumed, skipped
    assert cols["ident"] == ["a0a7a4", "a0a7a4"]
    assert cols["name"] == ["AAL2263", "AAL2263"]
    assert cols["src_rec"] == [2, 4]
    assert cols["time"] == [1590364799790000, 1590364810000000]  # lastposupdate, else time
    assert cols["alt_m"] == [457.2, 400.0]  # geoaltitude, else baroaltitude
    assert cols["speed_mps"] == [73.2, 72.0]
    assert cols["course_deg"] == [251.6, 251.0]
    assert json.loads(cols["attrs"][0]) == {
        "squawk": "5332",
        "on_ground": False,
        "alert": False,
        "spi": False,
        "vertrate_mps": -3.9,
    }


def test_opensky_csv_bad_rows_do_not_abort(tmp_path: Path) -> None:
    rows = [
        _OS_HEADER,
        "1590364800,a0a7a4,33.9,-118.3,73.2,251.6,-3.9,AAL1,False,False,False,5332,419.1,457.2,1590364799,1590364799",
        "1590364800,a0a7a5,33.9,-118.3,fast,251.6,-3.9,AAL2,False,False,False,5332,419.1,457.2,1590364799,1590364799",
        "1590364800,zzzzzz,33.9,-118.3,73.2,251.6,-3.9,AAL3,False,False,False,5332,419.1,457.2,1590364799,1590364799",
        "1590364800,a0a7a6,33.9,-118.3,73.2,251.6",
        "1590364800,a0a7a7,95.0,-118.3,73.2,251.6,-3.9,AAL4,False,False,False,5332,419.1,457.2,1590364799,1590364799",
        "1590364800,a0a7a8,33.9,-118.3,73.2,251.6,-3.9,AAL5,maybe,False,False,5332,419.1,457.2,1590364799,1590364799",
        "1590364800,a0a7a9,,,73.2,251.6,-3.9,AAL6,False,False,False,5332,419.1,457.2,,1590364799",
        "1590364800,a0a7aa,34.0,-118.0,73.2,251.6,-3.9,AAL7,True,False,False,,419.1,,,1590364799",
    ]
    p = _write(tmp_path, "s.csv", "\n".join(rows) + "\n")
    cols, rejects = read_all(OpenSkyCsvReader(), p)
    assert cols["ident"] == ["a0a7a4", "a0a7aa"]
    assert cols["alt_m"] == [457.2, 419.1]
    reasons = {r.src_rec: r.reason for r in rejects}
    assert sorted(reasons) == [3, 4, 5, 6, 7]
    assert "non-numeric velocity" in reasons[3]
    assert "icao24" in reasons[4]
    assert "field count" in reasons[5]
    assert "lat out of range" in reasons[6]
    assert "boolean onground" in reasons[7]


def test_opensky_csv_requires_header(tmp_path: Path) -> None:
    p = _write(tmp_path, "s.csv", "1590364800,a0a7a4,33.9,-118.3\n")
    with pytest.raises(IngestError, match="header"):
        list(OpenSkyCsvReader().read(p, ReadOptions()))


def test_opensky_csv_sniff() -> None:
    head = (DATA / "opensky_states.csv").read_bytes()
    assert OpenSkyCsvReader().sniff(head, Path("s.csv")) > 0.95
    assert SbsReader().sniff(head, Path("s.csv")) == 0.0
    assert OpenSkyCsvReader().sniff(b"time,lat,lon,mmsi\n", Path("s.csv")) == 0.0


# --------------------------------------------------------------------------- OpenSky JSON


def _state(icao: str, lon: float | None, lat: float | None, t_pos: int | None = 1700000000) -> list[Any]:
    return [icao, "DAL123  ", "United States", t_pos, 1700000005, lon, lat, 10000.0, False, 230.5, 87.0,
            None, None, None, "1200", False, 0]  # fmt: skip


def test_opensky_json_single_response_with_nulls(tmp_path: Path) -> None:
    doc = {
        "time": 1700000010,
        "states": [
            _state("abc123", -100.5, 30.25),
            _state("abc124", None, None),  # heard, not located: skipped
            _state("abc125", -100.0, 31.0, t_pos=None),  # falls back to last_contact
            ["abc126", None],  # too short
            _state("xyz", 1.0, 1.0),  # bad icao
        ],
    }
    p = _write(tmp_path, "s.json", json.dumps(doc, indent=2))
    batches = _batches(OpenSkyJsonReader(), p)
    cols, rejects = read_all(OpenSkyJsonReader(), p)
    assert cols["ident"] == ["abc123", "abc125"]
    assert cols["time"] == [1700000000_000000, 1700000005_000000]
    assert cols["alt_m"] == [10000.0, 10000.0]  # geo null → baro
    assert cols["name"] == ["DAL123", "DAL123"]
    assert cols["src_rec"] == [1, 3]
    assert np.isnan(cols["alt_m"]).sum() == 0
    assert json.loads(cols["attrs"][0])["squawk"] == "1200"
    assert [r.src_rec for r in rejects] == [4, 5]
    assert sum(b.records_read for b in batches) == 5


def test_opensky_json_lines_and_bad_line(tmp_path: Path) -> None:
    lines = [
        json.dumps({"time": 1, "states": [_state("abc123", 1.0, 2.0)]}),
        "{not json",
        json.dumps({"time": 2, "states": None}),
        json.dumps({"time": 3, "states": [_state("abc124", 3.0, 4.0), _state("abc125", 5.0, 6.0)]}),
    ]
    p = _write(tmp_path, "s.jsonl", "\n".join(lines) + "\n")
    cols, rejects = read_all(OpenSkyJsonReader(), p, ReadOptions(batch_rows=1))
    assert cols["ident"] == ["abc123", "abc124", "abc125"]
    assert cols["src_rec"] == [1, 3, 4]
    assert len(rejects) == 1
    assert "bad JSON" in rejects[0].reason


def test_opensky_json_sniff_and_empty(tmp_path: Path) -> None:
    assert OpenSkyJsonReader().sniff(b'{"type": "FeatureCollection"}', Path("a.json")) == 0.0
    cols, rejects = read_all(OpenSkyJsonReader(), _write(tmp_path, "e.json", ""))
    assert cols.get("time", []) == []
    assert rejects == []
