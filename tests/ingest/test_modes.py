"""Raw Mode-S / ADS-B readers (``modes-hex``, ``modes-beast``) and their decoder, checked against pyModeS.

Golden values are the worked examples of "The 1090 Megahertz Riddle" (J. Sun) as pyModeS decodes them; the
property tests encode random messages (:mod:`atalaya.ingest.modes_encode`) and compare every field with
pyModeS, an independent decoder.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyModeS as pms  # noqa: N813 (the name pyModeS' own documentation uses)
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyModeS import position as pms_pos

from atalaya.cli.main import main
from atalaya.ingest import modes_encode as enc
from atalaya.ingest.adsb import FT_TO_M, KT_TO_MPS
from atalaya.ingest.base import ReadOptions, read_all
from atalaya.ingest.modes import NO_TIME, ModeSBeastReader, ModeSHexReader
from atalaya.ingest.modes_cpr import GLOBAL, CprState, resolve
from atalaya.ingest.modes_decode import callsigns, cpr_global, cpr_local, decode, hex_matrix, squawks
from atalaya.ingest.registry import detect_format

US = 1_000_000
T0 = 1_457_996_400


def _dec(*msgs: str) -> Any:
    m, n = hex_matrix([x.encode() for x in msgs])
    return decode(m, n)


# --------------------------------------------------------------------------- golden examples


def test_identification_golden() -> None:
    f = _dec("8D4840D6202CC371C32CE0576098")
    assert int(f.df[0]) == 17 and bool(f.crc_ok[0]) and f"{int(f.icao[0]):06X}" == "4840D6"
    assert int(f.tc[0]) == 4 and int(f.category[0]) == 0
    assert callsigns(f.chars) == ["KLM1023"]
    assert pms.decode("8D4840D6202CC371C32CE0576098")["callsign"] == "KLM1023"


def test_airborne_pair_golden() -> None:
    even, odd = "8D40621D58C382D690C8AC2863A7", "8D40621D58C386435CC412692AD6"
    f = _dec(even, odd)
    assert f.alt_ft.tolist() == [38000.0, 38000.0]
    assert f.cpr_odd.tolist() == [False, True]
    icao = f.icao
    # the odd message is the newer one: its latitude zone gives the position
    lat, lon, method, state = resolve(
        icao, np.array([T0, T0 + 2]) * US, f.surface_pos, f.cpr_odd, f.cpr_lat, f.cpr_lon, CprState.empty()
    )
    assert method.tolist() == [0, GLOBAL]
    assert (lat[1], lon[1]) == pytest.approx((52.26578017412606, 3.938912527901786), abs=1e-9)
    # the even message again, 3 s later: paired with the odd one, even newer (the book's 52.2572, 3.9194)
    lat, lon, method, _ = resolve(icao[:1], np.array([(T0 + 3) * US]), f.surface_pos[:1], f.cpr_odd[:1],
                                  f.cpr_lat[:1], f.cpr_lon[:1], state)  # fmt: skip
    assert method.tolist() == [GLOBAL]
    assert (lat[0], lon[0]) == pytest.approx((52.2572021484375, 3.91937255859375), abs=1e-9)
    ref = pms_pos.airborne_position_pair(93000, 51372, 74158, 50194, even_is_newer=True)
    assert ref == pytest.approx((lat[0], lon[0]), abs=1e-9)


def test_pair_too_far_apart_is_not_global_but_local_with_a_recent_fix() -> None:
    f = _dec("8D40621D58C382D690C8AC2863A7", "8D40621D58C386435CC412692AD6")
    t = np.array([T0, T0 + 11]) * US
    lat, _lon, method, _ = resolve(f.icao, t, f.surface_pos, f.cpr_odd, f.cpr_lat, f.cpr_lon, CprState.empty())
    assert method.tolist() == [0, 0] and np.isnan(lat).all()


def test_velocity_golden() -> None:
    f = _dec("8D485020994409940838175B284F", "8DA05F219B06B6AF189400CBC33F")
    assert f.velocity.tolist() == [True, True]
    assert f.gs_kt[0] == pytest.approx(159.20, abs=0.01)
    assert f.track_deg[0] == pytest.approx(182.88, abs=0.01)
    assert f.vrate_fpm.tolist() == [-832.0, -2304.0]
    assert f.airspeed_kt[1] == 375.0 and bool(f.tas[1]) and f.heading_deg[1] == pytest.approx(243.984375)
    p0, p1 = pms.decode("8D485020994409940838175B284F"), pms.decode("8DA05F219B06B6AF189400CBC33F")
    assert (p0["groundspeed"], p0["track"], p0["vertical_rate"]) == (159, pytest.approx(f.track_deg[0]), -832)
    assert (p1["airspeed"], p1["airspeed_type"], p1["heading"]) == (375, "TAS", pytest.approx(f.heading_deg[1]))


def test_surface_golden() -> None:
    f = _dec("8C4841753AAB238733C8CD4020B1")
    assert bool(f.surface_pos[0]) and f.gs_kt[0] == 18.0 and f.track_deg[0] == 140.625
    lat, lon = cpr_local(f.cpr_lat, f.cpr_lon, f.cpr_odd, np.array([51.990]), np.array([4.375]), surface=f.surface_pos)
    assert (lat[0], lon[0]) == pytest.approx((52.32304000854492, 4.730472564697266), abs=1e-9)
    p = pms.decode("8C4841753AAB238733C8CD4020B1", surface_ref=(51.990, 4.375))
    assert (p["latitude"], p["longitude"]) == pytest.approx((lat[0], lon[0]), abs=1e-9)


def test_surveillance_replies_golden() -> None:
    f = _dec("A0001838CA3E51F0A8000047A36A", "20001838CA3E51", "28001A1BE5D0B5", "2A00516D492B80")
    assert [f"{int(x):06X}" for x in f.icao] == ["EF614D", "DBBD0A", "B67FDD", "510AF9"]
    assert f.alt_ft[:2].tolist() == [38000.0, 38000.0]
    assert squawks(f.ident[2:]) == ["3615", "0356"]
    assert not f.crc_ok.any()  # the parity carries the address: no check possible


def test_every_altitude_and_identity_code_matches_pymodes() -> None:
    """All 8192 AC13 codes (25 ft, Gillham, metric, invalid) and ID codes against pyModeS."""
    codes = np.arange(8192, dtype=np.int64)
    icao = np.full(8192, 0x3C6586, dtype=np.int64)
    for df in (4, 5):
        m = enc.surveillance_reply(df, icao, codes)
        f = decode(m, np.full(8192, 7, dtype=np.int64))
        assert (f.icao == 0x3C6586).all()
        hexes = enc.to_hex(m, np.full(8192, 7))
        theirs = [pms.decode(h) for h in hexes]
        if df == 4:
            want = [np.nan if d.get("altitude") is None else float(d["altitude"]) for d in theirs]
            np.testing.assert_array_equal(f.alt_ft, np.array(want))
            q25 = ((codes >> 4) & 1 == 1) & ((codes >> 6) & 1 == 0)
            assert np.isfinite(f.alt_ft[q25]).all()  # every 25 ft code decodes
            assert np.isfinite(f.alt_ft[~q25]).sum() > 1000  # and the Gillham codes that are valid
        else:
            assert squawks(f.ident) == [d["squawk"] for d in theirs]


def test_crc_rejects_single_bit_errors() -> None:
    good = bytearray(bytes.fromhex("8D4840D6202CC371C32CE0576098"))
    flipped = []
    for bit in range(112):
        b = bytearray(good)
        b[bit // 8] ^= 0x80 >> (bit % 8)
        flipped.append(b.hex().upper().encode())
    m, n = hex_matrix(flipped)
    f = decode(m, n)
    es = (f.df == 17) | (f.df == 18)
    assert not f.crc_ok[es].any() and (f.syndrome != 0).all()


# --------------------------------------------------------------------------- properties against pyModeS

lats = st.floats(-84.9, 84.9, allow_nan=False)
lons = st.floats(-179.9, 179.9, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    lat=lats, lon=lons, alt=st.integers(-40, 1600).map(lambda x: x * 25.0), odd=st.booleans(),
    icao=st.integers(0, (1 << 24) - 1), ve=st.integers(-1000, 1000), vn=st.integers(-1000, 1000),
    vr=st.integers(-500, 500).map(lambda x: x * 64),
    cs=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=8),
    cat=st.integers(0, 7), tc=st.integers(1, 4),
)  # fmt: skip
def test_random_messages_match_pymodes(
    lat: float, lon: float, alt: float, odd: bool, icao: int, ve: int, vn: int, vr: int, cs: str, cat: int, tc: int
) -> None:
    a = np.array([icao])
    msgs = np.concatenate([
        enc.airborne_position(a, np.array([lat]), np.array([lon]), np.array([alt]), np.array([odd])),
        enc.velocity(a, np.array([ve]), np.array([vn]), np.array([vr])),
        enc.identification(a, [cs], category=np.array([cat]), tc=np.array([tc])),
        enc.surface_position(a, np.array([lat]), np.array([lon]), np.array([(icao % 124) + 1]), np.array([lon + 180]),
                             np.array([odd])),
    ])  # fmt: skip
    hexes = enc.to_hex(msgs, np.full(4, 14))
    f = decode(msgs, np.full(4, 14, dtype=np.int64))
    assert f.crc_ok.all() and (f.icao == icao).all()
    ref = (lat + 0.3, lon - 0.3)  # a reference within 45 NM: local decoding is unambiguous
    p = [dict(pms.decode(h, reference=ref, surface_ref=ref)) for h in hexes]
    assert [d["icao"] for d in p] == [f"{icao:06X}"] * 4
    assert p[0]["altitude"] == f.alt_ft[0] == alt
    la, lo = cpr_local(f.cpr_lat, f.cpr_lon, f.cpr_odd, np.full(4, ref[0]), np.full(4, ref[1]),
                       surface=f.surface_pos)  # fmt: skip
    for i in (0, 3):
        assert (la[i], lo[i]) == pytest.approx((p[i]["latitude"], p[i]["longitude"]), abs=1e-9)
        assert (la[i], lo[i]) == pytest.approx((lat, lon), abs=1e-3)  # the CPR resolution (about 5 m / 1.25 m)
    assert int(f.gs_kt[1]) == p[1]["groundspeed"]
    if ve or vn:
        assert f.track_deg[1] == pytest.approx(p[1]["track"], abs=1e-9)
    assert f.vrate_fpm[1] == p[1]["vertical_rate"] == vr
    assert callsigns(f.chars[2:3]) == [p[2]["callsign"]] == [cs]
    assert int(f.category[2]) == p[2]["category"] == cat
    assert f.gs_kt[3] == p[3]["groundspeed"] and f.track_deg[3] == p[3]["track"]


def test_global_pairs_match_pymodes() -> None:
    """Even/odd pairs over the globe (airborne; surface with a reference within 45°) against pyModeS."""
    rng = np.random.default_rng(7)
    n = 2000
    lat, lon = rng.uniform(-87, 87, n), rng.uniform(-180, 180, n)
    icao = rng.integers(0, 1 << 24, n)
    odd_newer = rng.random(n) < 0.5
    e = enc.airborne_position(icao, lat, lon, np.full(n, 30000.0), np.zeros(n, bool))
    o = enc.airborne_position(icao, lat, lon, np.full(n, 30000.0), np.ones(n, bool))
    fe, fo = decode(e, np.full(n, 14)), decode(o, np.full(n, 14))
    la, lo = cpr_global(fe.cpr_lat, fe.cpr_lon, fo.cpr_lat, fo.cpr_lon, odd_newer, surface=np.zeros(n, bool),
                        ref_lat=np.full(n, np.nan), ref_lon=np.full(n, np.nan))  # fmt: skip
    theirs = [
        pms_pos.airborne_position_pair(int(a), int(b), int(c), int(d), even_is_newer=not bool(x))
        for a, b, c, d, x in zip(fe.cpr_lat, fe.cpr_lon, fo.cpr_lat, fo.cpr_lon, odd_newer, strict=True)
    ]
    got = [None if np.isnan(a) else (a, b) for a, b in zip(la.tolist(), lo.tolist(), strict=True)]
    assert sum(t is not None for t in theirs) > n * 0.95
    for g, t in zip(got, theirs, strict=True):
        assert (g is None) == (t is None)
        if g is not None and t is not None:
            assert g == pytest.approx(t, abs=1e-9)
    ok = ~np.isnan(la)
    np.testing.assert_allclose(la[ok], lat[ok], atol=1e-3)
    # surface: receiver references up to 40° away still pick the right quadrant
    slat = rng.uniform(-80, 80, n)
    es = enc.surface_position(icao, slat, lon, np.full(n, 10), np.zeros(n), np.zeros(n, bool))
    os_ = enc.surface_position(icao, slat, lon, np.full(n, 10), np.zeros(n), np.ones(n, bool))
    fe, fo = decode(es, np.full(n, 14)), decode(os_, np.full(n, 14))
    rlat = np.clip(slat + rng.uniform(-0.5, 0.5, n), -89, 89)
    rlon = lon + rng.uniform(-40, 40, n)
    la, lo = cpr_global(fe.cpr_lat, fe.cpr_lon, fo.cpr_lat, fo.cpr_lon, odd_newer, surface=np.ones(n, bool),
                        ref_lat=rlat, ref_lon=rlon)  # fmt: skip
    for i in range(0, n, 7):
        t = pms_pos.surface_position_pair(int(fe.cpr_lat[i]), int(fe.cpr_lon[i]), int(fo.cpr_lat[i]),
                                          int(fo.cpr_lon[i]), lat_ref=float(rlat[i]), lon_ref=float(rlon[i]),
                                          even_is_newer=not bool(odd_newer[i]))  # fmt: skip
        assert (t is None) == bool(np.isnan(la[i]))
        if t is not None:
            assert (la[i], lo[i]) == pytest.approx(t, abs=1e-9)
    ok = ~np.isnan(la)
    assert ok.mean() > 0.95
    np.testing.assert_allclose(la[ok], slat[ok], atol=1e-4)
    np.testing.assert_allclose((lo[ok] - lon[ok] + 180) % 360 - 180, 0, atol=1e-4)


# --------------------------------------------------------------------------- synthetic feeds


def _flight(n_s: int = 60, *, surface: bool = False) -> tuple[list[tuple[int, str]], dict[str, Any]]:
    """Two aircraft, one message kind per tick: positions every 0.5 s, velocity and identity every 2 s, a
    callsign every 5 s, DF5 squawks; returns ``[(time µs, hex)]`` and the truth."""
    out: list[tuple[int, str]] = []
    truth: dict[str, Any] = {"pos": {}}
    for k, (icao, lat0, lon0, cs, sq) in enumerate(((0x4840D6, 52.0, 4.0, "KLM1023", "1000"),
                                                    (0xA05F21, -33.0, -70.5, "LAN800", "7700"))):  # fmt: skip
        a = np.array([icao])
        for step in range(n_s * 2):
            t = (T0 + k * 0.1 + step * 0.5) * US
            lat, lon = lat0 + step * 0.0005, lon0 + step * 0.0003
            odd = np.array([step % 2 == 1])
            if surface:
                m = enc.surface_position(a, np.array([lat]), np.array([lon]), np.array([20]), np.array([30.0]), odd)
            else:
                m = enc.airborne_position(a, np.array([lat]), np.array([lon]), np.array([10000.0 + step]), odd)
            out.append((int(t), enc.to_hex(m, np.array([14]))[0]))
            truth["pos"][(f"{icao:06x}", int(t))] = (lat, lon)
            if step % 4 == 1:
                m = enc.velocity(a, np.array([300]), np.array([400]), np.array([-640]))
                out.append((int(t) + 1000, enc.to_hex(m, np.array([14]))[0]))
            if step % 10 == 3:
                m = enc.identification(a, [cs], category=np.array([3]), tc=np.array([4]))
                out.append((int(t) + 2000, enc.to_hex(m, np.array([14]))[0]))
                m = enc.identity_reply(a, [sq])
                out.append((int(t) + 3000, enc.to_hex(m, np.array([7]))[0]))
    out.sort()
    return out, truth


def _write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    p = tmp_path / name
    raw = data.encode() if isinstance(data, str) else data
    p.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    return p


def _attrs(cols: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [json.loads(a) if a else {} for a in cols["attrs"]]


def _check_rows(cols: dict[str, list[Any]], truth: dict[str, Any], *, surface: bool = False) -> None:
    n = len(cols["time"])
    assert n > 0
    for i in range(n):
        want = truth["pos"][(cols["ident"][i], cols["time"][i])]
        assert (cols["lat"][i], cols["lon"][i]) == pytest.approx(want, abs=2e-4)
    attrs = _attrs(cols)
    assert {a["on_ground"] for a in attrs} == {surface}
    if not surface:
        assert cols["alt_m"][-1] == pytest.approx(round((10000.0 + 119) / 25) * 25 * FT_TO_M)
        filled = [i for i in range(n) if cols["name"][i] is not None]
        assert {cols["name"][i] for i in filled} == {"KLM1023", "LAN800"}
        assert all(
            cols["speed_mps"][i] == pytest.approx(500 * KT_TO_MPS) for i in range(n) if attrs[i].get("vertrate_mps")
        )
        assert {a.get("squawk") for a in attrs} >= {"1000", "7700"}
        assert {a.get("category") for a in attrs if a.get("category")} == {"A3"}
        assert {a["cpr"] for a in attrs} == {"global"}


@pytest.mark.parametrize("form", ["avr", "epoch", "iso", "plain-mlat"])
def test_hex_reader_forms(tmp_path: Path, form: str) -> None:
    msgs, truth = _flight()
    if form == "avr":
        lines = [f"{t / US:.6f} *{h};" for t, h in msgs]
    elif form == "epoch":
        lines = [f"{t / US:.6f},{h}" for t, h in msgs]
    elif form == "iso":
        from datetime import UTC, datetime

        lines = [f"{datetime.fromtimestamp(t / US, UTC).isoformat().replace('+00:00', 'Z')}\t*{h};" for t, h in msgs]
    else:
        lines = [f"@{(t - T0 * US) * 12:012X}{h};" for t, h in msgs]
    p = _write(tmp_path, "feed.txt.gz", "# a capture\n" + "\n".join(lines) + "\n")
    assert detect_format(p) == "modes-hex"
    opts = ReadOptions(reference_time_us=T0 * US) if form == "plain-mlat" else ReadOptions()
    cols, rejects = read_all(ModeSHexReader(), p, opts)
    assert rejects == []
    _check_rows(cols, truth)
    # small batches carry the pairing and the per-aircraft state across blocks
    import atalaya.ingest.modes as modes_mod

    old = modes_mod.CHUNK_BYTES
    try:
        modes_mod.CHUNK_BYTES = 997
        cols2, _ = read_all(ModeSHexReader(), p, opts)
    finally:
        modes_mod.CHUNK_BYTES = old
    assert cols2["time"] == cols["time"] and cols2["lat"] == cols["lat"] and cols2["name"] == cols["name"]


def test_surface_positions_use_the_receiver_or_the_feed(tmp_path: Path) -> None:
    msgs, truth = _flight(20, surface=True)
    p = _write(tmp_path, "surface.avr", "\n".join(f"{t / US:.6f} *{h};" for t, h in msgs) + "\n")
    # no receiver and no airborne fix: nothing to pick the quadrant with
    cols, rejects = read_all(ModeSHexReader(), p)
    assert cols["time"] == [] and rejects == []
    # the aircraft's own earlier airborne fix (ten minutes before) picks the quadrant
    air, _ = _flight(3)
    both = sorted(air + [(t + 10 * 60 * US, h) for t, h in msgs])
    p2 = _write(tmp_path, "mixed.avr", "\n".join(f"{t / US:.6f} *{h};" for t, h in both) + "\n")
    cols, _ = read_all(ModeSHexReader(), p2)
    ground = [i for i, a in enumerate(_attrs(cols)) if a["on_ground"]]
    assert len(ground) > 40
    for i in ground:
        want = truth["pos"][(cols["ident"][i], cols["time"][i] - 10 * 60 * US)]
        assert (cols["lat"][i], cols["lon"][i]) == pytest.approx(want, abs=1e-4)
        assert cols["speed_mps"][i] == pytest.approx(5.5 * KT_TO_MPS)  # movement code 20
        assert cols["alt_m"][i] != cols["alt_m"][i]
    # or the receiver's location, given to the reader
    klm = [(t, h) for t, h in msgs if h[2:8] == "4840D6"]
    p3 = _write(tmp_path, "klm.avr", "\n".join(f"{t / US:.6f} *{h};" for t, h in klm) + "\n")
    cols, _ = read_all(ModeSHexReader(receiver=(52.3, 4.7)), p3)
    assert len(cols["time"]) == sum(int(h[8:10], 16) >> 3 == 7 for _t, h in klm) - 1  # all but the first
    for i in range(len(cols["time"])):
        assert (cols["lat"][i], cols["lon"][i]) == pytest.approx(truth["pos"][("4840d6", cols["time"][i])], abs=1e-4)


def _beast(msgs: list[tuple[int, str]]) -> bytes:
    out = bytearray()
    for t, h in msgs:
        body = bytes.fromhex(h)
        clock = ((t - T0 * US) * 12).to_bytes(6, "big")
        frame = bytes([ord("3") if len(body) == 14 else ord("2")]) + clock + bytes([0x1A]) + body
        out += b"\x1a" + frame.replace(b"\x1a", b"\x1a\x1a")
    return bytes(out)


def test_beast_reader_with_escapes(tmp_path: Path) -> None:
    msgs, truth = _flight()
    data = _beast(msgs)
    assert data.count(b"\x1a\x1a") >= len(msgs)  # every frame's signal byte is an escaped 0x1a
    p = _write(tmp_path, "feed.beast", data + b"\x1a1" + bytes(6) + b"\x00\x12\x34")  # and a Mode A/C frame
    assert detect_format(p) == "modes-beast"
    cols, rejects = read_all(ModeSBeastReader(), p, ReadOptions(reference_time_us=T0 * US))
    assert rejects == []
    _check_rows(cols, truth)
    frames = {t: i + 1 for i, (t, _h) in enumerate(msgs)}
    assert all(frames[t] == r for t, r in zip(cols["time"], cols["src_rec"], strict=True))
    # a torn frame is quarantined with its index; the stream re-synchronises on the next frame
    cut = data[:100] + data[104:]
    p2 = _write(tmp_path, "torn.beast", cut)
    cols2, rejects2 = read_all(ModeSBeastReader(), p2, ReadOptions(reference_time_us=T0 * US))
    assert len(rejects2) == 1 and "bad Beast frame" in rejects2[0].reason
    assert len(cols2["time"]) >= len(cols["time"]) - 2


def test_no_time_is_quarantined_with_the_fix(tmp_path: Path) -> None:
    msgs, _ = _flight(5)
    p = _write(tmp_path, "feed.beast", _beast(msgs))
    cols, rejects = read_all(ModeSBeastReader(), p)
    assert cols["time"] == [] and len(rejects) == len(msgs)
    assert {r.reason for r in rejects} == {NO_TIME} and "--received-at" in NO_TIME.split(":", 1)[0]
    p2 = _write(tmp_path, "plain.hex", "\n".join(h for _t, h in msgs) + "\n")
    cols, rejects = read_all(ModeSHexReader(), p2)
    assert cols["time"] == [] and {r.reason for r in rejects} == {NO_TIME}
    cols, rejects = read_all(ModeSHexReader(), p2, ReadOptions(reference_time_us=T0 * US))
    assert rejects == [] and len(cols["time"]) > 0
    assert all(t == T0 * US + r - 1 for t, r in zip(cols["time"], cols["src_rec"], strict=True))


def test_bad_crc_and_bad_lines_are_quarantined(tmp_path: Path) -> None:
    good = "8D40621D58C382D690C8AC2863A7"
    lines = [f"{T0}.0 *{good};", f"{T0}.5 *{good[:-1]}8;", f"{T0}.6 *{good[:20]};", f"{T0}.7 *{good[:-1]}Z;",
             "yesterday *" + good + ";", f"{T0}.8 *ABCD;", ""]  # fmt: skip
    p = _write(tmp_path, "bad.txt", "\n".join(lines))
    cols, rejects = read_all(ModeSHexReader(), p)
    why = {r.src_rec: r.reason for r in rejects}
    assert sorted(why) == [2, 3, 4, 5]
    assert why[2].startswith("bad CRC-24 parity (syndrome 00000F)")
    assert "20 hex digits" in why[3] and "not hexadecimal" in why[4] and "bad time" in why[5]
    assert cols["time"] == []  # one airborne message alone has no position (no row, not a reject)


def test_cli_ingest_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    msgs, _ = _flight(10)
    avr = _write(tmp_path, "capture.avr", "\n".join(f"@{(t - T0 * US) * 12:012X}{h};" for t, h in msgs) + "\n")

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
    capsys.readouterr()
    s = ingest("-w", str(tmp_path / "ws1"), "ingest", str(avr))
    assert s["totals"]["accepted"] == 0 and s["totals"]["quarantined"] == len(msgs)
    s = ingest("-w", str(tmp_path / "ws2"), "ingest", str(avr), "--received-at", "2016-03-14T23:00:00Z")
    want, _ = read_all(ModeSHexReader(), avr, ReadOptions(reference_time_us=T0 * US))
    assert s["units"][0]["format"] == "modes-hex"
    assert s["totals"]["accepted"] == len(want["time"]) > 30 and s["totals"]["quarantined"] == 0
    main(["init", str(tmp_path / "ws3")])
    capsys.readouterr()
    s = ingest("-w", str(tmp_path / "ws3"), "ingest", str(avr), "--received-at", "mtime")
    assert s["totals"]["accepted"] == len(want["time"])


def _pair_lines(times: list[str]) -> list[str]:
    """One aircraft's airborne positions, even and odd in turn, one per given time text."""
    a = np.array([0x3C6586])
    out = []
    for i, t in enumerate(times):
        m = enc.airborne_position(
            a, np.array([48.1 + i * 1e-3]), np.array([11.5]), np.array([5000.0]), np.array([i % 2 == 1])
        )
        out.append(f"{t} *{enc.to_hex(m, np.array([14]))[0]};")
    return out


