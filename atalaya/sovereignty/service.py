"""The sovereignty service: flown tracks → accounting → verdicts → transparency log → partner report.

Every path — the CLI's ``agreements load``, ``sovereignty account``,
``sovereignty check``, ``sovereignty report``, the API, the demo and jobs —
calls these functions, so the log and the verdicts are the same whichever
path a user takes:

* :func:`load_agreements` stores agreement versions and appends each to the log;
* :func:`account` accounts identified tracks and appends the
  sortie-over-territory records of the sorties among them;
* :func:`check` judges sorties, stores one verdict per sortie and appends the
  sortie-over-territory records;
* :func:`report` releases the partner report through the egress chokepoint;
* :func:`run` does all of it.

Appending is idempotent (a record already logged is not appended again) and
each call that appended signs a checkpoint (:mod:`atalaya.store.translog.journal`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from atalaya.core.errors import ValidationError
from atalaya.core.workspace import Workspace
from atalaya.geo.territories import Territories
from atalaya.share.egress import EgressPolicy, Release, release, require_party
from atalaya.sovereignty.accounting import MAX_GAP_S, Accounting, account_tracks
from atalaya.sovereignty.agreements import Agreement, AgreementSet, store_agreements, stored_agreements
from atalaya.sovereignty.compliance import SortieRecord, SortieVerdict, TrackArrays, account_sorties, check_sorties
from atalaya.sovereignty.overflight import overflight_records
from atalaya.sovereignty.repository import load_verdicts, save_verdicts, sorties_from_store, verdict_row
from atalaya.sovereignty.territory_sets import TerritoryChoice, unlabelled_points
from atalaya.sovereignty.tracks import identified_tracks, sortie_tracks
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.lake import Lake
from atalaya.store.translog import journal

ACCOUNTABILITY_MARKING = "TLP:AMBER"
"""Marking of accountability records (they reach the host by the accountability rule, not by their marking)."""


def agreement_record(a: Agreement) -> dict[str, Any]:
    """The log leaf for one agreement version (the document itself is identified by its SHA-256)."""
    return {
        "kind": "agreement",
        "id": a.id,
        "version": a.version,
        "sha256": a.sha256,
        "title": a.title,
        "parties": sorted(a.parties),
        "effective_from": a.effective_from.isoformat() if a.effective_from else None,
        "effective_to": a.effective_to.isoformat() if a.effective_to else None,
    }


def log_agreements(ws: Workspace, store: KnowledgeStore, agreements: AgreementSet) -> dict[str, Any]:
    """Append every agreement version not yet in the log."""
    return journal.record(ws, store, [agreement_record(a) for a in agreements.all()])


def load_agreements(ws: Workspace, store: KnowledgeStore, agreements: AgreementSet) -> dict[str, Any]:
    """Store validated agreement versions and append each to the transparency log."""
    new = store_agreements(store, agreements.all())
    logged = log_agreements(ws, store, stored_agreements(store))
    return {"read": len(agreements), "new": new, "log": _log_figures(logged)}


def _log_figures(logged: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in logged.items() if k != "indices"}


def log_overflight(ws: Workspace, store: KnowledgeStore, acc: Accounting) -> dict[str, Any]:
    """Append the sortie-over-territory records of an accounting of sortie tracks."""
    return journal.record(ws, store, overflight_records(acc, collector=ws.party))


@dataclass(frozen=True, kw_only=True)
class AccountResult:
    """An accounting, and what it added to the log."""

    accounting: Accounting
    """Per track × territory figures at the requested level."""
    level: str
    """Territory level shown."""
    sorties: int
    """Sortie tracks among the tracks accounted."""
    log: dict[str, Any]
    """What the log gained."""
    unlabelled_points: int = 0
    """Fixes outside the region the loaded territories cover (accounted as ``INTL`` for want of a territory)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "level": self.level,
            "unlabelled_points": self.unlabelled_points,
            "summary": self.accounting.summary.to_pylist(),
            "events": self.accounting.events.to_pylist(),
            "tracks": self.accounting.tracks.to_pylist(),
            "sorties": self.sorties,
            "log": self.log,
        }


