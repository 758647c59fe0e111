"""Markings combine and never weaken: properties of :func:`combine` over random markings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.core.errors import ValidationError
from atalaya.core.markings import TLP, Caveat, Marking, combine, combine_groups, combine_texts

PARTIES = ["USA", "MEX", "GTM", "BLZ", "COL"]

markings = st.builds(
    lambda tlp, rel, cav, orig: Marking(tlp=tlp, releasable_to=tuple(rel), caveats=tuple(cav), originator=orig),
    tlp=st.sampled_from(list(TLP)),
    rel=st.lists(st.sampled_from(PARTIES), max_size=4),
    cav=st.lists(st.sampled_from(list(Caveat)), max_size=3),
    orig=st.sampled_from(["", "USA", "MEX", "COL"]),
)
marking_lists = st.lists(markings, min_size=1, max_size=6)


@settings(deadline=None, max_examples=300)
@given(ms=marking_lists)
def test_combination_never_weakens(ms: list[Marking]) -> None:
    c = combine(ms)
    assert all(c.tlp >= m.tlp for m in ms)
    assert set(c.caveats) == {cv for m in ms for cv in m.caveats}
    for p in [*PARTIES, "CAN"]:
        if c.releasable(p):
            assert all(m.releasable(p) for m in ms), (p, c, ms)


@settings(deadline=None, max_examples=300)
@given(ms=marking_lists)
def test_combination_is_releasable_to_whoever_may_receive_every_input(ms: list[Marking]) -> None:
    """Not more restrictive than it must be: the receivers are exactly the intersection."""
    c = combine(ms)
    for p in [*PARTIES, "CAN"]:
        assert c.releasable(p) == all(m.releasable(p) for m in ms), (p, c, ms)


@settings(deadline=None, max_examples=200)
@given(m=markings, ms=marking_lists)
def test_idempotent_and_commutative(m: Marking, ms: list[Marking]) -> None:
    assert combine([m]) == m
    assert combine([m, m]) == m
    assert combine(ms) == combine(list(reversed(ms)))
    assert combine([*ms, *ms]) == combine(ms)


@settings(deadline=None, max_examples=300)
@given(a=marking_lists, b=marking_lists, c=marking_lists)
def test_associative(a: list[Marking], b: list[Marking], c: list[Marking]) -> None:
    whole = combine([*a, *b, *c])
    assert combine([combine(a), combine([*b, *c])]) == whole
    assert combine([combine([*a, *b]), combine(c)]) == whole
    assert combine([combine(a), combine(b), combine(c)]) == whole


@settings(deadline=None, max_examples=100)
@given(ms=marking_lists)
def test_texts_combine_like_markings(ms: list[Marking]) -> None:
    assert combine_texts(m.to_text() for m in ms) == combine(ms).to_text()


def test_amber_strict_and_green_stay_amber_strict() -> None:
    strict = Marking.from_text("TLP:AMBER+STRICT;REL:MEX,USA;ORIG:USA")
    green = Marking.from_text("TLP:GREEN;REL:USA;CAV:INTEL-ONLY;ORIG:USA")
    c = combine([strict, green])
    assert c.tlp is TLP.AMBER_STRICT
    assert c.releasable_to == ("USA",) and c.originator == "USA"
    assert c.caveats == (Caveat.INTEL_ONLY,)
    assert not c.releasable("MEX")


def test_other_originators_are_kept_only_where_every_input_goes() -> None:
    us = Marking(tlp=TLP.AMBER, releasable_to=("MEX",), originator="USA")
    mx = Marking(tlp=TLP.AMBER, releasable_to=("USA", "GTM"), originator="MEX")
    c = combine([us, mx])
    assert c.originator == "" and c.releasable_to == ("MEX", "USA")
    assert not c.releasable("GTM") and not c.releasable("")


def test_nothing_to_combine_is_an_error() -> None:
    with pytest.raises(ValidationError) as exc:
        combine([])
    assert exc.value.hint
    with pytest.raises(ValidationError):
        combine_texts([])


def test_combine_groups() -> None:
    names = ["TLP:GREEN;REL:MEX;ORIG:USA", "TLP:AMBER+STRICT;REL:MEX,USA;ORIG:USA", "TLP:CLEAR"]
    group = np.array([0, 0, 0, 1, 1, 2, 3])
    code = np.array([0, 1, 0, 2, 2, 1, -1])
    out = combine_groups(group, code, names, 5)
    assert out[0] == "TLP:AMBER+STRICT;REL:MEX;ORIG:USA"
    assert out[1] == "TLP:CLEAR"
    assert out[2] == names[1]
    assert out[3] is None and out[4] is None