def test_line_time_spellings(tmp_path: Path) -> None:
    spellings = ["1457996400", "1457996400.25,", "1457996400500", "2016-03-14T23:00:00.75Z", "2016-03-14 23:00:01",
                 "2016-03-15T01:00:01.5+02:00", "1457996402.000001\t"]  # fmt: skip
    p = _write(tmp_path, "times.log", "\n".join(_pair_lines(spellings)) + "\n")
    cols, rejects = read_all(ModeSHexReader(), p)
    assert rejects == []
    want = [0.25, 0.5, 0.75, 1.0, 1.5, 2.000001]
    assert cols["time"] == [T0 * US + round(w * US) for w in want]
    assert cols["src_rec"] == [2, 3, 4, 5, 6, 7]


def test_local_decoding_follows_a_fix(tmp_path: Path) -> None:
    """Even messages with no odd one in 10 s decode against the last fix (as pyModeS' with-reference does)."""
    a = np.array([0x3C6586])
    lines = []
    for i in range(12):
        odd = i == 1
        m = enc.airborne_position(a, np.array([48.1 + i * 1e-3]), np.array([11.5 + i * 1e-3]), np.array([5000.0]),
                                  np.array([odd]))  # fmt: skip
        lines.append(f"{T0 + i * 2} *{enc.to_hex(m, np.array([14]))[0]};")
    lines.append(lines[-1].replace(f"{T0 + 22} ", f"{T0 + 60} "))  # last fix 38 s old: no reference any more
    p = _write(tmp_path, "local.avr", "\n".join(lines) + "\n")
    cols, _ = read_all(ModeSHexReader(), p)
    methods = [a["cpr"] for a in _attrs(cols)]
    # the odd message at 2 s pairs with every even one up to 12 s; later ones decode against the last fix
    assert methods == ["global"] * 6 + ["local"] * 5
    for i in range(6, 11):
        h = lines[i + 1].split(" *")[1].rstrip(";")
        want = pms.decode(h, reference=(cols["lat"][i - 1], cols["lon"][i - 1]))
        assert (cols["lat"][i], cols["lon"][i]) == pytest.approx((want["latitude"], want["longitude"]), abs=1e-9)
        assert (cols["lat"][i], cols["lon"][i]) == pytest.approx(
            (48.1 + (i + 1) * 1e-3, 11.5 + (i + 1) * 1e-3), abs=1e-4
        )


