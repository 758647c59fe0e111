"""``atalaya analyze``: run the fusion analytics over the workspace."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import Any

import click

from atalaya.cli.context import emit, json_option, show_progress, workspace_from
from atalaya.core.workspace import Workspace
from atalaya.store.knowledge import KnowledgeStore

ANALYTICS: dict[str, str] = {
    "tracks": "atalaya.fusion.tracks:run_tracks",
    "sites": "atalaya.fusion.sites:run_sites",
    "maritime": "atalaya.fusion.maritime:run_maritime",
    "corridors": "atalaya.fusion.corridors:run_corridors",
}
"""Analytic name → ``module:function(ws, store, *, progress) -> dict``, in the order ``all`` runs them."""


def _load(target: str) -> Callable[..., dict[str, Any]]:
    module, _, fn = target.partition(":")
    f: Callable[..., dict[str, Any]] = getattr(importlib.import_module(module), fn)
    return f


def run_analytics(ws: Workspace, store: KnowledgeStore, names: list[str], *, progress: bool) -> dict[str, Any]:
    """Run analytics in order; each result carries its wall time."""
    out: dict[str, Any] = {}
    for name in names:
        t0 = time.perf_counter()
        if progress:
            click.echo(f"analyze {name}…", err=True)
        res = _load(ANALYTICS[name])(ws, store, progress=progress)
        out[name] = {**res, "seconds": round(time.perf_counter() - t0, 2)}
    return out


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
