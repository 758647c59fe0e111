"""Observation ids must never change between versions: re-ingest and de-duplication compare them with the lake."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from atalaya.core import ids
from atalaya.core.ids import hash_columns, hash_strings, mix64

X = np.array(
    [0x500320D4F8F2A545, 0x72D7E6DE5793354A, 0x6349AB2FCA057CB1, 0x1CD396D5EAB513A1, 0x266BD94C871BA8A2],
    dtype=np.uint64,
)
STRINGS = ["trk-1", "", None, "MQ9-01", "x" * 30, "ü" * 200, "y" * 300]


def _hex(a: np.ndarray) -> list[str]:
    return [hex(v) for v in a.tolist()]


def test_pinned_values() -> None:
    assert _hex(mix64(X)) == [
        "0xbf65a9dfa6b7b32f",
        "0x21da54252d639aeb",
        "0x1f230699e89aa877",
        "0x9e2d22040f4d0155",
        "0xb3634c22449808e1",
    ]
    a, b = hash_columns([X, X[::-1].copy(), np.arange(5, dtype=np.uint64)])
    assert _hex(a) == [
        "0xa36fef85198acd8d",
        "0x56b172a959b19a5f",
        "0x25ced62512a05caa",
        "0x5aca933c321fafad",
        "0x3e64c153e4331d68",
    ]
    assert _hex(b) == [
        "0xf069d51d50c3257f",
        "0xc17eb85975773377",
        "0xdf1bfc65c8c00193",
        "0xe77f64f92b0d03c9",
        "0x166c040ae3e5323e",
    ]
    assert _hex(hash_strings(STRINGS)) == [
        "0x90ae7d6240dcbcbf",
        "0xa706dd2f4d197e6f",
        "0x6e756c6c6e756c6c",
        "0x5a640250f8dac1c9",
        "0x8e31e5fcdf80285b",
        "0x3832a2c6f5eaa4c7",
        "0x731fa0267856292b",
    ]
    assert _hex(hash_strings(STRINGS, seed=3))[0] == "0x36cc8ce690bcc5f6"


def _mix64_reference(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def test_chunked_kernels_match_whole_array_reference() -> None:
    """Inputs longer than one cache-sized step, strings of mixed lengths at the step boundaries."""
    rng = np.random.default_rng(3)
    n = 2 * ids._CHUNK + 17
    cols = [rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True) for _ in range(3)]
    assert np.array_equal(mix64(cols[0]), _mix64_reference(cols[0]))
    a, b = hash_columns(cols)
    for i in (0, ids._CHUNK - 1, ids._CHUNK, n - 1):
        ai, bi = hash_columns([c[i : i + 1] for c in cols])
        assert (a[i], b[i]) == (ai[0], bi[0])
    words = ["".join(rng.choice(list("abcé-0"), int(k))) for k in rng.integers(0, 12, n)]
    words[ids._CHUNK - 1] = "x" * 24
    words[ids._CHUNK] = ""
    arr = pa.array(words)
    h = hash_strings(arr)
    for i in (0, 1, ids._CHUNK - 1, ids._CHUNK, n - 1):
        assert h[i] == hash_strings([words[i]])[0]
    assert np.array_equal(h[5:9], hash_strings(arr.slice(5, 4)))


def test_single_value_and_coded_columns_give_the_same_lanes_as_spelt_out() -> None:
    rng = np.random.default_rng(5)
    n = 2 * ids._CHUNK + 11
    table = rng.integers(0, 2**64 - 1, 7, dtype=np.uint64, endpoint=True)
    codes = rng.integers(0, 7, n).astype(np.int32)
    col = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    const = np.uint64(0x1234_5678_9ABC_DEF0)
    spelt = hash_columns([np.full(n, const), table[codes], col, np.full(n, const), table[codes]])
    given = hash_columns([const, ids.Coded(table, codes), col, const, ids.Coded(table, codes)])
    assert np.array_equal(spelt[0], given[0]) and np.array_equal(spelt[1], given[1])
    words = pa.array(["b", None, "a", "b", "", None]).dictionary_encode()
    coded = ids.hash_string_codes(words)
    assert np.array_equal(coded.table[coded.codes], hash_strings(["b", None, "a", "b", "", None]))
