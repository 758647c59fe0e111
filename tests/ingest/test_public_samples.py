"""Public third-party captures, read by the real readers and checked against facts taken from the files themselves.

Every file under ``tests/ingest/data/<format>/`` named here is a byte-for-byte copy (or a contiguous excerpt) of
a published sample; the folder's ``SOURCES.md`` gives its repository, path, commit and licence. The expected
values are not copied from the readers' output: AIS positions come from pyais decoding the same sentences, FIRMS
rows from the standard library's CSV parser, GPX/KML values from the XML text.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyais import decode as pyais_decode

from atalaya.cli.main import main
from atalaya.core.errors import IngestError
from atalaya.ingest.base import ReadOptions, Reject, read_all
from atalaya.ingest.registry import detect_format, get_reader

DATA = Path(__file__).parent / "data"
REF = datetime(2024, 6, 1, 12, tzinfo=UTC)
REF_US = int(REF.timestamp()) * 1_000_000


def us(text: str) -> int:
    """Microseconds since the epoch of an ISO 8601 time with a zone."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1_000_000)


def read(fmt: str, name: str, **opts: Any) -> tuple[dict[str, list[Any]], list[Reject]]:
    path = DATA / name
    assert detect_format(path) == fmt
    return read_all(get_reader(fmt), path, ReadOptions(**opts))


def reasons(rejects: Sequence[Reject]) -> dict[int, str]:
    return {r.src_rec: r.reason for r in rejects}


