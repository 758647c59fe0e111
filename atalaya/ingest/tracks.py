"""GPX and KML tracks → observations, and writers for Atalaya's sortie-track convention.

Both readers stream with ``lxml.etree.iterparse`` (memory bounded by one
``<trk>`` segment point or one ``<Placemark>``), in recover mode: a malformed
stretch becomes a reject carrying libxml2's message and line, and the points
after it still come through. Rows on a line the parser complained about are
rejected rather than trusted.

Sortie-track convention (what :func:`write_gpx_tracks` / :func:`write_kml_tracks`
write, and what the scenario generator emits)
--------------------------------------------------------------------------------

GPX 1.1::

    <trk>
      <name>S-0042</name>        sortie id  → ident (ident_kind "sortie") and sortie_id
      <src>MQ9-07</src>          platform id → platform_id
      <type>MQ-9</type>          platform type → attrs {"platform_type": …}; kind "platform"
      <trkseg><trkpt lat=… lon=…><ele>…</ele><time>…Z</time></trkpt>…</trkseg>
    </trk>

Every ``<trkpt>`` is a row (sensor ``TRACK``; kind ``platform`` when ``<type>``
is present, else ``unknown``). A ``<wpt>`` with a ``<time>`` is a row too
(kind ``unknown``, its ``<name>`` in ``name``); a waypoint without a time is a
planned place, not an observation, and is skipped.

KML 2.2 (with the Google ``gx`` extension)::

    <Placemark>
      <name>S-0042</name>
      <ExtendedData>
        <Data name="platform_id"><value>MQ9-07</value></Data>
        <Data name="platform_type"><value>MQ-9</value></Data>
      </ExtendedData>
      <gx:Track><when>…Z</when>…<gx:coord>lon lat alt</gx:coord>…</gx:Track>
    </Placemark>

``gx:Track`` (also inside ``gx:MultiTrack``) gives one row per ``<when>`` /
``<gx:coord>`` pair; a ``<Point>`` with ``<TimeStamp><when>`` gives one row (a
GPS export's per-point Placemark ``"<track>-<n>"`` inside a Folder named
``<track>`` belongs to that track: GPSBabel writes Garmin tracks so). A
``LineString`` or a ``Point`` without times is not an observation and is
rejected with reason ``"no timestamps"``. Altitudes are metres above MSL.

>>> import numpy as np, tempfile, pathlib
>>> from atalaya.ingest.base import read_all
>>> t = SortieTrack(sortie_id="S-1", platform_id="P-1", platform_type="MQ-9",
...                 time_us=np.array([0, 1_000_000]), lon=np.array([-99.0, -99.1]),
...                 lat=np.array([19.0, 19.1]), alt_m=np.array([5000.0, np.nan]))
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_gpx_tracks(d / "a.gpx", [t]); write_kml_tracks(d / "a.kml", [])
>>> cols, rejects = read_all(GpxReader(), d / "a.gpx")
>>> cols["sortie_id"], cols["lon"], rejects
(['S-1', 'S-1'], [-99.0, -99.1], [])
>>> read_all(KmlReader(), d / "a.kml")
({}, [])
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import numpy.typing as npt

from atalaya.ingest.base import ParsedBatch, ReadOptions, Reject, open_source
from atalaya.ingest.cot import parse_float_strings, parse_iso8601_us
from atalaya.model.observation import IdentKind, ObjectKind, Sensor

__all__ = ["GpxReader", "KmlReader", "SortieTrack", "write_gpx_tracks", "write_kml_tracks"]

GPX_NS = "http://www.topografix.com/GPX/1/1"
KML_NS = "http://www.opengis.net/kml/2.2"
GX_NS = "http://www.google.com/kml/ext/2.2"


@dataclass(frozen=True, kw_only=True)
class SortieTrack:
    """The flown track of one sortie, as the track writers take it."""

    sortie_id: str
    """Sortie id (GPX ``<trk><name>``, KML Placemark ``<name>``)."""
    platform_id: str | None = None
    """Platform id (GPX ``<src>``, KML ``Data name="platform_id"``)."""
    platform_type: str | None = None
    """Platform type (GPX ``<type>``, KML ``Data name="platform_type"``)."""
    time_us: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Times, µs since the epoch, UTC."""
    lon: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    """Longitudes, WGS84 degrees."""
    lat: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    """Latitudes, WGS84 degrees."""
    alt_m: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    """Altitudes above MSL, metres (NaN = unknown; written without altitude)."""


