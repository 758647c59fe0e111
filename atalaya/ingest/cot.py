"""Cursor-on-Target (CoT) XML events → observations.

Accepts every shape CoT arrives in:

- a file holding one ``<event>``;
- a file of many events, with or without an enclosing root element and with or
  without an XML declaration before each event;
- a raw stream captured from a TAK server TCP socket: events back to back,
  possibly with newlines or junk bytes between them.

The byte stream is cut on ``<event`` / ``</event>`` boundaries (numpy over the
block). Events that repeat a layout learned from an earlier event (the same tags
and attributes in the same order, only the values differ) have their values
sliced out of the buffer for the whole block at once and converted with Arrow
casts (the layout path). Other events are read with compiled regular
expressions, and those the regexes cannot vouch for (entities, comments, CDATA,
unbalanced tags, single-quoted attributes…) are parsed with lxml, whose message
becomes the reject reason when the event is not well-formed. A bad event never
stops the stream: reading resumes at the next ``<event``.

Mapping (one event → one row)::

    time        ← event/@time (ISO 8601; trailing Z, fractional seconds)
    lon, lat    ← point/@lon, point/@lat        (missing/invalid/out of range → reject)
    alt_m       ← point/@hae                    (9999999 = unknown → NaN)
    pos_err_m   ← point/@ce                     (9999999 = unknown → NaN)
    ident       ← event/@uid, ident_kind = "cot_uid"
    name        ← detail/contact/@callsign
    speed_mps   ← detail/track/@speed;  course_deg ← detail/track/@course
    sensor      ← "COT"
    kind        ← from the CoT type atom (see :func:`cot_kind`)
    attrs       ← JSON: {"affiliation": type's 2nd atom (f h n u s j k a p, else null),
                   "type", "how", the other event attributes ("stale", "start", "access"…),
                   "le", "detail": every child of <detail> (attributes, "#text", children;
                   a repeated tag → a list)}, at most MAX_ATTRS_CHARS
    (rejected)  ← |lat| and |lon| < 0.01 with ce unknown or how h-g-i-g-o (no GPS fix)
    src_rec     ← 1-based line number of the ``<event`` tag

The ``__atalaya`` detail extension
----------------------------------
Atalaya's scenario generator (and any producer that knows more than plain CoT
says) may add one element to ``<detail>``::

    <__atalaya sensor="EO" kind="thermal" confidence="0.8" sortie="S-0042" platform="MQ9-07"/>

All attributes are optional. ``sensor`` (a :class:`~atalaya.model.observation.Sensor`
value) replaces ``"COT"``; ``kind`` (an :class:`~atalaya.model.observation.ObjectKind`
value) replaces the kind derived from the CoT type; ``confidence`` in [0, 1] fills
``confidence``; ``sortie`` fills ``sortie_id``; ``platform`` fills ``platform_id``.
Unknown sensor or kind values, or a confidence outside [0, 1], reject the event
(they point at a producer bug, not at the world). Leading double underscores
follow the TAK convention for private detail elements, which TAK clients pass
through untouched.

>>> cot_kind("a-h-A-C-F"), cot_kind("a-u-G-E-V-C"), cot_kind("a-f-S-X"), cot_kind("b-m-p-s-p-i")
('aircraft', 'vehicle', 'vessel', 'unknown')
>>> parse_iso8601_us(["2024-05-01T12:00:00.5Z"])[0].tolist()
[1714564800500000]
>>> parse_iso8601_us([])[0].shape
(0,)
"""

from __future__ import annotations

import codecs
import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from numpy.lib.stride_tricks import sliding_window_view

from atalaya.ingest.base import MAX_LINE_BYTES, ParsedBatch, ReadOptions, Reject, open_source
from atalaya.model.observation import IdentKind, ObjectKind, Sensor

__all__ = ["CotReader", "cot_affiliation", "cot_kind", "parse_float_strings", "parse_iso8601_us"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
U8 = npt.NDArray[np.uint8]

BLOCK_BYTES = 1 << 20
"""Bytes read from the input per step."""

MAX_EVENT_BYTES = MAX_LINE_BYTES
"""An event longer than this is rejected unread (bounded memory on hostile input)."""

UNKNOWN_VALUE = 9_999_999.0
"""CoT's marker for an unknown ``hae``/``ce``/``le``."""

NULL_ISLAND_DEG = 0.01
"""A position closer than this (degrees, in latitude and in longitude) to 0,0 with an unknown ``ce`` or ``how``
``h-g-i-g-o`` is a device without a GPS fix reporting its zeroed default, and is rejected."""

_SENSORS = frozenset(s.value for s in Sensor)
_KINDS = frozenset(k.value for k in ObjectKind)

# ---------------------------------------------------------------------------------------------
# Vectorised value parsing (shared with the track readers)
# ---------------------------------------------------------------------------------------------


def parse_float_strings(values: Sequence[str | None] | pa.Array) -> tuple[F64, BoolArray]:
    """Parse decimal strings to float64; missing → NaN. Returns ``(values, bad)``.

    ``bad`` marks strings that were present but not numbers (their value is NaN).

    >>> v, bad = parse_float_strings(["1.5", None, "x", " 2"])
    >>> v.tolist()[0], bad.tolist()
    (1.5, [False, False, True, False])
    >>> parse_float_strings([])[0].shape
    (0,)
    """
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.bool_)
    arr = values if isinstance(values, pa.Array) else pa.array(values, type=pa.string())
    try:
        out: F64 = arr.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        return out, np.zeros(n, dtype=np.bool_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out = np.full(n, np.nan, dtype=np.float64)
    bad = np.zeros(n, dtype=np.bool_)
    for i, s in enumerate(arr.to_pylist()):
        if s is None:
            continue
        try:
            out[i] = float(s)
        except ValueError:
            bad[i] = True
    return out, bad


def _iso_one(s: str) -> int:
    dt = datetime.fromisoformat(s.strip())
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # CoT and GPX times are UTC; a missing zone means UTC
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_iso8601_us(values: Sequence[str | None] | pa.Array) -> tuple[I64, BoolArray]:
    """Parse ISO 8601 times to int64 µs since the epoch, UTC. Returns ``(us, bad)``.

    Missing or unparseable values are flagged in ``bad`` (their value is 0). Times
    without a zone are taken as UTC. Vectorised (Arrow) for the common case; only a
    batch with an odd value falls back to parsing one by one.

    >>> us, bad = parse_iso8601_us(["1970-01-01T00:00:01Z", "nope", None, "1970-01-01T00:00:00.000002"])
    >>> us.tolist(), bad.tolist()
    ([1000000, 0, 0, 2], [False, True, True, False])
    """
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.bool_)
    arr = values if isinstance(values, pa.Array) else pa.array(values, type=pa.string())
    if arr.null_count == 0:
        try:
            ns = arr.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy()
            return ns // 1000, np.zeros(n, dtype=np.bool_)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    out = np.zeros(n, dtype=np.int64)
    bad = np.zeros(n, dtype=np.bool_)
    for i, s in enumerate(arr.to_pylist()):
        if s is None:
            bad[i] = True
            continue
        try:
            out[i] = _iso_one(s)
        except (ValueError, OverflowError):
            bad[i] = True
    return out, bad


