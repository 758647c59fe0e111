"""Turning CPR-encoded ADS-B positions into latitudes and longitudes, for whole batches of messages.

A CPR message alone gives a position only relative to a reference. Per aircraft (ICAO address), in time order:

- **global**: a message and the latest earlier one of the other format (even/odd) of the same kind (airborne
  or surface) at most :data:`PAIR_WINDOW_S` apart decode unambiguously (:func:`~atalaya.ingest.modes_decode.
  cpr_global`); the newer one gives the position. Surface pairs still need a reference to pick the quadrant:
  the receiver location when the reader was given one, else the aircraft's last fix, else the feed's latest
  airborne fix before it (or the first after it): any fix a receiver hears is well within the 45° that
  resolves a surface quadrant.
- **local**: a message without a pair decodes against the aircraft's last fix at most :data:`LOCAL_REF_S`
  older (:func:`~atalaya.ingest.modes_decode.cpr_local`); fixes found this way are references in turn.

The last messages and fixes of each aircraft carry from one batch to the next (:class:`CprState`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from atalaya.ingest.modes_decode import cpr_global, cpr_local

__all__ = ["GLOBAL", "LOCAL", "LOCAL_REF_S", "PAIR_WINDOW_S", "CprState", "resolve"]

U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
I8 = npt.NDArray[np.int8]

PAIR_WINDOW_S = 10.0
"""Even and odd messages further apart than this are not paired (the aircraft may have changed zone)."""
LOCAL_REF_S = 30.0
"""A fix older than this is not used as the reference of a local decode."""
STATE_KEEP_S = 600.0
"""Fixes of aircraft not heard for this long are dropped from the carried state."""
GLOBAL, LOCAL = 1, 2
"""Values of the ``method`` array :func:`resolve` returns (0: no position)."""
_US = 1_000_000
_MAX_PASSES = 4


@dataclass(frozen=True, kw_only=True)
class CprState:
    """Per-aircraft CPR context carried between batches."""

    icao: U32
    """Address of each carried row."""
    time: I64
    """Its time, µs."""
    surface: B
    """Surface (else airborne) message."""
    odd: B
    """CPR format of a carried message."""
    cpr_lat: U32
    """Its CPR latitude."""
    cpr_lon: U32
    """Its CPR longitude."""
    lat: F64
    """A carried fix's latitude (NaN for a carried message)."""
    lon: F64
    """A carried fix's longitude."""
    is_fix: B
    """The row is a fix (lat/lon), not a message waiting for its pair."""
    feed_lat: float = float("nan")
    """The feed's latest airborne fix (a surface quadrant reference)."""
    feed_lon: float = float("nan")
    """Its longitude."""

    @staticmethod
    def empty() -> CprState:
        u = np.zeros(0, dtype=np.uint32)
        b = np.zeros(0, dtype=bool)
        f = np.zeros(0, dtype=np.float64)
        return CprState(
            icao=u, time=np.zeros(0, dtype=np.int64), surface=b, odd=b, cpr_lat=u, cpr_lon=u, lat=f, lon=f, is_fix=b
        )


def _ffill_in_group(mask: B, group_start: I64) -> I64:
    """Index of the latest row ≤ i (in the sorted order) with ``mask`` set and in row i's group, else −1."""
    idx = np.where(mask, np.arange(mask.size), -1)
    last = np.maximum.accumulate(idx) if idx.size else idx
    return np.where(last >= group_start, last, -1)


