"""``ServeConfig``: everything ``llmcycle serve`` needs, validated before any model loads.

Every field is documented once, here; the CLI options of ``llmcycle serve`` map onto these fields.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from llmcycle.core.config import Device, Dtype, StageConfig
from llmcycle.core.errors import ConfigError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/\-]*$")


class ServeConfig(StageConfig):
    """An OpenAI-compatible server over one base model and any number of LoRA adapters on it."""

    model: str = Field("builtin:minilm-seq2seq", min_length=1, description="The base model: builtin:NAME, a "
                       "local directory from save_pretrained, a PEFT adapter directory (its base is loaded with it) "
                       "or a hub id.")
    name: str = Field("base", description="The name clients pass as `model` to reach the base model (with no "
                      "adapter, or with the adapter when `model` is an adapter directory).")
    adapters: dict[str, str] = Field(default_factory=dict, description="Served name -> PEFT adapter directory; "
                                     "every adapter is loaded once onto the one base model and chosen per request "
                                     "by its name.")
    device: Device = Field("cpu", description="Where the model runs; 'auto' picks cuda when available.")
    dtype: Dtype = Field("fp32", description="Parameter dtype of the base model.")
    chat: Literal["auto", "always", "never"] = Field(
        "auto", description="Render /v1/chat/completions messages with the tokenizer's chat template (auto: when it "
        "has one; always: refuse a model without one; never: plain role: content blocks), as the recipe's "
        "model.chat does for every other stage.")
    host: str = Field("127.0.0.1", min_length=1, description="Interface to listen on (0.0.0.0: every interface).")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: any free port, printed at start).")
    batching: bool = Field(True, description="Batch concurrent compatible requests dynamically; false serves one "
                           "request per generate call (the baseline).")
    max_batch_size: int = Field(16, ge=1, le=1024, description="Most requests in one batched generate call.")
    max_wait_ms: float = Field(10.0, ge=0, le=60_000, description="How long a batch that is not full waits for "
                               "compatible requests to join it (milliseconds, from its first request's arrival or "
                               "the end of the previous batch, whichever is later). Where a batch takes seconds (a "
                               "CPU), 50-100 ms costs little and lets clients answered by one batch join the next.")
    max_queue: int = Field(1024, ge=1, description="Most prompts waiting for the model; a request that "
                           "finds the queue too full for all its prompts gets 503 (server busy) at once instead of "
                           "waiting without bound, and one with more prompts than this gets 400.")
    max_input_tokens: int | None = Field(None, ge=1, description="Longest prompt accepted, in tokens (special tokens "
                                         "included); default: what the model takes (its positions, less max_tokens "
                                         "for decoder-only models). Longer prompts get 400.")
    max_tokens: int = Field(512, ge=1, description="Most new tokens a request may ask for (max_tokens); more gets "
                            "400.")
    default_max_tokens: int = Field(64, ge=1, description="New tokens generated when a request gives no max_tokens "
                                    "(capped by max_tokens).")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest request body accepted, in bytes; checked "
                                "before the JSON is parsed (larger: 413).")
    api_key: str | None = Field(None, description="When set, every /v1 request needs `Authorization: Bearer "
                                "<api_key>` (else 401); /health stays open. The CLI also reads LLMCYCLE_API_KEY.")
    graceful_shutdown_s: float | None = Field(60.0, gt=0, description="On SIGTERM/SIGINT, how long in-flight "
                                              "requests may take to finish before they are cancelled (None: wait "
                                              "for them however long).")
    log_requests: bool = Field(True, description="Log one line per request: method, path, status, latency and token "
                               "counts (never the prompt or the output).")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"{value!r} is not a valid model name (letters, digits and ._:/- only)")
        return value

    @field_validator("adapters")
    @classmethod
    def _adapters_ok(cls, value: dict[str, str]) -> dict[str, str]:
        for served, path in value.items():
            if not NAME.match(served):
                raise ValueError(f"adapter name {served!r} is not valid (letters, digits and ._:/- only)")
            if not str(path).strip():
                raise ValueError(f"adapter {served!r}: empty directory")
        return value

    @model_validator(mode="after")
    def _names_unique(self) -> "ServeConfig":
        if self.name in self.adapters:
            raise ValueError(f"adapter name {self.name!r} is also the base model's name; pick another name")
        return self

    @property
    def effective_batch_size(self) -> int:
        """Requests per generate call: 1 when batching is off."""
        return self.max_batch_size if self.batching else 1

    @property
    def model_names(self) -> list[str]:
        """Every name a request may pass as ``model``: the base first, then the adapters."""
        return [self.name, *self.adapters]


def parse_adapter_options(options: list[str]) -> dict[str, str]:
    """``["summarise=runs/x/adapter", ...]`` -> ``{"summarise": "runs/x/adapter"}`` (CLI ``--adapter NAME=DIR``)."""
    out: dict[str, str] = {}
    for option in options:
        name, sep, path = option.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(f"--adapter {option!r}: expected NAME=DIR (e.g. --adapter summarise=runs/tune/adapter)")
        if name.strip() in out:
            raise ConfigError(f"--adapter: name {name.strip()!r} given twice")
        out[name.strip()] = path.strip()
    return out
