"""The FastAPI application factory. The web workspace uses nothing but this API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from atalaya import __version__
from atalaya.api import (
    routes_auth,
    routes_federation,
    routes_layers,
    routes_log,
    routes_map,
    routes_sites,
    routes_taxii,
    routes_users,
)
from atalaya.api.deps import AppState, StateDep, UserDep
from atalaya.api.security import SecurityHeaders
from atalaya.core.errors import AtalayaError
from atalaya.core.workspace import Workspace
from atalaya.store.knowledge import KnowledgeStore


def create_app(workspace: Workspace, *, store: KnowledgeStore | None = None, truth_dir: Path | None = None) -> FastAPI:
    """Build the API (and static web workspace) for one workspace.

    At start-up a background thread builds the map's first-load layers (territories take seconds in a
    fresh process); responses of 1 KiB or more are gzip-compressed unless already encoded.
    """
    state = AppState(workspace=workspace, store=store or KnowledgeStore.open(workspace.db_url), truth_dir=truth_dir)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        routes_map.warm_in_background(state)
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="Atalaya",
        version=__version__,
        description="Fusion and verifiable sovereignty accounting. Every response to a partner's user passes the "
        "egress policy and is recorded in the transparency log.",
    )
    app.state.atalaya = state
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=routes_map.GZIP_LEVEL)
    app.add_middleware(SecurityHeaders)  # outermost: every response, errors included

    @app.exception_handler(AtalayaError)
    async def _atalaya_error(_req: Any, exc: AtalayaError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": exc.message, "hint": exc.hint})

    for r in (routes_auth, routes_users, routes_sites, routes_log, routes_map, routes_layers, routes_taxii,
              routes_federation):  # fmt: skip
        app.include_router(r.router)

    @app.get("/api/status", tags=["workspace"])
    def status(state: StateDep, user: UserDep) -> dict[str, Any]:
        """What the workspace holds (own party's users) or the node's identity (partners)."""
        from atalaya.store.status import workspace_status

        if user.party != state.workspace.party:
            return {"party": state.workspace.party, "workspace": None}
        return workspace_status(state.workspace, state.store)

    static = resources.files("atalaya.web").joinpath("static")
    static_path = Path(str(static))
    if static_path.is_dir():
        app.mount("/static", StaticFiles(directory=static_path), name="static")

        @app.get("/", include_in_schema=False)
        def index() -> FileResponse:
            return FileResponse(static_path / "index.html")

    return app
