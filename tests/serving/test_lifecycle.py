"""Graceful shutdown, the request log, the streaming pieces, and the ``llmcycle serve`` command."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmcycle.serving.streaming import Deltas
from tests.cli_helpers import run_cli
from tests.serving.conftest import BASE, PROMPTS

SECRET_PROMPT = "my password is hunter2"


def wait_for(condition, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_shutdown_finishes_the_request_in_flight(live_server):
    import httpx

    entered, release = threading.Event(), threading.Event()
    with live_server({}) as server:
        service = server.app.state.service
        generate = service.scheduler.run

        def held(*args):
            entered.set()
            release.wait(60)
            return generate(*args)

        service.scheduler.run = held
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.post, f"{server.url}/v1/completions", timeout=60,
                                  json={"model": "base", "prompt": PROMPTS[0], "max_tokens": 5, "temperature": 0})
            assert entered.wait(60)
            server.server.should_exit = True  # what uvicorn's SIGTERM handler does
            wait_for(lambda: not _up(server.url), "the server to stop accepting connections")
            release.set()  # only now may the request in flight finish
            response = pending.result(60)
        server.thread.join(60)
        assert not server.thread.is_alive()
    assert response.status_code == 200 and response.json()["choices"][0]["text"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health", timeout=5)


def test_request_log_has_counts_but_no_payloads(client_for, caplog):
    with caplog.at_level(logging.INFO, logger="llmcycle.serving"):
        with client_for({}) as c:
            ok = c.post("/v1/completions", json={"model": "base", "prompt": SECRET_PROMPT, "max_tokens": 3,
                                                 "temperature": 0})
            c.post("/v1/completions", content=b"{oops " + SECRET_PROMPT.encode())
    lines = [r.getMessage() for r in caplog.records if r.name == "llmcycle.serving"]
    assert any(re.fullmatch(r"POST /v1/completions 200 [\d.]+ms prompt_tokens=\d+ completion_tokens=3", line)
               for line in lines), lines
    assert any(line.startswith("POST /v1/completions 400 ") for line in lines)
    everything = "\n".join(lines)
    assert "hunter2" not in everything and ok.json()["choices"][0]["text"] not in everything


def test_deltas_hold_back_stop_strings_and_spaces():
    d = Deltas(stops=["END"])
    sent = [d.update(t) for t in [" hel", " hello wo", " hello world E", " hello world EN", " hello world END x"]]
    assert sent == ["h", "ello", " world", "", ""]  # 2 characters held back: "E", "EN" never go out
    assert d.finish("hello world") == "" and d.sent == "hello world"
    plain = Deltas()
    assert [plain.update(t) for t in ["a ", "a b", "a b\ufffd", "a bé"]] == ["a", " b", "", "é"]


def test_cancelled_stream_stops_generation():
    import asyncio

    from llmcycle.serving.streaming import DeltaStreamer, StreamCancelled

    async def make():
        return DeltaStreamer(tokenizer=None)

    streamer = asyncio.run(make())
    streamer.cancelled = True
    with pytest.raises(StreamCancelled):
        streamer.put(None)


def test_serve_help_and_bad_options(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "serve", "--help")
    assert code == 0 and "--adapter" in out and "--no-batching" in out and "LLMCYCLE_API_KEY" in out
    code, _, err = run_cli(monkeypatch, capsys, "serve", BASE, "--adapter", "nonsense")
    assert code == 1 and "expected NAME=DIR" in err and "Traceback" not in err
    code, _, err = run_cli(monkeypatch, capsys, "serve", BASE, "--adapter", "x=/no/such/adapter")
    assert code == 1 and "adapter x: /no/such/adapter is not a PEFT adapter directory" in err
    code, _, err = run_cli(monkeypatch, capsys, "serve", BASE, "--max-batch-size", "0")
    assert code == 1 and "max_batch_size" in err


def test_serve_command_stops_gracefully_on_sigterm():
    """The real command in a subprocess: SIGTERM while a request runs -> it is answered, then the app stops."""
    import httpx

    env = {**os.environ, "OMP_NUM_THREADS": "1", "LLMCYCLE_API_KEY": "k"}
    proc = subprocess.Popen([sys.executable, "-m", "llmcycle", "serve", "builtin:tiny-t5", "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = None
        for line in proc.stderr:  # the start line names the port
            if match := re.search(r"on (http://127\.0\.0\.1:\d+)/v1", line):
                url = match.group(1)
                break
        assert url, "the server did not print its address"
        wait_for(lambda: _up(url), "the server to answer")
        auth = {"Authorization": "Bearer k"}
        with ThreadPoolExecutor(1) as pool:  # tiny-t5 never emits its end token: 400 tokens take a while
            pending = pool.submit(httpx.post, f"{url}/v1/completions", headers=auth, timeout=120,
                                  json={"model": "base", "prompt": "hi", "max_tokens": 400, "temperature": 0})
            wait_for(lambda: httpx.get(f"{url}/health").json()["waiting"] > 0, "the request to be queued")
            proc.send_signal(signal.SIGTERM)
            response = pending.result(120)
        # uvicorn re-raises the signal once shut down, so the exit status still says SIGTERM
        assert proc.wait(120) in (0, -signal.SIGTERM)
        log = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert response.status_code == 200 and response.json()["usage"]["completion_tokens"] == 400
    assert "POST /v1/completions 200" in log and "Application shutdown complete" in log


def _up(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.TransportError:
        return False
