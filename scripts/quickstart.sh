#!/usr/bin/env bash
# The main job: set up (idempotent), then run the offline quickstart (`llmcycle run`).
# Extra arguments go to `llmcycle run`, e.g. `bash scripts/quickstart.sh --runs-dir /tmp/runs`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec "${LLMCYCLE_VENV:-.venv}/bin/llmcycle" run "$@"
