"""Fine-tuning runs side by side (``llmcycle tune-compare``); one run's section is the tune stage's own."""

from __future__ import annotations

import json
from pathlib import Path

from llmcycle.core.errors import LLMCycleError
from llmcycle.report.charts import line_chart
from llmcycle.report.markdown import md_table


def _dir_mb(path: Path) -> float | None:
    if not path.is_dir():
        return None
    return sum(f.stat().st_size for f in path.rglob("*") if f.suffix in (".safetensors", ".bin")) / 1e6


def load_tune_runs(folders: list[Path]) -> list[dict]:
    """``tune_result.json`` of each folder: a tune stage folder (``NN-tune``), or a run directory, whose every
    tune stage is taken (``llmcycle tune`` writes one, a recipe may have several)."""
    runs = []
    for folder in folders:
        folder = Path(folder)
        found = [folder / "tune_result.json"] if (folder / "tune_result.json").is_file() else \
            sorted(folder.glob("[0-9][0-9]-tune/tune_result.json"))
        if not found:
            raise LLMCycleError(f"{folder}: no tune_result.json (pass run directories written by `llmcycle tune` "
                                "or a recipe with a tune stage, or their NN-tune folders)")
        runs += [json.loads(p.read_text(encoding="utf-8")) | {"folder": str(p.parent)} for p in found]
    return runs


def methods_section(runs: list[dict], out_dir: Path, rel: str = ".",
                    quality: dict[str, dict[str, float]] | None = None) -> str:
    """Fine-tuning runs side by side: what trained, time, losses, saved size (and quality when given).

    Args:
        runs: ``tune_result.json`` contents (``load_tune_runs``), each labelled by its method (or
            ``label`` when present).
        out_dir: where the combined loss-curve chart is written.
        rel: how the report refers to ``out_dir``.
        quality: optional ``{label: {"rouge1": ..., ...}}`` added as columns.
    """
    labels = [r.get("label") or r["method"] for r in runs]
    if len(set(labels)) != len(labels):
        labels = [f"{lab} ({Path(r['folder']).parent.name})" for lab, r in zip(labels, runs)]
    full_mb = next((_dir_mb(Path(r["model_dir"])) for r in runs if r["method"] == "full"), None)
    metrics = sorted({k for q in (quality or {}).values() for k in q})
    headers = ["method", "trainable", "%", "steps", "time (s)", "last train loss", "last val loss",
               "weights saved (MB)"]
    headers += (["saved vs full"] if full_mb else []) + metrics
    rows = []
    for lab, r in zip(labels, runs):
        mb = _dir_mb(Path(r["model_dir"]))
        last = lambda series: f"{series[-1][1]:.4f}" if series else "-"  # noqa: E731
        row = [lab, f"{r['trainable']:,}", f"{r['pct']:.2f}", r["steps"], f"{r['seconds']:.1f}",
               last(r["train_loss"]), last(r["eval_loss"]), f"{mb:.1f}" if mb is not None else "-"]
        if full_mb:
            row.append(f"{mb / full_mb:.1%}" if mb is not None else "-")
        row += [f"{(quality or {}).get(lab, {}).get(m, float('nan')):.4f}" for m in metrics]
        rows.append(row)
    parts = ["## Fine-tuning methods compared\n", md_table(headers, rows)]
    series = {f"{lab} train": r["train_loss"] for lab, r in zip(labels, runs) if r["train_loss"]}
    series |= {f"{lab} validation": r["eval_loss"] for lab, r in zip(labels, runs) if r["eval_loss"]}
    if series:
        line_chart(series, Path(out_dir) / "methods_loss.png", title="fine-tuning loss by method", ylabel="loss")
        parts.append(f"\n![loss by method]({rel}/methods_loss.png)\n")
    return "\n".join(parts)
