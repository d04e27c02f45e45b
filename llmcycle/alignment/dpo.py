"""Direct Preference Optimization (Rafailov et al., 2023) for seq2seq and decoder-only models, full or LoRA.

**Ours, not TRL's.** TRL 1.16's ``DPOTrainer`` (installed in this environment but not a dependency
of llmcycle) handles decoder-only models only: it concatenates prompt and completion into one
sequence, marks the completion with a ``completion_mask`` and patches the model's forward with a
fused LM head that scores that single sequence; there is no encoder-decoder path left. Using it for
causal models and something else for seq2seq would give two code paths with different logging,
checkpoints and tokenisation (TRL re-tokenises with its own conventions, which differ from
``llmcycle.tuning``'s for the builtin WordPiece tokenizer). The loss itself is a few lines, so one
small implementation serves both kinds and keeps trl out of the dependencies.

What one step does, for ``batch_size x grad_accum`` pairs ``(prompt, chosen, rejected)``:

1. Tokenise as ``llmcycle.tuning.data`` does for SFT (so DPO after SFT sees the same format):
   seq2seq: the prompt is the encoder input and the completion the decoder target; causal:
   ``prompt ids + completion ids + EOS`` with the prompt masked.
2. ``logp(y | x)``: the sum of the completion tokens' log-probabilities (float32), prompt and
   padding masked, under the policy and under the reference. Chosen and rejected rows share one
   forward pass (batch ``[chosen; rejected]``).
3. With ``h = (logp_pi(y_w) - logp_ref(y_w)) - (logp_pi(y_l) - logp_ref(y_l))``:
   ``sigmoid``: ``-(1 - eps) log sigma(beta h) - eps log sigma(-beta h)`` (``eps`` = label
   smoothing, the conservative DPO of Mitchell 2023; ``eps = 0`` is plain DPO);
   ``ipo``: ``(h' - 1 / (2 beta))^2`` (Azar et al., 2023) with ``h'`` built from per-token *mean*
   log-ratios (TRL's normalisation, agreed with the IPO authors, so beta does not depend on length).
4. AdamW on the trainable parameters, linear warmup then a constant rate, gradient clipping.

The implicit rewards are ``beta * (logp_pi - logp_ref)``; logged per step: loss, reward margin
(chosen minus rejected reward), reward accuracy (share of pairs with a positive margin), chosen and
rejected rewards, chosen and rejected log-probs, learning rate and gradient norm. At the first step
the policy *is* the reference, so every margin is exactly 0 and the sigmoid loss is ``log 2``.

**Reference model.** ``method: full``: a frozen deep copy of the model as passed in. ``method:
lora``: the same model with its adapter disabled (``with model.disable_adapter():``), no second
copy in memory. Dropout stays off (the model is kept in eval mode), as TRL does by default:
with dropout the policy and the reference would differ by noise at step 0.

``train_dpo`` writes into ``out_dir``: ``dpo_config.json``, ``dpo_log.json`` (config, one record
per step, held-out metrics, truncation counts), ``dpo_curves.png`` (loss, margin, accuracy by step),
``checkpoints/checkpoint-N/`` every ``save_every`` steps (trainable weights, optimizer, log; the format
of ``llmcycle.core.checkpoint``) and at the end ``model/`` (the whole model for ``full``, the adapter
for ``lora``; written to a temporary folder and renamed). Run again on the same folder it resumes from
the newest complete checkpoint and ends with the same weights as an uninterrupted run (batches depend
on ``(seed, step)`` only).
One process: this loop does not synchronise gradients across ranks.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import random
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from llmcycle.alignment.reward_model import PreferencePair, as_pairs
from llmcycle.core.checkpoint import check_same_run, last_checkpoint, write_checkpoint
from llmcycle.core.config import StageConfig
from llmcycle.core.errors import ConfigError, DataError, LLMCycleError
from llmcycle.core.files import atomic_write_json
from llmcycle.core.tracking import ReportTo, Tracking, report_to_field
from llmcycle.generation.engine import _ensure_pad_token, eos_token_ids
from llmcycle.models.adapters import is_peft
from llmcycle.models.builtins import quiet_transformers
from llmcycle.models.card import adapter_base, write_model_card
from llmcycle.models.chat import uses_chat
from llmcycle.report.charts import line_chart
from llmcycle.tuning.config import LoraOptions
from llmcycle.tuning.data import IGNORE, PadCollator, Pair, tokenize_pairs
from llmcycle.tuning.methods import apply_method
from llmcycle.tuning.train import save_final

log = logging.getLogger("llmcycle")

LOG_FILE = "dpo_log.json"
CONFIG_FILE = "dpo_config.json"
CHART_FILE = "dpo_curves.png"
STATE_FILE = "dpo_state.json"
METRICS = ("loss", "margin", "accuracy", "chosen_reward", "rejected_reward", "chosen_logps", "rejected_logps",
           "logp_accuracy")  # per step: means over the pairs of the step


class DPOConfig(StageConfig):
    """A DPO run: loss, optimisation, sequence lengths, method (full or LoRA) and checkpoints."""

    method: Literal["full", "lora"] = Field(
        "lora", description="full (every weight trains; the reference is a frozen copy) or lora (adapters train; "
        "the reference is the base with the adapter disabled, no copy).")
    lora: LoraOptions = Field(default_factory=LoraOptions, description="Options of method lora.")
    beta: float = Field(0.1, gt=0, description="Strength of the KL constraint: rewards are beta x log(pi / ref); "
                        "smaller lets the policy move further from the reference.")
    loss: Literal["sigmoid", "ipo"] = Field(
        "sigmoid", description="sigmoid (the DPO loss, -log sigma(beta h)) or ipo ((h - 1/(2 beta))^2 on per-token "
        "mean log-ratios).")
    label_smoothing: float = Field(
        0.0, ge=0, lt=0.5, description="Assumed share of flipped preference labels (conservative DPO); sigmoid "
        "loss only; 0: plain DPO.")
    learning_rate: float = Field(5e-5, gt=0, description="AdamW learning rate after warmup (constant). LoRA "
                                 "usually takes 1e-5..1e-4; full fine-tuning of a large model ~1e-6.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW decoupled weight decay.")
    warmup_steps: int = Field(0, ge=0, description="Steps of linear warmup from 0 to learning_rate.")
    epochs: float = Field(1.0, gt=0, description="Passes over the pairs (ignored when max_steps is set).")
    max_steps: int | None = Field(None, gt=0, description="Optimizer steps to run; wins over epochs.")
    batch_size: int = Field(8, gt=0, description="Pairs per forward pass (2 x batch_size sequences).")
    grad_accum: int = Field(1, gt=0, description="Forward passes per optimizer step (pairs per step = batch_size "
                            "x grad_accum).")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Gradient clipping by global norm; None: none.")
    max_prompt_tokens: int = Field(384, gt=0, description="Prompt tokens kept (longer prompts are cut at the end "
                                   "and counted, as in fine-tuning).")
    max_completion_tokens: int = Field(128, gt=0, description="Completion tokens kept, EOS included.")
    seed: int = Field(42, description="Seed of the adapter initialisation and the order of the pairs.")
    save_every: int | None = Field(None, gt=0, description="Checkpoint (trainable weights, optimizer, log) every "
                                   "this many steps, for resuming; None: no checkpoints.")
    keep_checkpoints: int | None = Field(2, gt=0, description="Newest checkpoints kept; None keeps all.")
    log_every: int = Field(10, gt=0, description="Log the step metrics every this many steps (every step is "
                           "recorded in dpo_log.json).")
    report_to: ReportTo = report_to_field()

    @field_validator("label_smoothing")
    @classmethod
    def _smoothing_needs_sigmoid(cls, value: float, info: ValidationInfo) -> float:
        if value and info.data.get("loss") == "ipo":
            raise ValueError("label_smoothing applies to loss 'sigmoid' only; set it to 0 for ipo")
        return value


@dataclass
class DPOResult:
    """What ``train_dpo`` did; ``to_dict`` is what ``dpo_log.json`` holds (with the config)."""

    method: str
    trainable: int
    total: int
    steps: int
    log: list[dict[str, float]]  # one record per optimizer step (see METRICS, plus step, lr, grad_norm)
    model_dir: str
    seconds: float
    n_pairs: int
    truncation: dict[str, int]
    eval_before: dict[str, float] | None = None  # preference_metrics on eval_pairs before training
    eval_after: dict[str, float] | None = None  # ... and after
    resumed_from: str | None = None
    loaded: Any = field(default=None, repr=False)  # the trained LoadedModel (not serialised)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (without ``loaded``)."""
        return {k: v for k, v in asdict(self).items() if k != "loaded"}


