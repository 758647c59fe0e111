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
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from atalaya.ingest.base import ParsedBatch, ReadOptions, Reject, logical_suffix, open_source
from atalaya.ingest.cot_detail import (
    MAX_ATTRS_CHARS,
    NeedsParserError,
    dumps,
    parse_xml,
    tail_json,
    tail_of_text,
)
from atalaya.ingest.cot_layout import FIELDS, layout_rows
from atalaya.ingest.cot_segments import (
    BLOCK_BYTES,
    EVENT_START,
    MAX_EVENT_BYTES,
    Block,
    Utf8Recoder,
    detect_encoding,
    segment_files,
    segments,
)
from atalaya.ingest.cot_values import (
    AFFILIATIONS,
    CONTEXT_AFFILIATIONS,
    cot_affiliation,
    cot_kind,
    parse_float_strings,
    parse_iso8601_us,
)
from atalaya.ingest.manyfiles import FilesBatch, byte_groups, locate_lines
from atalaya.model.observation import IdentKind, ObjectKind, Sensor

__all__ = [
    "AFFILIATIONS",
    "BLOCK_BYTES",
    "CONTEXT_AFFILIATIONS",
    "MAX_ATTRS_CHARS",
    "MAX_EVENT_BYTES",
    "CotReader",
    "cot_affiliation",
    "cot_kind",
    "parse_float_strings",
    "parse_iso8601_us",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

UNKNOWN_VALUE = 9_999_999.0
"""CoT's marker for an unknown ``hae``/``ce``/``le``."""

NULL_ISLAND_DEG = 0.01
"""A position closer than this (degrees, in latitude and in longitude) to 0,0 with an unknown ``ce`` or ``how``
``h-g-i-g-o`` is a device without a GPS fix reporting its zeroed default, and is rejected."""

_SENSORS = frozenset(s.value for s in Sensor)
_KINDS = frozenset(k.value for k in ObjectKind)

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


_VALUE_WS = r"\r\n|[\t\n\r]"
_VALUE_WS_RE = re.compile(_VALUE_WS)


def _attrs(tag_body: str) -> dict[str, str]:
    pairs = _ATTR.findall(tag_body)
    if tag_body.count("=") != len(pairs):
        raise NeedsParserError
    out = dict(pairs)
    if "\n" in tag_body or "\t" in tag_body or "\r" in tag_body:  # XML attribute-value normalisation
        out = {k: _VALUE_WS_RE.sub(" ", v) for k, v in out.items()}
    return out


_NO_ATTRS: dict[str, str] = {}


def _fast_fields(s: str) -> _Fields | None:
    """Fields of an event via regexes; ``None`` if the event has no ``<point>``."""
    if "&" in s or "<!" in s or "<?" in s:
        raise NeedsParserError
    n_lt = s.count("<")
    if n_lt != s.count(">") or n_lt != 2 * s.count("</") + s.count("/>"):
        raise NeedsParserError
    m = _EVENT_TAG.match(s)
    if m is None:
        raise NeedsParserError
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
        tail_of_text(s),
    )


def _xml_fields(text: str) -> _Fields | None:
    """Fields of an event via lxml (raises ``etree.XMLSyntaxError`` when not well-formed)."""
    ev = parse_xml(text)
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
        tail_json(ev),
    )


_LINE_REF = re.compile(r"\bline (\d+)")


def _syntax_reject(line: int, raw: bytes, text: str, shift: int = 0) -> Reject:
    """A reject carrying lxml's message, its line references made absolute (less ``shift``: lines in the event's
    own file when the block joins many, :attr:`Block.line_shift`)."""
    from lxml import etree

    try:
        parse_xml(text)
    except etree.XMLSyntaxError as e:
        msg = str(getattr(e, "msg", None) or e)
        msg = _LINE_REF.sub(lambda m: f"line {int(m.group(1)) + line - 1 - shift}", msg)
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


def _attrs_json(cot_type: str | None, how: str | None) -> str:
    """The head of an event's ``attrs`` JSON (without the closing brace): affiliation first, then type and how."""
    key = (cot_type, how)
    hit = _ATTRS_CACHE.get(key)
    if hit is None:
        hit = dumps({"affiliation": cot_affiliation(cot_type), "type": cot_type, "how": how})[:-1]
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
        tails = [tail_of_text(r.decode("utf-8")) for r in raws]
    except (pa.ArrowInvalid, UnicodeDecodeError, NeedsParserError):  # let the per-event path say where and why
        return None
    # XML attribute-value normalisation: a tab, newline or CR (CR LF counts once) reads as a space
    cols = {name: pc.replace_substring_regex(a, _VALUE_WS, " ") for name, a in strings.items()}
    cols["tail"] = pa.array(tails, type=pa.string())
    return cols


