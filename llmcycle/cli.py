"""The ``llmcycle`` command line: one typer app, each subcommand a thin shell over a library call.

No logic lives here: parse options, call the stage function, render its result with rich.
Errors a user can fix (``LLMCycleError``) print one line and exit 1; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from llmcycle.errors import LLMCycleError

app = typer.Typer(
    name="llmcycle",
    help="Take a language model through the generative-AI lifecycle: select, prompt, evaluate, tune, align, "
    "optimise, serve. Every command works offline on builtin:* models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
estimate_app = typer.Typer(help="Memory and compute estimates (the 'scope' step).", no_args_is_help=True)
app.add_typer(estimate_app, name="estimate")

console = Console()
err_console = Console(stderr=True)
_state = {"debug": False}


@app.callback()
def _global(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks and library logs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and results."),
) -> None:
    _state["debug"] = debug
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    logging.getLogger("llmcycle").setLevel(level)
    if not debug:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        for noisy in ("transformers", "datasets", "huggingface_hub", "httpx", "urllib3", "filelock", "absl"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


def table(title: str, rows: list[tuple[Any, ...]], headers: tuple[str, ...]) -> Table:
    t = Table(title=title, title_justify="left", show_lines=False)
    for h in headers:
        t.add_column(h, overflow="fold")
    for r in rows:
        t.add_row(*(str(c) for c in r))
    return t


@app.command("models")
def models_cmd() -> None:
    """List the builtin models and the hub ids whose architecture ships with llmcycle."""
    from llmcycle.models.architectures import ALIASES, bundled_ids
    from llmcycle.models.builtins import BUILTINS

    console.print(table("builtin models (no download)",
                        [(f"builtin:{b.name}", b.kind, "pretrained" if b.pretrained else "random", b.description)
                         for b in BUILTINS.values()], ("name", "kind", "weights", "what")))
    aliases: dict[str, list[str]] = {}
    for alias, target in ALIASES.items():
        aliases.setdefault(target, []).append(alias)
    console.print(table("bundled architectures (info / estimate offline; weights='random' builds them untrained)",
                        [(i, ", ".join(aliases.get(i, []))) for i in bundled_ids()], ("hub id", "aliases")))


@app.command("info")
def info_cmd(
    model: str = typer.Argument(..., help="Hub id, local directory or builtin:NAME."),
    trace: Optional[str] = typer.Option(None, "--trace", help="Walk this text through the model, component by "
                                        "component."),
    weights: str = typer.Option("pretrained", help="pretrained | random (random: the architecture untrained)."),
    dtype: str = typer.Option("fp32", help="fp32 | bf16 | fp16 (affects the memory figures)."),
    device: str = typer.Option("cpu", help="cpu | cuda | auto."),
) -> None:
    """Model card: kind, family, layers, heads, sizes, parameters and memory; --trace walks a text through it."""
    from llmcycle.models import load_model
    from llmcycle.models.info import describe

    loaded = load_model(model, weights=weights, dtype=dtype, device=device) if trace is not None else None
    card = describe(loaded or model, weights=weights, dtype=dtype)
    console.print(table(f"{card.label}", card.rows(), ("property", "value")))
    if loaded is not None:
        from llmcycle.models.trace import trace as walk

        for step in walk(loaded, trace or ""):
            console.print(f"[bold]{step.title}[/bold]")
            for line in step.lines:
                console.print(f"  {line}", highlight=False, markup=False)


@app.command("tokenize")
def tokenize_cmd(
    model: str = typer.Argument(..., help="Hub id, local directory or builtin:NAME (its tokenizer is used)."),
    text: str = typer.Argument(..., help="The text to tokenise."),
    special: bool = typer.Option(False, "--special", help="Add the model's special tokens ([CLS], </s>, ...)."),
) -> None:
    """Tokens, ids and the decoded round trip, flagging unknown tokens and lossy round trips."""
    from llmcycle.models.info import load_tokenizer
    from llmcycle.models.tokenize import tokenize_text

    result = tokenize_text(load_tokenizer(model), text, add_special_tokens=special)
    rows = [(i, tok, tid, "UNKNOWN" if i in result.unknown else "") for i, (tok, tid) in
            enumerate(zip(result.tokens, result.ids))]
    console.print(table(f"{len(result.ids)} tokens", rows, ("#", "token", "id", "")))
    console.print(f"decoded: {result.decoded!r}", highlight=False, markup=False)
    if result.lossless:
        console.print("round trip: lossless")
    else:
        console.print(f"[yellow]round trip is lossy:[/yellow] {'; '.join(result.losses)}")


def main() -> None:
    """Console entry point: one-line errors for bad input, tracebacks only with --debug."""
    try:
        app()
    except LLMCycleError as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


# Subcommands defined in their own modules register themselves on import.
from llmcycle import cli_align, cli_benchmark, cli_generate, cli_optimize, cli_serve, cli_stages, cli_tune  # noqa: E402,F401

if __name__ == "__main__":
    # python -m llmcycle.cli: this file runs as __main__, but the subcommands above registered themselves on the
    # app of the imported module llmcycle.cli (a second instance), so run that one
    from llmcycle.cli import main as _main

    _main()
