"""Tests for the GPX and KML track readers and writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atalaya.core.errors import ValidationError
from atalaya.ingest.base import ReadOptions, read_all
from atalaya.ingest.registry import detect_format
from atalaya.ingest.tracks import GpxReader, KmlReader, SortieTrack, write_gpx_tracks, write_kml_tracks

DATA = Path(__file__).parent / "data" / "tracks"


def make_track(sortie: str = "S-0042", n: int = 5, *, platform_type: str | None = "MQ-9") -> SortieTrack:
    rng = np.random.default_rng(len(sortie) + n)
    alt = rng.uniform(1000, 9000, n)
    if n > 1:
        alt[1] = np.nan
    return SortieTrack(
        sortie_id=sortie,
        platform_id="MQ9-07",
        platform_type=platform_type,
        time_us=1_714_564_800_000_000 + np.arange(n, dtype=np.int64) * 1_000_123,
        lon=rng.uniform(-118, -86, n),
        lat=rng.uniform(14, 33, n),
        alt_m=alt,
    )


@pytest.mark.parametrize(
    ("writer", "reader", "ext"), [(write_gpx_tracks, GpxReader, "gpx"), (write_kml_tracks, KmlReader, "kml")]
)
def test_round_trip(tmp_path: Path, writer, reader, ext: str) -> None:  # type: ignore[no-untyped-def]  # parametrised callables
    tracks = [make_track("S-0042", 7), make_track("S-<&>", 3, platform_type=None)]
    path = tmp_path / f"t.{ext}"
    writer(path, tracks)
    assert detect_format(path) == ext
    cols, rejects = read_all(reader(), path)
    assert rejects == []
    np.testing.assert_array_equal(cols["time"], np.concatenate([t.time_us for t in tracks]))
    np.testing.assert_array_equal(cols["lon"], np.concatenate([t.lon for t in tracks]))
    np.testing.assert_array_equal(cols["lat"], np.concatenate([t.lat for t in tracks]))
    alt = np.concatenate([t.alt_m for t in tracks]).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(cols["alt_m"], dtype=np.float32), alt)
    assert cols["sortie_id"] == ["S-0042"] * 7 + ["S-<&>"] * 3
    assert cols["ident"] == cols["sortie_id"]
    assert cols["ident_kind"] == ["sortie"] * 10
    assert cols["platform_id"] == ["MQ9-07"] * 10
    assert cols["kind"] == ["platform"] * 7 + ["unknown"] * 3
    assert cols["sensor"] == ["TRACK"] * 10
    assert cols["attrs"][0] == '{"platform_type": "MQ-9"}'
    assert cols["attrs"][-1] is None


def test_writer_rejects_ragged_arrays(tmp_path: Path) -> None:
    bad = SortieTrack(
        sortie_id="S", time_us=np.zeros(2, dtype=np.int64), lon=np.zeros(1), lat=np.zeros(2), alt_m=np.zeros(2)
    )
    with pytest.raises(ValidationError, match="lengths differ"):
        write_gpx_tracks(tmp_path / "x.gpx", [bad])


def test_empty_tracks(tmp_path: Path) -> None:
    write_gpx_tracks(tmp_path / "e.gpx", [])
    write_kml_tracks(tmp_path / "e.kml", [make_track(n=0)])
    assert read_all(GpxReader(), tmp_path / "e.gpx") == ({}, [])
    cols, rejects = read_all(KmlReader(), tmp_path / "e.kml")
    assert cols == {}
    assert [r.reason for r in rejects] == ["gx:Track without points (no timestamps)"]


def test_kml_points_linestrings_and_multitrack() -> None:
    cols, rejects = read_all(KmlReader(), DATA / "mixed.kml")
    assert cols["ident"] == ["Lab sighting", "S-0001", "S-0001"]
    assert cols["lon"] == [-107.39, -107.0, -107.01]
    assert cols["alt_m"] == [120.0, 3000.0, 3010.0]
    assert cols["src_rec"] == [7, 16, 17]
    assert len(rejects) == 1
    assert rejects[0].src_rec == 11
    assert "no timestamps" in rejects[0].reason


GPX_BAD = """<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="t" xmlns="http://www.topografix.com/GPX/1/1">
<wpt lat="20.0" lon="-100.0"><name>planned</name></wpt>
<wpt lat="20.5" lon="-100.5"><time>2024-05-01T09:00:00Z</time><name>seen</name></wpt>
<trk><name>S-1</name><src>P-1</src><type>U-2</type><trkseg>
<trkpt lat="20.0" lon="-100.0"><time>2024-05-01T10:00:00Z</time></trkpt>
<trkpt lat="20.0" lon="-100.1"><time>not a time</time></trkpt>
<trkpt lat="95.0" lon="-100.2"><time>2024-05-01T10:00:02Z</time></trkpt>
<trkpt lat="NaN" lon="-100.3"><time>2024-05-01T10:00:03Z</time></trkpt>
<trkpt lat="20.0" lon="-100.4"></trkpt>
<trkpt lat="20.0" lon="-100.5"><time>2024-05-01T10:00:05Z</time></trkpt oops>
<trkpt lat="20.0" lon="-100.6"><ele>100</ele><time>2024-05-01T10:00:06Z</time></trkpt>
</trkseg></trk>
<trk><name>S-2</name><trkseg>
<trkpt lat="21.0" lon="-101.0"><time>2024-05-01T11:00:00Z</time></trkpt>
<trkpt lat="21.0" lon="-101.1"><time>2024-05-01T11:00:01Z</ti"""


def test_gpx_bad_input_corpus(tmp_path: Path) -> None:
    path = tmp_path / "bad.gpx"
    path.write_text(GPX_BAD, encoding="utf-8")
    cols, rejects = read_all(GpxReader(), path)
    assert cols["lon"] == [-100.5, -100.0, -100.6, -101.0]
    assert cols["name"] == ["seen", None, None, None]
    assert cols["sortie_id"] == [None, "S-1", "S-1", "S-2"]
    assert cols["platform_id"] == [None, "P-1", "P-1", None]
    assert cols["kind"] == ["unknown", "platform", "platform", "unknown"]
    assert cols["src_rec"] == [4, 6, 12, 15]
    by_line = {r.src_rec: r.reason for r in rejects}
    assert "bad time" in by_line[7]
    assert "bad coordinates" in by_line[8]
    assert "bad coordinates" in by_line[9]
    assert "no timestamps" in by_line[10]
    assert "malformed XML" in by_line[11]
    assert "malformed XML" in by_line[16]


def test_gpx_wrong_encoding_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "enc.gpx"
    text = GPX_BAD.split("<trk>")[0].replace("planned", "Niño") + "</gpx>"
    path.write_bytes(text.replace("seen", "Año").encode("latin-1"))  # declared UTF-8, written Latin-1
    _cols, rejects = read_all(GpxReader(), path)
    assert any("malformed XML" in r.reason or "unreadable" in r.reason for r in rejects)


def test_batches_bounded(tmp_path: Path) -> None:
    path = tmp_path / "many.gpx"
    write_gpx_tracks(path, [make_track(f"S-{i}", 100) for i in range(10)])
    batches = list(GpxReader().read(path, ReadOptions(batch_rows=250)))
    assert sum(len(b) for b in batches) == 1000
    assert max(len(b) for b in batches) <= 250
    assert sum(b.bytes_read for b in batches) == path.stat().st_size


def test_truncated_kml(tmp_path: Path) -> None:
    path = tmp_path / "cut.kml"
    write_kml_tracks(path, [make_track("A", 4), make_track("B", 4)])
    text = path.read_text()
    path.write_text(text[: text.index("<name>B</name>") + 200])
    cols, rejects = read_all(KmlReader(), path)
    assert cols["sortie_id"][:4] == ["A"] * 4
    assert rejects
