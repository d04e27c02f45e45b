"""Knowledge distillation into a shallower student, trained with the tuning engine.

The student is the teacher's architecture with fewer decoder layers (DistilBART's "shrink and
fine-tune"): built from the teacher's config with the layer count lowered, then every weight
copied from the teacher, the kept decoder layers from the teacher's layers spread evenly (first
and last included). Two ways to train it, both through ``llmcycle.tuning.train`` (checkpoints,
exact resume, loss curves):

* ``soft``: the loss mixes the KL divergence between the temperature-softened token
  distributions of teacher and student (scaled by T squared, Hinton et al.) with the usual
  cross-entropy on the reference labels: ``alpha * T^2 * KL + (1 - alpha) * CE``. The teacher runs
  frozen beside the student (a ``Trainer`` subclass's ``compute_loss``; transformers has no
  distillation trainer, TRL's GKD trainer is for decoder-only models and on-policy).
* ``generated``: sequence-level distillation: the teacher's greedy summaries of the training
  inputs replace the references, and the student learns them with plain cross-entropy.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from llmcycle.core.errors import OptimizeError
from llmcycle.generation import GenerationSettings, generate
from llmcycle.models.adapters import is_peft
from llmcycle.models.builtins import seeded
from llmcycle.models.chat import uses_chat
from llmcycle.optimize.config import DistilOptions
from llmcycle.prompts import build_prompts
from llmcycle.tuning import train

log = logging.getLogger("llmcycle")

_SEQ2SEQ_ATTRS = ("num_decoder_layers", "decoder_layers", "num_hidden_layers", "n_layer", "num_layers")
_CAUSAL_ATTRS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")


def decoder_layer_list(model: Any, kind: str) -> tuple[str, int]:
    """The dotted path of the module list holding the decoder's layers and its length.

    The shallowest ``ModuleList`` (under ``decoder`` for seq2seq models) whose length is the
    config's decoder layer count.
    """
    import torch

    lists = [(n, len(m)) for n, m in model.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 0]
    if kind == "seq2seq":
        lists = [(n, k) for n, k in lists if n.split(".")[0] == "decoder" or ".decoder." in f".{n}."]
    for name, n in sorted(lists, key=lambda t: t[0].count(".")):
        try:
            _layer_config(model.config, kind, n)
        except OptimizeError:
            continue
        return name, n
    raise OptimizeError(f"distil: cannot find the decoder layers of this {type(model).__name__}")


def _layer_config(config: Any, kind: str, n: int) -> tuple[Any, str]:
    """The config object and attribute that hold the decoder layer count ``n``."""
    target = config.decoder if kind == "seq2seq" and getattr(config, "decoder", None) is not None \
        and hasattr(config.decoder, "to_dict") else config
    for attr in (_SEQ2SEQ_ATTRS if kind == "seq2seq" else _CAUSAL_ATTRS):
        if getattr(target, attr, None) == n:
            return target, attr
    raise OptimizeError(f"distil: no layer-count field equal to {n} in the {type(target).__name__}")


def kept_layers(n_teacher: int, opts: DistilOptions) -> list[int]:
    """Teacher layer indices the student keeps: ``opts.layers``, or ``decoder_layers`` spread evenly."""
    if opts.layers is not None:
        if opts.layers[-1] >= n_teacher:
            raise OptimizeError(f"distil.layers: the teacher has {n_teacher} decoder layers (0..{n_teacher - 1}), "
                                f"got {opts.layers}")
        return list(opts.layers)
    k = opts.decoder_layers or (n_teacher + 1) // 2
    if k > n_teacher:
        raise OptimizeError(f"distil.decoder_layers: {k} is more than the teacher's {n_teacher}")
    if k == 1:
        return [0]
    return sorted({int(round(i * (n_teacher - 1) / (k - 1))) for i in range(k)})


def make_student(teacher: Any, opts: DistilOptions) -> tuple[Any, list[int]]:
    """A ``LoadedModel`` student: the teacher's architecture with only the kept decoder layers, weights copied."""
    import copy

    if is_peft(teacher.model):
        raise OptimizeError("distil: merge the teacher's LoRA adapter first (method merge)")
    model = teacher.model
    path, n = decoder_layer_list(model, teacher.kind)
    keep = kept_layers(n, opts)
    config = copy.deepcopy(model.config)
    target, attr = _layer_config(config, teacher.kind, n)
    setattr(target, attr, len(keep))
    if isinstance(getattr(target, "layer_types", None), list) and len(target.layer_types) == n:
        target.layer_types = [target.layer_types[i] for i in keep]
    with seeded(0):
        student = type(model)(config)
    prefix = re.compile(rf"^{re.escape(path)}\.(\d+)\.(.*)$")
    source = model.state_dict()
    state = {}
    for key in student.state_dict():
        m = prefix.match(key)
        state[key] = source[f"{path}.{keep[int(m.group(1))]}.{m.group(2)}"] if m else source[key]
    student.load_state_dict(state, strict=True)
    if hasattr(student, "tie_weights"):
        student.tie_weights()
    student.to(next(model.parameters()).device, dtype=next(model.parameters()).dtype)
    note = f"distilled student: decoder layers {keep} of {n}"
    return replace(teacher, model=student.eval(), notes=[*teacher.notes, note],
                   source=f"{teacher.source} (student {len(keep)}/{n} decoder layers)"), keep


