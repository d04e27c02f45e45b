"""Alignment's generation blocks are the one ``GenerationSettings`` type: PPO's rollouts (``ppo.generation``,
the fields PPO cannot score refused) and the before/after evaluation's sampled outputs (``evaluation.generation``)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llmcycle.alignment.align import AlignConfig
from llmcycle.alignment.evaluate import alignment_eval
from llmcycle.alignment.ppo_config import PPOConfig, RolloutGeneration
from llmcycle.core.errors import ConfigError
from llmcycle.core.files import changed_fields
from llmcycle.generation import GenerationSettings, generate, generate_detailed

PROMPTS = ["#Person1#: the order is late again.\n#Person2#: sorry about that.", "#Person1#: hello.\n#Person2#: hi."]
REFS = [["the order is late."], ["they greet."]]


def _error(data: dict) -> str:
    with pytest.raises(ConfigError) as err:
        AlignConfig.from_dict(data, where="align")
    return str(err.value)


# ---- ppo.generation ------------------------------------------------------------------------------


def test_rollout_generation_is_the_one_settings_type_with_ppo_defaults():
    g = PPOConfig().generation
    assert isinstance(g, GenerationSettings)
    assert g.do_sample is True and g.max_new_tokens == 16 and g.max_query_tokens is None  # read by the align stage
    cfg = AlignConfig.from_dict({"ppo": {"generation": {"temperature": 0.7, "top_k": 50, "top_p": 0.9,
                                                        "min_new_tokens": 2, "max_new_tokens": 24,
                                                        "max_query_tokens": 256}}})
    g = cfg.ppo.generation
    assert (g.temperature, g.top_k, g.top_p, g.min_new_tokens, g.max_new_tokens, g.max_query_tokens) == \
        (0.7, 50, 0.9, 2, 24, 256)
    # what the engine receives: sampling seeded by PPO, or the monitor's greedy decoding with the sampling fields reset
    sampled = g.settings(seed=7)
    assert type(sampled) is GenerationSettings and sampled.seed == 7
    assert sampled.model_dump() == GenerationSettings(do_sample=True, temperature=0.7, top_k=50, top_p=0.9,
                                                      min_new_tokens=2, max_new_tokens=24, seed=7).model_dump()
    greedy = g.settings(seed=7, greedy=True)
    assert (greedy.do_sample, greedy.temperature, greedy.top_k, greedy.top_p, greedy.max_new_tokens) == \
        (False, 1.0, 0, 1.0, 24)
    assert RolloutGeneration(do_sample=False).settings(seed=3).do_sample is False
    # a preset is expanded into the fields PPO reads
    precise = AlignConfig.from_dict({"ppo": {"generation": {"preset": "precise"}}}).ppo.generation
    assert (precise.temperature, precise.top_p) == (0.3, 0.9) and precise.settings(1).preset is None


@pytest.mark.parametrize("field,value", [
    ("num_beams", 2), ("length_penalty", 1.5), ("early_stopping", True), ("no_repeat_ngram_size", 3),
    ("repetition_penalty", 1.2), ("frequency_penalty", 0.5), ("presence_penalty", 0.5), ("stop", ["\n"]),
    ("num_return_sequences", 2), ("seed", 5),
])
def test_ppo_refuses_every_field_it_cannot_score(field, value):
    msg = _error({"ppo": {"generation": {field: value}}})
    assert msg.startswith(f"align: ppo.generation.{field}: "), msg
    assert "cannot be used with PPO" in msg and msg.count("ppo.generation.") == 1, msg  # one error, at the field
    with pytest.raises(ValidationError) as direct:  # direct construction: pydantic's error, located at the field
        RolloutGeneration(**{field: value})
    assert [e["loc"] for e in direct.value.errors()] == [(field,)]


def test_ppo_refusals_say_why_and_what_to_do():
    assert "ppo.seed" in _error({"ppo": {"generation": {"seed": 5}}})
    assert "batch_size" in _error({"ppo": {"generation": {"num_return_sequences": 4}}})
    assert "logprobs" in _error({"ppo": {"generation": {"repetition_penalty": 1.3}}})
    beam4 = _error({"ppo": {"generation": {"preset": "beam4"}}})  # every refused field of the preset is named
    assert all(f"ppo.generation.{f}: " in beam4 for f in ("num_beams", "early_stopping", "no_repeat_ngram_size"))


@pytest.mark.parametrize("generation,field", [
    ({"do_sample": False, "temperature": 0.5}, "temperature"),  # GenerationSettings' own checks still apply
    ({"do_sample": False, "top_k": 5}, "top_k"),
    ({"top_p": 1.5}, "top_p"),
    ({"min_new_tokens": 20}, "min_new_tokens"),  # above the default max_new_tokens, 16
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"temprature": 0.5}, "temprature"),
])
def test_ppo_generation_errors_name_the_dotted_field(generation, field):
    assert _error({"ppo": {"generation": generation}}).startswith(f"align: ppo.generation.{field}: ")


def test_recipe_typo_in_a_generation_block_names_the_dotted_path():
    from llmcycle.recipe.recipe import load_recipe

    for key in ("align.ppo.generation.temprature", "align.evaluation.generation.temprature"):
        with pytest.raises(ConfigError) as err:
            load_recipe("quickstart", [f"{key}=0.5"])
        assert f"align: {key.removeprefix('align.')}: unknown field; valid: " in str(err.value), str(err.value)
        assert "temperature" in str(err.value)


def test_a_run_saved_before_the_new_fields_still_resumes():
    """``ppo_config.json`` written before RolloutGeneration was a GenerationSettings lacks the inherited fields:
    they count at their defaults, as ``train_ppo``'s resume check (``changed_fields``) compares them."""
    cfg = PPOConfig.from_dict({"generation": {"temperature": 0.7, "max_new_tokens": 24, "max_query_tokens": 256}})
    old_generation = {"do_sample": True, "temperature": 0.7, "top_k": 0, "top_p": 1.0, "max_new_tokens": 24,
                      "min_new_tokens": 0, "max_query_tokens": 256}  # the shape earlier runs wrote
    saved = cfg.resume_key() | {"generation": old_generation}
    assert set(cfg.resume_key()["generation"]) > set(old_generation)
    assert changed_fields(saved, cfg.resume_key(), PPOConfig().resume_key()) == []
    other = PPOConfig.from_dict({"generation": {"temperature": 0.9, "max_new_tokens": 24, "max_query_tokens": 256}})
    assert changed_fields(saved, other.resume_key(), PPOConfig().resume_key()) == ["generation"]
    # a saved config round-trips through the new type
    assert PPOConfig.model_validate(cfg.model_dump(mode="json")) == cfg


