"""The sovereignty run over a workspace: accounting, log, compliance verdicts, partner reports.

1. account every sortie track against the territories (country and state);
2. append every agreement version and every sortie-over-territory record to the
   transparency log (idempotent) and sign a checkpoint;
3. check every sortie against the agreements and keep the verdict on the sortie;
4. write each partner's report (HTML, CSV, JSON) under ``WORKSPACE/exports``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update

from atalaya.core.workspace import Workspace
from atalaya.geo.territories import load_territories
from atalaya.sovereignty.agreements import Agreement, stored_agreements
from atalaya.sovereignty.compliance import (
    SortieVerdict,
    account_sorties,
    check_sorties,
    sorties_from_store,
    tracks_from_lake,
)
from atalaya.sovereignty.overflight import log_records, overflight_records
from atalaya.sovereignty.report import write_report
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.lake import Lake


def agreement_record(a: Agreement) -> dict[str, Any]:
    """The log leaf for one agreement version (the document itself is identified by its SHA-256)."""
    return {
        "kind": "agreement",
        "id": a.id,
        "version": a.version,
        "sha256": a.sha256,
        "title": a.title,
        "effective_from": a.effective_from.isoformat() if a.effective_from else None,
        "effective_to": a.effective_to.isoformat() if a.effective_to else None,
    }


def verdict_attrs(v: SortieVerdict) -> dict[str, Any]:
    """What the map and the sorties table show for a verdict."""
    state = "no-host" if not v.hosts else ("compliant" if v.compliant else "violation")
    return {
        "compliance": state,
        "worst": v.worst.value if v.worst else None,
        "hosts": list(v.hosts),
        "violations": [{"rule": x.rule, "severity": x.severity.value, "message": x.message} for x in v.violations],
    }


def run_sovereignty(
    ws: Workspace,
    store: KnowledgeStore,
    *,
    partners: Sequence[str] = ("MEX",),
    as_of: datetime | None = None,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    """Run accounting, logging, compliance and reports; returns a summary."""
    territories = load_territories()
    tracks = tracks_from_lake(Lake(ws.lake_dir))
    acc = account_sorties(tracks, territories)
    agreements = stored_agreements(store)
    records = [agreement_record(a) for a in agreements.all()]
    records += overflight_records(acc, collector=ws.party)
    logged = log_records(ws, store, records)
    sorties = sorties_from_store(store)
    verdicts = check_sorties(
        sorties=sorties, tracks=tracks, agreements=agreements, territories=territories, as_of=as_of
    )
    with store.begin() as conn:
        for v in verdicts:
            conn.execute(update(ks.sorties).where(ks.sorties.c.id == v.sortie.sortie_id).values(attrs=verdict_attrs(v)))
    reports = {}
    for p in partners:
        reports[p] = {
            k: str(path)
            for k, path in write_report(
                (out_dir or ws.exports_dir) / f"report-{p}",
                partner=p,
                verdicts=verdicts,
                accounting=acc,
                tracks=tracks,
                territories=territories,
            ).items()
        }
    states = [verdict_attrs(v)["compliance"] for v in verdicts]
    return {
        "sorties": len(verdicts),
        "compliant": states.count("compliant"),
        "with_violations": states.count("violation"),
        "no_host_entry": states.count("no-host"),
        "overflight_records": sum(1 for r in records if r["kind"] == "overflight"),
        "log": logged,
        "reports": reports,
    }
