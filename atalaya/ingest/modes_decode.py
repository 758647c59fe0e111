"""Mode-S and ADS-B (1090 MHz extended squitter) decoding, column-wise over arrays of messages.

Messages arrive as a ``uint8`` matrix, one row per message (7 bytes for the 56-bit short formats, 14 for the
112-bit long ones; short rows are zero-padded to 14). Every field comes out for all rows at once: the CRC-24
remainder is a table lookup per byte *column*, the 56-bit ME field is one ``uint64`` per row and the fields are
shifts and masks of it. No Python code runs per message.

What is decoded (field names as in :class:`Fields`):

- every format: downlink format, CRC-24 syndrome; the address (AA) for DF11/17/18, recovered from the
  address/parity overlay for DF0/4/5/16/20/21 (the syndrome *is* the address there).
- DF17/18 extended squitter: type code; identification (TC 1–4: callsign, emitter category); airborne
  position (TC 9–18 barometric altitude with the Q bit or Gillham code, TC 20–22 GNSS height) and surface
  position (TC 5–8: movement → ground speed, track) with their CPR fields; airborne velocity (TC 19 subtypes
  1–2 ground speed and track, 3–4 airspeed and heading; vertical rate for all four).
- DF0/4/16/20: altitude (AC13: 25 ft with Q = 1, Gillham 100 ft with Q = 0; metric M = 1 is left unknown).
- DF5/21: identity (squawk).

CPR position decoding (:func:`cpr_global`, :func:`cpr_local`, :func:`nl`) follows DO-260B §A.1.7; the reader
pairs messages and picks references (:mod:`atalaya.ingest.modes_cpr`).

>>> m, n = hex_matrix([b"8D4840D6202CC371C32CE0576098", b"8D485020994409940838175B284F"])
>>> f = decode(m, n)
>>> callsigns(f.chars[:1])[0], int(f.df[0]), f"{int(f.icao[0]):06X}", bool(f.crc_ok.all())
('KLM1023', 17, '4840D6', True)
>>> round(float(f.gs_kt[1]), 2), round(float(f.track_deg[1]), 2), float(f.vrate_fpm[1])
(159.2, 182.88, -832.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "CRC_POLY",
    "Fields",
    "altcode_ft",
    "callsigns",
    "cpr_global",
    "cpr_local",
    "crc24",
    "decode",
    "hex_matrix",
    "hex_to_u8",
    "nl",
    "squawk_chars",
    "squawks",
]

U8 = npt.NDArray[np.uint8]
U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

CRC_POLY = 0xFFF409
"""The Mode-S CRC-24 generator polynomial (x^24 term implied)."""
_NZ = 15
_CPR_SCALE = float(1 << 17)


def _crc_table() -> U32:
    t = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i << 16
        for _ in range(8):
            c = ((c << 1) ^ CRC_POLY) if c & 0x800000 else (c << 1)
        t[i] = c & 0xFFFFFF
    return t


_CRC_TABLE = _crc_table()
_HEX_LUT = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789ABCDEF"):
    _HEX_LUT[_c] = _i
for _i, _c in enumerate(b"abcdef"):
    _HEX_LUT[_c] = 10 + _i
_CALLSIGN_CHARS = np.frombuffer(
    b"#ABCDEFGHIJKLMNOPQRSTUVWXYZ##### ###############0123456789######", dtype=np.uint8
).copy()
"""ICAO 6-bit character set: 1–26 letters, 32 space, 48–57 digits, ``#`` for the codes not in use."""


def hex_to_u8(digits: U8) -> tuple[U8, B]:
    """Hex digit characters ``(n, 2k)`` → bytes ``(n, k)`` and a per-row flag "all digits were hex"."""
    v = _HEX_LUT[digits]
    ok = ~(v == 255).any(axis=1)
    return ((v[:, 0::2] << 4) | (v[:, 1::2] & 15)).astype(np.uint8), ok


def hex_matrix(messages: Sequence[bytes]) -> tuple[U8, I64]:
    """Messages as hex text (14 or 28 digits each) → ``(n, 14)`` byte matrix and byte counts (for tests, benches).

    Raises :class:`ValueError` naming the first message that is not 14 or 28 hex digits.
    """
    n = len(messages)
    digits = np.full((n, 28), ord("0"), dtype=np.uint8)
    nbytes = np.zeros(n, dtype=np.int64)
    for i, m in enumerate(messages):
        if len(m) not in (14, 28):
            raise ValueError(f"message {i} ({m[:40]!r}) has {len(m)} hex digits, expected 14 or 28")
        digits[i, : len(m)] = np.frombuffer(m, dtype=np.uint8)
        nbytes[i] = len(m) // 2
    out, ok = hex_to_u8(digits)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise ValueError(f"message {i} ({messages[i][:40]!r}) is not hexadecimal")
    return out, nbytes