def test_non_icao_addresses_and_unheard_overlay_addresses(tmp_path: Path) -> None:
    """DF18 with control field 1 keeps its address apart (``~``); a DF5 squawk fills rows only for an address
    heard with an intact CRC."""
    a = np.array([0x3C6586])
    lines = []
    for i in range(4):
        m = enc.airborne_position(a, np.array([48.1]), np.array([11.5]), np.array([5000.0]), np.array([i % 2 == 1]))
        if i >= 2:  # the same address as DF18, CF 1: another aircraft
            m[0, 0] = (18 << 3) | 1
            m = enc._with_parity(m, np.array([14]))
        lines.append(f"{T0 + i} *{enc.to_hex(m, np.array([14]))[0]};")
        sq = enc.identity_reply(a if i < 2 else np.array([0x123456]), ["4321" if i < 2 else "7500"])
        lines.append(f"{T0 + i}.1 *{enc.to_hex(sq, np.array([7]))[0]};")
    p = _write(tmp_path, "df18.avr", "\n".join(lines) + "\n")
    cols, rejects = read_all(ModeSHexReader(), p)
    assert rejects == []
    assert cols["ident"] == ["3c6586", "~3c6586"] and cols["ident_kind"] == ["icao24", "other"]
    assert [a.get("squawk") for a in _attrs(cols)] == ["4321", None]  # 7500 came from an unheard address


