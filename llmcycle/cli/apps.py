"""The integrate commands: ``rag index|query|eval``, ``pal``, ``agent`` and ``cot``.

``rag index`` and ``rag query`` are direct tools (build and save an index; search it and answer one question);
``rag eval``, ``pal``, ``agent`` and ``cot`` are one-stage recipes of the stages ``rag``, ``pal``, ``agent`` and
``cot`` (``--set FIELD=VALUE`` reaches every field). Every command can use an OpenAI-compatible endpoint as
the LLM (``--endpoint http://127.0.0.1:8000/v1 --endpoint-model base``; key from ``--api-key-env``).
"""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from llmcycle.apps.corpus import CorpusConfig, load_documents
from llmcycle.apps.llm import EndpointConfig, EndpointLLM, LocalLLM
from llmcycle.apps.rag import answer_questions
from llmcycle.apps.retrieval import IndexConfig, RetrievalIndex
from llmcycle.cli.onestage import run_one_stage
from llmcycle.cli.output import console, field_help, say, table
from llmcycle.cli.stage_commands import RUN_DIR_HELP, RUNS_DIR_HELP, SET_HELP
from llmcycle.core.errors import ConfigError
from llmcycle.generation import GenerationSettings
from llmcycle.models import load_model
from llmcycle.stages.agent import AgentConfig
from llmcycle.stages.cot import CotConfig
from llmcycle.stages.pal import PalConfig
from llmcycle.stages.rag import RagConfig

ENDPOINT_HELP = ("An OpenAI-compatible endpoint to use as the LLM (llmcycle serve, vLLM, llama.cpp), e.g. "
                 "http://127.0.0.1:8000/v1; MODEL then only labels the run.")
ENDPOINT_MODEL_HELP = field_help(EndpointConfig, "model")
API_KEY_ENV_HELP = field_help(EndpointConfig, "api_key_env")
UNSAFE_HELP = ("Run generated code without bubblewrap (a child process with resource limits only). Without this, "
               "a machine lacking bubblewrap refuses to run it.")


def _endpoint(endpoint: str | None, endpoint_model: str, api_key_env: str, chat: bool) -> dict[str, Any] | None:
    if not endpoint:
        return None
    return {"base_url": endpoint, "model": endpoint_model, "api_key_env": api_key_env, "chat": chat}


def _llm_fields(endpoint: str | None, endpoint_model: str, api_key_env: str, chat: bool) -> dict[str, Any]:
    ep = _endpoint(endpoint, endpoint_model, api_key_env, chat)
    return {"endpoint": ep} if ep else ({"chat": True} if chat else {})


def _model(model: str | None, endpoint: str | None) -> str:
    if model:
        return model
    if endpoint:
        return endpoint  # a label only: with an endpoint nothing is loaded
    raise ConfigError("MODEL: give a model (hub id, folder or builtin:NAME) or --endpoint URL")


