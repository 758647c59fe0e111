"""Transparency log: checkpoint, entries, and verification of inclusion and consistency."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel

from atalaya.api.deps import PageDep, StateDep, UserDep, page
from atalaya.core.errors import LogIntegrityError
from atalaya.share.egress import release
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
    from atalaya.share.federation.witnessing import cosignatures

    return {
        "checkpoint": text,
        "origin": cp.origin,
        "size": cp.size,
        "root_hex": cp.root.hex(),
        "log_size": size,
        "verifier_key": vkey.vkey(),
        "cosignatures": cosignatures(state.store, cp.size),
    }


def entry_audience(entry: dict[str, Any]) -> list[str]:
    """The parties a log entry is about (who, besides this node, may read it).

    >>> entry_audience({"kind": "overflight", "owner": "MEX"})
    ['MEX']
    >>> entry_audience({"kind": "dissemination", "sender": "USA", "recipient": "MEX"})
    ['MEX', 'USA']
    >>> entry_audience({"kind": "match", "initiator": "MEX", "responder": "USA"})
    ['MEX', 'USA']
    >>> entry_audience({"kind": "note"})
    []
    """
    kind = entry.get("kind")
    if kind == "overflight":
        return [str(entry.get("owner", ""))]
    if kind == "agreement":
        return sorted(str(p) for p in entry.get("parties") or [])
    if kind == "dissemination":
        return sorted({str(entry.get("recipient", "")), str(entry.get("sender", ""))} - {""})
    if kind == "match":
        return sorted({str(entry.get("initiator", "")), str(entry.get("responder", ""))} - {""})
    if kind == "publication":
        return sorted({str(entry.get("recipient", "")), str(entry.get("sender", ""))} - {""})
    if kind == "retraction":
        return sorted(str(p) for p in entry.get("recipients") or [])
    if kind == "receipt":
        return [str(entry.get("party", ""))]
    return []


def entry_summary(entry: dict[str, Any]) -> dict[str, Any]:
    """What a reader needs to see of an entry at a glance: its kind, sortie, territory and a line of figures."""
    kind = str(entry.get("kind", ""))
    out: dict[str, Any] = {"kind": kind, "sortie": None, "territory": None, "text": ""}
    if kind == "overflight":
        out["sortie"] = entry.get("sortie")
        out["territory"] = entry.get("territory")
        depth = entry.get("max_depth_km")
        out["text"] = (
            f"{float(entry.get('seconds') or 0) / 60:.0f} min, {float(entry.get('km') or 0):.1f} km"
            + (f", max depth {float(depth):.1f} km" if depth is not None else "")
            + f", {entry.get('entries', 0)} entr{'y' if entry.get('entries') == 1 else 'ies'}"
        )
    elif kind == "agreement":
        out["text"] = f"{entry.get('id')} v{entry.get('version')}: {entry.get('title', '')}"
    elif kind == "match":
        out["text"] = (
            f"{entry.get('initiator')}–{entry.get('responder')} compared {entry.get('selector')} selectors "
            f"({entry.get('own_items')} vs {entry.get('peer_items')}; overlap "
            f"{'pending' if entry.get('overlap') is None else entry.get('overlap')}, reveal {entry.get('reveal')})"
        )
    elif kind == "dissemination":
        out["territory"] = entry.get("recipient")
        out["text"] = (
            f"{entry.get('objects', 0)} {entry.get('product_kind', '')} released to {entry.get('recipient')}"
            f" ({entry.get('purpose', 'intelligence')})"
        )
    return out


@router.get("/entries")
def entries(
    state: StateDep,
    user: UserDep,
    p: PageDep,
    kind: Annotated[str | None, Query(max_length=40, pattern=r"^[a-z-]+$")] = None,
    after: Annotated[int, Query(ge=0, le=2**40, description="Only entries at this index or later")] = 0,
) -> dict[str, Any]:
    """Log entries, newest first (paginated), optionally of one kind, each with a ``summary``.

    This node's users see every entry; a partner's user sees only the entries about its party (overflight of
    its territory, agreements it is a party to, releases to it). Leaves through the egress chokepoint.
    """
    own = user.party == state.workspace.party
    with open_log(state.workspace, readonly=True) as log:
        n = log.size
        items = []
        for i in range(n - 1, after - 1, -1):
            e = log.get(i)
            if kind is not None and e.get("kind") != kind:
                continue
            audience = entry_audience(e)
            if not own and user.party not in audience:
                continue
            items.append({"index": i, **e, "summary": entry_summary(e), "audience": audience,
                          "marking": "TLP:AMBER"})  # fmt: skip
    released = release(state.workspace, state.store, items, recipient=user.party, kind="log",
                       user=user.username, id_key="index", log=False).items  # fmt: skip
    body = page(released[p.offset : p.offset + p.limit], len(released), p)
    if not released and not own:
        body["why_empty"] = f"no log entry concerns {user.party} yet (no agreement, overflight or release)"
    return body


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


@router.get("/proof", responses={404: {"description": "no such entry for you"}, 409: {"description": "unsigned"}})
def proof(
    state: StateDep,
    user: UserDep,
    index: Annotated[int, Query(ge=0, le=2**40, description="Entry index")],
) -> dict[str, Any]:
    """An inclusion bundle (``atalaya.tlog-bundle/v1``) for one entry under the newest signed checkpoint.

    The page checks it itself (RFC 9162 hashes with SHA-256, the checkpoint's Ed25519 signature against the
    verifier key). A partner's user gets bundles only for the entries about its party.
    """
    own = user.party == state.workspace.party
    with open_log(state.workspace, readonly=True) as log:
        text = log.latest_checkpoint()
        if text is None:
            raise HTTPException(status.HTTP_409_CONFLICT, "the log has no signed checkpoint yet")
        size = open_checkpoint(text, log_signer(state.workspace).verifier()).size
        if index >= size:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"entry {index} is not under the checkpoint (size {size})")
        e = log.get(index)
        if not own and user.party not in entry_audience(e):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no entry {index} about {user.party}")
        bundle = log.prove(index, text)
    item = {"index": index, **e, "audience": entry_audience(e), "marking": "TLP:AMBER"}
    released = release(state.workspace, state.store, [item], recipient=user.party, kind="log",
                       user=user.username, id_key="index", log=False).items  # fmt: skip
    if not released:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no entry {index} about {user.party}")
    return {**bundle.to_dict(), "log_size": size}


@router.get("/consistency", responses={409: {"description": "unsigned or sizes out of range"}})
def consistency(
    state: StateDep,
    user: UserDep,
    old: Annotated[int, Query(ge=0, le=2**40, description="Size of the tree seen earlier")],
) -> dict[str, Any]:
    """A consistency proof (``atalaya.tlog-consistency/v1``) from an earlier tree size to the newest checkpoint."""
    with open_log(state.workspace, readonly=True) as log:
        text = log.latest_checkpoint()
        if text is None:
            raise HTTPException(status.HTTP_409_CONFLICT, "the log has no signed checkpoint yet")
        new = open_checkpoint(text, log_signer(state.workspace).verifier()).size
        if old > new:
            raise HTTPException(status.HTTP_409_CONFLICT, f"old size {old} is larger than the checkpoint's ({new})")
        cp = log.consistency(old, new)
    return {**cp.to_dict(), "checkpoint": text}
