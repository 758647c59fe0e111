"""Tests of the AIS NMEA reader and the AIS codec.

Oracles: pyais (test-only) encodes random reports that we read back, and decodes
what our codec encodes; published sample sentences with their known values.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyais import decode as pyais_decode
from pyais import encode_dict

from atalaya.ingest import ais_codec as codec
from atalaya.ingest.base import MAX_LINE_BYTES, ReadOptions, read_all
from atalaya.ingest.nmea import NO_TIME, NmeaReader
from atalaya.ingest.registry import detect_format, get_reader

DATA = Path(__file__).parent / "data" / "nmea"
T0 = 1_700_000_000
ARCMIN_E4 = 1 / 600_000  # AIS position quantum: 1/10000 arc minute, in degrees


def tb(t: float, **kw: Any) -> str:
    return codec.tag_block(time_s=t, station="test", **kw)


def with_checksum(body: str) -> str:
    """``!body*hh`` with a correct checksum (for malformed-but-checksummed cases)."""
    return f"!{body}*{codec.nmea_checksum(body)}"


def write(tmp_path: Path, lines: Sequence[str | bytes], name: str = "in.nmea") -> Path:
    p = tmp_path / name
    p.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return p


def read(p: Path, **opts: Any) -> tuple[dict[str, list[Any]], list[Any]]:
    return read_all(NmeaReader(), p, ReadOptions(**opts))


# --------------------------------------------------------------------------- published samples


def test_gpsd_published_samples() -> None:
    # Sample sentences from the gpsd "AIVDM/AIVDO protocol decoding" document
    # (https://gpsd.gitlab.io/gpsd/AIVDM.html): type 1 (477553000, moored at Seattle),
    # a two-part type 5 (351759000 "EVER DIADEM"), type 1, type 18, type 24 part A
    # ("PROGUY") and type 4 (base station 003669702). The type 18 line's checksum is
    # recomputed here.
    cols, rejects = read(DATA / "gpsd_samples.nmea", reference_time_us=T0 * 1_000_000)
    assert rejects == []
    assert cols["ident"] == ["477553000", "371798000", "423302100", "3669702"]
    assert cols["src_rec"] == [1, 4, 5, 7]
    assert cols["kind"] == ["vessel", "vessel", "vessel", "structure"]
    np.testing.assert_allclose(cols["lon"], [-122.345833, -123.395383, 53.010997, -76.352362], atol=1e-6)
    np.testing.assert_allclose(cols["lat"], [47.582833, 48.381633, 40.005283, 36.883767], atol=1e-6)
    speed = np.array(cols["speed_mps"], dtype=float)
    np.testing.assert_allclose(speed[:3], np.array([0.0, 12.3, 1.4]) * 1852 / 3600, rtol=1e-6)
    assert np.isnan(speed[3])
    np.testing.assert_allclose(np.array(cols["course_deg"][:3], dtype=float), [51.0, 224.0, 177.0], rtol=1e-6)
    attrs = [json.loads(a) for a in cols["attrs"]]
    assert attrs[0] == {"msg": 1, "nav": 5, "hdg": 181}
    assert attrs[2] == {"msg": 18, "hdg": 177}
    assert attrs[3] == {"msg": 4}
    # no in-band times: the reference time plus the line number - 1, in microseconds
    assert cols["time"] == [T0 * 1_000_000 + ln - 1 for ln in (1, 4, 5, 7)]


def test_static_names_later_positions_only(tmp_path: Path) -> None:
    pos = encode_dict({"msg_type": 1, "mmsi": 351759000, "lon": -80.0, "lat": 25.0, "speed": 5.0, "course": 10.0})[0]
    static = encode_dict({"msg_type": 5, "mmsi": 351759000, "shipname": "EVER DIADEM", "callsign": "3FOF8"}, seq_id=2)
    part_a = encode_dict({"msg_type": 24, "mmsi": 271041815, "partno": 0, "shipname": "PROGUY"})[0]
    pos2 = encode_dict({"msg_type": 18, "mmsi": 271041815, "lon": 30.0, "lat": 40.0})[0]
    lines = [tb(T0) + pos, *(tb(T0 + 1) + s for s in static), tb(T0 + 2) + pos, tb(T0 + 3) + part_a]
    lines += [tb(T0 + 4) + pos2]
    cols, rejects = read(write(tmp_path, lines))
    assert rejects == []
    assert cols["name"] == [None, "EVER DIADEM", "PROGUY"]
    assert cols["src_rec"] == [1, 4, 6]


# --------------------------------------------------------------------------- round trip against pyais


def _random_reports(rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        t = int(rng.choice([1, 2, 3, 18, 19, 27, 21, 4]))
        d: dict[str, Any] = {
            "msg_type": t,
            "mmsi": int(rng.integers(1, 999_999_999)),
            "lon": round(float(rng.uniform(-180, 180)), 4),
            "lat": round(float(rng.uniform(-90, 90)), 4),
        }
        if t in (1, 2, 3, 18, 19):
            d.update(
                speed=round(float(rng.uniform(0, 102.2)), 1),
                course=round(float(rng.uniform(0, 359.9)), 1),
                heading=int(rng.integers(0, 360)),
            )
        if t in (1, 2, 3, 27):
            d["status"] = int(rng.integers(0, 9))
        if t == 27:
            d.update(speed=int(rng.integers(0, 63)), course=int(rng.integers(0, 360)))
            d["lon"], d["lat"] = round(d["lon"], 1), round(d["lat"], 1)
        if t in (19, 21):
            d["shipname" if t == 19 else "name"] = "".join(rng.choice(list("ABCDEFGH XYZ0123"), 12)).strip() or "X"
        out.append(d)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_round_trip_random_reports_against_pyais(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    reports = _random_reports(rng, 400)
    lines, expect = [], []
    for i, d in enumerate(reports):
        sents = encode_dict(d, radio_channel="AB"[i % 2], seq_id=i % 10)
        for s in sents:
            lines.append(tb(T0 + i, millis=bool(i % 3 == 0)) + s)
        expect.append((d, len(lines)))
    cols, rejects = read(write(tmp_path, lines))
    assert rejects == []
    assert len(cols["time"]) == len(reports)
    for k, (d, last_line) in enumerate(expect):
        assert cols["src_rec"][k] == last_line
        assert cols["ident"][k] == str(d["mmsi"])
        assert cols["time"][k] == (T0 + k) * 1_000_000
        tol = ARCMIN_E4 if d["msg_type"] != 27 else 1 / 600
        assert abs(cols["lon"][k] - d["lon"]) <= tol
        assert abs(cols["lat"][k] - d["lat"]) <= tol
        assert cols["kind"][k] == ("structure" if d["msg_type"] in (4, 21) else "vessel")
        if d["msg_type"] in (1, 2, 3, 18, 19, 27):
            assert cols["speed_mps"][k] == pytest.approx(d["speed"] * 1852 / 3600, rel=1e-5, abs=1e-5)
            assert cols["course_deg"][k] == pytest.approx(d["course"], abs=1e-4)
        if d["msg_type"] in (19, 21):
            assert cols["name"][k] == d.get("shipname", d.get("name"))
        attrs = json.loads(cols["attrs"][k])
        assert attrs["msg"] == d["msg_type"]
        if "status" in d:
            assert attrs["nav"] == d["status"]


def test_codec_encoders_decode_with_pyais() -> None:
    rng = np.random.default_rng(5)
    n = 50
    mmsi, heading = rng.integers(1, 999_999_999, n), rng.integers(0, 360, n)
    lon, lat = rng.uniform(-180, 180, n), rng.uniform(-90, 90, n)
    f = codec.PositionFields(
        mmsi=mmsi,
        lon=lon,
        lat=lat,
        sog_knots=rng.uniform(0, 100, n),
        cog_deg=rng.uniform(0, 359, n),
        heading=heading,
        status=rng.integers(0, 15, n),
    )
    m: Any
    for t in (1, 3, 18):
        for i, (p, fill) in enumerate(codec.encode_positions(t, f)):
            m = pyais_decode(*codec.sentences(p, fill))
            assert m.msg_type == t
            assert m.mmsi == mmsi[i]
            assert abs(m.lon - lon[i]) <= ARCMIN_E4
            assert abs(m.lat - lat[i]) <= ARCMIN_E4
            assert m.heading == heading[i]
    (p, fill), *_ = codec.encode_static([351759000], ["ever diadem"], ["3FOF8"], [70])
    sents = codec.sentences(p, fill, seq_id=4)
    assert len(sents) == 2
    m = pyais_decode(*sents)
    assert (m.mmsi, m.shipname, m.callsign, int(m.ship_type)) == (351759000, "EVER DIADEM", "3FOF8", 70)


# --------------------------------------------------------------------------- time sources


def test_time_sources_and_precedence(tmp_path: Path) -> None:
    s = encode_dict({"msg_type": 1, "mmsi": 1, "lon": 1.0, "lat": 2.0})[0]
    lines = [
        tb(T0) + s,
        tb(T0 + 0.5, millis=True) + s,
        f"{T0 + 2}.25,{s}",
        f"2023-11-14T22:13:23Z {s}",
        f"{s},{T0 + 4}",
        tb(T0 + 5) + s + f",{T0 + 99}",  # tag block wins over the trailing field
        s,
    ]
    cols, rejects = read(write(tmp_path, lines))
    us = 1_000_000
    assert cols["time"] == [
        T0 * us,
        T0 * us + 500_000,
        (T0 + 2) * us + 250_000,
        (T0 + 3) * us,
        (T0 + 4) * us,
        (T0 + 5) * us,
    ]
    assert [(r.src_rec, r.reason) for r in rejects] == [(7, NO_TIME)]
    cols, rejects = read(write(tmp_path, lines), reference_time_us=42)
    assert rejects == []
    assert cols["time"][-1] == 42 + 6  # line 7


# --------------------------------------------------------------------------- bad input corpus


def test_bad_input_corpus(tmp_path: Path) -> None:
    good = encode_dict({"msg_type": 1, "mmsi": 111111111, "lon": -100.0, "lat": 20.0})[0]
    short_payload = good.split(",")[5][:12]
    t5 = encode_dict({"msg_type": 5, "mmsi": 222222222, "shipname": "LA PALOMA"}, seq_id=7)
    t5b = encode_dict({"msg_type": 5, "mmsi": 222222223, "shipname": "EL HALCON"}, seq_id=3)
    na = encode_dict({"msg_type": 1, "mmsi": 333333333, "lon": 181, "lat": 91})[0]
    body = good[1 : good.index("*")]
    tag = codec.tag_block(time_s=T0)
    bad_tag = tag[:-3] + ("00" if tag[-3:-1] != "00" else "11") + "\\"
    cases: list[tuple[str | bytes, str | None]] = [
        (tb(T0) + good[:-2] + ("00" if not good.endswith("00") else "11"), "bad NMEA checksum: got"),
        (tb(T0) + with_checksum("AIVDM,1,1,,A," + good.split(",")[5]), "malformed sentence: 6 fields, expected 7"),
        (tb(T0) + with_checksum(body.replace(short_payload[:3], "X~~", 1)), "bad payload armouring"),
        (tb(T0) + t5b[1], "orphaned fragment: part 2 of 2 without part 1"),
        (tb(T0) + with_checksum(f"AIVDM,1,1,,A,{short_payload},0"), "truncated payload: 72 bits, type 1 needs"),
        (b"!AIVDM," + b"x" * (MAX_LINE_BYTES + 10), "line longer than"),
        (tb(T0).encode() + good.encode()[:20] + b"\xff" + good.encode()[21:], "undecodable bytes"),
        (good, NO_TIME),
        (tb(T0) + na, "position not available"),
        (bad_tag + good, "bad tag block checksum"),
        (tb(T0) + encode_dict({"msg_type": 8, "mmsi": 5, "data": b"\x01\x02"})[0], None),  # unsupported: skipped
        ("", None),  # blank: skipped
        ("$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A", None),  # other NMEA: skipped
        ("hello world", "malformed line: no NMEA sentence"),
        (tb(T0) + t5[0], "incomplete multi-sentence message: got part 1 of 2"),  # never completed (EOF)
    ]
    lines: list[str | bytes] = []
    expected: list[tuple[int, str]] = []
    good_lines = []
    for bad, reason in cases:
        lines.append(tb(T0) + good)
        good_lines.append(len(lines))
        lines.append(bad)
        if reason is not None:
            expected.append((len(lines), reason))
    lines.append(tb(T0) + good)
    good_lines.append(len(lines))
    cols, rejects = read(write(tmp_path, lines))
    assert cols["src_rec"] == good_lines
    got = {r.src_rec: r.reason for r in rejects}
    assert len(got) == len(rejects)
    assert sorted(got) == [line for line, _ in expected], got
    for line, want in expected:
        assert got[line].startswith(want), (line, got[line], want)
    assert all(len(r.raw) <= 512 for r in rejects)


def test_checksum_reject_names_both_values(tmp_path: Path) -> None:
    good = "!AIVDM,1,1,,B,177KQJ5000G?tO`K>RA1wUbN0TKH,0*5C"
    _, rejects = read(write(tmp_path, [good[:-2] + "1A"]), reference_time_us=0)
    assert [r.reason for r in rejects] == ["bad NMEA checksum: got 1A, computed 5C"]


def test_fragments_out_of_order_and_interleaved(tmp_path: Path) -> None:
    a = encode_dict({"msg_type": 5, "mmsi": 222222222, "shipname": "ALPHA"}, seq_id=1)
    b = encode_dict({"msg_type": 5, "mmsi": 333333333, "shipname": "BRAVO"}, seq_id=2)
    pa_ = encode_dict({"msg_type": 1, "mmsi": 222222222, "lon": 1.0, "lat": 1.0})[0]
    pb = encode_dict({"msg_type": 1, "mmsi": 333333333, "lon": 2.0, "lat": 2.0})[0]
    lines = [tb(T0) + x for x in (a[1], b[0], a[0], b[1], pa_, pb)]
    cols, rejects = read(write(tmp_path, lines))
    assert rejects == []
    assert cols["name"] == ["ALPHA", "BRAVO"]


# --------------------------------------------------------------------------- streaming


def _mixed_file(tmp_path: Path, n: int, name: str = "big.nmea", prefix: str = "tag") -> Path:
    rng = np.random.default_rng(11)
    lines: list[str | bytes] = []
    for i in range(n):
        if i % 17 == 0:
            for s in encode_dict({"msg_type": 5, "mmsi": 100 + i % 50, "shipname": f"SHIP {i}"}, seq_id=i % 10):
                lines.append(tb(T0 + i) + s)
            continue
        pos: dict[str, Any] = {
            "msg_type": 1,
            "mmsi": 100 + i % 50,
            "lon": float(rng.uniform(-99, -80)),
            "lat": float(rng.uniform(10, 30)),
        }
        s = encode_dict(pos)[0]
        if prefix == "tag":
            lines.append(tb(T0 + i) + s)
        elif prefix == "iso-offset":
            lines.append(f"2023-11-14T22:13:20+00:00 {s}")  # offsets are left to the per-line parser
        else:
            lines.append(f"{s},{T0 + i}")
    return write(tmp_path, lines, name)


def test_chunking_does_not_change_the_result(tmp_path: Path) -> None:
    p = _mixed_file(tmp_path, 3000)
    whole, rw = read(p)
    small, rs = read(p, batch_rows=10)  # 64 KiB chunks: many boundaries, fragments split across them
    assert rw == rs == []
    assert whole == small
    batches = list(NmeaReader().read(p, ReadOptions(batch_rows=10)))
    assert len(batches) > 3
    assert sum(b.records_read for b in batches) == p.read_bytes().count(b"\n")


def test_per_line_path_matches_vectorised_path(tmp_path: Path) -> None:
    fast, _ = read(_mixed_file(tmp_path, 400, "a.nmea", prefix="tag"))
    slow, _ = read(_mixed_file(tmp_path, 400, "b.nmea", prefix="iso-offset"))
    for k in ("lon", "lat", "ident", "name", "src_rec", "attrs"):
        assert fast[k] == slow[k], k


def test_gzip_and_crlf(tmp_path: Path) -> None:
    raw = (DATA / "gpsd_samples.nmea").read_bytes().replace(b"\n", b"\r\n")
    p = tmp_path / "x.nmea.gz"
    p.write_bytes(gzip.compress(raw))
    cols, rejects = read(p, reference_time_us=0)
    assert rejects == []
    assert len(cols["time"]) == 4


def test_empty_file(tmp_path: Path) -> None:
    cols, rejects = read(write(tmp_path, []))
    assert rejects == []
    assert cols.get("time", []) == []


def test_registry_and_sniff(tmp_path: Path) -> None:
    r = get_reader("nmea")
    assert r.name == "nmea"
    assert ".nmea" in r.extensions
    p = tmp_path / "feed.log"
    p.write_bytes((DATA / "gpsd_samples.nmea").read_bytes())
    assert detect_format(p) == "nmea"
    assert r.sniff(b"time,lon,lat\n1,2,3\n", p) == 0.0


def test_overlong_line_across_slices_keeps_line_numbers(tmp_path: Path) -> None:
    good = tb(T0) + encode_dict({"msg_type": 1, "mmsi": 7, "lon": 1.0, "lat": 1.0})[0]
    lines: list[str | bytes] = [good, "!AIVDM," + "0" * (MAX_LINE_BYTES + 200_000), good]
    p = write(tmp_path, lines)
    for batch_rows in (10, 262_144):  # 64 KiB slices (the line spans many) and one slice
        cols, rejects = read(p, batch_rows=batch_rows)
        assert cols["src_rec"] == [1, 3]
        assert [(r.src_rec, r.reason.split(":")[0]) for r in rejects] == [
            (2, f"line longer than {MAX_LINE_BYTES} bytes")
        ]
        batches = list(NmeaReader().read(p, ReadOptions(batch_rows=batch_rows)))
        assert sum(b.records_read for b in batches) == 3


def test_last_line_without_newline(tmp_path: Path) -> None:
    good = tb(T0) + encode_dict({"msg_type": 1, "mmsi": 7, "lon": 1.0, "lat": 1.0})[0]
    p = tmp_path / "x.nmea"
    p.write_text(good + "\n" + good)
    cols, rejects = read(p)
    assert (cols["src_rec"], rejects) == ([1, 2], [])


def test_fragment_left_pending_too_long_is_orphaned(tmp_path: Path) -> None:
    part1 = encode_dict({"msg_type": 5, "mmsi": 9, "shipname": "LATE"}, seq_id=4)[0]
    good = tb(T0) + encode_dict({"msg_type": 1, "mmsi": 7, "lon": 1.0, "lat": 1.0})[0]
    lines = [tb(T0) + part1] + [good] * 1200
    _, rejects = read(write(tmp_path, lines), batch_rows=10)
    assert [(r.src_rec, r.reason) for r in rejects] == [(1, "incomplete multi-sentence message: got part 1 of 2")]


def test_type27_not_available_position_and_speed(tmp_path: Path) -> None:
    na = encode_dict({"msg_type": 27, "mmsi": 5, "lon": 181, "lat": 91})[0]
    ok = encode_dict({"msg_type": 27, "mmsi": 6, "lon": -90.5, "lat": 20.1, "speed": 63, "course": 511})[0]
    cols, rejects = read(write(tmp_path, [tb(T0) + na, tb(T0) + ok]))
    assert [(r.src_rec, r.reason.split(" (")[0]) for r in rejects] == [(1, "position not available")]
    assert cols["lon"] == [pytest.approx(-90.5)]
    assert np.isnan(cols["speed_mps"][0])
    assert np.isnan(cols["course_deg"][0])


def test_name_index_latest_wins_and_compaction_keeps_names() -> None:
    from atalaya.ingest.nmea import _NameIndex  # internal, tested directly for the compaction path

    ix = _NameIndex()
    assert ix.lookup(np.array([1, 2])).tolist() == [-1, -1]
    for round_ in range(3000):
        base = len(ix.names)
        ix.names.extend([f"A{round_}", f"B{round_}"])
        ix.set(np.array([5, 3]), np.array([base, base + 1]))
        ix.compact()
    ix.names.extend(["OLD", "NEW"])
    ix.set(np.array([9, 9]), np.array([len(ix.names) - 2, len(ix.names) - 1]))
    ix.compact()
    got = [ix.names[i] if i >= 0 else None for i in ix.lookup(np.array([3, 5, 9, 4])).tolist()]
    assert got == ["B2999", "A2999", "NEW", None]
    assert len(ix.names) < 5000


def test_iso_prefixes_vectorised_match_python(tmp_path: Path) -> None:
    import datetime as dt

    rng = np.random.default_rng(3)
    s = encode_dict({"msg_type": 1, "mmsi": 1, "lon": 1.0, "lat": 2.0})[0]
    lines, want = [], []
    for i in range(300):
        secs = int(rng.integers(-2_000_000_000, 4_000_000_000))
        micros = int(rng.integers(0, 1_000_000))
        d = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=secs, microseconds=micros)
        ndig = i % 7  # 0..6 fraction digits
        text = d.strftime("%Y-%m-%d") + ("T" if i % 2 else " ") + d.strftime("%H:%M:%S")
        if ndig:
            text += "." + f"{micros:06d}"[:ndig]
        text += "Z" if i % 3 else ""
        lines.append(f"{text} {s}" if i % 4 else f"{text},{s}")
        want.append(secs * 1_000_000 + (micros // 10 ** (6 - ndig)) * 10 ** (6 - ndig) if ndig else secs * 1_000_000)
    cols, rejects = read(write(tmp_path, lines))
    assert rejects == []
    assert cols["time"] == want
    bad, bad_rejects = read(write(tmp_path, ["2023-13-14T22:13:20Z " + s]))
    assert bad["time"] == []
    assert [r.reason.split(":")[0] for r in bad_rejects] == ["unrecognised text before the sentence"]


def test_vectorised_helpers_match_plain_python() -> None:
    from atalaya.ingest.nmea import _runs_order, _XorRanges  # internal kernels, checked against loops

    rng = np.random.default_rng(8)
    arr = rng.integers(0, 256, 999).astype(np.uint8)
    a, b = rng.integers(0, 1000, 4000), rng.integers(0, 1000, 4000)
    a, b = np.minimum(a, b), np.maximum(a, b)
    want = [int(np.bitwise_xor.reduce(arr[x:y])) if y > x else 0 for x, y in zip(a.tolist(), b.tolist(), strict=True)]
    assert _XorRanges(arr).of(a, b).tolist() == want
    for runs in (1, 2, 3):
        v = np.concatenate([np.sort(rng.integers(0, 50, 30)) for _ in range(runs)])
        assert _runs_order(v).tolist() == np.argsort(v, kind="stable").tolist()
    assert _runs_order(np.zeros(0, dtype=np.int64)).tolist() == []
