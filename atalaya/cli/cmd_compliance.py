"""``atalaya check``, ``check-plan``, ``report`` and ``agreements …``: agreements and compliance.

Sorties come from the knowledge store's ``sorties`` table or a scenario manifest
(``--sorties OUT/records/sorties.json``); agreements from the knowledge store or
files (``--agreements FILE|DIR``); flown tracks from the observation lake (rows
with ``ident_kind = 'sortie'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from atalaya.cli.context import emit, json_option, to_json, workspace_from
from atalaya.core.errors import ValidationError
from atalaya.core.workspace import Workspace
from atalaya.geo.territories import Territories, load_territories
from atalaya.sovereignty.agreements import (
    AgreementSet,
    agreement_files,
    load_agreement,
    load_agreements,
    parse_time,
    store_agreements,
    stored_agreements,
    stored_status,
)
from atalaya.sovereignty.compliance import (
    Severity,
    SortieRecord,
    SortieVerdict,
    TrackArrays,
    account_sorties,
    check_sorties,
    load_sorties_json,
    sorties_from_store,
    tracks_from_lake,
)
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.lake import Lake

_agreements_opt = click.option(
    "--agreements",
    "agreement_paths",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Agreement files or directories (default: the agreements stored in the workspace).",
)
_sorties_opt = click.option(
    "--sorties",
    "sorties_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Sortie manifest (a scenario's records/sorties.json; default: the knowledge store's sorties).",
)
_territories_opt = click.option(
    "--territories",
    "territories_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Extra territories (GeoJSON with id, name, level, owner) added to the bundled ones.",
)


def _territories(path: Path | None) -> Territories:
    return load_territories(extra=path)


def _agreements(ctx: click.Context, paths: tuple[Path, ...]) -> AgreementSet:
    if paths:
        return load_agreements(list(paths))
    store = KnowledgeStore.open(workspace_from(ctx).db_url)
    try:
        return stored_agreements(store)
    finally:
        store.close()


def _sorties(ws: Workspace, path: Path | None) -> list[SortieRecord]:
    if path is not None:
        return load_sorties_json(path)
    store = KnowledgeStore.open(ws.db_url)
    try:
        return sorties_from_store(store)
    finally:
        store.close()


def _verdicts(
    ctx: click.Context,
    sorties_path: Path | None,
    agreement_paths: tuple[Path, ...],
    territories_path: Path | None,
    as_of: str | None,
    only: tuple[str, ...],
) -> tuple[list[SortieVerdict], TrackArrays, Territories]:
    ws = workspace_from(ctx)
    sorties = _sorties(ws, sorties_path)
    if only:
        wanted = set(only)
        sorties = [s for s in sorties if s.sortie_id in wanted]
    if not sorties:
        raise ValidationError(
            "no sorties to check",
            hint="ingest the sortie manifest into the knowledge store, or pass --sorties OUT/records/sorties.json",
        )
    tracks = tracks_from_lake(Lake(ws.lake_dir), [s.sortie_id for s in sorties])
    territories = _territories(territories_path)
    verdicts = check_sorties(
        sorties=sorties,
        tracks=tracks,
        agreements=_agreements(ctx, agreement_paths),
        territories=territories,
        as_of=parse_time(as_of) if as_of else None,
    )
    return verdicts, tracks, territories


def _human_verdicts(verdicts: list[dict[str, Any]]) -> str:
    lines = []
    for v in verdicts:
        hosts = ",".join(v["hosts"]) or "-"
        state = "compliant" if v["compliant"] else f"{len(v['violations'])} violation(s), worst {v['worst']}"
        lines.append(f"{v['sortie_id']:<16} over {hosts:<8} {state}")
        for x in v["violations"]:
            lines.append(f"    [{x['severity']}] {x['rule']}: {x['message']}")
    n_bad = sum(not v["compliant"] for v in verdicts)
    lines.append(f"{len(verdicts)} sortie(s) checked, {n_bad} with violations")
    return "\n".join(lines)


@click.command("check")
@_sorties_opt
@_agreements_opt
@_territories_opt
@click.option("--sortie", "only", multiple=True, help="Check only these sortie ids (repeatable).")
@click.option("--as-of", help="Time of the check (ISO 8601): reports not yet due are not missing.")
@click.option(
    "--fail-on",
    type=click.Choice([s.value for s in Severity]),
    help="Exit with status 1 when any violation is at least this severe.",
)
@json_option
@click.pass_context
def check_cmd(
    ctx: click.Context,
    sorties_path: Path | None,
    agreement_paths: tuple[Path, ...],
    territories_path: Path | None,
    only: tuple[str, ...],
    as_of: str | None,
    fail_on: str | None,
    as_json: bool,
) -> None:
    """Check every sortie's flown track against the agreement it claims."""
    verdicts, _, _ = _verdicts(ctx, sorties_path, agreement_paths, territories_path, as_of, only)
    emit(as_json, [v.to_dict() for v in verdicts], _human_verdicts)
    if fail_on:
        limit = Severity(fail_on).rank
        if any(x.severity.rank <= limit for v in verdicts for x in v.violations):
            ctx.exit(1)


