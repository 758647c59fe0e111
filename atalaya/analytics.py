"""The analytics registry: every fusion analytic by name, in the order ``all`` runs them.

Adding an analytic is its package, one line here, its evaluator and its test.
The CLI (``atalaya analyze``), the API's jobs and the demo all run analytics
through :func:`run_analytics`.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from atalaya.core.workspace import Workspace
from atalaya.store.knowledge import KnowledgeStore

ANALYTICS: dict[str, str] = {
    "tracks": "atalaya.fusion.tracks:run_tracks",
    "sites": "atalaya.fusion.sites:run_sites",
    "maritime": "atalaya.fusion.maritime:run_maritime",
    "corridors": "atalaya.fusion.corridors:run_corridors",
}
"""Analytic name → ``module:function(ws, store, *, progress) -> dict``, in the order ``all`` runs them."""


def runner(name: str) -> Callable[..., dict[str, Any]]:
    """The run function of one analytic (imported on first use)."""
    module, _, fn = ANALYTICS[name].partition(":")
    f: Callable[..., dict[str, Any]] = getattr(importlib.import_module(module), fn)
    return f


def run_analytics(
    ws: Workspace,
    store: KnowledgeStore,
    names: Sequence[str],
    *,
    progress: bool,
    on_step: Callable[[str, int], None] | None = None,
) -> dict[str, Any]:
    """Run analytics in order; each result carries its wall time. ``on_step(name, i)`` is told of each start."""
    out: dict[str, Any] = {}
    for i, name in enumerate(names):
        if on_step is not None:
            on_step(name, i)
        t0 = time.perf_counter()
        res = runner(name)(ws, store, progress=progress)
        out[name] = {**res, "seconds": round(time.perf_counter() - t0, 2)}
    return out
