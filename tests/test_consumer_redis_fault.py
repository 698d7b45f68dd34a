"""a Redis fault is the consumer's own, not the Jetstream host's: it says so, names the
Redis, and stays on the host (before: "jetstream connection ended (store_unavailable)"
and a rotation through the public hosts for every Redis fault)."""

from __future__ import annotations

import logging

import orjson
import pytest
import redis.asyncio as aioredis
from docket import Docket

from bench.loopback.servers import RedisServer
from jetstream import ReplayFaults, ReplayServer
from tests.support.jetstream_world import (
    cid,
    did,
    eventually,
    list_commit,
    loopback_config,
    running_consumer,
    tid,
    track_uri,
)

FRAMES = [
    list_commit(
        owner=did(7000 + n),
        rkey="3m64hnzv42222",
        rev=tid(10 + n),
        record_cid=cid(f"edit {n}"),
        tracks=[track_uri(n)],
        time_us=1_764_000_000_000_000 + n * 1000,
    )
    for n in range(20)
]

pytestmark = pytest.mark.integration


async def test_a_redis_fault_is_reported_as_one_and_no_host_is_left(
    redis_client: aioredis.Redis,
    redis_server: RedisServer,
    docket: Docket,
    caplog: pytest.LogCaptureFixture,
) -> None:
    frames = FRAMES
    half = len(frames) // 2
    faults = ReplayFaults(stall_after=half)
    async with (
        ReplayServer(frames, faults=faults) as first,
        ReplayServer(frames) as second,
    ):
        config = loopback_config((first.url, second.url), batch_frames=2)
        async with running_consumer(config, redis_client, docket) as running:
            consumer = running.consumer
            await eventually(lambda: faults.stalled.is_set())
            await eventually(
                lambda: consumer.cursor.done == orjson.loads(frames[half - 1])["time_us"]
            )
            caplog.set_level(logging.INFO, logger="jetstream.consumer")
            redis_server.stop()
            faults.resume()  # frames arrive while Redis is down
            try:
                await eventually(lambda: consumer.stats.store_errors >= 3)
            finally:
                redis_server.start()
            await eventually(lambda: consumer.cursor.done == orjson.loads(frames[-1])["time_us"])
            assert consumer.stats.connected_host == first.url  # never rotated away
    assert second.connections == []
    assert sum(consumer.stats.rotations.values()) == 0
    messages = [record.getMessage() for record in caplog.records]
    assert any(
        f"Redis (127.0.0.1:{redis_server.port}/0) unavailable: not reading Jetstream" in message
        for message in messages
    ), messages
    assert not any("connection ended (store_unavailable)" in message for message in messages)