def account(
    ws: Workspace,
    store: KnowledgeStore,
    *,
    track: str | None = None,
    level: str = "country",
    territories: Territories | None = None,
    choice: TerritoryChoice | None = None,
) -> AccountResult:
    """Account every identified track (or one) at ``level``; log the sortie-over-territory records of sorties.

    Sortie tracks are also accounted at both levels for the log, so the host's
    record of a sortie is complete whichever level the user asked to see.
    Silences longer than the platform kind's limit (:data:`MAX_GAP_S`: vessels —
    MMSI, nine digits — get the vessel limit, sorties and aircraft the aircraft one)
    are unobserved. Without ``territories``, the set of ``choice`` (else of the workspace's configuration, see
    :mod:`atalaya.sovereignty.territory_sets`) is loaded for the fixes.
    """
    fixes = identified_tracks(Lake(ws.lake_dir), track)
    lon, lat = fixes.column("lon").to_numpy(), fixes.column("lat").to_numpy()
    terr = territories or (choice or TerritoryChoice.from_config(ws)).load(lon, lat)
    tid = np.asarray(fixes.column("track_id").to_pylist(), dtype=object)
    sortie_rows = fixes.column("is_sortie").to_numpy(zero_copy_only=False).astype(bool)
    vessel = ~sortie_rows & np.asarray([len(v) == 9 and v.isdigit() for v in tid.tolist()], dtype=bool)
    acc = account_tracks(
        track_id=tid,
        time_us=fixes.column("time_us").to_numpy(),
        lon=fixes.column("lon").to_numpy(),
        lat=fixes.column("lat").to_numpy(),
        territories=terr,
        levels=(level,),
        max_gap_s=np.where(vessel, MAX_GAP_S["vessel"], MAX_GAP_S["aircraft"]),
    )
    outside = unlabelled_points(terr, lon, lat)
    flags = sortie_rows
    logged: dict[str, Any] = {"appended": 0, "unchanged": 0}
    n_sorties = 0
    if flags.any():
        sel = np.flatnonzero(flags)  # rows come sorted by track then time, so the sortie rows are too
        sortie_id = tid[sel]
        n_sorties = int(np.count_nonzero(sortie_id[1:] != sortie_id[:-1])) + 1
        by_sortie = account_tracks(
            track_id=sortie_id,
            time_us=fixes.column("time_us").to_numpy()[sel],
            lon=fixes.column("lon").to_numpy()[sel],
            lat=fixes.column("lat").to_numpy()[sel],
            territories=terr,
            levels=("country", "state"),
            max_gap_s=MAX_GAP_S["sortie"],
        )
        logged = _log_figures(log_overflight(ws, store, by_sortie))
    return AccountResult(
        accounting=acc, level=level, sorties=n_sorties, log=logged, unlabelled_points=int(np.count_nonzero(outside))
    )


def claimed_hosts(sortie: SortieRecord, agreements: AgreementSet) -> list[str]:
    """The parties a sortie's manifest says it would fly over (from its authorisation, else its agreement)."""
    if sortie.agreement_id:
        a = agreements.latest(sortie.agreement_id)
        if a is not None:
            if sortie.authorisation_id and (item := a.item(sortie.authorisation_id)) is not None:
                return [item.host]
            return sorted({c.host for c in a.collection if c.collector == sortie.party} or set(a.parties))
    return []


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """Verdicts of a check, with what they rest on."""

    verdicts: list[SortieVerdict]
    """One per sortie checked."""
    rows: list[dict[str, Any]]
    """Their stored form (``verdicts`` rows)."""
    tracks: TrackArrays
    """The flown tracks used."""
    territories: Territories
    """The territories used."""
    accounting: Accounting
    """Country and state accounting of the sortie tracks."""
    stored: bool
    """Whether the verdicts were stored (the workspace's own sorties and agreements)."""
    log: dict[str, Any]
    """What the log gained."""
    unlabelled_points: int = 0
    """Flown fixes outside the region the loaded territories cover (accounted as ``INTL`` for want of one)."""

    @property
    def data_time(self) -> datetime:
        """The time the figures stand at: the latest flown fix, else the latest landing (stable across re-runs)."""
        if len(self.tracks.time_us):
            return datetime.fromtimestamp(int(self.tracks.time_us.max()) / 1e6, tz=UTC)
        landings = [v.sortie.landing for v in self.verdicts]
        return max(landings) if landings else datetime(1970, 1, 1, tzinfo=UTC)

    def counts(self) -> dict[str, int]:
        """Sorties per verdict status."""
        out: dict[str, int] = {}
        for v in self.verdicts:
            out[v.status] = out.get(v.status, 0) + 1
        return out


