"""Transparency log: checkpoint, entries, and verification of inclusion and consistency."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel

from atalaya.api.deps import PageDep, StateDep, UserDep, page
from atalaya.core.errors import LogIntegrityError
from atalaya.store.translog import open_checkpoint, verify_bundle, verify_consistency_notes
from atalaya.store.translog.node import log_signer, open_log

router = APIRouter(prefix="/api/log", tags=["transparency log"])


@router.get("/checkpoint")
def checkpoint(state: StateDep, user: UserDep) -> dict[str, Any]:
    """The newest signed checkpoint, with the log's verifier key (to pin out of band)."""
    with open_log(state.workspace, readonly=True) as log:
        text = log.latest_checkpoint()
        size = log.size
    vkey = log_signer(state.workspace).verifier()
    if text is None:
        return {"checkpoint": None, "log_size": size, "verifier_key": vkey.vkey()}
    cp = open_checkpoint(text, vkey)
    return {
        "checkpoint": text,
        "origin": cp.origin,
        "size": cp.size,
        "root_hex": cp.root.hex(),
        "log_size": size,
        "verifier_key": vkey.vkey(),
    }


@router.get("/entries")
def entries(state: StateDep, user: UserDep, p: PageDep, kind: str | None = None) -> dict[str, Any]:
    """Log entries, newest first (paginated), optionally of one kind."""
    with open_log(state.workspace, readonly=True) as log:
        n = log.size
        if kind is None:
            idx = list(range(n - 1 - p.offset, max(-1, n - 1 - p.offset - p.limit), -1))
            items = [{"index": i, **log.get(i)} for i in idx]
            return page(items, n, p)
        matching = [i for i in range(n - 1, -1, -1) if log.get(i).get("kind") == kind]
        items = [{"index": i, **log.get(i)} for i in matching[p.offset : p.offset + p.limit]]
        return page(items, len(matching), p)


class VerifyRequest(BaseModel):
    index: int | None = None
    """Entry to prove (default: the newest entry under the checkpoint)."""
    old_checkpoint: str | None = None
    """A checkpoint seen earlier; the log must prove it extends it."""


@router.post("/verify")
def verify(body: VerifyRequest, state: StateDep, user: UserDep) -> dict[str, Any]:
    """Verify, as a partner would offline, an entry's inclusion and the log's consistency with an old checkpoint."""
    vkey = log_signer(state.workspace).verifier()
    out: dict[str, Any] = {"verifier_key": vkey.vkey()}
    with open_log(state.workspace, readonly=True) as log:
        text = log.latest_checkpoint()
        if text is None:
            raise HTTPException(status.HTTP_409_CONFLICT, "the log has no signed checkpoint yet")
        cp = open_checkpoint(text, vkey)
        index = cp.size - 1 if body.index is None else body.index
        try:
            bundle = log.prove(index, text)
            verify_bundle(bundle, vkey)
            out["inclusion"] = {"ok": True, "index": index, "size": cp.size}
        except LogIntegrityError as e:
            out["inclusion"] = {"ok": False, "index": index, "error": str(e)}
        if body.old_checkpoint:
            try:
                old = open_checkpoint(body.old_checkpoint, vkey)
                proof = log.consistency(old.size, cp.size)
                verify_consistency_notes(body.old_checkpoint, text, proof, vkey)
                out["consistency"] = {"ok": True, "old_size": old.size, "new_size": cp.size}
            except LogIntegrityError as e:
                out["consistency"] = {"ok": False, "error": str(e)}
    out["checkpoint"] = text
    out["ok"] = all(v.get("ok", True) for v in out.values() if isinstance(v, dict))
    return out
