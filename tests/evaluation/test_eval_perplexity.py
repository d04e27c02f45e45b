"""Perplexity on tiny builtins: equal to the model's own loss, token-weighted, sliding windows, training lowers it."""

from __future__ import annotations

import math

import pytest
import torch

from llmcycle.core.errors import LLMCycleError
from llmcycle.evaluation import causal_perplexity, perplexity, seq2seq_perplexity

SHORT = "#Person1# asks about the price."
LONG = "#Person2# says the new laptop costs too much, so they will wait for the sale next month and buy it then."
DIALOGUE = "#Person1#: Where is the station?\n#Person2#: Two blocks north, next to the bank."


def own_loss(model, ids: list[int]) -> tuple[float, int]:
    """(summed NLL, scored tokens) of a causal model from its own mean loss on one unpadded sequence."""
    x = torch.tensor([ids])
    with torch.no_grad():
        loss = model(input_ids=x, labels=x).loss  # mean over the len(ids) - 1 shifted targets
    return float(loss) * (len(ids) - 1), len(ids) - 1


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_causal_equals_exp_of_model_loss(load_builtin, name: str) -> None:
    lm = load_builtin(name)
    ids = lm.tokenizer(LONG)["input_ids"]
    nll, n = own_loss(lm.model, ids)
    got = perplexity(lm, [LONG])
    assert got.n_tokens == n == len(ids) - 1
    assert got.perplexity == pytest.approx(math.exp(nll / n), rel=1e-5)


@pytest.mark.parametrize("name", ["tiny-t5", "tiny-bart"])
def test_seq2seq_equals_exp_of_model_loss(load_builtin, name: str) -> None:
    lm = load_builtin(name)
    src = lm.tokenizer(DIALOGUE)["input_ids"]
    labels = lm.tokenizer(text_target=LONG)["input_ids"]
    with torch.no_grad():
        loss = lm.model(input_ids=torch.tensor([src]), labels=torch.tensor([labels])).loss
    got = perplexity(lm, [DIALOGUE], [LONG])
    assert got.n_tokens == len(labels)
    assert got.perplexity == pytest.approx(math.exp(float(loss)), rel=1e-5)


def test_causal_is_token_weighted_and_batch_invariant(load_builtin) -> None:
    lm = load_builtin("tiny-gpt2")
    (nll_s, n_s), (nll_l, n_l) = (own_loss(lm.model, lm.tokenizer(t)["input_ids"]) for t in (SHORT, LONG))
    assert n_s < n_l
    got = causal_perplexity(lm.model, lm.tokenizer, [SHORT, LONG], batch_size=2)  # padded together
    assert got.n_tokens == n_s + n_l
    assert got.nll == pytest.approx((nll_s + nll_l) / (n_s + n_l), rel=1e-5)
    per_text_mean = (nll_s / n_s + nll_l / n_l) / 2  # what token weighting is not
    assert abs(got.nll - per_text_mean) > 1e-4
    one_by_one = causal_perplexity(lm.model, lm.tokenizer, [SHORT, LONG], batch_size=1)
    assert one_by_one.nll == pytest.approx(got.nll, rel=1e-5)


def test_seq2seq_is_token_weighted_and_batch_invariant(load_builtin) -> None:
    lm = load_builtin("tiny-t5")
    pairs = [(DIALOGUE, SHORT), ("#Person1#: Hi.\n#Person2#: Hello.", LONG)]
    parts = []
    for src, ref in pairs:
        labels = lm.tokenizer(text_target=ref)["input_ids"]
        with torch.no_grad():
            loss = lm.model(input_ids=torch.tensor([lm.tokenizer(src)["input_ids"]]),
                            labels=torch.tensor([labels])).loss
        parts.append((float(loss) * len(labels), len(labels)))
    got = seq2seq_perplexity(lm.model, lm.tokenizer, [p[0] for p in pairs], [p[1] for p in pairs], batch_size=2)
    assert got.n_tokens == sum(n for _, n in parts)
    assert got.nll == pytest.approx(sum(s for s, _ in parts) / got.n_tokens, rel=1e-5)
    one = seq2seq_perplexity(lm.model, lm.tokenizer, [p[0] for p in pairs], [[p[1]] for p in pairs], batch_size=1)
    assert one.nll == pytest.approx(got.nll, rel=1e-5)


