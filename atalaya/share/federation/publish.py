"""Publishing to partners: products → egress → STIX → the partner's TAXII collections → the log.

One service (``atalaya share publish``, the demo and jobs call it) makes what a
partner node's sync pulls:

1. the rows of each product kind (:func:`atalaya.share.stix.product_rows`) go
   through the egress chokepoint for the partner (:func:`~atalaya.share.egress.release`
   without a log entry: nothing has left yet; ``SOURCE-PROTECT`` strips sources
   here, before anything is mapped);
2. what it releases is mapped to STIX (:class:`~atalaya.share.stix.StixBuilder`)
   and stored in the partner's collection of that kind
   (:func:`atalaya.share.taxii_store.publish`: new versions only);
3. each batch of new versions is written to the transparency log as a
   ``publication`` entry listing ``[id, version, sha256]`` of each object's
   canonical JSON (:func:`object_digest`), at most :data:`ENTRY_OBJECTS` per entry.
   A recipient checks every object it receives against a publication entry whose
   inclusion under a signed checkpoint it has verified: the collector cannot later
   deny having shared it, nor show the host something other than what it logged.

Reading over TAXII then passes the egress again (the agreement may have ended
since) and records a ``dissemination`` per page.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from atalaya.core.workspace import Workspace
from atalaya.share import taxii_store
from atalaya.share.egress import EgressPolicy, known_parties, release
from atalaya.share.stix import MAPPED_KINDS, StixBuilder, product_rows
from atalaya.share.stix.rows import parties as party_rows
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.translog import journal

ENTRY_OBJECTS = 1000
"""Most objects one ``publication`` log entry lists."""


def object_digest(obj: Mapping[str, Any]) -> str:
    """SHA-256 of an object's canonical JSON (sorted keys, no spaces, UTF-8): what publication entries list."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Published:
    """What one :func:`publish_products` call did, per recipient and kind."""

    added: dict[str, dict[str, int]] = field(default_factory=dict)
    """``{party: {kind: new object versions}}``."""
    withheld: dict[str, dict[str, int]] = field(default_factory=dict)
    """``{party: {kind: rows the egress withheld}}``."""
    log_indices: list[int] = field(default_factory=list)
    """Publication entries written."""

    def to_dict(self) -> dict[str, Any]:
        return {"added": self.added, "withheld": self.withheld, "log_indices": self.log_indices}


def flown_tracks(ws: Workspace, rows: Sequence[Mapping[str, Any]], *, marking: str) -> list[dict[str, Any]]:
    """``x-atalaya-flown-track`` objects: every fix of each sortie's flown track, so the host can recompute.

    Shared with each sortie under the same marking and audience (the accountability rule): the host re-derives
    the time, distance and depth over its territory itself instead of taking the collector's figures on trust.
    """
    from atalaya.core.markings import Marking
    from atalaya.share.stix.extension import new_sdo, stix_id, timestamp
    from atalaya.share.stix.markings import marking_refs
    from atalaya.sovereignty.tracks import sortie_tracks
    from atalaya.store.lake import Lake

    ids = [str(r["id"]) for r in rows]
    if not ids:
        return []
    tr = sortie_tracks(Lake(ws.lake_dir), ids)
    mk = Marking.from_text(marking)
    refs, _defs = marking_refs(mk, custodian=ws.party)
    creator = stix_id("identity", f"party/{(mk.originator or ws.party).upper()}")
    out: list[dict[str, Any]] = []
    sid = np.asarray(tr.sortie_id, dtype=object)
    if len(sid) == 0:
        return out
    cut = np.flatnonzero(sid[1:] != sid[:-1]) + 1
    starts, ends = np.r_[0, cut], np.r_[cut, len(sid)]
    alt = np.asarray(tr.alt_m, dtype=np.float64)
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        key = str(sid[a])
        t = np.asarray(tr.time_us[a:b], dtype=np.int64)
        lon, lat, z = (np.round(np.asarray(v[a:b], dtype=np.float64), 6) for v in (tr.lon, tr.lat, alt))
        coords = [[x, y] if np.isnan(h) else [x, y, round(float(h), 1)]
                  for x, y, h in zip(lon.tolist(), lat.tolist(), z.tolist(), strict=True)]  # fmt: skip
        first = timestamp(datetime.fromtimestamp(int(t[0]) / 1e6, UTC))
        last = timestamp(datetime.fromtimestamp(int(t[-1]) / 1e6, UTC))
        obj = new_sdo("x-atalaya-flown-track", key, created=first, modified=last, atalaya_id=key,
                      sortie_ref=stix_id("x-atalaya-sortie", key), time_us=t.tolist(), coordinates=coords)  # fmt: skip
        obj["created_by_ref"] = creator
        obj["object_marking_refs"] = refs
        out.append(obj)
    return out


