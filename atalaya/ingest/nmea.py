"""AIS over NMEA 0183 (``!AIVDM``/``!AIVDO`` and other talkers) → observations.

One observation per AIS position report (types 1, 2, 3, 18, 19, 27; 4 and 21 as
``kind="structure"``). Static reports (types 5 and 24) name later positions of
the same MMSI. Times come from, in this order: NMEA 4.0 tag blocks
(``\\c:1700000000*hh\\``), a leading ISO-8601 or Unix-epoch field, a trailing epoch
after the checksum (alone, or after USCG/``aisdeco`` receiver fields such as
``,s12345,d-97,T12.3,x1,1234567890``), or a Gatehouse ``$PGHP,1,…`` wrapper line
(its time belongs to the message whose first sentence follows it). A message with
none of these takes ``ReadOptions.reference_time_us`` plus its line number − 1 in
microseconds (a monotone order, not a clock: the file's order is kept and two
reports are never merged for sharing the instant); without a reference time it is
rejected with :data:`NO_TIME`. ``#`` comment lines and blank lines are skipped.

How it is fast: a chunk of the file is one ``uint8`` array. Line, field and
checksum positions are found for all lines at once (``flatnonzero`` +
``searchsorted``), checksums are XORs of a cumulative XOR, payloads are gathered
into a 6-bit matrix per message type and fields come out column-wise by shifts
(:mod:`atalaya.ingest.ais_codec`). Lines that are not a plain single-sentence
report (multi-sentence messages, unusual prefixes, broken lines) take a
per-line path that also produces the precise reject reasons.

>>> NmeaReader().sniff(b"!AIVDM,1,1,,A,15M67F@P1aGA4Q0EMB`4lSh1P000,0*23\\n", Path("x"))
1.0
>>> NmeaReader().sniff(b"", Path("x"))
0.0
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from atalaya.ingest import ais_codec as codec
from atalaya.ingest.base import MAX_LINE_BYTES, ParsedBatch, ReadOptions, Reject

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
BOOL = npt.NDArray[np.bool_]

POSITION_TYPES = (1, 2, 3, 4, 18, 19, 21, 27)
"""Message types that produce an observation row."""
STATIC_TYPES = (5, 24)
"""Message types that name vessels (no row, not a reject)."""

NEED_BITS = {1: 137, 2: 137, 3: 137, 4: 134, 5: 232, 18: 133, 19: 263, 21: 219, 24: 40, 27: 94}
"""Bits a payload of each type must carry for the fields read here."""

SLICE_BYTES = 2 << 20
"""Bytes of whole lines decoded at once: large enough to amortise numpy calls, small enough for the cache."""

MAX_PENDING_LINES = 1000
"""A multi-sentence message not complete this many lines after its first part is orphaned."""

NO_TIME = (
    "no time on the line and no --received-at given: it has no tag block, $PGHP wrapper or epoch field; pass "
    "the time the capture was received, `atalaya ingest --received-at 2024-05-01T12:00:00Z` (or `--received-at "
    "mtime` for each file's time)"
)
"""Reject reason for a message without a time when no reference time was given (the summary shows the words
before the first colon)."""

_LUT = codec.dearmour_lut()
_HEX = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789ABCDEF"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"abcdef"):
    _HEX[_c] = 10 + _i
_MS_THRESHOLD = 100_000_000_000
"""Epoch integers at or above this are milliseconds (1e11 s is in the year 5138)."""

_NL, _BANG, _STAR, _COMMA, _C, _HIGH = 1, 2, 3, 4, 5, 6
_CLASS = np.zeros(256, dtype=np.uint8)
_CLASS[[10, 33, 42, 44, 99]] = [_NL, _BANG, _STAR, _COMMA, _C]
_CLASS[128:] = _HIGH
"""Byte → class of the bytes the vectorised parser locates (0 = not needed)."""
_PAD = np.full(64, 48, dtype=np.uint8)
"""Armour zeros appended after the payload bytes of a chunk."""


class NmeaReader:
    """Reader for AIS NMEA 0183 logs (see module docstring)."""

    name: str = "nmea"
    extensions: tuple[str, ...] = (".nmea", ".ais", ".txt", ".log")

    def sniff(self, head: bytes, path: Path) -> float:
        """Share of the first lines that carry a ``VDM``/``VDO`` sentence, mapped to a confidence."""
        lines = [ln for ln in head.split(b"\n")[:50] if ln.strip()]
        if not lines:
            return 0.0
        hits = sum(1 for ln in lines if b"VDM," in ln or b"VDO," in ln)
        return 1.0 if hits * 2 >= len(lines) else (0.6 if hits else 0.0)

    def read(self, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        """Stream the file: decode slices of whole lines, yield batches of about ``batch_rows`` rows."""
        from atalaya.ingest.base import open_source

        ref = options.reference_time_us
        if ref is None and options.received_at_mtime:
            ref = path.stat().st_mtime_ns // 1000
        state = _State(reference_time_us=ref)
        slice_bytes = max(1 << 16, min(options.batch_rows * 80, SLICE_BYTES))
        pending: list[ParsedBatch] = []
        rows = 0
        with open_source(path, options.limits) as fh:
            for chunk, first_line, pre in _chunks(fh, slice_bytes):
                batch = _decode_chunk(chunk, first_line, state) if chunk else _empty_batch()
                batch.rejects[:0] = pre
                batch.records_read += len(pre)
                batch.bytes_read += len(chunk)
                pending.append(batch)
                rows += len(batch)
                if rows >= options.batch_rows:
                    yield _merge(pending)
                    pending, rows = [], 0
        tail = _empty_batch()
        tail.rejects.extend(state.flush(None))
        pending.append(tail)
        merged = _merge(pending)
        if len(merged) or merged.rejects or merged.records_read:
            yield merged


def _merge(batches: list[ParsedBatch]) -> ParsedBatch:
    """One batch from consecutive batches (columns concatenated in order)."""
    if len(batches) == 1:
        return batches[0]
    columns: dict[str, Any] = {}
    for k, v in batches[0].columns.items():
        parts = [b.columns[k] for b in batches]
        columns[k] = np.concatenate(parts) if isinstance(v, np.ndarray) else pa.concat_arrays(parts)
    return ParsedBatch(
        columns=columns,
        rejects=[r for b in batches for r in b.rejects],
        records_read=sum(b.records_read for b in batches),
        bytes_read=sum(b.bytes_read for b in batches),
    )


# --------------------------------------------------------------------------- streaming


def _chunks(fh: BinaryIO, size: int) -> Iterator[tuple[bytes, int, list[Reject]]]:
    """Yield ``(whole lines, number of the first line, rejects for overlong lines)``."""
    line_no = 1
    rest = b""
    skipping = False
    while True:
        data = fh.read(size)
        if not data:
            break
        if skipping:
            k = data.find(b"\n")
            if k < 0:
                continue
            data = data[k + 1 :]
            skipping = False
            line_no += 1
        buf = rest + data if rest else data
        cut = buf.rfind(b"\n")
        if cut < 0:
            if len(buf) > MAX_LINE_BYTES:
                yield b"", line_no, [Reject(src_rec=line_no, reason=_too_long(), raw=Reject.excerpt(buf))]
                rest, skipping = b"", True
            else:
                rest = buf
            continue
        chunk, rest = buf[: cut + 1], buf[cut + 1 :]
        yield chunk, line_no, []
        line_no += chunk.count(b"\n")
    if rest and not skipping:
        if len(rest) > MAX_LINE_BYTES:
            yield b"", line_no, [Reject(src_rec=line_no, reason=_too_long(), raw=Reject.excerpt(rest))]
        else:
            yield rest + b"\n", line_no, []


def _too_long() -> str:
    return f"line longer than {MAX_LINE_BYTES} bytes: not an NMEA sentence (is this the right file?)"


# --------------------------------------------------------------------------- state across chunks


@dataclass(kw_only=True)
class _Part:
    """One fragment of a multi-sentence message."""

    line: int
    """Line number."""
    time_us: int | None
    """Time from this line's prefix, if any."""
    payload: bytes
    """Armoured payload of this fragment."""
    fill: int
    """Fill bits (meaningful on the last fragment)."""
    raw: bytes
    """The line, for the quarantine."""


