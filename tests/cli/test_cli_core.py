"""The CLI: init, ingest, status, quarantine, records — human and --json output, exit codes, clear errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from atalaya.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_init_creates_identity_and_stores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    code, out, _ = run(capsys, "init", str(ws), "--party", "mex", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["party"] == "MEX"
    assert info["schema_version"] >= 1
    key = ws / "keys" / "signing.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in key.read_bytes()
    assert (ws / "atalaya.toml").read_text().count('code = "MEX"') == 1
    # refusing to overwrite an existing identity
    code, _, err = run(capsys, "init", str(ws))
    assert code == 2
    assert "already a workspace" in err


def test_missing_workspace_says_how_to_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "-w", str(tmp_path / "nope"), "status")
    assert code == 2
    assert "atalaya init" in err


def test_ingest_status_quarantine_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    run(capsys, "init", str(ws))
    f = tmp_path / "det.csv"
    f.write_text(
        "time,lon,lat,sensor,kind\n"
        "2026-03-02T01:00:00Z,-107.5,25.1,IR,thermal\n"
        "2026-03-02T01:05:00Z,-107.5,95.0,IR,thermal\n"
        "2026-03-02T01:10:00Z,-107.4,25.2,XRAY,thermal\n"
    )
    code, out, _ = run(capsys, "-w", str(ws), "ingest", str(f), "--json")
    assert code == 0
    s = json.loads(out)
    assert s["totals"]["accepted"] == 1
    assert s["totals"]["quarantined"] == 2
    assert sum(s["quarantine_reasons"].values()) == 2
    code, out, _ = run(capsys, "-w", str(ws), "status", "--json")
    st = json.loads(out)
    assert st["observations"] == 1
    assert st["by_source"] == {"csv": 1}
    assert st["by_day"] == {"2026-03-02": 1}
    assert st["by_kind"] == {"thermal": 1}
    code, out, _ = run(capsys, "-w", str(ws), "quarantine", "--json", "--limit", "1")
    q = json.loads(out)
    assert q["total"] == 2
    assert len(q["records"]) == 1
    assert q["records"][0]["src_rec"] == 3
    code, out, _ = run(capsys, "-w", str(ws), "quarantine", "--reason", "unknown sensor")
    assert "det.csv:4" in out
    # human summary of a re-run says the file was already ingested
    code, out, _ = run(capsys, "-w", str(ws), "ingest", str(f))
    assert "already ingested 1" in out


def test_failed_file_gives_exit_status_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    run(capsys, "init", str(ws))
    f = tmp_path / "mystery.bin"
    f.write_bytes(b"\x00\x01 not a known format")
    code, out, _ = run(capsys, "-w", str(ws), "ingest", str(f))
    assert code == 1
    assert "FAILED" in out
    assert "--format" in out


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name in ("init", "ingest", "status", "scenario", "analyze", "evaluate", "sovereignty", "log", "serve"):
        assert name in out
