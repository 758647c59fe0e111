"""NASA FIRMS active fire / thermal anomaly CSV (MODIS Collection 6.1 and VIIRS 375 m), read natively.

The files FIRMS publishes (NRT downloads, the area API, archive requests) have
one header line and these columns::

    MODIS: latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,
           bright_t31,frp,daynight[,type]
    VIIRS: latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,
           bright_ti5,frp,daynight[,type]

Each row is one fire pixel, read as a thermal detection (sensor ``IR``, kind
``thermal``: what the sites analytic reads as heat):

- **time** from ``acq_date`` (``YYYY-MM-DD``) and ``acq_time`` (``HHMM``, UTC;
  archive files drop the leading zeros, ``412`` is 04:12);
- **confidence** mapped to [0, 1]: MODIS 0–100 divided by 100; VIIRS classes
  ``l``/``low`` 0.3, ``n``/``nominal`` 0.6, ``h``/``high`` 0.9 (the raw value
  stays in ``attrs.confidence``);
- **position error** from the pixel size: ``scan`` (across track) and ``track``
  (along track) are kilometres; the fire lies anywhere in the pixel, so the
  1-sigma error along each side is its length / √12 (``pos_err_m`` the larger,
  ``err_minor_m`` the smaller; the orientation is not in the file). ``track`` is
  never read as a course;
- every other column (``scan``, ``track``, brightness temperatures in kelvin,
  ``frp`` in MW, ``satellite``, ``instrument``, ``version``, ``daynight``,
  ``type``) is kept in ``attrs``, numbers as numbers.

``--set`` constants apply (``--set sensor=…`` replaces ``IR``); ``--map`` does
not (the columns are fixed). ``src_rec`` is the 1-based line number (counting
the header); rows with the wrong number of fields are rejected.

>>> FirmsReader().sniff(b"latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,satellite\\n", Path("f.csv"))
0.97
>>> FirmsReader().sniff(b"time,lon,lat\\n", Path("f.csv"))
0.0
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from atalaya.core.errors import IngestError
from atalaya.ingest.base import ParsedBatch, ReadOptions, Reject, open_source
from atalaya.ingest.csvblocks import string_blocks
from atalaya.ingest.tabular import ColumnPlan, _build_attrs, convert_table

MODIS_COLUMNS = ("latitude", "longitude", "brightness", "scan", "track", "acq_date", "acq_time", "satellite",
                 "instrument", "confidence", "version", "bright_t31", "frp", "daynight")  # fmt: skip
"""Header of a FIRMS MODIS C6.1 CSV (archive files add ``type``)."""
VIIRS_COLUMNS = ("latitude", "longitude", "bright_ti4", "scan", "track", "acq_date", "acq_time", "satellite",
                 "instrument", "confidence", "version", "bright_ti5", "frp", "daynight")  # fmt: skip
"""Header of a FIRMS VIIRS 375 m CSV (S-NPP, NOAA-20, NOAA-21; archive files add ``type``)."""
VIIRS_CONFIDENCE = {"l": 0.3, "low": 0.3, "n": 0.6, "nominal": 0.6, "h": 0.9, "high": 0.9}
"""VIIRS confidence classes → confidence in [0, 1]."""
_REQUIRED = ("latitude", "longitude", "acq_date", "acq_time")
_NUMERIC = ("scan", "track", "brightness", "bright_t31", "bright_ti4", "bright_ti5", "frp", "type")
_NUM_RE = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_SQRT12 = math.sqrt(12.0)


def _strings(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    c = a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a
    return c if pa.types.is_string(c.type) else c.cast(pa.string())


def _numbers(a: pa.Array) -> pa.Array:
    """Float64 of a string column (null where the text is not a number)."""
    s = pc.utf8_trim_whitespace(a)
    ok = pc.match_substring_regex(s, _NUM_RE)
    return pc.if_else(ok, s, pa.scalar(None, pa.string())).cast(pa.float64())


def _times(date: pa.Array, hhmm: pa.Array) -> pa.Array:
    """ISO 8601 UTC text from ``acq_date`` and ``acq_time`` (null where ``acq_time`` is not 1–4 digits)."""
    t = pc.utf8_trim_whitespace(hhmm)
    ok = pc.match_substring_regex(t, r"^\d{1,4}$")
    t = pc.utf8_lpad(pc.if_else(ok, t, pa.scalar(None, pa.string())), 4, "0")
    iso = pc.binary_join_element_wise(
        pc.utf8_trim_whitespace(date), "T", pc.utf8_slice_codeunits(t, 0, 2), ":", pc.utf8_slice_codeunits(t, 2, 4),
        ":00Z", "",
    )  # fmt: skip
    out: pa.Array = iso
    return out


def _confidence(raw: pa.Array) -> pa.Array:
    """MODIS 0–100 → /100; VIIRS l/n/h → 0.3/0.6/0.9; anything else null."""
    s = pc.utf8_lower(pc.utf8_trim_whitespace(raw))
    num = pc.divide(_numbers(s), 100.0)
    keys = pa.array(list(VIIRS_CONFIDENCE), pa.string())
    vals = pa.array(list(VIIRS_CONFIDENCE.values()), pa.float64())
    cls = pc.take(vals, pc.index_in(s, value_set=keys))
    return pc.coalesce(num, cls)


class FirmsReader:
    """Reader for FIRMS MODIS and VIIRS active-fire CSV files (see the module docstring)."""

    name = "firms"
    extensions: tuple[str, ...] = (".csv", ".txt")

    def sniff(self, head: bytes, path: Path) -> float:
        """High when the header names FIRMS's columns (position, ``acq_date``, ``acq_time``)."""
        first = head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].decode("utf-8", errors="replace").strip().lower()
        names = {c.strip().strip('"') for c in first.split(",")}
        return 0.97 if set(_REQUIRED) <= names else 0.0

    def read(self, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        """Stream the file in batches of about ``options.batch_rows`` rows."""
        with open_source(path, options.limits) as fh:
            header = fh.readline(options.limits.max_line_bytes + 1)
            text = header.lstrip(b"\xef\xbb\xbf").decode("utf-8", errors="replace").strip()
            names = [c.strip().strip('"').lower() for c in text.split(",")]
            missing = [c for c in _REQUIRED if c not in names]
            if missing or len(set(names)) != len(names):
                raise IngestError(
                    f"{path}: not a FIRMS CSV (header {text[:200]!r} lacks {missing or 'unique names'})",
                    hint="the first line must be FIRMS's header: " + ",".join(VIIRS_COLUMNS),
                )
            block = int(min(64 << 20, max(1 << 16, 120 * options.batch_rows)))
            first = True
            for tb, lines, rejects in string_blocks(
                fh, names, block_bytes=block, null_values=["", "NULL", "null", "NaN", "nan", "N/A", "n/a"]
            ):
                if tb is None:
                    yield ParsedBatch(columns={}, rejects=rejects, records_read=len(rejects))
                    continue
                batch = self._convert(tb, lines, options, rejects)
                if first:
                    batch.bytes_read += len(header)
                    first = False
                yield batch

    @staticmethod
    def _convert(
        tb: pa.Table, lines: npt.NDArray[np.int64], options: ReadOptions, rejects: list[Reject]
    ) -> ParsedBatch:
        n = tb.num_rows
        col = {c: _strings(tb.column(c)) for c in tb.column_names}
        scan, track = (_numbers(col[c]) if c in col else pa.nulls(n, pa.float64()) for c in ("scan", "track"))
        big = pc.max_element_wise(scan, track)
        small = pc.min_element_wise(scan, track)
        cols: dict[str, pa.Array] = {
            "time": _times(col["acq_date"], col["acq_time"]),
            "lon": col["longitude"],
            "lat": col["latitude"],
            "pos_err_m": pc.divide(pc.multiply(big, 1000.0), _SQRT12),
            "err_minor_m": pc.divide(pc.multiply(small, 1000.0), _SQRT12),
        }
        if "confidence" in col:
            cols["confidence"] = _confidence(col["confidence"])
        extras = [c for c in tb.column_names if c not in ("latitude", "longitude", "acq_date", "acq_time")]
        attrs = None
        if extras:
            at = pa.table({c: _numbers(col[c]) if c in _NUMERIC else col[c] for c in extras})
            attrs = _build_attrs(at, extras)
        plan = ColumnPlan(targets={k: k for k in cols}, extras=(),
                          defaults={"sensor": "IR", "kind": "thermal", **options.defaults})  # fmt: skip
        table = pa.table(cols)

        def raw(i: int) -> str:
            return Reject.excerpt(",".join("" if (v := col[c][i].as_py()) is None else str(v) for c in tb.column_names))

        out, rej = convert_table(table, plan, lines, raw, attrs=attrs)
        return ParsedBatch(columns=out, rejects=sorted([*rejects, *rej], key=lambda r: r.src_rec),
                           records_read=n + len(rejects),
                           bytes_read=0)  # fmt: skip


__all__ = ["MODIS_COLUMNS", "VIIRS_COLUMNS", "VIIRS_CONFIDENCE", "FirmsReader"]
