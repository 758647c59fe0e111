"""Suspected sites: detections → ranked persistent places of interest with their evidence.

How it works (method ``sites/grid-v3``):

1. **Channels.** Each detection becomes evidence on one channel by what was
   seen: structures, thermal anomalies (split night/day by the sun's
   elevation), stationary vehicles, tagged (CoT) vehicles stopped, aircraft
   on the ground (ADS-B track ends that begin or
   end low, carried along the climb to the ground; never within a few km of a
   known airport), boats stopped (never in a known port), RF emitters and
   chemical hits. Moving traffic, own platforms and friendly patrols carry
   none. The ends of id-less (GMTI) vehicle tracks, where vehicles set off or
   stop, are read from the tracks analytic's output, and so are aircraft
   tracks that end airborne in a descent: the transponder went off on the way
   down, and the descent is carried on to the ground
   (:func:`projected_landings`). Where a tagged vehicle sets off and where it
   stops are the ends of each trip of its beacon (reports split at long
   pauses, not at midnight), read from the lake (:func:`beacon_ends`). A
   vehicle seen once a revisit (or a report interval) stopped, or set off,
   anywhere on the stretch it covers in one: those ends are that stretch
   (:func:`track_ends`).
2. **Accumulation** (:mod:`atalaya.fusion.grid`). Detections are binned per
   grid cell, day and channel, weighted by confidence; the grid level follows
   the position uncertainty (error-ellipse area), so a 1 km SIGINT fix spreads
   thin over a coarse cell while an EO fix lands in a 72 m cell. The binned
   state is saved and merged with each new batch: no re-clustering. Fixes of
   identified emitters are kept aside and fused per emitter into bed-downs
   (:mod:`atalaya.fusion.beddown`): where a phone stays, far sharper than any
   one fix, added as emitter evidence for each day it was there. A bed-down
   too loose to name a place is anchored on the place seen by imagery inside
   its error ellipse (:func:`anchor_beddowns`), or dropped; so is a projected
   landing, kilometres uncertain along its course (:func:`anchor_landings`),
   and so are the ends of vehicle tracks and of tagged vehicles' trips: each
   goes to the place seen by imagery it most likely names, weighed against a
   place no imagery saw. Tagged trips that name no such place but set off
   from (or stop at) one spot on several days name a place there
   (:func:`free_places`).
3. **Extraction.** Level-0 cells are smoothed over 3×3 neighbours; local maxima
   over 5×5 (about 360 m) above a minimum mass are candidate sites. Each
   candidate gathers the evidence around it at every level with a kernel that
   counts how much of each cell's mass (given its spread) falls within
   ~100 m of the candidate; its position is the precision-weighted centroid of
   the sharp static evidence near the peak.
4. **Score.** *Context* — buildings, parked vehicles, heat — is what ordinary
   ranches show too, so it saturates at ``context_cap``, below the reporting
   threshold. *Signatures* of illicit use raise the score, each saturating at
   ``signature_cap``, combined by noisy-OR with the context: tagged vehicles
   stopping or setting out; id-less vehicle tracks beginning or ending at a
   building; an emitter bedded down; aircraft on the ground away from airports,
   or a landing projected onto the place; boats stopped by a building or on
   an open-sea shore; a
   building on a remote shore that faces open water (a landing beach's cache);
   chemical hits; and parked vehicles with night heat on the same days (one
   such day, which a ranch shows now and then, stays below the threshold).
   Places where nothing built was seen, next to a stronger site or a built
   one of their kind (an aircraft rolling down a strip, a truck leaving a
   lab, boats along a beach), are dropped as not places of their own. The breakdown is kept as
   evidence with sample observation ids.
5. **Kind.** Chemicals, vehicles with night heat, mostly night heat, or tagged
   loads setting out from the place more than stopping over → lab; aircraft on
   the ground or a projected landing → airstrip; boats ashore or a building on
   the shore → landing beach; structure or bed-down with vehicles → stash
   house; else unknown. A place none of these reports (below its kind's
   threshold) with heat on many distinct days — a gas flare, a kiln — is
   reported as ``persistent_heat`` with a score of its own, from the days
   with heat alone (``persistent_heat_days``); the other kinds' scores are
   untouched. Thresholds per kind: ``SiteParams.thresholds``, or
   ``[sites.thresholds]`` in the workspace's ``atalaya.toml``
   (:func:`params_for`).

:func:`detect_sites` is the pure function over arrays; :func:`run_sites`
reads new lake units, updates ``WORKSPACE/analysis/sites_state.parquet`` (and
the emitter fixes beside it) and upserts the ``sites`` table, keeping analysts' status and notes.

>>> import numpy as np
>>> empty = np.zeros(0)
>>> detect_sites(lon=empty, lat=empty, time_us=empty.astype(np.int64), sensor=[], kind=[]).n_sites
0
"""

from __future__ import annotations

import enum
import functools
import json
import math
import os
import re
import time as _time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import delete, insert, select, update

from atalaya.core.errors import ConfigError, StoreError, ValidationError
from atalaya.core.markings import NO_INPUTS_MARKING, combine_texts
from atalaya.core.provenance import Provenance
from atalaya.core.workspace import Workspace
from atalaya.fusion import grid
from atalaya.fusion.beddown import BeddownParams, Beddowns, beddowns, crowded
from atalaya.geo.kernels import WGS84
from atalaya.geo.matching import match_points
from atalaya.geo.sun import solar_elevation_deg
from atalaya.model.objects import SiteKind, SiteStatus
from atalaya.model.observation import ObjectKind, Sensor
from atalaya.store.knowledge import KnowledgeStore, schema, upsert
from atalaya.store.lake import Lake

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

METHOD = "sites/grid-v3"
"""Method name recorded in provenance and analysis runs."""
STATE_FILE = "sites_state.parquet"
"""State file name under ``WORKSPACE/analysis``."""
FIX_FILE = "sites_emitter_fixes.parquet"
"""Identified emitter fixes under ``WORKSPACE/analysis`` (bed-downs are recomputed from all of them)."""
ANALYST_COLUMNS = ("status", "note", "status_by", "status_at")
"""Columns of the ``sites`` table that belong to analysts: never overwritten by re-analysis."""

_US_PER_S = 1_000_000
_US_PER_DAY = 86_400 * _US_PER_S
PERSISTENT_HEAT = "persistent_heat"
"""Site kind of a place with heat on many days (a gas flare, a kiln, a smelter): reported with its own score, for
an analyst looking for heat; not a signature of illicit use (see :func:`extract_sites`)."""


class Channel(enum.IntEnum):
    """Evidence channels accumulated on the grid."""

    STRUCTURE = 0
    THERMAL_NIGHT = 1
    THERMAL_DAY = 2
    VEHICLE = 3
    EMITTER = 4
    CHEMICAL = 5
    AIRCRAFT = 6
    VESSEL = 7
    TAGGED_VEHICLE = 8
    TAGGED_ORIGIN = 9
    TRACK_END = 10
    """Where an id-less (GMTI) vehicle track begins or ends: a vehicle setting off or stopping."""
    LANDING = 11
    """Where an aircraft whose ADS-B went off while it descended would have landed, anchored on a place seen by
    imagery (:func:`anchor_landings`)."""


GROUPS: dict[str, tuple[Channel, ...]] = {
    "structure": (Channel.STRUCTURE,),
    "thermal": (Channel.THERMAL_NIGHT, Channel.THERMAL_DAY),
    "activity": (
        Channel.VEHICLE,
        Channel.AIRCRAFT,
        Channel.VESSEL,
        Channel.TAGGED_VEHICLE,
        Channel.TAGGED_ORIGIN,
        Channel.TRACK_END,
        Channel.LANDING,
    ),
    "emitter": (Channel.EMITTER,),
    "chemical": (Channel.CHEMICAL,),
}
"""Evidence groups (their saturating probabilities decide a site's kind)."""

_STATIC = (Channel.STRUCTURE, Channel.THERMAL_NIGHT, Channel.THERMAL_DAY, Channel.CHEMICAL)
_IMAGING = np.array([Channel.STRUCTURE, Channel.THERMAL_NIGHT, Channel.THERMAL_DAY, Channel.VEHICLE], dtype=np.int8)
"""Channels of imagery (EO, IR): the days they saw a place are the days it could show vehicles and heat."""
_DEFAULT_SIGMA = {Sensor.ADSB.value: 30.0, Sensor.AIS.value: 20.0, Sensor.COT.value: 15.0}
CHUNK_ROWS = 1_000_000
"""Detections mapped and binned at a time by :func:`detect_sites` (bounds the temporaries)."""
_PEAK_SLICE = 8_192
_HEAT_MAX_VAR = 1_500.0**2
"""Largest spread (ground m², detection error and cell) of heat that counts towards a place's days with heat."""
_MERGE_EVERY = 4


@dataclass(frozen=True, kw_only=True)
class SiteParams:
    """Tuning of the sites analytic (defaults are set on physics, not on a scenario)."""

    default_sigma_m: float = 50.0
    """Position error assumed where a detection has none (and its sensor no default)."""
    default_confidence: float = 0.7
    """Confidence assumed where a detection has none."""
    stationary_mps: float = 2.0
    """Vehicles and vessels slower than this (or without speed) count as stopped."""
    aircraft_ground_m: float = 15.0
    """Aircraft reporting an altitude below this (50 ft: two steps of ADS-B's 25 ft resolution) count as on the
    ground; where no altitude is reported, those slower than ``aircraft_slow_mps`` do."""
    aircraft_slow_mps: float = 40.0
    """Aircraft slower than this count as on the ground."""
    aircraft_land_m: float = 2_000.0
    """Aircraft on the ground farther than this from land (Natural Earth, good to a few hundred metres) carry no
    evidence: no strip lies at sea."""
    night_sun_deg: float = -6.0
    """Thermal seen while the sun stands below this elevation (from civil dusk to civil dawn) counts as night
    heat."""
    channel_weight: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 3.0, 2.0, 1.0, 1.0, 1.0, 1.0)
    """Multiplier per channel (chemical hits and aircraft on the ground are rare and specific)."""
    context_cap: float = 0.35
    """Highest score that context alone gives (buildings, parked vehicles, heat: ranches show them too), below
    ``min_score`` so that a place is reported only with a signature of illicit use."""
    signature_cap: float = 0.6
    """Highest probability one signature alone gives (tagged vehicle stops, emitter bed-down, aircraft on the
    ground away from airports, boat stopped at the shore, chemical hits, vehicles with night heat)."""
    tagged_scale: float = 0.5
    """Support of tagged-vehicle stops at which that signature reaches 63 % of its cap."""
    emitter_scale: float = 1.0
    """Support of emitter bed-downs (one per bed-down day) at which that signature reaches 63 % of its cap."""
    aircraft_scale: float = 1.0
    """Support of aircraft on the ground (weighted by ``channel_weight``) for 63 % of the cap: one aircraft on
    the ground away from any airport is enough (that is what a clandestine strip is)."""
    vessel_scale: float = 2.0
    """Support of boats stopped at the place (weighted by ``channel_weight``) for 63 % of the cap."""
    cooccur_scale: float = 6.0
    """Log-likelihood ratio of a place's days with parked vehicles and night heat together (a working lab against
    an ordinary built place, over the days imagery saw it; :func:`cooccur_llr`) for 63 % of the cap: two such days
    among five imaged pass with the context there is, two among sixteen do not, nor does one."""
    cooccur_lab_rate: float = 0.25
    """Share of the days imagery sees a working lab on which it shows vehicles and night heat together (labs work
    on some days only, and imagery must see it by day and by night)."""
    cooccur_prior_rate: float = 0.03
    """Prior rate of such days at an ordinary built place; the rate used is measured on the run's own built places
    (most are ordinary) and shrunk towards this prior."""
    cooccur_prior_days: float = 200.0
    """Weight of that prior, in place-days: a short period with few built places leans on the prior."""
    shore_radius_m: float = 500.0
    """A built place this close to the coastline (Natural Earth, which is good to a few hundred metres) and away
    from known ports stands on the shore: a landing beach's fuel cache and shelter. A boat stopped this close to
    an open-sea shore is a boat ashore."""
    track_end_scale: float = 0.8
    """Support of id-less vehicle tracks beginning or ending at a building (vehicles setting off from it or
    stopping there, each end weighted by the building's share of the likelihood) for 63 % of the cap: one track
    end that names a building with all the context there is passes (a track that ends where it leaves the
    sensor's view ends anywhere, seldom near a building)."""
    track_end_sigma_m: float = 60.0
    """Position error of an id-less track's end (the tracker's smoothed position), across its course; along it,
    the spread of where the vehicle stopped within a revisit is added (:func:`track_ends`)."""
    track_end_min_points: int = 3
    """Points an id-less track needs for its ends to count."""
    beacon_gap_s: float = 900.0
    """A tagged vehicle's reports that pause longer than this, while it moved slower than ``stationary_mps`` on
    average, are two trips: the first stops where it pauses, the second sets off where it resumes (a beacon
    reports once a minute or so; a truck parked at a stash house keeps reporting)."""
    beacon_free_min_days: int = 2
    """Trip starts (or stops) that name no place seen by imagery, but overlap those of other days (at least this
    many distinct days in all), name a place of their own: a tagged vehicle that sets out from, or stops at, one
    spot day after day (0: never)."""
    landing_window_s: float = 120.0
    """The last this many seconds of an aircraft's track measure its descent (gradient and course): the gradient it
    flies now, not the average since the top of descent (a few of ADS-B's 25 ft steps at 500 ft a minute)."""
    landing_min_descent_m: float = 50.0
    """Least height lost over that window for a track to count as descending (a few steps of ADS-B's 25 ft)."""
    landing_max_m: float = 250_000.0
    """Farthest a descent is carried on to the ground; beyond it a track that went dark names no place."""
    landing_along: float = 0.10
    """1-sigma error of the projected touchdown along the course, as a share of the distance projected: descents
    are seldom held at one gradient to the ground (and altitudes are taken above the landing ground: the bundled map
    has no terrain)."""
    landing_cross: float = 0.02
    """1-sigma error across the course, as a share of the distance projected (a course held within about 1°)."""
    landing_min_sigma_m: float = 300.0
    """Added to both errors (position, a short final turn)."""
    anchor_unseen: float = 0.135
    """Likelihood that an uncertain position (a projected landing, a phone's bed-down, where a vehicle stopped) was
    at a place no imagery saw, in the units of an imaged place's (evidence mass × Gaussian of its distance in
    sigmas): as likely as a place seen once two sigmas off."""
    landing_scale: float = 1.0
    """Support of projected landings (each weighted by its anchor's share of the likelihood) for 63 % of the cap:
    one landing that names a building alone gives 0.38, which with a building's context passes."""
    open_sea_m: float = 25_000.0
    """A shore place must face open water: along some bearing, sea from 2 km out to this far."""
    shore_scale: float = 1.8
    """Days a shore place was seen built for 63 % of the cap: two days with any building evidence pass; one day
    passes only with the structure context near its cap (several sharp detections, not a lone false alarm)."""
    beddown_free_sigma_m: float = 400.0
    """Largest 1-sigma radius of a bed-down that names a place on its own; looser ones (up to
    ``beddown_anchor_sigma_m``) count only where a building seen by imagery lies within their uncertainty."""
    beddown_free_min_days: int = 2
    """Distinct days a bed-down needs to name a place on its own (one day may be a visit); one day is enough
    where it is anchored on a place seen by imagery."""
    beddown_free_min_fixes: int = 3
    """Agreeing fixes a bed-down needs to name a place on its own."""
    beddown_anchor_min_fixes: int = 2
    """Agreeing fixes a bed-down needs to be anchored on a place seen by imagery (the place supplies the rest)."""
    beddown_anchor_sigma_m: float = 1_000.0
    """Largest 1-sigma radius of a bed-down that may be anchored on a building."""
    beddown_crowd_radius_m: float = 3_000.0
    """Radius within which other phones' bed-downs are counted (:func:`~atalaya.fusion.beddown.crowded`)."""
    beddown_crowd_phones: int = 20
    """Other phones bedded down within ``beddown_crowd_radius_m`` that make a place a town: bed-downs there are
    people at home and carry no site evidence (a lab's or a stash house's crew is a handful of phones)."""
    anchor_sigmas: float = 3.0
    """A building within this many sigmas (plus ``support_radius_m``) of a bed-down may anchor it."""
    place_extent_m: float = 50.0
    """1-sigma spread of a place's imaged evidence about it (vehicles parked around a building, detection errors, a
    grid cell's width), added to an uncertain position's error when it is weighed against the place."""
    anchor_min_mass: float = 0.5
    """Least evidence (weighted detections, all days, per cell) of a place that anchors a bed-down."""
    satellite_radius_m: float = 1_000.0
    """A reported place where nothing was built this close to a higher-ranked site, or to a built one of its kind,
    is dropped: not a place of its own (:func:`_suppress_satellites`)."""
    airport_radius_m: float = 5_000.0
    """Aircraft on the ground this close to a known airport (Natural Earth) carry no site evidence."""
    port_radius_m: float = 3_000.0
    """Boats stopped this close to a known port (Natural Earth) carry no site evidence."""
    min_peak_mass: float = 1.5
    """Minimum smoothed level-0 evidence mass (3×3 cells) for a candidate."""
    support_radius_m: float = 100.0
    """Radius within which evidence supports a site (kernel scale), ground metres."""
    group_scale: tuple[float, ...] = (1.0, 0.75, 1.5, 1.0, 0.7)
    """Support mass at which each group (structure, thermal, activity, emitter, chemical) reaches 63 % of its cap."""
    group_cap: tuple[float, ...] = (0.4, 0.4, 0.4, 0.3, 0.55)
    """Highest probability one group alone gives (same order as ``group_scale``)."""
    min_score: float = 0.5
    """Sites scoring below this are not reported (context alone stays below it)."""
    thresholds: tuple[tuple[str, float], ...] = ((PERSISTENT_HEAT, 0.6),)
    """Least score per site kind (``[sites.thresholds]`` in ``atalaya.toml``); kinds not named use ``min_score``.
    The default for ``persistent_heat`` asks for heat on 10 distinct days."""
    persistent_heat_days: float = 10.0
    """Distinct days with heat at a place at which its persistent-heat score reaches 63 % (1 − e⁻¹): the score is
    ``1 − exp(−days / persistent_heat_days)``."""
    samples: int = 8
    """Supporting observation ids kept per site."""


