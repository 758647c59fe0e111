"""Markings: TLP 2.0 level, releasable-to parties, caveats and originator.

A marking is data; it has a compact, canonical text form used in columnar
stores (one dictionary-encoded column) and a dict form for JSON and STIX.

>>> m = Marking(tlp=TLP.AMBER, releasable_to=("USA", "MEX"), caveats=(Caveat.INTEL_ONLY,), originator="USA")
>>> m.to_text()
'TLP:AMBER;REL:MEX,USA;CAV:INTEL-ONLY;ORIG:USA'
>>> Marking.from_text(m.to_text()) == m
True
>>> Marking.from_text("TLP:CLEAR").releasable_to
()

Derived objects (tracks, sites, corridors, events) take the :func:`combine` of
their inputs' markings: markings combine and never weaken.

>>> combine_texts(["TLP:AMBER+STRICT;REL:MEX,USA;ORIG:USA", "TLP:GREEN;REL:USA;CAV:INTEL-ONLY;ORIG:USA"])
'TLP:AMBER+STRICT;REL:USA;CAV:INTEL-ONLY;ORIG:USA'
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from atalaya.core.errors import ValidationError


class TLP(enum.IntEnum):
    """Traffic Light Protocol 2.0 levels, ordered from least to most restrictive."""

    CLEAR = 0
    GREEN = 1
    AMBER = 2
    AMBER_STRICT = 3
    RED = 4

    @property
    def label(self) -> str:
        """The TLP 2.0 label, e.g. ``AMBER+STRICT``."""
        return "AMBER+STRICT" if self is TLP.AMBER_STRICT else self.name

    @classmethod
    def parse(cls, text: str) -> TLP:
        """Parse ``"TLP:AMBER+STRICT"``, ``"amber+strict"`` or ``"WHITE"`` (TLP 1.0 alias of CLEAR)."""
        t = text.strip().upper().removeprefix("TLP:").replace("-", "+").replace("_", "+")
        if t == "WHITE":
            return cls.CLEAR
        if t == "AMBER+STRICT":
            return cls.AMBER_STRICT
        try:
            return cls[t]
        except KeyError:
            raise ValidationError(
                f"unknown TLP level {text!r}",
                hint="use one of CLEAR, GREEN, AMBER, AMBER+STRICT, RED",
            ) from None


class Caveat(enum.StrEnum):
    """Handling caveats carried with a marking."""

    INTEL_ONLY = "INTEL-ONLY"
    """Use for intelligence only (ACS-style INTEL privilege, no OPACTION)."""
    NO_ACTION_WITHOUT_HOST_CONSENT = "NO-ACTION-WITHOUT-HOST-CONSENT"
    """No operational action without the host party's consent."""
    NO_FURTHER_DISSEMINATION = "NOFORN-PARTNER"
    """Not to be passed on beyond the releasable-to parties."""
    SOURCE_PROTECT = "SOURCE-PROTECT"
    """Sources and methods withheld; strip provenance before release."""


