"""Dynamic batching: concurrent compatible requests share generate calls, with unbatched outputs."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmcycle.serving.protocol import APIError
from llmcycle.serving.scheduler import Job, Scheduler
from tests.serving.conftest import PROMPTS, direct


class Recorder:
    """A stand-in model thread: records each call's (model, prompts) and echoes the prompts."""

    def __init__(self, fail: bool = False):
        self.calls: list[tuple[str, list[str]]] = []
        self.fail = fail

    def __call__(self, model, prompts, settings, streamer=None):
        self.calls.append((model, list(prompts)))
        if self.fail:
            raise RuntimeError("model exploded")
        return [f"{model}:{p}" for p in prompts]


def run_jobs(scheduler: Scheduler, jobs: list[Job]) -> list:
    """Submit ``jobs`` all at once (one event-loop turn), wait for every result."""

    async def main():
        scheduler.start()
        try:
            return await asyncio.gather(*(scheduler.submit(j) for j in jobs), return_exceptions=True)
        finally:
            await scheduler.close()

    return asyncio.run(main())


def job(prompt: str, key: str = "k", model: str = "m", solo: bool = False) -> Job:
    return Job(model, prompt, settings=None, key=key, solo=solo)


def test_concurrent_jobs_share_one_call():
    rec = Recorder()
    results = run_jobs(Scheduler(rec, max_batch_size=16, max_wait_ms=20), [job(f"p{i}") for i in range(10)])
    assert results == [f"m:p{i}" for i in range(10)]
    assert len(rec.calls) == 1  # 10 < 16, but all ten were queued before the collector took any


def test_batches_are_capped_at_max_batch_size():
    rec = Recorder()
    results = run_jobs(Scheduler(rec, max_batch_size=4, max_wait_ms=20), [job(f"p{i}") for i in range(10)])
    assert results == [f"m:p{i}" for i in range(10)]
    assert [len(p) for _, p in rec.calls] == [4, 4, 2]


def test_batching_off_is_one_call_per_job():
    rec = Recorder()
    run_jobs(Scheduler(rec, max_batch_size=1, max_wait_ms=0), [job(f"p{i}") for i in range(5)])
    assert [p for _, p in rec.calls] == [["p0"], ["p1"], ["p2"], ["p3"], ["p4"]]


def test_incompatible_jobs_never_share_a_batch():
    rec = Recorder()
    jobs = [job(f"p{i}", key=f"k{i % 3}", model=f"m{i % 3}") for i in range(9)]
    results = run_jobs(Scheduler(rec, max_batch_size=16, max_wait_ms=20), jobs)
    assert results == [f"m{i % 3}:p{i}" for i in range(9)]
    assert sorted(rec.calls) == [("m0", ["p0", "p3", "p6"]), ("m1", ["p1", "p4", "p7"]), ("m2", ["p2", "p5", "p8"])]


def test_solo_jobs_run_alone():
    rec = Recorder()
    jobs = [job("a"), job("s1", key="x", solo=True), job("b"), job("s2", key="y", solo=True)]
    run_jobs(Scheduler(rec, max_batch_size=16, max_wait_ms=20), jobs)
    assert sorted(p for _, p in rec.calls) == [["a", "b"], ["s1"], ["s2"]]


def test_clients_answered_by_one_batch_rejoin_the_next():
    """Jobs queued behind a running batch wait for the clients that batch answers, so cohorts merge."""

    async def main():
        gate, calls = threading.Event(), []

        def runner(model, prompts, settings, streamer):
            calls.append(list(prompts))
            if len(calls) == 1:
                gate.wait(30)  # the first batch runs until c and d have queued behind it
            return prompts

        scheduler = Scheduler(runner, max_batch_size=4, max_wait_ms=500)
        scheduler.start()

        async def client(name: str, rounds: int, waited_s: float = 0.0):
            for r in range(rounds):  # the next request as soon as the last is answered
                j = job(f"{name}{r}")
                j.arrived -= waited_s  # as if queued that long ago: its own max_wait is long over
                await scheduler.submit(j)

        first = [asyncio.ensure_future(client(n, 2)) for n in "ab"]
        while not calls:
            await asyncio.sleep(0.001)
        late = [asyncio.ensure_future(client(n, 1, waited_s=60)) for n in "cd"]
        while scheduler.outstanding < 4:
            await asyncio.sleep(0.001)
        gate.set()
        await asyncio.gather(*first, *late)
        await scheduler.close()
        return calls

    assert asyncio.run(main()) == [["a0", "b0"], ["c0", "d0", "a1", "b1"]]


def test_a_failing_batch_fails_each_of_its_jobs_and_the_scheduler_goes_on():
    rec = Recorder(fail=True)
    results = run_jobs(Scheduler(rec, max_batch_size=4, max_wait_ms=20), [job("a"), job("b")])
    assert all(isinstance(r, RuntimeError) and "exploded" in str(r) for r in results)


