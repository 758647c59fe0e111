"""People, organisations, phones, vehicles, companies and accounts of the scenario.

:func:`build_society` makes the hidden truth: cartel organisations split into
cells (production, transport, finance, enforcement) with leaders, cell
lieutenants and brokers who sit in two cells; cooks, drivers, accountants and
lookouts; their relatives (nominee owners), front companies and accounts; and
a legitimate background population with its own employers. Phones and
vehicles carry the site they sit at, so the world generator can place SIGINT
emitters and drive vehicles along routes.

It also makes what an analyst would actually receive: FollowTheMoney-style
records from several sources (police reports, financial intelligence,
customs, phone-subscriber and hotel registers, the company registry), each
true entity appearing in several sources under variant spellings, plus an
OFAC SDN-like designation list. :func:`write_society` writes both::

    OUT/records/entities/<source>.jsonl   FtM entities and edges, one source per file
    OUT/records/designations.csv          ent_num, name, type, program, remarks
    OUT/truth/network.json                organisations, cells, roles, links, record → entity map
    OUT/truth/designation_matches.csv     which designation rows are which true entity

Everything is drawn from a seeded ``numpy`` generator and written sorted, so
one seed gives identical bytes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from atalaya.core.errors import ValidationError
from atalaya.core.ids import prefixed_id
from atalaya.scenario.names import (
    ORGANISATION_NAMES,
    STATES,
    PersonName,
    company_variant,
    corrupt_token,
    random_company_name,
    random_nickname,
    random_person_name,
    random_variant,
    strip_accents,
    variant,
)

SITE_KINDS: tuple[str, ...] = ("lab", "stash_house", "airstrip", "landing_beach")
"""Site kinds the society knows (as built by the world generator)."""
CELL_KINDS: tuple[str, ...] = ("production", "transport", "finance", "enforcement")
"""Kinds of cell every organisation has."""
ROLES: tuple[str, ...] = ("leader", "lieutenant", "broker", "cook", "driver", "accountant", "lookout")
"""Roles of organisation members."""
SOURCES: tuple[str, ...] = (
    "company_registry",
    "customs",
    "financial_intel",
    "hotel_register",
    "phone_subscribers",
    "police_reports",
)
"""Record sources; one JSON Lines file each under ``records/entities/``."""
SIZES: tuple[str, ...] = ("demo", "small", "large")
"""Scenario sizes."""

BANKS: tuple[tuple[str, str], ...] = (
    ("002", "Banamex"),
    ("012", "BBVA México"),
    ("014", "Santander"),
    ("021", "HSBC"),
    ("030", "BanBajío"),
    ("036", "Inbursa"),
    ("058", "Banregio"),
    ("072", "Banorte"),
    ("127", "Banco Azteca"),
    ("137", "BanCoppel"),
)
"""(CLABE bank code, bank name)."""

_AREA_CODES = ("667", "668", "669", "664", "686", "656", "614", "662", "899", "868", "818", "331", "443", "744")
_MNCS = ("020", "030", "050")
_VEHICLE_MODELS: dict[str, tuple[str, ...]] = {
    "car": ("Nissan Versa", "Chevrolet Aveo", "Volkswagen Jetta", "Toyota Corolla", "Nissan Sentra", "Kia Rio"),
    "pickup": ("Ford Lobo", "Chevrolet Silverado", "Toyota Tacoma", "Nissan NP300", "RAM 2500", "Toyota Hilux"),
    "truck": ("Freightliner Cascadia", "Kenworth T680", "International LT", "Hino 500", "Isuzu ELF"),
}
_COLOURS = ("blanco", "negro", "gris", "plata", "rojo", "azul", "arena", "verde")
_SECTORS = ("transporte", "agricultura", "comercio", "construcción", "inmobiliario", "cambio de divisas", "química")


@dataclass(frozen=True, kw_only=True)
class SiteRef:
    """A site of the hidden world, as the world generator built it."""

    site_id: str
    """Site id (shared with the site ground truth)."""
    kind: str
    """One of :data:`SITE_KINDS`."""
    lon: float
    """Longitude, degrees."""
    lat: float
    """Latitude, degrees."""


@dataclass(frozen=True, kw_only=True)
class Person:
    """A true person (organisation member, relative or background civilian)."""

    person_id: str
    """Stable id ``person--…``."""
    name: PersonName
    """Legal name."""
    gender: str
    """``M`` or ``F``."""
    birth_date: date
    """Date of birth."""
    state: str
    """State of birth (name)."""
    curp: str
    """CURP-like personal id (18 characters, valid check digit)."""
    rfc: str
    """RFC-like tax id (13 characters)."""
    aliases: tuple[str, ...]
    """Nicknames such as ``El Flaco`` (empty for most civilians)."""
    org_id: str | None
    """Organisation the person belongs to (``None`` for relatives and civilians)."""
    role: str
    """One of :data:`ROLES`, or ``relative`` / ``civilian``."""
    cell_ids: tuple[str, ...]
    """Cells the person works in (two for brokers)."""


@dataclass(frozen=True, kw_only=True)
class Cell:
    """A cell of an organisation."""

    cell_id: str
    """Stable id ``cell--…``."""
    org_id: str
    """Owning organisation."""
    kind: str
    """One of :data:`CELL_KINDS`."""
    lieutenant_id: str
    """The member heading the cell."""
    member_ids: tuple[str, ...]
    """All members, lieutenant and brokers included, sorted."""
    site_ids: tuple[str, ...]
    """Sites the cell operates."""


@dataclass(frozen=True, kw_only=True)
class Organisation:
    """A cartel organisation."""

    org_id: str
    """Stable id ``org--…``."""
    name: str
    """Name, e.g. ``Cártel de Los Álamos``."""
    aliases: tuple[str, ...]
    """Other names (short forms, acronym)."""
    state: str
    """Home state."""
    leader_ids: tuple[str, ...]
    """Leaders (one or two)."""
    broker_ids: tuple[str, ...]
    """Brokers linking two cells."""
    cell_ids: tuple[str, ...]
    """Cells, one or more per kind."""
    company_ids: tuple[str, ...]
    """Front companies."""


@dataclass(frozen=True, kw_only=True)
class Company:
    """A company: a front of an organisation or a legitimate business."""

    company_id: str
    """Stable id ``company--…``."""
    name: str
    """Name without legal form."""
    legal_form: str
    """E.g. ``S.A. de C.V.``."""
    rfc: str
    """RFC-like tax id (12 characters)."""
    incorporated: date
    """Incorporation date."""
    sector: str
    """Business sector."""
    front: bool
    """True for front companies of an organisation."""
    org_id: str | None
    """Organisation behind a front company."""

    @property
    def full_name(self) -> str:
        """Name with legal form."""
        return f"{self.name} {self.legal_form}"


@dataclass(frozen=True, kw_only=True)
class Account:
    """A bank account."""

    account_id: str
    """The 18-digit CLABE (valid check digit); also the id used in transactions."""
    bank: str
    """Bank name."""
    holder_id: str
    """Person or company holding the account."""
    org_id: str | None
    """Organisation that controls the account (fronts, members, nominee relatives)."""
    purpose: str
    """``personal``, ``business`` or ``front``."""


@dataclass(frozen=True, kw_only=True)
class Phone:
    """A mobile phone (a SIGINT emitter)."""

    phone_id: str
    """Emitter id used by SIGINT: an IMSI-like 15-digit string (MCC 334)."""
    msisdn: str
    """Phone number, ``+52`` and ten digits."""
    owner_id: str
    """Person who carries it."""
    site_id: str | None
    """Site where it mostly sits (``None``: moves with its owner)."""
    org_id: str | None
    """Organisation of the owner."""


@dataclass(frozen=True, kw_only=True)
class Vehicle:
    """A road vehicle."""

    vehicle_id: str
    """Stable id ``vehicle--…``."""
    plate: str
    """Mexican state plate, e.g. ``VKL-123-A``."""
    state: str
    """Issuing state (name)."""
    kind: str
    """``car``, ``pickup`` or ``truck``."""
    model: str
    """Make and model."""
    colour: str
    """Colour (Spanish)."""
    owner_id: str
    """Registered owner (person or company)."""
    site_id: str | None
    """Site it is based at (``None``: no site)."""
    org_id: str | None
    """Organisation using it."""


@dataclass(frozen=True, kw_only=True)
class Link:
    """A true relationship between two entities."""

    link_id: str
    """Stable id ``link--…``."""
    kind: str
    """FtM edge schema: Ownership, Directorship, Family, Associate, Membership, Employment, UnknownLink."""
    source_id: str
    """Owner, director, person, member, employer or subject."""
    target_id: str
    """Asset, organisation, relative, associate or object."""
    role: str = ""
    """Relationship detail (``hermano``, ``Administrador Único``, ``50``% …)."""


@dataclass(frozen=True, kw_only=True)
class SiteLink:
    """A true link between an entity and a site."""

    entity_id: str
    """Cell, person, phone, vehicle or company id."""
    site_id: str
    """Site id."""
    relation: str
    """``operates`` (cell), ``works_at`` (person), ``located_at`` (phone, vehicle), ``owns`` (company)."""


@dataclass(frozen=True, kw_only=True)
class Record:
    """One FollowTheMoney-style record as a source holds it."""

    record_id: str
    """Record id ``rec--…`` (unique over all sources)."""
    source: str
    """One of :data:`SOURCES` (the FtM dataset)."""
    schema: str
    """FtM schema: Person, Company, Organization, Vehicle, BankAccount or an edge schema."""
    entity_id: str
    """True entity (or link) the record is about: ground truth, not written to the record."""
    properties: tuple[tuple[str, tuple[str, ...]], ...]
    """FtM properties, sorted by name."""

    def to_ftm(self) -> dict[str, Any]:
        """The FtM JSON object of this record."""
        return {
            "id": self.record_id,
            "schema": self.schema,
            "properties": {k: list(v) for k, v in self.properties},
            "datasets": [self.source],
        }


@dataclass(frozen=True, kw_only=True)
class Designation:
    """One row of the SDN-like designation list."""

    ent_num: int
    """Row number."""
    name: str
    """Listed name (SDN style: ``SURNAMES, Given``)."""
    type: str
    """``individual`` or ``entity``."""
    program: str
    """Sanctions programme, e.g. ``SDNTK``."""
    remarks: str
    """DOB, ids, a.k.a. list, links."""
    entity_id: str | None
    """True person or company designated (``None``: unrelated or namesake)."""
    note: str
    """Ground-truth note: ``designated``, ``namesake of …`` or ``unrelated``."""


@dataclass(frozen=True, kw_only=True)
class Society:
    """The people, organisations and records of one scenario."""

    seed: int
    """Seed it was built from."""
    size: str
    """One of :data:`SIZES`."""
    start: datetime
    """Scenario start (UTC)."""
    days: int
    """Scenario length in days."""
    organisations: tuple[Organisation, ...]
    """Cartel organisations."""
    cells: tuple[Cell, ...]
    """All cells."""
    people: tuple[Person, ...]
    """All people (members, relatives, civilians)."""
    companies: tuple[Company, ...]
    """Front and legitimate companies."""
    accounts: tuple[Account, ...]
    """Bank accounts."""
    phones: tuple[Phone, ...]
    """Phones (SIGINT emitters)."""
    vehicles: tuple[Vehicle, ...]
    """Road vehicles."""
    links: tuple[Link, ...]
    """True relationships."""
    site_links: tuple[SiteLink, ...]
    """True entity ↔ site links."""
    records: tuple[Record, ...]
    """Source records (entities and edges)."""
    designations: tuple[Designation, ...]
    """Designation-list rows."""
    _index: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Lazily built id → object index."""

    def entity(self, entity_id: str) -> Any:
        """The true person, company, organisation, account, vehicle or link with this id (``KeyError`` if none)."""
        if not self._index:
            self._index.update({p.person_id: p for p in self.people})
            self._index.update({c.company_id: c for c in self.companies})
            self._index.update({o.org_id: o for o in self.organisations})
            self._index.update({a.account_id: a for a in self.accounts})
            self._index.update({v.vehicle_id: v for v in self.vehicles})
            self._index.update({lk.link_id: lk for lk in self.links})
        return self._index[entity_id]


