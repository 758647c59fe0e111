#!/usr/bin/env bash
# Set up .venv and run the demo: generate the scenario, ingest it, analyse, and serve the workspace.
# Options go to `atalaya demo` (see `atalaya demo --help`), e.g. --no-serve or --port 8080.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh ""
exec .venv/bin/atalaya demo --dir demo-workspace "$@"
