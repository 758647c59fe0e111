"""The egress chokepoint: decisions against the agreement version in force, caveats enforced, a property test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.core.markings import TLP, Caveat, Marking
from atalaya.core.workspace import Workspace
from atalaya.share.egress import ACCOUNTABILITY_KINDS, EgressPolicy, release
from atalaya.sovereignty.agreements import AgreementSet, example_document, parse_agreement
from atalaya.store.knowledge import KnowledgeStore

PARTIES = ("USA", "MEX", "GTM", "BLZ")
KINDS = ("sites", "tracks", "corridors", "maritime", "sorties", "reports")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _doc(version: int, start: datetime, end: datetime | None, sharing: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        **example_document(),
        "id": "AGR-E",
        "version": version,
        "parties": list(PARTIES),
        "effective": {"from": start.isoformat(), "to": end.isoformat() if end else None},
        "sharing": sharing,
    }


REL = Marking(tlp=TLP.AMBER, releasable_to=("MEX", "USA"), caveats=(Caveat.INTEL_ONLY,), originator="USA")
TERM = {"from": "USA", "to": "MEX", "max_tlp": "AMBER", "caveats": ["INTEL-ONLY"], "products": ["sites"]}


def test_a_stored_version_not_yet_in_force_does_not_block_the_one_in_force() -> None:
    v1 = parse_agreement(_doc(1, T0, None, [TERM]))
    v2 = parse_agreement(_doc(2, T0 + timedelta(days=400), None, []))  # signed, takes effect next year
    pol = EgressPolicy(node_party="USA", agreements=AgreementSet([v1, v2]))
    d = pol.decide(REL, "MEX", kind="sites", at=T0 + timedelta(days=10))
    assert d.allowed and d.term is not None and d.term.version == 1
    later = pol.decide(REL, "MEX", kind="sites", at=T0 + timedelta(days=401))
    assert not later.allowed and later.rule == "no-agreement"


def test_sharing_outlives_collection_windows_and_expiry_says_why() -> None:
    # example_document's collection window is March 2026; the agreement's effective period runs to 2030
    a = parse_agreement(_doc(1, T0, datetime(2030, 1, 1, tzinfo=UTC), [TERM]))
    pol = EgressPolicy(node_party="USA", agreements=AgreementSet([a]))
    assert pol.decide(REL, "MEX", kind="sites", at=datetime(2029, 6, 1, tzinfo=UTC)).allowed
    gone = pol.decide(REL, "MEX", kind="sites", at=datetime(2031, 1, 1, tzinfo=UTC))
    assert not gone.allowed and "no agreement in force on 2031-01-01" in gone.reason
    # accountability never depends on an agreement
    acc = pol.decide(Marking(), "MEX", kind="sorties", about=["MEX"], at=datetime(2031, 1, 1, tzinfo=UTC))
    assert acc.allowed and acc.rule == "accountability"


def test_source_protect_strips_source_identities_on_release(workspace: Workspace) -> None:
    store = KnowledgeStore.open(workspace.db_url)
    try:
        from atalaya.sovereignty import service

        service.load_agreements(workspace, store, AgreementSet([parse_agreement(_doc(1, T0, None, [TERM]))]))
        protected = Marking(
            tlp=TLP.AMBER, releasable_to=("MEX",), caveats=(Caveat.INTEL_ONLY, Caveat.SOURCE_PROTECT), originator="USA"
        )
        item = {"id": "site--p", "marking": protected.to_text(), "score": 0.9,
                "provenance": {"sources": ["EO-7", "SIGINT-2"], "observations": ["o1"], "n_support": 4},
                "evidence": {"groups": [{"sensor": "IR", "n": 3}]}}  # fmt: skip
        rel = release(workspace, store, [item], recipient="MEX", kind="sites", user="t")
        out = rel.items[0]
        assert "sources" not in out["provenance"] and "observations" not in out["provenance"]
        assert out["provenance"]["n_support"] == 4 and out["evidence"] == {"groups": [{"n": 3}]}
        assert "SOURCE-PROTECT" in out["marking"] and "INTEL-ONLY" in out["marking"]  # caveats travel with it
        assert rel.log_index is not None
        # this node's own users see the sources
        assert release(workspace, store, [item], recipient="USA", kind="sites", user="t").items[0] == item
    finally:
        store.close()


# --------------------------------------------------------------------------- property: nothing leaves that should not

markings = st.builds(
    Marking,
    tlp=st.sampled_from(list(TLP)),
    releasable_to=st.lists(st.sampled_from(PARTIES), max_size=3).map(tuple),
    caveats=st.lists(st.sampled_from(list(Caveat)), max_size=3).map(tuple),
    originator=st.sampled_from(("USA", "MEX", "")),
)
terms = st.fixed_dictionaries(
    {
        "from": st.sampled_from(("USA", "MEX")),
        "to": st.sampled_from(PARTIES),
        "max_tlp": st.sampled_from(["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"]),
        "caveats": st.lists(st.sampled_from([c.value for c in Caveat]), max_size=2, unique=True),
        "products": st.lists(st.sampled_from(KINDS), max_size=3, unique=True),
    }
)
agreements = st.lists(
    st.tuples(st.integers(0, 900), st.one_of(st.none(), st.integers(1, 900)), st.lists(terms, max_size=3)),
    min_size=0,
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(
    marking=markings,
    versions=agreements,
    recipient=st.sampled_from(PARTIES),
    kind=st.sampled_from(KINDS),
    about=st.lists(st.sampled_from(PARTIES), max_size=2),
    day=st.integers(0, 1000),
)
def test_nothing_leaves_above_its_marking_or_to_a_party_not_entitled(
    marking: Marking,
    versions: list[tuple[int, int | None, list[dict[str, Any]]]],
    recipient: str,
    kind: str,
    about: list[str],
    day: int,
) -> None:
    docs = [
        parse_agreement(_doc(i + 1, T0 + timedelta(days=s), None if d is None else T0 + timedelta(days=s + d), ts))
        for i, (s, d, ts) in enumerate(versions)
    ]
    agr = AgreementSet(docs)
    at = T0 + timedelta(days=day, hours=12)
    d = EgressPolicy(node_party="USA", agreements=agr).decide(marking, recipient, kind=kind, about=about, at=at)
    if not d.allowed:
        assert d.reason
        return
    if recipient == "USA" or (kind in ACCOUNTABILITY_KINDS and recipient in about):
        return
    # an intelligence product: its marking lets the recipient have it ...
    assert marking.releasable(recipient)
    # ... and the version in force now (the highest begun, not ended) has a term that covers it
    begun = [a for a in docs if a.effective_from <= at]
    assert begun
    in_force = max(begun, key=lambda a: a.version)
    assert in_force.effective_to is None or at <= in_force.effective_to
    assert any(
        s.from_party == "USA"
        and s.to_party == recipient
        and (not s.products or kind in s.products)
        and marking.tlp <= s.max_tlp
        and set(s.caveats) <= {c.value for c in marking.caveats}
        for s in in_force.sharing
    )
