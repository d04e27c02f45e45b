"""Malformed requests get 4xx in OpenAI's error shape, naming the field; never a 500."""

from __future__ import annotations

import json

import pytest

CONFIG = {"api_key": "k", "max_body_bytes": 4096, "max_tokens": 64, "max_input_tokens": 40}
AUTH = {"Authorization": "Bearer k"}
OK = {"model": "base", "prompt": "hello", "max_tokens": 4, "temperature": 0}
CHAT = {"model": "base", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4, "temperature": 0}


@pytest.fixture(scope="module")
def client():
    from fastapi.testclient import TestClient

    from llmcycle.serving import create_app

    with TestClient(create_app({"model": "builtin:tiny-llama", **CONFIG}), raise_server_exceptions=False) as c:
        yield c


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.mark.parametrize("path, body, param, fragment", [
    ("/v1/completions", b"{not json", None, "not valid JSON"),
    ("/v1/completions", b"[1, 2]", None, "must be a JSON object"),
    ("/v1/completions", b"\xff\xfe", None, "not UTF-8"),
    ("/v1/completions", {"prompt": "hi"}, "model", "required field missing"),
    ("/v1/completions", {"model": "base"}, "prompt", "required field missing"),
    ("/v1/completions", {**OK, "temperature": 3}, "temperature", "less than or equal to 2"),
    ("/v1/completions", {**OK, "temperature": -0.5}, "temperature", "greater than or equal to 0"),
    ("/v1/completions", {**OK, "temperature": "hot"}, "temperature", "valid number"),
    ("/v1/completions", b'{"model": "base", "prompt": "hi", "temperature": NaN}', "temperature", "finite number"),
    ("/v1/completions", b'{"model": "base", "prompt": "hi", "repetition_penalty": Infinity}', "repetition_penalty",
     "finite number"),
    ("/v1/completions", {**OK, "temperature": 0.7, "top_p": 0}, "top_p", "greater than 0"),
    ("/v1/completions", {**OK, "top_k": 5}, "top_k", "greedy"),
    ("/v1/completions", {**OK, "max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
    ("/v1/completions", {**OK, "max_tokens": 65}, "max_tokens", "more than this server allows (64)"),
    ("/v1/completions", {**OK, "max_tokens": "10"}, "max_tokens", "valid integer"),
    ("/v1/completions", {**OK, "n": 0}, "n", "greater than or equal to 1"),
    ("/v1/completions", {**OK, "stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
    ("/v1/completions", {**OK, "stop": ""}, "stop", "must not be empty"),
    ("/v1/completions", {**OK, "stop": 3}, "stop", "string or a list of strings"),
    ("/v1/completions", {**OK, "seed": -1}, "seed", "greater than or equal to 0"),
    ("/v1/completions", {**OK, "presence_penalty": 2.5}, "presence_penalty", "less than or equal to 2"),
    ("/v1/completions", {**OK, "prompt": [1, 2, 3]}, "prompt", "token-id prompts are not supported"),
    ("/v1/completions", {**OK, "prompt": []}, "prompt", "non-empty list"),
    ("/v1/completions", {**OK, "logprobs": 2}, "logprobs", "not supported"),
    ("/v1/completions", {**OK, "logit_bias": {"1": 5}}, "logit_bias", "not supported"),
    ("/v1/completions", {**OK, "suffix": "end"}, "suffix", "not supported"),
    ("/v1/completions", {**OK, "prompt": "word " * 60}, "prompt", "more than the 40"),
    ("/v1/completions", {**OK, "stream": True, "n": 2}, "stream", "n=1"),
    ("/v1/completions", {**OK, "stream": "yes"}, "stream", "valid boolean"),
    ("/v1/chat/completions", {"model": "base", "max_tokens": 4}, "messages", "required field missing"),
    ("/v1/chat/completions", {**CHAT, "messages": []}, "messages", "at least 1"),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "bot", "content": "x"}]}, "messages.0.role", "'user'"),
    ("/v1/chat/completions", {**CHAT, "messages": [{"content": "x"}]}, "messages.0.role", "required field missing"),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://x"}}]}]}, "messages.0.content", "only text"),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": "word " * 60}]}, "messages",
     "more than the 40"),
    ("/v1/chat/completions", {**CHAT, "tools": [{"type": "function"}]}, "tools", "not supported"),
    ("/v1/chat/completions", {**CHAT, "response_format": {"type": "json_object"}}, "response_format", "only 'text'"),
    ("/v1/chat/completions", {**CHAT, "max_completion_tokens": 100}, "max_completion_tokens", "more than"),
])
def test_bad_request_names_the_field(client, path, body, param, fragment):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    err = error_of(client.post(path, content=content, headers={**AUTH, "Content-Type": "application/json"}), 400)
    assert err["param"] == param and fragment in err["message"] and err["type"] == "invalid_request_error"
    if param:
        assert err["message"].startswith(f"{param}:")


