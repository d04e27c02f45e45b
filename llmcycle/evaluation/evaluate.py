"""``evaluate_models``: several models, the same examples, prompt and generation settings; one
comparison.

For each model: render prompts, generate (batched engine), score, save predictions as JSONL with
inputs and references. Then: metrics JSON, the comparison table (absolute improvement in points
against the baseline, 95% bootstrap intervals, paired tests), charts, N side-by-side examples,
and a Markdown section for the report. Models are loaded one at a time and released, so memory
holds one model.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import Field, field_validator, model_validator

from llmcycle.core.config import StageConfig
from llmcycle.core.errors import LLMCycleError
from llmcycle.core.files import atomic_write_json, atomic_write_jsonl
from llmcycle.evaluation.compare import (
    METRIC_NAMES,
    ComparisonRow,
    ModelScores,
    compare,
    comparison_markdown,
    score_outputs,
)
from llmcycle.evaluation.toxicity import get_toxicity_scorer
from llmcycle.generation import generate
from llmcycle.generation.settings import GenerationSettings
from llmcycle.models import load_model
from llmcycle.models.chat import uses_chat
from llmcycle.prompts import build_prompts, get_template
from llmcycle.report.charts import bar_chart, histogram
from llmcycle.report.markdown import md_table


class EvaluateConfig(StageConfig):
    """Evaluate one or more models on the same data split with the same prompt and generation settings."""

    models: list[str] = Field(default_factory=list, description="Models to compare: SOURCE, NAME=SOURCE, or "
                              "SOURCE+ADAPTER_DIR (base + PEFT adapter). Empty in a recipe: the recipe's model.")
    baseline: str | None = Field(None, description="Name of the model improvements are measured against "
                                 "(default: the first).")
    template: str = Field("none", description="Prompt template name (llmcycle.prompts); 'none' feeds the raw input.")
    generation: GenerationSettings = Field(default_factory=GenerationSettings,
                                           description="Decoding settings shared by every model.")
    metrics: list[str] = Field(default_factory=lambda: ["rouge", "bleu", "toxicity", "length"],
                               description=f"Metric groups: {', '.join(METRIC_NAMES)}.")
    toxicity_label: str | None = Field(None, min_length=1, description="The toxic class of a classifier "
                                       "toxicity_scorer, by name in its config.id2label (e.g. hate, toxic); default "
                                       "hate. Not for profanity-check.")
    toxicity_scorer: str = Field("profanity-check", description="'profanity-check' (offline) or a Hugging Face "
                                 "classifier id.")
    batch_size: int = Field(8, ge=1, description="Generation batch size.")
    n_side_by_side: int = Field(5, ge=0, description="Examples shown side by side in the report.")
    bootstrap_resamples: int = Field(1000, ge=100, description="Resamples for confidence intervals and paired tests.")
    seed: int = Field(0, description="Seed for the bootstrap.")

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v: list[str]) -> list[str]:
        bad = [m for m in v if m not in METRIC_NAMES]
        if bad:
            raise ValueError(f"unknown metric(s) {bad}; valid: {', '.join(METRIC_NAMES)}")
        return v

    @model_validator(mode="after")
    def _label_needs_classifier(self) -> "EvaluateConfig":
        if self.toxicity_label is not None and self.toxicity_scorer == "profanity-check":
            raise ValueError("toxicity_label: profanity-check has no labels; set it for a classifier "
                             "toxicity_scorer (a hub id or directory)")
        return self

    def scorer(self) -> Any:
        """The toxicity scorer (a name or a loaded classifier with its label)."""
        if self.toxicity_label is None:
            return self.toxicity_scorer
        return get_toxicity_scorer(self.toxicity_scorer, toxic_label=self.toxicity_label)


@dataclass
class ModelSpec:
    name: str
    source: str
    adapter: str | None = None
    raw: str = ""


def parse_model_spec(spec: str) -> ModelSpec:
    """``SOURCE``, ``NAME=SOURCE`` or ``SOURCE+ADAPTER_DIR`` (either form may carry a name)."""
    name, _, rest = spec.partition("=") if "=" in spec else ("", "", spec)
    source, _, adapter = rest.partition("+")
    if not source.strip():
        raise LLMCycleError(f"models: {spec!r} names no model source")
    label = name.strip() or (f"{source}+{Path(adapter).name}" if adapter else source)
    return ModelSpec(label, source.strip(), adapter.strip() or None, spec)


def check_baseline(baseline: str | None, names: list[str]) -> None:
    """``baseline`` names one of the compared models (``LLMCycleError`` naming the valid ones when not)."""
    if baseline is not None and baseline not in names:
        raise LLMCycleError(f"baseline: {baseline!r} is not one of the compared models; valid: {', '.join(names)}")


@dataclass
class EvaluationResult:
    scores: list[ModelScores]
    rows: list[ComparisonRow]
    baseline: str
    section: str  # Markdown for the report


def _prompts(rows: Any, template: str, loaded: Any) -> Any:
    """Zero-shot prompts fitted to the model's input budget (cuts are recorded, never silent), in chat form
    when the model is used so (``llmcycle.prompts.chat``)."""
    return build_prompts(template, rows, tokenizer=loaded.tokenizer, chat=uses_chat(loaded))


def evaluate_models(cfg: EvaluateConfig, rows: Any, out_dir: str | Path,
                    progress: Callable[[str], None] | None = None,
                    preloaded: dict[str, Any] | None = None) -> EvaluationResult:
    """Evaluate ``cfg.models`` on ``rows`` (a datasets.Dataset with ``input`` and ``references``).

    ``preloaded`` maps a model spec (as written in ``cfg.models``) to an already loaded model, or to
    a function that loads it, used instead of ``load_model(spec)`` (the evaluate stage passes the
    models the recipe handed on, loaded with the recipe's dtype and device).
    """
    say = progress or (lambda msg: None)
    specs = [parse_model_spec(s) for s in cfg.models]
    if not specs:
        raise LLMCycleError("models: give at least one model to evaluate")
    if len(rows) == 0:
        raise LLMCycleError("the data split to evaluate on is empty")
    get_template(cfg.template)  # an unknown template fails before any model loads
    check_baseline(cfg.baseline, [s.name for s in specs])  # ... and so does an unknown baseline
    scorer = cfg.scorer() if "toxicity" in cfg.metrics else cfg.toxicity_scorer  # ... and a classifier's label
    out = Path(out_dir)
    refs = [list(r) for r in rows["references"]]
    scores, budget = [], {}
    for spec in specs:
        say(f"evaluating {spec.name}: generating {len(rows)} outputs")
        batch, preds = _generate(spec, rows, cfg, (preloaded or {}).get(spec.raw))
        budget[spec.name] = batch.summary.describe()
        atomic_write_jsonl(out / "predictions" / f"{_slug(spec.name)}.jsonl",
                           [{"input": i, "prompt": p.text, "input_truncated": p.input_truncated,
                             "references": r, "prediction": y}
                            for i, p, r, y in zip(rows["input"], batch.prompts, refs, preds)])
        scores.append(score_outputs(spec.name, preds, refs, cfg.metrics, scorer))
    prompts = batch.texts
    baseline = cfg.baseline or specs[0].name
    table_rows = compare(scores, baseline, cfg.bootstrap_resamples, cfg.seed)
    atomic_write_json(out / "metrics.json", {"baseline": baseline, "n_examples": len(prompts), "prompts": budget,
                                             "models": {s.name: s.metrics for s in scores},
                                             "comparison": [r.__dict__ for r in table_rows]})
    section = _section(scores, table_rows, baseline, rows, prompts, refs, cfg, out)
    return EvaluationResult(scores, table_rows, baseline, section)


def _generate(spec: ModelSpec, rows: Any, cfg: EvaluateConfig, loaded: Any = None) -> tuple[Any, list[str]]:
    if callable(loaded):
        loaded = loaded()
    loaded = loaded if loaded is not None else load_model(spec.source, adapter=spec.adapter)
    try:
        batch = _prompts(rows, cfg.template, loaded)
        preds = generate(loaded, batch.texts, cfg.generation, batch_size=cfg.batch_size,
                         max_input_tokens=batch.summary.max_tokens)
        return batch, list(preds)
    finally:
        del loaded
        gc.collect()


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _section(scores: list[ModelScores], rows: list[ComparisonRow], baseline: str, data: Any,
             prompts: list[str], refs: list[list[str]], cfg: EvaluateConfig, out: Path) -> str:
    rel = out.name
    parts = [f"## Evaluation: {len(prompts)} examples, template `{cfg.template}`, baseline `{baseline}`\n",
             comparison_markdown(rows, baseline)]
    rouge_keys = [k for k in ("rouge1", "rouge2", "rougeL", "rougeLsum") if k in scores[0].metrics]
    if rouge_keys:
        bar_chart({s.name: {k: s.metrics[k] for k in rouge_keys} for s in scores}, out / "rouge.png",
                  "ROUGE F1 by model")
        parts.append(f"![ROUGE by model]({rel}/rouge.png)\n")
    if "length_words" in scores[0].per_example:
        histogram({s.name: s.per_example["length_words"] for s in scores}, out / "lengths.png",
                  "Output length", "words")
        parts.append(f"![output lengths]({rel}/lengths.png)\n")
    if "toxicity" in scores[0].per_example:
        histogram({s.name: s.per_example["toxicity"] for s in scores}, out / "toxicity.png",
                  "Toxicity (probability of toxic)", "P(toxic)")
        parts.append(f"![toxicity]({rel}/toxicity.png)\n")
    n = min(cfg.n_side_by_side, len(prompts))
    if n:
        head = ["#", "input", "reference"] + [s.name for s in scores]
        body = [[i + 1, _clip(data[i]["input"]), refs[i][0] if refs[i] else ""] + [s.predictions[i] for s in scores]
                for i in range(n)]
        parts += ["### Side by side\n", md_table(head, body)]
    return "\n".join(parts)


def _clip(text: str, n: int = 300) -> str:
    return text if len(text) <= n else text[:n].rstrip() + " ..."
