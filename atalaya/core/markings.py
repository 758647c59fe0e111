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
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

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
        """
        p = party.upper()
        if p == self.originator.upper():
            return True
        if self.tlp is TLP.CLEAR:
            return True
        return p in self.releasable_to


DEFAULT_MARKING = Marking(tlp=TLP.AMBER)
