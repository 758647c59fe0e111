"""Name pools and spelling-variant generators for the synthetic society.

Mexican and Central-American naming: one or two given names, then the
paternal and the maternal surname (``José Luis Hernández López``). Records
about the same person spell the name differently: accents dropped, letters
transposed, the maternal surname missing, surnames first (``HERNANDEZ LOPEZ,
Jose Luis``), a hypocorism (``Pepe``), an initial, a phonetic typo (v/b, s/z,
ll/y, silent h). :func:`variant` applies one named operation;
:func:`random_variant` applies one or two and always returns a spelling
different from the canonical one. :func:`name_similarity` is the score the
tests use to check that a variant stays close to the canonical name.

>>> n = PersonName(given=("José", "Luis"), paternal="Hernández", maternal="López")
>>> n.full
'José Luis Hernández López'
>>> variant(n, "no_accents")
'Jose Luis Hernandez Lopez'
>>> variant(n, "surnames_first")
'HERNANDEZ LOPEZ, Jose Luis'
>>> variant(n, "drop_maternal")
'José Luis Hernández'
>>> strip_accents("Núñez Peña")
'Nunez Pena'
>>> name_similarity("José Luis Hernández López", "HERNANDEZ LOPEZ, Jose Luis")
1.0
>>> name_similarity("", "")
1.0
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from atalaya.core.errors import ValidationError

MALE_GIVEN: tuple[str, ...] = (
    "José", "Juan", "Luis", "Carlos", "Jesús", "Miguel", "Francisco", "Jorge", "Alejandro", "Rafael",
    "Ramón", "Joaquín", "Ismael", "Héctor", "Óscar", "Rubén", "Víctor", "Sergio", "Fernando", "Arturo",
    "Ernesto", "Gerardo", "Martín", "Rigoberto", "Aurelio", "Iván", "Dámaso", "Efraín", "Raúl", "Ángel",
    "Julio", "Armando", "Gustavo", "Eduardo", "Adrián", "Rodolfo", "Salvador", "Heriberto", "Abel", "Édgar",
    "Néstor", "Guillermo", "Ignacio", "Roberto", "Alberto", "Enrique", "Alfredo", "Refugio", "Manuel", "Antonio",
)  # fmt: skip
FEMALE_GIVEN: tuple[str, ...] = (
    "María", "Guadalupe", "Rosa", "Ana", "Verónica", "Leticia", "Patricia", "Claudia", "Sandra", "Adriana",
    "Alejandra", "Gabriela", "Brenda", "Yesenia", "Marisol", "Lucía", "Sofía", "Daniela", "Karla", "Mónica",
    "Araceli", "Beatriz", "Griselda", "Blanca", "Elena", "Josefina", "Teresa", "Dolores", "Érika", "Itzel",
    "Rosario", "Concepción", "Maricela", "Yolanda", "Silvia",
)  # fmt: skip
SURNAMES: tuple[str, ...] = (
    "Hernández", "García", "Martínez", "López", "González", "Pérez", "Rodríguez", "Sánchez", "Ramírez", "Cruz",
    "Flores", "Gómez", "Morales", "Vázquez", "Jiménez", "Reyes", "Díaz", "Torres", "Gutiérrez", "Ruiz",
    "Mendoza", "Aguilar", "Ortiz", "Moreno", "Castillo", "Romero", "Álvarez", "Méndez", "Chávez", "Rivera",
    "Juárez", "Ramos", "Domínguez", "Herrera", "Medina", "Castro", "Vargas", "Velázquez", "Muñoz", "Rojas",
    "Salazar", "Beltrán", "Leyva", "Félix", "Cárdenas", "Treviño", "Fuentes", "Esparza", "Ibarra", "Valenzuela",
    "Núñez", "Ochoa", "Bañuelos", "Peña", "Sepúlveda", "Zavala", "Villarreal", "Garza", "Cisneros", "Espinoza",
    "Meza", "Acosta", "Galindo", "Olivas", "Uriarte", "Zazueta", "Inzunza", "Avilés", "Higuera", "Quiñónez",
)  # fmt: skip

HYPOCORISMS: dict[str, tuple[str, ...]] = {
    "José": ("Pepe", "Chepe"),
    "Francisco": ("Paco", "Pancho"),
    "Jesús": ("Chuy",),
    "Guadalupe": ("Lupe", "Lupita"),
    "Eduardo": ("Lalo",),
    "Guillermo": ("Memo",),
    "Ignacio": ("Nacho",),
    "Alfredo": ("Fredo",),
    "Roberto": ("Beto",),
    "Alberto": ("Beto",),
    "Alejandro": ("Alex",),
    "Rafael": ("Rafa",),
    "Rodolfo": ("Fito",),
    "Refugio": ("Cuco",),
    "Enrique": ("Quique",),
    "Salvador": ("Chava",),
    "Concepción": ("Conchita",),
    "Dolores": ("Lola",),
    "Rosario": ("Chayo",),
    "Manuel": ("Manolo",),
    "Antonio": ("Toño",),
    "Heriberto": ("Beto",),
    "Ismael": ("Mayel",),
}

MALE_NICKNAMES: tuple[str, ...] = (
    "El Flaco", "El Gordo", "El Güero", "El Chino", "El Negro", "El Compa", "El Tigre", "El Gallo",
    "El Toro", "El Pelón", "El Chato", "El Cholo", "El Zurdo", "El Mudo", "El Profe", "El Ingeniero",
    "El Contador", "El Doctor", "El Primo", "El Tío", "El Pollo", "El Greñas", "El Güicho", "El Caballo",
    "El Lobo", "El Brujo", "El Gato", "El Sapo", "El Pariente", "El Señor", "El Viejo", "El Morro",
)  # fmt: skip
FEMALE_NICKNAMES: tuple[str, ...] = (
    "La Güera", "La Flaca", "La Jefa", "La Licenciada", "La Chata", "La Reina", "La Morena", "La Tía",
)  # fmt: skip

ORGANISATION_NAMES: tuple[str, ...] = (
    "Cártel de Los Álamos", "Cártel de la Sierra Madre", "Cártel del Desierto", "Cártel de la Costa Chica",
    "Cártel del Altiplano", "Cártel de Los Cañones", "Cártel de la Laguna", "Cártel del Valle",
    "Cártel de Las Huertas", "Cártel del Puerto", "Cártel de Los Mezcales", "Cártel de la Frontera Norte",
    "Los Halcones", "Los Coyotes", "Los Linces", "Los Venados", "Los Gavilanes", "Los Tejones",
    "Los Pumas", "Los Zorros", "La Empresa Norteña", "La Hermandad del Sur", "Cártel de Las Brisas",
    "Cártel del Mar de Cortés",
)  # fmt: skip

COMPANY_PREFIXES: tuple[str, ...] = (
    "Transportes", "Comercializadora", "Agropecuaria", "Servicios Integrales", "Inmobiliaria", "Constructora",
    "Distribuidora", "Importadora", "Exportadora", "Logística", "Casa de Cambio", "Abarrotes", "Grupo",
    "Fletes", "Mariscos", "Química Industrial", "Farmacéutica", "Autotransportes", "Minera", "Ganadera",
)  # fmt: skip
COMPANY_CORES: tuple[str, ...] = (
    "del Pacífico", "del Norte", "Los Álamos", "San Miguel", "Santa Fe", "El Dorado", "La Esperanza",
    "del Golfo", "Las Palmas", "Río Bravo", "Sierra Alta", "Valle Verde", "El Mirador", "La Perla",
    "Guadalupe", "Los Pinos", "Bahía Azul", "del Bajío", "San Judas", "Costa de Oro", "Monte Real",
    "La Noria", "El Fuerte", "Culiacán", "Cortés", "Santa Rosa", "Tres Ríos", "Los Mochis",
)  # fmt: skip
LEGAL_FORMS: tuple[str, ...] = ("S.A. de C.V.", "S. de R.L. de C.V.", "S.A.P.I. de C.V.", "S.C.")

# (state name, plate/CURP state code)
STATES: tuple[tuple[str, str], ...] = (
    ("Sinaloa", "SL"), ("Sonora", "SR"), ("Baja California", "BC"), ("Chihuahua", "CH"),
    ("Tamaulipas", "TS"), ("Jalisco", "JC"), ("Michoacán", "MN"), ("Guerrero", "GR"),
    ("Durango", "DG"), ("Nuevo León", "NL"), ("Coahuila", "CL"), ("Ciudad de México", "DF"),
)  # fmt: skip

_PHONETIC: tuple[tuple[str, str], ...] = (
    ("v", "b"), ("b", "v"), ("z", "s"), ("s", "z"), ("ll", "y"), ("y", "ll"), ("ce", "se"), ("ci", "si"),
    ("que", "ke"), ("gue", "ge"), ("h", ""), ("j", "g"), ("ge", "je"), ("x", "j"), ("rr", "r"), ("ñ", "n"),
)  # fmt: skip

VARIANT_KINDS: tuple[str, ...] = (
    "no_accents",
    "upper",
    "surnames_first",
    "drop_maternal",
    "drop_second_given",
    "initial",
    "transpose",
    "typo",
    "hypocorism",
)
"""Names of the spelling operations :func:`variant` knows."""


@dataclass(frozen=True, kw_only=True)
class PersonName:
    """A person's legal name in Spanish naming order."""

    given: tuple[str, ...]
    """One or two given names, e.g. ``("José", "Luis")``."""
    paternal: str
    """First (paternal) surname."""
    maternal: str = ""
    """Second (maternal) surname; empty when unknown."""

    @property
    def full(self) -> str:
        """Canonical full name: given names, paternal, maternal."""
        return " ".join([*self.given, self.paternal, *([self.maternal] if self.maternal else [])])

    @property
    def surnames(self) -> str:
        """Both surnames, e.g. ``Hernández López``."""
        return " ".join([self.paternal, *([self.maternal] if self.maternal else [])])


