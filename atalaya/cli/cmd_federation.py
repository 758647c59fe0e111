"""``atalaya partners …``, ``atalaya selectors …``, ``atalaya match``: partner nodes and private comparisons."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import click

from atalaya.cli.context import emit, json_option, workspace_from
from atalaya.core.errors import ValidationError
from atalaya.share.matching.selectors import KINDS
from atalaya.store.knowledge import KnowledgeStore


def _read_values(path: Path, column: str | None) -> list[str]:
    """One value per line, or one column of a CSV file (by header name)."""
    text = path.read_text(encoding="utf-8-sig")
    if column is None:
        return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    rows = list(csv.DictReader(io.StringIO(text)))
    if rows and column not in rows[0]:
        raise ValidationError(f"{path} has no column {column!r}", hint="columns: " + ", ".join(str(k) for k in rows[0]))
    return [str(r[column]).strip() for r in rows if str(r.get(column) or "").strip()]


@click.group("partners")
def partners() -> None:
    """Partner nodes this node federates with (address, pinned log key, API token)."""


@partners.command("add")
@click.argument("party")
@click.argument("url")
@click.option("--key", "vkey", required=True, help="The partner's log verifier key (pinned from now on).")
@click.option("--token", default=None, help="API token the partner issued to this node (prefer --token-file).")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="File holding that token.")  # fmt: skip
@click.option("--witness-key", default=None, help="The partner's witness key (checks the cosignatures it sends).")
@json_option
@click.pass_context
def partners_add(
    ctx: click.Context,
    party: str,
    url: str,
    vkey: str,
    token: str | None,
    token_file: Path | None,
    witness_key: str | None,
    as_json: bool,
) -> None:
    """Register partner node PARTY at URL."""
    from atalaya.share.federation.partners import add_partner

    if (token is None) == (token_file is None):
        raise click.UsageError("give exactly one of --token or --token-file")
    secret = token if token is not None else token_file.read_text(encoding="utf-8").strip()  # type: ignore[union-attr]
    ws = workspace_from(ctx)
    p = add_partner(ws, KnowledgeStore.open(ws.db_url), party, url, verifier_key=vkey, token=secret,
                    witness_key=witness_key)  # fmt: skip
    info = {"party": p.party, "url": p.url, "origin": p.origin}
    emit(as_json, info, lambda d: f"partner {d['party']} at {d['url']} (log {d['origin']})")


@partners.command("list")
@json_option
@click.pass_context
def partners_list(ctx: click.Context, as_json: bool) -> None:
    """Registered partners and how far each has been synced."""
    from atalaya.share.federation.partners import list_partners

    ws = workspace_from(ctx)
    rows = [
        {
            "party": p.party,
            "url": p.url,
            "origin": p.origin,
            "log_size": p.log_size,
            "synced_at": p.synced_at.isoformat() if p.synced_at else None,
        }
        for p in list_partners(KnowledgeStore.open(ws.db_url))
    ]
    text = "\n".join(f"{r['party']:<6} {r['url']}  log {r['origin']} synced to {r['log_size']}" for r in rows)
    emit(
        as_json,
        rows,
        lambda _d: text or "no partners registered (atalaya partners add PARTY URL --key VKEY --token-file F)",
    )


@partners.command("remove")
@click.argument("party")
@click.pass_context
def partners_remove(ctx: click.Context, party: str) -> None:
    """Forget a partner node and its token."""
    from atalaya.share.federation.partners import remove_partner

    ws = workspace_from(ctx)
    if not remove_partner(ws, KnowledgeStore.open(ws.db_url), party):
        raise ValidationError(f"partner {party.upper()} is not registered")
    click.echo(f"removed partner {party.upper()}")


@click.group("selectors")
def selectors() -> None:
    """This node's selector lists (phones, persons, MMSIs …) for private comparisons."""


@selectors.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(KINDS), required=True, help="Selector kind of the values.")
@click.option("--column", default=None, help="CSV column holding the values (default: one value per line).")
@click.option("--region", default="MX", show_default=True, help="Country of phone numbers given without +code.")
@click.option("--marking", default="TLP:AMBER", show_default=True, help="Marking of the list.")
@json_option
@click.pass_context
def selectors_import(
    ctx: click.Context, path: Path, kind: str, column: str | None, region: str, marking: str, as_json: bool
) -> None:
    """Add the values in PATH to this node's list of KIND (normalised; re-importing adds nothing twice)."""
    from atalaya.share.matching.service import import_selectors

    ws = workspace_from(ctx)
    res = import_selectors(KnowledgeStore.open(ws.db_url), kind, _read_values(path, column), source=str(path),
                           marking=marking, region=region)  # fmt: skip
    rejected = [{"row": r, "value": v, "reason": why} for r, v, why in res.rejects]
    out: dict[str, Any] = {"kind": kind, "added": res.added, "already": res.already, "rejected": rejected}
    lines = [f"{kind}: {res.added} added, {res.already} already held, {len(res.rejects)} rejected"]
    lines += [f"  row {r + 1}: {v!r}: {why}" for r, v, why in res.rejects[:20]]
    emit(as_json, out, lambda _d: "\n".join(lines))


