"""Pre-training in the lifecycle: a trained tokenizer and a from-scratch model go through `llmcycle tune` and
`llmcycle serve`; the stage in a recipe; continued pre-training handed on; 2-process DDP on CPU."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_helpers import run_cli
from tests.tuning.test_tuning_distributed import CONFIGS, _accelerate

HERE = Path(__file__).resolve().parent


@pytest.mark.slow
def test_a_trained_tokenizer_and_a_model_from_scratch_go_through_tune_and_serve(tmp_path, monkeypatch, capsys):
    import httpx
    from transformers import AutoTokenizer

    tok = tmp_path / "tok"
    code, _, err = run_cli(monkeypatch, capsys, "tokenizer", "train", "--data", "builtin:dialogues", "--column",
                           "dialogue", "--vocab-size", "500", "--speaker-tags", "--template", "none", "--compare",
                           "none", "--out", str(tok))
    assert code == 0, err
    runs = tmp_path / "runs"
    code, out, err = run_cli(monkeypatch, capsys, "pretrain", "--tokenizer", str(tok), "--layers", "1", "--width",
                             "32", "--heads", "2", "--context", "96", "--max-steps", "30", "--batch-size", "8",
                             "--lr", "1e-2", "--runs-dir", str(runs))
    assert code == 0, err
    model = next(runs.glob("pretrain-*/01-pretrain/model"))
    result = json.loads((model.parent / "pretrain_result.json").read_text())
    assert result["after"]["in-domain"] < result["before"]["in-domain"] - 1.0
    assert AutoTokenizer.from_pretrained(model).get_vocab() == AutoTokenizer.from_pretrained(tok).get_vocab()
    assert (model / "README.md").is_file()  # the runner's model card for a handed-on model

    code, out, err = run_cli(monkeypatch, capsys, "tune", str(model), "--method", "lora", "--max-steps", "4",
                             "--batch-size", "4", "--runs-dir", str(runs), "--set", "max_input_tokens=64",
                             "--set", "max_target_tokens=32", "--set", "lora.target_modules=[c_attn]")
    assert code == 0, err
    adapter = next(runs.glob("tune-*/01-tune/model"))
    assert (adapter / "adapter_config.json").is_file()

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("LLMCYCLE_API_KEY", None)
    proc = subprocess.Popen([sys.executable, "-m", "llmcycle", "serve", str(adapter), "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        url = None
        for line in proc.stderr:
            if match := re.search(r"on (http://127\.0\.0\.1:\d+)/v1", line):
                url = match.group(1)
                break
        assert url, "the server did not print its address"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.2)
        response = httpx.post(f"{url}/v1/completions", timeout=60, json={
            "model": "base", "prompt": "#Person1#: Hello, how are you?", "max_tokens": 6, "temperature": 0})
    finally:
        proc.terminate()
        proc.wait(60)
        proc.stderr.close()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["usage"]["completion_tokens"] >= 1 and isinstance(body["choices"][0]["text"], str)


def test_pretrain_then_tune_in_one_recipe_hands_the_pretrained_model_on(tmp_path):
    from llmcycle.recipe.recipe import Recipe
    from llmcycle.recipe.runner import run_recipe

    recipe = Recipe.from_dict({
        "name": "pt", "model": {"source": "builtin:tiny-gpt2"}, "data": {"source": "builtin:dialogues", "n": 40},
        "runs_dir": str(tmp_path), "stages": [
            {"pretrain": {"architecture": {"family": "llama", "layers": 1, "width": 32, "heads": 2, "context": 128},
                          "max_steps": 3, "batch_size": 4, "eval_blocks": 2, "general_text": None}},
            {"tune": {"method": "full", "max_steps": 2, "batch_size": 2, "max_input_tokens": 96,
                      "max_target_tokens": 32}}]})
    run = run_recipe(recipe)
    tuned = json.loads((run.path / "02-tune" / "tune_result.json").read_text())
    assert tuned["steps"] == 2
    from llmcycle.models import load_model

    assert load_model(str(run.path / "02-tune" / "model")).family == "llama"  # the pretrained llama, tuned
    report = (run.path / "report.md").read_text()
    assert "Pre-training: clm (scratch)" in report and "MFU" in report


def test_a_bad_pretrain_recipe_field_is_refused_whole(tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "pretrain", "--set", "architecture.widht=64",
                           "--runs-dir", str(tmp_path))
    assert code == 1 and "architecture.widht" in err and "width" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_two_process_ddp_pretraining_on_cpu(tmp_path):
    env = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("RANK", None)
    proc = subprocess.run([_accelerate(), "launch", "--config_file", str(CONFIGS / "ddp_cpu.yaml"),
                           "--main_process_port", "0", str(HERE / "ddp_worker.py"), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and ranks[0]["hash"] == ranks[1]["hash"]
    assert all(r["steps"] == 4 and r["tokens"] == 4 * 4 * 32 * 2 for r in ranks)  # both processes' blocks count
    run = tmp_path / "run"
    assert (run / "model" / "model.safetensors").is_file() and (run / "pretrain_result.json").is_file()
    assert sorted(p.name for p in (run / "checkpoints" / "checkpoint-4").glob("rng_state_*")) == \
        ["rng_state_0.pth", "rng_state_1.pth"]
