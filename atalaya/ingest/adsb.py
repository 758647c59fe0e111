"""ADS-B readers: SBS-1/BaseStation port-30003 text and OpenSky state vectors (CSV and REST JSON).

Three formats, one module, because they share the ICAO24 conventions and the
line machinery:

``sbs``
    BaseStation/SBS-1 lines (``MSG,3,1,1,A1B2C3,1,2024/01/01,12:00:00.000,…``;
    22 comma-separated fields for ``MSG``). Only position messages make rows
    (``MSG,2`` surface and ``MSG,3`` airborne). Identification (``MSG,1``),
    velocity (``MSG,4``), squawk (``MSG,6``) and the other ``MSG`` types update
    a per-aircraft state that fills the callsign, ground speed, track and squawk
    of later position rows of the same aircraft when recent enough (within
    ``state_window_s`` for speed/track, ``ident_window_s`` for callsign and
    squawk). The state is carried from one batch to the next. Other record
    types (``SEL``, ``ID``, ``AIR``, ``STA``, ``CLK``) and non-position ``MSG``
    lines are consumed, not rejected.
``opensky-csv``
    The OpenSky Network historical state-vector CSV (header required). Rows
    with empty ``lat``/``lon`` are routine (the aircraft was heard but not
    located) and are counted as skipped non-position records, not rejects.
    The row time is ``lastposupdate`` (when the position was measured), falling
    back to ``time`` (the snapshot time); altitude is ``geoaltitude``, falling
    back to ``baroaltitude``.
``opensky-json``
    The OpenSky REST ``/states/all`` response, one per file or as JSON Lines.
    The row time is ``time_position``, falling back to ``last_contact``; the
    record locator ``src_rec`` is the 1-based index of the state vector in the
    file.

Parsing is column-wise: a block of lines is classified with numpy (field
counts, record types, line lengths, bytes outside ASCII). For SBS the fields a
row needs are sliced out of the block at the comma offsets (dates, times, the
message type and the hex id read as fixed-width bytes) and converted with Arrow
casts; the OpenSky CSV lines are handed to ``pyarrow.csv`` with explicit column
types. Checks are vectorised masks. If a block holds a value ``pyarrow`` cannot
convert, its values are re-read as strings and the offending lines become
:class:`~atalaya.ingest.base.Reject` records with the field named; the rest of
the block still comes through.

>>> lines = format_sbs_lines(
...     icao24=["a1b2c3"], time_us=np.array([1_704_110_400_000_000]),
...     lon=np.array([-118.2]), lat=np.array([34.1]), alt_m=np.array([10668.0]),
...     speed_mps=np.array([231.5]), course_deg=np.array([90.0]), callsign=["N123AB"])
>>> [ln.split(",")[:2] for ln in lines]
[['MSG', '1'], ['MSG', '4'], ['MSG', '3']]
>>> format_sbs_lines(icao24=[], time_us=np.array([], dtype=np.int64), lon=np.array([]), lat=np.array([]))
[]
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from numpy.lib.stride_tricks import sliding_window_view

from atalaya.core.errors import IngestError
from atalaya.ingest.base import MAX_LINE_BYTES, ParsedBatch, ReadOptions, Reject, open_source
from atalaya.ingest.jsonstream import READ_BYTES, Utf8Window, decode_at

__all__ = [
    "FT_TO_M",
    "KT_TO_MPS",
    "OPENSKY_CSV_COLUMNS",
    "OpenSkyCsvReader",
    "OpenSkyJsonReader",
    "SbsReader",
    "format_sbs_lines",
]

FT_TO_M = 0.3048
"""Feet to metres (exact)."""
KT_TO_MPS = 1852.0 / 3600.0
"""Knots to metres per second (exact)."""

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
BoolArr = npt.NDArray[np.bool_]

_SBS_FIELDS = 22
_SBS_OTHER_TYPES = (b"SEL,", b"ID,", b"AIR,", b"STA,", b"CLK,")
_SBS_ALL_TYPES = (b"MSG,", *_SBS_OTHER_TYPES)
_SBS_NAMES = [f"f{i}" for i in range(_SBS_FIELDS)]
# Field positions (0-based) in an SBS MSG line.
_F_TT, _F_HEX, _F_DGEN, _F_TGEN, _F_DLOG, _F_TLOG, _F_CS = 1, 4, 6, 7, 8, 9, 10
_F_ALT, _F_GS, _F_TRK, _F_LAT, _F_LON, _F_VR, _F_SQ, _F_GND = 11, 12, 13, 14, 15, 16, 17, 21
_SBS_FLOATS = {_F_ALT: "altitude", _F_GS: "ground speed", _F_TRK: "track", _F_LAT: "latitude", _F_LON: "longitude"}
_SBS_STRINGS = (_F_CS, _F_SQ, _F_GND)  # type, hex id, dates and times are read as bytes

OPENSKY_CSV_COLUMNS: tuple[str, ...] = (
    "time",
    "icao24",
    "lat",
    "lon",
    "velocity",
    "heading",
    "vertrate",
    "callsign",
    "onground",
    "alert",
    "spi",
    "squawk",
    "baroaltitude",
    "geoaltitude",
    "lastposupdate",
    "lastcontact",
)
"""Columns of the OpenSky historical state-vector CSV, in their published order."""
_OS_REQUIRED = ("time", "icao24", "lat", "lon")
_OS_FLOATS = ("lat", "lon", "velocity", "heading", "vertrate", "baroaltitude", "geoaltitude", "lastposupdate")
_OS_TYPES: dict[str, pa.DataType] = {
    "time": pa.float64(),
    "lastcontact": pa.float64(),
    **{c: pa.float64() for c in _OS_FLOATS},
    "icao24": pa.string(),
    "callsign": pa.string(),
    "squawk": pa.string(),
    "onground": pa.bool_(),
    "alert": pa.bool_(),
    "spi": pa.bool_(),
}

_NUM_RE = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_HEX_RE = r"^~?[0-9A-Fa-f]{6}$"
_DATE_RE = r"^\d{4}/\d{2}/\d{2}$"
_TIME_RE = r"^\d{2}:\d{2}:\d{2}(\.\d{1,9})?$"
_SQUAWK_RE = r"^[0-7]{4}$"
_US = 1_000_000


# --------------------------------------------------------------------------- line blocks


@dataclass(frozen=True, kw_only=True)
class _Block:
    """A run of whole lines read from a text input."""

    data: bytes
    """The bytes of the lines, newlines included."""
    starts: I64
    """Byte offset where each line starts in ``data``."""
    ends: I64
    """Byte offset where each line's content ends (before ``\\r\\n`` / ``\\n``)."""
    line_no: I64
    """1-based line number of each line in the file."""
    rejects: list[Reject]
    """Lines rejected while streaming (longer than ``MAX_LINE_BYTES``)."""
    nbytes: int
    """Bytes of input consumed for this block (including skipped over-long lines)."""


def _iter_blocks(fh: Any, chunk_bytes: int, *, first_line: int = 1) -> Iterator[_Block]:
    """Cut a binary stream into blocks of whole lines; a final line without newline is kept."""
    carry = b""
    line = first_line  # line number of the first line in ``carry``
    skipping = False  # inside an over-long line whose start was already rejected
    consumed = 0
    while True:
        try:
            chunk = fh.read(chunk_bytes)
        except (OSError, EOFError) as e:
            raise IngestError(f"cannot read input: {e}", hint="the file may be truncated or corrupt") from e
        eof = not chunk
        consumed += len(chunk)
        rejects: list[Reject] = []
        if skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                if eof:
                    return
                continue
            chunk = chunk[nl + 1 :]
            skipping = False
            line += 1
        buf = carry + chunk
        if eof and not buf:
            if rejects:
                yield _empty_block(rejects, consumed)
            return
        cut = len(buf) if eof else buf.rfind(b"\n") + 1
        if cut == 0:  # no newline yet
            if len(buf) > MAX_LINE_BYTES:
                rejects.append(
                    Reject(src_rec=line, reason=f"line longer than {MAX_LINE_BYTES} bytes", raw=Reject.excerpt(buf))
                )
                carry, skipping = b"", True
                yield _empty_block(rejects, consumed)
                consumed = 0
            else:
                carry = buf
            continue
        data, carry = buf[:cut], buf[cut:]
        arr = np.frombuffer(data, dtype=np.uint8)
        nl_pos = np.flatnonzero(arr == 10).astype(np.int64)
        starts = np.concatenate(([0], nl_pos + 1)).astype(np.int64)
        ends = np.concatenate((nl_pos, [len(data)])).astype(np.int64)
        if starts[-1] == len(data):  # data ends with a newline: no partial last line
            starts, ends = starts[:-1], ends[:-1]
        if ends.size:
            cr = (ends > starts) & (arr[np.maximum(ends - 1, 0)] == 13)
            ends = ends - cr.astype(np.int64)
        line_no = line + np.arange(starts.size, dtype=np.int64)
        line += int(starts.size)
        yield _Block(data=data, starts=starts, ends=ends, line_no=line_no, rejects=rejects, nbytes=consumed)
        consumed = 0
        if eof:
            return