def test_stride_equal_to_window_is_non_overlapping_chunks(load_builtin) -> None:
    lm = load_builtin("tiny-gpt2")
    text = " ".join([LONG] * 5)
    ids = lm.tokenizer(text)["input_ids"]
    window = 32
    assert len(ids) > 3 * window
    total, count = 0.0, 0
    for start in range(0, len(ids), window):
        chunk = ids[start:start + window]
        if len(chunk) > 1:  # a one-token chunk predicts nothing
            nll, n = own_loss(lm.model, chunk)
            total, count = total + nll, count + n
    got = causal_perplexity(lm.model, lm.tokenizer, [text], max_length=window, stride=window, batch_size=3)
    assert got.n_tokens == count
    assert got.perplexity == pytest.approx(math.exp(total / count), rel=1e-5)


def test_overlapping_stride_follows_the_hf_guide_loop(load_builtin) -> None:
    lm = load_builtin("tiny-llama")
    text = " ".join([LONG] * 3)
    ids = torch.tensor([lm.tokenizer(text)["input_ids"]])
    max_length, stride, seq_len = 40, 16, ids.size(1)
    total, count, prev_end = 0.0, 0, 0
    for begin in range(0, seq_len, stride):  # the loop of the transformers perplexity guide
        end = min(begin + max_length, seq_len)
        trg_len = end - prev_end
        x = ids[:, begin:end]
        y = x.clone()
        y[:, :-trg_len] = -100
        with torch.no_grad():
            loss = lm.model(x, labels=y).loss
        n = int((y[:, 1:] != -100).sum())
        total, count, prev_end = total + float(loss) * n, count + n, end
        if end == seq_len:
            break
    got = causal_perplexity(lm.model, lm.tokenizer, [text], max_length=max_length, stride=stride)
    assert count == seq_len - 1 == got.n_tokens  # every token after the first is scored once
    assert got.nll == pytest.approx(total / count, rel=1e-5)


def test_training_on_a_sentence_lowers_its_perplexity() -> None:
    from llmcycle.models import load_model

    lm = load_model("builtin:tiny-gpt2")  # a fresh copy: the session fixture must stay untrained
    before = perplexity(lm, [LONG]).perplexity
    ids = torch.tensor([lm.tokenizer(LONG)["input_ids"]])
    opt = torch.optim.AdamW(lm.model.parameters(), lr=3e-3)
    lm.model.train()
    for _ in range(8):
        opt.zero_grad()
        lm.model(ids, labels=ids).loss.backward()
        opt.step()
    after = perplexity(lm, [LONG]).perplexity
    assert after < 0.5 * before
    assert lm.model.training  # the caller's mode is restored


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda lm: perplexity(lm, [SHORT], max_length=32, stride=64), "stride: 64 exceeds max_length 32"),
        (lambda lm: perplexity(lm, [SHORT], max_length=4096), "max_length: 4096 exceeds the model's context of 512"),
        (lambda lm: perplexity(lm, [SHORT], [SHORT]), "references: a causal model scores texts alone"),
        (lambda lm: perplexity(lm, [SHORT], max_target_length=8), "max_target_length: not an option"),
        (lambda lm: perplexity(lm, [""]), "texts: no token to score"),
        (lambda lm: perplexity(lm, SHORT), "texts: expected a list of strings"),
        (lambda lm: perplexity(lm.model, [SHORT]), "tokenizer: a model object needs its tokenizer"),
        (lambda lm: perplexity(lm, [SHORT], batch_size=0), "batch_size: expected an integer >= 1"),
    ],
)
def test_causal_bad_input(load_builtin, call, match: str) -> None:
    with pytest.raises(LLMCycleError, match=match):
        call(load_builtin("tiny-gpt2"))


def test_seq2seq_bad_input(load_builtin) -> None:
    lm = load_builtin("tiny-t5")
    with pytest.raises(LLMCycleError, match="references: a seq2seq model needs references"):
        perplexity(lm, [DIALOGUE])
    with pytest.raises(LLMCycleError, match="references: 1 items but predictions has 2"):
        perplexity(lm, [DIALOGUE, DIALOGUE], [SHORT])
    with pytest.raises(LLMCycleError, match="references: perplexity takes one reference per input"):
        perplexity(lm, [DIALOGUE], [[SHORT, LONG]])


@pytest.mark.filterwarnings("ignore:Version v4.12.0:FutureWarning")  # EncoderDecoderModel's own loss path
def test_embedded_default_encoder_decoder(minilm) -> None:
    """builtin:minilm-seq2seq (an EncoderDecoderModel) scores references like its own loss."""
    labels = minilm.tokenizer(text_target=SHORT)["input_ids"]
    with torch.no_grad():
        loss = minilm.model(input_ids=torch.tensor([minilm.tokenizer(DIALOGUE)["input_ids"]]),
                            labels=torch.tensor([labels])).loss
    got = perplexity(minilm, [DIALOGUE], [SHORT])
    assert got.n_tokens == len(labels)
    assert got.nll == pytest.approx(float(loss), rel=1e-5)
