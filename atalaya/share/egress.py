"""The egress chokepoint: the one way anything leaves this node for another party.

Two parts, as a policy decision point and its enforcement:

* :meth:`EgressPolicy.decide` — pure: may an item with this marking, of this
  product kind, about these parties, go to this recipient at this time? It
  always answers with a :class:`Decision` carrying the rule and the reason.
* :func:`release` — the enforcement every path calls (API responses, file
  exports, partner reports, log entries): decides each item, strips what the
  caveats forbid (``SOURCE-PROTECT``), hands the released items to a
  :class:`Sink`, and records the release as **one** ``dissemination`` entry in
  the transparency log per call (the same content to the same user is not
  recorded twice), covered by a signed checkpoint.

The rules, in order (deny by default):

1. the recipient is this node's own party → internal use;
2. an **accountability** record (sorties, their accounting and verdicts,
   partner reports, log entries) about the recipient's territory → always
   released to it: accountability is not a product that can be withheld;
3. the item's marking must make it releasable to the recipient
   (:meth:`Marking.releasable`);
4. an agreement **version in force at release time** (the same
   :class:`~atalaya.sovereignty.agreements.AgreementSet` the compliance engine
   uses) must hold a sharing term from this party to the recipient covering
   the product kind, allowing the marking's TLP, with every caveat the term
   makes mandatory on the marking. Sharing terms last as long as the
   agreement's effective period, which can outlive its collection windows.

>>> from atalaya.core.markings import TLP, Marking
>>> pol = EgressPolicy(node_party="USA", agreements=AgreementSet())
>>> pol.decide(Marking(tlp=TLP.GREEN, releasable_to=("MEX",), originator="USA"), "MEX", kind="sites").allowed
False
>>> pol.decide(Marking(), "MEX", kind="sorties", about=("MEX",)).rule
'accountability'
>>> pol.decide(Marking(), "usa", kind="sites").rule
'internal'
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from atalaya.core.errors import ValidationError
from atalaya.core.markings import DEFAULT_MARKING, TLP, Caveat, Marking
from atalaya.core.workspace import Workspace
from atalaya.sovereignty.agreements import AgreementSet, stored_agreements
from atalaya.store.knowledge import KnowledgeStore

ACCOUNTABILITY_KINDS = frozenset({"sorties", "verdicts", "reports", "log"})
"""Product kinds that are the collector's accountability records: always visible to the party they concern."""

SOURCE_KEYS = frozenset(
    {"source", "sources", "sensor", "sensors", "observations", "observation_ids", "sortie_id", "sortie_ids",
     "platform_id", "platform_ids", "unit_id", "path"}
)  # fmt: skip
"""Keys that name sources and methods; removed from items marked ``SOURCE-PROTECT`` before they leave."""


