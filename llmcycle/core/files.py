"""Files written whole or not at all, and stable hashes of configs.

Every file is written to a temporary name beside its target and renamed into place, so a killed
process leaves either the old file or the new one, never half of one. ``config_hash`` and
``changed_fields`` are how a run folder tells whether it is being resumed with the same settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file and an atomic rename.

    A full disk or a folder that cannot be written leaves nothing behind (the temporary file is removed) and
    raises an ``OSError`` naming ``path`` itself, not the temporary name (the CLI prints it as one line).
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename != str(path):
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
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
