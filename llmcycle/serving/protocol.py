"""The OpenAI wire format: request bodies validated field by field, errors in OpenAI's shape.

Requests are parsed by hand (``parse_request``) rather than by FastAPI's body binding, so every
problem becomes a 4xx ``{"error": {"message", "type", "param", "code"}}`` naming the field
(``param: "temperature"``, ``"messages.0.role"``) instead of FastAPI's 422 ``detail`` list.

OpenAI semantics kept: ``temperature`` defaults to 1 (sampling) and 0 means greedy; ``top_p`` only
matters when sampling; ``n`` greedy outputs are ``n`` copies of the one greedy output; ``stop`` is a
string or up to 4 strings. Unknown fields are ignored (clients send many optional ones), but fields
this server cannot honour (``logprobs``, ``logit_bias``, ``tools``, ``suffix``, a non-text
``response_format``, ...) are refused with 400 rather than silently dropped. Extensions, as in vLLM:
``top_k`` and ``repetition_penalty``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from llmcycle.generation import GenerationSettings

OPENAI_MAX_STOPS = 4


class APIError(Exception):
    """An error answered in OpenAI's shape with an HTTP status."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error"):
        message, param = _text(message), None if param is None else _text(param)
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _text(value: str) -> str:
    """``value`` as text JSON can carry: a client's lone surrogate echoed in a message becomes ``\\ud800``."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


class _Request(BaseModel):
    """Fields common to /v1/completions and /v1/chat/completions (OpenAI's names and ranges)."""

    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)  # json.loads accepts NaN

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int = Field(1, ge=1, le=64)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    stop: Any = Field(None, validate_default=True)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    logit_bias: dict[str, Any] | None = None
    user: str | None = None
    top_k: int | None = Field(None, ge=0)  # extension (vLLM)
    repetition_penalty: float | None = Field(None, gt=0)  # extension (vLLM)

    @field_validator("stop", mode="before")
    @classmethod
    def _stop(cls, value: Any) -> list[str]:
        if value is None:
            return []
        stops = [value] if isinstance(value, str) else value
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise ValueError("must be a string or a list of strings")
        if len(stops) > OPENAI_MAX_STOPS:
            raise ValueError(f"at most {OPENAI_MAX_STOPS} stop strings, got {len(stops)}")
        if any(s == "" for s in stops):
            raise ValueError("stop strings must not be empty")
        return stops

    @field_validator("logit_bias")
    @classmethod
    def _no_logit_bias(cls, value: dict[str, Any] | None) -> None:
        if value:
            raise ValueError("logit_bias is not supported by this server")

    @property
    def include_usage(self) -> bool:
        """``stream_options: {"include_usage": true}``: a last chunk carrying the token counts."""
        return bool((self.stream_options or {}).get("include_usage"))

    def requested_max_tokens(self) -> int | None:
        return self.max_tokens


class CompletionRequest(_Request):
    """POST /v1/completions."""

    prompt: Any = Field(None, validate_default=True)
    echo: bool = False
    logprobs: int | None = None
    suffix: str | None = None
    best_of: int | None = None

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, value: Any) -> list[str]:
        if value is None:
            raise ValueError("required field missing (a string or a list of strings)")
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and value and all(isinstance(p, str) for p in value):
            return value
        if isinstance(value, list) and value and all(isinstance(p, (int, list)) for p in value):
            raise ValueError("token-id prompts are not supported; send the prompt as text")
        raise ValueError("must be a string or a non-empty list of strings")

    @model_validator(mode="after")
    def _unsupported(self) -> "CompletionRequest":
        _refuse(self.logprobs is not None, "logprobs", "logprobs are not supported by this server")
        _refuse(bool(self.suffix), "suffix", "suffix (insertion) is not supported by this server")
        _refuse(self.best_of not in (None, self.n), "best_of", "best_of other than n is not supported")
        return self


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _content(cls, value: Any) -> Any:
        if isinstance(value, list):
            for i, part in enumerate(value):
                if not isinstance(part, dict) or part.get("type") != "text":
                    kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                    raise ValueError(f"part {i}: only text content parts are supported, got {kind!r}")
        return value

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class ChatRequest(_Request):
    """POST /v1/chat/completions."""

    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _unsupported(self) -> "ChatRequest":
        _refuse(bool(self.logprobs), "logprobs", "logprobs are not supported by this server")
        _refuse(self.top_logprobs is not None, "top_logprobs", "top_logprobs are not supported by this server")
        _refuse(bool(self.tools), "tools", "tool calling is not supported by this server")
        _refuse(bool(self.functions), "functions", "function calling is not supported by this server")
        _refuse(self.tool_choice not in (None, "none"), "tool_choice", "tool calling is not supported")
        fmt = (self.response_format or {}).get("type", "text")
        _refuse(fmt != "text", "response_format", f"response_format {fmt!r} is not supported; only 'text'")
        return self

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


