"""Tables of the knowledge store (SQLAlchemy Core), portable across SQLite and PostgreSQL.

Every domain table carries ``marking`` (canonical marking text) and
``provenance`` (JSON: sources, supporting observation/record ids, first/last
seen, run id). JSON columns use the portable ``JSON`` type; times are
timezone-aware.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

TS = DateTime(timezone=True)
ID = String(80)


def _common() -> list[Column[object]]:
    return [
        Column("marking", String(400), nullable=False, server_default="TLP:AMBER"),
        Column("provenance", JSON, nullable=True),
    ]


schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("description", String(200), nullable=False),
    Column("applied_at", TS, nullable=False),
)

parties = Table(
    "parties",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(40)),
    Column("public_key", Text),
    *_common(),
)

platforms = Table(
    "platforms",
    metadata,
    Column("id", ID, primary_key=True),
    Column("party_id", String(16)),
    Column("platform_type", String(40), nullable=False),
    Column("name", String(200)),
    Column("sensors", JSON),
    *_common(),
)

sorties = Table(
    "sorties",
    metadata,
    Column("id", ID, primary_key=True),
    Column("platform_id", ID),
    Column("platform_type", String(40)),
    Column("party_id", String(16)),
    Column("takeoff", TS),
    Column("landing", TS),
    Column("base", String(80)),
    Column("agreement_id", String(120)),
    Column("authorisation_id", String(120)),
    Column("notified_at", TS),
    Column("report_filed_at", TS),
    Column("tasking", Text),
    Column("attrs", JSON),
    *_common(),
)

tracks = Table(
    "tracks",
    metadata,
    Column("id", ID, primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("ident", String(80)),
    Column("ident_kind", String(20)),
    Column("start", TS),
    Column("end", TS),
    Column("n_points", Integer),
    Column("length_km", Float),
    Column("geometry", Text),  # GeoJSON LineString (simplified for display)
    Column("run_id", String(40)),
    Column("attrs", JSON),
    *_common(),
    Index("ix_tracks_ident", "ident_kind", "ident"),
)

sites = Table(
    "sites",
    metadata,
    Column("id", ID, primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("lon", Float, nullable=False),
    Column("lat", Float, nullable=False),
    Column("radius_m", Float),
    Column("score", Float),
    Column("rank", Integer),
    Column("status", String(20), nullable=False, server_default="suspected"),
    Column("first_seen", TS),
    Column("last_seen", TS),
    Column("n_days", Integer),
    Column("evidence", JSON),
    Column("note", Text),
    Column("status_by", String(80)),
    Column("status_at", TS),
    Column("run_id", String(40)),
    *_common(),
)

corridors = Table(
    "corridors",
    metadata,
    Column("id", ID, primary_key=True),
    Column("h3_cells", JSON, nullable=False),
    Column("volume", Integer),
    Column("kind", String(20)),
    Column("rank", Integer),
    Column("run_id", String(40)),
    *_common(),
)

crossings = Table(
    "crossings",
    metadata,
    Column("id", ID, primary_key=True),
    Column("lon", Float, nullable=False),
    Column("lat", Float, nullable=False),
    Column("count", Integer),
    Column("hour_profile", JSON),
    Column("first_seen", TS),
    Column("last_seen", TS),
    Column("run_id", String(40)),
    *_common(),
)

entities = Table(
    "entities",
    metadata,
    Column("id", ID, primary_key=True),
    Column("schema", String(40), nullable=False),  # FollowTheMoney schema name
    Column("caption", String(400)),
    Column("properties", JSON, nullable=False),
    Column("datasets", JSON),
    Column("first_seen", TS),
    Column("last_seen", TS),
    *_common(),
    Index("ix_entities_schema", "schema"),
)

relationships = Table(
    "relationships",
    metadata,
    Column("id", ID, primary_key=True),
    Column("type", String(40), nullable=False),
    Column("source_id", ID, nullable=False),
    Column("target_id", ID, nullable=False),
    Column("confidence", Float),
    Column("admiralty", String(2)),  # NATO Admiralty code, e.g. "B2"
    Column("evidence", JSON),
    *_common(),
    Index("ix_rel_source", "source_id"),
    Index("ix_rel_target", "target_id"),
)

transactions = Table(
    "transactions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("time", TS, nullable=False),
    Column("from_account", ID, nullable=False),
    Column("to_account", ID, nullable=False),
    Column("amount", Float, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("attrs", JSON),
    *_common(),
)

territories = Table(
    "territories",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("level", String(20), nullable=False),
    Column("owner", String(16), nullable=False),
    Column("geometry_wkb", LargeBinary),
    Column("source", String(200)),
    *_common(),
)

agreements = Table(
    "agreements",
    metadata,
    Column("id", String(120), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("title", String(400)),
    Column("document", JSON, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("effective_from", TS),
    Column("effective_to", TS),
    Column("status", String(20), nullable=False, server_default="draft"),
    Column("log_index", BigInteger),
    Column("created_at", TS, nullable=False),
    *_common(),
)

products = Table(
    "products",
    metadata,
    Column("id", ID, primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("content_sha256", String(64), nullable=False),
    Column("recipients", JSON),
    Column("acknowledgements", JSON),
    Column("log_index", BigInteger),
    Column("created_at", TS, nullable=False),
    *_common(),
)

verdicts = Table(
    "verdicts",
    metadata,
    Column("sortie_id", ID, primary_key=True),
    Column("status", String(20), nullable=False),  # compliant | violation | unverifiable | no-host
    Column("reason", Text, nullable=False),
    Column("worst", String(20)),  # most severe violation (null unless status = violation)
    Column("n_violations", Integer, nullable=False),
    Column("hosts", JSON, nullable=False),  # host parties whose territory the flown track entered
    Column("audience", JSON, nullable=False),  # parties that always see this record (hosts, or claimed hosts)
    Column("agreement_id", String(120)),
    Column("agreement_version", Integer),
    Column("collection_id", String(120)),
    Column("track_points", Integer, nullable=False),
    Column("record", JSON, nullable=False),  # the whole verdict: manifest, violations with evidence
    Column("checked_at", TS, nullable=False),
    Column("as_of", TS),
    *_common(),
    Index("ix_verdicts_status", "status"),
)
"""The one compliance verdict of each sortie (written by the sovereignty service, read by every view)."""

log_entries = Table(
    "log_entries",
    metadata,
    Column("idx", BigInteger, primary_key=True),
    Column("leaf_hash", String(64), nullable=False),  # RFC 9162 leaf hash, hex
    Column("content_sha256", String(64)),  # digest of the record without log bookkeeping (change detection)
    Column("kind", String(40), nullable=False),
    Column("ref_id", String(200)),
    Column("created_at", TS, nullable=False),
    Index("ix_log_entries_ref", "ref_id"),  # the journal looks up the newest leaf of each record's reference
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(80), nullable=False, unique=True),
    Column("party_id", String(16), nullable=False),
    Column("role", String(20), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_at", TS, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(80), nullable=False),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS),
    Column("revoked_at", TS),  # migration 3
    Column("last_used_at", TS),  # migration 3
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),  # cookie (web page) or bearer (API client login)
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("csrf_token", String(64)),  # cookie sessions: the value state-changing requests echo in X-CSRF-Token
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),  # absolute limit
    Column("last_seen_at", TS, nullable=False),  # for the idle limit
    Column("revoked_at", TS),
    Column("client", String(80)),
    Index("ix_sessions_user", "user_id"),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", TS, nullable=False),
    Column("actor", String(80), nullable=False),
    Column("action", String(80), nullable=False),
    Column("object_type", String(40)),
    Column("object_id", String(200)),
    Column("details", JSON),
)

ingest_units = Table(
    "ingest_units",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("run_id", String(32), nullable=False),
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("format", String(40), nullable=False),
    Column("source", String(80), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("committed_at", TS, nullable=False),
    Column("records", BigInteger, nullable=False),
    Column("accepted", BigInteger, nullable=False),
    Column("quarantined", BigInteger, nullable=False),
    Column("duplicates", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("summary", JSON),
    *_common(),
    UniqueConstraint("sha256", "format", "source", name="uq_ingest_file"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("unit_id", String(32), ForeignKey("ingest_units.id", ondelete="CASCADE"), nullable=False),
    Column("format", String(40), nullable=False),
    Column("path", Text, nullable=False),
    Column("src_rec", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("raw", Text),
    Index("ix_quarantine_unit", "unit_id"),
)

analysis_runs = Table(
    "analysis_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS),
    Column("params", JSON),
    Column("summary", JSON),
)

_SEQ = BigInteger().with_variant(Integer, "sqlite")  # SQLite auto-increments only an INTEGER primary key

taxii_collections = Table(
    "taxii_collections",
    metadata,
    Column("id", String(80), primary_key=True),  # a UUID, as TAXII 2.1 asks
    Column("party", String(16), nullable=False),  # the party whose users read it (this node's own: internal)
    Column("kind", String(40), nullable=False),  # product kind (sites, tracks, reports …)
    Column("title", String(200), nullable=False),
    Column("description", Text),
    Column("marking", String(400), nullable=False),  # marking given to objects added over TAXII (POST)
    Column("last_added_us", BigInteger, nullable=False, server_default="0"),  # newest date_added, µs since epoch
    Column("created_at", TS, nullable=False),
    UniqueConstraint("party", "kind", name="uq_taxii_collections_party_kind"),
)
"""TAXII 2.1 collections: one per recipient party and product kind (migration 5)."""

stix_objects = Table(
    "stix_objects",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("collection_id", String(80), ForeignKey("taxii_collections.id", ondelete="CASCADE"), nullable=False),
    Column("stix_id", String(300), nullable=False),
    Column("type", String(250), nullable=False),
    Column("spec_version", String(10), nullable=False),
    Column("version", String(40), nullable=False),  # the object's modified (else created, else date_added) as sent
    Column("version_us", BigInteger, nullable=False),  # the same, µs since epoch (ordering, match[version])
    Column("added_us", BigInteger, nullable=False),  # date_added: strictly increasing per collection, µs
    Column("is_latest", Boolean, nullable=False),  # newest live version of its id in the collection
    Column("is_first", Boolean, nullable=False),  # oldest live version of its id in the collection
    Column("kind", String(40), nullable=False),  # egress: product kind
    Column("marking", String(400), nullable=False),  # egress: canonical marking text
    Column("about", JSON, nullable=False),  # egress: the parties the object is about
    Column("body", Text, nullable=False),  # the STIX object, JSON text
    Column("retracted_at", TS),  # retracted (TAXII DELETE): hidden from every reader, kept for audit
    Column("retracted_by", String(80)),
    UniqueConstraint("collection_id", "added_us", name="uq_stix_objects_added"),  # paging by date_added
    UniqueConstraint("collection_id", "stix_id", "version_us", name="uq_stix_objects_version"),  # idempotent publish
    Index("ix_stix_objects_latest", "collection_id", "is_latest", "added_us"),  # match[version]=last (the default)
    Index("ix_stix_objects_type", "collection_id", "type", "added_us"),  # match[type]
)
"""STIX 2.1 objects served over TAXII, one row per object version and collection (migration 5)."""

taxii_status = Table(
    "taxii_status",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("collection_id", String(80), ForeignKey("taxii_collections.id", ondelete="CASCADE"), nullable=False),
    Column("username", String(80), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("record", JSON, nullable=False),  # the TAXII status resource
)
"""Status resources of objects added over TAXII (migration 5)."""

selectors = Table(
    "selectors",
    metadata,
    Column("kind", String(16), primary_key=True),  # atalaya.share.matching.selectors.KINDS
    Column("item", String(300), primary_key=True),  # normal form, KIND:VALUE
    Column("label", String(300)),  # the value as first imported (stays on this node)
    Column("source", String(300)),  # file or user it came from
    Column("added_at", TS, nullable=False),
    *_common(),
)
"""This node's selector lists for private comparisons with partners (migration 6)."""

