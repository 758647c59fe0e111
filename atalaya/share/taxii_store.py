"""The STIX object store behind the TAXII 2.1 server: collections, object versions, paging, retraction.

A *collection* belongs to one recipient party and one product kind ("sites
for MEX"); this node's own operators see every collection, a partner's users
only those of their party. Each row is one **version** of one STIX object in
one collection, with what the egress chokepoint needs to decide its release
(product kind, marking text, the parties it is about) and the object's JSON.

* :func:`publish` adds objects; the same id and version is never stored twice,
  a new ``modified`` is a new version. Each row gets a server-assigned
  ``date_added`` in microseconds, strictly increasing per collection: the
  publisher locks the collection's row first, so rows become visible in
  ``date_added`` order and a reader's cursor never skips a row committed after
  it read (paging is stable under concurrent inserts).
* :func:`query` answers the TAXII filters (``added_after``, ``match[id|type|
  version|spec_version]``) one page at a time, walking an index on
  ``(collection, date_added)``: a page costs O(page), not O(collection).
* :func:`retract` is what TAXII ``DELETE`` means here: the versions are hidden
  from every reader and kept, with who retracted them and when, for audit.

>>> parse_timestamp("2026-03-01T12:00:00.5Z"), format_timestamp(1772366400500000)
(1772366400500000, '2026-03-01T12:00:00.500000Z')
"""

from __future__ import annotations

import base64
import functools
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Select, Text, and_, false, or_, select, true, type_coerce, update

from atalaya.core.errors import ValidationError
from atalaya.core.markings import DEFAULT_MARKING, Marking
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks

MAX_PAGE = 1000
"""Most objects (or manifest records, or versions) in one page."""
SPEC_VERSION = "2.1"
"""The one STIX version stored (objects without ``spec_version``, i.e. SCOs, are taken as 2.1)."""

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_ID = re.compile(r"^([a-z0-9][a-z0-9-]{1,248}[a-z0-9])--" + _UUID + r"\Z")
_TS = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?Z\Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CHUNK = 500
ANALYZE_ROWS = 5000
"""A publish of at least this many rows refreshes PostgreSQL's statistics of the table."""


# --------------------------------------------------------------------------- timestamps and cursors


def parse_timestamp(text: str) -> int:
    """A STIX/TAXII timestamp (RFC 3339, UTC, ``Z``) as microseconds since the epoch; ValueError otherwise."""
    m = _TS.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a STIX timestamp (YYYY-MM-DDTHH:MM:SS[.ssssss]Z)")
    y, mo, d, h, mi, s, frac = m.groups()
    t = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=UTC)
    micros = int((frac or "0")[:6].ljust(6, "0"))
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + micros


