"""Partner report: HTML parses and carries the figures; CSV and JSON agree with the verdicts.

Also the end-to-end compliance check on the real Sonora border.
"""

from __future__ import annotations

import csv
import itertools
import json
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from atalaya.geo.territories import Territories, load_territories
from atalaya.sovereignty.agreements import AgreementSet, example_document, parse_agreement
from atalaya.sovereignty.compliance import SortieRecord, TrackArrays, account_sorties, check_sorties
from atalaya.sovereignty.report import CSV_COLUMNS, write_report

T0 = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def terr() -> Territories:
    return load_territories()


def _leg(a: tuple[float, float], b: tuple[float, float], n: int) -> tuple[np.ndarray, np.ndarray]:
    f = np.linspace(0.0, 1.0, n, endpoint=False)
    return a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])


def _track(sid: str, pts: list[tuple[float, float]], start: datetime, alt: float) -> dict[str, np.ndarray]:
    xs, ys = zip(*(_leg(a, b, 120) for a, b in itertools.pairwise(pts)), strict=True)
    lon = np.r_[np.concatenate(xs), pts[-1][0]]
    lat = np.r_[np.concatenate(ys), pts[-1][1]]
    t = int(start.timestamp() * 1e6) + np.arange(len(lon), dtype=np.int64) * 30_000_000
    return {
        "sid": np.array([sid] * len(lon), dtype=object),
        "t": t,
        "lon": lon,
        "lat": lat,
        "alt": np.full(len(lon), alt),
    }


def _record(sid: str, agreement: str | None, ptype: str = "MQ-9") -> SortieRecord:
    return SortieRecord(
        sortie_id=sid, platform_id=f"P-{sid}", platform_type=ptype, party="USA", agreement_id=agreement,
        authorisation_id="AGR-X/C1" if agreement else None, notified_at=T0 - timedelta(hours=30),
        report_filed_at=T0 + timedelta(hours=10), takeoff=T0, landing=T0 + timedelta(hours=2),
    )  # fmt: skip


@pytest.fixture(scope="module")
def case(terr: Territories):  # type: ignore[no-untyped-def]  # module fixture returning a tuple of inputs
    # Fort Huachuca → 35 km into Sonora → back: compliant under AGR-X/C1 (MX-SON, 60 km, 5000–9000 m).
    a = _track("S-A", [(-110.34, 31.59), (-110.30, 31.0), (-110.34, 31.59)], T0, 7000.0)
    # Same route, no agreement claimed: critical.
    b = _track("S-B", [(-110.34, 31.59), (-110.30, 31.0), (-110.34, 31.59)], T0, 7000.0)
    # Deep into Chihuahua (outside MX-SON, beyond 60 km).
    c = _track("S-C", [(-108.5, 31.9), (-107.0, 30.0), (-108.5, 31.9)], T0, 7000.0)
    # Stays in Arizona: no host entered.
    d = _track("S-D", [(-111.5, 32.5), (-110.5, 32.5)], T0, 7000.0)
    parts = [a, b, c, d]
    tracks = TrackArrays.build(
        sortie_id=np.concatenate([p["sid"] for p in parts]), time_us=np.concatenate([p["t"] for p in parts]),
        lon=np.concatenate([p["lon"] for p in parts]), lat=np.concatenate([p["lat"] for p in parts]),
        alt_m=np.concatenate([p["alt"] for p in parts]),
    )  # fmt: skip
    sorties = [_record("S-A", "AGR-X"), _record("S-B", None), _record("S-C", "AGR-X"), _record("S-D", None)]
    agreements = AgreementSet([parse_agreement(example_document(), source="test")])
    verdicts = check_sorties(sorties=sorties, tracks=tracks, agreements=agreements, territories=terr)
    return verdicts, tracks, account_sorties(tracks, terr)


def test_sonora_verdicts(case) -> None:  # type: ignore[no-untyped-def]
    verdicts, _, _ = case
    v = {x.sortie.sortie_id: x for x in verdicts}
    assert v["S-A"].compliant, [x.message for x in v["S-A"].violations]
    assert [x.rule for x in v["S-B"].violations] == ["no-agreement"]
    seg = v["S-B"].violations[0].segments[0]
    assert abs(seg.entry_lat - 31.3272) < 0.01 and seg.states == ("MEX-SON",)
    assert {x.rule for x in v["S-C"].violations} >= {"outside-area", "depth"}
    assert v["S-D"].status == "no-host" and v["S-D"].hosts == () and not v["S-D"].violations


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in ("script", "link"):
            raise AssertionError(f"report must be self-contained, found <{tag}>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_report_files(case, tmp_path: Path, terr: Territories) -> None:  # type: ignore[no-untyped-def]
    verdicts, tracks, acc = case
    paths = write_report(tmp_path, partner="MEX", verdicts=verdicts, accounting=acc, tracks=tracks, territories=terr,
                         generated_at=T0)  # fmt: skip
    page = paths["html"].read_text()
    p = _Collect()
    p.feed(page)
    p.close()
    assert p.tags.count("svg") == 7  # one map, six charts
    assert "path" in p.tags and "table" in p.tags
    text = " ".join(p.text)
    for sid in ("S-A", "S-B", "S-C"):
        assert sid in text
    assert "S-D" not in " ".join(t for t in p.text if t.startswith("S-"))  # never over MEX: not in the tables
    assert "no-agreement" in text and "outside-area" in text
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")

    data = json.loads(paths["json"].read_text())
    rows = list(csv.DictReader(paths["csv"].open()))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(data["rows"])
    assert {r["sortie_id"] for r in rows} == {"S-A", "S-B", "S-C"}
    by = {v.sortie.sortie_id: v for v in verdicts}
    for r in rows:
        assert (r["compliant"] == "True") == by[r["sortie_id"]].compliant
        assert int(r["violations"]) == len(by[r["sortie_id"]].violations)
    country = [r for r in data["rows"] if r["level"] == "country"]
    assert all(r["territory_id"] == "MEX" for r in country)
    assert data["totals"]["hours"] == pytest.approx(sum(r["hours"] for r in country), abs=1e-3)
    assert data["totals"]["sorties_over_partner"] == 3 and data["totals"]["compliant_over_partner"] == 1
    # S-C went > 60 km deep; the figure shown in the HTML is the accounting's.
    sc = next(r for r in country if r["sortie_id"] == "S-C")
    assert sc["max_depth_km"] > 60
    assert f"{sc['max_depth_km']:.1f}" in text
    assert sum(data["by_platform_type"]["MQ-9"].values()) > 0
    assert {v["sortie_id"] for v in data["verdicts"]} == {"S-A", "S-B", "S-C"}
