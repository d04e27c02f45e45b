"""The batched engine: greedy == one example at a time, seeded sampling independent of batching, stop
strings, penalties, input-length checks, output shapes. Tiny random models of every family; real
DialogSum dialogues with minilm-seq2seq where available."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest
import torch

from llmcycle.core.errors import DataError, LLMCycleError
from llmcycle.generation import GenerationSettings, generate, generate_detailed

FAMILIES = ["tiny-t5", "tiny-bart", "tiny-gpt2", "tiny-llama"]
PROMPTS = [  # different lengths, so every batch is padded
    "ok",
    "#Person1#: I would like to book a table for two at seven tonight, please. #Person2#: Of course.",
    "hello there, how are you today?",
    "#Person1#: Where is the station? #Person2#: Go straight on, then turn left at the second light, and it is "
    "on your right, next to the bank. #Person1#: Thanks a lot!",
    "summarise: the meeting moved to Friday",
]
DIALOGSUM_TEST = Path(__file__).resolve().parents[3] / "shared" / "data" / "dialogsum" / "dialogsum.test.jsonl"


def one_at_a_time(loaded, texts, **kwargs) -> list[list[int]]:
    """What the course lab does: tokenise one input, model.generate, keep the new tokens (up to the end token)."""
    tok, model = loaded.tokenizer, loaded.model
    eos = model.generation_config.eos_token_id
    rows = []
    for text in texts:
        enc = tok(text, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**enc, do_sample=False, **kwargs)
        start = enc["input_ids"].shape[1] if loaded.kind == "causal" else 1
        row = out[0, start:].tolist()
        rows.append(row[:row.index(eos) + 1] if eos in row else row)
    return rows


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("extra", [{}, {"repetition_penalty": 1.3}], ids=["plain", "repetition-penalty"])
def test_greedy_batched_equals_one_at_a_time(load_builtin, family, extra):
    loaded = load_builtin(family)
    settings = GenerationSettings(max_new_tokens=10, min_new_tokens=10, **extra)
    results = generate_detailed(loaded, PROMPTS, settings, batch_size=3)
    want = one_at_a_time(loaded, PROMPTS, max_new_tokens=10, min_new_tokens=10, **extra)
    assert [r.outputs[0].token_ids for r in results] == want
    assert [r.index for r in results] == list(range(len(PROMPTS)))
    assert [r.input for r in results] == PROMPTS


@pytest.mark.parametrize("family", ["tiny-bart", "tiny-gpt2"])
def test_batch_size_does_not_change_greedy_or_beam_outputs(load_builtin, family):
    loaded = load_builtin(family)
    for settings in (GenerationSettings(max_new_tokens=8), GenerationSettings(max_new_tokens=8, num_beams=3)):
        by_size = [generate(loaded, PROMPTS, settings, batch_size=b) for b in (1, 2, 5)]
        assert by_size[0] == by_size[1] == by_size[2]


@pytest.mark.realdata
@pytest.mark.skipif(not DIALOGSUM_TEST.is_file(), reason=f"real DialogSum data not found at {DIALOGSUM_TEST}")
def test_greedy_on_real_dialogues_with_minilm(minilm):
    dialogues = [json.loads(line)["dialogue"] for line in DIALOGSUM_TEST.open(encoding="utf-8")][:4]
    results = generate_detailed(minilm, dialogues, GenerationSettings(max_new_tokens=6, min_new_tokens=6),
                                batch_size=4)
    assert [r.outputs[0].token_ids for r in results] == one_at_a_time(minilm, dialogues, max_new_tokens=6,
                                                                      min_new_tokens=6)
    assert all(r.text for r in results)


@pytest.mark.parametrize("family", ["tiny-bart", "tiny-llama"])
def test_seeded_sampling_does_not_depend_on_batch_size(load_builtin, family):
    loaded = load_builtin(family)
    settings = GenerationSettings(do_sample=True, temperature=0.8, top_p=0.95, max_new_tokens=8, seed=11)
    outs = [generate(loaded, PROMPTS, settings, batch_size=b) for b in (1, 4, 2)]
    assert outs[0] == outs[1] == outs[2]
    again = generate(loaded, PROMPTS, settings, batch_size=4)
    assert again == outs[0]
    other_seed = generate(loaded, PROMPTS, settings.model_copy(update={"seed": 12}), batch_size=4)
    assert other_seed != outs[0]
    greedy = generate(loaded, PROMPTS, GenerationSettings(max_new_tokens=8))
    assert greedy != outs[0]


def test_sampling_ignores_the_global_torch_seed(load_builtin):
    loaded = load_builtin("tiny-gpt2")
    settings = GenerationSettings(do_sample=True, max_new_tokens=6, seed=3)
    torch.manual_seed(1)
    a = generate(loaded, PROMPTS[:2], settings)
    torch.manual_seed(2)
    assert generate(loaded, PROMPTS[:2], settings) == a


def test_several_return_sequences_shape_and_independence(load_builtin):
    loaded = load_builtin("tiny-gpt2")
    sampled = generate(loaded, PROMPTS[:3], GenerationSettings(do_sample=True, num_return_sequences=3,
                                                              max_new_tokens=6), batch_size=2)
    assert len(sampled) == 3 and all(isinstance(x, list) and len(x) == 3 for x in sampled)
    assert all(len(set(x)) > 1 for x in sampled)  # different samples of the same prompt
    assert sampled == generate(loaded, PROMPTS[:3], GenerationSettings(do_sample=True, num_return_sequences=3,
                                                                       max_new_tokens=6), batch_size=1)
    beams = generate(loaded, PROMPTS[:2], GenerationSettings(num_beams=3, num_return_sequences=2, max_new_tokens=6))
    assert len(beams) == 2 and all(len(x) == 2 for x in beams)


def _stop_string_for(loaded, result, settings) -> str:
    """A piece of a greedy output that first appears after its third token (so a stop there is early)."""
    ids = result.outputs[0].token_ids
    tok = loaded.tokenizer
    for k in range(3, len(ids) - 2):
        piece = tok.decode([ids[k]], skip_special_tokens=True).strip()
        before = tok.decode(ids[:k], skip_special_tokens=True)
        if len(piece) >= 3 and piece in result.text and piece not in before:
            return piece
    pytest.skip(f"{loaded.source}: output too repetitive to pick a stop string")


@pytest.mark.parametrize("family", ["tiny-bart", "tiny-gpt2", "tiny-llama"])
def test_stop_strings_stop_generation_and_trim_the_output(load_builtin, family):
    loaded = load_builtin(family)
    # min_new_tokens: a random model may end at once; frequency_penalty: varied tokens to pick a stop string from
    base = GenerationSettings(max_new_tokens=16, min_new_tokens=16, frequency_penalty=1.0)
    plain = generate_detailed(loaded, PROMPTS[1:3], base, batch_size=2)
    stops = [_stop_string_for(loaded, r, base) for r in plain]
    steps = []
    hook = loaded.model.register_forward_hook(lambda *args: steps.append(1))
    try:
        stopped = generate_detailed(loaded, PROMPTS[1:3], base.model_copy(update={"stop": stops}), batch_size=2)
    finally:
        hook.remove()
    for before, after in zip(plain, stopped):
        cut = min(i for i in (before.text.find(s) for s in stops) if i >= 0)
        assert after.text == before.text[:cut].strip()
        assert not any(s in after.text for s in stops)
        out = after.outputs[0]
        assert out.finish_reason == "stop" and out.new_tokens < 16
        assert out.token_ids == before.outputs[0].token_ids[:out.new_tokens]
    # both rows stopped, so the batch ended early: fewer decoding steps than max_new_tokens
    assert len(steps) < 16


def test_stop_string_in_the_prompt_does_not_stop_a_causal_model(load_builtin):
    loaded = load_builtin("tiny-gpt2")
    prompt = "#Person1#: the end is near"
    plain = generate_detailed(loaded, [prompt], GenerationSettings(max_new_tokens=5, min_new_tokens=5))[0]
    assert "end" not in plain.text  # the model does not say 'end' itself...
    out = generate_detailed(loaded, [prompt], GenerationSettings(max_new_tokens=5, min_new_tokens=5, stop=["end"]))
    assert out[0].outputs == plain.outputs  # ...so the 'end' in the prompt neither stops nor trims anything


@pytest.mark.parametrize("family", ["tiny-bart", "tiny-gpt2"])
def test_frequency_penalty_reduces_repetition_in_generation(load_builtin, family):
    loaded = load_builtin(family)
    base = GenerationSettings(max_new_tokens=20, min_new_tokens=20)

    def max_repeats(settings):
        return [max(Counter(r.outputs[0].token_ids).values()) for r in generate_detailed(loaded, PROMPTS, settings)]

    plain, penalised = max_repeats(base), max_repeats(base.model_copy(update={"frequency_penalty": 1.0}))
    presence = max_repeats(base.model_copy(update={"presence_penalty": 2.0}))
    assert sum(penalised) < sum(plain) and sum(presence) < sum(plain)


def test_too_long_input_is_an_error_naming_it_unless_truncate(load_builtin, caplog):
    loaded = load_builtin("tiny-t5")
    inputs = ["short", "word " * 50, "also short", "word " * 60]
    with pytest.raises(DataError, match=r"input 1 has 52 tokens, more than max_input_tokens=20 \(1 more too long: "
                                        r"inputs 3\).*truncate=True"):
        generate(loaded, inputs, GenerationSettings(max_new_tokens=2), max_input_tokens=20)
    with caplog.at_level(logging.WARNING, logger="llmcycle"):
        results = generate_detailed(loaded, inputs, GenerationSettings(max_new_tokens=2), max_input_tokens=20,
                                    truncate=True)
    assert [r.truncated for r in results] == [False, True, False, True]
    assert [r.input_tokens for r in results] == [3, 20, 4, 20]
    assert "truncated 2 of 4 inputs to 20 tokens" in caplog.text


def test_default_input_limit_comes_from_the_model(load_builtin):
    loaded = load_builtin("tiny-gpt2")  # 512 positions: prompt + max_new_tokens must fit
    with pytest.raises(DataError, match="more than max_input_tokens=448"):
        generate(loaded, ["word " * 460], GenerationSettings(max_new_tokens=64))


def test_bad_calls(load_builtin):
    loaded = load_builtin("tiny-t5")
    with pytest.raises(LLMCycleError, match="list of strings"):
        generate(loaded, "a single string", GenerationSettings())
    with pytest.raises(LLMCycleError, match="batch_size"):
        generate(loaded, ["x"], GenerationSettings(), batch_size=0)
    assert generate(loaded, [], GenerationSettings()) == []


def test_progress_bar_and_batch_callback(load_builtin):
    loaded = load_builtin("tiny-t5")
    seen = []
    out = generate(loaded, PROMPTS, GenerationSettings(max_new_tokens=2), batch_size=2, on_batch=seen.append,
                   progress=True)
    assert len(out) == len(PROMPTS) and seen == [2, 2, 1]


def test_finish_reasons_and_token_counts():
    from llmcycle.generation.engine import _finish

    def decode(ids):
        return " ".join({1: "a", 2: "b", 3: "STOP", 9: ""}.get(i, "x") for i in ids if i != 0)

    eos = {9}
    assert _finish([1, 2, 9, 0, 0], decode, [], eos).finish_reason == "eos"
    assert _finish([1, 2, 9, 0, 0], decode, [], eos).token_ids == [1, 2, 9]
    stopped = _finish([1, 3, 2, 0], decode, ["STOP"], eos)
    assert (stopped.finish_reason, stopped.token_ids, stopped.text) == ("stop", [1, 3], "a")
    assert _finish([1, 2, 1], decode, ["STOP"], eos).finish_reason == "length"
