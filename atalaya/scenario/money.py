"""Money of the scenario: background bank flows with planted laundering typologies.

:func:`build_money` draws background transactions between the society's
accounts — salaries on Mexican paydays (the 15th and the last day of the
month), supplier invoices, retail card payments, person-to-person transfers,
cash deposits and ATM withdrawals — with log-normal amounts and business-hours
timing (local time UTC−6, written in UTC). Into that it plants, per
organisation, the typologies the finance analytics must find:

``structuring``
    many cash deposits just below the reporting threshold (10,000 USD, or the
    7,500 USD equivalent in pesos) into one account at several branches
    within a few days;
``fan_in``
    many accounts paying one front-company account within days;
``fan_out``
    one front-company account paying many accounts within days;
``cycle``
    A→B→C(→D)→A, each hop a little smaller (fees skimmed) and later;
``scatter_gather``
    one account pays several intermediaries, who each forward almost all of
    it to one sink account.

Generation is vectorised (``large``: about one million rows in seconds).
:func:`write_money` writes ``OUT/records/transactions.csv`` and
``OUT/truth/typologies.csv``. Same society and seed → identical bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from atalaya.core.errors import ValidationError
from atalaya.scenario.society import Society

FX_MXN_PER_USD = 17.0
"""Fixed exchange rate used for thresholds and USD amounts."""
USD_THRESHOLD = 10_000.0
"""Cash reporting threshold for deposits in US dollars."""
MXN_THRESHOLD = 7_500.0 * FX_MXN_PER_USD
"""Cash reporting threshold for deposits in pesos: the 7,500 USD equivalent."""
CASH = "CASH"
"""Pseudo-account on the other side of cash deposits and withdrawals."""
TYPOLOGY_KINDS: tuple[str, ...] = ("structuring", "fan_in", "fan_out", "cycle", "scatter_gather")
"""Planted typology kinds."""
COLUMNS: tuple[str, ...] = (
    "txn_id",
    "time",
    "from_account",
    "to_account",
    "amount",
    "currency",
    "channel",
    "branch",
    "memo",
)
"""Columns of ``transactions.csv``, in order."""

_LOCAL_UTC_OFFSET_S = 6 * 3600  # Mexico (central time) is UTC−6 all year since 2022
_BACKGROUND = {"demo": 5_000, "small": 60_000, "large": 1_000_000}
_PER_ORG = {"demo": 1, "small": 2, "large": 2}
_CITIES = (
    "Culiacán", "Los Mochis", "Mazatlán", "Tijuana", "Mexicali", "Hermosillo", "Nogales", "Ciudad Juárez",
    "Chihuahua", "Reynosa", "Matamoros", "Nuevo Laredo", "Monterrey", "Guadalajara", "Morelia", "Acapulco",
    "Durango", "Torreón", "Ciudad de México", "La Paz",
)  # fmt: skip
_CHANNELS = ("SPEI", "card", "cash_deposit", "ATM", "wire")
_CURRENCIES = ("MXN", "USD")
# local hour-of-day weights for business activity
_HOUR_W = np.array([0, 0, 0, 0, 0, 0, 0.2, 0.5, 1.5, 3, 3.5, 3.5, 3.2, 2.8, 2.6, 3, 3, 2.6, 2, 1.4, 1, 0.6, 0.3, 0.1])

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class Typology:
    """One planted laundering pattern (ground truth)."""

    typology_id: str
    """Id such as ``typ-0003``."""
    kind: str
    """One of :data:`TYPOLOGY_KINDS`."""
    org_id: str | None
    """Organisation behind it."""
    txn_ids: tuple[str, ...]
    """Transactions that form it, in time order."""
    accounts: tuple[str, ...]
    """Accounts involved (CLABEs; :data:`CASH` excluded), sorted."""


@dataclass(frozen=True, kw_only=True)
class Money:
    """All transactions of a scenario with the planted typologies."""

    seed: int
    """Seed it was built from."""
    table: pa.Table
    """Transactions (columns :data:`COLUMNS`; ``time`` as UTC timestamp, ``amount`` as float64), time-sorted."""
    typologies: tuple[Typology, ...]
    """Planted typologies."""


class _Txns:
    """Column buffers of generated transactions (indices into the account table)."""

    def __init__(self) -> None:
        self.t: list[I64] = []
        self.src: list[I64] = []
        self.dst: list[I64] = []
        self.amt: list[F64] = []
        self.cur: list[I64] = []
        self.chan: list[I64] = []
        self.branch: list[I64] = []
        self.memo: list[I64] = []
        self.n = 0

    def add(
        self,
        *,
        t: I64,
        src: I64,
        dst: I64,
        amt: F64,
        cur: I64 | int = 0,
        chan: I64 | int = 0,
        branch: I64 | int = 0,
        memo: I64 | int = 0,
    ) -> I64:
        k = len(t)
        self.t.append(t.astype(np.int64))
        self.src.append(src.astype(np.int64))
        self.dst.append(dst.astype(np.int64))
        self.amt.append(np.round(amt.astype(np.float64), 2).astype(np.float64))
        for buf, v in ((self.cur, cur), (self.chan, chan), (self.branch, branch), (self.memo, memo)):
            buf.append(np.broadcast_to(np.asarray(v, dtype=np.int64), (k,)).copy())
        rows = np.arange(self.n, self.n + k, dtype=np.int64)
        self.n += k
        return rows


class _MoneyBuilder:
    def __init__(self, society: Society, seed: int, start: datetime, days: int) -> None:
        self.s = society
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0x304E3B]))
        self.t0 = int(start.timestamp())
        self.days = days
        self.accounts = [CASH, *(a.account_id for a in society.accounts)]
        self.acc_index = {a: i for i, a in enumerate(self.accounts)}
        self.branches = [""] + [f"{city} suc. {k:03d}" for city in _CITIES for k in (1, 2, 3)]
        memos = ["", "COMPRA", "TRANSFERENCIA", "DEPOSITO EFECTIVO", "RETIRO CAJERO", "PRESTAMO", "PAGO SERVICIOS",
                 "ANTICIPO", "HONORARIOS", "CONSULTORIA", "DEVOLUCION"]  # fmt: skip
        memos += [f"NOMINA QNA {q:02d}" for q in range(1, 25)]
        memos += [f"PAGO FACTURA {chr(65 + k % 6)}-{1000 + 37 * k}" for k in range(120)]
        self.memos = memos
        self.memo_ix = {m: i for i, m in enumerate(memos)}
        self.txns = _Txns()
        self.typologies: list[tuple[str, str | None, I64, list[str]]] = []
        holder_kind = {a.account_id: a.purpose for a in society.accounts}
        idx = np.arange(len(self.accounts))
        self.business = np.array([i for i in idx[1:] if holder_kind[self.accounts[i]] != "personal"], dtype=np.int64)
        self.personal = np.array([i for i in idx[1:] if holder_kind[self.accounts[i]] == "personal"], dtype=np.int64)
        if len(self.business) == 0 or len(self.personal) == 0:
            raise ValidationError("the society needs both business and personal accounts to generate money")

    # -- time helpers
    def _business_times(self, n: int) -> I64:
        """Seconds since start: weekday-weighted days, business-hours local time."""
        rng = self.rng
        hi = self.days
        day = rng.integers(0, max(hi, 1), size=n)
        dow = (np.datetime64(datetime.fromtimestamp(self.t0, UTC).date()) + day).astype("datetime64[D]")
        weekday = (dow.astype(np.int64) - 4) % 7  # 1970-01-01 was a Thursday; 0 = Monday
        weekend = weekday >= 5
        redraw = weekend & (rng.random(n) < 0.65)
        day[redraw] = np.clip(day[redraw] + np.where(weekday[redraw] == 5, -1, 1), 0, max(hi - 1, 0))
        hour = rng.choice(24, size=n, p=_HOUR_W / _HOUR_W.sum())
        local = day * 86400 + hour * 3600 + rng.integers(0, 3600, size=n)
        out: I64 = (local + _LOCAL_UTC_OFFSET_S).astype(np.int64)
        return np.clip(out, 0, self.days * 86400 - 1)

    def _weights(self, n: int, sigma: float) -> F64:
        w: F64 = self.rng.lognormal(0.0, sigma, size=n)
        out: F64 = w / w.sum()
        return out

    # -- background
    def background(self, n: int) -> None:
        rng = self.rng
        pw = self._weights(len(self.personal), 1.0)
        bw = self._weights(len(self.business), 1.2)
        shares = {"salary": 0.14, "supplier": 0.14, "retail": 0.44, "p2p": 0.14, "cash_in": 0.07, "atm": 0.07}
        counts = rng.multinomial(n, list(shares.values()))
        c = dict(zip(shares, (int(x) for x in counts), strict=True))

        # salaries: business → personal on paydays (15th and month end), morning local time
        k = c["salary"]
        start_day = np.datetime64(datetime.fromtimestamp(self.t0, UTC).date())
        days = start_day + np.arange(self.days)
        dd = days.astype("datetime64[D]")
        dom = (dd - dd.astype("datetime64[M]")).astype(np.int64) + 1
        next_month_first = (dd.astype("datetime64[M]") + 1).astype("datetime64[D]")
        is_payday = (dom == 15) | (dd + 1 == next_month_first)
        paydays = np.flatnonzero(is_payday)
        if len(paydays) == 0:
            paydays = np.array([0])
        pd = paydays[rng.integers(len(paydays), size=k)]
        t = pd * 86400 + _LOCAL_UTC_OFFSET_S + rng.integers(7 * 3600, 11 * 3600, size=k)
        qna = (dd[pd].astype("datetime64[M]").astype(np.int64) % 12) * 2 + (dom[pd] > 15) + 1
        self.txns.add(
            t=t,
            src=rng.choice(self.business, size=k, p=bw),
            dst=rng.choice(self.personal, size=k, p=pw),
            amt=rng.lognormal(np.log(9_000), 0.5, size=k),
            chan=0,
            memo=self.memo_ix["NOMINA QNA 01"] - 1 + qna,
        )
        # supplier invoices business → business
        k = c["supplier"]
        src = rng.choice(self.business, size=k, p=bw)
        dst = rng.choice(self.business, size=k, p=bw)
        dst = np.where(dst == src, self.business[(np.searchsorted(self.business, src) + 1) % len(self.business)], dst)
        usd = rng.random(k) < 0.04
        amt = rng.lognormal(np.log(60_000), 1.0, size=k)
        self.txns.add(
            t=self._business_times(k),
            src=src,
            dst=dst,
            amt=np.where(usd, amt / FX_MXN_PER_USD, amt),
            cur=usd.astype(np.int64),
            chan=np.where(usd, 4, 0),
            memo=self.memo_ix["PAGO FACTURA A-1000"] + rng.integers(120, size=k),
        )
        # retail card payments personal → business
        k = c["retail"]
        self.txns.add(
            t=self._business_times(k),
            src=rng.choice(self.personal, size=k, p=pw),
            dst=rng.choice(self.business, size=k, p=bw),
            amt=rng.lognormal(np.log(450), 1.0, size=k),
            chan=1,
            branch=rng.integers(1, len(self.branches), size=k),
            memo=self.memo_ix["COMPRA"],
        )
        # person to person
        k = c["p2p"]
        src = rng.choice(self.personal, size=k, p=pw)
        dst = rng.choice(self.personal, size=k, p=pw)
        dst = np.where(dst == src, self.personal[(np.searchsorted(self.personal, src) + 1) % len(self.personal)], dst)
        self.txns.add(
            t=self._business_times(k),
            src=src,
            dst=dst,
            amt=rng.lognormal(np.log(1_500), 0.9, size=k),
            chan=0,
            memo=np.where(rng.random(k) < 0.5, self.memo_ix["TRANSFERENCIA"], self.memo_ix["PRESTAMO"]),
        )
        # cash deposits (business takings and personal), ATM withdrawals
        k = c["cash_in"]
        biz = rng.random(k) < 0.5
        dst = np.where(biz, rng.choice(self.business, size=k, p=bw), rng.choice(self.personal, size=k, p=pw))
        self.txns.add(
            t=self._business_times(k),
            src=np.zeros(k, dtype=np.int64),
            dst=dst,
            amt=np.where(biz, rng.lognormal(np.log(25_000), 0.9, size=k), rng.lognormal(np.log(3_000), 0.8, size=k)),
            chan=2,
            branch=rng.integers(1, len(self.branches), size=k),
            memo=self.memo_ix["DEPOSITO EFECTIVO"],
        )
        k = c["atm"]
        self.txns.add(
            t=self._business_times(k),
            src=rng.choice(self.personal, size=k, p=pw),
            dst=np.zeros(k, dtype=np.int64),
            amt=np.round(rng.lognormal(np.log(2_000), 0.6, size=k), -2) + 100,
            chan=3,
            branch=rng.integers(1, len(self.branches), size=k),
            memo=self.memo_ix["RETIRO CAJERO"],
        )

    # -- planted typologies
    def _org_accounts(self, org_id: str) -> tuple[list[int], list[int]]:
        fronts = [self.acc_index[a.account_id] for a in self.s.accounts if a.org_id == org_id and a.purpose == "front"]
        personal = [
            self.acc_index[a.account_id] for a in self.s.accounts if a.org_id == org_id and a.purpose == "personal"
        ]
        return fronts, personal

    def _window(self, span_days: float) -> int:
        """First day of a window of ``span_days`` days that fits the scenario."""
        return int(self.rng.integers(0, max(self.days - int(np.ceil(span_days)), 0) + 1))

    def _at_days(self, day: I64) -> I64:
        """Seconds since start at business hours (local) on the given day offsets."""
        n = len(day)
        hour = self.rng.choice(24, size=n, p=_HOUR_W / _HOUR_W.sum())
        t = day * 86400 + hour * 3600 + self.rng.integers(0, 3600, size=n) + _LOCAL_UTC_OFFSET_S
        out: I64 = np.clip(t, 0, self.days * 86400 - 1).astype(np.int64)
        return out

    def _in_window(self, lo_day: int, span_days: float, n: int) -> I64:
        """``n`` sorted business-hours times within ``span_days`` days from ``lo_day``."""
        span = max(int(np.ceil(span_days)), 1)
        return np.sort(self._at_days(lo_day + self.rng.integers(0, span, size=n)))

    def _mules(self, own: list[int], n: int) -> I64:
        """``n`` distinct accounts: the organisation's personal accounts first, then recruited civilians."""
        rng = self.rng
        own_arr = np.array(sorted(set(own)), dtype=np.int64)
        take = own_arr[rng.permutation(len(own_arr))[: min(n, len(own_arr))]]
        if len(take) < n:
            civ = np.setdiff1d(self.personal, own_arr)
            take = np.concatenate([take, civ[rng.permutation(len(civ))[: n - len(take)]]])
        return take

    def _record(self, kind: str, org_id: str, rows: I64, accounts: I64 | list[int]) -> None:
        accs = sorted({self.accounts[int(i)] for i in accounts} - {CASH})
        self.typologies.append((kind, org_id, rows, accs))

    def structuring(self, org_id: str) -> None:
        rng = self.rng
        _, personal = self._org_accounts(org_id)
        target = int(self._mules(personal, 1)[0])
        usd = bool(rng.random() < 0.4)
        threshold = USD_THRESHOLD if usd else MXN_THRESHOLD
        k = int(rng.integers(6, 16))
        span = float(rng.uniform(2, 5))
        lo = self._window(span)
        amt = np.floor(threshold * rng.uniform(0.85, 0.99, size=k) / 10) * 10
        branch = 1 + rng.permutation(len(self.branches) - 1)[:k]
        rows = self.txns.add(
            t=self._in_window(lo, span, k),
            src=np.zeros(k, dtype=np.int64),
            dst=np.full(k, target, dtype=np.int64),
            amt=amt,
            cur=int(usd),
            chan=2,
            branch=branch,
            memo=self.memo_ix["DEPOSITO EFECTIVO"],
        )
        self._record("structuring", org_id, rows, [target])

    def fan_in(self, org_id: str) -> None:
        rng = self.rng
        fronts, personal = self._org_accounts(org_id)
        hub = int(rng.choice(fronts)) if fronts else int(self._mules(personal, 1)[0])
        k = int(rng.integers(10, 31))
        srcs = self._mules([p for p in personal if p != hub], k)
        span = float(rng.uniform(2, 7))
        rows = self.txns.add(
            t=self._in_window(self._window(span), span, k),
            src=srcs,
            dst=np.full(k, hub, dtype=np.int64),
            amt=rng.lognormal(np.log(45_000), 0.4, size=k),
            chan=0,
            memo=rng.choice([self.memo_ix["PAGO SERVICIOS"], self.memo_ix["ANTICIPO"]], size=k),
        )
        self._record("fan_in", org_id, rows, [hub, *srcs.tolist()])

    def fan_out(self, org_id: str) -> None:
        rng = self.rng
        fronts, personal = self._org_accounts(org_id)
        hub = int(rng.choice(fronts)) if fronts else int(self._mules(personal, 1)[0])
        k = int(rng.integers(10, 31))
        dsts = self._mules([p for p in personal if p != hub], k)
        span = float(rng.uniform(1, 3))
        rows = self.txns.add(
            t=self._in_window(self._window(span), span, k),
            src=np.full(k, hub, dtype=np.int64),
            dst=dsts,
            amt=rng.lognormal(np.log(35_000), 0.4, size=k),
            chan=0,
            memo=rng.choice([self.memo_ix["HONORARIOS"], self.memo_ix["NOMINA QNA 01"]], size=k),
        )
        self._record("fan_out", org_id, rows, [hub, *dsts.tolist()])

    def cycle(self, org_id: str) -> None:
        rng = self.rng
        fronts, personal = self._org_accounts(org_id)
        n = int(rng.integers(3, 6))
        pool = sorted(set(fronts)) + [p for p in self._mules(personal, n).tolist() if p not in fronts]
        ring = np.array(pool, dtype=np.int64)[rng.permutation(len(pool))[:n]]
        if len(ring) < 3:
            ring = np.concatenate([ring, self._mules([], 3 - len(ring))])
        n = len(ring)
        gaps = rng.integers(1, 4, size=n)  # each hop one to three days after the previous
        lo = self._window(float(gaps.sum()) + 1)
        t = self._at_days(lo + np.cumsum(gaps) - gaps[0])
        t = np.maximum.accumulate(t + np.arange(n))  # strictly later hop by hop, even on a short scenario
        keep = np.cumprod(np.concatenate([[1.0], rng.uniform(0.96, 0.995, size=n - 1)]))
        amt = float(rng.uniform(300_000, 2_000_000)) * keep
        rows = self.txns.add(
            t=t.astype(np.int64),
            src=ring,
            dst=np.roll(ring, -1),
            amt=amt,
            chan=np.where(rng.random(n) < 0.3, 4, 0),
            memo=rng.choice([self.memo_ix["CONSULTORIA"], self.memo_ix["PRESTAMO"]], size=n),
        )
        self._record("cycle", org_id, rows, ring.tolist())

    def scatter_gather(self, org_id: str) -> None:
        rng = self.rng
        fronts, personal = self._org_accounts(org_id)
        ends = self._mules(sorted(set(fronts)), 2) if len(set(fronts)) >= 2 else self._mules(fronts + personal, 2)
        source, sink = int(ends[0]), int(ends[1])
        k = int(rng.integers(5, 13))
        mids = self._mules([p for p in personal if p not in (source, sink)], k)
        mids = mids[(mids != source) & (mids != sink)]
        k = len(mids)
        lo = self._window(5.0)
        t1 = self._in_window(lo, 2.0, k)
        t2 = np.maximum(self._at_days(lo + 2 + rng.integers(0, 3, size=k)), t1 + 60)
        a1 = rng.lognormal(np.log(80_000), 0.3, size=k)
        rows1 = self.txns.add(
            t=t1, src=np.full(k, source), dst=mids, amt=a1, chan=0, memo=self.memo_ix["PAGO SERVICIOS"]
        )
        rows2 = self.txns.add(
            t=t2,
            src=mids,
            dst=np.full(k, sink),
            amt=a1 * rng.uniform(0.95, 0.99, size=k),
            chan=0,
            memo=self.memo_ix["DEVOLUCION"],
        )
        self._record("scatter_gather", org_id, np.concatenate([rows1, rows2]), [source, sink, *mids.tolist()])

    # -- assemble
    def finish(self, seed: int) -> Money:
        x = self.txns
        t = np.concatenate(x.t)
        n = len(t)
        tiebreak = self.rng.permutation(n)
        order = np.lexsort((tiebreak, t))
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        width = max(8, len(str(n)))
        ids = np.char.add("txn-", np.char.zfill(np.arange(n).astype(str), width))
        acc = pa.array(self.accounts, type=pa.string())
        src = np.concatenate(x.src)[order]
        dst = np.concatenate(x.dst)[order]
        secs = (t[order] + self.t0).astype("datetime64[s]")
        table = pa.table(
            {
                "txn_id": pa.array(ids, type=pa.string()),
                "time": pa.array(secs, type=pa.timestamp("s", tz="UTC")),
                "from_account": acc.take(pa.array(src)),
                "to_account": acc.take(pa.array(dst)),
                "amount": pa.array(np.concatenate(x.amt)[order]),
                "currency": pa.array(_CURRENCIES, type=pa.string()).take(pa.array(np.concatenate(x.cur)[order])),
                "channel": pa.array(_CHANNELS, type=pa.string()).take(pa.array(np.concatenate(x.chan)[order])),
                "branch": pa.array(self.branches, type=pa.string()).take(pa.array(np.concatenate(x.branch)[order])),
                "memo": pa.array(self.memos, type=pa.string()).take(pa.array(np.concatenate(x.memo)[order])),
            }
        )
        typologies = []
        for i, (kind, org_id, rows, accs) in enumerate(sorted(self.typologies, key=lambda r: int(rank[r[2]].min()))):
            r = np.sort(rank[rows])
            typologies.append(
                Typology(
                    typology_id=f"typ-{i + 1:04d}",
                    kind=kind,
                    org_id=org_id,
                    txn_ids=tuple(str(s) for s in ids[r]),
                    accounts=tuple(accs),
                )
            )
        return Money(seed=seed, table=table, typologies=tuple(typologies))