def format_timestamp(us: int) -> str:
    """Microseconds since the epoch as a TAXII timestamp with microsecond precision."""
    secs, micros = divmod(us, 1_000_000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{micros:06d}Z"


def encode_cursor(added_us: int) -> str:
    """The opaque ``next`` value: the page continues after this ``date_added``."""
    return base64.urlsafe_b64encode(f"a1:{added_us}".encode()).decode().rstrip("=")


def decode_cursor(text: str) -> int:
    """The ``date_added`` a ``next`` value continues after; ValueError for one this server did not make."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        tag, _, us = raw.partition(":")
        if tag != "a1" or not us.isdigit() or len(us) > 19:
            raise ValueError
        return int(us)
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{text[:80]!r} is not a 'next' value of this server: send back the one a page gave") from None


def _now_us() -> int:
    delta = datetime.now(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# --------------------------------------------------------------------------- collections


@dataclass(frozen=True, kw_only=True)
class Collection:
    """One TAXII collection: the objects of one product kind for one party."""

    id: str
    """UUID."""
    party: str
    """The party whose users read it."""
    kind: str
    """Product kind."""
    title: str
    """Human-readable title."""
    description: str | None = None
    """Longer description."""
    marking: str = DEFAULT_MARKING.to_text()
    """Marking given to objects added over TAXII."""


def _collection(r: Any) -> Collection:
    return Collection(id=r.id, party=r.party, kind=r.kind, title=r.title, description=r.description, marking=r.marking)


def ensure_collection(
    store: KnowledgeStore,
    *,
    party: str,
    kind: str,
    title: str | None = None,
    description: str | None = None,
    marking: str | Marking | None = None,
) -> Collection:
    """The collection of product ``kind`` for ``party``, created if missing (title: "sites for MEX").

    ``marking`` is what objects added over TAXII (POST) are marked with; an existing collection keeps its own.
    """
    code = party.strip().upper()
    if not re.fullmatch(r"[A-Z]{2,16}", code):
        raise ValidationError(f"bad party code {party!r}", hint="a party code is 2 to 16 ASCII letters (e.g. MEX)")
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,39}", kind):
        raise ValidationError(f"bad product kind {kind!r}", hint="use a product kind such as sites, tracks, reports")
    mk = marking.to_text() if isinstance(marking, Marking) else (marking or DEFAULT_MARKING.to_text())
    Marking.from_text(mk)  # refuse an unreadable marking here, not at the first release
    q = select(ks.taxii_collections).where(ks.taxii_collections.c.party == code, ks.taxii_collections.c.kind == kind)
    with store.begin() as conn:
        row = conn.execute(q).first()
        if row is None:
            conn.execute(
                ks.taxii_collections.insert().values(
                    id=str(uuid.uuid4()), party=code, kind=kind, title=title or f"{kind} for {code}",
                    description=description, marking=mk, last_added_us=0, created_at=datetime.now(UTC),
                )
            )  # fmt: skip
            row = conn.execute(q).one()
    return _collection(row)


def list_collections(store: KnowledgeStore, party: str | None = None) -> list[Collection]:
    """Every collection (``party`` None) or those of one party, by title."""
    q = select(ks.taxii_collections).order_by(ks.taxii_collections.c.title, ks.taxii_collections.c.id)
    if party is not None:
        q = q.where(ks.taxii_collections.c.party == party.upper())
    with store.engine.connect() as conn:
        return [_collection(r) for r in conn.execute(q)]


def get_collection(store: KnowledgeStore, collection_id: str) -> Collection | None:
    """One collection by id (None when there is none)."""
    with store.engine.connect() as conn:
        r = conn.execute(select(ks.taxii_collections).where(ks.taxii_collections.c.id == collection_id)).first()
    return _collection(r) if r is not None else None


# --------------------------------------------------------------------------- publishing


@dataclass(frozen=True, kw_only=True)
class Published:
    """What one :func:`publish` stored."""

    added: int
    """New object versions stored."""
    unchanged: int
    """Versions already in the collection (not stored again)."""
    added_ids: list[str] = field(default_factory=list)
    """``id`` of each stored version, in ``date_added`` order."""


def check_object(obj: Mapping[str, Any]) -> tuple[str, str, str, int | None]:
    """``(id, type, version text, version µs)`` of a STIX 2.1 object; ValidationError saying what is wrong.

    The version is ``modified``, else ``created``; an object with neither (a cyber-observable) is versioned by the
    date it was added (``None`` here).
    """
    sid = obj.get("id")
    typ = obj.get("type")
    if not isinstance(sid, str) or not (m := _ID.match(sid)):
        raise ValidationError(f"object id {sid!r} is not a STIX identifier", hint="use TYPE--UUID")
    if typ != m.group(1):
        raise ValidationError(f"object {sid}: type {typ!r} does not match its id", hint=f"set type to {m.group(1)!r}")
    spec = obj.get("spec_version", SPEC_VERSION)
    if spec != SPEC_VERSION:
        raise ValidationError(f"object {sid}: spec_version {spec!r} is not served", hint="send STIX 2.1 objects")
    for key in ("modified", "created"):
        v = obj.get(key)
        if v is None:
            continue
        if not isinstance(v, str):
            raise ValidationError(f"object {sid}: {key} is not a timestamp", hint="use YYYY-MM-DDTHH:MM:SS.sssZ")
        try:
            return sid, typ, v, parse_timestamp(v)
        except ValueError as e:
            raise ValidationError(f"object {sid}: {e}", hint="use YYYY-MM-DDTHH:MM:SS.sssZ") from None
    return sid, typ, "", None


def _lock(conn: Connection, collection_id: str) -> int:
    """Lock the collection's row (the write lock on SQLite) and return its newest ``date_added``."""
    c = ks.taxii_collections.c
    n = conn.execute(
        update(ks.taxii_collections).where(c.id == collection_id).values(last_added_us=c.last_added_us)
    ).rowcount
    if not n:
        raise ValidationError(f"no TAXII collection {collection_id!r}", hint="create it with ensure_collection()")
    return int(conn.execute(select(c.last_added_us).where(c.id == collection_id)).scalar_one())


def _refresh_flags(conn: Connection, collection_id: str, stix_ids: Iterable[str]) -> None:
    """Recompute ``is_latest`` / ``is_first`` of the live versions of ``stix_ids``."""
    t = ks.stix_objects.c
    for sid in stix_ids:
        rows = conn.execute(
            select(t.seq, t.version_us).where(t.collection_id == collection_id, t.stix_id == sid,
                                              t.retracted_at.is_(None))
        ).all()  # fmt: skip
        if not rows:
            continue
        hi = max(r.version_us for r in rows)
        lo = min(r.version_us for r in rows)
        for r in rows:
            conn.execute(
                update(ks.stix_objects)
                .where(t.seq == r.seq)
                .values(is_latest=r.version_us == hi, is_first=r.version_us == lo)
            )


def publish(
    store: KnowledgeStore,
    collection: str | Collection,
    objects: Sequence[Mapping[str, Any]],
    *,
    kind: str,
    marking: str | Marking,
    about: Sequence[str] = (),
) -> Published:
    """Add STIX 2.1 ``objects`` to ``collection`` (an id or a :class:`Collection`) in one transaction.

    ``kind``, ``marking`` and ``about`` (the parties the objects concern) are what the egress chokepoint judges
    each object by when it is read. Idempotent: a version (id and ``modified``) already in the collection is not
    stored again; a new ``modified`` is a new version. ValidationError (nothing stored) names the first bad object.
    """
    cid = collection.id if isinstance(collection, Collection) else collection
    mk = Marking.from_text(marking) if isinstance(marking, str) else marking
    about_codes = sorted({p.strip().upper() for p in about})
    checked = [(check_object(o), o) for o in objects]
    t = ks.stix_objects.c
    with store.begin() as conn:
        last = _lock(conn, cid)
        ids = sorted({c[0] for c, _ in checked})
        have: dict[str, set[int]] = {}
        for i in range(0, len(ids), _CHUNK):
            for sid, vus in conn.execute(
                select(t.stix_id, t.version_us).where(t.collection_id == cid, t.stix_id.in_(ids[i : i + _CHUNK]))
            ):
                have.setdefault(sid, set()).add(int(vus))
        added_us = max(_now_us(), last + 1)
        rows: list[dict[str, Any]] = []
        seen: set[tuple[str, int]] = set()
        for (sid, typ, vtext, vus), obj in checked:
            version_us = added_us if vus is None else vus
            if vus is not None and (vus in have.get(sid, ()) or (sid, vus) in seen):
                continue
            seen.add((sid, version_us))
            rows.append({
                "collection_id": cid, "stix_id": sid, "type": typ, "spec_version": SPEC_VERSION,
                "version": vtext or format_timestamp(added_us), "version_us": version_us, "added_us": added_us,
                "is_latest": True, "is_first": True, "kind": kind, "marking": mk.to_text(), "about": about_codes,
                "body": json.dumps(obj, separators=(",", ":"), ensure_ascii=False),
            })  # fmt: skip
            added_us += 1
        if rows:
            per_id: dict[str, int] = {}
            for r in rows:
                per_id[r["stix_id"]] = per_id.get(r["stix_id"], 0) + 1
            for i in range(0, len(rows), 5000):
                conn.execute(ks.stix_objects.insert(), rows[i : i + 5000])
            # only ids with more than one live version need their first/latest flags worked out
            _refresh_flags(conn, cid, sorted(s for s, n in per_id.items() if n > 1 or s in have))
            c = ks.taxii_collections.c
            conn.execute(update(ks.taxii_collections).where(c.id == cid).values(last_added_us=added_us - 1))
            if conn.dialect.name == "postgresql" and len(rows) >= ANALYZE_ROWS:
                # a bulk load leaves the planner's statistics behind, and with them it filters a whole collection
                # where the indexes would read a page: refresh them now rather than when autovacuum gets to it
                conn.exec_driver_sql("ANALYZE stix_objects")
    return Published(added=len(rows), unchanged=len(checked) - len(rows), added_ids=[r["stix_id"] for r in rows])


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True, kw_only=True)
class Filters:
    """The TAXII 2.1 filters of one request."""

    added_after_us: int | None = None
    """Only versions added after this time (µs)."""
    ids: tuple[str, ...] = ()
    """``match[id]``."""
    types: tuple[str, ...] = ()
    """``match[type]``."""
    versions: tuple[str, ...] = ("last",)
    """``match[version]``: ``last``, ``first``, ``all`` or version timestamps (any of them)."""
    spec_versions: tuple[str, ...] = ()
    """``match[spec_version]`` (empty: every version, all 2.1 here)."""


