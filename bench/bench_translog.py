"""Transparency log benchmark: durable appends, and proofs at 10M entries against a naive peer.

Run::

    .venv/bin/python bench/bench_translog.py                # 10M-entry log (about a minute to build)
    .venv/bin/python bench/bench_translog.py --size 1000000 # smaller

What it measures:

1. Durable appends per second through :meth:`TransparencyLog.append_many`
   (canonical JSON, SHA-256, fsync per group commit) for several batch sizes.
2. Inclusion and consistency proof generation + verification on a log of
   ``--size`` entries. To save time the big log is *built directly*: the entry
   records, the offsets index and every hash level are written with numpy and
   hashlib in chunks (the leaves are real ``{"i":…,"kind":"bench"}`` records and
   the hashes are their real RFC 9162 hashes), then opened with
   :class:`LogStorage` like any other log.
3. The peer: a naive in-memory implementation that recomputes the Merkle tree
   from the leaf hashes for every proof (RFC 9162 recursion), at sizes where it
   is feasible; the ratio is peer time / stored-subtree time for the same proof.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atalaya.store.translog.log import TransparencyLog
from atalaya.store.translog.merkle import (
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from atalaya.store.translog.storage import DATA_NAME, INDEX_NAME, SYNCED_NAME, LogStorage, level_name


def bench_appends(batches: list[int], total: int) -> None:
    print("durable appends (append_many, fsync per group commit)")
    for batch in batches:
        n = min(total, max(200, batch * 20)) if batch < 100 else total
        with tempfile.TemporaryDirectory() as d, TransparencyLog.open(d, origin="bench.example/log") as log:
            entries = [
                {"kind": "overflight", "sortie": f"S{i:07d}", "territory": "MEX-SON", "minutes": i % 300}
                for i in range(n)
            ]
            t0 = time.perf_counter()
            log.append_many(entries, batch=batch)
            dt = time.perf_counter() - t0
        print(f"  batch {batch:>6}: {n:>7} entries in {dt:7.3f} s = {n / dt:>10,.0f} entries/s")


TEMPLATE = b'{"i":0000000000,"kind":"bench"}'
DIGITS_AT = 5


def build_log(directory: Path, size: int, chunk: int = 1 << 20) -> float:
    """Write a ``size``-entry log directly (records, index, all hash levels); returns seconds taken."""
    t0 = time.perf_counter()
    rec = 4 + len(TEMPLATE)
    levels: list[bytearray] = []
    with open(directory / DATA_NAME, "wb") as data, open(directory / INDEX_NAME, "wb") as idx:
        level_files = []
        for start in range(0, size, chunk):
            n = min(chunk, size - start)
            ids = np.arange(start, start + n, dtype=np.int64)
            buf = np.empty((n, rec), dtype=np.uint8)
            buf[:, :4] = np.frombuffer(len(TEMPLATE).to_bytes(4, "big"), dtype=np.uint8)
            buf[:, 4:] = np.frombuffer(TEMPLATE, dtype=np.uint8)
            for k in range(10):
                buf[:, 4 + DIGITS_AT + 9 - k] = ord("0") + (ids // 10**k) % 10
            data.write(buf.tobytes())
            idx.write((ids * rec).astype(">u8").tobytes())
            payload = buf[:, 4:].tobytes()
            width = len(TEMPLATE)
            h0 = b"".join(leaf_hash(payload[i * width : (i + 1) * width]) for i in range(n))
            # Fold this chunk upwards; a chunk is a power of two, so only the last chunk leaves odd levels.
            cur = h0
            lv = 0
            while cur:
                if len(levels) <= lv:
                    levels.append(bytearray())
                    level_files.append(open(directory / level_name(lv), "wb"))  # noqa: SIM115 - closed below
                carry = bytes(levels[lv]) + cur
                level_files[lv].write(cur)
                pairs = len(carry) // 64
                nxt = b"".join(
                    node_hash(carry[j * 64 : j * 64 + 32], carry[j * 64 + 32 : j * 64 + 64]) for j in range(pairs)
                )
                levels[lv] = bytearray(carry[pairs * 64 :])
                cur = nxt
                lv += 1
        for f in level_files:
            f.close()
    # Every hash level is complete and on disk: mark them durable (else open() would rebuild them).
    (directory / SYNCED_NAME).write_bytes(size.to_bytes(8, "big"))
    return time.perf_counter() - t0


class NaivePeer:
    """Recomputes everything from the leaf hashes for each proof (the RFC recursion, nothing stored)."""

    def __init__(self, leaf_hashes: list[bytes]) -> None:
        self.h = leaf_hashes

    def mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 1:
            return self.h[lo]
        k = 1 << ((n - 1).bit_length() - 1)
        return node_hash(self.mth(lo, lo + k), self.mth(lo + k, hi))

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = 1 << ((n - 1).bit_length() - 1)
        if m < lo + k:
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self.path(m, lo + k, hi), self.mth(lo, lo + k)]


def _time(fn: object, reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()  # type: ignore[operator]  # callables only
    return (time.perf_counter() - t0) / reps


def bench_proofs(size: int, samples: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        dt = build_log(Path(d), size)
        print(f"built a {size:,}-entry log directly in {dt:.1f} s")
        t0 = time.perf_counter()
        with LogStorage.open(d) as s:
            print(f"opened it (recovery checks of the newest entries) in {time.perf_counter() - t0:.3f} s")
            root = s.root()
            rng = random.Random(7)
            gen, ver = [], []
            for _ in range(samples):
                i = rng.randrange(size)
                t0 = time.perf_counter()
                p = s.inclusion_proof(i)
                t1 = time.perf_counter()
                verify_inclusion(i, size, s.leaf_hash(i), p, root)
                t2 = time.perf_counter()
                gen.append(t1 - t0)
                ver.append(t2 - t1)
            print(
                f"inclusion @ {size:,}: generate median {statistics.median(gen) * 1e6:.0f} µs, "
                f"verify median {statistics.median(ver) * 1e6:.0f} µs ({len(p)} hashes)"
            )
            gen, ver = [], []
            for _ in range(samples):
                old = rng.randrange(1, size)
                t0 = time.perf_counter()
                old_root = s.root(old)
                p = s.consistency_proof(old)
                t1 = time.perf_counter()
                verify_consistency(old, size, p, old_root, root)
                t2 = time.perf_counter()
                gen.append(t1 - t0)
                ver.append(t2 - t1)
            print(
                f"consistency @ {size:,}: generate (incl. old root) median {statistics.median(gen) * 1e6:.0f} µs, "
                f"verify median {statistics.median(ver) * 1e6:.0f} µs"
            )
            print("peer: naive in-memory, recomputing from leaf hashes per proof")
            for n in (1_000, 10_000, 100_000):
                if n > size:
                    break
                peer = NaivePeer([s.leaf_hash(i) for i in range(n)])
                idx = n // 3
                reps_peer = max(1, 200_000 // n)
                t_peer = _time(lambda: peer.path(idx, 0, n), reps_peer)  # noqa: B023 - evaluated immediately
                t_ours = _time(lambda: s.inclusion_proof(idx, n), 200)  # noqa: B023 - evaluated immediately
                if peer.path(idx, 0, n) != s.inclusion_proof(idx, n):
                    raise SystemExit(f"peer and log disagree at size {n}")
                print(
                    f"  inclusion @ {n:>7,}: peer {t_peer * 1e3:9.3f} ms, log {t_ours * 1e3:7.3f} ms, "
                    f"ratio {t_peer / t_ours:,.0f}x"
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--size", type=int, default=10_000_000, help="entries in the proof benchmark log")
    ap.add_argument("--appends", type=int, default=100_000, help="entries per append benchmark")
    ap.add_argument("--samples", type=int, default=1000, help="proofs timed")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    bench_appends([1, 100, 1000, 10000], args.appends)
    bench_proofs(args.size, args.samples)


if __name__ == "__main__":
    main()
