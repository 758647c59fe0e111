"""``atalaya sovereignty``: overflight accounting (and, from other modules, plan checks and reports)."""

from __future__ import annotations

from typing import Any

import click
import numpy as np
import pyarrow as pa

from atalaya.cli.context import emit, json_option, workspace_from
from atalaya.core.errors import StoreError

TRACK_SQL = """
SELECT coalesce(sortie_id, ident) AS track_id, epoch_us(time) AS time_us, lon, lat, alt_m
FROM observations
WHERE (ident_kind = 'sortie' AND coalesce(sortie_id, ident) IS NOT NULL)
   OR (ident_kind IN ('icao24', 'mmsi') AND ident IS NOT NULL)
ORDER BY track_id, time_us
"""
"""Fixes of every sortie track and every identified aircraft/vessel track, sorted for accounting."""


def track_sql(track: str | None) -> tuple[str, list[Any]]:
    """The lake query for all tracks, or one track id."""
    if track is None:
        return TRACK_SQL, []
    sql = f"SELECT * FROM ({TRACK_SQL.replace('ORDER BY track_id, time_us', '')}) WHERE track_id = ? ORDER BY time_us"
    return sql, [track]


def load_track_fixes(lake_dir: Any, track: str | None = None) -> pa.Table:
    """Read the track fixes from the workspace lake (``track_id``, ``time_us``, ``lon``, ``lat``, ``alt_m``)."""
    from atalaya.store.lake import Lake

    sql, params = track_sql(track)
    try:
        return Lake(lake_dir).query(sql, params)
    except StoreError:
        raise
    except Exception as e:  # any engine error becomes a StoreError carrying the SQL
        raise StoreError(
            f"could not read tracks from the lake: {e}\n  sql: {sql.strip()}",
            hint="run `atalaya ingest` first; the lake needs observations with ident_kind sortie/icao24/mmsi",
        ) from e


def _human(data: dict[str, Any]) -> str:
    rows = data["summary"]
    if not rows:
        return "no sortie or identified tracks in the lake"
    head = f"{'track':<18} {'territory':<10} {'time':>10} {'km':>10} {'in':>4} {'out':>4} {'depth km':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        depth = "" if r["max_depth_km"] is None else f"{r['max_depth_km']:.1f}"
        m, sec = divmod(round(r["time_s"]), 60)
        h, m = divmod(m, 60)
        lines.append(
            f"{r['track_id'][:18]:<18} {r['territory_id']:<10} {h:>4d}:{m:02d}:{sec:02d} "
            f"{r['distance_km']:>10.1f} {r['entries']:>4d} {r['exits']:>4d} {depth:>9}"
        )
    lines.append(f"{len(data['tracks'])} track(s), {len(data['events'])} boundary event(s)")
    return "\n".join(lines)


@click.group()
def sovereignty() -> None:
    """Overflight accounting, compliance and reports."""


@sovereignty.command("account")
@json_option
@click.option("--track", "track", metavar="ID", help="Only this track (sortie id, ICAO24 or MMSI).")
@click.option(
    "--level", type=click.Choice(["country", "state"]), default="country", show_default=True, help="Territory level."
)
@click.pass_context
def account_cmd(ctx: click.Context, as_json: bool, track: str | None, level: str) -> None:
    """Time, distance, entries/exits and depth of every track in each territory."""
    from atalaya.geo.territories import load_territories
    from atalaya.sovereignty.accounting import account_tracks

    ws = workspace_from(ctx)
    fixes = load_track_fixes(ws.lake_dir, track)
    acc = account_tracks(
        track_id=np.asarray(fixes.column("track_id").to_pylist(), dtype=object),
        time_us=fixes.column("time_us").to_numpy(),
        lon=fixes.column("lon").to_numpy(),
        lat=fixes.column("lat").to_numpy(),
        territories=load_territories(),
        levels=(level,),
    )
    data = {
        "level": level,
        "summary": acc.summary.to_pylist(),
        "events": acc.events.to_pylist(),
        "tracks": acc.tracks.to_pylist(),
    }
    emit(as_json, data, _human)


def _register_compliance_commands() -> None:
    """The compliance commands live in their own module; they are part of this group."""
    from atalaya.cli.cmd_compliance import check_cmd, check_plan_cmd, report_cmd

    for cmd in (check_cmd, check_plan_cmd, report_cmd):
        sovereignty.add_command(cmd)


_register_compliance_commands()
