"""The numerics of PPO, as small pure functions over padded (B, T) tensors and a mask.

Every (B, T) tensor here holds one row per rollout and one column per response token; ``mask``
is 1 on real response tokens (up to and including the end token) and 0 on padding, which only
ever comes *after* a row's tokens. Masked positions never contribute to a mean, a variance, a
loss or an advantage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over positions where ``mask`` is 1 (over ``dim``, or everything)."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of ``x`` over masked positions (Bessel-corrected when ``unbiased``, as ``torch.var``)."""
    mean = masked_mean(x, mask)
    n = mask.to(x.dtype).sum()
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased and n > 1:
        var = var * n / (n - 1)
    return var


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """``(x - mean) / std`` over masked positions (sample std); masked positions become 0."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask.to(x.dtype)


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token, non-negative estimate of KL(policy || reference) on tokens sampled from the policy.

    With ``r = ref_logp - logp``: ``k3`` is ``exp(r) - 1 - r`` (>= 0 since e^r >= 1 + r; unbiased,
    low variance; Schulman 2020), ``abs`` is ``|r|``, ``squared`` is ``r^2 / 2``. All are exactly 0
    where the two logprobs agree. Shapes (B, T) -> (B, T).
    """
    r = ref_logp - logp
    if estimator == "k3":
        return (torch.expm1(r) - r).clamp(min=0.0)  # clamp: rounding only, the value is >= 0 analytically
    if estimator == "abs":
        return r.abs()
    if estimator == "squared":
        return 0.5 * r.square()
    raise ValueError(f"unknown KL estimator {estimator!r}; valid: k3, abs, squared")


def bernoulli_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """KL between two Bernoulli distributions given as log P(event): ``p log(p/q) + (1-p) log((1-p)/(1-q))``.

    Elementwise, >= 0, exactly 0 where they agree; here the event is "the response ends at this
    position" under the policy (``logp``) and the reference.
    """
    p = logp.exp()
    log_not_p = torch.log1p(-p.clamp(max=1 - 1e-7))
    log_not_q = torch.log1p(-ref_logp.exp().clamp(max=1 - 1e-7))
    return (p * (logp - ref_logp) + (1 - p) * (log_not_p - log_not_q)).clamp(min=0.0)  # rounding only


