"""The batched generation engine.

Inputs are sorted by token length so each padded batch wastes little (left padding for
decoder-only models, whose new tokens must follow the prompt directly), generated with the KV
cache, and returned in the caller's order. Greedy decoding gives the same text as one
``generate`` call per example.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from llmcycle.generation.settings import GenerationSettings
from llmcycle.models.loader import LoadedModel


def _batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # longest first: OOM shows at once
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def generate(
    loaded: LoadedModel,
    inputs: Sequence[str],
    settings: GenerationSettings | None = None,
    batch_size: int = 8,
    max_input_tokens: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> list[str]:
    """Generate one output per input, batched; returns texts in input order.

    ``max_input_tokens`` truncates inputs (default: the tokenizer's model_max_length); callers
    that must not truncate silently check lengths first (the prompt budget does).
    ``on_batch(n)`` is called after each batch with the number of inputs done (for progress bars).
    """
    import torch

    settings = settings or GenerationSettings()
    model, tok = loaded.model, loaded.tokenizer
    limit = max_input_tokens or min(getattr(tok, "model_max_length", 512) or 512, 100_000)
    tok.padding_side = "left" if loaded.kind == "causal" else "right"
    lengths = [len(tok(t, truncation=True, max_length=limit)["input_ids"]) for t in inputs]
    device = next(model.parameters()).device
    outputs: list[str] = [""] * len(inputs)
    kwargs = settings.to_generation_kwargs()
    if tok.pad_token_id is not None:
        kwargs.setdefault("pad_token_id", tok.pad_token_id)
    for batch in _batches(lengths, batch_size):
        enc = tok([inputs[i] for i in batch], return_tensors="pt", padding=True, truncation=True, max_length=limit)
        enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        if settings.do_sample:
            torch.manual_seed(settings.seed + batch[0])
        with torch.no_grad():
            out = model.generate(**enc, **kwargs)
        if loaded.kind == "causal":
            out = out[:, enc["input_ids"].shape[1]:]  # (B, new tokens)
        for i, text in zip(batch, tok.batch_decode(out, skip_special_tokens=True)):
            outputs[i] = text.strip()
        if on_batch:
            on_batch(len(batch))
    return outputs
