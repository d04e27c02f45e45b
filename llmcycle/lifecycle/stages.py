"""Stage functions of the recipe runner: ``stage(ctx, cfg, out_dir) -> markdown section``.

Each one calls a library function, writes its outputs into ``out_dir`` atomically and returns
the report section. Nothing here computes anything itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from llmcycle.lifecycle.recipe import EstimateStage, GenerateStage, InfoStage
from llmcycle.lifecycle.report import md_table
from llmcycle.lifecycle.rundir import atomic_write_json, atomic_write_jsonl


def _md_escape(text: str) -> str:
    """Keep tokens like ``[CLS](101)`` and ``*`` literal in Markdown."""
    for ch in "\\[]*_`":
        text = text.replace(ch, "\\" + ch)
    return text.replace("<", "&lt;").replace(">", "&gt;")


def info_stage(ctx: Any, cfg: InfoStage, out: Path) -> str:
    from llmcycle.models.info import describe

    card = describe(ctx.model, dtype=ctx.recipe.model.dtype)
    atomic_write_json(out / "model_card.json", card.to_dict())
    section = f"## Model card\n\n{md_table(['property', 'value'], [list(r) for r in card.rows()])}"
    if cfg.trace:
        from llmcycle.models.trace import trace

        steps = trace(ctx.model, cfg.trace)
        atomic_write_json(out / "trace.json", [{"title": s.title, "lines": s.lines} for s in steps])
        walk = "\n".join(f"- **{s.title}**: " + " / ".join(_md_escape(x) for x in s.lines) for s in steps)
        section += f"\n### Walking a text through the model\n\nInput: `{cfg.trace}`\n\n{walk}\n"
    return section


def estimate_stage(ctx: Any, cfg: EstimateStage, out: Path) -> str:
    from llmcycle.errors import LLMCycleError
    from llmcycle.estimate import ArchSpec, estimate_memory, plan_training

    model = ctx.model.model
    n_params = sum(p.numel() for p in model.parameters())
    try:
        target: Any = ArchSpec.from_config(model.config)
    except LLMCycleError:
        target = n_params  # family the estimator cannot read: rule-of-thumb activations only
    shape = dict(batch_size=cfg.batch_size, input_len=cfg.input_tokens, output_len=cfg.output_tokens,
                 grad_checkpointing=cfg.gradient_checkpointing)
    estimates = {
        "inference": estimate_memory(target, dtype=cfg.dtype, mode="inference"),
        "training, rule of thumb": estimate_memory(n_params, dtype=cfg.dtype, mode="training"),
        f"training, batch {cfg.batch_size} x {cfg.input_tokens}/{cfg.output_tokens} tokens":
            estimate_memory(target, dtype=cfg.dtype, mode="training", **shape)
            if not isinstance(target, int) else None,
    }
    plan = plan_training(n_params, cfg.train_tokens)
    atomic_write_json(out / "estimates.json", {"memory": {k: v.to_dict() for k, v in estimates.items() if v},
                                               "compute": plan.__dict__})
    rows = [[k, f"{v.weights / 1e9:.3f}", f"{(v.gradients + v.optimizer_states) / 1e9:.3f}",
             f"{v.activations / 1e9:.3f}", f"{v.total / 1e9:.3f}"] for k, v in estimates.items() if v]
    mem = md_table(["memory", "weights GB", "grads + Adam GB", "activations GB", "total GB"], rows)
    return (f"## Memory and compute estimates ({cfg.dtype})\n\n{mem}\n"
            f"{md_table(['compute', 'value'], [list(r) for r in plan.rows()])}")


def generate_stage(ctx: Any, cfg: GenerateStage, out: Path) -> str:
    from rich.progress import Progress

    from llmcycle.generation import GenerationSettings, generate
    from llmcycle.prompts import build_prompts

    split = ctx.recipe.data.split or "test"
    data = ctx.data
    if split not in data:
        split = list(data.keys())[-1]
    rows = data[split].select(range(min(cfg.n_examples, len(data[split]))))
    settings = GenerationSettings(**cfg.model_dump(include=set(GenerationSettings.model_fields)))
    prompts = build_prompts(cfg.template, rows, tokenizer=ctx.model.tokenizer)
    with Progress(transient=True) as bar:
        task = bar.add_task(f"generating {len(rows)} outputs", total=len(rows))
        preds = generate(ctx.model, prompts.texts, settings, batch_size=cfg.batch_size,
                         max_input_tokens=prompts.summary.max_tokens, on_batch=lambda n: bar.advance(task, n))
    records = [{"input": r["input"], "prompt": b.text, "input_truncated": b.input_truncated,
                "references": r["references"], "prediction": p} for r, b, p in zip(rows, prompts.prompts, preds)]
    atomic_write_jsonl(out / "predictions.jsonl", records)
    caveat = ""
    if ctx.model.untrained or ctx.recipe.model.source == "builtin:minilm-seq2seq":
        caveat = ("\n> Before fine-tuning, builtin:minilm-seq2seq's cross-attention is freshly initialised, so these "
                  "outputs are not yet summaries; the tune stage teaches it. Random (untrained) models print noise.\n")
    body = md_table(["#", "reference", "model output"],
                    [[i + 1, r["references"][0] if r["references"] else "", r["prediction"]]
                     for i, r in enumerate(records)])
    return f"## Generated outputs ({split} split, {len(records)} examples)\n{caveat}\n{body}"


def evaluate_stage(ctx: Any, cfg: Any, out: Path) -> str:
    from llmcycle.evaluation.evaluate import evaluate_models

    m = ctx.recipe.model
    own = m.source + (f"+{m.adapter}" if m.adapter else "")
    preloaded = {}
    if not cfg.models and len(ctx.tuned) > 1:  # after several tune stages: base vs each tuned model
        specs = [f"{label}={path}" for label, path in ctx.tuned]
        cfg = cfg.model_copy(update={"models": [f"base={own}", *specs]})
        preloaded[specs[-1]] = ctx.model
    elif not cfg.models and ctx.tuned_dir is not None:  # after a tune (or align) stage: base vs its model
        label = ctx.tuned[-1][0] if ctx.tuned and ctx.tuned[-1][0].startswith("aligned") else "tuned"
        tuned = f"{label}={ctx.tuned_dir}"
        cfg = cfg.model_copy(update={"models": [f"base={own}", tuned]})
        preloaded[tuned] = ctx.model
    elif not cfg.models:  # the recipe's own model
        cfg = cfg.model_copy(update={"models": [own]})
        preloaded[own] = ctx.model
    split = ctx.recipe.data.split or "test"
    data = ctx.data
    rows = data[split] if split in data else data[list(data.keys())[-1]]
    return evaluate_models(cfg, rows, out, progress=ctx.progress, preloaded=preloaded).section


def prompt_lab_stage(ctx: Any, cfg: Any, out: Path) -> str:
    from llmcycle.prompts.lab import lab_section, run_prompt_lab

    data = ctx.data
    split = ctx.recipe.data.split or "test"
    rows = data[split] if split in data else data[list(data.keys())[-1]]
    pool = data["train"] if "train" in data else None
    if pool is None and any(cfg.shots):
        from llmcycle.data import load_data_from_config

        pool = load_data_from_config(ctx.recipe.data.model_copy(update={"split": "train", "n": None}))["train"]
    cells = run_prompt_lab(ctx.model, rows, pool, cfg, out, progress=ctx.progress)
    return lab_section(cells, rows, cfg, out, out.name)


def tune_stage(ctx: Any, cfg: Any, out: Path) -> str:
    from llmcycle.tuning import train
    from llmcycle.tuning.report import tune_section

    data = _with_train_split(ctx)  # the recipe may read one split for evaluation: training needs its own
    if cfg.start == "recipe_model" and ctx.tuned:  # compare methods side by side: start again from the recipe's model
        from llmcycle.models import load_model

        m = ctx.recipe.model
        ctx.progress(f"loading model {m.source} afresh (tune.start: recipe_model)")
        base = load_model(m.source, weights=m.weights, dtype=m.dtype, device=m.device, revision=m.revision,
                          adapter=m.adapter)
    else:
        base = ctx.model
    result = train(base, data, cfg, out / "tune")
    ctx.add_tuned(cfg.method, out / "tune" / "model")
    ctx._model = result.loaded or base
    return tune_section(result, ctx.recipe.model.source, out / "tune", f"{out.name}/tune")


def _with_train_split(ctx: Any) -> Any:
    """The recipe's data with every split (a recipe may read one split for evaluation)."""
    if "train" in ctx.data:
        return ctx.data
    from llmcycle.data import load_data_from_config

    return load_data_from_config(ctx.recipe.data.model_copy(update={"split": None}))


