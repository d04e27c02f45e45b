"""Pre-training data: a corpus of documents, packed into fixed blocks, and the three objectives' collators.

- **Packing**: every document is tokenized without special tokens and followed by the end-of-document
  token (eos, or [SEP] for BERT-style vocabularies), and the stream is cut into blocks of exactly
  ``block_size`` tokens (the tail that does not fill a block is dropped and counted). A block can hold the
  end of one document and the start of the next; the separator marks the boundary, as in GPT-2 and
  BERT pre-training. MLM blocks are ``[CLS] ... [SEP]`` around ``block_size - 2`` stream tokens.
- **clm**: labels are the inputs (the model shifts them).
- **mlm**: BERT's masking, 15% of the non-special tokens: 80% ``[MASK]``, 10% a random token, 10% kept.
  Written here rather than through ``DataCollatorForLanguageModeling`` so that held-out blocks can be
  masked once with their own seeded generator (the same masks before and after training).
- **span**: T5's span corruption (Raffel et al. 2020, section 3.1.4): ``noise_density`` of the tokens in
  spans of mean length ``mean_span``; each span is one sentinel in the input, and the targets are the
  sentinels followed by the spans they hide. Hand-written after the reference ``random_spans_noise_mask``
  (t5 / the transformers Flax example script): no maintained library exposes it as a collator.

The random draws of a training sample come from a generator seeded by the run's seed and the sample's number
(``BlockDataset``), not from torch's global generator: the data loader fetches one batch ahead of the step a
checkpoint records, so global draws would differ after a resume. A resumed run draws the same masks an
uninterrupted one would.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from llmcycle.core.errors import ConfigError, DataError

log = logging.getLogger("llmcycle")

GENERAL_TEXT_BUILTIN = "builtin:python-docs"


def python_docs_texts() -> list[str]:
    """The Python documentation topics shipped with Python itself (``pydoc_data.topics``): English prose about
    a general technical domain, present on every machine; the held-out 'general text' of domain adaptation."""
    from pydoc_data.topics import topics

    return [topics[name].strip() for name in sorted(topics) if topics[name].strip()]


def read_text_file(path: str | Path) -> list[str]:
    """Documents of a .txt file (blank-line-separated paragraphs) or a .jsonl file (a ``text`` field per line)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: no such file")
    try:
        raw = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if p.suffix == ".jsonl":
        docs = []
        for i, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise DataError(f"{path}:{i}: not a JSON object") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise DataError(f"{path}:{i}: each line needs a string field 'text'")
            docs.append(row["text"])
        return [d for d in docs if d.strip()]
    return [para.strip() for para in raw.split("\n\n") if para.strip()]


def general_texts(source: str) -> list[str]:
    """The documents of ``general_text``: ``builtin:python-docs`` or a file."""
    if source == GENERAL_TEXT_BUILTIN:
        return python_docs_texts()
    if source.startswith("builtin:"):
        raise ConfigError(f"general_text: unknown builtin {source!r}; valid: {GENERAL_TEXT_BUILTIN}, or a .txt file")
    return read_text_file(source)


def row_texts(rows: Any, which: str) -> list[str]:
    """The corpus of loaded data rows (``input``/``references`` after ``llmcycle.data.load_data``)."""
    docs: list[str] = []
    for row in rows:
        if which in ("input", "both") and row["input"]:
            docs.append(row["input"])
        if which in ("references", "both"):
            docs.extend(r for r in row["references"] if r)
    return docs


@dataclass
class Packed:
    """Blocks of token ids packed from documents (``blocks`` is a ``[n, block_size]`` long tensor)."""

    blocks: Any
    documents: int
    tokens: int  # stream tokens (documents + separators)
    dropped: int  # tail tokens that did not fill a block

    def summary(self) -> str:
        return (f"{self.documents:,} documents, {self.tokens:,} tokens -> {len(self.blocks):,} blocks of "
                f"{self.blocks.shape[1] if len(self.blocks) else 0} ({self.dropped:,} tail tokens dropped)")


