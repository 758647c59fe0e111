"""Retractions and their receipts: the originator can prove who acknowledged each retraction, and who has not.

The originator retracts an object (:func:`retract_object`): a new version with
``revoked: true`` goes to every partner collection that holds it (so each
recipient's next sync sees it, through the same verified publication path as
any object) and a ``retraction`` entry (object, reason, recipients) goes to its
log. The recipient hides the versions it holds (kept for audit) and answers
with a **receipt**: a signed note, by the recipient node's log key::

    atalaya-receipt/v1
    origin USA
    object x-atalaya-site--…
    version 2026-12-08T01:02:03.000000Z
    received 2026-12-08T01:05:00.123456+00:00

which the originator checks under the recipient's pinned key and appends to its
own log (kind ``receipt``). :func:`retraction_status` lists, per retraction,
who has acknowledged it and who has not.

>>> receipt_body(origin="USA", stix_id="x--1", version="v", received="t")
'atalaya-receipt/v1\\norigin USA\\nobject x--1\\nversion v\\nreceived t\\n'
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from atalaya.core.errors import ValidationError
from atalaya.core.workspace import Workspace
from atalaya.share import taxii_store
from atalaya.share.federation.partners import get_partner
from atalaya.share.federation.publish import _entries, object_digest
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.translog import journal
from atalaya.store.translog.checkpoint import SignedNote, sign_note, verify_note
from atalaya.store.translog.node import log_signer, open_log

HEADER = "atalaya-receipt/v1"


def receipt_body(*, origin: str, stix_id: str, version: str, received: str) -> str:
    """The text a receipt signs."""
    return f"{HEADER}\norigin {origin}\nobject {stix_id}\nversion {version}\nreceived {received}\n"


def sign_receipt(ws: Workspace, *, origin: str, stix_id: str, version: str, at: datetime) -> str:
    """A receipt for a retraction, signed with this node's log key."""
    body = receipt_body(origin=origin, stix_id=stix_id, version=version, received=at.isoformat())
    return sign_note(body, log_signer(ws)).text()


def read_receipt(text: str) -> tuple[SignedNote, dict[str, str]]:
    """Parse a receipt's note and fields (not yet verified)."""
    note = SignedNote.parse(text)
    lines = note.body.rstrip("\n").split("\n")
    if not lines or lines[0] != HEADER:
        raise ValidationError("not a retraction receipt", hint=f"the note must start with {HEADER!r}")
    fields = dict(ln.split(" ", 1) for ln in lines[1:] if " " in ln)
    for key in ("origin", "object", "version", "received"):
        if key not in fields:
            raise ValidationError(f"the receipt has no {key!r} line")
    return note, fields


def accept_receipt(ws: Workspace, store: KnowledgeStore, party: str, text: str) -> int:
    """Check a partner's receipt under its pinned key and append it to this node's log; the log index."""
    note, fields = read_receipt(text)
    if fields["origin"] != ws.party:
        raise ValidationError(f"the receipt acknowledges a retraction by {fields['origin']}, not by {ws.party}")
    verify_note(note, get_partner(store, party).verifier)
    rec = {"kind": "receipt", "id": f"{fields['object']}|{party}", "party": party, "object": fields["object"],
           "version": fields["version"], "received": fields["received"], "receipt": text}  # fmt: skip
    return int(journal.record(ws, store, [rec])["indices"][0])


def retract_object(ws: Workspace, store: KnowledgeStore, stix_id: str, *, reason: str, user: str) -> dict[str, Any]:
    """Retract one shared object everywhere it was published (see the module doc)."""
    if not reason.strip():
        raise ValidationError("a retraction needs a reason", hint="say why, e.g. --reason 'misidentified site'")
    t = ks.stix_objects.c
    with store.begin() as conn:
        rows = conn.execute(
            select(t.collection_id, t.body, t.kind, t.marking, t.about)
            .where(t.stix_id == stix_id, t.is_latest.is_(True), t.retracted_at.is_(None))
        ).all()  # fmt: skip
    if not rows:
        raise ValidationError(f"{stix_id} is not published to any partner", hint="see `atalaya share published`")
    now = taxii_store.format_timestamp(int(datetime.now(UTC).timestamp() * 1_000_000))
    recipients: list[str] = []
    entries: list[dict[str, Any]] = []
    for r in rows:
        obj = json.loads(r.body)
        if obj.get("revoked") is True:
            continue
        obj.update(revoked=True, modified=now)
        coll = taxii_store.get_collection(store, r.collection_id)
        if coll is None:  # pragma: no cover - the foreign key keeps them together
            continue
        taxii_store.publish(store, coll, [obj], kind=r.kind, marking=r.marking, about=r.about)
        recipients.append(coll.party)
        entries += _entries(ws, coll.party, coll.id, r.kind, [(stix_id, now, object_digest(obj))])
    if not entries:
        raise ValidationError(f"{stix_id} is already retracted")
    entries.append({"kind": "retraction", "id": stix_id, "version": now, "reason": reason.strip()[:500],
                    "recipients": sorted(set(recipients)), "user": user})  # fmt: skip
    got = journal.record(ws, store, entries)
    return {"object": stix_id, "version": now, "recipients": sorted(set(recipients)), "log_index": got["indices"][-1]}


def retraction_status(ws: Workspace) -> list[dict[str, Any]]:
    """Each retraction in this node's log: who it went to, who acknowledged it (receipt log index), who has not."""
    with open_log(ws, readonly=True) as log:
        entries = [log.get(i) for i in range(log.size)]
    receipts: dict[tuple[str, str], int] = {}
    for i, e in enumerate(entries):
        if e.get("kind") == "receipt":
            receipts[(str(e.get("object")), str(e.get("party")))] = i
    out = []
    for i, e in enumerate(entries):
        if e.get("kind") != "retraction":
            continue
        sid = str(e.get("id"))
        acked = {p: receipts[(sid, p)] for p in e.get("recipients") or [] if (sid, p) in receipts}
        out.append({"object": sid, "log_index": i, "reason": e.get("reason"), "recipients": e.get("recipients"),
                    "acknowledged": acked,
                    "pending": [p for p in e.get("recipients") or [] if p not in acked]})  # fmt: skip
    return out