def _slow_rows(blk: Block, idx: list[int], encoding: str) -> tuple[list[int], list[_Fields], list[Reject]]:
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
                raise NeedsParserError
            fields = _fast_fields(text)
        except NeedsParserError:
            try:
                fields = _xml_fields(text)
            except etree.XMLSyntaxError:
                shift = 0 if blk.line_shift is None else int(blk.line_shift[i])
                rejects.append(_syntax_reject(line, raw, text, shift))
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


def _block_columns(blk: Block, encoding: str) -> tuple[dict[str, Any], list[Reject]]:
    """Parse one block's events into observation columns (vectorised conversions).

    Three paths, fastest first: events repeating a learned layout (array slicing), other
    structurally simple events (block-wide regexes), and the rest one by one (regex or lxml).
    """
    parts: list[tuple[I64, dict[str, pa.Array]]] = []
    rest = np.arange(blk.starts.size)
    utf8 = codecs.lookup(encoding).name == "utf-8"
    if utf8:
        parts, done = layout_rows(blk)
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
        slow_arrays = {name: pa.array(slow_cols[k], type=pa.string()) for k, name in enumerate(FIELDS)}
        parts.append((np.asarray(slow_out, dtype=np.int64), slow_arrays))
    if not parts:
        return {}, rejects
    rows, fields = parts[0]
    if len(parts) > 1:
        rows = np.concatenate([p[0] for p in parts])
        order = pa.array(np.argsort(rows, kind="stable"))
        rows = rows[order.to_numpy()]
        fields = {name: pa.concat_arrays([p[1][name] for p in parts]).take(order) for name in FIELDS}
    return _to_columns(blk, rows, fields, rejects)


def _to_columns(
    blk: Block, rows: I64, f: dict[str, pa.Array], rejects: list[Reject]
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
        if EVENT_START.search(head) is None:
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
            encoding, recode = detect_encoding(head)
            if recode:
                fh = Utf8Recoder(raw_fh, encoding)
                encoding = "utf-8"
            yield from self._batches(fh, encoding, options)

    def batchable(self, head: bytes, path: Path) -> bool:
        """Whether the file can be read with others by :meth:`read_many`: not compressed, and UTF-8."""
        if logical_suffix(path) != path.suffix.lower():  # .gz, .bz2, .xz: read alone, through the decompressor
            return False
        encoding, recode = detect_encoding(head[:4096])
        return not recode and codecs.lookup(encoding).name == "utf-8"

    def read_many(self, datas: Sequence[bytes], options: ReadOptions) -> Iterator[FilesBatch]:
        """The events of many whole (small, :meth:`batchable`) files, each cut from its own file's bytes, parsed
        as one block per :data:`~atalaya.ingest.manyfiles.MANY_FILES_BYTES`: one learned layout, one set of
        Arrow conversions for thousands of one-event files. Every row and reject is what :meth:`read` gives."""
        n = len(datas)
        for start, stop in byte_groups(datas):
            blk, first_lines = segment_files(datas[start:stop])
            cols, bad = _block_columns(blk, "utf-8") if blk.starts.size else ({}, [])
            records = np.zeros(n, dtype=np.int64)
            ev_files, _ = locate_lines(blk.lines, first_lines)
            records[start:stop] += np.bincount(ev_files, minlength=stop - start)
            found = [*blk.rejects, *bad]
            r_files, r_lines = locate_lines(np.array([r.src_rec for r in found], dtype=np.int64), first_lines)
            r_files += start
            np.add.at(records, r_files[: len(blk.rejects)], 1)  # over-long events: rejected unparsed
            rejects = [
                (f, Reject(src_rec=line, reason=r.reason, raw=r.raw))
                for f, line, r in zip(r_files.tolist(), r_lines.tolist(), found, strict=True)
            ]
            rejects.sort(key=lambda fr: (fr[0], fr[1].src_rec))
            if cols:
                files, cols["src_rec"] = locate_lines(np.asarray(cols["src_rec"], dtype=np.int64), first_lines)
                files += start
            else:
                files = np.zeros(0, dtype=np.int64)
            yield FilesBatch(columns=cols, files=files, rejects=rejects, records=records)

    def _batches(self, fh: Any, encoding: str, options: ReadOptions) -> Iterator[ParsedBatch]:
        parts: list[dict[str, Any]] = []
        rejects: list[Reject] = []
        rows = records = nbytes = 0
        target = max(1, options.batch_rows)
        for blk in segments(fh):
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