def check(
    ws: Workspace,
    store: KnowledgeStore,
    *,
    sortie_ids: Sequence[str] = (),
    as_of: datetime | None = None,
    agreements: AgreementSet | None = None,
    sorties: Sequence[SortieRecord] | None = None,
    territories: Territories | None = None,
    choice: TerritoryChoice | None = None,
) -> CheckResult:
    """Judge sorties against the agreements, store one verdict each, and log their overflight records.

    Verdicts are stored only when both the sorties and the agreements are the
    workspace's own (a check against files given on the command line is a
    what-if). The overflight records are facts about the flown tracks and are
    logged either way. Territories are chosen as by :func:`account`.
    """
    own = agreements is None and sorties is None
    agr = agreements if agreements is not None else stored_agreements(store)
    todo = list(sorties) if sorties is not None else sorties_from_store(store)
    if sortie_ids:
        wanted = set(sortie_ids)
        unknown = sorted(wanted - {s.sortie_id for s in todo})
        if unknown:
            raise ValidationError(
                f"unknown sortie(s): {', '.join(unknown[:5])}", hint="see the sorties with `atalaya sovereignty check`"
            )
        todo = [s for s in todo if s.sortie_id in wanted]
    if not todo:
        raise ValidationError(
            "no sorties to check",
            hint="import the sortie manifests (`atalaya records import DIR`), or pass --sorties records/sorties.json",
        )
    tracks = sortie_tracks(Lake(ws.lake_dir), [s.sortie_id for s in todo])
    terr = territories or (choice or TerritoryChoice.from_config(ws)).load(tracks.lon, tracks.lat)
    verdicts = check_sorties(sorties=todo, tracks=tracks, agreements=agr, territories=terr, as_of=as_of)
    acc = account_sorties(tracks, terr)
    logged = _log_figures(log_overflight(ws, store, acc))
    rows = [
        verdict_row(v, audience=v.hosts or claimed_hosts(v.sortie, agr), marking=ACCOUNTABILITY_MARKING, as_of=as_of)
        for v in verdicts
    ]
    if own:
        save_verdicts(store, rows, replace_all=not sortie_ids)
    outside = int(np.count_nonzero(unlabelled_points(terr, tracks.lon, tracks.lat)))
    return CheckResult(
        verdicts=verdicts,
        rows=rows,
        tracks=tracks,
        territories=terr,
        accounting=acc,
        stored=own,
        log=logged,
        unlabelled_points=outside,
    )


def sortie_views(store: KnowledgeStore) -> list[dict[str, Any]]:
    """Every sortie manifest with its stored verdict, as the API and the web show them.

    A sortie never checked has status ``unchecked``; its audience is the parties its manifest claims.
    """
    from sqlalchemy import select

    from atalaya.store.knowledge import schema as ks

    verdicts = {r["sortie_id"]: r for r in load_verdicts(store)}
    agr: AgreementSet | None = None
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(ks.sorties).order_by(ks.sorties.c.takeoff, ks.sorties.c.id))
                .mappings()]  # fmt: skip
    out = []
    for r in rows:
        v = verdicts.get(r["id"])
        if v is None:
            if agr is None:
                agr = stored_agreements(store)
            rec = SortieRecord.from_dict({**r, "sortie_id": r["id"]})
            audience = claimed_hosts(rec, agr)
            view = {"status": "unchecked", "reason": "not checked yet: run `atalaya sovereignty check`",
                    "worst": None, "n_violations": 0, "hosts": [], "audience": audience, "verdict": None}  # fmt: skip
        else:
            view = {k: v[k] for k in ("status", "reason", "worst", "n_violations", "hosts", "audience")}
            view["verdict"] = v["record"]
            view["checked_at"] = v["checked_at"]
        out.append({**{k: val for k, val in r.items() if k != "attrs"}, **view,
                    "marking": r.get("marking") or ACCOUNTABILITY_MARKING})  # fmt: skip
    return out


def _partner_verdicts(result: CheckResult, partner: str) -> list[SortieVerdict]:
    audience = {r["sortie_id"]: r["audience"] for r in result.rows}
    return [v for v in result.verdicts if partner in audience.get(v.sortie.sortie_id, [])]


