"""Durable log storage: restarts, torn writes, rebuilt hashes, corruption, one writer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from atalaya.core.errors import LogIntegrityError, StoreError, ValidationError
from atalaya.store.translog.entries import canonical_json
from atalaya.store.translog.log import TransparencyLog
from atalaya.store.translog.merkle import MemoryTree, leaf_hash, verify_consistency, verify_inclusion
from atalaya.store.translog.storage import DATA_NAME, INDEX_NAME, SYNCED_NAME, LogStorage, level_name


def leaves(n: int, start: int = 0) -> list[bytes]:
    return [f'{{"i":{i},"kind":"test"}}'.encode() for i in range(start, start + n)]


def reference(data: list[bytes]) -> MemoryTree:
    return MemoryTree([leaf_hash(x) for x in data])


def test_append_read_and_prove_match_in_memory_tree(tmp_path: Path) -> None:
    data = leaves(1000)
    with LogStorage.open(tmp_path) as s:
        assert s.append_leaves(data[:1]) == range(0, 1)
        assert s.append_leaves(data[1:600]) == range(1, 600)
        assert s.append_leaves(data[600:]) == range(600, 1000)
        ref = reference(data)
        for size in (1, 2, 3, 7, 512, 513, 999, 1000):
            assert s.root(size) == ref.root(size)
        for i in (0, 1, 511, 512, 998, 999):
            verify_inclusion(i, 1000, leaf_hash(data[i]), s.inclusion_proof(i), ref.root())
        for old in (0, 1, 5, 512, 700, 1000):
            verify_consistency(old, 1000, s.consistency_proof(old), ref.root(old), ref.root())
        assert s.leaf(777) == data[777]
        assert list(s.iter_leaves(10, 20)) == data[10:20]
        s.verify()


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    data = leaves(300)
    with LogStorage.open(tmp_path) as s:
        s.append_leaves(data[:150])
    with LogStorage.open(tmp_path) as s:
        assert s.size == 150
        s.append_leaves(data[150:])
    with LogStorage.open(tmp_path) as s:
        assert s.size == 300
        assert s.root() == reference(data).root()
        s.verify()


def test_empty_leaf_and_empty_batch(tmp_path: Path) -> None:
    with LogStorage.open(tmp_path) as s:
        assert s.append_leaves([]) == range(0, 0)
        s.append_leaves([b""])
        assert s.leaf(0) == b""
        assert s.root().hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"


def test_torn_record_is_truncated_on_open(tmp_path: Path) -> None:
    data = leaves(50)
    with LogStorage.open(tmp_path) as s:
        s.append_leaves(data)
    dat = tmp_path / DATA_NAME
    full = dat.stat().st_size
    # A crash mid-way through the last record: its index slot and hashes were never written…
    os.truncate(dat, full - 5)
    os.truncate(tmp_path / INDEX_NAME, 49 * 8)
    os.truncate(tmp_path / level_name(0), 49 * 32)
    with LogStorage.open(tmp_path) as s:
        assert s.size == 49
        assert s.root() == reference(data[:49]).root()
        s.verify()
        s.append_leaves(data[49:])
        assert s.root() == reference(data).root()


def test_torn_index_slot_and_record_without_index(tmp_path: Path) -> None:
    data = leaves(20)
    with LogStorage.open(tmp_path) as s:
        s.append_leaves(data)
    # The data of a new batch reached disk, its index only partly, its hashes not at all.
    with open(tmp_path / DATA_NAME, "ab") as fh:
        fh.write(len(b"extra").to_bytes(4, "big") + b"extra")
    with open(tmp_path / INDEX_NAME, "ab") as fh:
        fh.write(b"\x00\x00\x01")
    with LogStorage.open(tmp_path) as s:
        assert s.size == 20
        assert (tmp_path / INDEX_NAME).stat().st_size == 20 * 8
        s.verify()


def test_record_length_beyond_end_of_file_is_dropped(tmp_path: Path) -> None:
    data = leaves(8)
    with LogStorage.open(tmp_path) as s:
        s.append_leaves(data)
    size = (tmp_path / DATA_NAME).stat().st_size
    with open(tmp_path / DATA_NAME, "ab") as fh:
        fh.write((1000).to_bytes(4, "big") + b"short")
    with open(tmp_path / INDEX_NAME, "ab") as fh:
        fh.write(size.to_bytes(8, "big"))
    with LogStorage.open(tmp_path) as s:
        assert s.size == 8
        assert (tmp_path / DATA_NAME).stat().st_size == size


def test_missing_hashes_are_rebuilt_from_leaves(tmp_path: Path) -> None:
    data = leaves(100)
    with LogStorage.open(tmp_path) as s:
        s.append_leaves(data)
    # Crash after the index was synced but before any hash level was written.
    for lv in range(8):
        p = tmp_path / level_name(lv)
        if p.exists():
            os.truncate(p, (p.stat().st_size // 32 - 1) * 32 if lv == 0 else 0)
    with LogStorage.open(tmp_path) as s:
        assert s.size == 100
        assert s.root() == reference(data).root()
        s.verify()


def test_hash_levels_running_ahead_are_trimmed(tmp_path: Path) -> None:
    data = leaves(10)
    with LogStorage.open(tmp_path) as s:
        s.append_leaves(data)
    with open(tmp_path / level_name(0), "ab") as fh:
        fh.write(b"\x11" * 32 + b"\x22" * 7)
    with LogStorage.open(tmp_path) as s:
        assert s.size == 10
        assert (tmp_path / level_name(0)).stat().st_size == 10 * 32
        s.verify()


def test_stale_hashes_past_the_durable_watermark_are_rebuilt(tmp_path: Path) -> None:
    """After a crash, level files past ``levels.synced`` may hold anything: they are rebuilt, not trusted."""
    data = leaves(40)
    with LogStorage.open(tmp_path) as s:
        s.append_leaves(data)
    (tmp_path / SYNCED_NAME).write_bytes((24).to_bytes(8, "big"))
    for lv in range(3):
        p = tmp_path / level_name(lv)
        raw = bytearray(p.read_bytes())
        at = (30 >> lv) * 32
        raw[at : at + 32] = b"\x5a" * 32
        p.write_bytes(bytes(raw))
    with LogStorage.open(tmp_path) as s:
        assert s.size == 40
        assert s.root() == reference(data).root()
        s.verify()
    assert (tmp_path / SYNCED_NAME).read_bytes() == (40).to_bytes(8, "big")


def test_edited_entry_is_detected_on_open(tmp_path: Path) -> None:
    data = leaves(30)
    with LogStorage.open(tmp_path) as s:
        s.append_leaves(data)
    raw = (tmp_path / DATA_NAME).read_bytes()
    at = raw.index(b'"i":17,')
    (tmp_path / DATA_NAME).write_bytes(raw[:at] + b'"i":71,' + raw[at + 7 :])
    with pytest.raises(LogIntegrityError, match="stored hash of entry 17 does not match recomputation"):
        LogStorage.open(tmp_path)


def test_edited_node_hash_is_detected(tmp_path: Path) -> None:
    with LogStorage.open(tmp_path) as s:
        s.append_leaves(leaves(64))
    p = tmp_path / level_name(3)
    raw = bytearray(p.read_bytes())
    raw[32 * 5] ^= 1
    p.write_bytes(bytes(raw))
    with pytest.raises(LogIntegrityError, match="node 5 of level 3"):
        LogStorage.open(tmp_path)


def test_full_verify_finds_old_corruption_beyond_the_tail_check(tmp_path: Path) -> None:
    data = leaves(2000)
    with LogStorage.open(tmp_path) as s:
        s.append_leaves(data)
    raw = (tmp_path / DATA_NAME).read_bytes()
    at = raw.index(b'"i":3,')
    (tmp_path / DATA_NAME).write_bytes(raw[:at] + b'"i":8,' + raw[at + 6 :])
    # Entry 3 is older than the tail that open() re-hashes, so only the full verify sees it.
    with LogStorage.open(tmp_path) as s, pytest.raises(LogIntegrityError, match="entry 3"):
        s.verify()


def test_one_writer_per_log(tmp_path: Path) -> None:
    with LogStorage.open(tmp_path) as s:
        s.append_leaves(leaves(3))
        with pytest.raises(StoreError, match="another process"):
            LogStorage.open(tmp_path)
        with LogStorage.open(tmp_path, readonly=True) as r:
            assert r.size == 3
            assert r.root() == s.root()
            with pytest.raises(StoreError, match="read-only"):
                r.append_leaves([b"x"])
    with LogStorage.open(tmp_path) as s:
        assert s.size == 3


def test_readonly_sees_only_fully_written_prefix(tmp_path: Path) -> None:
    data = leaves(16)
    with LogStorage.open(tmp_path) as s:
        s.append_leaves(data)
    # A writer in the middle of a batch: level 1 has not caught up with the last two leaves.
    os.truncate(tmp_path / level_name(1), 7 * 32)
    with LogStorage.open(tmp_path, readonly=True) as r:
        assert r.size == 15
        assert r.root() == reference(data[:15]).root()


def test_log_entries_are_canonical_json(tmp_path: Path) -> None:
    with TransparencyLog.open(tmp_path, origin="t.example/log") as log:
        i = log.append({"kind": "overflight", "z": 1, "a": "México"})
        assert log.get_bytes(i) == '{"a":"México","kind":"overflight","z":1}'.encode()
        assert log.get(i) == {"kind": "overflight", "z": 1, "a": "México"}
        r = log.append_many(({"kind": "k", "n": n} for n in range(10)), batch=3)
        assert r == range(1, 11)
        assert log.get(10) == {"kind": "k", "n": 9}
        for bad in ({"n": 1}, {"kind": ""}, {"kind": "x", "v": float("nan")}, {"kind": "x", "v": {1, 2}}):
            with pytest.raises(ValidationError):
                log.append(bad)
        assert log.size == 11


def test_canonical_json_sorts_nested_keys() -> None:
    assert canonical_json({"kind": "a", "o": {"b": 1, "a": [2, {"d": 1, "c": 0}]}}) == (
        b'{"kind":"a","o":{"a":[2,{"c":0,"d":1}],"b":1}}'
    )
