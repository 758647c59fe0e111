"""``atalaya serve`` and ``atalaya users``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from atalaya.api.users import TOKEN_DAYS, TOKEN_MAX_DAYS
from atalaya.cli.context import emit, json_option, workspace_from
from atalaya.store.knowledge import KnowledgeStore

T = TypeVar("T")


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
        u = _checked(lambda: add_user(store, username, password, party=party or ws.party, role=role))
    finally:
        store.close()
    emit(as_json, u.__dict__, lambda d: f"user {d['username']} ({d['role']}, party {d['party']}) created")


def _store(ctx: click.Context) -> KnowledgeStore:
    return KnowledgeStore.open(workspace_from(ctx).db_url)


def _checked(fn: Callable[[], T]) -> T:
    from atalaya.core.errors import ValidationError

    try:
        return fn()
    except ValidationError as e:
        raise click.ClickException(f"{e.message}; {e.hint}" if e.hint else e.message) from e


@users.command("list")
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """List users, whether each is enabled, and its live sessions and API tokens."""
    from atalaya.api.users import list_users

    store = _store(ctx)
    try:
        rows = list_users(store)
    finally:
        store.close()
    emit(
        as_json,
        rows,
        lambda d: "\n".join(
            f"{r['username']:<20} {r['role']:<8} {r['party']:<6} {'enabled' if r['active'] else 'DISABLED':<9}"
            f" {r['sessions']} session(s), {r['tokens']} token(s)"
            for r in d
        ),
    )


@users.command("token")
@click.argument("username")
@click.option("--name", default="api", show_default=True, help="Label for the token.")
@click.option(
    "--days",
    type=click.IntRange(1, TOKEN_MAX_DAYS),
    default=TOKEN_DAYS,
    show_default=True,
    help="Days until the token expires.",
)
@click.pass_context
def token_cmd(ctx: click.Context, username: str, name: str, days: int) -> None:
    """Issue an API token for a user (printed once; store it safely). It expires after --days days."""
    from atalaya.api.users import get_user, issue_token

    store = _store(ctx)
    try:
        tok = _checked(lambda: issue_token(store, get_user(store, username), name=name, days=days))
    finally:
        store.close()
    click.echo(tok)


@users.command("tokens")
@click.argument("username")
@json_option
@click.pass_context
def tokens_cmd(ctx: click.Context, username: str, as_json: bool) -> None:
    """List a user's API tokens (id, name, expiry, last use, revocation; never the secrets)."""
    from atalaya.api.users import list_tokens

    store = _store(ctx)
    try:
        rows = _checked(lambda: list_tokens(store, username))
    finally:
        store.close()
    emit(
        as_json,
        rows,
        lambda d: (
            "\n".join(
                f"{r['id']:>5} {r['name']:<20} expires {r['expires_at'] or 'never (no longer accepted)'}"
                f"  last used {r['last_used_at'] or '-'}" + (f"  REVOKED {r['revoked_at']}" if r["revoked_at"] else "")
                for r in d
            )
            or f"{username} has no API tokens"
        ),
    )


@users.command("revoke")
@click.argument("username")
@click.option("--token-id", type=click.IntRange(1), default=None, help="Revoke only this token (see `users tokens`).")
@click.pass_context
def revoke_cmd(ctx: click.Context, username: str, token_id: int | None) -> None:
    """Revoke a user's API tokens and end its sessions (or only one token with --token-id)."""
    from atalaya.api.users import revoke_tokens

    store = _store(ctx)
    try:
        n = _checked(lambda: revoke_tokens(store, username, token_id=token_id, sessions=token_id is None))
    finally:
        store.close()
    click.echo(f"{n} credential(s) of {username} revoked")


@users.command("disable")
@click.argument("username")
@click.pass_context
def disable_cmd(ctx: click.Context, username: str) -> None:
    """Disable a user: no log-in, its sessions end, its API tokens stop working."""
    from atalaya.api.users import set_active

    store = _store(ctx)
    try:
        _checked(lambda: set_active(store, username, False))
    finally:
        store.close()
    click.echo(f"user {username} disabled")


@users.command("enable")
@click.argument("username")
@click.pass_context
def enable_cmd(ctx: click.Context, username: str) -> None:
    """Enable a disabled user."""
    from atalaya.api.users import set_active

    store = _store(ctx)
    try:
        _checked(lambda: set_active(store, username, True))
    finally:
        store.close()
    click.echo(f"user {username} enabled")


@users.command("passwd")
@click.argument("username")
@click.password_option("--password", help="New password (prompted if not given).")
@click.pass_context
def passwd_cmd(ctx: click.Context, username: str, password: str) -> None:
    """Set a user's password; its sessions end (API tokens stay: `users revoke` them)."""
    from atalaya.api.users import set_password

    store = _store(ctx)
    try:
        _checked(lambda: set_password(store, username, password))
    finally:
        store.close()
    click.echo(f"password of {username} set; its sessions ended")
