"""Run directories for the UI's tests."""

from __future__ import annotations

import shutil
from pathlib import Path


def copy_run(finished: Path, runs: Path, name: str, interrupted: bool = False) -> Path:
    """A copy of the finished run as ``runs/name``; ``interrupted``: its last stage started but never finished."""
    path = runs / name
    shutil.copytree(finished, path)
    if interrupted:
        last = max((path / "stages").glob("*.done.json"))
        last.unlink()
        (path / "report.html").unlink()
    return path
