"""Tokenizer training: BPE, Unigram or WordPiece on a corpus, saved as a transformers tokenizer folder.

Order of work in ``train_tokenizer``: check the target folder, the texts, the comparison tokenizer and that
``vocab_size`` can hold the special tokens, the extra tokens and the corpus alphabet (any refusal names the field
or file and leaves nothing behind) -> train with the Hugging Face ``tokenizers`` library -> measure fertility
(tokens per whitespace word) on held-out text beside the comparison tokenizer -> write ``tokenizer.json``,
``tokenizer_config.json``, ``tokenizer_report.json`` and ``tokenizer_report.md`` into a temporary folder beside the
target and rename it into place, so a killed run leaves the old folder or the new one, never half of one.

The three pipelines:

- ``bpe``: byte-level BPE (GPT-2's scheme): every text is bytes first, so no character is unknown and decoding
  gives the text back exactly (no normaliser unless ``lowercase``).
- ``unigram``: SentencePiece's Unigram language model with the Metaspace pre-tokenizer (a space becomes ``▁``)
  and NFKC normalisation; characters never seen in training become the unknown token.
- ``wordpiece``: BERT's WordPiece (``##`` continuation pieces) with BERT's normaliser and pre-tokenizer, which
  splits punctuation off words; unseen characters become the unknown token.

Special tokens take the first ids in the order pad, unk, bos, eos (then mask when set), then the extra tokens
(speaker or chat tags), which are added tokens kept whole and never split, matched before normalisation (so
``#Person1#`` stays one token under ``lowercase``), and not special: ``decode(..., skip_special_tokens=True)``
keeps them. Extra tokens are cut out of the training text, so no merge is spent on pieces of them.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from llmcycle.core.config import DataConfig, StageConfig
from llmcycle.core.errors import ConfigError, DataError
from llmcycle.core.files import atomic_write_json, atomic_write_text
from llmcycle.data import load_data_from_config
from llmcycle.models.info import load_tokenizer
from llmcycle.report import md_table

logger = logging.getLogger("llmcycle")

Algorithm = Literal["bpe", "unigram", "wordpiece"]

TEXT_SUFFIXES = (".txt", ".text", ".md")
"""Plain-text corpus files: one document per blank-line-separated paragraph."""

TABLE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
"""Corpus files read by ``llmcycle.data.load_data``: one document per row, from the ``column`` asked for."""

REPORT_JSON = "tokenizer_report.json"
REPORT_MD = "tokenizer_report.md"


class SpecialTokens(StageConfig):
    """The special tokens every algorithm gets (the same defaults for all three; give BERT-style names such as
    ``[CLS]``/``[SEP]``/``[PAD]``/``[UNK]``/``[MASK]`` for a WordPiece tokenizer of an encoder if you prefer)."""

    pad: str = Field("<pad>", min_length=1, description="Padding token (id 0).")
    unk: str = Field("<unk>", min_length=1, description="Unknown token: what Unigram and WordPiece give a character "
                     "they never saw in training (byte-level BPE never needs it).")
    bos: str = Field("<s>", min_length=1, description="Beginning-of-sequence token.")
    eos: str = Field("</s>", min_length=1, description="End-of-sequence token.")
    mask: str | None = Field(None, min_length=1, description="Mask token for masked-LM pre-training (e.g. <mask>); "
                             "None: no mask token.")

    def ordered(self) -> list[str]:
        """The tokens in id order (pad, unk, bos, eos, mask), each once (bos may equal eos, as in GPT-2)."""
        tokens = [self.pad, self.unk, self.bos, self.eos] + ([self.mask] if self.mask else [])
        return list(dict.fromkeys(tokens))


class TokenizerTrainConfig(StageConfig):
    """Train a tokenizer (``llmcycle tokenizer train``): algorithm, vocabulary, special tokens, held-out report."""

    algorithm: Algorithm = Field("bpe", description="bpe (byte-level: no unknown characters, exact round trip), "
                                 "unigram (SentencePiece-style, Metaspace) or wordpiece (BERT-style, ## pieces).")
    vocab_size: int = Field(8000, gt=0, description="Target vocabulary size, special and extra tokens included; it "
                            "must hold them plus the alphabet (256 bytes for bpe, the corpus characters otherwise). "
                            "A small corpus may end below it; near that minimum Unigram and WordPiece end above "
                            "it: the report gives both.")
    min_frequency: int = Field(2, ge=1, description="bpe and wordpiece: a merge must be seen this many times in the "
                               "corpus (unigram ignores it).")
    lowercase: bool = Field(False, description="Lower-case text before tokenizing (extra tokens keep their case).")
    special_tokens: SpecialTokens = Field(default_factory=SpecialTokens, description="Names of the special tokens; "
                                          "they take the first ids in the order pad, unk, bos, eos, mask.")
    extra_tokens: list[str] = Field(default_factory=list, description="Tokens kept whole, after the special ids: "
                                    "speaker tags such as DialogSum's #Person1#..#Person9#, or chat tags. Not "
                                    "special: decoding with skip_special_tokens keeps them.")
    template: Literal["bos", "bos_eos", "eos", "none"] = Field(
        "bos", description="What encoding with add_special_tokens=True puts around a text: bos (causal LMs: a "
        "prompt must not end in eos), bos_eos, eos (T5-style) or none.")
    model_max_length: int = Field(1024, gt=0, description="Longest input the tokenizer declares "
                                  "(tokenizer.model_max_length).")
    heldout_fraction: float = Field(0.1, ge=0, lt=1, description="Share of the corpus documents held out of "
                                    "training (seeded) for the fertility report when no held-out text is given; 0: "
                                    "train on everything and report no fertility.")
    seed: int = Field(0, description="Seed of the held-out draw.")
    compare: str | None = Field("builtin:minilm-seq2seq", min_length=1, description="Tokenizer measured beside the "
                                "trained one: a tokenizer folder, a hub id or builtin:NAME (default: the builtin "
                                "models' offline WordPiece tokenizer); None: none.")

    @field_validator("extra_tokens")
    @classmethod
    def _distinct_tokens(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not tag.strip():
                raise ValueError("an extra token is empty or blank")
        repeated = sorted({t for t in value if value.count(t) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return value

    @model_validator(mode="after")
    def _extras_not_special(self) -> TokenizerTrainConfig:
        clash = [t for t in self.extra_tokens if t in self.special_tokens.ordered()]
        if clash:
            raise ValueError(f"extra_tokens: {', '.join(clash)} is already a special token")
        return self

    def all_special(self) -> list[str]:
        """Special tokens then extra tokens, in id order."""
        return self.special_tokens.ordered() + list(self.extra_tokens)


@dataclass
class TrainedTokenizer:
    """What ``train_tokenizer`` made: the saved folder, the tokenizer and the report."""

    path: Path
    tokenizer: Any  # transformers PreTrainedTokenizerFast, as saved (AutoTokenizer.from_pretrained(path) is the same)
    report: dict[str, Any]  # what tokenizer_report.json holds
    markdown: str  # what tokenizer_report.md holds

    @property
    def fertility(self) -> list[dict[str, Any]]:
        """One row per tokenizer measured on the held-out text (trained first); empty without held-out text."""
        return self.report["fertility"]


# ---------------------------------------------------------------------------------------------- corpus


def corpus_texts(paths: Sequence[str | os.PathLike[str]] = (), *, column: str | None = None,
                 data: str | DataConfig | None = None, split: str = "train") -> list[str]:
    """The documents of a corpus, in order: files, or one split of a data set.

    Args:
        paths: ``.txt``/``.text``/``.md`` files (one document per blank-line-separated paragraph, so a multi-line
            dialogue stays one document), ``.jsonl``/``.json``/``.csv``/``.parquet`` files (one document per row,
            from ``column``; every split a file holds), or folders of ``.txt`` files.
        column: the field holding the text in table files or ``data`` (DialogSum: ``dialogue``).
        data: instead of ``paths``: a data source as ``llmcycle.data.load_data`` takes it (``builtin:dialogues``, a
            folder of split files, a hub id) or a ``DataConfig``; its ``split`` is read.
        split: the split of ``data`` to read.

    Rows whose text is empty or missing are skipped (and counted in the log).

    Raises:
        DataError: a missing or unreadable file, an unsupported file type, a missing column (the columns are
            listed), or no text at all.
        ConfigError: both or neither of ``paths`` and ``data``, or a table without ``column``.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if bool(paths) == (data is not None):
        raise ConfigError("corpus: give either files (paths) or a data source (data), not both and not neither")
    if data is not None:
        source = data.source if isinstance(data, DataConfig) else str(data)
        if column is None and not isinstance(data, DataConfig):
            raise ConfigError(f"column: {source} is a data set; say which column holds the text (--column)")
        texts = _table_texts(source, column, data if isinstance(data, DataConfig) else None, split)
    else:
        texts = []
        for path in _expand(paths):
            if path.suffix.lower() in TABLE_SUFFIXES:
                if column is None:
                    raise ConfigError(f"column: {path} is a table; say which column holds the text (--column)")
                texts += _table_texts(str(path), column, None, None)
            else:
                texts += _text_documents(path)
    if not texts:
        where = data.source if isinstance(data, DataConfig) else data or ", ".join(map(str, paths))
        raise DataError(f"{where}: the corpus holds no text (every document is empty)")
    return texts


