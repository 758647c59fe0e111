"""Agreements as data: loading, JSON-Schema validation, versions and storage.

An agreement is a YAML or JSON document (schema:
``atalaya/sovereignty/schemas/agreement.schema.json``, Draft 2020-12; guide:
``docs/agreements.md``). It is validated in two steps: the JSON Schema (shape,
types, required fields), then the checks a schema cannot express (``from``
before ``to``, altitude band ordered, collection ids unique, collector and host
among the parties, polygons valid). Every error names the file and the field
and says how to fix it.

Versions: ``(id, version)`` is unique. For one id, the version in force at a
time ``t`` is the highest version whose effective period has begun at ``t``; a
new version thus supersedes older ones from its effective date, and the older
versions stay in the history. If that version has ended at ``t``, nothing is in
force (an expired newer version does not revive an older one).

>>> doc = example_document()
>>> a = parse_agreement(doc, source="example")
>>> a.id, a.version, a.collection[0].id, len(a.sha256)
('AGR-X', 1, 'AGR-X/C1', 64)
>>> s = AgreementSet([a])
>>> s.in_force("AGR-X", parse_time("2026-03-05T00:00:00Z")).version
1
>>> s.in_force("AGR-X", parse_time("2025-01-01T00:00:00Z")) is None
True
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import shapely
import yaml
from sqlalchemy import func, select, update

from atalaya.core.errors import ValidationError
from atalaya.core.markings import TLP, Caveat
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks

SCHEMA_PATH = Path(__file__).parent / "schemas" / "agreement.schema.json"
"""The agreement JSON Schema (Draft 2020-12)."""

_SUFFIXES = (".yaml", ".yml", ".json")


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, kw_only=True)
class Area:
    """One authorised area: a list of states or one polygon."""

    states: tuple[str, ...] = ()
    """ISO 3166-2 state codes (``MX-SON``); empty for a polygon area."""
    polygon: dict[str, Any] | None = None
    """GeoJSON Polygon/MultiPolygon in lon/lat; ``None`` for a state area."""


@dataclass(frozen=True, kw_only=True)
class TimeWindow:
    """A closed period ``[start, end]`` (UTC)."""

    start: datetime
    """Start (inclusive)."""
    end: datetime
    """End (inclusive)."""

    def contains(self, t: datetime) -> bool:
        """Whether ``t`` lies in the window."""
        return self.start <= t <= self.end


@dataclass(frozen=True, kw_only=True)
class Collection:
    """One authorised collection item of an agreement."""

    id: str
    """Item id, e.g. ``AGR-2026-001/C1`` (what a sortie claims as its authorisation)."""
    collector: str
    """Party that flies."""
    host: str
    """Party over whose territory it flies."""
    platform_types: tuple[str, ...]
    """Platform types authorised."""
    areas: tuple[Area, ...]
    """Authorised areas (a position is authorised when inside any)."""
    max_depth_km: float
    """Greatest authorised distance from the host's boundary, km."""
    time_windows: tuple[TimeWindow, ...]
    """Authorised periods."""
    altitude_min_m: float
    """Lowest authorised altitude, metres MSL."""
    altitude_max_m: float
    """Highest authorised altitude, metres MSL."""
    notification_lead_h: float
    """Hours before take-off by which the host must be notified."""
    report_deadline_h: float
    """Hours after landing by which the post-flight report is due."""


@dataclass(frozen=True, kw_only=True)
class Sharing:
    """What one party may share with another."""

    from_party: str
    """Releasing party."""
    to_party: str
    """Receiving party."""
    max_tlp: TLP
    """Most restrictive TLP level allowed."""
    caveats: tuple[str, ...] = ()
    """Caveats that must accompany what is shared (``Caveat`` values)."""
    products: tuple[str, ...] = ()
    """Product kinds covered (empty: any)."""


@dataclass(frozen=True, kw_only=True)
class Matching:
    """A private selector comparison two parties allow each other (see :mod:`atalaya.share.matching`)."""

    parties: tuple[str, str]
    """The two parties; either may start a comparison."""
    selectors: tuple[str, ...]
    """Selector kinds that may be compared."""
    reveal: str
    """``intersection`` (each side learns the common items) or ``size`` (only how many)."""
    max_items: int = 10_000
    """Largest list either side may submit to one comparison."""
    max_per_day: int = 20
    """Comparisons one party may start per selector kind per UTC day."""

    def allows(self, a: str, b: str, selector: str) -> bool:
        """Whether parties ``a`` and ``b`` may compare selectors of this kind under this term."""
        return {a, b} == set(self.parties) and selector in self.selectors


