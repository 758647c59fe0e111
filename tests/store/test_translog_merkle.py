"""RFC 9162 Merkle hashing and proofs: published vectors and an independent oracle.

The vectors are the 8 standard leaves of the Certificate Transparency reference
implementations and their roots, inclusion and consistency proofs, as published
in transparency-dev/merkle ``proof/verify_test.go`` (originally
google/certificate-transparency ``merkletree`` tests; leaf numbers there are 1-based).
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.core.errors import LogIntegrityError
from atalaya.store.translog.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                     "606162636465666768696a6b6c6d6e6f")]  # fmt: skip
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (0-based index, tree size, audit path)
INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (0, 1, []),
]  # fmt: skip
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip


def _tree() -> MemoryTree:
    return MemoryTree([leaf_hash(x) for x in LEAVES])


# --------------------------------------------------------------------------- oracle
# Straight from the RFC 9162 text, recursive, over the leaf *data* — no shared code.
def _sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def oracle_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return _sha(b"\x00" + d[0])
    k = _k(n)
    return _sha(b"\x01" + oracle_mth(d[:k]) + oracle_mth(d[k:]))


def oracle_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*oracle_path(m, d[:k]), oracle_mth(d[k:])]
    return [*oracle_path(m - k, d[k:]), oracle_mth(d[:k])]


def oracle_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [oracle_mth(d)]
    k = _k(n)
    if m <= k:
        return [*oracle_subproof(m, d[:k], b), oracle_mth(d[k:])]
    return [*oracle_subproof(m - k, d[k:], False), oracle_mth(d[:k])]


def oracle_proof(m: int, d: list[bytes]) -> list[bytes]:
    if m == 0 or m == len(d):
        return []
    return oracle_subproof(m, d, True)


# --------------------------------------------------------------------------- vectors
def test_empty_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert MemoryTree([]).root(0) == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_reference_roots(size: int) -> None:
    assert _tree().root(size).hex() == ROOTS[size - 1]
    assert oracle_mth(LEAVES[:size]).hex() == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_reference_inclusion_proofs(index: int, size: int, path: list[str]) -> None:
    tree = _tree()
    got = inclusion_proof(tree, index, size)
    assert [h.hex() for h in got] == path
    verify_inclusion(index, size, leaf_hash(LEAVES[index]), got, bytes.fromhex(ROOTS[size - 1]))


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_reference_consistency_proofs(old: int, new: int, path: list[str]) -> None:
    tree = _tree()
    got = consistency_proof(tree, old, new)
    assert [h.hex() for h in got] == path
    verify_consistency(old, new, got, bytes.fromhex(ROOTS[old - 1]), bytes.fromhex(ROOTS[new - 1]))


def _flip(h: bytes, bit: int = 3) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


@pytest.mark.parametrize(("index", "size", "path"), [v for v in INCLUSION if v[2]])
def test_corrupted_inclusion_proofs_fail(index: int, size: int, path: list[str]) -> None:
    """The probes of the reference tests: wrong index/size/leaf/root, extra, missing and flipped hashes."""
    proof = [bytes.fromhex(h) for h in path]
    root = bytes.fromhex(ROOTS[size - 1])
    leaf = leaf_hash(LEAVES[index])
    some = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    probes = [
        (index + 1, size, leaf, proof, root),
        (index ^ 2, size, leaf, proof, root),
        (index, size * 2, leaf, proof, root),
        (index, size // 2, leaf, proof, root),
        (index, size, leaf_hash(b"WrongLeaf"), proof, root),
        (index, size, leaf, proof, EMPTY_ROOT),
        (index, size, leaf, proof, some),
        (index, size, leaf, [*proof, root], root),
        (index, size, leaf, [root, *proof], root),
        (index, size, leaf, proof[:-1], root),
        (index, size, leaf, [proof[0], some, *proof[1:]], root),
    ]
    probes += [(index, size, leaf, [*proof[:i], _flip(p), *proof[i + 1 :]], root) for i, p in enumerate(proof)]
    if index > 0:
        probes.append((index - 1, size, leaf, proof, root))
    for i, s, lf, pr, rt in probes:
        with pytest.raises(LogIntegrityError):
            verify_inclusion(i, s, lf, pr, rt)


@pytest.mark.parametrize(("old", "new", "path"), [v for v in CONSISTENCY if v[2]])
def test_corrupted_consistency_proofs_fail(old: int, new: int, path: list[str]) -> None:
    proof = [bytes.fromhex(h) for h in path]
    r1, r2 = bytes.fromhex(ROOTS[old - 1]), bytes.fromhex(ROOTS[new - 1])
    probes = [
        (old + 1, new, proof, r1, r2),
        (old ^ 2, new, proof, r1, r2),
        (old, new * 2, proof, r1, r2),
        (old, new // 2, proof, r1, r2),
        (old, new, proof, r2, r1),
        (old, new, proof, EMPTY_ROOT, r2),
        (old, new, [], r1, r2),
        (old, new, [*proof, r1], r1, r2),
        (old, new, [*proof, r2], r1, r2),
        (old, new, [r1, *proof], r1, r2),
        (old, new, [proof[0], *proof], r1, r2),
        (old, new, proof[:-1], r1, r2),
    ]
    probes += [(old, new, [*proof[:i], _flip(p, 4), *proof[i + 1 :]], r1, r2) for i, p in enumerate(proof)]
    if old > 1:
        probes.append((old - 1, new, proof, r1, r2))
    for a, b, pr, x, y in probes:
        with pytest.raises(LogIntegrityError):
            verify_consistency(a, b, pr, x, y)


def test_trivial_consistency_cases() -> None:
    r = bytes.fromhex(ROOTS[0])
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    verify_consistency(0, 5, [], EMPTY_ROOT, r)
    verify_consistency(1, 1, [], r, r)
    with pytest.raises(LogIntegrityError, match="fork at size 1"):
        verify_consistency(1, 1, [], r, EMPTY_ROOT)
    with pytest.raises(LogIntegrityError, match="must be empty"):
        verify_consistency(1, 1, [r], r, r)
    with pytest.raises(LogIntegrityError, match="smaller"):
        verify_consistency(2, 1, [], r, r)


def test_mismatch_message_names_size_and_both_roots() -> None:
    tree = _tree()
    proof = inclusion_proof(tree, 3, 8)
    wrong = bytes(32)
    with pytest.raises(LogIntegrityError) as ei:
        verify_inclusion(3, 8, leaf_hash(LEAVES[3]), proof, wrong)
    msg = str(ei.value)
    assert "root mismatch at size 8" in msg
    assert f"checkpoint says {wrong.hex()}" in msg
    assert f"proof gives {ROOTS[7]}" in msg


# --------------------------------------------------------------------------- oracle comparison
@settings(max_examples=60, deadline=None)
@given(n=st.integers(min_value=1, max_value=300), data=st.data())
def test_matches_oracle_on_random_sizes(n: int, data: st.DataObject) -> None:
    leaves = [i.to_bytes(4, "big") + b"x" * (i % 7) for i in range(n)]
    tree = MemoryTree([leaf_hash(x) for x in leaves])
    size = data.draw(st.integers(min_value=1, max_value=n), label="size")
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    old = data.draw(st.integers(min_value=0, max_value=size), label="old")
    assert tree.root(size) == oracle_mth(leaves[:size])
    path = inclusion_proof(tree, index, size)
    assert path == oracle_path(index, leaves[:size])
    assert root_from_inclusion_proof(index, size, tree.levels[0][index], path) == tree.root(size)
    cons = consistency_proof(tree, old, size)
    assert cons == oracle_proof(old, leaves[:size])
    verify_consistency(old, size, cons, tree.root(old), tree.root(size))


def test_every_shape_up_to_40_leaves() -> None:
    leaves = [bytes([i, i * 7 % 256]) for i in range(40)]
    tree = MemoryTree([leaf_hash(x) for x in leaves])
    for size in range(1, 41):
        root = tree.root(size)
        for i in range(size):
            verify_inclusion(i, size, tree.levels[0][i], inclusion_proof(tree, i, size), root)
        for old in range(0, size + 1):
            verify_consistency(old, size, consistency_proof(tree, old, size), tree.root(old), root)


def test_proof_requests_out_of_range_are_refused() -> None:
    tree = _tree()
    with pytest.raises(LogIntegrityError, match="index 8"):
        inclusion_proof(tree, 8, 8)
    with pytest.raises(LogIntegrityError, match="from size 5 to size 3"):
        consistency_proof(tree, 5, 3)