def rag_cmd(
    action: str = typer.Argument(..., help="index: build and save an index over PATHS (or --data); query: search "
                                 "INDEX for QUESTION and answer it with --model or --endpoint; eval: the rag stage "
                                 "on MODEL (a one-stage recipe)."),
    args: Optional[List[str]] = typer.Argument(None, help="index: files or folders (.txt, .md, .jsonl); query: INDEX "
                                               "QUESTION; eval: MODEL."),
    out: str = typer.Option("rag-index", help="index: the folder the index is saved to."),
    data: Optional[str] = typer.Option(None, help=field_help(CorpusConfig, "data", "index: default "
                                       "builtin:dialogues when no PATHS are given.")),
    text_field: Optional[str] = typer.Option(None, help=field_help(CorpusConfig, "text_field")),
    id_field: Optional[str] = typer.Option(None, help=field_help(CorpusConfig, "id_field")),
    embedding_model: str = typer.Option("minilm", help=field_help(IndexConfig, "embedding_model")),
    kind: str = typer.Option("flat", help=field_help(IndexConfig, "kind")),
    chunk_tokens: int = typer.Option(200, help=field_help(IndexConfig, "chunk_tokens")),
    chunk_overlap: int = typer.Option(40, help=field_help(IndexConfig, "chunk_overlap")),
    k: int = typer.Option(3, help=field_help(RagConfig, "k")),
    method: str = typer.Option("hybrid", help=field_help(RagConfig, "method")),
    model: Optional[str] = typer.Option(None, "--model", help="query: answer with this model (hub id, folder, "
                                        "builtin:NAME); without --model or --endpoint only the passages print."),
    endpoint: Optional[str] = typer.Option(None, help=ENDPOINT_HELP),
    endpoint_model: str = typer.Option("base", help=ENDPOINT_MODEL_HELP),
    api_key_env: str = typer.Option("OPENAI_API_KEY", help=API_KEY_ENV_HELP),
    chat: bool = typer.Option(False, "--chat", help=field_help(RagConfig, "chat")),
    max_new_tokens: int = typer.Option(64, help="query: most tokens of the answer."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help=RUN_DIR_HELP),
    runs_dir: Optional[str] = typer.Option(None, help=RUNS_DIR_HELP),
) -> None:
    """Retrieval-augmented generation: build an index (index), ask it (query), evaluate it (eval)."""
    args = list(args or [])
    if action == "index":
        corpus = CorpusConfig.from_dict({"paths": args, "data": data or (None if args else "builtin:dialogues"),
                                         "text_field": text_field, "id_field": id_field}, where="rag index")
        cfg = IndexConfig.from_dict({"embedding_model": embedding_model, "kind": kind, "chunk_tokens": chunk_tokens,
                                     "chunk_overlap": chunk_overlap}, where="rag index")
        docs = load_documents(corpus)
        index = RetrievalIndex.build(docs, cfg, progress=say)
        folder = index.save(out)
        console.print(f"saved: {folder} ({index.n_docs} documents, {len(index.chunks)} chunks, {cfg.kind} FAISS "
                      f"index{', BM25' if cfg.bm25 else ''})", soft_wrap=True)
    elif action == "query":
        if len(args) != 2:
            raise ConfigError("rag query: give INDEX and QUESTION (quote the question)")
        index = RetrievalIndex.load(args[0])
        question = args[1]
        if not (model or endpoint):
            hits = index.search([question], k=k, method=method)[0]  # type: ignore[arg-type]
            console.print(table(f"{method} retrieval", [(h.rank, f"{h.score:.4f}", h.chunk.label,
                                                         " ".join(h.chunk.text.split())[:200]) for h in hits],
                                ("#", "score", "chunk", "text")))
            return
        ep = _endpoint(endpoint, endpoint_model, api_key_env, chat)
        llm = EndpointLLM(EndpointConfig.from_dict(ep, where="endpoint")) if ep else \
            LocalLLM(load_model(model or ""), chat=chat)
        settings = GenerationSettings(max_new_tokens=max_new_tokens)
        answer = answer_questions(index, [question], llm, settings, k=k, method=method)[0]  # type: ignore[arg-type]
        console.print(table("passages in the prompt", [(p["n"], p["label"], " ".join(p["text"].split())[:200])
                                                        for p in answer.passages], ("#", "chunk", "text")))
        if answer.dropped or answer.input_truncated:
            console.print(f"budget ({answer.max_tokens} tokens): dropped {', '.join(answer.dropped) or 'none'}; "
                          f"last passage cut by {answer.tokens_removed} tokens" if answer.input_truncated else
                          f"budget ({answer.max_tokens} tokens): dropped {', '.join(answer.dropped)}")
        console.print(f"answer: {answer.answer}", soft_wrap=True)
        cited = ", ".join(f"[{n}] {answer.passages[n - 1]['label']}" for n in answer.citations)
        console.print(f"cites: {cited or 'nothing'}", soft_wrap=True)
    elif action == "eval":
        if len(args) > 1:
            raise ConfigError("rag eval: give at most one MODEL")
        fields: dict[str, Any] = {"k": k, "method": method, **_llm_fields(endpoint, endpoint_model, api_key_env, chat)}
        if data:
            fields["corpus"] = {"data": data}
        run_one_stage("rag", _model(args[0] if args else None, endpoint), {"source": "builtin:dialogues"}, fields,
                      set_, run_dir, runs_dir)
    else:
        raise ConfigError(f"rag: unknown action {action!r}; valid: index, query, eval")


