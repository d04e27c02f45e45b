"""The playground: one or two models (or one model with two settings) on one input or N rows, side by side.

A request names up to two columns, each a model and a generation settings block, plus the prompt
(template, k shots from a split) and the input: a text typed in, or N rows of a data split. Everything
is checked before any model loads: each column's settings through ``GenerationSettings`` (the one
settings type; an invalid field comes back as ``{"columns[1].generation.temperature": message}`` so the
page shows it beside the field), the template, the shots and the rows. Then the models load (kept, a
few at a time, for the next request) and the prompts are built with each model's own tokenizer and
budget (``llmcycle.prompts.build_prompts``: what was cut is reported with each prompt).

Outputs stream as newline-delimited JSON events: one input is generated token by token through the
serving package's ``DeltaStreamer`` (the streamed pieces join into the very text the engine returns);
N rows are generated batched (``generate_detailed``), each column's outputs sent when its batch is done.
Rows with a reference get ROUGE (``llmcycle.evaluation.rouge``), per row and for the column.

A model is ``builtin:NAME``, a folder, a hub id, or ``run:<run>/<label>``: a model a run's stage handed
on (``tuned-lora``, ``aligned-ppo``, ``int8``), loaded from the run's typed hand-off with the run's
recipe settings; ``adapter`` attaches a PEFT adapter folder to a non-run model. All model work runs on
one worker thread, so the page stays responsive and two requests never share a model at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Literal

from pydantic import Field, ValidationError

from llmcycle.core.config import StageConfig
from llmcycle.core.errors import ConfigError, LLMCycleError
from llmcycle.data import load_data
from llmcycle.evaluation.rouge import rouge_per_example
from llmcycle.generation import GenerationSettings, generate_detailed
from llmcycle.models import load_model
from llmcycle.models.chat import uses_chat
from llmcycle.prompts import FirstShots, RandomShots, build_prompts, get_template
from llmcycle.ui.runs import find_model

log = logging.getLogger("llmcycle.ui")

MAX_ROWS = 32
MAX_MODELS = 3  # models kept loaded between requests
RUN_PREFIX = "run:"


class FieldErrors(LLMCycleError):
    """Invalid fields of a request, ``{field path: message}``; the page shows each beside its field."""

    def __init__(self, fields: dict[str, str]):
        self.fields = fields
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))


class ModelChoice(StageConfig):
    """Which model a column runs."""

    source: str = Field(..., min_length=1, description="builtin:NAME, a model folder, a hub id, or run:<run>/<label> "
                        "(a model a run's stage handed on).")
    adapter: str | None = Field(None, description="A PEFT adapter folder to attach (not with run: models).")


class Column(StageConfig):
    """One side of the comparison: a model and its generation settings."""

    model: ModelChoice
    generation: dict[str, Any] = Field(default_factory=dict, description="GenerationSettings fields.")


class PlaygroundRequest(StageConfig):
    """What to generate: columns, prompt, input."""

    columns: list[Column] = Field(..., min_length=1, max_length=2, description="One or two columns side by side.")
    template: str = Field("none", min_length=1, description="Prompt template name (llmcycle.prompts.TEMPLATES).")
    shots: int = Field(0, ge=0, le=8, description="Solved examples before the query, from shots_split.")
    shot_selection: Literal["first", "random"] = Field("first", description="Which shots: the first k or a seeded "
                                                       "random draw per row.")
    data: str = Field("builtin:dialogues", min_length=1, description="Data set for rows and shots.")
    split: str = Field("test", min_length=1, description="Split the rows come from.")
    shots_split: str = Field("train", min_length=1, description="Split the shots come from.")
    input: str | None = Field(None, description="One input typed in (instead of rows from the split).")
    reference: str | None = Field(None, description="Its reference, for ROUGE (optional).")
    rows: int = Field(1, ge=1, le=MAX_ROWS, description="How many rows of the split (when no input is typed).")
    start: int = Field(0, ge=0, description="The first row of the split.")
    max_input_tokens: int | None = Field(None, ge=1, description="Prompt budget (default: the model's).")


def settings_errors(data: Any) -> tuple[GenerationSettings | None, dict[str, str]]:
    """``GenerationSettings`` from a mapping, or ``{field: message}`` for every invalid field: fields invalid on
    their own first, then (those left at their defaults) the combinations of the others, so every problem shows at
    once."""
    if not isinstance(data, dict):
        return None, {"generation": "settings must be a mapping of field: value"}
    errors: dict[str, str] = {}
    for _ in range(2):
        try:
            settings = GenerationSettings.model_validate(data)
            return (settings, {}) if not errors else (None, errors)
        except ValidationError as exc:
            for err in exc.errors():
                loc = err.get("loc") or ()
                name = str(loc[0]) if loc else "generation"
                msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
                if err.get("type") == "extra_forbidden":
                    msg = f"unknown field; valid: {', '.join(GenerationSettings.model_fields)}"
                errors.setdefault(name, msg)
        data = {k: v for k, v in data.items() if k not in errors}  # the rest, checked together
    return None, errors


def parse_request(body: Any) -> tuple[PlaygroundRequest, list[GenerationSettings]]:
    """The request and each column's settings; ``FieldErrors`` naming every invalid field."""
    if not isinstance(body, dict):
        raise ConfigError("the request must be a JSON object")
    fields: dict[str, str] = {}
    raw_columns = body.get("columns")
    settings: list[GenerationSettings] = []
    if isinstance(raw_columns, list):
        for i, col in enumerate(raw_columns):
            gen = col.get("generation", {}) if isinstance(col, dict) else {}
            s, errs = settings_errors(gen)
            fields |= {f"columns[{i}].generation.{k}": v for k, v in errs.items()}
            if s is not None:
                settings.append(s)
    try:
        req = PlaygroundRequest.model_validate(body)
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in err.get("loc") or ()).replace(".[", "[")
            if ".generation." in loc:
                continue
            fields.setdefault(loc or "request", str(err.get("msg", "invalid")).removeprefix("Value error, "))
        raise FieldErrors(fields) from None
    if fields:
        raise FieldErrors(fields)
    for i, col in enumerate(req.columns):
        if col.model.source.startswith(RUN_PREFIX) and col.model.adapter:
            raise FieldErrors({f"columns[{i}].model.adapter": "a run's model is loaded as the run made it; attach "
                               "adapters to a builtin, folder or hub model"})
    try:
        get_template(req.template)
    except LLMCycleError as exc:
        raise FieldErrors({"template": str(exc)}) from None
    if req.input is not None and not req.input.strip():
        raise FieldErrors({"input": "the input is empty; type a text or clear it to use rows of the split"})
    return req, settings


