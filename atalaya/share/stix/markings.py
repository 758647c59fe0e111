"""Atalaya markings as STIX 2.1 data markings, and back: TLP 2.0 and ISA ACS 3.0.

**TLP.** The level is one of the five marking-definitions OASIS publishes for
TLP 2.0 (extension ``extension-definition--60a3c5c5-…``), with their fixed
ids and their fixed ``created`` time; they travel in every bundle, since STIX
2.1 predefines only the TLP 1.0 objects. The TLP 1.0 WHITE id (and the other
1.0 ids) are understood on import, never written.

**Usage and releasability.** Releasable-to parties, caveats and originator
go into one ISA ACS 3.0 marking-definition (extension
``extension-definition--3a65884d-…``, the ACS marking profile published in
OASIS cti-stix-common-objects), with a deterministic id derived from them:

==============================  ==================================================================
Atalaya                         ACS 3.0
==============================  ==================================================================
``releasable_to``               ``control_set.permitted_nationalities`` (party codes as GENC trigraphs)
``originator`` ``O``            ``responsible_entity_originator`` = ``O.ATALAYA`` (and custodian)
``INTEL-ONLY``                  ``privdefault=deny`` + ``INTEL`` permitted (nothing else is)
``NO-ACTION-WITHOUT-HOST-…``    ``OPACTION`` denied (action needs the originator's consent)
``SOURCE-PROTECT``              ``IDSRC`` denied (sources may not be identified)
``NOFORN-PARTNER``              ``sharedefault=deny`` (no further sharing)
==============================  ==================================================================

>>> from atalaya.core.markings import TLP, Caveat, Marking
>>> m = Marking(tlp=TLP.AMBER_STRICT, releasable_to=("MEX",), caveats=(Caveat.INTEL_ONLY,), originator="USA")
>>> refs, defs = marking_refs(m)
>>> refs[0] == TLP_MARKING_IDS[TLP.AMBER_STRICT], len(defs)
(True, 2)
>>> marking_from_refs(refs, {d["id"]: d for d in defs}).marking == m
True
"""

from __future__ import annotations

import copy
import functools
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from atalaya.core.markings import TLP, Caveat, Marking, combine
from atalaya.share.stix.extension import EPOCH, NAMESPACE

TLP2_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
"""The OASIS TLP 2.0 marking extension."""
TLP2_CREATED = "2022-10-01T00:00:00.000Z"
"""The ``created`` time OASIS publishes on every TLP 2.0 marking-definition."""
TLP_MARKING_IDS: dict[TLP, str] = {
    TLP.CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    TLP.GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    TLP.AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    TLP.AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    TLP.RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
"""TLP 2.0 marking-definition ids as OASIS publishes them (cti-stix-common-objects, tlp-2.0)."""
TLP1_MARKING_IDS: dict[str, TLP] = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": TLP.CLEAR,  # TLP 1.0 WHITE
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": TLP.GREEN,
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": TLP.AMBER,
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": TLP.RED,
}
"""The TLP 1.0 marking-definitions STIX 2.1 predefines (§7.2.1.4): read on import, never written."""
OPENCTI_MARKING_IDS: dict[str, TLP] = {"marking-definition--826578e1-40ad-459f-bc73-ede076f81f37": TLP.AMBER_STRICT}
"""OpenCTI's own id for TLP:AMBER+STRICT (it predates the OASIS object; OpenCTI writes CLEAR under the 1.0 WHITE id):
read even when a bundle leaves the object out."""
ACS_EXTENSION_ID = "extension-definition--3a65884d-005a-4290-8335-cb2d778a83ce"
"""The OASIS ISA ACS 3.0 marking extension (cti-stix-common-objects, acs-marking-definition-3a6)."""
ACS_POLICY = "urn:isa:policy:acs:ns:v3.0?privdefault={priv}&sharedefault={share}"
_ALL_SCOPE = {"permitted_nationalities": ["ALL"], "permitted_organizations": ["ALL"], "entity": ["ALL"]}
_CUSTODIAN_SUFFIX = ".ATALAYA"
_PAP_RESTRICTIVE = frozenset({"PAP:AMBER", "PAP:RED"})


