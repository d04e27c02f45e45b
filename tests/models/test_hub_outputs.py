"""Saved models behave like Hub models: every library save writes a real model card (base, method, data, the run's
metrics, how to load it), an adapter on a builtin base says plainly that its base is llmcycle's builtin (built
locally, not on the Hub), a README.md of the user's own is never replaced, and ``hub.push`` publishes the saved
folder, failing in one line after the local save when the Hub cannot be reached (tested up to that error)."""

from __future__ import annotations

import json

import huggingface_hub.constants
import pytest
from huggingface_hub import ModelCard

from llmcycle.core.errors import ConfigError, LLMCycleError
from llmcycle.models import load_model
from llmcycle.models.card import BUILTIN_TAG, CARD_FILE, describe_base, is_user_card, write_model_card
from llmcycle.models.hub import HubOptions, push_folder
from llmcycle.recipe.recipe import Recipe
from llmcycle.tuning import train
from llmcycle.tuning.config import TuneConfig
from tests.cli_helpers import run_cli

ROWS = [{"input": f"#Person1#: hello number {i}, how are you?\n#Person2#: fine, thanks.",
         "references": [f"#Person1# greets #Person2# {i}."]} for i in range(6)]
QUICK = {"max_steps": 2, "batch_size": 3, "save_every": 50, "log_every": 1, "max_input_tokens": 32,
         "max_target_tokens": 8}
MINE = "# My model\n\nNotes I wrote myself.\n"


