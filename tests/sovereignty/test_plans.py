"""check-plan: legs by territory and the authorisation covering each (real Sonora border)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from atalaya.core.errors import ValidationError
from atalaya.geo.territories import Territories, load_territories
from atalaya.sovereignty.agreements import AgreementSet, example_document, parse_agreement
from atalaya.sovereignty.plans import check_plan, read_plan


@pytest.fixture(scope="module")
def terr() -> Territories:
    return load_territories()


def agreements(**item: Any) -> AgreementSet:
    doc = example_document()  # USA→MEX, MQ-9, MX-SON, 60 km, March 2026, 5000–9000 m
    doc["collection"][0].update(item)
    return AgreementSet([parse_agreement(doc, source="test")])


def write_geojson(path: Path, coords: list[list[float]], times: list[str] | None = None) -> Path:
    props: dict[str, Any] = {"name": "plan-1"}
    if times:
        props["times"] = times
    path.write_text(json.dumps({"type": "Feature", "properties": props,
                                "geometry": {"type": "LineString", "coordinates": coords}}))  # fmt: skip
    return path


# From Fort Huachuca (Arizona) south across the border into Sonora (~40 km deep) and back.
ROUTE = [[-110.34, 31.59, 7000.0], [-110.30, 30.98, 7000.0], [-110.34, 31.59, 7000.0]]
TIMES = ["2026-03-05T10:00:00Z", "2026-03-05T11:00:00Z", "2026-03-05T12:00:00Z"]


def test_legs_and_cover(terr: Territories, tmp_path: Path) -> None:
    plan = read_plan(write_geojson(tmp_path / "p.geojson", ROUTE, TIMES))
    legs = check_plan(plan, agreements=agreements(), territories=terr, party="USA", platform_type="MQ-9")
    assert [(leg.country, leg.state) for leg in legs] == [("USA", "USA-AZ"), ("MEX", "MEX-SON"), ("USA", "USA-AZ")]
    mex = legs[1]
    assert mex.foreign and mex.covered and mex.covered_by == ["AGR-X/C1"]
    assert 25 < mex.max_depth_km < 45  # type: ignore[operator]  # set for legs inside a country
    assert legs[0].end_time == mex.start_time and mex.start_time is not None
    assert sum(leg.distance_km for leg in legs) == pytest.approx(2 * 68.0, rel=0.05)
    assert not legs[0].foreign and legs[0].covered


def test_uncovered_leg_says_why(terr: Territories, tmp_path: Path) -> None:
    plan = read_plan(write_geojson(tmp_path / "p.geojson", ROUTE, TIMES))
    legs = check_plan(
        plan, agreements=agreements(max_depth_km=10, areas=[{"states": ["MX-CHH"]}]), territories=terr,
        party="USA", platform_type="U-2",
    )  # fmt: skip
    mex = legs[1]
    assert not mex.covered
    (cov,) = mex.coverage
    text = " | ".join(cov.reasons)
    assert "platform type U-2" in text and "outside the authorised areas" in text and "deep" in text
    d = mex.to_dict()
    assert d["covered"] is False and d["not_covered"][0]["collection_id"] == "AGR-X/C1"


def test_plan_without_times_notes_it(terr: Territories, tmp_path: Path) -> None:
    kml = tmp_path / "p.kml"
    coords = " ".join(f"{x},{y}" for x, y, _ in ROUTE)
    kml.write_text(
        '<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><name>k</name>'
        f"<LineString><coordinates>{coords}</coordinates></LineString></Placemark></kml>"
    )
    legs = check_plan(read_plan(kml), agreements=agreements(), territories=terr, party="USA")
    mex = legs[1]
    assert mex.covered and mex.start_time is None
    assert any("no planned times" in n for n in mex.notes)
    assert any("altitude" in n for n in mex.notes)


def test_gpx_route_outside_time_window(terr: Territories, tmp_path: Path) -> None:
    gpx = tmp_path / "p.gpx"
    pts = "".join(
        f'<rtept lat="{y}" lon="{x}"><ele>{z}</ele><time>2026-05-05T1{i}:00:00Z</time></rtept>'
        for i, (x, y, z) in enumerate(ROUTE)
    )
    gpx.write_text(f'<gpx xmlns="http://www.topografix.com/GPX/1/1" version="1.1"><rte>{pts}</rte></gpx>')
    legs = check_plan(read_plan(gpx), agreements=agreements(), territories=terr, party="USA", platform_type="MQ-9")
    assert not legs[1].covered
    assert any("time windows" in r for r in legs[1].coverage[0].reasons)


def test_no_agreement_for_host(terr: Territories, tmp_path: Path) -> None:
    plan = read_plan(write_geojson(tmp_path / "p.geojson", ROUTE))
    legs = check_plan(plan, agreements=AgreementSet(), territories=terr, party="USA")
    assert not legs[1].covered and "no agreement authorises" in legs[1].notes[-1]


def test_bad_plans(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown plan format"):
        read_plan(tmp_path / "p.txt")
    with pytest.raises(ValidationError, match="route point"):
        read_plan(write_geojson(tmp_path / "one.geojson", [[0.0, 0.0]]))
    bad = tmp_path / "bad.kml"
    bad.write_text("<kml><Placemark>")
    with pytest.raises(ValidationError):
        read_plan(bad)


def test_a_slow_planned_leg_is_not_taken_for_a_reception_gap(tmp_path: Path) -> None:
    """Accounting leaves out legs longer than a gap limit; a plan's legs are drawn, so every crossing counts."""
    from datetime import UTC, datetime

    from atalaya.geo.territories import load_territories
    from atalaya.sovereignty.agreements import AgreementSet
    from atalaya.sovereignty.plans import check_plan, read_plan

    route = {"type": "Feature", "properties": {}, "geometry": {
        "type": "LineString", "coordinates": [[-110.9, 32.0], [-110.9, 30.0], [-110.9, 32.0]]}}  # fmt: skip
    (tmp_path / "slow.geojson").write_text(json.dumps(route), encoding="utf-8")
    legs = check_plan(read_plan(tmp_path / "slow.geojson"), agreements=AgreementSet(), territories=load_territories(),
                      party="USA", start=datetime(2026, 3, 2, tzinfo=UTC), speed_mps=2.0)  # fmt: skip
    assert [leg.country for leg in legs] == ["USA", "MEX", "USA"]  # both crossings cut the route
