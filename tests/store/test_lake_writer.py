"""The lake writer: rows split by day in arrival order, held per partition into large row groups, committed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from atalaya.model.observation import SCHEMA
from atalaya.store.lake import ROW_GROUP_ROWS, Lake

US_PER_DAY = 86_400_000_000
DAY0 = 19_783  # 2024-03-01


def _table(days: np.ndarray, start: int) -> pa.Table:
    n = len(days)
    t_us = days.astype(np.int64) * US_PER_DAY + np.arange(n)
    ids = np.zeros((n, 2), dtype=">u8")
    ids[:, 0] = start + np.arange(n)
    const = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array(["x"]))
    cols: dict[str, pa.Array] = {
        "obs_id": pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), n, [None, pa.py_buffer(ids.tobytes())]),
        "time": pa.array(t_us).cast(pa.timestamp("us", tz="UTC")),
        "lon": pa.array(np.zeros(n)),
        "lat": pa.array(np.zeros(n)),
        "src_rec": pa.array(start + np.arange(n, dtype=np.int64)),
    }
    for f in SCHEMA:
        if f.name not in cols:
            cols[f.name] = const if pa.types.is_dictionary(f.type) and not f.nullable else pa.nulls(n, f.type)
    return pa.Table.from_arrays([cols[f.name] for f in SCHEMA], schema=SCHEMA)


def test_rows_keep_arrival_order_per_day_and_small_parts_are_coalesced(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    w = lake.writer("ab" * 16)
    rng = np.random.default_rng(5)
    start = 0
    sent: dict[int, list[int]] = {}
    for order in ("sorted", "random", "sorted", "random", "pieces", "sorted"):
        n = 5_000
        days = DAY0 + rng.integers(0, 3, n)
        if order == "sorted":
            days = np.sort(days)
        elif order == "pieces":  # two time-ordered pieces one after the other: each day in two runs
            days = np.concatenate([np.sort(days[: n // 2]), np.sort(days[n // 2 :])])
        for d in np.unique(days):
            sent.setdefault(int(d), []).extend((start + np.flatnonzero(days == d)).tolist())
        w.write(_table(days, start), days, "src")
        start += n
    files = w.commit({"run_id": "r"})
    assert len(files) == 3
    for d, recs in sent.items():
        day = str(np.datetime64(d, "D"))
        path = lake.obs_dir / f"day={day}" / "source=src" / f"part-{'ab' * 16}-0.parquet"
        meta = pq.ParquetFile(path).metadata
        assert meta.num_row_groups == 1  # six small parts, one row group
        assert pq.read_table(path).column("src_rec").to_pylist() == recs
    assert lake.committed_units()["ab" * 16]["rows"] == start


def test_held_rows_are_bounded(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    w = lake.writer("cd" * 16)
    days = DAY0 + np.arange(40)
    per_day = ROW_GROUP_ROWS // 20
    for k in range(3):
        batch_days = np.repeat(days, per_day)
        w.write(_table(batch_days, k * len(batch_days)), batch_days, "src")
        w._join()  # let the background writers catch up (they restart on the next write), then look at what they hold
        assert len(w._shards) == w.SHARDS
        for shard in w._shards:
            assert 0 < sum(shard.pending_rows.values()) <= w.PENDING_ROWS
    w.commit({"run_id": "r"})
    total = sum(pq.ParquetFile(p).metadata.num_rows for p in lake.files())
    assert total == 3 * 40 * per_day


def test_days_a_batch_no_longer_has_are_written_early(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    w = lake.writer("ef" * 16)
    start = 0
    for first in range(0, 8, 2):  # time-ordered batches: days 0-2, 2-4, 4-6, 6-8 (each day in at most two)
        days = DAY0 + np.repeat(np.arange(first, first + 3), 1_000)
        w.write(_table(days, start), days, "src")
        start += len(days)
    w._join()
    held = {key for shard in w._shards for key in shard.pending}
    assert held == {(str(np.datetime64(DAY0 + d, "D")), "src") for d in (6, 7, 8)}
    w.commit({"run_id": "r"})
    for p in lake.files():
        assert pq.ParquetFile(p).metadata.num_row_groups == 1