def lines_of(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


def pyais_fix(sentences: Sequence[str]) -> tuple[str, float, float]:
    """``(mmsi, lon, lat)`` pyais decodes from the bare sentences of one message (tag blocks stripped)."""
    bare = [s[s.rindex("\\") + 1 :] if s.startswith("\\") else s for s in sentences]
    d = pyais_decode(*[b.encode() for b in bare]).asdict()
    lon, lat = d["lon"], d["lat"]
    assert isinstance(lon, float) and isinstance(lat, float)
    return str(d["mmsi"]), lon, lat


def ingest_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    try:
        main([*args, "--json"])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert code == 0, out
    return out


# --------------------------------------------------------------------------- AIS (pyais test captures)


def test_pyais_mixed_capture_keeps_every_good_position_and_names_each_bad_line() -> None:
    """Comments, blank lines, non-AIS NMEA, garbage, tag blocks and Gatehouse wrappers in one published file."""
    name = "nmea/pyais_mixed.txt"
    text = lines_of(name)
    cols, rejects = read("nmea", name, reference_time_us=REF_US)

    # the lines carrying one-sentence position reports (1-based), read independently by pyais
    position_lines = [2, 3, 4, 5, 10, 11, 30, 34]
    want = [pyais_fix([text[i - 1]]) for i in position_lines]
    assert cols["src_rec"] == position_lines
    assert cols["ident"] == [m for m, _, _ in want]
    np.testing.assert_allclose(cols["lon"], [x for _, x, _ in want], atol=1e-6)
    np.testing.assert_allclose(cols["lat"], [y for _, _, y in want], atol=1e-6)
    assert set(cols["sensor"]) == {"AIS"} and set(cols["kind"]) == {"vessel"}

    # the sentence after "$PGHP,1,2008,5,9,0,0,0,10,..." takes the wrapper's time (10 ms past midnight);
    # every other one the time the capture was received
    t = dict(zip(cols["src_rec"], cols["time"], strict=True))
    assert t[30] == us("2008-05-09T00:00:00.010Z")
    assert all(abs(t[i] - REF_US) < 1_000_000 for i in position_lines if i != 30)

    # only the genuinely malformed lines are quarantined, each with its own reason; the well-formed
    # non-AIS sentences ($GPGGA, $GPRTE, $GPR00, $IIMWV) and the type 5 static reports are not errors
    r = reasons(rejects)
    assert sorted(r) == [14, 21, 23, 26, 27, 35]
    assert text[13] == "foobar" and "no NMEA sentence" in r[14]
    assert text[20] == "IamNotAnAisMessage1111" and "no NMEA sentence" in r[21]
    for i in (23, 26, 27):  # "\g:...*A\" : a one-digit tag block checksum that does not match
        assert "*A\\" in text[i - 1] and r[i].startswith("bad tag block checksum: got A")
    # "$PGHP,1,2009,...*17" is the 2008 wrapper with its year edited and the checksum left as it was
    assert text[34].startswith("$PGHP,1,2009") and r[35] == "bad $PGHP checksum: got 17, computed 16"


def test_pyais_mixed_capture_without_received_time_keeps_only_the_wrapped_sentence() -> None:
    cols, rejects = read("nmea", "nmea/pyais_mixed.txt")
    assert cols["src_rec"] == [30]
    assert cols["time"] == [us("2008-05-09T00:00:00.010Z")]
    no_time = sorted(r.src_rec for r in rejects if "--received-at" in r.reason)
    assert no_time == [2, 3, 4, 5, 10, 11, 34]


def test_pyais_gatehouse_capture_wrapper_applies_to_the_next_sentence_only() -> None:
    name = "nmea/pyais_timestamped.ais"
    text = lines_of(name)
    cols, rejects = read("nmea", name, reference_time_us=REF_US)
    assert cols["src_rec"] == [2, 6, 8, 9]
    want = [pyais_fix([text[i - 1]]) for i in cols["src_rec"]]
    assert cols["ident"] == [m for m, _, _ in want]
    np.testing.assert_allclose(cols["lon"], [x for _, x, _ in want], atol=1e-6)
    np.testing.assert_allclose(cols["lat"], [y for _, _, y in want], atol=1e-6)
    assert cols["time"][0] == us("2008-05-09T00:00:00.010Z")
    # line 6 follows a comment, not a wrapper; lines 8 and 9 follow the wrapper whose checksum is wrong
    assert all(abs(x - REF_US) < 1_000_000 for x in cols["time"][1:])
    assert reasons(rejects) == {7: "bad $PGHP checksum: got 17, computed 16"}


def test_pyais_receiver_capture_excerpt_matches_pyais_and_quarantines_empty_payloads() -> None:
    name = "nmea/pyais_nmea_data_sample_head.txt"
    text = lines_of(name)
    cols, rejects = read("nmea", name, reference_time_us=REF_US)
    empty = [i for i, s in enumerate(text, 1) if s.split(",")[5] == ""]
    assert empty == [4, 6, 13, 28, 39]
    assert {r.src_rec: r.reason for r in rejects} == dict.fromkeys(empty, "empty AIS payload")
    kept = [i for i in range(1, len(text) + 1) if i not in empty]
    want = [pyais_fix([text[i - 1]]) for i in kept]
    assert cols["src_rec"] == kept and len(kept) == 35
    assert cols["ident"] == [m for m, _, _ in want]
    np.testing.assert_allclose(cols["lon"], [x for _, x, _ in want], atol=1e-6)
    np.testing.assert_allclose(cols["lat"], [y for _, _, y in want], atol=1e-6)
    # an Aegean capture: every fix lies in the eastern Mediterranean
    assert min(cols["lon"]) > 19 and max(cols["lon"]) < 30
    assert min(cols["lat"]) > 34 and max(cols["lat"]) < 42


def test_ais_captures_through_the_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = str(tmp_path / "ws")
    main(["init", ws])
    capsys.readouterr()
    s = ingest_json(
        capsys,
        "-w", ws, "ingest", str(DATA / "nmea/pyais_nmea_data_sample_head.txt"),
        str(DATA / "nmea/pyais_mixed.txt"), "--received-at", REF.isoformat(),
    )  # fmt: skip
    assert s["totals"]["accepted"] == 35 + 8
    assert s["totals"]["quarantined"] == 5 + 6


# --------------------------------------------------------------------------- NASA FIRMS (area API downloads)


def firms_rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(newline="") as fh:
        return list(csv.DictReader(fh))


def firms_time(row: dict[str, str]) -> int:
    hhmm = row["acq_time"].zfill(4)
    return us(f"{row['acq_date']}T{hhmm[:2]}:{hhmm[2:]}:00Z")


def check_firms(cols: dict[str, list[Any]], rows: list[dict[str, str]], confidence: list[float]) -> None:
    assert cols["src_rec"] == list(range(2, len(rows) + 2))
    assert cols["time"] == [firms_time(r) for r in rows]
    np.testing.assert_allclose(cols["lat"], [float(r["latitude"]) for r in rows], atol=1e-9)
    np.testing.assert_allclose(cols["lon"], [float(r["longitude"]) for r in rows], atol=1e-9)
    np.testing.assert_allclose(cols["confidence"], confidence, atol=1e-6)
    sides = [(1000 * float(r["scan"]), 1000 * float(r["track"])) for r in rows]
    np.testing.assert_allclose(cols["pos_err_m"], [max(s) / math.sqrt(12) for s in sides], rtol=1e-6)
    np.testing.assert_allclose(cols["err_minor_m"], [min(s) / math.sqrt(12) for s in sides], rtol=1e-6)
    assert set(cols["sensor"]) == {"IR"} and set(cols["kind"]) == {"thermal"}
    attrs = [json.loads(a) for a in cols["attrs"]]
    assert [a["satellite"] for a in attrs] == [r["satellite"] for r in rows]
    assert [a["frp"] for a in attrs] == [float(r["frp"]) for r in rows]
    assert "course_deg" not in cols or all(c is None or np.isnan(c) for c in cols["course_deg"])


def test_firms_modis_download_without_final_newline() -> None:
    name = "firms/modis_nrt_2026-09-25.csv"
    assert not (DATA / name).read_bytes().endswith(b"\n")
    rows = firms_rows(name)
    cols, rejects = read("firms", name)
    assert rejects == [] and len(rows) == 16
    check_firms(cols, rows, [int(r["confidence"]) / 100 for r in rows])
    # the area API drops leading zeros: "345" is 03:45 UTC
    assert rows[0]["acq_time"] == "345" and cols["time"][0] == us("2026-09-25T03:45:00Z")
    assert {json.loads(a)["satellite"] for a in cols["attrs"]} == {"Terra", "Aqua"}


def test_firms_viirs_noaa20_download_confidence_classes() -> None:
    name = "firms/viirs_noaa20_nrt_2026-09-25_head.csv"
    rows = firms_rows(name)
    cols, rejects = read("firms", name)
    assert rejects == [] and len(rows) == 20
    assert [r["confidence"] for r in rows].count("h") == 3
    check_firms(cols, rows, [{"n": 0.6, "h": 0.9}[r["confidence"]] for r in rows])
    assert cols["time"][0] == us("2026-09-25T07:18:00Z")


def test_firms_downloads_through_the_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = str(tmp_path / "ws")
    main(["init", ws])
    capsys.readouterr()
    s = ingest_json(capsys, "-w", ws, "ingest", str(DATA / "firms"))
    assert s["totals"]["accepted"] == 16 + 20
    assert s["totals"]["quarantined"] == 0


# --------------------------------------------------------------------------- GPX and KML (gpxpy, GDAL autotest)


def test_garmin_connect_gpx_export() -> None:
    cols, rejects = read("gpx", "tracks/gpxpy_garmin_gpxtpx.gpx")
    assert rejects == []
    assert cols["time"] == [us("2017-11-19T11:23:07Z")]
    assert cols["lat"] == [43.12346] and cols["lon"] == [8.74548]
    np.testing.assert_allclose(cols["alt_m"], [218.4], atol=1e-3)
    assert cols["sortie_id"] == ["roadbiking test track"]
    assert json.loads(cols["attrs"][0]) == {"platform_type": "road_biking"}


def test_gdal_gpx_sample_timed_waypoint_kept_untimed_points_rejected() -> None:
    name = "tracks/gdal_test.gpx"
    text = lines_of(name)
    cols, rejects = read("gpx", name)
    # the one waypoint with a time; "+01:00" is honoured
    assert text[cols["src_rec"][0] - 1] == '<wpt lat="0" lon="1">'
    assert cols["time"] == [us("2007-11-25T16:58:00Z")]
    assert (cols["lon"], cols["lat"], cols["name"]) == ([1.0], [0.0], ["waypoint name"])
    # the four track points have no <time>: quarantined, each at its own line
    r = reasons(rejects)
    assert sorted(r) == [i for i, s in enumerate(text, 1) if s.strip().startswith("<trkpt")]
    assert all("no timestamps" in x for x in r.values())
    # route points (planned, even the one with a time) and the untimed waypoint are not observations
    assert all(not text[i - 1].strip().startswith(("<rtept", '<wpt lat="3"')) for i in r)


def test_gdal_kml_track_without_when_is_rejected_with_the_counts() -> None:
    cols, rejects = read("kml", "tracks/gdal_gx_track_without_when.kml", reference_time_us=REF_US)
    assert cols.get("time", []) == []
    assert [(r.src_rec, r.reason) for r in rejects] == [(6, "gx:Track has 0 <when> but 7 <gx:coord>")]


# --------------------------------------------------------------------------- a Flightradar24 export (traffic)

FT = 0.3048
KT = 1852 / 3600


def fr24_rows() -> list[dict[str, str]]:
    with (DATA / "tabular/fr24_JL516_head.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def check_jal516(cols: dict[str, list[Any]], rows: list[dict[str, str]]) -> None:
    lat_lon = [tuple(float(v) for v in r["Position"].split(",")) for r in rows]
    assert cols["time"] == [int(r["Timestamp"]) * 1_000_000 for r in rows]
    assert cols["time"] == [us(r["UTC"]) for r in rows]
    np.testing.assert_allclose(cols["lat"], [a for a, _ in lat_lon], atol=1e-9)
    np.testing.assert_allclose(cols["lon"], [b for _, b in lat_lon], atol=1e-9)
    np.testing.assert_allclose(cols["alt_m"], [int(r["Altitude"]) * FT for r in rows], rtol=1e-5)
    np.testing.assert_allclose(cols["speed_mps"], [int(r["Speed"]) * KT for r in rows], rtol=1e-5)
    np.testing.assert_allclose(cols["course_deg"], [int(r["Direction"]) for r in rows], atol=1e-4)
    # the climb out of New Chitose: south-bound, never descending
    assert all(np.diff(cols["lat"]) < 0) and all(np.diff(cols["alt_m"]) >= 0)


def test_flightradar24_csv_export() -> None:
    """Latitude and longitude share the quoted Position field; altitude is in feet and speed in knots."""
    cols, rejects = read("fr24-csv", "tabular/fr24_JL516_head.csv")
    assert rejects == []
    check_jal516(cols, fr24_rows())
    assert set(cols["ident"]) == {"JAL516"} and set(cols["ident_kind"]) == {"callsign"}
    assert set(cols["sensor"]) == {"ADSB"} and set(cols["kind"]) == {"aircraft"}


def test_flightradar24_export_through_the_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = str(tmp_path / "ws")
    main(["init", ws])
    capsys.readouterr()
    s = ingest_json(capsys, "-w", ws, "ingest", str(DATA / "tabular/fr24_JL516_head.csv"))
    assert s["totals"]["accepted"] == 20 and s["totals"]["quarantined"] == 0


def jal516_features(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The export's rows as GeoJSON features, in the observation units (feet and knots converted)."""
    out = []
    for r in rows:
        lat, lon = (float(v) for v in r["Position"].split(","))
        props = {
            "time": r["UTC"], "name": r["Callsign"], "alt_m": int(r["Altitude"]) * FT,
            "speed_mps": int(r["Speed"]) * KT, "course_deg": int(r["Direction"]), "sensor": "ADSB", "kind": "aircraft",
        }  # fmt: skip
        out.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": props})
    return out


def test_flightradar24_flight_rebuilt_as_geojson(tmp_path: Path) -> None:
    rows = fr24_rows()
    path = tmp_path / "jal516.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": jal516_features(rows)}))
    cols, rejects = read_all(get_reader(detect_format(path)), path)
    assert detect_format(path) == "geojson" and rejects == []
    check_jal516(cols, rows)
    assert set(cols["name"]) == {"JAL516"} and set(cols["kind"]) == {"aircraft"}


