"""Any deployed model as the LLM: the OpenAI-compatible client's requests and errors, and ReAct, PAL,
self-consistency and the agent stage run end to end against `llmcycle serve` on loopback.

A builtin model's outputs are nonsense, so to see a tool call go through the server, builtin:tiny-llama is first
taught (a few seconds of training in this process) to answer three exact prompts: a ReAct step that calls the
calculator, the step after the calculator's observation, and a PAL program. The raw builtin model serves the
tests of what happens with nonsense: a parse error fed back once, then a clean failure.
"""

from __future__ import annotations

import json

import httpx
import pytest

from llmcycle.apps.cot import self_consistency
from llmcycle.apps.llm import Completion, EndpointConfig, EndpointLLM
from llmcycle.apps.pal import pal_answers
from llmcycle.apps.react import ReActAgent
from llmcycle.apps.sandbox import Sandbox, sandbox_unavailable
from llmcycle.apps.taskset import Task
from llmcycle.apps.tools import ToolRegistry, calculator_tool
from llmcycle.core.errors import ConfigError, LLMCycleError
from llmcycle.generation import GenerationSettings
from llmcycle.prompts import PromptTemplate

QUESTION = "What is 17 + 25?"
MINI = PromptTemplate("react-mini", "Tools: {tools}\n{examples}Question: {question}\n{scratchpad}", "agent",
                      "{trajectory}", "A short ReAct prompt for the tests.", "scratchpad")
STOP = ["observation"]  # what the WordPiece tokenizer of the builtins decodes "Observation:" to
STEP = GenerationSettings(max_new_tokens=24, stop=STOP)


# ---- the client, against a mock transport -----------------------------------------------------------

def _mock(handler):
    return httpx.Client(base_url="http://test/v1", transport=httpx.MockTransport(handler))


def test_requests_carry_the_settings_and_the_key_from_the_environment(monkeypatch):
    seen = []

    def handler(request):
        seen.append((request.url.path, request.headers.get("authorization"), json.loads(request.content)))
        body = json.loads(request.content)
        if request.url.path.endswith("/chat/completions"):
            return httpx.Response(200, json={"choices": [{"index": 0, "message": {"content": "hi"},
                                                          "finish_reason": "stop"}]})
        n = body["n"] * len(body["prompt"])
        return httpx.Response(200, json={"choices": [{"index": i, "text": f"t{i}", "finish_reason": "length"}
                                                     for i in reversed(range(n))]})

    monkeypatch.setenv("MY_KEY", "sekret")
    llm = EndpointLLM(EndpointConfig(base_url="http://test/v1", model="m", api_key_env="MY_KEY"))
    llm.client = _mock(handler)
    llm.client.headers["Authorization"] = "Bearer sekret"
    out = llm.complete(["a", "b"], GenerationSettings(max_new_tokens=5, do_sample=True, temperature=0.5,
                                                       num_return_sequences=2, stop=["\n"], seed=3))
    assert [[c.text for c in o] for o in out] == [["t0", "t1"], ["t2", "t3"]]
    assert out[0][0] == Completion("t0", "length")
    path, auth, body = seen[0]
    assert path == "/v1/completions" and auth == "Bearer sekret"
    assert body == {"model": "m", "max_tokens": 5, "n": 2, "seed": 3, "temperature": 0.5, "stop": ["\n"],
                    "prompt": ["a", "b"]}
    llm.complete(["a"], GenerationSettings(max_new_tokens=4))
    assert seen[-1][2]["temperature"] == 0.0  # greedy
    chat = EndpointLLM(EndpointConfig(base_url="http://test/v1", chat=True))
    chat.client = _mock(handler)
    assert chat.complete(["q"], GenerationSettings())[0][0].text == "hi"
    assert seen[-1][0] == "/v1/chat/completions" and seen[-1][2]["messages"] == [{"role": "user", "content": "q"}]


def test_key_header_is_built_from_the_named_variable(monkeypatch):
    monkeypatch.setenv("OTHER_KEY", "abc")
    llm = EndpointLLM(EndpointConfig(base_url="http://127.0.0.1:9/v1", api_key_env="OTHER_KEY"))
    assert llm.client.headers["authorization"] == "Bearer abc"
    monkeypatch.delenv("OTHER_KEY")
    assert "authorization" not in EndpointLLM(EndpointConfig(base_url="http://127.0.0.1:9/v1",
                                                             api_key_env="OTHER_KEY")).client.headers


