"""Federation: what partner nodes call (private comparisons, witness cosignatures, retraction receipts)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from atalaya.api.deps import StateDep, UserDep
from atalaya.api.users import User
from atalaya.core.errors import AtalayaError
from atalaya.share.matching.http import b64, unb64
from atalaya.share.matching.service import MatchRefusedError, Responder

router = APIRouter(prefix="/api/federation", tags=["federation"])

_RESPONDER = Responder()
"""This process's half of the comparisons in progress (the second request must reach the same process)."""

MAX_MESSAGE_CHARS = 8_000_000
"""Largest base64 message accepted (a request of the largest list an agreement allows is far smaller)."""


class MatchStart(BaseModel):
    selector: str = Field(max_length=16)
    reveal: str = Field(max_length=16)
    request: str = Field(max_length=MAX_MESSAGE_CHARS)


class MatchAnswer(BaseModel):
    setup: str = Field(max_length=MAX_MESSAGE_CHARS)
    response: str = Field(max_length=MAX_MESSAGE_CHARS)


def _partner_user(state: Any, user: User) -> str:
    if user.party == state.workspace.party:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "comparisons are started by partner nodes; use `atalaya match`")
    if user.role not in ("liaison", "admin"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a partner node signs in as a liaison user")
    return user.party


@router.post("/match")
def match_start(body: MatchStart, state: StateDep, user: UserDep) -> dict[str, Any]:
    """Step 2 of a comparison: answer the partner's request under the agreement's term, and send ours."""
    party = _partner_user(state, user)
    try:
        with state.log_lock:
            r = _RESPONDER.answer(state.workspace, state.store, initiator=party, kind=body.selector,
                                  reveal=body.reveal, request=unb64(body.request, "request"))  # fmt: skip
    except MatchRefusedError as e:
        raise HTTPException(status.HTTP_403_FORBIDDEN, {"detail": e.message, "hint": e.hint}) from e
    return {
        "match_id": r["match_id"],
        "reveal": r["reveal"],
        "agreement": r["agreement"],
        "setup": b64(r["setup"]),
        "response": b64(r["response"]),
        "request": b64(r["request"]),
    }


@router.post("/match/{match_id}/complete")
def match_complete(match_id: str, body: MatchAnswer, state: StateDep, user: UserDep) -> dict[str, Any]:
    """Step 4: the partner's answer to our request; this node learns its result and logs it (not returned)."""
    party = _partner_user(state, user)
    try:
        with state.log_lock:
            out = _RESPONDER.complete(state.workspace, state.store, initiator=party, match_id=match_id[:80],
                                      setup=unb64(body.setup, "setup"),
                                      response=unb64(body.response, "response"))  # fmt: skip
    except MatchRefusedError as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, {"detail": e.message, "hint": e.hint}) from e
    return {"match_id": out.match_id, "log_index": out.log_index}


class CosignatureIn(BaseModel):
    checkpoint: str = Field(max_length=20_000)


class ReceiptIn(BaseModel):
    receipt: str = Field(max_length=20_000)


@router.post("/cosignatures")
def cosignature(body: CosignatureIn, state: StateDep, user: UserDep) -> dict[str, Any]:
    """A partner's witness cosignature of one of this node's checkpoints (published with the checkpoint)."""
    from atalaya.share.federation.witnessing import accept_cosignature

    party = _partner_user(state, user)
    try:
        size = accept_cosignature(state.workspace, state.store, party, body.checkpoint)
    except AtalayaError as e:
        raise HTTPException(422, {"detail": e.message, "hint": e.hint}) from e
    return {"witness": party, "size": size}


@router.post("/receipts")
def receipt(body: ReceiptIn, state: StateDep, user: UserDep) -> dict[str, Any]:
    """A partner's signed receipt of a retraction; appended to this node's log."""
    from atalaya.share.federation.receipts import accept_receipt

    party = _partner_user(state, user)
    try:
        with state.log_lock:
            idx = accept_receipt(state.workspace, state.store, party, body.receipt)
    except AtalayaError as e:
        raise HTTPException(422, {"detail": e.message, "hint": e.hint}) from e
    return {"party": party, "log_index": idx}
