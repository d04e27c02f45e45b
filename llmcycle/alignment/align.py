"""``run_align``: align a model per seed and measure it before and after (the ``align`` command and stage).

For each seed a fresh copy of the starting model is aligned, with PPO against a reward source
(``llmcycle.alignment.rewards``) or with DPO on preference pairs (``llmcycle.alignment.dpo``; a
jsonl file of ``prompt``/``chosen``/``rejected`` rows, e.g. written by the constitutional
critique-and-revise step); the starting model, evaluated once, is the "before" and the reference
of the KL. Every aligned copy is evaluated on the same held-out prompts with the same
generation settings, seed included (``evaluation.generation``, ``llmcycle.alignment.evaluate``). What it
writes under ``out_dir``:

    seed-N/                 the PPO (or DPO) run of seed N (its log, plots and model/)
    align_result.json       before, per-seed after, the configuration
    reward_by_seed.png      PPO: reward per step; DPO: implicit reward margin per step; one line per seed
    kl_by_seed.png          PPO: KL to the reference per step; DPO: loss per step

Seeds that finished are not re-run when ``run_align`` is called again on the same folder with the
same configuration (each PPO run also resumes from its own checkpoints).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from llmcycle.alignment.dpo import DPOConfig, train_dpo
from llmcycle.alignment.evaluate import alignment_eval, default_eval_generation, eval_generation_problems
from llmcycle.alignment.ppo_config import PPOConfig
from llmcycle.alignment.reward_model import as_pairs
from llmcycle.alignment.rewards import RewardConfig, make_reward
from llmcycle.core.config import StageConfig
from llmcycle.core.errors import DataError
from llmcycle.core.files import atomic_write_json, config_hash
from llmcycle.data.readers import read_jsonl_objects
from llmcycle.generation.settings import GenerationSettings
from llmcycle.models.adapters import is_peft, merge_adapter
from llmcycle.models.chat import uses_chat
from llmcycle.models.hub import HubOptions, hub_field, push_folder
from llmcycle.prompts.chat import user_prompt
from llmcycle.report.charts import line_chart


class AlignEvalOptions(StageConfig):
    """How the model is measured before and after alignment."""

    split: str = Field("validation", description="Split of the data whose prompts are held out for evaluation "
                       "(falls back to test, then the last split).")
    n: int = Field(32, gt=0, description="Held-out prompts evaluated (the first n of the split).")
    samples: int = Field(2, gt=0, description="Sampled outputs per prompt for the toxicity figures.")
    generation: GenerationSettings = Field(
        default_factory=default_eval_generation, description="Decoding of the sampled outputs (the same before "
        "and after, seed included): sampling at temperature 1.0, 64 new tokens, seed 1234, with the fields "
        "written here (a block with a preset starts from the preset instead). It returns one sequence (samples "
        "sets the outputs per prompt). The greedy outputs (ROUGE, greedy toxic rate) use it with sampling turned "
        "off, temperature/top_k/top_p reset and greedy_no_repeat_ngram_size as their no_repeat_ngram_size.")
    greedy_no_repeat_ngram_size: int = Field(3, ge=0, description="no_repeat_ngram_size of the greedy outputs, "
                                             "in place of generation's (0: off).")
    threshold: float = Field(0.5, gt=0, lt=1, description="P(toxic) above which an output counts as toxic.")
    scorer: str = Field("profanity-check", min_length=1, description="Toxicity scorer: profanity-check or a "
                        "classifier's hub id or directory (llmcycle.evaluation.toxicity).")
    scorer_label: str | None = Field(None, min_length=1, description="Toxicity scorer: the toxic class of a "
                                     "classifier, by name in its config.id2label (e.g. hate, toxic); default hate. "
                                     "Not for profanity-check.")
    max_input_tokens: int = Field(384, gt=0, description="Prompts are cut to this many tokens.")

    @model_validator(mode="before")
    @classmethod
    def _moved_fields(cls, data: Any) -> Any:
        """``seed`` and ``max_new_tokens`` moved into ``generation``: say where, rather than "unknown field"."""
        moved = [k for k in ("max_new_tokens", "seed") if isinstance(data, dict) and k in data]
        if moved:
            block = {"do_sample": "true", "max_new_tokens": data.get("max_new_tokens"), "seed": data.get("seed", 1234)}
            text = ", ".join(f"{k}: {v}" for k, v in block.items() if v is not None)
            msg = f"moved into the generation block of the sampled outputs: write generation: {{{text}}}"
            raise ValidationError.from_exception_data(cls.__name__, [
                InitErrorDetails(type=PydanticCustomError("align_evaluation", "{msg}", {"msg": msg}), loc=(k,),
                                 input=data[k]) for k in moved])
        gen = data.get("generation") if isinstance(data, dict) else None
        if isinstance(gen, dict) and gen.get("preset") is None:  # a partial block starts from the default
            data = {**data, "generation": default_eval_generation().model_dump(exclude_defaults=True) | gen}
        return data

    @model_validator(mode="after")
    def _check_generation(self) -> AlignEvalOptions:
        if self.scorer_label is not None and self.scorer == "profanity-check":
            raise ValueError("scorer_label: profanity-check has no labels; set it for a classifier scorer "
                             "(scorer: a hub id or directory)")
        problems = eval_generation_problems(self.generation)
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, [
                InitErrorDetails(type=PydanticCustomError("align_evaluation", "{msg}", {"msg": msg}),
                                 loc=("generation", field), input=getattr(self.generation, field))
                for field, msg in problems])
        return self

    def eval_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``llmcycle.alignment.evaluate.alignment_eval`` these options give."""
        return {"samples": self.samples, "generation": self.generation, "threshold": self.threshold,
                "scorer": self.scorer, "scorer_label": self.scorer_label, "max_input_tokens": self.max_input_tokens,
                "greedy_no_repeat_ngram_size": self.greedy_no_repeat_ngram_size}


