"""The ReAct loop's mechanics with a scripted model: stop sequences passed on, tool calls executed and fed back,
the step limit, one parse-error retry then a clean failure, the budget, and the parser's formats."""

from __future__ import annotations

import pytest

from llmcycle.apps.react import ReActAgent, parse_step
from llmcycle.apps.taskset import Task
from llmcycle.apps.tools import Tool, ToolRegistry, calculator_tool
from llmcycle.generation import GenerationSettings

SETTINGS = GenerationSettings(max_new_tokens=32, stop=["\nObservation:"])


def tools(calls=None):
    def lookup(text):
        if calls is not None:
            calls.append(text)
        return {"capital of france": "Paris"}.get(text.strip().lower(), "not found")

    return ToolRegistry([calculator_tool(), Tool("lookup", "looks a fact up", lookup)])


@pytest.mark.parametrize("text, want", [
    (" I need 6 * 7.\nAction: calculator[6 * 7]", ("I need 6 * 7.", "calculator", "6 * 7", None)),
    ("thought : add. action : calculator [ 2 + 3 ] observation : 5", ("add.", "calculator", "2 + 3", None)),
    ("Look it up.\nAction: lookup\nAction Input: capital of France", ("Look it up.", "lookup", "capital of France",
                                                                      None)),
    ("Done.\nFinal Answer: 42\nmore", ("Done.", None, None, "42")),
    ("Action: python[print([1, 2][0])]", ("", "python", "print([1, 2][0])", None)),
    ("Action: calculator[1 + 1]\nObservation: 2\nFinal Answer: 2", ("", "calculator", "1 + 1", None)),
])
def test_parser_formats(text, want):
    p = parse_step(text)
    assert (p.thought, p.action, p.action_input, p.final_answer) == want and p.error is None


@pytest.mark.parametrize("text, error", [("just rambling", "no 'Action"), ("Final Answer:", "is empty"),
                                         ("Action: calculator[2 + 2", "no closing"),
                                         ("Action: calculator", "has no input"), ("Action: [x]", "tool name")])
def test_parser_errors(text, error):
    assert error in parse_step(text).error


def test_tool_call_is_executed_and_its_observation_fed_back(scripted):
    calls: list[str] = []
    llm = scripted([" I should look it up.\nAction: lookup[capital of France]",
                    " I know it.\nFinal Answer: Paris"])
    traj = ReActAgent(llm, tools(calls), SETTINGS, max_steps=4).run(Task("t", "What is the capital of France?",
                                                                          "paris"))
    assert traj.status == "answered" and traj.answer == "Paris" and traj.correct
    assert calls == ["capital of France"] and traj.tool_calls == 1
    assert [s.observation for s in traj.steps] == ["Paris", None]
    second_prompt = llm.calls[1][0][0]
    assert second_prompt.endswith("Action: lookup[capital of France]\nObservation: Paris\nThought:")
    assert all(settings.stop == ["\nObservation:"] for _, settings in llm.calls)  # stop sequences go to the model
    assert "lookup[input]: looks a fact up" in llm.calls[0][0][0] and "Example:" in llm.calls[0][0][0]


def test_step_limit(scripted):
    llm = scripted(lambda p: " Again.\nAction: calculator[1 + 1]")
    traj = ReActAgent(llm, tools(), SETTINGS, max_steps=3).run(Task("t", "loop forever", "2"))
    assert traj.status == "step_limit" and traj.answer is None and traj.tool_calls == 3
    assert [s.step for s in traj.steps] == [1, 2, 3] and len(llm.calls) == 3


def test_parse_error_is_fed_back_once_and_the_retry_can_recover(scripted):
    llm = scripted(["I am not sure what to do", " Sorry.\nFinal Answer: 4"])
    traj = ReActAgent(llm, tools(), SETTINGS).run(Task("t", "What is 2 + 2?", "4"))
    assert traj.status == "answered" and traj.correct
    first, retry = traj.steps
    assert first.error and first.observation.startswith("Invalid format: no 'Action") and not first.retry
    assert retry.retry and retry.step == 1 and retry.error is None
    assert "Observation: Invalid format" in llm.calls[1][0][0]


def test_second_parse_error_in_a_step_fails_the_run_cleanly(scripted):
    llm = scripted(["rambling", "still rambling", "never asked"])
    traj = ReActAgent(llm, tools(), SETTINGS).run(Task("t", "What is 2 + 2?", "4"))
    assert traj.status == "parse_error" and traj.answer is None and not traj.correct
    assert len(traj.steps) == 2 and traj.steps[1].retry and traj.steps[1].error
    assert len(llm.calls) == 2


def test_unknown_tool_and_tool_errors_are_observations(scripted):
    llm = scripted(["Action: teleport[home]", "Action: calculator[1 / 0]", "Final Answer: none"])
    traj = ReActAgent(llm, tools(), SETTINGS).run(Task("t", "q", None))
    assert traj.status == "answered"
    assert traj.steps[0].observation.startswith("unknown tool 'teleport'; the tools are calculator, lookup")
    assert traj.steps[1].observation.startswith("error: ZeroDivisionError")


def test_a_transcript_over_the_budget_ends_the_run(scripted):
    llm = scripted(lambda p: "Action: lookup[" + "x " * 60 + "]")
    agent = ReActAgent(llm, tools(), SETTINGS, max_steps=50, examples=None)
    agent.limit = len(llm.tokenizer(agent.prompt("q", "").text)["input_ids"]) + 80
    traj = agent.run(Task("t", "q", None))
    assert traj.status == "budget" and 1 <= len(traj.steps) < 50


def test_many_questions_step_together(scripted):
    llm = scripted(lambda p: "Final Answer: 4" if "2 + 2" in p.rsplit("Question:", 1)[1] else
                   "Action: calculator[3 + 3]" if "Observation" not in p.rsplit("Question:", 1)[1] else
                   "Final Answer: 6")
    trajs = ReActAgent(llm, tools(), SETTINGS).run_many([Task("a", "What is 2 + 2?", "4"),
                                                         Task("b", "What is 3 + 3?", "6")])
    assert [(t.status, t.answer, t.correct) for t in trajs] == [("answered", "4", True), ("answered", "6", True)]
    assert [len(prompts) for prompts, _ in llm.calls] == [2, 1]  # one batched call per step
