"""GeoJSON reader: FeatureCollections of points and GeoJSON Text Sequences.

Two layouts are read, both streaming with bounded memory:

- a ``FeatureCollection`` (or a single ``Feature``): the ``features`` array is
  split into top-level features incrementally (``json.JSONDecoder.raw_decode``
  on a sliding buffer), so memory holds one buffer and one batch, never the
  whole file. ``src_rec`` is the 0-based index in ``features``.
- newline-delimited features or RFC 8142 text sequences (``\\x1e`` record
  separators): one feature per record. ``src_rec`` is the 1-based line number.

Properties map onto observation columns exactly like CSV columns
(:func:`atalaya.ingest.tabular.plan_columns`); the remaining properties go to
``attrs`` as JSON with their original types. ``Point`` geometries give
lon/lat (and ``alt_m`` from a third coordinate unless a property gives it);
``MultiPoint`` expands to one row per point; other geometries are rejected.

>>> GeoJsonReader().sniff(b'{"type": "FeatureCollection", "features": []}', Path("a.json"))
1.0
>>> GeoJsonReader().sniff(b'{"time": 1, "states": []}', Path("a.json"))
0.0
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from atalaya.core.errors import IngestError
from atalaya.ingest.base import ParsedBatch, ReadOptions, Reject, open_source
from atalaya.ingest.jsonstream import READ_BYTES, Utf8Window, decode_at, depth_exceeds, finite_number
from atalaya.ingest.tabular import ALIASES, CANONICAL, ColumnPlan, convert_table, plan_columns

__all__ = ["GeoJsonReader"]

_READ_BYTES = READ_BYTES
_FEATURES_RE = re.compile(r'"features"\s*:\s*\[')
_FEATURE_START_RE = re.compile(r'\{\s*"type"\s*:\s*"Feature"')
_TYPE_RE = re.compile(rb'^\s*(?:\x1e\s*)?\{\s*"type"\s*:\s*"(FeatureCollection|Feature)"')


class GeoJsonReader:
    """GeoJSON FeatureCollections and feature sequences of Point/MultiPoint features."""

    name = "geojson"
    extensions: tuple[str, ...] = (".geojson", ".json", ".geojsonl", ".geojsons", ".ndjson")

    def sniff(self, head: bytes, path: Path) -> float:
        """Claim only GeoJSON FeatureCollection/Feature documents (not other JSON such as STIX or OpenSky)."""
        text = head.lstrip(b"\xef\xbb\xbf")
        if _TYPE_RE.match(text):
            return 1.0
        stripped = text.lstrip()
        if stripped.startswith(b"{") and b'"FeatureCollection"' in text[:4096] and b'"features"' in text:
            return 0.8
        return 0.0

    def read(self, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        """Stream features in batches of ``options.batch_rows``."""
        with open_source(path, options.limits) as fh:
            head = fh.read(_READ_BYTES)
            head_text = head.lstrip(b"\xef\xbb\xbf")
            m = _TYPE_RE.match(head_text)
            stripped = head_text.lstrip()
            if stripped.startswith(b"\x1e") or (m and m.group(1) == b"Feature" and b"\n{" in head_text):
                yield from self._read_sequence(fh, head_text, path, options)
            elif stripped.startswith(b"{"):
                yield from self._read_collection(fh, head_text, path, options)
            else:
                raise IngestError(
                    f"{path}: not a GeoJSON FeatureCollection or feature sequence",
                    hint="pass --format with the right format, or convert the file to GeoJSON",
                )

    # ------------------------------------------------------------------ layouts

    def _read_sequence(self, fh: Any, head: bytes, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        batch = _Batch(path=path, options=options)
        max_line = options.limits.max_line_bytes
        max_depth = options.limits.max_depth
        buf = head
        line = 1
        eof = False
        while True:
            if not eof and len(buf) < _READ_BYTES:
                more = fh.read(_READ_BYTES)
                buf += more
                eof = not more
            cut = buf.rfind(b"\n") + 1 if not eof else len(buf)
            if cut == 0:
                if len(buf) > max_line:
                    end = buf.find(b"\n")
                    while end < 0 and not eof:
                        more = fh.read(_READ_BYTES)
                        eof = not more
                        buf = buf[: max_line + 1] + more
                        end = buf.find(b"\n")
                    batch.reject(line, f"record longer than {max_line} bytes", buf[:512])
                    buf = buf[end + 1 :] if end >= 0 else b""
                    line += 1
                    continue
                if eof:
                    break
                continue
            chunk, buf = buf[:cut], buf[cut:]
            for raw in chunk.split(b"\n"):
                rec = raw.strip(b"\x1e \t\r")
                if rec:
                    if len(rec) > max_line:
                        batch.reject(line, f"record longer than {max_line} bytes", rec)
                    else:
                        try:
                            obj = json.loads(rec)
                        except RecursionError:
                            batch.reject(line, f"nested deeper than {max_depth} levels", rec)
                        except ValueError as e:  # bad JSON, bad UTF-8, or a number too long to convert
                            batch.reject(line, f"not valid JSON: {e}", rec)
                        else:
                            if rec.count(b"[") + rec.count(b"{") > max_depth and depth_exceeds(
                                text := rec.decode("utf-8", "replace"), 0, len(text), max_depth
                            ):
                                batch.reject(line, f"nested deeper than {max_depth} levels", rec)
                            else:
                                batch.add_feature(obj, line, rec)
                line += 1
                if len(batch) >= options.batch_rows:
                    yield batch.flush()
            line -= 1  # the split after the final newline yields an empty piece
            if eof and not buf:
                break
        yield batch.flush()

    def _read_collection(self, fh: Any, head: bytes, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        batch = _Batch(path=path, options=options)
        limits = options.limits
        decoder = _Utf8Stream(fh, head)
        text = decoder.text
        m = _FEATURES_RE.search(text)
        while m is None and not decoder.eof:
            decoder.more()
            text = decoder.text
            m = _FEATURES_RE.search(text)
        if m is None:
            # A single Feature (small by nature): parse it whole.
            decoder.read_all(limit=limits.max_document_bytes)
            start = len(decoder.text) - len(decoder.text.lstrip("\ufeff \t\r\n"))
            obj, end, why = decode_at(decoder.text, start, max_depth=limits.max_depth)
            if why is None and decoder.text[end:].strip():
                why = "not valid JSON (extra data after the feature)"
            if why is not None:
                batch.reject(0, why, decoder.text[:512])
                yield batch.flush()
                return
            if not isinstance(obj, dict) or obj.get("type") != "Feature":
                raise IngestError(
                    f"{path}: no 'features' array and not a single Feature",
                    hint="a GeoJSON FeatureCollection must have a 'features' array",
                )
            batch.add_feature(obj, 0, b"")
            yield batch.flush()
            return
        pos = m.end()
        index = 0
        while True:
            text = decoder.text
            # skip separators
            while pos < len(text) and text[pos] in " \t\r\n,":
                pos += 1
            if pos >= len(text):
                if decoder.eof:
                    batch.reject(index, "file ends inside the 'features' array (truncated?)", b"")
                    break
                pos = decoder.more(keep_from=pos)
                continue
            if text[pos] == "]":
                break
            obj, end, why = decode_at(text, pos, max_depth=limits.max_depth)
            if why is not None:
                if why.startswith("not valid JSON") and not decoder.eof and len(text) - pos < limits.max_record_bytes:
                    pos = decoder.more(keep_from=pos)
                    continue
                if why.startswith("not valid JSON") and not decoder.eof:
                    why = f"feature longer than {limits.max_record_bytes} characters"
                raw = text[pos : pos + 512]
                nxt = _FEATURE_START_RE.search(text, max(end, pos + 1))
                while nxt is None and not decoder.eof:  # skip the bad stretch without holding it
                    pos = decoder.more(keep_from=max(0, len(text) - 64))
                    text = decoder.text
                    nxt = _FEATURE_START_RE.search(text, 1)
                if nxt is None:
                    batch.reject(index, f"{why}; the rest of the file is unreadable", raw)
                    break
                batch.reject(index, f"{why}; skipped to the next feature", raw)
                index += 1
                pos = nxt.start()
                continue
            batch.add_feature(obj, index, text[pos : min(end, pos + 512)])
            index += 1
            pos = end
            if len(batch) >= options.batch_rows:
                yield batch.flush()
            if pos > _READ_BYTES:
                pos = decoder.drop(pos)
        yield batch.flush()


class _Utf8Stream(Utf8Window):
    """The text window, able to read a small document whole."""

    def read_all(self, limit: int) -> None:
        while not self.eof:
            if len(self.text) > limit:
                raise IngestError(
                    "GeoJSON document without a 'features' array is too large",
                    hint="write one feature per line (GeoJSON Text Sequence) for large inputs",
                )
            self.more()


class _Batch:
    """Accumulates features of one batch column-wise, then converts them with the shared mapping."""

    def __init__(self, *, path: Path, options: ReadOptions) -> None:
        self.path = path
        self.options = options
        self.props: list[dict[str, Any]]
        self.lon: list[float]
        self.lat: list[float]
        self.alt: list[float]
        self.recs: list[int]
        self.raws: list[str]
        self.rejects: list[Reject]
        self.records: int
        self._reset()
        self.plans: dict[tuple[str, ...], ColumnPlan] = {}

    def __len__(self) -> int:
        return len(self.recs)

    def reject(self, rec: int, reason: str, raw: bytes | str) -> None:
        self.records += 1
        self.rejects.append(Reject(src_rec=rec, reason=reason, raw=Reject.excerpt(raw)))

    def add_feature(self, obj: Any, rec: int, raw: bytes | str) -> None:
        if not isinstance(obj, dict) or obj.get("type") != "Feature":
            self.reject(rec, "not a GeoJSON Feature", raw)
            return
        geom = obj.get("geometry")
        props = obj.get("properties") or {}
        if not isinstance(props, dict):
            self.reject(rec, "'properties' is not an object", raw)
            return
        if not isinstance(geom, dict):
            self.reject(rec, "feature has no geometry", raw)
            return
        gtype = geom.get("type")
        coords = geom.get("coordinates")
        if gtype == "Point":
            points = [coords]
        elif gtype == "MultiPoint" and isinstance(coords, list):
            points = coords
        else:
            self.reject(rec, f"geometry type {gtype!r} is not a Point or MultiPoint", raw)
            return
        if "id" in obj and "id" not in props:
            props = {**props, "id": obj["id"]}
        self.records += 1
        for p in points:
            if not isinstance(p, list) or len(p) < 2 or not all(finite_number(c) for c in p[:3]):
                self.reject(rec, f"bad coordinates {Reject.excerpt(repr(p))[:200]}", raw)
                continue
            self.lon.append(float(p[0]))
            self.lat.append(float(p[1]))
            self.alt.append(float(p[2]) if len(p) > 2 else float("nan"))
            self.props.append(props)
            self.recs.append(rec)
            self.raws.append(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw)

    def flush(self) -> ParsedBatch:
        n = len(self.recs)
        if n == 0:
            empty = ParsedBatch(columns={}, rejects=list(self.rejects), records_read=self.records)
            self._reset()
            return empty
        keys: dict[str, None] = {}
        for p in self.props:
            for k in p:
                keys[k] = None
        names = list(keys)
        plan = self.plans.get(tuple(names))
        if plan is None:
            opts = self.options
            plan = plan_columns(names, opts, required=("time", "sensor", "kind"), source=str(self.path))
            self.plans[tuple(names)] = plan
        # Features of one batch may name a column differently ("time" here, "timestamp" there):
        # an extra property that is an alias of a mapped column fills that column where it is missing.
        fallback: dict[str, list[str]] = {}
        by_target = {v: k for k, v in plan.targets.items()}
        extras = []
        for k in plan.extras:
            low = k.strip().lower()
            dst = low if low in CANONICAL else ALIASES.get(low, ("", {}))[0]
            if dst in by_target and k not in self.options.column_map:
                fallback.setdefault(by_target[dst], []).append(k)
            else:
                extras.append(k)
        cols: dict[str, pa.Array] = {}
        for k in plan.targets:
            alts = fallback.get(k, [])
            cols[k] = _column([_first(p, k, alts) for p in self.props])
        plan = ColumnPlan(targets=plan.targets, extras=tuple(extras), implied=plan.implied, defaults=plan.defaults)
        targets = {k: v for k, v in plan.targets.items() if v not in ("lon", "lat")}
        cols["__lon"] = pa.array(self.lon, type=pa.float64())
        cols["__lat"] = pa.array(self.lat, type=pa.float64())
        targets["__lon"] = "lon"
        targets["__lat"] = "lat"
        alt = np.array(self.alt, dtype=np.float64)
        if "alt_m" not in targets.values():
            cols["__alt"] = pa.array(alt)
            targets["__alt"] = "alt_m"
        attrs = None
        if plan.extras:
            attrs = pa.array(
                [_attrs_json({k: p[k] for k in plan.extras if k in p}) for p in self.props],
                type=pa.string(),
            )
        table = pa.table(cols) if cols else pa.table({"__lon": pa.array([], pa.float64())})
        sub = ColumnPlan(targets=targets, extras=(), implied=plan.implied, defaults=plan.defaults)
        raws = self.raws
        out, rej = convert_table(
            table, sub, np.array(self.recs, dtype=np.int64), lambda i: Reject.excerpt(raws[i]), attrs=attrs
        )
        batch = ParsedBatch(
            columns=out,
            rejects=sorted([*self.rejects, *rej], key=lambda r: r.src_rec),
            records_read=self.records,
        )
        self._reset()
        return batch

    def _reset(self) -> None:
        self.props = []
        self.lon = []
        self.lat = []
        self.alt = []
        self.recs = []
        self.raws = []
        self.rejects = []
        self.records = 0


def _attrs_json(extra: dict[str, Any]) -> str | None:
    return json.dumps(extra, ensure_ascii=False, default=str) if extra else None


def _first(props: dict[str, Any], key: str, alternatives: list[str]) -> Any:
    v = props.get(key)
    for a in alternatives:
        if v is not None:
            break
        v = props.get(a)
    return v


def _column(values: list[Any]) -> pa.Array:
    """An Arrow array from property values; mixed or nested values become strings (JSON for objects)."""
    try:
        arr = pa.array(values)
        if not (pa.types.is_struct(arr.type) or pa.types.is_list(arr.type)):
            return arr
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass
    return pa.array(
        [
            None
            if v is None
            else (
                json.dumps(v, ensure_ascii=False)
                if isinstance(v, dict | list)
                else str(v).lower()
                if isinstance(v, bool)
                else str(v)
            )
            for v in values
        ],
        type=pa.string(),
    )