def separator_id(tokenizer: Any, objective: str) -> int:
    """The end-of-document token: eos (clm, span) or [SEP] (mlm), each the other when it is missing (a BERT
    vocabulary declares [SEP] and no eos)."""
    order = ("sep_token_id", "eos_token_id") if objective == "mlm" else ("eos_token_id", "sep_token_id")
    tok_id = next((getattr(tokenizer, a) for a in order if getattr(tokenizer, a, None) is not None), None)
    if tok_id is None:
        raise ConfigError("tokenizer: declares no eos token to separate documents (set eos_token when training it)")
    return int(tok_id)


def pack(texts: Iterable[str], tokenizer: Any, block_size: int, objective: str) -> Packed:
    """Tokenize ``texts`` and cut the stream into blocks (see the module docstring)."""
    import torch

    sep = separator_id(tokenizer, objective)
    mlm = objective == "mlm"
    inner = block_size - 2 if mlm else block_size
    if inner < 1:
        raise ConfigError(f"block_size: {block_size} is too small for {objective}")
    texts = list(texts)
    stream: list[int] = []
    batch = 1000
    for start in range(0, len(texts), batch):
        enc = tokenizer(texts[start:start + batch], add_special_tokens=False, verbose=False)["input_ids"]
        for ids in enc:
            stream.extend(ids)
            stream.append(sep)
    n = len(stream) // inner
    flat = torch.tensor(stream[: n * inner], dtype=torch.long).view(n, inner)
    if mlm:
        cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        if cls_id is None:
            raise ConfigError("tokenizer: mlm needs a [CLS] or bos token to open each block")
        flat = torch.cat([torch.full((n, 1), cls_id), flat, torch.full((n, 1), sep)], dim=1)
    return Packed(flat, len(texts), len(stream), len(stream) - n * inner)


class BlockDataset:
    """A torch-style dataset of packed blocks: item ``k`` is block ``k mod n`` with its sample number ``k``
    (rows ``{"input_ids": LongTensor[block], "sample": k}``). ``length`` is the samples a whole run draws, so
    every sample of the run has its own number, and its masks (drawn from a generator seeded by the number)
    are the same whether the run was resumed or not."""

    def __init__(self, blocks: Any, length: int | None = None) -> None:
        self.blocks = blocks
        self.length = length or len(blocks)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, k: int) -> dict[str, Any]:
        return {"input_ids": self.blocks[k % len(self.blocks)], "sample": k}


def mask_tokens(input_ids: Any, tokenizer: Any, probability: float, generator: Any = None) -> tuple[Any, Any]:
    """BERT masking of a ``[batch, len]`` tensor: (masked inputs, labels with -100 where nothing is predicted)."""
    import torch

    labels = input_ids.clone()
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    for tid in set(tokenizer.all_special_ids):
        special |= input_ids == tid
    chosen = (torch.rand(input_ids.shape, generator=generator) < probability) & ~special
    labels[~chosen] = -100
    inputs = input_ids.clone()
    roll = torch.rand(input_ids.shape, generator=generator)
    inputs[chosen & (roll < 0.8)] = tokenizer.mask_token_id
    randomize = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[randomize] = torch.randint(len(tokenizer), input_ids.shape, generator=generator)[randomize]
    return inputs, labels


def sentinel_ids(tokenizer: Any) -> list[int]:
    """The ids of ``<extra_id_0>``, ``<extra_id_1>``, ... (T5's sentinels), in that order."""
    ids = []
    for i in range(1000):
        tid = tokenizer.convert_tokens_to_ids(f"<extra_id_{i}>")
        if tid is None or tid == tokenizer.unk_token_id:
            break
        ids.append(tid)
    return ids


def add_sentinels(tokenizer: Any, n: int = 100) -> int:
    """Give a tokenizer without them T5's ``n`` sentinel tokens (special, whole); returns how many were added."""
    if sentinel_ids(tokenizer):
        return 0
    from tokenizers import AddedToken

    return tokenizer.add_tokens([AddedToken(f"<extra_id_{i}>", special=True, normalized=False) for i in range(n)],
                                special_tokens=True)


