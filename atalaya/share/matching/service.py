"""Private selector comparisons between nodes: the agreement check, the limits, the log — one service.

The CLI (``atalaya selectors``, ``atalaya match``) and the API
(``/api/federation/match``) both call these functions; the wire protocol is in
:mod:`atalaya.share.matching.protocol`, the normal forms in
:mod:`atalaya.share.matching.selectors`.

A comparison is allowed only under an agreement **in force** with a
``matching`` term naming both parties and the selector kind; the term sets what
it reveals (the common items, or only their number), the largest list either
side may submit and how many comparisons one party may start per kind per UTC
day. Each node records every comparison it takes part in, in its ``matches``
table and in its transparency log (kind ``match``: the parties, the kind, the
term, both list sizes, what it learnt and the digest of every message; never an
item), so both sides can show who compared what and when.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select

from atalaya.core.errors import ValidationError
from atalaya.core.markings import Marking
from atalaya.core.workspace import Workspace
from atalaya.share.matching.protocol import Party, message_digest, request_size
from atalaya.share.matching.selectors import KINDS, Normalised, normalise
from atalaya.sovereignty.agreements import AgreementSet, Matching, stored_agreements
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.translog import journal

PENDING_TTL_S = 600.0
"""How long a responder keeps its half of a comparison waiting for the initiator's answer."""


class MatchRefusedError(ValidationError):
    """A comparison the agreements or their limits do not allow."""


@dataclass(frozen=True)
class Term:
    """The matching term a comparison runs under."""

    agreement: str
    """``ID@vN`` of the agreement version in force."""
    term: Matching

    @property
    def reveal(self) -> bool:
        return self.term.reveal == "intersection"


@dataclass
class ImportResult:
    """What :func:`import_selectors` did."""

    kind: str
    added: int = 0
    already: int = 0
    rejects: list[tuple[int, str, str]] = field(default_factory=list)


@dataclass
class Outcome:
    """What this node learnt from a comparison."""

    match_id: str
    selector: str
    reveal: str
    own_items: int
    peer_items: int
    overlap: int
    common: list[str] | None
    """This side's own values found in the peer's list (``None`` when only the size is revealed)."""
    log_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "match_id": self.match_id,
            "selector": self.selector,
            "reveal": self.reveal,
            "own_items": self.own_items,
            "peer_items": self.peer_items,
            "overlap": self.overlap,
            "common": self.common,
            "log_index": self.log_index,
        }


# --------------------------------------------------------------------------- selector lists


def import_selectors(
    store: KnowledgeStore,
    kind: str,
    values: Iterable[str],
    *,
    source: str,
    marking: str = "TLP:AMBER",
    region: str = "MX",
) -> ImportResult:
    """Add values to this node's list of ``kind`` in their normal form; re-importing adds nothing twice."""
    marking = Marking.from_text(marking).to_text()
    values = list(values)
    norm = normalise(kind, values, region=region)
    res = ImportResult(kind=kind, rejects=norm.rejects)
    if not norm.items:
        return res
    now = datetime.now(UTC)
    with store.begin() as conn:
        have: set[str] = set()
        for i in range(0, len(norm.items), 500):
            chunk = norm.items[i : i + 500]
            have.update(
                r[0]
                for r in conn.execute(
                    select(ks.selectors.c.item).where(and_(ks.selectors.c.kind == kind, ks.selectors.c.item.in_(chunk)))
                )
            )
        rows = [
            {
                "kind": kind,
                "item": item,
                "label": str(values[row])[:300],
                "source": source[:300],
                "added_at": now,
                "marking": marking,
            }
            for item, row in zip(norm.items, norm.rows, strict=True)
            if item not in have
        ]
        if rows:
            conn.execute(ks.selectors.insert(), rows)
    res.added, res.already = len(rows), len(norm.items) - len(rows)
    return res


def selector_items(store: KnowledgeStore, kind: str) -> tuple[list[str], list[str]]:
    """``(items, labels)`` of this node's list of ``kind``, in a stable order."""
    with store.begin() as conn:
        rows = conn.execute(
            select(ks.selectors.c.item, ks.selectors.c.label)
            .where(ks.selectors.c.kind == kind)
            .order_by(ks.selectors.c.item)
        ).all()
    return [r.item for r in rows], [r.label or r.item for r in rows]


def selector_counts(store: KnowledgeStore) -> dict[str, int]:
    """How many selectors of each kind this node holds."""
    with store.begin() as conn:
        rows = conn.execute(select(ks.selectors.c.kind, func.count()).group_by(ks.selectors.c.kind)).all()
    return {str(k): int(n) for k, n in rows}


# --------------------------------------------------------------------------- the checks


def term_for(agreements: AgreementSet, own: str, peer: str, kind: str, *, at: datetime | None = None) -> Term:
    """The matching term in force between ``own`` and ``peer`` for ``kind``; refuses when there is none."""
    if kind not in KINDS:
        raise ValidationError(f"unknown selector kind {kind!r}", hint="use one of: " + ", ".join(KINDS))
    found = agreements.matching_term(own, peer, kind, at or datetime.now(UTC))
    if found is None:
        raise MatchRefusedError(
            f"no agreement in force lets {own} and {peer} compare {kind} selectors",
            hint="add a matching term (parties, selectors, reveal) to an agreement both parties signed",
        )
    ag, term = found
    return Term(agreement=f"{ag.id}@v{ag.version}", term=term)


