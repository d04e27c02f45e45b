"""Chat rendering (chat template, role lines), seq2seq streaming, echo and sampled n."""

from __future__ import annotations

import json

from tests.serving.conftest import PROMPTS, direct


def stream_text(client, path: str, body: dict) -> tuple[str, list[dict]]:
    """Join a streamed response's pieces; also return the parsed chunks (``[DONE]`` checked)."""
    with client.stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    if path.endswith("chat/completions"):
        return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks), chunks
    return "".join(c["choices"][0]["text"] for c in chunks), chunks


def test_seq2seq_streams_the_same_text_as_it_returns(client_for, minilm):
    """minilm-seq2seq writes real WordPiece words (## pieces merge): the pieces still join exactly."""
    body = {"model": "base", "prompt": "Summarize the following conversation.\n\n" + PROMPTS[2] + "\n\nSummary:",
            "max_tokens": 30, "temperature": 0}
    with client_for({"model": "builtin:minilm-seq2seq"}, loaded=minilm) as c:
        whole = c.post("/v1/completions", json=body).json()["choices"][0]
        text, chunks = stream_text(c, "/v1/completions", body)
        chat_text, _ = stream_text(c, "/v1/chat/completions", {
            "model": "base", "messages": [{"role": "user", "content": body["prompt"]}], "max_tokens": 30,
            "temperature": 0})
    assert whole["text"] and text == whole["text"] == chat_text
    assert len([c for c in chunks if c["choices"][0]["text"]]) > 3
    assert chunks[-1]["choices"][0]["finish_reason"] == whole["finish_reason"]


def test_seq2seq_chat_joins_roles_without_an_assistant_cue(client_for, minilm):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    with client_for({"model": "builtin:minilm-seq2seq"}, loaded=minilm) as c:
        chat = c.post("/v1/chat/completions", json={"model": "base", "messages": messages, "max_tokens": 8,
                                                     "temperature": 0}).json()
        plain = c.post("/v1/completions", json={"model": "base", "prompt": "system: be brief\n\nuser: hello",
                                                "max_tokens": 8, "temperature": 0}).json()
    assert chat["choices"][0]["message"]["content"] == plain["choices"][0]["text"]


def test_chat_template_is_used_when_the_tokenizer_has_one(client_for):
    from llmcycle.models import load_model

    loaded = load_model("builtin:tiny-llama")
    loaded.tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
                                      "{% if add_generation_prompt %}<assistant>{% endif %}")
    messages = [{"role": "user", "content": "hi there"}]
    with client_for({}, loaded=loaded) as c:
        chat = c.post("/v1/chat/completions", json={"model": "base", "messages": messages, "max_tokens": 6,
                                                     "temperature": 0}).json()
        plain = c.post("/v1/completions", json={"model": "base", "prompt": "<user> hi there\n<assistant>",
                                                "max_tokens": 6, "temperature": 0}).json()
    assert chat["choices"][0]["message"]["content"] == plain["choices"][0]["text"]
    assert chat["usage"]["prompt_tokens"] == plain["usage"]["prompt_tokens"]


def test_echo_and_sampled_n(client_for):
    with client_for({}) as c:
        echoed = c.post("/v1/completions", json={"model": "base", "prompt": PROMPTS[1], "max_tokens": 5,
                                                 "temperature": 0, "echo": True}).json()
        sampled = c.post("/v1/completions", json={"model": "base", "prompt": PROMPTS[1], "max_tokens": 8,
                                                  "temperature": 1.0, "n": 3, "seed": 3}).json()
        text, _ = stream_text(c, "/v1/completions", {"model": "base", "prompt": PROMPTS[1], "max_tokens": 5,
                                                     "temperature": 0, "echo": True})
    assert echoed["choices"][0]["text"] == PROMPTS[1] + direct([PROMPTS[1]], 5)[0] == text
    texts = [ch["text"] for ch in sampled["choices"]]
    assert len(texts) == 3 and len(set(texts)) == 3 and sampled["usage"]["completion_tokens"] == 24
