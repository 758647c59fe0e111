"""Compliance: each sortie's flown track checked against the agreement it claims.

The rules are data (:data:`RULES`): an id, a severity, a stage and one small
evaluator each. For every sortie and every foreign country it entered (a
*host*: a country territory, incl. its territorial sea, whose owner is not the
sortie's party) the engine builds a context and runs:

* stage 0 (always): ``no-agreement`` — in the host's territory with no agreement claimed;
* stage 1 (an agreement is claimed): ``agreement-unknown``, ``agreement-not-in-effect``,
  ``collection-unknown``, ``host-not-covered``;
* stage 2 (a collection item of the agreement applies): ``platform-type``,
  ``outside-area``, ``depth``, ``time-window``, ``altitude``, ``notification-late``,
  ``report-missing``, ``report-late``.

A sortie that never enters foreign territory is compliant without an agreement.
When the sortie claims an agreement but no collection item, every item of the
version in force for that collector and host is tried and the one with the
fewest violations (by severity) is reported.

Track-based rules are predicates over positions (lon, lat, time, altitude).
Runs of fixes where a predicate holds become :class:`Segment` evidence; their
entry and exit points are refined between the neighbouring fixes by bisection
(16 halvings: for 1 Hz tracks well under a metre). Depth is the accounting's
depth (:mod:`atalaya.sovereignty.accounting`): geodesic distance to the host
country's boundary (land border or 12 nm limit), measured exactly wherever it
could exceed a limit (sampled every :data:`DEPTH_SAMPLE_KM` elsewhere, with the
1-Lipschitz bound deciding which fixes need an exact value).

State areas are the host's admin-1 land polygons; the territorial sea off a
state is not part of it (authorise sea areas with a polygon).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import shapely

from atalaya.core.errors import ValidationError
from atalaya.geo.kernels import geodesic_distance
from atalaya.geo.territories import Territories, label_points
from atalaya.sovereignty.accounting import Accounting, account_tracks
from atalaya.sovereignty.agreements import Agreement, AgreementSet, Collection, parse_time

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjArray = npt.NDArray[np.object_]
Predicate = Callable[[FloatArray, FloatArray, IntArray, FloatArray], BoolArray]

BISECT_STEPS = 16
"""Halvings used to place a segment's entry and exit between two fixes."""
AREA_TOLERANCE_KM = 0.1
"""Outside-area stretches shorter than this are ignored: country and state borders are digitised metres apart."""
DEPTH_SAMPLE_KM = 2.0
"""Along-track spacing of depth samples used for evidence and for the Lipschitz prefilter."""

ISO2_TO_ADM0: dict[str, str] = {"MX": "MEX", "US": "USA", "GT": "GTM", "BZ": "BLZ"}
"""ISO 3166-1 alpha-2 prefixes of ISO 3166-2 state codes → territory owner codes (``MX-SON`` → ``MEX-SON``)."""


MIN_TRACK_POINTS = 2
"""Fewer fixes than this and a sortie's flight cannot be checked: its verdict is ``unverifiable``."""
VERDICT_STATUSES = ("compliant", "violation", "unverifiable", "no-host")
"""Every verdict status: checked and clean, checked with violations, not checkable, never over a host."""


