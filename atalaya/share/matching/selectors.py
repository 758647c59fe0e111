"""Selector normalisation: both nodes must turn the same real-world selector into the same item.

A private comparison only finds an overlap when both sides encode a selector
identically, so each kind has one documented normal form (docs/federation.md,
"Matching without disclosure"). An item is ``KIND:VALUE``, so a phone number can
never match an account number with the same digits.

======== =====================================================================
kind     normal form
======== =====================================================================
phone    E.164 (``+525512345678``), parsed with libphonenumber's rules; numbers
         without a country code take the default region (``MX`` unless given)
person   name key: Unicode NFKD, accents and punctuation removed, case folded,
         Spanish/Portuguese particles (de, del, la, las, los, y, da, do, dos) dropped,
         tokens sorted — ``"Joaquín GUZMÁN-Loera"`` and ``"guzman loera, joaquin"``
         share ``guzman joaquin loera``. An optional birth date (``|YYYY-MM-DD``)
         is kept as given after validation
company  name key as for persons, legal-form suffixes (S.A. de C.V., S. de R.L.,
         SAPI, LLC, Inc., Ltd., Corp., GmbH …) removed
account  IBAN (checked mod 97), Mexican CLABE (18 digits, checked) or else the
         upper-case letters and digits of the number
mmsi     nine digits
imo      seven digits with a valid check digit (an ``IMO`` prefix is dropped)
icao24   six lower-case hex digits
callsign upper-case letters and digits, at most eight
======== =====================================================================

>>> normalise("phone", ["55 1234 5678", "+1 (202) 555-0143", "not a phone"]).items
['phone:+525512345678', 'phone:+12025550143']
>>> normalise("person", ["Joaquín GUZMÁN-Loera", "guzman loera, joaquin"]).items
['person:guzman joaquin loera']
>>> normalise("company", ["Transportes del Golfo, S.A. de C.V."]).items
['company:golfo transportes']
>>> normalise("imo", ["IMO 9074729", "9074728"]).rejects[0][2]
'IMO check digit does not match'
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

import phonenumbers

from atalaya.core.errors import ValidationError

KINDS: tuple[str, ...] = ("person", "company", "phone", "account", "mmsi", "imo", "icao24", "callsign")
"""Selector kinds that can be compared (the agreement schema's ``matching.selectors``)."""

PARTICLES = frozenset({"de", "del", "la", "las", "los", "y", "da", "do", "dos", "das", "e"})
"""Name particles dropped from name keys (they are written inconsistently)."""

LEGAL_FORMS: tuple[str, ...] = (
    "s a b de c v",
    "s a p i de c v",
    "sapi de cv",
    "s a de c v",
    "sa de cv",
    "s de r l de c v",
    "s de rl de cv",
    "s de r l",
    "s c",
    "s a",
    "sa",
    "sapi",
    "llc",
    "l l c",
    "inc",
    "ltd",
    "limited",
    "corp",
    "corporation",
    "co",
    "gmbh",
    "sl",
    "s l",
    "ltda",
)
"""Legal-form suffixes removed from company name keys (matched on whole tokens at the end)."""

_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_IBAN = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$")


@dataclass
class Normalised:
    """Normalised items of one selector kind, deduplicated, in first-seen order."""

    kind: str
    items: list[str] = field(default_factory=list)
    """``KIND:VALUE`` items."""
    rows: list[int] = field(default_factory=list)
    """For each item, the position of its first source value."""
    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    """``(position, value, reason)`` of values that have no normal form."""

    def source_of(self, item_index: int) -> int:
        """Position in the input of the value an item came from."""
        return self.rows[item_index]


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NON_ALNUM.sub(" ", plain.casefold()).strip()


def name_key(text: str, *, company: bool = False) -> str:
    """The order-free key of a person's or company's name (see the module table)."""
    folded = _fold(text)
    if company:
        changed = True
        while changed:
            changed = False
            for form in LEGAL_FORMS:
                if folded == form:
                    break
                if folded.endswith(" " + form):
                    folded = folded[: -len(form) - 1].rstrip()
                    changed = True
                    break
    tokens = [t for t in folded.split() if t not in PARTICLES]
    if not tokens:
        raise ValueError("no letters or digits left in the name")
    return " ".join(sorted(tokens))


def _person(value: str) -> str:
    name, sep, born = value.partition("|")
    key = name_key(name)
    if sep:
        try:
            born = date.fromisoformat(born.strip()).isoformat()
        except ValueError:
            raise ValueError(f"birth date {born.strip()!r} is not YYYY-MM-DD") from None
        return f"{key}|{born}"
    return key


def _phone(value: str, region: str) -> str:
    try:
        num = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as e:
        raise ValueError(f"not a phone number ({e})") from None
    if not phonenumbers.is_possible_number(num):
        raise ValueError("not a possible phone number for its country")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def _iban_ok(iban: str) -> bool:
    moved = iban[4:] + iban[:4]
    digits = "".join(str(int(c, 36)) for c in moved)
    return int(digits) % 97 == 1


def _clabe_ok(clabe: str) -> bool:
    weights = (3, 7, 1) * 6
    total = sum((int(d) * w) % 10 for d, w in zip(clabe[:17], weights, strict=False))
    return (10 - total % 10) % 10 == int(clabe[17])


def _account(value: str) -> str:
    compact = re.sub(r"[^0-9A-Za-z]", "", value).upper()
    if not compact:
        raise ValueError("no letters or digits in the account number")
    if _IBAN.match(compact) and not compact.isdigit():
        if not _iban_ok(compact):
            raise ValueError("IBAN check digits do not match")
        return compact
    if len(compact) == 18 and compact.isdigit():
        if not _clabe_ok(compact):
            raise ValueError("CLABE check digit does not match")
        return compact
    return compact


def _imo(value: str) -> str:
    digits = re.sub(r"^\s*IMO\s*", "", value.strip(), flags=re.IGNORECASE).replace(" ", "")
    if not re.fullmatch(r"[0-9]{7}", digits):
        raise ValueError("an IMO number has seven digits")
    check = sum(int(d) * w for d, w in zip(digits[:6], range(7, 1, -1), strict=True)) % 10
    if check != int(digits[6]):
        raise ValueError("IMO check digit does not match")
    return digits


def _one(kind: str, value: str, region: str) -> str:
    v = value.strip()
    if not v:
        raise ValueError("empty")
    if kind == "phone":
        return _phone(v, region)
    if kind == "person":
        return _person(v)
    if kind == "company":
        return name_key(v, company=True)
    if kind == "account":
        return _account(v)
    if kind == "mmsi":
        if not re.fullmatch(r"[0-9]{9}", v):
            raise ValueError("an MMSI has nine digits")
        return v
    if kind == "imo":
        return _imo(v)
    if kind == "icao24":
        h = v.lower().removeprefix("0x")
        if not re.fullmatch(r"[0-9a-f]{6}", h):
            raise ValueError("an ICAO 24-bit address has six hex digits")
        return h
    if kind == "callsign":
        c = re.sub(r"[^0-9A-Za-z]", "", v).upper()
        if not 1 <= len(c) <= 8:
            raise ValueError("a callsign has one to eight letters or digits")
        return c
    raise ValidationError(f"unknown selector kind {kind!r}", hint="use one of: " + ", ".join(KINDS))


def normalise(kind: str, values: Iterable[str], *, region: str = "MX") -> Normalised:
    """Normal forms of ``values`` of one kind; values without one go to ``rejects`` with the reason."""
    if kind not in KINDS:
        raise ValidationError(f"unknown selector kind {kind!r}", hint="use one of: " + ", ".join(KINDS))
    out = Normalised(kind=kind)
    seen: set[str] = set()
    for i, value in enumerate(values):
        try:
            item = f"{kind}:{_one(kind, str(value), region)}"
        except ValueError as e:
            out.rejects.append((i, str(value), str(e)))
            continue
        if item not in seen:
            seen.add(item)
            out.items.append(item)
            out.rows.append(i)
    return out