# ---- tokenisation --------------------------------------------------------------------------------


def encode_pairs(tokenizer: Any, kind: str, pairs: Sequence[PreferencePair], max_prompt_tokens: int,
                 max_completion_tokens: int, chat: bool = False, stop_ids: Sequence[int] = ()
                 ) -> tuple[list[dict[str, list[int]]], list[dict[str, list[int]]], Any]:
    """Token rows for the chosen and the rejected completions (``input_ids``, ``attention_mask``, ``labels``).

    Same conventions as SFT (``llmcycle.tuning.data.tokenize_pairs``); labels are -100 on the prompt
    (causal). A causal prompt that tokenises to nothing gets the BOS (or EOS) token, so that the
    first completion token has a position predicting it. ``chat``: a model used in chat form, whose
    prompt is a user turn and each completion an assistant turn ending at its end-of-turn token.

    Returns:
        ``(chosen_rows, rejected_rows, truncation_report)``; the report counts both.
    """
    items = [Pair(p.prompt, p.chosen, "none") for p in pairs] + [Pair(p.prompt, p.rejected, "none") for p in pairs]
    tok = tokenize_pairs(items, tokenizer, kind, max_prompt_tokens, max_completion_tokens, chat, stop_ids)
    rows = tok.rows
    if kind == "causal":
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        for r in rows:
            if r["labels"] and r["labels"][0] != IGNORE and start is not None:
                r["input_ids"], r["attention_mask"], r["labels"] = ([start] + r["input_ids"], [1] + r["attention_mask"],
                                                                    [IGNORE] + r["labels"])
    return rows[:len(pairs)], rows[len(pairs):], tok.report


