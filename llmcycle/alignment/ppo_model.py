"""The policy side of PPO: a value head, rollout tensors, and one scoring pass for both model kinds.

``score(model, kind, batch, ...)`` runs one forward pass over (query, response) pairs and returns,
for every response token, its logprob under the model, the entropy of the model's distribution at
that position, and the last hidden state there (for the value head):

* **seq2seq**: the query is the encoder input (right-padded); the decoder reads the response
  shifted right by one, starting from the model's ``decoder_start_token_id`` (what it does when
  it builds ``decoder_input_ids`` from labels), so decoder position ``t`` predicts response token
  ``t``. Hidden states: the decoder's last layer.
* **causal**: ``[left-padded query | right-padded response]`` in one sequence, position ids from
  the attention mask (as ``generate`` derives them for left-padded prompts); position
  ``Lq - 1 + t`` predicts response token ``t``. Only response positions are scored.

Padding in responses only ever follows a row's last token (the end token, when the row ended),
and causal attention never looks ahead, so it cannot change the scores of real tokens; it is
masked out of everything downstream anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


class ValueHead(nn.Module):
    """``V(s_t)``: a linear layer on the decoder's last hidden state at each response position.

    Initialised to zero (weight and bias): the first values are 0 and the first value-loss
    gradients do not disturb the policy's trunk.
    """

    def __init__(self, hidden_size: int):
        super().__init__()
        self.summary = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.summary.weight)
        nn.init.zeros_(self.summary.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, T, H) -> (B, T) values."""
        return self.summary(hidden.to(self.summary.weight.dtype)).squeeze(-1)


def hidden_size(model: Any) -> int:
    """Width of the last hidden state feeding the LM head."""
    head = model.get_output_embeddings()
    if head is not None and getattr(head, "in_features", None):
        return int(head.in_features)
    if head is not None:
        return int(head.weight.shape[1])
    cfg = model.config
    for name in ("d_model", "hidden_size", "n_embd"):
        if getattr(cfg, name, None):
            return int(getattr(cfg, name))
    raise ValueError("cannot find the hidden size of the policy (no output embeddings, no d_model/hidden_size)")


def decoder_start_id(model: Any) -> int:
    """The token a seq2seq decoder starts from (config first, then generation config)."""
    for cfg in (model.config, getattr(model, "generation_config", None)):
        start = getattr(cfg, "decoder_start_token_id", None) if cfg is not None else None
        if start is not None:
            return int(start)
    raise ValueError("the seq2seq policy has no decoder_start_token_id in its config")


@dataclass
class Batch:
    """Token tensors of a batch of rollouts (or of a slice of one)."""

    query_ids: torch.Tensor  # (B, Lq): right-padded for seq2seq, left-padded for causal
    query_mask: torch.Tensor  # (B, Lq)
    response_ids: torch.Tensor  # (B, T), right-padded with the pad id
    response_mask: torch.Tensor  # (B, T), 1 up to and including each row's last (end) token

    def select(self, rows: torch.Tensor) -> Batch:
        return Batch(self.query_ids[rows], self.query_mask[rows], self.response_ids[rows], self.response_mask[rows])

    @property
    def lengths(self) -> torch.Tensor:
        return self.response_mask.sum(1)


def make_batch(tokenizer: Any, kind: str, prompts: Sequence[str], responses: Sequence[Sequence[int]],
               max_query_tokens: int, device: Any) -> Batch:
    """Tokenise the prompts as the generation engine does and pad the response ids; see ``Batch``."""
    enc = tokenizer(list(prompts), return_tensors="pt", padding=True, truncation=True, max_length=max_query_tokens,
                    padding_side="left" if kind == "causal" else "right", verbose=False)
    width = max(len(r) for r in responses)
    pad = tokenizer.pad_token_id
    ids = torch.full((len(responses), width), pad, dtype=torch.long)
    mask = torch.zeros((len(responses), width), dtype=torch.long)
    for i, r in enumerate(responses):
        ids[i, :len(r)] = torch.tensor(list(r), dtype=torch.long)
        mask[i, :len(r)] = 1
    return Batch(enc["input_ids"].to(device), enc["attention_mask"].to(device), ids.to(device), mask.to(device))


def _forward(model: Any, kind: str, b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and last hidden states at response positions: (B, T, V) and (B, T, H)."""
    T = b.response_ids.shape[1]
    if kind == "seq2seq":
        start = torch.full_like(b.response_ids[:, :1], decoder_start_id(model))
        decoder_input = torch.cat([start, b.response_ids[:, :-1]], dim=1)  # (B, T): shifted right
        out = model(input_ids=b.query_ids, attention_mask=b.query_mask, decoder_input_ids=decoder_input,
                    output_hidden_states=True, use_cache=False, return_dict=True)
        return out.logits, out.decoder_hidden_states[-1]
    Lq = b.query_ids.shape[1]
    ids = torch.cat([b.query_ids, b.response_ids], dim=1)  # (B, Lq + T)
    mask = torch.cat([b.query_mask, b.response_mask], dim=1)
    positions = (mask.cumsum(1) - 1).clamp(min=0)  # left padding: the first real token is position 0
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, output_hidden_states=True,
                use_cache=False, return_dict=True)
    return out.logits[:, Lq - 1:Lq - 1 + T], out.hidden_states[-1][:, Lq - 1:Lq - 1 + T]


@dataclass
class Scores:
    """Per response token: logprob, entropy and (with a value head) value; each (B, T)."""

    logp: torch.Tensor
    entropy: torch.Tensor | None
    values: torch.Tensor | None
    eos_logp: torch.Tensor | None = None  # log P(the response ends here), with ``eos_ids``
    logprobs: torch.Tensor | None = None  # (B, T, V) the whole next-token distribution, with ``full``


def score(model: Any, kind: str, b: Batch, *, temperature: float = 1.0, value_head: ValueHead | None = None,
          entropy: bool = False, eos_ids: Sequence[int] | None = None, full: bool = False) -> Scores:
    """Logprobs of the response tokens under ``model`` (logits / temperature), optional entropy and values.

    With ``eos_ids``, also the logprob at each position of ending there (any of the end tokens); with
    ``full``, the log-probabilities of the whole vocabulary at each position.

    Runs with gradients when called with grad enabled (the PPO update) and without under
    ``torch.no_grad()`` (rollouts, the reference). Logprobs are computed in float32.
    """
    logits, hidden = _forward(model, kind, b)
    logits = logits.float() / temperature  # (B, T, V)
    logprobs = torch.log_softmax(logits, dim=-1)
    logp = logprobs.gather(-1, b.response_ids.unsqueeze(-1)).squeeze(-1)  # (B, T)
    ent = None
    if entropy:
        ent = -(logprobs.exp() * logprobs).sum(-1)  # (B, T)
    values = value_head(hidden) if value_head is not None else None
    eos = torch.logsumexp(logprobs[..., list(eos_ids)], dim=-1) if eos_ids else None
    return Scores(logp, ent, values, eos, logprobs if full else None)