def pal_cmd(
    model: Optional[str] = typer.Argument(None, help="Hub id, local directory or builtin:NAME (or --endpoint)."),
    tasks: str = typer.Option("builtin:arithmetic", help=field_help(PalConfig, "tasks")),
    n: int = typer.Option(10, help=field_help(PalConfig, "n")),
    shots: int = typer.Option(3, help=field_help(PalConfig, "shots")),
    unsafe_no_sandbox: bool = typer.Option(False, "--unsafe-no-sandbox", help=UNSAFE_HELP),
    endpoint: Optional[str] = typer.Option(None, help=ENDPOINT_HELP),
    endpoint_model: str = typer.Option("base", help=ENDPOINT_MODEL_HELP),
    api_key_env: str = typer.Option("OPENAI_API_KEY", help=API_KEY_ENV_HELP),
    chat: bool = typer.Option(False, "--chat", help=field_help(PalConfig, "chat")),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help=RUN_DIR_HELP),
    runs_dir: Optional[str] = typer.Option(None, help=RUNS_DIR_HELP),
) -> None:
    """Program-aided answers: the model writes Python, a bubblewrap sandbox runs it, the output is the answer."""
    fields: dict[str, Any] = {"tasks": tasks, "n": n, "shots": shots,
                              **_llm_fields(endpoint, endpoint_model, api_key_env, chat)}
    if unsafe_no_sandbox:
        fields["sandbox"] = {"unsafe_no_sandbox": True}
    run_one_stage("pal", _model(model, endpoint), {"source": "builtin:dialogues"}, fields, set_, run_dir, runs_dir)


def agent_cmd(
    model: Optional[str] = typer.Argument(None, help="Hub id, local directory or builtin:NAME (or --endpoint)."),
    tasks: Optional[List[str]] = typer.Option(None, "--tasks", help=field_help(AgentConfig, "tasks", "Repeatable.")),
    n: int = typer.Option(3, help=field_help(AgentConfig, "n")),
    tool: Optional[List[str]] = typer.Option(None, "--tool", help=field_help(AgentConfig, "tools", "Repeatable.")),
    function: Optional[List[str]] = typer.Option(None, "--function", help=field_help(AgentConfig, "functions",
                                                                                     "Repeatable.")),
    max_steps: int = typer.Option(6, help=field_help(AgentConfig, "max_steps")),
    unsafe_no_sandbox: bool = typer.Option(False, "--unsafe-no-sandbox", help=UNSAFE_HELP),
    endpoint: Optional[str] = typer.Option(None, help=ENDPOINT_HELP),
    endpoint_model: str = typer.Option("base", help=ENDPOINT_MODEL_HELP),
    api_key_env: str = typer.Option("OPENAI_API_KEY", help=API_KEY_ENV_HELP),
    chat: bool = typer.Option(False, "--chat", help=field_help(AgentConfig, "chat")),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help=RUN_DIR_HELP),
    runs_dir: Optional[str] = typer.Option(None, help=RUNS_DIR_HELP),
) -> None:
    """A ReAct agent with tools (search, calculator, sandboxed Python, your functions); trajectories in the report."""
    fields: dict[str, Any] = {"n": n, "max_steps": max_steps,
                              **_llm_fields(endpoint, endpoint_model, api_key_env, chat)}
    if tasks:
        fields["tasks"] = list(tasks)
    if tool:
        fields["tools"] = list(tool)
    if function:
        fields["functions"] = list(function)
    if unsafe_no_sandbox:
        fields["sandbox"] = {"unsafe_no_sandbox": True}
    run_one_stage("agent", _model(model, endpoint), {"source": "builtin:dialogues"}, fields, set_, run_dir,
                  runs_dir)


def cot_cmd(
    model: Optional[str] = typer.Argument(None, help="Hub id, local directory or builtin:NAME (or --endpoint)."),
    tasks: str = typer.Option("builtin:arithmetic", help=field_help(CotConfig, "tasks")),
    n: int = typer.Option(10, help=field_help(CotConfig, "n")),
    shots: int = typer.Option(4, help=field_help(CotConfig, "shots")),
    samples: int = typer.Option(5, help=field_help(CotConfig, "samples")),
    endpoint: Optional[str] = typer.Option(None, help=ENDPOINT_HELP),
    endpoint_model: str = typer.Option("base", help=ENDPOINT_MODEL_HELP),
    api_key_env: str = typer.Option("OPENAI_API_KEY", help=API_KEY_ENV_HELP),
    chat: bool = typer.Option(False, "--chat", help=field_help(CotConfig, "chat")),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help=RUN_DIR_HELP),
    runs_dir: Optional[str] = typer.Option(None, help=RUNS_DIR_HELP),
) -> None:
    """Chain-of-thought with few-shot exemplars and self-consistency (majority vote), scored by exact match."""
    fields: dict[str, Any] = {"tasks": tasks, "n": n, "shots": shots, "samples": samples,
                              **_llm_fields(endpoint, endpoint_model, api_key_env, chat)}
    run_one_stage("cot", _model(model, endpoint), {"source": "builtin:dialogues"}, fields, set_, run_dir, runs_dir)
