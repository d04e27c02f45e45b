"""CLI subcommands for data, estimates and the recipe runner (registered on ``llmcycle.cli.app``)."""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from llmcycle.cli import app, console, table


@app.command("data")
def data_cmd(
    source: str = typer.Argument("builtin:dialogues", help="builtin:dialogues, a file, a directory or a hub id."),
    split: Optional[str] = typer.Option(None, help="Only this split."),
    input_column: str = typer.Option("dialogue", help="Column holding the model input."),
    reference_column: Optional[List[str]] = typer.Option(None, "--reference-column",
                                                         help="Reference column(s); repeat for several."),
    n: Optional[int] = typer.Option(None, help="Seeded subsample of at most n rows per split."),
    on_bad_rows: str = typer.Option("error", help="error | skip."),
    show: int = typer.Option(1, help="Print this many example rows per split."),
) -> None:
    """Load a data set and show its splits, row counts, references per row and an example."""
    from llmcycle.data import LoadReport, load_data

    report = LoadReport()
    data = load_data(source, report=report, split=split, input_column=input_column,
                     reference_columns=reference_column or None, n=n, on_bad_rows=on_bad_rows)
    rows = []
    for name, ds in data.items():
        refs = ds["references"]
        rows.append((name, f"{len(ds):,}", report.bad_rows.get(name, 0), f"{sum(map(len, refs)) / max(len(refs), 1):.2f}",
                     report.sources.get(name, "")))
    console.print(table(f"{source}", rows, ("split", "rows", "bad rows skipped", "references/row", "from")))
    for name, ds in data.items():
        for row in ds.select(range(min(show, len(ds)))):
            console.print(f"[bold]{name}[/bold] input:\n{row['input']}\n[bold]reference:[/bold] "
                          f"{row['references'][0] if row['references'] else '-'}\n", highlight=False)


@app.command("run")
def run_cmd(
    recipe: Optional[str] = typer.Argument(None, help="Recipe YAML path or shipped name (default: quickstart)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a field: --set model.source=builtin:"
                                             "tiny-t5, --set generate.max_new_tokens=32. Repeatable."),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help="Resume this run directory: finished stages "
                                          "with the same config are skipped (a new or empty one starts a run "
                                          "there)."),
    runs_dir: Optional[str] = typer.Option(None, "--runs-dir", help="Where new run directories go."),
    only: Optional[str] = typer.Option(None, "--only", help="Run only this stage."),
    from_stage: Optional[str] = typer.Option(None, "--from", help="Start from this stage."),
) -> None:
    """Run a recipe (default: the offline quickstart) into a run directory with a report."""
    from llmcycle.lifecycle.recipe import load_recipe
    from llmcycle.lifecycle.runner import run_recipe

    overrides = list(set_ or []) + ([f"runs_dir={runs_dir}"] if runs_dir else [])
    rec = load_recipe(recipe, overrides)
    console.print(f"recipe [bold]{rec.name}[/bold]: model {rec.model.source}, data {rec.data.source}, "
                  f"stages: {', '.join(k for k, _ in rec.stage_configs())}")
    run = run_recipe(rec, run_dir=run_dir, only=only, from_stage=from_stage,
                     progress=lambda msg: console.print(f"  {msg}", highlight=False))
    console.print(f"[green]done[/green]: {run.path}/report.html (and report.md)")


from llmcycle.cli import estimate_app  # noqa: E402

DTYPE_ROWS = ("fp32", "fp16", "bf16", "int8")


