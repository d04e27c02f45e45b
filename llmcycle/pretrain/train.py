"""``pretrain``: train a model from scratch, or further on in-domain text, with the tuning engine's Trainer.

Same engine as ``llmcycle.tuning.train``: the Hugging Face Trainer, its schedules and precisions,
checkpoints marked complete (``llmcycle.core.checkpoint``) and exact resume (weights, optimizer,
scheduler, RNG and data position; the masks of mlm/span are drawn from the restored RNG), progress bars,
``accelerate launch`` for DDP/FSDP/DeepSpeed. What it adds: packed blocks (``llmcycle.pretrain.data``),
held-out loss and perplexity on in-domain and general text (before and after, at fixed masks), and the
efficiency of every run: tokens per second and model FLOPs utilisation, ``6 N D / time`` over this
machine's measured matmul peak (``llmcycle.estimate.measure.matmul_peak_flops``). What it writes under
``out_dir``:

    pretrain_config.json     the config the run started with (a resume must match it)
    checkpoints/checkpoint-N Trainer checkpoints, each marked complete once written
    before.json              held-out losses of a received model before training (init: received)
    model/                   the trained model (for an mlm warm start: the whole encoder-decoder) and tokenizer
    pretrain_result.json     sizes, tokens, losses, perplexities, tokens/s, MFU
    loss_curve.png           training and held-out loss against tokens seen
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from llmcycle.core.checkpoint import check_same_run, last_checkpoint
from llmcycle.core.errors import DataError
from llmcycle.core.files import atomic_write_json
from llmcycle.core.tracking import Tracking, tracking_callback
from llmcycle.estimate.compute import training_flops
from llmcycle.estimate.measure import matmul_peak_flops
from llmcycle.models.builtins import seeded
from llmcycle.models.card import write_model_card
from llmcycle.models.hub import push_folder
from llmcycle.models.loader import LoadedModel
from llmcycle.pretrain.config import PretrainConfig
from llmcycle.pretrain.data import BlockDataset, Collator, general_texts, pack
from llmcycle.pretrain.model import Target, build_scratch, received_target
from llmcycle.report.charts import line_chart
from llmcycle.tuning.train import check_precision, is_main_process, mark_complete_callback, peak_rss_mb, save_final

log = logging.getLogger("llmcycle")


@dataclass
class PretrainResult:
    """What a run did; ``to_dict`` is what ``pretrain_result.json`` holds."""

    objective: str
    family: str
    kind: str
    init: str
    params: int
    embedding_params: int
    block_size: int
    steps: int
    tokens: int  # D: tokens trained on (steps x batch x accumulation x block x processes)
    corpus_tokens: int
    epochs: float
    flops: float  # 6 N D
    seconds: float  # training time of this process (evaluation excluded)
    tokens_per_s: float
    peak_flops: float  # the measured matmul peak the MFU is relative to
    mfu: float
    train_loss: list[tuple[int, float]]
    heldout: dict[str, list[tuple[int, float]]]  # name -> (tokens seen, loss)
    before: dict[str, float] | None
    after: dict[str, float]
    model_dir: str
    resumed_from: str | None = None
    notes: list[str] = field(default_factory=list)
    peak_rss_mb: float | None = None
    loaded: Any = field(default=None, repr=False)

    @property
    def final_loss(self) -> float:
        return self.after["in-domain"] if "in-domain" in self.after else next(iter(self.after.values()))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self) | {"loaded": None}
        d.pop("loaded")
        d["perplexity"] = {k: perplexity(v) for k, v in self.after.items()}
        if self.before:
            d["perplexity_before"] = {k: perplexity(v) for k, v in self.before.items()}
        return d


def _read_json(path: Path) -> Any:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))


def eval_batches(blocks: Any, cfg: PretrainConfig, target: Target, n: int) -> list[dict[str, Any]]:
    """The first ``n`` blocks in batches, masked once with a generator of their own (the same every time)."""
    import torch

    gen = torch.Generator().manual_seed(cfg.seed + 1)
    collate = Collator(target.objective, target.tokenizer, mlm_probability=cfg.mlm_probability,
                       noise_density=cfg.noise_density, mean_span=cfg.mean_span, generator=gen)
    rows = [{"input_ids": b} for b in blocks[:n]]
    return [collate(rows[i:i + cfg.batch_size]) for i in range(0, len(rows), cfg.batch_size)]


def heldout_loss(model: Any, batches: list[dict[str, Any]], objective: str) -> float:
    """Mean cross-entropy per predicted token over ``batches`` (nats)."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(**batch).logits.float()
            labels = batch["labels"]
            if objective == "clm":
                logits, labels = logits[:, :-1], labels[:, 1:]
            total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                       ignore_index=-100, reduction="sum").item()
            count += int((labels != -100).sum())
    model.train(was_training)
    return total / max(count, 1)


