"""``llmcycle generate``: one prompt printed, a file of prompts to JSONL, one-line errors for bad input."""

from __future__ import annotations

import json

import pytest

from tests.cli_helpers import run_cli


def test_help(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "generate", "--help")
    assert code == 0 and "--input-file" in out and "--stop" in out and "--preset" in out


def test_one_prompt_prints_the_output(monkeypatch, capsys):
    from llmcycle.generation import GenerationSettings, generate
    from llmcycle.models import load_model

    code, out, err = run_cli(monkeypatch, capsys, "generate", "builtin:tiny-gpt2", "hello there",
                             "--max-new-tokens", "6", "--min-new-tokens", "6")
    assert code == 0, err
    want = generate(load_model("builtin:tiny-gpt2"), ["hello there"],
                    GenerationSettings(max_new_tokens=6, min_new_tokens=6))[0]
    assert out.strip() == want
    assert "6 new tokens, finished by length" in err


def test_several_sampled_outputs_are_numbered(monkeypatch, capsys):
    code, out, err = run_cli(monkeypatch, capsys, "generate", "builtin:tiny-gpt2", "hello", "--preset", "creative",
                             "-n", "2", "--seed", "4", "--max-new-tokens", "4")
    assert code == 0, err
    assert out.startswith("[1] ") and "\n[2] " in out


def test_file_of_prompts_writes_jsonl_in_input_order(monkeypatch, capsys, tmp_path):
    src = tmp_path / "prompts.jsonl"
    src.write_text("\n".join(json.dumps({"input": p}) for p in ["a long prompt about the weather today", "hi",
                                                                   "what is it"]) + "\n\n", encoding="utf-8")
    code, out, err = run_cli(monkeypatch, capsys, "generate", "builtin:tiny-t5", "--input-file", str(src),
                             "--max-new-tokens", "3", "--batch-size", "2", "--stop", "###")
    assert code == 0, err
    dest = tmp_path / "prompts.generated.jsonl"
    rows = [json.loads(line) for line in dest.read_text(encoding="utf-8").splitlines()]
    assert [r["input"] for r in rows] == ["a long prompt about the weather today", "hi", "what is it"]
    assert [r["index"] for r in rows] == [0, 1, 2]
    assert all({"output", "finish_reason", "new_tokens", "input_tokens"} <= set(r) for r in rows)
    assert "wrote 3 outputs for 3 prompts" in out


def test_a_chat_models_records_keep_the_users_text_and_the_prompt_it_read(monkeypatch, capsys, tmp_path):
    src = tmp_path / "prompts.txt"
    src.write_text("Summarise: we met at noon.\nhi\n", encoding="utf-8")
    code, out, err = run_cli(monkeypatch, capsys, "generate", "builtin:tiny-chat", "-i", str(src),
                             "--max-new-tokens", "2")
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "prompts.generated.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["input"] for r in rows] == ["Summarise: we met at noon.", "hi"]
    assert [r["prompt"] for r in rows] == [f"<|im_start|>user\n{t}<|im_end|>\n<|im_start|>assistant\n"
                                           for t in ("Summarise: we met at noon.", "hi")]


