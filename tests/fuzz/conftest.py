"""Fuzz tests: the corpus replay always runs; the time-boxed atheris run is marked ``fuzz``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # reader_harness, for the tests and the fuzz driver


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fuzz: time-boxed coverage-guided fuzzing (atheris; ATALAYA_FUZZ_SECONDS per reader, default 4)"
    )
