"""Helpers every benchmark shares: the machine, library versions, process memory, JSON output."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """CPU model, core count, memory and OS of this machine."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": mem_gb, "os": platform.platform(),
            "python": platform.python_version()}


def versions(*packages: str) -> dict[str, str | None]:
    """Installed versions of ``packages`` (torch, transformers, ... by default)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in packages or ("torch", "transformers", "peft", "llmcycle"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    if out.get("llmcycle") is None:
        try:
            import llmcycle

            out["llmcycle"] = llmcycle.__version__
        except ImportError:
            pass
    return out


def command() -> str:
    """The command line that ran this script, as typed from the repository root."""
    return " ".join(["python", *sys.argv])


def write_json(name: str, data: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` (pretty, stable key order) and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path
