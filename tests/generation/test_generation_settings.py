"""GenerationSettings: invalid combinations name the field, presets, kwargs for model.generate, recipes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llmcycle.core.errors import ConfigError
from llmcycle.generation import PRESETS, GenerationSettings


@pytest.mark.parametrize(
    "fields, fragment",
    [
        ({"max_new_tokens": 0}, "max_new_tokens: Input should be greater than or equal to 1"),
        ({"max_new_tokens": -5}, "max_new_tokens: Input should be greater than or equal to 1"),
        ({"min_new_tokens": -1}, "min_new_tokens: Input should be greater than or equal to 0"),
        ({"min_new_tokens": 10, "max_new_tokens": 5}, "min_new_tokens: min_new_tokens (10) must not exceed"),
        ({"do_sample": True, "temperature": 0}, "temperature: temperature must be > 0 when do_sample is true"),
        ({"do_sample": True, "temperature": -0.5}, "temperature: temperature must be > 0"),
        ({"temperature": 0.7}, "temperature: temperature=0.7 has no effect without sampling"),
        ({"do_sample": True, "top_p": 0}, "top_p: top_p must be in (0, 1]"),
        ({"do_sample": True, "top_p": 1.5}, "top_p: top_p must be in (0, 1]"),
        ({"top_p": 0.9}, "top_p: top_p=0.9 has no effect without sampling"),
        ({"top_k": 50}, "top_k: top_k=50 has no effect without sampling"),
        ({"do_sample": True, "top_k": -1}, "top_k: Input should be greater than or equal to 0"),
        ({"num_beams": 0}, "num_beams: Input should be greater than or equal to 1"),
        ({"num_beams": 2, "num_return_sequences": 3}, "num_return_sequences: num_return_sequences (3) must not exceed "
                                                      "num_beams (2)"),
        ({"num_return_sequences": 2}, "num_return_sequences: num_return_sequences (2) must not exceed num_beams (1)"),
        ({"num_return_sequences": 0}, "num_return_sequences: Input should be greater than or equal to 1"),
        ({"do_sample": True, "num_beams": 4}, "num_beams: beam search cannot be combined with do_sample"),
        ({"length_penalty": 2.0}, "length_penalty: length_penalty only applies to beam search"),
        ({"early_stopping": True}, "early_stopping: early_stopping only applies to beam search"),
        ({"repetition_penalty": 0}, "repetition_penalty: Input should be greater than 0"),
        ({"frequency_penalty": 2.5}, "frequency_penalty: Input should be less than or equal to 2"),
        ({"presence_penalty": -3}, "presence_penalty: Input should be greater than or equal to -2"),
        ({"stop": ["###", ""]}, "stop strings must not be empty"),
        ({"stop": [3]}, "stop.0: Input should be a valid string"),
        ({"seed": -1}, "seed: Input should be greater than or equal to 0"),
        ({"preset": "wild"}, "preset: unknown preset 'wild'; valid: greedy, creative, precise, beam4"),
        ({"temprature": 0.5}, "temprature: unknown field"),
    ],
)
def test_invalid_settings_name_the_field(fields, fragment):
    with pytest.raises(ConfigError) as err:
        GenerationSettings.parse(fields, where="generate")
    assert str(err.value).startswith("generate: ")
    assert fragment in str(err.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        GenerationSettings.parse({"temperature": 0.5, "top_k": 5, "num_return_sequences": 2})
    msg = str(err.value)
    assert "temperature:" in msg and "top_k:" in msg and "num_return_sequences:" in msg


def test_direct_construction_raises_validation_error_with_field_location():
    with pytest.raises(ValidationError) as err:
        GenerationSettings(do_sample=True, temperature=0)
    assert err.value.errors()[0]["loc"] == ("temperature",)


def test_rejected_assignment_leaves_settings_unchanged():
    s = GenerationSettings(do_sample=True, temperature=0.8)
    with pytest.raises(ValidationError):
        s.num_beams = 4
    assert s.num_beams == 1 and s.do_sample
    s.max_new_tokens = 12
    assert s.max_new_tokens == 12


def test_defaults_are_greedy_and_valid():
    s = GenerationSettings()
    kw = s.to_generation_kwargs()
    assert kw["do_sample"] is False and kw["num_beams"] == 1 and kw["use_cache"] is True
    assert "temperature" not in kw and "top_p" not in kw and "length_penalty" not in kw
    assert kw["no_repeat_ngram_size"] == 0 and kw["repetition_penalty"] == 1.0  # explicit: model defaults cannot leak
    assert s.logits_processors(prompt_length=3) == []


def test_sampling_and_beam_kwargs():
    kw = GenerationSettings(do_sample=True, temperature=0.7, top_k=40, top_p=0.9, num_return_sequences=3,
                            min_new_tokens=2).to_generation_kwargs()
    assert kw["temperature"] == 0.7 and kw["top_k"] == 40 and kw["top_p"] == 0.9
    assert kw["num_return_sequences"] == 3 and kw["min_new_tokens"] == 2
    kw = GenerationSettings(num_beams=4, length_penalty=0.8, early_stopping="never").to_generation_kwargs()
    assert kw["num_beams"] == 4 and kw["length_penalty"] == 0.8 and kw["early_stopping"] == "never"


def test_penalties_become_a_logits_processor():
    from llmcycle.generation.processors import FrequencyPresencePenalty

    (proc,) = GenerationSettings(frequency_penalty=0.5, presence_penalty=-0.25).logits_processors(prompt_length=7)
    assert isinstance(proc, FrequencyPresencePenalty)
    assert (proc.frequency_penalty, proc.presence_penalty, proc.prompt_length) == (0.5, -0.25, 7)


def test_stop_accepts_a_single_string_and_dedupes():
    assert GenerationSettings(stop="###").stop == ["###"]
    assert GenerationSettings(stop=["a", "b", "a"]).stop == ["a", "b"]


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_valid(name):
    s = GenerationSettings.from_preset(name)
    assert s.preset == name
    for field, value in PRESETS[name].items():
        assert getattr(s, field) == value


def test_preset_values():
    assert GenerationSettings.from_preset("greedy").do_sample is False
    creative = GenerationSettings.from_preset("creative")
    assert creative.do_sample and (creative.temperature, creative.top_p) == (0.9, 0.95)
    precise = GenerationSettings.from_preset("precise")
    assert precise.do_sample and precise.temperature < creative.temperature
    beam4 = GenerationSettings.from_preset("beam4")
    assert beam4.num_beams == 4 and beam4.early_stopping is True and not beam4.do_sample


def test_preset_overrides_and_errors():
    s = GenerationSettings.from_preset("creative", temperature=0.5, seed=7, max_new_tokens=10)
    assert (s.temperature, s.top_p, s.seed, s.max_new_tokens) == (0.5, 0.95, 7, 10)
    assert GenerationSettings.parse({"preset": "beam4", "num_beams": 6}).num_beams == 6
    with pytest.raises(ConfigError, match="unknown generation preset 'wild'; valid: greedy, creative, precise, beam4"):
        GenerationSettings.from_preset("wild")
    with pytest.raises(ConfigError, match="num_beams: beam search cannot be combined"):
        GenerationSettings.from_preset("beam4", do_sample=True)


def test_settings_round_trip_through_a_dump():
    s = GenerationSettings.from_preset("beam4", stop=["\n"], max_new_tokens=30)
    assert GenerationSettings.model_validate(s.model_dump()) == s


def test_recipe_generate_stage_takes_presets_and_new_fields():
    from llmcycle.recipe.recipe import Recipe
    from llmcycle.stages.generate import GenerateStage

    rec = Recipe.from_dict({"model": {"source": "builtin:tiny-t5"}, "stages": [{"generate": {
        "n_examples": 2, "generation": {"preset": "creative", "stop": "###", "frequency_penalty": 0.5}}}]})
    (kind, cfg), = rec.stage_configs()
    assert kind == "generate" and isinstance(cfg, GenerateStage)
    settings = cfg.generation  # the one settings type, nested as a block
    assert isinstance(settings, GenerationSettings)
    assert settings.do_sample and settings.temperature == 0.9 and settings.stop == ["###"]
    assert settings.frequency_penalty == 0.5 and settings.top_p == 0.95
    with pytest.raises(ConfigError, match=r"stages\[0\]\.generate: generation\.temperature"):
        Recipe.from_dict({"model": {}, "stages": [{"generate": {"generation": {"temperature": 0.3}}}]})
