"""How good do full fine-tuning, LoRA and prompt tuning make a summariser? (quality, on real data)

``builtin:minilm-seq2seq`` (pretrained MiniLM warm-started as an encoder-decoder, 49M parameters)
fine-tuned on real DialogSum (``../shared/data/dialogsum``) on CPU, once per method, with the same
data order (the same seed and length-grouped sampler over the same rows) and the same number of
optimiser steps. Each method is evaluated on the same first ``--n-test`` test dialogues (beam search)
by ROUGE F1 against ``summary1`` (the convention of the DialogSum README's reference table; the
max over the three references is recorded beside it), next to the untuned model and LEAD-3 (the
first three turns).

What made the warm start learn fast enough for a CPU (see ``RECIPES``):
- ``#Person1#``.. kept as whole tokens (the builtin tokenizer does this), so summaries can name
  speakers as DialogSum's do;
- a 10x higher learning rate for the freshly initialised cross-attention and MLM-head transform
  (``lr_new_modules``) than for the pretrained weights, warmup then linear decay;
- length-grouped batches (``group_by_length``): far less padding, so more steps per minute;
- under LoRA, the speaker tags' embedding rows train too (``lora.train_new_tokens``, on by default):
  they are new rows of the warm start, all nine starting equal (see the builtin), so frozen they left
  LoRA unable to tell ``#Person1#`` from ``#Person2#`` (its summaries named ``#Person7#`` and such:
  74.5% of full fine-tuning's ROUGE-1 gain, 95.8% with the rows trained; 1,700 bf16 steps);
- bf16 autocast (``--precision bf16``) where the CPU has AVX512-BF16: faster steps than fp32.

Each method can run on its own and is merged into the result file, so no single run is long.
The committed ``tuning.json`` comes from

    python benchmarks/tuning.py --method all --steps 1700 --precision bf16

(or ``--method full``, ``--method lora``, ``--method prompt_tuning`` one at a time with the same
options). A finished run found again is only re-evaluated; its ``train_s`` is the time it recorded
plus the few seconds of loading its last checkpoint again.

Training folders live under ``runs/bench-tuning/<method>`` (``<method>-bf16-<steps>`` with
``--precision bf16``; resumable: a killed run started again continues from its last checkpoint).
Writes ``benchmarks/results/tuning.json`` (``--results NAME``: ``NAME.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import _common  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "dialogsum"
MODEL = "builtin:minilm-seq2seq"
COMMON: dict[str, Any] = {
    "batch_size": 8, "max_input_tokens": 384, "max_target_tokens": 64, "warmup_ratio": 0.06,
    "scheduler": "linear", "group_by_length": True, "seed": 0, "save_every": 100, "eval_every": 100,
    "eval_samples": 64, "log_every": 10, "keep_checkpoints": 1, "weight_decay": 0.01,
}
RECIPES: dict[str, dict[str, Any]] = {
    "full": {"method": "full", "learning_rate": 2e-4, "lr_new_modules": 1e-3},
    "lora": {"method": "lora", "lora": {"r": 32, "alpha": 32, "dropout": 0.05}, "learning_rate": 1e-3,
             "lr_new_modules": 1e-3},
    "prompt_tuning": {"method": "prompt_tuning", "prompt_tuning": {"n_virtual_tokens": 20,
                                                                   "init_text": "summarize the dialogue"},
                      "learning_rate": 3e-2},
}
GENERATION = {"num_beams": 4, "max_new_tokens": 64, "no_repeat_ngram_size": 3}


def lead3(dialogue: str) -> str:
    """The first three turns of a dialogue, speaker tags included (DialogSum's LEAD-3)."""
    return "\n".join([t for t in dialogue.splitlines() if t.strip()][:3])


def scores(predictions: list[str], rows: Any) -> dict[str, float]:
    """ROUGE F1 against summary1 (rouge1/2/L) and the max over the three references (rouge1_multi)."""
    from llmcycle.evaluation.rouge import rouge

    single = rouge(predictions, [r["summary1"] for r in rows], rouge_types=("rouge1", "rouge2", "rougeL"))
    multi = rouge(predictions, [r["references"] for r in rows], rouge_types=("rouge1",))
    return {k: round(v, 4) for k, v in single.items()} | {"rouge1_multi": round(multi["rouge1"], 4)}


def evaluate(loaded: Any, rows: Any) -> tuple[dict[str, float], list[str], float]:
    from llmcycle.generation import GenerationSettings, generate

    start = time.perf_counter()
    preds = generate(loaded, [r["input"] for r in rows], GenerationSettings(**GENERATION), batch_size=16,
                     max_input_tokens=COMMON["max_input_tokens"], truncate=True, progress=True)
    return scores(preds, rows), preds, round(time.perf_counter() - start, 1)


def load_results(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", choices=[*RECIPES, "all"], default="all")
    parser.add_argument("--steps", type=int, default=700, help="optimiser steps per method (default 700)")
    parser.add_argument("--n-test", type=int, default=200, help="test dialogues evaluated (default 200)")
    parser.add_argument("--runs", default=str(REPO / "runs" / "bench-tuning"))
    parser.add_argument("--fresh", action="store_true", help="start the training over instead of resuming")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="training precision; bf16 autocast is faster per step on a CPU with AVX512-BF16")
    parser.add_argument("--lora-targets", default=None,
                        help="comma-separated LoRA target modules (default: the family's, query,value for BERT)")
    parser.add_argument("--results", default="tuning",
                        help="result file name under benchmarks/results/ (without .json), e.g. to build a new "
                        "setting's results beside the current ones until every method has run")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"DialogSum not found at {DATA}; this benchmark needs the real data set")

    from llmcycle.data import load_data
    from llmcycle.models import load_model
    from llmcycle.tuning import TuneConfig, train

    data = load_data(str(DATA))
    test = data["test"].select(range(args.n_test))
    path = _common.RESULTS / f"{args.results}.json"
    results = load_results(path)
    common = COMMON | {"precision": args.precision}
    if results and (results.get("steps") not in (None, args.steps) or results.get("n_test") not in (None, args.n_test)
                    or results.get("common", {}).get("precision", "fp32") != args.precision):
        print(f"note: {path.name} holds runs with other --steps/--n-test/--precision; starting a new result file")
        results = {}
    results.update({"model": MODEL, "data": "DialogSum (../shared/data/dialogsum)", "n_test": args.n_test,
                    "steps": args.steps, "batch": COMMON["batch_size"], "generation": GENERATION,
                    "common": common, "machine": _common.machine(), "versions": _common.versions(),
                    "metric": "ROUGE F1 (rouge-score, stemming) against summary1; rouge1_multi: max over "
                              "the three references"})
    results.setdefault("methods", {})
    if "lead3" not in results:
        results["lead3"] = scores([lead3(r["dialogue"]) for r in test], test)
        print("LEAD-3:", results["lead3"])
    if "untuned" not in results:
        loaded = load_model(MODEL)
        s, preds, secs = evaluate(loaded, test)
        results["untuned"] = s | {"eval_s": secs, "examples": preds[:3]}
        print("untuned:", s)
        _common.write_json(args.results, results)

    methods = list(RECIPES) if args.method == "all" else [args.method]
    for method in methods:
        recipe = RECIPES[method]
        folder = method if args.precision == "fp32" else f"{method}-{args.precision}-{args.steps}"
        if method == "lora" and args.lora_targets:
            recipe = recipe | {"lora": recipe["lora"] | {"target_modules": args.lora_targets.split(",")}}
            folder += "-" + args.lora_targets.replace(",", "_")
        cfg = TuneConfig.from_dict(common | recipe | {"max_steps": args.steps}, where=method)
        loaded = load_model(MODEL)
        out = Path(args.runs) / folder
        earlier = load_results(out / "tune_result.json") if not args.fresh else {}
        result = train(loaded, {"train": data["train"], "validation": data["validation"]}, cfg, out,
                       resume=not args.fresh)
        train_s = result.seconds
        if result.resumed_from is not None and earlier.get("steps") == args.steps:
            # a finished run, only re-evaluated: its training time is the one its own run recorded
            train_s = round(earlier["seconds"] + result.seconds, 3)
        s, preds, secs = evaluate(result.loaded, test)
        results["methods"][method] = s | {
            "train_s": train_s, "trainable": result.trainable, "total": result.total,
            "trainable_pct": round(result.pct, 3), "steps": result.steps, "resumed": result.resumed_from is not None,
            "final_train_loss": result.train_loss[-1][1] if result.train_loss else None,
            "eval_loss": result.eval_loss, "eval_s": secs, "config": cfg.model_dump(mode="json"),
            "examples": preds[:3], "command": _common.command(),
        }
        print(f"{method}: {s} in {train_s:.0f} s of training")
        _summarise(results)
        _common.write_json(args.results, results)
    print(json.dumps({k: results[k] for k in ("lead3", "untuned")} | {
        m: {k: v for k, v in q.items() if k in ("rouge1", "rouge2", "rougeL", "train_s", "trainable_pct")}
        for m, q in results["methods"].items()} | {"summary": results.get("summary")}, indent=1))


def _summarise(results: dict[str, Any]) -> None:
    """Gains over the untuned model and LEAD-3, and LoRA's share of full fine-tuning's gain."""
    base, lead, methods = results["untuned"]["rouge1"], results["lead3"]["rouge1"], results["methods"]
    summary: dict[str, Any] = {m: {"gain_over_untuned": round(q["rouge1"] - base, 4),
                                   "over_lead3_points": round(100 * (q["rouge1"] - lead), 2)}
                               for m, q in methods.items()}
    if "full" in methods and "lora" in methods and methods["full"]["rouge1"] > base:
        summary["lora_share_of_full_gain"] = round((methods["lora"]["rouge1"] - base) /
                                                   (methods["full"]["rouge1"] - base), 4)
    results["summary"] = summary


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