def _chat_args(loaded: Any) -> tuple[bool, list[int]]:
    """Whether ``loaded`` is used in chat form, and the ids its generation stops on (``encode_pairs``)."""
    return uses_chat(loaded), sorted(eos_token_ids(loaded.model, loaded.tokenizer))


def _decoder_start(model: Any) -> int:
    for cfg in (model.config, getattr(model, "generation_config", None)):
        start = getattr(cfg, "decoder_start_token_id", None) if cfg is not None else None
        if start is not None:
            return int(start)
    raise LLMCycleError("model: the seq2seq model has no decoder_start_token_id in its config")


def sequence_logps(model: Any, kind: str, batch: Mapping[str, Any], pad_id: int) -> tuple[Any, Any]:
    """Summed log-probabilities of the completion tokens and their counts, each (N,).

    Args:
        model: a seq2seq or causal LM (or a PEFT wrapper of one).
        kind: ``seq2seq`` or ``causal``.
        batch: padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 where not scored), each (N, L).
        pad_id: the pad token id (fills masked decoder inputs).
    """
    import torch

    labels = batch["labels"]
    if kind == "seq2seq":
        start = torch.full_like(labels[:, :1], _decoder_start(model))
        shifted = torch.cat([start, labels[:, :-1]], dim=1)  # (N, T): targets shifted right
        decoder_in = shifted.masked_fill(shifted == IGNORE, pad_id)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       decoder_input_ids=decoder_in, use_cache=False).logits  # (N, T, V)
        targets = labels
    else:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       use_cache=False).logits[:, :-1]  # (N, L-1, V): position t predicts token t+1
        targets = labels[:, 1:]
    mask = targets != IGNORE  # (N, T)
    logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (logp * mask).sum(dim=1), mask.sum(dim=1)  # (N,), (N,)


