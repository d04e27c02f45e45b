"""The one chat path (#21): builtin:tiny-chat, conversations with the loss on assistant turns ending at the
end-of-turn token, messages rows, the same prompt tokens in training, evaluation and serving, and the template
check that refuses a mismatch before training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmcycle.core.errors import ConfigError, DataError, LLMCycleError
from llmcycle.data import load_data
from llmcycle.generation.engine import eos_token_ids
from llmcycle.models import load_model
from llmcycle.models.chat import uses_chat
from llmcycle.prompts import build_prompts, chat_prompt, encode_conversation, get_template
from llmcycle.recipe.template_check import check_recipe, check_template, example_row
from llmcycle.serving.models import ServedModels
from llmcycle.tuning.data import IGNORE, to_pairs, tokenize_pairs

ROW = {"input": "#Person1#: hi, how are you? #Person2#: fine, thanks.", "references": ["they greet each other."]}


@pytest.fixture(scope="module")
def chat(load_builtin):
    return load_builtin("tiny-chat")


def labelled(ids, labels):
    return [i for i, v in zip(ids, labels) if v != IGNORE]


def test_tiny_chat_is_a_hub_like_instruct_model(chat, tmp_path) -> None:
    tok = chat.tokenizer
    assert chat.kind == "causal" and chat.family == "llama" and uses_chat(chat)
    end = tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.eos_token == "<|im_end|>" and tok.bos_token == "[CLS]"
    assert sorted(eos_token_ids(chat.model, tok)) == sorted([end, tok.sep_token_id])  # two end ids, as Qwen
    prompt = chat_prompt(tok, [{"role": "user", "content": "hello"}])
    assert prompt == "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    chat.model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again = load_model(str(tmp_path))
    assert uses_chat(again) and again.tokenizer.chat_template == tok.chat_template
    assert sorted(eos_token_ids(again.model, again.tokenizer)) == sorted([end, tok.sep_token_id])
    assert list(again.tokenizer(prompt)["input_ids"]) == list(tok(prompt)["input_ids"])


def test_every_builtin_tokenizer_declares_bos_and_eos(load_builtin) -> None:
    for name in ("tiny-t5", "tiny-gpt2", "minilm-seq2seq"):
        tok = load_builtin(name).tokenizer
        assert tok.bos_token == "[CLS]" and tok.eos_token == "[SEP]", name
        assert tok.bos_token_id is not None and tok.eos_token_id is not None, name


def test_conversation_labels_cover_assistant_turns_up_to_their_end_token(chat) -> None:
    tok = chat.tokenizer
    end = tok.convert_tokens_to_ids("<|im_end|>")
    turns = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "one two"},
             {"role": "assistant", "content": "three"}, {"role": "user", "content": "four"},
             {"role": "assistant", "content": "five six"}]
    ids, labels = encode_conversation(tok, turns, [end])
    assert len(ids) == len(labels) and ids == list(tok(chat_prompt(tok, turns[:4]) + "five six<|im_end|>\n")
                                                   ["input_ids"])
    learnt = tok.convert_ids_to_tokens(labelled(ids, labels))
    assert learnt == ["three", "<|im_end|>", "five", "six", "<|im_end|>"]  # only the assistant turns, each ending
    # the prompt of the last reply is exactly what generation continues from
    prompt_ids = list(tok(chat_prompt(tok, turns[:4]))["input_ids"])
    first_of_last = len(prompt_ids)
    assert ids[:first_of_last] == prompt_ids and labels[first_of_last] != IGNORE


def test_chat_training_rows_and_evaluation_prompts_are_the_same_tokens(chat) -> None:
    tok = chat.tokenizer
    stops = sorted(eos_token_ids(chat.model, tok))
    row = tokenize_pairs(to_pairs([ROW], ["instruction"]), tok, "causal", 512, 64, True, stops).rows[0]
    first = next(k for k, v in enumerate(row["labels"]) if v != IGNORE)
    prompt = build_prompts("instruction", [ROW], tokenizer=tok, chat=True).texts[0]
    assert row["input_ids"][:first] == list(tok(prompt)["input_ids"])
    assert tok.convert_ids_to_tokens(row["labels"][-1]) == "<|im_end|>"
    assert tok.convert_ids_to_tokens(labelled(row["input_ids"], row["labels"])) == \
        ["they", "greet", "each", "other", ".", "<|im_end|>"]
    # a plain (non-chat) causal row still ends with the tokenizer's eos
    plain = tokenize_pairs(to_pairs([ROW], ["none"]), tok, "causal", 512, 64).rows[0]
    assert plain["labels"][-1] == tok.eos_token_id and "<|im_start|>" not in tok.decode(plain["input_ids"])


def test_long_chat_prompts_keep_their_markup_and_report_the_cut(chat) -> None:
    tok = chat.tokenizer
    long_row = {"input": " ".join(["word"] * 400), "references": ["short summary"]}
    out = tokenize_pairs(to_pairs([long_row], ["none"]), tok, "causal", 64, 8, True, [2])
    row = out.rows[0]
    first = next(k for k, v in enumerate(row["labels"]) if v != IGNORE)
    assert first <= 64 and out.report.inputs_truncated == 1 and out.report.input_tokens_cut > 300
    head = tok.convert_ids_to_tokens(row["input_ids"][:first])
    assert head[1] == "<|im_start|>" and head[-2:] == ["<|im_start|>", "assistant"]


def test_messages_rows_load_and_train_as_conversations(chat, tmp_path) -> None:
    turns = [{"role": "user", "content": "name a colour"}, {"role": "assistant", "content": "blue"},
             {"role": "user", "content": "another"}, {"role": "assistant", "content": "red"}]
    path = tmp_path / "chat.train.jsonl"
    path.write_text(json.dumps({"messages": turns}) + "\n", encoding="utf-8")
    data = load_data(str(path), input_column="messages")
    row = data["train"][0]
    assert row["input"] == "another" and row["references"] == ["red"] and row["messages"][0]["content"] == \
        "name a colour"
    tok = chat.tokenizer
    out = tokenize_pairs(to_pairs([row]), tok, "causal", 512, 64, True, [tok.convert_tokens_to_ids("<|im_end|>")])
    assert tok.convert_ids_to_tokens(labelled(out.rows[0]["input_ids"], out.rows[0]["labels"])) == \
        ["blue", "<|im_end|>", "red", "<|im_end|>"]
    bad = tmp_path / "bad.train.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "bot", "content": "x"}]}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.train.jsonl:1: .*messages\[0\].role: 'bot' is not one of"):
        load_data(str(bad), input_column="messages")


def test_server_renders_chat_messages_through_the_same_path(chat) -> None:
    served = ServedModels(chat, {"base": None})
    text = get_template("instruction").render(ROW)
    assert served.chat_prompt([("user", text)]) == build_prompts("instruction", [ROW], tokenizer=chat.tokenizer,
                                                                 chat=True).texts[0]


def test_model_chat_never_and_always(chat) -> None:
    never = load_model("builtin:tiny-chat", chat="never")
    assert not uses_chat(never)
    assert ServedModels(never, {"base": None}).chat_prompt([("user", "hi")]) == "hi"
    with pytest.raises(ConfigError, match=r"model.chat: 'always', but the tokenizer of builtin:tiny-gpt2 has no chat "
                                          "template"):
        load_model("builtin:tiny-gpt2", chat="always")


def test_template_check_passes_the_one_path_and_refuses_mismatches(chat, load_builtin) -> None:
    ok = check_template(chat, ROW, "instruction", ["instruction"])
    assert ok.ok, ok.problems
    assert len({tuple(r.ids) for r in ok.renderings}) == 1 and len(ok.renderings) == 3
    for name in ("tiny-t5", "tiny-gpt2", "minilm-seq2seq"):
        assert check_template(load_builtin(name), ROW, "instruction").ok, name
    other = check_template(chat, ROW, "tldr", ["instruction"])
    assert not other.ok and "template 'tldr', which training never used (its templates: instruction)" in \
        other.problems[0]
    # a generation config that does not stop on the end-of-turn token the labels end with (Qwen's classic bug)
    broken = load_model("builtin:tiny-chat")
    broken.model.generation_config.eos_token_id = broken.tokenizer.sep_token_id
    found = check_template(broken, ROW, "none")
    assert not found.ok and "the training labels end with '<|im_end|>', which generation does not stop on" in \
        found.problems[0]


def test_a_template_that_writes_the_bos_itself_gets_it_once(chat) -> None:
    import copy

    tok = copy.deepcopy(chat.tokenizer)
    tok.chat_template = "{{ bos_token }}" + tok.chat_template  # as Llama 3's template does
    ids = list(tok(chat_prompt(tok, [{"role": "user", "content": "hi"}]))["input_ids"])
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id


def test_a_recipe_whose_evaluation_template_was_never_trained_fails_before_training(tmp_path) -> None:
    from llmcycle.recipe.recipe import Recipe
    from llmcycle.recipe.runner import run_recipe

    recipe = Recipe.from_dict({
        "name": "mismatch", "model": {"source": "builtin:tiny-chat"},
        "data": {"source": "builtin:dialogues", "n": 8},
        "stages": [{"tune": {"method": "full", "templates": ["none"], "max_steps": 1, "batch_size": 2}},
                   {"evaluate": {"template": "instruction", "metrics": ["length"]}}]})
    run_dir = tmp_path / "run"
    with pytest.raises(LLMCycleError, match=r"template check failed .*01-tune -> 02-evaluate: prompts are rendered "
                                            r"with template 'instruction', which training never used"):
        run_recipe(recipe, run_dir)
    assert not run_dir.exists()  # refused before any work: nothing left behind


@pytest.mark.parametrize("name,stand_in", [
    ("quickstart", None), ("dialogsum-flan-t5-base", "builtin:tiny-t5"),
    ("dialogsum-qwen2.5-0.5b-instruct", "builtin:tiny-chat")])
def test_shipped_recipes_pass_the_template_check(name, stand_in, load_builtin) -> None:
    from llmcycle.recipe.plan import plan_recipe
    from llmcycle.recipe.recipe import load_recipe

    overrides = ["data.source=builtin:dialogues", "data.split=null"] + \
        ([f"model.source={stand_in}"] if stand_in else [])
    recipe = load_recipe(name, overrides)
    recipe.register_templates()
    steps = plan_recipe(recipe, Path("/nonexistent") / "(plan)")
    loaded = load_builtin(recipe.model.source.removeprefix("builtin:"))
    rows = load_data("builtin:dialogues")["train"]
    assert check_recipe(loaded, rows, steps) == []
    assert example_row(rows)["input"]


def test_check_template_command(tmp_path) -> None:
    from typer.testing import CliRunner

    from llmcycle.cli.app import app

    out = CliRunner().invoke(app, ["check-template", "builtin:tiny-chat", "--template", "instruction"])
    assert out.exit_code == 0, out.output
    assert "ok: the same prompt tokens everywhere" in out.output and "'<|im_end|>'" in out.output
    out = CliRunner().invoke(app, ["check-template", "--recipe", "dialogsum-qwen2.5-0.5b-instruct", "builtin:tiny-chat",
                                   "--data", "builtin:dialogues", "--set", "data.split=null"])
    assert out.exit_code == 0, out.output
    assert "05-tune -> 06-evaluate" in out.output or "-tune -> " in out.output


def test_a_chat_recipe_trains_evaluates_and_serves_on_the_same_chat_prompts(tmp_path) -> None:
    from llmcycle.recipe.recipe import Recipe
    from llmcycle.recipe.runner import run_recipe

    recipe = Recipe.from_dict({
        "name": "chat", "runs_dir": str(tmp_path / "runs"), "model": {"source": "builtin:tiny-chat"},
        "data": {"source": "builtin:dialogues", "n": 4},
        "stages": [{"tune": {"method": "full", "templates": ["instruction"], "max_steps": 2, "batch_size": 2,
                             "max_input_tokens": 128, "max_target_tokens": 16}},
                   {"evaluate": {"template": "instruction", "metrics": ["length"], "bootstrap_resamples": 100,
                                 "generation": {"max_new_tokens": 4}}},
                   {"serve": {"template": "instruction", "requests": 2, "clients": 2,
                              "generation": {"max_new_tokens": 4}}}]})
    said: list[str] = []
    run = run_recipe(recipe, progress=said.append)
    assert any("template check: 02-evaluate, 03-serve prompt with the tokens it trains on" in s for s in said)
    preds = [json.loads(line) for line in
             next(run.file("02-evaluate", "predictions").glob("*.jsonl")).read_text().splitlines()]
    assert preds and all(p["prompt"].startswith("<|im_start|>user\nSummarize") and
                         p["prompt"].endswith("<|im_start|>assistant\n") for p in preds)
    smoke = json.loads(run.file("03-serve", "serve_smoke.json").read_text())
    assert smoke["ok"] == 2 and smoke["stream_matches"]  # the chat endpoint rendered the same prompt


def test_after_a_chat_tune_greedy_generation_ends_its_turn_at_the_end_token(tmp_path) -> None:
    """The mechanism behind benchmarks/chat_stop.py, small: before tuning the random model never ends its turn;
    after tuning in chat form (labels ending at <|im_end|>), greedy generation stops there on every tuned prompt."""
    from llmcycle.generation import GenerationSettings, generate_detailed
    from llmcycle.tuning import train

    rows = [{"input": f"#Person1#: can I book room {n} for {d}? #Person2#: yes.", "references": [s]}
            for n, d, s in [(4, "monday", "a room is booked."), (9, "friday", "#Person1# books room nine."),
                            (2, "sunday", "they agree on sunday."), (7, "today", "room seven is free today.")]]
    loaded = load_model("builtin:tiny-chat")
    prompts = build_prompts("none", rows, tokenizer=loaded.tokenizer, chat=True).texts
    settings = GenerationSettings(max_new_tokens=24)
    end = loaded.tokenizer.convert_tokens_to_ids("<|im_end|>")

    def ends() -> list[bool]:
        out = generate_detailed(loaded, prompts, settings, batch_size=4)
        return [r.outputs[0].finish_reason == "eos" and r.outputs[0].token_ids[-1] == end for r in out]

    assert not any(ends())
    train(loaded, (rows, None), {"method": "full", "max_steps": 40, "batch_size": 4, "learning_rate": 5e-3,
                                 "max_input_tokens": 64, "max_target_tokens": 16, "save_every": 1000,
                                 "eval_every": 1000}, tmp_path / "tune")
    assert all(ends())
