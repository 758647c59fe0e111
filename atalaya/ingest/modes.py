"""Raw Mode-S / ADS-B (1090 MHz) captures → aircraft observations: AVR/hex text and Beast binary.

``modes-hex``
    One message per line, as dump1090/readsb ``--raw`` output (port 30002) and pyModeS-style logs keep them:
    ``*8D4840D6202CC371C32CE0576098;`` (AVR), ``@0123456789AB8D4840D6202CC371C32CE0576098;`` (AVR with a
    12-digit 12 MHz MLAT clock), ``<`` + 12-digit clock + 2-digit signal + message (Beast as text), a plain
    hex line, and any of these after a wall-clock time and a separator (space, tab or comma): an epoch in
    seconds (milliseconds by magnitude) or an ISO 8601 time (UTC unless it names an offset), e.g.
    ``1457996402.123,8D40621D58C382D690C8AC2863A7``. The message is the last field, or else the first field
    (quotes stripped) that is a message of its downlink format's length, as in pyModeS logs
    ``1457996400,"8D40621D…",40621D,11``. ``#`` comments, blank lines and 4-digit Mode A/C replies are
    consumed without a row.
``modes-beast``
    The Beast binary stream (port 30005): frames ``0x1a``, type (``'1'`` Mode A/C, ``'2'`` 56-bit, ``'3'``
    112-bit Mode-S), a 6-byte 12 MHz MLAT clock, a signal byte and the message, with every ``0x1a`` inside a
    frame doubled. ``src_rec`` is the frame's 1-based index in the stream.

Times. A line's own wall-clock time wins. Otherwise the time is ``--received-at`` (``ReadOptions.
reference_time_us``, or the file's modification time with ``--received-at mtime``) plus, when the message
has an MLAT clock, the clock's advance since the file's first stamp at 12 MHz; without a clock, its record
number − 1 in µs (an order, not a clock, as for NMEA). Without any of these the message is quarantined with
:data:`NO_TIME`.

Rows. As for the other ADS-B readers (see ``sbs`` in :mod:`atalaya.ingest.adsb`), only positions make rows:
DF17/18 airborne (TC 9–18, 20–22) and surface (TC 5–8) messages once their CPR position is decoded
(:mod:`atalaya.ingest.modes_cpr`; positions that cannot be decoded yet are consumed, not quarantined).
Identification (callsign, category), velocity (ground speed, track, vertical rate), DF5/21 squawks and
DF4/20 altitudes update a per-aircraft state that fills later position rows of the same aircraft (speed and
track within ``state_window_s``, callsign and squawk within ``ident_window_s``), carried across batches.
DF17/18 and DF11 messages whose CRC-24 fails are quarantined; DF0/4/5/16/20/21 carry their address in the
parity and are used only when that address was heard in a message with an intact CRC. DF18 messages with
control field 0 or 6 carry an ICAO address, 1 and 5 another address (``~``-prefixed ident, ``ident_kind``
``other``); TIS-B coarse and management formats (2–4, 7) are consumed without a row.

``attrs`` per row: ``squawk``, ``on_ground``, ``vertrate_mps``, ``tas_mps``/``ias_mps`` and ``heading_deg``
(airspeed velocities), ``alt_geometric`` (GNSS height), ``category`` (e.g. ``"A3"``) and ``cpr`` (``"global"``
or ``"local"``).

>>> ModeSHexReader().sniff(b"*8D4840D6202CC371C32CE0576098;\\n*5D484FDEA248F5;\\n", Path("x"))
0.95
>>> ModeSBeastReader().sniff(b"\\x1a3" + bytes(7) + bytes.fromhex("8D4840D6202CC371C32CE0576098") * 1, Path("x"))
0.0
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from numpy.lib.stride_tricks import sliding_window_view

from atalaya.ingest.base import ParsedBatch, ReadOptions, Reject, open_source
from atalaya.ingest.modes_decode import hex_to_u8
from atalaya.ingest.modes_feed import NO_TIME, Feed, Messages

__all__ = ["NO_TIME", "ModeSBeastReader", "ModeSHexReader"]

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
B = npt.NDArray[np.bool_]

CHUNK_BYTES = 4 << 20
"""Bytes of input framed and decoded at once."""
_US = 1_000_000
_SEP = np.zeros(256, dtype=bool)
_SEP[[ord(" "), ord("\t"), ord(",")]] = True
_TRIM = np.zeros(256, dtype=bool)
_TRIM[[ord(" "), ord("\t"), ord("\r"), ord(";")]] = True
_HEXCHARS = np.zeros(256, dtype=bool)
_HEXCHARS[list(b"0123456789abcdefABCDEF")] = True
_HEXV = np.full(256, 255, dtype=np.uint8)
_HEXV[list(b"0123456789")] = np.arange(10)
_HEXV[list(b"abcdef")] = np.arange(10, 16)
_HEXV[list(b"ABCDEF")] = np.arange(10, 16)
_SHORT_DF = (0, 4, 5, 11)
_NUM_RE = r"^[+-]?(\d+\.?\d*|\.\d+)$"
_ZONE_RE = r"(Z|z|[+-]\d\d:?\d\d)$"


def _read_chunks(fh: Any, size: int) -> Iterator[tuple[bytes, bool]]:
    """``(data, at_eof)`` pieces of a stream."""
    data = fh.read(size)
    while data:
        nxt = fh.read(size)
        yield data, not nxt
        data = nxt


def _reference(path: Path, options: ReadOptions) -> int | None:
    ref = options.reference_time_us
    if ref is None and options.received_at_mtime:
        ref = path.stat().st_mtime_ns // 1000
    return ref


# --------------------------------------------------------------------------- AVR / hex text


_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[ord("0") : ord("9") + 1] = True
_INT_DIGITS = 14
_FRAC_DIGITS = 9
_POW_INT = 10 ** np.arange(_INT_DIGITS - 1, -1, -1, dtype=np.int64)
_POW_FRAC = 10 ** np.arange(_FRAC_DIGITS - 1, -1, -1, dtype=np.int64)


def _epoch_digits(arr: U8, lo: I64, hi: I64) -> tuple[I64, B]:
    """Epoch times written ``digits[.digits]`` (seconds, or milliseconds from 10^11 on) read straight from the
    bytes; ``ok`` is False for any other text (left to :func:`_prefix_times`' general path)."""
    pre = _INT_DIGITS + 2
    pad = np.r_[np.zeros(pre, dtype=np.uint8), arr, np.zeros(_FRAC_DIGITS + 2, dtype=np.uint8)]
    dots = np.flatnonzero(arr == ord("."))
    k = np.searchsorted(dots, lo)
    dot = np.r_[dots, arr.size + 1][k]
    has_dot = dot < hi
    int_end = np.where(has_dot, dot, hi)
    nint = int_end - lo
    nfrac = np.where(has_dot, hi - dot - 1, 0)
    # digits before the end of the integer part, right-aligned; positions before ``lo`` count as zeros
    iw = sliding_window_view(pad, _INT_DIGITS)[int_end + pre - _INT_DIGITS]
    ipos = np.arange(_INT_DIGITS) - _INT_DIGITS
    in_int = ipos >= -nint[:, None]
    fw = sliding_window_view(pad, _FRAC_DIGITS)[np.where(has_dot, dot + 1, hi) + pre]
    in_frac = np.arange(_FRAC_DIGITS) < nfrac[:, None]
    ok = (nint >= 1) & (nint <= _INT_DIGITS - 1) & (nfrac <= _FRAC_DIGITS) & (~has_dot | (nfrac >= 1))
    ok &= (_DIGIT[iw] | ~in_int).all(axis=1) & (_DIGIT[fw] | ~in_frac).all(axis=1)
    ival = (np.where(in_int, iw.astype(np.int64) - ord("0"), 0) * _POW_INT).sum(axis=1)
    fval = (np.where(in_frac, fw.astype(np.int64) - ord("0"), 0) * _POW_FRAC).sum(axis=1)  # nanoseconds
    ms = ival >= 100_000_000_000
    t_us = np.where(ms, ival * 1000 + (fval + 500_000) // 1_000_000, ival * _US + (fval + 500) // 1000)
    return np.where(ok, t_us, 0), ok


def _prefix_times(arr: U8, lo: I64, hi: I64) -> tuple[I64, B]:
    """Wall-clock times of the line prefixes ``arr[lo:hi]`` (epoch seconds/ms or ISO 8601) and a parsed flag."""
    n = lo.size
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    for _ in range(3):  # separators before the message: "1457996402.5, *8D…;"
        hi = hi - ((hi > lo) & (_SEP[arr[np.maximum(hi - 1, 0)]] | (arr[np.maximum(hi - 1, 0)] == ord(";"))))
    t_us, ok = _epoch_digits(arr, lo, hi)
    high = np.r_[0, np.cumsum(arr >= 0x80)]
    rest = np.flatnonzero(~ok & (high[hi] == high[lo]))  # a prefix with bytes outside ASCII is no time
    if rest.size:
        t_r, ok_r = _prefix_text_times(arr, lo[rest], hi[rest])
        t_us[rest], ok[rest] = t_r, ok_r
    return t_us, ok


def _prefix_text_times(arr: U8, lo: I64, hi: I64) -> tuple[I64, B]:
    """The general path of :func:`_prefix_times`: any number Arrow reads, or ISO 8601."""
    n = lo.size
    t_us = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    lens = (hi - lo).astype(np.int32)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lens, out=offsets[1:])
    idx = np.repeat(lo - offsets[:-1], lens) + np.arange(int(offsets[-1]))
    text = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(arr[idx].tobytes()))
    text = pc.utf8_trim(text, " \t,;")
    num = np.asarray(pc.match_substring_regex(text, _NUM_RE).to_numpy(zero_copy_only=False), dtype=bool)
    if num.any():
        sel = np.flatnonzero(num)
        x = np.asarray(pc.cast(text.take(pa.array(sel)), pa.float64()).to_numpy(zero_copy_only=False))
        x = np.where(np.abs(x) >= 1e11, x / 1000.0, x)
        good = np.abs(x) < 253_402_300_800.0
        t_us[sel] = np.where(good, np.round(x * _US), 0).astype(np.int64)
        ok[sel] = good
    iso = np.flatnonzero(~num)
    if iso.size:
        s = pc.replace_substring_regex(text.take(pa.array(iso)), r"^(\d{4}-\d\d-\d\d) ", r"\1T")
        zoned = np.asarray(pc.match_substring_regex(s, _ZONE_RE).to_numpy(zero_copy_only=False), dtype=bool)
        for mask, typ in ((zoned, pa.timestamp("us", tz="UTC")), (~zoned, pa.timestamp("us"))):
            part = np.flatnonzero(mask)
            if part.size == 0:
                continue
            sub = s.take(pa.array(part))
            try:
                vals = pc.cast(sub, typ).cast(pa.int64()).to_numpy(zero_copy_only=False)
                t_us[iso[part]], ok[iso[part]] = vals, True
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                from atalaya.ingest.adsb_json import epoch_us

                for j, v in zip(part.tolist(), sub.to_pylist(), strict=True):  # only a block with a bad time
                    t = epoch_us(v) if v else None
                    if t is not None:
                        t_us[iso[j]], ok[iso[j]] = t, True
    return t_us, ok


