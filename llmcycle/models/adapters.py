"""Adapters, a property of a model: attach (inference or trainable), save small, switch, merge.

A PEFT adapter on a ``LoadedModel``: ``attach_adapter`` puts one on (merging a LoRA adapter already
there first, so adapters trained one after another stack), ``save_adapter`` writes only the adapter
and the tokenizer, naming the base so that ``load_model(folder)`` finds it, ``switch_adapter`` loads
another beside it, ``merge_adapter`` folds LoRA weights into the base. ``tie_token_heads`` keeps an
LM head tied to trainable-token rows (peft ties only the input embeddings' head).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmcycle.core.errors import LLMCycleError, ModelSourceError


def is_peft(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def attach_adapter(loaded: Any, adapter: str | Path) -> Any:
    """Put the PEFT adapter saved in ``adapter`` on ``loaded`` (inference mode, base weights untouched).

    A LoRA adapter already on ``loaded`` (an adapter trained on top of another one) is merged into the
    base first, so the new adapter sees the weights it was trained on.
    """
    from peft import PeftModel

    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise ModelSourceError(f"adapter: {adapter} is not a PEFT adapter directory (no adapter_config.json)")
    if is_peft(loaded.model):
        loaded = merge_adapter(loaded)
    try:
        loaded.model = PeftModel.from_pretrained(loaded.model, str(path), is_trainable=False).eval()
        tie_token_heads(loaded.model)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelSourceError(f"adapter: cannot attach {path} to {loaded.source}: "
                               f"{str(exc).splitlines()[0]}") from None
    loaded.source = f"{loaded.source}+{path}"
    loaded.notes.append(f"adapter: {path}")
    return loaded


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


def word_embeddings(model: Any) -> dict[str, Any]:
    """Full names of the model's token-embedding matrices (one per encoder / decoder when they are separate)."""
    import torch

    vocab = model.get_input_embeddings().num_embeddings
    return {n: m for n, m in model.named_modules()
            if isinstance(m, torch.nn.Embedding) and m.num_embeddings == vocab}


def tie_token_heads(model: Any) -> int:
    """Wrap every linear layer that shares its weight with a trainable-tokens embedding (an LM head tied to a
    decoder's embeddings) in a trainable-tokens layer tied to that embedding's, for each adapter it lacks.

    peft ties only the head tied to ``get_input_embeddings()``, which for an encoder-decoder built from two models
    (``EncoderDecoderModel``) is the encoder's, not the decoder's that the LM head shares. Without this, the trained
    rows would change what the decoder reads but not what it can write, and merging (which writes the rows into the
    shared matrix) would change the head. Call it after ``get_peft_model`` and after loading an adapter. Returns
    the number of (head, adapter) ties made.
    """
    import torch
    from peft.utils.other import TrainableTokensWrapper, _set_trainable

    base = model.get_base_model()
    embeds = [m for m in base.modules() if isinstance(m, TrainableTokensWrapper)
              and isinstance(m.token_adapter.base_layer, torch.nn.Embedding)]
    heads: dict[str, tuple[Any, set[str]]] = {}  # name -> (linear layer, adapters it already has)
    for name, module in base.named_modules():
        if isinstance(module, TrainableTokensWrapper) and isinstance(module.token_adapter.base_layer, torch.nn.Linear):
            heads[name] = (module.token_adapter.base_layer, set(module._adapters))
        elif isinstance(module, torch.nn.Linear) and ".token_adapter." not in name:
            heads[name] = (module, set())
    tied = 0
    for name, (linear, done) in heads.items():
        for emb in embeds:
            if linear.weight is not emb.token_adapter.base_layer.weight:
                continue
            for adapter, ids in emb.token_adapter.token_indices.items():
                if adapter in done:
                    continue
                _set_trainable(base, adapter, module_names=[name], inference_mode=not model.training,
                               strict_module_check=True, wrapper_cls=TrainableTokensWrapper, token_indices=ids,
                               tied_adapter=emb.token_adapter, activate_adapter=adapter in emb.active_adapters)
                tied += 1
    if tied:
        for module in base.modules():
            if isinstance(module, TrainableTokensWrapper) and isinstance(module.token_adapter.base_layer,
                                                                         torch.nn.Linear):
                _keep_head_bias(module.token_adapter)
    return tied


def _adapter_path(layer: Any) -> bool:
    """Whether a trainable-tokens layer's forward goes through its adapters (else peft runs the wrapped layer)."""
    return not (layer.disable_adapters or not layer.active_adapters or layer.merged)


def _head_bias_hook(layer: Any, args: Any, output: Any) -> Any:
    return output + layer.base_layer.bias.to(output.dtype) if _adapter_path(layer) else output


def _keep_head_bias(layer: Any) -> None:
    """peft's trainable-tokens forward for a Linear head omits the head's bias (huggingface/peft#3649, fixed by
    an open pull request): add it back, but only where this peft drops it (probed with a zero input), once."""
    import torch

    bias = layer.base_layer.bias
    if bias is None or not bool(bias.detach().abs().sum()) or getattr(layer, "_llmcycle_bias_hook", False):
        return
    if not _adapter_path(layer):
        return  # probe only the adapter path
    with torch.no_grad():
        out = layer(torch.zeros(1, layer.base_layer.in_features, dtype=layer.base_layer.weight.dtype,
                                device=layer.base_layer.weight.device))
    if torch.allclose(out, bias.detach().to(out.dtype).unsqueeze(0)):
        return  # this peft keeps the bias
    layer.register_forward_hook(_head_bias_hook)
    layer._llmcycle_bias_hook = True