def strip_accents(text: str) -> str:
    """Drop diacritics (``Núñez`` → ``Nunez``); other characters unchanged."""
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


_NON_ALNUM = re.compile(r"[^a-z0-9 ]+")


def normalise_name(text: str) -> str:
    """Lower-case, accent-free, punctuation-free, single-spaced name text.

    >>> normalise_name("HERNÁNDEZ  López, José-Luis")
    'hernandez lopez jose luis'
    """
    t = strip_accents(text).lower().replace("-", " ").replace(".", " ").replace(",", " ")
    t = _NON_ALNUM.sub("", t)
    return " ".join(t.split())


def name_similarity(a: str, b: str) -> float:
    """Token-sort similarity in [0, 1] of two normalised names (order and accents ignored)."""
    ta = " ".join(sorted(normalise_name(a).split()))
    tb = " ".join(sorted(normalise_name(b).split()))
    if not ta and not tb:
        return 1.0
    return difflib.SequenceMatcher(None, ta, tb, autojunk=False).ratio()


def _pick(rng: np.random.Generator, pool: Sequence[str]) -> str:
    return pool[int(rng.integers(len(pool)))]


def _transpose(token: str, rng: np.random.Generator) -> str:
    if len(token) < 4:
        return token
    i = int(rng.integers(1, len(token) - 2))
    if token[i] == token[i + 1]:
        i = (i + 1) if i + 2 < len(token) else i - 1
    return token[:i] + token[i + 1] + token[i] + token[i + 2 :]


