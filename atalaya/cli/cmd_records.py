"""``atalaya records``: load reference records (parties, platforms, sortie manifests)."""

from __future__ import annotations

from pathlib import Path

import click

from atalaya.cli.context import emit, json_option, workspace_from
from atalaya.core.markings import Marking
from atalaya.ingest.records import load_records
from atalaya.store.knowledge import KnowledgeStore


@click.group("records")
def records() -> None:
    """Reference records: parties, platforms, sortie manifests."""


@records.command("import")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--marking", default=None, help="Marking for the records (default TLP:AMBER, originator this party).")
@json_option
@click.pass_context
def import_cmd(ctx: click.Context, directory: Path, marking: str | None, as_json: bool) -> None:
    """Upsert parties.json, platforms.json and sorties.json from DIRECTORY (e.g. a scenario's records/)."""
    ws = workspace_from(ctx)
    mk = Marking.from_text(marking) if marking else Marking.from_text(f"TLP:AMBER;ORIG:{ws.party}")
    store = KnowledgeStore.open(ws.db_url)
    try:
        summary = load_records(store, directory, marking=mk)
    finally:
        store.close()
    emit(
        as_json,
        summary.to_dict(),
        lambda d: f"loaded {d['parties']} parties, {d['platforms']} platforms, {d['sorties']} sorties",
    )
