"""``atalaya evaluate``: score the workspace's analytics against a scenario's ground truth."""

from __future__ import annotations

from pathlib import Path

import click

from atalaya.cli.context import emit, json_option, workspace_from
from atalaya.evaluate.scorecard import EVALUATORS, render_scorecard, scorecard
from atalaya.store.knowledge import KnowledgeStore


@click.command("evaluate")
@click.argument("truth_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--only", multiple=True, type=click.Choice(sorted(EVALUATORS)), help="Only these analytics.")
@json_option
@click.pass_context
def evaluate_cmd(ctx: click.Context, truth_dir: Path, only: tuple[str, ...], as_json: bool) -> None:
    """Print the scorecard of every analytic against GROUND_TRUTH_DIR (a scenario's truth/ folder)."""
    ws = workspace_from(ctx)
    store = KnowledgeStore.open(ws.db_url)
    try:
        card = scorecard(ws, store, truth_dir, only=list(only) or None)
    finally:
        store.close()
    emit(as_json, card, render_scorecard)
