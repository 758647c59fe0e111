"""Atalaya objects as STIX 2.1: the objects a partner node, a TAXII client or a file export receives.

One :class:`StixBuilder` per bundle or page: it maps rows of the knowledge
store (as the egress chokepoint released them: dicts with the table's columns
and the canonical ``marking`` text) into STIX objects, and collects what those
objects refer to — the parties' ``identity`` objects, the TLP 2.0 and ACS 3.0
``marking-definition`` objects, and our ``extension-definition`` objects — so
that every bundle is self-contained.

==========================  =================================================================================
Atalaya                     STIX 2.1
==========================  =================================================================================
party                       ``identity`` (``identity_class: organization``, sector ``government-national``)
site                        ``x-atalaya-site`` + ``location`` + ``relationship`` ``located-at``
track                       ``x-atalaya-track`` (path as a GeoJSON LineString)
corridor                    ``x-atalaya-corridor`` (H3 cells)
crossing                    ``x-atalaya-crossing`` + ``location`` + ``relationship`` ``located-at``
maritime event              ``x-atalaya-maritime-event``
sortie (+ overflight log)   ``x-atalaya-sortie`` with ``over_territory`` (time, distance, depth per territory)
verdict                     ``x-atalaya-verdict``, its ``sortie_ref`` naming the ``x-atalaya-sortie``
report / product            ``report`` whose ``object_refs`` are the objects above
provenance                  ``created_by_ref`` (the originator's identity), ``external_references`` to the
                            transparency-log leaves (log origin and index, RFC 9162 leaf hash as SHA-256)
marking                     ``object_marking_refs`` (TLP 2.0 + ACS 3.0), ``granular_markings`` per property
==========================  =================================================================================

Nothing reads the clock: ``created``/``modified`` are the object's own times
(first/last seen, take-off/landing, checked-at), or the fixed
:data:`~atalaya.share.stix.extension.EPOCH` for objects without any, so the
same objects always give the same STIX, byte for byte.
"""

from __future__ import annotations

import copy
import functools
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from atalaya.core.ids import content_id
from atalaya.core.markings import DEFAULT_MARKING, Marking
from atalaya.share.stix.extension import (
    ATALAYA_IDENTITY_ID,
    EPOCH,
    NAMESPACE,
    atalaya_identity,
    extension_definition,
    new_sdo,
    stix_id,
    timestamp,
)
from atalaya.share.stix.markings import granular_markings, shared_marking_refs

LOG_SOURCE = "atalaya-transparency-log"
"""``source_name`` of the external references that point at a transparency-log leaf."""
PARTY_SOURCE = "atalaya-party"
"""``source_name`` of the external reference that carries a party's code on its identity."""
MARITIME_KINDS = ("dark_gap", "rendezvous", "loitering")
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
VERSION_AT = "version_at"
"""Optional row key: when the caller last changed the object (e.g. the run that re-scored a site). An object's
``modified`` is its own latest time; a change that brings no new time of its own (a new score from the same
observations, a corridor re-ranked) needs this key, or recipients that version by (id, modified) keep the old one."""


@dataclass(frozen=True, kw_only=True)
class LogRef:
    """One transparency-log leaf that records (part of) an object: what a recipient checks inclusion of."""

    origin: str
    """The log's origin (its checkpoint key name, e.g. ``atalaya.usa/log``)."""
    index: int
    """Leaf index."""
    leaf_hash: str
    """RFC 9162 leaf hash, hex."""
    ref: str = ""
    """What the leaf is about (the journal's reference, e.g. ``overflight:S1|country|MEX``)."""

    def external_reference(self) -> dict[str, Any]:
        """The STIX external reference to this leaf."""
        out: dict[str, Any] = {
            "source_name": LOG_SOURCE,
            "external_id": f"{self.origin}#{self.index}",
            "hashes": {"SHA-256": self.leaf_hash},
        }
        if self.ref:
            out["description"] = self.ref
        return out

    @classmethod
    def from_external_reference(cls, ref: Mapping[str, Any]) -> LogRef | None:
        """The leaf an external reference points at (``None`` if it is not one of ours)."""
        if ref.get("source_name") != LOG_SOURCE or "#" not in str(ref.get("external_id", "")):
            return None
        origin, _, index = str(ref["external_id"]).rpartition("#")
        if not index.isdigit():
            return None
        return cls(origin=origin, index=int(index), leaf_hash=str((ref.get("hashes") or {}).get("SHA-256", "")),
                   ref=str(ref.get("description", "")))  # fmt: skip


