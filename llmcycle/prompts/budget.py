"""The context budget: token counts with the model's own tokenizer, and cutting an input to fit.

Counts include the special tokens the tokenizer adds (``[CLS] ... [SEP]``, ``</s>``), because
those occupy positions too. Truncation cuts the input field from its end at a token boundary of
the original text (offsets from a fast tokenizer; word boundaries otherwise), so what remains is
the user's text verbatim, never a lower-cased decode.
"""

from __future__ import annotations

from typing import Any, Callable

from llmcycle.prompts.templates import PromptError

# Tokenizers without a known limit report a sentinel (transformers' VERY_LARGE_INTEGER, 1e30).
SENTINEL_LIMIT = 1_000_000
UNKNOWN_LIMIT = 2048


def count_tokens(tokenizer: Any, text: str, add_special_tokens: bool = True) -> int:
    """Tokens ``text`` takes for ``tokenizer``, special tokens included by default."""
    try:
        enc = tokenizer(text, add_special_tokens=add_special_tokens, verbose=False)
    except TypeError:  # tokenizers that do not take ``verbose``
        enc = tokenizer(text, add_special_tokens=add_special_tokens)
    return len(enc["input_ids"])


def resolve_max_tokens(tokenizer: Any, max_input_tokens: int | None = None) -> tuple[int, str]:
    """``(limit, where it came from)``: ``max_input_tokens``, else ``tokenizer.model_max_length``.

    A tokenizer that reports no real limit (a sentinel like 1e30) gets ``UNKNOWN_LIMIT`` tokens,
    and the source says so, so reports show the limit was a guess.
    """
    if max_input_tokens is not None:
        if isinstance(max_input_tokens, bool) or not isinstance(max_input_tokens, int) or max_input_tokens < 1:
            raise PromptError(f"max_input_tokens must be a positive integer, got {max_input_tokens!r}")
        return max_input_tokens, "max_input_tokens"
    reported = getattr(tokenizer, "model_max_length", None)
    if isinstance(reported, int) and 0 < reported <= SENTINEL_LIMIT:
        return reported, "tokenizer.model_max_length"
    return UNKNOWN_LIMIT, (f"default {UNKNOWN_LIMIT}: the tokenizer reports no limit "
                           f"(model_max_length={reported!r}); set max_input_tokens")


def cut_points(tokenizer: Any, text: str) -> list[int]:
    """Character positions where ``text`` may be cut: after each token (fast tokenizer) or word."""
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        ends = [int(end) for _, end in enc["offset_mapping"]]
    except (NotImplementedError, TypeError, ValueError, KeyError):
        ends, pos = [], 0
        for word in text.split():
            pos = text.index(word, pos) + len(word)
            ends.append(pos)
    return sorted(set(e for e in ends if e > 0))


def truncate_to_fit(tokenizer: Any, text: str, fits: Callable[[str], bool]) -> tuple[str, int]:
    """The longest prefix of ``text`` (cut at a token end) for which ``fits(prefix)`` holds.

    Returns ``(prefix, tokens removed)``, the second counted on ``text`` alone without special
    tokens. ``fits("")`` must hold (the caller checks, so it can say what does not fit).
    """
    ends = cut_points(tokenizer, text)
    lo, hi = 0, len(ends)  # keep ends[:lo]; invariant: fits(prefix(lo))

    def prefix(k: int) -> str:
        return text[:ends[k - 1]] if k else ""

    while lo < hi:  # binary search: token counts grow with the prefix
        mid = (lo + hi + 1) // 2
        if fits(prefix(mid)):
            lo = mid
        else:
            hi = mid - 1
    kept = prefix(lo)
    removed = count_tokens(tokenizer, text, False) - count_tokens(tokenizer, kept, False)
    return kept, max(removed, 0)
