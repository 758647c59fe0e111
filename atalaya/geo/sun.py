"""Where the sun stands: its elevation at a time and place, vectorised (for day/night tests of observations).

The declination and the equation of time follow the usual low-precision
formulas of the NOAA solar calculator (a Fourier series in the fractional
year), good to a few tenths of a degree, which is ample to tell day from
night and twilight.

>>> import numpy as np
>>> t = np.array([1_782_043_320, 1_797_854_400]) * 1_000_000  # 2026-06-21 12:02 and 2026-12-21 12:00 UTC
>>> np.round(solar_elevation_deg(t, np.zeros(2), np.full(2, 51.48)), 1).tolist()  # Greenwich: 90 - 51.48 ± 23.44
[62.0, 15.1]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

_US_PER_DAY = 86_400_000_000


def solar_elevation_deg(time_us: Any, lon: Any, lat: Any) -> F64:
    """Elevation of the sun's centre above the horizon (degrees; no refraction) at ``time_us`` (µs since the
    epoch, UTC) seen from ``lon, lat`` (degrees)."""
    t = np.asarray(time_us, dtype=np.int64)
    lo = np.asarray(lon, dtype=np.float64)
    la = np.radians(np.asarray(lat, dtype=np.float64))
    days = t // _US_PER_DAY
    frac_day = (t - days * _US_PER_DAY) / _US_PER_DAY
    # day of the year (0-based) from days since 1970-01-01, leap years included
    year_start = _year_start(days)
    year_len = np.where(_is_leap(_year_of(days)), 366.0, 365.0)
    g = 2.0 * np.pi / year_len * ((days - year_start) + frac_day - 0.5)
    decl = (
        0.006918
        - 0.399912 * np.cos(g)
        + 0.070257 * np.sin(g)
        - 0.006758 * np.cos(2 * g)
        + 0.000907 * np.sin(2 * g)
        - 0.002697 * np.cos(3 * g)
        + 0.00148 * np.sin(3 * g)
    )
    eot_min = 229.18 * (
        0.000075 + 0.001868 * np.cos(g) - 0.032077 * np.sin(g) - 0.014615 * np.cos(2 * g) - 0.040849 * np.sin(2 * g)
    )
    solar_min = frac_day * 1440.0 + eot_min + 4.0 * lo
    hour_angle = np.radians(solar_min / 4.0 - 180.0)
    sin_el = np.sin(la) * np.sin(decl) + np.cos(la) * np.cos(decl) * np.cos(hour_angle)
    out: F64 = np.degrees(np.arcsin(np.clip(sin_el, -1.0, 1.0)))
    return out


def _year_of(days: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    out: npt.NDArray[np.int64] = days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    return out


def _year_start(days: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    out: npt.NDArray[np.int64] = (
        days.astype("datetime64[D]").astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64)
    )
    return out


def _is_leap(year: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    out: npt.NDArray[np.bool_] = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    return out