def _expand(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files to read: each path checked to exist and be readable as text or a table; folders give their .txt files."""
    files: list[Path] = []
    for item in paths:
        path = Path(item).expanduser()
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
            if not inside:
                raise DataError(f"{path}: folder holds no .txt files")
            files += inside
        elif not path.exists():
            raise DataError(f"{path}: no such file")
        elif path.suffix.lower() not in TEXT_SUFFIXES + TABLE_SUFFIXES:
            raise DataError(f"{path}: unsupported file type '{path.suffix or '(no suffix)'}'; use .txt (plain text) "
                            "or .jsonl/.json/.csv/.parquet with a column")
        else:
            files.append(path)
    return files


def _text_documents(path: Path) -> list[str]:
    """The blank-line-separated paragraphs of a text file, stripped, empty ones dropped."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return [doc.strip() for doc in re.split(r"\n[ \t\r\f\v]*\n", text) if doc.strip()]


def _table_texts(source: str, column: str | None, cfg: DataConfig | None, split: str | None) -> list[str]:
    """The ``column`` of every row (of ``split`` when given), read with ``llmcycle.data.load_data``."""
    fields: dict[str, Any] = {"require_references": False, "on_bad_rows": "skip"}
    if column is not None:
        fields["input_column"] = column
    if split is not None:
        fields["split"] = split
    base = cfg.model_dump() if cfg is not None else {"source": source}
    data_cfg = DataConfig.from_dict({**base, **fields}, where="corpus")
    try:
        loaded = load_data_from_config(data_cfg)
    except DataError as exc:  # the loader speaks of its own field names; the corpus has one: column
        raise DataError(str(exc).replace("(set input_column)", "(set column / --column)")) from None
    return [text for dataset in loaded.values() for text in dataset["input"]]


def split_heldout(texts: Sequence[str], fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """``(train, heldout)``: a seeded ``fraction`` of the documents held out, each side in corpus order.

    At least one document stays for training; with fewer than two documents nothing is held out."""
    count = min(int(round(len(texts) * fraction)), len(texts) - 1) if fraction > 0 else 0
    if count <= 0:
        return list(texts), []
    held = set(random.Random(seed).sample(range(len(texts)), count))
    return [t for i, t in enumerate(texts) if i not in held], [t for i, t in enumerate(texts) if i in held]


# ---------------------------------------------------------------------------------------------- fertility


def fertility(tokenizer: Any, texts: Sequence[str]) -> dict[str, Any]:
    """How finely ``tokenizer`` cuts ``texts``: tokens per whitespace-separated word (fertility; lower is coarser,
    so more text fits a context window), the share of unknown tokens, and the vocabulary size (added tokens
    included). No special tokens are added around the texts."""
    texts = [t for t in texts if t.strip()]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # straight to Rust (no model_max_length warnings), on a copy without padding and
        from tokenizers import Tokenizer  # truncation, which a saved tokenizer may carry (the builtin pads)

        backend = Tokenizer.from_str(backend.to_str())
        backend.no_padding()
        backend.no_truncation()
        ids = [enc.ids for enc in backend.encode_batch(texts, add_special_tokens=False)]
    else:
        ids = tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"]
    tokens = sum(len(row) for row in ids)
    words = sum(len(t.split()) for t in texts)
    unk = getattr(tokenizer, "unk_token_id", None)
    unknown = sum(row.count(unk) for row in ids) if unk is not None else 0
    return {
        "vocab_size": len(tokenizer),
        "documents": len(texts),
        "words": words,
        "tokens": tokens,
        "tokens_per_word": tokens / words if words else 0.0,
        "unknown_share": unknown / tokens if tokens else 0.0,
    }


def fertility_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table of fertility rows (each with a ``tokenizer`` name), in the order given."""
    return md_table(
        ["tokenizer", "vocab size", "tokens per word", "unknown tokens", "tokens", "words"],
        [[r["tokenizer"], f"{r['vocab_size']:,}", f"{r['tokens_per_word']:.3f}", f"{r['unknown_share']:.2%}",
          f"{r['tokens']:,}", f"{r['words']:,}"] for r in rows])


def compare_report(tokenizers: Mapping[str, Any], texts: Sequence[str]) -> tuple[list[dict[str, Any]], str]:
    """Fertility of each named tokenizer on the same ``texts``: the rows and their Markdown table (vocab size vs
    tokens per word, side by side)."""
    rows = [{"tokenizer": name, **fertility(tok, texts)} for name, tok in tokenizers.items()]
    return rows, fertility_table(rows)


# ---------------------------------------------------------------------------------------------- training


def train_tokenizer(texts: Iterable[str], cfg: TokenizerTrainConfig | None = None,
                    out_dir: str | os.PathLike[str] = "tokenizer", *, heldout: Sequence[str] | None = None,
                    overwrite: bool = False) -> TrainedTokenizer:
    """Train a tokenizer on ``texts`` and save it to ``out_dir`` as a transformers tokenizer folder.

    Args:
        texts: the corpus documents (e.g. from ``corpus_texts``); blank ones are dropped.
        cfg: the options (default ``TokenizerTrainConfig()``: byte-level BPE, 8,000 tokens).
        out_dir: the folder to write; it must not exist or be empty, unless ``overwrite``.
        heldout: documents to measure fertility on; None: hold out ``cfg.heldout_fraction`` of ``texts``.
        overwrite: replace a non-empty ``out_dir`` (only once the new folder is complete).

    Returns:
        The folder, the tokenizer (``AutoTokenizer.from_pretrained(out_dir)`` reloads it: same ids for the same
        texts) and the report also written to ``tokenizer_report.json`` / ``.md``.

    Raises:
        ConfigError: the folder exists and is not empty, or ``vocab_size`` cannot hold the special tokens, extra
            tokens and alphabet.
        DataError: no text to train on, or empty held-out text.
        ModelSourceError: the comparison tokenizer cannot be loaded.
    """
    cfg = cfg if cfg is not None else TokenizerTrainConfig()
    out = Path(out_dir).expanduser()
    check_out_dir(out, overwrite)
    corpus = [t for t in texts if isinstance(t, str) and t.strip()]
    if not corpus:
        raise DataError("corpus: no text to train on (0 non-empty documents)")
    if heldout is not None:
        heldout = [t for t in heldout if isinstance(t, str) and t.strip()]
        if not heldout:
            raise DataError("heldout: no held-out text (0 non-empty documents)")
        train, held, held_from = corpus, heldout, "given"
    else:
        train, held = split_heldout(corpus, cfg.heldout_fraction, cfg.seed)
        held_from = f"{cfg.heldout_fraction:g} of the corpus (seed {cfg.seed})" if held else "none"
    specials = cfg.all_special()
    backend, trainer = _pipeline(cfg, specials)
    _check_vocab_size(cfg, specials, backend, train)
    other = load_tokenizer(cfg.compare) if held and cfg.compare else None  # a bad source fails before work

    started = time.perf_counter()
    logger.info("training a %s tokenizer of %d tokens on %d documents", cfg.algorithm, cfg.vocab_size, len(train))
    try:
        backend.train_from_iterator(_without(train, cfg.extra_tokens), trainer=trainer, length=len(train))
    except Exception as exc:  # noqa: BLE001 - the trainers raise plain Exceptions; a too-small vocabulary is ours
        if "not large enough" in str(exc):
            raise ConfigError(f"vocab_size: {cfg.vocab_size} is too small for this corpus ({exc})") from None
        raise
    seconds = time.perf_counter() - started
    fast = _finish(backend, cfg, specials)
    if len(fast) != cfg.vocab_size:
        logger.warning("%s ended with %d tokens, not the %d asked for (%s)", cfg.algorithm, len(fast), cfg.vocab_size,
                       "the corpus has too few distinct pieces" if len(fast) < cfg.vocab_size else
                       "a vocabulary this small is below what the trainer keeps: every character"
                       + (", both as a word start and as a ## piece" if cfg.algorithm == "wordpiece" else ""))
    logger.info("trained in %.1f s: %d tokens", seconds, len(fast))

    rows: list[dict[str, Any]] = []
    if held:
        named = {f"trained {cfg.algorithm} ({out.name})": fast}
        if other is not None:
            named[str(cfg.compare)] = other
        rows = compare_report(named, held)[0]
    report = {
        "algorithm": cfg.algorithm,
        "vocab_size_requested": cfg.vocab_size,
        "vocab_size": len(fast),
        "special_tokens": {name: {"token": tok, "id": fast.convert_tokens_to_ids(tok)}
                           for name, tok in cfg.special_tokens.model_dump().items() if tok is not None},
        "extra_tokens": {tok: fast.convert_tokens_to_ids(tok) for tok in cfg.extra_tokens},
        "train_documents": len(train),
        "train_words": sum(len(t.split()) for t in train),
        "heldout_documents": len(held),
        "heldout_from": held_from,
        "train_seconds": round(seconds, 3),
        "fertility": rows,
        "config": cfg.model_dump(),
    }
    markdown = _report_markdown(report)
    _write_folder(out, overwrite, fast, report, markdown)
    logger.info("saved the tokenizer to %s", out)
    return TrainedTokenizer(out, fast, report, markdown)


def check_out_dir(out: str | os.PathLike[str], overwrite: bool = False) -> None:
    """Refuse (``ConfigError``) an ``out`` that is a file, or a non-empty folder unless ``overwrite``."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out: {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"out: {out} exists and is not empty; choose another folder, or overwrite (--overwrite)")


def _pipeline(cfg: TokenizerTrainConfig, specials: list[str]) -> tuple[Any, Any]:
    """An untrained ``tokenizers.Tokenizer`` (model, normaliser, pre-tokenizer, decoder) and its trainer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    unk = cfg.special_tokens.unk
    common = {"vocab_size": cfg.vocab_size, "special_tokens": specials, "show_progress": False}
    lower = [normalizers.Lowercase()] if cfg.lowercase else []
    if cfg.algorithm == "bpe":
        tok = Tokenizer(models.BPE())  # no unk: every byte is in the alphabet
        tok.normalizer = normalizers.Sequence(lower) if lower else None
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(min_frequency=cfg.min_frequency,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), **common)
    elif cfg.algorithm == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), *lower])
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        trainer = trainers.UnigramTrainer(unk_token=unk, **common)
    else:
        tok = Tokenizer(models.WordPiece(unk_token=unk))
        tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                    strip_accents=None, lowercase=cfg.lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
        trainer = trainers.WordPieceTrainer(min_frequency=cfg.min_frequency, continuing_subword_prefix="##", **common)
    return tok, trainer


def _alphabet(backend: Any, cfg: TokenizerTrainConfig, texts: Sequence[str]) -> int:
    """Characters the vocabulary must hold: the 256 bytes for byte-level BPE, else the distinct normalised
    non-space characters of the training text (plus ``▁`` for Unigram)."""
    if cfg.algorithm == "bpe":
        return 256
    normalize = backend.normalizer.normalize_str if backend.normalizer is not None else str
    chars: set[str] = set()
    for text in _without(texts, cfg.extra_tokens):
        chars.update(normalize(text))
    chars = {c for c in chars if not c.isspace()} | ({"▁"} if cfg.algorithm == "unigram" else set())
    return len(chars)


def _check_vocab_size(cfg: TokenizerTrainConfig, specials: list[str], backend: Any, texts: Sequence[str]) -> None:
    n_special = len(cfg.special_tokens.ordered())
    alphabet = _alphabet(backend, cfg, texts)
    need = len(specials) + alphabet
    if cfg.vocab_size < need:
        what = "the 256 bytes" if cfg.algorithm == "bpe" else f"the {alphabet} characters of the corpus"
        raise ConfigError(
            f"vocab_size: {cfg.vocab_size} cannot hold the {n_special} special tokens, {len(cfg.extra_tokens)} "
            f"extra tokens and {what}; use at least {need}")


def _without(texts: Iterable[str], extra: Sequence[str]) -> Iterable[str]:
    """``texts`` with the extra tokens cut out (they are added whole; no merge should be spent on them)."""
    if not extra:
        yield from texts
        return
    pattern = re.compile("|".join(re.escape(t) for t in sorted(extra, key=len, reverse=True)))
    for text in texts:
        yield pattern.sub(" ", text)


def _finish(backend: Any, cfg: TokenizerTrainConfig, specials: list[str]) -> Any:
    """The trained tokenizer with its template, extra tokens made non-special, wrapped for transformers."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    sp = cfg.special_tokens
    ids = {tok: backend.token_to_id(tok) for tok in specials}
    single = {"bos": f"{sp.bos} $A", "bos_eos": f"{sp.bos} $A {sp.eos}", "eos": f"$A {sp.eos}", "none": "$A"}
    pair = {"bos": f"{sp.bos} $A $B", "bos_eos": f"{sp.bos} $A {sp.eos} $B {sp.eos}", "eos": f"$A {sp.eos} $B {sp.eos}",
            "none": "$A $B"}
    used = [t for t in dict.fromkeys([sp.bos, sp.eos]) if t in single[cfg.template] + pair[cfg.template]]
    template = processors.TemplateProcessing(single=single[cfg.template], pair=pair[cfg.template],
                                             special_tokens=[(t, ids[t]) for t in used])
    if cfg.algorithm == "bpe":  # keep ByteLevel's offsets handling ahead of the template
        backend.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False), template])
    else:
        backend.post_processor = template
    state = json.loads(backend.to_str())
    for added in state["added_tokens"]:  # the trainer declares every reserved token special; extras are not
        if added["content"] in cfg.extra_tokens:
            added["special"] = False
    backend = Tokenizer.from_str(json.dumps(state))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=sp.bos, eos_token=sp.eos, pad_token=sp.pad, unk_token=sp.unk,
        **({"mask_token": sp.mask} if sp.mask else {}), model_max_length=cfg.model_max_length,
        clean_up_tokenization_spaces=False, model_input_names=["input_ids", "attention_mask"])


