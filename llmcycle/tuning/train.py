"""``train``: fine-tune a loaded model on a data set with the Hugging Face Trainer.

Everything a run needs to resume exactly is in its checkpoints (weights or adapter, optimizer,
scheduler, RNG states, data position): a killed run started again with the same arguments
continues from its last checkpoint and ends with the weights an uninterrupted run would have
(on a deterministic CPU). What it writes under ``out_dir``:

    tune_config.json            the config the run started with (a resume must match it)
    checkpoints/checkpoint-N/   Trainer checkpoints (the newest ``keep_checkpoints``), each marked complete
                                once written (the format and checks of ``llmcycle.core.checkpoint``)
    model/                      the final model, or only the adapter for lora / prompt_tuning; tokenizer
    tune_result.json            parameter counts, losses, truncation report, final metrics
    loss_curve.png              training (and validation) loss against step
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmcycle.core.checkpoint import check_same_run, last_checkpoint, mark_complete
from llmcycle.core.errors import ConfigError, DataError
from llmcycle.core.files import atomic_write_json
from llmcycle.core.tracking import Tracking, tracking_callback
from llmcycle.data import load_data_from_config
from llmcycle.generation.engine import eos_token_ids
from llmcycle.models.adapters import is_peft, merge_adapter
from llmcycle.models.card import adapter_base, keep_user_card, write_model_card
from llmcycle.models.chat import uses_chat
from llmcycle.models.hub import push_folder
from llmcycle.report.charts import line_chart
from llmcycle.tuning.config import TuneConfig
from llmcycle.tuning.data import PadCollator, build_dataset
from llmcycle.tuning.methods import Prepared, apply_method
from llmcycle.tuning.multitask import Task, mix_tasks

log = logging.getLogger("llmcycle")
PEFT_METHODS = ("lora", "qlora", "prompt_tuning")


@dataclass
class TuneResult:
    """What a run did; ``to_dict`` is what ``tune_result.json`` holds."""

    method: str
    trainable: int
    total: int
    pct: float
    steps: int
    train_loss: list[tuple[int, float]]
    eval_loss: list[tuple[int, float]]
    metrics: dict[str, float]
    model_dir: str
    seconds: float
    truncation: dict[str, int]
    resumed_from: str | None = None
    new_modules: list[str] = field(default_factory=list)
    mix: dict[str, Any] | None = None  # rows per task when cfg.mix mixed other tasks in
    peak_rss_mb: float | None = None  # this process's peak resident memory when training ended (an upper bound)
    loaded: Any = field(default=None, repr=False)  # the trained LoadedModel (not serialised)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self) | {"loaded": None}
        d.pop("loaded")
        return d


def cpu_has_bf16_kernels() -> bool:
    """Whether this CPU has the instructions PyTorch's oneDNN bf16 kernels need (AVX-512 or AMX on x86, bf16 on
    Arm); without them bf16 matmuls fall back to slow reference code (~25x slower than fp32 on a 2-core AVX2
    EPYC, measured: ~60 s a step of ``benchmarks/tuning.py``'s full fine-tune against ~2.4 s in fp32)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN: say nothing rather than guess
        return True


def check_precision(precision: str, device: Any, *, warn: bool = False) -> dict[str, bool]:
    """Trainer flags for ``precision`` on ``device``; ``ConfigError`` naming the field when unsupported. With
    ``warn``, a warning when bf16 would run on a CPU without bf16 kernels (allowed, since it trains the same
    model, but many times slower than fp32)."""
    import torch

    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision: fp16 needs a CUDA GPU; use fp32 (or bf16) on a CPU")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("precision: this GPU does not support bf16; use fp16 or fp32")
    if warn and precision == "bf16" and device.type == "cpu" and not cpu_has_bf16_kernels():
        log.warning("precision: bf16 on this CPU (no AVX-512/AMX bf16 support) runs many times slower than fp32; "
                    "set precision: fp32 here")
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def check_positions(loaded: Any, cfg: TuneConfig) -> None:
    """``ConfigError`` naming the fields when a training row could be longer than the model's positions (a causal
    model reads prompt and completion in one sequence; an encoder-decoder's encoder reads the prompt)."""
    config = loaded.model.config
    if loaded.kind == "seq2seq":
        config = getattr(config, "encoder", None) or config
    positions = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
    if not positions or (loaded.kind == "seq2seq" and getattr(config, "model_type", "") == "t5"):
        return  # relative positions: no fixed limit
    target = cfg.max_target_tokens if loaded.kind == "causal" else 0
    if cfg.max_input_tokens + target > positions:
        what = "max_input_tokens + max_target_tokens" if target else "max_input_tokens"
        fix = f"max_input_tokens={positions - target}" if positions > target else \
            f"max_input_tokens={positions - positions // 4} and max_target_tokens={positions // 4}"
        raise ConfigError(f"{what} ({cfg.max_input_tokens + target}) is more than the {positions} positions "
                          f"{loaded.source} takes; lower it (e.g. {fix})")


def _splits(data: Any) -> tuple[Any, Any | None]:
    """(train rows, validation rows or None) from a DatasetDict / mapping / (train, validation) pair."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    if isinstance(data, Mapping) or hasattr(data, "keys"):
        if "train" not in data:
            raise DataError(f"tuning needs a 'train' split; the data has {', '.join(data.keys()) or 'none'}")
        return data["train"], data.get("validation")
    raise DataError("data: pass a DatasetDict with a train split, or a (train, validation) pair")


_EARLY_STOP: Any = None


def early_stop_callback(patience: int) -> Any:
    """Stop when the validation loss has not improved for ``patience`` evaluations.

    Its state (best loss, evaluations without improvement) is saved in every checkpoint and
    restored on resume, so a killed run stops at the same step an uninterrupted one would."""
    global _EARLY_STOP
    if _EARLY_STOP is None:
        from transformers import TrainerCallback
        from transformers.trainer_callback import ExportableState

        class LLMCycleEarlyStop(TrainerCallback, ExportableState):
            def __init__(self, patience: int, best: float = float("inf"), bad: int = 0) -> None:
                self.patience, self.best, self.bad = patience, best, bad

            def on_evaluate(self, args, state, control, metrics=None, **kwargs):
                loss = (metrics or {}).get("eval_loss")
                if loss is None:
                    return
                self.best, self.bad = (loss, 0) if loss < self.best else (self.best, self.bad + 1)
                if self.bad >= self.patience:
                    log.info("early stopping at step %d: no better eval loss for %d evaluations",
                             state.global_step, self.patience)
                    control.should_training_stop = True

            def state(self) -> dict[str, Any]:
                return {"args": {"patience": self.patience}, "attributes": {"best": self.best, "bad": self.bad}}

        _EARLY_STOP = LLMCycleEarlyStop
    return _EARLY_STOP(patience)


def mark_complete_callback() -> Any:
    """Marks a checkpoint folder complete once the Trainer has written all of it (its writes are not atomic)."""
    from transformers import TrainerCallback

    class MarkComplete(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                mark_complete(folder, state.global_step)

    return MarkComplete()


def is_main_process() -> bool:
    """True in a single process, and in rank 0 of an ``accelerate launch`` / ``torchrun`` job."""
    import os

    return int(os.environ.get("RANK", "0")) == 0


# The option blocks each method reads: another method's block may differ without changing the run.
_METHOD_BLOCKS = {"lora": {"lora", "qlora"}, "prompt_tuning": {"prompt_tuning"}, "selective": {"selective"}}


def _check_same_run(out: Path, cfg: TuneConfig, resume: bool) -> None:
    """A run directory resumes only with the config it started with (option blocks its method never reads
    may differ); ``resume=False`` starts over. Every process checks; only the main one deletes or writes."""
    mine = cfg.model_dump(mode="json")
    unread = {k for k, methods in _METHOD_BLOCKS.items() if mine["method"] not in methods} | {"report_to", "hub"}
    check_same_run(out, "tune_config.json", mine, TuneConfig().model_dump(mode="json"), ignore=unread,
                   resume=resume, what="run", main_process=is_main_process())


def _optimizer(model: Any, cfg: TuneConfig, prepared: Prepared, decay_names: Sequence[str]) -> Any:
    """AdamW with a higher learning rate for freshly initialised modules (``lr_new_modules``)."""
    import torch

    groups: dict[tuple[bool, bool], list[Any]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            is_new = any(m in name for m in prepared.new_modules)
            groups.setdefault((is_new, name in decay_names), []).append(p)
    params = [{"params": ps, "lr": cfg.lr_new_modules if new else cfg.learning_rate,
               "weight_decay": cfg.weight_decay if decay else 0.0} for (new, decay), ps in sorted(groups.items())]
    return torch.optim.AdamW(params, lr=cfg.learning_rate, betas=(0.9, 0.999), eps=1e-8)


def _arguments(cfg: TuneConfig, kind: str, out_dir: Path, has_eval: bool, device: Any) -> Any:
    from transformers import Seq2SeqTrainingArguments, TrainingArguments

    cls = Seq2SeqTrainingArguments if kind == "seq2seq" else TrainingArguments
    evaluate = has_eval and cfg.eval_every is not None
    return cls(
        output_dir=str(out_dir / "checkpoints"), per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps or -1,
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.scheduler, warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay, gradient_accumulation_steps=cfg.grad_accum, max_grad_norm=cfg.max_grad_norm,
        logging_strategy="steps", logging_steps=cfg.log_every, eval_strategy="steps" if evaluate else "no",
        eval_steps=cfg.eval_every if evaluate else None, save_strategy="steps", save_steps=cfg.save_every,
        save_total_limit=cfg.keep_checkpoints, seed=cfg.seed, data_seed=cfg.seed, report_to=[],
        disable_tqdm=not sys.stderr.isatty(), dataloader_num_workers=0, remove_unused_columns=False,
        label_names=["labels"], train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        length_column_name="length", restore_callback_states_from_checkpoint=True, use_cpu=device.type == "cpu",
        **check_precision(cfg.precision, device),
    )


def _history(log_history: list[dict[str, Any]]) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    train = [(int(h["step"]), float(h["loss"])) for h in log_history if "loss" in h]
    evals = [(int(h["step"]), float(h["eval_loss"])) for h in log_history if "eval_loss" in h]
    return train, evals


def save_final(model: Any, tokenizer: Any, target: Path) -> Path:
    """Save the model (or adapter) and tokenizer to ``target`` via a temporary folder and a rename (a
    ``README.md`` of the user's own in ``target`` is carried over; the callers write the model card)."""
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    # peft compares the embeddings with the base's hub config; builtin: sources have none, and
    # the vocabulary never changes here
    model.save_pretrained(str(tmp), **({"save_embedding_layers": False} if is_peft(model) else {}))
    tokenizer.save_pretrained(str(tmp))
    keep_user_card(target, tmp)
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def mixed_rows(train_rows: Any, cfg: TuneConfig) -> tuple[list[dict[str, Any]], Any]:
    """The main training rows mixed with ``cfg.mix``'s tasks by weight (rendered with their templates)."""
    tasks = [Task("main", train_rows, weight=cfg.main_weight, templates=cfg.templates)]
    for i, m in enumerate(cfg.mix):
        data = load_data_from_config(m.data)
        if "train" not in data:
            raise DataError(f"mix[{i}].data: {m.data.source} has no train split (it has {', '.join(data)})")
        tasks.append(Task(m.name or m.data.source, data["train"], weight=m.weight, templates=m.templates,
                          target_field=m.target_field))
    return mix_tasks(tasks, size=cfg.mix_size, seed=cfg.seed)


def train(loaded: Any, data: Any, cfg: TuneConfig | Mapping[str, Any], out_dir: str | Path, *,
          resume: bool = True, callbacks: Sequence[Any] = (), trainer_cls: Any = None) -> TuneResult:
    """Fine-tune ``loaded`` (a ``LoadedModel``, changed in place) on ``data`` as ``cfg`` says.

    Args:
        loaded: from ``llmcycle.models.load_model``; seq2seq or causal.
        data: a ``DatasetDict`` from ``load_data`` (``train`` and optionally ``validation``), or a
            ``(train, validation)`` pair of row sequences with ``input`` and ``references``.
        cfg: a ``TuneConfig`` or its fields as a mapping.
        out_dir: the run's folder (see the module docstring).
        resume: continue from the newest checkpoint under ``out_dir/checkpoints`` if there is one.
        callbacks: extra ``transformers.TrainerCallback`` objects.
        trainer_cls: a ``Seq2SeqTrainer`` / ``Trainer`` subclass to use instead (e.g. one with its
            own ``compute_loss``, as distillation does).
    """
    from transformers import Seq2SeqTrainer, Trainer

    start = time.perf_counter()
    cfg = cfg if isinstance(cfg, TuneConfig) else TuneConfig.from_dict(dict(cfg), where="tune")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_rows, val_rows = _splits(data)
    if len(train_rows) == 0:
        raise DataError("the train split is empty")
    device = next(loaded.model.parameters()).device
    check_precision(cfg.precision, device, warn=True)
    check_positions(loaded, cfg)
    tok = loaded.tokenizer
    shape = {"tokenizer": tok, "kind": loaded.kind, "templates": cfg.templates,
             "max_input_tokens": cfg.max_input_tokens, "max_target_tokens": cfg.max_target_tokens,
             "chat": uses_chat(loaded), "stop_ids": eos_token_ids(loaded.model, tok)}
    mixed = None
    if cfg.mix:
        train_rows, mixed = mixed_rows(train_rows, cfg)
        log.info("multitask mix: %s", mixed.summary())
        train_ds, report = build_dataset(train_rows, **(shape | {"templates": ["none"]}))
    else:
        train_ds, report = build_dataset(train_rows, **shape)
    eval_ds = None
    if val_rows is not None and len(val_rows):
        eval_rows = val_rows.select(range(min(cfg.eval_samples, len(val_rows)))) if hasattr(val_rows, "select") \
            else list(val_rows)[: cfg.eval_samples]
        eval_ds, _ = build_dataset(eval_rows, **shape)
    log.info("tune data: %d training rows; %s", len(train_ds), report.summary())

    if is_peft(loaded.model):  # an adapter trained before: train on top of its merged weights
        merged = merge_adapter(loaded)  # refuses adapters that cannot merge (prompt tuning), naming them
        log.info("tune: the %s adapter of %s was merged into its base before training", cfg.method, loaded.source)
        loaded.model, loaded.source, loaded.notes = merged.model, merged.source, merged.notes
    prepared = apply_method(loaded, cfg)
    _check_same_run(out, cfg, resume)
    log.info(f"{cfg.method}: {prepared.summary()}")
    model = prepared.model
    args = _arguments(cfg, loaded.kind, out, eval_ds is not None, device)
    trainer_cls = trainer_cls or (Seq2SeqTrainer if loaded.kind == "seq2seq" else Trainer)
    extra = [mark_complete_callback(), *callbacks]
    if cfg.early_stopping_patience:
        extra.append(early_stop_callback(cfg.early_stopping_patience))
    if cfg.report_to:  # loss, learning rate, eval loss to the trackers, at the Trainer's own log steps
        extra.append(tracking_callback(Tracking(cfg.report_to, out / "tracking", "tune", cfg.model_dump(mode="json"))))
    trainer = trainer_cls(model=model, args=args, data_collator=PadCollator(tok.pad_token_id),
                          train_dataset=train_ds, eval_dataset=eval_ds, callbacks=extra)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # raw log dicts on stdout; losses are kept in the result instead
    if cfg.lr_new_modules is not None and prepared.new_modules:
        trainer.optimizer = _optimizer(model, cfg, prepared, trainer.get_decay_parameter_names(model))
    found = last_checkpoint(Path(args.output_dir))
    last = str(found) if found else None
    if last:
        log.info("resuming from %s", last)
    with warnings.catch_warnings():
        # peft looks for a hub config of the base on every save; builtin: bases have none, vocab is unchanged
        warnings.filterwarnings("ignore", message="Could not find a config file in")
        # EncoderDecoderModel warns on every step that labels now build decoder_input_ids (true, and fine)
        warnings.filterwarnings("ignore", message="Version v4.12.0 introduces a better way")
        trainer.train(resume_from_checkpoint=last)
    train_loss, eval_loss = _history(trainer.state.log_history)
    if eval_ds is not None and (not eval_loss or eval_loss[-1][0] != trainer.state.global_step):
        trainer.evaluate()
        train_loss, eval_loss = _history(trainer.state.log_history)
    metrics = {"eval_loss": eval_loss[-1][1]} if eval_loss else {}
    if train_loss:
        metrics["train_loss"] = train_loss[-1][1]
    model.eval()
    loaded.model = model
    if not is_peft(model):
        loaded.origin = None  # its weights changed in memory: no source loads them (until saved)
    model_dir = out / "model"
    if trainer.is_world_process_zero():  # under DDP every process holds the same weights; one writes them
        save_final(model, tok, model_dir)
    result = TuneResult(cfg.method, prepared.trainable, prepared.total, round(prepared.pct, 6),
                        trainer.state.global_step, train_loss, eval_loss, metrics, str(model_dir),
                        round(time.perf_counter() - start, 3), report.to_dict(), last, prepared.new_modules,
                        asdict(mixed) if mixed else None, round(peak_rss_mb(), 1), loaded)
    if trainer.is_world_process_zero():
        _write_outputs(out, result, cfg)
        write_model_card(model_dir, name=f"tuned-{cfg.method}", base=adapter_base(model_dir) or loaded.source,
                         stage="tune", method=cfg.method, settings=cfg.model_dump(mode="json", exclude={"hub"}),
                         repo_id=cfg.hub.repo_id if cfg.hub.push else None,
                         metrics={"optimizer steps": result.steps, "training rows": len(train_ds),
                                  "validation rows": len(eval_ds) if eval_ds is not None else None,
                                  "trainable parameters": f"{prepared.trainable:,} of {prepared.total:,} "
                                                          f"({prepared.pct:.2f}%)", **metrics,
                                  "training seconds": result.seconds})
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():  # saved and described first: a push that fails leaves all that in place
        push_folder(model_dir, cfg.hub, where="tune.hub")
    return result


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _write_outputs(out: Path, result: TuneResult, cfg: TuneConfig) -> None:
    atomic_write_json(out / "tune_result.json", result.to_dict() | {"config": cfg.model_dump(mode="json")})
    series = {"train": result.train_loss}
    if result.eval_loss:
        series["validation"] = result.eval_loss
    if result.train_loss or result.eval_loss:
        line_chart(series, out / "loss_curve.png", title=f"{cfg.method} fine-tuning loss", xlabel="step",
                   ylabel="loss")
