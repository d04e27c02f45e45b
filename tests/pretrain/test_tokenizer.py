"""Tokenizer training (``llmcycle.pretrain.tokenizer``, ``llmcycle tokenizer train``): the three algorithms, the saved
folder and its reload, the fertility report, refusals that leave nothing behind, the command, and DialogSum."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from llmcycle.cli.tokenizer import tokenizer_train_cmd
from llmcycle.core.errors import ConfigError, DataError
from llmcycle.models.tokenizer import SPEAKER_TAGS
from llmcycle.pretrain.tokenizer import (
    REPORT_JSON,
    REPORT_MD,
    TokenizerTrainConfig,
    compare_report,
    corpus_texts,
    fertility,
    split_heldout,
    train_tokenizer,
)

ALGORITHMS = ("bpe", "unigram", "wordpiece")
DIALOGSUM_DIR = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "dialogsum").resolve()


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    """The builtin dialogues' train split: 152 DialogSum-style dialogues with #PersonN# speaker tags."""
    return corpus_texts(data="builtin:dialogues", column="dialogue")


@pytest.fixture(scope="module")
def heldout() -> list[str]:
    return corpus_texts(data="builtin:dialogues", column="dialogue", split="validation")


def config(**fields) -> TokenizerTrainConfig:
    return TokenizerTrainConfig(**{"vocab_size": 600, "extra_tokens": list(SPEAKER_TAGS), "compare": None, **fields})


@pytest.fixture(scope="module")
def trained(corpus, heldout, tmp_path_factory):
    """One tokenizer of each algorithm, trained once for the module."""
    root = tmp_path_factory.mktemp("tokenizers")
    return {alg: train_tokenizer(corpus, config(algorithm=alg), root / alg, heldout=heldout) for alg in ALGORITHMS}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_algorithm_reaches_the_vocab_size_and_reloads_with_the_same_ids(trained, heldout, algorithm):
    from transformers import AutoTokenizer

    result = trained[algorithm]
    assert len(result.tokenizer) == 600 and result.report["vocab_size"] == 600
    assert sorted(p.name for p in result.path.iterdir()) == sorted(
        ["tokenizer.json", "tokenizer_config.json", REPORT_JSON, REPORT_MD])
    reloaded = AutoTokenizer.from_pretrained(str(result.path))
    assert len(reloaded) == 600
    assert (reloaded.pad_token, reloaded.unk_token, reloaded.bos_token, reloaded.eos_token) == (
        "<pad>", "<unk>", "<s>", "</s>")
    assert (reloaded.pad_token_id, reloaded.unk_token_id, reloaded.bos_token_id, reloaded.eos_token_id) == (0, 1, 2, 3)
    assert reloaded.model_max_length == 1024
    assert reloaded(heldout)["input_ids"] == result.tokenizer(heldout)["input_ids"]
    ids = reloaded("#Person1#: Hello there.")["input_ids"]
    assert ids[0] == 2 and ids[-1] != 3  # template "bos": a prompt must not end in eos


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_speaker_tags_are_single_non_special_tokens_with_ids_after_the_special_ones(trained, algorithm):
    tok = trained[algorithm].tokenizer
    assert [tok.convert_tokens_to_ids(t) for t in SPEAKER_TAGS] == list(range(4, 13))
    ids = tok("#Person1#: hi #Person9#!", add_special_tokens=False)["input_ids"]
    assert ids[0] == 4 and 12 in ids
    assert "#Person9#" in tok.decode(ids, skip_special_tokens=True)  # added, not special: decoding keeps them
    assert trained[algorithm].report["extra_tokens"]["#Person2#"] == 5


def test_byte_level_bpe_round_trips_any_text_without_unknown_tokens(trained):
    tok = trained["bpe"].tokenizer
    text = "#Person1#: Café   au lait?\n#Person2#: 😀 Ça coûte 3,50 €\t— d'accord.\n\n"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert tok.unk_token_id not in ids


def test_unseen_characters_are_unknown_for_unigram_and_wordpiece_and_counted(trained):
    for algorithm in ("unigram", "wordpiece"):
        tok = trained[algorithm].tokenizer
        stats = fertility(tok, ["hello 漢字 there"])
        assert stats["unknown_share"] > 0 and stats["words"] == 3
    assert fertility(trained["bpe"].tokenizer, ["hello 漢字 there"])["unknown_share"] == 0


def test_larger_vocabulary_gives_lower_fertility(corpus, heldout, tmp_path):
    per_word = [train_tokenizer(corpus, config(vocab_size=size), tmp_path / str(size), heldout=heldout)
                .fertility[0]["tokens_per_word"] for size in (300, 600, 1200)]
    assert per_word[0] > per_word[1] > per_word[2] > 1


