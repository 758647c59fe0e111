"""Tabular readers: CSV and GeoParquet, and the column mapping shared with GeoJSON.

The documented mapping (``docs/formats-tabular.md``) turns arbitrary source
column names into the observation schema (:mod:`atalaya.model.observation`):

1. ``ReadOptions.column_map`` (source → observation column; ``""`` or ``"-"``
   drops a column), matched exactly, then case-insensitively;
2. the canonical names themselves, case-insensitively;
3. built-in aliases (``ALIASES``), case-insensitively; some aliases imply an
   identifier kind (``mmsi`` → ``ident`` with ``ident_kind = "mmsi"``);
4. everything else goes to ``attrs`` as one JSON object per row.

Conversion is column-wise and vectorised with Arrow compute. The fast path
casts whole columns; only when a cast fails are masks computed, and only the
failing rows become :class:`~atalaya.ingest.base.Reject` objects naming the
column and the value.

CSV is read in blocks cut at line ends (and never inside a quoted field), each
block parsed by ``pyarrow.csv`` on a small thread pool, so line numbers stay
exact (see the docs for the one case where they are approximate). Mapped
columns are parsed typed (zoned ISO 8601 times, float64 numbers, dictionary
strings for enums and platform/sortie ids); a column whose typed parse fails,
or whose values a typed parse would reject, is read as text from then on and
goes through the general conversion above, so rejects read the same either way.

>>> plan = plan_columns(["Timestamp", "LNG", "lat", "MMSI", "sensor", "kind", "note"], ReadOptions())
>>> plan.targets["Timestamp"], plan.targets["LNG"], plan.targets["MMSI"], plan.implied
('time', 'lon', 'ident', {'ident_kind': 'mmsi'})
>>> plan.extras
('note',)
>>> plan_columns([], ReadOptions(defaults={"sensor": "EO"}), required=()).targets
{}
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import io
import json
import os
import queue
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from numpy.lib.stride_tricks import sliding_window_view

from atalaya.core.errors import IngestError, UnreadableInputError
from atalaya.ingest.base import (
    DEFAULT_LIMITS,
    MAX_LINE_BYTES,
    ParsedBatch,
    ReaderLimits,
    ReadOptions,
    Reject,
    logical_suffix,
    open_source,
)
from atalaya.ingest.validate import bool_array, from_numpy, np_values, string_array, valid_mask
from atalaya.model.observation import SOURCE_COLUMNS, IdentKind, ObjectKind, Sensor

__all__ = [
    "ALIASES",
    "CANONICAL",
    "ColumnPlan",
    "CsvReader",
    "ParquetReader",
    "convert_table",
    "plan_columns",
]

CANONICAL: tuple[str, ...] = SOURCE_COLUMNS
"""Observation columns a tabular source may supply."""

ALIASES: dict[str, tuple[str, dict[str, str]]] = {
    **{a: ("time", {}) for a in ("timestamp", "datetime", "dtg", "time_utc", "date_time", "ts", "t")},
    **{a: ("lon", {}) for a in ("longitude", "long", "lng", "x", "lon_deg")},
    **{a: ("lat", {}) for a in ("latitude", "y", "lat_deg")},
    **{a: ("alt_m", {}) for a in ("altitude", "alt", "hae", "z", "elevation", "height", "altitude_m")},
    **{a: ("pos_err_m", {}) for a in ("pos_err", "cep", "ce", "err_major_m", "semi_major_m", "accuracy_m")},
    **{a: ("err_minor_m", {}) for a in ("err_minor", "semi_minor_m")},
    **{a: ("err_orient_deg", {}) for a in ("err_orient", "orientation_deg", "ellipse_orient_deg")},
    **{a: ("speed_mps", {}) for a in ("speed", "speed_ms", "velocity", "sog_mps")},
    **{a: ("course_deg", {}) for a in ("course", "heading", "cog", "track", "bearing", "true_track")},
    **{a: ("sensor", {}) for a in ("sensor_type", "sensor_kind", "source_type")},
    **{a: ("kind", {}) for a in ("object_kind", "object_type", "target_type", "category", "class")},
    **{a: ("ident", {}) for a in ("id", "identifier", "object_id", "target_id")},
    "mmsi": ("ident", {"ident_kind": "mmsi"}),
    "icao24": ("ident", {"ident_kind": "icao24"}),
    "hex": ("ident", {"ident_kind": "icao24"}),
    "icao": ("ident", {"ident_kind": "icao24"}),
    "uid": ("ident", {"ident_kind": "cot_uid"}),
    "emitter_id": ("ident", {"ident_kind": "emitter"}),
    "plate": ("ident", {"ident_kind": "plate"}),
    "callsign": ("name", {}),
    "vessel_name": ("name", {}),
    "label": ("name", {}),
    "conf": ("confidence", {}),
    "score": ("confidence", {}),
    "probability": ("confidence", {}),
    "platform": ("platform_id", {}),
    "sortie": ("sortie_id", {}),
}
"""Lower-case alias → (observation column, constants implied by the alias)."""

_FLOAT64 = ("lon", "lat")
_FLOAT32 = ("alt_m", "pos_err_m", "err_minor_m", "err_orient_deg", "speed_mps", "course_deg", "confidence")
_ENUMS: dict[str, tuple[str, ...]] = {
    "sensor": tuple(s.value for s in Sensor),
    "kind": tuple(k.value for k in ObjectKind),
    "ident_kind": tuple(k.value for k in IdentKind),
}
_STRINGS = ("ident", "name", "platform_id", "sortie_id")
_DICT_STRINGS = ("platform_id", "sortie_id")
_NUM_RE = r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"
_ISO_RE = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}([.,]\d{1,9})?)?)?"
_ZONE_RE = r"(Z|z|[+-]\d{2}(:?\d{2})?)$"
_EPOCH_MS = 1e11
"""Epoch values with magnitude at or above this are milliseconds (below: seconds)."""
_EPOCH_US = 1e14
"""Epoch values with magnitude at or above this are microseconds."""


def _norm_enum(text: str) -> str:
    return re.sub(r"[-_ ./]", "", text.strip().upper())


_ENUM_LOOKUP: dict[str, dict[str, str]] = {col: {_norm_enum(v): v for v in values} for col, values in _ENUMS.items()}
_ENUM_LOOKUP["kind"].update({"SHIP": "vessel", "BOAT": "vessel", "PLANE": "aircraft", "CAR": "vehicle"})
_ENUM_LOOKUP["sensor"].update({"ADSB": "ADSB", "SIGNALS": "SIGINT", "OPTICAL": "EO", "THERMAL": "IR"})


@dataclass(frozen=True, kw_only=True)
class ColumnPlan:
    """How the columns of one source map onto the observation schema."""

    targets: dict[str, str]
    """Source column → observation column, for the columns that map."""
    extras: tuple[str, ...]
    """Source columns kept in ``attrs`` (in source order)."""
    implied: dict[str, str] = field(default_factory=dict)
    """Constants implied by aliases (``mmsi`` → ``{"ident_kind": "mmsi"}``)."""
    defaults: dict[str, Any] = field(default_factory=dict)
    """Constants from ``ReadOptions.defaults`` (fill absent columns and missing values)."""


def plan_columns(
    names: Sequence[str],
    options: ReadOptions,
    *,
    required: Sequence[str] = ("time", "lon", "lat", "sensor", "kind"),
    source: str = "input",
) -> ColumnPlan:
    """Decide which source column feeds which observation column.

    Raises :class:`IngestError` when a required column is neither found nor
    defaulted, with a hint listing the columns found and how to map them.
    """
    cmap = dict(options.column_map)
    cmap_ci = {k.lower(): v for k, v in cmap.items()}
    targets: dict[str, str] = {}
    implied: dict[str, str] = {}
    extras: list[str] = []
    taken: set[str] = set()
    # Pass 1: explicit map and canonical names win over aliases.
    pending: list[str] = []
    for n in names:
        low = n.strip().lower()
        dst = cmap.get(n, cmap_ci.get(low))
        if dst is not None:
            if dst in ("", "-"):
                continue
            if dst == "attrs":
                extras.append(n)
                continue
            if dst not in CANONICAL:
                raise IngestError(
                    f"column map of {source}: {n!r} → {dst!r} is not an observation column",
                    hint="map to one of: " + ", ".join(CANONICAL) + " (or '-' to drop, 'attrs' to keep as extra)",
                )
            targets[n] = dst
            taken.add(dst)
        elif low in CANONICAL and low not in taken:
            targets[n] = low
            taken.add(low)
        else:
            pending.append(n)
    for n in pending:
        low = n.strip().lower()
        alias = ALIASES.get(low)
        if alias is not None and alias[0] not in taken:
            targets[n] = alias[0]
            taken.add(alias[0])
            for k, v in alias[1].items():
                if k not in taken:
                    implied[k] = v
        else:
            extras.append(n)
    defaults = dict(options.defaults)
    for k in defaults:
        if k not in CANONICAL:
            raise IngestError(
                f"default for {k!r} is not an observation column",
                hint="use --set with one of: " + ", ".join(CANONICAL),
            )
    missing = [c for c in required if c not in taken and c not in defaults and c not in implied]
    if missing:
        found = ", ".join(names) if names else "(none)"
        raise IngestError(
            f"{source}: no column for {', '.join(missing)} (columns found: {found})",
            hint="map a source column with --map SRC=DST (e.g. --map when=time) "
            "or give a constant with --set (e.g. --set sensor=EO --set kind=vehicle)",
        )
    return ColumnPlan(targets=targets, extras=tuple(extras), implied=implied, defaults=defaults)


# --------------------------------------------------------------------------- conversion


@dataclass
class _Rows:
    """Mutable per-batch state while converting: which rows are still good, and the rejects."""

    n: int
    lines: npt.NDArray[np.int64]
    raw: Callable[[int], str]
    ok: npt.NDArray[np.bool_]
    rejects: dict[int, Reject]
    columns: set[str] = field(default_factory=set)
    """Columns that produced at least one reject."""

    def reject(self, bad: npt.NDArray[np.bool_], column: str, values: pa.Array, why: str) -> None:
        """Reject rows in ``bad`` (still good ones only), naming the column and the value."""
        idx = np.flatnonzero(bad & self.ok)
        if idx.size == 0:
            return
        self.ok[idx] = False
        self.columns.add(column)
        shown = values.take(from_numpy(idx.astype(np.int64), pa.int64())).to_pylist()
        for i, v in zip(idx.tolist(), shown, strict=True):
            line = int(self.lines[i])
            self.rejects[i] = Reject(src_rec=line, reason=f"{why} in column {column!r}: {v!r}", raw=self.raw(i))


def _np_bool(a: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.bool_]:
    """A boolean Arrow array as NumPy, false where null (through the buffers: no pandas import)."""
    if isinstance(a, pa.ChunkedArray):
        a = a.combine_chunks()
    if not pa.types.is_boolean(a.type):
        raise TypeError(f"expected booleans, got {a.type}")
    n = len(a)
    if n == 0:
        return np.zeros(0, dtype=bool)
    bits = np.unpackbits(np.frombuffer(a.buffers()[1], dtype=np.uint8), count=a.offset + n, bitorder="little")
    out = bits[a.offset :].view(np.bool_)
    valid = valid_mask(a)
    return out if valid is None else out & valid


def _i64(a: pa.Array) -> npt.NDArray[np.int64]:
    """Int64 numpy values of an int64 Arrow array, 0 where null (a view of its buffer when none is null)."""
    v = np_values(a, np.int64)
    valid = valid_mask(a)
    return v if valid is None else np.where(valid, v, 0)


def _f64(a: pa.Array) -> npt.NDArray[np.float64]:
    """Float64 numpy values of a numeric Arrow array, NaN where null (a view of its buffer when none is null)."""
    a = a.cast(pa.float64())
    v = np_values(a, np.float64)
    valid = valid_mask(a)
    return v if valid is None else np.where(valid, v, np.nan)


def _valid(a: pa.Array) -> npt.NDArray[np.bool_]:
    valid = valid_mask(a)
    return np.ones(len(a), dtype=bool) if valid is None else valid


def _to_float(a: pa.Array, rows: _Rows, column: str) -> npt.NDArray[np.float64]:
    """Any Arrow array → float64 numpy (NaN for missing); unparsable strings → rejects."""
    t = a.type
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t) or pa.types.is_boolean(t):
        return _f64(a)
    if pa.types.is_null(t):
        return np.full(len(a), np.nan)
    if pa.types.is_dictionary(t):
        a = a.cast(t.value_type)
    if not (pa.types.is_string(a.type) or pa.types.is_large_string(a.type)):
        a = a.cast(pa.string())
    try:
        return _f64(a)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    s = pc.utf8_trim_whitespace(a)
    low = pc.utf8_lower(s)
    good = pc.or_(pc.match_substring_regex(s, _NUM_RE), pc.is_in(low, pa.array(["nan", "inf", "-inf", "+inf"])))
    empty = pc.equal(pc.utf8_length(s), 0)
    good_np = _np_bool(pc.fill_null(good, True))
    empty_np = _np_bool(pc.fill_null(empty, False))
    rows.reject(~good_np & ~empty_np, column, a, "not a number")
    use = pc.if_else(pa.array(good_np & ~empty_np), s, pa.scalar(None, pa.string()))
    return np.asarray(use.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _epoch_to_us(v: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    mag = np.abs(v)
    scale = np.where(mag >= _EPOCH_US, 1.0, np.where(mag >= _EPOCH_MS, 1e3, 1e6))
    with np.errstate(invalid="ignore", over="ignore"):
        us = np.round(v * scale)
    us = np.where(np.isfinite(us) & (np.abs(us) < 9.2e18), us, 0)
    return us.astype(np.int64)


_TS_UTC = pa.timestamp("us", tz="UTC")


def _py_time(s: str | None) -> int | None:
    if s is None:
        return None
    try:
        d = datetime.fromisoformat(s.strip().replace(",", "."))
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    delta = d - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _cast_times(s: pa.Array, zoned: bool) -> pa.Array:
    """Cast ISO strings (all zoned or all naive) to µs; per-value fallback if Arrow refuses some."""
    try:
        if zoned:
            return s.cast(_TS_UTC).cast(pa.int64())
        return s.cast(pa.timestamp("us")).cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([_py_time(v) for v in s.to_pylist()], type=pa.int64())


def _to_time(a: pa.Array, rows: _Rows, column: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Any Arrow array → (µs since epoch UTC, present mask); unparsable values → rejects."""
    t = a.type
    if pa.types.is_timestamp(t):
        return _i64(a.cast(pa.timestamp("us", tz=t.tz)).cast(pa.int64())), _valid(a)
    if pa.types.is_date(t):
        return _i64(a.cast(pa.timestamp("us")).cast(pa.int64())), _valid(a)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        v = np.asarray(a.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        ok = np.isfinite(v)
        return _epoch_to_us(v), ok
    if pa.types.is_dictionary(t):
        a = a.cast(t.value_type)
    if not pa.types.is_string(a.type):
        a = a.cast(pa.string())
    present = _valid(a)
    # Fast paths: all zoned ISO 8601, or all epoch numbers.
    try:
        return _i64(a.cast(_TS_UTC).cast(pa.int64())), present
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    s = pc.utf8_trim_whitespace(a)
    out = np.zeros(len(a), dtype=np.int64)
    is_num = _np_bool(pc.fill_null(pc.match_substring_regex(s, _NUM_RE), False))
    is_iso = _np_bool(pc.fill_null(pc.match_substring_regex(s, _ISO_RE), False)) & ~is_num
    is_zoned = is_iso & _np_bool(pc.fill_null(pc.match_substring_regex(s, _ZONE_RE), False))
    is_naive = is_iso & ~is_zoned
    empty = _np_bool(pc.fill_null(pc.equal(pc.utf8_length(s), 0), False))
    present &= ~empty
    got = np.zeros(len(a), dtype=bool)
    if is_num.any():
        idx = np.flatnonzero(is_num)
        v = np.asarray(s.take(pa.array(idx)).cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        out[idx] = _epoch_to_us(v)
        got[idx] = np.isfinite(v)
    for mask, zoned in ((is_zoned, True), (is_naive, False)):
        if mask.any():
            idx = np.flatnonzero(mask)
            us_arr = _cast_times(s.take(pa.array(idx)), zoned)
            out[idx] = np.asarray(us_arr.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
            got[idx] = _valid(us_arr)
    rows.reject(present & ~got, column, a, "not a time (use ISO 8601 or epoch seconds/ms)")
    return out, present


def _to_enum(a: pa.Array, rows: _Rows, column: str) -> pa.Array:
    """Strings → dictionary array of canonical enum values; unknown values → rejects."""
    if not pa.types.is_dictionary(a.type):
        if not pa.types.is_string(a.type):
            a = a.cast(pa.string())
        a = pc.dictionary_encode(a)
    values = a.dictionary.to_pylist()
    lookup = _ENUM_LOOKUP[column]
    canon = [lookup.get(_norm_enum(str(v))) if v is not None else None for v in values]
    unknown = [i for i, c in enumerate(canon) if c is None]
    idx = np_values(a.indices.cast(pa.int32()), np.int32)
    valid = valid_mask(a.indices)
    if unknown:
        bad = np.isin(idx, unknown)
        rows.reject(
            bad if valid is None else bad & valid, column, a, f"unknown {column} (known: {', '.join(_ENUMS[column])})"
        )
    uniq = sorted({c for c in canon if c is not None})
    pos = {c: i for i, c in enumerate(uniq)}
    remap = np.array([pos.get(c, 0) if c is not None else 0 for c in canon] or [0], dtype=np.int32)
    new_idx = remap[idx if valid is None else np.where(valid, idx, 0)]
    return pa.DictionaryArray.from_arrays(from_numpy(new_idx, pa.int32(), valid), string_array(uniq or [""]))


def _trimmed_dictionary(a: pa.Array) -> pa.Array | None:
    """A string dictionary array with its (few) values trimmed; ``None`` unless the trimmed values stay distinct."""
    d = a.dictionary
    if not (pa.types.is_string(d.type) or pa.types.is_large_string(d.type)) or d.null_count:
        return None
    td = pc.utf8_trim_whitespace(d.cast(pa.string()))
    if pc.count_distinct(td).as_py() != len(td):
        return None
    return pa.DictionaryArray.from_arrays(a.indices.cast(pa.int32()), td)


def _const_dict(value: str, n: int, valid: npt.NDArray[np.bool_] | None = None) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        from_numpy(np.zeros(n, dtype=np.int32), pa.int32(), valid), string_array([value])
    )


def _str_scalar(value: str) -> pa.Scalar:
    """A string scalar for compute calls (a Python ``str`` there converts through pyarrow's pandas shim)."""
    return string_array([value])[0]


_NULL_STR = pa.nulls(1, pa.string())[0]


def _scalar(value: Any) -> pa.Scalar:
    """An Arrow scalar of a string or a number, without pyarrow's pandas shim; anything else through ``pa.scalar``."""
    if isinstance(value, str):
        return _str_scalar(value)
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return from_numpy(np.array([value], dtype=np.int64), pa.int64())[0]
    if isinstance(value, float):
        return from_numpy(np.array([value], dtype=np.float64), pa.float64())[0]
    return pa.scalar(value)


def _repeat(value: Any, n: int) -> pa.Array:
    """``n`` copies of a constant (a default for a column the source lacks)."""
    return pa.repeat(_scalar(value), n)


def _json_escape(s: pa.Array) -> pa.Array:
    """JSON string literal of each value (vectorised; Python only if control characters occur)."""
    if not pa.types.is_string(s.type):
        s = s.cast(pa.string())
    if pc.any(pc.match_substring_regex(s, "[\x00-\x1f]")).as_py():
        return pa.array([None if v is None else json.dumps(v, ensure_ascii=False) for v in s.to_pylist()])
    esc = pc.replace_substring_regex(s, r'(["\\])', r"\\\1")
    quote = _str_scalar('"')
    return pc.binary_join_element_wise(quote, esc, quote, _str_scalar(""))


def _build_attrs(table: pa.Table, extras: Sequence[str]) -> pa.Array:
    """One JSON object per row from the extra columns (``null`` for missing values)."""
    parts: list[Any] = []
    for i, name in enumerate(extras):
        col = table.column(name).combine_chunks()
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type):
            lit = pc.utf8_lower(col.cast(pa.string()))
            if pa.types.is_floating(col.type):
                lit = pc.if_else(pc.is_finite(col), lit, _NULL_STR)
        else:
            lit = _json_escape(col)
        lit = lit.fill_null(_str_scalar("null"))
        key = json.dumps(str(name), ensure_ascii=False)
        parts.append(_str_scalar(("{" if i == 0 else ",") + key + ":"))
        parts.append(lit)
    parts.append(_str_scalar("}"))
    return pc.binary_join_element_wise(*parts, _str_scalar(""))


def convert_table(
    table: pa.Table,
    plan: ColumnPlan,
    lines: npt.NDArray[np.int64],
    raw: Callable[[int], str] | None = None,
    *,
    attrs: pa.Array | None = None,
    skip_blank: bool = False,
    rejected_columns: set[str] | None = None,
) -> tuple[dict[str, Any], list[Reject]]:
    """Convert one table of source columns into observation columns and rejects.

    ``lines`` gives each row's ``src_rec``; ``raw(i)`` an excerpt of row ``i``
    for the quarantine. Rows with a missing or unparsable required value, an
    out-of-range coordinate or an unknown enum value are rejected; the rest are
    returned (column types as in :mod:`atalaya.ingest.base`). With
    ``skip_blank`` rows whose every column is missing are dropped silently.
    ``rejected_columns``, when given, receives the observation columns that
    caused at least one reject.

    >>> t = pa.table({"time": ["2024-01-01T00:00:00Z", "bad"], "lon": ["1", "2"], "lat": ["3", "4"]})
    >>> plan = plan_columns(t.column_names, ReadOptions(defaults={"sensor": "EO", "kind": "thermal"}))
    >>> cols, rej = convert_table(t, plan, np.array([2, 3]))
    >>> cols["time"].tolist(), rej[0].src_rec
    ([1704067200000000], 3)
    >>> cols, rej = convert_table(t.slice(0, 0), plan, np.zeros(0, dtype=np.int64))
    >>> len(cols["time"]), rej
    (0, [])
    """
    n = table.num_rows
    rows = _Rows(n=n, lines=lines, raw=raw or (lambda i: ""), ok=np.ones(n, dtype=bool), rejects={})
    if skip_blank and n and table.num_columns:
        blank = np.ones(n, dtype=bool)
        for c in table.columns:
            if c.null_count == 0:
                blank[:] = False
                break
            blank &= _np_bool(c.is_null())
        rows.ok &= ~blank
    by_target = {dst: src for src, dst in plan.targets.items()}
    out: dict[str, Any] = {}

    def col(name: str) -> pa.Array | None:
        src = by_target.get(name)
        if src is None:
            return None
        c = table.column(src)
        return c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c

    def fill_default(a: pa.Array, name: str) -> pa.Array:
        d = plan.defaults.get(name, plan.implied.get(name))
        if d is None or a.null_count == 0:
            return a
        if pa.types.is_dictionary(a.type):
            a = a.cast(a.type.value_type)
        return a.fill_null(_scalar(d).cast(a.type) if not pa.types.is_string(a.type) else _str_scalar(str(d)))

    # time
    a = col("time")
    if a is None:
        d = plan.defaults["time"]
        a = _repeat(d, n)
    us, present = _to_time(a, rows, "time")
    rows.reject(~present, "time", a, "missing value")
    out["time"] = us
    # coordinates
    for name, lo, hi in (("lon", -180.0, 180.0), ("lat", -90.0, 90.0)):
        a = col(name)
        if a is None:
            v = np.full(n, float(plan.defaults[name]), dtype=np.float64)
            a = from_numpy(v, pa.float64())
        else:
            a = fill_default(a, name)
            v = _to_float(a, rows, name)
        out[name] = v
        if n == 0 or (v.min() >= lo and v.max() <= hi):  # NaN (missing) makes both comparisons false
            continue
        with np.errstate(invalid="ignore"):
            good = (v >= lo) & (v <= hi)
        if a.null_count:
            rows.reject(np.isnan(v) & _np_bool(a.is_null()), name, a, "missing value")
        rows.reject(~good, name, a, f"out of range [{lo:g}, {hi:g}]")
    for name in _FLOAT32:
        a = col(name)
        if a is None:
            if name in plan.defaults:
                out[name] = np.full(n, float(plan.defaults[name]), dtype=np.float32)
            continue
        out[name] = _to_float(fill_default(a, name), rows, name).astype(np.float32)
    for name in _ENUMS:
        a = col(name)
        const = plan.defaults.get(name, plan.implied.get(name))
        if a is None:
            if const is None:
                continue
            lookup = _ENUM_LOOKUP[name].get(_norm_enum(str(const)))
            if lookup is None:
                raise IngestError(
                    f"default {name}={const!r} is not a known value",
                    hint=f"use one of: {', '.join(_ENUMS[name])}",
                )
            enc = _const_dict(lookup, n)
            if name == "ident_kind" and "ident_kind" not in plan.defaults and "ident" in by_target:
                # a kind implied by the ident alias (mmsi, icao24…) applies only where there is an ident
                ident_valid = valid_mask(table.column(by_target["ident"]).combine_chunks())
                if ident_valid is not None:
                    enc = _const_dict(lookup, n, ident_valid)
            out[name] = enc
            continue
        a = fill_default(a, name)
        enc = _to_enum(a, rows, name)
        if name in ("sensor", "kind") and enc.null_count:
            rows.reject(_np_bool(enc.is_null()), name, a, "missing value")
        out[name] = enc
    for name in _STRINGS:
        a = col(name)
        if a is None:
            if name in plan.defaults:
                out[name] = _repeat(str(plan.defaults[name]), n)
            continue
        a = fill_default(a, name)
        if name in _DICT_STRINGS and pa.types.is_dictionary(a.type):
            d = _trimmed_dictionary(a)
            if d is not None:
                out[name] = d
                continue
        if pa.types.is_dictionary(a.type):
            a = a.cast(a.type.value_type)
        if pa.types.is_floating(a.type):
            # identifiers stored as floats (e.g. MMSI in a spreadsheet export) lose the ".0"
            a = a.cast(pa.int64(), safe=False)
        if not pa.types.is_string(a.type):
            a = a.cast(pa.string())
        a = pc.utf8_trim_whitespace(a)
        out[name] = pc.dictionary_encode(a) if name in _DICT_STRINGS else a
    if attrs is None and plan.extras:
        attrs = _build_attrs(table, plan.extras)
    if attrs is not None:
        out["attrs"] = attrs
    out["src_rec"] = np.asarray(lines, dtype=np.int64)
    if not rows.ok.all():
        keep = rows.ok
        keep_pa = bool_array(keep)
        out = {k: (v[keep] if isinstance(v, np.ndarray) else v.filter(keep_pa)) for k, v in out.items()}
    rejects = [rows.rejects[i] for i in sorted(rows.rejects)]
    if rejected_columns is not None:
        rejected_columns.update(rows.columns)
    return out, rejects


# --------------------------------------------------------------------------- CSV

_DELIMS = (",", ";", "\t", "|")
_NULLS = ["", "NULL", "null", "NaN", "nan", "N/A", "n/a"]


def _sniff_delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in _DELIMS}
    best = max(_DELIMS, key=lambda d: counts[d])
    return best if counts[best] else ","


