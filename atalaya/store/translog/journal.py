"""Domain records into a workspace's transparency log: once each, indexed, and covered by a signed checkpoint.

Every path that writes the log (agreement versions, sortie-over-territory
records, disseminations) calls :func:`record`. It

1. names each record by a *reference* (``overflight:SORTIE|LEVEL|TERRITORY``,
   ``agreement:ID@vN``, ``dissemination:RECIPIENT|KIND|USER|CONTENT``) and a
   digest of its content (volatile fields such as ``time`` left out);
2. holding the log's single-writer lock, skips a record whose reference is
   already logged with the same digest; appends a changed one with
   ``supersedes`` = the earlier leaf's index;
3. indexes the new leaves in the knowledge store's ``log_entries`` table (and
   first indexes any leaf the table lacks, e.g. after a crash between the two
   writes), so the next run knows them;
4. signs a checkpoint when it appended (or when the log has none), so nothing
   it wrote stays outside a signed tree head.

>>> reference({"kind": "overflight", "sortie": "S1", "level": "country", "territory": "MEX"})
'overflight:S1|country|MEX'
>>> reference({"kind": "agreement", "id": "AGR-1", "version": 2})
'agreement:AGR-1@v2'
>>> digest({"kind": "x", "time": "now"}) == digest({"kind": "x", "time": "later"})
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from atalaya.core.workspace import Workspace
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.translog.log import TransparencyLog
from atalaya.store.translog.merkle import leaf_hash
from atalaya.store.translog.node import log_signer, open_log

VOLATILE = frozenset({"time", "supersedes"})
"""Fields left out of a record's digest: when it was written says nothing about what it records."""
WAIT_S = 30.0
"""How long a writer waits for another process holding the log."""


def reference(rec: Mapping[str, Any]) -> str:
    """The stable name of what a record is about (one current leaf per reference)."""
    kind = str(rec.get("kind", ""))
    if kind == "overflight":
        return f"overflight:{rec.get('sortie')}|{rec.get('level')}|{rec.get('territory')}"
    if kind == "dissemination":
        return (
            f"dissemination:{rec.get('recipient')}|{rec.get('product_kind')}|{rec.get('user')}|"
            f"{rec.get('content_sha256')}"
        )
    version = f"@v{rec['version']}" if "version" in rec else ""
    return f"{kind}:{rec.get('id', '')}{version}"


def digest(rec: Mapping[str, Any]) -> str:
    """SHA-256 of the record's canonical JSON without its volatile fields."""
    body = {k: v for k, v in rec.items() if k not in VOLATILE}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def _index_missing(log: TransparencyLog, store: KnowledgeStore) -> None:
    """Index leaves the ``log_entries`` table lacks (appended by a run that died before indexing them)."""
    with store.engine.connect() as conn:
        have = conn.execute(select(func.count()).select_from(ks.log_entries)).scalar_one()
        top = conn.execute(select(func.max(ks.log_entries.c.idx))).scalar_one()
    indexed = 0 if top is None else int(top) + 1
    if have == log.size and indexed == log.size:
        return
    with store.engine.connect() as conn:
        known = {int(i) for (i,) in conn.execute(select(ks.log_entries.c.idx))}
    now = datetime.now(UTC)
    rows = []
    for i in range(log.size):
        if i in known:
            continue
        rec = log.get(i)
        rows.append(
            {
                "idx": i,
                "leaf_hash": leaf_hash(log.get_bytes(i)).hex(),
                "content_sha256": digest(rec),
                "kind": str(rec.get("kind", "")),
                "ref_id": reference(rec)[:200],
                "created_at": now,
            }
        )
    if rows:
        with store.begin() as conn:
            conn.execute(ks.log_entries.insert(), rows)


def _latest(store: KnowledgeStore, refs: Sequence[str]) -> dict[str, tuple[int, str]]:
    """The newest leaf (index, content digest) of each reference, reading only those references' index rows."""
    known: dict[str, tuple[int, str]] = {}
    t = ks.log_entries
    with store.engine.connect() as conn:
        for i in range(0, len(refs), 500):
            q = select(t.c.idx, t.c.ref_id, t.c.content_sha256).where(t.c.ref_id.in_(refs[i : i + 500]))
            for row in conn.execute(q.order_by(t.c.idx)):
                known[str(row.ref_id)] = (int(row.idx), str(row.content_sha256))
    return known


def record(
    ws: Workspace, store: KnowledgeStore, records: Sequence[Mapping[str, Any]], *, checkpoint: bool = True
) -> dict[str, Any]:
    """Append the records not yet logged; returns ``appended``, ``unchanged``, ``log_size`` and ``indices``."""
    with open_log(ws, wait_s=WAIT_S) as log:
        _index_missing(log, store)
        known = _latest(store, sorted({reference(r)[:200] for r in records}))
        new: list[tuple[str, str, dict[str, Any]]] = []
        indices: list[int] = []
        for rec in records:
            ref = reference(rec)[:200]
            dg = digest(rec)
            prev = known.get(ref)
            if prev is not None and prev[1] == dg:
                indices.append(prev[0])
                continue
            entry = dict(rec)
            if prev is not None:
                entry["supersedes"] = prev[0]
            known[ref] = (log.size + len(new), dg)
            indices.append(log.size + len(new))
            new.append((ref, dg, entry))
        if new:
            first = log.size
            log.append_many([e for _, _, e in new])
            now = datetime.now(UTC)
            rows = [
                {
                    "idx": first + i,
                    "leaf_hash": leaf_hash(log.get_bytes(first + i)).hex(),
                    "content_sha256": dg,
                    "kind": str(e["kind"]),
                    "ref_id": ref,
                    "created_at": now,
                }
                for i, (ref, dg, e) in enumerate(new)
            ]
            with store.begin() as conn:
                conn.execute(ks.log_entries.insert(), rows)
        size = log.size
        signed = False
        if checkpoint and (new or log.latest_checkpoint() is None):
            log.checkpoint(log_signer(ws))
            signed = True
    return {
        "appended": len(new),
        "unchanged": len(records) - len(new),
        "log_size": size,
        "indices": indices,
        "checkpoint_signed": signed,
    }
