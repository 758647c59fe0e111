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


def test_rewriting_a_partition_drops_rows_a_row_group_at_a_time(tmp_path: Path) -> None:
    """The de-duplication rewrite keeps order across row groups and never holds the whole partition."""
    lake = Lake(tmp_path / "lake")
    w = lake.writer("aa" * 16)
    n = 3 * ROW_GROUP_ROWS + 17
    days = np.full(n, DAY0)
    w.write(_table(days, 0), days, "src")
    w.close_files()
    key = (str(np.datetime64(DAY0, "D")), "src")
    keep = np.zeros(n, dtype=bool)
    keep[::1000] = True  # a repeat-heavy partition: one row in a thousand survives
    dropped = w.rewrite_partition(key, keep)
    assert dropped == n - int(keep.sum())
    files = w.commit({"run_id": "r"})
    assert pq.read_table(lake.root / files[0]).column("src_rec").to_pylist() == np.flatnonzero(keep).tolist()
    assert lake.committed_units()["aa" * 16]["rows"] == int(keep.sum())


_PEAK = """
import sys, numpy as np, pyarrow as pa
sys.path.insert(0, {tests!r})
from test_lake_writer import _table, DAY0
from atalaya.store.lake import ROW_GROUP_ROWS, Lake
w = Lake({root!r}).writer("bb" * 16)
for i in range({chunks}):
    days = np.full(ROW_GROUP_ROWS, DAY0)
    w.write(_table(days, i * ROW_GROUP_ROWS), days, "src")
w.close_files()
pool = pa.default_memory_pool()
whole = {chunks} * _table(np.full(ROW_GROUP_ROWS, DAY0), 0).nbytes  # the partition, were it all in memory
keep = np.zeros({chunks} * ROW_GROUP_ROWS, dtype=bool)
keep[0] = True
w.rewrite_partition((str(np.datetime64(DAY0, "D")), "src"), keep)
print(whole, pool.max_memory())
"""


def test_rewrite_memory_is_one_row_group_not_the_partition(tmp_path: Path) -> None:
    """A partition of 12 row groups of repeats: the rewrite never holds more than a few of them (it held all)."""
    import subprocess
    import sys

    code = _PEAK.format(tests=str(Path(__file__).parent), root=str(tmp_path / "lake"), chunks=12)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    whole, peak = (int(v) for v in out.stdout.split())
    assert peak < whole // 2, (whole, peak)
