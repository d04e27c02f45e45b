"""``llmcycle generate``: one prompt printed, or a file of prompts written to JSONL."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from llmcycle.cli.output import console, err_console
from llmcycle.core.errors import LLMCycleError
from llmcycle.core.files import atomic_write_jsonl
from llmcycle.generation import GenerationSettings, generate_detailed
from llmcycle.generation.io import read_inputs, result_records
from llmcycle.models import load_model
from llmcycle.models.chat import uses_chat
from llmcycle.prompts.chat import user_prompt


def _settings_dict(**given: Any) -> dict[str, Any]:
    """The options the user actually gave (None means 'not given': the preset or default applies)."""
    return {k: v for k, v in given.items() if v is not None and v is not False and v != []}


def _default_output(input_file: Path) -> Path:
    return input_file.with_name(f"{input_file.stem}.generated.jsonl")


def generate_cmd(
    model: str = typer.Argument(..., help="Hub id, local directory or builtin:NAME (seq2seq or causal LM)."),
    prompt: Optional[str] = typer.Argument(None, help="One prompt; its output is printed. Or use --input-file."),
    input_file: Optional[Path] = typer.Option(None, "--input-file", "-i", help="Prompts: .txt (one per line) or "
                                              ".jsonl (one object per line); outputs go to --output."),
    input_column: str = typer.Option("input", help="Field of a .jsonl line holding the prompt."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="JSONL of inputs and outputs (default: "
                                          "INPUT.generated.jsonl beside the input file)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
    preset: Optional[str] = typer.Option(None, help="greedy | creative | precise | beam4; options given below "
                                         "override it."),
    max_new_tokens: Optional[int] = typer.Option(None, help="Most tokens generated per output (default 64)."),
    min_new_tokens: Optional[int] = typer.Option(None, help="Fewest tokens before the end token is allowed."),
    sample: bool = typer.Option(False, "--sample", help="Sample (temperature, top-k, top-p) instead of greedy."),
    temperature: Optional[float] = typer.Option(None, help="Sampling temperature (> 0; needs --sample)."),
    top_k: Optional[int] = typer.Option(None, help="Sample among the k most likely tokens (needs --sample)."),
    top_p: Optional[float] = typer.Option(None, help="Nucleus sampling mass in (0, 1] (needs --sample)."),
    num_beams: Optional[int] = typer.Option(None, help="Beam search width."),
    length_penalty: Optional[float] = typer.Option(None, help="Beam search length penalty."),
    early_stopping: Optional[str] = typer.Option(None, help="Beam search: true | false | never (see "
                                                 "GenerationSettings.early_stopping)."),
    no_repeat_ngram_size: Optional[int] = typer.Option(None, help="Never repeat an n-gram of this size."),
    repetition_penalty: Optional[float] = typer.Option(None, help="CTRL-style repetition penalty (1: off)."),
    frequency_penalty: Optional[float] = typer.Option(None, help="OpenAI frequency penalty in [-2, 2]."),
    presence_penalty: Optional[float] = typer.Option(None, help="OpenAI presence penalty in [-2, 2]."),
    stop: Optional[List[str]] = typer.Option(None, "--stop", help="Stop string (repeatable): generation stops "
                                             "there and the output is cut before it."),
    num_return_sequences: Optional[int] = typer.Option(None, "--num-return-sequences", "-n",
                                                       help="Outputs per prompt (sampling or beams)."),
    seed: Optional[int] = typer.Option(None, help="Sampling seed (each prompt seeded from it and its position)."),
    batch_size: int = typer.Option(8, help="Prompts per batch."),
    max_input_tokens: Optional[int] = typer.Option(None, help="Longest prompt allowed, in tokens (default: the "
                                                   "model's limit)."),
    truncate: bool = typer.Option(False, "--truncate", help="Cut prompts longer than --max-input-tokens instead "
                                  "of failing."),
    dtype: str = typer.Option("fp32", help="fp32 | bf16 | fp16 | auto."),
    device: str = typer.Option("cpu", help="cpu | cuda | auto."),
    chat: str = typer.Option("auto", help="auto | always | never: send each prompt as a user turn through the "
                             "model's chat template (auto: when its tokenizer has one)."),
) -> None:
    """Generate text: one PROMPT (printed) or --input-file (JSONL written), with any decoding settings."""
    if (prompt is None) == (input_file is None):
        raise LLMCycleError("give exactly one of a PROMPT argument or --input-file FILE (.txt or .jsonl)")
    if output is not None and input_file is None:
        raise LLMCycleError("--output needs --input-file (a single prompt's output is printed)")
    settings = GenerationSettings.parse(_settings_dict(
        preset=preset, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens, do_sample=sample,
        temperature=temperature, top_k=top_k, top_p=top_p, num_beams=num_beams, length_penalty=length_penalty,
        early_stopping={"true": True, "false": None}.get(early_stopping or "", early_stopping),
        no_repeat_ngram_size=no_repeat_ngram_size, repetition_penalty=repetition_penalty,
        frequency_penalty=frequency_penalty, presence_penalty=presence_penalty, stop=stop,
        num_return_sequences=num_return_sequences, seed=seed), where="generate")
    if input_file is not None:
        prompts = read_inputs(input_file, input_column)
        output = output or _default_output(input_file)
        if output.exists() and not force:
            raise LLMCycleError(f"{output} exists; pass --force to overwrite it or choose another --output")
    else:
        if not prompt or not prompt.strip():
            raise LLMCycleError("the prompt is empty")
        prompts = [prompt]
    loaded = load_model(model, dtype=dtype, device=device, chat=chat)
    texts = list(prompts)
    if uses_chat(loaded):  # the one chat path: a prompt is the user's turn (llmcycle.prompts.chat)
        prompts = [user_prompt(loaded.tokenizer, p) for p in prompts]
    results = generate_detailed(loaded, prompts, settings, batch_size=batch_size, max_input_tokens=max_input_tokens,
                                progress=input_file is not None, truncate=truncate)
    if input_file is None:
        _print_outputs(results[0])
        return
    atomic_write_jsonl(output, result_records(results, inputs=texts))
    n_out = sum(len(r.outputs) for r in results)
    truncated = sum(r.truncated for r in results)
    console.print(f"wrote {n_out} outputs for {len(results)} prompts to {output}"
                  + (f" ({truncated} prompts truncated)" if truncated else ""), highlight=False)


def _print_outputs(result: Any) -> None:
    many = len(result.outputs) > 1
    for k, out in enumerate(result.outputs, start=1):
        console.print(f"[{k}] {out.text}" if many else out.text, markup=False, highlight=False, soft_wrap=True)
        err_console.print(f"({out.new_tokens} new tokens, finished by {out.finish_reason})", style="dim",
                          highlight=False)
