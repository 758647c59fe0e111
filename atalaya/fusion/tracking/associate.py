"""Data association: Mahalanobis gating and global nearest neighbour (GNN) assignment.

Each predicted track may take at most one detection and each detection at most
one track; the assignment minimises the sum of Mahalanobis distances, a track
left without a detection costing ``gate`` (the missed-detection hypothesis).
Pairs farther than ``gate`` are never considered. The problem splits into the
connected components of the gated pairs: a lone track–detection pair is taken
as it is (vectorised); the other pairs are solved together with
:func:`scipy.optimize.linear_sum_assignment` (cluster by cluster when they are many).

>>> import numpy as np
>>> from atalaya.fusion.tracking.kalman import isotropic
>>> x = np.array([[0.0, 0, 0, 0], [100.0, 0, 0, 0]])
>>> p = np.stack([np.diag([100.0, 1, 100, 1])] * 2)
>>> z = np.array([[95.0, 0.0], [3.0, 1.0], [5000.0, 0.0]])
>>> a = associate(x, p, z, isotropic(np.full(3, 10.0)), gate=3.0)
>>> a.track.tolist(), a.detection.tolist()
([0, 1], [1, 0])
>>> associate(x, p, z[:0], isotropic(np.zeros(0)), gate=3.0).track.size
0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from atalaya.fusion.tracking.kalman import POS, innovate, inv2, mahalanobis2

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

DENSE_PAIRS = 65_536
"""Up to this many track × detection pairs every pair is tested; beyond it a k-d tree finds candidates."""


@dataclass(frozen=True, kw_only=True)
class Assignment:
    """Track–detection pairs chosen by :func:`associate`."""

    track: I64
    """Row of the track in the predicted arrays."""
    detection: I64
    """Row of the detection in the scan."""
    distance: F64
    """Mahalanobis distance of the pair."""


def gate_pairs(x: F64, p: F64, z: F64, r: F64, *, gate: float) -> tuple[I64, I64, F64]:
    """All (track, detection) pairs within Mahalanobis distance ``gate``, with the distances."""
    n, m = x.shape[0], z.shape[0]
    if n == 0 or m == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e, np.zeros(0)
    if n * m <= DENSE_PAIRS:
        ti = np.repeat(np.arange(n), m)
        dj = np.tile(np.arange(m), n)
    else:
        # Euclidean bound of the gate: gate · sqrt(largest eigenvalue of S) ≤ gate · sqrt(trace HPHᵀ + max trace R).
        hph = p[:, POS, POS].sum(axis=1)
        rmax = float((r[:, 0, 0] + r[:, 1, 1]).max())
        radius = gate * np.sqrt(hph + rmax)
        tree = cKDTree(z)
        lists = tree.query_ball_point(x[:, POS], radius)
        counts = np.fromiter((len(v) for v in lists), dtype=np.int64, count=n)
        ti = np.repeat(np.arange(n), counts)
        dj = np.fromiter((j for v in lists for j in v), dtype=np.int64, count=int(counts.sum()))
    nu, s = innovate(x[ti], p[ti], z[dj], r[dj])
    s_inv, _ = inv2(s)
    d = np.sqrt(mahalanobis2(nu, s_inv))
    keep = d <= gate
    return ti[keep], dj[keep], d[keep]


def associate(x: F64, p: F64, z: F64, r: F64, *, gate: float) -> Assignment:
    """GNN assignment of detections ``z`` (covariances ``r``) to predicted tracks ``x``, ``p``."""
    ti, dj, d = gate_pairs(x, p, z, r, gate=gate)
    if ti.size == 0:
        e = np.zeros(0, dtype=np.int64)
        return Assignment(track=e, detection=e, distance=np.zeros(0))
    n, m = x.shape[0], z.shape[0]
    lone = (np.bincount(ti, minlength=n)[ti] == 1) & (np.bincount(dj, minlength=m)[dj] == 1)
    out_t, out_d, out_c = [ti[lone]], [dj[lone]], [d[lone]]
    rest = np.flatnonzero(~lone)
    if rest.size:
        if np.unique(ti[rest]).size * np.unique(dj[rest]).size <= DENSE_PAIRS:
            groups = [rest]  # one joint problem: the optimum of a block-diagonal problem is the blocks' optima
        else:
            graph = coo_matrix((np.ones(rest.size), (ti[rest], n + dj[rest])), shape=(n + m, n + m))
            _, label = connected_components(graph, directed=False)
            comp = label[ti[rest]]
            order = rest[np.argsort(comp, kind="stable")]
            groups = np.split(order, np.flatnonzero(np.diff(np.sort(comp, kind="stable"))) + 1)
        for grp in groups:
            tr, tinv = np.unique(ti[grp], return_inverse=True)
            de, dinv = np.unique(dj[grp], return_inverse=True)
            k = tr.size
            cost = np.full((k, de.size + k), np.inf)
            cost[tinv, dinv] = d[grp]
            cost[np.arange(k), de.size + np.arange(k)] = gate
            rows, cols = linear_sum_assignment(cost)
            hit = cols < de.size
            rows, cols = rows[hit], cols[hit]
            out_t.append(tr[rows])
            out_d.append(de[cols])
            out_c.append(cost[rows, cols])
    track = np.concatenate(out_t)
    order = np.argsort(track, kind="stable")
    return Assignment(track=track[order], detection=np.concatenate(out_d)[order], distance=np.concatenate(out_c)[order])