class AlignConfig(StageConfig):
    """Preference alignment (PPO against a reward, or DPO on pairs), per seed, with a before/after evaluation."""

    method: Literal["ppo", "dpo"] = Field("ppo", description="ppo: reinforcement learning against `reward` with a "
                                         "KL penalty; dpo: direct preference optimisation on `pairs`.")
    pairs: str | None = Field(None, min_length=1, description="dpo: a jsonl file of preference rows (prompt, "
                              "chosen, rejected).")
    dpo: DPOConfig = Field(default_factory=DPOConfig, description="DPO settings (beta, steps, ...).")
    reward: RewardConfig = Field(default_factory=RewardConfig, description="The reward PPO maximises.")
    ppo: PPOConfig = Field(default_factory=PPOConfig, description="PPO settings (steps, batch, KL, ...).")
    seeds: list[int] = Field([0], min_length=1, description="One aligned copy per seed (PPO's seed).")
    n_prompts: int = Field(256, gt=0, description="Training prompts (the first n of the train split).")
    evaluation: AlignEvalOptions = Field(default_factory=AlignEvalOptions,
                                         description="Held-out evaluation before and after.")
    hand_on: bool = Field(True, description="In a recipe, the stages after this one (evaluate, optimize, serve, "
                          "...) use the aligned model of hand_on_seed; false: they keep the model this stage "
                          "started from.")
    hand_on_seed: int | None = Field(None, description="The seed whose aligned model is handed on, and pushed by "
                                     "hub.push (one of seeds; None: the first).")
    hub: HubOptions = hub_field()

    @model_validator(mode="after")
    def _pairs_for_dpo(self) -> AlignConfig:
        if self.method == "dpo" and self.pairs is None:
            raise ValueError("pairs: method dpo needs a jsonl file of prompt/chosen/rejected rows")
        if self.hand_on_seed is not None and self.hand_on_seed not in self.seeds:
            raise ValueError(f"hand_on_seed: {self.hand_on_seed} is not one of seeds {self.seeds}")
        if self.hand_on and self.method == "ppo" and not self.ppo.save_model:
            raise ValueError("hand_on: the aligned model can only be handed on when it is saved; set "
                             "ppo.save_model: true or hand_on: false")
        if self.hub.push and self.method == "ppo" and not self.ppo.save_model:
            raise ValueError("hub.push: the aligned model can only be pushed when it is saved; set "
                             "ppo.save_model: true or hub.push: false")
        return self