def noise_mask(length: int, density: float, mean_span: float, generator: Any = None) -> Any:
    """T5's ``random_spans_noise_mask``: a bool mask of ``length`` with ~``density`` noise in ~mean_span spans,
    starting with a non-noise span."""
    import torch

    num_noise = max(1, min(length - 1, round(length * density)))
    num_spans = max(1, round(num_noise / mean_span))
    num_clean = length - num_noise

    def segments(total: int, n: int) -> list[int]:
        # n positive parts summing to total, uniformly at random
        cuts = sorted(torch.randperm(total - 1, generator=generator)[: n - 1].tolist()) if n > 1 else []
        bounds = [0, *[c + 1 for c in cuts], total]
        return [b - a for a, b in zip(bounds, bounds[1:])]

    num_spans = min(num_spans, num_noise, num_clean)
    noise, clean = segments(num_noise, num_spans), segments(num_clean, num_spans)
    mask = torch.zeros(length, dtype=torch.bool)
    pos = 0
    for c, s in zip(clean, noise):
        pos += c
        mask[pos:pos + s] = True
        pos += s
    return mask


def corrupt_spans(block: Any, sentinels: list[int], eos: int, density: float, mean_span: float,
                  generator: Any = None) -> tuple[list[int], list[int]]:
    """(input ids, target ids) of one block under span corruption."""
    mask = noise_mask(len(block), density, mean_span, generator)
    ids = block.tolist()
    inputs: list[int] = []
    targets: list[int] = []
    span = -1
    for i, (tok, noisy) in enumerate(zip(ids, mask.tolist())):
        if noisy:
            if i == 0 or not mask[i - 1]:
                span += 1
                if span >= len(sentinels):
                    raise ConfigError(f"span: more corrupted spans ({span + 1}) than sentinel tokens "
                                      f"({len(sentinels)}); lower block_size or raise mean_span")
                inputs.append(sentinels[span])
                targets.append(sentinels[span])
            targets.append(tok)
        else:
            inputs.append(tok)
    return inputs + [eos], targets + [eos]


def sample_generator(seed: int, sample: int) -> Any:
    """The generator of one training sample's random draws (masks, spans)."""
    import torch

    return torch.Generator().manual_seed((seed * 1_000_003 + sample) % (2**63 - 1))


class Collator:
    """Batches of packed blocks for one objective (``generator``: None in training, seeded for held-out)."""

    def __init__(self, objective: str, tokenizer: Any, *, mlm_probability: float = 0.15,
                 noise_density: float = 0.15, mean_span: float = 3.0, generator: Any = None, seed: int = 0) -> None:
        self.objective, self.tokenizer, self.generator, self.seed = objective, tokenizer, generator, seed
        self.mlm_probability, self.noise_density, self.mean_span = mlm_probability, noise_density, mean_span
        if objective == "span":
            self.sentinels = sentinel_ids(tokenizer)
            if not self.sentinels:
                raise ConfigError("objective: span needs T5's sentinel tokens <extra_id_0>.. in the tokenizer")
        if objective == "mlm" and tokenizer.mask_token_id is None:
            raise ConfigError("objective: mlm needs a mask token in the tokenizer")

    def _generator(self, row: dict[str, Any]) -> Any:
        if self.generator is not None or "sample" not in row:
            return self.generator  # held-out batches: one generator for all; None: torch's global one
        return sample_generator(self.seed, int(row["sample"]))

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        ids = torch.stack([r["input_ids"] for r in rows])
        if self.objective == "clm":
            return {"input_ids": ids, "labels": ids.clone()}
        gens = [self._generator(r) for r in rows]
        if self.objective == "mlm":
            pairs = [mask_tokens(b[None], self.tokenizer, self.mlm_probability, g) for b, g in zip(ids, gens)]
            inputs, labels = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
            return {"input_ids": inputs, "attention_mask": torch.ones_like(inputs), "labels": labels}
        pad = self.tokenizer.pad_token_id
        eos = separator_id(self.tokenizer, "span")
        pairs = [corrupt_spans(b, self.sentinels, eos, self.noise_density, self.mean_span, g)
                 for b, g in zip(ids, gens)]
        n_in, n_out = max(len(p[0]) for p in pairs), max(len(p[1]) for p in pairs)
        inputs = torch.full((len(pairs), n_in), pad, dtype=torch.long)
        attention = torch.zeros_like(inputs)
        labels = torch.full((len(pairs), n_out), -100, dtype=torch.long)
        for i, (x, y) in enumerate(pairs):
            inputs[i, : len(x)] = torch.tensor(x)
            attention[i, : len(x)] = 1
            labels[i, : len(y)] = torch.tensor(y)
        return {"input_ids": inputs, "attention_mask": attention, "labels": labels}
