"""``run_optimize``: build each deployment variant from the unoptimised model and measure all alike.

What it writes under ``out_dir``::

    baseline.json            the unoptimised model's measurement
    <method>/model/          the variant, loadable with ``llmcycle.models.load_model`` (when save is on)
    <method>/measure.json    its measurement, its details (sparsity, kept layers, ...) and its config
    <method>/...             distil: the student's checkpoints, loss curve and tune_result.json
    optimize_result.json     the table: every variant beside the baseline, with the changes

Re-running into the same directory reuses every measurement whose config is unchanged (a
distillation interrupted mid-way resumes from its checkpoint). A model with an unmerged LoRA
adapter is the baseline as it is; every method but ``merge`` starts from it merged. A method with
nothing to do (``merge`` on a model without a LoRA adapter) is recorded as skipped, with its reason.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llmcycle.core.errors import OptimizeError
from llmcycle.core.files import atomic_write_json, config_hash
from llmcycle.models import load_model
from llmcycle.models.adapters import is_peft, merge_adapter
from llmcycle.models.card import keep_user_card, write_model_card
from llmcycle.models.chat import uses_chat
from llmcycle.models.hub import push_folder
from llmcycle.models.quantized import check_bnb, load_bnb
from llmcycle.optimize.config import OptimizeConfig
from llmcycle.optimize.distil import distil
from llmcycle.optimize.measure import Measurement, compare, measure, remove_tree, save_variant
from llmcycle.optimize.prune import prune_model
from llmcycle.optimize.quantize import cast, quantize_int8
from llmcycle.prompts import build_prompts

log = logging.getLogger("llmcycle")


@dataclass
class OptimizeResult:
    baseline: Measurement
    variants: dict[str, Measurement]
    changes: dict[str, dict[str, Any]]
    out_dir: str
    skipped: dict[str, str] = field(default_factory=dict)  # method -> why there was nothing to do

    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline.to_dict(), "variants": {k: v.to_dict() for k, v in self.variants.items()},
                "changes": self.changes, "out_dir": self.out_dir, "skipped": self.skipped}

    def table(self) -> list[dict[str, Any]]:
        """One row per model (baseline first): the figures and the changes against the baseline."""
        rows = [_row(self.baseline, None)]
        rows += [_row(m, self.changes[k]) for k, m in self.variants.items()]
        return rows


def _row(m: Measurement, change: dict[str, Any] | None) -> dict[str, Any]:
    row = {"model": m.name, "params": m.params, "size_mb": round(m.size_mb, 1), "seconds": m.seconds,
           "tokens_per_s": m.tokens_per_s, "latency_ms": m.latency_ms, "rouge1": m.rouge1, "rouge2": m.rouge2,
           "rougeL": m.rougeL}
    if change:
        row |= {k: change[k] for k in ("size_ratio", "speedup", "rouge1_drop")}
    return row


def _method_config(cfg: OptimizeConfig, method: str) -> dict[str, Any]:
    extra = {"prune": cfg.prune, "distil": cfg.distil}.get(method)
    return {"method": method, "measure": cfg.measure.model_dump(mode="json"),
            **({"options": extra.model_dump(mode="json")} if extra is not None else {})}


def _cached(path: Path, key: str) -> Measurement | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("config_hash") != key:
        return None
    return Measurement.from_dict(data["measurement"])


def _bnb(plain: Any, bits: int, out: Path) -> Any:
    src = plain.source
    if not Path(src).is_dir() or (Path(src) / "adapter_config.json").is_file():
        src = str(save_variant(plain, out / "fp_source"))
    model = load_bnb(src, bits, plain.kind)
    return replace(plain, model=model, notes=[*plain.notes, f"bitsandbytes {bits}-bit"])


def check_methods(cfg: OptimizeConfig) -> None:
    """``OptimizeError`` for a method this machine cannot run (bitsandbytes without a CUDA GPU or the package);
    needs no model, so the optimize stage calls it before it loads one."""
    for method in cfg.methods:
        if method in ("bnb8", "bnb4"):
            check_bnb(int(method[3]))


def nothing_to_do(method: str, loaded: Any) -> str | None:
    """Why ``method`` has nothing to do on ``loaded`` (None: it has work)."""
    if method == "merge" and not is_peft(loaded.model):
        return "the model has no LoRA adapter to merge (its weights are already whole)"
    if method == "merge":
        kinds = {str(c.peft_type).rsplit(".", 1)[-1] for c in loaded.model.peft_config.values()}
        if kinds - {"LORA"}:
            return f"a {', '.join(sorted(kinds)).lower()} adapter has no weights to merge (its tokens are inputs)"
    return None


def build_variant(method: str, base: Any, plain: Callable[[], Any], cfg: OptimizeConfig, out: Path,
                  train_data: Any) -> tuple[Any, dict[str, Any]]:
    """The ``method`` variant of the model and the details worth recording about it."""
    if method in ("fp16", "bf16"):
        return cast(plain(), method), {}
    if method == "int8":
        return quantize_int8(plain()), {}
    if method in ("bnb8", "bnb4"):
        return _bnb(plain(), int(method[3]), out), {}
    if method == "prune":
        model, sparsity = prune_model(plain(), cfg.prune)
        return model, sparsity.to_dict()
    if method == "distil":
        if train_data is None or "train" not in train_data:
            raise OptimizeError("distil: needs training data with a train split (the student learns from it)")
        student, result, keep = distil(plain(), train_data, cfg.distil, out)
        return student, {"kept_layers": keep, "steps": result.steps, "train_s": result.seconds,
                         "final_train_loss": result.train_loss[-1][1] if result.train_loss else None}
    if method == "merge":
        if not is_peft(base.model):
            raise OptimizeError("merge: the model has no LoRA adapter; pass the adapter directory as the model "
                                "(it names its base)")
        merged = merge_adapter(_copy(base))
        return merged, {"max_abs_logit_diff": _logit_diff(base, merged)}
    raise OptimizeError(f"unknown method {method!r}")


def _copy(loaded: Any) -> Any:
    import copy

    return replace(loaded, model=copy.deepcopy(loaded.model))


def _logit_diff(a: Any, b: Any) -> float:
    """Largest absolute difference of the first-step logits of ``a`` and ``b`` on a fixed input."""
    import torch

    tok = a.tokenizer
    enc = tok(["#Person1#: How was the trip? #Person2#: Long, but the view was worth it."], return_tensors="pt")
    enc = {k: v.to(next(a.model.parameters()).device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
    if a.kind == "seq2seq":
        start = a.model.config.decoder_start_token_id
        if start is None:
            start = getattr(getattr(a.model.config, "decoder", None), "bos_token_id", None) or tok.cls_token_id \
                or tok.pad_token_id
        enc["decoder_input_ids"] = torch.full((1, 1), int(start), device=enc["input_ids"].device)
    with torch.no_grad():
        return float((a.model(**enc).logits - b.model(**enc).logits).abs().max())


def run_optimize(loaded: Any, rows: Any, cfg: OptimizeConfig | dict[str, Any], out_dir: str | Path, *,
                 train_data: Any = None, progress: Callable[[str], None] | None = None,
                 remeasure: bool = False) -> OptimizeResult:
    """Build and measure every ``cfg.methods`` variant of ``loaded`` on ``rows`` (input + references).

    Args:
        loaded: the unoptimised model (a ``LoadedModel``; a LoRA adapter attached is allowed).
        rows: the evaluation rows (a Dataset or list with ``input`` and ``references``); the first
            ``cfg.measure.n`` are used.
        cfg: an ``OptimizeConfig`` or its fields.
        out_dir: where everything is written (see the module docstring).
        train_data: a DatasetDict with a train split (and optionally validation), for ``distil``.
        progress: called with a line before each step.
        remeasure: measure the baseline and every variant again in this process, loading the variants
            already built from their saved folders (timings are comparable only within one process on
            one machine state; the builds are reused).
    """
    cfg = cfg if isinstance(cfg, OptimizeConfig) else OptimizeConfig.from_dict(dict(cfg), where="optimize")
    say = progress or (lambda msg: log.info(msg))
    check_methods(cfg)  # what cannot run here fails before anything is measured or written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [dict(r) for r in (rows.select(range(min(cfg.measure.n, len(rows)))) if hasattr(rows, "select")
                              else list(rows)[: cfg.measure.n])]
    if not rows:
        raise OptimizeError("optimize: no evaluation rows")
    prompts = build_prompts(cfg.measure.template, rows, tokenizer=loaded.tokenizer, chat=uses_chat(loaded)).texts
    refs = [list(r["references"]) for r in rows]

    key = config_hash({"measure": cfg.measure.model_dump(mode="json"), "model": loaded.source})
    baseline = None if remeasure else _cached(out / "baseline.json", key)
    if baseline is None:
        say(f"optimize: measuring the unoptimised model on {len(prompts)} inputs")
        baseline = measure(loaded, prompts, refs, cfg.measure, "baseline")
        atomic_write_json(out / "baseline.json", {"config_hash": key, "measurement": baseline.to_dict()})

    merged: list[Any] = []

    def plain() -> Any:  # the unoptimised model without a separate adapter, copied for each method
        if not is_peft(loaded.model):
            return _copy(loaded)
        if not merged:
            merged.append(merge_adapter(_copy(loaded)))
        return _copy(merged[0])

    variants: dict[str, Measurement] = {}
    changes: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for method in cfg.methods:
        why = nothing_to_do(method, loaded)
        if why is not None:
            say(f"optimize: {method} skipped: {why}")
            skipped[method] = why
            continue
        folder = out / method
        mkey = config_hash(_method_config(cfg, method) | {"model": loaded.source})
        found = _cached(folder / "measure.json", mkey)
        if found is not None and remeasure and (folder / "model").is_dir():
            say(f"optimize: measuring {method} again (loaded from {folder / 'model'})")
            device = str(next(loaded.model.parameters()).device) if method != "int8" else "cpu"
            saved_variant = load_model(str(folder / "model"), device=device.split(":")[0],
                                       dtype={"fp16": "fp16", "bf16": "bf16"}.get(method, "fp32"))
            found = measure(saved_variant, prompts, refs, cfg.measure, method, folder / "model", found.details)
            atomic_write_json(folder / "measure.json", {"config_hash": mkey, "measurement": found.to_dict(),
                                                         "config": _method_config(cfg, method)})
            del saved_variant
        elif found is None:
            say(f"optimize: {method}")
            start = time.perf_counter()
            variant, details = build_variant(method, loaded, plain, cfg, folder, train_data)
            saved = None
            if cfg.save:
                target = folder / "model"
                if method != "distil":  # the tuning engine saved the student already
                    tmp = folder / ".model.tmp"
                    remove_tree(tmp)
                    save_variant(variant, tmp)
                    keep_user_card(target, tmp)  # a README.md of the user's own survives
                    remove_tree(target)
                    tmp.rename(target)
                saved = target
            details["build_s"] = round(time.perf_counter() - start, 2)
            found = measure(variant, prompts, refs, cfg.measure, method, saved, details)
            atomic_write_json(folder / "measure.json", {"config_hash": mkey, "measurement": found.to_dict(),
                                                         "config": _method_config(cfg, method)})
            if saved is not None:  # the card carries the variant's figures beside the unoptimised model's
                figures = {k: v for k, v in _row(found, compare(baseline, found)).items() if k != "model"}
                write_model_card(saved, name=method, base=loaded.origin or loaded.source, stage="optimize",
                                 method=method, settings=_method_config(cfg, method),
                                 repo_id=cfg.hub.repo_id if cfg.pushed == method else None,
                                 metrics=figures | {"baseline rouge1": baseline.rouge1,
                                                    "baseline size_mb": round(baseline.size_mb, 1)})
            del variant
        variants[method] = found
        changes[method] = compare(baseline, found)
    result = OptimizeResult(baseline, variants, changes, str(out), skipped)
    atomic_write_json(out / "optimize_result.json", result.to_dict() | {"table": result.table()})
    if cfg.pushed is not None:  # saved, measured and described first: a push that fails leaves all that in place
        if cfg.pushed in skipped:
            raise OptimizeError(f"optimize.hub.push: {cfg.pushed} was skipped ({skipped[cfg.pushed]}); nothing "
                                "was pushed")
        push_folder(out / cfg.pushed / "model", cfg.hub, where="optimize.hub")
    return result
