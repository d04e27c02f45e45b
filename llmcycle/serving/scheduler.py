"""Dynamic batching: requests wait a few milliseconds to share one ``generate`` call.

Requests (``Job``) go into an asyncio queue. One collector task on the event loop takes them out
into buckets of *compatible* jobs (same served model, same generation settings: the ``key``), picks
the bucket whose first job is oldest, lets it fill until ``max_batch_size`` jobs or for up to
``max_wait_ms``, and hands the batch to the single model thread, which runs one batched
``generate``. Each job's future is then resolved with its own result (or the batch's exception).
While the model thread is busy, new requests pile up in the queue and form the next batch.

The wait is counted from the later of the first job's arrival and the moment the model thread
came free. Counting from arrival alone lets clients split into cohorts that never meet: with 16
clients each sending its next request when answered, a first batch of 5 (those that had arrived)
leaves 11 queued behind it; those 11 run the moment the 5 finish, the 5 clients' next requests
arrive a few milliseconds too late, and batches of 5 and 11 alternate for ever (measured:
2.6x the unbatched throughput instead of what batches of 16 give). Waiting ``max_wait_ms`` after
each batch lets the clients just answered rejoin, so the cohorts merge.

``max_batch_size=1`` (batching off) is the baseline: one request per generate call, no waiting.
``solo`` jobs (streamed requests, seeded sampling) always run alone and never wait: a stream feeds
one request's tokens, and a seeded sample must not depend on which requests share its batch.

At most ``max_queue`` jobs wait; beyond that a request gets 503 (busy). A request's jobs (one per prompt) are
queued all together or not at all (``enqueue_all``), so a refused request leaves none of its prompts behind
to generate for no one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from llmcycle.serving.protocol import APIError

log = logging.getLogger("llmcycle.serving")

Runner = Callable[[str, list[str], Any, Any], list[Any]]  # (model, prompts, settings, streamer) -> results


@dataclass
class Job:
    """One prompt to generate for: what, with which settings, and where the result goes."""

    model: str
    prompt: str
    settings: Any  # GenerationSettings
    key: str  # jobs with equal keys may share a batch
    solo: bool = False  # run alone, at once (streaming, seeded sampling)
    streamer: Any = None  # fed token ids as they come (solo jobs only)
    future: asyncio.Future | None = None
    arrived: float = field(default_factory=time.monotonic)


class Scheduler:
    """An asyncio queue in front of one model thread; batches compatible jobs dynamically."""

    def __init__(self, run: Runner, max_batch_size: int = 16, max_wait_ms: float = 10.0, max_queue: int = 1024):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.run, self.max_batch_size, self.max_queue = run, max_batch_size, max_queue
        self.max_wait = max_wait_ms / 1000.0
        self.calls = 0  # generate calls made
        self.batch_sizes: Counter[int] = Counter()  # batch size -> how many batches of that size
        self.outstanding = 0  # submitted, not yet resolved
        self._queue: asyncio.Queue[Job | None] | None = None
        self._buckets: dict[str, list[Job]] = {}
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self._free_since = 0.0  # when the model thread last finished a batch

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the collector on the running loop and the model thread."""
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmcycle-model")
        self._task = asyncio.get_running_loop().create_task(self._collect(), name="llmcycle-batcher")

    async def close(self) -> None:
        """Refuse new jobs, finish every queued one, then stop the model thread."""
        if self._task is None:
            return
        self._closing = True
        self._queue.put_nowait(None)  # wakes the collector; it exits once nothing is left
        await self._task
        self._executor.shutdown(wait=True)
        self._task = None

    @property
    def closing(self) -> bool:
        return self._closing

    # ---- submitting -----------------------------------------------------------------------------

    def enqueue(self, job: Job) -> asyncio.Future:
        """Queue ``job``; its future resolves to its ``GenerationResult``. 503 when shutting down or full."""
        return self.enqueue_all([job])[0]

    def enqueue_all(self, jobs: list[Job]) -> list[asyncio.Future]:
        """Queue every job of one request, or none of them: 503 when shutting down, or when the queue has no room
        for them all (a request is never left half queued, its queued half generating for no one)."""
        if self._task is None or self._closing:
            raise APIError(503, "the server is shutting down; retry on another instance", code="shutting_down",
                           type="server_error")
        if self.outstanding + len(jobs) > self.max_queue:
            room = max(self.max_queue - self.outstanding, 0)
            raise APIError(503, f"the server is busy ({self.outstanding} requests waiting, room for {room} more"
                           f"{'' if len(jobs) == 1 else f', this request has {len(jobs)}'}); retry later",
                           code="server_busy", type="server_error")
        return [self._put(job) for job in jobs]

    def _put(self, job: Job) -> asyncio.Future:
        job.future = asyncio.get_running_loop().create_future()
        self.outstanding += 1
        job.future.add_done_callback(self._resolved)
        self._queue.put_nowait(job)
        return job.future

    async def submit(self, job: Job) -> Any:
        """Queue ``job`` and wait for its ``GenerationResult``."""
        return await self.enqueue(job)

    def _resolved(self, _: asyncio.Future) -> None:
        self.outstanding -= 1

    # ---- the collector ---------------------------------------------------------------------------

    async def _collect(self) -> None:
        stopping = False
        while True:
            if not any(self._buckets.values()):
                if stopping and self._queue.empty():
                    return
                stopping |= self._add(await self._queue.get())
            stopping |= self._drain()
            if not any(self._buckets.values()):
                continue  # only the stop signal came
            key = min((k for k, jobs in self._buckets.items() if jobs), key=lambda k: self._buckets[k][0].arrived)
            bucket = self._buckets[key]
            if not bucket[0].solo:
                stopping |= await self._fill(bucket, max(bucket[0].arrived, self._free_since) + self.max_wait)
            batch = [j for j in bucket[:self.max_batch_size] if not j.future.done()]  # done: client gone
            del bucket[:self.max_batch_size]
            if not bucket:
                del self._buckets[key]
            if batch:
                await self._run(batch)

    def _add(self, job: Job | None) -> bool:
        """File ``job`` in its bucket; True for the stop signal."""
        if job is None:
            return True
        self._buckets.setdefault(job.key, []).append(job)
        return False

    def _drain(self) -> bool:
        stop = False
        while not self._queue.empty():
            stop |= self._add(self._queue.get_nowait())
        return stop

    async def _fill(self, bucket: list[Job], deadline: float) -> bool:
        """Wait until ``bucket`` is full or ``deadline`` passes, filing whatever arrives meanwhile."""
        stop = False
        while len(bucket) < self.max_batch_size and not self._closing:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                async with asyncio.timeout(left):
                    stop |= self._add(await self._queue.get())
            except TimeoutError:
                break
            stop |= self._drain()
        return stop

    async def _run(self, batch: list[Job]) -> None:
        first = batch[0]
        self.calls += 1
        self.batch_sizes[len(batch)] += 1
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._executor, self.run, first.model, [j.prompt for j in batch],
                                                 first.settings, first.streamer)
        except Exception as exc:  # noqa: BLE001 - every job of the batch hears why
            self._free_since = time.monotonic()
            if first.streamer is not None:
                first.streamer.close()
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        self._free_since = time.monotonic()
        for job, result in zip(batch, results):
            if not job.future.done():
                job.future.set_result(result)

    def stats(self) -> dict[str, Any]:
        """Generate calls, batch-size histogram and requests waiting (for /health)."""
        return {"generate_calls": self.calls, "batch_sizes": dict(sorted(self.batch_sizes.items())),
                "waiting": self.outstanding, "max_batch_size": self.max_batch_size,
                "max_wait_ms": self.max_wait * 1000}
