"""Bit-level AIS helpers: payload armouring, bit fields, 6-bit text, and encoding.

AIS messages travel as bit strings armoured into printable characters, six bits
per character (ITU-R M.1371, IEC 61162-1; field layouts as in the gpsd
"AIVDM/AIVDO protocol decoding" document). Decoding here works on a whole batch
at once: a ``(rows, chars)`` matrix of 6-bit values, from which a field at a
fixed bit offset is extracted for every row with a few shifts.

Encoding (types 1/2/3, 18 and 5, NMEA sentences with NMEA 4.0 tag blocks) lets
the scenario generator and tests write valid AIS without a third-party library.

>>> dearmour(b"15M67F@P1aGA4Q0EMB`4lSh1P000")[:3].tolist()
[1, 5, 29]
>>> field(dearmour_matrix([b"15M67F@P1aGA4Q0EMB`4lSh1P000"]), 8, 30).tolist()
[366053209]
>>> dearmour_matrix([]).shape
(0, 0)
>>> nmea_checksum(b"AIVDM,1,1,,A,15M67F@P1aGA4Q0EMB`4lSh1P000,0")
'23'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]

VALID_ARMOUR = bytes(range(48, 88)) + bytes(range(96, 120))
"""The 64 characters of the AIS payload armour, in 6-bit value order."""

_ARMOUR = np.frombuffer(VALID_ARMOUR, dtype=np.uint8)

_DEARMOUR_LUT = np.full(256, 255, dtype=np.uint8)
_DEARMOUR_LUT[_ARMOUR] = np.arange(64, dtype=np.uint8)
"""Armour character → 6-bit value; 255 marks a character that is not armour."""

_TEXT_LUT = np.frombuffer(b"@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_ !\"#$%&'()*+,-./0123456789:;<=>?", dtype=np.uint8)
"""6-bit value → ASCII for AIS text fields."""

_TEXT_INV = np.zeros(128, dtype=np.uint8)
_TEXT_INV[_TEXT_LUT] = np.arange(64, dtype=np.uint8)

KNOT_MPS = 1852.0 / 3600.0
"""One knot in metres per second."""


# --------------------------------------------------------------------------- decoding


def dearmour(payload: bytes) -> U8:
    """6-bit values of one armoured payload; characters outside the armour give 255.

    >>> dearmour(b"").shape
    (0,)
    """
    return _DEARMOUR_LUT[np.frombuffer(payload, dtype=np.uint8)]


def dearmour_lut() -> U8:
    """The 256-entry armour-character → 6-bit value table (255 = not armour). A copy."""
    return _DEARMOUR_LUT.copy()


def dearmour_matrix(payloads: Sequence[bytes], width: int | None = None) -> U8:
    """Stack payloads into a ``(rows, width)`` matrix of 6-bit values, right-padded with zeros.

    Characters outside the armour give 255 (check with ``(m == 255).any(axis=1)``).

    >>> dearmour_matrix([b"1", b"10"]).tolist()
    [[1, 0], [1, 0]]
    """
    if not payloads:
        return np.zeros((0, width or 0), dtype=np.uint8)
    w = width if width is not None else max(len(p) for p in payloads)
    blob = b"".join(p[:w].ljust(w, b"0") for p in payloads)
    return _DEARMOUR_LUT[np.frombuffer(blob, dtype=np.uint8)].reshape(len(payloads), w)


def field(m: U8, start: int, length: int) -> I64:
    """Unsigned bit field ``[start, start+length)`` of every row of a 6-bit matrix (length ≤ 57).

    Bits past the end of the matrix read as zero.

    >>> field(np.array([[0b000001, 0b100000]], dtype=np.uint8), 5, 2).tolist()
    [3]
    """
    first = start // 6
    last = (start + length - 1) // 6
    acc = np.zeros(m.shape[0], dtype=np.int64)
    for k in range(first, last + 1):
        acc <<= 6
        if k < m.shape[1]:
            acc |= m[:, k].astype(np.int64) & 63
    shift = (last + 1) * 6 - (start + length)
    result: I64 = (acc >> shift) & ((1 << length) - 1)
    return result


def signed_field(m: U8, start: int, length: int) -> I64:
    """Two's-complement signed bit field of every row.

    >>> signed_field(np.array([[0b111111]], dtype=np.uint8), 0, 6).tolist()
    [-1]
    """
    v = field(m, start, length)
    result: I64 = np.where(v >= (1 << (length - 1)), v - (1 << length), v)
    return result


def text_field(m: U8, start: int, nchars: int) -> list[str]:
    """AIS 6-bit text field of every row, with ``@`` padding and trailing spaces removed.

    >>> text_field(dearmour_matrix([armour(encode_text("AB", 2))]), 0, 2)
    ['AB']
    >>> text_field(np.zeros((0, 4), dtype=np.uint8), 0, 2)
    []
    """
    n = m.shape[0]
    if n == 0:
        return []
    chars = np.empty((n, nchars), dtype=np.uint8)
    for j in range(nchars):
        chars[:, j] = _TEXT_LUT[field(m, start + 6 * j, 6)]
    blob = chars.tobytes().decode("ascii")
    out = []
    for i in range(n):
        s = blob[i * nchars : (i + 1) * nchars]
        cut = s.find("@")
        out.append((s if cut < 0 else s[:cut]).rstrip())
    return out


def nmea_checksum(body: bytes | str) -> str:
    """XOR of the bytes between ``!``/``$`` (or ``\\``) and ``*``, as two upper-case hex digits.

    >>> nmea_checksum(b"")
    '00'
    """
    b = body.encode("ascii") if isinstance(body, str) else body
    x = int(np.bitwise_xor.reduce(np.frombuffer(b, dtype=np.uint8))) if b else 0
    return f"{x:02X}"


# --------------------------------------------------------------------------- encoding


def bits_to_armour(bits: U8) -> list[tuple[bytes, int]]:
    """Armour rows of a ``(rows, nbits)`` 0/1 matrix: ``(payload, fill_bits)`` per row.

    >>> bits_to_armour(np.zeros((1, 6), dtype=np.uint8))
    [(b'0', 0)]
    """
    n, nbits = bits.shape
    fill = (-nbits) % 6
    if fill:
        bits = np.concatenate([bits, np.zeros((n, fill), dtype=np.uint8)], axis=1)
    groups = bits.reshape(n, -1, 6).astype(np.uint8)
    vals = (groups * np.array([32, 16, 8, 4, 2, 1], dtype=np.uint8)).sum(axis=2, dtype=np.uint8)
    chars = _ARMOUR[vals]
    w = chars.shape[1]
    blob = chars.tobytes()
    return [(blob[i * w : (i + 1) * w], fill) for i in range(n)]


def armour(values: U8) -> bytes:
    """Armour a 1-D array of 6-bit values.

    >>> armour(np.array([1, 40], dtype=np.uint8))
    b'1`'
    """
    return bytes(_ARMOUR[values & 63].tobytes())


def encode_text(text: str, nchars: int) -> U8:
    """6-bit values of an AIS text field (upper-cased, ``@``-padded to ``nchars``).

    >>> encode_text("", 2).tolist()
    [0, 0]
    """
    raw = text.upper().encode("ascii", errors="replace")[:nchars].ljust(nchars, b"@")
    arr = np.frombuffer(raw, dtype=np.uint8) & 127
    out: U8 = _TEXT_INV[arr]
    return out


class _BitWriter:
    """Writes unsigned/signed integer columns into a ``(rows, nbits)`` bit matrix."""

    def __init__(self, n: int, nbits: int) -> None:
        self.bits = np.zeros((n, nbits), dtype=np.uint8)

    def put(self, start: int, length: int, values: npt.ArrayLike) -> None:
        v = np.asarray(values, dtype=np.int64) & ((1 << length) - 1)
        shifts = np.arange(length - 1, -1, -1, dtype=np.int64)
        self.bits[:, start : start + length] = ((v[:, None] >> shifts[None, :]) & 1).astype(np.uint8)

    def put_text(self, start: int, nchars: int, texts: Sequence[str]) -> None:
        vals = np.stack([encode_text(t, nchars) for t in texts]) if texts else np.zeros((0, nchars), np.uint8)
        for j in range(nchars):
            self.put(start + 6 * j, 6, vals[:, j])


def _arr(x: npt.ArrayLike, n: int, dtype: type = np.float64) -> npt.NDArray[np.float64]:
    a: npt.NDArray[np.float64] = np.asarray(x, dtype=dtype)
    return np.broadcast_to(a, (n,)) if a.ndim == 0 else a


@dataclass(frozen=True, kw_only=True)
class PositionFields:
    """Columns of position reports to encode (types 1/2/3 or 18); NaN = not available."""

    mmsi: npt.ArrayLike
    """MMSI numbers."""
    lon: npt.ArrayLike
    """Longitude, degrees (NaN → 181, not available)."""
    lat: npt.ArrayLike
    """Latitude, degrees (NaN → 91, not available)."""
    sog_knots: npt.ArrayLike = np.nan
    """Speed over ground, knots (NaN → 102.3)."""
    cog_deg: npt.ArrayLike = np.nan
    """Course over ground, degrees (NaN → 360)."""
    heading: npt.ArrayLike = 511
    """True heading, whole degrees (511 = not available)."""
    status: npt.ArrayLike = 15
    """Navigation status 0–15 (types 1/2/3 only)."""
    second: npt.ArrayLike = 60
    """UTC second of the report (60 = not available)."""


def encode_positions(msg_type: int, f: PositionFields) -> list[tuple[bytes, int]]:
    """Armoured payloads of position reports of type 1, 2, 3 or 18, one per row.

    >>> p = encode_positions(1, PositionFields(mmsi=[366053209], lon=[-122.1], lat=[37.5]))
    >>> p[0][1], len(p[0][0])
    (0, 28)
    >>> encode_positions(18, PositionFields(mmsi=[], lon=[], lat=[]))
    []
    """
    if msg_type not in (1, 2, 3, 18):
        raise ValueError(f"cannot encode position type {msg_type}; use 1, 2, 3 or 18")
    mmsi = np.asarray(f.mmsi, dtype=np.int64)
    n = mmsi.shape[0]
    if n == 0:
        return []
    lon = _arr(f.lon, n)
    lat = _arr(f.lat, n)
    sog = _arr(f.sog_knots, n)
    cog = _arr(f.cog_deg, n)
    lon_raw = np.where(np.isnan(lon), 181 * 600000, np.rint(np.nan_to_num(lon) * 600000)).astype(np.int64)
    lat_raw = np.where(np.isnan(lat), 91 * 600000, np.rint(np.nan_to_num(lat) * 600000)).astype(np.int64)
    sog_raw = np.where(np.isnan(sog), 1023, np.clip(np.rint(np.nan_to_num(sog) * 10), 0, 1022)).astype(np.int64)
    cog_raw = np.where(np.isnan(cog), 3600, np.rint(np.nan_to_num(cog) * 10) % 3600).astype(np.int64)
    w = _BitWriter(n, 168)
    w.put(0, 6, np.full(n, msg_type))
    w.put(8, 30, mmsi)
    if msg_type == 18:
        w.put(46, 10, sog_raw)
        w.put(57, 28, lon_raw)
        w.put(85, 27, lat_raw)
        w.put(112, 12, cog_raw)
        w.put(124, 9, _arr(f.heading, n, np.int64))
        w.put(133, 6, _arr(f.second, n, np.int64))
    else:
        w.put(38, 4, _arr(f.status, n, np.int64))
        w.put(42, 8, np.full(n, -128))
        w.put(50, 10, sog_raw)
        w.put(61, 28, lon_raw)
        w.put(89, 27, lat_raw)
        w.put(116, 12, cog_raw)
        w.put(128, 9, _arr(f.heading, n, np.int64))
        w.put(137, 6, _arr(f.second, n, np.int64))
    return bits_to_armour(w.bits)


def encode_static(mmsi: Sequence[int], names: Sequence[str], callsigns: Sequence[str] | None = None,
                  ship_types: Sequence[int] | None = None) -> list[tuple[bytes, int]]:  # fmt: skip
    """Armoured type 5 (static and voyage data) payloads, 424 bits each (two sentences on air).

    >>> p = encode_static([366053209], ["FOO BAR"])
    >>> len(p[0][0]), p[0][1]
    (71, 2)
    >>> encode_static([], [])
    []
    """
    n = len(mmsi)
    if n == 0:
        return []
    w = _BitWriter(n, 424)
    w.put(0, 6, np.full(n, 5))
    w.put(8, 30, np.asarray(mmsi, dtype=np.int64))
    w.put_text(70, 7, callsigns if callsigns is not None else [""] * n)
    w.put_text(112, 20, names)
    w.put(232, 8, np.asarray(ship_types if ship_types is not None else [0] * n, dtype=np.int64))
    w.put_text(302, 20, [""] * n)
    return bits_to_armour(w.bits)


def tag_block(*, time_s: float | None = None, station: str | None = None, millis: bool = False) -> str:
    """An NMEA 4.0 tag block ``\\s:station,c:time*hh\\`` (``c:`` in seconds, or milliseconds).

    >>> tag_block(time_s=1700000000, station="r1")
    '\\\\s:r1,c:1700000000*79\\\\'
    >>> tag_block()
    ''
    """
    parts = []
    if station is not None:
        parts.append(f"s:{station}")
    if time_s is not None:
        parts.append(f"c:{round(time_s * 1000)}" if millis else f"c:{int(time_s)}")
    if not parts:
        return ""
    body = ",".join(parts)
    return f"\\{body}*{nmea_checksum(body)}\\"


def sentences(
    payload: bytes | str,
    fill: int,
    *,
    channel: str = "A",
    seq_id: int | None = None,
    talker: str = "AI",
    own: bool = False,
    max_chars: int = 60,
) -> list[str]:
    """NMEA ``!xxVDM`` sentences carrying one armoured payload, split into fragments of ``max_chars``.

    >>> sentences(b"15M67F@P1aGA4Q0EMB`4lSh1P000", 0)
    ['!AIVDM,1,1,,A,15M67F@P1aGA4Q0EMB`4lSh1P000,0*23']
    >>> len(sentences(b"5" * 71, 2, seq_id=3))
    2
    """
    p = payload.decode("ascii") if isinstance(payload, bytes) else payload
    chunks = [p[i : i + max_chars] for i in range(0, len(p), max_chars)] or [""]
    count = len(chunks)
    seq = "" if count == 1 and seq_id is None else str(0 if seq_id is None else seq_id)
    kind = "VDO" if own else "VDM"
    out = []
    for k, c in enumerate(chunks, start=1):
        body = f"{talker}{kind},{count},{k},{seq},{channel},{c},{fill if k == count else 0}"
        out.append(f"!{body}*{nmea_checksum(body)}")
    return out
