"""A real ``llmcycle run`` killed (SIGKILL, whole process group) during its tune stage, then resumed with --run-dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmcycle.core.checkpoint import COMPLETE

RECIPE = """\
name: kill
runs_dir: {runs}
model: {{source: "builtin:tiny-t5"}}
data: {{source: "builtin:dialogues", split: test, n: 8}}
stages:
  - info: {{}}
  - tune: {{method: full, max_steps: 40, batch_size: 2, save_every: 5, log_every: 5, learning_rate: 1.0e-3,
            max_input_tokens: 48, max_target_tokens: 12}}
  - evaluate: {{generation: {{max_new_tokens: 4}}, bootstrap_resamples: 100, metrics: [rouge, length]}}
"""


def llmcycle_run(*args: str) -> list[str]:
    return [sys.executable, "-m", "llmcycle.cli", "run", *args]


def child_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "COLUMNS": "200"}


def complete_checkpoints(run: Path) -> list[Path]:
    """Checkpoints the Trainer finished writing. (Not ``last_checkpoint``: it deletes incomplete ones, which
    would be the one being written right now.)"""
    return [c for c in (run / "02-tune" / "checkpoints").glob("checkpoint-*") if (c / COMPLETE).is_file()]


def kill_during_tune(cmd: list[str], runs: Path, log: Path, deadline_s: float = 120) -> Path:
    """Start ``cmd`` in its own process group; SIGKILL the group once a complete tune checkpoint exists
    while the tune stage is still running. Returns the run directory."""
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=runs.parent, env=child_env(), stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + deadline_s
    try:
        while True:
            found = [p for p in runs.glob("kill-*") if p.is_dir()]
            if found and complete_checkpoints(found[0]) \
                    and not (found[0] / "stages" / "02-tune.done.json").exists():
                os.killpg(proc.pid, signal.SIGKILL)
                break
            if proc.poll() is not None:
                pytest.fail(f"the run ended (exit {proc.returncode}) before a tune checkpoint was seen:\n"
                            f"{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no complete tune checkpoint within {deadline_s}s:\n{log.read_text()[-3000:]}")
            time.sleep(0.02)  # polling interval, not a wait for something to happen
    finally:  # never leave the run behind, whatever failed
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(found) == 1
    return found[0]


def trained_weights(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


@pytest.mark.slow
def test_sigkilled_run_resumes_with_run_dir(tmp_path):
    import torch

    runs = tmp_path / "runs"
    recipe = tmp_path / "kill.yaml"
    recipe.write_text(RECIPE.format(runs=runs))

    run = kill_during_tune(llmcycle_run(str(recipe)), runs, tmp_path / "killed.log")
    stages = run / "stages"
    assert (stages / "01-info.done.json").is_file() and (run / "01-info" / "section.md").is_file()
    assert (stages / "02-tune.started.json").is_file() and not (stages / "02-tune.done.json").exists()
    assert not (run / "02-tune" / "model").exists() and not (run / "report.html").exists()
    seen = max(int(c.name.split("-")[1]) for c in complete_checkpoints(run))
    info_done = (stages / "01-info.done.json").read_bytes()

    resumed = subprocess.run(llmcycle_run(str(recipe), "--run-dir", str(run)), cwd=tmp_path, env=child_env(),
                             capture_output=True, text=True, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "[01-info] already done with this config: skipped" in resumed.stdout
    assert (stages / "01-info.done.json").read_bytes() == info_done  # not re-run: same `finished` time
    for name in ("02-tune", "03-evaluate"):
        assert (stages / f"{name}.done.json").is_file()
    result = json.loads((run / "02-tune" / "tune_result.json").read_text())
    assert result["resumed_from"] and Path(result["resumed_from"]).parent == run / "02-tune" / "checkpoints"
    assert int(result["resumed_from"].rsplit("-", 1)[1]) >= seen and result["steps"] == 40
    metrics = json.loads((run / "03-evaluate" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"base", "tuned"}

    page = (run / "report.html").read_text()
    for heading in ("<h1>llmcycle run: kill", "<h2>Model card", "<h2>Fine-tuning: full", "<h2>Evaluation"):
        assert heading in page
    assert "(not run)" not in page and "missing image" not in page
    report_md = (run / "report.md").read_text()
    assert page.count('src="data:image/png;base64,') == report_md.count("![") >= 2  # loss curve, eval charts

    # the same recipe uninterrupted, in a process with the same thread count as the killed one (float reductions
    # differ between thread counts): bit-identical weights and loss history
    straight_runs = tmp_path / "straight"
    done = subprocess.run(llmcycle_run(str(recipe), "--runs-dir", str(straight_runs)), cwd=tmp_path, env=child_env(),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    straight = next(straight_runs.glob("kill-*"))
    want = trained_weights(straight / "02-tune" / "model")
    got = trained_weights(run / "02-tune" / "model")
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want), [k for k in want if not torch.equal(want[k], got[k])]
    straight_result = json.loads((straight / "02-tune" / "tune_result.json").read_text())
    assert straight_result["resumed_from"] is None and straight_result["train_loss"] == result["train_loss"]
