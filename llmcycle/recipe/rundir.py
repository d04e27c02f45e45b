"""Run directories: one folder per run, written atomically, never overwriting a user's files.

A stage that finished writes ``stages/<name>.done.json`` holding the hash of its config: a re-run
skips it when the hash matches, which is how runs resume.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmcycle.core.errors import LLMCycleError
from llmcycle.core.files import atomic_write_json


class RunDir:
    """A run directory: ``<root>/<name>-<timestamp>/`` or an existing one to resume."""

    def __init__(self, path: Path, created: Path | None = None, was_empty: bool = False):
        self.path = Path(path)
        self.created = created  # the outermost folder this process created for the run (None: it existed) ...
        self.was_empty = was_empty  # ... or the run is an empty --run-dir that existed before

    @classmethod
    def create(cls, root: str | Path, name: str) -> "RunDir":
        """A fresh directory; never reuses an existing one (a suffix is added on a clash)."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        root = Path(root)
        _folder_or_missing(root, "runs_dir")
        for i in range(100):
            path = root / (f"{name}-{stamp}" + (f"-{i}" if i else ""))
            top = _first_missing(path)
            try:
                path.mkdir(parents=True, exist_ok=False)
                return cls(path, created=top)
            except FileExistsError:
                continue
        raise LLMCycleError(f"cannot create a run directory under {root}")

    @classmethod
    def make(cls, path: str | Path) -> "RunDir":
        """``path`` as a new run (a ``--run-dir`` that does not exist yet, or is empty)."""
        path = Path(path)
        _folder_or_missing(path, "--run-dir")
        top = _first_missing(path)
        path.mkdir(parents=True, exist_ok=True)
        return cls(path, created=top, was_empty=top is None)

    @property
    def new(self) -> bool:
        """Whether this process started the run (a new folder, or an empty ``--run-dir``)."""
        return self.created is not None or self.was_empty

    def any_done(self) -> bool:
        """Whether any stage of this run has finished."""
        return any(self.path.joinpath("stages").glob("*.done.json"))

    def remove_if_created(self) -> None:
        """Undo a run this process started and nothing came of (a refusal): the folders it created go, and an
        empty ``--run-dir`` that existed before is emptied again."""
        if self.created is not None:
            shutil.rmtree(self.created, ignore_errors=True)
        elif self.was_empty and self.path.is_dir():  # an empty --run-dir the user made: keep it, empty
            for child in self.path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)

    @classmethod
    def resume(cls, path: str | Path) -> "RunDir":
        path = Path(path)
        if not (path / "recipe.json").is_file():
            raise LLMCycleError(f"{path} is not a llmcycle run directory (no recipe.json); pass --run-dir of an "
                                "earlier run, or leave it out to start a new run")
        return cls(path)

    def file(self, *parts: str) -> Path:
        return self.path.joinpath(*parts)

    def stage_done(self, name: str, cfg_hash: str) -> bool:
        marker = self.file("stages", f"{name}.done.json")
        if not marker.is_file():
            return False
        try:
            return json.loads(marker.read_text(encoding="utf-8")).get("config_hash") == cfg_hash
        except (OSError, ValueError):
            return False

    def begin_stage(self, name: str, cfg_hash: str) -> Path | None:
        """Mark stage ``name`` started with ``cfg_hash``. Its folder from an earlier run with another config
        (finished or interrupted) is moved aside to ``<name>.superseded-<old hash>`` (kept, never deleted) so
        the stage starts clean; an interrupted run of the same config stays, to be resumed. Returns the
        folder moved aside, if any."""
        old = None
        for marker in (self.file("stages", f"{name}.started.json"), self.file("stages", f"{name}.done.json")):
            if marker.is_file():
                try:
                    old = json.loads(marker.read_text(encoding="utf-8")).get("config_hash")
                except (OSError, ValueError):
                    old = "unknown"
                break
        moved = None
        folder = self.file(name)
        if old is not None and old != cfg_hash and folder.exists():
            moved = self.file(f"{name}.superseded-{str(old)[:12]}")
            n = 2
            while moved.exists():
                moved, n = self.file(f"{name}.superseded-{str(old)[:12]}-{n}"), n + 1
            folder.rename(moved)
        self.file("stages", f"{name}.done.json").unlink(missing_ok=True)
        atomic_write_json(self.file("stages", f"{name}.started.json"), {"stage": name, "config_hash": cfg_hash})
        return moved

    def mark_done(self, name: str, cfg_hash: str, summary: dict[str, Any]) -> None:
        atomic_write_json(self.file("stages", f"{name}.done.json"),
                          {"stage": name, "config_hash": cfg_hash,
                           "finished": datetime.now(timezone.utc).isoformat(), "summary": summary})


def _folder_or_missing(path: Path, what: str) -> None:
    """``path`` or a parent of it that is a file, not a folder: a one-line error naming it."""
    for p in [path, *path.parents]:
        if p.exists():
            if not p.is_dir():
                where = "" if p == path else f" ({p} is a file)"
                raise LLMCycleError(f"{what} {path}: is a file, not a folder{where}; pass a folder")
            return


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (what ``mkdir(parents=True)`` creates)."""
    top = None
    for p in [path, *path.parents]:
        if p.exists():
            break
        top = p
    return top