def build_money(society: Society, *, seed: int, start: datetime, days: int) -> Money:
    """Background transactions plus planted typologies for ``society`` over ``days`` from ``start``.

    ``start`` without a time zone is taken as UTC. The amount of background
    flow follows ``society.size`` (demo 5k, small 60k, large 1M rows).
    """
    if days < 1:
        raise ValidationError(f"days must be at least 1, got {days}")
    start_utc = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    b = _MoneyBuilder(society, seed, start_utc, days)
    b.background(_BACKGROUND.get(society.size, _BACKGROUND["demo"]))
    plant = (b.structuring, b.fan_in, b.fan_out, b.cycle, b.scatter_gather)
    for org in society.organisations:
        for _ in range(_PER_ORG.get(society.size, 1)):
            for fn in plant:
                fn(org.org_id)
    return b.finish(seed)


def transactions_csv_table(money: Money) -> pa.Table:
    """The transactions as written: ISO-8601 ``Z`` times and two-decimal amounts."""
    t = money.table
    return t.set_column(1, "time", pc.strftime(t.column("time"), format="%Y-%m-%dT%H:%M:%SZ")).set_column(
        4, "amount", pc.cast(t.column("amount"), pa.decimal128(16, 2), safe=False)
    )


def write_money(money: Money, out: Path) -> None:
    """Write ``out/records/transactions.csv`` and ``out/truth/typologies.csv``."""
    rec = out / "records"
    truth = out / "truth"
    rec.mkdir(parents=True, exist_ok=True)
    truth.mkdir(parents=True, exist_ok=True)
    opts = pacsv.WriteOptions(include_header=True, quoting_style="needed")
    pacsv.write_csv(transactions_csv_table(money), rec / "transactions.csv", write_options=opts)
    typ = pa.table(
        {
            "typology_id": [ty.typology_id for ty in money.typologies],
            "kind": [ty.kind for ty in money.typologies],
            "org_id": [ty.org_id or "" for ty in money.typologies],
            "n_txns": [len(ty.txn_ids) for ty in money.typologies],
            "txn_ids": [";".join(ty.txn_ids) for ty in money.typologies],
            "accounts": [";".join(ty.accounts) for ty in money.typologies],
        }
    )
    buf = io.BytesIO()
    pacsv.write_csv(typ, buf, write_options=opts)
    (truth / "typologies.csv").write_bytes(buf.getvalue())