@dataclass(frozen=True, kw_only=True)
class Marking:
    """A dissemination marking attached to every object."""

    tlp: TLP = TLP.AMBER
    """TLP 2.0 level."""
    releasable_to: tuple[str, ...] = ()
    """Party codes allowed to receive the object (empty: originator only)."""
    caveats: tuple[Caveat, ...] = ()
    """Handling caveats."""
    originator: str = ""
    """Party code of the originator."""
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    """Free-form additional markings (kept, not enforced)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "releasable_to", tuple(sorted({p.upper() for p in self.releasable_to})))
        object.__setattr__(self, "caveats", tuple(sorted(set(self.caveats), key=lambda c: c.value)))

    def to_text(self) -> str:
        """Canonical compact text form (stable: sorted parties and caveats)."""
        parts = [f"TLP:{self.tlp.label}"]
        if self.releasable_to:
            parts.append("REL:" + ",".join(self.releasable_to))
        if self.caveats:
            parts.append("CAV:" + ",".join(c.value for c in self.caveats))
        if self.originator:
            parts.append(f"ORIG:{self.originator}")
        return ";".join(parts)

    @classmethod
    def from_text(cls, text: str) -> Marking:
        """Parse the canonical text form."""
        tlp = TLP.AMBER
        rel: tuple[str, ...] = ()
        cav: list[Caveat] = []
        orig = ""
        for part in filter(None, (p.strip() for p in text.split(";"))):
            key, _, value = part.partition(":")
            key = key.upper()
            if key == "TLP":
                tlp = TLP.parse(value)
            elif key == "REL":
                rel = tuple(v for v in value.split(",") if v)
            elif key == "CAV":
                for v in filter(None, value.split(",")):
                    try:
                        cav.append(Caveat(v))
                    except ValueError:
                        raise ValidationError(
                            f"unknown caveat {v!r} in marking {text!r}",
                            hint="known caveats: " + ", ".join(c.value for c in Caveat),
                        ) from None
            elif key == "ORIG":
                orig = value
            else:
                raise ValidationError(f"unknown marking field {key!r} in {text!r}")
        return cls(tlp=tlp, releasable_to=rel, caveats=tuple(cav), originator=orig)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "tlp": self.tlp.label,
            "releasable_to": list(self.releasable_to),
            "caveats": [c.value for c in self.caveats],
            "originator": self.originator,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Marking:
        """Inverse of :meth:`to_dict`."""
        return cls(
            tlp=TLP.parse(str(d.get("tlp", "AMBER"))),
            releasable_to=tuple(d.get("releasable_to", ())),
            caveats=tuple(Caveat(c) for c in d.get("caveats", ())),
            originator=str(d.get("originator", "")),
        )

    def releasable(self, party: str) -> bool:
        """Whether ``party`` may receive an object with this marking.

        >>> Marking(tlp=TLP.RED, releasable_to=("MEX",), originator="USA").releasable("MEX")
        True
        >>> Marking(tlp=TLP.AMBER, releasable_to=("USA",), originator="USA").releasable("MEX")
        False
        >>> Marking(tlp=TLP.CLEAR).releasable("ANY")
        True
        >>> Marking(tlp=TLP.RED).releasable("")  # no originator: nobody is it
        False
        """
        p = party.upper()
        if self.originator and p == self.originator.upper():
            return True
        if self.tlp is TLP.CLEAR:
            return True
        return p in self.releasable_to

    def receivers(self) -> frozenset[str] | None:
        """The parties that may receive this marking: ``None`` for everyone (TLP:CLEAR), else the originator (when
        there is one) and the releasable-to parties, upper case. ``p`` is in it exactly when :meth:`releasable`
        says so.

        >>> sorted(Marking(tlp=TLP.AMBER, releasable_to=("mex",), originator="USA").receivers() or ())
        ['MEX', 'USA']
        >>> Marking(tlp=TLP.CLEAR).receivers() is None
        True
        """
        if self.tlp is TLP.CLEAR:
            return None
        return frozenset(self.releasable_to) | ({self.originator.upper()} if self.originator else set())


DEFAULT_MARKING = Marking(tlp=TLP.AMBER)

NO_INPUTS_MARKING = Marking(tlp=TLP.RED)
"""Marking of a derived object whose inputs' markings are unknown: TLP:RED, no originator, releasable to nobody
(no input allows anything, so nothing is allowed)."""


def combine(markings: Iterable[Marking]) -> Marking:
    """The marking of an object derived from objects with ``markings``: it never weakens any of them.

    Write ``R(M)`` for the parties that may receive a marking ``M`` (:meth:`Marking.receivers`): everyone when
    ``M.tlp`` is CLEAR, else ``{M.originator} ∪ M.releasable_to``. The combination ``C`` of ``M1 … Mn`` is

    - ``C.tlp`` = the most restrictive of the ``Mi.tlp`` (CLEAR < GREEN < AMBER < AMBER+STRICT < RED);
    - ``C.caveats`` = the union of the ``Mi.caveats``;
    - ``C.originator`` = the originator the ``Mi`` share when they all have the same one (text equal), else ``""``
      (no originator: nobody is released to as originator);
    - ``C.releasable_to``, so that ``R(C) = R(M1) ∩ … ∩ R(Mn)``:

      - when every ``Mi`` is CLEAR: the intersection of their ``releasable_to`` (``R(C)`` is everyone anyway);
      - when they share a non-empty originator ``O``: the intersection of the non-CLEAR ``Mi.releasable_to``
        (``O`` receives ``C`` as originator);
      - otherwise: the intersection of ``R(Mi)`` over the non-CLEAR ``Mi`` — an input's originator is kept as a
        releasable-to party only if every other input may go to it.

    So a party may receive ``C`` only if it may receive every input; no level drops and no caveat is lost.
    :func:`combine` is commutative, associative and idempotent (``combine([m]) == m``); ``extra`` is not carried.

    There is no marking of nothing: an empty input raises :class:`ValidationError` rather than inventing a
    releasable default for an object that has no inputs.

    >>> us = Marking(tlp=TLP.AMBER_STRICT, releasable_to=("MEX", "USA"), originator="USA")
    >>> mx = Marking(tlp=TLP.GREEN, releasable_to=("COL",), caveats=(Caveat.INTEL_ONLY,), originator="MEX")
    >>> combine([us, mx]).to_text()  # only MEX may receive both: USA's is not releasable to COL, MEX's not to USA
    'TLP:AMBER+STRICT;REL:MEX;CAV:INTEL-ONLY'
    >>> combine([us, Marking(tlp=TLP.CLEAR, originator="USA")]) == us  # CLEAR narrows nothing
    True
    >>> try:
    ...     combine([])
    ... except ValidationError as exc:
    ...     print(exc.message, "/", exc.hint)
    no markings to combine / a derived object takes the markings of its inputs; pass at least one
    """
    ms = list(markings)
    if not ms:
        raise ValidationError(
            "no markings to combine",
            hint="a derived object takes the markings of its inputs; pass at least one",
        )
    if len(ms) == 1:
        m = ms[0]
        return Marking(tlp=m.tlp, releasable_to=m.releasable_to, caveats=m.caveats, originator=m.originator)
    tlp = max(m.tlp for m in ms)
    caveats = tuple({c for m in ms for c in m.caveats})
    origins = {m.originator for m in ms}
    originator = origins.pop() if len(origins) == 1 else ""
    restricted = [m for m in ms if m.tlp is not TLP.CLEAR]
    if not restricted:
        sets = [frozenset(m.releasable_to) for m in ms]
    elif originator:
        sets = [frozenset(m.releasable_to) for m in restricted]
    else:
        sets = [r for m in restricted if (r := m.receivers()) is not None]
    rel = frozenset.intersection(*sets)
    return Marking(tlp=tlp, releasable_to=tuple(rel), caveats=caveats, originator=originator)


@lru_cache(maxsize=4096)
def _combine_set(texts: frozenset[str]) -> str:
    return combine(Marking.from_text(t) for t in texts).to_text()


def combine_texts(texts: Iterable[str]) -> str:
    """:func:`combine` of markings in their canonical text form, as text; each distinct set of texts is combined
    once (an LRU cache: a derived object has a handful of distinct markings, and many objects share them).

    >>> combine_texts(["TLP:GREEN;ORIG:USA", "TLP:RED;REL:MEX;ORIG:USA", "TLP:GREEN;ORIG:USA"])
    'TLP:RED;ORIG:USA'
    >>> try:
    ...     combine_texts([])
    ... except ValidationError as exc:
    ...     print(exc.message, "/", exc.hint)
    no markings to combine / a derived object takes the markings of its inputs; pass at least one
    """
    return _combine_set(frozenset(texts))


def combine_groups(
    group: npt.ArrayLike, code: npt.ArrayLike, dictionary: Sequence[str], n_groups: int
) -> list[str | None]:
    """The combined marking text of each group of rows, without a Python step per row.

    ``group`` (0 … ``n_groups`` - 1) and ``code`` (an index into ``dictionary``, the distinct marking texts, as
    Arrow dictionary arrays hold them; negative for a row without a marking) are given per row. Each group's
    distinct codes are found with one ``numpy.unique`` over (group, code) pairs; groups with one distinct marking
    take it directly, the others are combined by :func:`combine_texts` (cached per distinct set). A group with no
    marked row gets ``None``: the caller decides (there is no marking of nothing).

    >>> combine_groups([0, 0, 1, 1, 2], [0, 1, 1, 1, -1], ["TLP:RED;ORIG:USA", "TLP:GREEN;ORIG:USA"], 3)
    ['TLP:RED;ORIG:USA', 'TLP:GREEN;ORIG:USA', None]
    """
    g = np.asarray(group, dtype=np.int64).ravel()
    c = np.asarray(code, dtype=np.int64).ravel()
    if g.shape != c.shape:
        raise ValidationError(f"group and code differ in length ({g.size} and {c.size})")
    ok = c >= 0
    g, c = g[ok], c[ok]
    width = len(dictionary) + 1
    pairs = np.unique(g * width + c)
    pg, pc_ = pairs // width, pairs % width
    starts = np.flatnonzero(np.r_[True, pg[1:] != pg[:-1]]) if pairs.size else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, pairs.size])
    out = np.full(n_groups, None, dtype=object)
    names = list(dictionary)
    one = starts[sizes == 1]
    if one.size:  # the common case: one marking for the whole group, in canonical form
        used, inv = np.unique(pc_[one], return_inverse=True)
        canon = np.array([combine_texts([names[i]]) for i in used.tolist()], dtype=object)
        out[pg[one]] = canon[inv.ravel()]
    for s, z in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist(), strict=True):
        out[int(pg[s])] = combine_texts(names[i] for i in pc_[s : s + z].tolist())
    return list(out)
