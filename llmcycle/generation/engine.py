"""The batched generation engine.

``generate(loaded, inputs, settings)`` returns one text per input (a list of texts per input when
``num_return_sequences > 1``), in the caller's order. On the way:

* inputs are tokenised once and sorted by length, longest first (an out-of-memory shows at once,
  and each padded batch wastes little); batches are padded on the right for encoder-decoder
  models and on the left for decoder-only ones, whose new tokens must follow the prompt directly.
  transformers derives position ids from the attention mask, so greedy decoding gives the same
  tokens as one ``model.generate`` call per example (tested for T5, BART, BERT2BERT, GPT-2, Llama);
* decoding uses the KV cache (``use_cache=True``);
* sampling is seeded per example: example ``i``'s ``j``-th sample draws from its own
  ``torch.Generator`` seeded from ``(settings.seed, i, j)`` (``processors.SeededSampler``), so it
  does not depend on the batch size or on which other inputs share its batch;
* frequency/presence penalties run as a logits processor; stop strings end a row as soon as its
  text contains one and the text is cut there;
* inputs longer than ``max_input_tokens`` are an error naming the input, unless ``truncate=True``
  (then they are cut, logged and flagged in ``generate_detailed``'s results). Nothing is cut silently.

``generate_detailed`` returns ``GenerationResult`` objects with token counts and why each output
ended (``eos``, ``stop`` or ``length``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

from llmcycle.core.errors import DataError, LLMCycleError
from llmcycle.generation.settings import GenerationSettings
from llmcycle.models.loader import LoadedModel
from llmcycle.models.tokenizer import decode_text

log = logging.getLogger("llmcycle")

FinishReason = Literal["eos", "stop", "length"]


@dataclass
class Output:
    """One generated sequence."""

    text: str
    token_ids: list[int]  # generated ids, up to and including the end token or the token completing a stop string
    finish_reason: FinishReason  # eos: the model ended it; stop: a stop string; length: max_new_tokens

    @property
    def new_tokens(self) -> int:
        return len(self.token_ids)


@dataclass
class GenerationResult:
    """Everything generated for one input."""

    index: int  # position in the caller's list
    input: str
    input_tokens: int  # tokens fed to the model (after truncation)
    truncated: bool
    outputs: list[Output] = field(default_factory=list)  # num_return_sequences of them

    @property
    def text(self) -> str:
        return self.outputs[0].text

    @property
    def texts(self) -> list[str]:
        return [o.text for o in self.outputs]


def generate(
    loaded: LoadedModel,
    inputs: Sequence[str],
    settings: GenerationSettings | None = None,
    batch_size: int = 8,
    max_input_tokens: int | None = None,
    on_batch: Callable[[int], None] | None = None,
    *,
    progress: bool = False,
    truncate: bool = False,
) -> list[str] | list[list[str]]:
    """Generate for every input, batched; outputs in input order.

    Returns a list of strings, or, when ``settings.num_return_sequences > 1``, a list holding a
    list of ``num_return_sequences`` strings per input. Arguments as for ``generate_detailed``.
    """
    results = generate_detailed(loaded, inputs, settings, batch_size, max_input_tokens, on_batch,
                                progress=progress, truncate=truncate)
    if (settings or GenerationSettings()).num_return_sequences == 1:
        return [r.text for r in results]
    return [r.texts for r in results]


def generate_detailed(
    loaded: LoadedModel,
    inputs: Sequence[str],
    settings: GenerationSettings | None = None,
    batch_size: int = 8,
    max_input_tokens: int | None = None,
    on_batch: Callable[[int], None] | None = None,
    *,
    progress: bool = False,
    truncate: bool = False,
    streamer: Any = None,
) -> list[GenerationResult]:
    """Generate for every input; one ``GenerationResult`` per input, in input order.

    Args:
        loaded: a model from ``llmcycle.models.load_model`` (seq2seq or causal).
        inputs: the input texts (prompts).
        settings: decoding settings (default: greedy, 64 new tokens).
        batch_size: inputs per ``model.generate`` call (rows = batch_size x num_return_sequences).
        max_input_tokens: the longest input allowed, in tokens, special tokens included (default:
            ``input_limit``: the tokenizer's ``model_max_length`` capped by the model's positions,
            minus ``max_new_tokens`` for decoder-only models).
        on_batch: called after each batch with the number of inputs it held.
        progress: show a progress bar with ETA (rich, on stderr).
        truncate: cut inputs longer than ``max_input_tokens`` (on the tokenizer's
            ``truncation_side``; logged, and flagged in the results) instead of raising ``DataError``
            naming the first such input.
        streamer: a transformers streamer (``put``/``end``, e.g. ``TextIteratorStreamer``) that
            ``model.generate`` feeds token ids as they are generated; one input and one output only.
            The results are the same as without it (``llmcycle.serving`` streams this way).
    """
    settings = settings or GenerationSettings()
    if isinstance(inputs, str) or not all(isinstance(t, str) for t in inputs):
        raise LLMCycleError("inputs must be a list of strings (wrap a single prompt in a list)")
    if batch_size < 1:
        raise LLMCycleError(f"batch_size must be >= 1, got {batch_size}")
    if loaded.kind not in ("seq2seq", "causal"):
        raise LLMCycleError(f"{loaded.source} is a {loaded.kind} model; generation needs a seq2seq or causal LM")
    if not inputs:
        return []
    if streamer is not None and (len(inputs) != 1 or settings.num_return_sequences != 1 or settings.num_beams != 1):
        raise LLMCycleError("a streamer takes one input, one output and no beam search")
    tok = loaded.tokenizer
    _ensure_pad_token(tok)
    limit = input_limit(loaded, settings, max_input_tokens)
    lengths = [len(ids) for ids in tok(list(inputs), verbose=False)["input_ids"]]
    too_long = [i for i, n in enumerate(lengths) if n > limit]
    if too_long and not truncate:
        raise _too_long_error(too_long, lengths, limit)
    if too_long:
        log.warning("truncated %d of %d inputs to %d tokens (truncate=True)", len(too_long), len(inputs), limit)
    results: list[GenerationResult | None] = [None] * len(inputs)
    with _progress_bar(progress, len(inputs)) as advance:
        for batch in sort_into_batches(lengths, batch_size):
            outputs = _generate_batch(loaded, [inputs[i] for i in batch], batch, settings, limit, streamer)
            for i, outs in zip(batch, outputs):
                results[i] = GenerationResult(i, inputs[i], min(lengths[i], limit), lengths[i] > limit, outs)
            advance(len(batch))
            if on_batch:
                on_batch(len(batch))
    return results  # type: ignore[return-value]


def sort_into_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Input indices grouped into batches of similar length, longest first."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def input_limit(loaded: LoadedModel, settings: GenerationSettings, max_input_tokens: int | None = None) -> int:
    """The most input tokens allowed (see ``generate_detailed``'s ``max_input_tokens``).

    Default: the tokenizer's ``model_max_length``, capped by the model's position limit (for a
    decoder-only model, the positions left after ``max_new_tokens``).
    """
    if max_input_tokens is not None:
        if max_input_tokens < 1:
            raise LLMCycleError(f"max_input_tokens must be >= 1, got {max_input_tokens}")
        return max_input_tokens
    limit = getattr(loaded.tokenizer, "model_max_length", None)
    limit = limit if isinstance(limit, int) and 0 < limit < 1_000_000 else 1_000_000  # 1e30: tokenizer knows none
    cfg = loaded.model.config
    if loaded.kind == "seq2seq":
        cfg = getattr(cfg, "encoder", None) or cfg  # EncoderDecoderModel: the encoder's positions
    positions = getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)
    if positions and loaded.kind == "causal":
        if positions - settings.max_new_tokens < 1:
            raise LLMCycleError(f"max_new_tokens={settings.max_new_tokens} leaves no room for a prompt: "
                                f"{loaded.source} takes at most {positions} positions")
        positions -= settings.max_new_tokens
    return min(limit, positions) if positions else limit


def example_seed(seed: int, index: int, sample: int = 0) -> int:
    """The seed of example ``index``'s ``sample``-th output: a hash of the three, so seeds never collide."""
    digest = hashlib.blake2b(f"{seed}:{index}:{sample}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # torch seeds must fit in a signed 64-bit int


def _too_long_error(too_long: list[int], lengths: list[int], limit: int) -> DataError:
    first = too_long[0]
    more = f" ({len(too_long) - 1} more too long: inputs {', '.join(map(str, too_long[1:6]))}" \
           f"{', ...' if len(too_long) > 6 else ''})" if len(too_long) > 1 else ""
    return DataError(f"input {first} has {lengths[first]} tokens, more than max_input_tokens={limit}{more}; "
                     "shorten it, raise max_input_tokens if the model takes more, or pass truncate=True "
                     "(CLI: --truncate) to cut long inputs")


def _ensure_pad_token(tok: Any) -> None:
    if tok.pad_token_id is None:
        if tok.eos_token is None:
            raise LLMCycleError("the tokenizer has neither a pad nor an end token; batching needs one")
        tok.pad_token = tok.eos_token  # the usual choice for GPT-2-style tokenizers; padding is masked anyway
        log.info("tokenizer has no pad token: padding with its end token %r", tok.eos_token)


def _generate_batch(loaded: LoadedModel, texts: list[str], indices: list[int], settings: GenerationSettings,
                    limit: int, streamer: Any = None) -> list[list[Any]]:
    """Outputs for one batch: a list of ``num_return_sequences`` ``Output``s per text."""
    import torch
    from transformers import LogitsProcessorList, StoppingCriteriaList

    from llmcycle.generation.processors import SeededSampler, StopOnStrings  # torch, transformers

    model, tok = loaded.model, loaded.tokenizer
    causal = loaded.kind == "causal"
    device = next(model.parameters()).device
    enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=limit,
              padding_side="left" if causal else "right", verbose=False)
    ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)  # (B, L)
    prompt_len = ids.shape[1] if causal else 1  # columns of the output that were not generated
    n = settings.num_return_sequences
    kwargs = settings.to_generation_kwargs()
    processors = settings.logits_processors(prompt_len)
    if settings.do_sample:  # our own per-row seeded sampler on top of greedy selection
        ids, mask = ids.repeat_interleave(n, dim=0), mask.repeat_interleave(n, dim=0)  # (B*n, L)
        gens = [torch.Generator().manual_seed(example_seed(settings.seed, i, j)) for i in indices for j in range(n)]
        processors.append(SeededSampler(gens, settings.temperature, settings.top_k, settings.top_p))
        for key in ("temperature", "top_k", "top_p"):
            kwargs.pop(key, None)
        kwargs.update(do_sample=False, num_return_sequences=1)
    decode = _decoder(tok)
    criteria = [StopOnStrings(settings.stop, decode, prompt_len)] if settings.stop else []
    # peft's generate for prompt tuning deep-copies its keyword arguments: our processors (seeded generators),
    # criteria and the streamer (a queue feeding a response) must stay the very objects we hold
    shared = _shared_types(LogitsProcessorList, StoppingCriteriaList)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, pad_token_id=tok.pad_token_id,
                             logits_processor=shared[0](processors), stopping_criteria=shared[1](criteria),
                             streamer=_SharedStreamer(streamer) if streamer is not None else None,
                             **kwargs)  # (B*n, prompt_len + T)
    rows = out[:, prompt_len:].tolist()
    eos = eos_token_ids(model, tok)
    outputs = [_finish(row, decode, settings.stop, eos) for row in rows]
    return [outputs[k * n:(k + 1) * n] for k in range(len(texts))]


