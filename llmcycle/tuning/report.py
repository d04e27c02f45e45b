"""Report sections of fine-tuning: one run (the ``tune`` stage and command) and several methods side by side."""

from __future__ import annotations

import json
from pathlib import Path

from llmcycle.lifecycle.report import md_table
from llmcycle.tuning.train import TuneResult


def tune_section(result: TuneResult, source: str, out_dir: Path, rel: str) -> str:
    """Parameters trained, steps, time, losses, truncation and the loss curve."""
    last_train = result.train_loss[-1][1] if result.train_loss else None
    last_eval = result.eval_loss[-1][1] if result.eval_loss else None
    rows = [["model", source], ["method", result.method],
            ["trainable parameters", f"{result.trainable:,} of {result.total:,} ({result.pct:.2f}%)"],
            ["optimizer steps", result.steps], ["training time", f"{result.seconds:.1f} s"],
            ["last training loss", f"{last_train:.4f}" if last_train is not None else "-"],
            ["last validation loss", f"{last_eval:.4f}" if last_eval is not None else "-"],
            ["saved to", f"`{result.model_dir}`"]]
    if result.resumed_from:
        rows.append(["resumed from", f"`{result.resumed_from}`"])
    if result.new_modules:
        rows.append(["fresh modules trained fully", ", ".join(result.new_modules)])
    from llmcycle.tuning.data import TruncationReport

    rows.append(["truncation", TruncationReport(**result.truncation).summary()])
    parts = [f"## Fine-tuning: {result.method}\n", md_table(["", "value"], rows)]
    if (out_dir / "loss_curve.png").is_file():
        parts.append(f"\n![loss curve]({rel}/loss_curve.png)\n")
    return "\n".join(parts)


def _dir_mb(path: Path) -> float | None:
    if not path.is_dir():
        return None
    return sum(f.stat().st_size for f in path.rglob("*") if f.suffix in (".safetensors", ".bin")) / 1e6


def load_tune_runs(folders: list[Path]) -> list[dict]:
    """``tune_result.json`` of each folder (a tune folder, or a run directory holding ``tune/``)."""
    from llmcycle.errors import LLMCycleError

    runs = []
    for folder in folders:
        folder = Path(folder)
        path = next((p for p in (folder / "tune_result.json", folder / "tune" / "tune_result.json") if p.is_file()),
                    None)
        if path is None:
            raise LLMCycleError(f"{folder}: no tune_result.json (pass tune run folders written by `llmcycle tune`)")
        runs.append(json.loads(path.read_text(encoding="utf-8")) | {"folder": str(path.parent)})
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
    from llmcycle.lifecycle.charts import line_chart

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
