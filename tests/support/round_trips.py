"""a redis-py client that counts its round trips (what the worker pays per command:
the client's bookkeeping, two system calls, a wake-up of the event loop)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection


class CountingConnection(Connection):
    """one count per packet sent: a command, or a whole pipeline."""

    sent = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        await super().send_packed_command(command, check_health)


def counting_client(url: str) -> aioredis.Redis:
    pool = aioredis.ConnectionPool.from_url(url, connection_class=CountingConnection)
    return aioredis.Redis.from_pool(pool)  # closing the client closes its pool


class Trips:
    count = 0


@contextmanager
def round_trips() -> Iterator[Trips]:
    """the round trips every counting client made in the block (connection set-up
    included, so warm the client up first)."""
    trips = Trips()
    before = CountingConnection.sent
    try:
        yield trips
    finally:
        trips.count = CountingConnection.sent - before


async def command_calls(redis: aioredis.Redis) -> dict[str, int]:
    """the server's count of calls per command (INFO commandstats), e.g. {'evalsha': 3}."""
    stats = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
