"""The ``llmcycle`` command line: one command table, handed to typer.

Each command is a plain function whose signature is its CLI schema (the litgpt / oumi pattern);
no command module imports the app. Stage commands (``tune``, ``align``, ``optimize``, ``evaluate``,
``prompt-lab``) are one-stage recipes run by the recipe runner. Errors a user can fix
(``LLMCycleError``) print one line and exit 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
from collections.abc import Callable
from enum import Enum
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Optional

import typer

from llmcycle.cli import (
    apps,
    benchmark,
    estimate,
    generate,
    pretrain,
    recipes,
    serve,
    stage_commands,
    tokenizer,
    tools,
    ui,
)
from llmcycle.cli.errors import run_main

COMMANDS: dict[str, Callable[..., Any]] = {
    "run": recipes.run_cmd,
    "plan": recipes.plan_cmd,
    "models": tools.models_cmd,
    "info": tools.info_cmd,
    "tokenize": tools.tokenize_cmd,
    "data": recipes.data_cmd,
    "pretrain": pretrain.pretrain_cmd,
    "scaling": pretrain.scaling_cmd,
    "generate": generate.generate_cmd,
    "prompt-lab": stage_commands.prompt_lab_cmd,
    "evaluate": stage_commands.evaluate_cmd,
    "benchmark": benchmark.benchmark_cmd,
    "tune": stage_commands.tune_cmd,
    "tune-compare": stage_commands.tune_compare_cmd,
    "align": stage_commands.align_cmd,
    "optimize": stage_commands.optimize_cmd,
    "serve": serve.serve_cmd,
    "rag": apps.rag_cmd,
    "pal": apps.pal_cmd,
    "agent": apps.agent_cmd,
    "cot": apps.cot_cmd,
    "check-template": recipes.check_template_cmd,
    "stage": stage_commands.stage_cmd,
    "reference": recipes.reference_cmd,
    "ui": ui.ui_cmd,
}
"""Every top-level command, in the order the lifecycle uses them (``llmcycle --help`` lists them so)."""

TOKENIZER_COMMANDS: dict[str, Callable[..., Any]] = {
    "train": tokenizer.tokenizer_train_cmd,
}

ESTIMATE_COMMANDS: dict[str, Callable[..., Any]] = {
    "memory": estimate.estimate_memory_cmd,
    "compute": estimate.estimate_compute_cmd,
}

_state = {"debug": False}

VERSION_OF = ("torch", "transformers", "peft", "datasets", "accelerate")
"""The libraries ``llmcycle --version`` names beside llmcycle: the ones a run's numbers depend on."""


class LogLevel(str, Enum):
    """``--log-level``: the lowest level of log lines shown on stderr."""

    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


def version_line() -> str:
    """``llmcycle 0.1.0 (python 3.11.7, torch 2.13.0+cpu, ...)``: read from the installed metadata, nothing imported."""

    def of(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    libs = ", ".join(f"{name} {of(name)}" for name in VERSION_OF)
    return f"llmcycle {of('llmcycle')} (python {platform.python_version()}, {libs})"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit()


def _global(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks and library logs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and results (--log-level warning)."),
    log_level: Optional[LogLevel] = typer.Option(None, "--log-level", case_sensitive=False,
                                                 help="Lowest level of log lines shown (default: info; debug with "
                                                      "--debug, warning with --quiet)."),
    _version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                  help="Print llmcycle's version and the versions of the libraries it runs on."),
) -> None:
    _state["debug"] = debug
    if log_level is not None:
        level = getattr(logging, log_level.value.upper())
    else:
        level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    logging.getLogger("llmcycle").setLevel(level)
    if level > logging.DEBUG:  # libraries' own logs only at debug level
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        for noisy in ("transformers", "datasets", "huggingface_hub", "httpx", "urllib3", "filelock", "absl", "faiss",
                      "sentence_transformers", "bm25s", "torchao"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


def build_app() -> typer.Typer:
    """The typer app of ``COMMANDS`` (and ``estimate`` with ``ESTIMATE_COMMANDS``)."""
    app = typer.Typer(name="llmcycle", help="Take a language model through the generative-AI lifecycle: select, "
                      "prompt, evaluate, tune, align, optimise, serve. Every command works offline on builtin:* "
                      "models.", no_args_is_help=True, pretty_exceptions_enable=False, add_completion=True)
    app.callback()(_global)
    for name, fn in COMMANDS.items():
        app.command(name)(fn)
        if name == "tokenize":  # estimate sits with the scope commands
            sub = typer.Typer(help="Memory and compute estimates (the 'scope' step).", no_args_is_help=True)
            for sub_name, sub_fn in ESTIMATE_COMMANDS.items():
                sub.command(sub_name)(sub_fn)
            app.add_typer(sub, name="estimate")
        if name == "data":  # tokenizer training sits before pre-training
            sub = typer.Typer(help="Tokenizers: train one on a corpus (BPE, Unigram, WordPiece).", no_args_is_help=True)
            for sub_name, sub_fn in TOKENIZER_COMMANDS.items():
                sub.command(sub_name)(sub_fn)
            app.add_typer(sub, name="tokenizer")
    return app


app = build_app()


def main() -> None:
    """Console entry point: an error a user can fix (bad input, a usage error, a full disk or read-only folder)
    is one line on stderr and exit 1, a traceback only with --debug (or for a bug); Ctrl-C exits 130 saying how
    to resume the run it interrupted (``llmcycle.cli.errors``)."""
    run_main(app, debug=lambda: _state["debug"])
