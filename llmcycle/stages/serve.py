"""Stage ``serve``: the model it receives behind the real OpenAI-compatible server on loopback, called over
HTTP as an application would (``llmcycle.serving.smoke``): concurrent greedy completions checked
against offline generation, a streamed chat completion, malformed requests answered 4xx. After an
optimize stage with ``hand_on: int8`` it serves the int8 model: what would be deployed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmcycle.models.chat import uses_chat
from llmcycle.prompts import build_prompts, get_template
from llmcycle.serving.smoke import SmokeConfig, SmokeResult, smoke_test
from llmcycle.stages.base import BaseStage, Glance, StageContext, register_stage


class Serve(BaseStage):
    kind = "serve"
    config_cls = SmokeConfig
    title = "Serving smoke test"

    def writes(self, cfg: SmokeConfig) -> list[str]:
        return ["serve_smoke.json", "section.md"]

    def run(self, ctx: StageContext, cfg: SmokeConfig, out: Path) -> str:
        rows = ctx.eval_rows()
        rows = [dict(rows[i]) for i in range(min(cfg.requests, len(rows)))]
        loaded = ctx.model
        chat = uses_chat(loaded)
        prompts = build_prompts(cfg.template, rows, tokenizer=loaded.tokenizer, chat=chat).texts
        users = [get_template(cfg.template).render(r) for r in rows] if chat else None
        result = smoke_test(loaded, prompts, cfg, out, users)
        return smoke_section(result, ctx.incoming.describe())

    def glance(self, folder: Path, cfg: SmokeConfig) -> Glance:
        try:
            s = json.loads((folder / "serve_smoke.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return Glance()
        verdict = "passed" if s.get("passed") else "FAILED" + (f" ({'; '.join(s['problems'])})" if s.get("problems")
                                                               else "")
        return Glance(lines=[f"Serving ({folder.name}): {verdict}: {s['ok']} of {s['requests']} requests answered, "
                             f"{s['throughput_rps']:.2f} requests/s, p50 {s['p50_ms']:.0f} ms."])


def smoke_section(result: SmokeResult, model: str) -> str:
    """Markdown for the run report."""
    verdict = "passed" if result.passed else f"**FAILED** ({'; '.join(result.problems)})"
    rows = [("requests (greedy completions)", f"{result.ok} ok of {result.requests}, {result.failed} failed, "
             f"{result.empty_outputs} empty"),
            ("same text as offline one-at-a-time generation", f"{result.matches_offline} of {result.requests} (a "
             "batch's padding can flip near-tied greedy choices)"),
            ("throughput", f"{result.throughput_rps:.2f} requests/s"),
            ("latency p50 / max", f"{result.p50_ms:.0f} ms / {result.max_ms:.0f} ms"),
            ("batches formed (size x count)", ", ".join(f"{k} x {v}" for k, v in result.batches.items()) or "-"),
            ("streamed chat completion", f"{result.stream_chunks} chunks, joins into the offline text: "
                                         f"{'yes' if result.stream_matches else 'no'}"),
            ("malformed requests", ", ".join(f"{k}: {v}" for k, v in result.bad_requests.items()))]
    table = "| check | result |\n| --- | --- |\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)
    ex = "\n".join(f"- `{e['served'][:200]}`" for e in result.examples)
    return (f"## Serving smoke test: {verdict}\n\n`{model}` behind the OpenAI-compatible server (`llmcycle serve`) "
            f"on loopback, called over HTTP.\n\n{table}\n\nServed outputs:\n{ex}\n")


STAGE: Any = register_stage(Serve())
