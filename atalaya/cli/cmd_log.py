"""``atalaya log …``: the transparency log (append, checkpoint, prove, verify, witness)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from atalaya.cli.context import emit, json_option, workspace_from
from atalaya.core.errors import LogIntegrityError, ValidationError
from atalaya.core.workspace import Workspace
from atalaya.store.translog import (
    ConsistencyProof,
    NoteVerifier,
    ProofBundle,
    open_checkpoint,
    verify_bundle,
    verify_consistency_notes,
)
from atalaya.store.translog.checkpoint import SIG_COSIGNATURE_V1
from atalaya.store.translog.log import TransparencyLog
from atalaya.store.translog.node import log_signer, open_log, witness_for
from atalaya.store.translog.repair import repair_log
from atalaya.store.translog.storage import DATA_NAME, diagnose


def _read_entries(path: str) -> list[dict[str, Any]]:
    """One JSON object, a JSON array of objects, or JSON Lines."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    stripped = text.strip()
    if not stripped:
        raise ValidationError(f"{path} holds no entries", hint="give one JSON object or JSON Lines")
    try:
        whole = json.loads(stripped)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        return [whole]
    if isinstance(whole, list):
        items: list[Any] = whole
    else:
        items = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValidationError(
                    f"{path}:{n}: not JSON: {e.msg}", hint="each line of a JSON Lines file is one object"
                ) from e
    bad = [i for i, it in enumerate(items) if not isinstance(it, dict)]
    if bad:
        raise ValidationError(f"{path}: item {bad[0]} is not a JSON object", hint="every entry is an object")
    return items


def _vkey(value: str) -> NoteVerifier:
    """A vkey given inline or as a file path."""
    p = Path(value)
    text = p.read_text(encoding="utf-8") if "+" not in value and p.exists() else value
    return NoteVerifier.from_vkey(text)


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _write_or_print(out: Path | None, text: str) -> None:
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")


def _writer(ws: Workspace) -> TransparencyLog:
    """Open the log for writing; say on stderr what recovery cut (a torn append) and where it kept it."""
    lg = open_log(ws)
    for note in lg.recovered:
        click.echo(f"warning: {note}", err=True)
    return lg


@click.group("log")
def log() -> None:
    """Transparency log: append entries, sign checkpoints, prove, verify and witness."""


@log.command("append")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--batch", default=4096, show_default=True, help="Entries per durable group commit.")
@json_option
@click.pass_context
def append_cmd(ctx: click.Context, file: str, batch: int, as_json: bool) -> None:
    """Append entries from FILE (one JSON object, a JSON array, or JSON Lines; - for stdin), then sign a checkpoint."""
    entries = _read_entries(file)
    ws = workspace_from(ctx)
    with _writer(ws) as lg:
        r = lg.append_many(entries, batch=batch)
        lg.checkpoint(log_signer(ws))
        data = {
            "first": r.start,
            "last": r.stop - 1,
            "appended": len(r),
            "size": lg.size,
            "root": lg.root().hex(),
            "checkpoint_size": lg.size,
        }
    emit(
        as_json,
        data,
        lambda d: (
            f"appended {d['appended']} entries (indices {d['first']}–{d['last']}); size {d['size']}, checkpoint signed"
        ),
    )


@log.command("checkpoint")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the signed checkpoint here.")
@json_option
@click.pass_context
def checkpoint_cmd(ctx: click.Context, out: Path | None, as_json: bool) -> None:
    """Sign a checkpoint of the current tree with the workspace key and print it."""
    ws = workspace_from(ctx)
    with _writer(ws) as lg:
        text = lg.checkpoint(log_signer(ws))
        size, root = lg.size, lg.root()
    if out is not None:
        out.write_text(text, encoding="utf-8")
    if as_json:
        emit(True, {"origin": ws.log_origin, "size": size, "root": root.hex(), "checkpoint": text}, str)
    else:
        click.echo(text, nl=False)


@log.command("prove")
@click.option("--index", "index", type=int, required=True, help="Entry index to prove.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the bundle here (else stdout).")
@click.pass_context
def prove_cmd(ctx: click.Context, index: int, out: Path | None) -> None:
    """Write an offline proof bundle for entry N (signs a new checkpoint if none covers it)."""
    ws = workspace_from(ctx)
    with _writer(ws) as lg:
        if not 0 <= index < lg.size:
            raise LogIntegrityError(f"entry {index} is not in the log (size {lg.size})")
        latest = lg.latest_checkpoint()
        if latest is None or open_checkpoint(latest, log_signer(ws).verifier()).size <= index:
            lg.checkpoint(log_signer(ws))
        bundle = lg.prove(index)
    _write_or_print(out, bundle.to_json())
    if out is not None:
        click.echo(f"wrote proof bundle for entry {index} to {out}", err=True)