Buf = bytes | bytearray | memoryview
"""CSV text: a block is a view of a reusable read buffer (no copy); rare repairs make ``bytes``."""


def _text(data: Buf) -> bytes | bytearray:
    """An object with ``find`` whose first ``len(data)`` bytes are ``data`` (a block's view starts its buffer)."""
    if isinstance(data, memoryview):
        obj = data.obj
        assert isinstance(obj, bytes | bytearray) and data.c_contiguous
        return obj
    return data


@dataclass(frozen=True, kw_only=True)
class _Block:
    data: Buf
    first_line: int
    offset: int
    n_newlines: int
    buffer: bytearray | None = None
    """The read buffer ``data`` views, handed back to the pool once the block is parsed."""


class _BufferPool:
    """Read buffers for blocks, reused once their block is parsed: no fresh 30 MB buffer (zeroed, page-faulted)
    per block. A buffer comes back only when nothing views it any more."""

    KEEP = 4

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._free: list[bytearray] = []
        self._lock = threading.Lock()

    def take(self, size: int) -> bytearray:
        with self._lock:
            for i, buf in enumerate(self._free):
                if len(buf) >= size:
                    return self._free.pop(i)
        return bytearray(max(size, self.capacity))

    def give_back(self, block: _Block) -> None:
        buf = block.buffer
        if buf is None or not isinstance(block.data, memoryview):
            return
        try:
            block.data.release()
            last = buf.pop()  # a resize: refused while anything still views the buffer
        except BufferError:
            return
        buf.append(last)
        with self._lock:
            if len(self._free) < self.KEEP:
                self._free.append(buf)