def test_template_bos_eos_wraps_the_text(corpus, tmp_path):
    tok = train_tokenizer(corpus[:40], config(template="bos_eos", heldout_fraction=0), tmp_path / "t").tokenizer
    ids = tok("a dialogue")["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id


def test_report_puts_the_trained_tokenizer_beside_the_builtin_one(corpus, tmp_path):
    result = train_tokenizer(corpus, config(compare="builtin:minilm-seq2seq", heldout_fraction=0.2), tmp_path / "tok")
    names = [row["tokenizer"] for row in result.fertility]
    assert names == ["trained bpe (tok)", "builtin:minilm-seq2seq"]
    assert result.fertility[1]["vocab_size"] == 30522 + len(SPEAKER_TAGS)
    assert result.report["heldout_documents"] == round(0.2 * len(corpus))
    assert result.report["train_documents"] == len(corpus) - result.report["heldout_documents"]
    saved = json.loads((tmp_path / "tok" / REPORT_JSON).read_text())
    assert [row["tokenizer"] for row in saved["fertility"]] == names
    assert saved["special_tokens"]["bos"] == {"token": "<s>", "id": 2}
    markdown = (tmp_path / "tok" / REPORT_MD).read_text()
    assert "| trained bpe (tok) | 600 |" in markdown and "| builtin:minilm-seq2seq | 30,531 |" in markdown


def test_compare_report_measures_every_tokenizer_on_the_same_text(trained, heldout):
    rows, table = compare_report({"a": trained["bpe"].tokenizer, "b": trained["wordpiece"].tokenizer}, heldout)
    assert [r["tokenizer"] for r in rows] == ["a", "b"]
    assert rows[0]["words"] == rows[1]["words"] == sum(len(t.split()) for t in heldout)
    assert table.count("\n") == 4 and "tokens per word" in table


def test_split_heldout_is_seeded_and_keeps_order():
    docs = [f"doc {i}" for i in range(20)]
    train, held = split_heldout(docs, 0.25, seed=3)
    assert len(held) == 5 and sorted(train + held, key=docs.index) == docs
    assert split_heldout(docs, 0.25, seed=3) == (train, held)
    assert held == sorted(held, key=docs.index)
    assert split_heldout(["only one"], 0.5) == (["only one"], [])


def test_corpus_texts_reads_paragraphs_and_table_columns(tmp_path):
    (tmp_path / "a.txt").write_text("line one\nline two\n\n  \nsecond doc\n\n\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"text": "row one"}\n{"text": ""}\n{"text": "row two"}\n', encoding="utf-8")
    assert corpus_texts([tmp_path / "a.txt", tmp_path / "b.jsonl"], column="text") == [
        "line one\nline two", "second doc", "row one", "row two"]
    assert corpus_texts([tmp_path], column="text") == ["line one\nline two", "second doc"]  # a folder: its .txt


def _entries(folder):
    return sorted(p.name for p in folder.iterdir())


def test_refusals_name_the_problem_and_leave_nothing_behind(corpus, tmp_path):
    out = tmp_path / "tok"
    with pytest.raises(DataError, match="corpus: no text"):
        train_tokenizer(["", "  \n"], config(), out)
    with pytest.raises(ConfigError, match=r"vocab_size: 100 cannot hold the 4 special tokens, 9 extra tokens and "
                                          r"the 256 bytes; use at least 269"):
        train_tokenizer(corpus, config(vocab_size=100), out)
    with pytest.raises(ConfigError, match=r"vocab_size: 60 .* characters of the corpus"):
        train_tokenizer(corpus, config(algorithm="unigram", vocab_size=60), out)
    with pytest.raises(DataError, match="heldout: no held-out text"):
        train_tokenizer(corpus, config(), out, heldout=[""])
    assert _entries(tmp_path) == []
    with pytest.raises(DataError, match=r"unknown input column 'text'; columns are: fname, dialogue, summary, topic "
                                        r"\(set column / --column\)"):
        corpus_texts(data="builtin:dialogues", column="text")
    with pytest.raises(DataError, match=f"{tmp_path / 'missing.txt'}: no such file"):
        corpus_texts([tmp_path / "missing.txt"])
    with pytest.raises(ConfigError, match="column: .*b.csv is a table"):
        (tmp_path / "b.csv").write_text("text\nhello\n", encoding="utf-8")
        corpus_texts([tmp_path / "b.csv"])


def test_an_existing_folder_is_kept_unless_overwrite(corpus, tmp_path):
    out = tmp_path / "tok"
    out.mkdir()
    (out / "mine.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(ConfigError, match="tok exists and is not empty; .*--overwrite"):
        train_tokenizer(corpus[:40], config(), out)
    assert _entries(tmp_path) == ["tok"] and _entries(out) == ["mine.txt"]
    train_tokenizer(corpus[:40], config(), out, overwrite=True)
    assert _entries(tmp_path) == ["tok"] and "tokenizer.json" in _entries(out) and "mine.txt" not in _entries(out)


def test_unknown_config_fields_and_values_are_errors():
    with pytest.raises(ConfigError, match="algorithm: Input should be 'bpe', 'unigram' or 'wordpiece', got 'sp'"):
        TokenizerTrainConfig.from_dict({"algorithm": "sp"})
    with pytest.raises(ConfigError, match="vocab_sise: unknown field"):
        TokenizerTrainConfig.from_dict({"vocab_sise": 10})
    with pytest.raises(ConfigError, match="^extra_tokens: <s> is already a special token$"):
        TokenizerTrainConfig.from_dict({"extra_tokens": ["#Person1#", "<s>"]})
    with pytest.raises(ConfigError, match="extra_tokens: listed more than once: #P#"):
        TokenizerTrainConfig.from_dict({"extra_tokens": ["#P#", "#P#"]})


def _cli():
    app = typer.Typer()
    app.command()(tokenizer_train_cmd)
    return app


def test_cli_writes_the_folder_and_prints_the_fertility_table(corpus, tmp_path):
    (tmp_path / "corpus.txt").write_text("\n\n".join(corpus), encoding="utf-8")
    out = tmp_path / "tok"
    result = CliRunner().invoke(_cli(), [str(tmp_path / "corpus.txt"), "--out", str(out), "--vocab-size", "500",
                                         "--algorithm", "wordpiece", "--lowercase", "--speaker-tags"])
    assert result.exit_code == 0, result.output
    assert "trained wordpiece: 500 tokens" in result.output
    assert "tokens per word" in result.output and "builtin:minilm-seq2seq" in result.output
    report = json.loads((out / REPORT_JSON).read_text())
    assert report["config"]["lowercase"] is True and report["extra_tokens"]["#Person1#"] == 4
    assert report["heldout_documents"] == round(0.1 * len(corpus))

    again = CliRunner().invoke(_cli(), [str(tmp_path / "corpus.txt"), "--out", str(out)])
    assert isinstance(again.exception, ConfigError) and "--overwrite" in str(again.exception)


def test_cli_reads_a_data_source_and_its_validation_split(tmp_path):
    out = tmp_path / "tok"
    result = CliRunner().invoke(_cli(), ["--data", "builtin:dialogues", "--column", "dialogue", "--heldout",
                                         "validation", "--out", str(out), "--vocab-size", "400", "--compare", "none"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / REPORT_JSON).read_text())
    assert (report["train_documents"], report["heldout_documents"], report["heldout_from"]) == (152, 19, "given")
    assert [row["tokenizer"] for row in report["fertility"]] == ["trained bpe (tok)"]


@pytest.mark.realdata
@pytest.mark.skipif(not all((DIALOGSUM_DIR / f"dialogsum.{s}.jsonl").is_file() for s in ("train", "dev")),
                    reason=f"real DialogSum data not found at {DIALOGSUM_DIR} (it lives beside the project)")
def test_dialogsum_unigram_of_16k_tokens_beats_the_builtin_wordpiece_of_30k(tmp_path):
    """Measured (2 CPU cores): Unigram, lower-cased, 16,000 tokens, trained on the 12,460 train dialogues: 1.317
    tokens per word on the 500 validation dialogues; the builtin WordPiece (30,531 tokens, uncased): 1.354."""
    train = corpus_texts([DIALOGSUM_DIR / "dialogsum.train.jsonl"], column="dialogue")
    dev = corpus_texts([DIALOGSUM_DIR / "dialogsum.dev.jsonl"], column="dialogue")
    cfg = TokenizerTrainConfig(algorithm="unigram", vocab_size=16000, lowercase=True, extra_tokens=list(SPEAKER_TAGS))
    trained, builtin = train_tokenizer(train, cfg, tmp_path / "tok", heldout=dev).fertility
    assert trained["vocab_size"] == 16000 < builtin["vocab_size"] == 30531
    assert trained["unknown_share"] < 0.001
    assert trained["tokens_per_word"] < builtin["tokens_per_word"] - 0.02
