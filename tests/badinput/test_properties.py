"""Property-based: whatever a user feeds recipe loading, ``--set`` parsing and the data readers, the answer is a
value or one of our errors (one line naming what is wrong), never another exception."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmcycle.core.errors import ConfigError, DataError, LLMCycleError
from llmcycle.data.readers import read_csv, read_json, read_jsonl
from llmcycle.recipe.recipe import Recipe, apply_overrides

FAST = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=12)
kinds = st.sampled_from(["info", "estimate", "generate", "tune", "evaluate", "prompt_lab", "align", "optimize",
                         "serve", "nosuch"])
fields = st.sampled_from(["method", "max_steps", "generation", "lora", "templates", "template", "metrics", "seeds",
                          "methods", "batch_size", "n", "bogus"])
stages = st.lists(st.dictionaries(kinds, st.none() | st.dictionaries(fields, values, max_size=3), min_size=1,
                                  max_size=2), max_size=3) | values
recipes = st.fixed_dictionaries({}, optional={
    "name": st.text(max_size=10) | values, "model": st.fixed_dictionaries({"source": st.just("builtin:tiny-t5")})
    | values, "data": values, "runs_dir": st.text(max_size=5), "stages": stages, "extra": values})


def _one_line(exc: Exception) -> None:
    assert str(exc) and "\n" not in str(exc) and "Traceback" not in str(exc)


@FAST
@given(recipes)
def test_recipe_loading_answers_a_recipe_or_a_config_error(data):
    try:
        recipe = Recipe.from_dict(data, where="r.yaml")
    except ConfigError as exc:
        _one_line(exc)
        assert str(exc).startswith("r.yaml: ")
        return
    assert recipe.stages and all(len(entry) == 1 for entry in recipe.stages)
    assert [k for k, _ in recipe.stage_configs()] == [next(iter(e)) for e in recipe.stages]


keys = st.lists(st.sampled_from(["model", "data", "source", "n", "tune", "tune[0]", "tune[7]", "lora", "r", "x",
                                 "generate", "generation", "max_new_tokens", ""]), min_size=1, max_size=4)
raw_values = st.text(alphabet=string.printable, max_size=15)


@FAST
@given(st.lists(st.tuples(keys, st.sampled_from(["=", ""]), raw_values), max_size=4))
def test_set_overrides_answer_a_mapping_or_a_config_error(items):
    base = {"model": {"source": "builtin:tiny-t5"}, "stages": [{"tune": {"max_steps": 1}}, {"generate": None}]}
    overrides = [".".join(k) + sep + v for k, sep, v in items]
    try:
        data = apply_overrides(base, overrides)
    except ConfigError as exc:
        _one_line(exc)
        assert str(exc).startswith("--set ")
        return
    assert isinstance(data, dict)
    try:
        Recipe.from_dict(data, where="--set")
    except ConfigError as exc:
        _one_line(exc)


@FAST
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_data_readers_answer_rows_or_a_data_error(blob):
    for read in (lambda b: read_jsonl("f.jsonl", b), lambda b: read_csv("f.csv", b),
                 lambda b: read_json("f.json", b, lambda k: k if k in ("train", "test") else None)):
        try:
            splits = read(blob)
        except DataError as exc:
            _one_line(exc)
            assert str(exc).startswith("f.")
            continue
        for split in splits.values():
            assert split.rows and all((r.values is None) == (r.problem is not None) for r in split.rows)
            for row in split.rows:
                assert row.problem is None or "\n" not in row.problem


jsonl_lines = st.lists(st.one_of(st.dictionaries(st.text(max_size=5), scalars, max_size=3).map(
    lambda d: __import__("json").dumps(d)), st.text(alphabet=string.printable, max_size=20)), min_size=1, max_size=6)


@FAST
@given(jsonl_lines)
def test_a_bad_jsonl_row_is_named_by_its_line(lines):
    import json

    text = "\n".join(lines)
    try:
        split = read_jsonl("f.jsonl", text.encode())[None]
    except DataError as exc:
        assert not text.strip() and "empty" in str(exc)
        return
    for row in split.rows:
        line = text.split("\n")[row.number - 1].strip()
        try:
            ok = isinstance(json.loads(line), dict)
        except ValueError:
            ok = False
        assert ok == (row.problem is None), (row, line)
        if row.problem:
            assert split.where(row) == f"f.jsonl:{row.number}"


@pytest.mark.parametrize("error", [ConfigError, DataError])
def test_our_errors_are_user_errors(error):
    assert issubclass(error, LLMCycleError)