def read_pairs(path: str) -> list[Any]:
    """Preference pairs from a jsonl file (``prompt``, ``chosen``, ``rejected`` per row)."""
    if not Path(path).is_file():
        raise DataError(f"align.pairs: {path} does not exist")
    return as_pairs([row for _, row in read_jsonl_objects(Path(path))], name=f"align.pairs ({path})")


def _rows(data: Any, split: str, n: int, what: str) -> Any:
    keys = list(data.keys())
    for name in (split, "test", keys[-1] if keys else None):
        if name in data:
            rows = data[name]
            return rows.select(range(min(n, len(rows)))) if hasattr(rows, "select") else list(rows)[:n]
    raise DataError(f"{what}: the data has no splits")


def _ptx_pairs(prompts: list[str], refs: list[Any]) -> list[tuple[str, str]]:
    """PPO-ptx's supervised pairs: each training prompt with its first reference."""
    out = []
    for i, (prompt, ref) in enumerate(zip(prompts, refs)):
        target = ref[0] if isinstance(ref, (list, tuple)) and ref else ref
        if not isinstance(target, str) or not target.strip():
            raise DataError(f"align.ppo.ptx_coef: PPO-ptx trains on the train split's references, and train row {i} "
                            "has none; add references or set ppo.ptx_coef: 0")
        out.append((prompt, target))
    return out


def _merged(make_model: Callable[[], Any]) -> Callable[[], Any]:
    """``make_model`` with a LoRA adapter (a tuned model saved as an adapter) folded into its base, so
    PPO's reference (the starting policy) is well defined."""
    def make() -> Any:
        loaded = make_model()
        return merge_adapter(loaded) if is_peft(loaded.model) else loaded

    return make


