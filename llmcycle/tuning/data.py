"""Instruction data: rows -> prompt/completion pairs (templates) -> token ids with masked labels.

Labels are ``-100`` wherever the loss must not look: on padding always, and for decoder-only
models on the prompt tokens (the model learns the completion, not to echo the prompt).
Padding is dynamic: ``PadCollator`` pads each batch to its own longest row, on the right.

Tokenizer conventions (offline WordPiece of the builtins, and real tokenizers):

* seq2seq labels drop a leading ``[CLS]`` (it is the decoder start token, which the model
  prepends itself when it shifts labels right) and keep the trailing ``[SEP]`` / ``</s>`` as EOS;
* causal rows are ``prompt ids + completion ids + EOS``; the prompt keeps its BOS.

A model used in chat form (``llmcycle.models.chat.uses_chat``) goes through the one chat path
instead (``llmcycle.prompts.chat``): a prompt/completion row becomes a user turn and an assistant
turn, a ``messages`` row (OpenAI's shape) is its own conversation, the whole conversation is
rendered by the tokenizer's chat template and the loss falls on the assistant turns only, each
ending at its end-of-turn token, the token generation stops on (``stop_ids``: the generation
config's end ids). Evaluation and serving render the same prompt (``llmcycle check-template``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from llmcycle.core.errors import DataError
from llmcycle.prompts import get_template
from llmcycle.prompts.budget import count_tokens, truncate_to_fit
from llmcycle.prompts.chat import chat_prompt, conversation_turns, encode_conversation, plain_chat_prompt
from llmcycle.prompts.templates import resolve_field

IGNORE = -100


@dataclass
class TruncationReport:
    """How many rows were cut to fit ``max_input_tokens`` / ``max_target_tokens``, and by how much."""

    rows: int = 0
    inputs_truncated: int = 0
    targets_truncated: int = 0
    input_tokens_cut: int = 0
    target_tokens_cut: int = 0
    max_input_cut: int = 0
    max_target_cut: int = 0

    def add(self, input_cut: int, target_cut: int) -> None:
        self.rows += 1
        self.inputs_truncated += input_cut > 0
        self.targets_truncated += target_cut > 0
        self.input_tokens_cut += input_cut
        self.target_tokens_cut += target_cut
        self.max_input_cut = max(self.max_input_cut, input_cut)
        self.max_target_cut = max(self.max_target_cut, target_cut)

    def summary(self) -> str:
        return (f"{self.inputs_truncated}/{self.rows} prompts truncated ({self.input_tokens_cut} tokens cut, "
                f"at most {self.max_input_cut} from one), {self.targets_truncated}/{self.rows} completions "
                f"truncated ({self.target_tokens_cut} tokens cut, at most {self.max_target_cut})")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Pair:
    """A prompt and its completion; ``lead`` is the template's text between them (``"\n"``, ``" "``)."""

    prompt: str
    completion: str
    template: str
    lead: str = ""
    row: Mapping[str, Any] | None = field(default=None, repr=False)  # to re-render with a shorter input
    tmpl: Any = field(default=None, repr=False)
    messages: list[dict[str, str]] | None = None  # a conversation row: its turns, ending with the assistant's

    def conversation(self) -> list[dict[str, str]]:
        """The turns a chat model trains on: the row's own, else the prompt as user and completion as assistant."""
        if self.messages is not None:
            return self.messages
        return [{"role": "user", "content": self.prompt}, {"role": "assistant", "content": self.completion}]


def _lead(template: Any) -> str:
    """The literal text before the first placeholder of the template's target (``"\n{summary}"`` -> newline)."""
    import string

    first = next(iter(string.Formatter().parse(template.target or "")), None)
    return first[0] if first else ""


def to_pairs(rows: Iterable[Mapping[str, Any]], templates: Sequence[str] = ("none",)) -> list[Pair]:
    """One prompt/completion pair per row: row ``i`` is rendered with template ``i mod len(templates)``.

    The completion is the row's first reference (``references[0]``, as ``load_data`` provides). A row with a
    ``messages`` conversation (OpenAI's shape, ending with the assistant's reply) keeps its turns; its prompt
    for a model without chat form is the turns before the reply as ``role: content`` blocks.
    """
    tmpls = [get_template(t) for t in templates]
    if not tmpls:
        raise DataError("templates: give at least one template name")
    pairs = []
    for i, row in enumerate(rows):
        if isinstance(row.get("messages"), list):
            try:
                turns = conversation_turns(row["messages"], f"row {i}: messages")
            except ValueError as exc:
                raise DataError(str(exc)) from None
            if turns[-1]["role"] != "assistant" or not turns[-1]["content"].strip():
                raise DataError(f"row {i}: messages: the last turn must be the assistant's reply to train on")
            pairs.append(Pair(plain_chat_prompt(turns[:-1]), turns[-1]["content"].strip(), "messages", "\n", row,
                              None, turns))
            continue
        refs = row.get("references")
        if not refs or not isinstance(refs[0], str) or not refs[0].strip():
            raise DataError(f"row {i}: no reference to train on (references is empty); load the data with "
                            "its reference column")
        tmpl = tmpls[i % len(tmpls)]
        pairs.append(Pair(tmpl.render(row), refs[0].strip(), tmpl.name, _lead(tmpl), row, tmpl))
    return pairs