def _callbacks(evaluate: Any, every: int | None, tokens_per_step: int) -> tuple[Any, Any]:
    """A callback evaluating held-out loss (kept in the Trainer state, so it survives a resume) and one timing
    the optimizer steps (evaluation excluded). The timing's totals are saved with every checkpoint and restored
    on resume (``ExportableState``), so a run resumed, even one resumed after it finished, reports the time and
    throughput of all its steps, not only of those taken since the resume."""
    from transformers import TrainerCallback
    from transformers.trainer_callback import ExportableState

    class HeldOut(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if every and state.global_step % every == 0 and state.global_step < state.max_steps:
                state.log_history.append({"step": state.global_step, "tokens": state.global_step * tokens_per_step,
                                          **{f"heldout/{k}": v for k, v in evaluate().items()}})

    # the totals live here: the Trainer restores a checkpoint's callback state into a new Clock it makes itself
    totals = {"seconds": 0.0, "steps": 0}

    class Clock(TrainerCallback, ExportableState):
        seconds = property(lambda self: totals["seconds"], lambda self, v: totals.update(seconds=float(v)))
        steps = property(lambda self: totals["steps"], lambda self, v: totals.update(steps=int(v)))
        _start = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds += time.perf_counter() - self._start
            self.steps += 1

        def state(self) -> dict[str, Any]:
            return {"args": {}, "attributes": {"seconds": self.seconds, "steps": self.steps}}

    return HeldOut(), Clock()


def _arguments(cfg: PretrainConfig, out: Path, steps: int, device: Any) -> Any:
    import sys

    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out / "checkpoints"), per_device_train_batch_size=cfg.batch_size, max_steps=steps,
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.scheduler, warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay, gradient_accumulation_steps=cfg.grad_accum, max_grad_norm=cfg.max_grad_norm,
        adam_beta2=0.95, logging_strategy="steps", logging_steps=cfg.log_every, eval_strategy="no",
        save_strategy="steps", save_steps=cfg.save_every, save_total_limit=cfg.keep_checkpoints, seed=cfg.seed,
        data_seed=cfg.seed, report_to=[], disable_tqdm=not sys.stderr.isatty(), dataloader_num_workers=0,
        remove_unused_columns=False, label_names=["labels"], restore_callback_states_from_checkpoint=True,
        use_cpu=device.type == "cpu", **check_precision(cfg.precision, device),
        **({"lr_scheduler_kwargs": {"num_decay_steps": max(1, steps // 5)}}
           if cfg.scheduler == "warmup_stable_decay" else {}),
    )


def _train_head(target: Target, dataset: BlockDataset, cfg: PretrainConfig) -> None:
    """``head_steps`` steps on the fresh head alone (the received weights frozen), seeded."""
    import torch

    model = target.trained
    frozen = [p for p in model.parameters() if p.requires_grad and all(p is not h for h in target.fresh_head)]
    for p in frozen:
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    collate = Collator(target.objective, target.tokenizer, mlm_probability=cfg.mlm_probability, generator=gen)
    opt = torch.optim.AdamW(target.fresh_head, lr=cfg.learning_rate)
    model.train()
    with seeded(cfg.seed + 3):  # dropout draws from torch's global generator, which torch seeds at random
        for _ in range(cfg.head_steps):
            idx = torch.randint(len(dataset), (cfg.batch_size,), generator=gen).tolist()
            loss = model(**collate([dataset[i] for i in idx])).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    for p in frozen:
        p.requires_grad_(True)
    log.info("pretrain: the fresh %s head trained %d steps alone (last loss %.3f)", target.objective,
             cfg.head_steps, loss.item())


def pretrain(cfg: PretrainConfig, out_dir: str | Path, *, texts: Sequence[str], heldout: Sequence[str] = (),
             loaded: LoadedModel | None = None, resume: bool = True, callbacks: Sequence[Any] = ()) -> PretrainResult:
    """Pre-train as ``cfg`` says on the documents ``texts``; ``heldout`` documents give the in-domain held-out
    loss. ``loaded`` is the model to continue (``init: received``); with ``init: scratch`` it is not used."""
    from transformers import Trainer
    from transformers.trainer_callback import PrinterCallback

    start = time.perf_counter()
    out = Path(out_dir)
    if not texts:
        raise DataError("pretrain: the corpus is empty (no documents)")
    if cfg.init == "received":
        if loaded is None:
            raise DataError("pretrain: init: received needs a model to continue")
        target = received_target(loaded, cfg)
        positions = getattr(target.trained.config, "max_position_embeddings", None) or 512
        block = cfg.block_size or min(256, positions)
    else:
        target = build_scratch(cfg)
        block = cfg.block_size or cfg.architecture.context
        positions = cfg.architecture.context if cfg.architecture.config is None else block
    if block > positions and target.objective != "span":
        raise DataError(f"block_size: {block} is longer than the model's {positions} positions")
    general = general_texts(cfg.general_text) if cfg.general_text else []  # a bad file fails before any work
    train_packed = pack(texts, target.tokenizer, block, target.objective)
    if len(train_packed.blocks) == 0:
        raise DataError(f"pretrain: the corpus ({train_packed.tokens} tokens) does not fill one block of {block}")
    log.info("pretrain corpus: %s", train_packed.summary())
    device = next(target.trained.parameters()).device
    check_precision(cfg.precision, device, warn=True)
    evals: dict[str, list[dict[str, Any]]] = {}
    for name, docs in (("in-domain", heldout), ("general", general)):
        blocks = pack(docs, target.tokenizer, block, target.objective).blocks if docs else []
        if len(blocks):
            evals[name] = eval_batches(blocks, cfg, target, cfg.eval_blocks)

    def evaluate() -> dict[str, float]:
        return {name: round(heldout_loss(target.trained, batches, target.objective), 6)
                for name, batches in evals.items()}

    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_step = cfg.batch_size * cfg.grad_accum * block * world
    if cfg.max_steps:
        steps = cfg.max_steps
    elif cfg.max_tokens:
        steps = math.ceil(cfg.max_tokens / per_step)
    else:
        steps = max(1, math.ceil(cfg.epochs * len(train_packed.blocks) / (cfg.batch_size * cfg.grad_accum * world)))
    mine = cfg.model_dump(mode="json")
    check_same_run(out, "pretrain_config.json", mine, PretrainConfig().model_dump(mode="json"),
                   ignore={"report_to", "hub"}, resume=resume, what="pre-training run", main_process=is_main_process())
    dataset = BlockDataset(train_packed.blocks, steps * cfg.batch_size * cfg.grad_accum * world)
    found = last_checkpoint(out / "checkpoints")
    before_file = out / "before.json"
    before = _read_json(before_file) if found else None
    if cfg.init == "received" and before is None:
        if target.fresh_head and cfg.head_steps:
            _train_head(target, dataset, cfg)
        before = evaluate()
        if is_main_process():
            atomic_write_json(before_file, before)
        log.info("pretrain: held-out loss before training: %s", before)
    elif found and target.fresh_head and cfg.head_steps:
        log.info("pretrain: resuming; the head's own steps were taken before the checkpoint")
    held, clock = _callbacks(evaluate, cfg.eval_every, per_step)
    extra = [mark_complete_callback(), held, clock, *callbacks]
    if cfg.report_to:
        extra.append(tracking_callback(Tracking(cfg.report_to, out / "tracking", "pretrain", mine)))
    args = _arguments(cfg, out, steps, device)
    trainer = Trainer(model=target.trained, args=args, data_collator=Collator(
        target.objective, target.tokenizer, mlm_probability=cfg.mlm_probability, noise_density=cfg.noise_density,
        mean_span=cfg.mean_span, seed=cfg.seed), train_dataset=dataset, callbacks=extra)
    trainer.remove_callback(PrinterCallback)
    if not found and evals and before is None:  # from scratch: the loss at initialisation, kept for a resume
        before = evaluate()
        if is_main_process():
            atomic_write_json(before_file, before)
    if found:
        log.info("resuming from %s", found)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Version v4.12.0 introduces a better way")
        trainer.train(resume_from_checkpoint=str(found) if found else None)
    after = evaluate()
    history = trainer.state.log_history
    if before:  # the curves' first point, also after a resume (the Trainer's history starts at its first log)
        history.insert(0, {"step": 0, "tokens": 0, **{f"heldout/{k}": v for k, v in before.items()}})
    train_loss = [(int(h["step"]), float(h["loss"])) for h in history if "loss" in h]
    curves: dict[str, list[tuple[int, float]]] = {name: [] for name in evals}
    for h in history:
        for name in evals:
            if f"heldout/{name}" in h:
                curves[name].append((int(h["tokens"]), float(h[f"heldout/{name}"])))
    for name, loss in after.items():
        curves[name].append((trainer.state.global_step * per_step, loss))
    target.trained.eval()
    model_dir = out / "model"
    if cfg.init == "scratch":
        target.tokenizer.model_max_length = positions  # what later stages read as the longest input
    if trainer.is_world_process_zero():
        save_final(target.saved, target.tokenizer, model_dir)
    tokens = trainer.state.global_step * per_step
    n = target.params
    seconds = clock.seconds
    tps = clock.steps * per_step / seconds if seconds else 0.0
    peak = matmul_peak_flops(device.type, cfg.precision) * world
    result = PretrainResult(
        target.objective, target.family, target.kind, cfg.init, n, target.embedding_params, block,
        trainer.state.global_step, tokens, train_packed.tokens, round(tokens / max(train_packed.tokens, 1), 4),
        training_flops(n, tokens), round(seconds, 3), round(tps, 2), peak,
        round(training_flops(n, tps) / peak, 4) if tps else 0.0, train_loss, curves, before, after, str(model_dir),
        str(found) if found else None, target.notes, round(peak_rss_mb(), 1))
    if target.kind != "encoder":
        result.loaded = LoadedModel(target.saved, target.tokenizer, "seq2seq" if target.kind == "seq2seq" else
                                    "causal", str(model_dir), target.family, origin=str(model_dir))
    if trainer.is_world_process_zero():
        _write_outputs(out, result)
        metrics = {"optimizer steps": result.steps, "tokens trained on": tokens, "corpus tokens": train_packed.tokens,
                   "parameters": n, "training seconds": result.seconds, "tokens/s": result.tokens_per_s,
                   "MFU": result.mfu, **{f"held-out loss, {k}, before": v for k, v in (before or {}).items()},
                   **{f"held-out loss, {k}, after": v for k, v in after.items()}}
        if train_loss:
            metrics["train_loss"] = train_loss[-1][1]
        write_model_card(model_dir, name=f"pretrained-{target.objective}", stage="pretrain", method=target.objective,
                         base=loaded.source if cfg.init == "received" and loaded is not None else None,
                         metrics=metrics, settings=cfg.model_dump(mode="json", exclude={"hub"}),
                         repo_id=cfg.hub.repo_id if cfg.hub.push else None)
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():  # saved and described first: a push that fails leaves all that in place
        push_folder(model_dir, cfg.hub, where="pretrain.hub")
    log.info("pretrain: %d steps, %s tokens in %.0f s (%.0f tokens/s, MFU %.1f%% of a measured %.1f GFLOP/s); "
             "total %.0f s", result.steps, f"{tokens:,}", seconds, tps, 100 * result.mfu, peak / 1e9,
             time.perf_counter() - start)
    return result


def _write_outputs(out: Path, result: PretrainResult) -> None:
    atomic_write_json(out / "pretrain_result.json", result.to_dict())
    series: dict[str, list[tuple[int, float]]] = {}
    if result.train_loss:
        per_step = result.tokens / max(result.steps, 1)
        series["training"] = [(int(s * per_step), v) for s, v in result.train_loss]
    series |= {f"held-out {k}": v for k, v in result.heldout.items()}
    if any(series.values()):
        line_chart(series, out / "loss_curve.png", title=f"{result.objective} pre-training loss",
                   xlabel="tokens seen", ylabel="loss (nats per token)")