def test_full_queue_and_closed_scheduler_answer_503():
    async def main():
        gate = threading.Event()
        scheduler = Scheduler(lambda m, p, s, st: gate.wait() and [None] * len(p), max_batch_size=1, max_queue=2)
        scheduler.start()
        first = [scheduler.enqueue(job("a")), scheduler.enqueue(job("b"))]
        with pytest.raises(APIError) as busy:
            scheduler.enqueue(job("c"))
        gate.set()
        await asyncio.gather(*first)
        closing = asyncio.ensure_future(scheduler.close())
        await asyncio.sleep(0)
        with pytest.raises(APIError) as closed:
            scheduler.enqueue(job("d"))
        await closing
        return busy.value, closed.value

    busy, closed = asyncio.run(main())
    assert (busy.status, busy.code) == (503, "server_busy")
    assert (closed.status, closed.code) == (503, "shutting_down")


def test_a_request_is_queued_whole_or_not_at_all():
    """``enqueue_all`` (one request's prompts): when they do not all fit, none is queued (503, nothing left to run
    for a client that got an error); when they fit, all are."""
    async def main():
        rec = Recorder()
        scheduler = Scheduler(rec, max_batch_size=8, max_queue=3)
        scheduler.start()
        first = scheduler.enqueue(job("a"))
        with pytest.raises(APIError) as busy:
            scheduler.enqueue_all([job("b"), job("c"), job("d")])
        waiting = scheduler.outstanding
        rest = scheduler.enqueue_all([job("e"), job("f")])
        await asyncio.gather(first, *rest)
        await scheduler.close()
        return busy.value, waiting, [p for _, prompts in rec.calls for p in prompts]

    busy, waiting, ran = asyncio.run(main())
    assert (busy.status, busy.code) == (503, "server_busy") and "room for 2 more, this request has 3" in busy.message
    assert waiting == 1 and sorted(ran) == ["a", "e", "f"]  # b, c and d were never queued


def test_close_finishes_queued_jobs():
    async def main():
        rec = Recorder()
        scheduler = Scheduler(rec, max_batch_size=2, max_wait_ms=20)
        scheduler.start()
        futures = [scheduler.enqueue(job(f"p{i}")) for i in range(5)]
        await scheduler.close()  # right away: every queued job still gets its result
        return [f.result() for f in futures]

    assert asyncio.run(main()) == [f"m:p{i}" for i in range(5)]


@pytest.mark.parametrize("base", ["builtin:tiny-llama", "builtin:tiny-t5"])
def test_server_batches_concurrent_requests_with_unbatched_outputs(live_server, base):
    import httpx

    prompts = [PROMPTS[i % len(PROMPTS)] + " x" * i for i in range(8)]  # different lengths: padding at work
    with live_server({"model": base, "max_batch_size": 8, "max_wait_ms": 3000}) as server:
        def ask(prompt: str) -> str:
            r = httpx.post(f"{server.url}/v1/completions", timeout=120,
                           json={"model": "base", "prompt": prompt, "max_tokens": 8, "temperature": 0})
            assert r.status_code == 200, r.text
            return r.json()["choices"][0]["text"]

        with ThreadPoolExecutor(len(prompts)) as pool:
            got = list(pool.map(ask, prompts))
        health = httpx.get(f"{server.url}/health").json()
    assert got == direct(prompts, 8, base=base)  # one generate call per prompt, no padding
    assert health["generate_calls"] < len(prompts)
    assert sum(int(size) * n for size, n in health["batch_sizes"].items()) == len(prompts)
    assert max(map(int, health["batch_sizes"])) > 1


def test_no_batching_serves_one_request_per_call(client_for):
    with client_for({"batching": False}) as c:
        with ThreadPoolExecutor(4) as pool:
            codes = list(pool.map(lambda p: c.post("/v1/completions", json={
                "model": "base", "prompt": p, "max_tokens": 3, "temperature": 0}).status_code, PROMPTS))
        health = c.get("/health").json()
    assert codes == [200] * 4 and health["batch_sizes"] == {"1": 4} and health["generate_calls"] == 4


def test_unseeded_sampling_requests_are_batched_seeded_ones_alone(client_for):
    body = {"model": "base", "prompt": PROMPTS[0], "max_tokens": 3, "temperature": 0.8}

    def four(c, extra):
        with ThreadPoolExecutor(4) as pool:
            codes = list(pool.map(lambda _: c.post("/v1/completions", json={**body, **extra}).status_code, range(4)))
        assert codes == [200] * 4
        return c.get("/health").json()["generate_calls"]

    with client_for({"max_batch_size": 4, "max_wait_ms": 3000}) as c:
        unseeded_calls = four(c, {})
        seeded_calls = four(c, {"seed": 5}) - unseeded_calls
    assert unseeded_calls < 4 and seeded_calls == 4  # a seeded sample never depends on its batch-mates
