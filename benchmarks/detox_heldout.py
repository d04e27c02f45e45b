"""Re-measure saved detox policies on more held-out dialogues than ``detox.py`` evaluates (offline, on CPU).

``detox.py`` scores each aligned policy on the first ``--n-eval`` (100) validation dialogues. Between
two policies that differ a little, ROUGE-1 over 100 dialogues moves by a point or more by chance,
the size of the issue's bound. This script evaluates the toxic-prone model and the policies that
``detox.py`` saved (``runs/bench-detox/<run>/model``) on another, larger slice of the validation
split (by default dialogues 100-399, disjoint from ``detox.py``'s evaluation and from its monitor's
400-415), with ``detox.py``'s own evaluation (same sampling seed, 2 samples at temperature 0.7,
greedy ROUGE against the clean references).

Writes ``benchmarks/results/detox_heldout.json``. Usage::

    python benchmarks/detox_heldout.py ppo-kl0.5-1.0-seed0 ppo-kl0.5-1.0-seed1 ...
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import _common  # noqa: E402
import detox  # noqa: E402

KEEP = ("toxic_rate", "toxicity_mean", "greedy_toxic_rate", "rouge1", "rouge2", "rougeL", "response_tokens",
        "eval_s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="PPO run folders under --root (their model/ is evaluated)")
    parser.add_argument("--root", default=str(REPO / "runs" / "bench-detox"))
    parser.add_argument("--start", type=int, default=100, help="first validation dialogue")
    parser.add_argument("--n", type=int, default=300, help="validation dialogues evaluated")
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--temperature", type=float, default=0.7)
    args = parser.parse_args()
    if not detox.DATA.is_dir():
        sys.exit(f"DialogSum not found at {detox.DATA}; this benchmark needs the real data set")
    root = Path(args.root)
    missing = [r for r in ["toxic-sft", *args.runs] if not (root / r / "model").is_dir()]
    if missing:
        sys.exit(f"no saved model under {', '.join(str(root / m / 'model') for m in missing)}: run "
                 "benchmarks/detox.py first")

    from llmcycle.data import load_data
    from llmcycle.models import load_model

    held = load_data(str(detox.DATA))["validation"].select(range(args.start, args.start + args.n))
    out = {"command": _common.command(), "validation_rows": [args.start, args.start + args.n],
           "samples_per_dialogue": args.samples, "temperature": args.temperature, "machine": _common.machine(),
           "versions": _common.versions(), "models": {}}
    before = None
    for name in ["toxic-sft", *args.runs]:
        result = detox.evaluate(load_model(str(root / name / "model")), held, args.samples, args.temperature)
        entry = {k: result[k] for k in KEEP}
        if before is None:
            before = entry
        else:
            entry["toxic_rate_drop"] = round(1 - entry["toxic_rate"] / before["toxic_rate"], 4)
            entry["rouge1_drop_points"] = round(100 * (before["rouge1"] - entry["rouge1"]), 2)
        out["models"][name] = entry
        print(name, entry, flush=True)
        _common.write_json("detox_heldout", out)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
