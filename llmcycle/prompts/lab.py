"""The prompt lab: templates x shot counts x generation presets over N examples, scored with ROUGE.

The first step of every adaptation, made a measured experiment: for each cell of the grid the
prompts are built (shots from the train split, the context budget applied and reported), outputs
generated with the batched engine, and scored against the references. Writes predictions JSONL
(one line per cell and example), a metrics table (JSON and Markdown), a chart and side-by-side
examples of the best and the worst cell.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import Field, field_validator

from llmcycle.config import StageConfig
from llmcycle.errors import LLMCycleError


class PromptLabConfig(StageConfig):
    """A grid of prompt templates x shot counts x generation settings."""

    templates: list[str] = Field(default_factory=lambda: ["none", "instruction", "flan"], min_length=1,
                                 description="Prompt template names (llmcycle.prompts).")
    shots: list[int] = Field(default_factory=lambda: [0, 1, 3], min_length=1,
                             description="Shot counts to try (0 = zero-shot).")
    generation: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"greedy": {"preset": "greedy"},
                                 "sampling t=0.7": {"do_sample": True, "temperature": 0.7}},
        description="Named generation settings to try: label -> GenerationSettings fields (a 'preset' may be "
                    "among them).")
    max_new_tokens: int = Field(48, ge=1, description="Default max_new_tokens for settings that do not set it.")
    n_examples: int = Field(10, ge=1, description="Examples of the evaluation split to run each cell on.")
    selection: str = Field("random", description="How shots are drawn from the train split: first, random, nearest.")
    seed: int = Field(42, description="Seed for shot draws and sampling.")
    max_input_tokens: int | None = Field(None, ge=1, description="Prompt token budget (default: the model's "
                                         "maximum input length).")
    batch_size: int = Field(8, ge=1, description="Generation batch size.")
    n_side_by_side: int = Field(3, ge=0, description="Examples shown side by side for the best and worst cells.")

    @field_validator("shots")
    @classmethod
    def _shots(cls, v: list[int]) -> list[int]:
        if any(k < 0 for k in v):
            raise ValueError("shot counts must be >= 0")
        return v

    @field_validator("selection")
    @classmethod
    def _selection(cls, v: str) -> str:
        if v not in ("first", "random", "nearest"):
            raise ValueError("must be first, random or nearest")
        return v


@dataclass
class Cell:
    """One grid cell's result."""

    template: str
    shots: int
    generation: str
    rouge: dict[str, float]
    prompt_tokens_mean: float
    n_dropped_shots: int
    n_truncated: int
    seconds: float
    predictions: list[str] = field(default_factory=list, repr=False)

    @property
    def label(self) -> str:
        return f"{self.template} / {self.shots}-shot / {self.generation}"


def _settings(cfg: PromptLabConfig) -> dict[str, Any]:
    from llmcycle.generation import GenerationSettings

    out = {}
    for label, fields in cfg.generation.items():
        fields = {"max_new_tokens": cfg.max_new_tokens, "seed": cfg.seed, **(fields or {})}
        out[label] = GenerationSettings.from_dict(fields, where=f"prompt_lab.generation[{label!r}]")
    if not out:
        raise LLMCycleError("prompt_lab.generation: give at least one generation setting")
    return out


