"""``tokenize_text``: what a tokenizer does to a text, and whether the round trip is lossless."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Tokenization:
    """Tokens and ids of a text, its decoded round trip, and what the round trip lost."""

    text: str
    tokens: list[str]
    ids: list[int]
    decoded: str
    unknown: list[int] = field(default_factory=list)  # positions of unknown tokens
    losses: list[str] = field(default_factory=list)  # what the round trip changed

    @property
    def lossless(self) -> bool:
        return not self.losses


def _squash(s: str) -> str:
    """Text with whitespace removed, to compare content independent of spacing."""
    return re.sub(r"\s+", "", s)


def tokenize_text(tokenizer: Any, text: str, add_special_tokens: bool = False) -> Tokenization:
    """Tokenise ``text``, decode it back, and flag unknown tokens and lossy round trips."""
    ids = tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    decoded = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=True)
    unk = tokenizer.unk_token_id
    unknown = [i for i, t in enumerate(ids) if unk is not None and t == unk]
    losses: list[str] = []
    if unknown:
        losses.append(f"{len(unknown)} token(s) unknown to the vocabulary ({tokenizer.unk_token})")
    if decoded != text:
        if _squash(decoded) == _squash(text):
            losses.append("whitespace changed")
        elif _squash(decoded).lower() == _squash(text).lower():
            losses.append("case folded (uncased tokenizer)" + ("; whitespace changed" if decoded.lower() != text.lower()
                                                               else ""))
        elif not unknown:
            losses.append("characters changed (normalisation: accents or unicode)")
    return Tokenization(text, tokens, ids, decoded, unknown, losses)