# --------------------------------------------------------------------------- ids and check digits

_CURP_ALPHABET = "0123456789ABCDEFGHIJKLMNÑOPQRSTUVWXYZ"


def clabe_check_digit(first17: str) -> int:
    """Check digit of a CLABE from its first 17 digits (weights 3, 7, 1; modulus 10).

    >>> clabe_check_digit("03218000011835971")
    9
    """
    if len(first17) != 17 or not first17.isdigit():
        raise ValidationError(f"CLABE prefix must be 17 digits, got {first17!r}")
    weights = (3, 7, 1)
    total = sum((int(d) * weights[i % 3]) % 10 for i, d in enumerate(first17))
    return (10 - total % 10) % 10


def clabe_is_valid(clabe: str) -> bool:
    """True when ``clabe`` is 18 digits with a correct check digit.

    >>> clabe_is_valid("032180000118359719"), clabe_is_valid("032180000118359718")
    (True, False)
    """
    return len(clabe) == 18 and clabe.isdigit() and clabe_check_digit(clabe[:17]) == int(clabe[17])


def curp_check_digit(first17: str) -> str:
    """Check digit of a CURP from its first 17 characters."""
    total = sum(_CURP_ALPHABET.index(c) * (18 - i) for i, c in enumerate(first17))
    return str((10 - total % 10) % 10)


def _letters(s: str) -> str:
    return "".join(c for c in strip_accents(s).upper() if c.isalpha())


def _first_inner(s: str, vowels: bool) -> str:
    for c in _letters(s)[1:]:
        if (c in "AEIOU") == vowels:
            return c
    return "X"


