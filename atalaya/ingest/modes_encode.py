"""Encoding Mode-S / ADS-B messages, column-wise: synthetic 1090 MHz feeds for tests, benches and exercises.

The inverse of :mod:`atalaya.ingest.modes_decode` for the messages the readers use: DF17 identification,
airborne position (CPR, 25 ft barometric altitude), surface position, airborne velocity (subtype 1), DF4
altitude and DF5 identity (with the address overlaid on the parity). Each function takes arrays and returns
``(n, 14)`` message bytes (short messages in the first 7), CRC included.

>>> m = identification(np.array([0x4840D6]), ["KLM1023"], category=np.array([0]), tc=np.array([4]))
>>> to_hex(m, np.array([14]))
['8D4840D6202CC371C32CE0576098']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from atalaya.ingest.modes_decode import crc24, nl

__all__ = [
    "airborne_position",
    "all_call_reply",
    "altitude_reply",
    "cpr_encode",
    "identification",
    "identity_reply",
    "surface_position",
    "surveillance_reply",
    "to_hex",
    "velocity",
]

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

_CHARSET = "#ABCDEFGHIJKLMNOPQRSTUVWXYZ##### ###############0123456789######"


def _with_parity(msg: U8, nbytes: I64, overlay: I64 | None = None) -> U8:
    """Fill the last three bytes of each message with its CRC (XOR ``overlay``: the AP field of replies)."""
    msg = msg.copy()
    n = msg.shape[0]
    for size in (7, 14):
        rows = np.flatnonzero(nbytes == size)
        msg[rows, size - 3 : size] = 0
    crc = crc24(msg, nbytes).astype(np.int64)
    if overlay is not None:
        crc ^= overlay
    for size in (7, 14):
        rows = np.flatnonzero(nbytes == size)
        for k in range(3):
            msg[rows, size - 3 + k] = (crc[rows] >> (16 - 8 * k)) & 0xFF
    del n
    return msg


def _es(icao: I64, me: npt.NDArray[np.uint64]) -> U8:
    """DF17 (capability 5) messages with address ``icao`` and 56-bit ``me``."""
    n = icao.size
    msg = np.zeros((n, 14), dtype=np.uint8)
    msg[:, 0] = 0x8D
    for k in range(3):
        msg[:, 1 + k] = (icao >> (16 - 8 * k)) & 0xFF
    for k in range(7):
        msg[:, 4 + k] = (me >> np.uint64(48 - 8 * k)) & np.uint64(0xFF)
    return _with_parity(msg, np.full(n, 14, dtype=np.int64))


def _u64(x: npt.ArrayLike) -> npt.NDArray[np.uint64]:
    return np.asarray(x).astype(np.int64).astype(np.uint64)


def cpr_encode(lat: F64, lon: F64, odd: B, *, surface: bool = False) -> tuple[I64, I64]:
    """17-bit CPR latitude and longitude of positions (DO-260B §A.1.7.1; surface: the 90° zones, which is the
    19-bit encoding's low 17 bits)."""
    span = 90.0 if surface else 360.0
    nb = 17
    i = odd.astype(np.int64)
    dlat = span / (60 - i)
    yz = np.floor((1 << nb) * np.mod(lat, dlat) / dlat + 0.5)
    rlat = dlat * (yz / (1 << nb) + np.floor(lat / dlat))
    ni = nl(rlat) - i
    dlon = np.where(ni > 0, span / np.maximum(ni, 1), span)
    xz = np.floor((1 << nb) * np.mod(lon, dlon) / dlon + 0.5)
    return yz.astype(np.int64) % (1 << 17), xz.astype(np.int64) % (1 << 17)


def _alt12(alt_ft: F64) -> I64:
    """12-bit altitude field, 25 ft steps (Q = 1)."""
    n = np.round((alt_ft + 1000.0) / 25.0).astype(np.int64) & 0x7FF
    return ((n & 0x7F0) << 1) | 0x10 | (n & 0xF)


def identification(icao: I64, callsign: Sequence[str], *, category: I64, tc: I64) -> U8:
    """TC 1–4 identification messages."""
    codes = np.array([[_CHARSET.index(c) for c in f"{s:<8}"[:8]] for s in callsign], dtype=np.int64).reshape(-1, 8)
    me = (_u64(tc) << np.uint64(51)) | (_u64(category) << np.uint64(48))
    for k in range(8):
        me |= _u64(codes[:, k]) << np.uint64(42 - 6 * k)
    return _es(icao, me)


def airborne_position(icao: I64, lat: F64, lon: F64, alt_ft: F64, odd: B, *, tc: int = 11) -> U8:
    """TC 9–18 airborne positions with barometric altitude (25 ft)."""
    ylat, xlon = cpr_encode(lat, lon, odd)
    me = (np.uint64(tc) << np.uint64(51)) | (_u64(_alt12(alt_ft)) << np.uint64(36))
    me |= (_u64(odd) << np.uint64(34)) | (_u64(ylat) << np.uint64(17)) | _u64(xlon)
    return _es(icao, me)


def surface_position(icao: I64, lat: F64, lon: F64, movement: I64, track_deg: F64, odd: B) -> U8:
    """TC 7 surface positions with movement code and a valid track."""
    ylat, xlon = cpr_encode(lat, lon, odd, surface=True)
    trk = np.round(np.mod(track_deg, 360.0) * 128.0 / 360.0).astype(np.int64) % 128
    me = (np.uint64(7) << np.uint64(51)) | (_u64(movement) << np.uint64(44)) | (np.uint64(1) << np.uint64(43))
    me |= (_u64(trk) << np.uint64(36)) | (_u64(odd) << np.uint64(34)) | (_u64(ylat) << np.uint64(17)) | _u64(xlon)
    return _es(icao, me)


def velocity(icao: I64, v_east_kt: I64, v_north_kt: I64, vrate_fpm: I64) -> U8:
    """TC 19 subtype 1 (subsonic ground speed) messages; vertical rate in 64 ft/min steps."""
    ve, vn = np.asarray(v_east_kt, dtype=np.int64), np.asarray(v_north_kt, dtype=np.int64)
    vr = np.asarray(vrate_fpm, dtype=np.int64)
    me = np.full(ve.shape, (19 << 51) | (1 << 48), dtype=np.uint64)
    me |= (_u64(ve < 0) << np.uint64(42)) | (_u64(np.abs(ve) + 1) << np.uint64(32))
    me |= (_u64(vn < 0) << np.uint64(31)) | (_u64(np.abs(vn) + 1) << np.uint64(21))
    me |= (
        (np.uint64(1) << np.uint64(20))
        | (_u64(vr < 0) << np.uint64(19))
        | (_u64(np.abs(vr) // 64 + 1) << np.uint64(10))
    )
    return _es(icao, me)


def surveillance_reply(df: int, icao: I64, field13: I64) -> U8:
    """DF0/4/5/16/20/21-style short replies with a raw 13-bit AC/ID field, address overlaid on the parity."""
    n = icao.size
    msg = np.zeros((n, 14), dtype=np.uint8)
    msg[:, 0] = df << 3
    msg[:, 2] = (field13 >> 8) & 0x1F
    msg[:, 3] = field13 & 0xFF
    return _with_parity(msg, np.full(n, 7, dtype=np.int64), overlay=np.asarray(icao, dtype=np.int64))


def all_call_reply(icao: I64, capability: int = 5) -> U8:
    """DF11 all-call replies (interrogator code 0: the parity is the plain CRC)."""
    n = icao.size
    msg = np.zeros((n, 14), dtype=np.uint8)
    msg[:, 0] = (11 << 3) | capability
    for k in range(3):
        msg[:, 1 + k] = (icao >> (16 - 8 * k)) & 0xFF
    return _with_parity(msg, np.full(n, 7, dtype=np.int64))


def altitude_reply(icao: I64, alt_ft: F64) -> U8:
    """DF4 surveillance altitude replies (AC13, 25 ft, Q = 1), address overlaid on the parity."""
    a12 = _alt12(alt_ft)
    return surveillance_reply(4, icao, ((a12 & 0xFC0) << 1) | (a12 & 0x3F))


def identity_reply(icao: I64, squawk: Sequence[str]) -> U8:
    """DF5 surveillance identity replies, address overlaid on the parity."""
    d = np.array([[int(c, 8) for c in s] for s in squawk], dtype=np.int64).reshape(-1, 4)
    a, b, c, dd = d[:, 0], d[:, 1], d[:, 2], d[:, 3]
    bits = [c & 1, a & 1, c >> 1 & 1, a >> 1 & 1, c >> 2 & 1, a >> 2 & 1, 0 * a, b & 1, dd & 1, b >> 1 & 1,
            dd >> 1 & 1, b >> 2 & 1, dd >> 2 & 1]  # fmt: skip
    field13 = np.zeros(d.shape[0], dtype=np.int64)
    for pos, bit in enumerate(bits):
        field13 |= bit << (12 - pos)
    return surveillance_reply(5, icao, field13)


def to_hex(msg: U8, nbytes: I64) -> list[str]:
    """Upper-case hex text of each message (its first ``nbytes`` bytes)."""
    h = np.char.upper(np.array([r.tobytes().hex() for r in msg], dtype=object).astype(str))
    return [s[: 2 * int(k)] for s, k in zip(h.tolist(), np.broadcast_to(nbytes, msg.shape[:1]).tolist(), strict=True)]