def tlp_marking_definition(level: TLP) -> dict[str, Any]:
    """The OASIS TLP 2.0 marking-definition object of ``level``, exactly as published."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": TLP_MARKING_IDS[level],
        "created": TLP2_CREATED,
        "name": f"TLP:{level.label}",
        "extensions": {TLP2_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": level.label.lower()}},
    }


def _usage_key(m: Marking) -> str:
    return ";".join(m.to_text().split(";")[1:])  # everything but the TLP level


def acs_marking_id(m: Marking) -> str | None:
    """The id of the ACS marking-definition of ``m``'s usage terms (``None`` when it has none: TLP alone)."""
    key = _usage_key(m)
    return f"marking-definition--{uuid.uuid5(NAMESPACE, f'acs/{key}')}" if key else None


def _party_entity(party: str) -> str:
    return f"{party.upper()}{_CUSTODIAN_SUFFIX}"


def acs_marking_definition(m: Marking, *, custodian: str | None = None) -> dict[str, Any] | None:
    """The ACS 3.0 marking-definition of ``m``'s releasability, caveats and originator (``None`` if none)."""
    mid = acs_marking_id(m)
    if mid is None:
        return None
    privileges: list[dict[str, Any]] = []
    if Caveat.INTEL_ONLY in m.caveats:
        privileges.append({"privilege_action": "INTEL", "privilege_scope": _ALL_SCOPE, "rule_effect": "permit"})
    if Caveat.NO_ACTION_WITHOUT_HOST_CONSENT in m.caveats:
        privileges.append({"privilege_action": "OPACTION", "privilege_scope": _ALL_SCOPE, "rule_effect": "deny"})
    if Caveat.SOURCE_PROTECT in m.caveats:
        privileges.append({"privilege_action": "IDSRC", "privilege_scope": _ALL_SCOPE, "rule_effect": "deny"})
    control: dict[str, Any] = {"classification": "U"}
    if m.releasable_to:
        control["permitted_nationalities"] = list(m.releasable_to)
    owner = custodian or m.originator or "XXX"  # ISO 3166 user-assigned "unknown": the schema requires one
    acs: dict[str, Any] = {
        "extension_type": "property-extension",
        "identifier": f"isa:atalaya.ACS3-{mid.split('--')[1]}",
        "name": f"Atalaya {_usage_key(m)}",
        "create_date_time": EPOCH,
        "responsible_entity_custodian": _party_entity(owner),
        "policy_reference": ACS_POLICY.format(
            priv="deny" if Caveat.INTEL_ONLY in m.caveats else "permit",
            share="deny" if Caveat.NO_FURTHER_DISSEMINATION in m.caveats else "permit",
        ),
        "control_set": control,
    }
    if m.originator:
        acs["responsible_entity_originator"] = _party_entity(m.originator)
    if privileges:
        acs["access_privilege"] = privileges
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": mid,
        "created": EPOCH,
        "name": acs["name"],
        "extensions": {ACS_EXTENSION_ID: acs},
    }


