"""Run directories: one folder per run, written atomically, never overwriting a user's files.

Every file is written to a temporary name beside its target and renamed into place, so a
killed run leaves either the old file or the new one, never half of one. A stage that finished
writes ``stages/<name>.done.json`` holding the hash of its config: a re-run skips it when the
hash matches, which is how runs resume.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llmcycle.errors import LLMCycleError


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def atomic_write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))


def config_hash(config: Any) -> str:
    """A stable short hash of a JSON-able config (pydantic models are dumped first)."""
    if hasattr(config, "model_dump"):
        config = config.model_dump(mode="json")
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _with_defaults(saved: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``saved`` with the fields it lacks at their ``defaults`` (nested blocks too)."""
    out = dict(defaults) | dict(saved)
    for k, v in defaults.items():
        if isinstance(v, Mapping) and isinstance(saved.get(k), Mapping):
            out[k] = _with_defaults(saved[k], v)
    return out


def changed_fields(saved: Mapping[str, Any], current: Mapping[str, Any], defaults: Mapping[str, Any],
                   ignore: Iterable[str] = ()) -> list[str]:
    """Top-level fields whose values differ between the config a run was started with and the current one.

    A field the saved config lacks (an option added since it was written) counts at its default in
    ``defaults``, so a run folder stays resumable across versions while the new option is left alone.
    """
    was, skip = _with_defaults(saved, defaults), set(ignore)
    return sorted(k for k in set(was) | set(current) if k not in skip and was.get(k) != current.get(k))


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
