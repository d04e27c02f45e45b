"""Compare models on the same examples: metrics with bootstrap intervals, improvements in points
against a baseline, paired significance tests, and side-by-side examples.

``score_outputs`` turns one model's predictions into aggregate metrics plus per-example scores;
``compare`` puts several models side by side. Per-example metrics (ROUGE F1, toxicity, length)
get 95% bootstrap intervals and a paired test against the baseline; corpus-level ones (BLEU,
chrF) are reported as points without an interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from llmcycle.core.errors import LLMCycleError
from llmcycle.evaluation import bleu, bootstrap_ci, chrf, paired_test, rouge_per_example, toxicity
from llmcycle.report.markdown import md_table

PER_EXAMPLE = ("rouge1", "rouge2", "rougeL", "rougeLsum", "toxicity", "length_words")
METRIC_NAMES = ("rouge", "bleu", "chrf", "toxicity", "length")
"""Metric groups ``score_outputs`` understands."""


@dataclass
class ModelScores:
    """One model's outputs and scores on the shared examples."""

    name: str
    predictions: list[str]
    metrics: dict[str, float] = field(default_factory=dict)  # aggregate value per metric
    per_example: dict[str, list[float]] = field(default_factory=dict)  # metric -> one score per example


@dataclass
class ComparisonRow:
    model: str
    metric: str
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    delta_points: float | None = None  # (value - baseline) x 100 for [0, 1] metrics, else raw difference
    p_value: float | None = None


def score_outputs(name: str, predictions: Sequence[str], references: Sequence[Sequence[str]],
                  metrics: Sequence[str] = ("rouge", "bleu", "toxicity", "length"),
                  toxicity_scorer: Any = "profanity-check") -> ModelScores:
    """Aggregate and per-example scores of one model's predictions."""
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown:
        raise LLMCycleError(f"metrics: unknown {unknown}; valid: {', '.join(METRIC_NAMES)}")
    preds = list(predictions)
    out = ModelScores(name, preds)
    has_refs = all(len(r) for r in references)
    if "rouge" in metrics and has_refs:
        per = rouge_per_example(preds, [list(r) for r in references])
        for key in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
            out.per_example[key] = [s[key].fmeasure for s in per]
    if "bleu" in metrics and has_refs:
        out.metrics["bleu"] = bleu(preds, [list(r) for r in references])["bleu"]
    if "chrf" in metrics and has_refs:
        out.metrics["chrf"] = chrf(preds, [list(r) for r in references])["chrf"]
    if "toxicity" in metrics:
        out.per_example["toxicity"] = toxicity(preds, scorer=toxicity_scorer)["scores"]
    if "length" in metrics:
        out.per_example["length_words"] = [float(len(p.split())) for p in preds]
    for key, values in out.per_example.items():
        out.metrics[key] = sum(values) / len(values) if values else 0.0
    return out


def _points(metric: str, delta: float) -> float:
    """ROUGE and toxicity live in [0, 1]: report their differences in points (x 100)."""
    return delta * 100 if metric.startswith("rouge") or metric == "toxicity" else delta


def compare(models: Sequence[ModelScores], baseline: str | None = None, n_resamples: int = 1000,
            seed: int = 0) -> list[ComparisonRow]:
    """One row per (model, metric): value, 95% CI, improvement in points over ``baseline``, paired p-value."""
    if not models:
        raise LLMCycleError("compare: no models to compare")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise LLMCycleError(f"compare: model names must be unique, got {names}")
    base_name = baseline or names[0]
    if base_name not in names:
        raise LLMCycleError(f"baseline: {base_name!r} is not one of the compared models {names}")
    base = models[names.index(base_name)]
    rows = []
    for m in models:
        for metric, value in m.metrics.items():
            row = ComparisonRow(m.name, metric, value)
            per = m.per_example.get(metric)
            if per:
                ci = bootstrap_ci(per, n_resamples=n_resamples, seed=seed)
                row.ci_low, row.ci_high = ci.low, ci.high
            if m is not base and metric in base.metrics:
                row.delta_points = _points(metric, value - base.metrics[metric])
                if per and base.per_example.get(metric):
                    row.p_value = paired_test(per, base.per_example[metric], n_resamples=n_resamples,
                                              seed=seed).p_value
            rows.append(row)
    return rows


def comparison_markdown(rows: Sequence[ComparisonRow], baseline: str) -> str:
    """Two Markdown tables, one row per model: values with 95% CIs, then improvements over the
    baseline in points with the paired test's p-value."""
    models = list(dict.fromkeys(r.model for r in rows))
    metrics = list(dict.fromkeys(r.metric for r in rows))
    cell = {(r.model, r.metric): r for r in rows}

    def value(r: ComparisonRow | None) -> str:
        if r is None:
            return ""
        ci = f" [{r.ci_low:.3f}, {r.ci_high:.3f}]" if r.ci_low is not None and r.ci_high is not None else ""
        return f"{r.value:.4f}{ci}"

    def gain(r: ComparisonRow | None) -> str:
        if r is None or r.delta_points is None:
            return ""
        return f"{r.delta_points:+.2f}" + (f" (p={r.p_value:.3f})" if r.p_value is not None else "")

    label = {m: m + (" (baseline)" if m == baseline else "") for m in models}
    values = md_table(["model", *metrics], [[label[m], *(value(cell.get((m, k))) for k in metrics)] for m in models])
    others = [m for m in models if m != baseline]
    if not others:
        return "Values with 95% bootstrap intervals:\n\n" + values
    gains = md_table(["model", *metrics], [[m, *(gain(cell.get((m, k))) for k in metrics)] for m in others])
    return ("Values with 95% bootstrap intervals:\n\n" + values +
            f"\nAbsolute improvement over `{baseline}` (points; ROUGE and toxicity x 100), paired test p-value:\n\n"
            + gains)
