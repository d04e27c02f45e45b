"""Fixtures for the serving tests: tiny models, two different LoRA adapters on one base, a live server."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

BASE = "builtin:tiny-llama"  # random, but its greedy outputs vary from token to token (unlike tiny-t5's)
PROMPTS = ["#Person1#: hello there, how are you today?", "the cat sat on the mat",
           "#Person2#: my order never arrived and I would like a refund please", "summarize: short"]


def make_adapter(path, seed: int, base: str = BASE, targets=("q_proj", "v_proj")):
    """A LoRA adapter with random (non-zero) weights, saved with ``save_adapter``: no training needed."""
    import torch
    from peft import LoraConfig, get_peft_model

    from llmcycle.models import load_model
    from llmcycle.models.adapters import save_adapter

    loaded = load_model(base)
    torch.manual_seed(seed)
    loaded.model = get_peft_model(loaded.model, LoraConfig(r=4, lora_alpha=16, target_modules=list(targets),
                                                           init_lora_weights=False))
    return save_adapter(loaded, path, base_source=base)


@pytest.fixture(scope="session")
def adapters(tmp_path_factory):
    """Two LoRA adapters for tiny-llama whose weights differ (seeds 1 and 2): {name: dir}."""
    root = tmp_path_factory.mktemp("adapters")
    return {"summarise": str(make_adapter(root / "summarise", seed=1)),
            "other": str(make_adapter(root / "other", seed=2))}


@pytest.fixture
def client_for():
    """``with client_for(config) as client``: FastAPI's TestClient on a fresh app (lifespan run)."""
    from fastapi.testclient import TestClient

    from llmcycle.serving import create_app

    @contextmanager
    def make(config: dict, loaded=None):
        with TestClient(create_app({"model": BASE, **config}, loaded)) as client:
            yield client

    return make


@pytest.fixture
def live_server():
    """``with live_server(config) as server``: the app on a real uvicorn server on a free loopback port."""
    from llmcycle.serving import BackgroundServer, create_app

    @contextmanager
    def make(config: dict, loaded=None):
        with BackgroundServer(create_app({"model": BASE, **config}, loaded)) as server:
            yield server

    return make


def direct(prompts, max_tokens: int, adapter=None, base: str = BASE, stop=()):
    """Greedy outputs straight from the engine, one prompt per generate call (the reference)."""
    from llmcycle.generation import GenerationSettings, generate_detailed
    from llmcycle.models import load_model

    loaded = load_model(base, adapter=adapter)
    settings = GenerationSettings(max_new_tokens=max_tokens, stop=list(stop))
    return [r.text for r in generate_detailed(loaded, list(prompts), settings, batch_size=1)]