def run_align(make_model: Callable[[], Any], data: Any, cfg: AlignConfig | dict, out_dir: str | Path, *,
              reward: Callable[[Sequence[str], Sequence[str]], Sequence[float]] | None = None) -> dict[str, Any]:
    """Align fresh copies of a model per seed and evaluate them; see the module docstring.

    Args:
        make_model: returns a fresh ``LoadedModel`` of the starting point on every call (a LoRA
            adapter on it is merged into the base first).
        data: a ``DatasetDict`` (``train`` for prompts, ``evaluation.split`` held out).
        cfg: an ``AlignConfig`` or its fields.
        out_dir: the folder written (see the module docstring).
        reward: a reward callable used instead of ``cfg.reward`` (tests, custom rewards).
    """
    from llmcycle.alignment.ppo import train_ppo  # imports torch

    cfg = cfg if isinstance(cfg, AlignConfig) else AlignConfig.from_dict(dict(cfg), where="align")
    make_model = _merged(make_model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if "train" not in data:
        raise DataError(f"align: the data needs a train split for the PPO prompts (it has {', '.join(data)})")
    train_rows = _rows(data, "train", cfg.n_prompts, "align")
    held = _rows(data, cfg.evaluation.split, cfg.evaluation.n, "align.evaluation.split")
    prompts = [r["input"] for r in train_rows]
    refs = [r.get("references") for r in train_rows]
    eval_prompts = [r["input"] for r in held]
    eval_refs = [r["references"] for r in held] if all(r.get("references") for r in held) else None
    eval_kw = cfg.evaluation.eval_kwargs()
    path = out / "align_result.json"
    key = config_hash({k: v for k, v in cfg.model_dump(mode="json").items() if k != "hub"} | {"seeds": None})
    saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    result: dict[str, Any] = saved if saved.get("config_hash") == key else {}
    result |= {"config_hash": key, "config": cfg.model_dump(mode="json"), "n_train_prompts": len(prompts),
               "n_eval_prompts": len(eval_prompts)}
    # the reward and the pairs first: a reward or pairs file that cannot be used fails before anything is written
    reward_fn = (reward or make_reward(cfg.reward, where="align.reward")) if cfg.method == "ppo" else None
    pairs = read_pairs(cfg.pairs) if cfg.method == "dpo" else None
    reference = make_model()
    if uses_chat(reference):  # a model used in chat form is prompted with user turns (llmcycle.prompts.chat)
        prompts = [user_prompt(reference.tokenizer, t) for t in prompts]
        eval_prompts = [user_prompt(reference.tokenizer, t) for t in eval_prompts]
    ptx = _ptx_pairs(prompts, refs) if cfg.method == "ppo" and cfg.ppo.ptx_coef > 0 else None
    if "before" not in result:
        result["before"] = alignment_eval(reference, eval_prompts, eval_refs, **eval_kw)
        atomic_write_json(path, result)
    seeds = {s["seed"]: s for s in result.get("seeds", [])}
    for seed in cfg.seeds:
        if seed in seeds:
            continue
        if cfg.method == "ppo":
            ppo = train_ppo(make_model(), prompts, reward_fn, cfg.ppo.model_copy(update={"seed": seed}),
                            out / f"seed-{seed}", references=refs, eval_prompts=eval_prompts,
                            eval_references=eval_refs, ptx_data=ptx)
            policy, log, entry = ppo.loaded, ppo.log, {"stopped": ppo.stopped, "rolled_back_to": ppo.rolled_back_to,
                                                       "seconds": ppo.seconds,
                                                       "monitor_warnings": sum(len(m.get("warnings", []))
                                                                               for m in ppo.monitor)}
            curves = {"reward_curve": [(r["step"], r["reward_mean"]) for r in log],
                      "kl_curve": [(r["step"], r["kl"]) for r in log]}
            tail = log[-5:]
            entry |= {"kl_final": statistics.fmean(r["kl"] for r in tail) if tail else None,
                      "reward_first": log[0]["reward_mean"] if log else None,
                      "reward_last": statistics.fmean(r["reward_mean"] for r in tail) if tail else None}
        else:
            dpo = train_dpo(make_model(), pairs, cfg.dpo.model_copy(update={"seed": seed}), out / f"seed-{seed}")
            policy, log = dpo.loaded, dpo.log
            entry = {"stopped": None, "seconds": dpo.seconds, "n_pairs": dpo.n_pairs}
            curves = {"reward_curve": [(r["step"], r["margin"]) for r in log],
                      "kl_curve": [(r["step"], r["loss"]) for r in log]}
            tail = log[-5:]
            entry |= {"kl_final": None, "reward_first": log[0]["margin"] if log else None,
                      "reward_last": statistics.fmean(r["margin"] for r in tail) if tail else None}
        after = alignment_eval(policy, eval_prompts, eval_refs, reference=reference, **eval_kw)
        seeds[seed] = {"seed": seed, "method": cfg.method, "after": after, "steps": len(log)} | entry | curves
        result["seeds"] = [seeds[s] for s in sorted(seeds)]
        atomic_write_json(path, result)
    runs = [seeds[s] for s in cfg.seeds]
    ppo = cfg.method == "ppo"
    line_chart({f"seed {r['seed']}": r["reward_curve"] for r in runs}, out / "reward_by_seed.png",
               title="PPO reward per step" if ppo else "DPO implicit reward margin per step",
               ylabel="reward" if ppo else "margin")
    line_chart({f"seed {r['seed']}": r["kl_curve"] for r in runs}, out / "kl_by_seed.png",
               title="KL to the reference per step" if ppo else "DPO loss per step", ylabel="nats" if ppo else "loss")
    seed = cfg.hand_on_seed if cfg.hand_on_seed is not None else cfg.seeds[0]
    push_folder(out / f"seed-{seed}" / "model", cfg.hub, where="align.hub")  # saved, measured and described first
    return result