@click.command("check-plan")
@click.argument("plan", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--platform-type", help="Platform type to be flown (e.g. MQ-9).")
@click.option("--party", help="Flying party (default: the workspace's party).")
@click.option("--start", help="Planned take-off (ISO 8601), when the plan has no times.")
@click.option("--speed-mps", type=float, help="Planned ground speed (m/s), with --start.")
@_agreements_opt
@_territories_opt
@json_option
@click.pass_context
def check_plan_cmd(
    ctx: click.Context,
    plan: Path,
    platform_type: str | None,
    party: str | None,
    start: str | None,
    speed_mps: float | None,
    agreement_paths: tuple[Path, ...],
    territories_path: Path | None,
    as_json: bool,
) -> None:
    """Split a planned route (KML, GeoJSON, GPX) into legs and say which authorisation covers each."""
    from atalaya.sovereignty.plans import check_plan, read_plan

    who = (party or workspace_from(ctx).party).upper()
    legs = check_plan(
        read_plan(plan),
        agreements=_agreements(ctx, agreement_paths),
        territories=_territories(territories_path),
        party=who,
        platform_type=platform_type,
        start=parse_time(start) if start else None,
        speed_mps=speed_mps,
    )
    data = {
        "plan": str(plan),
        "party": who,
        "covered": all(leg.covered for leg in legs),
        "legs": [leg.to_dict() for leg in legs],
    }

    def human(d: dict[str, Any]) -> str:
        out = []
        for leg in d["legs"]:
            where = leg["state"] or leg["country"]
            cover = (
                "own/international"
                if not leg["foreign"]
                else ("covered by " + ", ".join(leg["covered_by"]) if leg["covered"] else "NOT COVERED")
            )
            out.append(f"leg {leg['index']:>2}  {where:<10} {leg['distance_km']:>8.1f} km  {cover}")
            for nc in leg["not_covered"]:
                out.append(f"          {nc['collection_id']}: " + "; ".join(nc["reasons"]))
            for note in leg["notes"]:
                out.append(f"          note: {note}")
        out.append("plan is covered" if d["covered"] else "plan is NOT fully covered")
        return "\n".join(out)

    emit(as_json, data, human)


@click.command("report")
@click.option("--partner", required=True, help="Partner (host) party code, e.g. MEX.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Output directory.")
@_sorties_opt
@_agreements_opt
@_territories_opt
@click.option("--as-of", help="Time of the check (ISO 8601).")
@json_option
@click.pass_context
def report_cmd(
    ctx: click.Context,
    partner: str,
    out_dir: Path | None,
    sorties_path: Path | None,
    agreement_paths: tuple[Path, ...],
    territories_path: Path | None,
    as_of: str | None,
    as_json: bool,
) -> None:
    """Write the partner report (report.html, report.csv, report.json) on flights over its territory."""
    from atalaya.sovereignty.report import write_report

    ws = workspace_from(ctx)
    verdicts, tracks, territories = _verdicts(ctx, sorties_path, agreement_paths, territories_path, as_of, ())
    code = partner.upper()
    try:
        territories.index_of(code)
    except KeyError:
        raise ValidationError(f"unknown partner territory {code!r}", hint="give a country code such as MEX") from None
    out = out_dir or ws.exports_dir / f"report-{code}"
    paths = write_report(
        out,
        partner=code,
        verdicts=verdicts,
        accounting=account_sorties(tracks, territories),
        tracks=tracks,
        territories=territories,
    )
    emit(as_json, {k: str(v) for k, v in paths.items()}, lambda d: "\n".join(f"{k}: {v}" for k, v in d.items()))


@click.group("agreements")
def agreements_cmd() -> None:
    """Validate, store and list agreements (YAML/JSON, versioned)."""


@agreements_cmd.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@json_option
def agreements_validate(paths: tuple[Path, ...], as_json: bool) -> None:
    """Validate agreement files against the schema (no workspace needed)."""
    results = []
    failed = False
    for p in agreement_files(list(paths)):
        try:
            a = load_agreement(p)
            results.append({"file": str(p), "ok": True, "id": a.id, "version": a.version, "sha256": a.sha256})
        except ValidationError as e:
            failed = True
            results.append({"file": str(p), "ok": False, "error": str(e)})

    def human(rs: list[dict[str, Any]]) -> str:
        return "\n".join(
            f"ok    {r['file']}: {r['id']} v{r['version']}" if r["ok"] else f"FAIL  {r['error']}" for r in rs
        )

    emit(as_json, results, human)
    if failed:
        raise click.exceptions.Exit(1)


@agreements_cmd.command("load")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@json_option
@click.pass_context
def agreements_load(ctx: click.Context, paths: tuple[Path, ...], as_json: bool) -> None:
    """Validate agreement files and store them (versions are immutable; history is kept)."""
    ws = workspace_from(ctx)
    agreements = load_agreements(list(paths))
    store = KnowledgeStore.open(ws.db_url)
    try:
        new = store_agreements(store, agreements.all())
    finally:
        store.close()
    data = {"read": len(agreements), "new": new}
    emit(as_json, data, lambda d: f"{d['read']} agreement version(s) read, {d['new']} new")


@agreements_cmd.command("list")
@json_option
@click.pass_context
def agreements_list(ctx: click.Context, as_json: bool) -> None:
    """List the stored agreement versions."""
    store = KnowledgeStore.open(workspace_from(ctx).db_url)
    try:
        rows = stored_status(store)
    finally:
        store.close()

    def human(rs: list[dict[str, Any]]) -> str:
        if not rs:
            return "no agreements stored (load some with `atalaya agreements load FILES`)"
        return "\n".join(
            f"{r['id']:<16} v{r['version']:<3} {r['status']:<10} {r['effective_from']} → {r['effective_to']}  "
            f"{r['title']}"
            for r in rs
        )

    emit(as_json, rows, human)


@agreements_cmd.command("show")
@click.argument("agreement_id")
@click.option("--version", "version", type=int, help="Version (default: the latest).")
@click.pass_context
def agreements_show(ctx: click.Context, agreement_id: str, version: int | None) -> None:
    """Print one stored agreement version as JSON."""
    store = KnowledgeStore.open(workspace_from(ctx).db_url)
    try:
        agreements = stored_agreements(store)
    finally:
        store.close()
    history = agreements.history(agreement_id)
    chosen = next((a for a in history if a.version == version), None) if version else agreements.latest(agreement_id)
    if chosen is None:
        raise ValidationError(
            f"no stored agreement {agreement_id!r}" + (f" version {version}" if version else ""),
            hint="see `atalaya agreements list`",
        )
    click.echo(to_json({"sha256": chosen.sha256, "document": chosen.document}))
