"""Exact resume, evaluation during training, early stopping, outputs of a run."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import TrainerCallback

from llmcycle.tuning import train


class StopAt(TrainerCallback):
    """Simulates a kill right after the checkpoint at ``step`` is written."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def trained_state(loaded):
    return {n: p.detach().clone() for n, p in loaded.model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name,method", [("tiny-gpt2", "full"), ("tiny-t5", "lora")])
def test_interrupted_run_resumes_to_identical_weights(name, method, fresh, rows, tmp_path):
    # dropout on, warmup + linear decay, shuffled data, grad accumulation: RNG, scheduler, optimizer
    # and data position must all be restored for the weights to match bit for bit
    cfg = {"method": method, "max_steps": 6, "batch_size": 2, "grad_accum": 2, "learning_rate": 5e-3,
           "warmup_ratio": 0.3, "save_every": 2, "log_every": 1, "lora": {"r": 4, "dropout": 0.1},
           "max_input_tokens": 32, "max_target_tokens": 8}
    straight = fresh(name)
    train(straight, rows, cfg, tmp_path / "a")
    first = fresh(name)
    part = train(first, rows, cfg, tmp_path / "b", callbacks=[StopAt(4)])
    assert part.steps == 4 and (tmp_path / "b" / "checkpoints" / "checkpoint-4").is_dir()
    resumed = fresh(name)
    result = train(resumed, rows, cfg, tmp_path / "b")
    assert result.resumed_from.endswith("checkpoint-4") and result.steps == 6
    want, got = trained_state(straight), trained_state(resumed)
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want), [k for k in want if not torch.equal(want[k], got[k])]
    a = json.loads((tmp_path / "a" / "tune_result.json").read_text())["train_loss"]
    b = json.loads((tmp_path / "b" / "tune_result.json").read_text())["train_loss"]
    assert a == b  # the loss history survives the restart too


def test_evaluation_early_stopping_and_outputs(fresh, rows, tmp_path):
    cfg = {"method": "full", "max_steps": 40, "batch_size": 4, "learning_rate": 5.0, "eval_every": 1,
           "early_stopping_patience": 2, "log_every": 1, "save_every": 50, "max_input_tokens": 32,
           "max_target_tokens": 8}  # absurd learning rate: validation loss soon stops improving
    result = train(fresh("tiny-gpt2"), rows, cfg, tmp_path)
    assert result.steps < 40
    assert result.eval_loss and result.metrics["eval_loss"] == result.eval_loss[-1][1]
    losses = [v for _, v in result.eval_loss]
    assert min(losses[-2:]) >= min(losses)
    saved = json.loads((tmp_path / "tune_result.json").read_text())
    assert saved["method"] == "full" and saved["trainable"] == saved["total"] and saved["pct"] == 100
    assert saved["truncation"]["rows"] == 12 and saved["config"]["early_stopping_patience"] == 2
    assert (tmp_path / "loss_curve.png").stat().st_size > 1000


def test_higher_learning_rate_for_new_modules_and_length_grouping(minilm, rows, tmp_path):
    import copy

    loaded = copy.deepcopy(minilm)
    cfg = {"method": "lora", "lora": {"r": 2}, "max_steps": 1, "batch_size": 4, "learning_rate": 1e-4,
           "lr_new_modules": 1e-3, "group_by_length": True, "max_input_tokens": 24, "max_target_tokens": 8,
           "log_every": 1}
    seen = {}

    class Grab(TrainerCallback):
        def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
            seen["lrs"] = sorted({g["lr"] for g in optimizer.param_groups})

    result = train(loaded, rows, cfg, tmp_path, callbacks=[Grab()])
    assert result.new_modules == ["crossattention", "cls.predictions.transform"]
    assert result.steps == 1 and (tmp_path / "model" / "adapter_config.json").is_file()
    assert len(seen["lrs"]) == 2  # two learning rates (warmup may scale both)


KILLED_RUN = """
import os, signal, sys
from transformers import TrainerCallback
sys.path.insert(0, {repo!r})
sys.path.insert(0, {here!r})
from conftest import make_rows
from llmcycle.models import load_model
from llmcycle.tuning import train

class Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)

train(load_model("builtin:tiny-gpt2"), (make_rows(12), make_rows(4, 100)), {cfg!r}, {out!r}, callbacks=[Kill()])
"""


