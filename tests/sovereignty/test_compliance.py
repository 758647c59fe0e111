"""Compliance rules on constructed cases: each rule firing and not firing.

A tiny world: collector ``COL`` west of x=0, host ``HST`` from x=0 to x=4
(states ``HST-W`` x<2 and ``HST-E`` x>2), latitudes 0..2.
"""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from shapely.geometry import box

from atalaya.core.errors import ValidationError
from atalaya.geo.territories import Territories, territories_from_geometries
from atalaya.sovereignty.agreements import AgreementSet, parse_agreement
from atalaya.sovereignty.compliance import (
    RULES,
    Severity,
    SortieRecord,
    SortieVerdict,
    TrackArrays,
    check_sortie,
    check_sorties,
    state_territory_id,
)

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def world() -> Territories:
    return territories_from_geometries(
        ids=["COL", "HST", "HST-W", "HST-E"],
        geoms=[box(-2, 0, 0, 2), box(0, 0, 4, 2), box(0, 0, 2, 2), box(2, 0, 4, 2)],
        levels=["country", "country", "state", "state"],
        owners=["COL", "HST", "HST", "HST"],
    )


def agreement_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "AGR-T",
        "version": 1,
        "title": "Test agreement",
        "parties": ["COL", "HST"],
        "effective": {"from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"},
        "collection": [
            {
                "id": "AGR-T/C1",
                "collector": "COL",
                "host": "HST",
                "platform_types": ["MQ-9"],
                "areas": [{"states": ["HST-W"]}],
                "max_depth_km": 80,
                "time_windows": [{"from": "2026-03-01T00:00:00Z", "to": "2026-03-10T00:00:00Z"}],
                "altitude_m": {"min": 5000, "max": 9000},
                "notification_lead_h": 24,
                "report_deadline_h": 48,
            }
        ],
        "sharing": [],
        "retention": {"observations_days": 90, "products_days": 365},
    }
    item = doc["collection"][0]
    for k, v in changes.items():
        if k in item:
            item[k] = v
        else:
            doc[k] = v
    return doc


def agreements(**changes: Any) -> AgreementSet:
    return AgreementSet([parse_agreement(agreement_doc(**changes), source="test")])


def sortie(**changes: Any) -> SortieRecord:
    base: dict[str, Any] = dict(
        sortie_id="S-1",
        platform_id="P-1",
        platform_type="MQ-9",
        party="COL",
        agreement_id="AGR-T",
        authorisation_id="AGR-T/C1",
        notified_at=T0 - timedelta(hours=30),
        report_filed_at=T0 + timedelta(hours=10),
        takeoff=T0,
        landing=T0 + timedelta(hours=4),
    )
    base.update(changes)
    return SortieRecord(**base)


def track(
    points: list[tuple[float, float]],
    *,
    start: datetime = T0,
    step_s: int = 60,
    n_per_leg: int = 30,
    alt: float = 7000.0,
) -> dict[str, Any]:
    xs, ys = [], []
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        f = np.linspace(0.0, 1.0, n_per_leg, endpoint=False)
        xs.append(x0 + f * (x1 - x0))
        ys.append(y0 + f * (y1 - y0))
    xs.append(np.array([points[-1][0]]))
    ys.append(np.array([points[-1][1]]))
    lon, lat = np.concatenate(xs), np.concatenate(ys)
    t = int(start.timestamp() * 1e6) + np.arange(len(lon), dtype=np.int64) * step_s * 1_000_000
    return {"t_us": t, "lon": lon, "lat": lat, "alt_m": np.full(len(lon), alt)}


# Into HST-W to x=0.5 and back: shallow (≈ 55 km), inside the authorised state.
SHALLOW = [(-1.0, 1.0), (0.5, 1.0), (-1.0, 1.0)]


def verdict(world: Territories, s: SortieRecord, trk: dict[str, Any], agr: AgreementSet, **kw: Any) -> SortieVerdict:
    return check_sortie(sortie=s, agreements=agr, territories=world, **trk, **kw)


def rules_of(v: SortieVerdict) -> set[str]:
    return {x.rule for x in v.violations}


def test_rule_table_is_consistent() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    assert {r.stage for r in RULES} == {0, 1, 2}
    assert all(isinstance(r.severity, Severity) and r.title for r in RULES)


def test_compliant_sortie(world: Territories) -> None:
    v = verdict(world, sortie(), track(SHALLOW), agreements())
    assert v.compliant, [x.message for x in v.violations]
    assert v.hosts == ("HST",)
    assert v.collection_id == "AGR-T/C1"
    assert v.agreement_version == 1


def test_never_entering_host_needs_no_agreement(world: Territories) -> None:
    s = sortie(agreement_id=None, authorisation_id=None, notified_at=None, report_filed_at=None)
    v = verdict(world, s, track([(-1.5, 1.0), (-0.2, 1.0), (-1.5, 1.5)]), agreements())
    assert not v.violations and v.hosts == ()
    assert v.status == "no-host" and not v.compliant  # no-host is its own verdict, not "compliant"