_COUNT_STEP = 1 << 18
"""Bytes compared per step when counting: the comparison's scratch stays in the CPU cache (no 30 MB temporaries)."""


def _count_bytes(buf: Buf, values: tuple[int, ...], start: int, end: int) -> tuple[int, ...]:
    """Occurrences of each byte value in ``buf[start:end]``, in one pass (vectorised; quotes can be dense)."""
    counts = [0] * len(values)
    if end <= start:
        return tuple(counts)
    arr = np.frombuffer(buf, dtype=np.uint8, count=end - start, offset=start)
    scratch = np.empty(min(len(arr), _COUNT_STEP), dtype=bool)
    for s in range(0, len(arr), _COUNT_STEP):
        part = arr[s : s + _COUNT_STEP]
        hit = scratch[: len(part)]
        for i, v in enumerate(values):
            np.equal(part, v, out=hit)
            counts[i] += int(np.count_nonzero(hit))
    return tuple(counts)


def _count_byte(buf: Buf, byte: int, start: int, end: int) -> int:
    """Occurrences of ``byte`` in ``buf[start:end]``."""
    return _count_bytes(buf, (byte,), start, end)[0]


def _last_even_cut(buf: Buf, start: int, end: int, quotes_before: int) -> int:
    """Offset just past the last line end in ``buf[start:end]`` with an even number of quotes before it
    (``quotes_before`` counted before ``start``); ``start`` if there is none."""
    seg = np.frombuffer(buf, dtype=np.uint8, count=end - start, offset=start)
    nl = np.flatnonzero(seg == 10)
    even = nl[(quotes_before + np.searchsorted(np.flatnonzero(seg == 34), nl)) % 2 == 0]
    return start + int(even[-1]) + 1 if even.size else start


