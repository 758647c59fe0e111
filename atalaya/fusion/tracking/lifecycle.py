"""Track life cycle: M-of-N initiation and deletion after consecutive misses or a coasting time.

A new track is *tentative*; it is confirmed once it has ``m`` detections within
its first ``n`` scans, and dropped if it reaches ``n`` scans without them. A
confirmed track is deleted after ``max_misses`` consecutive scans without a
detection, or when ``max_coast_s`` seconds have passed since its last one.

>>> import numpy as np
>>> rule = MOfN(m=2, n=3, max_misses=3, max_coast_s=120.0)
>>> rule.confirm(hits=np.array([1, 2, 1]), age=np.array([1, 2, 3])).tolist()
[False, True, False]
>>> rule.expire(
...     confirmed=np.array([False, True, True]), hits=np.array([1, 5, 5]), age=np.array([3, 9, 9]),
...     misses=np.array([2, 1, 3]), since_update_s=np.array([40.0, 20.0, 60.0]),
... ).tolist()
[True, False, True]
>>> rule.confirm(hits=np.zeros(0, dtype=int), age=np.zeros(0, dtype=int)).size
0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from atalaya.core.errors import ConfigError

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True, kw_only=True)
class MOfN:
    """M-of-N confirmation and miss-based deletion."""

    m: int = 2
    """Detections needed to confirm a tentative track."""
    n: int = 3
    """Scans within which a tentative track must collect ``m`` detections."""
    max_misses: int = 3
    """Consecutive missed scans after which a confirmed track is deleted."""
    max_coast_s: float = 90.0
    """Seconds without a detection after which any track is deleted (checked before each scan is associated)."""

    def __post_init__(self) -> None:
        if not 1 <= self.m <= self.n:
            raise ConfigError(f"M-of-N needs 1 <= m <= n, got m={self.m}, n={self.n}", hint="e.g. m=2, n=3")
        if self.max_misses < 1 or self.max_coast_s <= 0:
            raise ConfigError("max_misses and max_coast_s must be positive", hint="e.g. max_misses=3, max_coast_s=120")

    def confirm(self, *, hits: I64, age: I64) -> B:
        """Which tentative tracks (hit counts, ages in scans) are confirmed now."""
        return np.asarray((hits >= self.m) & (age <= self.n), dtype=bool)

    def expire(self, *, confirmed: B, hits: I64, age: I64, misses: I64, since_update_s: F64) -> B:
        """Which tracks are deleted now."""
        tentative_failed = ~confirmed & (age >= self.n) & (hits < self.m)
        lost = confirmed & (misses >= self.max_misses)
        return np.asarray(tentative_failed | lost | (since_update_s > self.max_coast_s), dtype=bool)