def test_no_agreement_fires_with_segment_evidence(world: Territories) -> None:
    s = sortie(agreement_id=None, authorisation_id=None)
    v = verdict(world, s, track(SHALLOW), agreements())
    assert rules_of(v) == {"no-agreement"}
    (viol,) = v.violations
    assert viol.severity is Severity.CRITICAL
    (seg,) = viol.segments
    # Entry and exit are refined onto the border x=0.
    assert abs(seg.entry_lon) < 1e-3 and abs(seg.exit_lon) < 1e-3
    assert seg.entry_time < seg.exit_time
    assert 50 < seg.max_depth_km < 60  # 0.5° of longitude at 1°N ≈ 55 km
    assert 100 < seg.distance_km < 115
    assert seg.states == ("HST-W",)
    assert seg.alt_min_m == seg.alt_max_m == 7000.0


def test_agreement_unknown(world: Territories) -> None:
    v = verdict(world, sortie(agreement_id="AGR-NOPE"), track(SHALLOW), agreements())
    assert rules_of(v) == {"agreement-unknown"}


def test_agreement_not_in_effect(world: Territories) -> None:
    late = T0 + timedelta(days=40)
    s = sortie(
        takeoff=late,
        landing=late + timedelta(hours=4),
        notified_at=late - timedelta(hours=30),
        report_filed_at=late + timedelta(hours=5),
    )
    v = verdict(world, s, track(SHALLOW, start=late), agreements())
    assert "agreement-not-in-effect" in rules_of(v)
    # Stage-2 rules cannot run without a version in force.
    assert rules_of(v) == {"agreement-not-in-effect"}


def test_collection_unknown_and_host_not_covered(world: Territories) -> None:
    v = verdict(world, sortie(authorisation_id="AGR-T/C9"), track(SHALLOW), agreements())
    assert rules_of(v) == {"collection-unknown"}
    v = verdict(world, sortie(party="XXX"), track(SHALLOW), agreements())
    assert "collection-unknown" in rules_of(v)
    # No authorisation named and no item for this host: host not covered.
    v = verdict(world, sortie(authorisation_id=None), track(SHALLOW), agreements(host="COL", collector="HST"))
    assert rules_of(v) == {"host-not-covered"}


def test_item_is_picked_when_none_named(world: Territories) -> None:
    v = verdict(world, sortie(authorisation_id=None), track(SHALLOW), agreements())
    assert v.compliant and v.collection_id == "AGR-T/C1"


def test_platform_type(world: Territories) -> None:
    assert rules_of(verdict(world, sortie(platform_type="U-2"), track(SHALLOW), agreements())) == {"platform-type"}
    assert verdict(world, sortie(), track(SHALLOW), agreements(platform_types=["U-2", "MQ-9"])).compliant


def test_outside_area_states_and_polygons(world: Territories) -> None:
    # Crosses into HST-E (x>2) at mid-height: outside the authorised state list.
    trk = track([(-0.5, 1.0), (2.5, 1.0), (-0.5, 1.0)])
    v = verdict(world, sortie(), trk, agreements(max_depth_km=500))
    assert rules_of(v) == {"outside-area"}
    (viol,) = v.violations
    (seg,) = viol.segments
    assert abs(seg.entry_lon - 2.0) < 1e-3 and abs(seg.exit_lon - 2.0) < 1e-3
    assert seg.states == ("HST-E",)
    assert 100 < seg.distance_km < 115
    # Both states authorised: fine.
    assert verdict(world, sortie(), trk, agreements(max_depth_km=500, areas=[{"states": ["HST-W", "HST-E"]}])).compliant
    # A polygon covering the track's corridor: fine.
    poly = {"type": "Polygon", "coordinates": [[[0, 0.5], [3, 0.5], [3, 1.5], [0, 1.5], [0, 0.5]]]}
    assert verdict(world, sortie(), trk, agreements(max_depth_km=500, areas=[{"polygon": poly}])).compliant


def test_depth(world: Territories) -> None:
    deep = track([(-0.5, 1.0), (1.0, 1.0), (-0.5, 1.0)])  # ≈ 111 km deep at x=1 (edges at y=0, 2 and x=0)
    v = verdict(world, sortie(), deep, agreements(max_depth_km=80))
    assert rules_of(v) == {"depth"}
    (viol,) = v.violations
    assert viol.details["observed_km"] > 100
    (seg,) = viol.segments
    # The stretch starts where depth crosses 80 km: about 0.72° east of the border.
    assert 0.68 < seg.entry_lon < 0.76
    assert verdict(world, sortie(), deep, agreements(max_depth_km=120)).compliant


def test_time_window(world: Territories) -> None:
    s_late = datetime(2026, 3, 10, tzinfo=UTC) - timedelta(minutes=30)  # border at −10 min, window closes at 0
    s = sortie(
        takeoff=s_late,
        landing=s_late + timedelta(hours=2),
        notified_at=s_late - timedelta(hours=30),
        report_filed_at=s_late + timedelta(hours=5),
    )
    v = verdict(world, s, track(SHALLOW, start=s_late), agreements())
    assert rules_of(v) == {"time-window"}
    (seg,) = v.violations[0].segments
    assert seg.entry_time.startswith("2026-03-10T00:00:00")
    assert 0.4 < seg.entry_lon < 0.5  # 10 min after crossing at 0.075°/min
    assert abs(seg.exit_lon) < 1e-3