class Severity(enum.StrEnum):
    """How serious a violation is."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"

    @property
    def rank(self) -> int:
        """0 for critical, 1 major, 2 minor (sort key)."""
        return ("critical", "major", "minor").index(self.value)


# --------------------------------------------------------------------------- inputs and outputs


def _opt_time(v: Any) -> datetime | None:
    return None if v is None or v == "" else parse_time(v)


@dataclass(frozen=True, kw_only=True)
class SortieRecord:
    """The manifest of one sortie (``records/sorties.json`` entry or ``sorties`` table row)."""

    sortie_id: str
    """Sortie id."""
    platform_id: str
    """Platform flown."""
    platform_type: str
    """Platform type (``MQ-9``…)."""
    party: str
    """Party flying it."""
    agreement_id: str | None
    """Agreement claimed (``None``: none)."""
    authorisation_id: str | None
    """Collection item claimed (``None``: let the engine pick within the agreement)."""
    notified_at: datetime | None
    """When the host was notified."""
    report_filed_at: datetime | None
    """When the post-flight report was filed."""
    takeoff: datetime
    """Take-off time."""
    landing: datetime
    """Landing time."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SortieRecord:
        """From a manifest entry (ISO times; ``id`` accepted for ``sortie_id``, ``party_id`` for ``party``)."""
        sid = d.get("sortie_id") or d.get("id")
        if not sid or not d.get("takeoff") or not d.get("landing"):
            raise ValidationError(
                f"sortie record {dict(d)!r} lacks sortie_id, takeoff or landing",
                hint="each sortie needs sortie_id, platform_id, platform_type, party, takeoff and landing",
            )
        return cls(
            sortie_id=str(sid),
            platform_id=str(d.get("platform_id") or ""),
            platform_type=str(d.get("platform_type") or ""),
            party=str(d.get("party") or d.get("party_id") or "").upper(),
            agreement_id=d.get("agreement_id") or None,
            authorisation_id=d.get("authorisation_id") or None,
            notified_at=_opt_time(d.get("notified_at")),
            report_filed_at=_opt_time(d.get("report_filed_at")),
            takeoff=parse_time(d["takeoff"]),
            landing=parse_time(d["landing"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            out[k] = v.isoformat().replace("+00:00", "Z") if isinstance(v, datetime) else v
        return out


@dataclass(frozen=True, kw_only=True)
class TrackArrays:
    """Fixes of many sortie tracks, sorted by sortie then time."""

    sortie_id: ObjArray
    """Sortie id of each fix."""
    time_us: IntArray
    """Time, µs since the epoch (UTC)."""
    lon: FloatArray
    """Longitude."""
    lat: FloatArray
    """Latitude."""
    alt_m: FloatArray
    """Altitude, metres MSL (NaN unknown)."""

    @classmethod
    def from_arrow(cls, table: pa.Table) -> TrackArrays:
        """From columns ``sortie_id``, ``time`` (timestamp) or ``time_us``, ``lon``, ``lat``, optional ``alt_m``."""
        names = set(table.column_names)
        missing = {"sortie_id", "lon", "lat"} - names
        if missing or not ({"time", "time_us"} & names):
            raise ValidationError(
                f"track table lacks columns {sorted(missing | ({'time'} - names))}",
                hint="give sortie_id, time (or time_us), lon, lat and optionally alt_m",
            )
        if "time_us" in names:
            tus = np.asarray(table.column("time_us").to_numpy(zero_copy_only=False), dtype=np.int64)
        else:
            col = table.column("time").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
            tus = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int64)
        alt = (
            np.asarray(table.column("alt_m").cast(pa.float64()).fill_null(np.nan).to_numpy(), dtype=np.float64)
            if "alt_m" in names
            else np.full(table.num_rows, np.nan)
        )
        sid = np.asarray([str(v) for v in table.column("sortie_id").cast(pa.string()).to_pylist()], dtype=object)
        return cls.build(sortie_id=sid, time_us=tus, lon=table.column("lon"), lat=table.column("lat"), alt_m=alt)

    @classmethod
    def build(cls, *, sortie_id: Any, time_us: Any, lon: Any, lat: Any, alt_m: Any = None) -> TrackArrays:
        """From arrays in any order (sorted here by sortie, then time)."""
        sid = np.asarray([str(v) for v in np.asarray(sortie_id, dtype=object)], dtype=object)
        tus = np.asarray(time_us, dtype=np.int64)
        x = np.asarray(lon, dtype=np.float64)
        y = np.asarray(lat, dtype=np.float64)
        z = np.full(len(x), np.nan) if alt_m is None else np.asarray(alt_m, dtype=np.float64)
        if not (len(sid) == len(tus) == len(x) == len(y) == len(z)):
            raise ValidationError("track arrays differ in length", hint="pass one value of each per fix")
        order = np.lexsort((tus, sid.astype(str))) if len(sid) else np.zeros(0, np.int64)
        return cls(sortie_id=sid[order], time_us=tus[order], lon=x[order], lat=y[order], alt_m=z[order])

    def ranges(self) -> dict[str, tuple[int, int]]:
        """Sortie id → ``(start, stop)`` row range."""
        n = len(self.sortie_id)
        if n == 0:
            return {}
        brk = np.flatnonzero(np.r_[True, self.sortie_id[1:] != self.sortie_id[:-1]])
        ends = np.r_[brk[1:], n]
        return {str(self.sortie_id[s]): (int(s), int(e)) for s, e in zip(brk, ends, strict=True)}


def _iso_us(t_us: int) -> str:
    return datetime.fromtimestamp(t_us / 1e6, tz=UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, kw_only=True)
class Segment:
    """A stretch of track where a rule is broken: evidence."""

    host: str
    """Host country."""
    states: tuple[str, ...]
    """States (territory ids) the stretch passes over."""
    entry_time: str
    """When the stretch begins (ISO UTC)."""
    entry_lon: float
    """Where it begins."""
    entry_lat: float
    """Where it begins."""
    exit_time: str
    """When it ends."""
    exit_lon: float
    """Where it ends."""
    exit_lat: float
    """Where it ends."""
    duration_s: float
    """Duration, seconds."""
    distance_km: float
    """Length along the track, km."""
    max_depth_km: float
    """Greatest depth into the host reached on the stretch, km."""
    alt_min_m: float | None
    """Lowest altitude on the stretch (``None``: unknown)."""
    alt_max_m: float | None
    """Highest altitude."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = dict(self.__dict__)
        d["states"] = list(self.states)
        return d


@dataclass(frozen=True, kw_only=True)
class Violation:
    """One broken rule of one sortie over one host."""

    rule: str
    """Rule id (see :data:`RULES`)."""
    severity: Severity
    """Severity."""
    message: str
    """What is wrong, in words, with the figures."""
    host: str
    """Host country concerned."""
    agreement_id: str | None = None
    """Agreement concerned."""
    collection_id: str | None = None
    """Collection item concerned."""
    segments: tuple[Segment, ...] = ()
    """Track evidence (empty for paperwork rules)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Limits and observed values."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "message": self.message,
            "host": self.host,
            "agreement_id": self.agreement_id,
            "collection_id": self.collection_id,
            "segments": [s.to_dict() for s in self.segments],
            "details": self.details,
        }


@dataclass(frozen=True, kw_only=True)
class SortieVerdict:
    """The compliance verdict of one sortie."""

    sortie: SortieRecord
    """The manifest."""
    hosts: tuple[str, ...]
    """Foreign countries entered."""
    agreement_version: int | None
    """Version of the claimed agreement in force (``None``: none)."""
    collection_id: str | None
    """Collection item the sortie was judged against."""
    violations: tuple[Violation, ...]
    """Violations, most severe first."""
    track_points: int
    """Fixes of the flown track used."""

    @property
    def status(self) -> str:
        """``unverifiable``, ``no-host``, ``compliant`` or ``violation`` (see :data:`VERDICT_STATUSES`).

        A sortie whose flown track has fewer than :data:`MIN_TRACK_POINTS` fixes cannot be checked: it is
        ``unverifiable``, never compliant.
        """
        if self.track_points < MIN_TRACK_POINTS:
            return "unverifiable"
        if not self.hosts:
            return "no-host"
        return "violation" if self.violations else "compliant"

    @property
    def reason(self) -> str:
        """The verdict in one sentence, with its figures."""
        st = self.status
        if st == "unverifiable":
            if self.track_points == 0:
                return "no flown track: the lake holds no fix for this sortie (ingest its track, then check again)"
            return f"too few fixes to check: {self.track_points} (at least {MIN_TRACK_POINTS} are needed)"
        if st == "no-host":
            return f"never entered another party's territory ({self.track_points} fixes)"
        if st == "compliant":
            return f"every rule met over {', '.join(self.hosts)} ({self.track_points} fixes)"
        rules = sorted({v.rule for v in self.violations})
        return f"{len(self.violations)} violation(s) over {', '.join(self.hosts)}: {', '.join(rules)}"

    @property
    def compliant(self) -> bool:
        """Checked, entered a host, and broke no rule (``False`` for unverifiable and no-host sorties)."""
        return self.status == "compliant"

    @property
    def worst(self) -> Severity | None:
        """Most severe violation (``None`` when compliant)."""
        return self.violations[0].severity if self.violations else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "sortie_id": self.sortie.sortie_id,
            "sortie": self.sortie.to_dict(),
            "status": self.status,
            "reason": self.reason,
            "hosts": list(self.hosts),
            "compliant": self.compliant,
            "worst": self.worst.value if self.worst else None,
            "agreement_version": self.agreement_version,
            "collection_id": self.collection_id,
            "track_points": self.track_points,
            "violations": [v.to_dict() for v in self.violations],
        }


