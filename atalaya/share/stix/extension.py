"""Atalaya's STIX 2.1 extension: deterministic ids, timestamps, and the published extension-definitions.

Every Atalaya object type that STIX 2.1 does not have is a **new SDO** defined
by an ``extension-definition`` of ours (STIX 2.1 §7.3, ``extension_types:
["new-sdo"]``), one definition per type, each with its JSON schema (the
:data:`SCHEMAS` below, also published in docs/federation.md). The objects keep
the ``x-atalaya-`` prefix of the older custom-object convention as well, so a
consumer that predates extensions still sees them as custom objects and skips
them cleanly, while one that reads extensions finds the definition.

Ids are ``TYPE--UUIDv5(NAMESPACE, "TYPE/ATALAYA-ID")``: the same Atalaya object
always maps to the same STIX id, on every node and every export.

>>> stix_id("x-atalaya-site", "site--1") == stix_id("x-atalaya-site", "site--1")
True
>>> stix_id("location", "site--1").split("--")[0]
'location'
>>> timestamp(datetime(2026, 3, 2, 6, 0, 1, 123456, tzinfo=UTC))
'2026-03-02T06:00:01.123Z'
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from atalaya.core.errors import ValidationError

NAMESPACE = uuid.UUID("9b5b8f5e-2c1d-5a57-9d0f-4a7a1a1a7a1a")
"""The fixed UUIDv5 namespace of every STIX id Atalaya derives (never change it: ids would change)."""

SCHEMA_VERSION = "1.0.0"
"""Version of the Atalaya STIX extension schemas."""

EPOCH = "2026-01-01T00:00:00.000Z"
"""``created``/``modified`` of objects that have no time of their own (extension-definitions, party identities,
Atalaya marking-definitions): fixed, so re-export gives byte-identical objects."""

SCHEMA_BASE = "https://atalaya.invalid/stix/schemas/v1/"
"""Base of the ``schema`` URL of each extension-definition (the schemas are :data:`SCHEMAS`, shipped in the package
and printed in docs/federation.md; the host part is a placeholder until the project publishes them)."""

SDO_TYPES: dict[str, str] = {
    "x-atalaya-site": "A suspected site: kind, score, rank, status, seen period and evidence counts.",
    "x-atalaya-track": "A fused track of a moving object: kind, identity, period and its path as GeoJSON.",
    "x-atalaya-corridor": "A smuggling corridor: a flow over H3 cells with its volume and rank.",
    "x-atalaya-crossing": "A border-crossing point or hot spot with its count and hour-of-day profile.",
    "x-atalaya-maritime-event": "A maritime event: dark gap, rendezvous or loitering, with score and reasons.",
    "x-atalaya-sortie": "A collection sortie with its manifest and its time, distance and depth over territories.",
    "x-atalaya-verdict": "The compliance verdict of one sortie under the agreement version in force.",
    "x-atalaya-flown-track": "Every fix of one sortie's flown track (times and positions), for the host to recompute.",
}
"""The new SDO types of the extension, with what each is."""

ATALAYA_IDENTITY_ID = "identity--" + str(uuid.uuid5(NAMESPACE, "identity/atalaya"))
"""The identity that defines the extension (``created_by_ref`` of each extension-definition)."""


_NS_BYTES = NAMESPACE.bytes


def stix_id(stix_type: str, key: str) -> str:
    """The deterministic STIX id of the object ``key`` (an Atalaya id or a stable name) as ``stix_type``.

    ``uuid.uuid5`` by RFC 4122 §4.3, written out to skip building a ``UUID`` object per id (ids are made for every
    object of every page):

    >>> stix_id("location", "site--1") == f"location--{uuid.uuid5(NAMESPACE, 'location/site--1')}"
    True
    """
    d = bytearray(hashlib.sha1(_NS_BYTES + f"{stix_type}/{key}".encode()).digest()[:16])
    d[6] = (d[6] & 0x0F) | 0x50  # version 5
    d[8] = (d[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = d.hex()
    return f"{stix_type}--{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@functools.cache
def extension_id(stix_type: str) -> str:
    """The id of the extension-definition of one of our new SDO types."""
    if stix_type not in SDO_TYPES:
        raise ValidationError(f"{stix_type!r} is not an Atalaya STIX type", hint=f"one of {', '.join(SDO_TYPES)}")
    return stix_id("extension-definition", f"{stix_type}@{SCHEMA_VERSION.split('.')[0]}")


def timestamp(t: datetime | str | None, default: str = EPOCH) -> str:
    """A STIX timestamp (UTC, millisecond precision, ``Z``) of ``t``; ``default`` when ``t`` is ``None``.

    Naive datetimes are taken as UTC (the knowledge store's SQLite backend returns them so).
    """
    if t is None:
        return default
    if isinstance(t, str):
        try:
            t = datetime.fromisoformat(t.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(f"not an ISO 8601 time: {t!r}", hint="give e.g. 2026-03-02T06:00:00Z") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat(timespec="milliseconds")[:23] + "Z"


def parse_timestamp(text: str | None) -> datetime | None:
    """The aware UTC datetime of a STIX timestamp (``None`` stays ``None``)."""
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def atalaya_identity() -> dict[str, Any]:
    """The identity of the Atalaya project, creator of the extension-definitions."""
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": ATALAYA_IDENTITY_ID,
        "created": EPOCH,
        "modified": EPOCH,
        "name": "Atalaya",
        "identity_class": "organization",
        "description": "Open-source platform for partner nations sharing surveillance data under agreements; "
        "definer of the x-atalaya STIX 2.1 extensions.",
    }


def extension_definition(stix_type: str) -> dict[str, Any]:
    """The published extension-definition object of one new SDO type."""
    return {
        "type": "extension-definition",
        "spec_version": "2.1",
        "id": extension_id(stix_type),
        "created_by_ref": ATALAYA_IDENTITY_ID,
        "created": EPOCH,
        "modified": EPOCH,
        "name": f"Atalaya {stix_type}",
        "description": SDO_TYPES[stix_type],
        "schema": f"{SCHEMA_BASE}{stix_type}.json",
        "version": SCHEMA_VERSION,
        "extension_types": ["new-sdo"],
    }


def extension_definitions() -> list[dict[str, Any]]:
    """Every extension-definition of ours, with the identity that created them."""
    return [atalaya_identity(), *(extension_definition(t) for t in SDO_TYPES)]


def new_sdo(stix_type: str, key: str, *, created: str, modified: str, **props: Any) -> dict[str, Any]:
    """A new-SDO object of ours: the common properties, ``props`` (``None`` and empty lists or dictionaries left out,
    as STIX 2.1 requires) and the extension."""
    obj: dict[str, Any] = {
        "type": stix_type,
        "spec_version": "2.1",
        "id": stix_id(stix_type, key),
        "created": created,
        "modified": max(created, modified),
    }
    obj.update({k: v for k, v in props.items() if v is not None and v != [] and v != {}})  # STIX: no empty lists
    obj["extensions"] = {extension_id(stix_type): {"extension_type": "new-sdo"}}
    return obj


# --------------------------------------------------------------------------- schemas

_TS = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"}
_STR = {"type": "string"}
_NUM = {"type": "number"}
_INT = {"type": "integer"}
_STRS = {"type": "array", "items": _STR}
_REF = {"type": "string", "pattern": r"^[a-z0-9-]+--[0-9a-f-]{36}$"}
_POS = {"type": "array", "items": _NUM, "minItems": 2, "maxItems": 3}


def _schema(stix_type: str, required: list[str], props: dict[str, Any]) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SCHEMA_BASE}{stix_type}.json",
        "title": stix_type,
        "description": SDO_TYPES[stix_type],
        "type": "object",
        "properties": {
            "type": {"const": stix_type},
            "id": {"type": "string", "pattern": f"^{stix_type}--"},
            "atalaya_id": _STR,
            **props,
        },
        "required": ["type", "id", "atalaya_id", *required],
    }


SCHEMAS: dict[str, dict[str, Any]] = {
    "x-atalaya-flown-track": _schema(
        "x-atalaya-flown-track",
        ["sortie_ref", "time_us", "coordinates"],
        {"sortie_ref": _REF, "time_us": {"type": "array", "items": _INT},
         "coordinates": {"type": "array", "items": _POS}},
    ),
    "x-atalaya-site": _schema(
        "x-atalaya-site",
        ["site_kind", "status"],
        {"site_kind": _STR, "score": _NUM, "rank": _INT, "status": _STR, "radius_m": _NUM, "first_seen": _TS,
         "last_seen": _TS, "n_days": _INT, "status_at": _TS, "note": _STR, "location_ref": _REF,
         "evidence": {"type": "object", "additionalProperties": _NUM}},
    ),
    "x-atalaya-track": _schema(
        "x-atalaya-track",
        ["track_kind"],
        {"track_kind": _STR, "ident": _STR, "ident_kind": _STR, "start": _TS, "end": _TS, "n_points": _INT,
         "length_km": _NUM,
         "geometry": {"type": "object", "properties": {"type": {"const": "LineString"},
                                                      "coordinates": {"type": "array", "items": _POS}},
                      "required": ["type", "coordinates"]}},
    ),
    "x-atalaya-corridor": _schema(
        "x-atalaya-corridor",
        ["h3_cells"],
        {"corridor_kind": _STR, "rank": _INT, "volume": _INT,
         "h3_cells": {"type": "array", "items": {"type": "string", "pattern": "^[0-9a-f]{15}$"}}},
    ),
    "x-atalaya-crossing": _schema(
        "x-atalaya-crossing",
        ["location_ref"],
        {"count": _INT, "first_seen": _TS, "last_seen": _TS, "location_ref": _REF,
         "hour_profile": {"type": "array", "items": _NUM}},
    ),
    "x-atalaya-maritime-event": _schema(
        "x-atalaya-maritime-event",
        ["event_kind", "start", "end", "position"],
        {"event_kind": {"enum": ["dark_gap", "rendezvous", "loitering"]}, "start": _TS, "end": _TS,
         "position": _POS, "vessels": _STRS, "duration_s": _NUM, "score": _NUM, "reasons": _STRS,
         "details": {"type": "object"}},
    ),
    "x-atalaya-sortie": _schema(
        "x-atalaya-sortie",
        [],
        {"platform_type": _STR, "party": _STR, "takeoff": _TS, "landing": _TS, "base": _STR, "agreement_id": _STR,
         "authorisation_id": _STR, "notified_at": _TS, "report_filed_at": _TS, "platform_id": _STR,
         "over_territory": {"type": "array", "items": {
             "type": "object",
             "properties": {"level": _STR, "territory": _STR, "owner": _STR, "seconds": _NUM, "km": _NUM,
                            "entries": _INT, "exits": _INT, "max_depth_km": {"type": ["number", "null"]},
                            "first_in": {"type": ["string", "null"]}, "last_out": {"type": ["string", "null"]},
                            "method": _STR},
             "required": ["level", "territory", "owner", "seconds", "km"]}}},
    ),
    "x-atalaya-verdict": _schema(
        "x-atalaya-verdict",
        ["sortie_ref", "status", "checked_at"],
        {"sortie_ref": _REF, "sortie_id": _STR,
         "status": {"enum": ["compliant", "violation", "unverifiable", "no-host"]}, "reason": _STR, "worst": _STR,
         "n_violations": _INT, "hosts": _STRS, "audience": _STRS, "agreement_id": _STR, "agreement_version": _INT,
         "collection_id": _STR, "track_points": _INT, "checked_at": _TS, "as_of": _TS,
         "violations": {"type": "array", "items": {"type": "object"}}},
    ),
}  # fmt: skip
"""JSON schema of each new SDO type (its own properties; the STIX common properties are the OASIS schemas')."""
