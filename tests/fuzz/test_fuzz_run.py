"""Time-boxed coverage-guided fuzzing of every reader (atheris), ``ATALAYA_FUZZ_SECONDS`` each (default 4).

Runs wherever atheris is installed (the ``test`` extra); skipped without it, except in CI where it must run.
New inputs land in a temporary folder, not in the repository; a crash fails the test with the reader's traceback
and the input that caused it (copy it to ``tests/fuzz/crashers/TARGET/`` with the fix).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from reader_harness import CORPUS, CRASHERS, TARGETS

HERE = Path(__file__).resolve().parent
SECONDS = int(os.environ.get("ATALAYA_FUZZ_SECONDS", "4"))

if importlib.util.find_spec("atheris") is None and not os.environ.get("CI"):
    pytest.skip("atheris is not installed (pip install -e '.[test]')", allow_module_level=True)


@pytest.mark.fuzz
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz_reader(target: str, tmp_path: Path) -> None:
    work = tmp_path / "corpus"
    work.mkdir()
    for root in (CORPUS / target, CRASHERS / target):
        if root.is_dir():
            for p in root.iterdir():
                shutil.copy(p, work / p.name)
    proc = subprocess.run(
        [
            sys.executable,
            str(HERE / "fuzz_readers.py"),
            target,
            f"-max_total_time={SECONDS}",
            "-max_len=16384",
            "-rss_limit_mb=4096",
            f"-artifact_prefix={tmp_path}/",
            str(work),
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), *sys.path])),
    )
    tail = (proc.stdout + proc.stderr)[-6000:]
    crashes = [p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "oom-", "timeout-"))]
    assert proc.returncode == 0 and not crashes, f"{target}: fuzzing found a failure {crashes}\n{tail}"
