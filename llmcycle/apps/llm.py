"""The LLM an application talks to: an llmcycle model in this process, or any OpenAI-compatible endpoint.

Both take finished prompt texts and one ``GenerationSettings`` and return, per prompt,
``num_return_sequences`` ``Completion`` objects (text and why it ended), so RAG, PAL, ReAct and
self-consistency run unchanged against ``llmcycle serve``, vLLM or llama.cpp, as they would in production.

* ``LocalLLM(loaded)``: the batched engine (``llmcycle.generation``); with ``chat=True`` prompts are
  wrapped in the tokenizer's own chat template (the prompt builder does it, so the budget counts it).
* ``EndpointLLM(EndpointConfig(base_url=..., model=...))``: ``POST {base_url}/completions`` (or
  ``/chat/completions`` with ``chat: true``) over HTTP with httpx; the key is read from the environment
  variable ``api_key_env`` and sent as a bearer token. Decoding fields an OpenAI server cannot honour
  (beam search, ``no_repeat_ngram_size``, ``min_new_tokens``, more than 4 stop strings) are refused by name.
  Prompt budgets are counted with ``tokenizer`` (the served model's, when given) against ``max_input_tokens``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Protocol

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from llmcycle.core.config import StageConfig
from llmcycle.core.errors import ConfigError, LLMCycleError
from llmcycle.generation import GenerationSettings, generate_detailed
from llmcycle.generation.engine import input_limit
from llmcycle.models.loader import LoadedModel
from llmcycle.models.tokenizer import minilm_path

OPENAI_STOPS = 4
ENDPOINT_FIELDS = {"max_new_tokens", "do_sample", "temperature", "top_p", "top_k", "repetition_penalty",
                   "frequency_penalty", "presence_penalty", "stop", "num_return_sequences", "seed"}


class EndpointConfig(StageConfig):
    """An OpenAI-compatible server (llmcycle serve, vLLM, llama.cpp, OpenAI) used as the LLM."""

    base_url: str = Field(..., min_length=1, description="The API's base URL as the OpenAI client takes it, "
                          "e.g. http://127.0.0.1:8000/v1 (requests go to {base_url}/completions).")
    model: str = Field("base", min_length=1, description="The model name the server serves (llmcycle serve: "
                       "'base' or an adapter's name).")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key (sent as "
                             "'Authorization: Bearer KEY'); unset: no key is sent.")
    chat: bool = Field(False, description="Use /chat/completions with the prompt as one user message (chat "
                       "models) instead of /completions.")
    timeout_s: float = Field(300.0, gt=0, description="Seconds to wait for one response.")
    max_input_tokens: int = Field(4096, ge=16, description="The served model's prompt budget in tokens "
                                  "(retrieved passages and shots are fitted to it).")
    tokenizer: str | None = Field(None, description="Tokenizer counting prompt tokens for the budget: a hub id "
                                  "or folder (the served model's, for exact counts); default: the offline MiniLM "
                                  "WordPiece tokenizer, an approximation.")

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {value!r}")
        return value.rstrip("/")


@dataclass
class Completion:
    """One generated text and why it ended: ``stop`` (a stop string or the end token) or ``length``."""

    text: str
    finish_reason: str


class LLM(Protocol):
    """What applications need from a model."""

    name: str
    chat: bool  # prompts are built with the tokenizer's chat template (local chat models)
    tokenizer: Any  # counts prompt tokens for the budget

    def max_input_tokens(self, settings: GenerationSettings) -> int: ...

    def complete(self, prompts: list[str], settings: GenerationSettings) -> list[list[Completion]]: ...


class LocalLLM:
    """An llmcycle model (``load_model``) in this process, through the batched engine."""

    def __init__(self, loaded: LoadedModel, batch_size: int = 8, chat: bool = False,
                 max_input_tokens: int | None = None) -> None:
        if loaded.kind not in ("seq2seq", "causal"):
            raise LLMCycleError(f"{loaded.source} is a {loaded.kind} model; applications need a seq2seq or causal "
                                "language model")
        self.loaded, self.batch_size, self.chat = loaded, batch_size, chat
        self.tokenizer = loaded.tokenizer
        self.name = loaded.label
        self._max_input = max_input_tokens
        if chat and not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError(f"chat: the tokenizer of {loaded.source} has no chat template; set chat: false")

    def max_input_tokens(self, settings: GenerationSettings) -> int:
        return input_limit(self.loaded, settings, self._max_input)

    def complete(self, prompts: list[str], settings: GenerationSettings) -> list[list[Completion]]:
        results = generate_detailed(self.loaded, list(prompts), settings, batch_size=self.batch_size)
        return [[Completion(o.text, "length" if o.finish_reason == "length" else "stop") for o in r.outputs]
                for r in results]


class EndpointLLM:
    """An OpenAI-compatible HTTP endpoint."""

    chat = False  # prompts are plain text; with config.chat the server applies its own chat template

    def __init__(self, config: EndpointConfig, client: Any = None) -> None:
        import httpx  # only when an endpoint is used

        self.config = config
        self.name = f"{config.model} at {config.base_url}"
        key = os.environ.get(config.api_key_env) if config.api_key_env else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = client or httpx.Client(base_url=config.base_url, headers=headers, timeout=config.timeout_s)
        self.tokenizer = counting_tokenizer(config.tokenizer)

    def max_input_tokens(self, settings: GenerationSettings) -> int:
        return self.config.max_input_tokens

    def check(self, settings: GenerationSettings, where: str = "generation") -> None:
        """Refuse decoding fields an OpenAI-compatible server cannot honour, naming them."""
        problem = endpoint_problem(settings)
        if problem:
            raise ConfigError(f"{where}.{problem}")

    def _body(self, settings: GenerationSettings) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.config.model, "max_tokens": settings.max_new_tokens,
                                "n": settings.num_return_sequences, "seed": settings.seed,
                                "temperature": settings.temperature if settings.do_sample else 0.0}
        if settings.do_sample and settings.top_p != 1.0:
            body["top_p"] = settings.top_p
        if settings.do_sample and settings.top_k:
            body["top_k"] = settings.top_k  # an extension (vLLM, llmcycle serve)
        if settings.repetition_penalty != 1.0:
            body["repetition_penalty"] = settings.repetition_penalty  # an extension (vLLM, llmcycle serve)
        if settings.frequency_penalty:
            body["frequency_penalty"] = settings.frequency_penalty
        if settings.presence_penalty:
            body["presence_penalty"] = settings.presence_penalty
        if settings.stop:
            body["stop"] = list(settings.stop)
        return body

    def complete(self, prompts: list[str], settings: GenerationSettings) -> list[list[Completion]]:
        self.check(settings)
        if not prompts:
            return []
        body, n = self._body(settings), settings.num_return_sequences
        if self.config.chat:
            return [self._choices(self._post("/chat/completions", {**body, "messages": [
                {"role": "user", "content": p}]}), 1, n)[0] for p in prompts]
        return self._choices(self._post("/completions", {**body, "prompt": list(prompts)}), len(prompts), n)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import httpx  # only when an endpoint is used

        url = f"{self.config.base_url}{path}"
        try:
            response = self.client.post(path, json=body)
        except httpx.TimeoutException:
            raise LLMCycleError(f"endpoint {url}: no response within {self.config.timeout_s:g} s "
                                "(raise endpoint.timeout_s)") from None
        except httpx.HTTPError as exc:
            raise LLMCycleError(f"cannot reach the endpoint {url} ({type(exc).__name__}: {exc}); is the server "
                                "running, and is base_url right?") from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            message = (data or {}).get("error", {}).get("message") if isinstance(data, dict) else None
            raise LLMCycleError(f"endpoint {url} answered {response.status_code}: "
                                f"{message or response.text[:200]}")
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise LLMCycleError(f"endpoint {url} did not answer in OpenAI's shape (no 'choices' list)")
        return data

    def _choices(self, data: dict[str, Any], n_prompts: int, n: int) -> list[list[Completion]]:
        choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
        if len(choices) != n_prompts * n:
            raise LLMCycleError(f"endpoint {self.config.base_url} returned {len(choices)} choices for "
                                f"{n_prompts} prompt(s) x n={n}")
        out = []
        for c in choices:
            text = c.get("text") if "text" in c else (c.get("message") or {}).get("content")
            out.append(Completion(text or "", "length" if c.get("finish_reason") == "length" else "stop"))
        return [out[i * n:(i + 1) * n] for i in range(n_prompts)]


@lru_cache(maxsize=4)
def counting_tokenizer(source: str | None) -> Any:
    """The tokenizer that counts an endpoint's prompt tokens (``source``, else the offline MiniLM)."""
    from transformers import AutoTokenizer  # heavy: only for budgets of endpoint prompts

    try:
        tok = AutoTokenizer.from_pretrained(source or minilm_path())
    except OSError as exc:
        raise ConfigError(f"endpoint.tokenizer: cannot load {source!r} ({str(exc).splitlines()[0]}); pass a local "
                          "folder, or leave it unset") from None
    tok.model_max_length = 10**9  # counting only: no 'sequence longer than' warnings
    return tok


