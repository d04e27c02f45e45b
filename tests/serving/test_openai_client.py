"""The official OpenAI Python client against a live server: completions, chat, streaming, errors, models."""

from __future__ import annotations

import pytest

from tests.serving.conftest import PROMPTS, direct

openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def server():
    from llmcycle.serving import BackgroundServer, create_app

    with BackgroundServer(create_app({"model": "builtin:tiny-llama", "api_key": "sekret"})) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="sekret", max_retries=0, timeout=120)


def test_completion_matches_the_engine(client):
    got = client.completions.create(model="base", prompt=PROMPTS[0], max_tokens=12, temperature=0)
    want = direct([PROMPTS[0]], 12)[0]
    assert got.object == "text_completion" and got.model == "base"
    assert got.choices[0].text == want and want
    assert got.choices[0].finish_reason == "length"
    assert got.usage.completion_tokens == 12 and got.usage.prompt_tokens > 0
    assert got.usage.total_tokens == got.usage.prompt_tokens + 12


def test_completion_list_of_prompts_and_n_copies(client):
    got = client.completions.create(model="base", prompt=PROMPTS[:2], max_tokens=6, temperature=0, n=2)
    want = direct(PROMPTS[:2], 6)
    assert [c.text for c in got.choices] == [want[0], want[0], want[1], want[1]]
    assert [c.index for c in got.choices] == [0, 1, 2, 3]


def test_chat_single_user_message_is_the_prompt(client):
    got = client.chat.completions.create(model="base", messages=[{"role": "user", "content": PROMPTS[1]}],
                                         max_tokens=10, temperature=0)
    assert got.object == "chat.completion"
    assert got.choices[0].message.role == "assistant"
    assert got.choices[0].message.content == direct([PROMPTS[1]], 10)[0]


def test_chat_several_messages_join_as_role_lines(client):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    got = client.chat.completions.create(model="base", messages=messages, max_tokens=8, temperature=0)
    assert got.choices[0].message.content == direct(["system: be brief\n\nuser: hi\n\nassistant:"], 8)[0]


@pytest.mark.parametrize("stop", [None, ["ly"]])
def test_streamed_completion_joins_into_the_greedy_text(client, stop):
    kwargs = dict(model="base", prompt=PROMPTS[2], max_tokens=24, temperature=0, stop=stop)
    whole = client.completions.create(**kwargs).choices[0]
    chunks = list(client.completions.create(stream=True, **kwargs))
    pieces = [c.choices[0].text for c in chunks]
    assert len([p for p in pieces if p]) > 3  # it really streamed, piece by piece
    assert "".join(pieces) == whole.text
    assert chunks[-1].choices[0].finish_reason == whole.finish_reason
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    if stop:
        assert whole.finish_reason == "stop" and "ly" not in whole.text  # the stop string really occurs


def test_streamed_chat_with_usage(client):
    kwargs = dict(model="base", messages=[{"role": "user", "content": PROMPTS[0]}], max_tokens=16, temperature=0)
    whole = client.chat.completions.create(**kwargs)
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 16
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_seeded_sampling_is_reproducible(client):
    kwargs = dict(model="base", prompt=PROMPTS[0], max_tokens=10, temperature=0.9, seed=7)
    a = client.completions.create(**kwargs).choices[0].text
    b = client.completions.create(**kwargs).choices[0].text
    c = client.completions.create(**{**kwargs, "seed": 8}).choices[0].text
    assert a == b and a != c


def test_models_list(client):
    assert [m.id for m in client.models.list().data] == ["base"]
    assert client.models.retrieve("base").id == "base"


def test_errors_reach_the_client_as_openai_errors(client, server):
    with pytest.raises(openai.BadRequestError) as bad:
        client.completions.create(model="base", prompt="hi", temperature=3)
    assert bad.value.status_code == 400 and "temperature" in str(bad.value) and bad.value.param == "temperature"
    with pytest.raises(openai.NotFoundError) as missing:
        client.completions.create(model="gpt-4", prompt="hi")
    assert missing.value.code == "model_not_found"
    wrong = openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as auth:
        wrong.completions.create(model="base", prompt="hi")
    assert auth.value.status_code == 401 and auth.value.code == "invalid_api_key"
