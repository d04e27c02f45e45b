"""A serving smoke test: the model behind the real HTTP server, called as an application would call it.

``smoke_test(loaded, prompts, SmokeConfig(), out_dir)`` starts the OpenAI-compatible server on a
free loopback port (a thread, real uvicorn and sockets), sends ``requests`` greedy completions from
``clients`` concurrent clients, one streamed chat completion and a few malformed requests, and
records status codes, latencies, throughput and the batches the scheduler formed. It checks that
how many served completions equal what ``llmcycle.generation`` produces offline for the same prompt
(the streamed one must: see ``SmokeResult.passed``), and that the malformed requests got 4xx, never 5xx. The recipe's ``serve`` stage runs it.
"""

from __future__ import annotations

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from llmcycle.core.config import StageConfig
from llmcycle.core.errors import LLMCycleError
from llmcycle.core.files import atomic_write_json
from llmcycle.generation import generate
from llmcycle.generation.settings import GenerationSettings
from llmcycle.serving.config import ServeConfig

HTTP_FIELDS = {"max_new_tokens", "stop", "frequency_penalty", "presence_penalty", "repetition_penalty"}


class SmokeConfig(StageConfig):
    """Serve the current model on loopback and call it like a client (the recipe's ``serve`` stage)."""

    requests: int = Field(8, ge=1, description="Greedy completions sent (the first rows of the data split).")
    clients: int = Field(4, ge=1, description="Concurrent clients sending them.")
    generation: GenerationSettings = Field(
        default_factory=lambda: GenerationSettings(max_new_tokens=32),
        description="Decoding of every request (greedy: served outputs are compared with offline generation); "
        "only what an OpenAI request can carry: max_new_tokens (max_tokens), stop, frequency_penalty, "
        "presence_penalty, repetition_penalty.")
    max_batch_size: int = Field(8, ge=1, description="Server: most requests per batched generate call.")
    max_wait_ms: float = Field(50.0, ge=0, description="Server: how long a batch that is not full waits for more.")
    template: str = Field("none", description="Prompt template applied to each row (llmcycle.prompts).")

    @field_validator("generation")
    @classmethod
    def _over_http(cls, value: GenerationSettings) -> GenerationSettings:
        if value.do_sample:
            raise ValueError("do_sample: the smoke test decodes greedily, so that served outputs can be compared "
                             "with offline generation")
        bad = value.non_default_fields(allowed=HTTP_FIELDS)
        if bad:
            raise ValueError(f"{bad[0]}: an OpenAI request cannot carry it; the smoke test takes "
                             f"{', '.join(sorted(HTTP_FIELDS))}")
        return value

    def request_fields(self) -> dict[str, Any]:
        """The OpenAI request fields that ask the server for ``generation``."""
        g = self.generation
        body: dict[str, Any] = {"temperature": 0, "max_tokens": g.max_new_tokens}
        if g.stop:
            body["stop"] = g.stop
        for name in ("frequency_penalty", "presence_penalty", "repetition_penalty"):
            if getattr(g, name) != GenerationSettings.model_fields[name].default:
                body[name] = getattr(g, name)
        return body


@dataclass
class SmokeResult:
    requests: int
    ok: int
    failed: int
    seconds: float
    throughput_rps: float
    p50_ms: float
    max_ms: float
    matches_offline: int
    empty_outputs: int  # 200 answers whose completion text is empty
    stream_chunks: int
    stream_matches: bool
    bad_requests: dict[str, int]
    batches: dict[int, int] = field(default_factory=dict)  # batch size -> batches of that size
    examples: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def problems(self) -> list[str]:
        """Why the smoke test failed (empty when it passed)."""
        out = []
        if self.failed:
            out.append(f"{self.failed} of {self.requests} completions failed")
        if self.ok and self.empty_outputs == self.ok:  # one empty answer can be the model's; all of them is not
            out.append(f"all {self.ok} completions came back empty")
        if self.stream_chunks == 0:
            out.append("the streamed chat completion sent no text")
        elif not self.stream_matches:
            out.append("the streamed text differs from offline generation")
        out += [f"the malformed request '{k}' got {c}, not a 4xx" for k, c in self.bad_requests.items()
                if not 400 <= c < 500]
        return out

    @property
    def passed(self) -> bool:
        """No failed request, not every completion empty, a stream that sent text equal to offline generation,
        every malformed request a 4xx (``problems`` says what failed).

        Batched completions are compared with offline generation but not required to match: padding a
        row inside a batch changes logits by float rounding (~1e-6), which flips a greedy choice where
        two tokens are nearly tied (common in a barely trained model). The streamed request runs alone,
        as offline generation does, and must match exactly.
        """
        return not self.problems


