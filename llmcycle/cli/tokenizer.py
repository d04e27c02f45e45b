"""``llmcycle tokenizer train``: train a BPE, Unigram or WordPiece tokenizer on a corpus and print its fertility
beside an existing tokenizer (``llmcycle.pretrain.tokenizer``). Option help comes from the config fields."""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from llmcycle.cli.output import console, table
from llmcycle.cli.output import field_help as _field_help
from llmcycle.data.sources import split_key
from llmcycle.models.tokenizer import SPEAKER_TAGS
from llmcycle.pretrain.tokenizer import TokenizerTrainConfig, check_out_dir, corpus_texts, train_tokenizer


def field_help(name: str, extra: str = "") -> str:
    return _field_help(TokenizerTrainConfig, name, extra)


def tokenizer_train_cmd(
    corpus: Optional[List[str]] = typer.Argument(
        None, help="Corpus files: .txt (one document per blank-line-separated paragraph), .jsonl/.json/.csv/.parquet "
        "(one document per row, from --column), or folders of .txt files. Or use --data."),
    out: str = typer.Option(..., "--out", "-o", help="Folder to write the tokenizer into (tokenizer.json, "
                            "tokenizer_config.json, tokenizer_report.json/.md); refused when it exists and is not "
                            "empty, unless --overwrite."),
    data: Optional[str] = typer.Option(None, help="Instead of files: a data source (builtin:dialogues, a folder of "
                                       "split files, a hub id); its --split is the corpus. Needs --column."),
    column: Optional[str] = typer.Option(None, help="The field holding the text in table files and --data "
                                         "(DialogSum: dialogue)."),
    split: str = typer.Option("train", help="Split of --data to train on."),
    algorithm: str = typer.Option("bpe", help=field_help("algorithm")),
    vocab_size: int = typer.Option(8000, help=field_help("vocab_size")),
    min_frequency: int = typer.Option(2, help=field_help("min_frequency")),
    lowercase: bool = typer.Option(False, "--lowercase", help=field_help("lowercase")),
    extra_token: Optional[List[str]] = typer.Option(None, "--extra-token", help=field_help("extra_tokens",
                                                    "Repeat for several.")),
    speaker_tags: bool = typer.Option(False, "--speaker-tags", help="Add DialogSum's speaker tags #Person1#.."
                                      "#Person9# to the extra tokens."),
    template: str = typer.Option("bos", help=field_help("template")),
    model_max_length: int = typer.Option(1024, help=field_help("model_max_length")),
    heldout: Optional[str] = typer.Option(None, help="Held-out text for the fertility report: a file read like the "
                                          "corpus, or with --data a split name (validation); default: "
                                          "--heldout-fraction of the corpus."),
    heldout_fraction: float = typer.Option(0.1, help=field_help("heldout_fraction")),
    seed: int = typer.Option(0, help=field_help("seed")),
    compare: str = typer.Option("builtin:minilm-seq2seq", help=field_help("compare", "'none': no comparison.")),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out folder (only once the new "
                                   "one is complete)."),
) -> None:
    """Train a BPE, Unigram or WordPiece tokenizer; save it as a transformers tokenizer folder; print vocabulary size
    vs tokens per word on held-out text beside an existing tokenizer."""
    extras = list(extra_token or [])
    if speaker_tags:
        extras += [t for t in SPEAKER_TAGS if t not in extras]
    fields: dict[str, Any] = {
        "algorithm": algorithm, "vocab_size": vocab_size, "min_frequency": min_frequency, "lowercase": lowercase,
        "extra_tokens": extras, "template": template, "model_max_length": model_max_length,
        "heldout_fraction": heldout_fraction, "seed": seed,
        "compare": None if compare.strip().lower() in ("none", "") else compare,
    }
    cfg = TokenizerTrainConfig.from_dict(fields, where="tokenizer train")
    check_out_dir(out, overwrite)  # before reading a large corpus
    texts = corpus_texts(corpus or [], column=column, data=data, split=split)
    held = None
    if heldout is not None:
        if data is not None and split_key(heldout) is not None:
            held = corpus_texts(column=column, data=data, split=heldout)
        else:
            held = corpus_texts([heldout], column=column)
    result = train_tokenizer(texts, cfg, out, heldout=held, overwrite=overwrite)
    report = result.report
    console.print(f"trained {cfg.algorithm}: {report['vocab_size']:,} tokens ({cfg.vocab_size:,} asked for) on "
                  f"{report['train_documents']:,} documents in {report['train_seconds']:.1f} s")
    if result.fertility:
        rows = [(r["tokenizer"], f"{r['vocab_size']:,}", f"{r['tokens_per_word']:.3f}", f"{r['unknown_share']:.2%}")
                for r in result.fertility]
        console.print(table(f"fertility on held-out text ({report['heldout_documents']:,} documents, "
                            f"{report['heldout_from']})", rows,
                            ("tokenizer", "vocab size", "tokens per word", "unknown tokens")))
    console.print(f"saved: {result.path} (load with transformers.AutoTokenizer.from_pretrained)")
