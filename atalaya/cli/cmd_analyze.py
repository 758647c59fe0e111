"""``atalaya analyze``: run the fusion analytics over the workspace."""

from __future__ import annotations

from typing import Any

import click

from atalaya.analytics import ANALYTICS
from atalaya.analytics import run_analytics as _run
from atalaya.cli.context import emit, json_option, show_progress, workspace_from
from atalaya.core.workspace import Workspace
from atalaya.store.knowledge import KnowledgeStore


def run_analytics(ws: Workspace, store: KnowledgeStore, names: list[str], *, progress: bool) -> dict[str, Any]:
    """:func:`atalaya.analytics.run_analytics`, saying each step on stderr when showing progress."""

    def say(name: str, _i: int) -> None:
        if progress:
            click.echo(f"analyze {name}…", err=True)

    return _run(ws, store, names, progress=progress, on_step=say)


@click.command("analyze")
@click.argument("what", type=click.Choice([*ANALYTICS, "all"]), default="all")
@json_option
@click.pass_context
def analyze_cmd(ctx: click.Context, what: str, as_json: bool) -> None:
    """Run an analytic (tracks, sites, maritime, corridors) or all of them, and store the results."""
    ws = workspace_from(ctx)
    names = list(ANALYTICS) if what == "all" else [what]
    store = KnowledgeStore.open(ws.db_url)
    try:
        res = run_analytics(ws, store, names, progress=show_progress(ctx) and not as_json)
    finally:
        store.close()
    emit(as_json, res, _human)


def _human(d: dict[str, Any]) -> str:
    lines = []
    for name, r in d.items():
        figures = ", ".join(f"{k}={v}" for k, v in r.items() if isinstance(v, int | float | str) and k != "seconds")
        lines.append(f"{name:<10} {r.get('seconds', 0):>7.2f} s  {figures}")
    return "\n".join(lines)
