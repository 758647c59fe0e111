"""Tests for the Cursor-on-Target reader."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from atalaya.ingest.base import MAX_LINE_BYTES, ReadOptions, Reject, read_all
from atalaya.ingest.cot import CotReader, cot_kind, parse_iso8601_us
from atalaya.ingest.registry import detect_format, get_reader

DATA = Path(__file__).parent / "data" / "cot"


def event(
    uid: str = "U-1",
    *,
    cot_type: str = "a-h-G-E-V-C",
    time: str = "2024-05-01T12:00:00.000Z",
    lat: str = "19.5",
    lon: str = "-99.25",
    hae: str = "2240",
    ce: str = "12.5",
    detail: str = "",
) -> str:
    return (
        f'<event version="2.0" uid="{uid}" type="{cot_type}" time="{time}" start="{time}" stale="{time}" how="m-g">'
        f'<point lat="{lat}" lon="{lon}" hae="{hae}" ce="{ce}" le="9999999"/><detail>{detail}</detail></event>'
    )


def read(tmp_path: Path, text: str | bytes, name: str = "x.cot") -> tuple[dict[str, list[Any]], list[Reject]]:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return read_all(CotReader(), p, ReadOptions())


def test_atak_sample_maps_every_field() -> None:
    cols, rejects = read_all(CotReader(), DATA / "atak_sample.cot")
    assert rejects == []
    assert cols["ident"] == ["ANDROID-589520ccfcd20f01"]
    assert cols["ident_kind"] == ["cot_uid"]
    assert cols["name"] == ["HALCON-2"]
    assert cols["kind"] == ["person"]
    assert cols["sensor"] == ["COT"]
    assert cols["time"] == [parse_iso8601_us(["2024-05-01T17:41:02.331Z"])[0][0]]
    assert cols["lat"] == [32.5149]
    assert cols["lon"] == [-117.0382]
    assert cols["alt_m"][0] == pytest.approx(40.2)
    assert cols["pos_err_m"][0] == pytest.approx(9.9)
    assert cols["speed_mps"][0] == pytest.approx(1.2)
    assert cols["course_deg"][0] == pytest.approx(271.5)
    assert cols["src_rec"] == [2]
    attrs = json.loads(cols["attrs"][0])
    assert attrs["type"] == "a-f-G-U-C"
    assert attrs["how"] == "h-e"
    assert attrs["affiliation"] == "f"
    assert attrs["stale"] == "2024-05-01T17:47:17.331Z"
    assert attrs["start"] == "2024-05-01T17:41:02.331Z"
    d = attrs["detail"]
    assert d["contact"] == {"endpoint": "*:-1:stcp", "callsign": "HALCON-2"}
    assert d["__group"] == {"role": "Team Member", "name": "Cyan"}
    assert d["takv"]["platform"] == "ATAK-CIV"
    assert d["status"] == {"battery": "88"}
    assert d["track"] == {"course": "271.5", "speed": "1.2"}


def test_registry_and_sniffing() -> None:
    assert get_reader("cot").name == "cot"
    assert detect_format(DATA / "atak_sample.cot") == "cot"


@pytest.mark.parametrize(
    ("wrap", "sep"),
    [
        ("{}", "\n"),  # bare events, one per line
        ("<events>{}</events>", "\n"),  # enclosing root
        ("{}", '\n<?xml version="1.0" encoding="UTF-8"?>\n'),  # declaration before each event
        ("{}", ""),  # TAK TCP stream: back to back
        ("{}", "\r\n\x00garbage\x07 \n"),  # junk between events
    ],
)
def test_stream_shapes(tmp_path: Path, wrap: str, sep: str) -> None:
    events = [event(f"U-{i}", lat=str(10 + i)) for i in range(50)]
    cols, rejects = read(tmp_path, wrap.format(sep.join(events)))
    assert rejects == []
    assert cols["ident"] == [f"U-{i}" for i in range(50)]
    assert cols["lat"] == [10.0 + i for i in range(50)]


def test_unknown_markers_become_nan(tmp_path: Path) -> None:
    cols, _ = read(tmp_path, event(hae="9999999.0", ce="9999999"))
    assert np.isnan(cols["alt_m"][0])
    assert np.isnan(cols["pos_err_m"][0])


def test_kinds_from_type() -> None:
    assert cot_kind("a-f-A-M-F-Q") == "aircraft"
    assert cot_kind("a-h-G-E-V-C") == "vehicle"
    assert cot_kind("a-u-S-X") == "vessel"
    assert cot_kind("a-u-U") == "vessel"
    assert cot_kind("a-f-G-U-C-I") == "person"
    assert cot_kind("a-u-G") == "unknown"
    assert cot_kind("b-m-p-s-p-i") == "unknown"


def test_atalaya_extension(tmp_path: Path) -> None:
    ext = '<__atalaya sensor="IR" kind="thermal" confidence="0.8" sortie="S-7" platform="MQ9-1"/>'
    cols, rejects = read(tmp_path, event(detail=ext) + event("U-2", detail='<__atalaya sensor="BOGUS"/>'))
    assert cols["sensor"] == ["IR"]
    assert cols["kind"] == ["thermal"]
    assert cols["confidence"][0] == pytest.approx(0.8)
    assert cols["sortie_id"] == ["S-7"]
    assert cols["platform_id"] == ["MQ9-1"]
    assert len(rejects) == 1
    assert "BOGUS" in rejects[0].reason


def test_fast_path_and_parser_path_agree(tmp_path: Path) -> None:
    fast = event(detail='<contact callsign="A B"/><track speed="3" course="90"/>')
    slow = fast.replace('"', "'")  # single quotes force the lxml path
    entity = fast.replace("A B", "A&amp;B")  # so does an entity
    c1, r1 = read(tmp_path, fast, "a.cot")
    c2, r2 = read(tmp_path, slow, "b.cot")
    c3, r3 = read(tmp_path, entity, "c.cot")
    assert r1 == r2 == r3 == []
    assert np.isnan(c1.pop("confidence")[0])
    assert np.isnan(c2.pop("confidence")[0])
    assert c1 == c2
    assert c1["speed_mps"] == [3.0]
    assert c1["name"] == ["A B"]
    assert c3["name"] == ["A&B"]


def test_bad_input_corpus_keeps_good_records(tmp_path: Path) -> None:
    good = [event(f"G-{i}") for i in range(6)]
    lines = [
        good[0],
        event("B-1").replace("</detail>", ""),  # malformed: unclosed detail
        good[1],
        event("B-2", time="yesterday"),
        good[2],
        event("B-3", lat="nan"),
        event("B-4", lat="91"),
        event("B-5", lon="abc"),
        good[3],
        event("B-6").replace("</event>", ""),  # truncated: runs into the next event
        good[4],
        "x" * (MAX_LINE_BYTES + 10),  # absurdly long junk line
        "<event " + "y" * (MAX_LINE_BYTES + 10),  # absurdly long event
        good[5],
        event("B-7")[:80],  # truncated file
    ]
    cols, rejects = read(tmp_path, "\n".join(lines))
    assert cols["ident"] == [f"G-{i}" for i in range(6)]
    assert [r.src_rec for r in rejects] == [2, 4, 6, 7, 8, 10, 13, 15]
    reasons = [r.reason for r in rejects]
    assert reasons[0].startswith("malformed XML")
    assert "line 2" in reasons[0]
    assert "bad time" in reasons[1]
    assert reasons[2] == "lat nan outside [-90, 90]"
    assert reasons[3] == "lat 91 outside [-90, 90]"
    assert reasons[4].startswith("bad coordinates")
    assert "unterminated" in reasons[5] or "malformed" in reasons[5]
    assert "longer than" in reasons[6]
    assert cols["src_rec"] == [1, 3, 5, 9, 11, 14]


def test_missing_time_and_point(tmp_path: Path) -> None:
    no_time = event().replace(' time="2024-05-01T12:00:00.000Z"', "")
    no_point = '<event version="2.0" uid="P" type="a-u-G" time="2024-05-01T12:00:00Z"/>'
    cols, rejects = read(tmp_path, no_time + "\n" + no_point + "\n" + event("OK"))
    assert cols["ident"] == ["OK"]
    assert [r.reason for r in rejects] == ["event has no time attribute", "event has no <point>"]


def test_wrong_encoding(tmp_path: Path) -> None:
    latin = event("E-1", detail='<contact callsign="NIÑO"/>').encode("latin-1")
    cols, rejects = read(tmp_path, latin + b"\n" + event("OK").encode())
    assert cols["ident"] == ["OK"]
    assert len(rejects) == 1
    assert "utf-8" in rejects[0].reason.lower()
    declared = b'<?xml version="1.0" encoding="ISO-8859-1"?>\n' + latin
    cols, rejects = read(tmp_path, declared, "l.cot")
    assert rejects == []
    assert cols["name"] == ["NIÑO"]
    cols, rejects = read(tmp_path, event("W", detail='<contact callsign="NIÑO"/>').encode("utf-16"), "w.cot")
    assert rejects == []
    assert cols["name"] == ["NIÑO"]


def test_block_boundaries_and_batches(tmp_path: Path) -> None:
    events = "\n".join(event(f"U-{i}", lat=str(i % 80)) for i in range(5000))
    p = tmp_path / "big.cot.gz"
    p.write_bytes(gzip.compress(events.encode()))
    total = 0
    lines: list[int] = []
    for batch in CotReader().read(p, ReadOptions(batch_rows=1000)):
        total += len(batch)
        lines.extend(batch.columns["src_rec"].tolist())
    assert total == 5000
    assert lines == list(range(1, 5001))


def test_empty_file(tmp_path: Path) -> None:
    assert read(tmp_path, "") == ({}, [])


def test_layout_path_agrees_with_lxml(tmp_path: Path) -> None:
    """Events repeating one layout are read by slicing; every variation must still read as lxml reads it."""
    same = [
        event(f"L-{i}", lat=str(i), detail=f'<contact callsign="C{i}"/><track speed="{i}" course="1"/>')
        for i in range(40)
    ]
    swapped = event("SW", lat="1", lon="2").replace('lat="1" lon="2"', 'lon="2" lat="1"')  # same lengths, names swapped
    entity = event("EN", detail='<contact callsign="A&amp;B"/><track speed="1" course="1"/>')
    newline = event("NL", detail='<contact callsign="A\nB"/><track speed="1" course="1"/>')
    quoted_text = event("QT", detail='<remarks>said "hi" twice</remarks><contact callsign="Q"/>')
    other_order = event("OO", detail='<track course="7" speed="5"/><contact callsign="O"/>')
    events = [*same[:20], swapped, entity, newline, quoted_text, other_order, *same[20:]]
    cols, rejects = read(tmp_path, "\n".join(events))
    assert rejects == []
    names = [f"L-{i}" for i in range(20)] + ["SW", "EN", "NL", "QT", "OO"] + [f"L-{i}" for i in range(20, 40)]
    assert cols["ident"] == names
    assert cols["src_rec"] == list(range(1, 24)) + list(range(25, 47))  # the "NL" event spans two lines
    at = {ident: k for k, ident in enumerate(cols["ident"])}
    assert (cols["lat"][at["SW"]], cols["lon"][at["SW"]]) == (1.0, 2.0)
    assert cols["name"][at["EN"]] == "A&B"
    assert cols["name"][at["NL"]] == "A B"  # XML normalises a newline in an attribute value to a space
    assert cols["name"][at["QT"]] == "Q"
    assert (cols["speed_mps"][at["OO"]], cols["course_deg"][at["OO"]]) == (5.0, 7.0)
    assert cols["lat"][at["L-33"]] == 33.0
    assert cols["name"][at["L-33"]] == "C33"
    assert cols["speed_mps"][at["L-33"]] == 33.0


def test_layout_path_rejects_like_the_parser(tmp_path: Path) -> None:
    """Bad values in events of a learned layout give the same reasons as anywhere else."""
    good = [event(f"G-{i}") for i in range(10)]
    bad = [event("B-1", lat="91"), event("B-2", time="2024-05-01Tnope"), event("B-3", lon="")]
    bad_utf8 = event("B-4", detail='<contact callsign="NI\xd1O"/>').encode("latin-1")
    text = "\n".join(good[:5] + bad + good[5:]).encode() + b"\n" + bad_utf8 + b"\n" + event("OK").encode()
    cols, rejects = read(tmp_path, text)
    assert cols["ident"] == [f"G-{i}" for i in range(10)] + ["OK"]
    assert [(r.src_rec, r.reason.split(" ")[0]) for r in rejects] == [
        (6, "lat"),
        (7, "bad"),
        (8, "point"),
        (14, "bytes"),
    ]
    assert rejects[0].raw.startswith('<event version="2.0" uid="B-1"')


# -- the whole event kept; devices without a fix; affiliation -------------------------------------------------

CHAT_DETAIL = (
    '<contact callsign="HALCON-2" endpoint="10.0.0.5:4242:tcp"/><__group name="Cyan" role="Team Lead"/>'
    '<link uid="ANDROID-1" relation="p-p" type="a-f-G-U-C"/><link uid="ANDROID-2" relation="p-p" type="a-f-G-U-C"/>'
    '<remarks source="BAO.F.ATAK.ANDROID-1" time="2024-05-01T12:00:00Z">convoy at the bridge, 3 trucks</remarks>'
    '<__chat id="All Chat Rooms" chatroom="All Chat Rooms" senderCallsign="HALCON-2">'
    '<chatgrp uid0="ANDROID-1" uid1="All Chat Rooms" id="All Chat Rooms"/></__chat>'
)


def _detail_of(cols: dict[str, list[Any]], i: int = 0) -> dict[str, Any]:
    d: dict[str, Any] = json.loads(cols["attrs"][i])["detail"]
    return d


def test_every_detail_child_is_kept_as_structured_attrs(tmp_path: Path) -> None:
    cols, rejects = read(tmp_path, event(detail=CHAT_DETAIL))
    assert rejects == []
    attrs = json.loads(cols["attrs"][0])
    assert attrs["stale"] == "2024-05-01T12:00:00.000Z" and attrs["le"] == "9999999"
    d = attrs["detail"]
    assert d["contact"]["endpoint"] == "10.0.0.5:4242:tcp"
    assert d["__group"] == {"name": "Cyan", "role": "Team Lead"}
    assert [ln["uid"] for ln in d["link"]] == ["ANDROID-1", "ANDROID-2"]
    assert d["remarks"]["#text"] == "convoy at the bridge, 3 trucks"
    assert d["remarks"]["source"] == "BAO.F.ATAK.ANDROID-1"
    assert d["__chat"]["senderCallsign"] == "HALCON-2"
    assert d["__chat"]["chatgrp"]["uid0"] == "ANDROID-1"


def test_attrs_are_the_same_on_every_read_path(tmp_path: Path) -> None:
    """Layout (repeated events), regex block and per-event lxml paths give one ``attrs`` per event."""
    det = (
        '<contact callsign="C\\1"/><__group name="Cyan" role="x"/><track speed="{s}" course="1"/><remarks>hi</remarks>'
    )
    events = [event(f"U-{i}", lat=str(19 + i / 100), detail=det.format(s=i)) for i in range(40)]
    odd = event("U-odd", detail=det.format(s=7) + "<!-- a comment -->")  # lxml path
    simple = event("U-simple", detail=det.format(s=8).replace("<remarks>hi</remarks>", "<remarks>ho</remarks>"))
    cols, rejects = read(tmp_path, "\n".join([*events, odd, simple]))
    assert rejects == []
    details = [_detail_of(cols, i) for i in range(len(cols["attrs"]))]
    assert details[3] == {"contact": {"callsign": "C\\1"}, "__group": {"name": "Cyan", "role": "x"},
                          "track": {"speed": "3", "course": "1"}, "remarks": {"#text": "hi"}}  # fmt: skip
    assert details[40] == {**details[7]}
    assert details[41]["remarks"] == {"#text": "ho"} and details[41]["track"]["speed"] == "8"


def test_attrs_are_bounded(tmp_path: Path) -> None:
    from atalaya.ingest.cot import MAX_ATTRS_CHARS

    big = "A" * (MAX_ATTRS_CHARS + 10)
    cols, rejects = read(tmp_path, event(detail=f'<contact callsign="X"/><__video url="{big}"/>'))
    assert rejects == []
    assert len(cols["attrs"][0]) <= MAX_ATTRS_CHARS + 200
    attrs = json.loads(cols["attrs"][0])
    assert attrs["truncated"] == ["__video"]
    assert attrs["detail"]["contact"] == {"callsign": "X"}


@pytest.mark.parametrize(
    ("lat", "lon", "ce", "how", "rejected"),
    [
        ("-0.004", "-0.008", "9999999", "m-g", True),  # a phone without a fix
        ("0.0", "0.0", "9999999", "m-g", True),
        ("0.003", "0.001", "5", "h-g-i-g-o", True),
        ("-0.004", "-0.008", "10", "m-g", False),  # a fix near 0,0 with an error: kept
        ("0.02", "-0.008", "9999999", "m-g", False),
    ],
)
def test_near_zero_positions_without_a_fix_are_rejected(
    tmp_path: Path, lat: str, lon: str, ce: str, how: str, rejected: bool
) -> None:
    ev = event(lat=lat, lon=lon, ce=ce).replace('how="m-g"', f'how="{how}"')
    good = event("U-good")
    cols, rejects = read(tmp_path, ev + "\n" + good)
    assert len(cols["time"]) == (1 if rejected else 2)
    if rejected:
        assert len(rejects) == 1 and "without a fix" in rejects[0].reason and rejects[0].src_rec == 1


def test_many_events_without_a_fix_are_all_rejected(tmp_path: Path) -> None:
    text = "\n".join(event(f"U-{i}", lat="-0.004", lon="-0.008", ce="9999999") for i in range(475))
    cols, rejects = read(tmp_path, text + "\n" + event("U-ok"))
    assert cols["ident"] == ["U-ok"]
    assert len(rejects) == 475


@pytest.mark.parametrize(
    ("cot_type", "aff"),
    [("a-f-G-U-C-I", "f"), ("a-h-G-E-V", "h"), ("a-n-A-C", "n"), ("a-a-G", "a"), ("a-s-S", "s"), ("b-m-p-s-p-i", None)],
)
def test_affiliation_is_kept(tmp_path: Path, cot_type: str, aff: str | None) -> None:
    cols, _ = read(tmp_path, event(cot_type=cot_type))
    assert json.loads(cols["attrs"][0])["affiliation"] == aff
    assert cols["attrs"][0].startswith('{"affiliation":')