def full_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Exact ``KL(p || q) = sum_v p_v (log p_v - log q_v)`` of two next-token distributions given as
    log-probabilities over the vocabulary, (..., V) -> (...); >= 0, exactly 0 where they agree."""
    return (logprobs.exp() * (logprobs - ref_logprobs)).sum(-1).clamp(min=0.0)  # rounding only


def token_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """Per-token rewards: ``-kl_coef * kl`` on every response token, plus the score on the last one.

    ``scores`` (B,), ``kl`` and ``mask`` (B, T) -> (B, T), 0 on padding.
    """
    rewards = -kl_coef * kl * mask
    last = mask.long().sum(1).clamp(min=1) - 1  # (B,) index of each row's last token
    return rewards.scatter_add(1, last.unsqueeze(1), scores.to(rewards.dtype).unsqueeze(1))


def shaped_rewards(potentials: Sequence[Sequence[float]], width: int) -> torch.Tensor:
    """Dense per-token rewards from the reward of every prefix (potential-based shaping).

    ``potentials[i]`` holds the reward of response ``i``'s first 0, 1, ..., n tokens (n + 1 values,
    the last one its full score). Token ``t`` earns ``phi[t + 1] - phi[t]``, the change its
    arrival made, so a row sums to ``score - reward("")``: the return of every response is its
    score up to a constant, and shaping of this form leaves the optimal policy unchanged (Ng et al.,
    1999), while the credit lands on the tokens that moved the score. (B, width), 0 after a row.
    """
    out = torch.zeros((len(potentials), width), dtype=torch.float32)
    for i, phi in enumerate(potentials):
        n = min(len(phi) - 1, width)
        if n > 0:
            out[i, :n] = torch.tensor(phi[1:n + 1], dtype=torch.float32) - torch.tensor(phi[:n], dtype=torch.float32)
    return out


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al., 2016): ``(advantages, returns)``, (B, T) each.

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` (``V`` = 0 after a row's last token) and
    ``A_t = delta_t + gamma * lam * A_{t+1}``; returns are ``A + V``. Padding gives 0.
    """
    m = mask.to(values.dtype)
    values, rewards = values * m, rewards * m
    advantages = torch.zeros_like(values)
    next_adv = torch.zeros_like(values[:, 0])  # (B,)
    next_value = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = (delta + gamma * lam * next_adv) * m[:, t]
        advantages[:, t] = next_adv
        next_value = values[:, t]
    return advantages, (advantages + values) * m


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                cliprange: float) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's clipped surrogate ``max(-A r, -A clip(r, 1-c, 1+c))``, token mean; and its statistics.

    Statistics: ``clip_frac`` (share of tokens where the clipped term was chosen) and ``approx_kl``
    (``mean((logp - old_logp)^2) / 2``, Schulman's k2 estimate of KL(old || new)).
    """
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {"clip_frac": float(masked_mean((clipped > unclipped).to(logp.dtype), mask)),
                 "approx_kl": float(masked_mean(0.5 * log_ratio.square(), mask))}
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               cliprange_value: float) -> torch.Tensor:
    """Clipped value loss ``0.5 * mean(max((V - R)^2, (V_clip - R)^2))``, V_clip = old +- cliprange_value."""
    clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    return 0.5 * masked_mean(torch.maximum((values - returns).square(), (clipped - returns).square()), mask)


@dataclass
class KLController:
    """The KL coefficient beta: fixed, or adaptive (Ziegler et al., 2019).

    Adaptive: after a step whose mean sequence KL was ``kl``, over ``n_steps`` rollouts,
    ``beta *= 1 + clip(kl / target - 1, -0.2, 0.2) * n_steps / horizon``: beta grows while the KL
    is above target and shrinks below it.
    """

    coef: float
    mode: str = "adaptive"
    target: float = 6.0
    horizon: float = 10000.0

    def update(self, kl: float, n_steps: int) -> float:
        """Move the coefficient after a step (no-op when fixed); returns the new coefficient."""
        if self.mode == "adaptive":
            error = min(max(kl / self.target - 1.0, -0.2), 0.2)
            self.coef *= 1.0 + error * n_steps / self.horizon
        return self.coef

    def state_dict(self) -> dict[str, Any]:
        return {"coef": self.coef, "mode": self.mode, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.coef = float(state["coef"])


class RunningMoments:
    """Running mean and std of every score seen (Chan et al.'s parallel update), to scale rewards.

    The duck type of ``llmcycle.alignment.rewards.RewardNormalizer``, with its semantics:
    ``normalize(scores)`` first folds the batch into the statistics, then returns
    ``(x - mean) / max(std, eps)`` (population std); ``state_dict`` / ``load_state_dict`` resume it.
    """

    def __init__(self, eps: float = 1e-8):
        self.mean, self.m2, self.count, self.eps = 0.0, 0.0, 0, eps

    def update(self, xs: Sequence[float]) -> None:
        """Fold a batch of scores into the running statistics."""
        n = len(xs)
        if n == 0:
            return
        b_mean = sum(xs) / n
        b_m2 = sum((x - b_mean) ** 2 for x in xs)
        total = self.count + n
        delta = b_mean - self.mean
        self.m2 += b_m2 + delta * delta * self.count * n / total
        self.mean += delta * n / total
        self.count = total

    def normalize(self, xs: Sequence[float], update: bool = True) -> list[float]:
        """``(x - mean) / std`` after folding ``xs`` into the statistics (when ``update``)."""
        if update:
            self.update(xs)
        std = math.sqrt(self.m2 / self.count) if self.count else 0.0
        scale = max(std, self.eps)
        return [(x - self.mean) / scale for x in xs]

    def state_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "m2": self.m2, "count": self.count, "eps": self.eps}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.mean, self.m2, self.count = float(state["mean"]), float(state["m2"]), int(state["count"])
        self.eps = float(state.get("eps", self.eps))