def _field(pad: U8, a: I64, b: I64) -> tuple[I64, I64, I64, B]:
    """Where the message of each field ``pad[a:b]`` starts, where its MLAT clock starts (−1: none), the
    message's length in digits, and whether the field is a Mode-S message (an AVR-marked or quoted hex string of
    its downlink format's length, or a marked 4-digit Mode A/C reply)."""
    quoted = (b - a >= 2) & (pad[a] == ord('"')) & (pad[np.maximum(b - 1, 0)] == ord('"'))
    a, b = a + quoted, b - quoted
    lead = pad[a]
    mlat_at = np.where((lead == ord("<")) | (lead == ord("@")), a + 1, -1)
    msg_at = np.where(
        lead == ord("<"), a + 15, np.where(lead == ord("@"), a + 13, np.where(lead == ord("*"), a + 1, a))
    )
    size = b - msg_at
    d1 = _HEXV[pad[msg_at]]  # the downlink format's top four bits
    short = (size == 14) & ((d1 == 0) | (d1 == 2) | (d1 == 5))  # DF0/1, 4/5, 10/11
    long_ = (size == 28) & (d1 >= 8) & (d1 < 16)  # DF16 and up
    marked = (lead == ord("*")) | (mlat_at >= 0)
    fits = short | long_ | (marked & (size == 4))
    return msg_at, mlat_at, size, fits