@estimate_app.command("memory")
def estimate_memory_cmd(
    params: Optional[float] = typer.Option(None, "--params", help="Parameter count, e.g. 1e9 (or use --model)."),
    model: Optional[str] = typer.Option(None, "--model", help="Hub id, local dir or builtin:NAME: parameters and "
                                        "architecture come from it (bundled hub ids work offline)."),
    dtype: Optional[str] = typer.Option(None, help="fp32 | fp16 | bf16 | int8 | int4. Default: compare them."),
    mode: str = typer.Option("training", help="training | inference."),
    optimizer: str = typer.Option("adam", help="adam | adam_8bit | sgd | sgd_momentum."),
    mixed_precision: bool = typer.Option(False, "--mixed-precision", help="16-bit weights with fp32 master copy."),
    trainable_fraction: Optional[float] = typer.Option(None, help="Fraction of parameters trained (LoRA, frozen)."),
    batch_size: Optional[int] = typer.Option(None, help="Micro-batch size: activations counted from the "
                                             "architecture (needs --model)."),
    input_len: Optional[int] = typer.Option(None, help="Input / prompt tokens per example."),
    output_len: Optional[int] = typer.Option(None, help="Output tokens per example."),
    grad_checkpointing: bool = typer.Option(False, "--grad-checkpointing", help="Recompute layers in backward."),
    parallelism: str = typer.Option("none", help="none | ddp | zero1 | zero2 | zero3 | fsdp."),
    n_gpus: int = typer.Option(1, help="GPUs the model is trained on (per-GPU figures)."),
) -> None:
    """Memory to run or train a model: weights, gradients, optimiser states, activations, per device."""
    from llmcycle.errors import LLMCycleError
    from llmcycle.estimate import estimate_memory

    if (params is None) == (model is None):
        raise LLMCycleError("give exactly one of --params (e.g. 1e9) or --model (e.g. google/flan-t5-base)")
    if model is not None:
        from llmcycle.models.info import arch_spec

        target: Any = arch_spec(model)
    else:
        target = int(params)  # type: ignore[arg-type]
    kw = dict(mode=mode, optimizer=optimizer, mixed_precision=mixed_precision, trainable_fraction=trainable_fraction,
              batch_size=batch_size, input_len=input_len, output_len=output_len,
              grad_checkpointing=grad_checkpointing, parallelism=parallelism, n_gpus=n_gpus)
    if dtype is None:
        rows = []
        for dt in DTYPE_ROWS:
            w = estimate_memory(target, dtype=dt, mode="inference").weights
            rows.append((dt, f"{w / 1e9:,.2f} GB"))
        console.print(table("weights by dtype", rows, ("dtype", "weights (1 GB = 1e9 B)")))
        dtype = "fp32"
    est = estimate_memory(target, dtype=dtype, **kw)
    title = f"{mode} memory, {dtype}" + (f", {parallelism} x {n_gpus} GPUs" if parallelism != "none" else "")
    console.print(table(title, [(name, gb, note) for name, _, gb, note in est.rows()], ("item", "size", "note")))
    weights = est.weights or 1
    console.print(f"total = {est.total / weights:.1f}x the weights", highlight=False)
    for note in est.notes:
        console.print(f"note: {note}", highlight=False)
    if parallelism == "none" and n_gpus > 1 or parallelism != "none":
        rows = []
        for strat in ("ddp", "zero1", "zero2", "zero3"):
            e = estimate_memory(target, dtype=dtype, **{**kw, "parallelism": strat})
            rows.append((strat, f"{e.model_states / 1e9:,.2f} GB", f"{e.total / 1e9:,.2f} GB"))
        console.print(table(f"per GPU across {n_gpus} GPUs", rows, ("strategy", "model states", "total")))


