"""Vectorised validation and normalisation of reader output into the lake's Arrow schema.

``to_arrow`` takes the columns a reader produced and returns the rows that pass
(as an Arrow table in the observation schema, minus pipeline-filled columns)
and a :class:`Reject` for each row that does not, with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from atalaya.core.errors import IngestError
from atalaya.ingest.base import Reject
from atalaya.model.observation import ADAPTER_REQUIRED, SCHEMA, IdentKind, ObjectKind, Sensor

US_PER_DAY = 86_400_000_000
MIN_TIME_US = 315_532_800_000_000  # 1980-01-01T00:00:00Z

_CIRCULAR = frozenset({"course_deg", "err_orient_deg"})
"""Angles: a finite value outside the range is taken modulo 360 (headings of -128..127 from a signed byte)."""
_FLOAT_RANGES: dict[str, tuple[float, float]] = {
    "alt_m": (-1_000.0, 100_000.0),
    "pos_err_m": (0.0, 1_000_000.0),
    "err_minor_m": (0.0, 1_000_000.0),
    "err_orient_deg": (-360.0, 360.0),
    "speed_mps": (0.0, 2_000.0),
    "course_deg": (0.0, 360.0),
    "confidence": (0.0, 1.0),
}
_ENUMS: dict[str, frozenset[str]] = {
    "sensor": frozenset(s.value for s in Sensor),
    "kind": frozenset(k.value for k in ObjectKind),
    "ident_kind": frozenset(k.value for k in IdentKind),
}
_STRING_COLS = ("ident", "name", "attrs")
_DICT_COLS = ("sensor", "kind", "ident_kind", "platform_id", "sortie_id")
_INT64_MIN = np.iinfo(np.int64).min

# Arrow <-> NumPy through the buffers. pyarrow's own conversions (``pa.array`` of NumPy data, ``to_numpy``,
# Python scalars in compute calls) import pandas the first time they run, ~0.2 s of CPU holding the GIL; these
# helpers never do, so an ingest of clean typed input runs without pandas.


def np_values(a: pa.Array, dtype: npt.DTypeLike) -> npt.NDArray[Any]:
    """The values of a fixed-width Arrow array as a read-only NumPy view (what null slots hold is unspecified).

    >>> np_values(pa.array([1, 2, 3]).slice(1), np.int64).tolist()
    [2, 3]
    """
    dt = np.dtype(dtype)
    n = len(a)
    buf = a.buffers()[1]
    if n == 0 or buf is None:
        return np.zeros(n, dtype=dt)
    if dt.itemsize * 8 != a.type.bit_width:
        raise TypeError(f"{a.type} values are not {dt}")
    return np.frombuffer(buf, dtype=dt, count=n, offset=a.offset * dt.itemsize)


def valid_mask(a: pa.Array) -> npt.NDArray[np.bool_] | None:
    """Which entries of ``a`` are not null; ``None`` when none is null.

    >>> valid_mask(pa.array([1, None, 3])).tolist(), valid_mask(pa.array([1]))
    ([True, False, True], None)
    """
    if a.null_count == 0:
        return None
    buf = a.buffers()[0]
    if buf is None:  # the null type: every entry null
        return np.zeros(len(a), dtype=bool)
    bits = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), count=a.offset + len(a), bitorder="little")
    return bits[a.offset :].view(np.bool_)


def from_numpy(values: npt.NDArray[Any], typ: pa.DataType, valid: npt.NDArray[np.bool_] | None = None) -> pa.Array:
    """An Arrow array of fixed-width ``typ`` over ``values`` (no copy when contiguous); null where ``valid`` is false.

    >>> from_numpy(np.array([1.5, 2.5]), pa.float64(), np.array([True, False])).to_pylist()
    [1.5, None]
    """
    values = np.ascontiguousarray(values)
    if values.dtype.itemsize * 8 != typ.bit_width:
        raise TypeError(f"{values.dtype} values are not {typ}")
    n = len(values)
    bitmap = None
    nulls = 0
    if valid is not None:
        nulls = n - int(np.count_nonzero(valid))
        if nulls:
            bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(typ, n, [bitmap, pa.py_buffer(values)], null_count=nulls)


def bool_array(mask: npt.NDArray[np.bool_]) -> pa.BooleanArray:
    """A NumPy mask as an Arrow boolean array (for ``filter``).

    >>> bool_array(np.array([True, False, True])).to_pylist()
    [True, False, True]
    """
    n = len(mask)
    bits = pa.py_buffer(np.packbits(mask, bitorder="little"))
    out: pa.BooleanArray = pa.Array.from_buffers(pa.bool_(), n, [None, bits], null_count=0)
    return out


def string_array(values: list[str]) -> pa.StringArray:
    """A few Python strings (no nulls) as an Arrow string array.

    >>> string_array(["EO", "", "ü"]).to_pylist()
    ['EO', '', 'ü']
    """
    enc = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(enc) + 1, dtype=np.int32)
    if enc:
        np.cumsum([len(b) for b in enc], out=offsets[1:])
    out: pa.StringArray = pa.Array.from_buffers(
        pa.string(), len(enc), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(enc))], null_count=0
    )
    return out


@dataclass(frozen=True, kw_only=True)
class Bounds:
    """Accepted time range (µs since epoch, UTC)."""

    min_time_us: int = MIN_TIME_US
    """Earliest accepted time."""
    max_time_us: int | None = None
    """Latest accepted time (``None``: now + 1 day, evaluated per run)."""


def _as_float(values: Any, n: int) -> npt.NDArray[np.float64]:
    """Float64 values, NaN where missing (a view of the Arrow buffer when nothing is missing)."""
    if values is None:
        return np.full(n, np.nan)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        if pa.types.is_null(values.type):
            return np.full(len(values), np.nan)
        values = values.cast(pa.float64())
        v = np_values(values, np.float64)
        valid = valid_mask(values)
        return v if valid is None else np.where(valid, v, np.nan)
    return np.asarray(values, dtype=np.float64)


def _as_time_us(values: Any) -> npt.NDArray[np.int64]:
    """Int64 µs since the epoch, ``INT64_MIN`` where missing (a view of the Arrow buffer when nothing is missing)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        if pa.types.is_timestamp(values.type):
            values = values.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        if not pa.types.is_integer(values.type):
            return np.asarray(values.fill_null(_INT64_MIN).to_numpy(zero_copy_only=False), dtype=np.int64)
        values = values.cast(pa.int64())
        v = np_values(values, np.int64)
        valid = valid_mask(values)
        return v if valid is None else np.where(valid, v, _INT64_MIN)
    arr = np.asarray(values)
    if np.issubdtype(arr.dtype, np.datetime64):
        return arr.astype("datetime64[us]").astype(np.int64)
    return np.asarray(arr, dtype=np.int64)