def resolve(
    icao: U32,
    time_us: I64,
    surface: B,
    odd: B,
    cpr_lat: U32,
    cpr_lon: U32,
    state: CprState,
    *,
    receiver: tuple[float, float] | None = None,
) -> tuple[F64, F64, I8, CprState]:
    """Positions of ``n`` CPR messages (airborne or ``surface``); returns ``lat, lon, method, new state``.

    ``method`` is :data:`GLOBAL`, :data:`LOCAL` or 0 (no position: no pair, no reference, or a pair that
    failed the zone check).
    """
    n = icao.size
    k = state.icao.size
    a_icao = np.concatenate((state.icao, icao))
    a_t = np.concatenate((state.time, time_us))
    a_surf = np.concatenate((state.surface, surface))
    a_odd = np.concatenate((state.odd, odd))
    a_clat = np.concatenate((state.cpr_lat, cpr_lat))
    a_clon = np.concatenate((state.cpr_lon, cpr_lon))
    a_fix = np.concatenate((state.is_fix, np.zeros(n, dtype=bool)))
    lat = np.concatenate((state.lat, np.full(n, np.nan)))
    lon = np.concatenate((state.lon, np.full(n, np.nan)))
    method = np.zeros(k + n, dtype=np.int8)
    method[:k] = np.where(state.is_fix, GLOBAL, 0)
    is_msg = ~a_fix
    # sort by aircraft, then time (state rows first among equal times)
    order = np.lexsort((np.arange(k + n), a_t, a_icao))
    s_icao, s_t, s_surf, s_odd = a_icao[order], a_t[order], a_surf[order], a_odd[order]
    s_msg = is_msg[order]
    s_clat, s_clon = a_clat[order], a_clon[order]
    new_group = np.ones(k + n, dtype=bool)
    new_group[1:] = s_icao[1:] != s_icao[:-1]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(k + n), 0)) if k + n else np.zeros(0, np.int64)

    # partner: latest earlier message of the other format and the same kind
    partner = np.full(k + n, -1, dtype=np.int64)
    for surf in (False, True):
        for fmt in (False, True):
            last = _ffill_in_group(s_msg & (s_surf == surf) & (s_odd == fmt), group_start)
            want = s_msg & (s_surf == surf) & (s_odd != fmt)
            partner = np.where(want, last, partner)
    p = np.maximum(partner, 0)
    paired = (partner >= 0) & (s_t - s_t[p] <= int(PAIR_WINDOW_S * _US))
    e = np.where(s_odd, p, np.arange(k + n))
    o = np.where(s_odd, np.arange(k + n), p)
    s_lat = lat[order]
    s_lon = lon[order]
    s_method = method[order]
    new_rows = order >= k
    receiver_lat = float("nan") if receiver is None else receiver[0]
    receiver_lon = float("nan") if receiver is None else receiver[1]

    # airborne global
    air_pair = paired & ~s_surf & new_rows
    if air_pair.any():
        ix = np.flatnonzero(air_pair)
        la, lo = cpr_global(
            s_clat[e[ix]], s_clon[e[ix]], s_clat[o[ix]], s_clon[o[ix]], s_odd[ix], surface=np.zeros(ix.size, bool),
            ref_lat=np.full(ix.size, np.nan), ref_lon=np.full(ix.size, np.nan),
        )  # fmt: skip
        s_lat[ix], s_lon[ix] = la, lo
        s_method[ix] = np.where(np.isnan(la), 0, GLOBAL)

    feed_lat, feed_lon = state.feed_lat, state.feed_lon
    for _ in range(_MAX_PASSES):
        has = s_method > 0
        last_fix = _ffill_in_group(has, group_start)
        prev_fix = np.where(np.arange(k + n) > 0, np.r_[-1, last_fix[:-1]], -1) if k + n else last_fix
        prev_fix = np.where(prev_fix >= group_start, prev_fix, -1)
        pf = np.maximum(prev_fix, 0)
        fix_lat = np.where(prev_fix >= 0, s_lat[pf], np.nan)
        fix_lon = np.where(prev_fix >= 0, s_lon[pf], np.nan)
        fix_age = np.where(prev_fix >= 0, s_t - s_t[pf], np.iinfo(np.int64).max)
        todo = new_rows & s_msg & ~has
        changed = False
        # surface global: a quadrant reference is the receiver, the aircraft's last fix or the feed's
        surf_pair = todo & paired & s_surf
        if surf_pair.any():
            ix = np.flatnonzero(surf_pair)
            r_lat, r_lon = _surface_refs(ix, s_t, s_surf, s_method, s_lat, s_lon, fix_lat, fix_lon,
                                         receiver_lat, receiver_lon, feed_lat, feed_lon)  # fmt: skip
            la, lo = cpr_global(
                s_clat[e[ix]], s_clon[e[ix]], s_clat[o[ix]], s_clon[o[ix]], s_odd[ix], surface=np.ones(ix.size, bool),
                ref_lat=r_lat, ref_lon=r_lon,
            )  # fmt: skip
            ok = ~np.isnan(la)
            s_lat[ix[ok]], s_lon[ix[ok]] = la[ok], lo[ok]
            s_method[ix[ok]] = GLOBAL
            changed |= bool(ok.any())
            todo &= ~(s_method > 0)
        # local: the aircraft's last fix, recent enough
        loc = todo & (fix_age <= int(LOCAL_REF_S * _US))
        if loc.any():
            ix = np.flatnonzero(loc)
            la, lo = cpr_local(s_clat[ix], s_clon[ix], s_odd[ix], fix_lat[ix], fix_lon[ix], surface=s_surf[ix])
            ok = ~np.isnan(la)
            s_lat[ix[ok]], s_lon[ix[ok]] = la[ok], lo[ok]
            s_method[ix[ok]] = LOCAL
            changed |= bool(ok.any())
        if not changed:
            break

    lat[order], lon[order], method[order] = s_lat, s_lon, s_method
    air_fix = (method > 0) & ~a_surf
    air_fix[:k] &= ~state.is_fix  # carried fixes already counted
    if air_fix.any():
        newest = int(np.flatnonzero(air_fix)[np.argmax(a_t[air_fix])])
        feed_lat, feed_lon = float(lat[newest]), float(lon[newest])
    new_state = _carry(s_icao, s_t, s_surf, s_odd, s_clat, s_clon, s_msg, s_lat, s_lon, s_method,
                       new_group, feed_lat, feed_lon)  # fmt: skip
    return lat[k:], lon[k:], method[k:], new_state


