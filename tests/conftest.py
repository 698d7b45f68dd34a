"""fixtures that build a world of real servers and tear it down.

servers are session-scoped (starting PostgreSQL costs about a second); tests
get isolation from a fresh database or a flushed Redis each time.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import redis
import redis.asyncio as aioredis
from docket import Docket
from hypothesis import settings as hypothesis_settings

from bench.loopback.servers import PostgresServer, RedisServer
from engine.keys import OURS, family_of
from tests.support.samples import SCHEMA_PATH

# no example database: each run draws afresh. a huge failing-looking example saved
# in a local .hypothesis once made a run fail on printing it, not on the code.
hypothesis_settings.register_profile("plyr-recs", database=None)
hypothesis_settings.load_profile("plyr-recs")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def keys_have_ttls(request: pytest.FixtureRequest) -> Iterator[None]:
    """fails a test that leaves a key of ours without a TTL, or one outside every family
    of the keyspace registry (`engine.keys`), on the session's redis-server.

    the registry names the families that live without a TTL on purpose (the
    consumer's cursor) and why; a test that writes such keys itself, to exercise
    a reader, opts out with `@pytest.mark.keys_without_ttl("why")`."""
    uses_redis = "redis_server" in request.fixturenames
    server: RedisServer | None = request.getfixturevalue("redis_server") if uses_redis else None
    yield
    if server is None or server.process is None:
        return
    if request.node.get_closest_marker("keys_without_ttl") is not None:
        return
    client = redis.Redis.from_url(server.url)
    try:
        keys = [key.decode() for key in client.scan_iter(match=f"{OURS}*", count=1000)]
        pipeline = client.pipeline(transaction=False)
        for key in keys:
            pipeline.ttl(key)
        ttls = pipeline.execute()
    finally:
        client.close()
    problems = []
    for key, ttl in zip(keys, ttls, strict=True):
        family = family_of(key)
        if family is None:
            problems.append(f"{key}: in no family of engine.keys")
        elif ttl == -1 and family.lifetime is not None:
            problems.append(f"{key}: no TTL ({family.name} keys live {family.lifetime})")
    if problems:
        pytest.fail("keys left without a TTL:\n" + "\n".join(sorted(problems)[:20]))


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """a client of the real redis-server, flushed before the test."""
    if redis_server.process is None:  # a previous test stopped it and failed mid-way
        redis_server.start()
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
async def docket(redis_client: aioredis.Redis, redis_server: RedisServer) -> AsyncIterator[Docket]:
    """a docket of its own on the real redis-server, after `redis_client` flushed it
    (test files that want `memory://` define their own `docket`)."""
    async with Docket(name=f"test-{uuid.uuid4().hex[:8]}", url=redis_server.url) as queue:
        yield queue


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()  # in its own temp dir: pytest's are private to root
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
async def postgres_dsn(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """a fresh database created from the shared schema; dropped after the test."""
    if postgres_server.process is None:
        postgres_server.start()
    name = f"plyr_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_server.dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    connection = await asyncpg.connect(postgres_server.dsn(name))
    try:
        await connection.execute(SCHEMA_PATH.read_text())
    finally:
        await connection.close()
    yield postgres_server.dsn(name)
    admin = await asyncpg.connect(postgres_server.dsn())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
