"""STIX 2.1 bundles into Atalaya objects: from partner nodes, OpenCTI, MISP (misp-stix) and others.

:func:`read_bundle` turns a bundle into :class:`Imported` objects, each with
its Atalaya marking (read from its TLP/ACS/other marking references, see
:func:`~atalaya.share.stix.markings.marking_from_refs` for what happens to
markings it cannot read), its per-property markings, and its origin (the
party of its ``created_by_ref`` identity, else the party the bundle came
from). Objects of our extension become rows of the knowledge-store table they
came from; any other SDO, SRO or SCO is kept whole as **foreign**
intelligence with its marking. Marking-, extension-definitions and the
identities that only name parties are read, not returned.

Nothing is written here: the caller (federation sync, ``atalaya import``)
stores what it accepts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from atalaya.core.errors import ValidationError
from atalaya.core.markings import Marking
from atalaya.share.stix.extension import ATALAYA_IDENTITY_ID, parse_timestamp
from atalaya.share.stix.mapping import PARTY_SOURCE, LogRef
from atalaya.share.stix.markings import granular_from_stix, marking_from_refs

_KIND = {
    "x-atalaya-site": "sites",
    "x-atalaya-track": "tracks",
    "x-atalaya-corridor": "corridors",
    "x-atalaya-crossing": "crossings",
    "x-atalaya-maritime-event": "maritime",
    "x-atalaya-sortie": "sorties",
    "x-atalaya-verdict": "verdicts",
}
_SUPPORT = frozenset({"marking-definition", "extension-definition", "language-content"})


@dataclass(frozen=True, kw_only=True)
class Imported:
    """One object read from a bundle."""

    kind: str
    """The Atalaya product kind (``sites``, ``tracks``, … ``verdicts``, ``reports``) or ``foreign``."""
    stix_id: str
    """Its STIX id."""
    atalaya_id: str | None
    """Its Atalaya id (objects of our extension), else ``None``."""
    record: dict[str, Any]
    """The knowledge-store row (our objects) or the STIX object itself (``foreign``, ``reports``)."""
    marking: Marking
    """Its marking."""
    property_markings: dict[str, Marking] = field(default_factory=dict)
    """Stricter markings of some of its properties (STIX selector → marking)."""
    origin: str = ""
    """The party it came from."""
    log_refs: tuple[LogRef, ...] = ()
    """Transparency-log leaves it cites (to check for inclusion in the origin's log)."""
    notes: tuple[str, ...] = ()
    """What the reading decided about it (markings interpreted)."""


@dataclass(frozen=True, kw_only=True)
class ImportResult:
    """What a bundle held."""

    objects: list[Imported]
    """The objects, in bundle order."""
    parties: dict[str, str]
    """Identity id → party code (identities that carry one)."""
    skipped: list[dict[str, str]]
    """``{"id", "reason"}`` for objects that could not be read."""

    def by_kind(self, kind: str) -> list[Imported]:
        """The objects of one kind."""
        return [o for o in self.objects if o.kind == kind]


def _party_of(identity: Mapping[str, Any]) -> str | None:
    for ref in identity.get("external_references") or ():
        if ref.get("source_name") == PARTY_SOURCE and ref.get("external_id"):
            return str(ref["external_id"]).upper()
    return None


def _t(obj: Mapping[str, Any], key: str) -> Any:
    return parse_timestamp(obj.get(key))


def _row(kind: str, o: Mapping[str, Any], locations: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The knowledge-store row of one of our objects."""
    aid = str(o["atalaya_id"])
    loc = locations.get(str(o.get("location_ref", "")), {})
    if kind == "sites":
        return {"id": aid, "kind": o["site_kind"], "lon": loc.get("longitude"), "lat": loc.get("latitude"),
                "radius_m": o.get("radius_m"), "score": o.get("score"), "rank": o.get("rank"), "status": o["status"],
                "first_seen": _t(o, "first_seen"), "last_seen": _t(o, "last_seen"), "n_days": o.get("n_days"),
                "evidence": o.get("evidence"), "note": o.get("note"), "status_at": _t(o, "status_at")}  # fmt: skip
    if kind == "tracks":
        geom = o.get("geometry")
        return {"id": aid, "kind": o["track_kind"], "ident": o.get("ident"), "ident_kind": o.get("ident_kind"),
                "start": _t(o, "start"), "end": _t(o, "end"), "n_points": o.get("n_points"),
                "length_km": o.get("length_km"), "geometry": json.dumps(geom) if geom else None}  # fmt: skip
    if kind == "corridors":
        return {"id": aid, "h3_cells": list(o.get("h3_cells") or ()), "volume": o.get("volume"),
                "kind": o.get("corridor_kind"), "rank": o.get("rank")}  # fmt: skip
    if kind == "crossings":
        return {"id": aid, "lon": loc.get("longitude"), "lat": loc.get("latitude"), "count": o.get("count"),
                "hour_profile": o.get("hour_profile"), "first_seen": _t(o, "first_seen"),
                "last_seen": _t(o, "last_seen")}  # fmt: skip
    if kind == "sorties":
        return {"id": aid, "platform_id": o.get("platform_id"), "platform_type": o.get("platform_type"),
                "party_id": o.get("party"), "takeoff": _t(o, "takeoff"), "landing": _t(o, "landing"),
                "base": o.get("base"), "agreement_id": o.get("agreement_id"),
                "authorisation_id": o.get("authorisation_id"), "notified_at": _t(o, "notified_at"),
                "report_filed_at": _t(o, "report_filed_at"),
                "overflight": list(o.get("over_territory") or ())}  # fmt: skip
    if kind == "verdicts":
        return {"sortie_id": o["sortie_id"], "status": o["status"], "reason": o.get("reason"), "worst": o.get("worst"),
                "n_violations": o.get("n_violations"), "hosts": list(o.get("hosts") or ()),
                "audience": list(o.get("audience") or ()), "agreement_id": o.get("agreement_id"),
                "agreement_version": o.get("agreement_version"), "collection_id": o.get("collection_id"),
                "track_points": o.get("track_points"), "checked_at": _t(o, "checked_at"), "as_of": _t(o, "as_of"),
                "violations": list(o.get("violations") or ())}  # fmt: skip
    # maritime
    return {"id": aid, "event_kind": o["event_kind"], "start": _t(o, "start"), "end": _t(o, "end"),
            "lon": o["position"][0], "lat": o["position"][1], "vessels": list(o.get("vessels") or ()),
            "duration_s": o.get("duration_s"), "score": o.get("score"), "reasons": list(o.get("reasons") or ()),
            "details": o.get("details") or {}}  # fmt: skip


def read_bundle(bundle: Mapping[str, Any] | str | bytes, *, origin: str) -> ImportResult:
    """Read a STIX 2.1 bundle (object or JSON text) received from the party ``origin``.

    Raises :class:`ValidationError` when it is not a STIX 2.1 bundle at all; an object that cannot be read is
    listed in :attr:`ImportResult.skipped` with the reason, and the others are still read.
    """
    if isinstance(bundle, str | bytes):
        try:
            bundle = json.loads(bundle)
        except json.JSONDecodeError as e:
            raise ValidationError(f"not JSON: {e}", hint="give a STIX 2.1 bundle (a JSON object)") from e
    if not isinstance(bundle, Mapping) or bundle.get("type") != "bundle" or not isinstance(bundle.get("objects"), list):
        raise ValidationError(
            "not a STIX bundle", hint='a STIX 2.1 bundle is {"type": "bundle", "id": "bundle--…", "objects": [...]}'
        )
    objs: list[Mapping[str, Any]] = [o for o in bundle["objects"] if isinstance(o, Mapping)]
    definitions = {str(o["id"]): o for o in objs if o.get("type") == "marking-definition" and "id" in o}
    parties = {str(o["id"]): p for o in objs if o.get("type") == "identity" and (p := _party_of(o))}
    locations = {str(o["id"]): o for o in objs if o.get("type") == "location"}
    located = {str(o.get("location_ref")) for o in objs if str(o.get("type", "")).startswith("x-atalaya-")}
    out: list[Imported] = []
    skipped: list[dict[str, str]] = []
    for o in objs:
        sid, typ = str(o.get("id", "")), str(o.get("type", ""))
        if typ in _SUPPORT or sid in located or sid == ATALAYA_IDENTITY_ID or (typ == "identity" and sid in parties):
            continue
        if typ == "relationship" and o.get("relationship_type") == "located-at" and o.get("target_ref") in located:
            continue
        if o.get("spec_version") not in ("2.1", None):  # SCOs may leave it out
            skipped.append({"id": sid, "reason": f"spec_version {o.get('spec_version')!r}: only STIX 2.1 is read"})
            continue
        who = parties.get(str(o.get("created_by_ref", "")), origin.upper())
        read = marking_from_refs(o.get("object_marking_refs") or (), definitions, origin=who)
        gran = granular_from_stix(o.get("granular_markings") or (), definitions, read.marking, origin=who)
        logs = tuple(r for ref in o.get("external_references") or () if (r := LogRef.from_external_reference(ref)))
        kind = _KIND.get(typ, "reports" if typ == "report" else "foreign")
        try:
            record = _row(kind, o, locations) if typ in _KIND else dict(o)
        except (KeyError, TypeError, IndexError, ValueError) as e:
            skipped.append({"id": sid, "reason": f"{typ} lacks or mangles a required property: {e!r}"})
            continue
        out.append(
            Imported(
                kind=kind, stix_id=sid, atalaya_id=str(o["atalaya_id"]) if typ in _KIND else None, record=record,
                marking=read.marking, property_markings=gran, origin=who, log_refs=logs, notes=read.notes,
            )
        )  # fmt: skip
    return ImportResult(objects=out, parties=parties, skipped=skipped)