@pytest.fixture
def offline(monkeypatch):
    """The Hub client in offline mode whatever the environment says (HF_HUB_OFFLINE=1): no request leaves."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_a_library_save_writes_a_card_naming_its_builtin_base_method_and_metrics(tmp_path):
    result = train(load_model("builtin:tiny-gpt2"), (ROWS, ROWS[:2]), dict(QUICK, method="lora"), tmp_path / "run")
    folder = tmp_path / "run" / "model"
    card = ModelCard.load(folder / CARD_FILE)
    assert card.data.base_model is None and card.data.library_name == "peft"  # no Hub base is claimed
    assert {"llmcycle", "lora", "tune", BUILTIN_TAG} <= set(card.data.tags)
    for fact in ("# tuned-lora", "LoRA adapter made by llmcycle's `tune` stage (lora) from `builtin:tiny-gpt2`",
                 "built locally by llmcycle", "not on the Hugging Face Hub",
                 "`adapter_config.json` names the base `builtin:tiny-gpt2`, which only llmcycle resolves",
                 "| optimizer steps | 2 |", "| training rows | 6 |", "| validation rows | 2 |",
                 f"| train_loss | {result.metrics['train_loss']:.4g} |", f'load_model("{folder.resolve()}")',
                 "method: lora"):
        assert fact in card.text, fact
    # the loader still reloads it: adapter_config.json keeps the name only llmcycle resolves
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == "builtin:tiny-gpt2"
    assert load_model(str(folder)).kind == "causal"


def test_a_readme_of_your_own_is_kept_when_a_model_is_saved_over_it(tmp_path):
    folder = tmp_path / "run" / "model"
    folder.mkdir(parents=True)
    (folder / CARD_FILE).write_text(MINE, encoding="utf-8")
    train(load_model("builtin:tiny-t5"), (ROWS, None), dict(QUICK, method="full", max_steps=1), tmp_path / "run")
    assert (folder / CARD_FILE).read_text(encoding="utf-8") == MINE and (folder / "config.json").is_file()
    write_model_card(folder, name="x", base="builtin:tiny-t5", stage="tune", method="full")  # a card writer too
    assert (folder / CARD_FILE).read_text(encoding="utf-8") == MINE and is_user_card(folder / CARD_FILE)
    other = tmp_path / "other"
    other.mkdir()  # llmcycle's own card, and peft's empty template, are replaced
    assert not is_user_card(write_model_card(other, name="y", base="builtin:tiny-t5", stage="tune", method="full"))
    (other / CARD_FILE).write_text("---\nlibrary_name: peft\n---\n\n# Model Card for Model ID\n", encoding="utf-8")
    assert not is_user_card(other / CARD_FILE)


def test_a_local_adapter_is_followed_down_to_its_builtin_base(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "builtin:tiny-t5",
                                                              "peft_type": "LORA"}), encoding="utf-8")
    text = describe_base(str(tmp_path))
    assert f"the local adapter `{tmp_path}` (not on the Hugging Face Hub) on `builtin:tiny-t5`" in text
    card = ModelCard.load(write_model_card(tmp_path, name="int8", base=str(tmp_path), stage="optimize",
                                           method="int8", what="quantised weights", adapter=False))
    assert BUILTIN_TAG in card.data.tags and card.data.base_model is None and "huggingface.co" not in card.text


def test_push_offline_fails_in_one_line_after_the_model_is_saved(tmp_path, offline):
    cfg = dict(QUICK, method="lora", max_steps=1, hub={"push": True, "repo_id": "me/tiny-lora"})
    with pytest.raises(LLMCycleError) as err:
        train(load_model("builtin:tiny-gpt2"), (ROWS, None), cfg, tmp_path / "run")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("tune.hub.push: could not push") and "me/tiny-lora" in msg
    assert "offline mode is on (HF_HUB_OFFLINE=1)" in msg and "hf upload me/tiny-lora" in msg
    folder = tmp_path / "run" / "model"
    assert (folder / "adapter_model.safetensors").is_file() and (tmp_path / "run" / "tune_result.json").is_file()
    assert 'snapshot_download("me/tiny-lora")' in (folder / CARD_FILE).read_text(encoding="utf-8")


def test_the_cli_pushes_after_the_recipe_card_and_resuming_retries_only_the_push(tmp_path, monkeypatch, capsys,
                                                                              offline):
    args = ["tune", "builtin:tiny-t5", "--max-steps", "1", "--batch-size", "2", "--n", "4", "--runs-dir",
            str(tmp_path), "--push-to-hub", "me/tiny-t5-lora", "--set", "max_input_tokens=32", "--set",
            "max_target_tokens=8", "--set", "save_every=50"]
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: stage 01-tune: tune.hub.push: could not push") and "offline mode" in err
    run = next(tmp_path.glob("tune-*"))
    card = ModelCard.load(run / "01-tune" / "model" / CARD_FILE)  # the recipe's card, written before the push
    assert "`01-tune` stage (lora)" in card.text and "`builtin:dialogues`" in card.text
    assert 'snapshot_download("me/tiny-t5-lora")' in card.text and "token_env" not in card.text  # not a setting
    code, out, err = run_cli(monkeypatch, capsys, *args, "--run-dir", str(run))  # resumed: the push alone again
    assert code == 1 and "already done with this config: skipped" in out and "tune.hub.push" in err


def test_a_bad_repo_id_or_an_unclear_push_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    with pytest.raises(ConfigError, match=r"^tune: hub\.repo_id: 'not a repo' is not a Hub repository id"):
        train(None, (ROWS, None), dict(QUICK, hub={"push": True, "repo_id": "not a repo"}), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=r"hub\.repo_id: push: true needs the Hub repository"):
        TuneConfig.from_dict({"hub": {"push": True}}, where="tune")
    with pytest.raises(ConfigError, match=r"^token_env: 'hf_x-1' is not an environment variable name"):
        HubOptions.from_dict({"token_env": "hf_x-1"})
    with pytest.raises(ConfigError, match=r"hub\.push: several variants are built \(int8, prune\); set hand_on"):
        Recipe.from_dict({"model": {"source": "builtin:tiny-t5"}, "data": {"source": "builtin:dialogues"},
                          "stages": [{"optimize": {"methods": ["int8", "prune"],
                                                   "hub": {"push": True, "repo_id": "me/x"}}}]})
    code, _, err = run_cli(monkeypatch, capsys, "tune", "builtin:tiny-t5", "--push-to-hub", "me/a/b", "--runs-dir",
                           str(tmp_path / "runs"))
    assert code == 1 and "hub.repo_id: 'me/a/b' is not a Hub repository id" in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert push_folder(tmp_path, HubOptions()) is None  # off by default: nothing is contacted