@estimate_app.command("compute")
def estimate_compute_cmd(
    params: Optional[float] = typer.Option(None, "--params", help="Parameter count, e.g. 70e9."),
    tokens: Optional[float] = typer.Option(None, "--tokens", help="Training tokens (default: Chinchilla-optimal "
                                           "20 per parameter)."),
    budget_flops: Optional[float] = typer.Option(None, "--budget-flops", help="Compute budget in FLOPs: plan the "
                                                 "compute-optimal model size and tokens."),
    budget_pf_days: Optional[float] = typer.Option(None, "--budget-pf-days", help="Budget in petaflop/s-days."),
    n_gpus: int = typer.Option(1, help="GPUs, for the wall-clock time."),
    peak_tflops: Optional[float] = typer.Option(None, help="Peak TFLOP/s per GPU (e.g. 989 for H100 bf16)."),
    mfu: float = typer.Option(0.4, help="Model FLOPs utilisation assumed for the time."),
) -> None:
    """Training compute: 6·N·D FLOPs, petaflop/s-days, Chinchilla-optimal tokens, budget plans."""
    from llmcycle.errors import LLMCycleError
    from llmcycle.estimate import plan_budget, plan_training

    if params is not None and (budget_flops or budget_pf_days):
        raise LLMCycleError("give --params (with optional --tokens) or a budget (--budget-flops / --budget-pf-days)")
    if params is not None:
        plan = plan_training(params, tokens, n_gpus=n_gpus, peak_tflops=peak_tflops, mfu=mfu)
        title = "training compute"
    elif budget_flops or budget_pf_days:
        plan = plan_budget(budget_flops, pf_days=budget_pf_days, n_gpus=n_gpus, peak_tflops=peak_tflops, mfu=mfu)
        title = "compute-optimal plan for the budget (Chinchilla: D = 20 N, C = 6 N D)"
    else:
        raise LLMCycleError("give --params (e.g. 70e9) or a budget (--budget-flops 1e23 / --budget-pf-days 100)")
    console.print(table(title, plan.rows(), ("item", "value")))
    console.print(f"Chinchilla-optimal tokens: {plan.chinchilla_tokens:.3e}", highlight=False)


@app.command("reference")
def reference_cmd() -> None:
    """Print the recipe reference (every field of every stage, generated from the config classes)."""
    from llmcycle.lifecycle.reference import recipe_reference

    print(recipe_reference())


@app.command("evaluate")
def evaluate_cmd(
    models: List[str] = typer.Argument(..., help="Models: SOURCE, NAME=SOURCE or SOURCE+ADAPTER_DIR (repeat)."),
    data: str = typer.Option("builtin:dialogues", help="Data source (builtin, file, directory, hub id)."),
    split: str = typer.Option("test", help="Split to evaluate on."),
    n: Optional[int] = typer.Option(None, help="Seeded subsample of n examples."),
    template: str = typer.Option("none", help="Prompt template name."),
    max_new_tokens: int = typer.Option(64, help="Most tokens generated per example."),
    num_beams: int = typer.Option(1, help="Beam search width."),
    baseline: Optional[str] = typer.Option(None, help="Model name improvements are measured against."),
    metric: Optional[List[str]] = typer.Option(None, "--metric", help="rouge | bleu | chrf | toxicity | length "
                                               "(repeat; default rouge, bleu, toxicity, length)."),
    side_by_side: int = typer.Option(5, help="Examples shown side by side."),
    batch_size: int = typer.Option(8, help="Generation batch size."),
    runs_dir: str = typer.Option("runs", help="Where the run directory is created."),
) -> None:
    """Evaluate and compare models: predictions, metrics with CIs, improvements, report (Markdown + HTML)."""
    from llmcycle.data import load_data
    from llmcycle.evaluation.evaluate import EvaluateConfig, evaluate_models
    from llmcycle.lifecycle.report import write_report
    from llmcycle.lifecycle.rundir import RunDir

    cfg = EvaluateConfig.from_dict({
        "models": models, "baseline": baseline, "template": template, "batch_size": batch_size,
        "generation": {"max_new_tokens": max_new_tokens, "num_beams": num_beams},
        "n_side_by_side": side_by_side, **({"metrics": metric} if metric else {})}, where="evaluate")
    rows = load_data(data, split=split, n=n)[split if split != "dev" else "validation"]
    run = RunDir.create(runs_dir, "evaluate")
    result = evaluate_models(cfg, rows, run.file("evaluate"), progress=lambda m: console.print(f"  {m}"))
    text = f"# llmcycle evaluate\n\n- data: `{data}`, split `{split}`, {len(rows)} examples\n\n{result.section}"
    write_report(run.path, text, "llmcycle evaluate")
    shown = [(r.model, r.metric, f"{r.value:.4f}",
              f"[{r.ci_low:.4f}, {r.ci_high:.4f}]" if r.ci_low is not None else "",
              f"{r.delta_points:+.2f}" if r.delta_points is not None else "",
              f"{r.p_value:.3f}" if r.p_value is not None else "") for r in result.rows]
    console.print(table(f"baseline: {result.baseline}", shown,
                        ("model", "metric", "value", "95% CI", "improvement (points)", "paired p")))
    console.print(f"[green]done[/green]: {run.path}/report.html")


