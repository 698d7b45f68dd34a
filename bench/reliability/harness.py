"""one reliability run: a stream through fresh real parts on loopback, watched.

the parts every run shares live in `reliability_world.World`. `ScenarioRun` is
one pass of a stream through fresh parts: its own redis-server (cache, consumer
state and docket), a Jetstream replay server with fault hooks, the consumer and
the worker (in this process, or as `python -m worker ...` subprocesses when a
scenario SIGKILLs them) and the API (in-process, through httpx's ASGI
transport). scenarios break these parts and put them back; the run measures
when the cache is right again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis.exceptions
from docket import Docket, Worker

from bench.loopback.servers import RedisServer
from bench.reliability.api import ApiProbe
from bench.reliability.check import Comparable, matches_reference
from bench.reliability.stream import SyntheticStream
from bench.reliability.world import World
from jetstream.consumer import JetstreamConsumer
from jetstream.keys import JetstreamKeys
from jetstream.replay import ReplayFaults, ReplayServer
from worker.processes.worker import PERPETUAL_KEYS, build_worker
from worker.recs.services import Services, installed, open_services
from worker.settings import Settings
from worker.tasks.playlist import PLAYLIST_TASKS
from worker.wiring import connect_redis, consumer_config

POLL_SECONDS = 0.05


@dataclass
class ScenarioRun:
    """one stream through fresh parts; the scenario breaks them, the run watches."""

    world: World
    stream: SyntheticStream
    redis_server: RedisServer
    replay: ReplayServer
    settings: Settings
    directory: Path
    probe: ApiProbe
    state: Any = None  # a Redis client of the run's own (checks, cursor reads)
    durations: Any = None  # the scenario's fault durations (reliability_scenarios.Durations)
    consumer: JetstreamConsumer | None = None
    consumer_task: asyncio.Task[None] | None = None
    fault_ended: float | None = None  # monotonic; set by the scenario
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)
    _stops: list[asyncio.Event] = field(default_factory=list)

    # --- the parts --------------------------------------------------------------------

    async def start_consumer(self) -> None:
        """the consumer in this process, as `plyr-recs jetstream` builds it."""
        redis = connect_redis(self.settings.redis_url)
        self._stack.push_async_callback(redis.aclose)
        docket = await self._stack.enter_async_context(self._docket())
        config = consumer_config(self.settings, hosts=(self.replay.url,))
        self.consumer = JetstreamConsumer(
            config=config, redis=redis, docket=docket, tasks=PLAYLIST_TASKS
        )
        stop = asyncio.Event()
        self._stops.append(stop)
        self.consumer_task = asyncio.create_task(self.consumer.run(stop))
        self.tasks.append(self.consumer_task)

    async def start_worker(self) -> Worker:
        """a docket worker in this process, on its own services (as `plyr-recs worker`)."""
        services: Services = await self._stack.enter_async_context(open_services(self.settings))
        docket = await self._stack.enter_async_context(self._docket())
        worker = build_worker(
            docket,
            concurrency=self.settings.worker_concurrency,
            redelivery_timeout=timedelta(seconds=self.settings.worker_redelivery_seconds),
        )
        worker.minimum_check_interval = timedelta(milliseconds=50)
        worker.scheduling_resolution = timedelta(milliseconds=50)
        self._stack.enter_context(installed(services))
        await self._stack.enter_async_context(worker)
        self.tasks.append(asyncio.create_task(worker.run_forever()))
        return worker

    async def spawn(self, command: str) -> asyncio.subprocess.Process:
        """`python -m worker <command>` on this run's settings (killed by the scenario,
        or terminated when the run ends)."""
        log = (self.directory / f"{command}-{len(self.processes)}.log").open("wb")
        self._stack.callback(log.close)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "worker",
            command,
            env=self.environment(),
            cwd=self.directory,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
        self.processes.append(process)
        return process

    def environment(self) -> dict[str, str]:
        env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
        # RELIABILITY_LOG_LEVEL=INFO shows what the subprocesses did (their logs are kept
        # beside the run's redis data)
        level = os.environ.get("RELIABILITY_LOG_LEVEL", "WARNING")
        env.update({"OPENBLAS_NUM_THREADS": "1", "LOG_LEVEL": level})
        env["JETSTREAM_URL"] = self.replay.url
        for name, value in self.settings.model_dump(exclude_unset=True).items():
            if value is None:
                continue
            raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
            env[name.upper()] = str(raw.value if hasattr(raw, "value") else raw)
        return env

    @staticmethod
    async def kill(process: asyncio.subprocess.Process) -> None:
        """SIGKILL: no shutdown code runs, no cursor is flushed, no task is acked."""
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGKILL)
        await process.wait()

    def _docket(self) -> Docket:
        return Docket(name=self.settings.docket_name, url=self.settings.docket_url)

    # --- watching -------------------------------------------------------------------

    async def cursor_position(self) -> int | None:
        """how far the consumer has got: its own memory, else what it stored in Redis."""
        if self.consumer is not None:
            return self.consumer.cursor.done
        key = JetstreamKeys(self.settings.list_collection).cursor
        raw = await self._quietly(self.state.get(key))
        return int(raw) if raw is not None else None

    async def consumed(self) -> bool:
        position = await self.cursor_position()
        return position is not None and position >= self.stream.last_time_us

    async def idle(self) -> bool:
        """docket holds nothing: no task queued, scheduled, running or parked behind a
        concurrency slot."""
        prefix = self.settings.docket_name
        return bool(await self._quietly(self._pending(prefix)) == 0)

    async def _pending(self, prefix: str) -> int:
        waiters = [key async for key in self.state.scan_iter(match=f"{prefix}:concurrency:*")]
        pipeline = self.state.pipeline(transaction=False)
        pipeline.xlen(f"{prefix}:stream")
        pipeline.zcard(f"{prefix}:queue")
        # the perpetual loops (the withdrawal check, the reconcile pass) are always
        # scheduled in a worker of its own: not pending work
        perpetual_keys = sorted(PERPETUAL_KEYS)
        for key in perpetual_keys:
            pipeline.zscore(f"{prefix}:queue", key)
        for key in waiters:
            if key.endswith(b":waiters"):
                pipeline.xlen(key)
        stream, queued, *rest = await pipeline.execute()
        perpetual = sum(score is not None for score in rest[: len(perpetual_keys)])
        parked = rest[len(perpetual_keys) :]
        return int(stream) + int(queued) - perpetual + sum(map(int, parked))

    async def matches(self, reference: dict[str, Comparable]) -> bool:
        return bool(await self._quietly(matches_reference(self.state, self.stream, reference)))

    async def tasks_running(self) -> int:
        """tasks a worker has claimed and not finished (docket's pending entries)."""
        try:
            summary = await self._quietly(
                self.state.xpending(f"{self.settings.docket_name}:stream", "docket-workers")
            )
        except redis.exceptions.ResponseError:  # no worker has created the group yet
            return 0
        return int(summary["pending"]) if summary else 0

    async def wait_tasks_running(self, within: float) -> int:
        deadline = time.monotonic() + within
        while (running := await self.tasks_running()) == 0:
            if time.monotonic() > deadline:
                raise TimeoutError("no worker took a task")
            await asyncio.sleep(0.01)
        return running

    async def wait_consumed(self, within: float) -> None:
        deadline = time.monotonic() + within
        while not await self.consumed():
            self.surface_crashes()
            if time.monotonic() > deadline:
                raise TimeoutError("the consumer did not reach the end of the stream")
            await asyncio.sleep(POLL_SECONDS)

    async def wait_idle(self, within: float) -> None:
        """consumed, and docket empty three looks in a row (a retry may be in flight)."""
        deadline = time.monotonic() + within
        quiet = 0
        while time.monotonic() < deadline:
            self.surface_crashes()
            quiet = quiet + 1 if await self.consumed() and await self.idle() else 0
            if quiet >= 3:
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"docket still busy after {within}s")

    async def wait_frames_sent(self, count: int, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while self.replay.frames_sent < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the replay server sent {self.replay.frames_sent} < {count}")
            await asyncio.sleep(0.005)

    @property
    def stream_name(self) -> str:
        return self.directory.name

    def surface_crashes(self) -> None:
        for task in self.tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError("a part of the run crashed") from task.exception()

    @staticmethod
    async def _quietly(call: Any) -> Any:
        """a check while Redis may be down: no answer is None, not an error."""
        try:
            return await call
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return None

    async def close(self) -> None:
        for stop in self._stops:
            stop.set()
        for process in self.processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    await self.kill(process)
        for task in self.tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self._stack.aclose()


@asynccontextmanager
async def scenario_run(
    world: World,
    stream: SyntheticStream,
    *,
    name: str,
    durable_redis: bool = False,
    appendfsync: str = "always",
    faults: ReplayFaults | None = None,
) -> AsyncIterator[ScenarioRun]:
    """fresh parts for one run (nothing started yet but the servers and the API)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    directory = world.directory / f"{slug}-{uuid.uuid4().hex[:6]}"
    directory.mkdir(parents=True)
    redis_server = RedisServer(
        directory / "redis", appendonly=durable_redis, appendfsync=appendfsync
    )
    await asyncio.to_thread(redis_server.start)
    settings = world.settings(redis_url=redis_server.url, docket_name=f"rel-{slug}")
    replay = ReplayServer(
        stream.frames, faults=faults, frames_per_second=world.size.frames_per_second
    )
    state = connect_redis(redis_server.url)
    try:
        async with replay, ApiProbe.running(settings, stream) as probe:
            run = ScenarioRun(world, stream, redis_server, replay, settings, directory, probe)
            run.state = state
            try:
                yield run
            finally:
                await run.close()
    finally:
        await state.aclose()
        await asyncio.to_thread(redis_server.stop)
