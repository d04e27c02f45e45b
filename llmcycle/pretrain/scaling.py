"""Scaling laws measured and fitted: a sweep of model sizes x compute budgets, and the fit of L(N, D).

- **Sweep** (Chinchilla's approach 2, IsoFLOP profiles; Hoffmann et al. 2022): for each compute budget C and
  each model size N, train on D = C / (6 N) tokens with a cosine schedule matched to D, and measure the
  held-out loss. Each (N, C) is a ``pretrain`` sub-run of its own under ``runs/``, resumable: a finished
  one is read back, a killed one continues from its checkpoint.
- **IsoFLOP minima** (approach 2): per budget, a parabola of loss against log N gives the loss-optimal N(C).
- **Parametric fit** (approach 3): ``L(N, D) = E + A / N^alpha + B / D^beta`` by minimising the Huber loss
  (delta 1e-3) of log-loss residuals with L-BFGS-B from a grid of starting points, as the paper does; the
  uncertainty of each parameter is its spread over bootstrap resamples of the runs.
- **Compute-optimal allocation** for a budget C from the fit: ``N* = G (C/6)^a``, ``D* = G^-1 (C/6)^b`` with
  ``a = beta / (alpha + beta)``, ``b = alpha / (alpha + beta)``, ``G = (alpha A / (beta B))^(1 / (alpha +
  beta))``, set beside Chinchilla's 20 tokens per parameter (``llmcycle.estimate.compute``).
- **Held-out check**: a model larger than any in the fit, trained on its own budget, whose measured loss
  the fit predicts before it is seen.

SciPy's optimiser does the fitting; the formulas are the paper's, written here because no maintained
library fits scaling laws.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from pydantic import Field, model_validator

from llmcycle.core.config import StageConfig
from llmcycle.core.errors import ConfigError
from llmcycle.estimate.compute import CHINCHILLA_TOKENS_PER_PARAM, chinchilla_tokens

log = logging.getLogger("llmcycle")


class SizeOptions(StageConfig):
    """One model size of the sweep (the family, context and vocabulary are the sweep's)."""

    layers: int = Field(..., gt=0, description="Transformer blocks.")
    width: int = Field(..., gt=0, description="Hidden size; a multiple of heads.")
    heads: int = Field(4, gt=0, description="Attention heads.")

    @property
    def name(self) -> str:
        return f"L{self.layers}-d{self.width}"


def _default_sizes() -> list[SizeOptions]:
    return [SizeOptions(layers=2, width=128, heads=2), SizeOptions(layers=3, width=192, heads=3),
            SizeOptions(layers=4, width=256, heads=4), SizeOptions(layers=6, width=320, heads=5)]


class ScalingConfig(StageConfig):
    """A scaling-law sweep: model sizes x compute budgets (IsoFLOP), the fit of L(N, D), a held-out check."""

    family: str = Field("gpt2", pattern="^(gpt2|llama)$", description="gpt2 or llama: the causal family swept.")
    sizes: list[SizeOptions] = Field(default_factory=_default_sizes, min_length=3, description="Model sizes of "
                                     "the sweep (at least 3, so each budget's IsoFLOP profile has a minimum).")
    budgets: list[float] = Field([2e12, 6e12, 1.8e13], min_length=2, description="Training compute budgets C in "
                                 "FLOPs; each size trains on D = C / (6 N) tokens.")
    heldout: SizeOptions | None = Field(
        default_factory=lambda: SizeOptions(layers=8, width=384, heads=6), description="A model larger than any "
        "in the sweep, trained outside the fit, whose loss the fit predicts; None: no check.")
    heldout_budget: float | None = Field(None, gt=0, description="The held-out model's budget; default: the "
                                         "largest of budgets.")
    target_budget: float | None = Field(None, gt=0, description="The budget whose compute-optimal N* and D* are "
                                        "reported; default: the largest of budgets.")
    context: int = Field(128, gt=1, description="Tokens per training block (and positions of every model).")
    ffn_mult: float = Field(4.0, gt=0, description="Feed-forward size as a multiple of width.")
    tokenizer: str | None = Field(None, min_length=1, description="A tokenizer folder (e.g. from `llmcycle "
                                  "tokenizer train`); default: the builtin one.")
    batch_size: int = Field(8, gt=0, description="Blocks per optimizer step.")
    learning_rate: float = Field(2e-3, gt=0, description="Peak learning rate (cosine to 0 over each run).")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Fraction of each run's steps of warmup.")
    eval_blocks: int = Field(64, gt=0, description="Held-out blocks the loss is measured on (validation split).")
    min_steps: int = Field(10, gt=0, description="A (size, budget) pair with fewer optimizer steps is refused "
                           "before any work (too few to mean anything).")
    bootstrap: int = Field(200, ge=0, description="Bootstrap resamples for the fit's uncertainty (0: none).")
    text: str = Field("input", pattern="^(input|references|both)$", description="Which text of the data's rows "
                      "is the corpus.")
    seed: int = Field(0, description="Seed of every sub-run.")

    @model_validator(mode="after")
    def _check(self) -> ScalingConfig:
        for i, s in enumerate([*self.sizes, *([self.heldout] if self.heldout else [])]):
            if s.width % s.heads:
                where = f"sizes[{i}]" if i < len(self.sizes) else "heldout"
                raise ValueError(f"{where}: width ({s.width}) must be a multiple of heads ({s.heads})")
        if any(b <= 0 for b in self.budgets):
            raise ValueError("budgets: every budget must be positive")
        return self


def count_params(config: Any) -> int:
    """Parameters of a causal model of ``config`` (tied weights once), without allocating any."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


@dataclass
class Fit:
    """``L(N, D) = E + A / N^alpha + B / D^beta`` and, per parameter, its bootstrap standard deviation."""

    E: float
    A: float
    alpha: float
    B: float
    beta: float
    huber: float
    std: dict[str, float] | None = None

    def predict(self, n: float, d: float) -> float:
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    def optimal(self, flops: float) -> tuple[float, float]:
        """(N*, D*) minimising L under 6 N D = ``flops``."""
        a, b = self.beta / (self.alpha + self.beta), self.alpha / (self.alpha + self.beta)
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1 / (self.alpha + self.beta))
        return g * (flops / 6) ** a, (flops / 6) ** b / g

    def params(self) -> dict[str, float]:
        return {"E": self.E, "A": self.A, "alpha": self.alpha, "B": self.B, "beta": self.beta}


GRID = {"alpha": (0.1, 0.4, 0.8), "beta": (0.1, 0.4, 0.8), "e": (-1.0, 0.5, 1.5), "a": (0.0, 5.0, 10.0),
        "b": (0.0, 5.0, 10.0)}
"""Starting points of the fit (log A = a, log B = b, log E = e), the paper's grid coarsened."""


def _objective(theta: Any, log_n: Any, log_d: Any, log_l: Any, delta: float) -> Any:
    import numpy as np
    from scipy.special import logsumexp

    a, b, e, alpha, beta = theta
    pred = logsumexp(np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)]), axis=0)
    r = pred - log_l
    small = np.abs(r) <= delta
    return float(np.sum(np.where(small, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))))


