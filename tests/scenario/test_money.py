"""Money of the scenario: determinism, columns, and the defining shape of each planted typology."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.csv as pacsv
import pytest

from atalaya.scenario.money import (
    CASH,
    COLUMNS,
    MXN_THRESHOLD,
    TYPOLOGY_KINDS,
    USD_THRESHOLD,
    Money,
    Typology,
    build_money,
    write_money,
)
from atalaya.scenario.society import SITE_KINDS, SiteRef, Society, build_society, clabe_is_valid

START = datetime(2024, 3, 1)
DAYS = 30


def make_society(seed: int = 5, size: str = "demo") -> Society:
    sites = [SiteRef(site_id=f"s-{k}-{i}", kind=k, lon=-108.0, lat=25.0) for k in SITE_KINDS for i in range(2)]
    return build_society(seed=seed, size=size, sites=sites, start=START, days=DAYS)


@pytest.fixture(scope="module")
def society() -> Society:
    return make_society()


@pytest.fixture(scope="module")
def money(society: Society) -> Money:
    return build_money(society, seed=5, start=START, days=DAYS)


@pytest.fixture(scope="module")
def rows(money: Money) -> dict[str, dict[str, Any]]:
    return {r["txn_id"]: r for r in money.table.to_pylist()}


def txns(ty: Typology, rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [rows[t] for t in ty.txn_ids]


def test_same_seed_same_bytes_other_seed_differs(society: Society, money: Money, tmp_path: Path) -> None:
    write_money(money, tmp_path / "a")
    write_money(build_money(society, seed=5, start=START, days=DAYS), tmp_path / "b")
    write_money(build_money(society, seed=6, start=START, days=DAYS), tmp_path / "c")
    for name in ("records/transactions.csv", "truth/typologies.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "records/transactions.csv").read_bytes() != (
        tmp_path / "c" / "records/transactions.csv"
    ).read_bytes()


def test_written_csv_columns_and_times(money: Money, tmp_path: Path) -> None:
    write_money(money, tmp_path)
    table = pacsv.read_csv(
        tmp_path / "records" / "transactions.csv",
        convert_options=pacsv.ConvertOptions(strings_can_be_null=False, column_types={"time": "string"}),
    )
    assert tuple(table.column_names) == COLUMNS
    assert table.num_rows == money.table.num_rows
    times = table.column("time").to_pylist()
    assert all(t.endswith("Z") and "T" in t for t in times)
    assert times == sorted(times)
    with (tmp_path / "truth" / "typologies.csv").open(encoding="utf-8") as fh:
        typ = list(csv.DictReader(fh))
    assert len(typ) == len(money.typologies)
    ids = set(table.column("txn_id").to_pylist())
    assert all(t in ids for r in typ for t in r["txn_ids"].split(";"))


def test_accounts_are_society_accounts(society: Society, money: Money) -> None:
    known = {a.account_id for a in society.accounts} | {CASH}
    used = set(money.table.column("from_account").to_pylist()) | set(money.table.column("to_account").to_pylist())
    assert used <= known
    assert all(clabe_is_valid(a) for a in used - {CASH})
    assert len(set(money.table.column("txn_id").to_pylist())) == money.table.num_rows


def test_background_is_business_hours_and_in_window(money: Money) -> None:
    t = money.table.column("time").to_numpy().astype("datetime64[s]")
    start = np.datetime64(START.isoformat(), "s")
    assert t.min() >= start
    assert t.max() < start + np.timedelta64(DAYS, "D")
    local_hour = ((t - np.timedelta64(6, "h")).astype("datetime64[h]").astype(np.int64)) % 24
    assert np.mean((local_hour >= 7) & (local_hour <= 20)) > 0.9
    amounts = money.table.column("amount").to_numpy()
    assert (amounts > 0).all()
    assert np.median(amounts) < np.mean(amounts)  # log-normal: long right tail


def test_every_kind_planted_for_every_organisation(society: Society, money: Money) -> None:
    kinds = Counter((ty.org_id, ty.kind) for ty in money.typologies)
    for org in society.organisations:
        for kind in TYPOLOGY_KINDS:
            assert kinds[(org.org_id, kind)] >= 1


def test_structuring_shape(money: Money, rows: dict[str, dict[str, Any]]) -> None:
    for ty in (t for t in money.typologies if t.kind == "structuring"):
        tx = txns(ty, rows)
        assert len(tx) >= 6
        assert {r["from_account"] for r in tx} == {CASH}
        assert len({r["to_account"] for r in tx}) == 1
        assert {r["channel"] for r in tx} == {"cash_deposit"}
        assert len({r["branch"] for r in tx}) >= 3
        (currency,) = {r["currency"] for r in tx}
        threshold = USD_THRESHOLD if currency == "USD" else MXN_THRESHOLD
        assert all(0.8 * threshold <= r["amount"] < threshold for r in tx)
        times = [r["time"] for r in tx]
        assert max(times) - min(times) <= timedelta(days=5)


@pytest.mark.parametrize(("kind", "hub_side", "many_side"), [("fan_in", "to", "from"), ("fan_out", "from", "to")])
def test_fan_shape(money: Money, rows: dict[str, dict[str, Any]], kind: str, hub_side: str, many_side: str) -> None:
    planted = [t for t in money.typologies if t.kind == kind]
    assert planted
    for ty in planted:
        tx = txns(ty, rows)
        assert len({r[f"{hub_side}_account"] for r in tx}) == 1
        assert len({r[f"{many_side}_account"] for r in tx}) == len(tx) >= 10
        times = [r["time"] for r in tx]
        assert max(times) - min(times) <= timedelta(days=8)


def test_cycles_close_with_decreasing_amounts(money: Money, rows: dict[str, dict[str, Any]]) -> None:
    for ty in (t for t in money.typologies if t.kind == "cycle"):
        tx = txns(ty, rows)
        assert len(tx) >= 3
        for a, b in pairwise(tx):
            assert a["to_account"] == b["from_account"]
            assert b["amount"] < a["amount"]
            assert b["time"] > a["time"]
        assert tx[-1]["to_account"] == tx[0]["from_account"]
        assert len({r["from_account"] for r in tx}) == len(tx)


def test_scatter_gather_shape(money: Money, rows: dict[str, dict[str, Any]]) -> None:
    for ty in (t for t in money.typologies if t.kind == "scatter_gather"):
        tx = txns(ty, rows)
        (source,) = {r["from_account"] for r in tx if r["memo"] == "PAGO SERVICIOS"}
        (sink,) = {r["to_account"] for r in tx if r["memo"] == "DEVOLUCION"}
        out = {r["to_account"]: r for r in tx if r["from_account"] == source}
        back = {r["from_account"]: r for r in tx if r["to_account"] == sink}
        assert source != sink
        assert set(out) == set(back) and len(out) >= 3
        for mid, first in out.items():
            assert back[mid]["amount"] < first["amount"]
            assert back[mid]["time"] > first["time"]
        assert set(ty.accounts) == {source, sink, *out}


def test_small_size_volume() -> None:
    society = make_society(seed=2, size="small")
    money = build_money(society, seed=2, start=START, days=DAYS)
    assert 55_000 <= money.table.num_rows <= 70_000
    assert len(money.typologies) == len(society.organisations) * 2 * len(TYPOLOGY_KINDS)


@pytest.mark.slow
def test_large_size_volume() -> None:
    society = make_society(seed=3, size="large")
    money = build_money(society, seed=3, start=START, days=90)
    assert money.table.num_rows >= 1_000_000
