"""``LLMCycleLM``: any llmcycle model as an lm-evaluation-harness model, registered as ``llmcycle``.

lm-eval asks a model three things; llmcycle's own code answers each, so a task scores the same
through lm-eval as through ``llmcycle benchmark``, on whatever ``load_model`` loads (builtins,
local folders, hub ids, PEFT adapters):

* ``loglikelihood``: each (context, continuation) pair is tokenised by ``loglik.encode_requests``
  (causal and seq2seq models, the builtin tokenizers' ``[CLS]``/``[SEP]``, the window limit, the
  end token of a seq2seq answer scored) and teacher-forced in length-sorted batches. It returns the
  summed log-probability, the number ``loglik.loglikelihood`` gives, and whether greedy decoding
  picks every token of the continuation (lm-eval's ``is_greedy``, which ``loglikelihood`` does not
  report: hence the forward pass here rather than a call to it).
* ``loglikelihood_rolling`` (perplexity tasks such as wikitext): a decoder-only model scores the
  whole text in lm-eval's disjoint rolling windows of the model's context, behind the tokens its
  tokenizer puts in front of a text (``[CLS]`` for the builtins), else its BOS or EOS token. An
  encoder-decoder model has no such score and is refused.
* ``generate_until``: llmcycle's generation engine (``generation.generate``); ``until`` become stop
  strings, ``max_gen_toks`` the new-token budget, and a context too long for the model loses its
  oldest tokens. Outputs come back stripped of surrounding whitespace, as the engine gives them.

With ``--apply_chat_template`` (``simple_evaluate(apply_chat_template=True)``) lm-eval renders every
context through ``apply_chat_template``, which is llmcycle's chat path (``llmcycle.prompts.chat``: the
tokenizer's own template, one BOS): the prompts a chat model is evaluated on are the ones it is served and
tuned with. A model without a chat template is refused in one line.

Nothing here needs a BOS, EOS or end-of-text id from the tokenizer (lm-eval's ``HFLM`` takes its
``eot_token_id`` from the tokenizer's ``eos_token_id``, which a tokenizer need not declare; the builtin
ones now do). ``eot_token_id`` below is informational only.

Importing this module imports lm_eval (``lm_eval_bridge`` imports it only when called).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from llmcycle.core.errors import ConfigError, LLMCycleError
from llmcycle.evaluation.harness.loglik import Encoded, _bos_prefix, _decoder_inputs, _gather, _pad, encode_requests
from llmcycle.evaluation.perplexity import context_length
from llmcycle.generation import GenerationSettings, generate
from llmcycle.models.chat import has_chat_template
from llmcycle.models.loader import LoadedModel, load_model
from llmcycle.prompts.chat import chat_prompt

SAMPLING_KEYS = ("temperature", "top_p", "top_k")
OTHER_KEYS = ("num_beams", "repetition_penalty", "seed")


def _count(value: Any, name: str) -> int:
    """An integer >= 1 given as an int or a digit string (lm-eval's CLI passes strings)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LLMCycleError(f"{name}: expected an integer >= 1, got {value!r}")
    return value


@register_model("llmcycle")
class LLMCycleLM(LM):
    """An lm-eval model backed by a llmcycle ``LoadedModel``.

    Args:
        pretrained: a ``LoadedModel``, or a model source for ``load_model`` (``builtin:tiny-gpt2``,
            a folder, a hub id, an adapter folder); lm-eval's CLI spelling ``pretrained=...`` works.
        adapter, dtype, device: passed to ``load_model`` when ``pretrained`` is a source.
        batch_size: requests (or prompts) per forward pass.
        max_gen_toks: new tokens for a generative task whose ``generation_kwargs`` name none.
    """

    def __init__(self, pretrained: LoadedModel | str, *, adapter: str | None = None, dtype: str = "fp32",
                 device: str | None = None, batch_size: int | str = 8, max_gen_toks: int = 256,
                 max_batch_size: int | None = None) -> None:
        super().__init__()
        del max_batch_size  # lm-eval passes it to every model; batches here have a fixed size
        if isinstance(pretrained, LoadedModel):
            self.loaded = pretrained
        else:
            self.loaded = load_model(pretrained, adapter=adapter, dtype=dtype, device=device or "cpu")
        if self.loaded.kind not in ("causal", "seq2seq"):
            raise LLMCycleError(f"model: lm-eval needs a causal or seq2seq model, not a {self.loaded.kind}")
        self.batch_size = _count(batch_size, "batch_size")
        self.max_gen_toks = _count(max_gen_toks, "max_gen_toks")

    # what lm-eval's logs read about the model ---------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        return self.loaded.tokenizer

    @property
    def device(self) -> Any:
        return next(self.loaded.model.parameters()).device

    @property
    def max_length(self) -> int | None:
        return context_length(self.loaded.model, self.loaded.tokenizer)

    @property
    def eot_token_id(self) -> int | None:
        """The id that ends generation (informational: nothing here needs one)."""
        eos = getattr(self.loaded.model.generation_config, "eos_token_id", None)
        eos = eos[0] if isinstance(eos, (list, tuple)) and eos else eos
        return eos if eos is not None else self.loaded.tokenizer.eos_token_id

    def get_model_info(self) -> dict[str, Any]:
        return {"model_source": self.loaded.source, "model_kind": self.loaded.kind,
                "model_untrained": self.loaded.untrained}

    # chat templates (lm-eval's --apply_chat_template) -------------------------------------------
    @property
    def tokenizer_name(self) -> str:
        """What lm-eval fingerprints its request caches with: the model source."""
        return self.loaded.source.replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        """The tokenizer's chat template (a named one when the tokenizer has several); None when not asked for."""
        if chat_template is False or chat_template is None:
            return None
        tok = self.loaded.tokenizer
        if not has_chat_template(tok):
            raise LLMCycleError(f"{self.loaded.source}: its tokenizer has no chat template, so lm-eval's "
                                "--apply_chat_template cannot be used with it; run without it")
        template = tok.chat_template
        if isinstance(template, dict):
            name = chat_template if isinstance(chat_template, str) else "default"
            if name not in template:
                raise LLMCycleError(f"chat template {name!r}: the tokenizer has {', '.join(sorted(template))}")
            return template[name]
        return template

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """lm-eval's few-shot turns as one prompt, rendered as every other llmcycle stage renders chat."""
        self.chat_template(True)  # a model without a template: the one-line error above
        return chat_prompt(self.loaded.tokenizer, chat_history, generation_prompt=add_generation_prompt)

    # lm-eval's three requests -------------------------------------------------------------------
    def loglikelihood(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """``(sum of log-probabilities, greedy?)`` of each ``(context, continuation)`` request."""
        pairs = [tuple(req.args) for req in requests]
        results = self.score(pairs)
        for pair, res in zip(pairs, results):
            self.cache_hook.add_partial("loglikelihood", pair, res)
        return results

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        """``loglikelihood`` on plain ``(context, continuation)`` pairs."""
        return self.score_encoded(encode_requests(self.loaded, pairs))

    def loglikelihood_rolling(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[float]:
        """Log-likelihood (nats) of each whole text, in disjoint windows of the model's context."""
        if self.loaded.kind != "causal":
            raise LLMCycleError(f"{self.loaded.source} is a seq2seq model: lm-eval's rolling log-likelihood "
                                "(perplexity tasks such as wikitext) needs a decoder-only model")
        tok = self.loaded.tokenizer
        prefix = _bos_prefix(tok) or [t for t in (tok.bos_token_id, tok.eos_token_id) if t is not None][:1]
        if not prefix:
            raise LLMCycleError("the tokenizer puts no token in front of a text and has no BOS/EOS token: "
                                "nothing to predict a text's first token from")
        window = self.max_length or 1024
        encoded, owner = [], []
        for i, req in enumerate(requests):
            (text,) = req.args
            ids = tok(text, add_special_tokens=False)["input_ids"]
            for ctx, cont in map(make_disjoint_window, get_rolling_token_windows(ids, prefix[-1], window, 1)):
                encoded.append(Encoded(ctx + cont, [], 0, len(cont)))
                owner.append(i)
        totals = [0.0] * len(requests)
        for i, (ll, _) in zip(owner, self.score_encoded(encoded)):
            totals[i] += ll
        for req, total in zip(requests, totals):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    def generate_until(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[str]:
        """Generated continuation of each ``(context, gen_kwargs)`` request, cut at its ``until`` strings."""
        groups: dict[str, list[int]] = {}  # requests with the same settings generate together
        for i, req in enumerate(requests):
            groups.setdefault(json.dumps(req.args[1], sort_keys=True, default=str), []).append(i)
        out = [""] * len(requests)
        tok = self.loaded.tokenizer
        side = tok.truncation_side
        tok.truncation_side = "left"  # a context too long for the model keeps its end, the question
        try:
            for idx in groups.values():
                settings = self.settings(requests[idx[0]].args[1])
                texts = generate(self.loaded, [requests[i].args[0] for i in idx], settings,
                                 batch_size=self.batch_size, truncate=True)
                for i, text in zip(idx, texts):
                    out[i] = text
                    self.cache_hook.add_partial("generate_until", requests[i].args, text)
        finally:
            tok.truncation_side = side
        return out

    def settings(self, gen_kwargs: dict[str, Any] | None) -> GenerationSettings:
        """lm-eval's ``generation_kwargs`` as llmcycle ``GenerationSettings``.

        ``until`` -> ``stop``; ``max_gen_toks`` -> ``max_new_tokens`` (default: this model's
        ``max_gen_toks``); ``temperature: 0`` means greedy, as in lm-eval; a key llmcycle has no
        setting for is an error rather than silently ignored.
        """
        kw = dict(gen_kwargs or {})
        until = kw.pop("until", None)
        stop = [until] if isinstance(until, str) else list(until or [])
        fields: dict[str, Any] = {"stop": [s for s in stop if s]}
        fields["max_new_tokens"] = kw.pop("max_gen_toks", kw.pop("max_new_tokens", self.max_gen_toks))
        sampling = {k: kw.pop(k) for k in SAMPLING_KEYS if k in kw}
        fields["do_sample"] = bool(kw.pop("do_sample", False)) and sampling.get("temperature", 1.0) != 0
        if fields["do_sample"]:
            fields.update(sampling)
        fields.update({k: kw.pop(k) for k in OTHER_KEYS if k in kw})
        if kw:
            raise ConfigError(f"lm-eval generation_kwargs: {', '.join(sorted(kw))}: no llmcycle generation setting "
                              f"for it; supported: until, max_gen_toks, do_sample, "
                              f"{', '.join(SAMPLING_KEYS + OTHER_KEYS)}")
        return GenerationSettings.parse(fields, where="lm-eval generation_kwargs")

    # scoring ------------------------------------------------------------------------------------
    def score_encoded(self, encoded: list[Encoded]) -> list[tuple[float, bool]]:
        """``(sum of log-probabilities, greedy?)`` of each already tokenised request, teacher-forced in
        length-sorted batches as ``loglik.loglikelihood`` does."""
        import torch

        model, causal = self.loaded.model, self.loaded.kind == "causal"
        pad_id = self.loaded.tokenizer.pad_token_id
        pad_id = 0 if pad_id is None else pad_id
        order = sorted(range(len(encoded)), key=lambda i: -(len(encoded[i].inputs) + len(encoded[i].targets)))
        results: list[tuple[float, bool]] = [(0.0, False)] * len(encoded)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for s in range(0, len(order), self.batch_size):
                    idx = order[s:s + self.batch_size]
                    batch = [encoded[i] for i in idx]
                    logits = _logits(model, batch, pad_id, causal)  # (B, T, V)
                    for row, (i, e) in enumerate(zip(idx, batch)):
                        if causal:  # token j of inputs is predicted at position j - 1
                            start, target = len(e.inputs) - 1 - e.n_score, e.inputs[-e.n_score:]
                        else:
                            start, target = e.n_skip, e.targets[e.n_skip:e.n_skip + e.n_score]
                        greedy = logits[row, start:start + len(target)].argmax(-1).tolist() == target
                        results[i] = (_gather(logits[row], start, target), greedy)
        finally:
            model.train(was_training)
        return results


def _logits(model: Any, batch: list[Encoded], pad_id: int, causal: bool) -> Any:
    device = next(model.parameters()).device
    if causal:
        ids, mask = _pad([e.inputs[:-1] for e in batch], pad_id)  # the last token is only a target
        return model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    ids, mask = _pad([e.inputs for e in batch], pad_id)  # (B, T_in)
    labels, _ = _pad([e.targets for e in batch], pad_id)  # (B, T_out); padding only after scored tokens
    return model(input_ids=ids.to(device), attention_mask=mask.to(device),
                 decoder_input_ids=_decoder_inputs(model, labels).to(device)).logits
