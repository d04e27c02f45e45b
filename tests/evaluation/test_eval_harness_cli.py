"""``llmcycle benchmark``: shipped tasks by name, task files, metrics table, output files, one-line errors."""

from __future__ import annotations

import json
import sys

from tests.cli_helpers import run_cli


def test_benchmark_help_and_list(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "benchmark", "--help")
    assert code == 0 and "--num-fewshot" in out
    code, out, _ = run_cli(monkeypatch, capsys, "benchmark")
    assert code == 0 and "general_knowledge" in out and "capitals" in out


def test_benchmark_shipped_task_by_name(monkeypatch, capsys, tmp_path):
    code, out, err = run_cli(monkeypatch, capsys, "benchmark", "general_knowledge", "--model", "builtin:tiny-gpt2",
                             "--limit", "3", "--num-fewshot", "1", "--out", str(tmp_path))
    assert code == 0, err
    assert "acc_norm" in out and "untrained" in out
    summary = json.loads((tmp_path / "general_knowledge.metrics.json").read_text(encoding="utf-8"))
    assert summary["n"] == 3 and summary["num_fewshot"] == 1
    assert len((tmp_path / "general_knowledge.records.jsonl").read_text(encoding="utf-8").splitlines()) == 3


def test_benchmark_errors_are_one_line(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "benchmark", "no_such_task", "--model", "builtin:tiny-gpt2")
    assert code == 1 and "shipped tasks" in err and "Traceback" not in err
    code, _, err = run_cli(monkeypatch, capsys, "benchmark", "general_knowledge")
    assert code == 1 and "--model" in err
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # as if lm-evaluation-harness were not installed
    code, _, err = run_cli(monkeypatch, capsys, "benchmark", "hellaswag", "--lm-eval", "--model", "builtin:tiny-gpt2")
    assert code == 1 and "pip install lm-eval" in err