# ---------------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------------


def _iso_times(time_us: npt.NDArray[np.int64]) -> list[str]:
    if len(time_us) == 0:
        return []
    s = np.datetime_as_string(np.asarray(time_us, dtype=np.int64).astype("datetime64[us]"), unit="us")
    return [x + "Z" for x in s.tolist()]


def _check(t: SortieTrack) -> int:
    n = len(t.time_us)
    if not (len(t.lon) == len(t.lat) == len(t.alt_m) == n):
        from atalaya.core.errors import ValidationError

        raise ValidationError(
            f"track {t.sortie_id!r}: time_us, lon, lat, alt_m lengths differ "
            f"({n}, {len(t.lon)}, {len(t.lat)}, {len(t.alt_m)})",
            hint="pass arrays of equal length (use NaN for unknown altitudes)",
        )
    return n


def write_gpx_tracks(path: Path, tracks: Sequence[SortieTrack]) -> None:
    """Write sortie tracks as GPX 1.1, one ``<trk>`` per track (see the module docstring)."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        fh.write(f'<gpx version="1.1" creator="atalaya" xmlns="{GPX_NS}">\n')
        for t in tracks:
            _check(t)
            fh.write(f"  <trk>\n    <name>{escape(t.sortie_id)}</name>\n")
            if t.platform_id is not None:
                fh.write(f"    <src>{escape(t.platform_id)}</src>\n")
            if t.platform_type is not None:
                fh.write(f"    <type>{escape(t.platform_type)}</type>\n")
            fh.write("    <trkseg>\n")
            for when, x, y, z in zip(
                _iso_times(t.time_us), t.lon.tolist(), t.lat.tolist(), t.alt_m.tolist(), strict=True
            ):
                ele = "" if z != z else f"<ele>{z!r}</ele>"  # z != z: NaN altitude is left out
                fh.write(f'      <trkpt lat="{y!r}" lon="{x!r}">{ele}<time>{when}</time></trkpt>\n')
            fh.write("    </trkseg>\n  </trk>\n")
        fh.write("</gpx>\n")


def write_kml_tracks(path: Path, tracks: Sequence[SortieTrack]) -> None:
    """Write sortie tracks as KML 2.2 ``gx:Track`` Placemarks (see the module docstring)."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        fh.write(f'<kml xmlns="{KML_NS}" xmlns:gx="{GX_NS}">\n<Document>\n')
        for t in tracks:
            _check(t)
            fh.write(f"  <Placemark>\n    <name>{escape(t.sortie_id)}</name>\n")
            data = [(k, v) for k, v in (("platform_id", t.platform_id), ("platform_type", t.platform_type)) if v]
            if data:
                fh.write("    <ExtendedData>\n")
                for k, v in data:
                    fh.write(f"      <Data name={quoteattr(k)}><value>{escape(v)}</value></Data>\n")
                fh.write("    </ExtendedData>\n")
            fh.write("    <gx:Track>\n      <altitudeMode>absolute</altitudeMode>\n")
            for when in _iso_times(t.time_us):
                fh.write(f"      <when>{when}</when>\n")
            for x, y, z in zip(t.lon.tolist(), t.lat.tolist(), t.alt_m.tolist(), strict=True):
                coord = f"{x!r} {y!r}" if z != z else f"{x!r} {y!r} {z!r}"  # z != z: NaN altitude
                fh.write(f"      <gx:coord>{coord}</gx:coord>\n")
            fh.write("    </gx:Track>\n  </Placemark>\n")
        fh.write("</Document>\n</kml>\n")


