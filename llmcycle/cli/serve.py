"""``llmcycle serve``: an OpenAI-compatible server over a model and its LoRA adapters.

Option help comes from ``ServeConfig``'s field descriptions (documented once).
"""

from __future__ import annotations

from typing import List, Optional

import typer

from llmcycle.cli.output import field_help
from llmcycle.serving.config import ServeConfig, parse_adapter_options


def serve_cmd(
    model: str = typer.Argument("builtin:minilm-seq2seq", help=field_help(ServeConfig, "model")),
    adapter: Optional[List[str]] = typer.Option(None, "--adapter", help="NAME=DIR (repeatable): serve the PEFT "
                                                "adapter in DIR, on the same base, as model NAME."),
    name: str = typer.Option("base", help=field_help(ServeConfig, "name")),
    host: str = typer.Option("127.0.0.1", help=field_help(ServeConfig, "host")),
    port: int = typer.Option(8000, help=field_help(ServeConfig, "port")),
    max_batch_size: int = typer.Option(16, help=field_help(ServeConfig, "max_batch_size")),
    max_wait_ms: float = typer.Option(10.0, help=field_help(ServeConfig, "max_wait_ms")),
    no_batching: bool = typer.Option(False, "--no-batching", help="One request per generate call (the baseline "
                                     "dynamic batching is measured against)."),
    max_input_tokens: Optional[int] = typer.Option(None, help=field_help(ServeConfig, "max_input_tokens")),
    max_tokens: int = typer.Option(512, help=field_help(ServeConfig, "max_tokens")),
    default_max_tokens: int = typer.Option(64, help=field_help(ServeConfig, "default_max_tokens")),
    max_body_bytes: int = typer.Option(1_048_576, help=field_help(ServeConfig, "max_body_bytes")),
    max_queue: int = typer.Option(1024, help=field_help(ServeConfig, "max_queue")),
    api_key: Optional[str] = typer.Option(None, envvar="LLMCYCLE_API_KEY", show_envvar=True,
                                          help="Require `Authorization: Bearer KEY` on /v1 requests (401 otherwise)."),
    device: str = typer.Option("cpu", help=field_help(ServeConfig, "device")),
    dtype: str = typer.Option("fp32", help=field_help(ServeConfig, "dtype")),
    chat: str = typer.Option("auto", help=field_help(ServeConfig, "chat")),
    graceful_shutdown_s: Optional[float] = typer.Option(60.0, help=field_help(ServeConfig, "graceful_shutdown_s")),
    quiet: bool = typer.Option(False, "--quiet", help="No per-request log lines."),
) -> None:
    """Serve MODEL (and --adapter NAME=DIR ...) over HTTP: /v1/completions, /v1/chat/completions, /v1/models."""
    from llmcycle.serving.server import serve  # uvicorn, FastAPI, torch: only when serving

    config = ServeConfig.from_dict({
        "model": model, "name": name, "adapters": parse_adapter_options(list(adapter or [])), "host": host,
        "port": port, "batching": not no_batching, "max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms,
        "max_input_tokens": max_input_tokens, "max_tokens": max_tokens, "default_max_tokens": default_max_tokens,
        "max_body_bytes": max_body_bytes, "max_queue": max_queue, "api_key": api_key or None, "device": device,
        "dtype": dtype, "chat": chat, "graceful_shutdown_s": graceful_shutdown_s, "log_requests": not quiet,
    }, where="serve")
    serve(config)
