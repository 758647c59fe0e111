"""``atalaya compact``: rewrite a fragmented lake's partitions into one file each."""

from __future__ import annotations

import click

from atalaya.cli.context import emit, json_option, workspace_from
from atalaya.store.lake import Lake


@click.command("compact")
@click.option("--min-files", default=2, show_default=True, help="Compact partitions holding at least this many files.")
@click.option("--wait", type=click.FloatRange(min=0), default=None, metavar="SECONDS", help="Wait for the writer lock.")
@json_option
@click.pass_context
def compact_cmd(ctx: click.Context, min_files: int, wait: float | None, as_json: bool) -> None:
    """Rewrite each partition's small files into one, atomically, under the lake's writer lock."""
    ws = workspace_from(ctx)
    out = Lake(ws.lake_dir).compact(min_files=min_files, wait=ws.lock_wait if wait is None else wait)
    emit(
        as_json,
        out,
        lambda d: (
            f"compacted {d['partitions']} partitions: {d['files_before']} files into {d['files_after']} "
            f"({d['rows']:,} rows)"
        ),
    )
