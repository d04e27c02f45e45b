"""Multitask mixing by weight, and the forgetting check (single-task tuning forgets, the mix remembers)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from llmcycle.core.errors import ConfigError, DataError
from llmcycle.prompts import PromptTemplate
from llmcycle.tuning.forgetting import forgetting_check
from llmcycle.tuning.multitask import Task, mix_tasks, task_scores

WORDS = "apple river stone cloud lamp forest candle mirror garden window".split()
TOPIC = PromptTemplate("topic-q", "topic of: {dialogue}", task="classification", target=" {topic}")


def dialogues(n, start=0):
    return [{"input": f"#Person1#: {WORDS[i % 10]} {WORDS[(i * 3) % 10]} {i}\n#Person2#: {WORDS[(i * 7) % 10]}",
             "references": ["#Person1# talks about things."], "topic": "weather" if i % 2 else "food"}
            for i in range(start, start + n)]


def test_mix_follows_weights_renders_each_task_and_is_seeded():
    summ = Task("summary", dialogues(30), weight=3.0)
    topic = Task("topic", dialogues(30), weight=1.0, templates=[TOPIC], target_field="topic")
    rows, report = mix_tasks([summ, topic], size=40, seed=1)
    assert report.rows == {"summary": 30, "topic": 10} and Counter(r["task"] for r in rows) == report.rows
    assert all(r["input"].startswith("topic of: ") and r["references"][0] in ("food", "weather")
               for r in rows if r["task"] == "topic")
    assert all(not r["input"].startswith("topic of") for r in rows if r["task"] == "summary")
    assert [r["task"] for r in rows[:10]] != ["summary"] * 10 or len(set(r["task"] for r in rows[:20])) == 2
    assert mix_tasks([summ, topic], size=40, seed=1)[0] == rows  # seeded
    assert mix_tasks([summ, topic], size=40, seed=2)[0] != rows
    many, report = mix_tasks([Task("a", dialogues(3)), Task("b", dialogues(3))], size=10)
    assert report.rows == {"a": 5, "b": 5} and report.repeated == {"a": 2, "b": 2} and len(many) == 10


def test_mix_errors_name_the_task():
    with pytest.raises(ConfigError, match="weight"):
        Task("x", dialogues(2), weight=0)
    with pytest.raises(ConfigError, match="names must differ"):
        mix_tasks([Task("x", dialogues(2)), Task("x", dialogues(2))])
    with pytest.raises(DataError, match="task 'x' row 0: no 'topic'"):
        Task("x", [{"input": "hi", "references": ["a"]}], target_field="topic").render()


@pytest.mark.slow
def test_single_task_tuning_forgets_the_held_out_task_and_the_mix_does_not(tmp_path):
    from llmcycle.models import load_model
    from llmcycle.tuning import train

    topic = Task("topic", dialogues(24), dialogues(8, start=100), templates=[TOPIC], target_field="topic")
    summary = Task("summary", [r | {"references": [f"#Person1# mentions {WORDS[i % 10]}."]}
                               for i, r in enumerate(dialogues(24, start=200))], dialogues(8, start=300))
    quick = {"method": "full", "batch_size": 8, "learning_rate": 3e-3, "save_every": 1000, "log_every": 5,
             "max_input_tokens": 48, "max_target_tokens": 16, "seed": 0}
    # the starting point: a tiny T5 that has learned the topic task
    start = load_model("builtin:tiny-t5")
    train(start, (topic.render(), None), quick | {"max_steps": 40}, tmp_path / "teach")
    start.model.save_pretrained(tmp_path / "start")
    start.tokenizer.save_pretrained(tmp_path / "start")

    report = forgetting_check(lambda: load_model(str(tmp_path / "start")), summary, topic,
                              quick | {"max_steps": 30}, tmp_path / "check")
    s = report.scores
    # tuning on summaries alone makes the model worse at topics than it was ...
    assert s["single_task"]["topic"]["loss"] > s["start"]["topic"]["loss"] + 0.5
    # ... mixing in the topic task keeps it (much closer to where it started)
    assert s["multitask"]["topic"]["loss"] < s["single_task"]["topic"]["loss"] - 0.5
    # and both tuned models learned the primary task
    assert s["single_task"]["summary"]["loss"] < s["start"]["summary"]["loss"]
    assert s["multitask"]["summary"]["loss"] < s["start"]["summary"]["loss"]
    saved = json.loads((tmp_path / "check" / "forgetting.json").read_text())
    assert saved["held_out_loss_change"]["single_task"] > saved["held_out_loss_change"]["multitask"]
    assert saved["mix"]["rows"] == {"summary": 12, "topic": 12}


def test_task_scores_loss_is_lower_on_what_a_model_was_taught(tmp_path):
    from llmcycle.models import load_model
    from llmcycle.tuning import train

    topic = Task("topic", dialogues(16), dialogues(8, start=50), templates=[TOPIC], target_field="topic")
    loaded = load_model("builtin:tiny-gpt2")
    before = task_scores(loaded, topic, max_input_tokens=48, max_target_tokens=8, generate=True)
    train(loaded, (topic.render(), None), {"method": "full", "max_steps": 25, "batch_size": 8,
                                           "learning_rate": 3e-3, "max_input_tokens": 48, "max_target_tokens": 8,
                                           "save_every": 1000}, tmp_path)
    after = task_scores(loaded, topic, max_input_tokens=48, max_target_tokens=8, generate=True)
    assert after["loss"] < before["loss"] - 1.0
    assert set(after) == {"loss", "rouge1", "rougeL"}


def test_tune_config_mix_trains_on_the_weighted_mix(tmp_path):
    from llmcycle.models import load_model
    from llmcycle.tuning import train

    extra = tmp_path / "topics.train.jsonl"
    extra.write_text("".join(json.dumps({"dialogue": r["input"], "summary": "x", "topic": r["topic"]}) + "\n"
                             for r in dialogues(10)))
    cfg = {"method": "lora", "max_steps": 2, "batch_size": 4, "max_input_tokens": 48, "max_target_tokens": 8,
           "save_every": 100, "main_weight": 3.0, "mix_size": 16,
           "mix": [{"data": {"source": str(extra)}, "name": "topic", "templates": ["none"],
                    "target_field": "topic"}]}
    result = train(load_model("builtin:tiny-t5"), (dialogues(20), None), cfg, tmp_path / "run")
    assert result.mix["rows"] == {"main": 12, "topic": 4} and result.truncation["rows"] == 16
    saved = json.loads((tmp_path / "run" / "tune_result.json").read_text())
    assert saved["mix"]["rows"]["topic"] == 4
    from llmcycle.tuning import TuneConfig

    with pytest.raises(Exception, match=r"mix\.0\.weight"):
        TuneConfig.from_dict(cfg | {"mix": [{"data": {"source": str(extra)}, "weight": 0}]}, where="tune")
