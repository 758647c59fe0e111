"""Authentication: log in, log out, who am I, own password and own API tokens."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from pydantic import BaseModel, Field

from atalaya.api.deps import COOKIE, CSRF_HEADER, StateDep, UserDep
from atalaya.api.users import (
    MAX_PASSWORD,
    SESSION_HOURS,
    SESSION_IDLE_MINUTES,
    TOKEN_DAYS,
    TOKEN_MAX_DAYS,
    authenticate,
    create_session,
    end_session,
    issue_token,
    list_tokens,
    revoke_tokens,
    set_password,
    verify_password,
)
from atalaya.core.errors import ValidationError
from atalaya.store.knowledge import schema as ks

router = APIRouter(prefix="/api/auth", tags=["auth"])

WRONG = "wrong username or password"


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)
    session: Literal["cookie", "bearer"] = "bearer"
    """``cookie``: the web page's session, set as an HttpOnly SameSite=Strict cookie and never shown to the page;
    ``bearer``: an API client's session, returned as ``token`` for ``Authorization: Bearer``."""


def client_address(request: Request) -> str:
    """The peer address of the connection (a reverse proxy's own address when behind one)."""
    return request.client.host if request.client else "unknown"


@router.post("/login", responses={401: {"description": WRONG}, 429: {"description": "too many failed log-ins"}})
def login(body: Login, state: StateDep, request: Request, response: Response) -> dict[str, Any]:
    """Log in with a username and password.

    The answer takes the same time whether the user exists or not. After repeated failures for one name or from
    one address, log-ins are refused with 429 (and ``Retry-After``) for a while, whatever the password.
    """
    addr = client_address(request)
    wait = state.throttle.retry_after(body.username, addr)
    if wait:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed log-ins for this name or from this address: try again in {wait} s, or ask an admin "
            "to set a new password",
            headers={"Retry-After": str(wait)},
        )
    user = authenticate(state.store, body.username, body.password)
    if user is None:
        state.throttle.fail(body.username, addr)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, WRONG)
    state.throttle.succeed(body.username)
    sess = create_session(state.store, user, kind=body.session, client=addr)
    out: dict[str, Any] = {
        "username": user.username,
        "party": user.party,
        "role": user.role,
        "expires_at": sess.expires_at.isoformat(),
        "idle_minutes": SESSION_IDLE_MINUTES,
    }
    if body.session == "cookie":
        response.set_cookie(
            COOKIE,
            sess.token,
            max_age=SESSION_HOURS * 3600,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        out["csrf_token"] = sess.csrf_token
    else:
        out["token"] = sess.token
    return out


@router.post("/logout")
def logout(user: UserDep, state: StateDep, response: Response) -> dict[str, Any]:
    """End this session (the cookie or bearer session is revoked on the server). API tokens are revoked with
    ``DELETE /api/auth/tokens/{id}``."""
    if user.session_id is not None:
        end_session(state.store, user.session_id)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return {"ok": True, "revoked": user.session_id is not None}


@router.get("/me")
def me(user: UserDep, state: StateDep) -> dict[str, Any]:
    """The current user, the node it is talking to, and (web sessions) the CSRF token to echo in
    ``X-CSRF-Token``."""
    out: dict[str, Any] = {
        "username": user.username,
        "party": user.party,
        "role": user.role,
        "node_party": state.workspace.party,
        "auth": user.auth,
        "expires_at": user.expires_at.isoformat() if user.expires_at else None,
    }
    if user.csrf_token:
        out["csrf_token"] = user.csrf_token
        out["csrf_header"] = CSRF_HEADER
    return out


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=MAX_PASSWORD)
    new_password: str = Field(min_length=1, max_length=MAX_PASSWORD)


@router.post("/password", responses={403: {"description": "wrong current password"}})
def change_password(body: PasswordChange, user: UserDep, state: StateDep, request: Request) -> dict[str, Any]:
    """Change your own password (give the current one). Your other sessions end; this one stays."""
    addr = client_address(request)
    wait = state.throttle.retry_after(user.username, addr)
    if wait:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many wrong passwords: try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    with state.store.engine.connect() as conn:
        row = conn.execute(ks.users.select().where(ks.users.c.id == user.id)).first()
    if row is None or not verify_password(body.current_password, row.password_hash):
        state.throttle.fail(user.username, addr)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the current password is wrong")
    try:
        set_password(state.store, user.username, body.new_password, actor=user.username, keep_session=user.session_id)
    except ValidationError as e:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{e.message}: {e.hint}") from e
    state.throttle.clear(user.username)
    return {"ok": True}


class TokenRequest(BaseModel):
    name: str = Field(default="api", min_length=1, max_length=80, pattern=r"^[\w .:@-]+$")
    days: int = Field(default=TOKEN_DAYS, ge=1, le=TOKEN_MAX_DAYS)


@router.get("/tokens")
def my_tokens(user: UserDep, state: StateDep) -> dict[str, Any]:
    """Your API tokens (never their secrets)."""
    return {"items": list_tokens(state.store, user.username)}


@router.post("/tokens")
def new_token(body: TokenRequest, user: UserDep, state: StateDep) -> dict[str, Any]:
    """A new API token for yourself, valid for ``days`` days; shown once."""
    return {
        "token": issue_token(state.store, user, name=body.name, days=body.days),
        "name": body.name,
        "days": body.days,
    }


@router.delete("/tokens/{token_id}")
def delete_token(token_id: Annotated[int, Path(ge=1, le=2**31 - 1)], user: UserDep, state: StateDep) -> dict[str, Any]:
    """Revoke one of your API tokens."""
    try:
        n = revoke_tokens(state.store, user.username, token_id=token_id, actor=user.username)
    except ValidationError as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, e.message) from e
    return {"ok": True, "revoked": n}