# ---- evaluation.generation -----------------------------------------------------------------------


def test_evaluation_default_is_todays_sampling():
    ev = AlignConfig().evaluation
    g = ev.generation
    assert type(g) is GenerationSettings
    assert (g.do_sample, g.temperature, g.max_new_tokens, g.seed) == (True, 1.0, 64, 1234)
    assert g.non_default_fields({"do_sample", "max_new_tokens", "seed"}) == []
    assert ev.samples == 2 and ev.greedy_no_repeat_ngram_size == 3


def test_a_partial_evaluation_block_starts_from_the_evaluation_default():
    cfg = AlignConfig.from_dict({"evaluation": {"generation": {"max_new_tokens": 8}}}, where="align")
    g = cfg.evaluation.generation
    assert (g.do_sample, g.temperature, g.max_new_tokens, g.seed) == (True, 1.0, 8, 1234)


@pytest.mark.parametrize("generation,field,needle", [
    ({"do_sample": False, "max_new_tokens": 8}, "do_sample", "do_sample: true"),
    ({"do_sample": True, "num_return_sequences": 3}, "num_return_sequences", "samples"),
    ({"do_sample": True, "num_beams": 2}, "num_beams", "beam search"),
    ({"do_sample": True, "temperature": 0}, "temperature", "> 0"),
    ({"preset": "greedy"}, "do_sample", "sampled outputs"),
])
def test_evaluation_refuses_what_it_cannot_honour(generation, field, needle):
    msg = _error({"evaluation": {"generation": generation}})
    assert msg.startswith(f"align: evaluation.generation.{field}: ") and needle in msg, msg


def test_alignment_eval_refuses_the_same_fields_when_called_directly(load_builtin):
    with pytest.raises(ConfigError, match=r"^generation\.num_return_sequences: .*samples"):
        alignment_eval(load_builtin("tiny-gpt2"), PROMPTS, REFS,
                       generation=GenerationSettings(do_sample=True, num_return_sequences=2))
    with pytest.raises(ConfigError, match=r"^generation\.do_sample: "):
        alignment_eval(load_builtin("tiny-gpt2"), PROMPTS, REFS, generation=GenerationSettings(max_new_tokens=4))


