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


@dataclass(frozen=True, kw_only=True)
class Bounds:
    """Accepted time range (µs since epoch, UTC)."""

    min_time_us: int = MIN_TIME_US
    """Earliest accepted time."""
    max_time_us: int | None = None
    """Latest accepted time (``None``: now + 1 day, evaluated per run)."""


def _as_float(values: Any, n: int) -> npt.NDArray[np.float64]:
    if values is None:
        return np.full(n, np.nan)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return np.asarray(values.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False), dtype=np.float64)
    return np.asarray(values, dtype=np.float64)


def _as_time_us(values: Any) -> npt.NDArray[np.int64]:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        if pa.types.is_timestamp(values.type):
            values = values.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        return np.asarray(values.fill_null(np.iinfo(np.int64).min).to_numpy(zero_copy_only=False), dtype=np.int64)
    arr = np.asarray(values)
    if np.issubdtype(arr.dtype, np.datetime64):
        return arr.astype("datetime64[us]").astype(np.int64)
    return arr.astype(np.int64)


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
        enc = pc.dictionary_encode(_as_string_array(values, n))
    vals = enc.dictionary.to_pylist()
    norm = [(v.strip().upper() if upper else v.strip().lower()) for v in vals]
    uniq = sorted(set(norm))
    if uniq == vals:
        return enc.cast(_DICT)
    remap = np.array([uniq.index(v) for v in norm], dtype=np.int32)
    idx = enc.indices.to_numpy(zero_copy_only=False)
    valid = np.asarray(enc.indices.is_valid())
    new_idx = np.where(valid, remap[np.where(valid, idx, 0).astype(np.int64)] if remap.size else 0, 0).astype(np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(new_idx, mask=~valid), pa.array(uniq, type=pa.string()))


def to_arrow(
    columns: Mapping[str, Any], bounds: Bounds, now_us: int
) -> tuple[dict[str, pa.Array], npt.NDArray[np.bool_], list[tuple[int, str]]]:
    """Validate reader columns.

    Returns ``(arrays, keep, problems)``: Arrow arrays for all rows (schema
    columns the reader supplies, unfiltered), the mask of rows that pass, and
    ``(row, reason)`` for each rejected row.
    """
    missing = [c for c in ADAPTER_REQUIRED if c not in columns]
    if missing:
        raise IngestError(f"reader produced no {', '.join(missing)} column(s)", hint="this is a bug in the reader")
    t = _as_time_us(columns["time"])
    n = len(t)
    lon = _as_float(columns["lon"], n)
    lat = _as_float(columns["lat"], n)
    reasons = np.zeros(n, dtype=np.int16)
    texts: list[str] = [""]

    def flag(cond: npt.NDArray[np.bool_], text: str) -> None:
        sel = cond & (reasons == 0)
        if sel.any():
            texts.append(text)
            reasons[sel] = len(texts) - 1

    max_t = bounds.max_time_us if bounds.max_time_us is not None else now_us + US_PER_DAY
    flag(t == np.iinfo(np.int64).min, "missing or unparsable time")
    flag(t < bounds.min_time_us, "time before 1980-01-01 (out of range)")
    flag(t > max_t, "time more than a day in the future (out of range)")
    flag(~np.isfinite(lon) | ~np.isfinite(lat), "longitude/latitude missing or not a number")
    flag((np.abs(lon) > 180.0) | (np.abs(lat) > 90.0), "longitude/latitude out of range")
    flag((lon == 0.0) & (lat == 0.0), "position 0,0 (null island): almost certainly a missing fix")

    arrays: dict[str, pa.Array] = {
        "time": pa.array(t, type=pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "lon": pa.array(lon, type=pa.float64()),
        "lat": pa.array(lat, type=pa.float64()),
    }
    for name, (lo, hi) in _FLOAT_RANGES.items():
        typ = SCHEMA.field(name).type
        given = columns.get(name)
        if given is None:
            arrays[name] = pa.nulls(n, typ)
            continue
        v32 = given if isinstance(given, np.ndarray) and given.dtype == np.float32 and typ == pa.float32() else None
        v = v32 if v32 is not None else _as_float(given, n)
        with np.errstate(invalid="ignore"):
            bad = (v < lo) | (v > hi)  # false for NaN; true for ±inf (outside every range)
        flag(bad, f"{name} out of range [{lo:g}, {hi:g}]")
        arrays[name] = (
            pa.array(v, type=typ, from_pandas=True)
            if v32 is not None
            else pa.array(v, type=pa.float64(), from_pandas=True).cast(typ)
        )
    for name in _ENUMS:
        given = columns.get(name)
        enc = _normalised_dict(given, n, upper=(name == "sensor"))
        allowed = _ENUMS[name]
        dict_vals = enc.dictionary.to_pylist()
        bad_codes = [i for i, v in enumerate(dict_vals) if v not in allowed]
        idx = np.asarray(enc.indices.fill_null(-1).to_numpy(zero_copy_only=False))
        if bad_codes:
            flag(np.isin(idx, bad_codes), f"unknown {name} value (allowed: {', '.join(sorted(allowed))})")
        if name != "ident_kind":
            flag(idx < 0, f"missing {name}")
        arrays[name] = enc
    for name in _STRING_COLS:
        arrays[name] = _as_string_array(columns.get(name), n)
    for name in ("platform_id", "sortie_id"):
        arrays[name] = _to_dict(columns.get(name), n)
    src_rec = columns["src_rec"]
    arrays["src_rec"] = pa.array(np.asarray(src_rec, dtype=np.int64)) if not isinstance(src_rec, pa.Array) else src_rec
    keep = reasons == 0
    bad_rows = np.flatnonzero(~keep)
    problems = [(int(i), texts[int(reasons[i])]) for i in bad_rows]
    return arrays, keep, problems


def excerpt_row(arrays: Mapping[str, pa.Array], row: int) -> str:
    """A compact JSON rendering of one row, for the quarantine's ``raw`` field."""
    d: dict[str, Any] = {}
    for k in ("time", "lon", "lat", "sensor", "kind", "ident", "speed_mps", "course_deg", "confidence"):
        if k in arrays:
            v = arrays[k][row].as_py()
            if v is not None:
                d[k] = v
    return json.dumps(d, default=str)[:512]


def rejects_from(arrays: Mapping[str, pa.Array], problems: list[tuple[int, str]]) -> list[Reject]:
    """Turn validation problems into rejects carrying the source locator."""
    src = arrays["src_rec"]
    return [Reject(src_rec=int(src[i].as_py()), reason=r, raw=excerpt_row(arrays, i)) for i, r in problems]