def dpo_loss(policy_chosen: Any, policy_rejected: Any, ref_chosen: Any, ref_rejected: Any, *, beta: float,
             loss: str = "sigmoid", label_smoothing: float = 0.0, n_chosen: Any = None,
             n_rejected: Any = None) -> tuple[Any, Any, Any]:
    """Per-pair DPO (or IPO) losses and the implicit rewards, from summed completion log-probs (each (B,)).

    Args:
        policy_chosen, policy_rejected: log-probs under the policy (with gradients).
        ref_chosen, ref_rejected: log-probs under the reference (no gradients).
        beta: reward scale / KL strength.
        loss: ``sigmoid`` or ``ipo``.
        label_smoothing: conservative-DPO smoothing (sigmoid only).
        n_chosen, n_rejected: completion token counts (ipo averages the log-ratios per token).

    Returns:
        ``(losses, chosen_rewards, rejected_rewards)``, each (B,); rewards are ``beta * log-ratio``, detached.
    """
    import torch.nn.functional as F

    chosen_ratio = policy_chosen - ref_chosen  # (B,)
    rejected_ratio = policy_rejected - ref_rejected
    if loss == "sigmoid":
        h = beta * (chosen_ratio - rejected_ratio)
        losses = -(1 - label_smoothing) * F.logsigmoid(h) - label_smoothing * F.logsigmoid(-h)
    elif loss == "ipo":
        if n_chosen is None or n_rejected is None:
            raise LLMCycleError("loss: ipo needs the completion token counts (n_chosen, n_rejected)")
        h = chosen_ratio / n_chosen.clamp(min=1) - rejected_ratio / n_rejected.clamp(min=1)
        losses = (h - 1 / (2 * beta)) ** 2
    else:
        raise ConfigError(f"loss: unknown value {loss!r}; valid: sigmoid, ipo")
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


# ---- the trainer ---------------------------------------------------------------------------------


def step_indices(n: int, per_step: int, step: int, seed: int) -> list[int]:
    """Pair indices of ``step`` (1-based): consecutive slices of one seeded permutation per pass over the data.

    A function of its arguments alone, so a resumed run draws the same pairs as an uninterrupted one.
    """
    out: list[int] = []
    pos = (step - 1) * per_step
    while len(out) < per_step:
        epoch, offset = divmod(pos + len(out), n)
        order = list(range(n))
        random.Random(f"{seed}:{epoch}").shuffle(order)
        out.extend(order[offset:offset + per_step - len(out)])
    return out


def total_steps(cfg: DPOConfig, n_pairs: int) -> int:
    """``max_steps``, else ``ceil(epochs x pairs / (batch_size x grad_accum))``."""
    if cfg.max_steps is not None:
        return cfg.max_steps
    return max(1, math.ceil(cfg.epochs * n_pairs / (cfg.batch_size * cfg.grad_accum)))


class DPOScorer:
    """The policy, its reference (a frozen copy, or None for the adapter-disabled policy) and the token rows.

    ``forward(idx)`` gives the mean DPO loss of pairs ``idx`` and the sums of their metrics.
    """

    def __init__(self, loaded: Any, model: Any, cfg: DPOConfig, chosen: list[dict], rejected: list[dict],
                 reference: Any) -> None:
        self.loaded, self.model, self.cfg = loaded, model, cfg
        self.chosen, self.rejected = chosen, rejected
        self.reference = reference  # None: LoRA, the adapter-disabled policy
        self.pad_id = loaded.tokenizer.pad_token_id
        self.device = next(model.parameters()).device

    def _batch(self, idx: Sequence[int], rows_a: list[dict], rows_b: list[dict]) -> dict[str, Any]:
        feats = [rows_a[i] for i in idx] + [rows_b[i] for i in idx]  # [chosen; rejected]
        batch = PadCollator(self.pad_id)([{k: r[k] for k in ("input_ids", "attention_mask", "labels")}
                                          for r in feats])
        return {k: v.to(self.device) for k, v in batch.items()}  # each (2B, L)

    def _reference_logps(self, batch: dict[str, Any]) -> Any:
        import torch

        with torch.no_grad():
            if self.reference is not None:
                return sequence_logps(self.reference, self.loaded.kind, batch, self.pad_id)[0]
            with self.model.disable_adapter():
                return sequence_logps(self.model, self.loaded.kind, batch, self.pad_id)[0]

    def forward(self, idx: Sequence[int], chosen: list[dict] | None = None,
                rejected: list[dict] | None = None) -> tuple[Any, dict[str, Any]]:
        """Mean loss over the pairs ``idx`` (with gradients when enabled) and their metric sums."""
        batch = self._batch(idx, chosen or self.chosen, rejected or self.rejected)
        logps, counts = sequence_logps(self.model, self.loaded.kind, batch, self.pad_id)  # (2B,)
        ref = self._reference_logps(batch)
        b = len(idx)
        losses, r_chosen, r_rejected = dpo_loss(
            logps[:b], logps[b:], ref[:b], ref[b:], beta=self.cfg.beta, loss=self.cfg.loss,
            label_smoothing=self.cfg.label_smoothing, n_chosen=counts[:b], n_rejected=counts[b:])
        margin = r_chosen - r_rejected
        sums = {"loss": losses.detach().sum().item(), "margin": margin.sum().item(),
                "accuracy": (margin > 0).float().sum().item(), "chosen_reward": r_chosen.sum().item(),
                "rejected_reward": r_rejected.sum().item(), "chosen_logps": logps[:b].detach().sum().item(),
                "rejected_logps": logps[b:].detach().sum().item(),
                "logp_accuracy": (logps[:b] > logps[b:]).float().sum().item()}
        return losses.mean(), sums


