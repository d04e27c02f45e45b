"""Stage ``align``: preference alignment of the model it receives (PPO against a reward, or DPO on pairs),
one aligned copy per seed, measured before and after.

The work is ``llmcycle.alignment.align.run_align``; a LoRA adapter received is merged into its base
first (the starting policy is PPO's KL reference). With ``hand_on`` (the default) the stages after
it receive the aligned model of ``hand_on_seed``: its weights (method full) or its LoRA adapter,
labelled ``aligned-<ppo|dpo>``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from llmcycle.alignment.align import AlignConfig, read_pairs, run_align
from llmcycle.alignment.evaluate import comparison_rows
from llmcycle.core.config import ModelConfig
from llmcycle.core.errors import ConfigError, LLMCycleError
from llmcycle.report import md_table
from llmcycle.stages.base import BaseStage, Glance, ModelHandoff, StageContext, register_stage
from llmcycle.stages.memory import training_memory_note
from llmcycle.stages.tune import trainable_from


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


class Align(BaseStage):
    kind = "align"
    config_cls = AlignConfig
    title = "Alignment"

    def receives(self, cfg: AlignConfig, current: ModelHandoff, history: list[ModelHandoff]) -> ModelHandoff:
        """The model it receives; DPO's pairs file is read and checked here, before any work."""
        if cfg.method == "dpo" and cfg.pairs:
            try:
                read_pairs(cfg.pairs)
            except LLMCycleError as exc:
                raise ConfigError(str(exc)) from None
        return current

    def check(self, cfg: AlignConfig, incoming: ModelHandoff) -> str | None:
        return trainable_from(incoming)

    def hand_on(self, cfg: AlignConfig, incoming: ModelHandoff, folder: Path) -> ModelHandoff:
        if not cfg.hand_on:
            return incoming
        seed = cfg.hand_on_seed if cfg.hand_on_seed is not None else cfg.seeds[0]
        method = cfg.ppo.method if cfg.method == "ppo" else cfg.dpo.method
        return ModelHandoff.saved(folder / f"seed-{seed}" / "model", f"aligned-{cfg.method}", folder.name,
                                  "adapter" if method == "lora" else "weights", "lora")

    def writes(self, cfg: AlignConfig) -> list[str]:
        return [f"seed-{s}/" for s in cfg.seeds] + ["align_result.json", "reward_by_seed.png", "kl_by_seed.png",
                                                    "section.md"]

    def plan_notes(self, cfg: AlignConfig, incoming: ModelHandoff, model: ModelConfig) -> list[str]:
        if cfg.method == "ppo":
            g = cfg.ppo.generation
            return [training_memory_note(model, cfg.ppo.method, cfg.ppo.mini_batch_size, g.max_query_tokens or 512,
                                         g.max_new_tokens, lora_r=cfg.ppo.lora.r, copies=2) + " (policy + reference)"]
        return [training_memory_note(model, cfg.dpo.method, cfg.dpo.batch_size, cfg.dpo.max_prompt_tokens,
                                     cfg.dpo.max_completion_tokens, copies=2) + " (policy + reference)"]

    def run(self, ctx: StageContext, cfg: AlignConfig, out: Path) -> str:
        result = run_align(lambda: ctx.load(ctx.incoming), ctx.all_splits(), cfg, out)
        return align_section(result, out, ctx.rel(out))

    def glance(self, folder: Path, cfg: AlignConfig) -> Glance:
        try:
            a = json.loads((folder / "align_result.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return Glance()
        b = a["before"]
        n = f"{folder.name} ({b['n_prompts']} held-out x {b['samples_per_prompt']} samples)"
        rows = [["before alignment", n, _fmt(b.get("rouge1")), "-",
                 f"toxic rate {b['toxic_rate']:.3f}, mean {b['toxicity_mean']:.3f}", "-", "-"]]
        for s in a.get("seeds", []):
            after = s["after"]
            delta = (after["rouge1"] - b["rouge1"]) * 100 if after.get("rouge1") is not None \
                and b.get("rouge1") is not None else None
            kl = f", KL {s['kl_final']:.2f}" if s.get("kl_final") is not None else ""
            rows.append([f"aligned ({s.get('method', 'ppo')}, seed {s['seed']}{kl})", n, _fmt(after.get("rouge1")),
                         "-" if delta is None else f"{delta:+.2f} vs before",
                         f"toxic rate {after['toxic_rate']:.3f}, mean {after['toxicity_mean']:.3f}", "-", "-"])
        return Glance(models=rows)


def align_section(result: dict[str, Any], out_dir: Path, rel: str) -> str:
    """The report section: before vs after per seed, the mean change, the reward and KL curves, examples."""
    before = result["before"]
    seeds = [s for s in result["seeds"] if s["seed"] in result["config"]["seeds"]]
    ppo = result["config"].get("method", "ppo") == "ppo"
    what = (f"Reward: `{result['config']['reward']['source']}`; {result['n_train_prompts']} training prompts"
            if ppo else f"Preference pairs: `{result['config']['pairs']}`")
    parts = [f"## Alignment ({'PPO' if ppo else 'DPO'})\n",
             f"{what}; "
             f"{result['n_eval_prompts']} held-out prompts x {before['samples_per_prompt']} samples, toxic when "
             f"P(toxic) > {before['threshold']} ({before['scorer']}).\n"]
    for s in seeds:
        head = (f"{s['steps']} PPO steps, final KL {s['kl_final']:.3f}, reward {s['reward_first']:.3f} -> "
                f"{s['reward_last']:.3f}" if ppo else
                f"{s['steps']} DPO steps, reward margin {s['reward_first']:.3f} -> {s['reward_last']:.3f}")
        parts += [f"### seed {s['seed']}: {head}" + (f", stopped by {s['stopped']}" if s["stopped"] else "") + "\n",
                  md_table(["metric", "before", "after", "change"], comparison_rows(before, s["after"]))]
    if len(seeds) > 1:
        rates = [s["after"]["toxic_rate"] for s in seeds]
        parts.append(f"\nToxic-output rate after, over {len(seeds)} seeds: mean {statistics.fmean(rates):.4f}, "
                     f"min {min(rates):.4f}, max {max(rates):.4f} (before {before['toxic_rate']:.4f}).\n")
    titles = ("reward per step", "KL per step") if ppo else ("reward margin per step", "DPO loss per step")
    for name, title in zip(("reward_by_seed.png", "kl_by_seed.png"), titles):
        if (out_dir / name).is_file():
            parts.append(f"\n![{title}]({rel}/{name})\n")
    if seeds:
        ex = list(zip(before["examples"]["sampled"], seeds[0]["after"]["examples"]["sampled"]))
        parts += ["\n### sampled outputs, before and after (seed %d)\n" % seeds[0]["seed"],
                  md_table(["before", "after"], [[b, a] for b, a in ex])]
    return "\n".join(parts)


STAGE: Any = register_stage(Align())
