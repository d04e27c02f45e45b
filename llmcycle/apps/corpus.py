"""A retrieval corpus: documents from files or a data set's column, cut into overlapping token windows.

Sources (``CorpusConfig``):

* ``paths``: files or folders (searched recursively): ``.txt`` and ``.md`` files are one document each (id:
  the path), ``.jsonl`` files one document per row (text in ``text_field``, id in ``id_field``, else
  ``file:line``);
* ``data``: a data set (``builtin:dialogues``, a local file or folder, a hub id) through ``load_data``, text in
  ``text_field`` (default: the data's input column), id in ``id_field`` (default ``fname`` when the data has
  it, else ``split:row``); ``data: recipe`` reads the recipe's own data.

``chunk_documents`` cuts every document into windows of ``chunk_tokens`` tokens of the embedding model's
tokenizer, consecutive windows sharing ``overlap`` tokens; each chunk is the original text between its first
and last token (never a lower-cased decode) and keeps its document id, source and position.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from pydantic import Field, model_validator

from llmcycle.core.config import StageConfig
from llmcycle.core.errors import DataError
from llmcycle.data import load_data
from llmcycle.data.readers import read_jsonl_objects

TEXT_SUFFIXES = (".txt", ".md", ".markdown")


class CorpusConfig(StageConfig):
    """Where the documents come from."""

    paths: list[str] = Field(default_factory=list, description="Files or folders: .txt/.md files are one "
                             "document each, .jsonl files one document per row.")
    data: str | None = Field("builtin:dialogues", description="A data set whose column holds the documents "
                             "(builtin:dialogues, a file or folder, a hub id); 'recipe': the recipe's own data; "
                             "null with paths: files only.")
    splits: list[str] | None = Field(None, description="Splits of the data set to read (default: all).")
    text_field: str | None = Field(None, description="Column / JSONL field holding the text (default: the data's "
                                   "input column; 'text' in JSONL files).")
    id_field: str | None = Field(None, description="Column / JSONL field holding each document's id (default: "
                                 "'fname' or 'id' when present, else the row's position).")

    @model_validator(mode="after")
    def _some_source(self) -> "CorpusConfig":
        if not self.paths and not self.data:
            raise ValueError("give paths or data (where the documents come from)")
        return self


@dataclass
class Document:
    id: str
    text: str
    source: str  # file, or data set and split


@dataclass
class Chunk:
    """A window of a document: its text, the document's id and source, and where in the document it lies."""

    id: int  # position in the index
    doc_id: str
    source: str
    position: int  # 0 for the document's first window, 1 for the next, ...
    start: int  # character offsets into the document's text
    end: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def label(self) -> str:
        """``doc_id#position``: how citations name it."""
        return f"{self.doc_id}#{self.position}"


def load_documents(cfg: CorpusConfig, recipe_data: Any = None) -> list[Document]:
    """Every document ``cfg`` names, in order; duplicate ids are an error naming both sources."""
    docs: list[Document] = []
    for p in cfg.paths:
        docs.extend(_from_path(Path(p).expanduser(), cfg))
    if cfg.data:
        if cfg.data == "recipe":
            if recipe_data is None:
                raise DataError("corpus.data: 'recipe' needs a recipe's data (use a data source outside a recipe)")
            data, name = recipe_data, "recipe data"
        else:
            data, name = load_data(cfg.data), cfg.data
        docs.extend(_from_dataset(data, name, cfg))
    if not docs:
        raise DataError(f"corpus: no documents found in {', '.join(cfg.paths) or cfg.data}")
    seen: dict[str, str] = {}
    for d in docs:
        if d.id in seen:
            raise DataError(f"corpus: document id {d.id!r} appears twice ({seen[d.id]} and {d.source}); set "
                            "id_field to a unique column")
        seen[d.id] = d.source
    return docs


def _from_path(path: Path, cfg: CorpusConfig) -> list[Document]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (*TEXT_SUFFIXES, ".jsonl"))
        if not files:
            raise DataError(f"{path}: no .txt, .md or .jsonl files in this folder")
        return [d for f in files for d in _from_path(f, cfg)]
    if not path.is_file():
        raise DataError(f"{path}: no such file or folder")
    if path.suffix.lower() == ".jsonl":
        field, docs = cfg.text_field or "text", []
        for line, obj in read_jsonl_objects(path, "corpus row"):
            text = obj.get(field)
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{path}:{line}: field {field!r} is missing or not text (set corpus.text_field)")
            ident = obj.get(cfg.id_field or "id")
            docs.append(Document(str(ident) if ident is not None else f"{path.name}:{line}", text, str(path)))
        return docs
    if path.suffix.lower() in TEXT_SUFFIXES:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{path}: not UTF-8 text") from None
        return [Document(str(path), text, str(path))] if text.strip() else []
    raise DataError(f"{path}: unsupported corpus file (use .txt, .md or .jsonl)")


def _from_dataset(data: Any, name: str, cfg: CorpusConfig) -> list[Document]:
    splits = cfg.splits or list(data.keys())
    docs = []
    for split in splits:
        if split not in data:
            raise DataError(f"corpus.splits: {name} has no split {split!r}; it has {', '.join(data.keys())}")
        rows = data[split]
        cols = rows.column_names
        text_col = cfg.text_field or "input"
        if text_col not in cols:
            raise DataError(f"corpus.text_field: {name} ({split}) has no column {text_col!r}; columns: "
                            f"{', '.join(cols)}")
        id_col = cfg.id_field or next((c for c in ("fname", "id") if c in cols), None)
        if id_col is not None and id_col not in cols:
            raise DataError(f"corpus.id_field: {name} ({split}) has no column {id_col!r}")
        texts = rows[text_col]
        ids = rows[id_col] if id_col else [f"{split}:{i}" for i in range(len(rows))]
        docs.extend(Document(str(i), str(t), f"{name} ({split})") for i, t in zip(ids, texts) if str(t).strip())
    return docs


def chunk_documents(docs: Sequence[Document], tokenizer: Any, chunk_tokens: int, overlap: int) -> list[Chunk]:
    """Windows of ``chunk_tokens`` tokens (``overlap`` shared between neighbours) over every document."""
    if not 0 <= overlap < chunk_tokens:
        raise DataError(f"chunk_overlap ({overlap}) must be at least 0 and less than chunk_tokens ({chunk_tokens})")
    chunks: list[Chunk] = []
    step = chunk_tokens - overlap
    batch = 256
    for b in range(0, len(docs), batch):
        part = docs[b:b + batch]
        enc = tokenizer([d.text for d in part], add_special_tokens=False, return_offsets_mapping=True,
                        verbose=False)
        for doc, offsets in zip(part, enc["offset_mapping"]):
            offsets = [(int(s), int(e)) for s, e in offsets if e > s]
            if not offsets:
                chunks.append(Chunk(len(chunks), doc.id, doc.source, 0, 0, len(doc.text), doc.text))
                continue
            position, start = 0, 0
            while True:
                window = offsets[start:start + chunk_tokens]
                lo, hi = window[0][0], window[-1][1]
                chunks.append(Chunk(len(chunks), doc.id, doc.source, position, lo, hi, doc.text[lo:hi]))
                if start + chunk_tokens >= len(offsets):
                    break
                position, start = position + 1, start + step
    return chunks
