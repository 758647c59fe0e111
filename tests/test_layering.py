"""The layers import downwards only: the CLI and the API are thin over services, never each other's source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "atalaya"

FORBIDDEN = {
    "api": ("atalaya.cli",),
    "sovereignty": ("atalaya.cli", "atalaya.api"),
    "share": ("atalaya.cli", "atalaya.api"),
    "store": ("atalaya.cli", "atalaya.api", "atalaya.sovereignty", "atalaya.share"),
    "fusion": ("atalaya.cli", "atalaya.api", "atalaya.evaluate"),
    "core": ("atalaya.cli", "atalaya.api", "atalaya.sovereignty", "atalaya.share", "atalaya.fusion"),
}
"""Package → module prefixes it must not import (also lazily, inside functions)."""


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_downwards(package: str) -> None:
    bad = [
        f"{py.relative_to(PKG.parent)} imports {mod}"
        for py in sorted((PKG / package).rglob("*.py"))
        for mod in sorted(_imports(py))
        if mod.startswith(FORBIDDEN[package])
    ]
    assert not bad, "\n".join(bad)
