"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing and proofs.

Hashing (RFC 9162 §2.1.1)::

    MTH({})      = SHA-256()
    MTH({d(0)})  = SHA-256(0x00 || d(0))                       leaf hash
    MTH(D[n])    = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))  k = largest power of two < n

Proofs are generated from a :class:`HashSource`, anything that returns the hash
of a *complete, aligned* subtree: ``subtree(level, index)`` is the root of
leaves ``[index * 2**level, (index + 1) * 2**level)``. Every subtree the RFC
recursion needs is either such a complete subtree or a right edge made of at
most ``log2(n)`` of them, so a proof costs O(log n) hash reads.

Verification follows the RFC algorithms literally (§2.1.3.2 inclusion,
§2.1.4.2 consistency) and raises :class:`LogIntegrityError` saying what failed.

>>> h = [leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")]
>>> tree = MemoryTree(h)
>>> root = tree.root(3)
>>> proof = inclusion_proof(tree, 2, 3)
>>> verify_inclusion(2, 3, h[2], proof, root)
>>> verify_consistency(2, 3, consistency_proof(tree, 2, 3), tree.root(2), root)
>>> root_hash(MemoryTree([]), 0).hex()[:16]
'e3b0c44298fc1c14'
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from atalaya.core.errors import LogIntegrityError

HASH_SIZE = 32
"""Bytes in a SHA-256 hash."""
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH of the empty tree: SHA-256 of the empty string."""

_sha256 = hashlib.sha256


def leaf_hash(leaf: bytes) -> bytes:
    """``SHA-256(0x00 || leaf)``.

    >>> leaf_hash(b"").hex()[:16]
    '6e340b9cffb37a98'
    """
    return _sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``).

    >>> [split_point(n) for n in (2, 3, 4, 5, 8, 9)]
    [1, 2, 2, 4, 4, 8]
    """
    return 1 << ((n - 1).bit_length() - 1)


class HashSource(Protocol):
    """Where proofs read complete-subtree hashes from."""

    def subtree(self, level: int, index: int) -> bytes:
        """Root of leaves ``[index << level, (index + 1) << level)``; the range must be complete."""
        ...


class MemoryTree:
    """All complete-subtree hashes of a list of leaf hashes, held in memory (small trees, tests).

    >>> MemoryTree([leaf_hash(b"x")]).root(1) == leaf_hash(b"x")
    True
    """

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self.levels: list[list[bytes]] = [list(leaf_hashes)]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            self.levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self.levels[0])

    def subtree(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        """Root of the first ``size`` leaves (default all)."""
        return root_hash(self, self.size if size is None else size)


def range_hash(src: HashSource, lo: int, hi: int) -> bytes:
    """MTH of leaves ``[lo, hi)`` where ``lo`` is aligned to the largest power of two in ``hi - lo``.

    That holds for every range the RFC 9162 recursion visits: the range splits
    into complete aligned subtrees following the binary digits of ``hi - lo``,
    folded from the right.
    """
    n = hi - lo
    if n <= 0:
        return EMPTY_ROOT
    parts: list[bytes] = []
    pos = lo
    for level in range(n.bit_length() - 1, -1, -1):
        if n >> level & 1:
            parts.append(src.subtree(level, pos >> level))
            pos += 1 << level
    acc = parts[-1]
    for h in reversed(parts[:-1]):
        acc = node_hash(h, acc)
    return acc


def root_hash(src: HashSource, size: int) -> bytes:
    """MTH of the first ``size`` leaves."""
    return range_hash(src, 0, size)


def inclusion_proof(src: HashSource, index: int, size: int) -> list[bytes]:
    """Audit path PATH(index, D[0:size]) of RFC 9162 §2.1.3.1 (leaf-side sibling first)."""
    if not 0 <= index < size:
        raise LogIntegrityError(
            f"no inclusion proof for index {index} in a tree of size {size}",
            hint="the index must be smaller than the tree size",
        )
    out: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            out.append(range_hash(src, lo + k, hi))
            hi = lo + k
        else:
            out.append(range_hash(src, lo, lo + k))
            lo = lo + k
    out.reverse()
    return out


def consistency_proof(src: HashSource, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) of RFC 9162 §2.1.4.1 (empty when a size is 0 or they are equal)."""
    if not 0 <= old_size <= new_size:
        raise LogIntegrityError(
            f"no consistency proof from size {old_size} to size {new_size}",
            hint="the old size must not exceed the new size",
        )
    if old_size == 0 or old_size == new_size:
        return []
    out: list[bytes] = []
    lo, hi = 0, new_size
    m = old_size
    complete = True  # the "b" flag of SUBPROOF
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                out.append(range_hash(src, lo, hi))
            break
        k = split_point(n)
        if m <= k:
            out.append(range_hash(src, lo + k, hi))
            hi = lo + k
        else:
            out.append(range_hash(src, lo, lo + k))
            lo += k
            m -= k
            complete = False
    out.reverse()
    return out


def _check_hash(name: str, h: bytes) -> None:
    if len(h) != HASH_SIZE:
        raise LogIntegrityError(f"{name} is {len(h)} bytes, expected {HASH_SIZE}", hint="hashes are SHA-256")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 §2.1.3.2 steps 1–4)."""
    if not 0 <= index < size:
        raise LogIntegrityError(f"inclusion proof: index {index} is outside a tree of size {size}")
    _check_hash("leaf hash", leaf)
    fn, sn = index, size - 1
    r = leaf
    for i, p in enumerate(proof):
        _check_hash(f"inclusion proof[{i}]", p)
        if sn == 0:
            raise LogIntegrityError(
                f"inclusion proof for index {index} at size {size} is too long ({len(proof)} hashes)"
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise LogIntegrityError(f"inclusion proof for index {index} at size {size} is too short ({len(proof)} hashes)")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf`` (a leaf *hash*) is at ``index`` of the tree of ``size`` with ``root``."""
    _check_hash("root", root)
    got = root_from_inclusion_proof(index, size, leaf, proof)
    if got != root:
        raise LogIntegrityError(
            f"root mismatch at size {size} for index {index}: checkpoint says {root.hex()}, proof gives {got.hex()}",
            hint="the entry, its index or the proof was altered, or it belongs to another log",
        )


def verify_consistency(old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes) -> None:
    """Check that the tree (``new_size``, ``new_root``) extends (``old_size``, ``old_root``) (RFC 9162 §2.1.4.2)."""
    _check_hash("old root", old_root)
    _check_hash("new root", new_root)
    if old_size < 0 or new_size < old_size:
        raise LogIntegrityError(
            f"consistency: new size {new_size} is smaller than old size {old_size}",
            hint="a log never shrinks; a smaller later tree is a rollback",
        )
    if old_size == new_size:
        if proof:
            raise LogIntegrityError(f"consistency proof between equal sizes {old_size} must be empty")
        if old_root != new_root:
            raise LogIntegrityError(
                f"fork at size {old_size}: root {old_root.hex()} and root {new_root.hex()} both claim it",
                hint="the log has shown two different histories for the same size",
            )
        return
    if old_size == 0:
        if proof:
            raise LogIntegrityError("consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise LogIntegrityError(f"consistency proof from size {old_size} to {new_size} is empty")
    for i, p in enumerate(proof):
        _check_hash(f"consistency proof[{i}]", p)
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise LogIntegrityError(
                f"consistency proof from size {old_size} to {new_size} is too long ({len(proof)} hashes)"
            )
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise LogIntegrityError(
            f"consistency proof from size {old_size} to {new_size} is too short ({len(proof)} hashes)"
        )
    if fr != old_root:
        raise LogIntegrityError(
            f"root mismatch at size {old_size}: checkpoint says {old_root.hex()}, proof gives {fr.hex()}",
            hint="the log rewrote history before the old size (a fork), or the proof is for another log",
        )
    if sr != new_root:
        raise LogIntegrityError(
            f"root mismatch at size {new_size}: checkpoint says {new_root.hex()}, proof gives {sr.hex()}",
            hint="the new checkpoint does not extend the old one (a fork), or the proof was altered",
        )
