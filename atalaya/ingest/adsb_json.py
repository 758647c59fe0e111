"""ADS-B JSON files as people keep them: readsb/tar1090 traces and OpenSky/``traffic`` record tables.

``readsb-trace``
    A readsb/tar1090 trace file (``trace_full_<icao>.json``, ``trace_recent_<icao>.json``, the globe history
    ``.json``/``.json.gz`` files): ``{"icao": "3c66b0", "r": "D-AIUO", "t": "A320", "timestamp": 1663372800.0,
    "trace": [[dt, lat, lon, alt, gs, track, flags, vrate, details, source, geom_alt, geom_rate, ias, roll],
    …]}`` (readsb's ``README-json.md``). Each point is one row at ``timestamp + dt``. Altitude is in feet, or
    ``"ground"`` (the row gets no altitude and ``on_ground``); ground speed in knots; vertical rates in ft/min.
    ``flags & 2`` starts a new leg: every row carries its leg number (1, 2, …) in ``attrs.leg``; ``flags & 1``
    (stale position) and ``flags & 8`` (geometric altitude) are kept as ``stale`` / ``alt_geometric``. The
    ``details`` object (sent now and then) gives the callsign (``flight``) and ``squawk``; they carry to the
    following points of the same leg. Points without a position are skipped (counted, not quarantined).
``adsb-records``
    Tables of state vectors written as JSON by OpenSky (Impala ``state_vectors_data4`` exports), the ``traffic``
    library and pandas: an array of objects (``orient="records"``), the same one object per line (``lines=True``),
    and pandas' ``orient="columns"`` (``{"col": {"0": v, …}}``), ``"index"``, ``"split"`` and ``"table"``. The
    array and line forms stream; the others are column-wise by nature and are parsed whole (at most
    ``ReaderLimits.max_document_bytes``). Keys and their units are in :data:`RECORD_KEYS`.

>>> ReadsbTraceReader().sniff(b'{"icao":"3c66b0","timestamp":1663372800.0,"trace":[[0.0,50.1,8.6,0]]}', Path("t"))
0.95
>>> AdsbRecordsReader().sniff(b'[{"timestamp":1500000000,"icao24":"3c66b0","lat":50.1,"lon":8.6}]', Path("r.json"))
0.9
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from atalaya.core.errors import IngestError
from atalaya.ingest.adsb import FT_TO_M, KT_TO_MPS
from atalaya.ingest.base import ParsedBatch, ReaderLimits, ReadOptions, Reject, open_source
from atalaya.ingest.jsonstream import READ_BYTES, Utf8Window, decode_at, finite_number

__all__ = ["RECORD_KEYS", "AdsbRecordsReader", "ReadsbTraceReader"]

FPM_TO_MPS = FT_TO_M / 60.0
"""Feet per minute to metres per second (exact)."""
_US = 1_000_000
_MAX_EPOCH_S = 253_402_300_800.0
_HEX = re.compile(r"~?[0-9a-f]{6}")

RECORD_KEYS: dict[str, str] = {
    "timestamp, time": "observation time: epoch seconds, milliseconds (pandas' default), µs or ns by magnitude, or"
    " ISO 8601 (UTC unless it names an offset); `lastposupdate`/`last_position` win when present",
    "icao24 (icao, hex)": "ICAO 24-bit address, 6 hex digits (`~` prefix: non-ICAO)",
    "callsign (flight)": "callsign",
    "latitude, lat / longitude, lon": "WGS84 degrees",
    "baroaltitude, baro_altitude, geo_altitude": "metres",
    "altitude": "feet (`traffic`)",
    "geoaltitude": "metres with OpenSky names (the record has `baroaltitude` or `velocity`), feet otherwise"
    " (`traffic`); preferred to the barometric altitude",
    "velocity": "m/s",
    "groundspeed": "knots (`traffic`)",
    "track, true_track, heading": "degrees true; the course is `track` when present (`heading` then kept in attrs"
    " as `heading_deg`: in `traffic` it is the aircraft's heading), else OpenSky's `heading` (its true track)",
    "vertrate": "m/s",
    "vertical_rate": "m/s with OpenSky names, ft/min otherwise (`traffic`)",
    "onground, on_ground": "boolean",
    "squawk": "kept in attrs",
}
"""Record keys the ``adsb-records`` reader understands, and the unit it assumes for each."""

_METRIC_KEYS = ("baroaltitude", "baro_altitude", "velocity", "vertrate")


class _Rows:
    """Rows of ADS-B observations accumulated into batch columns."""

    def __init__(self, options: ReadOptions) -> None:
        self.options = options
        self.records = 0
        self.rows = 0
        self.rejects: list[Reject] = []
        self.nbytes = 0
        self._reset()

    def _reset(self) -> None:
        self.time: list[int] = []
        self.lon: list[float] = []
        self.lat: list[float] = []
        self.alt: list[float] = []
        self.speed: list[float] = []
        self.course: list[float] = []
        self.ident: list[str] = []
        self.name: list[str | None] = []
        self.src: list[int] = []
        self.attrs: list[str | None] = []

    def __len__(self) -> int:
        return len(self.time)

    def reject(self, rec: int, reason: str, raw: Any) -> None:
        if not isinstance(raw, str | bytes):
            try:
                raw = json.dumps(raw)[:2048]
            except (TypeError, ValueError):
                raw = repr(raw)[:2048]
        self.rejects.append(Reject(src_rec=rec, reason=reason, raw=Reject.excerpt(raw)))

    def add(
        self, *, rec: int, t_us: int, lon: float, lat: float, alt: float, speed: float, course: float, ident: str,
        name: str | None, attrs: dict[str, Any],
    ) -> None:  # fmt: skip
        self.rows += 1
        self.time.append(t_us)
        self.lon.append(lon)
        self.lat.append(lat)
        self.alt.append(alt)
        self.speed.append(speed)
        self.course.append(course)
        self.ident.append(ident)
        self.name.append(name)
        self.src.append(rec)
        self.attrs.append(json.dumps(attrs, separators=(",", ":")) if attrs else None)

    def flush(self) -> ParsedBatch:
        n = len(self.time)
        ident_kind = ["other" if i.startswith("~") else "icao24" for i in self.ident]
        columns: dict[str, Any] = {
            "time": np.array(self.time, dtype=np.int64),
            "lon": np.array(self.lon, dtype=np.float64),
            "lat": np.array(self.lat, dtype=np.float64),
            "alt_m": np.array(self.alt, dtype=np.float64),
            "speed_mps": np.array(self.speed, dtype=np.float64),
            "course_deg": np.array(self.course, dtype=np.float64),
            "sensor": ["ADSB"] * n,
            "kind": ["aircraft"] * n,
            "ident": pa.array(self.ident, type=pa.string()),
            "ident_kind": ident_kind,
            "name": pa.array(self.name, type=pa.string()),
            "src_rec": np.array(self.src, dtype=np.int64),
            "attrs": pa.array(self.attrs, type=pa.string()),
        }
        for k, v in self.options.defaults.items():
            columns.setdefault(k, [v] * n)
        batch = ParsedBatch(columns=columns, rejects=self.rejects, records_read=self.records, bytes_read=self.nbytes)
        self.rejects, self.records, self.nbytes = [], 0, 0
        self._reset()
        return batch


def _f(v: Any) -> float:
    """A finite JSON number as float, else NaN."""
    return float(v) if finite_number(v) else float("nan")


def _ident(v: Any) -> str | None:
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 24:
        v = f"{v:06x}"  # pandas may have read an all-digit address as a number
    if not isinstance(v, str):
        return None
    s = v.strip().lower()
    return s if _HEX.fullmatch(s) else None


def _position(lat: Any, lon: Any) -> tuple[float, float, str | None]:
    """``(lat, lon, None)``; NaNs and no reason when both are absent; a reason when they are bad."""
    if lat is None and lon is None:
        return float("nan"), float("nan"), None
    if not (finite_number(lat) and finite_number(lon)):
        return float("nan"), float("nan"), f"bad position: lat={lat!r}, lon={lon!r}"
    la, lo = float(lat), float(lon)
    if not (-90 <= la <= 90 and -180 <= lo <= 180):
        return la, lo, f"position out of range: lat={la}, lon={lo}"
    return la, lo, None


def epoch_us(v: Any) -> int | None:
    """A time as epoch µs: a number (seconds, or ms/µs/ns by magnitude, as pandas writes them) or ISO 8601 text.

    >>> epoch_us(1500000000), epoch_us(1500000000000), epoch_us("2017-07-14T02:40:00Z"), epoch_us("x")
    (1500000000000000, 1500000000000000, 1500000000000000, None)
    """
    if isinstance(v, str):
        s = v.strip()
        try:
            v = float(s)
        except ValueError:
            try:
                d = datetime.fromisoformat(s)
            except ValueError:
                return None
            if d.tzinfo is None:
                d = d.replace(tzinfo=UTC)
            delta = d - datetime(1970, 1, 1, tzinfo=UTC)
            return (delta.days * 86400 + delta.seconds) * _US + delta.microseconds
    if not finite_number(v):
        return None
    x = float(v)
    a = abs(x)
    if a >= 1e17:
        x /= 1e9
    elif a >= 1e14:
        x /= 1e6
    elif a >= 1e11:
        x /= 1e3
    if not -_MAX_EPOCH_S < x < _MAX_EPOCH_S:
        return None
    return round(x * _US)


# --------------------------------------------------------------------------- streaming JSON arrays


def _stream_array(
    win: Utf8Window, pos: int, limits: ReaderLimits, start_re: re.Pattern[str], what: str, rows: _Rows, first: int = 1
) -> Iterator[tuple[int, Any]]:
    """Decode the items of the JSON array whose ``[`` ends just before ``win.text[pos]``, one at a time.

    Yields ``(index, value)`` (1-based); a bad item is one reject in ``rows`` and reading resumes at the next
    match of ``start_re``. Holds one item (at most ``limits.max_record_bytes``) plus one read of text.
    """
    index = first - 1
    while True:
        text = win.text
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            if win.eof:
                rows.records += 1
                rows.reject(index + 1, f"the file ends inside the {what} list (truncated?)", "")
                return
            pos = win.more(keep_from=pos)
            continue
        if text[pos] == "]":
            return
        value, end, why = decode_at(text, pos, max_depth=limits.max_depth)
        if why is None and end - pos > limits.max_record_bytes:
            why = f"{what} item longer than {limits.max_record_bytes} characters"
        index += 1
        if why is None:
            yield index, value
            pos = end
        else:
            if why.startswith("not valid JSON") and not win.eof and len(text) - pos < limits.max_record_bytes:
                index -= 1
                pos = win.more(keep_from=pos)
                continue
            if why.startswith("not valid JSON") and not win.eof:
                why = f"{what} item longer than {limits.max_record_bytes} characters"
            rows.records += 1
            raw = text[pos : pos + 512]
            nxt = start_re.search(text, max(end, pos + 1))
            while nxt is None and not win.eof:  # skip the bad stretch without holding it
                win.more(keep_from=max(0, len(text) - 64))
                text = win.text
                nxt = start_re.search(text, 1)
            if nxt is None:
                rows.reject(index, f"{why}; the file ends inside this {what} item (truncated?)", raw)
                return
            rows.reject(index, why, raw)
            pos = nxt.start()
        if pos > READ_BYTES:
            pos = win.drop(pos)


def _read_whole(win: Utf8Window, path: Path, limit: int, what: str) -> Any:
    """The rest of the stream parsed as one JSON document (at most ``limit`` characters)."""
    while not win.eof:
        if len(win.text) > limit:
            raise IngestError(
                f"{path}: {what} larger than {limit} bytes must be parsed whole",
                hint="write it as an array of records (pandas orient='records') or raise max_document_bytes",
            )
        win.more()
    text = win.text.lstrip("\ufeff \t\r\n")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise IngestError(f"{path}: not valid JSON ({e})", hint="the file may be truncated") from e


# --------------------------------------------------------------------------- readsb / tar1090 traces

_TRACE_RE = re.compile(r'"trace"\s*:\s*\[')
_POINT_START_RE = re.compile(r"\[\s*-?\d")


class ReadsbTraceReader:
    """Reader for readsb/tar1090 ``trace_full``/``trace_recent`` JSON (plain or ``.json.gz``)."""

    name: str = "readsb-trace"
    extensions: tuple[str, ...] = (".json",)

    def sniff(self, head: bytes, path: Path) -> float:
        """High for a JSON object with ``icao`` and a ``trace`` list."""
        h = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if not h.startswith(b"{"):
            return 0.0
        return 0.95 if b'"icao"' in h and re.search(rb'"trace"\s*:\s*\[', h) else 0.0

    def read(self, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        """Stream the trace points; the header keys (``icao``, ``timestamp``, ``r``, ``t``) come first."""
        limits = options.limits
        rows = _Rows(options)
        with open_source(path, limits) as fh:
            win = Utf8Window(fh, fh.read(READ_BYTES))
            sent = 0
            m = _TRACE_RE.search(win.text)
            while m is None and not win.eof and len(win.text) < limits.max_record_bytes:
                win.more()
                m = _TRACE_RE.search(win.text)
            header: Any = None
            if m is not None:
                prefix = win.text[: m.start()].lstrip("\ufeff \t\r\n").rstrip().rstrip(",")
                try:
                    header = json.loads(prefix + "}")
                except (ValueError, RecursionError):
                    header = None
            if m is None or not isinstance(header, dict) or "timestamp" not in header:
                # keys in another order (a re-serialised file): small enough to parse whole, or not a trace
                doc = _read_whole(win, path, limits.max_document_bytes, "a trace file whose 'trace' comes first")
                if not isinstance(doc, dict) or not isinstance(doc.get("trace"), list):
                    raise IngestError(
                        f"{path}: not a readsb/tar1090 trace file (no 'trace' list); 0 records read",
                        hint="trace files are objects with 'icao', 'timestamp' and 'trace'; pass the right --format",
                    )
                rows.nbytes = win.nbytes
                yield from self._points(path, doc, enumerate(doc["trace"], 1), rows)
                yield rows.flush()
                return
            items = _stream_array(win, m.end(), limits, _POINT_START_RE, "trace", rows)
            for batch in self._points(path, header, items, rows):
                batch.bytes_read += win.nbytes - sent
                sent = win.nbytes
                yield batch
            rows.nbytes += win.nbytes - sent
            yield rows.flush()

    def _points(
        self, path: Path, header: dict[str, Any], items: Iterator[tuple[int, Any]], rows: _Rows
    ) -> Iterator[ParsedBatch]:
        ident = _ident(header.get("icao"))
        base = epoch_us(header.get("timestamp"))
        if ident is None or base is None:
            raise IngestError(
                f"{path}: trace header has a bad icao ({header.get('icao')!r}) or timestamp"
                f" ({header.get('timestamp')!r}); 0 records read",
                hint='a readsb trace starts {"icao": "3c66b0", "timestamp": <epoch s>, "trace": [...]}',
            )
        static: dict[str, Any] = {}
        for key, name in (("r", "registration"), ("t", "type_code"), ("desc", "type_desc")):
            if isinstance(header.get(key), str) and header[key]:
                static[name] = header[key]
        leg = 0
        callsign: str | None = None
        squawk: str | None = None
        for rec, p in items:
            rows.records += 1
            if not isinstance(p, list) or len(p) < 3:
                rows.reject(rec, "trace point is not a list [dt, lat, lon, …]", p)
                continue
            p = p + [None] * (14 - len(p))
            dt, lat, lon, alt, gs, trk, flags, vrate, details, source, geom_alt, geom_rate, ias, roll = p[:14]
            fl = flags if isinstance(flags, int) and not isinstance(flags, bool) else 0
            if fl & 2 or leg == 0:
                leg += 1
                callsign = squawk = None
            if isinstance(details, dict):
                if isinstance(details.get("flight"), str) and details["flight"].strip():
                    callsign = details["flight"].strip()
                if isinstance(details.get("squawk"), str) and details["squawk"].strip():
                    squawk = details["squawk"].strip()
            if not finite_number(dt) or not abs(float(dt)) < 1e9:
                rows.reject(rec, f"bad time offset {dt!r} (seconds after the file's timestamp)", p)
                continue
            la, lo, why = _position(lat, lon)
            if why is not None:
                rows.reject(rec, why, p)
                continue
            if la != la:
                continue  # no position: routine, skipped
            attrs: dict[str, Any] = {"leg": leg}
            ground = alt == "ground"
            if ground:
                attrs["on_ground"] = True
            elif finite_number(alt):
                attrs["on_ground"] = False
            elif alt is not None:
                rows.reject(rec, f"bad altitude {alt!r} (feet, 'ground' or null)", p)
                continue
            if fl & 1:
                attrs["stale"] = True
            if fl & 8:
                attrs["alt_geometric"] = True
            if squawk:
                attrs["squawk"] = squawk
            if finite_number(vrate):
                attrs["vertrate_mps"] = round(float(vrate) * FPM_TO_MPS, 3)
            if finite_number(geom_alt):
                attrs["geom_alt_m"] = round(float(geom_alt) * FT_TO_M, 2)
            if finite_number(geom_rate):
                attrs["geom_rate_mps"] = round(float(geom_rate) * FPM_TO_MPS, 3)
            if finite_number(ias):
                attrs["ias_mps"] = round(float(ias) * KT_TO_MPS, 3)
            if finite_number(roll):
                attrs["roll_deg"] = float(roll)
            if isinstance(source, str) and source:
                attrs["source"] = source
            attrs.update(static)
            rows.add(
                rec=rec,
                t_us=base + round(float(dt) * _US),
                lon=lo,
                lat=la,
                alt=float("nan") if ground else _f(alt) * FT_TO_M,
                speed=_f(gs) * KT_TO_MPS,
                course=_f(trk),
                ident=ident,
                name=callsign,
                attrs=attrs,
            )
            if len(rows) >= rows.options.batch_rows:
                yield rows.flush()


# --------------------------------------------------------------------------- OpenSky / traffic / pandas records

_RECORD_START_RE = re.compile(r'\{\s*"')
_IDENT_KEYS = ("icao24", "icao", "hex")


def _first(rec: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        v = rec.get(k)
        if v is not None:
            return v
    return None


def _record_row(rows: _Rows, rec_no: int, rec: Any) -> None:
    """One state-vector record: a row, a reject, or nothing (no position)."""
    rows.records += 1
    if not isinstance(rec, dict):
        rows.reject(rec_no, "record is not an object", rec)
        return
    ident = _ident(_first(rec, _IDENT_KEYS))
    if ident is None:
        rows.reject(rec_no, f"bad or missing icao24 {_first(rec, _IDENT_KEYS)!r} (6 hex digits)", rec)
        return
    la, lo, why = _position(_first(rec, ("latitude", "lat")), _first(rec, ("longitude", "lon")))
    if why is not None:
        rows.reject(rec_no, why, rec)
        return
    if la != la:
        return  # heard but not located: routine, skipped
    t_raw = _first(rec, ("lastposupdate", "last_position", "timestamp", "time"))
    t_us = epoch_us(t_raw)
    if t_us is None:
        rows.reject(rec_no, f"bad or missing time {t_raw!r}", rec)
        return
    metric = any(k in rec for k in _METRIC_KEYS)
    geo_unit = 1.0 if metric else FT_TO_M
    alt = _f(rec.get("geoaltitude")) * geo_unit
    if alt != alt:
        alt = _f(rec.get("geo_altitude"))
    if alt != alt:
        alt = _f(_first(rec, ("baroaltitude", "baro_altitude")))
    if alt != alt:
        alt = _f(rec.get("altitude")) * FT_TO_M
    speed = _f(rec.get("velocity"))
    if speed != speed:
        speed = _f(rec.get("groundspeed")) * KT_TO_MPS
    # the direction of motion: ``track`` when the record has one (in traffic's tables ``heading`` is where the
    # nose points, off the track by the wind drift; it is kept in attrs), else OpenSky's ``heading`` (its true track)
    course = _f(_first(rec, ("track", "true_track")))
    attrs: dict[str, Any] = {}
    heading = _f(rec.get("heading"))
    if course != course:
        course = heading
    elif heading == heading:
        attrs["heading_deg"] = heading
    vr = _f(rec.get("vertrate"))
    if vr != vr:
        vr = _f(rec.get("vertical_rate")) * (1.0 if metric else FPM_TO_MPS)
    if vr == vr:
        attrs["vertrate_mps"] = round(vr, 3)
    og = _first(rec, ("onground", "on_ground"))
    if isinstance(og, bool):
        attrs["on_ground"] = og
    sq = rec.get("squawk")
    if isinstance(sq, int) and not isinstance(sq, bool):
        sq = f"{sq:04d}"
    if isinstance(sq, str) and sq.strip():
        attrs["squawk"] = sq.strip()
    cs = _first(rec, ("callsign", "flight"))
    rows.add(
        rec=rec_no, t_us=t_us, lon=lo, lat=la, alt=alt, speed=speed, course=course, ident=ident,
        name=cs.strip() or None if isinstance(cs, str) else None, attrs=attrs,
    )  # fmt: skip


def _records_of(doc: Any, path: Path) -> list[Any]:
    """The records of a whole pandas-style document (orient columns, index, split or table)."""
    if isinstance(doc, list):
        return doc
    if not isinstance(doc, dict):
        raise IngestError(f"{path}: not a table of ADS-B records; 0 records read", hint="pass the right --format")
    if isinstance(doc.get("data"), list) and isinstance(doc.get("columns"), list):  # split
        cols = doc["columns"]
        return [dict(zip(cols, r, strict=False)) if isinstance(r, list) else r for r in doc["data"]]
    if isinstance(doc.get("data"), list) and isinstance(doc.get("schema"), dict):  # table
        return list(doc["data"])
    if doc and all(isinstance(v, dict) for v in doc.values()):
        first = next(iter(doc.values()))
        if any(k in first for k in _IDENT_KEYS):  # index: {"0": {record}, …}
            return list(doc.values())
        if any(k in doc for k in _IDENT_KEYS):  # columns: {"col": {"0": v, …}, …}
            keys: dict[str, None] = {}
            for col in doc.values():
                keys.update(dict.fromkeys(col))
            return [{c: doc[c].get(k) for c in doc} for k in keys]
    if any(k in doc for k in _IDENT_KEYS) and not any(isinstance(v, dict | list) for v in doc.values()):
        return [doc]  # a single record
    raise IngestError(
        f"{path}: a JSON object that is no pandas table of ADS-B records (no icao24 column); 0 records read",
        hint="expected records, lines, or orient columns/index/split/table with an icao24 column",
    )


class AdsbRecordsReader:
    """Reader for OpenSky/``traffic`` state-vector tables as JSON (records, lines, pandas orients; ``.gz``)."""

    name: str = "adsb-records"
    extensions: tuple[str, ...] = (".json", ".jsonl", ".ndjson")

    def sniff(self, head: bytes, path: Path) -> float:
        """High for records or pandas orients naming ``icao24`` and a position."""
        h = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:65536]
        if b'"features"' in h or b'"states"' in h or b'"trace"' in h:
            return 0.0
        ident = re.search(rb'"(icao24|icao|hex)"', h) is not None
        pos = re.search(rb'"(lat|latitude)"', h) is not None
        if h.startswith(b"[") and re.match(rb"\[\s*\{", h) and ident and pos:
            return 0.9
        if h.startswith(b"{") and ident and (pos or b'"columns"' in h):
            return 0.85
        # orient="columns" of a large table: the first column's values fill the head
        m = re.match(rb'\{\s*"(timestamp|time|icao24|callsign|lat|latitude)"\s*:\s*\{\s*"0"\s*:', h)
        return 0.8 if m else 0.0

    def read(self, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        """Stream an array or lines of records; parse the column-wise pandas orients whole."""
        limits = options.limits
        rows = _Rows(options)
        with open_source(path, limits) as fh:
            win = Utf8Window(fh, fh.read(READ_BYTES))
            sent = 0
            text = win.text
            start = len(text) - len(text.lstrip("\ufeff \t\r\n"))
            if text[start : start + 1] == "[":
                for rec_no, rec in _stream_array(win, start + 1, limits, _RECORD_START_RE, "record", rows):
                    _record_row(rows, rec_no, rec)
                    if len(rows) >= options.batch_rows:
                        rows.nbytes += win.nbytes - sent
                        sent = win.nbytes
                        yield rows.flush()
            elif self._is_lines(text, start, limits):
                yield from self._lines(win, start, rows)
                sent = win.nbytes
            elif text[start : start + 1] == "{":
                doc = _read_whole(win, path, limits.max_document_bytes, "a pandas table (orient columns/split/…)")
                for rec_no, rec in enumerate(_records_of(doc, path), 1):
                    _record_row(rows, rec_no, rec)
                    if len(rows) >= options.batch_rows:
                        yield rows.flush()
            elif text.strip():
                raise IngestError(
                    f"{path}: not a JSON table of ADS-B records; 0 records read", hint="pass the right --format"
                )
            rows.nbytes += win.nbytes - sent
            yield rows.flush()

    @staticmethod
    def _is_lines(text: str, start: int, limits: ReaderLimits) -> bool:
        """One object per line: the first line is a whole record with an ICAO address."""
        nl = text.find("\n", start)
        first = text[start : nl if nl >= 0 else len(text)]
        obj, _end, why = decode_at(first, 0, max_depth=limits.max_depth)
        return why is None and isinstance(obj, dict) and any(k in obj for k in _IDENT_KEYS) and nl >= 0

    def _lines(self, win: Utf8Window, pos: int, rows: _Rows) -> Iterator[ParsedBatch]:
        limits = rows.options.limits
        line_no = 0
        sent = 0
        while True:
            text = win.text
            nl = text.find("\n", pos)
            if nl < 0 and not win.eof:
                if len(text) - pos > limits.max_line_bytes:
                    line_no += 1
                    rows.records += 1
                    rows.reject(line_no, f"line longer than {limits.max_line_bytes} bytes", text[pos : pos + 512])
                    while nl < 0 and not win.eof:
                        pos = win.more(keep_from=len(win.text))
                        nl = win.text.find("\n")
                    pos = nl + 1 if nl >= 0 else len(win.text)
                    continue
                pos = win.more(keep_from=pos)
                continue
            end = nl if nl >= 0 else len(text)
            line = text[pos:end].strip()
            if nl < 0 and not line:
                break
            line_no += 1
            if line:
                rec, stop, why = decode_at(line, 0, max_depth=limits.max_depth)
                if why is None and line[stop:].strip():
                    why = "not valid JSON (extra data after the record)"
                if why is not None:
                    rows.records += 1
                    rows.reject(line_no, why, line)
                else:
                    _record_row(rows, line_no, rec)
            pos = end + 1
            if len(rows) >= rows.options.batch_rows:
                rows.nbytes += win.nbytes - sent
                sent = win.nbytes
                yield rows.flush()
            if pos > READ_BYTES:
                pos = win.drop(pos)
            if nl < 0:
                break
        rows.nbytes += win.nbytes - sent