@dataclass(frozen=True, kw_only=True)
class SharingTerm:
    """One sharing term of an agreement version: what may go from one party to another."""

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


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The outcome of one egress decision."""

    allowed: bool
    """Whether the release may happen."""
    rule: str
    """Which rule decided: ``internal``, ``accountability``, ``sharing``, ``marking``, ``no-agreement``,
    ``product``, ``tlp``, ``caveat``."""
    reason: str
    """Why, in words a user can act on (always filled, also when allowed)."""
    term: SharingTerm | None = None
    """The sharing term that allowed it."""


def _terms(agreements: AgreementSet, sender: str, recipient: str, at: datetime) -> list[SharingTerm]:
    out = []
    for aid in agreements.ids():
        a = agreements.in_force(aid, at)
        if a is None:
            continue
        for s in a.sharing:
            if s.from_party.upper() != sender or s.to_party.upper() != recipient:
                continue
            caveats = []
            for c in s.caveats:
                try:
                    caveats.append(Caveat(c))
                except ValueError:  # an unknown mandatory caveat can never be met: keep it unmeetable
                    caveats.append(Caveat.NO_FURTHER_DISSEMINATION)
            out.append(
                SharingTerm(agreement_id=a.id, version=a.version, sender=sender, recipient=recipient,
                            max_tlp=s.max_tlp, caveats=tuple(caveats), products=tuple(s.products))
            )  # fmt: skip
    return out


@dataclass(kw_only=True)
class EgressPolicy:
    """Deny-by-default release policy of one node over its agreement set."""

    node_party: str
    """This node's party."""
    agreements: AgreementSet = field(default_factory=AgreementSet)
    """Every stored agreement version (the version in force is picked per release time)."""

    _terms_memo: dict[tuple[str, datetime], list[SharingTerm]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.node_party = self.node_party.upper()

    def _terms_at(self, recipient: str, at: datetime) -> list[SharingTerm]:
        """The terms in force, computed once per (recipient, time): a release decides every item at one time."""
        key = (recipient, at)
        hit = self._terms_memo.get(key)
        if hit is None:
            if len(self._terms_memo) > 64:
                self._terms_memo.clear()
            hit = self._terms_memo[key] = _terms(self.agreements, self.node_party, recipient, at)
        return hit

    @classmethod
    def from_store(cls, store: KnowledgeStore, node_party: str) -> EgressPolicy:
        """The policy over the agreements stored in the knowledge store."""
        return cls(node_party=node_party, agreements=stored_agreements(store))

    def terms(self, recipient: str, at: datetime | None = None) -> list[SharingTerm]:
        """Sharing terms in force at ``at`` (default now) from this node's party to ``recipient``."""
        return self._terms_at(recipient.upper(), at or datetime.now(UTC))

    def decide(
        self,
        marking: Marking,
        recipient: str,
        *,
        kind: str,
        about: Sequence[str] = (),
        at: datetime | None = None,
    ) -> Decision:
        """May an item with ``marking``, of product ``kind``, concerning the parties ``about``, go to ``recipient``?"""
        rcpt = recipient.upper()
        if rcpt == self.node_party:
            return Decision(allowed=True, rule="internal", reason="internal: the recipient is this node's party")
        if kind in ACCOUNTABILITY_KINDS and rcpt in {p.upper() for p in about}:
            return Decision(
                allowed=True,
                rule="accountability",
                reason=f"accountability: a record of collection over {rcpt} is always visible to {rcpt}",
            )
        if not marking.releasable(rcpt):
            return Decision(
                allowed=False, rule="marking", reason=f"marking {marking.to_text()} is not releasable to {rcpt}"
            )
        when = at or datetime.now(UTC)
        terms = self._terms_at(rcpt, when)
        if not terms:
            return Decision(
                allowed=False,
                rule="no-agreement",
                reason=f"no agreement in force on {when:%Y-%m-%d} lets {self.node_party} share with {rcpt}",
            )
        reasons: list[tuple[str, str]] = []
        for t in terms:
            tag = f"{t.agreement_id} v{t.version}"
            if t.products and kind not in t.products:
                reasons.append(("product", f"{tag} does not cover {kind!r}"))
                continue
            if marking.tlp > t.max_tlp:
                reasons.append(("tlp", f"{tag} allows at most TLP:{t.max_tlp.label}, the item is {marking.tlp.label}"))
                continue
            missing = [c.value for c in t.caveats if c not in marking.caveats]
            if missing:
                reasons.append(("caveat", f"{tag} requires caveat(s) {', '.join(missing)}"))
                continue
            return Decision(allowed=True, rule="sharing", reason=f"released under {tag}", term=t)
        return Decision(allowed=False, rule=reasons[0][0], reason="; ".join(r for _, r in reasons))


def known_parties(store: KnowledgeStore, policy: EgressPolicy) -> set[str]:
    """Parties this node knows: its own, those in the ``parties`` table and those named by an agreement."""
    from sqlalchemy import select

    from atalaya.store.knowledge import schema as ks

    with store.engine.connect() as conn:
        out = {str(p).upper() for (p,) in conn.execute(select(ks.parties.c.id))}
    out |= {p.upper() for a in policy.agreements.all() for p in a.parties}
    out.add(policy.node_party)
    return out


def require_party(store: KnowledgeStore, policy: EgressPolicy, party: str) -> str:
    """``party`` upper-cased, or a :class:`ValidationError` naming the parties this node knows."""
    code = party.strip().upper()
    known = known_parties(store, policy)
    if code not in known:
        raise ValidationError(
            f"unknown party {party!r}",
            hint=f"known parties: {', '.join(sorted(known))} (load its agreement or `atalaya records import` first)",
        )
    return code


# --------------------------------------------------------------------------- enforcement


def protect_sources(value: Any) -> Any:
    """A copy of ``value`` without the keys that name sources and methods (:data:`SOURCE_KEYS`).

    >>> protect_sources({"score": 1, "provenance": {"sources": ["EO"], "n_support": 3}, "groups": [{"sensor": "IR"}]})
    {'score': 1, 'provenance': {'n_support': 3}, 'groups': [{}]}
    """
    if isinstance(value, Mapping):
        return {k: protect_sources(v) for k, v in value.items() if k not in SOURCE_KEYS}
    if isinstance(value, list | tuple):
        return [protect_sources(v) for v in value]
    return value


class Sink(Protocol):
    """Where released items go; returns the bytes that left (their hash goes into the log)."""

    def deliver(self, items: list[dict[str, Any]]) -> bytes:
        """Deliver the released items."""
        ...


@dataclass(kw_only=True)
class ResponseSink:
    """An HTTP response body: the caller sends :attr:`items`."""

    items: list[dict[str, Any]] = field(default_factory=list)
    """What was delivered."""

    def deliver(self, items: list[dict[str, Any]]) -> bytes:
        self.items = items
        return json.dumps(items, sort_keys=True, separators=(",", ":"), default=str).encode()


@dataclass(kw_only=True)
class FileSink:
    """A file written atomically from the released items by ``render``."""

    path: Path
    """The file."""
    render: Callable[[list[dict[str, Any]]], str | bytes]
    """Turns the released items into the file's content."""

    def deliver(self, items: list[dict[str, Any]]) -> bytes:
        data = self.render(items)
        raw = data.encode("utf-8") if isinstance(data, str) else data
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(raw)
        tmp.replace(self.path)
        return raw


@dataclass(frozen=True, kw_only=True)
class Release:
    """What one release let out and what it held back, with the reasons."""

    recipient: str
    """Receiving party."""
    kind: str
    """Product kind."""
    items: list[dict[str, Any]]
    """Released items (as delivered: caveats enforced)."""
    withheld: list[dict[str, Any]]
    """``{"id", "rule", "reason"}`` per withheld item."""
    log_index: int | None
    """Index of the dissemination entry (``None``: internal, or nothing released)."""
    content_sha256: str | None
    """Hash of the delivered bytes."""

    @property
    def why_empty(self) -> str | None:
        """Why nothing was released (``None`` when something was)."""
        if self.items:
            return None
        if not self.withheld:
            return f"nothing to release: there are no {self.kind} yet"
        reasons = sorted({w["reason"] for w in self.withheld})
        return f"{len(self.withheld)} withheld: " + "; ".join(reasons[:3]) + ("; …" if len(reasons) > 3 else "")

    def to_dict(self) -> dict[str, Any]:
        """Figures only (not the items)."""
        return {
            "recipient": self.recipient,
            "kind": self.kind,
            "released": len(self.items),
            "withheld": len(self.withheld),
            "withheld_reasons": sorted({w["reason"] for w in self.withheld}),
            "log_index": self.log_index,
            "content_sha256": self.content_sha256,
            "why_empty": self.why_empty,
        }


def _marking_of(item: Mapping[str, Any]) -> Marking:
    text = item.get("marking")
    return _parse_marking(str(text)) if text else DEFAULT_MARKING


@functools.lru_cache(maxsize=1024)
def _parse_marking(text: str) -> Marking:
    """A marking text parsed once (a release carries thousands of items under a handful of markings)."""
    try:
        return Marking.from_text(text)
    except ValueError:  # an unreadable marking is the most restrictive case: nothing leaves under it
        return DEFAULT_MARKING


def _about_of(item: Mapping[str, Any]) -> Sequence[str]:
    about = item.get("audience") or item.get("hosts") or ()
    return [str(p) for p in about] if isinstance(about, list | tuple) else [str(about)]


def dissemination_entry(
    *, sender: str, recipient: str, kind: str, purpose: str, object_ids: Sequence[str], sha256: str,
    basis: Sequence[str], user: str,
) -> dict[str, Any]:  # fmt: skip
    """The transparency-log leaf recording one release (one per request or command)."""
    return {
        "kind": "dissemination",
        "sender": sender,
        "recipient": recipient,
        "product_kind": kind,
        "purpose": purpose,
        "objects": len(object_ids),
        "objects_sha256": hashlib.sha256("\n".join(sorted(object_ids)).encode()).hexdigest(),
        "content_sha256": sha256,
        "basis": sorted(set(basis)),
        "user": user,
        "time": datetime.now(UTC).isoformat(),
    }


def release(
    ws: Workspace,
    store: KnowledgeStore,
    items: Sequence[Mapping[str, Any]],
    *,
    recipient: str,
    kind: str,
    user: str,
    purpose: str = "intelligence",
    sink: Sink | None = None,
    policy: EgressPolicy | None = None,
    at: datetime | None = None,
    id_key: str = "id",
    log: bool = True,
) -> Release:
    """Release ``items`` of product ``kind`` to ``recipient`` through the egress chokepoint.

    Each item carries its ``marking`` (canonical text; missing or unreadable: the
    default, which nothing may receive) and, for accountability kinds, the
    parties it concerns (``audience`` or ``hosts``). Released items leave with
    their marking (its caveats travel with them); ``SOURCE-PROTECT`` strips source
    identities. A release to another party is logged (see the module doc).
    """
    rcpt = recipient.upper()
    pol = policy or EgressPolicy.from_store(store, ws.party)
    when = at or datetime.now(UTC)
    out: list[dict[str, Any]] = []
    withheld: list[dict[str, Any]] = []
    basis: list[str] = []
    for it in items:
        mk = _marking_of(it)
        d = pol.decide(mk, rcpt, kind=kind, about=_about_of(it), at=when)
        if not d.allowed:
            withheld.append({"id": str(it.get(id_key)), "rule": d.rule, "reason": d.reason})
            continue
        item = dict(it)
        if d.rule != "internal":
            item["marking"] = mk.to_text()
            if Caveat.SOURCE_PROTECT in mk.caveats:
                item = protect_sources(item)
        basis.append(f"{d.term.agreement_id}@v{d.term.version}" if d.term else d.rule)
        out.append(item)
    sink = sink or ResponseSink()
    raw = sink.deliver(out)
    sha = hashlib.sha256(raw).hexdigest()
    log_index = None
    if log and out and rcpt != pol.node_party:
        from atalaya.store.translog.journal import record

        entry = dissemination_entry(
            sender=pol.node_party, recipient=rcpt, kind=kind, purpose=purpose,
            object_ids=[str(it.get(id_key)) for it in out], sha256=sha, basis=basis, user=user,
        )  # fmt: skip
        log_index = record(ws, store, [entry])["indices"][0]
    return Release(recipient=rcpt, kind=kind, items=out, withheld=withheld, log_index=log_index, content_sha256=sha)