def _rows_hash(pairs: Sequence[PreferencePair]) -> str:
    h = hashlib.sha256()
    for p in pairs:
        h.update(json.dumps([p.prompt, p.chosen, p.rejected]).encode())
    return h.hexdigest()[:16]


def _check_pairs(pairs: Any, name: str) -> list[PreferencePair]:
    items = as_pairs(pairs, name)
    if not items:
        raise DataError(f"{name}: is empty; pass at least one (prompt, chosen, rejected) pair")
    for i, p in enumerate(items):
        if not p.chosen.strip() or not p.rejected.strip():
            raise DataError(f"{name}[{i}]: {'chosen' if not p.chosen.strip() else 'rejected'} is empty")
        if p.chosen == p.rejected:
            raise DataError(f"{name}[{i}]: chosen and rejected are the same text (no preference); drop the pair")
    return items


def _check_model(loaded: Any) -> None:
    if getattr(loaded, "kind", None) not in ("seq2seq", "causal"):
        raise LLMCycleError(f"model: DPO needs a seq2seq or causal LM, got a {getattr(loaded, 'kind', None)} model")
    if is_peft(loaded.model):
        raise LLMCycleError("model: already carries a PEFT adapter; merge it into the base first "
                            "(llmcycle.tuning.merge_adapter) so that the reference is the adapted model")


def _check_same_run(out: Path, cfg: DPOConfig, resume: bool, write: bool = False) -> None:
    """A folder resumes only with the config it started with. Checked first with ``write=False``, before
    anything is written; then with ``write=True``, which drops old checkpoints unless resuming and records
    the config."""
    check_same_run(out, CONFIG_FILE, cfg.model_dump(mode="json"), DPOConfig().model_dump(mode="json"),
                   ignore={"report_to"}, resume=resume, what="DPO run", write=write)


def _trainable_state(model: Any) -> dict[str, Any]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _save_checkpoint(out: Path, step: int, model: Any, opt: Any, records: list[dict], digest: str,
                     keep: int | None) -> None:
    """``checkpoints/checkpoint-N`` (trainable weights, optimizer, log), written whole or not at all by
    ``llmcycle.core.checkpoint.write_checkpoint``; the newest ``keep`` are kept."""
    import torch

    def write(tmp: Path) -> None:
        torch.save(_trainable_state(model), tmp / "trainable.pt")
        torch.save(opt.state_dict(), tmp / "optimizer.pt")
        atomic_write_json(tmp / STATE_FILE, {"step": step, "pairs": digest, "log": records})

    write_checkpoint(out / "checkpoints", step, write, keep)


