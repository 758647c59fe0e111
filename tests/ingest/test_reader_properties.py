"""Property tests (Hypothesis) for what the ingest promises about every record of every reader.

For generated files mixing good records, bad ones (unparsable, out of range, malformed) and repeats:
every record read is accepted, quarantined or a duplicate (``accepted + quarantined + duplicates = records``),
and ingesting the same file again changes nothing.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from functools import reduce
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atalaya.core.workspace import init_workspace
from atalaya.ingest.pipeline import ingest_paths

T0 = 1_714_564_800  # 2024-05-01T12:00:00Z

_lon = st.one_of(st.floats(-179.0, 179.0), st.sampled_from([0.0, 181.5, -720.0]))
_lat = st.one_of(st.floats(-89.0, 89.0), st.sampled_from([95.0, -91.0]))
_t = st.one_of(st.integers(T0, T0 + 86_400), st.sampled_from([0, 10**12]))
_junk = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r"), min_size=1, max_size=40).filter(
    str.strip
)  # a blank line is skipped non-data: counted in ``records``, neither accepted nor quarantined
_SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _csv(recs: list[tuple[int, float, float] | str]) -> bytes:
    lines = ["time,lon,lat,sensor,kind"]
    for r in recs:
        # no quotes in junk: ``records`` counts lines, and a stray quote joins lines into one CSV record (known gap)
        lines.append(r.replace('"', "'") if isinstance(r, str) else f"{r[0]},{r[1]!r},{r[2]!r},EO,vehicle")
    return ("\n".join(lines) + "\n").encode()


def _sbs(recs: list[tuple[int, float, float] | str]) -> bytes:
    out = []
    for r in recs:
        if isinstance(r, str):
            out.append(r.replace(",", ";"))
            continue
        t, lon, lat = r
        import datetime as dt

        d = dt.datetime.fromtimestamp(min(t, 4_000_000_000), dt.UTC)
        day, tod = d.strftime("%Y/%m/%d"), d.strftime("%H:%M:%S.000")
        out.append(f"MSG,3,1,1,ABC123,1,{day},{tod},{day},{tod},,3000,,,{lat!r},{lon!r},,,0,0,0,0")
    return ("\n".join(out) + "\n").encode()


def _opensky(recs: list[tuple[int, float, float] | str]) -> bytes:
    states: list[object] = []
    for r in recs:
        if isinstance(r, str):
            states.append(r)
        else:
            t, lon, lat = r
            states.append(
                ["abc123", "CS1", "MX", t, t, lon, lat, 1000.0, False, 100.0, 90.0, 0.0, None, 1010.0, "1200"]
            )
            states[-1].extend([False, 0])  # type: ignore[union-attr]
    return json.dumps({"time": T0, "states": states}).encode()


def _geojson(recs: list[tuple[int, float, float] | str]) -> bytes:
    lines = []
    for r in recs:
        if isinstance(r, str):
            lines.append("{" + r.replace("\n", " "))
        else:
            t, lon, lat = r
            props = {"time": t, "sensor": "EO", "kind": "vehicle"}
            lines.append(json.dumps({"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
                                     "properties": props}))  # fmt: skip
    return ("\n".join(lines) + "\n").encode()


def _nmea(recs: list[tuple[int, float, float] | str]) -> bytes:
    good = "!AIVDM,1,1,,A,15M67FC000G?ufbE`FepT@3n00Sa,0*5B"
    out = []
    for r in recs:
        if isinstance(r, str):
            out.append("!AIVDM," + r.replace("\n", " "))
        else:
            body = f"c:{r[0]}"
            cs = reduce(lambda a, b: a ^ b, body.encode(), 0)
            out.append(f"\\{body}*{cs:02X}\\{good}")
    return ("\n".join(out) + "\n").encode()


WRITERS: dict[str, tuple[str, Callable[[list[tuple[int, float, float] | str]], bytes]]] = {
    "csv": ("a.csv", _csv),
    "sbs": ("a.sbs", _sbs),
    "opensky-json": ("a.json", _opensky),
    "geojson": ("a.geojsonl", _geojson),
    "nmea": ("a.nmea", _nmea),
}

_records = st.lists(st.one_of(st.tuples(_t, _lon, _lat), _junk), min_size=1, max_size=30)


def _check(fmt: str, recs: list[tuple[int, float, float] | str], repeat: int) -> None:
    name, write = WRITERS[fmt]
    recs = recs + recs[:repeat]  # repeats: duplicates within the file
    with tempfile.TemporaryDirectory() as d:
        ws = init_workspace(Path(d) / "ws", party="USA", name="Collecting party")
        p = Path(d) / name
        p.write_bytes(write(recs))
        first = ingest_paths(ws, [p], fmt=fmt).units[0]
        assert first.status == "ingested", first.error
        assert first.accepted + first.quarantined + first.duplicates == first.records, first
        again = ingest_paths(ws, [p], fmt=fmt).units[0]
        assert again.status == "skipped" and again.accepted == 0


@_SETTINGS
@given(recs=_records, repeat=st.integers(0, 5))
def test_csv_every_record_is_accounted_for(recs: list[tuple[int, float, float] | str], repeat: int) -> None:
    _check("csv", recs, repeat)


@_SETTINGS
@given(recs=_records, repeat=st.integers(0, 5))
def test_opensky_json_every_record_is_accounted_for(recs: list[tuple[int, float, float] | str], repeat: int) -> None:
    _check("opensky-json", recs, repeat)


@_SETTINGS
@given(recs=_records, repeat=st.integers(0, 5))
def test_geojson_every_record_is_accounted_for(recs: list[tuple[int, float, float] | str], repeat: int) -> None:
    _check("geojson", recs, repeat)


@_SETTINGS
@given(recs=_records, repeat=st.integers(0, 5))
def test_sbs_every_record_is_accounted_for(recs: list[tuple[int, float, float] | str], repeat: int) -> None:
    _check("sbs", recs, repeat)


@_SETTINGS
@given(recs=_records, repeat=st.integers(0, 5))
def test_nmea_every_record_is_accounted_for(recs: list[tuple[int, float, float] | str], repeat: int) -> None:
    _check("nmea", recs, repeat)
