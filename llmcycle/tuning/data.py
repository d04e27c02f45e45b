"""Instruction data: rows -> prompt/completion pairs (templates) -> token ids with masked labels.

Labels are ``-100`` wherever the loss must not look: on padding always, and for decoder-only
models on the prompt tokens (the model learns the completion, not to echo the prompt).
Padding is dynamic: ``PadCollator`` pads each batch to its own longest row, on the right.

Tokenizer conventions (offline WordPiece of the builtins, and real tokenizers):

* seq2seq labels drop a leading ``[CLS]`` (it is the decoder start token, which the model
  prepends itself when it shifts labels right) and keep the trailing ``[SEP]`` / ``</s>`` as EOS;
* causal rows are ``prompt ids + completion ids + EOS``; the prompt keeps its BOS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from llmcycle.core.errors import DataError
from llmcycle.prompts import get_template
from llmcycle.prompts.budget import count_tokens, truncate_to_fit
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


def _lead(template: Any) -> str:
    """The literal text before the first placeholder of the template's target (``"\n{summary}"`` -> newline)."""
    import string

    first = next(iter(string.Formatter().parse(template.target or "")), None)
    return first[0] if first else ""


def to_pairs(rows: Iterable[Mapping[str, Any]], templates: Sequence[str] = ("none",)) -> list[Pair]:
    """One prompt/completion pair per row: row ``i`` is rendered with template ``i mod len(templates)``.

    The completion is the row's first reference (``references[0]``, as ``load_data`` provides).
    """
    tmpls = [get_template(t) for t in templates]
    if not tmpls:
        raise DataError("templates: give at least one template name")
    pairs = []
    for i, row in enumerate(rows):
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


def tokenize_pairs(pairs: Sequence[Pair], tokenizer: Any, kind: str, max_input_tokens: int,
                   max_target_tokens: int) -> Tokenized:
    """``input_ids``, ``attention_mask`` and ``labels`` per pair (unpadded), plus a truncation report."""
    if kind not in ("seq2seq", "causal"):
        raise DataError(f"tuning needs a seq2seq or causal model, not a {kind} model")
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
                  max_input_tokens: int, max_target_tokens: int) -> tuple[Any, TruncationReport]:
    """A ``datasets.Dataset`` of token ids (with a ``length`` column for length grouping) and its report."""
    from datasets import Dataset

    tok = tokenize_pairs(to_pairs(rows, templates), tokenizer, kind, max_input_tokens, max_target_tokens)
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
