"""Load test of ``llmcycle serve``: dynamic batching vs one request per generate call.

Starts the real server (``python -m llmcycle serve``, a subprocess on a free loopback port) on the
same model with dynamic batching (``--max-wait-ms``, and again for each ``--also-wait-ms``), then
with ``--no-batching`` (the baseline). Each time
``--clients`` concurrent clients (httpx, async) send summarisation requests, each sending its next
request when the last one is answered, until ``--requests`` have been sent or ``--max-seconds`` have
passed. Requests are greedy (``temperature: 0``) with ``max_tokens`` new tokens, on DialogSum test
dialogues (``../shared/data/dialogsum``; the builtin dialogues when absent) in the course lab's
zero-shot prompt ("Summarize the following conversation. ... Summary:"), skipping dialogues whose
prompt exceeds ``--max-prompt-tokens``. Both runs send the same prompts in the same order.

Reported per run: throughput (requests/s over the run's wall time), p50/p95/p99 latency, failures,
and the server's batch-size histogram; overall, the throughput ratio batched/unbatched (target: >= 3
with 16 clients, 0 failed; top-level figures are the ``--max-wait-ms`` run's) and how many outputs
are identical to the unbatched run's (greedy decoding, so batching must not change them).

    OMP_NUM_THREADS=1 python benchmarks/serve_load.py                  # minilm-seq2seq, 16 clients, 96 requests
    OMP_NUM_THREADS=1 python benchmarks/serve_load.py --requests 32 --clients 8 --model builtin:tiny-t5

Writes ``benchmarks/results/serve_load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import command, machine, versions, write_json  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "dialogsum"
TEMPLATE = "instruction"  # "Summarize the following conversation.\n\n{dialogue}\n\nSummary:"


def prompts(model: str, n: int, max_prompt_tokens: int) -> tuple[list[str], str, int]:
    """``n`` prompts (cycling when the data has fewer), the data's name, and how many were too long."""
    from llmcycle.data import load_data
    from llmcycle.prompts.registry import get_template

    source = str(DATA) if (DATA / "dialogsum.test.jsonl").is_file() else "builtin:dialogues"
    rows = load_data(source)["test"]
    tok = _tokenizer(model)
    template = get_template(TEMPLATE)
    texts = [template.render({"dialogue": row["input"]}) for row in rows]
    fitting = [t for t in texts if len(tok(t, verbose=False)["input_ids"]) <= max_prompt_tokens]
    if not fitting:
        sys.exit(f"no prompt of {source} fits in {max_prompt_tokens} tokens")
    return [fitting[i % len(fitting)] for i in range(n)], source, len(texts) - len(fitting)


def _tokenizer(model: str) -> Any:
    if model.startswith("builtin:"):
        from llmcycle.models.builtins import get_builtin
        from llmcycle.models.tokenizer import offline_tokenizer

        return offline_tokenizer(get_builtin(model).kind)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model)


