"""One vocabulary of product kinds for agreements, the egress policy and the API."""

from __future__ import annotations

import re
from pathlib import Path

from atalaya.share.products import PRODUCT_KINDS
from atalaya.sovereignty.agreements import agreement_schema

API = Path(__file__).resolve().parents[2] / "atalaya" / "api"


def test_schema_enumerates_the_product_kinds() -> None:
    enum = agreement_schema()["$defs"]["sharing"]["properties"]["products"]["items"]["enum"]
    assert sorted(enum) == sorted(PRODUCT_KINDS)


def test_every_released_kind_is_a_product_kind() -> None:
    kinds = set()
    for f in API.glob("*.py"):
        kinds |= set(re.findall(r'release\(\s*user,\s*"([a-z_]+)"', f.read_text()))
    assert kinds
    assert kinds <= set(PRODUCT_KINDS)
