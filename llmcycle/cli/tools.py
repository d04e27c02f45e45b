"""Commands that inspect a model without a run directory: ``models``, ``info``, ``tokenize``."""

from __future__ import annotations

from typing import Optional

import typer

from llmcycle.cli.output import console, table
from llmcycle.models import load_model
from llmcycle.models.architectures import ALIASES, bundled_ids
from llmcycle.models.builtins import BUILTINS
from llmcycle.models.info import describe, load_tokenizer
from llmcycle.models.loader import resolve_device
from llmcycle.models.tokenize import tokenize_text
from llmcycle.models.trace import trace as walk


def models_cmd() -> None:
    """List the builtin models and the hub ids whose architecture ships with llmcycle."""
    console.print(table("builtin models (no download)",
                        [(f"builtin:{b.name}", b.kind, "pretrained" if b.pretrained else "random", b.description)
                         for b in BUILTINS.values()], ("name", "kind", "weights", "what")))
    aliases: dict[str, list[str]] = {}
    for alias, target in ALIASES.items():
        aliases.setdefault(target, []).append(alias)
    console.print(table("bundled architectures (info / estimate offline; weights='random' builds them untrained)",
                        [(i, ", ".join(aliases.get(i, []))) for i in bundled_ids()], ("hub id", "aliases")))


def info_cmd(
    model: str = typer.Argument(..., help="Hub id, local directory or builtin:NAME."),
    trace: Optional[str] = typer.Option(None, "--trace", help="Walk this text through the model, component by "
                                        "component."),
    weights: str = typer.Option("pretrained", help="pretrained | random (random: the architecture untrained)."),
    dtype: str = typer.Option("fp32", help="fp32 | bf16 | fp16 (affects the memory figures)."),
    device: str = typer.Option("cpu", help="cpu | cuda | auto."),
) -> None:
    """Model card: kind, family, layers, heads, sizes, parameters and memory; --trace walks a text through it."""
    resolve_device(device)  # an unknown or absent device fails even when no weights are loaded
    loaded = load_model(model, weights=weights, dtype=dtype, device=device) if trace is not None else None
    card = describe(loaded or model, weights=weights, dtype=dtype)
    console.print(table(f"{card.label}", card.rows(), ("property", "value")))
    if loaded is not None:
        for step in walk(loaded, trace or ""):
            console.print(step.title, style="bold")
            for line in step.lines:
                console.print(f"  {line}", highlight=False, markup=False)


def tokenize_cmd(
    model: str = typer.Argument(..., help="Hub id, local directory or builtin:NAME (its tokenizer is used)."),
    text: str = typer.Argument(..., help="The text to tokenise."),
    special: bool = typer.Option(False, "--special", help="Add the model's special tokens ([CLS], </s>, ...)."),
) -> None:
    """Tokens, ids and the decoded round trip, flagging unknown tokens and lossy round trips."""
    result = tokenize_text(load_tokenizer(model), text, add_special_tokens=special)
    rows = [(i, tok, tid, "UNKNOWN" if i in result.unknown else "") for i, (tok, tid) in
            enumerate(zip(result.tokens, result.ids))]
    console.print(table(f"{len(result.ids)} tokens", rows, ("#", "token", "id", "")))
    console.print(f"decoded: {result.decoded!r}", highlight=False, markup=False)
    if result.lossless:
        console.print("round trip: lossless")
    else:
        console.print(f"round trip is lossy: {'; '.join(result.losses)}", style="yellow")