def _check_size(term: Term, n: int, whose: str) -> None:
    if n > term.term.max_items:
        raise MatchRefusedError(
            f"{whose} list has {n} items; the agreement {term.agreement} allows at most {term.term.max_items}",
            hint="compare a shorter list, or amend the agreement's max_items",
        )
    if n == 0:
        raise MatchRefusedError(f"{whose} list is empty", hint="import selectors first: atalaya selectors import")


def _started_today(store: KnowledgeStore, initiator: str, kind: str, now: datetime) -> int:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with store.begin() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(ks.matches)
                .where(
                    and_(
                        ks.matches.c.initiator == initiator,
                        ks.matches.c.selector == kind,
                        ks.matches.c.started_at >= day,
                        ks.matches.c.started_at < day + timedelta(days=1),
                    )
                )
            ).scalar_one()
        )


def _check_rate(store: KnowledgeStore, term: Term, initiator: str, kind: str, now: datetime) -> None:
    n = _started_today(store, initiator, kind, now)
    if n >= term.term.max_per_day:
        raise MatchRefusedError(
            f"{initiator} has started {n} {kind} comparisons today; the agreement {term.agreement} allows "
            f"{term.term.max_per_day} a day",
            hint="try again after midnight UTC",
        )


# --------------------------------------------------------------------------- the record on both sides


def _log(ws: Workspace, store: KnowledgeStore, rec: dict[str, Any]) -> int:
    res = journal.record(ws, store, [rec])
    return int(res["indices"][0])


def _record(
    *,
    match_id: str,
    initiator: str,
    responder: str,
    kind: str,
    term: Term,
    role: str,
    own: int,
    peer: int,
    overlap: int | None,
    digests: dict[str, str],
) -> dict[str, Any]:
    return {
        "kind": "match",
        "id": match_id,
        "initiator": initiator,
        "responder": responder,
        "selector": kind,
        "reveal": term.term.reveal,
        "agreement": term.agreement,
        "role": role,
        "own_items": own,
        "peer_items": peer,
        "overlap": overlap,
        "messages": digests,
        "time": datetime.now(UTC).isoformat(),
    }


def _insert_match(store: KnowledgeStore, row: dict[str, Any]) -> None:
    with store.begin() as conn:
        conn.execute(ks.matches.insert().values(**row))


def _complete_match(store: KnowledgeStore, match_id: str, overlap: int, log_index: int) -> None:
    with store.begin() as conn:
        conn.execute(
            ks.matches.update()
            .where(ks.matches.c.id == match_id)
            .values(overlap=overlap, completed_at=datetime.now(UTC), log_index=log_index)
        )


# --------------------------------------------------------------------------- responder


@dataclass
class _Pending:
    party: Party
    initiator: str
    kind: str
    term: Term
    peer_items: int
    digests: dict[str, str]
    expires: float


class Responder:
    """The responder's half of comparisons, kept in this process between the two requests."""

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    def _expire(self) -> None:
        now = time.monotonic()
        for k in [k for k, p in self._pending.items() if p.expires < now]:
            del self._pending[k]

    def answer(
        self,
        ws: Workspace,
        store: KnowledgeStore,
        *,
        initiator: str,
        kind: str,
        reveal: str,
        request: bytes,
    ) -> dict[str, Any]:
        """Step 2: check the term and limits, answer the initiator's request and send ours."""
        now = datetime.now(UTC)
        term = term_for(stored_agreements(store), ws.party, initiator, kind, at=now)
        if reveal != term.term.reveal:
            raise MatchRefusedError(
                f"the comparison asks to reveal {reveal!r}; "
                f"the agreement {term.agreement} reveals {term.term.reveal!r}",
                hint=f"start it with reveal={term.term.reveal}",
            )
        peer_items = request_size(request)
        _check_size(term, peer_items, f"{initiator}'s")
        _check_rate(store, term, initiator, kind, now)
        items, _ = selector_items(store, kind)
        _check_size(term, len(items), "this node's")
        party = Party(items, reveal=term.reveal)
        try:
            setup, response = party.answer(request)
        except ValidationError as e:
            raise MatchRefusedError(e.message, hint=e.hint) from e
        own_request = party.request()
        match_id = f"match-{uuid.uuid4()}"
        digests = {
            "initiator_request": message_digest(request),
            "responder_setup": message_digest(setup),
            "responder_response": message_digest(response),
            "responder_request": message_digest(own_request),
        }
        _insert_match(store, {"id": match_id, "initiator": initiator, "responder": ws.party, "selector": kind,
                              "reveal": term.term.reveal, "agreement": term.agreement, "role": "responder",
                              "own_items": len(items), "peer_items": peer_items, "started_at": now})  # fmt: skip
        _log(ws, store, _record(match_id=match_id, initiator=initiator, responder=ws.party, kind=kind, term=term,
                                role="responder", own=len(items), peer=peer_items, overlap=None,
                                digests=digests))  # fmt: skip
        with self._lock:
            self._expire()
            self._pending[match_id] = _Pending(party, initiator, kind, term, peer_items, digests,
                                               time.monotonic() + PENDING_TTL_S)  # fmt: skip
        return {
            "match_id": match_id,
            "reveal": term.term.reveal,
            "agreement": term.agreement,
            "setup": setup,
            "response": response,
            "request": own_request,
        }

    def complete(
        self, ws: Workspace, store: KnowledgeStore, *, initiator: str, match_id: str, setup: bytes, response: bytes
    ) -> Outcome:
        """Step 4: the initiator's answer to our request gives this node its result."""
        with self._lock:
            self._expire()
            pending = self._pending.get(match_id)
            if pending is None or pending.initiator != initiator:
                raise MatchRefusedError(
                    f"no comparison {match_id!r} is waiting for {initiator}",
                    hint=f"it may have expired ({PENDING_TTL_S:.0f} s); start a new one",
                )
            del self._pending[match_id]
        return _finish(ws, store, pending.party, match_id=match_id, initiator=initiator, responder=ws.party,
                       kind=pending.kind, term=pending.term, role="responder", peer_items=pending.peer_items,
                       setup=setup, response=response, digests=pending.digests, insert=False)  # fmt: skip


