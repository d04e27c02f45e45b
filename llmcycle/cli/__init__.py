"""The ``llmcycle`` command line (``llmcycle.cli.app``: the command table and the entry point)."""

from llmcycle.cli.app import app, main

__all__ = ["app", "main"]