def _typo(token: str, rng: np.random.Generator) -> str:
    low = token.lower()
    options = [(src, dst) for src, dst in _PHONETIC if src in low[1:]]
    if options:
        src, dst = options[int(rng.integers(len(options)))]
        pos = low.index(src, 1)
        repl = dst.upper() if token[pos : pos + len(src)].isupper() else dst
        return token[:pos] + repl + token[pos + len(src) :]
    if len(token) > 3:  # drop one inner letter
        i = int(rng.integers(1, len(token) - 1))
        return token[:i] + token[i + 1 :]
    return token


def variant(name: PersonName, kind: str, rng: np.random.Generator | None = None) -> str:
    """One spelling of ``name`` by the named operation (see :data:`VARIANT_KINDS`).

    Operations that need randomness (which token, which letter) take ``rng``;
    without one they act on the first eligible position.
    """
    r = rng if rng is not None else np.random.default_rng(0)
    given = list(name.given)
    if kind == "no_accents":
        return strip_accents(name.full)
    if kind == "upper":
        return strip_accents(name.full).upper()
    if kind == "surnames_first":
        return f"{strip_accents(name.surnames).upper()}, {strip_accents(' '.join(given))}"
    if kind == "drop_maternal":
        return " ".join([*given, name.paternal])
    if kind == "drop_second_given":
        return " ".join([given[0], name.surnames])
    if kind == "initial":
        return " ".join([given[0][0] + ".", *given[1:], name.surnames])
    if kind in ("transpose", "typo"):
        tokens = [*given, name.paternal, *([name.maternal] if name.maternal else [])]
        eligible = [i for i, t in enumerate(tokens) if len(t) >= 4] or [0]
        i = eligible[int(r.integers(len(eligible)))]
        tokens[i] = _transpose(tokens[i], r) if kind == "transpose" else _typo(tokens[i], r)
        return " ".join(tokens)
    if kind == "hypocorism":
        for j, g in enumerate(given):
            if g in HYPOCORISMS:
                given[j] = _pick(r, HYPOCORISMS[g])
                return " ".join([*given, name.surnames])
        return " ".join([given[0], name.surnames])  # no pet form: second given name dropped
    raise ValidationError(f"unknown name variant kind {kind!r}", hint=f"use one of {', '.join(VARIANT_KINDS)}")


_COMBINABLE = ("no_accents", "upper", "drop_maternal", "transpose", "typo")