def _curp(name: PersonName, birth: date, gender: str, state_code: str, rng: np.random.Generator) -> str:
    pat, mat = _letters(name.paternal), _letters(name.maternal) or "X"
    given = name.given[1] if name.given[0] in ("José", "María") and len(name.given) > 1 else name.given[0]
    g = _letters(given)
    head = pat[0] + _first_inner(name.paternal, True) + mat[0] + g[0]
    body = (
        head
        + birth.strftime("%y%m%d")
        + ("H" if gender == "M" else "M")
        + state_code
        + _first_inner(name.paternal, False)
        + (_first_inner(name.maternal, False) if name.maternal else "X")
        + _first_inner(given, False)
        + (str(int(rng.integers(10))) if birth.year < 2000 else "ABCDEFGH"[int(rng.integers(8))])
    )
    return body + curp_check_digit(body)


_HOMOCLAVE = "ABCDEFGHJKLMNPRSTUVWXYZ123456789"


def _homoclave(rng: np.random.Generator) -> str:
    return "".join(_HOMOCLAVE[int(i)] for i in rng.integers(len(_HOMOCLAVE), size=3))


def _rfc_person(curp: str, rng: np.random.Generator) -> str:
    return curp[:10] + _homoclave(rng)


_STOP = {"DE", "DEL", "LA", "LAS", "LOS", "EL", "Y"}


def _rfc_company(name: str, incorporated: date, rng: np.random.Generator) -> str:
    words = [w for w in _letters_words(name) if w not in _STOP]
    initials = "".join(w[0] for w in words)[:3]
    if len(initials) < 3:
        initials = (initials + _letters(words[0])[1:])[:3] if words else "XXX"
    return initials.ljust(3, "X") + incorporated.strftime("%y%m%d") + _homoclave(rng)


def _letters_words(name: str) -> list[str]:
    return [_letters(w) for w in name.split() if _letters(w)]


# --------------------------------------------------------------------------- sizes


@dataclass(frozen=True, kw_only=True)
class _Spec:
    orgs: tuple[int, int]
    cells_per_kind: int
    cell_members: tuple[int, int]
    brokers: tuple[int, int]
    background: int
    legit_companies: int
    fronts: tuple[int, int]
    unrelated_designations: int
    namesakes: int


_SPECS: dict[str, _Spec] = {
    "demo": _Spec(
        orgs=(2, 3),
        cells_per_kind=1,
        cell_members=(3, 4),
        brokers=(1, 1),
        background=12,
        legit_companies=6,
        fronts=(2, 2),
        unrelated_designations=20,
        namesakes=2,
    ),
    "small": _Spec(
        orgs=(5, 5),
        cells_per_kind=1,
        cell_members=(5, 8),
        brokers=(2, 2),
        background=130,
        legit_companies=25,
        fronts=(3, 3),
        unrelated_designations=60,
        namesakes=10,
    ),
    "large": _Spec(
        orgs=(20, 20),
        cells_per_kind=2,
        cell_members=(6, 12),
        brokers=(2, 4),
        background=2600,
        legit_companies=220,
        fronts=(3, 5),
        unrelated_designations=300,
        namesakes=50,
    ),
}

_CELL_ROLES: dict[str, tuple[tuple[str, float], ...]] = {
    "production": (("cook", 0.75), ("lookout", 0.25)),
    "transport": (("driver", 0.8), ("lookout", 0.2)),
    "finance": (("accountant", 0.85), ("lookout", 0.15)),
    "enforcement": (("lookout", 1.0),),
}
_CELL_SITES: dict[str, tuple[str, ...]] = {
    "production": ("lab",),
    "transport": ("airstrip", "landing_beach", "stash_house"),
    "finance": (),
    "enforcement": ("stash_house",),
}


# --------------------------------------------------------------------------- builder


