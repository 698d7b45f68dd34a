"""the consumer end to end: the real websockets client against the replay server, its
state and docket on a real redis-server. what docket holds is read back with docket's
own snapshot API; what was enqueued, in order, through the consumer's observer hook."""

from __future__ import annotations

import asyncio
import random

import orjson
import pytest
import redis.asyncio as aioredis
from docket import Docket

from bench.loopback.servers import RedisServer
from jetstream import ReplayFaults, ReplayServer
from jetstream.config import ConsumerConfig
from jetstream.contract import forget_key, recompute_key
from jetstream.keys import JetstreamKeys
from jetstream.replay import DEFAULT_GARBAGE
from tests.support.jetstream_world import (
    Pending,
    cid,
    did,
    eventually,
    identity,
    list_commit,
    list_delete,
    loopback_config,
    pending_tasks,
    running_consumer,
    tid,
    track_uri,
)
from tests.support.samples import bad_frames
from tests.support.story import STORY, STORY_ENQUEUED, STORY_JSON, story_pending
from worker.tasks.playlist import TASKS

pytestmark = pytest.mark.integration

LAST_STORY_TIME = STORY_JSON[-1]["time_us"]
KEYS = JetstreamKeys("fm.plyr.list")


async def test_the_sample_story_end_to_end(redis_client: aioredis.Redis, docket: Docket) -> None:
    # a host ignoring the filter sends everything: the consumer must filter it itself.
    faults = ReplayFaults(ignore_wanted_collections=True)
    async with (
        ReplayServer(STORY, faults=faults) as replay,
        running_consumer(loopback_config((replay.url,)), redis_client, docket) as running,
    ):
        await eventually(lambda: running.consumer.cursor.done == LAST_STORY_TIME)
    assert running.enqueued == STORY_ENQUEUED
    assert await pending_tasks(docket) == story_pending()
    assert {task.__name__ for task in TASKS} >= {
        pending.function for pending in story_pending().values()
    }
    stats = running.consumer.stats
    assert stats.frames == 15
    assert dict(stats.skipped) == {
        "album": 1,
        "liked": 1,
        "plyr_activity": 1,  # the track created: proof the host serves plyr.fm, no work
        "identity": 1,
        "account": 1,
        "duplicate": 1,
    }
    assert (stats.recomputes, stats.forgets, sum(stats.invalid.values())) == (8, 1, 0)
    assert replay.connections[0].wanted_collections == ("fm.plyr.*",)
    assert replay.connections[0].cursor is None  # nothing stored: a first start


