"""Log recovery never destroys evidence: damage is reported, appends are refused, `log repair` keeps the files."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from atalaya.cli.main import cli
from atalaya.core.errors import LogDamagedError, LogIntegrityError
from atalaya.core.workspace import Workspace, init_workspace
from atalaya.store.translog import NoteSigner, TransparencyLog
from atalaya.store.translog.node import log_signer, open_log
from atalaya.store.translog.repair import repair_log
from atalaya.store.translog.storage import (
    CHECKPOINT_NAME,
    DATA_NAME,
    INDEX_NAME,
    LogStorage,
    diagnose,
    level_name,
)

ORIGIN = "atalaya.usa/log"
FILES = (DATA_NAME, INDEX_NAME, level_name(0), level_name(1), CHECKPOINT_NAME)


def signer() -> NoteSigner:
    return NoteSigner(name=ORIGIN, key=Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def entries(n: int, start: int = 0) -> list[dict[str, object]]:
    return [{"kind": "overflight", "sortie": f"S{i}", "minutes": i} for i in range(start, start + n)]


def build(path: Path, total: int = 82, signed: int | None = None) -> None:
    """A log of ``total`` entries whose last checkpoint covers ``signed`` (default: all)."""
    signed = total if signed is None else signed
    with TransparencyLog.open(path, origin=ORIGIN) as log:
        log.append_many(entries(signed))
        log.checkpoint(signer())
        log.append_many(entries(total - signed, signed))


def offsets(path: Path) -> list[int]:
    raw = (path / INDEX_NAME).read_bytes()
    return [int.from_bytes(raw[i : i + 8], "big") for i in range(0, len(raw), 8)]


def flip(path: Path, at: int, bit: int = 0) -> None:
    raw = bytearray(path.read_bytes())
    raw[at] ^= 1 << bit
    path.write_bytes(bytes(raw))


def snapshot(path: Path) -> dict[str, bytes]:
    return {n: (path / n).read_bytes() for n in FILES if (path / n).exists()}


def open_writer(path: Path) -> TransparencyLog:
    return TransparencyLog.open(path, origin=ORIGIN, verifier=signer().verifier())


# One flipped bit in each kind of file, below and above the checkpoint.
def _index_slot(i: int) -> Callable[[Path], None]:
    return lambda p: flip(p / INDEX_NAME, i * 8 + 6)


def _entry_byte(i: int) -> Callable[[Path], None]:
    return lambda p: flip(p / DATA_NAME, offsets(p)[i] + 10)


def _length_prefix(i: int) -> Callable[[Path], None]:
    return lambda p: flip(p / DATA_NAME, offsets(p)[i] + 3, 2)


def _leaf_hash(i: int) -> Callable[[Path], None]:
    return lambda p: flip(p / level_name(0), i * 32 + 5)


CASES = {
    "index slot, signed": (_index_slot(75), "entries.idx byte 600, entry 75 (covered"),
    "index slot, unsigned": (_index_slot(75), "entries.idx byte 600, entry 75 (after"),
    "entry bytes, signed": (_entry_byte(40), "stored hash of entry 40 does not match"),
    "entry bytes, unsigned": (_entry_byte(75), "stored hash of entry 75 does not match"),
    "length prefix, signed": (_length_prefix(40), "entry 4"),
    "length prefix, unsigned": (_length_prefix(75), "entry 7"),
    "leaf hash, signed": (_leaf_hash(60), "stored hash of entry 60"),
    "leaf hash, unsigned": (_leaf_hash(78), "stored hash of entry 78"),
    "checkpoint": (lambda p: flip(p / CHECKPOINT_NAME, 20), "checkpoint byte 0"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_one_flipped_bit_is_reported_and_nothing_is_removed(tmp_path: Path, case: str) -> None:
    damage, expected = CASES[case]
    build(tmp_path, 82, signed=70 if "unsigned" in case else 82)
    damage(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(LogDamagedError) as ei:
        open_writer(tmp_path)
    message = str(ei.value)
    assert expected in message
    assert "atalaya log repair" in message
    assert ei.value.findings
    # Not one byte of any file changed: every entry, signed or not, is still there.
    assert snapshot(tmp_path) == before
    assert len(offsets(tmp_path)) == 82
    # Read-only inspection still works and reports the same damage.
    diag = diagnose(tmp_path, verifier=signer().verifier())
    assert not diag.ok
    assert any(expected in str(d) for d in diag.damage)
    assert snapshot(tmp_path) == before


def test_the_reported_finding_flipped_index_slot_under_the_checkpoint(tmp_path: Path) -> None:
    """The finding: one flipped bit in an index slot cut a signed log of 82 entries to 75."""
    build(tmp_path, 82)
    flip(tmp_path / INDEX_NAME, 75 * 8 + 7)
    with pytest.raises(LogDamagedError, match="holds 75 entries but its last signed checkpoint covers 82"):
        TransparencyLog.open(tmp_path, origin=ORIGIN)
    assert (tmp_path / INDEX_NAME).stat().st_size == 82 * 8
    with LogStorage.open(tmp_path, readonly=True) as r:
        assert r.size == 82
        assert r.leaf(3) == b'{"kind":"overflight","minutes":3,"sortie":"S3"}'


def test_truncated_mid_entry_under_the_checkpoint_is_refused(tmp_path: Path) -> None:
    build(tmp_path, 82)
    os.truncate(tmp_path / DATA_NAME, offsets(tmp_path)[50] + 9)
    before = snapshot(tmp_path)
    with pytest.raises(LogDamagedError, match=r"record 50 has \d+ bytes by its length prefix and runs past the end"):
        open_writer(tmp_path)
    assert snapshot(tmp_path) == before


def test_torn_append_after_the_checkpoint_is_cut_reported_and_kept(tmp_path: Path) -> None:
    """An append that died mid-write (record half written, no index slot, no hashes) is the only thing cut."""
    build(tmp_path, 82)
    torn = (60).to_bytes(4, "big") + b'{"kind":"overflight","min'
    with open(tmp_path / DATA_NAME, "ab") as fh:
        fh.write(torn)
    with open(tmp_path / INDEX_NAME, "ab") as fh:
        fh.write(b"\x00\x00\x00")
    # `log status` sees it before any writer does: reported, not "all verified".
    diag = diagnose(tmp_path, verifier=signer().verifier())
    assert diag.torn is not None and "3 stray byte(s)" in diag.torn
    assert not diag.ok
    with open_writer(tmp_path) as log:
        assert log.size == 82
        assert len(log.recovered) == 1
        assert "torn append after entry 81" in log.recovered[0]
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("torn-")]
    assert len(kept) == 1
    assert (kept[0] / f"{DATA_NAME}.tail").read_bytes() == torn
    assert (kept[0] / f"{INDEX_NAME}.tail").read_bytes() == b"\x00\x00\x00"
    assert json.loads((kept[0] / "report.json").read_text())["kept_entries"] == 82
    assert diagnose(tmp_path, verifier=signer().verifier()).ok


def test_committed_unsigned_entries_are_not_taken_for_a_torn_append(tmp_path: Path) -> None:
    """Entries after the checkpoint with durable hashes are committed: a break among them is damage, not a tail."""
    build(tmp_path, 82, signed=70)
    raw = (tmp_path / INDEX_NAME).read_bytes()
    (tmp_path / INDEX_NAME).write_bytes(raw[: 75 * 8] + bytes(8) + raw[76 * 8 :])
    with pytest.raises(LogDamagedError, match=r"entries 75…81 were committed"):
        open_writer(tmp_path)
    assert len(offsets(tmp_path)) == 82


# --------------------------------------------------------------------------- CLI
def _ws(tmp_path: Path) -> Workspace:
    return init_workspace(tmp_path / "usa", party="USA")


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_append_signs_a_checkpoint(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    (tmp_path / "e.jsonl").write_text("\n".join(json.dumps(e) for e in entries(5)) + "\n")
    res = _run("-w", str(ws.root), "log", "append", str(tmp_path / "e.jsonl"), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["checkpoint_size"] == 5
    status = json.loads(_run("-w", str(ws.root), "log", "status", "--json").output)
    assert status["checkpoint_size"] == status["size"] == 5


def _ws_log(tmp_path: Path, total: int, signed: int) -> Workspace:
    ws = _ws(tmp_path)
    with open_log(ws) as log:
        log.append_many(entries(signed))
        log.checkpoint(log_signer(ws))
        log.append_many(entries(total - signed, signed))
    return ws


def test_status_verify_reports_damaged_unsigned_entries_and_fails(tmp_path: Path) -> None:
    """The finding: damaged entries after the checkpoint vanished and `status --verify` said all hashes verify."""
    ws = _ws_log(tmp_path, 82, 70)
    _index_slot(75)(ws.log_dir)
    # A writer (here `log checkpoint`) used to cut the log to 75 entries and sign that.
    assert _run("-w", str(ws.root), "log", "checkpoint").exit_code != 0
    assert len(offsets(ws.log_dir)) == 82
    res = _run("-w", str(ws.root), "log", "status", "--verify")
    assert res.exit_code == 1, res.output
    assert "DAMAGED" in res.output
    assert "entry 75" in res.output
    assert "all hashes verified" not in res.output
    data = json.loads(_run("-w", str(ws.root), "log", "status", "--verify", "--json").output)
    assert data["ok"] is False and data["damage"] and data["checkpoint_size"] == 70


def test_status_reports_an_unsigned_tail_that_fails_its_hashes(tmp_path: Path) -> None:
    ws = _ws_log(tmp_path, 82, 70)
    _length_prefix(75)(ws.log_dir)
    res = _run("-w", str(ws.root), "log", "status")
    assert res.exit_code == 1, res.output
    assert "stored hash of entry 75 does not match" in res.output


def test_appends_are_refused_with_the_way_to_repair(tmp_path: Path) -> None:
    ws = _ws_log(tmp_path, 82, 82)
    _index_slot(75)(ws.log_dir)
    (tmp_path / "e.json").write_text(json.dumps({"kind": "retraction", "of": 3}))
    for args in (("log", "append", str(tmp_path / "e.json")), ("log", "checkpoint")):
        res = _run("-w", str(ws.root), *args)
        assert res.exit_code != 0
        assert isinstance(res.exception, LogDamagedError)
        assert "atalaya log repair" in str(res.exception)
    assert len(offsets(ws.log_dir)) == 82


def test_repair_rebuilds_a_damaged_index_and_keeps_the_damaged_files(tmp_path: Path) -> None:
    ws = _ws_log(tmp_path, 82, 82)
    with open_log(ws, readonly=True) as log:
        root = log.root()
    _index_slot(75)(ws.log_dir)
    _index_slot(20)(ws.log_dir)
    damaged_idx = (ws.log_dir / INDEX_NAME).read_bytes()
    res = _run("-w", str(ws.root), "log", "repair", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["repaired"] is True and out["size"] == 82 and out["signed_size"] == 82
    kept = Path(out["kept"])
    assert kept.parent == ws.log_dir and kept.name.startswith("damaged-")
    assert (kept / INDEX_NAME).read_bytes() == damaged_idx
    status = _run("-w", str(ws.root), "log", "status", "--verify", "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["ok"] is True
    with open_log(ws) as log:
        assert log.size == 82 and log.root() == root
        log.append({"kind": "retraction", "of": 1})
    # A healthy log is left alone.
    again = json.loads(_run("-w", str(ws.root), "log", "repair", "--json").output)
    assert again["repaired"] is False


def test_repair_restores_a_checkpoint_with_a_flipped_bit(tmp_path: Path) -> None:
    ws = _ws_log(tmp_path, 30, 30)
    good = (ws.log_dir / CHECKPOINT_NAME).read_bytes()
    flip(ws.log_dir / CHECKPOINT_NAME, len(good) - 10, 3)
    rep = repair_log(ws.log_dir, origin=ws.log_origin, signer=log_signer(ws))
    assert (ws.log_dir / CHECKPOINT_NAME).read_bytes() == good
    assert rep.kept is not None and (rep.kept / CHECKPOINT_NAME).read_bytes() != good
    assert any("flipped" in a for a in rep.actions)


def test_repair_leaves_out_a_damaged_unsigned_entry_but_keeps_it(tmp_path: Path) -> None:
    ws = _ws_log(tmp_path, 82, 70)
    _entry_byte(75)(ws.log_dir)
    damaged = (ws.log_dir / DATA_NAME).read_bytes()
    rep = repair_log(ws.log_dir, origin=ws.log_origin, signer=log_signer(ws))
    assert rep.size == 75 and rep.left_out == (75, 82)
    assert rep.kept is not None and (rep.kept / DATA_NAME).read_bytes() == damaged
    assert diagnose(ws.log_dir, verifier=log_signer(ws).verifier()).ok


def test_repair_never_drops_signed_entries(tmp_path: Path) -> None:
    """Damaged records under the checkpoint cannot be rebuilt here: the repair stops and changes nothing."""
    ws = _ws_log(tmp_path, 82, 82)
    _entry_byte(40)(ws.log_dir)
    before = snapshot(ws.log_dir)
    with pytest.raises(LogDamagedError, match=r"entries 40 differ from their stored leaf hashes") as ei:
        repair_log(ws.log_dir, origin=ws.log_origin, signer=log_signer(ws))
    assert "restore entries.dat from a backup" in str(ei.value)
    assert snapshot(ws.log_dir) == before
    with pytest.raises(LogIntegrityError):
        open_log(ws)