@dataclass(frozen=True, kw_only=True)
class StoredObject:
    """One stored object version as a page returns it."""

    stix_id: str
    """STIX id."""
    type: str
    """STIX type."""
    spec_version: str
    """STIX version."""
    version: str
    """The version (``modified``) as the object states it."""
    added_us: int
    """date_added (µs)."""
    kind: str
    """Product kind."""
    marking: str
    """Marking text."""
    about: list[str]
    """Parties the object is about."""
    body: str
    """The object, JSON text."""

    @property
    def date_added(self) -> str:
        """date_added as a TAXII timestamp."""
        return format_timestamp(self.added_us)


@dataclass(frozen=True, kw_only=True)
class Page:
    """One page of a query."""

    rows: list[StoredObject]
    """The matching versions, in ``date_added`` order."""
    more: bool
    """Whether more match after this page."""
    next: str | None
    """Cursor for the next page (``None`` at the end)."""


def _version_clause(versions: Sequence[str]) -> Any:
    t = ks.stix_objects.c
    parts: list[Any] = []
    for v in versions:
        if v == "all":
            return true()
        if v == "last":
            parts.append(t.is_latest.is_(True))
        elif v == "first":
            parts.append(t.is_first.is_(True))
        else:
            parts.append(t.version_us == parse_timestamp(v))
    return or_(*parts) if parts else false()


