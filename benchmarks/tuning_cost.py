"""What do full fine-tuning, LoRA and prompt tuning cost at the course's scale?

``google/flan-t5-base`` built with random weights from its bundled architecture (quality is not
measured here: see ``benchmarks/tuning.py``), batch 8, 384 input / 64 output tokens of random ids,
AdamW: full vs LoRA (r=32, alpha=32, q and v, the course's setting) vs prompt tuning (20 virtual
tokens), with and without gradient checkpointing. Each configuration runs in a fresh child process
(``--child METHOD[+ckpt]``) that applies the method with ``llmcycle.tuning.apply_method``, runs
``--steps`` optimizer steps and reports:

- ``step_time_s``: the median of the steps after the first (the first one allocates everything);
- ``peak_mb``: process peak RSS minus the RSS before the model is built, run with
  ``MALLOC_MMAP_THRESHOLD_=131072`` (glibc's default threshold held fixed, so freed tensors leave RSS,
  as in ``benchmarks/estimate_memory.py``);
- ``estimated_mb``: ``llmcycle.estimate.estimate_memory`` for the same shape and trainable count;
- ``trainable`` / ``trainable_pct`` (peft's convention: the total includes adapter weights) and
  ``saved_mb``: what ``save_pretrained`` writes (the whole model, or only the adapter).

Writes ``benchmarks/results/tuning_cost.json``. Usage: ``python benchmarks/tuning_cost.py [--steps 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import _common  # noqa: E402

from llmcycle.estimate.measure import peak_rss_bytes, rss_bytes  # noqa: E402

MODEL = "google/flan-t5-base"
BATCH, INPUT_LEN, OUTPUT_LEN = 8, 384, 64
METHODS = {
    "full": {"method": "full"},
    "lora": {"method": "lora", "lora": {"r": 32, "alpha": 32, "dropout": 0.05, "target_modules": ["q", "v"]}},
    "prompt_tuning": {"method": "prompt_tuning", "prompt_tuning": {"n_virtual_tokens": 20}},
}
FIXED_MMAP = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def _dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def run_child(name: str, steps: int) -> dict[str, Any]:
    """Build, apply the method, train ``steps`` steps on random ids, measure."""
    import torch

    from llmcycle.models import load_model
    from llmcycle.tuning import TuneConfig, apply_method

    method, ckpt = name.removesuffix("+ckpt"), name.endswith("+ckpt")
    torch.manual_seed(0)
    baseline = rss_bytes()
    loaded = load_model(MODEL, weights="random")
    prepared = apply_method(loaded, TuneConfig.from_dict(METHODS[method]))
    model = prepared.model if hasattr(prepared, "model") and prepared.model is not None else loaded.model
    if ckpt:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(base, "enable_input_require_grads"):
            base.enable_input_require_grads()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    vocab = loaded.model.config.vocab_size if hasattr(loaded.model, "config") else 32128
    times = []
    for _ in range(steps):
        ids = torch.randint(2, 30000, (BATCH, INPUT_LEN))
        labels = torch.randint(2, 30000, (BATCH, OUTPUT_LEN))
        t0 = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    peak = peak_rss_bytes() - baseline
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        saved = _dir_mb(Path(tmp))
    return {"method": method, "grad_checkpointing": ckpt, "step_times_s": [round(t, 2) for t in times],
            "step_time_s": round(statistics.median(times[1:] or times), 2), "peak_bytes": peak,
            "trainable": prepared.trainable, "total": prepared.total, "trainable_pct": round(prepared.pct, 4),
            "saved_mb": round(saved, 2), "vocab": vocab}


def estimate(child: dict[str, Any]) -> float:
    from llmcycle.estimate import ArchSpec, estimate_memory
    from llmcycle.models.architectures import bundled_config

    arch = ArchSpec.from_config(bundled_config(MODEL))
    extra = 20 if child["method"] == "prompt_tuning" else 0
    est = estimate_memory(arch, batch_size=BATCH, input_len=INPUT_LEN + extra, output_len=OUTPUT_LEN,
                          optimizer="adamw", trainable_params=child["trainable"],
                          grad_checkpointing=child["grad_checkpointing"], device="cpu")
    return est.total / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help="run one configuration (internal)")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per configuration")
    parser.add_argument("--configs", default="full,lora,prompt_tuning,full+ckpt,lora+ckpt,prompt_tuning+ckpt")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per child")
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(run_child(args.child, args.steps)), flush=True)
        return 0
    configs, failures = [], []
    for name in args.configs.split(","):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--steps", str(args.steps)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=REPO,
                                  env={**os.environ, **FIXED_MMAP})
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                raise RuntimeError(proc.stderr[-2000:])
            child = json.loads(line[len("RESULT "):])
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            failures.append({"config": name, "error": str(exc)[-2000:]})
            print(f"{name}: FAILED {str(exc)[-400:]}", flush=True)
            continue
        row = {k: v for k, v in child.items() if k != "peak_bytes"}
        row.update(peak_mb=round(child["peak_bytes"] / 1e6, 1), estimated_mb=round(estimate(child), 1))
        configs.append(row)
        print(f"{name:20s} step {row['step_time_s']:6.2f} s | peak {row['peak_mb']:8.1f} MB | estimated "
              f"{row['estimated_mb']:8.1f} MB | trainable {row['trainable']:,} ({row['trainable_pct']:.2f}%) | "
              f"saved {row['saved_mb']:.1f} MB", flush=True)
    by = {(c["method"], c["grad_checkpointing"]): c for c in configs}
    ratios = {}
    if ("lora", False) in by and ("full", False) in by:
        ratios["lora_step_time_vs_full"] = round(by["lora", False]["step_time_s"] / by["full", False]["step_time_s"], 3)
        ratios["adapter_size_vs_full"] = round(by["lora", False]["saved_mb"] / by["full", False]["saved_mb"], 4)
    if ("lora", True) in by and ("full", True) in by:
        ratios["lora_peak_vs_full_ckpt"] = round(by["lora", True]["peak_mb"] / by["full", True]["peak_mb"], 3)
    out = {"model": MODEL, "weights": "random (bundled architecture)", "batch": BATCH, "input_len": INPUT_LEN,
           "output_len": OUTPUT_LEN, "steps": args.steps, "machine": _common.machine(), "versions": _common.versions(),
           "command": _common.command(), "peak_measure": "peak RSS minus RSS before the model build, "
           "MALLOC_MMAP_THRESHOLD_=131072", "configs": configs, "ratios": ratios, "failures": failures}
    path = REPO / "benchmarks" / "results" / "tuning_cost.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(path)
    print(json.dumps(ratios), f"\nwrote {path.relative_to(REPO)}")
    return 0 if not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