def crc24(msg: U8, nbytes: I64) -> U32:
    """CRC-24 syndrome of each message: the remainder over its data bytes XOR its last three (parity) bytes.

    Zero for an intact DF11 (interrogator code 0), DF17 or DF18; the transmitter's address for DF0/4/5/16/20/21,
    whose parity is overlaid with it.
    """
    n = msg.shape[0]
    out = np.zeros(n, dtype=np.uint32)
    for size in (7, 14):
        rows = np.flatnonzero(nbytes == size)
        if rows.size == 0:
            continue
        sub = msg[rows]
        crc = np.zeros(rows.size, dtype=np.uint32)
        for j in range(size - 3):
            crc = ((crc << 8) & 0xFFFFFF) ^ _CRC_TABLE[((crc >> 16) ^ sub[:, j]) & 0xFF]
        parity = (
            (sub[:, size - 3].astype(np.uint32) << 16) | (sub[:, size - 2].astype(np.uint32) << 8) | sub[:, size - 1]
        )
        out[rows] = crc ^ parity
    return out


def _gray(x: I64) -> I64:
    x = x ^ (x >> 8)
    x = x ^ (x >> 4)
    x = x ^ (x >> 2)
    return x ^ (x >> 1)


def altcode_ft(ac13: U32) -> F64:
    """Altitude in feet of 13-bit AC codes (``C1 A1 C2 A2 C4 A4 M B1 Q B2 D2 B4 D4``); NaN when unknown.

    Q = 1: 25 ft steps from −1000 ft. Q = 0: the Gillham (Gray) 100 ft code. M = 1 (metric) and all-zero codes
    are unknown, as are Gillham codes with an invalid 100 ft digit.
    """
    ac = ac13.astype(np.int64)
    m_bit = (ac >> 6) & 1
    q_bit = (ac >> 4) & 1
    n25 = ((ac >> 2) & 0x7E0) | ((ac >> 1) & 0x10) | (ac & 0xF)
    alt25 = n25.astype(np.float64) * 25.0 - 1000.0

    def b(pos: int) -> I64:
        return (ac >> (12 - pos)) & 1

    gc500 = (b(10) << 7) | (b(12) << 6) | (b(1) << 5) | (b(3) << 4) | (b(5) << 3) | (b(7) << 2) | (b(9) << 1) | b(11)
    gc100 = (b(0) << 2) | (b(2) << 1) | b(4)
    n500 = _gray(gc500)
    n100 = _gray(gc100)
    bad100 = (n100 == 0) | (n100 == 5) | (n100 == 6)
    n100 = np.where(n100 == 7, 5, n100)
    n100 = np.where(n500 % 2 == 1, 6 - n100, n100)
    alt_g = (n500 * 500 + n100 * 100 - 1300).astype(np.float64)
    out = np.where(q_bit == 1, alt25, np.where(bad100, np.nan, alt_g))
    return np.where((ac == 0) | (m_bit == 1), np.nan, out)


def squawk_chars(id13: U32) -> U8:
    """``(n, 4)`` octal digit characters of 13-bit identity codes (``C1 A1 C2 A2 C4 A4 X B1 D1 B2 D2 B4 D4``)."""
    idc = id13.astype(np.int64)

    def b(pos: int) -> I64:
        return (idc >> (12 - pos)) & 1

    a = (b(5) << 2) | (b(3) << 1) | b(1)
    bb = (b(11) << 2) | (b(9) << 1) | b(7)
    c = (b(4) << 2) | (b(2) << 1) | b(0)
    d = (b(12) << 2) | (b(10) << 1) | b(8)
    return (np.stack([a, bb, c, d], axis=1) + ord("0")).astype(np.uint8)


def squawks(id13: U32) -> list[str]:
    """4-digit octal squawks of 13-bit identity codes."""
    out: list[str] = squawk_chars(id13).view("S4").ravel().astype(str).tolist()
    return out


def callsigns(chars: U8) -> list[str]:
    """Callsign strings of ``(n, 8)`` character matrices, blanks stripped at both ends."""
    if chars.shape[0] == 0:
        return []
    return [s.strip() for s in np.ascontiguousarray(chars).view("S8").ravel().astype(str).tolist()]


