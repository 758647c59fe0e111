"""Docs stay aligned with the code they describe."""

from __future__ import annotations

from pathlib import Path

from atalaya.ingest.registry import FORMATS
from atalaya.model.observation import COLUMNS

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_formats_doc_lists_every_column_and_format() -> None:
    text = (DOCS / "formats.md").read_text(encoding="utf-8")
    for c in COLUMNS:
        assert f"`{c.name}`" in text, c.name
    for name in FORMATS:
        assert f"`{name}`" in text, name


def test_readme_starts_with_the_two_commands() -> None:
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    head = readme.split("```", 2)[1]
    assert "./scripts/demo.sh" in head
    assert "./scripts/test.sh" in head