# ---------------------------------------------------------------------------------------------
# CoT type → object kind
# ---------------------------------------------------------------------------------------------

_KIND_CACHE: dict[str, str] = {}


def cot_kind(cot_type: str | None) -> str:
    """Object kind for a CoT type string (2525B-derived atoms).

    ``a-?-A…`` aircraft; ``a-?-S…`` (sea surface) and ``a-?-U…`` (subsurface, e.g.
    semi-submersibles) vessel; ``a-?-G-E-V…`` vehicle; ``a-?-G-U…`` (ground units,
    which in CoT are people on foot or teams) person; ``a-?-G-I…`` (installations)
    structure; everything else, including ``b-m-p…`` map points, unknown.

    >>> cot_kind("a-f-G-U-C"), cot_kind("a-n-G-I"), cot_kind("a-u-G"), cot_kind(None), cot_kind("")
    ('person', 'structure', 'unknown', 'unknown', 'unknown')
    """
    if not cot_type:
        return ObjectKind.UNKNOWN.value
    hit = _KIND_CACHE.get(cot_type)
    if hit is not None:
        return hit
    atoms = cot_type.split("-")
    kind = ObjectKind.UNKNOWN.value
    if len(atoms) >= 3 and atoms[0] == "a":
        dim = atoms[2]
        rest = atoms[3:]
        if dim == "A":
            kind = ObjectKind.AIRCRAFT.value
        elif dim in ("S", "U"):
            kind = ObjectKind.VESSEL.value
        elif dim == "G" and rest:
            if rest[0] == "E" and len(rest) >= 2 and rest[1] == "V":
                kind = ObjectKind.VEHICLE.value
            elif rest[0] == "U":
                kind = ObjectKind.PERSON.value
            elif rest[0] == "I":
                kind = ObjectKind.STRUCTURE.value
    if len(_KIND_CACHE) < 4096:
        _KIND_CACHE[cot_type] = kind
    return kind


# ---------------------------------------------------------------------------------------------
# Byte-stream segmentation
# ---------------------------------------------------------------------------------------------

_EVENT_START = re.compile(rb"<event[\s>/]")
_XML_DECL_ENC = re.compile(rb"<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")