def test_message_field_among_other_fields(tmp_path: Path) -> None:
    """pyModeS-style logs: ``time,"message",icao,typecode`` (the message is not the last field); the book's pair."""
    lines = [
        '1457996400,"8D40621D58C382D690C8AC2863A7","40621D",11',
        '1457996402,"8D40621D58C386435CC412692AD6","40621D",11',
        "1457996403 8D40621D58C382D690C8AC2863A7 rssi=-12.5",
    ]
    p = _write(tmp_path, "pymodes.csv", "\n".join(lines) + "\n")
    assert detect_format(p) == "modes-hex"
    cols, rejects = read_all(ModeSHexReader(), p)
    assert rejects == []
    assert cols["time"] == [(T0 + 2) * US, (T0 + 3) * US]
    assert cols["lat"] == pytest.approx([52.26578017412606, 52.2572021484375], abs=1e-9)
    assert cols["lon"] == pytest.approx([3.938912527901786, 3.91937255859375], abs=1e-9)
    assert cols["alt_m"] == pytest.approx([38000 * FT_TO_M] * 2)


def test_no_other_sample_is_taken_for_mode_s() -> None:
    """The sniffs stay out of the way of every other reader's real sample files."""
    data = Path(__file__).parent / "data"
    samples = [f for f in sorted(data.rglob("*")) if f.is_file() and f.suffix != ".md"]
    assert len(samples) > 20
    for f in samples:
        head = f.read_bytes()[:65536]
        assert ModeSHexReader().sniff(head, f) == 0.0, f
        assert ModeSBeastReader().sniff(head, f) == 0.0, f
        assert not detect_format(f).startswith("modes-"), f


