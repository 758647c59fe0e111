"""``atalaya sovereignty``: overflight accounting (and, from other modules, plan checks and reports)."""

from __future__ import annotations

from typing import Any

import click

from atalaya.cli.cmd_compliance import _choice, _territories_opt, _warn_unlabelled
from atalaya.cli.context import emit, json_option, workspace_from
from atalaya.core.errors import ValidationError
from atalaya.store.knowledge import KnowledgeStore


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
    gappy = [t for t in data["tracks"] if t.get("gaps")]
    if gappy:
        unobs = sum(t["unobserved_s"] for t in gappy)
        lines.append(
            f"{len(gappy)} track(s) with gaps longer than their limit: {unobs / 3600:.1f} h unobserved, "
            "assigned to no territory"
        )
    log = data.get("log") or {}
    if data.get("sorties"):
        lines.append(
            f"{data['sorties']} sortie(s): {log.get('appended', 0)} sortie-over-territory record(s) appended to the "
            f"transparency log, {log.get('unchanged', 0)} already there"
        )
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
@_territories_opt
@click.pass_context
def account_cmd(
    ctx: click.Context, as_json: bool, track: str | None, level: str, territories_path: Any, territory_set: str | None
) -> None:
    """Time, distance, entries/exits and depth of every track in each territory.

    A silence longer than the platform kind's limit (aircraft and sorties 300 s, vessels 1800 s) is unobserved: its
    time goes to no territory and nothing is entered or left across it.

    The sortie-over-territory records of the sorties among the tracks are appended to the transparency log
    (once each) and a checkpoint is signed.
    """
    from atalaya.sovereignty import service

    ws = workspace_from(ctx)
    store = KnowledgeStore.open(ws.db_url)
    try:
        res = service.account(ws, store, track=track, level=level, choice=_choice(ctx, territories_path, territory_set))
    finally:
        store.close()
    if track is not None and res.accounting.tracks.num_rows == 0:
        raise ValidationError(f"no track {track!r} in the lake", hint="give a sortie id, an ICAO24 or an MMSI")
    _warn_unlabelled(res.unlabelled_points)
    emit(as_json, res.to_dict(), _human)


def _register_compliance_commands() -> None:
    """The compliance commands live in their own module; they are part of this group."""
    from atalaya.cli.cmd_compliance import check_cmd, check_plan_cmd, report_cmd

    for cmd in (check_cmd, check_plan_cmd, report_cmd):
        sovereignty.add_command(cmd)


_register_compliance_commands()
