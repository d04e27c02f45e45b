"""What the routes do: validate a request, queue its prompts, shape OpenAI responses and streams.

Routes stay thin (``llmcycle.serving.app``); this holds the logic. A request is checked in this
order, each failure a 4xx naming the field: JSON body -> fields -> ``model`` (404) -> generation
settings and ``max_tokens`` -> prompt length in tokens (400, ``context_length_exceeded``). Only then
is anything queued. Token counts go to ``request.state.usage`` for the request log.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, AsyncIterator

from llmcycle.core.errors import LLMCycleError
from llmcycle.serving.config import ServeConfig
from llmcycle.serving.models import ServedModels
from llmcycle.serving.protocol import APIError, ChatRequest, CompletionRequest, generation_settings
from llmcycle.serving.scheduler import Job, Scheduler
from llmcycle.serving.streaming import DeltaStreamer, sse

log = logging.getLogger("llmcycle.serving")

FINISH = {"eos": "stop", "stop": "stop", "length": "length"}  # engine's reason -> OpenAI's


class Service:
    """The served models, their scheduler, and the OpenAI endpoints' behaviour."""

    def __init__(self, config: ServeConfig, models: ServedModels):
        self.config, self.models = config, models
        self.scheduler = Scheduler(models.generate, config.effective_batch_size,
                                   config.max_wait_ms if config.batching else 0.0, config.max_queue)
        self.created = int(time.time())

    # ---- checks ---------------------------------------------------------------------------------

    def model_name(self, name: str) -> str:
        if name not in self.models.routes:
            raise APIError(404, f"model: the model {name!r} does not exist on this server; served models: "
                           f"{', '.join(self.models.names)} (GET /v1/models)", param="model", code="model_not_found")
        return name

    def settings(self, req: Any) -> tuple[Any, int, int]:
        """(generation settings, copies of each output, prompt-token limit) for ``req``."""
        settings, copies = generation_settings(req, self.config.max_tokens,
                                              min(self.config.default_max_tokens, self.config.max_tokens))
        try:
            limit = self.models.input_limit(settings)
        except LLMCycleError as exc:  # a decoder-only model whose positions max_tokens fills
            raise APIError(400, f"max_tokens: {exc}", param="max_tokens", code="invalid_value") from None
        return settings, copies, limit

    def count(self, prompt: str, limit: int, param: str) -> int:
        n = self.models.count_tokens(prompt)
        if n > limit:
            raise APIError(400, f"{param}: the prompt has {n} tokens, more than the {limit} this server accepts "
                           f"for {self.config.model} (shorten it, or ask for fewer max_tokens on a decoder-only "
                           "model)", param=param, code="context_length_exceeded")
        return n

    def job(self, model: str, prompt: str, settings: Any, seeded: bool, streamer: Any = None) -> Job:
        solo = streamer is not None or (settings.do_sample and seeded)
        key = uuid.uuid4().hex if solo else f"{model}\n{settings.model_dump_json(exclude={'seed'})}"
        return Job(model, prompt, settings, key, solo=solo, streamer=streamer)

    # ---- endpoints ------------------------------------------------------------------------------

    async def completions(self, req: CompletionRequest, state: Any) -> Any:
        model = self.model_name(req.model)
        settings, copies, limit = self.settings(req)
        if len(req.prompt) > self.scheduler.max_queue:  # could never be queued whole: the client's to split
            raise APIError(400, f"prompt: {len(req.prompt)} prompts in one request, more than the "
                           f"{self.scheduler.max_queue} this server queues at once (max_queue); send them in "
                           "smaller requests", param="prompt", code="invalid_value")
        for prompt in req.prompt:
            self.count(prompt, limit, "prompt")
        if req.stream:
            if len(req.prompt) > 1 or req.n > 1:
                raise APIError(400, "stream: streaming takes one prompt and n=1", param="stream",
                               code="invalid_value")
            return self._stream(req, model, req.prompt[0], settings, state, chat=False)
        futures = self.scheduler.enqueue_all([self.job(model, p, settings, req.seed is not None) for p in req.prompt])
        results = await asyncio.gather(*futures)
        choices = []
        for prompt, result in zip(req.prompt, results):
            for out in _copies(result.outputs, copies):
                choices.append({"index": len(choices), "text": (prompt if req.echo else "") + out.text,
                                "logprobs": None, "finish_reason": FINISH[out.finish_reason]})
        return self._response("cmpl", "text_completion", model, choices, _usage(results, copies), state)

    async def chat(self, req: ChatRequest, state: Any) -> Any:
        model = self.model_name(req.model)
        settings, copies, limit = self.settings(req)
        prompt = self.models.chat_prompt([(m.role, m.text) for m in req.messages])
        self.count(prompt, limit, "messages")
        if req.stream:
            if req.n > 1:
                raise APIError(400, "stream: streaming takes n=1", param="stream", code="invalid_value")
            return self._stream(req, model, prompt, settings, state, chat=True)
        result = await self.scheduler.submit(self.job(model, prompt, settings, req.seed is not None))
        outputs = _copies(result.outputs, copies)
        choices = [{"index": i, "message": {"role": "assistant", "content": out.text}, "logprobs": None,
                    "finish_reason": FINISH[out.finish_reason]} for i, out in enumerate(outputs)]
        return self._response("chatcmpl", "chat.completion", model, choices, _usage([result], copies), state)

    def _response(self, prefix: str, kind: str, model: str, choices: list, usage: dict, state: Any) -> dict:
        state.usage = usage
        return {"id": f"{prefix}-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()), "model": model,
                "choices": choices, "usage": usage}

    # ---- streaming ------------------------------------------------------------------------------

    def _stream(self, req: Any, model: str, prompt: str, settings: Any, state: Any, chat: bool) -> AsyncIterator[str]:
        """Queue the request now (so 503s are plain errors) and return its server-sent events."""
        streamer = DeltaStreamer(self.models.loaded.tokenizer, settings.stop)
        future = self.scheduler.enqueue(self.job(model, prompt, settings, req.seed is not None, streamer))
        chunk = _Chunks(model, chat)
        return self._events(req, prompt, streamer, future, chunk, state)

    async def _events(self, req: Any, prompt: str, streamer: DeltaStreamer, future: asyncio.Future,
                      chunk: "_Chunks", state: Any) -> AsyncIterator[str]:
        try:
            if chunk.chat:
                yield sse(chunk.piece("", role=True))
            elif getattr(req, "echo", False):
                yield sse(chunk.piece(prompt))
            async for piece in streamer.pieces():
                yield sse(chunk.piece(piece))
            result = await future
            out = result.outputs[0]
            rest = streamer.deltas.finish(out.text)
            if rest:
                yield sse(chunk.piece(rest))
            if streamer.deltas.sent != out.text:  # a decoding quirk made the pieces diverge; say so in the log
                log.warning("streamed text differs from the final text (%d vs %d characters)",
                            len(streamer.deltas.sent), len(out.text))
            yield sse(chunk.piece(None, finish=FINISH[out.finish_reason]))
            state.usage = _usage([result], 1)
            if req.include_usage:
                yield sse(chunk.usage(state.usage))
        except (APIError, LLMCycleError) as exc:
            error = exc if isinstance(exc, APIError) else APIError(400, str(exc))
            yield sse(error.body())
        except Exception as exc:  # the stream has started: report in-band, log the bug
            log.exception("streamed generation failed")
            yield sse(APIError(500, f"internal error: {type(exc).__name__}", type="server_error").body())
        finally:
            if not future.done():  # the client left: stop generating for it
                streamer.cancelled = True
                future.cancel()
        yield sse("[DONE]")

    # ---- info -----------------------------------------------------------------------------------

    def model_card(self, name: str) -> dict[str, Any]:
        adapter = self.config.adapters.get(name)
        return {"id": name, "object": "model", "created": self.created, "owned_by": "llmcycle",
                "root": self.config.model, "parent": self.config.name if adapter else None,
                "adapter": adapter}

    def health(self) -> dict[str, Any]:
        return {"status": "shutting down" if self.scheduler.closing else "ok", "models": self.models.names,
                "kind": self.models.kind, "batching": self.config.batching, **self.scheduler.stats()}


class _Chunks:
    """OpenAI streaming chunks of one response (completions or chat)."""

    def __init__(self, model: str, chat: bool):
        self.model, self.chat = model, chat
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def _wrap(self, choices: list) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk" if self.chat else "text_completion",
                "created": self.created, "model": self.model, "choices": choices}

    def piece(self, text: str | None, finish: str | None = None, role: bool = False) -> dict[str, Any]:
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else \
                ({} if text is None else {"content": text})
            return self._wrap([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])
        return self._wrap([{"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}])

    def usage(self, usage: dict[str, int]) -> dict[str, Any]:
        return {**self._wrap([]), "usage": usage}


def _copies(outputs: list, copies: int) -> list:
    """Greedy ``n > 1``: the one output, ``n`` times."""
    return outputs * copies if copies > 1 else outputs


def _usage(results: list, copies: int) -> dict[str, int]:
    prompt = sum(r.input_tokens for r in results)
    completion = sum(o.new_tokens for r in results for o in r.outputs) * copies
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
