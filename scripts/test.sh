#!/usr/bin/env bash
# The tests: set up (idempotent), then run the test suite offline. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# the layers of the package (.importlinter): no package imports one above it, imports inside functions included
"${LLMCYCLE_VENV:-.venv}/bin/lint-imports" --no-cache >/dev/null || "${LLMCYCLE_VENV:-.venv}/bin/lint-imports" --no-cache
exec "${LLMCYCLE_VENV:-.venv}/bin/python" -m pytest "$@"
