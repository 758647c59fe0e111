"""Provenance carried by every fused value, and the NATO Admiralty code for analyst confidence.

>>> p = Provenance(sources=("ais", "eo"), observations=("ab12",), first_seen="2026-03-02T01:00:00+00:00")
>>> Provenance.from_dict(p.to_dict()) == p
True
>>> Admiralty.parse("B2").text
'B2'
>>> Admiralty.parse("b2").reliability_label
'usually reliable'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from atalaya.core.errors import ValidationError

_RELIABILITY = {
    "A": "completely reliable",
    "B": "usually reliable",
    "C": "fairly reliable",
    "D": "not usually reliable",
    "E": "unreliable",
    "F": "reliability cannot be judged",
}
_CREDIBILITY = {
    "1": "confirmed by other sources",
    "2": "probably true",
    "3": "possibly true",
    "4": "doubtful",
    "5": "improbable",
    "6": "truth cannot be judged",
}


@dataclass(frozen=True, kw_only=True)
class Admiralty:
    """NATO Admiralty code: source reliability A–F and information credibility 1–6."""

    reliability: str
    """A (completely reliable) … F (cannot be judged)."""
    credibility: str
    """1 (confirmed) … 6 (cannot be judged)."""

    def __post_init__(self) -> None:
        if self.reliability not in _RELIABILITY or self.credibility not in _CREDIBILITY:
            raise ValidationError(
                f"invalid Admiralty code {self.reliability}{self.credibility}",
                hint="reliability is a letter A–F and credibility a digit 1–6, e.g. B2",
            )

    @classmethod
    def parse(cls, text: str) -> Admiralty:
        t = text.strip().upper()
        if len(t) != 2:
            raise ValidationError(f"invalid Admiralty code {text!r}", hint="write it as letter+digit, e.g. B2")
        return cls(reliability=t[0], credibility=t[1])

    @property
    def text(self) -> str:
        return self.reliability + self.credibility

    @property
    def reliability_label(self) -> str:
        return _RELIABILITY[self.reliability]

    @property
    def credibility_label(self) -> str:
        return _CREDIBILITY[self.credibility]


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """Where a value comes from: sources, supporting observations/records, time span, the run that made it."""

    sources: tuple[str, ...] = ()
    """Source names (lake partitions, datasets)."""
    observations: tuple[str, ...] = ()
    """Ids (hex) of supporting observations or records (may be truncated to a sample; see ``n_support``)."""
    n_support: int = 0
    """Number of supporting observations (can exceed ``len(observations)``)."""
    first_seen: str | None = None
    """ISO 8601 time of the earliest support."""
    last_seen: str | None = None
    """ISO 8601 time of the latest support."""
    run_id: str | None = None
    """Analysis or ingest run that produced the value."""
    method: str | None = None
    """Analytic and version, e.g. ``sites/grid-v1``."""
    admiralty: str | None = None
    """Analyst's Admiralty grading, if any."""

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items() if v not in (None, ())}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Provenance:
        d = dict(d or {})
        for k in ("sources", "observations"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)
