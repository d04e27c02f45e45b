"""load_data on the real DialogSum copy (marked realdata) and on the builtin data set."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from llmcycle.core.errors import DataError
from llmcycle.data import LoadReport, load_data

BUILTIN_SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def dialogsum(dialogsum_dir: Path):
    report = LoadReport()
    return load_data(dialogsum_dir, report=report), report


@pytest.mark.realdata
def test_dialogsum_directory_has_all_rows(dialogsum) -> None:
    data, report = dialogsum
    assert list(data) == ["train", "validation", "test"]
    assert {s: len(d) for s, d in data.items()} == {"train": 12460, "validation": 500, "test": 500}
    assert report.bad_rows == {"train": 0, "validation": 0, "test": 0}
    assert report.sources["validation"].endswith("dialogsum.dev.jsonl")


@pytest.mark.realdata
def test_dialogsum_test_rows_have_three_references(dialogsum) -> None:
    data, _ = dialogsum
    test = data["test"]
    assert {"summary1", "summary2", "summary3", "topic1", "input", "references"} <= set(test.column_names)
    assert all(len(refs) == 3 for refs in test["references"])
    assert test[0]["references"] == [test[0]["summary1"], test[0]["summary2"], test[0]["summary3"]]
    assert test["input"] == test["dialogue"]


@pytest.mark.realdata
def test_dialogsum_train_and_validation_have_one_reference(dialogsum) -> None:
    data, _ = dialogsum
    for split in ("train", "validation"):
        assert all(len(refs) == 1 for refs in data[split]["references"])
    assert data["validation"][0]["fname"].startswith("dev_")


@pytest.mark.realdata
def test_dialogsum_single_dev_file_becomes_validation(dialogsum_dir: Path) -> None:
    data = load_data(dialogsum_dir / "dialogsum.dev.jsonl", n=20, seed=1)
    assert list(data) == ["validation"] and len(data["validation"]) == 20


@pytest.mark.realdata
def test_dialogsum_split_option_reads_one_split(dialogsum_dir: Path) -> None:
    report = LoadReport()
    data = load_data(str(dialogsum_dir), split="test", every_k=50, report=report)
    assert list(data) == ["test"] and len(data["test"]) == 10
    assert list(report.sources) == ["test"]


def _builtin_file(split: str):
    return resources.files("llmcycle.data").joinpath("builtin", f"dialogues.{split}.jsonl")


@pytest.fixture(scope="module")
def builtin_dialogues():
    missing = [s for s in BUILTIN_SPLITS if not _builtin_file(s).is_file()]
    if missing:
        pytest.skip(
            "builtin:dialogues split files not merged yet: missing "
            + ", ".join(f"llmcycle/data/builtin/dialogues.{s}.jsonl" for s in missing)
        )
    return load_data("builtin:dialogues")


def test_builtin_dialogues_has_three_splits_and_enough_rows(builtin_dialogues) -> None:
    assert list(builtin_dialogues) == ["train", "validation", "test"]
    assert sum(len(d) for d in builtin_dialogues.values()) >= 150


def test_builtin_dialogues_rows_are_dialogsum_shaped(builtin_dialogues) -> None:
    for split, data in builtin_dialogues.items():
        for row in data:
            assert row["dialogue"].strip() and row["dialogue"].startswith("#Person1#"), (split, row["fname"])
            assert len(row["references"]) == 1, (split, row["fname"])


def test_builtin_reads_split_files_as_package_data(monkeypatch, tmp_path: Path, make_rows, write_jsonl) -> None:
    """The builtin code path on stand-in package data (runs before the real files are merged)."""
    import llmcycle.data.sources as sources

    for i, split in enumerate(BUILTIN_SPLITS):
        write_jsonl(f"pkg/builtin/dialogues.{split}.jsonl", make_rows(2 + i, start=10 * i))
    monkeypatch.setattr(sources.resources, "files", lambda package: tmp_path / "pkg")
    data = load_data("builtin:dialogues", split="dev")
    assert list(data) == ["validation"] and list(data["validation"]["fname"]) == ["d10", "d11", "d12"]
    (tmp_path / "pkg" / "builtin" / "dialogues.test.jsonl").unlink()
    with pytest.raises(DataError, match="llmcycle/data/builtin/dialogues.test.jsonl is missing"):
        load_data("builtin:dialogues")
