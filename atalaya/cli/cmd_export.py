"""``atalaya export``: sites, tracks and corridors as GeoJSON (QGIS), KML (Google Earth) or CoT (ATAK)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from atalaya.cli.context import emit, json_option, workspace_from
from atalaya.share.exports import COT_TRACK_MODES, FORMATS, KINDS, export
from atalaya.store.knowledge import KnowledgeStore

_EXT = {"geojson": "geojson", "kml": "kml", "cot": "cot"}


@click.command("export")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="geojson", show_default=True)
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="Output file.")
@click.option("--for", "recipient", metavar="PARTY", help="Export for another party: egress policy applied, logged.")
@click.option(
    "--cot-tracks",
    type=click.Choice(COT_TRACK_MODES),
    default="points",
    show_default=True,
    help="CoT tracks as position updates (one event per point) or as one drawn route (b-m-r).",
)
@json_option
@click.pass_context
def export_cmd(
    ctx: click.Context, kind: str, fmt: str, out: Path | None, recipient: str | None, cot_tracks: str, as_json: bool
) -> None:
    """Export KIND (sites, tracks, corridors) for QGIS (GeoJSON), Google Earth (KML) or ATAK (CoT)."""
    ws = workspace_from(ctx)
    suffix = f"-{recipient.upper()}" if recipient else ""
    path = out or ws.exports_dir / f"{kind}{suffix}.{_EXT[fmt]}"
    store = KnowledgeStore.open(ws.db_url)
    try:
        res = export(ws, store, kind=kind, fmt=fmt, out=path, recipient=recipient, cot_tracks=cot_tracks)
    finally:
        store.close()

    def human(d: dict[str, Any]) -> str:
        out = f"wrote {d['objects']} {d['kind']} to {d['path']}"
        if recipient:
            out += f" for {recipient.upper()}: {d['objects']} released, {d['withheld']} withheld"
            if d["log_index"] is not None:
                out += f"; release recorded in the transparency log at index {d['log_index']}"
            out += "".join(f"\n  withheld: {r}" for r in d["reasons"])
        return out

    emit(as_json, res.to_dict(), human)
    if recipient and res.objects == 0 and res.withheld:
        ctx.exit(1)  # nothing could be released: the file is empty and the reasons are above