# ---------------------------------------------------------------------------------------------
# Shared row accumulator
# ---------------------------------------------------------------------------------------------


def _local(tag: Any) -> str:
    if not isinstance(tag, str):
        return ""  # comments and processing instructions
    return tag.rpartition("}")[2]


@dataclass(kw_only=True)
class _Rows:
    """Raw strings of the rows of one batch, converted in one vectorised step."""

    line: list[int] = field(default_factory=list)
    time: list[str | None] = field(default_factory=list)
    lon: list[str | None] = field(default_factory=list)
    lat: list[str | None] = field(default_factory=list)
    alt: list[str | None] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    ident: list[str | None] = field(default_factory=list)
    name: list[str | None] = field(default_factory=list)
    sortie: list[str | None] = field(default_factory=list)
    platform: list[str | None] = field(default_factory=list)
    attrs: list[str | None] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    records: int = 0
    line_offset: int = 0
    """Added to the parser's line numbers (a re-parsed fragment starts on this line + 1 of the file)."""

    def add(
        self,
        *,
        line: int,
        time: str | None,
        lon: str | None,
        lat: str | None,
        alt: str | None,
        kind: str,
        ident: str | None,
        name: str | None,
        sortie: str | None,
        platform: str | None,
        attrs: str | None,
    ) -> None:
        self.line.append(line + self.line_offset)
        self.time.append(time.strip() if time else None)
        self.lon.append(lon.strip() if lon else None)
        self.lat.append(lat.strip() if lat else None)
        self.alt.append(alt.strip() if alt else None)
        self.kind.append(kind)
        self.ident.append(ident)
        self.name.append(name)
        self.sortie.append(sortie)
        self.platform.append(platform)
        self.attrs.append(attrs)
        self.records += 1

    def reject(self, line: int, reason: str, raw: str = "") -> None:
        self.rejects.append(Reject(src_rec=line + self.line_offset, reason=reason, raw=Reject.excerpt(raw)))
        self.records += 1

    def batch(self, error_lines: dict[int, str], nbytes: int) -> ParsedBatch:
        """Convert and validate; rows on lines the parser complained about are rejected."""
        time_us, t_bad = parse_iso8601_us(self.time)
        lon, lon_bad = parse_float_strings(self.lon)
        lat, lat_bad = parse_float_strings(self.lat)
        alt, _ = parse_float_strings(self.alt)
        with np.errstate(invalid="ignore"):
            lat_oor = ~((lat >= -90.0) & (lat <= 90.0))
            lon_oor = ~((lon >= -180.0) & (lon <= 180.0))
        bad = t_bad | lon_bad | lat_bad | lat_oor | lon_oor
        ok = ~bad
        rejects = list(self.rejects)
        for i in np.flatnonzero(bad).tolist():
            if self.time[i] is None:
                reason = "point has no <time> (no timestamps)"
            elif t_bad[i]:
                reason = f"bad time {self.time[i]!r} (want ISO 8601, e.g. 2024-05-01T12:00:00Z)"
            elif self.lat[i] is None or self.lon[i] is None:
                reason = "point has no lat/lon"
            else:
                reason = f"bad coordinates lat={self.lat[i]!r} lon={self.lon[i]!r} (need finite, in range)"
            rejects.append(Reject(src_rec=self.line[i], reason=reason))
        if error_lines:
            for i, ln in enumerate(self.line):
                if ok[i] and ln in error_lines:
                    ok[i] = False
                    rejects.append(Reject(src_rec=ln, reason=f"malformed XML on this line: {error_lines[ln]}"))
        rejects.sort(key=lambda r: r.src_rec)
        idx = np.flatnonzero(ok)
        sel = idx.tolist()

        def pick(v: list[Any]) -> list[Any]:
            return [v[j] for j in sel]

        ident = pick(self.ident)
        columns: dict[str, Any] = {}
        if sel:
            columns = {
                "time": time_us[idx],
                "lon": lon[idx],
                "lat": lat[idx],
                "alt_m": alt[idx].astype(np.float32),
                "sensor": [Sensor.TRACK.value] * len(sel),
                "kind": pick(self.kind),
                "ident": ident,
                "ident_kind": [IdentKind.SORTIE.value if v is not None else None for v in ident],
                "name": pick(self.name),
                "platform_id": pick(self.platform),
                "sortie_id": pick(self.sortie),
                "src_rec": np.asarray(pick(self.line), dtype=np.int64),
                "attrs": pick(self.attrs),
            }
        return ParsedBatch(columns=columns, rejects=rejects, records_read=self.records, bytes_read=nbytes)