matches = Table(
    "matches",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("initiator", String(16), nullable=False),
    Column("responder", String(16), nullable=False),
    Column("selector", String(16), nullable=False),
    Column("reveal", String(16), nullable=False),  # intersection | size
    Column("agreement", String(140), nullable=False),  # ID@vN of the term in force
    Column("role", String(16), nullable=False),  # this node's role: initiator | responder
    Column("own_items", Integer, nullable=False),
    Column("peer_items", Integer, nullable=False),
    Column("overlap", Integer),  # what this node learnt (None until it has)
    Column("started_at", TS, nullable=False),
    Column("completed_at", TS),
    Column("log_index", BigInteger),
    Index("ix_matches_day", "initiator", "selector", "started_at"),
)
"""Private comparisons this node took part in: who, what kind, sizes and the overlap it learnt (migration 6)."""

partners = Table(
    "partners",
    metadata,
    Column("party", String(16), primary_key=True),
    Column("url", String(400), nullable=False),  # the partner node's base URL (its API and /taxii2/)
    Column("verifier_key", String(400), nullable=False),  # its log's note verifier key, pinned when added
    Column("origin", String(200), nullable=False),  # its log's checkpoint origin line
    Column("added_at", TS, nullable=False),
    Column("log_size", BigInteger, nullable=False, server_default="0"),  # sync cursor: its log size last verified
    Column("checkpoint", Text),  # the last checkpoint of its log this node verified (and cosigned)
    Column("synced_at", TS),
    Column("cursors", JSON),  # per partner collection: the date_added of the newest object received
    Column("witness_key", String(400)),  # its witness cosignature key (checks the cosignatures it sends us)
)
"""Partner nodes this node federates with; their API tokens live in keys/partners/, not here (migration 6)."""