@dataclass
class Tokenized:
    """Token ids ready for the collator, and the truncation report of producing them."""

    rows: list[dict[str, list[int]]] = field(default_factory=list)
    report: TruncationReport = field(default_factory=TruncationReport)


def _cut(ids: list[int], limit: int, keep_last: int | None) -> tuple[list[int], int]:
    """``ids`` shortened to ``limit`` (keeping a trailing special token ``keep_last``), and the cut."""
    if len(ids) <= limit:
        return ids, 0
    if keep_last is not None and ids[-1] == keep_last and limit > 1:
        return ids[: limit - 1] + [keep_last], len(ids) - limit
    return ids[:limit], len(ids) - limit


def _tail_after_input(tmpl: Any) -> bool:
    """True when the template has text after its input field (an instruction a tail cut would lose)."""
    if tmpl is None or not tmpl.input_field:
        return False
    return not tmpl.text.rstrip().endswith("{" + tmpl.input_field + "}")


def _fit_input(pair: Pair, tokenizer: Any, limit: int) -> list[int] | None:
    """The prompt with only its input field shortened to fit ``limit`` tokens (None if even no input is too long)."""
    name = pair.tmpl.input_field
    text = resolve_field(pair.row, name, pair.tmpl.name)

    def fits(prefix: str) -> bool:
        return count_tokens(tokenizer, pair.tmpl.render(pair.row, {name: prefix})) <= limit

    if not fits(""):
        return None
    kept, _ = truncate_to_fit(tokenizer, text, fits)
    return list(tokenizer(pair.tmpl.render(pair.row, {name: kept}), add_special_tokens=True)["input_ids"])