@dataclass(frozen=True, kw_only=True)
class SiteTable:
    """Detected sites, ranked by score (rank 1 first)."""

    id: list[str]
    """Stable site ids derived from the position (see :func:`site_id`)."""
    kind: list[str]
    """SiteKind values."""
    lon: F64
    """Longitude of the precision-weighted centroid."""
    lat: F64
    """Latitude."""
    radius_m: F64
    """Two-sigma uncertainty radius of the position, metres."""
    score: F64
    """Score in [0, 1]."""
    rank: I64
    """1-based rank by score."""
    first_seen_us: I64
    """Earliest supporting detection, µs since the epoch."""
    last_seen_us: I64
    """Latest supporting detection."""
    n_days: I64
    """Distinct days with supporting evidence."""
    first_day: I64
    """First UTC day (days since the epoch) with supporting evidence."""
    evidence: list[dict[str, Any]]
    """Score breakdown per site."""
    samples: list[list[str]]
    """Supporting observation ids (hex), a sample per site."""

    @property
    def n_sites(self) -> int:
        return len(self.id)

    def take(self, idx: npt.NDArray[np.intp]) -> SiteTable:
        """Rows at ``idx`` (ranks are renumbered)."""
        ii = idx.tolist()
        return SiteTable(
            id=[self.id[i] for i in ii], kind=[self.kind[i] for i in ii], lon=self.lon[idx], lat=self.lat[idx],
            radius_m=self.radius_m[idx], score=self.score[idx], rank=np.arange(1, len(ii) + 1, dtype=np.int64),
            first_seen_us=self.first_seen_us[idx], last_seen_us=self.last_seen_us[idx], n_days=self.n_days[idx],
            first_day=self.first_day[idx], evidence=[self.evidence[i] for i in ii],
            samples=[self.samples[i] for i in ii],
        )  # fmt: skip

    def to_arrow(self) -> pa.Table:
        """The sites as an Arrow table (evidence as JSON text)."""
        return pa.table(
            {
                "id": self.id,
                "kind": self.kind,
                "lon": self.lon,
                "lat": self.lat,
                "radius_m": self.radius_m,
                "score": self.score,
                "rank": self.rank,
                "first_seen": pa.array(self.first_seen_us, type=pa.timestamp("us", tz="UTC")),
                "last_seen": pa.array(self.last_seen_us, type=pa.timestamp("us", tz="UTC")),
                "n_days": self.n_days,
                "evidence": [json.dumps(e, sort_keys=True) for e in self.evidence],
            }
        )


def _empty_sites() -> SiteTable:
    f = np.zeros(0)
    i = np.zeros(0, dtype=np.int64)
    return SiteTable(
        id=[], kind=[], lon=f, lat=f.copy(), radius_m=f.copy(), score=f.copy(), rank=i, first_seen_us=i.copy(),
        last_seen_us=i.copy(), n_days=i.copy(), first_day=i.copy(), evidence=[], samples=[],
    )  # fmt: skip


def site_id(lon: float, lat: float) -> str:
    """Stable site id from a position rounded to 1e-4° (about 10 m).

    >>> site_id(-107.12345, 25.56789)
    'site--25.5679-107.1235'
    """
    return f"site--{lat:.4f}{lon:+.4f}".replace("+", "")


# -- detections → channels --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """Detections mapped to evidence channels (only those that carry site evidence)."""

    lon: F64
    """Longitude."""
    lat: F64
    """Latitude."""
    time_us: I64
    """Time, µs since the epoch (UTC)."""
    channel: npt.NDArray[np.int8]
    """:class:`Channel` value."""
    weight: F64
    """Evidence weight (confidence × channel weight)."""
    sigma_m: F64
    """1-sigma position error (geometric mean of the ellipse axes), ground metres."""
    obs_id: list[bytes | None] | None = None
    """Observation ids (16 bytes), when known."""


def _arr(x: Any, n: int, fill: float) -> F64:
    if x is None:
        return np.full(n, fill)
    a = np.asarray(x, dtype=np.float64)
    return np.where(np.isfinite(a), a, fill) if fill == fill else a


_SENSORS = tuple(s.value for s in Sensor)
_KINDS = tuple(k.value for k in ObjectKind)
_SEN = {v: i for i, v in enumerate(_SENSORS)}
_KND = {v: i for i, v in enumerate(_KINDS)}


def codes(values: Any, vocabulary: Sequence[str]) -> npt.NDArray[np.int8]:
    """Position of each value in ``vocabulary`` (-1 for missing or unknown values), as ``int8``.

    Takes Arrow arrays (dictionary-encoded or not) or any sequence of strings;
    strings are matched in Arrow, never held as a NumPy string array.

    >>> codes(["IR", None, "EO", "?"], ["EO", "IR"]).tolist()
    [1, -1, 0, -1]
    >>> codes([], ["EO"]).size
    0
    """
    if isinstance(values, pa.ChunkedArray):
        parts = [codes(c, vocabulary) for c in values.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int8)
    if not isinstance(values, pa.Array):
        obj = np.asarray(values, dtype=object)
        if obj.size == 0:
            return np.zeros(0, dtype=np.int8)
        # the system pool hands large buffers back on release (the default pool keeps them cached)
        values = pa.array(obj, type=pa.string(), memory_pool=pa.system_memory_pool())
    vocab = pa.array(list(vocabulary), type=pa.string())
    if pa.types.is_dictionary(values.type):
        dict_codes = codes(values.dictionary, vocabulary)
        idx = values.indices.fill_null(0).to_numpy(zero_copy_only=False)
        out = dict_codes[idx] if dict_codes.size else np.full(idx.size, -1, dtype=np.int8)
        if values.null_count:
            out[np.asarray(values.is_null().to_numpy(zero_copy_only=False), dtype=bool)] = -1
        return out
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    pool = pa.system_memory_pool()
    pos = pc.coalesce(
        pc.index_in(values, value_set=vocab, memory_pool=pool), pa.scalar(-1, pa.int32()), memory_pool=pool
    )
    return np.asarray(pos.to_numpy(zero_copy_only=False), dtype=np.int8)


def to_evidence(
    *,
    lon: Any,
    lat: Any,
    time_us: Any,
    sensor: Sequence[str | None] | npt.NDArray[Any] | pa.Array | pa.ChunkedArray,
    kind: Sequence[str | None] | npt.NDArray[Any] | pa.Array | pa.ChunkedArray,
    pos_err_m: Any = None,
    err_minor_m: Any = None,
    confidence: Any = None,
    speed_mps: Any = None,
    alt_m: Any = None,
    obs_id: list[bytes | None] | None = None,
    ident: Sequence[str | None] | npt.NDArray[Any] | None = None,
    err_orient_deg: Any = None,
    params: SiteParams = SiteParams(),
) -> Evidence:
    """Map detections to evidence channels with their weight and spread; drops what is no site evidence.

    ``sensor`` and ``kind`` are :class:`Sensor` and :class:`ObjectKind` values
    (strings or Arrow arrays); unknown values carry no evidence. With
    ``ident``, track ends apply (:func:`trip_ends`) and identified emitter fixes
    are left out: they count through their bed-downs (:func:`beddown_state`).
    ``err_orient_deg`` is accepted for symmetry with :func:`detect_sites`.

    >>> ev = to_evidence(lon=[-107.0, -107.0], lat=[25.0, 25.0], time_us=[0, 0], sensor=["IR", "GMTI"],
    ...                  kind=["thermal", "vehicle"], speed_mps=[float("nan"), 20.0])
    >>> ev.channel.tolist(), ev.weight.tolist()
    ([2], [0.7])
    >>> to_evidence(lon=[], lat=[], time_us=[], sensor=[], kind=[]).channel.size
    0
    """
    lon_a, lat_a = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    t = np.asarray(time_us, dtype=np.int64)
    sen, knd = codes(sensor, _SENSORS), codes(kind, _KINDS)
    if ident is not None:
        ids = np.asarray(ident, dtype=object)
        lon_a, lat_a, speed_mps, alt_m = _at_ends(ids, t, sen, knd, lon_a, lat_a, speed_mps, alt_m,
                                                  params.aircraft_ground_m, params.beacon_gap_s)  # fmt: skip
        knd = np.where(_identified_fixes(knd, ids), np.int8(-1), knd)
    return _evidence(
        lon=lon_a, lat=lat_a, time_us=t, sensor=sen, kind=knd, pos_err_m=pos_err_m, err_minor_m=err_minor_m,
        confidence=confidence, speed_mps=speed_mps, alt_m=alt_m, obs_id=obs_id, params=params,
    )  # fmt: skip


def _identified_fixes(kind: npt.NDArray[np.int8], ident: npt.NDArray[np.object_]) -> npt.NDArray[np.bool_]:
    """Emitter fixes that carry an emitter id: they count through bed-downs, not one by one."""
    out: npt.NDArray[np.bool_] = (kind == _KND[ObjectKind.EMITTER.value]) & (ident != None)  # noqa: E711
    return out


def trip_ends(
    ident: Any, time_us: I64, sensor: npt.NDArray[np.int8], kind: npt.NDArray[np.int8]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
    """First and last report per ``ident`` and UTC day of aircraft (ADS-B): each day's track of an airframe.

    Returns ``(end, neighbour, first)``: the row of each track end, the row of
    the report next to it in the same track (itself where the track has one
    report), and whether the end is where the track begins.
    Where an aircraft's track begins or ends low is evidence on that place as
    much as a sighting there; the airborne reports in between are none. (Where
    tagged vehicles set off and stop is found from their whole trips:
    :func:`beacon_ends`.)

    >>> end, nb, first = trip_ends(["A", "A", "A", None], np.array([3, 1, 2, 0]),
    ...                            np.full(4, _SEN["ADSB"], np.int8), np.full(4, _KND["aircraft"], np.int8))
    >>> end.tolist(), nb.tolist(), first.tolist()
    ([1, 0], [2, 2], [True, False])
    """
    ids = np.asarray(ident, dtype=object)
    tracked = (sensor == _SEN[Sensor.ADSB.value]) & (kind == _KND[ObjectKind.AIRCRAFT.value])
    sel = np.flatnonzero(tracked & (ids != None))  # noqa: E711
    if sel.size == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp), np.zeros(0, dtype=bool)
    _, g = np.unique(ids[sel].astype(str), return_inverse=True)
    key = g.astype(np.int64) * 100_000 + time_us[sel] // _US_PER_DAY
    order = np.lexsort((time_us[sel], key))
    ks = key[order]
    first = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    last = np.flatnonzero(np.r_[ks[1:] != ks[:-1], True])
    nb_first = np.where(first < last, first + 1, first)
    nb_last = np.where(last > first, last - 1, last)
    rows = sel[order]
    is_first = np.r_[np.ones(first.size, dtype=bool), np.zeros(last.size, dtype=bool)]
    return np.r_[rows[first], rows[last]], np.r_[rows[nb_first], rows[nb_last]], is_first


def _at_ends(
    ident: Any,
    time_us: I64,
    sensor: npt.NDArray[np.int8],
    kind: npt.NDArray[np.int8],
    lon: F64,
    lat: F64,
    speed: Any,
    alt: Any,
    low_m: float,
    max_leg_s: float = 900.0,
) -> tuple[F64, F64, F64 | None, F64 | None]:
    """Positions, speeds and altitudes with aircraft track ends applied, and tagged vehicles' missing speeds.

    ADS-B aircraft count as airborne everywhere but at their ends; an end
    reported low but above the ground (under ``low_m``) is carried back (or
    forward) along the climb (or descent) to where the altitude reaches zero:
    where it left or met the ground. (Where tagged vehicles set off and stop
    counts through their whole trips: :func:`beacon_ends`.) A tagged vehicle's
    report without a speed gets one from its neighbours (:func:`beacon_speeds`).
    """
    if ident is None:
        return lon, lat, speed, alt
    end, nb, _ = trip_ends(ident, time_us, sensor, kind)
    n = time_us.size
    adsb = (sensor == _SEN[Sensor.ADSB.value]) & (kind == _KND[ObjectKind.AIRCRAFT.value])
    is_end = np.zeros(n, dtype=bool)
    is_end[end] = True
    sp = beacon_speeds(ident, time_us, sensor, kind, lon, lat, speed, max_leg_s=max_leg_s)
    al = np.array(_arr(alt, n, math.nan), copy=True) if alt is not None else np.full(n, math.nan)  # writable
    lon = lon.copy()
    lat = lat.copy()
    a_end = adsb[end]
    e, b = end[a_end], nb[a_end]
    a0, a1 = al[e], al[b]
    # fraction of the step between the end and its neighbour that lies beyond the end, down to the ground
    low = (a1 > a0) & (a0 > 0) & (a0 < low_m) & np.isfinite(a0 + a1)
    k = np.where(low, a0 / np.maximum(a1 - a0, 1e-9), 0.0)
    k = np.minimum(k, 3.0)
    lon[e] = lon[e] - k * (lon[b] - lon[e])
    lat[e] = lat[e] - k * (lat[b] - lat[e])
    al[e] = np.where(k > 0, 0.0, a0)
    al = np.where(adsb & ~is_end, math.inf, al)
    return lon, lat, sp, al


def _legs(ident: Any, time_us: I64, lon: F64, lat: F64) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_], F64, F64]:
    """The reports of each id in time order (``order``, indices into the inputs) and the legs between consecutive
    ones: whether both ends are of one id, the seconds and the ground metres between them."""
    ids = np.asarray(ident)
    _, code = np.unique(ids.astype(str) if ids.dtype == object else ids, return_inverse=True)
    order = np.lexsort((time_us, code))
    mx, my = grid.mercator(lon[order], lat[order])
    same = code[order][1:] == code[order][:-1]
    dt_s = np.diff(time_us[order]) / _US_PER_S
    dist_m = np.hypot(np.diff(mx), np.diff(my)) * grid.ground_scale(my[1:])
    return order, same, dt_s, dist_m


def beacon_speeds(
    ident: Any,
    time_us: I64,
    sensor: npt.NDArray[np.int8],
    kind: npt.NDArray[np.int8],
    lon: F64,
    lat: F64,
    speed: Any,
    *,
    max_leg_s: float = 900.0,
) -> F64 | None:
    """Speeds (m/s) with those a tagged vehicle's (CoT) reports lack filled in from its neighbouring reports: the
    slower of the legs to the report before and after it (one id, legs up to ``max_leg_s``). A beacon that sends
    no ``<track speed>`` still says where it stood: a report reached from a report at the same spot, or left for
    one, is a stop; one between two reports a road's length apart is not. A report alone keeps no speed (it counts
    as stopped, as other reports without one do). ``speed`` is returned as it is (``None`` too) where no tagged
    vehicle's report lacks one.

    >>> t = np.array([0, 60, 120, 180], dtype=np.int64) * 1_000_000
    >>> cot = np.full(4, _SEN["COT"], np.int8), np.full(4, _KND["vehicle"], np.int8)
    >>> sp = beacon_speeds(["T"] * 4, t, *cot, np.array([0.0, 0.0065, 0.013, 0.013]), np.zeros(4), None)
    >>> np.round(sp).tolist()  # 720 m a minute, then parked
    [12.0, 12.0, 0.0, 0.0]
    """
    n = time_us.size
    sp = _arr(speed, n, math.nan) if speed is not None else np.full(n, math.nan)
    ids = np.asarray(ident, dtype=object)
    cot = (sensor == _SEN[Sensor.COT.value]) & (kind == _KND[ObjectKind.VEHICLE.value]) & (ids != None)  # noqa: E711
    if not (cot & ~np.isfinite(sp)).any():
        return speed if speed is None else sp
    sel = np.flatnonzero(cot)
    order, same, dt, dist = _legs(ids[sel], time_us[sel], lon[sel], lat[sel])
    rows = sel[order]
    ok = same & (dt > 0) & (dt <= max_leg_s)
    leg = np.full(dt.size, math.nan)
    leg[ok] = dist[ok] / dt[ok]
    est = np.fmin(np.r_[math.nan, leg], np.r_[leg, math.nan])  # the slower leg; NaN only where both are
    sp = sp.copy()
    fill = ~np.isfinite(sp[rows])
    sp[rows[fill]] = est[fill]
    return sp


