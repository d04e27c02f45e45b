"""PromptConfig validates with errors naming the field and builds the selectors it names; the import is light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmcycle.core.errors import ConfigError
from llmcycle.prompts import (
    FirstShots,
    IndexShots,
    PromptConfig,
    PromptError,
    RandomShots,
    build_prompts_from_config,
    prompt_template,
    shot_selector,
)

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_zero_shot_instruction() -> None:
    config = PromptConfig()
    assert (config.template, config.n_shots, config.selection, config.separator) == ("instruction", 0, "first", "\n\n")
    assert shot_selector(config, None) is None
    assert all(f.description for f in PromptConfig.model_fields.values())


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"n_shots": -1}, r"prompt: n_shots: Input should be greater than or equal to 0"),
        ({"selection": "closest"}, r"prompt: selection: Input should be 'first', 'random', 'nearest' or 'indices'"),
        ({"selection": "indices"}, r"indices: required when selection is 'indices'"),
        ({"selection": "indices", "indices": [1, 2], "n_shots": 3}, r"n_shots: 3 does not match the 2 indices"),
        ({"indices": [1]}, r"indices: only used with selection 'indices'"),
        ({"indices": [-1], "selection": "indices"}, r"prompt: indices.0: Input should be greater than or equal to 0"),
        ({"max_input_tokens": 0}, r"prompt: max_input_tokens: Input should be greater than or equal to 1"),
        ({"shots": 2}, r"prompt: shots: unknown field"),
        ({"system": "Be brief."}, r"system: only used with chat: true"),
    ],
)
def test_bad_config_names_the_field(data, expected) -> None:
    with pytest.raises(ConfigError, match=expected):
        PromptConfig.from_dict(data, where="prompt")


def test_config_builds_the_selector_it_names(pool) -> None:
    assert isinstance(shot_selector(PromptConfig(n_shots=2), pool), FirstShots)
    rnd = shot_selector(PromptConfig(n_shots=2, selection="random", seed=3, same_shots_for_all=True), pool)
    assert isinstance(rnd, RandomShots) and (rnd.k, rnd.seed, rnd.per_row) == (2, 3, False)
    idx = shot_selector(PromptConfig(selection="indices", indices=[4, 0]), pool)
    assert isinstance(idx, IndexShots) and idx.indices == [4, 0]
    with pytest.raises(PromptError, match="no shot pool was given"):
        shot_selector(PromptConfig(n_shots=1), None)


def test_build_from_config_with_a_user_template_file(tmp_path, tok, pool, row, registry) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("templates:\n  - name: chat-sum\n    text: \"Chat:\\n{dialogue}\\nGist:\"\n", encoding="utf-8")
    config = PromptConfig.from_dict({"template": "chat-sum", "templates_file": str(path), "n_shots": 1,
                                     "separator": "\n---\n", "max_input_tokens": 200})
    assert prompt_template(config).name == "chat-sum" and "chat-sum" not in registry  # not registered globally
    batch = build_prompts_from_config(config, [row], tokenizer=tok, pool=pool)
    shot = f"Chat:\n{pool[0]['dialogue']}\nGist: {pool[0]['summary']}"
    assert batch.texts == [f"{shot}\n---\nChat:\n{row['dialogue']}\nGist:"]
    assert batch[0].max_tokens == 200
    with pytest.raises(PromptError, match="unknown prompt template 'missing'"):
        prompt_template(PromptConfig(template="missing", templates_file=str(path)))


def test_import_is_light() -> None:
    heavy = ("torch", "transformers", "sentence_transformers", "datasets", "numpy")
    code = f"import sys, llmcycle.prompts; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported eagerly: {out.stdout.strip()}"
