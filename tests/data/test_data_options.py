"""load_data options on small files: file kinds, split naming, column mapping, split, every_k, n."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmcycle.data import LoadReport, load_data


def fnames(dataset) -> list[str]:
    return list(dataset["fname"])


def test_jsonl_file_keeps_columns_and_adds_input_and_references(make_rows, write_jsonl) -> None:
    path = write_jsonl("chats.jsonl", make_rows(3))
    data = load_data(path)
    assert list(data) == ["train"]
    train = data["train"]
    assert train.column_names == ["fname", "dialogue", "summary", "topic", "input", "references"]
    assert train[1]["input"] == train[1]["dialogue"]
    assert train[1]["references"] == [train[1]["summary"]]
    assert train.cache_files == []  # built in memory, nothing written


@pytest.mark.parametrize(
    ("name", "split"),
    [("chats.dev.jsonl", "validation"), ("val_chats.jsonl", "validation"), ("chats-valid.jsonl", "validation"),
     ("chats.validation.jsonl", "validation"), ("test.jsonl", "test"), ("train-00000-of-00001.jsonl", "train"),
     ("contest.jsonl", "train"), ("interval.jsonl", "train")],
)
def test_single_file_split_comes_from_name_words(make_rows, write_jsonl, name: str, split: str) -> None:
    assert list(load_data(write_jsonl(name, make_rows(2)))) == [split]


def test_split_name_option_names_a_single_file_split(make_rows, write_jsonl) -> None:
    plain = write_jsonl("chats.jsonl", make_rows(2))
    named = write_jsonl("chats.train.jsonl", make_rows(2))
    assert list(load_data(plain, split_name="test")) == ["test"]
    assert list(load_data(plain, split_name="dev")) == ["validation"]
    assert list(load_data(named, split_name="test")) == ["test"]  # an explicit option wins over the name


def test_directory_maps_split_words_and_ignores_other_files(make_rows, write_jsonl, write_text, tmp_path: Path) -> None:
    write_jsonl("d/a.train.jsonl", make_rows(4))
    write_jsonl("d/a.dev.jsonl", make_rows(2, start=100))
    write_jsonl("d/a.test.jsonl", make_rows(3, start=200))
    write_text("d/notes.md", "not data")
    write_jsonl("d/extra.jsonl", make_rows(1))  # no split word: ignored
    before = sorted(p.name for p in (tmp_path / "d").iterdir())
    data = load_data(tmp_path / "d")
    assert {s: len(d) for s, d in data.items()} == {"train": 4, "validation": 2, "test": 3}
    assert fnames(data["validation"]) == ["d100", "d101"]
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == before  # nothing written beside the data


def test_directory_split_option_reads_only_that_file(make_rows, write_jsonl, write_text, tmp_path: Path) -> None:
    write_text("d/a.train.jsonl", "{broken\n")
    write_jsonl("d/a.test.jsonl", make_rows(3))
    data = load_data(tmp_path / "d", split="test")
    assert list(data) == ["test"] and len(data["test"]) == 3


def test_json_list_data_key_and_split_object(make_rows, write_text) -> None:
    rows = make_rows(3)
    assert len(load_data(write_text("a.json", json.dumps(rows)))["train"]) == 3
    assert len(load_data(write_text("b.json", json.dumps({"version": 1, "data": rows})))["train"]) == 3
    both = load_data(write_text("c.json", json.dumps({"train": rows, "dev": rows[:1], "test": rows[:2]})))
    assert {s: len(d) for s, d in both.items()} == {"train": 3, "validation": 1, "test": 2}
    assert list(load_data(write_text("d.json", json.dumps({"train": rows, "test": rows[:2]})), split="test")) == [
        "test"
    ]


def test_csv_with_numbered_summaries_and_multiline_fields(write_text) -> None:
    text = (
        "fname,dialogue,summary2,summary1,summary10\n"
        'a,"#Person1#: Hi.\n#Person2#: Hello.",second,first,tenth\n'
        "b,#Person1#: Bye.,,only,\n"
    )
    data = load_data(write_text("chats.test.csv", text))["test"]
    assert data["references"] == [["first", "second", "tenth"], ["only"]]  # numeric order, blanks dropped
    assert data[0]["input"] == "#Person1#: Hi.\n#Person2#: Hello."


def test_parquet_file(make_rows, tmp_path: Path) -> None:
    path = tmp_path / "chats.validation.parquet"
    pq.write_table(pa.Table.from_pylist(make_rows(5)), path)
    data = load_data(path)
    assert list(data) == ["validation"] and fnames(data["validation"]) == [f"d{i}" for i in range(5)]


def test_column_mapping_with_list_valued_references(write_jsonl) -> None:
    rows = [{"text": "#Person1#: Hi.", "gold": ["one", "", "two"], "alt": "three", "summary": "ignored"}]
    data = load_data(write_jsonl("x.jsonl", rows), input_column="text", reference_columns=["gold", "alt"])
    assert data["train"][0]["input"] == "#Person1#: Hi."
    assert data["train"][0]["references"] == ["one", "two", "three"]
    assert "summary" in data["train"].column_names  # original columns are kept


def test_no_reference_column_allowed_only_when_not_required(write_jsonl) -> None:
    path = write_jsonl("inputs.jsonl", [{"dialogue": "#Person1#: Hi."}, {"dialogue": "#Person1#: Bye."}])
    data = load_data(path, require_references=False)
    assert data["train"]["references"] == [[], []]


def test_every_k_keeps_every_kth_row_from_the_first(make_rows, write_jsonl) -> None:
    data = load_data(write_jsonl("x.jsonl", make_rows(10)), every_k=3)
    assert fnames(data["train"]) == ["d0", "d3", "d6", "d9"]


def test_n_is_seeded_deterministic_and_keeps_order(make_rows, write_jsonl) -> None:
    path = write_jsonl("x.jsonl", make_rows(100))
    first = fnames(load_data(path, n=10, seed=7)["train"])
    again = fnames(load_data(path, n=10, seed=7)["train"])
    other = fnames(load_data(path, n=10, seed=8)["train"])
    assert first == again and len(first) == 10
    assert other != first
    assert first == sorted(first, key=lambda f: int(f[1:]))  # original order preserved
    assert len(load_data(path, n=500)["train"]) == 100  # at most n


def test_every_k_applies_before_n(make_rows, write_jsonl) -> None:
    kept = fnames(load_data(write_jsonl("x.jsonl", make_rows(100)), every_k=10, n=4, seed=3)["train"])
    assert len(kept) == 4 and all(int(f[1:]) % 10 == 0 for f in kept)


def test_report_counts_rows_per_split(make_rows, write_jsonl) -> None:
    report = LoadReport()
    path = write_jsonl("x.jsonl", make_rows(10))
    load_data(path, every_k=2, report=report)
    assert report.rows_read == {"train": 10} and report.rows == {"train": 5}
    assert report.bad_rows == {"train": 0} and report.sources == {"train": str(path)}


def test_extra_columns_of_mixed_types_still_load(write_jsonl) -> None:
    rows = [{"dialogue": "#Person1#: A.", "summary": "s", "topic": 1, "meta": {"x": 1}},
            {"dialogue": "#Person1#: B.", "summary": "s", "topic": "two", "meta": [1]}]
    data = load_data(write_jsonl("mixed.jsonl", rows))["train"]
    assert data["topic"] == [1, "two"] and data["meta"] == [{"x": 1}, [1]]
