"""Stage ``agent``: a ReAct agent (``llmcycle.apps.react``) with tools (search over a retrieval index, calculator,
sandboxed Python, your own functions) on question sets; every trajectory is written to the run
(``trajectories.jsonl``) and shown in the report."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from llmcycle.apps.corpus import CorpusConfig, load_documents
from llmcycle.apps.llm import LLMFields
from llmcycle.apps.react import DEFAULT_STOP, ReActAgent, Trajectory, react_scores
from llmcycle.apps.retrieval import IndexConfig, Method, RetrievalIndex
from llmcycle.apps.sandbox import Sandbox, SandboxConfig
from llmcycle.apps.taskset import load_tasks
from llmcycle.apps.tools import ToolRegistry, calculator_tool, python_tool, search_tool, user_tool
from llmcycle.core.files import atomic_write_json, atomic_write_jsonl
from llmcycle.generation.settings import GenerationSettings
from llmcycle.report import md_table
from llmcycle.stages.base import BaseStage, Glance, StageContext, register_stage

BUILTIN_TOOLS = ("search", "calculator", "python")


class AgentConfig(LLMFields):
    """A ReAct agent: Thought / Action / Observation with tools, a step limit and one parse-error retry."""

    tasks: list[str] = Field(default_factory=lambda: ["builtin:arithmetic", "builtin:dialogue-questions"],
                             min_length=1, description="Question sets (builtin:arithmetic, builtin:dialogue-questions "
                             "or JSONL files with question and answer).")
    n: int | None = Field(3, ge=1, description="Questions from each set (null: all).")
    tools: list[str] = Field(default_factory=lambda: list(BUILTIN_TOOLS), description="Builtin tools: search "
                             "(passages of an index over the corpus), calculator, python (the sandbox).")
    functions: list[str] = Field(default_factory=list, description="Your own tools: module:function or "
                                 "path/to/file.py:function (a function of one string; its docstring describes it).")
    max_steps: int = Field(6, ge=1, description="Most Thought/Action steps per question; then it ends as "
                           "'step_limit'.")
    template: str = Field("react", description="Prompt template with {tools}, {examples}, {question}, {scratchpad}.")
    examples: str | None = Field("react", description="Exemplar set shown before the question (null: none).")
    corpus: CorpusConfig = Field(default_factory=CorpusConfig, description="Documents the search tool searches.")
    index: IndexConfig = Field(default_factory=IndexConfig, description="Index settings for the search tool.")
    index_path: str | None = Field(None, description="A saved index for the search tool (from `llmcycle rag "
                                   "index`) instead of building one from corpus.")
    search_k: int = Field(3, ge=1, description="Passages the search tool returns.")
    search_method: Method = Field("hybrid", description="Retrieval of the search tool: dense, bm25 or hybrid.")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Limits of the python tool's "
                                   "sandbox.")
    generation_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "generation": {"max_new_tokens": 128, "stop": list(DEFAULT_STOP)}}
    generation: GenerationSettings = Field(
        default_factory=lambda: GenerationSettings(**AgentConfig.generation_defaults["generation"]),
        description="Decoding of each step (default: greedy, 128 new tokens); its stop strings end a step before "
                    "the model writes an observation itself (default: '\\nObservation:').")

    @field_validator("tools")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        bad = [t for t in value if t not in BUILTIN_TOOLS]
        if bad:
            raise ValueError(f"unknown tool {bad[0]!r}; builtin tools: {', '.join(BUILTIN_TOOLS)} (your own: "
                             "functions)")
        return value


def build_tools(cfg: AgentConfig, ctx: StageContext | None, out: Path | None, progress: Any = None) -> ToolRegistry:
    """The registry ``cfg`` asks for (the search index built into ``out/index`` unless ``index_path``)."""
    registry = ToolRegistry()
    for name in cfg.tools:
        if name == "calculator":
            registry.register(calculator_tool())
        elif name == "python":
            registry.register(python_tool(Sandbox(cfg.sandbox)))
        elif name == "search":
            if cfg.index_path:
                index = RetrievalIndex.load(cfg.index_path)
            else:
                data = ctx.data if ctx is not None and cfg.corpus.data == "recipe" else None
                index = RetrievalIndex.build(load_documents(cfg.corpus, data), cfg.index, progress=progress)
                if out is not None:
                    index.save(out / "index")
            registry.register(search_tool(index, cfg.search_k, cfg.search_method))
    for spec in cfg.functions:
        registry.register(user_tool(spec))
    return registry


class Agent(BaseStage):
    kind = "agent"
    config_cls = AgentConfig
    title = "ReAct agent"

    def writes(self, cfg: AgentConfig) -> list[str]:
        index = ["index/"] if "search" in cfg.tools and not cfg.index_path else []
        return index + ["trajectories.jsonl", "agent_result.json", "section.md"]

    def plan_notes(self, cfg: AgentConfig, incoming: Any, model: Any) -> list[str]:
        return cfg.plan_notes()

    def run(self, ctx: StageContext, cfg: AgentConfig, out: Path) -> str:
        if "python" in cfg.tools:
            Sandbox(cfg.sandbox)  # refuses before any work when there is no isolation
        tasks = [t for source in cfg.tasks for t in load_tasks(source, cfg.n)]
        tools = build_tools(cfg, ctx, out, ctx.progress)
        llm = cfg.make_llm(lambda: ctx.model)
        ctx.progress(f"ReAct on {len(tasks)} questions with {llm.name}; tools: {', '.join(tools.names)}")
        agent = ReActAgent(llm, tools, cfg.generation, cfg.max_steps, cfg.template, cfg.examples)
        trajectories = agent.run_many(tasks)
        atomic_write_jsonl(out / "trajectories.jsonl", [t.to_dict() for t in trajectories])
        scores = react_scores(trajectories)
        atomic_write_json(out / "agent_result.json", {"n": len(trajectories), "llm": llm.name, "tools": tools.names,
                                                      "max_steps": cfg.max_steps, **scores,
                                                      "status": dict(Counter(t.status for t in trajectories))})
        return agent_section(trajectories, scores, llm.name, tools.names, cfg)

    def glance(self, folder: Path, cfg: AgentConfig) -> Glance:
        try:
            r = json.loads((folder / "agent_result.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return Glance()
        status = ", ".join(f"{k} {v}" for k, v in r["status"].items())
        return Glance(lines=[f"ReAct agent ({folder.name}, {r['n']} questions): exact match {r['exact_match']:.2f}, "
                             f"{r['mean_tool_calls']:.1f} tool calls per question; ended {status}."])


def agent_section(trajectories: list[Trajectory], scores: dict[str, float], llm: str, tools: list[str],
                  cfg: AgentConfig) -> str:
    rows = [[t.question, t.gold or "-", t.answer or "-", t.status, t.tool_calls, len(t.steps)]
            for t in trajectories]
    parts = [f"## ReAct agent\n\n{len(trajectories)} questions, {llm}, tools {', '.join(tools)}, at most "
             f"{cfg.max_steps} steps. Exact match **{scores['exact_match']:.3f}**, answered "
             f"{scores['answered']:.2f}, step limit {scores['step_limit']:.2f}, parse error "
             f"{scores['parse_error']:.2f}, "
             f"{scores['mean_tool_calls']:.2f} tool calls per question.\n",
             md_table(["question", "reference", "answer", "ended", "tool calls", "model calls"], rows),
             "Trajectories (all in `trajectories.jsonl`):\n"]
    for t in trajectories[:4]:
        steps = []
        for s in t.steps:
            steps.append(f"[step {s.step}{' retry' if s.retry else ''}, {s.finish_reason}] {s.output.strip()}")
            if s.error:
                steps.append(f"  parse error: {s.error}")
            if s.observation is not None:
                steps.append(f"  observation: {s.observation}")
        body = "\n".join(steps)[:3000]
        parts.append(f"**{t.question}** ({t.status})\n\n```\n{body}\n```\n")
    return "\n".join(parts)


STAGE: Any = register_stage(Agent())
