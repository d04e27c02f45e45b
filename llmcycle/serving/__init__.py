"""Serving: an OpenAI-compatible HTTP server over a base model and its LoRA adapters.

* ``ServeConfig``: every option, validated (``llmcycle.serving.config``).
* ``create_app(config)``: the FastAPI app (``/v1/completions``, ``/v1/chat/completions`` with
  SSE streaming, ``/v1/models``, ``/health``); ``serve(config)`` runs it with uvicorn;
  ``BackgroundServer(app)`` runs it on a thread (tests, notebooks, benchmarks).
* ``Scheduler``: dynamic batching of compatible requests into one ``generate`` call.

No vLLM backend: generation always goes through ``llmcycle.generation`` (transformers).
``import llmcycle.serving`` stays light; FastAPI, uvicorn and torch load on first use.
"""

from __future__ import annotations

from typing import Any

from llmcycle.serving.config import ServeConfig

__all__ = ["BackgroundServer", "Scheduler", "ServeConfig", "create_app", "serve"]

_LAZY = {"create_app": "llmcycle.serving.app", "serve": "llmcycle.serving.server",
         "BackgroundServer": "llmcycle.serving.server", "Scheduler": "llmcycle.serving.scheduler"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'llmcycle.serving' has no attribute {name!r}")
