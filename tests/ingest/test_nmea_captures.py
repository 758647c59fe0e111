"""AIS captures as receivers and archives write them: no time per line, Gatehouse wrappers, USCG receiver fields.

Sentences are copied from published captures (their checksums are the originals) or encoded by pyais; positions
are checked against pyais decoding the same sentences.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyais import decode as pyais_decode
from pyais import encode_dict
from pyais.messages import GatehouseSentence

from atalaya.cli.main import main
from atalaya.ingest import ais_codec as codec
from atalaya.ingest.base import ReadOptions, read_all
from atalaya.ingest.nmea import NO_TIME, NmeaReader

T0 = 1_700_000_000
US = 1_000_000


def write(tmp_path: Path, lines: Sequence[str], name: str = "in.nmea") -> Path:
    p = tmp_path / name
    p.write_text("".join(x + "\n" for x in lines))
    return p


def read(p: Path, **opts: Any) -> tuple[dict[str, list[Any]], list[Any]]:
    return read_all(NmeaReader(), p, ReadOptions(**opts))


def pyais_positions(groups: Sequence[Sequence[str]]) -> list[tuple[str, float, float]]:
    """``(mmsi, lon, lat)`` of each message with a position, decoded by pyais from the bare sentences."""
    out = []
    for g in groups:
        d = pyais_decode(*[x.encode() for x in g]).asdict()
        if d.get("lon") is not None and d["msg_type"] in (1, 2, 3, 4, 18, 19, 21, 27):
            lon, lat = d["lon"], d["lat"]
            assert isinstance(lon, float) and isinstance(lat, float)
            out.append((str(d["mmsi"]), lon, lat))
    return out


def assert_positions(cols: dict[str, list[Any]], want: list[tuple[str, float, float]]) -> None:
    assert cols["ident"] == [m for m, _, _ in want]
    np.testing.assert_allclose(cols["lon"], [x for _, x, _ in want], atol=1e-6)
    np.testing.assert_allclose(cols["lat"], [y for _, _, y in want], atol=1e-6)


# --------------------------------------------------------------------------- a capture without times


def _capture_without_times(n: int = 300, seed: int = 3) -> tuple[list[str], list[list[str]]]:
    """A receiver's raw output: comments, blank lines, single sentences and two-part type 5 messages."""
    rng = np.random.default_rng(seed)
    lines = ["# AIS receiver capture, serial port /dev/ttyUSB0, 38400 baud", ""]
    groups: list[list[str]] = []
    for i in range(n):
        mmsi = int(rng.integers(200_000_000, 775_999_999))
        if i % 25 == 7:
            g = encode_dict({"msg_type": 5, "mmsi": mmsi, "shipname": f"VESSEL {i}", "callsign": "ABC"}, seq_id=i % 10)
        else:
            t = int(rng.choice([1, 3, 18]))
            lon, lat = float(rng.uniform(-180, 180)), float(rng.uniform(-90, 90))
            g = encode_dict({"msg_type": t, "mmsi": mmsi, "lon": round(lon, 4), "lat": round(lat, 4), "speed": 5.2})
        groups.append(g)
        lines.extend(g)
        if i % 50 == 49:
            lines.append("")
    return lines, groups


def test_capture_without_times_needs_received_at(tmp_path: Path) -> None:
    lines, groups = _capture_without_times()
    p = write(tmp_path, lines)
    want = pyais_positions(groups)
    cols, rejects = read(p)
    assert cols.get("time", []) == []
    assert len(rejects) == len(want)
    assert {r.reason for r in rejects} == {NO_TIME}
    assert "--received-at" in NO_TIME.split(":", 1)[0]  # the words the ingest summary shows
    ref = 1_717_243_200 * US  # 2024-06-01T12:00:00Z
    cols, rejects = read(p, reference_time_us=ref)
    assert rejects == []  # comments and blank lines are skipped, not quarantined
    assert_positions(cols, want)
    assert cols["time"] == [ref + ln - 1 for ln in cols["src_rec"]]  # monotone in file order
    assert all(b > a for a, b in zip(cols["time"], cols["time"][1:], strict=False))
    # the file's modification time
    os.utime(p, (1_600_000_000, 1_600_000_000))
    by_mtime, rejects = read(p, received_at_mtime=True)
    assert rejects == []
    assert by_mtime["time"][0] == 1_600_000_000 * US + by_mtime["src_rec"][0] - 1
    # an explicit reference time wins over the modification time; in-band times win over both
    both, _ = read(p, reference_time_us=ref, received_at_mtime=True)
    assert both["time"] == cols["time"]
    s = encode_dict({"msg_type": 1, "mmsi": 1, "lon": 1.0, "lat": 2.0})[0]
    mixed, _ = read(write(tmp_path, [s, f"{s},{T0}"], "mixed.nmea"), reference_time_us=ref)
    assert mixed["time"] == [ref, T0 * US]


