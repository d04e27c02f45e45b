"""The served models: one base model, LoRA adapters on it, each reachable by a served name.

Every adapter is loaded once onto the same PEFT model (``llmcycle.models.adapters``:
``load_adapter`` for the first, ``switch_adapter`` for the others); a generate call activates the
adapter its requests named (``set_adapter``), or runs the bare base inside ``disable_adapter()``.
Only the scheduler's single model thread calls ``generate``, so the active adapter never changes
under a running batch, and a batch only ever holds requests for one served name.

Prompts are counted and rendered on the event loop with a private copy of the tokenizer: a fast
tokenizer's Rust backend must not be used from two threads at once.

Chat messages become one prompt through the one chat path (``llmcycle.prompts.chat``): with the
tokenizer's chat template when the model is used in chat form (``model.chat``); otherwise a
single user message is the prompt as it is (so chat and completions agree on seq2seq summarisers),
and several messages are joined as ``role: content`` blocks separated by blank lines, with an
``assistant:`` cue at the end for decoder-only models.
"""

from __future__ import annotations

import copy
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from llmcycle.core.errors import LLMCycleError, ModelSourceError
from llmcycle.generation import generate_detailed
from llmcycle.generation.engine import input_limit
from llmcycle.models import load_model
from llmcycle.models.adapters import is_peft, load_adapter, switch_adapter
from llmcycle.prompts.chat import chat_prompt, plain_chat_prompt, uses_chat
from llmcycle.serving.config import ServeConfig

log = logging.getLogger("llmcycle.serving")


class ServedModels:
    """The loaded base model and a route (PEFT adapter name, or None for the bare base) per served name."""

    def __init__(self, loaded: Any, routes: dict[str, str | None], max_input_tokens: int | None = None):
        self.loaded = loaded
        self.routes = routes
        self.max_input_tokens = max_input_tokens
        self._counter = copy.deepcopy(loaded.tokenizer)  # event-loop thread only

    @classmethod
    def load(cls, config: ServeConfig, loaded: Any = None) -> "ServedModels":
        """Load ``config.model`` (or take ``loaded``) and attach ``config.adapters`` under their names."""
        if loaded is None:
            loaded = load_model(config.model, device=config.device, dtype=config.dtype, chat=config.chat)
        if loaded.kind not in ("seq2seq", "causal"):
            raise ModelSourceError(f"{config.model} is a {loaded.kind} model; serving needs a seq2seq or causal LM")
        routes: dict[str, str | None] = {config.name: loaded.model.active_adapter if is_peft(loaded.model) else None}
        for i, (served, path) in enumerate(config.adapters.items()):
            if not (Path(path).expanduser() / "adapter_config.json").is_file():
                raise ModelSourceError(f"adapter {served}: {path} is not a PEFT adapter directory "
                                       "(no adapter_config.json)")
            try:
                if not is_peft(loaded.model):
                    loaded = load_adapter(loaded, path)
                    routes[served] = loaded.model.active_adapter
                else:
                    routes[served] = f"adapter{i}"
                    switch_adapter(loaded, path, routes[served])
            except LLMCycleError as exc:
                raise ModelSourceError(f"adapter {served}: {exc}") from None
            except (OSError, RuntimeError, KeyError, ValueError) as exc:
                raise ModelSourceError(f"adapter {served}: cannot load {path} onto {config.model}: "
                                       f"{str(exc).splitlines()[0]}") from None
        loaded.model.eval()
        return cls(loaded, routes, config.max_input_tokens)

    @property
    def names(self) -> list[str]:
        return list(self.routes)

    @property
    def kind(self) -> str:
        return self.loaded.kind

    # ---- event-loop side: count and render ---------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as the engine counts them (special tokens included)."""
        return len(self._counter(text, verbose=False)["input_ids"])

    def input_limit(self, settings: Any) -> int:
        """The longest prompt allowed with ``settings``: the model's limit, capped by ``max_input_tokens``."""
        limit = input_limit(self.loaded, settings)
        return min(limit, self.max_input_tokens) if self.max_input_tokens else limit

    def chat_prompt(self, messages: Sequence[tuple[str, str]]) -> str:
        """``[(role, content), ...]`` rendered as one prompt (see the module docstring)."""
        turns = [{"role": r, "content": c} for r, c in messages]
        if uses_chat(self.loaded):
            return chat_prompt(self._counter, turns)
        return plain_chat_prompt(turns, self.kind == "causal")

    # ---- model-thread side -------------------------------------------------------------------

    def generate(self, name: str, prompts: list[str], settings: Any, streamer: Any = None) -> list[Any]:
        """One batched generate call for ``prompts``, all for served model ``name`` (model thread only)."""
        limit = self.input_limit(settings)
        with self._active(name):
            return generate_detailed(self.loaded, prompts, settings, batch_size=len(prompts),
                                     max_input_tokens=limit, streamer=streamer)

    @contextmanager
    def _active(self, name: str) -> Iterator[None]:
        """Activate the adapter ``name`` routes to (or disable adapters for the bare base)."""
        model, adapter = self.loaded.model, self.routes[name]
        if not is_peft(model):
            yield
        elif adapter is None:
            with model.disable_adapter():
                yield
        else:
            model.set_adapter(adapter, inference_mode=True)
            yield