def test_flightradar24_flight_rebuilt_as_geoparquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    rows = fr24_rows()
    feats = jal516_features(rows)
    props = [f["properties"] for f in feats]
    geom = shapely.to_wkb([shapely.Point(f["geometry"]["coordinates"]) for f in feats])
    table = pa.table(
        {
            "time": pa.array([us(p["time"]) for p in props], pa.timestamp("us", tz="UTC")),
            **{k: [p[k] for p in props] for k in ("name", "alt_m", "speed_mps", "course_deg", "sensor", "kind")},
            "geometry": pa.array(list(geom), pa.binary()),
        }
    )
    geo = {"version": "1.1.0", "primary_column": "geometry",
           "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Point"]}}}  # fmt: skip
    path = tmp_path / "jal516.parquet"
    pq.write_table(table.replace_schema_metadata({"geo": json.dumps(geo)}), path, row_group_size=7)
    assert detect_format(path) == "geoparquet"
    cols, rejects = read_all(get_reader("geoparquet"), path)
    assert rejects == []
    check_jal516(cols, rows)


# --------------------------------------------------------------------------- a traffic record table (zero-g flight)


def test_traffic_records_course_is_the_track_not_the_heading() -> None:
    """traffic's records carry both ``track`` (over the ground) and ``heading`` (the nose, 6° off in this wind)."""
    name = "adsb/traffic_zero_gravity_head.json"
    recs = json.loads((DATA / name).read_text())
    cols, rejects = read("adsb-records", name)
    assert rejects == [] and len(recs) == 10
    assert cols["time"] == [us(r["timestamp"]) for r in recs]
    assert set(cols["ident"]) == {"38cf9b"} and set(cols["name"]) == {"ZEROG"}
    np.testing.assert_allclose(cols["lat"], [r["latitude"] for r in recs], atol=1e-9)
    np.testing.assert_allclose(cols["lon"], [r["longitude"] for r in recs], atol=1e-9)
    np.testing.assert_allclose(cols["alt_m"], [r["altitude"] * FT for r in recs], rtol=1e-6)
    np.testing.assert_allclose(cols["speed_mps"], [r["groundspeed"] * KT for r in recs], rtol=1e-6)
    np.testing.assert_allclose(cols["course_deg"], [r["track"] for r in recs], atol=1e-4)
    attrs = [json.loads(a) for a in cols["attrs"]]
    assert [a["heading_deg"] for a in attrs] == [r["heading"] for r in recs]
    assert [a["squawk"] for a in attrs] == ["2630"] * 10
    np.testing.assert_allclose([a["vertrate_mps"] for a in attrs], [-384 * FT / 60] * 10, atol=1e-3)
    # eastbound over the Channel: the track (88-89°) and the heading (94-95°) differ by the drift
    assert all(5 < h - t < 7 for h, t in zip([r["heading"] for r in recs], cols["course_deg"], strict=True))


