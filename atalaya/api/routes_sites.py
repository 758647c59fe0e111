"""Sites: ranked list with score breakdown, evidence, and analyst actions that survive re-analysis."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel
from sqlalchemy import func, select, update

from atalaya.api.deps import AnalystDep, PageDep, StateDep, UserDep, page, released_page
from atalaya.model.objects import SiteStatus
from atalaya.store.knowledge import schema as ks

router = APIRouter(prefix="/api/sites", tags=["sites"])


def _row(r: Any) -> dict[str, Any]:
    d = dict(r._mapping)
    for k in ("first_seen", "last_seen", "status_at"):
        if d.get(k) is not None:
            d[k] = d[k].isoformat()
    return d


@router.get("")
def list_sites(
    state: StateDep,
    user: UserDep,
    p: PageDep,
    status_: Annotated[SiteStatus | None, Query(alias="status")] = None,
    kind: str | None = None,
    min_score: float = 0.0,
) -> dict[str, Any]:
    """Sites ranked by score (paginated), with their score breakdown in ``evidence``."""
    q = select(ks.sites).where(ks.sites.c.score >= min_score)
    if status_ is not None:
        q = q.where(ks.sites.c.status == status_.value)
    if kind:
        q = q.where(ks.sites.c.kind == kind)
    q = q.order_by(ks.sites.c.score.desc(), ks.sites.c.id)
    with state.store.engine.connect() as conn:
        if user.party == state.workspace.party:
            total = int(conn.execute(select(func.count()).select_from(q.subquery())).scalar_one())
            rows = [_row(r) for r in conn.execute(q.limit(p.limit).offset(p.offset))]
            return page(rows, total, p)
        rows = [_row(r) for r in conn.execute(q)]
    return released_page(state, user, "sites", rows, p)


@router.get("/{site_id}")
def get_site(site_id: str, state: StateDep, user: UserDep) -> dict[str, Any]:
    """One site with its evidence and provenance."""
    with state.store.engine.connect() as conn:
        r = conn.execute(select(ks.sites).where(ks.sites.c.id == site_id)).first()
    if r is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {site_id}")
    rows = state.release(user, "sites", [_row(r)])
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {site_id}")
    return rows[0]


class SiteUpdate(BaseModel):
    status: SiteStatus | None = None
    note: str | None = None


@router.patch("/{site_id}")
def update_site(site_id: str, body: SiteUpdate, state: StateDep, user: AnalystDep) -> dict[str, Any]:
    """Set a site's status and/or note (kept across re-analysis; audited)."""
    values: dict[str, Any] = {"status_by": user.username, "status_at": datetime.now(UTC)}
    if body.status is not None:
        values["status"] = body.status.value
    if body.note is not None:
        values["note"] = body.note
    with state.store.begin() as conn:
        res = conn.execute(update(ks.sites).where(ks.sites.c.id == site_id).values(**values))
        if res.rowcount == 0:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {site_id}")
        conn.execute(
            ks.audit.insert().values(
                time=datetime.now(UTC),
                actor=user.username,
                action="site.update",
                object_type="site",
                object_id=site_id,
                details=body.model_dump(mode="json", exclude_none=True),
            )
        )
        r = conn.execute(select(ks.sites).where(ks.sites.c.id == site_id)).one()
    return _row(r)