def align_stage(ctx: Any, cfg: Any, out: Path) -> str:
    """PPO per seed from the tuned model (or the recipe's model), before/after evaluation."""
    from llmcycle.alignment.align import align_section, run_align
    from llmcycle.models import load_model

    m = ctx.recipe.model

    def make_model() -> Any:
        if ctx.tuned_dir is not None:
            return load_model(str(ctx.tuned_dir), dtype=m.dtype, device=m.device)
        return load_model(m.source, weights=m.weights, dtype=m.dtype, device=m.device, revision=m.revision,
                          adapter=m.adapter)

    result = run_align(make_model, _with_train_split(ctx), cfg, out / "align")
    return align_section(result, out / "align", f"{out.name}/align")


def optimize_stage(ctx: Any, cfg: Any, out: Path) -> str:
    """Quantise / prune / distil / merge the current model (the tuned one after a tune stage), measured alike."""
    from llmcycle.optimize import optimize_section, run_optimize

    split = ctx.recipe.data.split or "test"
    data = ctx.data
    rows = data[split] if split in data else data[list(data.keys())[-1]]
    train_data = _with_train_split(ctx) if "distil" in cfg.methods else None
    result = run_optimize(ctx.model, rows, cfg, out / "optimize", train_data=train_data, progress=ctx.progress)
    return optimize_section(result, f"{out.name}/optimize")


def serve_stage(ctx: Any, cfg: Any, out: Path) -> str:
    """Serve the current model (the tuned one after a tune stage) on loopback and call it over HTTP."""
    from llmcycle.prompts import build_prompts
    from llmcycle.serving.smoke import smoke_section, smoke_test

    split = ctx.recipe.data.split or "test"
    data = ctx.data
    rows = data[split] if split in data else data[list(data.keys())[-1]]
    rows = [dict(rows[i]) for i in range(min(cfg.requests, len(rows)))]
    loaded = ctx.model
    prompts = build_prompts(cfg.template, rows, tokenizer=loaded.tokenizer).texts
    result = smoke_test(loaded, prompts, cfg, out)
    label = str(ctx.tuned_dir) if ctx.tuned_dir is not None else ctx.recipe.model.source
    return smoke_section(result, label)


STAGES: dict[str, Callable[[Any, Any, Path], str]] = {
    "info": info_stage,
    "prompt_lab": prompt_lab_stage,
    "estimate": estimate_stage,
    "generate": generate_stage,
    "evaluate": evaluate_stage,
    "tune": tune_stage,
    "align": align_stage,
    "optimize": optimize_stage,
    "serve": serve_stage,
}
