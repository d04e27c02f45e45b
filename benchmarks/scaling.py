"""Scaling laws on this machine: GPT-2-family models pre-trained from scratch on DialogSum's dialogues.

A byte-level BPE tokenizer of 4,096 tokens is trained on the training dialogues first (``llmcycle tokenizer
train``; the DialogSum speaker tags kept whole), so the embeddings do not dwarf the small models. Then
``llmcycle.pretrain.scaling`` runs the sweep: 4 sizes (0.9M to 8.7M parameters, tied embeddings counted
once) x 3 compute budgets, each on D = C / (6 N) tokens with a cosine schedule matched to D; the loss is the
held-out loss on the first 64 blocks of 128 tokens of the validation dialogues. The fit of ``L(N, D) = E + A /
N^alpha + B / D^beta`` (Huber on log loss, bootstrap spreads) is made on the 12 sweep runs only, and predicts
the loss of a larger model (15.8M) trained afterwards. Every run reports tokens/s and MFU: 6 N D / time over
this machine's dense fp32 matmul rate, measured by the run itself (``matmul_peak_flops``).

    python benchmarks/scaling.py

writes ``benchmarks/results/scaling.json`` (runs live under ``runs/bench-scaling``; a killed sweep started
again resumes: finished runs are read back, an interrupted one continues from its checkpoint).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import _common  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "dialogsum"
SPEAKERS = [f"#Person{i}#" for i in range(1, 10)]
SWEEP = {
    "family": "gpt2", "context": 128, "batch_size": 8, "learning_rate": 2e-3, "warmup_ratio": 0.05,
    "eval_blocks": 64, "bootstrap": 200, "seed": 0,
    "sizes": [{"layers": 2, "width": 128, "heads": 2}, {"layers": 3, "width": 192, "heads": 3},
              {"layers": 4, "width": 256, "heads": 4}, {"layers": 6, "width": 320, "heads": 5}],
    "budgets": [3e12, 9e12, 2.7e13],
    "heldout": {"layers": 8, "width": 384, "heads": 6},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default=str(REPO / "runs" / "bench-scaling"))
    parser.add_argument("--vocab", type=int, default=4096)
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"DialogSum not found at {DATA}; this benchmark needs the real data set")
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from llmcycle.data import load_data
    from llmcycle.pretrain.scaling import ScalingConfig, run_sweep
    from llmcycle.pretrain.tokenizer import TokenizerTrainConfig, train_tokenizer

    start = time.perf_counter()
    data = load_data(str(DATA))
    texts = [r["input"] for r in data["train"]]
    held = [r["input"] for r in data["validation"]]
    runs = Path(args.runs)
    tok_dir = runs / f"tokenizer-bpe-{args.vocab}"
    if not (tok_dir / "tokenizer.json").is_file():
        train_tokenizer(texts, TokenizerTrainConfig(algorithm="bpe", vocab_size=args.vocab, extra_tokens=SPEAKERS,
                                                    template="none", compare=None, heldout_fraction=0),
                        tok_dir, heldout=held, overwrite=True)
    cfg = ScalingConfig.from_dict(SWEEP | {"tokenizer": str(tok_dir)})
    result = run_sweep(cfg, runs / "sweep", texts=texts, heldout=held)
    largest = max(result["runs"], key=lambda r: r["params"])
    out = {
        "corpus": f"DialogSum train dialogues ({len(texts):,}; {sum(len(t.split()) for t in texts):,} words), "
                  "held-out loss on the validation dialogues; BPE tokenizer of "
                  f"{args.vocab:,} tokens trained on the train dialogues",
        "runs": [{k: r[k] for k in ("name", "params", "tokens", "flops", "loss", "tokens_per_s", "mfu", "seconds",
                                    "steps", "layers", "width", "budget", "peak_flops")} for r in result["runs"]],
        "fit": result["fit"], "fit_std": result["fit_std"],
        "heldout": result.get("heldout"), "optimal_tokens_per_param": result["optimal_tokens_per_param"],
        "optimum": result["optimum"], "isoflop": result["isoflop"],
        "largest_sweep_model": {"params": largest["params"], "mfu": largest["mfu"],
                                "tokens_per_s": largest["tokens_per_s"], "peak_flops": largest["peak_flops"]},
        "sweep": SWEEP, "seconds": round(time.perf_counter() - start, 1),
        "machine": _common.machine(), "versions": _common.versions(), "command": _common.command(),
    }
    _common.write_json("scaling", out)
    h = out["heldout"] or {}
    print(f"fit {out['fit']}; held-out predicted {h.get('predicted_loss', 0):.3f} measured "
          f"{h.get('measured_loss', 0):.3f} ({100 * h.get('relative_error', 0):.1f}% off); largest sweep model MFU "
          f"{100 * largest['mfu']:.1f}% of {largest['peak_flops'] / 1e9:.1f} GFLOP/s; {out['seconds']:.0f} s")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
