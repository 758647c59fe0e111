"""Tests of the GeoJSON reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atalaya.ingest.base import ReadOptions, read_all
from atalaya.ingest.geojson import GeoJsonReader

T0 = 1_714_557_600_000_000  # 2024-05-01T10:00:00Z in µs


def _feature(geom: dict[str, object], **props: object) -> dict[str, object]:
    return {"type": "Feature", "geometry": geom, "properties": props}


def _pt(lon: float, lat: float, *z: float) -> dict[str, object]:
    return {"type": "Point", "coordinates": [lon, lat, *z]}


FEATURES = [
    _feature(_pt(-99.1, 19.4, 30.0), time="2024-05-01T10:00:00Z", sensor="eo", kind="thermal", site={"n": 1}),
    _feature({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}, time="2024-05-01T10:00:00Z"),
    _feature(
        {"type": "MultiPoint", "coordinates": [[-98.0, 20.0], [-97.0, 21.0]]},
        timestamp=1714557600,
        sensor="SIGINT",
        kind="emitter",
        emitter_id="E-7",
    ),
    _feature(_pt(-99.0, 19.0), time="not a time", sensor="EO", kind="vehicle"),
    _feature(_pt(-99.0, 19.0), time="2024-05-01T10:00:00Z", sensor="EO", kind="dragon"),
]


@pytest.mark.parametrize("batch_rows", [1, 2, 1000])
def test_feature_collection_round_trip(tmp_path: Path, batch_rows: int) -> None:
    p = tmp_path / "fc.geojson"
    p.write_text(json.dumps({"type": "FeatureCollection", "name": "x", "features": FEATURES}, indent=1))
    cols, rejects = read_all(GeoJsonReader(), p, ReadOptions(batch_rows=batch_rows))
    assert cols["src_rec"] == [0, 2, 2]
    assert cols["lon"] == [-99.1, -98.0, -97.0]
    assert cols["time"] == [T0, T0, T0]
    assert cols["sensor"] == ["EO", "SIGINT", "SIGINT"]
    assert cols["ident"] == [None, "E-7", "E-7"]
    assert cols["ident_kind"] == [None, "emitter", "emitter"]
    assert cols["alt_m"][0] == 30.0
    assert json.loads(cols["attrs"][0]) == {"site": {"n": 1}}
    by = {r.src_rec: r.reason for r in rejects}
    assert sorted(by) == [1, 3, 4]
    assert "Polygon" in by[1]
    assert "not a time" in by[3]
    assert "dragon" in by[4]


def test_text_sequence_and_bad_records(tmp_path: Path) -> None:
    p = tmp_path / "seq.geojsons"
    body = b"".join(b"\x1e" + json.dumps(f).encode() + b"\n" for f in FEATURES[:1])
    body += b"\x1e{not json\n\n" + json.dumps(FEATURES[0]).encode() + b"\n"
    p.write_bytes(body)
    cols, rejects = read_all(GeoJsonReader(), p)
    assert cols["src_rec"] == [1, 4]
    assert [r.src_rec for r in rejects] == [2]


def test_truncated_collection_keeps_complete_features(tmp_path: Path) -> None:
    p = tmp_path / "cut.geojson"
    text = json.dumps({"type": "FeatureCollection", "features": [FEATURES[0], FEATURES[0], FEATURES[0]]})
    p.write_text(text[: len(text) - 40])
    cols, rejects = read_all(GeoJsonReader(), p)
    assert cols["src_rec"] == [0, 1]
    assert len(rejects) == 1
    assert rejects[0].src_rec == 2


def test_empty_collection(tmp_path: Path) -> None:
    p = tmp_path / "empty.geojson"
    p.write_text('{"type": "FeatureCollection", "features": []}')
    cols, rejects = read_all(GeoJsonReader(), p)
    assert rejects == []
    assert cols.get("time", []) == []


def test_sniff_claims_only_geojson() -> None:
    r = GeoJsonReader()
    assert r.sniff(b'{"type":"FeatureCollection","features":[', Path("a.json")) >= 0.5
    assert r.sniff(b'\x1e{"type":"Feature","geometry":null}', Path("a.geojsons")) >= 0.5
    assert r.sniff(b'{"time": 1700000000, "states": [["abc"]]}', Path("a.json")) == 0.0
    assert r.sniff(b'{"type": "bundle", "id": "bundle--1", "objects": []}', Path("a.json")) == 0.0
    assert r.sniff(b"time,lon,lat\n", Path("a.csv")) == 0.0
