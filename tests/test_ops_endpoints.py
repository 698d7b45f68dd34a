"""the worker and the consumer serve /metrics and /health on METRICS_PORT, as processes
(`plyr-recs worker`, `plyr-recs jetstream`) on real Redis, PostgreSQL, turbopuffer's
loopback server and the Jetstream replay server; a dead vector store shows."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from bench.loopback.servers import RedisServer
from bench.loopback.turbopuffer import TurbopufferServer
from jetstream import ReplayServer
from tests.support.samples import story_frames
from tests.support.turbopuffer_world import API_KEY, NAMESPACE, catalog_vectors

PLYR_RECS = str(Path(sys.executable).with_name("plyr-recs"))

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def process(
    command: str, environment: Mapping[str, str], cwd: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`plyr-recs <command>` running; SIGTERM and a wait at the end."""
    running = await asyncio.create_subprocess_exec(
        PLYR_RECS,
        command,
        cwd=cwd,
        env={**os.environ, **environment},
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield running
    finally:
        if running.returncode is None:
            running.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(running.communicate(), 20)
            except TimeoutError:
                running.kill()
                await running.wait()


async def get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        return await client.get(path)


async def until(predicate: Callable[[], Awaitable[bool]], *, within: float = 30.0) -> None:
    """poll an async predicate (a scrape, a health check) until it holds."""
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {predicate.__name__}"
        await asyncio.sleep(0.1)


async def serving(port: int, running: asyncio.subprocess.Process) -> None:
    async def answers() -> bool:
        assert running.returncode is None, "the process exited"
        try:
            await get(port, "/health/live")
        except httpx.TransportError:
            return False
        return True

    await until(answers)


def sample(text: str, name: str) -> float | None:
    """the value of the sample line `name` (with its labels) in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_the_worker_serves_metrics_and_readiness_and_shows_a_dead_vector_store(
    redis_client: aioredis.Redis, redis_server: RedisServer, postgres_dsn: str, tmp_path: Path
) -> None:
    port = free_port()
    turbopuffer = TurbopufferServer()
    await turbopuffer.start()
    turbopuffer.seed(NAMESPACE, catalog_vectors())
    environment = {
        "REDIS_URL": redis_server.url,
        "DOCKET_URL": redis_server.url,
        "DOCKET_NAME": f"ops-{uuid.uuid4().hex[:8]}",
        "DATABASE_URL": postgres_dsn,
        "TURBOPUFFER_API_KEY": API_KEY,
        "TURBOPUFFER_BASE_URL": turbopuffer.base_url,
        "TURBOPUFFER_NAMESPACE": NAMESPACE,
        "TURBOPUFFER_MAX_RETRIES": "0",
        "METRICS_PORT": str(port),
        "HEALTH_STORE_CHECK_SECONDS": "1",
    }
    try:
        async with process("worker", environment, tmp_path) as worker:
            await serving(port, worker)
            ready = await get(port, "/health/ready")
            assert ready.status_code == 200, ready.text
            assert ready.json()["turbopuffer"] == "ok"
            assert (ready.json()["redis"], ready.json()["catalog"]) == ("ok", "ok")

            async def rounds_counted() -> bool:
                text = (await get(port, "/metrics")).text
                done = sample(text, 'plyr_recs_worker_outcomes_total{kind="withdrawal_round:done"}')
                return done is not None and done >= 1

            await until(rounds_counted)
            text = (await get(port, "/metrics")).text
            for name in (
                'plyr_recs_dependency_up{dependency="turbopuffer"} 1.0',
                'plyr_recs_worker_queue_tasks{state="due"}',
                "plyr_recs_worker_queue_oldest_due_age_seconds",
                "plyr_recs_worker_withdrawal_round_last_timestamp_seconds",
                "plyr_recs_reconcile_missed_by_firehose",
                "# TYPE plyr_recs_worker_recompute_seconds histogram",
            ):
                assert name in text, name
            assert (sample(text, "plyr_recs_worker_docket_workers") or 0) >= 1
            # start-up's heap frozen for good (worker.ops.heap), and the collections shown
            assert (sample(text, "plyr_recs_gc_frozen_objects") or 0) > 10_000
            assert 'python_gc_collections_total{generation="2"}' in text

            await turbopuffer.stop()  # the vector store dies

            async def store_down() -> bool:
                return (await get(port, "/health/ready")).status_code == 503

            await until(store_down)
            report = (await get(port, "/health")).json()
            assert (report["turbopuffer"], report["status"]) == ("down", "degraded")
            text = (await get(port, "/metrics")).text
            assert 'plyr_recs_dependency_up{dependency="turbopuffer"} 0.0' in text
    finally:
        await turbopuffer.stop()


async def test_the_consumer_serves_its_counters_lag_and_host(
    redis_client: aioredis.Redis, redis_server: RedisServer, tmp_path: Path
) -> None:
    # redis_client flushed the server: no cursor of an earlier test to resume after
    port = free_port()
    async with ReplayServer(story_frames()) as replay:
        environment = {
            "REDIS_URL": redis_server.url,
            "DOCKET_URL": redis_server.url,
            "DOCKET_NAME": f"ops-{uuid.uuid4().hex[:8]}",
            "JETSTREAM_URL": replay.url,
            "METRICS_PORT": str(port),
        }
        async with process("jetstream", environment, tmp_path) as consumer:
            await serving(port, consumer)

            async def consumed() -> bool:
                text = (await get(port, "/metrics")).text
                return (sample(text, "plyr_recs_jetstream_recomputes_enqueued_total") or 0) >= 8

            await until(consumed)
            text = (await get(port, "/metrics")).text
            assert (sample(text, "plyr_recs_jetstream_frames_total") or 0) >= 15
            assert sample(text, "plyr_recs_jetstream_connected") == 1.0
            assert f'plyr_recs_jetstream_host{{host="{replay.url}"' in text
            assert (sample(text, "plyr_recs_jetstream_cursor_lag_seconds") or -1) >= 0
            assert "plyr_recs_jetstream_plyr_silence_seconds" in text
            # no worker runs them: the admitted tasks' arguments are held in Redis (one
            # task per playlist: edits of one are coalesced under its key)
            assert (sample(text, "plyr_recs_jetstream_task_bytes_held") or 0) > 0
            assert (sample(text, "plyr_recs_jetstream_tasks_held") or 0) >= 1
            assert 'plyr_recs_dependency_up{dependency="redis"} 1.0' in text
            ready = await get(port, "/health/ready")
            assert ready.status_code == 200, ready.text
            assert ready.json()["host"] == replay.url

            redis_server.stop()  # its Redis dies: readiness says so
            try:

                async def not_ready() -> bool:
                    answer = await get(port, "/health/ready")
                    return answer.status_code == 503 and answer.json()["redis"] == "down"

                await until(not_ready)
            finally:
                redis_server.start()