def page_select(collection_id: str, filters: Filters, *, limit: int, after: int = -1) -> Select[Any]:
    """The SQL of one page: ``limit`` matching live versions added after ``after`` (µs), by date_added.

    Every filter combination walks an index on ``(collection, …, date_added)`` in order, so a page reads O(page)
    rows whatever the collection's size (tests check the plan).
    """
    t = ks.stix_objects.c
    cond = [t.collection_id == collection_id, _version_clause(filters.versions), t.retracted_at.is_(None)]
    if after >= 0:
        cond.append(t.added_us > after)
    if filters.ids:
        cond.append(t.stix_id.in_(filters.ids))
    if filters.types:
        cond.append(t.type.in_(filters.types))
    if filters.spec_versions:
        cond.append(t.spec_version.in_(filters.spec_versions))
    return (
        select(
            t.stix_id,
            t.type,
            t.spec_version,
            t.version,
            t.added_us,
            t.kind,
            t.marking,
            type_coerce(t.about, Text),
            t.body,
        )
        .where(and_(*cond))
        .order_by(t.added_us)
        .limit(limit)
    )


@functools.lru_cache(maxsize=256)
def _parties_tuple(text: str) -> tuple[str, ...]:
    return tuple(str(p) for p in json.loads(text))


def _parties(value: str | list[Any] | None) -> list[str]:
    """The ``about`` column as a list: JSON text (SQLite, parsed once per distinct value) or a list (PostgreSQL)."""
    if not value:
        return []
    return list(_parties_tuple(value)) if isinstance(value, str) else [str(p) for p in value]


