"""Vectorised geometry kernels: geodesic distances, local projections, geodesic buffers.

All functions take and return numpy arrays (or shapely geometries) and never loop
over points in Python.

>>> import numpy as np
>>> d = geodesic_distance(np.array([-99.0]), np.array([19.0]), np.array([-98.0]), np.array([19.0]))
>>> round(float(d[0]))
105292
>>> geodesic_distance(np.array([]), np.array([]), np.array([]), np.array([])).shape
(0,)
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry

FloatArray = npt.NDArray[np.float64]

WGS84 = pyproj.Geod(ellps="WGS84")
"""The WGS84 ellipsoid used for every distance."""

_A = 6378137.0
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)

LOCAL_LIMIT_M = 20_000.0
"""Segments longer than this are measured with the exact geodesic (pyproj/GeographicLib)."""


def geodesic_distance(lon1: Any, lat1: Any, lon2: Any, lat2: Any, *, exact_beyond: bool = True) -> FloatArray:
    """Ellipsoidal (WGS84) distance in metres between paired points, vectorised.

    Short pairs (< :data:`LOCAL_LIMIT_M`) use the local radii of curvature at the
    mid-latitude (meridian ``M`` and prime vertical ``N``): relative error below
    1e-6 for 20 km. Longer pairs are measured with the exact geodesic of
    GeographicLib through :data:`WGS84`; with ``exact_beyond=False`` they keep the
    local formula (relative error ≈ (d/R)², 0.03 % at 100 km), which is cheaper.

    >>> import numpy as np
    >>> d = geodesic_distance(np.array([0.0]), np.array([0.0]), np.array([0.0]), np.array([1.0]))
    >>> round(float(d[0]), 1)
    110574.4
    """
    lon1 = np.asarray(lon1, dtype=np.float64)
    lat1 = np.asarray(lat1, dtype=np.float64)
    lon2 = np.asarray(lon2, dtype=np.float64)
    lat2 = np.asarray(lat2, dtype=np.float64)
    dlon = lon2 - lon1
    wrap = np.abs(dlon) > 180.0
    if wrap.any():
        dlon = np.where(wrap, np.remainder(dlon + 180.0, 360.0) - 180.0, dlon)
    # With s = sin² φ (mid-latitude) and w² = 1 - e² s: N cos φ = a √(1 - s) / w, M = a (1 - e²) / w³, so
    # d² = a² (cos² φ · Δλ² / w² + ((1 - e²) / w²)² w² · Δφ² / w²); one sine and one square root per pair.
    s = np.sin((lat1 + lat2) * (np.pi / 360.0))
    s = s * s
    w2 = 1.0 - _E2 * s
    k = (1.0 - _E2) / w2
    dl = dlon * (np.pi / 180.0)
    dp = (lat2 - lat1) * (np.pi / 180.0)
    d: FloatArray = np.asarray(_A * np.sqrt((dl * dl * (1.0 - s) + dp * dp * k * k) / w2), dtype=np.float64)
    far = d > LOCAL_LIMIT_M
    if exact_beyond and far.any():
        _, _, dist = WGS84.inv(lon1[far], lat1[far], lon2[far], lat2[far])
        d[far] = dist
    return d


def geodesic_upper_bound(lon1: Any, lat1: Any, lon2: Any, lat2: Any) -> FloatArray:
    """A guaranteed upper bound (metres) of the WGS84 geodesic distance between paired points, vectorised.

    The straight line in lon/lat is a path on the ellipsoid, so the geodesic is no
    longer. Along it the east-west scale ``N cos φ`` is at most its value at the
    latitude nearest the equator and the meridian scale ``M`` at most its value at
    the latitude farthest from it, which bounds the path length by
    ``hypot(N cos φ_min · Δλ, M_max · Δφ)``. For points a few degrees of latitude
    apart this exceeds the geodesic by about ``tan φ · Δφ / 2`` of the east-west part.

    >>> import numpy as np
    >>> ub = geodesic_upper_bound(np.array([-99.0]), np.array([19.0]), np.array([-98.0]), np.array([19.0]))
    >>> d = geodesic_distance(np.array([-99.0]), np.array([19.0]), np.array([-98.0]), np.array([19.0]))
    >>> bool(d[0] <= ub[0] < d[0] + 1.0)
    True
    >>> geodesic_upper_bound(np.array([]), np.array([]), np.array([]), np.array([])).shape
    (0,)
    """
    lon1 = np.asarray(lon1, dtype=np.float64)
    lat1 = np.asarray(lat1, dtype=np.float64)
    lon2 = np.asarray(lon2, dtype=np.float64)
    lat2 = np.asarray(lat2, dtype=np.float64)
    dlon = np.abs(np.remainder(lon2 - lon1 + 180.0, 360.0) - 180.0)
    a1, a2 = np.abs(lat1), np.abs(lat2)
    # Nearest the equator: 0 when the line crosses it.
    low = np.where(lat1 * lat2 <= 0.0, 0.0, np.minimum(a1, a2))
    s_low = np.sin(np.radians(low))
    s_high = np.sin(np.radians(np.maximum(a1, a2)))
    ew = _A * np.cos(np.radians(low)) / np.sqrt(1.0 - _E2 * s_low * s_low)
    w2 = 1.0 - _E2 * s_high * s_high
    ns = _A * (1.0 - _E2) / (w2 * np.sqrt(w2))
    out: FloatArray = np.hypot(ew * np.radians(dlon), ns * np.radians(np.abs(lat2 - lat1)))
    # Margin for floating-point rounding (a micrometre, and 1e-12 relative).
    out *= 1.0 + 1e-12
    out += 1e-6
    return out


def geodesic_upper_bound_from_box(west: Any, south: Any, east: Any, north: Any, lon2: Any, lat2: Any) -> FloatArray:
    """A guaranteed upper bound (metres) of the WGS84 geodesic distance from *any* point of a lon/lat box to a point.

    The largest value of :func:`geodesic_upper_bound` over the box: the widest
    longitude and latitude differences, the east-west scale at the latitude nearest
    the equator and the meridian scale at the one farthest from it. Boxes narrower
    than 180° of longitude.

    >>> import numpy as np
    >>> b = geodesic_upper_bound_from_box(np.array([0.0]), np.array([10.0]), np.array([0.1]), np.array([10.1]),
    ...                                   np.array([1.0]), np.array([10.0]))
    >>> corners = geodesic_upper_bound(np.array([0.0, 0.0]), np.array([10.0, 10.1]), np.full(2, 1.0), np.full(2, 10.0))
    >>> bool(b[0] >= corners.max()), bool(b[0] < corners.max() + 100.0)
    (True, True)
    """
    w = np.asarray(west, dtype=np.float64)
    so = np.asarray(south, dtype=np.float64)
    e = np.asarray(east, dtype=np.float64)
    no = np.asarray(north, dtype=np.float64)
    lon2 = np.asarray(lon2, dtype=np.float64)
    lat2 = np.asarray(lat2, dtype=np.float64)
    dlon = np.maximum(np.abs(lon2 - w), np.abs(lon2 - e))
    dlat = np.maximum(np.abs(lat2 - so), np.abs(lat2 - no))
    # Any point of the box on the other side of (or on) the equator from the target: the line may reach it.
    cross = (so * lat2 <= 0.0) | (no * lat2 <= 0.0)
    low = np.where(cross, 0.0, np.minimum(np.minimum(np.abs(so), np.abs(no)), np.abs(lat2)))
    high = np.maximum(np.maximum(np.abs(so), np.abs(no)), np.abs(lat2))
    s_low = np.sin(np.radians(low))
    s_high = np.sin(np.radians(high))
    ew = _A * np.cos(np.radians(low)) / np.sqrt(1.0 - _E2 * s_low * s_low)
    w2 = 1.0 - _E2 * s_high * s_high
    ns = _A * (1.0 - _E2) / (w2 * np.sqrt(w2))
    out: FloatArray = np.hypot(ew * np.radians(dlon), ns * np.radians(dlat))
    out *= 1.0 + 1e-12
    out += 1e-6
    return out


def aeqd_forward(lon0: float, lat0: float, lon: Any, lat: Any) -> tuple[FloatArray, FloatArray]:
    """Ellipsoidal azimuthal equidistant projection centred at ``(lon0, lat0)``, metres.

    Computed through the exact WGS84 geodesic (azimuth and distance from the
    centre), so distances from the centre are exact; elsewhere the scale error
    grows as ``(ρ/R)²/6`` (0.07 % at 400 km, 1 % at 1,500 km).

    >>> x, y = aeqd_forward(0.0, 0.0, np.array([0.0]), np.array([1.0]))
    >>> round(float(x[0]), 3), round(float(y[0]), 1)
    (0.0, 110574.4)
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    az, _, d = WGS84.inv(np.full(lon.shape, lon0), np.full(lat.shape, lat0), lon, lat)
    a = np.radians(az)
    return np.asarray(d * np.sin(a)), np.asarray(d * np.cos(a))


