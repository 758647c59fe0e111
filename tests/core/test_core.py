"""Core types: markings, Admiralty code, content ids, workspace configuration."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.core.errors import ConfigError, ValidationError, WorkspaceError
from atalaya.core.ids import content_id, float_bits, hash_columns, hash_strings, ids_to_arrow, ids_to_hex
from atalaya.core.markings import TLP, Caveat, Marking
from atalaya.core.provenance import Admiralty, Provenance
from atalaya.core.workspace import Workspace, init_workspace

parties = st.lists(st.sampled_from(["USA", "MEX", "GTM", "BLZ", "CAN"]), max_size=4)


@settings(deadline=None)
@given(
    tlp=st.sampled_from(list(TLP)),
    rel=parties,
    cav=st.lists(st.sampled_from(list(Caveat)), max_size=3),
    orig=st.sampled_from(["", "USA", "MEX"]),
)
def test_marking_text_round_trip(tlp: TLP, rel: list[str], cav: list[Caveat], orig: str) -> None:
    m = Marking(tlp=tlp, releasable_to=tuple(rel), caveats=tuple(cav), originator=orig)
    assert Marking.from_text(m.to_text()) == m
    assert Marking.from_dict(m.to_dict()) == m


def test_marking_parsing_errors_say_what_is_allowed() -> None:
    with pytest.raises(ValidationError, match="unknown TLP") as e:
        Marking.from_text("TLP:PURPLE")
    assert "AMBER+STRICT" in (e.value.hint or "")
    with pytest.raises(ValidationError, match="unknown caveat"):
        Marking.from_text("TLP:AMBER;CAV:EYES-ONLY")
    assert TLP.parse("white") is TLP.CLEAR
    assert TLP.parse("amber_strict") is TLP.AMBER_STRICT


def test_releasability() -> None:
    m = Marking(tlp=TLP.AMBER, releasable_to=("MEX",), originator="USA")
    assert m.releasable("mex")
    assert m.releasable("USA")
    assert not m.releasable("GTM")
    assert Marking(tlp=TLP.CLEAR).releasable("anyone")


def test_admiralty_and_provenance() -> None:
    a = Admiralty.parse("c3")
    assert (a.reliability, a.credibility, a.text) == ("C", "3", "C3")
    for bad in ("G1", "A7", "B", "B22"):
        with pytest.raises(ValidationError):
            Admiralty.parse(bad)
    p = Provenance(sources=("ais",), n_support=3, run_id="r1")
    assert Provenance.from_dict(p.to_dict()) == p
    assert Provenance.from_dict(None) == Provenance()


def test_content_ids_are_stable_and_distinct() -> None:
    assert content_id("a", "b") == content_id("a", "b")
    assert content_id("a", "b") != content_id("ab")  # parts are separated
    a1, b1 = hash_columns([hash_strings(["x", "y"]), float_bits(np.array([1.0, 1.0]), 7)])
    a2, b2 = hash_columns([hash_strings(["x", "y"]), float_bits(np.array([1.0, 1.0]), 7)])
    assert (a1 == a2).all() and (b1 == b2).all()
    assert a1[0] != a1[1]
    ids = ids_to_arrow(a1, b1)
    hexes = ids_to_hex(ids)
    assert len(hexes[0]) == 32 and hexes[0] != hexes[1]
    # NaN quantises to one fixed value, and -0.0 equals 0.0
    fb = float_bits(np.array([np.nan, np.nan, -0.0, 0.0]), 7)
    assert fb[0] == fb[1] and fb[2] == fb[3]


@settings(deadline=None)  # the first call builds lookup tables
@given(st.lists(st.text(max_size=300), min_size=1, max_size=50, unique=True))
def test_string_hash_distinguishes_distinct_strings(values: list[str]) -> None:
    h = hash_strings(values)
    assert len(set(h.tolist())) == len(values)
    # slicing an Arrow array does not change the hashes
    import pyarrow as pa

    arr = pa.array(["pad", *values], type=pa.string()).slice(1)
    assert (hash_strings(arr) == h).all()


def test_workspace_key_permissions_and_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = init_workspace(tmp_path / "ws", party="mex", name="Host")
    assert ws.party == "MEX"
    assert ws.log_origin == "atalaya.mex/log"
    assert ws.db_url.startswith("sqlite:///")
    assert ws.signing_key().public_key() is not None
    os.chmod(ws.key_path, 0o644)
    with pytest.raises(WorkspaceError, match="readable by others") as e:
        ws.signing_key()
    assert "chmod 600" in (e.value.hint or "")
    os.chmod(ws.key_path, 0o600)
    assert stat.S_IMODE(ws.key_path.stat().st_mode) == 0o600
    # found from a subdirectory, and the database URL can be overridden
    sub = ws.root / "exports"
    monkeypatch.chdir(sub)
    monkeypatch.delenv("ATALAYA_WORKSPACE", raising=False)
    assert Workspace.find().root == ws.root
    assert Workspace.find(db_override="postgresql://u@h/db").db_url == "postgresql://u@h/db"
    with pytest.raises(ConfigError, match="invalid party code"):
        init_workspace(tmp_path / "other", party="not a code!")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "atalaya.toml").write_text("[party\ncode=")
    with pytest.raises(ConfigError, match="cannot read"):
        Workspace.open(tmp_path / "broken")


@settings(deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=40)), min_size=1, max_size=60))
def test_string_hash_paths_agree(values: list[str | None]) -> None:
    """The position-by-position path for short strings gives exactly the byte-stream path's values."""
    import atalaya.core.ids as ids

    short = ids.hash_strings(values)
    saved = ids._COLUMNWISE_MAX
    try:
        ids._COLUMNWISE_MAX = -1
        general = ids.hash_strings(values)
    finally:
        ids._COLUMNWISE_MAX = saved
    assert (short == general).all()