# --------------------------------------------------------------------------- CoT a TAK server received (FreeTAKServer)

FTS = "cot/freetakserver"


def test_atak_phone_with_a_fix_keeps_its_details() -> None:
    cols, rejects = read("cot", f"{FTS}/a-f-G-U-C-1581185463802.xml")
    assert rejects == []
    assert cols["time"] == [us("2020-02-08T18:10:58Z")]
    assert (cols["lat"], cols["lon"]) == ([43.967183], [-66.126446])
    np.testing.assert_allclose(cols["pos_err_m"], [156.5])
    np.testing.assert_allclose(cols["course_deg"], [23.80933423], atol=1e-4)
    assert (cols["ident"], cols["ident_kind"], cols["name"]) == (["ANDROID-351811095448994"], ["cot_uid"], ["C0rv0"])
    attrs = json.loads(cols["attrs"][0])
    assert attrs["affiliation"] == "f" and attrs["stale"] == "2020-02-08T18:12:13.000Z"
    assert attrs["detail"]["__group"] == {"name": "Yellow", "role": "Team Member"}
    assert attrs["detail"]["takv"]["device"] == "SAMSUNG SM-G950W"


def test_wintak_command_post_has_no_error_estimate() -> None:
    cols, rejects = read("cot", f"{FTS}/a-f-G-E-V-C-1581185447835.xml")
    assert rejects == []
    assert cols["name"] == ["Eliopoli HQ"] and cols["time"] == [us("2020-02-08T18:10:44Z")]
    assert np.isnan(cols["pos_err_m"][0])  # ce 9999999.0: unknown, not 10,000 km
    assert json.loads(cols["attrs"][0])["detail"]["__group"]["role"] == "HQ"