def aeqd_inverse(lon0: float, lat0: float, x: Any, y: Any) -> tuple[FloatArray, FloatArray]:
    """Inverse of :func:`aeqd_forward`: metres → lon/lat."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    az = np.degrees(np.arctan2(x, y))
    lon, lat, _ = WGS84.fwd(np.full(x.shape, lon0), np.full(y.shape, lat0), az, np.hypot(x, y))
    return np.asarray(lon), np.asarray(lat)


def to_aeqd(geoms: Any, lon0: float, lat0: float) -> Any:
    """Geometries from lon/lat into the azimuthal equidistant plane centred at ``(lon0, lat0)``."""
    return shapely.transform(geoms, lambda xy: np.column_stack(aeqd_forward(lon0, lat0, xy[:, 0], xy[:, 1])))


def from_aeqd(geoms: Any, lon0: float, lat0: float) -> Any:
    """Geometries from the azimuthal equidistant plane centred at ``(lon0, lat0)`` back to lon/lat."""
    return shapely.transform(geoms, lambda xy: np.column_stack(aeqd_inverse(lon0, lat0, xy[:, 0], xy[:, 1])))


@cache
def stereographic(lon0: float, lat0: float) -> tuple[pyproj.Transformer, pyproj.Transformer]:
    """Forward/inverse transformers to an oblique stereographic (conformal) projection centred at a point."""
    crs = pyproj.CRS.from_proj4(f"+proj=sterea +lat_0={lat0:.6f} +lon_0={lon0:.6f} +datum=WGS84 +units=m +no_defs")
    fwd = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    inv = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return fwd, inv


def transform_geoms(geoms: Any, transformer: pyproj.Transformer) -> Any:
    """Apply a pyproj transformer to every coordinate of a geometry or geometry array."""

    def _f(xy: FloatArray) -> FloatArray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, _f)


def geodesic_buffer(
    geom: BaseGeometry, distance_m: float, *, tile_deg: float = 6.0, simplify_m: float = 20.0
) -> BaseGeometry:
    """Buffer a lon/lat geometry by a geodesic distance (metres).

    The geometry is cut into ``tile_deg`` tiles (a buffer of a union is the union
    of the buffers), each tile is buffered in an azimuthal equidistant projection
    centred on the tile (:func:`aeqd_forward`), and the results are merged. With
    6° tiles the buffer distance is within 0.1 % (≈ 20 m for 12 nautical miles)
    of the geodesic one; the input is first simplified by ``simplify_m`` metres
    and arcs use 8 segments per quarter circle (≤ 107 m inside the true arc at
    convex corners of 22 km buffers).
    Pieces whose buffer would cross the antimeridian are left unbuffered.

    >>> from shapely.geometry import Point
    >>> b = geodesic_buffer(Point(-99.0, 19.0).buffer(0.01), 22_224.0)
    >>> 0.19 < b.bounds[3] - 19.0 < 0.22
    True
    >>> geodesic_buffer(shapely.Polygon(), 100.0).is_empty
    True
    """
    if geom.is_empty:
        return geom
    parts = shapely.get_parts(geom)
    x0, y0, x1, y1 = shapely.bounds(parts).T
    big = ((x1 - x0) > tile_deg) | ((y1 - y0) > tile_deg)
    pieces = list(parts[~big])
    for p in parts[big]:
        bx0, by0, bx1, by1 = p.bounds
        xs = np.arange(np.floor(bx0 / tile_deg) * tile_deg, bx1, tile_deg)
        ys = np.arange(np.floor(by0 / tile_deg) * tile_deg, by1, tile_deg)
        gx, gy = np.meshgrid(xs, ys)
        boxes = shapely.box(gx.ravel(), gy.ravel(), gx.ravel() + tile_deg, gy.ravel() + tile_deg)
        cut = shapely.intersection(p, boxes)
        pieces.extend(c for c in cut if not c.is_empty)
    arr = np.asarray(pieces, dtype=object)
    c = shapely.centroid(arr)
    key_x = np.floor(shapely.get_x(c) / tile_deg).astype(np.int64)
    key_y = np.floor(shapely.get_y(c) / tile_deg).astype(np.int64)
    out = []
    for kx, ky in sorted(set(zip(key_x.tolist(), key_y.tolist(), strict=True))):
        sel = arr[(key_x == kx) & (key_y == ky)]
        lon0, lat0 = (kx + 0.5) * tile_deg, (ky + 0.5) * tile_deg
        local = shapely.simplify(to_aeqd(shapely.union_all(sel), lon0, lat0), simplify_m)
        back = from_aeqd(shapely.buffer(local, distance_m, quad_segs=8), lon0, lat0)
        bx0, _, bx1, _ = back.bounds
        # Near the antimeridian the buffer would wrap around the globe: keep the unbuffered pieces there.
        out.append(back if bx1 - bx0 < 180.0 else shapely.union_all(sel))
    return shapely.make_valid(shapely.union_all(out))
