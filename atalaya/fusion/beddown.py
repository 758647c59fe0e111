"""Emitter bed-downs: where an identified emitter (a phone) stays, from its geolocation fixes.

One SIGINT fix is an error ellipse of hundreds of metres to kilometres, too vague
to name a building. The fixes of one emitter taken from different bearings over
several days intersect, though: where the emitter stays put, their
information-weighted mean is far sharper than any fix (the ellipses' long axes
point along the line of sight, so an orbiting collector triangulates).

For each emitter id the estimate is a robust weighted least-squares position
with the full covariance of every fix (semi-major ``a``, semi-minor ``b``, the
major axis at ``orient`` degrees clockwise from north):

1. start from its densest fix (the one with the most of its fixes near it);
2. repeat: solve the weighted mean of the fixes whose squared Mahalanobis
   distance to the current estimate is under the gate (the gate tightens from
   a loose start to the 99.7 % point of a χ² with 2 degrees of freedom), so
   the fixes of trips elsewhere drop out;
3. keep the estimate when enough fixes on enough distinct days agree with it,
   they are a large enough share of the emitter's fixes near it (within a
   town's reach: a crew phone's trips hundreds of kilometres away say nothing
   of the place), their scatter is what their ellipses predict (mean squared
   Mahalanobis distance near 2), and the combined position is sharp. Its
   error ellipse (semi-axes and orientation) is kept with it: fixes taken
   from one side leave it loose along their line of sight.

The fixes that agree with an accepted bed-down are then set aside and the
rest searched again (up to ``max_stays`` places per phone: home, a lab, a
stash house). A phone carried around a town does not bed down: its fixes
disagree with any single point. Everything is vectorised over emitters
(group-by with ``bincount``, one KD-tree query for the starts), so the cost
is a few passes over the fixes per place searched.

>>> import numpy as np
>>> rng = np.random.default_rng(3)
>>> n = 12
>>> lon0, lat0 = -107.0, 25.0
>>> e, nn = rng.normal(0, 300, n), rng.normal(0, 300, n)
>>> bd = beddowns(ident=np.zeros(n, dtype=np.int64), lon=lon0 + e / 101_000, lat=lat0 + nn / 111_000,
...               a=np.full(n, 300.0), b=np.full(n, 300.0), orient_deg=np.zeros(n), day=np.arange(n) % 3)
>>> bd.n_beddowns, int(bd.n_fixes[0]), int(bd.n_days[0]), bool(bd.sigma_m[0] < 150)
(1, 11, 3, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_R = 6_371_008.8
CHI2_2DOF_997 = 11.83
"""99.7 % point of a χ² with 2 degrees of freedom (the final inlier gate)."""


@dataclass(frozen=True, kw_only=True)
class BeddownParams:
    """Acceptance of a bed-down (set on the statistics of the estimate, not on a scenario)."""

    min_fixes: int = 3
    """Agreeing fixes needed."""
    min_days: int = 2
    """Distinct days among the agreeing fixes (one day is a visit, two a habit)."""
    min_share: float = 0.3
    """Share of the emitter's fixes within ``share_radius_m`` of the place that must agree with it: a phone carried
    around its town has many fixes near any point of it that disagree; the fixes of a crew's trips far away say
    nothing about the place."""
    share_radius_m: float = 10_000.0
    """Radius of the fixes that count for ``min_share``, metres (a town and its outskirts)."""
    max_mean_d2: float = 4.0
    """Largest mean squared Mahalanobis distance of the agreeing fixes (2 is what their ellipses predict)."""
    max_sigma_m: float = 400.0
    """Largest 1-sigma radius (geometric mean of the axes) of the combined position."""
    max_stays: int = 3
    """Most bed-downs per emitter (places it stays at: home, a lab, a stash house)."""
    gates: tuple[float, ...] = (400.0, 100.0, 30.0, CHI2_2DOF_997, CHI2_2DOF_997)
    """Squared Mahalanobis gates of the successive re-weightings."""


@dataclass(frozen=True, kw_only=True)
class Beddowns:
    """Accepted bed-downs (an emitter may have several: each place it stays at), by emitter then first day."""

    ident: I64
    """Emitter index (as given) of each bed-down."""
    lon: F64
    lat: F64
    sigma_m: F64
    """1-sigma radius of the position (geometric mean of the covariance's axes), metres."""
    sigma_major_m: F64
    """1-sigma semi-major axis of the position's error ellipse, metres (fixes taken from one side leave the position
    loose along their common line of sight)."""
    sigma_minor_m: F64
    """1-sigma semi-minor axis, metres."""
    major_deg: F64
    """Azimuth of the major axis, degrees clockwise from north in [0, 180)."""
    n_fixes: I64
    """Fixes that agree with the position."""
    n_days: I64
    """Distinct days among them."""
    day_mask: npt.NDArray[np.uint64]
    """Bit ``d - first_day`` set for each day with an agreeing fix (days within 64 of the first)."""
    first_day: I64
    """First day with an agreeing fix."""
    inlier: npt.NDArray[np.bool_]
    """Per input fix: it agrees with its emitter's accepted bed-down."""

    @property
    def n_beddowns(self) -> int:
        return int(self.ident.size)


def _information(a: F64, b: F64, orient_deg: F64) -> tuple[F64, F64, F64]:
    """Inverse covariance ``[[wee, wen], [wen, wnn]]`` of each fix (east/north metres)."""
    th = np.radians(np.where(np.isfinite(orient_deg), orient_deg, 0.0))
    s, c = np.sin(th), np.cos(th)
    ia, ib = 1.0 / (a * a), 1.0 / (b * b)
    # major axis along (sin θ, cos θ) in (east, north); minor along (cos θ, -sin θ)
    wee = ia * s * s + ib * c * c
    wnn = ia * c * c + ib * s * s
    wen = (ia - ib) * s * c
    return wee, wen, wnn


def _xyz(lon: F64, lat: F64) -> F64:
    """Points on a sphere of the Earth's mean radius, metres (chords match ground distances to 0.1 % at 10 km)."""
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([_R * np.cos(la) * np.cos(lo), _R * np.cos(la) * np.sin(lo), _R * np.sin(la)], axis=1)


def error_axes(see: F64, sen: F64, snn: F64) -> tuple[F64, F64, F64]:
    """1-sigma semi-major and semi-minor axes (metres) and the major axis azimuth (degrees clockwise from north, in
    [0, 180)) of the covariance whose inverse is ``[[see, sen], [sen, snn]]`` (east/north); infinite axes where the
    information is singular.

    >>> [np.round(v, 1).tolist() for v in error_axes(*_information(np.array([300.0]), np.array([100.0]),
    ...                                                             np.array([30.0])))]
    [[300.0], [100.0], [30.0]]
    """
    half_tr = 0.5 * (see + snn)
    root = np.sqrt(0.25 * (see - snn) ** 2 + sen * sen)
    lo, hi = half_tr - root, half_tr + root  # eigenvalues of the information: the major axis has the smaller
    major = np.where(lo > 0, 1.0 / np.sqrt(np.maximum(lo, 1e-300)), np.inf)
    minor = np.where(hi > 0, 1.0 / np.sqrt(np.maximum(hi, 1e-300)), np.inf)
    # direction of the information's larger eigenvector, from east counter-clockwise; the major axis is across it
    phi = 0.5 * np.arctan2(2.0 * sen, see - snn)
    az = (90.0 - np.degrees(phi + 0.5 * np.pi)) % 180.0
    return major, minor, az


def _densest_fix(g: I64, lon: F64, lat: F64, a: F64, n_groups: int) -> npt.NDArray[np.intp]:
    """Per group, the fix with the most fixes of its group within three of its major semi-axes (ties: the first):
    a start inside the group's busiest stay, which the median of a phone that stays at two places is not."""
    from scipy.spatial import cKDTree

    pts = np.column_stack([_xyz(lon, lat), g.astype(np.float64) * 1e9])  # groups 1e6 km apart: never neighbours
    counts = np.asarray(cKDTree(pts).query_ball_point(pts, r=3.0 * a, return_length=True), dtype=np.int64)
    order = np.lexsort((np.arange(g.size), -counts, g))
    firsts = np.flatnonzero(np.r_[True, g[order][1:] != g[order][:-1]])
    best = np.full(n_groups, -1, dtype=np.intp)
    best[g[order][firsts]] = order[firsts]
    return best


def beddowns(
    *,
    ident: I64,
    lon: F64,
    lat: F64,
    a: F64,
    b: F64,
    orient_deg: F64,
    day: I64,
    params: BeddownParams = BeddownParams(),
) -> Beddowns:
    """Bed-downs of identified emitters from their fixes (see the module docstring).

    ``ident`` are non-negative emitter indices; ``a``/``b`` the 1-sigma semi-axes
    in metres (``b`` NaN or missing: circular), ``orient_deg`` the major axis
    azimuth; ``day`` the UTC day of each fix.

    A phone may stay at more than one place (a lab by night, a stash house on
    another day): the fixes that agree with an accepted bed-down are set
    aside and the rest searched again, up to ``max_stays`` times per emitter.
    """
    ident = np.asarray(ident, dtype=np.int64)
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    orient = np.asarray(orient_deg, dtype=np.float64)
    day = np.asarray(day, dtype=np.int64)
    ok = np.isfinite(lon) & np.isfinite(lat) & np.isfinite(a) & (a > 0) & (ident >= 0)
    b = np.where(np.isfinite(b) & (b > 0), np.minimum(b, a), a)
    n_all = ident.size
    rounds: list[Beddowns] = []
    inlier = np.zeros(n_all, dtype=bool)
    left = ok
    for _ in range(max(params.max_stays, 1)):
        if not left.any():
            break
        found = _one_stay(np.flatnonzero(left), ident, lon, lat, a, b, orient, day, params)
        if found.n_beddowns == 0:
            break
        rounds.append(found)
        inlier |= found.inlier
        # search again only the emitters that bedded down this round, without the fixes that agreed
        left = ok & ~inlier & np.isin(ident, found.ident)
    if not rounds:
        return _empty(n_all)
    cat = {f: np.concatenate([getattr(r, f) for r in rounds]) for f in
           ("ident", "lon", "lat", "sigma_m", "sigma_major_m", "sigma_minor_m", "major_deg", "n_fixes", "n_days",
            "day_mask", "first_day")}  # fmt: skip
    order = np.lexsort((cat["first_day"], cat["ident"]))
    return Beddowns(**{k: v[order] for k, v in cat.items()}, inlier=inlier)


def _empty(n_all: int) -> Beddowns:
    return Beddowns(
        ident=np.zeros(0, np.int64), lon=np.zeros(0), lat=np.zeros(0), sigma_m=np.zeros(0),
        sigma_major_m=np.zeros(0), sigma_minor_m=np.zeros(0), major_deg=np.zeros(0),
        n_fixes=np.zeros(0, np.int64), n_days=np.zeros(0, np.int64), day_mask=np.zeros(0, np.uint64),
        first_day=np.zeros(0, np.int64), inlier=np.zeros(n_all, dtype=bool),
    )  # fmt: skip


def _one_stay(
    idx: npt.NDArray[np.intp],
    ident: I64,
    lon: F64,
    lat: F64,
    a: F64,
    b: F64,
    orient: F64,
    day: I64,
    params: BeddownParams,
) -> Beddowns:
    """At most one bed-down per emitter from the fixes ``idx``, searched from each emitter's densest fix."""
    n_all = ident.size
    uid, g = np.unique(ident[idx], return_inverse=True)
    ng = uid.size
    lo, la = lon[idx], lat[idx]
    # local east/north metres around each emitter's densest fix, where the search starts
    start = _densest_fix(g, lo, la, a[idx], ng)
    lon0 = lo[start]
    lat0 = la[start]
    coslat = np.cos(np.radians(lat0))[g]
    ex = np.radians(lo - lon0[g]) * _R * coslat
    ny = np.radians(la - lat0[g]) * _R
    wee, wen, wnn = _information(a[idx], b[idx], orient[idx])
    cx = np.zeros(ng)
    cy = np.zeros(ng)
    use = np.ones(idx.size, dtype=bool)
    d2 = np.zeros(idx.size)
    see: F64 = np.zeros(ng)
    sen: F64 = np.zeros(ng)
    snn: F64 = np.zeros(ng)
    for gate in params.gates:
        rx, ry = ex - cx[g], ny - cy[g]
        d2 = wee * rx * rx + 2.0 * wen * rx * ry + wnn * ry * ry
        use = d2 < gate
        u = use.astype(np.float64)
        see = np.asarray(np.bincount(g, weights=u * wee, minlength=ng), dtype=np.float64)
        sen = np.asarray(np.bincount(g, weights=u * wen, minlength=ng), dtype=np.float64)
        snn = np.asarray(np.bincount(g, weights=u * wnn, minlength=ng), dtype=np.float64)
        bx = np.bincount(g, weights=u * (wee * ex + wen * ny), minlength=ng)
        by = np.bincount(g, weights=u * (wen * ex + wnn * ny), minlength=ng)
        det = see * snn - sen * sen
        good = det > 0
        safe = np.where(good, det, 1.0)
        cx = np.where(good, (snn * bx - sen * by) / safe, cx)
        cy = np.where(good, (see * by - sen * bx) / safe, cy)
    rx, ry = ex - cx[g], ny - cy[g]
    d2 = wee * rx * rx + 2.0 * wen * rx * ry + wnn * ry * ry
    use = d2 < params.gates[-1]
    n_in = np.bincount(g, weights=use, minlength=ng)
    n_tot = np.bincount(g, weights=(rx * rx + ry * ry) <= params.share_radius_m**2, minlength=ng)
    mean_d2 = np.bincount(g, weights=np.where(use, d2, 0.0), minlength=ng) / np.maximum(n_in, 1)
    det = see * snn - sen * sen
    sigma = np.where(det > 0, np.power(np.maximum(det, 1e-300), -0.25), np.inf)  # sqrt of sqrt(det(cov))
    major, minor, major_az = error_axes(see, sen, snn)
    dd = day[idx]
    d0 = int(dd[use].min()) if use.any() else 0
    bit = np.left_shift(np.uint64(1), np.clip(dd - d0, 0, 63).astype(np.uint64))
    mask = np.zeros(ng, dtype=np.uint64)
    np.bitwise_or.at(mask, g[use], bit[use])
    n_days = np.bitwise_count(mask).astype(np.int64)
    first = np.full(ng, np.iinfo(np.int64).max)
    np.minimum.at(first, g[use], dd[use])
    accept = (
        (n_in >= params.min_fixes)
        & (n_days >= params.min_days)
        & (n_in >= params.min_share * n_tot)
        & (mean_d2 <= params.max_mean_d2)
        & (sigma <= params.max_sigma_m)
    )
    keep = np.flatnonzero(accept)
    if keep.size == 0:
        return _empty(n_all)
    c0 = np.cos(np.radians(lat0[keep]))
    out_lon = lon0[keep] + np.degrees(cx[keep] / (_R * c0))
    out_lat = lat0[keep] + np.degrees(cy[keep] / _R)
    inlier = np.zeros(n_all, dtype=bool)
    inlier[idx] = use & accept[g]
    # day masks relative to each bed-down's first day
    shift = (first[keep] - d0).astype(np.uint64)
    return Beddowns(
        ident=uid[keep],
        lon=out_lon,
        lat=out_lat,
        sigma_m=sigma[keep],
        sigma_major_m=major[keep],
        sigma_minor_m=minor[keep],
        major_deg=major_az[keep],
        n_fixes=n_in[keep].astype(np.int64),
        n_days=n_days[keep],
        day_mask=np.right_shift(mask[keep], shift),
        first_day=first[keep],
        inlier=inlier,
    )


def crowded(bd: Beddowns, *, radius_m: float, min_phones: int) -> npt.NDArray[np.bool_]:
    """Bed-downs with at least ``min_phones`` other emitters bedded down within ``radius_m``: a town, where a
    phone that stays put is someone at home.

    The population is read from the bed-downs themselves (distinct emitters, each counted once however many
    places it stays at), so no map of towns is needed.

    >>> lon = np.r_[np.full(30, -107.0), -106.0]
    >>> bd = Beddowns(ident=np.arange(31), lon=lon, lat=np.full(31, 25.0), sigma_m=np.full(31, 100.0),
    ...               sigma_major_m=np.full(31, 100.0), sigma_minor_m=np.full(31, 100.0), major_deg=np.zeros(31),
    ...               n_fixes=np.full(31, 5), n_days=np.full(31, 3), day_mask=np.full(31, 7, dtype=np.uint64),
    ...               first_day=np.zeros(31, np.int64), inlier=np.zeros(0, bool))
    >>> crowded(bd, radius_m=3_000.0, min_phones=20).tolist() == [True] * 30 + [False]
    True
    """
    from scipy.spatial import cKDTree

    n = bd.n_beddowns
    if n == 0:
        return np.zeros(0, dtype=bool)
    pairs = cKDTree(_xyz(bd.lon, bd.lat)).query_pairs(r=radius_m, output_type="ndarray").reshape(-1, 2)
    i = np.r_[pairs[:, 0], pairs[:, 1]].astype(np.int64)
    other = bd.ident[np.r_[pairs[:, 1], pairs[:, 0]]]
    keep = other != bd.ident[i]
    span = int(bd.ident.max()) + 1
    distinct = np.unique(i[keep] * span + other[keep])  # (bed-down, other phone) once each
    return np.asarray(np.bincount(distinct // span, minlength=n) >= min_phones, dtype=bool)
