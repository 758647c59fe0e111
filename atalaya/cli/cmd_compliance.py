"""``atalaya check``, ``check-plan``, ``report`` and ``agreements …``: agreements and compliance.

Sorties come from the knowledge store's ``sorties`` table or a scenario manifest
(``--sorties OUT/records/sorties.json``); agreements from the knowledge store or
files (``--agreements FILE|DIR``); flown tracks from the observation lake (rows
with ``ident_kind = 'sortie'``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from atalaya.cli.context import emit, json_option, to_json, workspace_from
from atalaya.core.errors import ValidationError, WorkspaceError
from atalaya.sovereignty.agreements import (
    AgreementSet,
    agreement_files,
    load_agreement,
    load_agreements,
    parse_time,
    stored_agreements,
    stored_status,
)
from atalaya.sovereignty.compliance import Severity, load_sorties_json
from atalaya.sovereignty.territory_sets import TERRITORY_SETS, TerritoryChoice, warning_text
from atalaya.store.knowledge import KnowledgeStore

if TYPE_CHECKING:
    from atalaya.sovereignty.service import CheckResult

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
_F = TypeVar("_F", bound=Callable[..., Any])


def _territories_opt(fn: _F) -> _F:
    """``--territories FILE`` and ``--territory-set`` (passed as ``territories_path`` and ``territory_set``)."""
    fn = click.option(
        "--territory-set",
        "territory_set",
        type=click.Choice(TERRITORY_SETS),
        help="Territories to account against: the bundled Mexico region, every country of the world (loaded for "
        "the tiles the data touches), or auto (the region when it covers the data). Default: [territories] set in "
        "the workspace config, else region.",
    )(fn)
    out: _F = click.option(
        "--territories",
        "territories_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Extra territories (GeoJSON with id, name, level, owner) added to the territory set.",
    )(fn)
    return out


def _choice(ctx: click.Context, path: Path | None, territory_set: str | None) -> TerritoryChoice:
    """The territory set of the workspace's configuration (if any), with the command line's choices."""
    try:
        ws = workspace_from(ctx)
    except WorkspaceError:  # check-plan with --party and --agreements needs no workspace
        ws = None
    return TerritoryChoice.from_config(ws, territory_set=territory_set, extra=path)


def _warn_unlabelled(n: int) -> None:
    if n:
        click.echo(f"warning: {warning_text(n)}", err=True)


def _agreements(ctx: click.Context, paths: tuple[Path, ...]) -> AgreementSet:
    if paths:
        return load_agreements(list(paths))
    store = KnowledgeStore.open(workspace_from(ctx).db_url)
    try:
        return stored_agreements(store)
    finally:
        store.close()


def _check(
    ctx: click.Context,
    sorties_path: Path | None,
    agreement_paths: tuple[Path, ...],
    territories_path: Path | None,
    territory_set: str | None,
    as_of: str | None,
    only: tuple[str, ...],
) -> CheckResult:
    """The sovereignty service's check, with the command line's overrides (files given make it a what-if)."""
    from atalaya.sovereignty import service

    ws = workspace_from(ctx)
    store = KnowledgeStore.open(ws.db_url)
    try:
        return service.check(
            ws,
            store,
            sortie_ids=only,
            as_of=parse_time(as_of) if as_of else None,
            agreements=load_agreements(list(agreement_paths)) if agreement_paths else None,
            sorties=load_sorties_json(sorties_path) if sorties_path is not None else None,
            choice=_choice(ctx, territories_path, territory_set),
        )
    finally:
        store.close()


def _human_verdicts(verdicts: list[dict[str, Any]]) -> str:
    lines = []
    for v in verdicts:
        hosts = ",".join(v["hosts"]) or "-"
        state = v["status"]
        if state == "violation":
            state = f"{len(v['violations'])} violation(s), worst {v['worst']}"
        elif state in ("unverifiable", "no-host"):
            state = f"{state}: {v['reason']}"
        lines.append(f"{v['sortie_id']:<16} over {hosts:<8} {state}")
        for x in v["violations"]:
            lines.append(f"    [{x['severity']}] {x['rule']}: {x['message']}")
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v["status"]] = counts.get(v["status"], 0) + 1
    lines.append(f"{len(verdicts)} sortie(s) checked: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
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
    territory_set: str | None,
    only: tuple[str, ...],
    as_of: str | None,
    fail_on: str | None,
    as_json: bool,
) -> None:
    """Check every sortie's flown track against the agreement it claims.

    Each verdict (compliant, violation, unverifiable, no-host) is stored once, where the API and the reports
    read it; the sorties' sortie-over-territory records are appended to the transparency log.
    """
    res = _check(ctx, sorties_path, agreement_paths, territories_path, territory_set, as_of, only)
    _warn_unlabelled(res.unlabelled_points)
    emit(as_json, [v.to_dict() for v in res.verdicts], _human_verdicts)
    if fail_on:
        limit = Severity(fail_on).rank
        if any(x.severity.rank <= limit for v in res.verdicts for x in v.violations):
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
    territory_set: str | None,
    as_json: bool,
) -> None:
    """Split a planned route (KML, GeoJSON, GPX) into legs and say which authorisation covers each."""
    from atalaya.sovereignty.plans import check_plan, read_plan

    who = (party or workspace_from(ctx).party).upper()
    route = read_plan(plan)
    legs = check_plan(
        route,
        agreements=_agreements(ctx, agreement_paths),
        territories=_choice(ctx, territories_path, territory_set).load(route.lon, route.lat),
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
    if not data["covered"]:
        ctx.exit(1)


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
    territory_set: str | None,
    as_of: str | None,
    as_json: bool,
) -> None:
    """Write the partner report (report.html, report.csv, report.json) on flights over its territory.

    The report leaves through the egress chokepoint: its release is recorded in the transparency log.
    """
    from atalaya.sovereignty import service

    ws = workspace_from(ctx)
    res = _check(ctx, sorties_path, agreement_paths, territories_path, territory_set, as_of, ())
    _warn_unlabelled(res.unlabelled_points)
    store = KnowledgeStore.open(ws.db_url)
    try:
        rep = service.report(ws, store, partner=partner, out_dir=out_dir, result=res)
    finally:
        store.close()

    def human(d: dict[str, Any]) -> str:
        t = d["totals"]
        lines = [f"{k}: {v}" for k, v in d["files"].items()]
        lines.append(
            f"{t.get('sorties_over_partner', 0)} sortie(s) over {d['partner']}: {t.get('compliant_over_partner', 0)} "
            f"compliant, {t.get('violations', 0)} violation(s), {t.get('unverifiable', 0)} unverifiable; "
            f"{t.get('hours', 0)} h, {t.get('km', 0)} km, max depth {t.get('max_depth_km', 0)} km"
        )
        rel = d["release"]
        if rel["log_index"] is not None:
            lines.append(f"release recorded in the transparency log at index {rel['log_index']}")
        if rel["why_empty"]:
            lines.append(f"nothing over {d['partner']}: {rel['why_empty']}")
        return "\n".join(lines)

    emit(as_json, rep.to_dict(), human)


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
    """Validate agreement files, store them (versions are immutable; history is kept) and log each version."""
    from atalaya.sovereignty import service

    ws = workspace_from(ctx)
    agreements = load_agreements(list(paths))
    store = KnowledgeStore.open(ws.db_url)
    try:
        data = service.load_agreements(ws, store, agreements)
    finally:
        store.close()
    emit(
        as_json,
        data,
        lambda d: (
            f"{d['read']} agreement version(s) read, {d['new']} new; "
            f"{d['log']['appended']} appended to the transparency log (size {d['log']['log_size']})"
        ),
    )


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