def _unit_vectors(lon_deg: Any, lat_deg: Any) -> npt.NDArray[np.float64]:
    lo, la = np.radians(np.asarray(lon_deg, dtype=np.float64)), np.radians(np.asarray(lat_deg, dtype=np.float64))
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=1)


@functools.cache
def _known_points(layer: str) -> npt.NDArray[np.float64]:
    """Unit vectors of a Natural Earth point layer (airports, ports)."""
    from atalaya.geo.naturalearth import load_layer

    pts = [g for _, g in load_layer(layer) if g.geom_type == "Point"]
    return _unit_vectors([g.x for g in pts], [g.y for g in pts])


def near_known(lon: F64, lat: F64, layer: str, radius_m: float) -> npt.NDArray[np.bool_]:
    """Points within ``radius_m`` of a feature of a bundled Natural Earth point layer (``airports``, ``ports``).

    >>> near_known(np.array([-99.072, -107.0]), np.array([19.436, 25.0]), "airports", 5_000.0).tolist()
    [True, False]
    """
    from scipy.spatial import cKDTree

    ref = _known_points(layer)
    if ref.size == 0 or lon.size == 0:
        return np.zeros(lon.size, dtype=bool)
    q = _unit_vectors(lon, lat)
    chord = 2.0 * math.sin(radius_m / (2.0 * 6_371_008.8))
    d, _ = cKDTree(ref).query(q, k=1, distance_upper_bound=chord)
    out: npt.NDArray[np.bool_] = np.isfinite(d)
    return out


def _evidence(
    *,
    lon: F64,
    lat: F64,
    time_us: I64,
    sensor: npt.NDArray[np.int8],
    kind: npt.NDArray[np.int8],
    pos_err_m: Any,
    err_minor_m: Any,
    confidence: Any,
    speed_mps: Any,
    alt_m: Any,
    obs_id: list[bytes | None] | None,
    params: SiteParams,
) -> Evidence:
    """:func:`to_evidence` on integer-coded sensor and kind (positions in ``_SENSORS`` and ``_KINDS``)."""
    n = lon.size
    t = time_us
    nan = math.nan
    ch = np.full(n, -1, dtype=np.int8)
    ch[kind == _KND[ObjectKind.STRUCTURE.value]] = Channel.STRUCTURE
    thermal = kind == _KND[ObjectKind.THERMAL.value]
    if thermal.any():
        night = solar_elevation_deg(t, lon, lat) < params.night_sun_deg
        ch[thermal & night] = Channel.THERMAL_NIGHT
        ch[thermal & ~night] = Channel.THERMAL_DAY
    ch[kind == _KND[ObjectKind.EMITTER.value]] = Channel.EMITTER
    ch[kind == _KND[ObjectKind.CHEMICAL.value]] = Channel.CHEMICAL
    moving = (
        (kind == _KND[ObjectKind.VEHICLE.value])
        | (kind == _KND[ObjectKind.AIRCRAFT.value])
        | (kind == _KND[ObjectKind.VESSEL.value])
    )
    if moving.any():
        mi = np.flatnonzero(moving)
        spd = _arr(speed_mps, n, nan)[mi] if speed_mps is not None else np.full(mi.size, nan)
        alt = _arr(alt_m, n, nan)[mi] if alt_m is not None else np.full(mi.size, nan)
        km = kind[mi]
        friendly = sensor[mi] == _SEN[Sensor.TRACK.value]
        stopped = ~(spd >= params.stationary_mps)  # NaN speed counts as stopped
        # altitude decides where it is known; speed only where it is not
        ground = np.where(np.isfinite(alt), alt < params.aircraft_ground_m, ~(spd >= params.aircraft_slow_mps))
        cm = np.full(mi.size, -1, dtype=np.int8)
        veh = (km == _KND[ObjectKind.VEHICLE.value]) & stopped & ~friendly
        cm[veh] = Channel.VEHICLE
        cm[veh & (sensor[mi] == _SEN[Sensor.COT.value])] = Channel.TAGGED_VEHICLE
        cm[(km == _KND[ObjectKind.AIRCRAFT.value]) & ground & ~friendly] = Channel.AIRCRAFT
        cm[(km == _KND[ObjectKind.VESSEL.value]) & stopped] = Channel.VESSEL
        # aircraft at airports and boats in ports are where they belong
        for c, layer, radius in ((Channel.AIRCRAFT, "airports", params.airport_radius_m),
                                 (Channel.VESSEL, "ports", params.port_radius_m)):  # fmt: skip
            sel = np.flatnonzero(cm == c)
            if sel.size and radius > 0:
                cm[sel[near_known(lon[mi[sel]], lat[mi[sel]], layer, radius)]] = -1
        # and an aircraft "on the ground" out at sea is a track that began or ended low over the water
        sel = np.flatnonzero(cm == Channel.AIRCRAFT)
        if sel.size:
            from atalaya.fusion.maritime import coast_for

            x, y = lon[mi[sel]], lat[mi[sel]]
            cm[sel[coast_for(x, y).distance_to_land(x, y) > params.aircraft_land_m]] = -1
        ch[mi] = cm
    keep = np.flatnonzero(ch >= 0)
    ck = ch[keep]
    sk = sensor[keep]
    conf = np.clip(_arr(confidence, n, params.default_confidence)[keep], 0.0, 1.0)
    sig_default = np.full(keep.size, params.default_sigma_m)
    for sname, v in _DEFAULT_SIGMA.items():
        sig_default[sk == _SEN[sname]] = v
    a = np.asarray(pos_err_m, dtype=np.float64)[keep] if pos_err_m is not None else np.full(keep.size, nan)
    a = np.where(np.isfinite(a) & (a > 0), a, sig_default)
    b = np.asarray(err_minor_m, dtype=np.float64)[keep] if err_minor_m is not None else np.full(keep.size, nan)
    b = np.where(np.isfinite(b) & (b > 0), np.minimum(b, a), a)
    chw = np.asarray(params.channel_weight, dtype=np.float64)
    return Evidence(
        lon=lon[keep],
        lat=lat[keep],
        time_us=t[keep],
        channel=ck,
        weight=conf * chw[ck],
        sigma_m=np.sqrt(a * b),
        obs_id=[obs_id[i] for i in keep.tolist()] if obs_id is not None else None,
    )


def accumulate_evidence(ev: Evidence) -> grid.GridState:
    """Bin evidence into a grid state (see :func:`atalaya.fusion.grid.accumulate`)."""
    return grid.accumulate(
        lon=ev.lon, lat=ev.lat, time_us=ev.time_us, channel=ev.channel, weight=ev.weight, sigma_m=ev.sigma_m,
        obs_id=ev.obs_id,
    )  # fmt: skip


# -- extraction -------------------------------------------------------------------------------------


def _expand(sorted_keys: I64, query: I64) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """All ``(query index, position)`` with ``sorted_keys[position] == query[index]``."""
    lo = np.searchsorted(sorted_keys, query, side="left")
    hi = np.searchsorted(sorted_keys, query, side="right")
    cnt = hi - lo
    tot = int(cnt.sum())
    qi = np.repeat(np.arange(query.size), cnt)
    pos = np.repeat(lo - np.cumsum(np.r_[0, cnt[:-1]]), cnt) + np.arange(tot)
    return qi, pos


def _window(r: int) -> I64:
    d = np.arange(-r, r + 1, dtype=np.int64)
    return (d[:, None] * grid.ROW + d[None, :]).ravel()


_Step = tuple[int, npt.NDArray[np.intp], npt.NDArray[np.bool_], I64]


def _neighbours(cells: I64, query: I64, r: int) -> Iterator[_Step]:
    """Occupied cells around each query cell within a ``(2r+1)²`` window, one step per window column slot.

    ``cells`` is sorted and unique. Each step is ``(dy, pos, hit, dx)``: where
    ``hit``, ``cells[pos]`` is the cell ``dx`` columns and ``dy`` rows from the
    query cell. A row of the window is found with one binary search (cells of a
    grid row are consecutive keys), so the whole window costs ``2r+1``
    searches, not ``(2r+1)²``; each occupied neighbour appears in exactly one
    step. Steps are generated one at a time (each is as large as ``query``).
    """
    n = cells.size
    if n == 0:
        return
    for dy in range(-r, r + 1):
        row = query + dy * grid.ROW
        base = np.searchsorted(cells, row - r)
        for j in range(2 * r + 1):
            pos = np.minimum(base + j, n - 1)
            dx = cells[pos] - row
            hit = (base + j < n) & (dx >= -r) & (dx <= r)
            yield dy, pos, hit, dx


def _run_starts(sorted_keys: I64) -> npt.NDArray[np.intp]:
    """Start of each run of equal keys in a sorted array."""
    if sorted_keys.size == 0:
        return np.zeros(0, dtype=np.intp)
    return np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])


def find_peaks(state: grid.GridState, params: SiteParams = SiteParams()) -> tuple[I64, F64]:
    """Candidate site cells (level 0): local maxima of the 3×3-smoothed evidence mass over 5×5 cells.

    Returns the peak cell keys and their smoothed mass.

    >>> find_peaks(grid.empty_state())[0].size
    0
    """
    fine = np.flatnonzero(state.level == 0)
    if fine.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    fc = state.cell[fine]
    if np.all(fc[1:] >= fc[:-1]):  # states are kept sorted by cell: no sort needed
        start = _run_starts(fc)
        cells = fc[start]
        mass = np.add.reduceat(state.w[fine], start)
    else:
        cells, inv = np.unique(fc, return_inverse=True)
        mass = np.bincount(inv, weights=state.w[fine], minlength=cells.size)
    del fine, fc
    smooth = mass.copy()
    for i in range(0, cells.size, CHUNK_ROWS):  # in slices: each window step is as large as its query
        sl = slice(i, i + CHUNK_ROWS)
        for dy, pos, hit, dx in _neighbours(cells, cells[sl], 1):
            if dy == 0:
                hit &= dx != 0
            smooth[sl] += np.where(hit, mass[pos], 0.0)
    cand = np.flatnonzero(smooth >= params.min_peak_mass)
    if cand.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    sc = smooth[cand]
    is_max = np.ones(cand.size, dtype=bool)
    for dy, pos, hit, dx in _neighbours(cells, cells[cand], 2):
        off = dy * grid.ROW + dx
        other = smooth[pos]
        # ties go to the lower key, so exactly one cell of a plateau survives
        beats = hit & (off != 0) & ((other > sc) | ((other == sc) & (off < 0)))
        is_max &= ~beats
    peaks = cand[is_max]
    return cells[peaks], smooth[peaks]


def _distinct_days(group: I64, day: I64, n_groups: int) -> I64:
    """Number of distinct days per group (a day bitmask per group when the days span at most 64).

    >>> _distinct_days(np.array([0, 0, 0, 2]), np.array([5, 5, 7, 1]), 3).tolist()
    [2, 0, 1]
    """
    if day.size == 0:
        return np.zeros(n_groups, dtype=np.int64)
    d0 = int(day.min())
    if int(day.max()) - d0 < 64:
        mask = np.zeros(n_groups, dtype=np.uint64)
        np.bitwise_or.at(mask, group, np.left_shift(np.uint64(1), (day - d0).astype(np.uint64)))
        return np.bitwise_count(mask).astype(np.int64)
    gd = np.unique(group * (1 << 32) + (day - d0))
    return np.bincount((gd >> 32).astype(np.int64), minlength=n_groups)


def cooccur_llr(
    co_days: I64, img_days: I64, built: npt.NDArray[np.bool_], params: SiteParams = SiteParams()
) -> tuple[F64, float]:
    """How strongly each place's days with vehicles and night heat together say "lab", and the background rate.

    A count alone grows with the period: over sixteen days ordinary ranches gather two or three such days too. So
    the days are weighed against the days imagery saw the place: the log-likelihood ratio of ``k`` such days among
    ``n`` imaged under a working lab's rate (``cooccur_lab_rate``) against an ordinary place's. The ordinary rate
    is measured on the run's built places (ordinary ones are the great majority), shrunk towards
    ``cooccur_prior_rate``, as a radar's CFAR sets its threshold from the cells around. Each such day adds to the
    ratio, each imaged day without one takes from it; the ratio is clipped at 0 (no evidence either way).

    With no built place to measure on, the rate is the prior's:

    >>> llr, rate = cooccur_llr(np.array([0, 1, 2, 2]), np.array([5, 5, 5, 16]), np.zeros(4, bool))
    >>> round(rate, 3), np.round(llr, 2).tolist()
    (0.03, [0.0, 1.09, 3.47, 0.64])
    """
    k = np.asarray(co_days, dtype=np.float64)
    n = np.maximum(np.asarray(img_days, dtype=np.float64), k)
    m = params.cooccur_prior_days
    rate = float((k[built].sum() + params.cooccur_prior_rate * m) / (n[built].sum() + m))
    p1 = max(params.cooccur_lab_rate, rate)
    llr = k * np.log(p1 / rate) + (n - k) * np.log((1.0 - p1) / (1.0 - rate))
    return np.where(k > 0, np.maximum(llr, 0.0), 0.0), rate


def _group_prob(support: F64, scale: float, cap: float) -> F64:
    out: F64 = cap * (1.0 - np.exp(-support / scale))
    return out


def _shore_days(px: F64, py: F64, structure_days: I64, structure: F64, params: SiteParams) -> I64:
    """Days a built place on the shore (within ``shore_radius_m`` of the coastline, away from known ports) was
    seen built; 0 elsewhere. ``structure`` is the place's structure evidence in [0, 1]."""
    out = np.zeros(px.size, dtype=np.int64)
    cand = np.flatnonzero((structure_days > 0) & (structure > 0.1))
    if cand.size == 0 or params.shore_radius_m <= 0:
        return out
    from atalaya.fusion.maritime import near_shore

    lon, lat = grid.inverse_mercator(px[cand], py[cand])
    # boats come in from the open sea, not through a lagoon behind a barrier island
    ok = near_shore(lon, lat, params.shore_radius_m, open_sea_m=params.open_sea_m)
    if params.port_radius_m > 0:
        ok &= ~near_known(lon, lat, "ports", params.port_radius_m)
    out[cand[ok]] = structure_days[cand[ok]]
    return out


def _boats_ashore(px: F64, py: F64, vessel: F64, structure: F64, params: SiteParams) -> npt.NDArray[np.bool_]:
    """Places where a stopped boat means a landing: at a building, or on an open-sea shore (within
    ``shore_radius_m`` of the coastline) with no building seen. A boat stopped out at sea is no place on land.
    ``vessel`` is the place's stopped-boat support, ``structure`` its structure evidence in [0, 1]."""
    out: npt.NDArray[np.bool_] = structure > 0.1
    cand = np.flatnonzero(~out & (vessel > 0))
    if cand.size and params.shore_radius_m > 0:
        from atalaya.fusion.maritime import near_shore

        lon, lat = grid.inverse_mercator(px[cand], py[cand])
        out[cand[near_shore(lon, lat, params.shore_radius_m, open_sea_m=params.open_sea_m)]] = True
    return out


def _suppress_satellites(
    keep: npt.NDArray[np.intp], px: F64, py: F64, structure: F64, kind: npt.NDArray[np.object_], params: SiteParams
) -> npt.NDArray[np.intp]:
    """Drop reported places where nothing built was seen (``structure`` evidence in [0, 1] at most 0.1) within
    ``satellite_radius_m`` of a higher-ranked site, or of a built one of the same ``kind``: an aircraft's roll down
    a strip, a truck leaving a lab, boats and cars along the beach a landing uses; not places of their own.

    ``keep`` is ranked best first; the result keeps that order.
    """
    lone = structure[keep] <= 0.1
    kk = kind[keep]
    if not lone.any() or params.satellite_radius_m <= 0:
        return keep
    from scipy.spatial import cKDTree

    scale = grid.ground_scale(py[keep])
    pts = np.stack([px[keep], py[keep]], axis=1)
    tree = cKDTree(pts)
    drop = np.zeros(keep.size, dtype=bool)
    for i in np.flatnonzero(lone).tolist():
        near = tree.query_ball_point(pts[i], params.satellite_radius_m / float(scale[i]))
        if any((j < i and not drop[j]) or (not lone[j] and kk[j] == kk[i]) for j in near):
            drop[i] = True
    return keep[~drop]


