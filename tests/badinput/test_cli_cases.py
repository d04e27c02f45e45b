"""Every bad CLI input of ``tests/badinput/cases.py``: exit 1, one line naming the field, file, row or value,
no traceback, and nothing created or changed on disk."""

from __future__ import annotations

import pytest

from tests.badinput.cases import CLI_CASES, USAGE_EXIT, Case
from tests.badinput.harness import problems, run_case


def test_the_table_is_large_and_covers_every_command():
    assert len(CLI_CASES) >= 200
    commands = {case.args[0] for case in CLI_CASES}
    for command in ("run", "plan", "info", "tokenize", "estimate", "data", "generate", "prompt-lab", "evaluate",
                    "benchmark", "tune", "tune-compare", "align", "optimize", "serve", "stage"):
        assert command in commands, command


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda case: case.id)
def test_bad_input_is_one_clear_line(case: Case, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    outcome = run_case(case, workdir)
    assert problems(case, outcome) == [], outcome.err


def test_usage_errors_exit_as_the_readme_says(workdir, monkeypatch):
    """README, "Commands": bad input prints one line and exits 1: a wrong-type flag too (not click's exit 2)."""
    monkeypatch.chdir(workdir)
    outcome = run_case(Case(("tune", "builtin:tiny-t5", "--max-steps", "abc"), ()), workdir)
    assert USAGE_EXIT == 1 and outcome.code == 1
    assert outcome.err.strip().splitlines() == [
        "error: Invalid value for '--max-steps': Input should be a valid integer, unable to parse string as an "
        "integer (got 'abc') (see `llmcycle tune --help`)"]


def test_debug_still_shows_the_traceback(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    outcome = run_case(Case(("--debug", "info", "builtin:nosuch"), ()), workdir)
    assert outcome.traceback is not None and "ModelSourceError" in outcome.traceback
    assert outcome.changed == []


CHECK_FIRST = [
    "run recipes/nested.yaml", "run recipes/deepgen.yaml", "run recipes/template.yaml", "run recipes/baseline.yaml",
    "run recipes/dpobad.yaml", "run recipes/labelprof.yaml", "run recipes/chain.yaml",
    "evaluate builtin:tiny-t5 --baseline nosuch --n 2", "evaluate builtin:tiny-t5 --template nosuchtpl --n 2",
    "evaluate builtin:tiny-t5 --toxicity-label hate", "prompt-lab builtin:tiny-t5 --template nosuchtpl --n 1",
    "prompt-lab builtin:tiny-t5 --setting nosuchpreset", "prompt-lab builtin:tiny-t5 --setting x:nosuchfield=1",
    "prompt-lab builtin:tiny-t5 --set generation.x.nosuchfield=1", "tune builtin:tiny-t5 --template nosuchtpl",
    "generate builtin:tiny-t5 hello --preset nosuch", "optimize builtin:tiny-t5 --method bnb8 --n 2",
    "align builtin:tiny-t5 --set method=dpo --set pairs=data/pairs-empty.jsonl",
]
"""Issue 25, "check first": inputs once refused only after a model had loaded (or a stage had run)."""


@pytest.mark.parametrize("line", CHECK_FIRST)
def test_refused_before_any_model_loads(line, workdir, monkeypatch):
    from llmcycle.models import loader

    case = next(c for c in CLI_CASES if " ".join(c.args) == line)

    def no_load(*args, **kwargs):
        raise AssertionError(f"a model was loaded before `llmcycle {line}` was refused")

    for name in ("_load_builtin", "_load_local", "_load_hub"):
        monkeypatch.setattr(loader, name, no_load)
    monkeypatch.chdir(workdir)
    outcome = run_case(case, workdir)
    assert problems(case, outcome) == [], (outcome.traceback or outcome.err)[-500:]