class ModelCache:
    """The last few models loaded, by source (least recently used dropped first)."""

    def __init__(self, runs_dir: str | Path, size: int = MAX_MODELS):
        self.runs_dir, self.size = Path(runs_dir), size
        self.models: OrderedDict[tuple[str, str | None], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, choice: ModelChoice) -> Any:
        key = (choice.source.strip(), choice.adapter or None)
        with self._lock:
            if key in self.models:
                self.models.move_to_end(key)
                return self.models[key]
        loaded = self._load(*key)
        with self._lock:
            self.models[key] = loaded
            while len(self.models) > self.size:
                self.models.popitem(last=False)
        return loaded

    def _load(self, source: str, adapter: str | None) -> Any:
        try:
            if source.startswith(RUN_PREFIX):
                name, _, label = source[len(RUN_PREFIX):].partition("/")
                if not name or not label:
                    raise ConfigError(f"model {source!r}: a run's model is run:<run>/<label>, e.g. "
                                      "run:quickstart-20261206-101500/tuned-lora")
                handoff, model_cfg = find_model(self.runs_dir, name, label)
                loaded = handoff.load(model_cfg)
            else:
                loaded = load_model(source, adapter=adapter)
        except LLMCycleError:
            raise
        except (OSError, ValueError, RuntimeError, KeyError, ImportError) as exc:  # files transformers or peft refuse
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise LLMCycleError(f"{source}" + (f" with adapter {adapter}" if adapter else "")
                                + f" cannot be loaded: {first}") from None
        if loaded.kind not in ("seq2seq", "causal"):
            raise LLMCycleError(f"{source} is a {loaded.kind} model; the playground needs a seq2seq or causal LM")
        return loaded


@dataclass
class Prepared:
    """A request ready to run: rows, loaded models and their prompts."""

    request: PlaygroundRequest
    settings: list[GenerationSettings]
    rows: list[dict[str, Any]]
    models: list[Any]
    prompts: list[Any]  # one PromptBatch per column