def _load_checkpoint(path: str, model: Any, opt: Any, digest: str) -> tuple[int, list[dict]]:
    import torch

    state = json.loads((Path(path) / STATE_FILE).read_text(encoding="utf-8"))
    if state.get("pairs") != digest:
        raise DataError(f"pairs: differ from those of the checkpoint {path}; use a new out_dir or resume=False")
    weights = torch.load(Path(path) / "trainable.pt", map_location="cpu")
    params = dict(model.named_parameters())
    missing = [n for n in weights if n not in params]
    if missing or len(weights) != sum(p.requires_grad for p in params.values()):
        raise LLMCycleError(f"{path}: its weights do not match this model ({len(missing)} unknown names)")
    with torch.no_grad():
        for n, t in weights.items():
            params[n].copy_(t)
    opt.load_state_dict(torch.load(Path(path) / "optimizer.pt", map_location="cpu"))
    return int(state["step"]), list(state["log"])


def preference_metrics(trainer: DPOScorer, pairs: Sequence[PreferencePair], batch_size: int) -> dict[str, float]:
    """Mean loss, margin, reward accuracy, rewards, log-probs and log-prob accuracy on held-out pairs."""
    import torch

    chosen, rejected, _ = encode_pairs(trainer.loaded.tokenizer, trainer.loaded.kind, pairs,
                                       trainer.cfg.max_prompt_tokens, trainer.cfg.max_completion_tokens,
                                       *_chat_args(trainer.loaded))
    totals: dict[str, float] = {}
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            idx = list(range(start, min(start + batch_size, len(pairs))))
            _, sums = trainer.forward(idx, chosen, rejected)
            for k, v in sums.items():
                totals[k] = totals.get(k, 0.0) + v
    return {k: v / len(pairs) for k, v in totals.items()} | {"n": len(pairs)}


def _run_steps(trainer: DPOScorer, opt: Any, params: list[Any], first: int, n_steps: int, records: list[dict],
               save: Any, tracking: Tracking | None = None) -> None:
    """Optimizer steps ``first..n_steps``; appends one record per step (sent to ``tracking`` too) and checkpoints
    through ``save``."""
    import torch

    cfg, n = trainer.cfg, len(trainer.chosen)
    for step in range(first, n_steps + 1):
        lr = cfg.learning_rate * min(1.0, step / cfg.warmup_steps) if cfg.warmup_steps else cfg.learning_rate
        for group in opt.param_groups:
            group["lr"] = lr
        idx = step_indices(n, cfg.batch_size * cfg.grad_accum, step, cfg.seed)
        totals: dict[str, float] = {}
        opt.zero_grad(set_to_none=True)
        for k in range(cfg.grad_accum):
            loss, sums = trainer.forward(idx[k * cfg.batch_size:(k + 1) * cfg.batch_size])
            (loss / cfg.grad_accum).backward()
            for key, v in sums.items():
                totals[key] = totals.get(key, 0.0) + v
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm or float("inf"))
        opt.step()
        rec = {"step": step} | {k: v / len(idx) for k, v in totals.items()} | {"lr": lr, "grad_norm": float(norm)}
        records.append(rec)
        if tracking is not None:
            tracking.log(rec, step)
        if step % cfg.log_every == 0 or step == n_steps:
            log.info("dpo: step %d/%d loss %.4f margin %.4f reward acc %.3f", step, n_steps, rec["loss"],
                     rec["margin"], rec["accuracy"])
        if cfg.save_every and step % cfg.save_every == 0 and step < n_steps:
            save(step)


def _write_outputs(out: Path, result: DPOResult, cfg: DPOConfig) -> None:
    atomic_write_json(out / LOG_FILE, {"config": cfg.model_dump(mode="json")} | result.to_dict())
    series = {m: [(r["step"], r[m]) for r in result.log] for m in ("loss", "margin", "accuracy")}
    line_chart(series, out / CHART_FILE, title=f"DPO ({cfg.loss}, beta={cfg.beta}, {cfg.method})", xlabel="step",
               ylabel="loss / reward margin / accuracy")


