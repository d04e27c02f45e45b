"""Stages compose: every ordered pair of stage kinds runs on a tiny model, and chains that cannot work are refused
before any work, naming both stages.

One recipe walks an Eulerian circuit of the complete directed graph of stage kinds (self-loops included), so each
ordered pair (A, B) appears as consecutive stages exactly once, with model hand-offs of every kind along the way:
the recipe's weights, full and selective fine-tuned weights, LoRA adapters (also stacked on one another), PPO and
DPO aligned models (weights and LoRA), pruned and merged variants. Two hand-offs only some stages can start from
(an int8 model, a prompt-tuning adapter: nothing can be trained on them) end the chain, each followed by every
stage kind that can read it; a separate test proves the planner refuses the impossible chains before any work.

The application stages (rag, cot, pal, agent: any stage kind beyond the model lifecycle's) read a model and hand it
on unchanged, so the circuit runs over the lifecycle's kinds, and each application stage reads every form of model
instead: the recipe's weights (first), a LoRA adapter, an int8 model and a prompt-tuning adapter (in the tails).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llmcycle.apps.sandbox import sandbox_unavailable
from llmcycle.core.errors import ConfigError
from llmcycle.recipe.plan import plan_recipe
from llmcycle.recipe.recipe import Recipe
from llmcycle.recipe.runner import run_recipe
from llmcycle.stages import LIFECYCLE, stage_kinds

ALL_KINDS = stage_kinds()
KINDS = [k for k in ALL_KINDS if k in LIFECYCLE]  # the circuit's: stages of the model lifecycle
# stages that build models of their own from scratch (their chains: tests/pretrain/test_pretrain_chain.py)
MAKERS = {"pretrain", "scaling"}
APPS = [k for k in ALL_KINDS if k not in LIFECYCLE and k not in MAKERS]  # read a model, hand it on unchanged
TRAINS = {"tune", "align", "optimize"}  # stages that need weights they can change (not int8, not a prompt)
READERS = [k for k in ALL_KINDS if k not in TRAINS and k not in MAKERS]  # stages that can read any model


def eulerian_circuit(kinds: list[str]) -> list[str]:
    """A sequence in which every ordered pair of ``kinds`` (a kind after itself too) appears once as neighbours."""
    out_edges = {k: list(kinds) for k in kinds}
    stack, circuit = [kinds[0]], []
    while stack:
        v = stack[-1]
        if out_edges[v]:
            stack.append(out_edges[v].pop())
        else:
            circuit.append(stack.pop())
    return circuit[::-1]


def stage_settings(kind: str, i: int, pairs: Path) -> dict:
    """Tiny, fast settings for stage ``i`` (methods and hand-offs vary with ``i``)."""
    gen = {"max_new_tokens": 3}
    common_tune = {"max_steps": 1, "batch_size": 2, "save_every": 50, "max_input_tokens": 48,
                   "max_target_tokens": 8}
    if kind == "info":
        return {}
    if kind == "estimate":
        return {"batch_size": 2, "input_tokens": 32, "output_tokens": 8}
    if kind == "prompt_lab":
        return {"templates": ["none"], "shots": [0], "generation": {"greedy": {}}, "max_new_tokens": 3,
                "n_examples": 2}
    if kind == "generate":
        return {"n_examples": 2, "generation": gen}
    if kind == "evaluate":
        return {"generation": gen, "bootstrap_resamples": 100, "metrics": ["rouge"], "n_side_by_side": 1}
    if kind == "serve":
        return {"requests": 2, "clients": 2, "generation": gen}
    if kind == "tune":
        methods = ["lora", "full", "lora", "selective"]
        return {"method": methods[i % len(methods)], "lora": {"r": 2}, **common_tune}
    if kind == "align":
        variant = i % 3
        evaluation = {"n": 2, "samples": 1}
        if variant == 2:
            return {"method": "dpo", "pairs": str(pairs), "evaluation": evaluation,
                    "dpo": {"max_steps": 1, "batch_size": 2, "method": "lora", "lora": {"r": 2}}}
        return {"n_prompts": 4, "evaluation": evaluation,
                "ppo": {"steps": 1, "batch_size": 4, "mini_batch_size": 2, "ppo_epochs": 1,
                        "method": "lora" if variant else "full", "lora": {"r": 2},
                        "generation": {"max_new_tokens": 3, "temperature": 0.5}}}
    if kind == "optimize":
        hand_on = ["merge", "prune", None][i % 3]
        return {"methods": ["merge", "int8", "prune"], "hand_on": hand_on,
                "measure": {"n": 2, "latency_n": 0, "batch_size": 2, "generation": gen}}
    if kind == "rag":
        return {"corpus": {"data": "recipe"}, "queries": "references", "n_queries": 1, "k": 1,
                "index": {"chunk_tokens": 32, "chunk_overlap": 8}, "generation": gen}
    if kind == "cot":
        return {"n": 1, "samples": 1, "shots": 1, "generation": gen, "sampling": gen}
    if kind == "pal":
        return {"n": 1, "shots": 0, "generation": gen,
                "sandbox": {"unsafe_no_sandbox": sandbox_unavailable() is not None}}
    if kind == "agent":
        return {"n": 1, "tasks": ["builtin:arithmetic"], "tools": ["calculator"], "max_steps": 1, "examples": None,
                "generation": gen}
    raise AssertionError(kind)


def chain_recipe(tmp_path: Path, model: str, order: list[str]) -> Recipe:
    """The circuit, then an int8 hand-off and a prompt-tuning adapter, each read by every stage that can."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"#Person1#: hello {i}.", "chosen": "they greet.",
                                         "rejected": "they greet, what an idiot."}) + "\n" for i in range(4)))
    stages = [{k: stage_settings(k, i, pairs)} for i, k in enumerate(APPS)]  # the recipe's weights
    stages += [{k: stage_settings(k, i, pairs)} for i, k in enumerate(order)]  # i: the circuit's own positions
    gen = {"max_new_tokens": 3}
    stages.append({"tune": {"method": "lora", **stage_settings("tune", 0, pairs)}})  # a LoRA adapter
    stages += [{k: stage_settings(k, len(stages) + j, pairs)} for j, k in enumerate(APPS)]
    stages.append({"optimize": {"methods": ["int8"], "hand_on": "int8",
                                "measure": {"n": 2, "latency_n": 0, "batch_size": 2, "generation": gen}}})
    stages += [{k: stage_settings(k, len(stages) + j, pairs)} for j, k in enumerate(READERS)]
    stages.append({"tune": {"method": "prompt_tuning", "start": "recipe_model",
                            "prompt_tuning": {"n_virtual_tokens": 2}, "max_steps": 1, "batch_size": 2,
                            "save_every": 50, "max_input_tokens": 48, "max_target_tokens": 8}})
    stages += [{k: stage_settings(k, len(stages) + j, pairs)} for j, k in enumerate(READERS)]
    return Recipe.from_dict({"name": "chain", "runs_dir": str(tmp_path / "runs"), "model": {"source": model},
                             "data": {"source": "builtin:dialogues", "split": "test", "n": 4}, "stages": stages})