def _as_string_array(values: Any, n: int) -> pa.Array:
    if values is None:
        return pa.nulls(n, pa.string())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        if pa.types.is_dictionary(values.type):
            values = values.cast(pa.string())
        return values if values.type == pa.string() else values.cast(pa.string())
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        return pa.array(values).cast(pa.string())
    return pa.array(values, type=pa.string())


_DICT = pa.dictionary(pa.int32(), pa.string())


def _string_dict(values: Any) -> pa.DictionaryArray | None:
    """``values`` as is when it already is a dictionary array of distinct, non-null strings (else ``None``)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if not isinstance(values, pa.DictionaryArray):
        return None
    d = values.dictionary
    if d.type != pa.string() or d.null_count or pc.count_distinct(d).as_py() != len(d):
        return None
    return values if values.type == _DICT else values.cast(_DICT)


def _to_dict(values: Any, n: int) -> pa.DictionaryArray:
    given = _string_dict(values)
    if given is not None:
        return given
    d = pc.dictionary_encode(_as_string_array(values, n))
    return d.cast(_DICT)


def _normalised_dict(values: Any, n: int, *, upper: bool) -> pa.DictionaryArray:
    """Dictionary-encode, trimming and case-folding the (few) distinct values, not every row."""
    enc = _string_dict(values)
    if enc is None:
        enc = pc.dictionary_encode(_as_string_array(values, n)).cast(_DICT)
    vals = enc.dictionary.to_pylist()
    norm = [(v.strip().upper() if upper else v.strip().lower()) for v in vals]
    uniq = sorted(set(norm))
    if uniq == vals:
        return enc
    pos = {v: i for i, v in enumerate(uniq)}
    remap = np.array([pos[v] for v in norm], dtype=np.int32)
    idx = np_values(enc.indices, np.int32)
    valid = valid_mask(enc.indices)
    safe = idx if valid is None else np.where(valid, idx, 0)
    new_idx = remap[safe] if remap.size else np.zeros(len(idx), dtype=np.int32)
    return pa.DictionaryArray.from_arrays(from_numpy(new_idx, pa.int32(), valid), string_array(uniq))


def _annotate_attrs(attrs: pa.Array, row_notes: dict[int, dict[str, str]]) -> pa.Array:
    """``attrs`` with each noted row's JSON object given a ``"qc"`` member (field → what was done)."""
    values = attrs.to_pylist()
    for row, note in row_notes.items():
        base: Any = None
        if values[row]:
            try:
                base = json.loads(values[row])
            except ValueError:
                base = None
        obj = base if isinstance(base, dict) else ({} if not values[row] else {"raw": values[row]})
        prior = obj.get("qc")
        qc: dict[str, Any] = prior if isinstance(prior, dict) else {}
        obj["qc"] = {**qc, **note}
        values[row] = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return pa.array(values, type=pa.string())