def random_variant(name: PersonName, rng: np.random.Generator, *, kinds: Sequence[str] = VARIANT_KINDS) -> str:
    """A spelling of ``name`` that differs from :attr:`PersonName.full` (one or two operations).

    >>> n = PersonName(given=("Ana",), paternal="Cruz", maternal="Ruiz")
    >>> v = random_variant(n, np.random.default_rng(1))
    >>> v != n.full and name_similarity(v, n.full) > 0.5
    True
    """
    for _ in range(16):
        kind = kinds[int(rng.integers(len(kinds)))]
        out = variant(name, kind, rng)
        if rng.random() < 0.3:  # a second, independent corruption
            second = _COMBINABLE[int(rng.integers(len(_COMBINABLE)))]
            if second in ("no_accents", "upper"):
                out = strip_accents(out).upper() if second == "upper" else strip_accents(out)
            elif second in ("transpose", "typo") and kind not in ("transpose", "typo"):
                toks = out.split(" ")
                idx = [i for i, t in enumerate(toks) if len(t) >= 4]
                if idx:
                    i = idx[int(rng.integers(len(idx)))]
                    toks[i] = _transpose(toks[i], rng) if second == "transpose" else _typo(toks[i], rng)
                    out = " ".join(toks)
        if out != name.full:
            return out
    return strip_accents(name.full).upper() if strip_accents(name.full).upper() != name.full else name.full + "."


def random_person_name(rng: np.random.Generator, *, gender: str, paternal: str | None = None) -> PersonName:
    """A new name; ``paternal`` fixes the first surname (relatives)."""
    pool = MALE_GIVEN if gender == "M" else FEMALE_GIVEN
    n_given = 2 if rng.random() < 0.45 else 1
    first = _pick(rng, pool)
    given = (first,) if n_given == 1 else (first, _pick(rng, [g for g in pool if g != first]))
    pat = paternal if paternal is not None else _pick(rng, SURNAMES)
    mat = _pick(rng, [s for s in SURNAMES if s != pat])
    return PersonName(given=given, paternal=pat, maternal=mat)


def random_nickname(rng: np.random.Generator, *, gender: str) -> str:
    """A cartel-style alias such as ``El Flaco``."""
    return _pick(rng, MALE_NICKNAMES if gender == "M" else FEMALE_NICKNAMES)


def random_company_name(rng: np.random.Generator) -> tuple[str, str]:
    """``(name without legal form, legal form)``, e.g. ``("Transportes del Pacífico", "S.A. de C.V.")``."""
    return f"{_pick(rng, COMPANY_PREFIXES)} {_pick(rng, COMPANY_CORES)}", _pick(rng, LEGAL_FORMS)


def company_variant(name: str, legal_form: str, rng: np.random.Generator) -> str:
    """A registry-style spelling of a company name that differs from ``f"{name} {legal_form}"``.

    >>> company_variant("Fletes La Noria", "S.A. de C.V.", np.random.default_rng(0)) != "Fletes La Noria S.A. de C.V."
    True
    """
    canonical = f"{name} {legal_form}"
    compact_form = legal_form.replace(".", "").upper()
    for _ in range(16):
        k = int(rng.integers(6))
        if k == 0:
            out = strip_accents(f"{name}, {legal_form}").upper()
        elif k == 1:
            out = name
        elif k == 2:
            out = f"{strip_accents(name).upper()} {compact_form}"
        elif k == 3:
            out = f"{_typo_words(name, rng)} {legal_form}"
        elif k == 4:
            out = f"{name.replace(' del ', ' Del ').replace(' de ', ' De ')} {compact_form}"
        else:
            out = f"{_transpose_words(name, rng)}, {compact_form}"
        if out != canonical:
            return out
    return canonical.upper()


def corrupt_token(token: str, rng: np.random.Generator) -> str:
    """One spelling error in a word: a transposition or a phonetic typo (short words unchanged).

    >>> corrupt_token("Hernández", np.random.default_rng(3)) != "Hernández"
    True
    """
    return _transpose(token, rng) if rng.random() < 0.5 else _typo(token, rng)


def _typo_words(name: str, rng: np.random.Generator) -> str:
    toks = name.split(" ")
    idx = [i for i, t in enumerate(toks) if len(t) >= 4]
    if idx:
        i = idx[int(rng.integers(len(idx)))]
        toks[i] = _typo(toks[i], rng)
    return " ".join(toks)


def _transpose_words(name: str, rng: np.random.Generator) -> str:
    toks = name.split(" ")
    idx = [i for i, t in enumerate(toks) if len(t) >= 4]
    if idx:
        i = idx[int(rng.integers(len(idx)))]
        toks[i] = _transpose(toks[i], rng)
    return " ".join(toks)