_NOT_SPACE = re.compile(rb"\S")
_SKIP_BYTES = 1 << 20
"""Bytes read at a time while skipping the rest of an over-long line."""


class _ReadBuffer:
    """The bytes read but not yet handed out as blocks: ``mem[:size]`` of a pooled buffer."""

    def __init__(self, pool: _BufferPool, head: bytes, max_line: int = MAX_LINE_BYTES) -> None:
        self.pool = pool
        self.max_line = max_line
        self.mem = pool.take(len(head))
        self.mem[: len(head)] = head
        self.size = len(head)

    def _reserve(self, extra: int) -> None:
        if self.size + extra > len(self.mem):
            mem = self.pool.take(self.size + extra)
            with memoryview(self.mem) as view:
                mem[: self.size] = view[: self.size]
            self.mem = mem

    def read(self, fh: Any, n: int) -> int:
        """Append up to ``n`` bytes from ``fh``, then complete the last line; bytes added (0: end of input)."""
        self._reserve(n)
        before = self.size
        with memoryview(self.mem) as view:
            while self.size - before < n:
                k = fh.readinto(view[self.size : before + n])
                if not k:
                    break
                self.size += k
        if self.size > before and self.mem[self.size - 1] != 10:
            rest = fh.readline(self.max_line + 1)
            if len(rest) > self.max_line and rest[-1] != 10:
                # Over the line limit: keep its first bytes (the parse rejects the line), skip the rest unread.
                while (skip := fh.readline(_SKIP_BYTES)) and skip[-1] != 10:
                    pass
                rest += b"\n"
            self._reserve(len(rest))
            self.mem[self.size : self.size + len(rest)] = rest
            self.size += len(rest)
        return self.size - before

    def split(self, cut: int) -> tuple[memoryview, bytearray]:
        """Hand out ``[0, cut)`` as a view of its buffer; what follows moves to a buffer of its own."""
        mem, rest = self.mem, self.size - cut
        self.mem = self.pool.take(rest) if rest else bytearray()  # (taken when more is read)
        with memoryview(mem) as view:
            self.mem[:rest] = view[cut : self.size]
        self.size = rest
        return memoryview(mem)[:cut], mem


