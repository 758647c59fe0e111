"""The egress chokepoint: every release to another party passes :meth:`EgressPolicy.check`.

Deny by default. A release of an object to a recipient party is allowed when

1. the recipient is this node's own party (internal use), or
2. the object's marking makes it releasable to the recipient
   (:meth:`Marking.releasable`), **and** an agreement in force has a sharing
   term from this party to the recipient that covers the product kind, allows
   the marking's TLP level, and every caveat the term makes mandatory is on
   the marking.

Each allowed release to another party is recorded as a ``dissemination``
entry in the transparency log (:func:`record_dissemination`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from atalaya.core.markings import TLP, Caveat, Marking
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks


@dataclass(frozen=True, kw_only=True)
class SharingTerm:
    """One sharing term of an agreement: what may go from one party to another."""

    agreement_id: str
    """Agreement id."""
    version: int
    """Agreement version."""
    sender: str
    """Releasing party."""
    recipient: str
    """Receiving party."""
    max_tlp: TLP
    """Highest TLP level that may be released."""
    caveats: tuple[Caveat, ...] = ()
    """Caveats that must be on the marking."""
    products: tuple[str, ...] = ()
    """Product kinds covered (empty: all)."""
    effective_from: datetime | None = None
    """Start of the agreement's effect."""
    effective_to: datetime | None = None
    """End of the agreement's effect."""


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The outcome of an egress check."""

    allowed: bool
    """Whether the release may happen."""
    reason: str
    """Why (always filled, also when allowed)."""
    term: SharingTerm | None = None
    """The sharing term that allowed it."""


def _aware(t: datetime | None) -> datetime | None:
    if t is None or t.tzinfo is not None:
        return t
    return t.replace(tzinfo=UTC)


def terms_from_documents(
    docs: Iterable[tuple[str, int, dict[str, Any], datetime | None, datetime | None]],
) -> list[SharingTerm]:
    """Sharing terms from agreement documents ``(id, version, document, effective_from, effective_to)``."""
    out: list[SharingTerm] = []
    for aid, version, doc, t0, t1 in docs:
        for s in doc.get("sharing", []) or []:
            try:
                out.append(
                    SharingTerm(
                        agreement_id=aid,
                        version=version,
                        sender=str(s["from"]).upper(),
                        recipient=str(s["to"]).upper(),
                        max_tlp=TLP.parse(str(s.get("max_tlp", "AMBER"))),
                        caveats=tuple(Caveat(c) for c in s.get("caveats", []) or []),
                        products=tuple(str(p) for p in s.get("products", []) or []),
                        effective_from=_aware(t0),
                        effective_to=_aware(t1),
                    )
                )
            except (KeyError, ValueError):
                continue  # agreements are schema-validated on load; skip a malformed term rather than fail open
    return out


@dataclass(kw_only=True)
class EgressPolicy:
    """Deny-by-default release policy of one node."""

    node_party: str
    """This node's party."""
    terms: list[SharingTerm] = field(default_factory=list)
    """Sharing terms of the agreements in force."""

    @classmethod
    def from_store(cls, store: KnowledgeStore, node_party: str) -> EgressPolicy:
        """Load the sharing terms of all non-superseded agreement versions."""
        with store.engine.connect() as conn:
            rows = conn.execute(
                select(
                    ks.agreements.c.id,
                    ks.agreements.c.version,
                    ks.agreements.c.document,
                    ks.agreements.c.effective_from,
                    ks.agreements.c.effective_to,
                    ks.agreements.c.status,
                )
            ).all()
        latest: dict[str, Any] = {}
        for r in rows:
            if r.status in ("withdrawn", "superseded"):
                continue
            if r.id not in latest or r.version > latest[r.id].version:
                latest[r.id] = r
        docs = [(r.id, r.version, r.document, r.effective_from, r.effective_to) for r in latest.values()]
        return cls(node_party=node_party.upper(), terms=terms_from_documents(docs))

    def check(self, marking: Marking, recipient: str, *, kind: str, at: datetime | None = None) -> Decision:
        """May an object with ``marking`` of product ``kind`` go to ``recipient`` now?"""
        rcpt = recipient.upper()
        if rcpt == self.node_party:
            return Decision(allowed=True, reason="internal: recipient is this node's party")
        if not marking.releasable(rcpt):
            return Decision(allowed=False, reason=f"marking {marking.to_text()} is not releasable to {rcpt}")
        now = at or datetime.now(UTC)
        reasons = []
        for t in self.terms:
            if t.sender != self.node_party or t.recipient != rcpt:
                continue
            if (t.effective_from and now < t.effective_from) or (t.effective_to and now > t.effective_to):
                reasons.append(f"{t.agreement_id} v{t.version} not in effect")
                continue
            if t.products and kind not in t.products:
                reasons.append(f"{t.agreement_id} v{t.version} does not cover {kind!r}")
                continue
            if marking.tlp > t.max_tlp:
                reasons.append(f"{t.agreement_id} v{t.version} allows at most TLP:{t.max_tlp.label}")
                continue
            missing = [c.value for c in t.caveats if c not in marking.caveats]
            if missing:
                reasons.append(f"{t.agreement_id} v{t.version} requires caveat(s) {', '.join(missing)}")
                continue
            return Decision(allowed=True, reason=f"released under {t.agreement_id} v{t.version}", term=t)
        detail = "; ".join(reasons) if reasons else f"no agreement shares {kind!r} from {self.node_party} to {rcpt}"
        return Decision(allowed=False, reason=f"denied by default: {detail}")

    def filter(
        self, items: Sequence[Any], markings: Sequence[Marking], recipient: str, *, kind: str
    ) -> tuple[list[Any], int]:
        """Items releasable to ``recipient``, and how many were withheld."""
        kept = [it for it, mk in zip(items, markings, strict=True) if self.check(mk, recipient, kind=kind).allowed]
        return kept, len(items) - len(kept)


def content_sha256(payload: Any) -> str:
    """SHA-256 of the canonical JSON of a released payload."""
    data = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(data).hexdigest()


def dissemination_entry(
    *, sender: str, recipient: str, kind: str, object_ids: Sequence[str], sha256: str, decision: Decision, user: str
) -> dict[str, Any]:
    """The transparency-log leaf recording one release."""
    return {
        "kind": "dissemination",
        "sender": sender,
        "recipient": recipient,
        "product_kind": kind,
        "objects": len(object_ids),
        "objects_sha256": hashlib.sha256("\n".join(sorted(object_ids)).encode()).hexdigest(),
        "content_sha256": sha256,
        "basis": decision.term.agreement_id if decision.term else None,
        "basis_version": decision.term.version if decision.term else None,
        "user": user,
        "time": datetime.now(UTC).isoformat(),
    }
