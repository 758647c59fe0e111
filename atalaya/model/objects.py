"""Domain objects of DESIGN.md §3. Every object carries an id, provenance and a marking.

Objects are keyword-only frozen dataclasses. Objects whose content defines
their identity get content-hash ids (:func:`atalaya.core.ids.prefixed_id`);
observations live in the lake as columns (:mod:`atalaya.model.observation`),
not as objects. ``to_row`` maps an object to its knowledge-store table row.

>>> s = Sortie(id="S-001", platform_id="MQ9-01", platform_type="MQ-9", party="USA")
>>> s.to_row()["marking"]
'TLP:AMBER'
>>> Site.make_id("lab", -107.1234, 25.5678)
'site--lab-25.568--107.123'
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from atalaya.core.markings import DEFAULT_MARKING, Marking
from atalaya.core.provenance import Provenance


class PlatformType(enum.StrEnum):
    """Collection platform types (free text is allowed in data; these are the known ones)."""

    MQ9 = "MQ-9"
    U2 = "U-2"
    RC135 = "RC-135"
    P8 = "P-8"
    OTHER = "other"


class SiteKind(enum.StrEnum):
    """Kinds of persistent places of interest."""

    LAB = "lab"
    STASH_HOUSE = "stash_house"
    AIRSTRIP = "airstrip"
    LANDING_BEACH = "landing_beach"
    UNKNOWN = "unknown"


class SiteStatus(enum.StrEnum):
    """Analyst status of a site; survives re-analysis."""

    SUSPECTED = "suspected"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"


class LogEntryKind(enum.StrEnum):
    """Kinds of transparency-log leaves."""

    OVERFLIGHT = "overflight"
    AGREEMENT = "agreement"
    DISSEMINATION = "dissemination"
    RETRACTION = "retraction"


def _base(obj: Any) -> dict[str, Any]:
    return {"id": obj.id, "marking": obj.marking.to_text(), "provenance": obj.provenance.to_dict() or None}


@dataclass(frozen=True, kw_only=True)
class Party:
    """A nation or agency running a node."""

    id: str
    """Party code, e.g. ``USA``."""
    name: str
    """Full name."""
    role: str = "collecting"
    """``collecting`` or ``host`` (informative)."""
    public_key: str = ""
    """Ed25519 verifier key (note vkey form or PEM)."""
    marking: Marking = DEFAULT_MARKING
    """Marking."""
    provenance: Provenance = field(default_factory=Provenance)
    """Provenance."""

    def to_row(self) -> dict[str, Any]:
        return {**_base(self), "name": self.name, "role": self.role, "public_key": self.public_key}


@dataclass(frozen=True, kw_only=True)
class Platform:
    """An aircraft, drone, vessel or ground sensor."""

    id: str
    """Platform id."""
    platform_type: str
    """Type, e.g. ``MQ-9``."""
    party: str
    """Owner party code."""
    name: str = ""
    """Name or tail number."""
    sensors: tuple[str, ...] = ()
    """Sensor kinds carried (Sensor enum values)."""
    marking: Marking = DEFAULT_MARKING
    """Marking."""
    provenance: Provenance = field(default_factory=Provenance)
    """Provenance."""

    def to_row(self) -> dict[str, Any]:
        return {
            **_base(self),
            "party_id": self.party,
            "platform_type": self.platform_type,
            "name": self.name,
            "sensors": list(self.sensors),
        }


@dataclass(frozen=True, kw_only=True)
class Sortie:
    """One collection flight of one platform."""

    id: str
    """Sortie id."""
    platform_id: str
    """Platform flown."""
    platform_type: str
    """Platform type (denormalised for rules)."""
    party: str
    """Collecting party."""
    takeoff: datetime | None = None
    """Take-off time (UTC)."""
    landing: datetime | None = None
    """Landing time (UTC)."""
    base: str = ""
    """Base of operations."""
    agreement_id: str | None = None
    """Agreement the sortie claims to fly under (None: none claimed)."""
    authorisation_id: str | None = None
    """Collection authorisation within that agreement."""
    notified_at: datetime | None = None
    """When the host was notified."""
    report_filed_at: datetime | None = None
    """When the post-flight report was filed."""
    tasking: str = ""
    """Tasking text."""
    marking: Marking = DEFAULT_MARKING
    """Marking."""
    provenance: Provenance = field(default_factory=Provenance)
    """Provenance."""

    def to_row(self) -> dict[str, Any]:
        return {
            **_base(self),
            "platform_id": self.platform_id,
            "platform_type": self.platform_type,
            "party_id": self.party,
            "takeoff": self.takeoff,
            "landing": self.landing,
            "base": self.base,
            "agreement_id": self.agreement_id,
            "authorisation_id": self.authorisation_id,
            "notified_at": self.notified_at,
            "report_filed_at": self.report_filed_at,
            "tasking": self.tasking,
        }


@dataclass(frozen=True, kw_only=True)
class Track:
    """Fused path of one moving object (summary; the points stay in the lake or analysis outputs)."""

    id: str
    """Track id."""
    kind: str
    """Object kind (ObjectKind)."""
    ident: str | None = None
    """Identifier when the track is identified."""
    ident_kind: str | None = None
    """Identifier kind."""
    start: datetime | None = None
    """First point time."""
    end: datetime | None = None
    """Last point time."""
    n_points: int = 0
    """Number of points."""
    length_km: float = 0.0
    """Geodesic length."""
    geometry: str = ""
    """Simplified GeoJSON LineString for display."""
    marking: Marking = DEFAULT_MARKING
    """Marking."""
    provenance: Provenance = field(default_factory=Provenance)
    """Provenance."""

    def to_row(self) -> dict[str, Any]:
        return {
            **_base(self),
            "kind": self.kind,
            "ident": self.ident,
            "ident_kind": self.ident_kind,
            "start": self.start,
            "end": self.end,
            "n_points": self.n_points,
            "length_km": self.length_km,
            "geometry": self.geometry,
        }


@dataclass(frozen=True, kw_only=True)
class Site:
    """A fused persistent place of interest with evidence, score and analyst status."""

    id: str
    """Site id (stable across re-analysis, see :meth:`make_id`)."""
    kind: str
    """SiteKind value."""
    lon: float
    """Longitude."""
    lat: float
    """Latitude."""
    radius_m: float = 0.0
    """Uncertainty radius."""
    score: float = 0.0
    """Ranking score in [0, 1]."""
    status: SiteStatus = SiteStatus.SUSPECTED
    """Analyst status."""
    evidence: dict[str, Any] = field(default_factory=dict)
    """Score breakdown and supporting detections."""
    marking: Marking = DEFAULT_MARKING
    """Marking."""
    provenance: Provenance = field(default_factory=Provenance)
    """Provenance."""

    @staticmethod
    def make_id(kind: str, lon: float, lat: float) -> str:
        """Stable id from kind and a ~100 m rounded position."""
        return f"site--{kind}-{lat:.3f}-{lon:.3f}"

    def to_row(self) -> dict[str, Any]:
        return {
            **_base(self),
            "kind": self.kind,
            "lon": self.lon,
            "lat": self.lat,
            "radius_m": self.radius_m,
            "score": self.score,
            "status": self.status.value,
            "evidence": self.evidence,
        }


@dataclass(frozen=True, kw_only=True)
class Entity:
    """A person, organisation, company, vehicle, vessel, phone or account (FollowTheMoney-compatible)."""

    id: str
    """Entity id."""
    schema: str
    """FtM schema name (Person, Organization, Company, Vehicle, Vessel, Phone, BankAccount…)."""
    properties: dict[str, list[str]]
    """FtM properties: name → list of values."""
    datasets: tuple[str, ...] = ()
    """Source datasets."""
    marking: Marking = DEFAULT_MARKING
    """Marking."""
    provenance: Provenance = field(default_factory=Provenance)
    """Provenance."""

    @property
    def caption(self) -> str:
        for key in ("name", "number", "registrationNumber", "iban", "accountNumber"):
            vals = self.properties.get(key)
            if vals:
                return vals[0]
        return self.id

    def to_row(self) -> dict[str, Any]:
        return {
            **_base(self),
            "schema": self.schema,
            "caption": self.caption,
            "properties": self.properties,
            "datasets": list(self.datasets),
        }


@dataclass(frozen=True, kw_only=True)
class Relationship:
    """A typed edge between entities, or entity ↔ site, with evidence and confidence."""

    id: str
    """Edge id."""
    type: str
    """Edge type (FtM interval schema, e.g. Ownership, Associate, or ``at_site``)."""
    source_id: str
    """Source entity/site id."""
    target_id: str
    """Target entity/site id."""
    confidence: float = 1.0
    """Confidence in [0, 1]."""
    admiralty: str | None = None
    """Admiralty grading of the supporting report."""
    evidence: dict[str, Any] = field(default_factory=dict)
    """Supporting records."""
    marking: Marking = DEFAULT_MARKING
    """Marking."""
    provenance: Provenance = field(default_factory=Provenance)
    """Provenance."""

    def to_row(self) -> dict[str, Any]:
        return {
            **_base(self),
            "type": self.type,
            "source_id": self.source_id,
            "target_id": self.target_id,
            "confidence": self.confidence,
            "admiralty": self.admiralty,
            "evidence": self.evidence,
        }


@dataclass(frozen=True, kw_only=True)
class Transaction:
    """Money moving between accounts."""

    id: str
    """Transaction id."""
    time: datetime
    """Value time (UTC)."""
    from_account: str
    """Debited account id."""
    to_account: str
    """Credited account id."""
    amount: float
    """Amount in ``currency``."""
    currency: str = "USD"
    """ISO 4217 code."""
    attrs: dict[str, Any] = field(default_factory=dict)
    """Channel, branch, memo…"""
    marking: Marking = DEFAULT_MARKING
    """Marking."""
    provenance: Provenance = field(default_factory=Provenance)
    """Provenance."""

    def to_row(self) -> dict[str, Any]:
        return {
            **_base(self),
            "time": self.time,
            "from_account": self.from_account,
            "to_account": self.to_account,
            "amount": self.amount,
            "currency": self.currency,
            "attrs": self.attrs,
        }


@dataclass(frozen=True, kw_only=True)
class Product:
    """A disseminated report or package."""

    id: str
    """Content-hash id."""
    kind: str
    """Product kind (report, stix-bundle, export…)."""
    content_sha256: str
    """SHA-256 of the released bytes."""
    recipients: tuple[str, ...] = ()
    """Recipient parties."""
    created_at: datetime | None = None
    """Release time."""
    marking: Marking = DEFAULT_MARKING
    """Marking."""
    provenance: Provenance = field(default_factory=Provenance)
    """Provenance."""

    def to_row(self) -> dict[str, Any]:
        return {
            **_base(self),
            "kind": self.kind,
            "content_sha256": self.content_sha256,
            "recipients": list(self.recipients),
            "created_at": self.created_at,
        }
