"""Cosignatures this node receives from its partners' witnesses, and the checkpoints it publishes with them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from atalaya.core.errors import ValidationError
from atalaya.core.workspace import Workspace
from atalaya.share.federation.partners import get_partner
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.translog import NoteVerifier, open_checkpoint
from atalaya.store.translog.node import log_signer


def accept_cosignature(ws: Workspace, store: KnowledgeStore, party: str, text: str) -> int:
    """Check that ``text`` is one of this node's checkpoints cosigned by ``party``'s registered witness; keep it."""
    p = get_partner(store, party)
    if not p.witness_key:
        raise ValidationError(
            f"no witness key registered for {p.party}",
            hint=f"atalaya partners add {p.party} URL --key … --witness-key (their `log export-key --witness`)",
        )
    cp = open_checkpoint(text, log_signer(ws).verifier(), witnesses=(NoteVerifier.from_vkey(p.witness_key),))
    with store.begin() as conn:
        c = ks.cosignatures.c
        have = conn.execute(select(c.size).where(c.witness == p.party, c.size == cp.size)).first()
        if have is None:
            conn.execute(ks.cosignatures.insert().values(witness=p.party, size=cp.size, checkpoint=text,
                                                         received_at=datetime.now(UTC)))  # fmt: skip
    return cp.size


def cosignatures(store: KnowledgeStore, size: int) -> list[dict[str, object]]:
    """The witness cosignatures received for this node's checkpoint of ``size``."""
    c = ks.cosignatures.c
    with store.begin() as conn:
        rows = conn.execute(select(c.witness, c.checkpoint).where(c.size == size).order_by(c.witness)).all()
    return [{"witness": r.witness, "checkpoint": r.checkpoint} for r in rows]