@pytest.mark.parametrize("name", ["a-f-G-U-C-1581185446278.xml", "b-t-f-1581185463563.xml"])
def test_events_from_a_tablet_without_a_fix_are_quarantined(name: str) -> None:
    text = (DATA / FTS / name).read_text()
    assert "lat='-0.004287826538927404'" in text and "ce='9999999.0'" in text
    cols, rejects = read("cot", f"{FTS}/{name}")
    assert cols.get("time", []) == []
    assert len(rejects) == 1 and "without a fix" in rejects[0].reason and "no GPS position" in rejects[0].reason


def test_tak_server_events_through_the_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = str(tmp_path / "ws")
    main(["init", ws])
    capsys.readouterr()
    s = ingest_json(capsys, "-w", ws, "ingest", str(DATA / FTS))
    assert s["totals"]["accepted"] == 2 and s["totals"]["quarantined"] == 2


# --------------------------------------------------------------------------- a USGS GeoJSON feed


def test_usgs_feed_times_ids_and_properties() -> None:
    name = "geojson/usgs_all_hour_2017-09-14.geojson"
    feats = json.loads((DATA / name).read_text())["features"]
    cols, rejects = read("geojson", name, defaults={"sensor": "OTHER", "kind": "unknown"})
    assert rejects == [] and len(feats) == 9
    assert cols["src_rec"] == list(range(9))
    assert cols["time"] == [f["properties"]["time"] * 1000 for f in feats]  # epoch ms
    assert cols["time"][0] == us("2017-09-14T02:33:59.520Z")
    assert cols["ident"] == [f["id"] for f in feats]
    assert cols["lon"] == [f["geometry"]["coordinates"][0] for f in feats]
    assert cols["lat"] == [f["geometry"]["coordinates"][1] for f in feats]
    attrs = [json.loads(a) for a in cols["attrs"]]
    assert [a["place"] for a in attrs] == [f["properties"]["place"] for f in feats]
    assert attrs[5]["mag"] == 3.2 and attrs[5]["felt"] == 6 and attrs[0]["rms"] is None
    assert all("time" not in a for a in attrs)


