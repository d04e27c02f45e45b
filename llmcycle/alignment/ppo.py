"""PPO with a KL penalty for seq2seq and decoder-only policies, full or LoRA: ours, not TRL's.

TRL 1.x no longer ships PPO (it moved to ``trl.experimental`` and was then removed), and its
rewrite could not run an encoder-decoder policy, so this module implements it directly, after
Ziegler et al. (2019) and Stiennon et al. (2020), the algorithm of TRL's former ``PPOTrainer``:

1. **Rollout**: sample a response for each of ``batch_size`` prompts with the policy (the
   generation engine's seeded sampler: rollouts depend on ``(seed, step)`` only). Responses end at
   the end token; everything after it is padding, masked everywhere.
2. **Score**: per response token, the logprob under the policy (the "old" policy of this step) and
   under the frozen reference, the value (a linear ``ValueHead`` on the last decoder hidden state)
   and the entropy; the reward callable scores each (prompt, response) text.
3. **Rewards**: ``-beta * KL_t`` on every token, with a non-negative per-token KL estimator
   (default k3: ``exp(r) - 1 - r``, ``r = ref_logp - logp``; see ``ppo_ops.kl_penalty``), plus the
   (optionally normalised) score on the last token, or, with ``dense_rewards``, on every token the
   change it made to the reward of the response so far (``ppo_ops.shaped_rewards``). The reported
   KL is the per-sequence sum, averaged over rollouts: exactly 0 while policy and reference agree.
4. **GAE** (gamma, lambda) gives advantages and returns; advantages are whitened over the batch.
5. **Update**: ``ppo_epochs`` passes over the batch in shuffled mini-batches of
   ``mini_batch_size``: clipped policy loss + ``vf_coef`` x clipped value loss, AdamW (the value
   head at its own, higher ``value_learning_rate``: it starts at zero and must learn within a few
   dozen steps), gradients clipped to ``max_grad_norm``. The first ``value_warmup_steps`` steps
   train the value head alone, so that from the first policy update on the advantages single out
   the tokens that changed the expected reward rather than crediting every token of a response
   with its final score.
6. **KL controller**: beta fixed, or adapted towards ``kl.target`` (Ziegler's proportional rule).
7. **Length anchor** (``kl.eos_coef``, off by default): the loss also carries the KL between the
   policy's and the reference's probability of ending at each response position, so the reward
   cannot be raised by stopping early (or late), only by what the response says. **KL in the loss**
   (``kl.loss_coef``, off by default): the exact KL of the whole next-token distributions, policy
   vs reference, at every response position, added to the loss as GRPO does with its sampled
   estimate; unlike the penalty in the reward it does not go through the advantages, so it
   restrains drift that noisy advantages cause where the reward says nothing.
8. **PPO-ptx** (``ptx_coef``, off by default; Ouyang et al. 2022): every policy mini-batch also
   carries the mean negative log-likelihood of ``mini_batch_size`` (prompt, target) pairs from the
   data the policy was fine-tuned on (``ptx_data``), so the policy keeps doing the task it was
   tuned for while the reward pulls it elsewhere. The pairs are drawn in a seeded order that
   depends on the step and mini-batch only, as the prompts do.

The reference is the policy as it was at the start: for ``method: lora`` the same model with its
adapter disabled (``with model.disable_adapter():``; no second copy in memory), for ``full`` a
frozen deep copy. Dropout is off throughout (the model stays in eval mode): with dropout, the
logprobs of the old and the new policy would differ by noise and so would the ratio and the KL.

``train_ppo`` writes into its run folder ``ppo_log.json`` (one record per step), ``reward.png``,
``kl.png``, ``ppo_result.json``, ``checkpoints/step-N/`` and, at the end, ``model/`` (the policy or
its adapter, the tokenizer and ``value_head.pt``). Started again on the same folder it resumes from
the newest complete checkpoint; on a deterministic CPU the resumed run ends with exactly the weights
of an uninterrupted one (prompt order, sampling and mini-batch order derive from ``(seed, step)``;
optimizer, controller, normaliser and RNG states are restored).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from llmcycle.alignment.ppo_checkpoint import PREFIX, load_checkpoint, save_checkpoint, save_policy
from llmcycle.alignment.ppo_config import PPOConfig
from llmcycle.alignment.ppo_model import Batch, ValueHead, hidden_size, make_batch, score
from llmcycle.alignment.ppo_monitor import RewardHackingMonitor
from llmcycle.alignment.ppo_ops import (
    KLController,
    RunningMoments,
    bernoulli_kl,
    full_kl,
    gae,
    kl_penalty,
    masked_mean,
    policy_loss,
    shaped_rewards,
    token_rewards,
    value_loss,
    whiten,
)
from llmcycle.core.checkpoint import check_same_run, last_checkpoint
from llmcycle.core.errors import ConfigError, LLMCycleError
from llmcycle.core.files import atomic_write_json
from llmcycle.core.tracking import Tracking
from llmcycle.generation.engine import eos_token_ids, generate_detailed, input_limit
from llmcycle.models.adapters import is_peft
from llmcycle.models.card import adapter_base, write_model_card
from llmcycle.models.tokenizer import decode_text
from llmcycle.report.charts import line_chart
from llmcycle.tuning.data import target_ids
from llmcycle.tuning.methods import apply_method

log = logging.getLogger("llmcycle")

RewardFn = Callable[[Sequence[str], Sequence[str]], Sequence[float]]


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any parts (a hash: different parts never share a stream)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Prompt indices of ``step`` (1-based): consecutive slices of seeded permutations, one per pass.

    A function of its arguments alone, so a resumed run draws the same prompts as an uninterrupted one.
    """
    start = (step - 1) * batch_size
    out: list[int] = []
    while len(out) < batch_size:
        epoch, offset = divmod(start + len(out), n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, "prompts", epoch)))
        out.extend(perm[offset:offset + batch_size - len(out)].tolist())
    return out


