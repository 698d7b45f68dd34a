"""building blocks for the Jetstream tests: a running consumer, what docket holds, and
(re-exported from `worker.demo.wire`) the numbered frame builders."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from docket import Docket

from jetstream import ConsumerConfig, Enqueued, JetstreamConsumer
from jetstream.backoff import Backoff
from jetstream.batch import MarkerSink
from jetstream.frames import FrameLimits
from worker.demo.wire import (
    TRACK_DID,
    cid,
    did,
    identity,
    list_commit,
    list_delete,
    tid,
    track_uri,
)
from worker.tasks.playlist import PLAYLIST_TASKS

__all__ = [
    "TRACK_DID",
    "cid",
    "did",
    "identity",
    "list_commit",
    "list_delete",
    "tid",
    "track_uri",
]


async def eventually(
    predicate: Callable[[], bool], *, within: float = 15.0, what: str = ""
) -> None:
    """the async `wait_until`: poll without blocking the loop the consumer runs on."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within}s waiting for {what or predicate}")
        await asyncio.sleep(0.01)


def fast_backoff() -> Backoff:
    def delays() -> Any:
        while True:
            yield 0.02

    return delays


def loopback_config(hosts: tuple[str, ...], **overrides: Any) -> ConsumerConfig:
    """a consumer config for loopback: short delays, no debounce surprises."""
    options: dict[str, Any] = {
        "hosts": hosts,
        "limits": FrameLimits(),
        "debounce_seconds": 2.0,
        "cursor_flush_seconds": 0.05,
        "cursor_rewind_seconds": 3.0,
        "rotation_rewind_seconds": 3.0,
        "stats_seconds": 0.2,
    }
    options.update(overrides)
    return ConsumerConfig(**options)


@dataclass
class RunningConsumer:
    consumer: JetstreamConsumer
    stop: asyncio.Event
    task: asyncio.Task[None]
    enqueued: list[Enqueued] = field(default_factory=list)

    async def shutdown(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 10)


@asynccontextmanager
async def running_consumer(
    config: ConsumerConfig,
    redis: aioredis.Redis,
    docket: Docket,
    *,
    markers: MarkerSink | None = None,
) -> AsyncIterator[RunningConsumer]:
    """a consumer running in this loop; stopped (SIGTERM-style) on exit."""
    enqueued: list[Enqueued] = []
    consumer = JetstreamConsumer(
        config=config,
        redis=redis,
        docket=docket,
        tasks=PLAYLIST_TASKS,
        backoff=fast_backoff(),
        observer=enqueued.append,
        markers=markers,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    running = RunningConsumer(consumer, stop, task, enqueued)
    try:
        yield running
    finally:
        if not task.done():
            await running.shutdown()
        else:
            task.result()  # surface a crash


@dataclass(frozen=True)
class Pending:
    """a task docket holds, as the worker would receive it."""

    function: str
    args: tuple[Any, ...]


async def pending_tasks(docket: Docket) -> dict[str, Pending]:
    """docket key -> pending task (scheduled or queued, not yet running)."""
    snapshot = await docket.snapshot()
    return {
        execution.key: Pending(execution.function_name, tuple(execution.args))
        for execution in snapshot.future
    }
