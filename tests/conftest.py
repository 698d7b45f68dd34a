"""fixtures that build a world of real servers and tear it down.

servers are session-scoped (starting PostgreSQL costs about a second); tests
get isolation from a fresh database or a flushed Redis each time.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import redis.asyncio as aioredis
from docket import Docket

from tests.support.samples import SCHEMA_PATH
from worker.loopback.servers import PostgresServer, RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


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