async def test_every_key_but_the_cursor_has_a_ttl(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    async with (
        ReplayServer(STORY) as replay,
        running_consumer(loopback_config((replay.url,)), redis_client, docket) as running,
    ):
        await eventually(lambda: running.consumer.cursor.done == LAST_STORY_TIME)
    keys = [key.decode() async for key in redis_client.scan_iter(match="plyr:jetstream:*")]
    assert KEYS.cursor in keys
    assert KEYS.stats in keys
    assert len([key for key in keys if ":rev:" in key]) == 4  # p1, p2, p3, p4
    for key in keys:
        ttl = await redis_client.ttl(key)
        assert (ttl == -1) if key == KEYS.cursor else (ttl > 0), key


async def test_shutdown_flushes_the_cursor_and_the_counters(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    async with ReplayServer(STORY) as replay:
        config = loopback_config((replay.url,), cursor_flush_seconds=300, stats_seconds=300)
        async with running_consumer(config, redis_client, docket) as running:
            await eventually(lambda: running.consumer.cursor.done == LAST_STORY_TIME)
            assert await redis_client.get(KEYS.cursor) is None  # no interval flush yet
            await running.shutdown()  # what SIGTERM does in the CLI
    assert await redis_client.get(KEYS.cursor) == str(LAST_STORY_TIME).encode()
    stats = await redis_client.hgetall(KEYS.stats)
    assert stats[b"frames"] == b"15"  # fm.plyr.*: the track commit passes the host's filter
    assert stats[b"recomputes"] == b"8"


async def test_a_consumer_cancelled_while_idle_leaves_no_task_behind(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    """seen in the reliability runs: "Task was destroyed but it is pending!" for the
    consumer's wait on an empty queue, when it was cancelled (not stopped) there."""

    async def cancel_when_idle(config: ConsumerConfig) -> None:
        async with running_consumer(config, redis_client, docket) as running:
            await eventually(lambda: running.consumer.cursor.done == LAST_STORY_TIME)
            running.task.cancel()
            await asyncio.wait([running.task])

    async with ReplayServer(STORY) as replay:
        # the helper surfaces how the consumer's task ended: here, cancelled
        with pytest.raises(asyncio.CancelledError):
            await cancel_when_idle(loopback_config((replay.url,)))
    left = [
        task
        for task in asyncio.all_tasks()
        if not task.done() and "Queue.get" in repr(task.get_coro())
    ]
    assert left == []


async def test_a_dropped_connection_resumes_from_the_cursor_and_loses_nothing(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    faults = ReplayFaults(drop_after=[4, 6])
    async with ReplayServer(STORY, faults=faults) as replay:
        config = loopback_config((replay.url,), cursor_rewind_seconds=1.0)
        async with running_consumer(config, redis_client, docket) as running:
            await eventually(lambda: running.consumer.cursor.done == LAST_STORY_TIME)
    assert running.enqueued == STORY_ENQUEUED  # every change once, none lost
    assert await pending_tasks(docket) == story_pending()
    assert running.consumer.stats.reconnects["dropped"] == 2
    # the second connection asks for the 4th frame's time minus the 1 s rewind.
    assert [log.cursor for log in replay.connections] == [
        None,
        STORY_JSON[3]["time_us"] - 1_000_000,
        # the second connection starts 1 s before frame index 3 and delivers six
        # frames (indexes 3 to 8) before its drop.
        STORY_JSON[8]["time_us"] - 1_000_000,
    ]


async def test_host_rotation_skips_a_refusing_host_and_rewinds_further(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    async with (
        ReplayServer(STORY, faults=ReplayFaults(drop_after=[4])) as first,
        ReplayServer(STORY, faults=ReplayFaults(refuse_connections=1)) as second,
    ):
        config = loopback_config(
            (first.url, second.url), cursor_rewind_seconds=1.0, rotation_rewind_seconds=4.0
        )
        async with running_consumer(config, redis_client, docket) as running:
            await eventually(lambda: running.consumer.cursor.done == LAST_STORY_TIME)
    assert running.enqueued == STORY_ENQUEUED
    reconnects = running.consumer.stats.reconnects
    assert (reconnects["dropped"], reconnects["refused"]) == (1, 1)
    # first host: dropped after frame 4. second host: refused once. back on the first
    # host, then, a host change again: the rotation rewind of 4 s applies.
    assert [log.cursor for log in first.connections] == [
        None,
        STORY_JSON[3]["time_us"] - 4_000_000,
    ]


async def test_bad_frames_and_garbage_are_survived_and_counted_by_reason(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    faults = ReplayFaults(garbage_every=5, ignore_wanted_collections=True)
    async with (
        ReplayServer([*STORY, *bad_frames()], faults=faults) as replay,
        running_consumer(loopback_config((replay.url,)), redis_client, docket) as running,
    ):
        last_bad_time = 1763700021200006
        await eventually(lambda: running.consumer.cursor.done == last_bad_time)
        await eventually(lambda: running.consumer.stats.frames == 30)
    assert running.enqueued == STORY_ENQUEUED
    assert await pending_tasks(docket) == story_pending()
    # 25 real frames, one garbage frame after every 5th (the fault cycles its list).
    assert DEFAULT_GARBAGE[3].startswith(b'{"time_us": -1')
    assert dict(running.consumer.stats.invalid) == {
        "not_json": 1 + 3,  # the file's, and garbage 0, 1 and 0 again
        "not_object": 1 + 1,  # the file's [1,2,3], garbage 2
        "bad_time_us": 2 + 1,  # the file's two, garbage 3
        "bad_rev": 1,
        "bad_items": 1,
        "bad_track_uri": 1,
        "too_many_items": 1,
        "bad_cid": 1,
        "bad_did": 1,
    }
    assert running.consumer.stats.reconnects.total() == 0  # nothing broke the connection


def churn(seed: int, playlists: int, edits: int) -> tuple[list[bytes], list[tuple[str, str]]]:
    """a duplicate-heavy stream: every edit sent up to three times, old revisions
    re-sent after newer ones, identity noise. returns the frames and the
    (playlist_uri, rev) of every real change, in order."""
    rng = random.Random(seed)
    owners = [did(1000 + n) for n in range(playlists)]
    revision = [0] * playlists
    sent: list[list[bytes]] = [[] for _ in range(playlists)]
    frames: list[bytes] = []
    changes: list[tuple[str, str]] = []
    clock = 1_763_800_000_000_000
    for step in range(edits):
        clock += 1000
        n = rng.randrange(playlists)
        revision[n] += 1
        rev = tid(revision[n] * 100 + n)
        frame = list_commit(
            owner=owners[n],
            rkey="3m64hnzv42222",
            rev=rev,
            record_cid=cid(f"{n}:{revision[n]}"),
            tracks=[track_uri(step), track_uri(step + 1)],
            time_us=clock,
        )
        changes.append((f"at://{owners[n]}/fm.plyr.list/3m64hnzv42222", rev))
        sent[n].append(frame)
        for _ in range(rng.choice((1, 1, 2, 3))):
            frames.append(frame)
        if rng.random() < 0.3:
            frames.append(rng.choice(sent[n]))  # an old (stale or duplicate) revision
        if rng.random() < 0.2:
            clock += 1
            frames.append(identity(owner=owners[n], time_us=clock))
    return frames, changes


async def test_a_duplicate_heavy_stream_enqueues_each_change_once(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    frames, changes = churn(seed=7, playlists=12, edits=150)
    async with (
        ReplayServer(frames) as replay,
        running_consumer(
            loopback_config((replay.url,), batch_frames=16), redis_client, docket
        ) as running,
    ):
        await eventually(lambda: running.consumer.stats.frames == len(frames))
    assert [(e.playlist_uri, e.rev) for e in running.enqueued] == changes
    skipped = running.consumer.stats.skipped
    assert (
        skipped["duplicate"] + skipped["stale_rev"]
        == len(frames) - len(changes) - skipped["identity"]
    )
    # docket holds exactly one pending recompute per playlist: its newest revision.
    newest = {uri: rev for uri, rev in changes}
    pending = await pending_tasks(docket)
    assert {key: task.args[2] for key, task in pending.items()} == {
        recompute_key(uri): rev for uri, rev in newest.items()
    }


async def test_replaying_the_capture_again_enqueues_nothing(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    async with ReplayServer(STORY) as replay:
        config = loopback_config((replay.url,))
        async with running_consumer(config, redis_client, docket) as first:
            await eventually(lambda: first.consumer.cursor.done == LAST_STORY_TIME)
        assert first.enqueued == STORY_ENQUEUED
        # a lost cursor: the next consumer starts at the beginning of the capture.
        await redis_client.delete(KEYS.cursor)
        async with running_consumer(config, redis_client, docket) as second:
            await eventually(lambda: second.consumer.cursor.done == LAST_STORY_TIME)
    assert second.enqueued == []
    assert replay.connections[-1].cursor is None
    skipped = second.consumer.stats.skipped
    # p1's first four edits and p4's creation are older than what the guard holds;
    # p1's newest (twice), p2, p3 and p4's delete are exact repeats.
    assert (skipped["stale_rev"], skipped["duplicate"]) == (5, 5)
    assert await pending_tasks(docket) == story_pending()


async def test_create_delete_recreate_and_a_stale_update(
    redis_client: aioredis.Redis, docket: Docket
) -> None:
    owner = did(42)
    uri = f"at://{owner}/fm.plyr.list/3m64hnzv42222"
    tracks = [track_uri(1), track_uri(2)]
    t = 1_763_900_000_000_000

    def edit(rev: int, seed: str, at: int) -> bytes:
        return list_commit(
            owner=owner,
            rkey="3m64hnzv42222",
            rev=tid(rev),
            record_cid=cid(seed),
            tracks=tracks,
            time_us=at,
        )

    frames = [
        edit(1, "a", t + 1),
        list_delete(owner=owner, rkey="3m64hnzv42222", rev=tid(2), time_us=t + 2),
        edit(1, "a", t + 3),  # the pre-delete state arriving late: must not resurrect it
        edit(3, "c", t + 4),  # re-created
    ]
    async with (
        ReplayServer(frames) as replay,
        running_consumer(loopback_config((replay.url,)), redis_client, docket) as running,
    ):
        await eventually(lambda: running.consumer.cursor.done == t + 4)
    assert [(e.task, e.rev) for e in running.enqueued] == [
        ("recompute", tid(1)),
        ("forget", tid(2)),
        ("recompute", tid(3)),
    ]
    assert running.consumer.stats.skipped["stale_rev"] == 1
    pending = await pending_tasks(docket)
    assert pending == {
        forget_key(uri): Pending("forget_playlist", (uri, tid(2))),
        recompute_key(uri): Pending("recompute_playlist", (uri, cid("c"), tid(3), tracks)),
    }


async def test_redis_stopped_and_restarted_mid_stream_loses_nothing(
    redis_client: aioredis.Redis, redis_server: RedisServer, docket: Docket
) -> None:
    first_half, _ = churn(seed=1, playlists=5, edits=20)
    second_half = [
        list_commit(
            owner=did(5000 + n),
            rkey="3m64hnzv42222",
            rev=tid(10 + n),
            record_cid=cid(f"late {n}"),
            tracks=[track_uri(n)],
            time_us=1_764_000_000_000_000 + n * 1000,
        )
        for n in range(20)
    ]
    faults = ReplayFaults(stall_after=len(first_half))
    async with ReplayServer([*first_half, *second_half], faults=faults) as replay:
        config = loopback_config((replay.url,), batch_frames=4)
        async with running_consumer(config, redis_client, docket) as running:
            consumer = running.consumer
            await eventually(lambda: faults.stalled.is_set())
            last_before = orjson.loads(first_half[-1])["time_us"]
            await eventually(lambda: consumer.cursor.done == last_before)

            redis_server.stop()
            faults.resume()  # the second half arrives while Redis is down
            await eventually(lambda: consumer.stats.store_errors >= 3)
            assert consumer.cursor.done == last_before  # nothing acknowledged meanwhile
            assert all(e.time_us <= last_before for e in running.enqueued)

            redis_server.start()  # back, and empty (this server keeps no data)
            last = 1_764_000_000_000_000 + 19 * 1000
            await eventually(lambda: consumer.cursor.done == last, within=20)
            await eventually(lambda: consumer.cursor.flushed == last)
    late = [e for e in running.enqueued if e.time_us > last_before]
    assert [(e.playlist_uri, e.rev) for e in late] == [
        (f"at://{did(5000 + n)}/fm.plyr.list/3m64hnzv42222", tid(10 + n)) for n in range(20)
    ]
    pending = await pending_tasks(docket)
    for change in late:
        assert pending[recompute_key(change.playlist_uri)].args[2] == change.rev
    assert await redis_client.get(KEYS.cursor) == str(last).encode()