def fit_scaling_law(n: Sequence[float], d: Sequence[float], loss: Sequence[float], *, delta: float = 1e-3,
                    bootstrap: int = 0, seed: int = 0) -> Fit:
    """Approach 3: the Huber fit of log L over a grid of starting points (L-BFGS-B), with bootstrap spreads."""
    import numpy as np
    from scipy.optimize import minimize

    if not (len(n) == len(d) == len(loss)) or len(n) < 5:
        raise ConfigError(f"scaling: the fit needs at least 5 runs with N, D and loss (got {len(n)})")
    log_n, log_d, log_l = np.log(np.asarray(n, float)), np.log(np.asarray(d, float)), np.log(np.asarray(loss, float))
    bounds = [(-10, 40), (-10, 40), (-5, 5), (0.0, 3.0), (0.0, 3.0)]

    def solve(idx: Any, starts: list[Any]) -> Any:
        best = None
        for x0 in starts:
            res = minimize(_objective, x0, args=(log_n[idx], log_d[idx], log_l[idx], delta), method="L-BFGS-B",
                           bounds=bounds)
            if best is None or res.fun < best.fun:
                best = res
        return best

    grid = [np.array([a, b, e, al, be]) for a, b, e, al, be in itertools.product(
        GRID["a"], GRID["b"], GRID["e"], GRID["alpha"], GRID["beta"])]
    every = np.arange(len(n))
    best = solve(every, grid)
    a, b, e, alpha, beta = best.x
    fit = Fit(math.exp(e), math.exp(a), alpha, math.exp(b), beta, float(best.fun))
    if bootstrap:
        rng = np.random.default_rng(seed)
        draws = []
        for _ in range(bootstrap):
            idx = rng.integers(0, len(n), len(n))
            if len(set(idx.tolist())) < 5:
                continue
            x = solve(idx, [best.x]).x
            draws.append([math.exp(x[2]), math.exp(x[0]), x[3], math.exp(x[1]), x[4]])
        if draws:
            spread = np.std(np.array(draws), axis=0)
            fit.std = dict(zip(("E", "A", "alpha", "B", "beta"), (float(s) for s in spread)))
    return fit