def test_errors_are_one_line_and_name_the_cause():
    def refuse(request):
        return httpx.Response(400, json={"error": {"message": "temperature: must be <= 2", "param": "temperature"}})

    llm = EndpointLLM(EndpointConfig(base_url="http://test/v1"))
    llm.client = _mock(refuse)
    with pytest.raises(LLMCycleError, match="answered 400: temperature: must be <= 2"):
        llm.complete(["x"], GenerationSettings())
    with pytest.raises(ConfigError, match=r"generation\.num_beams: an OpenAI-compatible endpoint cannot honour"):
        llm.complete(["x"], GenerationSettings(num_beams=2))
    llm.client = _mock(lambda r: httpx.Response(200, json={"nope": 1}))
    with pytest.raises(LLMCycleError, match="OpenAI's shape"):
        llm.complete(["x"], GenerationSettings())
    closed = EndpointLLM(EndpointConfig(base_url="http://127.0.0.1:9/v1", timeout_s=5))
    with pytest.raises(LLMCycleError, match=r"cannot reach the endpoint http://127.0.0.1:9/v1/completions"):
        closed.complete(["x"], GenerationSettings())
    with pytest.raises(ConfigError, match="base_url must start with http"):
        EndpointConfig.from_dict({"base_url": "localhost:8000"})


def test_stage_configs_refuse_what_an_endpoint_cannot_decode():
    from llmcycle.stages.cot import CotConfig

    with pytest.raises(ConfigError, match=r"stages\[0\].cot: generation.no_repeat_ngram_size: an OpenAI-compatible"):
        CotConfig.from_dict({"endpoint": {"base_url": "http://x/v1"}, "generation": {"no_repeat_ngram_size": 3}},
                            where="stages[0].cot")
    with pytest.raises(ConfigError, match="at most 4 stop strings"):
        CotConfig.from_dict({"endpoint": {"base_url": "http://x/v1"}, "sampling": {"stop": list("abcde")}})
    assert CotConfig.from_dict({"sampling": {"max_new_tokens": 8}}).sampling.do_sample  # stage defaults kept


# ---- end to end against llmcycle serve -----------------------------------------------------------------

class _Recording:
    """An LLM that returns given texts and records the prompts it was sent (to learn the exact prompts)."""

    name, chat = "recording", False

    def __init__(self, tokenizer, outputs):
        self.tokenizer, self.outputs, self.prompts = tokenizer, list(outputs), []

    def max_input_tokens(self, settings):
        return 512 - settings.max_new_tokens

    def complete(self, prompts, settings):
        self.prompts += prompts
        return [[Completion(self.outputs.pop(0), "stop")] for _ in prompts]


def _tools() -> ToolRegistry:
    return ToolRegistry([calculator_tool()])


@pytest.fixture(scope="module")
def taught():
    """builtin:tiny-llama taught three exact prompts (trained until greedy decoding reproduces every target)."""
    import torch

    from llmcycle.apps.pal import pal_prompts
    from llmcycle.models import load_model

    loaded = load_model("builtin:tiny-llama")
    tok = loaded.tokenizer
    step1, step2 = "i should add them. action: calculator[17 + 25]", "i know it. final answer: 42"
    recorder = _Recording(tok, [tok.decode(tok(step1, add_special_tokens=False)["input_ids"]),
                                tok.decode(tok(step2, add_special_tokens=False)["input_ids"])])
    ReActAgent(recorder, _tools(), STEP, max_steps=3, template=MINI, examples=None).run(Task("t", QUESTION, "42"))
    pal_prompt = pal_prompts([Task("p", QUESTION, "42")], recorder, STEP, shots=0).texts[0]
    pairs = [(recorder.prompts[0], " " + step1 + " observation: 42"), (recorder.prompts[1], " " + step2),
             (pal_prompt, "print(17 + 25)")]
    rows = []
    for prompt, target in pairs:
        p, t = tok(prompt)["input_ids"], tok(target, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        rows.append((p + t, [-100] * len(p) + t))
    width = max(len(r) for r, _ in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r, _ in rows])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    mask = (torch.arange(width)[None, :] < torch.tensor([len(r) for r, _ in rows])[:, None]).long()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 4M-parameter model: one thread is fastest, and kind to a shared machine
    torch.manual_seed(0)
    model = loaded.model
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    try:
        for _ in range(400):
            out = model(input_ids=ids, attention_mask=mask, labels=labels)
            gold = labels[:, 1:]
            if ((out.logits[:, :-1].argmax(-1) == gold) | (gold == -100)).all():
                break
            opt.zero_grad()
            out.loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return loaded


@pytest.fixture(scope="module")
def served(taught):
    from llmcycle.serving import BackgroundServer, create_app

    with BackgroundServer(create_app({"model": "builtin:tiny-llama", "name": "taught"}, taught)) as server:
        yield server