def _blocks(
    fh: Any,
    first_line: int,
    offset: int,
    block_bytes: int,
    head: bytes,
    pool: _BufferPool | None = None,
    first_block_bytes: int | None = None,
    limits: ReaderLimits = DEFAULT_LIMITS,
) -> Iterator[_Block]:
    """Yield byte blocks that end at a line end outside any quoted field.

    A line end is outside quotes when the number of quote characters before it is even. The search for the
    last such line end is vectorised and linear even when a stray quote leaves none in a block: ``no_cut``
    marks the stretch of the buffer already known to hold none, and ``q_no_cut`` its quote count.

    Each read lands in a pooled buffer, completed to the next line end; a block is a view of that buffer,
    which goes back to ``pool`` (:meth:`_BufferPool.give_back`) once the block is parsed. The first block may be
    smaller (``first_block_bytes``), so the stages after the parse start sooner.
    """
    buf = _ReadBuffer(pool or _BufferPool(block_bytes + (1 << 21)), head, limits.max_line_bytes)
    max_unsplit = max(2 * block_bytes, limits.max_record_bytes)
    line = first_line
    eof = False
    no_cut = 0
    q_no_cut = 0
    target = min(first_block_bytes or block_bytes, block_bytes)
    while not eof or buf.size:
        if not eof and buf.size < target:
            if buf.read(fh, target - buf.size):
                continue
            eof = True
        n_nl = -1
        size = buf.size
        if eof:
            cut = size
        else:
            cut = buf.mem.rfind(b"\n", no_cut, size) + 1
            q = q_no_cut
            if cut > no_cut:
                dq, dn = _count_bytes(buf.mem, (34, 10), no_cut, cut)
                q += dq
                if no_cut == 0:
                    n_nl = dn
            if cut > no_cut and q % 2:
                # Never cut inside a quoted field: take the last line end with an even quote count before it.
                cut = _last_even_cut(buf.mem, no_cut, cut, q_no_cut)
                n_nl = -1
            if cut <= no_cut:
                if size > max_unsplit:
                    cut = size  # unbalanced quotes for too long: give up keeping the field whole
                    n_nl = -1
                else:
                    q_no_cut += _count_byte(buf.mem, 34, no_cut, size)
                    no_cut = size
                    eof = not buf.read(fh, target)
                    continue
        if n_nl < 0:
            n_nl = _count_byte(buf.mem, 10, 0, cut)
        blank = _NOT_SPACE.search(buf.mem, 0, cut) is None
        data, mem = buf.split(cut)
        no_cut = q_no_cut = 0
        if blank:
            line += n_nl
            offset += cut
            data.release()
            continue
        yield _Block(data=data, first_line=line, offset=offset, n_newlines=n_nl, buffer=mem)
        target = block_bytes
        line += n_nl
        offset += cut


_DICT = pa.dictionary(pa.int32(), pa.string())
_COLUMN_ERROR = re.compile(r"In CSV column #(\d+)")


def _typed(target: str | None) -> pa.DataType:
    """The type ``pyarrow.csv`` parses a column feeding ``target`` as on the typed fast path."""
    if target == "time":
        return _TS_UTC
    if target in _FLOAT64 or target in _FLOAT32:
        return pa.float64()
    if target in _ENUMS or target in _DICT_STRINGS:
        return _DICT
    return pa.string()


@dataclass
class _CsvSetup:
    names: list[str]
    plan: ColumnPlan
    delimiter: str
    path: Path
    max_line: int = MAX_LINE_BYTES
    """Lines longer than this are rejected."""
    demoted: set[str] = field(default_factory=set)
    """Source columns read as strings after a typed read failed or rejected a value (for the rest of the file)."""

    def column_types(self) -> dict[str, pa.DataType]:
        """Type per source column: typed for mapped canonical columns unless demoted, strings otherwise."""
        return {n: pa.string() if n in self.demoted else _typed(self.plan.targets.get(n)) for n in self.names}

    def demote(self, columns: set[str]) -> bool:
        """Read these source columns as strings from now on; ``True`` if any was typed."""
        types = self.column_types()
        hit = {c for c in columns if c in types and types[c] != pa.string()}
        self.demoted.update(hit)
        return bool(hit)


def _line_bounds(data: Buf) -> npt.NDArray[np.int64]:
    """Start offsets of each line in ``data`` plus a final end offset."""
    nl = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    ends = nl + 1
    starts = np.concatenate([[0], ends])
    if starts[-1] != len(data):
        starts = np.concatenate([starts, [len(data)]])
    return starts.astype(np.int64)


def _row_start_lines(data: Buf, n_rows: int) -> npt.NDArray[np.int64] | None:
    """0-based line offset where each physical CSV row starts, when quoted fields span lines.

    A newline ends a row only when the number of quote characters before it is
    even (RFC 4180 quoting; doubled quotes count twice and keep the parity).
    Returns ``None`` when every row is one line.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(buf == 10)
    quotes_before = np.cumsum(buf == 34)[nl] if nl.size else np.zeros(0, dtype=np.int64)
    ends = np.flatnonzero(quotes_before % 2 == 0)
    if ends.size == nl.size:
        return None
    starts = np.concatenate([[0], ends + 1]).astype(np.int64)
    if starts.size < n_rows:
        starts = np.concatenate([starts, np.full(n_rows - starts.size, starts[-1], dtype=np.int64)])
    return starts[:n_rows]


def _blank_lines(data: Buf, bounds: npt.NDArray[np.int64], bad: Sequence[int]) -> bytes:
    """Replace the given line indices with empty lines (line numbering is preserved)."""
    out = bytearray()
    prev = 0
    for i in sorted(bad):
        s, e = int(bounds[i]), int(bounds[i + 1])
        out += data[prev:s]
        out += b"\n" if e > s and data[e - 1 : e] == b"\n" else b""
        prev = e
    out += data[prev:]
    return bytes(out)


def _may_have_long_line(data: Buf, max_line: int = MAX_LINE_BYTES) -> bool:
    """``False`` when no line of ``data`` is longer than ``MAX_LINE_BYTES`` (without locating every line end).

    A line longer than that holds a whole aligned window of ``MAX_LINE_BYTES // 2`` bytes without a line end,
    so one look for a line end per window decides; only when a window has none are the lines measured.
    """
    step = max(1, max_line // 2)
    text = _text(data)
    return any(text.find(b"\n", s, s + step) < 0 for s in range(0, len(data) - step + 1, step))


def _parse_block(block: _Block, setup: _CsvSetup) -> ParsedBatch:
    data = block.data
    rejects: list[Reject] = []
    bounds: npt.NDArray[np.int64] | None = None

    def get_bounds() -> npt.NDArray[np.int64]:
        nonlocal bounds
        if bounds is None:
            bounds = _line_bounds(data)
        return bounds

    max_line = setup.max_line
    if len(data) > max_line and _may_have_long_line(data, max_line):
        b = get_bounds()
        long_idx = np.flatnonzero(np.diff(b) > max_line).tolist()
        if long_idx:
            for i in long_idx:
                rejects.append(
                    Reject(
                        src_rec=block.first_line + i,
                        reason=f"line longer than {max_line} bytes (the limit; the rest of the line was skipped)",
                        raw=Reject.excerpt(bytes(data[int(b[i]) : int(b[i]) + 512])),
                    )
                )
            data = _blank_lines(data, b, long_idx)
            bounds = None
    prefix = rejects
    while True:
        batch, rejected, types = _read_block(block, setup, data, list(prefix))
        if types is None:
            return batch
        # A typed float shows a rejected value as a number, not as written: read such columns as text.
        floats = {src for src, dst in setup.plan.targets.items() if dst in rejected and types.get(src) == pa.float64()}
        if not floats or not setup.demote(floats):
            return batch


def _read_typed(
    data: Buf, setup: _CsvSetup, quoted: bool, on_invalid: Any, invalid: list[tuple[int, str]]
) -> tuple[pa.Table, dict[str, pa.DataType]] | None:
    """Parse with typed columns; a column whose conversion fails is demoted to strings and the block re-read.

    ``None`` when no typed column is left or the failure names no typed column (the caller reads strings).
    """
    while True:
        types = setup.column_types()
        if all(t == pa.string() for t in types.values()):
            return None
        try:
            return _read_csv(data, setup.names, setup.delimiter, quoted, on_invalid, types), types
        except pa.ArrowInvalid as e:
            invalid.clear()
            m = _COLUMN_ERROR.search(str(e))
            k = int(m.group(1)) if m else -1
            if not 0 <= k < len(setup.names) or not setup.demote({setup.names[k]}):
                return None


def _read_block(
    block: _Block, setup: _CsvSetup, data: Buf, rejects: list[Reject]
) -> tuple[ParsedBatch, set[str], dict[str, pa.DataType] | None]:
    """Parse and convert one block: the batch, the columns that rejected values, the types used (``None``: text)."""
    bounds: npt.NDArray[np.int64] | None = None

    def get_bounds() -> npt.NDArray[np.int64]:
        nonlocal bounds
        if bounds is None:
            bounds = _line_bounds(data)
        return bounds

    invalid: list[tuple[int, str]] = []

    def on_invalid(row: Any) -> str:
        invalid.append((int(row.number) if row.number is not None else -1, str(row.text)))
        return "skip"

    names = setup.names
    if not _valid_utf8(data):  # before the parse: pyarrow cannot hand an undecodable row to ``on_invalid``
        data = _blank_undecodable(data, get_bounds(), block.first_line, rejects)
        bounds = None
    if _NOT_SPACE.search(_text(data), 0, len(data)) is None:  # nothing left once bad lines were blanked
        return _no_rows(block, rejects), set(), None
    quoted = _text(data).find(b'"', 0, len(data)) >= 0
    typed = _read_typed(data, setup, quoted, on_invalid, invalid)
    types = None if typed is None else typed[1]
    try:
        table = _read_csv(data, names, setup.delimiter, quoted, on_invalid) if typed is None else typed[0]
    except pa.ArrowInvalid:
        # Undecodable bytes: reject those lines, keep the rest (UTF-8 only; see docs).
        b = get_bounds()
        bad = []
        for i in range(len(b) - 1):
            chunk = bytes(data[int(b[i]) : int(b[i + 1])])
            try:
                chunk.decode("utf-8")
            except UnicodeDecodeError as e:
                bad.append(i)
                rejects.append(
                    Reject(
                        src_rec=block.first_line + i,
                        reason=f"not valid UTF-8 at byte {e.start} of the line (re-encode the file as UTF-8)",
                        raw=Reject.excerpt(chunk.rstrip(b"\r\n")),
                    )
                )
        if not bad:
            raise
        data = _blank_lines(data, b, bad)
        if _NOT_SPACE.search(data) is None:
            return _no_rows(block, rejects), set(), None
        bounds = None
        invalid.clear()
        table = _read_csv(data, names, setup.delimiter, quoted, on_invalid)
    n_phys = table.num_rows + len(invalid)
    bad_numbers = np.array([k for k, _ in invalid if k > 0], dtype=np.int64)
    for k, text in invalid:
        rejects.append(
            Reject(
                src_rec=block.first_line + k - 1 if k > 0 else block.first_line,
                reason=f"expected {len(names)} fields, got {_count_fields(text, setup.delimiter)}",
                raw=Reject.excerpt(text),
            )
        )
    phys = np.arange(1, n_phys + 1, dtype=np.int64)
    if bad_numbers.size:
        phys = phys[~np.isin(phys, bad_numbers)]
    n_lines = block.n_newlines + (0 if data[-1:] == b"\n" or not data else 1)
    starts = _row_start_lines(data, n_phys) if quoted and n_phys != n_lines else None
    if starts is not None:
        lines = starts[phys[: table.num_rows] - 1] + block.first_line
        for j, r in enumerate(rejects):
            if r.reason.startswith("expected ") and 0 < r.src_rec - block.first_line + 1 <= n_phys:
                rejects[j] = Reject(
                    src_rec=int(starts[r.src_rec - block.first_line]) + block.first_line, reason=r.reason, raw=r.raw
                )
    else:
        lines = phys[: table.num_rows] + (block.first_line - 1)
    first_line = block.first_line

    def raw(i: int) -> str:
        b = get_bounds()
        j = int(lines[i]) - first_line
        if 0 <= j < len(b) - 1:
            return Reject.excerpt(bytes(data[int(b[j]) : int(b[j + 1])]).rstrip(b"\r\n"))
        return ""

    rejected: set[str] = set()
    cols, rej = convert_table(table, setup.plan, lines, raw, skip_blank=True, rejected_columns=rejected)
    rejects.extend(rej)
    rejects.sort(key=lambda r: r.src_rec)
    batch = ParsedBatch(columns=cols, rejects=rejects, records_read=n_lines, bytes_read=len(block.data))
    return batch, rejected, types


def _valid_utf8(data: Buf) -> bool:
    """Whether ``data`` is valid UTF-8 (Arrow's vectorised check, no copy)."""
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    try:
        pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)]).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _blank_undecodable(data: Buf, b: npt.NDArray[np.int64], first_line: int, rejects: list[Reject]) -> Buf:
    """Reject the lines of ``data`` that are not valid UTF-8 and blank them (line numbering is kept)."""
    bad = []
    for i in range(len(b) - 1):
        chunk = bytes(data[int(b[i]) : int(b[i + 1])])
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError as e:
            bad.append(i)
            rejects.append(
                Reject(
                    src_rec=first_line + i,
                    reason=f"not valid UTF-8 at byte {e.start} of the line (re-encode the file as UTF-8)",
                    raw=Reject.excerpt(chunk.rstrip(b"\r\n")),
                )
            )
    return _blank_lines(data, b, bad) if bad else data