_FLIGHT, _ = _flight(4)
_AVR = ("\n".join(f"{t / US:.6f} *{h};" for t, h in _FLIGHT) + "\n").encode()
_BEAST = _beast(_FLIGHT)


@settings(max_examples=150, deadline=None)
@given(
    beast=st.booleans(), cuts=st.lists(st.tuples(st.integers(0, 4000), st.binary(max_size=40)), max_size=6),
    received=st.booleans(),
)  # fmt: skip
def test_damaged_captures_never_raise(beast: bool, cuts: list[tuple[int, bytes]], received: bool) -> None:
    """Bytes spliced into a capture: every batch is well formed and passes validation; nothing raises."""
    from tempfile import TemporaryDirectory

    from atalaya.ingest.validate import Bounds, to_arrow

    data = bytearray(_BEAST if beast else _AVR)
    for at, junk in cuts:
        k = at % (len(data) + 1)
        data[k : k + len(junk) // 2] = junk
    reader = ModeSBeastReader() if beast else ModeSHexReader()
    opts = ReadOptions(batch_rows=64, reference_time_us=T0 * US if received else None)
    with TemporaryDirectory() as d:
        p = Path(d) / ("in.beast" if beast else "in.avr")
        p.write_bytes(bytes(data))
        records = 0
        for batch in reader.read(p, opts):
            records += batch.records_read
            assert all(r.reason and len(r.raw) <= 512 for r in batch.rejects)
            n = len(batch)
            assert {len(v) for v in batch.columns.values()} <= {n}
            if n:
                _arrays, keep, _problems = to_arrow(batch.columns, Bounds(), (T0 + 3600) * US)
                assert int(keep.sum()) <= n
            assert len(batch.rejects) <= batch.records_read or not beast
        assert records >= 0


def test_airspeed_and_heading_fill_attrs(tmp_path: Path) -> None:
    """The book's airspeed message (subtype 3: TAS 375 kt, heading 243.98°) fills the next position's attrs,
    not its speed or course (those are over the ground)."""
    a = np.array([0xA05F21])
    pos = [
        enc.to_hex(enc.airborne_position(a, np.array([40.0]), np.array([-3.7]), np.array([30000.0]), np.array([o])),
                   np.array([14]))[0]
        for o in (False, True)
    ]  # fmt: skip
    lines = [f"{T0} *{pos[0]};", f"{T0 + 1} *8DA05F219B06B6AF189400CBC33F;", f"{T0 + 2} *{pos[1]};"]
    cols, rejects = read_all(ModeSHexReader(), _write(tmp_path, "tas.avr", "\n".join(lines) + "\n"))
    assert rejects == [] and len(cols["time"]) == 1
    attrs = _attrs(cols)[0]
    assert attrs["tas_mps"] == round(375 * KT_TO_MPS, 3) and "ias_mps" not in attrs
    assert attrs["heading_deg"] == 243.984375 and attrs["vertrate_mps"] == round(-2304 * FT_TO_M / 60, 3)
    assert cols["speed_mps"][0] != cols["speed_mps"][0] and cols["course_deg"][0] != cols["course_deg"][0]