@dataclass(kw_only=True)
class _Group:
    """A multi-sentence message being reassembled."""

    count: int
    """Fragments expected."""
    first_line: int
    """Line of the first fragment seen."""
    parts: dict[int, _Part] = field(default_factory=dict)
    """Fragment number → fragment."""


@dataclass(kw_only=True)
class _Msg:
    """A complete message from the per-line path."""

    line: int
    """Line number of the (last) sentence."""
    time_us: int | None
    """Time, if the lines carried one."""
    payload: bytes
    """Armoured payload."""
    fill: int
    """Fill bits."""


class _NameIndex:
    """MMSI → latest name, as a sorted key array so that a slice's rows are looked up at once.

    Names live in an append-only list (``names``); ``ref`` points each key at its latest name.
    The list is compacted between slices when superseded names pile up.
    """

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.int64)
        self.ref = np.zeros(0, dtype=np.int64)
        self.names: list[str] = []

    def lookup(self, mmsi: I64) -> I64:
        """Index into ``names`` for every MMSI (-1 = none)."""
        if self.keys.size == 0:
            return np.full(mmsi.size, -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, mmsi), self.keys.size - 1)
        out: I64 = np.where(self.keys[pos] == mmsi, self.ref[pos], -1)
        return out

    def set(self, mmsi: I64, ref: I64) -> None:
        """Point each MMSI at a name index (later entries win)."""
        if mmsi.size == 0:
            return
        # keep the last entry per MMSI
        rev_u, rev_i = np.unique(mmsi[::-1], return_index=True)
        ref_u = ref[::-1][rev_i]
        pos = np.searchsorted(self.keys, rev_u)
        found = np.zeros(rev_u.size, dtype=bool)
        if self.keys.size:
            found = self.keys[np.minimum(pos, self.keys.size - 1)] == rev_u
            self.ref[pos[found]] = ref_u[found]
        new = ~found
        if new.any():
            self.keys = np.insert(self.keys, pos[new], rev_u[new])
            self.ref = np.insert(self.ref, pos[new], ref_u[new])

    def compact(self) -> None:
        """Drop superseded names (call between slices only: it renumbers ``names``)."""
        if len(self.names) > 4 * self.keys.size + 4096:
            self.names = [self.names[i] for i in self.ref.tolist()]
            self.ref = np.arange(self.keys.size, dtype=np.int64)


@dataclass(kw_only=True)
class _State:
    """What a read carries from chunk to chunk."""

    reference_time_us: int | None
    """Time for reports whose lines carry none."""
    pending: dict[tuple[bytes, bytes], _Group] = field(default_factory=dict)
    """(sequential message id, channel) → message being reassembled."""
    names: _NameIndex = field(default_factory=lambda: _NameIndex())
    """MMSI → latest vessel name seen."""
    wrapper_us: int | None = None
    """Time of a ``$PGHP`` wrapper that ended the previous chunk (it belongs to the next message)."""

    def add(self, key: tuple[bytes, bytes], count: int, num: int, part: _Part) -> tuple[_Msg | None, list[Reject]]:
        """Add one fragment; return the message if it completes one, and rejects for groups it breaks."""
        rejects: list[Reject] = []
        g = self.pending.get(key)
        if g is not None and (g.count != count or num in g.parts):
            rejects.append(_group_reject(g))
            g = None
        if g is None:
            g = _Group(count=count, first_line=part.line)
            self.pending[key] = g
        g.parts[num] = part
        if len(g.parts) < count:
            return None, rejects
        del self.pending[key]
        ordered = [g.parts[k] for k in range(1, count + 1)]
        times = [p.time_us for p in ordered if p.time_us is not None]
        msg = _Msg(
            line=max(p.line for p in ordered),
            time_us=times[0] if times else None,
            payload=b"".join(p.payload for p in ordered),
            fill=ordered[-1].fill,
        )
        return msg, rejects

    def flush(self, before_line: int | None) -> list[Reject]:
        """Reject groups started before ``before_line`` (all groups when None)."""
        out = []
        for key, g in list(self.pending.items()):
            if before_line is None or g.first_line < before_line:
                out.append(_group_reject(g))
                del self.pending[key]
        return out


def _group_reject(g: _Group) -> Reject:
    got = sorted(g.parts)
    last = max(p.line for p in g.parts.values())
    raw = b"\n".join(g.parts[k].raw for k in got)
    listed = ", ".join(map(str, got))
    if 1 not in g.parts:
        reason = f"orphaned fragment: part {listed} of {g.count} without part 1"
    else:
        reason = f"incomplete multi-sentence message: got part {listed} of {g.count}"
    return Reject(src_rec=last, reason=reason, raw=Reject.excerpt(raw))


# --------------------------------------------------------------------------- per-line path


_MAX_TIME_US = 253_402_300_800_000_000
"""9999-12-31T23:59:59Z + 1 s in µs: later times cannot be stored."""