def _no_rows(block: _Block, rejects: list[Reject]) -> ParsedBatch:
    """The batch of a block whose every line was rejected before the CSV parse."""
    n_lines = block.n_newlines + (0 if block.data[-1:] == b"\n" else 1)
    rejects.sort(key=lambda r: r.src_rec)
    return ParsedBatch(columns={}, rejects=rejects, records_read=n_lines, bytes_read=len(block.data))


def _count_fields(text: str, delimiter: str) -> int:
    try:
        return len(next(csv.reader([text], delimiter=delimiter), []))
    except csv.Error:  # a bare carriage return inside the row
        return text.count(delimiter) + 1


_PARSE_BLOCK = 4 << 20
"""Bytes ``pyarrow.csv`` parses at a time within a block: cache-sized steps parse ~15 % faster than one 30 MB step."""


def _read_csv(
    data: Buf,
    names: list[str],
    delimiter: str,
    quoted: bool,
    on_invalid: Any,
    types: dict[str, pa.DataType] | None = None,
) -> pa.Table:
    """Parse a block. A row that straddles ``_PARSE_BLOCK`` (a quoted field over many lines) re-parses in one step."""
    if len(data) > 2 * _PARSE_BLOCK:
        seen: list[Any] = []

        def collect(row: Any) -> str:
            seen.append(row)
            return "skip"

        try:
            table = _read_csv_once(data, names, delimiter, quoted, collect, types, _PARSE_BLOCK)
        except pa.ArrowInvalid as e:
            if "straddl" not in str(e):
                raise
        else:
            for row in seen:  # reported once the parse holds
                on_invalid(row)
            return table
    return _read_csv_once(data, names, delimiter, quoted, on_invalid, types, len(data) + 1)


def _read_csv_once(
    data: Buf,
    names: list[str],
    delimiter: str,
    quoted: bool,
    on_invalid: Any,
    types: dict[str, pa.DataType] | None,
    block_size: int,
) -> pa.Table:
    return pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(use_threads=False, column_names=names, block_size=max(block_size, 1 << 20)),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter,
            newlines_in_values=quoted,
            ignore_empty_lines=False,
            invalid_row_handler=on_invalid,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=types or {n: pa.string() for n in names},
            strings_can_be_null=True,
            null_values=_NULLS,
            quoted_strings_can_be_null=True,
        ),
    )