@dataclass(frozen=True, kw_only=True)
class Fields:
    """Decoded fields of ``n`` messages, one array entry per message; NaN or 0 where a field does not apply."""

    df: U8
    """Downlink format (24 for every DF24 Comm-D message)."""
    long: B
    """112-bit message."""
    syndrome: U32
    """CRC-24 syndrome (see :func:`crc24`)."""
    crc_ok: B
    """DF11/17/18 with a zero syndrome (DF11: interrogator code 0 or the low 7 bits only)."""
    icao: U32
    """Address: AA of DF11/17/18, the recovered overlay address of DF0/4/5/16/20/21, else 0."""
    cf: U8
    """DF18 control field (DF17: 0)."""
    tc: U8
    """Type code of DF17/18 (0 otherwise)."""
    category: U8
    """Emitter category (TC 1–4: ``"A" … "D"`` from the type code, digit from this field)."""
    chars: U8
    """``(n, 8)`` callsign characters (TC 1–4)."""
    alt_ft: F64
    """Barometric altitude in feet (TC 9–18 and DF0/4/16/20), NaN if unknown."""
    gnss_alt_m: F64
    """GNSS height in metres (TC 20–22)."""
    cpr_odd: B
    """CPR format F = 1 (odd)."""
    cpr_lat: U32
    """17-bit CPR latitude."""
    cpr_lon: U32
    """17-bit CPR longitude."""
    airborne_pos: B
    """DF17/18 with TC 9–18 or 20–22."""
    surface_pos: B
    """DF17/18 with TC 5–8."""
    velocity: B
    """DF17/18 with TC 19 and subtype 1–4."""
    gs_kt: F64
    """Ground speed in knots (velocity subtypes 1–2 and surface movement)."""
    track_deg: F64
    """Track over ground, degrees true."""
    airspeed_kt: F64
    """Airspeed in knots (velocity subtypes 3–4)."""
    tas: B
    """The airspeed is true (else indicated)."""
    heading_deg: F64
    """Heading, degrees (velocity subtypes 3–4 with the heading status bit)."""
    vrate_fpm: F64
    """Vertical rate in ft/min."""
    ident: U32
    """13-bit identity code of DF5/21 (see :func:`squawks`)."""


_MOV_LB = np.array([2, 9, 13, 39, 94, 109, 124])
_KT_LB = np.array([0.125, 1.0, 2.0, 15.0, 70.0, 100.0, 175.0])
_MOV_STEP = np.array([0.125, 0.25, 0.5, 1.0, 2.0, 5.0, 0.0])


def _movement_kt(mov: U64) -> F64:
    m = mov.astype(np.int64)
    i = np.clip(np.searchsorted(_MOV_LB, m, side="right") - 1, 0, 6)
    kt = _KT_LB[i] + (m - _MOV_LB[i]) * _MOV_STEP[i]
    kt = np.where(m == 1, 0.0, kt)
    return np.where((m == 0) | (m > 124), np.nan, kt)


