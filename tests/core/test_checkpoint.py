"""The one checkpoint format: atomic writes, the completion marker, discovery, pruning, the same-run check."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from llmcycle.core.checkpoint import (
    COMPLETE,
    check_same_run,
    is_complete,
    last_checkpoint,
    list_checkpoints,
    mark_complete,
    write_checkpoint,
)
from llmcycle.core.errors import ConfigError


def write_file(name: str, text: str = "x"):
    def write(tmp: Path) -> None:
        (tmp / name).write_text(text)

    return write


def test_write_checkpoint_is_marked_complete_and_leaves_no_temporary_folder(tmp_path):
    root = tmp_path / "checkpoints"
    path = write_checkpoint(root, 3, write_file("weights.bin", "w3"), keep=None)
    assert path == root / "checkpoint-3" and (path / "weights.bin").read_text() == "w3"
    assert json.loads((path / COMPLETE).read_text()) == {"step": 3} and is_complete(path)
    assert [p.name for p in root.iterdir()] == ["checkpoint-3"]
    again = write_checkpoint(root, 3, write_file("other.bin"), keep=None)  # the same step again replaces it
    assert sorted(p.name for p in again.iterdir()) == sorted([COMPLETE, "other.bin"])


def test_a_failing_write_leaves_only_the_checkpoints_before_it(tmp_path):
    root = tmp_path / "checkpoints"
    write_checkpoint(root, 1, write_file("a"), keep=None)

    def boom(tmp: Path) -> None:
        (tmp / "half").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_checkpoint(root, 2, boom, keep=None)
    assert not (root / "checkpoint-2").exists()  # only the temporary folder holds the half-written files
    assert last_checkpoint(root) == root / "checkpoint-1"
    assert [p.name for p in root.iterdir()] == ["checkpoint-1"]  # the temporary folder was removed


def test_half_written_checkpoints_are_ignored_and_removed(tmp_path, caplog):
    root = tmp_path / "checkpoints"
    write_checkpoint(root, 2, write_file("a"), keep=None)
    write_checkpoint(root, 10, write_file("a"), keep=None)
    (root / "checkpoint-12").mkdir()  # a save the kill interrupted: no marker
    (root / "checkpoint-12" / "model.safetensors").write_bytes(b"half")
    (root / ".checkpoint-14.tmp").mkdir()  # a write_checkpoint the kill interrupted
    (root / "checkpoint-notes").mkdir()  # not a checkpoint: left alone
    with caplog.at_level(logging.WARNING, logger="llmcycle"):
        found = last_checkpoint(root)
    assert found == root / "checkpoint-10"  # numerically newest (10 > 2), not by name
    assert "checkpoint-12" in caplog.text and ".checkpoint-14.tmp" in caplog.text
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-10", "checkpoint-2", "checkpoint-notes"]
    assert last_checkpoint(tmp_path / "missing") is None


def test_no_complete_checkpoint_means_none(tmp_path):
    root = tmp_path / "checkpoints"
    (root / "checkpoint-1").mkdir(parents=True)
    assert last_checkpoint(root) is None and list_checkpoints(root) == []


def test_prefix_names_the_folders_and_mark_complete_marks_foreign_ones(tmp_path):
    root = tmp_path / "checkpoints"
    write_checkpoint(root, 1, write_file("a"), keep=None, prefix="step")
    (root / "checkpoint-5").mkdir()  # another prefix: not a step checkpoint
    mark_complete(root / "checkpoint-5", 5)  # as the Trainer callback does for the Trainer's own folders
    assert last_checkpoint(root, prefix="step") == root / "step-1"
    assert last_checkpoint(root) == root / "checkpoint-5"
    assert [p.name for p in list_checkpoints(root, prefix="step")] == ["step-1"]


def test_pruning_keeps_the_newest(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (1, 2, 3, 10, 11):
        write_checkpoint(root, step, write_file("a"), keep=3)
    assert [p.name for p in list_checkpoints(root)] == ["checkpoint-3", "checkpoint-10", "checkpoint-11"]
    write_checkpoint(root, 12, write_file("a"), keep=None)  # None keeps all
    assert len(list_checkpoints(root)) == 4


DEFAULTS = {"learning_rate": 1e-4, "steps": 10, "lora": {"r": 8, "alpha": 16}, "seed": 0}


def start(out: Path, cfg: dict, **kw) -> None:
    check_same_run(out, "run_config.json", cfg, DEFAULTS, what="test run", **kw)
    write_checkpoint(out / "checkpoints", 1, write_file("a"), keep=None)


def test_same_run_refuses_a_changed_field_naming_it(tmp_path):
    cfg = dict(DEFAULTS, learning_rate=1e-3)
    start(tmp_path, cfg)
    assert json.loads((tmp_path / "run_config.json").read_text()) == cfg
    check_same_run(tmp_path, "run_config.json", cfg, DEFAULTS)  # the same config resumes
    with pytest.raises(ConfigError, match=r"^lora, steps: .* holds checkpoints of a test run with other values; "
                                          r"use a new out_dir, the same config, or resume=False"):
        check_same_run(tmp_path, "run_config.json", dict(cfg, steps=20, lora={"r": 4, "alpha": 16}), DEFAULTS,
                       what="test run")
    # an ignored block may differ (a method that never reads it)
    check_same_run(tmp_path, "run_config.json", dict(cfg, lora={"r": 4}), DEFAULTS, ignore={"lora"})
    assert json.loads((tmp_path / "run_config.json").read_text())["lora"] == {"r": 4}


def test_a_field_added_since_the_run_started_counts_at_its_default(tmp_path):
    saved = {k: v for k, v in DEFAULTS.items() if k != "seed"} | {"lora": {"r": 8}}  # written before seed, alpha
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "run_config.json").write_text(json.dumps(saved))
    check_same_run(tmp_path, "run_config.json", DEFAULTS, DEFAULTS)  # at their defaults: the same run
    (tmp_path / "run_config.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="^seed: "):
        check_same_run(tmp_path, "run_config.json", dict(DEFAULTS, seed=1), DEFAULTS)


def test_resume_false_clears_checkpoints_and_starts_over(tmp_path):
    start(tmp_path, DEFAULTS)
    other = dict(DEFAULTS, learning_rate=0.5)
    check_same_run(tmp_path, "run_config.json", other, DEFAULTS, resume=False, main_process=False)
    assert (tmp_path / "checkpoints" / "checkpoint-1").is_dir()  # only the main process removes or writes
    check_same_run(tmp_path, "run_config.json", other, DEFAULTS, resume=False)
    assert not (tmp_path / "checkpoints").exists()
    assert json.loads((tmp_path / "run_config.json").read_text()) == other


def test_a_folder_without_checkpoints_starts_with_any_config(tmp_path):
    (tmp_path / "run_config.json").write_text(json.dumps(dict(DEFAULTS, steps=3)))
    check_same_run(tmp_path, "run_config.json", DEFAULTS, DEFAULTS)  # nothing to resume: recorded anew
    assert json.loads((tmp_path / "run_config.json").read_text()) == DEFAULTS


def test_write_false_only_checks(tmp_path):
    check_same_run(tmp_path / "run", "run_config.json", DEFAULTS, DEFAULTS, write=False)
    assert not (tmp_path / "run").exists()
    start(tmp_path, DEFAULTS)
    check_same_run(tmp_path, "run_config.json", dict(DEFAULTS, steps=1), DEFAULTS, resume=False, write=False)
    assert last_checkpoint(tmp_path / "checkpoints") is not None


def test_a_section_keeps_the_config_beside_data_checked_by_the_caller(tmp_path):
    def same_prompts(old):
        if old["prompts"] != "abc":
            raise ValueError("other prompts")

    kw = {"section": "config", "check_saved": same_prompts}
    check_same_run(tmp_path, "c.json", DEFAULTS, DEFAULTS, extra={"prompts": "abc", "full": 1}, **kw)
    assert json.loads((tmp_path / "c.json").read_text()) == {"config": DEFAULTS, "prompts": "abc", "full": 1}
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(ConfigError, match="^steps: "):
        check_same_run(tmp_path, "c.json", dict(DEFAULTS, steps=2), DEFAULTS, extra={"prompts": "abc"}, **kw)
    (tmp_path / "c.json").write_text(json.dumps({"config": DEFAULTS, "prompts": "xyz"}))
    with pytest.raises(ValueError, match="other prompts"):
        check_same_run(tmp_path, "c.json", DEFAULTS, DEFAULTS, extra={"prompts": "abc"}, **kw)


def test_legacy_ppo_marker_still_counts_as_complete(tmp_path):
    old = tmp_path / "checkpoints" / "step-4"
    old.mkdir(parents=True)
    (old / "complete.json").write_text('{"step": 4}')
    assert last_checkpoint(tmp_path / "checkpoints", prefix="step") == old


def test_the_module_imports_no_torch_or_transformers():
    import subprocess

    code = ("import sys, llmcycle.core.checkpoint; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
