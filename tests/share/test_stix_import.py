"""STIX bundles from other platforms read with their markings: MISP's TLP 1.0 WHITE, OpenCTI's own TLP objects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stix_support import validator_problems

from atalaya.core.errors import ValidationError
from atalaya.core.markings import TLP, Caveat, Marking
from atalaya.share.stix import read_bundle

BUNDLES = Path(__file__).parent / "data" / "stix-bundles"


def _load(name: str) -> dict[str, object]:
    return dict(json.loads((BUNDLES / name).read_text(encoding="utf-8")))


def test_misp_event_bundle() -> None:
    bundle = _load("misp-event-stix21.json")
    assert [p for p in validator_problems(bundle) if p.startswith("error")] == []  # a valid bundle to start with
    res = read_bundle(json.dumps(bundle), origin="mex")
    assert res.skipped == []
    kinds = {o.stix_id.split("--")[0]: o for o in res.objects}
    assert set(kinds) == {"identity", "report", "note", "indicator", "observed-data", "domain-name"}
    report = kinds["report"]
    assert report.kind == "reports" and report.record["name"] == "MISP-STIX-Converter test event"
    # the TLP 1.0 WHITE id MISP writes is TLP:CLEAR, and says so
    assert report.marking == Marking(tlp=TLP.CLEAR, originator="MEX")
    assert any("TLP 1.0" in n for n in report.notes)
    # unmarked objects are not taken as public: AMBER, the sending party only
    assert kinds["indicator"].kind == "foreign"
    assert kinds["indicator"].marking == Marking(tlp=TLP.AMBER, originator="MEX")
    assert kinds["indicator"].record["pattern"] == "[domain-name:value = 'circl.lu']"
    assert kinds["domain-name"].record["value"] == "circl.lu"
    assert all(o.origin == "MEX" for o in res.objects)


def test_opencti_export_bundle() -> None:
    res = read_bundle(_load("opencti-export-stix21.json"), origin="COL")
    assert res.skipped == []
    got = {o.stix_id.split("--")[0]: o for o in res.objects}
    actor = got["threat-actor"]
    # OpenCTI's AMBER+STRICT object is read by its definition; PAP:AMBER forbids acting on it
    assert actor.marking == Marking(tlp=TLP.AMBER_STRICT, caveats=(Caveat.INTEL_ONLY,), originator="COL")
    assert actor.marking.extra == {"marking-definition--c4a8f7f6-0e2b-5d0a-9a35-3a1b2c4d5e6f": "PAP:AMBER"}
    assert not actor.marking.releasable("MEX")
    assert got["location"].marking.tlp is TLP.CLEAR  # OpenCTI's CLEAR is under the TLP 1.0 WHITE id
    report = got["report"]
    assert report.marking.tlp is TLP.CLEAR
    assert report.property_markings == {"description": Marking(tlp=TLP.AMBER_STRICT, originator="COL")}
    assert got["identity"].kind == "foreign"  # an identity that names no Atalaya party is intelligence too


def test_opencti_amber_strict_id_without_its_object() -> None:
    bundle = _load("opencti-export-stix21.json")
    bundle["objects"] = [o for o in bundle["objects"] if o["type"] != "marking-definition"]  # type: ignore[union-attr,index]
    res = read_bundle(bundle, origin="COL")
    actor = next(o for o in res.objects if o.stix_id.startswith("threat-actor--"))
    # AMBER+STRICT is still known by its id; the PAP marking, now missing, makes the object most restrictive
    assert actor.marking.tlp is TLP.RED and Caveat.INTEL_ONLY in actor.marking.caveats
    assert any("OpenCTI" in n for n in actor.notes) and any("not in the bundle" in n for n in actor.notes)


def test_what_is_not_a_bundle_is_refused_and_broken_objects_are_skipped() -> None:
    with pytest.raises(ValidationError, match="not a STIX bundle"):
        read_bundle({"type": "indicator"}, origin="MEX")
    with pytest.raises(ValidationError, match="not JSON"):
        read_bundle("{", origin="MEX")
    bundle = {"type": "bundle", "id": "bundle--1b0f5b2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "objects": [
        {"type": "x-atalaya-site", "spec_version": "2.1", "id": "x-atalaya-site--1b0f5b2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
         "atalaya_id": "site--z"},
        {"type": "indicator", "spec_version": "2.0", "id": "indicator--1b0f5b2e-3c4d-4e5f-8a9b-0c1d2e3f4a5c"},
    ]}  # fmt: skip
    res = read_bundle(bundle, origin="MEX")
    assert res.objects == []
    assert [s["id"].split("--")[0] for s in res.skipped] == ["x-atalaya-site", "indicator"]
    assert "site_kind" in res.skipped[0]["reason"] and "2.0" in res.skipped[1]["reason"]