@dataclass(kw_only=True)
class _ReportSink:
    """Writes the partner report's three files; what it returns is what the log hashes."""

    out_dir: Path
    result: CheckResult
    partner: str
    paths: dict[str, Path] | None = None

    def deliver(self, items: list[dict[str, Any]]) -> bytes:
        from atalaya.sovereignty.report import write_report

        keep = {it["sortie_id"] for it in items}
        verdicts = [v for v in self.result.verdicts if v.sortie.sortie_id in keep]
        t = self.result.tracks
        mask = np.isin(t.sortie_id.astype(str), np.asarray(sorted(keep), dtype=str))
        tracks = TrackArrays.build(
            sortie_id=t.sortie_id[mask], time_us=t.time_us[mask], lon=t.lon[mask], lat=t.lat[mask], alt_m=t.alt_m[mask]
        )
        self.paths = write_report(
            self.out_dir,
            partner=self.partner,
            verdicts=verdicts,
            accounting=account_sorties(tracks, self.result.territories),
            tracks=tracks,
            territories=self.result.territories,
            generated_at=self.result.data_time,
        )
        return b"".join(self.paths[k].read_bytes() for k in sorted(self.paths))


@dataclass(frozen=True, kw_only=True)
class ReportResult:
    """A partner report as released."""

    partner: str
    """The partner."""
    paths: dict[str, Path]
    """Files written."""
    release: Release
    """The egress release (log index, withheld items)."""
    data: dict[str, Any]
    """The report's figures (``report.json``)."""
    unlabelled_points: int = 0
    """Flown fixes outside the region the loaded territories cover (see :class:`CheckResult`)."""

    def to_dict(self) -> dict[str, Any]:
        """Figures, files and the release."""
        return {
            "partner": self.partner,
            "unlabelled_points": self.unlabelled_points,
            "totals": self.data.get("totals", {}),
            "files": {k: str(v) for k, v in self.paths.items()},
            "release": self.release.to_dict(),
        }


def report(
    ws: Workspace,
    store: KnowledgeStore,
    *,
    partner: str,
    out_dir: Path | None = None,
    user: str = "cli",
    result: CheckResult | None = None,
    as_of: datetime | None = None,
) -> ReportResult:
    """Write the partner report on the sorties over ``partner``'s territory, released through the egress."""
    pol = EgressPolicy.from_store(store, ws.party)
    code = require_party(store, pol, partner)
    res = result or check(ws, store, as_of=as_of)
    sink = _ReportSink(out_dir=out_dir or ws.exports_dir / f"report-{code}", result=res, partner=code)
    items = [
        {"id": v.sortie.sortie_id, "sortie_id": v.sortie.sortie_id, "marking": ACCOUNTABILITY_MARKING,
         "audience": list(r["audience"])}
        for v, r in zip(res.verdicts, res.rows, strict=True)
    ]  # fmt: skip
    rel = release(ws, store, items, recipient=code, kind="reports", user=user, purpose="accountability",
                  sink=sink, policy=pol)  # fmt: skip
    paths = sink.paths or {}
    data = json.loads(paths["json"].read_text(encoding="utf-8")) if "json" in paths else {}
    return ReportResult(partner=code, paths=paths, release=rel, data=data, unlabelled_points=res.unlabelled_points)


def run(
    ws: Workspace,
    store: KnowledgeStore,
    *,
    partners: Sequence[str] = ("MEX",),
    as_of: datetime | None = None,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    """The whole job: log the agreements, check every sortie (logging its records), write each partner's report."""
    agr_log = log_agreements(ws, store, stored_agreements(store))
    res = check(ws, store, as_of=as_of)
    reports = {
        p: report(ws, store, partner=p, result=res, out_dir=(out_dir / f"report-{p}") if out_dir else None)
        for p in partners
    }
    counts = res.counts()
    return {
        "sorties": len(res.verdicts),
        "by_status": counts,
        "compliant": counts.get("compliant", 0),
        "with_violations": counts.get("violation", 0),
        "unverifiable": counts.get("unverifiable", 0),
        "no_host_entry": counts.get("no-host", 0),
        "overflight_records": res.log.get("appended", 0) + res.log.get("unchanged", 0),
        "log": {"agreements": _log_figures(agr_log), "overflight": res.log},
        "reports": {p: {k: str(v) for k, v in r.paths.items()} for p, r in reports.items()},
        "releases": {p: r.release.to_dict() for p, r in reports.items()},
    }