def test_the_circuit_covers_every_ordered_pair():
    order = eulerian_circuit(KINDS)
    assert set(zip(order, order[1:])) == {(a, b) for a in KINDS for b in KINDS}
    assert len(order) == len(KINDS) ** 2 + 1


@pytest.mark.slow
def test_every_ordered_pair_of_stage_kinds_runs_on_a_tiny_model(tmp_path):
    order = eulerian_circuit(KINDS)
    recipe = chain_recipe(tmp_path, "builtin:tiny-t5", order)
    steps = plan_recipe(recipe, tmp_path / "plan")
    kinds = [s.kind for s in steps]
    assert {(a, b) for a, b in zip(kinds, kinds[1:])} >= {(a, b) for a in KINDS for b in KINDS}
    received = {(s.kind, s.incoming.form, s.incoming.adapter_type) for s in steps}
    for kind in READERS:  # every reading stage received every form of model
        for form in (("weights", None), ("adapter", "lora"), ("adapter", "prompt_tuning"), ("quantized", None)):
            assert (kind, *form) in received, (kind, form)
    for kind in TRAINS:
        assert {(kind, "weights", None), (kind, "adapter", "lora")} <= received, kind

    run = run_recipe(recipe)
    steps = plan_recipe(recipe, run.path)  # the plan the run followed, with its folders
    done = sorted((p.name.removesuffix(".done.json") for p in (run.path / "stages").glob("*.done.json")),
                  key=lambda name: int(name.split("-", 1)[0]))  # 9-x before 10-x before 100-x
    assert done == [s.name for s in steps]  # every stage ran, in order, and finished
    report = (run.path / "report.md").read_text()
    assert "(not run)" not in report
    verdicts = re.findall(r"^## Serving smoke test: (.*)$", report, flags=re.M)
    assert len(verdicts) == kinds.count("serve")
    for verdict in verdicts:  # served and answered; a tiny random model may write only [PAD], and the smoke test
        if verdict != "passed":  # then fails saying so (and for no other reason)
            problems = verdict.removeprefix("**FAILED** (").removesuffix(")").split("; ")
            assert all(re.fullmatch(r"all \d+ completions came back empty|the streamed chat completion sent no text",
                                    p) for p in problems), verdict
    # every hand-off that was planned exists where the plan said, and each stage received what the one before
    # handed on
    for before, after in zip(steps, steps[1:]):
        if before.hands_on_new:
            assert Path(before.handoff.source).is_dir(), before.name
        if after.stage.receives(after.cfg, before.handoff, [steps[0].incoming]) == before.handoff:
            assert after.incoming == before.handoff
    # a merge with nothing to merge is recorded as skipped, never a failure
    skipped = [json.loads((run.path / s.name / "optimize_result.json").read_text())["skipped"]
               for s in steps if s.kind == "optimize" and s.incoming.form == "weights"]
    assert skipped and all("merge" in sk for sk in skipped)
    # an adapter trained on top of a handed-on LoRA adapter names that adapter as its base, and loads whole
    from llmcycle.models import load_model

    stacked = [s for s in steps if s.kind == "tune" and s.handoff.form == "adapter"
               and s.incoming.form == "adapter" and s.incoming.adapter_type == "lora"]
    assert stacked
    for s in stacked:
        config = json.loads((Path(s.handoff.source) / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == s.incoming.source
    assert load_model(stacked[0].handoff.source).kind == "seq2seq"


@pytest.mark.parametrize(
    "first, second, fragment",
    [
        ({"optimize": {"methods": ["int8"], "hand_on": "int8"}}, {"tune": {}}, "a quantised model is for inference"),
        ({"optimize": {"methods": ["int8"], "hand_on": "int8"}}, {"align": {}}, "a quantised model is for inference"),
        ({"optimize": {"methods": ["int8"], "hand_on": "int8"}}, {"optimize": {}}, "cannot be quantised"),
        ({"tune": {"method": "prompt_tuning"}}, {"tune": {}}, "prompt_tuning adapter cannot be merged"),
        ({"tune": {"method": "prompt_tuning"}}, {"optimize": {}}, "prompt_tuning adapter cannot be merged"),
    ],
)
def test_a_chain_that_cannot_work_is_refused_before_any_work_naming_both_stages(tmp_path, first, second, fragment):
    recipe = Recipe.from_dict({"name": "bad", "runs_dir": str(tmp_path / "runs"),
                               "model": {"source": "builtin:tiny-t5"}, "stages": [{"info": {}}, first, second]})
    with pytest.raises(ConfigError) as err:
        run_recipe(recipe)
    (kind1,), (kind2,) = first, second
    msg = str(err.value)
    assert f"stages[2].{kind2} cannot start from" in msg and f"from 02-{kind1}" in msg and fragment in msg
    assert not (tmp_path / "runs").exists()  # nothing was created


def test_optimize_hands_on_the_variant_it_names_and_serve_receives_it(tmp_path):
    recipe = Recipe.from_dict({
        "name": "t", "runs_dir": str(tmp_path / "runs"), "model": {"source": "builtin:tiny-t5"},
        "data": {"source": "builtin:dialogues", "split": "test", "n": 3},
        "stages": [{"optimize": {"methods": ["merge", "int8"], "hand_on": "int8",
                                 "measure": {"n": 2, "latency_n": 0, "generation": {"max_new_tokens": 3}}}},
                   {"serve": {"requests": 2, "clients": 2, "generation": {"max_new_tokens": 3}}}]})
    run = run_recipe(recipe)
    result = json.loads(run.file("01-optimize", "optimize_result.json").read_text())
    assert "no LoRA adapter" in result["skipped"]["merge"] and set(result["variants"]) == {"int8"}
    report = run.file("report.md").read_text()
    assert "int8 (quantised weights, from 01-optimize)" in report  # the serve section names what it served
    assert "| merge |" in report and "skipped: the model has no LoRA adapter" in report
    smoke = json.loads(run.file("02-serve", "serve_smoke.json").read_text())
    assert smoke["ok"] == 2 and smoke["failed"] == 0  # the int8 variant was served and answered
    # untrained tiny-t5 in int8 writes only [PAD] here: the smoke test says so instead of passing on nothing
    assert smoke["passed"] == (smoke["empty_outputs"] < smoke["ok"] and smoke["stream_chunks"] > 0)


def test_recipe_checked_whole_before_any_work_at_any_depth(tmp_path):
    from llmcycle.recipe.recipe import load_recipe

    for key in ("prompt_lab.generation.greedy.temprature", "evaluate.generation.temprature",
                "optimize.measure.generation.temprature", "serve.generation.temprature",
                "align.ppo.kl.init_coeff", "tune.lora.rank", "tune[0].lora.rank", "optimize.distil.train.lora.rank"):
        with pytest.raises(ConfigError) as err:
            load_recipe("quickstart", [f"{key}=0.5", f"runs_dir={tmp_path / 'runs'}"])
        dotted = key.split(".", 1)[1]
        assert f"{dotted}: unknown field; valid: " in str(err.value), (key, str(err.value))
    assert not (tmp_path / "runs").exists()
