"""What a PPO checkpoint holds; the format itself (atomic write, marker, discovery) is
``llmcycle.core.checkpoint``'s.

A checkpoint is a folder ``checkpoints/step-N/`` holding

    policy.pt        the policy's trainable tensors by name (every weight for full, the adapter for LoRA)
    value_head.pt    the value head
    optimizer.pt     AdamW's state (moments and step counts)
    rng.pt           torch's CPU (and CUDA) RNG states
    state.json       step, log so far, KL controller, reward normaliser, monitor baseline, stop reason
    llmcycle-checkpoint.complete   written last: the marker that the folder is whole

It is written with ``llmcycle.core.checkpoint.write_checkpoint`` (temporary folder, marker, rename),
so a kill during a save leaves no folder that looks finished; ``llmcycle.core.checkpoint.last_checkpoint``
(with ``prefix=PREFIX``) finds the newest complete one and removes the rest.

``save_policy`` writes the final policy the same way (temporary folder, then rename): the model
(or only its adapter), the tokenizer and ``value_head.pt`` (and a ``README.md`` of the user's own found there).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from llmcycle.core.checkpoint import write_checkpoint
from llmcycle.core.files import atomic_write_json
from llmcycle.models.adapters import is_peft
from llmcycle.models.card import keep_user_card

PREFIX = "step"  # checkpoints/step-N/


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def save_checkpoint(root: Path, step: int, trainer: Any, state: dict[str, Any], keep: int | None) -> Path:
    """Write checkpoint ``step`` under ``root`` (see the module docstring); prune to the newest ``keep``."""

    def write(tmp: Path) -> None:
        torch.save(trainer.trainable_state(), tmp / "policy.pt")
        torch.save(trainer.value_head.state_dict(), tmp / "value_head.pt")
        torch.save(trainer.optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(_rng_state(), tmp / "rng.pt")
        atomic_write_json(tmp / "state.json", {"step": step, **trainer.state_dict(), **state})

    return write_checkpoint(root, step, write, keep, prefix=PREFIX)


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
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model = trainer.model
    model.save_pretrained(str(tmp), **({"save_embedding_layers": False} if is_peft(model) else {}))
    trainer.loaded.tokenizer.save_pretrained(str(tmp))
    torch.save(trainer.value_head.state_dict(), tmp / "value_head.pt")
    keep_user_card(target, tmp)  # a README.md of the user's own survives; train_ppo writes the model card
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target