@dataclass(frozen=True, kw_only=True)
class Agreement:
    """One version of an agreement, parsed and validated."""

    id: str
    """Agreement id, stable across versions."""
    version: int
    """Version number (≥ 1)."""
    title: str
    """Title."""
    parties: tuple[str, ...]
    """Party codes."""
    effective_from: datetime
    """Start of the effective period (UTC)."""
    effective_to: datetime | None
    """End of the effective period (``None``: open-ended)."""
    collection: tuple[Collection, ...]
    """Authorised collection items."""
    sharing: tuple[Sharing, ...]
    """Sharing terms."""
    matching: tuple[Matching, ...] = ()
    """Private selector comparisons allowed."""
    retention_observations_days: int
    """Days observations may be kept."""
    retention_products_days: int
    """Days products may be kept."""
    document: dict[str, Any] = field(compare=False, repr=False)
    """The normalised source document (JSON-ready)."""
    sha256: str
    """SHA-256 of the canonical JSON of :attr:`document`."""
    source: str = ""
    """Where it was read from (file path or ``store``)."""

    def in_effect(self, t: datetime) -> bool:
        """Whether ``t`` lies in this version's effective period."""
        return self.effective_from <= t and (self.effective_to is None or t <= self.effective_to)

    def item(self, collection_id: str) -> Collection | None:
        """The collection item with this id, if any."""
        return next((c for c in self.collection if c.id == collection_id), None)


# --------------------------------------------------------------------------- parsing and validation


def parse_time(text: str | datetime) -> datetime:
    """An ISO 8601 date-time (``Z`` or offset) as an aware UTC datetime.

    >>> parse_time("2026-03-01T06:00:00+02:00").isoformat()
    '2026-03-01T04:00:00+00:00'
    """
    if isinstance(text, datetime):
        t = text
    else:
        try:
            t = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                f"not an ISO 8601 date-time: {text!r}", hint="write e.g. 2026-03-01T00:00:00Z"
            ) from None
    if t.tzinfo is None:
        raise ValidationError(
            f"date-time {text!r} has no time zone", hint="append Z for UTC, e.g. 2026-03-01T00:00:00Z"
        )
    return t.astimezone(UTC)


def _plain(obj: Any) -> Any:
    """YAML values made JSON-ready: dates and datetimes (YAML parses unquoted ones) become ISO text."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, datetime):
        t = obj if obj.tzinfo is not None else obj.replace(tzinfo=UTC)
        return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(obj, date):
        return f"{obj.isoformat()}T00:00:00Z"
    return obj


@cache
def agreement_schema() -> dict[str, Any]:
    """The agreement JSON Schema."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def _path_text(path: Iterable[Any]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(document)"


def _hint_for(err: jsonschema.ValidationError) -> str:
    v = err.validator
    if v == "required":
        return "add the missing field (see docs/agreements.md for the structure)"
    if v == "additionalProperties":
        return "remove or rename the unknown field; field names are case-sensitive"
    if v == "pattern" and err.schema.get("description"):
        return str(err.schema["description"])
    if v == "pattern":
        return f"the value must match {err.validator_value}"
    if v == "type":
        return f"give a value of type {err.validator_value}"
    if v == "enum":
        return "use one of " + ", ".join(map(str, err.validator_value))
    if v in ("minimum", "minItems", "minLength"):
        return f"the value must be at least {err.validator_value}"
    if v == "oneOf":
        return "an area is either {states: [ISO 3166-2 codes]} or {polygon: GeoJSON Polygon/MultiPolygon}"
    return "see docs/agreements.md"