def run_prompt_lab(loaded: Any, rows: Any, pool: Any, cfg: PromptLabConfig, out_dir: str | Path,
                   progress: Callable[[str], None] | None = None) -> list[Cell]:
    """Run the grid on ``rows`` (evaluation split) with shots from ``pool`` (train split)."""
    import time

    from llmcycle.evaluation import rouge
    from llmcycle.generation import generate
    from llmcycle.lifecycle.rundir import atomic_write_json, atomic_write_jsonl
    from llmcycle.prompts import PromptConfig, build_prompts_from_config, get_template

    say = progress or (lambda m: None)
    for name in cfg.templates:
        get_template(name)  # unknown names fail before any generation
    settings = _settings(cfg)
    rows = rows.select(range(min(cfg.n_examples, len(rows))))
    refs = [list(r) for r in rows["references"]]
    cells, records = [], []
    grid = list(itertools.product(cfg.templates, cfg.shots, settings))
    for i, (template, k, gen_label) in enumerate(grid, 1):
        pcfg = PromptConfig(template=template, n_shots=k, selection=cfg.selection if k else "first",
                            seed=cfg.seed, max_input_tokens=cfg.max_input_tokens)
        batch = build_prompts_from_config(pcfg, rows, tokenizer=loaded.tokenizer, pool=pool if k else None)
        say(f"[{i}/{len(grid)}] {template}, {k}-shot, {gen_label}: {batch.summary.describe()}")
        t0 = time.perf_counter()
        settings_k = settings[gen_label]
        if k and not settings_k.stop:  # the shot separator ends an answer
            settings_k = settings_k.model_copy(update={"stop": [pcfg.separator]})
        preds = generate(loaded, batch.texts, settings_k, batch_size=cfg.batch_size,
                         max_input_tokens=batch.summary.max_tokens)
        summary = batch.summary
        cell = Cell(template, k, gen_label, rouge(preds, refs), summary.mean_n_tokens, summary.n_with_dropped_shots,
                    summary.n_truncated, time.perf_counter() - t0, preds)
        cells.append(cell)
        records += [{"template": template, "shots": k, "generation": gen_label, "prompt": p.text,
                     "shot_ids": p.shot_ids, "shots_dropped": p.shots_dropped, "input_truncated": p.input_truncated,
                     "references": r, "prediction": y} for p, r, y in zip(batch.prompts, refs, preds)]
    out = Path(out_dir)
    atomic_write_jsonl(out / "predictions.jsonl", records)
    atomic_write_json(out / "metrics.json", [{k: v for k, v in asdict(c).items() if k != "predictions"}
                                             for c in cells])
    return cells


def lab_section(cells: list[Cell], rows: Any, cfg: PromptLabConfig, out_dir: str | Path, rel: str) -> str:
    """The report section: the grid table, a chart, side-by-side examples of the best and worst cells."""
    from llmcycle.lifecycle.charts import bar_chart
    from llmcycle.lifecycle.report import md_table

    ranked = sorted(cells, key=lambda c: -c.rouge["rouge1"])
    table = md_table(["template", "shots", "generation", "ROUGE-1", "ROUGE-2", "ROUGE-L", "prompt tokens (mean)",
                      "prompts that dropped shots", "inputs truncated", "seconds"],
                     [[c.template, c.shots, c.generation, f"{c.rouge['rouge1']:.4f}", f"{c.rouge['rouge2']:.4f}",
                       f"{c.rouge['rougeL']:.4f}", f"{c.prompt_tokens_mean:.0f}", c.n_dropped_shots, c.n_truncated,
                       f"{c.seconds:.1f}"] for c in ranked])
    bar_chart({c.label: {"rouge1": c.rouge["rouge1"], "rougeL": c.rouge["rougeL"]} for c in ranked[:12]},
              Path(out_dir) / "prompt_lab.png", "Prompt lab: ROUGE by cell (best 12)")
    parts = [f"## Prompt lab: {len(cells)} cells x {len(cells[0].predictions)} examples\n",
             "Ranked by ROUGE-1. Shots come from the train split; nothing is cut silently: the budget "
             "columns count prompts that lost shots or had their input truncated.\n", table,
             f"\n![prompt lab]({rel}/prompt_lab.png)\n"]
    n = min(cfg.n_side_by_side, len(cells[0].predictions))
    if n:
        best, worst = ranked[0], ranked[-1]
        body = [[i + 1, (rows[i]["references"] or [""])[0], best.predictions[i], worst.predictions[i]]
                for i in range(n)]
        parts += ["### Best vs worst cell\n",
                  md_table(["#", "reference", f"best: {best.label}", f"worst: {worst.label}"], body)]
    return "\n".join(parts)


def parse_setting(spec: str) -> tuple[str, dict[str, Any]]:
    """``LABEL`` (a preset name) or ``LABEL:field=value,field=value`` (values parsed as YAML)."""
    import yaml

    from llmcycle.generation.presets import PRESETS

    label, _, rest = spec.partition(":")
    label = label.strip()
    if not label:
        raise LLMCycleError(f"--setting {spec!r}: give a label, e.g. greedy or 'sampled:do_sample=true,temperature=0.7'")
    if not rest:
        if label not in PRESETS:
            raise LLMCycleError(f"--setting {spec!r}: {label!r} is not a preset ({', '.join(PRESETS)}); "
                                "add fields: 'LABEL:field=value,...'")
        return label, {"preset": label}
    fields: dict[str, Any] = {}
    for item in rest.split(","):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise LLMCycleError(f"--setting {spec!r}: {item!r} is not field=value")
        fields[key.strip()] = yaml.safe_load(value)
    return label, fields