class LLMFields(StageConfig):
    """The fields every application stage shares: which LLM answers, and how prompts reach it."""

    endpoint: EndpointConfig | None = Field(None, description="An OpenAI-compatible endpoint to use as the LLM "
                                            "(base_url, model, api_key_env, ...) instead of the model the stage "
                                            "receives; null: the received model, in this process.")
    chat: bool = Field(False, description="Local model: wrap prompts in its tokenizer's chat template (chat/instruct "
                       "models); shots become earlier turns.")
    batch_size: int = Field(8, ge=1, description="Prompts per generation batch (local model).")
    max_input_tokens: int | None = Field(None, ge=16, description="Local model: the prompt budget in tokens "
                                         "(default: what the model and tokenizer allow).")

    # A stage's own defaults for its generation blocks ({field: {setting: value}}): fields given in a recipe or
    # with --set are laid over these, so `--set sampling.max_new_tokens=8` keeps sampling's do_sample: true.
    generation_defaults: ClassVar[dict[str, dict[str, Any]]] = {}

    @model_validator(mode="before")
    @classmethod
    def _over_stage_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, defaults in cls.generation_defaults.items():
                if isinstance(data.get(name), dict) and "preset" not in data[name]:
                    data = {**data, name: {**defaults, **data[name]}}
        return data

    def generation_blocks(self) -> dict[str, GenerationSettings]:
        """{field name: settings} of every generation block (checked against the endpoint)."""
        return {name: getattr(self, name) for name, f in type(self).model_fields.items()
                if isinstance(getattr(self, name), GenerationSettings)}

    @model_validator(mode="after")
    def _endpoint_can_decode(self) -> "LLMFields":
        if self.endpoint is not None:
            for name, settings in self.generation_blocks().items():
                problem = endpoint_problem(settings)
                if problem:
                    field, why = problem.split(": ", 1)
                    raise ValidationError.from_exception_data(type(self).__name__, [InitErrorDetails(
                        type=PydanticCustomError("endpoint", "{msg}", {"msg": why}), loc=(name, field),
                        input=getattr(settings, field))])
        return self

    def plan_notes(self) -> list[str]:
        """What ``llmcycle plan`` says about the LLM: an endpoint, when one is configured."""
        e = self.endpoint
        return [f"LLM: {e.model} at {e.base_url} ({'chat' if e.chat else 'completions'})"] if e else []

    def make_llm(self, model: Any) -> "LLM":
        """The endpoint when one is configured, else ``model`` (a callable giving the loaded model, or the model)."""
        if self.endpoint is not None:
            return EndpointLLM(self.endpoint)
        loaded = model() if callable(model) else model
        return LocalLLM(loaded, batch_size=self.batch_size, chat=self.chat, max_input_tokens=self.max_input_tokens)


def endpoint_problem(settings: GenerationSettings) -> str | None:
    """``field: why`` for the first decoding field an OpenAI-compatible endpoint cannot honour, else None."""
    bad = settings.non_default_fields(ENDPOINT_FIELDS)
    if bad:
        return f"{bad[0]}: an OpenAI-compatible endpoint cannot honour it; leave it at its default"
    if len(settings.stop) > OPENAI_STOPS:
        return (f"stop: an OpenAI-compatible endpoint takes at most {OPENAI_STOPS} stop strings, got "
                f"{len(settings.stop)}")
    return None
