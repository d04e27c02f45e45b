"""Malformed input: every case raises DataError/ConfigError naming file, line and column."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from llmcycle.core.errors import ConfigError, DataError
from llmcycle.data import LoadReport, load_data

GOOD = {"fname": "a", "dialogue": "#Person1#: Hi.\n#Person2#: Hello.", "summary": "They greet."}


def raises(match_all: list[str], source, **options) -> str:
    """Load ``source`` expecting DataError; every string in ``match_all`` must be in its message."""
    with pytest.raises(DataError) as info:
        load_data(source, **options)
    message = str(info.value)
    for part in match_all:
        assert part in message, f"{part!r} not in {message!r}"
    assert "\n" not in message and "Traceback" not in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    raises([f"no such file or directory: {tmp_path / 'nope.jsonl'}"], tmp_path / "nope.jsonl")
    raises(["no such file or directory: ./nope-dir"], "./nope-dir")


def test_empty_file(write_text) -> None:
    path = write_text("empty.jsonl", "\n  \n")
    raises([str(path), "empty file"], path)


def test_malformed_json_line(write_jsonl) -> None:
    path = write_jsonl("bad.jsonl", [GOOD, GOOD, '{"dialogue": "x",,}'])
    raises([f"{path}:3: not valid JSON", "on_bad_rows='skip'"], path)


def test_line_that_is_not_an_object(write_jsonl) -> None:
    path = write_jsonl("list.jsonl", [GOOD, '["a", "b"]'])
    raises([f"{path}:2: not a JSON object (got list)"], path)


def test_file_that_is_not_utf8(write_text) -> None:
    good = json.dumps(GOOD).encode()
    path = write_text("latin.jsonl", good + b"\n" + '{"dialogue": "caf\u00e9"}'.encode("latin-1") + b"\n")
    raises([f"{path}:2: not UTF-8 text", "byte 0xe9", f"byte offset {len(good) + 1 + 17}"], path)


def test_missing_input_column(write_jsonl) -> None:
    path = write_jsonl("x.jsonl", [{"text": "hi", "summary": "s"}])
    raises([str(path), "unknown input column 'dialogue'", "columns are: text, summary"], path)


def test_unknown_reference_column(write_jsonl) -> None:
    path = write_jsonl("x.jsonl", [GOOD])
    raises([str(path), "unknown reference column 'abstract'", "columns are: fname, dialogue, summary"], path,
           reference_columns=["abstract"])


@pytest.mark.parametrize(
    ("value", "problem"),
    [("", "is empty"), ("   \n", "is empty"), (None, "is null"), (42, "is not a string (got integer)"),
     (["#Person1#: Hi."], "is not a string (got list)")],
)
def test_bad_input_value_names_line_and_column(write_jsonl, value, problem: str) -> None:
    path = write_jsonl("x.jsonl", [GOOD, {**GOOD, "dialogue": value}])
    raises([f"{path}:2: column 'dialogue' {problem}"], path)


def test_row_without_the_input_key(write_jsonl) -> None:
    path = write_jsonl("x.jsonl", [GOOD, GOOD, {"fname": "c", "summary": "s"}])
    raises([f"{path}:3: column 'dialogue' is missing"], path)


def test_bad_reference_values(write_jsonl) -> None:
    path = write_jsonl("x.jsonl", [GOOD, {**GOOD, "summary": 3}])
    raises([f"{path}:2: column 'summary' is not a string (got integer)"], path)
    path = write_jsonl("y.jsonl", [GOOD, {**GOOD, "summary": ""}])
    raises([f"{path}:2: no reference", "'summary'"], path)


def test_split_without_reference_column_names_split_and_columns(write_jsonl) -> None:
    path = write_jsonl("inputs.test.jsonl", [{"fname": "a", "dialogue": "#Person1#: Hi."}])
    raises([str(path), "test split has no reference column", "columns are: fname, dialogue",
            "require_references=False"], path)


def test_csv_missing_column_and_wrong_field_count(write_text) -> None:
    path = write_text("chats.csv", "fname,text,summary\na,hello,s\n")
    raises([str(path), "unknown input column 'dialogue'", "columns are: fname, text, summary"], path)
    path = write_text("short.csv", 'fname,dialogue,summary\na,"#Person1#: Hi.\nthere",s\nb,only two\n')
    raises([f"{path}:4: has 2 fields, the header has 3"], path)
    path = write_text("empty.csv", "fname,dialogue,summary\n")
    raises([str(path), "no rows"], path)


def test_csv_empty_input_cell(write_text) -> None:
    path = write_text("chats.csv", "fname,dialogue,summary\na,#Person1#: Hi.,s\nb,,s\n")
    raises([f"{path}:3: column 'dialogue' is empty"], path)


def test_json_file_errors(write_text) -> None:
    path = write_text("bad.json", '[{"dialogue": "x"},\n {"dialogue": }]')
    raises([f"{path}:2: not valid JSON"], path)
    path = write_text("lines.json", json.dumps(GOOD) + "\n" + json.dumps(GOOD) + "\n")
    raises([f"{path}:2: not valid JSON", "name it .jsonl"], path)
    path = write_text("shape.json", json.dumps({"rows": [GOOD]}))
    raises([str(path), "top level must be a list of objects", "'rows'"], path)
    path = write_text("items.json", json.dumps([GOOD, "oops"]))
    raises([f"{path}: row 2: not a JSON object (got str)"], path)


def test_corrupt_parquet_and_unsupported_suffix(write_text) -> None:
    path = write_text("chats.parquet", b"PAR1 this is not parquet")
    raises([str(path), "not a readable Parquet file"], path)
    path = write_text("chats.txt", "hello")
    raises([str(path), "unsupported file type '.txt'"], path)


def test_directory_without_split_files(write_jsonl, tmp_path: Path) -> None:
    write_jsonl("d/chats.jsonl", [GOOD])
    raises([str(tmp_path / "d"), "no split files", "found: chats.jsonl"], tmp_path / "d")
    (tmp_path / "empty").mkdir()
    raises(["no split files", "found: no .jsonl/.json/.csv/.parquet files"], tmp_path / "empty")


def test_directory_with_two_files_for_one_split(write_jsonl, tmp_path: Path) -> None:
    write_jsonl("d/a.dev.jsonl", [GOOD])
    write_jsonl("d/a.validation.csv", [GOOD])
    raises(["two files for the validation split", "a.dev.jsonl", "a.validation.csv"], tmp_path / "d")


def test_file_name_naming_two_splits(write_jsonl) -> None:
    path = write_jsonl("train_test.jsonl", [GOOD])
    raises([str(path), "names more than one split (test, train)"], path)


def test_unknown_builtin_lists_valid_names() -> None:
    raises(["unknown builtin data set 'builtin:dialogs'", "valid names: builtin:dialogues"], "builtin:dialogs")


def test_unknown_split_lists_available_splits(write_jsonl, tmp_path: Path) -> None:
    write_jsonl("d/a.train.jsonl", [GOOD])
    write_jsonl("d/a.test.jsonl", [GOOD])
    raises(["split='dev'", "available splits: train, test"], tmp_path / "d", split="dev")
    raises(["split='validation'", "available splits: train"], write_jsonl("x.jsonl", [GOOD]), split="validation")


def test_reserved_output_column(write_jsonl) -> None:
    path = write_jsonl("x.jsonl", [{**GOOD, "input": "something else"}])
    raises([str(path), "column 'input' would be replaced"], path)


@pytest.mark.parametrize(
    ("options", "field"),
    [({"n": 0}, "n:"), ({"every_k": 0}, "every_k:"), ({"on_bad_rows": "maybe"}, "on_bad_rows:"),
     ({"reference_columns": []}, "reference_columns:"), ({"seed": "x"}, "seed:"), ({"nn": 5}, "nn: unknown field")],
)
def test_bad_or_unknown_option_names_the_option(write_jsonl, options: dict, field: str) -> None:
    path = write_jsonl("x.jsonl", [GOOD])
    with pytest.raises(ConfigError, match=f"load_data: {field}"):
        load_data(path, **options)


def test_skip_drops_and_counts_bad_rows(write_jsonl, caplog) -> None:
    rows = [GOOD, "{not json", {**GOOD, "dialogue": ""}, GOOD, '"just a string"', {**GOOD, "fname": "z"}]
    path = write_jsonl("x.jsonl", rows)
    report = LoadReport()
    with caplog.at_level(logging.WARNING, logger="llmcycle"):
        data = load_data(path, on_bad_rows="skip", report=report)
    assert len(data["train"]) == 3 and data["train"]["fname"] == ["a", "a", "z"]
    assert report.bad_rows == {"train": 3} and report.rows_read == {"train": 6}
    assert report.bad_row_examples["train"][0] == f"{path}:2: not valid JSON (Expecting property name " \
        "enclosed in double quotes at column 2)"
    assert f"{path}:3: column 'dialogue' is empty" in report.bad_row_examples["train"][1]
    assert "skipped 3 bad row(s) of 6" in caplog.text


def test_skip_with_no_good_rows_is_an_error(write_jsonl) -> None:
    path = write_jsonl("x.jsonl", [{**GOOD, "dialogue": ""}, {**GOOD, "dialogue": None}])
    raises([str(path), "no usable rows", "all 2 rows are bad"], path, on_bad_rows="skip")


def test_value_arrow_cannot_store_names_the_column(write_jsonl) -> None:
    path = write_jsonl("big.jsonl", [GOOD, {**GOOD, "count": 2**70}])
    raises([str(path), "cannot store column 'count' in a table"], path)


def test_file_where_no_line_is_readable_reports_the_first_line(write_jsonl) -> None:
    path = write_jsonl("junk.jsonl", ["not json", "[1]"])
    raises([f"{path}:1: not valid JSON"], path)
    raises([str(path), "no usable rows", "all 2 rows are bad", f"{path}:1: not valid JSON"], path, on_bad_rows="skip")