received_objects = Table(
    "received_objects",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("origin", String(16), nullable=False),  # the partner party that shared it
    Column("collection_id", String(80), nullable=False),  # the partner's TAXII collection
    Column("stix_id", String(300), nullable=False),
    Column("type", String(250), nullable=False),
    Column("version", String(40), nullable=False),
    Column("product_kind", String(40)),
    Column("marking", String(400), nullable=False),  # as read from its STIX markings (most restrictive if unknown)
    Column("body", Text, nullable=False),
    Column("body_sha256", String(64), nullable=False),
    Column("log_index", BigInteger),  # the partner's publication entry that lists it (inclusion verified)
    Column("received_at", TS, nullable=False),
    Column("retracted_at", TS),  # retracted by the originator: hidden from users, kept for audit
    Column("retraction", JSON),  # the originator's retraction record
    UniqueConstraint("origin", "stix_id", "version", name="uq_received_objects_version"),
    Index("ix_received_objects_type", "origin", "type"),
)
"""STIX objects received from partner nodes by sync, with their origin, markings and the log entry proving them
(migration 6)."""

cosignatures = Table(
    "cosignatures",
    metadata,
    Column("witness", String(16), primary_key=True),  # the partner party whose node cosigned
    Column("size", BigInteger, primary_key=True),  # tree size of the cosigned checkpoint
    Column("checkpoint", Text, nullable=False),  # this node's checkpoint with the witness's cosignature line
    Column("received_at", TS, nullable=False),
)
"""Cosignatures of this node's checkpoints by partner witnesses (published with the checkpoint; migration 6)."""

host_checks = Table(
    "host_checks",
    metadata,
    Column("origin", String(16), primary_key=True),  # the collector whose sortie was checked
    Column("sortie_id", ID, primary_key=True),
    Column("status", String(20), nullable=False),  # agrees | differs | no-track | unverifiable
    Column("claimed", JSON, nullable=False),  # the collector's logged sortie-over-territory records
    Column("recomputed", JSON, nullable=False),  # this node's own accounting of the shared flown track
    Column("differences", JSON, nullable=False),  # what disagrees, with both figures
    Column("own_observations", JSON),  # the flown track against this node's own fixes of the platform, if any
    Column("checked_at", TS, nullable=False),
    Column("log_index", BigInteger),
)
"""The host's own recomputation of partners' sorties over its territory (migration 6)."""