def decode(msg: U8, nbytes: I64) -> Fields:
    """Decode ``n`` messages (``(n, 14)`` bytes; ``nbytes`` 7 or 14 per row)."""
    n = msg.shape[0]
    m32 = msg[:, :4].astype(np.uint32)
    header = (m32[:, 0] << 24) | (m32[:, 1] << 16) | (m32[:, 2] << 8) | m32[:, 3]
    df = (msg[:, 0] >> 3).astype(np.uint8)
    df = np.where(df >= 24, 24, df).astype(np.uint8)
    long = nbytes == 14
    syndrome = crc24(msg, nbytes)
    aa = header & 0xFFFFFF
    es = ((df == 17) | (df == 18)) & long
    df11 = (df == 11) & ~long
    crc_ok = (es & (syndrome == 0)) | (df11 & (syndrome < 0x80))
    overlay = np.isin(df, (0, 4, 5, 16, 20, 21))
    icao = np.where(es | df11, aa, np.where(overlay, syndrome, 0)).astype(np.uint32)
    cf = np.where(df == 18, msg[:, 0] & 7, 0).astype(np.uint8)

    me = np.zeros(n, dtype=np.uint64)
    for k in range(7):
        me = (me << np.uint64(8)) | msg[:, 4 + k].astype(np.uint64)
    me = np.where(es, me, np.uint64(0))

    def bits(a: int, b: int) -> U64:
        """ME bits ``a..b`` (1-based, inclusive, MSB first)."""
        return (me >> np.uint64(56 - b)) & np.uint64((1 << (b - a + 1)) - 1)

    tc = bits(1, 5).astype(np.uint8)
    ident_msg = es & (tc >= 1) & (tc <= 4)
    category = np.where(ident_msg, bits(6, 8), 0).astype(np.uint8)
    codes = np.stack([bits(9 + 6 * i, 14 + 6 * i) for i in range(8)], axis=1).astype(np.intp)
    chars = np.where(ident_msg[:, None], _CALLSIGN_CHARS[codes], ord(" ")).astype(np.uint8)

    airborne = es & (((tc >= 9) & (tc <= 18)) | ((tc >= 20) & (tc <= 22)))
    surface = es & (tc >= 5) & (tc <= 8)
    alt12 = bits(9, 20).astype(np.uint32)
    baro_ac = ((alt12 >> 6) << 7) | (alt12 & 0x3F)
    ac13 = header & 0x1FFF
    alt_msg = np.isin(df, (0, 4, 16, 20))
    alt_ft = altcode_ft(np.where(alt_msg, ac13, baro_ac).astype(np.uint32))
    alt_ft = np.where(alt_msg | (airborne & (tc <= 18)), alt_ft, np.nan)
    gnss_alt_m = np.where(airborne & (tc >= 20), alt12.astype(np.float64), np.nan)

    pos = airborne | surface
    cpr_odd = pos & (bits(22, 22) == 1)
    cpr_lat = np.where(pos, bits(23, 39), 0).astype(np.uint32)
    cpr_lon = np.where(pos, bits(40, 56), 0).astype(np.uint32)

    st = bits(6, 8)
    vel = es & (tc == 19) & (st >= 1) & (st <= 4)
    ground = vel & (st <= 2)
    air = vel & (st >= 3)
    fast = np.where((st == 2) | (st == 4), 4.0, 1.0)
    v_ew = bits(15, 24).astype(np.float64)
    v_ns = bits(26, 35).astype(np.float64)
    have_v = ground & (v_ew > 0) & (v_ns > 0)
    ve = np.where(bits(14, 14) == 1, -1.0, 1.0) * (v_ew - 1) * fast
    vn = np.where(bits(25, 25) == 1, -1.0, 1.0) * (v_ns - 1) * fast
    gs_v = np.where(have_v, np.hypot(ve, vn), np.nan)
    trk_v = np.where(have_v, np.degrees(np.arctan2(ve, vn)) % 360.0, np.nan)
    as_raw = v_ns
    airspeed = np.where(air & (as_raw > 0), (as_raw - 1) * fast, np.nan)
    heading = np.where(air & (bits(14, 14) == 1), v_ew * (360.0 / 1024.0), np.nan)
    tas = air & (bits(25, 25) == 1)
    vr_raw = bits(38, 46).astype(np.float64)
    vrate = np.where(vel & (vr_raw > 0), np.where(bits(37, 37) == 1, -64.0, 64.0) * (vr_raw - 1), np.nan)

    mov_kt = _movement_kt(bits(6, 12))
    trk_s = np.where(bits(13, 13) == 1, bits(14, 20).astype(np.float64) * (360.0 / 128.0), np.nan)
    gs_kt = np.where(surface, np.where(surface, mov_kt, np.nan), gs_v)
    track = np.where(surface, trk_s, trk_v)
    ident = np.where((df == 5) | (df == 21), header & 0x1FFF, 0).astype(np.uint32)
    return Fields(
        df=df, long=long, syndrome=syndrome, crc_ok=crc_ok, icao=icao, cf=cf, tc=np.where(es, tc, 0).astype(np.uint8),
        category=category, chars=chars, alt_ft=alt_ft, gnss_alt_m=gnss_alt_m, cpr_odd=cpr_odd, cpr_lat=cpr_lat,
        cpr_lon=cpr_lon, airborne_pos=airborne, surface_pos=surface, velocity=vel, gs_kt=gs_kt, track_deg=track,
        airspeed_kt=airspeed, tas=tas, heading_deg=heading, vrate_fpm=vrate, ident=ident,
    )  # fmt: skip


# --------------------------------------------------------------------------- CPR


def _nl_boundaries() -> F64:
    """Latitudes (degrees, ascending) where NL drops from 59 − i to 58 − i, for i = 0 … 57."""
    nz = np.arange(58, 0, -1, dtype=np.float64)  # NL values just above each boundary... solved in closed form
    a = 1.0 - np.cos(np.pi / (2 * _NZ))
    lat = np.degrees(np.arccos(np.sqrt(a / (1.0 - np.cos(2 * np.pi / (nz + 1))))))
    return np.asarray(lat, dtype=np.float64)


