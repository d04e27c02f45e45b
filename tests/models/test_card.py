"""Model cards: every model a recipe stage hands on carries a Hub-format README.md saying what it is, what it
was made from (and whether the Hub can resolve that base), how, on which data, what the run measured, and how to
load it."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import ModelCard

from llmcycle.models import load_model
from llmcycle.models.card import CARD_FILE, hub_id, write_model_card
from llmcycle.recipe.recipe import Recipe
from llmcycle.recipe.runner import run_recipe

SECTION = "## Fine-tuning: lora\n\n| | value |\n| --- | --- |\n| optimizer steps | 3 |\n\n![loss curve](05-tune/x.png)\n"


def test_a_hub_base_is_named_in_the_metadata_and_peft_can_load_the_adapter(tmp_path):
    card = ModelCard.load(write_model_card(tmp_path, name="tuned-lora", base="google/flan-t5-base",
                                           what="lora adapter", stage="02-tune", method="lora", data="knkarthick/dialogsum",
                                           results=SECTION, settings={"method": "lora", "lora": {"r": 8}},
                                           adapter=True))
    assert card.data.base_model == "google/flan-t5-base" and card.data.library_name == "peft"
    assert card.data.datasets == ["knkarthick/dialogsum"] and card.data.tags == ["llmcycle", "lora", "tune"]
    assert "AutoPeftModel.from_pretrained" in card.text and "huggingface.co/google/flan-t5-base" in card.text
    assert "### Fine-tuning: lora" in card.text and "| optimizer steps | 3 |" in card.text  # results, one level down
    assert "![loss curve]" not in card.text  # links into the run folder do not travel with the model
    assert "r: 8" in card.text


def test_a_builtin_or_local_base_is_said_to_be_off_the_hub_and_not_claimed(tmp_path):
    card = ModelCard.load(write_model_card(tmp_path, name="int8", base="builtin:tiny-t5", what="quantised weights",
                                           stage="03-optimize", method="int8", data="builtin:dialogues"))
    assert card.data.base_model is None and card.data.library_name == "transformers" and card.data.datasets is None
    assert "not on the Hugging Face Hub" in card.text and "AutoPeftModel" not in card.text
    assert hub_id("builtin:tiny-t5") is None and hub_id(str(tmp_path)) is None and hub_id("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"


def test_every_model_a_recipe_hands_on_carries_its_card(tmp_path):
    recipe = Recipe.from_dict({
        "name": "cards", "runs_dir": str(tmp_path / "runs"), "model": {"source": "builtin:tiny-t5"},
        "data": {"source": "builtin:dialogues", "split": "test", "n": 4},
        "stages": [{"tune": {"method": "lora", "max_steps": 2, "batch_size": 2, "save_every": 50,
                             "max_input_tokens": 48, "max_target_tokens": 8}},
                   {"optimize": {"methods": ["int8"], "hand_on": "int8",
                                 "measure": {"n": 2, "latency_n": 0, "batch_size": 2,
                                             "generation": {"max_new_tokens": 3}}}}]})
    run = run_recipe(recipe)
    tuned = Path(next(run.path.glob("01-tune")) / "model")
    card = ModelCard.load(tuned / CARD_FILE)
    assert card.data.library_name == "peft" and card.data.base_model is None and "lora" in card.data.tags
    for fact in ("# tuned-lora", "`01-tune` stage (lora)", "`builtin:tiny-t5`", "`builtin:dialogues`",
                 "### Fine-tuning: lora", "optimizer steps", f'load_model("{tuned.resolve()}")'):
        assert fact in card.text, fact
    assert load_model(str(tuned)).kind == "seq2seq"  # the card does not get in the way of loading
    int8_cards = [p for p in run.path.glob("02-optimize/**/" + CARD_FILE)]
    assert len(int8_cards) == 1
    card = ModelCard.load(int8_cards[0])
    assert "int8" in card.data.tags and "Quantised weights made by llmcycle's `02-optimize` stage (int8)" in card.text
    assert str(tuned.resolve()) in card.text  # made from the tuned adapter of the stage before