def extract_sites(state: grid.GridState, params: SiteParams = SiteParams()) -> SiteTable:
    """Sites from an accumulated state: peaks, gathered evidence, position, score, kind; ranked by score.

    >>> extract_sites(grid.empty_state()).n_sites
    0
    """
    peak_cells, _ = find_peaks(state, params)
    npk = peak_cells.size
    if npk == 0:
        return _empty_sites()
    # rows by cell key (all levels share the key space; the level is checked after the lookup)
    if np.all(state.cell[1:] >= state.cell[:-1]):
        rorder: npt.NDArray[np.intp] | None = None
        rsorted = state.cell
    else:
        rorder = np.argsort(state.cell, kind="stable")
        rsorted = state.cell[rorder]
    px0, py0 = grid.cell_center(peak_cells, 0)

    def gather(px: F64, py: F64, levels: Sequence[int], radius_cells: dict[int, int]) -> tuple[I64, I64]:
        pk: list[I64] = []
        rw: list[I64] = []
        for lv in levels:
            base = grid.cell_keys(px, py, lv)
            win = _window(radius_cells.get(lv, 1))
            qi, pos = _expand(rsorted, (base[:, None] + win[None, :]).ravel())
            rows = pos if rorder is None else rorder[pos]
            at_lv = state.level[rows] == lv
            pk.append(qi[at_lv] // win.size)
            rw.append(rows[at_lv])
        return np.concatenate(pk).astype(np.int64), np.concatenate(rw).astype(np.int64)

    # position: precision-weighted centroid of static evidence in the 3×3 around the peak (all evidence if none)
    p_i, r_i = gather(px0, py0, [0], {0: 1})
    static = np.isin(state.channel[r_i], np.asarray(_STATIC, dtype=np.int8))
    has_static = np.bincount(p_i[static], minlength=npk) > 0
    use = static | ~has_static[p_i]
    q = np.bincount(p_i[use], weights=state.q[r_i[use]], minlength=npk)
    qx = np.bincount(p_i[use], weights=state.qx[r_i[use]], minlength=npk)
    qy = np.bincount(p_i[use], weights=state.qy[r_i[use]], minlength=npk)
    px = np.where(q > 0, qx / np.maximum(q, 1e-300), px0)
    py = np.where(q > 0, qy / np.maximum(q, 1e-300), py0)

    # support: every row near the site, every level, with a kernel for its spread (peaks in slices: each
    # peak gathers many rows, so the pair arrays are bounded by the slice)
    nch = len(Channel)
    support = np.zeros((npk, nch))
    n_days = np.zeros(npk, dtype=np.int64)
    ch_days = np.zeros((npk, nch), dtype=np.int64)
    n_det = np.zeros(npk, dtype=np.int64)
    big = np.iinfo(np.int64).max
    first = np.full(npk, big)
    last = np.full(npk, -big)
    first_day = np.full(npk, big)
    co_days = np.zeros(npk, dtype=np.int64)
    img_days = np.zeros(npk, dtype=np.int64)
    heat_days = np.zeros(npk, dtype=np.int64)
    heat_first = np.full(npk, big)
    heat_last = np.full(npk, -big)
    strong_p: list[I64] = []
    strong_r: list[I64] = []
    strong_kw: list[F64] = []
    strong_kq: list[F64] = []
    r0 = params.support_radius_m
    for lo in range(0, npk, _PEAK_SLICE):
        hi = min(lo + _PEAK_SLICE, npk)
        m = hi - lo
        p_i, r_i = gather(px[lo:hi], py[lo:hi], range(grid.LEVELS), {0: 2})
        scale = grid.ground_scale(py[lo:hi])[p_i]
        rq = np.maximum(state.q[r_i], 1e-300)
        d2 = ((state.qx[r_i] / rq - px[lo:hi][p_i]) ** 2 + (state.qy[r_i] / rq - py[lo:hi][p_i]) ** 2) * scale**2
        spread2 = (state.w[r_i] / rq) * scale**2  # mean variance of the row's detections, ground m²
        lv = state.level[r_i]
        cell_g = grid.cell_size(lv) * scale
        var_row = spread2 + np.where(lv > 0, cell_g**2 / 12.0, 0.0)
        kern = r0 * r0 / (r0 * r0 + var_row) * np.exp(-d2 / (2.0 * (r0 * r0 + var_row)))
        # days with heat at the place: heat whose pixel (or error) covers it, however coarse (a MODIS kilometre)
        hch = state.channel[r_i]
        hot = np.flatnonzero(((hch == Channel.THERMAL_NIGHT) | (hch == Channel.THERMAL_DAY))
                             & (d2 <= 2.4 * (r0 * r0 + var_row)) & (var_row <= _HEAT_MAX_VAR))  # fmt: skip
        hp, hd = p_i[hot], state.day[r_i[hot]].astype(np.int64)
        heat_days[lo:hi] = _distinct_days(hp, hd, m)
        np.minimum.at(heat_first[lo:hi], hp, hd)
        np.maximum.at(heat_last[lo:hi], hp, hd)
        del d2, spread2, cell_g, var_row, scale, lv, hch, hot, hp, hd
        kw = kern * state.w[r_i]
        ch = state.channel[r_i].astype(np.int64)
        sup = np.bincount(p_i * nch + ch, weights=kw, minlength=m * nch)
        support[lo:hi] = np.asarray(sup, dtype=np.float64).reshape(m, nch)

        # days and detections that count: rows whose kernel is at least ~0.3
        strong = kern >= 0.3
        sp_i, sr_i = p_i[strong], r_i[strong]
        strong_p.append(sp_i + lo)
        strong_r.append(sr_i)
        strong_kw.append(kw[strong])
        strong_kq.append((kern * state.q[r_i])[strong])
        del p_i, r_i, kern, kw, ch, strong
        day = state.day[sr_i].astype(np.int64)
        n_days[lo:hi] = _distinct_days(sp_i, day, m)
        sch = sp_i * nch + state.channel[sr_i].astype(np.int64)
        ch_days[lo:hi] = _distinct_days(sch, day, m * nch).reshape(m, nch)
        # days with parked vehicles and night heat both at the place (a lab at work, not a ranch's odd fire)
        sch_c = state.channel[sr_i]
        vk = np.unique(sp_i[sch_c == Channel.VEHICLE] * (1 << 32) + day[sch_c == Channel.VEHICLE])
        hk = np.unique(sp_i[sch_c == Channel.THERMAL_NIGHT] * (1 << 32) + day[sch_c == Channel.THERMAL_NIGHT])
        co_days[lo:hi] = np.bincount(np.intersect1d(vk, hk, assume_unique=True) >> 32, minlength=m)
        imaging = np.isin(sch_c, _IMAGING)
        img_days[lo:hi] = _distinct_days(sp_i[imaging], day[imaging], m)
        n_det[lo:hi] = np.bincount(sp_i, weights=state.n[sr_i], minlength=m).astype(np.int64)
        np.minimum.at(first[lo:hi], sp_i, state.t_first[sr_i])
        np.maximum.at(last[lo:hi], sp_i, state.t_last[sr_i])
        np.minimum.at(first_day[lo:hi], sp_i, day)
    p_i = np.concatenate(strong_p) if strong_p else np.zeros(0, dtype=np.int64)
    r_i = np.concatenate(strong_r) if strong_r else np.zeros(0, dtype=np.int64)
    kw = np.concatenate(strong_kw) if strong_kw else np.zeros(0)
    kq = np.concatenate(strong_kq) if strong_kq else np.zeros(0)

    # score: context (buildings, parked vehicles, heat — what ordinary ranches show too) can never carry a site
    # alone; signatures of illicit use raise it: tagged vehicles stopping, emitters bedded down, aircraft on the
    # ground away from airports, boats stopped at the shore, chemical hits, and vehicles and night heat together
    # on the same day (a lab at work)
    gnames = list(GROUPS)
    gsup = np.stack([support[:, [int(c) for c in GROUPS[g]]].sum(axis=1) for g in gnames], axis=1)
    gprob = np.stack(
        [_group_prob(gsup[:, k], params.group_scale[k], params.group_cap[k]) for k in range(len(gnames))], axis=1
    )
    th_n = support[:, Channel.THERMAL_NIGHT]
    th_all = th_n + support[:, Channel.THERMAL_DAY]
    night_frac = np.where(th_all > 0, th_n / np.maximum(th_all, 1e-300), 0.0)
    ctx_parts = np.stack(
        [
            _group_prob(support[:, Channel.STRUCTURE], 1.0, 1.0),
            _group_prob(th_n + 0.5 * support[:, Channel.THERMAL_DAY], 1.0, 1.0),
            _group_prob(support[:, Channel.VEHICLE], 1.5, 1.0),
        ],
        axis=1,
    )
    context = params.context_cap * (1.0 - np.prod(1.0 - ctx_parts, axis=1))
    co_sig, _ = cooccur_llr(co_days, img_days, ctx_parts[:, 0] > 0.1, params)
    shore_days = _shore_days(px, py, ch_days[:, Channel.STRUCTURE], ctx_parts[:, 0], params)
    ashore = _boats_ashore(px, py, support[:, Channel.VESSEL], ctx_parts[:, 0], params)
    sig = np.stack(
        [
            _group_prob(
                support[:, Channel.TAGGED_VEHICLE] + support[:, Channel.TAGGED_ORIGIN],
                params.tagged_scale,
                params.signature_cap,
            ),
            _group_prob(support[:, Channel.EMITTER], params.emitter_scale, params.signature_cap),
            _group_prob(support[:, Channel.AIRCRAFT], params.aircraft_scale, params.signature_cap),
            _group_prob(support[:, Channel.VESSEL], params.vessel_scale, params.signature_cap)
            * ashore,  # a boat stopped at sea is no place on land
            _group_prob(support[:, Channel.CHEMICAL], 1.0, params.signature_cap),
            _group_prob(co_sig, params.cooccur_scale, params.signature_cap),
            _group_prob(shore_days.astype(np.float64), params.shore_scale, params.signature_cap),
            _group_prob(support[:, Channel.TRACK_END], params.track_end_scale, params.signature_cap)
            * (ctx_parts[:, 0] > 0.1),  # vehicles stop on roads too: only at a building is it a place
            _group_prob(support[:, Channel.LANDING], params.landing_scale, params.signature_cap),
        ],
        axis=1,
    )
    signature = 1.0 - np.prod(1.0 - sig, axis=1)
    score = 1.0 - (1.0 - context) * (1.0 - signature)

    # kind
    def present(g: str, frac: float = 0.25) -> npt.NDArray[np.bool_]:
        k = gnames.index(g)
        out: npt.NDArray[np.bool_] = gprob[:, k] >= frac * params.group_cap[k]
        return out

    thermal, chem, struct, emit = present("thermal"), present("chemical"), present("structure"), present("emitter")
    air = (support[:, Channel.AIRCRAFT] >= 0.5 * params.channel_weight[Channel.AIRCRAFT]) | (
        support[:, Channel.LANDING] >= 0.5 * params.channel_weight[Channel.LANDING]
    )
    boat = support[:, Channel.VESSEL] >= 0.5 * params.channel_weight[Channel.VESSEL]
    veh = (support[:, Channel.VEHICLE] + support[:, Channel.TAGGED_VEHICLE] + support[:, Channel.TRACK_END]) >= 0.5
    # loads set out from a lab and stop over at a stash house
    origin_more = support[:, Channel.TAGGED_ORIGIN] > support[:, Channel.TAGGED_VEHICLE]
    kind = np.full(npk, SiteKind.UNKNOWN.value, dtype=object)
    kind[(struct | emit) & veh] = SiteKind.STASH_HOUSE.value
    kind[origin_more] = SiteKind.LAB.value
    kind[boat | (shore_days > 0)] = SiteKind.LANDING_BEACH.value
    kind[air] = SiteKind.AIRSTRIP.value
    kind[chem | (co_days > 0) | (thermal & (night_frac >= 0.5))] = SiteKind.LAB.value

    # persistent heat: a place that no kind above reports, with heat on many days, is reported as such with its
    # own score (the other kinds' scores and thresholds are untouched)
    thr = dict(params.thresholds)
    kind_thr = np.array([thr.get(str(k), params.min_score) for k in kind.tolist()], dtype=np.float64)
    heat_score = 1.0 - np.exp(-heat_days / max(params.persistent_heat_days, 1e-9))
    main = score >= kind_thr
    ph = ~main & (heat_score >= thr.get(PERSISTENT_HEAT, params.min_score)) & (heat_days > 0)
    final = np.where(ph, heat_score, score)
    kind_final = np.where(ph, PERSISTENT_HEAT, kind)
    parts = []
    for sel in (main, ph):
        k = np.flatnonzero(sel)
        k = k[np.lexsort((peak_cells[k], -score[k] if sel is main else -heat_score[k]))]
        parts.append(_suppress_satellites(k, px, py, ctx_parts[:, 0], kind_final, params))
    keep = np.concatenate(parts)
    if keep.size == 0:
        return _empty_sites()
    keep = keep[np.lexsort((peak_cells[keep], -final[keep]))]
    kind = kind_final

    lon, lat = grid.inverse_mercator(px[keep], py[keep])
    qn = np.bincount(p_i, weights=kq, minlength=npk)[keep]
    sc = grid.ground_scale(py[keep])
    radius = np.maximum(2.0 * sc / np.sqrt(np.maximum(qn, 1e-300)), 10.0)
    radius = np.minimum(radius, params.support_radius_m * 3)

    # samples: heaviest supporting rows that carry an id
    samples: list[list[str]] = [[] for _ in range(npk)]
    order = np.lexsort((-kw, p_i))
    want = np.zeros(npk, dtype=bool)
    want[keep] = True
    for j in order[want[p_i[order]]].tolist():
        s = state.sample[r_i[j]]
        lst = samples[p_i[j]]
        if s is not None and len(lst) < params.samples and s.hex() not in lst:
            lst.append(s.hex())

    evidence = _evidence_dicts(
        score=score[keep], gprob=gprob[keep],
        gnames=gnames, support=support[keep], ch_days=ch_days[keep], n_days=n_days[keep],
        night_frac=night_frac[keep], n_det=n_det[keep], radius=radius, context=context[keep], sig=sig[keep],
        co_days=co_days[keep], img_days=img_days[keep], heat_days=heat_days[keep], heat_score=heat_score[keep],
        heat_first=heat_first[keep], heat_last=heat_last[keep], final=final[keep],
    )  # fmt: skip
    return SiteTable(
        id=[site_id(float(a), float(b)) for a, b in zip(lon, lat, strict=True)],
        kind=[str(k) for k in kind[keep]],
        lon=lon,
        lat=lat,
        radius_m=radius,
        score=final[keep],
        rank=np.arange(1, keep.size + 1, dtype=np.int64),
        first_seen_us=first[keep],
        last_seen_us=last[keep],
        n_days=n_days[keep].astype(np.int64),
        first_day=first_day[keep],
        evidence=evidence,
        samples=[samples[i] for i in keep.tolist()],
    )


_CH_NAMES = [c.name.lower() for c in Channel]
SIGNATURES = ("tagged_vehicle", "emitter_beddown", "aircraft_on_ground", "boat_ashore", "chemical",
              "vehicles_with_night_heat", "built_on_shore", "vehicle_stops", "projected_landing")  # fmt: skip
"""Signatures of illicit use, in the order the score combines them."""
_MOVEMENT = [int(Channel.VEHICLE), int(Channel.AIRCRAFT), int(Channel.VESSEL), int(Channel.TAGGED_VEHICLE),
             int(Channel.TAGGED_ORIGIN), int(Channel.TRACK_END), int(Channel.LANDING)]  # fmt: skip


def _evidence_dicts(
    *,
    score: F64,
    gprob: F64,
    gnames: list[str],
    support: F64,
    ch_days: I64,
    n_days: I64,
    night_frac: F64,
    n_det: I64,
    radius: F64,
    context: F64,
    sig: F64,
    co_days: I64,
    img_days: I64,
    heat_days: I64 | None = None,
    heat_score: F64 | None = None,
    heat_first: I64 | None = None,
    heat_last: I64 | None = None,
    final: F64 | None = None,
) -> list[dict[str, Any]]:
    """The score breakdown of each site (rounded in bulk, then one dict per site); ``score`` is the kinds' score
    and ``final`` the one reported (the persistent-heat score for that kind)."""
    sg = np.round(sig, 4).tolist()
    ctx = np.round(context, 4).tolist()
    co = co_days.tolist()
    im = img_days.tolist()
    gp = np.round(gprob, 4).tolist()
    sup = np.round(support, 3).tolist()
    cd = ch_days.tolist()
    mov = np.round(support[:, _MOVEMENT].sum(axis=1), 3).tolist()
    cols = zip(
        np.round(score if final is None else final, 4).tolist(), gp,
        sup, cd, n_days.tolist(), np.round(night_frac, 3).tolist(), mov, n_det.tolist(),
        np.round(radius, 1).tolist(), ctx, sg, co, im, strict=True,
    )  # fmt: skip
    out: list[dict[str, Any]] = []
    for sc, g, su, dd, nd, nf, mv, nt, rd, cx, si, cd_, im_ in cols:
        out.append(
            {
                "method": METHOD,
                "score": sc,
                "context": cx,
                "signatures": {name: v for name, v in zip(SIGNATURES, si, strict=True) if v > 0},
                "vehicles_with_night_heat_days": cd_,
                "imaged_days": im_,
                "groups": {name: v for name, v in zip(gnames, g, strict=True) if v > 0},
                "support": {name: v for name, v in zip(_CH_NAMES, su, strict=True) if v > 0},
                "days": {name: v for name, v in zip(_CH_NAMES, dd, strict=True) if v > 0},
                "n_days": nd,
                "night_thermal_fraction": nf,
                "movement": mv,
                "n_detections": nt,
                "radius_m": rd,
            }
        )
    if heat_days is not None and heat_score is not None and heat_first is not None and heat_last is not None:
        hs = np.round(heat_score, 4).tolist()
        kinds_score = np.round(score, 4).tolist()
        for i, (d, h, a, b) in enumerate(zip(heat_days.tolist(), hs, heat_first.tolist(), heat_last.tolist(),
                                             strict=True)):  # fmt: skip
            if final is not None and kinds_score[i] != round(float(final[i]), 4):
                out[i]["kinds_score"] = kinds_score[i]
            if d > 0:
                out[i]["persistent_heat"] = {"score": h, "days": d, "span_days": b - a + 1,
                                             "first_day": _day_text(a), "last_day": _day_text(b)}  # fmt: skip
    return out


def _day_text(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, tz=UTC).date().isoformat()


def detect_sites(
    *,
    lon: Any,
    lat: Any,
    time_us: Any,
    sensor: Sequence[str | None] | npt.NDArray[Any],
    kind: Sequence[str | None] | npt.NDArray[Any],
    pos_err_m: Any = None,
    err_minor_m: Any = None,
    confidence: Any = None,
    speed_mps: Any = None,
    alt_m: Any = None,
    obs_id: list[bytes | None] | None = None,
    ident: Sequence[str | None] | npt.NDArray[Any] | None = None,
    err_orient_deg: Any = None,
    track_ends: TrackEnds | tuple[Any, Any, Any] | None = None,
    params: SiteParams = SiteParams(),
) -> SiteTable:
    """Ranked suspected sites from detections (pure: arrays in, table out).

    ``track_ends`` are where id-less vehicle tracks begin and end
    (:func:`track_ends`, or ``(lon, lat, time_us)`` known to
    ``track_end_sigma_m``): vehicles setting off or stopping.

    Emitter fixes that carry an ``ident`` are not binned one by one: each
    emitter's fixes are combined into a bed-down (:mod:`atalaya.fusion.beddown`)
    that counts as emitter evidence on each day it was seen there. ADS-B
    aircraft (one track per id and day) that went dark while descending are
    carried on to the ground (:func:`projected_landings`) and count where that
    names a place seen by imagery. Tagged vehicles (CoT) count where their
    trips set off and stop (:func:`beacon_ends`).

    Equivalent to accumulating the detections in one batch and extracting;
    :func:`run_sites` does the same incrementally.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> n = 40
    >>> lon = -107.0 + rng.normal(0, 0.0003, n); lat = 25.0 + rng.normal(0, 0.0003, n)
    >>> t = (20_514 + (np.arange(n) // 4) % 4) * 86_400_000_000 + 12 * 3_600_000_000
    >>> kinds = ["structure", "thermal", "vehicle", "thermal"] * (n // 4)
    >>> s = detect_sites(lon=lon, lat=lat, time_us=t, sensor=["EO", "IR", "EO", "IR"] * (n // 4), kind=kinds,
    ...                  pos_err_m=np.full(n, 30.0))
    >>> s.n_sites, s.kind, s.n_days.tolist(), s.evidence[0]["vehicles_with_night_heat_days"]
    (1, ['lab'], [4], 4)
    """
    lon_a = np.asarray(lon, dtype=np.float64)
    lat_a = np.asarray(lat, dtype=np.float64)
    t = np.asarray(time_us, dtype=np.int64)
    fixes: pa.Table | None = None
    landings: Landings | None = None
    tagged_ends: TrackEnds | None = None
    # sensor and kind are coded chunk by chunk (their string forms are as large as the input); track ends and
    # bed-downs need them whole
    sen: npt.NDArray[np.int8] | None = None
    knd: npt.NDArray[np.int8] | None = None
    if ident is not None:
        sen, knd = codes(sensor, _SENSORS), codes(kind, _KINDS)
        ids = np.asarray(ident, dtype=object)
        fx = np.flatnonzero(_identified_fixes(knd, ids))
        if fx.size:
            fixes = pa.table({
                "ident": pa.array(ids[fx].tolist(), pa.string()), "time_us": t[fx], "lon": lon_a[fx],
                "lat": lat_a[fx], "pos_err_m": _arr(pos_err_m, t.size, math.nan)[fx],
                "err_minor_m": _arr(err_minor_m, t.size, math.nan)[fx],
                "err_orient_deg": _arr(err_orient_deg, t.size, math.nan)[fx],
            })  # fmt: skip
            knd = knd.copy()
            knd[fx] = -1
        if alt_m is not None:  # aircraft tracks (one per ADS-B id and day) that went dark descending
            air = np.flatnonzero((sen == _SEN[Sensor.ADSB.value]) & (knd == _KND[ObjectKind.AIRCRAFT.value])
                                 & (ids != None))  # noqa: E711  # fmt: skip
            _, code = np.unique(ids[air].astype(str), return_inverse=True)
            day_key = code.astype(np.int64) * 1_000_000 + t[air] // _US_PER_DAY
            landings = projected_landings(day_key, t[air], lon_a[air], lat_a[air],
                                          _arr(alt_m, t.size, math.nan)[air], params)  # fmt: skip
        cot = np.flatnonzero((sen == _SEN[Sensor.COT.value]) & (knd == _KND[ObjectKind.VEHICLE.value])
                             & (ids != None))  # noqa: E711  # fmt: skip
        tagged_ends = beacon_ends(ids[cot], t[cot], lon_a[cot], lat_a[cot], gap_s=params.beacon_gap_s,
                                  moving_mps=params.stationary_mps,
                                  sigma_m=_DEFAULT_SIGMA[Sensor.COT.value])  # fmt: skip
        lon_a, lat_a, speed_mps, alt_m = _at_ends(ident, t, sen, knd, lon_a, lat_a, speed_mps, alt_m,
                                                  params.aircraft_ground_m, params.beacon_gap_s)  # fmt: skip
    opt = {"pos_err_m": pos_err_m, "err_minor_m": err_minor_m, "confidence": confidence, "speed_mps": speed_mps,
           "alt_m": alt_m}  # fmt: skip
    opt_a = {k: None if v is None else np.asarray(v, dtype=np.float64) for k, v in opt.items()}
    parts: list[grid.GridState] = []
    for i in range(0, max(lon_a.size, 1), CHUNK_ROWS):
        sl = slice(i, i + CHUNK_ROWS)
        ev = _evidence(
            lon=lon_a[sl], lat=lat_a[sl], time_us=t[sl],
            sensor=sen[sl] if sen is not None else codes(sensor[sl], _SENSORS),
            kind=knd[sl] if knd is not None else codes(kind[sl], _KINDS),
            obs_id=obs_id[sl] if obs_id is not None else None, params=params,
            **{k: None if v is None else v[sl] for k, v in opt_a.items()},
        )  # fmt: skip
        parts.append(accumulate_evidence(ev))
        del ev
        if len(parts) >= _MERGE_EVERY:  # merge as we go: a few partial states at a time, not all of them
            parts = [grid.merge_many(parts)]
    state = grid.merge_many(parts)
    if track_ends is not None:
        te = track_ends if isinstance(track_ends, TrackEnds) else TrackEnds.at(*track_ends, params.track_end_sigma_m)
        state = grid.merge(state, track_end_state(te, state, params))
    extra = [landing_state(landings, state, params)] if landings is not None and landings.n else []
    if tagged_ends is not None:
        extra.append(beacon_state(tagged_ends, state, params))
    if fixes is not None:
        extra.append(beddown_state(fixes, params, anchors=state)[0])
    return extract_sites(grid.merge_many([state, *extra]), params)


# -- emitter bed-downs ------------------------------------------------------------------------------

FIX_COLUMNS = ("ident", "time_us", "lon", "lat", "pos_err_m", "err_minor_m", "err_orient_deg")
"""Columns of the emitter fixes kept for bed-downs."""
_FIX_SCHEMA = pa.schema(
    [("ident", pa.string()), ("time_us", pa.int64())]
    + [(c, pa.float64()) for c in ("lon", "lat", "pos_err_m", "err_minor_m", "err_orient_deg")]
)


_PLACE = np.array([Channel.STRUCTURE, Channel.THERMAL_NIGHT, Channel.THERMAL_DAY, Channel.VEHICLE], dtype=np.int8)


def _imaged_places(state: grid.GridState, min_mass: float) -> tuple[F64, F64, F64]:
    """Places seen by imagery (buildings, heat, parked vehicles): level-0 cells with such evidence (all days), as
    Mercator ``x, y`` of their precision-weighted centroid and their evidence mass."""
    sel = np.flatnonzero((state.level == 0) & np.isin(state.channel, _PLACE))
    if sel.size == 0:
        z = np.zeros(0)
        return z, z.copy(), z.copy()
    _, inv = np.unique(state.cell[sel], return_inverse=True)
    q = np.bincount(inv, weights=state.q[sel])
    qx = np.bincount(inv, weights=state.qx[sel])
    qy = np.bincount(inv, weights=state.qy[sel])
    mass: F64 = np.asarray(np.bincount(inv, weights=state.w[sel]), dtype=np.float64)
    ok = (mass >= min_mass) & (q > 0)
    return qx[ok] / q[ok], qy[ok] / q[ok], mass[ok]


def _anchor(
    x: F64,
    y: F64,
    sigma_along_m: F64,
    sigma_cross_m: F64,
    ux: F64,
    uy: F64,
    anchors: grid.GridState,
    unseen: float,
    params: SiteParams,
    half_along_m: F64 | None = None,
) -> tuple[F64, F64, F64, npt.NDArray[np.bool_]]:
    """The place seen by imagery that each uncertain position most likely names: ``x, y, share, anchored``.

    Positions are Mercator ``x, y`` with a Gaussian error of ``sigma_along_m``
    along the unit vector ``(ux, uy)`` and ``sigma_cross_m`` across it (ground
    metres); with ``half_along_m``, anywhere on a segment of that half-length
    along the axis (equally likely: where a vehicle stopped between two looks),
    the Gaussian added at either end. A place's evidence spreads over
    ``place_extent_m``, which is added to both errors. Each place within
    ``anchor_sigmas`` of those sigmas (plus the half-length) is weighed by its
    evidence mass × the likelihood of its distance; the heaviest place (with
    the cells of the same building, within two support radii) takes the
    position, and ``share`` is its part of the total, ``unseen`` (a place no
    imagery saw) included.
    """
    n = x.size
    half = np.zeros(n) if half_along_m is None else np.asarray(half_along_m, dtype=np.float64)
    ox, oy, share = x.copy(), y.copy(), np.zeros(n)
    anchored = np.zeros(n, dtype=bool)
    ax, ay, mass = _imaged_places(anchors, params.anchor_min_mass)
    if ax.size == 0 or n == 0:
        return ox, oy, share, anchored
    from scipy.spatial import cKDTree

    scale = grid.ground_scale(y)  # ground metres per Mercator metre
    # a place is no point: its evidence spreads about it, which adds to the position's error
    s_along = np.maximum(np.hypot(sigma_along_m, params.place_extent_m), 1e-9)
    s_cross = np.maximum(np.hypot(sigma_cross_m, params.place_extent_m), 1e-9)
    reach = (params.anchor_sigmas * np.maximum(s_along, s_cross) + half) / scale
    tree = cKDTree(np.stack([ax, ay], axis=1))
    found = tree.query_ball_point(np.stack([x, y], axis=1), reach)
    same2 = (2.0 * params.support_radius_m) ** 2
    for i, cand in enumerate(found):  # one pass per uncertain position (bed-downs, landings), not per detection
        if not cand:
            continue
        c = np.asarray(cand, dtype=np.intp)
        sc = float(scale[i])
        ex, ey = (ax[c] - x[i]) * sc, (ay[c] - y[i]) * sc
        along = np.maximum(np.abs(ex * ux[i] + ey * uy[i]) - half[i], 0.0) / float(s_along[i])
        cross = (ey * ux[i] - ex * uy[i]) / float(s_cross[i])
        lik = mass[c] * np.exp(-0.5 * (along**2 + cross**2))
        total = float(lik.sum()) + unseen
        if total <= 0 or not lik.any():
            continue
        j = int(np.argmax(lik))
        near = ((ax[c] - ax[c[j]]) ** 2 + (ay[c] - ay[c[j]]) ** 2) * sc**2 <= same2  # cells of the same building
        wn = lik[near]
        ox[i] = float(np.dot(wn, ax[c[near]]) / wn.sum())
        oy[i] = float(np.dot(wn, ay[c[near]]) / wn.sum())
        share[i] = float(wn.sum()) / total
        anchored[i] = True
    return ox, oy, share, anchored


def anchor_beddowns(
    bd: Beddowns, anchors: grid.GridState | None, params: SiteParams = SiteParams()
) -> tuple[F64, F64, F64, F64, npt.NDArray[np.bool_]]:
    """Where each bed-down's evidence goes: ``lon, lat, sigma_m, weight, anchored``.

    A phone's fixes say only roughly where it stays, but a place seen by
    imagery (a building, heat, parked vehicles) within that uncertainty names
    it: such places are rare in the remote terrain where labs hide, so one
    lying inside a bed-down's ellipse is where the phone is far more likely
    than anywhere else. Each bed-down is moved to the place of highest
    likelihood (evidence mass × Gaussian of the distance) within
    ``anchor_sigmas`` sigmas, with a weight equal to that place's share of the
    likelihood (two places equally likely share it). Bed-downs with no place
    near keep their own position and weight 1 only when they could name a
    place on their own (sharp enough, enough fixes on enough days:
    ``beddown_free_*``); the others get weight 0.
    """
    n = bd.n_beddowns
    lon, lat, sig = bd.lon.copy(), bd.lat.copy(), bd.sigma_m.copy()
    free = (
        (sig <= params.beddown_free_sigma_m)
        & (bd.n_days >= params.beddown_free_min_days)
        & (bd.n_fixes >= params.beddown_free_min_fixes)
    )
    weight = np.where(free, 1.0, 0.0)
    anchored = np.zeros(n, dtype=bool)
    if anchors is None or n == 0:
        return lon, lat, sig, weight, anchored
    bx, by = grid.mercator(bd.lon, bd.lat)
    # the error ellipse, not its mean radius: fixes taken from one side leave a bed-down loose along their line of
    # sight, and the building may lie along it (Mercator keeps directions, so the axis carries over)
    th = np.radians(bd.major_deg)
    x, y, share, anchored = _anchor(
        bx, by, bd.sigma_major_m, bd.sigma_minor_m, np.sin(th), np.cos(th), anchors, params.anchor_unseen, params
    )
    lo, la = grid.inverse_mercator(x[anchored], y[anchored])
    lon[anchored], lat[anchored] = lo, la
    sig[anchored] = np.minimum(sig[anchored], 30.0)
    weight[anchored] = share[anchored]
    return lon, lat, sig, weight, anchored


def beddown_state(
    fixes: pa.Table, params: SiteParams = SiteParams(), anchors: grid.GridState | None = None
) -> tuple[grid.GridState, Beddowns]:
    """Bed-downs of identified emitters as grid evidence: one emitter row per bed-down and day seen there.

    ``fixes`` has :data:`FIX_COLUMNS`. The rows carry the bed-down's combined
    position and its (much smaller) uncertainty, so they land where a building
    can be named; with ``anchors`` (the detections' state) a looser bed-down
    is anchored on the building inside its uncertainty (:func:`anchor_beddowns`).
    """
    if fixes.num_rows == 0:
        return grid.empty_state(), beddowns(
            ident=np.zeros(0, np.int64), lon=np.zeros(0), lat=np.zeros(0), a=np.zeros(0), b=np.zeros(0),
            orient_deg=np.zeros(0), day=np.zeros(0, np.int64),
        )  # fmt: skip
    _, g = np.unique(np.asarray(fixes.column("ident").to_pylist(), dtype=object).astype(str), return_inverse=True)

    def f(name: str) -> F64:
        return np.asarray(fixes.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)

    t = np.asarray(fixes.column("time_us").to_numpy(zero_copy_only=False), dtype=np.int64)
    bd = beddowns(
        ident=g.astype(np.int64), lon=f("lon"), lat=f("lat"), a=f("pos_err_m"), b=f("err_minor_m"),
        orient_deg=f("err_orient_deg"), day=t // _US_PER_DAY,
        params=BeddownParams(
            max_sigma_m=max(params.beddown_anchor_sigma_m, params.beddown_free_sigma_m),
            min_days=1,
            min_fixes=min(params.beddown_free_min_fixes, params.beddown_anchor_min_fixes),
        ),
    )  # fmt: skip
    if bd.n_beddowns == 0:
        return grid.empty_state(), bd
    lon, lat, sig, wt, _ = anchor_beddowns(bd, anchors, params)
    wt = np.where(crowded(bd, radius_m=params.beddown_crowd_radius_m, min_phones=params.beddown_crowd_phones), 0.0, wt)
    bits = np.arange(64, dtype=np.uint64)
    has = (((bd.day_mask[:, None] >> bits[None, :]) & np.uint64(1)) == 1) & (wt > 0)[:, None]
    bi, off = np.nonzero(has)
    if bi.size == 0:
        return grid.empty_state(), bd
    day = bd.first_day[bi] + off.astype(np.int64)
    w = params.channel_weight[Channel.EMITTER]
    state = grid.accumulate(
        lon=lon[bi], lat=lat[bi], time_us=day * _US_PER_DAY + _US_PER_DAY // 2,
        channel=np.full(bi.size, int(Channel.EMITTER), dtype=np.int8), weight=w * wt[bi],
        sigma_m=np.maximum(sig[bi], 10.0),
    )  # fmt: skip
    return state, bd


def fixes_path(ws: Workspace) -> Path:
    """Where the identified emitter fixes of a workspace are kept (input of the bed-downs)."""
    return ws.root / "analysis" / FIX_FILE


def _split_fixes(tb: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(rows for the grid, identified emitter fixes) of a lake batch."""
    if "ident" not in tb.column_names:
        return tb, _FIX_SCHEMA.empty_table()
    is_fix = pc.and_(pc.equal(tb.column("kind").cast(pa.string()), "emitter"), pc.is_valid(tb.column("ident")))
    is_fix = pc.fill_null(is_fix, False)
    fx = tb.filter(is_fix)
    t = fx.column("time")
    if pa.types.is_timestamp(t.type):
        t = pc.cast(t, pa.timestamp("us", tz="UTC")).cast(pa.int64())

    def col(name: str) -> pa.ChunkedArray | pa.Array:
        if name in fx.column_names:
            return fx.column(name).cast(pa.float64())
        return pa.nulls(fx.num_rows, pa.float64())

    fixes = pa.table(
        {"ident": fx.column("ident").cast(pa.string()), "time_us": t, "lon": col("lon"), "lat": col("lat"),
         "pos_err_m": col("pos_err_m"), "err_minor_m": col("err_minor_m"), "err_orient_deg": col("err_orient_deg")},
        schema=_FIX_SCHEMA,
    )  # fmt: skip
    return tb.filter(pc.invert(is_fix)), fixes


# -- lake and knowledge store -----------------------------------------------------------------------

_LAKE_COLUMNS = ("obs_id", "time", "lon", "lat", "alt_m", "pos_err_m", "err_minor_m", "err_orient_deg", "speed_mps",
                 "sensor", "kind", "confidence", "ident", "attrs")  # fmt: skip
_CONTEXT_PREFIXES = tuple(f'{{"affiliation":"{a}"' for a in "fna")
"""``attrs`` of reports on friendly, neutral or assumed-friendly units (CoT affiliation, first in ``attrs``): context,
never suspect evidence (DESIGN §8)."""


def _without_context(tb: pa.Table) -> pa.Table:
    """``tb`` without the reports on friendly and neutral units, and without its ``attrs`` column."""
    if "attrs" not in tb.column_names:
        return tb
    attrs = tb.column("attrs")
    ctx = pc.starts_with(attrs, _CONTEXT_PREFIXES[0])
    for prefix in _CONTEXT_PREFIXES[1:]:
        ctx = pc.or_(ctx, pc.starts_with(attrs, prefix))
    return tb.drop_columns(["attrs"]).filter(pc.invert(pc.fill_null(ctx, False)))


_EVIDENCE_KINDS = tuple(
    k.value
    for k in (ObjectKind.STRUCTURE, ObjectKind.THERMAL, ObjectKind.VEHICLE, ObjectKind.EMITTER, ObjectKind.CHEMICAL,
              ObjectKind.AIRCRAFT, ObjectKind.VESSEL)
)  # fmt: skip
_PART_RE = re.compile(r"^part-(?P<unit>[0-9a-f]{32})-\d+\.parquet$")


def evidence_from_arrow(table: pa.Table, params: SiteParams = SiteParams()) -> Evidence:
    """Evidence from an Arrow table with observation columns (lake schema)."""

    def num(name: str) -> Any:
        if name not in table.column_names:
            return None
        return table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)

    t = table.column("time")
    if pa.types.is_timestamp(t.type):
        t = pc.cast(t, pa.timestamp("us", tz="UTC")).cast(pa.int64())
    ids = table.column("obs_id").to_pylist() if "obs_id" in table.column_names else None
    tus = np.asarray(t.to_numpy(zero_copy_only=False), dtype=np.int64)
    sen, knd = codes(table.column("sensor"), _SENSORS), codes(table.column("kind"), _KINDS)
    ident = np.asarray(table.column("ident").to_pylist(), dtype=object) if "ident" in table.column_names else None
    lon, lat, speed, alt = _at_ends(
        ident, tus, sen, knd, np.asarray(num("lon"), dtype=np.float64), np.asarray(num("lat"), dtype=np.float64),
        num("speed_mps"), num("alt_m"), params.aircraft_ground_m, params.beacon_gap_s,
    )  # fmt: skip
    return _evidence(
        lon=lon, lat=lat, time_us=tus,
        sensor=sen, kind=knd, pos_err_m=num("pos_err_m"), err_minor_m=num("err_minor_m"),
        confidence=num("confidence"), speed_mps=speed, alt_m=alt, obs_id=ids, params=params,
    )  # fmt: skip


def state_path(ws: Workspace) -> Path:
    """Where the accumulated state of a workspace lives."""
    return ws.root / "analysis" / STATE_FILE


def _unit_of(path: Path) -> str | None:
    m = _PART_RE.match(path.name)
    return m.group("unit") if m else None


def update_state(ws: Workspace, *, progress: bool = False, params: SiteParams = SiteParams()) -> dict[str, Any]:
    """Fold the lake units not yet analysed into the saved state; returns counts."""
    path = state_path(ws)
    state, meta = grid.read_state(path)
    if path.exists() and meta.get("method") != METHOD:
        # evidence saved by another method means other things (per-day stops of tagged vehicles, before trips):
        # read every unit again
        state, meta = grid.empty_state(), {}
    done = set(json.loads(meta.get("units", "[]")))
    files = [p for p in Lake(ws.lake_dir).files() if _unit_of(p) not in done]
    new_units = sorted({u for p in files if (u := _unit_of(p)) is not None})
    n_rows = 0
    n_ev = 0
    it: Any = files
    if progress and files:
        from tqdm import tqdm

        it = tqdm(files, desc="sites: reading lake", unit="file")
    fpath = fixes_path(ws)
    old_fixes, fmeta = _read_fixes(fpath)
    fix_done = set(json.loads(fmeta.get("units", "[]")))
    new_fixes: list[pa.Table] = []
    batches: list[grid.GridState] = []
    for p in it:
        pf = pq.ParquetFile(p)
        cols = [c for c in _LAKE_COLUMNS if c in pf.schema_arrow.names]
        for rb in pf.iter_batches(columns=cols, batch_size=1_000_000):
            tb = pa.Table.from_batches([rb])
            kind = tb.column("kind").cast(pa.string())
            tb = _without_context(tb.filter(pc.is_in(kind, value_set=pa.array(_EVIDENCE_KINDS))))
            n_rows += rb.num_rows
            if tb.num_rows == 0:
                continue
            tb, fx = _split_fixes(tb)
            if fx.num_rows and _unit_of(p) not in fix_done:
                new_fixes.append(fx)
            if tb.num_rows == 0:
                continue
            ev = evidence_from_arrow(tb, params)
            n_ev += int(ev.channel.size)
            batches.append(accumulate_evidence(ev))
            # size-tiered: a batch is merged into the one before it once that is at most twice its size, so each
            # row is merged O(log files) times (pairwise folding was quadratic in the partitions: years of FIRMS)
            while len(batches) > 1 and batches[-2].n_rows <= 2 * batches[-1].n_rows:
                b = batches.pop()
                batches.append(grid.merge_many([batches.pop(), b]))
    state = grid.merge_many([state, *batches])
    fixes = pa.concat_tables([old_fixes, *new_fixes]) if new_fixes else old_fixes
    units = json.dumps(sorted(done | set(new_units)))
    # the fixes first: their own unit list keeps a crash between the two writes from counting a unit twice
    if new_units or not fpath.exists():
        _write_fixes(fpath, fixes, {"units": json.dumps(sorted(fix_done | done | set(new_units)))})
    if new_units or not path.exists():
        grid.write_state(path, state, {"units": units, "method": METHOD})
    return {
        "new_units": len(new_units),
        "rows_read": n_rows,
        "evidence_rows": n_ev,
        "state_rows": state.n_rows,
        "emitter_fixes": fixes.num_rows,
        "state": state,
        "fixes": fixes,
    }


# -- id-less vehicle tracks: where vehicles set off and stop -----------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TrackEnds:
    """Where vehicle tracks most likely began and ended: anywhere on a stretch of their course (the travel of half
    a revisit either side of the position given), give or take ``sigma_m``."""

    lon: F64
    lat: F64
    time_us: I64
    sigma_m: F64
    """1-sigma error of a track point, metres."""
    half_along_m: F64
    """Half the length of the stretch along the course, metres (0: known to ``sigma_m``)."""
    course_deg: F64
    """Azimuth of the stretch, degrees clockwise from north, outwards: the course after a track's end, the reverse
    of the course before its start."""
    start: npt.NDArray[np.bool_]
    """Whether the end is where its track begins."""

    @property
    def n(self) -> int:
        return int(self.lon.size)

    def subset(self, keep: npt.NDArray[np.bool_]) -> TrackEnds:
        """The ends where ``keep`` is true."""
        return TrackEnds(lon=self.lon[keep], lat=self.lat[keep], time_us=self.time_us[keep],
                         sigma_m=self.sigma_m[keep], half_along_m=self.half_along_m[keep],
                         course_deg=self.course_deg[keep], start=self.start[keep])  # fmt: skip

    @classmethod
    def at(cls, lon: Any, lat: Any, time_us: Any, sigma_m: float = 60.0) -> TrackEnds:
        """Ends known to ``sigma_m`` in every direction (no course)."""
        lo = np.asarray(lon, dtype=np.float64)
        return cls(lon=lo, lat=np.asarray(lat, dtype=np.float64), time_us=np.asarray(time_us, dtype=np.int64),
                   sigma_m=np.full(lo.size, sigma_m), half_along_m=np.zeros(lo.size), course_deg=np.zeros(lo.size),
                   start=np.zeros(lo.size, dtype=bool))  # fmt: skip


def track_ends(
    track: Any, time_us: Any, lon: Any, lat: Any, *, min_points: int = 3, sigma_m: float = 60.0
) -> TrackEnds:
    """Where each track with at least ``min_points`` points most likely began and ended.

    A moving-target radar sees a vehicle only while it moves, once a revisit; a beacon reports once an interval. A
    vehicle that stops was last seen up to a revisit before: it stopped somewhere along its course between its last
    point and one revisit's travel further on (and set off the same way before its first point), each place as
    likely as the next. Each end is given as the middle of that stretch and its half-length, give or take
    ``sigma_m`` (the error of a track point). The revisit is the track's mean time step (missed looks included), the
    velocity that of its last (first) three points.

    >>> e = track_ends(["a", "a", "a", "b"], [2, 1, 3, 1], [1.0, 0.0, 2.0, 9.0], [0.0, 0.0, 0.0, 9.0])
    >>> e.lon.tolist(), e.time_us.tolist(), e.course_deg.round(1).tolist(), e.start.tolist()
    ([-0.5, 2.5], [1, 3], [270.0, 90.0], [True, False])
    >>> bool(e.half_along_m[0] > 50_000.0)
    True
    """
    t = np.asarray(time_us, dtype=np.int64)
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    if t.size == 0:
        return TrackEnds.at(np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64), sigma_m)
    tr = np.asarray(track)
    _, g = np.unique(tr.astype(str) if tr.dtype == object else tr, return_inverse=True)  # names or integer codes
    order = np.lexsort((t, g))
    first = _run_starts(g[order])
    last = np.r_[first[1:] - 1, g.size - 1]
    n_pts = last - first + 1
    ok = n_pts >= max(min_points, 2)
    first, last, n_pts = first[ok], last[ok], n_pts[ok]
    mx, my = grid.mercator(x[order], y[order])
    ts = t[order].astype(np.float64) / _US_PER_S
    step = (ts[last] - ts[first]) / np.maximum(n_pts - 1, 1)  # mean revisit, seconds
    k = np.minimum(n_pts - 1, 2)  # velocity over (up to) the last or first three points

    def carry(at: npt.NDArray[np.intp], other: npt.NDArray[np.intp]) -> tuple[F64, F64, F64, F64]:
        """``at`` carried on outwards, away from ``other`` (before the first point, after the last)."""
        dt = np.abs(ts[at] - ts[other])
        safe = np.where(dt != 0, dt, 1.0)
        vx = np.where(dt != 0, (mx[at] - mx[other]) / safe, 0.0)
        vy = np.where(dt != 0, (my[at] - my[other]) / safe, 0.0)
        gone = np.hypot(vx, vy) * step * grid.ground_scale(my[at])  # ground metres travelled in one revisit
        course = np.degrees(np.arctan2(vx, vy)) % 360.0
        return mx[at] + 0.5 * vx * step, my[at] + 0.5 * vy * step, 0.5 * gone, course

    sx, sy, sh, sc = carry(first, first + k)
    ex, ey, eh, ec = carry(last, last - k)
    tt = t[order][np.r_[first, last]]
    o = np.argsort(tt, kind="stable")
    lo, la = grid.inverse_mercator(np.r_[sx, ex][o], np.r_[sy, ey][o])
    return TrackEnds(lon=lo, lat=la, time_us=tt[o], sigma_m=np.full(o.size, sigma_m), half_along_m=np.r_[sh, eh][o],
                     course_deg=np.r_[sc, ec][o],
                     start=np.r_[np.ones(first.size, dtype=bool), np.zeros(last.size, dtype=bool)][o])  # fmt: skip


def track_end_state(
    ends: TrackEnds,
    anchors: grid.GridState,
    params: SiteParams = SiteParams(),
    channel: Channel = Channel.TRACK_END,
    *,
    free_min_days: int = 0,
) -> grid.GridState:
    """Ends of vehicle tracks as grid evidence (``channel``, by default ``TRACK_END``): each on the place seen by
    imagery it most likely names (weighed against a place no imagery saw, ``anchor_unseen``), weighted by that
    place's share. A vehicle stops on roads too: an end that names no building carries no evidence, unless
    ``free_min_days`` > 0 and it meets ends of other days that name none either (:func:`free_places`): then the
    share a place no imagery saw takes (all of it, or what the building does not, where that is the likelier)
    goes to the place they name together."""
    if ends.n == 0:
        return grid.empty_state()
    px, py = grid.mercator(ends.lon, ends.lat)
    c = np.radians(ends.course_deg)
    x, y, share, anchored = _anchor(px, py, ends.sigma_m, ends.sigma_m, np.sin(c), np.cos(c), anchors,
                                    params.anchor_unseen, params, ends.half_along_m)  # fmt: skip
    k = np.flatnonzero(anchored & (share > 0))
    lon, lat = grid.inverse_mercator(x[k], y[k])
    sig = np.full(k.size, 30.0)
    wt = params.channel_weight[channel] * share[k]
    unseen = share < 0.5  # a place no imagery saw is the likelier: what is not the building's may name one
    if free_min_days > 0 and unseen.any():
        loose = np.flatnonzero(unseen)
        member, flon, flat, fsig = free_places(ends.subset(unseen), min_days=free_min_days,
                                               extent_m=params.place_extent_m)  # fmt: skip
        k = np.r_[k, loose[member]]
        lon, lat, sig = np.r_[lon, flon], np.r_[lat, flat], np.r_[sig, fsig]
        wt = np.r_[wt, params.channel_weight[channel] * (1.0 - share[loose[member]])]
    if k.size == 0:
        return grid.empty_state()
    return grid.accumulate(
        lon=lon, lat=lat, time_us=ends.time_us[k], channel=np.full(k.size, int(channel), dtype=np.int8),
        weight=wt, sigma_m=sig,
    )  # fmt: skip


def free_places(
    ends: TrackEnds, *, min_days: int = 2, extent_m: float = 50.0, max_half_m: float = 1_000.0
) -> tuple[npt.NDArray[np.intp], F64, F64, F64]:
    """Places named by track ends alone: ends whose stretches (:class:`TrackEnds`) come within three sigmas of one
    another, linked into groups, where a group holds ends of at least ``min_days`` distinct UTC days. Ends whose
    stretch is longer than twice ``max_half_m`` (reports far apart) are too vague to take part.

    Returns ``(member, lon, lat, sigma_m)``: the index of each end in such a group, and its group's place: the
    point nearest all its stretches (the middle of the part of the road they share, or where they cross), with
    the 1-sigma error of a place anywhere on that part, the ends' own error and ``extent_m`` (a place's spread).
    A group whose stretches do not all reach that point (a chain of them along a road) names no place. A vehicle
    that sets out day after day from one spot no imagery saw tells of a place there.

    >>> e = TrackEnds(lon=np.array([0.0, 0.0002, 1.0]), lat=np.zeros(3), time_us=np.array([0, 1, 2]) * _US_PER_DAY,
    ...               sigma_m=np.full(3, 15.0), half_along_m=np.full(3, 300.0), course_deg=np.full(3, 90.0),
    ...               start=np.ones(3, dtype=bool))
    >>> member, lon, lat, sig = free_places(e)
    >>> member.tolist(), np.round(lon * 111_320).round(-1).tolist(), bool((sig > 150.0).all())
    ([0, 1], [10.0, 10.0], True)
    >>> free_places(e, max_half_m=200.0)[0].size
    0
    """
    z = np.zeros(0)
    sharp = np.flatnonzero(ends.half_along_m <= max_half_m)
    if sharp.size < ends.n:
        member, lon, lat, sig = free_places(ends.subset(ends.half_along_m <= max_half_m), min_days=min_days,
                                            extent_m=extent_m, max_half_m=max_half_m)  # fmt: skip
        return sharp[member], lon, lat, sig
    if ends.n < 2 or min_days < 1:
        return np.zeros(0, dtype=np.intp), z, z.copy(), z.copy()
    import shapely
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    px, py = grid.mercator(ends.lon, ends.lat)
    sc = grid.ground_scale(py)
    c = np.radians(ends.course_deg)
    ux, uy = np.sin(c), np.cos(c)
    h = ends.half_along_m / sc  # Mercator units
    segs = shapely.linestrings(np.stack([np.stack([px - h * ux, py - h * uy], axis=1),
                                         np.stack([px + h * ux, py + h * uy], axis=1)], axis=1))  # fmt: skip
    reach = (2.0 * float(ends.half_along_m.max()) + 3.0 * math.sqrt(2.0) * float(ends.sigma_m.max())) / float(sc.min())
    pairs = cKDTree(np.stack([px, py], axis=1)).query_pairs(reach, output_type="ndarray")
    if pairs.size == 0:
        return np.zeros(0, dtype=np.intp), z, z.copy(), z.copy()
    i, j = pairs[:, 0], pairs[:, 1]
    gap = shapely.distance(segs[i], segs[j]) * 0.5 * (sc[i] + sc[j])
    ok = gap <= 3.0 * np.hypot(ends.sigma_m[i], ends.sigma_m[j])
    n = ends.n
    link = coo_matrix((np.ones(int(ok.sum())), (i[ok], j[ok])), shape=(n, n))
    _, label = connected_components(link, directed=False)
    day = ends.time_us // _US_PER_DAY
    gd = np.unique(label.astype(np.int64) * (1 << 32) + (day - day.min()))
    days = np.bincount((gd >> 32).astype(np.intp), minlength=n)
    member = np.flatnonzero(days[label] >= min_days)
    if member.size == 0:
        return member, z, z.copy(), z.copy()
    _, g = np.unique(label[member], return_inverse=True)
    ng = int(g.max()) + 1
    cnt = np.bincount(g, minlength=ng)
    # ground metres about the group's mean end (Mercator keeps directions; the scale is the group's own)
    ox, oy = np.bincount(g, px[member], ng) / cnt, np.bincount(g, py[member], ng) / cnt
    gs = np.bincount(g, sc[member], ng) / cnt
    mx, my = (px[member] - ox[g]) * gs[g], (py[member] - oy[g]) * gs[g]  # each stretch's middle
    vx, vy, hm = ux[member], uy[member], ends.half_along_m[member]

    def nearest_on_stretch(qx: F64, qy: F64) -> tuple[F64, F64]:
        k = np.clip((qx[g] - mx) * vx + (qy[g] - my) * vy, -hm, hm)
        return mx + k * vx, my + k * vy

    # the point nearest all its stretches (least squares, by alternating projections from their mean middle): on
    # the part they share, or where they cross (a yard with two gates)
    qx, qy = np.zeros(ng), np.zeros(ng)
    for _ in range(40):
        sx, sy = nearest_on_stretch(qx, qy)
        qx, qy = np.bincount(g, sx, ng) / cnt, np.bincount(g, sy, ng) / cnt
    sx, sy = nearest_on_stretch(qx, qy)
    # a chain of stretches along a road, each meeting the next, shares no place: each must reach the point
    off = np.hypot(qx[g] - sx, qy[g] - sy) / (3.0 * math.sqrt(2.0) * ends.sigma_m[member])
    worst = np.zeros(ng)
    np.maximum.at(worst, g, off)
    # how long the shared part is, along the group's axis (the mean of its courses taken as lines: an end may
    # point either way along the road); stretches that cross share a point
    th = np.arctan2(np.bincount(g, np.sin(2 * c[member]), ng), np.bincount(g, np.cos(2 * c[member]), ng)) / 2
    ax, ay = np.sin(th)[g], np.cos(th)[g]
    along = mx * ax + my * ay
    reach_along = hm * np.abs(vx * ax + vy * ay)
    lo = np.full(ng, -np.inf)
    hi = np.full(ng, np.inf)
    np.maximum.at(lo, g, along - reach_along)
    np.minimum.at(hi, g, along + reach_along)
    width = np.maximum(hi - lo, 0.0)
    crossing = np.bincount(g, np.abs(np.sin(c[member] - th[g])) > 0.5, ng) > 0  # a stretch 30° or more off the axis
    width[crossing] = 0.0
    lon, lat = grid.inverse_mercator(ox + qx / gs, oy + qy / gs)
    ok = worst[g] <= 1.0
    sig = np.sqrt(width[g] ** 2 / 12.0 + ends.sigma_m[member] ** 2 + extent_m**2)
    return member[ok], lon[g][ok], lat[g][ok], sig[ok]


def beacon_ends(
    ident: Any,
    time_us: Any,
    lon: Any,
    lat: Any,
    *,
    gap_s: float = 900.0,
    moving_mps: float = 2.0,
    min_points: int = 3,
    sigma_m: float = 15.0,
) -> TrackEnds:
    """Where tagged vehicles set off and stop: the ends of each trip, carried on outwards by half a report interval
    (:func:`track_ends`: a beacon reports once a minute, so a truck leaving a lab at 12 m/s is first heard anywhere
    up to 720 m down the road, and one arriving is last heard up to as far short of where it stops).

    A beacon's reports (one id) are split into trips where they pause longer than ``gap_s`` and the vehicle could
    have stopped: it moved, across the pause, slower than ``moving_mps`` on average. A pause it drove through (out
    of coverage, say) is no stop; nor is midnight.

    >>> e = beacon_ends(["T"] * 6, np.array([0, 60, 120, 7200, 7260, 7320]) * 1_000_000,  # two hours parked
    ...                 [0.0, 0.001, 0.002, 0.002, 0.003, 0.004], [0.0] * 6)
    >>> e.n, np.round(e.lon, 4).tolist(), e.start.tolist()
    (4, [-0.0005, 0.0025, 0.0015, 0.0045], [True, False, True, False])
    >>> beacon_ends(["T"] * 6, np.array([0, 60, 120, 1200, 1260, 1320]) * 1_000_000,  # 110 km in 18 min
    ...             [0.0, 0.001, 0.002, 1.0, 1.001, 1.002], [0.0] * 6).n
    2
    """
    t = np.asarray(time_us, dtype=np.int64)
    if t.size == 0:
        return TrackEnds.at(np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64), sigma_m)
    order, same, dt, moved = _legs(ident, t, np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    new = np.r_[True, ~same | ((dt > gap_s) & (moved < moving_mps * dt))]
    trip = np.empty(t.size, dtype=np.int64)
    trip[order] = np.cumsum(new) - 1
    return track_ends(trip, t, lon, lat, min_points=min_points, sigma_m=sigma_m)


def beacon_state(ends: TrackEnds, anchors: grid.GridState, params: SiteParams = SiteParams()) -> grid.GridState:
    """Ends of tagged vehicles' trips (:func:`beacon_ends`) as grid evidence on the places of ``anchors`` they name:
    where they set off as ``TAGGED_ORIGIN``, where they stop as ``TAGGED_VEHICLE``; ends that name no place seen
    by imagery, but meet those of other days, name one of their own (``beacon_free_min_days``)."""
    return grid.merge_many([
        track_end_state(ends.subset(ends.start == start), anchors, params, channel,
                        free_min_days=params.beacon_free_min_days)
        for start, channel in ((True, Channel.TAGGED_ORIGIN), (False, Channel.TAGGED_VEHICLE))
    ])  # fmt: skip


def _track_points(name: str, ws: Workspace) -> dict[str, npt.NDArray[Any]] | None:
    """``track`` (an integer per track), ``time_us``, ``lon``, ``lat`` of a track point file that ``analyze tracks``
    writes; ``None`` when it has not."""
    from atalaya.fusion.tracks import tracks_dir

    path = tracks_dir(ws) / f"{name}.parquet"
    cols = ["track_id", "time", "lon", "lat"]
    if not path.exists() or not set(cols) <= set(pq.read_schema(path).names):
        return None
    try:  # track ids stay dictionary-encoded: an integer per point, not a string
        tb = pq.read_table(path, columns=cols, read_dictionary=["track_id"])
    except (OSError, pa.ArrowInvalid) as exc:
        raise StoreError(f"cannot read tracks {path}: {exc}", hint="re-run `atalaya analyze tracks`") from exc
    tid = tb.unify_dictionaries().column("track_id").combine_chunks()
    codes = tid.indices if pa.types.is_dictionary(tid.type) else tid.dictionary_encode().indices
    out = {
        "track": np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.int64),
        "time_us": np.asarray(tb.column("time").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
                              .to_numpy(zero_copy_only=False), dtype=np.int64),
    }  # fmt: skip
    for c in cols[2:]:
        out[c] = np.asarray(tb.column(c).to_numpy(zero_copy_only=False), dtype=np.float64)
    return out


def workspace_track_end_state(
    ws: Workspace, anchors: grid.GridState, params: SiteParams = SiteParams()
) -> grid.GridState:
    """The ends of the workspace's id-less GMTI tracks (``analyze tracks`` writes them) as grid evidence, on the
    places of ``anchors`` (the detections' state) they name; empty when the tracks have not been built."""
    pts = _track_points("unidentified-GMTI", ws)
    if pts is None:
        return grid.empty_state()
    ends = track_ends(pts["track"], pts["time_us"], pts["lon"], pts["lat"], min_points=params.track_end_min_points,
                      sigma_m=params.track_end_sigma_m)  # fmt: skip
    return track_end_state(ends, anchors, params)


def workspace_beacon_state(ws: Workspace, anchors: grid.GridState, params: SiteParams = SiteParams()) -> grid.GridState:
    """Where the workspace's tagged vehicles (CoT) set off and stop (:func:`beacon_state`). Their reports are read
    from the lake each run: a trip needs its whole run of reports, which may span days and lake units."""
    tb = Lake(ws.lake_dir).query(
        "SELECT ident, epoch_us(time) AS time_us, lon, lat FROM observations "
        "WHERE sensor = ? AND kind = ? AND ident IS NOT NULL",
        [Sensor.COT.value, ObjectKind.VEHICLE.value],
    )
    if tb.num_rows == 0:
        return grid.empty_state()
    ends = beacon_ends(np.asarray(tb.column("ident").to_pylist(), dtype=object),
                       np.asarray(tb.column("time_us").to_numpy(), dtype=np.int64),
                       np.asarray(tb.column("lon").to_numpy(), dtype=np.float64),
                       np.asarray(tb.column("lat").to_numpy(), dtype=np.float64), gap_s=params.beacon_gap_s,
                       moving_mps=params.stationary_mps, sigma_m=_DEFAULT_SIGMA[Sensor.COT.value])  # fmt: skip
    return beacon_state(ends, anchors, params)


# -- projected landings ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Landings:
    """Where aircraft whose track ended in a descent would have reached the ground."""

    lon: F64
    lat: F64
    time_us: I64
    """When, at the last reported ground speed."""
    sigma_along_m: F64
    sigma_cross_m: F64
    course_deg: F64
    """Course of the last descent, degrees true."""
    distance_m: F64
    """Ground distance from the last report to the projected touchdown."""

    @property
    def n(self) -> int:
        return int(self.lon.size)


def projected_landings(
    track: Any, time_us: Any, lon: Any, lat: Any, alt_m: Any, params: SiteParams = SiteParams()
) -> Landings:
    """Carry each aircraft track that ends airborne in a descent on to the ground (pure, vectorised).

    A light aircraft that switches its transponder off on the way down still
    lands somewhere: along its last course, after the ground distance its last
    descent gradient needs to lose the height it had. The gradient and course
    come from the track's last ``landing_window_s`` (its first and last report
    there); tracks that lost less than ``landing_min_descent_m`` there, that end
    at or below ``aircraft_ground_m`` (those met the ground in view) or that
    would fly on beyond ``landing_max_m`` give none. The touchdown's error
    grows with the distance projected (``landing_along``, ``landing_cross``).
    Touchdowns near a known airport are kept: :func:`landing_state` drops them.

    >>> t = np.arange(11, dtype=np.int64) * 60_000_000                # a report a minute
    >>> lon = -107.0 + 0.01 * np.arange(11); lat = np.full(11, 25.0)  # ~1 km a minute due east
    >>> alt = 1_500.0 - 50.0 * np.arange(11)                          # 50 m lower each minute
    >>> ld = projected_landings(np.zeros(11, np.int64), t, lon, lat, alt)
    >>> round(float(ld.distance_m[0]) / 1000, 1), round(float(ld.lon[0]), 2), round(float(ld.course_deg[0]))
    (20.2, -106.7, 90)
    """
    t = np.asarray(time_us, dtype=np.int64)
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    z = np.asarray(alt_m, dtype=np.float64)
    empty = Landings(lon=np.zeros(0), lat=np.zeros(0), time_us=np.zeros(0, np.int64), sigma_along_m=np.zeros(0),
                     sigma_cross_m=np.zeros(0), course_deg=np.zeros(0), distance_m=np.zeros(0))  # fmt: skip
    ok = np.isfinite(z) & np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return empty
    tr = np.asarray(track)[ok]
    _, g = np.unique(tr.astype(str) if tr.dtype == object else tr, return_inverse=True)
    t, x, y, z = t[ok], x[ok], y[ok], z[ok]
    order = np.lexsort((t, g))
    g, t, x, y, z = g[order], t[order], x[order], y[order], z[order]
    starts = _run_starts(g)
    last = np.r_[starts[1:] - 1, g.size - 1]
    # first report of each track's last window: the earliest row whose time is within the window of its last
    sec = (t - t.min()) / _US_PER_S
    key = g * (float(sec.max()) + 2.0 * params.landing_window_s + 1.0) + sec  # sorted: track, then time (seconds)
    lo = np.searchsorted(key, key[last] - params.landing_window_s, side="left")
    first = np.maximum(lo, starts)
    drop = z[first] - z[last]
    # per track (a few thousand, not per point): the course flown at the last report, the ground run of the window
    _, back, run = WGS84.inv(x[first], y[first], x[last], y[last])
    run = np.asarray(run, dtype=np.float64)
    keep = (last > first) & (z[last] > params.aircraft_ground_m) & (drop >= params.landing_min_descent_m) & (run > 0)
    rest = np.where(keep, z[last] * run / np.where(drop > 0, drop, 1.0), np.inf)
    keep &= rest <= params.landing_max_m
    if not keep.any():
        return empty
    k = np.flatnonzero(keep)
    d = rest[k]
    az = np.asarray(back, dtype=np.float64)[k] + 180.0
    plon, plat, _ = WGS84.fwd(x[last[k]], y[last[k]], az, d)  # along the geodesic of the last course
    speed = run[k] / np.maximum((t[last[k]] - t[first[k]]) / _US_PER_S, 1.0)
    return Landings(
        lon=plon, lat=plat, time_us=t[last[k]] + (d / speed * _US_PER_S).astype(np.int64),
        sigma_along_m=params.landing_along * d + params.landing_min_sigma_m,
        sigma_cross_m=params.landing_cross * d + params.landing_min_sigma_m,
        course_deg=az % 360.0, distance_m=d,
    )  # fmt: skip


def anchor_landings(
    ld: Landings, anchors: grid.GridState, params: SiteParams = SiteParams()
) -> tuple[F64, F64, F64, npt.NDArray[np.bool_]]:
    """The place seen by imagery each projected landing most likely names: ``lon, lat, share, anchored``.

    A projected touchdown is kilometres uncertain along its course but much
    less across it; a building, heat or parked vehicles inside that ellipse
    (a clandestine strip is a cleared strip with a shed) is where it landed,
    weighed against the other places there and against a place no imagery saw
    (``anchor_unseen``). Landings near a known airport are not anchored.
    """
    anchored = np.zeros(ld.n, dtype=bool)
    if ld.n == 0:
        return ld.lon.copy(), ld.lat.copy(), np.zeros(0), anchored
    px, py = grid.mercator(ld.lon, ld.lat)
    c = np.radians(ld.course_deg)
    x, y, share, anchored = _anchor(px, py, ld.sigma_along_m, ld.sigma_cross_m, np.sin(c), np.cos(c), anchors,
                                    params.anchor_unseen, params)  # fmt: skip
    lon, lat = grid.inverse_mercator(x, y)
    anchored &= ~near_known(lon, lat, "airports", params.airport_radius_m)
    return lon, lat, np.where(anchored, share, 0.0), anchored


def landing_state(ld: Landings, anchors: grid.GridState, params: SiteParams = SiteParams()) -> grid.GridState:
    """Anchored projected landings as grid evidence (channel ``LANDING``, weighted by the anchor's share)."""
    lon, lat, share, anchored = anchor_landings(ld, anchors, params)
    k = np.flatnonzero(anchored)
    if k.size == 0:
        return grid.empty_state()
    return grid.accumulate(
        lon=lon[k], lat=lat[k], time_us=ld.time_us[k], channel=np.full(k.size, int(Channel.LANDING), dtype=np.int8),
        weight=params.channel_weight[Channel.LANDING] * share[k], sigma_m=np.full(k.size, 30.0),
    )  # fmt: skip


def workspace_landings(ws: Workspace, params: SiteParams = SiteParams()) -> Landings:
    """Projected landings of the workspace's identified tracks that carry altitudes (``analyze tracks`` writes
    them); none when the tracks have not been built. Only each track's last ``landing_window_s`` is read: all
    that :func:`projected_landings` looks at (a scan by DuckDB, not every point with an altitude in memory)."""
    from atalaya.fusion.tracks import tracks_dir
    from atalaya.store.lake import fetch_arrow

    none = projected_landings([], [], [], [], [], params)
    path = tracks_dir(ws) / "identified.parquet"
    if not path.exists() or not {"track_id", "time", "lon", "lat", "alt_m"} <= set(pq.read_schema(path).names):
        return none
    import duckdb

    lit = "'" + str(path).replace("'", "''") + "'"
    valid = "alt_m IS NOT NULL AND isfinite(alt_m) AND isfinite(lon) AND isfinite(lat)"
    window_us = int(params.landing_window_s * _US_PER_S)
    con = duckdb.connect()
    try:
        tb = fetch_arrow(con.sql(
            f"WITH pts AS (SELECT CAST(track_id AS VARCHAR) AS track_id, epoch_us(time) AS time_us, lon, lat, alt_m "
            f"FROM read_parquet({lit}) WHERE {valid}), "
            "ends AS (SELECT track_id, max(time_us) AS t_end FROM pts GROUP BY track_id) "
            f"SELECT pts.* FROM pts JOIN ends USING (track_id) WHERE pts.time_us >= ends.t_end - {window_us}"
        ))  # fmt: skip
    except duckdb.Error as exc:
        raise StoreError(f"cannot read tracks {path}: {exc}", hint="re-run `atalaya analyze tracks`") from exc
    finally:
        con.close()
    if tb.num_rows == 0:
        return none

    def col(name: str) -> npt.NDArray[Any]:
        return np.asarray(tb.column(name).to_numpy(zero_copy_only=False))

    return projected_landings(col("track_id").astype(object), col("time_us").astype(np.int64),
                              col("lon").astype(np.float64), col("lat").astype(np.float64),
                              col("alt_m").astype(np.float64), params)  # fmt: skip


def _read_fixes(path: Path) -> tuple[pa.Table, dict[str, str]]:
    if not path.exists():
        return _FIX_SCHEMA.empty_table(), {}
    try:
        t = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise StoreError(
            f"cannot read emitter fixes {path}: {exc}", hint="delete the file and re-run the analysis"
        ) from exc
    meta = {k.decode(): v.decode() for k, v in (t.schema.metadata or {}).items()}
    return t.select(list(FIX_COLUMNS)).cast(_FIX_SCHEMA), meta


def _write_fixes(path: Path, fixes: pa.Table, meta: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(fixes.replace_schema_metadata(meta), tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_state(ws: Workspace, params: SiteParams = SiteParams()) -> grid.GridState:
    """The saved evidence of a workspace with its track ends, bed-downs and landings: what :func:`run_sites`
    extracts from."""
    path = state_path(ws)
    state, meta = grid.read_state(path)
    if path.exists() and meta.get("method") != METHOD:
        raise StoreError(f"sites state {path} was saved by {meta.get('method', 'an older method')}, not {METHOD}",
                         hint="re-run `atalaya analyze sites` (it reads the lake again)")  # fmt: skip
    fixes, _ = _read_fixes(fixes_path(ws))
    return _with_derived(ws, state, fixes, params)[0]


def _with_derived(
    ws: Workspace, state: grid.GridState, fixes: pa.Table, params: SiteParams
) -> tuple[grid.GridState, Beddowns, Landings]:
    """The detections' evidence with what is derived from the whole workspace each run: the ends of id-less vehicle
    tracks, the emitters' bed-downs and the aircraft's projected landings (both anchored on the places imagery saw)."""
    derived = [workspace_track_end_state(ws, state, params), workspace_beacon_state(ws, state, params)]
    state = grid.merge_many([state, *derived])
    bd_state, bd = beddown_state(fixes, params, anchors=state)
    ld = workspace_landings(ws, params)
    return grid.merge_many([state, bd_state, landing_state(ld, state, params)]), bd, ld


def _ts(us: int) -> datetime:
    return datetime.fromtimestamp(us / _US_PER_S, tz=UTC)


def _reuse_ids(store: KnowledgeStore, sites: SiteTable, radius_m: float) -> list[str]:
    """Keep the ids of sites already in the store within ``radius_m`` (so re-analysis does not rename them)."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(schema.sites.c.id, schema.sites.c.lon, schema.sites.c.lat)).all()
    ids = list(sites.id)
    if not rows or sites.n_sites == 0:
        return ids
    old_id = [r[0] for r in rows]
    m = match_points(sites.lon, sites.lat, np.array([r[1] for r in rows]), np.array([r[2] for r in rows]),
                     radius_m=radius_m)  # fmt: skip
    for i, j in zip(m.pred_index.tolist(), m.true_index.tolist(), strict=True):
        ids[i] = old_id[j]
    # a new id that collides with an unmatched old one keeps its own row: suffix it
    taken = set(old_id) - {old_id[j] for j in m.true_index.tolist()}
    matched = set(m.pred_index.tolist())
    for i in range(len(ids)):
        if i not in matched and ids[i] in taken:
            ids[i] = f"{ids[i]}-{i}"
    return ids


def input_marking(ws: Workspace) -> str:
    """The combined marking (:func:`~atalaya.core.markings.combine`) of every lake observation that can feed the
    sites of ``ws``: detections of the evidence kinds, the id-less (GMTI, radar) detections whose tracks' ends are
    read, and the identified reports with an altitude whose tracks give projected landings;
    :data:`~atalaya.core.markings.NO_INPUTS_MARKING` when there are none.

    Sites carry this one marking per run, not one per site: the grid state accumulates evidence mass per cell,
    day and channel without the markings of the detections behind it, and a site gathers evidence moved from
    far away (bed-downs, track ends and landings anchored on it), so the detections behind one site are not
    known. The run's whole input set is a superset of each site's: the marking may over-restrict a site but
    never weakens it. The lake is append-only, so it holds every unit the saved state was built from."""
    kinds = ", ".join(f"'{k}'" for k in _EVIDENCE_KINDS)
    tb = Lake(ws.lake_dir).query(
        "SELECT DISTINCT CAST(marking AS VARCHAR) AS marking FROM observations "
        f"WHERE CAST(kind AS VARCHAR) IN ({kinds}) OR CAST(sensor AS VARCHAR) IN ('GMTI', 'RADAR') "
        "OR (ident IS NOT NULL AND alt_m IS NOT NULL)"
    )
    texts = [t for t in tb.column("marking").to_pylist() if t is not None] if tb.num_rows else []
    return combine_texts(texts) if texts else NO_INPUTS_MARKING.to_text()


def write_sites(
    store: KnowledgeStore,
    sites: SiteTable,
    *,
    run_id: str,
    reuse_radius_m: float = 250.0,
    marking: str | Sequence[str] = NO_INPUTS_MARKING.to_text(),
) -> list[str]:
    """Upsert sites into the ``sites`` table, never touching analysts' columns; returns the ids written.

    ``sites`` is the whole current picture: a site of an earlier run that this
    one no longer supports is removed, unless an analyst has set its status or
    written a note on it (those stay, with the run that last supported them).
    ``marking`` is each site's marking (one text for all, or one per site): the combination of its inputs'
    markings (:func:`run_sites` gives :func:`input_marking`); by default releasable to nobody.
    """
    ids = _reuse_ids(store, sites, reuse_radius_m)
    marks = [marking] * sites.n_sites if isinstance(marking, str) else list(marking)
    if len(marks) != sites.n_sites:
        raise ValidationError(f"{len(marks)} markings for {sites.n_sites} sites", hint="give one marking per site")
    rows = []
    for i in range(sites.n_sites):
        prov = Provenance(
            observations=tuple(sites.samples[i]),
            n_support=int(sites.evidence[i].get("n_detections", 0)),
            first_seen=_ts(int(sites.first_seen_us[i])).isoformat(),
            last_seen=_ts(int(sites.last_seen_us[i])).isoformat(),
            run_id=run_id,
            method=METHOD,
        )
        rows.append(
            {
                "id": ids[i],
                "kind": sites.kind[i],
                "lon": float(sites.lon[i]),
                "lat": float(sites.lat[i]),
                "radius_m": float(sites.radius_m[i]),
                "score": float(sites.score[i]),
                "rank": int(sites.rank[i]),
                "status": SiteStatus.SUSPECTED.value,
                "first_seen": _ts(int(sites.first_seen_us[i])),
                "last_seen": _ts(int(sites.last_seen_us[i])),
                "n_days": int(sites.n_days[i]),
                "evidence": sites.evidence[i],
                "run_id": run_id,
                "marking": marks[i],
                "provenance": prov.to_dict(),
            }
        )
    cols = [c for c in rows[0] if c not in ("id", *ANALYST_COLUMNS)] if rows else []
    t = schema.sites
    with store.begin() as conn:
        upsert(conn, t, rows, keys=["id"], update=cols)
        conn.execute(delete(t).where(t.c.run_id.is_distinct_from(run_id), t.c.status_by.is_(None), t.c.note.is_(None)))
    return ids


def params_for(ws: Workspace, params: SiteParams = SiteParams()) -> SiteParams:
    """``params`` with the workspace's thresholds per site kind (``[sites.thresholds]`` in ``atalaya.toml``, e.g.
    ``persistent_heat = 0.8``; kinds not named keep theirs).

    Raises :class:`~atalaya.core.errors.ConfigError` for an unknown kind or a threshold outside [0, 1].
    """
    given = ws.config.table("sites", "thresholds")
    known = {k.value for k in SiteKind} | {PERSISTENT_HEAT}
    for k, v in given.items():
        if k not in known:
            raise ConfigError(
                f"[sites.thresholds] {k}: not a site kind", hint=f"use one of: {', '.join(sorted(known))}"
            )
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= float(v) <= 1.0:
            raise ConfigError(f"[sites.thresholds] {k} = {v!r} is not a score in [0, 1]", hint=f"e.g. {k} = 0.6")
    if not given:
        return params
    merged = {**dict(params.thresholds), **{k: float(v) for k, v in given.items()}}
    return replace(params, thresholds=tuple(merged.items()))


def run_sites(
    ws: Workspace,
    store: KnowledgeStore,
    *,
    progress: bool = False,
    params: SiteParams = SiteParams(),
) -> dict[str, Any]:
    """Update the sites of a workspace from the lake units not yet analysed; returns a summary.

    Reads only new units, merges them into ``WORKSPACE/analysis/sites_state.parquet``,
    extracts sites from the whole state and upserts them (ids stay stable; status,
    note, status_by and status_at are never overwritten).
    """
    started = datetime.now(UTC)
    t0 = _time.perf_counter()
    params = params_for(ws, params)
    upd = update_state(ws, progress=progress, params=params)
    full, bd, ld = _with_derived(ws, upd.pop("state"), upd.pop("fixes"), params)
    upd["emitter_beddowns"] = bd.n_beddowns
    upd["projected_landings"] = ld.n
    sites = extract_sites(full, params)
    run_id = f"sites-{uuid.uuid4().hex[:12]}"
    marking = input_marking(ws)
    ids = write_sites(store, sites, run_id=run_id, marking=marking)
    kinds: dict[str, int] = {}
    for k in sites.kind:
        kinds[k] = kinds.get(k, 0) + 1
    summary = {
        **upd,
        "run_id": run_id,
        "sites": sites.n_sites,
        "marking": marking,
        "kinds": kinds,
        "top": [{"id": ids[i], "kind": sites.kind[i], "score": round(float(sites.score[i]), 3)}
                for i in range(min(5, sites.n_sites))],
        "seconds": round(_time.perf_counter() - t0, 3),
        "state_file": str(state_path(ws)),
    }  # fmt: skip
    with store.begin() as conn:
        conn.execute(
            insert(schema.analysis_runs).values(
                id=run_id, kind="sites", started_at=started, finished_at=datetime.now(UTC),
                params={"method": METHOD, "min_score": params.min_score, "thresholds": dict(params.thresholds)},
                summary={k: v for k, v in summary.items() if k != "top"},
            )
        )  # fmt: skip
    return summary


def set_site_status(store: KnowledgeStore, site_id: str, status: str, note: str | None, user: str) -> dict[str, Any]:
    """Record an analyst's decision on a site (kept across re-analysis); returns the updated fields."""
    try:
        st = SiteStatus(status)
    except ValueError:
        raise ValidationError(
            f"unknown site status {status!r}", hint=f"use one of: {', '.join(s.value for s in SiteStatus)}"
        ) from None
    if not user:
        raise ValidationError("a site status needs the analyst's name", hint="pass the user making the decision")
    now = datetime.now(UTC)
    values = {"status": st.value, "note": note, "status_by": user, "status_at": now}
    with store.begin() as conn:
        res = conn.execute(update(schema.sites).where(schema.sites.c.id == site_id).values(**values))
        if res.rowcount == 0:
            raise StoreError(f"no site {site_id!r}", hint="list sites with `atalaya analyze sites` or check the id")
        conn.execute(
            insert(schema.audit).values(
                time=now, actor=user, action="site.status", object_type="site", object_id=site_id,
                details={"status": st.value, "note": note},
            )
        )  # fmt: skip
    return {"id": site_id, **values}


__all__ = [
    "ANALYST_COLUMNS",
    "PERSISTENT_HEAT",
    "Channel",
    "Evidence",
    "SiteParams",
    "SiteTable",
    "TrackEnds",
    "accumulate_evidence",
    "beacon_ends",
    "beacon_speeds",
    "beddown_state",
    "detect_sites",
    "evidence_from_arrow",
    "extract_sites",
    "find_peaks",
    "fixes_path",
    "free_places",
    "input_marking",
    "load_state",
    "near_known",
    "params_for",
    "run_sites",
    "set_site_status",
    "site_id",
    "state_path",
    "to_evidence",
    "track_ends",
    "trip_ends",
    "update_state",
    "write_sites",
]
