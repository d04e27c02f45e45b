"""``llmcycle tune``: fine-tune a model (full, LoRA, prompt tuning, selective) into a run directory."""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from llmcycle.cli import app, console, table


@app.command("tune")
def tune_cmd(
    model: str = typer.Argument(..., help="Hub id, local directory or builtin:NAME."),
    data: str = typer.Option("builtin:dialogues", help="Data source with a train split (and validation)."),
    method: str = typer.Option("lora", help="full | lora | prompt_tuning | selective | qlora."),
    max_steps: Optional[int] = typer.Option(None, help="Optimizer steps (default: epochs)."),
    epochs: float = typer.Option(1.0, help="Passes over the train split when --max-steps is not given."),
    learning_rate: float = typer.Option(1e-4, "--lr", help="Peak learning rate."),
    batch_size: int = typer.Option(8, help="Rows per forward pass."),
    template: Optional[List[str]] = typer.Option(None, "--template", help="Prompt templates (repeat)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Any TuneConfig field: --set lora.r=32 "
                                             "--set warmup_ratio=0.1 (see `llmcycle reference`)."),
    n: Optional[int] = typer.Option(None, help="Seeded subsample of n rows per split."),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help="Resume this tune run directory, or create it "
                                          "(needed under `accelerate launch`, so every process shares one)."),
    runs_dir: str = typer.Option("runs", help="Where new run directories go."),
) -> None:
    """Fine-tune, with exact resume, and write the model or adapter, metrics, loss curve and report."""
    from llmcycle.data import load_data
    from llmcycle.lifecycle.recipe import apply_overrides
    from llmcycle.lifecycle.report import write_report
    from llmcycle.models import load_model
    from llmcycle.tuning import TuneConfig, train
    from llmcycle.tuning.report import tune_section

    fields: dict[str, Any] = {"method": method, "epochs": epochs, "learning_rate": learning_rate,
                              "batch_size": batch_size}
    if max_steps:
        fields["max_steps"] = max_steps
    if template:
        fields["templates"] = template
    cfg = TuneConfig.from_dict(apply_overrides(fields, list(set_ or [])), where="tune")
    ds = load_data(data, n=n)
    loaded = load_model(model)
    run = _run_dir(run_dir, runs_dir)
    result = train(loaded, ds, cfg, run.file("tune"))
    from llmcycle.tuning.train import is_main_process

    if not is_main_process():
        return
    text = f"# llmcycle tune\n\n- data: `{data}`\n\n" + tune_section(result, model, run.file("tune"), "tune")
    write_report(run.path, text, "llmcycle tune")
    console.print(table(f"{method} on {model}", [
        ("trainable", f"{result.trainable:,} / {result.total:,} ({result.pct:.2f}%)"), ("steps", result.steps),
        ("seconds", f"{result.seconds:.1f}"), ("saved", result.model_dir)], ("", "value")))
    console.print(f"[green]done[/green]: {run.path}/report.html  (resume with --run-dir {run.path})")


@app.command("tune-compare")
def tune_compare_cmd(
    runs: List[str] = typer.Argument(..., help="Tune run directories (from `llmcycle tune`) or their tune/ folders."),
    out: Optional[str] = typer.Option(None, help="Folder for report.md / report.html (default: a new run dir)."),
    runs_dir: str = typer.Option("runs", help="Where the new run directory goes when --out is not given."),
) -> None:
    """Compare fine-tuning runs side by side: trainable share, time, losses, saved size, loss curves."""
    from pathlib import Path

    from llmcycle.lifecycle.report import write_report
    from llmcycle.lifecycle.rundir import RunDir
    from llmcycle.tuning.report import load_tune_runs, methods_section

    loaded = load_tune_runs([Path(r) for r in runs])
    folder = Path(out) if out else RunDir.create(runs_dir, "tune-compare").path
    folder.mkdir(parents=True, exist_ok=True)
    text = "# llmcycle tune-compare\n\n" + methods_section(loaded, folder)
    write_report(folder, text, "llmcycle tune-compare")
    console.print(f"[green]done[/green]: {folder}/report.html")


def _run_dir(run_dir: str | None, runs_dir: str) -> Any:
    """The run directory: ``--run-dir`` (resumed, or created when missing) or a new one under ``runs_dir``."""
    import os
    from pathlib import Path

    from llmcycle.errors import LLMCycleError
    from llmcycle.lifecycle.rundir import RunDir

    if run_dir is None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise LLMCycleError("--run-dir: under `accelerate launch` every process must write to the same run; "
                                "pass --run-dir runs/NAME (it is created when missing)")
        return RunDir.create(runs_dir, "tune")
    path = Path(run_dir)
    if path.exists() and not (path / "tune").is_dir() and any(path.iterdir()):
        raise LLMCycleError(f"--run-dir {run_dir}: exists and is not a tune run directory (no tune/ folder); "
                            "pass a new folder or an earlier tune run")
    (path / "tune").mkdir(parents=True, exist_ok=True)
    return RunDir(path)