def validate_document(doc: Any, *, source: str = "<document>") -> dict[str, Any]:
    """Validate an agreement document; return its normalised (JSON-ready) form.

    Raises :class:`ValidationError` listing every problem as ``source: field: message``.
    """
    doc = _plain(doc)
    if not isinstance(doc, dict):
        raise ValidationError(
            f"{source}: an agreement must be a mapping, not {type(doc).__name__}",
            hint="start the file with `id: …`, `version: …` (see docs/agreements.md)",
        )
    validator = jsonschema.Draft202012Validator(agreement_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    problems: list[tuple[str, str, str]] = []
    for e in errors:
        # For oneOf failures, the most specific sub-error names the real field.
        best = jsonschema.exceptions.best_match([e]) if e.context else e
        problems.append((_path_text(best.absolute_path), best.message, _hint_for(best)))
    if not problems:
        problems = _semantic_problems(doc)
    if problems:
        lines = [f"{source}: {p}: {m}" for p, m, _ in problems]
        raise ValidationError(
            f"agreement {doc.get('id', '?')!r} is invalid ({len(problems)} problem(s)):\n  " + "\n  ".join(lines),
            hint="; ".join(dict.fromkeys(h for _, _, h in problems)),
        )
    return doc


def _semantic_problems(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    parties = set(doc["parties"])
    eff = doc["effective"]
    if eff.get("to") and parse_time(eff["to"]) <= parse_time(eff["from"]):
        out.append(("effective.to", "ends before it begins", "make effective.to later than effective.from"))
    seen: set[str] = set()
    for i, c in enumerate(doc["collection"]):
        where = f"collection[{i}]"
        if c["id"] in seen:
            out.append((f"{where}.id", f"duplicate collection id {c['id']!r}", "give each collection item its own id"))
        seen.add(c["id"])
        for key in ("collector", "host"):
            if c[key] not in parties:
                out.append((f"{where}.{key}", f"{c[key]!r} is not among the parties", "add it to parties or fix it"))
        if c["collector"] == c["host"]:
            out.append((f"{where}.host", "host equals collector", "the host is the party whose territory is flown"))
        if c["altitude_m"]["min"] > c["altitude_m"]["max"]:
            out.append((f"{where}.altitude_m", "min is above max", "swap min and max"))
        for j, w in enumerate(c["time_windows"]):
            if parse_time(w["to"]) <= parse_time(w["from"]):
                out.append((f"{where}.time_windows[{j}]", "ends before it begins", "make `to` later than `from`"))
        for j, a in enumerate(c["areas"]):
            if "polygon" in a:
                try:
                    g = shapely.from_geojson(json.dumps(a["polygon"]))
                except Exception as e:  # shapely raises GEOSException or ValueError for bad GeoJSON
                    out.append((f"{where}.areas[{j}].polygon", f"unreadable geometry: {e}", "give valid GeoJSON"))
                    continue
                if not g.is_valid or g.area == 0.0:
                    reason = shapely.is_valid_reason(g)
                    out.append(
                        (
                            f"{where}.areas[{j}].polygon",
                            f"invalid polygon ({reason})",
                            "close every ring, avoid self-intersections, give lon/lat order",
                        )
                    )
    for i, s in enumerate(doc["sharing"]):
        for key in ("from", "to"):
            if s[key] not in parties:
                out.append((f"sharing[{i}].{key}", f"{s[key]!r} is not among the parties", "add it to parties"))
        for c in s.get("caveats", []):
            try:
                Caveat(c)
            except ValueError:
                out.append(
                    (
                        f"sharing[{i}].caveats",
                        f"unknown caveat {c!r}",
                        "known caveats: " + ", ".join(x.value for x in Caveat),
                    )
                )
    for i, m in enumerate(doc.get("matching", ())):
        for p in m["parties"]:
            if p not in parties:
                out.append((f"matching[{i}].parties", f"{p!r} is not among the parties", "add it to parties"))
    return out


def document_sha256(doc: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces, UTF-8) of a normalised document."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_agreement(doc: Any, *, source: str = "<document>") -> Agreement:
    """Validate a document and build the :class:`Agreement`."""
    d = validate_document(doc, source=source)
    eff = d["effective"]
    items = tuple(
        Collection(
            id=c["id"],
            collector=c["collector"],
            host=c["host"],
            platform_types=tuple(c["platform_types"]),
            areas=tuple(
                Area(states=tuple(a["states"])) if "states" in a else Area(polygon=a["polygon"]) for a in c["areas"]
            ),
            max_depth_km=float(c["max_depth_km"]),
            time_windows=tuple(
                TimeWindow(start=parse_time(w["from"]), end=parse_time(w["to"])) for w in c["time_windows"]
            ),
            altitude_min_m=float(c["altitude_m"]["min"]),
            altitude_max_m=float(c["altitude_m"]["max"]),
            notification_lead_h=float(c["notification_lead_h"]),
            report_deadline_h=float(c["report_deadline_h"]),
        )
        for c in d["collection"]
    )
    sharing = tuple(
        Sharing(
            from_party=s["from"],
            to_party=s["to"],
            max_tlp=TLP.parse(s["max_tlp"]),
            caveats=tuple(s.get("caveats", ())),
            products=tuple(s.get("products", ())),
        )
        for s in d["sharing"]
    )
    matching = tuple(
        Matching(
            parties=(m["parties"][0], m["parties"][1]),
            selectors=tuple(m["selectors"]),
            reveal=m["reveal"],
            max_items=int(m.get("max_items", 10_000)),
            max_per_day=int(m.get("max_per_day", 20)),
        )
        for m in d.get("matching", ())
    )
    return Agreement(
        id=d["id"],
        version=int(d["version"]),
        title=d["title"],
        parties=tuple(d["parties"]),
        effective_from=parse_time(eff["from"]),
        effective_to=parse_time(eff["to"]) if eff.get("to") else None,
        collection=items,
        sharing=sharing,
        matching=matching,
        retention_observations_days=int(d["retention"]["observations_days"]),
        retention_products_days=int(d["retention"]["products_days"]),
        document=copy.deepcopy(d),
        sha256=document_sha256(d),
        source=source,
    )


def load_agreement(path: Path | str) -> Agreement:
    """Read, validate and parse one YAML or JSON agreement file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ValidationError(f"cannot read agreement file {p}: {e}", hint="check the path") from e
    try:
        doc = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise ValidationError(
            f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: {e}",
            hint="fix the syntax at the line shown",
        ) from e
    return parse_agreement(doc, source=str(p))


def agreement_files(paths: Sequence[Path | str]) -> list[Path]:
    """Files named, plus the ``*.yaml``/``*.yml``/``*.json`` files of directories named (sorted)."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in _SUFFIXES and q.is_file()))
        elif p.exists():
            out.append(p)
        else:
            raise ValidationError(f"no such agreement file or directory: {p}", hint="check the path")
    return out


def load_agreements(paths: Sequence[Path | str]) -> AgreementSet:
    """Load every agreement file named (directories: their YAML/JSON files) into an :class:`AgreementSet`."""
    return AgreementSet([load_agreement(p) for p in agreement_files(paths)])


# --------------------------------------------------------------------------- versions


class AgreementSet:
    """All known versions of all agreements, with the version-in-force rule."""

    def __init__(self, agreements: Iterable[Agreement] = ()) -> None:
        self._by_id: dict[str, dict[int, Agreement]] = {}
        for a in agreements:
            self.add(a)

    def add(self, a: Agreement) -> None:
        """Add one version; the same content twice is fine, different content under one version is an error."""
        versions = self._by_id.setdefault(a.id, {})
        old = versions.get(a.version)
        if old is not None and old.sha256 != a.sha256:
            raise ValidationError(
                f"agreement {a.id} version {a.version} from {a.source} differs from the one from {old.source}",
                hint="a changed agreement needs a new version number; versions are never edited in place",
            )
        versions[a.version] = a

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_id.values())

    def __iter__(self) -> Any:
        return iter(self.all())

    def ids(self) -> list[str]:
        """Agreement ids, sorted."""
        return sorted(self._by_id)

    def all(self) -> list[Agreement]:
        """Every version of every agreement, by id then version."""
        return [v for i in self.ids() for _, v in sorted(self._by_id[i].items())]

    def history(self, agreement_id: str) -> list[Agreement]:
        """All versions of one agreement, oldest first (empty if unknown)."""
        return [v for _, v in sorted(self._by_id.get(agreement_id, {}).items())]

    def latest(self, agreement_id: str) -> Agreement | None:
        """The highest version of an agreement."""
        h = self.history(agreement_id)
        return h[-1] if h else None

    def in_force(self, agreement_id: str, t: datetime) -> Agreement | None:
        """The version in force at ``t``: the highest version whose period has begun, if it has not ended."""
        begun = [a for a in self.history(agreement_id) if a.effective_from <= t]
        if not begun:
            return None
        a = begun[-1]
        return a if a.in_effect(t) else None

    def matching_term(self, a: str, b: str, selector: str, t: datetime) -> tuple[Agreement, Matching] | None:
        """The first matching term in force at ``t`` letting ``a`` and ``b`` compare selectors of this kind."""
        for agreement_id in self.ids():
            ag = self.in_force(agreement_id, t)
            if ag is None:
                continue
            for term in ag.matching:
                if term.allows(a, b, selector):
                    return ag, term
        return None

    def find_item(self, collection_id: str) -> tuple[str, str] | None:
        """``(agreement id, collection id)`` of an item id in any version, if known."""
        for a in self.all():
            if a.item(collection_id) is not None:
                return a.id, collection_id
        return None


# --------------------------------------------------------------------------- storage


def store_agreements(store: KnowledgeStore, agreements: Iterable[Agreement], *, marking: str = "TLP:AMBER") -> int:
    """Store agreement versions in the ``agreements`` table; returns how many were new.

    A version already stored with the same SHA-256 is left alone; with other
    content it is refused. After storing, the highest version of each id is
    ``active`` and older ones ``superseded`` (all are kept).
    """
    items = list(agreements)
    new = 0
    now = datetime.now(UTC)
    with store.begin() as conn:
        for a in items:
            row = conn.execute(
                select(ks.agreements.c.sha256).where(
                    (ks.agreements.c.id == a.id) & (ks.agreements.c.version == a.version)
                )
            ).first()
            if row is not None:
                if row[0] != a.sha256:
                    raise ValidationError(
                        f"agreement {a.id} version {a.version} is already stored with other content "
                        f"(stored sha256 {row[0][:12]}…, {a.source} has {a.sha256[:12]}…)",
                        hint="give the changed agreement a new version number; stored versions are immutable",
                    )
                continue
            conn.execute(
                ks.agreements.insert().values(
                    id=a.id,
                    version=a.version,
                    title=a.title,
                    document=a.document,
                    sha256=a.sha256,
                    effective_from=a.effective_from,
                    effective_to=a.effective_to,
                    status="active",
                    created_at=now,
                    marking=marking,
                    provenance={"source": a.source},
                )
            )
            new += 1
        for aid in {a.id for a in items}:
            t = ks.agreements
            top = conn.execute(select(func.max(t.c.version)).where(t.c.id == aid)).scalar_one()
            conn.execute(update(t).where((t.c.id == aid) & (t.c.version == top)).values(status="active"))
            conn.execute(update(t).where((t.c.id == aid) & (t.c.version < top)).values(status="superseded"))
    return new


def stored_agreements(store: KnowledgeStore) -> AgreementSet:
    """Every stored version, re-validated, as an :class:`AgreementSet`."""
    with store.begin() as conn:
        rows = conn.execute(
            select(ks.agreements.c.id, ks.agreements.c.version, ks.agreements.c.document, ks.agreements.c.sha256)
        ).all()
    out = AgreementSet()
    for aid, version, doc, sha in rows:
        a = parse_agreement(doc, source=f"store:{aid}@v{version}")
        if a.sha256 != sha:
            raise ValidationError(
                f"stored agreement {aid} version {version} does not match its sha256",
                hint="the row was altered outside Atalaya; restore it from the signed log or the original file",
            )
        out.add(a)
    return out


def stored_status(store: KnowledgeStore) -> list[dict[str, Any]]:
    """Rows of the ``agreements`` table without the documents (for listings)."""
    t = ks.agreements
    with store.begin() as conn:
        rows = conn.execute(
            select(
                t.c.id, t.c.version, t.c.title, t.c.status, t.c.effective_from, t.c.effective_to, t.c.sha256
            ).order_by(t.c.id, t.c.version)
        ).all()
    return [dict(r._mapping) for r in rows]


def example_document() -> dict[str, Any]:
    """A small valid agreement document (docs and tests start from it)."""
    return {
        "id": "AGR-X",
        "version": 1,
        "title": "Example",
        "parties": ["USA", "MEX"],
        "effective": {"from": "2026-02-28T00:00:00Z", "to": "2026-06-30T00:00:00Z"},
        "collection": [
            {
                "id": "AGR-X/C1",
                "collector": "USA",
                "host": "MEX",
                "platform_types": ["MQ-9"],
                "areas": [{"states": ["MX-SON"]}],
                "max_depth_km": 60,
                "time_windows": [{"from": "2026-03-01T00:00:00Z", "to": "2026-03-31T00:00:00Z"}],
                "altitude_m": {"min": 5000, "max": 9000},
                "notification_lead_h": 24,
                "report_deadline_h": 48,
            }
        ],
        "sharing": [{"from": "USA", "to": "MEX", "max_tlp": "AMBER", "caveats": ["INTEL-ONLY"], "products": []}],
        "retention": {"observations_days": 90, "products_days": 365},
    }
