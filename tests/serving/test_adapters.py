"""Several LoRA adapters on one base, chosen by model name; a merged adapter serves the same outputs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.serving.conftest import BASE, PROMPTS, direct

MAX = 10


def complete(client, model: str, prompt: str, max_tokens: int = MAX) -> str:
    response = client.post("/v1/completions", json={"model": model, "prompt": prompt, "max_tokens": max_tokens,
                                                    "temperature": 0})
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["text"]


def test_each_name_reaches_its_adapter(client_for, adapters):
    with client_for({"adapters": adapters}) as c:
        assert [m["id"] for m in c.get("/v1/models").json()["data"]] == ["base", "summarise", "other"]
        got = {name: complete(c, name, PROMPTS[0]) for name in ("base", "summarise", "other")}
        again_base = complete(c, "base", PROMPTS[0])  # after the adapters ran, the base is still the bare base
    assert len(set(got.values())) == 3  # three different models
    assert got["base"] == again_base == direct([PROMPTS[0]], MAX)[0]
    assert got["summarise"] == direct([PROMPTS[0]], MAX, adapter=adapters["summarise"])[0]
    assert got["other"] == direct([PROMPTS[0]], MAX, adapter=adapters["other"])[0]


def test_model_card_names_the_adapter(client_for, adapters):
    with client_for({"adapters": adapters}) as c:
        card = c.get("/v1/models/summarise").json()
    assert card["parent"] == "base" and card["adapter"] == adapters["summarise"] and card["root"] == BASE


def test_merged_adapter_serves_the_same_outputs(client_for, adapters):
    """Merged in memory (``merge_adapter``) and served as the base: the adapter's outputs, token for token."""
    from llmcycle.models import load_model
    from llmcycle.models.adapters import merge_adapter

    merged = merge_adapter(load_model(BASE, adapter=adapters["summarise"]))
    with client_for({"adapters": adapters}) as c:
        unmerged = [complete(c, "summarise", p) for p in PROMPTS]
    with client_for({"name": "summarise-merged"}, loaded=merged) as c:
        assert [complete(c, "summarise-merged", p) for p in PROMPTS] == unmerged


def test_merged_adapter_saved_and_served_from_its_directory(client_for, tmp_path):
    """The deployment path: merge, save_pretrained, ``llmcycle serve DIR`` (a seq2seq base this time)."""
    from llmcycle.models import load_model
    from llmcycle.models.adapters import merge_adapter
    from tests.serving.conftest import make_adapter

    adapter = str(make_adapter(tmp_path / "t5-lora", seed=1, base="builtin:tiny-t5", targets=("q", "v")))
    merged = merge_adapter(load_model("builtin:tiny-t5", adapter=adapter))
    merged.model.save_pretrained(tmp_path / "merged")
    merged.tokenizer.save_pretrained(tmp_path / "merged")
    with client_for({"model": "builtin:tiny-t5", "adapters": {"lora": adapter}}) as c:
        unmerged = [complete(c, "lora", p) for p in PROMPTS]
    with client_for({"model": str(tmp_path / "merged")}) as c:
        assert [complete(c, "base", p) for p in PROMPTS] == unmerged
    assert len(set(unmerged)) == len(PROMPTS)  # the adapter makes tiny-t5 say something different per prompt


def test_adapter_directory_as_the_model(client_for, adapters):
    """``llmcycle serve ADAPTER_DIR``: the base it names, with that adapter on, served as ``name``."""
    with client_for({"model": adapters["other"], "adapters": {"summarise": adapters["summarise"]}}) as c:
        assert complete(c, "base", PROMPTS[1]) == direct([PROMPTS[1]], MAX, adapter=adapters["other"])[0]
        assert complete(c, "summarise", PROMPTS[1]) == direct([PROMPTS[1]], MAX, adapter=adapters["summarise"])[0]


def test_concurrent_requests_for_different_adapters_never_share_a_batch(client_for, adapters):
    names = ["base", "summarise", "other"]
    jobs = [(names[i % 3], PROMPTS[i % len(PROMPTS)]) for i in range(12)]
    with client_for({"adapters": adapters, "max_wait_ms": 500, "max_batch_size": 12}) as c:
        service = c.app.state.service
        calls: list[tuple[str, int]] = []
        generate = service.models.generate

        def recording(name, prompts, settings, streamer=None):
            calls.append((name, len(prompts)))
            return generate(name, prompts, settings, streamer)

        service.scheduler.run = recording
        with ThreadPoolExecutor(len(jobs)) as pool:
            got = list(pool.map(lambda job: complete(c, *job), jobs))
    want = {name: direct(PROMPTS, MAX, adapter=adapters.get(name)) for name in names}
    assert got == [want[name][PROMPTS.index(prompt)] for name, prompt in jobs]
    assert sum(n for _, n in calls) == len(jobs) and len(calls) < len(jobs)  # batched, by name


@pytest.mark.parametrize("adapters_option, fragment", [
    ({"x": "/no/such/dir"}, "adapter x: /no/such/dir is not a PEFT adapter directory"),
    ({"base": "/tmp"}, "also the base model's name"),
    ({"bad name": "/tmp"}, "not valid"),
])
def test_bad_adapter_config_fails_before_serving(adapters_option, fragment):
    from llmcycle.core.errors import LLMCycleError
    from llmcycle.serving import create_app

    with pytest.raises(LLMCycleError, match=fragment):
        create_app({"model": BASE, "adapters": adapters_option})


def test_adapter_for_another_architecture_is_a_clear_error(tmp_path):
    from llmcycle.core.errors import ModelSourceError
    from llmcycle.serving import create_app
    from tests.serving.conftest import make_adapter

    t5_adapter = make_adapter(tmp_path / "t5", seed=3, base="builtin:tiny-t5", targets=("q", "v"))
    with pytest.raises(ModelSourceError, match="adapter t5:"):
        create_app({"model": BASE, "adapters": {"t5": str(t5_adapter)}})
