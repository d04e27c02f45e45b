"""A finished run made once per session (tiny-t5: a LoRA tune of 2 steps, base vs tuned evaluated, estimates), copied
into each test module's own runs directory, so a module may resume or add runs without touching another's."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY = {
    "name": "tiny", "model": {"source": "builtin:tiny-t5"},
    "data": {"source": "builtin:dialogues", "split": "test", "n": 4},
    "stages": [
        {"tune": {"method": "lora", "lora": {"r": 4}, "max_steps": 2, "batch_size": 2, "log_every": 1,
                  "eval_every": None, "save_every": 50, "max_input_tokens": 48, "max_target_tokens": 12}},
        {"evaluate": {"generation": {"max_new_tokens": 4}, "bootstrap_resamples": 100, "metrics": ["rouge", "length"]}},
        {"estimate": {"batch_size": 2, "input_tokens": 64, "output_tokens": 16}},  # last: cheap to resume
    ],
}


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    from llmcycle.recipe.recipe import Recipe
    from llmcycle.recipe.runner import run_recipe

    root = tmp_path_factory.mktemp("ui-finished")
    return run_recipe(Recipe.from_dict({**TINY, "runs_dir": str(root)}), run_dir=root / "tiny").path