class Playground:
    """Runs playground requests on one worker thread, with a model cache and a data cache."""

    def __init__(self, runs_dir: str | Path):
        self.models = ModelCache(runs_dir)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmcycle-ui-model")
        self._data: dict[tuple[str, str], Any] = {}

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def run_on_worker(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, lambda: fn(*args, **kwargs))

    def _split(self, source: str, split: str, field: str) -> Any:
        """One split of a data set (cached); a source or split that cannot be read is an error on ``field``."""
        key = (source, split)
        if key not in self._data:
            try:
                data = load_data(source, split=split)
            except LLMCycleError as exc:
                raise FieldErrors({field: str(exc)}) from None
            self._data[key] = data[next(iter(data))]
        return self._data[key]

    def prepare(self, req: PlaygroundRequest, settings: list[GenerationSettings]) -> Prepared:
        """Rows, models and prompts (on the worker thread: loading takes seconds)."""
        if req.input is not None:
            row: dict[str, Any] = {"input": req.input, "dialogue": req.input,
                                   "references": [req.reference] if req.reference and req.reference.strip() else []}
            rows = [row]
        else:
            split = self._split(req.data, req.split, "data")
            if req.start >= len(split):
                raise FieldErrors({"start": f"the {req.split} split of {req.data} has {len(split)} rows (0.."
                                   f"{len(split) - 1})"})
            end = min(len(split), req.start + req.rows)
            rows = [dict(split[i]) for i in range(req.start, end)]
        selector = None
        if req.shots:
            pool = self._split(req.data, req.shots_split, "shots_split")
            try:
                selector = (FirstShots(pool, req.shots) if req.shot_selection == "first"
                            else RandomShots(pool, req.shots, seed=42))
            except LLMCycleError as exc:
                raise FieldErrors({"shots": str(exc)}) from None
        models, prompts = [], []
        for i, col in enumerate(req.columns):
            try:
                loaded = self.models.get(col.model)
            except LLMCycleError as exc:
                raise FieldErrors({f"columns[{i}].model.source": str(exc)}) from None
            models.append(loaded)
            try:
                prompts.append(build_prompts(req.template, rows, tokenizer=loaded.tokenizer, shots=selector,
                                             max_input_tokens=req.max_input_tokens, chat=uses_chat(loaded)))
            except LLMCycleError as exc:  # a template field the rows lack, a budget too small for the template
                raise FieldErrors({"template": str(exc)}) from None
        return Prepared(req, settings, rows, models, prompts)

    async def events(self, p: Prepared) -> AsyncIterator[dict[str, Any]]:
        """The outputs as events (see the module docstring)."""
        stream_one = len(p.rows) == 1
        for c, (loaded, batch, settings) in enumerate(zip(p.models, p.prompts, p.settings)):
            for r, prompt in enumerate(batch.prompts):
                yield {"type": "prompt", "col": c, "row": r, "text": prompt.text, "tokens": prompt.n_tokens,
                       "note": _cut_note(prompt), "reference": _refs(p.rows[r])[:1]}
            t0 = time.perf_counter()
            streamable = stream_one and settings.num_beams == 1 and settings.num_return_sequences == 1
            if streamable:
                results = []
                async for event in self._stream(loaded, batch.texts[0], settings, c):
                    if "result" in event:
                        results = [event["result"]]
                    else:
                        yield event
            else:
                results = await self.run_on_worker(generate_detailed, loaded, batch.texts, settings, truncate=True)
            seconds = time.perf_counter() - t0
            scores = _scores([r.text for r in results], [_refs(row) for row in p.rows])
            for r, result in enumerate(results):
                yield {"type": "output", "col": c, "row": r, "text": result.text,
                       "more": result.texts[1:], "tokens": result.outputs[0].new_tokens,
                       "finish": result.outputs[0].finish_reason, "truncated": result.truncated,
                       "rouge": scores[r]}
            scored = [s for s in scores if s is not None]
            mean = {k: sum(s[k] for s in scored) / len(scored) for k in ("rouge1", "rouge2", "rougeL")} \
                if scored else None
            yield {"type": "summary", "col": c, "model": p.request.columns[c].model.source, "label": loaded.label,
                   "seconds": round(seconds, 3), "rows": len(results), "scored": len(scored), "rouge": mean}
        yield {"type": "done"}

    async def _stream(self, loaded: Any, prompt: str, settings: GenerationSettings,
                      col: int) -> AsyncIterator[dict[str, Any]]:
        from llmcycle.serving.streaming import DeltaStreamer  # transformers: only when a stream starts

        streamer = DeltaStreamer(loaded.tokenizer, settings.stop)
        future = asyncio.ensure_future(self.run_on_worker(generate_detailed, loaded, [prompt], settings,
                                                          truncate=True, streamer=streamer))
        future.add_done_callback(lambda f: streamer.close() if f.cancelled() or f.exception() is not None else None)
        try:
            async for piece in streamer.pieces():
                yield {"type": "delta", "col": col, "row": 0, "text": piece}
            result = (await future)[0]
            rest = streamer.deltas.finish(result.text)
            if rest:
                yield {"type": "delta", "col": col, "row": 0, "text": rest}
            yield {"result": result}
        finally:
            if not future.done():  # the page went away: stop generating for it
                streamer.cancelled = True


def _refs(row: dict[str, Any]) -> list[str]:
    refs = row.get("references") or []
    return [r for r in refs if isinstance(r, str) and r.strip()]


def _scores(predictions: list[str], references: list[list[str]]) -> list[dict[str, float] | None]:
    """ROUGE F1 per row against its references (best of several); None for a row without one."""
    have = [i for i, refs in enumerate(references) if refs]
    out: list[dict[str, float] | None] = [None] * len(predictions)
    if have:
        per = rouge_per_example([predictions[i] for i in have], [references[i] for i in have],
                                rouge_types=("rouge1", "rouge2", "rougeL"))
        for i, s in zip(have, per):
            out[i] = {k: round(float(v.fmeasure), 4) for k, v in s.items()}
    return out


def _cut_note(prompt: Any) -> str:
    """What the budget did to a prompt, in words (empty when nothing was cut)."""
    notes = []
    if prompt.shots_dropped:
        notes.append(f"{len(prompt.shots_dropped)} shot(s) dropped to fit {prompt.max_tokens} tokens")
    if prompt.input_truncated:
        notes.append(f"input cut by {prompt.tokens_removed} tokens to fit {prompt.max_tokens}")
    if prompt.shots_excluded:
        notes.append("a shot equal to the input was skipped")
    return "; ".join(notes)
