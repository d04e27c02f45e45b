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

from pydantic import Field, field_validator, model_validator

from llmcycle.core.config import StageConfig
from llmcycle.core.errors import LLMCycleError
from llmcycle.core.files import atomic_write_json, atomic_write_jsonl
from llmcycle.evaluation import rouge
from llmcycle.generation import generate
from llmcycle.generation.presets import PRESETS
from llmcycle.generation.settings import GenerationSettings
from llmcycle.models.chat import uses_chat
from llmcycle.prompts import PromptConfig, build_prompts_from_config, get_template


class PromptLabConfig(StageConfig):
    """A grid of prompt templates x shot counts x generation settings."""

    templates: list[str] = Field(default_factory=lambda: ["none", "instruction", "flan"], min_length=1,
                                 description="Prompt template names (llmcycle.prompts).")
    shots: list[int] = Field(default_factory=lambda: [0, 1, 3], min_length=1,
                             description="Shot counts to try (0 = zero-shot).")
    generation: dict[str, GenerationSettings] = Field(
        default_factory=lambda: {"greedy": {"preset": "greedy"},
                                 "sampling t=0.7": {"do_sample": True, "temperature": 0.7}},
        min_length=1, validate_default=True,
        description="Named generation settings to try: label -> generation settings (llmcycle.generation; a "
                    "'preset' may be among them). max_new_tokens and seed default to the fields below.")
    max_new_tokens: int = Field(48, ge=1, description="Default max_new_tokens for settings that do not set it.")
    n_examples: int = Field(10, ge=1, description="Examples of the evaluation split to run each cell on.")
    selection: str = Field("random", description="How shots are drawn from the train split: first, random, nearest.")
    seed: int = Field(42, description="Seed for shot draws and sampling.")
    max_input_tokens: int | None = Field(None, ge=1, description="Prompt token budget (default: the model's "
                                         "maximum input length).")
    batch_size: int = Field(8, ge=1, description="Generation batch size.")
    n_side_by_side: int = Field(3, ge=0, description="Examples shown side by side for the best and worst cells.")

    @model_validator(mode="before")
    @classmethod
    def _generation_defaults(cls, data: Any) -> Any:
        """Each named setting starts from this config's max_new_tokens and seed (fields it sets win)."""
        if not isinstance(data, dict) or not isinstance(data.get("generation", {}), dict):
            return data
        defaults = {"max_new_tokens": data.get("max_new_tokens", 48), "seed": data.get("seed", 42)}
        gen = data.get("generation")
        if gen is None:
            gen = {"greedy": {"preset": "greedy"}, "sampling t=0.7": {"do_sample": True, "temperature": 0.7}}
        return {**data, "generation": {label: {**defaults, **(fields or {})} if isinstance(fields, dict) or
                                       fields is None else fields for label, fields in gen.items()}}

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


def run_prompt_lab(loaded: Any, rows: Any, pool: Any, cfg: PromptLabConfig, out_dir: str | Path,
                   progress: Callable[[str], None] | None = None) -> list[Cell]:
    """Run the grid on ``rows`` (evaluation split) with shots from ``pool`` (train split)."""
    import time

    say = progress or (lambda m: None)
    for name in cfg.templates:
        get_template(name)  # unknown names fail before any generation
    settings = cfg.generation
    rows = rows.select(range(min(cfg.n_examples, len(rows))))
    refs = [list(r) for r in rows["references"]]
    cells, records = [], []
    grid = list(itertools.product(cfg.templates, cfg.shots, settings))
    for i, (template, k, gen_label) in enumerate(grid, 1):
        pcfg = PromptConfig(template=template, n_shots=k, selection=cfg.selection if k else "first",
                            seed=cfg.seed, max_input_tokens=cfg.max_input_tokens, chat=uses_chat(loaded))
        batch = build_prompts_from_config(pcfg, rows, tokenizer=loaded.tokenizer, pool=pool if k else None)
        say(f"[{i}/{len(grid)}] {template}, {k}-shot, {gen_label}: {batch.summary.describe()}")
        t0 = time.perf_counter()
        settings_k = settings[gen_label]
        if k and not settings_k.stop and not pcfg.chat:  # the shot separator ends an answer (chat: its turn does)
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


def parse_setting(spec: str) -> tuple[str, dict[str, Any]]:
    """``LABEL`` (a preset name) or ``LABEL:field=value,field=value`` (values parsed as YAML)."""
    import yaml

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
