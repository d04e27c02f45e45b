"""Run directories: one folder per run, written atomically, never overwriting a user's files.

A stage that finished writes ``stages/<name>.done.json`` holding the hash of its config: a re-run
skips it when the hash matches, which is how runs resume.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmcycle.core.errors import LLMCycleError
from llmcycle.core.files import atomic_write_json


class RunDir:
    """A run directory: ``<root>/<name>-<timestamp>/`` or an existing one to resume."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, root: str | Path, name: str) -> "RunDir":
        """A fresh directory; never reuses an existing one (a suffix is added on a clash)."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        root = Path(root)
        for i in range(100):
            path = root / (f"{name}-{stamp}" + (f"-{i}" if i else ""))
            try:
                path.mkdir(parents=True, exist_ok=False)
                return cls(path)
            except FileExistsError:
                continue
        raise LLMCycleError(f"cannot create a run directory under {root}")

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
