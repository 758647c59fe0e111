"""Shared plumbing for CLI commands: workspace lookup, ``--json`` output, errors.

Command modules (``atalaya/cli/cmd_*.py``) use :func:`workspace_from` to open the
workspace named on the command line and :func:`emit` to print either JSON or a
human summary.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

from atalaya.core.workspace import Workspace


@dataclass(kw_only=True)
class CliState:
    """Global options given before the command."""

    workspace: Path | None = None
    """``--workspace``: workspace directory."""
    db: str | None = None
    """``--db``: knowledge store URL override."""
    quiet: bool = False
    """``--quiet``: no progress bars."""


def state(ctx: click.Context) -> CliState:
    """The :class:`CliState` of the root command."""
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):
        obj = CliState()
        ctx.find_root().obj = obj
    return obj


def workspace_from(ctx: click.Context) -> Workspace:
    """Open the workspace selected by ``--workspace``/``$ATALAYA_WORKSPACE``/cwd."""
    st = state(ctx)
    return Workspace.find(st.workspace, db_override=st.db)


def show_progress(ctx: click.Context) -> bool:
    """Whether to draw progress bars (not with ``--quiet``, ``--json`` or when stderr is not a terminal)."""
    st = state(ctx)
    return not st.quiet and sys.stderr.isatty()


def _default(o: Any) -> Any:
    if isinstance(o, datetime | date):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, bytes):
        return o.hex()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def to_json(data: Any) -> str:
    """JSON text for ``--json`` output (stable key order, ISO times)."""
    return json.dumps(data, default=_default, indent=2, sort_keys=True, ensure_ascii=False)


def emit(as_json: bool, data: Any, human: Callable[[Any], str]) -> None:
    """Print ``data`` as JSON when ``as_json`` else the human rendering."""
    if as_json:
        click.echo(to_json(data))
    else:
        click.echo(human(data))


json_option = click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