class _Counting:
    """File wrapper that counts the bytes read (for progress)."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self.n = 0

    def read(self, size: int = -1) -> bytes:
        b = self._fh.read(size)
        self.n += len(b)
        return b


_STOPPED = re.compile(
    r"Excessive depth|amplification|entity reference loop|huge text node|Extra content at the end"
    r"|Document is empty|Start tag expected|Memory allocation failed"
)
"""libxml2 messages after which it reads no further, even in recover mode."""
_XML_DECL = re.compile(rb"\A\s*(<\?xml[^>]*\?>)")
_XMLNS = re.compile(rb"""\sxmlns(?::[A-Za-z_][\w.-]*)?\s*=\s*(?:"[^"]*"|'[^']*')""")


def _parser_stopped(log: Any) -> str | None:
    """The message of an error after which libxml2 stopped reading, if any."""
    for e in log:
        if _STOPPED.search(e.message or ""):
            return str(e.message).strip()
    return None


def _iterparse_batches(
    path: Path, options: ReadOptions, handle: Any, tags: frozenset[str], record_tags: tuple[str, ...]
) -> Iterator[ParsedBatch]:
    """Drive iterparse over ``path``; ``handle(elem, rows)`` consumes each completed element in ``tags``.

    When libxml2 gives up part way (nesting deeper than its limit of 256, an entity-expansion bomb, content after
    the root element…), the file is read again as separate records (``record_tags``: ``<trk>``/``<wpt>``,
    ``<Placemark>``), each parsed on its own without the document's DTD (entities stay unexpanded), and the
    records after the elements already handled come through; the stop is one reject.
    """
    from lxml import etree

    with open_source(path, options.limits) as raw:
        fh = _Counting(raw)
        rows = _Rows()
        seen_errors = 0
        error_lines: dict[int, str] = {}
        sent = 0
        handled = 0
        head = raw.peek(1 << 16)[: 1 << 16]
        it = etree.iterparse(fh, events=("end",), recover=True, huge_tree=False, resolve_entities=False)
        stop: str | None = None
        try:
            for _, elem in it:
                if _local(elem.tag) not in tags:
                    continue
                handle(elem, rows)
                handled += 1
                _release(elem)
                if len(rows.line) >= options.batch_rows:
                    seen_errors = _collect_errors(it.error_log, seen_errors, error_lines, rows)
                    yield rows.batch(error_lines, fh.n - sent)
                    sent = fh.n
                    rows = _Rows()
        except etree.XMLSyntaxError as e:  # unrecoverable (e.g. empty document or wrong encoding)
            stop = f"unreadable XML: {e.msg if getattr(e, 'msg', None) else e}"
            rows.reject(e.lineno or 0, stop)
        _collect_errors(it.error_log, seen_errors, error_lines, rows)
        stop = _parser_stopped(it.error_log) or stop
    if stop is not None:
        yield from _record_batches(path, options, handle, tags, record_tags, rows, error_lines, handled, head)
        return
    if rows.records or rows.rejects:
        yield rows.batch(error_lines, fh.n - sent)