def test_unknown_model_is_404_naming_the_served_models(client):
    err = error_of(client.post("/v1/completions", json={**OK, "model": "gpt-4"}, headers=AUTH), 404)
    assert err["param"] == "model" and err["code"] == "model_not_found" and "base" in err["message"]


def test_too_long_prompt_has_openai_code(client):
    err = error_of(client.post("/v1/completions", json={**OK, "prompt": "word " * 60}, headers=AUTH), 400)
    assert err["code"] == "context_length_exceeded" and "tokens" in err["message"]


def test_oversized_body_is_413_before_parsing(client):
    big = b'{"model": "base", "prompt": "' + b"x" * 5000 + b'"}'
    err = error_of(client.post("/v1/completions", content=big, headers=AUTH), 413)
    assert err["code"] == "request_too_large" and "4096" in err["message"]
    # no Content-Length (chunked upload): counted while reading, refused all the same
    err = error_of(client.post("/v1/completions", content=iter([big[:3000], big[3000:]]), headers=AUTH), 413)
    assert err["code"] == "request_too_large"
    # not JSON at all, and oversized: the size is what the client hears about (no parsing happened)
    error_of(client.post("/v1/completions", content=b"\x00" * 5000, headers=AUTH), 413)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "k"},
                                     {"Authorization": "Basic k"}])
def test_wrong_or_missing_key_is_401(client, headers):
    err = error_of(client.post("/v1/completions", json=OK, headers=headers), 401)
    assert err["code"] == "invalid_api_key" and "Authorization: Bearer" in err["message"]
    assert error_of(client.get("/v1/models", headers=headers), 401)["code"] == "invalid_api_key"


def test_health_needs_no_key_and_good_requests_pass(client):
    assert client.get("/health").json()["status"] == "ok"
    assert client.post("/v1/completions", json=OK, headers=AUTH).status_code == 200
    assert client.post("/v1/chat/completions", json=CHAT, headers=AUTH).status_code == 200


def test_unknown_route_and_method_in_openai_shape(client):
    assert error_of(client.get("/v1/nothing", headers=AUTH), 404)["code"] == "not_found"
    assert error_of(client.get("/v1/completions", headers=AUTH), 405)["code"] == "method_not_allowed"
    assert error_of(client.get("/v1/models/nope", headers=AUTH), 404)["param"] == "model"


def test_max_tokens_filling_the_positions_of_a_decoder_only_model(client_for):
    with client_for({"max_tokens": 1000}) as c:  # tiny-llama takes 512 positions
        err = error_of(c.post("/v1/completions", json={**OK, "max_tokens": 600}), 400)
    assert err["param"] == "max_tokens" and "512 positions" in err["message"]


FIELDS = ["model", "prompt", "max_tokens", "temperature", "top_p", "n", "stream", "stop", "seed", "echo",
          "presence_penalty", "frequency_penalty", "top_k", "repetition_penalty", "stream_options", "best_of"]
VALUES = [None, -1, 0, 2**70, 1e308, "x", "", [], [None], {}, True, [1.5]]


@pytest.mark.parametrize("field", FIELDS)
def test_no_value_of_any_field_causes_a_500(client, field):
    for value in VALUES:
        body = {**OK, "max_tokens": 2, field: value}
        response = client.post("/v1/completions", json=body, headers=AUTH)
        assert response.status_code < 500, (field, value, response.text)
        if response.status_code != 200:
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}
