#!/usr/bin/env bash
# Set up .venv and run the whole test suite (lint, types, tests). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh test
echo "== ruff" >&2
.venv/bin/ruff check atalaya tests bench
.venv/bin/ruff format --check atalaya tests bench
echo "== mypy" >&2
.venv/bin/mypy
echo "== pytest" >&2
workers="${ATALAYA_TEST_WORKERS:-auto}"
exec .venv/bin/python -m pytest -n "$workers" --dist loadgroup "$@"