def _marking(row: Mapping[str, Any]) -> Marking:
    text = row.get("marking")
    return _parse_marking(str(text)) if text else DEFAULT_MARKING


@functools.lru_cache(maxsize=1024)
def _parse_marking(text: str) -> Marking:
    return Marking.from_text(text)


@functools.lru_cache(maxsize=1024)
def _text(m: Marking) -> str:
    return m.to_text()


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def _json(v: Any) -> Any:
    return json.loads(v) if isinstance(v, str) else v


def _latest(*ts: Any) -> Any:
    vals = [t for t in ts if t is not None]
    return max(vals, key=timestamp) if vals else None


def _vessels(row: Mapping[str, Any]) -> list[str]:
    return [str(v) for v in (row.get("vessel"), row.get("vessel_a"), row.get("vessel_b")) if v]


def maritime_id(row: Mapping[str, Any], event_kind: str) -> str:
    """The id of a maritime event (the tables have none): its ``id`` if given, else derived from its kind, vessels
    and period, so the same event keeps its id across runs."""
    if row.get("id"):
        return str(row["id"])
    return "maritime--" + content_id(event_kind, *_vessels(row), str(row["start_us"]), str(row["end_us"]))


class StixBuilder:
    """Maps Atalaya rows to STIX objects and collects everything they refer to.

    ``node_party`` is the party of the node that shares (custodian of its ACS markings, creator of objects whose
    marking names no originator); ``parties`` are the rows of the ``parties`` table (``id``, ``name``, ``role``)
    for the identities' names.
    """

    def __init__(self, *, node_party: str, parties: Iterable[Mapping[str, Any]] = ()) -> None:
        self.node_party = node_party.upper()
        self._party_rows = {str(p["id"]).upper(): p for p in parties}
        self._objects: dict[str, dict[str, Any]] = {}
        self._support: dict[str, dict[str, Any]] = {}
        self._identities: dict[str, str] = {}

    # ------------------------------------------------------------------ shared parts

    def identity(self, party: str) -> str:
        """The id of ``party``'s identity (added to the bundle)."""
        code = party.upper()
        sid = self._identities.get(code)
        if sid is None:
            sid = self._identities[code] = stix_id("identity", f"party/{code}")
            row = self._party_rows.get(code, {})
            ident: dict[str, Any] = {
                "type": "identity",
                "spec_version": "2.1",
                "id": sid,
                "created": EPOCH,
                "modified": EPOCH,
                "name": str(row.get("name") or code),
                "identity_class": "organization",
                "sectors": ["government-national"],
                "external_references": [{"source_name": PARTY_SOURCE, "external_id": code}],
            }
            if row.get("role"):
                ident["roles"] = [str(row["role"])]
            self._support[sid] = ident
        return sid

    def _mark(
        self,
        obj: dict[str, Any],
        marking: Marking,
        *,
        log_refs: Sequence[LogRef] = (),
        property_markings: Mapping[str, Marking] | None = None,
    ) -> dict[str, Any]:
        refs, defs = shared_marking_refs(_text(marking), self.node_party)
        obj["created_by_ref"] = self.identity(marking.originator or self.node_party)
        obj["object_marking_refs"] = list(refs)
        for d in defs:
            if d["id"] not in self._support:
                self._support[d["id"]] = copy.deepcopy(d)
        if property_markings:
            gran, gdefs = granular_markings(marking, property_markings, custodian=self.node_party)
            if gran:
                obj["granular_markings"] = gran
            for d in gdefs:
                self._support[d["id"]] = d
        if log_refs:
            obj["external_references"] = [r.external_reference() for r in sorted(log_refs, key=lambda r: r.index)]
        ext = obj.get("extensions") or {}
        for stix_type_ext in ext:
            if stix_type_ext not in self._support and obj["type"].startswith("x-atalaya-"):
                self._support[stix_type_ext] = extension_definition(obj["type"])
                self._support[ATALAYA_IDENTITY_ID] = atalaya_identity()
        self._objects[obj["id"]] = obj
        return obj

    def _located(self, key: str, obj: dict[str, Any], lon: float, lat: float, radius_m: Any, name: str,
                 marking: Marking) -> str:  # fmt: skip
        loc: dict[str, Any] = {
            "type": "location",
            "spec_version": "2.1",
            "id": stix_id("location", key),
            "created": obj["created"],
            "modified": obj["modified"],
            "name": name,
            "latitude": round(float(lat), 7),
            "longitude": round(float(lon), 7),
        }
        if radius_m is not None:
            loc["precision"] = float(radius_m)
        self._mark(loc, marking)
        rel = {
            "type": "relationship",
            "spec_version": "2.1",
            "id": stix_id("relationship", f"located-at/{key}"),
            "created": obj["created"],
            "modified": obj["modified"],
            "relationship_type": "located-at",
            "source_ref": obj["id"],
            "target_ref": loc["id"],
        }
        self._mark(rel, marking)
        return str(loc["id"])

    # ------------------------------------------------------------------ objects

    def site(self, row: Mapping[str, Any], *, log_refs: Sequence[LogRef] = (),
             property_markings: Mapping[str, Marking] | None = None) -> dict[str, Any]:  # fmt: skip
        """A ``sites`` row → ``x-atalaya-site`` with its ``location`` and ``located-at`` relationship.

        ``evidence`` keeps the numeric figures of the evidence (counts, masses); ``property_markings`` gives
        properties a stricter marking than the site's (e.g. ``{"evidence": ...}``) as granular markings.
        """
        key = str(row["id"])
        marking = _marking(row)
        evidence = {k: v for k, v in (_json(row.get("evidence")) or {}).items()
                    if isinstance(v, int | float) and not isinstance(v, bool)}  # fmt: skip
        created = timestamp(row.get("first_seen"))
        obj = new_sdo(
            "x-atalaya-site", key, created=created,
            modified=timestamp(_latest(row.get("last_seen"), row.get("status_at"), row.get(VERSION_AT)), created),
            atalaya_id=key, name=f"{row['kind']} site", site_kind=str(row["kind"]), score=_num(row.get("score")),
            rank=_int(row.get("rank")), status=str(row.get("status") or "suspected"),
            radius_m=_num(row.get("radius_m")),
            first_seen=timestamp(row["first_seen"]) if row.get("first_seen") else None,
            last_seen=timestamp(row["last_seen"]) if row.get("last_seen") else None,
            n_days=_int(row.get("n_days")),
            status_at=timestamp(row["status_at"]) if row.get("status_at") else None,
            note=row.get("note") or None, evidence=evidence or None,
        )  # fmt: skip
        obj["location_ref"] = self._located(key, obj, row["lon"], row["lat"], row.get("radius_m"), obj["name"], marking)
        return self._mark(obj, marking, log_refs=log_refs, property_markings=property_markings)

    def track(self, row: Mapping[str, Any], *, log_refs: Sequence[LogRef] = ()) -> dict[str, Any]:
        """A ``tracks`` row → ``x-atalaya-track`` (the path as a GeoJSON LineString, lon/lat order)."""
        key = str(row["id"])
        geom = _json(row.get("geometry"))
        created = timestamp(row.get("start"))
        obj = new_sdo(
            "x-atalaya-track", key, created=created, atalaya_id=key,
            modified=timestamp(_latest(row.get("end"), row.get(VERSION_AT)), created),
            name=str(row.get("ident") or key), track_kind=str(row["kind"]), ident=row.get("ident") or None,
            ident_kind=row.get("ident_kind") or None,
            start=timestamp(row["start"]) if row.get("start") else None,
            end=timestamp(row["end"]) if row.get("end") else None,
            n_points=_int(row.get("n_points")), length_km=_num(row.get("length_km")),
            geometry={"type": "LineString", "coordinates": geom["coordinates"]} if geom else None,
        )  # fmt: skip
        return self._mark(obj, _marking(row), log_refs=log_refs)

    def corridor(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A ``corridors`` row → ``x-atalaya-corridor``."""
        key = str(row["id"])
        obj = new_sdo(
            "x-atalaya-corridor", key, created=EPOCH, modified=timestamp(row.get(VERSION_AT)), atalaya_id=key,
            name=f"{row.get('kind') or 'mixed'} corridor #{row.get('rank')}", corridor_kind=row.get("kind") or None,
            rank=_int(row.get("rank")), volume=_int(row.get("volume")),
            h3_cells=sorted(str(c) for c in (_json(row.get("h3_cells")) or ())),
        )  # fmt: skip
        return self._mark(obj, _marking(row))

    def crossing(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A ``crossings`` row → ``x-atalaya-crossing`` with its ``location``."""
        key = str(row["id"])
        marking = _marking(row)
        created = timestamp(row.get("first_seen"))
        obj = new_sdo(
            "x-atalaya-crossing", key, created=created,
            modified=timestamp(_latest(row.get("last_seen"), row.get(VERSION_AT)), created),
            atalaya_id=key, name=f"crossing {key}", count=_int(row.get("count")),
            first_seen=timestamp(row["first_seen"]) if row.get("first_seen") else None,
            last_seen=timestamp(row["last_seen"]) if row.get("last_seen") else None,
            hour_profile=[float(x) for x in _json(row.get("hour_profile")) or ()] or None,
        )  # fmt: skip
        obj["location_ref"] = self._located(key, obj, row["lon"], row["lat"], None, obj["name"], marking)
        return self._mark(obj, marking)

    def maritime_event(self, row: Mapping[str, Any], *, event_kind: str) -> dict[str, Any]:
        """A row of a maritime event table (``dark_gap``, ``rendezvous``, ``loitering``) → ``x-atalaya-maritime-event``.

        The tables have no ids; the event's id is derived from its kind, vessels and period.
        """
        vessels = _vessels(row)
        key = maritime_id(row, event_kind)
        start = timestamp(_EPOCH_UTC + timedelta(microseconds=int(row["start_us"])))
        end = timestamp(_EPOCH_UTC + timedelta(microseconds=int(row["end_us"])))
        skip = {"id", "vessel", "vessel_a", "vessel_b", "start_us", "end_us", "lon", "lat", "score", "reasons",
                "marking", "duration_s", "event_kind", VERSION_AT}  # fmt: skip
        details = {k: v for k, v in row.items() if k not in skip and v is not None}
        obj = new_sdo(
            "x-atalaya-maritime-event", key, created=start, atalaya_id=key,
            modified=timestamp(row.get(VERSION_AT), end),
            name=f"{event_kind} {' '.join(vessels)}".strip(), event_kind=event_kind, start=start, end=end,
            position=[round(float(row["lon"]), 7), round(float(row["lat"]), 7)], vessels=vessels,
            duration_s=_num(row.get("duration_s")), score=_num(row.get("score")),
            reasons=[r.strip() for r in str(row.get("reasons") or "").split(";") if r.strip()] or None,
            details=details or None,
        )  # fmt: skip
        return self._mark(obj, _marking(row))

    def sortie(self, row: Mapping[str, Any], *, overflight: Sequence[Mapping[str, Any]] = (),
               log_refs: Sequence[LogRef] = ()) -> dict[str, Any]:  # fmt: skip
        """A ``sorties`` row and its sortie-over-territory records (the log's ``overflight`` entries) →
        ``x-atalaya-sortie``; ``log_refs`` point at those entries' leaves."""
        key = str(row["id"])
        created = timestamp(row.get("takeoff"))
        over = [
            {k: o.get(k) for k in ("level", "territory", "owner", "seconds", "km", "entries", "exits", "max_depth_km",
                                   "first_in", "last_out", "method") if k in o}
            for o in sorted(overflight, key=lambda o: (str(o.get("level")), str(o.get("territory"))))
        ]  # fmt: skip
        ts = {k: timestamp(row[k]) if row.get(k) else None
              for k in ("takeoff", "landing", "notified_at", "report_filed_at")}  # fmt: skip
        obj = new_sdo(
            "x-atalaya-sortie", key, created=created,
            modified=timestamp(_latest(row.get("landing"), row.get("report_filed_at"), row.get(VERSION_AT)), created),
            atalaya_id=key, name=f"sortie {key}", platform_type=row.get("platform_type") or None,
            party=row.get("party_id") or None, base=row.get("base") or None,
            agreement_id=row.get("agreement_id") or None, authorisation_id=row.get("authorisation_id") or None,
            platform_id=row.get("platform_id") or None, over_territory=over or None, **ts,
        )  # fmt: skip
        return self._mark(obj, _marking(row), log_refs=log_refs)

    def verdict(self, row: Mapping[str, Any], *, log_refs: Sequence[LogRef] = ()) -> dict[str, Any]:
        """A ``verdicts`` row → ``x-atalaya-verdict`` (referring to its sortie's ``x-atalaya-sortie``)."""
        sortie_id = str(row["sortie_id"])
        key = f"verdict/{sortie_id}"
        record = _json(row.get("record")) or {}
        checked = timestamp(row.get("checked_at"))
        obj = new_sdo(
            "x-atalaya-verdict", key, created=checked, modified=timestamp(row.get(VERSION_AT), checked),
            atalaya_id=sortie_id,
            name=f"verdict on sortie {sortie_id}: {row['status']}", sortie_ref=stix_id("x-atalaya-sortie", sortie_id),
            sortie_id=sortie_id, status=str(row["status"]), reason=row.get("reason") or None,
            worst=row.get("worst") or None, n_violations=_int(row.get("n_violations")),
            hosts=[str(h) for h in _json(row.get("hosts")) or ()], audience=[str(a) for a in
                                                                            _json(row.get("audience")) or ()],
            agreement_id=row.get("agreement_id") or None, agreement_version=_int(row.get("agreement_version")),
            collection_id=row.get("collection_id") or None, track_points=_int(row.get("track_points")),
            checked_at=checked, as_of=timestamp(row["as_of"]) if row.get("as_of") else None,
            violations=list(record.get("violations") or ()) or None,
        )  # fmt: skip
        return self._mark(obj, _marking(row), log_refs=log_refs)

    def report(self, key: str, *, name: str, published: datetime | str, object_refs: Sequence[str],
               marking: Marking, description: str | None = None, report_types: Sequence[str] = ("threat-report",),
               log_refs: Sequence[LogRef] = ()) -> dict[str, Any]:  # fmt: skip
        """A STIX ``report`` grouping ``object_refs`` (a partner report, a product): ``key`` is its stable id."""
        pub = timestamp(published)
        obj: dict[str, Any] = {
            "type": "report",
            "spec_version": "2.1",
            "id": stix_id("report", key),
            "created": pub,
            "modified": pub,
            "name": name,
            "report_types": list(report_types),
            "published": pub,
            "object_refs": sorted(set(object_refs)),
        }
        if description:
            obj["description"] = description
        return self._mark(obj, marking, log_refs=log_refs)

    # ------------------------------------------------------------------ results

    def add(self, kind: str, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        """Map rows of a product ``kind`` (``sites``, ``tracks``, ``corridors``, ``crossings``, ``sorties``,
        ``verdicts``, ``maritime``); returns the ids of the main objects (those a report groups)."""
        out = []
        for r in rows:
            if kind == "maritime":
                out.append(self.maritime_event(r, event_kind=str(r["event_kind"]))["id"])
            elif kind == "sorties":
                got = self.sortie(r, overflight=r.get("overflight") or (), log_refs=r.get("log_refs") or ())
                out.append(got["id"])
            elif kind in _ONE:
                out.append(getattr(self, _ONE[kind])(r)["id"])
            else:
                from atalaya.core.errors import ValidationError

                raise ValidationError(f"no STIX mapping for {kind!r}", hint=f"one of {', '.join(MAPPED_KINDS)}")
        return out

    def objects(self) -> list[dict[str, Any]]:
        """Every object: the supporting ones (identities, marking- and extension-definitions) first, then the
        mapped ones, each group in id order."""
        return [self._support[k] for k in sorted(self._support)] + [self._objects[k] for k in sorted(self._objects)]

    def bundle(self) -> dict[str, Any]:
        """A STIX 2.1 bundle of :meth:`objects`; its id is derived from the objects' ids and versions."""
        objs = self.objects()
        digest = content_id(json.dumps(objs, sort_keys=True, separators=(",", ":")))
        return {"type": "bundle", "id": f"bundle--{uuid.uuid5(NAMESPACE, digest)}", "objects": objs}


_ONE = {"sites": "site", "tracks": "track", "corridors": "corridor", "crossings": "crossing", "verdicts": "verdict"}
MAPPED_KINDS = (*_ONE, "sorties", "maritime")
"""Product kinds with a STIX mapping."""


def to_bundle(kind: str, rows: Iterable[Mapping[str, Any]], *, node_party: str,
              parties: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:  # fmt: skip
    """One call: a self-contained bundle of ``rows`` of product ``kind``."""
    b = StixBuilder(node_party=node_party, parties=parties)
    b.add(kind, rows)
    return b.bundle()
