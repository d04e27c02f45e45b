"""Running the ``llmcycle`` command in-process, as a user would (exit code, stdout, stderr)."""

from __future__ import annotations

import sys


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``llmcycle ARGS`` through the real entry point: one-line errors, exit codes and all."""
    from llmcycle import cli

    monkeypatch.setattr(sys, "argv", ["llmcycle", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err
