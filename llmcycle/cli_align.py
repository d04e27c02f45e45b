"""``llmcycle align``: PPO against a reward per seed, evaluated before and after, into a run directory."""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from llmcycle.cli import app, console, table


@app.command("align")
def align_cmd(
    model: str = typer.Argument(..., help="The model to align: hub id, local directory (a tuned model or adapter) "
                                "or builtin:NAME."),
    data: str = typer.Option("builtin:dialogues", help="Data with a train split (PPO prompts) and a held-out split."),
    reward: str = typer.Option("profanity", help="Reward source: profanity | classifier | reward_model | callable "
                               "(more with --set reward.model=... --set reward.label=...)."),
    steps: int = typer.Option(20, help="PPO steps per seed."),
    seeds: Optional[List[int]] = typer.Option(None, "--seed", help="Seeds (repeat: --seed 0 --seed 1); default 0."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Any AlignConfig field: --set ppo.kl.init_coef=0.1 "
                                             "--set evaluation.n=64 (see `llmcycle reference`)."),
    n: Optional[int] = typer.Option(None, help="Seeded subsample of n rows per split."),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help="Resume this align run directory (created when "
                                          "missing)."),
    runs_dir: str = typer.Option("runs", help="Where new run directories go."),
) -> None:
    """Align a model with PPO (KL-penalised) per seed; report toxicity, ROUGE and KL before vs after."""
    from pathlib import Path

    from llmcycle.alignment.align import AlignConfig, align_section, run_align
    from llmcycle.data import load_data
    from llmcycle.errors import LLMCycleError
    from llmcycle.lifecycle.recipe import apply_overrides
    from llmcycle.lifecycle.report import write_report
    from llmcycle.lifecycle.rundir import RunDir
    from llmcycle.models import load_model

    fields: dict[str, Any] = {"reward": {"source": reward}, "ppo": {"steps": steps}}
    if seeds:
        fields["seeds"] = list(seeds)
    cfg = AlignConfig.from_dict(apply_overrides(fields, list(set_ or [])), where="align")
    ds = load_data(data, n=n)
    if run_dir:
        path = Path(run_dir)
        if path.exists() and not (path / "align").is_dir() and any(path.iterdir()):
            raise LLMCycleError(f"--run-dir {run_dir}: exists and is not an align run directory (no align/ folder)")
        (path / "align").mkdir(parents=True, exist_ok=True)
        run = RunDir(path)
    else:
        run = RunDir.create(runs_dir, "align")
    result = run_align(lambda: load_model(model), ds, cfg, run.file("align"))
    text = f"# llmcycle align\n\n- model: `{model}`\n- data: `{data}`\n\n" + align_section(result, run.file("align"),
                                                                                        "align")
    write_report(run.path, text, "llmcycle align")
    before = result["before"]
    rows = [("toxic rate before", f"{before['toxic_rate']:.4f}")]
    for s in result["seeds"]:
        rows.append((f"seed {s['seed']}: toxic rate / KL", f"{s['after']['toxic_rate']:.4f} / {s['kl_final']:.3f}"))
    console.print(table(f"PPO on {model}", rows, ("", "value")))
    console.print(f"[green]done[/green]: {run.path}/report.html  (resume with --run-dir {run.path})")