def distillation_trainer(base_cls: Any, teacher: Any, kind: str, temperature: float, alpha: float) -> Any:
    """A subclass of ``base_cls`` (``Seq2SeqTrainer`` / ``Trainer``) whose loss mixes soft and hard targets."""
    import torch
    import torch.nn.functional as F

    teacher.eval().requires_grad_(False)

    class DistillationTrainer(base_cls):  # type: ignore[misc, valid-type]
        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            outputs = model(**inputs)
            labels = inputs["labels"]
            with torch.no_grad():
                t_logits = teacher(**inputs).logits
            s_logits = outputs.logits
            if kind == "causal":  # position i predicts token i + 1
                s_logits, t_logits, labels = s_logits[:, :-1], t_logits[:, :-1], labels[:, 1:]
            mask = labels != -100
            s = F.log_softmax(s_logits[mask].float() / temperature, dim=-1)
            t = F.log_softmax(t_logits[mask].float() / temperature, dim=-1)
            kd = F.kl_div(s, t, log_target=True, reduction="batchmean") * temperature ** 2
            loss = alpha * kd + (1 - alpha) * outputs.loss
            return (loss, outputs) if return_outputs else loss

    return DistillationTrainer


def _generated_targets(teacher: Any, train_rows: Any, opts: DistilOptions) -> list[dict[str, Any]]:
    cfg = opts.train
    n = len(train_rows) if cfg.max_steps is None else min(len(train_rows), cfg.max_steps * cfg.batch_size
                                                          * cfg.grad_accum)
    rows = [dict(train_rows[i]) for i in range(n)]
    template = cfg.templates[0]
    prompts = build_prompts(template, rows, tokenizer=teacher.tokenizer, max_input_tokens=cfg.max_input_tokens,
                            chat=uses_chat(teacher)).texts
    log.info("distil: the teacher summarises %d training inputs (sequence-level targets)", n)
    outs = generate(teacher, prompts, GenerationSettings(max_new_tokens=cfg.max_target_tokens), batch_size=16,
                    progress=True, truncate=True)
    return [r | {"references": [o]} for r, o in zip(rows, outs)]


def distil(teacher: Any, data: Any, opts: DistilOptions, out_dir: str | Path) -> tuple[Any, Any, list[int]]:
    """Build the student and train it on ``data`` (a DatasetDict with train, optionally validation).

    Returns ``(student LoadedModel, TuneResult, kept layer indices)``; the student is saved under
    ``out_dir/model`` by the tuning engine, checkpoints under ``out_dir/checkpoints`` (resumable).
    """
    from transformers import Seq2SeqTrainer, Trainer

    student, keep = make_student(teacher, opts)
    if opts.targets == "generated":
        val = data["validation"] if "validation" in data else None
        rows = _generated_targets(teacher, data["train"], opts)
        result = train(student, (rows, val), opts.train, out_dir)
    else:
        base = Seq2SeqTrainer if teacher.kind == "seq2seq" else Trainer
        trainer_cls = distillation_trainer(base, teacher.model, teacher.kind, opts.temperature, opts.alpha)
        result = train(student, data, opts.train, out_dir, trainer_cls=trainer_cls)
    return result.loaded, result, keep