class _Utf8Recoder:
    """Wraps a UTF-16/32 byte stream and serves it as UTF-8 (so the byte splitter applies)."""

    def __init__(self, raw: IO[bytes], encoding: str) -> None:
        self._text = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
        self._pending = b""

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            return self._pending + self._text.read().encode("utf-8")
        while len(self._pending) < size:
            chunk = self._text.read(max(size // 2, 4096))
            if not chunk:
                break
            self._pending += chunk.encode("utf-8")
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


def _detect_encoding(head: bytes) -> tuple[str, bool]:
    """Encoding of the stream from its BOM or XML declaration; ``True`` if it must be re-coded."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32", True
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", True
    if head[:4] == b"<\x00?\x00" or head[:4] == b"<\x00e\x00":
        return "utf-16-le", True
    if head[:4] == b"\x00<\x00?" or head[:4] == b"\x00<\x00e":
        return "utf-16-be", True
    m = _XML_DECL_ENC.search(head[:4096])
    if m:
        name = m.group(1).decode("ascii").lower()
        try:
            codecs.lookup(name)
        except LookupError:
            return "utf-8", False
        return name, False
    return "utf-8", False


@dataclass(frozen=True, kw_only=True)
class _Block:
    """The events cut from one stretch of input."""

    buf: bytes
    """The input the offsets refer to."""
    starts: I64
    """Offset of each event's ``<event`` tag in ``buf``."""
    stops: I64
    """Offset just past each event (after ``</event>``, or where the next event starts when unterminated)."""
    lines: I64
    """1-based line of each event's ``<event`` tag."""
    complete: BoolArray
    """Whether each event ended with ``</event>``."""
    rejects: list[Reject]
    """Events rejected unread (over-long)."""
    nread: int
    """Input bytes consumed."""

    def raw(self, i: int) -> bytes:
        """The bytes of event ``i`` (maybe truncated when the stream was)."""
        return self.buf[int(self.starts[i]) : int(self.stops[i])]


_AFTER_NAME = np.zeros(256, dtype=np.bool_)
_AFTER_NAME[list(b" \t\n\r\x0b\x0c>/")] = True  # what may follow "<event": \s, ">" or "/"


def _tag_offsets(a: U8) -> tuple[I64, I64]:
    """Offsets of every ``<event`` start tag and every ``</event>`` in the bytes ``a`` (vectorised)."""
    lt = np.flatnonzero(a == 60)
    cand = lt[lt + 6 < a.size]
    cand = cand[a[cand + 1] == ord("e")]  # cheap first cut: most tags are not events
    for k, ch in enumerate(b"vent", start=2):
        cand = cand[a[cand + k] == ch]
    starts = cand[_AFTER_NAME[a[cand + 6]]]
    cand = lt[lt + 8 <= a.size]
    cand = cand[a[cand + 1] == ord("/")]
    for k, ch in enumerate(b"event>", start=2):
        cand = cand[a[cand + k] == ch]
    return starts.astype(np.int64, copy=False), cand.astype(np.int64, copy=False)


def _segments(fh: Any, *, block: int = BLOCK_BYTES) -> Iterator[_Block]:
    """Cut the byte stream into events, one :class:`_Block` per input block (vectorised)."""
    buf = b""
    base_line = 1  # line number at buf[0]
    skipping = False  # inside an over-long event: drop bytes until the next <event
    eof = False
    empty_i = np.zeros(0, dtype=np.int64)
    while not eof:
        data = fh.read(block)
        eof = not data
        buf = buf + data if buf else data
        a = np.frombuffer(buf, dtype=np.uint8)
        starts, ends = _tag_offsets(a)
        newlines = np.flatnonzero(a == 10)
        rejects: list[Reject] = []
        if starts.size == 0:
            keep = len(buf) if eof else max(0, len(buf) - 6)
            stops, lines, complete = empty_i, empty_i, np.zeros(0, dtype=np.bool_)
        else:
            skipping = False
            nxt = np.append(starts[1:], len(buf))
            j = np.searchsorted(ends, starts, side="left")
            end = np.where(j < ends.size, ends[np.minimum(j, max(ends.size - 1, 0))] if ends.size else 0, -1)
            complete = (end >= 0) & (end < nxt)
            stops = np.where(complete, end + 8, nxt)
            keep = len(buf) if eof else max(int(stops[-1]), len(buf) - 6)  # a "<eve" may be cut at the end
            if not eof and not complete[-1]:
                if len(buf) - starts[-1] <= MAX_EVENT_BYTES:
                    keep = int(starts[-1])  # the last event continues in the next block
                    starts, stops, complete = starts[:-1], stops[:-1], complete[:-1]
                else:
                    skipping = True
                    keep = max(0, len(buf) - 6)
            lines = base_line + np.searchsorted(newlines, starts, side="left").astype(np.int64)
            too_long = (stops - starts) > MAX_EVENT_BYTES
            if too_long.any():
                for i in np.flatnonzero(too_long).tolist():
                    rejects.append(
                        Reject(
                            src_rec=int(lines[i]),
                            reason=f"event longer than {MAX_EVENT_BYTES} bytes; skipped",
                            raw=Reject.excerpt(buf[starts[i] : starts[i] + 512]),
                        )
                    )
                ok = ~too_long
                starts, stops, complete, lines = starts[ok], stops[ok], complete[ok], lines[ok]
        if skipping:
            keep = max(keep, len(buf) - 6)
        base_line += int(np.searchsorted(newlines, keep, side="left"))
        yield _Block(
            buf=buf, starts=starts, stops=stops, lines=lines, complete=complete, rejects=rejects, nread=len(data)
        )
        buf = buf[keep:]


# ---------------------------------------------------------------------------------------------
# Per-event field extraction
# ---------------------------------------------------------------------------------------------

_EVENT_TAG = re.compile(r"<event\s([^>]*)>")
_POINT_TAG = re.compile(r"<point\s([^>]*)>")
_CONTACT_TAG = re.compile(r"<contact\s([^>]*)>")
_TRACK_TAG = re.compile(r"<track\s([^>]*)>")
_ATALAYA_TAG = re.compile(r"<__atalaya\s([^>]*)>")
_ATTR = re.compile(r'([A-Za-z_][\w.:-]*)\s*=\s*"([^"]*)"')

# (time, lat, lon, hae, ce, speed, course, uid, type, how, callsign,
#  x_sensor, x_kind, x_confidence, x_sortie, x_platform, tail)
_Fields = tuple[
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
]


class _NeedsParserError(Exception):
    """The regex fast path cannot vouch for this event."""


_VALUE_WS = r"\r\n|[\t\n\r]"
_VALUE_WS_RE = re.compile(_VALUE_WS)


def _attrs(tag_body: str) -> dict[str, str]:
    pairs = _ATTR.findall(tag_body)
    if tag_body.count("=") != len(pairs):
        raise _NeedsParserError
    out = dict(pairs)
    if "\n" in tag_body or "\t" in tag_body or "\r" in tag_body:  # XML attribute-value normalisation
        out = {k: _VALUE_WS_RE.sub(" ", v) for k, v in out.items()}
    return out


_NO_ATTRS: dict[str, str] = {}


def _fast_fields(s: str) -> _Fields | None:
    """Fields of an event via regexes; ``None`` if the event has no ``<point>``."""
    if "&" in s or "<!" in s or "<?" in s:
        raise _NeedsParserError
    n_lt = s.count("<")
    if n_lt != s.count(">") or n_lt != 2 * s.count("</") + s.count("/>"):
        raise _NeedsParserError
    m = _EVENT_TAG.match(s)
    if m is None:
        raise _NeedsParserError
    ev = _attrs(m.group(1))
    pm = _POINT_TAG.search(s, m.end())
    if pm is None:
        return None
    pt = _attrs(pm.group(1))
    callsign = speed = course = None
    x = _NO_ATTRS
    if "<detail" in s:
        cm = _CONTACT_TAG.search(s)
        if cm is not None:
            callsign = _attrs(cm.group(1)).get("callsign")
        tm = _TRACK_TAG.search(s)
        if tm is not None:
            tr = _attrs(tm.group(1))
            speed, course = tr.get("speed"), tr.get("course")
        if "<__atalaya" in s:
            am = _ATALAYA_TAG.search(s)
            if am is not None:
                x = _attrs(am.group(1))
    return (
        ev.get("time"),
        pt.get("lat"),
        pt.get("lon"),
        pt.get("hae"),
        pt.get("ce"),
        speed,
        course,
        ev.get("uid"),
        ev.get("type"),
        ev.get("how"),
        callsign,
        x.get("sensor"),
        x.get("kind"),
        x.get("confidence"),
        x.get("sortie"),
        x.get("platform"),
        _tail_of_text(s),
    )


def _tail_of_text(text: str) -> str:
    """:func:`_tail_json` of an event's text; :class:`_NeedsParserError` when lxml does not accept it."""
    from lxml import etree

    try:
        return _tail_json(_parse_xml(text))
    except (etree.XMLSyntaxError, ValueError) as e:
        raise _NeedsParserError from e


_TRAILING_JUNK_TEXT = re.compile(r"(?:\s|<\?xml[^>]*\?>)+\Z")
_LINE_REF = re.compile(r"\bline (\d+)")


def _parse_xml(text: str) -> Any:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    return etree.fromstring(_TRAILING_JUNK_TEXT.sub("", text), parser)


def _xml_fields(text: str) -> _Fields | None:
    """Fields of an event via lxml (raises ``etree.XMLSyntaxError`` when not well-formed)."""
    ev = _parse_xml(text)
    if ev.tag != "event":
        return None
    pt = ev.find("point")
    if pt is None:
        return None
    det = ev.find("detail")
    contact = det.find("contact") if det is not None else None
    track = det.find("track") if det is not None else None
    x = det.find("__atalaya") if det is not None else None
    xg = x.get if x is not None else (lambda _k: None)
    return (
        ev.get("time"),
        pt.get("lat"),
        pt.get("lon"),
        pt.get("hae"),
        pt.get("ce"),
        track.get("speed") if track is not None else None,
        track.get("course") if track is not None else None,
        ev.get("uid"),
        ev.get("type"),
        ev.get("how"),
        contact.get("callsign") if contact is not None else None,
        xg("sensor"),
        xg("kind"),
        xg("confidence"),
        xg("sortie"),
        xg("platform"),
        _tail_json(ev),
    )


MAX_ATTRS_CHARS = 64 * 1024
"""Longest ``attrs`` JSON kept for one event; past it ``detail`` children are dropped, last first, and named in
``"truncated"`` (a base64 image or a long chat log must not swell the lake; the event itself is bounded by
:attr:`~atalaya.ingest.base.ReaderLimits.max_line_bytes`)."""
MAX_DETAIL_DEPTH = 32
"""``detail`` elements nested deeper than this are not kept in ``attrs`` (the XML parser's own limit is 256)."""
_EVENT_COLUMNS = frozenset(("version", "uid", "time", "type", "how"))  # columns, or the head of attrs


def _element_dict(el: Any, depth: int) -> dict[str, Any]:
    """An element as a dict: its attributes, ``"#text"`` for its text, its children by tag (a list when repeated)."""
    out: dict[str, Any] = dict(el.attrib)
    text = (el.text or "").strip()
    if text:
        out["#text"] = text
    if depth >= MAX_DETAIL_DEPTH:
        return out
    for ch in el:
        tag = ch.tag
        if not isinstance(tag, str):  # comments, processing instructions
            continue
        v = _element_dict(ch, depth + 1)
        prev = out.get(tag)
        if prev is None:
            out[tag] = v
        elif isinstance(prev, list):
            prev.append(v)
        else:
            out[tag] = [prev, v]
    return out


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _tail_json(ev: Any) -> str:
    """The rest of an event's ``attrs`` JSON after the head (``{"affiliation":…,"type":…,"how":…``).

    Event attributes without a column of their own (``stale``, ``start``, ``access``, ``qos``…), the point's
    ``le``, and ``detail`` whole (:func:`_element_dict`), capped at :data:`MAX_ATTRS_CHARS`.
    """
    extra: dict[str, Any] = {k: v for k, v in ev.attrib.items() if k not in _EVENT_COLUMNS}
    pt = ev.find("point")
    if pt is not None and pt.get("le") is not None:
        extra["le"] = pt.get("le")
    det = ev.find("detail")
    if det is not None:
        extra["detail"] = _element_dict(det, 0)
    if not extra:
        return "}"
    body = _dumps(extra)
    if len(body) > MAX_ATTRS_CHARS:
        detail: dict[str, Any] = extra.get("detail") or {}
        dropped: list[str] = []
        keys = [k for k in detail if k != "#text"]
        while len(body) > MAX_ATTRS_CHARS and keys:
            k = keys.pop()
            del detail[k]
            dropped.append(k)
            extra["truncated"] = dropped
            body = _dumps(extra)
        if len(body) > MAX_ATTRS_CHARS:
            extra = {"truncated": ["*"]}
            body = _dumps(extra)
    return "," + body[1:]


def _syntax_reject(line: int, raw: bytes, text: str) -> Reject:
    """A reject carrying lxml's message, its line references made absolute."""
    from lxml import etree

    try:
        _parse_xml(text)
    except etree.XMLSyntaxError as e:
        msg = str(getattr(e, "msg", None) or e)
        msg = _LINE_REF.sub(lambda m: f"line {int(m.group(1)) + line - 1}", msg)
        return Reject(src_rec=line, reason=f"malformed XML: {msg}", raw=Reject.excerpt(raw))
    return Reject(
        src_rec=line,
        reason="unterminated event (no </event> before the next event or end of input)",
        raw=Reject.excerpt(raw),
    )


# ---------------------------------------------------------------------------------------------
# Columns for one block
# ---------------------------------------------------------------------------------------------

_ATTRS_CACHE: dict[tuple[str | None, str | None], str] = {}


AFFILIATIONS = frozenset("fhnusjkap")
"""CoT affiliation atoms (the second atom of an ``a-…`` type): friend, hostile, neutral, unknown, suspect, joker,
faker, assumed friend, pending."""
CONTEXT_AFFILIATIONS = frozenset("fna")
"""Affiliations that are context, never suspects (friend, neutral, assumed friend)."""


def cot_affiliation(cot_type: str | None) -> str | None:
    """The affiliation atom of a CoT type (``a-f-G…`` → ``"f"``); ``None`` for other types.

    >>> cot_affiliation("a-f-G-U-C-I"), cot_affiliation("a-h-A"), cot_affiliation("b-m-p-s-p-i"), cot_affiliation("a")
    ('f', 'h', None, None)
    """
    if not cot_type or len(cot_type) < 3 or not cot_type.startswith("a-"):
        return None
    atom = cot_type[2]
    return atom if atom in AFFILIATIONS and (len(cot_type) == 3 or cot_type[3] == "-") else None


def _attrs_json(cot_type: str | None, how: str | None) -> str:
    """The head of an event's ``attrs`` JSON (without the closing brace): affiliation first, then type and how."""
    key = (cot_type, how)
    hit = _ATTRS_CACHE.get(key)
    if hit is None:
        hit = _dumps({"affiliation": cot_affiliation(cot_type), "type": cot_type, "how": how})[:-1]
        if len(_ATTRS_CACHE) < 4096:
            _ATTRS_CACHE[key] = hit
    return hit


_COT = Sensor.COT.value
_COT_UID = IdentKind.COT_UID.value
_UNKNOWN = ObjectKind.UNKNOWN.value


def _kinds_of(ctype: pa.Array) -> pa.Array:
    """:func:`cot_kind` of every type string, computed once per distinct type."""
    enc = pc.dictionary_encode(ctype)
    kinds = pa.array([cot_kind(t) for t in enc.dictionary.to_pylist()] + [_UNKNOWN], type=pa.string())
    return kinds.take(enc.indices.fill_null(len(enc.dictionary)))


def _attrs_of(ctype: pa.Array, how: pa.Array, tail: pa.Array) -> pa.Array:
    """The ``attrs`` JSON of every event: the head rendered once per distinct (type, how) pair, then the tail."""
    te, he = pc.dictionary_encode(ctype), pc.dictionary_encode(how)
    nt, nh = len(te.dictionary), len(he.dictionary)
    ti = te.indices.fill_null(nt).to_numpy().astype(np.int64)
    hi = he.indices.fill_null(nh).to_numpy().astype(np.int64)
    uniq, inverse = np.unique(ti * (nh + 1) + hi, return_inverse=True)
    tv: list[str | None] = [*te.dictionary.to_pylist(), None]
    hv: list[str | None] = [*he.dictionary.to_pylist(), None]
    texts = [_attrs_json(tv[k // (nh + 1)], hv[k % (nh + 1)]) for k in uniq.tolist()]
    head = pa.array(texts, type=pa.string()).take(pa.array(inverse.reshape(-1)))
    out: pa.Array = pc.binary_join_element_wise(head, tail, "", null_handling="replace", null_replacement="}")
    return out


def _unknown_to_nan(v: F64) -> F64:
    v[v >= UNKNOWN_VALUE] = np.nan
    return v


_FIELDS = (
    "time",
    "lat",
    "lon",
    "hae",
    "ce",
    "speed",
    "course",
    "uid",
    "type",
    "how",
    "callsign",
    "x_sensor",
    "x_kind",
    "x_confidence",
    "x_sortie",
    "x_platform",
    "tail",
)
_EVENT_FIELDS = (("time", b"time"), ("uid", b"uid"), ("type", b"type"), ("how", b"how"))
_POINT_FIELDS = (("lat", b"lat"), ("lon", b"lon"), ("hae", b"hae"), ("ce", b"ce"))
_DETAIL_FIELDS = (
    ("callsign", b"contact", b"callsign"),
    ("speed", b"track", b"speed"),
    ("course", b"track", b"course"),
    ("x_sensor", b"__atalaya", b"sensor"),
    ("x_kind", b"__atalaya", b"kind"),
    ("x_confidence", b"__atalaya", b"confidence"),
    ("x_sortie", b"__atalaya", b"sortie"),
    ("x_platform", b"__atalaya", b"platform"),
)


def _aligned(tag: bytes, attr: bytes) -> re.Pattern[bytes]:
    # one match per <tag …>, with the attribute's value or b"" when the tag lacks it
    return re.compile(rb"<" + tag + rb"(?=\s)(?:[^>]*?\s" + attr + rb'="([^"]*)")?')


_ALIGNED = {name: _aligned(b"event", attr) for name, attr in _EVENT_FIELDS} | {
    name: _aligned(b"point", attr) for name, attr in _POINT_FIELDS
}
_LOCATED = {
    name: (tag, re.compile(rb"<" + tag + rb"(?=\s)[^>]*?\s" + attr + rb'="([^"]*)"'))
    for name, tag, attr in _DETAIL_FIELDS
}
_WS = frozenset(b" \t\r\n")


def _structurally_simple(raw: bytes) -> bool:
    """Whether the regex fast path can vouch for an event (else lxml reads it)."""
    n_lt = raw.count(b"<")
    return (
        raw[6] in _WS
        and n_lt == raw.count(b">")
        and n_lt == 2 * raw.count(b"</") + raw.count(b"/>")
        and raw.count(b"<point") == 1
        and raw.count(b"=") == raw.count(b'="')
        and b"&" not in raw
        and b"<!" not in raw
        and b"<?" not in raw
    )


def _nullify_empty(arr: pa.Array) -> pa.Array:
    empty = pc.equal(pc.binary_length(arr), 0)
    return pc.if_else(empty, pa.scalar(None, arr.type), arr)


def _fast_block(raws: list[bytes]) -> dict[str, pa.Array] | None:
    """Field arrays for structurally simple UTF-8 events via whole-block regexes; ``None`` to fall back."""
    n = len(raws)
    blob = b"".join(raws)
    out: dict[str, pa.Array] = {}
    for name, rx in _ALIGNED.items():
        vals = rx.findall(blob)
        if len(vals) != n:
            return None
        out[name] = pa.array(vals, type=pa.binary())
    offsets: I64 | None = None
    for name, (tag, rx) in _LOCATED.items():
        if b"<" + tag not in blob:
            out[name] = pa.nulls(n, type=pa.binary())
            continue
        if offsets is None:
            lens = np.fromiter((len(r) for r in raws), dtype=np.int64, count=n)
            offsets = np.cumsum(lens) - lens
        pos: list[int] = []
        vals = []
        for m in rx.finditer(blob):
            pos.append(m.start())
            vals.append(m.group(1))
        col: list[bytes | None] = [None] * n
        for i, v in zip((np.searchsorted(offsets, pos, side="right") - 1).tolist(), vals, strict=True):
            col[i] = v
        out[name] = pa.array(col, type=pa.binary())
    try:
        strings = {name: _nullify_empty(a).cast(pa.string()) for name, a in out.items()}
        tails = [_tail_of_text(r.decode("utf-8")) for r in raws]
    except (pa.ArrowInvalid, UnicodeDecodeError, _NeedsParserError):  # let the per-event path say where and why
        return None
    # XML attribute-value normalisation: a tab, newline or CR (CR LF counts once) reads as a space
    cols = {name: pc.replace_substring_regex(a, _VALUE_WS, " ") for name, a in strings.items()}
    cols["tail"] = pa.array(tails, type=pa.string())
    return cols


# ---------------------------------------------------------------------------------------------
# Layout path: events that repeat a learned attribute layout, read with array operations
# ---------------------------------------------------------------------------------------------
#
# Producers write every event of a feed the same way: the same tags and attributes in the same
# order, only the quoted values differ. Cut an event at its double quotes and the text between
# values (the *separators*: ``<event version=``, `` uid=``, ``><point lat=``…) is its layout. The
# first event of a layout is parsed once by lxml with every value replaced by a placeholder,
# which says which value is ``event/@time``, ``point/@lat``, ``detail/contact/@callsign``…
# (exactly what the lxml path would read). Every later event whose separators are byte-identical
# and whose values hold no ``<``, ``&`` or control character has the same tree, so its values are
# sliced out of the buffer for the whole block at once. Other events take the paths above.

_LAYOUT_SPECIAL = np.zeros(256, dtype=np.bool_)
_LAYOUT_SPECIAL[:32] = True  # control characters: lxml normalises tabs and newlines in values
_LAYOUT_SPECIAL[[ord("<"), ord("&")]] = True  # markup or an entity inside a value: not a plain value
_LAYOUT_PATHS: dict[str, tuple[tuple[str, ...], str]] = {
    "time": ((), "time"),
    "uid": ((), "uid"),
    "type": ((), "type"),
    "how": ((), "how"),
    "lat": (("point",), "lat"),
    "lon": (("point",), "lon"),
    "hae": (("point",), "hae"),
    "ce": (("point",), "ce"),
    "callsign": (("detail", "contact"), "callsign"),
    "speed": (("detail", "track"), "speed"),
    "course": (("detail", "track"), "course"),
    "x_sensor": (("detail", "__atalaya"), "sensor"),
    "x_kind": (("detail", "__atalaya"), "kind"),
    "x_confidence": (("detail", "__atalaya"), "confidence"),
    "x_sortie": (("detail", "__atalaya"), "sortie"),
    "x_platform": (("detail", "__atalaya"), "platform"),
}
MAX_LAYOUTS_PER_BLOCK = 8
"""Layouts tried per block before the remaining events take the regex path."""


@dataclass(frozen=True, kw_only=True)
class _Layout:
    """What one event layout says about where each field's value is."""

    seps: U8
    """The separators, concatenated."""
    sep_lens: I64
    """Length of each separator (one more than the values)."""
    n_special: int
    """``<``, ``&`` and control bytes in the separators (values must add none)."""
    value_of: dict[str, int]
    """Field name → index of its value (fields the layout lacks are absent)."""
    tail_parts: tuple[str, ...]
    """The ``attrs`` tail (:func:`_tail_json`) cut around its values: the text before each value, then the end."""
    tail_values: tuple[int, ...]
    """Index of each value in the tail, in order (JSON-escaped when filled in)."""


_PLACEHOLDER = re.compile(r'(?<=")#(\d+)(?=")')
_LAYOUTS: dict[tuple[bytes, ...], _Layout | None] = {}
_LAYOUT_CACHE_MAX = 256


def _learn_layout(seps: list[bytes]) -> _Layout | None:
    """The layout of an event cut into ``seps``; ``None`` if the lxml tree of its skeleton does not qualify."""
    from lxml import etree

    skeleton = b"".join(sep + b'"#%d"' % i for i, sep in enumerate(seps[:-1])) + seps[-1]
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        ev: Any = etree.fromstring(skeleton, parser)
    except (etree.XMLSyntaxError, ValueError):
        return None
    if ev.tag != "event" or ev.find("point") is None:
        return None  # the per-event path says why
    seen: list[str] = []
    for node in ev.iter(tag=etree.Element):
        seen.extend(node.attrib.values())
    if sorted(seen) != sorted(f"#{i}" for i in range(len(seps) - 1)):
        return None  # a quote outside a double-quoted attribute value (text, comment, single quotes)
    value_of: dict[str, int] = {}
    for name, (path, attr) in _LAYOUT_PATHS.items():
        el: Any = ev
        for tag in path:
            el = el.find(tag) if el is not None else None
        v = el.get(attr) if el is not None else None
        if v is not None:
            value_of[name] = int(v[1:])
    tail = _tail_json(ev)
    tail_values = tuple(int(m) for m in _PLACEHOLDER.findall(tail))
    if len(set(tail_values)) != len(tail_values):
        return None  # an element's text looks like a placeholder: the per-event paths read it
    tail_parts = tuple(_PLACEHOLDER.split(tail)[0::2])
    joined = b"".join(seps)
    sep_lens = np.array([len(s) for s in seps], dtype=np.int64)
    return _Layout(
        seps=np.frombuffer(joined, dtype=np.uint8),
        sep_lens=sep_lens,
        n_special=int(_LAYOUT_SPECIAL[np.frombuffer(joined, dtype=np.uint8)].sum()),
        value_of=value_of,
        tail_parts=tail_parts,
        tail_values=tail_values,
    )


def _layout_of(buf: bytes, start: int, quotes: I64, stop: int) -> _Layout | None:
    bounds = [start, *(quotes + np.tile([0, 1], quotes.size // 2)).tolist(), stop]
    seps = [buf[bounds[k] : bounds[k + 1]] for k in range(0, len(bounds), 2)]
    key = tuple(seps)
    if key in _LAYOUTS:
        return _LAYOUTS[key]
    layout = _learn_layout(seps)
    if len(_LAYOUTS) < _LAYOUT_CACHE_MAX:
        _LAYOUTS[key] = layout
    return layout


def _separators_match(a: U8, sep_lo: I64, layout: _Layout) -> BoolArray:
    """Whether each row's separators (starting at ``sep_lo``) are byte for byte the layout's."""
    n, width = sep_lo.shape[0], int(layout.seps.size)
    got = np.empty((n, width), dtype=np.uint8)
    at = 0
    for j, length in enumerate(layout.sep_lens.tolist()):
        if length:
            got[:, at : at + length] = sliding_window_view(a, length)[sep_lo[:, j]]  # a row copy per event
        at += length
    if width == 0:
        return np.ones(n, dtype=np.bool_)
    whole = np.dtype((np.void, width))  # compare each row as one opaque value
    match: BoolArray = got.view(whole).ravel() == layout.seps.view(whole)[0]
    return match


def _slice_strings(a: U8, lo: I64, hi: I64) -> pa.Array:
    """``a[lo[i]:hi[i]]`` for every ``i`` as one Arrow string array (empty → null); ``ArrowInvalid`` if not UTF-8."""
    n = lo.size
    lens = hi - lo
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    total = int(offsets[-1])
    data = a[np.repeat(lo - offsets[:-1], lens) + np.arange(total, dtype=np.int64)]
    valid = lens > 0
    arr = pa.Array.from_buffers(
        pa.large_string(),
        n,
        [pa.py_buffer(np.packbits(valid, bitorder="little")), pa.py_buffer(offsets), pa.py_buffer(data)],
        null_count=n - int(np.count_nonzero(valid)),
    )
    arr.validate(full=True)
    return arr.cast(pa.string())


def _fill_tail(a: U8, q: I64, layout: _Layout) -> pa.Array:
    """The ``attrs`` tails of the rows whose value quotes are ``q``, from the layout's template."""
    n = q.shape[0]
    if not layout.tail_values:
        return pa.repeat(pa.scalar(layout.tail_parts[0]), n)
    args: list[Any] = []
    for part, v in zip(layout.tail_parts, layout.tail_values, strict=False):
        val = _slice_strings(a, q[:, 2 * v] + 1, q[:, 2 * v + 1])
        args += [part, pc.replace_substring(val, "\\", "\\\\")]  # values hold no quote or control byte
    args.append(layout.tail_parts[-1])
    out: pa.Array = pc.binary_join_element_wise(*args, "", null_handling="replace", null_replacement="")
    return out


def _layout_rows(blk: _Block) -> tuple[list[tuple[I64, dict[str, pa.Array]]], BoolArray]:
    """Fields of the events that repeat a learned layout: ``[(event indices, fields)]`` and the handled mask."""
    n_ev = blk.starts.size
    done = np.zeros(n_ev, dtype=np.bool_)
    parts: list[tuple[I64, dict[str, pa.Array]]] = []
    a = np.frombuffer(blk.buf, dtype=np.uint8)
    quotes = np.flatnonzero(a == 34)
    q_lo = np.searchsorted(quotes, blk.starts)
    n_q = np.searchsorted(quotes, blk.stops) - q_lo
    special = np.flatnonzero((a < 32) | (a == ord("<")) | (a == ord("&")))  # as _LAYOUT_SPECIAL
    n_special = np.searchsorted(special, blk.stops) - np.searchsorted(special, blk.starts)
    open_ = blk.complete & (n_q > 0) & (n_q % 2 == 0)
    for _ in range(MAX_LAYOUTS_PER_BLOCK):
        cand = np.flatnonzero(open_)
        if cand.size == 0:
            break
        first = int(cand[0])
        k = int(n_q[first])
        layout = _layout_of(
            blk.buf, int(blk.starts[first]), quotes[q_lo[first] : q_lo[first] + k], int(blk.stops[first])
        )
        open_[first] = False  # decided now (its own values may disqualify it, e.g. an entity)
        if layout is None:
            continue
        same = cand[n_q[cand] == k]
        same = same[n_special[same] == layout.n_special]
        q = quotes[q_lo[same][:, None] + np.arange(k)]
        sep_lo = np.concatenate([blk.starts[same][:, None], q[:, 1::2] + 1], axis=1)
        sep_hi = np.concatenate([q[:, 0::2], blk.stops[same][:, None]], axis=1)
        fit = ((sep_hi - sep_lo) == layout.sep_lens).all(axis=1)
        same, q, sep_lo = same[fit], q[fit], sep_lo[fit]
        fit = _separators_match(a, sep_lo, layout)
        same, q = same[fit], q[fit]
        if same.size == 0:
            continue
        open_[same] = False
        try:
            fields = {
                name: _slice_strings(a, q[:, 2 * v] + 1, q[:, 2 * v + 1])
                if (v := layout.value_of.get(name)) is not None
                else pa.nulls(same.size, pa.string())
                for name in _FIELDS
                if name != "tail"
            }
            fields["tail"] = _fill_tail(a, q, layout)
            long = np.flatnonzero(
                pc.greater(pc.binary_length(fields["tail"]), MAX_ATTRS_CHARS).to_numpy(zero_copy_only=False)
            )
            if long.size:  # the template does not cap: read those few again
                tails = fields["tail"].to_pylist()
                for i in long.tolist():
                    tails[i] = _tail_of_text(blk.raw(int(same[i])).decode("utf-8"))
                fields["tail"] = pa.array(tails, type=pa.string())
        except (pa.ArrowInvalid, _NeedsParserError):  # not valid UTF-8: the per-event path says where
            continue
        parts.append((same, fields))
        done[same] = True
    return parts, done


def _slow_rows(blk: _Block, idx: list[int], encoding: str) -> tuple[list[int], list[_Fields], list[Reject]]:
    """Per-event path for events ``idx``: regex on the decoded event, lxml where the regexes cannot vouch."""
    from lxml import etree

    out_idx: list[int] = []
    rows: list[_Fields] = []
    rejects: list[Reject] = []
    for i in idx:
        line, raw, whole = int(blk.lines[i]), blk.raw(i), bool(blk.complete[i])
        fields: _Fields | None
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as e:
            rejects.append(
                Reject(
                    src_rec=line,
                    reason=f"bytes not valid {encoding} at offset {e.start} of the event "
                    "(declare the encoding in the XML declaration or re-encode as UTF-8)",
                    raw=Reject.excerpt(raw),
                )
            )
            continue
        try:
            if not whole:
                raise _NeedsParserError
            fields = _fast_fields(text)
        except _NeedsParserError:
            try:
                fields = _xml_fields(text)
            except etree.XMLSyntaxError:
                rejects.append(_syntax_reject(line, raw, text))
                continue
            except (LookupError, ValueError) as e:
                rejects.append(Reject(src_rec=line, reason=f"cannot parse event: {e}", raw=Reject.excerpt(raw)))
                continue
        if fields is None:
            rejects.append(Reject(src_rec=line, reason="event has no <point>", raw=Reject.excerpt(raw)))
            continue
        out_idx.append(i)
        rows.append(fields)
    return out_idx, rows, rejects


def _block_columns(blk: _Block, encoding: str) -> tuple[dict[str, Any], list[Reject]]:
    """Parse one block's events into observation columns (vectorised conversions).

    Three paths, fastest first: events repeating a learned layout (array slicing), other
    structurally simple events (block-wide regexes), and the rest one by one (regex or lxml).
    """
    parts: list[tuple[I64, dict[str, pa.Array]]] = []
    rest = np.arange(blk.starts.size)
    utf8 = codecs.lookup(encoding).name == "utf-8"
    if utf8:
        parts, done = _layout_rows(blk)
        rest = np.flatnonzero(~done)
    rest_list = rest.tolist()
    complete = blk.complete.tolist()
    fast_idx = [i for i in rest_list if complete[i] and _structurally_simple(blk.raw(i))] if utf8 else []
    if fast_idx:
        fields = _fast_block([blk.raw(i) for i in fast_idx])
        if fields is not None:
            parts.append((np.asarray(fast_idx, dtype=np.int64), fields))
        else:
            fast_idx = []
    fast_set = set(fast_idx)
    slow_idx = [i for i in rest_list if i not in fast_set]
    slow_out, slow_rows, rejects = _slow_rows(blk, slow_idx, encoding)
    if slow_rows:
        slow_cols = list(zip(*slow_rows, strict=True))
        slow_arrays = {name: pa.array(slow_cols[k], type=pa.string()) for k, name in enumerate(_FIELDS)}
        parts.append((np.asarray(slow_out, dtype=np.int64), slow_arrays))
    if not parts:
        return {}, rejects
    rows, fields = parts[0]
    if len(parts) > 1:
        rows = np.concatenate([p[0] for p in parts])
        order = pa.array(np.argsort(rows, kind="stable"))
        rows = rows[order.to_numpy()]
        fields = {name: pa.concat_arrays([p[1][name] for p in parts]).take(order) for name in _FIELDS}
    return _to_columns(blk, rows, fields, rejects)


def _to_columns(
    blk: _Block, rows: I64, f: dict[str, pa.Array], rejects: list[Reject]
) -> tuple[dict[str, Any], list[Reject]]:
    """Observation columns for events ``rows`` of ``blk`` from their field strings; bad values become rejects."""
    lines = blk.lines[rows]
    n = len(lines)
    time_us, t_bad = parse_iso8601_us(f["time"])
    lat, lat_bad = parse_float_strings(f["lat"])
    lon, lon_bad = parse_float_strings(f["lon"])
    hae, _ = parse_float_strings(f["hae"])
    ce, _ = parse_float_strings(f["ce"])
    speed, _ = parse_float_strings(f["speed"])
    course, _ = parse_float_strings(f["course"])
    conf, conf_bad = parse_float_strings(f["x_confidence"])

    with np.errstate(invalid="ignore"):
        lat_oor = ~lat_bad & ~((lat >= -90.0) & (lat <= 90.0))
        lon_oor = ~lon_bad & ~((lon >= -180.0) & (lon <= 180.0))
        conf_oor = ~conf_bad & ~np.isnan(conf) & ~((conf >= 0.0) & (conf <= 1.0))
        no_fix = (np.abs(lat) < NULL_ISLAND_DEG) & (np.abs(lon) < NULL_ISLAND_DEG)
    if no_fix.any():
        gps_none = pc.fill_null(pc.starts_with(f["how"], "h-g-i-g-o"), False).to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):
            no_fix &= np.isnan(ce) | (ce >= UNKNOWN_VALUE) | gps_none
    problems = t_bad | lat_bad | lon_bad | lat_oor | lon_oor | conf_bad | conf_oor | no_fix
    reasons: dict[int, str] = {}
    if problems.any():
        t_s, lat_s, lon_s, xc = (f[k].to_pylist() for k in ("time", "lat", "lon", "x_confidence"))
        for i in np.flatnonzero(problems).tolist():
            if t_s[i] is None:
                reasons[i] = "event has no time attribute"
            elif t_bad[i]:
                reasons[i] = f"bad time {t_s[i]!r} (want ISO 8601, e.g. 2024-05-01T12:00:00.000Z)"
            elif lat_s[i] is None or lon_s[i] is None:
                reasons[i] = "point has no lat/lon"
            elif lat_bad[i] or lon_bad[i]:
                reasons[i] = f"bad coordinates lat={lat_s[i]!r} lon={lon_s[i]!r}"
            elif lat_oor[i]:
                reasons[i] = f"lat {lat_s[i]} outside [-90, 90]"
            elif lon_oor[i]:
                reasons[i] = f"lon {lon_s[i]} outside [-180, 180]"
            elif no_fix[i]:
                reasons[i] = (
                    f"position lat={lat_s[i]} lon={lon_s[i]} within {NULL_ISLAND_DEG} deg of 0,0 without a fix "
                    "(ce unknown or how h-g-i-g-o): a device with no GPS position"
                )
            else:
                reasons[i] = f"__atalaya confidence {xc[i]!r} is not a number in [0, 1]"

    kind = _kinds_of(f["type"])
    sensor = pa.repeat(pa.scalar(_COT), n)
    if f["x_sensor"].null_count < n or f["x_kind"].null_count < n:
        xs: list[str | None] = f["x_sensor"].to_pylist()
        xk: list[str | None] = f["x_kind"].to_pylist()
        sensor_l: list[str] = sensor.to_pylist()
        kind_l: list[str] = kind.to_pylist()
        for i in range(n):
            s, k = xs[i], xk[i]
            if s is not None:
                su = s.upper()
                if su in _SENSORS:
                    sensor_l[i] = su
                elif i not in reasons:
                    reasons[i] = f"__atalaya sensor {s!r} unknown (use one of {', '.join(sorted(_SENSORS))})"
            if k is not None:
                kl = k.lower()
                if kl in _KINDS:
                    kind_l[i] = kl
                elif i not in reasons:
                    reasons[i] = f"__atalaya kind {k!r} unknown (use one of {', '.join(sorted(_KINDS))})"
        sensor, kind = pa.array(sensor_l, pa.string()), pa.array(kind_l, pa.string())

    line_list = lines.tolist()
    if reasons:
        for i in sorted(reasons):
            rejects.append(Reject(src_rec=line_list[i], reason=reasons[i], raw=Reject.excerpt(blk.raw(int(rows[i])))))
        rejects.sort(key=lambda r: r.src_rec)
        ok = np.ones(n, dtype=np.bool_)
        ok[list(reasons)] = False
        idx = np.flatnonzero(ok)
        take = pa.array(idx)
        f = {k: a.take(take) for k, a in f.items()}
        kind, sensor = kind.take(take), sensor.take(take)
    else:
        idx = np.arange(n)
    uid = f["uid"]
    columns: dict[str, Any] = {
        "time": time_us[idx],
        "lon": lon[idx],
        "lat": lat[idx],
        "alt_m": _unknown_to_nan(hae[idx]).astype(np.float32),
        "pos_err_m": _unknown_to_nan(ce[idx]).astype(np.float32),
        "speed_mps": speed[idx].astype(np.float32),
        "course_deg": course[idx].astype(np.float32),
        "sensor": sensor,
        "kind": kind,
        "ident": uid,
        "ident_kind": pc.if_else(pc.is_null(uid), pa.scalar(None, pa.string()), pa.scalar(_COT_UID)),
        "name": f["callsign"],
        "confidence": conf[idx].astype(np.float32),
        "platform_id": f["x_platform"],
        "sortie_id": f["x_sortie"],
        "src_rec": lines[idx],
        "attrs": _attrs_of(f["type"], f["how"], f["tail"]),
    }
    return columns, rejects


def _concat(parts: list[dict[str, Any]]) -> dict[str, Any]:
    if len(parts) == 1:
        return parts[0]
    out: dict[str, Any] = {}
    for name, first in parts[0].items():
        if isinstance(first, np.ndarray):
            out[name] = np.concatenate([p[name] for p in parts])
        elif isinstance(first, pa.Array):
            out[name] = pa.concat_arrays([p[name] for p in parts])
        else:
            merged: list[Any] = []
            for p in parts:
                merged.extend(p[name])
            out[name] = merged
    return out


# ---------------------------------------------------------------------------------------------
# The reader
# ---------------------------------------------------------------------------------------------


class CotReader:
    """Reader for Cursor-on-Target XML files and captured TAK streams (format ``cot``)."""

    name = "cot"
    extensions: tuple[str, ...] = (".cot", ".xml")

    def sniff(self, head: bytes, path: Path) -> float:
        """Confidence that ``head`` starts a CoT file: an ``<event`` with a ``<point``."""
        if _EVENT_START.search(head) is None:
            return 0.0
        if b"<point" in head and (b" uid=" in head or b"uid=" in head):
            return 0.9
        return 0.6

    def read(self, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        """Stream CoT events from ``path`` as batches of observation columns."""
        with open_source(path, options.limits) as raw_fh:
            fh: Any = raw_fh
            peek = getattr(raw_fh, "peek", None)  # every stream open_source returns has peek()
            head = peek(4096)[:4096] if peek is not None else b""
            encoding, recode = _detect_encoding(head)
            if recode:
                fh = _Utf8Recoder(raw_fh, encoding)
                encoding = "utf-8"
            yield from self._batches(fh, encoding, options)

    def _batches(self, fh: Any, encoding: str, options: ReadOptions) -> Iterator[ParsedBatch]:
        parts: list[dict[str, Any]] = []
        rejects: list[Reject] = []
        rows = records = nbytes = 0
        target = max(1, options.batch_rows)
        for blk in _segments(fh):
            cols, bad = _block_columns(blk, encoding) if blk.starts.size else ({}, [])
            rejects.extend(sorted([*blk.rejects, *bad], key=lambda r: r.src_rec))
            records += int(blk.starts.size) + len(blk.rejects)
            nbytes += blk.nread
            if cols:
                parts.append(cols)
                rows += len(cols["time"])
            if rows >= target:
                yield ParsedBatch(columns=_concat(parts), rejects=rejects, records_read=records, bytes_read=nbytes)
                parts, rejects, rows, records, nbytes = [], [], 0, 0, 0
        if parts or rejects or records:
            yield ParsedBatch(
                columns=_concat(parts) if parts else {},
                rejects=rejects,
                records_read=records,
                bytes_read=nbytes,
            )
