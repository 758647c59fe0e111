"""User administration for this node's admins: list, set a password, disable, enable, revoke credentials."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, status
from pydantic import BaseModel, Field

from atalaya.api.deps import StateDep, UserDep
from atalaya.api.users import (
    MAX_PASSWORD,
    User,
    get_user,
    list_tokens,
    list_users,
    revoke_tokens,
    set_active,
    set_password,
)
from atalaya.core.errors import ValidationError

router = APIRouter(prefix="/api/users", tags=["users"])

UsernameP = Annotated[str, Path(min_length=1, max_length=80, pattern=r"^[^\x00-\x1f\x7f]+$")]


def admin(user: UserDep, state: StateDep) -> User:
    """Only an admin of this node's party manages users."""
    if user.role != "admin" or user.party != state.workspace.party:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "managing users needs an admin of this node's party")
    return user


AdminDep = Annotated[User, Depends(admin)]


def _known(state: StateDep, username: str) -> None:
    try:
        get_user(state.store, username)
    except ValidationError as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, e.message) from e


@router.get("")
def users(state: StateDep, who: AdminDep) -> dict[str, Any]:
    """Every user, whether enabled, and how many live sessions and API tokens each has."""
    return {"items": list_users(state.store)}


@router.get("/{username}/tokens")
def user_tokens(username: UsernameP, state: StateDep, who: AdminDep) -> dict[str, Any]:
    """A user's API tokens (never their secrets)."""
    _known(state, username)
    return {"items": list_tokens(state.store, username)}


class NewPassword(BaseModel):
    new_password: str = Field(min_length=1, max_length=MAX_PASSWORD)


@router.post("/{username}/password")
def reset_password(username: UsernameP, body: NewPassword, state: StateDep, who: AdminDep) -> dict[str, Any]:
    """Set a user's password; all its sessions end (its API tokens stay: revoke them separately)."""
    _known(state, username)
    try:
        set_password(state.store, username, body.new_password, actor=who.username)
    except ValidationError as e:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{e.message}: {e.hint}") from e
    state.throttle.clear(username)
    return {"ok": True}


@router.post("/{username}/disable")
def disable(username: UsernameP, state: StateDep, who: AdminDep) -> dict[str, Any]:
    """Disable a user: it cannot log in, its sessions end and its API tokens stop working."""
    _known(state, username)
    if username == who.username:
        raise HTTPException(status.HTTP_409_CONFLICT, "you cannot disable yourself: ask another admin")
    set_active(state.store, username, False, actor=who.username)
    return {"ok": True, "active": False}


@router.post("/{username}/enable")
def enable(username: UsernameP, state: StateDep, who: AdminDep) -> dict[str, Any]:
    """Enable a disabled user (its API tokens work again unless revoked or expired)."""
    _known(state, username)
    set_active(state.store, username, True, actor=who.username)
    state.throttle.clear(username)
    return {"ok": True, "active": True}


@router.post("/{username}/revoke")
def revoke(username: UsernameP, state: StateDep, who: AdminDep) -> dict[str, Any]:
    """Revoke every API token and end every session of a user."""
    _known(state, username)
    return {"ok": True, "revoked": revoke_tokens(state.store, username, sessions=True, actor=who.username)}