def _finish(
    ws: Workspace,
    store: KnowledgeStore,
    party: Party,
    *,
    match_id: str,
    initiator: str,
    responder: str,
    kind: str,
    term: Term,
    role: str,
    peer_items: int,
    setup: bytes,
    response: bytes,
    digests: dict[str, str],
    insert: bool,
    labels: list[str] | None = None,
) -> Outcome:
    got = party.result(setup, response)
    side = "responder" if role == "initiator" else "initiator"
    digests = {**digests, f"{side}_setup": message_digest(setup), f"{side}_response": message_digest(response)}
    overlap = len(got) if isinstance(got, list) else int(got)
    common = None
    if isinstance(got, list):
        names = labels if labels is not None else selector_items(store, kind)[1]
        common = [names[i] for i in got]
    if insert:
        _insert_match(store, {"id": match_id, "initiator": initiator, "responder": responder, "selector": kind,
                              "reveal": term.term.reveal, "agreement": term.agreement, "role": role,
                              "own_items": len(party.items), "peer_items": peer_items,
                              "started_at": datetime.now(UTC)})  # fmt: skip
    idx = _log(ws, store, _record(match_id=match_id, initiator=initiator, responder=responder, kind=kind, term=term,
                                  role=role, own=len(party.items), peer=peer_items, overlap=overlap,
                                  digests=digests))  # fmt: skip
    _complete_match(store, match_id, overlap, idx)
    return Outcome(match_id=match_id, selector=kind, reveal=term.term.reveal, own_items=len(party.items),
                   peer_items=peer_items, overlap=overlap, common=common, log_index=idx)  # fmt: skip


# --------------------------------------------------------------------------- initiator


class Transport:
    """How the initiator reaches the responder (HTTP in production, in-process in tests)."""

    def answer(self, *, kind: str, reveal: str, request: bytes) -> dict[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def complete(self, *, match_id: str, setup: bytes, response: bytes) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError


def compare(
    ws: Workspace,
    store: KnowledgeStore,
    transport: Transport,
    *,
    partner: str,
    kind: str,
    values: list[str] | None = None,
    region: str = "MX",
) -> Outcome:
    """Run one comparison with ``partner`` as initiator: this node's list (or ``values``) against theirs."""
    partner = partner.upper()
    now = datetime.now(UTC)
    term = term_for(stored_agreements(store), ws.party, partner, kind, at=now)
    if values is None:
        items, labels = selector_items(store, kind)
    else:
        norm: Normalised = normalise(kind, values, region=region)
        items, labels = norm.items, [values[r] for r in norm.rows]
    _check_size(term, len(items), "this node's")
    _check_rate(store, term, ws.party, kind, now)
    party = Party(items, reveal=term.reveal)
    request = party.request()
    reply = transport.answer(kind=kind, reveal=term.term.reveal, request=request)
    match_id = str(reply["match_id"])
    digests = {
        "initiator_request": message_digest(request),
        "responder_request": message_digest(reply["request"]),
    }
    peer_items = request_size(reply["request"])
    _check_size(term, peer_items, f"{partner}'s")
    setup, response = party.answer(reply["request"])
    digests.update(initiator_setup=message_digest(setup), initiator_response=message_digest(response))
    out = _finish(ws, store, party, match_id=match_id, initiator=ws.party, responder=partner, kind=kind, term=term,
                  role="initiator", peer_items=peer_items, setup=reply["setup"], response=reply["response"],
                  digests=digests, insert=True, labels=labels)  # fmt: skip
    transport.complete(match_id=match_id, setup=setup, response=response)
    return out
