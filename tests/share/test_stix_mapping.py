"""Atalaya objects as STIX 2.1: valid by the OASIS schemas, equal through the stix2 library, read back the same."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from stix_support import same_instants, stix2_round_trip, validator_problems

from atalaya.core.errors import ValidationError
from atalaya.core.markings import TLP, Marking
from atalaya.core.workspace import Workspace
from atalaya.share.stix import LogRef, StixBuilder, product_rows, read_bundle, redact_for, to_bundle
from atalaya.share.stix.extension import EPOCH, SCHEMAS, SDO_TYPES, extension_definitions, extension_id, stix_id
from atalaya.share.stix.markings import TLP_MARKING_IDS

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 4, 18, 30, 15, 250000, tzinfo=UTC)
REL = "TLP:AMBER;REL:MEX,USA;CAV:NO-ACTION-WITHOUT-HOST-CONSENT;ORIG:USA"
STRICT = "TLP:RED;REL:MEX;CAV:NO-ACTION-WITHOUT-HOST-CONSENT,SOURCE-PROTECT;ORIG:USA"
MAPPED_TYPES = ("x-atalaya-site", "x-atalaya-track", "x-atalaya-corridor", "x-atalaya-crossing",
                "x-atalaya-maritime-event", "x-atalaya-sortie", "x-atalaya-verdict")  # fmt: skip
LEAF = LogRef(origin="atalaya.usa/log", index=41, leaf_hash="ab" * 32, ref="overflight:S-7|country|MEX")

SITE = {"id": "site--a", "kind": "lab", "lon": -107.25, "lat": 25.5, "radius_m": 150.0, "score": 0.91, "rank": 1,
        "status": "confirmed", "first_seen": T0, "last_seen": T1, "n_days": 3, "status_at": T1, "note": "two sheds",
        "evidence": {"n_detections": 12, "mass": 3.5}, "marking": REL}  # fmt: skip
TRACK = {"id": "track--1", "kind": "vessel", "ident": "345000001", "ident_kind": "mmsi", "start": T0, "end": T1,
         "n_points": 3, "length_km": 2.5, "marking": REL,
         "geometry": json.dumps({"type": "LineString", "coordinates": [[-107.0, 25.0], [-107.01, 25.01]]})}  # fmt: skip
CORRIDOR = {"id": "corridor--v1", "h3_cells": ["866d2c137ffffff", "866d2c107ffffff"], "volume": 5, "kind": "vehicle",
            "rank": 1, "marking": REL}  # fmt: skip
CROSSING = {"id": "crossing--1", "lon": -106.45, "lat": 31.75, "count": 17, "hour_profile": [0.0] * 23 + [1.0],
            "first_seen": T0, "last_seen": T1, "marking": REL}  # fmt: skip
MARITIME = {"vessel_a": "345000001", "vessel_b": "345000002", "start_us": 1_772_431_200_000_000,
            "end_us": 1_772_438_400_000_000, "lon": -109.5, "lat": 22.1, "duration_s": 7200.0, "min_dist_m": 40.0,
            "kind": "ais", "radar_looks": 0, "score": 0.8, "reasons": "both slow within 300 m for 2 h; far offshore",
            "marking": REL, "event_kind": "rendezvous"}  # fmt: skip
OVER = {"kind": "overflight", "method": "accounting/v1", "sortie": "S-7", "level": "country", "territory": "MEX",
        "owner": "MEX", "seconds": 5400.0, "km": 612.4, "entries": 1, "exits": 1, "max_depth_km": 88.2,
        "first_in": "2026-03-02T07:00:00Z", "last_out": "2026-03-02T08:30:00Z"}  # fmt: skip
SORTIE = {"id": "S-7", "platform_id": "P-3", "platform_type": "aircraft", "party_id": "USA", "takeoff": T0,
          "landing": T1, "base": "KBIF", "agreement_id": "AGR-A", "authorisation_id": "AUTH-1", "notified_at": T0,
          "report_filed_at": None, "marking": "TLP:AMBER;ORIG:USA", "overflight": [OVER],
          "log_refs": [LEAF]}  # fmt: skip
VERDICT = {"sortie_id": "S-7", "status": "violation", "reason": "entered MEX without notice", "worst": "major",
           "n_violations": 1, "hosts": ["MEX"], "audience": ["MEX"], "agreement_id": "AGR-A", "agreement_version": 2,
           "collection_id": "C-1", "track_points": 812, "checked_at": T1, "as_of": None, "marking": "TLP:AMBER",
           "record": {"violations": [{"rule": "notice", "severity": "major", "message": "no notice", "host": "MEX",
                                      "segments": [], "details": {"lead_h": 0}}]}}  # fmt: skip


def _everything() -> tuple[StixBuilder, dict[str, str]]:
    b = StixBuilder(node_party="USA", parties=[{"id": "USA", "name": "United States", "role": "collector"},
                                               {"id": "MEX", "name": "México", "role": "host"}])  # fmt: skip
    ids = {
        "sites": b.site(SITE, property_markings={"evidence": Marking.from_text(STRICT)})["id"],
        "tracks": b.track(TRACK)["id"],
        "corridors": b.corridor(CORRIDOR)["id"],
        "crossings": b.crossing(CROSSING)["id"],
        "maritime": b.maritime_event(MARITIME, event_kind="rendezvous")["id"],
        "sorties": b.add("sorties", [SORTIE])[0],
        "verdicts": b.verdict(VERDICT)["id"],
    }
    ids["reports"] = b.report("partner-report/MEX/2026-03", name="Overflight report for MEX, March 2026",
                              published=T1, object_refs=[ids["sorties"], ids["verdicts"]],
                              marking=Marking.from_text("TLP:AMBER;REL:MEX;ORIG:USA"),
                              report_types=("threat-report",))["id"]  # fmt: skip
    return b, ids


def test_every_kind_is_valid_stix_by_the_oasis_schemas() -> None:
    b, _ = _everything()
    assert validator_problems(b.bundle()) == []


def test_a_broken_object_is_caught_by_the_validator() -> None:
    b, ids = _everything()
    bundle = b.bundle()
    site = next(o for o in bundle["objects"] if o["id"] == ids["sites"])
    site["modified"] = "yesterday"
    assert any("modified" in p for p in validator_problems(bundle))


def test_the_stix2_library_reads_and_writes_it_unchanged() -> None:
    bundle = _everything()[0].bundle()
    again = stix2_round_trip(bundle)
    assert same_instants({o["id"]: o for o in again["objects"]}) == same_instants(
        {o["id"]: o for o in bundle["objects"]}
    )


def test_our_objects_meet_their_published_schemas() -> None:
    bundle = _everything()[0].bundle()
    ours = [o for o in bundle["objects"] if o["type"] in SDO_TYPES]
    assert {o["type"] for o in ours} == set(MAPPED_TYPES)
    for o in ours:
        jsonschema.Draft202012Validator(SCHEMAS[o["type"]]).validate(o)
        assert o["extensions"] == {extension_id(o["type"]): {"extension_type": "new-sdo"}}
    defs = {o["id"]: o for o in bundle["objects"] if o["type"] == "extension-definition"}
    assert set(defs) == {extension_id(t) for t in MAPPED_TYPES}  # those its objects use
    assert all(d["extension_types"] == ["new-sdo"] and d["created_by_ref"] in {o["id"] for o in bundle["objects"]}
               for d in defs.values())  # fmt: skip
    assert validator_problems({"type": "bundle", "id": bundle["id"], "objects": extension_definitions()}) == []


def test_same_objects_same_stix_byte_for_byte() -> None:
    a, b = _everything()[0].bundle(), _everything()[0].bundle()
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert a["id"] == b["id"]
    changed = to_bundle("sites", [{**SITE, "score": 0.5}], node_party="USA")
    assert changed["id"] != to_bundle("sites", [SITE], node_party="USA")["id"]
    site = next(o for o in changed["objects"] if o["type"] == "x-atalaya-site")
    assert site["id"] == stix_id("x-atalaya-site", "site--a")  # the same object keeps its id
    assert site["modified"] == "2026-03-04T18:30:15.250Z"  # no time of its own changed: the caller says when
    rescored = to_bundle("sites", [{**SITE, "score": 0.5, "version_at": datetime(2026, 3, 5, tzinfo=UTC)}],
                         node_party="USA")  # fmt: skip
    assert {o["modified"] for o in rescored["objects"] if o["type"] == "x-atalaya-site"} == {"2026-03-05T00:00:00.000Z"}


def test_times_are_the_objects_own() -> None:
    bundle = _everything()[0].bundle()
    by_type = {o["type"]: o for o in bundle["objects"]}
    assert by_type["x-atalaya-site"]["created"] == "2026-03-02T06:00:00.000Z"
    assert by_type["x-atalaya-site"]["modified"] == "2026-03-04T18:30:15.250Z"
    assert by_type["x-atalaya-verdict"]["created"] == by_type["x-atalaya-verdict"]["checked_at"]
    assert by_type["x-atalaya-corridor"]["created"] == EPOCH  # a corridor has no time of its own
    undated = to_bundle("sites", [{**SITE, "first_seen": None, "last_seen": None, "status_at": None}],
                        node_party="USA")  # fmt: skip
    assert {o["created"] for o in undated["objects"] if o["type"] in ("x-atalaya-site", "location")} == {EPOCH}


def test_markings_provenance_and_log_references() -> None:
    bundle = _everything()[0].bundle()
    objs = {o["id"]: o for o in bundle["objects"]}
    site = next(o for o in objs.values() if o["type"] == "x-atalaya-site")
    assert site["object_marking_refs"][0] == TLP_MARKING_IDS[Marking.from_text(REL).tlp]
    assert objs[site["created_by_ref"]]["external_references"] == [{"source_name": "atalaya-party",
                                                                      "external_id": "USA"}]  # fmt: skip
    assert {g["selectors"][0] for g in site["granular_markings"]} == {"evidence"}
    for ref in [*site["object_marking_refs"], *(g["marking_ref"] for g in site["granular_markings"])]:
        assert objs[ref]["type"] == "marking-definition"  # every marking travels with the bundle
    sortie = next(o for o in objs.values() if o["type"] == "x-atalaya-sortie")
    assert sortie["external_references"] == [{"source_name": "atalaya-transparency-log",
                                              "external_id": "atalaya.usa/log#41", "hashes": {"SHA-256": "ab" * 32},
                                              "description": "overflight:S-7|country|MEX"}]  # fmt: skip
    verdict = next(o for o in objs.values() if o["type"] == "x-atalaya-verdict")
    assert verdict["sortie_ref"] == sortie["id"]
    assert set(next(o for o in objs.values() if o["type"] == "report")["object_refs"]) == {sortie["id"],
                                                                                          verdict["id"]}  # fmt: skip


def _cmp(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in ("marking", "log_refs", "record")}
    if isinstance(out.get("geometry"), str):
        out["geometry"] = json.loads(out["geometry"])
    return out


def test_read_back_gives_the_same_rows_markings_and_log_references() -> None:
    res = read_bundle(_everything()[0].bundle(), origin="USA")
    assert res.skipped == []
    got = {o.kind: o for o in res.objects}
    assert set(got) == {"sites", "tracks", "corridors", "crossings", "maritime", "sorties", "verdicts", "reports"}
    assert _cmp(got["sites"].record) == _cmp(SITE)
    assert got["sites"].marking == Marking.from_text(REL)
    assert got["sites"].property_markings == {"evidence": Marking.from_text(STRICT)}
    assert _cmp(got["tracks"].record) == _cmp(TRACK)
    assert got["corridors"].record["h3_cells"] == sorted(CORRIDOR["h3_cells"])
    assert {k: got["crossings"].record[k] for k in CROSSING if k != "marking"} == _cmp(CROSSING)
    sortie = got["sorties"].record
    assert sortie["overflight"] == [{k: v for k, v in OVER.items() if k not in ("kind", "sortie")}]
    assert {k: sortie[k] for k in SORTIE if k not in ("marking", "log_refs", "overflight")} == {
        k: v for k, v in SORTIE.items() if k not in ("marking", "log_refs", "overflight")}  # fmt: skip
    assert got["sorties"].log_refs == (LEAF,)
    verdict = got["verdicts"].record
    assert verdict["violations"] == VERDICT["record"]["violations"]
    assert {k: verdict[k] for k in VERDICT if k not in ("marking", "record")} == {
        k: v for k, v in VERDICT.items() if k not in ("marking", "record")}  # fmt: skip
    ev = got["maritime"].record
    assert (ev["vessels"], ev["score"]) == (["345000001", "345000002"], 0.8)
    assert ev["reasons"] == ["both slow within 300 m for 2 h", "far offshore"]
    assert ev["start"] == datetime(2026, 3, 2, 6, tzinfo=UTC)
    assert all(o.origin == "USA" for o in res.objects)


def test_empty_lists_are_left_out_and_read_back_empty() -> None:
    bundle = to_bundle("verdicts", [{**VERDICT, "status": "no-host", "hosts": [], "audience": [], "record": {}}],
                       node_party="USA")  # fmt: skip
    assert validator_problems(bundle) == []
    verdict = next(o for o in bundle["objects"] if o["type"] == "x-atalaya-verdict")
    assert "hosts" not in verdict and "violations" not in verdict
    back = read_bundle(bundle, origin="USA").by_kind("verdicts")[0].record
    assert (back["hosts"], back["audience"], back["violations"]) == ([], [], [])


def test_parts_marked_beyond_the_recipient_are_removed() -> None:
    us_only = Marking.from_text("TLP:AMBER;REL:USA;CAV:NO-ACTION-WITHOUT-HOST-CONSENT;ORIG:USA")
    b = StixBuilder(node_party="USA")
    site = b.site({**SITE, "note": "source: asset K"}, property_markings={"evidence": Marking.from_text(STRICT),
                                                                          "note": us_only})  # fmt: skip
    defs = {o["id"]: o for o in b.objects() if o["type"] == "marking-definition"}
    for_mex = redact_for(site, lambda m: m.releasable("MEX"), defs)
    assert "note" not in for_mex and for_mex["evidence"] == SITE["evidence"]  # RED;REL:MEX may go to MEX
    assert {s for g in for_mex["granular_markings"] for s in g["selectors"]} == {"evidence"}
    assert site["evidence"] and site["note"]  # the builder's object is left as it was
    # an agreement that allows MEX at most AMBER holds the RED evidence back as well
    policy_like = lambda m: m.releasable("MEX") and m.tlp <= TLP.AMBER  # noqa: E731
    held = redact_for(site, policy_like, defs)
    assert "evidence" not in held and "note" not in held and "granular_markings" not in held
    assert redact_for(site, lambda m: m.releasable("USA"), defs) == site  # the originator gets it all
    assert validator_problems({"type": "bundle", "id": "bundle--" + site["id"].split("--")[1],
                               "objects": [*b.objects()[:-1], for_mex]}) == []  # fmt: skip


def test_maritime_events_of_a_workspace_get_stable_ids(workspace: Workspace) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from atalaya.fusion.maritime import maritime_dir
    from atalaya.store.knowledge import KnowledgeStore

    gaps = {"vessel": ["345000001"], "start_us": [MARITIME["start_us"]], "end_us": [MARITIME["end_us"]],
            "lon": [-109.5], "lat": [22.1], "duration_s": [7200.0], "dist_port_m": [9e4], "dist_land_m": [4e4],
            "score": [0.7], "reasons": ["silent 2 h far offshore"], "marking": [REL]}  # fmt: skip
    maritime_dir(workspace).mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(gaps), maritime_dir(workspace) / "dark_gaps.parquet")
    store = KnowledgeStore.open(workspace.db_url)
    try:
        rows = product_rows(workspace, store, "maritime")
        assert product_rows(workspace, store, "maritime") == rows and len(rows) == 1
        assert product_rows(workspace, store, "maritime", ids=[rows[0]["id"]]) == rows
        assert product_rows(workspace, store, "maritime", ids=["maritime--other"]) == []
    finally:
        store.close()
    bundle = to_bundle("maritime", rows, node_party="USA")
    assert validator_problems(bundle) == []
    event = read_bundle(bundle, origin="USA").by_kind("maritime")[0]
    assert event.atalaya_id == rows[0]["id"] and event.record["event_kind"] == "dark_gap"
    assert event.record["details"] == {"dist_port_m": 9e4, "dist_land_m": 4e4}


def test_unknown_kinds_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ValidationError, match="no STIX mapping for 'entities'"):
        to_bundle("entities", [{"id": "e1"}], node_party="USA")
