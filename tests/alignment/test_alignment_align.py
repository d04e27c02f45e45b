"""run_align: PPO per seed from fresh copies, before/after evaluation, report section, finished seeds kept."""

from __future__ import annotations

import json

import pytest

import llmcycle.alignment.ppo as ppo_module
from llmcycle.alignment.align import AlignConfig, run_align
from llmcycle.core.errors import ConfigError
from llmcycle.stages.align import STAGE, align_section

CFG = {"seeds": [0, 1], "n_prompts": 8,
       "ppo": {"steps": 2, "batch_size": 4, "mini_batch_size": 2, "ppo_epochs": 1, "learning_rate": 1e-4,
               "save_every": 2, "generation": {"max_new_tokens": 6, "temperature": 0.5}},
       "evaluation": {"n": 3, "samples": 2, "generation": {"do_sample": True, "max_new_tokens": 6}}}



def test_align_runs_each_seed_from_a_fresh_model_and_keeps_finished_seeds(tmp_path, monkeypatch):
    from llmcycle.data import load_data
    from llmcycle.models import load_model

    data = load_data("builtin:dialogues", n=10)
    loads = []

    def make():
        loads.append(1)
        return load_model("builtin:tiny-t5")

    def reward(prompts, responses):
        return [float(len(r.split()) % 3) for r in responses]

    result = run_align(make, data, CFG, tmp_path, reward=reward)
    assert [s["seed"] for s in result["seeds"]] == [0, 1] and len(loads) == 3  # reference + one per seed
    before = result["before"]
    assert before["n_prompts"] == 3 and "kl_to_reference" not in before
    for s in result["seeds"]:
        assert s["steps"] == 2 and s["after"]["kl_to_reference"] >= 0 and len(s["reward_curve"]) == 2
        assert (tmp_path / f"seed-{s['seed']}" / "ppo_log.json").is_file()
    assert (tmp_path / "reward_by_seed.png").is_file() and (tmp_path / "kl_by_seed.png").is_file()
    saved = json.loads((tmp_path / "align_result.json").read_text())
    assert saved["before"] == json.loads(json.dumps(before))

    section = align_section(result, tmp_path, "align")
    assert "### seed 0" in section and "### seed 1" in section and "toxic-output rate (sampled)" in section
    assert "over 2 seeds" in section and "reward_by_seed.png" in section

    calls = []
    monkeypatch.setattr(ppo_module, "train_ppo", lambda *a, **k: calls.append(1))
    again = run_align(make, data, CFG, tmp_path, reward=reward)  # finished seeds are not re-run
    assert calls == [] and [s["seed"] for s in again["seeds"]] == [0, 1]


def test_align_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"align: ppo\.batch_size"):
        AlignConfig.from_dict({"ppo": {"batch_size": 0}}, where="align")
    with pytest.raises(ConfigError, match=r"align: seeds"):
        AlignConfig.from_dict({"seeds": []}, where="align")
    with pytest.raises(ConfigError, match=r"align: reward\.source"):
        AlignConfig.from_dict({"reward": {"source": "vibes"}}, where="align")


def test_align_ppo_ptx_trains_on_the_train_rows_references(tmp_path, monkeypatch):
    from llmcycle.core.errors import DataError
    from llmcycle.data import load_data
    from llmcycle.models import load_model

    data = load_data("builtin:dialogues", n=10)
    seen = {}

    def fake(loaded, prompts, reward, cfg, out, **kw):
        seen.update(kw, prompts=prompts, coef=cfg.ptx_coef)
        raise RuntimeError("stop here")

    monkeypatch.setattr(ppo_module, "train_ppo", fake)
    cfg = CFG | {"seeds": [0], "ppo": CFG["ppo"] | {"ptx_coef": 0.5}}
    with pytest.raises(RuntimeError, match="stop here"):
        run_align(lambda: load_model("builtin:tiny-t5"), data, cfg, tmp_path / "a", reward=lambda p, r: [0.0] * len(r))
    rows = data["train"].select(range(8))
    assert seen["coef"] == 0.5 and seen["ptx_data"] == [(r["input"], r["references"][0]) for r in rows]
    no_refs = data.map(lambda r: {"references": []})
    with pytest.raises(DataError, match=r"align\.ppo\.ptx_coef: .* train row 0 has none"):
        run_align(lambda: load_model("builtin:tiny-t5"), no_refs, cfg, tmp_path / "b",
                  reward=lambda p, r: [0.0] * len(r))


def test_recipe_tune_then_align_starts_from_the_tuned_model(tmp_path):
    from llmcycle.recipe.recipe import Recipe
    from llmcycle.recipe.runner import run_recipe

    recipe = Recipe.from_dict({
        "name": "a", "runs_dir": str(tmp_path / "runs"), "model": {"source": "builtin:tiny-t5"},
        "data": {"source": "builtin:dialogues", "split": "test", "n": 8},
        "stages": [{"tune": {"method": "lora", "lora": {"r": 4}, "max_steps": 2, "batch_size": 2, "save_every": 2}},
                   {"align": CFG | {"seeds": [0]}}]})
    run = run_recipe(recipe)
    result = json.loads(run.file("02-align", "align_result.json").read_text())
    assert [s["seed"] for s in result["seeds"]] == [0]
    report = run.file("report.md").read_text()
    assert "## Alignment (PPO)" in report and "02-align/reward_by_seed.png" in report
    # the PPO policy started from the tuned adapter: its saved model is an adapter on the builtin base
    assert (run.file("02-align", "seed-0", "model", "adapter_config.json")).is_file() or \
        (run.file("02-align", "seed-0", "model", "config.json")).is_file()