class CsvReader:
    """Delimited text (CSV, ``;`` or tab separated) with a header row.

    Blocks of about ``ReadOptions.batch_rows`` rows are parsed by
    ``pyarrow.csv`` on a small thread pool (typed where it can, see the module
    docstring) and converted column-wise. ``src_rec`` is the 1-based line number in the file.
    """

    name = "csv"
    extensions: tuple[str, ...] = (".csv", ".tsv", ".txt")
    arrow_native = True
    """Clean input converts through Arrow buffers only, never through pyarrow's NumPy/pandas interop."""

    def __init__(self, *, threads: int | None = None, ahead: int | None = None) -> None:
        self.threads = min(4, os.cpu_count() or 1) if threads is None else threads
        """Worker threads parsing blocks (0: parse in the reading thread)."""
        self.ahead = ahead
        """Blocks in flight at most (default: as many as workers, at least 2)."""

    def sniff(self, head: bytes, path: Path) -> float:
        """Likely CSV when the first line has a delimiter and names time and position columns."""
        text = head.lstrip(b"\xef\xbb\xbf")[:4096].decode("utf-8", errors="replace")
        first = text.split("\n", 1)[0].strip()
        if not first or first[0] in "{[<!$#":
            return 0.0
        delim = _sniff_delimiter(first)
        if delim not in first:
            return 0.0
        cols = {c.strip().strip('"').lower() for c in first.split(delim)}
        known = {c for c in cols if c in CANONICAL or c in ALIASES}
        has_pos = bool(cols & {"lon", "longitude", "lng", "long", "x"}) and bool(cols & {"lat", "latitude", "y"})
        if has_pos and known & {"time", "timestamp", "datetime", "dtg", "time_utc"}:
            return 0.7
        if has_pos:
            return 0.5
        return 0.2

    def _setup(self, head: bytes, path: Path, options: ReadOptions) -> tuple[_CsvSetup, int, int]:
        bom = 3 if head.startswith(b"\xef\xbb\xbf") else 0
        line_end = head.find(b"\n", bom)
        if line_end < 0:
            if len(head) > options.limits.max_line_bytes:
                raise IngestError(
                    f"{path}: the header line is longer than {options.limits.max_line_bytes} bytes",
                    hint="the first line must name the columns; lines must end with \\n or \\r\\n",
                )
            line_end = len(head)
        header = head[bom:line_end].decode("utf-8", errors="replace").rstrip("\r")
        if not header.strip():
            raise IngestError(f"{path}: empty file or empty header line", hint="the first line must name the columns")
        if "\r" in header:
            raise IngestError(
                f"{path}: the header line holds a bare carriage return (\\r)",
                hint="lines must end with \\n or \\r\\n: convert old Mac line ends first (e.g. tr '\\r' '\\n')",
            )
        delim = _sniff_delimiter(header)
        try:
            names = [c.strip() for c in next(csv.reader([header], delimiter=delim))]
        except csv.Error as e:
            raise IngestError(
                f"{path}: unreadable header line: {e}", hint="the first line must name the columns"
            ) from e
        seen: dict[str, int] = {}
        uniq = []
        for c in names:
            k = seen.get(c, 0)
            seen[c] = k + 1
            uniq.append(c if k == 0 else f"{c}.{k}")
        plan = plan_columns(uniq, options, source=str(path))
        setup = _CsvSetup(names=uniq, plan=plan, delimiter=delim, path=path, max_line=options.limits.max_line_bytes)
        return setup, line_end + 1, 2

    @staticmethod
    def taps(path: Path) -> bool:
        """Whether :meth:`read` can pass the file's own bytes to a ``tap`` (not when it decompresses them)."""
        return logical_suffix(path) == path.suffix.lower()

    def read(
        self, path: Path, options: ReadOptions, *, tap: Callable[[Buf], None] | None = None
    ) -> Iterator[ParsedBatch]:
        """Stream the file as batches of about ``options.batch_rows`` rows.

        ``tap`` (when :meth:`taps` allows it) gets every byte of the file once, in order, as it is read: the
        ingest hashes the file that way instead of reading it a second time.
        """
        with open_source(path, options.limits) as raw:
            if tap is not None and not (self.taps(path) and isinstance(raw, io.BufferedReader)):
                raise IngestError(f"{path}: its bytes are decompressed as they are read and cannot be tapped")
            fh = raw if tap is None else _Tapped(raw, tap)
            head = fh.read(1 << 16)
            while b"\n" not in head and len(head) <= options.limits.max_line_bytes:
                more = fh.read(1 << 16)
                if not more:
                    break
                head += more
            setup, body_start, first_line = self._setup(head, path, options)
            body = head[body_start:]
            sample = body[: 1 << 16]
            avg = len(sample) / max(1, sample.count(b"\n")) if sample else 100.0
            block_bytes = int(min(64 << 20, max(64 << 10, avg * options.batch_rows)))
            pool = _BufferPool(block_bytes + (1 << 21))
            blocks = _blocks(fh, first_line, body_start, block_bytes, body, pool, block_bytes // 4, options.limits)
            yield from _run_pool(blocks, lambda b: _parse_block(b, setup), self.threads, pool.give_back, self.ahead)


class _Tapped:
    """A binary file whose bytes also go to ``tap``, in order, as they are read (``read``, ``readinto`` and
    ``readline``: what the CSV reader uses)."""

    def __init__(self, fh: io.BufferedReader, tap: Callable[[Buf], None]) -> None:
        self._fh = fh
        self._tap = tap

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self._tap(data)
        return data

    def readline(self, limit: int = -1) -> bytes:
        data = self._fh.readline(limit)
        self._tap(data)
        return data

    def readinto(self, buf: memoryview) -> int:
        k = self._fh.readinto(buf)
        if k:
            with buf[:k] as got:
                self._tap(got)
        return k


def _run_pool(
    blocks: Iterator[_Block],
    fn: Callable[[_Block], ParsedBatch],
    threads: int,
    done: Callable[[_Block], None] = lambda b: None,
    ahead: int | None = None,
) -> Iterator[ParsedBatch]:
    """Map ``fn`` over blocks on a thread pool, in order, with at most ``ahead`` (default ``max(2, threads)``)
    blocks in flight; ``done`` gets each block once it is parsed. ``threads=0`` maps in the caller's thread.

    With workers, ``blocks`` is drawn on a thread of its own (reading, cutting and, when tapped, hashing the
    input), which submits each block as soon as a slot is free: the caller only takes results. While the caller
    works on one result the next blocks are parsed; more blocks in flight than workers would only add memory
    (each block and its parsed columns, some 60 MB at the default batch size) and page faults."""
    if threads <= 0:
        for b in blocks:
            out = fn(b)
            done(b)
            yield out
        return
    ahead = max(2, threads) if ahead is None else max(1, ahead)
    with cf.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="atalaya-csv") as pool:
        submitted: queue.Queue[tuple[_Block, cf.Future[ParsedBatch]] | BaseException | None] = queue.Queue()
        slots = threading.Semaphore(ahead)
        stop = threading.Event()

        def submit_all() -> None:
            try:
                for b in blocks:
                    while not slots.acquire(timeout=0.1):
                        if stop.is_set():
                            return
                    if stop.is_set():
                        return
                    submitted.put((b, pool.submit(fn, b)))
                submitted.put(None)
            except BaseException as e:  # re-raised in the caller's thread, after the blocks before it
                submitted.put(e)

        reader = threading.Thread(target=submit_all, name="atalaya-csv-read", daemon=True)
        reader.start()
        try:
            while (item := submitted.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                b, fut = item
                out = fut.result()
                done(b)
                yield out
                slots.release()  # the caller is done with it: its slot goes to the next block
        finally:
            stop.set()
            reader.join()


# --------------------------------------------------------------------------- GeoParquet


def _geo_column(schema: pa.Schema) -> tuple[str | None, str]:
    """Primary geometry column and its encoding from GeoParquet ``geo`` metadata (or a ``geometry`` column)."""
    meta = schema.metadata or {}
    raw = meta.get(b"geo")
    if raw:
        try:
            geo = json.loads(raw)
            name = geo.get("primary_column", "geometry")
            enc = str(geo.get("columns", {}).get(name, {}).get("encoding", "WKB")).lower()
            if name in schema.names:
                return name, enc
        except (ValueError, AttributeError):
            pass
    if "geometry" in schema.names:
        t = schema.field("geometry").type
        return "geometry", "wkb" if pa.types.is_binary(t) or pa.types.is_large_binary(t) else "point"
    return None, ""


_WKB_POINT_BYTES = 21
"""A 2-D WKB point: byte order (1), geometry type (4), x and y (8 each)."""
_WKB_POINT_LE = np.array([1, 1, 0, 0, 0], dtype=np.uint8)
_WKB_POINT_BE = np.array([0, 0, 0, 0, 1], dtype=np.uint8)


def _wkb_points(geom: pa.Array) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Decode 2-D WKB points straight from the binary buffers (either byte order).

    Returns ``(done, x, y)``: ``done`` marks the rows decoded here (non-null, 21 bytes, type 1); the others are
    left to shapely.
    """
    n = len(geom)
    x = np.full(n, np.nan)
    y = np.full(n, np.nan)
    bufs = geom.buffers()
    if n == 0 or bufs[2] is None:
        return np.zeros(n, dtype=bool), x, y
    off_type = np.int64 if pa.types.is_large_binary(geom.type) else np.int32
    offsets = np.frombuffer(bufs[1], dtype=off_type)[geom.offset : geom.offset + n + 1].astype(np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8)
    cand = (np.diff(offsets) == _WKB_POINT_BYTES) & _valid(geom)
    idx = np.flatnonzero(cand)
    if idx.size == 0 or data.size < _WKB_POINT_BYTES:
        return np.zeros(n, dtype=bool), x, y
    if idx.size == n:  # every row a 21-byte value: the records lie back to back, view them in place
        rec = data[offsets[0] : offsets[-1]].reshape(n, _WKB_POINT_BYTES)
    else:
        rec = sliding_window_view(data, _WKB_POINT_BYTES)[offsets[idx]]  # (points, 21): one row copy each
    little = np.ones(idx.size, dtype=bool)
    big = np.ones(idx.size, dtype=bool)
    for k in range(5):
        little &= rec[:, k] == _WKB_POINT_LE[k]
        big &= rec[:, k] == _WKB_POINT_BE[k]
    for dst, lo in ((x, 5), (y, 13)):
        val = rec[:, lo : lo + 8]
        dst[idx] = val.view("<f8")[:, 0]
        if big.any():
            dst[idx[big]] = val[big].view(">f8")[:, 0]
    done = np.zeros(n, dtype=bool)
    done[idx] = little | big
    x[~done] = np.nan
    y[~done] = np.nan
    return done, x, y


def _points_from_geometry(
    geom: pa.Array, encoding: str, rows: _Rows
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    n = len(geom)
    x = np.full(n, np.nan)
    y = np.full(n, np.nan)
    z = np.full(n, np.nan)
    if pa.types.is_struct(geom.type):  # GeoArrow separated coordinates: struct<x, y[, z]>
        for i, arr in ((0, x), (1, y), (2, z)):
            if i < geom.type.num_fields:
                arr[:] = _float_values(pc.struct_field(geom, [i]))
        rows.reject(_np_bool(geom.is_null()), "geometry", geom, "missing geometry")
        return x, y, z
    if pa.types.is_fixed_size_list(geom.type) and pa.types.is_floating(geom.type.value_type):
        dims = geom.type.list_size  # GeoArrow interleaved coordinates: [x, y(, z)] per point
        flat = _float_values(geom.values.slice(geom.offset * dims, n * dims)).reshape(n, dims)
        for i, arr in ((0, x), (1, y), (2, z)):
            if i < dims:
                arr[:] = flat[:, i]
        null = _np_bool(geom.is_null())
        x[null], y[null], z[null] = np.nan, np.nan, np.nan
        rows.reject(null, "geometry", geom, "missing geometry")
        return x, y, z
    if pa.types.is_binary(geom.type) or pa.types.is_large_binary(geom.type):
        done, x, y = _wkb_points(geom)
        if done.all():
            return x, y, z
        rest = np.flatnonzero(~done)
    else:
        rest = np.arange(n)
    import shapely

    wkb = np.asarray(geom.take(pa.array(rest)).to_numpy(zero_copy_only=False), dtype=object)
    g = shapely.from_wkb(wkb, on_invalid="ignore")
    tid = shapely.get_type_id(g)
    missing = np.asarray(shapely.is_missing(g), dtype=bool)

    def full(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        out = np.zeros(n, dtype=bool)
        out[rest] = mask
        return out

    def values(texts: list[str | None]) -> pa.Array:
        out: list[str | None] = [None] * n
        for i, t in zip(rest.tolist(), texts, strict=True):
            out[i] = t
        return pa.array(out, type=pa.string())

    rows.reject(
        full(missing), "geometry", values([None if v is None else "<undecodable WKB>" for v in wkb]), "bad geometry"
    )
    nonpoint = (tid != 0) & ~missing
    if nonpoint.any():
        type_ids = values(np.asarray(tid).astype(str).tolist())
        rows.reject(full(nonpoint), "geometry", type_ids, "not a Point (geometry type id)")
    pts = (tid == 0) & ~missing
    x[rest[pts]] = shapely.get_x(g[pts])
    y[rest[pts]] = shapely.get_y(g[pts])
    has_z = np.zeros(rest.size, dtype=bool)
    has_z[pts] = shapely.has_z(g[pts])
    if has_z.any():
        z[rest[has_z]] = shapely.get_z(g[has_z])
    return x, y, z


def _storage_py(v: pa.Scalar) -> Any:
    """A scalar as Python, or its storage value (an integer) when the value has no Python form."""
    try:
        return v.as_py()
    except (OverflowError, ValueError, KeyError, pa.ArrowException):  # KeyError: pytz's unknown time zone
        try:
            return v.cast(pa.int64()).as_py()
        except (pa.ArrowException, OverflowError, ValueError):
            return "(unreadable value)"


def _float_values(a: pa.Array) -> npt.NDArray[np.float64]:
    """Float64 numpy values of a numeric Arrow array, NaN where null (zero-copy when it can be)."""
    a = a.cast(pa.float64())
    if a.null_count == 0:
        return np.asarray(a.to_numpy(zero_copy_only=True), dtype=np.float64)
    return np.asarray(a.to_numpy(zero_copy_only=False), dtype=np.float64)


class ParquetReader:
    """GeoParquet (WKB points with ``geo`` metadata) or plain Parquet with lon/lat columns.

    Read by row-group batches (bounded memory); the same column mapping as CSV.
    ``src_rec`` is the 0-based row index in the file.
    """

    name = "geoparquet"
    extensions: tuple[str, ...] = (".parquet", ".geoparquet", ".pq")

    def sniff(self, head: bytes, path: Path) -> float:
        """Parquet files start with the magic ``PAR1``."""
        return 0.9 if head[:4] == b"PAR1" else 0.0

    def read(self, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        """Stream row-group batches of at most ``options.batch_rows`` rows.

        A file whose footer, schema or pages do not decode fails with
        :class:`~atalaya.core.errors.UnreadableInputError`, whatever the library raised.
        """
        try:
            yield from self._read(path, options)
        except IngestError:
            raise
        except (OSError, pa.ArrowException, ValueError) as e:
            # a corrupt footer or page surfaces as whatever the decoder tripped on (e.g. UnicodeDecodeError)
            raise UnreadableInputError(
                f"cannot read Parquet file {path}: {type(e).__name__}: {e}",
                hint="the file is corrupt or not Parquet; write it again (the rest of the run goes on)",
            ) from e

    def _read(self, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as e:
            raise IngestError(f"cannot read Parquet file {path}: {e}", hint="is it a complete Parquet file?") from e
        schema = pf.schema_arrow
        geom_col, enc = _geo_column(schema)
        names = [n for n in schema.names if n != geom_col]
        required: tuple[str, ...] = ("time", "sensor", "kind") if geom_col else ("time", "lon", "lat", "sensor", "kind")
        plan = plan_columns(names, options, required=required, source=str(path))
        if geom_col and "lon" in plan.targets.values() and "lat" in plan.targets.values():
            geom_col = None
        # enum columns (sensor, kind…) hold a few distinct values: read them as the dictionaries they are stored as
        as_dict = [src for src, dst in plan.targets.items() if dst in _ENUMS and schema.field(src).type == pa.string()]
        if as_dict:
            try:
                pf = pq.ParquetFile(path, read_dictionary=as_dict)
            except (OSError, pa.ArrowException) as e:
                raise IngestError(f"cannot read Parquet file {path}: {e}", hint="is it a complete Parquet file?") from e
        start = 0
        try:
            for rb in pf.iter_batches(batch_size=options.batch_rows):
                for col in rb.columns:  # a corrupt page can decode to dictionary indices out of range
                    if pa.types.is_dictionary(col.type):
                        col.validate(full=True)
                table = pa.Table.from_batches([rb])
                n = table.num_rows
                lines = np.arange(start, start + n, dtype=np.int64)
                yield self._batch(table, plan, lines, geom_col, enc)
                start += n
        except (OSError, pa.ArrowException) as e:
            raise IngestError(
                f"{path}: Parquet data unreadable after row {start}: {e}", hint="the file may be truncated"
            ) from e

    @staticmethod
    def _batch(
        table: pa.Table, plan: ColumnPlan, lines: npt.NDArray[np.int64], geom_col: str | None, enc: str
    ) -> ParsedBatch:
        n = table.num_rows

        def raw(i: int) -> str:
            one = table.slice(i, 1).drop_columns([geom_col] if geom_col else [])
            try:
                row = one.to_pylist()[0]
            except (OverflowError, ValueError, KeyError, pa.ArrowException):  # a time past 9999, a bad time zone
                row = {k: _storage_py(one.column(k)[0]) for k in one.column_names}
            return Reject.excerpt(json.dumps(row, default=str))

        if geom_col is None:
            cols, rejects = convert_table(table, plan, lines, raw)
            return ParsedBatch(columns=cols, rejects=rejects, records_read=n)
        geom = table.column(geom_col).combine_chunks()
        rows = _Rows(n=n, lines=lines, raw=raw, ok=np.ones(n, dtype=bool), rejects={})
        x, y, z = _points_from_geometry(geom, enc, rows)
        base = table.drop_columns([geom_col])
        extra = {"lon": pa.array(x), "lat": pa.array(y)}
        targets = dict(plan.targets)
        targets["__lon"] = "lon"
        targets["__lat"] = "lat"
        if "alt_m" not in targets.values():
            extra["alt_m"] = pa.array(z)
            targets["__alt"] = "alt_m"
        for k, v in extra.items():
            base = base.append_column(f"__{k.split('_')[0]}", v)
        sub = ColumnPlan(targets=targets, extras=plan.extras, implied=plan.implied, defaults=plan.defaults)
        keep = rows.ok
        if not keep.all():
            base = base.filter(pa.array(keep))
            lines = lines[keep]
            idx = np.flatnonzero(keep)
            cols, rej = convert_table(base, sub, lines, lambda i: raw(int(idx[i])))
        else:
            cols, rej = convert_table(base, sub, lines, raw)
        rejects = sorted([*rows.rejects.values(), *rej], key=lambda r: r.src_rec)
        return ParsedBatch(columns=cols, rejects=rejects, records_read=n)