def _surface_refs(
    ix: I64, s_t: I64, s_surf: B, s_method: I8, s_lat: F64, s_lon: F64, fix_lat: F64, fix_lon: F64,
    receiver_lat: float, receiver_lon: float, feed_lat: float, feed_lon: float,
) -> tuple[F64, F64]:  # fmt: skip
    """Quadrant references for the surface pairs ``ix`` (sorted positions)."""
    if receiver_lat == receiver_lat:
        return np.full(ix.size, receiver_lat), np.full(ix.size, receiver_lon)
    r_lat, r_lon = fix_lat[ix].copy(), fix_lon[ix].copy()
    need = np.isnan(r_lat)
    if need.any():
        # the feed's latest airborne fix before the message in time, else its first one after
        air = (s_method > 0) & ~s_surf
        if air.any():
            at = np.flatnonzero(air)
            by_t = at[np.argsort(s_t[at], kind="stable")]
            pos = np.searchsorted(s_t[by_t], s_t[ix[need]], side="right") - 1
            use = by_t[np.where(pos >= 0, pos, 0)]
            before = pos >= 0
            lat_b = np.where(before | (feed_lat != feed_lat), s_lat[use], feed_lat)
            lon_b = np.where(before | (feed_lat != feed_lat), s_lon[use], feed_lon)
            r_lat[need], r_lon[need] = lat_b, lon_b
        else:
            r_lat[need], r_lon[need] = feed_lat, feed_lon
    return r_lat, r_lon


def _carry(
    s_icao: U32, s_t: I64, s_surf: B, s_odd: B, s_clat: U32, s_clon: U32, s_msg: B, s_lat: F64,
    s_lon: F64, s_method: I8, new_group: B, feed_lat: float, feed_lon: float,
) -> CprState:  # fmt: skip
    """Each aircraft's latest message of each kind and format (if recent) and its latest fix (if any)."""
    if s_icao.size == 0:
        return CprState.empty()
    now = int(s_t.max())
    last_row = np.r_[new_group[1:], True]  # last sorted row of each group
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(s_icao.size), 0))
    keep: list[I64] = []
    for surf in (False, True):
        for fmt in (False, True):
            last = _ffill_in_group(s_msg & (s_surf == surf) & (s_odd == fmt), group_start)[last_row]
            last = last[last >= 0]
            keep.append(last[s_t[last] >= now - int(PAIR_WINDOW_S * _US)])
    msgs = np.concatenate(keep)
    fixes = _ffill_in_group(s_method > 0, group_start)[last_row]
    fixes = fixes[fixes >= 0]
    fixes = fixes[s_t[fixes] >= now - int(STATE_KEEP_S * _US)]
    rows = np.concatenate((msgs, fixes))
    is_fix = np.r_[np.zeros(msgs.size, dtype=bool), np.ones(fixes.size, dtype=bool)]
    return CprState(
        icao=s_icao[rows], time=s_t[rows], surface=s_surf[rows], odd=s_odd[rows], cpr_lat=s_clat[rows],
        cpr_lon=s_clon[rows], lat=np.where(is_fix, s_lat[rows], np.nan), lon=np.where(is_fix, s_lon[rows], np.nan),
        is_fix=is_fix, feed_lat=feed_lat, feed_lon=feed_lon,
    )  # fmt: skip