@pytest.fixture(scope="module")
def served_raw():
    from llmcycle.serving import BackgroundServer, create_app

    with BackgroundServer(create_app({"model": "builtin:tiny-llama"})) as server:
        yield server


def _endpoint(server, model="taught") -> EndpointLLM:
    return EndpointLLM(EndpointConfig(base_url=f"{server.url}/v1", model=model, max_input_tokens=488))


def test_react_calls_a_tool_through_the_server_and_respects_the_stop_sequence(served):
    llm = _endpoint(served)
    traj = ReActAgent(llm, _tools(), STEP, max_steps=3, template=MINI, examples=None).run(Task("t", QUESTION, "42"))
    first, second = traj.steps
    assert first.action == "calculator" and first.action_input == "17 + 25" and first.observation == "42"
    assert first.finish_reason == "stop" and "observation" not in first.output  # cut at the stop sequence
    assert second.final_answer == "42" and traj.status == "answered" and traj.correct
    limited = ReActAgent(llm, _tools(), STEP, max_steps=1, template=MINI, examples=None).run(Task("t", QUESTION))
    assert limited.status == "step_limit" and limited.tool_calls == 1 and len(limited.steps) == 1


def test_nonsense_is_fed_back_once_then_the_run_fails_cleanly(served_raw):
    llm = _endpoint(served_raw, "base")
    traj = ReActAgent(llm, _tools(), STEP, max_steps=3, template=MINI, examples=None).run(Task("t", QUESTION, "42"))
    assert traj.status == "parse_error" and [s.retry for s in traj.steps] == [False, True]
    assert traj.steps[0].observation.startswith("Invalid format") and traj.steps[1].error


@pytest.mark.skipif(sandbox_unavailable() is not None, reason=f"no working bubblewrap sandbox here "
                    f"({sandbox_unavailable()}): apt-get install bubblewrap")
def test_pal_program_from_the_server_runs_in_the_sandbox(served):
    result = pal_answers([Task("p", QUESTION, "42")], _endpoint(served), STEP, Sandbox(), shots=0)[0]
    assert result.program.replace(" ", "") == "print(17+25)"  # as the WordPiece tokenizer decodes it
    assert (result.status, result.answer, result.correct) == ("ok", "42", True)


def test_self_consistency_draws_k_samples_from_the_server(served_raw):
    sampling = GenerationSettings(max_new_tokens=8, do_sample=True, temperature=0.9, seed=5)
    results = self_consistency([Task("a", QUESTION, "42"), Task("b", "What is 2 + 2?", "4")], _endpoint(served_raw,
                               "base"), GenerationSettings(max_new_tokens=8), sampling, samples=3, shots=1)
    for r in results:
        assert len(r.samples) == 3 and len(r.sample_answers) == 3
        assert sum(r.votes.values()) == sum(a is not None for a in r.sample_answers)
        if r.votes:
            assert r.votes[r.vote_answer] == max(r.votes.values())
        else:
            assert r.vote_answer is None
    assert len({s for r in results for s in r.samples}) > 1  # sampled, not one greedy text copied


def test_agent_stage_against_the_server_writes_and_reports_the_trajectory(served, tmp_path):
    from llmcycle.cli.onestage import run_one_stage
    from llmcycle.prompts import TEMPLATES, register_template

    tasks = tmp_path / "q.jsonl"
    tasks.write_text(json.dumps({"id": "q1", "question": QUESTION, "answer": "42"}) + "\n")
    register_template(MINI, replace=True)
    try:
        run = run_one_stage("agent", "builtin:tiny-llama", {"source": "builtin:dialogues"}, {
            "tasks": [str(tasks)], "tools": ["calculator"], "template": "react-mini", "examples": None,
            "endpoint": {"base_url": f"{served.url}/v1", "model": "taught", "max_input_tokens": 488},
            "generation": {"max_new_tokens": 24, "stop": STOP}}, None, None, str(tmp_path / "runs"))
    finally:
        TEMPLATES.pop("react-mini", None)
    folder = run.path / "01-agent"
    (traj,) = [json.loads(line) for line in (folder / "trajectories.jsonl").read_text().splitlines()]
    assert traj["status"] == "answered" and traj["correct"] and traj["tool_calls"] == 1
    assert traj["steps"][0]["observation"] == "42" and traj["steps"][0]["action"] == "calculator"
    result = json.loads((folder / "agent_result.json").read_text())
    assert result["exact_match"] == 1.0 and result["llm"].startswith("taught at http://127.0.0.1:")
    report = (run.path / "report.md").read_text()
    assert "## ReAct agent" in report and "observation: 42" in report and "ReAct agent (01-agent" in report