def smoke_test(loaded: Any, prompts: list[str], cfg: SmokeConfig | dict[str, Any], out_dir: str | Path,
               user_texts: list[str] | None = None) -> SmokeResult:
    """Run the smoke test (see the module docstring); writes ``serve_smoke.json`` under ``out_dir``.

    ``user_texts``: for a model used in chat form, what each prompt says as the user turn (``prompts`` are
    then their chat renderings); the streamed chat request sends that text, which the server renders
    through the same chat path, so its answer must equal the offline one."""
    import httpx

    from llmcycle.serving.app import create_app  # FastAPI, torch: only when the smoke test runs
    from llmcycle.serving.server import BackgroundServer

    cfg = cfg if isinstance(cfg, SmokeConfig) else SmokeConfig.from_dict(dict(cfg), where="serve")
    prompts = list(prompts)[: cfg.requests]
    if not prompts:
        raise LLMCycleError("serve: no prompts to send")
    offline = generate(loaded, prompts, cfg.generation, batch_size=1,
                       truncate=True)
    app = create_app(ServeConfig(model=loaded.source, max_batch_size=cfg.max_batch_size,
                                 max_wait_ms=cfg.max_wait_ms, log_requests=False), loaded=loaded)
    scheduler = app.state.service.scheduler
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=600) as client:
        def complete(prompt: str) -> tuple[int, float, str]:
            t = time.perf_counter()
            r = client.post("/v1/completions", json={"model": "base", "prompt": prompt, **cfg.request_fields()})
            text = r.json()["choices"][0]["text"] if r.status_code == 200 else ""
            return r.status_code, (time.perf_counter() - t) * 1000, text

        start = time.perf_counter()
        with ThreadPoolExecutor(cfg.clients) as pool:
            answers = list(pool.map(complete, prompts))
        seconds = time.perf_counter() - start
        batches = {int(k): int(v) for k, v in sorted(scheduler.batch_sizes.items())}  # the completions' batches
        chunks: list[str] = []
        first = next((i for i, o in enumerate(offline) if o), 0)  # a prompt with something to stream
        with client.stream("POST", "/v1/chat/completions", json={
                "model": "base", "messages": [{"role": "user", "content": (user_texts or prompts)[first]}], **cfg.request_fields(),
                "stream": True}) as r:
            for line in r.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    delta = json.loads(line[6:])["choices"][0]["delta"].get("content")
                    if delta:
                        chunks.append(delta)
        bad = {
            "bad JSON": client.post("/v1/completions", content=b"{not json",
                                    headers={"content-type": "application/json"}).status_code,
            "unknown model": client.post("/v1/completions", json={"model": "nope", "prompt": "hi"}).status_code,
            "temperature 5": client.post("/v1/completions", json={"model": "base", "prompt": "hi",
                                                                  "temperature": 5}).status_code,
        }
    lat = [a[1] for a in answers if a[0] == 200]
    ok = sum(a[0] == 200 for a in answers)
    result = SmokeResult(
        requests=len(prompts), ok=ok, failed=len(prompts) - ok, seconds=round(seconds, 3),
        throughput_rps=round(len(prompts) / seconds, 3), p50_ms=round(statistics.median(lat), 1) if lat else 0.0,
        max_ms=round(max(lat), 1) if lat else 0.0,
        matches_offline=sum(a[2] == o for a, o in zip(answers, offline)),
        empty_outputs=sum(a[0] == 200 and not a[2].strip() for a in answers),
        stream_chunks=len(chunks), stream_matches="".join(chunks) == offline[first], bad_requests=bad,
        batches=batches, examples=[{"prompt": p[:300], "served": a[2]} for p, a in zip(prompts[:3], answers)])
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(out_dir) / "serve_smoke.json", result.to_dict() | {"passed": result.passed,
                                                                              "problems": result.problems,
                                                                              "config": cfg.model_dump(mode="json")})
    return result