def _parse_time_text(text: str) -> int | None:
    """Microseconds from an epoch number (s, or ms when huge) or ISO-8601 text; None if neither (or past 9999).

    >>> _parse_time_text("1700000000"), _parse_time_text("1" * 23)
    (1700000000000000, None)
    """
    t = text.strip()
    if not t:
        return None
    try:
        if t.replace(".", "", 1).isdigit():
            if "." not in t and int(t) >= _MS_THRESHOLD:
                us = int(t) * 1000
            else:
                whole, _, frac = t.partition(".")
                us = int(whole) * 1_000_000 + int((frac + "000000")[:6])
            return us if us < _MAX_TIME_US else None
        d = dt.datetime.fromisoformat(t.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    delta = d - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _xor(b: bytes) -> int:
    x = 0
    for c in b:
        x ^= c
    return x


_RECEIVER_FIELD = re.compile(rb"[A-Za-z0-9_.:+\-]*")
"""Characters of a receiver field after the checksum (USCG ``s12345``, ``d-97``, ``T12.3``, ``r09STOL1``…)."""


def _parse_tail(tail: bytes) -> tuple[bool, int | None]:
    """``(understood, time)`` of the text after a sentence's checksum.

    Comma-separated fields: receiver fields, the last one an epoch (its time) or a receiver field too (no time).

    >>> _parse_tail(b",s12345,d-97,T12.3,x1,1234567890"), _parse_tail(b",rnhcml"), _parse_tail(b" hello!")
    ((True, 1234567890000000), (True, None), (False, None))
    """
    if tail[:1] not in b",; \t":
        return False, None
    items = tail.lstrip(b",; \t").rstrip().split(b",")
    if not all(_RECEIVER_FIELD.fullmatch(x) for x in items[:-1]):
        return False, None
    last = items[-1]
    t = _parse_time_text(last.decode())
    if t is not None:
        return True, t
    return last[:1].isalpha() and _RECEIVER_FIELD.fullmatch(last) is not None, None


def _parse_wrapper(line: bytes) -> int | str | None:
    """Time of a Gatehouse ``$PGHP,1,year,month,day,hour,minute,second,ms,…*hh`` line (µs), a reject reason, or None.

    >>> _parse_wrapper(b"$PGHP,1,2020,12,31,23,59,58,239,0,0,0,1,2C*5B")
    1609459198239000
    >>> _parse_wrapper(b"$PGHP,1,2020,12,31,23,59,58,239,0,0,0,1,2C*5C")
    'bad $PGHP checksum: got 5C, computed 5B'
    """
    text = line.strip()
    star = text.rfind(b"*")
    if star < 0:
        return "malformed $PGHP wrapper: no checksum ('*hh')"
    body, cs = text[1:star], text[star + 1 : star + 3]
    want = f"{_xor(body):02X}"
    if cs.upper() != want.encode():
        return f"bad $PGHP checksum: got {cs.decode() or 'nothing'}, computed {want}"
    f = body.split(b",")
    if len(f) < 2 or f[1] != b"1":
        return None  # other Gatehouse sentences carry no time
    if len(f) < 9 or not all(x.isdigit() and len(x) <= 4 for x in f[2:9]):
        return f"malformed $PGHP time {b','.join(f[2:9]).decode()!r}: expected year,month,day,hour,minute,second,ms"
    y, mo, d, h, mi, sec, ms = (int(x) for x in f[2:9])
    try:
        when = dt.datetime(y, mo, d, h, mi, sec, tzinfo=dt.UTC)
    except ValueError:
        return f"malformed $PGHP time {b','.join(f[2:9]).decode()!r}: not a date and time"
    if ms > 999:
        return f"malformed $PGHP time: {ms} milliseconds"
    return int(when.timestamp()) * 1_000_000 + ms * 1000


@dataclass(kw_only=True)
class _Sentence:
    """One parsed VDM/VDO sentence from the per-line path."""

    time_us: int | None
    """Time from the line's prefix or suffix."""
    count: int
    """Fragments in the message."""
    num: int
    """This fragment's number."""
    seq: bytes
    """Sequential message id (may be empty)."""
    channel: bytes
    """Radio channel."""
    payload: bytes
    """Armoured payload."""
    fill: int
    """Fill bits."""


def _parse_line(line: bytes) -> _Sentence | str | None:
    """Parse one line. A string is a reject reason; None means skip (blank, comment, other sentence)."""
    text = line.strip()
    if not text or text.startswith(b"#"):
        return None
    try:
        text.decode("ascii")
    except UnicodeDecodeError:
        return "undecodable bytes: the line is not ASCII text (check the file's encoding)"
    time_us: int | None = None
    while text.startswith(b"\\"):
        end = text.find(b"\\", 1)
        if end < 0:
            return "malformed tag block: no closing backslash"
        body, sep, cs = text[1:end].rpartition(b"*")
        if not sep:
            body, cs = text[1:end], b""
        if cs:
            want = f"{_xor(body):02X}"
            if cs.upper() != want.encode():
                return f"bad tag block checksum: got {cs.decode()}, computed {want}"
        for item in body.split(b","):
            if item.startswith(b"c:") and time_us is None:
                t = _parse_time_text(item[2:].decode())
                if t is None:
                    return f"malformed tag block time {item.decode()!r}"
                time_us = t
        text = text[end + 1 :]
    bang = text.find(b"!")
    if bang < 0:
        if b"$" in text:
            return None
        return "malformed line: no NMEA sentence (no '!')"
    if bang > 0:
        prefix = text[:bang].strip().rstrip(b",;").strip()
        t = _parse_time_text(prefix.decode())
        if t is None:
            return (
                f"unrecognised text before the sentence: {prefix[:40].decode()!r} (expected an epoch or ISO-8601 time)"
            )
        time_us = time_us if time_us is not None else t
    sentence = text[bang:]
    star = sentence.find(b"*")
    if star < 0:
        return "malformed sentence: no checksum ('*hh')"
    body = sentence[1:star]
    cs = sentence[star + 1 : star + 3]
    tail = sentence[star + 3 :]
    want = f"{_xor(body):02X}"
    if len(cs) != 2 or cs.upper() != want.encode():
        return f"bad NMEA checksum: got {cs.decode() or 'nothing'}, computed {want}"
    if tail:
        ok, t = _parse_tail(tail)
        if not ok:
            return (
                f"unrecognised text after the checksum: {tail[:40].decode()!r} "
                "(expected an epoch time, after receiver fields or alone)"
            )
        time_us = time_us if time_us is not None else t
    fields = body.split(b",")
    if len(fields[0]) != 5 or fields[0][2:] not in (b"VDM", b"VDO"):
        return None
    if len(fields) != 7:
        return f"malformed sentence: {len(fields)} fields, expected 7"
    cnt, num, seq, chan, payload, fill = fields[1:]
    if not (cnt.isdigit() and num.isdigit() and 1 <= int(num) <= int(cnt) <= 9):
        return f"malformed fragment numbers: part {num.decode()!r} of {cnt.decode()!r}"
    if not (fill.isdigit() and int(fill) <= 5):
        return f"malformed fill bits {fill.decode()!r}: expected 0 to 5"
    if seq and not seq.isdigit():
        return f"malformed sequential message id {seq.decode()!r}"
    return _Sentence(
        time_us=time_us,
        count=int(cnt),
        num=int(num),
        seq=seq,
        channel=chan,
        payload=payload,
        fill=int(fill),
    )


# --------------------------------------------------------------------------- vectorised helpers


def _first_at_or_after(sorted_pos: I64, start: I64, end: I64) -> tuple[I64, BOOL]:
    """For each ``start``, the first position ``>= start`` and whether it lies before ``end``."""
    if sorted_pos.size == 0:
        return np.zeros_like(start), np.zeros(start.shape, dtype=bool)
    i = np.searchsorted(sorted_pos, start)
    ok = i < sorted_pos.size
    pos = sorted_pos[np.minimum(i, sorted_pos.size - 1)]
    return pos, ok & (pos < end)


def _merge_order(v: I64, n1: int) -> I64:
    """Order that sorts ``v`` when ``v[:n1]`` and ``v[n1:]`` are each sorted (stable, first run first).

    >>> _merge_order(np.array([1, 4, 9, 2, 4]), 3).tolist()
    [0, 3, 1, 4, 2]
    >>> _merge_order(np.zeros(0, dtype=np.int64), 0).tolist()
    []
    """
    a, b = v[:n1], v[n1:]
    pos_b = np.searchsorted(a, b, side="right") + np.arange(b.size)
    order = np.empty(v.size, dtype=np.int64)
    is_b = np.zeros(v.size, dtype=bool)
    is_b[pos_b] = True
    order[pos_b] = n1 + np.arange(b.size)
    order[~is_b] = np.arange(n1)
    return order


def _runs_order(v: I64) -> I64:
    """Stable ascending order of ``v``; linear when ``v`` is at most two sorted runs (the usual case)."""
    breaks = np.flatnonzero(v[1:] < v[:-1])
    if breaks.size == 0:
        return np.arange(v.size)
    if breaks.size == 1:
        n1 = int(breaks[0]) + 1
        return _merge_order(v, n1)
    out: I64 = np.argsort(v, kind="stable")
    return out


class _XorRanges:
    """XOR of the bytes in many ranges of one array, from a prefix XOR over 64-bit words.

    >>> _XorRanges(np.frombuffer(b"AIVDM,1", dtype=np.uint8)).of(np.array([0, 2]), np.array([7, 2])).tolist()
    [74, 0]
    """

    def __init__(self, arr: U8) -> None:
        pad = np.zeros(-(-(arr.size + 8) // 8) * 8, dtype=np.uint8)
        pad[: arr.size] = arr
        self.words = pad.view("<u8")
        self.prefix = np.zeros(self.words.size + 1, dtype=np.uint64)
        np.bitwise_xor.accumulate(self.words, out=self.prefix[1:])

    def of(self, a: I64, b: I64) -> I64:
        """XOR of ``arr[a:b]`` for each pair (``a <= b``)."""
        wa, wb = a // 8, b // 8
        x = self.prefix[wb] ^ self.prefix[wa]  # whole words from wa up to (not incl.) wb
        lo_a = (np.uint64(1) << ((a % 8) * 8).astype(np.uint64)) - np.uint64(1)
        lo_b = (np.uint64(1) << ((b % 8) * 8).astype(np.uint64)) - np.uint64(1)
        x ^= self.words[wa] & lo_a  # drop the bytes of word wa before a
        x ^= self.words[wb] & lo_b  # add the bytes of word wb before b
        x ^= x >> np.uint64(32)
        x ^= x >> np.uint64(16)
        x ^= x >> np.uint64(8)
        out: I64 = (x & np.uint64(0xFF)).astype(np.int64)
        return out


def _parse_epochs(arr: U8, a: I64, b: I64) -> tuple[I64, BOOL]:
    """Parse ``arr[a:b]`` as epoch numbers (seconds with optional fraction, or integer ms) → µs.

    Rows are grouped by (length, position of the dot), usually one or two groups, so each group
    is a small matrix product with powers of ten.
    """
    n = a.size
    us = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    length = b - a
    fits = np.flatnonzero((length >= 1) & (length <= 20))
    if fits.size == 0:
        return us, ok
    width = int(length[fits].max())
    j = np.arange(width, dtype=np.int64)
    d = arr[np.minimum(a[fits, None] + j[None, :], arr.size - 1)]
    isdot = (d == 46) & (j[None, :] < length[fits, None])
    dp = np.where(isdot.any(axis=1), isdot.argmax(axis=1), length[fits])
    key = length[fits] * 32 + dp
    groups = [int(key[0])] if key.min() == key.max() else np.unique(key).tolist()
    for k in groups:
        sel = np.flatnonzero(key == k) if len(groups) > 1 else np.arange(fits.size)
        ln, p = k // 32, k % 32
        sub = d[sel, :ln].astype(np.int64) - 48
        digit_cols = np.ones(ln, dtype=bool)
        if p < ln:
            digit_cols[p] = False
        good = ((sub[:, digit_cols] >= 0) & (sub[:, digit_cols] <= 9)).all(axis=1) & (p >= 1) & (p <= 16)
        if p > 16 or p < 1:
            continue
        whole = sub[:, :p] @ (10 ** np.arange(p - 1, -1, -1, dtype=np.int64))
        nf = min(6, max(0, ln - p - 1))
        frac = sub[:, p + 1 : p + 1 + nf] @ (10 ** np.arange(5, 5 - nf, -1, dtype=np.int64)) if nf else 0
        # an integer this large is milliseconds; otherwise seconds with an optional fraction
        ms = (whole >= _MS_THRESHOLD) & (p == ln)
        val = np.where(ms, whole * 1000, whole * 1_000_000 + frac)
        rows = fits[sel]
        us[rows] = np.where(good, val, 0)
        ok[rows] = good
    return us, ok


def _days_from_civil(y: I64, m: I64, d: I64) -> I64:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm), elementwise."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    out: I64 = era * 146097 + doe - 719468
    return out


def _parse_isos(arr: U8, a: I64, b: I64) -> tuple[I64, BOOL]:
    """Parse ``arr[a:b]`` as ``YYYY-MM-DDTHH:MM:SS[.f…][Z]`` (UTC; ``T`` or space) → µs since the epoch.

    Other forms (offsets, dates alone) are left to the per-line parser (``ok`` False).
    """
    n = a.size
    us = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    length = b - a
    for ln in np.unique(length[(length >= 19) & (length <= 30)]).tolist():
        sel = np.flatnonzero(length == ln)
        d = arr[a[sel, None] + np.arange(ln, dtype=np.int64)[None, :]].astype(np.int64)
        z = d[:, -1] == 90
        end = ln - z.astype(np.int64)  # without the Z

        def num(lo: int, hi: int, d: I64 = d) -> I64:
            v = np.zeros(d.shape[0], dtype=np.int64)
            for k in range(lo, hi):
                v = v * 10 + (d[:, k] - 48)
            return v

        digits = (d >= 48) & (d <= 57)
        good = digits[:, [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]].all(axis=1)
        good &= (d[:, 4] == 45) & (d[:, 7] == 45) & ((d[:, 10] == 84) | (d[:, 10] == 32))
        good &= (d[:, 13] == 58) & (d[:, 16] == 58)
        frac = np.zeros(sel.size, dtype=np.int64)
        if ln > 19:
            j = np.arange(20, ln, dtype=np.int64)
            in_frac = j[None, :] < end[:, None]
            has_frac = end > 19
            good &= ~has_frac | ((d[:, 19] == 46) & (end > 20))
            good &= (digits[:, 20:] | ~in_frac).all(axis=1)
            w = 10 ** np.clip(25 - j, 0, 5)  # position 20 weighs 1e5 µs
            frac = (np.where(in_frac & (j[None, :] < 26), d[:, 20:] - 48, 0) * w[None, :]).sum(axis=1)
        y, mo, dd = num(0, 4), num(5, 7), num(8, 10)
        hh, mi, ss = num(11, 13), num(14, 16), num(17, 19)
        good &= (mo >= 1) & (mo <= 12) & (dd >= 1) & (dd <= 31) & (hh <= 23) & (mi <= 59) & (ss <= 60)
        days = _days_from_civil(y, mo, dd)
        val = ((days * 24 + hh) * 60 + mi) * 60 + ss
        us[sel] = np.where(good, val * 1_000_000 + frac, 0)
        ok[sel] = good
    return us, ok


_RECEIVER_BYTE = np.zeros(256, dtype=bool)
_RECEIVER_BYTE[
    np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:+-,", dtype=np.uint8)
] = True
"""Bytes allowed in receiver fields after the checksum (and the commas between them)."""


def _wrapper_owners(arr: U8, s: I64, e: I64, vdm: BOOL, state: _State) -> tuple[I64, BOOL, int]:
    """``(owner, wrap, tail)`` of a chunk's Gatehouse wrappers.

    ``wrap`` marks ``$PGHP,`` lines; ``owner[i]`` is the wrapper line whose time the sentence on line ``i`` takes
    (-1 none, -2 the wrapper that ended the previous chunk): the first sentence after a wrapper, with no other
    sentence between. ``tail`` is the wrapper line that ends the chunk (it belongs to the next chunk's first
    sentence), -1 when a sentence ends it, -3 when the chunk has neither.
    """
    n = s.size
    owner = np.full(n, -1, dtype=np.int64)
    wrap = np.zeros(n, dtype=bool)
    dollar = np.flatnonzero((e - s >= 6) & (arr[np.minimum(s, max(arr.size - 1, 0))] == 36)) if arr.size else s[:0]
    if dollar.size:
        head = arr[s[dollar, None] + np.arange(1, 6, dtype=np.int64)[None, :]]
        wrap[dollar[(head == np.frombuffer(b"PGHP,", dtype=np.uint8)).all(axis=1)]] = True
    if not wrap.any() and state.wrapper_us is None:
        return owner, wrap, -1
    ev = np.flatnonzero(wrap | vdm)
    if ev.size == 0:
        return owner, wrap, -3
    k = np.flatnonzero(vdm[ev])
    prev = ev[np.maximum(k - 1, 0)]
    owner[ev[k]] = np.where(k == 0, -2, np.where(wrap[prev], prev, -1))
    last = int(ev[-1])
    return owner, wrap, last if wrap[last] else -1


def _apply_wrappers(fi: I64, owner: I64, wrap_us: dict[int, int], time_us: I64, has_time: BOOL) -> None:
    """Give single-sentence lines without a time of their own the time of the wrapper before them."""
    n = owner.size
    wt = np.full(n + 1, -1, dtype=np.int64)
    for i, us in wrap_us.items():
        wt[n if i == -2 else i] = us
    o = owner[fi]
    src = np.where(o == -2, n, o)
    take = (o != -1) & ~has_time[fi]
    t = wt[np.maximum(src, 0)]
    take &= t >= 0
    time_us[fi[take]] = t[take]
    has_time[fi[take]] = True


@dataclass(kw_only=True)
class _Msgs:
    """Complete messages of a chunk, as columns (payloads addressed in one byte array)."""

    line: I64
    """Line number of the (last) sentence."""
    time_us: I64
    """Time (valid where ``has_time``)."""
    has_time: BOOL
    """Whether the lines carried a time."""
    start: I64
    """Payload start in the byte array."""
    length: I64
    """Payload length in characters."""
    fill: I64
    """Fill bits."""


def _decode_chunk(chunk: bytes, first_line: int, state: _State) -> ParsedBatch:
    arr = np.frombuffer(chunk, dtype=np.uint8)
    # one pass classifies the bytes the parser looks at; positions per class come from the (short) list
    special = np.flatnonzero(_CLASS[arr])
    cls = _CLASS[arr[special]]
    nl = special[cls == _NL]
    n = nl.size
    s = np.empty(n, dtype=np.int64)
    s[:1] = 0
    s[1:] = nl[:-1] + 1
    e = nl.astype(np.int64)
    cr = (e > s) & (arr[np.maximum(e - 1, 0)] == 13)
    e[cr] -= 1
    lines = first_line + np.arange(n, dtype=np.int64)
    rejects: list[Reject] = []

    def rej(idx: I64 | list[int], reason: str | list[str]) -> None:
        for k, i in enumerate(np.asarray(idx, dtype=np.int64).tolist()):
            r = reason if isinstance(reason, str) else reason[k]
            rejects.append(Reject(src_rec=int(lines[i]), reason=r, raw=Reject.excerpt(chunk[s[i] : e[i]])))

    blank = e == s
    toolong = (e - s) > MAX_LINE_BYTES
    rej(np.flatnonzero(toolong), _too_long())
    nonascii = np.zeros(n, dtype=bool)
    hi = special[cls == _HIGH]
    if hi.size:
        nonascii[np.searchsorted(nl, hi)] = True
    last = arr.size - 1

    def at(pos: I64) -> U8:
        return arr[np.clip(pos, 0, last)]

    bangs = special[cls == _BANG]
    stars = special[cls == _STAR]
    commas = special[cls == _COMMA]
    bang, fast = _first_at_or_after(bangs, s, e)
    fast &= ~blank & ~toolong & ~nonascii
    fast &= (at(bang + 3) == 86) & (at(bang + 4) == 68) & ((at(bang + 5) == 77) | (at(bang + 5) == 79))
    owner, wrap, tail_wrap = _wrapper_owners(arr, s, e, fast, state)
    star, ok = _first_at_or_after(stars, bang, e)
    fast &= ok & (star + 3 <= e)
    if commas.size == 0:
        fast[:] = False
        commas = np.zeros(1, dtype=np.int64)
    ci = np.searchsorted(commas, bang)
    cm = [commas[np.minimum(ci + k, commas.size - 1)] for k in range(7)]
    fast &= (ci + 5 < commas.size) & (cm[0] == bang + 6) & (cm[5] < star)
    fast &= (ci + 6 >= commas.size) | (cm[6] > star)
    cnt_v = at(cm[0] + 1).astype(np.int64) - 48
    num_v = at(cm[1] + 1).astype(np.int64) - 48
    fast &= (cm[1] == cm[0] + 2) & (cm[2] == cm[1] + 2) & (num_v >= 1) & (num_v <= cnt_v) & (cnt_v <= 9)
    seq_c = at(cm[2] + 1)
    fast &= (cm[3] == cm[2] + 1) | ((cm[3] == cm[2] + 2) & (seq_c >= 48) & (seq_c <= 57))
    single = cnt_v == 1
    fill_c = at(cm[5] + 1).astype(np.int64) - 48
    fast &= (cm[5] + 2 == star) & (fill_c >= 0) & (fill_c <= 5)
    xr = _XorRanges(arr)
    got = _HEX[at(star + 1)].astype(np.int64) * 16 + _HEX[at(star + 2)]
    want = xr.of(np.clip(bang + 1, 0, last), np.maximum(np.clip(star, 0, last), np.clip(bang + 1, 0, last)))
    hexok = (_HEX[at(star + 1)] != 255) & (_HEX[at(star + 2)] != 255)
    fast &= hexok
    # prefix: none, one tag block, or a numeric epoch followed by ',' or ' '
    has_prefix = bang > s
    is_tag = has_prefix & (at(s) == 92)
    tstar, tok = _first_at_or_after(stars, s, bang)
    tag_shape = is_tag & tok & (tstar + 4 == bang) & (at(tstar + 3) == 92) & (at(bang - 1) == 92)
    num_prefix = has_prefix & ~is_tag & ((at(bang - 1) == 44) | (at(bang - 1) == 32))
    fast &= ~has_prefix | tag_shape | num_prefix
    time_us = np.zeros(n, dtype=np.int64)
    has_time = np.zeros(n, dtype=bool)
    # tail: nothing, ",<epoch>", or ",<receiver fields>,<epoch>" (USCG, aisdeco)
    has_tail = fast & (star + 3 < e)
    ti = np.flatnonzero(has_tail)
    if ti.size:
        lc = commas[np.maximum(np.searchsorted(commas, e[ti]) - 1, 0)]
        tus, tok2 = _parse_epochs(arr, lc + 1, e[ti])
        tok2 &= (at(star[ti] + 3) == 44) & (lc >= star[ti] + 3)
        fields = np.flatnonzero(tok2 & (lc > star[ti] + 3))
        if fields.size:
            bad = np.cumsum(~_RECEIVER_BYTE[arr], dtype=np.int64)
            tok2[fields] = bad[lc[fields]] == bad[star[ti[fields]] + 3]
        fast[ti[~tok2]] = False
        time_us[ti[tok2]] = tus[tok2]
        has_time[ti[tok2]] = True
    pi = np.flatnonzero(fast & num_prefix)
    if pi.size:
        pus, pok = _parse_epochs(arr, s[pi], bang[pi] - 1)
        iso = np.flatnonzero(~pok)
        if iso.size:
            ius, iok = _parse_isos(arr, s[pi[iso]], bang[pi[iso]] - 1)
            pus[iso[iok]] = ius[iok]
            pok[iso[iok]] = True
        fast[pi[~pok]] = False
        time_us[pi[pok]] = pus[pok]
        has_time[pi[pok]] = True
    gi = np.flatnonzero(fast & tag_shape)
    if gi.size:
        tgot = _HEX[at(tstar[gi] + 1)].astype(np.int64) * 16 + _HEX[at(tstar[gi] + 2)]
        twant = xr.of(s[gi] + 1, tstar[gi])
        bad = (_HEX[at(tstar[gi] + 1)] == 255) | (_HEX[at(tstar[gi] + 2)] == 255) | (tgot != twant)
        fast[gi[bad]] = False  # the per-line path words the reject
        # c: fields inside the tag block
        cpos = special[cls == _C]
        cpos = cpos[(cpos > 0) & (cpos < last)]
        cpos = cpos[arr[cpos + 1] == 58]
        if cpos.size:
            cpos = cpos[(arr[cpos - 1] == 44) | (arr[cpos - 1] == 92)]
            li = np.searchsorted(nl, cpos)
            keep = tag_shape[li] & fast[li] & (cpos < tstar[li])
            cpos, li = cpos[keep], li[keep]
            li, first = np.unique(li, return_index=True)
            cpos = cpos[first]
            cend, cok = _first_at_or_after(commas, cpos, tstar[li])
            cend = np.where(cok, cend, tstar[li])
            cus, cok2 = _parse_epochs(arr, cpos + 2, cend)
            fast[li[~cok2]] = False
            time_us[li[cok2]] = cus[cok2]
            has_time[li[cok2]] = True
    badsum = fast & (got != want)
    bi = np.flatnonzero(badsum)
    rej(bi, [f"bad NMEA checksum: got {got[i]:02X}, computed {want[i]:02X}" for i in bi.tolist()])
    fast &= ~badsum
    # per-line path for everything else
    slow = ~fast & ~blank & ~toolong & ~badsum
    multi = fast & ~single
    slow_msgs: list[_Msg] = []
    todo = np.flatnonzero(slow | multi)
    # Python ints up front: indexing numpy scalars one by one costs more than the work itself
    cols = [todo, multi[todo], s[todo], e[todo], lines[todo], cm[2][todo], cm[3][todo], cm[4][todo], cm[5][todo]]
    cols += [np.where(has_time[todo], time_us[todo], -1), fill_c[todo], cnt_v[todo], num_v[todo]]
    cols += [owner[todo], wrap[todo]]
    wrap_us: dict[int, int] = {} if state.wrapper_us is None else {-2: state.wrapper_us}
    for i, is_multi, a, b, ln, c2, c3, c4, c5, tm, fl, cnt, num, own, is_wrap in zip(
        *(c.tolist() for c in cols), strict=True
    ):
        raw = chunk[a:b]
        if is_wrap:
            w = _parse_wrapper(raw)
            if isinstance(w, str):
                rejects.append(Reject(src_rec=ln, reason=w, raw=Reject.excerpt(raw)))
            elif w is not None:
                wrap_us[i] = w
            continue
        if tm < 0 and own != -1:
            tm = wrap_us.get(own, -1)
        if is_multi:
            part = _Part(line=ln, time_us=None if tm < 0 else tm, payload=chunk[c4 + 1 : c5], fill=fl, raw=raw)
            msg, broken = state.add((chunk[c2 + 1 : c3], chunk[c3 + 1 : c4]), cnt, num, part)
            if broken:
                rejects.extend(broken)
            if msg is not None:
                slow_msgs.append(msg)
            continue
        res = _parse_line(raw) if not nonascii[i] else "undecodable bytes: the line is not ASCII text"
        if res is None:
            continue
        if isinstance(res, str):
            rejects.append(Reject(src_rec=ln, reason=res, raw=Reject.excerpt(raw)))
            continue
        if res.time_us is None and tm >= 0:
            res.time_us = tm
        part = _Part(line=ln, time_us=res.time_us, payload=res.payload, fill=res.fill, raw=raw)
        if res.count == 1:
            slow_msgs.append(_Msg(line=ln, time_us=res.time_us, payload=res.payload, fill=res.fill))
            continue
        msg, broken = state.add((res.seq, res.channel), res.count, res.num, part)
        rejects.extend(broken)
        if msg is not None:
            slow_msgs.append(msg)
    if n:
        rejects.extend(state.flush(int(lines[-1]) - MAX_PENDING_LINES))
    fi = np.flatnonzero(fast & single)
    if wrap_us:
        _apply_wrappers(fi, owner, wrap_us, time_us, has_time)
    if tail_wrap != -3:
        state.wrapper_us = wrap_us.get(tail_wrap) if tail_wrap >= 0 else None
    msgs = _Msgs(
        line=lines[fi],
        time_us=time_us[fi],
        has_time=has_time[fi],
        start=cm[4][fi] + 1,
        length=cm[5][fi] - cm[4][fi] - 1,
        fill=fill_c[fi],
    )
    blob = b"".join(m.payload for m in slow_msgs)
    # payloads of the per-line path follow the chunk; a valid-armour pad lets fixed windows run past the end
    big = np.concatenate([arr, np.frombuffer(blob, dtype=np.uint8), _PAD])
    if slow_msgs:
        lens = np.array([len(m.payload) for m in slow_msgs], dtype=np.int64)
        offs = arr.size + np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
        msgs = _Msgs(
            line=np.concatenate([msgs.line, [m.line for m in slow_msgs]]).astype(np.int64),
            time_us=np.concatenate([msgs.time_us, [m.time_us or 0 for m in slow_msgs]]).astype(np.int64),
            has_time=np.concatenate([msgs.has_time, [m.time_us is not None for m in slow_msgs]]).astype(bool),
            start=np.concatenate([msgs.start, offs]),
            length=np.concatenate([msgs.length, lens]),
            fill=np.concatenate([msgs.fill, [m.fill for m in slow_msgs]]).astype(np.int64),
        )
        order = _merge_order(msgs.line, fi.size)
        msgs = _Msgs(**{k: getattr(msgs, k)[order] for k in msgs.__dataclass_fields__})
    raw_of = _raw_lookup(chunk, lines, s, e, first_line)
    columns = _decode_messages(big, msgs, state, rejects, raw_of)
    rejects.sort(key=lambda r: r.src_rec)
    return ParsedBatch(columns=columns, rejects=rejects, records_read=n)


def _raw_lookup(chunk: bytes, lines: I64, s: I64, e: I64, first_line: int) -> Any:
    def raw_of(line: int) -> str:
        i = line - first_line
        if 0 <= i < lines.size:
            return Reject.excerpt(chunk[s[i] : e[i]])
        return ""

    return raw_of


# --------------------------------------------------------------------------- payload decoding


def _matrix(big: U8, start: I64, length: I64, width: int) -> U8:
    """6-bit values of ``width`` payload characters per row; ``big`` must end with ``width`` spare bytes."""
    rows = np.lib.stride_tricks.sliding_window_view(big, width)[start]
    m: U8 = _LUT[rows]
    short = np.flatnonzero(length < width)
    if short.size:
        j = np.arange(width, dtype=np.int64)
        m[short] = np.where(j[None, :] >= length[short, None], 0, m[short])
    return m


@dataclass(kw_only=True)
class _Rows:
    """Position rows decoded from one message type."""

    sel: I64
    """Index into the chunk's messages."""
    mmsi: I64
    """MMSI."""
    lon: npt.NDArray[np.float64]
    """Longitude, degrees."""
    lat: npt.NDArray[np.float64]
    """Latitude, degrees."""
    lon_na: BOOL
    """Longitude is the not-available value (181°)."""
    lat_na: BOOL
    """Latitude is the not-available value (91°)."""
    speed: npt.NDArray[np.float32]
    """Speed, m/s (NaN = not available)."""
    course: npt.NDArray[np.float32]
    """Course, degrees (NaN = not available)."""
    heading: I64
    """Heading, degrees (511 = not available)."""
    status: I64
    """Navigation status (-1 = not in this type)."""
    structure: bool
    """Base station or aid to navigation."""
    names: list[str] | None
    """Names carried by the message itself (types 19, 21)."""
    mtype: int
    """Message type."""


def _decode_type(t: int, m: U8, sel: I64) -> _Rows:
    k = sel.size
    speed_raw: I64
    if t in (1, 2, 3):
        lon_raw, lat_raw = codec.signed_field(m, 61, 28), codec.signed_field(m, 89, 27)
        speed_raw, course_raw = codec.field(m, 50, 10), codec.field(m, 116, 12)
        heading, status = codec.field(m, 128, 9), codec.field(m, 38, 4)
    elif t in (18, 19):
        lon_raw, lat_raw = codec.signed_field(m, 57, 28), codec.signed_field(m, 85, 27)
        speed_raw, course_raw = codec.field(m, 46, 10), codec.field(m, 112, 12)
        heading, status = codec.field(m, 124, 9), np.full(k, -1, dtype=np.int64)
    elif t == 27:
        lon27, lat27 = codec.signed_field(m, 44, 18), codec.signed_field(m, 62, 17)
        lon_raw, lat_raw = lon27 * 1000, lat27 * 1000
        sp, co = codec.field(m, 79, 6), codec.field(m, 85, 9)
        speed_raw = np.where(sp == 63, 1023, sp * 10)
        course_raw = np.where(co == 511, 3600, co * 10)
        heading, status = np.full(k, 511, dtype=np.int64), codec.field(m, 40, 4)
    elif t == 4:
        lon_raw, lat_raw = codec.signed_field(m, 79, 28), codec.signed_field(m, 107, 27)
        speed_raw, course_raw = np.full(k, 1023, dtype=np.int64), np.full(k, 3600, dtype=np.int64)
        heading, status = np.full(k, 511, dtype=np.int64), np.full(k, -1, dtype=np.int64)
    else:  # 21
        lon_raw, lat_raw = codec.signed_field(m, 164, 28), codec.signed_field(m, 192, 27)
        speed_raw, course_raw = np.full(k, 1023, dtype=np.int64), np.full(k, 3600, dtype=np.int64)
        heading, status = np.full(k, 511, dtype=np.int64), np.full(k, -1, dtype=np.int64)
    names = None
    if t == 19:
        names = codec.text_field(m, 143, 20)
    elif t == 21:
        names = codec.text_field(m, 43, 20)
    speed = np.where(speed_raw >= 1023, np.nan, speed_raw * (0.1 * codec.KNOT_MPS)).astype(np.float32)
    course = np.where(course_raw >= 3600, np.nan, course_raw * 0.1).astype(np.float32)
    return _Rows(
        sel=sel,
        mmsi=codec.field(m, 8, 30),
        lon=lon_raw / 600000.0,
        lat=lat_raw / 600000.0,
        lon_na=lon_raw == 181 * 600000,
        lat_na=lat_raw == 91 * 600000,
        speed=speed,
        course=course,
        heading=heading,
        status=status,
        structure=t in (4, 21),
        names=names,
        mtype=t,
    )


def _decode_messages(big: U8, msgs: _Msgs, state: _State, rejects: list[Reject], raw_of: Any) -> dict[str, Any]:
    nmsg = msgs.line.size
    if nmsg == 0:
        return _empty_columns()

    def rej(sel: I64, reason: str | list[str]) -> None:
        for k, i in enumerate(sel.tolist()):
            ln = int(msgs.line[i])
            r = reason if isinstance(reason, str) else reason[k]
            rejects.append(Reject(src_rec=ln, reason=r, raw=raw_of(ln)))

    # armouring: any character outside the 64 in the payload
    invalid = (_LUT[big] == 255).view(np.uint8)
    empty = msgs.length <= 0
    # payloads do not overlap: in order of start, [start, end) pairs are monotone, so reduceat is O(bytes)
    by_start = _runs_order(msgs.start)
    idx = np.empty(2 * nmsg, dtype=np.int64)
    idx[0::2] = np.minimum(msgs.start[by_start], big.size - 1)
    idx[1::2] = np.minimum(msgs.start[by_start] + msgs.length[by_start], big.size - 1)
    seg = np.empty(nmsg, dtype=bool)
    seg[by_start] = np.bitwise_or.reduceat(invalid, idx)[0::2].astype(bool)
    badarm = ~empty & seg
    rej(np.flatnonzero(empty), "empty AIS payload")
    rej(np.flatnonzero(badarm), "bad payload armouring: character outside the AIS 6-bit set")
    good = ~empty & ~badarm
    mtype = np.where(good, _LUT[big[np.minimum(msgs.start, big.size - 1)]], 255).astype(np.int64)
    nbits = msgs.length * 6 - msgs.fill

    parts: list[_Rows] = []
    statics: list[tuple[I64, I64, list[str]]] = []
    for t in np.unique(mtype).tolist():
        if t not in POSITION_TYPES and t not in STATIC_TYPES:
            continue  # unsupported types are skipped, not rejected
        sel = np.flatnonzero(mtype == t)
        short = nbits[sel] < NEED_BITS[t]
        if short.any():
            rej(
                sel[short],
                [f"truncated payload: {b} bits, type {t} needs at least {NEED_BITS[t]}" for b in nbits[sel[short]]],
            )
            sel = sel[~short]
        if sel.size == 0:
            continue
        width = -(-NEED_BITS[t] // 6) if t != 24 else 27
        m = _matrix(big, msgs.start[sel], msgs.length[sel], width)
        if t == 5:
            statics.append((sel, codec.field(m, 8, 30), codec.text_field(m, 112, 20)))
            continue
        if t == 24:
            part_a = (codec.field(m, 38, 2) == 0) & (nbits[sel] >= 160)
            if part_a.any():
                ma = m[part_a]
                statics.append((sel[part_a], codec.field(ma, 8, 30), codec.text_field(ma, 40, 20)))
            continue
        rows = _decode_type(t, m, sel)
        parts.append(rows)
        if t == 19:
            statics.append((sel, rows.mmsi, rows.names or []))
    if not parts:
        _update_names(state, statics, msgs.line)
        return _empty_columns()
    return _assemble(parts, statics, msgs, state, rej)


def _update_names(state: _State, statics: list[tuple[I64, I64, list[str]]], line: I64) -> None:
    _names_for(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), statics, line, state)


def _assemble(
    parts: list[_Rows], statics: list[tuple[I64, I64, list[str]]], msgs: _Msgs, state: _State, rej: Any
) -> dict[str, Any]:
    sel = np.concatenate([p.sel for p in parts])
    # message indices are unique: rank them by counting instead of sorting
    present = np.zeros(msgs.line.size, dtype=bool)
    present[sel] = True
    rank = np.cumsum(present) - 1
    order = np.empty(sel.size, dtype=np.int64)
    order[rank[sel]] = np.arange(sel.size)
    sel = sel[order]

    def cat(attr: str) -> Any:
        return np.concatenate([getattr(p, attr) for p in parts])[order]

    mmsi, lon, lat = cat("mmsi"), cat("lon"), cat("lat")
    lon_na, lat_na = cat("lon_na"), cat("lat_na")
    speed, course, heading, status = cat("speed"), cat("course"), cat("heading"), cat("status")
    structure = np.concatenate([np.full(p.sel.size, p.structure) for p in parts])[order]
    mtype_rows = np.concatenate([np.full(p.sel.size, p.mtype, dtype=np.int64) for p in parts])[order]

    line = msgs.line[sel]
    na = lon_na | lat_na
    rej(sel[na], "position not available (lon 181 / lat 91)")
    oor = ~na & ((np.abs(lon) > 180) | (np.abs(lat) > 90))
    rej(sel[oor], "position out of range")
    has_time = msgs.has_time[sel]
    time_us = msgs.time_us[sel]
    ok = ~na & ~oor
    if state.reference_time_us is None:
        rej(sel[ok & ~has_time], NO_TIME)
        ok &= has_time
    else:  # a monotone order in the file, not a clock (see the module docstring)
        time_us = np.where(has_time, time_us, state.reference_time_us + line - 1)

    # names: latest static for the MMSI on an earlier line (this slice), else from earlier slices
    name_ref = _names_for(mmsi, line, statics, msgs.line, state)
    keep = np.flatnonzero(ok)
    k = keep.size
    g = name_ref[keep]
    has = g >= 0
    used, inv = np.unique(g[has], return_inverse=True)
    local = [state.names.names[i] for i in used.tolist()]
    idx = np.full(k, -1, dtype=np.int64)
    idx[has] = inv
    # types 19 and 21 carry their own name
    row_to_keep = np.full(sel.size, -1, dtype=np.int64)
    row_to_keep[keep] = np.arange(k)
    for p in parts:
        if p.names is None:
            continue
        for r, nm in zip(row_to_keep[np.searchsorted(sel, p.sel)].tolist(), p.names, strict=True):
            if nm and r >= 0:
                local.append(nm)
                idx[r] = len(local) - 1
    name_col = pc.take(pa.array(local, pa.string()), pa.array(idx, mask=idx < 0)) if local else pa.nulls(k, pa.string())
    ident = pc.cast(pa.array(mmsi[keep]), pa.string())
    kind_idx = structure[keep].astype(np.int32)
    return {
        "time": time_us[keep],
        "lon": lon[keep],
        "lat": lat[keep],
        "speed_mps": speed[keep],
        "course_deg": course[keep],
        "sensor": pa.DictionaryArray.from_arrays(np.zeros(k, dtype=np.int32), pa.array(["AIS"])),
        "kind": pa.DictionaryArray.from_arrays(kind_idx, pa.array(["vessel", "structure"])),
        "ident": ident,
        "ident_kind": pa.DictionaryArray.from_arrays(np.zeros(k, dtype=np.int32), pa.array(["mmsi"])),
        "name": name_col,
        "src_rec": line[keep],
        "attrs": _attrs(mtype_rows[keep], status[keep], heading[keep]),
    }


def _names_for(mmsi: I64, line: I64, statics: list[tuple[I64, I64, list[str]]], msg_line: I64, state: _State) -> I64:
    """Index into ``state.names.names`` for every row (-1 = no name); then record this slice's statics."""
    index = state.names
    index.compact()
    idx = index.lookup(mmsi)
    s_sel = [(sel, mm, nm) for sel, mm, nm in statics if sel.size]
    if not s_sel:
        return idx
    s_line = np.concatenate([msg_line[sel] for sel, _, _ in s_sel])
    s_mmsi = np.concatenate([mm for _, mm, _ in s_sel])
    s_names: list[str] = [x for _, _, nm in s_sel for x in nm]
    named = np.flatnonzero(np.array([bool(x) for x in s_names], dtype=bool))
    if named.size == 0:
        return idx
    base = len(index.names)
    index.names.extend(s_names[i] for i in named.tolist())
    s_line, s_mmsi = s_line[named], s_mmsi[named]
    s_ref = base + np.arange(named.size, dtype=np.int64)
    rows = np.flatnonzero(np.isin(mmsi, s_mmsi))  # only rows a static of this slice can name
    if rows.size:
        ev_mmsi = np.concatenate([s_mmsi, mmsi[rows]])
        ev_line = np.concatenate([s_line, line[rows]])
        ev_name = np.concatenate([s_ref, np.full(rows.size, -1)])
        ev_row = np.concatenate([np.full(named.size, -1), rows])
        o = np.lexsort((ev_line, ev_mmsi))
        ev_mmsi, ev_name, ev_row = ev_mmsi[o], ev_name[o], ev_row[o]
        pos = np.arange(o.size)
        last_static = np.maximum.accumulate(np.where(ev_name >= 0, pos, -1))
        group_start = np.concatenate([[True], ev_mmsi[1:] != ev_mmsi[:-1]])
        gs = np.maximum.accumulate(np.where(group_start, pos, 0))
        valid = (last_static >= gs) & (ev_row >= 0)
        idx[ev_row[valid]] = ev_name[last_static[valid]]
    lo = np.argsort(s_line, kind="stable")
    index.set(s_mmsi[lo], s_ref[lo])
    return idx


def _attrs(mtype: I64, status: I64, heading: I64) -> pa.Array:
    """Compact JSON per row: ``{"msg":1,"nav":0,"hdg":87}`` (``nav``/``hdg`` only when known).

    Few distinct combinations occur, so each is formatted once and the rows take their text.
    """
    if mtype.size == 0:
        return pa.array([], type=pa.string())
    code = (mtype * 17 + (status + 1)) * 512 + np.minimum(heading, 511)
    uniq, inv = np.unique(code, return_inverse=True)
    texts = []
    for c in uniq.tolist():
        m, rest = divmod(c, 17 * 512)
        nav, hdg = divmod(rest, 512)
        text = f'{{"msg":{m}'
        if nav:
            text += f',"nav":{nav - 1}'
        if hdg < 511:
            text += f',"hdg":{hdg}'
        texts.append(text + "}")
    return pc.take(pa.array(texts, type=pa.string()), pa.array(inv.astype(np.int32)))


def _empty_columns() -> dict[str, Any]:
    def dict_col(values: list[str]) -> pa.Array:
        return pa.DictionaryArray.from_arrays(np.zeros(0, dtype=np.int32), pa.array(values))

    return {
        "time": np.zeros(0, dtype=np.int64),
        "lon": np.zeros(0),
        "lat": np.zeros(0),
        "speed_mps": np.zeros(0, dtype=np.float32),
        "course_deg": np.zeros(0, dtype=np.float32),
        "sensor": dict_col(["AIS"]),
        "kind": dict_col(["vessel", "structure"]),
        "ident": pa.array([], type=pa.string()),
        "ident_kind": dict_col(["mmsi"]),
        "name": pa.array([], type=pa.string()),
        "src_rec": np.zeros(0, dtype=np.int64),
        "attrs": pa.array([], type=pa.string()),
    }


def _empty_batch() -> ParsedBatch:
    return ParsedBatch(columns=_empty_columns())
