#!/usr/bin/env bash
# Idempotent set-up used by quickstart.sh and test.sh: creates (or reuses) a virtual environment,
# installs PyTorch 2.13.0 and llmcycle with its dependencies. Safe to run again: it does nothing
# when the environment already matches.
#
# Environment variables:
#   LLMCYCLE_VENV         where the environment lives (default: .venv in the repository)
#   PYTHON                the interpreter that creates it (default: python3; needs >= 3.10)
#   LLMCYCLE_TORCH_INDEX  where PyTorch comes from (scripts/torch.sh): the CPU-only wheels by default, so a
#                         CPU machine never downloads a multi-GB CUDA build; a CUDA index or "pypi" for a GPU.
#   LLMCYCLE_EXTRAS       pip extras to install (default: test)
#   LLMCYCLE_NO_BROWSER   1: do not install a browser for the report screenshot test (which then skips)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=${LLMCYCLE_VENV:-.venv}
PYTHON=${PYTHON:-python3}
source scripts/torch.sh  # TORCH_VERSION, TORCH_INDEX, install_torch
EXTRAS=${LLMCYCLE_EXTRAS:-test}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "llmcycle needs Python >= 3.10; set PYTHON=/path/to/python3.1x" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

# Debian packages some tests use, best effort: when the program is missing and we are root with apt-get, install
# the package (the package lists may be missing on slim images or stale: update and try again when the first try
# fails). A failure never fails the set-up; it is remembered in a marker file in $VENV so later runs stay quick
# (delete it to try again); the tests that need the program then skip. With the program there this costs one
# `command -v`.
#   apt_install PACKAGE MARKER WHAT PROGRAM...   (installed: any PROGRAM on PATH afterwards)
apt_install() {
  local package=$1 marker="$VENV/$2" what=$3 b
  shift 3
  for b in "$@"; do command -v "$b" >/dev/null 2>&1 && return 0; done
  [ -f "$marker" ] && return 0
  local why="not root or no apt-get"
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "[setup] installing Debian's $package for $what"
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -qq -o Acquire::Retries=1 -o Acquire::http::Timeout=20)
    if "${apt[@]}" install -y --no-install-recommends "$package" >/dev/null 2>&1 \
        || { "${apt[@]}" update >/dev/null 2>&1 \
             && "${apt[@]}" install -y --no-install-recommends "$package" >/dev/null 2>&1; }; then
      for b in "$@"; do command -v "$b" >/dev/null 2>&1 && return 0; done
    fi
    why="apt-get install $package failed"
  fi
  echo "$why" > "$marker" 2>/dev/null || true
  echo "[setup] no $package ($why): $what will skip"
}

# A headless browser (about 200 MB of packages on a bare image) for the report screenshot and web UI tests;
# LLMCYCLE_NO_BROWSER=1 skips this, LLMCYCLE_CHROMIUM names another browser.
if [ "${LLMCYCLE_NO_BROWSER:-0}" != 1 ]; then
  apt_install chromium .llmcycle-no-browser "the report screenshot and web UI browser tests" ${LLMCYCLE_CHROMIUM:-} \
    chromium chromium-browser google-chrome google-chrome-stable chrome || true
fi
# bubblewrap (a few hundred kB) for the sandbox that runs model-written Python (llmcycle pal / agent): without it
# those commands refuse to run generated code (unless --unsafe-no-sandbox); LLMCYCLE_NO_BWRAP=1 skips this.
if [ "${LLMCYCLE_NO_BWRAP:-0}" != 1 ]; then
  apt_install bubblewrap .llmcycle-no-bwrap "the code sandbox tests" bwrap || true
fi

# The stamp records what was installed; when it matches, set-up is a no-op.
want="torch=$TORCH_VERSION index=$TORCH_INDEX extras=$EXTRAS pyproject=$(cksum < pyproject.toml)"
stamp="$VENV/.llmcycle-setup"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$PY" -c 'import llmcycle, torch' 2>/dev/null; then
  exit 0
fi

have_torch=$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)
if [ "$have_torch" != "$TORCH_VERSION" ]; then
  echo "[setup] installing torch==$TORCH_VERSION from ${TORCH_INDEX}"
  install_torch "$PY"
fi
echo "[setup] installing llmcycle[$EXTRAS] and its dependencies"
"$PY" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
"$PY" -m pip install --quiet -e ".[$EXTRAS]"
echo "$want" > "$stamp"
echo "[setup] ready: $VENV (activate with: source $VENV/bin/activate)"
