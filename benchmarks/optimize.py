"""What do int8 quantisation, magnitude pruning and distillation cost a DialogSum summariser? (CPU)

The unoptimised model is ``builtin:minilm-seq2seq`` fully fine-tuned on DialogSum (``--base``; by
default what ``python benchmarks/tuning.py --method full`` leaves in
``runs/bench-tuning/full/model``). ``llmcycle.optimize.run_optimize`` builds each variant from it
and measures all of them alike on the first ``--n`` DialogSum test dialogues: greedy, 60 new
tokens, batch 8 (speed-up = the baseline's seconds over the variant's for the whole set, in the
same process, one after the other), size of the saved directory, ROUGE against the three
references (best of three):

- ``int8``: int8 linear layers (dynamic activations) and int8 embedding tables, through the backend
  ``llmcycle.models.quantized.int8_backend`` picks for the CPU (PyTorch's dynamic kernels,
  ``torch-dynamic``); the same method through torchao (``Int8DynamicActivationInt8WeightConfig``) is
  measured beside it in ``int8_backends`` (built, saved as safetensors, loaded back, then measured), the
  figures that decide which backend the CPU gets;
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
        out[name] = _entry(m, result.changes[name])
    if "int8" in out:
        from llmcycle.models.quantized import int8_backend
        from llmcycle.optimize.measure import compare

        int8_dir = Path(args.runs) / "int8" / "model"
        cpu_backend = int8_backend("cpu")
        out["int8"]["backend"] = cpu_backend
        out["int8"]["reload_max_abs_logit_diff"] = _reload_diff(loaded, int8_dir)
        out["int8_backends"] = {cpu_backend: {k: out["int8"][k] for k in ("speedup", "size_ratio", "rouge1_drop",
                                                                          "rouge1", "latency_ratio", "size_mb")}}
        for other in ("torchao", "torch-dynamic"):
            if other != cpu_backend:
                m = _measure_backend(loaded, data["test"], cfg, Path(args.runs) / f"int8-{other}", other)
                out["int8_backends"][other] = _entry(m, compare(result.baseline, m))
        out["targets"] = {f"int8_{t}": ok for t, ok in _targets(out["int8"]).items()}
        out["targets_by_backend"] = {b: _targets(e) for b, e in out["int8_backends"].items()}
    path = _common.write_json("optimize", out)
    for row in result.table():
        print(row)
    for b, e in out.get("int8_backends", {}).items():
        print(f"int8 {b}: speed-up {e['speedup']}, size ratio {e['size_ratio']}, ROUGE-1 drop {e['rouge1_drop']}")
    print(f"wrote {path}")


def _entry(m, change) -> dict:
    """The figures of one variant: its change against the baseline, its own measurement and examples."""
    entry = {"speedup": change["speedup"], "size_ratio": change["size_ratio"], "rouge1_drop": change["rouge1_drop"],
             "rouge1": m.rouge1, "latency_ratio": change["latency_ratio"], "params": m.params,
             "size_mb": round(m.size_mb, 1), "details": m.details, "examples": m.examples}
    if "sparsity" in m.details:
        entry["sparsity"] = m.details["sparsity"]
    return entry


def _targets(e: dict) -> dict:
    """The issue's targets for int8: >= 1.5x decode speed, <= 0.5x size, <= 1 point of ROUGE-1 lost."""
    return {"speedup_ge_1.5": e["speedup"] >= 1.5, "size_le_0.5": e["size_ratio"] <= 0.5,
            "rouge1_drop_le_1pt": e["rouge1_drop"] <= 1.0}


def _measure_backend(loaded, rows, cfg, folder: Path, backend: str):
    """int8 through ``backend``: built, saved, loaded back from its safetensors folder and measured (this process)."""
    import shutil
    import time

    from llmcycle.models import load_model
    from llmcycle.models.chat import uses_chat
    from llmcycle.models.quantized import save_int8
    from llmcycle.optimize.measure import measure
    from llmcycle.optimize.quantize import quantize_int8
    from llmcycle.prompts import build_prompts

    rows = [dict(r) for r in rows.select(range(min(cfg.measure.n, len(rows))))]  # as run_optimize takes them
    prompts = build_prompts(cfg.measure.template, rows, tokenizer=loaded.tokenizer, chat=uses_chat(loaded)).texts
    refs = [list(r["references"]) for r in rows]
    print(f"optimize: int8 through {backend}")
    start = time.perf_counter()
    variant = quantize_int8(loaded, backend=backend)
    shutil.rmtree(folder / "model", ignore_errors=True)
    save_int8(variant, folder / "model")
    build_s = round(time.perf_counter() - start, 2)
    del variant
    back = load_model(str(folder / "model"))
    return measure(back, prompts, refs, cfg.measure, f"int8-{backend}", folder / "model", {"build_s": build_s})


def _reload_diff(loaded, folder: Path) -> float | None:
    """Largest first-step logit difference between the saved int8 variant loaded back and one quantised afresh."""
    import torch

    from llmcycle.models import load_model
    from llmcycle.optimize.quantize import quantize_int8

    if not folder.is_dir():
        return None
    back, fresh = load_model(str(folder)), quantize_int8(loaded)
    enc = back.tokenizer(["#Person1#: How was the trip? #Person2#: Long, but the view was worth it."],
                         return_tensors="pt")
    kw = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
          "decoder_input_ids": torch.full((1, 1), int(back.model.config.decoder_start_token_id))}
    with torch.no_grad():
        return float((back.model(**kw).logits - fresh.model(**kw).logits).abs().max())


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
