"""``trace``: walk one text through a model and say what each component does to it.

The walk: token ids -> embedding output -> positional information -> the first self-attention
block (with a few attention weights) -> cross-attention for encoder-decoders -> final logits and
the most likely next tokens. It runs one forward pass with eager attention (so attention
probabilities exist) and reads shapes from hidden states and attention outputs; nothing here
is specific to one family except the sentence describing its positional scheme.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmcycle.models.loader import LoadedModel


@dataclass
class TraceStep:
    """One component of the walk: a title and what happened there, line by line."""

    title: str
    lines: list[str] = field(default_factory=list)


def _positional(config: Any) -> str:
    mt = getattr(config, "model_type", "")
    enc = getattr(config, "encoder", None)
    if mt == "encoder-decoder" and enc is not None:
        return f"encoder and decoder: {_positional(enc)}"
    if mt in ("t5", "mt5", "umt5"):
        return (f"relative position bias: {config.relative_attention_num_buckets} buckets (up to distance "
                f"{config.relative_attention_max_distance}) added to the attention scores of each head; "
                "no position vectors are added to the embeddings")
    if mt in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3"):
        theta = getattr(config, "rope_theta", None) or (getattr(config, "rope_parameters", None) or {}).get(
            "rope_theta")
        return f"rotary position embedding (RoPE, theta={theta}) rotates queries and keys inside every attention"
    if mt == "gpt2":
        return f"learned absolute position embeddings (wpe, {config.n_positions} positions) added to token embeddings"
    if mt == "bart":
        return f"learned absolute position embeddings ({config.max_position_embeddings} positions, offset 2) added"
    if mt in ("bert", "roberta"):
        return (f"learned absolute position embeddings ({config.max_position_embeddings} positions) and "
                "token-type embeddings added, then LayerNorm")
    return "see the model's config (position scheme not described for this family)"


def _top_attention(attn: Any, tokens: list[str], k: int = 4) -> str:
    # attn: (B, H, T_q, T_k); report head 0, last query position
    row = attn[0, 0, -1]
    vals, idx = row.topk(min(k, row.shape[-1]))
    pairs = ", ".join(f"{tokens[i]!r} {v:.3f}" for v, i in zip(vals.tolist(), idx.tolist()))
    return f"head 0, last query position attends most to: {pairs}"


def _attention_lines(name: str, attn: Any, q_tokens: list[str], k_tokens: list[str]) -> list[str]:
    b, h, tq, tk = attn.shape
    return [
        f"{name}: {h} heads; scores softmax(Q K^T / sqrt(d_head)) of shape (batch={b}, heads={h}, "
        f"queries={tq}, keys={tk}); each row sums to {attn[0, 0, -1].sum().item():.3f}",
        _top_attention(attn, k_tokens),
    ]


def _forward(loaded: LoadedModel, enc: dict[str, Any]) -> Any:
    import torch

    model = loaded.model
    kwargs: dict[str, Any] = dict(output_attentions=True, output_hidden_states=True, return_dict=True)
    if loaded.kind == "seq2seq":
        start = model.generation_config.decoder_start_token_id
        if start is None:
            start = model.config.decoder_start_token_id
        kwargs["decoder_input_ids"] = torch.tensor([[start]], device=enc["input_ids"].device)
    with torch.no_grad():
        return model(**enc, **kwargs)


def _set_attention(model: Any, impl: str | None) -> str | None:
    """Switch the attention implementation (eager exposes probabilities); returns the old one.

    ``set_attn_implementation`` does not reach the per-layer config copies of some families
    (BERT inside an ``EncoderDecoderModel`` in transformers 5.x), so every module's config is
    switched.
    """
    previous = getattr(model.config, "_attn_implementation", None)
    if impl:
        for module in model.modules():
            cfg = getattr(module, "config", None)
            if cfg is not None and hasattr(cfg, "_attn_implementation"):
                cfg._attn_implementation = impl
    return previous


def trace(loaded: LoadedModel, text: str, top_k: int = 5) -> list[TraceStep]:
    """Run ``text`` through ``loaded`` and describe each component, in order."""
    import torch

    model, tok = loaded.model, loaded.tokenizer
    previous = _set_attention(model, "eager")
    device = next(model.parameters()).device
    enc = {k: v.to(device) for k, v in tok(text, return_tensors="pt").items() if k in ("input_ids", "attention_mask")}
    ids = enc["input_ids"][0].tolist()
    tokens = tok.convert_ids_to_tokens(ids)
    try:
        out = _forward(loaded, enc)
    finally:
        _set_attention(model, previous)
    steps = [TraceStep("tokens", [f"{len(ids)} tokens: " + " ".join(f"{t}({i})" for t, i in zip(tokens, ids))])]
    hidden = out.encoder_hidden_states if loaded.kind == "seq2seq" else out.hidden_states
    emb = hidden[0]  # (B, T, C)
    steps.append(TraceStep("embedding", [
        f"lookup table {tuple(model.get_input_embeddings().weight.shape)} (vocab, hidden) -> output {tuple(emb.shape)} "
        f"(batch, tokens, hidden); mean L2 norm per token {emb[0].norm(dim=-1).mean().item():.3f}"]))
    steps.append(TraceStep("positions", [_positional(model.config)]))
    if loaded.kind == "seq2seq":
        steps.append(TraceStep("encoder self-attention, layer 1",
                               _attention_lines("bidirectional self-attention", out.encoder_attentions[0], tokens,
                                                tokens)
                               + [f"after {len(out.encoder_attentions)} encoder layers: hidden "
                                  f"{tuple(out.encoder_last_hidden_state.shape)}"]))
        dec_tokens = tok.convert_ids_to_tokens([model.generation_config.decoder_start_token_id
                                                if model.generation_config.decoder_start_token_id is not None
                                                else model.config.decoder_start_token_id])
        steps.append(TraceStep("decoder self-attention, layer 1",
                               [f"decoder input: the start token {dec_tokens[0]!r}"]
                               + _attention_lines("causal (masked) self-attention", out.decoder_attentions[0],
                                                  dec_tokens, dec_tokens)))
        steps.append(TraceStep("cross-attention, layer 1",
                               _attention_lines("decoder queries over encoder keys", out.cross_attentions[0],
                                                dec_tokens, tokens)))
    else:
        steps.append(TraceStep("self-attention, layer 1",
                               _attention_lines("causal (masked) self-attention", out.attentions[0], tokens, tokens)
                               + [f"after {len(out.attentions)} layers: hidden {tuple(out.hidden_states[-1].shape)}"]))
    logits = out.logits  # (B, T, V) (encoder-decoder: decoder positions)
    probs = torch.softmax(logits[0, -1].float(), dim=-1)
    p, idx = probs.topk(top_k)
    nxt = ", ".join(f"{t!r} {v:.3f}" for t, v in zip(tok.convert_ids_to_tokens(idx.tolist()), p.tolist()))
    steps.append(TraceStep("logits", [
        f"LM head -> logits {tuple(logits.shape)} (batch, positions, vocab); softmax over {logits.shape[-1]} tokens",
        f"top {top_k} next tokens: {nxt}"]))
    if loaded.untrained:
        steps.append(TraceStep("note", ["weights are random (untrained): the probabilities above mean nothing yet"]))
    return steps
