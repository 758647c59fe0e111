"""Checkpoints, bundles, witnesses — and every tampering must fail verification with a clear error."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from atalaya.cli.main import cli
from atalaya.core.errors import LogIntegrityError
from atalaya.core.workspace import init_workspace
from atalaya.store.translog import (
    Checkpoint,
    ConsistencyProof,
    NoteSigner,
    NoteVerifier,
    ProofBundle,
    TransparencyLog,
    Witness,
    open_checkpoint,
    verify_bundle,
    verify_consistency_notes,
)
from atalaya.store.translog.checkpoint import (
    SIG_COSIGNATURE_V1,
    SignedNote,
    cosign,
    key_id,
    raw_public_key,
    sign_note,
    verify_cosignature,
)
from atalaya.store.translog.storage import DATA_NAME, INDEX_NAME

ORIGIN = "atalaya.usa/log"
SEED = bytes(range(32))


def signer(name: str = ORIGIN, seed: bytes = SEED) -> NoteSigner:
    return NoteSigner(name=name, key=Ed25519PrivateKey.from_private_bytes(seed))


def entries(n: int, tag: str = "a") -> list[dict[str, object]]:
    return [{"kind": "overflight", "sortie": f"{tag}{i}", "minutes": i} for i in range(n)]


def make_log(path: Path, n: int, tag: str = "a") -> TransparencyLog:
    log = TransparencyLog.open(path, origin=ORIGIN)
    log.append_many(entries(n, tag))
    return log


# --------------------------------------------------------------------------- formats
def test_checkpoint_note_format_and_key_id() -> None:
    s = signer()
    cp = Checkpoint(origin=ORIGIN, size=8, root=hashlib.sha256(b"r").digest(), extensions=("ext one",))
    text = sign_note(cp.body(), s).text()
    lines = text.split("\n")
    assert lines[:4] == [ORIGIN, "8", base64.b64encode(cp.root).decode(), "ext one"]
    assert lines[4] == ""
    assert lines[5].startswith("\u2014 atalaya.usa/log ")
    assert text.endswith("\n")
    sig = base64.b64decode(lines[5].split(" ")[2])
    pub = raw_public_key(s.key.public_key())
    assert sig[:4] == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + pub).digest()[:4]
    assert len(sig) == 4 + 64
    assert open_checkpoint(text, s.verifier()) == cp


def test_vkey_round_trip_and_tampered_vkey() -> None:
    v = signer().verifier()
    text = v.vkey()
    name, hex_id, b64 = text.split("+", 2)
    assert name == ORIGIN
    assert bytes.fromhex(hex_id) == v.key_id
    assert base64.b64decode(b64)[0] == 0x01
    assert NoteVerifier.from_vkey(text) == v
    with pytest.raises(LogIntegrityError, match="does not match the key"):
        NoteVerifier.from_vkey(f"other.example/log+{hex_id}+{b64}")
    with pytest.raises(LogIntegrityError, match="not a verifier key"):
        NoteVerifier.from_vkey("garbage")


def test_cosignature_format_follows_c2sp() -> None:
    w = signer("atalaya.mex/witness", bytes(range(1, 33)))
    note = sign_note(Checkpoint(origin=ORIGIN, size=1, root=bytes(32)).body(), signer())
    co = cosign(note, w, timestamp=1_700_000_000)
    raw = co.signatures[-1].key_id + co.signatures[-1].signature
    pub = raw_public_key(w.key.public_key())
    assert raw[:4] == key_id("atalaya.mex/witness", 0x04, pub)
    assert int.from_bytes(raw[4:12], "big") == 1_700_000_000
    msg = b"cosignature/v1\ntime 1700000000\n" + note.body.encode()
    w.key.public_key().verify(raw[12:], msg)  # raises if not
    assert verify_cosignature(SignedNote.parse(co.text()), w.verifier(SIG_COSIGNATURE_V1)) == 1_700_000_000


# --------------------------------------------------------------------------- bundles
def test_bundle_verifies_offline_and_survives_json(tmp_path: Path) -> None:
    with make_log(tmp_path, 13) as log:
        log.checkpoint(signer())
        for i in (0, 6, 12):
            b = ProofBundle.from_json(log.prove(i).to_json())
            got = verify_bundle(b, NoteVerifier.from_vkey(signer().verifier().vkey()))
            assert got.entry == {"kind": "overflight", "sortie": f"a{i}", "minutes": i}
            assert got.checkpoint.size == 13


def test_edited_entry_in_bundle_fails(tmp_path: Path) -> None:
    with make_log(tmp_path, 9) as log:
        log.checkpoint(signer())
        b = log.prove(4)
    forged = dataclasses.replace(b, entry=b.entry.replace('"minutes":4', '"minutes":40'))
    with pytest.raises(LogIntegrityError, match=r"entry 4 is not in log atalaya.usa/log at size 9: root mismatch"):
        verify_bundle(forged, signer().verifier())
    moved = dataclasses.replace(b, index=5)
    with pytest.raises(LogIntegrityError, match="root mismatch at size 9"):
        verify_bundle(moved, signer().verifier())


def test_bad_signature_fails(tmp_path: Path) -> None:
    with make_log(tmp_path, 4) as log:
        log.checkpoint(signer())
        b = log.prove(1)
    # The root line changed under an intact signature line.
    lines = b.checkpoint.split("\n")
    lines[1] = "5"
    bad = dataclasses.replace(b, checkpoint="\n".join(lines))
    with pytest.raises(LogIntegrityError, match=r"bad signature by atalaya\.usa/log"):
        verify_bundle(bad, signer().verifier())
    # A different key under the same name.
    other = signer(seed=bytes(32))
    with pytest.raises(LogIntegrityError, match=r"no signature by key atalaya\.usa/log"):
        verify_bundle(b, other.verifier())


# --------------------------------------------------------------------------- log files
def _records(path: Path) -> list[bytes]:
    raw = (path / DATA_NAME).read_bytes()
    out, pos = [], 0
    while pos < len(raw):
        n = int.from_bytes(raw[pos : pos + 4], "big")
        out.append(raw[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out


def _rewrite(path: Path, records: list[bytes]) -> None:
    """Rewrite the entries and index files consistently (hash files keep the old values)."""
    data, idx, pos = b"", b"", 0
    for r in records:
        idx += pos.to_bytes(8, "big")
        data += len(r).to_bytes(4, "big") + r
        pos += 4 + len(r)
    (path / DATA_NAME).write_bytes(data)
    (path / INDEX_NAME).write_bytes(idx)


def test_truncated_entries_file_is_caught_by_the_checkpoint(tmp_path: Path) -> None:
    with make_log(tmp_path, 10) as log:
        log.checkpoint(signer())
    recs = _records(tmp_path)
    # Cut exactly at a record boundary: it looks like a clean shorter log.
    cut = sum(4 + len(r) for r in recs[:6])
    os.truncate(tmp_path / DATA_NAME, cut)
    with pytest.raises(LogIntegrityError, match="holds 6 entries but its last signed checkpoint covers 10"):
        TransparencyLog.open(tmp_path, origin=ORIGIN)


def test_deleted_entry_fails(tmp_path: Path) -> None:
    with make_log(tmp_path, 10) as log:
        log.checkpoint(signer())
    recs = _records(tmp_path)
    _rewrite(tmp_path, recs[:3] + recs[4:])
    with pytest.raises(LogIntegrityError, match=r"does not match recomputation|root mismatch|covers 10"):
        TransparencyLog.open(tmp_path, origin=ORIGIN)


def test_reordered_entries_fail(tmp_path: Path) -> None:
    with make_log(tmp_path, 10) as log:
        log.checkpoint(signer())
    recs = _records(tmp_path)
    recs[2], recs[7] = recs[7], recs[2]
    _rewrite(tmp_path, recs)
    with pytest.raises(LogIntegrityError, match="stored hash of entry 2 does not match"):
        TransparencyLog.open(tmp_path, origin=ORIGIN)


def test_rebuilt_hashes_after_edit_are_caught_by_the_checkpoint(tmp_path: Path) -> None:
    """An editor who also recomputes every hash file still cannot match the signed root."""
    with make_log(tmp_path, 10) as log:
        log.checkpoint(signer())
    recs = _records(tmp_path)
    recs[5] = recs[5].replace(b'"minutes":5', b'"minutes":6')
    _rewrite(tmp_path, recs)
    for p in tmp_path.glob("level-*.hash"):
        p.unlink()
    with pytest.raises(LogIntegrityError, match="root mismatch at size 10: checkpoint says"):
        TransparencyLog.open(tmp_path, origin=ORIGIN)


# --------------------------------------------------------------------------- consistency, forks, witness
def test_consistency_between_checkpoints(tmp_path: Path) -> None:
    with make_log(tmp_path, 5) as log:
        c1 = log.checkpoint(signer())
        log.append_many(entries(7, "b"))
        c2 = log.checkpoint(signer())
        proof = ConsistencyProof.from_json(log.consistency(5).to_json())
    old, new = verify_consistency_notes(c1, c2, proof, signer().verifier())
    assert (old.size, new.size) == (5, 12)
    with pytest.raises(LogIntegrityError, match="proof is from size 5 to 12, the checkpoints have sizes 12 and 5"):
        verify_consistency_notes(c2, c1, proof, signer().verifier())


def test_forked_log_is_caught(tmp_path: Path) -> None:
    """Two histories signed with the same key: equal sizes, different roots."""
    with make_log(tmp_path / "a", 6) as a:
        base_a = a.checkpoint(signer())
        a.append_many(entries(2, "x"))
        fork_a = a.checkpoint(signer())
        proof_a = a.consistency(6)
    with make_log(tmp_path / "b", 6) as b:
        b.append_many(entries(2, "y"))
        fork_b = b.checkpoint(signer())
    v = signer().verifier()
    # Same size 8, different roots: no consistency proof can link them.
    with pytest.raises(LogIntegrityError, match="fork at size 8"):
        verify_consistency_notes(fork_a, fork_b, ConsistencyProof(old_size=8, new_size=8, proof=()), v)
    # B's head does not extend the size-6 checkpoint with A's proof.
    with pytest.raises(LogIntegrityError, match="root mismatch at size 8"):
        verify_consistency_notes(base_a, fork_b, proof_a, v)
    # A witness that cosigned A's head refuses B's.
    w = Witness(state_dir=tmp_path / "w", signer=signer("atalaya.mex/witness", bytes(range(1, 33))))
    w.cosign(base_a, (), v)
    w.cosign(fork_a, proof_a.proof, v)
    with pytest.raises(LogIntegrityError, match="fork at size 8"):
        w.cosign(fork_b, (), v)
    assert w.state(ORIGIN) is not None
    assert w.state(ORIGIN).size == 8  # type: ignore[union-attr]  # checked just above


def test_witness_flow_and_refusals(tmp_path: Path) -> None:
    wsig = signer("atalaya.mex/witness", bytes(range(1, 33)))
    w = Witness(state_dir=tmp_path / "w", signer=wsig)
    v = signer().verifier()
    with make_log(tmp_path / "log", 3) as log:
        c1 = log.checkpoint(signer())
        out1 = w.cosign(c1, (), v, timestamp=100)
        open_checkpoint(out1, v, witnesses=(w.verifier(),))
        log.append_many(entries(4, "n"))
        c2 = log.checkpoint(signer())
        p = log.consistency(3)
    with pytest.raises(LogIntegrityError, match="not consistent with size 3"):
        w.cosign(c2, (), v)
    out2 = w.cosign(c2, p.proof, v)
    assert open_checkpoint(out2, v, witnesses=(w.verifier(),)).size == 7
    with pytest.raises(LogIntegrityError, match="rollback"):
        w.cosign(c1, (), v)
    # The witness's cosignature on one checkpoint does not carry over to another.
    moved = out1.split("\n\n")[0] + "\n\n" + out2.split("\n\n")[1]
    with pytest.raises(LogIntegrityError, match="bad signature"):
        open_checkpoint(moved, v, witnesses=(w.verifier(),))
    with pytest.raises(LogIntegrityError, match=r"no signature by key atalaya\.mex/witness"):
        open_checkpoint(c2, v, witnesses=(w.verifier(),))


# --------------------------------------------------------------------------- CLI
def test_cli_round_trip_between_two_nodes(tmp_path: Path) -> None:
    usa = init_workspace(tmp_path / "usa", party="USA")
    init_workspace(tmp_path / "mex", party="MEX")
    (tmp_path / "e.jsonl").write_text("\n".join(json.dumps(e) for e in entries(5)) + "\n")
    r = CliRunner()

    def run(*args: str) -> str:
        res = r.invoke(cli, list(args), catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return res.output

    u, m = ["-w", str(tmp_path / "usa")], ["-w", str(tmp_path / "mex")]
    assert json.loads(run(*u, "log", "append", str(tmp_path / "e.jsonl"), "--json"))["size"] == 5
    vkey = run(*u, "log", "export-key").strip()
    assert vkey.startswith("atalaya.usa/log+")
    cp1 = tmp_path / "cp1"
    run(*u, "log", "checkpoint", "--out", str(cp1))
    run(*u, "log", "prove", "--index", "3", "--out", str(tmp_path / "b.json"))
    out = json.loads(run("log", "verify", "--bundle", str(tmp_path / "b.json"), "--key", vkey, "--json"))
    assert out["bundle"]["index"] == 3
    assert out["bundle"]["entry"]["sortie"] == "a3"
    run(*m, "log", "witness", "--checkpoint", str(cp1), "--key", vkey, "--out", str(tmp_path / "cp1w"))
    run(*u, "log", "append", str(tmp_path / "e.jsonl"))
    cp2 = tmp_path / "cp2"
    cp2.write_text(run(*u, "log", "checkpoint"))
    (tmp_path / "p.json").write_text(run(*u, "log", "consistency", "--old", "5"))
    proof = str(tmp_path / "p.json")
    run("log", "verify", "--old-checkpoint", str(cp1), "--new-checkpoint", str(cp2), "--proof", proof, "--key", vkey)
    cosigned = run(*m, "log", "witness", "--checkpoint", str(cp2), "--proof", str(tmp_path / "p.json"), "--key", vkey)
    (tmp_path / "cp2w").write_text(cosigned)
    wkey = run(*m, "log", "export-key", "--witness").strip()
    run("log", "verify", "--checkpoint", str(tmp_path / "cp2w"), "--key", vkey, "--witness-key", wkey)
    status = json.loads(run(*u, "log", "status", "--json", "--verify"))
    assert status["size"] == 10
    assert status["checkpoint_size"] == 10
    assert usa.log_dir == tmp_path / "usa" / "translog"
    # A tampered bundle fails with a clear message and exit status 2.
    b = json.loads((tmp_path / "b.json").read_text())
    b["entry"] = b["entry"].replace('"minutes":3', '"minutes":4')
    (tmp_path / "bad.json").write_text(json.dumps(b))
    from atalaya.cli.main import main

    with pytest.raises(SystemExit) as ei:
        main(["log", "verify", "--bundle", str(tmp_path / "bad.json"), "--key", vkey])
    assert ei.value.code == 2