def test_sigkilled_run_resumes_to_identical_weights(fresh, rows, tmp_path):
    """A real SIGKILL between checkpoints (and a half-written checkpoint) still resumes exactly."""
    import subprocess
    import sys
    from pathlib import Path

    cfg = {"method": "full", "max_steps": 6, "batch_size": 2, "learning_rate": 5e-3, "warmup_ratio": 0.3,
           "save_every": 2, "log_every": 1, "max_input_tokens": 32, "max_target_tokens": 8}
    here = Path(__file__).parent
    script = KILLED_RUN.format(repo=str(here.parents[1]), here=str(here), kill_at=5, cfg=cfg,
                               out=str(tmp_path / "b"))
    proc = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    ckpts = tmp_path / "b" / "checkpoints"
    assert (ckpts / "checkpoint-4").is_dir() and not (tmp_path / "b" / "model").exists()
    (ckpts / "checkpoint-6").mkdir()  # a save the kill interrupted: no completion marker
    (ckpts / "checkpoint-6" / "model.safetensors").write_bytes(b"half")
    resumed = fresh("tiny-gpt2")
    result = train(resumed, rows, cfg, tmp_path / "b")
    assert result.resumed_from.endswith("checkpoint-4") and result.steps == 6
    straight = fresh("tiny-gpt2")
    train(straight, rows, cfg, tmp_path / "a")
    want, got = trained_state(straight), trained_state(resumed)
    assert all(torch.equal(want[k], got[k]) for k in want)


def test_resuming_with_another_config_is_an_error(fresh, rows, tmp_path):
    from llmcycle.core.errors import ConfigError

    cfg = {"method": "full", "max_steps": 2, "batch_size": 4, "save_every": 1, "max_input_tokens": 32,
           "max_target_tokens": 8}
    train(fresh("tiny-gpt2"), rows, cfg, tmp_path)
    with pytest.raises(ConfigError, match="^learning_rate: .* other values"):
        train(fresh("tiny-gpt2"), rows, dict(cfg, learning_rate=1e-3), tmp_path)
    again = train(fresh("tiny-gpt2"), rows, dict(cfg, learning_rate=1e-3), tmp_path, resume=False)
    assert again.resumed_from is None and again.steps == 2


def test_an_option_block_the_method_never_reads_may_differ(fresh, rows, tmp_path):
    """A full run resumes though its lora options changed (or, as when a field is added, were saved without one);
    a lora run does not."""
    import json

    from llmcycle.core.errors import ConfigError

    cfg = {"method": "full", "max_steps": 2, "batch_size": 4, "save_every": 1, "max_input_tokens": 32,
           "max_target_tokens": 8}
    train(fresh("tiny-gpt2"), rows, cfg, tmp_path / "full")
    saved = tmp_path / "full" / "tune_config.json"
    old = json.loads(saved.read_text())
    del old["lora"]["train_new_tokens"]
    saved.write_text(json.dumps(old))
    again = train(fresh("tiny-gpt2"), rows, dict(cfg, lora={"r": 16}), tmp_path / "full")
    assert again.resumed_from.endswith("checkpoint-2")

    lora = dict(cfg, method="lora")
    train(fresh("tiny-gpt2"), rows, lora, tmp_path / "lora")
    with pytest.raises(ConfigError, match="^lora: .* other values"):
        train(fresh("tiny-gpt2"), rows, dict(lora, lora={"r": 16}), tmp_path / "lora")


def test_early_stopping_state_survives_a_restart(fresh, rows, tmp_path):
    cfg = {"method": "full", "max_steps": 40, "batch_size": 4, "learning_rate": 5.0, "eval_every": 1,
           "early_stopping_patience": 3, "log_every": 1, "save_every": 1, "keep_checkpoints": None,
           "max_input_tokens": 32, "max_target_tokens": 8}
    straight = train(fresh("tiny-gpt2"), rows, cfg, tmp_path / "a")
    assert straight.steps < 40
    # restart at a step where the run had already seen evaluations without improvement: a fresh
    # counter would let the resumed run go on longer than the uninterrupted one
    losses = [v for _, v in straight.eval_loss]
    best, bad, restart = float("inf"), 0, None
    for step, loss in enumerate(losses, start=1):
        best, bad = (loss, 0) if loss < best else (best, bad + 1)
        if 0 < bad < 3 and step < straight.steps:
            restart = step
    assert restart is not None
    train(fresh("tiny-gpt2"), rows, cfg, tmp_path / "b", callbacks=[StopAt(restart)])
    resumed = train(fresh("tiny-gpt2"), rows, cfg, tmp_path / "b")
    assert resumed.resumed_from.endswith(f"checkpoint-{restart}")
    assert resumed.steps == straight.steps
