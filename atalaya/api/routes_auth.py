"""Authentication: log in, log out, who am I."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel

from atalaya.api.deps import COOKIE, StateDep, UserDep
from atalaya.api.users import authenticate, issue_token

router = APIRouter(prefix="/api/auth", tags=["auth"])


class Login(BaseModel):
    username: str
    password: str


@router.post("/login")
def login(body: Login, state: StateDep, response: Response) -> dict[str, str]:
    """Exchange a username and password for a bearer token (also set as an HTTP-only cookie)."""
    user = authenticate(state.store, body.username, body.password)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    token = issue_token(state.store, user)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=12 * 3600)
    return {"token": token, "username": user.username, "party": user.party, "role": user.role}


@router.post("/logout")
def logout(user: UserDep, state: StateDep, response: Response) -> dict[str, bool]:
    """Forget the session cookie (API tokens stay valid until revoked)."""
    response.delete_cookie(COOKIE)
    return {"ok": True}


@router.get("/me")
def me(user: UserDep, state: StateDep) -> dict[str, str]:
    """The current user and the node it is talking to."""
    return {
        "username": user.username,
        "party": user.party,
        "role": user.role,
        "node_party": state.workspace.party,
    }
