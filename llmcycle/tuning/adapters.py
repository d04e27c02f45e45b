"""Adapters: save small (adapter weights and config only), load onto a base, switch, merge for deployment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmcycle.errors import LLMCycleError, ModelSourceError
from llmcycle.tuning.methods import tie_token_heads


def is_peft(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def save_adapter(loaded: Any, path: str | Path, base_source: str | None = None) -> Path:
    """Write only the adapter (``adapter_config.json`` + ``adapter_model.safetensors``) and the tokenizer.

    ``base_model_name_or_path`` is set to the llmcycle source of the base (``builtin:minilm-seq2seq``),
    so ``load_model(path)`` finds the base by itself.
    """
    if not is_peft(loaded.model):
        raise LLMCycleError("save_adapter: this model has no adapter (train with method lora or prompt_tuning)")
    base = base_source or loaded.source.split("+")[0]
    for cfg in loaded.model.peft_config.values():
        cfg.base_model_name_or_path = base
    path = Path(path)
    loaded.model.save_pretrained(str(path), save_embedding_layers=False)
    loaded.tokenizer.save_pretrained(str(path))
    return path


def load_adapter(base: Any, path: str | Path, trainable: bool = False) -> Any:
    """Attach the adapter in ``path`` to ``base`` (a ``LoadedModel``); the base weights stay untouched."""
    from llmcycle.models.loader import attach_adapter

    if not trainable:
        return attach_adapter(base, path)
    from peft import PeftModel

    base.model = PeftModel.from_pretrained(base.model, str(path), is_trainable=True)
    tie_token_heads(base.model)
    base.source = f"{base.source}+{path}"
    return base


def switch_adapter(loaded: Any, path: str | Path, name: str) -> Any:
    """Load another adapter under ``name`` beside those already attached and make it the active one."""
    if not is_peft(loaded.model):
        raise LLMCycleError("switch_adapter: attach a first adapter with load_adapter")
    if name not in loaded.model.peft_config:
        if not (Path(path) / "adapter_config.json").is_file():
            raise ModelSourceError(f"adapter: {path} is not a PEFT adapter directory (no adapter_config.json)")
        loaded.model.load_adapter(str(path), adapter_name=name)
        tie_token_heads(loaded.model)
    loaded.model.set_adapter(name)
    return loaded


def merge_adapter(loaded: Any) -> Any:
    """Fold LoRA weights into the base (``merge_and_unload``): a plain model with no PEFT overhead.

    Modules trained fully beside the adapter (``modules_to_save``) replace the originals. Prompt
    tuning has nothing to merge (its virtual tokens are inputs, not weights): an error.
    """
    from dataclasses import replace

    if not is_peft(loaded.model):
        raise LLMCycleError("merge_adapter: this model has no adapter to merge")
    kinds = {str(c.peft_type).rsplit(".", 1)[-1] for c in loaded.model.peft_config.values()}
    if kinds - {"LORA"}:
        raise LLMCycleError(f"merge_adapter: only LoRA adapters can be merged, not {', '.join(sorted(kinds))}")
    merged = loaded.model.merge_and_unload()
    return replace(loaded, model=merged.eval(), source=loaded.source.split("+")[0] + "+merged",
                   notes=[*loaded.notes, "adapter merged into the base weights"])
