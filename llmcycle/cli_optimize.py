"""``llmcycle optimize``: build deployment variants (quantised, pruned, distilled, merged) and measure them alike."""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from llmcycle.cli import app, console, table


@app.command("optimize")
def optimize_cmd(
    model: str = typer.Argument(..., help="The model to optimise: a tuned model directory, an adapter directory "
                                "(method merge), a hub id or builtin:NAME."),
    method: Optional[List[str]] = typer.Option(None, "--method", "-m", help="fp16 | bf16 | int8 | bnb8 | bnb4 | "
                                               "prune | distil | merge (repeat for several; default int8)."),
    data: str = typer.Option("builtin:dialogues", help="Data: the evaluation split measures every variant; distil "
                             "trains on its train split."),
    split: str = typer.Option("test", help="Split the variants are measured on."),
    n: int = typer.Option(32, help="Evaluation rows (the first n of the split)."),
    sparsity: Optional[float] = typer.Option(None, help="Shortcut for --set prune.sparsity=..."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Any OptimizeConfig field: --set prune.scope=layer "
                                             "--set distil.train.max_steps=300 (see `llmcycle reference`)."),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help="Resume this optimize run directory (created "
                                          "when missing); finished variants are reused."),
    runs_dir: str = typer.Option("runs", help="Where new run directories go."),
) -> None:
    """Quantise, prune, distil or merge a model; report size, speed and ROUGE of each against the original."""
    from pathlib import Path

    from llmcycle.data import load_data
    from llmcycle.errors import DataError, LLMCycleError
    from llmcycle.lifecycle.recipe import apply_overrides
    from llmcycle.lifecycle.report import write_report
    from llmcycle.lifecycle.rundir import RunDir
    from llmcycle.models import load_model
    from llmcycle.optimize import OptimizeConfig, optimize_section, run_optimize

    fields: dict[str, Any] = {"methods": list(method or ["int8"]), "measure": {"n": n}}
    if sparsity is not None:
        fields["prune"] = {"sparsity": sparsity}
    cfg = OptimizeConfig.from_dict(apply_overrides(fields, list(set_ or [])), where="optimize")
    ds = load_data(data)
    if split not in ds:
        raise DataError(f"--split {split}: {data} has the splits {', '.join(ds)}")
    if run_dir:
        path = Path(run_dir)
        if path.exists() and not (path / "optimize").is_dir() and any(path.iterdir()):
            raise LLMCycleError(f"--run-dir {run_dir}: exists and is not an optimize run directory (no optimize/ "
                                "folder)")
        (path / "optimize").mkdir(parents=True, exist_ok=True)
        run = RunDir(path)
    else:
        run = RunDir.create(runs_dir, "optimize")
    loaded = load_model(model)
    result = run_optimize(loaded, ds[split], cfg, run.file("optimize"), train_data=ds,
                          progress=lambda msg: console.print(f"[dim]{msg}[/dim]"))
    text = f"# llmcycle optimize\n\n- model: `{model}`\n- data: `{data}` ({split})\n\n" + optimize_section(result,
                                                                                                    "optimize")
    write_report(run.path, text, "llmcycle optimize")
    rows = []
    for r in result.table():
        rows.append((r["model"], f"{r['size_mb']:.1f}", r.get("size_ratio", 1.0), r["tokens_per_s"],
                     r.get("speedup", 1.0), f"{r['rouge1']:.3f}", r.get("rouge1_drop", 0.0)))
    console.print(table(f"optimising {model}", rows, ("model", "size MB", "size ratio", "tokens/s", "speed-up",
                                                       "ROUGE-1", "ROUGE-1 drop (pts)")))
    console.print(f"[green]done[/green]: {run.path}/report.html  (resume with --run-dir {run.path})")
