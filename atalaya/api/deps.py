"""Application state and request dependencies: the store, the current user, egress, pagination."""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request, status

from atalaya.api.throttle import LoginThrottle
from atalaya.api.users import User, session_user, user_for_token
from atalaya.core.workspace import Workspace
from atalaya.share.egress import EgressPolicy, Release, release
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.lake import Lake

COOKIE = "atalaya_session"


@dataclass(kw_only=True)
class AppState:
    """Everything a request handler needs, created once per app."""

    workspace: Workspace
    """The served workspace."""
    store: KnowledgeStore
    """Its knowledge store."""
    truth_dir: Path | None = None
    """Scenario ground truth (demo mode only), for the truth overlay."""
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Background jobs by id."""
    log_lock: threading.Lock = field(default_factory=threading.Lock)
    """Serialises this process's appends to the transparency log (one writer at a time)."""
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    """Failed log-ins per user name and client address."""

    @property
    def lake(self) -> Lake:
        return Lake(self.workspace.lake_dir)

    def policy(self) -> EgressPolicy:
        return EgressPolicy.from_store(self.store, self.workspace.party)

    def release(self, user: User, kind: str, items: list[dict[str, Any]], id_key: str = "id") -> list[dict[str, Any]]:
        """The egress chokepoint for API responses (:func:`atalaya.share.egress.release`); the released items."""
        return self.release_of(user, kind, items, id_key=id_key).items

    def release_of(self, user: User, kind: str, items: list[dict[str, Any]], id_key: str = "id") -> Release:
        """The egress release of ``items`` to ``user``'s party: released items, withheld reasons, log index."""
        if user.party == self.workspace.party:
            return Release(recipient=user.party, kind=kind, items=items, withheld=[], log_index=None,
                           content_sha256=None)  # fmt: skip
        with self.log_lock:
            return release(self.workspace, self.store, items, recipient=user.party, kind=kind, user=user.username,
                           id_key=id_key)  # fmt: skip


def get_state(request: Request) -> AppState:
    st: AppState = request.app.state.atalaya
    return st


StateDep = Annotated[AppState, Depends(get_state)]


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"


def current_user(request: Request, state: StateDep) -> User:
    """The user of the request; 401 otherwise.

    A bearer credential (``Authorization: Bearer …``: a login session of an API client or an API token) or the
    web page's session cookie. A cookie-authenticated request that changes state must echo the session's CSRF
    token (from ``GET /api/auth/me``) in the ``X-CSRF-Token`` header, else 403.
    """
    auth = request.headers.get("authorization", "")
    user: User | None = None
    if auth:
        scheme, _, cred = auth.partition(" ")
        cred = cred.strip()
        if scheme.lower() == "bearer" and cred and len(cred) <= 256:
            user = session_user(state.store, cred, kind="bearer") or user_for_token(state.store, cred)
    else:
        cookie = request.cookies.get(COOKIE, "")
        if cookie and len(cookie) <= 256:
            user = session_user(state.store, cookie, kind="cookie")
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "not authenticated (or the session expired or was revoked): log in at POST /api/auth/login or send "
            "a live API token as Authorization: Bearer",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if user.auth == "cookie" and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not user.csrf_token or not hmac.compare_digest(sent.encode(), user.csrf_token.encode()):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"missing or wrong {CSRF_HEADER} header: send the csrf_token of GET /api/auth/me with every "
                "request that changes state",
            )
    return user


UserDep = Annotated[User, Depends(current_user)]


def analyst(user: UserDep, state: StateDep) -> User:
    """Only the node's own analysts and admins may change the picture."""
    if user.role not in ("analyst", "admin") or user.party != state.workspace.party:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this action needs an analyst or admin of this node's party")
    return user


AnalystDep = Annotated[User, Depends(analyst)]


MAX_OFFSET = 10**9
"""Largest pagination offset accepted (larger is a 422)."""


@dataclass(frozen=True, kw_only=True)
class PageParams:
    """Pagination parameters."""

    limit: int
    """Items per page."""
    offset: int
    """Items skipped."""


def page_params(
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip")] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


PageDep = Annotated[PageParams, Depends(page_params)]


def released_page(state: AppState, user: User, kind: str, rows: list[dict[str, Any]], p: PageParams) -> dict[str, Any]:
    """One page of what the egress releases to ``user``; an empty view for a partner says why (``why_empty``)."""
    rel = state.release_of(user, kind, rows)
    body = page(rel.items[p.offset : p.offset + p.limit], len(rel.items), p)
    if not rel.items and user.party != state.workspace.party:
        body["why_empty"] = rel.why_empty
    return body


def page(items: list[Any], total: int, p: PageParams) -> dict[str, Any]:
    """A page envelope with the next offset (``None`` at the end)."""
    nxt = p.offset + p.limit if p.offset + p.limit < total else None
    return {"items": items, "total": total, "limit": p.limit, "offset": p.offset, "next_offset": nxt}