@log.command("consistency")
@click.option("--old", "old", type=int, required=True, help="Earlier tree size.")
@click.option("--new", "new", type=int, help="Later tree size (default: current).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the proof here (else stdout).")
@click.pass_context
def consistency_cmd(ctx: click.Context, old: int, new: int | None, out: Path | None) -> None:
    """Print a consistency proof (JSON) from size OLD to size NEW."""
    ws = workspace_from(ctx)
    with open_log(ws, readonly=True) as lg:
        proof = lg.consistency(old, new)
    _write_or_print(out, proof.to_json())


@log.command("verify")
@click.option("--bundle", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Proof bundle to check.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="A checkpoint.")
@click.option("--old-checkpoint", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--new-checkpoint", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--proof", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Consistency proof.")
@click.option("--key", "key", required=True, help="The log's verifier key (vkey text or a file holding it).")
@click.option("--witness-key", "witness_keys", multiple=True, help="Require a cosignature by this witness key.")
@json_option
def verify_cmd(
    bundle: Path | None,
    checkpoint: Path | None,
    old_checkpoint: Path | None,
    new_checkpoint: Path | None,
    proof: Path | None,
    key: str,
    witness_keys: tuple[str, ...],
    as_json: bool,
) -> None:
    """Verify offline (no workspace): a bundle, a checkpoint, or two checkpoints with a consistency proof."""
    log_key = _vkey(key)
    witnesses = tuple(_vkey(w) for w in witness_keys)
    for w in witnesses:
        if w.sig_type != SIG_COSIGNATURE_V1:
            raise click.UsageError(f"--witness-key {w.name} is not a cosignature key (export it with --witness)")
    if bundle is None and checkpoint is None and old_checkpoint is None:
        raise click.UsageError("give --bundle, --checkpoint, or --old-checkpoint/--new-checkpoint/--proof")
    results: dict[str, Any] = {"ok": True, "key": log_key.vkey()}
    lines: list[str] = []
    if bundle is not None:
        ve = verify_bundle(ProofBundle.from_json(_text(bundle)), log_key, witnesses=witnesses)
        results["bundle"] = {
            "index": ve.index,
            "kind": ve.entry.get("kind"),
            "entry": ve.entry,
            "origin": ve.checkpoint.origin,
            "size": ve.checkpoint.size,
            "root": ve.checkpoint.root.hex(),
        }
        lines.append(
            f"OK entry {ve.index} ({ve.entry.get('kind')}) is in {ve.checkpoint.origin} "
            f"at size {ve.checkpoint.size}, root {ve.checkpoint.root.hex()[:16]}…"
        )
    if checkpoint is not None:
        cp = open_checkpoint(_text(checkpoint), log_key, witnesses=witnesses)
        results["checkpoint"] = {"origin": cp.origin, "size": cp.size, "root": cp.root.hex()}
        lines.append(f"OK checkpoint of {cp.origin} at size {cp.size} is signed by {log_key.name}")
    if old_checkpoint is not None or new_checkpoint is not None or proof is not None:
        if old_checkpoint is None or new_checkpoint is None or proof is None:
            raise click.UsageError("consistency needs --old-checkpoint, --new-checkpoint and --proof together")
        old, new = verify_consistency_notes(
            _text(old_checkpoint), _text(new_checkpoint), ConsistencyProof.from_json(_text(proof)), log_key
        )
        for w in witnesses:
            open_checkpoint(_text(new_checkpoint), log_key, witnesses=(w,))
        results["consistency"] = {"origin": new.origin, "old_size": old.size, "new_size": new.size}
        lines.append(f"OK {new.origin} at size {new.size} extends size {old.size} (append-only)")
    if witnesses:
        results["witnesses"] = [w.name for w in witnesses]
        lines.append("OK cosigned by " + ", ".join(w.name for w in witnesses))
    emit(as_json, results, lambda _d: "\n".join(lines))


@log.command("witness")
@click.option("--checkpoint", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True)
@click.option("--proof", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Consistency proof.")
@click.option("--key", "key", required=True, help="The partner log's verifier key (vkey text or file).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the cosigned checkpoint here.")
@click.pass_context
def witness_cmd(ctx: click.Context, checkpoint: Path, proof: Path | None, key: str, out: Path | None) -> None:
    """Check a partner's checkpoint is consistent with the last one seen, then cosign it with this workspace's key."""
    ws = workspace_from(ctx)
    w = witness_for(ws)
    log_key = _vkey(key)
    text = _text(checkpoint)
    hashes: tuple[bytes, ...] = ()
    if proof is not None:
        cproof = ConsistencyProof.from_json(_text(proof))
        note_size = open_checkpoint(text, log_key).size
        prev = w.state(log_key.name)
        if cproof.new_size != note_size or (prev is not None and cproof.old_size != prev.size):
            seen = "nothing" if prev is None else f"size {prev.size}"
            raise LogIntegrityError(
                f"proof is from size {cproof.old_size} to {cproof.new_size}; "
                f"the checkpoint has size {note_size} and this witness has seen {seen}",
                hint=f"ask the log for `atalaya log consistency --old {0 if prev is None else prev.size} "
                f"--new {note_size}`",
            )
        hashes = cproof.proof
    cosigned = w.cosign(text, hashes, log_key)
    _write_or_print(out, cosigned)
    if out is not None:
        size = open_checkpoint(cosigned, log_key).size
        click.echo(f"cosigned {log_key.name} at size {size} as {w.signer.name}; wrote {out}", err=True)


@log.command("export-key")
@click.option("--witness", "as_witness", is_flag=True, help="Print this node's witness cosignature key instead.")
@click.pass_context
def export_key_cmd(ctx: click.Context, as_witness: bool) -> None:
    """Print this log's verifier key (vkey) for partners."""
    ws = workspace_from(ctx)
    v = witness_for(ws).verifier() if as_witness else log_signer(ws).verifier()
    click.echo(v.vkey())


@log.command("status")
@click.option("--verify", "full", is_flag=True, help="Recompute every hash from the entries (O(n)).")
@json_option
@click.pass_context
def status_cmd(ctx: click.Context, full: bool, as_json: bool) -> None:
    """Show the log's size, root and newest checkpoint, and any damage (exit status 1 if there is any).

    Reads only. Without --verify the newest entries and hashes are checked, as a
    writer's open does; with --verify all of them.
    """
    ws = workspace_from(ctx)
    if not (ws.log_dir / DATA_NAME).exists():
        data: dict[str, Any] = {"origin": ws.log_origin, "size": 0, "root": None, "checkpoint_size": None, "ok": True}
    else:
        diag = diagnose(ws.log_dir, verifier=log_signer(ws).verifier(), full=full)
        data = {
            "origin": ws.log_origin,
            "size": diag.good,
            "root": None if diag.root is None else diag.root.hex(),
            "checkpoint_size": None if diag.checkpoint is None else diag.checkpoint.size,
            "verified": full,
            "ok": diag.ok,
            "damage": [str(d) for d in diag.damage],
            "torn_tail": diag.torn,
        }

    def human(d: dict[str, Any]) -> str:
        cp = "none" if d["checkpoint_size"] is None else f"size {d['checkpoint_size']}"
        root = d["root"] or "(empty)"
        lines = [f"log {d['origin']}: {d['size']} entries, root {root}", f"latest signed checkpoint: {cp}"]
        if d.get("torn_tail"):
            lines.append(
                f"unsigned tail fails its checks: {d['torn_tail']} (the next writer cuts it and keeps it aside)"
            )
        if d.get("damage"):
            lines.append("DAMAGED (appends are refused until `atalaya log repair`):")
            lines += [f"  - {x}" for x in d["damage"]]
        elif d["ok"]:
            lines.append("all hashes verified" if d.get("verified") else "newest entries and hashes check out")
        return "\n".join(lines)

    emit(as_json, data, human)
    if not data["ok"]:
        ctx.exit(1)


@log.command("repair")
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A copy of the last signed checkpoint, when the stored one is damaged beyond a single flipped bit.",
)
@json_option
@click.pass_context
def repair_cmd(ctx: click.Context, checkpoint_file: Path | None, as_json: bool) -> None:
    """Repair a damaged log: keep its files in translog/damaged-<time>/, rebuild from intact data, verify.

    Entries the signed checkpoint covers are never dropped: if entries.dat itself is
    damaged there, the repair stops and says which entries to restore from a backup
    or a partner's mirror.
    """
    ws = workspace_from(ctx)
    given = None if checkpoint_file is None else _text(checkpoint_file)
    rep = repair_log(ws.log_dir, origin=ws.log_origin, signer=log_signer(ws), checkpoint_text=given)
    data = {
        "repaired": rep.repaired,
        "findings": list(rep.findings),
        "actions": list(rep.actions),
        "kept": None if rep.kept is None else str(rep.kept),
        "size": rep.size,
        "signed_size": rep.signed_size,
        "left_out": None if rep.left_out is None else list(rep.left_out),
    }

    def human(d: dict[str, Any]) -> str:
        if not d["repaired"]:
            return f"log {ws.log_origin}: nothing to repair ({d['size']} entries)"
        lines = ["found:"] + [f"  - {x}" for x in d["findings"]] + ["done:"] + [f"  - {x}" for x in d["actions"]]
        return "\n".join(lines)

    emit(as_json, data, human)
