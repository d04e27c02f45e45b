"""Hostile requests get a 4xx in OpenAI's error shape, never a 5xx: the table of ``cases.SERVER_CASES`` (lone
surrogates, JSON 100,000 deep, ...) and the server's OpenAPI schema fuzzed with schemathesis."""

from __future__ import annotations

import pytest

from tests.badinput.cases import SERVER_CASES, ServerCase

SERVE = {"model": "builtin:tiny-llama", "log_requests": False, "max_tokens": 4, "default_max_tokens": 2}


@pytest.fixture(scope="module")
def app(load_builtin):
    from llmcycle.serving import create_app

    return create_app(SERVE, load_builtin("tiny-llama"))


@pytest.fixture(scope="module")
def server(app):
    """The app on a real uvicorn server on loopback (one event loop for its scheduler and every request)."""
    from llmcycle.serving import BackgroundServer

    with BackgroundServer(app) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    import httpx

    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


@pytest.mark.parametrize("case", SERVER_CASES, ids=lambda case: case.name)
def test_hostile_request_is_a_client_error(case: ServerCase, client):
    response = client.request(case.method, case.path, content=case.body, headers=dict(case.headers))
    assert response.status_code == case.status, response.text[:300]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert "\n" not in error["message"] and "Traceback" not in response.text


def test_a_lone_surrogate_is_named_by_field(client):
    r = client.post("/v1/chat/completions", content=b'{"model": "base", "messages": [{"role": "user", "content": '
                    b'"hi \\ud800"}]}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages.0.content"
    assert "lone surrogate" in r.json()["error"]["message"]


def test_a_request_larger_than_the_queue_is_refused_whole_and_queues_nothing(client):
    """1,025 prompts in one request (the queue holds 1,024) is the client's to split: a 400 naming ``prompt``, not a
    503 "busy" that left 1,024 of its prompts queued, generating for no one and making every other client wait."""
    r = client.post("/v1/completions", json={"model": "base", "prompt": ["x"] * 1025, "max_tokens": 1})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "prompt" and "1025 prompts" in error["message"] and "max_queue" in error["message"]
    assert client.get("/health").json()["waiting"] == 0


def test_the_openapi_schema_documents_the_request_bodies(client):
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/v1/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/CompletionRequest"}
    assert "prompt" in schema["components"]["schemas"]["CompletionRequest"]["properties"]
    assert "messages" in schema["components"]["schemas"]["ChatRequest"]["properties"]


def test_fuzzing_the_openapi_schema_finds_no_5xx(server):
    """schemathesis draws requests (valid and invalid) for every operation of /openapi.json and sends them over
    HTTP to the running server; none may get a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    statuses: list[int] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=80, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def call(case):
            response = case.call()
            statuses.append(response.status_code)
            assert response.status_code < 500, (response.status_code, response.text[:300], case.body)

        call()
    print(f"{len(statuses)} fuzzed requests")
    assert len(statuses) >= 100 and 200 in statuses and any(400 <= s < 500 for s in statuses)
