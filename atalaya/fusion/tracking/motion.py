"""Constant-velocity motion model (white-noise acceleration), batched over tracks.

>>> import numpy as np
>>> cv = ConstantVelocity(q=1.0)
>>> x, p = cv.predict(np.array([[0.0, 2.0, 0.0, -1.0]]), np.eye(4)[None], np.array([10.0]))
>>> x.tolist()
[[20.0, 2.0, -10.0, -1.0]]
>>> round(float(p[0, 0, 0]), 2)  # 1 + dt² + q·dt³/3
434.33
>>> cv.predict(np.zeros((0, 4)), np.zeros((0, 4, 4)), np.zeros(0))[0].shape
(0, 4)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class ConstantVelocity:
    """Nearly constant velocity in x and y with independent white-noise acceleration."""

    q: float
    """Acceleration noise spectral density, m²/s³ (per axis)."""

    def predict(self, x: F64, p: F64, dt: F64) -> tuple[F64, F64]:
        """States ``(n, 4)`` and covariances ``(n, 4, 4)`` advanced by ``dt`` seconds ``(n,)``."""
        dt = np.asarray(dt, dtype=np.float64)
        xn = x.copy()
        xn[:, 0] += x[:, 1] * dt
        xn[:, 2] += x[:, 3] * dt
        # F P Fᵀ for the block-diagonal F = diag([[1, dt], [0, 1]], [[1, dt], [0, 1]]), written out.
        pn = p.copy()
        d = dt[:, None]
        pn[:, 0, :] += d * p[:, 1, :]
        pn[:, 2, :] += d * p[:, 3, :]
        pn[:, :, 0] += d * pn[:, :, 1]
        pn[:, :, 2] += d * pn[:, :, 3]
        q3, q2, q1 = self.q * dt**3 / 3.0, self.q * dt**2 / 2.0, self.q * dt
        for a in (0, 2):
            pn[:, a, a] += q3
            pn[:, a, a + 1] += q2
            pn[:, a + 1, a] += q2
            pn[:, a + 1, a + 1] += q1
        return xn, pn

    def transition(self, dt: float) -> F64:
        """The 4×4 transition matrix for one ``dt``."""
        f = np.eye(4)
        f[0, 1] = f[2, 3] = dt
        return f

    def noise(self, dt: float) -> F64:
        """The 4×4 process noise covariance for one ``dt``."""
        b = self.q * np.array([[dt**3 / 3.0, dt**2 / 2.0], [dt**2 / 2.0, dt]])
        out = np.zeros((4, 4))
        out[:2, :2] = b
        out[2:, 2:] = b
        return out