def _refuse(condition: bool, field: str, message: str) -> None:
    if condition:
        raise _FieldError(field, message)


class _FieldError(ValueError):
    """Raised inside model validators to name a field that pydantic would report at the top level."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects a request body may have (OpenAI's bodies need 5)."""


def parse_request(body: bytes, cls: type[_Request]) -> Any:
    """Decode and validate a JSON body; every problem is an ``APIError`` 400 naming the field."""
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise APIError(400, "request body is not UTF-8 text", code="invalid_json") from None
    except json.JSONDecodeError as exc:
        raise APIError(400, f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                       code="invalid_json") from None
    except RecursionError:  # 100,000 nested brackets: Python's parser gives up before our depth check
        raise APIError(400, f"request body is nested too deeply (at most {MAX_JSON_DEPTH} levels)",
                       code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, f"request body must be a JSON object, got {type(data).__name__}", code="invalid_json")
    check_json_text(data)
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def check_json_text(data: Any) -> None:
    """400 for a body nested deeper than ``MAX_JSON_DEPTH``, or holding a string that is not valid Unicode text: a
    lone surrogate (``"\\ud800"``) decodes from JSON but cannot be encoded, tokenised or written back. Both name
    the field (``messages.0.content``). Walked without recursion."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise APIError(400, f"{path or 'request body'}: nested too deeply (at most {MAX_JSON_DEPTH} levels)",
                           param=path or None, code="invalid_json")
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise APIError(400, f"{path or 'request body'}: not valid Unicode text (a lone surrogate "
                               f"{value[exc.start]!r} at character {exc.start}); send UTF-8 text",
                               param=path or None, code="invalid_value") from None
        elif isinstance(value, dict):
            for key, item in value.items():
                stack.append((key, f"{path}.{key}".lstrip(".") + " (key)", depth + 1))
                stack.append((item, f"{path}.{key}".lstrip("."), depth + 1))
        elif isinstance(value, list):
            stack += [(item, f"{path}.{i}".lstrip("."), depth + 1) for i, item in enumerate(value)]


def validation_error(exc: ValidationError) -> APIError:
    """Pydantic's errors as one 400: ``param`` is the first field at fault, the message names each."""
    problems: list[tuple[str, str]] = []
    for err in exc.errors():
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _FieldError):
            field, msg = ctx_error.field, str(ctx_error)
        else:
            field = ".".join(str(p) for p in err["loc"]) or None
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                msg = "required field missing"
        problems.append((field or "(body)", msg))
    message = "; ".join(f"{field}: {msg}" for field, msg in problems)
    return APIError(400, message, param=problems[0][0] if problems else None, code="invalid_value")


# GenerationSettings' field names -> the OpenAI parameter a client set.
_PARAM = {"max_new_tokens": "max_tokens", "num_return_sequences": "n", "do_sample": "temperature"}


def generation_settings(req: _Request, max_tokens: int, default_max_tokens: int) -> tuple[Any, int]:
    """The ``GenerationSettings`` for a request, and how many copies of each output to return.

    ``temperature`` 0 is greedy; greedy with ``n > 1`` generates once and returns ``n`` copies (what
    the OpenAI API does too). Without a ``seed``, sampling draws a fresh random seed.
    """
    import random

    wanted = req.requested_max_tokens()
    field = "max_completion_tokens" if isinstance(req, ChatRequest) and req.max_completion_tokens else "max_tokens"
    if wanted is not None and wanted > max_tokens:
        raise APIError(400, f"{field}: {wanted} is more than this server allows ({max_tokens}); ask for fewer",
                       param=field, code="invalid_value")
    temperature = 1.0 if req.temperature is None else req.temperature
    sample = temperature > 0
    fields: dict[str, Any] = {
        "max_new_tokens": wanted or default_max_tokens, "stop": req.stop, "do_sample": sample,
        "frequency_penalty": req.frequency_penalty, "presence_penalty": req.presence_penalty,
        "num_return_sequences": req.n if sample else 1}
    if sample:
        fields.update(temperature=temperature, top_p=1.0 if req.top_p is None else req.top_p,
                      top_k=req.top_k or 0, seed=req.seed if req.seed is not None else random.getrandbits(62))
    elif req.top_k:
        raise APIError(400, "top_k: has no effect with temperature 0 (greedy); set temperature > 0",
                       param="top_k", code="invalid_value")
    if req.repetition_penalty is not None:
        fields["repetition_penalty"] = req.repetition_penalty
    try:
        settings = GenerationSettings(**fields)
    except ValidationError as exc:
        err = validation_error(exc)
        param = _PARAM.get(err.param or "", err.param)
        raise APIError(400, err.message.replace(f"{err.param}:", f"{param}:", 1), param=param,
                       code="invalid_value") from None
    return settings, (1 if sample else req.n)