def _empty_block(rejects: list[Reject], nbytes: int) -> _Block:
    z = np.zeros(0, dtype=np.int64)
    return _Block(data=b"", starts=z, ends=z, line_no=z, rejects=rejects, nbytes=nbytes)


def _seg_count(mask: BoolArr, starts: I64, ends: I64) -> I64:
    """How many ``True`` bytes lie in each ``[start, end)`` span (spans sorted, non-overlapping)."""
    pos = np.flatnonzero(mask)
    out: I64 = np.searchsorted(pos, ends) - np.searchsorted(pos, starts)
    return out


def _fixed_width(a: pa.Array, width: int) -> npt.NDArray[np.uint8] | None:
    """The bytes of a string array as an ``(n, width)`` matrix when every value has that length, else ``None``."""
    n = len(a)
    if a.null_count or n == 0:
        return None
    offsets = np.frombuffer(a.buffers()[1], dtype=np.int32)[a.offset : a.offset + n + 1]
    if offsets[-1] - offsets[0] != n * width or not (np.diff(offsets) == width).all():
        return None
    data = np.frombuffer(a.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return data.reshape(n, width)


def _gather_kept(block: _Block, keep: BoolArr) -> bytes:
    """The bytes of the kept lines (each with its newline), in order."""
    if keep.all():
        data = block.data
    else:
        seg_end = np.concatenate((block.starts[1:], [len(block.data)])).astype(np.int64)
        arr = np.frombuffer(block.data, dtype=np.uint8)
        data = arr[np.repeat(keep, seg_end - block.starts)].tobytes()
    if data and not data.endswith(b"\n"):
        data += b"\n"
    return data


def _no_commas() -> I64:
    return np.zeros((0, _SBS_FIELDS - 1), dtype=np.int64)


def _slice_strings(arr: npt.NDArray[np.uint8], lo: I64, hi: I64) -> pa.Array:
    """``arr[lo[i]:hi[i]]`` for every ``i`` as one Arrow string array, empty → null (no UTF-8 check: callers
    slice lines already checked by :func:`_check_lines` at ASCII commas)."""
    n = lo.size
    lens = hi - lo
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    data = arr[np.repeat(lo - offsets[:-1], lens) + np.arange(int(offsets[-1]), dtype=np.int64)]
    valid = lens > 0
    return pa.Array.from_buffers(
        pa.string(),  # 32-bit offsets: a block is at most 64 MiB plus one line
        n,
        [
            pa.py_buffer(np.packbits(valid, bitorder="little")),
            pa.py_buffer(offsets.astype(np.int32)),
            pa.py_buffer(data),
        ],
        null_count=n - int(np.count_nonzero(valid)),
    )


def _line_text(block: _Block, i: int) -> bytes:
    return block.data[int(block.starts[i]) : int(block.ends[i])]


def _check_lines(block: _Block, fields: int, rejects: list[Reject]) -> tuple[BoolArr, BoolArr]:
    """Common line checks. Returns (empty, bad) masks; reasons for ``bad`` lines go to ``rejects``."""
    arr = np.frombuffer(block.data, dtype=np.uint8)
    lens = block.ends - block.starts
    empty = lens == 0
    stray_cr = _seg_count(arr == 13, block.starts, block.ends)
    high = _seg_count(arr >= 128, block.starts, block.ends)
    bad = np.zeros(lens.size, dtype=bool)
    for i in np.flatnonzero(~empty & (lens > MAX_LINE_BYTES)):
        rejects.append(_rej(block, int(i), f"line longer than {MAX_LINE_BYTES} bytes"))
        bad[i] = True
    for i in np.flatnonzero(~empty & ~bad & (high > 0)):
        try:
            _line_text(block, int(i)).decode("utf-8")
        except UnicodeDecodeError as e:
            rejects.append(_rej(block, int(i), f"undecodable bytes (not UTF-8) at column {e.start + 1}"))
            bad[i] = True
    for i in np.flatnonzero(~empty & ~bad & (stray_cr > 0)):
        rejects.append(_rej(block, int(i), "carriage return inside the line"))
        bad[i] = True
    if fields > 0:
        commas = _seg_count(arr == 44, block.starts, block.ends)
        wrong = ~empty & ~bad & (commas != fields - 1)
        for i in np.flatnonzero(wrong):
            rejects.append(_rej(block, int(i), f"wrong field count: {int(commas[i]) + 1} fields, expected {fields}"))
        bad |= wrong
    return empty, bad


def _rej(block: _Block, i: int, reason: str) -> Reject:
    return Reject(src_rec=int(block.line_no[i]), reason=reason, raw=Reject.excerpt(_line_text(block, i)))


def _read_table(data: bytes, names: Sequence[str], types: dict[str, pa.DataType]) -> pa.Table:
    """Parse header-less, quote-less CSV bytes with explicit column types."""
    return pcsv.read_csv(
        io.BytesIO(data),
        read_options=pcsv.ReadOptions(column_names=list(names), block_size=2 * MAX_LINE_BYTES + 2),
        parse_options=pcsv.ParseOptions(quote_char=False, escape_char=False, newlines_in_values=False),
        convert_options=pcsv.ConvertOptions(
            column_types=types,
            include_columns=list(types),
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )


def _col(t: pa.Table, name: str) -> pa.Array:
    c = t.column(name)
    return c.combine_chunks() if c.num_chunks != 1 else c.chunk(0)


def _f64(a: pa.Array) -> F64:
    """Float Arrow array → numpy float64 with NaN for nulls."""
    return np.asarray(a.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)  # nulls → NaN


def _strings_to_f64(a: pa.Array) -> tuple[F64, BoolArr]:
    """Strings → float64 (null/empty → NaN) and a mask of non-empty values that are not numbers."""
    s = pc.utf8_trim_whitespace(a)
    present = pc.fill_null(pc.greater(pc.utf8_length(s), 0), False)
    ok = pc.fill_null(pc.match_substring_regex(s, _NUM_RE), False)
    good = pc.and_(present, ok)
    vals = _f64(pc.cast(pc.if_else(good, s, pa.scalar(None, pa.string())), pa.float64()))
    bad = np.asarray(pc.and_not(present, ok).to_numpy(zero_copy_only=False), dtype=bool)
    return vals, bad


def _csv_f64(a: pa.Array) -> F64:
    """Strings → float64 as ``pyarrow.csv`` converts a float column (spaces and tabs around the number
    allowed, empty → NaN); raises ``ArrowInvalid`` on a value that is not a number."""
    try:
        return _f64(a.cast(pa.float64()))
    except pa.ArrowInvalid:
        return _f64(pc.utf8_trim(a, " \t").cast(pa.float64()))


def _mask(a: pa.Array | pa.ChunkedArray) -> BoolArr:
    return np.asarray(pc.fill_null(a, False).to_numpy(zero_copy_only=False), dtype=bool)


def _dict_const(value: str, n: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([value]))


def _null_strings(n: int) -> pa.Array:
    return pa.nulls(n, pa.string())


def _attrs_json(parts: Sequence[pa.Array], n: int) -> pa.Array:
    """Join ``"key":value`` fragments (null = absent) into one JSON object per row; ``{}`` → null."""
    if not parts:
        return _null_strings(n)
    body = pc.binary_join_element_wise(*parts, ",", null_handling="skip")
    out = pc.binary_join_element_wise("{", body, "}", "")
    return pc.if_else(pc.equal(body, ""), pa.scalar(None, pa.string()), out)


def _frag(key: str, value: pa.Array, *, quoted: bool) -> pa.Array:
    q = '"' if quoted else ""
    return pc.binary_join_element_wise(f'"{key}":{q}', value.cast(pa.string()), q, "")


def _bool_frag(key: str, value: pa.Array) -> pa.Array:
    txt = pc.if_else(value, "true", "false")
    return pc.binary_join_element_wise(f'"{key}":', txt, "")


def _sbs_attrs(squawk: pa.Array, on_ground: pa.Array) -> pa.Array:
    """``{"squawk":"7000","on_ground":false}`` per row (absent keys left out, ``{}`` → null), each distinct
    combination rendered once."""
    n = len(squawk)
    sq = pc.dictionary_encode(squawk)
    n_sq = len(sq.dictionary)
    sq_code = np.asarray(sq.indices.fill_null(n_sq).to_numpy(zero_copy_only=False), dtype=np.int64)
    og = np.asarray(pc.fill_null(on_ground.cast(pa.int8()), 2).to_numpy(zero_copy_only=False), dtype=np.int64)
    if n == 0:
        return _null_strings(0)
    uniq, inverse = np.unique(sq_code * 3 + og, return_inverse=True)
    sq_vals: list[str | None] = [*sq.dictionary.to_pylist(), None]
    texts: list[str | None] = []
    for key in uniq.tolist():
        parts = []
        if (v := sq_vals[key // 3]) is not None:
            parts.append(f'"squawk":{json.dumps(v)}')
        if key % 3 < 2:
            parts.append(f'"on_ground":{"true" if key % 3 else "false"}')
        texts.append("{" + ",".join(parts) + "}" if parts else None)
    return pa.array(texts, type=pa.string()).take(pa.array(inverse.reshape(-1)))


def _valid_icao(hexes: pa.Array) -> tuple[pa.Array, BoolArr, BoolArr]:
    """Lower-case ICAO ids, a mask of valid ones and a mask of non-ICAO (``~``, TIS-B) addresses."""
    s = pc.utf8_trim_whitespace(hexes)
    ok = _mask(pc.match_substring_regex(s, _HEX_RE))
    tilde = _mask(pc.starts_with(s, "~")) & ok
    return pc.utf8_lower(s), ok, tilde


_HEX_DIGIT = np.zeros(256, dtype=bool)
_HEX_DIGIT[list(b"0123456789abcdefABCDEF")] = True
_LOWER = np.arange(256, dtype=np.uint8)
_LOWER[65:91] += 32


def _icao_at(arr: npt.NDArray[np.uint8], lo: I64, hi: I64) -> tuple[pa.Array, BoolArr, BoolArr]:
    """:func:`_valid_icao` of the fields ``arr[lo:hi]``; byte tables when every field has 6 bytes (the usual)."""
    n = lo.size
    if n == 0 or not (hi - lo == 6).all():
        return _valid_icao(pc.fill_null(_slice_strings(arr, lo, hi), ""))
    m = sliding_window_view(arr, 6)[lo]
    ok = np.ones(n, dtype=bool)
    for k in range(6):
        ok &= _HEX_DIGIT[m[:, k]]
    offsets = np.arange(0, 6 * n + 1, 6, dtype=np.int32)
    ident = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(_LOWER[m])])
    return ident, ok, np.zeros(n, dtype=bool)  # "~" + 6 hex digits has 7 bytes


def _apply_defaults(columns: dict[str, Any], options: ReadOptions, n: int) -> None:
    for k, v in options.defaults.items():
        if k not in columns:
            columns[k] = [v] * n


SBS_BLOCK_BYTES = 8 << 20
"""Most SBS input parsed (and yielded as one batch) at a time: larger blocks only spill the CPU caches."""


def _chunk_bytes(options: ReadOptions) -> int:
    return max(256, min(64 << 20, options.batch_rows * 96))


# --------------------------------------------------------------------------- SBS helpers


def _days_from_civil(y: I64, m: I64, d: I64) -> I64:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm), vectorised."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    out: I64 = era * 146097 + doe - 719468
    return out


def _digits(m: npt.NDArray[np.uint8], a: int, b: int) -> tuple[I64, BoolArr]:
    """The decimal number in columns ``a:b`` of a byte matrix, and whether they are all digits."""
    val = np.zeros(m.shape[0], dtype=np.int64)
    ok = np.ones(m.shape[0], dtype=bool)
    for k in range(a, b):
        d = m[:, k] - np.uint8(48)  # wraps around below "0": every non-digit is > 9
        ok &= d <= 9
        val = val * 10 + d
    return val, ok


def _civil_us(yy: I64, mm: I64, dd: I64, hh: I64, mi: I64, ss: I64, frac_us: I64, ok: BoolArr) -> tuple[I64, BoolArr]:
    mdays = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
    leap = ((yy % 4 == 0) & (yy % 100 != 0)) | (yy % 400 == 0)
    mm_c = np.clip(mm, 1, 12)
    dim = mdays[mm_c - 1] + ((mm_c == 2) & leap)
    ok = ok & (mm >= 1) & (mm <= 12) & (dd >= 1) & (dd <= dim) & (hh < 24) & (mi < 60) & (ss < 60)
    days = _days_from_civil(yy, mm_c, np.clip(dd, 1, 31))
    us = (days * 86400 + hh * 3600 + mi * 60 + ss) * _US + frac_us
    return np.where(ok, us, 0).astype(np.int64), ok


def _sbs_time_at(arr: npt.NDArray[np.uint8], d_lo: I64, d_hi: I64, t_lo: I64, t_hi: I64) -> tuple[I64, BoolArr]:
    """:func:`_parse_sbs_time` of the dates ``arr[d_lo:d_hi]`` and times ``arr[t_lo:t_hi]`` (row-wise)."""
    t_len = t_hi - t_lo
    tl = int(t_len.max()) if t_len.size else 0
    if t_len.size and (d_hi - d_lo == 10).all() and (tl == 8 or 10 <= tl <= 14) and (t_len == tl).all():
        if (t_lo - d_lo == 11).all():  # the usual "date,time": one window per row holds both
            both = sliding_window_view(arr, 11 + tl)[d_lo]
            return _parse_fixed_time(both[:, :10], both[:, 11:])
        return _parse_fixed_time(sliding_window_view(arr, 10)[d_lo], sliding_window_view(arr, tl)[t_lo])
    date = pc.fill_null(_slice_strings(arr, d_lo, d_hi), "")
    return _parse_sbs_time(date, pc.fill_null(_slice_strings(arr, t_lo, t_hi), ""))


def _parse_sbs_time(date: pa.Array, tod: pa.Array) -> tuple[I64, BoolArr]:
    """``YYYY/MM/DD`` + ``HH:MM:SS[.fff]`` → microseconds since the epoch (UTC) and a validity mask."""
    dm = _fixed_width(date, 10)
    tl = int(pc.max(pc.utf8_length(tod)).as_py() or 0) if len(tod) else 0
    tm = _fixed_width(tod, tl) if tl == 8 or 10 <= tl <= 14 else None
    if dm is not None and tm is not None:  # fast path: every value has the same width
        return _parse_fixed_time(dm, tm)
    return _parse_sbs_time_general(date, tod)


def _parse_fixed_time(dm: npt.NDArray[np.uint8], tm: npt.NDArray[np.uint8]) -> tuple[I64, BoolArr]:
    """Dates and times as ``(n, 10)`` and ``(n, width)`` byte matrices → µs since the epoch and a validity mask."""
    tl = tm.shape[1]
    yy, o1 = _digits(dm, 0, 4)
    mm, o2 = _digits(dm, 5, 7)
    dd, o3 = _digits(dm, 8, 10)
    hh, o4 = _digits(tm, 0, 2)
    mi, o5 = _digits(tm, 3, 5)
    ss, o6 = _digits(tm, 6, 8)
    ok = o1 & o2 & o3 & o4 & o5 & o6 & (dm[:, 4] == 47) & (dm[:, 7] == 47) & (tm[:, 2] == 58) & (tm[:, 5] == 58)
    frac = np.zeros(dm.shape[0], dtype=np.int64)
    if tl > 8:
        frac, o7 = _digits(tm, 9, tl)
        ok &= o7 & (tm[:, 8] == 46)
        frac = frac * 10 ** (6 - (tl - 9)) if tl - 9 <= 6 else frac // 10 ** (tl - 9 - 6)
    return _civil_us(yy, mm, dd, hh, mi, ss, frac, ok)


def _parse_sbs_time_general(date: pa.Array, tod: pa.Array) -> tuple[I64, BoolArr]:
    ok = _mask(pc.match_substring_regex(date, _DATE_RE)) & _mask(pc.match_substring_regex(tod, _TIME_RE))
    d = pc.if_else(pa.array(ok), date, "1970/01/01")
    t = pc.if_else(pa.array(ok), tod, "00:00:00")

    def ints(a: pa.Array, start: int, stop: int) -> I64:
        sub = pc.utf8_slice_codeunits(a, start, stop)
        return np.asarray(pc.cast(sub, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)

    yy, mm, dd = ints(d, 0, 4), ints(d, 5, 7), ints(d, 8, 10)
    hh, mi, ss = ints(t, 0, 2), ints(t, 3, 5), ints(t, 6, 8)
    frac_txt = pc.binary_join_element_wise("0", pc.utf8_slice_codeunits(t, 8, 20), "")  # "0.123" or "0"
    frac = _f64(pc.cast(frac_txt, pa.float64()))
    return _civil_us(yy, mm, dd, hh, mi, ss, np.round(frac * _US).astype(np.int64), ok)


def _stable_order(codes: I64) -> I64:
    """``argsort(codes, kind="stable")``, as a radix sort when the codes fit 16 bits (the usual case)."""
    small = codes.size == 0 or (int(codes.min()) >= 0 and int(codes.max()) < 1 << 16)
    order: I64 = np.argsort(codes.astype(np.uint16) if small else codes, kind="stable")
    return order


def _ffill_source(codes: I64, valid: BoolArr, order: I64 | None = None) -> I64:
    """For each row, the index of the latest row at or before it (file order) with the same code and ``valid``.

    ``-1`` where there is none.

    >>> _ffill_source(np.array([0, 1, 0, 1, 0]), np.array([True, False, False, True, False])).tolist()
    [0, -1, 0, 3, 0]
    >>> _ffill_source(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)).tolist()
    []
    """
    n = codes.size
    if order is None:
        order = _stable_order(codes)
    sc = codes[order]
    pos = np.where(valid[order], np.arange(n, dtype=np.int64), -1)
    np.maximum.accumulate(pos, out=pos)
    safe = np.maximum(pos, 0)
    same = (pos >= 0) & (sc[safe] == sc) if n else np.zeros(0, dtype=bool)
    out = np.empty(n, dtype=np.int64)
    out[order] = np.where(same, order[safe], -1)
    return out


@dataclass(frozen=True, kw_only=True)
class _SbsState:
    """Last known per-aircraft values carried from one batch to the next."""

    ident: pa.Array
    """Lower-case ICAO ids (one row per aircraft)."""
    callsign: pa.Array
    """Last callsign (null if none)."""
    callsign_t: I64
    """Time of the last callsign, µs."""
    squawk: pa.Array
    """Last squawk (null if none)."""
    squawk_t: I64
    """Time of the last squawk, µs."""
    speed: F64
    """Last ground speed, m/s (NaN if none)."""
    track: F64
    """Last track, degrees (NaN if none)."""
    kin_t: I64
    """Time of the last speed/track, µs."""

    @staticmethod
    def empty() -> _SbsState:
        z = np.zeros(0, dtype=np.int64)
        e = np.zeros(0, dtype=np.float64)
        s = _null_strings(0)
        return _SbsState(ident=s, callsign=s, callsign_t=z, squawk=s, squawk_t=z, speed=e, track=e, kin_t=z)


def _take(a: pa.Array, src: I64) -> pa.Array:
    return a.take(pa.array(np.maximum(src, 0), mask=src < 0))


# --------------------------------------------------------------------------- SBS reader


class SbsReader:
    """Reader for BaseStation/SBS-1 (port 30003) text.

    >>> line = b"MSG,3,1,1,A1B2C3,1,2024/01/01,12:00:00.000,2024/01/01,12:00:00.000,,35000,,,34.1,-118.2,,,0,0,0,0"
    >>> SbsReader().sniff(line + b"\\n", Path("x.txt"))
    0.95
    >>> SbsReader().sniff(b"", Path("x.txt"))
    0.0
    """

    name: str = "sbs"
    extensions: tuple[str, ...] = (".sbs", ".basestation")

    def __init__(self, *, state_window_s: float = 60.0, ident_window_s: float = 600.0) -> None:
        self.state_window_s = state_window_s
        """Speed and track from velocity messages fill position rows at most this many seconds later."""
        self.ident_window_s = ident_window_s
        """Callsign and squawk fill position rows at most this many seconds later."""

    def sniff(self, head: bytes, path: Path) -> float:
        """Share of the first lines that start with an SBS record type."""
        lines = [ln for ln in head.split(b"\n")[:50] if ln.strip()]
        if not lines:
            return 0.0
        if len(lines) > 1 and not head.endswith(b"\n"):
            lines = lines[:-1]  # the last line may be cut by the sniff window
        hits = sum(ln.startswith(_SBS_ALL_TYPES) for ln in lines)
        msg_ok = any(ln.startswith(b"MSG,") and ln.count(b",") == _SBS_FIELDS - 1 for ln in lines)
        share = hits / len(lines)
        return round(0.95 * share if msg_ok else 0.6 * share, 3)

    def read(self, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        """Stream the file; one batch per block of lines (position rows only)."""
        state = _SbsState.empty()
        with open_source(path, options.limits) as fh:
            for block in _iter_blocks(fh, min(_chunk_bytes(options), SBS_BLOCK_BYTES)):
                batch, state = self._parse_block(block, state)
                _apply_defaults(batch.columns, options, len(batch))
                yield batch

    def _parse_block(self, block: _Block, state: _SbsState) -> tuple[ParsedBatch, _SbsState]:
        rejects = list(block.rejects)
        n_lines = block.starts.size
        empty, bad = _check_lines(block, 0, rejects)
        arr = np.frombuffer(block.data, dtype=np.uint8)
        padded = np.concatenate((arr, np.zeros(4, dtype=np.uint8)))
        heads = [padded[block.starts + k] for k in range(4)]

        def starts_with(tag: bytes) -> BoolArr:
            m = np.ones(n_lines, dtype=bool)
            for k, ch in enumerate(tag):
                m &= heads[k] == ch
            return m

        is_msg = starts_with(b"MSG,") & ~bad & ~empty
        other = np.zeros(n_lines, dtype=bool)
        for tag in _SBS_OTHER_TYPES:
            other |= starts_with(tag)
        unknown = ~empty & ~bad & ~is_msg & ~other
        for i in np.flatnonzero(unknown):
            rejects.append(_rej(block, int(i), "unknown record type (expected MSG, SEL, ID, AIR, STA or CLK)"))
        comma_at = np.flatnonzero(arr == 44)
        first_comma = np.searchsorted(comma_at, block.starts)
        # a line's commas end where the next line's begin: only its line break lies between
        commas = np.diff(first_comma, append=comma_at.size)
        wrong = is_msg & (commas != _SBS_FIELDS - 1)
        for i in np.flatnonzero(wrong):
            rejects.append(
                _rej(block, int(i), f"wrong field count: {int(commas[i]) + 1} fields, expected {_SBS_FIELDS} for MSG")
            )
        keep = is_msg & ~wrong
        rows = np.flatnonzero(keep)
        cols = self._columns(block, rows, comma_at, first_comma, rejects)
        columns, state = self._fill(cols, state)
        rejects.sort(key=lambda r: r.src_rec)
        return ParsedBatch(columns=columns, rejects=rejects, records_read=n_lines, bytes_read=block.nbytes), state

    def _columns(
        self, block: _Block, rows: I64, comma_at: I64, first_comma: I64, rejects: list[Reject]
    ) -> dict[str, Any]:
        """Parse the MSG lines ``rows`` (22 fields each) into typed columns; drop (and reject) rows with bad values.

        Fields are sliced at the commas (``comma_at``: their offsets in the block, ``first_comma``: index of each
        line's first one), only the fields the reader uses, and converted with vectorised casts.
        """
        arr = np.frombuffer(block.data, dtype=np.uint8)
        # (rows, 21) comma offsets: whole rows of a strided view, not 21 gathers per row
        commas = sliding_window_view(comma_at, _SBS_FIELDS - 1)[first_comma[rows]] if rows.size else _no_commas()

        def bounds(f: int) -> tuple[I64, I64]:
            lo = block.starts[rows] if f == 0 else commas[:, f - 1] + 1
            hi = block.ends[rows] if f == _SBS_FIELDS - 1 else commas[:, f]
            return lo, hi

        s = {i: _slice_strings(arr, *bounds(i)) for i in _SBS_STRINGS}
        n = rows.size
        texts = {i: _slice_strings(arr, *bounds(i)) for i in _SBS_FLOATS}
        floats: dict[int, F64] = {}
        bad_field: list[tuple[BoolArr, str]] = []
        try:
            floats = {i: _csv_f64(a) for i, a in texts.items()}
        except pa.ArrowInvalid:
            for i, label in _SBS_FLOATS.items():
                floats[i], b = _strings_to_f64(texts[i])
                bad_field.append((b, f"non-numeric {label}"))
        ident, hex_ok, tilde = _icao_at(arr, *bounds(_F_HEX))
        tt_lo, tt_hi = bounds(_F_TT)
        tt = np.where(tt_hi - tt_lo == 1, arr[np.minimum(tt_lo, arr.size - 1)], 0)  # one-byte type, else 0
        is2, is3 = tt == ord("2"), tt == ord("3")
        (dg_lo, dg_hi), (tg_lo, tg_hi) = bounds(_F_DGEN), bounds(_F_TGEN)
        gen = (dg_hi > dg_lo) & (tg_hi > tg_lo)  # generated date and time both present, else the logged ones
        if gen.all():
            time_us, time_ok = _sbs_time_at(arr, dg_lo, dg_hi, tg_lo, tg_hi)
        else:
            (dl_lo, dl_hi), (tl_lo, tl_hi) = bounds(_F_DLOG), bounds(_F_TLOG)
            time_us, time_ok = _sbs_time_at(
                arr, np.where(gen, dg_lo, dl_lo), np.where(gen, dg_hi, dl_hi), np.where(gen, tg_lo, tl_lo),
                np.where(gen, tg_hi, tl_hi),
            )  # fmt: skip
        lat, lon = floats[_F_LAT], floats[_F_LON]
        has_lat, has_lon = ~np.isnan(lat), ~np.isnan(lon)
        bad_field += [
            (~hex_ok, "bad hex id (expected 6 hexadecimal digits)"),
            (~time_ok, "bad date/time (expected YYYY/MM/DD and HH:MM:SS.sss)"),
            (has_lat ^ has_lon, "latitude without longitude (or the reverse)"),
            (has_lat & ~((lat >= -90) & (lat <= 90)), "latitude out of range [-90, 90]"),
            (has_lon & ~((lon >= -180) & (lon <= 180)), "longitude out of range [-180, 180]"),
        ]
        for i, label in _SBS_FLOATS.items():
            if i not in (_F_LAT, _F_LON):
                bad_field.append((np.isinf(floats[i]), f"non-finite {label}"))
        ok = np.ones(n, dtype=bool)
        for m, reason in bad_field:
            for j in np.flatnonzero(m & ok):
                rejects.append(_rej(block, int(rows[j]), reason))
            ok &= ~m
        is_pos = (is2 | is3) & has_lat & has_lon
        callsign = pc.utf8_trim_whitespace(s[_F_CS])
        callsign = pc.if_else(pc.equal(callsign, ""), pa.scalar(None, pa.string()), callsign)
        squawk = pc.utf8_trim_whitespace(s[_F_SQ])
        squawk = pc.if_else(pc.match_substring_regex(squawk, _SQUAWK_RE), squawk, pa.scalar(None, pa.string()))
        gnd = pc.utf8_trim_whitespace(s[_F_GND])
        surface = pa.array(is2)
        on_ground = pc.if_else(surface, True, pc.is_in(gnd, pa.array(["-1", "1"])))
        on_ground = pc.if_else(pc.or_(pc.is_valid(gnd), surface), on_ground, pa.scalar(None, pa.bool_()))
        sel = pa.array(ok)
        idx = np.flatnonzero(ok)
        return {
            "line_no": block.line_no[rows[idx]],
            "time": time_us[idx],
            "ident": ident.filter(sel),
            "tilde": tilde[idx],
            "is_pos": is_pos[idx],
            "lat": lat[idx],
            "lon": lon[idx],
            "alt_m": floats[_F_ALT][idx] * FT_TO_M,
            "speed": floats[_F_GS][idx] * KT_TO_MPS,
            "track": floats[_F_TRK][idx],
            "callsign": callsign.filter(sel),
            "squawk": squawk.filter(sel),
            "on_ground": on_ground.filter(sel),
        }

    def _fill(self, c: dict[str, Any], state: _SbsState) -> tuple[dict[str, Any], _SbsState]:
        """Fill callsign/speed/track/squawk of position rows from the per-aircraft state; update the state."""
        k = len(state.ident)
        n = len(c["time"])
        ident_all = pa.concat_arrays([state.ident, c["ident"]]).cast(pa.string())
        enc = pc.dictionary_encode(ident_all)
        codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        t_row = np.concatenate((np.zeros(k, dtype=np.int64), c["time"]))
        kin_win = int(self.state_window_s * _US)
        id_win = int(self.ident_window_s * _US)

        speed = np.concatenate((state.speed, c["speed"]))
        track = np.concatenate((state.track, c["track"]))
        kin_t = np.concatenate((state.kin_t, c["time"]))
        kin_valid = ~np.isnan(speed) | ~np.isnan(track)
        cs = pa.concat_arrays([state.callsign, c["callsign"]])
        cs_t = np.concatenate((state.callsign_t, c["time"]))
        sq = pa.concat_arrays([state.squawk, c["squawk"]])
        sq_t = np.concatenate((state.squawk_t, c["time"]))

        order = _stable_order(codes)
        src_kin = _ffill_source(codes, kin_valid, order)
        src_cs = _ffill_source(codes, _mask(pc.is_valid(cs)), order)
        src_sq = _ffill_source(codes, _mask(pc.is_valid(sq)), order)

        def usable(src: I64, t_val: I64, window: int) -> I64:
            fresh = np.abs(t_row - t_val[np.maximum(src, 0)]) <= window
            return np.where((src >= 0) & fresh, src, -1)

        rows = k + np.flatnonzero(c["is_pos"])
        u_kin = usable(src_kin, kin_t, kin_win)[rows]
        u_cs = usable(src_cs, cs_t, id_win)[rows]
        u_sq = usable(src_sq, sq_t, id_win)[rows]
        m = rows.size
        sp = np.where(u_kin >= 0, speed[np.maximum(u_kin, 0)], np.nan)
        tr = np.where(u_kin >= 0, track[np.maximum(u_kin, 0)], np.nan)
        pos_sel = rows - k
        og = c["on_ground"].take(pa.array(pos_sel))
        sq_rows = _take(sq, u_sq)
        tilde = c["tilde"][pos_sel]
        ident_kind = pa.DictionaryArray.from_arrays(pa.array(tilde.astype(np.int32)), pa.array(["icao24", "other"]))
        columns: dict[str, Any] = {
            "time": c["time"][pos_sel],
            "lon": c["lon"][pos_sel],
            "lat": c["lat"][pos_sel],
            "alt_m": c["alt_m"][pos_sel],
            "speed_mps": sp,
            "course_deg": tr,
            "sensor": _dict_const("ADSB", m),
            "kind": _dict_const("aircraft", m),
            "ident": c["ident"].take(pa.array(pos_sel)),
            "ident_kind": ident_kind,
            "name": _take(cs, u_cs),
            "src_rec": c["line_no"][pos_sel].astype(np.int64),
            "attrs": _sbs_attrs(sq_rows, og),
        }
        # New state: the latest usable values of each aircraft seen so far.
        total = k + n
        if total == 0:
            return columns, state
        sc = codes[order]
        last = order[np.concatenate((sc[1:] != sc[:-1], [True]))]
        now = int(np.max(np.concatenate((c["time"], state.kin_t, state.callsign_t, state.squawk_t))))
        lk, lc, ls = src_kin[last], src_cs[last], src_sq[last]

        def t_of(src: I64, t_val: I64) -> I64:
            return np.where(src >= 0, t_val[np.maximum(src, 0)], np.iinfo(np.int64).min // 2)

        lk_t, lc_t, ls_t = t_of(lk, kin_t), t_of(lc, cs_t), t_of(ls, sq_t)
        alive = (lk_t >= now - kin_win) | (lc_t >= now - id_win) | (ls_t >= now - id_win)
        last, lk, lc, ls = last[alive], lk[alive], lc[alive], ls[alive]
        new_state = _SbsState(
            ident=ident_all.take(pa.array(last)),
            callsign=_take(cs, lc),
            callsign_t=lc_t[alive],
            squawk=_take(sq, ls),
            squawk_t=ls_t[alive],
            speed=np.where(lk >= 0, speed[np.maximum(lk, 0)], np.nan),
            track=np.where(lk >= 0, track[np.maximum(lk, 0)], np.nan),
            kin_t=lk_t[alive],
        )
        return columns, new_state


# --------------------------------------------------------------------------- SBS writer


def _fixed(x: F64, decimals: int) -> pa.Array:
    """Fixed-point decimal text of floats (no exponent), NaN → null. Vectorised."""
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    scale = 10**decimals
    q = np.round(np.abs(np.where(finite, x, 0.0)) * scale).astype(np.int64)
    whole = pa.array(q // scale).cast(pa.string())
    neg = np.where((x < 0) & (q > 0), "-", "")
    if decimals:
        frac = pc.utf8_lpad(pa.array(q % scale).cast(pa.string()), decimals, "0")
        txt = pc.binary_join_element_wise(pa.array(neg), whole, ".", frac, "")
    else:
        txt = pc.binary_join_element_wise(pa.array(neg), whole, "")
    return pc.if_else(pa.array(finite), txt, pa.scalar(None, pa.string()))


def format_sbs_lines(
    *,
    icao24: Sequence[str] | pa.Array,
    time_us: I64,
    lon: F64,
    lat: F64,
    alt_m: F64 | None = None,
    speed_mps: F64 | None = None,
    course_deg: F64 | None = None,
    callsign: Sequence[str | None] | pa.Array | None = None,
    on_ground: BoolArr | None = None,
    ident_every: int = 1,
) -> list[str]:
    """SBS-1/BaseStation lines for position reports given as arrays (one element per report).

    Each report becomes, in this order: an identification ``MSG,1`` (when ``callsign`` is given,
    for every ``ident_every``-th report), a velocity ``MSG,4`` (when ``speed_mps`` or ``course_deg``
    is given) and a position ``MSG,3`` (``MSG,2`` where ``on_ground``), all stamped with the
    report time. Altitude is written in whole feet, speed in knots and coordinates with five
    decimals, as receivers such as dump1090 do. Missing values (NaN, ``None``) are left empty.

    >>> format_sbs_lines(icao24=["4ca2d6"], time_us=np.array([0]), lon=np.array([-3.5]), lat=np.array([40.25]))
    ['MSG,3,1,1,4CA2D6,1,1970/01/01,00:00:00.000,1970/01/01,00:00:00.000,,,,,40.25000,-3.50000,,,0,0,0,0']
    """
    n = len(time_us)
    if n == 0:
        return []
    ids = pc.utf8_upper(pa.array(icao24, type=pa.string()) if not isinstance(icao24, pa.Array) else icao24)
    ts = pa.array(np.asarray(time_us, dtype=np.int64), type=pa.timestamp("us")).cast(pa.timestamp("ms"), safe=False)
    date = pc.strftime(ts, format="%Y/%m/%d")
    tod = pc.strftime(ts, format="%H:%M:%S")
    empty = pa.array([""] * n)
    zero = pa.array(["0"] * n)

    def fill(a: pa.Array) -> pa.Array:
        return pc.fill_null(a, "")

    ground = np.zeros(n, dtype=bool) if on_ground is None else np.asarray(on_ground, dtype=bool)

    def line(tt: pa.Array, cs: pa.Array, alt: pa.Array, gs: pa.Array, trk: pa.Array, la: pa.Array, lo: pa.Array,
             gnd: pa.Array) -> pa.Array:  # fmt: skip
        fields = [
            pa.array(["MSG"] * n), tt, pa.array(["1"] * n), pa.array(["1"] * n), ids, pa.array(["1"] * n),
            date, tod, date, tod, cs, alt, gs, trk, la, lo, empty, empty, zero, zero, zero, gnd,
        ]  # fmt: skip
        return pc.binary_join_element_wise(*fields, ",")

    out_parts: list[tuple[pa.Array, int]] = []  # (lines, order within a report)
    if callsign is not None:
        cs = fill(pa.array(callsign, type=pa.string()) if not isinstance(callsign, pa.Array) else callsign)
        l1 = line(pa.array(["1"] * n), cs, empty, empty, empty, empty, empty, empty)
        keep = (np.arange(n) % max(1, ident_every)) == 0
        out_parts.append((pc.if_else(pa.array(keep), l1, pa.scalar(None, pa.string())), 0))
    if speed_mps is not None or course_deg is not None:
        gs = fill(_fixed(np.full(n, np.nan) if speed_mps is None else np.asarray(speed_mps) / KT_TO_MPS, 1))
        trk = fill(_fixed(np.full(n, np.nan) if course_deg is None else np.asarray(course_deg), 1))
        out_parts.append((line(pa.array(["4"] * n), empty, empty, gs, trk, empty, empty, empty), 1))
    alt = fill(_fixed(np.full(n, np.nan) if alt_m is None else np.asarray(alt_m) / FT_TO_M, 0))
    tt3 = pa.array(np.where(ground, "2", "3"))
    gnd = pa.array(np.where(ground, "-1", "0"))
    out_parts.append((line(tt3, empty, alt, empty, empty, fill(_fixed(lat, 5)), fill(_fixed(lon, 5)), gnd), 2))
    # Interleave: report i's lines stay together, in message order.
    stacked = [p.to_pylist() for p, _ in out_parts]
    return [ln for group in zip(*stacked, strict=True) for ln in group if ln is not None]


# --------------------------------------------------------------------------- OpenSky CSV


class OpenSkyCsvReader:
    """Reader for OpenSky Network historical state-vector CSV files.

    >>> OpenSkyCsvReader().sniff(b"time,icao24,lat,lon,velocity,heading\\n", Path("s.csv"))
    0.9
    >>> OpenSkyCsvReader().sniff(b"", Path("s.csv"))
    0.0
    """

    name: str = "opensky-csv"
    extensions: tuple[str, ...] = (".csv",)

    def sniff(self, head: bytes, path: Path) -> float:
        """High when the header names the OpenSky state-vector columns."""
        first = head.split(b"\n", 1)[0].strip().decode("ascii", errors="replace").lower()
        names = {c.strip().strip('"') for c in first.split(",")}
        if not set(_OS_REQUIRED) <= names:
            return 0.0
        return 0.98 if set(OPENSKY_CSV_COLUMNS) <= names else 0.9

    def read(self, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        """Stream the file in blocks of whole lines; rows without a position are skipped."""
        with open_source(path, options.limits) as fh:
            header = fh.readline(MAX_LINE_BYTES + 1)
            names = [c.strip().strip('"').lower() for c in header.decode("utf-8", errors="replace").split(",")]
            missing = [c for c in _OS_REQUIRED if c not in names]
            if missing or len(set(names)) != len(names):
                raise IngestError(
                    f"{path}: not an OpenSky state-vector CSV"
                    f" (header {header[:200]!r} lacks {missing or 'unique names'})",
                    hint="the first line must be the header: " + ",".join(OPENSKY_CSV_COLUMNS),
                )
            types = {c: t for c, t in _OS_TYPES.items() if c in names}
            for block in _iter_blocks(fh, _chunk_bytes(options), first_line=2):
                batch = self._parse_block(block, names, types)
                batch.bytes_read += len(header) if block.line_no.size and block.line_no[0] == 2 else 0
                _apply_defaults(batch.columns, options, len(batch))
                yield batch

    def _parse_block(self, block: _Block, names: list[str], types: dict[str, pa.DataType]) -> ParsedBatch:
        rejects = list(block.rejects)
        empty, bad = _check_lines(block, len(names), rejects)
        keep = ~empty & ~bad
        rows = np.flatnonzero(keep)
        data = _gather_kept(block, keep) if rows.size else b""
        bad_field: list[tuple[BoolArr, str]] = []
        f: dict[str, F64] = {}
        b: dict[str, pa.Array] = {}
        if rows.size:
            try:
                t = _read_table(data, names, types)
                for c, ty in types.items():
                    if pa.types.is_floating(ty):
                        f[c] = _f64(_col(t, c))
                    elif pa.types.is_boolean(ty):
                        b[c] = _col(t, c)
            except pa.ArrowInvalid:
                t = _read_table(data, names, {c: pa.string() for c in types})
                for c, ty in types.items():
                    if pa.types.is_floating(ty):
                        f[c], m = _strings_to_f64(_col(t, c))
                        bad_field.append((m, f"non-numeric {c}"))
                    elif pa.types.is_boolean(ty):
                        s = pc.utf8_lower(pc.utf8_trim_whitespace(_col(t, c)))
                        is_t = pc.is_in(s, pa.array(["true", "1"]))
                        is_f = pc.is_in(s, pa.array(["false", "0"]))
                        b[c] = pc.if_else(is_t, True, pc.if_else(is_f, False, pa.scalar(None, pa.bool_())))
                        bad_field.append((_mask(pc.and_not(pc.is_valid(s), pc.or_(is_t, is_f))), f"bad boolean {c}"))
            if t.num_rows != rows.size:
                raise IngestError(
                    f"internal: parsed {t.num_rows} OpenSky rows from {rows.size} lines",
                    hint="please report this with the input file",
                )
        else:
            t = pa.table({c: _null_strings(0) for c in types})
            f = {c: np.zeros(0) for c, ty in types.items() if pa.types.is_floating(ty)}
            b = {c: pa.nulls(0, pa.bool_()) for c, ty in types.items() if pa.types.is_boolean(ty)}
        n = rows.size
        nan = np.full(n, np.nan)
        lat, lon = f["lat"], f["lon"]
        snap = f["time"]
        pos_t = f.get("lastposupdate", nan)
        tsec = np.where(np.isfinite(pos_t), pos_t, snap)
        ident, hex_ok, _tilde = _valid_icao(pc.fill_null(_col(t, "icao24"), ""))
        has_lat, has_lon = ~np.isnan(lat), ~np.isnan(lon)
        bad_field += [
            (~hex_ok, "bad icao24 (expected 6 hexadecimal digits)"),
            (~np.isfinite(tsec) & has_lat & has_lon, "missing or bad time"),
            (has_lat ^ has_lon, "lat without lon (or the reverse)"),
            (has_lat & ~((lat >= -90) & (lat <= 90)), "lat out of range [-90, 90]"),
            (has_lon & ~((lon >= -180) & (lon <= 180)), "lon out of range [-180, 180]"),
        ]
        ok = np.ones(n, dtype=bool)
        for m, reason in bad_field:
            for j in np.flatnonzero(m & ok):
                rejects.append(_rej(block, int(rows[j]), reason))
            ok &= ~m
        sel = ok & has_lat & has_lon
        idx = np.flatnonzero(sel)
        psel = pa.array(sel)
        m_out = idx.size
        geo, baro = f.get("geoaltitude", nan), f.get("baroaltitude", nan)
        alt = np.where(np.isfinite(geo), geo, baro)
        cs = _col(t, "callsign") if "callsign" in types else _null_strings(n)
        cs = pc.utf8_trim_whitespace(cs)
        cs = pc.if_else(pc.equal(cs, ""), pa.scalar(None, pa.string()), cs).filter(psel)
        frags: list[pa.Array] = []
        none = pa.scalar(None, pa.string())
        if "squawk" in types:
            sq = pc.utf8_trim_whitespace(_col(t, "squawk")).filter(psel)
            sq_ok = pc.match_substring_regex(sq, _SQUAWK_RE)
            frags.append(pc.if_else(sq_ok, _frag("squawk", sq, quoted=True), none))
        for key, col in (("on_ground", "onground"), ("alert", "alert"), ("spi", "spi")):
            if col in b:
                v = b[col].filter(psel)
                frags.append(pc.if_else(pc.is_valid(v), _bool_frag(key, v), none))
        if "vertrate" in f:
            vr = pa.array(f["vertrate"][idx], from_pandas=True)
            frags.append(pc.if_else(pc.is_valid(vr), _frag("vertrate_mps", vr, quoted=False), none))
        time_us = np.round(tsec[idx] * _US).astype(np.int64)
        columns: dict[str, Any] = {
            "time": time_us,
            "lon": lon[idx],
            "lat": lat[idx],
            "alt_m": alt[idx],
            "speed_mps": f.get("velocity", nan)[idx],
            "course_deg": f.get("heading", nan)[idx],
            "sensor": _dict_const("ADSB", m_out),
            "kind": _dict_const("aircraft", m_out),
            "ident": ident.filter(psel),
            "ident_kind": _dict_const("icao24", m_out),
            "name": cs,
            "src_rec": block.line_no[rows[idx]].astype(np.int64),
            "attrs": _attrs_json(frags, m_out),
        }
        rejects.sort(key=lambda r: r.src_rec)
        return ParsedBatch(
            columns=columns, rejects=rejects, records_read=int(block.starts.size), bytes_read=block.nbytes
        )


# --------------------------------------------------------------------------- OpenSky JSON


def _num(v: Any) -> float:
    """JSON number (or null) → float; anything else raises ``TypeError``."""
    if v is None:
        return float("nan")
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"not a number: {v!r}")
    return float(v)


class OpenSkyJsonReader:
    """Reader for OpenSky REST ``/states/all`` responses (one document, or JSON Lines of documents).

    >>> OpenSkyJsonReader().sniff(b'{"time": 1700000000, "states": [["abc123", null]]}', Path("a.json"))
    0.95
    >>> OpenSkyJsonReader().sniff(b"", Path("a.json"))
    0.0
    """

    name: str = "opensky-json"
    extensions: tuple[str, ...] = (".json", ".jsonl")

    def sniff(self, head: bytes, path: Path) -> float:
        """High when the text starts as a JSON object with ``time`` and ``states`` keys."""
        h = head.lstrip()[:4096]
        if not h.startswith(b"{"):
            return 0.0
        return 0.95 if b'"states"' in h and b'"time"' in h else 0.0

    def read(self, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        """Parse each response; yield batches of about ``options.batch_rows`` position rows.

        JSON Lines files stream line by line (a line over ``limits.max_line_bytes`` is one reject); a single
        (possibly pretty-printed) document streams its ``states`` list one state vector at a time.
        """
        acc = _JsonAcc(options.limits.max_depth)
        max_line = options.limits.max_line_bytes
        with open_source(path, options.limits) as fh:
            first = fh.readline(max_line + 1)
            while first and not first.strip():
                first = fh.readline(max_line + 1)
            doc = None
            if first and (len(first) <= max_line or first.endswith(b"\n")):
                try:
                    doc = json.loads(first)
                except (ValueError, RecursionError):
                    doc = None
            if not isinstance(doc, dict):
                yield from self._stream_document(fh, first, acc, options)
                return
            acc.add_document(doc, 1)
            acc.nbytes += len(first)
            doc_no = 1
            while line := fh.readline(max_line + 1):
                doc_no += 1
                acc.nbytes += len(line)
                if len(line) > max_line and not line.endswith(b"\n"):
                    acc.reject(f"response {doc_no}: line longer than {max_line} bytes", line)
                    while (rest := fh.readline(max_line + 1)) and not rest.endswith(b"\n"):
                        acc.nbytes += len(rest)
                    acc.nbytes += len(rest)
                elif line.strip():
                    acc.add_text(line, doc_no)
                if len(acc.time) >= options.batch_rows:
                    yield acc.flush(options)
        yield acc.flush(options)

    def _stream_document(self, fh: Any, head: bytes, acc: _JsonAcc, options: ReadOptions) -> Iterator[ParsedBatch]:
        """One document: find its ``states`` list, then decode one state vector at a time (bounded memory)."""
        limits = options.limits
        win = Utf8Window(fh, head)
        sent = 0
        m = _STATES_RE.search(win.text)
        while m is None and not win.eof:
            win.more(keep_from=max(0, len(win.text) - 64))
            m = _STATES_RE.search(win.text)
        if m is None or m.group(1) == "null":
            if m is None and win.text.strip():
                acc.reject("response 1: not an object with a 'states' list", win.text[:512])
            acc.nbytes += win.nbytes
            yield acc.flush(options)
            return
        pos = m.end()
        while True:
            text = win.text
            while pos < len(text) and text[pos] in " \t\r\n,":
                pos += 1
            if pos >= len(text):
                if win.eof:
                    acc.reject("response 1: the document ends inside the 'states' list (truncated?)", "")
                    break
                pos = win.more(keep_from=pos)
                continue
            if text[pos] == "]":
                break
            sv, end, why = decode_at(text, pos, max_depth=limits.max_depth)
            if why is None:
                acc.add_state_vector(sv)
                pos = end
            else:
                if why.startswith("not valid JSON") and not win.eof and len(text) - pos < limits.max_record_bytes:
                    pos = win.more(keep_from=pos)
                    continue
                if why.startswith("not valid JSON") and not win.eof:
                    why = f"state vector longer than {limits.max_record_bytes} characters"
                acc.reject(f"response 1: {why}", text[pos : pos + 512])
                nxt = _STATE_START_RE.search(text, max(end, pos + 1))
                while nxt is None and not win.eof:  # skip the bad stretch without holding it
                    win.more(keep_from=max(0, len(text) - 64))
                    text = win.text
                    nxt = _STATE_START_RE.search(text, 1)
                if nxt is None:
                    break
                pos = nxt.start()
            if len(acc.time) >= options.batch_rows:
                acc.nbytes += win.nbytes - sent
                sent = win.nbytes
                yield acc.flush(options)
            if pos > READ_BYTES:
                pos = win.drop(pos)
        acc.nbytes += win.nbytes - sent
        yield acc.flush(options)


_STATES_RE = re.compile(r'"states"\s*:\s*(\[|null)')
_STATE_START_RE = re.compile(r'\[\s*"')
_MAX_EPOCH_S = 253_402_300_800.0
"""9999-12-31T23:59:59Z + 1 s: later times cannot be stored."""


class _JsonAcc:
    """Accumulates OpenSky state vectors into columns."""

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        self.index = 0
        self.records = 0
        self.rejects: list[Reject] = []
        self.time: list[float] = []
        self.lon: list[float] = []
        self.lat: list[float] = []
        self.alt: list[float] = []
        self.speed: list[float] = []
        self.track: list[float] = []
        self.ident: list[str] = []
        self.name: list[str | None] = []
        self.src: list[int] = []
        self.attrs: list[str | None] = []
        self.nbytes = 0

    def reject(self, reason: str, raw: bytes | str) -> None:
        """One input record that is not a state vector."""
        self.index += 1
        self.records += 1
        self.rejects.append(Reject(src_rec=self.index, reason=reason, raw=Reject.excerpt(raw)))

    def add_text(self, raw: bytes, doc_no: int) -> None:
        """Parse one document (a JSON Lines line); a bad one is one reject."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            self.reject(f"response {doc_no}: bad JSON: {e}", raw)
            return
        start = len(text) - len(text.lstrip())
        doc, end, why = decode_at(text, start, max_depth=self.max_depth)
        if why is None and text[end:].strip():
            why = "not valid JSON (extra data after the document)"
        if why is not None:
            self.reject(f"response {doc_no}: bad JSON: {why}", raw)
            return
        self.add_document(doc, doc_no)

    def add_state_vector(self, sv: Any) -> None:
        """One state vector of a streamed document."""
        self.index += 1
        self.records += 1
        reason = self._add_state(sv)
        if reason:
            self.rejects.append(Reject(src_rec=self.index, reason=reason, raw=Reject.excerpt(json.dumps(sv)[:2048])))

    def add_document(self, doc: Any, doc_no: int) -> None:
        states = doc.get("states") if isinstance(doc, dict) else None
        if not isinstance(doc, dict) or not (states is None or isinstance(states, list)):
            self.index += 1
            self.records += 1
            self.rejects.append(
                Reject(
                    src_rec=self.index,
                    reason=f"response {doc_no}: not an object with a 'states' list",
                    raw=Reject.excerpt(json.dumps(doc)[:2048]),
                )
            )
            return
        for sv in states or ():
            self.index += 1
            self.records += 1
            reason = self._add_state(sv)
            if reason:
                self.rejects.append(
                    Reject(src_rec=self.index, reason=reason, raw=Reject.excerpt(json.dumps(sv)[:2048]))
                )

    def _add_state(self, sv: Any) -> str | None:
        if not isinstance(sv, list) or len(sv) < 17:
            return "state vector is not a list of at least 17 fields"
        icao = sv[0]
        if not isinstance(icao, str) or len(icao.strip().lstrip("~")) != 6:
            return f"bad icao24 {icao!r}"
        icao = icao.strip().lower()
        try:
            int(icao.lstrip("~"), 16)
            t_pos, t_last, lon, lat = _num(sv[3]), _num(sv[4]), _num(sv[5]), _num(sv[6])
            baro, vel, trk, vr, geo = _num(sv[7]), _num(sv[9]), _num(sv[10]), _num(sv[11]), _num(sv[13])
        except (TypeError, ValueError, OverflowError) as e:
            return f"bad value: {e}"
        if lon != lon and lat != lat:  # no position: routine, skipped
            return None
        if lon != lon or lat != lat:
            return "longitude without latitude (or the reverse)"
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            return f"position out of range: lon={lon}, lat={lat}"
        t = t_pos if t_pos == t_pos else t_last
        if t != t:
            return "no time_position and no last_contact"
        if not -_MAX_EPOCH_S < t < _MAX_EPOCH_S:
            return f"time {t:g} s since 1970 is out of range"
        cs = sv[1].strip() if isinstance(sv[1], str) else None
        extra: dict[str, Any] = {}
        if isinstance(sv[14], str) and sv[14]:
            extra["squawk"] = sv[14]
        if isinstance(sv[8], bool):
            extra["on_ground"] = sv[8]
        if isinstance(sv[2], str) and sv[2]:
            extra["origin_country"] = sv[2]
        if vr == vr:
            extra["vertrate_mps"] = vr
        if isinstance(sv[16], int) and not isinstance(sv[16], bool):
            extra["position_source"] = sv[16]
        self.time.append(t)
        self.lon.append(lon)
        self.lat.append(lat)
        self.alt.append(geo if geo == geo else baro)
        self.speed.append(vel)
        self.track.append(trk)
        self.ident.append(icao)
        self.name.append(cs or None)
        self.src.append(self.index)
        self.attrs.append(json.dumps(extra, separators=(",", ":")) if extra else None)
        return None

    def flush(self, options: ReadOptions) -> ParsedBatch:
        n = len(self.time)
        columns: dict[str, Any] = {
            "time": np.round(np.array(self.time, dtype=np.float64) * _US).astype(np.int64),
            "lon": np.array(self.lon, dtype=np.float64),
            "lat": np.array(self.lat, dtype=np.float64),
            "alt_m": np.array(self.alt, dtype=np.float64),
            "speed_mps": np.array(self.speed, dtype=np.float64),
            "course_deg": np.array(self.track, dtype=np.float64),
            "sensor": _dict_const("ADSB", n),
            "kind": _dict_const("aircraft", n),
            "ident": pa.array(self.ident, type=pa.string()),
            "ident_kind": pa.array([("other" if i.startswith("~") else "icao24") for i in self.ident]),
            "name": pa.array(self.name, type=pa.string()),
            "src_rec": np.array(self.src, dtype=np.int64),
            "attrs": pa.array(self.attrs, type=pa.string()),
        }
        _apply_defaults(columns, options, n)
        batch = ParsedBatch(
            columns=columns,
            rejects=self.rejects,
            records_read=self.records,
            bytes_read=self.nbytes,
        )
        self.nbytes = 0
        for lst in (self.time, self.lon, self.lat, self.alt, self.speed, self.track, self.ident, self.name):
            lst.clear()
        self.src.clear()
        self.attrs.clear()
        self.rejects = []
        self.records = 0
        return batch