class _Builder:
    def __init__(self, *, seed: int, size: str, sites: Sequence[SiteRef], start: datetime, days: int) -> None:
        self.seed = seed
        self.spec = _SPECS[size]
        self.sites = sorted(sites, key=lambda s: s.site_id)
        self.start = start
        self.days = days
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0x50C1E7]))
        self.people: list[Person] = []
        self.orgs: list[Organisation] = []
        self.cells: list[Cell] = []
        self.companies: list[Company] = []
        self.accounts: list[Account] = []
        self.phones: list[Phone] = []
        self.vehicles: list[Vehicle] = []
        self.links: list[Link] = []
        self.site_links: list[SiteLink] = []
        self.plates: set[str] = set()
        self.imsis: set[str] = set()
        self.clabes: set[str] = set()
        self.counter = 0

    # -- small helpers
    def _id(self, prefix: str) -> str:
        self.counter += 1
        return prefixed_id(prefix, str(self.seed), str(self.counter))

    def _randint(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def _choice(self, seq: Sequence[Any]) -> Any:
        return seq[int(self.rng.integers(len(seq)))]

    def _person(
        self,
        *,
        role: str,
        org_id: str | None,
        cells: tuple[str, ...] = (),
        age: tuple[int, int] = (18, 70),
        gender: str | None = None,
        paternal: str | None = None,
        nickname: bool = False,
        same_name: PersonName | None = None,
    ) -> Person:
        g = gender or ("M" if self.rng.random() < (0.9 if org_id else 0.5) else "F")
        name = random_person_name(self.rng, gender=g, paternal=paternal)
        if same_name is not None:
            name = same_name
        years = self._randint(*age)
        birth = self.start.date() - timedelta(days=int(years * 365.25 + self._randint(0, 364)))
        state, code = self._choice(STATES)
        curp = _curp(name, birth, g, code, self.rng)
        aliases: tuple[str, ...] = ()
        if nickname:
            aliases = (random_nickname(self.rng, gender=g),)
            if self.rng.random() < 0.3:
                second = random_nickname(self.rng, gender=g)
                if second != aliases[0]:
                    aliases = (*aliases, second)
        p = Person(
            person_id=self._id("person"),
            name=name,
            gender=g,
            birth_date=birth,
            state=state,
            curp=curp,
            rfc=_rfc_person(curp, self.rng),
            aliases=aliases,
            org_id=org_id,
            role=role,
            cell_ids=cells,
        )
        self.people.append(p)
        return p

    def _link(self, kind: str, src: str, dst: str, role: str = "") -> None:
        self.links.append(
            Link(link_id=prefixed_id("link", kind, src, dst, role), kind=kind, source_id=src, target_id=dst, role=role)
        )

    def _account(self, holder_id: str, org_id: str | None, purpose: str) -> Account:
        while True:
            code, bank = self._choice(BANKS)
            plaza = f"{self._randint(1, 999):03d}"
            number = "".join(str(int(d)) for d in self.rng.integers(10, size=11))
            first = code + plaza + number
            clabe = first + str(clabe_check_digit(first))
            if clabe not in self.clabes:
                break
        self.clabes.add(clabe)
        acc = Account(account_id=clabe, bank=bank, holder_id=holder_id, org_id=org_id, purpose=purpose)
        self.accounts.append(acc)
        self._link("Ownership", holder_id, clabe, "titular")
        return acc

    def _phone(self, owner: Person, site_id: str | None) -> Phone:
        while True:
            imsi = "334" + self._choice(_MNCS) + "".join(str(int(d)) for d in self.rng.integers(10, size=9))
            if imsi not in self.imsis:
                break
        self.imsis.add(imsi)
        area = self._choice(_AREA_CODES)
        msisdn = "+52" + area + "".join(str(int(d)) for d in self.rng.integers(10, size=10 - len(area)))
        ph = Phone(phone_id=imsi, msisdn=msisdn, owner_id=owner.person_id, site_id=site_id, org_id=owner.org_id)
        self.phones.append(ph)
        if site_id is not None:
            self.site_links.append(SiteLink(entity_id=imsi, site_id=site_id, relation="located_at"))
        return ph

    def _vehicle(self, owner_id: str, kind: str, site_id: str | None, org_id: str | None) -> Vehicle:
        state, code = self._choice(STATES)
        letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
        while True:
            head = code[0] + "".join(letters[int(i)] for i in self.rng.integers(len(letters), size=2))
            plate = f"{head}-{self._randint(100, 999)}-{self._choice(letters)}"
            if plate not in self.plates:
                break
        self.plates.add(plate)
        v = Vehicle(
            vehicle_id=self._id("vehicle"),
            plate=plate,
            state=state,
            kind=kind,
            model=self._choice(_VEHICLE_MODELS[kind]),
            colour=self._choice(_COLOURS),
            owner_id=owner_id,
            site_id=site_id,
            org_id=org_id,
        )
        self.vehicles.append(v)
        self._link("Ownership", owner_id, v.vehicle_id, "propietario")
        if site_id is not None:
            self.site_links.append(SiteLink(entity_id=v.vehicle_id, site_id=site_id, relation="located_at"))
        return v

    def _company(self, *, front: bool, org_id: str | None) -> Company:
        name, form = random_company_name(self.rng)
        while any(c.name == name for c in self.companies):
            name, form = random_company_name(self.rng)
        inc = self.start.date() - timedelta(days=self._randint(200, 365 * 25))
        sector = (
            "transporte"
            if name.split()[0] in ("Transportes", "Fletes", "Autotransportes", "Logística")
            else (self._choice(_SECTORS))
        )
        c = Company(
            company_id=self._id("company"),
            name=name,
            legal_form=form,
            rfc=_rfc_company(name, inc, self.rng),
            incorporated=inc,
            sector=sector,
            front=front,
            org_id=org_id,
        )
        self.companies.append(c)
        return c

    # -- the world
    def build(self) -> None:
        spec = self.spec
        n_orgs = self._randint(*spec.orgs)
        org_names = list(ORGANISATION_NAMES)
        order = self.rng.permutation(len(org_names))
        site_pool: dict[str, list[SiteRef]] = {k: [s for s in self.sites if s.kind == k] for k in SITE_KINDS}
        org_sites: list[dict[str, list[SiteRef]]] = [{k: [] for k in SITE_KINDS} for _ in range(n_orgs)]
        for kind, pool in site_pool.items():  # sites dealt round-robin to organisations after a shuffle
            for j, idx in enumerate(self.rng.permutation(len(pool))):
                org_sites[j % n_orgs][kind].append(pool[int(idx)])
        for i in range(n_orgs):
            self._organisation(org_names[int(order[i])], org_sites[i])
        self._background()

    def _organisation(self, name: str, sites: dict[str, list[SiteRef]]) -> None:
        spec = self.spec
        org_id = prefixed_id("org", str(self.seed), name)
        state = self._choice(STATES)[0]
        short = name.replace("Cártel de ", "").replace("Cártel del ", "").replace("Cártel ", "")
        acronym = "".join(w[0].upper() for w in strip_accents(name).split())
        aliases = tuple(sorted({short, strip_accents(name), *([acronym] if len(acronym) >= 3 else [])} - {name}))
        leaders = [self._person(role="leader", org_id=org_id, age=(38, 66), gender="M", nickname=True)]
        if self.rng.random() < 0.5:  # a second leader, often a brother
            brothers = self.rng.random() < 0.6
            pat = leaders[0].name.paternal if brothers else None
            leaders.append(
                self._person(role="leader", org_id=org_id, age=(35, 60), gender="M", paternal=pat, nickname=True)
            )
            if brothers:
                self._link("Family", leaders[0].person_id, leaders[1].person_id, "hermano")
        cells: list[tuple[str, str, Person, list[Person], list[str]]] = []
        for kind in CELL_KINDS:
            for k in range(spec.cells_per_kind):
                cell_id = prefixed_id("cell", org_id, kind, str(k))
                lt = self._person(role="lieutenant", org_id=org_id, cells=(cell_id,), age=(28, 55), nickname=True)
                members = [lt]
                for _ in range(self._randint(*spec.cell_members) - 1):
                    roles, probs = zip(*_CELL_ROLES[kind], strict=True)
                    role = str(self.rng.choice(list(roles), p=list(probs)))
                    members.append(
                        self._person(
                            role=role, org_id=org_id, cells=(cell_id,), age=(18, 48), nickname=self.rng.random() < 0.6
                        )
                    )
                site_ids: list[str] = []
                for sk in _CELL_SITES[kind]:
                    pool = sites[sk]
                    if sk == "stash_house":  # stash houses alternate between transport and enforcement
                        pool = pool[(0 if kind == "transport" else 1) :: 2]
                    site_ids.extend(s.site_id for s in pool[k :: spec.cells_per_kind])
                cells.append((cell_id, kind, lt, members, sorted(site_ids)))
        brokers: list[Person] = []
        for _ in range(self._randint(*spec.brokers)):
            a, b = self.rng.choice(len(cells), size=2, replace=False)
            two = tuple(sorted((cells[int(a)][0], cells[int(b)][0])))
            br = self._person(role="broker", org_id=org_id, cells=two, age=(30, 55), nickname=True)
            brokers.append(br)
            for ci in (int(a), int(b)):
                cells[ci][3].append(br)
                self._link("Associate", br.person_id, cells[ci][2].person_id, "enlace")
        # relatives of leaders: nominee owners of front companies and accounts
        relatives: list[Person] = []
        for ld in leaders:
            for _ in range(self._randint(1, 3)):
                rel = str(self._choice(("hermano", "hermana", "esposa", "hijo", "hija", "primo")))
                g = "F" if rel in ("hermana", "esposa", "hija") else "M"
                pat = None if rel in ("esposa", "primo") else ld.name.paternal
                age = (18, 35) if rel in ("hijo", "hija") else (28, 60)
                r = self._person(role="relative", org_id=None, gender=g, paternal=pat, age=age)
                relatives.append(r)
                self._link("Family", ld.person_id, r.person_id, rel)
        members_all = leaders + brokers + [m for c in cells for m in c[3] if m.role != "broker"]
        for m in members_all:
            self._link("Membership", m.person_id, org_id, m.role)
        for ld in leaders:
            for c in cells:
                self._link("Associate", ld.person_id, c[2].person_id, "jefe")
            for br in brokers:
                self._link("Associate", ld.person_id, br.person_id, "jefe")
        cell_objs: list[Cell] = []
        for cell_id, kind, lt, members, site_ids in cells:
            for m in members:
                if m is not lt and m.role != "broker":
                    self._link("Associate", lt.person_id, m.person_id, "subordinado")
            cell_objs.append(
                Cell(
                    cell_id=cell_id,
                    org_id=org_id,
                    kind=kind,
                    lieutenant_id=lt.person_id,
                    member_ids=tuple(sorted(p.person_id for p in members)),
                    site_ids=tuple(site_ids),
                )
            )
            for sid in site_ids:
                self.site_links.append(SiteLink(entity_id=cell_id, site_id=sid, relation="operates"))
            self._equip_cell(kind, lt, members, site_ids)
        for ld in leaders:
            self._phone(ld, None)
            self._account(ld.person_id, org_id, "personal")
            self._vehicle(ld.person_id, "pickup" if self.rng.random() < 0.6 else "car", None, org_id)
        for br in brokers:
            self._phone(br, None)
            self._phone(br, None)
            self._account(br.person_id, org_id, "personal")
        # front companies
        fronts: list[Company] = []
        accountants = [m for c in cells if c[1] == "finance" for m in c[3]]
        for _ in range(self._randint(*self.spec.fronts)):
            co = self._company(front=True, org_id=org_id)
            fronts.append(co)
            owner = self._choice(relatives) if relatives else leaders[0]
            self._link("Ownership", owner.person_id, co.company_id, str(self._choice(("100", "50", "60"))))
            director = self._choice(accountants) if accountants else owner
            self._link("Directorship", director.person_id, co.company_id, "Administrador Único")
            for _ in range(self._randint(1, 2)):
                self._account(co.company_id, org_id, "front")
            if co.sector == "transporte" or self.rng.random() < 0.3:
                drivers = [m for c in cells if c[1] == "transport" for m in c[3] if m.role == "driver"]
                site = next((s for c in cells if c[1] == "transport" for s in c[4]), None)
                self._vehicle(co.company_id, "truck", site, org_id)
                for d in drivers[:2]:
                    self._link("Employment", co.company_id, d.person_id, "chofer")
        stash = [s for c in cells for s in c[4] if any(x.site_id == s and x.kind == "stash_house" for x in self.sites)]
        for co, sid in zip(fronts, stash, strict=False):  # fronts hold the deeds of stash houses
            self.site_links.append(SiteLink(entity_id=co.company_id, site_id=sid, relation="owns"))
        for r in relatives:
            if self.rng.random() < 0.7:
                self._account(r.person_id, org_id, "personal")
            if self.rng.random() < 0.8:
                self._phone(r, None)
        self.cells.extend(cell_objs)
        self.orgs.append(
            Organisation(
                org_id=org_id,
                name=name,
                aliases=aliases,
                state=state,
                leader_ids=tuple(sorted(p.person_id for p in leaders)),
                broker_ids=tuple(sorted(p.person_id for p in brokers)),
                cell_ids=tuple(sorted(c.cell_id for c in cell_objs)),
                company_ids=tuple(sorted(c.company_id for c in fronts)),
            )
        )

    def _equip_cell(self, kind: str, lt: Person, members: list[Person], site_ids: list[str]) -> None:
        org_id = lt.org_id
        for i, m in enumerate(members):
            if m.role == "broker":
                continue
            site = site_ids[i % len(site_ids)] if site_ids else None
            if m.role in ("cook", "lookout") or (m is lt and site is not None):
                self._phone(m, site)
                if site is not None:
                    self.site_links.append(SiteLink(entity_id=m.person_id, site_id=site, relation="works_at"))
            else:
                self._phone(m, None)
            if self.rng.random() < 0.4:
                self._phone(m, None)  # a second, burner phone carried around
            if m.role == "driver":
                self._vehicle(m.person_id, "pickup" if self.rng.random() < 0.6 else "truck", site, org_id)
            elif m is lt:
                self._vehicle(m.person_id, "pickup", site, org_id)
            elif self.rng.random() < 0.2:
                self._vehicle(m.person_id, "car", None, org_id)
            if m.role in ("accountant",) or m is lt or self.rng.random() < 0.6:
                self._account(m.person_id, org_id, "personal")

    def _background(self) -> None:
        spec = self.spec
        employers = [self._company(front=False, org_id=None) for _ in range(spec.legit_companies)]
        civilians = [self._person(role="civilian", org_id=None) for _ in range(spec.background)]
        members = [p for p in self.people if p.org_id is not None]
        for _ in range(spec.namesakes):  # same name as a member, different person
            twin = self._choice(members)
            civilians.append(self._person(role="civilian", org_id=None, gender=twin.gender, same_name=twin.name))
        for i, co in enumerate(employers):
            owner = civilians[i % len(civilians)]
            self._link("Ownership", owner.person_id, co.company_id, "100")
            self._link("Directorship", owner.person_id, co.company_id, "Director General")
            for _ in range(self._randint(1, 3)):
                self._account(co.company_id, None, "business")
            if co.sector == "transporte":
                self._vehicle(co.company_id, "truck", None, None)
        for c in civilians:
            if self.rng.random() < 0.85:
                self._phone(c, None)
            if self.rng.random() < 0.8:
                self._account(c.person_id, None, "personal")
            if self.rng.random() < 0.45:
                self._vehicle(c.person_id, "pickup" if self.rng.random() < 0.3 else "car", None, None)
            if employers and self.rng.random() < 0.7:
                self._link("Employment", self._choice(employers).company_id, c.person_id, "empleado")


# --------------------------------------------------------------------------- records


_PERSON_COVERAGE: dict[str, dict[str, float]] = {
    # source → role → probability of a record
    "police_reports": {
        "leader": 0.6,
        "lieutenant": 0.75,
        "broker": 0.6,
        "cook": 0.6,
        "driver": 0.7,
        "lookout": 0.75,
        "accountant": 0.35,
        "relative": 0.3,
        "civilian": 0.12,
    },
    "financial_intel": {
        "leader": 0.7,
        "lieutenant": 0.5,
        "broker": 0.8,
        "cook": 0.2,
        "driver": 0.3,
        "lookout": 0.2,
        "accountant": 0.9,
        "relative": 0.8,
        "civilian": 0.3,
    },
    "customs": {
        "leader": 0.1,
        "lieutenant": 0.3,
        "broker": 0.4,
        "cook": 0.05,
        "driver": 0.8,
        "lookout": 0.05,
        "accountant": 0.1,
        "relative": 0.1,
        "civilian": 0.12,
    },
    "phone_subscribers": {
        "leader": 0.4,
        "lieutenant": 0.6,
        "broker": 0.6,
        "cook": 0.6,
        "driver": 0.6,
        "lookout": 0.6,
        "accountant": 0.6,
        "relative": 0.6,
        "civilian": 0.6,
    },
    "hotel_register": {
        "leader": 0.4,
        "lieutenant": 0.4,
        "broker": 0.5,
        "cook": 0.2,
        "driver": 0.5,
        "lookout": 0.2,
        "accountant": 0.3,
        "relative": 0.3,
        "civilian": 0.25,
    },
    "company_registry": {},
}
_NAME_STYLE: dict[str, tuple[str, ...]] = {
    "police_reports": ("surnames_first", "drop_maternal", "typo", "transpose", "hypocorism", "no_accents", "upper"),
    "financial_intel": ("upper", "surnames_first", "drop_second_given", "no_accents", "typo"),
    "customs": ("upper", "surnames_first", "drop_maternal", "typo", "transpose"),
    "phone_subscribers": ("upper", "no_accents", "typo", "transpose", "drop_maternal", "initial"),
    "hotel_register": ("no_accents", "drop_maternal", "typo", "transpose", "initial", "hypocorism"),
    "company_registry": ("upper", "surnames_first", "no_accents"),
}
_ID_PROB = {
    "police_reports": 0.35,
    "financial_intel": 0.9,
    "customs": 0.7,
    "phone_subscribers": 0.5,
    "hotel_register": 0.3,
    "company_registry": 0.8,
}
_EDGE_PROB = {
    "police_reports": {"Family": 0.5, "Associate": 0.45, "Membership": 0.6, "Ownership": 0.5, "UnknownLink": 0.0},
    "financial_intel": {"Ownership": 0.9, "Directorship": 0.6, "Associate": 0.1, "Employment": 0.3},
    "customs": {"Ownership": 0.8, "Employment": 0.6},
    "company_registry": {"Ownership": 1.0, "Directorship": 1.0},
    "hotel_register": {"Associate": 0.15},
    "phone_subscribers": {},
}
_EDGE_PROPS = {
    "Ownership": ("owner", "asset", "percentage"),
    "Directorship": ("director", "organization", "role"),
    "Family": ("person", "relative", "relationship"),
    "Associate": ("person", "associate", "relationship"),
    "Membership": ("member", "organization", "role"),
    "Employment": ("employer", "employee", "role"),
    "UnknownLink": ("subject", "object", "role"),
}


class _Recorder:
    def __init__(self, b: _Builder) -> None:
        self.b = b
        self.rng = np.random.default_rng(np.random.SeedSequence([b.seed, 0x2EC0D5]))
        self.records: list[Record] = []
        self.first: dict[tuple[str, str], str] = {}  # (source, entity) → first record id
        self.count = 0

    def _add(self, source: str, schema: str, entity_id: str, props: dict[str, list[str]]) -> str:
        self.count += 1
        rid = prefixed_id("rec", str(self.b.seed), source, entity_id, str(self.count))
        clean = tuple(sorted((k, tuple(v)) for k, v in props.items() if v))
        self.records.append(Record(record_id=rid, source=source, schema=schema, entity_id=entity_id, properties=clean))
        self.first.setdefault((source, entity_id), rid)
        return rid

    def _date(self, d: date) -> str:
        r = self.rng.random()
        if r < 0.06 and d.day <= 12:  # day and month swapped
            return f"{d.year:04d}-{d.day:02d}-{d.month:02d}"
        if r < 0.1:
            return f"{d.year - 1 if self.rng.random() < 0.5 else d.year + 1:04d}-{d.month:02d}-{d.day:02d}"
        if r < 0.2:
            return f"{d.year:04d}"
        return d.isoformat()

    def _corrupt_id(self, s: str) -> str:
        if self.rng.random() < 0.05:
            i = int(self.rng.integers(len(s)))
            return s[:i] + "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[int(self.rng.integers(36))] + s[i + 1 :]
        return s

    def _person_name(self, p: Person, source: str) -> str:
        if self.rng.random() < 0.3:
            return p.name.full if source != "company_registry" else variant(p.name, "upper")
        return random_variant(p.name, self.rng, kinds=_NAME_STYLE[source])

    def build(self) -> list[Record]:
        b = self.b
        phones_of: dict[str, list[Phone]] = {}
        for ph in b.phones:
            phones_of.setdefault(ph.owner_id, []).append(ph)
        in_registry = {
            lk.source_id
            for lk in b.links
            if lk.kind in ("Ownership", "Directorship") and lk.target_id.startswith("company--")
        }
        for p in b.people:
            chosen = [s for s in SOURCES if self.rng.random() < _PERSON_COVERAGE[s].get(p.role, 0.0)]
            if p.person_id in in_registry:
                chosen.append("company_registry")
            options = [s for s in SOURCES if s != "company_registry" and s not in chosen]
            while len(set(chosen)) < 2:  # every person appears in at least two sources
                chosen.append(options.pop(int(self.rng.integers(len(options)))))
            for source in sorted(set(chosen)):
                copies = 2 if source == "police_reports" and self.rng.random() < 0.15 else 1
                for _ in range(copies):
                    self._person_record(p, source, phones_of.get(p.person_id, []))
        for co in b.companies:
            chosen = ["company_registry"]
            if self.rng.random() < (0.9 if co.front else 0.5):
                chosen.append("financial_intel")
            if self.rng.random() < (0.6 if co.sector == "transporte" else 0.2):
                chosen.append("customs")
            if co.front and self.rng.random() < 0.3:
                chosen.append("police_reports")
            for source in chosen:
                self._company_record(co, source)
        for org in b.orgs:
            for _ in range(1 + int(self.rng.integers(2))):
                names = [org.name, *org.aliases]
                name = str(names[int(self.rng.integers(len(names)))])
                self._add(
                    "police_reports",
                    "Organization",
                    org.org_id,
                    {"name": [name], "alias": [a for a in names if a != name][:2], "country": ["mx"]},
                )
        for acc in b.accounts:
            if ("financial_intel", acc.holder_id) in self.first or self.rng.random() < 0.3:
                self._add(
                    "financial_intel",
                    "BankAccount",
                    acc.account_id,
                    {
                        "accountNumber": [acc.account_id],
                        "bankName": [acc.bank],
                        "country": ["mx"],
                        "accountType": ["cheques" if acc.purpose != "personal" else "débito"],
                        "currency": ["MXN"],
                    },
                )
        for v in b.vehicles:
            for source, prob in (
                ("police_reports", 0.5 if v.org_id else 0.05),
                ("customs", 0.7 if v.kind == "truck" else 0.3),
            ):
                if self.rng.random() < prob:
                    plate = v.plate if self.rng.random() < 0.6 else v.plate.replace("-", "")
                    self._add(
                        source,
                        "Vehicle",
                        v.vehicle_id,
                        {
                            "registrationNumber": [plate],
                            "model": [v.model],
                            "type": [v.kind],
                            "country": ["mx"],
                            "properties": [v.colour],
                        },
                    )
        self._edges()
        return self.records

    def _person_record(self, p: Person, source: str, phones: list[Phone]) -> None:
        props: dict[str, list[str]] = {"name": [self._person_name(p, source)]}
        if p.aliases and source == "police_reports":
            props["alias"] = list(p.aliases) + ([random_variant(p.name, self.rng)] if self.rng.random() < 0.3 else [])
        elif p.aliases and self.rng.random() < 0.15:
            props["alias"] = [p.aliases[0]]
        if self.rng.random() < 0.8:
            props["birthDate"] = [self._date(p.birth_date)]
        if self.rng.random() < _ID_PROB[source]:
            props["idNumber"] = [self._corrupt_id(p.curp)]
        if source in ("financial_intel", "company_registry") and self.rng.random() < 0.8:
            props["taxNumber"] = [p.rfc]
        if phones and (source == "phone_subscribers" or self.rng.random() < 0.25):
            props["phone"] = sorted(
                ph.msisdn for ph in phones if source == "phone_subscribers" or self.rng.random() < 0.6
            )
        props["gender"] = ["male" if p.gender == "M" else "female"] if self.rng.random() < 0.7 else []
        props["nationality"] = ["mx"]
        if self.rng.random() < 0.3:
            props["birthPlace"] = [p.state]
        self._add(source, "Person", p.person_id, props)

    def _company_record(self, co: Company, source: str) -> None:
        name = co.full_name if self.rng.random() < 0.3 else company_variant(co.name, co.legal_form, self.rng)
        props: dict[str, list[str]] = {"name": [name], "jurisdiction": ["mx"], "sector": [co.sector]}
        if self.rng.random() < (0.95 if source in ("company_registry", "financial_intel") else 0.5):
            props["taxNumber"] = [self._corrupt_id(co.rfc)]
        if source == "company_registry":
            props["incorporationDate"] = [co.incorporated.isoformat()]
            props["legalForm"] = [co.legal_form]
        self._add(source, "Company", co.company_id, props)

    def _edges(self) -> None:
        for lk in self.b.links:
            for source in SOURCES:
                p = _EDGE_PROB[source].get(lk.kind, 0.0)
                if p <= 0.0:
                    continue
                a = self.first.get((source, lk.source_id))
                t = self.first.get((source, lk.target_id))
                if a is None or t is None or self.rng.random() >= p:
                    continue
                src_prop, dst_prop, role_prop = _EDGE_PROPS[lk.kind]
                schema = lk.kind
                if source == "hotel_register":  # co-guests: the register only knows they stayed together
                    schema = "UnknownLink"
                    src_prop, dst_prop, role_prop = _EDGE_PROPS["UnknownLink"]
                props = {src_prop: [a], dst_prop: [t], role_prop: [lk.role] if lk.role else []}
                if schema == "UnknownLink":
                    props[role_prop] = ["co-huésped"]
                self._add(source, schema, lk.link_id, props)


# --------------------------------------------------------------------------- designations


def _sdn_name(p: Person, rng: np.random.Generator) -> str:
    """SDN-style ``SURNAMES, Given``, sometimes with a missing part or a misspelling."""
    given, pat, mat = list(p.name.given), p.name.paternal, p.name.maternal
    r = rng.random()
    if r < 0.15:
        mat = ""
    elif r < 0.25 and len(given) > 1:
        given = given[:1]
    elif r < 0.45:
        k = int(rng.integers(len(given) + 2))
        if k < len(given):
            given[k] = corrupt_token(given[k], rng)
        elif k == len(given):
            pat = corrupt_token(pat, rng)
        elif mat:
            mat = corrupt_token(mat, rng)
    return variant(PersonName(given=tuple(given), paternal=pat, maternal=mat), "surnames_first")


def _dob(d: date) -> str:
    return d.strftime("%d %b %Y")


def _designations(b: _Builder) -> list[Designation]:
    rng = np.random.default_rng(np.random.SeedSequence([b.seed, 0xD35164]))
    rows: list[tuple[str, str, str, str, str | None, str]] = []
    people = {p.person_id: p for p in b.people}

    def person_row(p: Person, note: str, entity: str | None, dob: date, org_name: str | None) -> None:
        akas = [f"a.k.a. '{strip_accents(a).upper()}'" for a in p.aliases]
        if rng.random() < 0.6:
            akas.append(f"a.k.a. '{variant(p.name, 'surnames_first')}'")
        parts = [
            f"DOB {_dob(dob)}",
            f"POB {strip_accents(p.state)}, Mexico",
            "nationality Mexico",
            f"Gender {'Male' if p.gender == 'M' else 'Female'}",
        ]
        if entity is not None and rng.random() < 0.7:
            parts.append(f"C.U.R.P. {p.curp} (Mexico)")
        if org_name:
            parts.append(f"Linked To: {strip_accents(org_name).upper()}")
        remarks = "; ".join(parts + akas) + "."
        rows.append((_sdn_name(p, rng), "individual", "SDNTK", remarks, entity, note))

    for org in b.orgs:
        designated = [pid for pid in org.leader_ids if rng.random() < 0.8] or [org.leader_ids[0]]
        lts = [c.lieutenant_id for c in b.cells if c.org_id == org.org_id]
        designated += [pid for pid in lts if rng.random() < 0.3]
        designated += [pid for pid in org.broker_ids if rng.random() < 0.5]
        for pid in designated:
            p = people[pid]
            person_row(p, "designated", pid, p.birth_date, org.name)
        for cid in org.company_ids:
            if rng.random() < 0.5:
                co = next(c for c in b.companies if c.company_id == cid)
                name = strip_accents(f"{co.name}, {co.legal_form}").upper()
                if rng.random() < 0.4:
                    name = company_variant(co.name, co.legal_form, rng).upper()
                remarks = f"R.F.C. {co.rfc} (Mexico); Linked To: {strip_accents(org.name).upper()}."
                rows.append((name, "entity", "SDNTK", remarks, cid, "designated"))
    listed = {r[4] for r in rows}
    foot = [p for p in b.people if p.role in ("cook", "driver", "lookout") and p.person_id not in listed]
    for j in rng.permutation(len(foot))[: b.spec.namesakes]:  # same name as a member, another person
        p = foot[int(j)]
        other = Person(**{**p.__dict__, "aliases": (), "state": STATES[int(rng.integers(len(STATES)))][0]})
        dob = p.birth_date - timedelta(days=int(rng.integers(400, 9000)))
        person_row(other, f"namesake of {p.person_id}, not a match", None, dob, None)
    for _ in range(b.spec.unrelated_designations):
        g = "M" if rng.random() < 0.8 else "F"
        pname = random_person_name(rng, gender=g)
        if rng.random() < 0.8:
            dob = b.start.date() - timedelta(days=int(rng.integers(20 * 365, 70 * 365)))
            fake = Person(
                person_id="",
                name=pname,
                gender=g,
                birth_date=dob,
                state=str(STATES[int(rng.integers(len(STATES)))][0]),
                curp="",
                rfc="",
                aliases=(random_nickname(rng, gender=g),) if rng.random() < 0.5 else (),
                org_id=None,
                role="",
                cell_ids=(),
            )
            person_row(fake, "unrelated", None, dob, None)
        else:
            cname, form = random_company_name(rng)
            rows.append((strip_accents(f"{cname}, {form}").upper(), "entity", "SDNTK", "Mexico.", None, "unrelated"))
    order = rng.permutation(len(rows))
    return [
        Designation(
            ent_num=30001 + i,
            name=rows[int(j)][0],
            type=rows[int(j)][1],
            program=rows[int(j)][2],
            remarks=rows[int(j)][3],
            entity_id=rows[int(j)][4],
            note=rows[int(j)][5],
        )
        for i, j in enumerate(order)
    ]


# --------------------------------------------------------------------------- API


def build_society(*, seed: int, size: str, sites: Sequence[SiteRef], start: datetime, days: int) -> Society:
    """Build the society of one scenario.

    ``sites`` are dealt to the organisations (labs to production cells,
    airstrips, landing beaches and stash houses to transport, stash houses to
    enforcement); may be empty. ``start`` without a time zone is taken as UTC.
    """
    if size not in _SPECS:
        raise ValidationError(f"unknown scenario size {size!r}", hint=f"use one of {', '.join(SIZES)}")
    if days < 1:
        raise ValidationError(f"days must be at least 1, got {days}")
    bad = sorted({s.kind for s in sites} - set(SITE_KINDS))
    if bad:
        raise ValidationError(f"unknown site kinds {bad}", hint=f"use {', '.join(SITE_KINDS)}")
    if len({s.site_id for s in sites}) != len(sites):
        raise ValidationError("site ids must be unique")
    start_utc = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    b = _Builder(seed=seed, size=size, sites=sites, start=start_utc, days=days)
    b.build()
    records = _Recorder(b).build()
    designations = _designations(b)
    return Society(
        seed=seed,
        size=size,
        start=start_utc,
        days=days,
        organisations=tuple(sorted(b.orgs, key=lambda o: o.org_id)),
        cells=tuple(sorted(b.cells, key=lambda c: c.cell_id)),
        people=tuple(sorted(b.people, key=lambda p: p.person_id)),
        companies=tuple(sorted(b.companies, key=lambda c: c.company_id)),
        accounts=tuple(sorted(b.accounts, key=lambda a: a.account_id)),
        phones=tuple(sorted(b.phones, key=lambda p: p.phone_id)),
        vehicles=tuple(sorted(b.vehicles, key=lambda v: v.vehicle_id)),
        links=tuple(sorted(set(b.links), key=lambda lk: lk.link_id)),
        site_links=tuple(sorted(set(b.site_links), key=lambda s: (s.site_id, s.entity_id, s.relation))),
        records=tuple(sorted(records, key=lambda r: r.record_id)),
        designations=tuple(designations),
    )


def _jsonl(objs: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(o, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n" for o in objs)


def _person_json(p: Person, phones: list[str], vehicles: list[str], accounts: list[str]) -> dict[str, Any]:
    return {
        "person_id": p.person_id,
        "name": p.name.full,
        "given": list(p.name.given),
        "paternal": p.name.paternal,
        "maternal": p.name.maternal,
        "gender": p.gender,
        "birth_date": p.birth_date.isoformat(),
        "state": p.state,
        "curp": p.curp,
        "rfc": p.rfc,
        "aliases": list(p.aliases),
        "org_id": p.org_id,
        "role": p.role,
        "cell_ids": list(p.cell_ids),
        "phones": phones,
        "vehicles": vehicles,
        "accounts": accounts,
    }


def network_truth(society: Society) -> dict[str, Any]:
    """The ground-truth network as a JSON-ready dict (what ``truth/network.json`` holds)."""
    phones: dict[str, list[str]] = {}
    for ph in society.phones:
        phones.setdefault(ph.owner_id, []).append(ph.phone_id)
    vehicles: dict[str, list[str]] = {}
    for v in society.vehicles:
        vehicles.setdefault(v.owner_id, []).append(v.vehicle_id)
    accounts: dict[str, list[str]] = {}
    for a in society.accounts:
        accounts.setdefault(a.holder_id, []).append(a.account_id)
    cells = {c.cell_id: c for c in society.cells}
    return {
        "seed": society.seed,
        "size": society.size,
        "organisations": [
            {
                "org_id": o.org_id,
                "name": o.name,
                "aliases": list(o.aliases),
                "state": o.state,
                "leaders": list(o.leader_ids),
                "brokers": list(o.broker_ids),
                "companies": list(o.company_ids),
                "accounts": sorted(a.account_id for a in society.accounts if a.org_id == o.org_id),
                "cells": [
                    {
                        "cell_id": cid,
                        "kind": cells[cid].kind,
                        "lieutenant": cells[cid].lieutenant_id,
                        "members": list(cells[cid].member_ids),
                        "sites": list(cells[cid].site_ids),
                    }
                    for cid in o.cell_ids
                ],
                "members": sorted(p.person_id for p in society.people if p.org_id == o.org_id),
            }
            for o in society.organisations
        ],
        "people": [
            _person_json(p, phones.get(p.person_id, []), vehicles.get(p.person_id, []), accounts.get(p.person_id, []))
            for p in society.people
        ],
        "companies": [
            {
                "company_id": c.company_id,
                "name": c.full_name,
                "rfc": c.rfc,
                "incorporated": c.incorporated.isoformat(),
                "sector": c.sector,
                "front": c.front,
                "org_id": c.org_id,
                "accounts": accounts.get(c.company_id, []),
                "vehicles": vehicles.get(c.company_id, []),
            }
            for c in society.companies
        ],
        "accounts": [
            {
                "account_id": a.account_id,
                "bank": a.bank,
                "holder_id": a.holder_id,
                "org_id": a.org_id,
                "purpose": a.purpose,
            }
            for a in society.accounts
        ],
        "phones": [
            {
                "phone_id": p.phone_id,
                "msisdn": p.msisdn,
                "owner_id": p.owner_id,
                "site_id": p.site_id,
                "org_id": p.org_id,
            }
            for p in society.phones
        ],
        "vehicles": [
            {
                "vehicle_id": v.vehicle_id,
                "plate": v.plate,
                "state": v.state,
                "kind": v.kind,
                "model": v.model,
                "colour": v.colour,
                "owner_id": v.owner_id,
                "site_id": v.site_id,
                "org_id": v.org_id,
            }
            for v in society.vehicles
        ],
        "links": [
            {"link_id": lk.link_id, "kind": lk.kind, "source": lk.source_id, "target": lk.target_id, "role": lk.role}
            for lk in society.links
        ],
        "site_links": [
            {"entity_id": s.entity_id, "site_id": s.site_id, "relation": s.relation} for s in society.site_links
        ],
        "records": [
            {"record_id": r.record_id, "source": r.source, "schema": r.schema, "entity_id": r.entity_id}
            for r in society.records
        ],
    }


def write_society(society: Society, out: Path) -> None:
    """Write records (``out/records/…``) and ground truth (``out/truth/…``); see the module docstring."""
    ent_dir = out / "records" / "entities"
    truth_dir = out / "truth"
    ent_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    for source in SOURCES:
        objs = [r.to_ftm() for r in society.records if r.source == source]
        (ent_dir / f"{source}.jsonl").write_text(_jsonl(objs), encoding="utf-8")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["ent_num", "name", "type", "program", "remarks"])
    for d in society.designations:
        w.writerow([d.ent_num, d.name, d.type, d.program, d.remarks])
    (out / "records" / "designations.csv").write_text(buf.getvalue(), encoding="utf-8")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["ent_num", "entity_id", "entity_kind", "is_match", "note"])
    for d in society.designations:
        kind = "" if d.entity_id is None else ("company" if d.entity_id.startswith("company--") else "person")
        w.writerow([d.ent_num, d.entity_id or "", kind, int(d.entity_id is not None), d.note])
    (truth_dir / "designation_matches.csv").write_text(buf.getvalue(), encoding="utf-8")
    text = json.dumps(network_truth(society), ensure_ascii=False, sort_keys=True, indent=1)
    (truth_dir / "network.json").write_text(text + "\n", encoding="utf-8")