def test_altitude(world: Territories) -> None:
    trk = track(SHALLOW, alt=3000.0)
    v = verdict(world, sortie(), trk, agreements())
    assert rules_of(v) == {"altitude"}
    assert v.violations[0].severity is Severity.MINOR
    assert v.violations[0].segments[0].alt_max_m == 3000.0
    # Low only outside the host: fine.
    trk2 = track(SHALLOW)
    trk2["alt_m"][[0, -1]] = 100.0
    assert verdict(world, sortie(), trk2, agreements()).compliant


def test_notification(world: Territories) -> None:
    v = verdict(world, sortie(notified_at=T0 - timedelta(hours=5)), track(SHALLOW), agreements())
    assert rules_of(v) == {"notification-late"}
    v = verdict(world, sortie(notified_at=None), track(SHALLOW), agreements())
    assert rules_of(v) == {"notification-late"}
    assert "not notified" in v.violations[0].message


def test_reports(world: Territories) -> None:
    v = verdict(world, sortie(report_filed_at=None), track(SHALLOW), agreements())
    assert rules_of(v) == {"report-missing"}
    # Not yet due at the time of the check: no violation.
    v = verdict(world, sortie(report_filed_at=None), track(SHALLOW), agreements(), as_of=T0 + timedelta(hours=10))
    assert v.compliant
    v = verdict(world, sortie(report_filed_at=T0 + timedelta(hours=60)), track(SHALLOW), agreements())
    assert rules_of(v) == {"report-late"}


def test_violations_sorted_by_severity(world: Territories) -> None:
    s = sortie(platform_type="U-2", report_filed_at=T0 + timedelta(hours=70))
    v = verdict(world, s, track([(-0.5, 1.0), (2.5, 1.0), (-0.5, 1.0)], alt=3000.0), agreements())
    sev = [x.severity.rank for x in v.violations]
    assert sev == sorted(sev)
    assert v.worst is Severity.CRITICAL
    assert rules_of(v) >= {"outside-area", "platform-type", "altitude", "report-late", "depth"}


def test_check_sorties_over_track_arrays(world: Territories) -> None:
    a = track(SHALLOW)
    b = track([(-1.5, 1.0), (-0.5, 1.0)])
    tracks = TrackArrays.build(
        sortie_id=["S-2"] * len(b["lon"]) + ["S-1"] * len(a["lon"]),
        time_us=np.r_[b["t_us"], a["t_us"]],
        lon=np.r_[b["lon"], a["lon"]],
        lat=np.r_[b["lat"], a["lat"]],
        alt_m=np.r_[b["alt_m"], a["alt_m"]],
    )
    s1 = sortie(agreement_id=None, authorisation_id=None)
    s2 = sortie(sortie_id="S-2", agreement_id=None, authorisation_id=None)
    s3 = sortie(sortie_id="S-3")  # no track at all
    out = check_sorties(sorties=[s1, s2, s3], tracks=tracks, agreements=agreements(), territories=world)
    assert [v.sortie.sortie_id for v in out] == ["S-1", "S-2", "S-3"]
    assert [v.status for v in out] == ["violation", "no-host", "unverifiable"]
    assert not out[2].compliant and "no flown track" in out[2].reason  # no track is never compliant
    assert out[2].to_dict()["status"] == "unverifiable"
    assert out[0].to_dict()["violations"][0]["rule"] == "no-agreement"


def test_sortie_record_from_manifest() -> None:
    r = SortieRecord.from_dict(
        {
            "sortie_id": "S-9",
            "platform_id": "MQ9-01",
            "platform_type": "MQ-9",
            "party": "USA",
            "agreement_id": None,
            "authorisation_id": None,
            "notified_at": None,
            "report_filed_at": None,
            "takeoff": "2026-03-02T06:00:00Z",
            "landing": "2026-03-02T10:00:00Z",
        }
    )
    assert r.takeoff == T0 and r.agreement_id is None
    with pytest.raises(ValidationError):
        SortieRecord.from_dict({"platform_id": "x"})


def test_state_codes_map_to_territory_ids() -> None:
    assert state_territory_id("MX-SIN") == "MEX-SIN"
    assert state_territory_id("US-AZ") == "USA-AZ"


def test_unknown_state_in_agreement_is_a_clear_error(world: Territories) -> None:
    with pytest.raises(ValidationError, match="not a known territory"):
        verdict(world, sortie(), track(SHALLOW), agreements(areas=[{"states": ["HST-ZZZ"]}]))


def test_check_is_deterministic(world: Territories) -> None:
    args = (world, sortie(agreement_id=None), track(SHALLOW), agreements())
    assert verdict(*args).to_dict() == verdict(*args).to_dict()
    assert copy.deepcopy(verdict(*args).to_dict()) == verdict(*args).to_dict()