_NL_LAT = _nl_boundaries()


def nl(lat: F64) -> I64:
    """Number of longitude zones at each latitude (1 … 59), as defined by DO-260B (``NZ = 15``)."""
    a = np.abs(np.asarray(lat, dtype=np.float64))
    n = 59 - np.searchsorted(_NL_LAT, a, side="right")
    n = np.where(a >= 87.0, np.where(a == 87.0, 2, 1), n)
    return n.astype(np.int64)


def cpr_global(
    lat_e: U32, lon_e: U32, lat_o: U32, lon_o: U32, odd_newer: B, *, surface: B, ref_lat: F64, ref_lon: F64
) -> tuple[F64, F64]:
    """Globally unambiguous positions of even/odd CPR pairs; NaN where the two lie in different NL zones.

    The newer message of each pair (``odd_newer``) gives the position. Surface pairs (90° zones) are resolved
    to the one of the four candidate positions nearest ``ref_lat``/``ref_lon`` (NaN reference: no position).
    """
    span = np.where(surface, 90.0, 360.0)
    ye, xe = lat_e / _CPR_SCALE, lon_e / _CPR_SCALE
    yo, xo = lat_o / _CPR_SCALE, lon_o / _CPR_SCALE
    j = np.floor(59 * ye - 60 * yo + 0.5)
    rlat_e = span / 60 * (np.mod(j, 60) + ye)
    rlat_o = span / 59 * (np.mod(j, 59) + yo)
    air = ~surface
    rlat_e = np.where(air & (rlat_e >= 270), rlat_e - 360, rlat_e)
    rlat_o = np.where(air & (rlat_o >= 270), rlat_o - 360, rlat_o)
    # surface: the northern solution or the one 90° south, whichever is nearer the reference
    newer = np.where(odd_newer, rlat_o, rlat_e)
    south = surface & (np.abs(newer - 90 - ref_lat) < np.abs(newer - ref_lat))
    rlat_e = np.where(south, rlat_e - 90, rlat_e)
    rlat_o = np.where(south, rlat_o - 90, rlat_o)
    nl_e, nl_o = nl(rlat_e), nl(rlat_o)
    lat = np.where(odd_newer, rlat_o, rlat_e)
    nlat = np.where(odd_newer, nl_o, nl_e)
    ni = np.maximum(nlat - odd_newer.astype(np.int64), 1)
    m = np.floor(xe * (nlat - 1) - xo * nlat + 0.5)
    lon = span / ni * (np.mod(m, ni) + np.where(odd_newer, xo, xe))
    lon = np.where(air & (lon > 180), lon - 360, lon)
    # surface: the quadrant (0, 90, 180, 270° apart) nearest the reference longitude
    k = np.round((ref_lon - lon) / 90.0) % 4
    lon_s = lon + 90.0 * np.where(np.isnan(k), 0, k)
    lon_s = (lon_s + 180.0) % 360.0 - 180.0
    lon = np.where(surface, np.where(np.isnan(ref_lon) | np.isnan(ref_lat), np.nan, lon_s), lon)
    bad = (nl_e != nl_o) | ~(np.abs(lat) <= 90) | ~(np.abs(lon) <= 180)
    return np.where(bad, np.nan, lat), np.where(bad, np.nan, lon)


def cpr_local(cpr_lat: U32, cpr_lon: U32, odd: B, ref_lat: F64, ref_lon: F64, *, surface: B) -> tuple[F64, F64]:
    """Positions from single CPR messages decoded against a nearby reference (airborne within 180 NM,
    surface within 45 NM of the truth); NaN where the reference is NaN."""
    span = np.where(surface, 90.0, 360.0)
    y, x = cpr_lat / _CPR_SCALE, cpr_lon / _CPR_SCALE
    oddi = odd.astype(np.int64)
    dlat = span / (60 - oddi)
    j = np.floor(0.5 + ref_lat / dlat - y)
    lat = dlat * (j + y)
    ni = nl(lat) - oddi
    dlon = np.where(ni > 0, span / np.maximum(ni, 1), span)
    m = np.floor(0.5 + ref_lon / dlon - x)
    lon = dlon * (m + x)
    bad = np.isnan(ref_lat) | np.isnan(ref_lon) | (np.abs(lat) > 90)
    lon = (lon + 180.0) % 360.0 - 180.0
    return np.where(bad, np.nan, lat), np.where(bad, np.nan, lon)
