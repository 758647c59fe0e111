"""The ``atalaya`` command. Subcommands live in ``atalaya/cli/cmd_*.py`` and load lazily."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import click

from atalaya import __version__
from atalaya.cli.context import CliState
from atalaya.core.errors import AtalayaError

COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("atalaya.cli.cmd_core:init_cmd", "Create a workspace: config, identity, signing key, stores."),
    "ingest": ("atalaya.cli.cmd_core:ingest_cmd", "Load feed files into the observation lake."),
    "status": ("atalaya.cli.cmd_core:status_cmd", "Show what the workspace holds."),
    "compact": ("atalaya.cli.cmd_lake:compact_cmd", "Rewrite a fragmented lake's small files into one per partition."),
    "quarantine": ("atalaya.cli.cmd_core:quarantine_cmd", "List quarantined records and their reasons."),
    "analyze": (
        "atalaya.cli.cmd_analyze:analyze_cmd",
        "Run the fusion analytics (tracks, sites, maritime, corridors).",
    ),
    "evaluate": ("atalaya.cli.cmd_evaluate:evaluate_cmd", "Score the analytics against a scenario's ground truth."),
    "export": ("atalaya.cli.cmd_export:export_cmd", "Export sites, tracks, corridors as GeoJSON, KML or CoT."),
    "records": ("atalaya.cli.cmd_records:records", "Load reference records: parties, platforms, sorties."),
    "scenario": ("atalaya.cli.cmd_scenario:scenario", "Generate the synthetic scenario world."),
    "log": ("atalaya.cli.cmd_log:log", "Transparency log: append, checkpoint, prove, verify, witness."),
    "sovereignty": ("atalaya.cli.cmd_sovereignty:sovereignty", "Overflight accounting, compliance, reports."),
    "serve": ("atalaya.cli.cmd_serve:serve_cmd", "Serve the HTTP API and the web workspace."),
    "users": ("atalaya.cli.cmd_serve:users", "Local users, roles and API tokens."),
    "check": ("atalaya.cli.cmd_compliance:check_cmd", "Check sorties against the agreements (compliance)."),
    "check-plan": (
        "atalaya.cli.cmd_compliance:check_plan_cmd",
        "Which authorisation covers each leg of a planned route.",
    ),
    "report": ("atalaya.cli.cmd_compliance:report_cmd", "Write a partner's overflight and compliance report."),
    "agreements": ("atalaya.cli.cmd_compliance:agreements_cmd", "Agreements: validate, load, list, show."),
    "demo": ("atalaya.cli.cmd_demo:demo_cmd", "Generate, ingest, analyse and serve the demo workspace."),
    "partners": ("atalaya.cli.cmd_federation:partners", "Partner nodes: address, pinned log key, API token."),
    "selectors": ("atalaya.cli.cmd_federation:selectors", "Selector lists for private comparisons with partners."),
    "match": ("atalaya.cli.cmd_federation:match_cmd", "Compare selectors with a partner without disclosing them."),
    "sync": ("atalaya.cli.cmd_federation:sync_cmd", "Pull and verify what partner nodes shared since the last sync."),
    "share": ("atalaya.cli.cmd_federation:share", "Publish products to partners (TAXII), retract, follow receipts."),
}
"""Command name → (``module:attribute``, short help). Explicit and lazy: nothing loads until used."""


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target[0].partition(":")
        try:
            cmd = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as e:
            if e.name == module:
                return _unavailable(cmd_name)
            raise
        if not isinstance(cmd, click.Command):
            raise TypeError(f"{target[0]} is not a click command")
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _unavailable(name: str) -> click.Command:
    @click.command(name=name, help="Not available in this build.")
    def _cmd() -> None:
        raise click.ClickException(f"the `{name}` command is not available in this build")

    return _cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="atalaya")
@click.option(
    "-w",
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="ATALAYA_WORKSPACE",
    help="Workspace directory (default: $ATALAYA_WORKSPACE, or the nearest parent with atalaya.toml).",
)
@click.option("--db", metavar="URL", envvar="ATALAYA_DB", help="Knowledge store URL (sqlite:///… or postgresql://…).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def cli(ctx: click.Context, workspace: Path | None, db: str | None, quiet: bool) -> None:
    """Atalaya: fusion and verifiable sovereignty accounting for partner-nation surveillance."""
    ctx.obj = CliState(workspace=workspace, db=db, quiet=quiet)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: turns :class:`AtalayaError` into a clear message and exit status 2."""
    try:
        rv = cli.main(args=argv, prog_name="atalaya", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except AtalayaError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted; stores are left consistent (uncommitted work was discarded)", err=True)
        sys.exit(130)
    if isinstance(rv, int) and rv:
        sys.exit(rv)
    return rv


if __name__ == "__main__":
    main()