@selectors.command("list")
@json_option
@click.pass_context
def selectors_list(ctx: click.Context, as_json: bool) -> None:
    """How many selectors of each kind this node holds."""
    from atalaya.share.matching.service import selector_counts

    ws = workspace_from(ctx)
    counts = selector_counts(KnowledgeStore.open(ws.db_url))
    emit(as_json, counts, lambda c: "\n".join(f"{k:<9} {n}" for k, n in sorted(c.items())) or "no selectors")


@click.command("match")
@click.argument("partner")
@click.option("--kind", type=click.Choice(KINDS), required=True, help="Selector kind to compare.")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Compare these values instead of this node's stored list.")  # fmt: skip
@click.option("--column", default=None, help="CSV column of --file holding the values.")
@click.option("--region", default="MX", show_default=True, help="Country of phone numbers given without +code.")
@json_option
@click.pass_context
def match_cmd(
    ctx: click.Context, partner: str, kind: str, path: Path | None, column: str | None, region: str, as_json: bool
) -> None:
    """Compare selectors of KIND with PARTNER's node without either side disclosing its list.

    Allowed only under an agreement in force with a matching term for both parties and the kind; it reveals
    the common items or only their number, as the term says. Both nodes log the comparison.
    """
    from atalaya.share.federation.client import PartnerClient
    from atalaya.share.federation.partners import get_partner, partner_token
    from atalaya.share.matching.http import HttpTransport
    from atalaya.share.matching.service import compare

    ws = workspace_from(ctx)
    store = KnowledgeStore.open(ws.db_url)
    p = get_partner(store, partner)
    values = _read_values(path, column) if path is not None else None
    with PartnerClient(p.url, partner_token(ws, p.party)) as client:
        out = compare(ws, store, HttpTransport(client), partner=p.party, kind=kind, values=values, region=region)
    text = (
        f"compared {out.own_items} {kind} selectors with {p.party}'s {out.peer_items}: {out.overlap} in common"
        + (":\n  " + "\n  ".join(out.common) if out.common else "")
        + f"\nlogged at index {out.log_index}"
    )
    emit(as_json, out.to_dict(), lambda _d: text)


@click.command("sync")
@click.argument("partner", required=False)
@json_option
@click.pass_context
def sync_cmd(ctx: click.Context, partner: str | None, as_json: bool) -> None:
    """Pull what PARTNER (default: every registered partner) shared since the last sync, proving each object.

    Verifies the partner's signed checkpoint under its pinned key and its consistency with the last one seen
    (a rolled-back or forked log is refused), cosigns it as a witness, checks every object against a publication
    entry included in the log, applies retractions and sends signed receipts.
    """
    from atalaya.cli.context import show_progress
    from atalaya.share.federation.client import PartnerClient
    from atalaya.share.federation.hostcheck import check_partner_sorties
    from atalaya.share.federation.partners import get_partner, list_partners, partner_token
    from atalaya.share.federation.sync import sync_partner

    ws = workspace_from(ctx)
    store = KnowledgeStore.open(ws.db_url)
    targets = [get_partner(store, partner)] if partner else list_partners(store)
    if not targets:
        raise ValidationError("no partners registered", hint="atalaya partners add PARTY URL --key VKEY --token-file F")
    say = (lambda m: click.echo(m, err=True)) if show_progress(ctx) else None
    results = []
    for p in targets:
        with PartnerClient(p.url, partner_token(ws, p.party)) as client:
            got = sync_partner(ws, store, p.party, client, progress=say).to_dict()
        if got["received"]:
            checks = check_partner_sorties(ws, store, p.party)
            got["host_checks"] = {s: sum(c.status == s for c in checks) for s in sorted({c.status for c in checks})}
        results.append(got)

    def human(rows: list[dict[str, Any]]) -> str:
        out = []
        for r in rows:
            if r["nothing_new"]:
                out.append(f"{r['partner']}: nothing new (log size {r['log_size']})")
                continue
            out.append(
                f"{r['partner']}: log {r['log_size_before']} -> {r['log_size']}"
                f"{' (cosigned)' if r['cosigned'] else ''}; {r['publications']} publication entries verified; "
                f"{r['received']} objects received, {r['unverified']} not yet provable, {r['retracted']} retracted"
            )
            if r.get("host_checks"):
                out.append("  sorties over this territory, recomputed here: "
                           + ", ".join(f"{n} {s}" for s, n in r["host_checks"].items()))  # fmt: skip
            out += [f"  note: {n}" for n in r["notes"]]
        return "\n".join(out)

    emit(as_json, results, human)


