"""A scanning-sensor test world (GMTI-like): moving targets, missed detections, noise and false alarms.

Targets are born at random times, move with nearly constant velocity (white
acceleration noise) and die after a random lifetime; the sensor scans every
``scan_s`` seconds, detects each live target with probability ``pd`` with a
circular Gaussian error whose 1-sigma is drawn per detection, and adds Poisson
false alarms spread over the area. Positions are metres in a local plane.

>>> w = simulate_scans(seed=1, n_targets=3, duration_s=200.0)
>>> w.truth_id.size > 0, w.det_truth.dtype.kind
(True, 'i')
>>> simulate_scans(seed=1, n_targets=0, duration_s=100.0, fa_per_scan=0.0).det_time.size
0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, kw_only=True)
class ScanWorld:
    """Detections and truth of a simulated world (truth sampled at every scan while the target lives)."""

    det_time: F64
    """Detection times, seconds."""
    det_x: F64
    """Detection x, metres."""
    det_y: F64
    """Detection y, metres."""
    det_sigma: F64
    """1-sigma position error of each detection, metres."""
    det_truth: I64
    """Target of each detection, ``-1`` for false alarms."""
    truth_id: I64
    """Target of each true point."""
    truth_time: F64
    """True point times (the scan times), seconds."""
    truth_x: F64
    """True x, metres."""
    truth_y: F64
    """True y, metres."""


def simulate_scans(
    *,
    seed: int,
    n_targets: int = 40,
    duration_s: float = 3600.0,
    scan_s: float = 20.0,
    area_m: float = 60_000.0,
    speed_mps: tuple[float, float] = (5.0, 30.0),
    q: float = 0.05,
    pd: float = 0.8,
    sigma_m: tuple[float, float] = (30.0, 60.0),
    fa_per_scan: float = 0.5,
    life_s: tuple[float, float] = (600.0, 2400.0),
) -> ScanWorld:
    """Simulate a world (vectorised over targets and scans)."""
    rng = np.random.default_rng(seed)
    scans = np.arange(0.0, duration_s, scan_s)
    ns = scans.size
    born = rng.uniform(-life_s[0], duration_s, n_targets)
    life = rng.uniform(life_s[0], life_s[1], n_targets)
    sp = rng.uniform(speed_mps[0], speed_mps[1], n_targets)
    hd = rng.uniform(0, 2 * np.pi, n_targets)
    # integrate CV with white acceleration on the scan grid, from each target's birth scan
    acc = rng.normal(0.0, np.sqrt(q / scan_s), (n_targets, ns, 2))
    vel = np.stack([sp * np.sin(hd), sp * np.cos(hd)], axis=-1)[:, None, :] + np.cumsum(acc * scan_s, axis=1)
    pos = np.cumsum(vel * scan_s, axis=1)
    pos += rng.uniform(-area_m / 2, area_m / 2, (n_targets, 1, 2)) - pos[:, :1, :]
    alive = (scans[None, :] >= born[:, None]) & (scans[None, :] < (born + life)[:, None])
    ti, si = np.nonzero(alive)
    tx, ty = pos[ti, si, 0], pos[ti, si, 1]
    seen = rng.random(ti.size) < pd
    sig_t = rng.uniform(sigma_m[0], sigma_m[1], int(seen.sum()))
    dx = tx[seen] + rng.normal(0.0, 1.0, sig_t.size) * sig_t
    dy = ty[seen] + rng.normal(0.0, 1.0, sig_t.size) * sig_t
    nfa = rng.poisson(fa_per_scan, ns)
    fa_t = np.repeat(scans, nfa)
    lim = area_m
    fx, fy = rng.uniform(-lim, lim, fa_t.size), rng.uniform(-lim, lim, fa_t.size)
    sig_f = rng.uniform(sigma_m[0], sigma_m[1], fa_t.size)
    det_time = np.concatenate([scans[si[seen]], fa_t])
    order = np.argsort(det_time, kind="stable")
    return ScanWorld(
        det_time=det_time[order],
        det_x=np.concatenate([dx, fx])[order],
        det_y=np.concatenate([dy, fy])[order],
        det_sigma=np.concatenate([sig_t, sig_f])[order],
        det_truth=np.concatenate([ti[seen], np.full(fa_t.size, -1)]).astype(np.int64)[order],
        truth_id=ti.astype(np.int64),
        truth_time=scans[si],
        truth_x=tx,
        truth_y=ty,
    )
