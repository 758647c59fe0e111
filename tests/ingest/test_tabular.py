"""Tests of the CSV and GeoParquet readers and the shared column mapping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from atalaya.core.errors import IngestError
from atalaya.ingest.base import MAX_LINE_BYTES, ReadOptions, read_all
from atalaya.ingest.tabular import CsvReader, ParquetReader, plan_columns

DATA = Path(__file__).parent / "data" / "tabular"
HEADER = "time,lon,lat,sensor,kind,ident,ident_kind,confidence"
T0 = 1_714_557_600_000_000  # 2024-05-01T10:00:00Z in µs


def _write(tmp_path: Path, text: str | bytes, name: str = "in.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def _good_row(i: int) -> str:
    return f"2024-05-01T10:00:{i:02d}Z,-99.{i:02d},19.5,EO,vehicle,trk-{i},track,0.9"


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_csv_round_trip_canonical_names(tmp_path: Path, threads: int) -> None:
    rng = np.random.default_rng(1)
    n = 2000
    lon = np.round(rng.uniform(-117, -97, n), 6)
    lat = np.round(rng.uniform(14, 32, n), 6)
    t = T0 + np.arange(n, dtype=np.int64) * 1_500_000
    table = pa.table(
        {
            "time": pa.array(t, type=pa.timestamp("us", tz="UTC")),
            "lon": lon,
            "lat": lat,
            "alt_m": np.full(n, 120.5, dtype=np.float32),
            "sensor": ["GMTI"] * n,
            "kind": ["vehicle"] * n,
            "ident": [f"t{i}" for i in range(n)],
            "platform_id": ["MQ9-01"] * n,
        }
    )
    import pyarrow.csv as pacsv

    path = tmp_path / "rt.csv"
    pacsv.write_csv(table, path)
    batches = list(CsvReader(threads=threads).read(path, ReadOptions(batch_rows=300)))
    assert len(batches) > 1
    cols, rejects = read_all(CsvReader(threads=threads), path, ReadOptions(batch_rows=300))
    assert rejects == []
    assert cols["time"] == t.tolist()
    assert np.allclose(cols["lon"], lon)
    assert np.allclose(cols["lat"], lat)
    assert cols["sensor"] == ["GMTI"] * n
    assert cols["ident"][:2] == ["t0", "t1"]
    assert cols["platform_id"][0] == "MQ9-01"
    assert cols["src_rec"] == list(range(2, n + 2))
    assert "attrs" not in cols


def test_aliases_fixture_with_defaults() -> None:
    cols, rejects = read_all(
        CsvReader(), DATA / "aliases.csv", ReadOptions(defaults={"sensor": "AIS", "kind": "vessel"})
    )
    assert rejects == []
    assert cols["time"] == [T0, T0 + 10_000_000]
    assert cols["lon"] == [-94.5, -94.51]
    assert cols["ident"] == ["345000001", "345000001"]
    assert cols["ident_kind"] == ["mmsi", "mmsi"]
    assert cols["speed_mps"][0] == pytest.approx(5.5)
    assert cols["name"] == ["LA GAVIOTA", "LA GAVIOTA"]
    assert cols["sensor"] == ["AIS", "AIS"]
    assert [json.loads(a) for a in cols["attrs"]] == [{"port": "Veracruz"}, {"port": "Veracruz"}]


def test_column_map_overrides_and_drops(tmp_path: Path) -> None:
    p = _write(tmp_path, "when,east,north,x,what\n2024-05-01T10:00:00Z,-99,19,7,thermal\n")
    opts = ReadOptions(column_map={"when": "time", "EAST": "lon", "north": "lat", "x": "-", "what": "kind"})
    cols, rejects = read_all(CsvReader(), p, ReadOptions(**{**opts.__dict__, "defaults": {"sensor": "ir"}}))
    assert rejects == []
    assert cols["lon"] == [-99.0]
    assert cols["kind"] == ["thermal"]
    assert cols["sensor"] == ["IR"]
    assert "attrs" not in cols


def test_missing_required_columns_raise_with_hint(tmp_path: Path) -> None:
    p = _write(tmp_path, "when,lon,lat\n2024-05-01T10:00:00Z,1,2\n")
    with pytest.raises(IngestError) as e:
        list(CsvReader().read(p, ReadOptions()))
    assert "time" in e.value.message
    assert "when" in e.value.message
    assert e.value.hint is not None
    assert "--map" in e.value.hint
    assert "--set" in e.value.hint


def test_plan_rejects_unknown_target() -> None:
    with pytest.raises(IngestError):
        plan_columns(["a"], ReadOptions(column_map={"a": "nonsense"}), required=())


def test_epoch_seconds_ms_and_iso_forms(tmp_path: Path) -> None:
    rows = [
        "1714557600",
        "1714557600000",
        "1714557600.5",
        "2024-05-01T10:00:00Z",
        "2024-05-01T12:00:00+02:00",
        "2024-05-01T10:00:00",
        "2024-05-01 10:00:00.250",
    ]
    text = "time,lon,lat,sensor,kind\n" + "".join(f"{t},1,2,EO,vehicle\n" for t in rows)
    cols, rejects = read_all(CsvReader(), _write(tmp_path, text))
    assert rejects == []
    assert cols["time"] == [T0, T0, T0 + 500_000, T0, T0, T0, T0 + 250_000]


def test_bad_input_corpus_keeps_good_rows(tmp_path: Path) -> None:
    lines = [
        HEADER,
        _good_row(1),  # 2
        "yesterday,-99,19.5,EO,vehicle,a,track,0.9",  # 3 bad time
        "2024-05-01T10:00:00Z,NaN,19.5,EO,vehicle,a,track,0.9",  # 4 NaN lon (missing)
        "2024-05-01T10:00:00Z,-99,91.5,EO,vehicle,a,track,0.9",  # 5 lat out of range
        "2024-05-01T10:00:00Z,-99,abc,EO,vehicle,a,track,0.9",  # 6 lat not a number
        "2024-05-01T10:00:00Z,-99,19.5,LIDAR,vehicle,a,track,0.9",  # 7 unknown sensor
        "2024-05-01T10:00:00Z,-99,19.5",  # 8 missing fields
        "",  # 9 blank: skipped silently
        _good_row(2),  # 10
        "2024-05-01T10:00:00Z,-99,19.5,EO,vehicle,a,car_plate,0.9",  # 11 unknown ident_kind
        _good_row(3)[:-10],  # 12 truncated last line (too few fields)
    ]
    text = "\n".join(lines).encode()
    cols, rejects = read_all(CsvReader(), _write(tmp_path, text))
    assert cols["src_rec"] == [2, 10]
    assert cols["ident"] == ["trk-1", "trk-2"]
    by_line = {r.src_rec: r for r in rejects}
    assert sorted(by_line) == [3, 4, 5, 6, 7, 8, 11, 12]
    assert "time" in by_line[3].reason
    assert "yesterday" in by_line[3].reason
    assert "lon" in by_line[4].reason
    assert "out of range" in by_line[5].reason
    assert "'abc'" in by_line[6].reason
    assert "LIDAR" in by_line[7].reason
    assert "fields" in by_line[8].reason
    assert "car_plate" in by_line[11].reason
    assert by_line[6].raw.startswith("2024-05-01T10:00:00Z,-99,abc")


def test_undecodable_bytes_reject_only_their_line(tmp_path: Path) -> None:
    text = (HEADER + "\n" + _good_row(1) + "\n").encode()
    text += "2024-05-01T10:00:00Z,-99,19.5,EO,vehicle,Peña,track,0.9\n".encode("latin-1")
    text += (_good_row(2) + "\n").encode()
    cols, rejects = read_all(CsvReader(), _write(tmp_path, text))
    assert cols["src_rec"] == [2, 4]
    assert [r.src_rec for r in rejects] == [3]
    assert "UTF-8" in rejects[0].reason


def test_absurdly_long_line_is_rejected(tmp_path: Path) -> None:
    long_line = "2024-05-01T10:00:00Z,-99,19.5,EO,vehicle," + "x" * (MAX_LINE_BYTES + 10) + ",track,0.9"
    text = "\n".join([HEADER, _good_row(1), long_line, _good_row(2)]) + "\n"
    cols, rejects = read_all(CsvReader(), _write(tmp_path, text))
    assert cols["src_rec"] == [2, 4]
    assert [r.src_rec for r in rejects] == [3]
    assert "longer than" in rejects[0].reason


def test_bom_semicolon_tab_and_quoted_newlines(tmp_path: Path) -> None:
    semi = "\ufefftime;lon;lat;sensor;kind;note\n" + '2024-05-01T10:00:00Z;-99,5;19;EO;vehicle;"two\nlines"\n'
    semi += "2024-05-01T10:00:01Z;-98;19;EO;vehicle;plain\nbad;-98;19;EO;vehicle;x\n"
    cols, rejects = read_all(CsvReader(), _write(tmp_path, semi))
    # "-99,5" is not a number with ";" as delimiter (no decimal commas): rejected, the rest read
    assert cols["src_rec"] == [4]
    assert [r.src_rec for r in rejects] == [2, 5]
    assert cols["attrs"] == ['{"note":"plain"}']
    tab = "time\tlon\tlat\tsensor\tkind\n2024-05-01T10:00:00Z\t-99\t19\tSAR\tstructure\n"
    cols, rejects = read_all(CsvReader(), _write(tmp_path, tab, "t.tsv"))
    assert rejects == []
    assert cols["sensor"] == ["SAR"]


def test_csv_sniff() -> None:
    r = CsvReader()
    assert r.sniff(b"time,lon,lat,sensor\n", Path("a.csv")) >= 0.5
    assert r.sniff(b'{"type": "FeatureCollection"}', Path("a.json")) == 0.0
    assert r.sniff(b"", Path("a.csv")) == 0.0


def test_empty_csv_with_header_only(tmp_path: Path) -> None:
    cols, rejects = read_all(CsvReader(), _write(tmp_path, HEADER + "\n"))
    assert rejects == []
    assert cols.get("time", []) == []


def _geoparquet(tmp_path: Path, geoms: list[object], extra: dict[str, list[object]]) -> Path:
    wkb = shapely.to_wkb(np.array(geoms, dtype=object))
    table = pa.table({**extra, "geometry": pa.array(list(wkb), type=pa.binary())})
    geo = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": {"encoding": "WKB"}}}
    table = table.replace_schema_metadata({"geo": json.dumps(geo)})
    path = tmp_path / "in.parquet"
    pq.write_table(table, path, row_group_size=2)
    return path


def test_geoparquet_points_and_rejects(tmp_path: Path) -> None:
    geoms = [
        shapely.Point(-99.1, 19.4),
        shapely.LineString([(0, 0), (1, 1)]),
        shapely.Point(-98.0, 20.0, 150.0),
        shapely.Point(-97.0, 21.0),
    ]
    extra = {
        "Timestamp": pa.array([T0, T0 + 1, T0 + 2, T0 + 3], type=pa.timestamp("us", tz="UTC")),
        "sensor": ["EO", "EO", "IR", "bogus"],
        "kind": ["thermal"] * 4,
        "icao24": ["a1b2c3", None, "a1b2c4", "x"],
        "colour": ["red", "blue", "green", "grey"],
    }
    path = _geoparquet(tmp_path, geoms, extra)
    assert ParquetReader().sniff(path.read_bytes()[:4], path) > 0.5
    cols, rejects = read_all(ParquetReader(), path, ReadOptions(batch_rows=2))
    assert cols["src_rec"] == [0, 2]
    assert cols["lon"] == [-99.1, -98.0]
    assert cols["lat"] == [19.4, 20.0]
    assert np.isnan(cols["alt_m"][0])
    assert cols["alt_m"][1] == 150.0
    assert cols["time"] == [T0, T0 + 2]
    assert cols["ident_kind"] == ["icao24", "icao24"]
    assert [json.loads(a)["colour"] for a in cols["attrs"]] == ["red", "green"]
    assert [r.src_rec for r in rejects] == [1, 3]
    assert "Point" in rejects[0].reason
    assert "bogus" in rejects[1].reason


def test_plain_parquet_with_lon_lat_and_epoch(tmp_path: Path) -> None:
    path = tmp_path / "plain.parquet"
    pq.write_table(
        pa.table({"t": [1714557600, 1714557601], "x": [-99.0, 500.0], "y": [19.0, 19.0], "sensor": ["AIS", "AIS"]}),
        path,
    )
    cols, rejects = read_all(ParquetReader(), path, ReadOptions(column_map={"t": "time"}, defaults={"kind": "vessel"}))
    assert cols["time"] == [T0]
    assert cols["src_rec"] == [0]
    assert [r.src_rec for r in rejects] == [1]
    assert "out of range" in rejects[0].reason


def _wkb_parquet(tmp_path: Path, wkb: list[bytes | None], geo_type: pa.DataType) -> Path:
    n = len(wkb)
    table = pa.table(
        {
            "time": pa.array([T0 + i for i in range(n)], type=pa.timestamp("us", tz="UTC")),
            "sensor": ["EO"] * n,
            "kind": ["thermal"] * n,
            "geometry": pa.array(wkb, type=geo_type),
        }
    )
    geo = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": {"encoding": "WKB"}}}
    path = tmp_path / "wkb.parquet"
    pq.write_table(table.replace_schema_metadata({"geo": json.dumps(geo)}), path, row_group_size=4)
    return path


@pytest.mark.parametrize("geo_type", [pa.binary(), pa.large_binary()])
def test_wkb_points_decoded_in_either_byte_order_like_shapely(tmp_path: Path, geo_type: pa.DataType) -> None:
    """Points are decoded from the WKB bytes directly; every other value goes through shapely, as before."""
    p1, p2, pz = shapely.Point(-99.125, 19.5), shapely.Point(-98.0, 20.25), shapely.Point(-97.0, 21.0, 150.0)
    srid = shapely.to_wkb(shapely.set_srid(shapely.Point(-96.0, 22.0), 4326), include_srid=True)
    wkb: list[bytes | None] = [
        shapely.to_wkb(p1, byte_order=1),  # 0: little endian
        shapely.to_wkb(p2, byte_order=0),  # 1: big endian
        shapely.to_wkb(pz, byte_order=0),  # 2: with z (shapely)
        srid,  # 3: EWKB with an SRID (shapely)
        None,  # 4: missing
        b"\x07" * 21,  # 5: 21 bytes of junk
        shapely.to_wkb(shapely.LineString([(0, 0), (1, 1)])),  # 6: not a point
        shapely.to_wkb(p1, byte_order=0),  # 7
        shapely.to_wkb(shapely.Point(-95.5, 23.0), byte_order=1)[:13],  # 8: truncated
        shapely.to_wkb(p2, byte_order=1),  # 9
    ]
    cols, rejects = read_all(ParquetReader(), _wkb_parquet(tmp_path, wkb, geo_type), ReadOptions(batch_rows=3))
    assert cols["src_rec"] == [0, 1, 2, 3, 7, 9]
    assert cols["lon"] == [-99.125, -98.0, -97.0, -96.0, -99.125, -98.0]
    assert cols["lat"] == [19.5, 20.25, 21.0, 22.0, 19.5, 20.25]
    assert cols["alt_m"][2] == 150.0
    assert np.isnan([cols["alt_m"][i] for i in (0, 1, 3, 4, 5)]).all()
    assert [(r.src_rec, r.reason.split(" in column")[0]) for r in rejects] == [
        (4, "bad geometry"),
        (5, "bad geometry"),
        (6, "not a Point (geometry type id)"),
        (8, "bad geometry"),
    ]


def test_geoarrow_point_structs_and_interleaved_lists(tmp_path: Path) -> None:
    base = {
        "time": pa.array([T0, T0 + 1, T0 + 2], type=pa.timestamp("us", tz="UTC")),
        "sensor": ["EO"] * 3,
        "kind": ["thermal"] * 3,
    }
    structs = pa.array([{"x": -99.0, "y": 19.0}, None, {"x": -98.0, "y": 20.0}])
    lists = pa.array([[-99.0, 19.0], None, [-98.0, 20.0]], type=pa.list_(pa.float64(), 2))
    for enc, geom in (("point", structs), ("point", lists)):
        geo = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": {"encoding": enc}}}
        path = tmp_path / "arrow.parquet"
        table = pa.table({**base, "geometry": geom}).replace_schema_metadata({"geo": json.dumps(geo)})
        pq.write_table(table, path)
        cols, rejects = read_all(ParquetReader(), path)
        assert cols["lon"] == [-99.0, -98.0]
        assert cols["lat"] == [19.0, 20.0]
        assert [(r.src_rec, r.reason.split(" in column")[0]) for r in rejects] == [(1, "missing geometry")]


def test_parquet_enum_columns_with_nulls_defaults_and_unknowns(tmp_path: Path) -> None:
    """Enum columns are read as dictionaries; defaults fill their nulls and unknown values still reject."""
    path = tmp_path / "enum.parquet"
    table = pa.table(
        {
            "time": pa.array([T0 + i for i in range(6)], type=pa.timestamp("us", tz="UTC")),
            "lon": [-99.0] * 6,
            "lat": [19.0] * 6,
            "sensor": ["EO", None, "ir", "radar?", None, "SAR"],
            "kind": ["vehicle", "Ship", None, "vehicle", "thermal", "vessel"],
        }
    )
    pq.write_table(table, path, row_group_size=4)
    cols, rejects = read_all(ParquetReader(), path, ReadOptions(batch_rows=4, defaults={"sensor": "EO"}))
    assert cols["src_rec"] == [0, 1, 4, 5]
    assert cols["sensor"] == ["EO", "EO", "EO", "SAR"]
    assert cols["kind"] == ["vehicle", "vessel", "thermal", "vessel"]
    assert [(r.src_rec, r.reason.split(" in column")[0].split(" (")[0]) for r in rejects] == [
        (2, "missing value"),
        (3, "unknown sensor"),
    ]
    assert "'radar?'" in rejects[1].reason


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_typed_blocks_fall_back_to_text_per_column(tmp_path: Path, threads: int) -> None:
    # clean blocks parse typed; a later block with naive/epoch times, a bad or out-of-range number demotes
    # those columns to text, and rejects still quote the value as written, with its line number
    rows = [_good_row(i) for i in range(40)]
    rows[25] = "2024-05-01T10:00:25,-99.25,19.5,EO,vehicle,trk-25,track,0.9"  # naive: UTC
    rows[26] = "1714557626,-99.26,19.5,EO,vehicle,trk-26,track,0.9"  # epoch seconds
    rows[30] = "2024-05-01T10:00:30Z,-199.50,19.5,EO,vehicle,trk-30,track,0.9"
    rows[33] = "2024-05-01T10:00:33Z,-99.33,1e3,EO,vehicle,trk-33,track,0.9"
    rows[35] = "2024-05-01T10:00:35Z,-99.35,19.5,EO,vehicle,trk-35,track,high"
    p = _write(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n")
    cols, rejects = read_all(CsvReader(threads=threads), p, ReadOptions(batch_rows=8))
    assert [(r.src_rec, r.reason) for r in rejects] == [
        (32, "out of range [-180, 180] in column 'lon': '-199.50'"),
        (35, "out of range [-90, 90] in column 'lat': '1e3'"),
        (37, "not a number in column 'confidence': 'high'"),
    ]
    kept = [i for i in range(40) if i not in (30, 33, 35)]
    assert cols["time"] == [T0 + i * 1_000_000 for i in kept]
    assert cols["src_rec"] == [i + 2 for i in kept]
    assert cols["lon"] == [float(f"-99.{i:02d}") for i in kept]


def test_block_cuts_respect_quotes_even_with_a_stray_quote() -> None:
    import io

    from atalaya.ingest.tabular import _blocks

    rng = np.random.default_rng(7)
    pieces = [b"a", b",", b"\n", b'"', b"xyz", b"\r\n"]
    for _ in range(300):
        data = b"".join(pieces[k] for k in rng.integers(0, len(pieces), int(rng.integers(0, 200))))
        cut = int(rng.integers(0, len(data) + 1))
        blocks = list(_blocks(io.BytesIO(data[cut:]), 2, 0, int(rng.integers(10, 40)), data[:cut]))
        # (blocks of 10+ bytes: 64 of them exceed the input, so no giving up on unbalanced quotes)
        # only whitespace-only stretches are left out; each block sits at its offset and line
        assert b"".join(b.data for b in blocks).split() == data.split()
        for b in blocks[:-1]:
            assert bytes(b.data).endswith(b"\n") and bytes(b.data).count(b'"') % 2 == 0
        for b in blocks:
            assert data[b.offset : b.offset + len(b.data)] == b.data
            assert b.first_line == 2 + data.count(b"\n", 0, b.offset) and b.n_newlines == bytes(b.data).count(b"\n")
    # one stray quote near the top: no line end is outside quotes, the rest of the input is one block
    text = b'1,"x\n' + b"2,abc\n" * 50_000
    blocks = list(_blocks(io.BytesIO(text), 2, 0, 1 << 16, b""))
    assert len(blocks) == 1 and blocks[0].data == text and blocks[0].n_newlines == 50_001


def test_long_line_window_check_agrees_with_measuring_every_line() -> None:
    from atalaya.ingest.tabular import _line_bounds, _may_have_long_line

    rng = np.random.default_rng(11)
    for _ in range(40):
        sizes = rng.integers(0, 3, 6) * (MAX_LINE_BYTES // 2) + rng.integers(-2, 3, 6)
        data = b"".join(b"x" * int(max(0, k)) + b"\n" for k in sizes)
        if rng.integers(0, 2):
            data = data[:-1]  # last line without its line end
        exact = bool((np.diff(_line_bounds(data)) > MAX_LINE_BYTES).any())
        assert _may_have_long_line(data) or not exact
        if not exact and len(data) > MAX_LINE_BYTES and max(sizes) < MAX_LINE_BYTES // 2:
            assert not _may_have_long_line(data)


def test_quoted_field_longer_than_a_parse_step_reparses_without_repeating_rejects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import atalaya.ingest.tabular as tabular

    monkeypatch.setattr(tabular, "_PARSE_BLOCK", 1 << 10)  # parse steps of 1 MiB (the floor)
    filler = [_good_row(i % 60) for i in range(20_000)]
    bad = _good_row(1) + ",extra"  # one field too many
    quoted = '2024-05-01T10:00:01Z,-99.01,19.5,EO,vehicle,"' + "x\n" * 3_000_000 + '",track,0.9'
    text = "\n".join([HEADER, *filler, bad, quoted, *filler]) + "\n"
    cols, rejects = read_all(CsvReader(threads=1), _write(tmp_path, text), ReadOptions(batch_rows=1_000_000))
    assert len(cols["time"]) == 2 * len(filler) + 1
    assert [(r.src_rec, r.reason) for r in rejects] == [(20_002, "expected 8 fields, got 9")]
    assert cols["src_rec"][len(filler)] == 20_003


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_read_buffers_are_reused_without_disturbing_earlier_blocks(
    tmp_path: Path, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import atalaya.ingest.tabular as tabular

    fresh: list[int] = []
    take = tabular._BufferPool.take

    def counting_take(self: tabular._BufferPool, size: int) -> bytearray:
        free = len(self._free)
        buf = take(self, size)
        if len(self._free) == free:
            fresh.append(len(buf))
        return buf

    monkeypatch.setattr(tabular._BufferPool, "take", counting_take)
    n = 30_000
    rows = [
        f"2024-05-01T10:{i // 600 % 60:02d}:{i // 10 % 60:02d}Z,-99.{i % 100:02d},19.5,EO,vehicle,t{i},track,0.5"
        for i in range(n)
    ]
    cols, rejects = read_all(
        CsvReader(threads=threads), _write(tmp_path, "\n".join([HEADER, *rows]) + "\n"), ReadOptions(batch_rows=500)
    )
    assert not rejects
    assert cols["ident"] == [f"t{i}" for i in range(n)]
    assert cols["src_rec"] == list(range(2, n + 2))
    assert cols["lon"] == [float(f"-99.{i % 100:02d}") for i in range(n)]
    assert len(fresh) <= threads + 3  # ~40 blocks from a handful of buffers


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_tap_gets_every_byte_of_the_file_once_in_order(tmp_path: Path, threads: int) -> None:
    """The ingest hashes a CSV from the reader's tap: BOM, CRLF, blank stretches, a field over several lines, a
    line longer than allowed and no final line end must all reach it."""
    import hashlib

    rows = [_good_row(i % 60) for i in range(400)]
    rows[7] = rows[7].replace("trk-7", '"trk\n-7"')  # a quoted field over two lines
    text = "\ufeff" + HEADER + "\r\n" + "\r\n".join(rows[:200]) + "\r\n" + "\n" * 5000
    text += "x" * (MAX_LINE_BYTES + 10) + "\n" + "\n".join(rows[200:])
    p = _write(tmp_path, text)
    got = hashlib.sha256()
    n = 0

    def tap(data: bytes | bytearray | memoryview) -> None:
        nonlocal n
        got.update(data)
        n += len(data)

    reader = CsvReader(threads=threads)
    assert reader.taps(p)
    batches = list(reader.read(p, ReadOptions(batch_rows=50), tap=tap))
    assert sum(len(b) for b in batches) == 400
    assert [r.reason[:11] for b in batches for r in b.rejects] == ["line longer"]
    assert n == p.stat().st_size
    assert got.hexdigest() == hashlib.sha256(p.read_bytes()).hexdigest()


def test_a_compressed_file_is_not_tapped(tmp_path: Path) -> None:
    import gzip

    p = tmp_path / "in.csv.gz"
    p.write_bytes(gzip.compress(("\n".join([HEADER, _good_row(1)]) + "\n").encode()))
    reader = CsvReader()
    assert not reader.taps(p)
    with pytest.raises(IngestError, match="cannot be tapped"):
        list(reader.read(p, ReadOptions(), tap=lambda b: None))
    assert len(read_all(reader, p)[0]["time"]) == 1


def test_stopping_early_ends_the_reading_thread(tmp_path: Path) -> None:
    import threading

    p = _write(tmp_path, "\n".join([HEADER, *(_good_row(i % 60) for i in range(5000))]) + "\n")
    batches = CsvReader(threads=2).read(p, ReadOptions(batch_rows=100))
    first = next(batches)
    assert len(first) > 0
    batches.close()
    assert not [t for t in threading.enumerate() if t.name == "atalaya-csv-read"]
