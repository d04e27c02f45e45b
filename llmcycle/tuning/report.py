"""The report section of a fine-tuning run (what the ``tune`` stage and command show)."""

from __future__ import annotations

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
