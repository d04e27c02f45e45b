"""Reliability: every bad input of the test tables run for real, counted.

Runs each case of ``tests/badinput/cases.py`` through the real entry point (``llmcycle.cli.main``, in this
process) in a work folder laid out by ``make_fixtures``, and counts the outcomes: a clear error (the expected
exit code, one ``error:`` line naming what it should, no traceback, nothing left on disk), a traceback (an
exception escaped), something left behind (a file or folder created, changed or removed). Then sends the
hostile HTTP requests of ``SERVER_CASES`` and schemathesis' requests drawn from the server's OpenAPI schema to
the real app, counting 5xx answers. Writes ``benchmarks/results/reliability.json``.

    python benchmarks/reliability.py [--fuzz-examples 80]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _common import command, machine, versions, write_json  # noqa: E402

from tests.badinput.cases import CLI_CASES, SERVER_CASES, make_fixtures  # noqa: E402
from tests.badinput.harness import problems, run_case  # noqa: E402


def cli_figures() -> dict:
    """Run every CLI case; count clear errors, tracebacks and cases that left something behind."""
    clear = tracebacks = left = 0
    failures = []
    with tempfile.TemporaryDirectory(prefix="llmcycle-reliability-") as tmp:
        root = Path(tmp)
        make_fixtures(root)
        cwd = os.getcwd()
        os.chdir(root)
        try:
            for case in CLI_CASES:
                outcome = run_case(case, root)
                found = problems(case, outcome)
                clear += not found
                tracebacks += outcome.traceback is not None or "Traceback" in outcome.err + outcome.out
                left += bool(outcome.changed)
                if found:
                    failures.append({"args": list(case.args), "problems": found})
        finally:
            os.chdir(cwd)
    return {"cli_cases": len(CLI_CASES), "clear_errors": clear, "tracebacks": tracebacks, "left_behind": left,
            "cli_failures": failures}


def server_figures(fuzz_examples: int) -> dict:
    """The hostile requests, then schemathesis over /openapi.json; count requests and 5xx answers."""
    import httpx
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    from llmcycle.serving import BackgroundServer, create_app

    app = create_app({"model": "builtin:tiny-llama", "log_requests": False, "max_tokens": 4,
                      "default_max_tokens": 2})
    statuses: list[int] = []
    wrong: list[str] = []
    server_errors: list[dict] = []
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        for case in SERVER_CASES:  # over real HTTP, as a client would send them
            r = client.request(case.method, case.path, content=case.body, headers=dict(case.headers))
            statuses.append(r.status_code)
            if r.status_code != case.status:
                wrong.append(f"{case.name}: {r.status_code}, expected {case.status}")
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()

            @given(case=operation.as_strategy())
            @settings(max_examples=fuzz_examples, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            def call(case):
                response = case.call()
                statuses.append(response.status_code)
                if response.status_code >= 500:
                    server_errors.append({"method": case.method, "path": case.formatted_path,
                                          "body": repr(case.body)[:300], "status": response.status_code,
                                          "answer": response.text[:300]})

            call()
    return {"server_requests": len(statuses), "server_5xx": sum(s >= 500 for s in statuses),
            "server_hostile_cases": len(SERVER_CASES), "server_unexpected_status": wrong,
            "server_5xx_requests": server_errors,
            "server_status_counts": {str(s): statuses.count(s) for s in sorted(set(statuses))}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz-examples", type=int, default=80, help="schemathesis examples per API operation")
    args = parser.parse_args()
    t0 = time.perf_counter()
    cli = cli_figures()
    server = server_figures(args.fuzz_examples)
    result = {key: value for key, value in {**cli, **server}.items()}
    ordered = {k: result[k] for k in ("cli_cases", "clear_errors", "tracebacks", "left_behind", "server_requests",
                                      "server_5xx")}
    out = {**ordered, **{k: v for k, v in result.items() if k not in ordered},
           "seconds": round(time.perf_counter() - t0, 1), "machine": machine(),
           "versions": versions("torch", "transformers", "fastapi", "schemathesis", "hypothesis", "llmcycle"),
           "command": command()}
    path = write_json("reliability", out)
    print(f"wrote {path}: " + ", ".join(f"{k} {v}" for k, v in ordered.items()))


if __name__ == "__main__":
    main()
