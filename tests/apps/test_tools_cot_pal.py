"""Tools (calculator, user functions, registry), chain-of-thought (answer extraction, majority vote,
self-consistency), program-aided answers (code extraction, sandboxed runs, typed outcomes), shipped task files."""

from __future__ import annotations

import json

import pytest

from llmcycle.apps.cot import cot_prompts, extract_answer, majority_vote, self_consistency
from llmcycle.apps.pal import extract_program, pal_answers
from llmcycle.apps.sandbox import Sandbox, SandboxConfig, SandboxUnavailable, sandbox_unavailable
from llmcycle.apps.taskset import Task, load_tasks
from llmcycle.apps.tools import Tool, ToolRegistry, calculate, calculator_tool, user_tool
from llmcycle.core.errors import ConfigError, DataError
from llmcycle.generation import GenerationSettings

needs_bwrap = pytest.mark.skipif(sandbox_unavailable() is not None, reason=f"no working bubblewrap sandbox here "
                                 f"({sandbox_unavailable()}): apt-get install bubblewrap")


@pytest.mark.parametrize("expr, value", [("12 * (7 + 3) / 4", "30"), ("2^10", "1024"), ("1,200 + 5", "1205"),
                                         ("17 x 3", "51"), ("sqrt(16) + round(2.6)", "7"), ("10 / 4", "2.5"),
                                         ("-3 ** 2", "-9"), ("pi * 0", "0")])
def test_calculator(expr, value):
    assert calculate(expr) == value


@pytest.mark.parametrize("expr", ["__import__('os')", "().__class__", "open('x')", "9 ** 9 ** 9", "x + 1",
                                  "lambda: 1", "[1, 2]"])
def test_calculator_refuses_everything_but_arithmetic(expr):
    with pytest.raises(ValueError):
        calculate(expr)
    assert calculator_tool()(expr).startswith("error: ValueError")  # as an observation, never a crash


def test_user_tool_from_a_file_and_the_registry(tmp_path):
    (tmp_path / "mytools.py").write_text('def shout(text):\n    """Upper-cases the input."""\n'
                                         '    return text.upper()\n')
    tool = user_tool(f"{tmp_path / 'mytools.py'}:shout")
    assert tool.name == "shout" and tool.description == "Upper-cases the input." and tool("hi") == "HI"
    registry = ToolRegistry([calculator_tool(), tool])
    assert registry.get("SHOUT") is tool and registry.names == ["calculator", "shout"]
    assert "shout[input]: Upper-cases the input." in registry.describe()
    with pytest.raises(ConfigError, match="registered twice"):
        registry.register(Tool("Shout", "", str))
    with pytest.raises(ConfigError, match="has no function nope"):
        user_tool(f"{tmp_path / 'mytools.py'}:nope")
    with pytest.raises(ConfigError, match="module:function"):
        user_tool("no_colon")
    assert Tool("long", "", lambda s: "y" * 5000)("x").endswith("...(cut)")


@pytest.mark.parametrize("text, want", [
    ("She has 4 x 6 = 24 eggs. The answer is 19.", "19"), ("... so 1,200 apples. The answer is $1,200.", "1200"),
    ("Final Answer: 42", "42"), ("I think 3 + 4 = 7", "7"), ("#### 2.50", "2.5"), ("no numbers here", None),
    ("The answer is: 12 and then 7 more", "12")])
def test_extract_answer(text, want):
    assert extract_answer(text) == want


def test_extract_text_answer_and_vote():
    assert extract_answer("It was left in Frankfurt. The answer is Frankfurt.", numeric=False) == "Frankfurt"
    assert majority_vote(["3", "4", "4.0", None, "3", "4"]) == ("4", {"3": 2, "4": 3})
    assert majority_vote(["5", "6"])[0] == "5"  # a tie goes to the answer seen first
    assert majority_vote([None, None]) == (None, {})


def test_self_consistency_samples_k_chains_and_votes(scripted):
    tasks = [Task("a", "What is 2 + 2?", "4"), Task("b", "What is 3 + 3?", "6")]
    greedy_replies = {"What is 2 + 2?": "2 + 2 = 5. The answer is 5.", "What is 3 + 3?": "The answer is 4."}
    sampled_replies = {"What is 2 + 2?": ["The answer is 4.", "The answer is 5.", "It is 4."],
                       "What is 3 + 3?": ["The answer is 7.", "The answer is 7.", "The answer is 6."]}
    drawn: dict[str, int] = {}

    def script(prompt):
        question = prompt.rsplit("Q: ", 1)[1].split("\n")[0]
        if not script.sampling:
            return greedy_replies[question]
        drawn[question] = drawn.get(question, 0) + 1
        return sampled_replies[question][drawn[question] - 1]

    class Recorder(scripted):
        def complete(self, prompts, settings):
            script.sampling = settings.do_sample
            return super().complete(prompts, settings)

    llm = Recorder(script)
    greedy = GenerationSettings(max_new_tokens=32, stop=["\nQ:"])
    sampling = GenerationSettings(max_new_tokens=32, stop=["\nQ:"], do_sample=True, temperature=0.7)
    results = self_consistency(tasks, llm, greedy, sampling, samples=3, shots=2)
    assert [(r.greedy_answer, r.greedy_correct) for r in results] == [("5", False), ("4", False)]
    assert results[0].votes == {"4": 2, "5": 1} and results[0].vote_answer == "4" and results[0].vote_correct
    assert results[1].votes == {"7": 2, "6": 1} and results[1].vote_answer == "7" and not results[1].vote_correct
    (_, g), (_, s) = llm.calls
    assert g.num_return_sequences == 1 and not g.do_sample and s.num_return_sequences == 3 and s.do_sample
    assert llm.calls[0][0][0].count("The answer is") == 2  # two solved exemplars precede the question
    with pytest.raises(ConfigError, match="do_sample"):
        self_consistency(tasks, llm, greedy, greedy, samples=3)