def test_cli_received_at(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines, groups = _capture_without_times(60)
    n = len(pyais_positions(groups))

    def ingest(*args: str) -> dict[str, Any]:
        try:
            main([*args, "--json"])
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
        out: dict[str, Any] = json.loads(capsys.readouterr().out)
        assert code == 0, out
        return out

    main(["init", str(tmp_path / "ws1")])
    main(["init", str(tmp_path / "ws2")])
    main(["init", str(tmp_path / "ws3")])
    capsys.readouterr()
    p = write(tmp_path, lines, "capture.txt")
    s = ingest("-w", str(tmp_path / "ws1"), "ingest", str(p))
    assert s["totals"]["accepted"] == 0
    s = ingest("-w", str(tmp_path / "ws2"), "ingest", str(p), "--received-at", "2024-06-01T12:00:00Z")
    assert s["totals"]["accepted"] == n
    s = ingest("-w", str(tmp_path / "ws3"), "ingest", str(p), "--received-at", "mtime")
    assert s["totals"]["accepted"] == n
    with pytest.raises(SystemExit) as e:
        main(["-w", str(tmp_path / "ws3"), "ingest", str(p), "--received-at", "yesterday"])
    assert e.value.code == 2
    assert "--received-at" in capsys.readouterr().err


# --------------------------------------------------------------------------- Gatehouse wrappers

# From a Danish Maritime Authority feed (the dk.dma AisLib examples): each $PGHP wrapper carries the time of the
# message after it (the type 4 base station's own clock agrees: 2010-06-11 11:46:11 UTC).
GATEHOUSE = [
    "$PGHP,1,2010,6,11,11,46,11,390,231,45,992190934,1,2B*5B",
    "!AIVDM,1,1,,B,402=481uaUcf;OQ55JS9ITi025Jp,0*2B",
    "$PGHP,1,2010,6,11,11,46,12,386,219,24,992190924,1,12*20",
    "!AIVDM,1,1,,B,?3oL?R0p<6I0D00,2*12",
    "$PGHP,1,2010,6,11,11,46,12,451,219,1,992190917,1,58*14",
    "!AIVDM,1,1,,A,33nr7t001f13KNTOahh2@QpF00vh,0*58",
]
GATEHOUSE_STATIC = [  # a two-sentence type 5 under one wrapper (dk.dma AisLib tests)
    "$PGHP,1,2014,4,10,13,30,29,165,219,,2190067,1,28*22",
    "!BSVDM,2,1,1,A,53@ng7P1uN6PuLpl000I8TLN1=T@ITDp0000000u1Pr844@P07PSiBQ1,0*7B",
    "!BSVDM,2,2,1,A,CcAVCTj0EP00000,2*53",
]


def pghp(fields: str) -> str:
    """A ``$PGHP`` line with its checksum."""
    return f"$PGHP,{fields}*{codec.nmea_checksum('PGHP,' + fields)}"


def _gh_us(line: str) -> int:
    t = GatehouseSentence(line.encode()).timestamp
    return int(t.replace(tzinfo=__import__("datetime").UTC).timestamp() * 1000) * 1000


def test_gatehouse_wrappers_give_the_time(tmp_path: Path) -> None:
    cols, rejects = read(write(tmp_path, GATEHOUSE))
    assert rejects == []
    assert_positions(cols, pyais_positions([[GATEHOUSE[1]], [GATEHOUSE[5]]]))
    assert cols["time"] == [_gh_us(GATEHOUSE[0]), _gh_us(GATEHOUSE[4])]
    assert cols["time"][0] == (1276256771 * US + 390_000)


def test_gatehouse_wrapper_names_only_the_next_message(tmp_path: Path) -> None:
    # 219000606 is named by the wrapped type 5; a later position of it without a wrapper has no time
    pos = encode_dict({"msg_type": 1, "mmsi": 219000606, "lon": 10.5, "lat": 55.1})[0]
    wrapped_pos = encode_dict({"msg_type": 1, "mmsi": 219000606, "lon": 10.6, "lat": 55.2})[0]
    lines = [*GATEHOUSE_STATIC, pos, pghp("1,2014,4,10,13,30,31,0,219,,2190067,1,00"), wrapped_pos]
    cols, rejects = read(write(tmp_path, lines))
    assert [(r.src_rec, r.reason) for r in rejects] == [(4, NO_TIME)]
    assert cols["src_rec"] == [6]
    assert cols["time"] == [1397136631 * US]
    assert cols["name"] == ["FRIGG SYDFYEN"]
    # with a reference time the unwrapped one takes it, the wrapped one keeps its wrapper's time
    cols, rejects = read(write(tmp_path, lines), reference_time_us=T0 * US)
    assert rejects == []
    assert cols["time"] == [T0 * US + 3, 1397136631 * US]


def test_gatehouse_bad_wrapper_is_quarantined(tmp_path: Path) -> None:
    lines = [GATEHOUSE[0][:-2] + "5C", GATEHOUSE[1], pghp("1,2010,13,11,11,46,11,390,231,45,992190934,1,2B")]
    _, rejects = read(write(tmp_path, lines))
    reasons = [(r.src_rec, r.reason.split(":")[0]) for r in rejects]
    assert reasons == [
        (1, "bad $PGHP checksum"),
        (2, NO_TIME.split(":")[0]),
        (3, "malformed $PGHP time '2010,13,11,11,46,11,390'"),
    ]


def test_gatehouse_wrapper_across_chunks(tmp_path: Path) -> None:
    # wrappers and sentences over many 64 KiB chunks: the result does not depend on where the chunks end
    lines = []
    for i in range(3000):
        s = encode_dict({"msg_type": 1, "mmsi": 200_000_000 + i, "lon": 10.0 + i * 1e-3, "lat": 55.0})[0]
        wrapper = pghp(f"1,2020,1,1,0,{i // 60 % 60},{i % 60},{i % 1000},0,0,0,1,00")
        lines += [wrapper, s, "# noise" if i % 7 == 0 else s]
    p = write(tmp_path, lines)
    whole, rw = read(p, reference_time_us=0)
    small, rs = read(p, reference_time_us=0, batch_rows=10)
    assert rw == rs == []
    assert whole == small
    first = [t for t, ln in zip(whole["time"], whole["src_rec"], strict=True) if ln % 3 == 2]
    assert first == [(1577836800 + i // 60 % 60 * 60 + i % 60) * US + i % 1000 * 1000 for i in range(3000)]


# --------------------------------------------------------------------------- USCG / aisdeco receiver fields

# libais test data (github.com/schwehr/libais, test.aivdm): USCG NAIS lines, receiver fields then a Unix epoch.
USCG = [
    "# USCG NAIS feed",
    "!AIVDM,1,1,,A,402u=TiuaA000r5UJ`H4`?7000S:,0*75,d-093,S2212,t235959.00,T59.00339837,r09STOL1,1272844797",
    "!AIVDM,1,1,,A,403OweAuaAGssGWDABBdKBA006sd,0*07,d-067,S0000,t000000.00,T00.00338535,r11CSDO1,1272844802",
    "!AIVDM,1,1,,B,4h3OvjAuaAGsro=cf0Knevo00`S8,0*7E,b003669976,1272844808",
    "",
    "!AIVDM,2,1,3,B,55NBjP01mtGIL@CW;SM<D60P5Ld000000000000P0`<3557l0<50@kk@,0*66,b003669976,1272672016",
    "!AIVDM,2,2,3,B,K5h@00000000000,2*72,b003669976,1272672016",
    "!AIVDM,2,1,1,A,55>u@H02;lGc<Ha;L0084i<7GR22222222222216:PE885AU0A4l13H13kBC,0*3D,rCUDJOE_01,1272672306",
    "!AIVDM,2,2,1,A,R@hC`4QD;`0,2*06,rCUDJOE_01,1272672306",
]


def _bare(line: str) -> str:
    return line[: line.index("*") + 3]


def test_uscg_receiver_fields_and_epoch(tmp_path: Path) -> None:
    cols, rejects = read(write(tmp_path, USCG))
    assert rejects == []
    assert_positions(cols, pyais_positions([[_bare(x)] for x in USCG[1:4]]))
    assert cols["time"] == [1272844797 * US, 1272844802 * US, 1272844808 * US]
    assert cols["src_rec"] == [2, 3, 4]


def test_trailing_fields_as_in_the_issue(tmp_path: Path) -> None:
    s = encode_dict({"msg_type": 1, "mmsi": 366053209, "lon": -122.4, "lat": 37.8})[0]
    lines = [
        f"{s},s12345,d-97,T12.3,x1,{T0}",
        f"{s},{T0 + 1}",
        f"{s},rnhcml,{T0 + 2}",
        f"{s},rnhcml",  # receiver fields without an epoch: understood, no time
        f"{s},s1,d-97,{'9' * 30}",  # an epoch no field can hold
        f"{s},s1,d(97),{T0}",  # not a receiver field
    ]
    cols, rejects = read(write(tmp_path, lines))
    assert cols["time"] == [T0 * US, (T0 + 1) * US, (T0 + 2) * US]
    assert [(r.src_rec, r.reason.split(":")[0]) for r in rejects] == [
        (4, NO_TIME.split(":")[0]),
        (5, "unrecognised text after the checksum"),
        (6, "unrecognised text after the checksum"),
    ]
    assert_positions(cols, pyais_positions([[s]] * 3))


def test_tails_per_line_path_matches_vectorised_path(tmp_path: Path) -> None:
    # the vectorised path and the per-line path read the same tails the same way
    s = encode_dict({"msg_type": 18, "mmsi": 338123456, "lon": -70.1, "lat": 41.2})[0]
    tails = [",s12345,d-97,T12.3,x1,1700000000", ",b003669976,1700000001.5", ",1700000002", ",r09STOL1,1700000003123"]
    fast, rf = read(write(tmp_path, [s + t for t in tails], "a.nmea"))
    assert rf == []
    slow, rs = read(write(tmp_path, ["  " + s + t for t in tails], "c.nmea"))  # leading blanks: per-line path
    assert rs == []
    assert slow["time"] == fast["time"] == [T0 * US, (T0 + 1) * US + 500_000, (T0 + 2) * US, 1_700_000_003_123_000]
