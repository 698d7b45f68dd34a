"""a PostgreSQL cluster of the benchmarks' own with an empty `plyr` database built from
the schema the repository carries (`engine/plyr.sql`), for the stacks that run the
production processes (`bench.journey_stack`, `bench.load.stack`)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import asyncpg

from bench.loopback.servers import PostgresServer
from engine.schema import SCHEMA_PATH


async def plyr_database(stack: AsyncExitStack) -> str:
    """start the cluster (removed when `stack` closes), create `plyr` with the schema,
    and return its DSN."""
    server = PostgresServer()
    await asyncio.to_thread(server.start)
    stack.callback(server.cleanup)
    admin = await asyncpg.connect(server.dsn())
    try:
        await admin.execute('CREATE DATABASE "plyr"')
    finally:
        await admin.close()
    connection = await asyncpg.connect(server.dsn("plyr"))
    try:
        await connection.execute(SCHEMA_PATH.read_text())
    finally:
        await connection.close()
    return server.dsn("plyr")
