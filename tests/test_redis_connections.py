"""Redis connections that the server closed cost nobody an answer.

a restart, a failover, a managed Redis or a proxy with an idle timeout closes
every pooled connection at once. redis-py 8.1's RESP3 pools skip the check that
would notice (redis/redis-py#4252), so each dead connection failed one command,
and the API turned that one failure into seconds without its cache. these tests
run the production client (`worker.wiring.connect_redis`) against a real
redis-server, and the API with its default limits on top of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from bench.loopback.servers import RedisServer
from engine.cache import CachedRecommendations, cache_key
from tests.support.api_world import (
    CID_1,
    PUBLIC_ID,
    Api,
    World,
    built_world,
    internal,
    running_api,
    sample_tracks,
)
from worker.api.answers import AnswerLimits
from worker.api.app import SOURCE_HEADER
from worker.wiring import connect_redis

pytestmark = pytest.mark.integration

POOLED = 45  # connections opened by concurrent requests before the server drops them


async def kill_client_connections(admin: aioredis.Redis) -> int:
    """what a restart or failover does to every client: its connection is closed."""
    killed = await admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    return int(killed)


@pytest_asyncio.fixture
async def admin(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url, protocol=2)
    try:
        yield client
    finally:
        await client.config_set("timeout", 0)
        await client.aclose()


@pytest_asyncio.fixture
async def production_redis(redis_server: RedisServer) -> AsyncIterator[Any]:
    client = connect_redis(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


async def many_reads(client: Any, count: int = POOLED) -> list[Any]:
    """`count` reads at once: each takes a pooled connection of its own."""
    return await asyncio.gather(*(client.get(f"probe:{n}") for n in range(count)))


async def three_rounds_of_reads(client: Any) -> None:
    for _ in range(3):
        await many_reads(client)


async def test_the_production_client_reads_after_its_connections_were_killed(
    production_redis: Any, admin: aioredis.Redis
) -> None:
    await many_reads(production_redis)
    assert await kill_client_connections(admin) >= POOLED
    for _ in range(3):
        assert await many_reads(production_redis) == [None] * POOLED


async def test_the_production_client_reads_after_the_server_idle_timeout(
    production_redis: Any, admin: aioredis.Redis
) -> None:
    await admin.config_set("timeout", 1)
    await many_reads(production_redis)
    await asyncio.sleep(2.5)  # the server closes every connection idle for a second
    assert await many_reads(production_redis) == [None] * POOLED


async def test_the_library_default_is_what_fails(
    redis_server: RedisServer, admin: aioredis.Redis
) -> None:
    """the regression this client's configuration avoids, pinned: if a redis-py upgrade
    fixes it, this test says so and the workaround can be revisited."""
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await many_reads(client)
        await kill_client_connections(admin)
        with pytest.raises(RedisConnectionError):
            await three_rounds_of_reads(client)
    finally:
        await client.aclose()


@pytest_asyncio.fixture
async def api_on_production_redis(production_redis: Any) -> AsyncIterator[tuple[Api, World]]:
    async with (
        built_world() as world,
        # the production limits: a breaker open for 2 s after Redis faults
        running_api(world, production_redis, store=None, limits=AnswerLimits()) as api,
    ):
        yield api, world


async def owner_requests(api: Api, world: World) -> list[str]:
    responses = await asyncio.gather(
        *(api.get(PUBLIC_ID, internal(world.alice.did)) for _ in range(POOLED))
    )
    assert {response.status_code for response in responses} == {200}
    return [response.headers[SOURCE_HEADER] for response in responses]


async def test_the_api_keeps_its_cache_hits_when_redis_closes_its_connections(
    api_on_production_redis: tuple[Api, World], admin: aioredis.Redis
) -> None:
    api, world = api_on_production_redis
    cached = CachedRecommendations(sample_tracks(10), True, "kmeans", "fp", "then")
    await admin.set(cache_key(PUBLIC_ID, CID_1), cached.to_json(), ex=600)
    assert set(await owner_requests(api, world)) == {"hit"}
    await kill_client_connections(admin)
    assert await owner_requests(api, world) == ["hit"] * POOLED
    await admin.config_set("timeout", 1)
    await asyncio.sleep(2.5)
    assert await owner_requests(api, world) == ["hit"] * POOLED
