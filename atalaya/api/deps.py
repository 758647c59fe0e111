"""Application state and request dependencies: the store, the current user, egress, pagination."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request, status

from atalaya.api.users import User, user_for_token
from atalaya.core.markings import Marking
from atalaya.core.workspace import Workspace
from atalaya.share.egress import Decision, EgressPolicy, content_sha256, dissemination_entry
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.lake import Lake

COOKIE = "atalaya_token"
LOG_WAIT_S = 10.0
"""How long a release waits for another process (e.g. a CLI run) writing the transparency log."""


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

    @property
    def lake(self) -> Lake:
        return Lake(self.workspace.lake_dir)

    def policy(self) -> EgressPolicy:
        return EgressPolicy.from_store(self.store, self.workspace.party)

    def release(self, user: User, kind: str, items: list[dict[str, Any]], id_key: str = "id") -> list[dict[str, Any]]:
        """The egress chokepoint for API responses: filter by marking and agreements, log what leaves."""
        if user.party == self.workspace.party:
            return items
        pol = self.policy()
        kept: list[dict[str, Any]] = []
        last: Decision | None = None
        for it in items:
            d = pol.check(Marking.from_text(str(it.get("marking") or "TLP:AMBER")), user.party, kind=kind)
            if d.allowed:
                kept.append(it)
                last = d
        if kept and last is not None:
            from atalaya.store.translog.node import open_log

            entry = dissemination_entry(
                sender=self.workspace.party,
                recipient=user.party,
                kind=kind,
                object_ids=[str(it.get(id_key)) for it in kept],
                sha256=content_sha256(kept),
                decision=last,
                user=user.username,
            )
            with self.log_lock, open_log(self.workspace, wait_s=LOG_WAIT_S) as log:
                log.append(entry)
        return kept


def get_state(request: Request) -> AppState:
    st: AppState = request.app.state.atalaya
    return st


StateDep = Annotated[AppState, Depends(get_state)]


def current_user(request: Request, state: StateDep) -> User:
    """The user of the bearer token (``Authorization: Bearer …``) or session cookie; 401 otherwise."""
    token = ""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    if not token:
        token = request.cookies.get(COOKIE, "")
    user = user_for_token(state.store, token) if token else None
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "not authenticated: log in at POST /api/auth/login or send an API token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


UserDep = Annotated[User, Depends(current_user)]


def analyst(user: UserDep, state: StateDep) -> User:
    """Only the node's own analysts and admins may change the picture."""
    if user.role not in ("analyst", "admin") or user.party != state.workspace.party:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this action needs an analyst or admin of this node's party")
    return user


AnalystDep = Annotated[User, Depends(analyst)]


@dataclass(frozen=True, kw_only=True)
class PageParams:
    """Pagination parameters."""

    limit: int
    """Items per page."""
    offset: int
    """Items skipped."""


def page_params(
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page")] = 100,
    offset: Annotated[int, Query(ge=0, description="Items to skip")] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


PageDep = Annotated[PageParams, Depends(page_params)]


def page(items: list[Any], total: int, p: PageParams) -> dict[str, Any]:
    """A page envelope with the next offset (``None`` at the end)."""
    nxt = p.offset + p.limit if p.offset + p.limit < total else None
    return {"items": items, "total": total, "limit": p.limit, "offset": p.offset, "next_offset": nxt}
