"""``atalaya serve`` and ``atalaya users``."""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import select

from atalaya.cli.context import emit, json_option, workspace_from
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, help="Port to listen on.")
@click.option(
    "--truth",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Scenario ground-truth directory: enables the demo truth overlay.",
)
@click.pass_context
def serve_cmd(ctx: click.Context, host: str, port: int, truth: Path | None) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) and the web workspace."""
    import uvicorn

    from atalaya.api.app import create_app

    ws = workspace_from(ctx)
    app = create_app(ws, truth_dir=truth)
    click.echo(f"Atalaya workspace {ws.root} (party {ws.party}) at http://{host}:{port}/  — API docs: /docs")
    uvicorn.run(app, host=host, port=port, log_level="warning")


@click.group("users")
def users() -> None:
    """Local users (analyst, liaison, admin) and API tokens."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(["analyst", "liaison", "admin"]), default="analyst", show_default=True)
@click.option("--party", default=None, help="The user's party (default: this node's party).")
@click.password_option("--password", help="Password (prompted if not given).")
@json_option
@click.pass_context
def add_cmd(ctx: click.Context, username: str, role: str, party: str | None, password: str, as_json: bool) -> None:
    """Create a user."""
    from atalaya.api.users import add_user

    ws = workspace_from(ctx)
    store = KnowledgeStore.open(ws.db_url)
    try:
        u = add_user(store, username, password, party=party or ws.party, role=role)
    finally:
        store.close()
    emit(as_json, u.__dict__, lambda d: f"user {d['username']} ({d['role']}, party {d['party']}) created")


@users.command("list")
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """List users."""
    ws = workspace_from(ctx)
    store = KnowledgeStore.open(ws.db_url)
    try:
        with store.engine.connect() as conn:
            rows = [
                {"username": r.username, "party": r.party_id, "role": r.role, "active": bool(r.active)}
                for r in conn.execute(select(ks.users).order_by(ks.users.c.username))
            ]
    finally:
        store.close()
    emit(as_json, rows, lambda d: "\n".join(f"{r['username']:<20} {r['role']:<8} {r['party']}" for r in d))


@users.command("token")
@click.argument("username")
@click.option("--name", default="api", show_default=True, help="Label for the token.")
@click.pass_context
def token_cmd(ctx: click.Context, username: str, name: str) -> None:
    """Issue a non-expiring API token for a user (printed once; store it safely)."""
    from atalaya.api.users import User, issue_token

    ws = workspace_from(ctx)
    store = KnowledgeStore.open(ws.db_url)
    try:
        with store.engine.connect() as conn:
            r = conn.execute(select(ks.users).where(ks.users.c.username == username)).first()
        if r is None:
            raise click.ClickException(f"no user {username!r}; create it with `atalaya users add`")
        tok = issue_token(
            store, User(id=r.id, username=r.username, party=r.party_id, role=r.role), name=name, hours=None
        )
    finally:
        store.close()
    click.echo(tok)
