"""Loading reference records (parties, platforms, sortie manifests) into the knowledge store.

These are not observations: they describe who collects with what, and each
sortie's claims (agreement, notification, post-flight report). Files are JSON
arrays of objects, as the scenario writes them in ``OUT/records/`` and as an
operations centre would export them; loading is an idempotent upsert.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from atalaya.core.errors import ValidationError
from atalaya.core.markings import Marking
from atalaya.core.provenance import Provenance
from atalaya.model.objects import Party, Platform, Sortie
from atalaya.store.knowledge import KnowledgeStore, upsert
from atalaya.store.knowledge import schema as ks


@dataclass(frozen=True, kw_only=True)
class RecordsSummary:
    """Counts of loaded records."""

    parties: int = 0
    """Parties upserted."""
    platforms: int = 0
    """Platforms upserted."""
    sorties: int = 0
    """Sorties upserted."""

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _time(v: Any, where: str) -> datetime | None:
    if v in (None, ""):
        return None
    try:
        return datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{where}: bad time {v!r}", hint="use ISO 8601, e.g. 2026-03-02T06:00:00Z") from None


def _read_array(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValidationError(f"cannot read {path}: {e}", hint="the file must be a JSON array of objects") from e
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise ValidationError(f"{path} is not a JSON array of objects")
    return data


def parse_sorties(path: Path, marking: Marking) -> list[Sortie]:
    """Sortie manifest entries (``sortie_id``, ``platform_id``, ``platform_type``, ``party``, times, claims)."""
    out = []
    for i, d in enumerate(_read_array(path)):
        where = f"{path}[{i}]"
        try:
            sid = str(d["sortie_id"])
            pid = str(d["platform_id"])
        except KeyError as e:
            raise ValidationError(
                f"{where}: missing field {e}", hint="each sortie needs sortie_id and platform_id"
            ) from e
        out.append(
            Sortie(
                id=sid,
                platform_id=pid,
                platform_type=str(d.get("platform_type", "")),
                party=str(d.get("party", "")),
                takeoff=_time(d.get("takeoff"), where),
                landing=_time(d.get("landing"), where),
                base=str(d.get("base", "") or ""),
                agreement_id=d.get("agreement_id"),
                authorisation_id=d.get("authorisation_id"),
                notified_at=_time(d.get("notified_at"), where),
                report_filed_at=_time(d.get("report_filed_at"), where),
                tasking=str(d.get("mission", d.get("tasking", "")) or ""),
                marking=marking,
                provenance=Provenance(sources=(str(path),)),
            )
        )
    return out


def load_records(store: KnowledgeStore, directory: Path, *, marking: Marking) -> RecordsSummary:
    """Upsert ``parties.json``, ``platforms.json`` and ``sorties.json`` found in ``directory``."""
    parties: list[Party] = []
    platforms: list[Platform] = []
    sorties: list[Sortie] = []
    p = directory / "parties.json"
    if p.exists():
        parties = [
            Party(id=str(d["code"]), name=str(d.get("name", d["code"])), role=str(d.get("role", "")), marking=marking)
            for d in _read_array(p)
        ]
    p = directory / "platforms.json"
    if p.exists():
        platforms = [
            Platform(
                id=str(d["platform_id"]),
                platform_type=str(d.get("platform_type", "")),
                party=str(d.get("party", "")),
                name=str(d.get("name", d["platform_id"])),
                sensors=tuple(d.get("sensors", ())),
                marking=marking,
            )
            for d in _read_array(p)
        ]
    p = directory / "sorties.json"
    if p.exists():
        sorties = parse_sorties(p, marking)
    with store.begin() as conn:
        upsert(conn, ks.parties, [x.to_row() for x in parties], keys=["id"])
        upsert(conn, ks.platforms, [x.to_row() for x in platforms], keys=["id"])
        upsert(conn, ks.sorties, [x.to_row() for x in sorties], keys=["id"])
    return RecordsSummary(parties=len(parties), platforms=len(platforms), sorties=len(sorties))