# --------------------------------------------------------------------------- geometry helpers


def state_territory_id(code: str) -> str:
    """``MX-SON`` → ``MEX-SON`` (territory ids are ``owner-suffix``); ids already in that form pass.

    >>> state_territory_id("MX-SON"), state_territory_id("MEX-SIN")
    ('MEX-SON', 'MEX-SIN')
    """
    prefix, _, suffix = code.partition("-")
    return f"{ISO2_TO_ADM0.get(prefix, prefix)}-{suffix}"


def authorised_region(item: Collection, territories: Territories) -> Any:
    """The union of an item's areas (state polygons and GeoJSON polygons), prepared, in lon/lat."""
    key = f"compliance:area:{item.id}:{json.dumps([a.__dict__ for a in item.areas], sort_keys=True, default=str)}"
    hit = territories._cache.get(key)
    if hit is not None:
        return hit
    parts = []
    for a in item.areas:
        for code in a.states:
            tid = state_territory_id(code)
            try:
                parts.append(territories.geoms[territories.index_of(tid)])
            except KeyError:
                raise ValidationError(
                    f"collection item {item.id}: state {code!r} ({tid}) is not a known territory",
                    hint="use ISO 3166-2 codes of bundled states (e.g. MX-SON), or add territories with --territories",
                ) from None
        if a.polygon is not None:
            parts.append(shapely.from_geojson(json.dumps(a.polygon)))
    region = shapely.union_all(parts) if parts else shapely.Polygon()
    shapely.prepare(region)
    territories._cache[key] = region
    return region


def point_depth_km(territories: Territories, lon: Any, lat: Any) -> FloatArray:
    """Depth (km) of each point into the country containing it (0 outside every country), as accounting measures it."""
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    out = np.zeros(len(x))
    if len(x) == 0:
        return out
    acc = account_tracks(
        track_id=np.arange(len(x)),
        time_us=np.zeros(len(x), dtype=np.int64),
        lon=x,
        lat=y,
        territories=territories,
        levels=("country",),
    )
    s = acc.summary
    idx = np.asarray([int(v) for v in s.column("track_id").to_pylist()], dtype=np.int64)
    d = np.asarray(s.column("max_depth_km").to_numpy(zero_copy_only=False), dtype=np.float64)
    ok = np.isfinite(d)
    out[idx[ok]] = d[ok]
    return out


def _runs(mask: BoolArray) -> tuple[IntArray, IntArray]:
    """Start and end (inclusive) indices of the runs of True."""
    if len(mask) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    m = np.r_[False, mask, False].astype(np.int8)
    d = np.diff(m)
    return np.flatnonzero(d == 1).astype(np.int64), (np.flatnonzero(d == -1) - 1).astype(np.int64)


