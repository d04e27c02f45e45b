"""Log-likelihood of a continuation given a context: the score behind multiple-choice benchmarks.

``loglikelihood(loaded, [(context, continuation), ...])`` returns, per request, the sum of the
log-probabilities (nats) of the continuation's tokens, teacher-forced after the context. Requests
are sorted by length and batched (right padding; padding never reaches a scored position), and
results come back in the caller's order.

Causal models (decoder-only). The context is tokenised alone and with the continuation appended;
the continuation's tokens are what the joint tokenisation adds after the context's tokens (so a
word split across the boundary is scored as the model would see it), falling back to tokenising
the continuation alone when the two tokenisations disagree on the context. Trailing whitespace of
the context is moved to the continuation first (lm-evaluation-harness does the same). Special
tokens the tokenizer puts in *front* of a text (the offline tokenizer's ``[CLS]`` BOS) are kept as
context and never scored; an end-of-sequence token is never added or scored. A context longer
than the model's window loses its oldest tokens.

Seq2seq models. The encoder reads the context as the tokenizer encodes it (with its special
tokens). The decoder is teacher-forced on the continuation as ``tokenizer(text_target=...)``
encodes it, shifted right behind the decoder start token, exactly as in training. A leading
special token of that encoding (the offline tokenizer's ``[CLS]``, BART's ``<s>``) is fed to the
decoder as context but not scored, since it is not part of the answer. The trailing EOS
(``[SEP]``, ``</s>``) *is* scored by default (``score_eos=True``), as lm-evaluation-harness does:
for an encoder-decoder the continuation is the model's whole output, so a choice's score is the
probability of producing exactly that text and then stopping; without it, a choice that is a
prefix of a longer one would never score lower than it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from llmcycle.core.errors import LLMCycleError
from llmcycle.evaluation.perplexity import context_length


@dataclass(frozen=True)
class Encoded:
    """One request as token ids. Causal: ``inputs`` is context + continuation, the last ``n_score``
    scored. Seq2seq: ``inputs`` is the encoder input; ``targets[n_skip:n_skip + n_score]`` scored."""

    inputs: list[int]
    targets: list[int]
    n_skip: int
    n_score: int


def _split_specials(tok: Any, text: str, target: bool = False) -> tuple[list[int], int, int]:
    """``(ids with special tokens, how many special tokens lead, how many trail)``; ``target``:
    encode as a decoder target (``text_target=``)."""
    encode = (lambda **kw: tok(text_target=text, **kw)) if target else (lambda **kw: tok(text, **kw))
    full = encode()["input_ids"]
    plain = encode(add_special_tokens=False)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return full, start, len(full) - start - len(plain)
    return full, 0, 0


def _bos_prefix(tok: Any) -> list[int]:
    """The special tokens the tokenizer puts before any text (``[CLS]`` for the offline causal one)."""
    full, lead, _ = _split_specials(tok, "a")
    return full[:lead]


def encode_causal(tok: Any, context: str, continuation: str, prefix: list[int], limit: int | None) -> Encoded:
    n_space = len(context) - len(context.rstrip())
    if n_space:
        context, continuation = context[:-n_space], context[-n_space:] + continuation
    ctx = tok(context, add_special_tokens=False)["input_ids"] if context else []
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    if whole[:len(ctx)] == ctx and len(whole) > len(ctx):
        cont = whole[len(ctx):]
    else:  # the joint tokenisation changed the context's tokens: score the continuation on its own
        cont = tok(continuation, add_special_tokens=False)["input_ids"]
    if not cont:
        raise LLMCycleError(f"continuation {continuation!r} has no tokens; nothing to score")
    ctx = prefix + ctx
    if not ctx:  # the first continuation token needs something to be predicted from
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        if start is None:
            raise LLMCycleError("empty context and the tokenizer has no BOS/EOS token to start from")
        ctx = [start]
    ids = ctx + cont
    if limit is not None:
        if len(cont) > limit:
            raise LLMCycleError(f"continuation {continuation[:40]!r}... has {len(cont)} tokens; the model's "
                                f"window is {limit}")
        ids = ids[-(limit + 1):]  # the last token is only a target: the input is ids[:-1]
    return Encoded(ids, [], 0, len(cont))


def encode_seq2seq(tok: Any, context: str, continuation: str, limit: int | None, score_eos: bool) -> Encoded:
    enc, lead, _ = _split_specials(tok, context)
    if limit is not None and len(enc) > limit:
        enc = enc[:lead] + enc[len(enc) - (limit - lead):]  # keep the leading specials and the end
    target, t_lead, t_trail = _split_specials(tok, continuation, target=True)
    n_score = len(target) - t_lead - (0 if score_eos else t_trail)
    if n_score <= 0:
        raise LLMCycleError(f"continuation {continuation!r} has no tokens; nothing to score")
    if limit is not None and len(target) > limit:
        raise LLMCycleError(f"continuation {continuation[:40]!r}... has {len(target)} tokens; the decoder's "
                            f"window is {limit}")
    return Encoded(enc, target, t_lead, n_score)


def _pad(rows: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, :len(r)] = 1
    return ids, mask


def _gather(logits: Any, start: int, targets: list[int]) -> float:
    """Sum of log p(targets[j]) read from ``logits[start + j]`` (one row: (T, V))."""
    import torch

    lp = logits[start:start + len(targets)].float().log_softmax(-1)  # (n, V)
    idx = torch.tensor(targets, device=lp.device).unsqueeze(-1)  # (n, 1)
    return float(lp.gather(-1, idx).sum())


def _score_causal(model: Any, batch: list[Encoded], pad_id: int) -> list[float]:
    device = next(model.parameters()).device
    ids, mask = _pad([e.inputs[:-1] for e in batch], pad_id)
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits  # (B, T, V)
    out = []
    for row, e in enumerate(batch):
        length = len(e.inputs) - 1  # token j of inputs is predicted at position j - 1
        out.append(_gather(logits[row], length - e.n_score, e.inputs[-e.n_score:]))
    return out


def _decoder_inputs(model: Any, labels: Any) -> Any:
    if hasattr(model, "prepare_decoder_input_ids_from_labels"):
        return model.prepare_decoder_input_ids_from_labels(labels=labels)
    start = getattr(model.config, "decoder_start_token_id", None)
    if start is None:
        raise LLMCycleError("model: no decoder_start_token_id in its config; cannot teacher-force the decoder")
    shifted = labels.new_full(labels.shape, start)
    shifted[:, 1:] = labels[:, :-1]
    return shifted


def _score_seq2seq(model: Any, batch: list[Encoded], pad_id: int) -> list[float]:
    device = next(model.parameters()).device
    ids, mask = _pad([e.inputs for e in batch], pad_id)  # (B, T_in)
    labels, _ = _pad([e.targets for e in batch], pad_id)  # (B, T_out); padding only after scored tokens
    decoder_ids = _decoder_inputs(model, labels)
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                   decoder_input_ids=decoder_ids.to(device)).logits  # (B, T_out, V)
    return [_gather(logits[row], e.n_skip, e.targets[e.n_skip:e.n_skip + e.n_score]) for row, e in enumerate(batch)]


def encode_requests(loaded: Any, requests: Sequence[tuple[str, str]], score_eos: bool = True) -> list[Encoded]:
    """Token ids of each (context, continuation) request, as ``loglikelihood`` scores them."""
    tok, kind = loaded.tokenizer, loaded.kind
    limit = context_length(loaded.model, tok)
    prefix = _bos_prefix(tok) if kind == "causal" else []
    out = []
    for i, (context, continuation) in enumerate(requests):
        try:
            if kind == "causal":
                out.append(encode_causal(tok, context, continuation, prefix, limit))
            else:
                out.append(encode_seq2seq(tok, context, continuation, limit, score_eos))
        except LLMCycleError as exc:
            raise LLMCycleError(f"request {i}: {exc}") from None
    return out


def loglikelihood(loaded: Any, requests: Sequence[tuple[str, str]], batch_size: int = 8,
                  score_eos: bool = True) -> list[float]:
    """Sum of log-probabilities (nats) of each continuation given its context, in request order.

    Args:
        loaded: a ``LoadedModel`` of kind ``causal`` or ``seq2seq``.
        requests: ``(context, continuation)`` pairs; the continuation usually starts with a space.
        batch_size: requests per forward pass.
        score_eos: seq2seq only: count the log-probability of the end-of-sequence token after the
            continuation (see the module docstring).
    """
    import torch

    if loaded.kind not in ("causal", "seq2seq"):
        raise LLMCycleError(f"model: log-likelihood scoring needs a causal or seq2seq model, not a {loaded.kind}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise LLMCycleError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
    encoded = encode_requests(loaded, requests, score_eos)
    model, tok = loaded.model, loaded.tokenizer
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    score = _score_causal if loaded.kind == "causal" else _score_seq2seq
    order = sorted(range(len(encoded)), key=lambda i: -(len(encoded[i].inputs) + len(encoded[i].targets)))
    results = [0.0] * len(encoded)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for s in range(0, len(order), batch_size):
                idx = order[s:s + batch_size]
                for i, value in zip(idx, score(model, [encoded[i] for i in idx], pad_id)):
                    results[i] = value
    finally:
        model.train(was_training)
    return results
