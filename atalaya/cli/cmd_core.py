"""``atalaya init``, ``ingest``, ``status`` and ``quarantine``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from sqlalchemy import func, select

from atalaya.cli.context import emit, json_option, show_progress, state, workspace_from
from atalaya.core.errors import ValidationError
from atalaya.core.markings import Marking
from atalaya.core.workspace import init_workspace
from atalaya.ingest.base import ReadOptions
from atalaya.ingest.registry import FORMATS
from atalaya.store.knowledge import KnowledgeStore
from atalaya.store.knowledge import schema as ks
from atalaya.store.status import workspace_status


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--party", default="USA", show_default=True, help="This node's party code (e.g. USA, MEX).")
@click.option("--name", default=None, help="Human-readable party name.")
@click.option("--role", type=click.Choice(["collecting", "host"]), default="collecting", show_default=True)
@json_option
@click.pass_context
def init_cmd(ctx: click.Context, directory: Path, party: str, name: str | None, role: str, as_json: bool) -> None:
    """Create a workspace in DIRECTORY: config, party identity, Ed25519 signing key (0600), stores."""
    db = state(ctx).db or ""
    ws = init_workspace(directory, party=party, name=name, role=role, db_url=db)
    store = KnowledgeStore.open(ws.db_url)
    try:
        version = store.schema_version()
    finally:
        store.close()
    info = {
        "workspace": str(ws.root),
        "party": ws.party,
        "db": _redact(ws.db_url),
        "schema_version": version,
        "signing_key": str(ws.key_path),
        "log_origin": ws.log_origin,
    }
    emit(
        as_json,
        info,
        lambda d: (
            f"workspace ready: {d['workspace']}\n  party: {d['party']}\n  knowledge store: {d['db']} "
            f"(schema v{d['schema_version']})\n  signing key: {d['signing_key']} (mode 0600)\n"
            f"  next: atalaya -w {d['workspace']} ingest FILES…"
        ),
    )


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        user = cred.split(":", 1)[0]
        return f"{scheme}://{user}@{host}"
    return url


def _parse_kv(pairs: tuple[str, ...], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs:
        if "=" not in p:
            raise ValidationError(f"bad {what} {p!r}", hint=f"write it as NAME=VALUE, e.g. --{what} sensor=EO")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _parse_received_at(text: str) -> int:
    """``--received-at`` ISO 8601 time → µs since the epoch (UTC when it names no offset)."""
    import datetime as dt

    try:
        d = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"bad --received-at {text!r}",
            hint="give an ISO 8601 time, e.g. --received-at 2024-05-01T12:00:00Z, or --received-at mtime",
        ) from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    delta = d - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-f", "--format", "fmt", type=click.Choice(sorted(FORMATS)), help="Input format (default: detect).")
@click.option("--source", help="Source name for the lake partition (default: the format name).")
@click.option("--marking", default=None, help='Marking for the data, e.g. "TLP:AMBER;REL:USA,MEX;ORIG:USA".')
@click.option("--map", "maps", multiple=True, metavar="SRC=DST", help="Tabular formats: map a column (repeatable).")
@click.option("--set", "sets", multiple=True, metavar="COL=VALUE", help="Constant for a missing column (repeatable).")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="If another process is writing the lake, wait up to SECONDS for it (default: $ATALAYA_LOCK_WAIT, "
    "else lock_wait in atalaya.toml, else 0: report it busy at once).",
)
@click.option(
    "--received-at",
    "received_at",
    default=None,
    metavar="TIME|mtime",
    help="When the data was received, for records without a time of their own (AIS captures without tag blocks "
    "or epochs): an ISO 8601 time (UTC unless it names an offset), or 'mtime' for each file's modification time. "
    "NMEA records get this time plus their line number - 1 microseconds, which keeps their order.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Re-ingest files already ingested (e.g. with another --map): the new unit replaces the earlier one's "
    "rows and quarantine in one commit.",
)
@json_option
@click.pass_context
def ingest_cmd(
    ctx: click.Context,
    paths: tuple[Path, ...],
    fmt: str | None,
    source: str | None,
    marking: str | None,
    maps: tuple[str, ...],
    sets: tuple[str, ...],
    wait: float | None,
    received_at: str | None,
    replace: bool,
    as_json: bool,
) -> None:
    """Load files (and directories of files) into the observation lake.

    Formats are detected from content; bad records go to the quarantine with
    their reason and location; files already ingested are skipped. One writer
    at a time: a second ingest reports the lake busy (who holds it, since when)
    or waits for it with --wait.
    """
    from atalaya.ingest.pipeline import ingest_paths

    ws = workspace_from(ctx)
    mk = Marking.from_text(marking) if marking else Marking.from_text(f"TLP:AMBER;ORIG:{ws.party}")
    options = ReadOptions(
        column_map=_parse_kv(maps, "map"),
        defaults=_parse_kv(sets, "set"),
        reference_time_us=None if received_at in (None, "mtime") else _parse_received_at(received_at),
        received_at_mtime=received_at == "mtime",
    )
    summary = ingest_paths(
        ws,
        list(paths),
        fmt=fmt,
        source=source,
        marking=mk,
        options=options,
        progress=show_progress(ctx) and not as_json,
        wait=wait,
        replace=replace,
    )
    data = summary.to_dict()
    emit(as_json, data, _render_ingest)
    if any(u.status == "failed" for u in summary.units):
        ctx.exit(1)


def _render_ingest(d: dict[str, Any]) -> str:
    t = d["totals"]
    lines = [
        f"files: {t.get('files', 0)} (ingested {t.get('files_ingested', 0)}, "
        f"already ingested {t.get('files_skipped', 0)}, failed {t.get('files_failed', 0)})",
        f"records: {t.get('records', 0):,}  accepted: {t.get('accepted', 0):,}  "
        f"quarantined: {t.get('quarantined', 0):,}  duplicates skipped: {t.get('duplicates', 0):,}",
    ]
    if d["quarantine_reasons"]:
        lines.append("quarantine reasons:")
        lines += [f"  {n:>8,}  {r}" for r, n in list(d["quarantine_reasons"].items())[:15]]
        lines.append("  (see `atalaya quarantine` for each record)")
    if d.get("field_notes"):
        lines.append("auxiliary fields fixed in kept records (noted in attrs.qc):")
        lines += [f"  {n:>8,}  {r}" for r, n in d["field_notes"].items()]
    for u in d["units"]:
        if u["status"] == "failed":
            lines.append(f"FAILED {u['path']}: {u['error']}")
    return "\n".join(lines)


@click.command("status")
@json_option
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """What the workspace holds: observations per source, day and kind; knowledge-store counts.

    A reader: it takes no lock and changes nothing (the next ingest does any recovery).
    """
    ws = workspace_from(ctx)
    store = KnowledgeStore.open(ws.db_url)
    try:
        data = workspace_status(ws, store)
    finally:
        store.close()
    emit(as_json, data, _render_status)


def _render_status(d: dict[str, Any]) -> str:
    lines = [f"workspace {d['workspace']} (party {d['party']})", f"observations: {d['observations']:,}"]
    for title, key in (("per source", "by_source"), ("per day", "by_day"), ("per kind", "by_kind")):
        if d[key]:
            lines.append(f"{title}:")
            lines += [f"  {k:<24} {v:>12,}" for k, v in d[key].items()]
    lines.append("knowledge store:")
    lines += [f"  {k:<24} {v:>12,}" for k, v in d["knowledge_store"].items()]
    return "\n".join(lines)


@click.command("quarantine")
@click.option("--limit", default=50, show_default=True, help="Records per page.")
@click.option("--offset", default=0, show_default=True, help="Records to skip (pagination).")
@click.option("--reason", default=None, help="Only reasons containing this text.")
@json_option
@click.pass_context
def quarantine_cmd(ctx: click.Context, limit: int, offset: int, reason: str | None, as_json: bool) -> None:
    """List quarantined records: file, location, reason and the raw excerpt."""
    ws = workspace_from(ctx)
    store = KnowledgeStore.open(ws.db_url)
    try:
        q = select(ks.quarantine).order_by(ks.quarantine.c.id)
        cq = select(func.count()).select_from(ks.quarantine)
        if reason:
            q = q.where(ks.quarantine.c.reason.contains(reason))
            cq = cq.where(ks.quarantine.c.reason.contains(reason))
        with store.engine.connect() as conn:
            total = int(conn.execute(cq).scalar_one())
            rows = [dict(r._mapping) for r in conn.execute(q.limit(limit).offset(offset))]
    finally:
        store.close()
    data = {"total": total, "offset": offset, "limit": limit, "records": rows}
    emit(
        as_json,
        data,
        lambda d: "\n".join(
            [f"{d['total']:,} quarantined records (showing {len(d['records'])} from {d['offset']})"]
            + [f"{r['path']}:{r['src_rec']}  {r['reason']}\n    {r['raw'][:160]}" for r in d["records"]]
        ),
    )
