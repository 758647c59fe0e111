"""Markings as STIX: the OASIS TLP 2.0 objects with their published ids, ACS 3.0 usage terms, both ways."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stix_support import ACS3_SCHEMA, TLP2_SCHEMA, schema_errors

from atalaya.core.errors import ValidationError
from atalaya.core.markings import TLP, Caveat, Marking, combine
from atalaya.share.stix.markings import (
    ACS_EXTENSION_ID,
    TLP1_MARKING_IDS,
    TLP2_EXTENSION_ID,
    TLP_MARKING_IDS,
    acs_marking_definition,
    granular_from_stix,
    granular_markings,
    marking_from_refs,
    marking_refs,
    tlp_marking_definition,
)

PARTIES = ["USA", "MEX", "COL", "GTM", "PAN"]
markings = st.builds(
    Marking,
    tlp=st.sampled_from(list(TLP)),
    releasable_to=st.lists(st.sampled_from(PARTIES), max_size=4).map(tuple),
    caveats=st.lists(st.sampled_from(list(Caveat)), max_size=4).map(tuple),
    originator=st.sampled_from(["", *PARTIES]),
)


def _defs(defs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in defs}


def test_tlp_objects_are_the_ones_oasis_publishes() -> None:
    schema = json.loads(TLP2_SCHEMA.read_text(encoding="utf-8"))
    published = {d["properties"]["name"]["enum"][0]: d["properties"]["id"]["enum"][0]
                 for d in schema["definitions"].values()}  # fmt: skip
    assert {f"TLP:{lv.label}": i for lv, i in TLP_MARKING_IDS.items()} == published
    assert TLP2_EXTENSION_ID in schema["$id"]
    for level in TLP:
        obj = tlp_marking_definition(level)
        assert schema_errors(TLP2_SCHEMA, obj) == [], level
        assert obj["id"] not in TLP1_MARKING_IDS  # never the TLP 1.0 WHITE/GREEN/AMBER/RED objects


def test_a_wrong_tlp_object_fails_the_oasis_schema() -> None:
    obj = tlp_marking_definition(TLP.AMBER_STRICT)
    obj["id"] = TLP_MARKING_IDS[TLP.AMBER]  # AMBER's id with AMBER+STRICT's name and value
    assert schema_errors(TLP2_SCHEMA, obj)


@settings(deadline=None)  # shared CI machines: a slow example is not a failure
@given(markings)
def test_acs_objects_meet_the_isa_acs_3_schema(m: Marking) -> None:
    d = acs_marking_definition(m, custodian="USA")
    if not (m.releasable_to or m.caveats or m.originator):
        assert d is None
        return
    assert d is not None
    assert schema_errors(ACS3_SCHEMA, d["extensions"][ACS_EXTENSION_ID]) == []


@settings(deadline=None)  # shared CI machines: a slow example is not a failure
@given(markings)
def test_marking_round_trips_through_stix(m: Marking) -> None:
    refs, defs = marking_refs(m, custodian="USA")
    assert refs[0] == TLP_MARKING_IDS[m.tlp]
    back = marking_from_refs(refs, _defs(defs))
    assert back.marking == m
    assert back.notes == ()
    again = marking_refs(m, custodian="USA")
    assert again == (refs, defs)  # same marking, same ids and objects


@settings(deadline=None)
@given(markings, markings)
def test_granular_markings_round_trip(base: Marking, part: Marking) -> None:
    # the part of one object has the object's originator (a marking with none reads back as the sender's)
    stricter = combine([base, dataclasses.replace(part, originator=base.originator)])
    gran, defs = granular_markings(base, {"evidence": stricter, "note": base}, custodian="USA")
    _, base_defs = marking_refs(base, custodian="USA")
    got = granular_from_stix(gran, _defs(defs + base_defs), base)
    assert got == ({"evidence": stricter} if stricter != base else {})


def test_a_granular_marking_may_not_be_weaker_than_its_object() -> None:
    base = Marking(tlp=TLP.RED, releasable_to=("MEX",), originator="USA")
    with pytest.raises(ValidationError, match="weaker"):
        granular_markings(base, {"evidence": Marking(tlp=TLP.GREEN, releasable_to=("MEX",), originator="USA")})


def test_usage_terms_in_acs_words() -> None:
    m = Marking(tlp=TLP.AMBER, releasable_to=("MEX",), originator="USA",
                caveats=(Caveat.INTEL_ONLY, Caveat.NO_ACTION_WITHOUT_HOST_CONSENT, Caveat.SOURCE_PROTECT,
                         Caveat.NO_FURTHER_DISSEMINATION))  # fmt: skip
    d = acs_marking_definition(m)
    assert d is not None
    acs = d["extensions"][ACS_EXTENSION_ID]
    assert acs["policy_reference"] == "urn:isa:policy:acs:ns:v3.0?privdefault=deny&sharedefault=deny"
    assert acs["control_set"]["permitted_nationalities"] == ["MEX"]
    assert acs["responsible_entity_originator"] == "USA.ATALAYA"
    assert {(p["privilege_action"], p["rule_effect"]) for p in acs["access_privilege"]} == {
        ("INTEL", "permit"), ("OPACTION", "deny"), ("IDSRC", "deny")
    }  # fmt: skip


def test_tlp_1_white_is_read_as_clear_with_a_note() -> None:
    white = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"
    got = marking_from_refs([white], {}, origin="mex")
    assert got.marking == Marking(tlp=TLP.CLEAR, originator="MEX")
    assert any("TLP 1.0" in n for n in got.notes)


def test_unreadable_markings_make_the_object_most_restrictive() -> None:
    odd = {"type": "marking-definition", "spec_version": "2.1",
           "id": "marking-definition--11111111-1111-4111-8111-111111111111", "created": "2024-01-01T00:00:00Z",
           "name": "NATO RESTRICTED", "definition_type": "classification",
           "definition": {"level": "restricted"}}  # fmt: skip
    got = marking_from_refs([TLP_MARKING_IDS[TLP.GREEN], odd["id"]], {odd["id"]: odd}, origin="MEX")
    assert got.marking == Marking(tlp=TLP.RED, caveats=(Caveat.INTEL_ONLY,), originator="MEX")
    assert not got.marking.releasable("COL") and got.marking.releasable("MEX")
    assert any("cannot read" in n for n in got.notes)
    missing = marking_from_refs(["marking-definition--2b3c3f4e-0000-4000-8000-000000000000"], {}, origin="MEX")
    assert missing.marking.tlp is TLP.RED and any("not in the bundle" in n for n in missing.notes)


def test_no_marking_is_amber_and_several_tlp_levels_take_the_strictest() -> None:
    assert marking_from_refs([], {}, origin="COL").marking == Marking(tlp=TLP.AMBER, originator="COL")
    both = [TLP_MARKING_IDS[TLP.GREEN], TLP_MARKING_IDS[TLP.AMBER_STRICT]]
    assert marking_from_refs(both, {}).marking.tlp is TLP.AMBER_STRICT


def test_statements_and_pap_are_kept_aside() -> None:
    stmt = {"type": "marking-definition", "id": "marking-definition--8e0f9f1a-4f8e-4b8c-9b7e-2f1c2d3e4f50",
            "definition_type": "statement", "definition": {"statement": "Copyright 2026 Partner"}}  # fmt: skip
    pap = {"type": "marking-definition", "id": "marking-definition--9e0f9f1a-4f8e-4b8c-9b7e-2f1c2d3e4f51",
           "definition_type": "PAP", "name": "PAP:RED", "definition": {"pap": "PAP:RED"}}  # fmt: skip
    got = marking_from_refs([TLP_MARKING_IDS[TLP.GREEN], stmt["id"], pap["id"]], {stmt["id"]: stmt, pap["id"]: pap})
    assert got.marking.tlp is TLP.GREEN
    assert got.marking.caveats == (Caveat.INTEL_ONLY,)
    assert got.extra == {stmt["id"]: "Copyright 2026 Partner", pap["id"]: "PAP:RED"}


def test_foreign_acs_markings_are_read_by_their_fields() -> None:
    acs = {"type": "marking-definition", "spec_version": "2.1",
           "id": "marking-definition--20864905-06a0-47be-a04c-2164af17d635", "created": "2020-06-18T00:00:00Z",
           "extensions": {ACS_EXTENSION_ID: {
               "extension_type": "property-extension", "identifier": "isa:guide.19001.ACS3-3bda2f6e",
               "create_date_time": "2018-05-27T14:10:26.723Z", "responsible_entity_custodian": "USA.NSA",
               "responsible_entity_originator": "COL.DIPOL",
               "policy_reference": "urn:isa:policy:acs:ns:v3.0?privdefault=deny&sharedefault=deny",
               "control_set": {"classification": "U", "permitted_nationalities": ["USA", "MEX"]},
               "access_privilege": [{"privilege_action": "INTEL", "rule_effect": "permit",
                                     "privilege_scope": {"permitted_nationalities": ["ALL"]}}]}}}  # fmt: skip
    assert schema_errors(ACS3_SCHEMA, acs["extensions"][ACS_EXTENSION_ID]) == []
    got = marking_from_refs([TLP_MARKING_IDS[TLP.AMBER], acs["id"]], {acs["id"]: acs}, origin="USA")
    assert got.marking == Marking(tlp=TLP.AMBER, releasable_to=("MEX", "USA"), originator="COL",
                                  caveats=(Caveat.INTEL_ONLY, Caveat.NO_FURTHER_DISSEMINATION))  # fmt: skip
    classified = json.loads(json.dumps(acs))
    classified["extensions"][ACS_EXTENSION_ID]["control_set"]["classification"] = "S"
    got = marking_from_refs([acs["id"]], {acs["id"]: classified})
    assert got.marking.tlp is TLP.RED and any("classification" in n for n in got.notes)


def test_the_federation_doc_names_the_ids_the_code_writes() -> None:
    from pathlib import Path

    from atalaya.share.stix.extension import extension_id, stix_id
    from atalaya.share.stix.markings import acs_marking_id

    doc = (Path(__file__).resolve().parents[2] / "docs" / "federation.md").read_text(encoding="utf-8")
    for level, mid in TLP_MARKING_IDS.items():
        assert f"| TLP:{level.label} | `{mid}` |" in doc
    assert TLP2_EXTENSION_ID in doc and ACS_EXTENSION_ID in doc
    # the examples are what the code writes for them
    assert stix_id("x-atalaya-site", "site--a") in doc and extension_id("x-atalaya-site") in doc
    assert stix_id("x-atalaya-verdict", "verdict/S-7") in doc and extension_id("x-atalaya-verdict") in doc
    assert (
        str(acs_marking_id(Marking.from_text("TLP:AMBER;REL:MEX,USA;CAV:NO-ACTION-WITHOUT-HOST-CONSENT;ORIG:USA")))
        in doc
    )
