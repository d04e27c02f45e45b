"""Resolve a data source string to split files (builtin, local file or directory) or a hub id.

Dispatch order: ``builtin:NAME`` -> an existing file or directory -> a path-looking string that
does not exist (an error) -> a hub id (``owner/name`` or ``name``). Split names come from the
words in file names (``dialogsum.dev.jsonl`` -> ``validation``); nothing is read here, so
asking for one split of a directory reads one file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from llmcycle.core.errors import DataError
from llmcycle.data.readers import KINDS

SPLIT_WORDS: dict[str, str] = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
}
"""Words that name a split in a file name, JSON key or hub split, and the split they mean."""

SPLIT_ORDER = ("train", "validation", "test")

BUILTIN_DATASETS: dict[str, str] = {
    "dialogues": "Original dialogue-summarisation data written for llmcycle (DialogSum format: "
    "fname, dialogue, summary, topic), shipped as train/validation/test JSONL files.",
}
"""Data sets shipped inside the package (``builtin:NAME``) and what each is; files live in
``llmcycle/data/builtin/NAME.SPLIT.jsonl`` for every split in ``SPLIT_ORDER``."""

# Suffixes that make a missing source read as a path (not a hub id): "no such file or directory".
_PATH_SUFFIXES = {*KINDS, ".tsv", ".txt", ".ndjson", ".arrow", ".gz", ".bz2", ".xz", ".zst", ".zip", ".xlsx"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


@dataclass(frozen=True)
class SplitFile:
    """One file to read, the split it holds, and how to get its bytes."""

    split: str
    name: str  # shown in messages: the path, or llmcycle/data/builtin/<file> for builtins
    kind: str  # a value of readers.KINDS
    read: Callable[[], bytes]
    one_split: bool  # True in a directory or builtin: a JSON file may not hold several splits


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face hub data set id, fetched with ``datasets.load_dataset``."""

    repo_id: str


def canonical_split(name: str) -> str:
    """``dev``/``valid``/``val`` -> ``validation``; other names pass through (lower-cased if split words)."""
    return SPLIT_WORDS.get(name.lower(), name)


def split_key(name: str) -> str | None:
    """The split a word names, or None when it names none."""
    return SPLIT_WORDS.get(name.lower())


def split_from_filename(path: Path) -> str | None:
    """The split named by a word in the file name (``a.dev.jsonl`` -> validation), or None."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    found = {SPLIT_WORDS[w] for w in re.split(r"[^a-z0-9]+", stem.lower()) if w in SPLIT_WORDS}
    if len(found) > 1:
        raise DataError(f"{path}: the file name names more than one split ({', '.join(sorted(found))}); rename it")
    return found.pop() if found else None


def _read_path(path: Path) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None

    return read


def single_file(path: Path, split_name: str | None) -> SplitFile:
    """A lone file: its split is ``split_name`` when given, else the name's split word, else train."""
    kind = KINDS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path}: unsupported file type '{path.suffix or '(no suffix)'}'; use .jsonl, .json, .csv or .parquet"
        )
    split = canonical_split(split_name) if split_name else split_from_filename(path) or "train"
    return SplitFile(split, str(path), kind, _read_path(path), one_split=False)


def directory_files(directory: Path) -> list[SplitFile]:
    """Every supported file in ``directory`` whose name names a split; two for one split is an error."""
    data_files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in KINDS)
    by_split: dict[str, Path] = {}
    for path in data_files:
        split = split_from_filename(path)
        if split is None:
            continue
        if split in by_split:
            raise DataError(
                f"{directory}: two files for the {split} split: {by_split[split].name} and {path.name}; "
                "keep one, or load each file on its own"
            )
        by_split[split] = path
    if not by_split:
        found = ", ".join(p.name for p in data_files) or "no .jsonl/.json/.csv/.parquet files"
        raise DataError(
            f"{directory}: no split files; expected .jsonl/.json/.csv/.parquet files whose names contain "
            f"train, validation (or dev/valid/val) or test (found: {found})"
        )
    return [
        SplitFile(s, str(p), KINDS[p.suffix.lower()], _read_path(p), one_split=True)
        for s, p in sorted(by_split.items(), key=lambda item: split_rank(item[0]))
    ]


def builtin_files(name: str) -> list[SplitFile]:
    """The split files of ``builtin:NAME``, read as package data."""
    if name not in BUILTIN_DATASETS:
        valid = ", ".join(f"builtin:{n}" for n in sorted(BUILTIN_DATASETS))
        raise DataError(f"unknown builtin data set 'builtin:{name}'; valid names: {valid}")
    root = resources.files("llmcycle.data").joinpath("builtin")
    files = []
    for split in SPLIT_ORDER:
        resource = root.joinpath(f"{name}.{split}.jsonl")
        label = f"llmcycle/data/builtin/{name}.{split}.jsonl"
        if not resource.is_file():
            raise DataError(
                f"builtin:{name} is incomplete: {label} is missing from the installed package; reinstall llmcycle"
            )
        files.append(SplitFile(split, label, "jsonl", resource.read_bytes, one_split=True))
    return files


def looks_like_path(source: str) -> bool:
    """True for strings a user means as a path (./x, /x, ~/x, a/b/c, x.jsonl), not a hub id."""
    return (
        source.startswith(("/", "./", "../", "~", ".\\"))
        or source in (".", "..")
        or "\\" in source
        or source.count("/") > 1
        or Path(source).suffix.lower() in _PATH_SUFFIXES
    )


def resolve_source(source: str, split_name: str | None = None) -> list[SplitFile] | HubSource:
    """Split files to read for ``source``, or the hub id to fetch; errors say what to pass instead."""
    source = source.strip()
    if not source:
        raise DataError(
            "data source is empty; pass a .jsonl/.json/.csv/.parquet file, a directory, a hub id or builtin:dialogues"
        )
    if source.startswith("builtin:"):
        return builtin_files(source.removeprefix("builtin:"))
    path = Path(source).expanduser()
    if path.is_dir():
        return directory_files(path)
    if path.is_file():
        return [single_file(path, split_name)]
    if path.exists():
        raise DataError(f"{source}: not a regular file or directory")
    if looks_like_path(source):
        raise DataError(f"no such file or directory: {source}")
    if _HUB_ID.match(source):
        return HubSource(source)
    raise DataError(
        f"data source {source!r} is neither builtin:NAME, an existing file or directory, nor a hub id (owner/name)"
    )


def split_rank(split: str) -> tuple[int, str]:
    """Sort key: train, validation, test, then other splits by name."""
    return (SPLIT_ORDER.index(split), "") if split in SPLIT_ORDER else (len(SPLIT_ORDER), split)