def marking_refs(m: Marking, *, custodian: str | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """``object_marking_refs`` for ``m`` and the marking-definition objects they name (TLP 2.0, then ACS)."""
    refs, defs = shared_marking_refs(m.to_text(), custodian)
    return list(refs), [copy.deepcopy(d) for d in defs]


@functools.lru_cache(maxsize=1024)
def shared_marking_refs(text: str, custodian: str | None) -> tuple[tuple[str, ...], tuple[dict[str, Any], ...]]:
    """:func:`marking_refs` of a marking text, made once per text (a page has thousands of objects, a few markings).

    The cached definitions are shared: callers copy them before handing them out."""
    m = Marking.from_text(text)
    defs = [tlp_marking_definition(m.tlp)]
    acs = acs_marking_definition(m, custodian=custodian)
    if acs is not None:
        defs.append(acs)
    return tuple(d["id"] for d in defs), tuple(defs)


def granular_markings(
    base: Marking, by_selector: Mapping[str, Marking], *, custodian: str | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``granular_markings`` for properties whose marking differs from the object's ``base`` marking.

    Each selector (a STIX selector: ``evidence``, ``evidence.n_detections``, ``geometry.coordinates.[0]``) gets
    the marking-definitions of its own marking, which must never be weaker than ``base``: a granular marking adds
    restrictions to part of an object (a recipient cleared for the object but not for the part gets it without
    that part), it cannot lift the object's own. Returns the granular markings and the definitions they name.
    """
    grouped: dict[tuple[str, ...], list[str]] = {}
    defs: dict[str, dict[str, Any]] = {}
    for selector, m in sorted(by_selector.items()):
        if combine([base, m]) != m:
            from atalaya.core.errors import ValidationError

            raise ValidationError(
                f"granular marking {m.to_text()} on {selector!r} is weaker than the object's {base.to_text()}",
                hint="a property may carry a stricter marking than its object, never a looser one",
            )
        if m == base:
            continue
        refs, ds = marking_refs(m, custodian=custodian)
        defs.update({d["id"]: d for d in ds})
        grouped.setdefault(tuple(refs), []).append(selector)
    out = [{"marking_ref": ref, "selectors": sorted(sels)} for refs, sels in sorted(grouped.items()) for ref in refs]
    return out, list(defs.values())


# --------------------------------------------------------------------------- STIX → Atalaya


@dataclass(frozen=True, kw_only=True)
class ReadMarking:
    """An Atalaya marking read from STIX marking references, with what the reading had to decide."""

    marking: Marking
    """The marking."""
    notes: tuple[str, ...] = ()
    """What was interpreted (TLP 1.0 ids, markings not understood, statements kept aside)."""
    extra: dict[str, str] = field(default_factory=dict)
    """Markings kept but not enforced (copyright statements, PAP levels): ``{marking id: text}``."""


def _acs_to_parts(ext: Mapping[str, Any]) -> tuple[tuple[str, ...], set[Caveat], str, list[str]]:
    notes: list[str] = []
    control = ext.get("control_set") or {}
    rel = tuple(str(p) for p in control.get("permitted_nationalities") or () if str(p) != "ALL")
    caveats: set[Caveat] = set()
    policy = str(ext.get("policy_reference", ""))
    if "privdefault=deny" in policy:
        permits = {p.get("privilege_action") for p in ext.get("access_privilege") or () if p.get("rule_effect") ==
                   "permit"}  # fmt: skip
        if "INTEL" in permits or "ALL" not in permits:
            caveats.add(Caveat.INTEL_ONLY)
    if "sharedefault=deny" in policy:
        caveats.add(Caveat.NO_FURTHER_DISSEMINATION)
    for p in ext.get("access_privilege") or ():
        if p.get("rule_effect") != "deny":
            continue
        action = p.get("privilege_action")
        if action in ("OPACTION", "ALL"):
            caveats.add(Caveat.NO_ACTION_WITHOUT_HOST_CONSENT)
        if action in ("IDSRC", "ALL"):
            caveats.add(Caveat.SOURCE_PROTECT)
        if action in ("INTEL", "ALL"):
            caveats.add(Caveat.INTEL_ONLY)
            notes.append(f"ACS denies {action}: read as INTEL-ONLY, the strictest use Atalaya enforces")
    entity = str(ext.get("responsible_entity_originator") or "")  # the custodian holds it, it is not its origin
    originator = entity.split(".")[0].upper()
    classification = control.get("classification", "U")
    if classification != "U":
        notes.append(f"ACS classification {classification!r}: Atalaya holds unclassified data only")
    return rel, caveats, originator, notes


def _tlp_of_definition(d: Mapping[str, Any]) -> TLP | None:
    ext = (d.get("extensions") or {}).get(TLP2_EXTENSION_ID)
    if isinstance(ext, Mapping) and "tlp_2_0" in ext:
        return TLP.parse(str(ext["tlp_2_0"]))
    if str(d.get("definition_type", "")).lower() == "tlp":  # TLP 1.0 style, or OpenCTI's own TLP objects
        text = str((d.get("definition") or {}).get("tlp") or d.get("name") or "")
        return TLP.parse(text)
    name = str(d.get("name", ""))
    if name.upper().startswith("TLP:"):
        return TLP.parse(name)
    return None


def marking_from_refs(
    refs: Iterable[str],
    definitions: Mapping[str, Mapping[str, Any]],
    *,
    origin: str = "",
) -> ReadMarking:
    """The Atalaya marking of an object that carries ``refs`` (its ``object_marking_refs``).

    ``definitions`` are the marking-definitions at hand (the bundle's; the TLP 2.0 and 1.0 ids are known without
    them). ``origin`` is the party the object came from: the originator when no ACS marking names one (so a
    marking that had no originator reads back with the sender as its originator: only the sender, who had it, gains).

    Policy on what cannot be read: a marking-definition that is missing from the bundle or of a kind Atalaya does
    not know makes the object **most restrictive** — TLP:RED, releasable to nobody but its originator,
    ``INTEL-ONLY`` — with a note naming it. The object is kept (the partner sent it for a reason, and an analyst
    can review it), but nothing it carries can reach anyone a marking we could not read might have excluded.
    Without any TLP marking the object is TLP:AMBER (STIX says nothing about its audience; Atalaya denies by
    default). A TLP 1.0 marking is read as the same TLP 2.0 level (WHITE as CLEAR) with a note.
    """
    tlps: list[TLP] = []
    rel: tuple[str, ...] | None = None
    caveats: set[Caveat] = set()
    originator = ""
    notes: list[str] = []
    extra: dict[str, str] = {}
    unknown = False
    for ref in refs:
        level = next((lv for lv, i in TLP_MARKING_IDS.items() if i == ref), None)
        if level is not None:
            tlps.append(level)
            continue
        if ref in TLP1_MARKING_IDS:
            tlps.append(TLP1_MARKING_IDS[ref])
            notes.append(f"{ref} is a TLP 1.0 marking: read as TLP:{TLP1_MARKING_IDS[ref].label}")
            continue
        d = definitions.get(ref)
        if d is None and ref in OPENCTI_MARKING_IDS:
            tlps.append(OPENCTI_MARKING_IDS[ref])
            notes.append(f"{ref} is OpenCTI's TLP:AMBER+STRICT, not the OASIS TLP 2.0 object: read as such")
            continue
        if d is None:
            unknown = True
            notes.append(f"{ref} is not in the bundle and not a published TLP marking: most restrictive applied")
            continue
        ext = (d.get("extensions") or {}).get(ACS_EXTENSION_ID)
        if isinstance(ext, Mapping):
            r, c, o, n = _acs_to_parts(ext)
            rel = r if rel is None else tuple(sorted(set(rel) & set(r)))
            caveats |= c
            originator = originator or o
            notes.extend(n)
            if any("classification" in x for x in n):
                unknown = True
            continue
        try:
            level = _tlp_of_definition(d)
        except ValueError:
            level = None
            unknown = True
            notes.append(f"{ref} names an unknown TLP level {d.get('name')!r}: most restrictive applied")
        if level is not None:
            tlps.append(level)
            if ref not in TLP_MARKING_IDS.values():
                notes.append(f"{ref} ({d.get('name')}) is not the OASIS TLP 2.0 object: read by its name")
            continue
        kind = str(d.get("definition_type", "")).lower()
        name = str(d.get("name") or "")
        if kind == "statement":
            extra[ref] = str((d.get("definition") or {}).get("statement", name))
            continue
        if name.upper().startswith("PAP:") or kind == "pap":
            extra[ref] = name
            if name.upper() in _PAP_RESTRICTIVE:
                caveats.add(Caveat.INTEL_ONLY)
                notes.append(f"{name}: no action on the information, read as INTEL-ONLY")
            continue
        if level is None and ref not in extra:
            unknown = True
            notes.append(f"{ref} ({name or kind or 'unnamed'}) is a marking Atalaya cannot read: most restrictive")
    if not tlps and not unknown:
        notes.append("no TLP marking: read as TLP:AMBER")
    tlp = TLP.RED if unknown else max(tlps, default=TLP.AMBER)
    if unknown:
        caveats.add(Caveat.INTEL_ONLY)
        rel = ()
    marking = Marking(
        tlp=tlp, releasable_to=rel or (), caveats=tuple(caveats), originator=originator or origin.upper(), extra=extra
    )
    return ReadMarking(marking=marking, notes=tuple(notes), extra=extra)


def granular_from_stix(
    granular: Sequence[Mapping[str, Any]],
    definitions: Mapping[str, Mapping[str, Any]],
    base: Marking,
    *,
    origin: str = "",
) -> dict[str, Marking]:
    """``{selector: marking}`` from ``granular_markings``: each selector's refs read together and combined with the
    object's ``base`` marking (a granular marking only ever adds restrictions)."""
    refs: dict[str, list[str]] = {}
    for g in granular:
        ref = g.get("marking_ref")
        if not ref:
            continue  # a language granular marking: not a data marking
        for s in g.get("selectors") or ():
            refs.setdefault(str(s), []).append(str(ref))
    out = {}
    for s, rs in refs.items():
        m = marking_from_refs(rs, definitions, origin=origin or base.originator).marking
        out[s] = combine([base, m])
    return out


def _drop(obj: dict[str, Any], selector: str) -> bool:
    """Remove what ``selector`` names from ``obj``; a selector into a list removes the whole top-level property (a
    hole in a list would shift the indexes other selectors use). Returns whether anything was removed."""
    parts = selector.split(".")
    if any(p.startswith("[") for p in parts):
        return obj.pop(parts[0], None) is not None
    node: Any = obj
    for p in parts[:-1]:
        node = node.get(p) if isinstance(node, dict) else None
    if isinstance(node, dict) and parts[-1] in node:
        del node[parts[-1]]
        return True
    return False


def redact_for(
    obj: Mapping[str, Any],
    allowed: Callable[[Marking], bool],
    definitions: Mapping[str, Mapping[str, Any]],
    *,
    origin: str = "",
) -> dict[str, Any]:
    """A copy of ``obj`` without the properties whose granular marking is not ``allowed`` to go.

    The egress chokepoint decides the object by its own marking; this is the second half for objects that mix
    levels: a property whose marking the recipient may not receive is removed, with the granular markings that
    named it. ``allowed`` is the egress's answer for one marking — e.g. ``lambda m: policy.decide(m, "MEX",
    kind="sites", at=t).allowed`` — so a part is held to the same rules (marking, agreement terms, caveats) as a
    whole object. ``definitions`` are the marking-definitions at hand (the bundle's or the store's).
    """
    out = copy.deepcopy(dict(obj))
    gran = out.get("granular_markings") or []
    if not gran:
        return out
    base = marking_from_refs(out.get("object_marking_refs") or (), definitions, origin=origin).marking
    withheld = {s for s, m in granular_from_stix(gran, definitions, base, origin=origin).items()
                if not allowed(m)}  # fmt: skip
    gone = set(withheld)
    for s in sorted(withheld):
        if _drop(out, s) and "[" in s:
            gone.add(s.split(".")[0])  # the whole list went: so do selectors into it
    kept = []
    for g in gran:
        sels = [s for s in g.get("selectors") or () if s not in gone and s.split(".")[0] not in gone]
        if sels:
            kept.append({**g, "selectors": sels})
    if kept:
        out["granular_markings"] = kept
    else:
        out.pop("granular_markings", None)
    return out