def test_align_cli(tmp_path, monkeypatch, capsys):
    from tests.cli_helpers import run_cli

    code, out, err = run_cli(monkeypatch, capsys, "align", "builtin:tiny-gpt2", "--steps", "2", "--n", "8",
                             "--set", "n_prompts=4", "--set", "ppo.batch_size=4", "--set", "ppo.mini_batch_size=2",
                             "--set", "ppo.generation.max_new_tokens=5", "--set", "evaluation.n=2",
                             "--set", "evaluation.generation.do_sample=true",
                             "--set", "evaluation.generation.max_new_tokens=5", "--run-dir", str(tmp_path / "r"))
    assert code == 0, err
    words = " ".join(out.split())
    assert (tmp_path / "r" / "report.html").is_file() and "before" in words and "toxic-output rate" in words
    result = json.loads((tmp_path / "r" / "01-align" / "align_result.json").read_text())
    assert result["config"]["reward"]["source"] == "profanity" and result["seeds"][0]["steps"] == 2
    code, _, err = run_cli(monkeypatch, capsys, "align", "builtin:tiny-gpt2", "--reward", "vibes")
    assert code == 1 and "reward.source" in err


def test_align_with_dpo_on_a_pairs_file(tmp_path):
    from llmcycle.data import load_data
    from llmcycle.models import load_model

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"#Person1#: hello {i}.", "chosen": "they greet.",
                                         "rejected": "they greet, what an idiot."}) + "\n" for i in range(8)))
    cfg = {"method": "dpo", "pairs": str(pairs), "seeds": [0],
           "dpo": {"max_steps": 2, "batch_size": 4, "method": "full", "learning_rate": 1e-3},
           "evaluation": {"n": 2, "samples": 1, "generation": {"do_sample": True, "max_new_tokens": 5}}}
    result = run_align(lambda: load_model("builtin:tiny-gpt2"), load_data("builtin:dialogues", n=6), cfg, tmp_path)
    seed = result["seeds"][0]
    assert seed["method"] == "dpo" and seed["steps"] == 2 and seed["n_pairs"] == 8
    assert seed["after"]["kl_to_reference"] > 0  # the policy moved away from where it started
    section = align_section(result, tmp_path, ".")
    assert "## Alignment (DPO)" in section and "2 DPO steps" in section
    # DPO has no KL of its own (kl_final None): the report's glance row leaves it out instead of failing on it
    assert seed["kl_final"] is None
    rows = STAGE.glance(tmp_path, AlignConfig.from_dict(cfg)).models
    assert [r[0] for r in rows] == ["before alignment", "aligned (dpo, seed 0)"]
    with pytest.raises(ConfigError, match="pairs"):
        AlignConfig.from_dict({"method": "dpo"}, where="align")


def test_recipe_hands_the_aligned_model_of_the_chosen_seed_to_later_stages(tmp_path):
    from llmcycle.recipe.recipe import Recipe
    from llmcycle.recipe.runner import run_recipe

    def make(align: dict) -> Recipe:
        return Recipe.from_dict({
            "name": "a", "runs_dir": str(tmp_path / "runs"), "model": {"source": "builtin:tiny-t5"},
            "data": {"source": "builtin:dialogues", "split": "test", "n": 8},
            "stages": [{"tune": {"method": "full", "max_steps": 2, "batch_size": 2, "save_every": 2}},
                       {"align": CFG | align}, {"evaluate": {"generation": {"max_new_tokens": 4},
                                                                       "bootstrap_resamples": 100}}]})

    messages: list[str] = []
    run = run_recipe(make({"hand_on_seed": 1}), progress=messages.append)
    chosen = run.file("02-align", "seed-1", "model")
    assert "[02-align] hands on aligned-ppo (weights, from 02-align)" in messages
    assert json.loads(run.file("recipe.json").read_text())["stages"][1]["align"]["hand_on_seed"] == 1
    metrics = json.loads(run.file("03-evaluate", "metrics.json").read_text())
    assert set(metrics["models"]) == {"base", "tuned-full", "aligned-ppo"}
    # the evaluate stage's "aligned-ppo" outputs are those of seed 1's saved policy
    from llmcycle.generation import GenerationSettings, generate
    from llmcycle.models import load_model

    rows = [json.loads(line) for line in run.file("03-evaluate", "predictions", "aligned-ppo.jsonl").read_text()
            .splitlines()]
    again = generate(load_model(str(chosen)), [r["prompt"] for r in rows], GenerationSettings(max_new_tokens=4))
    assert again == [r["prediction"] for r in rows]

    kept = run_recipe(make({"hand_on": False}), run_dir=run.path)  # a changed align stage re-runs what follows
    metrics = json.loads(kept.file("03-evaluate", "metrics.json").read_text())
    assert set(metrics["models"]) == {"base", "tuned"}

    with pytest.raises(ConfigError, match="hand_on_seed"):
        AlignConfig.from_dict(CFG | {"hand_on_seed": 5}, where="align")
