"""Experiment tracking (``report_to``): checked before any work, and every training loop (tune, PPO, DPO, the
reward model) writes TensorBoard event files holding the numbers its own result records, at the same steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmcycle.alignment.dpo import DPOConfig, train_dpo
from llmcycle.alignment.ppo import train_ppo
from llmcycle.alignment.ppo_config import PPOConfig
from llmcycle.alignment.reward_model import PreferencePair, RewardModelConfig, train_reward_model
from llmcycle.core import tracking as tracking_module
from llmcycle.core.errors import ConfigError
from llmcycle.core.tracking import Tracking
from llmcycle.models import load_model
from llmcycle.tuning import TuneConfig, train

pytest.importorskip("tensorboard", reason="the tensorboard package (the test extra) reads the event files")


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of the TensorBoard event files under ``folder``: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    files = sorted(folder.rglob("events.out.tfevents.*"))
    assert files, f"no event file under {folder}"
    for f in files:
        acc = EventAccumulator(str(f))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out


PAIRS = [PreferencePair(f"#Person1#: hello {i}.", "they greet.", "they greet, what an idiot.") for i in range(6)]


@pytest.mark.parametrize("cls", [TuneConfig, PPOConfig, DPOConfig, RewardModelConfig])
def test_report_to_is_off_by_default_and_an_unknown_tracker_is_refused(cls):
    assert cls().report_to == []
    with pytest.raises(ConfigError) as err:
        cls.from_dict({"report_to": ["tensorbored"]}, where="x")
    assert "report_to" in str(err.value) and "tensorboard" in str(err.value)


def test_a_tracker_whose_package_is_missing_is_refused_naming_what_to_install(monkeypatch):
    monkeypatch.setattr(tracking_module, "find_spec", lambda name: None)
    with pytest.raises(ConfigError) as err:
        TuneConfig.from_dict({"report_to": ["mlflow"]}, where="tune")
    assert "report_to" in str(err.value) and "pip install mlflow" in str(err.value)


def test_tracking_logs_numbers_only_and_an_empty_list_writes_nothing(tmp_path):
    with Tracking([], tmp_path / "off", "x") as off:
        off.log({"loss": 1.0}, 1)
    assert not (tmp_path / "off").exists()
    with Tracking(["tensorboard"], tmp_path / "on", "x", {"a": {"b": 1}, "c": [1, 2], "d": None}) as on:
        on.log({"loss": 2.5, "note": "text", "flag": True}, 3)
    assert scalars(tmp_path / "on") == {"loss": [(3, 2.5)]}


def test_tune_logs_its_training_loss_at_each_log_step(tmp_path):
    rows = [{"input": f"#Person1#: hello {i}. #Person2#: hi.", "references": ["they greet."]} for i in range(8)]
    cfg = {"method": "lora", "max_steps": 3, "batch_size": 2, "log_every": 1, "save_every": 100,
           "report_to": ["tensorboard"]}
    result = train(load_model("builtin:tiny-t5"), (rows, None), cfg, tmp_path / "tune")
    logged = scalars(tmp_path / "tune" / "tracking")
    assert [(s, pytest.approx(v, rel=1e-5)) for s, v in logged["loss"]] == result.train_loss
    assert [s for s, _ in logged["learning_rate"]] == [1, 2, 3]


def test_dpo_logs_every_step(tmp_path):
    cfg = {"method": "lora", "max_steps": 2, "batch_size": 2, "report_to": ["tensorboard"]}
    result = train_dpo(load_model("builtin:tiny-gpt2"), PAIRS, cfg, tmp_path / "dpo")
    logged = scalars(tmp_path / "dpo" / "tracking")
    for key in ("loss", "margin", "accuracy", "grad_norm"):
        assert logged[key] == [(r["step"], pytest.approx(r[key], rel=1e-5, abs=1e-7)) for r in result.log]


def test_ppo_logs_every_step(tmp_path):
    cfg = {"steps": 2, "batch_size": 4, "mini_batch_size": 2, "value_warmup_steps": 0, "save_every": 50,
           "generation": {"max_new_tokens": 4}, "report_to": ["tensorboard"]}

    def reward(prompts, responses):
        return [float(len(r.split())) for r in responses]

    result = train_ppo(load_model("builtin:tiny-t5"), [f"tell me about item {i}" for i in range(8)], reward, cfg,
                       tmp_path / "ppo")
    logged = scalars(tmp_path / "ppo" / "tracking")
    assert [s for s, _ in logged["reward_mean"]] == [1, 2]
    assert [v for _, v in logged["kl"]] == [pytest.approx(r["kl"], rel=1e-5, abs=1e-7) for r in result.log]


def test_reward_model_logs_each_step_beside_the_folder_it_replaces(tmp_path):
    rm = train_reward_model(PAIRS, {"epochs": 1, "batch_size": 2, "eval_fraction": 0.0, "max_length": 32,
                                    "report_to": ["tensorboard"]}, tmp_path / "rm")
    logged = scalars(tmp_path / "tracking" / "rm")
    assert [s for s, _ in logged["loss"]] == [1, 2, 3]
    assert [v for _, v in logged["loss"]] == [pytest.approx(x, rel=1e-5) for x in rm.losses]
    assert not (tmp_path / "rm" / "tracking").exists()