def _hex_lines(data: bytes, first_line: int, rejects: list[Reject]) -> tuple[Messages, int]:
    """Frame a block of whole lines; returns the messages and the number of lines (records) in the block."""
    arr = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(arr == 10)
    starts = np.r_[0, nl + 1]
    ends = np.r_[nl, arr.size]
    if starts.size and starts[-1] >= arr.size:
        starts, ends = starts[:-1], ends[:-1]
    nlines = starts.size
    line_no = first_line + np.arange(nlines, dtype=np.int64)
    pad = np.r_[arr, np.zeros(64, dtype=np.uint8)]
    # trim blanks, CR and ';' at both ends (a few rounds cover any real line)
    for _ in range(4):
        cut = (ends > starts) & _TRIM[pad[np.maximum(ends - 1, 0)]]
        ends = ends - cut
        lead = (ends > starts) & _TRIM[pad[starts]]
        starts = starts + lead
    empty = (ends <= starts) | (pad[starts] == ord("#"))
    sep_at = np.flatnonzero(_SEP[arr])
    last_sep = np.r_[-1, sep_at][np.searchsorted(sep_at, ends)]
    has_prefix = ~empty & (last_sep >= starts)
    pre_end = np.where(has_prefix, last_sep, starts)
    msg_at, mlat_at, size, fits = _field(pad, np.where(has_prefix, last_sep + 1, starts), ends)
    # the message is not the last field ("1457996400,"8D40…",406B90,19"): the first field that is one
    other = np.flatnonzero(~empty & ~fits & has_prefix)
    if other.size:
        first_sep = np.searchsorted(sep_at, starts[other])
        n_sep = np.searchsorted(sep_at, ends[other]) - first_sep
        line = np.repeat(other, n_sep)
        at = sep_at[np.repeat(first_sep - np.cumsum(np.r_[0, n_sep[:-1]]), n_sep) + np.arange(int(n_sep.sum()))]
        nxt = np.minimum(np.r_[sep_at, arr.size][np.searchsorted(sep_at, at, side="right")], ends[line])
        f_msg, f_mlat, f_size, f_fits = _field(pad, at + 1, nxt)
        hit = np.flatnonzero(f_fits)
        if hit.size:
            first = hit[np.r_[True, line[hit][1:] != line[hit][:-1]]]
            li = line[first]
            msg_at[li], mlat_at[li], size[li], fits[li] = f_msg[first], f_mlat[first], f_size[first], True
            pre_end[li] = at[first]
    has_prefix = ~empty & (pre_end > starts)
    modeac = ~empty & (size == 4)
    valid_len = (size == 14) | (size == 28)
    bad_len = ~empty & ~modeac & ~valid_len
    cand = np.flatnonzero(~empty & valid_len)
    windows = sliding_window_view(pad, 28)  # row i: the 28 bytes from offset i (a view: gathers copy 28 bytes)
    digits = np.where(np.arange(28) < size[cand, None], windows[msg_at[cand]], np.uint8(ord("0")))
    msg, hex_ok = hex_to_u8(digits)
    has_mlat = mlat_at[cand] >= 0
    clock = np.zeros(cand.size, dtype=np.int64)
    mlat_ok = np.ones(cand.size, dtype=bool)
    if has_mlat.any():
        mi = np.flatnonzero(has_mlat)
        cb, mlat_ok[mi] = hex_to_u8(windows[mlat_at[cand[mi]], :12])
        cb64 = cb.astype(np.int64)
        clock[mi] = np.bitwise_or.reduce(cb64 << (8 * np.arange(5, -1, -1)), axis=1)
    wall, wall_ok = _prefix_times(arr, starts[cand], pre_end[cand])
    has_wall = has_prefix[cand]
    for i in np.flatnonzero(bad_len):
        why = f"not a Mode-S message: {int(size[i])} hex digits where 14 or 28 (or 4 for Mode A/C) were expected"
        rejects.append(Reject(src_rec=int(line_no[i]), reason=why, raw=Reject.excerpt(data[starts[i] : ends[i]])))
    bad = ~hex_ok | ~mlat_ok | (has_wall & ~wall_ok)
    for j in np.flatnonzero(bad):
        i = cand[j]
        why = (
            "not hexadecimal: the message must be 14 or 28 hex digits"
            if not hex_ok[j] or not mlat_ok[j]
            else "bad time before the message (expected epoch seconds or ISO 8601, e.g. 2024-05-01T12:00:00Z)"
        )
        rejects.append(Reject(src_rec=int(line_no[i]), reason=why, raw=Reject.excerpt(data[starts[i] : ends[i]])))
    keep = np.flatnonzero(~bad)
    raws = (starts[cand[keep]], ends[cand[keep]])
    return Messages(
        msg=msg[keep], nbytes=(size[cand[keep]] // 2).astype(np.int64), rec=line_no[cand[keep]],
        wall_us=wall[keep], has_wall=has_wall[keep], clock=clock[keep], has_clock=has_mlat[keep],
        raw=lambda j: data[int(raws[0][j]) : int(raws[1][j])],
    ), nlines  # fmt: skip


class ModeSHexReader:
    """Reader for AVR/hex Mode-S text (see module docstring)."""

    name: str = "modes-hex"
    extensions: tuple[str, ...] = (".avr", ".hex", ".raw", ".txt", ".log")

    def __init__(
        self, *, receiver: tuple[float, float] | None = None, state_window_s: float = 60.0,
        ident_window_s: float = 600.0,
    ) -> None:  # fmt: skip
        self.receiver = receiver
        """Receiver (lat, lon): the reference of surface positions (else the feed's own fixes)."""
        self.state_window_s = state_window_s
        """Speed, track and vertical rate fill position rows at most this many seconds later."""
        self.ident_window_s = ident_window_s
        """Callsign and squawk fill position rows at most this many seconds later."""

    def sniff(self, head: bytes, path: Path) -> float:
        """Share of the first lines that end in a 14- or 28-digit hex message (AVR-marked lines: higher)."""
        lines = [ln.strip().rstrip(b";") for ln in head.split(b"\n")[:50]]
        if len(lines) > 1 and not head.endswith(b"\n"):
            lines = lines[:-1]
        lines = [ln for ln in lines if ln and not ln.startswith(b"#")]
        if not lines:
            return 0.0
        hits = marked = 0
        for ln in lines:
            for tok in re.split(rb"[ \t,]+", ln)[::-1]:  # the message is usually the last field
                tok = tok.strip(b'"')
                mark = tok[:1] in (b"*", b"@", b"<")
                if mark:
                    tok = tok[1:] if tok[:1] == b"*" else tok[13:] if tok[:1] == b"@" else tok[15:]
                if not tok or not all(c in b"0123456789abcdefABCDEF" for c in tok):
                    continue
                df = int(tok[:2], 16) >> 3 if len(tok) >= 2 else -1
                # a Mode-S message of its format's length (a Mode A/C reply only when marked as AVR)
                if (len(tok) == 14 and df in _SHORT_DF) or (len(tok) == 28 and df >= 16) or (mark and len(tok) == 4):
                    hits += 1
                    marked += mark
                    break
        share = hits / len(lines)
        return round((0.95 if marked else 0.9) * share, 3) if share >= 0.5 else 0.0

    def read(self, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        """Stream the file in blocks of whole lines."""
        feed = Feed(options, _reference(path, options), receiver=self.receiver, state_window_s=self.state_window_s,
                    ident_window_s=self.ident_window_s)  # fmt: skip
        line = 1
        rest = b""
        limit = options.limits.max_line_bytes
        with open_source(path, options.limits) as fh:
            for data, eof in _read_chunks(fh, CHUNK_BYTES):
                buf = rest + data
                cut = len(buf) if eof else buf.rfind(b"\n") + 1
                if cut == 0 and len(buf) > limit:
                    cut = len(buf)  # an absurd line: framed (and rejected) as it stands
                block, rest = buf[:cut], buf[cut:]
                if not block:
                    continue
                rejects: list[Reject] = []
                msgs, nlines = _hex_lines(block, line, rejects)
                line += nlines
                yield feed.batch(msgs, rejects, records=nlines, nbytes=len(block))
            if rest:
                rejects = []
                msgs, nlines = _hex_lines(rest, line, rejects)
                yield feed.batch(msgs, rejects, records=nlines, nbytes=len(rest))


# --------------------------------------------------------------------------- Beast binary

_BEAST_PAYLOAD = np.zeros(256, dtype=np.int64)
_BEAST_PAYLOAD[[ord("1"), ord("2"), ord("3")]] = [2, 7, 14]
_FRAME_HEAD = 9
"""Escape, type, 6-byte clock, signal."""


def _beast_frames(buf: bytes, eof: bool, first_rec: int, rejects: list[Reject]) -> tuple[Messages, int, int]:
    """Frame a piece of a Beast stream: ``(messages, frames consumed, bytes consumed)``.

    Frame starts are the odd-length runs of ``0x1a`` followed by a type byte (doubled ``0x1a`` are data); the
    bytes after the last complete frame are left for the next piece.
    """
    arr = np.frombuffer(buf, dtype=np.uint8)
    n = arr.size
    esc = arr == 0x1A
    edge = np.diff(np.r_[0, esc.astype(np.int8), 0])
    run_s, run_e = np.flatnonzero(edge == 1), np.flatnonzero(edge == -1)
    nxt = np.r_[arr, 0][run_e]
    start_run = ((run_e - run_s) % 2 == 1) & (run_e < n) & (nxt >= ord("1")) & (nxt <= ord("4"))
    marks = run_e[start_run] - 1
    # unescape: keep odd offsets within each run (one of each doubled pair) and the frame starts
    run_id = np.cumsum(edge[:-1] == 1) - 1
    offset = np.arange(n) - run_s[np.maximum(run_id, 0)] if run_s.size else np.zeros(n, dtype=np.int64)
    keep = ~esc | (offset % 2 == 1)
    keep[marks] = True
    pos = np.cumsum(keep) - 1
    flat = arr[keep]
    m_at = pos[marks]
    if not eof and marks.size:
        stop_raw = int(marks[-1])
        m_at, marks = m_at[:-1], marks[:-1]
        stop = int(pos[stop_raw])
    else:
        stop_raw, stop = n, flat.size
    if not eof and marks.size == 0:
        return Messages.empty(), 0, (int(stop_raw) if stop_raw < n else 0)
    f_end = np.r_[m_at[1:], stop]
    lens = f_end - m_at
    typ = np.r_[flat, 0][np.minimum(m_at + 1, flat.size)]
    want = _FRAME_HEAD + _BEAST_PAYLOAD[typ]
    rec = first_rec + np.arange(m_at.size, dtype=np.int64)
    status = typ == ord("4")
    bad = ~status & (lens != want)
    for i in np.flatnonzero(bad):
        a = int(m_at[i])
        rejects.append(Reject(
            src_rec=int(rec[i]),
            reason=f"bad Beast frame: type {chr(typ[i]) if 32 < typ[i] < 127 else typ[i]!r} with {int(lens[i])} bytes,"
            f" expected {int(want[i])} (a truncated or corrupt stream)",
            raw=flat[a : a + min(int(lens[i]), 40)].tobytes().hex(),
        ))  # fmt: skip
    use = np.flatnonzero(~bad & ((typ == ord("2")) | (typ == ord("3"))))
    at = m_at[use]
    nbytes = _BEAST_PAYLOAD[typ[use]]
    body = np.minimum(at[:, None] + _FRAME_HEAD + np.arange(14), max(flat.size - 1, 0))
    msg = np.where(np.arange(14) < nbytes[:, None], flat[body] if flat.size else 0, 0).astype(np.uint8)
    clk = flat[np.minimum(at[:, None] + 2 + np.arange(6), max(flat.size - 1, 0))].astype(np.int64) if at.size else (
        np.zeros((0, 6), dtype=np.int64))  # fmt: skip
    clock = np.bitwise_or.reduce(clk << (8 * np.arange(5, -1, -1)), axis=1) if at.size else np.zeros(0, np.int64)
    msgs = Messages(
        msg=msg, nbytes=nbytes.astype(np.int64), rec=rec[use], wall_us=np.zeros(use.size, dtype=np.int64),
        has_wall=np.zeros(use.size, dtype=bool), clock=clock, has_clock=np.ones(use.size, dtype=bool),
        raw=lambda j: flat[int(at[j]) : int(at[j]) + _FRAME_HEAD + int(nbytes[j])].tobytes().hex().encode(),
    )  # fmt: skip
    return msgs, int(m_at.size), int(stop_raw)


class ModeSBeastReader:
    """Reader for the Beast binary Mode-S stream (see module docstring)."""

    name: str = "modes-beast"
    extensions: tuple[str, ...] = (".beast", ".bin")

    def __init__(
        self, *, receiver: tuple[float, float] | None = None, state_window_s: float = 60.0,
        ident_window_s: float = 600.0,
    ) -> None:  # fmt: skip
        self.receiver = receiver
        """Receiver (lat, lon): the reference of surface positions (else the feed's own fixes)."""
        self.state_window_s = state_window_s
        """Speed, track and vertical rate fill position rows at most this many seconds later."""
        self.ident_window_s = ident_window_s
        """Callsign and squawk fill position rows at most this many seconds later."""

    def sniff(self, head: bytes, path: Path) -> float:
        """High when the head frames as Beast: at least 4 frames, nearly all of a valid length."""
        if not head.startswith(b"\x1a") and head[:1] in (b"*", b"@", b"<", b"#", b"{", b"["):
            return 0.0
        rejects: list[Reject] = []
        _msgs, frames, _ = _beast_frames(head, False, 1, rejects)
        if frames < 4:
            return 0.0
        return 0.95 if len(rejects) <= frames // 10 else 0.0

    def read(self, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        """Stream the file in pieces of whole frames."""
        feed = Feed(options, _reference(path, options), receiver=self.receiver, state_window_s=self.state_window_s,
                    ident_window_s=self.ident_window_s)  # fmt: skip
        rec = 1
        rest = b""
        with open_source(path, options.limits) as fh:
            for data, eof in _read_chunks(fh, CHUNK_BYTES):
                buf = rest + data
                rejects: list[Reject] = []
                msgs, frames, used = _beast_frames(buf, eof, rec, rejects)
                if not eof and frames == 0 and len(buf) > options.limits.max_record_bytes:
                    raise_unframed(path, len(buf))
                rec += frames
                rest = buf[used:]
                yield feed.batch(msgs, rejects, records=frames, nbytes=used if not eof else len(buf))


def raise_unframed(path: Path, nbytes: int) -> None:
    """Fail a "Beast" input in which no frame starts in ``nbytes`` bytes."""
    from atalaya.core.errors import IngestError

    raise IngestError(
        f"{path}: no Beast frame (0x1a + type '1'..'4') in {nbytes} bytes; 0 records read",
        hint="this is not a Beast capture; pass the right --format (modes-hex for AVR text)",
    )
