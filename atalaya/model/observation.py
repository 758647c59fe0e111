"""The observation schema: the columnar contract between ingest, the lake and analytics.

One row is one raw report: when, where (with uncertainty), which sensor saw
what kind of object, with which identifier, from which source and sortie.
Adapters produce columns by these names; the lake stores exactly this schema
(plus the hive partition keys ``day`` and ``source`` in the path).

Column names are data (``COLUMNS``) so that adapters, the validator, the lake
and the docs (``docs/formats.md``) share one definition.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pyarrow as pa

from atalaya.core.ids import OBS_ID_TYPE


class Sensor(enum.StrEnum):
    """Sensor / feed kind that produced an observation."""

    EO = "EO"
    IR = "IR"
    SAR = "SAR"
    GMTI = "GMTI"
    SIGINT = "SIGINT"
    RADAR = "RADAR"  # maritime/air surveillance radar contact
    AIS = "AIS"
    ADSB = "ADSB"
    COT = "COT"
    HUMINT = "HUMINT"
    TRACK = "TRACK"  # positions from a GPX/KML/flight-log track (e.g. own sortie tracks)
    OTHER = "OTHER"


class ObjectKind(enum.StrEnum):
    """What the observation is about."""

    VESSEL = "vessel"
    AIRCRAFT = "aircraft"
    VEHICLE = "vehicle"
    PERSON = "person"
    THERMAL = "thermal"  # thermal anomaly (e.g. lab heat signature)
    STRUCTURE = "structure"
    EMITTER = "emitter"  # geolocated RF emitter (phone, radio)
    CHEMICAL = "chemical"
    PLATFORM = "platform"  # an own collection platform (sortie track point)
    UNKNOWN = "unknown"


class IdentKind(enum.StrEnum):
    """What kind of identifier ``ident`` holds."""

    MMSI = "mmsi"
    ICAO24 = "icao24"
    COT_UID = "cot_uid"
    EMITTER = "emitter"
    PLATE = "plate"
    CALLSIGN = "callsign"
    TRACK = "track"  # a sensor-local track number
    SORTIE = "sortie"
    OTHER = "other"


_DICT = pa.dictionary(pa.int32(), pa.string())


@dataclass(frozen=True, kw_only=True)
class Column:
    """One column of the observation schema."""

    name: str
    """Column name."""
    type: pa.DataType
    """Arrow type."""
    nullable: bool
    """Whether adapters may leave it empty."""
    doc: str
    """What it holds."""


COLUMNS: tuple[Column, ...] = (
    Column(
        name="obs_id",
        type=OBS_ID_TYPE,
        nullable=False,
        doc="128-bit content hash of source, sensor, time, position, ident and kind",
    ),
    Column(name="time", type=pa.timestamp("us", tz="UTC"), nullable=False, doc="observation time, UTC"),
    Column(name="lon", type=pa.float64(), nullable=False, doc="longitude, WGS84 degrees [-180, 180]"),
    Column(name="lat", type=pa.float64(), nullable=False, doc="latitude, WGS84 degrees [-90, 90]"),
    Column(name="alt_m", type=pa.float32(), nullable=True, doc="altitude above MSL, metres"),
    Column(
        name="pos_err_m",
        type=pa.float32(),
        nullable=True,
        doc="horizontal 1-sigma position uncertainty, metres (semi-major axis for ellipses)",
    ),
    Column(name="err_minor_m", type=pa.float32(), nullable=True, doc="error ellipse semi-minor axis, metres"),
    Column(
        name="err_orient_deg",
        type=pa.float32(),
        nullable=True,
        doc="error ellipse orientation, degrees clockwise from north",
    ),
    Column(name="speed_mps", type=pa.float32(), nullable=True, doc="speed over ground, m/s"),
    Column(name="course_deg", type=pa.float32(), nullable=True, doc="course over ground, degrees true"),
    Column(name="sensor", type=_DICT, nullable=False, doc="sensor kind (Sensor enum)"),
    Column(name="kind", type=_DICT, nullable=False, doc="object kind (ObjectKind enum)"),
    Column(
        name="ident",
        type=pa.string(),
        nullable=True,
        doc="object identifier: MMSI, ICAO24, CoT uid, emitter id, plate…",
    ),
    Column(name="ident_kind", type=_DICT, nullable=True, doc="kind of identifier (IdentKind enum)"),
    Column(name="name", type=pa.string(), nullable=True, doc="callsign, vessel name or label"),
    Column(name="confidence", type=pa.float32(), nullable=True, doc="detection confidence in [0, 1]"),
    Column(name="platform_id", type=_DICT, nullable=True, doc="collecting platform id"),
    Column(name="sortie_id", type=_DICT, nullable=True, doc="collecting sortie id"),
    Column(name="marking", type=_DICT, nullable=False, doc="canonical marking text (core.markings)"),
    Column(name="format", type=_DICT, nullable=False, doc="input format name"),
    Column(name="src_file", type=_DICT, nullable=False, doc="source file path as given to ingest"),
    Column(
        name="src_rec",
        type=pa.int64(),
        nullable=False,
        doc="record locator in the source: line number (1-based) or record index",
    ),
    Column(name="ingest_run", type=_DICT, nullable=False, doc="id of the ingest run that wrote the row"),
    Column(name="attrs", type=pa.string(), nullable=True, doc="extra format-specific fields as JSON"),
)

SCHEMA: pa.Schema = pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in COLUMNS])
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)

# Columns an adapter must supply per row; the pipeline fills the rest
# (obs_id, marking, format, src_file, ingest_run) and defaults nullable ones.
ADAPTER_REQUIRED: tuple[str, ...] = ("time", "lon", "lat", "sensor", "kind", "src_rec")
PIPELINE_FILLED: tuple[str, ...] = ("obs_id", "marking", "format", "src_file", "ingest_run")

SOURCE_COLUMNS: tuple[str, ...] = tuple(
    n for n in COLUMN_NAMES if n not in PIPELINE_FILLED and n not in ("src_rec", "attrs")
)
"""Columns a source file may carry (e.g. a detection CSV's header), in schema order."""

PARTITION_KEYS: tuple[str, ...] = ("day", "source")