# --------------------------------------------------------------------------- context


@dataclass(kw_only=True)
class Context:
    """What a rule evaluator sees: one sortie, one host, the claim as resolved."""

    sortie: SortieRecord
    """The manifest."""
    host: str
    """Host country id (territory owner)."""
    t_us: IntArray
    """The sortie's fix times."""
    lon: FloatArray
    """Fix longitudes."""
    lat: FloatArray
    """Fix latitudes."""
    alt: FloatArray
    """Fix altitudes (NaN unknown)."""
    country: ObjArray
    """Owner of the country under each fix (``INTL`` outside)."""
    territories: Territories
    """Territories."""
    agreements: AgreementSet
    """Known agreement versions."""
    agreement: Agreement | None
    """Version of the claimed agreement in force at the first fix in the host."""
    item: Collection | None
    """Collection item applied (stage-2 rules run only with one)."""
    item_problem: str | None
    """Why no item applies although an agreement is in force (``None`` when one applies)."""
    as_of: datetime | None
    """Time of the check (for reports not yet due); ``None``: every missing report counts."""
    _depth: FloatArray | None = None
    """Per-fix depth (NaN: not measured)."""

    @property
    def in_host(self) -> BoolArray:
        """Fixes in the host's territory."""
        out: BoolArray = self.country == self.host
        return out

    def host_predicate(self) -> Predicate:
        """Predicate: position in the host's territory."""
        geom = self.territories.geoms[self.territories.index_of(self.host)]

        def pred(x: FloatArray, y: FloatArray, t: IntArray, z: FloatArray) -> BoolArray:
            del t, z
            out: BoolArray = shapely.contains_xy(geom, x, y)
            return out

        return pred

    def depth(self) -> FloatArray:
        """Per-fix depth samples (every :data:`DEPTH_SAMPLE_KM` along track in the host, run ends); NaN elsewhere."""
        if self._depth is None:
            d = np.full(len(self.lon), np.nan)
            inside = self.in_host
            if inside.any():
                cum = self.cum_km()
                bucket = np.floor(cum / DEPTH_SAMPLE_KM)
                take = inside & (np.r_[True, bucket[1:] != bucket[:-1]] | np.r_[True, ~inside[:-1]])
                take |= inside & np.r_[~inside[1:], True]
                idx = np.flatnonzero(take)
                d[idx] = point_depth_km(self.territories, self.lon[idx], self.lat[idx])
            self._depth = d
        return self._depth

    def cum_km(self) -> FloatArray:
        """Cumulative along-track distance at each fix, km."""
        if len(self.lon) < 2:
            return np.zeros(len(self.lon))
        step = geodesic_distance(self.lon[:-1], self.lat[:-1], self.lon[1:], self.lat[1:]) / 1000.0
        out: FloatArray = np.r_[0.0, np.cumsum(step)]
        return out

    def deeper_than(self, limit_km: float) -> BoolArray:
        """Fixes in the host deeper than ``limit_km`` (exact where the Lipschitz bound cannot rule it out)."""
        d = self.depth().copy()
        inside = self.in_host
        cum = self.cum_km()
        n = len(d)
        meas = np.isfinite(d)
        ar = np.arange(n)
        prev = np.maximum.accumulate(np.where(meas, ar, -1))
        nxt = np.minimum.accumulate(np.where(meas, ar, n)[::-1])[::-1]
        ub = np.full(n, np.inf)
        okp = prev >= 0
        ub[okp] = d[prev[okp]] + (cum[okp] - cum[prev[okp]])
        okn = nxt < n
        ub[okn] = np.minimum(ub[okn], d[nxt[okn]] + (cum[nxt[okn]] - cum[okn]))
        need = np.flatnonzero(inside & ~meas & (ub > limit_km))
        if len(need):
            d[need] = point_depth_km(self.territories, self.lon[need], self.lat[need])
        out: BoolArray = inside & np.isfinite(d) & (d > limit_km)
        return out

    def segments(self, pred: Predicate, mask: BoolArray | None = None) -> tuple[Segment, ...]:
        """Evidence: runs of fixes where ``pred`` holds (or ``mask``), entries/exits placed by bisection."""
        m = pred(self.lon, self.lat, self.t_us, self.alt) if mask is None else mask
        starts, ends = _runs(m)
        if len(starts) == 0:
            return ()
        n = len(m)
        # Entry between fix s-1 (outside) and s; exit between e (inside) and e+1.
        a_in = np.where(starts > 0, starts - 1, starts)
        a_out = np.where(ends < n - 1, ends + 1, ends)
        fin = self._bisect(pred, a_in, starts)
        fout = self._bisect(pred, a_out, ends)
        xin, yin, tin, zin = self._interp(a_in, starts, fin)
        xout, yout, tout, zout = self._interp(a_out, ends, fout)
        depth = self.depth()
        states_all = label_points(self.territories, self.lon, self.lat, "state")
        out = []
        for k in range(len(starts)):
            s, e = int(starts[k]), int(ends[k])
            px = np.r_[xin[k], self.lon[s : e + 1], xout[k]]
            py = np.r_[yin[k], self.lat[s : e + 1], yout[k]]
            dist = float(geodesic_distance(px[:-1], py[:-1], px[1:], py[1:]).sum() / 1000.0) if len(px) > 1 else 0.0
            dd = depth[s : e + 1]
            dd = dd[np.isfinite(dd)]
            zz = np.r_[zin[k], self.alt[s : e + 1], zout[k]]
            zz = zz[np.isfinite(zz)]
            st = states_all[s : e + 1]
            ids = self.territories.id_of(np.unique(st[st >= 0]))
            out.append(
                Segment(
                    host=self.host,
                    states=tuple(sorted(str(i) for i in ids)),
                    entry_time=_iso_us(int(tin[k])),
                    entry_lon=round(float(xin[k]), 6),
                    entry_lat=round(float(yin[k]), 6),
                    exit_time=_iso_us(int(tout[k])),
                    exit_lon=round(float(xout[k]), 6),
                    exit_lat=round(float(yout[k]), 6),
                    duration_s=round(float(tout[k] - tin[k]) / 1e6, 3),
                    distance_km=round(dist, 3),
                    max_depth_km=round(float(dd.max()) if len(dd) else 0.0, 3),
                    alt_min_m=float(zz.min()) if len(zz) else None,
                    alt_max_m=float(zz.max()) if len(zz) else None,
                )
            )
        return tuple(out)

    def _interp(self, a: IntArray, b: IntArray, f: FloatArray) -> tuple[FloatArray, FloatArray, IntArray, FloatArray]:
        x = self.lon[a] + f * (self.lon[b] - self.lon[a])
        y = self.lat[a] + f * (self.lat[b] - self.lat[a])
        t = self.t_us[a] + np.rint(f * (self.t_us[b] - self.t_us[a])).astype(np.int64)
        za, zb = self.alt[a], self.alt[b]
        z = np.where(np.isfinite(za) & np.isfinite(zb), za + f * (zb - za), np.where(np.isfinite(zb), zb, za))
        return x, y, t, z

    def _bisect(self, pred: Predicate, a: IntArray, b: IntArray) -> FloatArray:
        """Fraction from fix ``a`` (predicate false) toward ``b`` (true) where the predicate starts to hold."""
        lo = np.zeros(len(a))
        hi = np.ones(len(a))
        hi[a == b] = 0.0
        todo = a != b
        if not todo.any():
            return hi
        for _ in range(BISECT_STEPS):
            mid = 0.5 * (lo + hi)
            x, y, t, z = self._interp(a, b, mid)
            ok = pred(x, y, t, z)
            hi = np.where(todo & ok, mid, hi)
            lo = np.where(todo & ~ok, mid, lo)
        return hi


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One compliance rule: data plus a small evaluator."""

    id: str
    """Rule id, cited in violations."""
    severity: Severity
    """Severity of its violations."""
    stage: int
    """0: always; 1: when an agreement is claimed; 2: when a collection item applies."""
    title: str
    """What the rule requires."""
    evaluate: Callable[[Context, Rule], list[Violation]]
    """The evaluator."""


def _v(ctx: Context, rule: Rule, message: str, segs: tuple[Segment, ...] = (), **details: Any) -> Violation:
    return Violation(
        rule=rule.id,
        severity=rule.severity,
        message=message,
        host=ctx.host,
        agreement_id=ctx.sortie.agreement_id,
        collection_id=ctx.item.id if ctx.item else ctx.sortie.authorisation_id,
        segments=segs,
        details=details,
    )


def _host_segments(ctx: Context) -> tuple[Segment, ...]:
    return ctx.segments(ctx.host_predicate())


def _no_agreement(ctx: Context, rule: Rule) -> list[Violation]:
    if ctx.sortie.agreement_id is not None:
        return []
    segs = _host_segments(ctx)
    return [_v(ctx, rule, f"flew in {ctx.host} territory without claiming any agreement", segs)]


def _agreement_unknown(ctx: Context, rule: Rule) -> list[Violation]:
    aid = ctx.sortie.agreement_id
    if aid is None or ctx.agreements.history(aid):
        return []
    return [_v(ctx, rule, f"claimed agreement {aid!r} is unknown", _host_segments(ctx), known=ctx.agreements.ids())]


def _agreement_not_in_effect(ctx: Context, rule: Rule) -> list[Violation]:
    aid = ctx.sortie.agreement_id
    if aid is None or not ctx.agreements.history(aid):
        return []
    host = ctx.host_predicate()
    versions = ctx.agreements.history(aid)

    def pred(x: FloatArray, y: FloatArray, t: IntArray, z: FloatArray) -> BoolArray:
        ts = t.astype("datetime64[us]")
        in_force = np.zeros(len(t), dtype=bool)
        chosen = np.full(len(t), -1)
        for k, a in enumerate(versions):
            begun = ts >= np.datetime64(a.effective_from.replace(tzinfo=None), "us")
            chosen = np.where(begun, k, chosen)
        for k, a in enumerate(versions):
            end = a.effective_to
            ok = (chosen == k) & (True if end is None else ts <= np.datetime64(end.replace(tzinfo=None), "us"))
            in_force |= ok
        out: BoolArray = host(x, y, t, z) & ~in_force
        return out

    segs = ctx.segments(pred)
    if not segs:
        return []
    return [_v(ctx, rule, f"agreement {aid} was not in force while in {ctx.host} territory", segs)]


def _collection_unknown(ctx: Context, rule: Rule) -> list[Violation]:
    if ctx.agreement is None or ctx.item is not None or ctx.item_problem != "unknown":
        return []
    msg = (
        f"collection item {ctx.sortie.authorisation_id!r} is not in {ctx.agreement.id} v{ctx.agreement.version}"
        f" for collector {ctx.sortie.party}"
    )
    return [_v(ctx, rule, msg, _host_segments(ctx), items=[c.id for c in ctx.agreement.collection])]


def _host_not_covered(ctx: Context, rule: Rule) -> list[Violation]:
    if ctx.agreement is None or ctx.item is not None or ctx.item_problem != "host":
        return []
    msg = f"agreement {ctx.agreement.id} authorises no collection by {ctx.sortie.party} over {ctx.host}"
    return [_v(ctx, rule, msg, _host_segments(ctx))]


def _platform_type(ctx: Context, rule: Rule) -> list[Violation]:
    item = ctx.item
    if item is None or ctx.sortie.platform_type in item.platform_types:
        return []
    msg = f"platform type {ctx.sortie.platform_type} is not authorised by {item.id} ({', '.join(item.platform_types)})"
    return [_v(ctx, rule, msg, _host_segments(ctx), authorised=list(item.platform_types))]


def _outside_area(ctx: Context, rule: Rule) -> list[Violation]:
    if ctx.item is None:
        return []
    region = authorised_region(ctx.item, ctx.territories)
    host = ctx.host_predicate()

    def pred(x: FloatArray, y: FloatArray, t: IntArray, z: FloatArray) -> BoolArray:
        out: BoolArray = host(x, y, t, z) & ~shapely.contains_xy(region, x, y)
        return out

    segs = tuple(s for s in ctx.segments(pred) if s.distance_km >= AREA_TOLERANCE_KM)
    if not segs:
        return []
    km = sum(s.distance_km for s in segs)
    msg = f"{len(segs)} stretch(es), {km:.1f} km, in {ctx.host} territory outside the areas of {ctx.item.id}"
    return [_v(ctx, rule, msg, segs, outside_km=round(km, 3))]


def _depth(ctx: Context, rule: Rule) -> list[Violation]:
    item = ctx.item
    if item is None:
        return []
    mask = ctx.deeper_than(item.max_depth_km)
    if not mask.any():
        return []
    limit = item.max_depth_km
    host = ctx.host_predicate()

    def pred(x: FloatArray, y: FloatArray, t: IntArray, z: FloatArray) -> BoolArray:
        ins = host(x, y, t, z)
        out = np.zeros(len(x), dtype=bool)
        if ins.any():
            out[ins] = point_depth_km(ctx.territories, x[ins], y[ins]) > limit
        return out

    segs = ctx.segments(pred, mask)
    deepest = max(s.max_depth_km for s in segs)
    msg = f"reached {deepest:.1f} km into {ctx.host}, beyond the {limit:g} km authorised by {item.id}"
    return [_v(ctx, rule, msg, segs, max_depth_km=limit, observed_km=deepest)]


def _time_window(ctx: Context, rule: Rule) -> list[Violation]:
    item = ctx.item
    if item is None:
        return []
    host = ctx.host_predicate()
    wins = [(int(w.start.timestamp() * 1e6), int(w.end.timestamp() * 1e6)) for w in item.time_windows]

    def pred(x: FloatArray, y: FloatArray, t: IntArray, z: FloatArray) -> BoolArray:
        inside = np.zeros(len(t), dtype=bool)
        for a, b in wins:
            inside |= (t >= a) & (t <= b)
        out: BoolArray = host(x, y, t, z) & ~inside
        return out

    segs = ctx.segments(pred)
    if not segs:
        return []
    hours = sum(s.duration_s for s in segs) / 3600.0
    msg = f"{hours:.2f} h in {ctx.host} territory outside the time windows of {item.id}"
    return [_v(ctx, rule, msg, segs, windows=[[_iso_us(a), _iso_us(b)] for a, b in wins])]


ALTITUDE_TOLERANCE_M = 5.0
"""Altitudes within this margin of the band count as inside (reported altitudes are rounded)."""


def _altitude(ctx: Context, rule: Rule) -> list[Violation]:
    item = ctx.item
    if item is None:
        return []
    host = ctx.host_predicate()
    lo, hi = item.altitude_min_m, item.altitude_max_m

    def pred(x: FloatArray, y: FloatArray, t: IntArray, z: FloatArray) -> BoolArray:
        with np.errstate(invalid="ignore"):
            bad = np.isfinite(z) & ((z < lo - ALTITUDE_TOLERANCE_M) | (z > hi + ALTITUDE_TOLERANCE_M))
        out: BoolArray = host(x, y, t, z) & bad
        return out

    segs = ctx.segments(pred)
    if not segs:
        return []
    zmin = min(s.alt_min_m for s in segs if s.alt_min_m is not None) if segs else None
    zmax = max(s.alt_max_m for s in segs if s.alt_max_m is not None) if segs else None
    observed = f"{zmin:.0f}–{zmax:.0f} m" if zmin is not None and zmax is not None else "unknown"
    msg = f"flew outside the {lo:g}–{hi:g} m band of {item.id} in {ctx.host} territory (observed {observed})"
    return [_v(ctx, rule, msg, segs, band_m=[lo, hi])]


def _notification(ctx: Context, rule: Rule) -> list[Violation]:
    item = ctx.item
    if item is None:
        return []
    due = ctx.sortie.takeoff - timedelta(hours=item.notification_lead_h)
    n = ctx.sortie.notified_at
    if n is not None and n <= due:
        return []
    if n is None:
        msg = f"the host was not notified (due {item.notification_lead_h:g} h before take-off under {item.id})"
    else:
        lead = (ctx.sortie.takeoff - n).total_seconds() / 3600.0
        msg = f"notified {lead:.1f} h before take-off; {item.id} requires {item.notification_lead_h:g} h"
    return [_v(ctx, rule, msg, due=due.isoformat(), notified_at=n.isoformat() if n else None)]


def _report_due(ctx: Context) -> datetime | None:
    return ctx.sortie.landing + timedelta(hours=ctx.item.report_deadline_h) if ctx.item else None


def _report_missing(ctx: Context, rule: Rule) -> list[Violation]:
    due = _report_due(ctx)
    if due is None or ctx.sortie.report_filed_at is not None:
        return []
    if ctx.as_of is not None and ctx.as_of <= due:
        return []
    return [_v(ctx, rule, f"no post-flight report filed (due {due.isoformat()})", due=due.isoformat())]


def _report_late(ctx: Context, rule: Rule) -> list[Violation]:
    due = _report_due(ctx)
    filed = ctx.sortie.report_filed_at
    if due is None or filed is None or filed <= due:
        return []
    late_h = (filed - due).total_seconds() / 3600.0
    msg = f"post-flight report filed {late_h:.1f} h after its deadline"
    return [_v(ctx, rule, msg, due=due.isoformat(), filed_at=filed.isoformat())]


RULES: tuple[Rule, ...] = (
    Rule(
        id="no-agreement",
        severity=Severity.CRITICAL,
        stage=0,
        title="Claim an agreement before entering a host's territory.",
        evaluate=_no_agreement,
    ),
    Rule(
        id="agreement-unknown",
        severity=Severity.CRITICAL,
        stage=1,
        title="The claimed agreement must exist.",
        evaluate=_agreement_unknown,
    ),
    Rule(
        id="agreement-not-in-effect",
        severity=Severity.CRITICAL,
        stage=1,
        title="The claimed agreement must be in force while in the host's territory.",
        evaluate=_agreement_not_in_effect,
    ),
    Rule(
        id="collection-unknown",
        severity=Severity.CRITICAL,
        stage=1,
        title="The claimed collection item must exist for this collector.",
        evaluate=_collection_unknown,
    ),
    Rule(
        id="host-not-covered",
        severity=Severity.CRITICAL,
        stage=1,
        title="The agreement must authorise collection over this host.",
        evaluate=_host_not_covered,
    ),
    Rule(
        id="platform-type",
        severity=Severity.MAJOR,
        stage=2,
        title="The platform type must be authorised.",
        evaluate=_platform_type,
    ),
    Rule(
        id="outside-area",
        severity=Severity.CRITICAL,
        stage=2,
        title="Stay inside the authorised areas while in the host's territory.",
        evaluate=_outside_area,
    ),
    Rule(
        id="depth",
        severity=Severity.MAJOR,
        stage=2,
        title="Stay within the authorised depth from the host's boundary.",
        evaluate=_depth,
    ),
    Rule(
        id="time-window",
        severity=Severity.MAJOR,
        stage=2,
        title="Be in the host's territory only inside the time windows.",
        evaluate=_time_window,
    ),
    Rule(
        id="altitude",
        severity=Severity.MINOR,
        stage=2,
        title="Fly within the authorised altitude band.",
        evaluate=_altitude,
    ),
    Rule(
        id="notification-late",
        severity=Severity.MAJOR,
        stage=2,
        title="Notify the host at least the lead time before take-off.",
        evaluate=_notification,
    ),
    Rule(
        id="report-missing",
        severity=Severity.MAJOR,
        stage=2,
        title="File the post-flight report.",
        evaluate=_report_missing,
    ),
    Rule(
        id="report-late",
        severity=Severity.MINOR,
        stage=2,
        title="File the post-flight report by its deadline.",
        evaluate=_report_late,
    ),
)
"""The rule table, in evaluation order."""

RULES_BY_ID: dict[str, Rule] = {r.id: r for r in RULES}
"""Rule id → rule."""


# --------------------------------------------------------------------------- engine


def _sort(vs: list[Violation]) -> list[Violation]:
    order = {r.id: k for k, r in enumerate(RULES)}
    return sorted(vs, key=lambda v: (v.severity.rank, order.get(v.rule, 99), v.host))


def _score(vs: Sequence[Violation]) -> tuple[int, int, int]:
    return (
        sum(v.severity is Severity.CRITICAL for v in vs),
        sum(v.severity is Severity.MAJOR for v in vs),
        sum(v.severity is Severity.MINOR for v in vs),
    )


def _run(ctx: Context, rules: Sequence[Rule]) -> list[Violation]:
    out: list[Violation] = []
    for rule in rules:
        if rule.stage == 1 and ctx.sortie.agreement_id is None:
            continue
        if rule.stage == 2 and ctx.item is None:
            continue
        out.extend(rule.evaluate(ctx, rule))
    return out


def check_sortie(
    *,
    sortie: SortieRecord,
    t_us: Any,
    lon: Any,
    lat: Any,
    alt_m: Any,
    agreements: AgreementSet,
    territories: Territories,
    as_of: datetime | None = None,
    rules: Sequence[Rule] = RULES,
) -> SortieVerdict:
    """Verdict for one sortie from its fixes (sorted by time)."""
    t = np.asarray(t_us, dtype=np.int64)
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    z = np.full(len(x), np.nan) if alt_m is None else np.asarray(alt_m, dtype=np.float64)
    lab = label_points(territories, x, y, "country")
    owners = np.append(territories.owners, "INTL").astype(object)
    country = owners[np.where(lab < 0, len(territories), lab)]
    party = sortie.party
    hosts = sorted({str(c) for c in np.unique(country)} - {party, "INTL"}) if len(x) else []
    violations: list[Violation] = []
    version: int | None = None
    judged_item: str | None = None
    for host in hosts:
        first = int(np.flatnonzero(country == host)[0])
        t_first = datetime.fromtimestamp(int(t[first]) / 1e6, tz=UTC)
        agreement = agreements.in_force(sortie.agreement_id, t_first) if sortie.agreement_id else None
        if agreement is not None:
            version = agreement.version
        candidates: list[Collection | None] = [None]
        problem: str | None = None
        if agreement is not None:
            if sortie.authorisation_id:
                item = agreement.item(sortie.authorisation_id)
                if item is None or item.collector != party:
                    problem = "unknown"
                elif item.host != host:
                    problem = "host"
                else:
                    candidates = [item]
            else:
                found = [c for c in agreement.collection if c.host == host and c.collector == party]
                if found:
                    candidates = list(found)
                else:
                    problem = "host"
        best: list[Violation] | None = None
        best_item: Collection | None = None
        shared_depth: FloatArray | None = None
        for item in candidates:
            ctx = Context(
                sortie=sortie,
                host=host,
                t_us=t,
                lon=x,
                lat=y,
                alt=z,
                country=country,
                territories=territories,
                agreements=agreements,
                agreement=agreement,
                item=item,
                item_problem=problem,
                as_of=as_of,
                _depth=shared_depth,
            )
            vs = _run(ctx, rules)
            shared_depth = ctx._depth
            if best is None or _score(vs) < _score(best):
                best, best_item = vs, item
        violations.extend(best or [])
        if best_item is not None:
            judged_item = best_item.id
    return SortieVerdict(
        sortie=sortie,
        hosts=tuple(hosts),
        agreement_version=version,
        collection_id=judged_item,
        violations=tuple(_sort(violations)),
        track_points=len(x),
    )


def check_sorties(
    *,
    sorties: Sequence[SortieRecord],
    tracks: TrackArrays,
    agreements: AgreementSet,
    territories: Territories,
    as_of: datetime | None = None,
    rules: Sequence[Rule] = RULES,
) -> list[SortieVerdict]:
    """Verdicts for many sorties (in the order given); a sortie without track fixes enters no host.

    Pure over its inputs: the same inputs give the same verdicts.
    """
    ranges = tracks.ranges()
    out = []
    for s in sorties:
        a, b = ranges.get(s.sortie_id, (0, 0))
        out.append(
            check_sortie(
                sortie=s,
                t_us=tracks.time_us[a:b],
                lon=tracks.lon[a:b],
                lat=tracks.lat[a:b],
                alt_m=tracks.alt_m[a:b],
                agreements=agreements,
                territories=territories,
                as_of=as_of,
                rules=rules,
            )
        )
    return out


def account_sorties(tracks: TrackArrays, territories: Territories) -> Accounting:
    """Overflight accounting (country and state level) of the sortie tracks."""
    return account_tracks(
        track_id=tracks.sortie_id,
        time_us=tracks.time_us,
        lon=tracks.lon,
        lat=tracks.lat,
        territories=territories,
        levels=("country", "state"),
    )


# --------------------------------------------------------------------------- glue: where sorties and tracks come from


def load_sorties_json(path: Any) -> list[SortieRecord]:
    """Sortie manifests from a scenario's ``records/sorties.json`` (a JSON list of records)."""
    from pathlib import Path

    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValidationError(f"cannot read sortie manifest {p}: {e}", hint="give records/sorties.json") from e
    if isinstance(data, dict):
        data = data.get("sorties", [])
    if not isinstance(data, list):
        raise ValidationError(f"{p}: expected a JSON list of sortie records", hint="give records/sorties.json")
    return [SortieRecord.from_dict(d) for d in data]