def to_arrow(
    columns: Mapping[str, Any],
    bounds: Bounds,
    now_us: int,
    *,
    notes: dict[str, int] | None = None,
    noted_rows: list[tuple[int, str]] | None = None,
) -> tuple[dict[str, pa.Array], npt.NDArray[np.bool_], list[tuple[int, str]]]:
    """Validate reader columns.

    Returns ``(arrays, keep, problems)``: Arrow arrays for all rows (schema
    columns the reader supplies, unfiltered), the mask of rows that pass, and
    ``(row, reason)`` for each rejected row.

    Time and position decide whether a row is kept. An auxiliary field that is bad (a number out of its range,
    an unknown ``ident_kind``) costs only that field: an angle is normalised modulo 360, anything else is
    nulled, and the row's ``attrs`` JSON gets ``"qc": {field: "normalised from V" | "nulled: V"}``. ``notes``,
    when given, counts them by ``"FIELD normalised"`` / ``"FIELD nulled"``; ``noted_rows``, when given, gets
    ``(row, "FIELD normalised" | "FIELD nulled")`` for each (rows of many files: counted per file).

    Each check first looks at the column's minimum and maximum (one pass, no temporaries); only a column that
    may hold a bad value is checked row by row. A row gets the first reason that applies, in the order below.
    """
    missing = [c for c in ADAPTER_REQUIRED if c not in columns]
    if missing:
        raise IngestError(f"reader produced no {', '.join(missing)} column(s)", hint="this is a bug in the reader")
    t = _as_time_us(columns["time"])
    n = len(t)
    lon = _as_float(columns["lon"], n)
    lat = _as_float(columns["lat"], n)
    reasons: npt.NDArray[np.int16] | None = None
    texts: list[str] = [""]

    def flag(cond: npt.NDArray[np.bool_], text: str) -> None:
        nonlocal reasons
        if not cond.any():
            return
        if reasons is None:
            reasons = np.zeros(n, dtype=np.int16)
        sel = cond & (reasons == 0)
        if sel.any():
            texts.append(text)
            reasons[sel] = len(texts) - 1

    max_t = bounds.max_time_us if bounds.max_time_us is not None else now_us + US_PER_DAY
    if n:
        first, last = int(t.min()), int(t.max())
        if first == _INT64_MIN or first < bounds.min_time_us or last > max_t:
            flag(t == _INT64_MIN, "missing or unparsable time")
            flag(t < bounds.min_time_us, "time before 1980-01-01 (out of range)")
            flag(t > max_t, "time more than a day in the future (out of range)")
        lon_lo, lon_hi, lat_lo, lat_hi = lon.min(), lon.max(), lat.min(), lat.max()  # NaN if any is NaN
        in_range = lon_lo >= -180.0 and lon_hi <= 180.0 and lat_lo >= -90.0 and lat_hi <= 90.0
        if not in_range:
            flag(~np.isfinite(lon) | ~np.isfinite(lat), "longitude/latitude missing or not a number")
            with np.errstate(invalid="ignore"):
                flag((np.abs(lon) > 180.0) | (np.abs(lat) > 90.0), "longitude/latitude out of range")
        if not in_range or (lon_lo <= 0.0 <= lon_hi and lat_lo <= 0.0 <= lat_hi):
            flag((lon == 0.0) & (lat == 0.0), "position 0,0 (null island): almost certainly a missing fix")

    arrays: dict[str, pa.Array] = {
        "time": from_numpy(t, pa.timestamp("us", tz="UTC")),
        "lon": from_numpy(lon, pa.float64()),
        "lat": from_numpy(lat, pa.float64()),
    }
    row_notes: dict[int, dict[str, str]] = {}

    def note(rows: npt.NDArray[np.bool_], field_name: str, what: str, shown: npt.NDArray[Any]) -> None:
        idx = np.flatnonzero(rows)
        if not len(idx):
            return
        if notes is not None:
            notes[f"{field_name} {what}"] = notes.get(f"{field_name} {what}", 0) + len(idx)
        if noted_rows is not None:
            noted_rows.extend((i, f"{field_name} {what}") for i in idx.tolist())
        for i in idx.tolist():
            v = shown[i]
            text = f"{v:g}" if isinstance(v, float | np.floating) else str(v)
            row_notes.setdefault(i, {})[field_name] = (
                f"normalised from {text}" if what == "normalised" else (f"nulled: {text}")
            )

    for name, (lo, hi) in _FLOAT_RANGES.items():
        typ = SCHEMA.field(name).type
        given = columns.get(name)
        if given is None:
            arrays[name] = pa.nulls(n, typ)
            continue
        floating = isinstance(given, np.ndarray) and given.dtype in (np.float32, np.float64)
        v = given if floating else _as_float(given, n)
        valid = None
        if n:
            v_lo, v_hi = v.min(), v.max()  # NaN (missing) anywhere makes both NaN
            if np.isnan(v_lo):
                valid = ~np.isnan(v)
            if valid is not None or v_lo < lo or v_hi > hi:
                with np.errstate(invalid="ignore"):
                    bad = (v < lo) | (v > hi)  # false for NaN
                    if name in _CIRCULAR:
                        finite = bad & np.isfinite(v)
                        if finite.any():
                            original = v.astype(np.float64)
                            v = np.where(finite, np.mod(original, 360.0), v)
                            note(finite, name, "normalised", original)
                            bad = bad & ~finite
                    if bad.any():
                        note(bad, name, "nulled", v.astype(np.float64))
                        keep_v = ~bad if valid is None else valid & ~bad
                        valid = keep_v
                        v = np.where(bad, np.nan, v)
        if typ == pa.float32() and v.dtype != np.float32:
            with np.errstate(over="ignore"):
                v = v.astype(np.float32)
        arrays[name] = from_numpy(v, typ, valid)
    for name in _ENUMS:
        given = columns.get(name)
        enc = _normalised_dict(given, n, upper=(name == "sensor"))
        allowed = _ENUMS[name]
        dict_vals = enc.dictionary.to_pylist()
        bad_codes = [i for i, v in enumerate(dict_vals) if v not in allowed]
        present = valid_mask(enc.indices)
        if bad_codes and name == "ident_kind":  # auxiliary: the unknown value is nulled, the row kept
            unknown = np.isin(np_values(enc.indices, np.int32), bad_codes)
            if present is not None:
                unknown &= present
            codes = np.clip(np_values(enc.indices, np.int32), 0, len(dict_vals) - 1)
            note(unknown, name, "nulled", np.asarray(dict_vals, dtype=object)[codes])
            keep_valid = ~unknown if present is None else present & ~unknown
            enc = pa.DictionaryArray.from_arrays(from_numpy(np.array(np_values(enc.indices, np.int32)), pa.int32(),
                                                            keep_valid), enc.dictionary)  # fmt: skip
            present = valid_mask(enc.indices)
        elif bad_codes:
            unknown = np.isin(np_values(enc.indices, np.int32), bad_codes)
            flag(
                unknown if present is None else unknown & present,
                f"unknown {name} value (allowed: {', '.join(sorted(allowed))})",
            )
        if name != "ident_kind" and present is not None:
            flag(~present, f"missing {name}")
        arrays[name] = enc
    for name in _STRING_COLS:
        arrays[name] = _as_string_array(columns.get(name), n)
    if row_notes:
        arrays["attrs"] = _annotate_attrs(arrays["attrs"], row_notes)
    for name in ("platform_id", "sortie_id"):
        arrays[name] = _to_dict(columns.get(name), n)
    src_rec = columns["src_rec"]
    arrays["src_rec"] = (
        src_rec if isinstance(src_rec, pa.Array) else from_numpy(np.asarray(src_rec, dtype=np.int64), pa.int64())
    )
    if reasons is None:
        return arrays, np.ones(n, dtype=bool), []
    keep = reasons == 0
    bad_rows = np.flatnonzero(~keep)
    problems = [(int(i), texts[int(reasons[i])]) for i in bad_rows]
    return arrays, keep, problems


def excerpt_row(arrays: Mapping[str, pa.Array], row: int) -> str:
    """A compact JSON rendering of one row, for the quarantine's ``raw`` field."""
    d: dict[str, Any] = {}
    for k in ("time", "lon", "lat", "sensor", "kind", "ident", "speed_mps", "course_deg", "confidence"):
        if k in arrays:
            scalar = arrays[k][row]
            try:
                v = scalar.as_py()
            except (OverflowError, ValueError):  # a time outside datetime's years 1-9999: show the raw count
                v = f"{scalar.cast(pa.int64()).as_py()} us since 1970"
            if v is not None:
                d[k] = v
    return json.dumps(d, default=str)[:512]


def rejects_from(arrays: Mapping[str, pa.Array], problems: list[tuple[int, str]]) -> list[Reject]:
    """Turn validation problems into rejects carrying the source locator."""
    src = arrays["src_rec"]
    return [Reject(src_rec=int(src[i].as_py()), reason=r, raw=excerpt_row(arrays, i)) for i, r in problems]