def _release(elem: Any) -> None:
    """Free a handled element and the siblings before it, except a ``<name>`` (a Folder's name names its later
    Placemarks' track, see :func:`_folder_track`; one small element per container)."""
    elem.clear(keep_tail=False)
    parent = elem.getparent()
    if parent is not None:
        prev = elem.getprevious()
        while prev is not None:
            before = prev.getprevious()
            if _local(prev.tag) != "name":
                parent.remove(prev)
            prev = before


def _record_batches(
    path: Path,
    options: ReadOptions,
    handle: Any,
    tags: frozenset[str],
    record_tags: tuple[str, ...],
    rows: _Rows,
    error_lines: dict[int, str],
    skip: int,
    head: bytes,
) -> Iterator[ParsedBatch]:
    """Re-read ``path`` record by record, skipping the first ``skip`` handled elements (already read)."""
    from lxml import etree

    decl = _XML_DECL.match(head)
    prefix = (decl.group(1) if decl else b"") + b"<records" + b"".join(_XMLNS.findall(head)) + b">"
    prefix = prefix.replace(b"\n", b" ").replace(b"\r", b" ")
    parser_opts = dict(events=("end",), recover=True, huge_tree=False, resolve_entities=False, no_network=True)
    count = 0
    with open_source(path, options.limits) as fh:
        for line, frag, nbytes in _fragments(fh, record_tags, options.limits.max_record_bytes):
            rows.line_offset = line - 1
            it = etree.iterparse(io.BytesIO(prefix + frag + b"</records>"), **parser_opts)
            fresh = False
            try:
                for _, elem in it:
                    if _local(elem.tag) not in tags:
                        continue
                    count += 1
                    if count > skip:
                        fresh = True
                        handle(elem, rows)
                    _release(elem)
            except etree.XMLSyntaxError as e:
                fresh = count >= skip
                rows.reject(e.lineno or 1, f"unreadable XML: {e.msg if getattr(e, 'msg', None) else e}")
            if fresh:
                for entry in it.error_log:
                    ln = entry.line + line - 1
                    if ln not in error_lines:
                        error_lines[ln] = entry.message
                        rows.rejects.append(Reject(src_rec=ln, reason=f"malformed XML: {entry.message}"))
            if len(rows.line) >= options.batch_rows:
                yield rows.batch(error_lines, nbytes)
                rows = _Rows(line_offset=rows.line_offset)
    if rows.records or rows.rejects:
        yield rows.batch(error_lines, 0)


