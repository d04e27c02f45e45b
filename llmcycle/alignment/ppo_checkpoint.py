"""Checkpoints of a PPO run: written whole or not at all, and the newest complete one found again.

A checkpoint is a folder ``checkpoints/step-N/`` holding

    policy.pt        the policy's trainable tensors by name (every weight for full, the adapter for LoRA)
    value_head.pt    the value head
    optimizer.pt     AdamW's state (moments and step counts)
    rng.pt           torch's CPU (and CUDA) RNG states
    state.json       step, log so far, KL controller, reward normaliser, monitor baseline, stop reason
    complete.json    written last: the marker that the folder is whole

It is written under a temporary name, marked complete, then renamed into place, so a kill during
a save leaves no folder that looks finished; any ``step-N`` without its marker (or temporary
folder) is removed when the run starts again.

``save_policy`` writes the final policy the same way (temporary folder, then rename): the model
(or only its adapter), the tokenizer and ``value_head.pt``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from llmcycle.lifecycle.rundir import atomic_write_json

log = logging.getLogger("llmcycle")
COMPLETE = "complete.json"


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def save_checkpoint(root: Path, step: int, trainer: Any, state: dict[str, Any], keep: int | None) -> Path:
    """Write checkpoint ``step`` under ``root`` (see the module docstring); prune to the newest ``keep``."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    tmp = root / f".step-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save(trainer.trainable_state(), tmp / "policy.pt")
    torch.save(trainer.value_head.state_dict(), tmp / "value_head.pt")
    torch.save(trainer.optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(_rng_state(), tmp / "rng.pt")
    atomic_write_json(tmp / "state.json", {"step": step, **trainer.state_dict(), **state})
    atomic_write_json(tmp / COMPLETE, {"step": step})
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    if keep is not None:
        for old in _checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _checkpoints(root: Path) -> list[Path]:
    """Checkpoint folders under ``root``, oldest first."""
    found = [(int(p.name.split("-", 1)[1]), p) for p in root.glob("step-*")
             if p.is_dir() and p.name.split("-", 1)[1].isdigit()]
    return [p for _, p in sorted(found)]


def last_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint; incomplete ones (and temporary folders) are removed."""
    if not root.is_dir():
        return None
    for tmp in root.glob(".step-*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)
    for path in reversed(_checkpoints(root)):
        if (path / COMPLETE).is_file():
            return path
        log.warning("removing incomplete checkpoint %s (the run was killed while saving it)", path)
        shutil.rmtree(path, ignore_errors=True)
    return None


def load_checkpoint(path: Path, trainer: Any) -> dict[str, Any]:
    """Restore ``trainer`` (weights, value head, optimizer, controller, normaliser, RNG); returns state.json."""
    import json

    trainer.load_trainable_state(torch.load(path / "policy.pt", map_location=trainer.device, weights_only=True))
    trainer.value_head.load_state_dict(torch.load(path / "value_head.pt", map_location=trainer.device,
                                                  weights_only=True))
    trainer.optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=trainer.device,
                                                 weights_only=True))
    rng = torch.load(path / "rng.pt", weights_only=True)
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    trainer.load_state_dict(state)
    return state


def save_policy(trainer: Any, target: Path) -> Path:
    """The policy (or only its adapter), tokenizer and value head, via a temporary folder and a rename."""
    from llmcycle.tuning.adapters import is_peft

    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model = trainer.model
    model.save_pretrained(str(tmp), **({"save_embedding_layers": False} if is_peft(model) else {}))
    trainer.loaded.tokenizer.save_pretrained(str(tmp))
    torch.save(trainer.value_head.state_dict(), tmp / "value_head.pt")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target
