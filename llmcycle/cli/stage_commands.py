"""The stage commands: ``tune``, ``align``, ``optimize``, ``evaluate``, ``prompt-lab``, each a one-stage recipe
(``llmcycle.cli.onestage``); ``tune-compare`` puts tune runs side by side. Option help comes from the
config fields (documented once); ``--set FIELD=VALUE`` reaches every field, ``generation.*`` included."""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from llmcycle.alignment.align import AlignConfig, AlignEvalOptions
from llmcycle.cli.onestage import run_one_stage
from llmcycle.cli.output import console, field_help
from llmcycle.core.config import DataConfig
from llmcycle.evaluation.evaluate import EvaluateConfig, parse_model_spec
from llmcycle.evaluation.prompt_lab import PromptLabConfig, parse_setting
from llmcycle.models.hub import HubOptions
from llmcycle.optimize.config import MeasureOptions, OptimizeConfig
from llmcycle.recipe.rundir import RunDir
from llmcycle.report import write_report
from llmcycle.stages import get_stage
from llmcycle.tuning.config import TuneConfig
from llmcycle.tuning.report import load_tune_runs, methods_section

SET_HELP = ("Any field of the stage (--set lora.r=32, --set generation.no_repeat_ngram_size=3), of the model "
            "(--set model.dtype=bf16) or of the data (--set data.n=100); see `llmcycle reference`. Repeatable.")
RUN_DIR_HELP = ("Resume this run directory (finished work is reused), or create it when missing; needed under "
                "`accelerate launch`, so every process shares one.")
RUNS_DIR_HELP = "Where new run directories go (default: runs)."
PUSH_HELP = field_help(HubOptions, "repo_id", "Given: push the saved model (with its model card) there once it is "
                       "saved (hub.push: true, hub.repo_id; --set hub.private=false, --set hub.token_env=...).")


def with_push(fields: dict[str, Any], repo_id: str | None) -> dict[str, Any]:
    """``fields`` with the ``hub`` block ``--push-to-hub REPO_ID`` asks for."""
    return fields | {"hub": {"push": True, "repo_id": repo_id}} if repo_id else fields


TEMPLATES_FILE_HELP = ("A YAML file of your own prompt templates (name, text, ...), usable by name with --template "
                       "(the recipe field templates_file).")


def tune_cmd(
    model: str = typer.Argument(..., help="Hub id, local directory or builtin:NAME."),
    data: str = typer.Option("builtin:dialogues", help=field_help(DataConfig, "source", "It needs a train split.")),
    method: str = typer.Option("lora", help=field_help(TuneConfig, "method")),
    max_steps: Optional[int] = typer.Option(None, help=field_help(TuneConfig, "max_steps")),
    epochs: float = typer.Option(1.0, help=field_help(TuneConfig, "epochs")),
    learning_rate: float = typer.Option(1e-4, "--lr", help=field_help(TuneConfig, "learning_rate")),
    batch_size: int = typer.Option(8, help=field_help(TuneConfig, "batch_size")),
    template: Optional[List[str]] = typer.Option(None, "--template", help=field_help(TuneConfig, "templates")),
    templates_file: Optional[str] = typer.Option(None, "--templates-file", help=TEMPLATES_FILE_HELP),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    n: Optional[int] = typer.Option(None, help=field_help(DataConfig, "n")),
    push_to_hub: Optional[str] = typer.Option(None, "--push-to-hub", metavar="REPO_ID", help=PUSH_HELP),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help=RUN_DIR_HELP),
    runs_dir: Optional[str] = typer.Option(None, help=RUNS_DIR_HELP),
) -> None:
    """Fine-tune (full, LoRA, prompt tuning, selective) with exact resume: model or adapter, metrics, loss curve,
    report."""
    fields: dict[str, Any] = {"method": method, "epochs": epochs, "learning_rate": learning_rate,
                              "batch_size": batch_size}
    if max_steps is not None:
        fields["max_steps"] = max_steps
    if template:
        fields["templates"] = template
    run_one_stage("tune", model, {"source": data, "n": n}, with_push(fields, push_to_hub), set_, run_dir, runs_dir,
                  templates_file)


def tune_compare_cmd(
    runs: List[str] = typer.Argument(..., help="Run directories with tune stages (from `llmcycle tune` or a recipe) "
                                     "or their NN-tune folders."),
    out: Optional[str] = typer.Option(None, help="Folder for report.md / report.html (default: a new run dir)."),
    runs_dir: str = typer.Option("runs", help="Where the new run directory goes when --out is not given."),
) -> None:
    """Compare fine-tuning runs side by side: trainable share, time, losses, saved size, loss curves."""
    from pathlib import Path

    loaded = load_tune_runs([Path(r) for r in runs])
    folder = Path(out) if out else RunDir.create(runs_dir, "tune-compare").path
    folder.mkdir(parents=True, exist_ok=True)
    text = "# llmcycle tune-compare\n\n" + methods_section(loaded, folder)
    write_report(folder, text, "llmcycle tune-compare")
    console.print(f"done: {folder}/report.html", highlight=False, markup=False, soft_wrap=True)