def _decoder(tok: Any) -> Callable[[list[int]], str]:
    def decode(ids: list[int]) -> str:
        return decode_text(tok, ids)

    return decode


def eos_token_ids(model: Any, tok: Any) -> set[int]:
    """The ids that end a response: the generation config's end token(s), else the tokenizer's."""
    eos = getattr(model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = tok.eos_token_id
    if eos is None:
        return set()
    return set(eos) if isinstance(eos, (list, tuple)) else {int(eos)}


def _finish(row: list[int], decode: Callable[[list[int]], str], stops: list[str], eos: set[int]) -> Any:
    """Text (cut at the first stop string), token count and finish reason of one generated row."""
    from llmcycle.generation.processors import find_stop, trim_at_stop  # torch, transformers

    text, hit = trim_at_stop(decode(row), stops)
    if hit:  # the first prefix of the row whose text holds a stop string
        n = next(k for k in range(1, len(row) + 1) if find_stop(decode(row[:k]), stops) is not None)
        return Output(text.strip(), row[:n], "stop")
    end = next((k for k, t in enumerate(row) if t in eos), None)
    if end is not None:
        return Output(text.strip(), row[:end + 1], "eos")
    return Output(text.strip(), row, "length")  # a row that never ended runs to the batch's full width


class _progress_bar:
    """``with _progress_bar(show, total) as advance: advance(k)``: a rich bar with ETA, or nothing."""

    def __init__(self, show: bool, total: int):
        self.show, self.total, self.bar = show, total, None

    def __enter__(self) -> Callable[[int], None]:
        if not self.show:
            return lambda k: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self.bar.start()
        task = self.bar.add_task("generate", total=self.total)
        return lambda k: self.bar.advance(task, k)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


class _SharedStreamer:
    """A streamer that a deep copy leaves as it is (it forwards ``put``/``end`` to the one it wraps)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def put(self, value: Any) -> None:
        self.inner.put(value)

    def end(self) -> None:
        self.inner.end()

    def __deepcopy__(self, memo: dict) -> _SharedStreamer:
        return self


_SHARED: dict[type, type] = {}


def _shared_types(*bases: type) -> list[type]:
    """Subclasses of ``bases`` (transformers' processor and criteria lists) that a deep copy leaves as they are."""
    for base in bases:
        if base not in _SHARED:
            _SHARED[base] = type(f"Shared{base.__name__}", (base,), {"__deepcopy__": lambda self, memo: self})
    return [_SHARED[b] for b in bases]
