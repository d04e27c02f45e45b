"""The prompt lab: the full grid runs on builtin data and writes its table, predictions and chart."""

from __future__ import annotations

import json
import sys

import pytest

from llmcycle.core.errors import LLMCycleError
from llmcycle.evaluation.prompt_lab import PromptLabConfig, parse_setting


def test_prompt_lab_cli_runs_the_issue_grid(tmp_path, monkeypatch, capsys):
    from llmcycle import cli

    monkeypatch.setattr(sys, "argv", ["llmcycle", "prompt-lab", "builtin:tiny-t5", "--n", "2",
                                      "--max-new-tokens", "4", "--setting", "greedy",
                                      "--setting", "sampling t=0.7:do_sample=true,temperature=0.7",
                                      "--runs-dir", str(tmp_path)])
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == 0
    out = capsys.readouterr().out
    run = next(tmp_path.glob("prompt-lab-*"))
    cells = json.loads((run / "01-prompt_lab" / "metrics.json").read_text())
    grid = {(c["template"], c["shots"], c["generation"]) for c in cells}
    assert grid == {(t, k, g) for t in ("none", "instruction", "flan") for k in (0, 1, 3)
                    for g in ("greedy", "sampling t=0.7")}
    records = [json.loads(x) for x in (run / "01-prompt_lab" / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == 18 * 2
    three_shot = [r for r in records if r["shots"] == 3 and r["template"] == "instruction"]
    assert all(len(r["shot_ids"]) + len(r["shots_dropped"]) == 3 for r in three_shot)
    assert all(r["prompt"].count("Summarize the following conversation.") == 1 + len(r["shot_ids"])
               for r in three_shot)
    report = (run / "report.md").read_text()
    assert "## Prompt lab: 18 cells x 2 examples" in report and "![prompt lab](01-prompt_lab/prompt_lab.png)" in report
    assert 'src="data:image/png;base64,' in (run / "report.html").read_text()
    assert "Ranked by ROUGE-1" in out


def test_parse_setting():
    assert parse_setting("greedy") == ("greedy", {"preset": "greedy"})
    assert parse_setting("hot:do_sample=true,temperature=1.3") == ("hot", {"do_sample": True, "temperature": 1.3})
    for bad in ("nonpreset", ":x=1", "lab:temperature"):
        with pytest.raises(LLMCycleError):
            parse_setting(bad)


def test_prompt_lab_config_errors():
    from llmcycle.core.config import ConfigError

    with pytest.raises(ConfigError, match="shots"):
        PromptLabConfig.from_dict({"shots": [-1]})
    with pytest.raises(ConfigError, match="selection"):
        PromptLabConfig.from_dict({"selection": "best"})
    with pytest.raises(ConfigError, match="templates"):
        PromptLabConfig.from_dict({"templates": []})
