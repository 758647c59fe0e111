"""The Flightradar24 CSV export reader on rows the public sample does not have: bad positions, short rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from atalaya.ingest.base import ReadOptions, read_all
from atalaya.ingest.fr24 import Fr24CsvReader

HEADER = "Timestamp,UTC,Callsign,Position,Altitude,Speed,Direction\n"


def test_bad_rows_are_quarantined_with_their_line_and_reason(tmp_path: Path) -> None:
    p = tmp_path / "f.csv"
    p.write_text(
        HEADER
        + '1704180458,2024-01-02T07:27:38Z,JAL516,"42.770142,141.691422",550,144,172\n'  # good
        + '1704180470,2024-01-02T07:27:50Z,JAL516,"42.761078",1100,140,171\n'  # one number in Position
        + "1704180480,2024-01-02T07:28:00Z,JAL516\n"  # short row
        + '1704180491,,JAL516,"42.744919,141.69635",1525,181,171\n'  # no UTC: the epoch is used
        + '1704180502,2024-01-02T07:28:22Z,JAL516,"42.734814,141.698273",,,\n'  # no altitude, speed, course
    )
    cols, rejects = read_all(Fr24CsvReader(), p)
    assert cols["src_rec"] == [2, 5, 6]
    assert cols["time"] == [1704180458_000_000, 1704180491_000_000, 1704180502_000_000]
    assert np.isnan(cols["alt_m"][2]) and np.isnan(cols["speed_mps"][2]) and np.isnan(cols["course_deg"][2])
    r = {x.src_rec: x.reason for x in rejects}
    assert sorted(r) == [3, 4]
    assert r[3] == "Position '42.761078' is not \"latitude,longitude\"" and "JAL516" in rejects[0].raw
    assert r[4] == "expected 7 fields, got 3"


def test_set_overrides_the_sensor(tmp_path: Path) -> None:
    p = tmp_path / "f.csv"
    p.write_text(HEADER + '1704180458,2024-01-02T07:27:38Z,JAL516,"42.770142,141.691422",550,144,172\n')
    cols, _ = read_all(Fr24CsvReader(), p, ReadOptions(defaults={"sensor": "RADAR"}))
    assert cols["sensor"] == ["RADAR"] and cols["kind"] == ["aircraft"]
