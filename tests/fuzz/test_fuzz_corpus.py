"""Every corpus input and every kept crasher reads to records and quarantines (or the one file-level error)."""

from __future__ import annotations

from pathlib import Path

import pytest
from reader_harness import TARGETS, corpus_files, run_one

CASES = [(target, path) for target in TARGETS for path in corpus_files(target)]


@pytest.mark.parametrize(("target", "path"), CASES, ids=[f"{t}/{p.parent.parent.name}/{p.name}" for t, p in CASES])
def test_replay(target: str, path: Path) -> None:
    run_one(target, path.read_bytes())


def test_every_target_has_a_seed_corpus() -> None:
    assert all(any((p.parent.parent.name == "corpus") for p in corpus_files(t)) for t in TARGETS)


def test_corpus_stays_small() -> None:
    files = [p for t in TARGETS for p in corpus_files(t)]
    assert max(p.stat().st_size for p in files) <= 16 * 1024
    assert sum(p.stat().st_size for p in files) <= 1 << 20
