"""Logits processors and stopping criteria the generation engine adds to ``model.generate``.

* ``FrequencyPresencePenalty``: OpenAI's frequency and presence penalties, as a logits processor.
* ``SeededSampler``: temperature / top-k / top-p sampling where every row draws from its own
  ``torch.Generator``, so a row's sample does not depend on the batch it landed in.
* ``StopOnStrings``: a stopping criterion that ends a row once its decoded output contains a stop
  string, plus ``trim_at_stop`` that cuts the text there.

Why not transformers' ``StopStringCriteria`` (``generate(stop_strings=..., tokenizer=...)``)? It
matches stop strings against token strings rebuilt from the vocabulary, over the *whole* sequence.
For a decoder-only model that includes the prompt: with the prompt "... Answer: yes" and the stop
string "yes no", generating " no" fires it (checked with our WordPiece tokenizer), although the
generated text, "no", holds no stop string; generation ends early and there is nothing to trim.
``StopOnStrings`` decodes only the generated tokens, with exactly the function that produces the
final text, so "generation stopped" and "output trimmed" agree by construction, whatever the
tokenizer's decoding quirks (WordPiece ``##`` joins, clean-up of spaces, skipped special tokens).
Its cost, one ``decode`` of the generated tokens per row per step, is small next to a forward pass.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from transformers import LogitsProcessor, StoppingCriteria


class FrequencyPresencePenalty(LogitsProcessor):
    """``logit[t] -= count(t) * frequency_penalty + (count(t) > 0) * presence_penalty``.

    ``count(t)`` is how often token ``t`` occurs among the tokens generated so far in that row:
    the first ``prompt_length`` columns of ``input_ids`` are not counted (for decoder-only models the
    (padded) prompt, for encoder-decoder models the decoder start token). Semantics of OpenAI's
    ``frequency_penalty`` / ``presence_penalty``: positive values discourage repeating tokens,
    negative values encourage it.
    """

    def __init__(self, frequency_penalty: float, presence_penalty: float, prompt_length: int):
        if prompt_length < 0:
            raise ValueError(f"prompt_length must be >= 0, got {prompt_length}")
        self.frequency_penalty = float(frequency_penalty)
        self.presence_penalty = float(presence_penalty)
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self.prompt_length:]  # (R, T_gen)
        counts = torch.zeros_like(scores)  # (R, V)
        if generated.shape[1]:
            counts.scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        return scores - counts * self.frequency_penalty - (counts > 0).to(scores.dtype) * self.presence_penalty


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Temperature, then top-k, then top-p (nucleus) filtering; removed tokens get ``-inf``.

    ``logits`` is (R, V). Top-p keeps the smallest set of most likely tokens whose probability
    reaches ``top_p`` (always at least the most likely token).
    """
    logits = logits.float() / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (R, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (R, V)
        probs = sorted_logits.softmax(dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs  # probability of the strictly more likely tokens
        remove_sorted = mass_before >= top_p  # column 0 has mass_before 0 and is always kept
        remove = torch.zeros_like(remove_sorted).scatter(1, order, remove_sorted)
        logits = logits.masked_fill(remove, float("-inf"))
    return logits


class SeededSampler(LogitsProcessor):
    """Sample the next token of row ``r`` with ``generators[r]``; return logits that make it the argmax.

    Run with ``do_sample=False`` (greedy) and as the *last* processor: the returned scores are
    ``0`` at the sampled token and ``-inf`` elsewhere, so greedy selection picks the sample. Each
    row draws one uniform number per step from its own generator and inverts the CDF of its
    filtered distribution (float64), so the token drawn for an example depends only on its own
    seed and its own logits, not on the batch size or the other examples in the batch.
    """

    def __init__(self, generators: Sequence[torch.Generator], temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0):
        self.generators = list(generators)
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[0] != len(self.generators):
            raise RuntimeError(f"SeededSampler has {len(self.generators)} generators for {scores.shape[0]} rows")
        probs = filter_logits(scores, self.temperature, self.top_k, self.top_p).softmax(dim=-1)  # (R, V)
        cdf = probs.double().cumsum(dim=-1)  # (R, V)
        u = torch.stack([torch.rand((), generator=g, dtype=torch.float64) for g in self.generators])  # (R,)
        target = (u.to(cdf.device) * cdf[:, -1]).unsqueeze(1)  # (R, 1)
        # right=True: the first index whose cdf exceeds the target, so zero-probability tokens never win
        tokens = torch.searchsorted(cdf, target, right=True).clamp_(max=cdf.shape[1] - 1)  # (R, 1)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, tokens, 0.0)


def find_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index in ``text`` where the earliest stop string starts, or None."""
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else None


def trim_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` cut before its first stop string (the stop string is not kept), and whether one was found."""
    at = find_stop(text, stops) if stops else None
    return (text, False) if at is None else (text[:at], True)


class StopOnStrings(StoppingCriteria):
    """Mark a row done once the text it has generated contains one of ``stops``.

    ``decode(ids) -> str`` must be the function that produces the final output text; only the
    columns after ``prompt_length`` are decoded (the generated tokens).
    """

    def __init__(self, stops: Sequence[str], decode: Callable[[list[int]], str], prompt_length: int):
        self.stops = [s for s in stops if s]
        self.decode = decode
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: Any = None, **kwargs: Any) -> torch.BoolTensor:
        rows = input_ids[:, self.prompt_length:].tolist()  # R lists of generated ids
        done = [find_stop(self.decode(ids), self.stops) is not None for ids in rows]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