@click.group("share")
def share() -> None:
    """Publish products to partner nodes (TAXII), retract them, follow acknowledgements."""


@share.command("publish")
@click.option("--for", "party", default=None, help="Only this partner (default: every party known).")
@click.option("--kind", "kinds", multiple=True, help="Only these product kinds (repeatable).")
@json_option
@click.pass_context
def share_publish(ctx: click.Context, party: str | None, kinds: tuple[str, ...], as_json: bool) -> None:
    """Put what each partner may receive into its TAXII collections and log each publication."""
    from atalaya.cli.context import show_progress
    from atalaya.share.federation.publish import publish_products
    from atalaya.share.stix import MAPPED_KINDS

    ws = workspace_from(ctx)
    bad = [k for k in kinds if k not in MAPPED_KINDS]
    if bad:
        raise ValidationError(f"no STIX mapping for {', '.join(bad)}", hint="kinds: " + ", ".join(MAPPED_KINDS))
    say = (lambda m: click.echo(m, err=True)) if show_progress(ctx) else None
    res = publish_products(ws, KnowledgeStore.open(ws.db_url), parties=[party] if party else None,
                           kinds=kinds or MAPPED_KINDS, progress=say)  # fmt: skip

    def human(d: dict[str, Any]) -> str:
        lines = [
            f"{p}: " + ", ".join(f"{k} {n} new ({d['withheld'][p][k]} withheld)" for k, n in per.items())
            for p, per in d["added"].items()
        ]
        return "\n".join(lines) + f"\n{len(d['log_indices'])} publication entries logged"

    emit(as_json, res.to_dict(), human)


@share.command("retract")
@click.argument("stix_id")
@click.option("--reason", required=True, help="Why it is retracted (logged, sent to the recipients).")
@json_option
@click.pass_context
def share_retract(ctx: click.Context, stix_id: str, reason: str, as_json: bool) -> None:
    """Retract a shared object from every partner that received it; their next sync applies it."""
    import getpass

    from atalaya.share.federation.receipts import retract_object

    ws = workspace_from(ctx)
    res = retract_object(ws, KnowledgeStore.open(ws.db_url), stix_id, reason=reason, user=getpass.getuser())
    emit(as_json, res, lambda d: f"retracted {d['object']} for {', '.join(d['recipients'])} (log {d['log_index']})")


@share.command("retractions")
@json_option
@click.pass_context
def share_retractions(ctx: click.Context, as_json: bool) -> None:
    """Each retraction: who acknowledged it (receipt in the log) and who has not."""
    from atalaya.share.federation.receipts import retraction_status

    rows = retraction_status(workspace_from(ctx))
    emit(as_json, rows, lambda rs: "\n".join(
        f"{r['object']}: acknowledged by {', '.join(r['acknowledged']) or 'nobody'}; "
        f"pending {', '.join(r['pending']) or 'none'}" for r in rs) or "no retractions")  # fmt: skip


@partners.command("checks")
@click.argument("party", required=False)
@json_option
@click.pass_context
def partners_checks(ctx: click.Context, party: str | None, as_json: bool) -> None:
    """This node's own recomputation of partners' sorties over its territory, and what it disputes."""
    from atalaya.share.federation.hostcheck import stored_checks

    ws = workspace_from(ctx)
    rows = stored_checks(KnowledgeStore.open(ws.db_url), party)
    for r in rows:
        r["checked_at"] = r["checked_at"].isoformat() if r.get("checked_at") else None

    def human(rs: list[dict[str, Any]]) -> str:
        lines = []
        for r in rs:
            lines.append(f"{r['origin']} {r['sortie_id']}: {r['status']}")
            lines += [
                f"  {d.get('level', '')} {d.get('territory', '')} {d['figure']}: logged {d['claimed']}, "
                f"recomputed {d['recomputed']}"
                for d in r["differences"]
            ]
        return "\n".join(lines) or "no partner sorties checked yet (atalaya sync)"

    emit(as_json, rows, human)
