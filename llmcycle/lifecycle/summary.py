"""The report's first section: every model the run produced, side by side, from the stages' own results.

It reads what the stages wrote (``metrics.json`` of evaluate, ``align_result.json``,
``optimize_result.json``, ``serve_smoke.json``, ``estimates.json`` and ``tune_result.json``) and
puts baseline, tuned, aligned and optimised models in one table: ROUGE-1 with its 95% bootstrap
interval where the stage computed one, the change in points against the run's baseline, toxicity,
size and speed. Each row names the stage and sample its figures come from: stages measure on
their own samples and settings, so figures from different stages are comparable only as far as
their note says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _ci(value: float | None, low: float | None, high: float | None) -> str:
    if value is None:
        return "-"
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def summary_rows(run_path: Path, stages: list[tuple[str, str]]) -> list[list[str]]:
    """Rows of the summary table for the finished stages ``[(folder, kind), ...]``."""
    rows: list[list[str]] = []
    for folder, kind in stages:
        d = run_path / folder
        if kind == "evaluate" and (m := _read(d / "metrics.json")):
            cmp = {(c["model"], c["metric"]): c for c in m.get("comparison", [])}
            for name, scores in m["models"].items():
                r1 = cmp.get((name, "rouge1"), {})
                delta = r1.get("delta_points")
                p = r1.get("p_value")
                rows.append([name, f"{folder} ({m['n_examples']} examples)",
                             _ci(scores.get("rouge1"), r1.get("ci_low"), r1.get("ci_high")),
                             "-" if delta is None else f"{delta:+.2f}" + (f" (p={p:.3f})" if p is not None else ""),
                             _fmt(scores.get("toxicity")), "-", "-"])
        elif kind == "align" and (a := _read(d / "align" / "align_result.json")):
            b = a["before"]
            n = f"{folder} ({b['n_prompts']} held-out x {b['samples_per_prompt']} samples)"
            rows.append(["before alignment", n, _fmt(b.get("rouge1")), "-",
                         f"toxic rate {b['toxic_rate']:.3f}, mean {b['toxicity_mean']:.3f}", "-", "-"])
            for s in a["seeds"]:
                after = s["after"]
                delta = (after["rouge1"] - b["rouge1"]) * 100 if after.get("rouge1") is not None else None
                rows.append([f"aligned ({s.get('method', 'ppo')}, seed {s['seed']}, KL {s.get('kl_final', 0):.2f})", n,
                             _fmt(after.get("rouge1")), "-" if delta is None else f"{delta:+.2f} vs before",
                             f"toxic rate {after['toxic_rate']:.3f}, mean {after['toxicity_mean']:.3f}", "-", "-"])
        elif kind == "optimize" and (o := _read(d / "optimize" / "optimize_result.json")):
            n = f"{folder} ({o['baseline']['n']} examples)"
            for row in o["table"]:
                name = "unoptimised" if row["model"] == "baseline" else row["model"]
                drop = row.get("rouge1_drop")
                rows.append([name, n, _fmt(row["rouge1"]), "-" if drop is None else f"{0.0 - drop:+.2f} vs unoptimised",
                             "-", f"{row['size_mb']:.1f}" + (f" ({row['size_ratio']:.2f}x)" if "size_ratio" in row
                                                             else ""),
                             f"{row['tokens_per_s']:.1f}" + (f" ({row['speedup']:.2f}x)" if "speedup" in row else "")])
    return rows


def estimate_vs_measured(run_path: Path, stages: list[tuple[str, str]]) -> list[list[str]]:
    """Estimated training memory (the estimate stage) beside what the tune stages measured."""
    rows: list[list[str]] = []
    est = next((_read(run_path / f / "estimates.json") for f, k in stages if k == "estimate"), None)
    if est:
        for label, m in est.get("memory", {}).items():
            rows.append([f"estimate: {label}", f"{m['total'] / 2**20:,.0f} MB", ""])
        c = est.get("compute") or {}
        if c.get("flops"):
            rows.append(["estimate: training compute", f"{c['flops']:.3g} FLOPs ({c.get('pf_days', 0):.2g} "
                                                        "petaflop/s-days)", ""])
    for folder, kind in stages:
        t = _read(run_path / folder / "tune" / "tune_result.json") if kind == "tune" else None
        if t:
            peak = t.get("peak_rss_mb")
            rows.append([f"measured: {folder} ({t['method']}, {t['steps']} steps)", f"{t['seconds']:.1f} s" + (
                f", process peak RSS {peak:,.0f} MB" if peak else ""),
                f"{t['trainable']:,} of {t['total']:,} parameters trained ({t['pct']:.2f}%)"])
    return rows


def summary_section(run_path: Path, stages: list[tuple[str, str]]) -> str:
    """Markdown: the models side by side, the serving check, estimates against measurements."""
    from llmcycle.lifecycle.report import md_table

    parts = ["## The lifecycle at a glance\n"]
    rows = summary_rows(run_path, stages)
    if rows:
        parts.append("Every model this run produced, from each stage's own results (ROUGE-1 with its 95% bootstrap "
                     "interval where the stage computed one; changes in points; each stage measures on its own "
                     "sample, named in the second column).\n")
        parts.append(md_table(["model", "measured in", "ROUGE-1", "change (points)", "toxicity", "size MB",
                               "tokens/s"], rows))
    for folder, kind in stages:
        s = _read(run_path / folder / "serve_smoke.json") if kind == "serve" else None
        if s:
            verdict = "passed" if s.get("passed") else "FAILED"
            parts.append(f"\nServing ({folder}): {verdict}: {s['ok']} of {s['requests']} requests answered, "
                         f"{s['throughput_rps']:.2f} requests/s, p50 {s['p50_ms']:.0f} ms.\n")
    est = estimate_vs_measured(run_path, stages)
    if est:
        parts.append("\n### Estimates and measurements\n")
        parts.append(md_table(["what", "figure", "note"], est))
    if len(parts) == 1:
        parts.append("(no stage with results yet)\n")
    return "\n".join(parts) + "\n"