def query(
    store: KnowledgeStore, collection_id: str, filters: Filters, *, limit: int = MAX_PAGE, cursor: str | None = None
) -> Page:
    """One page of the live (unretracted) versions in ``collection_id`` matching ``filters``, by date_added.

    ``cursor`` is a previous page's ``next``; ValueError for a malformed cursor or version timestamp.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit {limit} is out of range 1..{MAX_PAGE}")
    after = max(filters.added_after_us or -1, decode_cursor(cursor) if cursor else -1)
    with store.engine.connect() as conn:
        rows = conn.execute(page_select(collection_id, filters, limit=limit + 1, after=after)).all()
    more = len(rows) > limit
    out = [
        StoredObject(stix_id=sid, type=typ, spec_version=spec, version=ver, added_us=int(added), kind=kind,
                     marking=marking, about=_parties(about), body=body)
        for sid, typ, spec, ver, added, kind, marking, about, body in rows[:limit]
    ]  # fmt: skip
    return Page(rows=out, more=more, next=encode_cursor(out[-1].added_us) if more and out else None)


def count(store: KnowledgeStore, collection_id: str) -> int:
    """Live object versions in a collection."""
    from sqlalchemy import func

    t = ks.stix_objects.c
    q = select(func.count()).where(t.collection_id == collection_id, t.retracted_at.is_(None))
    with store.engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


# --------------------------------------------------------------------------- retraction and status


def retract(
    store: KnowledgeStore,
    collection_id: str,
    stix_id: str,
    *,
    actor: str,
    versions: Sequence[str] = ("all",),
    spec_versions: Sequence[str] = (),
    reason: str = "",
) -> int:
    """Retract versions of ``stix_id`` (default all): hidden from every reader, kept with who and when for audit.

    Returns how many versions were retracted (0: none matched). The remaining versions' first/latest flags are
    recomputed, and the retraction is written to the audit table.
    """
    t = ks.stix_objects.c
    cond = [t.collection_id == collection_id, t.stix_id == stix_id, t.retracted_at.is_(None),
            _version_clause(versions)]  # fmt: skip
    if spec_versions:
        cond.append(t.spec_version.in_(spec_versions))
    now = datetime.now(UTC)
    with store.begin() as conn:
        _lock(conn, collection_id)
        retracted = [r.version for r in conn.execute(select(t.version).where(*cond))]
        if not retracted:
            return 0
        conn.execute(
            update(ks.stix_objects)
            .where(*cond)
            .values(retracted_at=now, retracted_by=actor[:80], is_latest=False, is_first=False)
        )
        _refresh_flags(conn, collection_id, [stix_id])
        conn.execute(
            ks.audit.insert().values(
                time=now, actor=actor[:80], action="taxii.retract", object_type="stix", object_id=stix_id[:200],
                details={"collection": collection_id, "versions": retracted, "reason": reason[:500]},
            )
        )  # fmt: skip
    return len(retracted)


def save_status(store: KnowledgeStore, collection_id: str, username: str, record: Mapping[str, Any]) -> None:
    """Keep a TAXII status resource (``record["id"]``) for its requester."""
    with store.begin() as conn:
        conn.execute(
            ks.taxii_status.insert().values(id=str(record["id"]), collection_id=collection_id, username=username,
                                            created_at=datetime.now(UTC), record=dict(record))
        )  # fmt: skip


def get_status(store: KnowledgeStore, status_id: str) -> tuple[str, dict[str, Any]] | None:
    """``(username, status resource)`` of a status id, or None."""
    with store.engine.connect() as conn:
        r = conn.execute(select(ks.taxii_status).where(ks.taxii_status.c.id == status_id)).first()
    return (r.username, dict(r.record)) if r is not None else None
