"""Flightradar24 flight CSV exports ("Download CSV" on a flight's playback page), read natively.

One header line, then one row per position::

    Timestamp,UTC,Callsign,Position,Altitude,Speed,Direction
    1704180458,2024-01-02T07:27:38Z,JAL516,"42.770142,141.691422",550,144,172

Each row is an ADS-B observation of an aircraft (sensor ``ADSB``, kind ``aircraft``):

- **time** from ``UTC`` (ISO 8601), or from ``Timestamp`` (epoch seconds) where ``UTC`` is empty;
- **lat/lon** from ``Position``, one quoted field holding ``"latitude,longitude"``;
- **alt_m** from ``Altitude`` in **feet**, **speed_mps** from ``Speed`` in **knots** (ground speed),
  **course_deg** from ``Direction`` (degrees true);
- **ident** is the ``Callsign`` (``ident_kind`` ``callsign``: the export carries no ICAO address).

The generic ``csv`` reader cannot take these files: latitude and longitude share a field, and its aliases would
read ``Altitude`` as metres and ``Speed`` as m/s. ``--set`` constants apply; ``--map`` does not (the columns are
fixed). ``src_rec`` is the 1-based line number (counting the header); rows with the wrong number of fields or a
``Position`` that is not two numbers are quarantined with the reason.

>>> Fr24CsvReader().sniff(b"Timestamp,UTC,Callsign,Position,Altitude,Speed,Direction\\n", Path("f.csv"))
0.97
>>> Fr24CsvReader().sniff(b"time,lon,lat\\n", Path("f.csv"))
0.0
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from atalaya.core.errors import IngestError
from atalaya.ingest.adsb import FT_TO_M, KT_TO_MPS
from atalaya.ingest.base import ParsedBatch, ReadOptions, Reject, open_source
from atalaya.ingest.csvblocks import string_blocks
from atalaya.ingest.tabular import ColumnPlan, convert_table

__all__ = ["FR24_COLUMNS", "Fr24CsvReader"]

FR24_COLUMNS = ("timestamp", "utc", "callsign", "position", "altitude", "speed", "direction")
"""Header of a Flightradar24 flight CSV export (lower-cased)."""
_NUM_RE = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_LATLON_RE = r"^\s*[-+]?\d+(\.\d*)?\s*,\s*[-+]?\d+(\.\d*)?\s*$"


def _numbers(a: pa.Array) -> pa.Array:
    """Float64 of a string column (null where the text is not a number)."""
    ok = pc.match_substring_regex(a, _NUM_RE)
    return pc.if_else(ok, pc.utf8_trim_whitespace(a), pa.scalar(None, pa.string())).cast(pa.float64())


def _lat_lon(position: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Latitude and longitude text of ``"lat,lon"`` fields (callers have set aside the fields that are not)."""
    parts = pc.split_pattern(position, ",")
    lat = pc.utf8_trim_whitespace(pc.list_element(parts, 0))
    lon = pc.utf8_trim_whitespace(pc.list_element(parts, 1))
    return lat, lon


class Fr24CsvReader:
    """Reader for Flightradar24 flight CSV exports (see the module docstring)."""

    name = "fr24-csv"
    extensions: tuple[str, ...] = (".csv",)

    def sniff(self, head: bytes, path: Path) -> float:
        """High when the header is the export's (``Timestamp,UTC,Callsign,Position,…``)."""
        first = head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].decode("utf-8", errors="replace").strip().lower()
        names = tuple(c.strip().strip('"') for c in first.split(","))
        return 0.97 if names == FR24_COLUMNS else 0.0

    def read(self, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        """Stream the file in batches of about ``options.batch_rows`` rows."""
        with open_source(path, options.limits) as fh:
            header = fh.readline(options.limits.max_line_bytes + 1)
            text = header.lstrip(b"\xef\xbb\xbf").decode("utf-8", errors="replace").strip()
            names = [c.strip().strip('"').lower() for c in text.split(",")]
            if tuple(names) != FR24_COLUMNS:
                raise IngestError(
                    f"{path}: not a Flightradar24 CSV export (header {text[:200]!r})",
                    hint="the first line must be: Timestamp,UTC,Callsign,Position,Altitude,Speed,Direction",
                )
            block = int(min(64 << 20, max(1 << 16, 80 * options.batch_rows)))
            first = True
            for tb, lines, rejects in string_blocks(fh, names, block_bytes=block, null_values=[""]):
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
        col = {c: tb.column(c).combine_chunks() for c in tb.column_names}

        def raw(i: int) -> str:
            return Reject.excerpt(",".join("" if (v := col[c][i].as_py()) is None else str(v) for c in tb.column_names))

        pos = col["position"]
        bad = np.asarray(pc.invert(pc.fill_null(pc.match_substring_regex(pos, _LATLON_RE), False)), dtype=bool)
        for i in np.flatnonzero(bad):
            rejects.append(Reject(src_rec=int(lines[i]), raw=raw(int(i)),
                                  reason=f"Position {pos[i].as_py()!r} is not \"latitude,longitude\""))  # fmt: skip
        if bad.any():
            keep = pa.array(np.flatnonzero(~bad))
            col = {c: a.take(keep) for c, a in col.items()}
            lines = lines[~bad]
        lat, lon = _lat_lon(col["position"])
        cols: dict[str, pa.Array] = {
            "time": pc.coalesce(col["utc"], col["timestamp"]),
            "lon": lon,
            "lat": lat,
            "alt_m": pc.multiply(_numbers(col["altitude"]), FT_TO_M),
            "speed_mps": pc.multiply(_numbers(col["speed"]), KT_TO_MPS),
            "course_deg": _numbers(col["direction"]),
            "ident": col["callsign"],
        }
        defaults = {"sensor": "ADSB", "kind": "aircraft", "ident_kind": "callsign", **options.defaults}
        plan = ColumnPlan(targets={k: k for k in cols}, extras=(), defaults=defaults)
        out, rej = convert_table(pa.table(cols), plan, lines, raw)
        return ParsedBatch(columns=out, rejects=sorted([*rejects, *rej], key=lambda r: r.src_rec),
                           records_read=n + len(rejects), bytes_read=0)  # fmt: skip
