"""Linear Kalman update for position measurements ``z = H x + v``, ``H`` picking ``x`` and ``y``, batched.

>>> import numpy as np
>>> x = np.array([[0.0, 1.0, 0.0, 0.0]])
>>> p = np.diag([100.0, 1.0, 100.0, 1.0])[None]
>>> r = isotropic(np.array([10.0]))
>>> xu, pu = update(x, p, np.array([[10.0, 0.0]]), r)
>>> round(float(xu[0, 0]), 3), round(float(pu[0, 0, 0]), 3)
(5.0, 50.0)
>>> update(np.zeros((0, 4)), np.zeros((0, 4, 4)), np.zeros((0, 2)), np.zeros((0, 2, 2)))[0].shape
(0, 4)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

POS = np.array([0, 2])
"""Indices of the position components in the state ``[x, vx, y, vy]``."""


def isotropic(sigma_m: F64) -> F64:
    """Measurement covariances ``(m, 2, 2)`` of circular errors with 1-sigma ``sigma_m``."""
    s2 = np.asarray(sigma_m, dtype=np.float64) ** 2
    r = np.zeros((s2.size, 2, 2))
    r[:, 0, 0] = s2
    r[:, 1, 1] = s2
    return r


def innovate(x: F64, p: F64, z: F64, r: F64) -> tuple[F64, F64]:
    """Innovations ``z - H x`` ``(n, 2)`` and their covariances ``H P Hᵀ + R`` ``(n, 2, 2)`` of paired rows."""
    nu = z - x[:, POS]
    s = p[:, POS[:, None], POS[None, :]] + r
    return nu, s


def inv2(s: F64) -> tuple[F64, F64]:
    """Inverses and determinants of a stack of 2×2 matrices."""
    det = s[:, 0, 0] * s[:, 1, 1] - s[:, 0, 1] * s[:, 1, 0]
    inv = np.empty_like(s)
    inv[:, 0, 0] = s[:, 1, 1] / det
    inv[:, 1, 1] = s[:, 0, 0] / det
    inv[:, 0, 1] = -s[:, 0, 1] / det
    inv[:, 1, 0] = -s[:, 1, 0] / det
    return inv, det


def mahalanobis2(nu: F64, s_inv: F64) -> F64:
    """Squared Mahalanobis distances ``νᵀ S⁻¹ ν`` of paired rows."""
    return np.asarray(np.einsum("ni,nij,nj->n", nu, s_inv, nu), dtype=np.float64)


def update(x: F64, p: F64, z: F64, r: F64) -> tuple[F64, F64]:
    """Posterior states and covariances of paired rows (Joseph-free form, symmetrised)."""
    nu, s = innovate(x, p, z, r)
    s_inv, _ = inv2(s)
    pht = p[:, :, POS]  # P Hᵀ, (n, 4, 2)
    k = np.einsum("nij,njk->nik", pht, s_inv)
    xu = x + np.einsum("nij,nj->ni", k, nu)
    pu = p - np.einsum("nij,nkj->nik", k, pht)
    pu = 0.5 * (pu + np.swapaxes(pu, 1, 2))
    return xu, pu