def align_cmd(
    model: str = typer.Argument(..., help="The model to align: hub id, local directory (a tuned model or adapter) "
                                "or builtin:NAME."),
    data: str = typer.Option("builtin:dialogues", help="Data with a train split (PPO prompts) and a held-out split."),
    reward: str = typer.Option("profanity", help="Reward source: profanity | classifier | reward_model | callable "
                               "(more with --set reward.model=... --set reward.label=...)."),
    steps: int = typer.Option(20, help="PPO steps per seed (--set ppo.steps)."),
    seeds: Optional[List[int]] = typer.Option(None, "--seed", help=field_help(AlignConfig, "seeds", "Repeat: "
                                              "--seed 0 --seed 1; default 0.")),
    toxicity_scorer: Optional[str] = typer.Option(None, help="Toxicity scorer of the before/after evaluation "
                                                  "(--set evaluation.scorer): " + field_help(AlignEvalOptions, "scorer")),
    toxicity_label: Optional[str] = typer.Option(None, help="(--set evaluation.scorer_label) " + field_help(
        AlignEvalOptions, "scorer_label")),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    n: Optional[int] = typer.Option(None, help=field_help(DataConfig, "n")),
    push_to_hub: Optional[str] = typer.Option(None, "--push-to-hub", metavar="REPO_ID", help=PUSH_HELP + " The "
                                              "model of the first seed (or hand_on_seed) is pushed."),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help=RUN_DIR_HELP),
    runs_dir: Optional[str] = typer.Option(None, help=RUNS_DIR_HELP),
) -> None:
    """Align a model with PPO (KL-penalised) or DPO per seed; toxicity, ROUGE and KL before vs after."""
    fields: dict[str, Any] = {"reward": {"source": reward}, "ppo": {"steps": steps}, "hand_on": False}
    if seeds:
        fields["seeds"] = list(seeds)
    evaluation = {k: v for k, v in (("scorer", toxicity_scorer), ("scorer_label", toxicity_label)) if v is not None}
    if evaluation:
        fields["evaluation"] = evaluation
    run_one_stage("align", model, {"source": data, "n": n}, with_push(fields, push_to_hub), set_, run_dir, runs_dir)


def optimize_cmd(
    model: str = typer.Argument(..., help="The model to optimise: a tuned model directory, an adapter directory "
                                "(method merge), a hub id or builtin:NAME."),
    method: Optional[List[str]] = typer.Option(None, "--method", "-m", help=field_help(
        OptimizeConfig, "methods", "Repeat for several; default int8.")),
    data: str = typer.Option("builtin:dialogues", help="Data: the evaluation split measures every variant; distil "
                             "trains on its train split."),
    split: str = typer.Option("test", help="Split the variants are measured on."),
    n: int = typer.Option(32, help=field_help(MeasureOptions, "n")),
    sparsity: Optional[float] = typer.Option(None, help="Shortcut for --set prune.sparsity=..."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP + " E.g. --set prune.scope=layer, "
                                             "--set distil.train.max_steps=300."),
    push_to_hub: Optional[str] = typer.Option(None, "--push-to-hub", metavar="REPO_ID", help=PUSH_HELP + " With "
                                              "several methods, --set hand_on=METHOD names the variant pushed."),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help=RUN_DIR_HELP),
    runs_dir: Optional[str] = typer.Option(None, help=RUNS_DIR_HELP),
) -> None:
    """Quantise, prune, distil or merge a model; report size, speed and ROUGE of each against the original."""
    fields: dict[str, Any] = {"methods": list(method or ["int8"]), "measure": {"n": n}}
    if sparsity is not None:
        fields["prune"] = {"sparsity": sparsity}
    run_one_stage("optimize", model, {"source": data, "split": split}, with_push(fields, push_to_hub), set_, run_dir,
                  runs_dir)


