"""the replay server speaks enough Jetstream for the consumer, and breaks on demand."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from jetstream import ReplayFaults, ReplayServer
from jetstream.replay import DEFAULT_GARBAGE
from jetstream.subscription import subscribe_url
from tests.support.samples import story_frames

STORY = story_frames()
TIMES = [orjson.loads(frame)["time_us"] for frame in STORY]


async def receive(connection: ClientConnection, count: int) -> list[bytes]:
    return [await asyncio.wait_for(connection.recv(decode=False), 5) for _ in range(count)]


async def nothing_more(connection: ClientConnection) -> bool:
    try:
        await asyncio.wait_for(connection.recv(), 0.2)
    except TimeoutError:
        return True
    return False


async def test_without_filters_every_frame_is_replayed_in_order() -> None:
    async with ReplayServer(STORY) as replay, connect(replay.url) as connection:
        frames = await receive(connection, len(STORY))
        assert [frame.decode() for frame in frames] == STORY
        assert await nothing_more(connection)  # the stream stays open, quiet


async def test_the_cursor_replays_events_at_or_after_it() -> None:
    async with ReplayServer(STORY) as replay:
        url = subscribe_url(replay.url, "fm.plyr.list", TIMES[9])
        async with connect(url) as connection:
            frames = await receive(connection, 4)
            times = [orjson.loads(frame)["time_us"] for frame in frames]
            # frame 10 is a track commit, filtered out; identity and account pass.
            assert times == [TIMES[9], TIMES[11], TIMES[12], TIMES[13]]
        assert replay.connections[-1].cursor == TIMES[9]
        assert replay.connections[-1].wanted_collections == ("fm.plyr.list",)


async def test_wanted_collections_filter_commits_and_accept_prefixes() -> None:
    async with ReplayServer(STORY) as replay:
        async with connect(replay.url + "?wantedCollections=fm.plyr.track") as connection:
            kinds = [orjson.loads(frame)["kind"] for frame in await receive(connection, 3)]
            assert kinds == ["commit", "identity", "account"]
            assert await nothing_more(connection)
        async with connect(replay.url + "?wantedCollections=fm.plyr.*") as connection:
            assert len(await receive(connection, len(STORY))) == len(STORY)


async def test_frames_appended_later_reach_open_connections() -> None:
    async with ReplayServer(STORY[:2]) as replay, connect(replay.url) as connection:
        await receive(connection, 2)
        replay.append(STORY[2:4])
        assert [frame.decode() for frame in await receive(connection, 2)] == STORY[2:4]


async def test_a_malformed_cursor_is_refused() -> None:
    async with ReplayServer(STORY) as replay:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(replay.url + "?cursor=soon"):
                pass
        assert refused.value.response.status_code == 400


async def test_refused_connections_answer_503_then_recover() -> None:
    async with ReplayServer(STORY, faults=ReplayFaults(refuse_connections=1)) as replay:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(replay.url):
                pass
        assert refused.value.response.status_code == 503
        async with connect(replay.url) as connection:
            assert len(await receive(connection, 1)) == 1


async def test_a_dropped_connection_ends_without_a_close_frame() -> None:
    async with ReplayServer(STORY, faults=ReplayFaults(drop_after=[3])) as replay:
        async with connect(replay.url) as connection:
            assert len(await receive(connection, 3)) == 3
            with pytest.raises(ConnectionClosedError):
                await asyncio.wait_for(connection.recv(), 5)
        async with connect(replay.url) as connection:  # the next one is healthy
            assert len(await receive(connection, len(STORY))) == len(STORY)


async def test_garbage_is_interleaved_and_stalls_hold_until_resumed() -> None:
    faults = ReplayFaults(garbage_every=2, stall_after=4)
    async with ReplayServer(STORY, faults=faults) as replay, connect(replay.url) as connection:
        frames = await receive(connection, 6)  # 4 frames and 2 garbage, then the stall
        assert frames[2] == DEFAULT_GARBAGE[0]
        assert frames[5] == DEFAULT_GARBAGE[1]
        await asyncio.wait_for(faults.stalled.wait(), 5)
        assert await nothing_more(connection)
        faults.resume()
        assert (await receive(connection, 1))[0].decode() == STORY[4]


async def test_a_blind_host_ignores_wanted_collections() -> None:
    faults = ReplayFaults(ignore_wanted_collections=True)
    async with (
        ReplayServer(STORY, faults=faults) as replay,
        connect(subscribe_url(replay.url, "fm.plyr.list", None)) as connection,
    ):
        assert len(await receive(connection, len(STORY))) == len(STORY)
