"""a misbehaving v2 host (issue 23, finding 8), against the real consumer: a
dictionary endpoint that drips a byte at a time, and an instance whose `seq`
numbering starts again behind the same URL (the replay server restarted on its port
with a lower `seq_base`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import pytest
import redis.asyncio as aioredis
from docket import Docket

from jetstream import ReplayServer
from jetstream.config import ConsumerConfig
from jetstream.subscription import V2_SUBSCRIBE_PATH
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
from tests.support.story import LAST_STORY_TIME, STORY, STORY_ENQUEUED

pytestmark = pytest.mark.integration

DRIP_SECONDS = 0.2  # well under httpx's per-read timeout: only a total deadline ends it


@asynccontextmanager
async def dripping_host() -> AsyncIterator[str]:
    """a v2 host URL whose every HTTP answer (the dictionary) is a 200 that sends one
    byte every `DRIP_SECONDS` for as long as the client stays."""

    writers: set[asyncio.StreamWriter] = set()

    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n")
            while not writer.is_closing():
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(DRIP_SECONDS)
        writer.close()

    server = await asyncio.start_server(drip, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}{V2_SUBSCRIBE_PATH}"
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


def config(hosts: list[str], **overrides: object) -> ConsumerConfig:
    options: dict[str, object] = {"v2_zstd": True, "cursor_rewind_seconds": 1.0}
    options.update(overrides)
    return loopback_config(tuple(hosts), **options)


async def test_a_dripping_dictionary_is_cut_at_its_deadline_and_the_next_host_is_followed(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    """before: httpx's timeout is per read, so the drip held the consumer for good."""
    async with (
        dripping_host() as dripping,
        ReplayServer(STORY, seq_base=10) as healthy,
        running_consumer(
            config([dripping, healthy.url_v2], open_timeout_seconds=1.0), redis_client, docket
        ) as running,
    ):
        await eventually(lambda: running.consumer.cursor.done == LAST_STORY_TIME, within=30)
    assert running.enqueued == STORY_ENQUEUED
    assert running.consumer.stats.reconnects["dictionary_timeout"] == 1


async def test_stop_is_honoured_while_a_dictionary_drips(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    """before: the consumer waited out the fetch (here a minute) before it saw stop."""
    async with (
        dripping_host() as dripping,
        running_consumer(
            config([dripping], open_timeout_seconds=60.0), redis_client, docket
        ) as running,
    ):
        await asyncio.sleep(3 * DRIP_SECONDS)  # the fetch is under way, dripping
        running.stop.set()
        await asyncio.wait_for(asyncio.shield(running.task), 10)


def _edit(n: int, time_us: int) -> bytes:
    return list_commit(
        owner=did(40 + n),
        rkey=tid(1),
        rev=tid(1),
        record_cid=cid(f"after-restart-{n}"),
        tracks=[track_uri(n)],
        time_us=time_us,
    )


async def test_a_seq_that_goes_backwards_resumes_by_time(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    """before: the consumer asked the restarted instance from its old, higher seq; the
    instance served its live tail from there, and an edit made between the restart and
    the reconnect was never delivered (a later one moved the cursor past it)."""
    first = ReplayServer(STORY, seq_base=5_000)
    async with first, running_consumer(config([first.url_v2]), redis_client, docket) as running:
        consumer = running.consumer
        await eventually(lambda: consumer.cursor.done == LAST_STORY_TIME)
        assert consumer.cursor.seq_for(first.url_v2) == 5_000 + len(STORY)
        port = first.port
        await first.__aexit__(None, None, None)  # the instance goes down...
        # ...and comes back on the same URL, numbering from 0 again, with the same
        # history (timestamps) and an edit made while the consumer was away
        missed = _edit(1, LAST_STORY_TIME + 1_000_000)
        restarted = ReplayServer([*STORY, missed], port=port, seq_base=0)
        async with restarted:
            await eventually(lambda: len(restarted.connections) >= 1, within=30)
            later = _edit(2, LAST_STORY_TIME + 2_000_000)
            restarted.append([later])
            await eventually(lambda: consumer.cursor.done == LAST_STORY_TIME + 2_000_000)
            # resumed by time, at the same instance: the seq is the new numbering's
            await eventually(lambda: consumer.cursor.seq_for(restarted.url_v2) is not None)
    uris = {record.playlist_uri for record in running.enqueued}
    for frame in (missed, later):
        owner = orjson.loads(frame)["did"]
        assert f"at://{owner}/fm.plyr.list/{tid(1)}" in uris
    assert consumer.stats.reconnects["seq_backwards"] == 1
    cursors = [log.cursor for log in restarted.connections]
    assert cursors[0] == 5_000 + len(STORY)  # the old seq, once
    assert (cursors[1] or 0) >= 10**15  # then a time cursor