def test_cot_shots_are_dropped_when_the_budget_is_short(scripted):
    wide = cot_prompts([Task("a", "What is 2 + 2?", "4")], scripted([], 2000), GenerationSettings(), shots=4)
    narrow = cot_prompts([Task("a", "What is 2 + 2?", "4")], scripted([], wide[0].n_tokens - 5),
                         GenerationSettings(), shots=4)
    assert len(wide[0].shot_ids) == 4 and len(narrow[0].shot_ids) == 3 and narrow[0].shots_dropped == [3]


def test_extract_program():
    assert extract_program("Here you go:\n```python\nx = 2\nprint(x * 3)\n```\nDone.") == "x = 2\nprint(x * 3)"
    assert extract_program("a = 5\nprint(a)\n# Question: next one") == "a = 5\nprint(a)"
    assert extract_program("```\nprint(1)") == "print(1)"


@needs_bwrap
def test_pal_runs_each_program_in_the_sandbox_with_typed_outcomes(scripted):
    tasks = [Task("a", "What is 6 times 7?", "42"), Task("b", "Loop?", "1"), Task("c", "Read?", "1"),
             Task("d", "Nothing?", "1")]
    llm = scripted(["```python\nprint(6 * 7)\n```", "while True:\n    pass", "print(open('/etc/passwd').read())",
                    "   "])
    results = pal_answers(tasks, llm, GenerationSettings(max_new_tokens=64), Sandbox(SandboxConfig(cpu_s=1)),
                          shots=2)
    assert [(r.status, r.answer, r.correct) for r in results] == [
        ("ok", "42", True), ("cpu_limit", None, False), ("error", None, False), ("error", None, False)]
    assert "FileNotFoundError" in results[2].message and results[3].message == "the model wrote no code"
    prompt = llm.calls[0][0][0]
    assert prompt.count("# Question:") == 3 and prompt.endswith("# A Python program that prints the answer:\n")


def test_without_bubblewrap_the_sandbox_refuses_unless_unsafe(monkeypatch, scripted):
    import llmcycle.apps.sandbox as sandbox_module

    monkeypatch.setattr(sandbox_module, "bwrap_path", lambda: None)
    with pytest.raises(SandboxUnavailable, match=r"apt-get install bubblewrap.*--unsafe-no-sandbox"):
        Sandbox()
    unsafe = Sandbox(SandboxConfig(unsafe_no_sandbox=True, cpu_s=1))
    assert not unsafe.isolated and "unsafe" in unsafe.isolation
    assert unsafe.run("print(2 ** 10)").answer == "1024"
    assert unsafe.run("while True: pass").status == "cpu_limit"
    assert unsafe.run("import os; print(os.getcwd())").stdout.strip().startswith(("/tmp", "/var"))


def test_shipped_task_files():
    arithmetic = load_tasks("builtin:arithmetic")
    assert len(arithmetic) == 30 and all(t.answer and t.answer.isdigit() for t in arithmetic)
    questions = load_tasks("builtin:dialogue-questions")
    assert len(questions) >= 25 and all(len(t.relevant) == 1 for t in questions)
    from llmcycle.apps.corpus import CorpusConfig, load_documents
    from llmcycle.apps.metrics import contains_answer

    dialogues = {d.id: d.text for d in load_documents(CorpusConfig())}
    for t in questions:  # every answer is a span of the dialogue that answers it
        assert contains_answer(dialogues[t.relevant[0]], t.answer), t.id
    assert load_tasks("builtin:arithmetic", n=3)[2].id == "arith-03"


def test_bad_task_files_name_file_and_line(tmp_path):
    bad = tmp_path / "t.jsonl"
    bad.write_text(json.dumps({"question": "ok?", "answer": "1"}) + "\n" + json.dumps({"answer": "2"}) + "\n")
    with pytest.raises(DataError, match=r"t.jsonl:2: 'question' is missing"):
        load_tasks(str(bad))
    bad.write_text(json.dumps({"question": "ok?"}) + "\n")
    with pytest.raises(DataError, match="'answer' is missing"):
        load_tasks(str(bad))
    with pytest.raises(DataError, match="unknown builtin task set"):
        load_tasks("builtin:nope")
