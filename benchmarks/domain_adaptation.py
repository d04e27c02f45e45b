"""Does continued pre-training on dialogues make a better dialogue summariser? (BloombergGPT's lesson, small)

1. ``builtin:minilm-seq2seq``'s encoder (pretrained MiniLM, general web text) is pre-trained further on
   DialogSum's training dialogues with BERT's masked-LM objective (``llmcycle pretrain``, ``init:
   received``). MiniLM ships without its MLM head, so a fresh head is trained alone first
   (``head_steps``, encoder frozen): the 'before' perplexities measure the received encoder through a
   fitted head, not a random one. In-domain (DialogSum validation dialogues) and general (Python's
   documentation topics, ``builtin:python-docs``) masked-token perplexity are measured before and after,
   at the same masks.
2. The adapted model is fine-tuned with the committed full fine-tuning recipe of ``benchmarks/tuning.py``
   (same data, seed, steps, precision, evaluation on the same first 200 test dialogues) and its ROUGE-1 is
   set against the committed ``tuning.json`` figure for the unadapted model.
3. With ``--control``, the unadapted model is fine-tuned too, with the identical recipe and precision, in the
   same environment: the change against it isolates the pre-training from any difference of precision or
   machine (the committed figure is bf16 on a CPU with bf16 instructions; bf16 runs ~60 s a step on an
   AVX2-only CPU, so there the fine-tunes run in fp32).

    python benchmarks/domain_adaptation.py --pretrain-tokens 400000 --head-steps 50 --steps 1700 --precision bf16
    python benchmarks/domain_adaptation.py --pretrain-tokens 400000 --head-steps 50 --steps 1700 --precision fp32 --control

writes ``benchmarks/results/domain_adaptation.json``; runs live under ``runs/bench-domain`` (resumable).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import _common  # noqa: E402
import tuning  # noqa: E402  (the committed fine-tuning recipe and its evaluation)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pretrain-tokens", type=int, default=400_000, help="masked-LM token budget")
    parser.add_argument("--head-steps", type=int, default=50, help="steps of the fresh MLM head alone first")
    parser.add_argument("--block", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1700, help="fine-tuning steps (tuning.json's: 1700)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16", help="fine-tuning precision "
                        "(tuning.json's: bf16)")
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--runs", default=str(REPO / "runs" / "bench-domain"))
    parser.add_argument("--skip-finetune", action="store_true", help="only the continued pre-training")
    parser.add_argument("--control", action="store_true", help="also fine-tune the unadapted model with the "
                        "same recipe and precision here (under RUNS/full-unadapted)")
    args = parser.parse_args()
    if not tuning.DATA.is_dir():
        sys.exit(f"DialogSum not found at {tuning.DATA}; this benchmark needs the real data set")

    from llmcycle.data import load_data
    from llmcycle.models import load_model
    from llmcycle.pretrain.config import PretrainConfig
    from llmcycle.pretrain.train import pretrain
    from llmcycle.tuning import TuneConfig, train

    data = load_data(str(tuning.DATA))
    runs = Path(args.runs)
    cfg = PretrainConfig.from_dict({
        "init": "received", "objective": "mlm", "block_size": args.block, "max_tokens": args.pretrain_tokens,
        "batch_size": 16, "learning_rate": 1e-4, "warmup_ratio": 0.06, "scheduler": "linear",
        "weight_decay": 0.01, "head_steps": args.head_steps, "eval_blocks": 32, "eval_every": 25,
        "save_every": 25, "seed": 0})
    start = time.perf_counter()
    result = pretrain(cfg, runs / "pretrain", texts=[r["input"] for r in data["train"]],
                      heldout=[r["input"] for r in data["validation"]], loaded=load_model(tuning.MODEL))
    pre = {k: v for k, v in result.to_dict().items() if k not in ("train_loss", "model_dir")}
    out = {"model": tuning.MODEL, "data": "DialogSum (../shared/data/dialogsum): train dialogues; held-out: "
           "validation dialogues", "general_text": "Python documentation topics (pydoc_data, builtin:python-docs)",
           "pretrain_config": cfg.model_dump(mode="json"), "pretrain": pre,
           "perplexity": {name: {"before": pre["perplexity_before"][name], "after": pre["perplexity"][name]}
                          for name in pre["perplexity"]},
           "machine": _common.machine(), "versions": _common.versions(), "command": _common.command()}
    _common.write_json("domain_adaptation", out)
    print(json.dumps(out["perplexity"], indent=1), f"{time.perf_counter() - start:.0f} s")
    if args.skip_finetune:
        return
    committed = json.loads((_common.RESULTS / "tuning.json").read_text(encoding="utf-8"))
    common = tuning.COMMON | {"precision": args.precision}
    tcfg = TuneConfig.from_dict(common | tuning.RECIPES["full"] | {"max_steps": args.steps}, where="full")
    test = data["test"].select(range(args.n_test))
    splits = {"train": data["train"], "validation": data["validation"]}

    def finetune(model: str, run: str) -> dict:
        tuned = train(load_model(model), splits, tcfg, runs / run)
        scores, preds, secs = tuning.evaluate(tuned.loaded, test)
        return scores | {"train_s": tuned.seconds, "steps": tuned.steps, "eval_loss": tuned.eval_loss,
                         "eval_s": secs, "examples": preds[:3]}

    base = committed["methods"]["full"]
    same = (committed["steps"] == args.steps and committed["n_test"] == args.n_test
            and committed["common"].get("precision") == args.precision)
    adapted = finetune(str(runs / "pretrain" / "model"), "full")
    out["finetune"] = adapted | {
        "config": tcfg.model_dump(mode="json"),
        "unadapted_committed": {k: base[k] for k in ("rouge1", "rouge2", "rougeL", "rouge1_multi")},
        "rouge1_change_points": round(100 * (adapted["rouge1"] - base["rouge1"]), 2),
        "same_recipe_as_committed": same}
    _common.write_json("domain_adaptation", out)
    print(json.dumps({k: out["finetune"][k] for k in ("rouge1", "rouge2", "rougeL", "rouge1_change_points")}))
    if args.control:
        control = finetune(tuning.MODEL, "full-unadapted")
        out["control"] = control | {"model": tuning.MODEL, "note": "the unadapted model, same recipe and "
                                    "precision, fine-tuned here"}
        out["finetune"]["rouge1_change_vs_control_points"] = round(100 * (adapted["rouge1"] - control["rouge1"]), 2)
        _common.write_json("domain_adaptation", out)
        print(json.dumps({"control_rouge1": control["rouge1"],
                          "change_vs_control": out["finetune"]["rouge1_change_vs_control_points"]}))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