def isoflop_minima(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Approach 2: per budget, the vertex of a parabola of loss against log N (``inside``: whether it lies within
    the sizes swept, otherwise the profile has no minimum there and the vertex is an extrapolation)."""
    import numpy as np

    out = []
    for budget in sorted({r["budget"] for r in runs}):
        group = sorted((r for r in runs if r["budget"] == budget), key=lambda r: r["params"])
        x = np.log([r["params"] for r in group])
        y = np.array([r["loss"] for r in group])
        if len(group) < 3:
            continue
        c2, c1, c0 = np.polyfit(x, y, 2)
        if c2 <= 0:
            out.append({"budget": budget, "n_opt": None, "inside": False, "note": "no minimum (loss not convex)"})
            continue
        vertex = -c1 / (2 * c2)
        n_opt = float(math.exp(vertex))
        out.append({"budget": budget, "n_opt": n_opt, "d_opt": budget / (6 * n_opt),
                    "loss_opt": float(c0 + c1 * vertex + c2 * vertex**2), "inside": bool(x.min() <= vertex <= x.max())})
    return out


def optimum_table(fit: Fit, budget: float) -> dict[str, float]:
    """The fit's N*, D* and tokens per parameter at ``budget`` beside Chinchilla's 20-tokens-per-parameter rule."""
    n_star, d_star = fit.optimal(budget)
    n_chin = math.sqrt(budget / (6 * CHINCHILLA_TOKENS_PER_PARAM))
    return {"budget": budget, "n_opt": n_star, "d_opt": d_star, "tokens_per_param": d_star / n_star,
            "chinchilla_n": n_chin, "chinchilla_d": chinchilla_tokens(n_chin),
            "chinchilla_tokens_per_param": CHINCHILLA_TOKENS_PER_PARAM,
            "predicted_loss": fit.predict(n_star, d_star)}


def plot_scaling(runs: Sequence[dict[str, Any]], fit: Fit | None, path: Path,
                 heldout: dict[str, Any] | None = None) -> Path:
    """Loss against compute, one line per model size, and the fit's compute-optimal frontier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for params in sorted({r["params"] for r in runs}):
        pts = sorted((r["flops"], r["loss"]) for r in runs if r["params"] == params)
        ax.plot(*zip(*pts), marker="o", markersize=4, label=f"N = {params / 1e6:.2f}M")
    if heldout:
        ax.scatter([heldout["flops"]], [heldout["measured_loss"]], marker="*", s=120, color="black",
                   label=f"held out, N = {heldout['params'] / 1e6:.2f}M")
        ax.scatter([heldout["flops"]], [heldout["predicted_loss"]], marker="x", s=60, color="black",
                   label="its prediction")
    if fit is not None:
        cs = np.geomspace(min(r["flops"] for r in runs) / 2, max(r["flops"] for r in runs) * 4, 60)
        ax.plot(cs, [fit.predict(*fit.optimal(c)) for c in cs], "k--", linewidth=1, label="fit: compute-optimal")
    ax.set_xscale("log")
    ax.set_xlabel("training compute C = 6ND (FLOPs)")
    ax.set_ylabel("held-out loss (nats per token)")
    ax.set_title("Loss against compute per model size")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path


def plot_isoflop(runs: Sequence[dict[str, Any]], minima: Sequence[dict[str, Any]], path: Path) -> Path:
    """IsoFLOP profiles: loss against N, one line per budget, with each parabola's minimum."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for budget in sorted({r["budget"] for r in runs}):
        pts = sorted((r["params"], r["loss"]) for r in runs if r["budget"] == budget)
        line = ax.plot(*zip(*pts), marker="o", markersize=4, label=f"C = {budget:.2g}")[0]
        m = next((m for m in minima if m["budget"] == budget and m.get("n_opt")), None)
        if m:
            ax.axvline(m["n_opt"], color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("held-out loss (nats per token)")
    ax.set_title("IsoFLOP profiles (dotted: each budget's loss-optimal N)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_json(path: Path, data: Any) -> None:
    from llmcycle.core.files import atomic_write_json

    atomic_write_json(path, json.loads(json.dumps(data, default=lambda o: asdict(o))))


def sub_config(cfg: ScalingConfig, size: SizeOptions, budget: float, params: int) -> Any:
    """The ``pretrain`` config of one (size, budget) run: D = C / (6 N) tokens, cosine to 0 over them."""
    from llmcycle.pretrain.config import PretrainConfig

    return PretrainConfig.from_dict({
        "init": "scratch", "tokenizer": cfg.tokenizer, "general_text": None,
        "architecture": {"family": cfg.family, "layers": size.layers, "width": size.width, "heads": size.heads,
                         "context": cfg.context, "ffn_mult": cfg.ffn_mult},
        "block_size": cfg.context, "max_tokens": max(1, int(budget / (6 * params))), "batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate, "warmup_ratio": cfg.warmup_ratio, "scheduler": "cosine",
        "eval_blocks": cfg.eval_blocks, "save_every": 100, "keep_checkpoints": 1, "seed": cfg.seed}, where="scaling")


def plan_sweep(cfg: ScalingConfig) -> list[dict[str, Any]]:
    """Every run of the sweep (and the held-out one last) with its N, D and steps; refuses, before any work, a
    pair with fewer than ``min_steps`` steps."""
    from llmcycle.pretrain.config import ArchitectureOptions
    from llmcycle.pretrain.model import architecture_config, scratch_tokenizer

    probe = sub_config(cfg, cfg.sizes[0], cfg.budgets[0], 1)
    tok = scratch_tokenizer(probe, "clm")
    plan = []
    pairs = [(s, b, False) for b in cfg.budgets for s in cfg.sizes]
    if cfg.heldout:
        pairs.append((cfg.heldout, cfg.heldout_budget or max(cfg.budgets), True))
    for size, budget, held in pairs:
        arch = ArchitectureOptions(family=cfg.family, layers=size.layers, width=size.width, heads=size.heads,
                                   context=cfg.context, ffn_mult=cfg.ffn_mult)
        params = count_params(architecture_config(arch, "clm", tok))
        tokens = budget / (6 * params)
        steps = math.ceil(tokens / (cfg.batch_size * cfg.context))
        if steps < cfg.min_steps:
            where = "heldout" if held else f"sizes[{cfg.sizes.index(size)}]"
            raise ConfigError(f"scaling: {where} ({size.name}, {params:,} parameters) at budget {budget:.3g} trains "
                              f"{steps} steps (< min_steps {cfg.min_steps}); raise the budget or shrink the model")
        plan.append({"name": f"{size.name}-C{budget:.2g}".replace("+", ""), "size": size, "budget": budget,
                     "params": params, "tokens": tokens, "steps": steps, "heldout": held})
    if max(p["params"] for p in plan if not p["heldout"]) >= next((p["params"] for p in plan if p["heldout"]),
                                                                  math.inf):
        raise ConfigError("scaling: heldout must be larger than every model of sizes (the check extrapolates)")
    return plan


def finished(folder: Path, sub: Any) -> dict[str, Any] | None:
    """The result of a sub-run that finished with this very config (None: run or resume it)."""
    try:
        saved = json.loads((folder / "pretrain_config.json").read_text(encoding="utf-8"))
        result = json.loads((folder / "pretrain_result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return result if saved == sub.model_dump(mode="json") and result.get("tokens_per_s") else None


def run_sweep(cfg: ScalingConfig, out: str | Path, *, texts: Sequence[str], heldout: Sequence[str],
              progress: Any = None) -> dict[str, Any]:
    """Run (or resume) every sub-run, fit, and return what ``scaling.json`` holds."""
    import time

    from llmcycle.pretrain.train import pretrain

    out = Path(out)
    if not heldout:
        raise ConfigError("scaling: the losses are measured on held-out text; the data needs a validation split")
    plan = plan_sweep(cfg)
    say = progress or log.info
    start = time.perf_counter()
    runs, held = [], None
    for i, p in enumerate(plan, 1):
        say(f"scaling run {i}/{len(plan)}: {p['name']} (N = {p['params']:,}, D = {p['tokens']:,.0f}, "
            f"{p['steps']} steps)")
        sub, folder = sub_config(cfg, p["size"], p["budget"], p["params"]), out / "runs" / p["name"]
        r = finished(folder, sub)
        if r is None:
            r = pretrain(sub, folder, texts=texts, heldout=heldout).to_dict()
        else:
            say(f"scaling run {p['name']}: finished before, read back")
        row = {"name": p["name"], "params": r["params"], "tokens": r["tokens"], "budget": p["budget"],
               "flops": r["flops"], "loss": r["after"]["in-domain"], "tokens_per_s": r["tokens_per_s"],
               "mfu": r["mfu"], "seconds": r["seconds"], "steps": r["steps"], "layers": p["size"].layers,
               "width": p["size"].width, "peak_flops": r["peak_flops"]}
        if p["heldout"]:
            held = row
        else:
            runs.append(row)
    fit = fit_scaling_law([r["params"] for r in runs], [r["tokens"] for r in runs], [r["loss"] for r in runs],
                          bootstrap=cfg.bootstrap, seed=cfg.seed)
    minima = isoflop_minima(runs)
    target = cfg.target_budget or max(cfg.budgets)
    optimum = optimum_table(fit, target)
    result: dict[str, Any] = {
        "runs": runs, "fit": fit.params(), "fit_std": fit.std, "fit_huber": fit.huber, "isoflop": minima,
        "optimum": optimum, "optimal_tokens_per_param": optimum["tokens_per_param"],
        "seconds": round(time.perf_counter() - start, 1)}
    if held:
        predicted = fit.predict(held["params"], held["tokens"])
        result["heldout"] = {"params": held["params"], "tokens": held["tokens"], "flops": held["flops"],
                             "predicted_loss": predicted, "measured_loss": held["loss"],
                             "relative_error": abs(predicted - held["loss"]) / held["loss"],
                             "tokens_per_s": held["tokens_per_s"], "mfu": held["mfu"]}
    largest = max(runs, key=lambda r: r["params"])
    result["largest_sweep_mfu"] = largest["mfu"]
    plot_scaling(runs, fit, out / "scaling.png", result.get("heldout"))
    plot_isoflop(runs, minima, out / "isoflop.png")
    return result
