"""The CLI as a user meets it: help everywhere, tables out, one-line errors and exit 1 for bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.cli_helpers import run_cli


@pytest.mark.parametrize("sub", [[], ["run"], ["info"], ["tokenize"], ["models"], ["data"], ["estimate"],
                                 ["estimate", "memory"], ["estimate", "compute"], ["evaluate"], ["prompt-lab"],
                                 ["generate"], ["benchmark"], ["reference"]])
def test_help_everywhere(monkeypatch, capsys, sub):
    code, out, _ = run_cli(monkeypatch, capsys, *sub, "--help")
    assert code == 0 and "Usage" in out


def test_models_lists_builtins_and_bundled(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "models")
    assert code == 0
    assert "builtin:minilm-seq2seq" in out and "google/flan-t5-base" in out


def test_info_minilm(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "info", "builtin:minilm-seq2seq")
    assert code == 0
    assert "seq2seq" in out and "49.0M" in out and "6 encoder + 6 decoder" in out


def test_info_bundled_hub_id_offline(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "info", "google/flan-t5-base")
    assert code == 0
    assert "247,577,856" in out and "12 encoder + 12 decoder" in out and "bundled architecture" in out


@pytest.mark.parametrize("model", ["builtin:minilm-seq2seq", "builtin:tiny-gpt2"])
def test_info_trace(monkeypatch, capsys, model):
    code, out, _ = run_cli(monkeypatch, capsys, "info", model, "--trace", "#Person1#: hello there")
    assert code == 0
    for title in ("tokens", "embedding", "positions", "logits"):
        assert title in out
    assert ("cross-attention" in out) == model.endswith("seq2seq")


def test_tokenize(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "tokenize", "builtin:tiny-t5", "Hello #Person1#")
    assert code == 0 and "#Person1#" in out and "lossy" in out and "case folded" in out


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["info", "builtin:does-not-exist"], "unknown builtin model"),
        (["info", "./missing-model-dir"], "no such model directory"),
        (["tokenize", "builtin:nope", "x"], "unknown builtin model"),
        (["run", "no-such-recipe.yaml"], "no recipe file"),
        (["run", "--set", "nonsense"], "expected key=value"),
        (["run", "--set", "generate.generation.max_new_tokens=0"], "generation.max_new_tokens"),
        (["data", "./missing.jsonl"], "missing.jsonl"),
    ],
)
def test_bad_input_is_one_line_exit_1(monkeypatch, capsys, args, fragment):
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 1
    assert fragment in err and "Traceback" not in err + out
    assert len([line for line in err.splitlines() if line.strip()]) <= 3  # one message (rich may wrap it)


def test_debug_shows_traceback():
    proc = subprocess.run([sys.executable, "-m", "llmcycle", "--debug", "info", "builtin:nope"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_import_is_light():
    code = "import sys, llmcycle, llmcycle.models, llmcycle.data, llmcycle.estimate; " \
           "print(any(m in sys.modules for m in ('torch', 'transformers', 'datasets', 'peft')))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "False", proc.stderr


def test_estimate_memory_course_figures(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "estimate", "memory", "--params", "1e9")
    assert code == 0
    for dtype, gb in (("fp32", "4.00 GB"), ("fp16", "2.00 GB"), ("bf16", "2.00 GB"), ("int8", "1.00 GB")):
        assert any(dtype in line and gb in line for line in out.splitlines()), dtype
    assert "24.00 GB" in out and "6.0x the weights" in out


def test_estimate_memory_zero_stages_fall(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "estimate", "memory", "--params", "7.5e9", "--dtype", "fp16",
                           "--mixed-precision", "--parallelism", "zero3", "--n-gpus", "64")
    assert code == 0
    states = {}
    for line in out.splitlines():
        for strat in ("ddp", "zero1", "zero2", "zero3"):
            if line.startswith(f"│ {strat} "):
                states[strat] = float(line.split("│")[2].split()[0].replace(",", ""))
    assert states["ddp"] > states["zero1"] > states["zero2"] > states["zero3"]
    assert states["ddp"] == pytest.approx(120.0) and states["zero3"] == pytest.approx(1.875, abs=0.01)


def test_estimate_memory_with_model_and_batch_shape(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "estimate", "memory", "--model", "google/flan-t5-base",
                           "--batch-size", "8", "--input-len", "384", "--output-len", "64")
    assert code == 0 and "counted from the architecture" in out and "0.99 GB" in out


def test_estimate_compute_chinchilla(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "estimate", "compute", "--params", "70e9")
    assert code == 0 and "1.400e+12" in out and "5.880e+23" in out


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["estimate", "memory"], "exactly one of --params"),
        (["estimate", "memory", "--params", "1e9", "--model", "gpt2"], "exactly one of --params"),
        (["estimate", "compute"], "give --params"),
        (["estimate", "memory", "--params", "-5"], "n_params"),
        (["estimate", "memory", "--params", "1e9", "--dtype", "fp7"], "dtype"),
    ],
)
def test_estimate_bad_input(monkeypatch, capsys, args, fragment):
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 1 and fragment in err


def test_version_names_llmcycle_and_the_libraries_it_runs_on(monkeypatch, capsys):
    from importlib.metadata import version

    code, out, _ = run_cli(monkeypatch, capsys, "--version")
    assert code == 0
    line = out.strip()
    assert line.startswith(f"llmcycle {version('llmcycle')} (python ")
    for lib in ("torch", "transformers", "peft", "datasets", "accelerate"):
        assert f"{lib} {version(lib)}" in line


@pytest.mark.parametrize("flags, shown", [([], True), (["-q"], False)])
def test_log_level_decides_which_log_lines_show(flags, shown):
    """The builtin MiniLM logs what it made new at info level; -q (--log-level warning) hides it."""
    proc = subprocess.run([sys.executable, "-m", "llmcycle", *flags, "info", "builtin:minilm-seq2seq", "--trace", "hi"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert ("warm-started as encoder and decoder" in proc.stderr) == shown


@pytest.mark.parametrize("flags, level", [([], "INFO"), (["--log-level", "warning"], "WARNING"), (["-q"], "WARNING"),
                                          (["--log-level", "INFO"], "INFO"), (["--debug"], "DEBUG")])
def test_log_level_sets_the_llmcycle_logger(monkeypatch, capsys, flags, level):
    """What the two runs above show, for every way of setting the level (in process: no model loaded)."""
    import logging

    logger = logging.getLogger("llmcycle")
    before = logger.level
    try:
        code, _, _ = run_cli(monkeypatch, capsys, *flags, "models")
        assert code == 0
        assert logging.getLevelName(logger.level) == level
    finally:
        logger.setLevel(before)


def test_shell_completion_completes_commands_and_options(monkeypatch):
    env = {"_LLMCYCLE_COMPLETE": "complete_bash", "COMP_WORDS": "llmcycle tu", "COMP_CWORD": "1"}
    proc = subprocess.run([sys.executable, "-m", "llmcycle"], env={**__import__("os").environ, **env},
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["tune", "tune-compare"]
    env.update(COMP_WORDS="llmcycle tune builtin:tiny-t5 --met", COMP_CWORD="3")
    proc = subprocess.run([sys.executable, "-m", "llmcycle"], env={**__import__("os").environ, **env},
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["--method"]