@dataclass
class Rollouts:
    """One step's rollouts and everything PPO computes from them; (B, T) tensors over response tokens."""

    prompts: list[str]
    responses: list[str]
    batch: Batch
    scores: torch.Tensor  # (B,) raw rewards
    logp: torch.Tensor  # old policy
    ref_logp: torch.Tensor
    values: torch.Tensor
    entropy: torch.Tensor
    kl: torch.Tensor  # per-token KL estimate, 0 on padding
    dense: torch.Tensor | None = None  # dense_rewards: each token's change of the prefix reward
    ref_eos: torch.Tensor | None = None  # kl.eos_coef: the reference's log P(ending) at each position
    ref_logprobs: torch.Tensor | None = None  # kl.loss_coef: the reference's (B, T, V) log-probabilities
    advantages: torch.Tensor | None = None
    returns: torch.Tensor | None = None


class PPOTrainer:
    """The policy, its value head, the reference, the optimizer and the KL controller of one run.

    ``PPOTrainer(loaded, cfg, reward_fn)`` prepares ``loaded.model`` for ``cfg.method`` (it becomes a
    ``PeftModel`` for LoRA) and ``step(prompts, step)`` runs one PPO step. ``train_ppo`` drives it.
    """

    def __init__(self, loaded: Any, cfg: PPOConfig, reward_fn: RewardFn, normalizer: Any | None = None,
                 ptx_data: Sequence[tuple[str, str]] | None = None):
        if loaded.kind not in ("seq2seq", "causal"):
            raise LLMCycleError(f"{loaded.source} is a {loaded.kind} model; PPO needs a seq2seq or causal policy")
        if is_peft(loaded.model):
            raise LLMCycleError(f"{loaded.source} already carries an adapter; merge it first "
                                "(llmcycle.models.adapters.merge_adapter) so PPO's reference is well defined")
        _ensure_pad_token(loaded.tokenizer)
        self.cfg, self.loaded, self.kind, self.reward_fn = cfg, loaded, loaded.kind, reward_fn
        self.reward_name = str(getattr(reward_fn, "name", getattr(reward_fn, "__name__", type(reward_fn).__name__)))
        self.fingerprint = weights_fingerprint(loaded.model)
        self.ref_model = None
        if cfg.method == "full":  # the reference: a frozen copy of the policy as it starts
            self.ref_model = copy.deepcopy(loaded.model).eval().requires_grad_(False)
        prepared = apply_method(loaded, cfg.tune_config())
        loaded.model = prepared.model
        self.trainable, self.total = prepared.trainable, prepared.total
        self.device = next(loaded.model.parameters()).device
        with torch.random.fork_rng(devices=[]):
            self.value_head = ValueHead(hidden_size(loaded.model)).to(self.device)
        self.policy_params = [p for p in loaded.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW([{"params": self.policy_params, "lr": cfg.learning_rate},
                                            {"params": list(self.value_head.parameters()),
                                             "lr": cfg.value_learning_rate}], weight_decay=0.0)
        self.kl_ctl = KLController(cfg.kl.init_coef, cfg.kl.mode, cfg.kl.target, cfg.kl.horizon)
        self.normalizer = normalizer if normalizer is not None else (RunningMoments() if cfg.normalize_rewards
                                                                      else None)
        if cfg.dense_rewards and self.normalizer is not None:
            raise LLMCycleError("dense_rewards cannot be combined with a reward normaliser (prefix reward "
                                "differences would be rescaled by statistics of whole responses); pass none")
        self.query_limit = input_limit(loaded, cfg.generation.settings(), cfg.generation.max_query_tokens)
        self.eos_ids: list[int] | None = None
        if cfg.kl.eos_coef > 0:
            self.eos_ids = sorted(eos_token_ids(loaded.model, loaded.tokenizer))
            if not self.eos_ids:
                raise ConfigError("kl.eos_coef: the policy has no end token (generation_config.eos_token_id or "
                                  "tokenizer.eos_token_id), so there is no probability of ending to anchor")
        self.temperature = cfg.generation.temperature if cfg.generation.do_sample else 1.0
        self.ptx: tuple[list[str], list[list[int]]] | None = None
        if cfg.ptx_coef > 0:
            pairs = _check_ptx(ptx_data)
            targets = target_ids(loaded.tokenizer, self.kind, [t for _, t in pairs])
            self.ptx = [p for p, _ in pairs], [t[:cfg.generation.max_new_tokens] for t in targets]

    @property
    def model(self) -> Any:
        return self.loaded.model

    # ---- generation and scoring -----------------------------------------------------------------

    def generate(self, prompts: Sequence[str], *, seed: int = 0, greedy: bool = False
                 ) -> tuple[list[str], list[list[int]]]:
        """Responses (texts and token ids, end token included) from the policy, through the engine."""
        self.model.eval()
        settings = self.cfg.generation.settings(seed=seed, greedy=greedy)
        results = generate_detailed(self.loaded, list(prompts), settings, batch_size=max(len(prompts), 1),
                                    max_input_tokens=self.query_limit, truncate=True)
        ids = [list(r.outputs[0].token_ids) or [self.loaded.tokenizer.pad_token_id] for r in results]
        return [r.text for r in results], ids

    def batch(self, prompts: Sequence[str], responses: Sequence[Sequence[int]]) -> Batch:
        return make_batch(self.loaded.tokenizer, self.kind, prompts, responses, self.query_limit, self.device)

    def reference_logp(self, b: Batch, temperature: float) -> torch.Tensor:
        """Logprobs of the response tokens under the frozen reference, (B, T)."""
        return self.reference_scores(b, temperature).logp

    def reference_scores(self, b: Batch, temperature: float) -> Any:
        """The frozen reference's ``Scores`` (logprobs; end-token logprobs when ``kl.eos_coef`` is on, the
        whole distributions when ``kl.loss_coef`` is)."""
        full = self.cfg.kl.loss_coef > 0
        with torch.no_grad():
            if self.ref_model is None:  # LoRA: the same weights, adapter switched off
                with self.model.disable_adapter():
                    return score(self.model, self.kind, b, temperature=temperature, eos_ids=self.eos_ids,
                                 full=full)
            return score(self.ref_model, self.kind, b, temperature=temperature, eos_ids=self.eos_ids, full=full)

    def sequence_kl(self, prompts: Sequence[str], responses: Sequence[Sequence[int]], temperature: float) -> float:
        """Mean over rollouts of the summed per-token KL estimate between policy and reference."""
        b = self.batch(prompts, responses)
        with torch.no_grad():
            logp = score(self.model, self.kind, b, temperature=temperature).logp
        kl = kl_penalty(logp, self.reference_logp(b, temperature), self.cfg.kl.estimator) * b.response_mask
        return float(kl.sum(1).mean())

    def rewards(self, prompts: list[str], responses: list[str]) -> list[float]:
        """The reward callable's scores, checked: one finite number per response."""
        raw = self.reward_fn(prompts, responses)
        scores = [float(s) for s in raw]
        if len(scores) != len(responses):
            raise LLMCycleError(f"reward {self.reward_name!r} returned {len(scores)} scores for "
                                f"{len(responses)} responses; return one per response, in order")
        bad = [i for i, s in enumerate(scores) if not math.isfinite(s)]
        if bad:
            raise LLMCycleError(f"reward {self.reward_name!r} returned a non-finite score ({scores[bad[0]]}) for "
                                f"response {bad[0]}: {responses[bad[0]]!r}")
        return scores

    # ---- one PPO step ---------------------------------------------------------------------------

    def rollout(self, prompts: list[str], step: int) -> Rollouts:
        """Sample, score and reward one batch; advantages not yet computed."""
        texts, ids = self.generate(prompts, seed=derive_seed(self.cfg.seed, "rollout", step) % (2**62))
        b = self.batch(prompts, ids)
        with torch.no_grad():
            s = score(self.model, self.kind, b, temperature=self.temperature, value_head=self.value_head,
                      entropy=True)
        ref_scores = self.reference_scores(b, self.temperature)
        ref = ref_scores.logp
        kl = kl_penalty(s.logp, ref, self.cfg.kl.estimator) * b.response_mask
        scores = torch.tensor(self.rewards(prompts, texts), dtype=torch.float32, device=self.device)
        dense = self.prefix_rewards(prompts, ids, scores.tolist(), b) if self.cfg.dense_rewards else None
        return Rollouts(prompts, texts, b, scores, s.logp, ref, s.values * b.response_mask, s.entropy, kl, dense,
                        ref_scores.eos_logp, ref_scores.logprobs)

    def prefix_rewards(self, prompts: list[str], ids: list[list[int]], scores: list[float], b: Batch
                       ) -> torch.Tensor:
        """``dense_rewards``: score every proper prefix of every response in one reward call; (B, T)."""
        tok = self.loaded.tokenizer
        lengths = [int(n) for n in b.response_mask.sum(1).tolist()]
        # decoded as the responses are (WordPiece spaces cleaned), so a prefix reads like the response it begins
        texts = [decode_text(tok, row[:k]) for row, n in zip(ids, lengths) for k in range(n)]
        owners = [i for i, n in enumerate(lengths) for _ in range(n)]
        values = self.rewards([prompts[i] for i in owners], texts) if texts else []
        potentials, at = [], 0
        for n, final in zip(lengths, scores):
            potentials.append(values[at:at + n] + [final])
            at += n
        return shaped_rewards(potentials, b.response_mask.shape[1]).to(self.device)

    def advantages(self, ro: Rollouts) -> None:
        """Per-token rewards (KL penalty + score at the end), GAE, whitening: fills ``ro``."""
        scores = ro.scores
        if self.normalizer is not None:
            normalized = self.normalizer.normalize(scores.tolist())  # folds the batch in first, then scales
            scores = torch.tensor(normalized, dtype=torch.float32, device=self.device)
        mask = ro.batch.response_mask
        if ro.dense is not None:
            rewards = (ro.dense - self.kl_ctl.coef * ro.kl) * mask
        else:
            rewards = token_rewards(scores, ro.kl, mask, self.kl_ctl.coef)
        adv, ret = gae(rewards, ro.values, mask, self.cfg.gamma, self.cfg.lam)
        ro.advantages = whiten(adv, mask) if self.cfg.whiten_advantages else adv
        ro.returns = ret

    def update(self, ro: Rollouts, step: int, value_only: bool = False) -> dict[str, float]:
        """``ppo_epochs`` passes of clipped-loss mini-batch updates; mean statistics over mini-batches.

        ``value_only`` (value warm-up): the value loss alone, and only the value head changes.
        """
        cfg, n = self.cfg, len(ro.prompts)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        totals: dict[str, float] = {}
        count = 0
        per_step = cfg.ppo_epochs * -(-n // cfg.mini_batch_size)
        for epoch in range(cfg.ppo_epochs):
            order = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(cfg.seed, "mb", step,
                                                                                          epoch)))
            for start in range(0, n, cfg.mini_batch_size):
                rows = order[start:start + cfg.mini_batch_size].to(self.device)
                ptx = None
                if self.ptx is not None and not value_only:  # this mini-batch's supervised pairs (seeded)
                    ptx = batch_indices(len(self.ptx[0]), cfg.mini_batch_size, (step - 1) * per_step + count + 1,
                                        derive_seed(cfg.seed, "ptx"))
                stats = self._minibatch(ro, rows, params, value_only, ptx)
                for k, v in stats.items():
                    totals[k] = totals.get(k, 0.0) + v
                count += 1
        return {k: v / max(count, 1) for k, v in totals.items()}

    def ptx_loss(self, rows: Sequence[int]) -> torch.Tensor:
        """Mean negative log-likelihood per target token of the ``ptx`` pairs ``rows`` (temperature 1)."""
        if self.ptx is None:
            raise LLMCycleError("ptx_loss: this run has no PPO-ptx pairs (ptx_coef is 0)")
        prompts, targets = self.ptx
        b = self.batch([prompts[i] for i in rows], [targets[i] for i in rows])
        logp = score(self.model, self.kind, b).logp
        return -masked_mean(logp, b.response_mask)

    def _minibatch(self, ro: Rollouts, rows: torch.Tensor, params: list[torch.Tensor],
                   value_only: bool = False, ptx_rows: Sequence[int] | None = None) -> dict[str, float]:
        cfg = self.cfg
        b = ro.batch.select(rows)
        mask = b.response_mask
        if value_only:  # the trunk builds no graph: only the head's gradient is computed
            for p in self.policy_params:
                p.requires_grad_(False)
            try:
                s = score(self.model, self.kind, b, temperature=self.temperature, value_head=self.value_head)
            finally:
                for p in self.policy_params:
                    p.requires_grad_(True)
            vf = value_loss(s.values, ro.values[rows], ro.returns[rows], mask, cfg.cliprange_value)
            self.optimizer.zero_grad(set_to_none=True)
            vf.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(list(self.value_head.parameters()),
                                                       cfg.max_grad_norm if cfg.max_grad_norm else math.inf)
            self.optimizer.step()
            return {"value_loss": float(vf.detach()), "grad_norm": float(grad_norm)}
        s = score(self.model, self.kind, b, temperature=self.temperature, value_head=self.value_head,
                  eos_ids=self.eos_ids, full=ro.ref_logprobs is not None)
        pg, stats = policy_loss(s.logp, ro.logp[rows], ro.advantages[rows], mask, cfg.cliprange)
        vf = value_loss(s.values, ro.values[rows], ro.returns[rows], mask, cfg.cliprange_value)
        loss = pg + cfg.vf_coef * vf
        if self.eos_ids is not None:
            eos_kl = masked_mean(bernoulli_kl(s.eos_logp, ro.ref_eos[rows]), mask)
            loss = loss + cfg.kl.eos_coef * eos_kl
            stats["eos_kl"] = float(eos_kl.detach())
        if ro.ref_logprobs is not None:
            kl_loss = masked_mean(full_kl(s.logprobs, ro.ref_logprobs[rows]), mask)
            loss = loss + cfg.kl.loss_coef * kl_loss
            stats["full_kl"] = float(kl_loss.detach())
        if ptx_rows is not None:
            ptx = self.ptx_loss(ptx_rows)
            loss = loss + cfg.ptx_coef * ptx
            stats["ptx_loss"] = float(ptx.detach())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm if cfg.max_grad_norm else math.inf)
        self.optimizer.step()
        return {"policy_loss": float(pg.detach()), "value_loss": float(vf.detach()), "grad_norm": float(grad_norm),
                **stats}

    def step(self, prompts: list[str], step: int) -> dict[str, Any]:
        """One PPO step on ``prompts``; returns its log record (``stopped`` set when ``kl_stop`` fired)."""
        t0 = time.perf_counter()
        ro = self.rollout(prompts, step)
        mask = ro.batch.response_mask
        seq_kl = float(ro.kl.sum(1).mean())
        record: dict[str, Any] = {
            "step": step, "reward_mean": float(ro.scores.mean()),
            "reward_std": float(ro.scores.std()) if len(ro.prompts) > 1 else 0.0,
            "kl": seq_kl, "kl_coef": self.kl_ctl.coef, "entropy": float(masked_mean(ro.entropy, mask)),
            "response_len": float(mask.sum(1).float().mean()),
        }
        if self.cfg.kl_stop is not None and seq_kl > self.cfg.kl_stop:
            log.warning("step %d: KL %.3f exceeds kl_stop=%s; stopping before updating on it", step, seq_kl,
                        self.cfg.kl_stop)
            record["stopped"] = "kl_stop"
        elif step <= self.cfg.value_warmup_steps:  # the policy stays as it is; the KL controller too
            self.advantages(ro)
            record.update(self.update(ro, step, value_only=True))
            record["value_warmup"] = True
        else:
            self.advantages(ro)
            record.update(self.update(ro, step))
            record["non_score_reward"] = float((-self.kl_ctl.coef * ro.kl).sum(1).mean())
            self.kl_ctl.update(seq_kl, len(ro.prompts))
        record["sample"] = ro.responses[0]
        record["seconds"] = round(time.perf_counter() - t0, 4)
        return record

    # ---- state for checkpoints ------------------------------------------------------------------

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The policy's trainable tensors by name (all weights for full, adapter weights for LoRA)."""
        return {n: p.detach().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def load_trainable_state(self, state: Mapping[str, torch.Tensor]) -> None:
        params = dict(self.model.named_parameters())
        missing = [n for n, p in params.items() if p.requires_grad and n not in state]
        if missing or any(n not in params for n in state):
            raise LLMCycleError(f"checkpoint does not fit this policy (missing {missing[:3]}, unexpected "
                                f"{[n for n in state if n not in params][:3]}); was it written by another model?")
        with torch.no_grad():
            for n, t in state.items():
                params[n].copy_(t)

    def state_dict(self) -> dict[str, Any]:
        norm = self.normalizer.state_dict() if hasattr(self.normalizer, "state_dict") else None
        return {"kl_controller": self.kl_ctl.state_dict(), "normalizer": norm, "fingerprint": self.fingerprint}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.kl_ctl.load_state_dict(state["kl_controller"])
        if state.get("normalizer") is not None and hasattr(self.normalizer, "load_state_dict"):
            self.normalizer.load_state_dict(state["normalizer"])


def weights_fingerprint(model: Any) -> str:
    """A hash of every parameter and buffer: tells whether a resumed run got the policy it started with."""
    h = hashlib.blake2b(digest_size=16)
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            h.update(name.encode())
            h.update(t.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _ensure_pad_token(tok: Any) -> None:
    if tok.pad_token_id is None:
        if tok.eos_token is None:
            raise LLMCycleError("the tokenizer has neither a pad nor an end token; batching rollouts needs one")
        tok.pad_token = tok.eos_token


# ---- the run ------------------------------------------------------------------------------------


@dataclass
class PPOResult:
    """What a run did; ``to_dict`` is what ``ppo_result.json`` holds."""

    steps: int  # last step done
    log: list[dict[str, Any]]
    final_kl: float | None
    kl_coef: float
    stopped: str | None  # None, "kl_stop" or "monitor" (action stop or rollback)
    monitor: list[dict[str, Any]]  # the baseline (step 0) and every later check
    paths: dict[str, str]
    method: str
    trainable: int
    total: int
    seconds: float
    resumed_from: str | None = None
    loaded: Any = field(default=None, repr=False)  # the trained policy (a LoadedModel; not serialised)
    trainer: Any = field(default=None, repr=False)  # the PPOTrainer (value head, reference; not serialised)
    rolled_back_to: int | None = None  # monitor action "rollback": the step whose policy the run ended with

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("steps", "final_kl", "kl_coef", "stopped", "monitor", "paths",
                                              "method", "trainable", "total", "seconds", "resumed_from",
                                              "rolled_back_to")}


def _check_inputs(prompts: Sequence[str], references: Sequence[Any] | None, name: str) -> list[str]:
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise LLMCycleError(f"{name}: expected a list of strings")
    if not prompts:
        raise LLMCycleError(f"{name}: is empty; PPO needs at least one prompt")
    if references is not None and len(references) != len(prompts):
        raise LLMCycleError(f"{name}: {len(prompts)} prompts but {len(references)} references; pass one per prompt")
    return list(prompts)


def _check_ptx(pairs: Sequence[Any] | None) -> list[tuple[str, str]]:
    """``ptx_data`` checked: a non-empty list of (prompt, target) string pairs."""
    if not pairs:
        raise ConfigError("ptx_coef: PPO-ptx needs ptx_data, (prompt, target) pairs from the data the policy was "
                          "fine-tuned on; pass train_ppo(ptx_data=...) or set ptx_coef: 0")
    out = []
    for i, pair in enumerate(pairs):
        if (isinstance(pair, str) or len(pair) != 2 or not all(isinstance(x, str) for x in pair)
                or not pair[1].strip()):
            raise LLMCycleError(f"ptx_data: row {i} is {pair!r}; expected a (prompt, target) pair of strings with a "
                                "non-empty target")
        out.append((pair[0], pair[1]))
    return out


def _check_same_run(out: Path, cfg: PPOConfig, prompts: list[str], resume: bool,
                    ptx_data: Sequence[tuple[str, str]] | None = None) -> None:
    """A run folder resumes only with the config, prompts (and ptx pairs) it started with; ``resume=False``
    starts over."""
    data = {"prompts": hashlib.sha256("\x00".join(prompts).encode()).hexdigest()}
    if cfg.ptx_coef > 0 and ptx_data:
        data["ptx"] = hashlib.sha256("\x00".join(f"{p}\x01{t}" for p, t in ptx_data).encode()).hexdigest()

    def same_data(old: dict[str, Any]) -> None:
        if old.get("prompts") != data["prompts"] or old.get("ptx") != data.get("ptx"):
            what = "prompts" if old.get("prompts") != data["prompts"] else "ptx_data"
            raise LLMCycleError(f"{out} holds checkpoints of a PPO run on other {what}; use a new out_dir or "
                                "resume=False")

    check_same_run(out, "ppo_config.json", cfg.resume_key(), PPOConfig().resume_key(), resume=resume,
                   what="PPO run", section="config", extra=data | {"full_config": cfg.model_dump(mode="json")},
                   check_saved=same_data)


def _eta(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def train_ppo(loaded: Any, prompts: Sequence[str], reward_fn: RewardFn, cfg: PPOConfig | Mapping[str, Any],
              out_dir: str | Path, *, references: Sequence[Any] | None = None,
              eval_prompts: Sequence[str] | None = None, eval_references: Sequence[Any] | None = None,
              normalizer: Any | None = None, resume: bool = True,
              on_step: Callable[[dict[str, Any]], None] | None = None,
              ptx_data: Sequence[tuple[str, str]] | None = None) -> PPOResult:
    """Align ``loaded`` (a ``LoadedModel``, trained in place) to ``reward_fn`` with PPO; see the module doc.

    Args:
        loaded: the policy from ``llmcycle.models.load_model`` (seq2seq or causal), as it is at the start
            of the run (also when resuming: it becomes the reference).
        prompts: the query prompts; each step takes ``batch_size`` of them in a seeded order.
        reward_fn: any callable ``(prompts, responses) -> list[float]`` (higher is better), e.g. a
            ``llmcycle.alignment.rewards`` source.
        cfg: a ``PPOConfig`` or its fields as a mapping (errors name the field).
        out_dir: the run folder (resumed when it holds checkpoints).
        references: references per prompt (only used by the monitor when there are no eval prompts).
        eval_prompts, eval_references: the monitor's held-out prompts and their references.
        normalizer: optional reward normaliser such as ``llmcycle.alignment.rewards.RewardNormalizer``
            (duck-typed: ``normalize(scores)`` folds the batch into its statistics and returns the scaled
            scores; its ``state_dict`` is checkpointed); default: an internal running mean/std
            (``ppo_ops.RunningMoments``, same semantics) when ``cfg.normalize_rewards``.
        resume: continue from the newest complete checkpoint under ``out_dir`` (False: start over). Only
            ``steps`` and bookkeeping fields (log_every, save_every, keep_checkpoints, save_model) may change
            between the runs; a run that stopped early (``kl_stop``, monitor) stays stopped.
        on_step: called with each step's record, after that step's checkpoint (if any) is written.
        ptx_data: (prompt, target) pairs from the policy's fine-tuning data, for ``cfg.ptx_coef`` > 0
            (PPO-ptx; ignored when it is 0).
    """
    start = time.perf_counter()
    cfg = cfg if isinstance(cfg, PPOConfig) else PPOConfig.from_dict(dict(cfg), where="ppo")
    prompts = _check_inputs(prompts, references, "prompts")
    if eval_prompts is not None:
        _check_inputs(eval_prompts, eval_references, "eval_prompts")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.ptx_coef > 0:
        ptx_data = _check_ptx(ptx_data)
    _check_same_run(out, cfg, prompts, resume, ptx_data)
    trainer = PPOTrainer(loaded, cfg, reward_fn, normalizer, ptx_data)
    log.info("ppo %s on %s: trainable %s of %s parameters; reward %s", cfg.method, loaded.source,
             f"{trainer.trainable:,}", f"{trainer.total:,}", trainer.reward_name)
    monitor = (RewardHackingMonitor.build(cfg.monitor, prompts, references, eval_prompts, eval_references, cfg.seed)
               if cfg.monitor.every else None)
    records, monitor_log, done, stopped, resumed = _restore(out, trainer, monitor)
    rollback = monitor is not None and cfg.monitor.action == "rollback"
    last_good = out / "monitor_last_good.pt"
    if monitor is not None and not monitor_log:
        monitor_log.append(monitor.evaluate(trainer, 0))
        if rollback:  # the start is always a state to fall back on
            _save_good(last_good, trainer, 0)
    t_loop, first = time.perf_counter(), done
    tracking = Tracking(cfg.report_to, out / "tracking", "ppo", cfg.model_dump(mode="json"))
    for step in range(done + 1, cfg.steps + 1):
        if stopped:
            break
        record = trainer.step([prompts[i] for i in batch_indices(len(prompts), cfg.batch_size, step, cfg.seed)],
                              step)
        stopped = record.get("stopped")
        if monitor is not None and step % cfg.monitor.every == 0:
            check = monitor.evaluate(trainer, step)
            record["monitor"] = check
            monitor_log.append(check)
            if check["warnings"] and cfg.monitor.action in ("stop", "rollback"):
                stopped = record["stopped"] = "monitor"
                if rollback:
                    back = record["rolled_back_to"] = _load_good(last_good, trainer)
                    log.warning("monitor, step %d: rolled the policy back to step %d, %s", step, back,
                                _rollback_target(back, monitor_log))
            elif rollback:
                _save_good(last_good, trainer, step)
        records.append(record)
        done = step
        tracking.log({k: v for k, v in record.items() if k != "step"}, step)  # the numbers of every step
        if step % cfg.log_every == 0 or step == cfg.steps or stopped:
            per_step = (time.perf_counter() - t_loop) / (step - first)
            log.info("ppo step %d/%d  reward %.4f +- %.4f  kl %.4f  coef %.4f  len %.1f  %.2fs/step  ETA %s",
                     step, cfg.steps, record["reward_mean"], record["reward_std"], record["kl"], record["kl_coef"],
                     record["response_len"], per_step, _eta(per_step * (cfg.steps - step)))
        if step % cfg.save_every == 0 or step == cfg.steps or stopped:
            save_checkpoint(out / "checkpoints", step, trainer,
                            {"log": records, "monitor": monitor_log, "stopped": stopped,
                             "monitor_state": monitor.state_dict() if monitor else None}, cfg.keep_checkpoints)
        if on_step is not None:
            on_step(record)
    tracking.finish()
    trainer.model.eval()
    result = PPOResult(done, records, records[-1]["kl"] if records else None, trainer.kl_ctl.coef, stopped,
                       monitor_log, {}, cfg.method, trainer.trainable, trainer.total,
                       round(time.perf_counter() - start, 3), resumed, loaded, trainer,
                       records[-1].get("rolled_back_to") if records else None)
    _write_outputs(out, result, cfg)
    return result


def _rollback_target(step: int, checks: list[dict[str, Any]]) -> str:
    """What the policy of ``step`` is: the last check that passed, or the start of the run (whose own check may
    have warned: the start is kept to fall back on whatever it measured)."""
    check = next((c for c in checks if c.get("step") == step), None)
    if step == 0:
        if check is not None and check.get("warnings"):
            return f"the start of the run (no check passed; the start's own check warned too: {check['warnings'][0]})"
        return "the start of the run (no later check passed)"
    return "the last check that passed"


def _save_good(path: Path, trainer: PPOTrainer, step: int) -> None:
    """Keep the policy (and value head) of a monitor check that passed, atomically, for ``action: rollback``.

    Written before the step's checkpoint: if a run is killed in between, the resumed run redoes the
    step and (deterministically) writes the same state again.
    """
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"step": step, "policy": trainer.trainable_state(), "value_head": trainer.value_head.state_dict()},
               tmp)
    tmp.replace(path)