def test_existing_output_is_kept_unless_force(monkeypatch, capsys, tmp_path):
    src = tmp_path / "p.txt"
    src.write_text("first prompt\n\nsecond prompt\n", encoding="utf-8")
    dest = tmp_path / "out.jsonl"
    dest.write_text("precious\n", encoding="utf-8")
    code, _, err = run_cli(monkeypatch, capsys, "generate", "builtin:tiny-t5", "-i", str(src), "-o", str(dest),
                           "--max-new-tokens", "2")
    assert code == 1 and "exists; pass --force" in err
    assert dest.read_text(encoding="utf-8") == "precious\n"
    code, _, err = run_cli(monkeypatch, capsys, "generate", "builtin:tiny-t5", "-i", str(src), "-o", str(dest),
                           "--max-new-tokens", "2", "--force")
    assert code == 0, err
    assert [json.loads(line)["input"] for line in dest.read_text(encoding="utf-8").splitlines()] == \
        ["first prompt", "second prompt"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # atomic write left nothing behind


@pytest.mark.parametrize(
    "make, args, fragment",
    [
        (None, ["builtin:tiny-t5"], "give exactly one of a PROMPT argument or --input-file"),
        (None, ["builtin:tiny-t5", "hi", "-i", "x.txt"], "give exactly one of"),
        (None, ["builtin:tiny-t5", "-i", "missing.txt"], "missing.txt: no such input file"),
        (("empty.txt", ""), ["builtin:tiny-t5", "-i", "empty.txt"], "no prompts in the file"),
        (("blank.jsonl", "\n\n"), ["builtin:tiny-t5", "-i", "blank.jsonl"], "no prompts in the file"),
        (("p.csv", "a,b\n"), ["builtin:tiny-t5", "-i", "p.csv"], "unsupported input file type .csv"),
        (("bad.jsonl", '{"input": "ok"}\n{"input": \n'), ["builtin:tiny-t5", "-i", "bad.jsonl"],
         "bad.jsonl:2: not valid JSON"),
        (("col.jsonl", '{"prompt": "ok"}\n'), ["builtin:tiny-t5", "-i", "col.jsonl"],
         "col.jsonl:1: no 'input' field (fields: prompt); pick the prompt field with --input-column"),
        (("num.jsonl", '{"input": 3}\n'), ["builtin:tiny-t5", "-i", "num.jsonl"], "must be a non-empty string"),
        (None, ["builtin:tiny-t5", "hi", "--temperature", "0.5"], "temperature: temperature=0.5 has no effect "
                                                                 "without sampling"),
        (None, ["builtin:tiny-t5", "hi", "--sample", "--top-p", "2"], "top_p: top_p must be in (0, 1]"),
        (None, ["builtin:tiny-t5", "hi", "--preset", "wild"], "preset: unknown preset 'wild'"),
        (None, ["builtin:tiny-t5", "hi", "-n", "3"], "num_return_sequences"),
        (None, ["builtin:tiny-t5", "hi", "--max-new-tokens", "0"], "max_new_tokens"),
        (None, ["builtin:tiny-t5", "hi", "-o", "out.jsonl"], "--output needs --input-file"),
        (None, ["builtin:nope", "hi"], "unknown builtin model"),
        (None, ["builtin:tiny-t5", "word " * 30, "--max-input-tokens", "10"], "input 0 has 32 tokens"),
    ],
)
def test_bad_input_is_a_one_line_error(monkeypatch, capsys, tmp_path, make, args, fragment):
    monkeypatch.chdir(tmp_path)
    if make:
        (tmp_path / make[0]).write_text(make[1], encoding="utf-8")
    code, out, err = run_cli(monkeypatch, capsys, "generate", *args)
    assert code == 1
    assert err.startswith("error: ") and fragment in " ".join(err.split())
    assert not list(tmp_path.glob("*.generated.jsonl"))


def test_every_generation_field_is_reachable_from_every_command_that_generates():
    """generate has an option per field; the stage commands reach every field of their generation blocks with --set
    (checked here by validating one recipe per command with every field set away from its default)."""
    import inspect

    from llmcycle.cli import stage_commands
    from llmcycle.cli.generate import generate_cmd
    from llmcycle.cli.onestage import one_stage_recipe
    from llmcycle.generation.settings import GenerationSettings

    options = set(inspect.signature(generate_cmd).parameters) | {"do_sample"}  # --sample
    assert set(GenerationSettings.model_fields) - options == set()
    assert "set_" in inspect.signature(stage_commands.evaluate_cmd).parameters
    beams = ["generation.num_beams=4", "generation.length_penalty=0.8", "generation.early_stopping=never",
             "generation.no_repeat_ngram_size=3", "generation.repetition_penalty=1.2",
             "generation.frequency_penalty=0.5", "generation.presence_penalty=0.5", "generation.stop=[X]",
             "generation.num_return_sequences=2", "generation.min_new_tokens=2", "generation.max_new_tokens=9"]
    recipe = one_stage_recipe("evaluate", "builtin:tiny-t5", {}, {"models": ["builtin:tiny-t5"]}, beams)
    g = recipe.stage_configs()[0][1].generation
    assert (g.num_beams, g.early_stopping, g.no_repeat_ngram_size, g.num_return_sequences) == (4, "never", 3, 2)
    sampled = one_stage_recipe("optimize", "builtin:tiny-t5", {}, {}, [
        "measure.generation.do_sample=true", "measure.generation.temperature=0.5", "measure.generation.top_k=5",
        "measure.generation.top_p=0.9", "measure.generation.seed=3"])
    m = sampled.stage_configs()[0][1].measure.generation
    assert (m.do_sample, m.temperature, m.top_k, m.top_p, m.seed) == (True, 0.5, 5, 0.9, 3)