def train_dpo(loaded: Any, pairs: Any, cfg: DPOConfig | Mapping[str, Any] | None, out_dir: str | Path, *,
              eval_pairs: Any = None, resume: bool = True) -> DPOResult:
    """Train ``loaded`` (a ``LoadedModel``, changed in place) with DPO on preference pairs.

    Args:
        loaded: a seq2seq or causal model from ``llmcycle.models.load_model`` (without an adapter;
            merge one first). For ``method: lora`` it ends up wrapped in a ``PeftModel``.
        pairs: ``PreferencePair``s, ``{"prompt", "chosen", "rejected"}`` mappings or tuples
            (see ``llmcycle.alignment.reward_model.as_pairs``); chosen must differ from rejected.
        cfg: a ``DPOConfig`` or a mapping of its fields (None: the defaults).
        out_dir: the run folder (see the module docstring).
        eval_pairs: held-out pairs scored before and after training (``preference_metrics``).
        resume: continue from the newest complete checkpoint in ``out_dir/checkpoints``.

    Returns:
        A ``DPOResult``: per-step log, held-out metrics, where the model is.
    """
    import torch

    started = time.perf_counter()
    if not isinstance(cfg, DPOConfig):
        cfg = DPOConfig.from_dict(dict(cfg or {}), where="dpo")
    items = _check_pairs(pairs, "pairs")
    held = _check_pairs(eval_pairs, "eval_pairs") if eval_pairs is not None else None
    _check_model(loaded)
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise LLMCycleError(f"out_dir: {out} is a file; pass a folder")
    _check_same_run(out, cfg, resume)
    _ensure_pad_token(loaded.tokenizer)
    chosen, rejected, report = encode_pairs(loaded.tokenizer, loaded.kind, items, cfg.max_prompt_tokens,
                                            cfg.max_completion_tokens, *_chat_args(loaded))
    log.info("dpo data: %d pairs; %s", len(items), report.summary())
    reference = None
    if cfg.method == "full":  # the model as passed in, frozen
        reference = copy.deepcopy(loaded.model).eval().requires_grad_(False)
    prepared = apply_method(loaded, cfg)
    model = prepared.model.eval()  # dropout off: policy == reference at step 1 (see module docstring)
    _check_same_run(out, cfg, resume, write=True)  # only now: a bad config or LoRA target leaves no folder
    trainer = DPOScorer(loaded, model, cfg, chosen, rejected, reference)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    n_steps, digest = total_steps(cfg, len(items)), _rows_hash(items)
    eval_before = preference_metrics(trainer, held, cfg.batch_size) if held else None
    found = last_checkpoint(out / "checkpoints") if resume else None
    last = str(found) if found else None
    done, records = _load_checkpoint(last, model, opt, digest) if last else (0, [])
    if last:
        log.info("dpo: resuming from %s (step %d)", last, done)
    log.info(f"dpo {cfg.method}: {prepared.summary()}; {n_steps} steps of {cfg.batch_size * cfg.grad_accum} pairs")
    with Tracking(cfg.report_to, out / "tracking", "dpo", cfg.model_dump(mode="json")) as tracking:
        _run_steps(trainer, opt, params, done + 1, n_steps, records,
                   lambda step: _save_checkpoint(out, step, model, opt, records, digest, cfg.keep_checkpoints),
                   tracking)
    eval_after = preference_metrics(trainer, held, cfg.batch_size) if held else None
    loaded.model = model
    with warnings.catch_warnings(), quiet_transformers():  # no progress bar; peft looks for a hub config of a
        warnings.filterwarnings("ignore", message="Could not find a config file in")  # builtin: base, there is none
        save_final(model, loaded.tokenizer, out / "model")
    result = DPOResult(cfg.method, prepared.trainable, prepared.total, n_steps, records, str(out / "model"),
                       round(time.perf_counter() - started, 3), len(items), report.to_dict(), eval_before,
                       eval_after, last, loaded)
    _write_outputs(out, result, cfg)
    tail = records[-5:]
    write_model_card(out / "model", name="aligned-dpo", base=adapter_base(out / "model") or loaded.source,
                     stage="align", method="dpo", settings=cfg.model_dump(mode="json"), metrics={
                         "DPO steps": n_steps, "preference pairs": len(items),
                         "loss, last 5 steps": sum(r["loss"] for r in tail) / len(tail) if tail else None,
                         "reward margin, last 5 steps": sum(r["margin"] for r in tail) / len(tail) if tail else None,
                         **{f"held-out {k}, before": v for k, v in (eval_before or {}).items() if k != "n"},
                         **{f"held-out {k}, after": v for k, v in (eval_after or {}).items() if k != "n"},
                         "trainable parameters": f"{prepared.trainable:,} of {prepared.total:,}",
                         "training seconds": result.seconds})
    return result