def test_usgs_feed_needs_sensor_and_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(DATA / "geojson/usgs_all_hour_2017-09-14.geojson")
    with pytest.raises(IngestError, match="no column for sensor, kind"):
        read_all(get_reader("geojson"), Path(path))
    ws = str(tmp_path / "ws")
    main(["init", ws])
    capsys.readouterr()
    s = ingest_json(capsys, "-w", ws, "ingest", path, "--set", "sensor=OTHER", "--set", "kind=unknown")
    assert s["totals"]["accepted"] == 9 and s["totals"]["quarantined"] == 0


def test_gpsbabel_track_with_the_32_bit_epoch_minimum_is_quarantined_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every point of this hike carries 1901-12-13T20:45:52Z (-2**31 s): a device that never had the time."""
    name = "tracks/gpxpy_Mojstrovka.gpx"
    text = (DATA / name).read_text()
    assert text.count("<trkpt ") == text.count("<time>1901-12-13T20:45:52.2073437Z</time>") == 184
    cols, rejects = read("gpx", name)
    assert rejects == [] and len(cols["time"]) == 184
    assert {t // 1_000_000 for t in cols["time"]} == {-(2**31)}  # whole seconds: the int32 minimum
    assert min(cols["lat"]) == 46.43035 and max(cols["lat"]) == 46.435641  # the file's <bounds>
    assert min(cols["lon"]) == 13.738842 and max(cols["lon"]) == 13.748333
    ws = str(tmp_path / "ws")
    main(["init", ws])
    capsys.readouterr()
    s = ingest_json(capsys, "-w", ws, "ingest", str(DATA / name))
    assert s["totals"]["accepted"] == 0 and s["totals"]["quarantined"] == 184
    assert s["quarantine_reasons"] == {"time before 1980-01-01 (out of range)": 184}


def test_garmin_log_as_gpx_and_as_gpsbabel_kml_gives_one_track() -> None:
    """GPSBabel writes the same log as one GPX <trk> and as one KML Placemark per point ("ACTIVE LOG #2-<n>")."""
    gpx, gpx_rejects = read("gpx", "tracks/gpxpy_cerknicko-jezero_head.gpx")
    kml, kml_rejects = read("kml", "tracks/gpxpy_cerknicko-jezero_head.kml")
    assert gpx_rejects == [] and len(gpx["time"]) == 123  # the seven untimed waypoints are places, skipped
    assert set(gpx["sortie_id"]) == set(kml["sortie_id"]) == set(kml["ident"]) == {"ACTIVE LOG #2"}
    assert gpx["time"][0] == us("2010-08-05T14:23:59Z") and gpx["time"][-1] == us("2010-08-05T14:57:37Z")
    n = len(kml["time"])
    assert n == 12 and kml["time"] == gpx["time"][:n]
    np.testing.assert_allclose(kml["lon"], gpx["lon"][:n], atol=1e-6)  # KML keeps 6 decimals
    np.testing.assert_allclose(kml["lat"], gpx["lat"][:n], atol=1e-6)
    np.testing.assert_allclose(kml["alt_m"], gpx["alt_m"][:n], atol=1e-3)
    # KML waypoints without a time are quarantined (GPX ones are skipped as planned places)
    assert len(kml_rejects) == 7 and all("no timestamps" in r.reason for r in kml_rejects)


def test_a_point_placemark_named_like_a_track_point_outside_its_folder_keeps_its_name(tmp_path: Path) -> None:
    p = tmp_path / "a.kml"
    p.write_text(
        '<kml xmlns="http://www.opengis.net/kml/2.2"><Document><name>Sightings</name><Folder><name>Boats</name>'
        "<Placemark><name>PANGA-7</name><TimeStamp><when>2024-01-01T00:00:00Z</when></TimeStamp>"
        "<Point><coordinates>-94.1,18.2,0</coordinates></Point></Placemark>"
        "<Placemark><name>Boats-2</name><TimeStamp><when>2024-01-01T00:01:00Z</when></TimeStamp>"
        "<Point><coordinates>-94.2,18.3,0</coordinates></Point></Placemark></Folder></Document></kml>"
    )
    cols, rejects = read_all(get_reader("kml"), p)
    assert rejects == [] and cols["ident"] == ["PANGA-7", "Boats"]