class Server:
    """``python -m llmcycle serve`` in a subprocess; its log goes to a temporary file."""

    def __init__(self, model: str, extra: list[str]):
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", prefix="serve_load-")
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        self.proc = subprocess.Popen([sys.executable, "-m", "llmcycle", "serve", model, "--port", "0", "--quiet",
                                      *extra], stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        self.url = self._wait_for_address()

    def _wait_for_address(self, timeout_s: float = 300) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = Path(self.log.name).read_text(encoding="utf-8", errors="replace")
            if match := re.search(r"on (http://127\.0\.0\.1:\d+)/v1", text):
                if "Application startup complete" in text:
                    return match.group(1)
            if self.proc.poll() is not None:
                sys.exit(f"the server exited ({self.proc.returncode}):\n{text}")
            time.sleep(0.1)
        self.stop()
        sys.exit("the server did not start in time")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


async def load(url: str, texts: list[str], clients: int, max_tokens: int, max_seconds: float) -> dict[str, Any]:
    """``clients`` concurrent clients working through ``texts``; per-request latency and output."""
    import httpx

    results: list[dict[str, Any] | None] = [None] * len(texts)
    next_index = 0
    start = time.perf_counter()

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal next_index
        while next_index < len(texts) and time.perf_counter() - start < max_seconds:
            i, next_index = next_index, next_index + 1
            t0 = time.perf_counter()
            try:
                r = await http.post("/v1/completions", json={"model": "base", "prompt": texts[i],
                                                             "max_tokens": max_tokens, "temperature": 0})
                ok = r.status_code == 200
                body = r.json()
                results[i] = {"ok": ok, "status": r.status_code, "ms": (time.perf_counter() - t0) * 1000,
                              "text": body["choices"][0]["text"] if ok else None,
                              "tokens": body["usage"]["completion_tokens"] if ok else 0,
                              "error": None if ok else body.get("error", {}).get("message")}
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                results[i] = {"ok": False, "status": None, "ms": (time.perf_counter() - t0) * 1000, "text": None,
                              "tokens": 0, "error": f"{type(exc).__name__}: {exc}"}

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=max_seconds + 600, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
        health = (await http.get("/health")).json()
    wall = time.perf_counter() - start
    return {"results": results, "wall_s": wall, "health": health}


def percentile(values: list[float], q: float) -> float | None:
    import numpy as np

    return round(float(np.percentile(values, q)), 1) if values else None


def run(model: str, texts: list[str], args: argparse.Namespace, batching: bool, wait_ms: float) -> dict[str, Any]:
    extra = ["--max-tokens", str(args.max_tokens), "--max-batch-size", str(args.max_batch_size),
             "--max-wait-ms", str(wait_ms), "--max-queue", str(max(1024, args.clients * 2))]
    server = Server(model, extra + ([] if batching else ["--no-batching"]))
    try:
        asyncio.run(load(server.url, texts[:2], 2, args.max_tokens, 600))  # warm-up, not counted
        got = asyncio.run(load(server.url, texts, args.clients, args.max_tokens, args.max_seconds))
    finally:
        server.stop()
    done = [r for r in got["results"] if r is not None]
    ok = [r for r in done if r["ok"]]
    lat = [r["ms"] for r in ok]
    warm = got["health"]  # counters include the 2 warm-up requests (their own 1 or 2 calls)
    errors = sorted({r["error"] for r in done if not r["ok"]})
    return {
        "batching": batching, "max_wait_ms": wait_ms if batching else None, "sent": len(done), "completed": len(ok), "failed": len(done) - len(ok),
        "not_sent_time_limit": len(texts) - len(done), "wall_s": round(got["wall_s"], 2),
        "throughput_rps": round(len(ok) / got["wall_s"], 3), "tokens_per_s": round(sum(r["tokens"] for r in ok)
                                                                                   / got["wall_s"], 1),
        "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95), "p99_ms": percentile(lat, 99),
        "mean_ms": round(sum(lat) / len(lat), 1) if lat else None,
        "server_generate_calls_incl_warmup": warm["generate_calls"], "server_batch_sizes_incl_warmup":
        warm["batch_sizes"], "errors": errors[:5], "texts": [r["text"] for r in got["results"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="builtin:minilm-seq2seq", help="builtin:NAME or a model directory")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=96, help="requests per run (default 96)")
    parser.add_argument("--max-seconds", type=float, default=300, help="stop sending after this long, per run")
    parser.add_argument("--max-tokens", type=int, default=60)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--max-wait-ms", type=float, default=100,
                        help="the batched run's max_wait_ms (default 100: a batch takes seconds on a CPU, and a "
                        "wait that covers a client's round trip lets the clients one batch answered join the next)")
    parser.add_argument("--also-wait-ms", type=float, nargs="*", default=[10],
                        help="extra batched runs with these max_wait_ms values, reported beside (default: 10)")
    parser.add_argument("--max-prompt-tokens", type=int, default=384, help="skip dialogues with longer prompts")
    args = parser.parse_args()

    texts, source, too_long = prompts(args.model, args.requests, args.max_prompt_tokens)
    print(f"{len(texts)} requests from {source} ({too_long} dialogues skipped as too long), {args.clients} clients")
    runs = {}
    plan = [("batched", True, args.max_wait_ms), *((f"batched_wait_{w:g}ms", True, w) for w in args.also_wait_ms),
            ("unbatched", False, 0.0)]
    for name, batching, wait_ms in plan:
        runs[name] = run(args.model, texts, args, batching, wait_ms)
        r = runs[name]
        print(f"{name:>9}: {r['throughput_rps']:.2f} req/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, "
              f"{r['completed']} ok / {r['failed']} failed in {r['wall_s']} s")
    batched, unbatched = runs["batched"], runs["unbatched"]
    texts_of = {name: r.pop("texts") for name, r in runs.items()}
    pairs = [(a, b) for name in runs if name != "unbatched"
             for a, b in zip(texts_of[name], texts_of["unbatched"]) if a is not None and b is not None]
    others = {name: {**r, "throughput_ratio": round(r["throughput_rps"] / unbatched["throughput_rps"], 2)
                     if unbatched["throughput_rps"] else None}
              for name, r in runs.items() if name not in ("batched", "unbatched")}
    ratio = batched["throughput_rps"] / unbatched["throughput_rps"] if unbatched["throughput_rps"] else None
    failed = sum(r["failed"] for r in runs.values())
    result = {
        "clients": args.clients, "requests": args.requests,
        "throughput_ratio": round(ratio, 2) if ratio else None, "failed": failed,
        "p50_ms": batched["p50_ms"], "p99_ms": batched["p99_ms"],
        "target": {"throughput_ratio_at_least": 3.0, "failed": 0,
                   "met": bool(ratio and ratio >= 3.0 and failed == 0)},
        "identical_outputs": f"{sum(a == b for a, b in pairs)}/{len(pairs)}",
        "batched": batched, "unbatched": unbatched, **others,
        "setup": {"model": args.model, "data": source, "prompt_template": TEMPLATE, "dialogues_too_long": too_long,
                  "max_prompt_tokens": args.max_prompt_tokens, "max_tokens": args.max_tokens, "temperature": 0,
                  "max_batch_size": args.max_batch_size, "max_wait_ms": args.max_wait_ms,
                  "max_seconds": args.max_seconds, "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
        "machine": machine(), "versions": versions("torch", "transformers", "peft", "fastapi", "uvicorn", "httpx",
                                                   "llmcycle"),
        "command": command(),
    }
    path = write_json("serve_load", result)
    print(f"throughput ratio {result['throughput_ratio']}x (target >= 3), failed {failed}, identical outputs "
          f"{result['identical_outputs']}; wrote {path}")


if __name__ == "__main__":
    main()