def target_ids(tokenizer: Any, kind: str, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of target texts as the model learns to write (and generates) them, end token included.

    seq2seq: the tokenizer's own special tokens (T5's ``</s>``; a BERT tokenizer's ``[SEP]``, its
    leading ``[CLS]`` dropped, since that is the decoder's start token); causal: the text followed
    by the end token (``eos_token_id``, else ``sep_token_id``).
    """
    if kind == "seq2seq":
        ids = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        cls = getattr(tokenizer, "cls_token_id", None) if getattr(tokenizer, "cls_token", None) else None
        return [list(t[1:]) if cls is not None and t and t[0] == cls else list(t) for t in ids]
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    return [list(t) + [eos] for t in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def _fit_conversation(turns: list[dict[str, str]], tokenizer: Any, limit: int) -> list[dict[str, str]] | None:
    """The turns with the last user turn shortened so the chat prompt before the reply fits ``limit`` tokens."""
    k = max(i for i, t in enumerate(turns) if t["role"] == "user")

    def with_user(text: str) -> list[dict[str, str]]:
        return [*turns[:k], {**turns[k], "content": text}, *turns[k + 1:]]

    def fits(text: str) -> bool:
        return count_tokens(tokenizer, chat_prompt(tokenizer, with_user(text)[:-1])) <= limit

    if not fits(""):
        return None
    kept, _ = truncate_to_fit(tokenizer, turns[k]["content"], fits)
    return with_user(kept)


def tokenize_chat(pairs: Sequence[Pair], tokenizer: Any, max_input_tokens: int, max_target_tokens: int,
                  stop_ids: Iterable[int]) -> Tokenized:
    """A causal chat model's rows: the conversation through the chat template, labels on assistant turns only
    (``encode_conversation``). A prompt over ``max_input_tokens`` has its last user turn shortened (the
    template's markup kept); a reply over ``max_target_tokens`` is cut (and then has no end-of-turn token)."""
    out, stops = Tokenized(), list(stop_ids)
    for pair in pairs:
        turns = pair.conversation()
        ids, labels = encode_conversation(tokenizer, turns, stops)
        reply = next((k for k in range(len(labels) - 1, -1, -1) if labels[k] != IGNORE and
                      (k == 0 or labels[k - 1] == IGNORE)), len(ids))  # first token of the last reply
        in_cut = 0
        if reply > max_input_tokens:
            fitted = _fit_conversation(turns, tokenizer, max_input_tokens)
            if fitted is not None:
                ids2, labels2 = encode_conversation(tokenizer, fitted, stops)
                in_cut = len(ids) - len(ids2)
                ids, labels = ids2, labels2
                reply -= in_cut
            if reply > max_input_tokens:  # the markup alone is too long: keep the start, as plain rows do
                extra = reply - max_input_tokens
                ids, labels = ids[:max_input_tokens] + ids[reply:], labels[:max_input_tokens] + labels[reply:]
                in_cut, reply = in_cut + extra, max_input_tokens
        last = max((k for k, v in enumerate(labels) if v != IGNORE), default=reply - 1) + 1
        out_cut = max(0, last - reply - max_target_tokens)
        ids, labels = ids[:last - out_cut], labels[:last - out_cut]
        out.report.add(in_cut, out_cut)
        out.rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    return out


def tokenize_pairs(pairs: Sequence[Pair], tokenizer: Any, kind: str, max_input_tokens: int,
                   max_target_tokens: int, chat: bool = False, stop_ids: Iterable[int] = ()) -> Tokenized:
    """``input_ids``, ``attention_mask`` and ``labels`` per pair (unpadded), plus a truncation report.

    ``chat``: the model is used in chat form (``tokenize_chat`` for causal models; a seq2seq model's prompt is
    its chat prompt). ``stop_ids``: the ids generation stops on (a chat turn's labels end at the first).
    """
    if kind not in ("seq2seq", "causal"):
        raise DataError(f"tuning needs a seq2seq or causal model, not a {kind} model")
    if chat and kind == "causal":
        return tokenize_chat(pairs, tokenizer, max_input_tokens, max_target_tokens, stop_ids)
    if chat:
        pairs = [Pair(chat_prompt(tokenizer, p.conversation()[:-1]), p.completion, p.template) for p in pairs]
    out = Tokenized()
    prompts = tokenizer([p.prompt for p in pairs], add_special_tokens=True)["input_ids"]
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    # the lead keeps "Summary:" and the answer apart for BPE tokenizers (WordPiece drops it)
    targets = target_ids(tokenizer, kind, [p.completion if kind == "seq2seq" else p.lead + p.completion
                                           for p in pairs])
    sep = getattr(tokenizer, "sep_token_id", None) if kind == "seq2seq" else None
    for pair, prompt, target in zip(pairs, prompts, targets):
        fitted = None
        if len(prompt) > max_input_tokens and _tail_after_input(pair.tmpl):
            fitted = _fit_input(pair, tokenizer, max_input_tokens)  # keep the instruction after the input
        if fitted is not None:
            prompt, in_cut = fitted, len(prompt) - len(fitted)
        else:
            prompt, in_cut = _cut(list(prompt), max_input_tokens, sep or eos if kind == "seq2seq" else None)
        target, out_cut = _cut(list(target), max_target_tokens, None)
        out.report.add(in_cut, out_cut)
        if kind == "seq2seq":
            row = {"input_ids": prompt, "attention_mask": [1] * len(prompt), "labels": target}
        else:
            ids = prompt + target
            row = {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [IGNORE] * len(prompt) + target}
        out.rows.append(row)
    return out


def build_dataset(rows: Iterable[Mapping[str, Any]], tokenizer: Any, kind: str, templates: Sequence[str],
                  max_input_tokens: int, max_target_tokens: int, chat: bool = False,
                  stop_ids: Iterable[int] = ()) -> tuple[Any, TruncationReport]:
    """A ``datasets.Dataset`` of token ids (with a ``length`` column for length grouping) and its report."""
    from datasets import Dataset

    tok = tokenize_pairs(to_pairs(rows, templates), tokenizer, kind, max_input_tokens, max_target_tokens, chat,
                         stop_ids)
    for r in tok.rows:
        r["length"] = len(r["input_ids"])
    return Dataset.from_list(tok.rows), tok.report


class PadCollator:
    """Pads a batch to its longest row (right side): ids with ``pad_id``, mask with 0, labels with -100."""

    def __init__(self, pad_id: int, pad_to_multiple_of: int | None = None):
        self.pad_id = pad_id
        self.multiple = pad_to_multiple_of

    def __call__(self, features: list[Mapping[str, Any]]) -> dict[str, Any]:
        import torch

        batch: dict[str, Any] = {}
        fill = {"input_ids": self.pad_id, "attention_mask": 0, "labels": IGNORE}
        for key, value in fill.items():
            seqs = [list(f[key]) for f in features]
            width = max(len(s) for s in seqs)
            if self.multiple:
                width = -(-width // self.multiple) * self.multiple
            batch[key] = torch.tensor([s + [value] * (width - len(s)) for s in seqs], dtype=torch.long)  # (B, T)
        return batch
