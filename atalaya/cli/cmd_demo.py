"""``atalaya demo``: the main job — generate the scenario, ingest, analyse, account, log, report, score, serve."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from atalaya.cli.context import state
from atalaya.core.markings import Marking
from atalaya.core.workspace import CONFIG_NAME, Workspace, init_workspace
from atalaya.store.knowledge import KnowledgeStore

LOGIN_FILE = "DEMO-LOGIN.txt"


def _step(title: str, fn: Callable[[], Any]) -> Any:
    click.echo(click.style(f"▸ {title}", bold=True))
    t0 = time.perf_counter()
    out = fn()
    click.echo(f"  done in {time.perf_counter() - t0:.1f} s")
    return out


def _ensure_users(ws: Workspace, store: KnowledgeStore) -> dict[str, str]:
    """Demo logins (an analyst of this node and the host party's liaison), kept in DEMO-LOGIN.txt."""
    from atalaya.api.users import add_user

    path = ws.root / LOGIN_FILE
    if path.exists():
        creds: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        return creds
    creds = {"analyst": secrets.token_urlsafe(9), "liaison-mex": secrets.token_urlsafe(9)}
    add_user(store, "analyst", creds["analyst"], party=ws.party, role="analyst")
    add_user(store, "liaison-mex", creds["liaison-mex"], party="MEX", role="liaison")
    path.write_text(json.dumps(creds, indent=1), encoding="utf-8")
    path.chmod(0o600)
    return creds


def run_demo(directory: Path, *, size: str, seed: int, db: str | None, progress: bool) -> dict[str, Any]:
    """Build (or bring up to date) the demo workspace; returns the figures of each step."""
    from atalaya.analytics import ANALYTICS
    from atalaya.cli.cmd_analyze import run_analytics
    from atalaya.ingest.pipeline import ingest_paths
    from atalaya.ingest.records import load_records
    from atalaya.scenario.generate import generate
    from atalaya.sovereignty.agreements import load_agreements, store_agreements
    from atalaya.sovereignty.service import run as run_sovereignty

    directory = directory.resolve()
    ws = (
        Workspace.open(directory, db_override=db)
        if (directory / CONFIG_NAME).exists()
        else init_workspace(directory, party="USA", name="Collecting party (demo)", db_url=db or "")
    )
    scen = ws.root / "scenario"
    figures: dict[str, Any] = {"workspace": str(ws.root), "scenario": str(scen)}
    if not (scen / "README.md").exists():
        s = _step(f"generate the {size} scenario (seed {seed})", lambda: generate(scen, size=size, seed=seed))
        figures["scenario_files"] = getattr(s, "files", None)
    mk = Marking.from_text(f"TLP:AMBER;REL:MEX,USA;CAV:INTEL-ONLY,NO-ACTION-WITHOUT-HOST-CONSENT;ORIG:{ws.party}")
    store = KnowledgeStore.open(ws.db_url)
    try:
        ing = _step("ingest the feeds", lambda: ingest_paths(ws, [scen / "feeds"], marking=mk, progress=progress))
        figures["ingest"] = ing.totals()
        figures["records"] = _step(
            "import sortie manifests and agreements",
            lambda: {
                **load_records(store, scen / "records", marking=mk).to_dict(),
                "agreements_new": store_agreements(store, load_agreements([scen / "records" / "agreements"]).all()),
            },
        )
        figures["analytics"] = _step(
            "analyse: " + ", ".join(ANALYTICS), lambda: run_analytics(ws, store, list(ANALYTICS), progress=progress)
        )
        figures["sovereignty"] = _step(
            "account sorties, log them, check compliance, write the MEX report",
            lambda: run_sovereignty(ws, store, partners=("MEX",)),
        )
        from atalaya.share.exports import FORMATS, KINDS, export

        figures["exports"] = _step(
            "export sites, tracks and corridors (GeoJSON, KML, CoT)",
            lambda: [
                str(export(ws, store, kind=k, fmt=f, out=ws.exports_dir / f"{k}.{f}").path)
                for k in KINDS
                for f in FORMATS
            ],
        )
        from atalaya.evaluate.scorecard import scorecard

        figures["scorecard"] = _step("score against the ground truth", lambda: scorecard(ws, store, scen / "truth"))
        figures["logins"] = _ensure_users(ws, store)
    finally:
        store.close()
    (ws.exports_dir / "scorecard.json").write_text(json.dumps(figures["scorecard"], indent=2, default=str))
    return figures


@click.command("demo")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-workspace"),
              show_default=True, help="Workspace directory for the demo.")  # fmt: skip
@click.option("--size", type=click.Choice(["demo", "small", "large"]), default="demo", show_default=True)
@click.option("--seed", default=7, show_default=True, help="Scenario seed.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True)
@click.option("--no-serve", is_flag=True, help="Build the workspace and print the figures, but do not serve.")
@click.pass_context
def demo_cmd(ctx: click.Context, directory: Path, size: str, seed: int, host: str, port: int, no_serve: bool) -> None:
    """Generate the scenario, ingest it, analyse, account and log the sorties, report, score, and serve."""
    st = state(ctx)
    figures = run_demo(directory, size=size, seed=seed, db=st.db, progress=not st.quiet)
    from atalaya.evaluate.scorecard import render_scorecard

    click.echo(render_scorecard(figures["scorecard"]))
    sov = figures["sovereignty"]
    counts = ", ".join(f"{n} {k}" for k, n in sorted(sov["by_status"].items()))
    click.echo(
        f"sorties: {sov['sorties']} ({counts}); log size {sov['log']['overflight']['log_size']}; "
        f"partner report: {sov['reports']['MEX']['html']}"
    )
    logins = figures["logins"]
    if no_serve:
        return
    import uvicorn

    from atalaya.api.app import create_app

    ws = Workspace.open(figures["workspace"], db_override=st.db)
    app = create_app(ws, truth_dir=Path(figures["scenario"]) / "truth")
    click.echo(
        click.style(f"\nAtalaya demo workspace: http://{host}:{port}/", bold=True)
        + f"\n  analyst login:  analyst / {logins['analyst']}"
        + f"\n  partner login:  liaison-mex / {logins['liaison-mex']}   (sees only what is released to MEX)"
        + f"\n  API docs:       http://{host}:{port}/docs\n  (Ctrl-C to stop)"
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
