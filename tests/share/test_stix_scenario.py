"""The demo scenario's products as a partner receives them: egress first, then STIX, then back on the other node."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from stix_support import same_instants, stix2_round_trip, validator_problems

from atalaya.core.markings import Marking
from atalaya.core.workspace import Workspace
from atalaya.share.egress import release
from atalaya.share.stix import StixBuilder, product_rows, read_bundle
from atalaya.share.stix.rows import parties
from atalaya.sovereignty import service
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.translog.merkle import leaf_hash
from atalaya.store.translog.node import open_log

pytestmark = pytest.mark.xdist_group("demo")
KINDS = ("sites", "tracks", "sorties", "verdicts")


def _released(ws: Workspace, store: KnowledgeStore, recipient: str) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """What ``recipient`` gets of each kind through the egress, and the bundle of it."""
    builder = StixBuilder(node_party=ws.party, parties=parties(store))
    released = {}
    for kind in KINDS:
        product = "sorties" if kind == "verdicts" else kind  # verdicts are part of the sorties product
        rel = release(ws, store, product_rows(ws, store, kind), recipient=recipient, kind=product, user="t", log=False)
        released[kind] = rel.items
        builder.add(kind, rel.items)
    return builder.bundle(), released


def _check(ws: Workspace, bundle: dict[str, Any], released: dict[str, list[Any]]) -> None:
    assert validator_problems(bundle) == []
    again = stix2_round_trip(bundle)
    assert same_instants(again["objects"]) == same_instants(bundle["objects"])
    res = read_bundle(bundle, origin=ws.party)
    assert res.skipped == []
    by_kind = {k: {o.atalaya_id: o for o in res.by_kind(k)} for k in released}
    for kind, items in released.items():
        assert set(by_kind[kind]) == {str(it["id"]) for it in items}, kind
        for it in items:
            sent = Marking.from_text(it["marking"])  # one without an originator reads back as the sender's
            sent = dataclasses.replace(sent, originator=sent.originator or ws.party)
            assert by_kind[kind][str(it["id"])].marking == sent, kind
    # every sortie-over-territory figure came with its log leaf: the recipient can check its inclusion
    with open_log(ws, readonly=True) as log:
        for s in by_kind["sorties"].values():
            assert len(s.log_refs) == len(s.record["overflight"])
            for ref in s.log_refs:
                assert ref.origin == ws.log_origin
                assert leaf_hash(log.get_bytes(ref.index)).hex() == ref.leaf_hash
                assert log.get(ref.index)["sortie"] == s.atalaya_id


def test_demo_products_as_stix(demo_workspace: Workspace) -> None:
    from atalaya.fusion.sites import run_sites
    from atalaya.fusion.tracks import run_tracks

    ws = demo_workspace
    store = KnowledgeStore.open(ws.db_url)
    try:
        run_tracks(ws, store)
        run_sites(ws, store)
        service.check(ws, store)
        own, everything = _released(ws, store, ws.party)
        assert all(everything[k] for k in KINDS)
        _check(ws, own, everything)
        mex, for_mex = _released(ws, store, "MEX")
        # accountability: every sortie whose records name Mexico, and its verdict, goes to Mexico
        over_mex = {s["id"] for s in everything["sorties"] if "MEX" in s["audience"]}
        assert over_mex and {s["id"] for s in for_mex["sorties"]} == over_mex
        assert {v["id"] for v in for_mex["verdicts"]} >= over_mex
        assert not for_mex["sites"]  # the demo's agreement shares no sites with Mexico
        _check(ws, mex, for_mex)
    finally:
        store.close()
