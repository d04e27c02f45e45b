"""Malformed task files and rows give one clear error naming the file, row and field; nothing is written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from llmcycle.core.errors import ConfigError, DataError, LLMCycleError
from llmcycle.evaluation.harness import load_task, run_lm_eval, run_task
from llmcycle.evaluation.harness.lm_eval_bridge import lm_eval_available

GOOD_ROWS = [
    {"question": "What colour is grass?", "choices": ["green", "blue"], "answer": 0},
    {"question": "How many eyes do people have?", "choices": ["one", "two", "three"], "answer": 1},
    {"question": "What do cows drink?", "choices": ["water", "oil"], "answer": 0},
]
GOOD_SPEC = {"name": "bad", "type": "multiple_choice", "data": "bad.jsonl", "prompt": "Q: {question}\nA:"}


def write(folder: Path, spec: dict | str, rows: list | None = None, raw_lines: list[str] | None = None) -> Path:
    if rows is not None or raw_lines is not None:
        lines = raw_lines if raw_lines is not None else [json.dumps(r) for r in rows]
        (folder / "bad.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = folder / "bad.yaml"
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec), encoding="utf-8")
    return path


def spec(**changes) -> dict:
    out = {**GOOD_SPEC, **changes}
    return {k: v for k, v in out.items() if v is not None}


def row_change(i: int, **changes) -> list[dict]:
    rows = [dict(r) for r in GOOD_ROWS]
    rows[i].update(changes)
    return [{k: v for k, v in r.items() if v is not None} for r in rows]


# (id, spec, rows, error type, words the message must hold; "{yaml}" / "{data}" stand for the paths)
CASES = [
    ("missing name", spec(name=None), GOOD_ROWS, ConfigError, ["{yaml}", "name", "Field required"]),
    ("unknown type", spec(type="multi"), GOOD_ROWS, ConfigError, ["{yaml}", "type", "multiple_choice"]),
    ("misspelt field", {**GOOD_SPEC, "promt": "x"}, GOOD_ROWS, ConfigError, ["{yaml}", "promt", "unknown field"]),
    ("missing data file", spec(data="nowhere.jsonl"), None, DataError,
     ["{yaml}: data: no such file", "nowhere.jsonl"]),
    ("answer out of range", spec(), row_change(1, answer=3), DataError,
     ["{data}:2", "answer", "out of range for 3 choices"]),
    ("letter out of range", spec(), row_change(0, answer="C"), DataError, ["{data}:1", "answer", "out of range"]),
    ("answer not a choice", spec(), row_change(2, answer="milk"), DataError, ["{data}:3", "answer", "'milk'"]),
    ("row without choices", spec(), row_change(2, choices=None), DataError, ["{data}:3", "choices", "no column"]),
    ("one choice only", spec(), row_change(0, choices=["green"]), DataError,
     ["{data}:1", "choices", "at least two"]),
    ("empty choice", spec(), row_change(0, choices=["green", " "]), DataError, ["{data}:1", "choices[1]", "empty"]),
    ("row without answer", spec(), row_change(1, answer=None), DataError, ["{data}:2", "answer", "no column"]),
    ("prompt uses a missing column", spec(prompt="{topic}: {question}"), GOOD_ROWS, DataError,
     ["{data}:1", "{topic}", "no column 'topic'"]),
    ("positional prompt field", spec(prompt="Q: {}"), GOOD_ROWS, ConfigError, ["{yaml}", "prompt", "named fields"]),
    ("bad choice_format key", spec(choice_format="{answer}"), GOOD_ROWS, ConfigError,
     ["{yaml}", "choice_format", "{answer}"]),
    ("metric on multiple choice", spec(metric="rouge1"), GOOD_ROWS, ConfigError,
     ["{yaml}: metric: ", "only for generative tasks"]),
    ("unknown metric", spec(type="generative", metric="meteor"), GOOD_ROWS, ConfigError, ["{yaml}", "metric"]),
    ("bad generation setting", spec(type="generative", generation={"top_p": 2}), GOOD_ROWS, ConfigError,
     ["{yaml}", "generation", "top_p"]),
    ("unknown generation setting", spec(type="generative", generation={"beams": 2}), GOOD_ROWS, ConfigError,
     ["{yaml}", "generation.beams", "unknown field"]),
    ("bad name", spec(name="../evil"), GOOD_ROWS, ConfigError, ["{yaml}: name:", "not a valid task name"]),
    ("negative num_fewshot", spec(num_fewshot=-1), GOOD_ROWS, ConfigError, ["{yaml}", "num_fewshot"]),
    ("too many shots", spec(num_fewshot=3), GOOD_ROWS, ConfigError,
     ["{yaml}: num_fewshot", "3 examples", "only 2 rows"]),
    ("missing fewshot file", spec(num_fewshot=1, fewshot_file="pool.jsonl"), GOOD_ROWS, DataError,
     ["{yaml}: fewshot_file: no such file", "pool.jsonl"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_task_gives_clear_error(tmp_path, load_builtin, case):
    _, task_spec, rows, error, words = case
    path = write(tmp_path, task_spec, rows)
    out = tmp_path / "out"
    with pytest.raises(error) as info:
        run_task(path, load_builtin("tiny-gpt2"), out_dir=out)
    message = str(info.value)
    for word in words:
        assert word.replace("{yaml}", str(path)).replace("{data}", str(tmp_path / "bad.jsonl")) in message, message
    assert not out.exists()  # no partial output


def test_bad_json_line_names_file_and_line(tmp_path):
    lines = [json.dumps(GOOD_ROWS[0]), "", "{not json", json.dumps(GOOD_ROWS[1])]
    path = write(tmp_path, spec(), raw_lines=lines)
    with pytest.raises(DataError, match=r"bad\.jsonl:3: not valid JSON"):
        run_task(path, "builtin:tiny-gpt2")


def test_non_object_row_and_empty_file(tmp_path):
    path = write(tmp_path, spec(), raw_lines=[json.dumps(GOOD_ROWS[0]), "[1, 2]"])
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not a JSON object"):
        run_task(path, "builtin:tiny-gpt2")
    write(tmp_path, spec(), raw_lines=[""])
    with pytest.raises(DataError, match="empty file"):
        run_task(path, "builtin:tiny-gpt2")


def test_yaml_problems(tmp_path):
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_task(write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_task(write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(ConfigError, match="no such task file"):
        load_task(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="shipped tasks: .*general_knowledge"):
        load_task("no_such_task")


def test_bad_run_arguments(tmp_path, load_builtin):
    path = write(tmp_path, spec(), GOOD_ROWS)
    for kwargs, word in (({"limit": 0}, "limit"), ({"num_fewshot": -2}, "num_fewshot"),
                         ({"batch_size": 0}, "batch_size")):
        with pytest.raises(LLMCycleError, match=word):
            run_task(path, load_builtin("tiny-gpt2"), **kwargs)


def test_lm_eval_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # makes `import lm_eval` fail even where installed
    assert lm_eval_available() is False
    with pytest.raises(LLMCycleError, match="pip install lm-eval"):
        run_lm_eval("hellaswag", "builtin:tiny-gpt2")


def test_lm_eval_task_name_from_a_task_file(tmp_path):
    from llmcycle.evaluation.harness.lm_eval_bridge import lm_eval_task_name

    assert lm_eval_task_name("hellaswag") == "hellaswag"  # not a file nor a shipped task: lm-eval's own name
    assert lm_eval_task_name(str(write(tmp_path, spec(lm_eval_task="arc_easy"), GOOD_ROWS))) == "arc_easy"
    with pytest.raises(LLMCycleError, match="general_knowledge.yaml: lm_eval_task: not set"):
        lm_eval_task_name("general_knowledge")
