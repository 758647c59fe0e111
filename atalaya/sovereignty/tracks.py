"""The lake queries of sovereignty: where the flown tracks of sorties (and of identified aircraft) come from.

A sortie's flown track is every observation that names it: rows reported *as*
the sortie (``ident_kind = 'sortie'``, e.g. a CoT or GPX track keyed by the
sortie id) and rows of any other identity recorded *during* it (the
``sortie_id`` column, e.g. the ADS-B fixes of the airframe flying the sortie).
Both live here, once, for the CLI, the API, the service and the scorecard.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from atalaya.core.errors import StoreError
from atalaya.sovereignty.compliance import TrackArrays

SORTIE_KEY = (
    "coalesce(CAST(sortie_id AS VARCHAR), CASE WHEN CAST(ident_kind AS VARCHAR) = 'sortie' "
    "THEN CAST(ident AS VARCHAR) END)"
)
"""The sortie a lake row belongs to: its ``sortie_id``, or its ident when it is reported as the sortie."""

_ROWS = f"""
WITH rows AS (
  SELECT {SORTIE_KEY} AS sortie_key, CAST(ident_kind AS VARCHAR) = 'sortie' AS own,
         CASE WHEN CAST(ident_kind AS VARCHAR) IN ('icao24', 'mmsi') THEN CAST(ident AS VARCHAR) END AS other_id,
         epoch_us(time) AS time_us, lon, lat, CAST(alt_m AS DOUBLE) AS alt_m
  FROM observations
  WHERE sortie_id IS NOT NULL OR CAST(ident_kind AS VARCHAR) IN ('sortie', 'icao24', 'mmsi')
), reported AS (SELECT DISTINCT sortie_key FROM rows WHERE own)
"""
# A sortie reported as itself (its own GPX/CoT track) is that track; the fixes of another identity recorded
# during it (e.g. the airframe's ADS-B) make its track only when it has no track of its own, so two samplings of
# one flight are never interleaved.

SORTIE_TRACKS_SQL = f"""{_ROWS}
SELECT sortie_key AS sortie_id, time_us, lon, lat, alt_m FROM rows
WHERE sortie_key IS NOT NULL AND (own OR sortie_key NOT IN (SELECT sortie_key FROM reported))
"""
"""Fixes of every sortie's flown track: its own reports, else the fixes recorded during it (``sortie_id``)."""

IDENTIFIED_TRACKS_SQL = f"""{_ROWS}
SELECT * FROM (
  SELECT CASE WHEN sortie_key IS NOT NULL AND (own OR sortie_key NOT IN (SELECT sortie_key FROM reported))
              THEN sortie_key ELSE other_id END AS track_id,
         sortie_key IS NOT NULL AND (own OR sortie_key NOT IN (SELECT sortie_key FROM reported)) AS is_sortie,
         time_us, lon, lat, alt_m
  FROM rows
) WHERE track_id IS NOT NULL
"""
"""Fixes of every identified track: sorties (as for :data:`SORTIE_TRACKS_SQL`), aircraft (ICAO24) and vessels
(MMSI)."""


def _query(lake: Any, sql: str, params: list[Any]) -> pa.Table:
    try:
        table: pa.Table = lake.query(sql, params)
        return table
    except StoreError:
        raise
    except Exception as e:  # any engine error becomes a StoreError carrying the SQL
        raise StoreError(
            f"could not read tracks from the lake: {e}\n  sql: {' '.join(sql.split())}",
            hint="run `atalaya ingest` first; sortie tracks are rows with ident_kind 'sortie' or a sortie_id",
        ) from e


def sortie_tracks(lake: Any, sortie_ids: Sequence[str] | None = None) -> TrackArrays:
    """Flown tracks of the sorties (all, or those named), sorted by sortie then time."""
    sql = SORTIE_TRACKS_SQL
    params: list[Any] = []
    if sortie_ids is not None:
        sql += " AND sortie_id IN (SELECT UNNEST(?))"
        params.append([str(s) for s in sortie_ids])
    return TrackArrays.from_arrow(_query(lake, sql + " ORDER BY sortie_id, time_us", params))


def identified_tracks(lake: Any, track: str | None = None) -> pa.Table:
    """Fixes of every identified track, or of one (``track_id``, ``time_us``, ``lon``, ``lat``, ``alt_m``,
    ``is_sortie``)."""
    sql = IDENTIFIED_TRACKS_SQL
    params: list[Any] = []
    if track is not None:
        sql += " AND track_id = ?"
        params.append(track)
    return _query(lake, sql + " ORDER BY track_id, time_us", params)
