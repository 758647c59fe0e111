"""The explicit registry of input formats. Readers load lazily (no import side effects).

>>> "nmea" in FORMATS
True
>>> get_reader("cot").name
'cot'
"""

from __future__ import annotations

import importlib
from pathlib import Path

from atalaya.core.errors import FormatDetectionError, IngestError
from atalaya.ingest.base import Reader, logical_suffix, open_source

FORMATS: dict[str, str] = {
    "csv": "atalaya.ingest.tabular:CsvReader",
    "geojson": "atalaya.ingest.geojson:GeoJsonReader",
    "geoparquet": "atalaya.ingest.tabular:ParquetReader",
    "kml": "atalaya.ingest.tracks:KmlReader",
    "gpx": "atalaya.ingest.tracks:GpxReader",
    "cot": "atalaya.ingest.cot:CotReader",
    "nmea": "atalaya.ingest.nmea:NmeaReader",
    "sbs": "atalaya.ingest.adsb:SbsReader",
    "opensky-csv": "atalaya.ingest.adsb:OpenSkyCsvReader",
    "opensky-json": "atalaya.ingest.adsb:OpenSkyJsonReader",
    "readsb-trace": "atalaya.ingest.adsb_json:ReadsbTraceReader",
    "adsb-records": "atalaya.ingest.adsb_json:AdsbRecordsReader",
    "firms": "atalaya.ingest.firms:FirmsReader",
    "fr24-csv": "atalaya.ingest.fr24:Fr24CsvReader",
    "modes-hex": "atalaya.ingest.modes:ModeSHexReader",
    "modes-beast": "atalaya.ingest.modes:ModeSBeastReader",
}
"""Format name → ``module:Class`` of its reader."""

SNIFF_BYTES = 64 * 1024


def get_reader(name: str) -> Reader:
    """Instantiate the reader for a format name."""
    try:
        target = FORMATS[name]
    except KeyError:
        raise IngestError(f"unknown format {name!r}", hint=f"use one of: {', '.join(sorted(FORMATS))}") from None
    module, _, cls = target.partition(":")
    try:
        reader: Reader = getattr(importlib.import_module(module), cls)()
    except (ImportError, AttributeError) as e:
        raise IngestError(f"format {name!r} is not available: {e}") from e
    return reader


def detect_format(path: Path) -> str:
    """Pick the format of a file by sniffing its first bytes (extension breaks ties)."""
    with open_source(path) as fh:
        try:
            head = fh.read(SNIFF_BYTES)
        except (OSError, EOFError) as e:
            raise IngestError(f"cannot read {path}: {e}", hint="the file may be truncated or corrupt") from e
    return detect_format_of(head, path)


_SNIFFERS: dict[str, Reader | None] = {}
"""Reader instances that sniff, by ``module:Class``."""


def detect_format_of(head: bytes, path: Path) -> str:
    """:func:`detect_format` of a file whose first bytes (up to ``SNIFF_BYTES``, decompressed) are ``head``."""
    suffix = logical_suffix(path)
    best, best_score = "", 0.0
    for name in FORMATS:
        target = FORMATS[name]
        if target not in _SNIFFERS:  # one instance per reader sniffs every file (readers hold no state)
            try:
                _SNIFFERS[target] = get_reader(name)
            except IngestError:
                _SNIFFERS[target] = None
        reader = _SNIFFERS[target]
        if reader is None:
            continue
        score = reader.sniff(head, path)
        if suffix in reader.extensions:
            score += 0.05
        if score > best_score:
            best, best_score = name, score
    if best_score < 0.5:
        raise FormatDetectionError(
            f"cannot tell the format of {path}",
            hint=f"pass --format with one of: {', '.join(sorted(FORMATS))}",
        )
    return best
