"""What do int8 quantisation, magnitude pruning and distillation cost a DialogSum summariser? (CPU)

The unoptimised model is ``builtin:minilm-seq2seq`` fully fine-tuned on DialogSum (``--base``; by
default what ``python benchmarks/tuning.py --method full`` leaves in
``runs/bench-tuning/full/model``). ``llmcycle.optimize.run_optimize`` builds each variant from it
and measures all of them alike on the first ``--n`` DialogSum test dialogues: greedy, 60 new
tokens, batch 8 (speed-up = the baseline's seconds over the variant's for the whole set, in the
same process, one after the other), size of the saved directory, ROUGE against the three
references (best of three):

- ``int8``: PyTorch dynamic quantisation of the linear layers, embeddings int8 weight-only;
- ``prune``: global magnitude pruning of the linear layers at ``--sparsity`` (default 0.3);
- ``distil``: a student keeping 3 of the 6 decoder layers (0, 2, 5), trained ``--distil-steps``
  steps on DialogSum train with the teacher's soft targets (T = 2, alpha = 0.5).

Writes ``benchmarks/results/optimize.json``; work goes to ``runs/bench-optimize`` and a re-run
reuses finished variants (the distillation resumes from its checkpoint); ``--remeasure`` measures the
baseline and every built variant again in one process (timings compare only within one process).

    python benchmarks/optimize.py
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

DATA = REPO.parent / "shared" / "data" / "dialogsum"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default=str(REPO / "runs" / "bench-tuning" / "full" / "model"),
                        help="the fine-tuned summariser to optimise")
    parser.add_argument("--n", type=int, default=100, help="test dialogues generated for every variant")
    parser.add_argument("--sparsity", type=float, default=0.3)
    parser.add_argument("--distil-steps", type=int, default=400)
    parser.add_argument("--methods", nargs="+", default=["int8", "prune", "distil"])
    parser.add_argument("--runs", default=str(REPO / "runs" / "bench-optimize"))
    parser.add_argument("--remeasure", action="store_true",
                        help="reuse the variants built by an earlier run but measure everything again in this process")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"DialogSum not found at {DATA}; this benchmark needs the real data set")
    if not Path(args.base).is_dir():
        sys.exit(f"--base {args.base} does not exist: run `python benchmarks/tuning.py --method full` first")

    import torch

    from llmcycle.data import load_data
    from llmcycle.models import load_model
    from llmcycle.optimize import OptimizeConfig, run_optimize

    data = load_data(str(DATA))
    cfg = OptimizeConfig.from_dict({
        "methods": args.methods,
        "prune": {"sparsity": args.sparsity, "scope": "global"},
        "distil": {"decoder_layers": 3, "targets": "soft", "temperature": 2.0, "alpha": 0.5,
                   "train": {"method": "full", "max_steps": args.distil_steps, "batch_size": 8,
                             "learning_rate": 2e-4, "warmup_ratio": 0.05, "max_input_tokens": 384,
                             "max_target_tokens": 64, "group_by_length": True, "save_every": 50,
                             "log_every": 10, "seed": 0}},
        "measure": {"n": args.n, "batch_size": 8, "latency_n": 4, "generation": {"max_new_tokens": 60}},
    })
    loaded = load_model(args.base)
    train = {"train": data["train"].select(range(5000)), "validation": data["validation"].select(range(64))}
    result = run_optimize(loaded, data["test"], cfg, args.runs, train_data=train, progress=print,
                          remeasure=args.remeasure)
    out = {"model": args.base, "data": "DialogSum test", "n": args.n, "threads": torch.get_num_threads(),
           "measure": cfg.measure.model_dump(mode="json"), "table": result.table(),
           "baseline": result.baseline.to_dict(), "machine": _common.machine(), "versions": _common.versions(),
           "command": _common.command()}
    for name, m in result.variants.items():
        change = result.changes[name]
        entry = {"speedup": change["speedup"], "size_ratio": change["size_ratio"],
                 "rouge1_drop": change["rouge1_drop"], "rouge1": m.rouge1, "latency_ratio": change["latency_ratio"],
                 "params": m.params, "size_mb": round(m.size_mb, 1), "details": m.details, "examples": m.examples}
        if name == "prune":
            entry["sparsity"] = m.details["sparsity"]
        out[name] = entry
    if "int8" in out:
        i = out["int8"]
        out["targets"] = {"int8_speedup_ge_1.5": i["speedup"] >= 1.5, "int8_size_le_0.5": i["size_ratio"] <= 0.5,
                          "int8_rouge1_drop_le_1pt": i["rouge1_drop"] <= 1.0}
    path = _common.write_json("optimize", out)
    for row in result.table():
        print(row)
    print(f"wrote {path}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
