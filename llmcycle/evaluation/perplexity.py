"""Perplexity of causal and seq2seq models: exp of the mean negative log-likelihood per token.

Token-weighted: the NLL is summed over every target token of every text and divided by the
number of target tokens, so a long text weighs more than a short one (the mean of per-text
perplexities would not be a perplexity of the corpus). Padding never counts.

* Causal models: the target tokens of a text are all its tokens but the first (a token the
  tokenizer adds in front, such as a BOS, is context for the first word). A text longer than the
  context is scored with the sliding window of the Hugging Face perplexity guide: windows of
  ``max_length`` tokens starting every ``stride`` tokens; each window scores only the tokens not
  scored by the one before, with the overlap as context. ``stride == max_length`` gives
  non-overlapping chunks, each of whose first token is not scored (no context).
* Seq2seq models: perplexity of the ``references`` given the ``inputs``, with the labels that
  ``tokenizer(text_target=...)`` gives (what seq2seq training uses), teacher-forced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from llmcycle.core.errors import LLMCycleError
from llmcycle.evaluation._checks import check_positive_int, check_references, check_texts
from llmcycle.models.builtins import quiet_transformers
from llmcycle.models.loader import LoadedModel, model_kind


@dataclass(frozen=True)
class PerplexityResult:
    """``perplexity = exp(nll)``; ``nll`` is the mean negative log-likelihood per target token (nats)."""

    perplexity: float
    nll: float
    n_tokens: int
    n_texts: int


def context_length(model: Any, tokenizer: Any = None) -> int | None:
    """The longest sequence the model (and tokenizer) takes, or None when nothing states one."""
    configs = [model.config, getattr(model.config, "encoder", None), getattr(model.config, "decoder", None)]
    limits = [getattr(c, a, None) for c in configs if c is not None for a in ("n_positions", "max_position_embeddings")]
    limits.append(getattr(tokenizer, "model_max_length", None))
    limits = [int(x) for x in limits if isinstance(x, int) and 0 < x < 1_000_000]  # HF uses 1e30 for "no limit"
    return min(limits) if limits else None


def _result(nll_sum: float, n_tokens: int, n_texts: int) -> PerplexityResult:
    if n_tokens == 0:
        raise LLMCycleError("texts: no token to score (each text needs at least two tokens); pass longer texts")
    nll = nll_sum / n_tokens
    return PerplexityResult(math.exp(nll), nll, n_tokens, n_texts)


def sliding_windows(n_tokens: int, max_length: int, stride: int) -> list[tuple[int, int, int]]:
    """``(begin, end, n_new)`` windows of the HF perplexity guide: ``ids[begin:end]`` scores its last ``n_new``."""
    windows, prev_end = [], 0
    for begin in range(0, n_tokens, stride):
        end = min(begin + max_length, n_tokens)
        windows.append((begin, end, end - prev_end))
        prev_end = end
        if end == n_tokens:
            break
    return windows


def _score_windows(model: Any, windows: list[tuple[list[int], int]], pad_id: int, batch_size: int) -> float:
    """Sum of NLL over the target positions of right-padded windows (``(ids, first_target_pos)``)."""
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    order = sorted(range(len(windows)), key=lambda i: -len(windows[i][0]))  # similar lengths share a batch
    total = 0.0
    for start in range(0, len(order), batch_size):
        batch = [windows[i] for i in order[start:start + batch_size]]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (B, T)
        mask = torch.zeros_like(ids)
        target = torch.zeros_like(ids, dtype=torch.bool)  # positions whose token is scored
        for row, (w, first) in enumerate(batch):
            ids[row, :len(w)] = torch.tensor(w)
            mask[row, :len(w)] = 1
            target[row, max(first, 1):len(w)] = True  # position 0 has no context: never scored
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits  # (B, T, V)
        nll = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), ids[:, 1:].to(device), reduction="none")
        total += float(nll[target[:, 1:].to(device)].sum())  # (B, T-1) -> scalar
    return total


def causal_perplexity(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 8,
    max_length: int | None = None,
    stride: int | None = None,
) -> PerplexityResult:
    """Token-weighted perplexity of ``texts`` under a decoder-only model.

    Args:
        max_length: window length; default the model's context length.
        stride: tokens between window starts, 1..max_length; default ``max_length // 2`` (each
            scored token after the first window sees at least half a window of context).
        batch_size: windows per forward pass.
    """
    items = check_texts(texts, "texts")
    check_positive_int(batch_size, "batch_size")
    limit = context_length(model, tokenizer)
    max_length = (limit or 1024) if max_length is None else check_positive_int(max_length, "max_length", minimum=2)
    if limit is not None and max_length > limit:
        raise LLMCycleError(f"max_length: {max_length} exceeds the model's context of {limit} tokens")
    stride = max(1, max_length // 2) if stride is None else check_positive_int(stride, "stride")
    if stride > max_length:
        raise LLMCycleError(f"stride: {stride} exceeds max_length {max_length}; tokens between windows "
                            "would never be scored")
    with quiet_transformers():  # no "sequence longer than the maximum" warning: windows handle it
        encoded = [tokenizer(t, add_special_tokens=True)["input_ids"] for t in items]
    windows, n_tokens = [], 0
    for ids in encoded:
        for begin, end, n_new in sliding_windows(len(ids), max_length, stride):
            windows.append((ids[begin:end], end - begin - n_new))
            n_tokens += min(n_new, end - begin - 1)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    was_training = model.training
    model.eval()
    try:
        nll_sum = _score_windows(model, windows, pad_id, batch_size)
    finally:
        model.train(was_training)
    return _result(nll_sum, n_tokens, len(items))


def _seq2seq_batch_nll(model: Any, tokenizer: Any, inputs: list[str], targets: list[str],
                       max_input: int | None, max_target: int | None) -> tuple[float, int]:
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    enc = tokenizer(inputs, padding=True, truncation=max_input is not None, max_length=max_input, return_tensors="pt")
    lab = tokenizer(text_target=targets, padding=True, truncation=max_target is not None, max_length=max_target,
                    return_tensors="pt")
    labels = lab["input_ids"].masked_fill(lab["attention_mask"] == 0, -100)  # (B, T_out)
    labels = labels.to(device)
    feed = {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device)}
    if hasattr(model, "prepare_decoder_input_ids_from_labels"):  # teacher forcing, without the model's own loss
        feed["decoder_input_ids"] = model.prepare_decoder_input_ids_from_labels(labels=labels)
    else:
        feed["labels"] = labels
    with torch.no_grad():
        logits = model(**feed).logits  # (B, T_out, V)
    nll = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=-100, reduction="sum")
    return float(nll), int((labels != -100).sum())


def seq2seq_perplexity(
    model: Any,
    tokenizer: Any,
    inputs: Sequence[str],
    references: Sequence[str],
    *,
    batch_size: int = 8,
    max_input_length: int | None = None,
    max_target_length: int | None = None,
) -> PerplexityResult:
    """Token-weighted perplexity of ``references`` given ``inputs`` under an encoder-decoder model.

    Inputs and references are truncated to the model's context unless lengths are given.
    """
    srcs = check_texts(inputs, "inputs")
    refs = check_references(references, len(srcs), "references")
    if any(len(r) != 1 for r in refs):
        raise LLMCycleError("references: perplexity takes one reference per input; pick one (e.g. summary1)")
    check_positive_int(batch_size, "batch_size")
    limit = context_length(model, tokenizer)
    max_in = limit if max_input_length is None else check_positive_int(max_input_length, "max_input_length")
    max_out = limit if max_target_length is None else check_positive_int(max_target_length, "max_target_length")
    side, was_training = tokenizer.padding_side, model.training
    tokenizer.padding_side = "right"  # absolute-position encoders must see tokens from position 0
    model.eval()
    nll_sum, n_tokens = 0.0, 0
    try:
        for s in range(0, len(srcs), batch_size):
            nll, n = _seq2seq_batch_nll(model, tokenizer, srcs[s:s + batch_size],
                                        [r[0] for r in refs[s:s + batch_size]], max_in, max_out)
            nll_sum, n_tokens = nll_sum + nll, n_tokens + n
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return _result(nll_sum, n_tokens, len(srcs))


def perplexity(
    model: Any,
    texts: Sequence[str],
    references: Sequence[str] | None = None,
    *,
    tokenizer: Any = None,
    batch_size: int = 8,
    **options: Any,
) -> PerplexityResult:
    """Perplexity under a ``LoadedModel`` (or a model with ``tokenizer=``), by the model's kind.

    Causal: ``texts`` are scored (``max_length``, ``stride`` options). Seq2seq: ``references``
    given ``texts`` as inputs (``max_input_length``, ``max_target_length`` options).
    """
    if isinstance(model, LoadedModel):
        model, tokenizer, kind = model.model, tokenizer or model.tokenizer, model.kind
    elif hasattr(model, "config"):
        kind = model_kind(model.config)
    else:
        raise LLMCycleError(f"model: expected a LoadedModel or a transformers model, got {type(model).__name__}")
    if tokenizer is None:
        raise LLMCycleError("tokenizer: a model object needs its tokenizer (pass tokenizer=, or a LoadedModel)")
    valid = {"causal": ("max_length", "stride"), "seq2seq": ("max_input_length", "max_target_length")}.get(kind, ())
    for key in options:
        if key not in valid:
            raise LLMCycleError(f"{key}: not an option for a {kind} model; valid: {', '.join(valid) or 'none'}")
    if kind == "causal":
        if references is not None:
            raise LLMCycleError("references: a causal model scores texts alone; pass references=None")
        return causal_perplexity(model, tokenizer, texts, batch_size=batch_size, **options)
    if kind == "seq2seq":
        if references is None:
            raise LLMCycleError("references: a seq2seq model needs references (the targets) for its inputs")
        return seq2seq_perplexity(model, tokenizer, texts, references, batch_size=batch_size, **options)
    raise LLMCycleError(f"model: perplexity needs a causal or seq2seq model, not a {kind}")
