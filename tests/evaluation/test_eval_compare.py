"""Model comparison: per-model scores, improvements in points, CIs, paired tests, evaluate_models end to end."""

from __future__ import annotations

import json

import pytest

from llmcycle.core.config import ConfigError
from llmcycle.core.errors import LLMCycleError
from llmcycle.evaluation import rouge
from llmcycle.evaluation.compare import compare, score_outputs
from llmcycle.evaluation.evaluate import EvaluateConfig, evaluate_models, parse_model_spec

REFS = [["the cat sat on the mat"], ["a dog barked at night"], ["rain fell on the town"], ["she bought fresh bread"]]


def test_score_outputs_matches_the_metric_functions():
    preds = ["the cat sat", "a dog barked loudly", "sun on the town", "she bought bread"]
    s = score_outputs("m", preds, REFS, metrics=["rouge", "length", "toxicity"])
    want = rouge(preds, REFS)
    for k in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert s.metrics[k] == pytest.approx(want[k], abs=1e-12)
        assert len(s.per_example[k]) == 4
    assert s.metrics["length_words"] == pytest.approx(sum(len(p.split()) for p in preds) / 4)
    assert 0 <= s.metrics["toxicity"] < 0.5


def test_compare_reports_points_ci_and_paired_p():
    perfect = score_outputs("tuned", [r[0] for r in REFS] * 5, REFS * 5, metrics=["rouge"])
    weak = score_outputs("base", ["the", "a dog", "on the", "she"] * 5, REFS * 5, metrics=["rouge"])
    rows = {(r.model, r.metric): r for r in compare([weak, perfect], baseline="base", n_resamples=500)}
    tuned = rows[("tuned", "rouge1")]
    assert tuned.value == pytest.approx(1.0)
    assert tuned.delta_points == pytest.approx((1.0 - weak.metrics["rouge1"]) * 100)
    assert tuned.p_value < 0.01
    base = rows[("base", "rouge1")]
    assert base.delta_points is None and base.ci_low <= base.value <= base.ci_high


def test_compare_bad_input():
    s = score_outputs("a", ["x"], [["x"]], metrics=["length"])
    with pytest.raises(LLMCycleError, match="baseline"):
        compare([s], baseline="nope")
    with pytest.raises(LLMCycleError, match="unique"):
        compare([s, s])
    with pytest.raises(LLMCycleError, match="unknown"):
        score_outputs("a", ["x"], [["x"]], metrics=["meteor"])


def test_model_spec_forms():
    assert parse_model_spec("builtin:tiny-t5").source == "builtin:tiny-t5"
    spec = parse_model_spec("tuned=builtin:tiny-t5+runs/adapter")
    assert (spec.name, spec.source, spec.adapter) == ("tuned", "builtin:tiny-t5", "runs/adapter")
    with pytest.raises(LLMCycleError, match="names no model"):
        parse_model_spec("x=")


def test_evaluate_config_errors_name_fields():
    with pytest.raises(ConfigError, match="metrics"):
        EvaluateConfig.from_dict({"models": ["builtin:tiny-t5"], "metrics": ["meteor"]})
    with pytest.raises(ConfigError, match="generation.max_new_tokens"):
        EvaluateConfig.from_dict({"generation": {"max_new_tokens": 0}})


def test_evaluate_two_builtins_end_to_end(tmp_path):
    from llmcycle.data import load_data
    from llmcycle.report.html import render_html

    rows = load_data("builtin:dialogues", split="test", n=4)["test"]
    cfg = EvaluateConfig.from_dict({"models": ["tiny=builtin:tiny-t5", "minilm=builtin:minilm-seq2seq"],
                                    "generation": {"max_new_tokens": 12, "min_new_tokens": 4},
                                    "bootstrap_resamples": 200, "n_side_by_side": 2})
    out = tmp_path / "evaluate"
    result = evaluate_models(cfg, rows, out)
    for name in ("tiny", "minilm"):
        preds = [json.loads(x) for x in (out / "predictions" / f"{name}.jsonl").read_text().splitlines()]
        assert len(preds) == 4 and {"input", "prompt", "references", "prediction"} <= preds[0].keys()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["baseline"] == "tiny" and set(metrics["models"]) == {"tiny", "minilm"}
    minilm_r1 = next(r for r in result.rows if r.model == "minilm" and r.metric == "rouge1")
    assert minilm_r1.delta_points == pytest.approx(
        (result.scores[1].metrics["rouge1"] - result.scores[0].metrics["rouge1"]) * 100)
    assert minilm_r1.ci_low is not None and minilm_r1.p_value is not None
    assert "Absolute improvement over `tiny`" in result.section and "### Side by side" in result.section
    page = render_html(result.section, tmp_path)
    assert page.count('src="data:image/png;base64,') == 3 and "missing image" not in page


def test_evaluate_cli_two_builtins_writes_everything(tmp_path, monkeypatch, capsys):
    import base64
    import re
    import sys

    from llmcycle import cli

    monkeypatch.setattr(sys, "argv", ["llmcycle", "evaluate", "a=builtin:tiny-t5", "b=builtin:tiny-gpt2",
                                      "--n", "3", "--max-new-tokens", "6", "--runs-dir", str(tmp_path)])
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == 0
    run = next(tmp_path.glob("evaluate-*"))
    assert {p.name for p in (run / "01-evaluate" / "predictions").iterdir()} == {"a.jsonl", "b.jsonl"}
    metrics = json.loads((run / "01-evaluate" / "metrics.json").read_text())
    b_rouge = next(r for r in metrics["comparison"] if r["model"] == "b" and r["metric"] == "rouge1")
    assert b_rouge["delta_points"] is not None and b_rouge["ci_low"] is not None
    page = (run / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    out = " ".join(capsys.readouterr().out.split())
    assert "Evaluation: 3 examples" in out and "95% bootstrap intervals" in out  # the stage's section, printed
