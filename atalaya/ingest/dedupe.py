"""Bulk de-duplication of 64-bit id keys: which rows of a unit repeat an earlier row or an existing id.

One sort over the unit's keys and the partition's existing keys finds the
duplicated values (usually none); only rows holding such values get the slower
exact treatment. First occurrence within the unit wins; a key already in the
lake drops every occurrence in the unit.

>>> keep_mask(np.array([5, 7, 5, 9], dtype=np.uint64), np.array([9], dtype=np.uint64)).tolist()
[True, True, False, False]
>>> keep_mask(np.array([], dtype=np.uint64), np.array([], dtype=np.uint64)).tolist()
[]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def keep_mask(keys: npt.NDArray[np.uint64], existing: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
    """True for rows to keep: first occurrence of a key within ``keys`` and not in ``existing``."""
    keys = np.asarray(keys, dtype=np.uint64)
    existing = np.asarray(existing, dtype=np.uint64)
    keep = np.ones(len(keys), dtype=bool)
    if keys.size == 0:
        return keep
    srt = np.sort(keys)
    rep = srt[1:][srt[1:] == srt[:-1]]
    ex = np.sort(existing) if existing.size else existing
    if ex.size:
        p = np.searchsorted(ex, srt)
        p[p >= len(ex)] = 0
        rep = np.concatenate([rep, srt[ex[p] == srt]])
    if rep.size == 0:
        return keep
    dupvals = np.unique(rep)
    pos = np.searchsorted(dupvals, keys)
    pos[pos >= len(dupvals)] = 0
    cand = np.flatnonzero(dupvals[pos] == keys)
    if ex.size:
        p = np.searchsorted(ex, keys[cand])
        p[p >= len(ex)] = 0
        in_existing = ex[p] == keys[cand]
    else:
        in_existing = np.zeros(len(cand), dtype=bool)
    keep[cand[in_existing]] = False
    rest = cand[~in_existing]
    if rest.size:
        _, first = np.unique(keys[rest], return_index=True)
        keep[rest] = False
        keep[rest[first]] = True
    return keep
