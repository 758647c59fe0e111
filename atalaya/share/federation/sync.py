"""``atalaya sync``: pull what a partner node shared since the last cursor, proving each object in its log.

The cursor is the partner's transparency-log size this node last verified. A sync

1. asks for the partner's newest signed checkpoint (one small request): the same
   size and text as last time means nothing new, and the sync stops there;
2. otherwise checks the checkpoint's signature under the partner's **pinned**
   key, and, as a **witness**, that the new tree extends the one it saw before
   (a consistency proof: a rolled-back or forked log is refused, loudly); it
   cosigns the checkpoint and hands the cosignature back, so the partner can
   publish checkpoints its partners have witnessed;
3. reads the ``publication`` entries added since the cursor, each with its
   inclusion proof under that checkpoint: they list ``[id, version, sha256]`` of
   every object the partner made available to this party;
4. pages through the partner's TAXII collections for this party from each
   collection's own ``added_after`` cursor, and keeps an object only when a
   verified publication entry lists its id, version and digest (one that does
   not — yet — is fetched again next time); a ``revoked`` object retracts the
   versions held (hidden from users, kept for audit) and sends the partner a
   receipt signed with this node's key, which it appends to its own log.

Everything stored carries its origin (the partner), its markings as read from
STIX (TLP 2.0 / ACS 3.0; unknown markings: most restrictive) and the log index
of the publication entry that proves it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, select, update

from atalaya.core.errors import AtalayaError, LogIntegrityError
from atalaya.core.workspace import Workspace
from atalaya.share.federation.client import PartnerClient
from atalaya.share.federation.partners import Partner, get_partner
from atalaya.share.federation.publish import object_digest
from atalaya.share.federation.receipts import sign_receipt
from atalaya.share.stix import marking_from_refs
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.translog import ProofBundle, open_checkpoint, verify_bundle
from atalaya.store.translog.bundle import ConsistencyProof
from atalaya.store.translog.node import witness_for

TAXII = "application/taxii+json;version=2.1"
PAGE = 1000


@dataclass
class SyncResult:
    """What one sync with one partner did."""

    partner: str
    nothing_new: bool = False
    log_size_before: int = 0
    log_size: int = 0
    publications: int = 0
    """Publication entries verified."""
    received: int = 0
    """New object versions stored."""
    unverified: int = 0
    """Objects not (yet) listed by a verified publication entry: fetched again next time."""
    retracted: int = 0
    """Object versions retracted by the originator, hidden now."""
    receipts: int = 0
    cosigned: bool = False
    requests: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Counted:
    """The partner client, counting requests (a sync with nothing new must be one)."""

    def __init__(self, client: PartnerClient, res: SyncResult) -> None:
        self.client, self.res = client, res

    def get(self, path: str, **params: Any) -> Any:
        self.res.requests += 1
        return self.client.get_json(path, **params)

    def get_taxii(self, url: str, **params: Any) -> tuple[dict[str, Any], Mapping[str, str]]:
        self.res.requests += 1
        r = self.client.request("GET", url, params=params, headers={"Accept": TAXII})
        body = r.json()
        return (body if isinstance(body, dict) else {}), r.headers

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.res.requests += 1
        return self.client.post_json(path, body)


def _publications(api: _Counted, p: Partner, after: int, checkpoint: str) -> dict[tuple[str, str], tuple[str, int]]:
    """``{(id, version): (sha256, log index)}`` of the verified publication entries at or after ``after``."""
    listed: dict[tuple[str, str], tuple[str, int]] = {}
    indices: list[int] = []
    offset = 0
    while True:
        page = api.get("/api/log/entries", kind="publication", after=after, offset=offset, limit=500)
        items = page.get("items") or []
        indices += [int(it["index"]) for it in items]
        offset += len(items)
        if not items or offset >= int(page.get("total", 0)):
            break
    size = open_checkpoint(checkpoint, p.verifier).size
    for idx in sorted(set(indices)):
        if idx >= size:
            continue  # logged after the checkpoint this sync verified: next time
        bundle = ProofBundle.from_json(json.dumps(api.get("/api/log/proof", index=idx)))
        got = verify_bundle(bundle, p.verifier)
        if got.checkpoint.size < size:
            raise LogIntegrityError(
                f"{p.party}'s proof of entry {idx} is under an older checkpoint than the one synced"
            )
        for sid, version, sha in got.entry.get("objects") or []:
            listed[(str(sid), str(version))] = (str(sha), idx)
    return listed


def _version(obj: Mapping[str, Any]) -> str:
    return str(obj.get("modified") or obj.get("created") or "")


def _store_objects(
    store: KnowledgeStore, p: Partner, collection: Mapping[str, Any], objs: list[dict[str, Any]],
    listed: Mapping[tuple[str, str], tuple[str, int]], res: SyncResult,
) -> tuple[bool, list[dict[str, Any]]]:  # fmt: skip
    """Store the verified objects of a page; ``(all verified, revoked objects)``."""
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    revoked: list[dict[str, Any]] = []
    all_ok = True
    defs = {o["id"]: o for o in objs if o.get("type") == "marking-definition"}
    for o in objs:
        key = (str(o.get("id")), _version(o))
        sha = object_digest(o)
        hit = listed.get(key)
        if hit is None or hit[0] != sha:
            res.unverified += 1
            all_ok = False
            if hit is not None:
                res.notes.append(f"{key[0]} {key[1]}: content differs from what {p.party} logged (sha256 mismatch)")
            continue
        read = marking_from_refs(o, defs)
        rows.append({
            "origin": p.party, "collection_id": str(collection["id"]), "stix_id": key[0], "type": str(o["type"]),
            "version": key[1], "product_kind": str(collection.get("kind") or ""), "marking": read.marking.to_text(),
            "body": json.dumps(o, separators=(",", ":"), ensure_ascii=False), "body_sha256": sha,
            "log_index": hit[1], "received_at": now,
        })  # fmt: skip
        if o.get("revoked") is True:
            revoked.append(o)
    if rows:
        t = ks.received_objects.c
        with store.begin() as conn:
            have = {
                (r.stix_id, r.version)
                for r in conn.execute(
                    select(t.stix_id, t.version).where(
                        and_(t.origin == p.party, t.stix_id.in_(sorted({r["stix_id"] for r in rows})))
                    )
                )
            }
            new = [r for r in rows if (r["stix_id"], r["version"]) not in have]
            if new:
                conn.execute(ks.received_objects.insert(), new)
            res.received += len(new)
    return all_ok, revoked


def _retract(ws: Workspace, store: KnowledgeStore, api: _Counted, p: Partner, o: Mapping[str, Any],
             res: SyncResult) -> None:  # fmt: skip
    """Hide every version of a revoked object and send the originator a signed receipt."""
    t = ks.received_objects.c
    now = datetime.now(UTC)
    with store.begin() as conn:
        n = conn.execute(
            update(ks.received_objects)
            .where(and_(t.origin == p.party, t.stix_id == str(o["id"]), t.retracted_at.is_(None)))
            .values(retracted_at=now, retraction={"version": _version(o), "reason": o.get("x_atalaya_reason")})
        ).rowcount
    res.retracted += int(n or 0)
    receipt = sign_receipt(ws, origin=p.party, stix_id=str(o["id"]), version=_version(o), at=now)
    api.post("/api/federation/receipts", {"receipt": receipt})
    res.receipts += 1


def _collections(api: _Counted) -> list[tuple[str, dict[str, Any]]]:
    disc, _ = api.get_taxii("/taxii2/")
    out: list[tuple[str, dict[str, Any]]] = []
    for root in disc.get("api_roots") or []:
        path = root if str(root).startswith("/") else "/" + str(root).split("://", 1)[-1].split("/", 1)[-1]
        path = path.rstrip("/") + "/"
        body, _ = api.get_taxii(path + "collections/")
        out += [(path, c) for c in body.get("collections") or [] if c.get("can_read")]
    return out


def _advance(api: _Counted, p: Partner, ws: Workspace, res: SyncResult) -> tuple[str, int]:
    """Verify the partner's newest checkpoint extends the one this node's witness saw; cosign it; ``(text, size)``."""
    witness = witness_for(ws)
    seen = witness.state(p.origin)
    old = seen.size if seen is not None else 0
    proof_doc = api.get("/api/log/consistency", old=old)
    text = str(proof_doc.pop("checkpoint"))
    cp = open_checkpoint(text, p.verifier)
    if cp.size < old:
        raise LogIntegrityError(
            f"rollback: {p.party}'s log now has {cp.size} entries, this node saw {old} before",
            hint="a log never shrinks; keep the old checkpoint as evidence and raise it with the partner",
        )
    proof = ConsistencyProof.from_json(json.dumps(proof_doc))
    if proof.new_size != cp.size:
        raise LogIntegrityError(f"{p.party}'s consistency proof is to size {proof.new_size}, its checkpoint {cp.size}")
    cosigned = witness.cosign(text, proof.proof, p.verifier)  # refuses a forked log
    try:
        api.post("/api/federation/cosignatures", {"checkpoint": cosigned})
        res.cosigned = True
    except AtalayaError as e:  # a courtesy to the partner: the sync stands without it
        res.notes.append(f"cosignature not delivered: {e.message}")
    return text, cp.size


def _pull(
    ws: Workspace, store: KnowledgeStore, api: _Counted, p: Partner, listed: Mapping[tuple[str, str], tuple[str, int]],
    cursors: dict[str, str], res: SyncResult, progress: Callable[[str], None] | None,
) -> None:  # fmt: skip
    """Page through each collection from its cursor, keeping what the verified publication entries list."""
    for root, coll in _collections(api):
        cid = str(coll["id"])
        params: dict[str, Any] = {"limit": PAGE}
        if cid in cursors:
            params["added_after"] = cursors[cid]
        while True:
            env, headers = api.get_taxii(f"{root}collections/{cid}/objects/", **params)
            objs = [o for o in env.get("objects") or [] if isinstance(o, dict)]
            ok, revoked = _store_objects(store, p, coll, objs, listed, res)
            for o in revoked:
                _retract(ws, store, api, p, o, res)
            last = headers.get("X-TAXII-Date-Added-Last")
            if ok and last:
                cursors[cid] = last
            if not env.get("more") or not ok:
                break
            params = {"limit": PAGE, "next": env["next"]} if env.get("next") else {"limit": PAGE, "added_after": last}
        if progress:
            progress(f"{p.party} {coll.get('title', cid)}: {res.received} new so far")


ROUNDS = 4
"""Most verify-and-pull rounds in one sync (reading releases is itself logged, so the log grows as we read)."""


def sync_partner(
    ws: Workspace,
    store: KnowledgeStore,
    party: str,
    client: PartnerClient,
    *,
    progress: Callable[[str], None] | None = None,
) -> SyncResult:
    """Sync with one partner (see the module doc); raises :class:`LogIntegrityError` on a forked or rolled-back log.

    Reading released objects is itself logged by the partner (a ``dissemination`` per page), so after a pull the
    sync verifies the log again, until a round adds nothing: the next sync with nothing new is one request.
    """
    p = get_partner(store, party)
    res = SyncResult(partner=p.party, log_size_before=p.log_size, log_size=p.log_size)
    api = _Counted(client, res)
    head = api.get("/api/log/checkpoint")
    text = head.get("checkpoint")
    if text is None or (text == p.checkpoint and int(head.get("size", -1)) == p.log_size):
        res.nothing_new = True
        return res
    open_checkpoint(str(text), p.verifier)  # a checkpoint not signed by the pinned key stops here
    cursors: dict[str, str] = dict(p.cursors)
    listed: dict[tuple[str, str], tuple[str, int]] = {}
    size = p.log_size
    for _ in range(ROUNDS):
        text, new_size = _advance(api, p, ws, res)
        more = _publications(api, p, size, text)
        res.publications += len({v[1] for v in more.values()})
        listed.update(more)
        first_round = size == p.log_size
        size = new_size
        if more or first_round:
            _pull(ws, store, api, p, listed, cursors, res, progress)
        head = api.get("/api/log/checkpoint")
        if head.get("checkpoint") == text:
            break
    with store.begin() as conn:
        conn.execute(
            update(ks.partners)
            .where(ks.partners.c.party == p.party)
            .values(log_size=size, checkpoint=text, synced_at=datetime.now(UTC), cursors=cursors)
        )
    res.log_size = size
    return res
