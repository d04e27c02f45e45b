# Sourced by scripts/setup.sh and scripts/lowest.sh: which PyTorch llmcycle's environments get, and how.
#
#   LLMCYCLE_TORCH_INDEX  where PyTorch comes from. Default: the CPU-only wheel index, so a CPU machine never
#                         downloads a multi-GB CUDA build. GPU users set it to a CUDA index, e.g.
#                         https://download.pytorch.org/whl/cu128, or to "pypi".

TORCH_VERSION=2.13.0
TORCH_INDEX=${LLMCYCLE_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}

# install_torch PYTHON: torch==TORCH_VERSION from TORCH_INDEX into the environment of PYTHON.
install_torch() {
  local py=$1
  if [ "$TORCH_INDEX" = "pypi" ]; then
    "$py" -m pip install --quiet "torch==$TORCH_VERSION"
  else
    # An unreachable index (an offline mirror setup) is tried once, not five times per package;
    # pip then takes the CPU wheel from the places its own configuration names (find-links).
    local retries=()
    "$py" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' "$TORCH_INDEX/" \
      >/dev/null 2>&1 || retries=(--retries 0)
    "$py" -m pip install --quiet ${retries[@]+"${retries[@]}"} --index-url "$TORCH_INDEX" "torch==$TORCH_VERSION" \
      2> >(grep -v -e "Retrying" -e "NewConnectionError" -e "is ignored: it is neither" >&2)
  fi
}