def _report_markdown(report: Mapping[str, Any]) -> str:
    special = ", ".join(f"{v['token']} = {v['id']}" for v in report["special_tokens"].values())
    extra = ", ".join(f"{t} = {i}" for t, i in report["extra_tokens"].items()) or "none"
    lines = [
        f"# Tokenizer: {report['algorithm']}, {report['vocab_size']:,} tokens",
        "",
        f"- vocabulary: {report['vocab_size']:,} tokens ({report['vocab_size_requested']:,} asked for)",
        f"- trained on {report['train_documents']:,} documents ({report['train_words']:,} words) in "
        f"{report['train_seconds']:.1f} s",
        f"- special tokens: {special}",
        f"- extra tokens: {extra}",
        f"- held-out text: {report['heldout_documents']:,} documents ({report['heldout_from']})",
        "",
    ]
    if report["fertility"]:
        lines += ["## Fertility on held-out text", "",
                  "Tokens per whitespace-separated word: lower means shorter sequences for the same text.", "",
                  fertility_table(report["fertility"])]
    else:
        lines += ["No held-out text, so no fertility was measured.", ""]
    return "\n".join(lines)


def _write_folder(out: Path, overwrite: bool, fast: Any, report: dict[str, Any], markdown: str) -> None:
    """Everything into a temporary folder beside ``out``, then renamed into place (the old folder is removed only
    once the new one is complete)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    old: Path | None = None
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the tokenizer folder is an ordinary one
        fast.save_pretrained(str(tmp))
        atomic_write_json(tmp / REPORT_JSON, report)
        atomic_write_text(tmp / REPORT_MD, markdown)
        if out.exists():
            check_out_dir(out, overwrite)  # unchanged since the start, unless another process wrote there
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
            os.replace(out, old / out.name)
        os.replace(tmp, out)
    except BaseException:
        if old is not None and not out.exists():
            os.replace(old / out.name, out)  # put the old folder back
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


__all__ = [
    "SpecialTokens", "TokenizerTrainConfig", "TrainedTokenizer", "check_out_dir", "compare_report", "corpus_texts",
    "fertility", "fertility_table", "split_heldout", "train_tokenizer",
]