def evaluate_cmd(
    models: List[str] = typer.Argument(..., help=field_help(EvaluateConfig, "models")),
    data: str = typer.Option("builtin:dialogues", help=field_help(DataConfig, "source")),
    split: str = typer.Option("test", help="Split to evaluate on."),
    n: Optional[int] = typer.Option(None, help=field_help(DataConfig, "n")),
    template: str = typer.Option("none", help=field_help(EvaluateConfig, "template")),
    templates_file: Optional[str] = typer.Option(None, "--templates-file", help=TEMPLATES_FILE_HELP),
    max_new_tokens: int = typer.Option(64, help="Most tokens generated per example (--set generation.* sets any "
                                       "other decoding field)."),
    num_beams: int = typer.Option(1, help="Beam search width."),
    baseline: Optional[str] = typer.Option(None, help=field_help(EvaluateConfig, "baseline")),
    metric: Optional[List[str]] = typer.Option(None, "--metric", help=field_help(EvaluateConfig, "metrics",
                                                                                 "Repeat for several.")),
    side_by_side: int = typer.Option(5, help=field_help(EvaluateConfig, "n_side_by_side")),
    toxicity_scorer: str = typer.Option("profanity-check", help=field_help(EvaluateConfig, "toxicity_scorer")),
    toxicity_label: Optional[str] = typer.Option(None, help=field_help(EvaluateConfig, "toxicity_label")),
    batch_size: int = typer.Option(8, help=field_help(EvaluateConfig, "batch_size")),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help=RUN_DIR_HELP),
    runs_dir: Optional[str] = typer.Option(None, help=RUNS_DIR_HELP),
) -> None:
    """Evaluate and compare models: predictions, metrics with CIs, improvements, paired tests, report."""
    fields: dict[str, Any] = {"models": models, "baseline": baseline, "template": template, "batch_size": batch_size,
                              "generation": {"max_new_tokens": max_new_tokens, "num_beams": num_beams},
                              "n_side_by_side": side_by_side, "toxicity_scorer": toxicity_scorer,
                              "toxicity_label": toxicity_label, **({"metrics": metric} if metric else {})}
    first = parse_model_spec(models[0]).source
    run_one_stage("evaluate", first, {"source": data, "split": split, "n": n}, fields, set_, run_dir, runs_dir,
                  templates_file)


def prompt_lab_cmd(
    model: str = typer.Argument(..., help="Hub id, local directory or builtin:NAME."),
    data: str = typer.Option("builtin:dialogues", help="Data source: evaluation split + train split for shots."),
    split: str = typer.Option("test", help="Split to evaluate on."),
    n: int = typer.Option(10, help=field_help(PromptLabConfig, "n_examples")),
    template: Optional[List[str]] = typer.Option(None, "--template", help=field_help(PromptLabConfig, "templates",
                                                                                     "Repeat for several.")),
    templates_file: Optional[str] = typer.Option(None, "--templates-file", help=TEMPLATES_FILE_HELP),
    shots: Optional[List[int]] = typer.Option(None, "--shots", help=field_help(PromptLabConfig, "shots",
                                                                              "Repeat for several.")),
    setting: Optional[List[str]] = typer.Option(None, "--setting", help="Generation settings (repeat): a preset "
                                                "name or 'LABEL:field=value,...' (any generation field); default "
                                                "greedy and sampling t=0.7."),
    selection: str = typer.Option("random", help=field_help(PromptLabConfig, "selection")),
    max_new_tokens: int = typer.Option(48, help=field_help(PromptLabConfig, "max_new_tokens")),
    seed: int = typer.Option(42, help=field_help(PromptLabConfig, "seed")),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help=RUN_DIR_HELP),
    runs_dir: Optional[str] = typer.Option(None, help=RUNS_DIR_HELP),
) -> None:
    """Prompt engineering as an experiment: templates x shots x generation settings, scored with ROUGE."""
    fields: dict[str, Any] = {"n_examples": n, "selection": selection, "max_new_tokens": max_new_tokens, "seed": seed}
    if template:
        fields["templates"] = template
    if shots:
        fields["shots"] = shots
    if setting:
        fields["generation"] = dict(parse_setting(s) for s in setting)
    run_one_stage("prompt_lab", model, {"source": data, "split": split}, fields, set_, run_dir, runs_dir,
                  templates_file)


def stage_cmd(
    kind: str = typer.Argument(..., help="A stage kind (`llmcycle reference` lists them and their fields)."),
    model: str = typer.Argument(..., help="Hub id, local directory or builtin:NAME."),
    data: str = typer.Option("builtin:dialogues", help=field_help(DataConfig, "source")),
    split: Optional[str] = typer.Option(None, help=field_help(DataConfig, "split")),
    n: Optional[int] = typer.Option(None, help=field_help(DataConfig, "n")),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help=RUN_DIR_HELP),
    runs_dir: Optional[str] = typer.Option(None, help=RUNS_DIR_HELP),
) -> None:
    """Run any stage kind on a model as a one-stage recipe (every field through --set), e.g. a stage of your own."""
    get_stage(kind, where="KIND")
    run_one_stage(kind, model, {"source": data, "split": split, "n": n}, {}, set_, run_dir, runs_dir)
