"""building blocks for the Jetstream tests: frames, a running consumer, what docket holds."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from docket import Docket

from jetstream import ConsumerConfig, Enqueued, JetstreamConsumer
from jetstream.backoff import Backoff
from jetstream.batch import MarkerSink
from jetstream.frames import FrameLimits

_B32 = "234567abcdefghijklmnopqrstuvwxyz"
TRACK_DID = "did:plc:x66s2o4a2qpoastvjtboqbjb"


def tid(n: int) -> str:
    """a valid TID that sorts like `n` (the microsecond part of a real TID)."""
    digits = []
    value = (1 << 50) + n  # keeps the first character in the allowed range
    for _ in range(13):
        digits.append(_B32[value & 31])
        value >>= 5
    return "".join(reversed(digits))


def cid(seed: str) -> str:
    """a well-formed CIDv1-looking string, distinct per seed."""
    digest = hashlib.sha256(seed.encode()).digest()
    bits = int.from_bytes(digest, "big")
    body = "".join(_B32[(bits >> (5 * i)) & 31] for i in range(52))
    return "bafyrei" + body


def did(n: int) -> str:
    return "did:plc:" + "".join(_B32[(n >> (5 * i)) & 31] for i in range(24))


def track_uri(n: int) -> str:
    return f"at://{TRACK_DID}/fm.plyr.track/{tid(n)}"


def list_commit(
    *,
    owner: str,
    rkey: str,
    rev: str,
    record_cid: str,
    tracks: Iterable[str],
    time_us: int,
    list_type: str = "playlist",
    operation: str = "update",
) -> bytes:
    record = {
        "$type": "fm.plyr.list",
        "name": f"list {rkey}",
        "listType": list_type,
        "items": [{"subject": {"uri": uri, "cid": cid(uri)}} for uri in tracks],
        "createdAt": "2025-11-21T04:40:00.000Z",
    }
    return orjson.dumps(
        {
            "did": owner,
            "time_us": time_us,
            "kind": "commit",
            "commit": {
                "rev": rev,
                "operation": operation,
                "collection": "fm.plyr.list",
                "rkey": rkey,
                "record": record,
                "cid": record_cid,
            },
        }
    )


def list_delete(*, owner: str, rkey: str, rev: str, time_us: int) -> bytes:
    return orjson.dumps(
        {
            "did": owner,
            "time_us": time_us,
            "kind": "commit",
            "commit": {
                "rev": rev,
                "operation": "delete",
                "collection": "fm.plyr.list",
                "rkey": rkey,
            },
        }
    )


def identity(*, owner: str, time_us: int) -> bytes:
    return orjson.dumps(
        {"did": owner, "time_us": time_us, "kind": "identity", "identity": {"did": owner}}
    )


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
