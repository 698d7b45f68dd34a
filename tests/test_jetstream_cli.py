"""`plyr-recs jetstream` and `plyr-recs status` as an operator runs them."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
from typer.testing import CliRunner

from bench.loopback.servers import RedisServer
from jetstream import ReplayServer
from jetstream.keys import JetstreamKeys
from jetstream.stats import ConsumerStats, StatsStore
from jetstream.status import read_status
from tests.support.jetstream_world import eventually
from tests.support.samples import story_frames
from worker.cli import app
from worker.settings import get_settings

KEYS = JetstreamKeys("fm.plyr.list")
STORY = story_frames()
LAST_TIME_US = orjson.loads(STORY[-1])["time_us"]
DELETED_PLAYLIST = "at://did:plc:55sotxq2fw73lscsfaxp7jtt/fm.plyr.list/3m64hnzv42a22"


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """settings read from this test's environment only (no .env, no cached object)."""
    monkeypatch.chdir(tmp_path)
    for name in ("REDIS_URL", "DOCKET_URL", "JETSTREAM_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("fresh_settings")
def test_the_consumer_refuses_the_embedded_docket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("DOCKET_URL", "memory://")
    result = CliRunner().invoke(app, ["jetstream"])
    assert result.exit_code == 2
    assert "DOCKET_URL is memory://" in result.output
    assert "plyr-recs run" in result.output


@pytest.mark.usefixtures("fresh_settings")
def test_the_consumer_refuses_to_run_without_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKET_URL", "redis://127.0.0.1:1/0")
    result = CliRunner().invoke(app, ["jetstream"])
    assert result.exit_code == 2
    assert "REDIS_URL is not set" in result.output
    assert "plyr-recs run" in result.output


@pytest.mark.usefixtures("fresh_settings")
def test_status_prints_the_published_counters_and_the_cursor_lag(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    if redis_server.process is None:
        redis_server.start()

    async def publish() -> None:
        client = aioredis.Redis.from_url(redis_server.url)
        await client.flushall()
        stats = ConsumerStats(frames=15, recomputes=8)
        stats.invalid["bad_did"] = 2
        await StatsStore(client, KEYS).publish(stats, cursor_time_us=LAST_TIME_US)
        await client.set(KEYS.cursor, str(LAST_TIME_US))
        await client.aclose()

    asyncio.run(publish())
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    result = CliRunner().invoke(app, ["status"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert str(LAST_TIME_US) in result.output
    assert "cursor lag" in result.output
    assert "invalid:bad_did" in result.output
    assert "recomputes" in result.output


@pytest.mark.usefixtures("fresh_settings")
def test_status_warns_and_fails_when_the_counters_are_stale(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    if redis_server.process is None:
        redis_server.start()

    async def publish(age: float) -> None:
        client = aioredis.Redis.from_url(redis_server.url)
        await client.flushall()
        await StatsStore(client, KEYS).publish(
            ConsumerStats(frames=15), cursor_time_us=LAST_TIME_US, every_seconds=10
        )
        await client.hset(KEYS.stats, "updated_at", f"{time.time() - age:.3f}")
        await client.aclose()

    monkeypatch.setenv("REDIS_URL", redis_server.url)
    asyncio.run(publish(age=421))  # a consumer publishing every 10 s, silent for 421 s
    result = CliRunner().invoke(app, ["status"], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert "421 s old but are published every 10 s" in result.output
    assert "probably not running" in result.output

    asyncio.run(publish(age=12))  # one period late: still fresh enough
    result = CliRunner().invoke(app, ["status"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output


@pytest.mark.usefixtures("fresh_settings")
def test_status_needs_redis_url() -> None:
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 2
    assert "REDIS_URL is not set" in result.output


@pytest.mark.integration
async def test_sigterm_finishes_and_flushes_the_cursor(
    redis_client: aioredis.Redis, redis_server: RedisServer, tmp_path: Path
) -> None:
    async with ReplayServer(STORY) as replay:
        environment = {
            **os.environ,
            "REDIS_URL": redis_server.url,
            "DOCKET_URL": redis_server.url,
            "DOCKET_NAME": f"cli-test-{uuid.uuid4().hex[:8]}",
            "JETSTREAM_URL": replay.url,
            # no interval flush during the test: only the shutdown can write it.
            "JETSTREAM_CURSOR_FLUSH_SECONDS": "300",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from worker.cli import main; main()",
            "jetstream",
            cwd=tmp_path,
            env=environment,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            # the deleted playlist's tombstone is the last frame's work.
            async def tombstone() -> bytes | None:
                value: bytes | None = await redis_client.get(KEYS.rev(DELETED_PLAYLIST))
                return value

            deadline = asyncio.get_running_loop().time() + 30
            while (await tombstone()) is None:
                assert process.returncode is None, "the consumer exited early"
                assert asyncio.get_running_loop().time() < deadline, "nothing was consumed"
                await asyncio.sleep(0.05)
            await eventually(lambda: replay.frames_sent == 15)  # fm.plyr.*: the track commit too
            assert await redis_client.get(KEYS.cursor) is None

            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), 20)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert b"SIGTERM" in stderr
    assert await redis_client.get(KEYS.cursor) == str(LAST_TIME_US).encode()
    published = await redis_client.hgetall(KEYS.stats)
    assert published[b"recomputes"] == b"8"
    # the last publication says the consumer stopped: status does not pass it for live
    status = await read_status(redis_client, "fm.plyr.list")
    assert status.warning is not None
    assert "stopped" in status.warning
