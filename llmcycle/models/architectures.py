"""Bundled public ``config.json`` figures of models people pick, so ``info``, ``estimate`` and
``load_model(hub_id, weights="random")`` work offline.

Each file in ``architectures/`` is the architecture part of the hub model's config (hub id with
``/`` written ``--``). Instruct/chat variants share their base model's architecture.
Models built from these files have random weights: callers label them untrained.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

ALIASES = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "meta-llama/Llama-3.2-1B-Instruct": "meta-llama/Llama-3.2-1B",
    "meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Llama-3.1-8B",
    "meta-llama/Meta-Llama-3.1-8B": "meta-llama/Llama-3.1-8B",
    "meta-llama/Llama-3.1-70B-Instruct": "meta-llama/Llama-3.1-70B",
    "meta-llama/Meta-Llama-3.1-70B": "meta-llama/Llama-3.1-70B",
    "Qwen/Qwen2.5-0.5B-Instruct": "Qwen/Qwen2.5-0.5B",
    "Qwen/Qwen2.5-7B-Instruct": "Qwen/Qwen2.5-7B",
    "mistralai/Mistral-7B-Instruct-v0.1": "mistralai/Mistral-7B-v0.1",
}


@lru_cache(maxsize=1)
def bundled_ids() -> tuple[str, ...]:
    """Hub ids with a bundled architecture (aliases not included)."""
    folder = resources.files("llmcycle.models") / "architectures"
    return tuple(sorted(f.name[: -len(".json")].replace("--", "/") for f in folder.iterdir()
                        if f.name.endswith(".json")))


def canonical_id(hub_id: str) -> str | None:
    """The bundled id that ``hub_id`` names (case-insensitive, aliases resolved), else None."""
    hub_id = ALIASES.get(hub_id, hub_id)
    by_lower = {i.lower(): i for i in bundled_ids()}
    return by_lower.get(hub_id.lower())


def bundled_config_dict(hub_id: str) -> dict[str, Any] | None:
    """The bundled config as a plain dict, or None when ``hub_id`` is not bundled."""
    cid = canonical_id(hub_id)
    if cid is None:
        return None
    path = resources.files("llmcycle.models") / "architectures" / (cid.replace("/", "--") + ".json")
    return json.loads(path.read_text(encoding="utf-8"))


def bundled_config(hub_id: str) -> Any | None:
    """The bundled ``transformers.PretrainedConfig`` for ``hub_id``, or None."""
    data = bundled_config_dict(hub_id)
    if data is None:
        return None
    from transformers import AutoConfig

    data = dict(data)
    model_type = data.pop("model_type")
    return AutoConfig.for_model(model_type, **data)
