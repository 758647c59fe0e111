"""Planted ADS-B position jumps: GNSS-spoofing episodes and bad decodes on airliners, with their ground truth.

Real captures show airliners whose reported position leaps hundreds of kilometres for a few reports (a GNSS
spoofer's fixed or drifting position) and comes back, and single reports far off the path (a bad CPR decode). The
scenario plants a few of each per day on the ADS-B feed only: the aircraft's true track (``truth/tracks``) is not
touched, so every other score is kept against what really flew, and the jumps are written to
``truth/position_jumps.parquet`` (:data:`TRUTH_COLUMNS`) for :mod:`atalaya.evaluate.spoofing`.

Every jump lands on reports the feed writes (transmitting samples on the feed's step), starts after at least
:data:`MARGIN` good reports of the flight and ends :data:`MARGIN` reports before its last, and is
:data:`MIN_KM`–:data:`MAX_KM` long, far beyond what an aircraft can fly between two reports.

>>> import numpy as np
>>> from atalaya.scenario.movement import Track
>>> t = np.arange(0, 3600, 10, dtype=np.int64)
>>> tr = Track(object_id="acft-0001", trip_id="acft-0001-000-0000", kind="aircraft", role="background",
...            ident="0d0001", ident_kind="icao24", name="AMX1", feed="adsb", t=t, lon=-100.0 + t * 0.002,
...            lat=np.full(t.size, 20.0), alt=np.full(t.size, 10_000.0), speed=np.full(t.size, 210.0),
...            course=np.full(t.size, 90.0), on=np.ones(t.size, dtype=bool))
>>> feed, truth = plant_jumps([tr, tr], 10, np.random.default_rng(0), spoofs=1, bad_decodes=1)
>>> sorted(r["kind"] for r in truth), sorted(int((f.lon != tr.lon).sum()) for f in feed)[0]
(['bad_decode', 'spoofing'], 1)
>>> bool((tr.lon == -100.0 + t * 0.002).all())  # the true track is untouched
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from atalaya.scenario.movement import Track
from atalaya.scenario.world import GEOD

SPOOFS_PER_DAY = 2
"""Spoofing episodes planted per day (each on a different airliner)."""
BAD_DECODES_PER_DAY = 1
"""Single far-off reports planted per day."""
MARGIN = 20
"""Good reports kept before and after each planted jump."""
MIN_KM, MAX_KM = 150.0, 600.0
"""Range of the planted jumps' lengths, km."""
SPOOF_REPORTS = (3, 12)
"""Range of the number of reports a spoofing episode lasts (inclusive)."""

TRUTH_COLUMNS = ("jump_id", "kind", "object_id", "trip_id", "icao24", "start", "end", "lon", "lat", "jump_lon",
                 "jump_lat", "distance_km", "n_reports")  # fmt: skip
"""Columns of ``truth/position_jumps.parquet``: ``kind`` ``spoofing`` or ``bad_decode``; ``start``/``end`` the first
and last jumped report (Unix seconds); ``lon``/``lat`` the true position at the last good report before the jump,
``jump_lon``/``jump_lat`` the first jumped position; ``distance_km`` between them (geodesic)."""


def plant_jumps(
    tracks: Sequence[Track],
    step: int,
    rng: np.random.Generator,
    *,
    spoofs: int = SPOOFS_PER_DAY,
    bad_decodes: int = BAD_DECODES_PER_DAY,
) -> tuple[list[Track], list[dict[str, Any]]]:
    """The ADS-B tracks as the feed reports them, with spoofing episodes and bad decodes planted on airliners
    (``role == "background"``) long enough to hold one, and the truth rows of each jump. The given tracks are not
    changed (a track with a jump is a copy with its own position arrays)."""
    out = list(tracks)
    truth: list[dict[str, Any]] = []
    fit = [k for k, tr in enumerate(tracks) if tr.role == "background" and tr.kind == "aircraft"
           and _reports(tr, step).size > 2 * MARGIN + SPOOF_REPORTS[1]]  # fmt: skip
    if not fit:
        return out, truth
    picks = rng.choice(len(fit), size=min(len(fit), spoofs + bad_decodes), replace=False)
    for n, p in enumerate(picks.tolist()):
        k = fit[p]
        tr = out[k]
        rep = _reports(tr, step)
        bad = n >= spoofs
        length = 1 if bad else int(rng.integers(SPOOF_REPORTS[0], SPOOF_REPORTS[1] + 1))
        a = int(rng.integers(MARGIN, rep.size - MARGIN - length))
        rows = rep[a : a + length]
        before = int(rep[a - 1])
        dist_m = float(rng.uniform(MIN_KM, MAX_KM)) * 1000.0
        az = float(rng.uniform(0.0, 360.0))
        jx, jy, _ = GEOD.fwd(float(tr.lon[before]), float(tr.lat[before]), az, dist_m)
        lon, lat = tr.lon.copy(), tr.lat.copy()
        # a spoofer holds one position, then lets it drift slowly; a bad decode is one report
        drift = np.arange(rows.size) * float(rng.uniform(0.0, 0.002))
        lon[rows], lat[rows] = jx + drift, jy
        out[k] = dataclasses.replace(tr, lon=lon, lat=lat)
        start, end = int(tr.t[rows[0]]), int(tr.t[rows[-1]])
        truth.append({
            "jump_id": f"jump-{tr.ident}-{start}", "kind": "bad_decode" if bad else "spoofing",
            "object_id": tr.object_id, "trip_id": tr.trip_id, "icao24": tr.ident, "start": start, "end": end,
            "lon": float(tr.lon[before]), "lat": float(tr.lat[before]), "jump_lon": float(lon[rows[0]]),
            "jump_lat": float(lat[rows[0]]),
            "distance_km": float(GEOD.inv(float(tr.lon[before]), float(tr.lat[before]), float(lon[rows[0]]),
                                          float(lat[rows[0]]))[2]) / 1000.0,
            "n_reports": int(rows.size),
        })  # fmt: skip
    return out, truth


def _reports(tr: Track, step: int) -> np.ndarray:
    """Samples of a track the ADS-B feed writes (as :func:`atalaya.scenario.feeds.write_adsb` picks them)."""
    return np.flatnonzero(tr.on & (tr.t % step == 0))


__all__ = ["BAD_DECODES_PER_DAY", "SPOOFS_PER_DAY", "TRUTH_COLUMNS", "plant_jumps"]
