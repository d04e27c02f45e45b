"""Multi-process training: 2-process DDP on CPU (gloo) through `accelerate launch`; shipped launcher configs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.cli_helpers import run_cli

HERE = Path(__file__).resolve().parent
CONFIGS = Path(__file__).resolve().parents[2] / "llmcycle" / "configs" / "accelerate"


def _accelerate() -> str:
    exe = Path(sys.executable).with_name("accelerate")
    return str(exe) if exe.is_file() else shutil.which("accelerate") or "accelerate"


@pytest.mark.slow
def test_two_process_ddp_on_cpu_trains_both_processes_to_the_same_weights(tmp_path):
    env = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "MASTER_PORT": "0"}
    env.pop("RANK", None)
    proc = subprocess.run([_accelerate(), "launch", "--config_file", str(CONFIGS / "ddp_cpu.yaml"),
                           "--main_process_port", "0", str(HERE / "ddp_worker.py"), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert all(r["steps"] == 4 and r["changed"] == r["tensors"] for r in ranks)  # every weight moved in both
    assert ranks[0]["hash"] == ranks[1]["hash"]  # and both processes hold the same weights
    run = tmp_path / "run"  # one set of outputs, written by the main process
    assert (run / "model" / "model.safetensors").is_file() and (run / "tune_result.json").is_file()
    assert sorted(p.name for p in (run / "checkpoints" / "checkpoint-4").glob("rng_state_*")) == \
        ["rng_state_0.pth", "rng_state_1.pth"]


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
def test_shipped_accelerate_configs_are_valid(name):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    path = CONFIGS / f"{name}.yaml"
    config = load_config_from_file(str(path))  # rejects unknown top-level keys
    options = {s for a in launch_command_parser()._actions for s in a.option_strings}
    inner = yaml.safe_load(path.read_text()).get("fsdp_config") or yaml.safe_load(path.read_text()).get(
        "deepspeed_config") or {}
    assert [k for k in inner if f"--{k}" not in options] == []
    assert config.num_processes >= 2


def test_tune_cli_under_a_launcher_needs_a_shared_run_dir(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, _, err = run_cli(monkeypatch, capsys, "tune", "builtin:tiny-t5", "--max-steps", "1", "--n", "4",
                           "--runs-dir", str(tmp_path))
    assert code == 1 and "--run-dir" in err and "accelerate launch" in err
    assert list(tmp_path.iterdir()) == []


def test_tune_cli_creates_a_missing_run_dir_but_never_reuses_a_foreign_folder(monkeypatch, capsys, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    code, _, err = run_cli(monkeypatch, capsys, "tune", "builtin:tiny-t5", "--max-steps", "1", "--n", "4",
                           "--run-dir", str(foreign))
    assert code == 1 and "not a llmcycle run directory" in err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    code, _, err = run_cli(monkeypatch, capsys, "tune", "builtin:tiny-t5", "--max-steps", "1", "--n", "4",
                           "--batch-size", "2", "--method", "full", "--run-dir", str(tmp_path / "new"))
    assert code == 0, err
    assert (tmp_path / "new" / "01-tune" / "model").is_dir() and (tmp_path / "new" / "report.html").is_file()


def test_tune_compare_puts_methods_side_by_side(monkeypatch, capsys, tmp_path):
    for method in ("full", "lora"):
        code, _, err = run_cli(monkeypatch, capsys, "tune", "builtin:tiny-t5", "--method", method, "--max-steps", "2",
                               "--n", "8", "--batch-size", "4", "--run-dir", str(tmp_path / method))
        assert code == 0, err
    code, out, err = run_cli(monkeypatch, capsys, "tune-compare", str(tmp_path / "full"), str(tmp_path / "lora"),
                             "--out", str(tmp_path / "cmp"))
    assert code == 0, err
    md = (tmp_path / "cmp" / "report.md").read_text()
    full_row = next(line for line in md.splitlines() if line.startswith("| full"))
    lora_row = next(line for line in md.splitlines() if line.startswith("| lora"))
    assert "| 100.00 |" in full_row and "| 100.0% |" in full_row  # full trains everything; its size is the yardstick
    pct = float(lora_row.split("|")[3])
    assert 0 < pct < 100
    assert (tmp_path / "cmp" / "methods_loss.png").is_file() and (tmp_path / "cmp" / "report.html").is_file()
    code, _, err = run_cli(monkeypatch, capsys, "tune-compare", str(tmp_path / "cmp"))
    assert code == 1 and "no tune_result.json" in " ".join(err.split())