def _load_good(path: Path, trainer: PPOTrainer) -> int:
    """Restore what ``_save_good`` kept; returns its step."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    trainer.load_trainable_state(state["policy"])
    trainer.value_head.load_state_dict(state["value_head"])
    return int(state["step"])


def _restore(out: Path, trainer: PPOTrainer, monitor: RewardHackingMonitor | None
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, str | None, str | None]:
    """(log, monitor log, last step done, stop reason, checkpoint path) from the newest checkpoint, if any."""
    ckpt = last_checkpoint(out / "checkpoints", prefix=PREFIX)
    if ckpt is None:
        return [], [], 0, None, None
    state = load_checkpoint(ckpt, trainer)
    if state.get("fingerprint") != trainer.fingerprint:
        raise LLMCycleError(f"{ckpt}: this run started from other weights; resume with the policy as it was "
                            "loaded at the start of the run (the reference is built from it)")
    if monitor is not None and state.get("monitor_state"):
        monitor.load_state_dict(state["monitor_state"])
    log.info("ppo: resuming from %s (step %d)%s", ckpt, state["step"],
             f"; the run had stopped ({state['stopped']})" if state.get("stopped") else "")
    return state["log"], state.get("monitor") or [], int(state["step"]), state.get("stopped"), str(ckpt)


def _write_outputs(out: Path, result: PPOResult, cfg: PPOConfig) -> None:
    import warnings

    paths = {"log": str(atomic_write_json(out / "ppo_log.json", result.log))}
    if result.log:
        steps = [r["step"] for r in result.log]
        paths["reward_plot"] = str(line_chart({"reward mean": list(zip(steps, [r["reward_mean"] for r in result.log]))},
                                              out / "reward.png", title="PPO reward per step", ylabel="reward"))
        kl = {"KL (sequence, mean)": list(zip(steps, [r["kl"] for r in result.log]))}
        paths["kl_plot"] = str(line_chart(kl, out / "kl.png", title="KL to the reference per step", ylabel="nats"))
    if cfg.save_model:
        with warnings.catch_warnings():  # peft looks for a hub config of builtin: bases; there is none
            warnings.filterwarnings("ignore", message="Could not find a config file in")
            paths["model"] = str(save_policy(result.trainer, out / "model"))
        tail = result.log[-5:]
        write_model_card(out / "model", name="aligned-ppo", base=adapter_base(out / "model") or result.loaded.source,
                         stage="align", method="ppo", settings=cfg.model_dump(mode="json"), metrics={
                             "PPO steps": result.steps, "prompts per step": cfg.batch_size,
                             "reward, first step": result.log[0]["reward_mean"] if result.log else None,
                             "reward, last 5 steps": sum(r["reward_mean"] for r in tail) / len(tail) if tail else None,
                             "KL to the reference, last step": result.final_kl, "KL coefficient": result.kl_coef,
                             "stopped by": result.stopped, "trainable parameters": f"{result.trainable:,} of "
                                                                                   f"{result.total:,}",
                             "training seconds": result.seconds})
    result.paths = paths
    atomic_write_json(out / "ppo_result.json", result.to_dict() | {"config": cfg.model_dump(mode="json")})