@pytest.mark.parametrize("moved", [{"seed": 7}, {"max_new_tokens": 16}])
def test_moved_evaluation_fields_point_to_the_generation_block(moved):
    (name, value), = moved.items()
    msg = _error({"evaluation": moved})
    assert msg.startswith(f"align: evaluation.{name}: moved into the generation block") and f"{name}: {value}" in msg


def _old_alignment_eval_outputs(loaded, samples, seed, max_new_tokens, temperature):
    """The sampled and greedy outputs as ``alignment_eval(..., seed, max_new_tokens, temperature)`` produced them
    before its settings became a ``generation`` block."""
    sampled = generate_detailed(loaded, PROMPTS, GenerationSettings(
        do_sample=True, temperature=temperature, max_new_tokens=max_new_tokens, num_return_sequences=samples,
        seed=seed), batch_size=16, max_input_tokens=384, truncate=True)
    greedy = generate(loaded, PROMPTS, GenerationSettings(max_new_tokens=max_new_tokens, no_repeat_ngram_size=3),
                      batch_size=16, max_input_tokens=384, truncate=True)
    return [o.text for r in sampled for o in r.outputs], list(greedy)


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-t5"])
def test_evaluation_block_gives_the_same_outputs_as_before(name, load_builtin):
    loaded = load_builtin(name)
    # the recipe form of the old `evaluation: {samples: 2, max_new_tokens: 8, seed: 3}` at temperature 0.7
    ev = AlignConfig.from_dict({"evaluation": {"samples": 2, "generation": {
        "do_sample": True, "max_new_tokens": 8, "seed": 3, "temperature": 0.7}}}, where="align").evaluation
    res = alignment_eval(loaded, PROMPTS, REFS, **ev.eval_kwargs())
    sampled, greedy = _old_alignment_eval_outputs(loaded, samples=2, seed=3, max_new_tokens=8, temperature=0.7)
    assert res["examples"]["sampled"] == sampled and res["examples"]["greedy"] == greedy
    # the defaults (no block) are the old defaults: seed 1234, 64 new tokens, temperature 1.0
    res = alignment_eval(loaded, PROMPTS, REFS, **AlignConfig().evaluation.eval_kwargs())
    sampled, greedy = _old_alignment_eval_outputs(loaded, samples=2, seed=1234, max_new_tokens=64, temperature=1.0)
    assert res["examples"]["sampled"] == sampled and res["examples"]["greedy"] == greedy
    assert res == alignment_eval(loaded, PROMPTS, REFS)  # alignment_eval's own default is the same


def test_evaluation_honours_the_block_for_samples_and_keeps_greedy_outputs_greedy(load_builtin):
    loaded = load_builtin("tiny-gpt2")

    def run(**fields):
        return alignment_eval(loaded, PROMPTS, REFS, samples=2,
                              generation=GenerationSettings(do_sample=True, max_new_tokens=8, **fields))

    base = run(seed=3)
    other_seed, hot = run(seed=4), run(seed=3, temperature=0.3, top_k=5)
    assert other_seed["examples"]["sampled"] != base["examples"]["sampled"]
    assert hot["examples"]["sampled"] != base["examples"]["sampled"]
    # the greedy outputs ignore the sampling fields (seed, temperature, top_k)
    assert other_seed["examples"]["greedy"] == hot["examples"]["greedy"] == base["examples"]["greedy"]
    # fields that are not sampling-only reach both: a stop string cuts the sampled and the greedy outputs
    word = base["examples"]["greedy"][0].split()[1]
    stopped = run(seed=3, stop=[word])
    assert all(word not in t for t in stopped["examples"]["sampled"] + stopped["examples"]["greedy"])
    assert stopped["examples"]["greedy"] == generate(loaded, PROMPTS, GenerationSettings(
        max_new_tokens=8, stop=[word], no_repeat_ngram_size=3), max_input_tokens=384, truncate=True)
    assert stopped["examples"]["greedy"] != base["examples"]["greedy"]
    # the greedy outputs' n-gram ban is their own field (3 by default, as before; 0: off)
    unbanned = alignment_eval(loaded, PROMPTS, REFS, samples=2, greedy_no_repeat_ngram_size=0,
                              generation=GenerationSettings(do_sample=True, max_new_tokens=8, seed=3))
    assert unbanned["examples"]["sampled"] == base["examples"]["sampled"]
    assert unbanned["examples"]["greedy"] == generate(loaded, PROMPTS, GenerationSettings(max_new_tokens=8),
                                                      max_input_tokens=384, truncate=True)
    assert unbanned["examples"]["greedy"] != base["examples"]["greedy"]