def _groups(items: Iterable[Mapping[str, Any]]) -> dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]]:
    """Released rows grouped by what the TAXII store judges each object by again: marking and parties about."""
    out: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}
    for it in items:
        about = it.get("audience") or it.get("hosts") or ()
        about_t = tuple(sorted(str(p) for p in (about if isinstance(about, list | tuple) else [about])))
        out.setdefault((str(it["marking"]), about_t), []).append(dict(it))
    return out


def _entries(
    ws: Workspace, party: str, collection_id: str, kind: str, objs: Sequence[tuple[str, str, str]]
) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "kind": "publication",
            "id": f"{collection_id}@{objs[i][0]}@{objs[i][1]}",
            "sender": ws.party,
            "recipient": party,
            "collection": collection_id,
            "product_kind": kind,
            "objects": [list(o) for o in objs[i : i + ENTRY_OBJECTS]],
            "time": now,
        }
        for i in range(0, len(objs), ENTRY_OBJECTS)
    ]


def publish_products(
    ws: Workspace,
    store: KnowledgeStore,
    *,
    parties: Sequence[str] | None = None,
    kinds: Sequence[str] = MAPPED_KINDS,
    progress: Callable[[str], None] | None = None,
) -> Published:
    """Publish every product of ``kinds`` each partner may receive into its TAXII collections, and log it."""
    policy = EgressPolicy.from_store(store, ws.party)
    recipients = sorted(known_parties(store, policy) - {ws.party}) if parties is None else [p.upper() for p in parties]
    out = Published()
    prows = party_rows(store)
    rows_by_kind = {kind: product_rows(ws, store, kind) for kind in kinds}
    for party in recipients:
        for kind in kinds:
            rel = release(ws, store, rows_by_kind[kind], recipient=party, kind=kind, user="publisher", policy=policy,
                          log=False)  # fmt: skip
            out.withheld.setdefault(party, {})[kind] = len(rel.withheld)
            added: list[tuple[str, str, str]] = []
            coll = taxii_store.ensure_collection(store, party=party, kind=kind)
            for (marking, about), rows in sorted(_groups(rel.items).items()):
                builder = StixBuilder(node_party=ws.party, parties=prows)
                builder.add(kind, rows)
                objs = builder.objects()
                if kind == "sorties":
                    objs += flown_tracks(ws, rows, marking=marking)
                res = taxii_store.publish(store, coll, objs, kind=kind, marking=marking, about=about)
                new = set(res.added_ids)
                added += [(o["id"], str(o.get("modified") or o.get("created") or ""), object_digest(o))
                          for o in objs if o["id"] in new]  # fmt: skip
            out.added.setdefault(party, {})[kind] = len(added)
            if added:
                got = journal.record(ws, store, _entries(ws, party, coll.id, kind, added))
                out.log_indices += [int(i) for i in got["indices"]]
            if progress:
                progress(f"{party} {kind}: {len(added)} new, {len(rel.withheld)} withheld")
    return out