def _fragments(fh: Any, names: tuple[str, ...], max_bytes: int) -> Iterator[tuple[int, bytes, int]]:
    """``(first line, bytes, bytes read)`` of each ``<name …>…</name>`` element in a byte stream (not nested)."""
    alt = b"|".join(re.escape(n.encode()) for n in names)
    start_re = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(" + alt + rb")(?=[\s/>])")
    ends = {n.encode(): re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?" + re.escape(n.encode()) + rb"\s*>") for n in names}
    buf = b""
    line = 1
    eof = False
    while True:
        m = start_re.search(buf)
        if m is None:
            if eof:
                return
            keep = max(0, len(buf) - 64)
            line += buf.count(b"\n", 0, keep)
            more = fh.read(1 << 20)
            eof = not more
            buf = buf[keep:] + more
            continue
        tag_end = buf.find(b">", m.end())
        if tag_end >= 0 and buf[tag_end - 1 : tag_end] == b"/":
            end = tag_end + 1
        else:
            e = ends[m.group(1)].search(buf, m.end())
            if e is None and not eof and len(buf) - m.start() <= max_bytes:
                more = fh.read(1 << 20)
                eof = not more
                buf += more
                continue
            end = e.end() if e is not None else min(len(buf), m.start() + max_bytes)
        line += buf.count(b"\n", 0, m.start())
        yield line, buf[m.start() : end], end
        line += buf.count(b"\n", m.start(), end)
        buf = buf[end:]


def _collect_errors(log: Any, seen: int, error_lines: dict[int, str], rows: _Rows) -> int:
    entries = list(log)
    for e in entries[seen:]:
        if _STOPPED.search(e.message or ""):  # the document's structure, not the rows on that line
            rows.rejects.append(Reject(src_rec=e.line, reason=f"XML parser stopped: {e.message.strip()}"))
        elif e.line not in error_lines:
            error_lines[e.line] = e.message
            rows.rejects.append(Reject(src_rec=e.line, reason=f"malformed XML: {e.message}"))
    return len(entries)


def _text(elem: Any, name: str) -> str | None:
    for child in elem:
        if _local(child.tag) == name:
            t: str | None = child.text
            return t.strip() if t else t
    return None


def _folder_track(pm: Any, name: str | None) -> str | None:
    """The track a timed Point Placemark belongs to when a GPS export wrote one Placemark per track point.

    GPSBabel (Garmin devices and others) writes a track as a Folder named for it, holding one Placemark named
    ``"<track>-<n>"`` per point; those points are one track, named ``<track>``. Returns that name when ``name`` is
    ``"<X>-<digits>"`` and an enclosing Folder or Document is named ``X``, else None.
    """
    if not name:
        return None
    base, sep, num = name.rpartition("-")
    if not (sep and base and num.isdigit()):
        return None
    anc = pm.getparent()
    while anc is not None:
        if _local(anc.tag) in ("Folder", "Document") and _text(anc, "name") == base:
            return base
        anc = anc.getparent()
    return None


def _platform_attrs(platform_type: str | None) -> str | None:
    return json.dumps({"platform_type": platform_type}, ensure_ascii=False) if platform_type else None


# ---------------------------------------------------------------------------------------------
# GPX
# ---------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class _TrkState:
    sortie: str | None = None
    platform: str | None = None
    ptype: str | None = None


class GpxReader:
    """Reader for GPX 1.0/1.1 tracks and timed waypoints (format ``gpx``)."""

    name = "gpx"
    extensions: tuple[str, ...] = (".gpx",)

    def sniff(self, head: bytes, path: Path) -> float:
        """Confidence that ``head`` starts a GPX document."""
        if b"<gpx" in head:
            return 0.95 if b"topografix.com/GPX" in head or b"<trk" in head or b"<wpt" in head else 0.7
        return 0.0

    def read(self, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        """Stream track points and timed waypoints as batches."""
        cache: list[Any] = [None, _TrkState()]  # [trk element, its metadata]

        def trk_state(trkpt: Any) -> _TrkState:
            seg = trkpt.getparent()
            trk = seg.getparent() if seg is not None else None
            if trk is None:
                return _TrkState()
            if cache[0] is not trk:
                cache[0] = trk
                cache[1] = _TrkState(sortie=_text(trk, "name"), platform=_text(trk, "src"), ptype=_text(trk, "type"))
            st: _TrkState = cache[1]
            return st

        def handle(elem: Any, rows: _Rows) -> None:
            tag = _local(elem.tag)
            if tag == "trk":
                cache[0] = None
                return
            line = elem.sourceline or 0
            if tag == "trkpt":
                state = trk_state(elem)
                rows.add(
                    line=line,
                    time=_text(elem, "time"),
                    lon=elem.get("lon"),
                    lat=elem.get("lat"),
                    alt=_text(elem, "ele"),
                    kind=ObjectKind.PLATFORM.value if state.ptype else ObjectKind.UNKNOWN.value,
                    ident=state.sortie,
                    name=None,
                    sortie=state.sortie,
                    platform=state.platform,
                    attrs=_platform_attrs(state.ptype),
                )
            elif tag == "wpt":
                when = _text(elem, "time")
                if when is None:
                    rows.records += 1  # a planned place, not an observation
                    return
                rows.add(
                    line=line,
                    time=when,
                    lon=elem.get("lon"),
                    lat=elem.get("lat"),
                    alt=_text(elem, "ele"),
                    kind=ObjectKind.UNKNOWN.value,
                    ident=None,
                    name=_text(elem, "name"),
                    sortie=None,
                    platform=None,
                    attrs=None,
                )

        yield from _iterparse_batches(path, options, handle, frozenset({"trkpt", "wpt", "trk"}), ("trk", "wpt"))


# ---------------------------------------------------------------------------------------------
# KML
# ---------------------------------------------------------------------------------------------


def _split_coord(text: str | None) -> tuple[str | None, str | None, str | None]:
    parts = (text or "").replace(",", " ").split()
    if len(parts) < 2:
        return None, None, None
    return parts[0], parts[1], parts[2] if len(parts) > 2 else None


class KmlReader:
    """Reader for KML Placemarks with ``gx:Track`` or timestamped ``Point`` (format ``kml``)."""

    name = "kml"
    extensions: tuple[str, ...] = (".kml",)

    def sniff(self, head: bytes, path: Path) -> float:
        """Confidence that ``head`` starts a KML document."""
        if b"<kml" in head:
            return 0.95 if b"opengis.net/kml" in head or b"<Placemark" in head else 0.7
        return 0.0

    def read(self, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        """Stream Placemarks (one in memory at a time) as batches."""

        def handle(pm: Any, rows: _Rows) -> None:
            sortie = _text(pm, "name")
            data: dict[str, str | None] = {}
            for el in pm.iter():
                if _local(el.tag) == "Data":
                    data[el.get("name") or ""] = _text(el, "value")
            platform, ptype = data.get("platform_id"), data.get("platform_type")
            kind = ObjectKind.PLATFORM.value if ptype else ObjectKind.UNKNOWN.value
            attrs = _platform_attrs(ptype)
            found = False
            for el in pm.iter():
                tag = _local(el.tag)
                if tag == "Track":
                    found = True
                    whens = [w for w in el if _local(w.tag) == "when"]
                    coords = [c for c in el if _local(c.tag) == "coord"]
                    if len(whens) != len(coords):
                        rows.reject(
                            el.sourceline or 0,
                            f"gx:Track has {len(whens)} <when> but {len(coords)} <gx:coord>",
                        )
                        continue
                    if not whens:
                        rows.reject(el.sourceline or 0, "gx:Track without points (no timestamps)")
                    for w, c in zip(whens, coords, strict=True):
                        x, y, z = _split_coord(c.text)
                        rows.add(
                            line=w.sourceline or 0,
                            time=w.text,
                            lon=x,
                            lat=y,
                            alt=z,
                            kind=kind,
                            ident=sortie,
                            name=None,
                            sortie=sortie,
                            platform=platform,
                            attrs=attrs,
                        )
                elif tag in ("LineString", "LinearRing", "Polygon"):
                    found = True
                    rows.reject(el.sourceline or 0, f"{tag} without times is not an observation (no timestamps)")
                elif tag == "Point":
                    found = True
                    when = None
                    for ts in pm.iter():
                        if _local(ts.tag) == "TimeStamp":
                            when = _text(ts, "when")
                    if when is None:
                        rows.reject(el.sourceline or 0, "Point without <TimeStamp><when> (no timestamps)")
                        continue
                    x, y, z = _split_coord(_text(el, "coordinates"))
                    track = _folder_track(pm, sortie) or sortie
                    rows.add(
                        line=el.sourceline or 0,
                        time=when,
                        lon=x,
                        lat=y,
                        alt=z,
                        kind=kind,
                        ident=track,
                        name=None,
                        sortie=track,
                        platform=platform,
                        attrs=attrs,
                    )
            if not found:
                rows.reject(pm.sourceline or 0, "Placemark without geometry")

        yield from _iterparse_batches(path, options, handle, frozenset({"Placemark"}), ("Placemark",))
