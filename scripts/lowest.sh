#!/usr/bin/env bash
# The low end of pyproject.toml's dependency bounds, tested: a separate environment with the LOWEST version of
# every direct dependency that pyproject.toml allows (uv's --resolution lowest-direct; their own dependencies
# at the newest versions that fit, as a fresh install would get them), then the fast tests, offline. The high
# end is what scripts/setup.sh installs (pip takes the newest releases the bounds admit).
#
# torch is the one exception: it is always TORCH_VERSION from scripts/torch.sh, installed the way setup.sh
# installs it (the CPU build by default), since any other version would be a multi-GB download; pyproject.toml's
# torch bound starts at that version, so the lowest torch it allows is the one tested.
#
# Reuses the environment when it was built from the same pyproject.toml; otherwise builds it anew (a fresh
# environment: uv would keep any newer version already installed). Exits non-zero when the set-up or a test fails.
#
# Environment variables:
#   LLMCYCLE_LOWEST_VENV  where the environment lives (default: .venv-lowest in the repository)
#   PYTHON, LLMCYCLE_TORCH_INDEX   as for scripts/setup.sh
# Arguments, when given, go to pytest in place of the default selection of tests below.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=${LLMCYCLE_LOWEST_VENV:-.venv-lowest}
PYTHON=${PYTHON:-python3}
source scripts/torch.sh  # TORCH_VERSION, TORCH_INDEX, install_torch: as scripts/setup.sh
UV_VERSION=0.13.9  # pinned: how "lowest" resolves is uv's behaviour, which a new uv may change
# The fast tests: the whole suite less its slow tests (-m "not slow") and less four more whose cases take 10-60 s
# each on 2 cores: the DPO and PPO runs that check that a metric moves (the other tests of tests/alignment make the
# same library calls) and the web UI in a real browser (tests/recipe's report screenshot drives playwright and the
# browser too). About 9 minutes on 2 cores.
SKIP="dpo_lowers_toxicity or ppo_raises_a_programmatic_reward or ptx_holds_the_policy or the_ui_in_a_real_browser"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "llmcycle needs Python >= 3.10; set PYTHON=/path/to/python3.1x" >&2
  exit 1
fi
PY="$VENV/bin/python"
want="uv=$UV_VERSION torch=$TORCH_VERSION index=$TORCH_INDEX python=$("$PYTHON" -V 2>&1) pyproject=$(cksum < pyproject.toml)"
stamp="$VENV/.llmcycle-lowest"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$PY" -c 'import llmcycle, torch' 2>/dev/null; then
  echo "[lowest] reusing $VENV (built from this pyproject.toml)"
else
  echo "[lowest] creating $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  echo "[lowest] installing torch==$TORCH_VERSION from $TORCH_INDEX (as scripts/setup.sh does)"
  install_torch "$PY"
  "$PY" -m pip install --quiet "uv==$UV_VERSION" 2> >(grep -v -e "is ignored: it is neither" >&2)
  # the torch just installed stays: an override holds torch to TORCH_VERSION, and uv keeps an installed version
  # that satisfies. A dry run makes sure first, since a torch from PyPI would be a multi-GB CUDA build.
  echo "torch==$TORCH_VERSION" > "$VENV/torch-override.txt"
  uv=("$VENV/bin/uv" pip install --python "$PY" --resolution lowest-direct --override "$VENV/torch-override.txt"
      -e ".[test]")
  echo "[lowest] resolving the lowest direct dependencies (uv $UV_VERSION, --resolution lowest-direct)"
  plan=$("${uv[@]}" --dry-run 2>&1) || { echo "$plan" >&2; exit 1; }
  if grep -q -E '^ [-+] (torch==|triton==|nvidia-|cuda-)' <<<"$plan"; then
    grep -E '^ [-+] (torch==|triton==|nvidia-|cuda-)' <<<"$plan" >&2
    echo "[lowest] uv would replace the installed torch $TORCH_VERSION; refusing (a multi-GB download)" >&2
    exit 1
  fi
  "${uv[@]}" --quiet
  echo "$want" > "$stamp"
fi

# The version of each direct dependency (pyproject's dependencies and the test extra) beside its bound. One above
# its lower bound means another package needs more than pyproject.toml says: that bound should be raised to match.
"$PY" - <<'EOF'
from importlib.metadata import requires, version

from packaging.requirements import Requirement
from packaging.version import Version

print("[lowest] direct dependencies (installed, pyproject.toml's bound):")
above = []
for line in requires("llmcycle") or []:
    req = Requirement(line)
    if req.marker and not req.marker.evaluate({"extra": "test"}):
        continue
    got = version(req.name)
    lows = [s.version for s in req.specifier if s.operator in (">=", "==", "~=")]
    flag = ""
    if lows and Version(Version(got).public) != Version(lows[0]):
        flag = "   <- above its lower bound"
        above.append(req.name)
    print(f"  {req.name:24} {got:14} {req.specifier}{flag}")
if above:
    print(f"[lowest] {len(above)} installed above pyproject.toml's lower bound (another package's requirement): "
          + ", ".join(above))
EOF

export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
[ $# -gt 0 ] || set -- -m "not slow" -k "not ($SKIP)" --timeout 900 -q tests
echo "[lowest] pytest -p no:cacheprovider $*"
exec "$PY" -m pytest -p no:cacheprovider "$@"