@app.command("prompt-lab")
def prompt_lab_cmd(
    model: str = typer.Argument(..., help="Hub id, local directory or builtin:NAME."),
    data: str = typer.Option("builtin:dialogues", help="Data source: evaluation split + train split for shots."),
    split: str = typer.Option("test", help="Split to evaluate on."),
    n: int = typer.Option(10, help="Examples per cell."),
    template: Optional[List[str]] = typer.Option(None, "--template", help="Template names (repeat); default: "
                                                 "none, instruction, flan."),
    shots: Optional[List[int]] = typer.Option(None, "--shots", help="Shot counts (repeat); default 0, 1, 3."),
    setting: Optional[List[str]] = typer.Option(None, "--setting", help="Generation settings (repeat): a preset "
                                                "name or 'LABEL:field=value,...'; default greedy and "
                                                "sampling t=0.7."),
    selection: str = typer.Option("random", help="Shot selection: first | random | nearest."),
    max_new_tokens: int = typer.Option(48, help="Most tokens generated per example."),
    seed: int = typer.Option(42, help="Seed for shot draws and sampling."),
    runs_dir: str = typer.Option("runs", help="Where the run directory is created."),
) -> None:
    """Prompt engineering as an experiment: templates x shots x generation settings, scored with ROUGE."""
    from llmcycle.data import load_data
    from llmcycle.lifecycle.report import write_report
    from llmcycle.lifecycle.rundir import RunDir
    from llmcycle.models import load_model
    from llmcycle.prompts.lab import PromptLabConfig, lab_section, parse_setting, run_prompt_lab

    fields: dict[str, Any] = {"n_examples": n, "selection": selection, "max_new_tokens": max_new_tokens, "seed": seed}
    if template:
        fields["templates"] = template
    if shots:
        fields["shots"] = shots
    if setting:
        fields["generation"] = dict(parse_setting(s) for s in setting)
    cfg = PromptLabConfig.from_dict(fields, where="prompt-lab")
    ds = load_data(data)
    if split not in ds:
        from llmcycle.errors import LLMCycleError

        raise LLMCycleError(f"--split {split!r}: {data} has splits {', '.join(ds)}")
    loaded = load_model(model)
    run = RunDir.create(runs_dir, "prompt-lab")
    cells = run_prompt_lab(loaded, ds[split], ds["train"] if "train" in ds else None, cfg, run.file("prompt-lab"),
                           progress=lambda m: console.print(f"  {m}", highlight=False))
    text = f"# llmcycle prompt lab: `{model}` on `{data}` ({split})\n\n" + lab_section(
        cells, ds[split], cfg, run.file("prompt-lab"), "prompt-lab")
    write_report(run.path, text, "llmcycle prompt lab")
    rows = [(c.template, c.shots, c.generation, f"{c.rouge['rouge1']:.4f}", f"{c.rouge['rougeL']:.4f}",
             c.n_dropped_shots, c.n_truncated) for c in sorted(cells, key=lambda c: -c.rouge["rouge1"])]
    console.print(table("prompt lab (ranked by ROUGE-1)", rows,
                        ("template", "shots", "generation", "ROUGE-1", "ROUGE-L", "dropped shots", "truncated")))
    console.print(f"[green]done[/green]: {run.path}/report.html")
